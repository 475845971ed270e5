//! Typed requests and responses of the native `/api/*` routes.
//!
//! Requests serialize only the fields that are set, because the server treats a present
//! field differently from a missing one (`keep_alive`, `format`, `think`). Responses accept
//! unknown fields and missing metrics, because a shared server can be any Ollama version
//! and Go's `omitempty` drops zero values.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

mod de;
mod summary;

pub use summary::ResponseSummary;

/// Server-side timings and token counts of a finished request.
///
/// Every field is optional: Ollama omits zero values, and old servers omit more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Wall time of the whole request on the server, including queueing and loading.
    pub total_duration: Option<Duration>,
    /// Time to load (or find already loaded) the model.
    pub load_duration: Option<Duration>,
    /// Prompt tokens, including those served from the KV cache.
    pub prompt_eval_count: Option<u64>,
    /// Prompt tokens served from the KV cache (newer servers only).
    pub prompt_eval_cached_count: Option<u64>,
    /// Time spent evaluating the prompt.
    pub prompt_eval_duration: Option<Duration>,
    /// Generated tokens.
    pub eval_count: Option<u64>,
    /// Time spent generating.
    pub eval_duration: Option<Duration>,
}

impl Metrics {
    /// Generated tokens per second by the server's own clock, when both parts are known.
    pub fn tokens_per_second(&self) -> Option<f64> {
        let d = self.eval_duration?.as_secs_f64();
        let n = self.eval_count?;
        (d > 0.0).then(|| n as f64 / d)
    }
}

/// Go durations on the wire are integer nanoseconds.
pub(crate) mod nanos {
    use super::{Deserializer, Duration, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` passes `&Option<T>`.
    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        // Negative or fractional values are not sent by Ollama; read them leniently.
        d.deserialize_any(super::de::Nanos)
    }
}

/// `format`: plain JSON mode, or a JSON schema the output must follow.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// `"json"`.
    Json,
    /// A JSON-schema object.
    Schema(Value),
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Json => s.serialize_str("json"),
            Self::Schema(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(if v == "json" {
            Self::Json
        } else {
            Self::Schema(v)
        })
    }
}

/// `think`: on/off, or a level for models that take one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Think {
    /// `true` or `false`.
    Enabled(bool),
    /// `"low"`, `"medium"`, `"high"` or `"max"`.
    Level(ThinkLevel),
}

/// A thinking level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThinkLevel {
    /// `"low"`.
    Low,
    /// `"medium"`.
    Medium,
    /// `"high"`.
    High,
    /// `"max"`.
    Max,
}

impl From<bool> for Think {
    fn from(b: bool) -> Self {
        Self::Enabled(b)
    }
}

impl From<ThinkLevel> for Think {
    fn from(l: ThinkLevel) -> Self {
        Self::Level(l)
    }
}

/// `keep_alive`: how long the model stays loaded after this request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeepAlive {
    /// Seconds as a number; negative keeps the model loaded forever, 0 unloads it.
    Seconds(f64),
    /// A Go duration string such as `"10m"` or `"-1m"`.
    Text(String),
}

impl KeepAlive {
    /// Keep the model loaded until the server stops (`-1`).
    pub fn forever() -> Self {
        Self::Seconds(-1.0)
    }

    /// Unload the model as soon as it is idle (`0`).
    pub fn unload() -> Self {
        Self::Seconds(0.0)
    }
}

impl From<Duration> for KeepAlive {
    fn from(d: Duration) -> Self {
        Self::Seconds(d.as_secs_f64())
    }
}

/// Model parameters (`options`): a free-form map with setters for the common keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Options(pub Map<String, Value>);

impl Options {
    /// An empty set of options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets any option by name.
    #[must_use]
    pub fn set(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// `temperature`.
    #[must_use]
    pub fn temperature(self, t: f64) -> Self {
        self.set("temperature", t)
    }

    /// `num_ctx`: the context window in tokens.
    #[must_use]
    pub fn num_ctx(self, n: u64) -> Self {
        self.set("num_ctx", n)
    }

    /// `num_predict`: the most tokens to generate.
    #[must_use]
    pub fn num_predict(self, n: i64) -> Self {
        self.set("num_predict", n)
    }

    /// `seed`.
    #[must_use]
    pub fn seed(self, n: i64) -> Self {
        self.set("seed", n)
    }

    /// `top_k`.
    #[must_use]
    pub fn top_k(self, n: u64) -> Self {
        self.set("top_k", n)
    }

    /// `top_p`.
    #[must_use]
    pub fn top_p(self, p: f64) -> Self {
        self.set("top_p", p)
    }

    /// `stop`: sequences that end generation.
    #[must_use]
    pub fn stop<I: IntoIterator<Item = S>, S: Into<String>>(self, stops: I) -> Self {
        let v: Vec<Value> = stops.into_iter().map(|s| Value::String(s.into())).collect();
        self.set("stop", v)
    }
}

/// A tool the model may call (OpenAI-style function description).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `"function"` today.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: ToolFunction,
}

impl Tool {
    /// A function tool with a JSON-schema for its parameters.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Self {
            kind: "function".into(),
            function: ToolFunction {
                name: name.into(),
                description: Some(description.into()),
                parameters,
            },
        }
    }
}

/// The function of a [`Tool`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolFunction {
    /// Function name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments.
    #[serde(default)]
    pub parameters: Value,
}

/// A tool call made by the model. `arguments` is a JSON object (not a string as in OpenAI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id (`call_xxxxxxxx`), on newer servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The called function.
    pub function: ToolCallFunction,
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    /// Position among the calls of one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Function name.
    pub name: String,
    /// Arguments as a JSON object.
    #[serde(default)]
    pub arguments: Value,
}

/// A chat message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    #[serde(default)]
    pub role: String,
    /// The text.
    #[serde(default)]
    pub content: String,
    /// The model's thinking text (responses of thinking models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Base64-encoded images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    /// Tool calls made by the assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The tool whose result this `tool` message carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// The call this `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            ..Self::default()
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }

    /// A `tool` message carrying the result of `tool_name`.
    pub fn tool(tool_name: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_name: Some(tool_name.into()),
            ..Self::new("tool", content)
        }
    }

    /// Attaches an image, given as base64 text.
    #[must_use]
    pub fn image_base64(mut self, b64: impl Into<String>) -> Self {
        self.images.get_or_insert_with(Vec::new).push(b64.into());
        self
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, v: impl Into<$ty>) -> Self {
                self.$name = Some(v.into());
                self
            }
        )*
    };
}

/// `POST /api/generate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GenerateRequest {
    /// Model name (the client's `default_model` when empty).
    pub model: String,
    /// The prompt; empty loads the model without generating.
    #[serde(default)]
    pub prompt: String,
    /// Text after the insertion point (fill-in-the-middle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// System prompt override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Template override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The `context` of an earlier response (deprecated conversational memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<i64>>,
    /// Set by the client method (`generate` sends false, `generate_stream` true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Send the prompt without templating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<bool>,
    /// JSON mode or a JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// How long the model stays loaded afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
    /// Base64-encoded images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    /// Model parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    /// Thinking on/off or level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
    /// Truncate the prompt to the context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// Shift the context window when it fills up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<bool>,
    /// Return log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many top alternatives per token (0..=20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
}

impl GenerateRequest {
    /// A request for `model` with `prompt`; everything else unset.
    pub fn new(model: impl Into<String>, prompt: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            prompt: prompt.into(),
            ..Self::default()
        }
    }

    setters! {
        /// Sets `suffix`.
        suffix: String,
        /// Sets `system`.
        system: String,
        /// Sets `template`.
        template: String,
        /// Sets `context`.
        context: Vec<i64>,
        /// Sets `raw`.
        raw: bool,
        /// Sets `format`.
        format: Format,
        /// Sets `keep_alive`.
        keep_alive: KeepAlive,
        /// Sets `images` (base64).
        images: Vec<String>,
        /// Sets `options`.
        options: Options,
        /// Sets `think`.
        think: Think,
        /// Sets `truncate`.
        truncate: bool,
        /// Sets `shift`.
        shift: bool,
        /// Sets `logprobs`.
        logprobs: bool,
    }

    /// Sets `top_logprobs` (0..=20).
    #[must_use]
    pub fn top_logprobs(mut self, n: u32) -> Self {
        self.top_logprobs = Some(n);
        self
    }
}

/// A chunk of `/api/generate` (the whole answer when not streamed).
///
/// `Deserialize` is hand-written (module `de`), for speed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct GenerateResponse {
    /// The model as named in the request.
    #[serde(default)]
    pub model: String,
    /// RFC 3339 time of the chunk (server clock).
    #[serde(default)]
    pub created_at: String,
    /// The next piece of text (the whole text when not streamed).
    #[serde(default)]
    pub response: String,
    /// Thinking text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// True on the final chunk.
    #[serde(default)]
    pub done: bool,
    /// `stop`, `length`, `load` or `unload` on the final chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Token context for a follow-up request (final chunk, not with `raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<i64>>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Log probabilities, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// See [`Metrics::total_duration`].
    #[serde(default, with = "nanos", skip_serializing_if = "Option::is_none")]
    pub total_duration: Option<Duration>,
    /// See [`Metrics::load_duration`].
    #[serde(default, with = "nanos", skip_serializing_if = "Option::is_none")]
    pub load_duration: Option<Duration>,
    /// See [`Metrics::prompt_eval_count`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u64>,
    /// See [`Metrics::prompt_eval_cached_count`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_cached_count: Option<u64>,
    /// See [`Metrics::prompt_eval_duration`].
    #[serde(default, with = "nanos", skip_serializing_if = "Option::is_none")]
    pub prompt_eval_duration: Option<Duration>,
    /// See [`Metrics::eval_count`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_count: Option<u64>,
    /// See [`Metrics::eval_duration`].
    #[serde(default, with = "nanos", skip_serializing_if = "Option::is_none")]
    pub eval_duration: Option<Duration>,
}

/// `POST /api/chat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRequest {
    /// Model name (the client's `default_model` when empty).
    pub model: String,
    /// The conversation; empty loads the model without generating.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Set by the client method (`chat` sends false, `chat_stream` true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// JSON mode or a JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// How long the model stays loaded afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
    /// Model parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    /// Thinking on/off or level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
    /// Truncate the prompt to the context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// Shift the context window when it fills up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<bool>,
    /// Return log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many top alternatives per token (0..=20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
}

impl ChatRequest {
    /// A request for `model` with `messages`; everything else unset.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            messages,
            ..Self::default()
        }
    }

    /// Appends a message.
    #[must_use]
    pub fn message(mut self, m: Message) -> Self {
        self.messages.push(m);
        self
    }

    /// Adds a tool.
    #[must_use]
    pub fn tool(mut self, t: Tool) -> Self {
        self.tools.get_or_insert_with(Vec::new).push(t);
        self
    }

    setters! {
        /// Sets `tools`.
        tools: Vec<Tool>,
        /// Sets `format`.
        format: Format,
        /// Sets `keep_alive`.
        keep_alive: KeepAlive,
        /// Sets `options`.
        options: Options,
        /// Sets `think`.
        think: Think,
        /// Sets `truncate`.
        truncate: bool,
        /// Sets `shift`.
        shift: bool,
        /// Sets `logprobs`.
        logprobs: bool,
    }

    /// Sets `top_logprobs` (0..=20).
    #[must_use]
    pub fn top_logprobs(mut self, n: u32) -> Self {
        self.top_logprobs = Some(n);
        self
    }
}

/// A chunk of `/api/chat` (the whole answer when not streamed).
///
/// `Deserialize` is hand-written (module `de`), for speed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ChatResponse {
    /// The model as named in the request.
    #[serde(default)]
    pub model: String,
    /// RFC 3339 time of the chunk (server clock).
    #[serde(default)]
    pub created_at: String,
    /// The next piece of the assistant message (the whole message when not streamed).
    #[serde(default)]
    pub message: Message,
    /// True on the final chunk.
    #[serde(default)]
    pub done: bool,
    /// `stop`, `length`, `load` or `unload` on the final chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Log probabilities, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// See [`Metrics::total_duration`].
    #[serde(default, with = "nanos", skip_serializing_if = "Option::is_none")]
    pub total_duration: Option<Duration>,
    /// See [`Metrics::load_duration`].
    #[serde(default, with = "nanos", skip_serializing_if = "Option::is_none")]
    pub load_duration: Option<Duration>,
    /// See [`Metrics::prompt_eval_count`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u64>,
    /// See [`Metrics::prompt_eval_cached_count`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_cached_count: Option<u64>,
    /// See [`Metrics::prompt_eval_duration`].
    #[serde(default, with = "nanos", skip_serializing_if = "Option::is_none")]
    pub prompt_eval_duration: Option<Duration>,
    /// See [`Metrics::eval_count`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_count: Option<u64>,
    /// See [`Metrics::eval_duration`].
    #[serde(default, with = "nanos", skip_serializing_if = "Option::is_none")]
    pub eval_duration: Option<Duration>,
}

macro_rules! metrics_accessor {
    ($($ty:ty),*) => {$(
        impl $ty {
            /// The server's timings and counts (all `None` on non-final chunks).
            pub fn metrics(&self) -> Metrics {
                Metrics {
                    total_duration: self.total_duration,
                    load_duration: self.load_duration,
                    prompt_eval_count: self.prompt_eval_count,
                    prompt_eval_cached_count: self.prompt_eval_cached_count,
                    prompt_eval_duration: self.prompt_eval_duration,
                    eval_count: self.eval_count,
                    eval_duration: self.eval_duration,
                }
            }
        }
    )*};
}
metrics_accessor!(GenerateResponse, ChatResponse);

/// `input` of `/api/embed`: one text or many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbedInput {
    /// One text.
    One(String),
    /// Several texts; one vector each, in order.
    Many(Vec<String>),
}

impl From<&str> for EmbedInput {
    fn from(s: &str) -> Self {
        Self::One(s.to_owned())
    }
}

impl From<String> for EmbedInput {
    fn from(s: String) -> Self {
        Self::One(s)
    }
}

impl From<Vec<String>> for EmbedInput {
    fn from(v: Vec<String>) -> Self {
        Self::Many(v)
    }
}

/// `POST /api/embed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbedRequest {
    /// Model name (the client's `default_model` when empty).
    pub model: String,
    /// Text(s) to embed.
    pub input: EmbedInput,
    /// Truncate inputs to the context window (server default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// Cut vectors to this many dimensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// How long the model stays loaded afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
    /// Model parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
}

impl EmbedRequest {
    /// A request embedding `input` with `model`.
    pub fn new(model: impl Into<String>, input: impl Into<EmbedInput>) -> Self {
        Self {
            model: model.into(),
            input: input.into(),
            truncate: None,
            dimensions: None,
            keep_alive: None,
            options: None,
        }
    }

    /// Sets `dimensions`: vectors are cut to this length (and normalised again).
    #[must_use]
    pub fn dimensions(mut self, n: u32) -> Self {
        self.dimensions = Some(n);
        self
    }

    setters! {
        /// Sets `truncate`.
        truncate: bool,
        /// Sets `keep_alive`.
        keep_alive: KeepAlive,
        /// Sets `options`.
        options: Options,
    }
}

/// The answer of `/api/embed`: unit-length vectors, one per input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbedResponse {
    /// The model as named in the request.
    #[serde(default)]
    pub model: String,
    /// One vector per input.
    #[serde(default)]
    pub embeddings: Vec<Vec<f32>>,
    /// See [`Metrics::total_duration`].
    #[serde(default, with = "nanos", skip_serializing_if = "Option::is_none")]
    pub total_duration: Option<Duration>,
    /// See [`Metrics::load_duration`].
    #[serde(default, with = "nanos", skip_serializing_if = "Option::is_none")]
    pub load_duration: Option<Duration>,
    /// Input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u64>,
}

impl EmbedResponse {
    /// The server's timings and counts (no eval part for embeddings).
    pub fn metrics(&self) -> Metrics {
        Metrics {
            total_duration: self.total_duration,
            load_duration: self.load_duration,
            prompt_eval_count: self.prompt_eval_count,
            ..Metrics::default()
        }
    }
}

/// `POST /api/embeddings` (legacy, one text, not normalised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbeddingsRequest {
    /// Model name (the client's `default_model` when empty).
    pub model: String,
    /// The text.
    pub prompt: String,
    /// Model parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    /// How long the model stays loaded afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
}

impl EmbeddingsRequest {
    /// A request embedding `prompt` with `model`.
    pub fn new(model: impl Into<String>, prompt: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            prompt: prompt.into(),
            options: None,
            keep_alive: None,
        }
    }

    setters! {
        /// Sets `options`.
        options: Options,
        /// Sets `keep_alive`.
        keep_alive: KeepAlive,
    }
}

/// The answer of `/api/embeddings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbeddingsResponse {
    /// The vector (empty when the prompt was empty).
    #[serde(default)]
    pub embedding: Vec<f64>,
}

/// Details of a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelDetails {
    /// Parent model.
    #[serde(default)]
    pub parent_model: String,
    /// File format (`gguf`).
    #[serde(default)]
    pub format: String,
    /// Model family.
    #[serde(default)]
    pub family: String,
    /// All families.
    #[serde(default)]
    pub families: Option<Vec<String>>,
    /// Parameter count, e.g. `3.2B`.
    #[serde(default)]
    pub parameter_size: String,
    /// Quantization, e.g. `Q4_K_M`.
    #[serde(default)]
    pub quantization_level: String,
}

/// An entry of `/api/tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelInfo {
    /// `name:tag`.
    #[serde(default)]
    pub name: String,
    /// `name:tag` (same as `name`).
    #[serde(default)]
    pub model: String,
    /// Last modification, server-local RFC 3339.
    #[serde(default)]
    pub modified_at: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Bare hex digest.
    #[serde(default)]
    pub digest: String,
    /// Details.
    #[serde(default)]
    pub details: ModelDetails,
    /// Capabilities, on newer servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

/// The answer of `/api/tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListResponse {
    /// Local models, newest first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub models: Vec<ModelInfo>,
}

/// An entry of `/api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunningModel {
    /// `name:tag`.
    #[serde(default)]
    pub name: String,
    /// `name:tag`.
    #[serde(default)]
    pub model: String,
    /// Size in memory, bytes.
    #[serde(default)]
    pub size: u64,
    /// Bare hex digest.
    #[serde(default)]
    pub digest: String,
    /// Details.
    #[serde(default)]
    pub details: ModelDetails,
    /// When the model unloads, server-local RFC 3339.
    #[serde(default)]
    pub expires_at: String,
    /// Bytes in GPU memory.
    #[serde(default)]
    pub size_vram: u64,
    /// Context length of the loaded runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
}

/// The answer of `/api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PsResponse {
    /// Loaded models, longest time to expiry first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub models: Vec<RunningModel>,
}

/// `POST /api/show`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShowRequest {
    /// Model name (the client's `default_model` when empty).
    pub model: String,
    /// Return full arrays in `model_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbose: Option<bool>,
}

impl ShowRequest {
    /// A request for `model`.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            verbose: None,
        }
    }

    setters! {
        /// Sets `verbose`.
        verbose: bool,
    }
}

/// The answer of `/api/show`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShowResponse {
    /// License text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The Modelfile.
    #[serde(default)]
    pub modelfile: String,
    /// Parameters, one `key value` per line.
    #[serde(default)]
    pub parameters: String,
    /// Prompt template.
    #[serde(default)]
    pub template: String,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Details.
    #[serde(default)]
    pub details: ModelDetails,
    /// Architecture facts (`general.architecture`, `<arch>.context_length`, ...).
    #[serde(default, deserialize_with = "null_as_default")]
    pub model_info: Map<String, Value>,
    /// Capabilities, e.g. `completion`, `vision`, `tools`, `thinking`, `embedding`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub capabilities: Vec<String>,
    /// Last modification.
    #[serde(default)]
    pub modified_at: String,
}

/// `POST /api/pull`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PullRequest {
    /// Model to pull.
    pub model: String,
    /// Allow insecure registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Always true: [`crate::Client::pull`] streams progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}

impl PullRequest {
    /// A request to pull `model`.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            insecure: None,
            stream: None,
        }
    }

    setters! {
        /// Sets `insecure`.
        insecure: bool,
    }
}

/// A progress line of `/api/pull`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProgressResponse {
    /// `pulling manifest`, `pulling <digest>`, ..., `success`.
    #[serde(default)]
    pub status: String,
    /// `sha256:<hex>` of the layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Layer size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Bytes done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_serialize_only_what_is_set() {
        let r = GenerateRequest::new("m", "p");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"model":"m","prompt":"p"}"#
        );
        let r = GenerateRequest::new("m", "p")
            .format(Format::Json)
            .think(ThinkLevel::High)
            .keep_alive(KeepAlive::Text("10m".into()))
            .options(Options::new().temperature(0.5).stop(["x"]));
        let v: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["format"], "json");
        assert_eq!(v["think"], "high");
        assert_eq!(v["keep_alive"], "10m");
        assert_eq!(v["options"]["stop"][0], "x");
        let r = ChatRequest::new("m", vec![Message::user("hi")])
            .think(false)
            .keep_alive(KeepAlive::forever());
        let v: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["think"], false);
        assert_eq!(v["keep_alive"], -1.0);
        assert_eq!(
            v["messages"][0],
            serde_json::json!({"role":"user","content":"hi"})
        );
        let schema = serde_json::json!({"type":"object"});
        let v = serde_json::to_value(
            ChatRequest::new("m", vec![]).format(Format::Schema(schema.clone())),
        )
        .unwrap();
        assert_eq!(v["format"], schema);
    }

    #[test]
    fn responses_tolerate_unknown_and_missing_fields() {
        let line = r#"{"model":"m","remote_host":"x","created_at":"t","response":"","done":true,"done_reason":"stop","context":[1],"total_duration":174560334,"prompt_eval_count":11,"prompt_eval_cached_count":4,"eval_count":18,"eval_duration":52479709,"new_field":{"a":1}}"#;
        let r: GenerateResponse = serde_json::from_str(line).unwrap();
        let m = r.metrics();
        assert_eq!(m.total_duration, Some(Duration::from_nanos(174_560_334)));
        assert_eq!(m.load_duration, None);
        assert_eq!(m.prompt_eval_cached_count, Some(4));
        assert!(m.tokens_per_second().unwrap() > 300.0);
        let c: ChatResponse = serde_json::from_str(r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"done":false}"#).unwrap();
        assert_eq!(c.message.tool_calls.unwrap()[0].function.name, "f");
        let l: ListResponse = serde_json::from_str(r#"{"models":null}"#).unwrap();
        assert!(l.models.is_empty());
    }
}
