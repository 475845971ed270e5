//! The load-test report: one versioned JSON schema shared by every tool that reads or
//! writes results (this crate, `ollama-perfreport`, xtask).
//!
//! It keeps the original Python script's keys with their meanings (`timestamp`, `config`,
//! `summary{...}`, `samples{requests, errors}`) and adds the LLM metrics, the environment,
//! a per-second time series and serialized HDR histograms, so shards of one test merge
//! without loss. Reading checks `schema_version` first, so an old or foreign file is a
//! clear error rather than a report of zeros. The schema is documented in
//! `docs/SCHEMAS.md`, section "Load-test report".

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::{Distribution, EncodedHistogram, HistogramError};

/// The schema version this crate reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A complete (or partial) load-test result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`] for reports this crate writes.
    pub schema_version: u32,
    /// Which tool wrote the report.
    pub tool: ToolInfo,
    /// Start of the timed window, RFC 3339 in UTC.
    pub timestamp: String,
    /// True when the run was interrupted (Ctrl-C) or aborted before its stop condition.
    pub partial: bool,
    /// Set when the safety switch stopped the run.
    pub aborted: Option<Abort>,
    /// The run's settings (the original's keys plus the new ones).
    pub config: ConfigRecord,
    /// Headline numbers (the original's keys plus additions).
    pub summary: Summary,
    /// Per-request metric distributions of the successful requests in the timed window.
    pub metrics: Metrics,
    /// Open-loop scheduling figures; absent for closed-loop runs.
    pub open_loop: Option<OpenLoop>,
    /// Requests that met every SLO; absent when no SLO was given.
    pub goodput: Option<Goodput>,
    /// Breakdown per model (one entry per model of the mix).
    pub models: BTreeMap<String, ModelStats>,
    /// What was measured: server, models, client limits, host.
    pub environment: Environment,
    /// One entry per second of the timed window, by completion time.
    pub time_series: Vec<SecondBucket>,
    /// Reservoir samples of single requests.
    pub samples: Samples,
    /// Serialized histograms of the timed window, keyed by metric name (the names of the
    /// [`Metrics`] fields without their unit suffix, e.g. `e2e`, `ttft`).
    pub histograms: BTreeMap<String, EncodedHistogram>,
}

/// Tool name, version and source revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// `ollama-loadtest`.
    pub name: String,
    /// Crate version.
    pub version: String,
    /// Git revision (commit) the binary was built from, if it was built in a git checkout.
    pub git_revision: Option<String>,
}

/// Why and when the safety switch stopped a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Abort {
    /// Human-readable reason, naming the limit that was passed.
    pub reason: String,
    /// Seconds into the timed window when it triggered.
    pub after_seconds: f64,
}

/// The run's settings as recorded in the report.
///
/// The first group of fields are the original script's `config` keys with their meaning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// Requests in the timed window (when stopping by count).
    pub requests: Option<u64>,
    /// Closed-loop workers.
    pub workers: usize,
    /// First model of the mix.
    pub model: String,
    /// The prompt (when one prompt is used for every request).
    pub prompt: Option<String>,
    /// Timed-window length in seconds (when stopping by time).
    pub duration: Option<f64>,
    /// Report path, when the CLI wrote one.
    pub output: Option<String>,
    /// Client limit on concurrent requests, if any.
    pub concurrency: Option<usize>,
    /// Client limit on open connections.
    pub max_connections: usize,
    /// Client limit on idle keep-alive connections.
    pub keepalive: usize,
    /// Reservoir size for `samples`.
    pub sample_count: usize,
    /// Warm-up requests made before the timed window.
    pub warmup: u64,
    /// Client read timeout, seconds.
    pub timeout: f64,
    /// Client health-check timeout, seconds.
    pub health_timeout: f64,
    /// Whether the start-up health check was skipped.
    pub skip_verify: bool,
    /// Closed-loop think time between a worker's requests, seconds.
    pub delay: f64,
    /// Server base URL.
    pub base_url: String,
    /// `closed` or `open`.
    pub mode: String,
    /// Open-loop target rate, requests per second.
    pub rate: Option<f64>,
    /// Open-loop arrival process (`constant` or `poisson`).
    pub arrival: Option<String>,
    /// Open-loop in-flight cap.
    pub max_in_flight: Option<usize>,
    /// Ramp-up length in seconds, if any.
    pub ramp: Option<f64>,
    /// API path under test, e.g. `/api/generate`.
    pub endpoint: String,
    /// Whether responses were streamed.
    pub stream: bool,
    /// Model mix: name and relative weight.
    pub models: Vec<ModelWeightRecord>,
    /// JSONL prompt file, if prompts came from one.
    pub prompts_file: Option<String>,
    /// Number of distinct prompts.
    pub prompt_count: usize,
    /// `round_robin` or `random`.
    pub prompt_order: String,
    /// Model options sent with each request.
    pub options: OptionsRecord,
    /// Seed of every random choice (arrivals, prompt order, sampling).
    pub seed: u64,
    /// SLOs for goodput, milliseconds.
    pub slo: Option<SloRecord>,
    /// Safety-switch limits.
    pub abort_limits: AbortLimitsRecord,
}

/// One entry of the model mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelWeightRecord {
    /// Model name as sent.
    pub name: String,
    /// Relative weight.
    pub weight: u32,
}

/// Model options sent with each request (absent ones were not sent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OptionsRecord {
    /// `options.num_predict` (OpenAI: `max_tokens`).
    pub num_predict: Option<i64>,
    /// `options.temperature`.
    pub temperature: Option<f64>,
    /// `options.num_ctx`.
    pub num_ctx: Option<u64>,
    /// `keep_alive`, as sent.
    pub keep_alive: Option<String>,
}

/// SLO limits in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SloRecord {
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Time per output token.
    pub tpot_ms: Option<f64>,
    /// End-to-end latency.
    pub e2e_ms: Option<f64>,
}

/// Safety-switch limits in force (absent = off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AbortLimitsRecord {
    /// Error rate, percent, that stops the run.
    pub error_rate_percent: Option<f64>,
    /// Completed requests needed before the error rate is judged.
    pub min_requests: u64,
    /// Number of 503 responses that stops the run.
    pub server_busy: Option<u64>,
}

/// Headline numbers of the timed window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests completed in the timed window (successes + failures; no warm-up, no
    /// abandoned requests).
    pub total_requests: u64,
    /// Successful requests.
    pub successes: u64,
    /// Failed requests.
    pub failures: u64,
    /// `successes / total_requests`, in percent (0 when nothing completed).
    pub success_rate: f64,
    /// Length of the timed window in seconds (first send to last completion).
    pub test_duration_seconds: f64,
    /// `total_requests / test_duration_seconds`.
    pub requests_per_second: f64,
    /// End-to-end latency of successful requests, ms. In open loop this is measured from
    /// the intended send time (coordinated-omission corrected).
    pub latency_ms: Distribution,
    /// Failures by error kind (`ollama_client::ErrorKind` labels).
    pub errors: BTreeMap<String, u64>,
    /// Open loop only: latency from the actual send time (not corrected), ms.
    pub latency_uncorrected_ms: Option<Distribution>,
    /// Failures by HTTP status, for failures that had one.
    pub http_statuses: BTreeMap<String, u64>,
    /// Requests in flight when the run stopped early, dropped and not counted.
    pub abandoned: u64,
    /// Most requests in flight at once.
    pub peak_in_flight: u64,
    /// Output tokens of successful requests, from the server's counts.
    pub output_tokens_total: u64,
    /// Prompt tokens of successful requests, from the server's counts.
    pub prompt_tokens_total: u64,
    /// `output_tokens_total / test_duration_seconds`.
    pub output_tokens_per_second: f64,
    /// Timed-window requests that waited on a model load (server `load_duration` of at
    /// least 100 ms): cold loads or reloads seen mid-run.
    pub cold_loads: u64,
    /// Warm-up phase (outside the timed window).
    pub warmup: WarmupSummary,
}

/// The warm-up phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmupSummary {
    /// Warm-up requests made.
    pub requests: u64,
    /// Of which failed.
    pub failures: u64,
    /// Wall time of the warm-up, seconds.
    pub duration_seconds: f64,
}

/// Distributions of per-request metrics (successful requests of the timed window). A
/// metric is `null` when no request produced it (e.g. TTFT without streaming).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// End-to-end latency, ms (open loop: from the intended send time).
    pub e2e_ms: Option<Distribution>,
    /// Open loop: end-to-end latency from the actual send time, ms.
    pub e2e_uncorrected_ms: Option<Distribution>,
    /// Time to the response head, ms (streams).
    pub ttfb_ms: Option<Distribution>,
    /// Time to first token: the first chunk carrying generated text, thinking included, ms.
    pub ttft_ms: Option<Distribution>,
    /// Time to first content: the first chunk carrying answer text (not thinking), ms.
    pub ttfc_ms: Option<Distribution>,
    /// Gaps between successive token-bearing chunks, ms (one sample per gap).
    pub itl_ms: Option<Distribution>,
    /// Time per output token after the first: `(e2e - ttft) / (output_tokens - 1)`, ms.
    pub tpot_ms: Option<Distribution>,
    /// Output tokens per request (server `eval_count` or OpenAI `usage.completion_tokens`).
    pub output_tokens: Option<Distribution>,
    /// Prompt tokens per request (server `prompt_eval_count` or `usage.prompt_tokens`).
    pub prompt_tokens: Option<Distribution>,
    /// Generation speed per request, tokens/s: `eval_count / eval_duration` on native
    /// endpoints; on OpenAI endpoints `completion_tokens` over the client's decode time.
    pub tokens_per_second: Option<Distribution>,
    /// Server `load_duration`, ms.
    pub load_ms: Option<Distribution>,
    /// Server `prompt_eval_duration`, ms.
    pub prompt_eval_ms: Option<Distribution>,
    /// Server `eval_duration`, ms.
    pub eval_ms: Option<Distribution>,
    /// Server `total_duration`, ms.
    pub server_total_ms: Option<Distribution>,
    /// Queue-wait estimate: client time (from the actual send) minus server
    /// `total_duration`, ms: time spent before the server's handler started (network,
    /// proxies, accept queues).
    pub queue_wait_ms: Option<Distribution>,
    /// In-server wait: `total - load - prompt_eval - eval`, ms: mostly waiting for a
    /// parallel slot behind `OLLAMA_NUM_PARALLEL`.
    pub server_wait_ms: Option<Distribution>,
}

/// Open-loop scheduling figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenLoop {
    /// Asked arrival rate, requests per second (after any ramp).
    pub target_rate: f64,
    /// `constant` or `poisson`.
    pub arrival: String,
    /// Requests sent in the timed window.
    pub sent: u64,
    /// Sends per second over the sending period (first to last intended send).
    pub achieved_rate: f64,
    /// How late the dispatcher sent each request after its intended time, ms.
    pub schedule_lag_ms: Option<Distribution>,
    /// The in-flight cap.
    pub max_in_flight: usize,
    /// Arrivals that found the cap reached and had to wait for a slot.
    pub max_in_flight_hits: u64,
}

/// Goodput: requests that succeeded and met every SLO.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    /// The SLOs, ms.
    pub slo: SloRecord,
    /// Requests meeting every SLO.
    pub good_requests: u64,
    /// `good_requests / total_requests`, percent.
    pub good_percent: f64,
    /// `good_requests / test_duration_seconds`.
    pub goodput_rps: f64,
}

/// Per-model breakdown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    /// Completed requests.
    pub requests: u64,
    /// Successful requests.
    pub successes: u64,
    /// Failed requests.
    pub failures: u64,
    /// End-to-end latency of successes, ms.
    pub latency_ms: Option<Distribution>,
    /// Time to first token, ms.
    pub ttft_ms: Option<Distribution>,
    /// Generation speed, tokens/s.
    pub tokens_per_second: Option<Distribution>,
    /// Output tokens of successes.
    pub output_tokens_total: u64,
    /// Requests that waited on a model load.
    pub cold_loads: u64,
    /// `e2e`, `ttft` and `tokens_per_second` of this model's successes, serialized like the
    /// report's `histograms`, so that merged shards recompute the distributions above
    /// exactly. Empty in reports written before it existed.
    #[serde(default)]
    pub histograms: BTreeMap<String, EncodedHistogram>,
}

/// What the test ran against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Server base URL.
    pub base_url: String,
    /// `/api/version`, if the server answered.
    pub server_version: Option<String>,
    /// True when the server was the embedded simulator (`--sim`).
    pub simulated: bool,
    /// Details of the models under test, from `/api/tags` and `/api/show`.
    pub models: Vec<ModelInfo>,
    /// `/api/ps` after the warm-up.
    pub loaded_models: Vec<LoadedModel>,
    /// The client's configuration (`ollama_client::Client::config()`), as JSON.
    pub client: serde_json::Value,
    /// The machine running the load test.
    pub host: HostInfo,
    /// Environment facts that could not be read, and why (e.g. a server without `/api/ps`).
    pub probe_errors: Vec<String>,
}

/// One model under test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Name as sent.
    pub name: String,
    /// Digest from `/api/tags`.
    pub digest: Option<String>,
    /// Size in bytes from `/api/tags`.
    pub size: Option<u64>,
    /// `details` object (family, parameter_size, quantization_level, format, ...).
    pub details: serde_json::Value,
    /// Capabilities from `/api/show`.
    pub capabilities: Vec<String>,
}

/// One entry of `/api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadedModel {
    /// Model name.
    pub name: String,
    /// Digest.
    pub digest: Option<String>,
    /// Bytes in VRAM.
    pub size_vram: Option<u64>,
    /// Context length the runner was loaded with.
    pub context_length: Option<u64>,
    /// When it unloads if idle.
    pub expires_at: Option<String>,
}

/// The load generator's machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name, if readable.
    pub hostname: Option<String>,
    /// `std::env::consts::OS`.
    pub os: String,
    /// `std::env::consts::ARCH`.
    pub arch: String,
    /// Available parallelism.
    pub cpus: usize,
}

/// Requests completed in one second of the timed window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondBucket {
    /// Seconds since the start of the timed window (completion time).
    pub second: u64,
    /// Requests completed (successes + failures).
    pub requests: u64,
    /// Failures among them.
    pub errors: u64,
    /// Mean end-to-end latency of the successes, ms (0 when none).
    pub latency_avg_ms: f64,
    /// Largest end-to-end latency of the successes, ms.
    pub latency_max_ms: f64,
    /// Output tokens of the successes.
    pub output_tokens: u64,
}

/// Reservoir samples (uniform over the timed window, seeded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    /// Successful requests.
    pub requests: Vec<RequestSample>,
    /// Failed requests.
    pub errors: Vec<ErrorSample>,
}

/// One successful request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestSample {
    /// Request index in the timed window.
    pub index: u64,
    /// Model.
    pub model: String,
    /// Intended send time, ms after the window's start.
    pub start_ms: f64,
    /// End-to-end latency, ms (corrected in open loop).
    pub e2e_ms: f64,
    /// Latency from the actual send, ms.
    pub e2e_uncorrected_ms: f64,
    /// Time to first token, ms.
    pub ttft_ms: Option<f64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Tokens per second.
    pub tokens_per_second: Option<f64>,
    /// Server load_duration, ms.
    pub load_ms: Option<f64>,
    /// Server total_duration, ms.
    pub server_total_ms: Option<f64>,
    /// Queue-wait estimate, ms.
    pub queue_wait_ms: Option<f64>,
    /// Server `done_reason` / OpenAI `finish_reason`.
    pub done_reason: Option<String>,
}

/// One failed request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorSample {
    /// Request index in the timed window.
    pub index: u64,
    /// Model.
    pub model: String,
    /// Intended send time, ms after the window's start.
    pub start_ms: f64,
    /// Time until the failure, ms.
    pub latency_ms: f64,
    /// Error kind label.
    pub kind: String,
    /// HTTP status, if the failure had one.
    pub http_status: Option<u16>,
    /// Error message.
    pub message: String,
}

/// Why a report could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be read, written or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid JSON or does not match the schema.
    #[error("{}: not a valid load-test report: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The file has another (or no) `schema_version`.
    #[error("{}: report schema_version {found} is not supported (expected {SCHEMA_VERSION})", path.display())]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// What it says (`missing` when absent).
        found: String,
    },
    /// The report could not be serialized.
    #[error("report could not be serialized: {0}")]
    Serialize(serde_json::Error),
    /// A serialized histogram could not be decoded.
    #[error("histogram {name:?}: {source}")]
    Histogram {
        /// Metric name.
        name: String,
        /// The cause.
        source: HistogramError,
    },
}

impl Report {
    /// Reads and validates a report file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, ReportError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Parses a report from JSON text; `origin` names the source in errors.
    pub fn from_json(text: &str, origin: &Path) -> Result<Self, ReportError> {
        let json = |source| ReportError::Json {
            path: origin.to_owned(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(json)?;
        match value.get("schema_version") {
            Some(v) if v.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
            other => {
                return Err(ReportError::SchemaVersion {
                    path: origin.to_owned(),
                    found: other.map_or_else(|| "missing".to_owned(), ToString::to_string),
                });
            }
        }
        serde_json::from_value(value).map_err(json)
    }

    /// Pretty JSON text of the report.
    pub fn to_json(&self) -> Result<String, ReportError> {
        serde_json::to_string_pretty(self).map_err(ReportError::Serialize)
    }

    /// Writes the report atomically: to a temporary file in the same directory, synced,
    /// then renamed over `path`, so readers never see a half-written report. Creates the
    /// parent directory if needed.
    pub fn write_atomic(&self, path: impl AsRef<Path>) -> Result<(), ReportError> {
        let path = path.as_ref();
        let io = |source| ReportError::Io {
            path: path.to_owned(),
            source,
        };
        let mut text = self.to_json()?;
        text.push('\n');
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let file_name = path
            .file_name()
            .map_or_else(|| "report".to_owned(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            // Best effort: do not leave the temporary file behind.
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// The decoded histogram of metric `name` (a key of [`Report::histograms`]), ready to
    /// merge with `Histogram::add`; `None` when the report has no such histogram.
    pub fn histogram(&self, name: &str) -> Result<Option<Histogram<u64>>, ReportError> {
        self.histograms
            .get(name)
            .map(|h| {
                h.decode().map_err(|source| ReportError::Histogram {
                    name: name.to_owned(),
                    source,
                })
            })
            .transpose()
    }
}

#[cfg(test)]
impl Report {
    /// An empty report of the current schema, for unit tests.
    pub(crate) fn empty_for_tests() -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            tool: ToolInfo::default(),
            timestamp: String::new(),
            partial: false,
            aborted: None,
            config: ConfigRecord::default(),
            summary: Summary::default(),
            metrics: Metrics::default(),
            open_loop: None,
            goodput: None,
            models: BTreeMap::new(),
            environment: Environment::default(),
            time_series: Vec::new(),
            samples: Samples::default(),
            histograms: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_through_an_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/report.json");
        let mut r = Report::empty_for_tests();
        r.summary.total_requests = 7;
        r.write_atomic(&path).unwrap();
        assert_eq!(Report::read(&path).unwrap(), r);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn wrong_version_and_bad_json_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.json");
        std::fs::write(&path, r#"{"schema_version": 99, "summary": {}}"#).unwrap();
        let e = Report::read(&path).unwrap_err();
        assert!(matches!(e, ReportError::SchemaVersion { .. }));
        assert!(
            e.to_string().contains("old.json") && e.to_string().contains("99"),
            "{e}"
        );
        std::fs::write(&path, r#"{"timestamp": "x"}"#).unwrap();
        assert!(
            Report::read(&path)
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
        std::fs::write(&path, "{not json").unwrap();
        let e = Report::read(&path).unwrap_err();
        assert!(matches!(e, ReportError::Json { .. }));
        assert!(e.to_string().contains("old.json"), "{e}");
        std::fs::write(&path, r#"{"schema_version": 1}"#).unwrap();
        assert!(matches!(Report::read(&path), Err(ReportError::Json { .. })));
    }
}
