//! Running a suite: every scenario, every repetition, through the load-test library, into
//! one suite report; and the embedded simulator behind `run --sim`.
//!
//! Repetitions of a scenario get different seeds (suite seed + repetition index), so their
//! open-loop arrivals and prompt picks are independent draws: that is what makes the spread
//! between repetitions an honest estimate of run-to-run variation.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ollama_loadtest::{
    ClientSettings, Endpoint as LtEndpoint, LoadTestConfig, Mode, ModelOptions, Prompts, Slo, Stop,
    WeightedModel, Workload,
};

use crate::archive::{ScenarioRun, SuiteReport, now_rfc3339};
use crate::error::Error;
use crate::suite::{Arrival, Endpoint, Scenario, SimSettings, Suite};

/// Open-loop cap on requests in flight, as the load-test CLI's default.
const MAX_IN_FLIGHT: usize = 10_000;

/// How a suite runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The server; `None` resolves `OLLAMA_HOST` like Ollama does.
    pub base_url: Option<String>,
    /// Record the server as the embedded simulator.
    pub simulated: bool,
    /// Seed of repetition 1; repetition `i` uses `seed + i - 1`.
    pub seed: u64,
    /// JSONL request events written by the telemetry layer during the runs, if wanted.
    pub events_path: Option<PathBuf>,
    /// When this turns `true` (Ctrl-C in the CLI), the running repetition stops cleanly
    /// (its report is kept, marked partial), no further one starts, and the suite report
    /// comes back marked partial.
    pub interrupt: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Something that wants to hear about progress (the CLI prints it; tests ignore it).
pub trait Progress {
    /// A repetition is about to start.
    fn starting(&mut self, scenario: &str, repetition: u32, of: u32);
    /// A repetition finished.
    fn finished(&mut self, scenario: &str, repetition: u32, report: &ollama_loadtest::Report);
}

/// Progress that goes nowhere.
impl Progress for () {
    fn starting(&mut self, _: &str, _: u32, _: u32) {}
    fn finished(&mut self, _: &str, _: u32, _: &ollama_loadtest::Report) {}
}

/// Runs every scenario of `suite` in order and returns the suite report (not yet written).
pub async fn run_suite(
    suite: &Suite,
    options: &RunOptions,
    progress: &mut dyn Progress,
) -> Result<SuiteReport, Error> {
    let base_url = options
        .base_url
        .clone()
        .unwrap_or_else(|| std::env::var("OLLAMA_HOST").unwrap_or_default());
    let mut report = SuiteReport::new(suite.clone(), base_url, options.simulated);
    for scenario in &suite.scenarios {
        let reps = scenario.repetitions_in(suite);
        let mut run = ScenarioRun {
            name: scenario.name.clone(),
            repetitions: Vec::with_capacity(reps as usize),
        };
        // A list of prompts becomes a JSONL file for the load test; it lives until the
        // scenario's repetitions are done.
        let prompts = scenario_prompts(scenario)?;
        for rep in 1..=reps {
            if interrupted(options) {
                break;
            }
            progress.starting(&scenario.name, rep, reps);
            let config = load_test_config(
                scenario,
                prompts.prompts.clone(),
                options,
                options.seed.wrapping_add(u64::from(rep - 1)),
            )?;
            let run_err = |e: ollama_loadtest::LoadTestError| Error::Run {
                scenario: scenario.name.clone(),
                message: e.to_string(),
            };
            let test = ollama_loadtest::LoadTest::new(config).map_err(run_err)?;
            // Forward an interrupt to the load test, which then ends the repetition cleanly.
            let watcher = options.interrupt.clone().map(|mut rx| {
                let token = test.cancel_token();
                tokio::spawn(async move {
                    if rx.wait_for(|stop| *stop).await.is_ok() {
                        token.cancel();
                    }
                })
            });
            let result = test.run().await;
            if let Some(w) = watcher {
                w.abort();
            }
            let r = result.map_err(run_err)?;
            if report.base_url.is_empty() {
                report.base_url.clone_from(&r.environment.base_url);
            }
            progress.finished(&scenario.name, rep, &r);
            run.repetitions.push(r);
        }
        if !run.repetitions.is_empty() {
            report.scenarios.push(run);
        }
        if interrupted(options) {
            report.partial = true;
            break;
        }
    }
    report.finished_at = now_rfc3339();
    Ok(report)
}

fn interrupted(options: &RunOptions) -> bool {
    options.interrupt.as_ref().is_some_and(|rx| *rx.borrow())
}

/// The archive file name of a report: `<dir>/<suite>_<UTC %Y%m%d_%H%M%S>.json`.
pub fn archive_path(dir: &Path, suite: &str) -> PathBuf {
    let safe: String = suite
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!(
        "{safe}_{}.json",
        chrono::Utc::now().format("%Y%m%d_%H%M%S")
    ))
}

struct ScenarioPrompts {
    prompts: Option<Prompts>,
    /// Keeps the temporary JSONL file of an inline prompt list alive.
    _file: Option<tempfile::NamedTempFile>,
}

fn scenario_prompts(s: &Scenario) -> Result<ScenarioPrompts, Error> {
    let run_err = |message: String| Error::Run {
        scenario: s.name.clone(),
        message,
    };
    if let Some(path) = &s.prompts_file {
        let p = Prompts::from_jsonl(path).map_err(|e| run_err(e.to_string()))?;
        return Ok(ScenarioPrompts {
            prompts: Some(p),
            _file: None,
        });
    }
    match s.prompts.as_slice() {
        [] => Ok(ScenarioPrompts {
            prompts: None,
            _file: None,
        }),
        [one] => Ok(ScenarioPrompts {
            prompts: Some(Prompts::single(one.clone())),
            _file: None,
        }),
        many => {
            // The load-test library takes several prompts only from a JSONL file.
            let io = |e: std::io::Error| run_err(format!("writing the prompt list: {e}"));
            let mut f = tempfile::Builder::new()
                .prefix("perfreport-prompts-")
                .suffix(".jsonl")
                .tempfile()
                .map_err(io)?;
            for p in many {
                let line = serde_json::to_string(p).map_err(|e| run_err(e.to_string()))?;
                writeln!(f, "{line}").map_err(io)?;
            }
            f.flush().map_err(io)?;
            let prompts = Prompts::from_jsonl(f.path()).map_err(|e| run_err(e.to_string()))?;
            Ok(ScenarioPrompts {
                prompts: Some(prompts),
                _file: Some(f),
            })
        }
    }
}

/// The load-test configuration of one repetition of a scenario.
fn load_test_config(
    s: &Scenario,
    prompts: Option<Prompts>,
    options: &RunOptions,
    seed: u64,
) -> Result<LoadTestConfig, Error> {
    let defaults = LoadTestConfig::default();
    let slo = s
        .slo
        .as_deref()
        .map(str::parse::<Slo>)
        .transpose()
        .map_err(|e| Error::Run {
            scenario: s.name.clone(),
            message: e.to_string(),
        })?;
    let mode = match (s.concurrency, s.rate) {
        (None, Some(rate)) => Mode::Open {
            rate,
            arrival: match s.arrival {
                Some(Arrival::Poisson) => ollama_loadtest::Arrival::Poisson,
                Some(Arrival::Constant) | None => ollama_loadtest::Arrival::Constant,
            },
            max_in_flight: MAX_IN_FLIGHT,
        },
        (c, _) => Mode::Closed {
            workers: c.unwrap_or(1) as usize,
            delay: Duration::ZERO,
        },
    };
    let stop = match (s.requests, s.duration) {
        (_, Some(d)) => Stop::Duration(d),
        (Some(n), None) => Stop::Requests(n),
        (None, None) => defaults.stop,
    };
    let workload = Workload {
        endpoint: match s.endpoint {
            Endpoint::Generate => LtEndpoint::Generate,
            Endpoint::Chat => LtEndpoint::Chat,
            Endpoint::Embed => LtEndpoint::Embed,
            Endpoint::OpenaiChat => LtEndpoint::OpenAiChat,
        },
        stream: s.stream,
        models: vec![WeightedModel {
            name: s.model.clone(),
            weight: 1,
        }],
        prompts: prompts.unwrap_or_else(|| Workload::default().prompts),
        options: ModelOptions {
            num_predict: s.options.num_predict,
            temperature: s.options.temperature,
            num_ctx: s.options.num_ctx,
            keep_alive: s.options.keep_alive.clone(),
        },
        ..Workload::default()
    };
    let config = LoadTestConfig {
        client: ClientSettings {
            base_url: options.base_url.clone(),
            ..ClientSettings::default()
        },
        workload,
        mode,
        stop,
        warmup: s.warmup.unwrap_or(defaults.warmup),
        seed,
        slo,
        events_path: options.events_path.clone(),
        simulated: options.simulated,
        ..defaults
    };
    config.validate().map_err(|e| Error::Run {
        scenario: s.name.clone(),
        message: e.to_string(),
    })?;
    Ok(config)
}

/// The embedded simulator's configuration for `run --sim`: the simulator's default models
/// (`llama3.2:latest`, `all-minilm:latest`) with the suite's `[sim]` settings.
pub fn sim_config(settings: &SimSettings) -> ollama_sim::SimConfig {
    ollama_sim::SimConfig {
        time_scale: settings.time_scale,
        num_parallel: settings.num_parallel,
        seed: settings.seed,
        ..ollama_sim::SimConfig::default()
    }
}
