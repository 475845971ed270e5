//! Streamed responses: NDJSON (native) and SSE (`/v1`) bodies as a `Stream` of typed chunks.
//!
//! The stream owns the request's [`Lease`], so a streaming request keeps its slot until the
//! stream ends or is dropped. Dropping a stream before its end closes the connection,
//! which makes Ollama stop generating.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use tokio::time::Sleep;

use crate::decode::{Decoder, Frame, FrameError, Framing};
use crate::error::{Error, Phase};
use crate::openai::ChatCompletionChunk;
use crate::transport::Lease;
use crate::types::{ChatResponse, GenerateResponse, ProgressResponse};

/// One streamed item with the instant its last byte arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk<T> {
    /// The decoded item.
    pub item: T,
    /// When the network chunk holding the end of this item arrived (use it for
    /// time-to-first-token and inter-token gaps).
    pub received_at: Instant,
}

/// An item type that can be streamed; implemented for this crate's stream items.
pub trait StreamItem: DeserializeOwned {
    /// True when this item is the last of a native stream (`done: true`, or pull's
    /// `success`). SSE streams end with `[DONE]` instead and return false here.
    fn is_final(&self) -> bool;
}

impl StreamItem for GenerateResponse {
    fn is_final(&self) -> bool {
        self.done
    }
}

impl StreamItem for ChatResponse {
    fn is_final(&self) -> bool {
        self.done
    }
}

impl StreamItem for ProgressResponse {
    fn is_final(&self) -> bool {
        self.status == "success"
    }
}

impl StreamItem for ChatCompletionChunk {
    fn is_final(&self) -> bool {
        false
    }
}

/// A streamed response: a `Stream` of `Result<Chunk<T>, Error>`.
///
/// It yields every item the server sent, then ends (`None`). A mid-stream
/// `{"error": ...}` yields a `stream_error`; a body that ends before its final item (or SSE
/// `[DONE]`) yields `truncated`; no data for `timeout` yields `read_timeout`. After an
/// error the stream ends.
pub struct ResponseStream<T> {
    body: Option<Incoming>,
    decoder: Decoder,
    frames: VecDeque<(Frame, Instant)>,
    framing: Framing,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    seen_final: bool,
    finished: bool,
    lease: Option<Lease>,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ResponseStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("framing", &self.framing)
            .field("seen_final", &self.seen_final)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<T: StreamItem> ResponseStream<T> {
    pub(crate) fn new(
        body: Incoming,
        framing: Framing,
        idle_timeout: Duration,
        lease: Lease,
    ) -> Self {
        Self {
            body: Some(body),
            decoder: Decoder::new(framing),
            frames: VecDeque::new(),
            framing,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            seen_final: false,
            finished: false,
            lease: Some(lease),
            _item: PhantomData,
        }
    }

    /// The next chunk, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<Chunk<T>, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Ends the stream and releases its connection and request slot.
    fn finish(&mut self) {
        self.finished = true;
        self.body = None;
        self.frames.clear();
        self.lease = None;
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Chunk<T>, Error>>> {
        self.finish();
        Poll::Ready(Some(Err(e)))
    }

    /// Turns one frame into an item, an error, or nothing (SSE `[DONE]`).
    fn frame(&mut self, frame: Frame, at: Instant) -> Option<Result<Chunk<T>, Error>> {
        match frame {
            Frame::Done => {
                self.seen_final = true;
                None
            }
            Frame::Data(bytes) => Some(parse_item::<T>(&bytes).map(|item| {
                if item.is_final() {
                    self.seen_final = true;
                }
                Chunk {
                    item,
                    received_at: at,
                }
            })),
        }
    }

    /// Reads body frames into the decoder without waiting, so a finished body is seen and
    /// its connection goes back to the pool even if the caller stops after the last item.
    fn drain_ready(&mut self, cx: &mut Context<'_>) {
        while self.frames.is_empty() {
            let Some(body) = self.body.as_mut() else {
                return;
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    if let Ok(data) = f.into_data()
                        && self
                            .decoder
                            .push(&data, Instant::now(), &mut self.frames)
                            .is_err()
                    {
                        return;
                    }
                }
                Poll::Ready(None) => {
                    self.body = None;
                    self.lease = None;
                }
                Poll::Ready(Some(Err(_))) | Poll::Pending => return,
            }
        }
    }
}

impl<T> Drop for ResponseStream<T> {
    /// A stream dropped after its final item usually has only the body's end marker left
    /// in flight. Reading that in the background lets the socket go back to the pool
    /// instead of being closed. A stream dropped earlier is closed at once, which tells
    /// Ollama to stop generating.
    fn drop(&mut self) {
        if !self.seen_final || self.finished {
            return;
        }
        let (Some(mut body), Ok(rt)) = (self.body.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let limit = self.idle_timeout.min(Duration::from_secs(5));
        // The lease goes along: the request is in flight until its body has ended.
        let lease = self.lease.take();
        rt.spawn(async move {
            let drain = async { while let Some(Ok(_)) = body.frame().await {} };
            let _ = tokio::time::timeout(limit, drain).await;
            drop(lease);
        });
    }
}

impl<T: StreamItem> Stream for ResponseStream<T> {
    type Item = Result<Chunk<T>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            if let Some((frame, at)) = this.frames.pop_front() {
                match this.frame(frame, at) {
                    None => continue,
                    Some(Err(e)) => return this.fail(e),
                    Some(Ok(chunk)) => {
                        if this.seen_final {
                            this.drain_ready(cx);
                        }
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                }
            }
            let Some(body) = this.body.as_mut() else {
                let seen_final = this.seen_final;
                this.finish();
                if seen_final {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(Error::truncated(match this.framing {
                    Framing::Ndjson => "the body ended without a final `done: true` line",
                    Framing::Sse => "the body ended without `data: [DONE]`",
                }))));
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    let now = Instant::now();
                    this.idle
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.idle_timeout);
                    if let Ok(data) = f.into_data()
                        && let Err(e) = this.decoder.push(&data, now, &mut this.frames)
                    {
                        // Frames completed before the error are dropped with the stream:
                        // a line over the cap means the stream cannot be trusted further.
                        return this.fail(frame_error(&e));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return this.fail(Error::truncated_by(
                        "the connection broke before the stream finished",
                        Box::new(e),
                    ));
                }
                Poll::Ready(None) => {
                    this.body = None;
                    if let Err(e) = this.decoder.finish(Instant::now(), &mut this.frames) {
                        // Deliver what was complete, then report the cut.
                        if this.frames.is_empty() {
                            return this.fail(frame_error(&e));
                        }
                    }
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        return this.fail(Error::timeout(Phase::Body, this.idle_timeout));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

fn frame_error(e: &FrameError) -> Error {
    match e {
        FrameError::TooLong { .. } => Error::decode(e.to_string(), None),
        FrameError::Incomplete(_) => Error::truncated("the body ended in the middle of a line"),
    }
}

/// Parses one payload, checking first for an `{"error": ...}` item.
pub(crate) fn parse_item<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Error> {
    if let Some(message) = error_message(bytes) {
        return Err(Error::stream(message));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::decode(format!("{e} in {}", snippet(bytes)), Some(Box::new(e))))
}

/// The message of an `{"error": "..."}` or `{"error": {"message": "..."}}` payload.
///
/// A cheap substring test runs first so ordinary items are parsed only once.
pub(crate) fn error_message(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        error: Option<serde_json::Value>,
    }
    if !bytes.windows(7).any(|w| w == b"\"error\"") {
        return None;
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    match probe.error? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(map) => Some(
            map.get("message")
                .and_then(serde_json::Value::as_str)
                .map_or_else(
                    || serde_json::Value::Object(map.clone()).to_string(),
                    str::to_owned,
                ),
        ),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The start of a payload, for error messages.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    if bytes.len() > MAX {
        format!("{text:?}...")
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_items_are_recognised() {
        assert_eq!(error_message(br#"{"error":"boom"}"#), Some("boom".into()));
        assert_eq!(
            error_message(br#"{"error":{"message":"bad","type":"api_error"}}"#),
            Some("bad".into())
        );
        assert_eq!(
            error_message(br#"{"response":"the word \"error\" in text","done":false}"#),
            None
        );
        assert_eq!(error_message(br#"{"response":"x"}"#), None);
        let e = parse_item::<GenerateResponse>(&Bytes::from_static(
            br#"{"error":"an error was encountered while running the model"}"#,
        ))
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StreamError);
        let e = parse_item::<GenerateResponse>(&Bytes::from_static(b"{not json")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Decode);
    }
}
