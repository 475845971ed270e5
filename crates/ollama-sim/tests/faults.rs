//! Each injected fault, seen from the wire.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Conn, post, quick, start_with};
use ollama_sim::{FaultKind, FaultPlan, FaultRule, SimConfig, Trigger};
use serde_json::{Value, json};

async fn sim_with(rule: FaultRule) -> ollama_sim::SimHandle {
    start_with(vec![quick("m")], |c: &mut SimConfig| {
        c.faults = FaultPlan::none().with(rule);
    })
    .await
}

const STREAM: &str = r#"{"model":"m","prompt":"x"}"#;
const WHOLE: &str = r#"{"model":"m","prompt":"x","stream":false}"#;

#[tokio::test]
async fn status_fault_on_the_nth_request_only() {
    let sim =
        sim_with(FaultRule::parse("kind=status,status=500,nth=2,endpoint=/api/generate").unwrap())
            .await;
    assert_eq!(
        post(&sim, "/api/chat", r#"{"model":"m","messages":[]}"#)
            .await
            .status(),
        200
    );
    assert_eq!(post(&sim, "/api/generate", WHOLE).await.status(), 200);
    let r = post(&sim, "/api/generate", STREAM).await;
    assert_eq!(r.status(), 500);
    assert_eq!(r.head.content_type(), "application/json; charset=utf-8");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("model runner has unexpectedly stopped")
    );
    assert_eq!(post(&sim, "/api/generate", WHOLE).await.status(), 200);
    assert_eq!(sim.stats().faults_injected, 1);

    // /v1 gets the OpenAI envelope.
    sim.set_faults(
        FaultPlan::none()
            .with(FaultRule::parse("kind=status,status=429,message=slow down, please").unwrap()),
    );
    let r = post(
        &sim,
        "/v1/chat/completions",
        r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json(),
        json!({"error":{"message":"slow down, please","type":"api_error","param":null,"code":null}})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn busy_fault_uses_the_exact_text() {
    let sim = sim_with(FaultRule::new(FaultKind::Busy)).await;
    let r = post(&sim, "/api/generate", WHOLE).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.text(),
        r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn reset_mid_stream_after_k_chunks() {
    let sim = sim_with(FaultRule::new(FaultKind::Reset { after: 2 })).await;
    let mut c = Conn::connect(sim.addr()).await;
    c.send("POST", "/api/generate", Some(STREAM)).await;
    let head = c.read_head().await.unwrap();
    assert_eq!(head.status, 200);
    for _ in 0..2 {
        let chunk = c.read_chunk().await.unwrap().unwrap();
        let v: Value = serde_json::from_slice(&chunk).unwrap();
        assert_eq!(v["done"], false);
    }
    let err = c.read_chunk().await.expect_err("the stream must break");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");

    // Non-streamed: the connection is reset instead of answered.
    let mut c = Conn::connect(sim.addr()).await;
    c.send("POST", "/api/generate", Some(WHOLE)).await;
    let err = c.read_head().await.expect_err("no answer");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn stall_holds_bytes_back() {
    let sim = sim_with(FaultRule::new(FaultKind::Stall {
        after: 1,
        duration: Duration::from_millis(300),
    }))
    .await;
    let mut c = Conn::connect(sim.addr()).await;
    c.send("POST", "/api/generate", Some(STREAM)).await;
    let head = c.read_head().await.unwrap();
    c.read_chunk().await.unwrap().unwrap();
    let before = Instant::now();
    c.read_chunk().await.unwrap().unwrap();
    assert!(
        before.elapsed() >= Duration::from_millis(250),
        "{:?}",
        before.elapsed()
    );
    let (rest, _) = c.read_body(&head).await.unwrap();
    assert!(
        String::from_utf8(rest).unwrap().contains("\"done\":true"),
        "stream resumes"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_line_then_the_stream_goes_on() {
    let sim = sim_with(FaultRule::new(FaultKind::Malformed { after: 1 })).await;
    let r = post(
        &sim,
        "/api/chat",
        r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    let text = r.text();
    let lines: Vec<&str> = text.trim_end().split('\n').collect();
    assert!(serde_json::from_str::<Value>(lines[0]).is_ok());
    assert!(
        serde_json::from_str::<Value>(lines[1]).is_err(),
        "line 2 is malformed: {}",
        lines[1]
    );
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["done"], true);

    // Non-streamed bodies are cut short.
    let r = post(&sim, "/api/generate", WHOLE).await;
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn error_line_ends_the_stream_without_done() {
    let sim = sim_with(FaultRule::new(FaultKind::ErrorLine {
        after: 3,
        message: None,
    }))
    .await;
    let r = post(&sim, "/api/generate", STREAM).await;
    assert_eq!(r.status(), 200);
    let lines = r.lines();
    assert_eq!(lines.len(), 4);
    assert!(lines[..3].iter().all(|l| l["done"] == false));
    assert_eq!(
        lines[3],
        json!({"error":"an error was encountered while running the model"})
    );

    // Before the first chunk, the error keeps a real status.
    sim.set_faults(FaultPlan::none().with(FaultRule::new(FaultKind::ErrorLine {
        after: 0,
        message: Some("model is overloaded".into()),
    })));
    let r = post(&sim, "/api/generate", STREAM).await;
    assert_eq!(r.status(), 500);
    assert_eq!(r.head.content_type(), "application/json");
    assert_eq!(r.text(), r#"{"error":"model is overloaded"}"#);

    // On /v1 streams the error becomes an empty chunk and [DONE] never comes.
    sim.set_faults(FaultPlan::none().with(FaultRule::new(FaultKind::ErrorLine {
        after: 1,
        message: None,
    })));
    let body = post(
        &sim,
        "/v1/chat/completions",
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#,
    )
    .await
    .text();
    assert!(!body.contains("[DONE]"), "{body}");
    assert!(
        body.ends_with("\"delta\":{},\"finish_reason\":null}]}\n\n"),
        "{body}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_head_delays_the_response() {
    let sim = sim_with(
        FaultRule::new(FaultKind::SlowHead {
            delay: Duration::from_millis(300),
        })
        .endpoint("/api/tags"),
    )
    .await;
    let started = Instant::now();
    assert_eq!(common::get(&sim, "/api/tags").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(250));
    let started = Instant::now();
    assert_eq!(common::get(&sim, "/api/version").await.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "other endpoints unaffected"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn rates_are_seeded_and_faults_change_at_run_time() {
    let plan = FaultPlan {
        seed: 42,
        rules: vec![FaultRule::new(FaultKind::Busy).trigger(Trigger::Rate(0.5))],
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = start_with(vec![quick("m")], |c| c.faults = plan.clone()).await;
        let mut conn = Conn::connect(sim.addr()).await;
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(conn.request("GET", "/api/version", None).await.status());
        }
        sim.shutdown().await;
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1], "same seed, same faults");
    let busy = runs[0].iter().filter(|s| **s == 503).count();
    assert!((8..=32).contains(&busy), "rate 0.5 gave {busy}/40");

    let sim = start_with(vec![quick("m")], |_| {}).await;
    assert_eq!(post(&sim, "/api/generate", WHOLE).await.status(), 200);
    sim.set_faults(FaultPlan::none().with(FaultRule::new(FaultKind::Busy)));
    assert_eq!(post(&sim, "/api/generate", WHOLE).await.status(), 503);
    sim.set_faults(FaultPlan::none());
    assert_eq!(post(&sim, "/api/generate", WHOLE).await.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn stream_faults_apply_to_whole_answers_of_other_endpoints() {
    let sim = sim_with(FaultRule::new(FaultKind::Reset { after: 1 }).endpoint("/api/tags")).await;
    let mut c = Conn::connect(sim.addr()).await;
    c.send("GET", "/api/tags", None).await;
    let err = c.read_head().await.expect_err("reset instead of an answer");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");

    sim.set_faults(
        FaultPlan::none().with(
            FaultRule::new(FaultKind::ErrorLine {
                after: 1,
                message: None,
            })
            .endpoint("/api/show"),
        ),
    );
    let r = post(&sim, "/api/show", r#"{"model":"m"}"#).await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json(),
        json!({"error":"an error was encountered while running the model"})
    );

    sim.set_faults(
        FaultPlan::none()
            .with(FaultRule::new(FaultKind::Malformed { after: 1 }).endpoint("/v1/models")),
    );
    let r = common::get(&sim, "/v1/models").await;
    assert_eq!(r.status(), 200);
    assert!(
        serde_json::from_slice::<Value>(&r.body).is_err(),
        "cut body"
    );
    sim.shutdown().await;
}
