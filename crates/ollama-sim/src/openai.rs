//! The OpenAI-compatible `/v1` layer: chat completions, legacy completions, embeddings
//! and the model list, with SSE framing (`data: <json>\n\n`, `data: [DONE]`).
//!
//! As in Ollama, `/v1` streams only with `"stream": true`, errors use the OpenAI envelope,
//! and the middleware's own 400s (bad JSON, empty `messages`) carry gin's charset.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::body::{ResetConnection, SimBody};
use crate::config::Capability;
use crate::engine::{Final, Format, Job, StreamFault};
use crate::models::LocalModel;
use crate::native::{self, ChatInput, GenInput, Opts, whole_with_fault};
use crate::router::Ctx;
use crate::textgen::Plan;
use crate::wire;

type Answer = Result<Response<SimBody>, ResetConnection>;

fn err(status: StatusCode, message: &str) -> Response<SimBody> {
    wire::openai_error(status, message, false)
}

/// A request body the `/v1` middleware could not bind: gin's error text as is.
fn decode_err(e: &wire::BodyError) -> Response<SimBody> {
    middleware_err(if e.empty { "EOF" } else { &e.message })
}

fn middleware_err(message: &str) -> Response<SimBody> {
    wire::openai_error(StatusCode::BAD_REQUEST, message, true)
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `rand.Intn(999)` in Ollama; here a cheap per-server sequence, also not unique.
fn short_id(ctx: &Ctx) -> u64 {
    ctx.shared.request_seq.fetch_add(1, Ordering::Relaxed) % 999
}

fn with_newline(mut v: Vec<u8>) -> Vec<u8> {
    v.push(b'\n');
    v
}

fn sse(v: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(v.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Streams `job` as SSE events. An `error` fault set for the first chunk answers a plain
/// 500 in OpenAI's error shape instead, before any event is sent.
async fn stream_sse(ctx: &Ctx, job: Job, format: impl Format) -> Answer {
    if let Some(StreamFault::Error(0, message)) = &ctx.fault {
        return Ok(err(StatusCode::INTERNAL_SERVER_ERROR, message));
    }
    job.stream(format, ctx.fault.clone(), ctx.conn.clone(), wire::SSE)
        .await
}

const DONE: &[u8] = b"data: [DONE]\n\n";

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Serialize, Clone, Copy)]
#[allow(clippy::struct_field_names)] // OpenAI's wire names
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl Usage {
    fn of(plan: &Plan) -> Self {
        let p = u64::from(plan.prompt_tokens);
        let c = u64::from(plan.generated());
        Usage {
            prompt_tokens: p,
            completion_tokens: c,
            total_tokens: p + c,
        }
    }
}

fn opts_from(max_tokens: Option<i64>, seed: Option<i64>, think: Option<bool>) -> Opts {
    Opts {
        num_predict: max_tokens,
        seed,
        think,
    }
}

#[allow(clippy::result_large_err)] // the error is the finished response, sent as is
fn find(ctx: &Ctx, name: &str) -> Result<Arc<LocalModel>, Response<SimBody>> {
    if name.trim().is_empty() {
        return Err(err(StatusCode::BAD_REQUEST, "model is required"));
    }
    ctx.shared
        .registry
        .find(name)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, &format!("model '{name}' not found")))
}

/// Extracts the text of an OpenAI message `content` (a string or an array of parts), with
/// `FromChatRequest`'s errors.
fn content_text(message: &OpenAiMessage) -> Result<String, String> {
    match &message.content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    Some("image_url") => {
                        let url = part
                            .get("image_url")
                            .and_then(|u| u.get("url").or(Some(u)))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        if !url.starts_with("data:") {
                            return Err("image URLs are not currently supported, please use base64 encoded data instead".into());
                        }
                    }
                    Some("input_audio") => {}
                    _ => return Err("invalid message format".into()),
                }
            }
            Ok(text)
        }
        other if message.tool_calls.is_null() => Err(format!(
            "invalid message content type: {}",
            match other {
                Value::Null => "<nil>",
                Value::Bool(_) => "bool",
                Value::Number(_) => "float64",
                _ => "map[string]interface {}",
            }
        )),
        _ => Ok(String::new()),
    }
}

// ---------------------------------------------------------------------------------------
// Chat completions.

#[derive(Deserialize)]
struct ChatCompletionRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<OpenAiMessage>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    seed: Option<i64>,
    tools: Option<Vec<Value>>,
    /// `none` turns thinking off; any effort level leaves it on.
    reasoning_effort: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiMessage {
    #[serde(default)]
    content: Value,
    /// Content may only be missing when the message carries tool calls.
    #[serde(default)]
    tool_calls: Value,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct ChatChunk<'a> {
    id: &'a str,
    object: &'a str,
    created: i64,
    model: &'a str,
    system_fingerprint: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

struct ChatSse {
    id: String,
    model: String,
    created: i64,
    first: bool,
    include_usage: bool,
}

impl ChatSse {
    fn chunk(&self, choices: Vec<ChunkChoice<'_>>, usage: Option<Usage>) -> Bytes {
        sse(&wire::to_json(&ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            system_fingerprint: "fp_ollama",
            choices,
            usage,
        }))
    }

    /// A chunk with the single choice 0 and no usage.
    fn choice(&self, delta: Delta<'_>, finish_reason: Option<&str>) -> Bytes {
        let choice = ChunkChoice {
            index: 0,
            delta,
            finish_reason,
        };
        self.chunk(vec![choice], None)
    }

    /// `assistant` on the first chunk of the stream, `None` after it.
    fn role(&mut self) -> Option<&'static str> {
        let role = self.first.then_some("assistant");
        self.first = false;
        role
    }
}

impl Format for ChatSse {
    fn thinking(&mut self, text: &str) -> Option<Bytes> {
        let delta = Delta {
            role: self.role(),
            content: None,
            reasoning: Some(text),
        };
        Some(self.choice(delta, None))
    }

    fn token(&mut self, text: &str) -> Bytes {
        let delta = Delta {
            role: self.role(),
            content: Some(text),
            reasoning: None,
        };
        self.choice(delta, None)
    }

    fn finish(&mut self, plan: &Plan, fin: &Final) -> Vec<Bytes> {
        let delta = Delta {
            role: self.first.then_some("assistant"),
            content: None,
            reasoning: None,
        };
        let mut out = vec![self.choice(delta, Some(fin.done_reason))];
        if self.include_usage {
            out.push(self.chunk(Vec::new(), Some(Usage::of(plan))));
        }
        out.push(Bytes::from_static(DONE));
        out
    }

    /// Ollama's ChatWriter turns a mid-stream error into an empty chunk and stops:
    /// no error text, no finish chunk, no `[DONE]`.
    fn error(&mut self, _message: &str) -> Bytes {
        let delta = Delta {
            role: None,
            content: None,
            reasoning: None,
        };
        self.choice(delta, None)
    }

    fn malformed(&mut self) -> Bytes {
        Bytes::from(format!("data: {{\"id\":\"{}\",\"object\":\n\n", self.id))
    }
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reasoning: &'a str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'a str,
    created: i64,
    model: &'a str,
    system_fingerprint: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
}

pub(crate) async fn chat(ctx: Ctx, body: &[u8]) -> Answer {
    let req: ChatCompletionRequest = match wire::decode_body(body, "ChatCompletionRequest") {
        Ok(r) => r,
        Err(e) => return Ok(decode_err(&e)),
    };
    if req.messages.is_empty() {
        return Ok(middleware_err("[] is too short - 'messages'"));
    }
    let mut texts = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        match content_text(m) {
            Ok(t) => texts.push(t),
            Err(e) => return Ok(middleware_err(&e)),
        }
    }
    let model = match find(&ctx, &req.model) {
        Ok(m) => m,
        Err(resp) => return Ok(resp),
    };
    if model.spec.is_embedding() || !model.spec.has(Capability::Completion) {
        return Ok(err(
            StatusCode::BAD_REQUEST,
            &format!("{:?} does not support chat", req.model),
        ));
    }
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) && !model.spec.has(Capability::Tools) {
        return Ok(err(
            StatusCode::BAD_REQUEST,
            &format!(
                "{} does not support tools",
                crate::models::full_name(&model.name)
            ),
        ));
    }
    let (prompt_tokens, hash) = native::chat_prompt_tokens(texts.iter().map(String::as_str));
    let input = ChatInput {
        model: &req.model,
        empty: false,
        prompt_tokens,
        hash,
        opts: opts_from(
            req.max_tokens.or(req.max_completion_tokens),
            req.seed,
            req.reasoning_effort.as_deref().map(|e| e != "none"),
        ),
        keep_alive: None,
    };
    let job = match native::chat_job(&ctx, &model, &input, true).await {
        Ok(job) => job,
        Err(resp) => return Ok(resp),
    };
    let id = format!("chatcmpl-{}", short_id(&ctx));
    let created = unix(SystemTime::now());
    if req.stream {
        let format = ChatSse {
            id,
            model: req.model.clone(),
            created,
            first: true,
            include_usage: req.stream_options.unwrap_or_default().include_usage,
        };
        return stream_sse(&ctx, job, format).await;
    }
    let plan = job.plan;
    let (thinking, text, fin) = job.run_whole().await;
    let body = with_newline(wire::to_json(&ChatCompletion {
        id: &id,
        object: "chat.completion",
        created,
        model: &req.model,
        system_fingerprint: "fp_ollama",
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: &text,
                reasoning: &thinking,
            },
            finish_reason: fin.done_reason,
        }],
        usage: Usage::of(&plan),
    }));
    whole_with_fault(&ctx, StatusCode::OK, wire::JSON, body, true).await
}

// ---------------------------------------------------------------------------------------
// Legacy completions.

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    prompt: Value,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<i64>,
    seed: Option<i64>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct CompletionChunk<'a> {
    id: &'a str,
    object: &'a str,
    created: i64,
    choices: Vec<TextChoice<'a>>,
    model: &'a str,
    system_fingerprint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

struct CompletionSse {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
}

impl CompletionSse {
    fn chunk(&self, choices: Vec<TextChoice<'_>>, usage: Option<Usage>) -> Bytes {
        sse(&wire::to_json(&CompletionChunk {
            id: &self.id,
            object: "text_completion",
            created: self.created,
            choices,
            model: &self.model,
            system_fingerprint: "fp_ollama",
            usage,
        }))
    }

    /// A chunk with the single choice 0.
    fn choice(&self, text: &str, finish_reason: Option<&str>, usage: Option<Usage>) -> Bytes {
        let choice = TextChoice {
            text,
            index: 0,
            finish_reason,
        };
        self.chunk(vec![choice], usage)
    }

    /// With `include_usage`, every chunk carries a zero usage object (Ollama quirk).
    fn zero_usage(&self) -> Option<Usage> {
        self.include_usage.then_some(Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
        })
    }
}

impl Format for CompletionSse {
    /// Legacy completions have no place for thinking text; only its tokens count.
    fn thinking(&mut self, _text: &str) -> Option<Bytes> {
        None
    }

    fn token(&mut self, text: &str) -> Bytes {
        self.choice(text, None, self.zero_usage())
    }

    fn finish(&mut self, plan: &Plan, fin: &Final) -> Vec<Bytes> {
        let mut out = vec![self.choice("", Some(fin.done_reason), self.zero_usage())];
        if self.include_usage {
            out.push(self.chunk(Vec::new(), Some(Usage::of(plan))));
        }
        out.push(Bytes::from_static(DONE));
        out
    }

    fn error(&mut self, _message: &str) -> Bytes {
        self.choice("", None, None)
    }

    fn malformed(&mut self) -> Bytes {
        Bytes::from(format!("data: {{\"id\":\"{}\",\"object\":\n\n", self.id))
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'a str,
    created: i64,
    model: &'a str,
    system_fingerprint: &'a str,
    choices: [TextChoice<'a>; 1],
    usage: Usage,
}

pub(crate) async fn completions(ctx: Ctx, body: &[u8]) -> Answer {
    let req: CompletionRequest = match wire::decode_body(body, "CompletionRequest") {
        Ok(r) => r,
        Err(e) => return Ok(decode_err(&e)),
    };
    let prompt = match &req.prompt {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        _ => {
            return Ok(middleware_err(
                "invalid type for 'prompt' field: only string is supported",
            ));
        }
    };
    let model = match find(&ctx, &req.model) {
        Ok(m) => m,
        Err(resp) => return Ok(resp),
    };
    if model.spec.is_embedding() || !model.spec.has(Capability::Completion) {
        return Ok(err(
            StatusCode::BAD_REQUEST,
            &format!("{:?} does not support generate", req.model),
        ));
    }
    let input = GenInput {
        model: &req.model,
        prompt: &prompt,
        opts: opts_from(req.max_tokens, req.seed, None),
        keep_alive: None,
    };
    let job = match native::generate_job(&ctx, &model, &input, true).await {
        Ok(job) => job,
        Err(resp) => return Ok(resp),
    };
    let id = format!("cmpl-{}", short_id(&ctx));
    let created = unix(SystemTime::now());
    if req.stream {
        let format = CompletionSse {
            id,
            model: req.model.clone(),
            created,
            include_usage: req.stream_options.unwrap_or_default().include_usage,
        };
        return stream_sse(&ctx, job, format).await;
    }
    let plan = job.plan;
    let (_thinking, text, fin) = job.run_whole().await;
    let body = with_newline(wire::to_json(&Completion {
        id: &id,
        object: "text_completion",
        created,
        model: &req.model,
        system_fingerprint: "fp_ollama",
        choices: [TextChoice {
            text: &text,
            index: 0,
            finish_reason: Some(fin.done_reason),
        }],
        usage: Usage::of(&plan),
    }));
    whole_with_fault(&ctx, StatusCode::OK, wire::JSON, body, true).await
}

// ---------------------------------------------------------------------------------------
// Embeddings.

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f64>),
    Base64(String),
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    embedding: Vector,
    index: usize,
}

#[derive(Serialize)]
struct EmbedUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct EmbedList<'a> {
    object: &'a str,
    data: Vec<Item>,
    model: &'a str,
    usage: EmbedUsage,
}

pub(crate) async fn embeddings(ctx: Ctx, body: &[u8]) -> Answer {
    #[derive(Deserialize)]
    struct EmbedRequest {
        #[serde(default)]
        model: String,
        #[serde(default)]
        input: Value,
        dimensions: Option<usize>,
        encoding_format: Option<String>,
    }
    let req: EmbedRequest = match wire::decode_body(body, "EmbedRequest") {
        Ok(r) => r,
        Err(e) => return Ok(decode_err(&e)),
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("" | "float") => false,
        Some("base64") => true,
        Some(other) => {
            return Ok(middleware_err(&format!(
                "Invalid value for 'encoding_format' = {other}. Supported values: ['float', 'base64']."
            )));
        }
    };
    let inputs: Vec<String> = match &req.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if !items.is_empty() => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    _ => return Ok(middleware_err("invalid input")),
                }
            }
            out
        }
        _ => return Ok(middleware_err("invalid input")),
    };
    if req.model.trim().is_empty() {
        return Ok(err(StatusCode::BAD_REQUEST, "model is required"));
    }
    let Some(model) = ctx.shared.registry.find(&req.model) else {
        return Ok(err(
            StatusCode::NOT_FOUND,
            &format!("model {:?} not found, try pulling it first", req.model),
        ));
    };
    let (vectors, metrics) =
        match native::embed_inputs(&ctx, &model, &inputs, None, req.dimensions, true, true).await {
            Ok(v) => v,
            Err(resp) => return Ok(resp),
        };
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| Item {
            object: "embedding",
            embedding: if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
                Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Vector::Floats(v)
            },
            index,
        })
        .collect();
    let body = with_newline(wire::to_json(&EmbedList {
        object: "list",
        data,
        model: &req.model,
        usage: EmbedUsage {
            prompt_tokens: metrics.prompt_eval_count,
            total_tokens: metrics.prompt_eval_count,
        },
    }));
    whole_with_fault(&ctx, StatusCode::OK, wire::JSON, body, true).await
}

// ---------------------------------------------------------------------------------------
// Models.

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'a str,
    created: i64,
    owned_by: &'a str,
}

fn owner(name: &str) -> &str {
    match name.rsplit_once('/') {
        Some((prefix, _)) => prefix.rsplit('/').next().unwrap_or("library"),
        None => "library",
    }
}

pub(crate) fn models(ctx: &Ctx) -> Response<SimBody> {
    #[derive(Serialize)]
    struct List<'a> {
        object: &'a str,
        /// `null` when there are no models, as Ollama's never-made Go slice.
        data: Option<Vec<ModelEntry<'a>>>,
    }
    let models = ctx.shared.registry.list();
    let data: Vec<ModelEntry<'_>> = models
        .iter()
        .map(|m| ModelEntry {
            id: &m.name,
            object: "model",
            created: unix(m.modified_at),
            owned_by: owner(&m.name),
        })
        .collect();
    let body = with_newline(wire::to_json(&List {
        object: "list",
        data: (!data.is_empty()).then_some(data),
    }));
    wire::response(StatusCode::OK, wire::JSON, SimBody::full(body))
}

pub(crate) fn model(ctx: &Ctx, path: &str) -> Response<SimBody> {
    let name = path.strip_prefix("/v1/models/").unwrap_or(path);
    let Some(m) = ctx.shared.registry.find(name) else {
        return err(StatusCode::NOT_FOUND, &format!("model '{name}' not found"));
    };
    let body = with_newline(wire::to_json(&ModelEntry {
        id: name,
        object: "model",
        created: unix(m.modified_at),
        owned_by: owner(&m.name),
    }));
    wire::response(StatusCode::OK, wire::JSON, SimBody::full(body))
}
