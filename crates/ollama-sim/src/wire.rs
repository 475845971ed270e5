//! Wire details that must match Ollama byte for byte: content types, timestamps, error
//! bodies, Go-style JSON decode errors and Go duration syntax.
//!
//! Ollama is a Go server; clients see Go's formatting choices (trimmed RFC3339Nano
//! fractions, HTML-escaped JSON strings, `encoding/json` error texts), so this module
//! reproduces them in one place.

use std::fmt::Write as _;

use bytes::Bytes;
use chrono::{DateTime, Local, Timelike};
use http::{HeaderValue, Response, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::body::SimBody;

/// `c.JSON` in gin.
pub(crate) const JSON_UTF8: &str = "application/json; charset=utf-8";
/// Stream helpers, `/v1` writers.
pub(crate) const JSON: &str = "application/json";
pub(crate) const NDJSON: &str = "application/x-ndjson";
pub(crate) const SSE: &str = "text/event-stream";
pub(crate) const TEXT_UTF8: &str = "text/plain; charset=utf-8";
pub(crate) const TEXT: &str = "text/plain";

/// The queue-full text, two spaces before "maximum" (`sched.go` `ErrMaxQueue`).
pub(crate) const SERVER_BUSY: &str =
    "server busy, please try again.  maximum pending requests exceeded";

/// Builds a response with a static content type.
pub(crate) fn response(
    status: StatusCode,
    content_type: &'static str,
    body: SimBody,
) -> Response<SimBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A native error body `{"error":"…"}` as gin's `c.JSON` writes it.
pub(crate) fn native_error(status: StatusCode, message: &str) -> Response<SimBody> {
    response(status, JSON_UTF8, SimBody::full(error_json(message)))
}

/// `{"error":"…"}` bytes without a newline.
pub(crate) fn error_json(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 12);
    out.extend_from_slice(b"{\"error\":");
    push_json_str(&mut out, message);
    out.push(b'}');
    out
}

/// The OpenAI error envelope; `charset` selects gin's `c.JSON` content type (errors raised
/// by the `/v1` middleware itself) over the plain one (errors from the handler).
pub(crate) fn openai_error(status: StatusCode, message: &str, charset: bool) -> Response<SimBody> {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        404 => "not_found_error",
        _ => "api_error",
    };
    let mut out = Vec::with_capacity(message.len() + 80);
    out.extend_from_slice(b"{\"error\":{\"message\":");
    push_json_str(&mut out, message);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"param\":null,\"code\":null}}\n");
    response(
        status,
        if charset { JSON_UTF8 } else { JSON },
        SimBody::full(out),
    )
}

/// A plain-text response (gin's 404/405 bodies, `GET /`).
pub(crate) fn text(
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
) -> Response<SimBody> {
    response(
        status,
        content_type,
        SimBody::full(Bytes::from_static(body.as_bytes())),
    )
}

/// Appends `s` as a JSON string literal with Go's HTML escaping.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is standard; writing into a Vec cannot fail.
    let start = out.len();
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"\"\"");
    }
    go_escape_html_from(out, start);
}

/// Serialises `value` the way Go's `encoding/json` would (HTML-escaped), without a newline.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // Serialising our own plain structs into a Vec cannot fail.
    if serde_json::to_writer(&mut out, value).is_err() {
        out.clear();
        out.extend_from_slice(b"{}");
    }
    go_escape_html_from(&mut out, 0);
    out
}

/// Go escapes `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026`. These bytes only occur
/// inside JSON strings, so a byte-level rewrite is exact.
fn go_escape_html_from(out: &mut Vec<u8>, start: usize) {
    if !out[start..].iter().any(|b| matches!(b, b'<' | b'>' | b'&')) {
        return;
    }
    let tail = out.split_off(start);
    for b in tail {
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            other => out.push(other),
        }
    }
}

/// `time.Now().UTC()` in Go's RFC3339Nano: trailing zeros of the fraction trimmed.
///
/// This runs once per streamed chunk, so it formats by hand instead of through chrono's
/// format-string machinery.
pub(crate) fn created_at_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    utc_rfc3339_nano(now.as_secs(), now.subsec_nanos())
}

/// Formats seconds and nanoseconds since the Unix epoch as Go's UTC RFC3339Nano.
fn utc_rfc3339_nano(secs: u64, nanos: u32) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut s = String::with_capacity(32);
    let _ = write!(
        s,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if nanos > 0 {
        let mut frac = nanos;
        let mut digits = 9;
        while frac.is_multiple_of(10) {
            frac /= 10;
            digits -= 1;
        }
        let _ = write!(s, ".{frac:0digits$}");
    }
    s.push('Z');
    s
}

/// Go RFC3339Nano for any zone: `Z` for a zero offset, else `±hh:mm`.
pub(crate) fn rfc3339_nano<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut s = String::with_capacity(36);
    let _ = write!(s, "{}", t.format("%Y-%m-%dT%H:%M:%S"));
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos > 0 {
        let mut frac = format!("{nanos:09}");
        while frac.ends_with('0') {
            frac.pop();
        }
        s.push('.');
        s.push_str(&frac);
    }
    let offset = chrono::Offset::fix(t.offset()).local_minus_utc();
    if offset == 0 {
        s.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        let _ = write!(s, "{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60);
    }
    s
}

/// A server-local timestamp, as `/api/tags` `modified_at` and `/api/ps` `expires_at` use.
pub(crate) fn local_time(t: std::time::SystemTime) -> String {
    rfc3339_nano(&DateTime::<Local>::from(t))
}

/// Why a request body was refused; `message` is what Ollama would say.
#[derive(Debug)]
pub(crate) struct BodyError {
    pub(crate) message: String,
    /// The body held no JSON at all (Go's `io.EOF`): natively `missing request body`,
    /// but the `/v1` middleware passes Go's bare `EOF` through.
    pub(crate) empty: bool,
}

/// Decodes a JSON request body like gin's `ShouldBindJSON`: whitespace only is
/// `missing request body`, trailing data after the first value is ignored, and errors use
/// `encoding/json`'s wording.
pub(crate) fn decode_body<T: DeserializeOwned>(body: &[u8], go_type: &str) -> Result<T, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError {
            message: "missing request body".to_owned(),
            empty: true,
        });
    }
    // Go decodes only objects into a request struct; `null` leaves it empty, any other
    // top-level kind is an unmarshal error (serde would accept an array as a struct).
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    if let Some(first) = first.filter(|b| *b != b'{') {
        if let Some(syntax) = go_syntax_error(body) {
            return Err(BodyError {
                message: syntax,
                empty: false,
            });
        }
        let kind = match first {
            b'[' => "array",
            b'"' => "string",
            b't' | b'f' => "bool",
            b'-' | b'0'..=b'9' => "number",
            b'n' if body.trim_ascii().starts_with(b"null") => {
                return decode_body(b"{}", go_type);
            }
            _ => "value",
        };
        if kind != "value" {
            return Err(BodyError {
                message: format!(
                    "json: cannot unmarshal {kind} into Go value of type api.{go_type}"
                ),
                empty: false,
            });
        }
    }
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<T>();
    match stream.next() {
        Some(Ok(value)) => Ok(value),
        Some(Err(err)) => Err(BodyError {
            message: go_decode_message(body, &err, go_type),
            empty: false,
        }),
        None => Err(BodyError {
            message: "missing request body".to_owned(),
            empty: true,
        }),
    }
}

fn go_decode_message(body: &[u8], err: &serde_json::Error, go_type: &str) -> String {
    if let Some(syntax) = go_syntax_error(body) {
        return syntax;
    }
    if err.is_eof() {
        return "unexpected EOF".to_owned();
    }
    // A well-formed document that does not fit the request type: Go says
    // "json: cannot unmarshal <json kind> into Go value of type <type>".
    let text = err.to_string();
    if let Some(rest) = text.strip_prefix("invalid type: ") {
        let got = rest.split([',', ' ']).next().unwrap_or("value");
        let got = match got {
            "integer" | "floating" => "number",
            "boolean" => "bool",
            "map" => "object",
            "sequence" => "array",
            "string" => "string",
            "null" => "null",
            other => other,
        };
        let expected = rest.split(", expected ").nth(1).unwrap_or("");
        let expected = expected.split(" at line").next().unwrap_or(expected);
        let go = if expected.starts_with("struct") {
            format!("api.{go_type}")
        } else if expected.contains("string") {
            "string".to_owned()
        } else if expected.contains("bool") {
            "bool".to_owned()
        } else if expected.starts_with('u') || expected.starts_with('i') {
            "int".to_owned()
        } else if expected.starts_with('f') {
            "float64".to_owned()
        } else if expected.contains("sequence") {
            "[]interface {}".to_owned()
        } else {
            "map[string]interface {}".to_owned()
        };
        return format!("json: cannot unmarshal {got} into Go value of type {go}");
    }
    // Semantic errors from our own deserialisers (think values, ...) are already worded.
    text.split(" at line").next().unwrap_or(&text).to_owned()
}

/// Go's `quoteChar`.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        0x20..=0x7e => format!("'{}'", c as char),
        b'\n' => "'\\n'".to_owned(),
        b'\r' => "'\\r'".to_owned(),
        b'\t' => "'\\t'".to_owned(),
        other => format!("'\\x{other:02x}'"),
    }
}

/// Scans the first JSON value like Go's `encoding/json` scanner and returns its error
/// text for the first invalid byte, or `None` if the value is well formed (or the input
/// ends early, which Go reports as `unexpected EOF` and the caller handles).
fn go_syntax_error(body: &[u8]) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Ctx {
        ObjectKey,
        ObjectValue,
        Array,
    }
    let mut stack: Vec<Ctx> = Vec::new();
    let mut i = 0;
    let err = |c: u8, ctx: &str| Some(format!("invalid character {} {ctx}", quote_char(c)));
    let skip_ws = |i: &mut usize| {
        while *i < body.len() && matches!(body[*i], b' ' | b'\t' | b'\n' | b'\r') {
            *i += 1;
        }
    };
    // Parses one value starting at i; on return i is just past it.
    loop {
        // Expecting the beginning of a value.
        skip_ws(&mut i);
        let c = *body.get(i)?;
        match c {
            b'{' => {
                i += 1;
                skip_ws(&mut i);
                let c = *body.get(i)?;
                if c == b'}' {
                    i += 1;
                } else if c == b'"' {
                    stack.push(Ctx::ObjectKey);
                    match scan_string(body, &mut i) {
                        Scan::Ok => {}
                        Scan::Eof => return None,
                        Scan::Bad(e) => return Some(e),
                    }
                    skip_ws(&mut i);
                    let c = *body.get(i)?;
                    if c != b':' {
                        return err(c, "after object key");
                    }
                    i += 1;
                    *stack.last_mut()? = Ctx::ObjectValue;
                    continue;
                } else {
                    return err(c, "looking for beginning of object key string");
                }
            }
            b'[' => {
                i += 1;
                skip_ws(&mut i);
                let c = *body.get(i)?;
                if c == b']' {
                    i += 1;
                } else {
                    stack.push(Ctx::Array);
                    continue;
                }
            }
            b'"' => match scan_string(body, &mut i) {
                Scan::Ok => {}
                Scan::Eof => return None,
                Scan::Bad(e) => return Some(e),
            },
            b'-' | b'0'..=b'9' => match scan_number(body, &mut i) {
                Scan::Ok => {}
                Scan::Eof => return None,
                Scan::Bad(e) => return Some(e),
            },
            b't' | b'f' | b'n' => {
                let word: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                for (k, expect) in word.iter().enumerate().skip(1) {
                    let got = *body.get(i + k)?;
                    if got != *expect {
                        let name = std::str::from_utf8(word).unwrap_or("literal");
                        return err(
                            got,
                            &format!("in literal {name} (expecting {})", quote_char(*expect)),
                        );
                    }
                }
                i += word.len();
            }
            other => return err(other, "looking for beginning of value"),
        }
        // A value just ended: close containers or continue them.
        loop {
            let top = stack.last().copied()?;
            skip_ws(&mut i);
            let c = *body.get(i)?;
            match (top, c) {
                (Ctx::ObjectValue, b',') => {
                    i += 1;
                    skip_ws(&mut i);
                    let c = *body.get(i)?;
                    if c != b'"' {
                        return err(c, "looking for beginning of object key string");
                    }
                    match scan_string(body, &mut i) {
                        Scan::Ok => {}
                        Scan::Eof => return None,
                        Scan::Bad(e) => return Some(e),
                    }
                    skip_ws(&mut i);
                    let c = *body.get(i)?;
                    if c != b':' {
                        return err(c, "after object key");
                    }
                    i += 1;
                    break;
                }
                (Ctx::ObjectValue, b'}') | (Ctx::Array, b']') => {
                    i += 1;
                    stack.pop();
                }
                (Ctx::ObjectValue, other) => return err(other, "after object key:value pair"),
                (Ctx::Array, b',') => {
                    i += 1;
                    break;
                }
                (Ctx::Array, other) => return err(other, "after array element"),
                (Ctx::ObjectKey, _) => return None,
            }
        }
    }
}

/// The outcome of scanning one token.
enum Scan {
    Ok,
    /// The input ended inside the token (Go: `unexpected EOF`).
    Eof,
    /// A syntax error with Go's text.
    Bad(String),
}

/// Scans a string starting at the opening quote.
fn scan_string(body: &[u8], i: &mut usize) -> Scan {
    *i += 1;
    loop {
        let Some(&c) = body.get(*i) else {
            return Scan::Eof;
        };
        *i += 1;
        match c {
            b'"' => return Scan::Ok,
            b'\\' => {
                let Some(&e) = body.get(*i) else {
                    return Scan::Eof;
                };
                *i += 1;
                match e {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            let Some(&h) = body.get(*i) else {
                                return Scan::Eof;
                            };
                            if !h.is_ascii_hexdigit() {
                                return Scan::Bad(format!(
                                    "invalid character {} in \\u hexadecimal character escape",
                                    quote_char(h)
                                ));
                            }
                            *i += 1;
                        }
                    }
                    other => {
                        return Scan::Bad(format!(
                            "invalid character {} in string escape code",
                            quote_char(other)
                        ));
                    }
                }
            }
            0..=0x1f => {
                return Scan::Bad(format!(
                    "invalid character {} in string literal",
                    quote_char(c)
                ));
            }
            _ => {}
        }
    }
}

/// Scans a number.
fn scan_number(body: &[u8], i: &mut usize) -> Scan {
    let digit_err =
        |c: u8, ctx: &str| Scan::Bad(format!("invalid character {} {ctx}", quote_char(c)));
    if body[*i] == b'-' {
        *i += 1;
        let Some(&c) = body.get(*i) else {
            return Scan::Eof;
        };
        if !c.is_ascii_digit() {
            return digit_err(c, "in numeric literal");
        }
    }
    if body.get(*i) == Some(&b'0') {
        *i += 1;
    } else {
        while body.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
    }
    if body.get(*i) == Some(&b'.') {
        *i += 1;
        let Some(&c) = body.get(*i) else {
            return Scan::Eof;
        };
        if !c.is_ascii_digit() {
            return digit_err(c, "after decimal point in numeric literal");
        }
        while body.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
    }
    if matches!(body.get(*i), Some(b'e' | b'E')) {
        *i += 1;
        if matches!(body.get(*i), Some(b'+' | b'-')) {
            *i += 1;
        }
        let Some(&c) = body.get(*i) else {
            return Scan::Eof;
        };
        if !c.is_ascii_digit() {
            return digit_err(c, "in exponent of numeric literal");
        }
        while body.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
    }
    Scan::Ok
}

/// Parses a Go `time.ParseDuration` string into signed nanoseconds, with Go's error
/// texts (`time: missing unit in duration "5"`).
pub(crate) fn parse_go_duration(text: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut s = text;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let number = &s[..num_end];
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        s = &s[num_end..];
        let unit_end = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let unit = &s[..unit_end];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {text:?}"));
        }
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
        };
        total += value * scale;
        s = &s[unit_end..];
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let nanos = total as i128;
    Ok(if neg { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Req {
        model: String,
    }

    fn msg(body: &str) -> String {
        decode_body::<Req>(body.as_bytes(), "GenerateRequest")
            .expect_err(body)
            .message
    }

    #[test]
    fn decode_errors_read_like_go() {
        assert_eq!(msg(""), "missing request body");
        assert_eq!(msg("  \n"), "missing request body");
        assert_eq!(
            msg("x"),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            msg("{model"),
            "invalid character 'm' looking for beginning of object key string"
        );
        assert_eq!(
            msg("{\"model\" 1"),
            "invalid character '1' after object key"
        );
        assert_eq!(
            msg("{\"model\":\"a\" \"b\""),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(
            msg("{\"model\":tru}"),
            "invalid character '}' in literal true (expecting 'e')"
        );
        assert_eq!(msg("{\"model\":\"a\""), "unexpected EOF");
        assert_eq!(
            msg("[1,2]"),
            "json: cannot unmarshal array into Go value of type api.GenerateRequest"
        );
        assert_eq!(
            msg("{\"model\":1}"),
            "json: cannot unmarshal number into Go value of type string"
        );
        // Trailing data after the first value is ignored, as with Go's json.Decoder.
        assert!(decode_body::<Req>(b"{\"model\":\"a\"} trailing", "GenerateRequest").is_ok());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10m"), Ok(600_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("-1m"), Ok(-60_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(
            parse_go_duration("-1"),
            Err("time: missing unit in duration \"-1\"".to_owned())
        );
        assert_eq!(
            parse_go_duration("5x"),
            Err("time: unknown unit \"x\" in duration \"5x\"".to_owned())
        );
    }

    #[test]
    fn hand_formatted_utc_matches_chrono() {
        for (secs, nanos) in [
            (0, 0),
            (1_729_000_000, 414_670_000),
            (951_782_400, 5),
            (4_102_444_799, 999_999_999),
        ] {
            let t = DateTime::from_timestamp(i64::try_from(secs).expect("small"), nanos)
                .expect("valid");
            assert_eq!(
                utc_rfc3339_nano(secs, nanos),
                rfc3339_nano(&t),
                "{secs}.{nanos}"
            );
        }
    }

    #[test]
    fn timestamps_trim_trailing_zeros() {
        let t = DateTime::parse_from_rfc3339("2025-10-17T23:14:07.414670000Z").expect("valid");
        assert_eq!(rfc3339_nano(&t), "2025-10-17T23:14:07.41467Z");
        let t = DateTime::parse_from_rfc3339("2024-06-04T14:38:31-07:00").expect("valid");
        assert_eq!(rfc3339_nano(&t), "2024-06-04T14:38:31-07:00");
    }

    #[test]
    fn json_strings_are_html_escaped() {
        let mut out = Vec::new();
        push_json_str(&mut out, "a<b>&c");
        assert_eq!(out, b"\"a\\u003cb\\u003e\\u0026c\"");
    }
}
