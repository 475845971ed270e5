//! The client: request sending with limits, timeouts and safe retries, and one method per
//! endpoint.
//!
//! Every request goes through [`Client::send`]: take a request slot (if
//! `max_concurrent_requests` is set), get a connection (the connector enforces
//! `max_connections`), then wait at most `timeout` for the response head. The slot and the
//! in-flight count live in a [`Lease`] that moves into the body, so they are released only
//! when the body has been read or the stream is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::config::{ClientBuilder, Config};
use crate::decode::Framing;
use crate::error::{BoxError, Error, ErrorKind, Phase};
use crate::openai::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest};
use crate::stream::{ResponseStream, StreamItem, error_message, parse_item};
use crate::transport::{ClientStats, ConnectError, Counters, GatedConnector, Lease};
use crate::types::{
    ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, EmbeddingsRequest, EmbeddingsResponse,
    GenerateRequest, GenerateResponse, ListResponse, ProgressResponse, PsResponse, PullRequest,
    ShowRequest, ShowResponse,
};

type HttpClient = hyper_util::client::legacy::Client<GatedConnector, Full<Bytes>>;

/// The longest error body kept for the error message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// An Ollama client. Cheap to clone (one `Arc`); share one per server across tasks, so the
/// limits hold for the whole process.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: HttpClient,
    requests: Option<Arc<Semaphore>>,
    counters: Arc<Counters>,
    /// Scheme and authority of every request URI, parsed once.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The path prefix (`/ollama`), or empty.
    prefix: String,
    headers: HeaderMap,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// One HTTP exchange to make.
struct Call {
    method: Method,
    path: &'static str,
    body: Option<Bytes>,
    accept: &'static str,
    /// Read timeout: to the response head, and between body pieces.
    timeout: Duration,
    /// A bound on the whole attempt up to the response head (health checks).
    overall: Option<Duration>,
    /// Whether connect failures and (if enabled) 503s are retried.
    retries: bool,
}

impl Call {
    fn new(client: &Client, method: Method, path: &'static str) -> Self {
        Self {
            method,
            path,
            body: None,
            accept: "application/json",
            timeout: client.inner.config.timeout,
            overall: None,
            retries: true,
        }
    }

    fn json<B: Serialize>(mut self, body: &B) -> Result<Self, Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            Error::other(
                format!("could not serialize the request for {}", self.path),
                Some(Box::new(e)),
            )
        })?;
        self.body = Some(Bytes::from(bytes));
        Ok(self)
    }
}

impl Client {
    /// A builder with the documented defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client with the defaults (`OLLAMA_HOST` or `http://127.0.0.1:11434`); no network.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    pub(crate) fn from_config(config: Config) -> Result<Self, Error> {
        let counters = Arc::new(Counters::default());
        let connector = GatedConnector::new(
            config.max_connections,
            config.pool_timeout,
            config.connect_timeout,
            Arc::clone(&counters),
        )
        .map_err(|e| Error::config("tls", format!("could not set up rustls: {e}")))?;
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(config.max_keepalive_connections)
            .pool_idle_timeout(config.keep_alive_idle)
            // Without a timer hyper-util ignores the idle timeout.
            .pool_timer(TokioTimer::new())
            .build(connector);
        let mut headers = config.headers.clone();
        if let Ok(ua) = HeaderValue::try_from(config.user_agent.as_str()) {
            headers.insert(USER_AGENT, ua);
        }
        if let Some(auth) = &config.bearer {
            headers.insert(http::header::AUTHORIZATION, auth.clone());
        }
        let host = &config.host;
        let prefix = if host.path.is_empty() {
            String::new()
        } else {
            format!("/{}", host.path)
        };
        let scheme = http::uri::Scheme::try_from(host.scheme.as_str())
            .map_err(|e| Error::config("base_url", format!("invalid scheme: {e}")))?;
        let authority = http::uri::Authority::try_from(host.authority().as_str())
            .map_err(|e| Error::config("base_url", format!("invalid host: {e}")))?;
        let requests = config
            .max_concurrent_requests
            .map(|n| Arc::new(Semaphore::new(n)));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                requests,
                counters,
                scheme,
                authority,
                prefix,
                headers,
            }),
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A snapshot of the live counters (open sockets, in-flight requests, pool waits).
    pub fn stats(&self) -> ClientStats {
        ClientStats::snapshot(&self.inner.counters)
    }

    fn model(&self, model: &mut String) {
        if model.is_empty()
            && let Some(default) = &self.inner.config.default_model
        {
            model.clone_from(default);
        }
    }

    /// `POST /api/generate` without streaming: the whole answer in one response.
    pub async fn generate(&self, mut req: GenerateRequest) -> Result<GenerateResponse, Error> {
        self.model(&mut req.model);
        req.stream = Some(false);
        self.unary(Call::new(self, Method::POST, "/api/generate").json(&req)?)
            .await
    }

    /// `POST /api/generate`, streamed: chunks as the model produces them; the final chunk
    /// (`done: true`) carries the metrics.
    pub async fn generate_stream(
        &self,
        mut req: GenerateRequest,
    ) -> Result<ResponseStream<GenerateResponse>, Error> {
        self.model(&mut req.model);
        req.stream = Some(true);
        self.stream(
            Call::new(self, Method::POST, "/api/generate").json(&req)?,
            Framing::Ndjson,
        )
        .await
    }

    /// `POST /api/chat` without streaming.
    pub async fn chat(&self, mut req: ChatRequest) -> Result<ChatResponse, Error> {
        self.model(&mut req.model);
        req.stream = Some(false);
        self.unary(Call::new(self, Method::POST, "/api/chat").json(&req)?)
            .await
    }

    /// `POST /api/chat`, streamed.
    pub async fn chat_stream(
        &self,
        mut req: ChatRequest,
    ) -> Result<ResponseStream<ChatResponse>, Error> {
        self.model(&mut req.model);
        req.stream = Some(true);
        self.stream(
            Call::new(self, Method::POST, "/api/chat").json(&req)?,
            Framing::Ndjson,
        )
        .await
    }

    /// `POST /api/embed`: one unit-length vector per input.
    pub async fn embed(&self, mut req: EmbedRequest) -> Result<EmbedResponse, Error> {
        self.model(&mut req.model);
        self.unary(Call::new(self, Method::POST, "/api/embed").json(&req)?)
            .await
    }

    /// `POST /api/embeddings` (legacy): one vector, not normalised.
    pub async fn embeddings(
        &self,
        mut req: EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, Error> {
        self.model(&mut req.model);
        self.unary(Call::new(self, Method::POST, "/api/embeddings").json(&req)?)
            .await
    }

    /// `GET /api/tags`: the models on the server.
    pub async fn list_models(&self) -> Result<ListResponse, Error> {
        self.unary(Call::new(self, Method::GET, "/api/tags")).await
    }

    /// `GET /api/ps`: the models loaded now.
    pub async fn ps(&self) -> Result<PsResponse, Error> {
        self.unary(Call::new(self, Method::GET, "/api/ps")).await
    }

    /// `POST /api/show`: a model's details.
    pub async fn show(&self, mut req: ShowRequest) -> Result<ShowResponse, Error> {
        self.model(&mut req.model);
        self.unary(Call::new(self, Method::POST, "/api/show").json(&req)?)
            .await
    }

    /// `GET /api/version`: the server's version string.
    pub async fn version(&self) -> Result<String, Error> {
        #[derive(serde::Deserialize)]
        struct Version {
            version: String,
        }
        let v: Version = self
            .unary(Call::new(self, Method::GET, "/api/version"))
            .await?;
        Ok(v.version)
    }

    /// `POST /api/pull`, streamed progress; the last item has status `success`.
    pub async fn pull(
        &self,
        mut req: PullRequest,
    ) -> Result<ResponseStream<ProgressResponse>, Error> {
        req.stream = Some(true);
        self.stream(
            Call::new(self, Method::POST, "/api/pull").json(&req)?,
            Framing::Ndjson,
        )
        .await
    }

    /// `POST /api/copy`: copies `source` to `destination`.
    pub async fn copy(&self, source: &str, destination: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "source": source, "destination": destination });
        self.empty(Call::new(self, Method::POST, "/api/copy").json(&body)?)
            .await
    }

    /// `DELETE /api/delete`: deletes a model.
    pub async fn delete(&self, model: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "model": model });
        self.empty(Call::new(self, Method::DELETE, "/api/delete").json(&body)?)
            .await
    }

    /// `HEAD /`: is the server up? Bounded as a whole by `health_check_timeout`; no retries.
    pub async fn health(&self) -> Result<(), Error> {
        let limit = self.inner.config.health_check_timeout;
        let mut call = Call::new(self, Method::HEAD, "/");
        call.accept = "*/*";
        call.timeout = limit;
        call.overall = Some(limit);
        call.retries = false;
        self.empty(call).await
    }

    /// Checks the server with [`Client::health`], retrying up to `max_retries` times with
    /// `retry_delay` between tries; returns the last error when all fail.
    pub async fn verify(&self) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            match self.health().await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= self.inner.config.max_retries => return Err(e),
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(self.inner.config.retry_delay).await;
                }
            }
        }
    }

    /// `POST /v1/chat/completions` without streaming.
    pub async fn openai_chat(
        &self,
        mut req: ChatCompletionRequest,
    ) -> Result<ChatCompletion, Error> {
        self.model(&mut req.model);
        req.stream = Some(false);
        self.unary(Call::new(self, Method::POST, "/v1/chat/completions").json(&req)?)
            .await
    }

    /// `POST /v1/chat/completions` streamed as SSE; ends after `data: [DONE]`. Ask for
    /// the usage chunk with [`ChatCompletionRequest::include_usage`].
    pub async fn openai_chat_stream(
        &self,
        mut req: ChatCompletionRequest,
    ) -> Result<ResponseStream<ChatCompletionChunk>, Error> {
        self.model(&mut req.model);
        req.stream = Some(true);
        let mut call = Call::new(self, Method::POST, "/v1/chat/completions").json(&req)?;
        call.accept = "text/event-stream";
        self.stream(call, Framing::Sse).await
    }

    async fn unary<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        let timeout = call.timeout;
        let (resp, lease) = self.send(&call).await?;
        let bytes = read_body(resp.into_body(), timeout, None).await?;
        drop(lease);
        parse_item(&bytes)
    }

    async fn empty(&self, call: Call) -> Result<(), Error> {
        let timeout = call.timeout;
        let (resp, lease) = self.send(&call).await?;
        read_body(resp.into_body(), timeout, None).await?;
        drop(lease);
        Ok(())
    }

    async fn stream<T: StreamItem>(
        &self,
        mut call: Call,
        framing: Framing,
    ) -> Result<ResponseStream<T>, Error> {
        if framing == Framing::Ndjson {
            call.accept = "application/x-ndjson";
        }
        let (resp, lease) = self.send(&call).await?;
        Ok(ResponseStream::new(
            resp.into_body(),
            framing,
            call.timeout,
            lease,
        ))
    }

    /// Sends `call`, retrying what is safe: a connection that could not be made (nothing
    /// was sent) and, when `retry_server_busy` is on, a 503. Backoff doubles from
    /// `retry_delay`, capped at 30 s.
    async fn send(&self, call: &Call) -> Result<(Response<Incoming>, Lease), Error> {
        let config = &self.inner.config;
        let mut attempt: u32 = 0;
        loop {
            let err = match self.send_once(call).await {
                Ok(ok) => return Ok(ok),
                Err(e) => e,
            };
            let safe = match err.kind() {
                ErrorKind::Connect | ErrorKind::ConnectTimeout => true,
                ErrorKind::ServerBusy => config.retry_server_busy,
                _ => false,
            };
            if !call.retries || !safe || attempt >= config.max_retries {
                return Err(err);
            }
            let delay = config
                .retry_delay
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(30));
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, call: &Call) -> Result<(Response<Incoming>, Lease), Error> {
        let inner = &*self.inner;
        let config = &inner.config;
        let start = Instant::now();
        // A health check is bounded as a whole, the slot wait included.
        let slot_limit = call
            .overall
            .map_or(config.pool_timeout, |o| o.min(config.pool_timeout));
        let permit = match &inner.requests {
            None => None,
            Some(sem) => Some(match Arc::clone(sem).try_acquire_owned() {
                Ok(p) => p,
                Err(_) => tokio::time::timeout(slot_limit, Arc::clone(sem).acquire_owned())
                    .await
                    .map_err(|_| Error::timeout(Phase::RequestSlot, slot_limit))?
                    .map_err(|e| Error::other("the request semaphore closed", Some(Box::new(e))))?,
            }),
        };
        let lease = Lease::new(permit, Arc::clone(&inner.counters));
        let mut req = self.request(call)?;
        let mut captured = capture_connection(&mut req);
        let fut = inner.http.request(req);
        tokio::pin!(fut);

        // Phase 1: until the request holds a connection. The connector bounds its own
        // waits (pool_timeout, connect_timeout); this outer bound only guards against a
        // wait that neither of them covers.
        let phase1_limit = call
            .overall
            .unwrap_or(config.pool_timeout + config.connect_timeout + Duration::from_secs(1));
        // One timer serves both phases: armed for phase 1, re-armed for phase 2.
        let deadline = tokio::time::sleep(phase1_limit.saturating_sub(start.elapsed()));
        tokio::pin!(deadline);
        let early = tokio::select! {
            biased;
            r = &mut fut => Some(r),
            () = async { let _ = captured.wait_for_connection_metadata().await; } => None,
            () = &mut deadline => {
                return Err(if call.overall.is_some() {
                    Error::timeout(Phase::Connect, phase1_limit)
                } else {
                    Error::timeout(Phase::ConnectionSlot, phase1_limit)
                });
            }
        };
        inner.counters.record_pool_wait(start.elapsed());
        // Phase 2: the request is on a connection; wait for the head.
        let result = if let Some(r) = early {
            r
        } else {
            let mut limit = call.timeout;
            if let Some(overall) = call.overall {
                limit = limit.min(overall.saturating_sub(start.elapsed()));
            }
            deadline.as_mut().reset(tokio::time::Instant::now() + limit);
            tokio::select! {
                biased;
                r = &mut fut => r,
                () = &mut deadline => return Err(Error::timeout(Phase::ResponseHead, limit)),
            }
        };
        let resp = result.map_err(|e| self.classify(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok((resp, lease));
        }
        let body = read_body(resp.into_body(), call.timeout, Some(MAX_ERROR_BODY)).await?;
        drop(lease);
        Err(status_error(status, &body))
    }

    fn request(&self, call: &Call) -> Result<Request<Full<Bytes>>, Error> {
        let inner = &*self.inner;
        // The common case (no prefix) builds the URI without formatting or re-parsing.
        let url_error = |e: BoxError| {
            Error::other(
                format!("could not build the URL for {}", call.path),
                Some(e),
            )
        };
        let path = if inner.prefix.is_empty() {
            http::uri::PathAndQuery::from_static(call.path)
        } else {
            http::uri::PathAndQuery::try_from(format!("{}{}", inner.prefix, call.path))
                .map_err(|e| url_error(Box::new(e)))?
        };
        let uri = Uri::builder()
            .scheme(inner.scheme.clone())
            .authority(inner.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| url_error(Box::new(e)))?;
        let mut builder = Request::builder().method(call.method.clone()).uri(uri);
        if let Some(headers) = builder.headers_mut() {
            headers.clone_from(&inner.headers);
            headers.insert(ACCEPT, HeaderValue::from_static(call.accept));
            if call.body.is_some() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
        }
        builder
            .body(Full::new(call.body.clone().unwrap_or_default()))
            .map_err(|e| Error::other("could not build the request", Some(Box::new(e))))
    }

    /// Maps a hyper-util error to an [`Error`], finding our connector's error in its chain.
    fn classify(&self, e: hyper_util::client::legacy::Error) -> Error {
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
        let mut found = None;
        while let Some(s) = source {
            if let Some(c) = s.downcast_ref::<ConnectError>() {
                found = Some(match c {
                    ConnectError::PoolTimeout(d) => Error::timeout(Phase::ConnectionSlot, *d),
                    ConnectError::Timeout(d) => Error::timeout(Phase::Connect, *d),
                    ConnectError::Failed(_) => break,
                });
                break;
            }
            source = s.source();
        }
        if let Some(err) = found {
            return err;
        }
        if e.is_connect() {
            return Error::connect(self.inner.config.base_url.clone(), Some(Box::new(e)));
        }
        // The request went out on a connection that then closed or broke: the response
        // was cut before it began. Not retried, because the server may have acted on it.
        Error::truncated_by(
            "the connection closed before the response head arrived",
            Box::new(e),
        )
    }
}

/// Reads a whole body, waiting at most `idle` for each piece. With `cap`, stops keeping
/// bytes after `cap` (error bodies) but still reads to the end so the connection is reused.
async fn read_body(mut body: Incoming, idle: Duration, cap: Option<usize>) -> Result<Bytes, Error> {
    let mut out = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(Error::timeout(Phase::Body, idle)),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(e))) => {
                return Err(Error::truncated_by(
                    "the connection broke before the body was complete",
                    Box::new(e),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            let room = cap.map_or(data.len(), |c| c.saturating_sub(out.len()).min(data.len()));
            out.extend_from_slice(&data[..room]);
        }
    }
}

/// The error for a non-success status, with Ollama's message when the body carries one.
fn status_error(status: StatusCode, body: &[u8]) -> Error {
    if let Some(message) = error_message(body) {
        // A JSON error body on a 404 names a missing model (native: "model 'x' not
        // found", /v1: type not_found_error); an unknown route is plain text.
        let model_not_found = status == StatusCode::NOT_FOUND && message.contains("not found");
        return Error::http_status(status, message, model_not_found);
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("").to_owned()
    } else {
        text
    };
    Error::http_status(status, text, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies_are_parsed() {
        let e = status_error(StatusCode::NOT_FOUND, br#"{"error":"model 'x' not found"}"#);
        assert!(e.is_model_not_found());
        assert_eq!(e.message(), Some("model 'x' not found"));
        let e = status_error(StatusCode::NOT_FOUND, b"404 page not found");
        assert_eq!(e.kind(), ErrorKind::HttpStatus);
        let e = status_error(
            StatusCode::NOT_FOUND,
            br#"{"error":{"message":"model \"x\" not found","type":"not_found_error","param":null,"code":null}}"#,
        );
        assert!(e.is_model_not_found());
        let e = status_error(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#,
        );
        assert!(e.is_server_busy());
        assert!(e.message().unwrap().contains("server busy"));
        let e = status_error(StatusCode::FORBIDDEN, b"");
        assert_eq!(e.message(), Some("Forbidden"));
    }
}
