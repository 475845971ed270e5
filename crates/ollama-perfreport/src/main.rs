//! `ollama-perfreport`: run performance suites, compare runs, show trends, merge shards,
//! summarise request logs and render reports. The work happens in the library; this file
//! parses flags, prints, and maps outcomes to exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use ollama_perfreport::{
    BootstrapConfig, CompareOptions, Document, Format, Merged, NoiseFloors, Page, RunOptions,
    Suite, Thresholds, Window, archive_path, compare, comparison_markdown, events_markdown,
    merge_documents, parse_time_bound, read_document, read_report, render, report_markdown,
    run_suite, sim_config, summarize_events, trend_dir, trend_markdown,
};

/// Exit code when a comparison finds a regression.
const EXIT_REGRESSION: u8 = 3;
/// Exit code when `run` was interrupted and wrote a partial report (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "ollama-perfreport",
    version,
    about = "Performance reports for an Ollama service: run suites, compare before/after with confidence intervals, trends, shard merging, request-log summaries, Markdown and HTML rendering.",
    arg_required_else_help = true,
    after_help = "Exit codes: 0 success, 1 error, 2 bad usage, 3 `compare` found a regression, 130 `run` was interrupted (Ctrl-C) and wrote a partial report.\nDocs: docs/PERFREPORT.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    /// Markdown.
    Md,
    /// JSON.
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum RenderFormat {
    /// Markdown.
    Md,
    /// One self-contained HTML file.
    Html,
}

#[derive(Subcommand)]
enum Command {
    /// Run a suite (TOML) through the load-test engine and archive one suite report.
    Run {
        /// The suite file (see crates/ollama-perfreport/suites/default.toml).
        #[arg(long)]
        suite: PathBuf,
        /// Run against an embedded simulator on an ephemeral loopback port.
        #[arg(long, conflicts_with = "base_url")]
        sim: bool,
        /// Server base URL (default: OLLAMA_HOST, else http://127.0.0.1:11434).
        #[arg(long)]
        base_url: Option<String>,
        /// Archive folder.
        #[arg(long, default_value = "logs/perf_reports")]
        output_dir: PathBuf,
        /// Write the report here instead of `<output-dir>/<suite>_<UTC time>.json`.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Seed of the first repetition (repetition i uses seed + i - 1).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also write JSONL request events here.
        #[arg(long)]
        events: Option<PathBuf>,
    },
    /// Compare a candidate report with a base report; exit 3 on any regression.
    Compare {
        /// The base ("before") report: a suite report or a load-test report.
        base: PathBuf,
        /// The candidate ("after") report.
        candidate: PathBuf,
        /// Regression threshold in percent: `metric=pct`, `family=pct` (e2e, ttft, tpot) or
        /// `default=pct`. Repeatable; beats the suite's thresholds.
        #[arg(long = "threshold", value_name = "METRIC=PCT")]
        thresholds: Vec<String>,
        /// Absolute noise floor in the metric's unit (`load_time=50`). Repeatable.
        #[arg(long = "noise-floor", value_name = "METRIC=VALUE")]
        noise_floors: Vec<String>,
        /// Confidence level of the intervals.
        #[arg(long, default_value_t = 0.95)]
        confidence: f64,
        /// Bootstrap resamples.
        #[arg(long, default_value_t = 2000)]
        resamples: usize,
        /// Also write the comparison as JSON (for `render`).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// What to print.
        #[arg(long, value_enum, default_value_t = OutFormat::Md)]
        format: OutFormat,
    },
    /// Show every archived report of a folder as a time series per scenario and metric.
    Trend {
        /// The archive folder.
        #[arg(default_value = "logs/perf_reports")]
        dir: PathBuf,
        /// What to print.
        #[arg(long, value_enum, default_value_t = OutFormat::Md)]
        format: OutFormat,
    },
    /// Merge reports of the same scenario from several load generators into one.
    Merge {
        /// Shard reports (all load-test reports, or all suite reports of one suite).
        #[arg(required = true, num_args = 2..)]
        shards: Vec<PathBuf>,
        /// The merged report.
        #[arg(long, short, required = true)]
        output: PathBuf,
    },
    /// Summarise the telemetry JSONL request log per model.
    Events {
        /// The log.
        #[arg(default_value = "logs/requests.jsonl")]
        file: PathBuf,
        /// Only events at or after this time (RFC 3339, or a duration ago such as `2h`).
        #[arg(long)]
        since: Option<String>,
        /// Only events before this time (RFC 3339, or a duration ago).
        #[arg(long)]
        until: Option<String>,
        /// What to print.
        #[arg(long, value_enum, default_value_t = OutFormat::Md)]
        format: OutFormat,
    },
    /// Render reports, comparisons or an archive folder as Markdown or one HTML file.
    Render {
        /// Reports, comparisons (from `compare --output`) or folders (rendered as a trend).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = RenderFormat::Md)]
        format: RenderFormat,
        /// Output file (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // With no arguments, say what the tool can do (and succeed): it is how people meet it.
    if std::env::args_os().len() <= 1 {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        return match cmd.print_long_help() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ollama-perfreport: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bootstrap(confidence: f64, resamples: usize) -> Result<BootstrapConfig> {
    if !(confidence > 0.0 && confidence < 1.0) {
        bail!("--confidence must be between 0 and 1, got {confidence}");
    }
    if resamples < 100 {
        bail!("--resamples must be at least 100, got {resamples}");
    }
    Ok(BootstrapConfig {
        confidence,
        resamples,
        ..BootstrapConfig::default()
    })
}

fn write_output(path: Option<&Path>, text: &str) -> Result<()> {
    match path {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

struct Printer;

impl ollama_perfreport::Progress for Printer {
    fn starting(&mut self, scenario: &str, repetition: u32, of: u32) {
        eprintln!("[{scenario}] repetition {repetition}/{of} ...");
    }

    fn finished(&mut self, scenario: &str, repetition: u32, r: &ollama_loadtest::Report) {
        let s = &r.summary;
        eprintln!(
            "[{scenario}] repetition {repetition}: {} requests, {:.1}% ok, {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms",
            s.total_requests,
            s.success_rate,
            s.requests_per_second,
            s.latency_ms.p50,
            s.latency_ms.p99
        );
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run {
            suite,
            sim,
            base_url,
            output_dir,
            output,
            seed,
            events,
        } => {
            let suite_def = Suite::from_file(&suite)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let report = runtime.block_on(async {
                let sim_handle = if sim {
                    let handle = ollama_sim::Sim::start(sim_config(&suite_def.sim))
                        .await
                        .context("could not start the embedded simulator")?;
                    eprintln!(
                        "ollama-perfreport: running suite `{}` against an embedded ollama-sim at {} (time_scale {})",
                        suite_def.name,
                        handle.base_url(),
                        suite_def.sim.time_scale
                    );
                    Some(handle)
                } else {
                    None
                };
                // Ctrl-C ends the running repetition cleanly and keeps what was measured.
                let (stop, interrupt) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        eprintln!("ollama-perfreport: interrupted; finishing the current repetition's report");
                        let _ = stop.send(true);
                    }
                });
                let options = RunOptions {
                    base_url: sim_handle
                        .as_ref()
                        .map(ollama_sim::SimHandle::base_url)
                        .or(base_url),
                    simulated: sim,
                    seed,
                    events_path: events,
                    interrupt: Some(interrupt),
                };
                let result = run_suite(&suite_def, &options, &mut Printer).await;
                if let Some(h) = sim_handle {
                    h.shutdown().await;
                }
                anyhow::Ok(result?)
            })?;
            let path = output.unwrap_or_else(|| archive_path(&output_dir, &suite_def.name));
            report.write_atomic(&path)?;
            let label = path.display().to_string();
            print!(
                "{}",
                report_markdown(&label, &report, &BootstrapConfig::default())?
            );
            eprintln!("wrote {label}");
            if report.partial {
                eprintln!("ollama-perfreport: the report is partial (interrupted)");
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare {
            base,
            candidate,
            thresholds,
            noise_floors,
            confidence,
            resamples,
            output,
            format,
        } => {
            let mut options = CompareOptions {
                bootstrap: bootstrap(confidence, resamples)?,
                ..CompareOptions::default()
            };
            let mut t = Thresholds::new();
            for flag in &thresholds {
                t.insert_flag(flag).map_err(anyhow::Error::msg)?;
            }
            options.thresholds = t;
            let mut f = NoiseFloors::new();
            for flag in &noise_floors {
                let (k, v) = flag
                    .split_once('=')
                    .with_context(|| format!("noise floor `{flag}` is not METRIC=VALUE"))?;
                let v: f64 = v
                    .trim()
                    .parse()
                    .with_context(|| format!("noise floor `{flag}`: not a number"))?;
                f.insert(k.trim(), v).map_err(anyhow::Error::msg)?;
            }
            options.noise_floors = f;
            let b = read_report(&base)?;
            let c = read_report(&candidate)?;
            let cmp = compare(
                &b,
                &base.display().to_string(),
                &c,
                &candidate.display().to_string(),
                &options,
            )?;
            if let Some(out) = &output {
                write_output(Some(out), &json(&cmp)?)?;
            }
            match format {
                OutFormat::Md => print!("{}", comparison_markdown(&cmp)),
                OutFormat::Json => print!("{}", json(&cmp)?),
            }
            for w in &cmp.warnings {
                eprintln!("ollama-perfreport: warning: {w}");
            }
            if cmp.has_regression() {
                eprintln!("ollama-perfreport: regression found");
                Ok(ExitCode::from(EXIT_REGRESSION))
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Trend { dir, format } => {
            let t = trend_dir(&dir, &BootstrapConfig::default())?;
            match format {
                OutFormat::Md => print!("{}", trend_markdown(&t)),
                OutFormat::Json => print!("{}", json(&t)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge { shards, output } => {
            let docs = shards
                .iter()
                .map(|p| Ok((p.display().to_string(), read_document(p)?)))
                .collect::<Result<Vec<_>>>()?;
            match merge_documents(docs)? {
                Merged::LoadTest(r) => r.write_atomic(&output)?,
                Merged::Suite(s) => s.write_atomic(&output)?,
            }
            eprintln!("merged {} shards into {}", shards.len(), output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Events {
            file,
            since,
            until,
            format,
        } => {
            let now = chrono::Utc::now();
            let bound = |s: Option<String>, flag: &str| {
                s.map(|s| parse_time_bound(&s, now).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
                    .transpose()
            };
            let window = Window {
                since: bound(since, "--since")?,
                until: bound(until, "--until")?,
            };
            let summary = summarize_events(&file, window)?;
            match format {
                OutFormat::Md => print!("{}", events_markdown(&summary)),
                OutFormat::Json => print!("{}", json(&summary)?),
            }
            if summary.malformed > 0 {
                eprintln!(
                    "ollama-perfreport: warning: {} malformed lines in {} (first at line {})",
                    summary.malformed,
                    file.display(),
                    summary.malformed_lines.first().map_or(0, |l| l.line)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Render {
            inputs,
            format,
            output,
        } => {
            let cfg = BootstrapConfig::default();
            let mut page = Page::default();
            for input in &inputs {
                if input.is_dir() {
                    if page.trend.is_some() {
                        bail!("render takes at most one folder");
                    }
                    page.trend = Some(trend_dir(input, &cfg)?);
                    continue;
                }
                let label = input.display().to_string();
                match read_document(input)? {
                    Document::Comparison(c) => page.comparisons.push(*c),
                    Document::Suite(r) => page.reports.push((label, *r)),
                    Document::LoadTest(r) => page
                        .reports
                        .push((label, ollama_perfreport::SuiteReport::from_loadtest(*r))),
                }
            }
            if page.trend.is_none() && page.reports.len() >= 2 {
                page.trend = Some(ollama_perfreport::trend_of(page.reports.clone(), &cfg)?);
            }
            let format = match format {
                RenderFormat::Md => Format::Markdown,
                RenderFormat::Html => Format::Html,
            };
            let text = render(&page, format, &cfg)?;
            write_output(output.as_deref(), &text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
