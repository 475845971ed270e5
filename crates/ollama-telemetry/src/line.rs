//! The JSONL line of one request event, written by hand on the writer thread.
//!
//! The derived `serde` serialiser escaped every key and went through the generic
//! `Serializer` for every value; at tens of thousands of events per second that was most of
//! the writer thread's work (~8k instructions an event), on cores the requests need. This
//! writer emits the keys as fixed byte strings, in the field order of
//! [`RequestEvent`](crate::RequestEvent), and escapes only the values. Each run of constant
//! text (closing quote, key, opening quote; a `null` or boolean and the next key) is one
//! append, and an `InstrumentedClient`'s timestamp and request id are formatted straight
//! into the line, since an append costs about as much as the bytes it copies here.
//!
//! Invariant: the bytes are exactly those of `serde_json::to_writer(&RequestEvent)`: same
//! keys, order, escapes, number formatting (serde_json's own formatter; non-finite floats
//! as `null`) and left-out optional keys. A property test holds it to that, so the format in
//! docs/SCHEMAS.md and readers that deserialise `RequestEvent` are unaffected.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use serde_json::ser::{CompactFormatter, Formatter};

use crate::event::Outcome;

/// A string value: text to escape, or text known to need no escape (this crate's own
/// constants, or text escaped once in advance), copied as is.
#[derive(Clone, Copy)]
pub(crate) enum Text<'a> {
    Escape(&'a str),
    Verbatim(&'a str),
}

/// The first three values of a line: `event`, `timestamp`, `request_id`.
pub(crate) enum Head<'a> {
    /// A caller's [`RequestEvent`](crate::RequestEvent): its strings, escaped.
    Escape {
        event: &'a str,
        timestamp: &'a str,
        request_id: &'a str,
    },
    /// A request an `InstrumentedClient` finished: `ollama_request`, its finish time and
    /// `<id_prefix><number>`, formatted straight into the line (none of it needs escapes).
    Finished {
        timestamps: &'a mut TimestampFormat,
        at: SystemTime,
        id_prefix: &'a str,
        number: u64,
    },
}

/// One event's values, borrowed: from a caller's [`RequestEvent`](crate::RequestEvent), or
/// from a finished request the writer formats itself.
pub(crate) struct EventFields<'a> {
    pub(crate) head: Head<'a>,
    pub(crate) client_type: Text<'a>,
    pub(crate) operation: Text<'a>,
    pub(crate) endpoint: Text<'a>,
    pub(crate) model: Option<Text<'a>>,
    pub(crate) stream: bool,
    /// `None`: the outcome's own text (what an `InstrumentedClient` writes).
    pub(crate) status: Option<Text<'a>>,
    pub(crate) outcome: Outcome,
    pub(crate) latency_ms: f64,
    pub(crate) ttft_ms: Option<f64>,
    pub(crate) total_duration_ms: Option<f64>,
    pub(crate) model_load_ms: Option<f64>,
    pub(crate) model_warm_start: Option<bool>,
    pub(crate) prompt_eval_ms: Option<f64>,
    pub(crate) eval_ms: Option<f64>,
    pub(crate) queue_wait_ms: Option<f64>,
    pub(crate) prompt_chars: Option<u64>,
    pub(crate) prompt_eval_count: Option<u64>,
    pub(crate) generation_eval_count: Option<u64>,
    pub(crate) tokens_per_second: Option<f64>,
    pub(crate) done_reason: Option<Text<'a>>,
    pub(crate) options: Option<&'a Value>,
    pub(crate) prompt: Option<&'a str>,
    pub(crate) error_type: Option<&'a str>,
    pub(crate) error_message: Option<&'a str>,
    pub(crate) http_status: Option<u16>,
}

/// Bytes a line without prompt, options or error takes at most, reserved up front so the
/// appends below do not grow the buffer one by one.
const TYPICAL_LINE_BYTES: usize = 1024;

impl EventFields<'_> {
    /// Appends the JSON object (without a newline) to `out`. Writing into a `Vec` cannot
    /// fail; only serialising a caller's `options` value could, in theory.
    ///
    /// Every run of constant text (a key with the quotes and punctuation around it, and a
    /// constant value with the next key) is one append: the keys are fixed, and the values
    /// written as constants (`null`, booleans, the outcome) are joined to them.
    pub(crate) fn write(self, out: &mut Vec<u8>) -> io::Result<()> {
        out.reserve(TYPICAL_LINE_BYTES);
        match self.head {
            Head::Escape {
                event,
                timestamp,
                request_id,
            } => {
                out.extend_from_slice(b"{\"event\":\"");
                string_body(out, event);
                out.extend_from_slice(b"\",\"timestamp\":\"");
                string_body(out, timestamp);
                out.extend_from_slice(b"\",\"request_id\":\"");
                string_body(out, request_id);
            }
            Head::Finished {
                timestamps,
                at,
                id_prefix,
                number,
            } => {
                out.extend_from_slice(b"{\"event\":\"ollama_request\",\"timestamp\":\"");
                timestamps.write(out, at);
                out.extend_from_slice(b"\",\"request_id\":\"");
                out.extend_from_slice(id_prefix.as_bytes());
                CompactFormatter.write_u64(out, number)?;
            }
        }
        out.extend_from_slice(b"\",\"client_type\":\"");
        body(out, self.client_type);
        out.extend_from_slice(b"\",\"operation\":\"");
        body(out, self.operation);
        out.extend_from_slice(b"\",\"endpoint\":\"");
        body(out, self.endpoint);
        if let Some(model) = self.model {
            out.extend_from_slice(b"\",\"model\":\"");
            body(out, model);
            out.extend_from_slice(b"\",\"stream\":");
        } else {
            out.extend_from_slice(b"\",\"model\":null,\"stream\":");
        }
        let outcome: &[u8] = match self.outcome {
            Outcome::Success => b"success\",\"latency_ms\":",
            Outcome::Error => b"error\",\"latency_ms\":",
            Outcome::Abandoned => b"abandoned\",\"latency_ms\":",
        };
        if let Some(status) = self.status {
            out.extend_from_slice(if self.stream {
                b"true,\"status\":\""
            } else {
                b"false,\"status\":\""
            });
            body(out, status);
            out.extend_from_slice(b"\",\"outcome\":\"");
        } else {
            // The status is the outcome's text: the whole run is constant.
            out.extend_from_slice(match (self.stream, self.outcome) {
                (true, Outcome::Success) => b"true,\"status\":\"success\",\"outcome\":\"",
                (true, Outcome::Error) => b"true,\"status\":\"error\",\"outcome\":\"",
                (true, Outcome::Abandoned) => b"true,\"status\":\"abandoned\",\"outcome\":\"",
                (false, Outcome::Success) => b"false,\"status\":\"success\",\"outcome\":\"",
                (false, Outcome::Error) => b"false,\"status\":\"error\",\"outcome\":\"",
                (false, Outcome::Abandoned) => b"false,\"status\":\"abandoned\",\"outcome\":\"",
            });
        }
        out.extend_from_slice(outcome);
        float(out, self.latency_ms)?;
        opt_float(out, b",\"ttft_ms\":null", self.ttft_ms)?;
        opt_float(out, b",\"total_duration_ms\":null", self.total_duration_ms)?;
        opt_float(out, b",\"model_load_ms\":null", self.model_load_ms)?;
        out.extend_from_slice(match self.model_warm_start {
            Some(true) => b",\"model_warm_start\":true",
            Some(false) => b",\"model_warm_start\":false",
            None => b",\"model_warm_start\":null",
        });
        opt_float(out, b",\"prompt_eval_ms\":null", self.prompt_eval_ms)?;
        opt_float(out, b",\"eval_ms\":null", self.eval_ms)?;
        opt_float(out, b",\"queue_wait_ms\":null", self.queue_wait_ms)?;
        opt_integer(out, b",\"prompt_chars\":null", self.prompt_chars)?;
        opt_integer(out, b",\"prompt_eval_count\":null", self.prompt_eval_count)?;
        opt_integer(
            out,
            b",\"generation_eval_count\":null",
            self.generation_eval_count,
        )?;
        opt_float(out, b",\"tokens_per_second\":null", self.tokens_per_second)?;
        if let Some(reason) = self.done_reason {
            out.extend_from_slice(b",\"done_reason\":\"");
            body(out, reason);
            out.extend_from_slice(b"\",\"options\":");
        } else {
            out.extend_from_slice(b",\"done_reason\":null,\"options\":");
        }
        match self.options {
            Some(value) => serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?,
            None => out.extend_from_slice(b"null"),
        }
        // Left out when they do not apply, as `skip_serializing_if` does for the type.
        if let Some(prompt) = self.prompt {
            out.extend_from_slice(b",\"prompt\":");
            string(out, prompt);
        }
        if let Some(kind) = self.error_type {
            out.extend_from_slice(b",\"error_type\":");
            string(out, kind);
        }
        if let Some(message) = self.error_message {
            out.extend_from_slice(b",\"error_message\":");
            string(out, message);
        }
        if let Some(status) = self.http_status {
            out.extend_from_slice(b",\"http_status\":");
            CompactFormatter.write_u16(out, status)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// `key_null` is a key followed by `null`: written whole when the value is absent, else
/// up to the `null`, followed by the value.
#[inline]
fn key_of(key_null: &[u8]) -> &[u8] {
    key_null
        .get(..key_null.len().saturating_sub(b"null".len()))
        .unwrap_or_default()
}

/// serde_json writes non-finite floats as `null`, and finite ones with its formatter.
fn float(out: &mut Vec<u8>, v: f64) -> io::Result<()> {
    if v.is_finite() {
        CompactFormatter.write_f64(out, v)
    } else {
        out.extend_from_slice(b"null");
        Ok(())
    }
}

#[inline]
fn opt_float(out: &mut Vec<u8>, key_null: &[u8], v: Option<f64>) -> io::Result<()> {
    if let Some(v) = v {
        out.extend_from_slice(key_of(key_null));
        float(out, v)
    } else {
        out.extend_from_slice(key_null);
        Ok(())
    }
}

#[inline]
fn opt_integer(out: &mut Vec<u8>, key_null: &[u8], v: Option<u64>) -> io::Result<()> {
    if let Some(v) = v {
        out.extend_from_slice(key_of(key_null));
        CompactFormatter.write_u64(out, v)
    } else {
        out.extend_from_slice(key_null);
        Ok(())
    }
}

/// A string value's content (the caller writes the quotes, joined to the keys).
fn body(out: &mut Vec<u8>, t: Text<'_>) {
    match t {
        Text::Escape(s) => string_body(out, s),
        Text::Verbatim(s) => out.extend_from_slice(s.as_bytes()),
    }
}

/// The escaped content of a JSON string (without its quotes), for text written often.
pub(crate) fn escaped(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    string_body(&mut out, s);
    // Escaping only adds ASCII to valid UTF-8; the fallback is unreachable.
    String::from_utf8(out).unwrap_or_default()
}

/// A JSON string, quoted.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    string_body(out, s);
    out.push(b'"');
}

/// The content of a JSON string (without its quotes) with serde_json's escapes: `\"`,
/// `\\`, the short forms `\b \f \n \r \t`, and `\u00xx` (lower-case hex) for the other
/// control characters; everything else, including DEL and non-ASCII, as is.
fn string_body(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    // Most values need no escape at all: skip over them eight bytes at a time.
    let mut start = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        if needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        start += 8;
    }
    // The last few bytes too, padded with a letter.
    let tail = &bytes[start..];
    if tail.len() < 8 {
        let mut word = [b'a'; 8];
        word[..tail.len()].copy_from_slice(tail);
        if !needs_escape(u64::from_le_bytes(word)) {
            start = bytes.len();
        }
    }
    out.extend_from_slice(&bytes[..start]);
    if start == bytes.len() {
        return;
    }
    let clean = start;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether any of the eight bytes in `word` is a control character, `"` or a backslash (the
/// classic "has a byte less than n" and "has a zero byte" bit tricks; exact as a yes/no).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    (below(word, 0x20) | below(quote, 1) | below(backslash, 1)) != 0
}

/// Formats `timestamp` values: RFC 3339 UTC with microseconds, as
/// `chrono::DateTime::to_rfc3339_opts(SecondsFormat::Micros, true)` writes them.
///
/// Calendar arithmetic and chrono's formatting run once per second of event time: the text
/// up to the seconds is kept, and only the microseconds are written for each event.
pub(crate) struct TimestampFormat {
    /// The whole second `prefix` belongs to, since the Unix epoch.
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS.` of `second`.
    prefix: String,
}

impl TimestampFormat {
    pub(crate) fn new() -> Self {
        Self {
            second: None,
            prefix: String::with_capacity(32),
        }
    }

    /// Appends the timestamp of `at` to `out`.
    pub(crate) fn write(&mut self, out: &mut Vec<u8>, at: SystemTime) {
        let Ok(since_epoch) = at.duration_since(UNIX_EPOCH) else {
            // Before 1970: not worth a cache.
            out.extend_from_slice(chrono_format(at).as_bytes());
            return;
        };
        let second = since_epoch.as_secs();
        if self.second != Some(second) {
            let whole = UNIX_EPOCH + std::time::Duration::from_secs(second);
            self.prefix = chrono_format(whole);
            // chrono always writes six digits of microseconds and the `Z`.
            self.prefix.truncate(self.prefix.len() - "000000Z".len());
            self.second = Some(second);
        }
        out.extend_from_slice(self.prefix.as_bytes());
        let mut micros = since_epoch.subsec_micros();
        let mut digits = *b"000000Z";
        for d in digits[..6].iter_mut().rev() {
            *d = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        out.extend_from_slice(&digits);
    }
}

fn chrono_format(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_match_chrono_across_seconds_and_years() {
        let mut format = TimestampFormat::new();
        for secs in [
            0_u64,
            1,
            59,
            951_782_400,
            1_798_761_599,
            1_798_761_600,
            4_102_444_800,
            253_402_300_799,
        ] {
            for nanos in [0, 999, 1_000, 123_456_789, 999_999_999] {
                let at = UNIX_EPOCH + Duration::new(secs, nanos);
                let mut out = Vec::new();
                format.write(&mut out, at);
                assert_eq!(out, chrono_format(at).as_bytes(), "{secs}.{nanos}");
            }
        }
        let before = UNIX_EPOCH - Duration::new(86_400, 500_000);
        let mut out = Vec::new();
        format.write(&mut out, before);
        assert_eq!(out, chrono_format(before).as_bytes());
    }

    #[test]
    fn the_word_test_flags_exactly_the_bytes_json_escapes() {
        for b in 0..=255u8 {
            let escaped = b < 0x20 || b == b'"' || b == b'\\';
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                assert_eq!(
                    needs_escape(u64::from_le_bytes(word)),
                    escaped,
                    "{b:#x} at {at}"
                );
            }
        }
        // Non-ASCII bytes (UTF-8 sequences) are never flagged.
        assert!(!needs_escape(u64::from_le_bytes(*b"\x80\xff !#[]~")));
    }
}
