//! A response stream measured to its end.
//!
//! [`InstrumentedStream`] forwards every item of the client's `ResponseStream` unchanged
//! and, on the way, tells the request's tracker when token text arrived (time to first
//! token, inter-token gaps), what the server reported on its final item, and how the
//! stream ended: its end, an error, or a drop before the end (`abandoned`, recorded by the
//! tracker's `Drop`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::Stream;
use ollama_client::openai::ChatCompletionChunk;
use ollama_client::{
    ChatResponse, Chunk, Error, GenerateResponse, Metrics, ProgressResponse, ResponseStream,
    ResponseSummary,
};

use crate::record::{ServerReport, Tracker, done_reason as done_reason_value};

/// Reads what telemetry needs from one stream item and tells the tracker.
pub(crate) type Observer<T> = fn(&T, Instant, &mut Tracker);

/// A streamed response with telemetry: the same items as the client's `ResponseStream`
/// (`Stream<Item = Result<Chunk<T>, Error>>` and an inherent `next()`), recorded to its end.
/// Dropping it before its end records the request as `abandoned` and, like dropping the
/// client's stream, closes the connection so the server stops generating.
pub struct InstrumentedStream<T> {
    inner: ResponseStream<T>,
    tracker: Tracker,
    observe: Observer<T>,
}

impl<T> std::fmt::Debug for InstrumentedStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedStream")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<T> InstrumentedStream<T> {
    pub(crate) fn new(inner: ResponseStream<T>, tracker: Tracker, observe: Observer<T>) -> Self {
        Self {
            inner,
            tracker,
            observe,
        }
    }
}

impl<T> InstrumentedStream<T>
where
    ResponseStream<T>: Stream<Item = Result<Chunk<T>, Error>> + Unpin,
{
    /// The next chunk, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<Chunk<T>, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T> Stream for InstrumentedStream<T>
where
    ResponseStream<T>: Stream<Item = Result<Chunk<T>, Error>> + Unpin,
{
    type Item = Result<Chunk<T>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                (this.observe)(&chunk.item, chunk.received_at, &mut this.tracker);
            }
            Poll::Ready(Some(Err(e))) => this.tracker.fail(e, Instant::now()),
            Poll::Ready(None) => {
                // The client checked the stream's ending (final item or SSE `[DONE]`), so
                // reaching `None` without an error is a success, measured to its last item.
                let end = this.tracker.last_item().unwrap_or_else(Instant::now);
                this.tracker.succeed(end);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// The server's native metrics and `done_reason` as a report.
pub(crate) fn native_report(m: &Metrics, done_reason: Option<&str>) -> ServerReport {
    ServerReport {
        total: m.total_duration,
        load: m.load_duration,
        prompt_eval_count: m.prompt_eval_count,
        prompt_eval: m.prompt_eval_duration,
        eval_count: m.eval_count,
        eval: m.eval_duration,
        done_reason: done_reason.map(done_reason_value),
    }
}

fn non_empty(s: Option<&str>) -> bool {
    s.is_some_and(|s| !s.is_empty())
}

pub(crate) fn observe_generate(item: &GenerateResponse, at: Instant, t: &mut Tracker) {
    let token = !item.response.is_empty()
        || non_empty(item.thinking.as_deref())
        || item.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
    t.item(at, token);
    if item.done {
        t.report(native_report(&item.metrics(), item.done_reason.as_deref()));
        t.succeed(at);
    }
}

pub(crate) fn observe_chat(item: &ChatResponse, at: Instant, t: &mut Tracker) {
    let m = &item.message;
    let token = !m.content.is_empty()
        || non_empty(m.thinking.as_deref())
        || m.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
    t.item(at, token);
    if item.done {
        t.report(native_report(&item.metrics(), item.done_reason.as_deref()));
        t.succeed(at);
    }
}

/// The report of a summarised answer (a whole one, or a stream's final item).
pub(crate) fn summary_report(item: &ResponseSummary) -> ServerReport {
    native_report(&item.metrics, item.done_reason.as_deref())
}

pub(crate) fn observe_summary(item: &ResponseSummary, at: Instant, t: &mut Tracker) {
    t.item(at, item.has_output());
    if item.done {
        t.report(summary_report(item));
        t.succeed(at);
    }
}

pub(crate) fn observe_openai(item: &ChatCompletionChunk, at: Instant, t: &mut Tracker) {
    let token = item.choices.iter().any(|c| {
        non_empty(c.delta.content.as_deref())
            || non_empty(c.delta.reasoning.as_deref())
            || c.delta.tool_calls.as_ref().is_some_and(|c| !c.is_empty())
    });
    t.item(at, token);
    if let Some(reason) = item.finish_reason() {
        t.report(ServerReport {
            done_reason: Some(done_reason_value(reason)),
            ..ServerReport::default()
        });
        // The usage chunk may still follow; the stream ends at `[DONE]`. A caller that
        // stops here has still seen the whole answer, so a drop is not an abandon.
        t.done();
    }
    if let Some(usage) = &item.usage {
        t.report(ServerReport {
            prompt_eval_count: Some(usage.prompt_tokens),
            eval_count: Some(usage.completion_tokens),
            ..ServerReport::default()
        });
    }
}

pub(crate) fn observe_pull(item: &ProgressResponse, at: Instant, t: &mut Tracker) {
    t.item(at, false);
    if item.status == "success" {
        t.succeed(at);
    }
}
