//! The open-loop arrival schedule: when each request is *meant* to be sent.
//!
//! Arrivals are generated in "unit time" (a constant process puts arrival `i` at `i`, a
//! Poisson process sums exponential gaps of mean 1) and mapped to wall time through the
//! inverse of the cumulative rate `Λ(t)`. With a ramp, the rate grows linearly from 0 to
//! `R` over `T` seconds, so `Λ(t) = R t² / 2T` during the ramp and `R T / 2 + R (t - T)`
//! after it. The same mapping serves both processes, so a ramped Poisson schedule is a
//! true non-homogeneous Poisson process, and a seed fixes every arrival time.

use std::time::Duration;

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use rand_distr::{Distribution as _, Exp1};
use serde::{Deserialize, Serialize};

/// How open-loop arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced: one request every `1/R` seconds.
    #[default]
    Constant,
    /// A Poisson process: exponential gaps of mean `1/R`, seeded.
    Poisson,
}

/// An endless, deterministic sequence of intended send offsets from the start of the run.
#[derive(Debug)]
pub(crate) struct Schedule {
    rate: f64,
    ramp_secs: f64,
    arrival: Arrival,
    rng: StdRng,
    /// Arrival position in unit time; the next arrival's unit time for a constant process.
    unit_time: f64,
}

impl Schedule {
    /// A schedule of `rate` arrivals per second (must be finite and positive; the config
    /// validates it), optionally ramped up over `ramp`.
    pub(crate) fn new(rate: f64, arrival: Arrival, ramp: Option<Duration>, seed: u64) -> Self {
        Self {
            rate,
            ramp_secs: ramp.map_or(0.0, |r| r.as_secs_f64()),
            arrival,
            rng: StdRng::seed_from_u64(seed),
            unit_time: 0.0,
        }
    }

    /// Wall time `t` at which the cumulative rate reaches `s` arrivals.
    fn inverse_cumulative(&self, s: f64) -> f64 {
        let (r, ramp) = (self.rate, self.ramp_secs);
        if ramp <= 0.0 {
            return s / r;
        }
        let ramp_arrivals = r * ramp / 2.0;
        if s <= ramp_arrivals {
            (2.0 * ramp * s / r).sqrt()
        } else {
            ramp + (s - ramp_arrivals) / r
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let s = match self.arrival {
            Arrival::Constant => {
                let s = self.unit_time;
                self.unit_time += 1.0;
                s
            }
            Arrival::Poisson => {
                let gap: f64 = Exp1.sample(&mut self.rng);
                self.unit_time += gap;
                self.unit_time
            }
        };
        Some(Duration::from_secs_f64(self.inverse_cumulative(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &mut Schedule, n: usize) -> Vec<f64> {
        s.take(n).map(|d| d.as_secs_f64()).collect()
    }

    #[test]
    fn constant_rate_is_evenly_spaced_from_zero() {
        let t = secs(&mut Schedule::new(4.0, Arrival::Constant, None, 1), 5);
        for (i, v) in t.iter().enumerate() {
            assert!((v - i as f64 * 0.25).abs() < 1e-9, "{t:?}");
        }
    }

    #[test]
    fn poisson_is_seeded_and_has_the_asked_mean_rate() {
        let a = secs(&mut Schedule::new(100.0, Arrival::Poisson, None, 7), 20_000);
        let b = secs(&mut Schedule::new(100.0, Arrival::Poisson, None, 7), 20_000);
        let c = secs(&mut Schedule::new(100.0, Arrival::Poisson, None, 8), 20_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        let achieved = a.len() as f64 / a[a.len() - 1];
        assert!((achieved - 100.0).abs() < 3.0, "achieved {achieved}/s");
        // Exponential gaps have a coefficient of variation of 1.
        let gaps: Vec<f64> = a.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
    }

    #[test]
    fn ramp_grows_the_rate_linearly_then_holds_it() {
        let ramp = Duration::from_secs(10);
        let t = secs(
            &mut Schedule::new(10.0, Arrival::Constant, Some(ramp), 1),
            200,
        );
        // 50 arrivals fit in the ramp (R T / 2), then 10 per second.
        let in_ramp = t.iter().filter(|&&x| x < 10.0 - 1e-9).count();
        assert_eq!(in_ramp, 50, "{t:?}");
        let in_first_half = t.iter().filter(|&&x| x < 5.0).count();
        assert!((12..=13).contains(&in_first_half), "{in_first_half}");
        let after: Vec<f64> = t.iter().copied().filter(|&x| x >= 10.0 - 1e-9).collect();
        for w in after.windows(2) {
            assert!((w[1] - w[0] - 0.1).abs() < 1e-9);
        }
    }
}
