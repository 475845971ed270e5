//! JSONL events under load: exactly one whole line per request at high concurrency, a slow
//! sink that never slows requests, and a full queue that drops and counts.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    CHAT_MODEL, MemorySink, client_with_log, hammer, instant_sim, pooled_client, with_recorder,
};
use ollama_client::GenerateRequest;
use ollama_sim::{Sim, SimConfig};
use ollama_telemetry::catalog::EVENTS_DROPPED_TOTAL;
use ollama_telemetry::{EventLog, EventsConfig, InstrumentedClient, RequestEvent, TelemetryConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_requests_at_concurrency_200_make_twenty_thousand_lines() {
    let sim = instant_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/requests.jsonl");
    let config = TelemetryConfig {
        events: EventsConfig::File(path.clone()),
        ..TelemetryConfig::default()
    };
    let client = InstrumentedClient::new(pooled_client(&sim), config).unwrap();
    let log = client.event_log().unwrap().clone();
    let rate = hammer(&client, 20_000, 200).await;
    let stats = log.stats();
    // Dropping the last handles flushes the file.
    drop(client);
    drop(log);
    sim.shutdown().await;

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    let mut ids = HashSet::new();
    let mut lines = 0;
    for line in text.lines() {
        let event: RequestEvent =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
        assert_eq!(event.operation, "generate");
        assert!(ids.insert(event.request_id));
        lines += 1;
    }
    assert_eq!(
        stats.dropped, 0,
        "the writer kept up at {rate:.0} requests/s"
    );
    assert_eq!(lines, 20_000);
    eprintln!("20,000 requests at concurrency 200: {rate:.0} requests/s with events on");
}

/// A sink that blocks every write until the test drops the sender.
struct GatedSink {
    gate: mpsc::Receiver<()>,
    inner: MemorySink,
}

impl Write for GatedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Returns at once (with an error) once the sender is gone: then writes pass.
        let _ = self.gate.recv();
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_queue_drops_and_counts_in_the_metric() {
    let (release, gate) = mpsc::channel();
    let sink = MemorySink::default();
    let log = EventLog::to_writer(
        GatedSink {
            gate,
            inner: sink.clone(),
        },
        4,
    )
    .unwrap();
    // Rebound after the log so that, if an assertion fails, unwinding drops it first and the
    // log's drop (which waits for the writer) does not wait on a sink that stays blocked.
    let release = release;
    let (stats, m) = with_recorder(|| async {
        let sim = Sim::start(SimConfig::instant()).await.unwrap();
        let client = client_with_log(&sim, &log);
        let started = Instant::now();
        for _ in 0..100 {
            client
                .generate(GenerateRequest::new(CHAT_MODEL, "hi"))
                .await
                .unwrap();
        }
        // Requests went on although the sink was blocked the whole time.
        assert!(started.elapsed() < Duration::from_secs(30));
        sim.shutdown().await;
        log.stats()
    });
    // The writer took at most one event plus a full queue before it blocked in the sink,
    // then the queue filled once more; everything else was dropped.
    assert!(stats.queued <= 1 + 4 + 4, "{stats:?}");
    assert_eq!(stats.queued + stats.dropped, 100);
    assert_eq!(m.counter(EVENTS_DROPPED_TOTAL, &[]), stats.dropped);
    drop(release);
    log.shutdown();
    assert_eq!(sink.events().len() as u64, stats.queued);
}
