//! The response body type: a whole body, or a stream fed by a generation task.
//!
//! Streams are a channel of [`Piece`]s. The producing task owns the model slot, so a
//! client that goes away (hyper drops the body, the channel closes) stops generation and
//! frees the slot, as Ollama does. A [`Piece::Reset`] makes the body fail and marks the
//! connection so that closing it sends a TCP RST (see `server::SimIo`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

use crate::server::ConnCtl;
use crate::stats::InFlight;

/// Go's net/http buffers this much before it switches a response to chunked encoding.
const GO_CHUNKING_THRESHOLD: usize = 2048;

/// One step of a streamed body.
pub(crate) enum Piece {
    /// Bytes to write (one NDJSON line or one SSE event), flushed on their own.
    Data(Bytes),
    /// Abort the connection with a reset.
    Reset,
}

/// The response body of every simulator response.
pub(crate) struct SimBody {
    kind: Kind,
    /// Keeps the request counted as in flight until the body is dropped.
    in_flight: Option<InFlight>,
}

enum Kind {
    Full(Option<Bytes>),
    Stream {
        first: Option<Bytes>,
        rx: mpsc::Receiver<Piece>,
        conn: Arc<ConnCtl>,
    },
}

impl SimBody {
    /// A complete body.
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        SimBody {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
            in_flight: None,
        }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        SimBody {
            kind: Kind::Full(None),
            in_flight: None,
        }
    }

    /// A stream whose first piece is already known (headers go out with it).
    pub(crate) fn stream(first: Bytes, rx: mpsc::Receiver<Piece>, conn: Arc<ConnCtl>) -> Self {
        SimBody {
            kind: Kind::Stream {
                first: Some(first),
                rx,
                conn,
            },
            in_flight: None,
        }
    }

    /// The first half of a whole body (an injected `malformed` fault); streams are kept.
    pub(crate) fn truncated(self) -> Self {
        match self.kind {
            Kind::Full(Some(d)) => SimBody {
                kind: Kind::Full(Some(d.slice(..d.len() / 2))),
                in_flight: self.in_flight,
            },
            kind => SimBody {
                kind,
                in_flight: self.in_flight,
            },
        }
    }

    /// Attaches the in-flight guard so the request counts until the body is done.
    pub(crate) fn with_in_flight(mut self, guard: InFlight) -> Self {
        self.in_flight = Some(guard);
        self
    }
}

/// The error a reset stream reports to hyper (which then drops the connection).
#[derive(Debug, thiserror::Error)]
#[error("simulated connection reset")]
pub(crate) struct ResetConnection;

impl http_body::Body for SimBody {
    type Data = Bytes;
    type Error = ResetConnection;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResetConnection>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Stream { first, rx, conn } => {
                if let Some(first) = first.take() {
                    return Poll::Ready(Some(Ok(Frame::data(first))));
                }
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(Piece::Data(d))) => Poll::Ready(Some(Ok(Frame::data(d)))),
                    Poll::Ready(Some(Piece::Reset)) => {
                        conn.reset.store(true, Ordering::Relaxed);
                        Poll::Ready(Some(Err(ResetConnection)))
                    }
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(None) => SizeHint::with_exact(0),
            // Small bodies get a Content-Length, big ones go out chunked, like Go.
            Kind::Full(Some(d)) if d.len() <= GO_CHUNKING_THRESHOLD => {
                SizeHint::with_exact(d.len() as u64)
            }
            Kind::Full(Some(_)) | Kind::Stream { .. } => SizeHint::default(),
        }
    }
}
