//! Server-side counters that tests read to check what a client really did on the wire
//! (how many sockets it opened, how many requests overlapped).
//!
//! The counters are plain relaxed atomics: each is exact on its own, and a snapshot is a
//! best-effort read of all of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The routes the simulator knows. The `path` is also the fault `endpoint` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Endpoint {
    Root,
    Version,
    Tags,
    Ps,
    Show,
    Generate,
    Chat,
    Embed,
    Embeddings,
    Pull,
    Copy,
    Delete,
    OpenAiChat,
    OpenAiCompletions,
    OpenAiEmbeddings,
    OpenAiModels,
    OpenAiModel,
    /// A path the router does not know (404) or a wrong method (405).
    Unmatched,
}

impl Endpoint {
    pub(crate) const ALL: [Endpoint; 18] = [
        Endpoint::Root,
        Endpoint::Version,
        Endpoint::Tags,
        Endpoint::Ps,
        Endpoint::Show,
        Endpoint::Generate,
        Endpoint::Chat,
        Endpoint::Embed,
        Endpoint::Embeddings,
        Endpoint::Pull,
        Endpoint::Copy,
        Endpoint::Delete,
        Endpoint::OpenAiChat,
        Endpoint::OpenAiCompletions,
        Endpoint::OpenAiEmbeddings,
        Endpoint::OpenAiModels,
        Endpoint::OpenAiModel,
        Endpoint::Unmatched,
    ];

    /// The route path, as used in per-endpoint counts and fault rules.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Endpoint::Root => "/",
            Endpoint::Version => "/api/version",
            Endpoint::Tags => "/api/tags",
            Endpoint::Ps => "/api/ps",
            Endpoint::Show => "/api/show",
            Endpoint::Generate => "/api/generate",
            Endpoint::Chat => "/api/chat",
            Endpoint::Embed => "/api/embed",
            Endpoint::Embeddings => "/api/embeddings",
            Endpoint::Pull => "/api/pull",
            Endpoint::Copy => "/api/copy",
            Endpoint::Delete => "/api/delete",
            Endpoint::OpenAiChat => "/v1/chat/completions",
            Endpoint::OpenAiCompletions => "/v1/completions",
            Endpoint::OpenAiEmbeddings => "/v1/embeddings",
            Endpoint::OpenAiModels => "/v1/models",
            Endpoint::OpenAiModel => "/v1/models/:model",
            Endpoint::Unmatched => "unmatched",
        }
    }

    pub(crate) fn is_openai(self) -> bool {
        matches!(
            self,
            Endpoint::OpenAiChat
                | Endpoint::OpenAiCompletions
                | Endpoint::OpenAiEmbeddings
                | Endpoint::OpenAiModels
                | Endpoint::OpenAiModel
        )
    }
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests received (every method and path, including 404s).
    pub requests_seen: u64,
    /// Requests per route path (`/api/generate`, `/v1/chat/completions`, ...; wrong
    /// methods and unknown paths count under `unmatched`). Routes never hit are absent.
    pub requests_by_endpoint: BTreeMap<&'static str, u64>,
    /// TCP connections open right now.
    pub open_connections: u64,
    /// TCP connections accepted since start.
    pub connections_accepted: u64,
    /// Requests whose response is not finished yet (a stream counts until its last byte).
    pub in_flight_requests: u64,
    /// The highest `in_flight_requests` seen since start.
    pub max_in_flight_requests: u64,
    /// Requests waiting right now for a model load or a parallel slot (the server-side
    /// queue a load test builds up).
    pub waiting_requests: u64,
    /// Models loaded (cold loads performed) since start.
    pub model_loads: u64,
    /// Requests answered 503 because the scheduler queue was full (not injected faults).
    pub queue_rejections: u64,
    /// Faults injected since start.
    pub faults_injected: u64,
}

impl SimStats {
    /// Requests seen on one route path (0 if none).
    pub fn requests_to(&self, path: &str) -> u64 {
        self.requests_by_endpoint.get(path).copied().unwrap_or(0)
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) requests_seen: AtomicU64,
    by_endpoint: [AtomicU64; Endpoint::ALL.len()],
    pub(crate) open_connections: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    waiting: AtomicU64,
    pub(crate) model_loads: AtomicU64,
    pub(crate) queue_rejections: AtomicU64,
    pub(crate) faults_injected: AtomicU64,
}

impl Counters {
    pub(crate) fn request(&self, endpoint: Endpoint) {
        self.requests_seen.fetch_add(1, Ordering::Relaxed);
        self.by_endpoint[endpoint as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a request in flight; the guard ends it when dropped (with the response body).
    pub(crate) fn begin(self: &std::sync::Arc<Self>) -> InFlight {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub(crate) fn snapshot(&self) -> SimStats {
        let requests_by_endpoint = Endpoint::ALL
            .iter()
            .filter_map(|ep| {
                let n = self.by_endpoint[*ep as usize].load(Ordering::Relaxed);
                (n > 0).then_some((ep.path(), n))
            })
            .collect();
        SimStats {
            requests_seen: self.requests_seen.load(Ordering::Relaxed),
            requests_by_endpoint,
            open_connections: self.open_connections.load(Ordering::Relaxed),
            connections_accepted: self.connections_accepted.load(Ordering::Relaxed),
            in_flight_requests: self.in_flight.load(Ordering::Relaxed),
            max_in_flight_requests: self.max_in_flight.load(Ordering::Relaxed),
            waiting_requests: self.waiting.load(Ordering::Relaxed),
            model_loads: self.model_loads.load(Ordering::Relaxed),
            queue_rejections: self.queue_rejections.load(Ordering::Relaxed),
            faults_injected: self.faults_injected.load(Ordering::Relaxed),
        }
    }
}

/// One request waiting for a load or a slot; dropping it ends the wait.
pub(crate) struct Waiting<'a>(&'a Counters);

impl Counters {
    pub(crate) fn wait(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One in-flight request; dropping it ends the request in the counters.
pub(crate) struct InFlight(std::sync::Arc<Counters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
