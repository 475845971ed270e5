//! Opening sockets, the socket's IO that owns its slot, the per-request [`Lease`], and the
//! counters behind [`crate::ClientStats`].
//!
//! `max_connections` is enforced by the pool ([`crate::pool`]): a connection is opened
//! only with a [`SocketPermit`], and the socket's IO wrapper ([`CountedIo`]) owns that
//! permit, so the slot is released exactly when the socket is dropped (closed by the peer,
//! expired from the idle list, or broken).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::OwnedSemaphorePermit;
use tower_service::Service;

use crate::error::BoxError;
use crate::pool::{Sender, Shared, SocketPermit};

#[cfg(feature = "rustls")]
type InnerConnector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "rustls"))]
type InnerConnector = HttpConnector;

#[cfg(feature = "rustls")]
type InnerIo = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;
#[cfg(not(feature = "rustls"))]
type InnerIo = hyper_util::rt::TokioIo<tokio::net::TcpStream>;

/// Live counters shared by the client, its pool and its connections.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) open_connections: AtomicU64,
    pub(crate) connections_opened_total: AtomicU64,
    pub(crate) in_flight_requests: AtomicU64,
    pub(crate) requests_total: AtomicU64,
    pub(crate) pool_waits_total: AtomicU64,
    pub(crate) pool_wait_total_nanos: AtomicU64,
    pub(crate) pool_wait_last_nanos: AtomicU64,
    pub(crate) pool_wait_max_nanos: AtomicU64,
}

impl Counters {
    pub(crate) fn record_pool_wait(&self, wait: Duration) {
        let n = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.pool_waits_total.fetch_add(1, Ordering::Relaxed);
        self.pool_wait_total_nanos.fetch_add(n, Ordering::Relaxed);
        self.pool_wait_last_nanos.store(n, Ordering::Relaxed);
        self.pool_wait_max_nanos.fetch_max(n, Ordering::Relaxed);
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The connection was not made within `connect_timeout`.
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    /// The connection failed.
    #[error("connect failed: {0}")]
    Failed(#[source] BoxError),
}

/// Opens sockets (TCP, and TLS for `https` with the `rustls` feature) to the base URL.
pub(crate) struct Connector {
    inner: InnerConnector,
    /// The base URL's scheme and authority: all the inner connector looks at.
    target: Uri,
    connect_timeout: Duration,
}

impl Connector {
    #[cfg_attr(not(feature = "rustls"), allow(clippy::unnecessary_wraps))]
    pub(crate) fn new(target: Uri, connect_timeout: Duration) -> Result<Self, BoxError> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        #[cfg(feature = "rustls")]
        let inner = {
            http.enforce_http(false);
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
                .https_or_http()
                .enable_http1()
                .wrap_connector(http)
        };
        #[cfg(not(feature = "rustls"))]
        let inner = http;
        Ok(Self {
            inner,
            target,
            connect_timeout,
        })
    }

    /// Opens a socket on `permit`'s slot within `connect_timeout`. On failure the permit
    /// is dropped, which frees the slot.
    pub(crate) async fn connect(&self, permit: SocketPermit) -> Result<CountedIo, ConnectError> {
        let mut inner = self.inner.clone();
        let opening = async {
            std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
            inner.call(self.target.clone()).await
        };
        let io = tokio::time::timeout(self.connect_timeout, opening)
            .await
            .map_err(|_| ConnectError::Timeout(self.connect_timeout))?
            .map_err(|e| ConnectError::Failed(boxed(e)))?;
        let counters = permit.counters();
        counters
            .connections_opened_total
            .fetch_add(1, Ordering::Relaxed);
        counters.open_connections.fetch_add(1, Ordering::Relaxed);
        Ok(CountedIo { io, permit })
    }
}

/// The inner connector's error type differs with the `rustls` feature; both box.
fn boxed<E: Into<BoxError>>(e: E) -> BoxError {
    e.into()
}

/// A socket that owns its connection slot; dropping it closes the socket, then frees the
/// slot.
pub(crate) struct CountedIo {
    // Field order matters: the socket is dropped (closed) before the slot is released.
    io: InnerIo,
    permit: SocketPermit,
}

impl Drop for CountedIo {
    fn drop(&mut self) {
        self.permit
            .counters()
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Read for CountedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for CountedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// What a request holds while it is in flight: its request slot (when
/// `max_concurrent_requests` is set), its place in the in-flight count, and the connection
/// carrying it. It moves into the response body or stream, so the slot is held until the
/// body ends or is dropped. The connection goes back to the pool only through
/// [`Lease::body_ended`]; a lease dropped before that drops the connection, and hyper
/// closes a connection whose body was not read to the end.
pub(crate) struct Lease {
    _permit: Option<OwnedSemaphorePermit>,
    pool: Arc<Shared>,
    conn: Option<Sender>,
}

impl Lease {
    pub(crate) fn new(permit: Option<OwnedSemaphorePermit>, pool: Arc<Shared>) -> Self {
        let counters = pool.counters();
        counters.in_flight_requests.fetch_add(1, Ordering::Relaxed);
        counters.requests_total.fetch_add(1, Ordering::Relaxed);
        Self {
            _permit: permit,
            pool,
            conn: None,
        }
    }

    /// Records the connection the request went out on (replacing, and so dropping, one it
    /// could not be sent on).
    pub(crate) fn attach(&mut self, conn: Sender) {
        self.conn = Some(conn);
    }

    /// The response body was read to its end: the connection is free for the next request.
    pub(crate) fn body_ended(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool
            .counters()
            .in_flight_requests
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A snapshot of the client's counters (cheap: a few atomic loads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ClientStats {
    /// Sockets open now, busy or idle (never more than `max_connections`).
    pub open_connections: u64,
    /// Sockets opened since the client was built.
    pub connections_opened_total: u64,
    /// Requests in flight now: from their request slot to the end (or drop) of the body.
    pub in_flight_requests: u64,
    /// Requests started since the client was built (each retry counts once more).
    pub requests_total: u64,
    /// How many pool waits were measured (one per request attempt).
    pub pool_waits_total: u64,
    /// Sum of pool waits. A pool wait is the time from the start of an attempt until it
    /// holds a connection: the request-slot wait plus the connection wait (which includes
    /// opening a new socket when one is needed).
    pub pool_wait_total: Duration,
    /// The most recent pool wait.
    pub pool_wait_last: Duration,
    /// The longest pool wait seen.
    pub pool_wait_max: Duration,
}

impl ClientStats {
    pub(crate) fn snapshot(c: &Counters) -> Self {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Self {
            open_connections: load(&c.open_connections),
            connections_opened_total: load(&c.connections_opened_total),
            in_flight_requests: load(&c.in_flight_requests),
            requests_total: load(&c.requests_total),
            pool_waits_total: load(&c.pool_waits_total),
            pool_wait_total: Duration::from_nanos(load(&c.pool_wait_total_nanos)),
            pool_wait_last: Duration::from_nanos(load(&c.pool_wait_last_nanos)),
            pool_wait_max: Duration::from_nanos(load(&c.pool_wait_max_nanos)),
        }
    }

    /// The mean pool wait, when any was measured.
    pub fn pool_wait_mean(&self) -> Option<Duration> {
        let n = u32::try_from(self.pool_waits_total)
            .ok()
            .filter(|n| *n > 0)?;
        Some(self.pool_wait_total / n)
    }
}
