//! The JSONL line of one request event, written by hand on the writer thread.
//!
//! The derived `serde` serialiser escaped every key and went through the generic
//! `Serializer` for every value; at tens of thousands of events per second that was most of
//! the writer thread's work (~8k instructions an event), on cores the requests need. This
//! writer emits the keys as fixed byte strings, in the field order of
//! [`RequestEvent`](crate::RequestEvent), and escapes only the values.
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
/// constants, digits, or text escaped once in advance), copied as is.
#[derive(Clone, Copy)]
pub(crate) enum Text<'a> {
    Escape(&'a str),
    Verbatim(&'a str),
}

/// One event's values, borrowed: from a caller's [`RequestEvent`](crate::RequestEvent), or
/// from a finished request the writer formats itself.
pub(crate) struct EventFields<'a> {
    pub(crate) event: Text<'a>,
    pub(crate) timestamp: Text<'a>,
    pub(crate) request_id: Text<'a>,
    pub(crate) client_type: Text<'a>,
    pub(crate) operation: Text<'a>,
    pub(crate) endpoint: Text<'a>,
    pub(crate) model: Option<&'a str>,
    pub(crate) stream: bool,
    pub(crate) status: Text<'a>,
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
    pub(crate) done_reason: Option<&'a str>,
    pub(crate) options: Option<&'a Value>,
    pub(crate) prompt: Option<&'a str>,
    pub(crate) error_type: Option<&'a str>,
    pub(crate) error_message: Option<&'a str>,
    pub(crate) http_status: Option<u16>,
}

impl EventFields<'_> {
    /// Appends the JSON object (without a newline) to `out`. Writing into a `Vec` cannot
    /// fail; only serialising a caller's `options` value could, in theory.
    pub(crate) fn write(&self, out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(b"{\"event\":");
        text(out, self.event);
        out.extend_from_slice(b",\"timestamp\":");
        text(out, self.timestamp);
        out.extend_from_slice(b",\"request_id\":");
        text(out, self.request_id);
        out.extend_from_slice(b",\"client_type\":");
        text(out, self.client_type);
        out.extend_from_slice(b",\"operation\":");
        text(out, self.operation);
        out.extend_from_slice(b",\"endpoint\":");
        text(out, self.endpoint);
        out.extend_from_slice(b",\"model\":");
        opt_string(out, self.model);
        out.extend_from_slice(b",\"stream\":");
        boolean(out, self.stream);
        out.extend_from_slice(b",\"status\":");
        text(out, self.status);
        out.extend_from_slice(b",\"outcome\":");
        text(out, Text::Verbatim(self.outcome.as_str()));
        out.extend_from_slice(b",\"latency_ms\":");
        float(out, self.latency_ms)?;
        out.extend_from_slice(b",\"ttft_ms\":");
        opt_float(out, self.ttft_ms)?;
        out.extend_from_slice(b",\"total_duration_ms\":");
        opt_float(out, self.total_duration_ms)?;
        out.extend_from_slice(b",\"model_load_ms\":");
        opt_float(out, self.model_load_ms)?;
        out.extend_from_slice(b",\"model_warm_start\":");
        match self.model_warm_start {
            Some(b) => boolean(out, b),
            None => null(out),
        }
        out.extend_from_slice(b",\"prompt_eval_ms\":");
        opt_float(out, self.prompt_eval_ms)?;
        out.extend_from_slice(b",\"eval_ms\":");
        opt_float(out, self.eval_ms)?;
        out.extend_from_slice(b",\"queue_wait_ms\":");
        opt_float(out, self.queue_wait_ms)?;
        out.extend_from_slice(b",\"prompt_chars\":");
        opt_integer(out, self.prompt_chars)?;
        out.extend_from_slice(b",\"prompt_eval_count\":");
        opt_integer(out, self.prompt_eval_count)?;
        out.extend_from_slice(b",\"generation_eval_count\":");
        opt_integer(out, self.generation_eval_count)?;
        out.extend_from_slice(b",\"tokens_per_second\":");
        opt_float(out, self.tokens_per_second)?;
        out.extend_from_slice(b",\"done_reason\":");
        opt_string(out, self.done_reason);
        out.extend_from_slice(b",\"options\":");
        match self.options {
            Some(value) => serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?,
            None => null(out),
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

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// serde_json writes non-finite floats as `null`, and finite ones with its formatter.
fn float(out: &mut Vec<u8>, v: f64) -> io::Result<()> {
    if v.is_finite() {
        CompactFormatter.write_f64(out, v)
    } else {
        null(out);
        Ok(())
    }
}

fn opt_float(out: &mut Vec<u8>, v: Option<f64>) -> io::Result<()> {
    if let Some(v) = v {
        float(out, v)
    } else {
        null(out);
        Ok(())
    }
}

fn opt_integer(out: &mut Vec<u8>, v: Option<u64>) -> io::Result<()> {
    if let Some(v) = v {
        CompactFormatter.write_u64(out, v)
    } else {
        null(out);
        Ok(())
    }
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => null(out),
    }
}

fn text(out: &mut Vec<u8>, t: Text<'_>) {
    match t {
        Text::Escape(s) => string(out, s),
        Text::Verbatim(s) => {
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
    }
}

/// The escaped content of a JSON string (without its quotes), for text written often.
pub(crate) fn escaped(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    string(&mut out, s);
    let inner = out.get(1..out.len() - 1).unwrap_or_default();
    // Escaping only adds ASCII to valid UTF-8; the fallback is unreachable.
    String::from_utf8(inner.to_vec()).unwrap_or_default()
}

/// A JSON string with serde_json's escapes: `\"`, `\\`, the short forms `\b \f \n \r \t`,
/// and `\u00xx` (lower-case hex) for the other control characters; everything else,
/// including DEL and non-ASCII, as is.
fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
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
        out.push(b'"');
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
    out.push(b'"');
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
    /// The whole second `text` holds the prefix of, since the Unix epoch.
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS.` of `second`, then the last event's `ffffffZ`.
    text: String,
    prefix_len: usize,
}

impl TimestampFormat {
    pub(crate) fn new() -> Self {
        Self {
            second: None,
            text: String::with_capacity(32),
            prefix_len: 0,
        }
    }

    pub(crate) fn format(&mut self, at: SystemTime) -> &str {
        let Ok(since_epoch) = at.duration_since(UNIX_EPOCH) else {
            // Before 1970: not worth a cache.
            self.second = None;
            self.text = chrono_format(at);
            return &self.text;
        };
        let second = since_epoch.as_secs();
        if self.second != Some(second) {
            let whole = UNIX_EPOCH + std::time::Duration::from_secs(second);
            self.text = chrono_format(whole);
            // chrono always writes six digits of microseconds and the `Z`.
            self.prefix_len = self.text.len() - "000000Z".len();
            self.second = Some(second);
        }
        self.text.truncate(self.prefix_len);
        let mut micros = since_epoch.subsec_micros();
        let mut digits = [b'0'; 6];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        self.text
            .push_str(std::str::from_utf8(&digits).unwrap_or_default());
        self.text.push('Z');
        &self.text
    }
}

fn chrono_format(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Appends the decimal digits of `n` to `out`.
pub(crate) fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits are always UTF-8; the fallback is unreachable.
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
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
                assert_eq!(format.format(at), chrono_format(at), "{secs}.{nanos}");
            }
        }
        let before = UNIX_EPOCH - Duration::new(86_400, 500_000);
        assert_eq!(format.format(before), chrono_format(before));
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

    #[test]
    fn decimals_are_the_display_of_the_number() {
        for n in [0, 7, 10, 1_234_567, u64::MAX] {
            let mut s = "x-".to_owned();
            push_decimal(&mut s, n);
            assert_eq!(s, format!("x-{n}"));
        }
    }
}
