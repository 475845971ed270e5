//! A client for the Ollama HTTP API, built for services that share one Ollama server.
//!
//! It speaks the native `/api/*` routes and the OpenAI-compatible `/v1/chat/completions`,
//! bounds the sockets and requests it uses, never drops streamed data, and reports every
//! failure as a typed [`Error`] with a stable [`ErrorKind`] label.

pub mod blocking;
mod client;
mod config;
mod decode;
mod error;
mod host;
pub mod openai;
mod stream;
mod transport;
mod types;

pub use client::Client;
pub use config::{ClientBuilder, Config, DEFAULT_BASE_URL};
pub use error::{Error, ErrorKind};
pub use stream::{Chunk, ResponseStream, StreamItem};
pub use transport::ClientStats;
pub use types::{
    ChatRequest, ChatResponse, EmbedInput, EmbedRequest, EmbedResponse, EmbeddingsRequest,
    EmbeddingsResponse, Format, GenerateRequest, GenerateResponse, KeepAlive, ListResponse,
    Message, Metrics, ModelDetails, ModelInfo, Options, ProgressResponse, PsResponse, PullRequest,
    RunningModel, ShowRequest, ShowResponse, Think, ThinkLevel, Tool, ToolCall, ToolCallFunction,
    ToolFunction,
};
