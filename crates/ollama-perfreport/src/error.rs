//! The library's error type: every variant names the file or input that was wrong.

use std::path::PathBuf;

/// Everything that can go wrong in `ollama-perfreport`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A suite file is invalid.
    #[error("invalid suite{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Suite {
        /// The suite file, when the suite came from one.
        path: Option<PathBuf>,
        /// What is wrong.
        message: String,
    },
    /// A report file is malformed, of an unknown kind, or of a schema version this build
    /// does not read.
    #[error("{}: {message}", path.display())]
    Report {
        /// The report file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A load-test report could not be read, written or decoded (the message names the file).
    #[error(transparent)]
    LoadTestReport(#[from] ollama_loadtest::ReportError),
    /// Reports cannot be merged (different scenarios, different kinds, nothing to merge).
    #[error("cannot merge: {0}")]
    Merge(String),
    /// Reports cannot be compared, trended or rendered together.
    #[error("{0}")]
    Input(String),
    /// A load-test run failed.
    #[error("scenario `{scenario}`: {message}")]
    Run {
        /// The scenario that failed.
        scenario: String,
        /// The load test's error.
        message: String,
    },
}
