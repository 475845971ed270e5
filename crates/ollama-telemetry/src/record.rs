//! Recording one request: the per-client [`Recorder`] and the per-request [`Tracker`].
//!
//! A tracker is created when a call starts and is the only place that turns what was
//! observed into metrics, span fields and the JSONL event. Its invariant: it finishes
//! exactly once. Success and error finish it explicitly; if it is dropped unfinished (the
//! caller dropped the request future or the stream), `Drop` finishes it as `abandoned`, or
//! as `success` when the stream's final item had already arrived. That is what makes "one
//! event per request" hold whatever the caller does.
//!
//! Everything here runs on the request path, once or twice per request, so it avoids
//! allocating and formatting: metric handles are cached per (model, endpoint), the request
//! id is formatted only when a tracing subscriber wants the span (and by the event writer
//! for the event), the model name is the series label rather than a copy, common
//! `done_reason` values are static, and the event leaves as one [`FinishedRequest`], moved
//! into the writer's queue (no allocation of its own), that the writer thread formats.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use metrics::{Gauge, Histogram, SharedString, counter, gauge, histogram};
use tracing::Span;
use tracing::field::Empty;

use crate::catalog::{
    ERRORS_TOTAL, IN_FLIGHT_REQUESTS, OPEN_CONNECTIONS, POOL_WAIT_SECONDS, RESPONSES_TOTAL,
    SERVER_BUSY_TOTAL,
};
use crate::config::{EventsConfig, TelemetryConfig};
use crate::error::TelemetryError;
use crate::event::Outcome;
use crate::event_log::EventLog;
use crate::line::{EventFields, Head, Text, TimestampFormat, escaped};
use crate::series::{Endpoint, ModelRegistry, ModelSeries};

/// What one [`InstrumentedClient`](crate::InstrumentedClient) shares with its requests.
pub(crate) struct Recorder {
    client: ollama_client::Client,
    events: Option<EventLog>,
    /// What every event of this client carries: `client_type` and the request id prefix.
    source: Arc<EventSource>,
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
    /// The series of the request's model (its `model` label).
    pub(crate) series: Arc<ModelSeries>,
    /// The model's name for the event.
    pub(crate) model: EventModel,
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
    /// Borrowed only as one of the static words of [`done_reason`], which need no JSON
    /// escape: the event writer copies them as they are.
    pub(crate) done_reason: Option<Cow<'static, str>>,
}

/// The model name an event carries, without copying it when the series label holds it.
pub(crate) enum EventModel {
    /// The call names no model.
    None,
    /// The name is the series' label (every name admitted under the label limit).
    Label,
    /// A name beyond the label limit (its series is the overflow's).
    Owned(Box<str>),
}

/// A client's part of its events, shared by all of them.
pub(crate) struct EventSource {
    /// Escaped once here, as it goes into every line.
    client_type_json: Box<str>,
    /// `<8 hex>-`: the request id up to its counter.
    id_prefix: String,
}

/// A request id, `<8 hex prefix>-<counter>`, formatted only when something shows it.
pub(crate) struct RequestId {
    prefix: u32,
    number: u64,
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{}", self.prefix, self.number)
    }
}

/// A finished request as the request path hands it to the event writer: the event's
/// values, unformatted. The timestamp, the request id, milliseconds and the JSON are
/// formatted on the writer thread, off the request path.
pub(crate) struct FinishedRequest {
    source: Arc<EventSource>,
    number: u64,
    finished_at: SystemTime,
    operation: &'static str,
    endpoint: Endpoint,
    series: Arc<ModelSeries>,
    model: EventModel,
    stream: bool,
    outcome: Outcome,
    latency: Duration,
    ttft: Option<Duration>,
    report: ServerReport,
    model_warm_start: Option<bool>,
    queue_wait: Option<Duration>,
    prompt_chars: Option<u64>,
    tokens_per_second: Option<f64>,
    options: Option<serde_json::Value>,
    prompt: Option<String>,
    failure: Option<Failure>,
}

/// The writer thread's reused formatting state.
pub(crate) struct EventFormat {
    timestamps: TimestampFormat,
}

impl EventFormat {
    pub(crate) fn new() -> Self {
        Self {
            timestamps: TimestampFormat::new(),
        }
    }
}

impl FinishedRequest {
    /// Appends the event's JSON object to `out`: the same bytes as serialising the
    /// `RequestEvent` the tracker used to build.
    pub(crate) fn write(&self, out: &mut Vec<u8>, format: &mut EventFormat) -> io::Result<()> {
        let r = &self.report;
        let failure = self.failure.as_ref();
        EventFields {
            head: Head::Finished {
                timestamps: &mut format.timestamps,
                at: self.finished_at,
                id_prefix: &self.source.id_prefix,
                number: self.number,
            },
            client_type: Text::Verbatim(&self.source.client_type_json),
            operation: Text::Verbatim(self.operation),
            endpoint: Text::Verbatim(self.endpoint.path()),
            model: match &self.model {
                EventModel::None => None,
                EventModel::Label => Some(Text::Verbatim(self.series.label_json())),
                EventModel::Owned(name) => Some(Text::Escape(name)),
            },
            stream: self.stream,
            status: None,
            outcome: self.outcome,
            latency_ms: ms(self.latency),
            ttft_ms: self.ttft.map(ms),
            total_duration_ms: r.total.map(ms),
            model_load_ms: r.load.map(ms),
            model_warm_start: self.model_warm_start,
            prompt_eval_ms: r.prompt_eval.map(ms),
            eval_ms: r.eval.map(ms),
            queue_wait_ms: self.queue_wait.map(ms),
            prompt_chars: self.prompt_chars,
            prompt_eval_count: r.prompt_eval_count,
            generation_eval_count: r.eval_count,
            tokens_per_second: self.tokens_per_second,
            // The values `done_reason` keeps static are plain words.
            done_reason: r.done_reason.as_ref().map(|reason| match reason {
                Cow::Borrowed(word) => Text::Verbatim(word),
                Cow::Owned(other) => Text::Escape(other),
            }),
            options: self.options.as_ref(),
            prompt: self.prompt.as_deref(),
            error_type: failure.map(|f| f.kind),
            error_message: failure.map(|f| f.message.as_str()),
            http_status: failure.and_then(|f| f.http_status),
        }
        .write(out)
    }
}

/// `done_reason` / `finish_reason` values; the ones servers send are not copied.
pub(crate) fn done_reason(reason: &str) -> Cow<'static, str> {
    match reason {
        "stop" => Cow::Borrowed("stop"),
        "length" => Cow::Borrowed("length"),
        "load" => Cow::Borrowed("load"),
        "unload" => Cow::Borrowed("unload"),
        "tool_calls" => Cow::Borrowed("tool_calls"),
        "content_filter" => Cow::Borrowed("content_filter"),
        other => Cow::Owned(other.to_owned()),
    }
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
        let id_prefix: u32 = rand::random();
        Ok(Self {
            client,
            events,
            source: Arc::new(EventSource {
                client_type_json: escaped(&config.client_type).into_boxed_str(),
                id_prefix: format!("{id_prefix:08x}-"),
            }),
            log_prompts: config.log_prompts,
            warm_start_threshold: config.warm_start_threshold,
            models: ModelRegistry::new(config.max_model_labels),
            id_prefix,
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

    /// The series of `model`, and how the event names it (copied only when the name is
    /// beyond the label limit, which is rare).
    pub(crate) fn model(&self, model: Option<&str>) -> (Arc<ModelSeries>, EventModel) {
        let series = self.models.get(model);
        let name = match model {
            None => EventModel::None,
            Some(name) if **series.label() == *name => EventModel::Label,
            Some(name) => EventModel::Owned(name.into()),
        };
        (series, name)
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
///
/// Lock-free: every request updates it twice, from every worker thread. The count is
/// claimed with a compare-and-swap, so each wait is observed once; the total advances to
/// the largest snapshot seen, so the sum of the recorded deltas is the client's total.
struct PoolWaitCursor {
    /// Waits already observed. Invariant: never ahead of the client's figure.
    seen_waits: AtomicU64,
    /// Total wait already observed, in nanoseconds. Invariant: as `seen_waits`.
    seen_nanos: AtomicU64,
    histogram: OnceLock<Histogram>,
}

impl PoolWaitCursor {
    /// Starts from the client's current figures, so waits from before telemetry was
    /// attached are not counted.
    fn new(client: &ollama_client::Client) -> Self {
        let stats = client.stats();
        Self {
            seen_waits: AtomicU64::new(stats.pool_waits_total),
            seen_nanos: AtomicU64::new(nanos(stats.pool_wait_total)),
            histogram: OnceLock::new(),
        }
    }

    fn observe(&self, stats: &ollama_client::ClientStats) {
        let mut seen = self.seen_waits.load(Ordering::Relaxed);
        let count = loop {
            // Snapshots taken by concurrent requests can arrive out of order; an older one
            // has nothing new.
            if stats.pool_waits_total <= seen {
                return;
            }
            match self.seen_waits.compare_exchange_weak(
                seen,
                stats.pool_waits_total,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break stats.pool_waits_total - seen,
                Err(now) => seen = now,
            }
        };
        let total = nanos(stats.pool_wait_total);
        let before = self.seen_nanos.fetch_max(total, Ordering::Relaxed);
        let mean = total.saturating_sub(before) as f64 / 1e9 / count as f64;
        self.histogram
            .get_or_init(|| histogram!(POOL_WAIT_SECONDS))
            .record_many(mean, usize::try_from(count).unwrap_or(usize::MAX));
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
    /// The counter part of the request id.
    number: u64,
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
        let number = recorder.next_id.fetch_add(1, Ordering::Relaxed);
        // Field values are only evaluated when a subscriber wants the span, so the id is
        // formatted only then.
        let span = tracing::info_span!(
            "ollama_request",
            request_id = %RequestId { prefix: recorder.id_prefix, number },
            operation = info.operation,
            endpoint = info.endpoint.path(),
            model = %info.series.label(),
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
            number,
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
        self.info
            .series
            .ok_responses(self.info.endpoint)
            .increment(1);
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
                self.info
                    .series
                    .ttft(self.info.endpoint)
                    .record(at.saturating_duration_since(self.started).as_secs_f64());
            }
            Some(previous) => {
                self.info
                    .series
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
        let series = &self.info.series;

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

        if !self.span.is_disabled() {
            let latency_ms = ms(latency);
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

        if self.recorder.events.is_some() {
            let finished = self.finished(outcome, latency, tokens_per_second, queue_wait, failure);
            if let Some(log) = &self.recorder.events {
                log.record_finished(finished);
            }
        }
    }

    /// The event's values; takes what the tracker no longer needs instead of copying it.
    fn finished(
        &mut self,
        outcome: Outcome,
        latency: Duration,
        tokens_per_second: Option<f64>,
        queue_wait: Option<Duration>,
        failure: Option<Failure>,
    ) -> FinishedRequest {
        let report = std::mem::take(&mut self.report);
        let info = &mut self.info;
        FinishedRequest {
            source: Arc::clone(&self.recorder.source),
            number: self.number,
            finished_at: SystemTime::now(),
            operation: info.operation,
            endpoint: info.endpoint,
            series: Arc::clone(&info.series),
            model: std::mem::replace(&mut info.model, EventModel::None),
            stream: info.stream,
            outcome,
            latency,
            ttft: self
                .first_token
                .map(|t| t.saturating_duration_since(self.started)),
            model_warm_start: report.load.map(|l| l < self.recorder.warm_start_threshold),
            report,
            queue_wait,
            prompt_chars: info.prompt_chars,
            tokens_per_second,
            options: info.options.take(),
            prompt: info.prompt.take(),
            failure,
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
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::event::RequestEvent;

    #[test]
    fn merge_keeps_what_the_newer_report_does_not_say() {
        let mut report = ServerReport {
            done_reason: Some("stop".into()),
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

    /// The line the writer makes of a finished request is what serde_json makes of the
    /// `RequestEvent` the tracker used to build from it.
    #[test]
    fn a_finished_request_writes_the_line_of_its_request_event() {
        let registry = ModelRegistry::new(1);
        let source = Arc::new(EventSource {
            client_type_json: escaped("tab\there \"quoted\"").into_boxed_str(),
            id_prefix: "000000ab-".to_owned(),
        });
        let finished_at = std::time::UNIX_EPOCH + Duration::new(1_798_761_599, 123_456_789);
        let report = ServerReport {
            total: Some(Duration::from_micros(4_709)),
            load: Some(Duration::from_nanos(3_506)),
            prompt_eval_count: Some(11),
            prompt_eval: Some(Duration::from_nanos(90)),
            eval_count: Some(8),
            eval: Some(Duration::from_nanos(681)),
            done_reason: Some(done_reason("stop")),
        };
        let ok = FinishedRequest {
            source: Arc::clone(&source),
            number: 42,
            finished_at,
            operation: "generate",
            endpoint: Endpoint::Generate,
            series: registry.get(Some("llama3.2:latest")),
            model: EventModel::Label,
            stream: true,
            outcome: Outcome::Success,
            latency: Duration::from_nanos(478_032_985),
            ttft: Some(Duration::from_millis(3)),
            report: report.clone(),
            model_warm_start: Some(true),
            queue_wait: Some(Duration::from_nanos(478_028_276)),
            prompt_chars: Some(44),
            tokens_per_second: report.tokens_per_second(),
            options: Some(serde_json::json!({"temperature": 0.2})),
            prompt: Some("line\nbreak".to_owned()),
            failure: None,
        };
        let failed = FinishedRequest {
            source,
            number: 7,
            finished_at,
            operation: "chat",
            endpoint: Endpoint::Chat,
            // Beyond the label limit: the series is the overflow's, the event keeps the name.
            series: registry.get(Some("m\u{1}odel")),
            model: EventModel::Owned("m\u{1}odel".into()),
            stream: false,
            outcome: Outcome::Error,
            latency: Duration::from_millis(2),
            ttft: None,
            report: ServerReport::default(),
            model_warm_start: None,
            queue_wait: None,
            prompt_chars: None,
            tokens_per_second: None,
            options: None,
            prompt: None,
            failure: Some(Failure {
                kind: "http_status",
                message: "HTTP 503: \"busy\"".to_owned(),
                http_status: Some(503),
                server_busy: true,
            }),
        };
        let mut format = EventFormat::new();
        for f in [ok, failed] {
            let mut line = Vec::new();
            f.write(&mut line, &mut format).unwrap();
            let r = &f.report;
            let failure = f.failure.as_ref();
            let expected = RequestEvent {
                event: "ollama_request".into(),
                timestamp: chrono::DateTime::<chrono::Utc>::from(f.finished_at)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                request_id: format!("{:08x}-{}", 0xab, f.number),
                client_type: "tab\there \"quoted\"".into(),
                operation: f.operation.into(),
                endpoint: f.endpoint.path().into(),
                model: match &f.model {
                    EventModel::None => None,
                    EventModel::Label => Some(f.series.label().to_string()),
                    EventModel::Owned(name) => Some(name.to_string()),
                },
                stream: f.stream,
                status: f.outcome.as_str().into(),
                outcome: f.outcome,
                latency_ms: ms(f.latency),
                ttft_ms: f.ttft.map(ms),
                total_duration_ms: r.total.map(ms),
                model_load_ms: r.load.map(ms),
                model_warm_start: f.model_warm_start,
                prompt_eval_ms: r.prompt_eval.map(ms),
                eval_ms: r.eval.map(ms),
                queue_wait_ms: f.queue_wait.map(ms),
                prompt_chars: f.prompt_chars,
                prompt_eval_count: r.prompt_eval_count,
                generation_eval_count: r.eval_count,
                tokens_per_second: f.tokens_per_second,
                done_reason: r.done_reason.as_deref().map(str::to_owned),
                options: f.options.clone(),
                prompt: f.prompt.clone(),
                error_type: failure.map(|e| e.kind.into()),
                error_message: failure.map(|e| e.message.clone()),
                http_status: failure.and_then(|e| e.http_status),
            };
            assert_eq!(
                String::from_utf8(line).unwrap(),
                serde_json::to_string(&expected).unwrap()
            );
        }
    }

    #[test]
    fn request_ids_show_as_prefix_and_counter() {
        let id = RequestId {
            prefix: 0xab,
            number: 12,
        };
        assert_eq!(id.to_string(), "000000ab-12");
    }

    #[test]
    fn status_labels_are_the_code_as_text() {
        assert_eq!(&*status_label(503), "503");
        assert_eq!(&*status_label(418), "418");
    }
}
