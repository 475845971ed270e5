//! What an [`InstrumentedClient`](crate::InstrumentedClient) records and where its events go.

use std::path::PathBuf;
use std::time::Duration;

use crate::event_log::{DEFAULT_EVENT_QUEUE_CAPACITY, EventLog};

/// The default JSONL event file, relative to the working directory.
pub const DEFAULT_EVENT_LOG_PATH: &str = "logs/requests.jsonl";

/// Below this server-reported `load_duration` a request counts as a warm start. A loaded
/// model reports sub-millisecond to a few milliseconds (parsing, manifest lookup, runner
/// ping); a cold load takes seconds, so 100 ms separates the two with room on both sides.
pub const DEFAULT_WARM_START_THRESHOLD: Duration = Duration::from_millis(100);

/// Default number of distinct `model` label values before names share `__other__`.
pub const DEFAULT_MAX_MODEL_LABELS: usize = 100;

/// Where JSONL request events go.
#[derive(Debug, Clone)]
pub enum EventsConfig {
    /// No events are written.
    Off,
    /// Append to this file (its folder is created), through a writer started for this client.
    File(PathBuf),
    /// Send to an event log the caller started (e.g. shared by several clients, or a custom sink).
    Log(EventLog),
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig::File(PathBuf::from(DEFAULT_EVENT_LOG_PATH))
    }
}

/// Telemetry settings; every default is documented on its field.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Where events go. Default: the file `logs/requests.jsonl`.
    pub events: EventsConfig,
    /// Queue size for a writer this config starts ([`EventsConfig::File`]). Default 16,384.
    pub event_queue_capacity: usize,
    /// The `client_type` key of events. Default `"rust_async"`.
    pub client_type: String,
    /// Whether events carry the prompt text (`prompt` key). Default `false`: only its length.
    pub log_prompts: bool,
    /// `load_duration` below this is a warm start. Default 100 ms.
    pub warm_start_threshold: Duration,
    /// Distinct `model` label values before further names share `__other__`. Default 100.
    pub max_model_labels: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            events: EventsConfig::default(),
            event_queue_capacity: DEFAULT_EVENT_QUEUE_CAPACITY,
            client_type: "rust_async".to_owned(),
            log_prompts: false,
            warm_start_threshold: DEFAULT_WARM_START_THRESHOLD,
            max_model_labels: DEFAULT_MAX_MODEL_LABELS,
        }
    }
}
