//! The run: connect, probe the environment, warm up, then one timed window driven in
//! closed loop (workers) or open loop (a schedule), then the report.
//!
//! Cancellation is layered. `user` is the caller's token (Ctrl-C); `halt` is its child and
//! is also cancelled by the safety switch: once it fires nothing new is sent. `abandon` is
//! a child of `halt` that is additionally cancelled when the drain timeout of a timed run
//! expires: it drops requests still in flight, which are counted as abandoned and kept
//! out of every statistic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AbortLimits, ConfigError, LoadTestConfig, Mode, PromptOrder, Stop};
use crate::prompts::Prompts;
use crate::recorder::{Completed, Progress, Recorder};
use crate::report::{
    Abort, AbortLimitsRecord, ConfigRecord, Environment, ModelWeightRecord, OpenLoop,
    OptionsRecord, Report, SCHEMA_VERSION, ToolInfo, WarmupSummary,
};
use crate::schedule::{Arrival, Schedule};
use crate::stats::HistogramError;
use crate::upstream::{ConnectError, Upstream};

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum LoadTestError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server could not be reached or the client could not be built.
    #[error("cannot use the server")]
    Connect(#[source] ollama_client::Error),
    /// Telemetry (the JSONL event log) could not be set up.
    #[error(transparent)]
    Telemetry(#[from] ollama_telemetry::TelemetryError),
    /// A histogram could not be serialized into the report.
    #[error(transparent)]
    Histogram(#[from] HistogramError),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A configured load test, ready to run. Take its cancel token and progress handle
/// before calling [`LoadTest::run`].
#[derive(Debug)]
pub struct LoadTest {
    config: LoadTestConfig,
    user: CancellationToken,
    live: Arc<Live>,
}

/// Live state for progress displays.
#[derive(Debug, Default)]
struct Live {
    window: OnceLock<Arc<Shared>>,
    warming: AtomicBool,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

/// A cheap handle for reading a running test's progress from another task.
#[derive(Debug, Clone)]
pub struct ProgressHandle(Arc<Live>);

impl ProgressHandle {
    /// A snapshot of the timed window so far (zeros during warm-up).
    pub fn snapshot(&self) -> Progress {
        let live = &self.0;
        let mut p = live
            .window
            .get()
            .map(|s| lock(&s.recorder).progress())
            .unwrap_or_default();
        p.in_flight = live.in_flight.load(Ordering::Relaxed);
        p.warming_up = live.warming.load(Ordering::Relaxed);
        p
    }
}

/// Runs a load test to its end and returns the report.
pub async fn run(config: LoadTestConfig) -> Result<Report, LoadTestError> {
    LoadTest::new(config)?.run().await
}

/// Which model and prompt request `index` uses.
#[derive(Debug)]
struct Plan {
    models: Vec<String>,
    /// One entry per unit of weight, so `cycle[i % len]` honours the mix exactly per cycle.
    cycle: Vec<usize>,
    prompts: Prompts,
    order: PromptOrder,
    seed: u64,
}

impl Plan {
    fn new(config: &LoadTestConfig) -> Self {
        let w = &config.workload;
        let cycle = w
            .models
            .iter()
            .enumerate()
            .flat_map(|(i, m)| std::iter::repeat_n(i, m.weight as usize))
            .collect();
        Self {
            models: w.models.iter().map(|m| m.name.clone()).collect(),
            cycle,
            prompts: w.prompts.clone(),
            order: w.prompt_order,
            seed: config.seed,
        }
    }

    fn pick(&self, index: u64) -> (usize, &str) {
        let model = self.cycle[(index % self.cycle.len() as u64) as usize];
        (model, self.prompts.pick(index, self.order, self.seed))
    }
}

/// State shared by every task of the timed window.
#[derive(Debug)]
struct Shared {
    recorder: Mutex<Recorder>,
    start: Instant,
    halt: CancellationToken,
    abort: OnceLock<Abort>,
    limits: AbortLimits,
    abandoned: AtomicU64,
    models: Vec<String>,
}

impl Shared {
    fn record(&self, c: Completed) {
        let model = c.model;
        let mut rec = lock(&self.recorder);
        rec.record(c, self.models.get(model).map_or("", String::as_str));
        let reason = self.abort_reason(&rec);
        drop(rec);
        if let Some(reason) = reason {
            let abort = Abort {
                reason,
                after_seconds: self.start.elapsed().as_secs_f64(),
            };
            if self.abort.set(abort).is_ok() {
                self.halt.cancel();
            }
        }
    }

    fn abort_reason(&self, rec: &Recorder) -> Option<String> {
        let l = &self.limits;
        if let Some(limit) = l.server_busy
            && rec.server_busy() >= limit
        {
            return Some(format!(
                "{} server-busy (503) responses reached the limit of {limit}",
                rec.server_busy()
            ));
        }
        let done = rec.completed();
        if let Some(limit) = l.error_rate_percent
            && done >= l.min_requests.max(1)
        {
            let rate = rec.failures() as f64 * 100.0 / done as f64;
            if rate >= limit {
                return Some(format!(
                    "error rate {rate:.1}% over {done} requests reached the limit of {limit}%"
                ));
            }
        }
        None
    }
}

/// Everything a request task needs.
#[derive(Debug)]
struct Ctx {
    upstream: Upstream,
    plan: Plan,
    shared: Arc<Shared>,
    live: Arc<Live>,
    abandon: CancellationToken,
}

impl Ctx {
    /// Issues request `index`, timed from `intended`; false when it was abandoned.
    async fn one(&self, index: u64, intended: Instant) -> bool {
        let (model, prompt) = self.plan.pick(index);
        let now = self.live.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.live.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        let issued = tokio::select! {
            biased;
            () = self.abandon.cancelled() => None,
            r = self.upstream.issue(&self.plan.models[model], prompt) => Some(r),
        };
        self.live.in_flight.fetch_sub(1, Ordering::Relaxed);
        let Some(issued) = issued else {
            self.shared.abandoned.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        self.shared.record(Completed {
            index,
            model,
            intended: intended.min(issued.sent),
            sent: issued.sent,
            finished: issued.finished,
            outcome: issued.outcome,
        });
        true
    }
}

/// Figures of the open-loop dispatcher.
#[derive(Debug, Default)]
struct Dispatch {
    sent: u64,
    cap_hits: u64,
    first_send: Option<Instant>,
    last_send: Option<Instant>,
}

impl LoadTest {
    /// Validates the configuration.
    pub fn new(config: LoadTestConfig) -> Result<Self, LoadTestError> {
        config.validate()?;
        Ok(Self {
            config,
            user: CancellationToken::new(),
            live: Arc::new(Live::default()),
        })
    }

    /// Cancelling this token stops the run cleanly: nothing new is sent, requests in flight
    /// are abandoned, and `run` returns a report marked `partial`.
    pub fn cancel_token(&self) -> CancellationToken {
        self.user.clone()
    }

    /// A handle for live progress.
    pub fn progress(&self) -> ProgressHandle {
        ProgressHandle(Arc::clone(&self.live))
    }

    /// Runs the test.
    pub async fn run(self) -> Result<Report, LoadTestError> {
        let c = &self.config;
        let w = &c.workload;
        let upstream = Upstream::connect(
            &c.client,
            w.endpoint,
            w.stream,
            &w.options,
            c.events_path.as_deref(),
        )
        .await
        .map_err(|e| match e {
            ConnectError::Client(e) => LoadTestError::Connect(e),
            ConnectError::Telemetry(e) => LoadTestError::Telemetry(e),
        })?;
        let events = upstream.event_log();
        let plan = Plan::new(c);
        let mut environment = upstream.environment(&plan.models).await;
        environment.simulated = c.simulated;

        let warmup = self.warm_up(&upstream, &plan).await;
        match upstream.loaded_models().await {
            Ok(models) => environment.loaded_models = models,
            Err(e) => environment.probe_errors.push(e),
        }

        let halt = self.user.child_token();
        let abandon = halt.child_token();
        let start = Instant::now();
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let open = matches!(c.mode, Mode::Open { .. });
        let shared = Arc::new(Shared {
            recorder: Mutex::new(Recorder::new(
                start,
                open,
                plan.models.len(),
                c.sample_count,
                c.slo,
                c.seed,
            )),
            start,
            halt: halt.clone(),
            abort: OnceLock::new(),
            limits: c.abort.clone(),
            abandoned: AtomicU64::new(0),
            models: plan.models.clone(),
        });
        // Ignoring the error is right: `run` consumes `self`, so the cell is empty here.
        let _ = self.live.window.set(Arc::clone(&shared));
        let ctx = Arc::new(Ctx {
            upstream,
            plan,
            shared: Arc::clone(&shared),
            live: Arc::clone(&self.live),
            abandon: abandon.clone(),
        });
        let deadline = match c.stop {
            Stop::Duration(d) => Some(start + d),
            Stop::Requests(_) => None,
        };
        let tasks = TaskTracker::new();
        let dispatch = match c.mode {
            Mode::Closed { workers, delay } => {
                closed_loop(&ctx, &tasks, workers, delay, c.ramp, c.stop);
                None
            }
            Mode::Open {
                rate,
                arrival,
                max_in_flight,
            } => {
                let schedule = Schedule::new(rate, arrival, c.ramp, c.seed);
                Some(open_loop(&ctx, &tasks, schedule, max_in_flight, c.stop).await)
            }
        };
        drain(&ctx, &tasks, deadline.map(|d| d + c.drain_timeout)).await;
        let ended = Instant::now();
        drop(ctx);
        if let Some(log) = events {
            // Write out the run's events before reporting; the writer blocks, so off the
            // async workers. A failed join only means the flush thread panicked.
            let _ = tokio::task::spawn_blocking(move || log.shutdown()).await;
        }

        let partial = halt.is_cancelled();
        let abort = shared.abort.get().cloned();
        let abandoned = shared.abandoned.load(Ordering::Relaxed);
        // Every request task has finished; the progress handle may still read the
        // recorder, so it is swapped for an empty one rather than unwrapped.
        let recorder = std::mem::replace(
            &mut *lock(&shared.recorder),
            Recorder::new(start, open, 0, 0, None, 0),
        );
        let window = recorder.window(if partial || abandoned > 0 {
            ended
        } else {
            start
        });
        let aggregates = recorder.finish(window)?;
        let mut summary = aggregates.summary;
        summary.abandoned = abandoned;
        summary.peak_in_flight = self.live.peak_in_flight.load(Ordering::Relaxed);
        summary.warmup = warmup;
        let open_loop = dispatch.map(|d| {
            let (rate, arrival, max_in_flight) = match c.mode {
                Mode::Open {
                    rate,
                    arrival,
                    max_in_flight,
                } => (rate, arrival, max_in_flight),
                Mode::Closed { .. } => (0.0, Arrival::Constant, 0),
            };
            let span = match (d.first_send, d.last_send) {
                (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
                _ => 0.0,
            };
            OpenLoop {
                target_rate: rate,
                arrival: arrival_name(arrival).to_owned(),
                sent: d.sent,
                // Between the first and last of n sends lie n - 1 intervals.
                achieved_rate: if span > 0.0 {
                    (d.sent - 1) as f64 / span
                } else {
                    0.0
                },
                schedule_lag_ms: aggregates.schedule_lag.clone(),
                max_in_flight,
                max_in_flight_hits: d.cap_hits,
            }
        });
        let models = shared
            .models
            .iter()
            .cloned()
            .zip(aggregates.models)
            .collect();
        Ok(Report {
            schema_version: SCHEMA_VERSION,
            tool: ToolInfo {
                name: env!("CARGO_PKG_NAME").to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                git_revision: option_env!("OLLAMA_LOADTEST_GIT_REVISION").map(str::to_owned),
            },
            timestamp,
            partial,
            aborted: abort,
            config: config_record(c, &environment),
            summary,
            metrics: aggregates.metrics,
            open_loop,
            goodput: aggregates.goodput,
            models,
            environment,
            time_series: aggregates.time_series,
            samples: aggregates.samples,
            histograms: aggregates.histograms,
        })
    }

    /// Sends the warm-up requests one at a time, cycling through the models.
    async fn warm_up(&self, upstream: &Upstream, plan: &Plan) -> WarmupSummary {
        let started = Instant::now();
        let mut summary = WarmupSummary::default();
        self.live.warming.store(true, Ordering::Relaxed);
        for i in 0..self.config.warmup {
            let model = &plan.models[(i % plan.models.len() as u64) as usize];
            let prompt = plan.prompts.pick(i, plan.order, plan.seed);
            let issued = tokio::select! {
                () = self.user.cancelled() => break,
                r = upstream.issue(model, prompt) => r,
            };
            summary.requests += 1;
            summary.failures += u64::from(issued.outcome.is_err());
        }
        self.live.warming.store(false, Ordering::Relaxed);
        summary.duration_seconds = started.elapsed().as_secs_f64();
        summary
    }
}

fn arrival_name(a: Arrival) -> &'static str {
    match a {
        Arrival::Constant => "constant",
        Arrival::Poisson => "poisson",
    }
}

/// Closed loop: each worker sends its next request when the previous one finished (plus
/// think time). Workers start spread over the ramp. Returns once the workers are spawned.
fn closed_loop(
    ctx: &Arc<Ctx>,
    tasks: &TaskTracker,
    workers: usize,
    delay: Duration,
    ramp: Option<Duration>,
    stop: Stop,
) {
    let next = Arc::new(AtomicU64::new(0));
    let deadline = match stop {
        Stop::Duration(d) => Some(ctx.shared.start + d),
        Stop::Requests(_) => None,
    };
    for w in 0..workers {
        let ctx = Arc::clone(ctx);
        let next = Arc::clone(&next);
        let begin = ramp.map(|r| ctx.shared.start + r.mul_f64(w as f64 / workers as f64));
        tasks.spawn(async move {
            let halt = &ctx.shared.halt;
            if let Some(at) = begin {
                tokio::select! {
                    () = halt.cancelled() => return,
                    () = tokio::time::sleep_until(at.into()) => {}
                }
            }
            loop {
                if halt.is_cancelled() || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                if matches!(stop, Stop::Requests(n) if index >= n) {
                    break;
                }
                if !ctx.one(index, Instant::now()).await {
                    break;
                }
                if !delay.is_zero() {
                    tokio::select! {
                        () = halt.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        });
    }
}

/// Open loop: sends request `i` at its scheduled time whatever the server is doing, each
/// in its own task, with at most `max_in_flight` in flight. Returns when the schedule is
/// exhausted (count or duration) or the run halts.
async fn open_loop(
    ctx: &Arc<Ctx>,
    tasks: &TaskTracker,
    schedule: Schedule,
    max_in_flight: usize,
    stop: Stop,
) -> Dispatch {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let halt = &ctx.shared.halt;
    let mut d = Dispatch::default();
    for (index, offset) in (0u64..).zip(schedule) {
        match stop {
            Stop::Requests(n) if index >= n => break,
            Stop::Duration(limit) if offset >= limit => break,
            _ => {}
        }
        let intended = ctx.shared.start + offset;
        if intended > Instant::now() {
            tokio::select! {
                () = halt.cancelled() => break,
                () = tokio::time::sleep_until(intended.into()) => {}
            }
        } else if halt.is_cancelled() {
            break;
        }
        let permit = if let Ok(p) = Arc::clone(&slots).try_acquire_owned() {
            p
        } else {
            d.cap_hits += 1;
            tokio::select! {
                () = halt.cancelled() => break,
                p = Arc::clone(&slots).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            }
        };
        let now = Instant::now();
        lock(&ctx.shared.recorder).record_lag(now.saturating_duration_since(intended));
        d.sent += 1;
        d.first_send.get_or_insert(now);
        d.last_send = Some(now);
        let ctx = Arc::clone(ctx);
        tasks.spawn(async move {
            ctx.one(index, intended).await;
            drop(permit);
        });
    }
    d
}

/// Waits for every task; past `cutoff` (timed runs), abandons what is still in flight.
async fn drain(ctx: &Ctx, tasks: &TaskTracker, cutoff: Option<Instant>) {
    tasks.close();
    if let Some(cutoff) = cutoff {
        tokio::select! {
            () = tasks.wait() => return,
            () = tokio::time::sleep_until(cutoff.into()) => ctx.abandon.cancel(),
        }
    }
    tasks.wait().await;
}

fn config_record(c: &LoadTestConfig, env: &Environment) -> ConfigRecord {
    let secs = |d: Duration| d.as_secs_f64();
    let w = &c.workload;
    let (workers, delay, rate, arrival, max_in_flight) = match c.mode {
        Mode::Closed { workers, delay } => (workers, secs(delay), None, None, None),
        Mode::Open {
            rate,
            arrival,
            max_in_flight,
        } => (
            0,
            0.0,
            Some(rate),
            Some(arrival_name(arrival).to_owned()),
            Some(max_in_flight),
        ),
    };
    ConfigRecord {
        requests: match c.stop {
            Stop::Requests(n) => Some(n),
            Stop::Duration(_) => None,
        },
        workers,
        model: w.models.first().map(|m| m.name.clone()).unwrap_or_default(),
        prompt: w.prompts.only().map(str::to_owned),
        duration: match c.stop {
            Stop::Duration(d) => Some(secs(d)),
            Stop::Requests(_) => None,
        },
        output: c.output.as_ref().map(|p| p.display().to_string()),
        concurrency: c.client.concurrency,
        max_connections: c.client.max_connections,
        keepalive: c.client.keepalive,
        sample_count: c.sample_count,
        warmup: c.warmup,
        timeout: secs(c.client.timeout),
        health_timeout: secs(c.client.health_timeout),
        skip_verify: c.client.skip_verify,
        delay,
        base_url: env.base_url.clone(),
        mode: if rate.is_some() { "open" } else { "closed" }.to_owned(),
        rate,
        arrival,
        max_in_flight,
        ramp: c.ramp.map(secs),
        endpoint: w.endpoint.path().to_owned(),
        stream: w.stream,
        models: w
            .models
            .iter()
            .map(|m| ModelWeightRecord {
                name: m.name.clone(),
                weight: m.weight,
            })
            .collect(),
        prompts_file: w.prompts.file().map(|p| p.display().to_string()),
        prompt_count: w.prompts.len(),
        prompt_order: w.prompt_order.as_str().to_owned(),
        options: OptionsRecord {
            num_predict: w.options.num_predict,
            temperature: w.options.temperature,
            num_ctx: w.options.num_ctx,
            keep_alive: w.options.keep_alive.clone(),
        },
        seed: c.seed,
        slo: c.slo.map(|s| s.record()),
        abort_limits: AbortLimitsRecord {
            error_rate_percent: c.abort.error_rate_percent,
            min_requests: c.abort.min_requests,
            server_busy: c.abort.server_busy,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WeightedModel;

    #[test]
    fn model_mix_follows_the_weights() {
        let mut c = LoadTestConfig::default();
        c.workload.models = vec![
            WeightedModel {
                name: "a".into(),
                weight: 3,
            },
            WeightedModel {
                name: "b".into(),
                weight: 1,
            },
        ];
        let plan = Plan::new(&c);
        let picks: Vec<usize> = (0..400).map(|i| plan.pick(i).0).collect();
        assert_eq!(picks.iter().filter(|&&m| m == 0).count(), 300);
        assert_eq!(picks.iter().filter(|&&m| m == 1).count(), 100);
    }
}
