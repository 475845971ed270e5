//! The numbers a run reports match what the simulated model dictates.
//!
//! Tolerances: the simulator sleeps on tokio timers (about 1 ms granularity) and runs on
//! the same two cores as the load generator, so times are checked within ranges that
//! allow for that overshoot (typically +-25 %), never exactly.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{config, model, sim};
use ollama_loadtest::{Endpoint, Mode, Stop, run};
use ollama_sim::FaultPlan;

fn within(name: &str, value: f64, low: f64, high: f64) {
    assert!(
        (low..=high).contains(&value),
        "{name} = {value}, expected {low}..={high}"
    );
}

/// 20 tokens at 100 tok/s, time scale 0.5: 200 real tokens/s, 100 ms per answer, a
/// token every 5 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_metrics_follow_the_model() {
    let sim = sim(vec![model("m", 100.0, 20)], 1, 0.5, FaultPlan::none()).await;
    let mut c = config(&sim, "m");
    c.workload.stream = true;
    c.mode = Mode::Closed {
        workers: 1,
        delay: Duration::ZERO,
    };
    c.stop = Stop::Requests(20);
    let r = run(c).await.unwrap();
    sim.shutdown().await;

    assert_eq!(r.summary.total_requests, 20);
    assert_eq!(r.summary.successes, 20);
    let m = &r.metrics;
    let out = m.output_tokens.as_ref().unwrap();
    assert!(
        (out.min - 20.0).abs() < 1e-9 && (out.max - 20.0).abs() < 1e-9,
        "{out:?}"
    );
    within("e2e p50", m.e2e_ms.as_ref().unwrap().p50, 90.0, 140.0);
    // The first token comes after one token time; nothing is queued with one worker.
    within("ttft p50", m.ttft_ms.as_ref().unwrap().p50, 2.0, 25.0);
    within("ttfc p50", m.ttfc_ms.as_ref().unwrap().p50, 2.0, 25.0);
    within("itl p50", m.itl_ms.as_ref().unwrap().p50, 4.0, 7.5);
    within("tpot p50", m.tpot_ms.as_ref().unwrap().p50, 4.0, 7.5);
    // Server-reported speed: eval_count / eval_duration.
    within(
        "tokens/s p50",
        m.tokens_per_second.as_ref().unwrap().p50,
        140.0,
        210.0,
    );
    within("load p99", m.load_ms.as_ref().unwrap().p99, 0.0, 20.0);
    within(
        "queue wait p50",
        m.queue_wait_ms.as_ref().unwrap().p50,
        0.0,
        15.0,
    );
    // Percentiles are ordered and bounded by the extremes.
    let e = m.e2e_ms.as_ref().unwrap();
    assert!(
        e.min <= e.p50 && e.p50 <= e.p95 && e.p95 <= e.p99 && e.p99 <= e.max,
        "{e:?}"
    );
    assert_eq!(r.summary.latency_ms, *e);
    assert!(r.histograms.contains_key("ttft"));
    assert_eq!(r.histogram("e2e").unwrap().unwrap().len(), 20);
}

/// One slot, four closed-loop workers, 100 ms answers: each request waits for the three
/// ahead of it, so the server's in-slot wait is about 300 ms and end-to-end about 400 ms,
/// while the client-side queue estimate stays near zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_behind_num_parallel_shows_in_the_server_wait() {
    let sim = sim(vec![model("m", 200.0, 20)], 1, 1.0, FaultPlan::none()).await;
    let mut c = config(&sim, "m");
    c.mode = Mode::Closed {
        workers: 4,
        delay: Duration::ZERO,
    };
    c.stop = Stop::Requests(24);
    let r = run(c).await.unwrap();
    sim.shutdown().await;

    let m = &r.metrics;
    within("e2e p50", m.e2e_ms.as_ref().unwrap().p50, 330.0, 560.0);
    within(
        "server wait p50",
        m.server_wait_ms.as_ref().unwrap().p50,
        220.0,
        450.0,
    );
    within(
        "queue wait p50",
        m.queue_wait_ms.as_ref().unwrap().p50,
        0.0,
        20.0,
    );
    within("throughput", r.summary.requests_per_second, 6.5, 10.5);
    assert_eq!(r.summary.peak_in_flight, 4);
}

/// Open loop above capacity with a one-request in-flight cap: requests cannot go out on
/// time, so latency from the intended send time grows with the backlog while latency
/// from the actual send stays at the service time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrected_and_uncorrected_latency_diverge_when_saturated() {
    // 10 tokens at 200 tok/s: 50 ms per request, capacity 20/s; asked 40/s.
    let sim = sim(vec![model("m", 200.0, 10)], 1, 1.0, FaultPlan::none()).await;
    let mut c = config(&sim, "m");
    c.mode = Mode::Open {
        rate: 40.0,
        arrival: ollama_loadtest::Arrival::Constant,
        max_in_flight: 1,
    };
    c.stop = Stop::Requests(40);
    let r = run(c).await.unwrap();
    sim.shutdown().await;

    assert_eq!(r.summary.successes, 40);
    let corrected = r.metrics.e2e_ms.as_ref().unwrap();
    let uncorrected = r.metrics.e2e_uncorrected_ms.as_ref().unwrap();
    within("uncorrected p50", uncorrected.p50, 40.0, 90.0);
    // The last request is due at 975 ms but can only start after 39 x 50 ms.
    within("corrected max", corrected.max, 800.0, 2500.0);
    assert!(
        corrected.p99 > 5.0 * uncorrected.p99,
        "{corrected:?} vs {uncorrected:?}"
    );
    let o = r.open_loop.as_ref().unwrap();
    assert!(o.max_in_flight_hits >= 30, "{o:?}");
    assert_eq!(r.summary.latency_uncorrected_ms.as_ref(), Some(uncorrected));
    // The schedule lag includes the wait for the cap: it is large too.
    assert!(o.schedule_lag_ms.as_ref().unwrap().max > 500.0, "{o:?}");
}

/// Open loop below capacity: the dispatcher keeps the asked rate and its lag is small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_the_asked_rate() {
    let sim = sim(
        vec![ollama_sim::ModelSpec::instant("m")],
        8,
        1.0,
        FaultPlan::none(),
    )
    .await;
    let mut c = config(&sim, "m");
    c.mode = Mode::Open {
        rate: 200.0,
        arrival: ollama_loadtest::Arrival::Constant,
        max_in_flight: 1000,
    };
    c.stop = Stop::Requests(400);
    let r = run(c).await.unwrap();
    let o = r.open_loop.clone().unwrap();
    assert_eq!(o.sent, 400);
    within("achieved rate", o.achieved_rate, 190.0, 210.0);
    within(
        "schedule lag p50",
        o.schedule_lag_ms.as_ref().unwrap().p50,
        0.0,
        5.0,
    );
    within(
        "schedule lag p99",
        o.schedule_lag_ms.as_ref().unwrap().p99,
        0.0,
        25.0,
    );
    within("window", r.summary.test_duration_seconds, 1.9, 2.6);
    assert_eq!(o.max_in_flight_hits, 0);

    // Poisson arrivals over a fixed duration: about rate x duration requests.
    let mut c = config(&sim, "m");
    c.mode = Mode::Open {
        rate: 100.0,
        arrival: ollama_loadtest::Arrival::Poisson,
        max_in_flight: 1000,
    };
    c.stop = Stop::Duration(Duration::from_secs(2));
    c.seed = 42;
    let r = run(c).await.unwrap();
    sim.shutdown().await;
    let o = r.open_loop.unwrap();
    within("poisson sent", o.sent as f64, 150.0, 250.0);
    assert_eq!(r.summary.total_requests, o.sent);
}

/// Every endpoint is measured, with token counts from the server (OpenAI: usage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_is_measured() {
    let mut models = vec![model("m", 400.0, 12)];
    models.push(ollama_sim::ModelSpec::embedding("e", 16));
    let sim = sim(models, 2, 1.0, FaultPlan::none()).await;
    for (endpoint, stream) in [
        (Endpoint::Generate, false),
        (Endpoint::Generate, true),
        (Endpoint::Chat, false),
        (Endpoint::Chat, true),
        (Endpoint::OpenAiChat, false),
        (Endpoint::OpenAiChat, true),
        (Endpoint::Embed, false),
    ] {
        let name = if endpoint == Endpoint::Embed {
            "e"
        } else {
            "m"
        };
        let mut c = config(&sim, name);
        c.workload.endpoint = endpoint;
        c.workload.stream = stream;
        c.mode = Mode::Closed {
            workers: 2,
            delay: Duration::ZERO,
        };
        c.stop = Stop::Requests(6);
        let r = run(c).await.unwrap();
        let label = format!("{endpoint:?} stream={stream}");
        assert_eq!(r.summary.successes, 6, "{label}: {:?}", r.summary.errors);
        assert_eq!(r.config.endpoint, endpoint.path());
        assert!(r.metrics.prompt_tokens.is_some(), "{label}");
        if endpoint == Endpoint::Embed {
            assert!(r.metrics.output_tokens.is_none(), "{label}");
        } else {
            let out = r.metrics.output_tokens.as_ref().unwrap();
            assert!((out.p50 - 12.0).abs() < 1e-9, "{label}: {out:?}");
            assert!(r.metrics.tokens_per_second.is_some(), "{label}");
        }
        assert_eq!(r.metrics.ttft_ms.is_some(), stream, "{label}");
        let native = endpoint != Endpoint::OpenAiChat;
        assert_eq!(r.metrics.server_total_ms.is_some(), native, "{label}");
    }
    sim.shutdown().await;
}

/// A model mix honours its weights, and a cold model seen mid-run is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_mix_and_cold_loads() {
    let mut cold = model("cold", 400.0, 4);
    cold.load_time = Duration::from_millis(300);
    let sim = sim(
        vec![model("warm", 400.0, 4), cold],
        2,
        1.0,
        FaultPlan::none(),
    )
    .await;
    let mut c = config(&sim, "warm");
    c.workload.models = vec!["warm=3".parse().unwrap(), "cold=1".parse().unwrap()];
    c.mode = Mode::Closed {
        workers: 2,
        delay: Duration::ZERO,
    };
    c.stop = Stop::Requests(40);
    let r = run(c).await.unwrap();
    sim.shutdown().await;
    assert_eq!(r.models["warm"].requests, 30);
    assert_eq!(r.models["cold"].requests, 10);
    assert!(r.summary.cold_loads >= 1, "{:?}", r.summary);
    assert!(r.models["cold"].cold_loads >= 1);
    assert_eq!(r.models["warm"].cold_loads, 0);
    assert!(r.metrics.load_ms.as_ref().unwrap().max >= 250.0);
}

/// Goodput follows the SLOs, and two shards of one test, written and read back, merge
/// into exactly the histogram of their union.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goodput_and_lossless_shard_merge() {
    // 20 tokens at 200 tok/s: about 100 ms per request.
    let sim = sim(vec![model("m", 200.0, 20)], 4, 1.0, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut shards = Vec::new();
    for (i, slo) in ["e2e=60ms", "e2e=1s,ttft=500ms"].into_iter().enumerate() {
        let mut c = config(&sim, "m");
        c.workload.stream = true;
        c.slo = Some(slo.parse().unwrap());
        c.mode = Mode::Closed {
            workers: 2,
            delay: Duration::ZERO,
        };
        c.stop = Stop::Requests(10);
        let r = run(c).await.unwrap();
        let g = r.goodput.as_ref().unwrap();
        let expected = if i == 0 { 0 } else { 10 };
        assert_eq!(g.good_requests, expected, "{slo}: {g:?}");
        let path = dir.path().join(format!("shard{i}.json"));
        r.write_atomic(&path).unwrap();
        shards.push(ollama_loadtest::Report::read(&path).unwrap());
    }
    sim.shutdown().await;
    let mut merged = shards[0].histogram("e2e").unwrap().unwrap();
    merged
        .add(shards[1].histogram("e2e").unwrap().unwrap())
        .unwrap();
    assert_eq!(merged.len(), 20);
    let scale = shards[0].histograms["e2e"].scale;
    let d = ollama_loadtest::Distribution::from_histogram(&merged, scale).unwrap();
    let (a, b) = (&shards[0].summary.latency_ms, &shards[1].summary.latency_ms);
    // Merged extremes are the shards' extremes within the histogram's 0.1 % resolution.
    assert!((d.max - a.max.max(b.max)).abs() / d.max < 0.002, "{d:?}");
    assert!((d.min - a.min.min(b.min)).abs() / d.min < 0.002, "{d:?}");
    assert!(d.p50 >= a.min.min(b.min) && d.p50 <= a.max.max(b.max));
}

/// Three engine threads split the work without losing or adding a request: a request
/// count is sent exactly, and the open-loop schedule is kept with every index sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_threads_split_the_work_exactly() {
    let sim = sim(
        vec![ollama_sim::ModelSpec::instant("m")],
        8,
        1.0,
        FaultPlan::none(),
    )
    .await;
    let mut c = config(&sim, "m");
    c.threads = Some(3);
    c.mode = Mode::Closed {
        workers: 7,
        delay: Duration::ZERO,
    };
    c.stop = Stop::Requests(1001);
    c.sample_count = 2000;
    let r = run(c).await.unwrap();
    assert_eq!(r.summary.total_requests, 1001);
    assert_eq!(r.summary.successes, 1001);
    assert_eq!(r.histogram("e2e").unwrap().unwrap().len(), 1001);
    // With room for every request, the merged sample holds each index once.
    let mut indices: Vec<u64> = r.samples.requests.iter().map(|s| s.index).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..1001).collect::<Vec<u64>>());
    assert_eq!(r.time_series.iter().map(|s| s.requests).sum::<u64>(), 1001);

    let mut c = config(&sim, "m");
    c.threads = Some(3);
    c.mode = Mode::Open {
        rate: 300.0,
        arrival: ollama_loadtest::Arrival::Poisson,
        max_in_flight: 1000,
    };
    c.stop = Stop::Requests(500);
    c.sample_count = 1000;
    c.seed = 3;
    let r = run(c).await.unwrap();
    sim.shutdown().await;
    let o = r.open_loop.clone().unwrap();
    assert_eq!(o.sent, 500);
    assert_eq!(r.summary.total_requests, 500);
    let mut indices: Vec<u64> = r.samples.requests.iter().map(|s| s.index).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..500).collect::<Vec<u64>>());
    within("achieved rate", o.achieved_rate, 240.0, 360.0);
    within(
        "schedule lag p99",
        o.schedule_lag_ms.as_ref().unwrap().p99,
        0.0,
        25.0,
    );
    assert_eq!(o.schedule_lag_ms.as_ref().unwrap().count, 500);
}
