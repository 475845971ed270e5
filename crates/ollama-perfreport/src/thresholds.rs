//! Regression thresholds: how much worse a metric may get before it counts as regressed.
//!
//! Thresholds come from three layers, most specific first: `--threshold` flags, the
//! scenario's `[scenario.thresholds]`, the suite's `[thresholds]`, then each metric's
//! built-in default. Inside one layer a key may name one metric (`e2e_p99`), a family
//! (`e2e`, `ttft`, `tpot`) or `default`; the exact metric wins over the family, the family
//! over `default`.
//!
//! Noise floors ([`NoiseFloors`]) work the same way but are absolute, in the metric's unit:
//! a change smaller than the floor never counts, however large it is relative to a tiny base
//! (a model load time of 0.02 ms doubling to 0.04 ms is not a regression).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metric::{Metric, known_keys};

/// One layer of thresholds, in percent, keyed by metric, family or `default`.
///
/// Invariant: every key is a metric key, a family (`e2e`, `ttft`, `tpot`) or `default`, and
/// every value is finite and positive; [`Thresholds::insert`] and deserialization check it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, f64>", into = "BTreeMap<String, f64>")]
pub struct Thresholds(BTreeMap<String, f64>);

impl Thresholds {
    /// An empty layer (every metric falls through to the next layer).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a threshold after checking the key and the value.
    pub fn insert(&mut self, key: &str, pct: f64) -> Result<(), String> {
        check_key(key)?;
        if !(pct.is_finite() && pct > 0.0) {
            return Err(format!(
                "threshold `{key}` must be a positive percentage, got {pct}"
            ));
        }
        self.0.insert(key.to_owned(), pct);
        Ok(())
    }

    /// Parses one `metric=pct` flag (`e2e_p99=20`, `ttft=15`, `default=5`, `goodput=10%`).
    pub fn insert_flag(&mut self, flag: &str) -> Result<(), String> {
        let (key, value) = flag
            .split_once('=')
            .ok_or_else(|| format!("threshold `{flag}` is not of the form metric=percent"))?;
        let value = value.trim().trim_end_matches('%');
        let pct: f64 = value
            .parse()
            .map_err(|_| format!("threshold `{flag}`: `{value}` is not a number"))?;
        self.insert(key.trim(), pct)
    }

    /// This layer's threshold for `metric`, if the layer names it, its family or `default`.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        lookup(&self.0, metric)
    }

    /// Whether the layer sets nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The threshold for `metric` through `layers` (most specific first), else the built-in default.
    pub fn resolve(layers: &[&Thresholds], metric: Metric) -> f64 {
        layers
            .iter()
            .find_map(|layer| layer.get(metric))
            .unwrap_or_else(|| metric.default_threshold_pct())
    }
}

fn lookup(map: &BTreeMap<String, f64>, metric: Metric) -> Option<f64> {
    map.get(metric.key())
        .or_else(|| metric.family().and_then(|f| map.get(f)))
        .or_else(|| map.get("default"))
        .copied()
}

/// One layer of absolute noise floors, in each metric's unit, keyed like [`Thresholds`].
///
/// Invariant: keys are valid and values finite and non-negative.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, f64>", into = "BTreeMap<String, f64>")]
pub struct NoiseFloors(BTreeMap<String, f64>);

impl NoiseFloors {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a floor after checking the key and the value.
    pub fn insert(&mut self, key: &str, value: f64) -> Result<(), String> {
        check_key(key)?;
        if !(value.is_finite() && value >= 0.0) {
            return Err(format!(
                "noise floor `{key}` must be a non-negative number, got {value}"
            ));
        }
        self.0.insert(key.to_owned(), value);
        Ok(())
    }

    /// Whether the layer sets nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The floor for `metric` through `layers` (most specific first), else the built-in one.
    pub fn resolve(layers: &[&NoiseFloors], metric: Metric) -> f64 {
        layers
            .iter()
            .find_map(|layer| lookup(&layer.0, metric))
            .unwrap_or_else(|| metric.default_noise_floor())
    }
}

impl TryFrom<BTreeMap<String, f64>> for NoiseFloors {
    type Error = String;

    fn try_from(map: BTreeMap<String, f64>) -> Result<Self, Self::Error> {
        let mut t = NoiseFloors::new();
        for (k, v) in map {
            t.insert(&k, v)?;
        }
        Ok(t)
    }
}

impl From<NoiseFloors> for BTreeMap<String, f64> {
    fn from(t: NoiseFloors) -> Self {
        t.0
    }
}

/// The threshold actually applied to a change from `base`: the relative threshold, widened
/// so that a change below the absolute `floor` stays inside it.
pub(crate) fn effective_threshold(threshold_pct: f64, floor: f64, base: f64) -> f64 {
    if floor > 0.0 && base != 0.0 {
        threshold_pct.max(floor / base.abs() * 100.0)
    } else {
        threshold_pct
    }
}

fn check_key(key: &str) -> Result<(), String> {
    let known =
        key == "default" || matches!(key, "e2e" | "ttft" | "tpot") || key.parse::<Metric>().is_ok();
    if known {
        Ok(())
    } else {
        Err(format!(
            "unknown threshold key `{key}` (use a metric: {}; a family: e2e, ttft, tpot; or default)",
            known_keys()
        ))
    }
}

impl TryFrom<BTreeMap<String, f64>> for Thresholds {
    type Error = String;

    fn try_from(map: BTreeMap<String, f64>) -> Result<Self, Self::Error> {
        let mut t = Thresholds::new();
        for (k, v) in map {
            t.insert(&k, v)?;
        }
        Ok(t)
    }
}

impl From<Thresholds> for BTreeMap<String, f64> {
    fn from(t: Thresholds) -> Self {
        t.0
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_family_beats_default_beats_builtin() {
        let mut suite = Thresholds::new();
        suite.insert("default", 7.0).ok();
        suite.insert("e2e", 12.0).ok();
        suite.insert("e2e_p99", 30.0).ok();
        assert_eq!(Thresholds::resolve(&[&suite], Metric::E2eP99), 30.0);
        assert_eq!(Thresholds::resolve(&[&suite], Metric::E2eP50), 12.0);
        assert_eq!(Thresholds::resolve(&[&suite], Metric::Goodput), 7.0);
        let empty = Thresholds::new();
        assert_eq!(
            Thresholds::resolve(&[&empty], Metric::LoadTime),
            Metric::LoadTime.default_threshold_pct()
        );
        let mut flags = Thresholds::new();
        flags.insert_flag("goodput=3%").ok();
        assert_eq!(Thresholds::resolve(&[&flags, &suite], Metric::Goodput), 3.0);
    }

    #[test]
    fn noise_floors_widen_the_threshold_for_tiny_bases() {
        let mut f = NoiseFloors::new();
        f.insert("load_time", 5.0).ok();
        assert_eq!(NoiseFloors::resolve(&[&f], Metric::LoadTime), 5.0);
        assert_eq!(
            NoiseFloors::resolve(&[&f], Metric::E2eP50),
            Metric::E2eP50.default_noise_floor()
        );
        assert!(f.insert("load_time", -1.0).is_err());
        assert_eq!(effective_threshold(10.0, 5.0, 0.5), 1000.0);
        assert_eq!(effective_threshold(10.0, 5.0, 500.0), 10.0);
        assert_eq!(effective_threshold(10.0, 0.0, 0.0), 10.0);
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let mut t = Thresholds::new();
        let err = t.insert_flag("p99=5").err().unwrap_or_default();
        assert!(err.contains("`p99`"), "{err}");
        let err = t.insert_flag("e2e_p99=-5").err().unwrap_or_default();
        assert!(err.contains("positive"), "{err}");
        let err = t.insert_flag("e2e_p99").err().unwrap_or_default();
        assert!(err.contains("metric=percent"), "{err}");
        let err = t.insert_flag("e2e_p99=abc").err().unwrap_or_default();
        assert!(err.contains("not a number"), "{err}");
    }
}
