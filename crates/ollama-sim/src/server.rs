//! The HTTP/1.1 server: accept loop, per-connection bookkeeping, graceful shutdown, and
//! the public handle.
//!
//! Like Ollama (Go net/http without timeouts), connections are HTTP/1.1 keep-alive with
//! no idle timeout. Nagle is off so every streamed line leaves at once.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::SimConfig;
use crate::error::SimError;
use crate::fault::{FaultEngine, FaultPlan};
use crate::models::Registry;
use crate::sched::Scheduler;
use crate::stats::{Counters, SimStats};

/// Per-connection control shared between the socket wrapper and the request handlers.
#[derive(Default)]
pub(crate) struct ConnCtl {
    /// Set when a fault wants this connection reset: closing it then sends an RST.
    pub(crate) reset: AtomicBool,
}

/// State shared by every connection and request.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) registry: Registry,
    pub(crate) sched: Arc<Scheduler>,
    pub(crate) counters: Arc<Counters>,
    faults: RwLock<Arc<FaultEngine>>,
    has_faults: AtomicBool,
    /// Cancelled at shutdown: stops keep-alive timers and background work.
    pub(crate) cancel: CancellationToken,
    /// Sequence for OpenAI ids and other per-request variety.
    pub(crate) request_seq: AtomicU64,
}

impl Shared {
    /// The fault (if any) for this request; lock-free when no faults are configured.
    pub(crate) fn decide_fault(&self, endpoint: &str) -> Option<crate::fault::FaultKind> {
        if !self.has_faults.load(Ordering::Acquire) {
            return None;
        }
        let engine = match self.faults.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let fault = engine.decide(endpoint);
        if fault.is_some() {
            self.counters
                .faults_injected
                .fetch_add(1, Ordering::Relaxed);
        }
        fault
    }

    fn set_faults(&self, plan: FaultPlan) {
        let engine = Arc::new(FaultEngine::new(plan));
        let empty = engine.is_empty();
        match self.faults.write() {
            Ok(mut guard) => *guard = engine,
            Err(poisoned) => *poisoned.into_inner() = engine,
        }
        self.has_faults.store(!empty, Ordering::Release);
    }

    /// Scales a simulated delay to wall time (saturating; never panics).
    pub(crate) fn scaled(&self, d: Duration) -> Duration {
        scale(d, self.config.time_scale)
    }
}

/// `d × factor`, saturating at `Duration::MAX`.
pub(crate) fn scale(d: Duration, factor: f64) -> Duration {
    if d.is_zero() || factor == 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// The simulator. Start it with [`Sim::start`].
#[derive(Debug)]
pub struct Sim;

impl Sim {
    /// Binds `config.listen` and serves until [`SimHandle::shutdown`] (or until the handle
    /// is dropped, which stops accepting at once).
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let sched = Arc::new(Scheduler::new(&config, counters.clone(), cancel.clone()));
        let registry = Registry::new(&config.models);
        let faults = FaultEngine::new(config.faults.clone());
        let has_faults = !faults.is_empty();
        let shared = Arc::new(Shared {
            config,
            registry,
            sched,
            counters,
            faults: RwLock::new(Arc::new(faults)),
            has_faults: AtomicBool::new(has_faults),
            cancel: cancel.clone(),
            request_seq: AtomicU64::new(0),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let tracker = TaskTracker::new();
        let accept = tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            stop_rx,
            tracker.clone(),
        ));
        Ok(SimHandle {
            addr,
            shared,
            stop_tx,
            tracker,
            accept: Some(accept),
        })
    }
}

/// A running simulator. Dropping it stops accepting new connections.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    tracker: TaskTracker,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The bound address (with the real port when the config asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, ready for a client's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        self.shared.counters.snapshot()
    }

    /// Replaces the fault plan; requests that start afterwards use the new plan.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.shared.set_faults(plan);
    }

    /// Stops accepting, lets in-flight responses finish, closes idle connections, and
    /// waits for every connection to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop_tx.send(true);
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        self.tracker.close();
        self.tracker.wait().await;
        self.shared.cancel.cancel();
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        // After `shutdown` this is a no-op; on a plain drop it stops the accept loop and
        // asks open connections to close.
        let _ = self.stop_tx.send(true);
        self.shared.cancel.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    loop {
        let stream = tokio::select! {
            biased;
            _ = stop.changed() => break,
            res = listener.accept() => res,
        };
        let Ok((stream, _)) = stream else {
            // Out of file descriptors or a similar transient failure: back off a little
            // instead of spinning.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        shared
            .counters
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        shared
            .counters
            .open_connections
            .fetch_add(1, Ordering::Relaxed);
        let ctl = Arc::new(ConnCtl::default());
        let io = SimIo {
            inner: stream,
            ctl: ctl.clone(),
            counters: shared.counters.clone(),
        };
        let shared = shared.clone();
        let mut stop = stop.clone();
        tracker.spawn(async move {
            let service =
                service_fn(move |req| crate::router::handle(shared.clone(), ctl.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// The socket as hyper sees it: counts the connection while it lives, and turns a close
/// after a reset fault into a TCP RST (SO_LINGER 0).
pub(crate) struct SimIo {
    inner: TcpStream,
    ctl: Arc<ConnCtl>,
    counters: Arc<Counters>,
}

impl SimIo {
    fn check_reset(&self) -> io::Result<()> {
        if self.ctl.reset.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "simulated connection reset",
            ));
        }
        Ok(())
    }
}

impl Drop for SimIo {
    fn drop(&mut self) {
        if self.ctl.reset.load(Ordering::Relaxed) {
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
        self.counters
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for SimIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_reset()?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_reset()?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_reset()?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_reset()?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_reset()?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
