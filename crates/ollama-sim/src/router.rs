//! Routing, request bookkeeping and the fault gate in front of every handler.
//!
//! Matches gin's behaviour: a known path with the wrong method is 405
//! `405 method not allowed`, anything else unknown is 404 `404 page not found`, both
//! `text/plain`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{ResetConnection, SimBody};
use crate::engine::StreamFault;
use crate::fault::FaultKind;
use crate::server::{ConnCtl, Shared};
use crate::stats::Endpoint;
use crate::{native, openai, wire};

/// What a handler gets besides the body.
pub(crate) struct Ctx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Arc<ConnCtl>,
    pub(crate) start: std::time::Instant,
    /// A stream fault to apply during generation, if one was chosen.
    pub(crate) fault: Option<StreamFault>,
}

enum Route {
    Found(Endpoint),
    WrongMethod,
    NotFound,
}

fn route(method: &Method, path: &str) -> Route {
    let (endpoint, allowed): (Endpoint, &[Method]) = match path {
        "/" => (Endpoint::Root, &[Method::GET, Method::HEAD]),
        "/api/version" => (Endpoint::Version, &[Method::GET, Method::HEAD]),
        "/api/tags" => (Endpoint::Tags, &[Method::GET, Method::HEAD]),
        "/api/ps" => (Endpoint::Ps, &[Method::GET]),
        "/api/show" => (Endpoint::Show, &[Method::POST]),
        "/api/generate" => (Endpoint::Generate, &[Method::POST]),
        "/api/chat" => (Endpoint::Chat, &[Method::POST]),
        "/api/embed" => (Endpoint::Embed, &[Method::POST]),
        "/api/embeddings" => (Endpoint::Embeddings, &[Method::POST]),
        "/api/pull" => (Endpoint::Pull, &[Method::POST]),
        "/api/copy" => (Endpoint::Copy, &[Method::POST]),
        "/api/delete" => (Endpoint::Delete, &[Method::DELETE]),
        "/v1/chat/completions" => (Endpoint::OpenAiChat, &[Method::POST]),
        "/v1/completions" => (Endpoint::OpenAiCompletions, &[Method::POST]),
        "/v1/embeddings" => (Endpoint::OpenAiEmbeddings, &[Method::POST]),
        "/v1/models" => (Endpoint::OpenAiModels, &[Method::GET]),
        p if p.len() > "/v1/models/".len() && p.starts_with("/v1/models/") => {
            (Endpoint::OpenAiModel, &[Method::GET])
        }
        _ => return Route::NotFound,
    };
    if allowed.contains(method) {
        Route::Found(endpoint)
    } else {
        Route::WrongMethod
    }
}

/// The hyper service: every request enters here.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnCtl>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, ResetConnection> {
    let start = std::time::Instant::now();
    let in_flight = shared.counters.begin();
    let endpoint = match route(req.method(), req.uri().path()) {
        Route::Found(ep) => ep,
        Route::WrongMethod => {
            shared.counters.request(Endpoint::Unmatched);
            return Ok(wire::text(
                StatusCode::METHOD_NOT_ALLOWED,
                wire::TEXT,
                "405 method not allowed",
            ));
        }
        Route::NotFound => {
            shared.counters.request(Endpoint::Unmatched);
            return Ok(wire::text(
                StatusCode::NOT_FOUND,
                wire::TEXT,
                "404 page not found",
            ));
        }
    };
    shared.counters.request(endpoint);

    let mut fault = None;
    match shared.decide_fault(endpoint.path()) {
        None => {}
        Some(FaultKind::Status { status, message }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = message.unwrap_or_else(|| default_message(status).to_owned());
            return Ok(error_for(endpoint, status, &message).with_in_flight_resp(in_flight));
        }
        Some(FaultKind::Busy) => {
            return Ok(
                error_for(endpoint, StatusCode::SERVICE_UNAVAILABLE, wire::SERVER_BUSY)
                    .with_in_flight_resp(in_flight),
            );
        }
        Some(FaultKind::SlowHead { delay }) => {
            let d = shared.scaled(delay);
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
        }
        Some(other) => fault = StreamFault::from_kind(&other),
    }

    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // The client went away while sending: nobody will read an answer.
        Err(_) => return Err(ResetConnection),
    };
    // Endpoints that never generate get stream faults applied to their whole answer
    // here; generation endpoints apply them themselves (mid-stream or to the body).
    let whole_fault = match &fault {
        Some(f) if !generates(endpoint) => Some((f.clone(), shared.clone(), conn.clone())),
        _ => None,
    };
    let ctx = Ctx {
        shared,
        conn,
        start,
        fault,
    };
    let resp = match endpoint {
        Endpoint::Root => Ok(wire::text(
            StatusCode::OK,
            wire::TEXT_UTF8,
            "Ollama is running",
        )),
        Endpoint::Version => Ok(native::version(&ctx)),
        Endpoint::Tags => Ok(native::tags(&ctx)),
        Endpoint::Ps => Ok(native::ps(&ctx)),
        Endpoint::Show => Ok(native::show(&ctx, &body)),
        Endpoint::Generate => native::generate(ctx, &body).await,
        Endpoint::Chat => native::chat(ctx, &body).await,
        Endpoint::Embed => native::embed(ctx, &body).await,
        Endpoint::Embeddings => native::embeddings(ctx, &body).await,
        Endpoint::Pull => native::pull(ctx, &body).await,
        Endpoint::Copy => Ok(native::copy(&ctx, &body)),
        Endpoint::Delete => Ok(native::delete(&ctx, &body)),
        Endpoint::OpenAiChat => openai::chat(ctx, &body).await,
        Endpoint::OpenAiCompletions => openai::completions(ctx, &body).await,
        Endpoint::OpenAiEmbeddings => openai::embeddings(ctx, &body).await,
        Endpoint::OpenAiModels => Ok(openai::models(&ctx)),
        Endpoint::OpenAiModel => Ok(openai::model(&ctx, parts.uri.path())),
        Endpoint::Unmatched => Ok(wire::text(
            StatusCode::NOT_FOUND,
            wire::TEXT,
            "404 page not found",
        )),
    }?;
    let resp = match whole_fault {
        None => resp,
        Some((f, shared, conn)) => apply_whole_fault(&shared, &conn, endpoint, f, resp).await?,
    };
    Ok(resp.with_in_flight_resp(in_flight))
}

/// Endpoints whose handlers run the generation engine (and so apply stream faults
/// themselves). Pull progress streams take them like a whole answer (before the head).
fn generates(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::Generate
            | Endpoint::Chat
            | Endpoint::Embed
            | Endpoint::Embeddings
            | Endpoint::OpenAiChat
            | Endpoint::OpenAiCompletions
            | Endpoint::OpenAiEmbeddings
    )
}

/// A stream fault on an endpoint that answers in one piece.
async fn apply_whole_fault(
    shared: &Shared,
    conn: &ConnCtl,
    endpoint: Endpoint,
    fault: StreamFault,
    resp: Response<SimBody>,
) -> Result<Response<SimBody>, ResetConnection> {
    Ok(match fault {
        StreamFault::Reset(_) => return Err(reset(conn)),
        StreamFault::Stall(_, d) => {
            let d = shared.scaled(d);
            if !d.is_zero() {
                tokio::time::sleep(d).await;
            }
            resp
        }
        StreamFault::Malformed(_) => resp.map(SimBody::truncated),
        StreamFault::Error(_, message) => {
            error_for(endpoint, StatusCode::INTERNAL_SERVER_ERROR, &message)
        }
    })
}

/// Attaching the in-flight guard to a response's body.
trait WithInFlight {
    fn with_in_flight_resp(self, guard: crate::stats::InFlight) -> Self;
}

impl WithInFlight for Response<SimBody> {
    fn with_in_flight_resp(self, guard: crate::stats::InFlight) -> Self {
        self.map(|b| b.with_in_flight(guard))
    }
}

/// The error envelope of the endpoint's API family.
pub(crate) fn error_for(
    endpoint: Endpoint,
    status: StatusCode,
    message: &str,
) -> Response<SimBody> {
    if endpoint.is_openai() {
        wire::openai_error(status, message, false)
    } else {
        wire::native_error(status, message)
    }
}

/// A realistic error text for an injected status.
fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "rate limit exceeded",
        503 => "model is overloaded",
        500 => {
            "model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, check ollama server logs for details"
        }
        _ => status.canonical_reason().unwrap_or("error"),
    }
}

/// Marks the connection for reset and returns the error hyper closes it on.
pub(crate) fn reset(conn: &ConnCtl) -> ResetConnection {
    conn.reset.store(true, Ordering::Relaxed);
    ResetConnection
}
