//! Client configuration: the builder, its defaults, and validation at build time.
//!
//! Every knob is checked once, in [`ClientBuilder::build`], so a bad value is an error that
//! names the field before any request is made, never a surprise under load.

use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::{Serialize, Serializer};

use crate::client::Client;
use crate::error::Error;
use crate::host::{self, HostUrl};

/// The base URL used when neither the builder nor `OLLAMA_HOST` gives one.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:11434";

/// The validated configuration of a [`Client`], readable through [`Client::config`].
///
/// It serializes (for load-test reports) with durations as float seconds. The bearer token
/// and header values are never serialized: only whether a token is set, and header names.
#[derive(Clone, Serialize)]
#[non_exhaustive]
pub struct Config {
    /// The resolved base URL, for example `http://127.0.0.1:11434` or
    /// `https://example.com:443/ollama` (a path prefix is kept).
    pub base_url: String,
    /// Most sockets open at once, busy or idle. Default 50.
    pub max_connections: usize,
    /// Most idle sockets kept for reuse. Default 20.
    pub max_keepalive_connections: usize,
    /// Most requests in flight at once, a stream counting until it ends or is dropped.
    /// Default none (bounded only by `max_connections`).
    pub max_concurrent_requests: Option<usize>,
    /// Read timeout: the longest wait for the response head once the request is on a
    /// connection, and the longest gap between two pieces of a body. Default 300 s.
    #[serde(serialize_with = "secs")]
    pub timeout: Duration,
    /// The longest time to open a connection (DNS, TCP, TLS). Default 10 s.
    #[serde(serialize_with = "secs")]
    pub connect_timeout: Duration,
    /// The longest wait for a request slot or a connection slot. Default 30 s.
    #[serde(serialize_with = "secs")]
    pub pool_timeout: Duration,
    /// The timeout of [`Client::health`]. Default 5 s.
    #[serde(serialize_with = "secs")]
    pub health_check_timeout: Duration,
    /// Retries after a connection failure (in [`Client::verify`] and before a request was
    /// sent), and after a 503 when `retry_server_busy` is on. Default 3.
    pub max_retries: u32,
    /// The first retry delay; each further retry doubles it. Default 1 s.
    #[serde(serialize_with = "secs")]
    pub retry_delay: Duration,
    /// How long an idle pooled socket is kept before it is closed. Default 30 s.
    #[serde(serialize_with = "secs")]
    pub keep_alive_idle: Duration,
    /// The model used by requests whose `model` is empty. Default none.
    pub default_model: Option<String>,
    /// The User-Agent header sent with every request.
    pub user_agent: String,
    /// Whether [`ClientBuilder::connect`] runs [`Client::verify`]. Default true.
    pub verify_on_init: bool,
    /// Whether a 503 (server busy) is retried with backoff, up to `max_retries`. Default
    /// false: a busy server usually wants less load, not more.
    pub retry_server_busy: bool,
    /// Extra headers sent with every request (names only are serialized).
    #[serde(serialize_with = "header_names")]
    pub(crate) headers: HeaderMap,
    /// The `Authorization: Bearer` value; serialized only as a boolean.
    #[serde(rename = "bearer_token_set", serialize_with = "is_set")]
    pub(crate) bearer: Option<HeaderValue>,
    /// The parsed base URL.
    #[serde(skip)]
    pub(crate) host: HostUrl,
}

impl Config {
    /// Names of the extra headers sent with every request.
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        self.headers.keys().map(HeaderName::as_str)
    }

    /// Whether an `Authorization: Bearer` token is configured (its value is never shown).
    pub fn has_bearer_token(&self) -> bool {
        self.bearer.is_some()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("base_url", &self.base_url)
            .field("max_connections", &self.max_connections)
            .field("max_keepalive_connections", &self.max_keepalive_connections)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_timeout", &self.pool_timeout)
            .field("health_check_timeout", &self.health_check_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_delay", &self.retry_delay)
            .field("keep_alive_idle", &self.keep_alive_idle)
            .field("default_model", &self.default_model)
            .field("user_agent", &self.user_agent)
            .field("verify_on_init", &self.verify_on_init)
            .field("retry_server_busy", &self.retry_server_busy)
            .field("header_names", &self.header_names().collect::<Vec<_>>())
            .field("bearer_token_set", &self.bearer.is_some())
            .finish_non_exhaustive()
    }
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn header_names<S: Serializer>(h: &HeaderMap, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(h.keys().map(HeaderName::as_str))
}

#[allow(clippy::ref_option)] // serde's `serialize_with` passes `&Option<T>`.
fn is_set<S: Serializer>(v: &Option<HeaderValue>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(v.is_some())
}

/// Builds a [`Client`]; start with [`Client::builder`].
///
/// Nothing is checked until [`ClientBuilder::build`], which reports the first bad field.
#[derive(Clone)]
#[must_use]
pub struct ClientBuilder {
    base_url: Option<String>,
    max_connections: usize,
    max_keepalive_connections: usize,
    max_concurrent_requests: Option<usize>,
    timeout: Duration,
    connect_timeout: Duration,
    pool_timeout: Duration,
    health_check_timeout: Duration,
    max_retries: u32,
    retry_delay: Duration,
    keep_alive_idle: Duration,
    default_model: Option<String>,
    headers: Vec<(String, String)>,
    bearer_token: Option<String>,
    user_agent: Option<String>,
    verify_on_init: bool,
    retry_server_busy: bool,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("max_connections", &self.max_connections)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("bearer_token_set", &self.bearer_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            base_url: None,
            max_connections: 50,
            max_keepalive_connections: 20,
            max_concurrent_requests: None,
            timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            pool_timeout: Duration::from_secs(30),
            health_check_timeout: Duration::from_secs(5),
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            keep_alive_idle: Duration::from_secs(30),
            default_model: None,
            headers: Vec::new(),
            bearer_token: None,
            user_agent: None,
            verify_on_init: true,
            retry_server_busy: false,
        }
    }
}

impl ClientBuilder {
    /// The server's base URL, parsed like `OLLAMA_HOST` (`host`, `host:port`,
    /// `http(s)://host[:port][/prefix]`). Default: `OLLAMA_HOST`, else
    /// `http://127.0.0.1:11434`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Most sockets open at once (at least 1). Default 50.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Most idle sockets kept for reuse (at most `max_connections`). Default 20.
    pub fn max_keepalive_connections(mut self, n: usize) -> Self {
        self.max_keepalive_connections = n;
        self
    }

    /// Most requests in flight at once (at least 1), or `None` for no limit. Default none.
    pub fn max_concurrent_requests(mut self, n: impl Into<Option<usize>>) -> Self {
        self.max_concurrent_requests = n.into();
        self
    }

    /// The read timeout (response head, and gaps in a body). Default 300 s.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The connect timeout. Default 10 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// The longest wait for a request or connection slot. Default 30 s.
    pub fn pool_timeout(mut self, d: Duration) -> Self {
        self.pool_timeout = d;
        self
    }

    /// The timeout of one health check. Default 5 s.
    pub fn health_check_timeout(mut self, d: Duration) -> Self {
        self.health_check_timeout = d;
        self
    }

    /// Retries for safe failures (see [`Config::max_retries`]). Default 3.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The first retry delay, doubled on each retry. Default 1 s.
    pub fn retry_delay(mut self, d: Duration) -> Self {
        self.retry_delay = d;
        self
    }

    /// How long an idle pooled socket lives. Default 30 s.
    pub fn keep_alive_idle(mut self, d: Duration) -> Self {
        self.keep_alive_idle = d;
        self
    }

    /// The model used when a request's `model` is empty.
    pub fn default_model(mut self, model: impl Into<String>) -> Self {
        self.default_model = Some(model.into());
        self
    }

    /// An extra header sent with every request (checked at build time).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A bearer token sent as `Authorization: Bearer <token>`. Default: `OLLAMA_API_KEY`
    /// when set and non-empty. An explicit `Authorization` header wins over both.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// The User-Agent. Default `ollama-client-rs/<version> (<arch> <os>)`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// Whether [`ClientBuilder::connect`] verifies the server. Default true.
    pub fn verify_on_init(mut self, on: bool) -> Self {
        self.verify_on_init = on;
        self
    }

    /// Whether a 503 (server busy) is retried with backoff. Default false.
    pub fn retry_server_busy(mut self, on: bool) -> Self {
        self.retry_server_busy = on;
        self
    }

    /// Validates the configuration and builds the client. Makes no network call.
    pub fn build(self) -> Result<Client, Error> {
        Client::from_config(self.into_config()?)
    }

    /// Builds the client, then runs [`Client::verify`] unless `verify_on_init(false)`.
    pub async fn connect(self) -> Result<Client, Error> {
        let client = self.build()?;
        if client.config().verify_on_init {
            client.verify().await?;
        }
        Ok(client)
    }

    /// Checks every field and resolves the defaults that come from the environment.
    pub(crate) fn into_config(self) -> Result<Config, Error> {
        let (raw, from_env) = match self.base_url {
            Some(url) => (url, false),
            None => match std::env::var("OLLAMA_HOST") {
                Ok(v) if !v.trim().is_empty() => (v, true),
                _ => (DEFAULT_BASE_URL.to_owned(), false),
            },
        };
        let field = if from_env { "OLLAMA_HOST" } else { "base_url" };
        let (host, fixup) = host::parse(&raw);
        // Ollama itself falls back to the default port on a bad OLLAMA_HOST port; an
        // explicit argument is a programming error and is refused.
        if let (Some(host::Fixup::InvalidPort(port)), false) = (&fixup, from_env) {
            return Err(Error::config(
                field,
                format!("invalid port {port:?} in {raw:?}"),
            ));
        }
        match host.scheme.as_str() {
            "http" => {}
            "https" if cfg!(feature = "rustls") => {}
            "https" => {
                return Err(Error::config(
                    field,
                    "https:// needs the `rustls` feature of ollama-client",
                ));
            }
            other => {
                return Err(Error::config(
                    field,
                    format!("unsupported scheme {other:?} in {raw:?}"),
                ));
            }
        }
        let authority = host.authority();
        if authority.parse::<http::uri::Authority>().is_err() {
            return Err(Error::config(field, format!("invalid host in {raw:?}")));
        }
        if !host.path.is_empty()
            && format!("/{}", host.path)
                .parse::<http::uri::PathAndQuery>()
                .is_err()
        {
            return Err(Error::config(
                field,
                format!("invalid path prefix in {raw:?}"),
            ));
        }
        if self.max_connections == 0 {
            return Err(Error::config("max_connections", "must be at least 1"));
        }
        if self.max_keepalive_connections > self.max_connections {
            return Err(Error::config(
                "max_keepalive_connections",
                format!(
                    "{} is more than max_connections ({})",
                    self.max_keepalive_connections, self.max_connections
                ),
            ));
        }
        if self.max_concurrent_requests == Some(0) {
            return Err(Error::config(
                "max_concurrent_requests",
                "must be at least 1 (or None for no limit)",
            ));
        }
        for (name, d) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
            ("pool_timeout", self.pool_timeout),
            ("health_check_timeout", self.health_check_timeout),
            ("keep_alive_idle", self.keep_alive_idle),
        ] {
            if d.is_zero() {
                return Err(Error::config(name, "must be longer than zero"));
            }
            // tokio timers cannot represent arbitrarily far deadlines.
            if d > Duration::from_secs(365 * 24 * 3600) {
                return Err(Error::config(name, "must be at most one year"));
            }
        }
        if self.retry_delay > Duration::from_secs(3600) {
            return Err(Error::config("retry_delay", "must be at most one hour"));
        }
        if self.max_retries > 100 {
            return Err(Error::config("max_retries", "must be at most 100"));
        }
        if matches!(&self.default_model, Some(m) if m.trim().is_empty()) {
            return Err(Error::config("default_model", "must not be empty"));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str()).map_err(|e| {
                Error::config("header", format!("invalid header name {name:?}: {e}"))
            })?;
            let mut value = HeaderValue::try_from(value.as_str())
                .map_err(|_| Error::config("header", format!("invalid value for header {name}")))?;
            if name == AUTHORIZATION {
                value.set_sensitive(true);
            }
            headers.append(name, value);
        }
        let token = match self.bearer_token {
            Some(t) => Some((t, "bearer_token")),
            None => std::env::var("OLLAMA_API_KEY")
                .ok()
                .filter(|t| !t.trim().is_empty())
                .map(|t| (t, "OLLAMA_API_KEY")),
        };
        let bearer = match token {
            Some(_) if headers.contains_key(AUTHORIZATION) => None,
            Some((t, field)) => {
                let mut v =
                    HeaderValue::try_from(format!("Bearer {}", t.trim())).map_err(|_| {
                        Error::config(field, "the token has characters not allowed in a header")
                    })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let user_agent = self.user_agent.unwrap_or_else(|| {
            format!(
                "ollama-client-rs/{} ({} {})",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH,
                std::env::consts::OS
            )
        });
        if HeaderValue::try_from(user_agent.as_str()).is_err() {
            return Err(Error::config(
                "user_agent",
                "has characters not allowed in a header",
            ));
        }
        Ok(Config {
            base_url: host.to_string(),
            max_connections: self.max_connections,
            max_keepalive_connections: self.max_keepalive_connections,
            max_concurrent_requests: self.max_concurrent_requests,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            pool_timeout: self.pool_timeout,
            health_check_timeout: self.health_check_timeout,
            max_retries: self.max_retries,
            retry_delay: self.retry_delay,
            keep_alive_idle: self.keep_alive_idle,
            default_model: self.default_model,
            user_agent,
            verify_on_init: self.verify_on_init,
            retry_server_busy: self.retry_server_busy,
            headers,
            bearer,
            host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn cfg(b: ClientBuilder) -> Result<Config, Error> {
        b.into_config()
    }

    #[test]
    fn defaults_match_the_python_service() {
        let c = cfg(ClientBuilder::default().base_url("http://127.0.0.1:11434")).unwrap();
        assert_eq!(c.max_connections, 50);
        assert_eq!(c.max_keepalive_connections, 20);
        assert_eq!(c.max_concurrent_requests, None);
        assert_eq!(c.timeout, Duration::from_secs(300));
        assert_eq!(c.health_check_timeout, Duration::from_secs(5));
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.retry_delay, Duration::from_secs(1));
        assert!(c.verify_on_init);
        assert_eq!(c.base_url, "http://127.0.0.1:11434");
    }

    #[test]
    fn invalid_values_name_the_field() {
        let cases: Vec<(ClientBuilder, &str)> = vec![
            (
                ClientBuilder::default().max_connections(0),
                "max_connections",
            ),
            (
                ClientBuilder::default()
                    .max_connections(5)
                    .max_keepalive_connections(6),
                "max_keepalive_connections",
            ),
            (
                ClientBuilder::default().max_concurrent_requests(0),
                "max_concurrent_requests",
            ),
            (ClientBuilder::default().timeout(Duration::ZERO), "timeout"),
            (
                ClientBuilder::default().pool_timeout(Duration::ZERO),
                "pool_timeout",
            ),
            (ClientBuilder::default().header("bad name", "x"), "header"),
            (
                ClientBuilder::default().header("x-a", "bad\nvalue"),
                "header",
            ),
            (ClientBuilder::default().base_url("ftp://host"), "base_url"),
            (ClientBuilder::default().base_url("host:99999"), "base_url"),
            (
                ClientBuilder::default().bearer_token("a\nb"),
                "bearer_token",
            ),
            (ClientBuilder::default().default_model(" "), "default_model"),
        ];
        for (builder, field) in cases {
            let err = cfg(builder.base_url_if_unset()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn serialization_hides_secrets() {
        let c = cfg(ClientBuilder::default()
            .base_url("example.com/prefix/")
            .bearer_token("s3cret")
            .header("X-Team", "hidden-value"))
        .unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            !json.contains("s3cret") && !json.contains("hidden-value"),
            "{json}"
        );
        assert!(json.contains("\"bearer_token_set\":true"), "{json}");
        assert!(json.contains("x-team"), "{json}");
        assert!(json.contains("\"timeout\":300.0"), "{json}");
        assert_eq!(c.base_url, "http://example.com:11434/prefix");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn https_and_ipv6_base_urls() {
        let c = cfg(ClientBuilder::default().base_url("https://example.com/ollama")).unwrap();
        assert_eq!(c.base_url, "https://example.com:443/ollama");
        assert_eq!(c.host.authority(), "example.com:443");
        let c = cfg(ClientBuilder::default().base_url("http://[::1]:8080")).unwrap();
        assert_eq!(c.host.authority(), "[::1]:8080");
    }

    #[test]
    fn explicit_authorization_header_wins() {
        let c = cfg(ClientBuilder::default()
            .base_url("h")
            .bearer_token("t")
            .header("authorization", "Basic x"))
        .unwrap();
        assert!(c.bearer.is_none());
    }

    impl ClientBuilder {
        /// Pins the base URL in tests so `OLLAMA_HOST` on the machine cannot change them.
        fn base_url_if_unset(self) -> Self {
            if self.base_url.is_some() {
                self
            } else {
                self.base_url(DEFAULT_BASE_URL)
            }
        }
    }
}
