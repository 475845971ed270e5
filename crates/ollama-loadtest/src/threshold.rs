//! Pass/fail thresholds on a finished report: `--fail-if "p99_e2e>2s"`,
//! `--fail-if "success_rate<99"`. A threshold *fails the run* when its condition holds.
//!
//! Grammar: `METRIC OP VALUE` with `OP` one of `>`, `>=`, `<`, `<=`. `METRIC` is one of
//! the scalar names (`success_rate`, `error_rate`, `failures`, `rps`, `goodput`,
//! `goodput_rps`, `tokens_per_second`) or `STAT_DIST` with `STAT` in `min`, `max`, `avg`,
//! `p50`, `p90`, `p95`, `p99`, `p999` and `DIST` a per-request metric (`e2e`,
//! `e2e_uncorrected`, `ttfb`, `ttft`, `ttfc`, `itl`, `tpot`, `queue_wait`, `server_wait`,
//! `load`, `schedule_lag`, `tps`, `output_tokens`). Time values take a unit (`2s`,
//! `250ms`; bare numbers are milliseconds); rates are percent. A metric the run did not
//! measure (TTFT without streaming) fails the threshold: an unmeasured limit is not met.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::duration::{BareUnit, parse_duration};
use crate::report::Report;
use crate::stats::Distribution;

/// A parsed `--fail-if` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    metric: Metric,
    op: Op,
    value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Metric {
    Scalar(&'static str),
    Stat {
        stat: &'static str,
        dist: &'static str,
    },
}

const SCALARS: [&str; 7] = [
    "success_rate",
    "error_rate",
    "failures",
    "rps",
    "goodput",
    "goodput_rps",
    "tokens_per_second",
];
const STATS: [&str; 8] = ["min", "max", "avg", "p50", "p90", "p95", "p99", "p999"];
/// Distributions and whether their values are durations.
const DISTS: [(&str, bool); 13] = [
    ("e2e_uncorrected", true),
    ("e2e", true),
    ("ttfb", true),
    ("ttft", true),
    ("ttfc", true),
    ("itl", true),
    ("tpot", true),
    ("queue_wait", true),
    ("server_wait", true),
    ("load", true),
    ("schedule_lag", true),
    ("tps", false),
    ("output_tokens", false),
];

/// A malformed threshold expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid threshold {text:?}: {reason}")]
pub struct ThresholdParseError {
    text: String,
    reason: String,
}

/// The verdict of one threshold against a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOutcome {
    /// The expression as given.
    pub expression: String,
    /// The report's value of the metric (`None` when the run did not measure it).
    pub actual: Option<f64>,
    /// True when the condition holds, i.e. the run fails this threshold.
    pub failed: bool,
}

impl FromStr for Threshold {
    type Err = ThresholdParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ThresholdParseError {
            text: text.to_owned(),
            reason,
        };
        let at = text
            .find(['<', '>'])
            .ok_or_else(|| err("no operator (use >, >=, < or <=)".to_owned()))?;
        let (name, rest) = text.split_at(at);
        let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
            (Op::Ge, v)
        } else if let Some(v) = rest.strip_prefix("<=") {
            (Op::Le, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Op::Gt, v)
        } else {
            (Op::Lt, &rest[1..])
        };
        let name = name.trim();
        let (metric, is_time) = parse_metric(name).ok_or_else(|| {
            err(format!(
                "unknown metric {name:?} (e.g. p99_e2e, avg_ttft, success_rate, rps)"
            ))
        })?;
        let value = value.trim();
        let value = if is_time {
            parse_duration(value, BareUnit::Millis)
                .map_err(err)?
                .as_secs_f64()
                * 1e3
        } else {
            value
                .trim_end_matches('%')
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| err(format!("{value:?} is not a number")))?
        };
        Ok(Self {
            text: text.trim().to_owned(),
            metric,
            op,
            value,
        })
    }
}

fn parse_metric(name: &str) -> Option<(Metric, bool)> {
    if let Some(&s) = SCALARS.iter().find(|&&s| s == name) {
        return Some((Metric::Scalar(s), false));
    }
    let (stat, dist) = name.split_once('_')?;
    let stat = STATS.iter().find(|&&s| s == stat)?;
    let &(dist, is_time) = DISTS.iter().find(|(d, _)| *d == dist)?;
    Some((Metric::Stat { stat, dist }, is_time))
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Threshold {
    /// Judges the report: `failed` is true when the condition holds or cannot be measured.
    pub fn check(&self, report: &Report) -> ThresholdOutcome {
        let actual = self.actual(report);
        let failed = actual.is_none_or(|a| match self.op {
            Op::Gt => a > self.value,
            Op::Ge => a >= self.value,
            Op::Lt => a < self.value,
            Op::Le => a <= self.value,
        });
        ThresholdOutcome {
            expression: self.text.clone(),
            actual,
            failed,
        }
    }

    fn actual(&self, r: &Report) -> Option<f64> {
        let s = &r.summary;
        match &self.metric {
            Metric::Scalar(name) => match *name {
                "success_rate" => (s.total_requests > 0).then_some(s.success_rate),
                "error_rate" => (s.total_requests > 0).then_some(100.0 - s.success_rate),
                "failures" => Some(s.failures as f64),
                "rps" => Some(s.requests_per_second),
                "goodput" => r.goodput.as_ref().map(|g| g.good_percent),
                "goodput_rps" => r.goodput.as_ref().map(|g| g.goodput_rps),
                _ => Some(s.output_tokens_per_second),
            },
            Metric::Stat { stat, dist } => {
                let m = &r.metrics;
                let d: Option<&Distribution> = match *dist {
                    "e2e" => m.e2e_ms.as_ref(),
                    "e2e_uncorrected" => m.e2e_uncorrected_ms.as_ref().or(m.e2e_ms.as_ref()),
                    "ttfb" => m.ttfb_ms.as_ref(),
                    "ttft" => m.ttft_ms.as_ref(),
                    "ttfc" => m.ttfc_ms.as_ref(),
                    "itl" => m.itl_ms.as_ref(),
                    "tpot" => m.tpot_ms.as_ref(),
                    "queue_wait" => m.queue_wait_ms.as_ref(),
                    "server_wait" => m.server_wait_ms.as_ref(),
                    "load" => m.load_ms.as_ref(),
                    "schedule_lag" => r
                        .open_loop
                        .as_ref()
                        .and_then(|o| o.schedule_lag_ms.as_ref()),
                    "tps" => m.tokens_per_second.as_ref(),
                    _ => m.output_tokens.as_ref(),
                };
                d.and_then(|d| d.statistic(stat))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_times_rates_and_operators() {
        let t: Threshold = "p99_e2e>2s".parse().unwrap();
        assert_eq!(
            t.metric,
            Metric::Stat {
                stat: "p99",
                dist: "e2e"
            }
        );
        assert_eq!(t.op, Op::Gt);
        assert!((t.value - 2000.0).abs() < 1e-9);
        let t: Threshold = " success_rate < 99.5% ".parse().unwrap();
        assert_eq!(t.metric, Metric::Scalar("success_rate"));
        assert_eq!(t.op, Op::Lt);
        assert!((t.value - 99.5).abs() < 1e-9);
        let t: Threshold = "avg_ttft>=250".parse().unwrap();
        assert_eq!(t.op, Op::Ge);
        assert!((t.value - 250.0).abs() < 1e-9);
        let t: Threshold = "p50_e2e_uncorrected<=1.5s".parse().unwrap();
        assert_eq!(
            t.metric,
            Metric::Stat {
                stat: "p50",
                dist: "e2e_uncorrected"
            }
        );
        assert_eq!(t.op, Op::Le);
        let t: Threshold = "p50_tps<20".parse().unwrap();
        assert!((t.value - 20.0).abs() < 1e-9);
    }

    #[test]
    fn rejects_bad_expressions_naming_them() {
        for bad in [
            "p99_e2e",
            "p98_e2e>1s",
            "p99_latency>1s",
            "p99_e2e>soon",
            "rps>x",
            ">5",
        ] {
            let e = bad.parse::<Threshold>().unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    fn report(success_rate: f64, p99_ms: f64) -> Report {
        let mut r = Report::empty_for_tests();
        r.summary.total_requests = 100;
        r.summary.success_rate = success_rate;
        r.metrics.e2e_ms = Some(Distribution {
            count: 1,
            p99: p99_ms,
            ..Distribution::default()
        });
        r
    }

    #[test]
    fn fails_when_the_condition_holds() {
        let t: Threshold = "p99_e2e>2s".parse().unwrap();
        assert!(t.check(&report(100.0, 2500.0)).failed);
        assert!(!t.check(&report(100.0, 1500.0)).failed);
        let t: Threshold = "success_rate<99".parse().unwrap();
        assert!(t.check(&report(98.0, 1.0)).failed);
        assert!(!t.check(&report(99.0, 1.0)).failed);
        let outcome = t.check(&report(98.0, 1.0));
        assert_eq!(outcome.actual, Some(98.0));
    }

    #[test]
    fn unmeasured_metrics_fail() {
        let t: Threshold = "p99_ttft>1s".parse().unwrap();
        let o = t.check(&report(100.0, 1.0));
        assert!(o.failed);
        assert_eq!(o.actual, None);
    }
}
