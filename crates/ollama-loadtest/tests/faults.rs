//! Every fault the simulator can inject lands in the report's error breakdown under the
//! client's error kind, apart from latency; the safety switch stops a run that hurts the
//! server.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{config, model, sim};
use ollama_loadtest::{AbortLimits, Mode, Stop, run};
use ollama_sim::{FaultKind, FaultPlan, FaultRule, Trigger};

/// Runs 6 generate requests, every second one hit by `kind`, and returns the report.
async fn run_with_fault(kind: FaultKind, stream: bool) -> ollama_loadtest::Report {
    let plan = FaultPlan::none().with(
        FaultRule::new(kind)
            .endpoint("/api/generate")
            .trigger(Trigger::Every(2)),
    );
    // Enough slots that a stalled request holding one never delays the next.
    let sim = sim(vec![model("m", 1000.0, 8)], 8, 1.0, plan).await;
    let mut c = config(&sim, "m");
    c.workload.stream = stream;
    c.client.timeout = Duration::from_millis(300);
    c.mode = Mode::Closed {
        workers: 1,
        delay: Duration::ZERO,
    };
    c.stop = Stop::Requests(6);
    let r = run(c).await.unwrap();
    sim.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_lands_in_the_error_breakdown() {
    let cases: Vec<(FaultKind, bool, &str, Option<u16>)> = vec![
        (
            FaultKind::Status {
                status: 500,
                message: None,
            },
            false,
            "http_status",
            Some(500),
        ),
        (FaultKind::Busy, false, "server_busy", Some(503)),
        (FaultKind::Reset { after: 2 }, true, "truncated", None),
        (FaultKind::Reset { after: 0 }, false, "truncated", None),
        (FaultKind::Malformed { after: 2 }, true, "decode", None),
        (
            FaultKind::ErrorLine {
                after: 2,
                message: None,
            },
            true,
            "stream_error",
            None,
        ),
        (
            FaultKind::Stall {
                after: 2,
                duration: Duration::from_secs(2),
            },
            true,
            "read_timeout",
            None,
        ),
        (
            FaultKind::SlowHead {
                delay: Duration::from_secs(2),
            },
            false,
            "read_timeout",
            None,
        ),
    ];
    for (kind, stream, label, status) in cases {
        let what = format!("{kind:?} stream={stream}");
        let r = run_with_fault(kind, stream).await;
        let s = &r.summary;
        assert_eq!(s.total_requests, 6, "{what}");
        assert_eq!(s.failures, 3, "{what}: {:?}", s.errors);
        assert_eq!(s.errors.get(label), Some(&3), "{what}: {:?}", s.errors);
        assert!((s.success_rate - 50.0).abs() < 1e-9, "{what}");
        // Failures stay out of latency.
        assert_eq!(s.latency_ms.count, 3, "{what}");
        assert_eq!(r.samples.errors.len(), 3, "{what}");
        assert!(
            r.samples
                .errors
                .iter()
                .all(|e| e.kind == label && !e.message.is_empty()),
            "{what}"
        );
        if let Some(code) = status {
            assert_eq!(s.http_statuses.get(&code.to_string()), Some(&3), "{what}");
            assert!(
                r.samples.errors.iter().all(|e| e.http_status == Some(code)),
                "{what}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_are_model_not_found() {
    let sim = sim(vec![model("m", 1000.0, 4)], 1, 1.0, FaultPlan::none()).await;
    let mut c = config(&sim, "m");
    c.workload.models = vec!["m".parse().unwrap(), "missing".parse().unwrap()];
    c.stop = Stop::Requests(10);
    let r = run(c).await.unwrap();
    sim.shutdown().await;
    assert_eq!(
        r.summary.errors.get("model_not_found"),
        Some(&5),
        "{:?}",
        r.summary.errors
    );
    assert_eq!(r.models["missing"].failures, 5);
    assert_eq!(r.models["m"].successes, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_switch_stops_a_run_on_503s_and_on_errors() {
    let plan = FaultPlan::none().with(FaultRule::new(FaultKind::Busy).endpoint("/api/generate"));
    let sim = sim(vec![model("m", 1000.0, 4)], 1, 1.0, plan).await;
    let mut c = config(&sim, "m");
    c.abort = AbortLimits {
        error_rate_percent: None,
        min_requests: 0,
        server_busy: Some(5),
    };
    c.stop = Stop::Requests(10_000);
    let r = run(c).await.unwrap();
    assert!(r.partial);
    let a = r.aborted.as_ref().unwrap();
    assert!(a.reason.contains("503"), "{a:?}");
    // Workers in flight when it fired may add a few more.
    assert!((5..=15).contains(&r.summary.failures), "{:?}", r.summary);

    sim.set_faults(
        FaultPlan::none().with(
            FaultRule::new(FaultKind::Status {
                status: 500,
                message: None,
            })
            .endpoint("/api/generate"),
        ),
    );
    let mut c = config(&sim, "m");
    c.abort = AbortLimits {
        error_rate_percent: Some(50.0),
        min_requests: 20,
        server_busy: None,
    };
    c.stop = Stop::Requests(10_000);
    let r = run(c).await.unwrap();
    sim.shutdown().await;
    let a = r.aborted.unwrap();
    assert!(a.reason.contains("error rate"), "{a:?}");
    assert!(
        (20..=40).contains(&r.summary.total_requests),
        "{:?}",
        r.summary
    );
}
