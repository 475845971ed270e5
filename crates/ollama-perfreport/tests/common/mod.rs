//! Helpers shared by the integration tests: a simulator with a chosen generation speed and a
//! small suite whose latencies are dominated by simulated (sleeping) time, not CPU.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use ollama_perfreport::{RunOptions, Suite, SuiteReport, run_suite};
use ollama_sim::{ModelSpec, Sim, SimConfig, SimHandle};

/// Simulated delays run ten times faster than configured.
pub const TIME_SCALE: f64 = 0.1;

/// A simulator with one chat model `llama3.2:latest` generating `tokens_per_sec` tokens
/// per second (simulated time), prompt evaluation at 500 tokens/s, two parallel slots.
pub async fn sim(tokens_per_sec: f64) -> SimHandle {
    sim_scaled(tokens_per_sec, TIME_SCALE).await
}

/// [`sim`] with another time scale.
pub async fn sim_scaled(tokens_per_sec: f64, time_scale: f64) -> SimHandle {
    let mut model = ModelSpec::chat("llama3.2:latest");
    model.tokens_per_sec = tokens_per_sec;
    model.prompt_tokens_per_sec = 500.0;
    let config = SimConfig {
        models: vec![model],
        num_parallel: 2,
        time_scale,
        seed: 7,
        ..SimConfig::default()
    };
    Sim::start(config).await.unwrap()
}

/// A 2000-byte prompt: 500 prompt tokens for the simulator, so TTFT is mostly prompt
/// evaluation and barely moves when only the generation speed changes.
pub fn long_prompt() -> String {
    "measure the latency of this prompt please. ".repeat(47)[..2000].to_owned()
}

/// A one-scenario suite: streamed chat, 2 workers, 30 requests of 32 output tokens,
/// 3 repetitions.
pub fn suite(name: &str) -> Suite {
    suite_of(name, 30)
}

/// [`suite`] with another request count per repetition.
pub fn suite_of(name: &str, requests: u64) -> Suite {
    let text = format!(
        r#"
name = "{name}"
repetitions = 3
[[scenario]]
name = "chat-stream-c2"
model = "llama3.2:latest"
endpoint = "chat"
prompts = ["{}"]
concurrency = 2
requests = {requests}
warmup = 2
options = {{ num_predict = 32, temperature = 0.0 }}
"#,
        long_prompt(),
    );
    Suite::from_toml(&text).unwrap()
}

/// Runs `suite` against `sim` with repetition seeds starting at `seed`.
pub async fn run(suite: &Suite, sim: &SimHandle, seed: u64) -> SuiteReport {
    let options = RunOptions {
        base_url: Some(sim.base_url()),
        simulated: true,
        seed,
        events_path: None,
        interrupt: None,
    };
    run_suite(suite, &options, &mut ()).await.unwrap()
}
