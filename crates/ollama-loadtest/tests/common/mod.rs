//! Helpers shared by the integration tests: a simulator with known timing and a load-test
//! configuration aimed at it.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use ollama_loadtest::{AbortLimits, LoadTestConfig, WeightedModel};
use ollama_sim::{FaultPlan, ModelSpec, Sim, SimConfig, SimHandle};

/// A generation model with fixed timing: no load time, instant prompt evaluation, no
/// jitter, `tokens_per_sec` simulated tokens per second and `output_tokens` per answer.
pub fn model(name: &str, tokens_per_sec: f64, output_tokens: u32) -> ModelSpec {
    ModelSpec {
        load_time: Duration::ZERO,
        prompt_tokens_per_sec: f64::INFINITY,
        tokens_per_sec,
        jitter: 0.0,
        output_tokens,
        ..ModelSpec::chat(name)
    }
}

/// Starts a simulator on an ephemeral loopback port.
pub async fn sim(
    models: Vec<ModelSpec>,
    num_parallel: usize,
    time_scale: f64,
    faults: FaultPlan,
) -> SimHandle {
    let config = SimConfig {
        models,
        num_parallel,
        time_scale,
        faults,
        ..SimConfig::default()
    };
    Sim::start(config).await.expect("the simulator starts")
}

/// A closed-loop test of `model` against `sim`: no warm-up, no safety switch, no events.
pub fn config(sim: &SimHandle, model: &str) -> LoadTestConfig {
    let mut c = LoadTestConfig::default();
    c.client.base_url = Some(sim.base_url());
    c.workload.models = vec![WeightedModel {
        name: model.to_owned(),
        weight: 1,
    }];
    c.warmup = 0;
    c.abort = AbortLimits::off();
    c
}
