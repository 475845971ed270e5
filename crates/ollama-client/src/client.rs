//! The client: request sending with limits, timeouts and safe retries, and one method per
//! endpoint.
//!
//! Every request goes through [`Client::send`]: take a request slot (if
//! `max_concurrent_requests` is set), check a connection out of the [`Pool`] (which
//! enforces `max_connections`), send the request on it, then wait at most `timeout` for the
//! response head. The slot, the in-flight count and the connection live in a [`Lease`] that
//! moves into the body, so they are released only when the body has been read (the
//! connection then goes back to the pool) or the stream is dropped (the connection closes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderMap, HeaderValue, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::config::{ClientBuilder, Config};
use crate::decode::Framing;
use crate::error::{BoxError, Error, ErrorKind, Phase};
use crate::openai::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest};
use crate::pool::{Checkout, CheckoutError, Pool, ReqBody};
use crate::stream::{ResponseStream, StreamItem, error_message, parse_item};
use crate::transport::{ClientStats, ConnectError, Connector, Lease};
use crate::types::{
    ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, EmbeddingsRequest, EmbeddingsResponse,
    GenerateRequest, GenerateResponse, ListResponse, ProgressResponse, PsResponse, PullRequest,
    ResponseSummary, ShowRequest, ShowResponse,
};

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
    pool: Pool,
    requests: Option<Arc<Semaphore>>,
    /// The path prefix (`/ollama`), or empty.
    prefix: String,
    /// The headers of every request, `Host` included (HTTP/1 on a raw connection needs it).
    headers: HeaderSets,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The media type a call accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    Json,
    Ndjson,
    EventStream,
    Any,
}

impl Accept {
    const ALL: [Self; 4] = [Self::Json, Self::Ndjson, Self::EventStream, Self::Any];

    const fn as_str(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::EventStream => "text/event-stream",
            Self::Any => "*/*",
        }
    }
}

/// The headers of every request, built once for each accepted type, with and without a
/// JSON body: a request clones one map instead of inserting into it.
struct HeaderSets([HeaderMap; 8]);

impl HeaderSets {
    fn new(base: &HeaderMap) -> Self {
        Self(std::array::from_fn(|i| {
            let mut headers = base.clone();
            headers.insert(
                ACCEPT,
                HeaderValue::from_static(Accept::ALL[i / 2].as_str()),
            );
            if i % 2 == 1 {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            headers
        }))
    }

    fn get(&self, accept: Accept, body: bool) -> &HeaderMap {
        &self.0[accept as usize * 2 + usize::from(body)]
    }
}

/// One HTTP exchange to make.
struct Call {
    method: Method,
    path: &'static str,
    body: Option<Bytes>,
    accept: Accept,
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
            accept: Accept::Json,
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
        let host = &config.host;
        let prefix = if host.path.is_empty() {
            String::new()
        } else {
            format!("/{}", host.path)
        };
        let scheme = Scheme::try_from(host.scheme.as_str())
            .map_err(|e| Error::config("base_url", format!("invalid scheme: {e}")))?;
        let authority = Authority::try_from(host.authority().as_str())
            .map_err(|e| Error::config("base_url", format!("invalid host: {e}")))?;
        let mut headers = config.headers.clone();
        // An explicit `Host` header wins, as it did with hyper-util's client.
        if !headers.contains_key(HOST) {
            headers.insert(HOST, host_header(&scheme, &authority)?);
        }
        if let Ok(ua) = HeaderValue::try_from(config.user_agent.as_str()) {
            headers.insert(USER_AGENT, ua);
        }
        if let Some(auth) = &config.bearer {
            headers.insert(http::header::AUTHORIZATION, auth.clone());
        }
        let target = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()
            .map_err(|e| Error::config("base_url", format!("invalid URL: {e}")))?;
        let connector = Connector::new(target, config.connect_timeout)
            .map_err(|e| Error::config("tls", format!("could not set up rustls: {e}")))?;
        let pool = Pool::new(
            connector,
            config.max_connections,
            config.max_keepalive_connections,
            config.keep_alive_idle,
            config.pool_timeout,
        );
        let requests = config
            .max_concurrent_requests
            .map(|n| Arc::new(Semaphore::new(n)));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                pool,
                requests,
                prefix,
                headers: HeaderSets::new(&headers),
            }),
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A snapshot of the live counters (open sockets, in-flight requests, pool waits).
    pub fn stats(&self) -> ClientStats {
        ClientStats::snapshot(self.inner.pool.shared().counters())
    }

    fn model(&self, model: &mut String) {
        if model.is_empty()
            && let Some(default) = &self.inner.config.default_model
        {
            model.clone_from(default);
        }
    }

    /// `POST /api/generate` without streaming: the whole answer in one response.
    pub async fn generate(&self, req: GenerateRequest) -> Result<GenerateResponse, Error> {
        self.generate_as(req).await
    }

    /// `POST /api/generate`, streamed: chunks as the model produces them; the final chunk
    /// (`done: true`) carries the metrics.
    pub async fn generate_stream(
        &self,
        req: GenerateRequest,
    ) -> Result<ResponseStream<GenerateResponse>, Error> {
        self.generate_stream_as(req).await
    }

    /// `POST /api/generate` without streaming, measured instead of read: see
    /// [`ResponseSummary`]. For callers that need how the answer went, not its text.
    pub async fn generate_summary(&self, req: GenerateRequest) -> Result<ResponseSummary, Error> {
        self.generate_as(req).await
    }

    /// `POST /api/generate`, streamed, each chunk measured instead of read.
    pub async fn generate_stream_summary(
        &self,
        req: GenerateRequest,
    ) -> Result<ResponseStream<ResponseSummary>, Error> {
        self.generate_stream_as(req).await
    }

    /// `POST /api/chat` without streaming.
    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        self.chat_as(req).await
    }

    /// `POST /api/chat`, streamed.
    pub async fn chat_stream(
        &self,
        req: ChatRequest,
    ) -> Result<ResponseStream<ChatResponse>, Error> {
        self.chat_stream_as(req).await
    }

    /// `POST /api/chat` without streaming, measured instead of read: see
    /// [`ResponseSummary`].
    pub async fn chat_summary(&self, req: ChatRequest) -> Result<ResponseSummary, Error> {
        self.chat_as(req).await
    }

    /// `POST /api/chat`, streamed, each chunk measured instead of read.
    pub async fn chat_stream_summary(
        &self,
        req: ChatRequest,
    ) -> Result<ResponseStream<ResponseSummary>, Error> {
        self.chat_stream_as(req).await
    }

    async fn generate_as<T: DeserializeOwned>(&self, mut req: GenerateRequest) -> Result<T, Error> {
        self.model(&mut req.model);
        req.stream = Some(false);
        self.unary(Call::new(self, Method::POST, "/api/generate").json(&req)?)
            .await
    }

    async fn generate_stream_as<T: StreamItem>(
        &self,
        mut req: GenerateRequest,
    ) -> Result<ResponseStream<T>, Error> {
        self.model(&mut req.model);
        req.stream = Some(true);
        self.stream(
            Call::new(self, Method::POST, "/api/generate").json(&req)?,
            Framing::Ndjson,
        )
        .await
    }

    async fn chat_as<T: DeserializeOwned>(&self, mut req: ChatRequest) -> Result<T, Error> {
        self.model(&mut req.model);
        req.stream = Some(false);
        self.unary(Call::new(self, Method::POST, "/api/chat").json(&req)?)
            .await
    }

    async fn chat_stream_as<T: StreamItem>(
        &self,
        mut req: ChatRequest,
    ) -> Result<ResponseStream<T>, Error> {
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
        call.accept = Accept::Any;
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
        call.accept = Accept::EventStream;
        self.stream(call, Framing::Sse).await
    }

    async fn unary<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        let timeout = call.timeout;
        let (resp, mut lease) = self.send(&call).await?;
        let bytes = read_body(resp.into_body(), timeout, None, &mut lease).await?;
        drop(lease);
        parse_item(&bytes)
    }

    async fn empty(&self, call: Call) -> Result<(), Error> {
        let timeout = call.timeout;
        let (resp, mut lease) = self.send(&call).await?;
        read_body(resp.into_body(), timeout, None, &mut lease).await?;
        drop(lease);
        Ok(())
    }

    async fn stream<T: StreamItem>(
        &self,
        mut call: Call,
        framing: Framing,
    ) -> Result<ResponseStream<T>, Error> {
        if framing == Framing::Ndjson {
            call.accept = Accept::Ndjson;
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
        let mut lease = Lease::new(permit, Arc::clone(inner.pool.shared()));
        let mut req = self.request(call)?;
        let mut first = true;
        let resp = loop {
            // Phase 1: until the request holds a connection. The pool bounds its own waits
            // (pool_timeout, connect_timeout); a health check is also bounded as a whole.
            let checkout = inner.pool.checkout();
            let checkout = match call.overall {
                None => checkout.await,
                Some(overall) => {
                    tokio::time::timeout(overall.saturating_sub(start.elapsed()), checkout)
                        .await
                        .map_err(|_| Error::timeout(Phase::Connect, overall))?
                }
            };
            let Checkout { mut conn, reused } = checkout.map_err(|e| self.checkout_error(e))?;
            if first {
                inner.counters().record_pool_wait(start.elapsed());
                first = false;
            }
            // Phase 2: the request is on a connection; wait for the head.
            let sending = conn.try_send_request(req);
            lease.attach(conn);
            let mut limit = call.timeout;
            if let Some(overall) = call.overall {
                limit = limit.min(overall.saturating_sub(start.elapsed()));
            }
            match tokio::time::timeout(limit, sending).await {
                Ok(Ok(resp)) => break resp,
                Err(_) => return Err(Error::timeout(Phase::ResponseHead, limit)),
                Ok(Err(mut e)) => match e.take_message() {
                    // A reused connection closed before the request was written: nothing
                    // reached the server, so it goes out on another connection.
                    Some(unsent) if reused => req = unsent,
                    // A new connection that closed at once is a connection failure (also
                    // unsent, so `send` may retry it).
                    Some(_) => {
                        return Err(Error::connect(
                            config.base_url.clone(),
                            Some(Box::new(e.into_error())),
                        ));
                    }
                    // The request went out on a connection that then closed or broke: the
                    // response was cut before it began. Not retried, because the server
                    // may have acted on it.
                    None => {
                        return Err(Error::truncated_by(
                            "the connection closed before the response head arrived",
                            Box::new(e.into_error()),
                        ));
                    }
                },
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok((resp, lease));
        }
        let body = read_body(
            resp.into_body(),
            call.timeout,
            Some(MAX_ERROR_BODY),
            &mut lease,
        )
        .await?;
        drop(lease);
        Err(status_error(status, &body))
    }

    /// Builds the request for `call` in origin form (path and query only, as HTTP/1 sends
    /// it to the server itself).
    fn request(&self, call: &Call) -> Result<Request<ReqBody>, Error> {
        let inner = &*self.inner;
        // The common case (no prefix) builds the URI without formatting or re-parsing.
        let url_error = |e: BoxError| {
            Error::other(
                format!("could not build the URL for {}", call.path),
                Some(e),
            )
        };
        let path = if inner.prefix.is_empty() {
            PathAndQuery::from_static(call.path)
        } else {
            PathAndQuery::try_from(format!("{}{}", inner.prefix, call.path))
                .map_err(|e| url_error(Box::new(e)))?
        };
        let mut req = Request::new(Full::new(call.body.clone().unwrap_or_default()));
        *req.method_mut() = call.method.clone();
        *req.uri_mut() = Uri::from(path);
        *req.headers_mut() = inner.headers.get(call.accept, call.body.is_some()).clone();
        Ok(req)
    }

    /// Maps a pool failure to an [`Error`].
    fn checkout_error(&self, e: CheckoutError) -> Error {
        match e {
            CheckoutError::PoolTimeout(d) => Error::timeout(Phase::ConnectionSlot, d),
            CheckoutError::Connect(ConnectError::Timeout(d)) => Error::timeout(Phase::Connect, d),
            CheckoutError::Connect(ConnectError::Failed(source)) => {
                Error::connect(self.inner.config.base_url.clone(), Some(source))
            }
        }
    }
}

impl Inner {
    fn counters(&self) -> &crate::transport::Counters {
        self.pool.shared().counters()
    }
}

/// The `Host` header for the base URL: the host, and the port unless it is the scheme's
/// default (as HTTP clients send it).
fn host_header(scheme: &Scheme, authority: &Authority) -> Result<HeaderValue, Error> {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    let value = match authority.port_u16() {
        Some(port) if port != default_port => authority.as_str(),
        _ => authority.host(),
    };
    HeaderValue::from_str(value)
        .map_err(|e| Error::config("base_url", format!("invalid host: {e}")))
}

/// Reads a whole body, waiting at most `idle` for each piece, and gives the connection
/// back to the pool through `lease` once the body has ended. With `cap`, stops keeping
/// bytes after `cap` (error bodies) but still reads to the end so the connection is reused.
async fn read_body(
    mut body: Incoming,
    idle: Duration,
    cap: Option<usize>,
    lease: &mut Lease,
) -> Result<Bytes, Error> {
    // A body that arrives in one piece (the usual small answer) is returned as that piece,
    // without a copy; a second piece starts a buffer.
    let mut single: Option<Bytes> = None;
    let mut out = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(Error::timeout(Phase::Body, idle)),
            Ok(None) => {
                lease.body_ended();
                return Ok(single.unwrap_or_else(|| out.freeze()));
            }
            Ok(Some(Err(e))) => {
                return Err(Error::truncated_by(
                    "the connection broke before the body was complete",
                    Box::new(e),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(mut data) = frame.into_data() {
            if let Some(cap) = cap {
                data.truncate(cap.saturating_sub(single.as_ref().map_or(out.len(), Bytes::len)));
            }
            match single.take() {
                None if out.is_empty() => single = Some(data),
                None => out.extend_from_slice(&data),
                Some(first) => {
                    out.reserve(first.len() + data.len());
                    out.extend_from_slice(&first);
                    out.extend_from_slice(&data);
                }
            }
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
    fn each_header_set_carries_its_accept_and_content_type() {
        let mut base = HeaderMap::new();
        base.insert(USER_AGENT, HeaderValue::from_static("t"));
        let sets = HeaderSets::new(&base);
        for accept in Accept::ALL {
            for body in [false, true] {
                let h = sets.get(accept, body);
                assert_eq!(h[ACCEPT], accept.as_str());
                assert_eq!(h.contains_key(CONTENT_TYPE), body);
                assert_eq!(h[USER_AGENT], "t");
            }
        }
    }

    #[test]
    fn host_header_omits_only_the_default_port() {
        let host = |scheme: Scheme, authority: &str| {
            host_header(&scheme, &Authority::try_from(authority).unwrap()).unwrap()
        };
        assert_eq!(host(Scheme::HTTP, "127.0.0.1:11434"), "127.0.0.1:11434");
        assert_eq!(host(Scheme::HTTP, "example.com:80"), "example.com");
        assert_eq!(host(Scheme::HTTPS, "example.com:443"), "example.com");
        assert_eq!(host(Scheme::HTTPS, "example.com:80"), "example.com:80");
        assert_eq!(host(Scheme::HTTP, "[::1]:11434"), "[::1]:11434");
    }

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
