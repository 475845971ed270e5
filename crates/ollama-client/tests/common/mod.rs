//! Shared setup for the black-box tests: a simulator on an ephemeral loopback port and a
//! client pointed at it.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a different part of this.

use std::future::Future;
use std::time::{Duration, Instant};

use ollama_client::{Client, ClientBuilder, GenerateRequest};
use ollama_sim::{ModelSpec, Sim, SimConfig, SimHandle};

/// The chat model of the default sim config.
pub const MODEL: &str = "llama3.2:latest";
/// The embedding model of the default sim config.
pub const EMBED_MODEL: &str = "all-minilm:latest";

/// A sim with the default models, its simulated delays running 100x faster.
pub async fn fast_sim() -> SimHandle {
    sim(SimConfig {
        time_scale: 0.01,
        ..SimConfig::default()
    })
    .await
}

/// A sim whose model streams `tokens` tokens at `tps` tokens/s (real time), with more
/// slots than any test sends requests, so the server never queues.
pub async fn streaming_sim(tokens: u32, tps: f64) -> SimHandle {
    let model = ModelSpec {
        output_tokens: tokens,
        tokens_per_sec: tps,
        jitter: 0.0,
        ..ModelSpec::instant(MODEL)
    };
    sim(SimConfig {
        models: vec![model],
        num_parallel: 1024,
        ..SimConfig::instant()
    })
    .await
}

/// A sim with `config`.
pub async fn sim(config: SimConfig) -> SimHandle {
    Sim::start(config).await.unwrap()
}

/// A builder for the sim at `sim` with test-friendly retry delays and no verification.
pub fn builder(sim: &SimHandle) -> ClientBuilder {
    Client::builder()
        .base_url(sim.base_url())
        .retry_delay(Duration::from_millis(10))
        .verify_on_init(false)
}

/// A client for `sim` with the default limits.
pub fn client(sim: &SimHandle) -> Client {
    builder(sim).build().unwrap()
}

/// Polls `check` until it holds or `limit` passes; returns whether it held.
pub async fn eventually<F: FnMut() -> bool>(limit: Duration, mut check: F) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `f` and fails the test if it takes longer than `limit` ("nothing hangs").
pub async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|elapsed| panic!("did not finish within {limit:?} ({elapsed})"))
}

/// Sends `n` requests at once from separate tasks, every `stream_every`-th a stream read to
/// its end and the rest plain generates; panics if any of them fails.
pub async fn mixed_burst(client: &Client, n: usize, stream_every: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move {
                if i % stream_every == 0 {
                    let mut s = c.generate_stream(GenerateRequest::new(MODEL, "x")).await?;
                    while let Some(chunk) = s.next().await {
                        chunk?;
                    }
                } else {
                    c.generate(GenerateRequest::new(MODEL, "x")).await?;
                }
                Ok::<(), ollama_client::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}
