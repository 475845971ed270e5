//! The background JSONL writer on its own: whole lines under concurrency, drops counted
//! when the queue is full, flush and shutdown write everything queued.
#![allow(clippy::unwrap_used)]

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use ollama_telemetry::{EventLog, Outcome, RequestEvent, TelemetryError};

fn event(i: usize) -> RequestEvent {
    RequestEvent {
        event: "ollama_request".into(),
        timestamp: "2026-01-01T00:00:00.000000Z".to_owned(),
        request_id: format!("req-{i}"),
        client_type: "test".into(),
        operation: "generate".into(),
        endpoint: "/api/generate".into(),
        model: Some("llama3.2:latest".to_owned()),
        stream: false,
        status: "success".into(),
        outcome: Outcome::Success,
        latency_ms: 1.5,
        ttft_ms: None,
        total_duration_ms: Some(1.0),
        model_load_ms: Some(0.1),
        model_warm_start: Some(true),
        prompt_eval_ms: None,
        eval_ms: None,
        queue_wait_ms: Some(0.5),
        prompt_chars: Some(12),
        prompt_eval_count: Some(3),
        generation_eval_count: Some(4),
        tokens_per_second: None,
        done_reason: Some("stop".to_owned()),
        // A long value makes lines longer than small write chunks, so torn lines would show.
        options: Some(serde_json::json!({"temperature": 0.2, "stop": ["x".repeat(300)]})),
        prompt: None,
        error_type: None,
        error_message: None,
        http_status: None,
    }
}

/// A sink shared with the test, so it can read what was written.
#[derive(Clone, Default)]
struct SharedSink(Arc<Mutex<Vec<u8>>>);

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Accept at most 100 bytes per call, like a slow pipe: the writer must still
        // produce whole lines.
        let n = buf.len().min(100);
        self.0.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SharedSink {
    fn lines(&self) -> Vec<RequestEvent> {
        let bytes = self.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[test]
fn concurrent_records_become_whole_lines() {
    let sink = SharedSink::default();
    let log = EventLog::to_writer(sink.clone(), 100_000).unwrap();
    std::thread::scope(|s| {
        for t in 0..16 {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..500 {
                    assert!(log.record(event(t * 1000 + i)));
                }
            });
        }
    });
    log.flush().unwrap();
    let lines = sink.lines();
    assert_eq!(lines.len(), 16 * 500);
    let mut ids: Vec<_> = lines.iter().map(|e| e.request_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 16 * 500);
    let stats = log.stats();
    assert_eq!(
        (stats.queued, stats.written, stats.dropped),
        (8000, 8000, 0)
    );
}

/// A sink that blocks every write until the test lets it go.
struct GatedSink {
    gate: mpsc::Receiver<()>,
    inner: SharedSink,
}

impl Write for GatedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Blocks until released; once the test drops its sender, writes pass freely.
        let _ = self.gate.recv();
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let (release, gate) = mpsc::channel();
    let sink = SharedSink::default();
    let log = EventLog::to_writer(
        GatedSink {
            gate,
            inner: sink.clone(),
        },
        8,
    )
    .unwrap();
    // Rebound after the log so that, if an assertion fails, unwinding drops it first and the
    // log's drop (which waits for the writer) does not wait on a sink that stays blocked.
    let release = release;
    // The writer takes at most a few events and then blocks in the sink; the queue holds 8.
    // Recording never blocks, so this loop ends, and everything past capacity is dropped.
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..1000 {
        if log.record(event(i)) {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "a blocked writer with 8 slots cannot take 1000 events"
    );
    let stats = log.stats();
    assert_eq!(stats.dropped, refused);
    assert_eq!(stats.queued, accepted);
    drop(release);
    log.shutdown();
    assert_eq!(sink.lines().len() as u64, accepted);
    // After shutdown nothing is written and records count as drops.
    assert!(!log.record(event(0)));
    assert_eq!(log.stats().dropped, refused + 1);
    assert!(matches!(log.flush(), Err(TelemetryError::EventLogClosed)));
}

#[test]
fn dropping_the_last_handle_flushes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/folder/requests.jsonl");
    let log = EventLog::to_file(&path, 1024).unwrap();
    let clone = log.clone();
    for i in 0..100 {
        clone.record(event(i));
    }
    drop(log);
    drop(clone);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 100);
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["event"], "ollama_request");
        // Error keys and the prompt are absent on success, as in the original event.
        assert!(value.get("error_type").is_none());
        assert!(value.get("prompt").is_none());
        assert!(value["ttft_ms"].is_null());
    }
}

#[test]
fn a_zero_capacity_is_refused_with_a_clear_error() {
    let err = EventLog::to_writer(io::sink(), 0).unwrap_err();
    assert!(err.to_string().contains("capacity"), "{err}");
}

#[test]
fn an_unwritable_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    // A folder cannot be created under a regular file.
    let err = EventLog::to_file(file.join("requests.jsonl"), 16).unwrap_err();
    assert!(err.to_string().contains("plain-file"), "{err}");
}
