//! `ollama-sim`: a simulator of the Ollama HTTP API, for tests and load tests.
//!
//! It serves the native `/api/*` routes and the OpenAI-compatible `/v1/*` layer over
//! real HTTP/1.1, from simulated models with configurable load time, prompt and
//! generation speed, jitter and context size. It reproduces what a client can observe of
//! Ollama: exact JSON shapes and key order, content types, NDJSON and SSE framing, error
//! statuses and texts, and the scheduler (per-model FIFO slots, a bounded load queue that
//! answers 503, one load at a time, eviction, keep-alive). Faults can be injected, seeded
//! and deterministic. Output is deterministic from the seed.
//!
//! It is not an inference engine and not a proxy; the text it generates means nothing.
//! It depends on none of the workspace's other crates, so it is an independent second
//! reading of the protocol (`ollama-api.md`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ollama_sim::SimError> {
//! let sim = ollama_sim::Sim::start(ollama_sim::SimConfig::default()).await?;
//! println!("serving on {}", sim.base_url());
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod body;
mod config;
mod engine;
mod error;
mod fault;
mod models;
mod native;
mod openai;
mod router;
mod sched;
mod server;
mod stats;
mod textgen;
mod wire;

pub use config::{Capability, KeepAlive, ModelSpec, SimConfig};
pub use error::SimError;
pub use fault::{FaultKind, FaultPlan, FaultRule, Trigger};
pub use server::{Sim, SimHandle};
pub use stats::SimStats;
