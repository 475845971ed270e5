//! The generation engine shared by `/api/generate`, `/api/chat` and the `/v1` layer:
//! paced token production, the six measured durations, stream faults, and the rule that
//! response headers leave only with the first chunk.
//!
//! A [`Job`] owns the runner lease and the slot permit; it is moved into the streaming
//! task, so the slot is held exactly as long as generation runs, and a client that goes
//! away (the channel closes) frees it at the next token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::body::{Piece, ResetConnection, SimBody};
use crate::fault::FaultKind;
use crate::models::LocalModel;
use crate::sched::Lease;
use crate::server::{ConnCtl, Shared};
use crate::textgen::Plan;
use crate::wire;

/// The six server metrics of a final chunk, in nanoseconds. Every duration is real
/// measured wall time, at least 1 ns so `omitempty` never drops it.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Metrics {
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) total_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) load_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) prompt_eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) prompt_eval_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) eval_duration: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(v: &u64) -> bool {
    *v == 0
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// What the final chunk needs.
pub(crate) struct Final {
    pub(crate) done_reason: &'static str,
    pub(crate) metrics: Metrics,
}

/// Turns engine events into wire bytes for one API family.
pub(crate) trait Format: Send + 'static {
    /// One streamed token chunk (a whole NDJSON line or SSE event).
    fn token(&mut self, text: &str) -> Bytes;
    /// One streamed thinking chunk; `None` when the API has no place for thinking text.
    fn thinking(&mut self, text: &str) -> Option<Bytes>;
    /// The closing chunk or chunks (final NDJSON line; finish + usage + `[DONE]` for SSE).
    fn finish(&mut self, plan: &Plan, fin: &Final) -> Vec<Bytes>;
    /// What a mid-stream error looks like; `None` ends the stream with nothing more.
    fn error(&mut self, message: &str) -> Bytes;
    /// A line that is not valid JSON.
    fn malformed(&mut self) -> Bytes;
}

/// A generation ready to run: model held, slot taken.
pub(crate) struct Job {
    pub(crate) shared: Arc<Shared>,
    pub(crate) model: Arc<LocalModel>,
    pub(crate) plan: Plan,
    /// Handler entry (`checkpointStart`).
    pub(crate) start: Instant,
    pub(crate) load_duration: Duration,
    pub(crate) lease: Lease,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// Stream faults carried into generation.
#[derive(Clone)]
pub(crate) enum StreamFault {
    Reset(u32),
    Stall(u32, Duration),
    Malformed(u32),
    Error(u32, String),
}

impl StreamFault {
    pub(crate) fn from_kind(kind: &FaultKind) -> Option<Self> {
        Some(match kind {
            FaultKind::Reset { after } => StreamFault::Reset(*after),
            FaultKind::Stall { after, duration } => StreamFault::Stall(*after, *duration),
            FaultKind::Malformed { after } => StreamFault::Malformed(*after),
            FaultKind::ErrorLine { after, message } => StreamFault::Error(
                *after,
                message.clone().unwrap_or_else(|| RUNNER_ERROR.to_owned()),
            ),
            _ => return None,
        })
    }

    fn after(&self) -> u32 {
        match self {
            StreamFault::Reset(k)
            | StreamFault::Stall(k, _)
            | StreamFault::Malformed(k)
            | StreamFault::Error(k, _) => *k,
        }
    }
}

/// Real time between the last chunk before an injected reset and the reset itself.
const RESET_GRACE: Duration = Duration::from_millis(20);

/// Ollama's text for an error during generation.
pub(crate) const RUNNER_ERROR: &str = "an error was encountered while running the model";

async fn sleep_scaled(shared: &Shared, d: Duration) {
    let d = shared.scaled(d);
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

impl Job {
    /// Runs the whole generation without streaming; returns the thinking text, the answer
    /// text and the final metrics.
    pub(crate) async fn run_whole(self) -> (String, String, Final) {
        let spec = &self.model.spec;
        let t0 = Instant::now();
        sleep_scaled(&self.shared, self.plan.prompt_eval_time(spec)).await;
        let prompt_eval = t0.elapsed();
        let t1 = Instant::now();
        sleep_scaled(&self.shared, self.plan.eval_time(spec)).await;
        let thinking = self.plan.thinking_text();
        let text = self.plan.text();
        let eval = t1.elapsed();
        let fin = self.final_of(prompt_eval, eval);
        drop(self.permit);
        drop(self.lease);
        (thinking, text, fin)
    }

    fn final_of(&self, prompt_eval: Duration, eval: Duration) -> Final {
        Final {
            done_reason: self.plan.done_reason,
            metrics: Metrics {
                total_duration: nanos(self.start.elapsed()),
                load_duration: nanos(self.load_duration),
                prompt_eval_count: u64::from(self.plan.prompt_tokens),
                prompt_eval_duration: nanos(prompt_eval),
                eval_count: u64::from(self.plan.generated()),
                eval_duration: nanos(eval),
            },
        }
    }

    /// Streams the generation. Returns once the first chunk exists, so the status and
    /// headers go out with it; an injected reset before any chunk drops the connection.
    pub(crate) async fn stream<F: Format>(
        self,
        format: F,
        fault: Option<StreamFault>,
        conn: Arc<ConnCtl>,
        content_type: &'static str,
    ) -> Result<Response<SimBody>, ResetConnection> {
        let (tx, mut rx) = mpsc::channel(8);
        tokio::spawn(self.produce(format, fault, tx));
        match rx.recv().await {
            Some(Piece::Data(first)) => Ok(wire::response(
                StatusCode::OK,
                content_type,
                SimBody::stream(first, rx, conn),
            )),
            Some(Piece::Reset) | None => {
                conn.reset.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(ResetConnection)
            }
        }
    }

    async fn produce<F: Format>(
        self,
        mut format: F,
        mut fault: Option<StreamFault>,
        tx: mpsc::Sender<Piece>,
    ) {
        let spec = self.model.spec.clone();
        let shared = self.shared.clone();
        let t0 = Instant::now();
        sleep_scaled(&shared, self.plan.prompt_eval_time(&spec)).await;
        let prompt_eval = t0.elapsed();
        let t1 = Instant::now();
        let mut due = t1;
        let mut sent = 0u32;
        for i in 0..self.plan.generated() {
            // A deadline beyond the clock's range means "a year from now": the token
            // simply does not come during any realistic run.
            let step = shared.scaled(self.plan.token_time(&spec, i));
            due = due
                .checked_add(step)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400));
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
            if !apply_fault(&shared, &mut fault, &mut format, &tx, sent, false).await {
                return;
            }
            let chunk = if self.plan.is_thinking(i) {
                format.thinking(self.plan.token(i))
            } else {
                Some(format.token(self.plan.token(i)))
            };
            let Some(chunk) = chunk else {
                continue;
            };
            if tx.send(Piece::Data(chunk)).await.is_err() {
                return;
            }
            sent += 1;
        }
        let eval = t1.elapsed();
        if !apply_fault(&shared, &mut fault, &mut format, &tx, sent, true).await {
            return;
        }
        let fin = self.final_of(prompt_eval, eval);
        for chunk in format.finish(&self.plan, &fin) {
            if tx.send(Piece::Data(chunk)).await.is_err() {
                return;
            }
        }
    }
}

/// Applies a pending stream fault when its chunk count is reached (or at the final
/// chunk at the latest). Returns false when the stream must end.
async fn apply_fault<F: Format>(
    shared: &Shared,
    fault: &mut Option<StreamFault>,
    format: &mut F,
    tx: &mpsc::Sender<Piece>,
    sent: u32,
    at_end: bool,
) -> bool {
    let Some(f) = fault.as_ref() else {
        return true;
    };
    if sent < f.after() && !at_end {
        return true;
    }
    let Some(f) = fault.take() else {
        return true;
    };
    match f {
        StreamFault::Reset(_) => {
            if sent > 0 {
                // On a real network the reset arrives after the data sent before it. An
                // RST that overtakes unread data makes Linux drop that data, so give the
                // client a moment to read the chunks already written.
                tokio::time::sleep(RESET_GRACE).await;
            }
            let _ = tx.send(Piece::Reset).await;
            false
        }
        StreamFault::Stall(_, d) => {
            sleep_scaled(shared, d).await;
            true
        }
        StreamFault::Malformed(_) => tx.send(Piece::Data(format.malformed())).await.is_ok(),
        StreamFault::Error(_, message) => {
            let _ = tx.send(Piece::Data(format.error(&message))).await;
            false
        }
    }
}
