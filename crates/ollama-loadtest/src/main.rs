//! `ollama-loadtest`: the command line of the load generator. It parses flags, starts an
//! embedded simulator when asked, shows progress, writes the report and turns thresholds
//! into an exit code. Everything else lives in the library.
//!
//! Exit codes: 0 success; 1 the test could not run; 2 a `--fail-if` threshold failed;
//! 3 the safety switch aborted the run; 130 interrupted (Ctrl-C), partial report written.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ollama_loadtest::{
    AbortLimits, Arrival, ClientSettings, Distribution, Endpoint, LoadTest, LoadTestConfig, Mode,
    ModelOptions, PromptOrder, Prompts, Report, Slo, Stop, Threshold, WeightedModel, Workload,
    parse_duration_arg,
};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Load-test an Ollama (or OpenAI-compatible) server with numbers you can trust.
#[derive(Debug, Parser)]
#[command(name = "ollama-loadtest", version, about)]
#[allow(clippy::struct_excessive_bools)]
struct Args {
    /// Requests in the timed window (ignored when --duration is given).
    #[arg(long, default_value_t = 200)]
    requests: u64,
    /// Closed-loop workers (concurrent request loops).
    #[arg(long, default_value_t = 10)]
    workers: usize,
    /// Model, optionally with a weight for a mix: NAME or NAME=WEIGHT; repeat for several.
    #[arg(long = "model", default_value = "llama3.2:latest")]
    models: Vec<String>,
    /// The prompt sent with every request.
    #[arg(long, default_value = "Why is the sky blue? Answer in one sentence.")]
    prompt: String,
    /// JSONL file of prompts (a JSON string or {"prompt": ...} per line); overrides --prompt.
    #[arg(long)]
    prompts_file: Option<PathBuf>,
    /// How prompts from a file are picked.
    #[arg(long, value_enum, default_value_t = OrderArg::RoundRobin)]
    prompt_order: OrderArg,
    /// Run for this long instead of a request count (e.g. 60, 30s, 5m).
    #[arg(long, value_parser = parse_duration_arg)]
    duration: Option<Duration>,
    /// Report path [default: logs/perf_reports/async_load_test_<UTC %Y%m%d_%H%M%S>.json].
    #[arg(long)]
    output: Option<PathBuf>,
    /// Most requests in flight across the client (client max_concurrent_requests).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Most open connections.
    #[arg(long, default_value_t = 50)]
    max_connections: usize,
    /// Most idle keep-alive connections kept.
    #[arg(long, default_value_t = 20)]
    keepalive: usize,
    /// Engine threads [default: one per core], each with its own runtime and client; never
    /// more than the workers (or --max-in-flight) or any client limit. --max-connections,
    /// --keepalive and --concurrency are split across them, so the totals stay as given.
    #[arg(long)]
    threads: Option<usize>,
    /// Requests sampled into the report (and as many failed ones).
    #[arg(long, default_value_t = 100)]
    sample_count: usize,
    /// Warm-up requests before the timed window, left out of the results.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Client read timeout (seconds or a duration).
    #[arg(long, default_value = "300", value_parser = parse_duration_arg)]
    timeout: Duration,
    /// Health-check timeout (seconds or a duration).
    #[arg(long, default_value = "5", value_parser = parse_duration_arg)]
    health_timeout: Duration,
    /// Do not check the server answers before starting.
    #[arg(long)]
    skip_verify: bool,
    /// Closed-loop think time between a worker's requests (seconds or a duration).
    #[arg(long, default_value = "0", value_parser = parse_duration_arg)]
    delay: Duration,
    /// Server URL [default: OLLAMA_HOST, else http://127.0.0.1:11434].
    #[arg(long)]
    base_url: Option<String>,

    /// Open loop: send this many requests per second whatever the server does.
    #[arg(long)]
    rate: Option<f64>,
    /// Open-loop arrival process.
    #[arg(long, value_enum, default_value_t = ArrivalArg::Constant)]
    arrival: ArrivalArg,
    /// Open-loop cap on requests in flight (arrivals past it wait, and are counted).
    #[arg(long, default_value_t = 10_000)]
    max_in_flight: usize,
    /// Ramp up linearly over this long (workers start spread; the rate grows from 0).
    #[arg(long, value_parser = parse_duration_arg)]
    ramp: Option<Duration>,
    /// With --duration: how long to wait for requests in flight at the end.
    #[arg(long, default_value = "30", value_parser = parse_duration_arg)]
    drain_timeout: Duration,
    /// Seed for arrivals, random prompt order and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// API under test.
    #[arg(long, value_enum, default_value_t = EndpointArg::Generate)]
    endpoint: EndpointArg,
    /// Stream responses (needed for TTFT, inter-token gaps and TPOT).
    #[arg(long)]
    stream: bool,
    /// options.num_predict (OpenAI: max_tokens).
    #[arg(long)]
    num_predict: Option<i64>,
    /// options.temperature.
    #[arg(long)]
    temperature: Option<f64>,
    /// options.num_ctx (native endpoints).
    #[arg(long)]
    num_ctx: Option<u64>,
    /// keep_alive sent with each request, e.g. 5m, -1, 0 (native endpoints).
    #[arg(long, allow_hyphen_values = true)]
    model_keep_alive: Option<String>,

    /// Goodput SLOs, e.g. "ttft=500ms,e2e=5s" (also tpot).
    #[arg(long)]
    slo: Option<Slo>,
    /// Fail (exit 2) when this holds, e.g. "p99_e2e>2s", "success_rate<99"; repeatable.
    #[arg(long = "fail-if")]
    fail_if: Vec<Threshold>,
    /// Abort when this percent of requests fail (after --abort-min-requests).
    #[arg(long, default_value_t = 50.0)]
    abort_error_rate: f64,
    /// Abort after this many 503 (server busy) responses.
    #[arg(long, default_value_t = 10)]
    abort_on_503: u64,
    /// Completed requests before the error rate is judged.
    #[arg(long, default_value_t = 20)]
    abort_min_requests: u64,
    /// Disable the safety switch (never against a shared production server).
    #[arg(long)]
    no_abort: bool,

    /// JSONL file of per-request events written by the telemetry layer.
    #[arg(long, default_value = "logs/requests.jsonl")]
    events: PathBuf,
    /// Write no JSONL events.
    #[arg(long)]
    no_events: bool,
    /// Serve Prometheus metrics of the run on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Print the report as JSON on stdout instead of the summary table.
    #[arg(long)]
    json: bool,
    /// Run against an embedded ollama-sim on an ephemeral loopback port.
    #[arg(long)]
    sim: bool,
    /// With --sim: models that answer instantly (for measuring the load generator).
    #[arg(long, requires = "sim")]
    sim_instant: bool,
    /// With --sim: scale of the simulated delays (1 = the simulator's realistic timing).
    #[arg(long, default_value_t = 0.1)]
    sim_time_scale: f64,
    /// With --sim: the simulated server's OLLAMA_NUM_PARALLEL.
    #[arg(long, default_value_t = 4)]
    sim_parallel: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OrderArg {
    RoundRobin,
    Random,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ArrivalArg {
    Constant,
    Poisson,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EndpointArg {
    Generate,
    Chat,
    Embed,
    OpenaiChat,
}

impl Args {
    fn config(&self, output: PathBuf) -> Result<LoadTestConfig> {
        let models = self
            .models
            .iter()
            .map(|m| m.parse::<WeightedModel>().map_err(anyhow::Error::msg))
            .collect::<Result<Vec<_>>>()?;
        let prompts = match &self.prompts_file {
            Some(path) => Prompts::from_jsonl(path)?,
            None => Prompts::single(self.prompt.clone()),
        };
        let mode = match self.rate {
            Some(rate) => Mode::Open {
                rate,
                arrival: match self.arrival {
                    ArrivalArg::Constant => Arrival::Constant,
                    ArrivalArg::Poisson => Arrival::Poisson,
                },
                max_in_flight: self.max_in_flight,
            },
            None => Mode::Closed {
                workers: self.workers,
                delay: self.delay,
            },
        };
        let config = LoadTestConfig {
            client: ClientSettings {
                base_url: self.base_url.clone(),
                max_connections: self.max_connections,
                keepalive: self.keepalive,
                concurrency: self.concurrency,
                timeout: self.timeout,
                health_timeout: self.health_timeout,
                skip_verify: self.skip_verify,
            },
            workload: Workload {
                endpoint: match self.endpoint {
                    EndpointArg::Generate => Endpoint::Generate,
                    EndpointArg::Chat => Endpoint::Chat,
                    EndpointArg::Embed => Endpoint::Embed,
                    EndpointArg::OpenaiChat => Endpoint::OpenAiChat,
                },
                stream: self.stream,
                models,
                prompts,
                prompt_order: match self.prompt_order {
                    OrderArg::RoundRobin => PromptOrder::RoundRobin,
                    OrderArg::Random => PromptOrder::Random,
                },
                options: ModelOptions {
                    num_predict: self.num_predict,
                    temperature: self.temperature,
                    num_ctx: self.num_ctx,
                    keep_alive: self.model_keep_alive.clone(),
                },
            },
            mode,
            stop: self
                .duration
                .map_or(Stop::Requests(self.requests), Stop::Duration),
            warmup: self.warmup,
            ramp: self.ramp,
            seed: self.seed,
            sample_count: self.sample_count,
            slo: self.slo,
            abort: if self.no_abort {
                AbortLimits::off()
            } else {
                AbortLimits {
                    error_rate_percent: Some(self.abort_error_rate),
                    min_requests: self.abort_min_requests,
                    server_busy: Some(self.abort_on_503),
                }
            },
            drain_timeout: self.drain_timeout,
            events_path: (!self.no_events).then(|| self.events.clone()),
            output: Some(output),
            simulated: self.sim,
            threads: self.threads,
        };
        config.validate()?;
        Ok(config)
    }
}

fn default_output() -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%d_%H%M%S");
    PathBuf::from(format!("logs/perf_reports/async_load_test_{stamp}.json"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ollama-loadtest: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    let output = args.output.clone().unwrap_or_else(default_output);
    let mut config = args.config(output.clone())?;
    let sim = if args.sim {
        let mut sim_config = if args.sim_instant {
            ollama_sim::SimConfig::instant()
        } else {
            ollama_sim::SimConfig::default()
        };
        sim_config.time_scale = args.sim_time_scale;
        sim_config.num_parallel = args.sim_parallel;
        let sim = ollama_sim::Sim::start(sim_config)
            .await
            .context("could not start the embedded simulator")?;
        eprintln!(
            "ollama-loadtest: running against an embedded ollama-sim at {} ({}num_parallel {}, time scale {})",
            sim.base_url(),
            if args.sim_instant {
                "instant models, "
            } else {
                ""
            },
            args.sim_parallel,
            args.sim_time_scale,
        );
        config.client.base_url = Some(sim.base_url());
        Some(sim)
    } else {
        None
    };

    let _exporter = match args.metrics_addr {
        Some(addr) => {
            let exporter = ollama_telemetry::install_exporter(addr)
                .context("could not start the Prometheus exporter")?;
            eprintln!("ollama-loadtest: Prometheus metrics at {}", exporter.url());
            Some(exporter)
        }
        None => None,
    };
    let test = LoadTest::new(config)?;
    let cancel = test.cancel_token();
    let interrupted = tokio::spawn({
        let cancel = cancel.clone();
        let signal = interrupt_signal()?;
        async move {
            signal.await;
            eprintln!("ollama-loadtest: interrupted, stopping and writing a partial report");
            cancel.cancel();
        }
    });
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| spawn_progress(&test, args.duration.is_none().then_some(args.requests)));

    let result = test.run().await;
    interrupted.abort();
    if let Some((bar, ticker)) = progress {
        ticker.abort();
        bar.finish_and_clear();
    }
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    let report = result?;
    report
        .write_atomic(&output)
        .with_context(|| format!("could not write the report to {}", output.display()))?;

    let outcomes: Vec<_> = args.fail_if.iter().map(|t| t.check(&report)).collect();
    if args.json {
        println!("{}", report.to_json()?);
    } else {
        print_summary(&report, &output);
        for o in &outcomes {
            let actual = o
                .actual
                .map_or_else(|| "not measured".to_owned(), |a| format!("{a:.3}"));
            let verdict = if o.failed { "FAILED" } else { "ok" };
            println!(
                "  threshold     {:<28} actual {actual:<12} {verdict}",
                o.expression
            );
        }
    }
    let code = if report.aborted.is_some() {
        3
    } else if report.partial {
        130
    } else if outcomes.iter().any(|o| o.failed) {
        2
    } else {
        0
    };
    Ok(ExitCode::from(code))
}

/// A future that completes on Ctrl-C / SIGINT. On Unix the handler is registered here,
/// before the test starts, so an early SIGINT still yields a partial report instead of
/// killing the process.
#[cfg(unix)]
fn interrupt_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint =
        signal(SignalKind::interrupt()).context("could not install the SIGINT handler")?;
    Ok(async move {
        sigint.recv().await;
    })
}

#[cfg(not(unix))]
fn interrupt_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}

fn spawn_progress(
    test: &LoadTest,
    total: Option<u64>,
) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
    let template = if total.is_some() {
        "{bar:30} {pos}/{len} {msg}"
    } else {
        "{spinner} {pos} requests {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    let handle = test.progress();
    let ticker = tokio::spawn({
        let bar = bar.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let p = handle.snapshot();
                bar.set_position(p.completed);
                let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}ms"));
                let rate = if p.elapsed_seconds > 0.0 {
                    p.completed as f64 / p.elapsed_seconds
                } else {
                    0.0
                };
                bar.set_message(if p.warming_up {
                    "warming up".to_owned()
                } else {
                    format!(
                        "{rate:.1} req/s  errors {}  in flight {}  p50 {}  p99 {}",
                        p.failures,
                        p.in_flight,
                        ms(p.p50_ms),
                        ms(p.p99_ms)
                    )
                });
            }
        }
    });
    (bar, ticker)
}

fn print_summary(r: &Report, output: &std::path::Path) {
    let s = &r.summary;
    let c = &r.config;
    let mode = match (c.rate, c.arrival.as_deref()) {
        (Some(rate), Some(arrival)) => format!("open loop, {rate} req/s {arrival}"),
        _ => format!("closed loop, {} workers", c.workers),
    };
    println!(
        "ollama-loadtest {} -> {} {} [{mode}{}]",
        c.model,
        c.base_url,
        c.endpoint,
        if c.stream { ", streamed" } else { "" }
    );
    if let Some(a) = &r.aborted {
        println!(
            "  ABORTED       after {:.1}s: {}",
            a.after_seconds, a.reason
        );
    } else if r.partial {
        println!("  PARTIAL       interrupted before the stop condition");
    }
    println!(
        "  requests      {} total, {} ok, {} failed ({:.2}% success), {} abandoned, warm-up {}",
        s.total_requests, s.successes, s.failures, s.success_rate, s.abandoned, s.warmup.requests
    );
    println!(
        "  throughput    {:.1} req/s over {:.2}s, {:.1} output tokens/s, peak in flight {}",
        s.requests_per_second,
        s.test_duration_seconds,
        s.output_tokens_per_second,
        s.peak_in_flight
    );
    if let Some(g) = &r.goodput {
        println!(
            "  goodput       {} good ({:.2}%), {:.1} req/s",
            g.good_requests, g.good_percent, g.goodput_rps
        );
    }
    if let Some(o) = &r.open_loop {
        let lag = o.schedule_lag_ms.as_ref().map_or(0.0, |l| l.p99);
        println!(
            "  schedule      asked {:.1}/s, sent {:.1}/s, lag p99 {lag:.2}ms, in-flight cap hit {} times",
            o.target_rate, o.achieved_rate, o.max_in_flight_hits
        );
    }
    println!(
        "  {:<14}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "metric", "count", "min", "avg", "p50", "p95", "p99", "max"
    );
    let m = &r.metrics;
    let rows: [(&str, &Option<Distribution>); 12] = [
        ("e2e ms", &m.e2e_ms),
        ("e2e uncorr ms", &m.e2e_uncorrected_ms),
        ("ttft ms", &m.ttft_ms),
        ("ttfc ms", &m.ttfc_ms),
        ("itl ms", &m.itl_ms),
        ("tpot ms", &m.tpot_ms),
        ("queue ms", &m.queue_wait_ms),
        ("srv wait ms", &m.server_wait_ms),
        ("load ms", &m.load_ms),
        ("tokens/s", &m.tokens_per_second),
        ("out tokens", &m.output_tokens),
        ("prompt tokens", &m.prompt_tokens),
    ];
    for (name, d) in rows {
        if let Some(d) = d {
            let cells: Vec<String> = [d.min, d.avg, d.p50, d.p95, d.p99, d.max]
                .iter()
                .map(|&v| format!("{:>10}", cell(v)))
                .collect();
            println!("  {name:<14}{:>10}{}", d.count, cells.concat());
        }
    }
    if !s.errors.is_empty() {
        let errors: Vec<String> = s.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("  errors        {}", errors.join(", "));
    }
    if s.cold_loads > 0 {
        println!(
            "  cold loads    {} requests waited on a model load",
            s.cold_loads
        );
    }
    println!("  report        {}", output.display());
}

/// A table cell: two decimals for small values, fewer as they grow, so columns stay aligned.
fn cell(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{v:.2e}")
    } else if v.abs() >= 1e4 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
