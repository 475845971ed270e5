//! Scheduler semantics of `ollama-api.md` section 4: FIFO slots, 503 only for loads, one
//! load at a time, eviction, keep-alive, cold versus warm `load_duration`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Conn, eventually, post, ps_names, quick, start_with};
use ollama_sim::{KeepAlive, ModelSpec};
use serde_json::Value;

/// A model whose answers take about `ms` milliseconds of wall time (8 tokens).
fn paced(name: &str, ms: u64) -> ModelSpec {
    ModelSpec {
        tokens_per_sec: 8000.0 / ms as f64,
        ..quick(name)
    }
}

fn loading(name: &str, load_ms: u64) -> ModelSpec {
    ModelSpec {
        load_time: Duration::from_millis(load_ms),
        ..quick(name)
    }
}

#[tokio::test]
async fn warm_model_serves_fifo_without_503() {
    let sim = start_with(vec![paced("m", 60)], |c| {
        c.num_parallel = 1;
        c.max_queue = 1;
    })
    .await;
    assert_eq!(
        post(&sim, "/api/generate", r#"{"model":"m"}"#).await.json()["done_reason"],
        "load"
    );

    // Request 0 holds the only slot (its head has arrived, so it is generating).
    let mut first = Conn::connect(sim.addr()).await;
    first
        .send(
            "POST",
            "/api/generate",
            Some(r#"{"model":"m","prompt":"first"}"#),
        )
        .await;
    let head = first.read_head().await.unwrap();
    assert_eq!(head.status, 200);

    // Requests 1..=3 queue on the slot in a known order.
    let mut handles = Vec::new();
    for i in 1..=3u64 {
        let addr = sim.addr();
        handles.push(tokio::spawn(async move {
            let mut c = Conn::connect(addr).await;
            c.send(
                "POST",
                "/api/generate",
                Some(r#"{"model":"m","prompt":"next","stream":false}"#),
            )
            .await;
            let head = c.read_head().await.unwrap();
            let (body, _) = c.read_body(&head).await.unwrap();
            (
                head.status,
                serde_json::from_slice::<Value>(&body).unwrap(),
                Instant::now(),
            )
        }));
        eventually(
            Duration::from_secs(5),
            "request queued on the slot",
            || async { sim.stats().waiting_requests == i },
        )
        .await;
    }
    let (_, _) = first.read_body(&head).await.unwrap();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    for (status, v, _) in &results {
        assert_eq!(*status, 200, "{v}");
    }
    for pair in results.windows(2) {
        assert!(pair[0].2 <= pair[1].2, "served in FIFO order");
        let t0 = pair[0].1["total_duration"].as_u64().unwrap();
        let t1 = pair[1].1["total_duration"].as_u64().unwrap();
        assert!(t1 > t0, "later requests wait longer: {t0} then {t1}");
    }
    for (_, v, _) in &results {
        let load = v["load_duration"].as_u64().unwrap();
        let total = v["total_duration"].as_u64().unwrap();
        assert!(
            load * 4 < total,
            "slot wait shows in total_duration, not load_duration: {v}"
        );
    }

    // A burst far beyond max_queue on a warm model: still no 503.
    let mut burst = Vec::new();
    for _ in 0..8 {
        let addr = sim.addr();
        burst.push(tokio::spawn(async move {
            Conn::connect(addr)
                .await
                .request(
                    "POST",
                    "/api/generate",
                    Some(
                        r#"{"model":"m","prompt":"x","stream":false,"options":{"num_predict":1}}"#,
                    ),
                )
                .await
                .status()
        }));
    }
    for b in burst {
        assert_eq!(b.await.unwrap(), 200);
    }
    assert_eq!(sim.stats().queue_rejections, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn queue_full_answers_503_only_for_loads() {
    let sim = start_with(vec![loading("a", 400), loading("b", 400)], |c| {
        c.max_queue = 1;
    })
    .await;
    // `a` starts loading and holds the single loader.
    let addr = sim.addr();
    let a = tokio::spawn(async move {
        Conn::connect(addr)
            .await
            .request(
                "POST",
                "/api/generate",
                Some(r#"{"model":"a","prompt":"x","stream":false}"#),
            )
            .await
    });
    eventually(Duration::from_secs(5), "a is loading", || async {
        ps_names(&sim).await == ["a:latest"]
    })
    .await;
    // A burst for cold `b`: one request fits the queue, the rest are refused.
    let mut burst = Vec::new();
    for _ in 0..5 {
        let addr = sim.addr();
        burst.push(tokio::spawn(async move {
            Conn::connect(addr)
                .await
                .request(
                    "POST",
                    "/api/generate",
                    Some(r#"{"model":"b","prompt":"x","stream":false}"#),
                )
                .await
        }));
    }
    let mut ok = 0;
    let mut busy = 0;
    for b in burst {
        let r = b.await.unwrap();
        match r.status() {
            200 => ok += 1,
            503 => {
                busy += 1;
                assert_eq!(r.head.content_type(), "application/json; charset=utf-8");
                assert_eq!(
                    r.text(),
                    r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#
                );
            }
            other => panic!("unexpected status {other}: {}", r.text()),
        }
    }
    assert_eq!((ok, busy), (1, 4));
    assert_eq!(a.await.unwrap().status(), 200);
    let s = sim.stats();
    assert_eq!(s.queue_rejections, 4);
    assert_eq!(s.model_loads, 2, "one load per model, one at a time");
    sim.shutdown().await;
}

#[tokio::test]
async fn cold_load_duration_is_large_and_warm_is_tiny() {
    let sim = start_with(vec![loading("m", 300)], |_| {}).await;
    // Two requests during one cold load share it.
    let addr = sim.addr();
    let second = tokio::spawn(async move {
        Conn::connect(addr)
            .await
            .request(
                "POST",
                "/api/chat",
                Some(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":false}"#),
            )
            .await
            .json()
    });
    let cold = post(
        &sim,
        "/api/generate",
        r#"{"model":"m","prompt":"x","stream":false}"#,
    )
    .await
    .json();
    let shared = second.await.unwrap();
    let cold_load = cold["load_duration"].as_u64().unwrap();
    assert!(cold_load >= 250_000_000, "cold load_duration {cold_load}");
    assert!(shared["load_duration"].as_u64().unwrap() >= 100_000_000);
    assert_eq!(sim.stats().model_loads, 1);

    let warm = post(
        &sim,
        "/api/generate",
        r#"{"model":"m","prompt":"x","stream":false}"#,
    )
    .await
    .json();
    let warm_load = warm["load_duration"].as_u64().unwrap();
    assert!(
        warm_load * 10 < cold_load,
        "warm {warm_load} vs cold {cold_load}"
    );
    assert!(warm["total_duration"].as_u64().unwrap() < cold["total_duration"].as_u64().unwrap());
    sim.shutdown().await;
}

fn expires_in(ps: &Value, name: &str) -> Duration {
    let m = ps["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {ps}"));
    let at = chrono::DateTime::parse_from_rfc3339(m["expires_at"].as_str().unwrap()).unwrap();
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO)
}

#[tokio::test]
async fn keep_alive_expires_idle_models() {
    // Simulated 2 s default keep-alive at 1/20 speed: 100 ms.
    let sim = start_with(vec![quick("a"), quick("b")], |c| {
        c.keep_alive = KeepAlive::For(Duration::from_secs(2));
        c.time_scale = 0.05;
    })
    .await;
    let r = post(
        &sim,
        "/api/generate",
        r#"{"model":"a","prompt":"x","stream":false,"keep_alive":-1}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post(
        &sim,
        "/api/generate",
        r#"{"model":"b","prompt":"x","stream":false}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    let ps = common::get(&sim, "/api/ps").await.json();
    assert_eq!(ps["models"][0]["name"], "a:latest", "longest expiry first");
    assert!(expires_in(&ps, "a:latest") > Duration::from_secs(200 * 365 * 24 * 3600));
    assert!(expires_in(&ps, "b:latest") < Duration::from_secs(1));
    assert!(ps["models"][1]["size_vram"].as_u64().unwrap() > 0);
    eventually(Duration::from_secs(5), "b expires, a stays", || async {
        ps_names(&sim).await == ["a:latest"]
    })
    .await;

    // A request that sets keep_alive overrides the runner's session; one that does not
    // leaves it alone.
    post(
        &sim,
        "/api/generate",
        r#"{"model":"b","prompt":"x","stream":false,"keep_alive":"1h"}"#,
    )
    .await;
    post(
        &sim,
        "/api/generate",
        r#"{"model":"b","prompt":"x","stream":false}"#,
    )
    .await;
    let ps = common::get(&sim, "/api/ps").await.json();
    let left = expires_in(&ps, "b:latest");
    assert!(
        left > Duration::from_secs(150) && left <= Duration::from_secs(180),
        "{left:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn max_loaded_models_evicts_idle_then_waits_for_busy() {
    let sim = start_with(vec![paced("a", 300), quick("b"), quick("c")], |c| {
        c.max_loaded_models = 1;
    })
    .await;
    post(&sim, "/api/generate", r#"{"model":"b"}"#).await;
    assert_eq!(ps_names(&sim).await, ["b:latest"]);
    post(&sim, "/api/generate", r#"{"model":"c"}"#).await;
    assert_eq!(ps_names(&sim).await, ["c:latest"], "idle b evicted");

    // `a` is busy streaming; `c` must wait for it to finish before it can load.
    let mut a = Conn::connect(sim.addr()).await;
    a.send(
        "POST",
        "/api/generate",
        Some(r#"{"model":"a","prompt":"x"}"#),
    )
    .await;
    let head = a.read_head().await.unwrap();
    let addr = sim.addr();
    let c = tokio::spawn(async move {
        let r = Conn::connect(addr)
            .await
            .request(
                "POST",
                "/api/generate",
                Some(r#"{"model":"c","prompt":"x","stream":false}"#),
            )
            .await;
        (r, Instant::now())
    });
    let (body, _) = a.read_body(&head).await.unwrap();
    let a_done = Instant::now();
    assert!(String::from_utf8(body).unwrap().contains("\"done\":true"));
    let (r, c_done) = c.await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(c_done >= a_done, "c was served only after a drained");
    assert_eq!(ps_names(&sim).await, ["c:latest"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn keep_alive_zero_unloads_after_in_flight_work() {
    let sim = start_with(vec![paced("m", 200)], |_| {}).await;
    let mut busy = Conn::connect(sim.addr()).await;
    busy.send(
        "POST",
        "/api/generate",
        Some(r#"{"model":"m","prompt":"x"}"#),
    )
    .await;
    let head = busy.read_head().await.unwrap();
    let v = post(&sim, "/api/generate", r#"{"model":"m","keep_alive":0}"#)
        .await
        .json();
    assert_eq!(v["done_reason"], "unload");
    assert_eq!(
        ps_names(&sim).await,
        ["m:latest"],
        "still busy, still loaded"
    );
    let (body, _) = busy.read_body(&head).await.unwrap();
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("\"done_reason\":\"stop\"")
    );
    eventually(Duration::from_secs(5), "unloaded once idle", || async {
        ps_names(&sim).await.is_empty()
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn streamed_head_waits_for_the_first_token() {
    let sim = start_with(vec![loading("m", 300)], |_| {}).await;
    let started = Instant::now();
    let mut c = Conn::connect(sim.addr()).await;
    c.send(
        "POST",
        "/api/generate",
        Some(r#"{"model":"m","prompt":"x"}"#),
    )
    .await;
    let head = c.read_head().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "head left before the load finished"
    );
    assert_eq!(head.status, 200);
    let first = c.read_chunk().await.unwrap().unwrap();
    let v: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(v["done"], false);
    sim.shutdown().await;
}

#[tokio::test]
async fn client_disconnect_frees_the_slot() {
    let sim = start_with(vec![paced("m", 2000)], |c| c.num_parallel = 1).await;
    let mut c = Conn::connect(sim.addr()).await;
    c.send(
        "POST",
        "/api/generate",
        Some(r#"{"model":"m","prompt":"x"}"#),
    )
    .await;
    let _ = c.read_head().await.unwrap();
    drop(c);
    // With the slot freed, a second request does not wait for the 2 s answer.
    let started = Instant::now();
    let r = post(
        &sim,
        "/api/generate",
        r#"{"model":"m","prompt":"x","stream":false,"options":{"num_predict":1}}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn client_leaving_mid_load_aborts_the_load() {
    let sim = start_with(vec![loading("m", 5000)], |_| {}).await;
    let mut c = Conn::connect(sim.addr()).await;
    c.send(
        "POST",
        "/api/generate",
        Some(r#"{"model":"m","prompt":"x","stream":false}"#),
    )
    .await;
    eventually(Duration::from_secs(5), "m is loading", || async {
        ps_names(&sim).await == ["m:latest"]
    })
    .await;
    drop(c);
    eventually(
        Duration::from_secs(3),
        "the load is rolled back",
        || async { ps_names(&sim).await.is_empty() },
    )
    .await;
    assert_eq!(sim.stats().model_loads, 0);
    sim.shutdown().await;
}
