//! The verdict on one metric: improved, regressed, unchanged or inconclusive.
//!
//! The rule is an equivalence test on the confidence interval of the relative change,
//! oriented so that positive means "worse" and compared with the threshold `t`:
//!
//! * **regressed**: the whole interval is worse than `+t` (confidently worse by more than
//!   the threshold);
//! * **improved**: the whole interval is better than `-t`;
//! * **unchanged**: the whole interval lies inside `[-t, +t]` (confidently within the
//!   threshold);
//! * **inconclusive**: anything else, including no interval at all.
//!
//! Requiring the whole interval past the threshold makes a false "regressed" (which fails a
//! pipeline) rare by construction: identical runs would need their interval to miss zero by
//! more than the threshold. An operator who sees "inconclusive" adds repetitions.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::metric::Direction;
use crate::stats::Change;

/// The outcome of comparing one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Confidently better by more than the threshold.
    Improved,
    /// Confidently within the threshold either way.
    Unchanged,
    /// The data cannot tell; add repetitions or requests.
    Inconclusive,
    /// Confidently worse by more than the threshold.
    Regressed,
}

impl Verdict {
    /// The lowercase word used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Regressed => "regressed",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Judges a change against a threshold in percent (positive), given which way is better.
pub fn judge(change: &Change, direction: Direction, threshold_pct: f64) -> Verdict {
    let Some(ci) = change.ci else {
        return Verdict::Inconclusive;
    };
    // Orient the interval so that positive always means worse.
    let (lo, hi) = match direction {
        Direction::LowerIsBetter => (ci.lo, ci.hi),
        Direction::HigherIsBetter => (-ci.hi, -ci.lo),
    };
    let t = threshold_pct.abs();
    if lo > t {
        Verdict::Regressed
    } else if hi < -t {
        Verdict::Improved
    } else if lo >= -t && hi <= t {
        Verdict::Unchanged
    } else {
        Verdict::Inconclusive
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::stats::Interval;

    fn ch(lo: f64, hi: f64) -> Change {
        Change {
            pct: Some(f64::midpoint(lo, hi)),
            ci: Some(Interval { lo, hi }),
        }
    }

    #[test]
    fn lower_is_better() {
        let d = Direction::LowerIsBetter;
        assert_eq!(judge(&ch(12.0, 30.0), d, 10.0), Verdict::Regressed);
        assert_eq!(judge(&ch(-30.0, -12.0), d, 10.0), Verdict::Improved);
        assert_eq!(judge(&ch(-4.0, 6.0), d, 10.0), Verdict::Unchanged);
        assert_eq!(judge(&ch(-10.0, 10.0), d, 10.0), Verdict::Unchanged);
        // Worse for sure, but not surely by more than the threshold.
        assert_eq!(judge(&ch(2.0, 25.0), d, 10.0), Verdict::Inconclusive);
        assert_eq!(judge(&ch(-25.0, 25.0), d, 10.0), Verdict::Inconclusive);
        assert_eq!(judge(&ch(-25.0, -2.0), d, 10.0), Verdict::Inconclusive);
    }

    #[test]
    fn higher_is_better_flips_the_interval() {
        let d = Direction::HigherIsBetter;
        assert_eq!(judge(&ch(-40.0, -20.0), d, 10.0), Verdict::Regressed);
        assert_eq!(judge(&ch(20.0, 40.0), d, 10.0), Verdict::Improved);
        assert_eq!(judge(&ch(-1.0, 1.0), d, 10.0), Verdict::Unchanged);
    }

    #[test]
    fn no_interval_is_inconclusive() {
        let c = Change {
            pct: Some(500.0),
            ci: None,
        };
        assert_eq!(
            judge(&c, Direction::LowerIsBetter, 10.0),
            Verdict::Inconclusive
        );
        let c = Change {
            pct: None,
            ci: None,
        };
        assert_eq!(
            judge(&c, Direction::LowerIsBetter, 10.0),
            Verdict::Inconclusive
        );
    }

    #[test]
    fn order_puts_regressed_last() {
        let mut v = [
            Verdict::Regressed,
            Verdict::Improved,
            Verdict::Inconclusive,
            Verdict::Unchanged,
        ];
        v.sort();
        assert_eq!(v.last(), Some(&Verdict::Regressed));
    }
}
