//! `cargo xtask ci`: everything CI checks, in the order CI runs it, so a developer runs CI
//! locally in one line. `.ci/run` installs the system packages (Debian `prometheus` for
//! promtool and the server, `prometheus-node-exporter`) and then calls this; nothing here
//! installs anything.

use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::{alerts, cmd, dashboards, prom_e2e};

/// One CI step: a name for the log and what it runs.
struct Step {
    name: &'static str,
    run: fn() -> Result<()>,
}

const STEPS: &[Step] = &[
    Step {
        name: "cargo fmt --check",
        run: fmt,
    },
    Step {
        name: "cargo clippy -D warnings",
        run: clippy,
    },
    Step {
        name: "alert rules (promtool check + test)",
        run: alerts::run,
    },
    Step {
        name: "dashboard queries (promtool parse + contract names)",
        run: dashboards::run,
    },
    Step {
        name: "cargo test --workspace",
        run: test,
    },
    Step {
        name: "real Prometheus end to end (prom-e2e)",
        run: prom_e2e::run,
    },
];

/// Runs every step, stopping at the first failure. The quick static checks (format, lints,
/// alert and dashboard checks) come first so a mistake there fails in seconds, not after
/// the test suite.
pub(crate) fn run() -> Result<()> {
    let started = Instant::now();
    for (index, step) in STEPS.iter().enumerate() {
        eprintln!("== [{}/{}] {}", index + 1, STEPS.len(), step.name);
        let step_started = Instant::now();
        (step.run)().with_context(|| format!("CI step `{}` failed", step.name))?;
        eprintln!(
            "== {} ok ({:.1}s)",
            step.name,
            step_started.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "== CI passed: {} steps in {:.0}s",
        STEPS.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn fmt() -> Result<()> {
    cmd::run(cmd::cargo().args(["fmt", "--all", "--check"]))
}

fn clippy() -> Result<()> {
    cmd::run(cmd::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))
}

fn test() -> Result<()> {
    cmd::run(cmd::cargo().args(["test", "--workspace", "--locked"]))
}
