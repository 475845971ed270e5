//! A client for the Ollama HTTP API, built for services that share one Ollama server.
//!
//! It speaks the native `/api/*` routes (generate, chat, embed, models, pull, ...) and the
//! OpenAI-compatible `/v1/chat/completions` ([`openai`]), bounds the sockets and requests it
//! uses, never drops streamed data, and reports every failure as a typed [`Error`] whose
//! [`ErrorKind`] has a stable label.
//!
//! **Not** in scope: telemetry (wrap the client with `ollama-telemetry`), model management
//! beyond pull/copy/delete (no push, create or blobs), the `/v1/responses` and Anthropic
//! layers, and HTTP/2 (Ollama serves HTTP/1.1 only).
//!
//! ```no_run
//! use ollama_client::{ChatRequest, Client, Message};
//!
//! # async fn demo() -> Result<(), ollama_client::Error> {
//! // OLLAMA_HOST or http://127.0.0.1:11434; checks the server with HEAD / (and retries).
//! let client = Client::builder().max_concurrent_requests(8).connect().await?;
//! let mut stream = client.chat_stream(ChatRequest::new("llama3.2", vec![Message::user("Hi!")])).await?;
//! while let Some(chunk) = stream.next().await {
//!     let chunk = chunk?; // a mid-stream error or a cut stream is an Err, never silence
//!     print!("{}", chunk.item.message.content);
//!     if chunk.item.done {
//!         println!("\n{:?}", chunk.item.metrics());
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Limits, and how to pick them
//!
//! One [`Client`] (clone it freely) is one set of limits for the whole process:
//!
//! * `max_connections` (default 50): sockets open at once, busy or idle. Each socket owns
//!   a permit, so the bound holds however requests fail. Ollama answers one request per
//!   socket at a time (HTTP/1.1), so this is also the most requests it can see from you.
//!   Set it to what your share of the server may use: for a server with
//!   `OLLAMA_NUM_PARALLEL=p` serving `k` services fairly, about `p * models / k` plus a few
//!   for `/api/ps`, health checks and embeddings. More only queues inside Ollama.
//! * `max_keepalive_connections` (default 20) and `keep_alive_idle` (default 30 s): how
//!   many idle sockets are kept for reuse, and for how long. Ollama never closes idle
//!   sockets; a proxy in front may, so keep `keep_alive_idle` below its idle timeout.
//! * `max_concurrent_requests` (default none): requests in flight at once, a stream
//!   counting until it ends or is dropped. Use it to bound work (and memory) below
//!   `max_connections`, e.g. to leave sockets for health checks.
//! * `pool_timeout` (default 30 s): the longest wait for either slot; past it the request
//!   fails with [`ErrorKind::PoolTimeout`] instead of queueing without bound.
//! * `timeout` (default 300 s) is a *read* timeout: to the response head, and between two
//!   pieces of a body. A cold model load happens before the head, so keep it above your
//!   slowest load. `connect_timeout` (10 s) bounds opening a socket.
//!
//! [`Client::stats`] shows open sockets, in-flight requests and pool waits at any time.
//!
//! # Retries
//!
//! Only what cannot have been acted on is retried, with doubling backoff from
//! `retry_delay`, up to `max_retries`: a connection that could not be made, and (opt-in,
//! `retry_server_busy`) a 503 "server busy". [`Client::verify`] retries the health check
//! the same number of times at a fixed `retry_delay`.
//!
//! # Streams
//!
//! [`ResponseStream`] is a `futures` `Stream` of [`Chunk`]s, each stamped with the instant
//! its last byte arrived. Decoding ([`StreamDecoder`]) keeps lines split across network
//! chunks, and refuses lines over 8 MiB with a clear error. Dropping a stream early closes
//! its socket, which makes Ollama stop generating.
//!
//! # Measuring instead of reading
//!
//! A caller that needs how an answer went but not its text (a load generator, a probe, a
//! monitor) can use the `*_summary` forms of generate and chat
//! ([`Client::generate_summary`], [`Client::chat_stream_summary`], ...): the same requests,
//! each answer or chunk parsed into a [`ResponseSummary`] (text and thinking lengths, tool
//! calls, `done`, `done_reason`, [`Metrics`]) without copying the text or `context`.
//!
//! # Features
//!
//! * `rustls` (default): `https://` base URLs through rustls (ring, webpki roots).
//!
//! Use [`blocking::Client`] from code without an async runtime.

pub mod blocking;
mod client;
mod config;
mod decode;
mod error;
mod host;
pub mod openai;
mod pool;
mod stream;
mod transport;
mod types;

pub use client::Client;
pub use config::{ClientBuilder, Config, DEFAULT_BASE_URL};
pub use error::{Error, ErrorKind};
pub use stream::{Chunk, ResponseStream, StreamDecoder, StreamItem};
pub use transport::ClientStats;
pub use types::{
    ChatRequest, ChatResponse, EmbedInput, EmbedRequest, EmbedResponse, EmbeddingsRequest,
    EmbeddingsResponse, Format, GenerateRequest, GenerateResponse, KeepAlive, ListResponse,
    Message, Metrics, ModelDetails, ModelInfo, Options, ProgressResponse, PsResponse, PullRequest,
    ResponseSummary, RunningModel, ShowRequest, ShowResponse, Think, ThinkLevel, Tool, ToolCall,
    ToolCallFunction, ToolFunction,
};
