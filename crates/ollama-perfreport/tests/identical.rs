//! Runs of the same suite against the same simulator must never be judged "regressed" (or
//! "improved"): every ordered pair of three runs is compared, 84 verdicts in all.
#![allow(clippy::unwrap_used)]

mod common;

use ollama_perfreport::{CompareOptions, Verdict, compare};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_runs_are_unchanged_or_inconclusive() {
    let suite = common::suite_of("identical", 20);
    let sim = common::sim_scaled(50.0, 0.05).await;
    let mut runs = Vec::new();
    for seed in [11, 22, 33] {
        runs.push(common::run(&suite, &sim, seed).await);
    }
    sim.shutdown().await;
    let mut verdicts = 0;
    let mut unchanged = 0;
    for (i, base) in runs.iter().enumerate() {
        for (j, candidate) in runs.iter().enumerate() {
            if i == j {
                continue;
            }
            let cmp = compare(base, "a", candidate, "b", &CompareOptions::default()).unwrap();
            let table = ollama_perfreport::comparison_markdown(&cmp);
            for row in cmp.scenarios.iter().flat_map(|s| &s.metrics) {
                verdicts += 1;
                assert!(
                    matches!(row.verdict, Verdict::Unchanged | Verdict::Inconclusive),
                    "run {i} vs run {j}: {} is {}\n{table}",
                    row.metric,
                    row.verdict
                );
                unchanged += usize::from(row.verdict == Verdict::Unchanged);
            }
            assert!(!cmp.has_regression());
        }
    }
    assert_eq!(verdicts, 6 * 14);
    // The test could pass by saying "inconclusive" to everything; it must not.
    assert!(
        unchanged * 2 > verdicts,
        "only {unchanged} of {verdicts} unchanged"
    );
}
