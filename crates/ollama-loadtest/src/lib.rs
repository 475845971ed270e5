//! A load generator for Ollama and OpenAI-compatible servers whose numbers are right.
//!
//! It runs closed-loop (a fixed set of workers) or open-loop (a seeded arrival schedule,
//! latency measured from the intended send time so queueing is not hidden: coordinated
//! omission), speaks Ollama's native endpoints and `/v1/chat/completions`, streamed or
//! not, and aggregates per-request metrics (end-to-end, TTFT, inter-token gaps, TPOT,
//! server timings, a queue-wait estimate) in HDR histograms whose memory does not grow
//! with the number of requests. Results form a versioned [`Report`] that other tools read
//! and merge. This crate is not a benchmark of the client or a traffic replayer.
//!
//! The requests run on engine threads, one per core by default ([`LoadTestConfig::threads`],
//! `--threads`), each with its own single-threaded runtime, its own client and its own
//! recorder, merged exactly at the end. The client limits in [`ClientSettings`] are split
//! across the threads, so they remain process-wide totals; all threads share one JSONL
//! event log and the process's metrics recorder.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ollama_loadtest::{LoadTest, LoadTestConfig, Mode, Stop, Arrival};
//!
//! let mut config = LoadTestConfig::default();
//! config.client.base_url = Some("http://127.0.0.1:11434".into());
//! config.mode = Mode::Open { rate: 20.0, arrival: Arrival::Poisson, max_in_flight: 1000 };
//! config.stop = Stop::Requests(500);
//! let test = LoadTest::new(config)?;
//! let cancel = test.cancel_token(); // cancel() for a partial report
//! let report = test.run().await?;
//! println!("p99 {} ms", report.summary.latency_ms.p99);
//! report.write_atomic("logs/perf_reports/example.json")?;
//! # drop(cancel);
//! # Ok(())
//! # }
//! ```

mod config;
mod duration;
mod engine;
mod lanes;
mod prompts;
mod recorder;
mod report;
mod schedule;
mod slo;
mod stats;
mod threshold;
mod upstream;

pub use config::{
    AbortLimits, ClientSettings, ConfigError, Endpoint, LoadTestConfig, Mode, ModelOptions,
    PromptOrder, Stop, WeightedModel, Workload,
};
pub use duration::parse_duration_arg;
pub use engine::{LoadTest, LoadTestError, ProgressHandle, run};
pub use prompts::{Prompts, PromptsError};
pub use recorder::Progress;
pub use report::{
    Abort, AbortLimitsRecord, ConfigRecord, Environment, ErrorSample, Goodput, HostInfo,
    LoadedModel, Metrics, ModelInfo, ModelStats, ModelWeightRecord, OpenLoop, OptionsRecord,
    Report, ReportError, RequestSample, SCHEMA_VERSION, Samples, SecondBucket, SloRecord, Summary,
    ToolInfo, WarmupSummary,
};
pub use schedule::Arrival;
pub use slo::{Slo, SloParseError};
pub use stats::{Distribution, EncodedHistogram, HISTOGRAM_ENCODING, HistogramError};
pub use threshold::{Threshold, ThresholdOutcome, ThresholdParseError};
