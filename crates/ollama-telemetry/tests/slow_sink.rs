//! A slow event sink never slows requests: the same load runs with a fast and a slow sink in
//! one process and their throughputs are compared. It is its own test binary so no other
//! test competes for the two cores while it measures.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{self, Write};
use std::time::Duration;

use common::{client_with_log, hammer, instant_sim};
use ollama_telemetry::EventLog;

/// A disk that takes 1 ms per write call and accepts at most 64 bytes each time: about
/// 64 KB/s, a few hundred events per second.
struct SlowSink;

impl Write for SlowSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::thread::sleep(Duration::from_millis(1));
        Ok(buf.len().min(64))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_never_slows_requests() {
    const REQUESTS: usize = 3_000;
    let sim = instant_sim().await;
    let fast_log = EventLog::to_writer(io::sink(), 1024).unwrap();
    let slow_log = EventLog::to_writer(SlowSink, 256).unwrap();
    let fast = client_with_log(&sim, &fast_log);
    let slow = client_with_log(&sim, &slow_log);

    // Warm both (connections, allocations), then measure each twice, interleaved, and keep
    // the better run of each so one scheduling hiccup does not decide the ratio.
    hammer(&fast, 500, 50).await;
    hammer(&slow, 500, 50).await;
    let mut fast_rate: f64 = 0.0;
    let mut slow_rate: f64 = 0.0;
    for _ in 0..2 {
        fast_rate = fast_rate.max(hammer(&fast, REQUESTS, 50).await);
        slow_rate = slow_rate.max(hammer(&slow, REQUESTS, 50).await);
    }
    let slow_stats = slow_log.stats();
    eprintln!(
        "throughput with a fast sink {fast_rate:.0}/s, with a slow sink {slow_rate:.0}/s \
         (ratio {:.2}); slow sink dropped {} of {}",
        slow_rate / fast_rate,
        slow_stats.dropped,
        slow_stats.dropped + slow_stats.queued,
    );
    // The slow sink really was too slow for the load: its queue overflowed.
    assert!(slow_stats.dropped > 0);
    assert_eq!(fast_log.stats().dropped, 0);
    assert!(
        slow_rate >= 0.5 * fast_rate,
        "a slow sink slowed requests: {slow_rate:.0}/s against {fast_rate:.0}/s"
    );
    drop((fast, slow));
    sim.shutdown().await;
    // Dropping the last handle of the slow log waits for it to write its (small) queue.
    drop(slow_log);
}
