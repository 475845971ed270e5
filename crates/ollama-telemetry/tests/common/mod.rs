//! Helpers shared by the integration tests: a sim, a client, a metrics snapshot with
//! label queries, and an in-memory event sink.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use ollama_client::{Client, GenerateRequest};
use ollama_sim::{ModelSpec, Sim, SimConfig, SimHandle};
use ollama_telemetry::{EventLog, EventsConfig, InstrumentedClient, RequestEvent, TelemetryConfig};

pub(crate) const CHAT_MODEL: &str = "llama3.2:latest";
pub(crate) const EMBED_MODEL: &str = "all-minilm:latest";

/// The default models, delays shrunk 100x so tests stay quick.
pub(crate) fn fast_config() -> SimConfig {
    SimConfig {
        time_scale: 0.01,
        models: vec![
            ModelSpec::chat(CHAT_MODEL),
            ModelSpec::embedding(EMBED_MODEL, 8),
        ],
        ..SimConfig::default()
    }
}

/// A sim with [`fast_config`].
pub(crate) async fn fast_sim() -> SimHandle {
    Sim::start(fast_config()).await.unwrap()
}

pub(crate) fn client_for(sim: &SimHandle) -> Client {
    Client::builder().base_url(sim.base_url()).build().unwrap()
}

/// An instrumented client whose events go to an in-memory sink.
pub(crate) fn instrumented(client: Client) -> (InstrumentedClient, MemorySink, EventLog) {
    let sink = MemorySink::default();
    let log = EventLog::to_writer(sink.clone(), 100_000).unwrap();
    let config = TelemetryConfig {
        events: EventsConfig::Log(log.clone()),
        ..TelemetryConfig::default()
    };
    (InstrumentedClient::new(client, config).unwrap(), sink, log)
}

/// Runs `f` on a current-thread runtime with a fresh local debugging recorder, so tests in
/// one binary never see each other's metrics; returns what `f` returned and what it recorded.
pub(crate) fn with_recorder<F, Fut, T>(f: F) -> (T, Recorded)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = metrics::with_local_recorder(&recorder, || runtime.block_on(f()));
    let series = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let mut labels: LabelSet = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    (out, Recorded(series))
}

/// Sorted `(key, value)` label pairs of one series.
type LabelSet = Vec<(String, String)>;

/// A snapshot of recorded metrics: (name, labels, value) per series.
pub(crate) struct Recorded(Vec<(String, LabelSet, DebugValue)>);

impl Recorded {
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let mut wanted: LabelSet = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        wanted.sort();
        self.0
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, v)| v)
    }

    /// The counter with exactly these labels; 0 when it was never touched.
    pub(crate) fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.find(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            Some(other) => panic!("{name} is not a counter: {other:?}"),
        }
    }

    /// The observations of the histogram with exactly these labels.
    pub(crate) fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.find(name, labels) {
            Some(DebugValue::Histogram(v)) => v.iter().map(|x| x.into_inner()).collect(),
            None => Vec::new(),
            Some(other) => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    /// Every label set recorded for `name`, for assertions on what was NOT recorded.
    pub(crate) fn label_sets(&self, name: &str) -> Vec<LabelSet> {
        self.0
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, _)| l.clone())
            .collect()
    }

    /// Sum of a counter over all its label sets.
    pub(crate) fn counter_total(&self, name: &str) -> u64 {
        self.0
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| match v {
                DebugValue::Counter(n) => *n,
                _ => 0,
            })
            .sum()
    }
}

/// Sends `total` generate requests from `concurrency` tasks; returns requests per second.
pub(crate) async fn hammer(client: &InstrumentedClient, total: usize, concurrency: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let client = client.clone();
        // Spread `total` over the workers; the first `total % concurrency` do one more.
        let count = total / concurrency + usize::from(worker < total % concurrency);
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                client
                    .generate(GenerateRequest::new(CHAT_MODEL, "hi"))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

pub(crate) async fn instant_sim() -> SimHandle {
    Sim::start(SimConfig::instant()).await.unwrap()
}

pub(crate) fn pooled_client(sim: &SimHandle) -> Client {
    Client::builder()
        .base_url(sim.base_url())
        .max_connections(200)
        .max_keepalive_connections(200)
        .build()
        .unwrap()
}

/// An instrumented client sending its events to `log`.
pub(crate) fn client_with_log(sim: &SimHandle, log: &EventLog) -> InstrumentedClient {
    let config = TelemetryConfig {
        events: EventsConfig::Log(log.clone()),
        ..TelemetryConfig::default()
    };
    InstrumentedClient::new(pooled_client(sim), config).unwrap()
}

/// A writer into shared memory, so a test can read the events back.
#[derive(Clone, Default)]
pub(crate) struct MemorySink(Arc<Mutex<Vec<u8>>>);

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MemorySink {
    /// Every line written so far, parsed (panics on a line that is not a valid event).
    pub(crate) fn events(&self) -> Vec<RequestEvent> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }

    /// Every line written so far as raw JSON values.
    pub(crate) fn values(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
