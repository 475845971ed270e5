//! The metrics a comparison judges, with their direction and unit.
//!
//! One closed list, so a threshold key in a suite or on the command line can be checked
//! when it is read instead of silently matching nothing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether a larger value of a metric is better or worse for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Latencies and load times: smaller is better.
    LowerIsBetter,
    /// Throughput, success rate, goodput: larger is better.
    HigherIsBetter,
}

/// A metric that `compare` judges for every scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Median end-to-end latency of successful requests (ms).
    E2eP50,
    /// 95th percentile end-to-end latency (ms).
    E2eP95,
    /// 99th percentile end-to-end latency (ms).
    E2eP99,
    /// Median time to first token (ms).
    TtftP50,
    /// 95th percentile time to first token (ms).
    TtftP95,
    /// 99th percentile time to first token (ms).
    TtftP99,
    /// Median time per output token after the first (ms).
    TpotP50,
    /// 95th percentile time per output token (ms).
    TpotP95,
    /// 99th percentile time per output token (ms).
    TpotP99,
    /// Mean generation speed of a request, tokens per second (server `eval_count /
    /// eval_duration`).
    TokensPerSecond,
    /// Output tokens per second of the whole run (all requests together): capacity.
    Throughput,
    /// Successful requests over all requests (percent).
    SuccessRate,
    /// Successful requests per second that met the scenario's latency objective.
    Goodput,
    /// Mean model load time reported by the server, over requests that loaded (ms).
    LoadTime,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 14] = [
        Metric::E2eP50,
        Metric::E2eP95,
        Metric::E2eP99,
        Metric::TtftP50,
        Metric::TtftP95,
        Metric::TtftP99,
        Metric::TpotP50,
        Metric::TpotP95,
        Metric::TpotP99,
        Metric::TokensPerSecond,
        Metric::Throughput,
        Metric::SuccessRate,
        Metric::Goodput,
        Metric::LoadTime,
    ];

    /// The key used in suites, flags and JSON (`e2e_p99`, `tokens_per_second`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Metric::E2eP50 => "e2e_p50",
            Metric::E2eP95 => "e2e_p95",
            Metric::E2eP99 => "e2e_p99",
            Metric::TtftP50 => "ttft_p50",
            Metric::TtftP95 => "ttft_p95",
            Metric::TtftP99 => "ttft_p99",
            Metric::TpotP50 => "tpot_p50",
            Metric::TpotP95 => "tpot_p95",
            Metric::TpotP99 => "tpot_p99",
            Metric::TokensPerSecond => "tokens_per_second",
            Metric::Throughput => "throughput",
            Metric::SuccessRate => "success_rate",
            Metric::Goodput => "goodput",
            Metric::LoadTime => "load_time",
        }
    }

    /// A short human label for tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            Metric::E2eP50 => "e2e p50",
            Metric::E2eP95 => "e2e p95",
            Metric::E2eP99 => "e2e p99",
            Metric::TtftP50 => "TTFT p50",
            Metric::TtftP95 => "TTFT p95",
            Metric::TtftP99 => "TTFT p99",
            Metric::TpotP50 => "TPOT p50",
            Metric::TpotP95 => "TPOT p95",
            Metric::TpotP99 => "TPOT p99",
            Metric::TokensPerSecond => "tokens/s per request",
            Metric::Throughput => "output tokens/s",
            Metric::SuccessRate => "success rate",
            Metric::Goodput => "goodput",
            Metric::LoadTime => "load time",
        }
    }

    /// The unit of the metric's values.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::TokensPerSecond | Metric::Throughput => "tok/s",
            Metric::SuccessRate => "%",
            Metric::Goodput => "req/s",
            _ => "ms",
        }
    }

    /// Whether larger values are better or worse.
    pub fn direction(self) -> Direction {
        match self {
            Metric::TokensPerSecond
            | Metric::Throughput
            | Metric::SuccessRate
            | Metric::Goodput => Direction::HigherIsBetter,
            _ => Direction::LowerIsBetter,
        }
    }

    /// The metric family a threshold key may name instead of one metric (`e2e`, `ttft`, `tpot`).
    pub(crate) fn family(self) -> Option<&'static str> {
        match self {
            Metric::E2eP50 | Metric::E2eP95 | Metric::E2eP99 => Some("e2e"),
            Metric::TtftP50 | Metric::TtftP95 | Metric::TtftP99 => Some("ttft"),
            Metric::TpotP50 | Metric::TpotP95 | Metric::TpotP99 => Some("tpot"),
            _ => None,
        }
    }

    /// The quantile a latency metric reads from its histogram, if it is one.
    pub(crate) fn quantile(self) -> Option<f64> {
        match self {
            Metric::E2eP50 | Metric::TtftP50 | Metric::TpotP50 => Some(0.50),
            Metric::E2eP95 | Metric::TtftP95 | Metric::TpotP95 => Some(0.95),
            Metric::E2eP99 | Metric::TtftP99 | Metric::TpotP99 => Some(0.99),
            _ => None,
        }
    }

    /// The default regression threshold in percent, used when neither flags nor the suite set one.
    ///
    /// Tail percentiles move more between identical runs than medians, so they get more room.
    pub fn default_threshold_pct(self) -> f64 {
        match self {
            Metric::E2eP50
            | Metric::TtftP50
            | Metric::TpotP50
            | Metric::TokensPerSecond
            | Metric::Throughput
            | Metric::Goodput => 10.0,
            Metric::E2eP95 | Metric::TtftP95 | Metric::TpotP95 => 15.0,
            Metric::E2eP99 | Metric::TtftP99 | Metric::TpotP99 => 20.0,
            Metric::SuccessRate => 1.0,
            Metric::LoadTime => 25.0,
        }
    }
}

impl Metric {
    /// The built-in absolute noise floor, in the metric's unit: changes smaller than this are
    /// never judged, whatever their relative size.
    pub fn default_noise_floor(self) -> f64 {
        match self {
            Metric::E2eP50
            | Metric::E2eP95
            | Metric::E2eP99
            | Metric::TtftP50
            | Metric::TtftP95
            | Metric::TtftP99 => 1.0,
            Metric::TpotP50 | Metric::TpotP95 | Metric::TpotP99 => 0.1,
            Metric::TokensPerSecond | Metric::Throughput => 0.5,
            Metric::LoadTime => 10.0,
            Metric::SuccessRate | Metric::Goodput => 0.0,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.key() == s)
            .ok_or_else(|| format!("unknown metric `{s}` (known: {})", known_keys()))
    }
}

/// The comma-separated list of metric keys, for error messages.
pub(crate) fn known_keys() -> String {
    Metric::ALL
        .iter()
        .map(|m| m.key())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for m in Metric::ALL {
            assert_eq!(m.key().parse::<Metric>(), Ok(m));
            let json = serde_json::to_string(&m).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", m.key()));
        }
        assert!("p99".parse::<Metric>().is_err());
    }
}
