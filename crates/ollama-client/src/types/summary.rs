//! [`ResponseSummary`]: a native answer measured instead of read.
//!
//! A load generator, a health probe or a monitor needs to know how an answer went (how
//! much text and thinking it carried, whether it is the final item, why it stopped, the
//! server's timings and counts), not the text itself. Parsing the full
//! [`GenerateResponse`](super::GenerateResponse) allocates every string and the token
//! `context`; that was most of the client's parse cost per load-test request. This type
//! reads the same JSON, checks all of it, and keeps only the measurements: strings are
//! measured where they lie (no copy unless they hold escapes, which `serde_json` decodes
//! into its scratch buffer), arrays are counted or skipped.
//!
//! One type serves both native endpoints: `/api/generate` carries its text in `response`,
//! `thinking` and `tool_calls`; `/api/chat` in `message.content`, `message.thinking` and
//! `message.tool_calls`. Tests pin it to the full types: whenever a full type parses, the
//! summary parses to the same measurements.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Metrics;
use super::de::{KeySeed, Nanos};

/// How a native generate or chat answer (or one item of its stream) went, without its
/// text. Returned by the client's `*_summary` methods; built from a full answer with
/// `From`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseSummary {
    /// Bytes (UTF-8) of answer text: `response` of generate, `message.content` of chat.
    pub text_bytes: usize,
    /// Bytes (UTF-8) of thinking text.
    pub thinking_bytes: usize,
    /// Tool calls in this item.
    pub tool_calls: usize,
    /// True on the final item (`done: true`).
    pub done: bool,
    /// `stop`, `length`, `load` or `unload` on the final item.
    pub done_reason: Option<String>,
    /// The server's timings and counts (all `None` on non-final items).
    pub metrics: Metrics,
}

impl ResponseSummary {
    /// True when this item carries any generated output: text, thinking or a tool call.
    pub fn has_output(&self) -> bool {
        self.text_bytes > 0 || self.thinking_bytes > 0 || self.tool_calls > 0
    }
}

impl From<&super::GenerateResponse> for ResponseSummary {
    fn from(r: &super::GenerateResponse) -> Self {
        Self {
            text_bytes: r.response.len(),
            thinking_bytes: r.thinking.as_ref().map_or(0, String::len),
            tool_calls: r.tool_calls.as_ref().map_or(0, Vec::len),
            done: r.done,
            done_reason: r.done_reason.clone(),
            metrics: r.metrics(),
        }
    }
}

impl From<&super::ChatResponse> for ResponseSummary {
    fn from(r: &super::ChatResponse) -> Self {
        let m = &r.message;
        Self {
            text_bytes: m.content.len(),
            thinking_bytes: m.thinking.as_ref().map_or(0, String::len),
            tool_calls: m.tool_calls.as_ref().map_or(0, Vec::len),
            done: r.done,
            done_reason: r.done_reason.clone(),
            metrics: r.metrics(),
        }
    }
}

/// Reads a string (`null` allowed when `nullable`) as its length in bytes.
#[derive(Clone, Copy)]
struct Length {
    nullable: bool,
}

impl<'de> DeserializeSeed<'de> for Length {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        if self.nullable {
            d.deserialize_option(self)
        } else {
            d.deserialize_str(self)
        }
    }
}

impl<'de> Visitor<'de> for Length {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.nullable {
            "a string or null"
        } else {
            "a string"
        })
    }

    fn visit_str<E>(self, v: &str) -> Result<usize, E> {
        Ok(v.len())
    }

    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_none<E>(self) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(Length { nullable: false })
    }
}

/// Reads `tool_calls` (`null` or an array) as its length; the calls themselves are skipped.
struct Count;

impl<'de> DeserializeSeed<'de> for Count {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Count {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array or null")
    }

    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_none<E>(self) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

/// The keys this type reads; everything else is skipped.
#[derive(Clone, Copy)]
enum Key {
    Response,
    /// A chat message's `content`: the answer text, as `response` in generate.
    Content,
    Thinking,
    ToolCalls,
    Message,
    Done,
    DoneReason,
    TotalDuration,
    LoadDuration,
    PromptEvalCount,
    PromptEvalCachedCount,
    PromptEvalDuration,
    EvalCount,
    EvalDuration,
    Other,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Response => "response",
            Key::Content => "content",
            Key::Thinking => "thinking",
            Key::ToolCalls => "tool_calls",
            Key::Message => "message",
            Key::Done => "done",
            Key::DoneReason => "done_reason",
            Key::TotalDuration => "total_duration",
            Key::LoadDuration => "load_duration",
            Key::PromptEvalCount => "prompt_eval_count",
            Key::PromptEvalCachedCount => "prompt_eval_cached_count",
            Key::PromptEvalDuration => "prompt_eval_duration",
            Key::EvalCount => "eval_count",
            Key::EvalDuration => "eval_duration",
            Key::Other => "",
        }
    }
}

fn top_key(k: &[u8]) -> Key {
    match k {
        b"response" => Key::Response,
        b"thinking" => Key::Thinking,
        b"tool_calls" => Key::ToolCalls,
        b"message" => Key::Message,
        b"done" => Key::Done,
        b"done_reason" => Key::DoneReason,
        b"total_duration" => Key::TotalDuration,
        b"load_duration" => Key::LoadDuration,
        b"prompt_eval_count" => Key::PromptEvalCount,
        b"prompt_eval_cached_count" => Key::PromptEvalCachedCount,
        b"prompt_eval_duration" => Key::PromptEvalDuration,
        b"eval_count" => Key::EvalCount,
        b"eval_duration" => Key::EvalDuration,
        _ => Key::Other,
    }
}

/// The keys of a chat `message` this type reads.
fn message_key(k: &[u8]) -> Key {
    match k {
        b"content" => Key::Content,
        b"thinking" => Key::Thinking,
        b"tool_calls" => Key::ToolCalls,
        _ => Key::Other,
    }
}

/// Fails on a known key seen twice, as the full types' parsers do.
fn first_time<E: de::Error>(seen: &mut u32, key: Key) -> Result<(), E> {
    if matches!(key, Key::Other) {
        return Ok(());
    }
    let bit = 1 << (key as u32);
    if *seen & bit != 0 {
        return Err(E::duplicate_field(key.name()));
    }
    *seen |= bit;
    Ok(())
}

/// Reads the value of an output key (the answer text, thinking or tool calls: top-level in
/// generate, inside `message` in chat) into `out`; false, with the value unread, for any
/// other key.
fn read_output<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: Key,
    out: &mut ResponseSummary,
) -> Result<bool, A::Error> {
    match key {
        Key::Response | Key::Content => {
            out.text_bytes = map.next_value_seed(Length { nullable: false })?;
        }
        Key::Thinking => out.thinking_bytes = map.next_value_seed(Length { nullable: true })?,
        Key::ToolCalls => out.tool_calls = map.next_value_seed(Count)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Measures a chat `message` into the summary's text fields.
struct MessageSeed<'a>(&'a mut ResponseSummary);

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct Message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.0;
        let mut seen = 0;
        while let Some(key) = map.next_key_seed(KeySeed(message_key))? {
            first_time(&mut seen, key)?;
            if !read_output(&mut map, key, out)? {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct Fields;

impl<'de> Visitor<'de> for Fields {
    type Value = ResponseSummary;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct ResponseSummary")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ResponseSummary, A::Error> {
        let mut out = ResponseSummary::default();
        let mut seen = 0;
        while let Some(key) = map.next_key_seed(KeySeed(top_key))? {
            first_time(&mut seen, key)?;
            if read_output(&mut map, key, &mut out)? {
                continue;
            }
            let m = &mut out.metrics;
            match key {
                Key::Message => map.next_value_seed(MessageSeed(&mut out))?,
                Key::Done => out.done = map.next_value()?,
                Key::DoneReason => out.done_reason = map.next_value()?,
                Key::TotalDuration => m.total_duration = map.next_value_seed(Nanos)?,
                Key::LoadDuration => m.load_duration = map.next_value_seed(Nanos)?,
                Key::PromptEvalCount => m.prompt_eval_count = map.next_value()?,
                Key::PromptEvalCachedCount => m.prompt_eval_cached_count = map.next_value()?,
                Key::PromptEvalDuration => m.prompt_eval_duration = map.next_value_seed(Nanos)?,
                Key::EvalCount => m.eval_count = map.next_value()?,
                Key::EvalDuration => m.eval_duration = map.next_value_seed(Nanos)?,
                // The output keys were read above.
                Key::Response | Key::Content | Key::Thinking | Key::ToolCalls | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for ResponseSummary {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::super::de::tests::{object, typed_object};
    use super::super::{ChatResponse, GenerateResponse};
    use super::*;

    /// The full type whose fields `json` uses: chat when it has a `message` and none of
    /// generate's text keys, generate when it has no `message`; `None` for a mix, which no
    /// server sends (the summary reads both families' keys).
    fn full_summary(json: &str) -> Option<Result<ResponseSummary, serde_json::Error>> {
        // Keys only: the values may not fit `serde_json::Value` (`1e400`).
        #[allow(clippy::zero_sized_map_values)]
        let keys: BTreeMap<String, IgnoredAny> = serde_json::from_str(json).unwrap_or_default();
        let generate_text = ["response", "thinking", "tool_calls"]
            .iter()
            .any(|k| keys.contains_key(*k));
        if !keys.contains_key("message") {
            Some(serde_json::from_str::<GenerateResponse>(json).map(|r| (&r).into()))
        } else if !generate_text {
            Some(serde_json::from_str::<ChatResponse>(json).map(|r| (&r).into()))
        } else {
            None
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Whenever the full type parses, the summary parses to its measurements. The
        /// summary may accept what the full type rejects (a wrongly typed `model`, say):
        /// it reads fewer fields.
        #[test]
        fn summary_measures_what_the_full_type_reads(
            json in prop_oneof![object(), typed_object()]
        ) {
            if let Some(Ok(full)) = full_summary(&json) {
                let lean = serde_json::from_str::<ResponseSummary>(&json);
                prop_assert_eq!(lean.ok(), Some(full), "{}", json);
            }
        }
    }

    #[test]
    fn text_is_measured_decoded() {
        let generate = r#"{"model":"m","created_at":"t","response":"caf\u00e9 \"x\"\n",
            "thinking":null,"done":true,"done_reason":"stop","context":[1,2,3],
            "total_duration":5,"eval_count":2,"eval_duration":1.5}"#;
        let s: ResponseSummary = serde_json::from_str(generate).unwrap();
        assert_eq!(s.text_bytes, "café \"x\"\n".len());
        assert_eq!((s.thinking_bytes, s.tool_calls), (0, 0));
        assert!(s.done && s.has_output());
        assert_eq!(s.done_reason.as_deref(), Some("stop"));
        assert_eq!(s.metrics.eval_count, Some(2));
        assert_eq!(
            s.metrics.eval_duration,
            Some(std::time::Duration::from_nanos(1))
        );

        let chat = r#"{"message":{"role":"assistant","content":"","thinking":"hm",
            "tool_calls":[{"function":{"name":"f","arguments":{}}},{}]},"done":false}"#;
        let s: ResponseSummary = serde_json::from_str(chat).unwrap();
        assert_eq!((s.text_bytes, s.thinking_bytes, s.tool_calls), (0, 2, 2));
        assert!(!s.done && s.has_output());
        assert!(!ResponseSummary::default().has_output());
    }

    #[test]
    fn bad_input_names_the_field() {
        let e = |json| {
            serde_json::from_str::<ResponseSummary>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(e(r#"{"response":1}"#).contains("expected a string"));
        assert!(e(r#"{"done":true,"done":true}"#).contains("duplicate field `done`"));
        assert!(e(r#"{"message":{"content":null}}"#).contains("expected a string"));
        assert!(
            e(r#"{"message":{"content":"a","content":"b"}}"#).contains("duplicate field `content`")
        );
        assert!(e(r#"{"tool_calls":{}}"#).contains("expected an array or null"));
        assert!(e(r#"{"context":[1,"#).contains("EOF"));
        assert!(e("[]").contains("expected struct ResponseSummary"));
    }
}
