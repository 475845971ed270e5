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

mod archive;
mod compare;
mod error;
mod events;
mod evidence;
mod merge;
mod metric;
mod render;
mod runner;
mod stats;
mod suite;
mod thresholds;
mod trend;
mod verdict;

pub use archive::{
    COMPARISON_KIND, Document, SCHEMA_VERSION, SUITE_REPORT_KIND, ScenarioRun, SuiteReport, Tool,
    read_document, read_report,
};
pub use compare::{
    CompareOptions, Comparison, CurvePair, MetricComparison, ScenarioComparison, Side, compare,
};
pub use error::Error;
pub use events::{
    Distribution, EventsSummary, MalformedLine, ModelEvents, Window, parse_time_bound,
    summarize_events,
};
pub use evidence::Curve;
pub use merge::{Merged, merge_documents};
pub use metric::{Direction, Metric};
pub use render::{
    Format, Page, comparison_markdown, events_markdown, render, render_html, report_markdown,
    trend_markdown,
};
pub use runner::{Progress, RunOptions, archive_path, run_suite, sim_config};
pub use stats::{BootstrapConfig, Change, Estimate, Interval};
pub use suite::{Arrival, Endpoint, Scenario, ScenarioOptions, SimSettings, Suite};
pub use thresholds::{NoiseFloors, Thresholds};
pub use trend::{Series, Skipped, Trend, TrendPoint, trend_dir, trend_of};
pub use verdict::{Verdict, judge};
