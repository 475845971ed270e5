//! Service-level objectives for goodput: `--slo ttft=500ms,tpot=50ms,e2e=5s`.
//!
//! A request is "good" when it succeeded and met every objective given. A non-streamed
//! response shows its first token only when it completes, so its TTFT is its end-to-end
//! latency; a request with fewer than two output tokens has no TPOT and meets that
//! objective trivially.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::duration::{BareUnit, parse_duration};
use crate::report::SloRecord;

/// Latency objectives; `None` means "no objective for this metric".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slo {
    /// Time to first token.
    pub ttft: Option<Duration>,
    /// Time per output token after the first.
    pub tpot: Option<Duration>,
    /// End-to-end latency.
    pub e2e: Option<Duration>,
}

/// A malformed `--slo` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SLO {text:?}: {reason}")]
pub struct SloParseError {
    text: String,
    reason: String,
}

impl FromStr for Slo {
    type Err = SloParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| SloParseError {
            text: text.to_owned(),
            reason,
        };
        let mut slo = Slo::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| err(format!("{part:?} is not NAME=DURATION")))?;
            let value = parse_duration(value, BareUnit::Millis).map_err(err)?;
            let slot = match name.trim() {
                "ttft" => &mut slo.ttft,
                "tpot" => &mut slo.tpot,
                "e2e" | "latency" => &mut slo.e2e,
                other => {
                    return Err(err(format!(
                        "unknown metric {other:?} (use ttft, tpot or e2e)"
                    )));
                }
            };
            if slot.replace(value).is_some() {
                return Err(err(format!("{name} is given twice")));
            }
        }
        if slo == Slo::default() {
            return Err(err("no objective given".to_owned()));
        }
        Ok(slo)
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [("ttft", self.ttft), ("tpot", self.tpot), ("e2e", self.e2e)]
            .into_iter()
            .filter_map(|(n, d)| d.map(|d| format!("{n}={}ms", d.as_secs_f64() * 1e3)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Slo {
    /// Whether a successful request with these measurements meets every objective.
    pub(crate) fn is_met(
        &self,
        e2e: Duration,
        ttft: Option<Duration>,
        tpot: Option<Duration>,
    ) -> bool {
        let within = |limit: Option<Duration>, value: Option<Duration>| {
            limit.is_none_or(|l| value.is_none_or(|v| v <= l))
        };
        within(self.e2e, Some(e2e))
            && within(self.ttft, Some(ttft.unwrap_or(e2e)))
            && within(self.tpot, tpot)
    }

    pub(crate) fn record(&self) -> SloRecord {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        SloRecord {
            ttft_ms: ms(self.ttft),
            tpot_ms: ms(self.tpot),
            e2e_ms: ms(self.e2e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn parses_the_documented_form() {
        let slo: Slo = "ttft=500ms,e2e=5s".parse().unwrap();
        assert_eq!(slo.ttft, Some(MS(500)));
        assert_eq!(slo.e2e, Some(MS(5000)));
        assert_eq!(slo.tpot, None);
        let slo: Slo = " tpot = 40 , ttft=1.5s ".parse().unwrap();
        assert_eq!(slo.tpot, Some(MS(40)));
        assert_eq!(slo.ttft, Some(MS(1500)));
        assert_eq!(slo.to_string(), "ttft=1500ms,tpot=40ms");
    }

    #[test]
    fn rejects_bad_input_naming_it() {
        for bad in ["", "ttft", "ttft=fast", "p99=1s", "ttft=1s,ttft=2s"] {
            let e = bad.parse::<Slo>().unwrap_err().to_string();
            assert!(e.contains("invalid SLO"), "{bad}: {e}");
        }
        let e = "speed=1s".parse::<Slo>().unwrap_err().to_string();
        assert!(e.contains("speed"), "{e}");
    }

    #[test]
    fn goodput_judgement() {
        let slo: Slo = "ttft=500ms,e2e=5s,tpot=50ms".parse().unwrap();
        assert!(slo.is_met(MS(4000), Some(MS(400)), Some(MS(40))));
        assert!(!slo.is_met(MS(6000), Some(MS(400)), Some(MS(40))));
        assert!(!slo.is_met(MS(4000), Some(MS(600)), Some(MS(40))));
        assert!(!slo.is_met(MS(4000), Some(MS(400)), Some(MS(60))));
        // Not streamed: the first token is seen at completion.
        assert!(!slo.is_met(MS(900), None, None));
        assert!(slo.is_met(MS(450), None, None));
    }
}
