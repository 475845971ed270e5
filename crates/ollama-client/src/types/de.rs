//! Hand-written `Deserialize` for [`GenerateResponse`] and [`ChatResponse`].
//!
//! These two are parsed once per request (and once per streamed chunk), so their parse
//! cost shows up in every load-test number. Against the derive, with the same leniency
//! (unknown fields ignored, missing fields default, `null` options are `None`):
//!
//! - `context` (`Option<Vec<i64>>`) starts at a capacity of 64: `serde_json` gives no
//!   length hint, so the Vec grew from 0 through four reallocations for a short answer;
//! - durations are read as integers as they come ([`Nanos`]), not through `Option<f64>`
//!   (floats truncated, negative or non-finite values and `null` are `None`, as before);
//! - keys are read as bytes (`deserialize_bytes`, no UTF-8 check) and matched into a
//!   field enum; fields are written in place into `Default::default()`.
//!
//! Callgrind, parse and drop of a 400-byte `/api/generate` answer: 13,950 instructions
//! with the derive, 12,780 with only the first two changes (as `deserialize_with` on the
//! derive), 11,930 with all three; `ChatResponse` (no `context`): 9,470, 9,210, 8,460. In
//! `bench_probe one --variant ollama_client` against an instant `ollama-sim`, `parse_item`
//! went from 14,370 to 11,190 instructions per request (-22%) and the whole request from
//! 39,480 to 35,240.
//!
//! Property tests below pin both types to their previous derived impls. One difference
//! is deliberate: a JSON array in place of the object (the derive maps it to fields by
//! position, which no server sends) is now an error.

use std::fmt;
use std::time::Duration;

use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{ChatResponse, GenerateResponse};

/// Reads a Go duration (integer nanoseconds) leniently: floats are truncated, negative and
/// non-finite values and `null` are `None`.
pub(super) struct Nanos;

impl<'de> DeserializeSeed<'de> for Nanos {
    type Value = Option<Duration>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nanos {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration in nanoseconds")
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Some(Duration::from_nanos(n)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(n).ok().map(Duration::from_nanos))
    }

    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // Checked, saturating.
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok((n.is_finite() && n >= 0.0).then(|| Duration::from_nanos(n as u64)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Reads `context` (`null` or an array of token ids) into a Vec pre-sized for a short answer.
struct Tokens;

impl<'de> DeserializeSeed<'de> for Tokens {
    type Value = Option<Vec<i64>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

/// Capacity `context` starts from: one allocation for answers of up to 64 tokens.
const TOKENS_CAPACITY: usize = 64;

impl<'de> Visitor<'de> for Tokens {
    type Value = Option<Vec<i64>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("option")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(TokenSeq).map(Some)
    }
}

struct TokenSeq;

impl<'de> Visitor<'de> for TokenSeq {
    type Value = Vec<i64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // A length hint is trusted only up to a bound: the input controls it.
        let hint = seq.size_hint().map_or(TOKENS_CAPACITY, |n| n.min(4096));
        let mut v = Vec::with_capacity(hint);
        while let Some(t) = seq.next_element()? {
            v.push(t);
        }
        Ok(v)
    }
}

/// Reads a map key as bytes, without a UTF-8 check (keys with escapes arrive decoded
/// through `visit_str`), and maps it with the function it holds.
#[derive(Clone, Copy)]
pub(super) struct KeySeed<F>(pub(super) F);

impl<'de, F: Fn(&[u8]) -> K, K> DeserializeSeed<'de> for KeySeed<F> {
    type Value = K;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<F: Fn(&[u8]) -> K, K> Visitor<'_> for KeySeed<F> {
    type Value = K;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<K, E> {
        Ok((self.0)(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<K, E> {
        Ok((self.0)(v.as_bytes()))
    }
}

/// Implements `Deserialize` for a response struct from its field list: `key => field: seed`,
/// where `seed` reads the value (`PhantomData` for the field type's own `Deserialize`).
/// Fields start from `Default`, like `#[serde(default)]`; unknown keys are skipped; a
/// repeated known key is an error, as with the derive.
macro_rules! deserialize_response {
    ($ty:ident, $($key:literal => $field:ident: $seed:expr),* $(,)?) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[allow(non_camel_case_types)]
                #[derive(Clone, Copy)]
                enum Field { $($field,)* Unknown }

                struct Fields;

                impl<'de> Visitor<'de> for Fields {
                    type Value = $ty;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("struct ", stringify!($ty)))
                    }

                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                        let mut out = $ty::default();
                        let mut seen = 0u64;
                        let key = KeySeed(|v: &[u8]| match v {
                            $($key => Field::$field,)*
                            _ => Field::Unknown,
                        });
                        while let Some(field) = map.next_key_seed(key)? {
                            let bit = 1u64 << (field as u32);
                            if seen & bit != 0 {
                                let name = match field {
                                    $(Field::$field => stringify!($field),)*
                                    Field::Unknown => "",
                                };
                                if !name.is_empty() {
                                    return Err(de::Error::duplicate_field(name));
                                }
                            }
                            seen |= bit;
                            match field {
                                $(Field::$field => out.$field = map.next_value_seed($seed)?,)*
                                Field::Unknown => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(out)
                    }
                }

                d.deserialize_map(Fields)
            }
        }
    };
}

deserialize_response!(GenerateResponse,
    b"model" => model: PhantomData,
    b"created_at" => created_at: PhantomData,
    b"response" => response: PhantomData,
    b"thinking" => thinking: PhantomData,
    b"done" => done: PhantomData,
    b"done_reason" => done_reason: PhantomData,
    b"context" => context: Tokens,
    b"tool_calls" => tool_calls: PhantomData,
    b"logprobs" => logprobs: PhantomData,
    b"total_duration" => total_duration: Nanos,
    b"load_duration" => load_duration: Nanos,
    b"prompt_eval_count" => prompt_eval_count: PhantomData,
    b"prompt_eval_cached_count" => prompt_eval_cached_count: PhantomData,
    b"prompt_eval_duration" => prompt_eval_duration: Nanos,
    b"eval_count" => eval_count: PhantomData,
    b"eval_duration" => eval_duration: Nanos,
);

deserialize_response!(ChatResponse,
    b"model" => model: PhantomData,
    b"created_at" => created_at: PhantomData,
    b"message" => message: PhantomData,
    b"done" => done: PhantomData,
    b"done_reason" => done_reason: PhantomData,
    b"logprobs" => logprobs: PhantomData,
    b"total_duration" => total_duration: Nanos,
    b"load_duration" => load_duration: Nanos,
    b"prompt_eval_count" => prompt_eval_count: PhantomData,
    b"prompt_eval_cached_count" => prompt_eval_cached_count: PhantomData,
    b"prompt_eval_duration" => prompt_eval_duration: Nanos,
    b"eval_count" => eval_count: PhantomData,
    b"eval_duration" => eval_duration: Nanos,
);

#[cfg(test)]
pub(super) mod tests {
    //! Both types against derived twins that read these fields as before (`Option<f64>`
    //! durations, a plain `Option<Vec<i64>>` context).

    use proptest::prelude::*;
    use serde_json::Value;

    use super::super::{Message, ToolCall};
    use super::*;

    mod old_nanos {
        use super::{Deserialize, Deserializer, Duration};

        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        pub(super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            let v: Option<f64> = Option::deserialize(d)?;
            Ok(v.filter(|n| n.is_finite() && *n >= 0.0)
                .map(|n| Duration::from_nanos(n as u64)))
        }
    }

    #[derive(Deserialize)]
    struct GenerateTwin {
        #[serde(default)]
        model: String,
        #[serde(default)]
        created_at: String,
        #[serde(default)]
        response: String,
        #[serde(default)]
        thinking: Option<String>,
        #[serde(default)]
        done: bool,
        #[serde(default)]
        done_reason: Option<String>,
        #[serde(default)]
        context: Option<Vec<i64>>,
        #[serde(default)]
        tool_calls: Option<Vec<ToolCall>>,
        #[serde(default)]
        logprobs: Option<Value>,
        #[serde(default, with = "old_nanos")]
        total_duration: Option<Duration>,
        #[serde(default, with = "old_nanos")]
        load_duration: Option<Duration>,
        #[serde(default)]
        prompt_eval_count: Option<u64>,
        #[serde(default)]
        prompt_eval_cached_count: Option<u64>,
        #[serde(default, with = "old_nanos")]
        prompt_eval_duration: Option<Duration>,
        #[serde(default)]
        eval_count: Option<u64>,
        #[serde(default, with = "old_nanos")]
        eval_duration: Option<Duration>,
    }

    impl From<GenerateTwin> for GenerateResponse {
        fn from(t: GenerateTwin) -> Self {
            Self {
                model: t.model,
                created_at: t.created_at,
                response: t.response,
                thinking: t.thinking,
                done: t.done,
                done_reason: t.done_reason,
                context: t.context,
                tool_calls: t.tool_calls,
                logprobs: t.logprobs,
                total_duration: t.total_duration,
                load_duration: t.load_duration,
                prompt_eval_count: t.prompt_eval_count,
                prompt_eval_cached_count: t.prompt_eval_cached_count,
                prompt_eval_duration: t.prompt_eval_duration,
                eval_count: t.eval_count,
                eval_duration: t.eval_duration,
            }
        }
    }

    #[derive(Deserialize)]
    struct ChatTwin {
        #[serde(default)]
        model: String,
        #[serde(default)]
        created_at: String,
        #[serde(default)]
        message: Message,
        #[serde(default)]
        done: bool,
        #[serde(default)]
        done_reason: Option<String>,
        #[serde(default)]
        logprobs: Option<Value>,
        #[serde(default, with = "old_nanos")]
        total_duration: Option<Duration>,
        #[serde(default, with = "old_nanos")]
        load_duration: Option<Duration>,
        #[serde(default)]
        prompt_eval_count: Option<u64>,
        #[serde(default)]
        prompt_eval_cached_count: Option<u64>,
        #[serde(default, with = "old_nanos")]
        prompt_eval_duration: Option<Duration>,
        #[serde(default)]
        eval_count: Option<u64>,
        #[serde(default, with = "old_nanos")]
        eval_duration: Option<Duration>,
    }

    impl From<ChatTwin> for ChatResponse {
        fn from(t: ChatTwin) -> Self {
            Self {
                model: t.model,
                created_at: t.created_at,
                message: t.message,
                done: t.done,
                done_reason: t.done_reason,
                logprobs: t.logprobs,
                total_duration: t.total_duration,
                load_duration: t.load_duration,
                prompt_eval_count: t.prompt_eval_count,
                prompt_eval_cached_count: t.prompt_eval_cached_count,
                prompt_eval_duration: t.prompt_eval_duration,
                eval_count: t.eval_count,
                eval_duration: t.eval_duration,
            }
        }
    }

    /// A JSON string with escapes: serde_json's own escaping plus `\uXXXX` and `\/`.
    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            "[a-z:. ]{0,12}".prop_map(|s| format!("\"{s}\\u00e9\\/\\n\\\"\"")),
        ]
    }

    /// A value for any field: right or wrong type, `null`, numbers of every kind.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            string(),
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            // Integers that f64 holds exactly, so the old f64 path is exact too.
            (0u64..(1 << 53)).prop_map(|n| n.to_string()),
            (-(1i64 << 53)..0).prop_map(|n| n.to_string()),
            (-1e12f64..1e12).prop_map(|f| format!("{f:?}")),
            Just("1e400".to_owned()),
            Just("-0".to_owned()),
            proptest::collection::vec(any::<i64>(), 0..80).prop_map(|v| format!("{v:?}")),
            Just(r#"[{"function":{"name":"f","arguments":{"a":1}}}]"#.to_owned()),
            Just(r#"{"role":"assistant","content":"hi","thinking":"t"}"#.to_owned()),
            Just(r#"{"content":[1,{"x":null}]}"#.to_owned()),
            Just("[1,".to_owned()),
        ]
    }

    /// Known keys (some escaped), unknown keys, in any order, possibly repeated.
    pub(in crate::types) fn object() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            prop::sample::select(vec![
                "model",
                "created_at",
                "response",
                "thinking",
                "done",
                "done_reason",
                "context",
                "tool_calls",
                "logprobs",
                "message",
                "total_duration",
                "load_duration",
                "prompt_eval_count",
                "prompt_eval_cached_count",
                "prompt_eval_duration",
                "eval_count",
                "eval_duration",
                "remote_host",
                "Model",
                "r\\u00e9sponse",
                "mod\\u0065l",
                "eval_count\\n",
            ])
            .prop_map(str::to_owned),
            "[a-z_]{0,10}",
        ];
        proptest::collection::vec((key, value()), 0..14).prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        })
    }

    /// Mostly well-typed objects, so most cases parse: a value of the field's kind (or
    /// `null`) for each known key, in any order.
    pub(in crate::types) fn typed_object() -> impl Strategy<Value = String> {
        let text = prop_oneof![string(), Just("null".to_owned())];
        let number = prop_oneof![
            (0u64..(1 << 53)).prop_map(|n| n.to_string()),
            (-(1i64 << 53)..0).prop_map(|n| n.to_string()),
            (-1e12f64..1e12).prop_map(|f| format!("{f:?}")),
            Just("null".to_owned()),
        ];
        let count = prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            Just("null".to_owned())
        ];
        let field = prop_oneof![
            (Just("model"), string()),
            (Just("created_at"), string()),
            (Just("response"), string()),
            (Just("thinking"), text.clone()),
            (Just("done_reason"), text),
            (Just("done"), any::<bool>().prop_map(|b| b.to_string())),
            (
                Just("context"),
                proptest::collection::vec(any::<i64>(), 0..100).prop_map(|v| format!("{v:?}"))
            ),
            (Just("message"), value()),
            (Just("tool_calls"), value()),
            (Just("logprobs"), value()),
            (Just("remote_host"), value()),
            (Just("total_duration"), number.clone()),
            (Just("load_duration"), number.clone()),
            (Just("prompt_eval_duration"), number.clone()),
            (Just("eval_duration"), number),
            (Just("prompt_eval_count"), count.clone()),
            (Just("prompt_eval_cached_count"), count.clone()),
            (Just("eval_count"), count),
        ];
        proptest::collection::vec(field, 0..10).prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{ {} }}", body.join(" ,\n"))
        })
    }

    fn same<T, Twin>(json: &str) -> Result<(), TestCaseError>
    where
        T: for<'de> Deserialize<'de> + PartialEq + fmt::Debug,
        Twin: for<'de> Deserialize<'de> + Into<T>,
    {
        let new = serde_json::from_str::<T>(json);
        let old = serde_json::from_str::<Twin>(json).map(Into::into);
        match (new, old) {
            (Ok(new), Ok(old)) => prop_assert_eq!(new, old, "{}", json),
            (Err(_), Err(_)) => {}
            (new, old) => prop_assert!(false, "{json}: new {new:?}, derived {old:?}"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn generate_matches_the_derive(json in prop_oneof![object(), typed_object()]) {
            same::<GenerateResponse, GenerateTwin>(&json)?;
        }

        #[test]
        fn chat_matches_the_derive(json in prop_oneof![object(), typed_object()]) {
            same::<ChatResponse, ChatTwin>(&json)?;
        }
    }

    #[test]
    fn durations_read_as_before() {
        let r: GenerateResponse = serde_json::from_str(
            r#"{"total_duration":12.9,"load_duration":-1,"eval_duration":null,"prompt_eval_duration":18446744073709551615}"#,
        )
        .unwrap();
        assert_eq!(r.total_duration, Some(Duration::from_nanos(12)));
        assert_eq!(r.load_duration, None);
        assert_eq!(r.eval_duration, None);
        assert_eq!(r.prompt_eval_duration, Some(Duration::from_nanos(u64::MAX)));
        let e = serde_json::from_str::<GenerateResponse>(r#"{"done":true,"done":false}"#);
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("duplicate field `done`")
        );
        assert!(serde_json::from_str::<ChatResponse>(r#"{"model":1}"#).is_err());
        assert!(serde_json::from_str::<ChatResponse>("[]").is_err());
    }
}
