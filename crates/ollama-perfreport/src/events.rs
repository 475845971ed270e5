//! Summaries of the telemetry JSONL request log (`logs/requests.jsonl`).
//!
//! The original service's tool averaged tokens/s from this log and died on the first bad
//! line. Here every key is optional (logs come from several client versions), a malformed
//! line is counted and reported by line number, and percentiles are exact (the log is read
//! once, values kept per model).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::stats::Cdf;

/// At most this many malformed lines are listed individually (all are counted).
const MAX_LISTED_MALFORMED: usize = 20;

/// A time window over event timestamps; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Keep events at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Keep events before this instant.
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    fn contains(&self, t: DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// Parses a window bound: an RFC 3339 timestamp, or a duration meaning "that long before
/// `now`" (`"90m"`, `"2h"`, `"1day"`).
pub fn parse_time_bound(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = humantime::parse_duration(s)
        .map_err(|_| format!("`{s}` is neither an RFC 3339 timestamp nor a duration like `90m`"))?;
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .ok_or_else(|| format!("`{s}` reaches too far into the past"))
}

/// Percentile summary of one quantity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Number of values.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest value.
    pub max: f64,
}

impl Distribution {
    fn of(values: &[f64]) -> Option<Distribution> {
        let cdf = Cdf::from_values(values);
        (cdf.len() > 0).then(|| Distribution {
            count: cdf.len(),
            mean: cdf.mean(),
            p50: cdf.quantile(0.5),
            p95: cdf.quantile(0.95),
            max: cdf.quantile(1.0),
        })
    }
}

/// Everything known about one model's requests in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEvents {
    /// The model tag (`"(none)"` when events lack the key).
    pub model: String,
    /// Request events.
    pub requests: u64,
    /// Requests whose outcome was success.
    pub successes: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Requests the caller abandoned (dropped a stream early).
    pub abandoned: u64,
    /// Failed requests by `error_type` (`"unknown"` when absent).
    pub errors_by_type: BTreeMap<String, u64>,
    /// Generated tokens (`generation_eval_count`) summed.
    pub generated_tokens: u64,
    /// Per-request generation speed (`tokens_per_second`).
    pub tokens_per_second: Option<Distribution>,
    /// Client-side latency (`latency_ms`).
    pub latency_ms: Option<Distribution>,
    /// Requests that found the model already loaded (`model_warm_start: true`).
    pub warm_starts: u64,
    /// Requests that loaded the model (`model_warm_start: false`).
    pub cold_starts: u64,
    /// Server load time (`model_load_ms`) of cold starts; of every request that reports it
    /// when the log has no `model_warm_start`.
    pub load_ms: Option<Distribution>,
    /// Server load time of every request that reports it, warm or cold (a warm request
    /// still reports a small `load_duration`).
    pub load_ms_all: Option<Distribution>,
}

/// A line that could not be read as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedLine {
    /// 1-based line number.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
}

/// The summary of a JSONL event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsSummary {
    /// The log file.
    pub path: PathBuf,
    /// Non-empty lines read.
    pub lines: u64,
    /// `ollama_request` events inside the window.
    pub requests: u64,
    /// Events of other kinds (ignored).
    pub other_events: u64,
    /// Request events outside the window.
    pub outside_window: u64,
    /// Request events without a readable timestamp, left out because a window was given.
    pub untimed: u64,
    /// Lines that were not JSON objects (all of them counted).
    pub malformed: u64,
    /// The first malformed lines, with reasons.
    pub malformed_lines: Vec<MalformedLine>,
    /// Earliest timestamp among counted events.
    pub first: Option<DateTime<Utc>>,
    /// Latest timestamp among counted events.
    pub last: Option<DateTime<Utc>>,
    /// Per-model summaries, by model name.
    pub models: Vec<ModelEvents>,
}

#[derive(Default)]
struct Acc {
    requests: u64,
    successes: u64,
    errors: u64,
    abandoned: u64,
    errors_by_type: BTreeMap<String, u64>,
    generated_tokens: u64,
    tps: Vec<f64>,
    latency: Vec<f64>,
    warm: u64,
    cold: u64,
    cold_load: Vec<f64>,
    any_load: Vec<f64>,
}

#[derive(PartialEq)]
enum Outcome {
    Success,
    Error,
    Abandoned,
}

fn num(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    match v.get("timestamp")? {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => {
            let secs = n.as_f64()?;
            DateTime::from_timestamp_millis((secs * 1000.0) as i64)
        }
        _ => None,
    }
}

/// Reads the outcome from `outcome`, else `status` (a word or an HTTP code), else the
/// presence of `error_type`.
fn outcome(v: &Value) -> Outcome {
    let word = |s: &str| match s.to_ascii_lowercase().as_str() {
        "success" | "ok" | "succeeded" => Some(Outcome::Success),
        "abandoned" | "cancelled" | "canceled" => Some(Outcome::Abandoned),
        "error" | "failure" | "failed" => Some(Outcome::Error),
        _ => None,
    };
    if let Some(o) = v.get("outcome").and_then(Value::as_str).and_then(word) {
        return o;
    }
    match v.get("status") {
        Some(Value::String(s)) => {
            if let Some(o) = word(s) {
                return o;
            }
            if let Ok(code) = s.parse::<u16>() {
                return if (200..300).contains(&code) {
                    Outcome::Success
                } else {
                    Outcome::Error
                };
            }
        }
        Some(Value::Number(n)) => {
            if let Some(code) = n.as_u64() {
                return if (200..300).contains(&code) {
                    Outcome::Success
                } else {
                    Outcome::Error
                };
            }
        }
        _ => {}
    }
    if v.get("error_type").is_some_and(|e| !e.is_null()) {
        Outcome::Error
    } else {
        Outcome::Success
    }
}

/// Summarises the JSONL event log at `path` over `window`.
///
/// Only an unreadable file is an error; bad lines are counted in the summary.
pub fn summarize_events(path: &Path, window: Window) -> Result<EventsSummary, Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut summary = EventsSummary {
        path: path.to_owned(),
        lines: 0,
        requests: 0,
        other_events: 0,
        outside_window: 0,
        untimed: 0,
        malformed: 0,
        malformed_lines: Vec::new(),
        first: None,
        last: None,
        models: Vec::new(),
    };
    let mut models: BTreeMap<String, Acc> = BTreeMap::new();
    for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(io)?;
        let line_no = index as u64 + 1;
        let bad = |summary: &mut EventsSummary, reason: String| {
            summary.malformed += 1;
            if summary.malformed_lines.len() < MAX_LISTED_MALFORMED {
                summary.malformed_lines.push(MalformedLine {
                    line: line_no,
                    reason,
                });
            }
        };
        let Ok(text) = std::str::from_utf8(&line) else {
            bad(&mut summary, "not UTF-8".into());
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        summary.lines += 1;
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                bad(&mut summary, "not a JSON object".into());
                continue;
            }
            Err(e) => {
                bad(&mut summary, e.to_string());
                continue;
            }
        };
        if v.get("event").and_then(Value::as_str) != Some("ollama_request") {
            summary.other_events += 1;
            continue;
        }
        let ts = timestamp(&v);
        if !window.is_open() {
            match ts {
                None => {
                    summary.untimed += 1;
                    continue;
                }
                Some(t) if !window.contains(t) => {
                    summary.outside_window += 1;
                    continue;
                }
                Some(_) => {}
            }
        }
        if let Some(t) = ts {
            summary.first = Some(summary.first.map_or(t, |f| f.min(t)));
            summary.last = Some(summary.last.map_or(t, |l| l.max(t)));
        }
        summary.requests += 1;
        let model = v
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or("(none)");
        let acc = models.entry(model.to_owned()).or_default();
        acc.requests += 1;
        match outcome(&v) {
            Outcome::Success => acc.successes += 1,
            Outcome::Abandoned => acc.abandoned += 1,
            Outcome::Error => {
                acc.errors += 1;
                let kind = v
                    .get("error_type")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                *acc.errors_by_type.entry(kind.to_owned()).or_default() += 1;
            }
        }
        if let Some(n) = num(&v, "generation_eval_count") {
            acc.generated_tokens += n.max(0.0) as u64;
        }
        if let Some(t) = num(&v, "tokens_per_second") {
            acc.tps.push(t);
        }
        if let Some(l) = num(&v, "latency_ms") {
            acc.latency.push(l);
        }
        let load = num(&v, "model_load_ms");
        if let Some(l) = load {
            acc.any_load.push(l);
        }
        match v.get("model_warm_start").and_then(Value::as_bool) {
            Some(true) => acc.warm += 1,
            Some(false) => {
                acc.cold += 1;
                if let Some(l) = load {
                    acc.cold_load.push(l);
                }
            }
            None => {}
        }
    }
    summary.models = models
        .into_iter()
        .map(|(model, a)| {
            let knows_warmth = a.warm + a.cold > 0;
            ModelEvents {
                model,
                requests: a.requests,
                successes: a.successes,
                errors: a.errors,
                abandoned: a.abandoned,
                errors_by_type: a.errors_by_type,
                generated_tokens: a.generated_tokens,
                tokens_per_second: Distribution::of(&a.tps),
                latency_ms: Distribution::of(&a.latency),
                warm_starts: a.warm,
                cold_starts: a.cold,
                load_ms: Distribution::of(if knows_warmth {
                    &a.cold_load
                } else {
                    &a.any_load
                }),
                load_ms_all: Distribution::of(&a.any_load),
            }
        })
        .collect();
    Ok(summary)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::float_cmp)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(lines: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(lines.as_bytes()).unwrap();
        f
    }

    const LOG: &str = r#"{"event":"ollama_request","model":"a","outcome":"success","latency_ms":100,"tokens_per_second":50,"generation_eval_count":10,"model_load_ms":900,"model_warm_start":false,"timestamp":"2026-01-01T10:00:00Z"}
{"event":"ollama_request","model":"a","outcome":"success","latency_ms":200,"tokens_per_second":30,"generation_eval_count":20,"model_load_ms":1,"model_warm_start":true,"timestamp":"2026-01-01T10:05:00Z"}
this is not json
{"event":"ollama_request","model":"a","status":"error","error_type":"server_busy","timestamp":"2026-01-01T10:06:00Z"}

{"event":"startup"}
[1,2]
{"event":"ollama_request","model":"b","status":503,"timestamp":"2026-01-01T11:00:00Z"}
{"event":"ollama_request","model":"b","outcome":"abandoned"}
{"event":"ollama_request","status":"success","latency_ms":"7","timestamp":"2026-01-01T12:00:00Z"}
"#;

    #[test]
    fn summarises_per_model_and_counts_malformed_lines() {
        let f = write(LOG);
        let s = summarize_events(f.path(), Window::default()).unwrap();
        assert_eq!(s.requests, 6);
        assert_eq!(s.other_events, 1);
        assert_eq!(s.malformed, 2);
        assert_eq!(s.malformed_lines[0].line, 3);
        assert_eq!(s.malformed_lines[1].line, 7);
        assert_eq!(s.malformed_lines[1].reason, "not a JSON object");
        let names: Vec<_> = s.models.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(names, ["(none)", "a", "b"]);
        let a = &s.models[1];
        assert_eq!((a.requests, a.successes, a.errors), (3, 2, 1));
        assert_eq!(a.errors_by_type["server_busy"], 1);
        assert_eq!(a.generated_tokens, 30);
        assert_eq!(a.tokens_per_second.unwrap().mean, 40.0);
        assert_eq!(a.latency_ms.unwrap().max, 200.0);
        assert_eq!((a.warm_starts, a.cold_starts), (1, 1));
        let load = a.load_ms.unwrap();
        assert_eq!((load.count, load.max), (1, 900.0));
        let all = a.load_ms_all.unwrap();
        assert_eq!((all.count, all.max), (2, 900.0));
        let b = &s.models[2];
        assert_eq!((b.errors, b.abandoned), (1, 1));
        assert_eq!(b.errors_by_type["unknown"], 1);
        assert_eq!(s.models[0].latency_ms.unwrap().p50, 7.0);
    }

    #[test]
    fn window_filters_and_counts_untimed_events() {
        let f = write(LOG);
        let now = Utc::now();
        let window = Window {
            since: Some(parse_time_bound("2026-01-01T10:01:00Z", now).unwrap()),
            until: Some(parse_time_bound("2026-01-01T11:00:00+00:00", now).unwrap()),
        };
        let s = summarize_events(f.path(), window).unwrap();
        assert_eq!(s.requests, 2);
        assert_eq!(s.outside_window, 3);
        assert_eq!(s.untimed, 1);
        assert_eq!(s.first.unwrap().to_rfc3339(), "2026-01-01T10:05:00+00:00");
    }

    #[test]
    fn time_bounds() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_time_bound("90m", now).unwrap().to_rfc3339(),
            "2026-01-01T10:30:00+00:00"
        );
        assert!(
            parse_time_bound("yesterday", now)
                .unwrap_err()
                .contains("yesterday")
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = summarize_events(Path::new("/nonexistent/requests.jsonl"), Window::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/requests.jsonl"), "{err}");
    }
}
