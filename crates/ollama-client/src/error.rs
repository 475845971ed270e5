//! The crate's one error type.
//!
//! Callers act on errors by kind (retry, back off, fix the request), so the kind is a small
//! `Copy` enum whose labels are stable strings that telemetry uses as a metric label. The
//! error itself stays opaque so new detail can be added without breaking callers.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// A boxed error used as the source of an [`Error`].
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, as a stable label (see [`ErrorKind::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The TCP (or TLS) connection could not be made.
    Connect,
    /// Making the connection took longer than `connect_timeout`.
    ConnectTimeout,
    /// No response head within `timeout`, or no stream data for `timeout`.
    ReadTimeout,
    /// Waiting for a connection or request slot took longer than `pool_timeout`.
    PoolTimeout,
    /// The server answered with a non-success status not covered by a finer kind.
    HttpStatus,
    /// The server answered 503 (Ollama: "server busy", its scheduler queue is full).
    ServerBusy,
    /// The server answered 404 for a model that does not exist.
    ModelNotFound,
    /// A stream carried an `{"error": ...}` item after it had started (or a success
    /// response body was such an item).
    StreamError,
    /// A response body could not be decoded (bad JSON, bad UTF-8, a line over the cap).
    Decode,
    /// A stream ended before its final item (`done: true`, or SSE `[DONE]`).
    Truncated,
    /// The client configuration is invalid.
    Config,
    /// Anything else (for example an I/O error in the middle of a body).
    Other,
}

impl ErrorKind {
    /// The stable label: `connect`, `connect_timeout`, `read_timeout`, `pool_timeout`,
    /// `http_status`, `server_busy`, `model_not_found`, `stream_error`, `decode`,
    /// `truncated`, `config` or `other`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::ConnectTimeout => "connect_timeout",
            Self::ReadTimeout => "read_timeout",
            Self::PoolTimeout => "pool_timeout",
            Self::HttpStatus => "http_status",
            Self::ServerBusy => "server_busy",
            Self::ModelNotFound => "model_not_found",
            Self::StreamError => "stream_error",
            Self::Decode => "decode",
            Self::Truncated => "truncated",
            Self::Config => "config",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a timeout happened, named in the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for a request slot (`max_concurrent_requests`).
    RequestSlot,
    /// Waiting for a connection slot (`max_connections`).
    ConnectionSlot,
    /// Opening the connection.
    Connect,
    /// Waiting for the response head after the request went out.
    ResponseHead,
    /// Waiting for the next piece of the response body.
    Body,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RequestSlot => "waiting for a request slot (max_concurrent_requests)",
            Self::ConnectionSlot => "waiting for a connection slot (max_connections)",
            Self::Connect => "connecting",
            Self::ResponseHead => "waiting for the response head",
            Self::Body => "waiting for response body data",
        })
    }
}

/// The detail behind an [`Error`].
#[derive(Debug, thiserror::Error)]
enum Repr {
    #[error("could not connect to {target}")]
    Connect {
        target: String,
        source: Option<BoxError>,
    },
    #[error("timed out after {after:?} {phase}")]
    Timeout { phase: Phase, after: Duration },
    #[error("HTTP {status}: {message}")]
    Status { status: StatusCode, message: String },
    #[error("the server reported an error mid-stream: {message}")]
    Stream { message: String },
    #[error("could not decode the response: {detail}")]
    Decode {
        detail: String,
        source: Option<BoxError>,
    },
    #[error("the response ended early: {detail}")]
    Truncated {
        detail: &'static str,
        source: Option<BoxError>,
    },
    #[error("invalid configuration: {field}: {detail}")]
    Config { field: &'static str, detail: String },
    #[error("{detail}")]
    Other {
        detail: String,
        source: Option<BoxError>,
    },
}

/// The error of every fallible operation in this crate.
///
/// Use the predicates ([`Error::is_timeout`], [`Error::is_model_not_found`], ...) or
/// [`Error::kind`] to act on it; the `Display` text is for people.
pub struct Error {
    kind: ErrorKind,
    repr: Box<Repr>,
}

impl Error {
    fn new(kind: ErrorKind, repr: Repr) -> Self {
        Self {
            kind,
            repr: Box::new(repr),
        }
    }

    pub(crate) fn connect(target: String, source: Option<BoxError>) -> Self {
        Self::new(ErrorKind::Connect, Repr::Connect { target, source })
    }

    pub(crate) fn timeout(phase: Phase, after: Duration) -> Self {
        let kind = match phase {
            Phase::RequestSlot | Phase::ConnectionSlot => ErrorKind::PoolTimeout,
            Phase::Connect => ErrorKind::ConnectTimeout,
            Phase::ResponseHead | Phase::Body => ErrorKind::ReadTimeout,
        };
        Self::new(kind, Repr::Timeout { phase, after })
    }

    /// An error for a non-success status. `model_endpoint` says whether a 404 here means
    /// "model not found" (a 404 with a JSON error body on a model route) or a missing route.
    pub(crate) fn http_status(status: StatusCode, message: String, model_not_found: bool) -> Self {
        let kind = if status == StatusCode::SERVICE_UNAVAILABLE {
            ErrorKind::ServerBusy
        } else if status == StatusCode::NOT_FOUND && model_not_found {
            ErrorKind::ModelNotFound
        } else {
            ErrorKind::HttpStatus
        };
        Self::new(kind, Repr::Status { status, message })
    }

    pub(crate) fn stream(message: String) -> Self {
        Self::new(ErrorKind::StreamError, Repr::Stream { message })
    }

    pub(crate) fn decode(detail: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::new(
            ErrorKind::Decode,
            Repr::Decode {
                detail: detail.into(),
                source,
            },
        )
    }

    pub(crate) fn truncated(detail: &'static str) -> Self {
        Self::new(
            ErrorKind::Truncated,
            Repr::Truncated {
                detail,
                source: None,
            },
        )
    }

    pub(crate) fn truncated_by(detail: &'static str, source: BoxError) -> Self {
        Self::new(
            ErrorKind::Truncated,
            Repr::Truncated {
                detail,
                source: Some(source),
            },
        )
    }

    pub(crate) fn config(field: &'static str, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Config,
            Repr::Config {
                field,
                detail: detail.into(),
            },
        )
    }

    pub(crate) fn other(detail: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::new(
            ErrorKind::Other,
            Repr::Other {
                detail: detail.into(),
                source,
            },
        )
    }

    /// The kind of failure; `kind().as_str()` is the stable label.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True for `connect_timeout`, `read_timeout` and `pool_timeout`.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ConnectTimeout | ErrorKind::ReadTimeout | ErrorKind::PoolTimeout
        )
    }

    /// True when no connection could be made (`connect` or `connect_timeout`).
    pub fn is_connect(&self) -> bool {
        matches!(self.kind, ErrorKind::Connect | ErrorKind::ConnectTimeout)
    }

    /// The HTTP status, when the server answered with a non-success status.
    pub fn status(&self) -> Option<StatusCode> {
        match &*self.repr {
            Repr::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's own error message: the `error` of `{"error": ...}` (native routes),
    /// `error.message` of the OpenAI envelope (`/v1` routes), or the body text; also the
    /// message of a mid-stream error.
    pub fn message(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Status { message, .. } | Repr::Stream { message } => Some(message),
            _ => None,
        }
    }

    /// True for a 404 that names a missing model (not an unknown route).
    pub fn is_model_not_found(&self) -> bool {
        self.kind == ErrorKind::ModelNotFound
    }

    /// True for a 503: Ollama's "server busy, please try again" when its queue is full.
    pub fn is_server_busy(&self) -> bool {
        self.kind == ErrorKind::ServerBusy
    }

    /// True when the same request may succeed if tried again later without change:
    /// connection failures, timeouts waiting for a slot or a connection, 503 server busy,
    /// and the statuses 429, 502 and 504. A read timeout is not retryable here, because the
    /// server may already have acted on the request.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ErrorKind::Connect
            | ErrorKind::ConnectTimeout
            | ErrorKind::PoolTimeout
            | ErrorKind::ServerBusy => true,
            ErrorKind::HttpStatus => matches!(
                self.status(),
                Some(
                    StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::GATEWAY_TIMEOUT
                )
            ),
            _ => false,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("repr", &self.repr)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.repr, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.repr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_contract_values() {
        let all = [
            (ErrorKind::Connect, "connect"),
            (ErrorKind::ConnectTimeout, "connect_timeout"),
            (ErrorKind::ReadTimeout, "read_timeout"),
            (ErrorKind::PoolTimeout, "pool_timeout"),
            (ErrorKind::HttpStatus, "http_status"),
            (ErrorKind::ServerBusy, "server_busy"),
            (ErrorKind::ModelNotFound, "model_not_found"),
            (ErrorKind::StreamError, "stream_error"),
            (ErrorKind::Decode, "decode"),
            (ErrorKind::Truncated, "truncated"),
            (ErrorKind::Config, "config"),
            (ErrorKind::Other, "other"),
        ];
        for (kind, label) in all {
            assert_eq!(kind.as_str(), label);
        }
    }

    #[test]
    fn timeouts_name_their_phase() {
        let e = Error::timeout(Phase::ResponseHead, Duration::from_secs(3));
        assert_eq!(e.kind(), ErrorKind::ReadTimeout);
        assert!(e.is_timeout());
        assert!(e.to_string().contains("response head"), "{e}");
        assert_eq!(
            Error::timeout(Phase::ConnectionSlot, Duration::ZERO).kind(),
            ErrorKind::PoolTimeout
        );
        assert!(Error::timeout(Phase::Connect, Duration::ZERO).is_connect());
    }

    #[test]
    fn statuses_map_to_kinds() {
        let busy = Error::http_status(StatusCode::SERVICE_UNAVAILABLE, "server busy".into(), false);
        assert!(busy.is_server_busy() && busy.is_retryable());
        let missing = Error::http_status(StatusCode::NOT_FOUND, "model 'x' not found".into(), true);
        assert!(missing.is_model_not_found());
        assert_eq!(missing.message(), Some("model 'x' not found"));
        let route = Error::http_status(StatusCode::NOT_FOUND, "404 page not found".into(), false);
        assert_eq!(route.kind(), ErrorKind::HttpStatus);
        assert_eq!(route.status(), Some(StatusCode::NOT_FOUND));
    }
}
