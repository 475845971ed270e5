//! A fixture for `cargo xtask prom-e2e`: traffic through `ollama-telemetry`'s
//! `InstrumentedClient` against an in-process `ollama-sim`, with the embedded Prometheus
//! exporter serving the `ollama_client_*` metrics, so a real Prometheus can scrape them.
//!
//! The sim answers some `/api/generate` requests with 503 (server busy) and some with
//! 500, so the error, status and busy series carry data as well as the latency, token,
//! load and pool series. It runs until `--duration` passes or it is killed.
//!
//! Usage: `exporter_load --exporter 127.0.0.1:PORT [--duration SECS]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ollama_client::{Client, EmbedRequest, GenerateRequest};
use ollama_sim::{FaultKind, FaultPlan, FaultRule, Sim, SimConfig, Trigger};
use ollama_telemetry::{EventsConfig, InstrumentedClient, TelemetryConfig, install_exporter};

/// Concurrent request loops.
const WORKERS: usize = 4;

#[tokio::main]
async fn main() -> Result<()> {
    let (exporter_addr, duration) = parse_args()?;
    let exporter = install_exporter(exporter_addr).context("starting the exporter")?;

    let config = SimConfig {
        // Simulated delays 20x faster: a cold load takes a fraction of a second.
        time_scale: 0.05,
        // Every 11th /api/generate is refused as busy (503), every 7th fails with 500.
        faults: FaultPlan::none()
            .with(
                FaultRule::new(FaultKind::Busy)
                    .endpoint("/api/generate")
                    .trigger(Trigger::Every(11)),
            )
            .with(
                FaultRule::new(FaultKind::Status {
                    status: 500,
                    message: None,
                })
                .endpoint("/api/generate")
                .trigger(Trigger::Every(7)),
            ),
        ..SimConfig::default()
    };
    let sim = Sim::start(config).await.context("starting ollama-sim")?;

    let client = Client::builder()
        .base_url(sim.base_url())
        .max_connections(WORKERS)
        .max_keepalive_connections(WORKERS)
        .build()
        .context("building the client")?;
    let telemetry = TelemetryConfig {
        events: EventsConfig::Off,
        ..TelemetryConfig::default()
    };
    let client = InstrumentedClient::new(client, telemetry).context("instrumenting the client")?;
    eprintln!(
        "exporter_load: exporter {} scraping traffic to {} for up to {duration:?}",
        exporter.url(),
        sim.base_url()
    );

    let deadline = Instant::now() + duration;
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let client = client.clone();
        workers.push(tokio::spawn(async move {
            let mut round = 0_u64;
            while Instant::now() < deadline {
                round += 1;
                // Errors are the point of some rounds: the telemetry records them.
                if (round + worker as u64).is_multiple_of(5) {
                    let _ = client
                        .embed(EmbedRequest::new(
                            "all-minilm:latest",
                            "why is the sky blue",
                        ))
                        .await;
                } else if round.is_multiple_of(2) {
                    let _ = client
                        .generate(GenerateRequest::new("llama3.2:latest", "hello"))
                        .await;
                } else if let Ok(mut stream) = client
                    .generate_stream(GenerateRequest::new("llama3.2:latest", "tell me a story"))
                    .await
                {
                    while let Some(chunk) = stream.next().await {
                        if chunk.is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await.context("a worker panicked")?;
    }
    sim.shutdown().await;
    Ok(())
}

fn parse_args() -> Result<(SocketAddr, Duration)> {
    let mut exporter = None;
    let mut duration = Duration::from_secs(120);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exporter" => {
                let value = args.next().context("--exporter needs an address")?;
                exporter = Some(
                    value
                        .parse()
                        .with_context(|| format!("--exporter {value}: not an address"))?,
                );
            }
            "--duration" => {
                let value = args.next().context("--duration needs seconds")?;
                let secs: u64 = value
                    .parse()
                    .with_context(|| format!("--duration {value}: not whole seconds"))?;
                duration = Duration::from_secs(secs);
            }
            other => bail!(
                "unknown argument `{other}`; usage: exporter_load --exporter ADDR [--duration SECS]"
            ),
        }
    }
    let exporter: SocketAddr = exporter.context("--exporter ADDR is required")?;
    if !exporter.ip().is_loopback() {
        bail!("--exporter {exporter}: loopback addresses only");
    }
    Ok((exporter, duration))
}
