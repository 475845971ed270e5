//! A slower model behind the same suite must come out "regressed" on exactly the metrics a
//! slower generation speed moves, and "unchanged" on the others; the CLI exits 3.
#![allow(clippy::unwrap_used)]

mod common;

use ollama_perfreport::{CompareOptions, Metric, Verdict, compare};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_model_regresses_generation_metrics_only() {
    let suite = common::suite("regression");
    let fast = common::sim(50.0).await;
    let base = common::run(&suite, &fast, 1).await;
    fast.shutdown().await;
    // Half the generation speed, same prompt speed, same everything else.
    let slow = common::sim(25.0).await;
    let candidate = common::run(&suite, &slow, 1).await;
    slow.shutdown().await;

    let cmp = compare(
        &base,
        "base",
        &candidate,
        "candidate",
        &CompareOptions::default(),
    )
    .unwrap();
    assert_eq!(cmp.scenarios.len(), 1);
    let sc = &cmp.scenarios[0];
    let table = ollama_perfreport::comparison_markdown(&cmp);
    let verdict = |m: Metric| sc.metric(m).map(|r| r.verdict);
    // Generation got slower: every latency that includes generation, the time per token,
    // the speed per request, whole-run throughput and goodput (no SLO: successful req/s).
    for m in [
        Metric::E2eP50,
        Metric::E2eP95,
        Metric::TpotP50,
        Metric::TpotP95,
        Metric::TokensPerSecond,
        Metric::Throughput,
        Metric::Goodput,
    ] {
        assert_eq!(verdict(m), Some(Verdict::Regressed), "{m}\n{table}");
    }
    // Time to first token is prompt evaluation plus one token: its median barely moved.
    // Nothing failed, and the model stayed loaded.
    for m in [Metric::TtftP50, Metric::SuccessRate, Metric::LoadTime] {
        assert_eq!(verdict(m), Some(Verdict::Unchanged), "{m}\n{table}");
    }
    // A p99 of 3 x 30 requests rests on the slowest one or two per repetition, which a busy
    // machine moves by tens of percent, so its interval may be too wide for a verdict: the
    // tool must then say "inconclusive", never the opposite of the truth.
    for m in [Metric::E2eP99, Metric::TpotP99] {
        let v = verdict(m);
        assert!(
            matches!(v, Some(Verdict::Regressed | Verdict::Inconclusive)),
            "{m}: {v:?}\n{table}"
        );
    }
    for m in [Metric::TtftP95, Metric::TtftP99] {
        let v = verdict(m);
        assert!(
            matches!(v, Some(Verdict::Unchanged | Verdict::Inconclusive)),
            "{m}: {v:?}\n{table}"
        );
    }
    // The change points the right way and has the right size: generation is 2x slower, so
    // TPOT roughly doubles.
    let tpot = sc.metric(Metric::TpotP50).unwrap().change.unwrap();
    let pct = tpot.pct.unwrap();
    assert!((60.0..=140.0).contains(&pct), "TPOT change {pct}%\n{table}");
    assert!(cmp.has_regression());
    assert!(table.contains("regressed"));

    // The CLI turns the regression into exit code 3, and the reverse comparison (the fast
    // run as candidate) into improvements and exit code 0.
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = (dir.path().join("base.json"), dir.path().join("cand.json"));
    base.write_atomic(&b).unwrap();
    candidate.write_atomic(&c).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ollama-perfreport"))
        .args(["compare", b.to_str().unwrap(), c.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("🔴 regressed"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ollama-perfreport"))
        .args(["compare", c.to_str().unwrap(), b.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("🟢 improved"));
    // A threshold flag loose enough turns every regression into something milder.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ollama-perfreport"))
        .args([
            "compare",
            b.to_str().unwrap(),
            c.to_str().unwrap(),
            "--threshold",
            "default=500",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
