//! From load-test reports to the per-metric evidence the bootstrap resamples.
//!
//! Percentile metrics come from the serialized HDR histograms, never from the printed
//! percentiles, so that the interval reflects how many requests a percentile rests on.

use ollama_loadtest::Report;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::metric::Metric;
use crate::stats::{Cdf, Evidence, Proportion};

/// What one repetition contributes to every metric.
#[derive(Debug, Clone)]
pub(crate) struct RepData {
    e2e: Option<Cdf>,
    ttft: Option<Cdf>,
    tpot: Option<Cdf>,
    tokens_per_second: Option<Cdf>,
    load: Option<Cdf>,
    total: u64,
    successes: u64,
    good: u64,
    duration_s: f64,
    throughput: f64,
}

impl RepData {
    /// Decodes the histograms of one report; `context` names it in errors.
    pub(crate) fn from_report(r: &Report, context: &str) -> Result<RepData, Error> {
        let cdf = |name: &str| -> Result<Option<Cdf>, Error> {
            let Some(encoded) = r.histograms.get(name) else {
                return Ok(None);
            };
            let h = encoded
                .decode()
                .map_err(|e| Error::Input(format!("{context}: histogram `{name}`: {e}")))?;
            let c = Cdf::from_histogram(&h, encoded.scale);
            Ok((c.len() > 0).then_some(c))
        };
        Ok(RepData {
            e2e: cdf("e2e")?,
            ttft: cdf("ttft")?,
            tpot: cdf("tpot")?,
            tokens_per_second: cdf("tokens_per_second")?,
            load: cdf("load")?,
            total: r.summary.total_requests,
            successes: r.summary.successes,
            good: r
                .goodput
                .as_ref()
                .map_or(r.summary.successes, |g| g.good_requests),
            duration_s: r.summary.test_duration_seconds,
            throughput: r.summary.output_tokens_per_second,
        })
    }

    fn latency(&self, metric: Metric) -> Option<&Cdf> {
        match metric {
            Metric::E2eP50 | Metric::E2eP95 | Metric::E2eP99 => self.e2e.as_ref(),
            Metric::TtftP50 | Metric::TtftP95 | Metric::TtftP99 => self.ttft.as_ref(),
            Metric::TpotP50 | Metric::TpotP95 | Metric::TpotP99 => self.tpot.as_ref(),
            _ => None,
        }
    }

    /// The distribution a curve is drawn from.
    pub(crate) fn curve_source(&self, curve: Curve) -> Option<&Cdf> {
        match curve {
            Curve::E2e => self.e2e.as_ref(),
            Curve::Ttft => self.ttft.as_ref(),
        }
    }
}

/// The evidence for `metric` over repetitions; repetitions without data for it are left out.
pub(crate) fn evidence(reps: &[RepData], metric: Metric) -> Evidence {
    if let Some(q) = metric.quantile() {
        return Evidence::Quantile {
            q,
            reps: reps
                .iter()
                .filter_map(|r| r.latency(metric).cloned())
                .collect(),
        };
    }
    match metric {
        Metric::TokensPerSecond => Evidence::Mean {
            reps: reps
                .iter()
                .filter_map(|r| r.tokens_per_second.clone())
                .collect(),
        },
        Metric::LoadTime => Evidence::Mean {
            reps: reps.iter().filter_map(|r| r.load.clone()).collect(),
        },
        Metric::Throughput => Evidence::Scalar {
            reps: reps
                .iter()
                // Embeddings generate no tokens: no throughput to judge.
                .filter(|r| r.duration_s > 0.0 && r.throughput > 0.0)
                .map(|r| r.throughput)
                .collect(),
        },
        Metric::SuccessRate => Evidence::Proportion {
            reps: reps
                .iter()
                .filter(|r| r.total > 0)
                .map(|r| Proportion {
                    hits: r.successes,
                    trials: r.total,
                    scale: 100.0,
                })
                .collect(),
        },
        Metric::Goodput => Evidence::Rate {
            reps: reps
                .iter()
                .filter(|r| r.total > 0 && r.duration_s > 0.0)
                .map(|r| Proportion {
                    hits: r.good,
                    trials: r.total,
                    scale: r.total as f64 / r.duration_s,
                })
                .collect(),
        },
        // Every quantile metric returned above.
        _ => Evidence::Scalar { reps: Vec::new() },
    }
}

/// A latency distribution drawn as a CDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Curve {
    /// End-to-end latency.
    E2e,
    /// Time to first token.
    Ttft,
}

impl Curve {
    /// Both curves.
    pub const ALL: [Curve; 2] = [Curve::E2e, Curve::Ttft];

    /// Chart title.
    pub fn label(self) -> &'static str {
        match self {
            Curve::E2e => "end-to-end latency",
            Curve::Ttft => "time to first token",
        }
    }
}

/// Points `(value in ms, cumulative fraction)` of the pooled distribution of all
/// repetitions, thinned to at most about 200 points with the tail kept in detail.
pub(crate) fn cdf_points(reps: &[RepData], curve: Curve) -> Vec<[f64; 2]> {
    let pooled = Cdf::pool(reps.iter().filter_map(|r| r.curve_source(curve)));
    let n = pooled.len();
    if n == 0 {
        return Vec::new();
    }
    let mut qs: Vec<f64> = (0..=180).map(|i| f64::from(i) / 200.0).collect();
    qs.extend([
        0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 0.999, 1.0,
    ]);
    let mut out: Vec<[f64; 2]> = Vec::with_capacity(qs.len());
    for q in qs {
        let v = pooled.quantile(q);
        let frac = q.max(1.0 / n as f64);
        if out.last().is_none_or(|last| {
            last[0].to_bits() != v.to_bits() || last[1].to_bits() != frac.to_bits()
        }) {
            out.push([v, frac]);
        }
    }
    out
}
