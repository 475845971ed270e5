//! Label values and the metric handles behind them.
//!
//! Every request records about a dozen series. Looking each up in the recorder's registry
//! (build a key, hash it, find it) costs more than the update itself, so the handles of each
//! (model, endpoint) pair are resolved once, on first use, and kept here. A handle stays
//! bound to the recorder that was installed when it was resolved: install the exporter (or
//! your own recorder) before the first request.
//!
//! Model names come from callers, unlike every other label value. A program that sends
//! arbitrary names (a typo loop, names taken from user input) would otherwise create an
//! unbounded number of series, so the first `max` distinct names keep their own value and
//! later ones share [`OVERFLOW_MODEL_LABEL`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use metrics::{Counter, Histogram, SharedString, counter, histogram};

use crate::catalog::{
    INTER_TOKEN_SECONDS, MODEL_LOAD_DURATION_SECONDS, QUEUE_WAIT_SECONDS, REQUEST_DURATION_SECONDS,
    REQUESTS_TOTAL, RESPONSES_TOTAL, TIME_TO_FIRST_TOKEN_SECONDS, TOKENS_PER_SECOND, TOKENS_TOTAL,
};
use crate::event::Outcome;

/// The `model` label value used once the distinct-model limit is reached.
pub const OVERFLOW_MODEL_LABEL: &str = "__other__";

/// The `model` label value for operations that name no model (`/api/tags`, `/api/version`).
const NO_MODEL_LABEL: &str = "";

/// The API paths the client calls: the values of the `endpoint` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Generate,
    Chat,
    Embed,
    Embeddings,
    Tags,
    Ps,
    Show,
    Version,
    Pull,
    Copy,
    Delete,
    Root,
    OpenAiChat,
}

impl Endpoint {
    const COUNT: usize = 13;

    pub(crate) fn path(self) -> &'static str {
        match self {
            Endpoint::Generate => "/api/generate",
            Endpoint::Chat => "/api/chat",
            Endpoint::Embed => "/api/embed",
            Endpoint::Embeddings => "/api/embeddings",
            Endpoint::Tags => "/api/tags",
            Endpoint::Ps => "/api/ps",
            Endpoint::Show => "/api/show",
            Endpoint::Version => "/api/version",
            Endpoint::Pull => "/api/pull",
            Endpoint::Copy => "/api/copy",
            Endpoint::Delete => "/api/delete",
            Endpoint::Root => "/",
            Endpoint::OpenAiChat => "/v1/chat/completions",
        }
    }
}

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Success => 0,
        Outcome::Error => 1,
        Outcome::Abandoned => 2,
    }
}

/// Handles of one (model, endpoint) pair; each resolved on first use, so series that are
/// never recorded (TTFT of a plain call) are never created.
#[derive(Default)]
struct EndpointSeries {
    requests: [OnceLock<Counter>; 3],
    durations: [OnceLock<Histogram>; 3],
    ok_responses: OnceLock<Counter>,
    ttft: OnceLock<Histogram>,
    inter_token: OnceLock<Histogram>,
}

/// One `model` label value with its model-level handles and its per-endpoint handles.
pub(crate) struct ModelSeries {
    label: SharedString,
    /// `label` escaped for a JSON string, once: events name the model by it.
    label_json: Box<str>,
    load: OnceLock<Histogram>,
    prompt_tokens: OnceLock<Counter>,
    completion_tokens: OnceLock<Counter>,
    tokens_per_second: OnceLock<Histogram>,
    queue_wait: OnceLock<Histogram>,
    endpoints: [EndpointSeries; Endpoint::COUNT],
}

impl ModelSeries {
    fn new(label: SharedString) -> Self {
        Self {
            label_json: crate::line::escaped(&label).into_boxed_str(),
            label,
            load: OnceLock::new(),
            prompt_tokens: OnceLock::new(),
            completion_tokens: OnceLock::new(),
            tokens_per_second: OnceLock::new(),
            queue_wait: OnceLock::new(),
            endpoints: Default::default(),
        }
    }

    /// The `model` label value.
    pub(crate) fn label(&self) -> &SharedString {
        &self.label
    }

    /// The `model` label value, escaped for a JSON string.
    pub(crate) fn label_json(&self) -> &str {
        &self.label_json
    }

    fn at(&self, endpoint: Endpoint) -> &EndpointSeries {
        &self.endpoints[endpoint as usize]
    }

    pub(crate) fn requests(&self, endpoint: Endpoint, outcome: Outcome) -> &Counter {
        self.at(endpoint).requests[outcome_index(outcome)].get_or_init(|| {
            counter!(REQUESTS_TOTAL, "endpoint" => endpoint.path(),
                "model" => self.label.clone(), "outcome" => outcome.as_str())
        })
    }

    pub(crate) fn duration(&self, endpoint: Endpoint, outcome: Outcome) -> &Histogram {
        self.at(endpoint).durations[outcome_index(outcome)].get_or_init(|| {
            histogram!(REQUEST_DURATION_SECONDS, "endpoint" => endpoint.path(),
                "model" => self.label.clone(), "outcome" => outcome.as_str())
        })
    }

    /// `responses_total` with status 200, the one every successful call records.
    pub(crate) fn ok_responses(&self, endpoint: Endpoint) -> &Counter {
        self.at(endpoint).ok_responses.get_or_init(|| {
            counter!(RESPONSES_TOTAL, "endpoint" => endpoint.path(),
                "model" => self.label.clone(), "status" => "200")
        })
    }

    pub(crate) fn ttft(&self, endpoint: Endpoint) -> &Histogram {
        self.at(endpoint).ttft.get_or_init(|| {
            histogram!(TIME_TO_FIRST_TOKEN_SECONDS, "endpoint" => endpoint.path(),
                "model" => self.label.clone())
        })
    }

    pub(crate) fn inter_token(&self, endpoint: Endpoint) -> &Histogram {
        self.at(endpoint).inter_token.get_or_init(|| {
            histogram!(INTER_TOKEN_SECONDS, "endpoint" => endpoint.path(),
                "model" => self.label.clone())
        })
    }

    pub(crate) fn load(&self) -> &Histogram {
        self.load
            .get_or_init(|| histogram!(MODEL_LOAD_DURATION_SECONDS, "model" => self.label.clone()))
    }

    pub(crate) fn prompt_tokens(&self) -> &Counter {
        self.prompt_tokens.get_or_init(
            || counter!(TOKENS_TOTAL, "model" => self.label.clone(), "kind" => "prompt"),
        )
    }

    pub(crate) fn completion_tokens(&self) -> &Counter {
        self.completion_tokens.get_or_init(
            || counter!(TOKENS_TOTAL, "model" => self.label.clone(), "kind" => "completion"),
        )
    }

    pub(crate) fn tokens_per_second(&self) -> &Histogram {
        self.tokens_per_second
            .get_or_init(|| histogram!(TOKENS_PER_SECOND, "model" => self.label.clone()))
    }

    pub(crate) fn queue_wait(&self) -> &Histogram {
        self.queue_wait
            .get_or_init(|| histogram!(QUEUE_WAIT_SECONDS, "model" => self.label.clone()))
    }
}

/// The bounded set of `model` label values and their series.
pub(crate) struct ModelRegistry {
    max: usize,
    /// Invariant: holds at most `max` entries.
    seen: RwLock<HashMap<Box<str>, Arc<ModelSeries>, BuildHasherDefault<Fnv>>>,
    overflow: Arc<ModelSeries>,
    none: Arc<ModelSeries>,
}

impl ModelRegistry {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            seen: RwLock::new(HashMap::default()),
            overflow: Arc::new(ModelSeries::new(SharedString::const_str(
                OVERFLOW_MODEL_LABEL,
            ))),
            none: Arc::new(ModelSeries::new(SharedString::const_str(NO_MODEL_LABEL))),
        }
    }

    /// The series of `model`: its own while the limit allows, else the overflow's.
    pub(crate) fn get(&self, model: Option<&str>) -> Arc<ModelSeries> {
        let Some(model) = model else {
            return Arc::clone(&self.none);
        };
        if let Some(series) = self
            .seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(model)
        {
            return Arc::clone(series);
        }
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(series) = seen.get(model) {
            return Arc::clone(series);
        }
        if seen.len() >= self.max {
            return Arc::clone(&self.overflow);
        }
        let series = Arc::new(ModelSeries::new(SharedString::from(Arc::<str>::from(
            model,
        ))));
        seen.insert(model.into(), Arc::clone(&series));
        series
    }
}

/// FNV-1a: every request looks its model name up here, and SipHash cost more than the
/// rest of the lookup. Its weakness, crafted collisions, does not matter for a map that
/// never holds more than `max` names (100 by default).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_beyond_the_limit_share_the_overflow_value() {
        let registry = ModelRegistry::new(2);
        let label = |m| registry.get(m).label().to_string();
        assert_eq!(label(Some("a")), "a");
        assert_eq!(label(Some("b")), "b");
        assert_eq!(label(Some("c")), OVERFLOW_MODEL_LABEL);
        // Names admitted before the limit keep their value.
        assert_eq!(label(Some("a")), "a");
        assert_eq!(label(None), NO_MODEL_LABEL);
    }

    #[test]
    fn every_endpoint_has_its_own_slot() {
        let all = [
            Endpoint::Generate,
            Endpoint::Chat,
            Endpoint::Embed,
            Endpoint::Embeddings,
            Endpoint::Tags,
            Endpoint::Ps,
            Endpoint::Show,
            Endpoint::Version,
            Endpoint::Pull,
            Endpoint::Copy,
            Endpoint::Delete,
            Endpoint::Root,
            Endpoint::OpenAiChat,
        ];
        assert_eq!(all.len(), Endpoint::COUNT);
        for (i, e) in all.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
    }
}
