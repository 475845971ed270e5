//! Simulator configuration: server settings and simulated models.
//!
//! Everything a test or the CLI can tune lives here, as plain data with serde support so
//! that the same shapes load from a TOML file (`--config sim.toml`). Durations in the
//! TOML file are humantime strings (`"2s"`, `"150ms"`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::SimError;
use crate::fault::FaultPlan;

/// How long an idle model stays loaded (Ollama's `keep_alive` / `OLLAMA_KEEP_ALIVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Never unload (a negative keep-alive in Ollama).
    Forever,
    /// Unload after this much idle time; zero unloads as soon as the model is idle.
    For(Duration),
}

impl KeepAlive {
    /// Parses Ollama's `OLLAMA_KEEP_ALIVE` syntax: a Go duration (`"5m"`, `"-1m"`, `"0"`)
    /// or an integer number of seconds (`"300"`, `"-1"`).
    pub fn parse_env(text: &str) -> Result<Self, SimError> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<i64>() {
            return Ok(if secs < 0 {
                KeepAlive::Forever
            } else {
                KeepAlive::For(Duration::from_secs(secs.unsigned_abs()))
            });
        }
        crate::wire::parse_go_duration(text)
            .map(KeepAlive::from_signed_nanos)
            .map_err(|message| SimError::Config(format!("keep-alive {text:?}: {message}")))
    }

    /// Maps a signed nanosecond count (Go `time.Duration`) to a keep-alive.
    pub(crate) fn from_signed_nanos(nanos: i128) -> Self {
        if nanos < 0 {
            KeepAlive::Forever
        } else {
            KeepAlive::For(Duration::from_nanos(
                u64::try_from(nanos).unwrap_or(u64::MAX),
            ))
        }
    }
}

/// What a simulated model can do, as `/api/show` reports it in `capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Text generation (`/api/generate`, `/api/chat`).
    Completion,
    /// Tool calling in chat.
    Tools,
    /// Fill-in-the-middle (`suffix`).
    Insert,
    /// Image inputs.
    Vision,
    /// A separate `thinking` text.
    Thinking,
    /// Embedding vectors.
    Embedding,
}

impl Capability {
    /// The wire name of the capability.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Completion => "completion",
            Capability::Tools => "tools",
            Capability::Insert => "insert",
            Capability::Vision => "vision",
            Capability::Thinking => "thinking",
            Capability::Embedding => "embedding",
        }
    }
}

/// One simulated model: what `/api/tags` and `/api/show` report and how fast it "runs".
///
/// All delays are simulated time: the server divides nothing and multiplies them by
/// [`SimConfig::time_scale`] before sleeping.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Model name; a missing tag means `:latest` (`llama3.2` is `llama3.2:latest`).
    pub name: String,
    /// Manifest digest as bare hex (what `/api/tags` shows); empty derives one from the name.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Model family (`llama`, `bert`, ...).
    pub family: String,
    /// Human parameter size (`3.2B`).
    pub parameter_size: String,
    /// Quantization level (`Q4_K_M`).
    pub quantization: String,
    /// Time a cold load takes.
    pub load_time: Duration,
    /// Prompt evaluation speed in tokens per second; `f64::INFINITY` (or 0 in TOML) is instant.
    pub prompt_tokens_per_sec: f64,
    /// Generation speed in tokens per second; `f64::INFINITY` (or 0 in TOML) is instant.
    pub tokens_per_sec: f64,
    /// Relative jitter of each token delay, 0.0 to 1.0 (0.1 = plus or minus 10 %).
    pub jitter: f64,
    /// Number of tokens an answer has when nothing caps it.
    pub output_tokens: u32,
    /// Tokens of `thinking` text before the answer, for models with the `thinking`
    /// capability when the request does not turn thinking off.
    pub thinking_tokens: u32,
    /// Context window in tokens; prompt plus output beyond it ends with `done_reason:"length"`.
    pub context_length: u32,
    /// `Some(dim)` makes an embedding-only model with vectors of this size.
    pub embedding_dim: Option<usize>,
    /// Capabilities; empty means the natural default (`completion` or `embedding`).
    pub capabilities: Vec<Capability>,
}

impl ModelSpec {
    /// A generation model with realistic but quick default timing: 1.5 s cold load,
    /// 2000 prompt tokens/s, 80 tokens/s, 10 % jitter, 32-token answers.
    pub fn chat(name: &str) -> Self {
        ModelSpec {
            name: name.to_owned(),
            digest: String::new(),
            size: 2_019_393_189,
            family: "llama".to_owned(),
            parameter_size: "3.2B".to_owned(),
            quantization: "Q4_K_M".to_owned(),
            load_time: Duration::from_millis(1500),
            prompt_tokens_per_sec: 2000.0,
            tokens_per_sec: 80.0,
            jitter: 0.1,
            output_tokens: 32,
            thinking_tokens: 16,
            context_length: 4096,
            embedding_dim: None,
            capabilities: vec![Capability::Completion, Capability::Tools],
        }
    }

    /// An embedding-only model producing vectors of `dim` floats.
    pub fn embedding(name: &str, dim: usize) -> Self {
        ModelSpec {
            name: name.to_owned(),
            digest: String::new(),
            size: 45_960_996,
            family: "bert".to_owned(),
            parameter_size: "23M".to_owned(),
            quantization: "F16".to_owned(),
            load_time: Duration::from_millis(300),
            prompt_tokens_per_sec: 20_000.0,
            tokens_per_sec: f64::INFINITY,
            jitter: 0.0,
            output_tokens: 0,
            thinking_tokens: 0,
            context_length: 512,
            embedding_dim: Some(dim),
            capabilities: vec![Capability::Embedding],
        }
    }

    /// A generation model with no load time and infinite speed, for benchmarks.
    pub fn instant(name: &str) -> Self {
        ModelSpec {
            load_time: Duration::ZERO,
            prompt_tokens_per_sec: f64::INFINITY,
            tokens_per_sec: f64::INFINITY,
            jitter: 0.0,
            output_tokens: 8,
            ..ModelSpec::chat(name)
        }
    }

    /// Parses the `--model` grammar: a name, then optional comma-separated `key=value`
    /// pairs with the TOML `[[models]]` keys, e.g.
    /// `llama3.2,load_time=2s,tokens_per_sec=40` or `all-minilm,kind=embedding,embedding_dim=384`.
    /// `kind` is `chat` (default), `embedding` or `instant`; `capabilities` are joined by
    /// `+` (`completion+tools`); a speed of 0 means instant.
    pub fn parse(spec: &str) -> Result<Self, SimError> {
        let mut parts = spec.split(',');
        let name = parts.next().unwrap_or("").trim();
        let mut table = toml::Table::new();
        table.insert("name".into(), toml::Value::String(name.to_owned()));
        for pair in parts {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                SimError::Config(format!("model {spec:?}: {pair:?} is not key=value"))
            })?;
            let (key, value) = (key.trim(), value.trim());
            let value = match key {
                "capabilities" => toml::Value::Array(
                    value
                        .split('+')
                        .map(|c| toml::Value::String(c.trim().to_owned()))
                        .collect(),
                ),
                "size" | "output_tokens" | "thinking_tokens" | "context_length"
                | "embedding_dim" => toml::Value::Integer(value.parse().map_err(|_| {
                    SimError::Config(format!("model {spec:?}: {key} must be an integer"))
                })?),
                "prompt_tokens_per_sec" | "tokens_per_sec" | "jitter" => {
                    toml::Value::Float(value.parse().map_err(|_| {
                        SimError::Config(format!("model {spec:?}: {key} must be a number"))
                    })?)
                }
                _ => toml::Value::String(value.to_owned()),
            };
            table.insert(key.to_owned(), value);
        }
        let file: FileModel =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    SimError::Config(format!("model {spec:?}: {}", e.message()))
                })?;
        let model = file.into_spec();
        model.validate()?;
        Ok(model)
    }

    /// True when the model is embedding-only.
    pub fn is_embedding(&self) -> bool {
        self.embedding_dim.is_some()
    }

    /// The effective capability list (the default when none is configured).
    pub fn effective_capabilities(&self) -> Vec<Capability> {
        if !self.capabilities.is_empty() {
            return self.capabilities.clone();
        }
        if self.is_embedding() {
            vec![Capability::Embedding]
        } else {
            vec![Capability::Completion]
        }
    }

    /// Whether the model has `cap`.
    pub fn has(&self, cap: Capability) -> bool {
        if self.capabilities.is_empty() {
            return match cap {
                Capability::Embedding => self.is_embedding(),
                Capability::Completion => !self.is_embedding(),
                _ => false,
            };
        }
        self.capabilities.contains(&cap)
    }

    /// Checks the spec for values the simulator cannot honour.
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        let bad = |what: &str| Err(SimError::Config(format!("model {:?}: {what}", self.name)));
        if self.name.trim().is_empty() {
            return bad("name is empty");
        }
        if !self.digest.is_empty() && !self.digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("digest must be bare hex (no sha256: prefix)");
        }
        if self.prompt_tokens_per_sec.is_nan() || self.prompt_tokens_per_sec < 0.0 {
            return bad("prompt_tokens_per_sec must be >= 0");
        }
        if self.tokens_per_sec.is_nan() || self.tokens_per_sec < 0.0 {
            return bad("tokens_per_sec must be >= 0");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return bad("jitter must be between 0 and 1");
        }
        if self.context_length == 0 {
            return bad("context_length must be > 0");
        }
        if self.embedding_dim == Some(0) {
            return bad("embedding_dim must be > 0");
        }
        Ok(())
    }
}

/// The whole simulator configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on; the library default is `127.0.0.1:0` (an ephemeral port).
    pub listen: SocketAddr,
    /// Models present at start (what `/api/tags` lists and `/api/pull` can restore).
    pub models: Vec<ModelSpec>,
    /// Parallel slots per loaded generation model (`OLLAMA_NUM_PARALLEL`, default 1).
    /// Embedding models always get one slot, as in Ollama.
    pub num_parallel: usize,
    /// Capacity of the scheduler queue of requests that need a load (`OLLAMA_MAX_QUEUE`).
    pub max_queue: usize,
    /// Models resident at once (`OLLAMA_MAX_LOADED_MODELS`, default 3).
    pub max_loaded_models: usize,
    /// Default keep-alive (`OLLAMA_KEEP_ALIVE`, default 5 minutes).
    pub keep_alive: KeepAlive,
    /// Multiplier on every simulated delay: 0.01 runs simulated seconds in 10 ms.
    pub time_scale: f64,
    /// Seed for generated text, jitter and fault decisions.
    pub seed: u64,
    /// What `/api/version` reports.
    pub version: String,
    /// Faults to inject; change at run time with `SimHandle::set_faults`.
    pub faults: FaultPlan,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            models: vec![
                ModelSpec::chat("llama3.2:latest"),
                ModelSpec::embedding("all-minilm:latest", 384),
            ],
            num_parallel: 1,
            max_queue: 512,
            max_loaded_models: 3,
            keep_alive: KeepAlive::For(Duration::from_secs(300)),
            time_scale: 1.0,
            seed: 0,
            version: "0.12.3".to_owned(),
            faults: FaultPlan::default(),
        }
    }
}

impl SimConfig {
    /// One instant model `llama3.2:latest` and nothing else: for benchmarks.
    pub fn instant() -> Self {
        SimConfig {
            models: vec![ModelSpec::instant("llama3.2:latest")],
            keep_alive: KeepAlive::Forever,
            ..SimConfig::default()
        }
    }

    /// Reads a TOML file and applies it on top of `self` (see [`SimConfig::apply_toml`]).
    pub fn apply_toml_file(&mut self, path: &Path) -> Result<(), SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Config(format!("reading {}: {e}", path.display())))?;
        self.apply_toml(&text)
            .map_err(|e| SimError::Config(format!("{}: {e}", path.display())))
    }

    /// Applies a TOML document: top-level server keys override, and a non-empty
    /// `[[models]]` list replaces the model list. Example:
    ///
    /// ```toml
    /// num_parallel = 2
    /// keep_alive = "10m"
    /// [[models]]
    /// name = "llama3.2"
    /// load_time = "2s"
    /// tokens_per_sec = 40
    /// [[faults.rules]]
    /// kind = "reset"
    /// after = 3
    /// rate = 0.1
    /// ```
    pub fn apply_toml(&mut self, text: &str) -> Result<(), SimError> {
        let file: FileConfig =
            toml::from_str(text).map_err(|e| SimError::Config(e.message().to_owned()))?;
        if let Some(listen) = file.listen {
            self.listen = listen
                .parse()
                .map_err(|e| SimError::Config(format!("listen {listen:?}: {e}")))?;
        }
        if !file.models.is_empty() {
            self.models = file.models.into_iter().map(FileModel::into_spec).collect();
        }
        if let Some(v) = file.num_parallel {
            self.num_parallel = v;
        }
        if let Some(v) = file.max_queue {
            self.max_queue = v;
        }
        if let Some(v) = file.max_loaded_models {
            self.max_loaded_models = v;
        }
        if let Some(v) = file.keep_alive {
            self.keep_alive = KeepAlive::parse_env(&v)?;
        }
        if let Some(v) = file.time_scale {
            self.time_scale = v;
        }
        if let Some(v) = file.seed {
            self.seed = v;
        }
        if let Some(v) = file.version {
            self.version = v;
        }
        if let Some(plan) = file.faults {
            self.faults = plan;
        }
        Ok(())
    }

    /// Checks the configuration before the server starts.
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if self.num_parallel == 0 {
            return Err(SimError::Config("num_parallel must be >= 1".into()));
        }
        if self.max_loaded_models == 0 {
            return Err(SimError::Config("max_loaded_models must be >= 1".into()));
        }
        if !self.time_scale.is_finite() || self.time_scale < 0.0 {
            return Err(SimError::Config(
                "time_scale must be a finite number >= 0".into(),
            ));
        }
        for model in &self.models {
            model.validate()?;
        }
        self.faults.validate()
    }
}

/// The TOML file shape: every key optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    #[serde(default)]
    models: Vec<FileModel>,
    num_parallel: Option<usize>,
    max_queue: Option<usize>,
    max_loaded_models: Option<usize>,
    keep_alive: Option<String>,
    time_scale: Option<f64>,
    seed: Option<u64>,
    version: Option<String>,
    faults: Option<FaultPlan>,
}

/// A `[[models]]` entry: `kind = "chat" | "embedding" | "instant"` picks the defaults
/// that the other keys then override.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    name: String,
    #[serde(default)]
    kind: Option<String>,
    digest: Option<String>,
    size: Option<u64>,
    family: Option<String>,
    parameter_size: Option<String>,
    quantization: Option<String>,
    #[serde(default, with = "humantime_serde_compat::option")]
    load_time: Option<Duration>,
    prompt_tokens_per_sec: Option<f64>,
    tokens_per_sec: Option<f64>,
    jitter: Option<f64>,
    output_tokens: Option<u32>,
    thinking_tokens: Option<u32>,
    context_length: Option<u32>,
    embedding_dim: Option<usize>,
    capabilities: Option<Vec<Capability>>,
}

impl FileModel {
    fn into_spec(self) -> ModelSpec {
        let mut spec = match (self.kind.as_deref(), self.embedding_dim) {
            (Some("embedding"), dim) | (None, dim @ Some(_)) => {
                ModelSpec::embedding(&self.name, dim.unwrap_or(384))
            }
            (Some("instant"), _) => ModelSpec::instant(&self.name),
            _ => ModelSpec::chat(&self.name),
        };
        // A speed of 0 in a file means "instant", since TOML has no infinity literal
        // that everyone knows about.
        let speed = |v: f64| if v == 0.0 { f64::INFINITY } else { v };
        if let Some(v) = self.digest {
            spec.digest = v;
        }
        if let Some(v) = self.size {
            spec.size = v;
        }
        if let Some(v) = self.family {
            spec.family = v;
        }
        if let Some(v) = self.parameter_size {
            spec.parameter_size = v;
        }
        if let Some(v) = self.quantization {
            spec.quantization = v;
        }
        if let Some(v) = self.load_time {
            spec.load_time = v;
        }
        if let Some(v) = self.prompt_tokens_per_sec {
            spec.prompt_tokens_per_sec = speed(v);
        }
        if let Some(v) = self.tokens_per_sec {
            spec.tokens_per_sec = speed(v);
        }
        if let Some(v) = self.jitter {
            spec.jitter = v;
        }
        if let Some(v) = self.output_tokens {
            spec.output_tokens = v;
        }
        if let Some(v) = self.thinking_tokens {
            spec.thinking_tokens = v;
        }
        if let Some(v) = self.context_length {
            spec.context_length = v;
        }
        if let Some(v) = self.embedding_dim {
            spec.embedding_dim = Some(v);
        }
        if let Some(v) = self.capabilities {
            spec.capabilities = v;
        }
        spec
    }
}

/// Serde glue for humantime duration strings (`"1.5s"`, `"200ms"`).
pub(crate) mod humantime_serde_compat {
    pub(crate) mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer};

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_and_replaces_models() {
        let mut config = SimConfig::default();
        config
            .apply_toml(
                r#"
                num_parallel = 4
                keep_alive = "-1m"
                time_scale = 0.5
                [[models]]
                name = "qwen"
                load_time = "2s"
                tokens_per_sec = 0
                capabilities = ["completion", "thinking"]
                [[models]]
                name = "nomic"
                embedding_dim = 768
                [faults]
                seed = 9
                [[faults.rules]]
                kind = "stall"
                for = "1s"
                after = 2
                every = 3
                "#,
            )
            .expect("valid file");
        assert_eq!(config.num_parallel, 4);
        assert_eq!(config.keep_alive, KeepAlive::Forever);
        assert_eq!(config.models.len(), 2);
        assert_eq!(config.models[0].load_time, Duration::from_secs(2));
        assert!(config.models[0].tokens_per_sec.is_infinite());
        assert!(config.models[0].has(Capability::Thinking));
        assert_eq!(config.models[1].embedding_dim, Some(768));
        assert_eq!(config.faults.rules.len(), 1);
        assert!(config.validate().is_ok());

        let err = SimConfig::default()
            .apply_toml("colour = 1")
            .expect_err("unknown key");
        assert!(err.to_string().contains("colour"), "{err}");
        let err = SimConfig::default()
            .apply_toml("[[faults.rules]]\nkind = \"nope\"")
            .expect_err("bad fault");
        assert!(err.to_string().contains("unknown kind"), "{err}");
    }

    #[test]
    fn model_flag_grammar() {
        let m = ModelSpec::parse(
            "llama3.2,load_time=250ms,tokens_per_sec=40,capabilities=completion+tools",
        )
        .expect("valid");
        assert_eq!(m.load_time, Duration::from_millis(250));
        assert!((m.tokens_per_sec - 40.0).abs() < f64::EPSILON);
        assert!(m.has(Capability::Tools));
        let e = ModelSpec::parse("all-minilm,kind=embedding,embedding_dim=16").expect("valid");
        assert_eq!(e.embedding_dim, Some(16));
        assert!(ModelSpec::parse("x,jitter=2").is_err());
        assert!(ModelSpec::parse("x,digest=sha256:ab").is_err());
        assert!(ModelSpec::parse("x,speed").is_err());
    }

    #[test]
    fn keep_alive_env_syntax() {
        assert_eq!(
            KeepAlive::parse_env("300").ok(),
            Some(KeepAlive::For(Duration::from_secs(300)))
        );
        assert_eq!(KeepAlive::parse_env("-1").ok(), Some(KeepAlive::Forever));
        assert_eq!(
            KeepAlive::parse_env("5m").ok(),
            Some(KeepAlive::For(Duration::from_secs(300)))
        );
        assert!(KeepAlive::parse_env("soon").is_err());
    }
}
