//! Recording one request: the per-client [`Recorder`] and the per-request [`Tracker`].
//!
//! A tracker is created when a call starts and is the only place that turns what was
//! observed into metrics, span fields and the JSONL event. Its invariant: it finishes
//! exactly once. Success and error finish it explicitly; if it is dropped unfinished (the
//! caller dropped the request future or the stream), `Drop` finishes it as `abandoned`, or
//! as `success` when the stream's final item had already arrived. That is what makes "one
//! event per request" hold whatever the caller does.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use metrics::{Gauge, Histogram, SharedString, counter, gauge, histogram};
use tracing::Span;
use tracing::field::Empty;

use crate::catalog::{
    ERRORS_TOTAL, IN_FLIGHT_REQUESTS, OPEN_CONNECTIONS, POOL_WAIT_SECONDS, RESPONSES_TOTAL,
    SERVER_BUSY_TOTAL,
};
use crate::config::{EventsConfig, TelemetryConfig};
use crate::error::TelemetryError;
use crate::event::{Outcome, RequestEvent};
use crate::event_log::EventLog;
use crate::series::{Endpoint, ModelRegistry, ModelSeries};

/// What one [`InstrumentedClient`](crate::InstrumentedClient) shares with its requests.
pub(crate) struct Recorder {
    client: ollama_client::Client,
    events: Option<EventLog>,
    client_type: String,
    log_prompts: bool,
    warm_start_threshold: Duration,
    models: ModelRegistry,
    /// Request ids are `<prefix>-<counter>`: the random prefix keeps ids from two
    /// processes (or two clients) writing one file apart.
    id_prefix: u32,
    next_id: AtomicU64,
    /// The client's cumulative pool wait already turned into histogram observations.
    pool_wait_seen: PoolWaitCursor,
    /// Gauge handles, resolved on first use like the series in `series`.
    in_flight: OnceLock<Gauge>,
    open_connections: OnceLock<Gauge>,
}

/// The request as the call sees it before sending.
pub(crate) struct RequestInfo {
    pub(crate) operation: &'static str,
    pub(crate) endpoint: Endpoint,
    pub(crate) model: Option<String>,
    pub(crate) stream: bool,
    pub(crate) prompt_chars: Option<u64>,
    /// Set only when the caller opted in to prompt logging.
    pub(crate) prompt: Option<String>,
    pub(crate) options: Option<serde_json::Value>,
}

/// What the server reported about its own work (native metrics or OpenAI usage).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ServerReport {
    pub(crate) total: Option<Duration>,
    pub(crate) load: Option<Duration>,
    pub(crate) prompt_eval_count: Option<u64>,
    pub(crate) prompt_eval: Option<Duration>,
    pub(crate) eval_count: Option<u64>,
    pub(crate) eval: Option<Duration>,
    pub(crate) done_reason: Option<String>,
}

impl ServerReport {
    /// Keeps what `other` knows, and what `self` knew that `other` does not say.
    pub(crate) fn merge(&mut self, other: ServerReport) {
        fn take<T>(slot: &mut Option<T>, new: Option<T>) {
            if new.is_some() {
                *slot = new;
            }
        }
        take(&mut self.total, other.total);
        take(&mut self.load, other.load);
        take(&mut self.prompt_eval_count, other.prompt_eval_count);
        take(&mut self.prompt_eval, other.prompt_eval);
        take(&mut self.eval_count, other.eval_count);
        take(&mut self.eval, other.eval);
        take(&mut self.done_reason, other.done_reason);
    }

    /// `eval_count / eval_duration`, when both are known and the duration is not zero.
    pub(crate) fn tokens_per_second(&self) -> Option<f64> {
        let count = self.eval_count?;
        let secs = self.eval?.as_secs_f64();
        (secs > 0.0).then(|| count as f64 / secs)
    }
}

impl Recorder {
    pub(crate) fn new(
        client: ollama_client::Client,
        config: TelemetryConfig,
    ) -> Result<Self, TelemetryError> {
        if config.max_model_labels == 0 {
            return Err(TelemetryError::InvalidConfig(
                "max_model_labels must be at least 1".to_owned(),
            ));
        }
        let events = match config.events {
            EventsConfig::Off => None,
            EventsConfig::File(path) => Some(EventLog::to_file(path, config.event_queue_capacity)?),
            EventsConfig::Log(log) => Some(log),
        };
        let pool_wait_seen = PoolWaitCursor::new(&client);
        Ok(Self {
            client,
            events,
            client_type: config.client_type,
            log_prompts: config.log_prompts,
            warm_start_threshold: config.warm_start_threshold,
            models: ModelRegistry::new(config.max_model_labels),
            id_prefix: rand::random(),
            next_id: AtomicU64::new(1),
            pool_wait_seen,
            in_flight: OnceLock::new(),
            open_connections: OnceLock::new(),
        })
    }

    pub(crate) fn client(&self) -> &ollama_client::Client {
        &self.client
    }

    pub(crate) fn events(&self) -> Option<&EventLog> {
        self.events.as_ref()
    }

    pub(crate) fn log_prompts(&self) -> bool {
        self.log_prompts
    }

    /// Publishes the client's pool and limit figures: gauges, and pool waits since the
    /// last call.
    fn update_pool_figures(&self) {
        let stats = self.client.stats();
        self.in_flight
            .get_or_init(|| gauge!(IN_FLIGHT_REQUESTS))
            .set(stats.in_flight_requests as f64);
        self.open_connections
            .get_or_init(|| gauge!(OPEN_CONNECTIONS))
            .set(stats.open_connections as f64);
        self.pool_wait_seen.observe(&stats);
    }
}

/// Turns the client's cumulative pool-wait figures (`pool_waits_total`, `pool_wait_total`)
/// into histogram observations.
///
/// The client does not attribute waits to requests, so each update records the waits that
/// happened since the previous update, each at their mean. `_count` and `_sum` are exact;
/// the bucket of a wait is exact whenever one wait happened between two updates (always the
/// case without concurrency) and an average otherwise.
struct PoolWaitCursor {
    /// (waits, total wait) already observed. Invariant: never ahead of the client's figures.
    seen: Mutex<(u64, Duration)>,
    histogram: OnceLock<Histogram>,
}

impl PoolWaitCursor {
    /// Starts from the client's current figures, so waits from before telemetry was
    /// attached are not counted.
    fn new(client: &ollama_client::Client) -> Self {
        let stats = client.stats();
        Self {
            seen: Mutex::new((stats.pool_waits_total, stats.pool_wait_total)),
            histogram: OnceLock::new(),
        }
    }

    fn observe(&self, stats: &ollama_client::ClientStats) {
        let (count, total) = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            // Snapshots taken by concurrent requests can arrive out of order; an older one
            // has nothing new.
            if stats.pool_waits_total <= seen.0 {
                return;
            }
            let delta = (
                stats.pool_waits_total - seen.0,
                stats.pool_wait_total.saturating_sub(seen.1),
            );
            *seen = (stats.pool_waits_total, stats.pool_wait_total);
            delta
        };
        let mean = total.as_secs_f64() / count as f64;
        self.histogram
            .get_or_init(|| histogram!(POOL_WAIT_SECONDS))
            .record_many(mean, usize::try_from(count).unwrap_or(usize::MAX));
    }
}

/// A failure in the terms telemetry records.
pub(crate) struct Failure {
    kind: &'static str,
    message: String,
    http_status: Option<u16>,
    server_busy: bool,
}

impl From<&ollama_client::Error> for Failure {
    fn from(e: &ollama_client::Error) -> Self {
        Self {
            kind: e.kind().as_str(),
            message: e.to_string(),
            http_status: e.status().map(|s| s.as_u16()),
            server_busy: e.is_server_busy(),
        }
    }
}

/// The status label without allocating for the statuses Ollama sends.
fn status_label(status: u16) -> SharedString {
    let fixed = match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        429 => "429",
        499 => "499",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return SharedString::from(other.to_string()),
    };
    SharedString::const_str(fixed)
}

/// One request being recorded; see the module docs for its finish-once invariant.
pub(crate) struct Tracker {
    recorder: Arc<Recorder>,
    info: RequestInfo,
    series: Arc<ModelSeries>,
    request_id: String,
    started: Instant,
    span: Span,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    /// Arrival of the most recent item of a stream.
    last_item: Option<Instant>,
    report: ServerReport,
    /// The stream's final item (native `done: true`, OpenAI `finish_reason`) has arrived.
    done_seen: bool,
    finished: bool,
}

impl Tracker {
    pub(crate) fn start(recorder: &Arc<Recorder>, info: RequestInfo) -> Self {
        let series = recorder.models.get(info.model.as_deref());
        let n = recorder.next_id.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("{:08x}-{n}", recorder.id_prefix);
        let span = tracing::info_span!(
            "ollama_request",
            request_id = %request_id,
            operation = info.operation,
            endpoint = info.endpoint.path(),
            model = %series.label(),
            stream = info.stream,
            outcome = Empty,
            latency_ms = Empty,
            http_status = Empty,
            error_kind = Empty,
        );
        recorder.update_pool_figures();
        Self {
            recorder: Arc::clone(recorder),
            info,
            series,
            request_id,
            started: Instant::now(),
            span,
            first_token: None,
            last_token: None,
            last_item: None,
            report: ServerReport::default(),
            done_seen: false,
            finished: false,
        }
    }

    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// The server answered a call (or a stream's head) with success.
    pub(crate) fn responded_ok(&self) {
        self.series.ok_responses(self.info.endpoint).increment(1);
        self.span.record("http_status", 200);
    }

    /// A stream item arrived at `at`; `carries_token` when it holds token text.
    pub(crate) fn item(&mut self, at: Instant, carries_token: bool) {
        self.last_item = Some(at);
        if !carries_token {
            return;
        }
        match self.last_token {
            None => {
                self.first_token = Some(at);
                self.series
                    .ttft(self.info.endpoint)
                    .record(at.saturating_duration_since(self.started).as_secs_f64());
            }
            Some(previous) => {
                self.series
                    .inter_token(self.info.endpoint)
                    .record(at.saturating_duration_since(previous).as_secs_f64());
            }
        }
        self.last_token = Some(at);
    }

    /// Adds what the server reported (a final chunk, a usage chunk, a whole response).
    pub(crate) fn report(&mut self, report: ServerReport) {
        self.report.merge(report);
    }

    /// The stream's final item arrived; dropping the stream from now on is not an abandon.
    pub(crate) fn done(&mut self) {
        self.done_seen = true;
    }

    /// Arrival of the most recent stream item, if any.
    pub(crate) fn last_item(&self) -> Option<Instant> {
        self.last_item
    }

    /// Finishes as a success, measured to `end` (the last item's arrival for streams).
    pub(crate) fn succeed(&mut self, end: Instant) {
        self.finish(Outcome::Success, end, None);
    }

    /// Finishes as an error at `end`.
    pub(crate) fn fail(&mut self, error: &ollama_client::Error, end: Instant) {
        self.finish(Outcome::Error, end, Some(Failure::from(error)));
    }

    fn finish(&mut self, outcome: Outcome, end: Instant, failure: Option<Failure>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let latency = end.saturating_duration_since(self.started);
        let endpoint = self.info.endpoint;
        let series = &self.series;

        series.requests(endpoint, outcome).increment(1);
        series
            .duration(endpoint, outcome)
            .record(latency.as_secs_f64());
        if let Some(f) = &failure {
            // Errors are rare: plain registry lookups, no cached handles.
            let (path, model) = (endpoint.path(), series.label().clone());
            counter!(ERRORS_TOTAL, "endpoint" => path, "model" => model.clone(), "kind" => f.kind)
                .increment(1);
            if let Some(status) = f.http_status {
                counter!(RESPONSES_TOTAL,
                    "endpoint" => path, "model" => model.clone(), "status" => status_label(status))
                .increment(1);
            }
            if f.server_busy {
                counter!(SERVER_BUSY_TOTAL, "endpoint" => path, "model" => model).increment(1);
            }
        }
        let r = &self.report;
        if let Some(load) = r.load {
            series.load().record(load.as_secs_f64());
        }
        if let Some(n) = r.prompt_eval_count {
            series.prompt_tokens().increment(n);
        }
        if let Some(n) = r.eval_count {
            series.completion_tokens().increment(n);
        }
        let tokens_per_second = r.tokens_per_second();
        if let Some(tps) = tokens_per_second {
            series.tokens_per_second().record(tps);
        }
        let queue_wait = r.total.map(|total| latency.saturating_sub(total));
        if let Some(wait) = queue_wait {
            series.queue_wait().record(wait.as_secs_f64());
        }
        self.recorder.update_pool_figures();

        let latency_ms = ms(latency);
        if !self.span.is_disabled() {
            self.span.record("outcome", outcome.as_str());
            self.span.record("latency_ms", latency_ms);
            if let Some(f) = &failure {
                self.span.record("error_kind", f.kind);
                if let Some(status) = f.http_status {
                    self.span.record("http_status", status);
                }
            }
            tracing::debug!(parent: &self.span, outcome = outcome.as_str(), latency_ms, "ollama request finished");
        }

        let recorder = Arc::clone(&self.recorder);
        if let Some(log) = &recorder.events {
            log.record(self.event(outcome, latency, tokens_per_second, queue_wait, failure));
        }
    }

    fn event(
        &mut self,
        outcome: Outcome,
        latency: Duration,
        tokens_per_second: Option<f64>,
        queue_wait: Option<Duration>,
        failure: Option<Failure>,
    ) -> RequestEvent {
        let r = &mut self.report;
        let (error_type, error_message, http_status) = match failure {
            Some(f) => (Some(Cow::Borrowed(f.kind)), Some(f.message), f.http_status),
            None => (None, None, None),
        };
        RequestEvent {
            event: Cow::Borrowed("ollama_request"),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            request_id: std::mem::take(&mut self.request_id),
            client_type: Cow::Owned(self.recorder.client_type.clone()),
            operation: Cow::Borrowed(self.info.operation),
            endpoint: Cow::Borrowed(self.info.endpoint.path()),
            model: self.info.model.take(),
            stream: self.info.stream,
            status: Cow::Borrowed(outcome.as_str()),
            outcome,
            latency_ms: ms(latency),
            ttft_ms: self
                .first_token
                .map(|t| ms(t.saturating_duration_since(self.started))),
            total_duration_ms: r.total.map(ms),
            model_load_ms: r.load.map(ms),
            model_warm_start: r.load.map(|l| l < self.recorder.warm_start_threshold),
            prompt_eval_ms: r.prompt_eval.map(ms),
            eval_ms: r.eval.map(ms),
            queue_wait_ms: queue_wait.map(ms),
            prompt_chars: self.info.prompt_chars,
            prompt_eval_count: r.prompt_eval_count,
            generation_eval_count: r.eval_count,
            tokens_per_second,
            done_reason: r.done_reason.take(),
            options: self.info.options.take(),
            prompt: self.info.prompt.take(),
            error_type,
            error_message,
            http_status,
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if self.done_seen {
            // The final item arrived and the caller simply did not poll past it.
            let end = self.last_item.unwrap_or_else(Instant::now);
            self.finish(Outcome::Success, end, None);
        } else {
            self.finish(Outcome::Abandoned, Instant::now(), None);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_the_newer_report_does_not_say() {
        let mut report = ServerReport {
            done_reason: Some("stop".to_owned()),
            ..ServerReport::default()
        };
        report.merge(ServerReport {
            prompt_eval_count: Some(3),
            eval_count: Some(7),
            ..ServerReport::default()
        });
        assert_eq!(report.done_reason.as_deref(), Some("stop"));
        assert_eq!(
            (report.prompt_eval_count, report.eval_count),
            (Some(3), Some(7))
        );
    }

    #[test]
    fn tokens_per_second_needs_a_count_and_a_non_zero_duration() {
        let mut report = ServerReport {
            eval_count: Some(50),
            eval: Some(Duration::from_millis(500)),
            ..ServerReport::default()
        };
        assert_eq!(report.tokens_per_second(), Some(100.0));
        report.eval = Some(Duration::ZERO);
        assert_eq!(report.tokens_per_second(), None);
        report.eval = None;
        assert_eq!(report.tokens_per_second(), None);
    }

    #[test]
    fn status_labels_are_the_code_as_text() {
        assert_eq!(&*status_label(503), "503");
        assert_eq!(&*status_label(418), "418");
    }
}
