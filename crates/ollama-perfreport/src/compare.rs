//! Before/after comparison of two reports: per scenario and metric, the relative change with
//! a bootstrap confidence interval and a verdict, plus warnings when the two runs measured
//! different things (server version, model digest, client limits, host).
//!
//! Thresholds come from `--threshold` flags first, then the base report's scenario and suite
//! (the baseline defines what is acceptable), then built-in defaults.

use std::collections::{BTreeMap, BTreeSet};

use ollama_loadtest::Report;
use serde::{Deserialize, Serialize};

use crate::archive::{COMPARISON_KIND, SCHEMA_VERSION, ScenarioRun, SuiteReport, Tool};
use crate::error::Error;
use crate::evidence::{Curve, RepData, cdf_points, evidence};
use crate::metric::Metric;
use crate::stats::{self, BootstrapConfig, Change, Estimate};
use crate::suite::Scenario;
use crate::thresholds::{NoiseFloors, Thresholds, effective_threshold};
use crate::verdict::{Verdict, judge};

/// Options of a comparison.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// Thresholds from the command line; they beat the suite's.
    pub thresholds: Thresholds,
    /// Noise floors from the command line; they beat the suite's.
    pub noise_floors: NoiseFloors,
    /// Bootstrap settings.
    pub bootstrap: BootstrapConfig,
}

/// Which report a side of the comparison is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// A label, normally the file path.
    pub label: String,
    /// The suite's name.
    pub suite: String,
    /// When the run started.
    pub started_at: String,
}

/// One metric of one scenario, compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// The metric.
    pub metric: Metric,
    /// Base value with its interval (absent when the base has no data for it).
    pub base: Option<Estimate>,
    /// Candidate value with its interval.
    pub candidate: Option<Estimate>,
    /// Relative change in percent with its interval.
    pub change: Option<Change>,
    /// The regression threshold applied, in percent (after the noise floor widened it).
    pub threshold_pct: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the verdict is what it is, when that is not obvious from the numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A latency CDF of both sides, for charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePair {
    /// Which latency.
    pub curve: Curve,
    /// Base points `(ms, cumulative fraction)`.
    pub base: Vec<[f64; 2]>,
    /// Candidate points.
    pub candidate: Vec<[f64; 2]>,
}

/// One scenario, compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioComparison {
    /// Scenario name (the candidate's when the two differ).
    pub name: String,
    /// Repetitions in the base.
    pub base_repetitions: usize,
    /// Repetitions in the candidate.
    pub candidate_repetitions: usize,
    /// One row per metric measured on at least one side.
    pub metrics: Vec<MetricComparison>,
    /// Latency CDFs of both sides.
    pub curves: Vec<CurvePair>,
}

impl ScenarioComparison {
    /// The worst verdict of the scenario (regressed beats inconclusive beats the others).
    pub fn worst(&self) -> Verdict {
        self.metrics
            .iter()
            .map(|m| m.verdict)
            .max()
            .unwrap_or(Verdict::Inconclusive)
    }

    /// The row for `metric`.
    pub fn metric(&self, metric: Metric) -> Option<&MetricComparison> {
        self.metrics.iter().find(|m| m.metric == metric)
    }
}

/// A whole comparison, as `compare --output` writes it and `render` reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Always [`COMPARISON_KIND`].
    pub kind: String,
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The tool that wrote it.
    pub tool: Tool,
    /// The base ("before").
    pub base: Side,
    /// The candidate ("after").
    pub candidate: Side,
    /// Bootstrap settings used.
    pub bootstrap: BootstrapConfig,
    /// Differences between the two environments or definitions that make the comparison
    /// less meaningful.
    pub warnings: Vec<String>,
    /// Scenarios present in both.
    pub scenarios: Vec<ScenarioComparison>,
    /// Scenarios present in only one of the two (with the side named).
    pub unmatched: Vec<String>,
}

impl Comparison {
    /// Whether any metric of any scenario regressed (the CLI exits non-zero then).
    pub fn has_regression(&self) -> bool {
        self.regressions().next().is_some()
    }

    /// `(scenario, metric)` of every regression.
    pub fn regressions(&self) -> impl Iterator<Item = (&str, Metric)> {
        self.scenarios.iter().flat_map(|s| {
            s.metrics
                .iter()
                .filter(|m| m.verdict == Verdict::Regressed)
                .map(|m| (s.name.as_str(), m.metric))
        })
    }

    /// Counts of each verdict over all rows.
    pub fn tally(&self) -> [(Verdict, usize); 4] {
        let count = |v| {
            self.scenarios
                .iter()
                .flat_map(|s| &s.metrics)
                .filter(|m| m.verdict == v)
                .count()
        };
        [
            Verdict::Regressed,
            Verdict::Improved,
            Verdict::Unchanged,
            Verdict::Inconclusive,
        ]
        .map(|v| (v, count(v)))
    }
}

fn reps_of(run: &ScenarioRun, side: &str) -> Result<Vec<RepData>, Error> {
    run.repetitions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            RepData::from_report(
                r,
                &format!("{side} scenario `{}` repetition {}", run.name, i + 1),
            )
        })
        .collect()
}

/// Compares `candidate` with `base`.
pub fn compare(
    base: &SuiteReport,
    base_label: &str,
    candidate: &SuiteReport,
    candidate_label: &str,
    options: &CompareOptions,
) -> Result<Comparison, Error> {
    let mut warnings = Vec::new();
    let mut unmatched = Vec::new();
    let mut pairs: Vec<(&ScenarioRun, &ScenarioRun)> = Vec::new();
    if base.scenarios.len() == 1
        && candidate.scenarios.len() == 1
        && base.scenarios[0].name != candidate.scenarios[0].name
    {
        warnings.push(format!(
            "comparing scenario `{}` with differently named `{}`",
            base.scenarios[0].name, candidate.scenarios[0].name
        ));
        pairs.push((&base.scenarios[0], &candidate.scenarios[0]));
    } else {
        for b in &base.scenarios {
            match candidate.scenario(&b.name) {
                Some(c) => pairs.push((b, c)),
                None => unmatched.push(format!("`{}` only in the base", b.name)),
            }
        }
        for c in &candidate.scenarios {
            if base.scenario(&c.name).is_none() {
                unmatched.push(format!("`{}` only in the candidate", c.name));
            }
        }
    }
    if pairs.is_empty() {
        return Err(Error::Input(format!(
            "{base_label} and {candidate_label} have no scenario in common ({})",
            unmatched.join("; ")
        )));
    }
    for (side, r, label) in [
        ("base", base, base_label),
        ("candidate", candidate, candidate_label),
    ] {
        if r.partial {
            warnings.push(format!(
                "the {side} {label} was interrupted: scenarios or repetitions are missing"
            ));
        }
    }
    if base.suite.thresholds != candidate.suite.thresholds {
        warnings.push("the two suites set different thresholds; the base's apply".to_owned());
    }

    let mut scenarios = Vec::new();
    for (b, c) in pairs {
        let base_spec = base.suite.scenario(&b.name);
        let cand_spec = candidate.suite.scenario(&c.name);
        if let (Some(bs), Some(cs)) = (base_spec, cand_spec)
            && !same_workload(bs, cs)
        {
            warnings.push(format!(
                "scenario `{}` is defined differently in the two suites (model, endpoint, prompts, load or options)",
                c.name
            ));
        }
        environment_warnings(&c.name, &b.repetitions, &c.repetitions, &mut warnings);

        let base_reps = reps_of(b, "base")?;
        let cand_reps = reps_of(c, "candidate")?;
        let scenario_thresholds = base_spec.map(|s| &s.thresholds);
        let scenario_floors = base_spec.map(|s| &s.noise_floor);
        let mut metrics = Vec::new();
        for metric in Metric::ALL {
            let mut t_layers = vec![&options.thresholds];
            t_layers.extend(scenario_thresholds);
            t_layers.push(&base.suite.thresholds);
            let mut f_layers = vec![&options.noise_floors];
            f_layers.extend(scenario_floors);
            f_layers.push(&base.suite.noise_floor);
            let threshold = Thresholds::resolve(&t_layers, metric);
            let floor = NoiseFloors::resolve(&f_layers, metric);
            metrics.extend(compare_metric(
                metric,
                &base_reps,
                &cand_reps,
                threshold,
                floor,
                &options.bootstrap,
            ));
        }
        let curves = Curve::ALL
            .into_iter()
            .map(|curve| CurvePair {
                curve,
                base: cdf_points(&base_reps, curve),
                candidate: cdf_points(&cand_reps, curve),
            })
            .filter(|p| !p.base.is_empty() || !p.candidate.is_empty())
            .collect();
        scenarios.push(ScenarioComparison {
            name: c.name.clone(),
            base_repetitions: b.repetitions.len(),
            candidate_repetitions: c.repetitions.len(),
            metrics,
            curves,
        });
    }
    dedup(&mut warnings);
    Ok(Comparison {
        kind: COMPARISON_KIND.to_owned(),
        schema_version: SCHEMA_VERSION,
        tool: Tool::this(),
        base: Side {
            label: base_label.to_owned(),
            suite: base.suite.name.clone(),
            started_at: base.started_at.clone(),
        },
        candidate: Side {
            label: candidate_label.to_owned(),
            suite: candidate.suite.name.clone(),
            started_at: candidate.started_at.clone(),
        },
        bootstrap: options.bootstrap,
        warnings,
        scenarios,
        unmatched,
    })
}

fn compare_metric(
    metric: Metric,
    base: &[RepData],
    candidate: &[RepData],
    threshold: f64,
    floor: f64,
    cfg: &BootstrapConfig,
) -> Option<MetricComparison> {
    let be = evidence(base, metric);
    let ce = evidence(candidate, metric);
    let base_est = stats::estimate(&be, cfg);
    let cand_est = stats::estimate(&ce, cfg);
    let change = stats::change(&be, &ce, cfg);
    let threshold_pct = effective_threshold(threshold, floor, base_est.map_or(0.0, |e| e.point));
    let (verdict, note) = match (&change, &base_est, &cand_est) {
        (Some(ch), _, _) => {
            let v = judge(ch, metric.direction(), threshold_pct);
            let note = match (ch.pct, ch.ci) {
                (None, _) => Some("base is zero: no relative change".to_owned()),
                (Some(_), None) => Some(
                    "no interval: a whole-run rate needs at least 2 repetitions on each side"
                        .to_owned(),
                ),
                _ if threshold_pct > threshold => Some(format!(
                    "threshold widened from {threshold}% by the noise floor of {floor} {}",
                    metric.unit()
                )),
                _ => None,
            };
            (v, note)
        }
        // Not measured on either side (TTFT without streaming, say): no row.
        (None, None, None) => return None,
        (None, None, Some(_)) => (
            Verdict::Inconclusive,
            Some("no data in the base".to_owned()),
        ),
        (None, Some(_), _) => (
            Verdict::Inconclusive,
            Some("no data in the candidate".to_owned()),
        ),
    };
    Some(MetricComparison {
        metric,
        base: base_est,
        candidate: cand_est,
        change,
        threshold_pct,
        verdict,
        note,
    })
}

/// Whether two scenario definitions describe the same workload (thresholds and repetition
/// counts may differ).
fn same_workload(a: &Scenario, b: &Scenario) -> bool {
    let strip = |s: &Scenario| {
        let mut s = s.clone();
        s.name.clear();
        s.thresholds = Thresholds::new();
        s.noise_floor = NoiseFloors::new();
        s.repetitions = None;
        s.prompts_file = s
            .prompts_file
            .as_ref()
            .and_then(|p| p.file_name().map(Into::into));
        s
    };
    strip(a) == strip(b)
}

fn distinct<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> BTreeSet<T> {
    items.into_iter().collect()
}

/// Warnings about what differs between the environments of two sets of repetitions.
fn environment_warnings(scenario: &str, base: &[Report], cand: &[Report], out: &mut Vec<String>) {
    let show = |set: BTreeSet<String>| {
        if set.is_empty() {
            "unknown".to_owned()
        } else {
            set.into_iter().collect::<Vec<_>>().join(" / ")
        }
    };
    let versions = |rs: &[Report]| {
        show(distinct(rs.iter().map(|r| {
            r.environment
                .server_version
                .clone()
                .unwrap_or_else(|| "unknown".into())
        })))
    };
    differs(out, "server version", &versions(base), &versions(cand));
    let simulated = |rs: &[Report]| {
        show(distinct(rs.iter().map(|r| {
            if r.environment.simulated {
                "simulator".to_owned()
            } else {
                "real server".to_owned()
            }
        })))
    };
    differs(out, "server kind", &simulated(base), &simulated(cand));
    let digests = |rs: &[Report]| {
        show(distinct(rs.iter().flat_map(|r| {
            r.environment.models.iter().map(|m| {
                format!(
                    "{}@{}",
                    m.name,
                    m.digest
                        .as_deref()
                        .map_or("unknown", |d| &d[..d.len().min(12)])
                )
            })
        })))
    };
    differs(
        out,
        &format!("model digest (scenario `{scenario}`)"),
        &digests(base),
        &digests(cand),
    );
    client_warnings(base, cand, out);
    let urls = |rs: &[Report]| show(distinct(rs.iter().map(|r| r.environment.base_url.clone())));
    let all_simulated = base.iter().chain(cand).all(|r| r.environment.simulated);
    if !all_simulated {
        differs(out, "server URL", &urls(base), &urls(cand));
    }
    let hosts = |rs: &[Report]| {
        show(distinct(rs.iter().map(|r| {
            let h = &r.environment.host;
            format!(
                "{} ({} {}, {} cpus)",
                h.hostname.as_deref().unwrap_or("unknown"),
                h.os,
                h.arch,
                h.cpus
            )
        })))
    };
    differs(out, "load-generator host", &hosts(base), &hosts(cand));
    let partial = |rs: &[Report], side: &str, out: &mut Vec<String>| {
        for (i, r) in rs.iter().enumerate() {
            if r.partial || r.aborted.is_some() {
                out.push(format!(
                    "{side} scenario `{scenario}` repetition {} is partial{}",
                    i + 1,
                    r.aborted
                        .as_ref()
                        .map(|a| format!(" (aborted: {})", a.reason))
                        .unwrap_or_default()
                ));
            }
        }
    };
    partial(base, "base", out);
    partial(cand, "candidate", out);
}

/// Client settings that differ, key by key (`base_url` is the server's, reported apart).
fn client_warnings(base: &[Report], cand: &[Report], out: &mut Vec<String>) {
    let settings = |rs: &[Report]| -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in rs {
            if let serde_json::Value::Object(o) = &r.environment.client {
                for (k, v) in o.iter().filter(|(k, _)| k.as_str() != "base_url") {
                    m.entry(k.clone()).or_default().insert(v.to_string());
                }
            }
        }
        m
    };
    let (b, c) = (settings(base), settings(cand));
    let keys: BTreeSet<&String> = b.keys().chain(c.keys()).collect();
    let join = |v: Option<&BTreeSet<String>>| {
        v.map_or_else(
            || "unset".to_owned(),
            |s| s.iter().cloned().collect::<Vec<_>>().join(" / "),
        )
    };
    for k in keys {
        let (bv, cv) = (join(b.get(k)), join(c.get(k)));
        if bv != cv {
            out.push(format!(
                "client setting `{k}` differs: base {bv}, candidate {cv}"
            ));
        }
    }
}

fn differs(out: &mut Vec<String>, what: &str, b: &str, c: &str) {
    if b != c {
        out.push(format!("{what} differs: base {b}, candidate {c}"));
    }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    v.retain(|w| seen.insert(w.clone()));
}
