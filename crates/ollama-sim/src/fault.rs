//! Fault injection: which requests misbehave, and how.
//!
//! A [`FaultPlan`] is a seed plus an ordered list of [`FaultRule`]s. Every request is
//! checked against the rules that match its endpoint; each matching rule counts the
//! request, and the first rule whose trigger fires decides the fault. Decisions are a pure
//! function of (seed, rule index, the rule's request count), so the same request sequence
//! gets the same faults on every run.
//!
//! One grammar serves the CLI (`--fault`), the TOML file (`[[faults.rules]]`, same keys)
//! and tests: comma-separated `key=value` pairs, for example
//! `kind=reset,after=3,rate=0.2,endpoint=/api/generate`. See [`FaultRule::parse`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::error::SimError;

/// How a faulty request misbehaves.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FaultKind {
    /// Answer at once with this HTTP status and an Ollama-shaped error body
    /// (`{"error":…}` natively, the OpenAI envelope on `/v1`).
    Status {
        /// The HTTP status code (400-599).
        status: u16,
        /// The error text; `None` picks a realistic one for the status.
        message: Option<String>,
    },
    /// Answer 503 with Ollama's exact queue-full text.
    Busy,
    /// Reset the TCP connection (RST) after `after` stream chunks; on a non-streamed
    /// request, reset instead of answering.
    Reset {
        /// Chunks written before the reset.
        after: u32,
    },
    /// Write nothing for `duration` after `after` chunks, then carry on; a non-streamed
    /// answer is held back for `duration`.
    Stall {
        /// Chunks written before the stall.
        after: u32,
        /// How long nothing is written (simulated time).
        duration: Duration,
    },
    /// Write a line that is not valid JSON after `after` chunks, then carry on; a
    /// non-streamed body is cut short.
    Malformed {
        /// Chunks written before the bad line.
        after: u32,
    },
    /// End the stream with an `{"error":…}` line after `after` chunks (no `done` line
    /// follows); a non-streamed request gets a 500 with that error.
    ErrorLine {
        /// Chunks written before the error line.
        after: u32,
        /// The error text; `None` uses Ollama's runner error text.
        message: Option<String>,
    },
    /// Hold the response head back for `delay`, then answer normally.
    SlowHead {
        /// How long the head is held back (simulated time).
        delay: Duration,
    },
}

/// When a rule fires, counted over the requests that match its endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// Each matching request with this probability (0.0 to 1.0), seeded.
    Rate(f64),
    /// Only the Nth matching request (1-based).
    Nth(u64),
    /// Every Nth matching request (N, 2N, 3N, ...).
    Every(u64),
}

/// One fault rule: a kind, an optional endpoint filter and a trigger.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct FaultRule {
    /// What happens.
    pub kind: FaultKind,
    /// The endpoint path it applies to (`/api/generate`, `/v1/chat/completions`);
    /// `None` means every endpoint.
    pub endpoint: Option<String>,
    /// When it fires.
    pub trigger: Trigger,
}

impl FaultRule {
    /// A rule that fires on every request to every endpoint.
    pub fn new(kind: FaultKind) -> Self {
        FaultRule {
            kind,
            endpoint: None,
            trigger: Trigger::Rate(1.0),
        }
    }

    /// Restricts the rule to one endpoint path.
    #[must_use]
    pub fn endpoint(mut self, path: &str) -> Self {
        self.endpoint = Some(path.to_owned());
        self
    }

    /// Sets the trigger.
    #[must_use]
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Parses the `--fault` grammar: comma-separated `key=value` pairs.
    ///
    /// * `kind` (required): `status`, `busy`, `reset`, `stall`, `malformed`, `error`
    ///   (an `{"error":…}` line mid-stream) or `slow-head`.
    /// * `status=CODE` (kind `status`), `message=TEXT` (kinds `status` and `error`; must
    ///   be the last key, it takes the rest of the spec, commas included).
    /// * `after=K` chunks before a `reset`, `stall`, `malformed` or `error` (default 1).
    /// * `for=DURATION` for `stall` and `slow-head` (humantime, e.g. `2s`, `150ms`).
    /// * `endpoint=PATH` (default: all endpoints).
    /// * trigger: `rate=P` (0..1), `nth=N` (only the Nth matching request) or `every=N`;
    ///   default `rate=1`.
    ///
    /// Example: `kind=status,status=500,rate=0.05,endpoint=/api/chat`.
    pub fn parse(spec: &str) -> Result<Self, SimError> {
        let mut raw = RawRule::default();
        let mut rest = spec.trim();
        while !rest.is_empty() {
            let (pair, tail) = if rest.starts_with("message=") {
                (rest, "")
            } else {
                match rest.split_once(',') {
                    Some((pair, tail)) => (pair, tail),
                    None => (rest, ""),
                }
            };
            rest = tail.trim_start();
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                SimError::Config(format!("fault {spec:?}: {pair:?} is not key=value"))
            })?;
            let value = value.trim();
            let bad = |what: &str| SimError::Config(format!("fault {spec:?}: {key}: {what}"));
            match key.trim() {
                "kind" => raw.kind = Some(value.to_owned()),
                "status" => raw.status = Some(value.parse().map_err(|_| bad("not a number"))?),
                "message" => raw.message = Some(value.to_owned()),
                "after" => raw.after = Some(value.parse().map_err(|_| bad("not a number"))?),
                "for" | "duration" => raw.duration = Some(value.to_owned()),
                "endpoint" => raw.endpoint = Some(value.to_owned()),
                "rate" => raw.rate = Some(value.parse().map_err(|_| bad("not a number"))?),
                "nth" => raw.nth = Some(value.parse().map_err(|_| bad("not a number"))?),
                "every" => raw.every = Some(value.parse().map_err(|_| bad("not a number"))?),
                other => {
                    return Err(SimError::Config(format!(
                        "fault {spec:?}: unknown key {other:?}"
                    )));
                }
            }
        }
        FaultRule::try_from(raw).map_err(|e| SimError::Config(format!("fault {spec:?}: {e}")))
    }
}

/// A seed plus ordered fault rules. The default plan injects nothing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// Seed of the rate decisions.
    #[serde(default)]
    pub seed: u64,
    /// Rules, checked in order.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    /// A plan with no rules.
    pub fn none() -> Self {
        FaultPlan::default()
    }

    /// Adds a rule at the end.
    #[must_use]
    pub fn with(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), SimError> {
        for rule in &self.rules {
            validate_rule(rule).map_err(SimError::Config)?;
        }
        Ok(())
    }
}

fn validate_rule(rule: &FaultRule) -> Result<(), String> {
    match rule.trigger {
        Trigger::Rate(p) if !(0.0..=1.0).contains(&p) => {
            return Err(format!("rate {p} is not between 0 and 1"));
        }
        Trigger::Nth(0) | Trigger::Every(0) => return Err("nth/every must be >= 1".into()),
        _ => {}
    }
    if let FaultKind::Status { status, .. } = rule.kind
        && !(400..=599).contains(&status)
    {
        return Err(format!("status {status} is not an error status (400-599)"));
    }
    if let Some(ep) = &rule.endpoint
        && !ep.starts_with('/')
    {
        return Err(format!("endpoint {ep:?} must be a path starting with /"));
    }
    Ok(())
}

/// The flat key set shared by the CLI grammar and TOML.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    kind: Option<String>,
    status: Option<u16>,
    message: Option<String>,
    after: Option<u32>,
    #[serde(alias = "for")]
    duration: Option<String>,
    endpoint: Option<String>,
    rate: Option<f64>,
    nth: Option<u64>,
    every: Option<u64>,
}

impl TryFrom<RawRule> for FaultRule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, String> {
        let after = raw.after.unwrap_or(1);
        let duration = || -> Result<Duration, String> {
            let text = raw
                .duration
                .as_deref()
                .ok_or("this kind needs for=DURATION")?;
            humantime::parse_duration(text).map_err(|e| format!("for={text}: {e}"))
        };
        let kind = match raw.kind.as_deref() {
            None => return Err("kind is required".into()),
            Some("status") => FaultKind::Status {
                status: raw.status.ok_or("kind=status needs status=CODE")?,
                message: raw.message.clone(),
            },
            Some("busy") => FaultKind::Busy,
            Some("reset") => FaultKind::Reset { after },
            Some("stall") => FaultKind::Stall {
                after,
                duration: duration()?,
            },
            Some("malformed") => FaultKind::Malformed { after },
            Some("error" | "error-line") => FaultKind::ErrorLine {
                after,
                message: raw.message.clone(),
            },
            Some("slow-head") => FaultKind::SlowHead { delay: duration()? },
            Some(other) => {
                return Err(format!(
                    "unknown kind {other:?} (status, busy, reset, stall, malformed, error, slow-head)"
                ));
            }
        };
        let trigger = match (raw.rate, raw.nth, raw.every) {
            (None, None, None) => Trigger::Rate(1.0),
            (Some(p), None, None) => Trigger::Rate(p),
            (None, Some(n), None) => Trigger::Nth(n),
            (None, None, Some(n)) => Trigger::Every(n),
            _ => return Err("give at most one of rate, nth, every".into()),
        };
        let rule = FaultRule {
            kind,
            endpoint: raw.endpoint,
            trigger,
        };
        validate_rule(&rule)?;
        Ok(rule)
    }
}

/// A plan in force, with one request counter per rule.
pub(crate) struct FaultEngine {
    plan: FaultPlan,
    counters: Vec<AtomicU64>,
}

impl FaultEngine {
    pub(crate) fn new(plan: FaultPlan) -> Self {
        let counters = plan.rules.iter().map(|_| AtomicU64::new(0)).collect();
        FaultEngine { plan, counters }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.plan.rules.is_empty()
    }

    /// Counts the request against every matching rule and returns the first fault that
    /// fires.
    pub(crate) fn decide(&self, endpoint: &str) -> Option<FaultKind> {
        let mut chosen = None;
        for (index, (rule, counter)) in self.plan.rules.iter().zip(&self.counters).enumerate() {
            if rule.endpoint.as_deref().is_some_and(|ep| ep != endpoint) {
                continue;
            }
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            if chosen.is_some() {
                continue;
            }
            let fires = match rule.trigger {
                Trigger::Rate(p) => {
                    let h = splitmix64(self.plan.seed ^ splitmix64(index as u64) ^ n);
                    // 53 random bits give a uniform float in [0, 1).
                    ((h >> 11) as f64 / (1u64 << 53) as f64) < p
                }
                Trigger::Nth(k) => n == k,
                Trigger::Every(k) => n % k == 0,
            };
            if fires {
                chosen = Some(rule.kind.clone());
            }
        }
        chosen
    }
}

/// SplitMix64: a tiny, well-known mixing function; good enough for seeded decisions.
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_grammar() {
        let rule =
            FaultRule::parse("kind=reset,after=3,rate=0.25,endpoint=/api/generate").expect("valid");
        assert_eq!(rule.kind, FaultKind::Reset { after: 3 });
        assert_eq!(rule.trigger, Trigger::Rate(0.25));
        assert_eq!(rule.endpoint.as_deref(), Some("/api/generate"));

        let rule = FaultRule::parse("kind=status,status=500,nth=2,message=boom, with commas")
            .expect("valid");
        assert_eq!(
            rule.kind,
            FaultKind::Status {
                status: 500,
                message: Some("boom, with commas".into())
            }
        );
        assert_eq!(rule.trigger, Trigger::Nth(2));

        let rule = FaultRule::parse("kind=stall,after=2,for=1500ms").expect("valid");
        assert_eq!(
            rule.kind,
            FaultKind::Stall {
                after: 2,
                duration: Duration::from_millis(1500)
            }
        );
    }

    #[test]
    fn rejects_bad_specs_with_a_reason() {
        for (spec, needle) in [
            ("kind=nope", "unknown kind"),
            ("after=2", "kind is required"),
            ("kind=status", "status=CODE"),
            ("kind=status,status=200", "not an error status"),
            ("kind=busy,rate=2", "between 0 and 1"),
            ("kind=busy,rate=0.5,nth=2", "at most one"),
            ("kind=stall", "for=DURATION"),
            ("kind=busy,colour=red", "unknown key"),
            ("kind=busy,endpoint=api", "starting with /"),
        ] {
            let err = FaultRule::parse(spec).expect_err(spec).to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn decisions_are_seeded_and_counted_per_rule() {
        let plan = FaultPlan {
            seed: 7,
            rules: vec![
                FaultRule::new(FaultKind::Busy).trigger(Trigger::Rate(0.5)),
                FaultRule::new(FaultKind::Reset { after: 0 })
                    .endpoint("/api/chat")
                    .trigger(Trigger::Nth(2)),
            ],
        };
        let run = || {
            let engine = FaultEngine::new(plan.clone());
            (0..200)
                .map(|_| engine.decide("/api/generate").is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run(), "same seed, same decisions");
        let fired = first.iter().filter(|f| **f).count();
        assert!((60..140).contains(&fired), "rate 0.5 fired {fired}/200");

        let engine = FaultEngine::new(
            FaultPlan::none().with(
                FaultRule::new(FaultKind::Busy)
                    .endpoint("/api/chat")
                    .trigger(Trigger::Nth(2)),
            ),
        );
        assert_eq!(engine.decide("/api/generate"), None);
        assert_eq!(engine.decide("/api/chat"), None);
        assert_eq!(engine.decide("/api/chat"), Some(FaultKind::Busy));
        assert_eq!(engine.decide("/api/chat"), None);
    }
}
