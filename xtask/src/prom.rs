//! A real Prometheus (and node-exporter) on loopback ports, started for a check and
//! stopped when dropped, plus a small client for its HTTP query API.
//!
//! Both come from Debian's `prometheus` and `prometheus-node-exporter` packages. Each run
//! gets a fresh temporary directory (config, TSDB, logs), so nothing on the machine is
//! touched and two runs never share state.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{alerts, cmd, http};

/// How long a single HTTP call to Prometheus may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one Prometheus's HTTP API (loopback only).
#[derive(Clone, Debug)]
pub(crate) struct Api {
    url: http::Url,
    shown: String,
}

impl Api {
    /// The `host:port` this client talks to.
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.url.addr()
    }

    /// A client for the Prometheus at `url` (e.g. `http://127.0.0.1:9090`).
    pub(crate) fn new(url: &str) -> Result<Self> {
        Ok(Self {
            url: http::Url::parse(url)?,
            shown: url.trim_end_matches('/').to_owned(),
        })
    }

    /// The rule groups Prometheus has loaded (`/api/v1/rules`).
    pub(crate) fn rules(&self) -> Result<Vec<Value>> {
        let data = self.get_data("/api/v1/rules")?;
        match data.get("groups") {
            Some(Value::Array(groups)) => Ok(groups.clone()),
            _ => bail!("{}: /api/v1/rules answer has no `groups`", self.shown),
        }
    }

    /// Runs an instant query evaluated at `time` (unix seconds).
    pub(crate) fn query_at(&self, expr: &str, time: f64) -> Result<Vec<Value>> {
        self.query_path(expr, &format!("&time={time:.3}"))
    }

    /// Runs an instant query and returns the result vector (one JSON object per series;
    /// a scalar result becomes one element).
    pub(crate) fn query(&self, expr: &str) -> Result<Vec<Value>> {
        self.query_path(expr, "")
    }

    fn query_path(&self, expr: &str, extra: &str) -> Result<Vec<Value>> {
        let path = format!(
            "/api/v1/query?query={}{extra}",
            http::encode_query_value(expr)
        );
        let data = self
            .get_data(&path)
            .with_context(|| format!("query `{expr}`"))?;
        match data.get("result") {
            Some(Value::Array(series))
                if data.get("resultType").and_then(Value::as_str) != Some("scalar") =>
            {
                Ok(series.clone())
            }
            Some(scalar) => Ok(vec![scalar.clone()]),
            None => bail!("Prometheus answer has no `data.result`"),
        }
    }

    /// GETs an API path and returns its `data` member, turning Prometheus's error
    /// envelope into an error.
    fn get_data(&self, path: &str) -> Result<Value> {
        let response = http::get(&self.url, path, HTTP_TIMEOUT)?;
        let mut json: Value = serde_json::from_str(&response.body).with_context(|| {
            format!(
                "{}: HTTP {} with a non-JSON body: {}",
                self.shown, response.status, response.body
            )
        })?;
        if json.get("status").and_then(Value::as_str) != Some("success") {
            let error = json
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("(no error text)");
            bail!("{} answered HTTP {}: {error}", self.shown, response.status);
        }
        json.get_mut("data")
            .map(Value::take)
            .context("Prometheus answer has no `data`")
    }

    /// Polls `expr` until it returns at least one series, up to `timeout`.
    pub(crate) fn wait_for_data(&self, expr: &str, timeout: Duration) -> Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.query(expr)?;
            if !result.is_empty() {
                return Ok(result);
            }
            if Instant::now() >= deadline {
                bail!("`{expr}` returned no data within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Whether Prometheus answers `/-/ready` with 200.
    fn ready(&self) -> bool {
        http::get(&self.url, "/-/ready", HTTP_TIMEOUT).is_ok_and(|r| r.status == 200)
    }
}

/// The number in one series of an instant-query result (`value: [time, "number"]`), or
/// of a scalar result (`[time, "number"]`).
pub(crate) fn sample_value(series: &Value) -> Result<f64> {
    let pair = series.get("value").unwrap_or(series);
    let text = pair
        .get(1)
        .and_then(Value::as_str)
        .with_context(|| format!("no sample value in {series}"))?;
    text.parse::<f64>()
        .with_context(|| format!("sample value {text:?} is not a number"))
}

/// One scrape job for the harness's Prometheus.
#[derive(Clone, Debug)]
pub(crate) struct ScrapeJob {
    /// The `job` label.
    pub(crate) name: String,
    /// `host:port` on loopback.
    pub(crate) target: SocketAddr,
}

/// A running Prometheus + node-exporter pair on loopback; both are killed on drop.
pub(crate) struct Stack {
    // Children first: they are killed in `Drop` before the directory they write to goes.
    children: Vec<(String, Child)>,
    api: Api,
    dir: tempfile::TempDir,
}

impl Stack {
    /// Starts node-exporter and a Prometheus that scrapes itself, node-exporter and
    /// `jobs` every second and loads the alert rules of `docs/alerts/`; returns once
    /// Prometheus is ready.
    pub(crate) fn start(jobs: &[ScrapeJob]) -> Result<Self> {
        let prometheus_bin = cmd::require("prometheus", alerts::PROMTOOL_HINT)?;
        let node_bin = cmd::require(
            "prometheus-node-exporter",
            "install Debian's `prometheus-node-exporter` package",
        )?;
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let prom_addr = free_loopback_port()?;
        let node_addr = free_loopback_port()?;
        let mut stack = Self {
            children: Vec::new(),
            api: Api::new(&format!("http://{prom_addr}"))?,
            dir,
        };

        let node = spawn_logged(
            Command::new(node_bin)
                .arg(format!("--web.listen-address={node_addr}"))
                // Only the collectors the checks use: fast to scrape, nothing exotic.
                .args([
                    "--collector.disable-defaults",
                    "--collector.cpu",
                    "--collector.meminfo",
                    "--collector.loadavg",
                ]),
            &stack.dir.path().join("node-exporter.log"),
        )?;
        stack.children.push(("node-exporter".into(), node));

        let mut all_jobs = vec![
            ScrapeJob {
                name: "prometheus".into(),
                target: prom_addr,
            },
            ScrapeJob {
                name: "node".into(),
                target: node_addr,
            },
        ];
        all_jobs.extend_from_slice(jobs);
        let rules = alerts::files_ending("docs/alerts", ".rules.yml")?;
        let config = stack.dir.path().join("prometheus.yml");
        std::fs::write(&config, config_text(&all_jobs, &rules))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let prometheus = spawn_logged(
            Command::new(prometheus_bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    stack.dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={prom_addr}"))
                .arg("--log.level=warn"),
            &stack.dir.path().join("prometheus.log"),
        )?;
        stack.children.push(("prometheus".into(), prometheus));

        let deadline = Instant::now() + Duration::from_secs(60);
        while !stack.api.ready() {
            stack.check_alive()?;
            if Instant::now() >= deadline {
                bail!(
                    "Prometheus on {prom_addr} not ready within 60 s\n{}",
                    stack.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("prom: Prometheus on http://{prom_addr}, node-exporter on http://{node_addr}");
        Ok(stack)
    }

    /// The query API of this stack's Prometheus.
    pub(crate) fn api(&self) -> &Api {
        &self.api
    }

    /// Waits until Prometheus reports the scrape job `job` as up.
    pub(crate) fn wait_job_up(&self, job: &str, timeout: Duration) -> Result<()> {
        self.api
            .wait_for_data(&format!("up{{job=\"{job}\"}} == 1"), timeout)
            .map(drop)
            .with_context(|| format!("scrape job `{job}` never came up\n{}", self.logs()))
    }

    /// Fails if a child has exited (naming it and showing the logs).
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let logs = logs_in(self.dir.path());
                bail!("{name} exited early ({status})\n{logs}");
            }
        }
        Ok(())
    }

    /// The tails of the children's logs, for error messages.
    pub(crate) fn logs(&self) -> String {
        logs_in(self.dir.path())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            // These are our own children; an error here means they already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Prometheus configuration: 1 s scrape and rule evaluation, so checks finish fast.
fn config_text(jobs: &[ScrapeJob], rule_files: &[PathBuf]) -> String {
    let mut text =
        String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n");
    for file in rule_files {
        let _ = writeln!(
            text,
            "  - {}",
            serde_json::Value::String(file.display().to_string())
        );
    }
    text.push_str("scrape_configs:\n");
    for job in jobs {
        let _ = writeln!(
            text,
            "  - job_name: {name}\n    static_configs:\n      - targets: [\"{target}\"]",
            name = serde_json::Value::String(job.name.clone()),
            target = job.target
        );
    }
    text
}

/// A loopback address with a port that was free a moment ago (the OS picked it).
pub(crate) fn free_loopback_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?)
}

fn spawn_logged(command: &mut Command, log: &Path) -> Result<Child> {
    let file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let shown = cmd::display(command);
    eprintln!("$ {shown} &");
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("could not start `{shown}`"))
}

fn logs_in(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["prometheus.log", "node-exporter.log"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let _ = writeln!(out, "--- {name} (last {} lines)", tail.len());
        for line in tail.iter().rev() {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}
