//! [`InstrumentedClient`]: the client's API, with telemetry on every call.
//!
//! Each method builds a [`RequestInfo`] from the request (model, prompt length, options),
//! starts a tracker, runs the client's call inside the tracker's span, and finishes the
//! tracker with the result. Streaming methods hand the tracker to an
//! [`InstrumentedStream`], which finishes it at the stream's end or drop.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use ollama_client::openai::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest};
use ollama_client::{
    ChatRequest, ChatResponse, Client, ClientStats, Config, EmbedInput, EmbedRequest,
    EmbedResponse, EmbeddingsRequest, EmbeddingsResponse, Error, GenerateRequest, GenerateResponse,
    ListResponse, Options, ProgressResponse, PsResponse, PullRequest, ResponseStream,
    ResponseSummary, ShowRequest, ShowResponse,
};
use serde_json::{Map, Value};
use tracing::{Instrument, Span};

use crate::config::TelemetryConfig;
use crate::error::TelemetryError;
use crate::event_log::EventLog;
use crate::record::{Recorder, RequestInfo, ServerReport, Tracker, done_reason};
use crate::series::Endpoint;
use crate::stream::{
    InstrumentedStream, Observer, native_report, observe_chat, observe_generate, observe_openai,
    observe_pull, observe_summary, summary_report,
};

/// An Ollama client that records metrics, a `tracing` span and one JSONL event for every
/// request. It has the methods of `ollama_client::Client`, with the same names, arguments
/// and results, except that streaming methods return an [`InstrumentedStream`] (the same
/// items, measured). Cheap to clone; clones share the client and the event log.
#[derive(Clone)]
pub struct InstrumentedClient {
    recorder: Arc<Recorder>,
}

impl std::fmt::Debug for InstrumentedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedClient")
            .field("client", self.recorder.client())
            .field("events", &self.recorder.events())
            .finish_non_exhaustive()
    }
}

/// What a call is, before the request is known.
#[derive(Clone, Copy)]
struct Operation {
    name: &'static str,
    endpoint: Endpoint,
    stream: bool,
}

const fn op(name: &'static str, endpoint: Endpoint, stream: bool) -> Operation {
    Operation {
        name,
        endpoint,
        stream,
    }
}

impl InstrumentedClient {
    /// Wraps `client`. Opens the event log when `config.events` names a file (creating its
    /// folder), which is the only way this can fail. Metric handles are resolved on each
    /// series' first use, against the `metrics` recorder installed at that time, so install
    /// the exporter (or your recorder) before the first request.
    pub fn new(client: Client, config: TelemetryConfig) -> Result<Self, TelemetryError> {
        Ok(Self {
            recorder: Arc::new(Recorder::new(client, config)?),
        })
    }

    /// The wrapped client (calls made through it are not recorded).
    pub fn inner(&self) -> &Client {
        self.recorder.client()
    }

    /// The event log, unless events are off. Use it to flush or shut down.
    pub fn event_log(&self) -> Option<&EventLog> {
        self.recorder.events()
    }

    /// The client's configuration.
    pub fn config(&self) -> &Config {
        self.recorder.client().config()
    }

    /// The client's pool and limit figures.
    pub fn stats(&self) -> ClientStats {
        self.recorder.client().stats()
    }

    /// `POST /api/generate` without streaming.
    pub async fn generate(&self, req: GenerateRequest) -> Result<GenerateResponse, Error> {
        let info = self.generate_info(&req, false);
        let client = self.inner();
        self.unary(info, client.generate(req), |r| {
            native_report(&r.metrics(), r.done_reason.as_deref())
        })
        .await
    }

    /// `POST /api/generate`, streamed.
    pub async fn generate_stream(
        &self,
        req: GenerateRequest,
    ) -> Result<InstrumentedStream<GenerateResponse>, Error> {
        let info = self.generate_info(&req, true);
        let client = self.inner();
        self.streamed(info, client.generate_stream(req), observe_generate)
            .await
    }

    /// `POST /api/chat` without streaming.
    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        let info = self.chat_info(&req, false);
        let client = self.inner();
        self.unary(info, client.chat(req), |r| {
            native_report(&r.metrics(), r.done_reason.as_deref())
        })
        .await
    }

    /// `POST /api/chat`, streamed.
    pub async fn chat_stream(
        &self,
        req: ChatRequest,
    ) -> Result<InstrumentedStream<ChatResponse>, Error> {
        let info = self.chat_info(&req, true);
        let client = self.inner();
        self.streamed(info, client.chat_stream(req), observe_chat)
            .await
    }

    /// `POST /api/generate` without streaming, measured instead of read (see
    /// `ollama_client::ResponseSummary`); recorded like [`generate`](Self::generate).
    pub async fn generate_summary(&self, req: GenerateRequest) -> Result<ResponseSummary, Error> {
        let info = self.generate_info(&req, false);
        let client = self.inner();
        self.unary(info, client.generate_summary(req), summary_report)
            .await
    }

    /// `POST /api/generate`, streamed, each chunk measured instead of read; recorded like
    /// [`generate_stream`](Self::generate_stream).
    pub async fn generate_stream_summary(
        &self,
        req: GenerateRequest,
    ) -> Result<InstrumentedStream<ResponseSummary>, Error> {
        let info = self.generate_info(&req, true);
        let client = self.inner();
        self.streamed(info, client.generate_stream_summary(req), observe_summary)
            .await
    }

    /// `POST /api/chat` without streaming, measured instead of read; recorded like
    /// [`chat`](Self::chat).
    pub async fn chat_summary(&self, req: ChatRequest) -> Result<ResponseSummary, Error> {
        let info = self.chat_info(&req, false);
        let client = self.inner();
        self.unary(info, client.chat_summary(req), summary_report)
            .await
    }

    /// `POST /api/chat`, streamed, each chunk measured instead of read; recorded like
    /// [`chat_stream`](Self::chat_stream).
    pub async fn chat_stream_summary(
        &self,
        req: ChatRequest,
    ) -> Result<InstrumentedStream<ResponseSummary>, Error> {
        let info = self.chat_info(&req, true);
        let client = self.inner();
        self.streamed(info, client.chat_stream_summary(req), observe_summary)
            .await
    }

    /// `POST /api/embed`.
    pub async fn embed(&self, req: EmbedRequest) -> Result<EmbedResponse, Error> {
        let mut info = self.info(
            op("embed", Endpoint::Embed, false),
            &req.model,
            None,
            req.options.as_ref(),
        );
        let texts: Vec<&str> = match &req.input {
            EmbedInput::One(s) => vec![s.as_str()],
            EmbedInput::Many(v) => v.iter().map(String::as_str).collect(),
        };
        self.set_prompt(&mut info, &texts);
        let client = self.inner();
        self.unary(info, client.embed(req), |r| {
            native_report(&r.metrics(), None)
        })
        .await
    }

    /// `POST /api/embeddings` (legacy).
    pub async fn embeddings(&self, req: EmbeddingsRequest) -> Result<EmbeddingsResponse, Error> {
        let info = self.info(
            op("embeddings", Endpoint::Embeddings, false),
            &req.model,
            Some(&req.prompt),
            req.options.as_ref(),
        );
        let client = self.inner();
        self.unary(info, client.embeddings(req), |_| ServerReport::default())
            .await
    }

    /// `GET /api/tags`.
    pub async fn list_models(&self) -> Result<ListResponse, Error> {
        let info = self.bare_info(op("list_models", Endpoint::Tags, false));
        self.unary(info, self.inner().list_models(), |_| {
            ServerReport::default()
        })
        .await
    }

    /// `GET /api/ps`.
    pub async fn ps(&self) -> Result<PsResponse, Error> {
        let info = self.bare_info(op("ps", Endpoint::Ps, false));
        self.unary(info, self.inner().ps(), |_| ServerReport::default())
            .await
    }

    /// `POST /api/show`.
    pub async fn show(&self, req: ShowRequest) -> Result<ShowResponse, Error> {
        let info = self.info(op("show", Endpoint::Show, false), &req.model, None, None);
        let client = self.inner();
        self.unary(info, client.show(req), |_| ServerReport::default())
            .await
    }

    /// `GET /api/version`.
    pub async fn version(&self) -> Result<String, Error> {
        let info = self.bare_info(op("version", Endpoint::Version, false));
        self.unary(info, self.inner().version(), |_| ServerReport::default())
            .await
    }

    /// `POST /api/pull`, streamed progress (recorded to its last item).
    pub async fn pull(
        &self,
        req: PullRequest,
    ) -> Result<InstrumentedStream<ProgressResponse>, Error> {
        let info = self.info(op("pull", Endpoint::Pull, true), &req.model, None, None);
        let client = self.inner();
        self.streamed(info, client.pull(req), observe_pull).await
    }

    /// `POST /api/copy`.
    pub async fn copy(&self, source: &str, destination: &str) -> Result<(), Error> {
        let info = self.info(op("copy", Endpoint::Copy, false), source, None, None);
        self.unary(info, self.inner().copy(source, destination), |()| {
            ServerReport::default()
        })
        .await
    }

    /// `DELETE /api/delete`.
    pub async fn delete(&self, model: &str) -> Result<(), Error> {
        let info = self.info(op("delete", Endpoint::Delete, false), model, None, None);
        self.unary(info, self.inner().delete(model), |()| {
            ServerReport::default()
        })
        .await
    }

    /// `HEAD /`.
    pub async fn health(&self) -> Result<(), Error> {
        let info = self.bare_info(op("health", Endpoint::Root, false));
        self.unary(info, self.inner().health(), |()| ServerReport::default())
            .await
    }

    /// `HEAD /` with the client's retries; recorded as one request.
    pub async fn verify(&self) -> Result<(), Error> {
        let info = self.bare_info(op("verify", Endpoint::Root, false));
        self.unary(info, self.inner().verify(), |()| ServerReport::default())
            .await
    }

    /// `POST /v1/chat/completions` without streaming.
    pub async fn openai_chat(&self, req: ChatCompletionRequest) -> Result<ChatCompletion, Error> {
        let info = self.openai_info(&req, false);
        let client = self.inner();
        self.unary(info, client.openai_chat(req), |r| ServerReport {
            prompt_eval_count: r.usage.as_ref().map(|u| u.prompt_tokens),
            eval_count: r.usage.as_ref().map(|u| u.completion_tokens),
            done_reason: r
                .choices
                .first()
                .and_then(|c| c.finish_reason.as_deref().map(done_reason)),
            ..ServerReport::default()
        })
        .await
    }

    /// `POST /v1/chat/completions`, streamed (SSE).
    pub async fn openai_chat_stream(
        &self,
        req: ChatCompletionRequest,
    ) -> Result<InstrumentedStream<ChatCompletionChunk>, Error> {
        let info = self.openai_info(&req, true);
        let client = self.inner();
        self.streamed(info, client.openai_chat_stream(req), observe_openai)
            .await
    }

    /// Records a call whose answer comes whole.
    ///
    /// The client's call future is large (its whole request state machine), and every
    /// layer of futures around it (the span, this function, the public method, the
    /// caller's task) would copy it when it moves into the next: about a dozen copies per
    /// request. Boxing it once here costs one allocation and makes every layer move a
    /// pointer instead.
    fn unary<R>(
        &self,
        info: RequestInfo,
        call: impl Future<Output = Result<R, Error>>,
        report: impl FnOnce(&R) -> ServerReport,
    ) -> impl Future<Output = Result<R, Error>> {
        let call = Box::pin(call);
        async move {
            let mut tracker = Tracker::start(&self.recorder, info);
            let result = in_span(tracker.span(), call).await;
            let end = Instant::now();
            match &result {
                Ok(response) => {
                    tracker.responded_ok();
                    tracker.report(report(response));
                    tracker.succeed(end);
                }
                Err(e) => tracker.fail(e, end),
            }
            result
        }
    }

    /// Records a streamed call: its head here, its items in the [`InstrumentedStream`].
    /// The call is boxed for the reason given on `unary`.
    fn streamed<T>(
        &self,
        info: RequestInfo,
        call: impl Future<Output = Result<ResponseStream<T>, Error>>,
        observe: Observer<T>,
    ) -> impl Future<Output = Result<InstrumentedStream<T>, Error>> {
        let call = Box::pin(call);
        async move {
            let mut tracker = Tracker::start(&self.recorder, info);
            match in_span(tracker.span(), call).await {
                Ok(stream) => {
                    tracker.responded_ok();
                    Ok(InstrumentedStream::new(stream, tracker, observe))
                }
                Err(e) => {
                    tracker.fail(&e, Instant::now());
                    Err(e)
                }
            }
        }
    }

    /// The model the request will use: its own, or the client's default when empty (as
    /// the client resolves it).
    fn model<'a>(&'a self, model: &'a str) -> Option<&'a str> {
        if model.is_empty() {
            self.config().default_model.as_deref()
        } else {
            Some(model)
        }
    }

    /// The request of an operation that names no model and sends no prompt.
    fn bare_info(&self, op: Operation) -> RequestInfo {
        self.model_info(op, None)
    }

    fn model_info(&self, op: Operation, model: Option<&str>) -> RequestInfo {
        let (series, model) = self.recorder.model(model);
        RequestInfo {
            operation: op.name,
            endpoint: op.endpoint,
            series,
            model,
            stream: op.stream,
            prompt_chars: None,
            prompt: None,
            options: None,
        }
    }

    fn info(
        &self,
        op: Operation,
        model: &str,
        prompt: Option<&str>,
        options: Option<&Options>,
    ) -> RequestInfo {
        let mut info = self.model_info(op, self.model(model));
        if let Some(prompt) = prompt {
            self.set_prompt(&mut info, &[prompt]);
        }
        // Options only go to events; skip the copy when there are none.
        if self.recorder.events().is_some() {
            info.options = options.map(|o| Value::Object(o.0.clone()));
        }
        info
    }

    fn generate_info(&self, req: &GenerateRequest, stream: bool) -> RequestInfo {
        self.info(
            op("generate", Endpoint::Generate, stream),
            &req.model,
            Some(&req.prompt),
            req.options.as_ref(),
        )
    }

    fn chat_info(&self, req: &ChatRequest, stream: bool) -> RequestInfo {
        let mut info = self.info(
            op("chat", Endpoint::Chat, stream),
            &req.model,
            None,
            req.options.as_ref(),
        );
        let texts: Vec<&str> = req.messages.iter().map(|m| m.content.as_str()).collect();
        self.set_prompt(&mut info, &texts);
        info
    }

    fn openai_info(&self, req: &ChatCompletionRequest, stream: bool) -> RequestInfo {
        let mut info = self.info(
            op("openai_chat", Endpoint::OpenAiChat, stream),
            &req.model,
            None,
            None,
        );
        let texts: Vec<&str> = req.messages.iter().filter_map(|m| m.text()).collect();
        self.set_prompt(&mut info, &texts);
        if self.recorder.events().is_some() {
            info.options = openai_options(req);
        }
        info
    }

    /// Records the prompt's length, and its text only when the caller opted in. Several
    /// texts (chat messages, embed inputs) are joined by newlines.
    fn set_prompt(&self, info: &mut RequestInfo, texts: &[&str]) {
        // Prompts are mostly ASCII, where characters are bytes: a word-at-a-time check
        // instead of counting UTF-8 sequence starts.
        let chars: usize = texts
            .iter()
            .map(|t| {
                if t.is_ascii() {
                    t.len()
                } else {
                    t.chars().count()
                }
            })
            .sum();
        info.prompt_chars = Some(chars as u64);
        if self.recorder.log_prompts() {
            info.prompt = Some(texts.join("\n"));
        }
    }
}

/// Runs `call` inside `span`, skipping the per-poll enter and exit when no subscriber wants
/// the span (the common case for a service without tracing).
async fn in_span<T>(span: &Span, call: impl Future<Output = T>) -> T {
    if span.is_disabled() {
        call.await
    } else {
        call.instrument(span.clone()).await
    }
}

/// The sampling parameters of an OpenAI request, under their OpenAI names, as `options`.
fn openai_options(req: &ChatCompletionRequest) -> Option<Value> {
    let mut map = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            map.insert(key.to_owned(), v);
        }
    };
    put("max_tokens", req.max_tokens.map(Value::from));
    put("temperature", req.temperature.map(Value::from));
    put("top_p", req.top_p.map(Value::from));
    put("seed", req.seed.map(Value::from));
    put("stop", req.stop.clone());
    put("frequency_penalty", req.frequency_penalty.map(Value::from));
    put("presence_penalty", req.presence_penalty.map(Value::from));
    (!map.is_empty()).then_some(Value::Object(map))
}
