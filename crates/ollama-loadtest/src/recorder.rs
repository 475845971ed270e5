//! Aggregation of completed requests into histograms, counters, a per-second series and
//! reservoir samples. Memory depends on the number of metrics, models, seconds and the
//! sample size, never on the number of requests.
//!
//! Times are measured from the request's *intended* send time (equal to the actual send
//! in closed loop), so open-loop latencies include any delay the load generator or a
//! saturated server imposed before the request could go out (coordinated omission).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use crate::report::{
    ErrorSample, Goodput, Metrics, ModelStats, RequestSample, Samples, SecondBucket, Summary,
};
use crate::slo::Slo;
use crate::stats::{Distribution, EncodedHistogram, HistogramError, Track};

/// A `load_duration` at least this long means the request waited on a model load.
pub(crate) const COLD_LOAD_THRESHOLD: Duration = Duration::from_millis(100);

/// Server-reported timings of one response (native endpoints).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerTimings {
    pub(crate) total: Option<Duration>,
    pub(crate) load: Option<Duration>,
    pub(crate) prompt_eval: Option<Duration>,
    pub(crate) eval: Option<Duration>,
}

/// What a successful request measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Success {
    /// Response head received (streams only).
    pub(crate) first_byte_at: Option<Instant>,
    /// First chunk with generated text (thinking included).
    pub(crate) first_token_at: Option<Instant>,
    /// First chunk with answer text.
    pub(crate) first_content_at: Option<Instant>,
    /// Gaps between successive token-bearing chunks.
    pub(crate) gaps: Vec<Duration>,
    pub(crate) output_tokens: Option<u64>,
    pub(crate) prompt_tokens: Option<u64>,
    pub(crate) server: ServerTimings,
    pub(crate) done_reason: Option<String>,
}

/// Why a request failed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// An `ollama_client::ErrorKind` label.
    pub(crate) kind: String,
    pub(crate) status: Option<u16>,
    pub(crate) message: String,
    /// A 503 "server busy" answer.
    pub(crate) server_busy: bool,
}

/// One finished request of the timed window.
#[derive(Debug)]
pub(crate) struct Completed {
    pub(crate) index: u64,
    pub(crate) model: usize,
    pub(crate) intended: Instant,
    pub(crate) sent: Instant,
    pub(crate) finished: Instant,
    pub(crate) outcome: Result<Success, Failure>,
}

/// Identity and timing of a completed request, kept after its outcome is taken apart.
#[derive(Clone, Copy)]
struct When {
    index: u64,
    model: usize,
    intended: Instant,
    finished: Instant,
}

/// Indices of the per-request tracks; `NAMES[i]` is the histogram key of track `i`.
#[derive(Clone, Copy)]
enum M {
    E2e,
    E2eUncorrected,
    Ttfb,
    Ttft,
    Ttfc,
    Itl,
    Tpot,
    OutputTokens,
    PromptTokens,
    Tps,
    Load,
    PromptEval,
    Eval,
    ServerTotal,
    QueueWait,
    ServerWait,
    ScheduleLag,
}
const NAMES: [&str; 17] = [
    "e2e",
    "e2e_uncorrected",
    "ttfb",
    "ttft",
    "ttfc",
    "itl",
    "tpot",
    "output_tokens",
    "prompt_tokens",
    "tokens_per_second",
    "load",
    "prompt_eval",
    "eval",
    "server_total",
    "queue_wait",
    "server_wait",
    "schedule_lag",
];

#[derive(Debug, Default, Clone)]
struct SecondAgg {
    requests: u64,
    errors: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
    output_tokens: u64,
}

#[derive(Debug, Clone)]
struct ModelAgg {
    successes: u64,
    failures: u64,
    e2e: Track,
    ttft: Track,
    tps: Track,
    output_tokens: u64,
    cold_loads: u64,
}

impl ModelAgg {
    fn new() -> Self {
        Self {
            successes: 0,
            failures: 0,
            e2e: Track::micros(),
            ttft: Track::micros(),
            tps: tps_track(),
            output_tokens: 0,
            cold_loads: 0,
        }
    }
}

fn tps_track() -> Track {
    // Tokens per second are recorded in thousandths to keep three decimals.
    Track::new("milli_tokens_per_second", 0.001)
}

/// Algorithm R: a uniform sample of fixed size over a stream of unknown length.
#[derive(Debug)]
struct Reservoir<T> {
    items: Vec<T>,
    seen: u64,
    capacity: usize,
}

impl<T> Reservoir<T> {
    fn new(capacity: usize) -> Self {
        Self {
            items: Vec::with_capacity(capacity.min(1024)),
            seen: 0,
            capacity,
        }
    }

    fn offer(&mut self, rng: &mut SmallRng, make: impl FnOnce() -> T) {
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push(make());
        } else if self.capacity > 0 {
            let j = rng.random_range(0..self.seen);
            if let Some(slot) = self.items.get_mut(j as usize) {
                *slot = make();
            }
        }
    }
}

impl<T> Reservoir<T> {
    /// Folds in `other`, a reservoir of the same capacity over a disjoint stream, so that
    /// the result is a uniform sample of the union: each slot is drawn from one side with
    /// probability proportional to the requests that side has not yet given a slot to
    /// (a hypergeometric split), then a random kept item of that side fills it. A side's
    /// items are a uniform sample of its stream, so a uniform subset of them is too.
    fn merge(&mut self, mut other: Self, rng: &mut SmallRng) {
        let total = self.seen + other.seen;
        let mut mine = std::mem::take(&mut self.items);
        let take = self
            .capacity
            .min(usize::try_from(total).unwrap_or(usize::MAX));
        let (mut left_mine, mut left_other) = (self.seen, other.seen);
        let mut items = Vec::with_capacity(take);
        for _ in 0..take {
            let from_mine = rng.random_range(0..left_mine + left_other) < left_mine;
            let (side, left) = if from_mine {
                (&mut mine, &mut left_mine)
            } else {
                (&mut other.items, &mut left_other)
            };
            *left -= 1;
            // A side gives at most min(its seen, take) slots and keeps that many items, so
            // it is never empty here; the guard only keeps an impossible case from panicking.
            if side.is_empty() {
                continue;
            }
            let j = rng.random_range(0..side.len());
            items.push(side.swap_remove(j));
        }
        self.items = items;
        self.seen = total;
    }
}

/// A live view for progress displays.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Requests completed in the timed window.
    pub completed: u64,
    /// Of which failed.
    pub failures: u64,
    /// Median end-to-end latency so far, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile so far, ms.
    pub p99_ms: Option<f64>,
    /// Seconds since the timed window started (0 during warm-up).
    pub elapsed_seconds: f64,
    /// Requests currently in flight.
    pub in_flight: u64,
    /// True while warming up.
    pub warming_up: bool,
}

/// Sums the live figures of several recorders (one per engine thread) into one
/// [`Progress`]; the end-to-end histograms are merged, so the quantiles are those of the
/// whole window.
#[derive(Debug, Default)]
pub(crate) struct ProgressSum {
    completed: u64,
    failures: u64,
    e2e: Option<Track>,
}

impl ProgressSum {
    pub(crate) fn add(&mut self, r: &Recorder) {
        self.completed += r.completed();
        self.failures += r.failures;
        let e2e = &r.tracks[M::E2e as usize];
        match &mut self.e2e {
            Some(t) => t.merge(e2e),
            None => self.e2e = Some(e2e.clone()),
        }
    }

    /// The progress of a window that started at `start`.
    pub(crate) fn progress(&self, start: Instant) -> Progress {
        let quantile = |q| self.e2e.as_ref().and_then(|t| t.quantile(q));
        Progress {
            completed: self.completed,
            failures: self.failures,
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            elapsed_seconds: start.elapsed().as_secs_f64(),
            in_flight: 0,
            warming_up: false,
        }
    }
}

/// The aggregate of one run's timed window.
#[derive(Debug)]
pub(crate) struct Recorder {
    start: Instant,
    open_loop: bool,
    tracks: Vec<Track>,
    successes: u64,
    failures: u64,
    server_busy: u64,
    errors: BTreeMap<String, u64>,
    statuses: BTreeMap<String, u64>,
    output_tokens: u64,
    prompt_tokens: u64,
    cold_loads: u64,
    good: u64,
    slo: Option<Slo>,
    models: Vec<ModelAgg>,
    seconds: Vec<SecondAgg>,
    last_finish: Option<Instant>,
    rng: SmallRng,
    ok_samples: Reservoir<RequestSample>,
    err_samples: Reservoir<ErrorSample>,
}

/// Everything the report takes from the recorder.
pub(crate) struct Aggregates {
    pub(crate) summary: Summary,
    pub(crate) metrics: Metrics,
    pub(crate) schedule_lag: Option<Distribution>,
    pub(crate) goodput: Option<Goodput>,
    pub(crate) models: Vec<ModelStats>,
    pub(crate) time_series: Vec<SecondBucket>,
    pub(crate) samples: Samples,
    pub(crate) histograms: BTreeMap<String, EncodedHistogram>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Recorder {
    pub(crate) fn new(
        start: Instant,
        open_loop: bool,
        model_count: usize,
        sample_count: usize,
        slo: Option<Slo>,
        seed: u64,
    ) -> Self {
        let tracks = NAMES
            .iter()
            .map(|&n| match n {
                "output_tokens" | "prompt_tokens" => Track::new("tokens", 1.0),
                "tokens_per_second" => tps_track(),
                _ => Track::micros(),
            })
            .collect();
        Self {
            start,
            open_loop,
            tracks,
            successes: 0,
            failures: 0,
            server_busy: 0,
            errors: BTreeMap::new(),
            statuses: BTreeMap::new(),
            output_tokens: 0,
            prompt_tokens: 0,
            cold_loads: 0,
            good: 0,
            slo,
            models: vec![ModelAgg::new(); model_count],
            seconds: Vec::new(),
            last_finish: None,
            rng: SmallRng::seed_from_u64(seed),
            ok_samples: Reservoir::new(sample_count),
            err_samples: Reservoir::new(sample_count),
        }
    }

    fn track(&mut self, m: M) -> &mut Track {
        &mut self.tracks[m as usize]
    }

    pub(crate) fn completed(&self) -> u64 {
        self.successes + self.failures
    }

    /// Records how late the dispatcher sent a request.
    pub(crate) fn record_lag(&mut self, lag: Duration) {
        self.track(M::ScheduleLag).record_duration(lag);
    }

    fn second(&mut self, at: Instant) -> &mut SecondAgg {
        let s = at.saturating_duration_since(self.start).as_secs() as usize;
        if self.seconds.len() <= s {
            self.seconds.resize(s + 1, SecondAgg::default());
        }
        &mut self.seconds[s]
    }

    pub(crate) fn record(&mut self, c: Completed, model_name: &str) {
        self.last_finish = Some(self.last_finish.map_or(c.finished, |f| f.max(c.finished)));
        let e2e = c.finished.saturating_duration_since(c.intended);
        let uncorrected = c.finished.saturating_duration_since(c.sent);
        let start_ms = ms(c.intended.saturating_duration_since(self.start));
        let index = c.index;
        let at = When {
            index,
            model: c.model,
            intended: c.intended,
            finished: c.finished,
        };
        match c.outcome {
            Err(f) => {
                self.failures += 1;
                if f.server_busy {
                    self.server_busy += 1;
                }
                *self.errors.entry(f.kind.clone()).or_default() += 1;
                if let Some(s) = f.status {
                    *self.statuses.entry(s.to_string()).or_default() += 1;
                }
                if let Some(m) = self.models.get_mut(c.model) {
                    m.failures += 1;
                }
                let bucket = self.second(c.finished);
                bucket.requests += 1;
                bucket.errors += 1;
                self.err_samples.offer(&mut self.rng, || ErrorSample {
                    index,
                    model: model_name.to_owned(),
                    start_ms,
                    latency_ms: ms(e2e),
                    kind: f.kind,
                    http_status: f.status,
                    message: f.message,
                });
            }
            Ok(s) => self.record_success(at, e2e, uncorrected, start_ms, s, model_name),
        }
    }

    fn record_success(
        &mut self,
        c: When,
        e2e: Duration,
        uncorrected: Duration,
        start_ms: f64,
        s: Success,
        model_name: &str,
    ) {
        self.successes += 1;
        let since = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(c.intended));
        let ttfb = since(s.first_byte_at);
        let ttft = since(s.first_token_at);
        let ttfc = since(s.first_content_at);
        let out = s.output_tokens;
        // Decode time: from the first token to the end (streams), else the whole request.
        let decode = s
            .first_token_at
            .map_or(uncorrected, |t| c.finished.saturating_duration_since(t));
        let tpot = match (s.first_token_at, out) {
            (Some(_), Some(n)) if n > 1 => Some(decode / u32::try_from(n - 1).unwrap_or(u32::MAX)),
            _ => None,
        };
        let tps = match (out, s.server.eval) {
            (Some(n), Some(eval)) if !eval.is_zero() => Some(n as f64 / eval.as_secs_f64()),
            (Some(n), None) if n > 0 && !decode.is_zero() => {
                // OpenAI endpoints report no eval time: count tokens after the first over
                // the decode time when streamed, all of them over the request otherwise.
                let counted = if s.first_token_at.is_some() {
                    n.saturating_sub(1)
                } else {
                    n
                };
                (counted > 0).then(|| counted as f64 / decode.as_secs_f64())
            }
            _ => None,
        };
        let t = &s.server;
        let queue_wait = t.total.map(|total| uncorrected.saturating_sub(total));
        let server_wait = t.total.map(|total| {
            total
                .saturating_sub(t.load.unwrap_or_default())
                .saturating_sub(t.prompt_eval.unwrap_or_default())
                .saturating_sub(t.eval.unwrap_or_default())
        });
        let cold = t.load.is_some_and(|l| l >= COLD_LOAD_THRESHOLD);

        self.track(M::E2e).record_duration(e2e);
        if self.open_loop {
            self.track(M::E2eUncorrected).record_duration(uncorrected);
        }
        for (m, v) in [
            (M::Ttfb, ttfb),
            (M::Ttft, ttft),
            (M::Ttfc, ttfc),
            (M::Tpot, tpot),
            (M::Load, t.load),
            (M::PromptEval, t.prompt_eval),
            (M::Eval, t.eval),
            (M::ServerTotal, t.total),
            (M::QueueWait, queue_wait),
            (M::ServerWait, server_wait),
        ] {
            if let Some(v) = v {
                self.track(m).record_duration(v);
            }
        }
        for gap in &s.gaps {
            self.track(M::Itl).record_duration(*gap);
        }
        if let Some(n) = out {
            self.track(M::OutputTokens).record(n);
            self.output_tokens += n;
        }
        if let Some(n) = s.prompt_tokens {
            self.track(M::PromptTokens).record(n);
            self.prompt_tokens += n;
        }
        if let Some(v) = tps {
            self.track(M::Tps).record((v * 1000.0).round() as u64);
        }
        if cold {
            self.cold_loads += 1;
        }
        if self.slo.is_some_and(|slo| slo.is_met(e2e, ttft, tpot)) {
            self.good += 1;
        }
        if let Some(m) = self.models.get_mut(c.model) {
            m.successes += 1;
            m.e2e.record_duration(e2e);
            if let Some(v) = ttft {
                m.ttft.record_duration(v);
            }
            if let Some(v) = tps {
                m.tps.record((v * 1000.0).round() as u64);
            }
            m.output_tokens += out.unwrap_or(0);
            m.cold_loads += u64::from(cold);
        }
        let e2e_us = u64::try_from(e2e.as_micros()).unwrap_or(u64::MAX);
        let bucket = self.second(c.finished);
        bucket.requests += 1;
        bucket.latency_sum_us = bucket.latency_sum_us.saturating_add(e2e_us);
        bucket.latency_max_us = bucket.latency_max_us.max(e2e_us);
        bucket.output_tokens += out.unwrap_or(0);
        let index = c.index;
        // Built only when the reservoir keeps the request: most requests are not sampled.
        self.ok_samples.offer(&mut self.rng, || RequestSample {
            index,
            model: model_name.to_owned(),
            start_ms,
            e2e_ms: ms(e2e),
            e2e_uncorrected_ms: ms(uncorrected),
            ttft_ms: ttft.map(ms),
            output_tokens: out,
            tokens_per_second: tps,
            load_ms: t.load.map(ms),
            server_total_ms: t.total.map(ms),
            queue_wait_ms: queue_wait.map(ms),
            done_reason: s.done_reason,
        });
    }

    /// Folds in the recorder of another engine thread of the same window. Counters, error
    /// breakdowns, per-model figures and the per-second series add up; histograms merge
    /// losslessly with exact extremes and sums, so the result is what one recorder fed
    /// every request would hold, except that the reservoir samples are a different (still
    /// uniform) draw.
    pub(crate) fn merge(&mut self, other: Recorder) {
        for (mine, theirs) in self.tracks.iter_mut().zip(&other.tracks) {
            mine.merge(theirs);
        }
        self.successes += other.successes;
        self.failures += other.failures;
        self.server_busy += other.server_busy;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.output_tokens += other.output_tokens;
        self.prompt_tokens += other.prompt_tokens;
        self.cold_loads += other.cold_loads;
        self.good += other.good;
        for (mine, theirs) in self.models.iter_mut().zip(&other.models) {
            mine.successes += theirs.successes;
            mine.failures += theirs.failures;
            mine.e2e.merge(&theirs.e2e);
            mine.ttft.merge(&theirs.ttft);
            mine.tps.merge(&theirs.tps);
            mine.output_tokens += theirs.output_tokens;
            mine.cold_loads += theirs.cold_loads;
        }
        if self.seconds.len() < other.seconds.len() {
            self.seconds
                .resize(other.seconds.len(), SecondAgg::default());
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.requests += theirs.requests;
            mine.errors += theirs.errors;
            mine.latency_sum_us = mine.latency_sum_us.saturating_add(theirs.latency_sum_us);
            mine.latency_max_us = mine.latency_max_us.max(theirs.latency_max_us);
            mine.output_tokens += theirs.output_tokens;
        }
        self.last_finish = match (self.last_finish, other.last_finish) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.ok_samples.merge(other.ok_samples, &mut self.rng);
        self.err_samples.merge(other.err_samples, &mut self.rng);
    }

    /// Length of the timed window: from its start to the last completion (or `until`, if
    /// later, for runs that end with requests abandoned).
    pub(crate) fn window(&self, until: Instant) -> Duration {
        let end = self.last_finish.map_or(until, |f| f.max(until));
        end.saturating_duration_since(self.start)
    }

    pub(crate) fn finish(self, window: Duration) -> Result<Aggregates, HistogramError> {
        let secs = window.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let total = self.completed();
        let dist = |m: M| self.tracks[m as usize].distribution();
        let summary = Summary {
            total_requests: total,
            successes: self.successes,
            failures: self.failures,
            success_rate: if total > 0 {
                self.successes as f64 * 100.0 / total as f64
            } else {
                0.0
            },
            test_duration_seconds: secs,
            requests_per_second: per_sec(total),
            latency_ms: dist(M::E2e).unwrap_or_default(),
            errors: self.errors.clone(),
            latency_uncorrected_ms: dist(M::E2eUncorrected),
            http_statuses: self.statuses.clone(),
            output_tokens_total: self.output_tokens,
            prompt_tokens_total: self.prompt_tokens,
            output_tokens_per_second: per_sec(self.output_tokens),
            cold_loads: self.cold_loads,
            ..Summary::default()
        };
        let metrics = Metrics {
            e2e_ms: dist(M::E2e),
            e2e_uncorrected_ms: dist(M::E2eUncorrected),
            ttfb_ms: dist(M::Ttfb),
            ttft_ms: dist(M::Ttft),
            ttfc_ms: dist(M::Ttfc),
            itl_ms: dist(M::Itl),
            tpot_ms: dist(M::Tpot),
            output_tokens: dist(M::OutputTokens),
            prompt_tokens: dist(M::PromptTokens),
            tokens_per_second: dist(M::Tps),
            load_ms: dist(M::Load),
            prompt_eval_ms: dist(M::PromptEval),
            eval_ms: dist(M::Eval),
            server_total_ms: dist(M::ServerTotal),
            queue_wait_ms: dist(M::QueueWait),
            server_wait_ms: dist(M::ServerWait),
        };
        let goodput = self.slo.map(|slo| Goodput {
            slo: slo.record(),
            good_requests: self.good,
            good_percent: if total > 0 {
                self.good as f64 * 100.0 / total as f64
            } else {
                0.0
            },
            goodput_rps: per_sec(self.good),
        });
        let models = self
            .models
            .iter()
            .map(|m| {
                Ok(ModelStats {
                    requests: m.successes + m.failures,
                    successes: m.successes,
                    failures: m.failures,
                    latency_ms: m.e2e.distribution(),
                    ttft_ms: m.ttft.distribution(),
                    tokens_per_second: m.tps.distribution(),
                    output_tokens_total: m.output_tokens,
                    cold_loads: m.cold_loads,
                    histograms: encode_tracks([
                        (&m.e2e, NAMES[M::E2e as usize]),
                        (&m.ttft, NAMES[M::Ttft as usize]),
                        (&m.tps, NAMES[M::Tps as usize]),
                    ])?,
                })
            })
            .collect::<Result<_, HistogramError>>()?;
        let time_series = self
            .seconds
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let ok = s.requests - s.errors;
                SecondBucket {
                    second: i as u64,
                    requests: s.requests,
                    errors: s.errors,
                    latency_avg_ms: if ok > 0 {
                        s.latency_sum_us as f64 / ok as f64 / 1e3
                    } else {
                        0.0
                    },
                    latency_max_ms: s.latency_max_us as f64 / 1e3,
                    output_tokens: s.output_tokens,
                }
            })
            .collect();
        let histograms = encode_tracks(self.tracks.iter().zip(NAMES))?;
        Ok(Aggregates {
            summary,
            metrics,
            schedule_lag: dist(M::ScheduleLag),
            goodput,
            models,
            time_series,
            samples: Samples {
                requests: self.ok_samples.items,
                errors: self.err_samples.items,
            },
            histograms,
        })
    }
}

/// The serialized histograms of the tracks that hold values, by name.
fn encode_tracks<'a>(
    tracks: impl IntoIterator<Item = (&'a Track, &'static str)>,
) -> Result<BTreeMap<String, EncodedHistogram>, HistogramError> {
    tracks
        .into_iter()
        .filter(|(track, _)| track.len() > 0)
        .map(|(track, name)| Ok((name.to_owned(), track.encode()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn done(r: &Recorder, i: u64, e2e_ms: u64, outcome: Result<Success, Failure>) -> Completed {
        let intended = r.start + Duration::from_millis(i);
        Completed {
            index: i,
            model: 0,
            intended,
            sent: intended,
            finished: intended + Duration::from_millis(e2e_ms),
            outcome,
        }
    }

    #[test]
    fn failures_stay_out_of_latency_and_samples_are_bounded() {
        let mut r = Recorder::new(Instant::now(), false, 1, 10, None, 1);
        for i in 0..1000 {
            let c = if i % 10 == 0 {
                done(
                    &r,
                    i,
                    5000,
                    Err(Failure {
                        kind: "server_busy".into(),
                        status: Some(503),
                        message: "busy".into(),
                        server_busy: true,
                    }),
                )
            } else {
                done(
                    &r,
                    i,
                    100,
                    Ok(Success {
                        output_tokens: Some(10),
                        ..Success::default()
                    }),
                )
            };
            r.record(c, "m");
        }
        assert_eq!(r.server_busy, 100);
        let a = r.finish(Duration::from_secs(2)).unwrap();
        assert_eq!(a.summary.total_requests, 1000);
        assert_eq!(a.summary.failures, 100);
        assert!((a.summary.success_rate - 90.0).abs() < 1e-9);
        assert!((a.summary.latency_ms.max - 100.0).abs() < 1e-9);
        assert_eq!(a.summary.errors["server_busy"], 100);
        assert_eq!(a.summary.http_statuses["503"], 100);
        assert_eq!(a.samples.requests.len(), 10);
        assert_eq!(a.samples.errors.len(), 10);
        assert_eq!(a.summary.output_tokens_total, 9000);
        assert!((a.summary.requests_per_second - 500.0).abs() < 1e-9);
    }

    /// A request of a varied mix: some failures, some busy, times spread over seconds.
    fn varied(r: &Recorder, i: u64) -> Completed {
        let intended = r.start + Duration::from_millis(i * 7);
        let finished = intended + Duration::from_millis(40 + i * 13 % 900);
        let busy = i.is_multiple_of(2);
        let outcome = if i.is_multiple_of(11) {
            Err(Failure {
                kind: if busy { "server_busy" } else { "timeout" }.into(),
                status: busy.then_some(503),
                message: "no".into(),
                server_busy: busy,
            })
        } else {
            Ok(Success {
                output_tokens: Some(i % 50 + 2),
                prompt_tokens: Some(7),
                server: ServerTimings {
                    total: Some(Duration::from_millis(30)),
                    load: Some(Duration::from_millis(i % 3 * 100)),
                    prompt_eval: Some(Duration::from_millis(5)),
                    eval: Some(Duration::from_millis(20 + i % 9)),
                },
                done_reason: Some("stop".into()),
                ..Success::default()
            })
        };
        Completed {
            index: i,
            model: (i % 2) as usize,
            intended,
            sent: intended,
            finished,
            outcome,
        }
    }

    #[test]
    fn merged_lanes_equal_one_recorder() {
        let start = Instant::now();
        let slo = Some("e2e=500ms".parse().unwrap());
        let new = |seed| Recorder::new(start, true, 2, 25, slo, seed);
        let mut whole = new(1);
        let mut lanes = [new(1), new(2), new(3)];
        for i in 0..3000 {
            let c = varied(&whole, i);
            whole.record(c, "m");
            whole.record_lag(Duration::from_micros(i % 97));
            let lane = &mut lanes[(i * 7 % 3) as usize];
            let c = varied(lane, i);
            lane.record(c, "m");
            lane.record_lag(Duration::from_micros(i % 97));
        }
        let [mut merged, b, c] = lanes;
        merged.merge(b);
        merged.merge(c);
        let mut sum = ProgressSum::default();
        sum.add(&merged);
        assert_eq!(
            sum.progress(start).p99_ms,
            whole.tracks[M::E2e as usize].quantile(0.99)
        );
        let window = Duration::from_secs(30);
        let (a, w) = (
            merged.finish(window).unwrap(),
            whole.finish(window).unwrap(),
        );
        assert_eq!(a.summary, w.summary);
        assert_eq!(a.metrics, w.metrics);
        assert_eq!(a.schedule_lag, w.schedule_lag);
        assert_eq!(a.goodput, w.goodput);
        assert_eq!(a.models, w.models);
        assert_eq!(a.time_series, w.time_series);
        assert_eq!(a.histograms, w.histograms);
        // Samples are another uniform draw: as many, all distinct requests of the right kind.
        assert_eq!(a.samples.requests.len(), 25);
        assert_eq!(a.samples.errors.len(), 25);
        let mut seen: Vec<u64> = a.samples.requests.iter().map(|s| s.index).collect();
        seen.extend(a.samples.errors.iter().map(|s| s.index));
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 50);
        assert!(a.samples.errors.iter().all(|s| s.index.is_multiple_of(11)));
    }

    #[test]
    fn merged_reservoirs_sample_each_side_by_its_size() {
        // Side a saw 900 items, side b 100: about 90% of the merged slots come from a.
        let mut rng = SmallRng::seed_from_u64(7);
        let mut from_a = 0;
        for round in 0..200 {
            let mut a = Reservoir::new(10);
            let mut b = Reservoir::new(10);
            for i in 0..900 {
                a.offer(&mut rng, || (true, i));
            }
            for i in 0..100 {
                b.offer(&mut rng, || (false, i));
            }
            a.merge(b, &mut rng);
            assert_eq!((a.items.len(), a.seen), (10, 1000), "round {round}");
            from_a += a.items.iter().filter(|(side, _)| *side).count();
        }
        assert!((1700..=1900).contains(&from_a), "{from_a} of 2000");
        // Fewer items than the capacity: everything is kept.
        let mut a = Reservoir::new(10);
        let mut b = Reservoir::new(10);
        a.offer(&mut rng, || 1);
        b.offer(&mut rng, || 2);
        a.merge(b, &mut rng);
        let mut items = a.items;
        items.sort_unstable();
        assert_eq!(items, [1, 2]);
    }

    #[test]
    fn streaming_metrics_derive_from_chunk_times() {
        let start = Instant::now();
        let mut r = Recorder::new(start, true, 1, 5, Some("ttft=150ms".parse().unwrap()), 1);
        let intended = start;
        let sent = start + Duration::from_millis(50);
        let first = start + Duration::from_millis(200);
        let finished = start + Duration::from_millis(1100);
        r.record(
            Completed {
                index: 0,
                model: 0,
                intended,
                sent,
                finished,
                outcome: Ok(Success {
                    first_byte_at: Some(first),
                    first_token_at: Some(first),
                    first_content_at: Some(first),
                    gaps: vec![Duration::from_millis(100); 9],
                    output_tokens: Some(10),
                    prompt_tokens: Some(5),
                    server: ServerTimings {
                        total: Some(Duration::from_secs(1)),
                        load: Some(Duration::from_millis(10)),
                        prompt_eval: Some(Duration::from_millis(40)),
                        eval: Some(Duration::from_millis(900)),
                    },
                    done_reason: Some("stop".into()),
                }),
            },
            "m",
        );
        let a = r.finish(Duration::from_secs(2)).unwrap();
        let m = &a.metrics;
        let close = |d: &Option<Distribution>, v: f64| (d.as_ref().unwrap().p50 - v).abs() < 0.01;
        assert!(close(&m.e2e_ms, 1100.0));
        assert!(close(&m.e2e_uncorrected_ms, 1050.0));
        assert!(close(&m.ttft_ms, 200.0));
        assert!(close(&m.tpot_ms, 100.0));
        assert!(close(&m.itl_ms, 100.0));
        assert!((m.tokens_per_second.as_ref().unwrap().p50 - 11.111).abs() < 0.01);
        assert!(close(&m.queue_wait_ms, 50.0));
        assert!(close(&m.server_wait_ms, 50.0));
        assert_eq!(a.goodput.unwrap().good_requests, 0);
        assert_eq!(a.summary.cold_loads, 0);
        assert!(a.histograms.contains_key("e2e_uncorrected"));
    }
}
