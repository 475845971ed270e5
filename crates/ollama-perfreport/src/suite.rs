//! Suites: the TOML file that says which scenarios a performance report runs.
//!
//! A suite is data, not code, so the same file runs before and after a change and the two
//! reports are comparable by construction. Parsing checks everything it can up front (one
//! load shape, one stop condition, known endpoints and threshold keys, unique names), so a
//! typo fails in a second instead of after an hour of load.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::thresholds::{NoiseFloors, Thresholds};

/// A suite of scenarios, as read from a TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The suite's name; reports are archived as `<name>_<UTC timestamp>.json`.
    pub name: String,
    /// Free text shown at the top of rendered reports.
    #[serde(default)]
    pub description: String,
    /// Repetitions for scenarios that do not set their own (default 3). More repetitions
    /// give narrower confidence intervals.
    #[serde(default = "default_repetitions")]
    pub repetitions: u32,
    /// Suite-wide regression thresholds in percent (see [`Thresholds`]).
    #[serde(default, skip_serializing_if = "Thresholds::is_empty")]
    pub thresholds: Thresholds,
    /// Suite-wide absolute noise floors in each metric's unit (see [`NoiseFloors`]).
    #[serde(default, skip_serializing_if = "NoiseFloors::is_empty")]
    pub noise_floor: NoiseFloors,
    /// Settings of the embedded simulator used by `run --sim`.
    #[serde(default)]
    pub sim: SimSettings,
    /// The scenarios, run in file order.
    #[serde(rename = "scenario")]
    pub scenarios: Vec<Scenario>,
}

/// Settings for the embedded simulator (`run --sim`); ignored against a real server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSettings {
    /// Simulated delays are multiplied by this (0.01 = 100 times faster). Default 1.0.
    #[serde(default = "one")]
    pub time_scale: f64,
    /// Parallel request slots per model (`OLLAMA_NUM_PARALLEL`), default 1.
    #[serde(default = "one_usize")]
    pub num_parallel: usize,
    /// Seed for the simulator's jitter.
    #[serde(default)]
    pub seed: u64,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            num_parallel: 1,
            seed: 0,
        }
    }
}

/// Spacing of open-loop arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// One request every `1/rate` seconds.
    Constant,
    /// A Poisson process with mean gap `1/rate` (bursty, like independent users).
    Poisson,
}

/// The API a scenario drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /api/generate`.
    Generate,
    /// `POST /api/chat`.
    #[default]
    Chat,
    /// `POST /api/embed`.
    Embed,
    /// `POST /v1/chat/completions` (the OpenAI-compatible layer).
    OpenaiChat,
}

impl Endpoint {
    /// The API path, as telemetry labels it.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Generate => "/api/generate",
            Endpoint::Chat => "/api/chat",
            Endpoint::Embed => "/api/embed",
            Endpoint::OpenaiChat => "/v1/chat/completions",
        }
    }
}

/// One scenario: a model, an endpoint, prompts, a load shape and a stop condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique within the suite; comparisons and trends match scenarios by this name.
    pub name: String,
    /// The model tag, e.g. `llama3.2:latest`.
    pub model: String,
    /// Which API to drive (default `chat`).
    #[serde(default)]
    pub endpoint: Endpoint,
    /// Prompts, used round-robin. Empty means the load test's default prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// A JSONL prompts file (relative paths are relative to the suite file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts_file: Option<PathBuf>,
    /// Closed loop: this many requests in flight at all times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Open loop: this many request arrivals per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Open loop: how arrivals are spaced (default `constant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<Arrival>,
    /// Stop after this many timed requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Stop after this long (`"30s"`, `"5m"`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_duration",
        serialize_with = "ser_duration"
    )]
    pub duration: Option<Duration>,
    /// Untimed warm-up requests before the timed window (default: the load test's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<u64>,
    /// Stream responses (needed for TTFT and TPOT). Default true.
    #[serde(default = "yes")]
    pub stream: bool,
    /// Model options sent with every request.
    #[serde(default, skip_serializing_if = "ScenarioOptions::is_empty")]
    pub options: ScenarioOptions,
    /// Repetitions of this scenario (default: the suite's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetitions: Option<u32>,
    /// Latency objectives for goodput, in the load test's `--slo` syntax
    /// (`"ttft=500ms,tpot=50ms,e2e=5s"`). Without one, goodput is successful requests per
    /// second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
    /// Thresholds for this scenario only, over the suite's.
    #[serde(default, skip_serializing_if = "Thresholds::is_empty")]
    pub thresholds: Thresholds,
    /// Noise floors for this scenario only, over the suite's.
    #[serde(default, skip_serializing_if = "NoiseFloors::is_empty")]
    pub noise_floor: NoiseFloors,
}

/// The model options a scenario may set (the ones the load test sends).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioOptions {
    /// `num_predict`: output token limit (OpenAI: `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_predict: Option<i64>,
    /// `temperature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// `num_ctx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_ctx: Option<u64>,
    /// `keep_alive` as a duration string (`5m`, `-1`, `0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<String>,
}

impl ScenarioOptions {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Scenario {
    /// How many times this scenario runs, after the suite default.
    pub fn repetitions_in(&self, suite: &Suite) -> u32 {
        self.repetitions.unwrap_or(suite.repetitions)
    }
}

fn default_repetitions() -> u32 {
    3
}
fn one() -> f64 {
    1.0
}
fn one_usize() -> usize {
    1
}
fn yes() -> bool {
    true
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("duration `{s}`: {e}")))
}

#[allow(clippy::ref_option)] // serde's `serialize_with` hands us `&Option<T>`.
fn ser_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        None => s.serialize_none(),
    }
}

impl Suite {
    /// A one-scenario suite describing what a bare load-test report ran, so reports of the
    /// load-test CLI can be compared and rendered like suite reports.
    pub(crate) fn for_loadtest(name: &str, report: &ollama_loadtest::Report) -> Suite {
        let c = &report.config;
        let endpoint = match c.endpoint.as_str() {
            "/api/generate" => Endpoint::Generate,
            "/api/embed" => Endpoint::Embed,
            "/v1/chat/completions" => Endpoint::OpenaiChat,
            _ => Endpoint::Chat,
        };
        let open = c.mode == "open";
        let slo = c.slo.as_ref().map(|s| {
            [("ttft", s.ttft_ms), ("tpot", s.tpot_ms), ("e2e", s.e2e_ms)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k}={v}ms")))
                .collect::<Vec<_>>()
                .join(",")
        });
        Suite {
            name: "loadtest".to_owned(),
            description: String::new(),
            repetitions: 1,
            thresholds: Thresholds::new(),
            noise_floor: NoiseFloors::new(),
            sim: SimSettings::default(),
            scenarios: vec![Scenario {
                name: name.to_owned(),
                model: c.model.clone(),
                endpoint,
                prompts: c.prompt.iter().cloned().collect(),
                prompts_file: c.prompts_file.as_ref().map(PathBuf::from),
                concurrency: (!open).then(|| u32::try_from(c.workers).unwrap_or(u32::MAX)),
                rate: if open { c.rate } else { None },
                arrival: match c.arrival.as_deref() {
                    Some("poisson") => Some(Arrival::Poisson),
                    Some("constant") => Some(Arrival::Constant),
                    _ => None,
                },
                requests: c.requests,
                duration: c.duration.map(Duration::from_secs_f64),
                warmup: Some(c.warmup),
                stream: c.stream,
                options: ScenarioOptions {
                    num_predict: c.options.num_predict,
                    temperature: c.options.temperature,
                    num_ctx: c.options.num_ctx,
                    keep_alive: c.options.keep_alive.clone(),
                },
                repetitions: Some(1),
                slo: slo.filter(|s| !s.is_empty()),
                thresholds: Thresholds::new(),
                noise_floor: NoiseFloors::new(),
            }],
        }
    }

    /// The scenario named `name`.
    pub fn scenario(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    /// Reads and validates a suite file; relative `prompts_file` paths are resolved against
    /// the suite file's folder.
    pub fn from_file(path: &Path) -> Result<Suite, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut suite = Suite::from_toml(&text).map_err(|e| match e {
            Error::Suite { message, .. } => Error::Suite {
                path: Some(path.to_owned()),
                message,
            },
            other => other,
        })?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        for s in &mut suite.scenarios {
            if let Some(p) = &s.prompts_file
                && p.is_relative()
            {
                s.prompts_file = Some(dir.join(p));
            }
        }
        Ok(suite)
    }

    /// Parses and validates a suite from TOML text.
    pub fn from_toml(text: &str) -> Result<Suite, Error> {
        let suite: Suite = toml::from_str(text).map_err(|e| Error::Suite {
            path: None,
            message: e.to_string(),
        })?;
        suite.validate().map_err(|message| Error::Suite {
            path: None,
            message,
        })?;
        Ok(suite)
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("the suite needs a non-empty `name`".into());
        }
        if self.scenarios.is_empty() {
            return Err("the suite has no [[scenario]]".into());
        }
        if self.repetitions == 0 {
            return Err("`repetitions` must be at least 1".into());
        }
        if !(self.sim.time_scale.is_finite() && self.sim.time_scale > 0.0) {
            return Err("[sim] time_scale must be a positive number".into());
        }
        if self.sim.num_parallel == 0 {
            return Err("[sim] num_parallel must be at least 1".into());
        }
        let mut names = BTreeSet::new();
        for s in &self.scenarios {
            let ctx = |m: &str| format!("scenario `{}`: {m}", s.name);
            if s.name.trim().is_empty() {
                return Err("a scenario has an empty `name`".into());
            }
            if !names.insert(s.name.as_str()) {
                return Err(ctx("the name is used twice"));
            }
            if s.model.trim().is_empty() {
                return Err(ctx("`model` is empty"));
            }
            match (s.concurrency, s.rate) {
                (Some(_), Some(_)) => {
                    return Err(ctx(
                        "set `concurrency` (closed loop) or `rate` (open loop), not both",
                    ));
                }
                (Some(0), None) => return Err(ctx("`concurrency` must be at least 1")),
                (Some(_), None) if s.arrival.is_some() => {
                    return Err(ctx("`arrival` applies to open loop (`rate`) only"));
                }
                (None, Some(r)) if !(r.is_finite() && r > 0.0) => {
                    return Err(ctx(
                        "`rate` must be a positive number of requests per second",
                    ));
                }
                _ => {}
            }
            match (s.requests, s.duration) {
                (Some(_), Some(_)) => {
                    return Err(ctx("set `requests` (count) or `duration`, not both"));
                }
                (None, None) => return Err(ctx("set `requests` (count) or `duration`")),
                (Some(0), None) => return Err(ctx("`requests` must be at least 1")),
                (None, Some(d)) if d.is_zero() => {
                    return Err(ctx("`duration` must be longer than zero"));
                }
                _ => {}
            }
            if s.repetitions == Some(0) {
                return Err(ctx("`repetitions` must be at least 1"));
            }
            if let Some(slo) = &s.slo {
                slo.parse::<ollama_loadtest::Slo>()
                    .map_err(|e| ctx(&format!("`slo`: {e}")))?;
            }
            if s.endpoint == Endpoint::Embed && s.stream {
                return Err(ctx("`/api/embed` does not stream: set `stream = false`"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::metric::Metric;

    const SMALL: &str = r#"
        name = "t"
        [thresholds]
        e2e = 12
        [noise_floor]
        load_time = 50
        [[scenario]]
        name = "a"
        model = "llama3.2:latest"
        concurrency = 2
        requests = 10
        options = { num_predict = 16 }
        [scenario.thresholds]
        e2e_p99 = 40
        [[scenario]]
        name = "b"
        model = "all-minilm:latest"
        endpoint = "embed"
        stream = false
        rate = 5.5
        duration = "2s"
        repetitions = 1
    "#;

    #[test]
    fn parses_a_small_suite() {
        let s = Suite::from_toml(SMALL).unwrap();
        assert_eq!(s.repetitions, 3);
        assert_eq!(s.scenarios.len(), 2);
        let a = &s.scenarios[0];
        assert_eq!(a.endpoint, Endpoint::Chat);
        assert!(a.stream);
        assert_eq!(a.options.num_predict, Some(16));
        assert_eq!(
            Thresholds::resolve(&[&a.thresholds, &s.thresholds], Metric::E2eP99),
            40.0
        );
        assert_eq!(
            Thresholds::resolve(&[&a.thresholds, &s.thresholds], Metric::E2eP50),
            12.0
        );
        assert_eq!(
            NoiseFloors::resolve(&[&a.noise_floor, &s.noise_floor], Metric::LoadTime),
            50.0
        );
        let b = &s.scenarios[1];
        assert_eq!(b.duration, Some(Duration::from_secs(2)));
        assert_eq!(b.repetitions_in(&s), 1);
        assert_eq!(b.endpoint.path(), "/api/embed");
        // The suite survives a round trip through its own serialization.
        let again = Suite::from_toml(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s);
    }

    fn err(text: &str) -> String {
        Suite::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn rejects_bad_suites_with_a_reason() {
        let base = "name = \"t\"\n[[scenario]]\nname = \"a\"\nmodel = \"m\"\n";
        assert!(
            err(&format!("{base}concurrency = 1\nrate = 2.0\nrequests = 1")).contains("not both")
        );
        assert!(
            err(&format!("{base}concurrency = 1")).contains("`requests` (count) or `duration`")
        );
        assert!(
            err(&format!("{base}requests = 1\nduration = \"soon\"")).contains("duration `soon`")
        );
        assert!(
            err(&format!("{base}requests = 1\nendpoint = \"completion\"")).contains("completion")
        );
        assert!(err(&format!("{base}requests = 1\ncolour = 1")).contains("colour"));
        assert!(
            err(&format!(
                "{base}requests = 1\n[scenario.thresholds]\np99 = 1"
            ))
            .contains("`p99`")
        );
        let again = "[[scenario]]\nname = \"a\"\nmodel = \"m\"\nrequests = 2\n";
        assert!(err(&format!("{base}requests = 1\n{again}")).contains("used twice"));
        assert!(err("name = \"t\"\nscenario = []").contains("no [[scenario]]"));
        assert!(
            err(&format!("{base}requests = 1\nendpoint = \"embed\"")).contains("stream = false")
        );
        assert!(err(&format!("{base}requests = 1\nslo = \"p99=1s\"")).contains("`slo`"));
        assert!(err(&format!("{base}requests = 1\noptions = {{ top_k = 1 }}")).contains("top_k"));
    }

    #[test]
    fn the_default_suite_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/default.toml");
        let s = Suite::from_file(&path).unwrap();
        assert!(s.scenarios.len() >= 3);
    }
}
