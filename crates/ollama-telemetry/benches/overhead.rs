//! Overhead of telemetry: `InstrumentedClient` against the bare `Client`, same sim, same
//! run. The instrumented side runs as in production: the Prometheus exporter is the global
//! recorder and every request writes a JSONL event to a file. At the end the bench prints
//! the throughput ratio of each pair (goal: overhead under 5%).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use ollama_client::{Client, GenerateRequest};
use ollama_sim::{Sim, SimConfig};
use ollama_telemetry::{EventsConfig, InstrumentedClient, TelemetryConfig, install_exporter};
use tokio::runtime::Runtime;

const MODEL: &str = "llama3.2:latest";

/// Something that can send one generate request.
trait Generate: Clone + Send + Sync + 'static {
    fn send(&self) -> impl std::future::Future<Output = ()> + Send;
}

impl Generate for Client {
    async fn send(&self) {
        black_box(
            self.generate(GenerateRequest::new(MODEL, "hi"))
                .await
                .unwrap(),
        );
    }
}

impl Generate for InstrumentedClient {
    async fn send(&self) {
        black_box(
            self.generate(GenerateRequest::new(MODEL, "hi"))
                .await
                .unwrap(),
        );
    }
}

/// Sends `iters` requests from `concurrency` tasks and returns the elapsed time.
fn run<C: Generate>(runtime: &Runtime, client: &C, iters: u64, concurrency: u64) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|worker| {
                let client = client.clone();
                let count = iters / concurrency + u64::from(worker < iters % concurrency);
                tokio::spawn(async move {
                    for _ in 0..count {
                        client.send().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        started.elapsed()
    })
}

/// Mean time per request of each measured function, for the closing ratio.
static RESULTS: Mutex<Vec<(String, Duration, u64)>> = Mutex::new(Vec::new());

fn record(name: &str, elapsed: Duration, iters: u64) {
    let mut results = RESULTS.lock().unwrap();
    match results.iter_mut().find(|(n, _, _)| n == name) {
        Some(entry) => {
            entry.1 += elapsed;
            entry.2 += iters;
        }
        None => results.push((name.to_owned(), elapsed, iters)),
    }
}

/// Runs `a` and `b` in 20 alternating rounds of 2,000 requests and returns the median and
/// the middle-half bounds of the per-round time ratio `b / a`.
fn paired_ratio<A: Generate, B: Generate>(
    runtime: &Runtime,
    a: &A,
    b: &B,
    concurrency: u64,
) -> (f64, f64, f64) {
    let mut ratios: Vec<f64> = (0..20)
        .map(|round| {
            let (a_time, b_time) = if round % 2 == 0 {
                let a_time = run(runtime, a, 2_000, concurrency);
                (a_time, run(runtime, b, 2_000, concurrency))
            } else {
                let b_time = run(runtime, b, 2_000, concurrency);
                (run(runtime, a, 2_000, concurrency), b_time)
            };
            b_time.as_secs_f64() / a_time.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    (f64::midpoint(ratios[9], ratios[10]), ratios[5], ratios[14])
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = runtime.block_on(Sim::start(SimConfig::instant())).unwrap();
    let client = || {
        Client::builder()
            .base_url(sim.base_url())
            .max_connections(64)
            .max_keepalive_connections(64)
            .build()
            .unwrap()
    };
    let bare = client();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _exporter = runtime
        .block_on(async { install_exporter(SocketAddr::from(([127, 0, 0, 1], port))) })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let instrumented = InstrumentedClient::new(
        client(),
        TelemetryConfig {
            events: EventsConfig::File(dir.path().join("requests.jsonl")),
            ..TelemetryConfig::default()
        },
    )
    .unwrap();

    // Metrics and spans only, to tell their cost from the event writer's.
    let metrics_only = InstrumentedClient::new(
        client(),
        TelemetryConfig {
            events: EventsConfig::Off,
            ..TelemetryConfig::default()
        },
    )
    .unwrap();

    let mut criterion = Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    for concurrency in [1_u64, 32] {
        let mut group = criterion.benchmark_group(format!("generate/concurrency={concurrency}"));
        group.throughput(Throughput::Elements(1));
        // Alternate bare and instrumented samples would be ideal; criterion measures one
        // function at a time, so each pair runs back to back in the same process instead.
        group.bench_function("bare", |b| {
            b.iter_custom(|iters| {
                let elapsed = run(&runtime, &bare, iters, concurrency);
                record(&format!("{concurrency}/bare"), elapsed, iters);
                elapsed
            });
        });
        group.bench_function("instrumented", |b| {
            b.iter_custom(|iters| {
                let elapsed = run(&runtime, &instrumented, iters, concurrency);
                record(&format!("{concurrency}/instrumented"), elapsed, iters);
                elapsed
            });
        });
        group.bench_function("instrumented_no_events", |b| {
            b.iter_custom(|iters| {
                let elapsed = run(&runtime, &metrics_only, iters, concurrency);
                record(
                    &format!("{concurrency}/instrumented_no_events"),
                    elapsed,
                    iters,
                );
                elapsed
            });
        });
        group.finish();
    }
    criterion.final_summary();

    let results = RESULTS.lock().unwrap();
    let per_request = |name: &str| {
        results
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, elapsed, iters)| elapsed.as_secs_f64() / *iters as f64)
    };
    for concurrency in [1, 32] {
        for variant in ["instrumented", "instrumented_no_events"] {
            if let (Some(bare), Some(inst)) = (
                per_request(&format!("{concurrency}/bare")),
                per_request(&format!("{concurrency}/{variant}")),
            ) {
                println!(
                    "overhead at concurrency {concurrency}: bare {:.1} us/request, {variant} \
                     {:.1} us/request, throughput ratio {variant}/bare {:.3} ({:+.1}% time)",
                    bare * 1e6,
                    inst * 1e6,
                    bare / inst,
                    (inst / bare - 1.0) * 100.0
                );
            }
        }
    }
    // Criterion measures one function after the other, so load from elsewhere on the machine
    // can favour either side. Alternating short blocks and taking the median of the paired
    // ratios cancels most of that.
    for concurrency in [1_u64, 32] {
        let (median, low, high) = paired_ratio(&runtime, &bare, &instrumented, concurrency);
        println!(
            "interleaved at concurrency {concurrency}: median time ratio instrumented/bare \
             {median:.3} ({:+.1}% time; 20 paired rounds of 2,000 requests, middle half \
             {low:.3}..{high:.3})",
            (median - 1.0) * 100.0,
        );
        let (median, low, high) = paired_ratio(&runtime, &bare, &metrics_only, concurrency);
        println!(
            "interleaved at concurrency {concurrency}: median time ratio \
             instrumented_no_events/bare {median:.3} ({:+.1}% time; middle half \
             {low:.3}..{high:.3})",
            (median - 1.0) * 100.0,
        );
    }
    if let Some(log) = instrumented.event_log() {
        println!("events: {:?}", log.stats());
    }
}
