//! `cargo xtask prom-e2e`: the observability kit against a real Prometheus.
//!
//! Starts Prometheus and node-exporter on loopback ports (see [`crate::prom`]) with the
//! alert rules of `docs/alerts/` loaded, then checks through the HTTP API that the rules
//! load healthy, that node-exporter's CPU and memory figures (what a rollout's resource
//! queries read) come back, and that every dashboard expression runs.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{dashboards, prom};

/// Generous: the first scrape happens within a second, but CI machines can be slow.
const WAIT: Duration = Duration::from_secs(60);

/// Runs the end-to-end check.
pub(crate) fn run() -> Result<()> {
    let stack = prom::Stack::start(&[])?;
    let api = stack.api();
    stack.wait_job_up("node", WAIT)?;
    stack.wait_job_up("prometheus", WAIT)?;

    // The resource figures a rollout compares: busy CPU cores and available memory.
    let cpu = "sum(rate(node_cpu_seconds_total{mode!=\"idle\"}[15s]))";
    let busy = api
        .wait_for_data(cpu, WAIT)
        .context("node-exporter CPU figures")?;
    let busy_cores = prom::sample_value(&busy[0])?;
    let mem = api
        .wait_for_data("node_memory_MemAvailable_bytes", WAIT)
        .context("node-exporter memory figures")?;
    let mem_bytes = prom::sample_value(&mem[0])?;
    if !(busy_cores >= 0.0 && mem_bytes > 0.0) {
        bail!("implausible node figures: {busy_cores} busy cores, {mem_bytes} bytes available");
    }
    eprintln!(
        "prom-e2e: node-exporter: {busy_cores:.2} busy cores, {:.0} MiB available",
        mem_bytes / 1_048_576.0
    );

    check_rules_loaded(&stack)?;

    // Every dashboard expression must be accepted by the real server.
    let queries = dashboards::load_all()?;
    let results = dashboards::query_all(api, &queries)?;
    eprintln!(
        "prom-e2e: {} dashboard expressions accepted by Prometheus",
        results.len()
    );
    eprintln!("prom-e2e: ok (node-exporter {})", stack.node_exporter());
    Ok(())
}

/// The alert rules of `docs/alerts/` are loaded and evaluated without error.
fn check_rules_loaded(stack: &prom::Stack) -> Result<()> {
    let api = stack.api();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let groups = api.rules()?;
        let rules: Vec<&Value> = groups
            .iter()
            .filter_map(|g| g.get("rules").and_then(Value::as_array))
            .flatten()
            .collect();
        let evaluated = rules.iter().all(|r| {
            r.get("lastEvaluation")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.starts_with("0001"))
        });
        if !rules.is_empty() && evaluated {
            for rule in &rules {
                let health = rule.get("health").and_then(Value::as_str).unwrap_or("?");
                if health != "ok" {
                    let name = rule.get("name").and_then(Value::as_str).unwrap_or("?");
                    let error = rule.get("lastError").and_then(Value::as_str).unwrap_or("");
                    bail!("alert rule {name} is {health}: {error}");
                }
            }
            eprintln!(
                "prom-e2e: {} alert rules loaded and evaluating",
                rules.len()
            );
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "alert rules not loaded/evaluated within {WAIT:?}\n{}",
                stack.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
