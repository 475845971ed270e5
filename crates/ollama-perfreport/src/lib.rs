//! Performance reports for an Ollama service.
//!
//! This crate answers the operator's question after a change (a new model, new client
//! limits, a server upgrade): did it make things worse, by how much, and how sure are we?
//! It runs suites of load-test scenarios (TOML) through [`ollama_loadtest`], archives the
//! results, compares two archives metric by metric with bootstrap confidence intervals and
//! a verdict, shows trends over an archive folder, merges reports of load-generator shards
//! losslessly, summarises the telemetry JSONL log, and renders Markdown and a self-contained
//! HTML page with charts.
//!
//! It is not a load generator (that is `ollama-loadtest`) and not a monitoring system (that
//! is Prometheus fed by `ollama-telemetry`).

mod error;
mod events;
mod metric;
mod stats;
mod suite;
mod thresholds;
mod verdict;

pub use error::Error;
pub use events::{
    Distribution, EventsSummary, MalformedLine, ModelEvents, Window, parse_time_bound,
    summarize_events,
};
pub use metric::{Direction, Metric};
pub use stats::{BootstrapConfig, Change, Estimate, Interval};
pub use suite::{Endpoint, Scenario, ScenarioOptions, SimSettings, Suite};
pub use thresholds::{NoiseFloors, Thresholds};
pub use verdict::{Verdict, judge};
