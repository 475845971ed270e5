//! The scheduler: model loading, eviction, keep-alive, and per-model parallel slots,
//! following `ollama-api.md` section 4.
//!
//! Invariants:
//! * A request for a model that is loaded (or loading) never enters the queue, so a
//!   warm model never answers 503. It waits on the model's FIFO slot semaphore instead,
//!   without bound.
//! * Requests that need a load are counted in `pending` while they wait for `load_lock`
//!   (a FIFO tokio mutex, so only one load runs at a time). More than `max_queue` of them
//!   answer 503 with Ollama's exact text.
//! * A runner is in `runners` from the moment its load starts; `refs` counts the
//!   requests holding it, and only a runner with `refs == 0` can be evicted or expire.
//! * Every change that can make a runner idle or removed calls `changed.notify_waiters()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{KeepAlive, SimConfig};
use crate::models::LocalModel;
use crate::server::scale;
use crate::stats::Counters;

/// Why a request could not get a runner.
#[derive(Debug)]
pub(crate) enum SchedError {
    /// The queue of requests that need a load is full.
    QueueFull,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LoadState {
    Loading,
    Ready,
    /// The load was abandoned (its requester went away); waiters must retry.
    Failed,
}

struct Runner {
    id: u64,
    model: Arc<LocalModel>,
    slots: Arc<Semaphore>,
    refs: usize,
    session: KeepAlive,
    /// Set when the runner went idle; `None` while in use or loading.
    idle_since: Option<SystemTime>,
    /// Marked for unload: no new requests, removed as soon as it is idle.
    expiring: bool,
    /// When an idle runner unloads; `None` while in use or when kept forever.
    expires: Option<tokio::time::Instant>,
    /// Whether this runner's (single) expiry task is running. One task per runner, not
    /// per request, so a busy server does not pile up sleeping timers.
    timer_armed: bool,
    state: watch::Receiver<LoadState>,
}

struct State {
    runners: Vec<Runner>,
    next_id: u64,
}

pub(crate) struct Scheduler {
    state: Mutex<State>,
    load_lock: tokio::sync::Mutex<()>,
    pending: AtomicUsize,
    changed: Notify,
    max_queue: usize,
    max_loaded: usize,
    num_parallel: usize,
    default_keep_alive: KeepAlive,
    time_scale: f64,
    counters: Arc<Counters>,
    cancel: CancellationToken,
}

/// A request's hold on a loaded runner; dropping it releases the reference and starts
/// the keep-alive timer when the runner goes idle.
pub(crate) struct Lease {
    sched: Arc<Scheduler>,
    id: u64,
    slots: Arc<Semaphore>,
}

impl Lease {
    /// Waits (FIFO, unbounded) for one of the runner's parallel slots.
    pub(crate) async fn slot(&self) -> Result<OwnedSemaphorePermit, tokio::sync::AcquireError> {
        self.slots.clone().acquire_owned().await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.sched.release(self.id);
    }
}

/// A loaded model as `/api/ps` shows it.
pub(crate) struct PsEntry {
    pub(crate) model: Arc<LocalModel>,
    pub(crate) expires_at: SystemTime,
}

/// Decrements `pending` when a queued request leaves the queue or gives up.
struct PendingGuard<'a>(&'a AtomicUsize, bool);

impl PendingGuard<'_> {
    fn dequeue(&mut self) {
        if self.1 {
            self.0.fetch_sub(1, Ordering::AcqRel);
            self.1 = false;
        }
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.dequeue();
    }
}

/// Removes a runner whose load was abandoned half way (the requester's future dropped).
struct LoadGuard<'a> {
    sched: &'a Scheduler,
    id: u64,
    tx: Option<watch::Sender<LoadState>>,
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let mut st = self.sched.lock();
            st.runners.retain(|r| r.id != self.id);
            drop(st);
            let _ = tx.send(LoadState::Failed);
            self.sched.changed.notify_waiters();
        }
    }
}

impl Scheduler {
    pub(crate) fn new(
        config: &SimConfig,
        counters: Arc<Counters>,
        cancel: CancellationToken,
    ) -> Self {
        Scheduler {
            state: Mutex::new(State {
                runners: Vec::new(),
                next_id: 1,
            }),
            load_lock: tokio::sync::Mutex::new(()),
            pending: AtomicUsize::new(0),
            changed: Notify::new(),
            max_queue: config.max_queue,
            max_loaded: config.max_loaded_models,
            num_parallel: config.num_parallel,
            default_keep_alive: config.keep_alive,
            time_scale: config.time_scale,
            counters,
            cancel,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a reference on a usable runner for `name`: `Ok(Some)` when ready,
    /// `Ok(None)` when there is none, `Err(rx)` when it is loading (wait on `rx`).
    fn try_use(
        self: &Arc<Self>,
        name: &str,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Option<Lease>, watch::Receiver<LoadState>> {
        let mut st = self.lock();
        let Some(r) = st
            .runners
            .iter_mut()
            .find(|r| !r.expiring && r.model.name == name)
        else {
            return Ok(None);
        };
        if *r.state.borrow() == LoadState::Loading {
            return Err(r.state.clone());
        }
        r.refs += 1;
        r.idle_since = None;
        r.expires = None;
        if let Some(ka) = keep_alive {
            r.session = ka;
        }
        Ok(Some(Lease {
            sched: self.clone(),
            id: r.id,
            slots: r.slots.clone(),
        }))
    }

    /// Gets a runner for `model`, loading it (and evicting others) if needed.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        model: &Arc<LocalModel>,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Lease, SchedError> {
        loop {
            // Fast path: loaded or loading runners are shared without queueing.
            match self.try_use(&model.name, keep_alive) {
                Ok(Some(lease)) => return Ok(lease),
                Err(mut rx) => {
                    let _ = rx.wait_for(|s| *s != LoadState::Loading).await;
                    continue;
                }
                Ok(None) => {}
            }
            // Slow path: queue for the single loader.
            let prev = self.pending.fetch_add(1, Ordering::AcqRel);
            let mut pending = PendingGuard(&self.pending, true);
            if prev >= self.max_queue {
                self.counters
                    .queue_rejections
                    .fetch_add(1, Ordering::Relaxed);
                return Err(SchedError::QueueFull);
            }
            let _load = self.load_lock.lock().await;
            pending.dequeue();
            match self.try_use(&model.name, keep_alive) {
                Ok(Some(lease)) => return Ok(lease),
                // Nothing loads while we hold the load lock, so this cannot be Loading;
                // retry from the top if it ever is.
                Err(_) => continue,
                Ok(None) => {}
            }
            self.make_room().await;
            return Ok(self.load(model, keep_alive).await);
        }
    }

    /// Evicts until a new runner fits: idle runners with the shortest keep-alive first,
    /// else marks the busy runner with the shortest keep-alive and waits for it to drain.
    async fn make_room(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if st.runners.len() < self.max_loaded {
                    return;
                }
                let key = |r: &Runner| match r.session {
                    KeepAlive::For(d) => d,
                    KeepAlive::Forever => Duration::MAX,
                };
                let idle = st
                    .runners
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.refs == 0 && *r.state.borrow() == LoadState::Ready)
                    .min_by_key(|(_, r)| (key(r), r.model.name.clone()))
                    .map(|(i, _)| i);
                if let Some(i) = idle {
                    st.runners.remove(i);
                    continue;
                }
                if let Some(victim) = st
                    .runners
                    .iter_mut()
                    .filter(|r| *r.state.borrow() == LoadState::Ready)
                    .min_by_key(|r| (key(r), r.model.name.clone()))
                {
                    victim.expiring = true;
                }
            }
            notified.await;
        }
    }

    async fn load(
        self: &Arc<Self>,
        model: &Arc<LocalModel>,
        keep_alive: Option<KeepAlive>,
    ) -> Lease {
        let (tx, rx) = watch::channel(LoadState::Loading);
        let slots = Arc::new(Semaphore::new(if model.spec.is_embedding() {
            1
        } else {
            self.num_parallel
        }));
        let id = {
            let mut st = self.lock();
            let id = st.next_id;
            st.next_id += 1;
            st.runners.push(Runner {
                id,
                model: model.clone(),
                slots: slots.clone(),
                refs: 1,
                session: keep_alive.unwrap_or(self.default_keep_alive),
                idle_since: None,
                expiring: false,
                expires: None,
                timer_armed: false,
                state: rx,
            });
            id
        };
        let mut guard = LoadGuard {
            sched: self,
            id,
            tx: Some(tx),
        };
        let delay = scale(model.spec.load_time, self.time_scale);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.counters.model_loads.fetch_add(1, Ordering::Relaxed);
        if let Some(tx) = guard.tx.take() {
            let _ = tx.send(LoadState::Ready);
        }
        Lease {
            sched: self.clone(),
            id,
            slots,
        }
    }

    /// Drops one reference; an idle runner then expires per its keep-alive.
    fn release(self: &Arc<Self>, id: u64) {
        let mut st = self.lock();
        let Some(index) = st.runners.iter().position(|r| r.id == id) else {
            return;
        };
        let r = &mut st.runners[index];
        r.refs = r.refs.saturating_sub(1);
        if r.refs > 0 {
            return;
        }
        r.idle_since = Some(SystemTime::now());
        if r.expiring || r.session == KeepAlive::For(Duration::ZERO) {
            st.runners.remove(index);
        } else if let KeepAlive::For(d) = r.session {
            // A deadline beyond the clock's range is "forever".
            r.expires = tokio::time::Instant::now().checked_add(scale(d, self.time_scale));
            if r.expires.is_some() && !r.timer_armed {
                r.timer_armed = true;
                let sched = self.clone();
                tokio::spawn(async move { sched.expiry_timer(id).await });
            }
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// Sleeps until the runner's current deadline; unloads it if it is still idle then,
    /// follows the deadline if it moved, and stops once the runner is in use again (the
    /// next release re-arms it) or gone.
    async fn expiry_timer(self: Arc<Self>, id: u64) {
        loop {
            let deadline = {
                let mut st = self.lock();
                let Some(index) = st.runners.iter().position(|r| r.id == id) else {
                    return;
                };
                let r = &mut st.runners[index];
                match r.expires {
                    Some(at) if r.refs == 0 => {
                        if at <= tokio::time::Instant::now() {
                            st.runners.remove(index);
                            drop(st);
                            self.changed.notify_waiters();
                            return;
                        }
                        at
                    }
                    _ => {
                        r.timer_armed = false;
                        return;
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.cancel.cancelled() => return,
            }
        }
    }

    /// `keep_alive: 0` with an empty prompt: unload now, or as soon as the model is idle.
    pub(crate) fn unload(&self, name: &str) {
        let mut st = self.lock();
        for r in st.runners.iter_mut().filter(|r| r.model.name == name) {
            r.session = KeepAlive::For(Duration::ZERO);
            r.expiring = true;
        }
        st.runners.retain(|r| {
            !(r.model.name == name && r.refs == 0 && *r.state.borrow() != LoadState::Loading)
        });
        drop(st);
        self.changed.notify_waiters();
    }

    /// Loaded (and loading) models, longest time to expiry first.
    pub(crate) fn ps(&self) -> Vec<PsEntry> {
        let now = SystemTime::now();
        // Go's time.Duration(MaxInt64) after now: about 292 years.
        let forever = Duration::from_secs(292 * 365 * 24 * 3600);
        let st = self.lock();
        let mut out: Vec<PsEntry> = st
            .runners
            .iter()
            .map(|r| {
                let session = match r.session {
                    KeepAlive::For(d) => scale(d, self.time_scale),
                    KeepAlive::Forever => forever,
                };
                let base = r.idle_since.unwrap_or(now);
                PsEntry {
                    model: r.model.clone(),
                    expires_at: base.checked_add(session).unwrap_or(now),
                }
            })
            .collect();
        drop(st);
        out.sort_by_key(|e| std::cmp::Reverse(e.expires_at));
        out
    }
}
