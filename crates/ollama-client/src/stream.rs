//! Streamed responses: NDJSON (native) and SSE (`/v1`) bodies as a `Stream` of typed chunks.
//!
//! The stream owns the request's [`Lease`], so a streaming request keeps its slot until the
//! stream ends or is dropped. A body read to its end gives its connection back to the
//! pool; dropping a stream before its end closes the connection, which makes Ollama stop
//! generating.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use memchr::memmem;
use serde::de::DeserializeOwned;
use tokio::time::Sleep;

use crate::decode::{Decoder, Frame, FrameError, Framing};
use crate::error::{Error, Phase};
use crate::openai::ChatCompletionChunk;
use crate::transport::Lease;
use crate::types::{ChatResponse, GenerateResponse, ProgressResponse, ResponseSummary};

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

impl StreamItem for ResponseSummary {
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

/// The typed stream decoder: bytes in, [`Chunk`]s or typed errors out.
///
/// This is the one place that owns a stream's read buffer. It frames NDJSON lines or SSE
/// events (lines and UTF-8 sequences split across chunks, many lines per chunk), checks
/// every item for an `{"error": ...}` payload, parses the rest into `T`, and knows when the
/// stream is complete (`done: true` or `[DONE]`). [`ResponseStream`] feeds it from the
/// network; it can also decode recorded streams.
///
/// Errors come after the items completed before them, and end the stream: a mid-stream
/// error item is `stream_error`, a bad item or a line over 8 MiB is `decode`, and input
/// that ends before the final item is `truncated`.
pub struct StreamDecoder<T> {
    framing: Framing,
    decoder: Decoder,
    frames: VecDeque<(Frame, Instant)>,
    /// A framing error, delivered after the frames completed before it.
    pending: Option<Error>,
    seen_final: bool,
    eof: bool,
    /// Set once an error has been returned; nothing follows it.
    failed: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for StreamDecoder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("framing", &self.framing)
            .field("queued", &self.frames.len())
            .field("seen_final", &self.seen_final)
            .field("eof", &self.eof)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<T: StreamItem> StreamDecoder<T> {
    /// A decoder for newline-delimited JSON (the native `/api/*` streams).
    pub fn ndjson() -> Self {
        Self::new(Framing::Ndjson)
    }

    /// A decoder for server-sent events (the `/v1/*` streams), ending at `data: [DONE]`.
    pub fn sse() -> Self {
        Self::new(Framing::Sse)
    }

    pub(crate) fn new(framing: Framing) -> Self {
        Self {
            framing,
            decoder: Decoder::new(framing),
            frames: VecDeque::new(),
            pending: None,
            seen_final: false,
            eof: false,
            failed: false,
            _item: PhantomData,
        }
    }

    /// Adds bytes as they arrived; `received_at` stamps every item they complete.
    pub fn push(&mut self, bytes: &[u8], received_at: Instant) {
        if self.failed || self.eof || self.pending.is_some() {
            return;
        }
        if let Err(e) = self.decoder.push(bytes, received_at, &mut self.frames) {
            self.pending = Some(frame_error(&e));
        }
    }

    /// Marks the end of the input. A last line without its newline still counts when it is
    /// complete JSON.
    pub fn finish(&mut self, at: Instant) {
        if self.eof {
            return;
        }
        self.eof = true;
        if self.pending.is_none()
            && let Err(e) = self.decoder.finish(at, &mut self.frames)
        {
            self.pending = Some(frame_error(&e));
        }
    }

    /// The next complete item or error; `None` when more input is needed or the stream is
    /// over (see [`StreamDecoder::is_finished`]).
    pub fn next_item(&mut self) -> Option<Result<Chunk<T>, Error>> {
        while !self.failed {
            if let Some((frame, at)) = self.frames.pop_front() {
                let bytes = match frame {
                    Frame::Done => {
                        self.seen_final = true;
                        continue;
                    }
                    Frame::Data(bytes) => bytes,
                };
                return Some(match parse_item::<T>(&bytes) {
                    Ok(item) => {
                        self.seen_final |= item.is_final();
                        Ok(Chunk {
                            item,
                            received_at: at,
                        })
                    }
                    Err(e) => self.fail(e),
                });
            }
            if let Some(e) = self.pending.take() {
                // A cut after the final item is only the transport closing early.
                if self.seen_final && e.kind() == crate::ErrorKind::Truncated {
                    continue;
                }
                return Some(self.fail(e));
            }
            if self.eof && !self.seen_final {
                return Some(self.fail(Error::truncated(match self.framing {
                    Framing::Ndjson => "the body ended without a final `done: true` line",
                    Framing::Sse => "the body ended without `data: [DONE]`",
                })));
            }
            return None;
        }
        None
    }

    fn fail(&mut self, e: Error) -> Result<Chunk<T>, Error> {
        self.failed = true;
        self.frames.clear();
        Err(e)
    }

    /// True once the final item (`done: true`, pull `success`, or SSE `[DONE]`) was read.
    pub fn is_complete(&self) -> bool {
        self.seen_final
    }

    /// True when no item will ever come again: after an error, or after the end of input
    /// once every item has been taken.
    pub fn is_finished(&self) -> bool {
        self.failed
            || (self.eof && self.frames.is_empty() && self.pending.is_none() && self.seen_final)
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
    decoder: StreamDecoder<T>,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    finished: bool,
    lease: Option<Lease>,
}

impl<T> std::fmt::Debug for ResponseStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("decoder", &self.decoder)
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
            decoder: StreamDecoder::new(framing),
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            finished: false,
            lease: Some(lease),
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
        self.lease = None;
    }

    /// The body was read to its end: its connection goes back to the pool.
    fn body_ended(&mut self) {
        self.body = None;
        if let Some(lease) = self.lease.as_mut() {
            lease.body_ended();
        }
        self.decoder.finish(Instant::now());
    }

    /// Reads body frames that are already there, without waiting, so a finished body is
    /// seen and its socket goes back to the pool even if the caller stops after the last
    /// item.
    fn drain_ready(&mut self, cx: &mut Context<'_>) {
        while let Some(body) = self.body.as_mut() {
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    if let Ok(data) = f.into_data() {
                        self.decoder.push(&data, Instant::now());
                    }
                }
                Poll::Ready(None) => {
                    self.body_ended();
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
        if !self.decoder.seen_final || self.finished {
            return;
        }
        let (Some(mut body), Ok(rt)) = (self.body.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let limit = self.idle_timeout.min(Duration::from_secs(5));
        // The lease goes along: the request is in flight until its body has ended, and
        // the connection goes back to the pool only if it does.
        let mut lease = self.lease.take();
        rt.spawn(async move {
            let drain = async {
                loop {
                    match body.frame().await {
                        Some(Ok(_)) => {}
                        None => return true,
                        Some(Err(_)) => return false,
                    }
                }
            };
            if let (Ok(true), Some(lease)) =
                (tokio::time::timeout(limit, drain).await, lease.as_mut())
            {
                lease.body_ended();
            }
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
            match this.decoder.next_item() {
                Some(Ok(chunk)) => {
                    if this.decoder.is_complete() {
                        this.drain_ready(cx);
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Some(Err(e)) => {
                    this.finish();
                    return Poll::Ready(Some(Err(e)));
                }
                None if this.decoder.is_finished() => {
                    this.finish();
                    return Poll::Ready(None);
                }
                None => {}
            }
            let Some(body) = this.body.as_mut() else {
                // Unreachable in practice: without a body the decoder has seen the end of
                // input, so it yields an item, an error, or is finished.
                this.finish();
                return Poll::Ready(None);
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    this.idle
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.idle_timeout);
                    if let Ok(data) = f.into_data() {
                        this.decoder.push(&data, Instant::now());
                    }
                }
                Poll::Ready(Some(Err(_))) if this.decoder.is_complete() => {
                    // Everything was delivered; only the transport's end went wrong.
                    this.body = None;
                    this.decoder.finish(Instant::now());
                }
                Poll::Ready(Some(Err(e))) => {
                    this.finish();
                    return Poll::Ready(Some(Err(Error::truncated_by(
                        "the connection broke before the stream finished",
                        Box::new(e),
                    ))));
                }
                Poll::Ready(None) => this.body_ended(),
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        this.finish();
                        return Poll::Ready(Some(Err(Error::timeout(
                            Phase::Body,
                            this.idle_timeout,
                        ))));
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
/// A cheap substring test runs first so ordinary items are parsed only once. It is a SIMD
/// search (memchr): comparing a 7-byte window at every offset cost about 4,000 instructions
/// per 400-byte response, 5% of a load-test request (callgrind, `cargo xtask bench`). The
/// searcher is built once: `memmem::find` builds one per call, which cost more than the
/// search itself on a 300-byte answer.
pub(crate) fn error_message(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        error: Option<serde_json::Value>,
    }
    static ERROR_KEY: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"error\""));
    ERROR_KEY.find(bytes)?;
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
    use crate::ErrorKind;
    use proptest::prelude::*;

    /// Decodes `chunks` completely; items as values, then the error kind if any.
    fn decode_all<T: StreamItem>(
        mut d: StreamDecoder<T>,
        chunks: &[&[u8]],
    ) -> (Vec<T>, Option<ErrorKind>) {
        let now = Instant::now();
        let mut items = Vec::new();
        let take = |d: &mut StreamDecoder<T>, items: &mut Vec<T>| -> Option<ErrorKind> {
            while let Some(r) = d.next_item() {
                match r {
                    Ok(c) => items.push(c.item),
                    Err(e) => return Some(e.kind()),
                }
            }
            None
        };
        for c in chunks {
            d.push(c, now);
            if let Some(k) = take(&mut d, &mut items) {
                return (items, Some(k));
            }
        }
        d.finish(now);
        let k = take(&mut d, &mut items);
        assert!(d.next_item().is_none(), "nothing after the end or an error");
        (items, k)
    }

    fn generate_lines(texts: &[String]) -> Vec<u8> {
        let mut wire = Vec::new();
        for t in texts {
            wire.extend(
                serde_json::json!({"model":"m","created_at":"t","response":t,"done":false})
                    .to_string()
                    .bytes(),
            );
            wire.push(b'\n');
        }
        wire.extend(br#"{"model":"m","created_at":"t","response":"","done":true,"done_reason":"stop","eval_count":3}"#);
        wire.push(b'\n');
        wire
    }

    #[test]
    fn typed_stream_ends_cleanly_or_says_why() {
        let wire = generate_lines(&["a".into(), "b".into()]);
        let (items, err) = decode_all(StreamDecoder::<GenerateResponse>::ndjson(), &[&wire]);
        assert_eq!((items.len(), err), (3, None));
        assert_eq!(items[2].metrics().eval_count, Some(3));
        // Cut before the final line: the two items, then truncated.
        let cut = wire.len() - 20;
        let (items, err) = decode_all(StreamDecoder::<GenerateResponse>::ndjson(), &[&wire[..cut]]);
        assert_eq!((items.len(), err), (2, Some(ErrorKind::Truncated)));
        // An error line after one item.
        let wire = b"{\"response\":\"a\",\"done\":false}\n{\"error\":\"boom\"}\n";
        let (items, err) = decode_all(StreamDecoder::<GenerateResponse>::ndjson(), &[wire]);
        assert_eq!((items.len(), err), (1, Some(ErrorKind::StreamError)));
    }

    #[test]
    fn over_long_line_comes_after_the_items_before_it() {
        let mut wire = b"{\"response\":\"a\",\"done\":false}\n".to_vec();
        wire.extend(std::iter::repeat_n(
            b'x',
            crate::decode::MAX_FRAME_BYTES + 1,
        ));
        let (items, err) = decode_all(StreamDecoder::<GenerateResponse>::ndjson(), &[&wire]);
        assert_eq!((items.len(), err), (1, Some(ErrorKind::Decode)));
    }

    #[test]
    fn sse_needs_done() {
        let ok = b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n";
        let (items, err) = decode_all(StreamDecoder::<ChatCompletionChunk>::sse(), &[ok]);
        assert_eq!((items.len(), err), (1, None));
        let (items, err) = decode_all(StreamDecoder::<ChatCompletionChunk>::sse(), &[&ok[..22]]);
        assert_eq!((items.len(), err), (1, Some(ErrorKind::Truncated)));
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_typed_items(
            texts in prop::collection::vec("[a-z \u{e9}\u{4e2d}\u{1F600}\n\"]{0,12}", 0..15),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..25),
        ) {
            let wire = generate_lines(&texts);
            let (whole, err) = decode_all(StreamDecoder::<GenerateResponse>::ndjson(), &[&wire]);
            prop_assert_eq!(err, None);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&wire[last..p]);
                last = p;
            }
            chunks.push(&wire[last..]);
            let (split, err) = decode_all(StreamDecoder::<GenerateResponse>::ndjson(), &chunks);
            prop_assert_eq!(err, None);
            prop_assert_eq!(&split, &whole);
            prop_assert_eq!(split.len(), texts.len() + 1);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_typed_decoder(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..10)) {
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let _ = decode_all(StreamDecoder::<ChatResponse>::ndjson(), &refs);
            let _ = decode_all(StreamDecoder::<ChatCompletionChunk>::sse(), &refs);
        }
    }

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
