//! Do our figures agree with the server's own? The load-test report of a run against
//! llama-server, checked against the deltas of the server's Prometheus counters over that
//! run.
//!
//! xtask depends on none of the toolkit's crates, so the report is read as JSON by field
//! name (schema in docs/SCHEMAS.md, "Load-test report"); a missing field is an error that
//! names it. Every tolerance is stated in the check's `rule` and printed with the figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// A load-test report read as JSON.
pub(crate) struct Report<'a>(pub(crate) &'a Value);

impl Report<'_> {
    /// A number at a dotted path, e.g. `summary.successes`.
    pub(crate) fn number(&self, path: &str) -> Result<f64> {
        self.get(path)?
            .as_f64()
            .with_context(|| format!("report field `{path}` is not a number"))
    }

    /// A number at a dotted path, or `None` when the field is absent or null.
    pub(crate) fn optional(&self, path: &str) -> Option<f64> {
        self.get(path).ok().and_then(Value::as_f64)
    }

    fn get(&self, path: &str) -> Result<&Value> {
        let mut value = self.0;
        for key in path.split('.') {
            value = value
                .get(key)
                .filter(|v| !v.is_null())
                .with_context(|| format!("report has no `{path}`"))?;
        }
        Ok(value)
    }
}

/// Server counters: `name -> value`.
pub(crate) type Counters = BTreeMap<String, f64>;

fn delta(after: &Counters, before: &Counters, name: &str) -> Result<f64> {
    let read = |c: &Counters| {
        c.get(name)
            .copied()
            .with_context(|| format!("llama-server /metrics has no `{name}`"))
    };
    Ok(read(after)? - read(before)?)
}

/// Equality of counts carried as JSON/Prometheus floats: they are whole numbers, so
/// anything under half a unit apart is the same count.
fn same(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.5
}

/// One comparison of ours against the server's.
#[derive(Debug)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) ours: f64,
    pub(crate) server: f64,
    pub(crate) rule: String,
    pub(crate) pass: bool,
}

/// The tolerances, stated once.
///
/// Our decode rate over the server's, over the same tokens (ratio bounds).
pub(crate) const DECODE_RATE_RATIO: (f64, f64) = (0.6, 1.6);
/// Our mean TTFT may exceed the server's mean prompt time by this much plus
/// [`TTFT_SLACK_TOKENS`] of our inter-token times: a new request waits for the batch being
/// decoded before its prompt starts, which the server's prompt time does not include
/// (measured on a loaded two-core machine: 30-250 ms above the server's mean).
pub(crate) const TTFT_SLACK_MS: f64 = 500.0;
/// See [`TTFT_SLACK_MS`].
pub(crate) const TTFT_SLACK_TOKENS: f64 = 4.0;
/// The server's prompt time is inside our TTFT, so our mean is at least the server's; the
/// small allowance covers the histogram's 3-significant-digit rounding.
pub(crate) const TTFT_FLOOR_RATIO: f64 = 0.97;

/// Compares a load-test report with the server's counter deltas over the same run.
///
/// `sent` is how many requests the run was asked to send. `queue_free` is true when the
/// run never has more requests in flight than the server has slots (a closed loop with
/// workers <= slots), so our TTFT may exceed the server's prompt time by the slack only.
pub(crate) fn loadtest_checks(
    report: &Value,
    sent: u64,
    queue_free: bool,
    before: &Counters,
    after: &Counters,
) -> Result<Vec<Check>> {
    let r = Report(report);
    let total = r.number("summary.total_requests")?;
    let successes = r.number("summary.successes")?;
    let failures = r.number("summary.failures")?;
    let abandoned = r.number("summary.abandoned")?;
    let partial = report.get("partial").and_then(Value::as_bool) == Some(true);
    #[allow(clippy::cast_precision_loss)] // request counts are far below 2^52
    let sent_f = sent as f64;
    let mut checks = vec![
        Check {
            name: "requests accounted (successes + failures vs sent)",
            ours: successes + failures,
            server: sent_f,
            rule: "equal; nothing abandoned, not partial".into(),
            pass: same(successes + failures, sent_f)
                && same(total, sent_f)
                && same(abandoned, 0.0)
                && !partial,
        },
        Check {
            name: "failed requests",
            ours: failures,
            server: 0.0,
            rule: "none".into(),
            pass: same(failures, 0.0),
        },
    ];
    if let Some(open_sent) = r.optional("open_loop.sent") {
        checks.push(Check {
            name: "open loop: requests sent by the schedule",
            ours: open_sent,
            server: sent_f,
            rule: "equal".into(),
            pass: same(open_sent, sent_f),
        });
    }
    let output = r.number("summary.output_tokens_total")?;
    let predicted = delta(after, before, "llamacpp:tokens_predicted_total")?;
    checks.push(Check {
        name: "output tokens (usage) vs tokens_predicted_total delta",
        ours: output,
        server: predicted,
        rule: "equal".into(),
        pass: same(output, predicted),
    });
    let prompt = r.number("summary.prompt_tokens_total")?;
    let processed = delta(after, before, "llamacpp:prompt_tokens_total")?
        + delta(after, before, "llamacpp:prompt_tokens_cached_total")?;
    checks.push(Check {
        name: "prompt tokens (usage) vs prompt_tokens_total + cached delta",
        ours: prompt,
        server: processed,
        rule: "equal".into(),
        pass: same(prompt, processed),
    });
    checks.push(Check {
        name: "requests still processing on the server",
        ours: 0.0,
        server: after
            .get("llamacpp:requests_processing")
            .copied()
            .context("llama-server /metrics has no `llamacpp:requests_processing`")?,
        rule: "none".into(),
        pass: after.get("llamacpp:requests_processing") == Some(&0.0),
    });

    // Decode rate: ours counts tokens after the first over first-to-last token time;
    // the server's counter sums every token over its generation time, which also starts
    // at the first token. Scale the server's to "tokens after the first" to compare.
    let ours_rate = r.number("metrics.tokens_per_second.avg")?;
    let mean_tokens = r.number("metrics.output_tokens.avg")?;
    let seconds = delta(after, before, "llamacpp:tokens_predicted_seconds_total")?;
    let server_rate = if seconds > 0.0 && mean_tokens > 1.0 {
        predicted / seconds * (mean_tokens - 1.0) / mean_tokens
    } else {
        0.0
    };
    let ratio = ours_rate / server_rate;
    checks.push(Check {
        name: "decode rate tok/s (ours mean vs server counters)",
        ours: ours_rate,
        server: server_rate,
        rule: format!(
            "ratio in [{}, {}] (got {ratio:.2})",
            DECODE_RATE_RATIO.0, DECODE_RATE_RATIO.1
        ),
        pass: (DECODE_RATE_RATIO.0..=DECODE_RATE_RATIO.1).contains(&ratio),
    });

    let ttft = r.number("metrics.ttft_ms.avg")?;
    let prompt_ms = if successes > 0.0 {
        delta(after, before, "llamacpp:prompt_seconds_total")? * 1000.0 / successes
    } else {
        0.0
    };
    checks.push(Check {
        name: "mean TTFT ms vs server mean prompt time (floor)",
        ours: ttft,
        server: prompt_ms,
        rule: format!("ours >= {TTFT_FLOOR_RATIO} x server"),
        pass: ttft >= TTFT_FLOOR_RATIO * prompt_ms,
    });
    if queue_free {
        let itl = if ours_rate > 0.0 {
            1000.0 / ours_rate
        } else {
            0.0
        };
        let slack = TTFT_SLACK_MS + TTFT_SLACK_TOKENS * itl;
        checks.push(Check {
            name: "mean TTFT ms vs server mean prompt time (ceiling)",
            ours: ttft,
            server: prompt_ms,
            rule: format!(
                "ours - server <= {TTFT_SLACK_MS} ms + {TTFT_SLACK_TOKENS} inter-token \
                 times = {slack:.0} ms"
            ),
            pass: ttft - prompt_ms <= slack,
        });
    }
    Ok(checks)
}

/// Renders checks as a Markdown table.
pub(crate) fn table(title: &str, checks: &[Check]) -> String {
    let mut out =
        format!("### {title}\n\n| check | ours | server | rule | |\n|---|---:|---:|---|---|\n");
    for c in checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            c.name,
            fmt_num(c.ours),
            fmt_num(c.server),
            c.rule,
            if c.pass { "ok" } else { "FAIL" }
        );
    }
    out
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Fails when any check failed, naming them.
pub(crate) fn require_all(checks: &[Check]) -> Result<()> {
    let failed: Vec<&str> = checks.iter().filter(|c| !c.pass).map(|c| c.name).collect();
    if !failed.is_empty() {
        bail!("checks failed: {}", failed.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn counters(pairs: &[(&str, f64)]) -> Counters {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn report(successes: u64, output: u64, ttft_avg: f64) -> Value {
        json!({
            "partial": false,
            "summary": {"total_requests": successes, "successes": successes, "failures": 0,
                "abandoned": 0, "output_tokens_total": output, "prompt_tokens_total": 290},
            "metrics": {"tokens_per_second": {"avg": 30.0}, "output_tokens": {"avg": 24.0},
                "ttft_ms": {"avg": ttft_avg}},
        })
    }

    fn server(predicted: f64, prompt_seconds: f64) -> (Counters, Counters) {
        let before = counters(&[
            ("llamacpp:tokens_predicted_total", 100.0),
            ("llamacpp:tokens_predicted_seconds_total", 1.0),
            ("llamacpp:prompt_tokens_total", 50.0),
            ("llamacpp:prompt_tokens_cached_total", 10.0),
            ("llamacpp:prompt_seconds_total", 0.5),
            ("llamacpp:requests_processing", 0.0),
        ]);
        let mut after = before.clone();
        // 240 tokens in 7.67 s: 31.3 tok/s, 30 tok/s over the tokens after the first.
        after.insert("llamacpp:tokens_predicted_total".into(), 100.0 + predicted);
        after.insert(
            "llamacpp:tokens_predicted_seconds_total".into(),
            1.0 + 7.6667,
        );
        after.insert("llamacpp:prompt_tokens_total".into(), 100.0);
        after.insert("llamacpp:prompt_tokens_cached_total".into(), 250.0);
        after.insert("llamacpp:prompt_seconds_total".into(), 0.5 + prompt_seconds);
        (before, after)
    }

    #[test]
    fn agreeing_figures_pass() {
        let (before, after) = server(240.0, 0.5);
        let checks = loadtest_checks(&report(10, 240, 80.0), 10, true, &before, &after).unwrap();
        assert!(require_all(&checks).is_ok(), "{checks:#?}");
    }

    #[test]
    fn a_token_mismatch_or_a_lost_request_fails() {
        let (before, after) = server(241.0, 0.5);
        let checks = loadtest_checks(&report(10, 240, 80.0), 10, true, &before, &after).unwrap();
        let err = require_all(&checks).unwrap_err().to_string();
        assert!(err.contains("tokens_predicted_total"), "{err}");
        let (before, after) = server(240.0, 0.5);
        let checks = loadtest_checks(&report(10, 240, 80.0), 11, true, &before, &after).unwrap();
        assert!(
            require_all(&checks)
                .unwrap_err()
                .to_string()
                .contains("accounted")
        );
    }

    #[test]
    fn ttft_below_the_server_prompt_time_fails() {
        // 1 s of prompt time over 10 requests is 100 ms each; we claim 50 ms.
        let (before, after) = server(240.0, 1.0);
        let checks = loadtest_checks(&report(10, 240, 50.0), 10, true, &before, &after).unwrap();
        assert!(
            require_all(&checks)
                .unwrap_err()
                .to_string()
                .contains("floor")
        );
        // Far above it fails the ceiling only when the run was queue-free.
        let checks = loadtest_checks(&report(10, 240, 2000.0), 10, true, &before, &after).unwrap();
        assert!(
            require_all(&checks)
                .unwrap_err()
                .to_string()
                .contains("ceiling")
        );
        let checks = loadtest_checks(&report(10, 240, 2000.0), 10, false, &before, &after).unwrap();
        assert!(require_all(&checks).is_ok());
    }

    #[test]
    fn missing_fields_are_named() {
        let (before, after) = server(240.0, 0.5);
        let err = loadtest_checks(&json!({"summary": {}}), 1, true, &before, &after).unwrap_err();
        assert!(err.to_string().contains("summary.total_requests"), "{err}");
        let mut bare = before.clone();
        bare.remove("llamacpp:prompt_tokens_cached_total");
        let err = loadtest_checks(&report(10, 240, 80.0), 10, true, &bare, &after).unwrap_err();
        assert!(
            err.to_string().contains("prompt_tokens_cached_total"),
            "{err}"
        );
    }
}
