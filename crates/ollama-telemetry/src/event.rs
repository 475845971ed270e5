//! The JSONL request event: one object per request, a superset of the original Python
//! service's `ollama_request` event (DESIGN section 8), so its users' scripts keep working.
//!
//! Keys that can be unknown (a server that did not report a figure, a request that failed
//! before any response) are written as `null` rather than left out, so every line has the
//! same shape; only the error keys and the opt-in `prompt` are left out when they do not
//! apply, as the original did.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::line::{EventFields, Head, Text};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The server answered and, for a stream, the stream reached its end.
    Success,
    /// The request failed; the error kind says how.
    Error,
    /// The caller dropped the request future or the stream before its end.
    Abandoned,
}

impl Outcome {
    /// The label value and JSON string for this outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Abandoned => "abandoned",
        }
    }
}

/// One request, as written to `requests.jsonl`. Durations are milliseconds as floats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEvent {
    /// Always `"ollama_request"`.
    pub event: Cow<'static, str>,
    /// When the request finished, RFC 3339 UTC with microseconds.
    pub timestamp: String,
    /// A process-unique id for this request (also on its tracing span).
    pub request_id: String,
    /// Which client made the request (configurable; default `"rust_async"`).
    pub client_type: Cow<'static, str>,
    /// The client method: `generate`, `chat`, `embed`, `openai_chat`, ...
    pub operation: Cow<'static, str>,
    /// The API path, e.g. `/api/generate` or `/v1/chat/completions`.
    pub endpoint: Cow<'static, str>,
    /// The model named in the request, if the operation has one.
    pub model: Option<String>,
    /// Whether the response was streamed.
    pub stream: bool,
    /// `"success"`, `"error"` or `"abandoned"` (the original had the first two).
    pub status: Cow<'static, str>,
    /// The same as `status`, typed.
    pub outcome: Outcome,
    /// Client-side end-to-end time: from the call to the response (or the last chunk).
    pub latency_ms: f64,
    /// Streams: time from the call to the first chunk carrying token text.
    pub ttft_ms: Option<f64>,
    /// The server's `total_duration`.
    pub total_duration_ms: Option<f64>,
    /// The server's `load_duration`.
    pub model_load_ms: Option<f64>,
    /// `true` when the server reported `load_duration` below the warm-start threshold
    /// (default 100 ms): the model was already loaded. `false` at or above it (a cold load,
    /// or a request that waited for one). `null` when the server did not report it.
    pub model_warm_start: Option<bool>,
    /// The server's `prompt_eval_duration`.
    pub prompt_eval_ms: Option<f64>,
    /// The server's `eval_duration`.
    pub eval_ms: Option<f64>,
    /// `latency_ms - total_duration_ms`, floored at 0: time spent outside the server's
    /// measured work (client queueing, connection setup, network).
    pub queue_wait_ms: Option<f64>,
    /// Length of the prompt in characters (chat: all message contents; embed: all inputs).
    pub prompt_chars: Option<u64>,
    /// The server's `prompt_eval_count` (OpenAI: `usage.prompt_tokens`).
    pub prompt_eval_count: Option<u64>,
    /// The server's `eval_count` (OpenAI: `usage.completion_tokens`).
    pub generation_eval_count: Option<u64>,
    /// `eval_count / eval_duration`, when both were reported and the duration is non-zero.
    pub tokens_per_second: Option<f64>,
    /// The server's `done_reason` (OpenAI: `finish_reason`).
    pub done_reason: Option<String>,
    /// The request's `options` object (sampling parameters), as sent.
    pub options: Option<serde_json::Value>,
    /// The prompt text; present only when the caller opted in (`log_prompts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// On error: `ErrorKind::as_str()` of the client error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<Cow<'static, str>>,
    /// On error: the error's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// On error: the HTTP status, when the server answered with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

impl RequestEvent {
    /// The event's values for the JSONL line writer.
    pub(crate) fn fields(&self) -> EventFields<'_> {
        EventFields {
            head: Head::Escape {
                event: &self.event,
                timestamp: &self.timestamp,
                request_id: &self.request_id,
            },
            client_type: Text::Escape(&self.client_type),
            operation: Text::Escape(&self.operation),
            endpoint: Text::Escape(&self.endpoint),
            model: self.model.as_deref().map(Text::Escape),
            stream: self.stream,
            status: Some(Text::Escape(&self.status)),
            outcome: self.outcome,
            latency_ms: self.latency_ms,
            ttft_ms: self.ttft_ms,
            total_duration_ms: self.total_duration_ms,
            model_load_ms: self.model_load_ms,
            model_warm_start: self.model_warm_start,
            prompt_eval_ms: self.prompt_eval_ms,
            eval_ms: self.eval_ms,
            queue_wait_ms: self.queue_wait_ms,
            prompt_chars: self.prompt_chars,
            prompt_eval_count: self.prompt_eval_count,
            generation_eval_count: self.generation_eval_count,
            tokens_per_second: self.tokens_per_second,
            done_reason: self.done_reason.as_deref().map(Text::Escape),
            options: self.options.as_ref(),
            prompt: self.prompt.as_deref(),
            error_type: self.error_type.as_deref(),
            error_message: self.error_message.as_deref(),
            http_status: self.http_status,
        }
    }
}
