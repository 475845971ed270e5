//! Benchmarks: stream decode throughput, and the client's per-request overhead against an
//! instant simulator, side by side with a bare hyper-util loop doing the same requests.
//!
//! Run with `cargo bench -p ollama-client`. The overhead ratio is
//! `ollama-client time / bare hyper-util time` for the same request on the same server.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ollama_client::openai::ChatCompletionChunk;
use ollama_client::{Client, GenerateRequest, GenerateResponse, StreamDecoder};
use ollama_sim::{Sim, SimConfig, SimHandle};

const MODEL: &str = "llama3.2:latest";
const LINES: usize = 10_000;
/// A typical TCP segment payload: how the network hands a stream to the decoder.
const SEGMENT: usize = 1400;

fn ndjson_stream() -> Vec<u8> {
    let mut wire = Vec::new();
    for i in 0..LINES {
        let line = serde_json::json!({
            "model": MODEL, "created_at": "2025-10-26T17:15:24.097767Z", "response": format!(" tok{i}"), "done": false
        });
        wire.extend(line.to_string().bytes());
        wire.push(b'\n');
    }
    wire.extend(
        br#"{"model":"llama3.2:latest","created_at":"2025-10-26T17:15:24.166576Z","response":"","done":true,"done_reason":"stop","context":[1,2,3],"total_duration":174560334,"load_duration":101397084,"prompt_eval_count":11,"prompt_eval_duration":13074791,"eval_count":18,"eval_duration":52479709}"#,
    );
    wire.push(b'\n');
    wire
}

fn sse_stream() -> Vec<u8> {
    let mut wire = Vec::new();
    for i in 0..LINES {
        let chunk = serde_json::json!({
            "id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1_729_000_000, "model": MODEL,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": {"content": format!(" tok{i}")}, "finish_reason": null}]
        });
        wire.extend(format!("data: {chunk}\n\n").bytes());
    }
    wire.extend(b"data: [DONE]\n\n");
    wire
}

fn decode<T: ollama_client::StreamItem>(mut d: StreamDecoder<T>, wire: &[u8]) -> usize {
    let now = Instant::now();
    let mut n = 0;
    for segment in wire.chunks(SEGMENT) {
        d.push(segment, now);
        while let Some(item) = d.next_item() {
            black_box(item.unwrap());
            n += 1;
        }
    }
    d.finish(now);
    assert!(d.next_item().is_none());
    n
}

fn decode_throughput(c: &mut Criterion) {
    let ndjson = ndjson_stream();
    let sse = sse_stream();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(LINES as u64 + 1));
    g.bench_function("ndjson_generate_chunks", |b| {
        b.iter(|| decode(StreamDecoder::<GenerateResponse>::ndjson(), &ndjson));
    });
    g.throughput(Throughput::Elements(LINES as u64));
    g.bench_function("sse_openai_chunks", |b| {
        b.iter(|| decode(StreamDecoder::<ChatCompletionChunk>::sse(), &sse));
    });
    g.finish();
}

struct Bench {
    rt: tokio::runtime::Runtime,
    sim: SimHandle,
    client: Client,
    bare: HyperClient<HttpConnector, Full<Bytes>>,
}

fn setup() -> Bench {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt.block_on(Sim::start(SimConfig::instant())).unwrap();
    let client = Client::builder()
        .base_url(sim.base_url())
        .verify_on_init(false)
        .build()
        .unwrap();
    let bare = HyperClient::builder(TokioExecutor::new()).build_http();
    Bench {
        rt,
        sim,
        client,
        bare,
    }
}

async fn bare_generate(bare: &HyperClient<HttpConnector, Full<Bytes>>, uri: &str) {
    let body =
        serde_json::to_vec(&serde_json::json!({"model": MODEL, "prompt": "hi", "stream": false}))
            .unwrap();
    let req = http::Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = bare.request(req).await.unwrap();
    assert!(resp.status().is_success());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    black_box(serde_json::from_slice::<GenerateResponse>(&bytes).unwrap());
}

async fn bare_version(bare: &HyperClient<HttpConnector, Full<Bytes>>, uri: &str) {
    let req = http::Request::get(uri)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = bare.request(req).await.unwrap();
    assert!(resp.status().is_success());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    black_box(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap());
}

fn request_overhead(c: &mut Criterion) {
    let b = setup();
    let generate_uri = format!("{}/api/generate", b.sim.base_url());
    let version_uri = format!("{}/api/version", b.sim.base_url());
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("generate/ollama_client", |bn| {
        bn.iter(|| {
            b.rt.block_on(async {
                black_box(
                    b.client
                        .generate(GenerateRequest::new(MODEL, "hi"))
                        .await
                        .unwrap(),
                )
            })
        });
    });
    g.bench_function("generate/bare_hyper_util", |bn| {
        bn.iter(|| b.rt.block_on(bare_generate(&b.bare, &generate_uri)));
    });
    g.bench_function("version/ollama_client", |bn| {
        bn.iter(|| {
            b.rt.block_on(async { black_box(b.client.version().await.unwrap()) })
        });
    });
    g.bench_function("version/bare_hyper_util", |bn| {
        bn.iter(|| b.rt.block_on(bare_version(&b.bare, &version_uri)));
    });
    g.finish();
    paired_ratio(&b, &generate_uri, &version_uri);
    let Bench { rt, sim, .. } = b;
    rt.block_on(sim.shutdown());
}

/// The overhead ratio measured fairly on a shared, noisy machine: the two loops alternate
/// in short rounds, so both see the same background load. Prints median-of-rounds ratios.
fn paired_ratio(b: &Bench, generate_uri: &str, version_uri: &str) {
    const ROUNDS: usize = 40;
    const PER_ROUND: u32 = 200;
    let mut ratios = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        let which = round % 2;
        let (client, bare) = b.rt.block_on(async {
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                if which == 0 {
                    black_box(
                        b.client
                            .generate(GenerateRequest::new(MODEL, "hi"))
                            .await
                            .unwrap(),
                    );
                } else {
                    black_box(b.client.version().await.unwrap());
                }
            }
            let client = t.elapsed();
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                if which == 0 {
                    bare_generate(&b.bare, generate_uri).await;
                } else {
                    bare_version(&b.bare, version_uri).await;
                }
            }
            (client, t.elapsed())
        });
        ratios[round % 2].push(client.as_secs_f64() / bare.as_secs_f64());
    }
    for (name, mut r) in ["generate", "version"].into_iter().zip(ratios) {
        r.sort_by(f64::total_cmp);
        println!(
            "paired overhead ratio {name}: median {:.3} (quartiles {:.3}..{:.3}) ollama-client / bare hyper-util",
            r[r.len() / 2],
            r[r.len() / 4],
            r[3 * r.len() / 4]
        );
    }
}

criterion_group!(benches, decode_throughput, request_overhead);
criterion_main!(benches);
