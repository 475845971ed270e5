//! Measurements for `cargo xtask bench` that need our crates in-process: the bare
//! hyper-util load loop (the floor a load generator's overhead is measured against), the
//! paired client and telemetry overhead, and stream decoding throughput.
//!
//! xtask depends on none of the workspace crates, so it builds this example and runs it
//! as a child process; every subcommand prints one JSON object on stdout.
//!
//! ```text
//! bench_probe bare --url http://127.0.0.1:PORT --concurrency 64 --requests 100000
//! bench_probe overhead --url http://127.0.0.1:PORT --concurrency 64 --rounds 10 --per-round 4000
//! bench_probe stream --url http://127.0.0.1:PORT --model long:latest --rounds 5
//! ```

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ollama_client::{Client, GenerateRequest, GenerateResponse, StreamDecoder};
use ollama_telemetry::{
    EventsConfig, ExporterHandle, InstrumentedClient, TelemetryConfig, install_exporter,
};
use serde_json::{Value, json};

// The same allocator as the `ollama-loadtest` binary, so that the bare loop, the client
// and the load tester differ only in their own code.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The model every non-streamed request names (the instant sim serves it).
const MODEL: &str = "llama3.2:latest";
/// The prompt `ollama-loadtest` sends by default, so every tool sends the same body.
const PROMPT: &str = "Why is the sky blue? Answer in one sentence.";
/// A typical TCP segment payload: how the network hands a stream to a decoder.
const SEGMENT: usize = 1400;

#[derive(Parser)]
#[command(about = "In-process measurements for `cargo xtask bench` (JSON on stdout)")]
struct Args {
    /// The tokio runtime the probe runs on: `multi` (two worker threads, as a service
    /// sharing one client across threads) or `current` (one thread, as each of the load
    /// tester's lanes).
    #[arg(long, global = true, default_value = "multi")]
    runtime: Runtime,
    #[command(subcommand)]
    probe: Probe,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Runtime {
    Multi,
    Current,
}

#[derive(Subcommand)]
enum Probe {
    /// Closed-loop load from a bare hyper-util client: the floor for a load generator.
    Bare {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 64)]
        concurrency: u64,
        #[arg(long, default_value_t = 100_000)]
        requests: u64,
    },
    /// Paired rounds of bare hyper-util, ollama-client and `InstrumentedClient`.
    Overhead {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 64)]
        concurrency: u64,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        #[arg(long, default_value_t = 4_000)]
        per_round: u64,
        /// Where the instrumented client writes its JSONL events.
        #[arg(long)]
        events: PathBuf,
    },
    /// One variant of `overhead` alone (for instruction counts under callgrind): a warm-up
    /// of 64 requests, then `requests` requests at concurrency 64.
    One {
        #[arg(long)]
        url: String,
        /// bare_hyper_util, ollama_client, instrumented or instrumented_no_events.
        #[arg(long)]
        variant: String,
        #[arg(long, default_value_t = 5_000)]
        requests: u64,
        #[arg(long)]
        events: PathBuf,
    },
    /// Chunks/s of a long NDJSON stream: ollama-client versus a loop that only splits lines.
    Stream {
        #[arg(long)]
        url: String,
        /// A model whose answer is long (the bench starts the sim with one).
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
}

type Bare = HyperClient<HttpConnector, Full<Bytes>>;

fn main() -> Result<()> {
    let args = Args::parse();
    let mut builder = match args.runtime {
        Runtime::Multi => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        Runtime::Current => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let out = runtime.block_on(async {
        match args.probe {
            Probe::Bare {
                url,
                concurrency,
                requests,
            } => bare_probe(&url, concurrency, requests).await,
            Probe::Overhead {
                url,
                concurrency,
                rounds,
                per_round,
                events,
            } => overhead_probe(&url, concurrency, rounds, per_round, events).await,
            Probe::One {
                url,
                variant,
                requests,
                events,
            } => one_probe(&url, &variant, requests, events).await,
            Probe::Stream { url, model, rounds } => stream_probe(&url, &model, rounds).await,
        }
    })?;
    println!("{out}");
    Ok(())
}

/// A bare hyper-util client with as many keep-alive connections as there are workers.
fn bare_client(concurrency: u64) -> Bare {
    HyperClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::try_from(concurrency).unwrap_or(usize::MAX))
        .build_http()
}

/// The JSON body every tool sends: a non-streamed generate with the load tester's prompt.
fn generate_body(model: &str, stream: bool) -> Bytes {
    Bytes::from(json!({"model": model, "prompt": PROMPT, "stream": stream}).to_string())
}

/// One POST of `body` to `uri`; returns the whole response body, failing on a non-2xx.
async fn post(bare: &Bare, uri: &str, body: Bytes) -> Result<Bytes> {
    let req = http::Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let resp = bare.request(req).await?;
    if !resp.status().is_success() {
        bail!("POST {uri}: HTTP {}", resp.status());
    }
    Ok(resp.into_body().collect().await?.to_bytes())
}

/// Runs `f` from `concurrency` tasks until `total` calls have been made; returns the time.
async fn closed_loop<F, Fut>(concurrency: u64, total: u64, f: F) -> Result<Duration>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (f, next) = (f.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    f().await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

async fn bare_probe(url: &str, concurrency: u64, requests: u64) -> Result<Value> {
    let bare = bare_client(concurrency);
    let uri = format!("{url}/api/generate");
    let body = generate_body(MODEL, false);
    // Warm-up: open the connections, as the other tools do before their timed window.
    let send = {
        let (bare, uri, body) = (bare.clone(), uri.clone(), body.clone());
        move || {
            let (bare, uri, body) = (bare.clone(), uri.clone(), body.clone());
            async move { post(&bare, &uri, body).await.map(|b| drop(black_box(b))) }
        }
    };
    closed_loop(concurrency, concurrency, send.clone()).await?;
    let elapsed = closed_loop(concurrency, requests, send).await?;
    Ok(json!({
        "requests": requests,
        "seconds": elapsed.as_secs_f64(),
        "requests_per_second": per_second(requests, elapsed),
    }))
}

/// `count / elapsed` as a rate.
#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Median and quartiles of `values` (sorted in place).
fn spread(values: &mut [f64]) -> Value {
    values.sort_by(f64::total_cmp);
    let at = |q: usize| {
        values
            .get((values.len().saturating_sub(1)) * q / 4)
            .copied()
    };
    json!({"median": at(2), "q1": at(1), "q3": at(3), "n": values.len()})
}

/// The four ways of sending the same request, built as in production: the exporter is the
/// global metrics recorder (without one, the instrumented client's metric calls would be
/// no-ops and its cost would look smaller), events go to a file.
fn variants(
    url: &str,
    concurrency: u64,
    events: PathBuf,
) -> Result<(ExporterHandle, [(&'static str, Sender); 4])> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let exporter = install_exporter(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let build = || {
        Client::builder()
            .base_url(url)
            .max_connections(usize::try_from(concurrency).unwrap_or(usize::MAX))
            .max_keepalive_connections(usize::try_from(concurrency).unwrap_or(usize::MAX))
            .verify_on_init(false)
            .build()
    };
    let instrumented = InstrumentedClient::new(
        build()?,
        TelemetryConfig {
            events: EventsConfig::File(events),
            ..TelemetryConfig::default()
        },
    )?;
    let metrics_only = InstrumentedClient::new(
        build()?,
        TelemetryConfig {
            events: EventsConfig::Off,
            ..TelemetryConfig::default()
        },
    )?;
    Ok((
        exporter,
        [
            (
                "bare_hyper_util",
                Sender::Bare {
                    bare: Box::new(bare_client(concurrency)),
                    uri: format!("{url}/api/generate"),
                    body: generate_body(MODEL, false),
                },
            ),
            ("ollama_client", Sender::Client(build()?)),
            ("instrumented", Sender::Instrumented(instrumented)),
            ("instrumented_no_events", Sender::Instrumented(metrics_only)),
        ],
    ))
}

async fn one_probe(url: &str, variant: &str, requests: u64, events: PathBuf) -> Result<Value> {
    let (_exporter, variants) = variants(url, 64, events)?;
    let Some((_, sender)) = variants.into_iter().find(|(name, _)| *name == variant) else {
        bail!("unknown variant `{variant}`");
    };
    let send = move || {
        let sender = sender.clone();
        async move { sender.send().await }
    };
    closed_loop(64, 64, send.clone()).await?;
    let elapsed = closed_loop(64, requests, send).await?;
    Ok(json!({"variant": variant, "requests": requests,
              "requests_per_second": per_second(requests, elapsed)}))
}

async fn overhead_probe(
    url: &str,
    concurrency: u64,
    rounds: usize,
    per_round: u64,
    events: PathBuf,
) -> Result<Value> {
    let (_exporter, variants) = variants(url, concurrency, events)?;
    let run = |sender: &Sender, n: u64| {
        let sender = sender.clone();
        closed_loop(concurrency, n, move || {
            let sender = sender.clone();
            async move { sender.send().await }
        })
    };
    // Warm-up: connections open, allocator and caches settled, for every variant.
    for (_, sender) in &variants {
        run(sender, concurrency * 20).await?;
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut client_vs_bare = Vec::new();
    let mut instrumented_vs_client = Vec::new();
    let mut no_events_vs_client = Vec::new();
    for round in 0..rounds {
        let mut times = [Duration::ZERO; 4];
        // Rotate the order so that no variant always runs first or last in a round.
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            times[i] = run(&variants[i].1, per_round).await?;
            rates[i].push(per_second(per_round, times[i]));
        }
        let secs = times.map(|t| t.as_secs_f64());
        client_vs_bare.push(secs[1] / secs[0]);
        instrumented_vs_client.push(secs[2] / secs[1]);
        no_events_vs_client.push(secs[3] / secs[1]);
    }
    let mut by_variant = serde_json::Map::new();
    for ((name, _), mut r) in variants.iter().zip(rates) {
        by_variant.insert((*name).to_owned(), spread(&mut r));
    }
    Ok(json!({
        "concurrency": concurrency,
        "rounds": rounds,
        "per_round": per_round,
        "requests_per_second": by_variant,
        "time_ratio": {
            "ollama_client/bare_hyper_util": spread(&mut client_vs_bare),
            "instrumented/ollama_client": spread(&mut instrumented_vs_client),
            "instrumented_no_events/ollama_client": spread(&mut no_events_vs_client),
        },
    }))
}

/// One way of sending the bench's non-streamed generate request.
#[derive(Clone)]
enum Sender {
    /// hyper-util with a prebuilt body; parses the answer like the client does.
    Bare {
        bare: Box<Bare>,
        uri: String,
        body: Bytes,
    },
    Client(Client),
    Instrumented(InstrumentedClient),
}

impl Sender {
    async fn send(&self) -> Result<()> {
        match self {
            Self::Bare { bare, uri, body } => {
                let bytes = post(bare, uri, body.clone()).await?;
                black_box(serde_json::from_slice::<GenerateResponse>(&bytes)?);
            }
            Self::Client(client) => {
                black_box(client.generate(GenerateRequest::new(MODEL, PROMPT)).await?);
            }
            Self::Instrumented(client) => {
                black_box(client.generate(GenerateRequest::new(MODEL, PROMPT)).await?);
            }
        }
        Ok(())
    }
}

async fn stream_probe(url: &str, model: &str, rounds: usize) -> Result<Value> {
    let client = Client::builder()
        .base_url(url)
        .verify_on_init(false)
        .build()?;
    let bare = bare_client(1);
    let uri = format!("{url}/api/generate");
    let body = generate_body(model, true);
    // One recorded stream, replayed from memory: decoding cost alone, no network, no server.
    let wire = post(&bare, &uri, body.clone()).await?;
    let lines = memchr_count(&wire);
    if lines < 1_000 {
        bail!("the stream from {model} has only {lines} lines; the bench needs a long answer");
    }
    let mut decode_rate = Vec::new();
    let mut split_rate = Vec::new();
    let mut client_wire_rate = Vec::new();
    let mut bare_wire_rate = Vec::new();
    for _ in 0..rounds {
        // In memory, repeated so each timing covers at least ~50 ms.
        let reps = 20;
        let t = Instant::now();
        let mut decoded = 0;
        for _ in 0..reps {
            decoded += decode_all(&wire)?;
        }
        decode_rate.push(per_second(decoded, t.elapsed()));
        let t = Instant::now();
        let mut split = 0;
        for _ in 0..reps {
            split += split_lines(&wire);
        }
        split_rate.push(per_second(split, t.elapsed()));

        // Over the wire from the sim: what a streaming request delivers end to end.
        let t = Instant::now();
        let mut stream = client
            .generate_stream(GenerateRequest::new(model, PROMPT))
            .await?;
        let mut chunks = 0;
        while let Some(chunk) = stream.next().await {
            black_box(chunk?);
            chunks += 1;
        }
        client_wire_rate.push(per_second(chunks, t.elapsed()));
        let t = Instant::now();
        let req = http::Request::post(&uri)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?;
        let mut resp = bare.request(req).await?.into_body();
        let mut chunks = 0;
        while let Some(frame) = resp.frame().await {
            if let Ok(data) = frame?.into_data() {
                chunks += memchr_count(&data);
            }
        }
        bare_wire_rate.push(per_second(chunks, t.elapsed()));
    }
    let median = |v: &mut Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (d, s) = (median(&mut decode_rate), median(&mut split_rate));
    let (cw, bw) = (median(&mut client_wire_rate), median(&mut bare_wire_rate));
    Ok(json!({
        "lines_per_stream": lines,
        "rounds": rounds,
        "in_memory": {
            "client_decoder_chunks_per_second": d,
            "split_lines_per_second": s,
            "ratio": d / s,
        },
        "over_the_wire": {
            "client_chunks_per_second": cw,
            "bare_split_lines_per_second": bw,
            "ratio": cw / bw,
        },
    }))
}

/// Feeds `wire` to the client's NDJSON decoder in TCP-segment-sized pieces; returns the
/// number of decoded chunks.
fn decode_all(wire: &[u8]) -> Result<u64> {
    let now = Instant::now();
    let mut decoder = StreamDecoder::<GenerateResponse>::ndjson();
    let mut n = 0;
    for segment in wire.chunks(SEGMENT) {
        decoder.push(segment, now);
        while let Some(item) = decoder.next_item() {
            black_box(item?);
            n += 1;
        }
    }
    decoder.finish(now);
    if let Some(item) = decoder.next_item() {
        black_box(item?);
        n += 1;
    }
    Ok(n)
}

/// The floor for a decoder: split the same segments into lines and look at each line once,
/// carrying a partial line across segments as a decoder must.
fn split_lines(wire: &[u8]) -> u64 {
    let mut carry: Vec<u8> = Vec::new();
    let mut n = 0;
    for segment in wire.chunks(SEGMENT) {
        let mut rest = segment;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            carry.extend_from_slice(&rest[..pos]);
            black_box(carry.as_slice());
            carry.clear();
            n += 1;
            rest = &rest[pos + 1..];
        }
        carry.extend_from_slice(rest);
    }
    n
}

/// Newlines in `bytes`.
#[expect(
    clippy::naive_bytecount,
    reason = "not on a measured path; no extra dependency"
)]
fn memchr_count(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}
