//! Every fault the simulator can inject maps to the right error kind, and nothing hangs.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{MODEL, builder, sim, within};
use ollama_client::openai::{ChatCompletionRequest, ChatMessage};
use ollama_client::{ChatRequest, Client, ErrorKind, GenerateRequest, Message};
use ollama_sim::{FaultKind, FaultPlan, FaultRule, ModelSpec, SimConfig, SimHandle, Trigger};

const LIMIT: Duration = Duration::from_secs(20);

async fn faulty(rule: FaultRule) -> SimHandle {
    faulty_at(rule, f64::INFINITY).await
}

/// A sim whose model streams at `tps` tokens per second, with one fault rule.
async fn faulty_at(rule: FaultRule, tps: f64) -> SimHandle {
    let model = ModelSpec {
        output_tokens: 8,
        tokens_per_sec: tps,
        ..ModelSpec::instant(MODEL)
    };
    sim(SimConfig {
        models: vec![model],
        faults: FaultPlan::none().with(rule),
        ..SimConfig::instant()
    })
    .await
}

/// Reads a generate stream to its end; returns the kinds of errors seen and the chunk count.
async fn drain_generate(c: &Client) -> Result<(usize, Option<ErrorKind>), ErrorKind> {
    let mut s = c
        .generate_stream(GenerateRequest::new(MODEL, "x"))
        .await
        .map_err(|e| e.kind())?;
    let mut n = 0;
    while let Some(item) = s.next().await {
        match item {
            Ok(_) => n += 1,
            Err(e) => {
                assert!(s.next().await.is_none(), "a stream ends after its error");
                return Ok((n, Some(e.kind())));
            }
        }
    }
    Ok((n, None))
}

/// Reads an OpenAI chat stream to its end; returns its last item, reduced to ok or error kind.
async fn last_openai_item(c: &Client) -> Option<Result<(), ErrorKind>> {
    let mut s = c
        .openai_chat_stream(ChatCompletionRequest::new(
            MODEL,
            vec![ChatMessage::user("x")],
        ))
        .await
        .unwrap();
    let mut last = None;
    while let Some(item) = s.next().await {
        last = Some(item.map(|_| ()).map_err(|e| e.kind()));
    }
    last
}

fn status(code: u16, message: Option<&str>) -> FaultRule {
    FaultRule::new(FaultKind::Status {
        status: code,
        message: message.map(str::to_owned),
    })
}

#[tokio::test]
async fn injected_statuses_keep_status_and_message() {
    let sim = faulty(status(500, Some("model runner has unexpectedly stopped"))).await;
    let c = builder(&sim).build().unwrap();
    within(LIMIT, async {
        let e = c
            .generate(GenerateRequest::new(MODEL, "x"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HttpStatus);
        assert_eq!(e.status().unwrap().as_u16(), 500);
        assert_eq!(e.message(), Some("model runner has unexpectedly stopped"));
        assert!(!e.is_retryable());
        let e = c
            .chat_stream(ChatRequest::new(MODEL, vec![Message::user("x")]))
            .await
            .unwrap_err();
        assert_eq!(e.status().unwrap().as_u16(), 500);
        // The /v1 envelope is parsed too.
        let e = c
            .openai_chat(ChatCompletionRequest::new(
                MODEL,
                vec![ChatMessage::user("x")],
            ))
            .await
            .unwrap_err();
        assert_eq!(e.status().unwrap().as_u16(), 500);
        assert_eq!(e.message(), Some("model runner has unexpectedly stopped"));
    })
    .await;
    sim.set_faults(FaultPlan::none().with(status(429, None)));
    let e = within(LIMIT, c.generate(GenerateRequest::new(MODEL, "x")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HttpStatus);
    assert!(e.is_retryable(), "429 is retryable by the caller");
}

#[tokio::test]
async fn busy_is_server_busy_and_is_retried_only_when_asked() {
    let sim = faulty(FaultRule::new(FaultKind::Busy).trigger(Trigger::Nth(1))).await;
    let c = builder(&sim).build().unwrap();
    let e = within(LIMIT, c.generate(GenerateRequest::new(MODEL, "x")))
        .await
        .unwrap_err();
    assert!(e.is_server_busy() && e.is_retryable(), "{e}");
    assert_eq!(e.kind().as_str(), "server_busy");
    assert!(e.message().unwrap().contains("server busy"));
    assert_eq!(
        sim.stats().requests_to("/api/generate"),
        1,
        "not retried by default"
    );

    let sim = faulty(FaultRule::new(FaultKind::Busy).trigger(Trigger::Nth(1))).await;
    let c = builder(&sim).retry_server_busy(true).build().unwrap();
    let r = within(LIMIT, c.generate(GenerateRequest::new(MODEL, "x")))
        .await
        .unwrap();
    assert!(r.done);
    assert_eq!(
        sim.stats().requests_to("/api/generate"),
        2,
        "one 503, one retry"
    );

    let sim = faulty(FaultRule::new(FaultKind::Busy)).await;
    let c = builder(&sim)
        .retry_server_busy(true)
        .max_retries(2)
        .build()
        .unwrap();
    let e = within(LIMIT, c.generate(GenerateRequest::new(MODEL, "x")))
        .await
        .unwrap_err();
    assert!(e.is_server_busy());
    assert_eq!(
        sim.stats().requests_to("/api/generate"),
        3,
        "first try plus max_retries"
    );
}

#[tokio::test]
async fn reset_mid_stream_is_truncated() {
    // Paced tokens, so the chunks before the reset are read before the RST arrives (an RST
    // discards data the client has not read yet).
    let sim = faulty_at(
        FaultRule::new(FaultKind::Reset { after: 3 }).endpoint("/api/generate"),
        100.0,
    )
    .await;
    let c = builder(&sim).build().unwrap();
    let (n, err) = within(LIMIT, drain_generate(&c)).await.unwrap();
    assert_eq!((n, err), (3, Some(ErrorKind::Truncated)));
    // A reset instead of an answer (not streamed): cut before the head, not retried.
    let e = within(LIMIT, c.generate(GenerateRequest::new(MODEL, "x")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Truncated, "{e}");
    assert_eq!(sim.stats().requests_to("/api/generate"), 2);
    assert_eq!(c.stats().in_flight_requests, 0);
}

#[tokio::test]
async fn reset_mid_sse_stream_is_truncated() {
    let sim = faulty_at(FaultRule::new(FaultKind::Reset { after: 2 }), 100.0).await;
    let c = builder(&sim).build().unwrap();
    within(LIMIT, async {
        let mut s = c
            .openai_chat_stream(ChatCompletionRequest::new(
                MODEL,
                vec![ChatMessage::user("x")],
            ))
            .await
            .unwrap();
        let mut kinds = Vec::new();
        while let Some(item) = s.next().await {
            kinds.push(item.map(|_| ()).map_err(|e| e.kind()));
        }
        assert_eq!(kinds, vec![Ok(()), Ok(()), Err(ErrorKind::Truncated)]);
    })
    .await;
}

#[tokio::test]
async fn error_line_mid_stream_is_stream_error() {
    let sim = faulty(FaultRule::new(FaultKind::ErrorLine {
        after: 2,
        message: Some("boom".into()),
    }))
    .await;
    let c = builder(&sim).build().unwrap();
    within(LIMIT, async {
        let mut s = c
            .chat_stream(ChatRequest::new(MODEL, vec![Message::user("x")]))
            .await
            .unwrap();
        s.next().await.unwrap().unwrap();
        s.next().await.unwrap().unwrap();
        let e = s.next().await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StreamError);
        assert_eq!(e.message(), Some("boom"));
        assert!(s.next().await.is_none());
        // Not streamed, the same fault is a 500 carrying the message.
        let e = c
            .chat(ChatRequest::new(MODEL, vec![Message::user("x")]))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.status().map(|s| s.as_u16())),
            (ErrorKind::HttpStatus, Some(500))
        );
        assert_eq!(e.message(), Some("boom"));
    })
    .await;
}

#[tokio::test]
async fn error_mid_sse_stream_ends_without_done_and_is_truncated() {
    // Ollama's /v1 layer turns a mid-stream error into an empty chunk and no [DONE].
    let sim = faulty(FaultRule::new(FaultKind::ErrorLine {
        after: 2,
        message: None,
    }))
    .await;
    let c = builder(&sim).build().unwrap();
    within(LIMIT, async {
        assert_eq!(last_openai_item(&c).await, Some(Err(ErrorKind::Truncated)));
    })
    .await;
}

#[tokio::test]
async fn malformed_line_is_decode() {
    let sim = faulty(FaultRule::new(FaultKind::Malformed { after: 2 })).await;
    let c = builder(&sim).build().unwrap();
    within(LIMIT, async {
        assert_eq!(
            drain_generate(&c).await.unwrap(),
            (2, Some(ErrorKind::Decode))
        );
        let e = c
            .generate(GenerateRequest::new(MODEL, "x"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        assert_eq!(last_openai_item(&c).await, Some(Err(ErrorKind::Decode)));
    })
    .await;
}

#[tokio::test]
async fn stall_longer_than_timeout_is_a_read_timeout() {
    let stall = FaultKind::Stall {
        after: 2,
        duration: Duration::from_secs(30),
    };
    let sim = faulty(FaultRule::new(stall)).await;
    let c = builder(&sim)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    within(LIMIT, async {
        let (n, err) = drain_generate(&c).await.unwrap();
        assert_eq!((n, err), (2, Some(ErrorKind::ReadTimeout)));
        let e = c
            .generate(GenerateRequest::new(MODEL, "x"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ReadTimeout);
        assert!(e.to_string().contains("response head"), "{e}");
    })
    .await;
    assert_eq!(c.stats().in_flight_requests, 0);
}

#[tokio::test]
async fn short_stall_within_timeout_is_fine() {
    let stall = FaultKind::Stall {
        after: 2,
        duration: Duration::from_millis(200),
    };
    let sim = faulty(FaultRule::new(stall)).await;
    let c = builder(&sim)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (n, err) = within(LIMIT, drain_generate(&c)).await.unwrap();
    assert_eq!((n, err), (9, None));
}

#[tokio::test]
async fn slow_head_is_a_read_timeout_naming_the_phase() {
    let sim = faulty(FaultRule::new(FaultKind::SlowHead {
        delay: Duration::from_secs(30),
    }))
    .await;
    let c = builder(&sim)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    within(LIMIT, async {
        let e = c
            .chat_stream(ChatRequest::new(MODEL, vec![Message::user("x")]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ReadTimeout);
        assert!(e.is_timeout() && !e.is_retryable());
        assert!(e.to_string().contains("response head"), "{e}");
    })
    .await;
    // The health check has its own, shorter bound.
    let c = builder(&sim)
        .health_check_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let e = within(LIMIT, c.health()).await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
}

#[tokio::test]
async fn refused_connection_is_connect_and_retried_with_backoff() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = Client::builder()
        .base_url(format!("http://{addr}"))
        .max_retries(2)
        .retry_delay(Duration::from_millis(20))
        .verify_on_init(false)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let e = within(LIMIT, c.version()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(e.is_connect() && e.is_retryable());
    assert!(
        started.elapsed() >= Duration::from_millis(60),
        "backoff 20 ms then 40 ms"
    );
    assert_eq!(c.stats().requests_total, 3, "first try plus two retries");
    let e = within(LIMIT, c.verify()).await.unwrap_err();
    assert!(e.is_connect());
    let e = within(
        LIMIT,
        Client::builder()
            .base_url(format!("http://{addr}"))
            .retry_delay(Duration::from_millis(1))
            .connect(),
    )
    .await
    .unwrap_err();
    assert!(e.is_connect(), "connect() verifies by default: {e}");
}

#[tokio::test]
async fn unknown_route_is_plain_http_status() {
    let sim = faulty(FaultRule::new(FaultKind::Busy).endpoint("/nowhere")).await;
    let base = sim.base_url();
    let c = builder(&sim)
        .base_url(format!("{base}/prefix"))
        .build()
        .unwrap();
    let e = within(LIMIT, c.version()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HttpStatus);
    assert_eq!(e.status().unwrap().as_u16(), 404);
    assert!(!e.is_model_not_found());
    assert_eq!(e.message(), Some("404 page not found"));
}

#[tokio::test]
async fn a_connect_that_hangs_is_connect_timeout() {
    // A listener that never accepts, with its accept queue full: the kernel drops further
    // SYNs, so a new connect hangs (on loopback, without any other host).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let c = Client::builder()
        .base_url(format!("http://{addr}"))
        .connect_timeout(Duration::from_millis(200))
        .max_retries(1)
        .retry_delay(Duration::from_millis(10))
        .verify_on_init(false)
        .build()
        .unwrap();
    let e = within(LIMIT, c.version()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectTimeout, "{e}");
    assert!(e.is_connect() && e.is_timeout() && e.is_retryable());
    assert!(e.to_string().contains("connecting"), "{e}");
    assert_eq!(
        c.stats().requests_total,
        2,
        "a connect timeout is retried: nothing was sent"
    );
    assert_eq!(c.stats().open_connections, 0);
    drop((listener, fillers));
}
