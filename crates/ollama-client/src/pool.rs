//! The connection pool: a fixed set of keep-alive HTTP/1 connections to the one server.
//!
//! Why the crate has its own pool: a client talks to one origin over HTTP/1.1 with at most
//! `max_connections` sockets, so all a pool has to do is keep a list of idle connections,
//! count sockets, and queue requests that wait for one. hyper-util's legacy `Client`
//! solves the general problem (any number of hosts keyed by scheme and authority, HTTP/2,
//! lazily raced connects, a spawned task per request to put its connection back), and that
//! generality is what made this client cost more than a bare hyper-util loop. Measured
//! with callgrind on `bench_probe one` (non-streamed generate, concurrency 64, instant
//! sim), instructions per request: 58,300 through hyper-util's pool, 41,000 through this
//! one with nothing else changed (so hyper-util's pool and dispatch cost about 17,000 more
//! per request), against 48,300 for the bare hyper-util loop that sends the same request
//! and parses the same answer.
//!
//! How it holds the limits:
//! * **Sockets** (`max_connections`): a request takes a [`SocketPermit`] before it
//!   connects; the connection's IO owns it, so the slot is freed exactly when the socket is
//!   dropped, however the connection ends.
//! * **Idle connections** (`max_keepalive_connections`, `keep_alive_idle`): a connection
//!   comes back only when its response body was read to the end ([`Shared::put`]); one
//!   beyond the idle limit is dropped, which closes it. One reaper task per pool (alive
//!   only while something is idle) closes connections idle for `keep_alive_idle`.
//! * **Waiting** (`pool_timeout`): a request that finds neither an idle connection nor a
//!   free slot queues (FIFO); the next returned connection or freed slot goes to the
//!   oldest waiter still waiting, so nobody starves and nobody waits for a socket to close
//!   when a connection is already free.
//!
//! Each connection is driven by one spawned task (hyper's `http1::Connection`); dropping
//! the last [`Sender`] of an idle connection ends that task and closes the socket.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::transport::{ConnectError, Connector, Counters};

/// The request body type of every connection.
pub(crate) type ReqBody = Full<Bytes>;
/// The sending half of one HTTP/1 connection.
pub(crate) type Sender = http1::SendRequest<ReqBody>;

/// Why no connection could be had.
#[derive(Debug)]
pub(crate) enum CheckoutError {
    /// No connection or socket slot freed up within `pool_timeout`.
    PoolTimeout(Duration),
    /// A new connection could not be made.
    Connect(ConnectError),
}

/// A connection ready to carry one request.
pub(crate) struct Checkout {
    pub(crate) conn: Sender,
    /// Whether the connection served a request before; only such a connection may turn
    /// out closed without the server having seen anything, so only then is a request that
    /// hyper hands back unsent retried on another connection.
    pub(crate) reused: bool,
}

/// The client's pool. Dropping it (the last [`crate::Client`] clone) closes every idle
/// connection at once; connections still in use close when their bodies end.
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

/// What connections, permits and leases share.
pub(crate) struct Shared {
    state: Mutex<State>,
    connector: Connector,
    counters: Counters,
    max_connections: usize,
    max_idle: usize,
    idle_timeout: Duration,
    pool_timeout: Duration,
}

struct State {
    /// Socket slots taken: connections open or being opened.
    open: usize,
    /// Idle connections, oldest first; reused from the back (the most recent is the most
    /// likely to be alive, and the oldest are left to expire).
    idle: VecDeque<Idle>,
    /// Requests waiting for a connection or a slot, oldest first.
    waiters: VecDeque<oneshot::Sender<Grant>>,
    /// Whether a reaper task is running.
    reaping: bool,
    /// Set when the client is gone: nothing is kept idle any more.
    closed: bool,
}

struct Idle {
    conn: Sender,
    since: Instant,
}

/// What a waiter is handed.
enum Grant {
    /// A connection whose previous response ended.
    Conn(Sender),
    /// A socket slot, to open a new connection with.
    Slot(SocketPermit),
}

/// One of the `max_connections` socket slots. The connection's IO owns it, so the slot is
/// released exactly when the socket is dropped: to the oldest waiter if any, else back to
/// the pool.
pub(crate) struct SocketPermit {
    shared: Arc<Shared>,
}

impl SocketPermit {
    pub(crate) fn counters(&self) -> &Counters {
        &self.shared.counters
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let shared = &self.shared;
        let waiter = {
            let mut state = shared.lock();
            let waiter = pop_waiter(&mut state);
            if waiter.is_none() {
                state.open -= 1;
            }
            waiter
        };
        let Some(waiter) = waiter else { return };
        // The slot passes to the waiter as a new permit. If the waiter gave up in the
        // meantime, the permit comes back and is dropped, which passes the slot on again.
        let _ = waiter.send(Grant::Slot(SocketPermit {
            shared: Arc::clone(shared),
        }));
    }
}

impl Pool {
    pub(crate) fn new(
        connector: Connector,
        max_connections: usize,
        max_idle: usize,
        idle_timeout: Duration,
        pool_timeout: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    open: 0,
                    idle: VecDeque::new(),
                    waiters: VecDeque::new(),
                    reaping: false,
                    closed: false,
                }),
                connector,
                counters: Counters::default(),
                max_connections,
                max_idle,
                idle_timeout,
                pool_timeout,
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A connection for one request: an idle one, a new one if a socket slot is free, or
    /// the next one returned (or slot freed) within `pool_timeout`. Connections found
    /// closed are skipped; one not yet ready is waited for.
    pub(crate) async fn checkout(&self) -> Result<Checkout, CheckoutError> {
        let shared = &self.shared;
        // Armed on the first wait, so the common case reads no clock.
        let mut deadline = None;
        loop {
            let next = {
                let mut state = shared.lock();
                loop {
                    match state.idle.pop_back() {
                        Some(idle) if idle.conn.is_closed() => {}
                        Some(idle) => break Step::Idle(idle.conn),
                        None if state.open < shared.max_connections => {
                            state.open += 1;
                            break Step::Slot(SocketPermit {
                                shared: Arc::clone(shared),
                            });
                        }
                        None => {
                            // Waiters that gave up are dropped here too, so the queue does
                            // not grow while every connection stays busy.
                            while state
                                .waiters
                                .front()
                                .is_some_and(oneshot::Sender::is_closed)
                            {
                                state.waiters.pop_front();
                            }
                            let (tx, rx) = oneshot::channel();
                            state.waiters.push_back(tx);
                            break Step::Wait(rx);
                        }
                    }
                }
            };
            let (mut conn, reused) = match next {
                Step::Idle(conn) => (conn, true),
                Step::Slot(permit) => (shared.connect(permit).await?, false),
                Step::Wait(mut rx) => {
                    let at = *deadline.get_or_insert_with(|| Instant::now() + shared.pool_timeout);
                    let grant = match tokio::time::timeout_at(at, &mut rx).await {
                        Ok(Ok(grant)) => grant,
                        // Not expected (a waiter is only dropped once closed); ask again.
                        Ok(Err(_)) => continue,
                        Err(_) => {
                            // A grant sent just as the wait timed out is still taken, so
                            // it is not lost with the receiver.
                            rx.close();
                            rx.try_recv()
                                .map_err(|_| CheckoutError::PoolTimeout(shared.pool_timeout))?
                        }
                    };
                    match grant {
                        Grant::Conn(conn) => (conn, true),
                        Grant::Slot(permit) => (shared.connect(permit).await?, false),
                    }
                }
            };
            if conn.is_ready() {
                return Ok(Checkout { conn, reused });
            }
            // A connection whose previous body just ended becomes ready as soon as its
            // task has run; one that closes instead is skipped.
            let at = *deadline.get_or_insert_with(|| Instant::now() + shared.pool_timeout);
            match tokio::time::timeout_at(at, conn.ready()).await {
                Ok(Ok(())) => return Ok(Checkout { conn, reused }),
                Ok(Err(_)) => {}
                Err(_) => return Err(CheckoutError::PoolTimeout(shared.pool_timeout)),
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = {
            let mut state = self.shared.lock();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        // Dropping the senders ends the connections' tasks, which close the sockets.
        drop(idle);
    }
}

/// The oldest waiter still waiting; those that gave up are dropped on the way.
fn pop_waiter(state: &mut State) -> Option<oneshot::Sender<Grant>> {
    while let Some(waiter) = state.waiters.pop_front() {
        if !waiter.is_closed() {
            return Some(waiter);
        }
    }
    None
}

enum Step {
    Idle(Sender),
    Slot(SocketPermit),
    Wait(oneshot::Receiver<Grant>),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (every update is a single step), so
        // a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Opens a connection on `permit`'s slot and spawns the task that drives it.
    ///
    /// The future is boxed: it holds the whole connection state while the handshake runs
    /// (kilobytes), and inline it would make every request's future that large, to be
    /// copied on every move, although connecting is rare.
    fn connect(
        &self,
        permit: SocketPermit,
    ) -> Pin<Box<dyn Future<Output = Result<Sender, CheckoutError>> + Send + '_>> {
        Box::pin(async move {
            let io = self
                .connector
                .connect(permit)
                .await
                .map_err(CheckoutError::Connect)?;
            let (conn, driver) = http1::handshake(io)
                .await
                .map_err(|e| CheckoutError::Connect(ConnectError::Failed(Box::new(e))))?;
            // The task ends when the connection closes: the peer closed it, it broke, or
            // every sender is gone and no response is in flight.
            tokio::spawn(driver);
            Ok(conn)
        })
    }

    /// Returns a connection whose response body was read to the end: to the oldest waiter,
    /// else to the idle list (or closes it when the list is full or the pool is gone).
    pub(crate) fn put(self: &Arc<Self>, mut conn: Sender) {
        loop {
            if conn.is_closed() {
                return;
            }
            let waiter = {
                let mut state = self.lock();
                let Some(waiter) = pop_waiter(&mut state) else {
                    self.keep_idle(state, conn);
                    return;
                };
                waiter
            };
            // A connection that comes back means the waiter gave up just now: try the next.
            let Err(Grant::Conn(back)) = waiter.send(Grant::Conn(conn)) else {
                return;
            };
            conn = back;
        }
    }

    /// Adds `conn` to the idle list, starting the reaper if none runs. Consumes the lock
    /// guard so that the closing of a dropped connection happens outside it.
    fn keep_idle(self: &Arc<Self>, mut state: MutexGuard<'_, State>, conn: Sender) {
        if state.closed {
            return;
        }
        if state.idle.len() >= self.max_idle {
            state.idle.retain(|i| !i.conn.is_closed());
            if state.idle.len() >= self.max_idle {
                return;
            }
        }
        // The reaper is a task; without a runtime nothing could expire the connection, so
        // it is closed instead.
        let reaper = if state.reaping {
            None
        } else {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            state.reaping = true;
            Some(runtime)
        };
        state.idle.push_back(Idle {
            conn,
            since: Instant::now(),
        });
        drop(state);
        if let Some(runtime) = reaper {
            runtime.spawn(reap(Arc::downgrade(self), self.idle_timeout));
        }
    }
}

/// Closes connections idle for `idle_timeout`. It sleeps until the oldest idle connection
/// is due, and ends when none is idle (the next one to go idle starts a new reaper) or the
/// pool is gone.
async fn reap(pool: Weak<Shared>, idle_timeout: Duration) {
    // Whatever is idle now went idle at most now, so nothing is due before this.
    let mut due = Instant::now() + idle_timeout;
    loop {
        tokio::time::sleep_until(due).await;
        let Some(shared) = pool.upgrade() else { return };
        let (expired, idle_left): (Vec<Idle>, bool) = {
            let mut state = shared.lock();
            let now = Instant::now();
            let n = state
                .idle
                .iter()
                .take_while(|i| i.since + idle_timeout <= now)
                .count();
            let expired = state.idle.drain(..n).collect();
            let idle_left = if let Some(oldest) = state.idle.front() {
                due = oldest.since + idle_timeout;
                true
            } else {
                state.reaping = false;
                false
            };
            (expired, idle_left)
        };
        // Dropping the senders ends the connections' tasks, which close the sockets.
        drop(expired);
        if !idle_left {
            return;
        }
    }
}
