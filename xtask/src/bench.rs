//! `cargo xtask bench`: the performance figures of docs/PERFORMANCE.md, measured in one run
//! on this machine, side by side with the tools people would pick instead.
//!
//! Everything runs on loopback: an instant `ollama-sim` started as its own release process
//! (so its CPU is not counted against the load tester, and it is the same server for every
//! tool), and a private nginx answering like Ollama's non-streamed generate (the neutral
//! target: it shows what each load generator can drive when the server costs almost
//! nothing). Peers (`oha`, `wrk`, `nginx`) are used when installed and named when missing;
//! the bench installs nothing.
//!
//! Tools that are compared run in interleaved rounds (the order rotates every round), so they
//! all see the same machine state; the table reports medians of rounds and their range, and
//! ratios are taken per round before the median is taken.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::{cmd, http, loadtest, prom};

/// Concurrency of every throughput comparison (connections for oha/wrk, workers and
/// in-flight cap for the load tester, tasks for the bare loop).
const CONCURRENCY: u64 = 64;
/// The non-streamed generate body every tool sends (the load tester's default prompt).
const BODY: &str = r#"{"model":"llama3.2:latest","prompt":"Why is the sky blue? Answer in one sentence.","stream":false}"#;
/// The sim's model with a long answer, for the streaming figure.
const LONG_MODEL: &str = "long:latest";

/// Sizes of one bench run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    quick: bool,
    rounds: usize,
    /// Requests per tool per round in the throughput comparison.
    requests: u64,
    /// Seconds of each capacity and open-loop measurement.
    seconds: u64,
}

impl Plan {
    fn parse(args: &[OsString]) -> Result<Self> {
        let mut quick = false;
        let mut rounds = None;
        let mut iter = args.iter().map(|a| a.to_string_lossy().into_owned());
        while let Some(arg) = iter.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--rounds" => {
                    let value = iter.next().context("--rounds needs a number")?;
                    let n: usize = value
                        .parse()
                        .with_context(|| format!("--rounds: `{value}` is not a number"))?;
                    if n == 0 {
                        bail!("--rounds must be at least 1");
                    }
                    rounds = Some(n);
                }
                other => {
                    bail!("bench: unknown argument `{other}` (usage: bench [--quick] [--rounds N])")
                }
            }
        }
        Ok(if quick {
            Self {
                quick,
                rounds: rounds.unwrap_or(3),
                requests: 30_000,
                seconds: 3,
            }
        } else {
            Self {
                quick,
                rounds: rounds.unwrap_or(5),
                requests: 100_000,
                seconds: 5,
            }
        })
    }
}

/// A child process that is killed when dropped (the bench never leaves servers behind).
struct Background {
    name: &'static str,
    child: Child,
    /// A graceful stop (nginx's master must stop its workers itself: killing the master
    /// alone would leave them running, orphaned).
    stop: Option<Command>,
}

impl Background {
    fn spawn(name: &'static str, command: &mut Command, log: &Path) -> Result<Self> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        eprintln!("$ {} &", cmd::display(command));
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("could not start {name}"))?;
        Ok(Self {
            name,
            child,
            stop: None,
        })
    }

    /// Waits until `url` answers `GET /`, failing early if the process exits.
    fn wait_ready(&mut self, url: &http::Url, log: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                bail!("{} exited ({status}) before answering:\n{text}", self.name);
            }
            if http::get(url, "/", Duration::from_secs(1)).is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not answer GET / within 20 s", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = &mut self.stop {
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which peer tools are installed.
#[derive(Debug)]
struct Peers {
    oha: Option<PathBuf>,
    wrk: Option<PathBuf>,
    nginx: Option<PathBuf>,
    time: Option<PathBuf>,
    valgrind: Option<PathBuf>,
}

impl Peers {
    fn find() -> Self {
        let nginx = cmd::which("nginx").or_else(|| {
            let sbin = PathBuf::from("/usr/sbin/nginx");
            sbin.is_file().then_some(sbin)
        });
        let time = PathBuf::from("/usr/bin/time");
        Self {
            oha: cmd::which("oha"),
            wrk: cmd::which("wrk"),
            nginx,
            time: time.is_file().then_some(time),
            valgrind: cmd::which("valgrind"),
        }
    }

    fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if self.oha.is_none() {
            missing.push("oha (side-by-side load generator): cargo install oha".to_owned());
        }
        if self.wrk.is_none() {
            missing.push("wrk (sim capacity): apt-get install wrk".to_owned());
        }
        if self.nginx.is_none() {
            missing.push("nginx (neutral target): apt-get install nginx-light".to_owned());
        }
        if self.time.is_none() {
            missing.push(
                "/usr/bin/time (exact peak RSS; polling /proc instead): apt-get install time"
                    .to_owned(),
            );
        }
        if self.valgrind.is_none() {
            missing
                .push("valgrind (instructions per request): apt-get install valgrind".to_owned());
        }
        missing
    }
}

/// Binaries the bench runs, built in release mode.
struct Binaries {
    sim: PathBuf,
    loadtest: PathBuf,
    probe: PathBuf,
}

/// A load generator in the throughput comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    /// As users run it: the JSONL request log on.
    Loadtest,
    /// With `--no-events`: like for like with oha, which writes nothing per request.
    LoadtestNoEvents,
    Bare,
    Oha,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Self::Loadtest => "ollama-loadtest",
            Self::LoadtestNoEvents => "ollama-loadtest-no-events",
            Self::Bare => "bare-hyper-util",
            Self::Oha => "oha",
        }
    }

    /// The req/s a run of this tool reports on stdout; errors if any request failed.
    fn requests_per_second(self, stdout: &str, url: &str) -> Result<f64> {
        let report: Value = serde_json::from_str(stdout)
            .with_context(|| format!("{} printed no JSON report", self.name()))?;
        let summary = &report["summary"];
        match self {
            Self::Loadtest | Self::LoadtestNoEvents => {
                if summary["failures"].as_u64() != Some(0) {
                    bail!("ollama-loadtest against {url} had failures: {summary}");
                }
                number(
                    &summary["requests_per_second"],
                    "ollama-loadtest requests_per_second",
                )
            }
            Self::Bare => number(
                &report["requests_per_second"],
                "bench_probe bare requests_per_second",
            ),
            Self::Oha => {
                if summary["successRate"].as_f64() != Some(1.0) {
                    bail!("oha against {url}: not every request succeeded: {summary}");
                }
                number(&summary["requestsPerSec"], "oha requestsPerSec")
            }
        }
    }
}

fn build() -> Result<Binaries> {
    let sim = loadtest::build_release_binary("ollama-sim")?;
    let loadtest = loadtest::build_release_binary("ollama-loadtest")?;
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "--locked",
        "-p",
        "ollama-loadtest",
        "--example",
        "bench_probe",
    ]))
    .context("building the bench probe (ollama-loadtest example bench_probe) failed")?;
    let probe = loadtest::target_dir()
        .join("release/examples")
        .join(format!("bench_probe{}", std::env::consts::EXE_SUFFIX));
    Ok(Binaries {
        sim,
        loadtest,
        probe,
    })
}

/// `cargo xtask bench [--quick] [--rounds N]`.
pub(crate) fn run_cli(args: &[OsString]) -> Result<()> {
    let plan = Plan::parse(args)?;
    let peers = Peers::find();
    let missing = peers.missing();
    for line in &missing {
        eprintln!("bench: missing peer, skipping what needs it: {line}");
    }
    let bins = build()?;
    let root = cmd::workspace_root();
    let out_dir = root.join("logs/bench");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix("xtask-bench.")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let started = utc_stamp(SystemTime::now());
    let load_before = loadavg();

    let sim_addr = prom::free_loopback_port()?;
    let sim_url = format!("http://{sim_addr}");
    let sim_log = work.path().join("sim.log");
    let mut sim = Background::spawn(
        "ollama-sim",
        Command::new(&bins.sim).args([
            "--instant",
            "--listen",
            &sim_addr.to_string(),
            "--model",
            "llama3.2:latest,kind=instant",
            "--model",
            &format!("{LONG_MODEL},kind=instant,output_tokens=100000,context_length=1000000"),
        ]),
        &sim_log,
    )?;
    sim.wait_ready(&http::Url::parse(&sim_url)?, &sim_log)?;
    let nginx = match &peers.nginx {
        Some(nginx) => Some(start_nginx(nginx, work.path())?),
        None => None,
    };

    let ctx = Ctx {
        plan,
        peers: &peers,
        bins: &bins,
        work: work.path(),
    };
    let mut results = serde_json::Map::new();
    results.insert("sim_capacity".into(), ctx.sim_capacity(&sim_url)?);
    let mut targets = vec![("sim", sim_url.clone())];
    if let Some((_, url)) = &nginx {
        targets.push(("nginx", url.clone()));
    }
    results.insert("throughput".into(), ctx.throughput(&targets)?);
    // Against the neutral target when there is one: the server's cost is not counted
    // either way (callgrind counts the tool's own process), but nginx keeps runs short.
    let neutral = targets
        .last()
        .map_or(sim_url.as_str(), |(_, url)| url.as_str());
    results.insert("instructions".into(), ctx.instructions(neutral)?);
    results.insert("streaming".into(), ctx.streaming(&sim_url)?);
    results.insert("overhead".into(), ctx.overhead(&sim_url)?);
    results.insert("memory".into(), ctx.memory(&sim_url)?);
    results.insert("open_loop".into(), ctx.open_loop(&sim_url)?);
    drop(nginx);
    drop(sim);

    let report = json!({
        "started": started,
        "finished": utc_stamp(SystemTime::now()),
        "plan": {"quick": plan.quick, "rounds": plan.rounds, "requests_per_round": plan.requests,
                 "seconds": plan.seconds, "concurrency": CONCURRENCY},
        "machine": {
            "cpus": std::thread::available_parallelism().map(usize::from).ok(),
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
            "git_commit": git_commit(),
        },
        "peers": {
            "oha": peers.oha.as_ref().and_then(|p| version(p, "--version")),
            "wrk": peers.wrk.as_ref().and_then(|p| version(p, "-v")),
            "nginx": peers.nginx.as_ref().and_then(|p| version(p, "-v")),
            "missing": missing,
        },
        "results": results,
    });
    let table = render_table(&report);
    println!("{table}");
    let path = out_dir.join(format!("bench_{}.json", started.replace([':', '-'], "")));
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}

/// What every measurement needs.
struct Ctx<'a> {
    plan: Plan,
    peers: &'a Peers,
    bins: &'a Binaries,
    work: &'a Path,
}

impl Ctx<'_> {
    /// 1. The sim's own capacity, measured by the lightest peer available.
    fn sim_capacity(&self, url: &str) -> Result<Value> {
        eprintln!("bench: [1/6] sim capacity");
        let secs = self.plan.seconds.max(3);
        if let Some(wrk) = &self.peers.wrk {
            let rps = self.wrk(wrk, url, secs)?;
            return Ok(json!({"tool": "wrk -t2", "requests_per_second": rps, "seconds": secs}));
        }
        if self.peers.oha.is_some() {
            let (rps, _) = self.run_tool(Tool::Oha, url, secs * 20_000)?;
            return Ok(json!({"tool": "oha", "requests_per_second": rps}));
        }
        Ok(json!({"tool": null, "skipped": "neither wrk nor oha is installed"}))
    }

    /// 2. Closed-loop req/s of each load generator at concurrency 64, interleaved rounds.
    fn throughput(&self, targets: &[(&str, String)]) -> Result<Value> {
        eprintln!(
            "bench: [2/6] load generator throughput ({} rounds)",
            self.plan.rounds
        );
        let tools = self.load_generators();
        // rates[target][tool] and cpu[target][tool] = one value per round.
        let mut rates = vec![vec![Vec::new(); tools.len()]; targets.len()];
        let mut cpu = vec![vec![Vec::new(); tools.len()]; targets.len()];
        for round in 0..self.plan.rounds {
            for (t, (target, url)) in targets.iter().enumerate() {
                for k in 0..tools.len() {
                    let i = (round + k) % tools.len();
                    let (rps, cpu_us) = self.run_tool(tools[i], url, self.plan.requests)?;
                    eprintln!(
                        "bench:   round {} {target} {}: {rps:.0} req/s, {} us CPU/request",
                        round + 1,
                        tools[i].name(),
                        cpu_us.map_or_else(|| "?".to_owned(), |c| format!("{c:.1}")),
                    );
                    rates[t][i].push(rps);
                    cpu[t][i].extend(cpu_us);
                }
            }
        }
        let mut out = serde_json::Map::new();
        for ((target, _), per_tool) in targets.iter().zip(&rates) {
            let mut entry = serde_json::Map::new();
            let t = targets
                .iter()
                .position(|(name, _)| name == target)
                .unwrap_or(0);
            for ((tool, values), cpu_values) in tools.iter().zip(per_tool).zip(&cpu[t]) {
                let mut summary = summarize(values);
                summary["cpu_us_per_request"] = summarize(cpu_values);
                entry.insert(tool.name().to_owned(), summary);
            }
            let rounds_of =
                |tool: Tool| tools.iter().position(|t| *t == tool).map(|i| &per_tool[i]);
            let ratio = |of: Tool, over: Tool| match (rounds_of(of), rounds_of(over)) {
                (Some(a), Some(b)) => {
                    let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
                    summarize(&ratios)
                }
                _ => Value::Null,
            };
            for (key, of, over) in [
                ("ratio_loadtest_over_bare", Tool::Loadtest, Tool::Bare),
                ("ratio_loadtest_over_oha", Tool::Loadtest, Tool::Oha),
                (
                    "ratio_loadtest_no_events_over_oha",
                    Tool::LoadtestNoEvents,
                    Tool::Oha,
                ),
            ] {
                let value = ratio(of, over);
                if !value.is_null() {
                    entry.insert(key.into(), value);
                }
            }
            out.insert((*target).to_owned(), Value::Object(entry));
        }
        Ok(Value::Object(out))
    }

    /// 2b. User-space instructions per request of each tool (callgrind): unlike req/s, not
    /// moved by what else runs on the machine.
    fn instructions(&self, url: &str) -> Result<Value> {
        let Some(valgrind) = &self.peers.valgrind else {
            return Ok(json!({"skipped": "valgrind is not installed"}));
        };
        eprintln!("bench: [2b] instructions per request (callgrind)");
        let mut out = serde_json::Map::new();
        let tools = self.load_generators();
        for tool in tools {
            let per_request = instructions_per_request(
                valgrind,
                self.work,
                |n| self.invocation(tool, url, n).0,
                |n| self.invocation(tool, url, n).1,
            )?;
            eprintln!(
                "bench:   {}: {per_request:.0} instructions/request",
                tool.name()
            );
            out.insert(tool.name().to_owned(), json!(per_request));
        }
        // The client and telemetry overhead without timing noise: each way of sending the
        // same request, alone in the probe process.
        let events = self.work.join("callgrind-events.jsonl");
        let mut variants = serde_json::Map::new();
        for variant in [
            "bare_hyper_util",
            "ollama_client",
            "instrumented",
            "instrumented_no_events",
        ] {
            let args = |n: u64| {
                [
                    "one",
                    "--url",
                    url,
                    "--variant",
                    variant,
                    "--requests",
                    &n.to_string(),
                    "--events",
                    &events.to_string_lossy(),
                ]
                .map(str::to_owned)
                .to_vec()
            };
            let per_request =
                instructions_per_request(valgrind, self.work, |_| self.bins.probe.clone(), args)?;
            eprintln!("bench:   probe {variant}: {per_request:.0} instructions/request");
            variants.insert(variant.to_owned(), json!(per_request));
        }
        let ratio = |a: &str, b: &str| match (variants[a].as_f64(), variants[b].as_f64()) {
            (Some(a), Some(b)) => json!(a / b),
            _ => Value::Null,
        };
        let ratios = json!({
            "ollama_client/bare_hyper_util": ratio("ollama_client", "bare_hyper_util"),
            "instrumented/ollama_client": ratio("instrumented", "ollama_client"),
            "instrumented_no_events/ollama_client": ratio("instrumented_no_events", "ollama_client"),
        });
        out.insert("probe_variants".into(), Value::Object(variants));
        out.insert("probe_ratios".into(), ratios);
        Ok(Value::Object(out))
    }

    /// 3. Streaming decode throughput (probe `stream`).
    fn streaming(&self, url: &str) -> Result<Value> {
        eprintln!("bench: [3/6] streaming decode");
        let rounds = self.plan.rounds.to_string();
        self.probe(&[
            "stream", "--url", url, "--model", LONG_MODEL, "--rounds", &rounds,
        ])
    }

    /// Figure 4, client and telemetry overhead (probe `overhead`): at concurrency 64 and 1
    /// on two worker threads (one client shared across threads, as in a service), and at
    /// concurrency 64 on one thread (as each of the load tester's lanes runs).
    fn overhead(&self, url: &str) -> Result<Value> {
        eprintln!("bench: [4/6] client and telemetry overhead");
        let events = self.work.join("overhead-events.jsonl");
        let events = events.to_string_lossy();
        let rounds = (self.plan.rounds * 2).to_string();
        let run = |runtime: &str, concurrency: &str, per_round: &str| {
            self.probe(&[
                "--runtime",
                runtime,
                "overhead",
                "--url",
                url,
                "--concurrency",
                concurrency,
                "--rounds",
                &rounds,
                "--per-round",
                per_round,
                "--events",
                &events,
            ])
        };
        let (many, one) = if self.plan.quick {
            ("2000", "500")
        } else {
            ("5000", "1500")
        };
        Ok(json!({
            "concurrency_64": run("multi", "64", many)?,
            "concurrency_1": run("multi", "1", one)?,
            "concurrency_64_one_thread": run("current", "64", many)?,
            "cpu_per_request": self.overhead_cpu(url)?,
        }))
    }

    /// CPU time per request (user + system, every thread of the probe, so the event writer
    /// too) of each way of sending, at concurrency 64 on two worker threads: the cost a
    /// service pays, which time ratios hide when spare cores absorb it. Interleaved rounds;
    /// ratios per round, then their median.
    fn overhead_cpu(&self, url: &str) -> Result<Value> {
        if self.peers.time.is_none() {
            return Ok(json!({"skipped": "/usr/bin/time is not installed"}));
        }
        let variants = [
            "bare_hyper_util",
            "ollama_client",
            "instrumented",
            "instrumented_no_events",
        ];
        let requests: u64 = if self.plan.quick { 10_000 } else { 50_000 };
        let events = self.work.join("cpu-events.jsonl");
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for round in 0..self.plan.rounds {
            for k in 0..variants.len() {
                let i = (round + k) % variants.len();
                let args = [
                    "one",
                    "--url",
                    url,
                    "--variant",
                    variants[i],
                    "--requests",
                    &requests.to_string(),
                    "--events",
                    &events.to_string_lossy(),
                ]
                .map(str::to_owned);
                let (_, us) = self.run_timed(&self.bins.probe, &args, requests)?;
                cpu[i].extend(us);
            }
        }
        let ratio = |a: usize, b: usize| {
            let per_round: Vec<f64> = cpu[a].iter().zip(&cpu[b]).map(|(x, y)| x / y).collect();
            summarize(&per_round)
        };
        let mut out = serde_json::Map::new();
        for (name, values) in variants.iter().zip(&cpu) {
            out.insert(format!("{name}_us"), summarize(values));
        }
        out.insert("ollama_client/bare_hyper_util".into(), ratio(1, 0));
        out.insert("instrumented/ollama_client".into(), ratio(2, 1));
        out.insert("instrumented_no_events/ollama_client".into(), ratio(3, 1));
        Ok(Value::Object(out))
    }

    /// 5. Peak RSS of the load tester (and oha, for comparison) after 100k and 1M requests.
    fn memory(&self, url: &str) -> Result<Value> {
        eprintln!("bench: [5/6] load tester memory");
        let sizes: &[u64] = if self.plan.quick {
            &[100_000]
        } else {
            &[100_000, 1_000_000]
        };
        let mut out = Vec::new();
        let mut tools = vec![Tool::Loadtest];
        if self.peers.oha.is_some() {
            tools.push(Tool::Oha);
        }
        for &n in sizes {
            for &tool in &tools {
                let (program, args) = self.invocation(tool, url, n);
                let (kib, method) = self.peak_rss(&program, &args)?;
                eprintln!(
                    "bench:   {} {n} requests: peak RSS {kib} KiB ({method})",
                    tool.name()
                );
                out.push(
                    json!({"tool": tool.name(), "requests": n, "peak_rss_kib": kib,
                                "method": method}),
                );
            }
        }
        let skipped = self.plan.quick.then_some("1M requests skipped by --quick");
        Ok(json!({"runs": out, "skipped": skipped}))
    }

    /// 6. Open-loop accuracy at 1k and 5k requests/s.
    fn open_loop(&self, url: &str) -> Result<Value> {
        eprintln!("bench: [6/6] open-loop accuracy");
        let mut out = Vec::new();
        for rate in [1_000_u64, 5_000] {
            let rate_arg = rate.to_string();
            let report =
                self.loadtest_report(url, rate * self.plan.seconds, &["--rate", &rate_arg])?;
            let open = &report["open_loop"];
            out.push(json!({
                "requested_rate": rate,
                "achieved_rate": open["achieved_rate"],
                "achieved_over_requested": open["achieved_rate"].as_f64().map(|a| a / rate as f64),
                "schedule_lag_p99_ms": open["schedule_lag_ms"]["p99"],
                "schedule_lag_max_ms": open["schedule_lag_ms"]["max"],
                "success_rate": report["summary"]["success_rate"],
            }));
        }
        Ok(Value::Array(out))
    }

    /// The load generators of the throughput and instruction comparisons: oha only when
    /// installed.
    fn load_generators(&self) -> Vec<Tool> {
        let mut tools = vec![Tool::Loadtest, Tool::Bare, Tool::LoadtestNoEvents];
        if self.peers.oha.is_some() {
            tools.push(Tool::Oha);
        }
        tools
    }

    /// The load tester's arguments for `requests` requests at concurrency 64 against `url`,
    /// with its JSONL request log on (as users run it by default) or off.
    fn loadtest_args(&self, url: &str, requests: u64, events: bool, extra: &[&str]) -> Vec<String> {
        let c = CONCURRENCY.to_string();
        let mut args: Vec<String> = [
            "--base-url",
            url,
            "--concurrency",
            &c,
            "--max-connections",
            &c,
            "--keepalive",
            &c,
            "--requests",
            &requests.to_string(),
            "--warmup",
            &c,
            "--json",
            "--output",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(
            self.work
                .join("loadtest-report.json")
                .to_string_lossy()
                .into_owned(),
        );
        if events {
            // Into the bench's temporary directory, not the default logs/requests.jsonl.
            args.push("--events".into());
            args.push(
                self.work
                    .join("loadtest-events.jsonl")
                    .to_string_lossy()
                    .into_owned(),
            );
        } else {
            args.push("--no-events".into());
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// Runs the load tester for `requests` requests and returns its JSON report.
    fn loadtest_report(&self, url: &str, requests: u64, extra: &[&str]) -> Result<Value> {
        let args = self.loadtest_args(url, requests, true, extra);
        let out = capture(Command::new(&self.bins.loadtest).args(&args))?;
        serde_json::from_str(&out).context("ollama-loadtest --json printed no JSON report")
    }

    fn probe(&self, args: &[&str]) -> Result<Value> {
        let out = capture(Command::new(&self.bins.probe).args(args))?;
        serde_json::from_str(&out).context("bench_probe printed no JSON")
    }

    /// The program and arguments that make `tool` send `requests` non-streamed generate
    /// requests to `url` at concurrency 64.
    fn invocation(&self, tool: Tool, url: &str, requests: u64) -> (PathBuf, Vec<String>) {
        let c = CONCURRENCY.to_string();
        match tool {
            Tool::Loadtest | Tool::LoadtestNoEvents => (
                self.bins.loadtest.clone(),
                self.loadtest_args(
                    url,
                    requests,
                    matches!(tool, Tool::Loadtest),
                    &["--workers", "64"],
                ),
            ),
            Tool::Bare => (
                self.bins.probe.clone(),
                [
                    "bare",
                    "--url",
                    url,
                    "--concurrency",
                    &c,
                    "--requests",
                    &requests.to_string(),
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
            Tool::Oha => (
                self.peers.oha.clone().unwrap_or_else(|| "oha".into()),
                [
                    "-n",
                    &requests.to_string(),
                    "-c",
                    &c,
                    "--no-tui",
                    "--output-format",
                    "json",
                    "-m",
                    "POST",
                    "-H",
                    "content-type: application/json",
                    "-d",
                    BODY,
                    &format!("{url}/api/generate"),
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
        }
    }

    /// Runs `tool` for `requests` requests; returns its req/s and, with /usr/bin/time, the
    /// CPU time (user + system) it used per request, in microseconds.
    fn run_tool(&self, tool: Tool, url: &str, requests: u64) -> Result<(f64, Option<f64>)> {
        let (program, args) = self.invocation(tool, url, requests);
        let (stdout, cpu) = self.run_timed(&program, &args, requests)?;
        Ok((tool.requests_per_second(&stdout, url)?, cpu))
    }

    /// Runs `program`; returns its stdout and, with /usr/bin/time, the CPU time (user +
    /// system, all threads) it used per request, in microseconds.
    fn run_timed(
        &self,
        program: &Path,
        args: &[String],
        requests: u64,
    ) -> Result<(String, Option<f64>)> {
        let Some(time) = &self.peers.time else {
            return Ok((capture(Command::new(program).args(args))?, None));
        };
        let log = self.work.join("cpu.txt");
        let mut command = Command::new(time);
        command
            .args(["-f", "%U %S", "-o"])
            .arg(&log)
            .arg(program)
            .args(args);
        let stdout = capture(&mut command)?;
        let text = std::fs::read_to_string(&log)?;
        let secs: f64 = text
            .split_whitespace()
            .filter_map(|v| v.parse::<f64>().ok())
            .sum();
        #[expect(clippy::cast_precision_loss, reason = "request counts far below 2^52")]
        let per_request = secs * 1e6 / requests as f64;
        Ok((stdout, Some(per_request)))
    }

    fn wrk(&self, wrk: &Path, url: &str, secs: u64) -> Result<f64> {
        let script = self.work.join("generate.lua");
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\nwrk.body = '{BODY}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
            ),
        )?;
        let out = capture(Command::new(wrk).args([
            "-t2",
            "-c",
            &CONCURRENCY.to_string(),
            "-d",
            &format!("{secs}s"),
            "-s",
            &script.to_string_lossy(),
            &format!("{url}/api/generate"),
        ]))?;
        if out.contains("Non-2xx") || out.contains("Socket errors") {
            bail!("wrk against {url} saw errors:\n{out}");
        }
        out.lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no Requests/sec in wrk output:\n{out}"))
    }

    /// Peak RSS (KiB) of `program` run with `args`, and how it was measured.
    fn peak_rss(&self, program: &Path, args: &[String]) -> Result<(u64, &'static str)> {
        if let Some(time) = &self.peers.time {
            let log = self.work.join("time.log");
            let mut command = Command::new(time);
            command
                .arg("-v")
                .arg("-o")
                .arg(&log)
                .arg(program)
                .args(args);
            capture(&mut command)?;
            let text = std::fs::read_to_string(&log)?;
            let kib = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("no peak RSS in /usr/bin/time output:\n{text}"))?;
            return Ok((kib, "/usr/bin/time -v (ru_maxrss)"));
        }
        // VmHWM is the high-water mark; read it until the process exits (the last reading
        // may miss a final spike of under 50 ms).
        let shown = cmd::display(Command::new(program).args(args));
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start `{shown}`"))?;
        let status_path = format!("/proc/{}/status", child.id());
        let mut peak = 0;
        let status = loop {
            if let Ok(text) = std::fs::read_to_string(&status_path)
                && let Some(kib) = text.lines().find_map(|l| {
                    l.strip_prefix("VmHWM:")
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                })
            {
                peak = kib;
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            bail!("`{shown}` failed ({status})");
        }
        Ok((peak, "VmHWM polled every 50 ms from /proc"))
    }
}

/// User-space instructions per request under callgrind: the difference between a run of
/// 5,000 and one of 1,000 requests, so start-up and report writing cancel out.
fn instructions_per_request(
    valgrind: &Path,
    work: &Path,
    program: impl Fn(u64) -> PathBuf,
    args: impl Fn(u64) -> Vec<String>,
) -> Result<f64> {
    let mut refs = Vec::new();
    for requests in [1_000_u64, 5_000] {
        let out_file = work.join("callgrind.out");
        let mut command = Command::new(valgrind);
        command
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out_file.display()))
            .arg(program(requests))
            .args(args(requests));
        let shown = cmd::display(&command);
        eprintln!("$ {shown}");
        let out = command
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("could not start `{shown}`"))?;
        if !out.status.success() {
            bail!("`{shown}` failed ({})", out.status);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let total: f64 = stderr
            .lines()
            .find_map(|l| {
                l.split_once("I   refs:")
                    .map(|(_, v)| v.trim().replace(',', ""))
            })
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no `I refs` in callgrind output:\n{stderr}"))?;
        refs.push(total);
    }
    Ok((refs[1] - refs[0]) / 4_000.0)
}

/// Starts a private nginx (own config, prefix and logs in `work`) answering like Ollama's
/// non-streamed generate; returns it and its base URL.
fn start_nginx(nginx: &Path, work: &Path) -> Result<(Background, String)> {
    let dir = work.join("nginx");
    std::fs::create_dir_all(dir.join("tmp"))?;
    // Workers started by root run unprivileged: they must be able to traverse the dir.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for d in [work, dir.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let addr = prom::free_loopback_port()?;
    let d = dir.display();
    // Single-quoted nginx strings: the body holds no ' and no $.
    let generate = r#"{"model":"llama3.2:latest","created_at":"2026-12-04T10:00:00.000000Z","response":"Hello! How can I help you today?","done":true,"done_reason":"stop","context":[1,2,3],"total_duration":123456789,"load_duration":1234567,"prompt_eval_count":12,"prompt_eval_duration":2345678,"eval_count":9,"eval_duration":98765432}"#;
    let tags = r#"{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest","modified_at":"2026-12-04T10:00:00Z","size":1,"digest":"abc","details":{}}]}"#;
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n access_log off;\n server_tokens off;\n\
         client_body_temp_path {d}/tmp/body;\n proxy_temp_path {d}/tmp/proxy;\n\
         fastcgi_temp_path {d}/tmp/fastcgi;\n uwsgi_temp_path {d}/tmp/uwsgi;\n\
         scgi_temp_path {d}/tmp/scgi;\n keepalive_requests 1000000;\n keepalive_timeout 300;\n\
         tcp_nodelay on;\n default_type application/json;\n\
         server {{\n  listen {addr};\n\
         location = /api/generate {{ return 200 '{generate}'; }}\n\
         location = /api/tags {{ return 200 '{tags}'; }}\n\
         location = /api/ps {{ return 200 '{{\"models\":[]}}'; }}\n\
         location = /api/version {{ return 200 '{{\"version\":\"0.12.3\"}}'; }}\n\
         location = / {{ default_type text/plain; return 200 'Ollama is running'; }}\n\
         location / {{ return 404 '{{\"error\":\"not found\"}}'; }}\n }}\n}}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let log = dir.join("stderr.log");
    let mut prefix = dir.clone().into_os_string();
    prefix.push("/");
    let mut command = Command::new(nginx);
    command.arg("-p").arg(&prefix).arg("-c").arg(&conf_path);
    // -e (the error log used before the config is read) exists from nginx 1.19.5 on.
    if capture_any(Command::new(nginx).arg("-h")).contains("-e filename") {
        command.arg("-e").arg(dir.join("error.log"));
    }
    let mut server = Background::spawn("nginx", &mut command, &log)?;
    let mut stop = Command::new(nginx);
    stop.arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .args(["-s", "stop"]);
    server.stop = Some(stop);
    let url = format!("http://{addr}");
    server.wait_ready(&http::Url::parse(&url)?, &log)?;
    Ok((server, url))
}

/// Runs `command`, returning stdout; a non-zero exit is an error carrying stderr.
fn capture(command: &mut Command) -> Result<String> {
    let shown = cmd::display(command);
    eprintln!("$ {shown}");
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// stdout and stderr of `command` whatever its exit status ("" if it cannot start).
fn capture_any(command: &mut Command) -> String {
    command.output().map_or_else(
        |_| String::new(),
        |o| String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// First line of `program FLAG`, e.g. its version.
fn version(program: &Path, flag: &str) -> Option<String> {
    let text = capture_any(Command::new(program).arg(flag));
    text.lines().next().map(|l| l.trim().to_owned())
}

fn git_commit() -> Option<String> {
    let mut git = Command::new("git");
    git.args(["rev-parse", "--short", "HEAD"])
        .current_dir(cmd::workspace_root());
    let out = capture_any(&mut git);
    out.lines()
        .next()
        .map(str::to_owned)
        .filter(|s| !s.is_empty())
}

/// The 1-, 5- and 15-minute load averages, for the report's note on machine load.
fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn number(value: &Value, what: &str) -> Result<f64> {
    value
        .as_f64()
        .with_context(|| format!("{what}: not a number ({value})"))
}

/// Median, min and max of per-round values.
fn summarize(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some(f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])),
    };
    json!({"median": median, "min": sorted.first(), "max": sorted.last(), "rounds": values})
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `time` (UTC), without a date library.
fn utc_stamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (H. Hinnant), for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The human-readable table of a bench report.
fn render_table(report: &Value) -> String {
    let results = &report["results"];
    let fixed = |v: &Value, digits: usize| {
        v.as_f64()
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.digits$}"))
    };
    let kilo = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_owned(), |x| format!("{:.1}k", x / 1000.0))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nollama-loadtest bench  {}  load avg {} -> {}  ({} rounds, concurrency {CONCURRENCY})",
        report["started"].as_str().unwrap_or("?"),
        report["machine"]["loadavg_before"].as_str().unwrap_or("?"),
        report["machine"]["loadavg_after"].as_str().unwrap_or("?"),
        report["plan"]["rounds"],
    );
    let capacity = &results["sim_capacity"];
    let _ = writeln!(
        out,
        "1. sim capacity: {} req/s ({})",
        kilo(&capacity["requests_per_second"]),
        capacity["tool"]
            .as_str()
            .unwrap_or("not measured: install wrk or oha")
    );
    let _ = writeln!(
        out,
        "2. closed loop, non-streamed generate, req/s median [min..max]:"
    );
    let _ = writeln!(
        out,
        "   {:<7} {:<24} {:<24} {:<24} {:>9} {:>9}",
        "target", "ollama-loadtest", "oha", "bare hyper-util", "lt/oha", "lt/bare"
    );
    if let Some(targets) = results["throughput"].as_object() {
        for (target, entry) in targets {
            let cell = |v: &Value| {
                if v.is_null() {
                    "not installed".to_owned()
                } else {
                    format!(
                        "{} [{}..{}]",
                        kilo(&v["median"]),
                        kilo(&v["min"]),
                        kilo(&v["max"])
                    )
                }
            };
            let _ = writeln!(
                out,
                "   {target:<7} {:<24} {:<24} {:<24} {:>9} {:>9}",
                cell(&entry["ollama-loadtest"]),
                cell(&entry["oha"]),
                cell(&entry["bare-hyper-util"]),
                fixed(&entry["ratio_loadtest_over_oha"]["median"], 3),
                fixed(&entry["ratio_loadtest_over_bare"]["median"], 3),
            );
        }
        for (target, entry) in targets {
            let _ = writeln!(
                out,
                "   {target:<7} like for like with oha (which writes nothing per request): \
                 ollama-loadtest --no-events {} [{}..{}], lt-no-events/oha {}",
                kilo(&entry["ollama-loadtest-no-events"]["median"]),
                kilo(&entry["ollama-loadtest-no-events"]["min"]),
                kilo(&entry["ollama-loadtest-no-events"]["max"]),
                fixed(&entry["ratio_loadtest_no_events_over_oha"]["median"], 3),
            );
        }
    }
    let _ = writeln!(
        out,
        "   CPU us/request (median, user+sys): ollama-loadtest {}, oha {}, bare {} (sim); \
         user-space instructions/request (callgrind): ollama-loadtest {} ({} with --no-events), \
         oha {}, bare {}",
        fixed(
            &results["throughput"]["sim"]["ollama-loadtest"]["cpu_us_per_request"]["median"],
            1
        ),
        fixed(
            &results["throughput"]["sim"]["oha"]["cpu_us_per_request"]["median"],
            1
        ),
        fixed(
            &results["throughput"]["sim"]["bare-hyper-util"]["cpu_us_per_request"]["median"],
            1
        ),
        fixed(&results["instructions"]["ollama-loadtest"], 0),
        fixed(&results["instructions"]["ollama-loadtest-no-events"], 0),
        fixed(&results["instructions"]["oha"], 0),
        fixed(&results["instructions"]["bare-hyper-util"], 0),
    );
    let probe = &results["instructions"]["probe_ratios"];
    let _ = writeln!(
        out,
        "   instructions ratio (callgrind, same request): client/bare {}, instrumented/client {} \
         (metrics only {})",
        fixed(&probe["ollama_client/bare_hyper_util"], 3),
        fixed(&probe["instrumented/ollama_client"], 3),
        fixed(&probe["instrumented_no_events/ollama_client"], 3),
    );
    let stream = &results["streaming"];
    let _ = writeln!(
        out,
        "3. streaming ({} lines): in memory, client decoder {}/s vs split-lines {}/s (ratio {}); \
         over the wire from the sim, client {}/s vs bare {}/s (ratio {})",
        stream["lines_per_stream"],
        kilo(&stream["in_memory"]["client_decoder_chunks_per_second"]),
        kilo(&stream["in_memory"]["split_lines_per_second"]),
        fixed(&stream["in_memory"]["ratio"], 3),
        kilo(&stream["over_the_wire"]["client_chunks_per_second"]),
        kilo(&stream["over_the_wire"]["bare_split_lines_per_second"]),
        fixed(&stream["over_the_wire"]["ratio"], 3),
    );
    let _ = writeln!(
        out,
        "4. overhead, time-per-request ratio, median [q1..q3] of paired rounds:"
    );
    // A ratio's median with its spread: `[q1..q3]` of paired rounds, `[min..max]` of runs.
    let spread = |v: &Value, low: &str, high: &str| {
        format!(
            "{} [{}..{}]",
            fixed(&v["median"], 3),
            fixed(&v[low], 3),
            fixed(&v[high], 3)
        )
    };
    for level in [
        "concurrency_64",
        "concurrency_1",
        "concurrency_64_one_thread",
    ] {
        let ratios = &results["overhead"][level]["time_ratio"];
        let cell = |v: &Value| spread(v, "q1", "q3");
        let _ = writeln!(
            out,
            "   {level}: client/bare {}  instrumented/client {}  (metrics only {})",
            cell(&ratios["ollama_client/bare_hyper_util"]),
            cell(&ratios["instrumented/ollama_client"]),
            cell(&ratios["instrumented_no_events/ollama_client"]),
        );
    }
    let cpu = &results["overhead"]["cpu_per_request"];
    let cpu_cell = |v: &Value| spread(v, "min", "max");
    let _ = writeln!(
        out,
        "   CPU per request, concurrency 64, two threads (us: bare {}, client {}, instrumented {}, \
         metrics only {}): client/bare {}  instrumented/client {}  (metrics only {})",
        fixed(&cpu["bare_hyper_util_us"]["median"], 1),
        fixed(&cpu["ollama_client_us"]["median"], 1),
        fixed(&cpu["instrumented_us"]["median"], 1),
        fixed(&cpu["instrumented_no_events_us"]["median"], 1),
        cpu_cell(&cpu["ollama_client/bare_hyper_util"]),
        cpu_cell(&cpu["instrumented/ollama_client"]),
        cpu_cell(&cpu["instrumented_no_events/ollama_client"]),
    );
    let _ = write!(out, "5. peak RSS:");
    for run in results["memory"]["runs"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            " {} {} requests: {} MiB;",
            run["tool"].as_str().unwrap_or("?"),
            run["requests"],
            fixed(
                &Value::from(run["peak_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0),
                1
            )
        );
    }
    if let Some(skip) = results["memory"]["skipped"].as_str() {
        let _ = write!(out, " ({skip})");
    }
    let _ = writeln!(out);
    let _ = write!(out, "6. open loop:");
    for open in results["open_loop"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            " {}/s -> {}/s achieved ({}), schedule lag p99 {} ms;",
            open["requested_rate"],
            fixed(&open["achieved_rate"], 1),
            fixed(&open["achieved_over_requested"], 4),
            fixed(&open["schedule_lag_p99_ms"], 3),
        );
    }
    let _ = writeln!(out);
    for m in report["peers"]["missing"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "missing peer: {}", m.as_str().unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_are_civil_dates() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(1_709_164_800 + 3_723);
        assert_eq!(utc_stamp(leap_day), "2024-02-29T01:02:03Z");
    }

    #[test]
    fn medians_of_odd_and_even_rounds() {
        let odd = summarize(&[3.0, 1.0, 2.0]);
        assert_eq!(odd["median"], json!(2.0));
        assert_eq!(
            (odd["min"].clone(), odd["max"].clone()),
            (json!(1.0), json!(3.0))
        );
        assert_eq!(summarize(&[4.0, 1.0, 2.0, 3.0])["median"], json!(2.5));
        assert!(summarize(&[])["median"].is_null());
    }

    #[test]
    fn arguments_are_checked() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let quick = Plan::parse(&args(&["--quick", "--rounds", "2"])).map(|p| (p.quick, p.rounds));
        assert_eq!(quick.ok(), Some((true, 2)));
        assert!(Plan::parse(&args(&["--rounds", "0"])).is_err());
        assert!(Plan::parse(&args(&["--rounds", "x"])).is_err());
        assert!(Plan::parse(&args(&["--fast"])).is_err());
    }
}
