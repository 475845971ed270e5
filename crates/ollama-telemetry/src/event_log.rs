//! The background JSONL writer.
//!
//! The request path must never wait for a disk, so recording an event is a push into a
//! bounded queue (a vector behind a lock, which the writer swaps out whole per batch: one
//! short lock per event and no allocation); when the queue is full the event is dropped and
//! counted (`ollama_client_events_dropped_total`). One dedicated thread owns the sink and is
//! the only writer, which is what keeps every line one whole JSON object however many
//! requests run at once. The thread drains whatever is queued, then flushes its buffer to the sink,
//! so lines reach the file in bursts rather than one write per event; while busy it sleeps
//! a short window between bursts, so senders do not wake it once per event.
//!
//! The writer thread competes with the requests for the same cores, so it is kept cheap
//! too: an `InstrumentedClient` queues a compact `FinishedRequest` (durations, counters, a
//! request number, a `SystemTime`), not a `RequestEvent`, and the writer formats the
//! timestamp (calendar work once per second), the request id and the milliseconds itself,
//! then writes the line with the hand-made JSON writer in `line`, whose bytes are those
//! `serde_json` writes for the `RequestEvent`. Callers' own events ([`EventLog::record`])
//! go through the same writer.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::catalog::{EVENT_WRITE_ERRORS_TOTAL, EVENTS_DROPPED_TOTAL};
use crate::error::TelemetryError;
use crate::event::RequestEvent;
use crate::record::{EventFormat, FinishedRequest};

/// Default number of events the queue holds before new ones are dropped.
pub const DEFAULT_EVENT_QUEUE_CAPACITY: usize = 16_384;

/// How long the writer lets events collect while busy. Waking a thread per event costs a
/// system call and a context switch on the request path's cores; one wake per window does
/// not. It bounds how late a line reaches the sink (and how long `flush` may wait).
const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// Size of the writer's buffer in front of the sink: it is written out once it holds this
/// much.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Room past `WRITE_BUFFER_BYTES` for the line that crosses it (longer lines grow it).
const LINE_SLACK_BYTES: usize = 4 * 1024;

/// A handle to a background JSONL event writer. Cheap to clone; all clones share one queue
/// and one writer thread. The writer flushes and stops when [`EventLog::shutdown`] is
/// called or when the last clone is dropped (that drop waits for the flush).
#[derive(Clone)]
pub struct EventLog {
    shared: Arc<Shared>,
}

/// Counters of an [`EventLog`] since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventLogStats {
    /// Events accepted into the queue.
    pub queued: u64,
    /// Events written to the sink (its buffer may still hold the last ones until a flush).
    pub written: u64,
    /// Events dropped because the queue was full or the writer had stopped.
    pub dropped: u64,
    /// Events the sink refused (an I/O error while writing them).
    pub write_errors: u64,
}

#[expect(
    clippy::large_enum_variant,
    reason = "finished requests are nearly every message; inline, queuing one allocates nothing"
)]
enum Message {
    /// An event built by a caller.
    Event(Box<RequestEvent>),
    /// A request finished by an `InstrumentedClient`, formatted by the writer. Not boxed:
    /// the queue's vector is its storage, so queuing one allocates nothing.
    Finished(FinishedRequest),
    /// Write out everything queued before this message, then answer.
    Flush(SyncSender<()>),
    /// Write out everything queued before this message, then stop.
    Shutdown,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
}

/// The queue between the request path and the writer: a vector behind a lock. A sender
/// pushes under the lock (one uncontended lock, no allocation once the vector has grown);
/// the writer swaps the whole vector for its empty one and works through the batch without
/// the lock, so the two vectors' storage is reused batch after batch.
struct Queue {
    state: Mutex<QueueState>,
    /// Signalled when something arrives while the writer waits.
    arrived: Condvar,
    /// Events the queue holds before new ones are dropped (control messages always fit).
    capacity: usize,
}

#[derive(Default)]
struct QueueState {
    messages: Vec<Message>,
    /// Events (not control messages) in `messages`.
    events: usize,
    /// The writer is blocked on `arrived`, so the next sender has to wake it.
    writer_waiting: bool,
    /// The writer has stopped: nothing more is taken.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `message`; an event only when there is room. `false` when not taken.
    fn push(&self, message: Message, is_event: bool) -> bool {
        let mut state = self.lock();
        if state.closed || (is_event && state.events >= self.capacity) {
            return false;
        }
        state.messages.push(message);
        state.events += usize::from(is_event);
        let wake = std::mem::take(&mut state.writer_waiting);
        drop(state);
        if wake {
            self.arrived.notify_one();
        }
        true
    }

    /// Swaps what is queued into `batch` (empty), waiting for something when `block`.
    fn take(&self, batch: &mut Vec<Message>, block: bool) {
        let mut state = self.lock();
        while block && state.messages.is_empty() {
            state.writer_waiting = true;
            state = self
                .arrived
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.writer_waiting = false;
        std::mem::swap(&mut state.messages, batch);
        state.events = 0;
    }

    /// The writer has stopped (or died): refuse what comes, and drop what is left, which
    /// also answers waiting `flush` calls with an error.
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.events = 0;
        let left = std::mem::take(&mut state.messages);
        drop(state);
        drop(left);
    }
}

struct Shared {
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    /// `Some` until the writer has been stopped and joined.
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl EventLog {
    /// Opens (appending) or creates the JSONL file at `path`, creating its folder, and
    /// starts the writer with a queue of `capacity` events.
    pub fn to_file(path: impl AsRef<Path>, capacity: usize) -> Result<Self, TelemetryError> {
        let path = path.as_ref();
        let open_error = |source| TelemetryError::OpenEventLog {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(open_error)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(open_error)?;
        Self::to_writer(file, capacity)
    }

    /// Starts the writer on any sink (a file, a socket, a test's slow writer) with a queue
    /// of `capacity` events.
    pub fn to_writer<W: Write + Send + 'static>(
        sink: W,
        capacity: usize,
    ) -> Result<Self, TelemetryError> {
        if capacity == 0 {
            return Err(TelemetryError::InvalidConfig(
                "event queue capacity must be at least 1".to_owned(),
            ));
        }
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::default()),
            arrived: Condvar::new(),
            capacity,
        });
        let counters = Arc::new(Counters::default());
        let worker_queue = Arc::clone(&queue);
        let worker_counters = Arc::clone(&counters);
        let worker = std::thread::Builder::new()
            .name("ollama-telemetry-events".to_owned())
            .spawn(move || {
                // Closes the queue however the writer ends, a panic included.
                let _closing = Closing(&worker_queue);
                run_writer(&worker_queue, sink, &worker_counters);
            })
            .map_err(TelemetryError::SpawnWriter)?;
        Ok(Self {
            shared: Arc::new(Shared {
                queue,
                counters,
                worker: Mutex::new(Some(worker)),
            }),
        })
    }

    /// Queues `event` without blocking. Returns `false` (and counts a drop) when the queue
    /// is full or the writer has stopped.
    pub fn record(&self, event: RequestEvent) -> bool {
        self.send(Message::Event(Box::new(event)))
    }

    /// Queues a request finished by an `InstrumentedClient`, like [`EventLog::record`].
    pub(crate) fn record_finished(&self, finished: FinishedRequest) -> bool {
        self.send(Message::Finished(finished))
    }

    fn send(&self, message: Message) -> bool {
        if self.shared.queue.push(message, true) {
            self.shared.counters.queued.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(EVENTS_DROPPED_TOTAL).increment(1);
            false
        }
    }

    /// Blocks until every event queued before this call is written and the sink flushed.
    /// From async code, call it where blocking is allowed (e.g. `spawn_blocking`).
    pub fn flush(&self) -> Result<(), TelemetryError> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if !self.shared.queue.push(Message::Flush(ack_tx), false) {
            return Err(TelemetryError::EventLogClosed);
        }
        ack_rx.recv().map_err(|_| TelemetryError::EventLogClosed)
    }

    /// Writes out everything queued, flushes the sink and stops the writer; events recorded
    /// afterwards are dropped and counted. Blocks until done. Calling it again does nothing.
    pub fn shutdown(&self) {
        self.shared.stop();
    }

    /// A snapshot of the writer's counters.
    pub fn stats(&self) -> EventLogStats {
        let c = &self.shared.counters;
        EventLogStats {
            queued: c.queued.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn stop(&self) {
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(worker) = worker {
            // Control messages always fit. If the writer is already gone the push is
            // refused, and there is nothing left to flush.
            self.queue.push(Message::Shutdown, false);
            // A panicking writer has nothing more to flush; its panic is not ours to spread.
            let _ = worker.join();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Closes the queue when the writer thread ends, however it ends.
struct Closing<'a>(&'a Queue);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn run_writer<W: Write>(queue: &Queue, sink: W, counters: &Counters) {
    let mut out = Output {
        sink,
        buffer: Vec::with_capacity(WRITE_BUFFER_BYTES + LINE_SLACK_BYTES),
    };
    let mut format = EventFormat::new();
    let mut batch = Vec::new();
    // Idle: block until something arrives (the only time a sender has to wake this thread).
    // Busy: after each batch, flush, then let the next batch build up for a while instead
    // of being woken by every event; go back to blocking once a window brings nothing.
    let mut block = true;
    loop {
        queue.take(&mut batch, block);
        if batch.is_empty() {
            block = true;
            continue;
        }
        for message in batch.drain(..) {
            match message {
                Message::Event(event) => out.line(counters, |buf| event.fields().write(buf)),
                Message::Finished(finished) => {
                    out.line(counters, |buf| finished.write(buf, &mut format));
                }
                Message::Flush(ack) => {
                    out.flush(counters);
                    // The caller may have given up waiting; then nobody needs the answer.
                    let _ = ack.send(());
                }
                Message::Shutdown => {
                    out.flush(counters);
                    return;
                }
            }
        }
        out.flush(counters);
        std::thread::sleep(BATCH_WINDOW);
        block = false;
    }
}

/// The sink and the buffer in front of it. Lines are serialised straight into the buffer
/// (no copy of each line), and the buffer goes to the sink in large writes that hold only
/// whole lines.
struct Output<W> {
    sink: W,
    buffer: Vec<u8>,
}

impl<W: Write> Output<W> {
    /// Appends one line made by `serialise`; a line that fails to serialise is taken back
    /// out whole and counted as a write error.
    fn line(
        &mut self,
        counters: &Counters,
        serialise: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    ) {
        let start = self.buffer.len();
        if serialise(&mut self.buffer).is_ok() {
            self.buffer.push(b'\n');
            counters.written.fetch_add(1, Ordering::Relaxed);
        } else {
            self.buffer.truncate(start);
            count_write_error(counters);
        }
        if self.buffer.len() >= WRITE_BUFFER_BYTES {
            self.write_out(counters);
        }
    }

    /// Hands the buffered lines to the sink.
    fn write_out(&mut self, counters: &Counters) {
        if !self.buffer.is_empty() {
            if self.sink.write_all(&self.buffer).is_err() {
                count_write_error(counters);
            }
            self.buffer.clear();
        }
    }

    fn flush(&mut self, counters: &Counters) {
        self.write_out(counters);
        if self.sink.flush().is_err() {
            count_write_error(counters);
        }
    }
}

fn count_write_error(counters: &Counters) {
    counters.write_errors.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(EVENT_WRITE_ERRORS_TOTAL).increment(1);
}
