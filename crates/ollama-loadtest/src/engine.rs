//! The run: connect, probe the environment, warm up, then one timed window driven in
//! closed loop (workers) or open loop (a schedule), then the report.
//!
//! The warm-up and the window run on engine threads ("lanes", see `lanes.rs`): each lane
//! has its own single-threaded runtime, its own client (the client limits split across
//! lanes) and its own recorder, which only its thread writes on the request path (the
//! lock is uncontended but for the progress display, a few times a second). Closed-loop
//! workers are dealt to the lanes in turn and draw request indices from one shared
//! counter; in open loop every lane walks the same seeded schedule and sends the indices
//! that are its own (`index % lanes`), so each request still leaves at its planned time.
//! The recorders are merged when every lane is done. The safety switch and the peak of
//! requests in flight are process-wide, kept in a few atomics.
//!
//! Cancellation is layered. `user` is the caller's token (Ctrl-C); `halt` is its child and
//! is also cancelled by the safety switch: once it fires nothing new is sent. `abandon` is
//! a child of `halt` that is additionally cancelled when the drain timeout of a timed run
//! expires: it drops requests still in flight, which are counted as abandoned and kept
//! out of every statistic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ollama_telemetry::EventsConfig;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AbortLimits, ConfigError, LoadTestConfig, Mode, PromptOrder, Stop};
use crate::lanes::{Lanes, lane_count, lane_settings};
use crate::prompts::Prompts;
use crate::recorder::{Completed, Progress, ProgressSum, Recorder};
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
    /// An engine thread (or its runtime) could not be started, or stopped before its
    /// work was done.
    #[error("engine thread failed")]
    Engine(#[source] std::io::Error),
}

impl From<ConnectError> for LoadTestError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Client(e) => LoadTestError::Connect(e),
            ConnectError::Telemetry(e) => LoadTestError::Telemetry(e),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Awaits work handed to a lane. A panic there is a bug and is carried on here.
async fn join<T>(handle: JoinHandle<T>) -> Result<T, LoadTestError> {
    match handle.await {
        Ok(v) => Ok(v),
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(LoadTestError::Engine(std::io::Error::other(e))),
        },
    }
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
    window: OnceLock<Arc<Window>>,
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
        let mut p = live.window.get().map(|w| w.progress()).unwrap_or_default();
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

/// A lane's recorder, aligned to its own cache lines so that lanes recording at the same
/// time do not share one.
#[derive(Debug)]
#[repr(align(128))]
struct Slot(Mutex<Recorder>);

/// State shared by every lane during the timed window.
#[derive(Debug)]
struct Window {
    start: Instant,
    halt: CancellationToken,
    abandon: CancellationToken,
    abort: OnceLock<Abort>,
    limits: AbortLimits,
    /// Whether any abort limit is set (else the counters below are not kept).
    guarded: bool,
    abandoned: AtomicU64,
    /// Process-wide counts for the safety switch.
    completed: AtomicU64,
    failures: AtomicU64,
    server_busy: AtomicU64,
    /// One recorder per lane.
    recorders: Vec<Slot>,
}

impl Window {
    /// Counts a completed request for the safety switch and fires it when a limit is
    /// reached. Sequentially consistent, so the last request counted sees every count
    /// before it (on x86 this costs nothing over relaxed).
    fn count(&self, failed: bool, busy: bool) {
        if !self.guarded {
            return;
        }
        let done = self.completed.fetch_add(1, Ordering::SeqCst) + 1;
        let bump = |n: &AtomicU64, by: bool| {
            if by {
                n.fetch_add(1, Ordering::SeqCst) + 1
            } else {
                n.load(Ordering::SeqCst)
            }
        };
        let failures = bump(&self.failures, failed);
        let busy = bump(&self.server_busy, busy);
        if let Some(reason) = abort_reason(&self.limits, done, failures, busy) {
            let abort = Abort {
                reason,
                after_seconds: self.start.elapsed().as_secs_f64(),
            };
            if self.abort.set(abort).is_ok() {
                self.halt.cancel();
            }
        }
    }

    /// The window so far, summed over the lanes.
    fn progress(&self) -> Progress {
        let mut sum = ProgressSum::default();
        for slot in &self.recorders {
            sum.add(&lock(&slot.0));
        }
        sum.progress(self.start)
    }
}

fn abort_reason(l: &AbortLimits, done: u64, failures: u64, busy: u64) -> Option<String> {
    if let Some(limit) = l.server_busy
        && busy >= limit
    {
        return Some(format!(
            "{busy} server-busy (503) responses reached the limit of {limit}"
        ));
    }
    if let Some(limit) = l.error_rate_percent
        && done >= l.min_requests.max(1)
    {
        let rate = failures as f64 * 100.0 / done as f64;
        if rate >= limit {
            return Some(format!(
                "error rate {rate:.1}% over {done} requests reached the limit of {limit}%"
            ));
        }
    }
    None
}

/// Everything a lane's request tasks need.
#[derive(Debug)]
struct Lane {
    /// This lane's number, `0..lanes`.
    id: usize,
    lanes: usize,
    /// Children of the window's `halt` and `abandon`: checking or awaiting a token takes
    /// its lock, and the lane's own tokens are only ever touched by the lane's thread.
    halt: CancellationToken,
    abandon: CancellationToken,
    upstream: Upstream,
    plan: Arc<Plan>,
    window: Arc<Window>,
    live: Arc<Live>,
}

impl Lane {
    /// Issues request `index`, timed from `intended`; false when it was abandoned.
    async fn one(&self, index: u64, intended: Instant) -> bool {
        let (model, prompt) = self.plan.pick(index);
        let live = &self.live;
        let now = live.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        // Reading first spares the shared line a write on all but new peaks.
        if now > live.peak_in_flight.load(Ordering::Relaxed) {
            live.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        }
        let issued = tokio::select! {
            biased;
            () = self.abandon.cancelled() => None,
            r = self.upstream.issue(&self.plan.models[model], prompt) => Some(r),
        };
        live.in_flight.fetch_sub(1, Ordering::Relaxed);
        let Some(issued) = issued else {
            self.window.abandoned.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let (failed, busy) = match &issued.outcome {
            Ok(_) => (false, false),
            Err(f) => (true, f.server_busy),
        };
        lock(&self.window.recorders[self.id].0).record(
            Completed {
                index,
                model,
                intended: intended.min(issued.sent),
                sent: issued.sent,
                finished: issued.finished,
                outcome: issued.outcome,
            },
            self.plan.models.get(model).map_or("", String::as_str),
        );
        self.window.count(failed, busy);
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

impl Dispatch {
    /// Adds another lane's figures.
    fn merge(&mut self, other: &Dispatch) {
        self.sent += other.sent;
        self.cap_hits += other.cap_hits;
        self.first_send = earliest(self.first_send, other.first_send);
        self.last_send = match (self.last_send, other.last_send) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What every lane runs in the timed window, beside its own [`Lane`].
#[derive(Debug, Clone)]
struct Job {
    mode: Mode,
    ramp: Option<Duration>,
    stop: Stop,
    seed: u64,
    /// When a timed run stops waiting for requests in flight.
    cutoff: Option<Instant>,
    /// The next closed-loop request index, shared by all lanes so that a request count
    /// is sent exactly, whichever lanes are faster.
    next: Arc<AtomicU64>,
    /// The open-loop cap on requests in flight, process-wide.
    slots: Arc<Semaphore>,
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
        // The probes' client, on the caller's runtime; it also opens the event log that
        // every lane's client then writes to.
        let probe = Upstream::connect(
            &c.client,
            w.endpoint,
            w.stream,
            &w.options,
            c.events_path
                .clone()
                .map_or(EventsConfig::Off, EventsConfig::File),
        )
        .await?;
        let events = probe.event_log().cloned();
        let plan = Arc::new(Plan::new(c));
        let mut environment = probe.environment(&plan.models).await;
        environment.simulated = c.simulated;

        let lanes = Lanes::start(lane_count(c)).map_err(LoadTestError::Engine)?;
        let mut upstreams = Vec::with_capacity(lanes.len());
        for i in 0..lanes.len() {
            let log = events.clone().map_or(EventsConfig::Off, EventsConfig::Log);
            let settings = lane_settings(&c.client, lanes.len(), i);
            upstreams
                .push(Upstream::connect(&settings, w.endpoint, w.stream, &w.options, log).await?);
        }

        let warmup = join(lanes.handle(0).spawn(warm_up(
            upstreams[0].clone(),
            Arc::clone(&plan),
            self.user.clone(),
            Arc::clone(&self.live),
            c.warmup,
        )))
        .await?;
        match probe.loaded_models().await {
            Ok(models) => environment.loaded_models = models,
            Err(e) => environment.probe_errors.push(e),
        }
        // Its idle connection would otherwise count against the limits during the window.
        drop(probe);

        let halt = self.user.child_token();
        let abandon = halt.child_token();
        let start = Instant::now();
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let open = matches!(c.mode, Mode::Open { .. });
        let limits = c.abort.clone();
        let window = Arc::new(Window {
            start,
            halt: halt.clone(),
            abandon,
            abort: OnceLock::new(),
            guarded: limits.server_busy.is_some() || limits.error_rate_percent.is_some(),
            limits,
            abandoned: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            server_busy: AtomicU64::new(0),
            recorders: (0..lanes.len())
                .map(|i| {
                    // Lane 0 keeps the run's seed, so a one-lane run samples as before.
                    let seed = c.seed.wrapping_add(i as u64);
                    let r =
                        Recorder::new(start, open, plan.models.len(), c.sample_count, c.slo, seed);
                    Slot(Mutex::new(r))
                })
                .collect(),
        });
        // Ignoring the error is right: `run` consumes `self`, so the cell is empty here.
        let _ = self.live.window.set(Arc::clone(&window));
        let job = Job {
            mode: c.mode.clone(),
            ramp: c.ramp,
            stop: c.stop,
            seed: c.seed,
            cutoff: match c.stop {
                Stop::Duration(d) => Some(start + d + c.drain_timeout),
                Stop::Requests(_) => None,
            },
            next: Arc::new(AtomicU64::new(0)),
            slots: Arc::new(Semaphore::new(match c.mode {
                Mode::Open { max_in_flight, .. } => max_in_flight,
                Mode::Closed { .. } => 0,
            })),
        };
        let count = lanes.len();
        let runs: Vec<_> = upstreams
            .into_iter()
            .enumerate()
            .map(|(id, upstream)| {
                let lane = Arc::new(Lane {
                    id,
                    lanes: count,
                    halt: window.halt.child_token(),
                    abandon: window.abandon.child_token(),
                    upstream,
                    plan: Arc::clone(&plan),
                    window: Arc::clone(&window),
                    live: Arc::clone(&self.live),
                });
                lanes.handle(id).spawn(run_lane(lane, job.clone()))
            })
            .collect();
        let mut dispatch: Option<Dispatch> = None;
        for run in runs {
            if let Some(d) = join(run).await? {
                dispatch.get_or_insert_default().merge(&d);
            }
        }
        let ended = Instant::now();
        lanes.stop().await;
        if let Some(log) = events {
            // Write out the run's events before reporting; the writer blocks, so off the
            // async workers. A failed join only means the flush thread panicked.
            let _ = tokio::task::spawn_blocking(move || log.shutdown()).await;
        }

        let partial = halt.is_cancelled();
        let abort = window.abort.get().cloned();
        let abandoned = window.abandoned.load(Ordering::Relaxed);
        // Every lane has finished; the progress handle may still read the recorders, so
        // each is swapped for an empty one rather than unwrapped.
        let recorder = window
            .recorders
            .iter()
            .map(|slot| {
                std::mem::replace(
                    &mut *lock(&slot.0),
                    Recorder::new(start, open, 0, 0, None, 0),
                )
            })
            .reduce(|mut all, lane| {
                all.merge(lane);
                all
            })
            .unwrap_or_else(|| {
                Recorder::new(
                    start,
                    open,
                    plan.models.len(),
                    c.sample_count,
                    c.slo,
                    c.seed,
                )
            });
        let window_length = recorder.window(if partial || abandoned > 0 {
            ended
        } else {
            start
        });
        let aggregates = recorder.finish(window_length)?;
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
        let models = plan.models.iter().cloned().zip(aggregates.models).collect();
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
}

/// Sends the warm-up requests one at a time, cycling through the models (on lane 0).
async fn warm_up(
    upstream: Upstream,
    plan: Arc<Plan>,
    user: CancellationToken,
    live: Arc<Live>,
    count: u64,
) -> WarmupSummary {
    let started = Instant::now();
    let mut summary = WarmupSummary::default();
    live.warming.store(true, Ordering::Relaxed);
    for i in 0..count {
        let model = &plan.models[(i % plan.models.len() as u64) as usize];
        let prompt = plan.prompts.pick(i, plan.order, plan.seed);
        let issued = tokio::select! {
            () = user.cancelled() => break,
            r = upstream.issue(model, prompt) => r,
        };
        summary.requests += 1;
        summary.failures += u64::from(issued.outcome.is_err());
    }
    live.warming.store(false, Ordering::Relaxed);
    summary.duration_seconds = started.elapsed().as_secs_f64();
    summary
}

/// One lane's share of the timed window, run on that lane's runtime: its workers or its
/// part of the schedule, then the drain. Returns its dispatch figures in open loop.
async fn run_lane(lane: Arc<Lane>, job: Job) -> Option<Dispatch> {
    let tasks = TaskTracker::new();
    let dispatch = match job.mode {
        Mode::Closed { workers, delay } => {
            closed_loop(&lane, &tasks, workers, delay, job.ramp, job.stop, &job.next);
            None
        }
        Mode::Open { rate, arrival, .. } => {
            let schedule = Schedule::new(rate, arrival, job.ramp, job.seed);
            Some(open_loop(&lane, &tasks, schedule, &job.slots, job.stop).await)
        }
    };
    drain(&lane.window.abandon, &tasks, job.cutoff).await;
    dispatch
}

fn arrival_name(a: Arrival) -> &'static str {
    match a {
        Arrival::Constant => "constant",
        Arrival::Poisson => "poisson",
    }
}

/// Closed loop: each worker sends its next request when the previous one finished (plus
/// think time). Workers start spread over the ramp; this lane runs every `lanes`-th
/// worker. Returns once the workers are spawned.
fn closed_loop(
    lane: &Arc<Lane>,
    tasks: &TaskTracker,
    workers: usize,
    delay: Duration,
    ramp: Option<Duration>,
    stop: Stop,
    next: &Arc<AtomicU64>,
) {
    let start = lane.window.start;
    let deadline = match stop {
        Stop::Duration(d) => Some(start + d),
        Stop::Requests(_) => None,
    };
    for w in (lane.id..workers).step_by(lane.lanes) {
        let lane = Arc::clone(lane);
        let next = Arc::clone(next);
        let begin = ramp.map(|r| start + r.mul_f64(w as f64 / workers as f64));
        tasks.spawn(async move {
            let halt = &lane.halt;
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
                if !lane.one(index, Instant::now()).await {
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
/// in its own task, with at most `slots` requests in flight across all lanes. Every lane
/// walks the whole schedule and sends the indices that are its own. Returns when the
/// schedule is exhausted (count or duration) or the run halts.
async fn open_loop(
    lane: &Arc<Lane>,
    tasks: &TaskTracker,
    schedule: Schedule,
    slots: &Arc<Semaphore>,
    stop: Stop,
) -> Dispatch {
    let window = &lane.window;
    let halt = &lane.halt;
    let lanes = lane.lanes as u64;
    let mine = lane.id as u64;
    let mut d = Dispatch::default();
    for (index, offset) in (0u64..).zip(schedule) {
        match stop {
            Stop::Requests(n) if index >= n => break,
            Stop::Duration(limit) if offset >= limit => break,
            _ => {}
        }
        if index % lanes != mine {
            continue;
        }
        let intended = window.start + offset;
        if intended > Instant::now() {
            tokio::select! {
                () = halt.cancelled() => break,
                () = tokio::time::sleep_until(intended.into()) => {}
            }
        } else if halt.is_cancelled() {
            break;
        }
        let permit = if let Ok(p) = Arc::clone(slots).try_acquire_owned() {
            p
        } else {
            d.cap_hits += 1;
            tokio::select! {
                () = halt.cancelled() => break,
                p = Arc::clone(slots).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            }
        };
        let now = Instant::now();
        lock(&window.recorders[lane.id].0).record_lag(now.saturating_duration_since(intended));
        d.sent += 1;
        d.first_send.get_or_insert(now);
        d.last_send = Some(now);
        let lane = Arc::clone(lane);
        tasks.spawn(async move {
            lane.one(index, intended).await;
            drop(permit);
        });
    }
    d
}

/// Waits for every task; past `cutoff` (timed runs), abandons what is still in flight.
async fn drain(abandon: &CancellationToken, tasks: &TaskTracker, cutoff: Option<Instant>) {
    tasks.close();
    if let Some(cutoff) = cutoff {
        tokio::select! {
            () = tasks.wait() => return,
            () = tokio::time::sleep_until(cutoff.into()) => abandon.cancel(),
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
