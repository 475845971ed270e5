//! The OpenAI-compatible layer (`/v1/chat/completions`), used by load tests and by tools
//! that already speak OpenAI.
//!
//! Both streaming chunk styles are accepted: before Ollama v0.32.6 every chunk carried
//! `delta.role` and the finish reason rode on the last content chunk; since then the role
//! comes only first and a separate chunk with an empty delta carries the finish reason.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Token usage of a completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Prompt tokens (`prompt_eval_count`).
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Generated tokens (`eval_count`).
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
}

/// A message of the OpenAI chat API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    #[serde(default)]
    pub role: String,
    /// A string, or an array of content parts (`text`, `image_url`), as OpenAI allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    /// Reasoning text of thinking models (responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Tool calls (assistant messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A text message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: Some(Value::String(content.into())),
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

    /// The content when it is a plain string.
    pub fn text(&self) -> Option<&str> {
        self.content.as_ref().and_then(Value::as_str)
    }
}

/// An OpenAI-style tool call (`arguments` is a JSON string).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolCall {
    /// Call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Position among the calls (streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// `function`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The function and its arguments.
    #[serde(default)]
    pub function: FunctionCall,
}

/// The function of an OpenAI [`ToolCall`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FunctionCall {
    /// Function name.
    #[serde(default)]
    pub name: String,
    /// Arguments as JSON text.
    #[serde(default)]
    pub arguments: String,
}

/// `stream_options`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StreamOptions {
    /// Send a final chunk with `usage` and no choices.
    #[serde(default)]
    pub include_usage: bool,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatCompletionRequest {
    /// Model name (the client's `default_model` when empty).
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Set by the client method (`openai_chat` sends false, `openai_chat_stream` true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// `stream_options` (see [`ChatCompletionRequest::include_usage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate (`num_predict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Sampling temperature (server default 1.0 on this route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling (server default 1.0 on this route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Stop sequence(s): a string or an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Value>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// `{"type":"json_object"}` or `{"type":"json_schema",...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Tools, OpenAI shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// `none`, `minimal`, `low`, `medium`, `high`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
}

impl ChatCompletionRequest {
    /// A request for `model` with `messages`.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        Self {
            model: model.into(),
            messages,
            ..Self::default()
        }
    }

    /// Asks for a final usage chunk on streams (`stream_options.include_usage`).
    #[must_use]
    pub fn include_usage(mut self, on: bool) -> Self {
        self.stream_options = Some(StreamOptions { include_usage: on });
        self
    }

    /// Sets `max_tokens`.
    #[must_use]
    pub fn max_tokens(mut self, n: u64) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Sets `temperature`.
    #[must_use]
    pub fn temperature(mut self, t: f64) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Sets `seed`.
    #[must_use]
    pub fn seed(mut self, s: i64) -> Self {
        self.seed = Some(s);
        self
    }

    /// Sets `response_format`.
    #[must_use]
    pub fn response_format(mut self, f: Value) -> Self {
        self.response_format = Some(f);
        self
    }
}

/// A choice of a [`ChatCompletion`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Choice {
    /// Index (always 0 with Ollama).
    #[serde(default)]
    pub index: u32,
    /// The answer.
    #[serde(default)]
    pub message: ChatMessage,
    /// `stop`, `length` or `tool_calls`.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The answer of a non-streamed `/v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatCompletion {
    /// `chatcmpl-<n>`; not unique with Ollama, do not key on it.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// Model.
    #[serde(default)]
    pub model: String,
    /// `fp_ollama`.
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    /// Choices.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub choices: Vec<Choice>,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Fields this type does not name, kept as sent: server extensions such as
    /// llama.cpp's per-request `timings` (see [`ChatCompletion::extension`]).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl ChatCompletion {
    /// A field this type does not name (a server extension), e.g. `"timings"`.
    pub fn extension(&self, key: &str) -> Option<&Value> {
        self.extra.get(key)
    }

    /// The text of the first choice, if any.
    pub fn text(&self) -> Option<&str> {
        self.choices.first().and_then(|c| c.message.text())
    }
}

/// The delta of a streamed choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Delta {
    /// `assistant` (first chunk only on new servers, every chunk on old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The next piece of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The next piece of reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// A choice of a [`ChatCompletionChunk`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChunkChoice {
    /// Index.
    #[serde(default)]
    pub index: u32,
    /// What this chunk adds.
    #[serde(default)]
    pub delta: Delta,
    /// Set on the finishing chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// One SSE event of a streamed `/v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatCompletionChunk {
    /// `chatcmpl-<n>`.
    #[serde(default)]
    pub id: String,
    /// `chat.completion.chunk`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds, fixed for the stream.
    #[serde(default)]
    pub created: i64,
    /// Model.
    #[serde(default)]
    pub model: String,
    /// `fp_ollama`.
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    /// Choices; empty on the usage chunk.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub choices: Vec<ChunkChoice>,
    /// Present on the final usage chunk when `include_usage` was asked.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Fields this type does not name, kept as sent: server extensions such as
    /// llama.cpp's `timings` on the final usage chunk.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl ChatCompletionChunk {
    /// A field this type does not name (a server extension), e.g. `"timings"`.
    pub fn extension(&self, key: &str) -> Option<&Value> {
        self.extra.get(key)
    }

    /// The content text this chunk adds (empty when none).
    pub fn content(&self) -> &str {
        self.choices
            .first()
            .and_then(|c| c.delta.content.as_deref())
            .unwrap_or("")
    }

    /// The finish reason, on the chunk that carries it.
    pub fn finish_reason(&self) -> Option<&str> {
        self.choices.iter().find_map(|c| c.finish_reason.as_deref())
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_chunk_styles_parse() {
        let new_style = [
            r#"{"id":"chatcmpl-7","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-7","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"id":"chatcmpl-7","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}"#,
        ];
        let chunks: Vec<ChatCompletionChunk> = new_style
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect();
        assert_eq!(chunks[0].content(), "Hel");
        assert_eq!(chunks[1].finish_reason(), Some("stop"));
        assert_eq!(chunks[2].usage.unwrap().total_tokens, 14);
        let old = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}"#;
        let c: ChatCompletionChunk = serde_json::from_str(old).unwrap();
        assert_eq!(c.finish_reason(), Some("stop"));
    }

    #[test]
    fn server_extensions_are_kept() {
        let chunk = r#"{"choices":[],"object":"chat.completion.chunk","usage":{"prompt_tokens":29,"completion_tokens":4,"total_tokens":33,"prompt_tokens_details":{"cached_tokens":24}},"timings":{"cache_n":24,"prompt_n":5,"predicted_n":4,"predicted_ms":66.2}}"#;
        let c: ChatCompletionChunk = serde_json::from_str(chunk).unwrap();
        assert_eq!(c.usage.unwrap().completion_tokens, 4);
        assert_eq!(c.extension("timings").unwrap()["predicted_n"], 4);
        assert!(
            c.extension("object").is_none(),
            "named fields are not duplicated"
        );
        let whole = r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"timings":{"prompt_n":3}}"#;
        let w: ChatCompletion = serde_json::from_str(whole).unwrap();
        assert_eq!(w.text(), Some("hi"));
        assert_eq!(w.extension("timings").unwrap()["prompt_n"], 3);
        let back = serde_json::to_value(&w).unwrap();
        assert_eq!(back["timings"]["prompt_n"], 3, "extensions serialize back");
    }

    #[test]
    fn request_serializes_only_what_is_set() {
        let r = ChatCompletionRequest::new("m", vec![ChatMessage::user("hi")]).include_usage(true);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}"#
        );
    }
}
