//! `cargo xtask rollout --plan PLAN.toml [--dry-run]`: the operator's change routine as
//! one command that stops when the evidence says no.
//!
//! Steps, each a gate with its evidence: preflight (every server healthy, its version,
//! the plan's models present), baseline and candidate load runs against the evaluation
//! server, `ollama-perfreport compare`, a resource comparison through the Prometheus HTTP
//! API, then for each stage: apply hook, smoke load over the evaluation window while the
//! watch queries run. The first failed gate stops the rollout and rolls back everything it
//! applied, newest first: the failed stage, the stages before it, then the candidate. A
//! Markdown and an HTML report record every gate.

mod plan;
mod report;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{cmd, http, loadtest, prom};
pub(crate) use plan::Plan;
use plan::Stage;
use report::{Gate, Report};

/// Timeout of each preflight HTTP call.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses the task's arguments and runs it; the exit code is the verdict.
pub(crate) fn run_cli(args: &[OsString]) -> Result<ExitCode> {
    let mut plan_path = None;
    let mut dry_run = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("--plan") => {
                plan_path = Some(PathBuf::from(iter.next().context("--plan needs a path")?));
            }
            Some("--dry-run") => dry_run = true,
            _ => bail!(
                "unknown argument `{}`; usage: cargo xtask rollout --plan PLAN.toml [--dry-run]",
                arg.display()
            ),
        }
    }
    let plan_path = plan_path.context("usage: cargo xtask rollout --plan PLAN.toml [--dry-run]")?;
    let plan = Plan::read(&plan_path)?;
    if dry_run {
        print!("{}", dry_run_text(&plan, &plan_path)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (passed, _) = execute(plan)?;
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs a plan for real; returns the verdict and the Markdown report's path.
pub(crate) fn execute(plan: Plan) -> Result<(bool, PathBuf)> {
    Runner::new(plan)?.run()
}

/// What a real run would do, step by step; reads the plan only.
fn dry_run_text(plan: &Plan, path: &Path) -> Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut step = 0;
    let mut next = || {
        step += 1;
        step
    };
    let window = plan.window()?;
    let gates = &plan.gates;
    let _ = writeln!(
        out,
        "rollout `{}` (plan {}), dry run: nothing is executed",
        plan.name,
        path.display()
    );
    let _ = writeln!(
        out,
        "SLO gates on the candidate and each stage: success rate >= {}, 5xx <= {} (stages: {}), p99 <= {}",
        gates
            .min_success_rate_percent
            .map_or("-".to_owned(), |v| format!("{v}%")),
        gates.max_5xx.map_or("-".to_owned(), |v| v.to_string()),
        gates.max_5xx.unwrap_or(0),
        gates
            .max_p99_ms
            .map_or("-".to_owned(), |v| format!("{v} ms")),
    );
    let _ = writeln!(
        out,
        "{}. preflight: health, version and models {:?} on:",
        next(),
        plan.evaluate.models
    );
    for url in servers(plan) {
        let _ = writeln!(out, "   - {url}");
    }
    for (name, variant) in [("baseline", &plan.baseline), ("candidate", &plan.candidate)] {
        let _ = writeln!(out, "{}. {name} run:", next());
        if let Some(apply) = &variant.apply {
            let _ = writeln!(out, "   hook: sh -c {apply:?}");
        }
        if let Some(suite) = &plan.evaluate.suite {
            let _ = writeln!(
                out,
                "   ollama-perfreport run --suite {} --base-url {} --output <report dir>/{name}.json",
                suite.display(),
                plan.evaluate.base_url
            );
        } else {
            let args = load_args(
                &plan.evaluate.loadtest_args,
                &variant.loadtest_args,
                &plan.evaluate.base_url,
            );
            let _ = writeln!(
                out,
                "   ollama-loadtest {} --output <report dir>/{name}.json",
                args.join(" ")
            );
        }
    }
    if gates.compare {
        let _ = writeln!(
            out,
            "{}. gate: ollama-perfreport compare baseline.json candidate.json exits 0",
            next()
        );
    }
    if let Some(prometheus) = plan.prometheus.as_ref().filter(|p| !p.resources.is_empty()) {
        let _ = writeln!(
            out,
            "{}. resources at {} (average over each run; gate: {}):",
            next(),
            prometheus.url,
            gates
                .max_resource_increase_percent
                .map_or("none, evidence only".to_owned(), |p| format!(
                    "+{p}% at most"
                ))
        );
        for (name, query) in &prometheus.resources {
            let _ = writeln!(out, "   - {name}: {query}");
        }
    }
    if let Some(revert) = &plan.candidate.revert {
        let _ = writeln!(
            out,
            "   if the candidate or any stage fails: sh -c {revert:?}"
        );
    }
    for stage in &plan.stages {
        let _ = writeln!(
            out,
            "{}. stage `{}` ({})",
            next(),
            stage.name,
            stage.base_url
        );
        if let Some(apply) = &stage.apply {
            let _ = writeln!(out, "   hook: sh -c {apply:?}");
        }
        let mut args = load_args(&plan.evaluation.loadtest_args, &[], &stage.base_url);
        args.extend(["--duration".to_owned(), format!("{}ms", window.as_millis())]);
        let _ = writeln!(
            out,
            "   smoke load over {window:?}: ollama-loadtest {}",
            args.join(" ")
        );
        if let Some(prometheus) = &plan.prometheus {
            for (name, query) in &prometheus.watch {
                let _ = writeln!(
                    out,
                    "   every {:?}, watch `{name}` must return nothing: {query}",
                    plan.interval()?
                );
            }
        }
        if let Some(revert) = &stage.revert {
            let _ = writeln!(out, "   if this or a later stage fails: sh -c {revert:?}");
        }
    }
    Ok(out)
}

/// Every distinct server the plan touches, evaluation server first.
fn servers(plan: &Plan) -> Vec<String> {
    let mut seen = BTreeSet::new();
    std::iter::once(plan.evaluate.base_url.clone())
        .chain(plan.stages.iter().map(|s| s.base_url.clone()))
        .filter(|url| seen.insert(url.clone()))
        .collect()
}

fn load_args(shared: &[String], extra: &[String], base_url: &str) -> Vec<String> {
    let mut args: Vec<String> = shared.iter().chain(extra).cloned().collect();
    args.extend(["--base-url".to_owned(), base_url.to_owned()]);
    args
}

/// A real run.
struct Runner {
    plan: Plan,
    out_dir: PathBuf,
    loadtest: PathBuf,
    perfreport: Option<PathBuf>,
    prometheus: Option<prom::Api>,
    report: Report,
}

/// A check called every interval while a load run goes on; `false` stops the run.
type Poll<'a> = (&'a mut dyn FnMut() -> bool, Duration);

/// A finished load run.
struct LoadRun {
    report_path: PathBuf,
    summary: Value,
    started: f64,
    ended: f64,
    exit_ok: bool,
}

impl Runner {
    fn new(plan: Plan) -> Result<Self> {
        let root = cmd::workspace_root();
        let out_dir = plan
            .report_dir
            .clone()
            .map_or_else(
                || root.join("logs/rollouts"),
                |d| if d.is_absolute() { d } else { root.join(d) },
            )
            .join(format!("rollout_{}", report::utc_stamp(SystemTime::now())));
        let loadtest = match &plan.tools.loadtest {
            Some(path) => path.clone(),
            None => loadtest::build_release_binary("ollama-loadtest")?,
        };
        let perfreport = if plan.gates.compare || plan.evaluate.suite.is_some() {
            Some(match &plan.tools.perfreport {
                Some(path) => path.clone(),
                None => loadtest::build_release_binary("ollama-perfreport")?,
            })
        } else {
            None
        };
        let prometheus = plan
            .prometheus
            .as_ref()
            .map(|p| prom::Api::new(&p.url))
            .transpose()?;
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        let report = Report::new(&plan.name);
        Ok(Self {
            plan,
            out_dir,
            loadtest,
            perfreport,
            prometheus,
            report,
        })
    }

    /// Runs every step until one fails; writes the report; returns the verdict.
    fn run(mut self) -> Result<(bool, PathBuf)> {
        let passed = self.steps();
        let (md, html) = self.report.write(&self.out_dir)?;
        eprintln!("rollout: report {} and {}", md.display(), html.display());
        let passed = passed?;
        eprintln!(
            "rollout: {}",
            if passed {
                "PASSED every gate"
            } else {
                "FAILED (see report)"
            }
        );
        Ok((passed, md))
    }

    fn steps(&mut self) -> Result<bool> {
        if !self.preflight() {
            return Ok(false);
        }
        let Some(baseline) = self.side("baseline")? else {
            return Ok(false);
        };
        // From here on something may have been applied: an error is a failed gate, so the
        // revert hook still runs.
        let candidate = self.side("candidate");
        let Some(candidate) = self
            .failed_on_error("candidate load run", candidate)
            .flatten()
        else {
            self.revert_candidate();
            return Ok(false);
        };
        let compared = self.compare(&baseline, &candidate);
        if !(self.failed_on_error("compare", compared).unwrap_or(false)
            && self.resources(&baseline, &candidate))
        {
            self.revert_candidate();
            return Ok(false);
        }
        for index in 0..self.plan.stages.len() {
            if !self.stage(index) {
                // A half-rolled-out fleet is not a safe place to stop: the stages that passed
                // go back too, newest first, and so does the evaluation server.
                for earlier in (0..index).rev() {
                    self.revert_stage(earlier);
                }
                self.revert_candidate();
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Turns a step's error into a failed gate (named `what`), so the caller can revert.
    fn failed_on_error<T>(&mut self, what: &str, result: Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.report.push(Gate::new(
                    format!("{what} (error)"),
                    false,
                    format!("{err:#}"),
                ));
                None
            }
        }
    }

    /// Every server answers `GET /` and `/api/version` and lists the plan's models.
    fn preflight(&mut self) -> bool {
        let mut all_ok = true;
        for url in servers(&self.plan) {
            let result = preflight_one(&url, &self.plan.evaluate.models);
            let (passed, evidence) = match result {
                Ok(evidence) => (true, evidence),
                Err(err) => (false, format!("{err:#}")),
            };
            all_ok &= passed;
            self.report
                .push(Gate::new(format!("preflight {url}"), passed, evidence));
        }
        all_ok
    }

    /// Baseline or candidate: optional apply hook, then a load run on the evaluation server.
    fn side(&mut self, name: &str) -> Result<Option<LoadRun>> {
        let variant = if name == "baseline" {
            &self.plan.baseline
        } else {
            &self.plan.candidate
        };
        if let Some(hook) = variant.apply.clone() {
            let base_url = self.plan.evaluate.base_url.clone();
            if !self.hook(&format!("{name} apply hook"), &hook, name, &base_url) {
                return Ok(None);
            }
        }
        let variant = if name == "baseline" {
            &self.plan.baseline
        } else {
            &self.plan.candidate
        };
        let run = if let Some(suite) = &self.plan.evaluate.suite {
            let perfreport = self
                .perfreport
                .clone()
                .context("evaluate.suite needs ollama-perfreport")?;
            let args = [
                "run".to_owned(),
                "--suite".to_owned(),
                suite.display().to_string(),
                "--base-url".to_owned(),
                self.plan.evaluate.base_url.clone(),
            ];
            self.run_tool(&perfreport, name, &args, None)?
        } else {
            let args = load_args(
                &self.plan.evaluate.loadtest_args,
                &variant.loadtest_args,
                &self.plan.evaluate.base_url,
            );
            self.run_tool(&self.loadtest, name, &args, None)?
        };
        let mut problems = Vec::new();
        if !run.exit_ok {
            problems.push("the run exited non-zero".to_owned());
        }
        // A suite report holds one load-test report per scenario and repetition; its SLOs
        // live in the suite, and compare judges it, so the absolute gates apply to
        // single-scenario runs only.
        if name == "candidate" && self.plan.evaluate.suite.is_none() {
            problems.extend(self.slo_problems(&run.summary, None));
        }
        let passed = problems.is_empty();
        let evidence = format!("{}{}", summary_line(&run), problems_text(&problems));
        self.report.push(
            Gate::new(format!("{name} load run"), passed, evidence).with_file(&run.report_path),
        );
        Ok(passed.then_some(run))
    }

    fn compare(&mut self, baseline: &LoadRun, candidate: &LoadRun) -> Result<bool> {
        let Some(perfreport) = self.perfreport.clone() else {
            return Ok(true);
        };
        let mut command = Command::new(&perfreport);
        command
            .arg("compare")
            .arg(&baseline.report_path)
            .arg(&candidate.report_path);
        let shown = cmd::display(&command);
        eprintln!("$ {shown}");
        let output = command
            .output()
            .with_context(|| format!("could not start `{shown}`"))?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        let compare_path = self.out_dir.join("compare.txt");
        std::fs::write(&compare_path, &text)
            .with_context(|| format!("cannot write {}", compare_path.display()))?;
        let passed = output.status.success();
        let evidence = format!("`{shown}` exited {}\n{}", output.status, tail(&text, 40));
        self.report.push(
            Gate::new("compare (ollama-perfreport)".to_owned(), passed, evidence)
                .with_file(&compare_path),
        );
        Ok(passed)
    }

    /// Averages each resource query over both runs' windows and applies the increase gate.
    fn resources(&mut self, baseline: &LoadRun, candidate: &LoadRun) -> bool {
        let (Some(api), Some(prometheus)) =
            (self.prometheus.clone(), self.plan.prometheus.as_ref())
        else {
            return true;
        };
        let limit = self.plan.gates.max_resource_increase_percent;
        let mut all_ok = true;
        for (name, query) in prometheus.resources.clone() {
            let base = average_over(&api, &query, baseline.started, baseline.ended);
            let cand = average_over(&api, &query, candidate.started, candidate.ended);
            let (passed, evidence) = match (base, cand) {
                (Ok(Some(base)), Ok(Some(cand))) => {
                    let change = if base > 0.0 {
                        (cand - base) / base * 100.0
                    } else {
                        0.0
                    };
                    let passed = limit.is_none_or(|limit| cand <= base || change <= limit);
                    (
                        passed,
                        format!(
                            "`{query}`: baseline avg {base:.4}, candidate avg {cand:.4} ({change:+.1}%), limit {}",
                            limit.map_or("none".to_owned(), |l| format!("+{l}%"))
                        ),
                    )
                }
                (Ok(None), _) | (_, Ok(None)) => (
                    false,
                    format!("`{query}` returned no data for a run window"),
                ),
                (Err(err), _) | (_, Err(err)) => (false, format!("`{query}` failed: {err:#}")),
            };
            all_ok &= passed;
            self.report
                .push(Gate::new(format!("resource {name}"), passed, evidence));
        }
        all_ok
    }

    /// One stage: apply hook, smoke load over the window with the watch queries; on any
    /// failure the stage's revert hook runs.
    fn stage(&mut self, index: usize) -> bool {
        let Stage {
            name,
            base_url,
            apply,
            ..
        } = &self.plan.stages[index];
        let (name, base_url, apply) = (name.clone(), base_url.clone(), apply.clone());
        let result = self.stage_steps(&name, &base_url, apply.as_deref());
        let passed = self
            .failed_on_error(&format!("stage {name}"), result)
            .unwrap_or(false);
        if !passed {
            self.revert_stage(index);
        }
        passed
    }

    /// Runs stage `index`'s revert hook, if it has one.
    fn revert_stage(&mut self, index: usize) {
        let Stage {
            name,
            base_url,
            revert,
            ..
        } = &self.plan.stages[index];
        if let Some(revert) = revert.clone() {
            let (name, base_url) = (name.clone(), base_url.clone());
            self.hook(
                &format!("stage {name} revert hook"),
                &revert,
                &name,
                &base_url,
            );
        }
    }

    fn stage_steps(&mut self, name: &str, base_url: &str, apply: Option<&str>) -> Result<bool> {
        if let Some(apply) = apply
            && !self.hook(&format!("stage {name} apply hook"), apply, name, base_url)
        {
            return Ok(false);
        }
        let window = self.plan.window()?;
        let mut args = load_args(&self.plan.evaluation.loadtest_args, &[], base_url);
        args.extend(["--duration".to_owned(), format!("{}ms", window.as_millis())]);
        let watch = self
            .plan
            .prometheus
            .as_ref()
            .map(|p| p.watch.clone())
            .unwrap_or_default();
        let interval = self.plan.interval()?;
        let api = self.prometheus.clone();
        let mut watch_failure = None;
        let mut poll = || {
            if let Some(api) = &api {
                for (query_name, query) in &watch {
                    match api.query(query) {
                        Ok(series) if series.is_empty() => {}
                        Ok(series) => {
                            watch_failure = Some(format!(
                                "watch `{query_name}` returned {} series: {}",
                                series.len(),
                                tail(&Value::Array(series).to_string(), 5)
                            ));
                            return false;
                        }
                        Err(err) => {
                            watch_failure = Some(format!("watch `{query_name}` failed: {err:#}"));
                            return false;
                        }
                    }
                }
            }
            true
        };
        let run = self.run_tool(
            &self.loadtest,
            &format!("stage-{name}"),
            &args,
            Some((&mut poll, interval)),
        )?;
        let mut problems = Vec::new();
        if let Some(failure) = watch_failure {
            problems.push(failure);
        }
        if !run.exit_ok {
            problems.push("smoke load exited non-zero".to_owned());
        }
        problems.extend(self.slo_problems(&run.summary, Some(0)));
        let passed = problems.is_empty();
        let evidence = format!("{}{}", summary_line(&run), problems_text(&problems));
        self.report.push(
            Gate::new(format!("stage {name} watch ({window:?})"), passed, evidence)
                .with_file(&run.report_path),
        );
        Ok(passed)
    }

    fn revert_candidate(&mut self) {
        if let Some(revert) = self.plan.candidate.revert.clone() {
            let base_url = self.plan.evaluate.base_url.clone();
            self.hook("candidate revert hook", &revert, "candidate", &base_url);
        }
    }

    /// Runs a hook through `sh -c`, records it as a gate, and returns whether it passed.
    fn hook(&mut self, what: &str, command: &str, stage: &str, base_url: &str) -> bool {
        eprintln!("$ sh -c {command:?}");
        let output = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("ROLLOUT_NAME", &self.plan.name)
            .env("ROLLOUT_STAGE", stage)
            .env("ROLLOUT_BASE_URL", base_url)
            .current_dir(cmd::workspace_root())
            .stdin(Stdio::null())
            .output();
        let (passed, evidence) = match output {
            Ok(output) => {
                let text = String::from_utf8_lossy(&output.stdout).into_owned()
                    + &String::from_utf8_lossy(&output.stderr);
                (
                    output.status.success(),
                    format!("`{command}` exited {}\n{}", output.status, tail(&text, 20)),
                )
            }
            Err(err) => (false, format!("`{command}` could not start: {err}")),
        };
        self.report
            .push(Gate::new(what.to_owned(), passed, evidence));
        passed
    }

    /// Runs `PROGRAM ARGS --output <dir>/<name>.json` (the load tester, or the perf
    /// reporter's `run`); `poll` (with its interval) is called while it runs and may stop
    /// it early by returning false.
    fn run_tool(
        &self,
        program: &Path,
        name: &str,
        args: &[String],
        poll: Option<Poll<'_>>,
    ) -> Result<LoadRun> {
        let report_path = self.out_dir.join(format!("{name}.json"));
        let mut command = Command::new(program);
        // From the workspace root, like the hooks: relative paths in the plan's flags and
        // the load tester's request log (logs/requests.jsonl, git-ignored) resolve there.
        command
            .current_dir(cmd::workspace_root())
            .args(args)
            .arg("--output")
            .arg(&report_path)
            .stdin(Stdio::null());
        let shown = cmd::display(&command);
        eprintln!("$ {shown}");
        let started = unix_now();
        let mut child = command
            .spawn()
            .with_context(|| format!("could not start `{shown}`"))?;
        let status = match poll {
            None => child.wait()?,
            Some((poll, interval)) => loop {
                let deadline = Instant::now() + interval;
                while Instant::now() < deadline {
                    if child.try_wait()?.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                if !poll() {
                    // Our own child: stop it so the stage fails now, not after the window.
                    let _ = child.kill();
                    break child.wait()?;
                }
            },
        };
        let ended = unix_now();
        let summary = std::fs::read_to_string(&report_path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|mut report| report.get_mut("summary").map(Value::take))
            .unwrap_or(Value::Null);
        Ok(LoadRun {
            report_path,
            summary,
            started,
            ended,
            exit_ok: status.success(),
        })
    }

    /// Absolute SLO gates against a load report's summary; `default_5xx` applies when the
    /// plan sets no `max_5xx`.
    fn slo_problems(&self, summary: &Value, default_5xx: Option<u64>) -> Vec<String> {
        let gates = &self.plan.gates;
        let mut problems = Vec::new();
        if summary.is_null() {
            problems.push("no readable load report".to_owned());
            return problems;
        }
        if let Some(min) = gates.min_success_rate_percent {
            let rate = summary
                .get("success_rate")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            if rate < min {
                problems.push(format!("success rate {rate:.2}% < {min}%"));
            }
        }
        if let Some(max) = gates.max_5xx.or(default_5xx) {
            let count = count_5xx(summary);
            if count > max {
                problems.push(format!("{count} responses were 5xx (at most {max})"));
            }
        }
        if let Some(max) = gates.max_p99_ms {
            let p99 = summary.pointer("/latency_ms/p99").and_then(Value::as_f64);
            match p99 {
                Some(p99) if p99 <= max => {}
                Some(p99) => problems.push(format!("p99 {p99:.1} ms > {max} ms")),
                None => problems.push("no p99 in the report".to_owned()),
            }
        }
        problems
    }
}

/// Preflight of one server: `GET /`, `GET /api/version`, `GET /api/tags`.
fn preflight_one(url: &str, models: &[String]) -> Result<String> {
    let base = http::Url::parse(url)?;
    let root = http::get(&base, "/", PREFLIGHT_TIMEOUT)?;
    if root.status != 200 {
        bail!("GET / answered {}", root.status);
    }
    let version = http::get(&base, "/api/version", PREFLIGHT_TIMEOUT)?;
    let version: Value = serde_json::from_str(&version.body).context("/api/version is not JSON")?;
    let version = version
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let tags = http::get(&base, "/api/tags", PREFLIGHT_TIMEOUT)?;
    let tags: Value = serde_json::from_str(&tags.body).context("/api/tags is not JSON")?;
    let present: Vec<&str> = tags
        .get("models")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|m| m.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<&String> = models
        .iter()
        .filter(|want| {
            !present
                .iter()
                .any(|have| have == want || *have == format!("{want}:latest"))
        })
        .collect();
    if !missing.is_empty() {
        bail!("version {version}; models missing: {missing:?} (present: {present:?})");
    }
    Ok(format!(
        "healthy, version {version}, models present: {models:?}"
    ))
}

/// `avg_over_time` of `query` over `[start, end]` (unix seconds).
pub(crate) fn average_over(
    api: &prom::Api,
    query: &str,
    start: f64,
    end: f64,
) -> Result<Option<f64>> {
    let seconds = (end - start).max(1.0).ceil();
    let step = (seconds / 10.0).clamp(1.0, 15.0).floor();
    let expr = format!("avg(avg_over_time(({query})[{seconds}s:{step}s]))");
    let result = api.query_at(&expr, end)?;
    match result.first() {
        None => Ok(None),
        Some(series) => prom::sample_value(series).map(Some),
    }
}

fn count_5xx(summary: &Value) -> u64 {
    summary
        .get("http_statuses")
        .and_then(Value::as_object)
        .map_or(0, |statuses| {
            statuses
                .iter()
                .filter(|(code, _)| code.starts_with('5'))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
}

fn summary_line(run: &LoadRun) -> String {
    let s = &run.summary;
    if s.is_null() {
        return format!(
            "report {} ({:.0} s; no single-run summary: a suite report, or none written)",
            run.report_path.display(),
            run.ended - run.started
        );
    }
    let num = |ptr: &str| {
        s.pointer(ptr)
            .and_then(Value::as_f64)
            .map_or("?".to_owned(), |v| format!("{v:.1}"))
    };
    format!(
        "{} requests, success {}%, {} req/s, p50 {} ms, p99 {} ms, 5xx {} ({:.0} s)",
        num("/total_requests"),
        num("/success_rate"),
        num("/requests_per_second"),
        num("/latency_ms/p50"),
        num("/latency_ms/p99"),
        count_5xx(s),
        run.ended - run.started
    )
}

fn problems_text(problems: &[String]) -> String {
    problems.iter().fold(String::new(), |mut out, p| {
        out.push_str("\nFAILED: ");
        out.push_str(p);
        out
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
