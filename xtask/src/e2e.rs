//! `cargo xtask e2e`: the real-LLM end-to-end suite. It makes llama.cpp's `llama-server`
//! available (see [`crate::llama`]), starts it with four parallel slots and `--metrics`, and
//! checks that our figures agree with the server's own:
//!
//! 1. the client's `/v1` chat completion, plain and streamed (`crates/ollama-client/tests/
//!    real_llm.rs`, built with `--features real-llm`): usage, per-request `timings`, counters;
//! 2. `ollama-loadtest` with the streamed `/v1/chat/completions` workload, closed loop and
//!    open loop, each checked against the server's counter deltas ([`crate::e2e_agree`]);
//! 3. the sim calibrated from the closed-loop run ([`crate::e2e_calibrate`]) under the same
//!    workloads, real and sim side by side.
//!
//! Everything is built before the server starts, the server is stopped whatever happens
//! (the guard kills it on drop), and the outputs land in `logs/e2e/` (git-ignored):
//! reports, the server log, the calibrated profile and `summary.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::e2e_agree::{self, Counters, Report};
use crate::e2e_calibrate;
use crate::llama::{Cache, LlamaServer, ServerOptions};
use crate::loadtest::build_release_binary;
use crate::{cmd, http};

/// Parallel slots of the real server (and of the calibrated sim).
const PARALLEL: u32 = 4;
/// Context per slot, tokens.
const CONTEXT_PER_SLOT: u32 = 2048;
/// The name the load tests send (llama-server serves its one model under any name).
const MODEL: &str = "gemma3-270m";
/// Tokens per answer. Small, so the suite stays short on a slow machine.
const MAX_TOKENS: &str = "24";
/// The prompts, sent round-robin. Several, so the server's prompt cache does not turn
/// every prompt into a full hit and the sim (whose jitter is seeded per prompt) varies.
const PROMPTS: &[&str] = &[
    "Why is the sky blue? Answer in one sentence.",
    "What makes the sea salty? Answer briefly.",
    "Explain in one sentence how a rainbow forms.",
    "Why do leaves change colour in autumn?",
    "What is the boiling point of water on a high mountain, and why?",
    "Describe in one sentence what a compiler does.",
    "Why does ice float on water?",
    "How does a bicycle stay upright when it moves?",
];

/// One load-test workload, run against the real server and then against the sim.
struct Workload {
    name: &'static str,
    requests: u64,
    /// At most as many requests in flight as the server has slots (see
    /// [`e2e_agree::loadtest_checks`]).
    queue_free: bool,
    args: &'static [&'static str],
}

/// Measures how many tokens the sim counts for the prompts (it has no real tokenizer).
const PROBE: Workload = Workload {
    name: "sim prompt-token probe",
    requests: 8,
    queue_free: true,
    args: &["--workers", "4"],
};

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "closed loop, 4 workers",
        requests: 20,
        queue_free: true,
        args: &["--workers", "4"],
    },
    Workload {
        name: "open loop, Poisson 0.5 req/s",
        requests: 12,
        queue_free: false,
        args: &["--rate", "0.5", "--arrival", "poisson"],
    },
];

/// Runs the suite; fails after stopping the server when any part failed.
pub(crate) fn run() -> Result<()> {
    let started = Instant::now();
    let out = cmd::workspace_root().join("logs").join("e2e");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let prompts = out.join("prompts.jsonl");
    let lines: Vec<String> = PROMPTS
        .iter()
        .map(|p| Value::String((*p).to_owned()).to_string())
        .collect();
    std::fs::write(&prompts, lines.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", prompts.display()))?;

    let cache = Cache::locate()?;
    let server_binary = cache.server_binary()?;
    let model = cache.model()?;
    // Build everything first: compilers and the server must not share the CPU.
    let loadtest = build_release_binary("ollama-loadtest")?;
    let sim = build_release_binary("ollama-sim")?;
    cmd::run(client_test().arg("--no-run"))?;
    eprintln!(
        "e2e: provisioned and built in {:.0}s",
        started.elapsed().as_secs_f64()
    );

    let suite_started = Instant::now();
    let options = ServerOptions::new(PARALLEL, CONTEXT_PER_SLOT);
    let load_started = Instant::now();
    let mut server = LlamaServer::start(&server_binary, &model, &options, &out)?;
    let ready_in = load_started.elapsed();
    let mut summary = format!(
        "# Real-LLM end to end\n\nllama-server ({} slots, {} threads, {} context) ready in {:.1}s\n\n",
        options.parallel,
        options.threads,
        options.context,
        ready_in.as_secs_f64()
    );
    let mut failures = Vec::new();

    // 1. The client against the real server.
    let client = cmd::run(client_test().env("REAL_LLM_BASE_URL", server.base_url()));
    let _ = writeln!(
        summary,
        "client /v1 tests (crates/ollama-client/tests/real_llm.rs): {}\n",
        if client.is_ok() { "ok" } else { "FAILED" }
    );
    if let Err(err) = client {
        failures.push(format!("client tests: {err:#}"));
    }

    // 2. The load tests against the real server, each checked against the counters.
    let mut real_reports = Vec::new();
    for (index, workload) in WORKLOADS.iter().enumerate() {
        server.check_alive()?;
        let before = server.metrics()?;
        let path = out.join(format!("real-{index}.json"));
        let ran = run_loadtest(&loadtest, server.base_url(), workload, 0, &prompts, &path);
        let report = ran.and_then(|()| read_json(&path));
        let checks = report
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|r| {
                let after = settled_metrics(&server, &before, r)?;
                e2e_agree::loadtest_checks(
                    r,
                    workload.requests,
                    workload.queue_free,
                    &before,
                    &after,
                )
            });
        match checks {
            Ok(checks) => {
                let table = e2e_agree::table(&format!("Agreement: {}", workload.name), &checks);
                eprintln!("{table}");
                summary.push_str(&table);
                summary.push('\n');
                if let Err(err) = e2e_agree::require_all(&checks) {
                    failures.push(format!("{}: {err:#}", workload.name));
                }
            }
            Err(err) => failures.push(format!("{}: {err:#}", workload.name)),
        }
        real_reports.push(report.ok());
    }
    server.check_alive()?;
    let server_log = server.log_tail();
    drop(server);

    // 3. Calibrate the sim from the closed-loop run; same workloads against it.
    match real_reports.first() {
        Some(Some(closed)) => {
            let binaries = (sim.as_path(), loadtest.as_path());
            match compare_with_sim(binaries, closed, ready_in, &real_reports, &prompts, &out) {
                Ok(table) => {
                    eprintln!("{table}");
                    summary.push_str(&table);
                }
                Err(err) => failures.push(format!("sim comparison: {err:#}")),
            }
        }
        _ => failures.push("sim comparison: no closed-loop report to calibrate from".into()),
    }

    let _ = writeln!(
        summary,
        "\nSuite time (server up to here, sim included): {:.0}s",
        suite_started.elapsed().as_secs_f64()
    );
    let summary_path = out.join("summary.md");
    std::fs::write(&summary_path, &summary)
        .with_context(|| format!("cannot write {}", summary_path.display()))?;
    eprintln!(
        "e2e: summary in {}; total {:.0}s",
        summary_path.display(),
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!(
            "real-LLM end to end failed:\n- {}\n--- llama-server log (last lines)\n{server_log}",
            failures.join("\n- ")
        );
    }
    Ok(())
}

/// `cargo test` of the client's real-LLM test, one test at a time (they read server-wide
/// counters; the file also serialises them itself).
fn client_test() -> Command {
    let mut command = cmd::cargo();
    command.args([
        "test",
        "--locked",
        "-p",
        "ollama-client",
        "--features",
        "real-llm",
        "--test",
        "real_llm",
    ]);
    command
}

/// Runs one workload with `warmup` warm-up requests, writing its report to `path`.
fn run_loadtest(
    binary: &Path,
    base_url: &str,
    workload: &Workload,
    warmup: u32,
    prompts: &Path,
    path: &Path,
) -> Result<()> {
    // A report left by an earlier run must not pass for this one's.
    if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    let requests = workload.requests.to_string();
    let warmup = warmup.to_string();
    let mut command = Command::new(binary);
    command
        .current_dir(cmd::workspace_root())
        .args(["--base-url", base_url, "--skip-verify", "--no-events"])
        .args(["--endpoint", "openai-chat", "--stream", "--model", MODEL])
        .args(["--num-predict", MAX_TOKENS, "--requests", &requests])
        .args(["--warmup", &warmup, "--seed", "7", "--timeout", "120"])
        // llama-server (cpp-httplib) closes the connection after every streamed response
        // while advertising `Keep-Alive`; a pooled connection reused right after is dead
        // and the request fails before the response head. Open a connection per request.
        .args(["--keepalive", "0"])
        .args(workload.args)
        .arg("--prompts-file")
        .arg(prompts)
        .arg("--output")
        .arg(path);
    cmd::run(&mut command).with_context(|| format!("load test `{}`", workload.name))
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The server's counters once they include every token of the run: llama-server updates
/// them right after sending a final answer, so poll briefly. After the deadline the last
/// reading is returned and the checks show the mismatch.
fn settled_metrics(server: &LlamaServer, before: &Counters, report: &Value) -> Result<Counters> {
    let expected = Report(report).number("summary.output_tokens_total")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = server.metrics()?;
        let moved = now
            .get("llamacpp:tokens_predicted_total")
            .copied()
            .unwrap_or(0.0)
            - before
                .get("llamacpp:tokens_predicted_total")
                .copied()
                .unwrap_or(0.0);
        let idle = now.get("llamacpp:requests_processing") == Some(&0.0);
        if (moved >= expected && idle) || Instant::now() > deadline {
            return Ok(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Calibrates a profile from `closed`, runs every workload against `ollama-sim` with it
/// (one warm-up request, which pays the profile's load time as the real server paid it
/// before the run), and renders real and sim side by side.
///
/// Calibration takes two steps: the sim counts prompt tokens its own way, so a first
/// profile serves a probe run that measures the sim's count for the same prompts, and the
/// final profile converts the prompt speed to it (`--sim-prompt-tokens`). The probe uses
/// no real timing, only the sim's token count.
fn compare_with_sim(
    (sim_binary, loadtest): (&Path, &Path),
    closed: &Value,
    ready_in: Duration,
    real_reports: &[Option<Value>],
    prompts: &Path,
    out: &Path,
) -> Result<String> {
    let source = "logs/e2e/real-0.json";
    let profile_path = out.join("profile.toml");
    let first = e2e_calibrate::profile(closed, PARALLEL, Some(ready_in), None, source)?;
    std::fs::write(&profile_path, first.to_toml())
        .with_context(|| format!("cannot write {}", profile_path.display()))?;
    let probe_path = out.join("sim-probe.json");
    {
        let sim = SimServer::start(sim_binary, &profile_path, out)?;
        run_loadtest(loadtest, &sim.base_url, &PROBE, 0, prompts, &probe_path)?;
    }
    let sim_tokens = Report(&read_json(&probe_path)?).number("metrics.prompt_tokens.p50")?;
    let profile =
        e2e_calibrate::profile(closed, PARALLEL, Some(ready_in), Some(sim_tokens), source)?;
    std::fs::write(&profile_path, profile.to_toml())
        .with_context(|| format!("cannot write {}", profile_path.display()))?;
    let sim = SimServer::start(sim_binary, &profile_path, out)?;
    let mut table = format!(
        "### Sim calibrated from the closed-loop run vs real\n\n\
         Profile ({}): {:.1} tok/s per slot, prompt {:.0} sim tok/s (the sim counts {} \
         prompt tokens where the server counts {}), jitter {:.2}, {} output tokens, load {} \
         ms, {} slots\n\n\
         | workload | metric | real | sim | sim/real |\n|---|---|---:|---:|---:|\n",
        profile_path.display(),
        profile.tokens_per_sec,
        profile.prompt_tokens_per_sec,
        sim_tokens,
        Report(closed).number("metrics.prompt_tokens.p50")?,
        profile.jitter,
        profile.output_tokens,
        profile.load_time.as_millis(),
        profile.parallel
    );
    for (index, (workload, real)) in WORKLOADS.iter().zip(real_reports).enumerate() {
        let Some(real) = real else {
            let _ = writeln!(table, "| {} | (no real report) | | | |", workload.name);
            continue;
        };
        let path = out.join(format!("sim-{index}.json"));
        run_loadtest(loadtest, &sim.base_url, workload, 1, prompts, &path)?;
        let simulated = read_json(&path)?;
        for (label, field) in [
            ("e2e p50 ms", "metrics.e2e_ms.p50"),
            ("e2e p95 ms", "metrics.e2e_ms.p95"),
            ("TTFT p50 ms", "metrics.ttft_ms.p50"),
            ("TTFT p95 ms", "metrics.ttft_ms.p95"),
            ("decode tok/s p50", "metrics.tokens_per_second.p50"),
            ("output tokens mean", "metrics.output_tokens.avg"),
        ] {
            let real_v = Report(real).number(field)?;
            let sim_v = Report(&simulated).number(field)?;
            let _ = writeln!(
                table,
                "| {} | {label} | {real_v:.1} | {sim_v:.1} | {:.2} |",
                workload.name,
                sim_v / real_v
            );
        }
    }
    Ok(table)
}

/// An `ollama-sim` process on a free loopback port; killed when dropped.
struct SimServer {
    child: Child,
    base_url: String,
}

impl SimServer {
    fn start(binary: &Path, config: &Path, out: &Path) -> Result<Self> {
        let addr = crate::prom::free_loopback_port()?;
        let log: PathBuf = out.join("ollama-sim.log");
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(config)
            .args(["--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        eprintln!("$ {} &", cmd::display(&command));
        let child = command
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let mut sim = Self {
            child,
            base_url: format!("http://{addr}"),
        };
        let url = http::Url::parse(&sim.base_url)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = sim.child.try_wait()? {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("ollama-sim exited early ({status}):\n{text}");
            }
            if http::get(&url, "/api/version", Duration::from_secs(2))
                .is_ok_and(|r| r.status == 200)
            {
                return Ok(sim);
            }
            if Instant::now() > deadline {
                bail!("ollama-sim did not answer /api/version within 30s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        // Our own child: an error only means it has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
