//! What a load test does: target and client limits, workload, loop mode, stop condition,
//! SLOs and safety limits. Defaults are the original script's (DESIGN section 8).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::prompts::Prompts;
use crate::schedule::Arrival;
use crate::slo::Slo;

/// Everything a run needs. Build with [`LoadTestConfig::default`] and adjust the fields.
#[derive(Debug, Clone)]
pub struct LoadTestConfig {
    /// Server and client limits.
    pub client: ClientSettings,
    /// What each request is.
    pub workload: Workload,
    /// Closed or open loop.
    pub mode: Mode,
    /// When the timed window ends.
    pub stop: Stop,
    /// Requests made one by one before the timed window and left out of the results
    /// (default 3). They load the models, cycling through the mix.
    pub warmup: u64,
    /// Optional linear ramp-up: closed-loop workers start spread over it; the open-loop
    /// rate grows from 0 to the target over it. Requests during the ramp are counted.
    pub ramp: Option<Duration>,
    /// Seed for arrivals, random prompt order and sampling (default 0).
    pub seed: u64,
    /// Reservoir size of sampled successful requests, and of failed ones (default 100).
    pub sample_count: usize,
    /// Objectives for goodput.
    pub slo: Option<Slo>,
    /// The safety switch.
    pub abort: AbortLimits,
    /// How long a run that stops by duration waits for requests still in flight before it
    /// abandons them (default 30 s).
    pub drain_timeout: Duration,
    /// JSONL request events written by the telemetry layer (`None` = off).
    pub events_path: Option<PathBuf>,
    /// Recorded in the report as `config.output` (the CLI's report path).
    pub output: Option<PathBuf>,
    /// Recorded in the report as `environment.simulated`.
    pub simulated: bool,
    /// Engine threads running the warm-up and the timed window, each with its own
    /// single-threaded runtime and its own client (`None`, the default: one per available
    /// core). Always capped by the workers (closed loop) or `max_in_flight` (open loop) and
    /// by the client limits, which are split across the threads so that the process-wide
    /// totals stay what [`ClientSettings`] says.
    pub threads: Option<usize>,
}

impl Default for LoadTestConfig {
    fn default() -> Self {
        Self {
            client: ClientSettings::default(),
            workload: Workload::default(),
            mode: Mode::Closed {
                workers: 10,
                delay: Duration::ZERO,
            },
            stop: Stop::Requests(200),
            warmup: 3,
            ramp: None,
            seed: 0,
            sample_count: 100,
            slo: None,
            abort: AbortLimits::default(),
            drain_timeout: Duration::from_secs(30),
            events_path: None,
            output: None,
            simulated: false,
            threads: None,
        }
    }
}

/// Server address and client limits (the original's flags).
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Base URL; `None` lets the client resolve `OLLAMA_HOST` like Ollama does.
    pub base_url: Option<String>,
    /// Open connections at most (default 50).
    pub max_connections: usize,
    /// Idle keep-alive connections kept (default 20).
    pub keepalive: usize,
    /// Requests in flight at most across the client (default none).
    pub concurrency: Option<usize>,
    /// Read timeout (default 300 s).
    pub timeout: Duration,
    /// Health-check timeout (default 5 s).
    pub health_timeout: Duration,
    /// Skip the start-up health check (default false).
    pub skip_verify: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            max_connections: 50,
            keepalive: 20,
            concurrency: None,
            timeout: Duration::from_secs(300),
            health_timeout: Duration::from_secs(5),
            skip_verify: false,
        }
    }
}

/// Closed loop (a fixed number of workers, each sending its next request when the last
/// one finished) or open loop (requests sent on a schedule, whatever the server does).
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Closed loop.
    Closed {
        /// Concurrent workers.
        workers: usize,
        /// Think time between a worker's requests.
        delay: Duration,
    },
    /// Open loop.
    Open {
        /// Target arrivals per second.
        rate: f64,
        /// Spacing of arrivals.
        arrival: Arrival,
        /// Requests in flight at most; an arrival that finds the cap reached waits for a
        /// slot (still timed from its intended send) and is counted in the report.
        max_in_flight: usize,
    },
}

/// When the timed window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many requests have been sent.
    Requests(u64),
    /// When this much time has passed (requests still in flight are then awaited for up
    /// to `drain_timeout`).
    Duration(Duration),
}

/// The API a workload exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endpoint {
    /// `POST /api/generate`.
    #[default]
    Generate,
    /// `POST /api/chat` (one user message).
    Chat,
    /// `POST /api/embed` (never streamed).
    Embed,
    /// `POST /v1/chat/completions` (OpenAI-compatible).
    OpenAiChat,
}

impl Endpoint {
    /// The API path, as telemetry labels it.
    pub fn path(self) -> &'static str {
        match self {
            Self::Generate => "/api/generate",
            Self::Chat => "/api/chat",
            Self::Embed => "/api/embed",
            Self::OpenAiChat => "/v1/chat/completions",
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "generate" | "/api/generate" => Self::Generate,
            "chat" | "/api/chat" => Self::Chat,
            "embed" | "/api/embed" => Self::Embed,
            "openai" | "openai-chat" | "/v1/chat/completions" => Self::OpenAiChat,
            other => {
                return Err(format!(
                    "unknown endpoint {other:?} (use generate, chat, embed or openai-chat)"
                ));
            }
        })
    }
}

/// One model of the mix with its relative weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedModel {
    /// Model name as sent.
    pub name: String,
    /// Relative share of requests (at least 1).
    pub weight: u32,
}

impl FromStr for WeightedModel {
    type Err = String;

    /// `NAME` or `NAME=WEIGHT` (`llama3.2:latest=3`).
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, weight) = match s.rsplit_once('=') {
            Some((n, w)) => {
                let weight = w
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|w| (1..=1000).contains(w))
                    .ok_or_else(|| format!("model weight in {s:?} must be an integer 1..=1000"))?;
                (n.trim(), weight)
            }
            None => (s.trim(), 1),
        };
        if name.is_empty() {
            return Err(format!("empty model name in {s:?}"));
        }
        Ok(Self {
            name: name.to_owned(),
            weight,
        })
    }
}

/// How prompts are taken from a list of several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptOrder {
    /// Request `i` uses prompt `i mod n`.
    #[default]
    RoundRobin,
    /// Uniformly at random, fixed by the seed and the request index.
    Random,
}

impl PromptOrder {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::Random => "random",
        }
    }
}

/// Model options sent with each request (only those set are sent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelOptions {
    /// `num_predict`: output token limit (OpenAI: `max_tokens`).
    pub num_predict: Option<i64>,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `num_ctx` (not sent on OpenAI requests, which have no such field).
    pub num_ctx: Option<u64>,
    /// `keep_alive` as a duration string (`5m`, `-1`, `0`); native endpoints only.
    pub keep_alive: Option<String>,
}

/// What each request is.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The API.
    pub endpoint: Endpoint,
    /// Stream the response (needed for TTFT and inter-token gaps).
    pub stream: bool,
    /// Model mix (at least one).
    pub models: Vec<WeightedModel>,
    /// Prompts.
    pub prompts: Prompts,
    /// Order of prompts.
    pub prompt_order: PromptOrder,
    /// Model options.
    pub options: ModelOptions,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            endpoint: Endpoint::Generate,
            stream: false,
            models: vec![WeightedModel {
                name: "llama3.2:latest".to_owned(),
                weight: 1,
            }],
            prompts: Prompts::single("Why is the sky blue? Answer in one sentence."),
            prompt_order: PromptOrder::RoundRobin,
            options: ModelOptions::default(),
        }
    }
}

/// The safety switch that stops a run hurting a shared server.
#[derive(Debug, Clone, PartialEq)]
pub struct AbortLimits {
    /// Stop when the failure rate of completed requests reaches this percent (default 50).
    pub error_rate_percent: Option<f64>,
    /// Completed requests before the error rate is judged (default 20).
    pub min_requests: u64,
    /// Stop after this many 503 (server busy) responses (default 10).
    pub server_busy: Option<u64>,
}

impl Default for AbortLimits {
    fn default() -> Self {
        Self {
            error_rate_percent: Some(50.0),
            min_requests: 20,
            server_busy: Some(10),
        }
    }
}

impl AbortLimits {
    /// No safety switch.
    pub fn off() -> Self {
        Self {
            error_rate_percent: None,
            min_requests: 0,
            server_busy: None,
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid load-test configuration: {0}")]
pub struct ConfigError(pub(crate) String);

impl LoadTestConfig {
    /// Checks everything that would make the run meaningless or impossible.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError(m.to_owned()));
        match self.mode {
            Mode::Closed { workers: 0, .. } => return bad("workers must be at least 1"),
            Mode::Open { rate, .. } if !(rate.is_finite() && rate > 0.0) => {
                return bad("rate must be a positive number of requests per second");
            }
            Mode::Open {
                max_in_flight: 0, ..
            } => return bad("max_in_flight must be at least 1"),
            _ => {}
        }
        match self.stop {
            Stop::Requests(0) => return bad("requests must be at least 1"),
            Stop::Duration(d) if d.is_zero() => return bad("duration must be positive"),
            _ => {}
        }
        if self.workload.models.is_empty() {
            return bad("at least one model is needed");
        }
        if self.workload.models.iter().any(|m| m.weight == 0) {
            return bad("model weights must be at least 1");
        }
        if self.workload.endpoint == Endpoint::Embed && self.workload.stream {
            return bad("/api/embed does not stream; drop --stream");
        }
        if self.client.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.client.concurrency == Some(0) {
            return bad("concurrency must be at least 1");
        }
        if self.threads == Some(0) {
            return bad("threads must be at least 1");
        }
        if let Some(rate) = self.abort.error_rate_percent
            && !(rate > 0.0 && rate <= 100.0)
        {
            return bad("abort error rate must be in (0, 100] percent");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_the_originals() {
        let c = LoadTestConfig::default();
        assert_eq!(c.stop, Stop::Requests(200));
        assert!(matches!(c.mode, Mode::Closed { workers: 10, .. }));
        assert_eq!(c.warmup, 3);
        assert_eq!(c.sample_count, 100);
        assert_eq!(c.client.max_connections, 50);
        assert_eq!(c.client.keepalive, 20);
        assert_eq!(c.client.timeout, Duration::from_secs(300));
        assert_eq!(c.client.health_timeout, Duration::from_secs(5));
        c.validate().unwrap();
    }

    #[test]
    fn weighted_models_parse() {
        let m: WeightedModel = "llama3.2:latest=3".parse().unwrap();
        assert_eq!((m.name.as_str(), m.weight), ("llama3.2:latest", 3));
        let m: WeightedModel = "qwen3:0.6b".parse().unwrap();
        assert_eq!(m.weight, 1);
        assert!("x=0".parse::<WeightedModel>().is_err());
        assert!("=2".parse::<WeightedModel>().is_err());
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let c = LoadTestConfig {
            mode: Mode::Open {
                rate: 0.0,
                arrival: Arrival::Constant,
                max_in_flight: 10,
            },
            ..LoadTestConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("rate"));
        let mut c = LoadTestConfig::default();
        c.workload.endpoint = Endpoint::Embed;
        c.workload.stream = true;
        assert!(c.validate().is_err());
    }
}
