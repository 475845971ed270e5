//! The binary: thresholds set the exit code, the safety switch exits 3, and SIGINT stops a
//! run cleanly with a valid partial report.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{model, sim};
use ollama_loadtest::Report;
use ollama_sim::{FaultKind, FaultPlan, FaultRule};

const BIN: &str = env!("CARGO_BIN_EXE_ollama-loadtest");

/// The binary aimed at `base_url`, writing its report to `report` and its JSONL events
/// beside it.
fn loadtest(base_url: &str, report: &std::path::Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--base-url",
        base_url,
        "--model",
        "m",
        "--warmup",
        "0",
        "--output",
    ])
    .arg(report)
    .arg("--events")
    .arg(report.with_extension("events.jsonl"))
    .args(extra)
    .stdin(Stdio::null());
    cmd
}

/// Polls `cond` every few milliseconds until it holds or `limit` passes.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_set_the_exit_code() {
    let sim = sim(vec![model("m", 2000.0, 4)], 4, 1.0, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let url = sim.base_url();

    let ok = loadtest(
        &url,
        &report,
        &[
            "--requests",
            "20",
            "--fail-if",
            "success_rate<99",
            "--fail-if",
            "p99_e2e>10s",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.contains("20 total, 20 ok"), "{stdout}");
    assert!(
        stdout.contains("success_rate<99") && stdout.contains("ok"),
        "{stdout}"
    );
    let r = Report::read(&report).unwrap();
    assert_eq!(r.summary.total_requests, 20);
    assert!(!r.partial);
    // Every request went through the instrumented client: one JSONL event each.
    let events = std::fs::read_to_string(report.with_extension("events.jsonl")).unwrap();
    let generate = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["operation"] == "generate")
        .count();
    assert_eq!(generate, 20, "{events}");

    let failed = loadtest(
        &url,
        &report,
        &["--requests", "20", "--fail-if", "p50_e2e>1us", "--json"],
    )
    .output()
    .unwrap();
    assert_eq!(
        failed.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    // --json prints the report itself.
    let printed: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(printed["summary"]["total_requests"], 20);

    let bad = loadtest(&url, &report, &["--fail-if", "p99_latency>2s"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "clap usage errors exit 2");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("p99_latency"));

    sim.set_faults(
        FaultPlan::none().with(FaultRule::new(FaultKind::Busy).endpoint("/api/generate")),
    );
    let aborted = loadtest(&url, &report, &["--requests", "1000"])
        .output()
        .unwrap();
    assert_eq!(
        aborted.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&aborted.stdout)
    );
    let r = Report::read(&report).unwrap();
    assert!(r.aborted.unwrap().reason.contains("503"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_writes_a_valid_partial_report() {
    // Slow answers (a second each) so the run is surely still going when interrupted.
    let sim = sim(vec![model("m", 10.0, 10)], 4, 1.0, FaultPlan::none()).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("partial.json");
    let mut child = loadtest(
        &sim.base_url(),
        &report,
        &["--duration", "120", "--workers", "4", "--stream"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Interrupt once at least one request has completed: with four workers, a fifth
    // generate request means one worker finished its first and moved on.
    assert!(
        eventually(Duration::from_secs(30), || sim
            .stats()
            .requests_to("/api/generate")
            >= 5)
        .await,
        "the load test never got going"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exit = None;
    assert!(
        eventually(Duration::from_secs(20), || {
            exit = child.try_wait().unwrap();
            exit.is_some()
        })
        .await,
        "the load test did not stop after SIGINT"
    );
    assert_eq!(exit.unwrap().code(), Some(130));
    let r = Report::read(&report).unwrap();
    assert!(r.partial);
    assert!(r.aborted.is_none());
    assert!(r.summary.total_requests >= 1, "{:?}", r.summary);
    assert!(r.summary.abandoned >= 1, "{:?}", r.summary);
    assert!(r.summary.test_duration_seconds < 60.0);
    sim.shutdown().await;
}
