//! `cargo xtask prom-e2e`: the observability kit against a real Prometheus.
//!
//! Starts Prometheus and node-exporter on loopback ports (see [`crate::prom`]) with the
//! alert rules of `docs/alerts/` loaded, an `ollama-sim` process that answers some
//! `/api/generate` requests with 503 (server busy) and some with 500, and a streamed
//! `ollama-loadtest` run against it with its telemetry exporter on (`--metrics-addr`),
//! which Prometheus scrapes. Then, through the HTTP API: the exporter's counters arrive, the rules evaluate healthy and the ones the injected faults
//! should trip go pending, node-exporter's CPU and memory figures and the rollout's
//! resource average come back, and every dashboard expression runs and returns data.
//! Last, two real rollouts against an `ollama-sim` process use this Prometheus: one whose
//! resource gate and watch pass, one whose watch sees a pending alert, fails the stage and
//! runs its revert hook.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{cmd, dashboards, loadtest, prom, rollout};

/// Generous: the first scrape happens within a second, but CI machines can be slow.
const WAIT: Duration = Duration::from_secs(60);

/// Dashboard panels allowed to be empty after the load run, and why.
const MAY_BE_EMPTY: &[(&str, &str)] = &[(
    "JSONL events dropped",
    "the load run writes no JSONL events (--no-events), so nothing is ever dropped",
)];

/// Alerts the sim's injected faults must trip (pending: their `for` is minutes).
const EXPECTED_PENDING: &[&str] = &[
    "OllamaGenerate5xxSustained",
    "OllamaHighErrorRate",
    "OllamaServerBusy",
];

/// Runs the end-to-end check.
pub(crate) fn run() -> Result<()> {
    cmd::run(cmd::cargo().args([
        "build",
        "--locked",
        "-p",
        "ollama-sim",
        "-p",
        "ollama-loadtest",
    ]))?;
    let tools = loadtest::target_dir().join("debug");
    let sim_addr = prom::free_loopback_port()?;
    let _sim = Owned::spawn(
        Command::new(tools.join("ollama-sim"))
            .arg("--listen")
            .arg(sim_addr.to_string())
            .args(["--time-scale", "0.05"])
            // Every 11th /api/generate is refused as busy (503), every 7th fails with 500.
            .args(["--fault", "kind=busy,every=11,endpoint=/api/generate"])
            .args([
                "--fault",
                "kind=status,status=500,every=7,endpoint=/api/generate",
            ]),
    )?;
    wait_listening(sim_addr)?;
    let exporter_addr = prom::free_loopback_port()?;
    let stack = prom::Stack::start(&[prom::ScrapeJob {
        name: "ollama-client".into(),
        target: exporter_addr,
    }])?;
    // The load run outlives the checks (it is killed at the end). The faults are the
    // point, so the safety switch is off: the target is our own simulator.
    let report = tempfile::NamedTempFile::new().context("cannot create a temporary file")?;
    let _load = Owned::spawn(
        Command::new(tools.join("ollama-loadtest"))
            .arg("--base-url")
            .arg(format!("http://{sim_addr}"))
            .arg("--metrics-addr")
            .arg(exporter_addr.to_string())
            .args([
                "--duration",
                "300s",
                "--workers",
                "4",
                "--stream",
                "--warmup",
                "0",
            ])
            .args(["--no-abort", "--no-events", "--output"])
            .arg(report.path()),
    )?;
    let api = stack.api();

    stack.wait_job_up("node", WAIT)?;
    stack.wait_job_up("ollama-client", WAIT)?;
    check_rules_loaded(&stack)?;

    // Counters from the exporter: successes and errors, the injected 500s and 503s.
    let busy_rate = "sum(rate(ollama_client_server_busy_total[10s])) > 0";
    api.wait_for_data(busy_rate, WAIT)
        .context("503s reach Prometheus as a rate")?;
    for (what, expr) in [
        (
            "successful requests",
            "sum(ollama_client_requests_total{outcome=\"success\"}) > 0",
        ),
        (
            "failed requests",
            "sum(ollama_client_requests_total{outcome=\"error\"}) > 0",
        ),
        (
            "500 responses",
            "sum(ollama_client_responses_total{status=\"500\"}) > 0",
        ),
        (
            "server_busy errors",
            "sum(ollama_client_errors_total{kind=\"server_busy\"}) > 0",
        ),
        (
            "completion tokens",
            "sum(ollama_client_tokens_total{kind=\"completion\"}) > 0",
        ),
        ("open connections", "ollama_client_open_connections > 0"),
    ] {
        let value = prom::sample_value(
            &api.wait_for_data(expr, WAIT)
                .with_context(|| what.to_owned())?[0],
        )?;
        eprintln!("prom-e2e: {what}: {value}");
    }

    // The alert rules see the same data: the faults trip three of them, not the slow-load one.
    for alert in EXPECTED_PENDING {
        api.wait_for_data(&format!("ALERTS{{alertname=\"{alert}\"}}"), WAIT)
            .with_context(|| {
                format!("alert {alert} never became pending on the injected faults")
            })?;
        eprintln!("prom-e2e: alert {alert} is pending, as the injected faults require");
    }
    if !api
        .query("ALERTS{alertname=\"OllamaModelLoadSlow\"}")?
        .is_empty()
    {
        bail!("OllamaModelLoadSlow is active although no load took 30 s");
    }

    // The resource figures a rollout compares, read the way the rollout reads them.
    let cpu = "sum(rate(node_cpu_seconds_total{mode!=\"idle\"}[5s]))";
    api.wait_for_data(cpu, WAIT)
        .context("node-exporter CPU figures")?;
    let mem = api
        .wait_for_data("node_memory_MemAvailable_bytes", WAIT)
        .context("node-exporter memory")?;
    // The subquery needs a few seconds of history: poll until the window is filled.
    let deadline = Instant::now() + WAIT;
    let busy = loop {
        let now = rollout::unix_now();
        if let Some(busy) = rollout::average_over(api, cpu, now - 5.0, now)? {
            break busy;
        }
        if Instant::now() >= deadline {
            bail!("the rollout's CPU average over 5 s returned nothing within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mem_bytes = prom::sample_value(&mem[0])?;
    if !(busy >= 0.0 && mem_bytes > 0.0) {
        bail!("implausible node figures: {busy} busy cores, {mem_bytes} bytes available");
    }
    eprintln!(
        "prom-e2e: rollout CPU average {busy:.2} busy cores, {:.0} MiB available",
        mem_bytes / 1_048_576.0
    );

    // Every dashboard expression runs on the real server and, but for the listed
    // exceptions, returns data.
    let queries = dashboards::load_all()?;
    let deadline = Instant::now() + WAIT;
    loop {
        let results = dashboards::query_all(api, &queries)?;
        let empty: Vec<&str> = results
            .iter()
            .filter(|(query, series)| {
                *series == 0
                    && !MAY_BE_EMPTY
                        .iter()
                        .any(|(title, _)| query.origin.contains(title))
            })
            .map(|(query, _)| query.origin.as_str())
            .collect();
        if empty.is_empty() {
            eprintln!(
                "prom-e2e: {} dashboard expressions run; all but the allowed ones return data",
                results.len()
            );
            for (title, why) in MAY_BE_EMPTY {
                eprintln!("prom-e2e:   may be empty: {title} ({why})");
            }
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "dashboard expressions returned no data:\n  {}",
                empty.join("\n  ")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    rollouts_with_prometheus(&stack, &tools)?;
    eprintln!("prom-e2e: ok");
    Ok(())
}

/// Rollouts whose resource and watch gates read this stack's Prometheus.
fn rollouts_with_prometheus(stack: &prom::Stack, tools: &std::path::Path) -> Result<()> {
    let sim_addr = prom::free_loopback_port()?;
    let _sim = Owned::spawn(
        Command::new(tools.join("ollama-sim"))
            .arg("--listen")
            .arg(sim_addr.to_string())
            .args(["--time-scale", "0.05"]),
    )?;
    wait_listening(sim_addr)?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let plan = |name: &str, watch: &str| {
        format!(
            r#"
name = "prom-e2e {name}"
report_dir = {reports}
[tools]
loadtest = {loadtest}
[evaluate]
base_url = "http://{sim_addr}"
models = ["llama3.2:latest"]
loadtest_args = ["--duration", "3s", "--workers", "2"]
[baseline]
[candidate]
[gates]
compare = false
# Generous: the faulty load run shares the machine, CPU use is noisy on this scale.
max_resource_increase_percent = 1000.0
[prometheus]
url = "http://{prom}"
[prometheus.resources]
cpu_busy_cores = 'sum(rate(node_cpu_seconds_total{{mode!="idle"}}[5s]))'
[prometheus.watch]
{watch}
[evaluation]
window = "3s"
interval = "1s"
loadtest_args = ["--workers", "1"]
[[stage]]
name = "canary"
base_url = "http://{sim_addr}"
revert = "touch {reverted}"
"#,
            reports = toml_str(&dir.path().join(name).display().to_string()),
            loadtest = toml_str(&tools.join("ollama-loadtest").display().to_string()),
            prom = stack.api().addr(),
            reverted = dir.path().join(format!("{name}-reverted")).display(),
        )
    };
    let cases = [
        ("passing", "firing = 'ALERTS{alertstate=\"firing\"}'", true),
        (
            "pending-alert",
            "busy = 'ALERTS{alertname=\"OllamaServerBusy\"}'",
            false,
        ),
    ];
    for (name, watch, should_pass) in cases {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, plan(name, watch))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let (passed, report) = rollout::execute(rollout::Plan::read(&path)?)?;
        let text = std::fs::read_to_string(&report)
            .with_context(|| format!("cannot read {}", report.display()))?;
        if !text.contains("resource cpu_busy_cores | pass") {
            bail!("rollout `{name}`: the resource gate did not pass:\n{text}");
        }
        let reverted = dir.path().join(format!("{name}-reverted")).exists();
        if passed != should_pass || reverted == should_pass {
            bail!(
                "rollout `{name}`: passed={passed}, reverted={reverted}, expected the opposite\n{text}"
            );
        }
        eprintln!(
            "prom-e2e: rollout `{name}` {} as it should",
            if passed {
                "passed"
            } else {
                "failed and reverted"
            }
        );
    }
    Ok(())
}

/// Waits until something accepts connections on `addr`.
fn wait_listening(addr: std::net::SocketAddr) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() >= deadline {
            bail!("nothing listens on {addr} after {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A TOML basic string holding `text` (JSON string escaping is valid TOML).
fn toml_str(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// A process this check started (a sim, the load run), killed on drop.
struct Owned(Child);

impl Owned {
    fn spawn(command: &mut Command) -> Result<Self> {
        let shown = cmd::display(command);
        eprintln!("$ {shown} &");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start `{shown}`"))?;
        Ok(Self(child))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The alert rules of `docs/alerts/` are loaded and evaluated without error.
fn check_rules_loaded(stack: &prom::Stack) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let groups = stack.api().rules()?;
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
        if Instant::now() >= deadline {
            bail!(
                "alert rules not loaded/evaluated within {WAIT:?}\n{}",
                stack.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
