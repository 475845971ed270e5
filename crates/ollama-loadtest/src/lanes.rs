//! Engine threads ("lanes"): one OS thread per core, each driving its own single-threaded
//! tokio runtime, on which the warm-up and the timed window run.
//!
//! Why: on one work-stealing runtime, every completed request could wake another worker
//! thread (a futex call each), and all workers contended for one recorder and one client
//! pool. A lane keeps its requests, its connections (its own client) and its recorder to
//! itself, so the request path stays on one core and crosses threads only through a few
//! relaxed atomics; the lanes are merged once, at the end. This is also how `oha` drives
//! its load.
//!
//! A lane's runtime is driven by its thread until the lanes are stopped (or dropped);
//! futures are handed to it with [`Lanes::handle`] and awaited from any runtime.

use std::num::NonZero;
use std::thread;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::{ClientSettings, LoadTestConfig, Mode};

/// The running engine threads.
#[derive(Debug)]
pub(crate) struct Lanes {
    handles: Vec<Handle>,
    stop: CancellationToken,
    exited: Vec<oneshot::Receiver<()>>,
}

impl Lanes {
    /// Starts `count` threads (at least one), each running a current-thread runtime.
    pub(crate) fn start(count: usize) -> std::io::Result<Self> {
        let mut lanes = Self {
            handles: Vec::with_capacity(count),
            stop: CancellationToken::new(),
            exited: Vec::with_capacity(count),
        };
        for i in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            lanes.handles.push(runtime.handle().clone());
            let stop = lanes.stop.clone();
            let (exited_tx, exited_rx) = oneshot::channel();
            lanes.exited.push(exited_rx);
            // If spawning fails, dropping `lanes` on the way out stops the ones started.
            thread::Builder::new()
                .name(format!("loadtest-lane-{i}"))
                .spawn(move || {
                    runtime.block_on(stop.cancelled());
                    // Dropping the runtime cancels whatever is left on it (idle pooled
                    // connections) and closes its sockets before the thread reports.
                    drop(runtime);
                    // The receiver may be gone (the run ended early); nothing to tell.
                    let _ = exited_tx.send(());
                })?;
        }
        Ok(lanes)
    }

    /// The number of lanes.
    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }

    /// The runtime of lane `i`.
    pub(crate) fn handle(&self, i: usize) -> &Handle {
        &self.handles[i]
    }

    /// Stops every lane and waits, without blocking the caller's runtime, until each
    /// thread has dropped its runtime.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        for exited in std::mem::take(&mut self.exited) {
            // An error only means the thread is already gone.
            let _ = exited.await;
        }
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// How many lanes a run uses: `config.threads`, else one per available core, but never
/// more than there are workers (closed loop) or requests allowed in flight (open loop),
/// nor more than any client limit, so that every lane gets at least one of each.
pub(crate) fn lane_count(config: &LoadTestConfig) -> usize {
    let wanted = config
        .threads
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, NonZero::get));
    let units = match config.mode {
        Mode::Closed { workers, .. } => workers,
        Mode::Open { max_in_flight, .. } => max_in_flight,
    };
    let c = &config.client;
    let mut n = wanted.min(units).min(c.max_connections);
    if let Some(limit) = c.concurrency {
        n = n.min(limit);
    }
    if c.keepalive > 0 {
        n = n.min(c.keepalive);
    }
    n.max(1)
}

/// Lane `i`'s part of `total` split over `parts` lanes: the shares differ by at most one
/// and add up to `total`.
pub(crate) fn share(total: usize, parts: usize, i: usize) -> usize {
    total / parts + usize::from(i < total % parts)
}

/// The client limits of lane `i` of `parts`: connections, keep-alive connections and
/// requests in flight are split so the process-wide totals stay those of `settings`.
/// The lanes do not verify the server (the run did, once).
pub(crate) fn lane_settings(settings: &ClientSettings, parts: usize, i: usize) -> ClientSettings {
    ClientSettings {
        max_connections: share(settings.max_connections, parts, i),
        keepalive: share(settings.keepalive, parts, i),
        concurrency: settings.concurrency.map(|n| share(n, parts, i)),
        skip_verify: true,
        ..settings.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for total in 0..50 {
            for parts in 1..8 {
                let shares: Vec<usize> = (0..parts).map(|i| share(total, parts, i)).collect();
                assert_eq!(shares.iter().sum::<usize>(), total);
                let (lo, hi) = (shares.iter().min(), shares.iter().max());
                assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1));
            }
        }
    }

    #[test]
    fn lanes_never_outnumber_workers_or_limits() {
        let mut c = LoadTestConfig {
            threads: Some(8),
            ..LoadTestConfig::default()
        };
        c.mode = Mode::Closed {
            workers: 3,
            delay: std::time::Duration::ZERO,
        };
        assert_eq!(lane_count(&c), 3);
        c.client.concurrency = Some(2);
        assert_eq!(lane_count(&c), 2);
        c.client.max_connections = 1;
        assert_eq!(lane_count(&c), 1);
        c.threads = Some(1);
        c.client = ClientSettings::default();
        assert_eq!(lane_count(&c), 1);
    }
}
