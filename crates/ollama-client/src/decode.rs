//! Stream framing: one type that owns the read buffer and turns network chunks into frames.
//!
//! Network chunk boundaries mean nothing: a line (or an SSE event) can be split anywhere,
//! even inside a UTF-8 sequence, and one chunk can hold many lines. The decoder keeps the
//! unfinished tail in its buffer and only hands out whole frames, each stamped with the
//! arrival instant of the chunk that completed it.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

/// The longest line (or SSE event) accepted, like the Go client's 8 MB scanner buffer.
pub(crate) const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// The wire framing of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Newline-delimited JSON (native `/api/*` streams).
    Ndjson,
    /// Server-sent events (`/v1/*` streams): `data:` lines, a blank line ends an event.
    Sse,
}

/// One complete unit of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A JSON payload: an NDJSON line, or the data of one SSE event.
    Data(Bytes),
    /// The SSE end marker `data: [DONE]`.
    Done,
}

/// Why the bytes could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// A line or event grew past [`MAX_FRAME_BYTES`] without ending.
    #[error(
        "a stream line exceeds the {limit} byte limit (the server sent {seen}+ bytes without a newline)"
    )]
    TooLong { limit: usize, seen: usize },
    /// The stream ended in the middle of a line or event.
    #[error("the stream ended in the middle of a line ({0} bytes without a newline)")]
    Incomplete(usize),
}

/// The buffer-owning decoder (NDJSON or SSE).
///
/// Invariant: `buf` never holds a complete line; every `\n` pushed is consumed before
/// [`Decoder::push`] returns. `scanned` is how much of `buf` is known to hold no `\n`, so
/// a long line arriving in many chunks is scanned once, not once per chunk.
#[derive(Debug)]
pub(crate) struct Decoder {
    framing: Framing,
    buf: BytesMut,
    scanned: usize,
    /// SSE only: the `data:` lines of the event being read, joined with `\n`.
    event: Option<Vec<u8>>,
    /// A frame error is sticky: after it, the decoder yields nothing more.
    failed: bool,
}

impl Decoder {
    pub(crate) fn new(framing: Framing) -> Self {
        Self {
            framing,
            buf: BytesMut::new(),
            scanned: 0,
            event: None,
            failed: false,
        }
    }

    /// Adds a network chunk and appends every frame it completes to `out`, stamped `at`.
    pub(crate) fn push(
        &mut self,
        mut chunk: &[u8],
        at: Instant,
        out: &mut VecDeque<(Frame, Instant)>,
    ) -> Result<(), FrameError> {
        if self.failed {
            return Ok(());
        }
        // Fast path: whole lines straight from the chunk while the buffer is empty, so the
        // common case (one or more complete lines per chunk) copies nothing.
        while self.buf.is_empty() {
            let Some(pos) = find_newline(chunk) else {
                break;
            };
            let line = Bytes::copy_from_slice(&chunk[..pos]);
            chunk = &chunk[pos + 1..];
            self.line(line, at, out)?;
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.buf.extend_from_slice(chunk);
        loop {
            let Some(pos) = find_newline(&self.buf[self.scanned..]).map(|p| p + self.scanned)
            else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_FRAME_BYTES {
                    return Err(self.fail(FrameError::TooLong {
                        limit: MAX_FRAME_BYTES,
                        seen: self.buf.len(),
                    }));
                }
                return Ok(());
            };
            let line = self.buf.split_to(pos).freeze();
            self.buf.advance(1);
            self.scanned = 0;
            self.line(line, at, out)?;
        }
    }

    /// Ends the input. A complete JSON value left without its newline is accepted as the
    /// last frame; any other leftover means the stream was cut.
    pub(crate) fn finish(
        &mut self,
        at: Instant,
        out: &mut VecDeque<(Frame, Instant)>,
    ) -> Result<(), FrameError> {
        if self.failed {
            return Ok(());
        }
        let rest = std::mem::take(&mut self.buf).freeze();
        self.scanned = 0;
        match self.framing {
            Framing::Ndjson => {
                let trimmed = trim_cr(rest);
                if trimmed.iter().all(u8::is_ascii_whitespace) {
                    return Ok(());
                }
                if serde_json::from_slice::<serde::de::IgnoredAny>(&trimmed).is_ok() {
                    out.push_back((Frame::Data(trimmed), at));
                    return Ok(());
                }
                Err(self.fail(FrameError::Incomplete(trimmed.len())))
            }
            Framing::Sse => {
                // An event is only dispatched by a blank line; a cut one is dropped by the
                // SSE rules, and the missing [DONE] reports the cut.
                let pending = rest.len() + self.event.as_ref().map_or(0, Vec::len);
                self.event = None;
                if pending == 0 {
                    Ok(())
                } else {
                    Err(self.fail(FrameError::Incomplete(pending)))
                }
            }
        }
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.failed = true;
        self.buf = BytesMut::new();
        self.event = None;
        e
    }

    fn line(
        &mut self,
        line: Bytes,
        at: Instant,
        out: &mut VecDeque<(Frame, Instant)>,
    ) -> Result<(), FrameError> {
        let line = trim_cr(line);
        match self.framing {
            // The server never sends blank lines; tolerate them rather than fail a stream.
            Framing::Ndjson => {
                if !line.is_empty() {
                    out.push_back((Frame::Data(line), at));
                }
            }
            Framing::Sse => self.sse_line(&line, at, out)?,
        }
        Ok(())
    }

    fn sse_line(
        &mut self,
        line: &[u8],
        at: Instant,
        out: &mut VecDeque<(Frame, Instant)>,
    ) -> Result<(), FrameError> {
        if line.is_empty() {
            if let Some(data) = self.event.take() {
                if data == b"[DONE]" {
                    out.push_back((Frame::Done, at));
                } else {
                    out.push_back((Frame::Data(Bytes::from(data)), at));
                }
            }
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return Ok(()), // a comment
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            let event = self.event.get_or_insert_with(Vec::new);
            if !event.is_empty() {
                event.push(b'\n');
            }
            event.extend_from_slice(value);
            if event.len() > MAX_FRAME_BYTES {
                let seen = event.len();
                return Err(self.fail(FrameError::TooLong {
                    limit: MAX_FRAME_BYTES,
                    seen,
                }));
            }
        }
        // `event:`, `id:` and `retry:` carry nothing this client needs.
        Ok(())
    }
}

fn find_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn trim_cr(mut line: Bytes) -> Bytes {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(framing: Framing, chunks: &[&[u8]]) -> (Vec<Frame>, Result<(), FrameError>) {
        let mut d = Decoder::new(framing);
        let mut out = VecDeque::new();
        let now = Instant::now();
        for c in chunks {
            if let Err(e) = d.push(c, now, &mut out) {
                return (out.into_iter().map(|f| f.0).collect(), Err(e));
            }
        }
        let r = d.finish(now, &mut out);
        (out.into_iter().map(|f| f.0).collect(), r)
    }

    fn data(s: &str) -> Frame {
        Frame::Data(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn lines_split_and_joined() {
        let (frames, r) = run(
            Framing::Ndjson,
            &[b"{\"a\":1}\n{\"b\"", b":2}\n{\"c\":3}\n{\"d\":4}\n"],
        );
        assert!(r.is_ok());
        assert_eq!(
            frames,
            vec![
                data("{\"a\":1}"),
                data("{\"b\":2}"),
                data("{\"c\":3}"),
                data("{\"d\":4}")
            ]
        );
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let line = "{\"response\":\"h\u{e9}llo \u{1F600}\"}\n".as_bytes();
        let cut = line.iter().position(|&b| b >= 0x80).unwrap() + 1;
        let (frames, r) = run(Framing::Ndjson, &[&line[..cut], &line[cut..]]);
        assert!(r.is_ok());
        assert_eq!(
            frames,
            vec![data("{\"response\":\"h\u{e9}llo \u{1F600}\"}")]
        );
    }

    #[test]
    fn arrival_instant_is_that_of_the_completing_chunk() {
        let mut d = Decoder::new(Framing::Ndjson);
        let mut out = VecDeque::new();
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(5);
        d.push(b"{\"a\":", t0, &mut out).unwrap();
        assert!(out.is_empty());
        d.push(b"1}\n{\"b\":2}\n", t1, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|(_, at)| *at == t1));
    }

    #[test]
    fn last_line_without_newline() {
        let (frames, r) = run(Framing::Ndjson, &[b"{\"a\":1}\n{\"b\":2}"]);
        assert!(r.is_ok());
        assert_eq!(frames.len(), 2);
        let (_, r) = run(Framing::Ndjson, &[b"{\"a\":1}\n{\"b\":"]);
        assert_eq!(r, Err(FrameError::Incomplete(5)));
    }

    #[test]
    fn over_long_line_is_an_error() {
        let mut d = Decoder::new(Framing::Ndjson);
        let mut out = VecDeque::new();
        let block = vec![b'x'; 1024 * 1024];
        let mut result = Ok(());
        for _ in 0..9 {
            result = d.push(&block, Instant::now(), &mut out);
            if result.is_err() {
                break;
            }
        }
        assert!(
            matches!(result, Err(FrameError::TooLong { .. })),
            "{result:?}"
        );
        assert!(result.unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn sse_events_and_done() {
        let stream: &[&[u8]] = &[
            b"data: {\"x\":1}\n\n: comment\nevent: m\ndata: {\"x\"",
            b":2}\r\n\r\ndata: [DONE]\n\n",
        ];
        let (frames, r) = run(Framing::Sse, stream);
        assert!(r.is_ok());
        assert_eq!(
            frames,
            vec![data("{\"x\":1}"), data("{\"x\":2}"), Frame::Done]
        );
    }

    #[test]
    fn sse_multi_line_data_joins_with_newline() {
        let (frames, _) = run(Framing::Sse, &[b"data:a\ndata: b\n\n"]);
        assert_eq!(frames, vec![data("a\nb")]);
    }

    #[test]
    fn sse_cut_event_is_reported() {
        let (frames, r) = run(Framing::Sse, &[b"data: {\"x\":1}\n\ndata: {\"x\""]);
        assert_eq!(frames, vec![data("{\"x\":1}")]);
        assert!(matches!(r, Err(FrameError::Incomplete(_))));
    }

    fn ndjson_doc() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[a-zA-Z0-9 \u{e9}\u{4e2d}\u{1F600}\"\\\\]{0,40}", 0..20).prop_map(
            |texts| {
                texts
                    .into_iter()
                    .map(|t| serde_json::json!({ "response": t }).to_string())
                    .collect()
            },
        )
    }

    fn split_at(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(bytes[last..p].to_vec());
            last = p;
        }
        chunks.push(bytes[last..].to_vec());
        chunks
    }

    proptest! {
        #[test]
        fn any_split_of_ndjson_yields_the_same_frames(lines in ndjson_doc(), cuts in prop::collection::vec(any::<usize>(), 0..30)) {
            let wire: Vec<u8> = lines.iter().flat_map(|l| l.bytes().chain(std::iter::once(b'\n'))).collect();
            let chunks = split_at(&wire, &cuts);
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let (frames, r) = run(Framing::Ndjson, &refs);
            prop_assert!(r.is_ok());
            let want: Vec<Frame> = lines.iter().map(|l| data(l)).collect();
            prop_assert_eq!(frames, want);
        }

        #[test]
        fn any_split_of_sse_yields_the_same_frames(lines in ndjson_doc(), cuts in prop::collection::vec(any::<usize>(), 0..30), crlf in any::<bool>()) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut wire = String::new();
            for l in &lines {
                wire.push_str("data: ");
                wire.push_str(l);
                wire.push_str(eol);
                wire.push_str(eol);
            }
            wire.push_str("data: [DONE]");
            wire.push_str(eol);
            wire.push_str(eol);
            let chunks = split_at(wire.as_bytes(), &cuts);
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let (frames, r) = run(Framing::Sse, &refs);
            prop_assert!(r.is_ok());
            let mut want: Vec<Frame> = lines.iter().map(|l| data(l)).collect();
            want.push(Frame::Done);
            prop_assert_eq!(frames, want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20), sse in any::<bool>()) {
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let _ = run(if sse { Framing::Sse } else { Framing::Ndjson }, &refs);
        }
    }
}
