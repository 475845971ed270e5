//! The rollout plan: a TOML file that names what to compare, the gates, where Prometheus
//! is, and the stages. Parsing is strict (unknown keys are errors) so a typo in a gate
//! cannot silently turn the gate off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde::Deserialize;

/// A whole plan.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Plan {
    /// What is being rolled out, for the report title.
    pub(crate) name: String,
    /// Where reports go (default `logs/rollouts`, relative to the workspace root).
    #[serde(default)]
    pub(crate) report_dir: Option<PathBuf>,
    /// Paths of the tools; default: release builds of this workspace.
    #[serde(default)]
    pub(crate) tools: Tools,
    /// Where and how baseline and candidate are measured.
    pub(crate) evaluate: Evaluate,
    /// The current settings.
    pub(crate) baseline: Variant,
    /// The new settings.
    pub(crate) candidate: Variant,
    /// Thresholds.
    #[serde(default)]
    pub(crate) gates: Gates,
    /// Resource and watch queries.
    #[serde(default)]
    pub(crate) prometheus: Option<Prometheus>,
    /// The watch after each stage.
    pub(crate) evaluation: Evaluation,
    /// Stages in rollout order.
    #[serde(default, rename = "stage")]
    pub(crate) stages: Vec<Stage>,
}

/// Tool paths.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tools {
    /// `ollama-loadtest` binary.
    pub(crate) loadtest: Option<PathBuf>,
    /// `ollama-perfreport` binary.
    pub(crate) perfreport: Option<PathBuf>,
}

/// Where baseline and candidate run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Evaluate {
    /// The server both runs hit (usually staging).
    pub(crate) base_url: String,
    /// Models that must be present on every server (preflight).
    #[serde(default)]
    pub(crate) models: Vec<String>,
    /// The load-test scenario both runs share (`ollama-loadtest` flags).
    #[serde(default)]
    pub(crate) loadtest_args: Vec<String>,
    /// A perf suite (TOML) run with `ollama-perfreport run --suite` for both sides instead
    /// of one load-test scenario; the sides then differ only by their hooks.
    #[serde(default)]
    pub(crate) suite: Option<PathBuf>,
}

/// Baseline or candidate: extra load-test flags (client settings, model tag) and an
/// optional hook that puts the server into this state.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Variant {
    /// Extra `ollama-loadtest` flags for this side.
    #[serde(default)]
    pub(crate) loadtest_args: Vec<String>,
    /// Shell command run before this side's run (e.g. restart staging with new settings).
    #[serde(default)]
    pub(crate) apply: Option<String>,
    /// Shell command that undoes `apply`; run for the candidate when its load run or any
    /// later gate fails (last, after the reverts of the stages applied so far).
    #[serde(default)]
    pub(crate) revert: Option<String>,
}

/// Thresholds. Every gate that is set must pass.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Gates {
    /// `ollama-perfreport compare BASE CAND` must exit 0 (default true).
    #[serde(default = "yes")]
    pub(crate) compare: bool,
    /// Each resource query's candidate average may exceed the baseline's by at most this
    /// many percent.
    #[serde(default)]
    pub(crate) max_resource_increase_percent: Option<f64>,
    /// Absolute SLOs on every load run (candidate and stage watches).
    #[serde(default)]
    pub(crate) min_success_rate_percent: Option<f64>,
    /// Most 5xx responses a load run may see (default 0 for stage watches).
    #[serde(default)]
    pub(crate) max_5xx: Option<u64>,
    /// Highest p99 end-to-end latency, milliseconds.
    #[serde(default)]
    pub(crate) max_p99_ms: Option<f64>,
}

fn yes() -> bool {
    true
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            compare: true,
            max_resource_increase_percent: None,
            min_success_rate_percent: None,
            max_5xx: None,
            max_p99_ms: None,
        }
    }
}

/// Prometheus and its queries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Prometheus {
    /// Loopback URL of the Prometheus HTTP API.
    pub(crate) url: String,
    /// Name → instant-vector query measuring a resource (CPU, GPU, memory); averaged
    /// over each run's window and compared.
    #[serde(default)]
    pub(crate) resources: BTreeMap<String, String>,
    /// Name → query that must return no series during a stage's watch (alert-style:
    /// `ALERTS{alertstate="firing"}`, `error_ratio > 0.01`).
    #[serde(default)]
    pub(crate) watch: BTreeMap<String, String>,
}

/// The evaluation window after each stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Evaluation {
    /// How long each stage is watched, e.g. "10m".
    pub(crate) window: String,
    /// How often the watch queries run, e.g. "15s" (default 15s).
    #[serde(default)]
    pub(crate) interval: Option<String>,
    /// Smoke-load flags during the watch (`--duration WINDOW` is added).
    #[serde(default)]
    pub(crate) loadtest_args: Vec<String>,
}

/// One rollout stage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stage {
    /// "staging", "canary", "production", ...
    pub(crate) name: String,
    /// The stage's server.
    pub(crate) base_url: String,
    /// Shell command that applies the change to this stage.
    #[serde(default)]
    pub(crate) apply: Option<String>,
    /// Shell command that reverts it; run when this stage or a later one fails (newest
    /// stage first).
    #[serde(default)]
    pub(crate) revert: Option<String>,
}

impl Plan {
    /// Reads and validates a plan file.
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read rollout plan {}", path.display()))?;
        let plan: Self = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid rollout plan", path.display()))?;
        plan.validate()
            .with_context(|| format!("{}: invalid plan", path.display()))?;
        Ok(plan)
    }

    fn validate(&self) -> Result<()> {
        ensure!(!self.name.trim().is_empty(), "`name` is empty");
        ensure!(
            !self.stages.is_empty(),
            "no [[stage]]: a rollout needs at least one stage"
        );
        crate::http::Url::parse(&self.evaluate.base_url).context("[evaluate] base_url")?;
        for stage in &self.stages {
            crate::http::Url::parse(&stage.base_url)
                .with_context(|| format!("[[stage]] {}: base_url", stage.name))?;
        }
        let window = self.window()?;
        let interval = self.interval()?;
        ensure!(
            interval <= window,
            "evaluation interval {interval:?} exceeds the window {window:?}"
        );
        if let Some(prometheus) = &self.prometheus {
            crate::http::Url::parse(&prometheus.url).context("[prometheus] url")?;
        }
        if self.gates.max_resource_increase_percent.is_some()
            && self
                .prometheus
                .as_ref()
                .is_none_or(|p| p.resources.is_empty())
        {
            bail!("gates.max_resource_increase_percent is set but [prometheus.resources] is empty");
        }
        let side_args = [
            &self.evaluate.loadtest_args,
            &self.baseline.loadtest_args,
            &self.candidate.loadtest_args,
        ];
        if self.evaluate.suite.is_some() && side_args.iter().any(|args| !args.is_empty()) {
            bail!(
                "with evaluate.suite the suite defines both runs: drop the evaluate, baseline and \
                 candidate loadtest_args and make the difference with apply hooks"
            );
        }
        for args in [
            &self.evaluation.loadtest_args,
            &self.evaluate.loadtest_args,
            &self.baseline.loadtest_args,
            &self.candidate.loadtest_args,
        ] {
            if args
                .iter()
                .any(|a| a == "--base-url" || a.starts_with("--base-url=") || a == "--sim")
            {
                bail!(
                    "loadtest_args must not set --base-url or --sim: the plan's URLs decide the target"
                );
            }
        }
        Ok(())
    }

    /// The evaluation window.
    pub(crate) fn window(&self) -> Result<Duration> {
        parse_duration(&self.evaluation.window).context("evaluation.window")
    }

    /// The watch polling interval.
    pub(crate) fn interval(&self) -> Result<Duration> {
        self.evaluation
            .interval
            .as_deref()
            .map_or(Ok(Duration::from_secs(15)), parse_duration)
            .context("evaluation.interval")
    }
}

/// Parses `1500ms`, `30s`, `10m`, `1h` (one number, one unit).
pub(crate) fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .with_context(|| format!("`{text}` has no unit (ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .with_context(|| format!("`{text}`: bad number"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => bail!("`{text}`: unknown unit `{unit}` (use ms, s, m or h)"),
    };
    ensure!(
        seconds > 0.0 && seconds.is_finite(),
        "`{text}` must be positive"
    );
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "test"
        [evaluate]
        base_url = "http://127.0.0.1:11434"
        [baseline]
        [candidate]
        loadtest_args = ["--concurrency", "4"]
        [evaluation]
        window = "30s"
        [[stage]]
        name = "staging"
        base_url = "http://127.0.0.1:11434"
    "#;

    #[test]
    fn a_minimal_plan_parses_with_defaults() {
        let plan: Plan = toml::from_str(MINIMAL).expect("valid");
        assert!(plan.validate().is_ok());
        assert!(plan.gates.compare);
        assert_eq!(plan.interval().ok(), Some(Duration::from_secs(15)));
        assert_eq!(plan.stages.len(), 1);
    }

    #[test]
    fn typos_and_bad_values_are_rejected() {
        let typo = MINIMAL.replace("[evaluation]", "[gates]\nmax_p99 = 5\n[evaluation]");
        assert!(toml::from_str::<Plan>(&typo).is_err());
        let remote = MINIMAL.replace(
            "http://127.0.0.1:11434\"\n        [baseline]",
            "http://10.0.0.1:11434\"\n        [baseline]",
        );
        let plan: Plan = toml::from_str(&remote).expect("parses");
        assert!(plan.validate().is_err());
        // With a suite, per-side load-test flags would be silently ignored: refuse them.
        let suite = MINIMAL.replace("[baseline]", "suite = \"s.toml\"\n[baseline]");
        let plan: Plan = toml::from_str(&suite).expect("parses");
        assert!(plan.validate().is_err());
        let sim = MINIMAL.replace("\"--concurrency\", \"4\"", "\"--sim\"");
        let plan: Plan = toml::from_str(&sim).expect("parses");
        assert!(plan.validate().is_err());
    }

    /// The example in docs/OPERATIONS.md must stay a valid plan.
    #[test]
    fn the_documented_example_plan_is_valid() {
        let doc = include_str!("../../../docs/OPERATIONS.md");
        let start = doc
            .find("```toml\nname = ")
            .expect("example plan in OPERATIONS.md");
        let body = &doc[start + "```toml\n".len()..];
        let body = &body[..body.find("```").expect("closing fence")];
        let plan: Plan = toml::from_str(body).expect("example parses");
        plan.validate().expect("example validates");
        assert_eq!(plan.stages.len(), 2);
        assert_eq!(plan.window().ok(), Some(Duration::from_secs(900)));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").ok(), Some(Duration::from_secs(600)));
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
