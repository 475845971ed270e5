//! A tiny raw HTTP/1.1 client over a tokio `TcpStream`, so tests see exactly what went
//! on the wire (status line, headers, chunk boundaries, resets), plus sim helpers.
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ollama_sim::{ModelSpec, Sim, SimConfig, SimHandle};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Conn {
    io: BufReader<TcpStream>,
}

/// A response head.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub head: Head,
    pub body: Vec<u8>,
    /// The body's chunks as they were framed (one entry for a Content-Length body).
    pub chunks: Vec<Vec<u8>>,
}

impl Resp {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// NDJSON lines; asserts there are no blank lines and the body ends with a newline.
    pub fn lines(&self) -> Vec<Value> {
        let text = self.text();
        assert!(
            text.ends_with('\n'),
            "NDJSON must end with a newline: {text:?}"
        );
        text.trim_end_matches('\n')
            .split('\n')
            .map(|l| {
                assert!(!l.trim().is_empty(), "blank line in NDJSON: {text:?}");
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"))
            })
            .collect()
    }
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            io: BufReader::new(stream),
        }
    }

    /// Writes a request; `body` gets a Content-Length.
    pub async fn send(&mut self, method: &str, path: &str, body: Option<&str>) {
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: sim-test\r\n");
        if let Some(b) = body {
            req.push_str("Content-Type: application/json\r\n");
            req.push_str("Content-Length: ");
            req.push_str(&b.len().to_string());
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        if let Some(b) = body {
            req.push_str(b);
        }
        self.io
            .get_mut()
            .write_all(req.as_bytes())
            .await
            .expect("write request");
    }

    pub async fn read_head(&mut self) -> std::io::Result<Head> {
        let mut line = String::new();
        if self.io.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if self.io.read_line(&mut h).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').expect("header line");
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        Ok(Head { status, headers })
    }

    /// Reads the next chunk of a chunked body; `Ok(None)` at the terminal chunk.
    pub async fn read_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut size = String::new();
        if self.io.read_line(&mut size).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        let mut data = vec![0; n + 2];
        self.io.read_exact(&mut data).await?;
        data.truncate(n);
        Ok(if n == 0 { None } else { Some(data) })
    }

    /// Reads a body after `head` (for a response to a non-HEAD request).
    pub async fn read_body(&mut self, head: &Head) -> std::io::Result<(Vec<u8>, Vec<Vec<u8>>)> {
        if head.is_chunked() {
            let mut chunks = Vec::new();
            while let Some(c) = self.read_chunk().await? {
                chunks.push(c);
            }
            Ok((chunks.concat(), chunks))
        } else {
            let n: usize = head
                .header("content-length")
                .map_or(0, |v| v.parse().expect("content-length"));
            let mut data = vec![0; n];
            self.io.read_exact(&mut data).await?;
            Ok((data.clone(), vec![data]))
        }
    }

    pub async fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> Resp {
        self.send(method, path, body).await;
        let head = self.read_head().await.expect("response head");
        let (body, chunks) = if method == "HEAD" {
            (Vec::new(), Vec::new())
        } else {
            self.read_body(&head).await.expect("response body")
        };
        Resp { head, body, chunks }
    }

    /// True when the peer has closed (EOF or reset) — checked with a bounded wait.
    pub async fn read_until_closed(&mut self) -> std::io::Result<usize> {
        let mut buf = [0u8; 1024];
        let mut total = 0;
        loop {
            match self.io.read(&mut buf).await {
                Ok(0) => return Ok(total),
                Ok(n) => total += n,
                Err(e) => return Err(e),
            }
        }
    }
}

/// One request on a fresh connection.
pub async fn call(sim: &SimHandle, method: &str, path: &str, body: Option<&str>) -> Resp {
    Conn::connect(sim.addr())
        .await
        .request(method, path, body)
        .await
}

pub async fn post(sim: &SimHandle, path: &str, body: &str) -> Resp {
    call(sim, "POST", path, Some(body)).await
}

pub async fn get(sim: &SimHandle, path: &str) -> Resp {
    call(sim, "GET", path, None).await
}

/// A fast chat model: no load time, 2000 tokens/s, 8 tokens.
pub fn quick(name: &str) -> ModelSpec {
    ModelSpec {
        load_time: Duration::ZERO,
        tokens_per_sec: 2000.0,
        prompt_tokens_per_sec: 100_000.0,
        jitter: 0.0,
        output_tokens: 8,
        ..ModelSpec::chat(name)
    }
}

/// A sim with the given models and defaults otherwise.
pub async fn start_with(models: Vec<ModelSpec>, tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut config = SimConfig {
        models,
        ..SimConfig::default()
    };
    tweak(&mut config);
    Sim::start(config).await.expect("sim starts")
}

/// Polls `check` every few milliseconds until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Names of models in /api/ps.
pub async fn ps_names(sim: &SimHandle) -> Vec<String> {
    let ps = get(sim, "/api/ps").await.json();
    ps["models"]
        .as_array()
        .expect("models array")
        .iter()
        .map(|m| m["name"].as_str().expect("name").to_owned())
        .collect()
}

pub const METRICS: [&str; 6] = [
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
];

/// Asserts all six metrics are present, integers and non-zero.
pub fn assert_metrics(v: &Value) {
    for m in METRICS {
        let n = v[m]
            .as_u64()
            .unwrap_or_else(|| panic!("{m} missing or not an integer in {v}"));
        assert!(n > 0, "{m} is zero in {v}");
    }
}

/// The object keys in wire order.
pub fn keys(raw: &str) -> Vec<String> {
    // serde_json without preserve_order sorts keys, so read the order from the text.
    let v: Value = serde_json::from_str(raw).expect("json");
    let mut found: Vec<(usize, String)> = v
        .as_object()
        .expect("object")
        .keys()
        .map(|k| {
            let needle = format!("\"{k}\":");
            (raw.find(&needle).expect("key in text"), k.clone())
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, k)| k).collect()
}
