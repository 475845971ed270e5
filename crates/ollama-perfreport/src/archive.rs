//! The suite report (what `run` archives) and reading any report file this tool accepts.
//!
//! A suite report embeds the load-test [`Report`] of every repetition of every scenario
//! unchanged, histograms included, so a comparison months later can still bootstrap from the
//! raw distributions. Files are recognised by content, never by name: a suite report has
//! `"kind": "ollama-perfreport-suite"`, a comparison `"kind": "ollama-perfreport-comparison"`,
//! and a bare load-test report has the load-test schema's `schema_version` without a `kind`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ollama_loadtest::Report;
use serde::{Deserialize, Serialize};

use crate::compare::Comparison;
use crate::error::Error;
use crate::suite::Suite;

/// `kind` of a suite report.
pub const SUITE_REPORT_KIND: &str = "ollama-perfreport-suite";
/// `kind` of a comparison.
pub const COMPARISON_KIND: &str = "ollama-perfreport-comparison";
/// The schema version of suite reports and comparisons this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Name and version of the tool that wrote a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// `ollama-perfreport`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

impl Tool {
    pub(crate) fn this() -> Tool {
        Tool {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// All repetitions of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRun {
    /// The scenario's name (matches a `[[scenario]]` of [`SuiteReport::suite`] when the
    /// report came from a suite).
    pub name: String,
    /// One load-test report per repetition, in run order.
    pub repetitions: Vec<Report>,
}

/// One run of a suite: the suite as it was, and every scenario's load-test reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteReport {
    /// Always [`SUITE_REPORT_KIND`].
    pub kind: String,
    /// Always [`SCHEMA_VERSION`] for files this build writes.
    pub schema_version: u32,
    /// The tool that wrote it.
    pub tool: Tool,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// When it finished, RFC 3339 UTC.
    pub finished_at: String,
    /// The server's base URL.
    pub base_url: String,
    /// True when the server was the embedded simulator.
    pub simulated: bool,
    /// Number of load-generator shards merged into this report (1 for a plain run).
    #[serde(default = "one")]
    pub shards: u32,
    /// True when the run was interrupted: later scenarios or repetitions are missing and
    /// the last repetition may be partial.
    #[serde(default)]
    pub partial: bool,
    /// The suite definition used, thresholds included.
    pub suite: Suite,
    /// Results, in suite order.
    pub scenarios: Vec<ScenarioRun>,
}

fn one() -> u32 {
    1
}

impl SuiteReport {
    /// A report with no scenarios yet, for a run of `suite` against `base_url`.
    pub(crate) fn new(suite: Suite, base_url: String, simulated: bool) -> SuiteReport {
        SuiteReport {
            kind: SUITE_REPORT_KIND.to_owned(),
            schema_version: SCHEMA_VERSION,
            tool: Tool::this(),
            started_at: now_rfc3339(),
            finished_at: String::new(),
            base_url,
            simulated,
            shards: 1,
            partial: false,
            suite,
            scenarios: Vec::new(),
        }
    }

    /// Wraps a bare load-test report as a one-scenario suite report, so every command treats
    /// both kinds alike. The scenario is named after what the report ran.
    pub fn from_loadtest(report: Report) -> SuiteReport {
        let name = loadtest_scenario_name(&report);
        let suite = Suite::for_loadtest(&name, &report);
        SuiteReport {
            kind: SUITE_REPORT_KIND.to_owned(),
            schema_version: SCHEMA_VERSION,
            tool: Tool::this(),
            started_at: report.timestamp.clone(),
            finished_at: report.timestamp.clone(),
            base_url: report.environment.base_url.clone(),
            simulated: report.environment.simulated,
            shards: 1,
            partial: report.partial,
            suite,
            scenarios: vec![ScenarioRun {
                name,
                repetitions: vec![report],
            }],
        }
    }

    /// The scenario named `name`.
    pub fn scenario(&self, name: &str) -> Option<&ScenarioRun> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    /// Writes the report atomically (temporary file in the same folder, synced, renamed),
    /// creating the folder if needed.
    pub fn write_atomic(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Report {
            path: path.to_owned(),
            message: format!("cannot serialize: {e}"),
        })?;
        write_atomic(path, text.as_bytes())
    }
}

/// Writes `bytes` to `path` atomically; readers see the old file or the new one, never half.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A descriptive scenario name for a bare load-test report: endpoint, model and load shape.
fn loadtest_scenario_name(r: &Report) -> String {
    let c = &r.config;
    let shape = match c.rate {
        Some(rate) if c.mode == "open" => format!("{rate}rps"),
        _ => format!("c{}", c.workers),
    };
    let endpoint = c.endpoint.rsplit('/').next().unwrap_or(&c.endpoint);
    let stream = if c.stream { "-stream" } else { "" };
    format!("{endpoint}{stream} {} {shape}", c.model)
}

/// Any file the tool reads.
#[derive(Debug, Clone)]
pub enum Document {
    /// A suite report.
    Suite(Box<SuiteReport>),
    /// A bare load-test report (from `ollama-loadtest`).
    LoadTest(Box<Report>),
    /// A comparison written by `compare --output`.
    Comparison(Box<Comparison>),
}

/// Reads a suite report, a comparison, or a bare load-test report, checking kind and
/// schema version; every error names the file.
pub fn read_document(path: &Path) -> Result<Document, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let bad = |message: String| Error::Report {
        path: path.to_owned(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad(
            "not a report: the top level is not a JSON object".into()
        ));
    }
    let version = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64);
    match value.get("kind").and_then(serde_json::Value::as_str) {
        Some(kind @ (SUITE_REPORT_KIND | COMPARISON_KIND)) => {
            if version != Some(u64::from(SCHEMA_VERSION)) {
                return Err(bad(format!(
                    "{kind} schema_version {} is not supported by this build (it reads version {SCHEMA_VERSION})",
                    value
                        .get("schema_version")
                        .map_or_else(|| "missing".to_owned(), ToString::to_string)
                )));
            }
            if kind == SUITE_REPORT_KIND {
                let r: SuiteReport = serde_json::from_value(value)
                    .map_err(|e| bad(format!("malformed suite report: {e}")))?;
                // The embedded load-test reports carry their own schema version.
                for run in &r.scenarios {
                    for (i, rep) in run.repetitions.iter().enumerate() {
                        if rep.schema_version != ollama_loadtest::SCHEMA_VERSION {
                            return Err(bad(format!(
                                "scenario `{}` repetition {} is a load-test report of schema_version {}, this build reads {}",
                                run.name,
                                i + 1,
                                rep.schema_version,
                                ollama_loadtest::SCHEMA_VERSION
                            )));
                        }
                    }
                }
                Ok(Document::Suite(Box::new(r)))
            } else {
                let c: Comparison = serde_json::from_value(value)
                    .map_err(|e| bad(format!("malformed comparison: {e}")))?;
                Ok(Document::Comparison(Box::new(c)))
            }
        }
        Some(other) => Err(bad(format!(
            "unknown report kind `{other}` (expected {SUITE_REPORT_KIND}, {COMPARISON_KIND} or a load-test report)"
        ))),
        None if value.get("summary").is_some() || version.is_some() => {
            let r = Report::from_json(&text, path)?;
            Ok(Document::LoadTest(Box::new(r)))
        }
        None => Err(bad(
            "not a report: no `kind` and no load-test `schema_version`".into(),
        )),
    }
}

/// Reads a file that must be a report, not a comparison; a bare load-test report comes back
/// wrapped as a one-scenario suite report.
pub fn read_report(path: &Path) -> Result<SuiteReport, Error> {
    match read_document(path)? {
        Document::Suite(r) => Ok(*r),
        Document::LoadTest(r) => Ok(SuiteReport::from_loadtest(*r)),
        Document::Comparison(_) => Err(Error::Report {
            path: path.to_owned(),
            message: "is a comparison, not a report".into(),
        }),
    }
}
