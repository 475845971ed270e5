//! The crate's error type. Telemetry never fails a request: these errors come only from
//! setting telemetry up (opening the event log, binding the exporter) or from explicitly
//! flushing it.

use std::path::PathBuf;

/// Why setting up or flushing telemetry failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The JSONL event log file or its folder could not be created or opened.
    #[error("cannot open the event log {path}: {source}")]
    OpenEventLog {
        /// The path that was asked for.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The event writer thread could not be started.
    #[error("cannot start the event writer thread: {0}")]
    SpawnWriter(#[source] std::io::Error),
    /// The event log was shut down (or its writer died), so it cannot flush any more.
    #[error("the event log is shut down")]
    EventLogClosed,
    /// A configuration value is out of range; the message names it.
    #[error("invalid telemetry configuration: {0}")]
    InvalidConfig(String),
    /// The Prometheus exporter could not be built, bound or installed.
    #[error("cannot install the Prometheus exporter on {addr}: {message}")]
    Exporter {
        /// The address the exporter was asked to listen on.
        addr: std::net::SocketAddr,
        /// What went wrong (bind failure, a recorder already installed, ...).
        message: String,
    },
}
