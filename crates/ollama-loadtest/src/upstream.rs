//! The only module that talks to the server. Every request of a run, the warm-up and the
//! environment probes go through instrumented clients (one per engine thread, plus one for
//! the probes) that share one JSONL event log and the process's metrics recorder, so a load
//! test also produces the service's metrics and events, and the engine stays independent
//! of the wire types.
//!
//! Timing invariant: `issue` takes its `sent` instant before handing the request to the
//! client, so client-side waits (request and connection slots) count as latency, and it
//! reads each chunk's `received_at` as stamped by the client when its bytes arrived, not
//! when this code got round to it.

use std::time::Instant;

use ollama_client::openai::{ChatCompletionChunk, ChatCompletionRequest, ChatMessage};
use ollama_client::{
    ChatRequest, Chunk, Client, EmbedRequest, Error, GenerateRequest, KeepAlive, Message, Options,
    ResponseSummary, ShowRequest,
};
use ollama_telemetry::{
    EventLog, EventsConfig, InstrumentedClient, InstrumentedStream, TelemetryConfig,
};

use crate::config::{ClientSettings, Endpoint, ModelOptions};
use crate::recorder::{Failure, ServerTimings, Success};
use crate::report::{Environment, HostInfo, LoadedModel, ModelInfo};

/// The client type every request goes through.
pub(crate) type Api = InstrumentedClient;

/// Why the server could not be used.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Client(Error),
    Telemetry(ollama_telemetry::TelemetryError),
}

/// The `client_type` of JSONL events written during a load test.
const EVENT_CLIENT_TYPE: &str = "loadtest";

/// Connection to the server under test plus the fixed parts of each request.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    api: Api,
    endpoint: Endpoint,
    stream: bool,
    options: Option<Options>,
    keep_alive: Option<KeepAlive>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
}

/// The result of one request.
pub(crate) struct Issued {
    pub(crate) sent: Instant,
    pub(crate) finished: Instant,
    pub(crate) outcome: Result<Success, Failure>,
}

fn failure(e: &Error) -> Failure {
    Failure {
        kind: e.kind().as_str().to_owned(),
        status: e.status().map(|s| s.as_u16()),
        message: e.to_string(),
        server_busy: e.is_server_busy(),
    }
}

/// `keep_alive` as Ollama reads it: a bare number is seconds (a numeric string such as
/// "-1" would be rejected by the server), anything else a Go duration string.
fn keep_alive(text: &str) -> KeepAlive {
    match text.trim().parse::<f64>() {
        Ok(secs) => KeepAlive::Seconds(secs),
        Err(_) => KeepAlive::Text(text.trim().to_owned()),
    }
}

impl Upstream {
    /// Builds the client and, unless `skip_verify`, checks the server answers; then opens
    /// the event log if `events` names a file (so an unreachable server is reported first).
    pub(crate) async fn connect(
        settings: &ClientSettings,
        endpoint: Endpoint,
        stream: bool,
        options: &ModelOptions,
        events: EventsConfig,
    ) -> Result<Self, ConnectError> {
        let mut builder = Client::builder()
            .max_connections(settings.max_connections)
            .max_keepalive_connections(settings.keepalive)
            .max_concurrent_requests(settings.concurrency)
            .timeout(settings.timeout)
            .health_check_timeout(settings.health_timeout)
            .verify_on_init(!settings.skip_verify)
            .user_agent(concat!("ollama-loadtest/", env!("CARGO_PKG_VERSION")));
        if let Some(url) = &settings.base_url {
            builder = builder.base_url(url.clone());
        }
        let client = builder.connect().await.map_err(ConnectError::Client)?;
        let telemetry = TelemetryConfig {
            events,
            client_type: EVENT_CLIENT_TYPE.to_owned(),
            ..TelemetryConfig::default()
        };
        let api = InstrumentedClient::new(client, telemetry).map_err(ConnectError::Telemetry)?;
        let mut opts = Options::new();
        if let Some(n) = options.num_predict {
            opts = opts.num_predict(n);
        }
        if let Some(t) = options.temperature {
            opts = opts.temperature(t);
        }
        if let Some(n) = options.num_ctx {
            opts = opts.num_ctx(n);
        }
        Ok(Self {
            api,
            endpoint,
            stream,
            options: (!opts.0.is_empty()).then_some(opts),
            keep_alive: options.keep_alive.as_deref().map(keep_alive),
            max_tokens: options.num_predict.and_then(|n| u64::try_from(n).ok()),
            temperature: options.temperature,
        })
    }

    /// The JSONL event log, when events are on.
    pub(crate) fn event_log(&self) -> Option<&EventLog> {
        self.api.event_log()
    }

    /// The resolved base URL.
    pub(crate) fn base_url(&self) -> String {
        self.api.config().base_url.clone()
    }

    /// Sends one request and measures it. Never fails: errors are part of the outcome.
    pub(crate) async fn issue(&self, model: &str, prompt: &str) -> Issued {
        let sent = Instant::now();
        let outcome = match (self.endpoint, self.stream) {
            (Endpoint::Generate, false) => self.generate(model, prompt).await,
            (Endpoint::Generate, true) => self.generate_stream(model, prompt).await,
            (Endpoint::Chat, false) => self.chat(model, prompt).await,
            (Endpoint::Chat, true) => self.chat_stream(model, prompt).await,
            (Endpoint::Embed, _) => self.embed(model, prompt).await,
            (Endpoint::OpenAiChat, false) => self.openai(model, prompt).await,
            (Endpoint::OpenAiChat, true) => self.openai_stream(model, prompt).await,
        };
        Issued {
            sent,
            finished: Instant::now(),
            outcome: outcome.map_err(|e| failure(&e)),
        }
    }

    fn generate_request(&self, model: &str, prompt: &str) -> GenerateRequest {
        let mut req = GenerateRequest::new(model, prompt);
        req.options.clone_from(&self.options);
        req.keep_alive.clone_from(&self.keep_alive);
        req
    }

    fn chat_request(&self, model: &str, prompt: &str) -> ChatRequest {
        let mut req = ChatRequest::new(model, vec![Message::user(prompt)]);
        req.options.clone_from(&self.options);
        req.keep_alive.clone_from(&self.keep_alive);
        req
    }

    fn openai_request(&self, model: &str, prompt: &str) -> ChatCompletionRequest {
        let mut req = ChatCompletionRequest::new(model, vec![ChatMessage::user(prompt)]);
        req.max_tokens = self.max_tokens;
        req.temperature = self.temperature;
        req
    }

    async fn generate(&self, model: &str, prompt: &str) -> Result<Success, Error> {
        let r = self
            .api
            .generate_summary(self.generate_request(model, prompt))
            .await?;
        Ok(native_success(r))
    }

    async fn chat(&self, model: &str, prompt: &str) -> Result<Success, Error> {
        let r = self
            .api
            .chat_summary(self.chat_request(model, prompt))
            .await?;
        Ok(native_success(r))
    }

    async fn embed(&self, model: &str, prompt: &str) -> Result<Success, Error> {
        let mut req = EmbedRequest::new(model, prompt);
        req.options.clone_from(&self.options);
        req.keep_alive.clone_from(&self.keep_alive);
        let r = self.api.embed(req).await?;
        Ok(Success {
            prompt_tokens: r.prompt_eval_count,
            server: ServerTimings {
                total: r.total_duration,
                load: r.load_duration,
                prompt_eval: None,
                eval: None,
            },
            ..Success::default()
        })
    }

    async fn openai(&self, model: &str, prompt: &str) -> Result<Success, Error> {
        let r = self
            .api
            .openai_chat(self.openai_request(model, prompt))
            .await?;
        Ok(Success {
            output_tokens: r.usage.map(|u| u.completion_tokens),
            prompt_tokens: r.usage.map(|u| u.prompt_tokens),
            done_reason: r.choices.first().and_then(|c| c.finish_reason.clone()),
            ..Success::default()
        })
    }

    async fn generate_stream(&self, model: &str, prompt: &str) -> Result<Success, Error> {
        let stream = self
            .api
            .generate_stream_summary(self.generate_request(model, prompt))
            .await?;
        drain(stream).await
    }

    async fn chat_stream(&self, model: &str, prompt: &str) -> Result<Success, Error> {
        let stream = self
            .api
            .chat_stream_summary(self.chat_request(model, prompt))
            .await?;
        drain(stream).await
    }

    async fn openai_stream(&self, model: &str, prompt: &str) -> Result<Success, Error> {
        let req = self.openai_request(model, prompt).include_usage(true);
        let mut stream = self.api.openai_chat_stream(req).await?;
        let mut s = Success {
            first_byte_at: Some(Instant::now()),
            ..Success::default()
        };
        let mut last_token: Option<Instant> = None;
        while let Some(chunk) = stream.next().await {
            let Chunk { item, received_at } = chunk?;
            let c: &ChatCompletionChunk = &item;
            let content = !c.content().is_empty();
            let reasoning = c
                .choices
                .first()
                .and_then(|ch| ch.delta.reasoning.as_deref())
                .is_some_and(|t| !t.is_empty());
            token_timing(
                &mut s,
                &mut last_token,
                received_at,
                content || reasoning,
                content,
            );
            if let Some(reason) = c.finish_reason() {
                s.done_reason = Some(reason.to_owned());
            }
            if let Some(u) = c.usage {
                s.output_tokens = Some(u.completion_tokens);
                s.prompt_tokens = Some(u.prompt_tokens);
            }
        }
        Ok(s)
    }

    /// Server version, model details and host facts; what cannot be read is listed in
    /// `probe_errors` instead of failing the run.
    pub(crate) async fn environment(&self, models: &[String]) -> Environment {
        let mut env = Environment {
            base_url: self.base_url(),
            client: serde_json::to_value(self.api.config()).unwrap_or_default(),
            host: host_info(),
            ..Environment::default()
        };
        match self.api.version().await {
            Ok(v) => env.server_version = Some(v),
            Err(e) => env.probe_errors.push(format!("/api/version: {e}")),
        }
        let tags = match self.api.list_models().await {
            Ok(t) => t.models,
            Err(e) => {
                env.probe_errors.push(format!("/api/tags: {e}"));
                Vec::new()
            }
        };
        for name in models {
            let mut info = ModelInfo {
                name: name.clone(),
                ..ModelInfo::default()
            };
            let tagged = format!("{name}:latest");
            if let Some(t) = tags
                .iter()
                .find(|t| t.name == *name || t.model == *name || t.name == tagged)
            {
                info.digest = Some(t.digest.clone());
                info.size = Some(t.size);
                info.details = serde_json::to_value(&t.details).unwrap_or_default();
            }
            if self.endpoint != Endpoint::OpenAiChat || !tags.is_empty() {
                match self.api.show(ShowRequest::new(name.clone())).await {
                    Ok(s) => {
                        info.capabilities = s.capabilities;
                        if info.details.is_null() {
                            info.details = serde_json::to_value(&s.details).unwrap_or_default();
                        }
                    }
                    Err(e) => env.probe_errors.push(format!("/api/show {name}: {e}")),
                }
            }
            env.models.push(info);
        }
        env
    }

    /// `/api/ps`: the models loaded now.
    pub(crate) async fn loaded_models(&self) -> Result<Vec<LoadedModel>, String> {
        let ps = self.api.ps().await.map_err(|e| format!("/api/ps: {e}"))?;
        Ok(ps
            .models
            .into_iter()
            .map(|m| LoadedModel {
                name: m.name,
                digest: Some(m.digest),
                size_vram: Some(m.size_vram),
                context_length: m.context_length,
                expires_at: Some(m.expires_at),
            })
            .collect())
    }
}

/// Copies what a native answer's final item tells into `s`: counts, server timings and the
/// done reason (moved out: the item is not read again).
fn take_final(s: &mut Success, r: ResponseSummary) {
    let m = r.metrics;
    s.output_tokens = m.eval_count;
    s.prompt_tokens = m.prompt_eval_count;
    s.server = ServerTimings {
        total: m.total_duration,
        load: m.load_duration,
        prompt_eval: m.prompt_eval_duration,
        eval: m.eval_duration,
    };
    s.done_reason = r.done_reason;
}

/// The outcome of a native answer that came whole.
fn native_success(r: ResponseSummary) -> Success {
    let mut s = Success::default();
    take_final(&mut s, r);
    s
}

/// Updates first-token, first-content and gap timing with one chunk.
fn token_timing(
    s: &mut Success,
    last: &mut Option<Instant>,
    at: Instant,
    token: bool,
    content: bool,
) {
    if token {
        if let Some(prev) = last.replace(at) {
            s.gaps.push(at.saturating_duration_since(prev));
        }
        s.first_token_at.get_or_insert(at);
    }
    if content {
        s.first_content_at.get_or_insert(at);
    }
}

/// Reads a native stream to its end. A chunk carries a token when it holds answer text or
/// thinking, and answer content when it holds answer text.
async fn drain(mut stream: InstrumentedStream<ResponseSummary>) -> Result<Success, Error> {
    let mut s = Success {
        first_byte_at: Some(Instant::now()),
        ..Success::default()
    };
    let mut last_token: Option<Instant> = None;
    while let Some(chunk) = stream.next().await {
        let Chunk { item, received_at } = chunk?;
        let content = item.text_bytes > 0;
        let token = content || item.thinking_bytes > 0;
        token_timing(&mut s, &mut last_token, received_at, token, content);
        if item.done {
            take_final(&mut s, item);
        }
    }
    Ok(s)
}

fn host_info() -> HostInfo {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok());
    HostInfo {
        hostname,
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    }
}
