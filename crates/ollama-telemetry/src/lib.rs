//! Telemetry for the Ollama client: Prometheus metrics, a `tracing` span and one JSONL
//! event per request, and an embedded Prometheus exporter.
//!
//! [`InstrumentedClient`] wraps `ollama_client::Client` with the same methods. Every call
//! records metrics through the `metrics` facade (names in [`catalog`]), runs inside a
//! `tracing` span, and queues one event on an [`EventLog`], whose background thread writes
//! it to `logs/requests.jsonl` as the JSON of a [`RequestEvent`] without ever blocking the
//! request. The per-request work is kept to counters, cached metric handles and one record
//! moved into the event queue; formatting happens on the writer thread (see `event_log`). Streams are
//! measured to their end: time to first token, gaps between tokens, server-reported speed,
//! and a stream dropped early is recorded as `abandoned`.
//!
//! This crate records; it does not alert or draw dashboards (the operations docs do), and it
//! installs no recorder unless asked: without [`install_exporter`] (or a recorder of your
//! own) metrics calls are no-ops and only events are written.

pub mod catalog;
mod client;
mod config;
mod error;
mod event;
mod event_log;
mod exporter;
mod line;
mod record;
mod series;
mod stream;

pub use client::InstrumentedClient;
pub use config::{
    DEFAULT_EVENT_LOG_PATH, DEFAULT_MAX_MODEL_LABELS, DEFAULT_WARM_START_THRESHOLD, EventsConfig,
    TelemetryConfig,
};
pub use error::TelemetryError;
pub use event::{Outcome, RequestEvent};
pub use event_log::{DEFAULT_EVENT_QUEUE_CAPACITY, EventLog, EventLogStats};
pub use exporter::{DEFAULT_EXPORTER_ADDR, ExporterHandle, install_exporter};
pub use series::OVERFLOW_MODEL_LABEL;
pub use stream::InstrumentedStream;
