//! An interrupt (Ctrl-C in the CLI) ends the running repetition cleanly, keeps its partial
//! report, starts nothing else, and marks the suite report partial.
#![allow(clippy::unwrap_used)]

mod common;

use ollama_perfreport::{Progress, RunOptions, run_suite};

/// Interrupts as soon as the second repetition starts.
struct StopAtSecond(tokio::sync::watch::Sender<bool>);

impl Progress for StopAtSecond {
    fn starting(&mut self, _: &str, repetition: u32, _: u32) {
        if repetition == 2 {
            self.0.send(true).unwrap();
        }
    }
    fn finished(&mut self, _: &str, _: u32, _: &ollama_loadtest::Report) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_keeps_what_was_measured() {
    let sim = common::sim_scaled(200.0, 0.05).await;
    let mut suite = common::suite_of("interrupted", 200);
    // A second scenario that must never start.
    let mut second = suite.scenarios[0].clone();
    second.name = "never".into();
    suite.scenarios.push(second);
    suite.scenarios[0].requests = Some(4);
    let (stop, interrupt) = tokio::sync::watch::channel(false);
    let options = RunOptions {
        base_url: Some(sim.base_url()),
        simulated: true,
        interrupt: Some(interrupt),
        ..RunOptions::default()
    };
    let report = run_suite(&suite, &options, &mut StopAtSecond(stop))
        .await
        .unwrap();
    sim.shutdown().await;
    assert!(report.partial);
    assert_eq!(
        report.scenarios.len(),
        1,
        "the second scenario never started"
    );
    let reps = &report.scenarios[0].repetitions;
    assert_eq!(reps.len(), 2);
    assert!(!reps[0].partial && reps[0].summary.total_requests == 4);
    assert!(
        reps[1].partial,
        "the interrupted repetition is kept, marked partial"
    );
    // A comparison against it says so.
    let cmp = ollama_perfreport::compare(
        &report,
        "before.json",
        &report,
        "after.json",
        &ollama_perfreport::CompareOptions::default(),
    )
    .unwrap();
    assert!(
        cmp.warnings.iter().any(|w| w.contains("interrupted")),
        "{:?}",
        cmp.warnings
    );
}
