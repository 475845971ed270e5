//! A minimal HTTP/1.1 GET over `std::net::TcpStream`, for talking to a local Prometheus or
//! Ollama. It refuses anything but loopback addresses: xtask never sends traffic off the
//! machine, and keeping it that small spares xtask an HTTP stack and TLS.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// A parsed `http://host:port/prefix` URL whose host resolved to loopback.
#[derive(Clone, Debug)]
pub(crate) struct Url {
    addr: SocketAddr,
    host_header: String,
    /// The path prefix without a trailing slash ("" for none).
    prefix: String,
}

impl Url {
    /// Parses an `http://` URL (port default 80) and checks that it names loopback.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("`{url}`: only http:// URLs on loopback are supported"))?;
        let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            bail!("`{url}`: no host");
        }
        let with_port = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_owned()
        };
        let addrs: Vec<SocketAddr> = with_port
            .to_socket_addrs()
            .with_context(|| format!("`{url}`: cannot resolve `{authority}`"))?
            .collect();
        let addr = addrs
            .iter()
            .copied()
            .find(|a| is_loopback(a.ip()))
            .with_context(|| {
                format!("`{url}`: not a loopback address; xtask only talks to 127.0.0.1/::1")
            })?;
        if addrs.iter().any(|a| !is_loopback(a.ip())) {
            bail!("`{url}`: `{authority}` also resolves off loopback; use 127.0.0.1 or [::1]");
        }
        Ok(Self {
            addr,
            host_header: authority.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
        })
    }
}

impl Url {
    /// The socket address the URL resolved to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// A response: status code and body text.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// `GET {base}{path}` where `path` starts with `/` and is already percent-encoded.
pub(crate) fn get(base: &Url, path: &str, timeout: Duration) -> Result<Response> {
    let full_path = format!("/{}{path}", base.prefix).replacen("//", "/", 1);
    let what = format!("GET http://{}{full_path}", base.host_header);
    let mut stream = TcpStream::connect_timeout(&base.addr, timeout)
        .with_context(|| format!("{what}: cannot connect to {}", base.addr))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // One write: a server may answer (and close) as soon as it has the head.
    let request = format!(
        "GET {full_path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: xtask\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        base.host_header
    );
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("{what}: sending the request failed"))?;
    read_response(BufReader::new(stream)).with_context(|| format!("{what}: bad response"))
}

fn read_response(mut reader: BufReader<TcpStream>) -> Result<Response> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("malformed status line {status_line:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("connection closed inside the headers");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.parse::<usize>().context("bad Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .with_context(|| format!("bad chunk size {size_line:?}"))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = content_length {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Percent-encodes `value` for a query string (everything but RFC 3986 unreserved bytes).
pub(crate) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_parse() {
        assert!(Url::parse("http://127.0.0.1:9090").is_ok());
        assert!(Url::parse("http://[::1]:9090/prom/").is_ok());
        assert!(Url::parse("http://10.1.2.3:9090").is_err());
        assert!(Url::parse("https://127.0.0.1:9090").is_err());
        assert!(Url::parse("http://").is_err());
    }

    #[test]
    fn prefix_is_kept() {
        let url = Url::parse("http://127.0.0.1:9/prom/").ok();
        assert_eq!(url.map(|u| u.prefix), Some("prom".to_owned()));
    }

    /// Serves one canned response on a loopback port and returns its URL.
    fn serve_once(response: &'static str) -> Url {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                // Read the whole request head before answering, like a real server.
                let mut head = Vec::new();
                let mut byte = [0_u8; 1];
                while !head.ends_with(b"\r\n\r\n")
                    && std::io::Read::read(&mut stream, &mut byte).is_ok_and(|n| n == 1)
                {
                    head.push(byte[0]);
                }
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Url::parse(&format!("http://{addr}")).expect("loopback URL")
    }

    #[test]
    fn chunked_and_sized_bodies_are_read_whole() {
        let chunked = serve_once(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n",
        );
        let response = get(&chunked, "/x", Duration::from_secs(5)).expect("chunked response");
        assert_eq!(
            (response.status, response.body.as_str()),
            (200, "hello, world")
        );
        let sized = serve_once("HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope");
        let response = get(&sized, "/", Duration::from_secs(5)).expect("sized response");
        assert_eq!((response.status, response.body.as_str()), (400, "nope"));
        let broken = serve_once("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert!(get(&broken, "/", Duration::from_secs(5)).is_err());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode_query_value(r#"up{job="x"} > 0"#),
            "up%7Bjob%3D%22x%22%7D%20%3E%200"
        );
    }
}
