//! `ollama-sim`: serve the simulated Ollama API until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
#[cfg(test)]
use clap::CommandFactory as _;
use clap::Parser;
use ollama_sim::{FaultPlan, FaultRule, KeepAlive, ModelSpec, Sim, SimConfig};

/// A faithful, seeded simulator of the Ollama HTTP API (native /api and OpenAI /v1).
///
/// Precedence: built-in defaults, then --instant, then --config FILE, then flags.
/// With no --model and no config models it serves "llama3.2:latest" (chat) and
/// "all-minilm:latest" (embedding, 384 dimensions).
#[derive(Parser, Debug)]
#[command(name = "ollama-sim", version, after_long_help = after_help())]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "OLLAMA_SIM_LISTEN", default_value = "127.0.0.1:11434")]
    listen: SocketAddr,

    /// TOML file with server settings, [[models]] and [faults] (see below).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// A simulated model (repeatable; replaces the default list):
    /// NAME[,key=value...] with keys kind (chat|embedding|instant), digest (bare hex),
    /// size, family, parameter_size, quantization, load_time (e.g. 2s),
    /// prompt_tokens_per_sec, tokens_per_sec (0 = instant), jitter (0..1),
    /// output_tokens, thinking_tokens, context_length, embedding_dim,
    /// capabilities (completion+tools+thinking+...).
    #[arg(long = "model", value_name = "SPEC")]
    models: Vec<String>,

    /// Start from instant models (no load time, infinite speed, keep-alive forever): for
    /// benchmarking clients and load generators.
    #[arg(long)]
    instant: bool,

    /// Parallel slots per loaded model (OLLAMA_NUM_PARALLEL).
    #[arg(long, env = "OLLAMA_NUM_PARALLEL")]
    num_parallel: Option<usize>,

    /// Capacity of the queue of requests waiting for a model load; beyond it, 503
    /// (OLLAMA_MAX_QUEUE).
    #[arg(long, env = "OLLAMA_MAX_QUEUE")]
    max_queue: Option<usize>,

    /// Models resident at once; more evicts the idle one with the shortest keep-alive
    /// (OLLAMA_MAX_LOADED_MODELS).
    #[arg(long, env = "OLLAMA_MAX_LOADED_MODELS")]
    max_loaded_models: Option<usize>,

    /// Default keep-alive: a Go duration (5m, -1m, 0) or seconds (OLLAMA_KEEP_ALIVE).
    #[arg(long, env = "OLLAMA_KEEP_ALIVE", value_parser = parse_keep_alive, allow_hyphen_values = true)]
    keep_alive: Option<KeepAlive>,

    /// Multiplier on every simulated delay (load, tokens, keep-alive, fault stalls):
    /// 0.01 runs simulated seconds in milliseconds, 0 makes everything instant.
    #[arg(long)]
    time_scale: Option<f64>,

    /// Seed for generated text, jitter and fault decisions.
    #[arg(long)]
    seed: Option<u64>,

    /// Version string /api/version reports.
    #[arg(long = "report-version", value_name = "VERSION")]
    report_version: Option<String>,

    /// Inject a fault (repeatable; rules are checked in order): comma-separated
    /// key=value pairs, see FAULTS below.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<String>,
}

const AFTER_HELP: &str = "\
FAULTS (--fault SPEC, or [[faults.rules]] in the TOML file with the same keys):
  kind=status,status=CODE[,message=TEXT]   answer CODE with an Ollama-shaped error body
  kind=busy                                503 \"server busy, please try again.  maximum pending requests exceeded\"
  kind=reset[,after=K]                     TCP reset after K stream chunks (non-streamed: no answer)
  kind=stall,for=DURATION[,after=K]        no bytes for DURATION after K chunks (non-streamed: late answer)
  kind=malformed[,after=K]                 a line that is not JSON after K chunks (non-streamed: cut body)
  kind=error[,after=K][,message=TEXT]      an {\"error\":...} line after K chunks, then the stream ends
  kind=slow-head,for=DURATION              hold the response head back for DURATION
 Common keys: endpoint=PATH (a route path such as /api/generate, /v1/chat/completions,
 /v1/models/:model; default: all), and one trigger: rate=P (0..1, seeded),
 nth=N (only the Nth matching request) or every=N. after defaults to 1; message must be
 the last key. DURATION is humantime (2s, 150ms) and is scaled by --time-scale.
 Endpoints that answer in one piece take reset/stall/malformed/error on the whole answer.
 Example: --fault kind=reset,after=3,rate=0.1,endpoint=/api/generate

CONFIG FILE (--config sim.toml; every key optional; [[models]] replaces the model list):
";

/// A complete, valid config file; shown in `--help` and parsed by a test.
const CONFIG_EXAMPLE: &str = r#"listen = "127.0.0.1:11434"
num_parallel = 2
max_queue = 512
max_loaded_models = 3
keep_alive = "5m"
time_scale = 1.0
seed = 0
version = "0.12.3"

[[models]]            # keys as in --model
name = "llama3.2"
load_time = "2s"
tokens_per_sec = 40
output_tokens = 64

[[models]]
name = "all-minilm"
kind = "embedding"
embedding_dim = 384

[faults]
seed = 1
[[faults.rules]]      # keys as in --fault
kind = "stall"
for = "2s"
after = 3
rate = 0.1
"#;

const EXAMPLE: &str = "
EXAMPLE:
  ollama-sim &
  curl -N http://127.0.0.1:11434/api/generate -d '{\"model\":\"llama3.2\",\"prompt\":\"hi\"}'";

fn after_help() -> String {
    let mut indented = String::with_capacity(CONFIG_EXAMPLE.len() * 2);
    for line in CONFIG_EXAMPLE.lines() {
        indented.push_str("  ");
        indented.push_str(line);
        indented.push('\n');
    }
    format!("{AFTER_HELP}{indented}{EXAMPLE}")
}

fn parse_keep_alive(text: &str) -> Result<KeepAlive, String> {
    KeepAlive::parse_env(text).map_err(|e| e.to_string())
}

fn build_config(args: &Args) -> anyhow::Result<SimConfig> {
    let mut config = if args.instant {
        SimConfig::instant()
    } else {
        SimConfig::default()
    };
    config.listen = args.listen;
    if let Some(path) = &args.config {
        config.apply_toml_file(path)?;
    }
    if !args.models.is_empty() {
        config.models = args
            .models
            .iter()
            .map(|spec| ModelSpec::parse(spec))
            .collect::<Result<_, _>>()?;
    }
    if let Some(v) = args.num_parallel {
        config.num_parallel = v;
    }
    if let Some(v) = args.max_queue {
        config.max_queue = v;
    }
    if let Some(v) = args.max_loaded_models {
        config.max_loaded_models = v;
    }
    if let Some(v) = args.keep_alive {
        config.keep_alive = v;
    }
    if let Some(v) = args.time_scale {
        config.time_scale = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = &args.report_version {
        config.version.clone_from(v);
    }
    if !args.faults.is_empty() {
        let mut plan = FaultPlan {
            seed: config.seed,
            ..FaultPlan::default()
        };
        for spec in &args.faults {
            plan = plan.with(FaultRule::parse(spec)?);
        }
        config.faults = plan;
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = build_config(&args)?;
    let names: Vec<String> = config.models.iter().map(|m| m.name.clone()).collect();
    let sim = Sim::start(config).await.context("starting the simulator")?;
    eprintln!(
        "ollama-sim listening on {} with models: {}",
        sim.base_url(),
        names.join(", ")
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    eprintln!("ollama-sim: shutting down");
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_example_config_is_valid() {
        let mut config = SimConfig::default();
        config
            .apply_toml(CONFIG_EXAMPLE)
            .expect("the --help example parses");
        assert_eq!(config.models.len(), 2);
        assert_eq!(config.faults.rules.len(), 1);
    }

    #[test]
    fn flags_override_defaults() {
        let args = Args::parse_from([
            "ollama-sim",
            "--instant",
            "--model",
            "a,tokens_per_sec=5",
            "--num-parallel",
            "3",
            "--keep-alive",
            "-1",
            "--fault",
            "kind=busy,nth=2",
        ]);
        let config = build_config(&args).expect("valid flags");
        assert_eq!(config.models[0].name, "a");
        assert_eq!(config.num_parallel, 3);
        assert_eq!(config.keep_alive, KeepAlive::Forever);
        assert_eq!(config.faults.rules.len(), 1);
        Args::command().debug_assert();
    }
}
