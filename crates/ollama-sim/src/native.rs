//! The native `/api/*` handlers.
//!
//! Each handler validates in Ollama's order (decode, model name, lookup, special
//! load/unload requests, capabilities), then schedules, then answers. Everything that
//! fails before the first chunk keeps a real status code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::body::{ResetConnection, SimBody};
use crate::config::{Capability, KeepAlive};
use crate::engine::{Final, Format, Job, Metrics, RUNNER_ERROR, StreamFault};
use crate::models::{LocalModel, full_name};
use crate::router::{Ctx, reset};
use crate::sched::SchedError;
use crate::textgen::{self, Plan};
use crate::wire::{self, native_error};

type Answer = Result<Response<SimBody>, ResetConnection>;

fn bad(message: &str) -> Response<SimBody> {
    native_error(StatusCode::BAD_REQUEST, message)
}

fn json_ok(bytes: Vec<u8>) -> Response<SimBody> {
    wire::response(StatusCode::OK, wire::JSON_UTF8, SimBody::full(bytes))
}

/// One NDJSON line: `v` (a whole JSON value) and its closing newline.
fn ndjson(mut v: Vec<u8>) -> Bytes {
    v.push(b'\n');
    Bytes::from(v)
}

// ---------------------------------------------------------------------------------------
// Shared request pieces.

/// Parses a `keep_alive` value like `api.Duration.UnmarshalJSON`.
pub(crate) fn parse_keep_alive(value: Option<&Value>) -> Result<Option<KeepAlive>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let secs = n.as_f64().unwrap_or(0.0);
            Ok(Some(if secs < 0.0 {
                KeepAlive::Forever
            } else {
                KeepAlive::For(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
            }))
        }
        Some(Value::String(s)) => {
            wire::parse_go_duration(s).map(|n| Some(KeepAlive::from_signed_nanos(n)))
        }
        Some(other) => Err(format!(
            "Unsupported type: '{}'",
            match other {
                Value::Bool(_) => "bool",
                Value::Array(_) => "[]interface {}",
                _ => "map[string]interface {}",
            }
        )),
    }
}

/// The runner options a request carries; only the ones that change the simulation.
#[derive(Default, Clone, Copy)]
pub(crate) struct Opts {
    pub(crate) num_predict: Option<i64>,
    pub(crate) seed: Option<i64>,
    /// The request's `think`; `None` means the model's default (on if it can think).
    pub(crate) think: Option<bool>,
}

impl Opts {
    /// Whether this answer starts with thinking text.
    pub(crate) fn thinks(self, spec: &crate::config::ModelSpec) -> bool {
        spec.has(Capability::Thinking) && self.think != Some(false)
    }
}

const INT_OPTS: [&str; 13] = [
    "num_predict",
    "num_ctx",
    "seed",
    "top_k",
    "num_keep",
    "repeat_last_n",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
    "mirostat",
    "num_gqa",
    "low_vram",
];
const FLOAT_OPTS: [&str; 9] = [
    "temperature",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "mirostat_tau",
    "mirostat_eta",
];

/// Validates `options` like `api.Options.FromMap` (wrong types are a 500 in Ollama).
pub(crate) fn parse_options(
    options: Option<&serde_json::Map<String, Value>>,
) -> Result<Opts, String> {
    let mut opts = Opts::default();
    let Some(map) = options else {
        return Ok(opts);
    };
    for (key, value) in map {
        let k = key.as_str();
        if INT_OPTS.contains(&k) && k != "low_vram" {
            let Some(n) = value.as_f64() else {
                return Err(format!("option {k:?} must be of type integer"));
            };
            let n = n as i64;
            match k {
                "num_predict" => opts.num_predict = Some(n),
                "seed" => opts.seed = Some(n),
                _ => {}
            }
        } else if FLOAT_OPTS.contains(&k) {
            if !value.is_number() {
                return Err(format!("option {k:?} must be of type float32"));
            }
        } else if k == "stop" {
            let ok = value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string));
            if !ok {
                return Err(format!("option {k:?} must be of type array of strings"));
            }
        } else if matches!(k, "use_mmap" | "numa" | "penalize_newline" | "low_vram")
            && !value.is_boolean()
        {
            return Err(format!("option {k:?} must be of type boolean"));
        }
    }
    Ok(opts)
}

/// Checks `think`: `Ok(true)` when thinking was asked for.
fn parse_think(think: Option<&Value>) -> Result<Option<bool>, String> {
    match think {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if matches!(s.as_str(), "high" | "medium" | "low" | "max") => {
            Ok(Some(true))
        }
        Some(other) => Err(format!(
            "invalid think value: {other} (must be \"high\", \"medium\", \"low\", \"max\", true, or false)"
        )),
    }
}

/// The seed of one answer: global seed, model, input and the request's `seed` option.
fn answer_seed(ctx: &Ctx, model: &LocalModel, input_hash: u64, opts: Opts) -> u64 {
    let s = textgen::hash_bytes(ctx.shared.config.seed, model.name.as_bytes()) ^ input_hash;
    match opts.seed {
        Some(seed) => s ^ crate::fault::splitmix64(seed as u64),
        None => s,
    }
}

/// Schedules the model and takes a slot. `Err` is the response to send instead.
async fn schedule(
    ctx: &Ctx,
    model: &Arc<LocalModel>,
    keep_alive: Option<KeepAlive>,
    plan: Plan,
    openai: bool,
) -> Result<Job, Response<SimBody>> {
    let waiting = ctx.shared.counters.wait();
    let lease = match ctx.shared.sched.acquire(model, keep_alive).await {
        Ok(lease) => lease,
        Err(SchedError::QueueFull) => {
            return Err(if openai {
                wire::openai_error(StatusCode::SERVICE_UNAVAILABLE, wire::SERVER_BUSY, false)
            } else {
                native_error(StatusCode::SERVICE_UNAVAILABLE, wire::SERVER_BUSY)
            });
        }
    };
    let load_duration = ctx.start.elapsed();
    let Ok(permit) = lease.slot().await else {
        return Err(native_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            RUNNER_ERROR,
        ));
    };
    drop(waiting);
    Ok(Job {
        shared: ctx.shared.clone(),
        model: model.clone(),
        plan,
        start: ctx.start,
        load_duration,
        lease,
        permit,
    })
}

/// Applies a non-streamed fault to a finished body.
pub(crate) async fn whole_with_fault(
    ctx: &Ctx,
    status: StatusCode,
    content_type: &'static str,
    mut body: Vec<u8>,
    openai: bool,
) -> Answer {
    match &ctx.fault {
        None => {}
        Some(StreamFault::Reset(_)) => return Err(reset(&ctx.conn)),
        Some(StreamFault::Stall(_, d)) => {
            let d = ctx.shared.scaled(*d);
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
        }
        Some(StreamFault::Malformed(_)) => body.truncate(body.len() / 2),
        Some(StreamFault::Error(_, message)) => {
            return Ok(if openai {
                wire::openai_error(StatusCode::INTERNAL_SERVER_ERROR, message, false)
            } else {
                native_error(StatusCode::INTERNAL_SERVER_ERROR, message)
            });
        }
    }
    Ok(wire::response(status, content_type, SimBody::full(body)))
}

/// A stream fault that fires before the first chunk is a plain error response, as in
/// Ollama's `streamResponse` when the first item is an error.
fn first_item_error(fault: Option<&StreamFault>) -> Option<Response<SimBody>> {
    match fault {
        Some(StreamFault::Error(0, message)) => Some(wire::response(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::JSON,
            SimBody::full(wire::error_json(message)),
        )),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Simple routes.

pub(crate) fn version(ctx: &Ctx) -> Response<SimBody> {
    #[derive(Serialize)]
    struct V<'a> {
        version: &'a str,
    }
    json_ok(wire::to_json(&V {
        version: &ctx.shared.config.version,
    }))
}

#[derive(Serialize)]
struct Details<'a> {
    parent_model: &'a str,
    format: &'a str,
    family: &'a str,
    families: [&'a str; 1],
    parameter_size: &'a str,
    quantization_level: &'a str,
}

fn details(m: &LocalModel) -> Details<'_> {
    Details {
        parent_model: "",
        format: "gguf",
        family: &m.spec.family,
        families: [&m.spec.family],
        parameter_size: &m.spec.parameter_size,
        quantization_level: &m.spec.quantization,
    }
}

pub(crate) fn tags(ctx: &Ctx) -> Response<SimBody> {
    #[derive(Serialize)]
    struct Tag<'a> {
        name: &'a str,
        model: &'a str,
        modified_at: String,
        size: u64,
        digest: &'a str,
        details: Details<'a>,
    }
    #[derive(Serialize)]
    struct Tags<'a> {
        models: Vec<Tag<'a>>,
    }
    let models = ctx.shared.registry.list();
    let body = Tags {
        models: models
            .iter()
            .map(|m| Tag {
                name: &m.name,
                model: &m.name,
                modified_at: wire::local_time(m.modified_at),
                size: m.spec.size,
                digest: &m.digest,
                details: details(m),
            })
            .collect(),
    };
    json_ok(wire::to_json(&body))
}

pub(crate) fn ps(ctx: &Ctx) -> Response<SimBody> {
    #[derive(Serialize)]
    struct Running<'a> {
        name: &'a str,
        model: &'a str,
        size: u64,
        digest: &'a str,
        details: Details<'a>,
        expires_at: String,
        size_vram: u64,
        context_length: u32,
    }
    #[derive(Serialize)]
    struct Ps<'a> {
        models: Vec<Running<'a>>,
    }
    let entries = ctx.shared.sched.ps();
    let body = Ps {
        models: entries
            .iter()
            .map(|e| Running {
                name: &e.model.name,
                model: &e.model.name,
                size: e.model.spec.size,
                digest: &e.model.digest,
                details: details(&e.model),
                expires_at: wire::local_time(e.expires_at),
                size_vram: e.model.spec.size,
                context_length: e.model.spec.context_length,
            })
            .collect(),
    };
    json_ok(wire::to_json(&body))
}

#[derive(Deserialize)]
struct NameRequest {
    #[serde(default)]
    model: String,
    /// Deprecated alias that ollama-rs still sends.
    #[serde(default)]
    name: String,
}

impl NameRequest {
    fn model(&self) -> &str {
        if self.model.is_empty() {
            &self.name
        } else {
            &self.model
        }
    }
}

#[derive(Serialize)]
struct Show<'a> {
    license: &'a str,
    modelfile: String,
    parameters: &'a str,
    template: &'a str,
    details: Details<'a>,
    model_info: serde_json::Map<String, Value>,
    capabilities: Vec<&'a str>,
    modified_at: String,
}

pub(crate) fn show(ctx: &Ctx, body: &[u8]) -> Response<SimBody> {
    let req: NameRequest = match wire::decode_body(body, "ShowRequest") {
        Ok(r) => r,
        Err(e) => return bad(&e.message),
    };
    let name = req.model();
    if name.trim().is_empty() {
        return bad("model is required");
    }
    let Some(m) = ctx.shared.registry.find(name) else {
        return native_error(
            StatusCode::NOT_FOUND,
            &format!("model '{}' not found", crate::models::canonical_name(name)),
        );
    };
    let spec = &m.spec;
    let arch = spec.family.as_str();
    let mut info = serde_json::Map::new();
    info.insert("general.architecture".into(), Value::from(arch));
    info.insert(
        "general.basename".into(),
        Value::from(m.name.split(':').next().unwrap_or(&m.name)),
    );
    info.insert("general.file_type".into(), Value::from(15));
    info.insert(
        "general.parameter_count".into(),
        Value::from(spec.size.saturating_mul(2)),
    );
    info.insert("general.quantization_version".into(), Value::from(2));
    info.insert(
        format!("{arch}.context_length"),
        Value::from(spec.context_length),
    );
    info.insert(
        format!("{arch}.embedding_length"),
        Value::from(spec.embedding_dim.unwrap_or(3072)),
    );
    // serde_json's Map keeps keys sorted (no preserve_order feature), like Go maps.
    let caps: Vec<&str> = spec
        .effective_capabilities()
        .iter()
        .map(|c| c.as_str())
        .collect();
    let out = Show {
        license: "Simulated model; no license applies.",
        modelfile: format!(
            "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {}\n\nFROM /usr/share/ollama/.ollama/models/blobs/sha256-{}\nTEMPLATE \"{{{{ .Prompt }}}}\"\nPARAMETER stop <|eot_id|>\n",
            m.name, m.digest
        ),
        parameters: "stop                           \"<|eot_id|>\"",
        template: "{{ .Prompt }}",
        details: details(&m),
        model_info: info,
        capabilities: caps,
        modified_at: wire::local_time(m.modified_at),
    };
    json_ok(wire::to_json(&out))
}

pub(crate) fn delete(ctx: &Ctx, body: &[u8]) -> Response<SimBody> {
    let req: NameRequest = match wire::decode_body(body, "DeleteRequest") {
        Ok(r) => r,
        Err(e) => return bad(&e.message),
    };
    let name = req.model();
    if name.trim().is_empty() {
        return bad("model is required");
    }
    if let Some(m) = ctx.shared.registry.find(name) {
        ctx.shared.sched.unload(&m.name);
    }
    if ctx.shared.registry.delete(name) {
        wire::response(StatusCode::OK, wire::JSON_UTF8, SimBody::empty())
    } else {
        native_error(StatusCode::NOT_FOUND, &format!("model '{name}' not found"))
    }
}

pub(crate) fn copy(ctx: &Ctx, body: &[u8]) -> Response<SimBody> {
    #[derive(Deserialize)]
    struct CopyRequest {
        #[serde(default)]
        source: String,
        #[serde(default)]
        destination: String,
    }
    let req: CopyRequest = match wire::decode_body(body, "CopyRequest") {
        Ok(r) => r,
        Err(e) => return bad(&e.message),
    };
    if !valid_name(&req.source) {
        return bad(&format!("source {:?} is invalid", req.source));
    }
    if !valid_name(&req.destination) {
        return bad(&format!("destination {:?} is invalid", req.destination));
    }
    let Some(source) = ctx.shared.registry.find(&req.source) else {
        return native_error(
            StatusCode::NOT_FOUND,
            &format!("model {:?} not found", req.source),
        );
    };
    ctx.shared.registry.copy(&source, &req.destination);
    wire::response(StatusCode::OK, wire::JSON_UTF8, SimBody::empty())
}

/// A loose version of Ollama's name check: non-empty, no spaces, sane characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'))
}

// ---------------------------------------------------------------------------------------
// Pull.

pub(crate) async fn pull(ctx: Ctx, body: &[u8]) -> Answer {
    #[derive(Deserialize)]
    struct PullRequest {
        #[serde(default)]
        model: String,
        #[serde(default)]
        name: String,
        stream: Option<bool>,
    }
    #[derive(Serialize)]
    struct Progress<'a> {
        status: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        digest: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        completed: Option<u64>,
    }
    let req: PullRequest = match wire::decode_body(body, "PullRequest") {
        Ok(r) => r,
        Err(e) => return Ok(bad(&e.message)),
    };
    let name = if req.model.is_empty() {
        req.name
    } else {
        req.model
    };
    if !valid_name(&name) {
        return Ok(bad("invalid model name"));
    }
    let remote = ctx.shared.registry.remote(&name);
    let stream = req.stream.unwrap_or(true);
    if !stream {
        let Some(spec) = remote else {
            return Ok(native_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "pull model manifest: file does not exist",
            ));
        };
        tokio::time::sleep(ctx.shared.scaled(Duration::from_millis(300))).await;
        ctx.shared.registry.install(spec);
        return Ok(wire::response(
            StatusCode::OK,
            wire::JSON,
            SimBody::full(&b"{\"status\":\"success\"}"[..]),
        ));
    }
    let line = |p: &Progress<'_>| ndjson(wire::to_json(p));
    let mut lines = vec![line(&Progress {
        status: "pulling manifest",
        digest: None,
        total: None,
        completed: None,
    })];
    let registry_spec = remote;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let first = lines.remove(0);
    let shared = ctx.shared.clone();
    tokio::spawn(async move {
        use crate::body::Piece;
        let Some(spec) = registry_spec else {
            let e = ndjson(wire::error_json("pull model manifest: file does not exist"));
            let _ = tx.send(Piece::Data(e)).await;
            return;
        };
        let digest = crate::models::digest_of(&spec);
        let status = format!("pulling {}", &digest[..12.min(digest.len())]);
        let sha = format!("sha256:{digest}");
        let total = spec.size;
        let steps = 5u64;
        for step in 0..=steps {
            let p = line(&Progress {
                status: &status,
                digest: Some(&sha),
                total: Some(total),
                completed: Some(
                    u64::try_from(u128::from(total) * u128::from(step) / u128::from(steps))
                        .unwrap_or(total),
                ),
            });
            if tx.send(Piece::Data(p)).await.is_err() {
                return;
            }
            tokio::time::sleep(shared.scaled(Duration::from_millis(60))).await;
        }
        for status in ["verifying sha256 digest", "writing manifest", "success"] {
            if status == "success" {
                shared.registry.install(spec.clone());
            }
            let p = line(&Progress {
                status,
                digest: None,
                total: None,
                completed: None,
            });
            if tx.send(Piece::Data(p)).await.is_err() {
                return;
            }
        }
    });
    Ok(wire::response(
        StatusCode::OK,
        wire::NDJSON,
        SimBody::stream(first, rx, ctx.conn.clone()),
    ))
}

// ---------------------------------------------------------------------------------------
// Generate and chat.

#[derive(Deserialize)]
struct GenerateRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    suffix: String,
    #[serde(default)]
    system: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    context: Option<Vec<i64>>,
    stream: Option<bool>,
    #[serde(default)]
    raw: bool,
    keep_alive: Option<Value>,
    options: Option<serde_json::Map<String, Value>>,
    think: Option<Value>,
    top_logprobs: Option<i64>,
}

/// The parts of a generate request the `/v1/completions` layer also uses.
pub(crate) struct GenInput<'a> {
    pub(crate) model: &'a str,
    pub(crate) prompt: &'a str,
    pub(crate) opts: Opts,
    pub(crate) keep_alive: Option<KeepAlive>,
}

#[derive(Serialize)]
struct GenChunk<'a> {
    model: &'a str,
    created_at: &'a str,
    response: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    thinking: &'a str,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a [u32]>,
    #[serde(flatten)]
    metrics: Metrics,
}

fn gen_line(
    model: &str,
    response: &str,
    thinking: &str,
    done_reason: Option<&str>,
    context: Option<&[u32]>,
    metrics: Metrics,
) -> Vec<u8> {
    let created_at = wire::created_at_now();
    wire::to_json(&GenChunk {
        model,
        created_at: &created_at,
        response,
        thinking,
        done: done_reason.is_some(),
        done_reason,
        context,
        metrics,
    })
}

struct GenFormat {
    model: String,
    context: Option<u64>,
}

impl Format for GenFormat {
    fn token(&mut self, text: &str) -> Bytes {
        let line = gen_line(&self.model, text, "", None, None, Metrics::default());
        ndjson(line)
    }

    fn thinking(&mut self, text: &str) -> Option<Bytes> {
        let line = gen_line(&self.model, "", text, None, None, Metrics::default());
        Some(ndjson(line))
    }

    fn finish(&mut self, plan: &Plan, fin: &Final) -> Vec<Bytes> {
        let ctx = self.context.map(|h| plan.context(h));
        let line = gen_line(
            &self.model,
            "",
            "",
            Some(fin.done_reason),
            ctx.as_deref(),
            fin.metrics,
        );
        vec![ndjson(line)]
    }

    fn error(&mut self, message: &str) -> Bytes {
        ndjson(wire::error_json(message))
    }

    fn malformed(&mut self) -> Bytes {
        let mut v = b"{\"model\":".to_vec();
        wire::push_json_str(&mut v, &self.model);
        v.extend_from_slice(b",\"created_at\":\n");
        Bytes::from(v)
    }
}

/// Looks a model up, answering 404 with the generate/chat wording.
#[allow(clippy::result_large_err)] // the error is the finished response, sent as is
fn find_or_404(ctx: &Ctx, name: &str) -> Result<Arc<LocalModel>, Response<SimBody>> {
    ctx.shared
        .registry
        .find(name)
        .ok_or_else(|| native_error(StatusCode::NOT_FOUND, &format!("model '{name}' not found")))
}

pub(crate) async fn generate(ctx: Ctx, body: &[u8]) -> Answer {
    let req: GenerateRequest = match wire::decode_body(body, "GenerateRequest") {
        Ok(r) => r,
        Err(e) => return Ok(bad(&e.message)),
    };
    let keep_alive = match parse_keep_alive(req.keep_alive.as_ref()) {
        Ok(k) => k,
        Err(e) => return Ok(bad(&e)),
    };
    let model = match find_or_404(&ctx, &req.model) {
        Ok(m) => m,
        Err(resp) => return Ok(resp),
    };
    let created = || wire::created_at_now();
    if req.prompt.is_empty() && keep_alive == Some(KeepAlive::For(Duration::ZERO)) {
        ctx.shared.sched.unload(&model.name);
        return Ok(json_ok(gen_line_at(&req.model, &created(), "unload")));
    }
    if model.spec.is_embedding() || !model.spec.has(Capability::Completion) {
        return Ok(bad(&format!("{:?} does not support generate", req.model)));
    }
    if !req.suffix.is_empty() && !model.spec.has(Capability::Insert) {
        return Ok(bad(&format!(
            "{} does not support insert",
            full_name(&model.name)
        )));
    }
    let think = match parse_think(req.think.as_ref()) {
        Err(e) => return Ok(bad(&e)),
        Ok(Some(true)) if !model.spec.has(Capability::Thinking) => {
            return Ok(bad(&format!("{:?} does not support thinking", req.model)));
        }
        Ok(think) => think,
    };
    if req.raw && (!req.template.is_empty() || !req.system.is_empty() || req.context.is_some()) {
        return Ok(bad(
            "raw mode does not support template, system, or context",
        ));
    }
    if req.top_logprobs.is_some_and(|n| !(0..=20).contains(&n)) {
        return Ok(bad("top_logprobs must be between 0 and 20"));
    }
    let opts = match parse_options(req.options.as_ref()) {
        Ok(o) => Opts { think, ..o },
        Err(e) => return Ok(native_error(StatusCode::INTERNAL_SERVER_ERROR, &e)),
    };
    let input = GenInput {
        model: &req.model,
        prompt: &req.prompt,
        opts,
        keep_alive,
    };
    let extra_tokens = textgen::tokens_for(req.system.len() + req.suffix.len()) - 1
        + req
            .context
            .as_ref()
            .map_or(0, |c| u32::try_from(c.len()).unwrap_or(u32::MAX));
    run_generate(
        ctx,
        &model,
        &input,
        extra_tokens,
        req.stream.unwrap_or(true),
        !req.raw,
    )
    .await
}

fn gen_line_at(model: &str, created_at: &str, reason: &str) -> Vec<u8> {
    wire::to_json(&GenChunk {
        model,
        created_at,
        response: "",
        thinking: "",
        done: true,
        done_reason: Some(reason),
        context: None,
        metrics: Metrics::default(),
    })
}

async fn run_generate(
    ctx: Ctx,
    model: &Arc<LocalModel>,
    input: &GenInput<'_>,
    extra_tokens: u32,
    stream: bool,
    with_context: bool,
) -> Answer {
    let prompt_hash = textgen::hash_bytes(0, input.prompt.as_bytes());
    let seed = answer_seed(&ctx, model, prompt_hash, input.opts);
    let prompt_tokens = textgen::tokens_for(input.prompt.len()).saturating_add(extra_tokens);
    let plan = Plan::new(
        &model.spec,
        seed,
        prompt_tokens,
        input.opts.num_predict,
        input.opts.thinks(&model.spec),
    );
    let job = match schedule(&ctx, model, input.keep_alive, plan, false).await {
        Ok(job) => job,
        Err(resp) => return Ok(resp),
    };
    if input.prompt.is_empty() {
        // A load request: the model is loaded now; answer without generating.
        drop(job);
        return Ok(json_ok(gen_line_at(
            input.model,
            &wire::created_at_now(),
            "load",
        )));
    }
    let context = with_context.then_some(prompt_hash);
    if stream {
        if let Some(resp) = first_item_error(ctx.fault.as_ref()) {
            return Ok(resp);
        }
        let format = GenFormat {
            model: input.model.to_owned(),
            context,
        };
        return job
            .stream(format, ctx.fault.clone(), ctx.conn.clone(), wire::NDJSON)
            .await;
    }
    let (thinking, text, fin) = job.run_whole().await;
    let ctx_ids = context.map(|h| plan.context(h));
    let body = gen_line(
        input.model,
        &text,
        &thinking,
        Some(fin.done_reason),
        ctx_ids.as_deref(),
        fin.metrics,
    );
    whole_with_fault(&ctx, StatusCode::OK, wire::JSON_UTF8, body, false).await
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<ChatMessage>,
    stream: Option<bool>,
    keep_alive: Option<Value>,
    options: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    think: Option<Value>,
    top_logprobs: Option<i64>,
}

#[derive(Serialize)]
struct ChatMsgOut<'a> {
    role: &'a str,
    content: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    thinking: &'a str,
}

#[derive(Serialize)]
struct ChatChunk<'a> {
    model: &'a str,
    created_at: &'a str,
    message: ChatMsgOut<'a>,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'a str>,
    #[serde(flatten)]
    metrics: Metrics,
}

fn chat_line(
    model: &str,
    content: &str,
    thinking: &str,
    done_reason: Option<&str>,
    metrics: Metrics,
) -> Vec<u8> {
    let created_at = wire::created_at_now();
    wire::to_json(&ChatChunk {
        model,
        created_at: &created_at,
        message: ChatMsgOut {
            role: "assistant",
            content,
            thinking,
        },
        done: done_reason.is_some(),
        done_reason,
        metrics,
    })
}

struct ChatFormat {
    model: String,
}

impl Format for ChatFormat {
    fn token(&mut self, text: &str) -> Bytes {
        let line = chat_line(&self.model, text, "", None, Metrics::default());
        ndjson(line)
    }

    fn thinking(&mut self, text: &str) -> Option<Bytes> {
        let line = chat_line(&self.model, "", text, None, Metrics::default());
        Some(ndjson(line))
    }

    fn finish(&mut self, _plan: &Plan, fin: &Final) -> Vec<Bytes> {
        let line = chat_line(&self.model, "", "", Some(fin.done_reason), fin.metrics);
        vec![ndjson(line)]
    }

    fn error(&mut self, message: &str) -> Bytes {
        ndjson(wire::error_json(message))
    }

    fn malformed(&mut self) -> Bytes {
        let mut v = b"{\"model\":".to_vec();
        wire::push_json_str(&mut v, &self.model);
        v.extend_from_slice(b",\"message\":{\"role\":\n");
        Bytes::from(v)
    }
}

/// Prompt tokens of a conversation: each message's text plus a few template tokens.
pub(crate) fn chat_prompt_tokens<'a>(contents: impl Iterator<Item = &'a str>) -> (u32, u64) {
    let mut tokens = 0u32;
    let mut hash = 0u64;
    for c in contents {
        tokens = tokens.saturating_add(textgen::tokens_for(c.len()) + 4);
        hash = textgen::hash_bytes(hash, c.as_bytes());
    }
    (tokens.max(1), hash)
}

pub(crate) async fn chat(ctx: Ctx, body: &[u8]) -> Answer {
    let req: ChatRequest = match wire::decode_body(body, "ChatRequest") {
        Ok(r) => r,
        Err(e) => return Ok(bad(&e.message)),
    };
    if req.model.trim().is_empty() {
        return Ok(bad("model is required"));
    }
    let keep_alive = match parse_keep_alive(req.keep_alive.as_ref()) {
        Ok(k) => k,
        Err(e) => return Ok(bad(&e)),
    };
    let model = match find_or_404(&ctx, &req.model) {
        Ok(m) => m,
        Err(resp) => return Ok(resp),
    };
    if req.messages.is_empty() && keep_alive == Some(KeepAlive::For(Duration::ZERO)) {
        ctx.shared.sched.unload(&model.name);
        return Ok(json_ok(chat_done(&req.model, "unload")));
    }
    if model.spec.is_embedding() || !model.spec.has(Capability::Completion) {
        return Ok(bad(&format!("{:?} does not support chat", req.model)));
    }
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) && !model.spec.has(Capability::Tools) {
        return Ok(bad(&format!(
            "{} does not support tools",
            full_name(&model.name)
        )));
    }
    let think = match parse_think(req.think.as_ref()) {
        Err(e) => return Ok(bad(&e)),
        Ok(Some(true)) if !model.spec.has(Capability::Thinking) => {
            return Ok(bad(&format!("{:?} does not support thinking", req.model)));
        }
        Ok(think) => think,
    };
    if req.top_logprobs.is_some_and(|n| !(0..=20).contains(&n)) {
        return Ok(bad("top_logprobs must be between 0 and 20"));
    }
    let opts = match parse_options(req.options.as_ref()) {
        Ok(o) => Opts { think, ..o },
        Err(e) => return Ok(native_error(StatusCode::INTERNAL_SERVER_ERROR, &e)),
    };
    let (prompt_tokens, hash) = chat_prompt_tokens(req.messages.iter().map(|m| m.content.as_str()));
    let input = ChatInput {
        model: &req.model,
        empty: req.messages.is_empty(),
        prompt_tokens,
        hash,
        opts,
        keep_alive,
    };
    run_chat(ctx, &model, &input, req.stream.unwrap_or(true)).await
}

fn chat_done(model: &str, reason: &str) -> Vec<u8> {
    chat_line(model, "", "", Some(reason), Metrics::default())
}

/// The parts of a chat request the engine needs (shared with `/v1/chat/completions`).
pub(crate) struct ChatInput<'a> {
    pub(crate) model: &'a str,
    pub(crate) empty: bool,
    pub(crate) prompt_tokens: u32,
    pub(crate) hash: u64,
    pub(crate) opts: Opts,
    pub(crate) keep_alive: Option<KeepAlive>,
}

/// Schedules and plans a chat answer; `Err` is the response to send instead.
pub(crate) async fn chat_job(
    ctx: &Ctx,
    model: &Arc<LocalModel>,
    input: &ChatInput<'_>,
    openai: bool,
) -> Result<Job, Response<SimBody>> {
    let seed = answer_seed(ctx, model, input.hash, input.opts);
    let plan = Plan::new(
        &model.spec,
        seed,
        input.prompt_tokens,
        input.opts.num_predict,
        input.opts.thinks(&model.spec),
    );
    schedule(ctx, model, input.keep_alive, plan, openai).await
}

/// Schedules and plans a completion answer for `/v1/completions`.
pub(crate) async fn generate_job(
    ctx: &Ctx,
    model: &Arc<LocalModel>,
    input: &GenInput<'_>,
    openai: bool,
) -> Result<Job, Response<SimBody>> {
    let prompt_hash = textgen::hash_bytes(0, input.prompt.as_bytes());
    let seed = answer_seed(ctx, model, prompt_hash, input.opts);
    let prompt_tokens = textgen::tokens_for(input.prompt.len());
    let plan = Plan::new(
        &model.spec,
        seed,
        prompt_tokens,
        input.opts.num_predict,
        input.opts.thinks(&model.spec),
    );
    schedule(ctx, model, input.keep_alive, plan, openai).await
}

async fn run_chat(
    ctx: Ctx,
    model: &Arc<LocalModel>,
    input: &ChatInput<'_>,
    stream: bool,
) -> Answer {
    let job = match chat_job(&ctx, model, input, false).await {
        Ok(job) => job,
        Err(resp) => return Ok(resp),
    };
    if input.empty {
        drop(job);
        return Ok(json_ok(chat_done(input.model, "load")));
    }
    if stream {
        if let Some(resp) = first_item_error(ctx.fault.as_ref()) {
            return Ok(resp);
        }
        let format = ChatFormat {
            model: input.model.to_owned(),
        };
        return job
            .stream(format, ctx.fault.clone(), ctx.conn.clone(), wire::NDJSON)
            .await;
    }
    let (thinking, text, fin) = job.run_whole().await;
    let body = chat_line(
        input.model,
        &text,
        &thinking,
        Some(fin.done_reason),
        fin.metrics,
    );
    whole_with_fault(&ctx, StatusCode::OK, wire::JSON_UTF8, body, false).await
}

// ---------------------------------------------------------------------------------------
// Embeddings.

#[derive(Deserialize)]
struct EmbedRequest {
    #[serde(default)]
    model: String,
    input: Option<Value>,
    #[serde(default)]
    truncate: Option<bool>,
    dimensions: Option<usize>,
    keep_alive: Option<Value>,
    options: Option<serde_json::Map<String, Value>>,
}

/// Computes embeddings for `inputs` on a scheduled runner: holds a slot for the
/// simulated prompt-evaluation time. Returns vectors and metrics.
pub(crate) async fn embed_inputs(
    ctx: &Ctx,
    model: &Arc<LocalModel>,
    inputs: &[String],
    keep_alive: Option<KeepAlive>,
    dimensions: Option<usize>,
    normalize: bool,
    openai: bool,
) -> Result<(Vec<Vec<f64>>, Metrics), Response<SimBody>> {
    let tokens: u32 = inputs
        .iter()
        .map(|s| textgen::tokens_for(s.len()))
        .fold(0u32, u32::saturating_add);
    let plan = Plan::new(&model.spec, 0, tokens.max(1), Some(0), false);
    let job = schedule(ctx, model, keep_alive, plan, openai).await?;
    let t0 = Instant::now();
    let d = ctx.shared.scaled(plan.prompt_eval_time(&model.spec));
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
    let prompt_eval = t0.elapsed();
    let dim = model.spec.embedding_dim.unwrap_or(768);
    let dim = dimensions.filter(|d| *d > 0 && *d < dim).unwrap_or(dim);
    let vectors = inputs
        .iter()
        .map(|s| textgen::embedding(ctx.shared.config.seed, &model.name, s, dim, normalize))
        .collect();
    let metrics = Metrics {
        total_duration: crate::engine::nanos(job.start.elapsed()),
        load_duration: crate::engine::nanos(job.load_duration),
        prompt_eval_count: u64::from(tokens),
        prompt_eval_duration: crate::engine::nanos(prompt_eval),
        eval_count: 0,
        eval_duration: 0,
    };
    drop(job);
    Ok((vectors, metrics))
}

#[allow(clippy::result_large_err)] // the error is the finished response, sent as is
fn find_embed_model(ctx: &Ctx, name: &str) -> Result<Arc<LocalModel>, Response<SimBody>> {
    if name.is_empty() {
        return Err(native_error(StatusCode::NOT_FOUND, "model '' not found"));
    }
    ctx.shared.registry.find(name).ok_or_else(|| {
        native_error(
            StatusCode::NOT_FOUND,
            &format!("model {name:?} not found, try pulling it first"),
        )
    })
}

#[derive(Serialize)]
struct EmbedResponse<'a> {
    model: &'a str,
    embeddings: Vec<Vec<f64>>,
    #[serde(flatten)]
    metrics: Metrics,
}

pub(crate) async fn embed(ctx: Ctx, body: &[u8]) -> Answer {
    let req: EmbedRequest = match wire::decode_body(body, "EmbedRequest") {
        Ok(r) => r,
        Err(e) => return Ok(bad(&e.message)),
    };
    let keep_alive = match parse_keep_alive(req.keep_alive.as_ref()) {
        Ok(k) => k,
        Err(e) => return Ok(bad(&e)),
    };
    let model = match find_embed_model(&ctx, &req.model) {
        Ok(m) => m,
        Err(resp) => return Ok(resp),
    };
    let inputs: Vec<String> = match &req.input {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    _ => return Ok(bad("invalid input type")),
                }
            }
            out
        }
        Some(_) => return Ok(bad("invalid input type")),
    };
    if let Err(e) = parse_options(req.options.as_ref()) {
        return Ok(native_error(StatusCode::INTERNAL_SERVER_ERROR, &e));
    }
    if req.truncate == Some(false)
        && inputs
            .iter()
            .any(|s| textgen::tokens_for(s.len()) > model.spec.context_length)
    {
        return Ok(bad("the input length exceeds the context length"));
    }
    let (embeddings, metrics) = match embed_inputs(
        &ctx,
        &model,
        &inputs,
        keep_alive,
        req.dimensions,
        true,
        false,
    )
    .await
    {
        Ok(v) => v,
        Err(resp) => return Ok(resp),
    };
    let metrics = if inputs.is_empty() {
        Metrics::default()
    } else {
        metrics
    };
    let body = wire::to_json(&EmbedResponse {
        model: &req.model,
        embeddings,
        // Ollama's EmbedResponse has only these three metrics.
        metrics: Metrics {
            total_duration: metrics.total_duration,
            load_duration: metrics.load_duration,
            prompt_eval_count: metrics.prompt_eval_count,
            ..Metrics::default()
        },
    });
    whole_with_fault(&ctx, StatusCode::OK, wire::JSON_UTF8, body, false).await
}

#[derive(Serialize)]
struct EmbeddingResponse {
    embedding: Vec<f64>,
}

pub(crate) async fn embeddings(ctx: Ctx, body: &[u8]) -> Answer {
    #[derive(Deserialize)]
    struct EmbeddingsRequest {
        #[serde(default)]
        model: String,
        #[serde(default)]
        prompt: String,
        keep_alive: Option<Value>,
        options: Option<serde_json::Map<String, Value>>,
    }
    let req: EmbeddingsRequest = match wire::decode_body(body, "EmbeddingRequest") {
        Ok(r) => r,
        Err(e) => return Ok(bad(&e.message)),
    };
    if req.model.trim().is_empty() {
        return Ok(bad("model is required"));
    }
    let keep_alive = match parse_keep_alive(req.keep_alive.as_ref()) {
        Ok(k) => k,
        Err(e) => return Ok(bad(&e)),
    };
    let model = match find_embed_model(&ctx, &req.model) {
        Ok(m) => m,
        Err(resp) => return Ok(resp),
    };
    if let Err(e) = parse_options(req.options.as_ref()) {
        return Ok(native_error(StatusCode::INTERNAL_SERVER_ERROR, &e));
    }
    let inputs: Vec<String> = if req.prompt.is_empty() {
        Vec::new()
    } else {
        vec![req.prompt]
    };
    let (mut vectors, _) =
        match embed_inputs(&ctx, &model, &inputs, keep_alive, None, false, false).await {
            Ok(v) => v,
            Err(resp) => return Ok(resp),
        };
    let body = wire::to_json(&EmbeddingResponse {
        embedding: vectors.pop().unwrap_or_default(),
    });
    whole_with_fault(&ctx, StatusCode::OK, wire::JSON_UTF8, body, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_values_parse_like_ollama() {
        let p = |v: Value| parse_keep_alive(Some(&v));
        assert_eq!(p(Value::from(0)), Ok(Some(KeepAlive::For(Duration::ZERO))));
        assert_eq!(p(Value::from(-1)), Ok(Some(KeepAlive::Forever)));
        assert_eq!(
            p(Value::from(1.5)),
            Ok(Some(KeepAlive::For(Duration::from_millis(1500))))
        );
        assert_eq!(
            p(Value::from("10m")),
            Ok(Some(KeepAlive::For(Duration::from_secs(600))))
        );
        assert_eq!(p(Value::from("-1m")), Ok(Some(KeepAlive::Forever)));
        assert_eq!(
            p(Value::from("-1")),
            Err("time: missing unit in duration \"-1\"".into())
        );
        assert_eq!(parse_keep_alive(None), Ok(None));
    }
}
