//! Bootstrap confidence intervals for the relative change of a metric between two runs.
//!
//! Why a bootstrap: latency percentiles have no usable closed-form interval, and load tests
//! vary in two ways at once: within one run (which requests happened to be slow) and from run
//! to run (a warm cache, a neighbour on the host). The bootstrap here is hierarchical so both
//! show up in the interval: each resample first draws repetitions with replacement, then
//! redraws each chosen repetition's own data.
//!
//! Redrawing "each repetition's own data" never materialises samples for quantiles. The
//! k-th smallest of n values drawn with replacement from an empirical distribution F is
//! exactly `F⁻¹(U₍ₖ₎)` where `U₍ₖ₎ ~ Beta(k, n + 1 - k)` is the k-th order statistic of n
//! uniforms; so one Beta draw and one binary search over the histogram give an exact
//! bootstrap replicate of a percentile, whatever n is. Proportions redraw as binomials.
//! Means redraw explicitly for small n and by the central limit theorem for large n.

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Binomial, Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Above this many values a resampled mean is drawn from its normal approximation.
const EXPLICIT_MEAN_LIMIT: u64 = 100;

/// How the bootstrap runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Number of bootstrap resamples (default 2000).
    pub resamples: usize,
    /// Two-sided confidence level, e.g. 0.95.
    pub confidence: f64,
    /// Seed, so the same inputs always give the same interval.
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 2_000,
            confidence: 0.95,
            seed: 20_260_101,
        }
    }
}

/// The empirical distribution of one histogram, as steps of (value, cumulative count).
///
/// Invariant: `values` ascend, `cumulative` strictly ascends, and its last entry is `total`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cdf {
    values: Vec<f64>,
    cumulative: Vec<u64>,
    total: u64,
}

impl Cdf {
    /// Builds the distribution of `h`, multiplying every value by `scale` (a unit change).
    ///
    /// Each bucket is represented by its median equivalent value, as the load-test report's
    /// `Distribution` does, so point percentiles here match the ones it prints.
    pub(crate) fn from_histogram(h: &Histogram<u64>, scale: f64) -> Cdf {
        let mut values = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for v in h.iter_recorded() {
            total += v.count_at_value();
            values.push(h.median_equivalent(v.value_iterated_to()) as f64 * scale);
            cumulative.push(total);
        }
        Cdf {
            values,
            cumulative,
            total,
        }
    }

    /// Builds the distribution of plain values (used by tests and by event summaries).
    pub(crate) fn from_values(values: &[f64]) -> Cdf {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let mut out = Cdf {
            values: Vec::new(),
            cumulative: Vec::new(),
            total: 0,
        };
        for v in sorted {
            out.total += 1;
            if out.values.last() == Some(&v) {
                if let Some(c) = out.cumulative.last_mut() {
                    *c = out.total;
                }
            } else {
                out.values.push(v);
                out.cumulative.push(out.total);
            }
        }
        out
    }

    /// The distribution of all values of several distributions together.
    pub(crate) fn pool<'a>(parts: impl IntoIterator<Item = &'a Cdf>) -> Cdf {
        let mut steps: Vec<(f64, u64)> = parts.into_iter().flat_map(Cdf::steps).collect();
        steps.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out = Cdf {
            values: Vec::new(),
            cumulative: Vec::new(),
            total: 0,
        };
        for (v, n) in steps {
            out.total += n;
            if out.values.last() == Some(&v) {
                if let Some(c) = out.cumulative.last_mut() {
                    *c = out.total;
                }
            } else {
                out.values.push(v);
                out.cumulative.push(out.total);
            }
        }
        out
    }

    /// Number of values.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// The value at rank `k` (1-based) in ascending order.
    fn at_rank(&self, k: u64) -> f64 {
        let i = self.cumulative.partition_point(|&c| c < k);
        self.values[i.min(self.values.len() - 1)]
    }

    /// The q-quantile by the nearest-rank rule (the value at rank ⌈q·n⌉, at least 1).
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        self.at_rank(rank(q, self.total))
    }

    /// `F⁻¹(u)` for u in [0, 1].
    fn inverse(&self, u: f64) -> f64 {
        self.at_rank(((u * self.total as f64).ceil() as u64).clamp(1, self.total))
    }

    /// The arithmetic mean.
    pub(crate) fn mean(&self) -> f64 {
        self.steps().map(|(v, c)| v * c as f64).sum::<f64>() / self.total as f64
    }

    fn variance(&self) -> f64 {
        let m = self.mean();
        self.steps()
            .map(|(v, c)| (v - m) * (v - m) * c as f64)
            .sum::<f64>()
            / self.total as f64
    }

    /// (value, count) for each step.
    pub(crate) fn steps(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut prev = 0;
        self.values
            .iter()
            .zip(&self.cumulative)
            .map(move |(&v, &c)| {
                let n = c - prev;
                prev = c;
                (v, n)
            })
    }
}

/// Nearest rank ⌈q·n⌉, clamped to [1, n].
fn rank(q: f64, n: u64) -> u64 {
    ((q * n as f64).ceil() as u64).clamp(1, n)
}

/// A hits-out-of-trials count, reported as `hits / trials * scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Proportion {
    pub(crate) hits: u64,
    pub(crate) trials: u64,
    /// 100 for a percentage; `trials / seconds` turns a fraction into a rate.
    pub(crate) scale: f64,
}

/// One side's evidence for one metric, one entry per repetition.
///
/// Invariant: no entry is empty (a `Cdf` with values, a proportion with trials); builders drop
/// repetitions that have no data for a metric, and an `Evidence` with no entries means
/// "no data on this side".
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Evidence {
    /// A quantile of each repetition's histogram.
    Quantile { q: f64, reps: Vec<Cdf> },
    /// The mean of each repetition's histogram.
    Mean { reps: Vec<Cdf> },
    /// A proportion (success rate).
    Proportion { reps: Vec<Proportion> },
    /// A proportion turned into a rate by the run's own request rate (goodput). The hits
    /// redraw as binomials, but the request rate is a whole-run number, so like
    /// [`Evidence::Scalar`] it needs two repetitions for an interval.
    Rate { reps: Vec<Proportion> },
    /// One number per repetition with no within-run model (whole-run throughput); only the
    /// spread between repetitions informs its interval.
    Scalar { reps: Vec<f64> },
}

impl Evidence {
    fn len(&self) -> usize {
        match self {
            Evidence::Quantile { reps, .. } | Evidence::Mean { reps } => reps.len(),
            Evidence::Proportion { reps } | Evidence::Rate { reps } => reps.len(),
            Evidence::Scalar { reps } => reps.len(),
        }
    }

    /// Whether a bootstrap of this evidence can show any variation at all.
    fn has_spread_model(&self) -> bool {
        match self {
            Evidence::Scalar { reps } => reps.len() >= 2,
            Evidence::Rate { reps } => reps.len() >= 2,
            Evidence::Quantile { .. } | Evidence::Mean { .. } | Evidence::Proportion { .. } => true,
        }
    }

    fn rep_point(&self, i: usize) -> f64 {
        match self {
            Evidence::Quantile { q, reps } => reps[i].quantile(*q),
            Evidence::Mean { reps } => reps[i].mean(),
            Evidence::Proportion { reps } | Evidence::Rate { reps } => {
                let p = reps[i];
                p.hits as f64 / p.trials as f64 * p.scale
            }
            Evidence::Scalar { reps } => reps[i],
        }
    }

    /// The point estimate: the mean over repetitions of each repetition's value.
    pub(crate) fn point(&self) -> Option<f64> {
        let n = self.len();
        (n > 0).then(|| (0..n).map(|i| self.rep_point(i)).sum::<f64>() / n as f64)
    }

    /// One bootstrap replicate of the repetition's value.
    fn rep_draw(&self, i: usize, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Evidence::Quantile { q, reps } => {
                let cdf = &reps[i];
                let n = cdf.len();
                let k = rank(*q, n);
                // Beta(k, n+1-k) with both shapes >= 1 is always valid.
                let u = Beta::new(k as f64, (n + 1 - k) as f64).map_or(0.5, |b| b.sample(rng));
                cdf.inverse(u)
            }
            Evidence::Mean { reps } => {
                let cdf = &reps[i];
                let n = cdf.len();
                if n <= EXPLICIT_MEAN_LIMIT {
                    (0..n)
                        .map(|_| cdf.inverse(rng.random::<f64>()))
                        .sum::<f64>()
                        / n as f64
                } else {
                    let sd = (cdf.variance() / n as f64).sqrt();
                    Normal::new(cdf.mean(), sd).map_or(cdf.mean(), |d| d.sample(rng))
                }
            }
            Evidence::Proportion { reps } | Evidence::Rate { reps } => {
                let p = reps[i];
                let f = p.hits as f64 / p.trials as f64;
                let hits = Binomial::new(p.trials, f).map_or(p.hits, |b| b.sample(rng));
                hits as f64 / p.trials as f64 * p.scale
            }
            Evidence::Scalar { reps } => reps[i],
        }
    }

    /// One bootstrap replicate of the side's value: repetitions drawn with replacement, each
    /// redrawn from its own data, averaged.
    fn draw(&self, rng: &mut ChaCha8Rng) -> f64 {
        let n = self.len();
        if n == 1 {
            return self.rep_draw(0, rng);
        }
        (0..n)
            .map(|_| {
                let i = rng.random_range(0..n);
                self.rep_draw(i, rng)
            })
            .sum::<f64>()
            / n as f64
    }
}

/// A closed interval `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// One value with its bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Mean over repetitions of each repetition's value.
    pub point: f64,
    /// Confidence interval, absent when the data cannot show variation (one repetition of a
    /// whole-run number).
    pub ci: Option<Interval>,
}

/// The relative change of a metric from base to candidate, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `(candidate - base) / base * 100`; absent when the base is zero and the candidate is not.
    pub pct: Option<f64>,
    /// Confidence interval of `pct`; absent when the data cannot support one.
    pub ci: Option<Interval>,
}

fn percentile_interval(mut draws: Vec<f64>, confidence: f64) -> Option<Interval> {
    if draws.is_empty() {
        return None;
    }
    draws.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence).clamp(0.0, 1.0) / 2.0;
    let pick = |p: f64| {
        let pos = p * (draws.len() - 1) as f64;
        let (i, frac) = (pos.floor() as usize, pos.fract());
        let j = (i + 1).min(draws.len() - 1);
        draws[i] + (draws[j] - draws[i]) * frac
    };
    Some(Interval {
        lo: pick(alpha),
        hi: pick(1.0 - alpha),
    })
}

/// The value of one side with its interval.
pub(crate) fn estimate(ev: &Evidence, cfg: &BootstrapConfig) -> Option<Estimate> {
    let point = ev.point()?;
    let ci = if ev.has_spread_model() {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let draws = (0..cfg.resamples).map(|_| ev.draw(&mut rng)).collect();
        percentile_interval(draws, cfg.confidence)
    } else {
        None
    };
    Some(Estimate { point, ci })
}

/// The relative change from `base` to `candidate` with its bootstrap interval.
///
/// Returns `None` when either side has no data.
pub(crate) fn change(
    base: &Evidence,
    candidate: &Evidence,
    cfg: &BootstrapConfig,
) -> Option<Change> {
    let (b, c) = (base.point()?, candidate.point()?);
    if b == 0.0 {
        // A relative change from zero is undefined unless nothing changed.
        let zero = Interval { lo: 0.0, hi: 0.0 };
        return Some(if c == 0.0 {
            Change {
                pct: Some(0.0),
                ci: Some(zero),
            }
        } else {
            Change {
                pct: None,
                ci: None,
            }
        });
    }
    let pct = (c - b) / b * 100.0;
    // With a single whole-run number on either side, the bootstrap would show the other
    // side's spread only, which understates the uncertainty: give no interval at all.
    if !(base.has_spread_model() && candidate.has_spread_model()) {
        return Some(Change {
            pct: Some(pct),
            ci: None,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut draws = Vec::with_capacity(cfg.resamples);
    let mut undefined = 0usize;
    for _ in 0..cfg.resamples {
        let (bd, cd) = (base.draw(&mut rng), candidate.draw(&mut rng));
        if bd == 0.0 {
            undefined += 1;
        } else {
            draws.push((cd - bd) / bd * 100.0);
        }
    }
    // If more than the interval's own tail mass is undefined, the interval would be a guess.
    let ci = if (undefined as f64) <= (1.0 - cfg.confidence) / 2.0 * cfg.resamples as f64 {
        percentile_interval(draws, cfg.confidence)
    } else {
        None
    };
    Some(Change { pct: Some(pct), ci })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::float_cmp)]
mod tests {
    use super::*;
    use rand_distr::LogNormal;

    fn lognormal(n: usize, median_ms: f64, seed: u64) -> Cdf {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = LogNormal::new(median_ms.ln(), 0.4).unwrap();
        let v: Vec<f64> = (0..n).map(|_| d.sample(&mut rng)).collect();
        Cdf::from_values(&v)
    }

    fn hist_of(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn cdf_matches_hdrhistogram_percentiles() {
        let values: Vec<u64> = (1..=1000).map(|i| i * 37 % 5003 + 100).collect();
        let h = hist_of(&values);
        let cdf = Cdf::from_histogram(&h, 1.0);
        assert_eq!(cdf.len(), 1000);
        for q in [0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let expected = h.median_equivalent(h.value_at_quantile(q)) as f64;
            assert_eq!(cdf.quantile(q), expected, "q={q}");
        }
        let scaled = Cdf::from_histogram(&h, 0.001);
        assert!((scaled.quantile(0.5) - cdf.quantile(0.5) / 1000.0).abs() < 1e-9);
        assert!((cdf.mean() - h.mean()).abs() / h.mean() < 0.01);
    }

    #[test]
    fn from_values_counts_duplicates() {
        let c = Cdf::from_values(&[3.0, 1.0, 3.0, 2.0, f64::NAN]);
        assert_eq!(c.len(), 4);
        assert_eq!(
            c.steps().collect::<Vec<_>>(),
            vec![(1.0, 1), (2.0, 1), (3.0, 2)]
        );
        assert_eq!(c.quantile(0.5), 2.0);
        assert_eq!(c.quantile(1.0), 3.0);
        assert_eq!(c.mean(), 2.25);
        let p = Cdf::pool([&c, &Cdf::from_values(&[2.0, 5.0])]);
        assert_eq!(
            p.steps().collect::<Vec<_>>(),
            vec![(1.0, 1), (2.0, 2), (3.0, 2), (5.0, 1)]
        );
    }

    #[test]
    fn quantile_interval_covers_the_truth_about_95_percent_of_the_time() {
        // Coverage check of the order-statistic bootstrap: the true median of a lognormal
        // with median 100 is 100; a 95% interval from 200 samples should contain it in
        // roughly 95 of 100 independent experiments (allow 85..=100 for sampling noise).
        let cfg = BootstrapConfig {
            resamples: 500,
            ..BootstrapConfig::default()
        };
        let covered = (0..100)
            .filter(|&s| {
                let ev = Evidence::Quantile {
                    q: 0.5,
                    reps: vec![lognormal(200, 100.0, s)],
                };
                let ci = estimate(&ev, &cfg).unwrap().ci.unwrap();
                ci.lo <= 100.0 && 100.0 <= ci.hi
            })
            .count();
        assert!((85..=100).contains(&covered), "covered {covered}/100");
    }

    #[test]
    fn change_of_a_real_shift_excludes_zero_and_identical_data_includes_it() {
        let cfg = BootstrapConfig::default();
        let base = Evidence::Quantile {
            q: 0.95,
            reps: vec![lognormal(400, 100.0, 1), lognormal(400, 100.0, 2)],
        };
        let slow = Evidence::Quantile {
            q: 0.95,
            reps: vec![lognormal(400, 150.0, 3), lognormal(400, 150.0, 4)],
        };
        let same = Evidence::Quantile {
            q: 0.95,
            reps: vec![lognormal(400, 100.0, 5), lognormal(400, 100.0, 6)],
        };
        let up = change(&base, &slow, &cfg).unwrap();
        let ci = up.ci.unwrap();
        assert!(ci.lo > 25.0 && ci.hi < 80.0, "{up:?}");
        let flat = change(&base, &same, &cfg).unwrap();
        let ci = flat.ci.unwrap();
        assert!(ci.lo < 0.0 && ci.hi > 0.0, "{flat:?}");
        // Deterministic for a fixed seed.
        assert_eq!(change(&base, &slow, &cfg), Some(up));
    }

    #[test]
    fn proportions_means_and_scalars() {
        let cfg = BootstrapConfig::default();
        let all = Evidence::Proportion {
            reps: vec![Proportion {
                hits: 50,
                trials: 50,
                scale: 100.0,
            }],
        };
        let c = change(&all, &all.clone(), &cfg).unwrap();
        assert_eq!(c.pct, Some(0.0));
        assert_eq!(c.ci, Some(Interval { lo: 0.0, hi: 0.0 }));
        let half = Evidence::Proportion {
            reps: vec![Proportion {
                hits: 25,
                trials: 50,
                scale: 100.0,
            }],
        };
        let c = change(&all, &half, &cfg).unwrap();
        assert!((c.pct.unwrap() + 50.0).abs() < 1e-9);
        assert!(c.ci.unwrap().hi < -30.0);

        let rate = |hits| Proportion {
            hits,
            trials: 50,
            scale: 10.0,
        };
        let c = change(
            &Evidence::Rate {
                reps: vec![rate(50)],
            },
            &Evidence::Rate {
                reps: vec![rate(45)],
            },
            &cfg,
        )
        .unwrap();
        assert_eq!(c.ci, None, "one repetition of a rate has no interval");
        let c = change(
            &Evidence::Rate {
                reps: vec![rate(50), rate(48)],
            },
            &Evidence::Rate {
                reps: vec![rate(45), rate(44)],
            },
            &cfg,
        )
        .unwrap();
        assert!(c.ci.is_some());

        let one = Evidence::Scalar { reps: vec![10.0] };
        let c = change(&one, &Evidence::Scalar { reps: vec![12.0] }, &cfg).unwrap();
        assert!((c.pct.unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(
            c.ci, None,
            "one whole-run number per side cannot give an interval"
        );
        let three = Evidence::Scalar {
            reps: vec![10.0, 11.0, 9.0],
        };
        let c = change(&three, &three.clone(), &cfg).unwrap();
        let ci = c.ci.unwrap();
        assert!(ci.lo < 0.0 && ci.hi > 0.0);

        let m = Evidence::Mean {
            reps: vec![Cdf::from_values(&[1.0, 2.0, 3.0])],
        };
        assert_eq!(m.point(), Some(2.0));
        let e = estimate(&m, &cfg).unwrap();
        let ci = e.ci.unwrap();
        assert!(ci.lo >= 1.0 && ci.hi <= 3.0 && ci.lo < 2.0 && ci.hi > 2.0);
        let big = Evidence::Mean {
            reps: vec![lognormal(5000, 100.0, 9)],
        };
        let e = estimate(&big, &cfg).unwrap();
        let ci = e.ci.unwrap();
        assert!(ci.lo < e.point && e.point < ci.hi && ci.hi - ci.lo < 5.0);
    }

    #[test]
    fn zero_base_and_missing_data() {
        let cfg = BootstrapConfig::default();
        let zero = Evidence::Scalar {
            reps: vec![0.0, 0.0],
        };
        let c = change(&zero, &zero.clone(), &cfg).unwrap();
        assert_eq!(c.pct, Some(0.0));
        let some = Evidence::Scalar {
            reps: vec![1.0, 2.0],
        };
        assert_eq!(
            change(&zero, &some, &cfg),
            Some(Change {
                pct: None,
                ci: None
            })
        );
        let none = Evidence::Scalar { reps: vec![] };
        assert_eq!(change(&none, &some, &cfg), None);
    }
}
