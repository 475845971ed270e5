//! The client's `/v1/chat/completions` against a real inference server: llama.cpp's
//! `llama-server` with a small base model (gemma-3 270M).
//!
//! Why: the simulator proves we follow the protocol as written; only a real engine shows
//! that our token counts and timings agree with what the server itself measured. Each test
//! compares what the client saw with the server's own figures: the `usage` it returns, the
//! per-request `timings` object llama-server adds (read through
//! [`ChatCompletion::extension`]) and its Prometheus counters (`/metrics`, enabled by
//! `--metrics`). The model is a base model without a chat template, so answer text is never
//! checked, only protocol, counts and timing.
//!
//! Compiled only with `--features real-llm`. `cargo xtask e2e` starts the server and sets
//! `REAL_LLM_BASE_URL`; without that variable every test fails and says so. The tests
//! run one at a time (a shared lock) because they read global server counters.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use ollama_client::Client;
use ollama_client::openai::{ChatCompletionRequest, ChatMessage};
use serde_json::Value;
use tokio::sync::Mutex;

/// llama-server serves whatever model it loaded under any name.
const MODEL: &str = "gemma3-270m";
const PROMPT: &str = "Why is the sky blue? Answer in one sentence.";

/// Tolerances, stated once. The machine may be a loaded two-core box shared with builds,
/// so time bounds are ratios or generous slack, never exact.
///
/// Client TTFT minus the server's prompt time (HTTP, queueing into the server loop,
/// scheduler noise): at most this.
const TTFT_OVERHEAD_MAX: Duration = Duration::from_millis(400);
/// Client decode rate over the server's, both over the same tokens: within this ratio.
const DECODE_RATE_RATIO: (f64, f64) = (0.6, 1.6);
/// Client end-to-end time minus the server's prompt + generation time: at most this.
const E2E_OVERHEAD_MAX: Duration = Duration::from_millis(600);

/// Serialises the tests: they read deltas of server-wide counters.
static SERIAL: Mutex<()> = Mutex::const_new(());

fn base_url() -> String {
    std::env::var("REAL_LLM_BASE_URL").unwrap_or_else(|_| {
        panic!(
            "REAL_LLM_BASE_URL is not set: these tests need a running llama-server \
             (started with --metrics). Run them through `cargo xtask e2e`, which starts one."
        )
    })
}

fn client() -> Client {
    Client::builder()
        .base_url(base_url())
        .verify_on_init(false)
        .max_retries(0)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn request(max_tokens: u64) -> ChatCompletionRequest {
    ChatCompletionRequest::new(MODEL, vec![ChatMessage::user(PROMPT)])
        .max_tokens(max_tokens)
        .temperature(0.0)
        .seed(7)
}

/// llama-server's Prometheus counters, `name -> value`.
async fn server_metrics() -> HashMap<String, f64> {
    let http: HyperClient<_, Empty<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = format!("{}/metrics", base_url()).parse().unwrap();
    let response = http.get(uri).await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "/metrics needs llama-server --metrics"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn counter(metrics: &HashMap<String, f64>, name: &str) -> f64 {
    *metrics
        .get(name)
        .unwrap_or_else(|| panic!("llama-server /metrics has no {name}"))
}

/// Waits until the server's predicted-token counter has moved by `expected` since `before`
/// (the server updates it right after sending a final response), then returns the metrics.
/// Returns the last reading after a deadline, so a mismatch shows in the caller's assert.
async fn metrics_after(before: &HashMap<String, f64>, expected: u64) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = server_metrics().await;
        let delta = counter(&now, "llamacpp:tokens_predicted_total")
            - counter(before, "llamacpp:tokens_predicted_total");
        #[allow(clippy::cast_precision_loss)] // token counts are far below 2^52
        if delta >= expected as f64 || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delta(after: &HashMap<String, f64>, before: &HashMap<String, f64>, name: &str) -> f64 {
    counter(after, name) - counter(before, name)
}

/// The change of a counter that counts (tokens, requests): a whole number.
#[allow(clippy::cast_possible_truncation)] // counts are far below 2^52
fn count_delta(after: &HashMap<String, f64>, before: &HashMap<String, f64>, name: &str) -> i64 {
    delta(after, before, name).round() as i64
}

fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap()
}

/// llama-server's per-request `timings`.
#[derive(Debug)]
struct Timings {
    cache_n: u64,
    prompt_n: u64,
    prompt_ms: f64,
    predicted_n: u64,
    predicted_ms: f64,
}

impl Timings {
    fn from(value: Option<&Value>) -> Self {
        let t = value.expect("llama-server sends a `timings` object with the final answer");
        let int = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("timings.{k}: {t}"));
        let float = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("timings.{k}: {t}"));
        Self {
            cache_n: int("cache_n"),
            prompt_n: int("prompt_n"),
            prompt_ms: float("prompt_ms"),
            predicted_n: int("predicted_n"),
            predicted_ms: float("predicted_ms"),
        }
    }

    fn server_time(&self) -> Duration {
        Duration::from_secs_f64((self.prompt_ms + self.predicted_ms) / 1000.0)
    }
}

#[allow(clippy::cast_precision_loss)] // token counts are far below 2^52
fn f(n: u64) -> f64 {
    n as f64
}

#[tokio::test]
async fn plain_completion_agrees_with_usage_timings_and_counters() {
    let _serial = SERIAL.lock().await;
    let before = server_metrics().await;
    let sent = Instant::now();
    let answer = client().openai_chat(request(24)).await.unwrap();
    let e2e = sent.elapsed();

    assert_eq!(answer.object, "chat.completion");
    let finish = answer.choices[0].finish_reason.as_deref();
    let usage = answer.usage.expect("usage on a plain completion");
    assert!((1..=24).contains(&usage.completion_tokens), "{usage:?}");
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    assert_eq!(
        finish == Some("length"),
        usage.completion_tokens == 24,
        "finish_reason {finish:?} with {} of 24 tokens",
        usage.completion_tokens
    );

    let timings = Timings::from(answer.extension("timings"));
    assert_eq!(timings.predicted_n, usage.completion_tokens, "{timings:?}");
    assert_eq!(
        timings.prompt_n + timings.cache_n,
        usage.prompt_tokens,
        "{timings:?}"
    );
    // The server's own time is inside ours, and ours is not much more.
    assert!(e2e >= timings.server_time(), "{e2e:?} < {timings:?}");
    assert!(
        e2e.saturating_sub(timings.server_time()) < E2E_OVERHEAD_MAX,
        "client {e2e:?} vs server {:?}",
        timings.server_time()
    );

    let after = metrics_after(&before, usage.completion_tokens).await;
    assert_eq!(
        count_delta(&after, &before, "llamacpp:tokens_predicted_total"),
        i(usage.completion_tokens)
    );
    assert_eq!(
        count_delta(&after, &before, "llamacpp:prompt_tokens_total"),
        i(timings.prompt_n),
        "prompt tokens processed (cached ones excluded)"
    );
}

#[tokio::test]
async fn streamed_ttft_and_decode_rate_agree_with_server_timings() {
    let _serial = SERIAL.lock().await;
    let before = server_metrics().await;
    let sent = Instant::now();
    let mut stream = client()
        .openai_chat_stream(request(48).include_usage(true))
        .await
        .unwrap();
    let mut content_at = Vec::new();
    let mut finish = None;
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if !chunk.item.content().is_empty() {
            content_at.push(chunk.received_at);
        }
        if let Some(reason) = chunk.item.finish_reason() {
            finish = Some(reason.to_owned());
        }
        last = Some(chunk.item);
    }
    // The stream ended cleanly (the client checks `[DONE]`); the last event is the usage
    // chunk with llama-server's timings.
    let last = last.expect("a non-empty stream");
    let usage = last.usage.expect("usage chunk (include_usage)");
    let timings = Timings::from(last.extension("timings"));
    assert!(finish.is_some(), "a chunk carries the finish reason");
    assert_eq!(timings.predicted_n, usage.completion_tokens, "{timings:?}");
    assert_eq!(
        timings.prompt_n + timings.cache_n,
        usage.prompt_tokens,
        "{timings:?}"
    );
    // One token per content chunk, except where the server holds back an incomplete
    // UTF-8 sequence and sends two tokens together.
    let chunks = content_at.len() as u64;
    assert!(
        chunks <= usage.completion_tokens && chunks * 10 >= usage.completion_tokens * 8,
        "{chunks} content chunks for {} tokens",
        usage.completion_tokens
    );
    assert!(chunks >= 8, "need tokens to time decoding, got {chunks}");

    // TTFT: the server's prompt time is inside ours, plus a bounded overhead.
    let ttft = content_at[0] - sent;
    let prompt = Duration::from_secs_f64(timings.prompt_ms / 1000.0);
    assert!(
        ttft >= prompt,
        "TTFT {ttft:?} < server prompt time {prompt:?}"
    );
    assert!(
        ttft.saturating_sub(prompt) < TTFT_OVERHEAD_MAX,
        "TTFT {ttft:?} vs server prompt time {prompt:?}"
    );
    // Decode rate over the tokens after the first: ours from chunk arrival times, the
    // server's from predicted_ms, which also runs from the first token to the last.
    let ours = f(chunks - 1) / (content_at[content_at.len() - 1] - content_at[0]).as_secs_f64();
    let server = f(timings.predicted_n - 1) / (timings.predicted_ms / 1000.0);
    let ratio = ours / server;
    assert!(
        (DECODE_RATE_RATIO.0..=DECODE_RATE_RATIO.1).contains(&ratio),
        "decode rate ours {ours:.1} tok/s vs server {server:.1} tok/s (ratio {ratio:.2})"
    );
    eprintln!(
        "streamed: TTFT {:.1} ms vs server prompt {:.1} ms; decode {ours:.1} vs {server:.1} tok/s",
        ttft.as_secs_f64() * 1000.0,
        timings.prompt_ms
    );

    let after = metrics_after(&before, usage.completion_tokens).await;
    assert_eq!(
        count_delta(&after, &before, "llamacpp:tokens_predicted_total"),
        i(usage.completion_tokens)
    );
    let seconds = delta(&after, &before, "llamacpp:tokens_predicted_seconds_total");
    assert!(
        (seconds - timings.predicted_ms / 1000.0).abs() < 0.01,
        "counter {seconds} s vs timings {} ms",
        timings.predicted_ms
    );
}

#[tokio::test]
async fn parallel_streams_share_the_slots_and_are_all_accounted_for() {
    let _serial = SERIAL.lock().await;
    let before = server_metrics().await;
    let client = client();
    let streams = (0..4).map(|i| {
        let client = client.clone();
        async move {
            let req = request(32).seed(i).include_usage(true);
            let mut stream = client.openai_chat_stream(req).await.unwrap();
            let mut usage = None;
            while let Some(chunk) = stream.next().await {
                usage = chunk.unwrap().item.usage.or(usage);
            }
            usage.expect("usage chunk").completion_tokens
        }
    });
    let tokens: Vec<u64> = futures_util::future::join_all(streams).await;
    let total: u64 = tokens.iter().sum();
    assert!(tokens.iter().all(|&n| (1..=32).contains(&n)), "{tokens:?}");
    let after = metrics_after(&before, total).await;
    assert_eq!(
        count_delta(&after, &before, "llamacpp:tokens_predicted_total"),
        i(total)
    );
    assert!(
        counter(&after, "llamacpp:requests_processing") < 0.5,
        "nothing left running on the server"
    );
}

#[tokio::test]
async fn a_prompt_over_the_context_is_a_typed_http_error() {
    let _serial = SERIAL.lock().await;
    let before = server_metrics().await;
    // Far more tokens than a slot's context (8192 / 4 parallel slots).
    let long = "the sky is blue because of Rayleigh scattering. ".repeat(1200);
    let req = ChatCompletionRequest::new(MODEL, vec![ChatMessage::user(long)]).max_tokens(4);
    let err = client().openai_chat(req).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400), "{err}");
    assert_eq!(err.kind().as_str(), "http_status", "{err}");
    assert!(!err.is_retryable(), "{err}");
    let after = server_metrics().await;
    assert_eq!(
        count_delta(&after, &before, "llamacpp:tokens_predicted_total"),
        0
    );
}
