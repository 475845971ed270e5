//! Every request moves the right counters and histograms, with the right labels, and writes
//! exactly one event: success, each error kind the sim can produce, streams (including one
//! dropped half-way), and the bounded model label. Each test records into its own local
//! debugging recorder (see `common::with_recorder`).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    CHAT_MODEL, EMBED_MODEL, client_for, fast_config, fast_sim, instrumented, with_recorder,
};
use ollama_client::openai::{ChatCompletionRequest, ChatMessage};
use ollama_client::{ChatRequest, Client, EmbedRequest, GenerateRequest, Message, Options};
use ollama_sim::{FaultKind, FaultPlan, FaultRule, ModelSpec, Sim, SimConfig};
use ollama_telemetry::catalog::{
    ERRORS_TOTAL, INTER_TOKEN_SECONDS, MODEL_LOAD_DURATION_SECONDS, QUEUE_WAIT_SECONDS,
    REQUEST_DURATION_SECONDS, REQUESTS_TOTAL, RESPONSES_TOTAL, SERVER_BUSY_TOTAL,
    TIME_TO_FIRST_TOKEN_SECONDS, TOKENS_PER_SECOND, TOKENS_TOTAL,
};
use ollama_telemetry::{
    EventLog, EventsConfig, InstrumentedClient, OVERFLOW_MODEL_LABEL, Outcome, TelemetryConfig,
};

const GENERATE: &str = "/api/generate";

fn labels<'a>(endpoint: &'a str, model: &'a str, outcome: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("endpoint", endpoint),
        ("model", model),
        ("outcome", outcome),
    ]
}

#[test]
fn a_plain_generate_moves_every_success_metric() {
    let ((response, events), m) = with_recorder(|| async {
        let sim = fast_sim().await;
        let (client, sink, log) = instrumented(client_for(&sim));
        let response = client
            .generate(GenerateRequest::new(CHAT_MODEL, "Why is the sky blue?"))
            .await
            .unwrap();
        log.flush().unwrap();
        sim.shutdown().await;
        (response, sink.events())
    });
    let l = labels(GENERATE, CHAT_MODEL, "success");
    assert_eq!(m.counter(REQUESTS_TOTAL, &l), 1);
    assert_eq!(m.histogram(REQUEST_DURATION_SECONDS, &l).len(), 1);
    assert_eq!(
        m.counter(
            RESPONSES_TOTAL,
            &[
                ("endpoint", GENERATE),
                ("model", CHAT_MODEL),
                ("status", "200")
            ]
        ),
        1
    );
    assert!(m.label_sets(ERRORS_TOTAL).is_empty());
    let model = [("model", CHAT_MODEL)];
    assert_eq!(m.histogram(MODEL_LOAD_DURATION_SECONDS, &model).len(), 1);
    assert_eq!(m.histogram(QUEUE_WAIT_SECONDS, &model).len(), 1);
    assert_eq!(m.histogram(TOKENS_PER_SECOND, &model).len(), 1);
    let prompt = m.counter(TOKENS_TOTAL, &[("model", CHAT_MODEL), ("kind", "prompt")]);
    let completion = m.counter(
        TOKENS_TOTAL,
        &[("model", CHAT_MODEL), ("kind", "completion")],
    );
    assert_eq!(Some(prompt), response.prompt_eval_count);
    assert_eq!(Some(completion), response.eval_count);
    // Not a stream: no token timing.
    assert!(m.label_sets(TIME_TO_FIRST_TOKEN_SECONDS).is_empty());

    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event, "ollama_request");
    assert_eq!(
        (e.operation.as_ref(), e.endpoint.as_ref()),
        ("generate", GENERATE)
    );
    assert_eq!(e.outcome, Outcome::Success);
    assert_eq!(e.status, "success");
    assert_eq!(e.model.as_deref(), Some(CHAT_MODEL));
    assert!(!e.stream);
    assert_eq!(e.prompt_chars, Some(20));
    assert_eq!(e.prompt, None, "prompts are not logged unless asked");
    assert_eq!(e.generation_eval_count, response.eval_count);
    assert_eq!(e.done_reason.as_deref(), Some("stop"));
    let total = e.total_duration_ms.unwrap();
    assert!(e.latency_ms >= total, "client time includes the server's");
    let queue = e.queue_wait_ms.unwrap();
    assert!((e.latency_ms - total - queue).abs() < 1e-6);
    assert!(e.model_load_ms.is_some() && e.model_warm_start.is_some());
    assert!(e.error_type.is_none() && e.http_status.is_none());
}

#[test]
fn a_streamed_generate_records_first_token_gaps_and_server_figures() {
    let ((chunks, events), m) = with_recorder(|| async {
        let sim = fast_sim().await;
        let (client, sink, log) = instrumented(client_for(&sim));
        let mut stream = client
            .generate_stream(GenerateRequest::new(CHAT_MODEL, "Tell me a story"))
            .await
            .unwrap();
        let mut token_chunks = 0;
        while let Some(chunk) = stream.next().await {
            if !chunk.unwrap().item.response.is_empty() {
                token_chunks += 1;
            }
        }
        log.flush().unwrap();
        sim.shutdown().await;
        (token_chunks, sink.events())
    });
    assert!(chunks > 2, "the sim streams several token chunks");
    let l = labels(GENERATE, CHAT_MODEL, "success");
    assert_eq!(m.counter(REQUESTS_TOTAL, &l), 1);
    let el = [("endpoint", GENERATE), ("model", CHAT_MODEL)];
    assert_eq!(m.histogram(TIME_TO_FIRST_TOKEN_SECONDS, &el).len(), 1);
    assert_eq!(m.histogram(INTER_TOKEN_SECONDS, &el).len(), chunks - 1);
    assert_eq!(
        m.histogram(TOKENS_PER_SECOND, &[("model", CHAT_MODEL)])
            .len(),
        1
    );
    assert_eq!(
        m.counter(
            RESPONSES_TOTAL,
            &[
                ("endpoint", GENERATE),
                ("model", CHAT_MODEL),
                ("status", "200")
            ]
        ),
        1
    );

    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert!(e.stream);
    assert_eq!(e.outcome, Outcome::Success);
    let ttft = e.ttft_ms.unwrap();
    assert!(ttft > 0.0 && ttft <= e.latency_ms);
    assert!(e.tokens_per_second.unwrap() > 0.0);
    assert!(e.eval_ms.is_some() && e.prompt_eval_ms.is_some());
    assert_eq!(e.done_reason.as_deref(), Some("stop"));
}

/// The summary methods are recorded exactly as the full methods: the same seeded answer,
/// read fully and then measured, moves the same series by the same amounts and writes
/// events that agree on everything the answer decides.
#[test]
fn summary_methods_record_what_the_full_methods_record() {
    let ((tokens, events), m) = with_recorder(|| async {
        let sim = fast_sim().await;
        let (client, sink, log) = instrumented(client_for(&sim));
        let seeded = || Options::new().temperature(0.0).seed(3);
        let generate = || GenerateRequest::new(CHAT_MODEL, "Tell me a story").options(seeded());
        let chat = || ChatRequest::new(CHAT_MODEL, vec![Message::user("Hello")]).options(seeded());
        client.generate(generate()).await.unwrap();
        client.generate_summary(generate()).await.unwrap();
        client.chat(chat()).await.unwrap();
        client.chat_summary(chat()).await.unwrap();
        // Token chunks of each stream: (generate full, generate lean, chat full, chat lean).
        let mut tokens = [0usize; 4];
        let mut full = client.generate_stream(generate()).await.unwrap();
        while let Some(c) = full.next().await {
            tokens[0] += usize::from(!c.unwrap().item.response.is_empty());
        }
        let mut lean = client.generate_stream_summary(generate()).await.unwrap();
        while let Some(c) = lean.next().await {
            tokens[1] += usize::from(c.unwrap().item.has_output());
        }
        let mut full = client.chat_stream(chat()).await.unwrap();
        while let Some(c) = full.next().await {
            tokens[2] += usize::from(!c.unwrap().item.message.content.is_empty());
        }
        let mut lean = client.chat_stream_summary(chat()).await.unwrap();
        while let Some(c) = lean.next().await {
            tokens[3] += usize::from(c.unwrap().item.has_output());
        }
        log.flush().unwrap();
        sim.shutdown().await;
        (tokens, sink.events())
    });
    assert!(
        tokens[0] > 2 && tokens[0] == tokens[1] && tokens[2] == tokens[3],
        "{tokens:?}"
    );
    for (endpoint, tokens) in [(GENERATE, tokens[0]), ("/api/chat", tokens[2])] {
        let l = labels(endpoint, CHAT_MODEL, "success");
        assert_eq!(m.counter(REQUESTS_TOTAL, &l), 4, "{endpoint}");
        let el = [("endpoint", endpoint), ("model", CHAT_MODEL)];
        assert_eq!(m.histogram(TIME_TO_FIRST_TOKEN_SECONDS, &el).len(), 2);
        // One gap between each two token chunks, in each of the two streams.
        assert_eq!(
            m.histogram(INTER_TOKEN_SECONDS, &el).len(),
            2 * (tokens - 1)
        );
    }
    assert_eq!(events.len(), 8);
    for pair in events.chunks(2) {
        let (full, lean) = (&pair[0], &pair[1]);
        assert_eq!(
            (
                &full.operation,
                full.stream,
                full.outcome,
                full.prompt_chars
            ),
            (
                &lean.operation,
                lean.stream,
                lean.outcome,
                lean.prompt_chars
            )
        );
        assert_eq!(full.generation_eval_count, lean.generation_eval_count);
        assert_eq!(full.prompt_eval_count, lean.prompt_eval_count);
        assert_eq!(full.done_reason, lean.done_reason);
        assert_eq!(full.ttft_ms.is_some(), lean.ttft_ms.is_some());
        assert!(lean.total_duration_ms.is_some() && lean.tokens_per_second.is_some());
    }
}

#[test]
fn streamed_chat_and_openai_streams_are_measured() {
    let (events, m) = with_recorder(|| async {
        let sim = fast_sim().await;
        let (client, sink, log) = instrumented(client_for(&sim));
        let mut chat = client
            .chat_stream(ChatRequest::new(CHAT_MODEL, vec![Message::user("Hello")]))
            .await
            .unwrap();
        while let Some(chunk) = chat.next().await {
            chunk.unwrap();
        }
        let mut openai = client
            .openai_chat_stream(
                ChatCompletionRequest::new(CHAT_MODEL, vec![ChatMessage::user("Hi there")])
                    .include_usage(true)
                    .temperature(0.5),
            )
            .await
            .unwrap();
        while let Some(chunk) = openai.next().await {
            chunk.unwrap();
        }
        let plain = client
            .openai_chat(ChatCompletionRequest::new(
                CHAT_MODEL,
                vec![ChatMessage::user("Hi")],
            ))
            .await
            .unwrap();
        assert!(plain.usage.is_some());
        log.flush().unwrap();
        sim.shutdown().await;
        sink.events()
    });
    for endpoint in ["/api/chat", "/v1/chat/completions"] {
        assert_eq!(
            m.histogram(
                TIME_TO_FIRST_TOKEN_SECONDS,
                &[("endpoint", endpoint), ("model", CHAT_MODEL)]
            )
            .len(),
            1,
            "{endpoint}"
        );
        assert!(
            !m.histogram(
                INTER_TOKEN_SECONDS,
                &[("endpoint", endpoint), ("model", CHAT_MODEL)]
            )
            .is_empty()
        );
    }
    assert_eq!(
        m.counter(REQUESTS_TOTAL, &labels("/api/chat", CHAT_MODEL, "success")),
        1
    );
    assert_eq!(
        m.counter(
            REQUESTS_TOTAL,
            &labels("/v1/chat/completions", CHAT_MODEL, "success")
        ),
        2
    );
    assert_eq!(events.len(), 3);
    let openai_stream = &events[1];
    assert_eq!(openai_stream.operation, "openai_chat");
    assert!(openai_stream.stream);
    assert!(
        openai_stream.generation_eval_count.unwrap() > 0,
        "usage chunk counted"
    );
    assert_eq!(openai_stream.prompt_chars, Some(8));
    assert_eq!(
        openai_stream.options,
        Some(serde_json::json!({"temperature": 0.5}))
    );
    assert!(openai_stream.done_reason.is_some());
    // Tokens counted by the server for all three, through native metrics or OpenAI usage.
    let completion = m.counter(
        TOKENS_TOTAL,
        &[("model", CHAT_MODEL), ("kind", "completion")],
    );
    let logged: u64 = events
        .iter()
        .map(|e| e.generation_eval_count.unwrap())
        .sum();
    assert_eq!(completion, logged);
}

#[test]
fn an_embed_records_load_time_and_prompt_tokens() {
    let (events, m) = with_recorder(|| async {
        let sim = fast_sim().await;
        let (client, sink, log) = instrumented(client_for(&sim));
        client
            .embed(EmbedRequest::new(
                EMBED_MODEL,
                vec!["one".to_owned(), "two".to_owned()],
            ))
            .await
            .unwrap();
        log.flush().unwrap();
        sim.shutdown().await;
        sink.events()
    });
    assert_eq!(
        m.counter(
            REQUESTS_TOTAL,
            &labels("/api/embed", EMBED_MODEL, "success")
        ),
        1
    );
    assert_eq!(
        m.histogram(MODEL_LOAD_DURATION_SECONDS, &[("model", EMBED_MODEL)])
            .len(),
        1
    );
    assert!(m.counter(TOKENS_TOTAL, &[("model", EMBED_MODEL), ("kind", "prompt")]) > 0);
    assert_eq!(events[0].prompt_chars, Some(6));
}

/// Runs one failing call and checks the error metrics and the event.
fn assert_error_case<F, Fut>(
    name: &str,
    sim: SimConfig,
    faults: FaultPlan,
    builder: impl FnOnce(ollama_client::ClientBuilder) -> ollama_client::ClientBuilder,
    call: F,
    want_kind: &str,
    want_status: Option<&str>,
) where
    F: FnOnce(InstrumentedClient) -> Fut,
    Fut: Future<Output = ()>,
{
    let (events, m) = with_recorder(|| async {
        let sim = Sim::start(sim).await.unwrap();
        sim.set_faults(faults);
        let client = builder(Client::builder().base_url(sim.base_url()))
            .build()
            .unwrap();
        let (client, sink, log) = instrumented(client);
        call(client).await;
        log.flush().unwrap();
        sim.shutdown().await;
        sink.events()
    });
    let errors = m.label_sets(ERRORS_TOTAL);
    assert_eq!(m.counter_total(ERRORS_TOTAL), 1, "{name}: {errors:?}");
    let error = &errors[0];
    assert!(
        error.contains(&("kind".to_owned(), want_kind.to_owned())),
        "{name}: want kind {want_kind}, got {error:?}"
    );
    let outcome_error: Vec<_> = m
        .label_sets(REQUESTS_TOTAL)
        .into_iter()
        .filter(|l| l.contains(&("outcome".to_owned(), "error".to_owned())))
        .collect();
    assert_eq!(outcome_error.len(), 1, "{name}");
    let statuses: Vec<String> = m
        .label_sets(RESPONSES_TOTAL)
        .into_iter()
        .flat_map(|l| l.into_iter().filter(|(k, _)| k == "status").map(|(_, v)| v))
        .collect();
    match want_status {
        Some(s) => assert!(statuses.contains(&s.to_owned()), "{name}: {statuses:?}"),
        None => assert!(!statuses.iter().any(|s| s != "200"), "{name}: {statuses:?}"),
    }
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.outcome == Outcome::Error)
        .collect();
    assert_eq!(failed.len(), 1, "{name}");
    let e = failed[0];
    assert_eq!(e.status, "error");
    assert_eq!(e.error_type.as_deref(), Some(want_kind), "{name}");
    assert!(e.error_message.as_ref().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        e.http_status.map(|s| s.to_string()),
        want_status.filter(|s| *s != "200").map(str::to_owned),
        "{name}"
    );
}

fn on_generate(kind: FaultKind) -> FaultPlan {
    FaultPlan::none().with(FaultRule::new(kind).endpoint(GENERATE))
}

async fn generate(client: InstrumentedClient) {
    client
        .generate(GenerateRequest::new(CHAT_MODEL, "hi"))
        .await
        .unwrap_err();
}

/// Opens a stream and reads it to its error.
async fn generate_stream_to_error(client: InstrumentedClient) {
    let mut stream = client
        .generate_stream(GenerateRequest::new(CHAT_MODEL, "hi"))
        .await
        .unwrap();
    loop {
        match stream.next().await {
            Some(Ok(_)) => {}
            Some(Err(_)) => break,
            None => panic!("the stream ended without the injected error"),
        }
    }
}

#[test]
fn server_busy_counts_busy_and_its_status() {
    let ((), m) = with_recorder(|| async {
        let sim = fast_sim().await;
        sim.set_faults(on_generate(FaultKind::Busy));
        let (client, _sink, _log) = instrumented(client_for(&sim));
        generate(client).await;
        sim.shutdown().await;
    });
    assert_eq!(
        m.counter(
            SERVER_BUSY_TOTAL,
            &[("endpoint", GENERATE), ("model", CHAT_MODEL)]
        ),
        1
    );
    assert_eq!(
        m.counter(
            ERRORS_TOTAL,
            &[
                ("endpoint", GENERATE),
                ("model", CHAT_MODEL),
                ("kind", "server_busy")
            ]
        ),
        1
    );
    assert_eq!(
        m.counter(
            RESPONSES_TOTAL,
            &[
                ("endpoint", GENERATE),
                ("model", CHAT_MODEL),
                ("status", "503")
            ]
        ),
        1
    );
    assert_eq!(
        m.histogram(
            REQUEST_DURATION_SECONDS,
            &labels(GENERATE, CHAT_MODEL, "error")
        )
        .len(),
        1
    );
    assert_error_case(
        "busy",
        fast_config(),
        on_generate(FaultKind::Busy),
        |b| b,
        generate,
        "server_busy",
        Some("503"),
    );
}

#[test]
fn http_status_errors_are_counted_with_their_status() {
    let fault = FaultKind::Status {
        status: 500,
        message: None,
    };
    assert_error_case(
        "500",
        fast_config(),
        on_generate(fault),
        |b| b,
        generate,
        "http_status",
        Some("500"),
    );
}

#[test]
fn a_missing_model_is_model_not_found() {
    assert_error_case(
        "404",
        fast_config(),
        FaultPlan::none(),
        |b| b,
        |client| async move {
            client
                .generate(GenerateRequest::new("no-such-model:latest", "hi"))
                .await
                .unwrap_err();
        },
        "model_not_found",
        Some("404"),
    );
}

#[test]
fn a_mid_stream_error_line_is_stream_error_after_a_200() {
    let fault = FaultKind::ErrorLine {
        after: 2,
        message: None,
    };
    assert_error_case(
        "error line",
        fast_config(),
        on_generate(fault),
        |b| b,
        generate_stream_to_error,
        "stream_error",
        Some("200"),
    );
}

#[test]
fn a_malformed_line_is_decode() {
    let fault = FaultKind::Malformed { after: 1 };
    assert_error_case(
        "malformed",
        fast_config(),
        on_generate(fault),
        |b| b,
        generate_stream_to_error,
        "decode",
        Some("200"),
    );
}

/// A sim whose tokens come 20 ms apart, so the client has read the head and the first
/// chunks before a reset after two chunks (a reset discards data not yet read).
fn slow_token_config() -> SimConfig {
    SimConfig {
        time_scale: 0.01,
        models: vec![ModelSpec {
            tokens_per_sec: 0.5,
            ..ModelSpec::chat(CHAT_MODEL)
        }],
        ..SimConfig::default()
    }
}

#[test]
fn a_reset_mid_stream_is_truncated() {
    let fault = FaultKind::Reset { after: 2 };
    assert_error_case(
        "reset",
        slow_token_config(),
        on_generate(fault),
        |b| b,
        generate_stream_to_error,
        "truncated",
        Some("200"),
    );
}

#[test]
fn a_reset_before_the_head_is_truncated_without_a_status() {
    let fault = FaultKind::Reset { after: 0 };
    assert_error_case(
        "reset before head",
        fast_config(),
        on_generate(fault),
        |b| b,
        generate,
        "truncated",
        None,
    );
}

#[test]
fn a_connect_that_hangs_is_connect_timeout() {
    let (events, m) = with_recorder(|| async {
        // A loopback listener that never accepts, with the smallest backlog: once its
        // queue is full the kernel drops further SYNs, so the next connect hangs.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            if let Ok(Ok(s)) = tokio::time::timeout(
                Duration::from_millis(100),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                fillers.push(s);
            }
        }
        let client = Client::builder()
            .base_url(format!("http://{addr}"))
            .connect_timeout(Duration::from_millis(100))
            .max_retries(0)
            .build()
            .unwrap();
        let (client, sink, log) = instrumented(client);
        generate(client).await;
        log.flush().unwrap();
        drop((fillers, listener));
        sink.events()
    });
    assert_eq!(
        m.counter(
            ERRORS_TOTAL,
            &[
                ("endpoint", GENERATE),
                ("model", CHAT_MODEL),
                ("kind", "connect_timeout")
            ]
        ),
        1,
        "{:?}",
        m.label_sets(ERRORS_TOTAL)
    );
    assert!(m.label_sets(RESPONSES_TOTAL).is_empty());
    assert_eq!(events[0].error_type.as_deref(), Some("connect_timeout"));
}

#[test]
fn a_stalled_stream_is_read_timeout() {
    // 30 simulated seconds are 300 ms at the sim's time scale; the client waits 50 ms.
    let fault = FaultKind::Stall {
        after: 1,
        duration: Duration::from_secs(30),
    };
    assert_error_case(
        "stall",
        fast_config(),
        on_generate(fault),
        |b| b.timeout(Duration::from_millis(50)),
        generate_stream_to_error,
        "read_timeout",
        Some("200"),
    );
}

#[test]
fn a_full_request_slot_is_pool_timeout() {
    assert_error_case(
        "pool",
        fast_config(),
        FaultPlan::none(),
        |b| {
            b.max_concurrent_requests(1)
                .pool_timeout(Duration::from_millis(30))
        },
        |client| async move {
            // The open stream holds the only request slot until it is dropped.
            let held = client
                .generate_stream(GenerateRequest::new(CHAT_MODEL, "hold"))
                .await
                .unwrap();
            generate(client.clone()).await;
            drop(held);
        },
        "pool_timeout",
        Some("200"),
    );
}

#[test]
fn a_refused_connection_is_connect_without_a_response() {
    let (events, m) = with_recorder(|| async {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::builder()
            .base_url(format!("http://127.0.0.1:{port}"))
            .max_retries(0)
            .build()
            .unwrap();
        let (client, sink, log) = instrumented(client);
        generate(client).await;
        log.flush().unwrap();
        sink.events()
    });
    assert_eq!(
        m.counter(
            ERRORS_TOTAL,
            &[
                ("endpoint", GENERATE),
                ("model", CHAT_MODEL),
                ("kind", "connect")
            ]
        ),
        1
    );
    assert!(
        m.label_sets(RESPONSES_TOTAL).is_empty(),
        "no response was received"
    );
    assert_eq!(events[0].error_type.as_deref(), Some("connect"));
    assert_eq!(events[0].http_status, None);
}

#[test]
fn a_stream_dropped_half_way_is_abandoned() {
    let (events, m) = with_recorder(|| async {
        let sim = fast_sim().await;
        let (client, sink, log) = instrumented(client_for(&sim));
        let mut stream = client
            .generate_stream(GenerateRequest::new(CHAT_MODEL, "a long story"))
            .await
            .unwrap();
        for _ in 0..3 {
            let chunk = stream.next().await.unwrap().unwrap();
            assert!(!chunk.item.done);
        }
        drop(stream);
        log.flush().unwrap();
        sim.shutdown().await;
        sink.events()
    });
    let l = labels(GENERATE, CHAT_MODEL, "abandoned");
    assert_eq!(m.counter(REQUESTS_TOTAL, &l), 1);
    assert_eq!(m.histogram(REQUEST_DURATION_SECONDS, &l).len(), 1);
    assert_eq!(
        m.counter_total(REQUESTS_TOTAL),
        1,
        "abandoned and nothing else"
    );
    assert!(m.label_sets(ERRORS_TOTAL).is_empty());
    let el = [("endpoint", GENERATE), ("model", CHAT_MODEL)];
    assert_eq!(m.histogram(TIME_TO_FIRST_TOKEN_SECONDS, &el).len(), 1);
    assert_eq!(m.histogram(INTER_TOKEN_SECONDS, &el).len(), 2);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, Outcome::Abandoned);
    assert!(events[0].ttft_ms.is_some());
    assert_eq!(
        events[0].total_duration_ms, None,
        "the final chunk never came"
    );
}

#[test]
fn a_stream_dropped_right_after_its_final_chunk_is_a_success() {
    let (events, m) = with_recorder(|| async {
        let sim = fast_sim().await;
        let (client, sink, log) = instrumented(client_for(&sim));
        let mut stream = client
            .chat_stream(ChatRequest::new(CHAT_MODEL, vec![Message::user("hi")]))
            .await
            .unwrap();
        while let Some(chunk) = stream.next().await {
            if chunk.unwrap().item.done {
                break;
            }
        }
        drop(stream);
        log.flush().unwrap();
        sim.shutdown().await;
        sink.events()
    });
    assert_eq!(
        m.counter(REQUESTS_TOTAL, &labels("/api/chat", CHAT_MODEL, "success")),
        1
    );
    assert_eq!(m.counter_total(REQUESTS_TOTAL), 1);
    assert_eq!(events.len(), 1);
}

#[test]
fn a_request_future_dropped_before_the_answer_is_abandoned() {
    let (events, m) = with_recorder(|| async {
        let sim = fast_sim().await;
        // The head is held back 10 simulated seconds (100 ms); the caller gives up at 20 ms.
        sim.set_faults(on_generate(FaultKind::SlowHead {
            delay: Duration::from_secs(10),
        }));
        let (client, sink, log) = instrumented(client_for(&sim));
        let call = client.generate(GenerateRequest::new(CHAT_MODEL, "hi"));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), call)
                .await
                .is_err()
        );
        log.flush().unwrap();
        sim.shutdown().await;
        sink.events()
    });
    assert_eq!(
        m.counter(REQUESTS_TOTAL, &labels(GENERATE, CHAT_MODEL, "abandoned")),
        1
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, Outcome::Abandoned);
}

#[test]
fn model_labels_are_bounded() {
    let ((), m) = with_recorder(|| async {
        let sim = fast_sim().await;
        let config = TelemetryConfig {
            events: EventsConfig::Off,
            max_model_labels: 1,
            ..TelemetryConfig::default()
        };
        let client = InstrumentedClient::new(client_for(&sim), config).unwrap();
        for model in [CHAT_MODEL, "x:latest", "y:latest"] {
            let _ = client.generate(GenerateRequest::new(model, "hi")).await;
        }
        sim.shutdown().await;
    });
    let models: Vec<String> = m
        .label_sets(REQUESTS_TOTAL)
        .into_iter()
        .flat_map(|l| l.into_iter().filter(|(k, _)| k == "model").map(|(_, v)| v))
        .collect();
    assert_eq!(models.len(), 2, "{models:?}");
    assert!(models.contains(&CHAT_MODEL.to_owned()));
    assert!(models.contains(&OVERFLOW_MODEL_LABEL.to_owned()));
    assert_eq!(
        m.counter(
            REQUESTS_TOTAL,
            &labels(GENERATE, OVERFLOW_MODEL_LABEL, "error")
        ),
        2
    );
}

#[test]
fn prompts_are_logged_only_on_request_and_warm_start_follows_load_duration() {
    let ((cold, warm), _) = with_recorder(|| async {
        let sim = Sim::start(SimConfig {
            time_scale: 0.01,
            // 20 simulated seconds of load are 200 ms: above the 100 ms warm threshold.
            models: vec![ModelSpec {
                load_time: Duration::from_secs(20),
                ..ModelSpec::chat(CHAT_MODEL)
            }],
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let sink = common::MemorySink::default();
        let log = EventLog::to_writer(sink.clone(), 1024).unwrap();
        let config = TelemetryConfig {
            events: EventsConfig::Log(log.clone()),
            log_prompts: true,
            ..TelemetryConfig::default()
        };
        let client = InstrumentedClient::new(client_for(&sim), config).unwrap();
        for _ in 0..2 {
            client
                .generate(GenerateRequest::new(CHAT_MODEL, "secret plan"))
                .await
                .unwrap();
        }
        log.flush().unwrap();
        sim.shutdown().await;
        let events = sink.events();
        (events[0].clone(), events[1].clone())
    });
    assert_eq!(cold.prompt.as_deref(), Some("secret plan"));
    assert!(cold.model_load_ms.unwrap() >= 100.0);
    assert_eq!(cold.model_warm_start, Some(false));
    assert!(warm.model_load_ms.unwrap() < 100.0);
    assert_eq!(warm.model_warm_start, Some(true));
}

use std::future::Future;
