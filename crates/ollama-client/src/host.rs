//! `OLLAMA_HOST` parsing, by the rules of Ollama's own `envconfig.Host()`.
//!
//! Users copy the value they give the server into the client, so the client must read it
//! exactly as the server does (scheme and port defaults, bare IPv6, path prefix).

use std::fmt;

/// A parsed base URL: scheme, host, port and an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostUrl {
    pub(crate) scheme: String,
    /// The host without brackets; may be empty (`:1234` listens on every interface).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The path prefix without leading or trailing `/`; empty for none.
    pub(crate) path: String,
}

/// What [`parse`] had to correct, as Ollama does with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fixup {
    /// The port was not a number in 0..=65535 and the scheme's default was used.
    InvalidPort(String),
}

/// Parses a host value the way `envconfig.Host()` does.
///
/// The value is trimmed of spaces, then of `"` and `'`. With no `scheme://` the scheme is
/// `http` and the port 11434 (`ollama.com` alone means `https://ollama.com:443`); `http://`
/// defaults to port 80 and `https://` to 443. Everything after the first `/` is a path
/// prefix. A bad port falls back to the default and is reported as a [`Fixup`].
pub(crate) fn parse(raw: &str) -> (HostUrl, Option<Fixup>) {
    let value = raw.trim().trim_matches(|c| c == '"' || c == '\'');
    let mut default_port = 11434;
    let (scheme, hostport) = match value.split_once("://") {
        None if value == "ollama.com" => ("https", "ollama.com:443"),
        None => ("http", value),
        Some((scheme, rest)) => {
            match scheme {
                "http" => default_port = 80,
                "https" => default_port = 443,
                _ => {}
            }
            (scheme, rest)
        }
    };
    let (hostport, path) = hostport.split_once('/').unwrap_or((hostport, ""));
    let (host, port_text) = if let Some((host, port)) = split_host_port(hostport) {
        (host.to_owned(), Some(port))
    } else {
        {
            let trimmed = hostport.trim_matches(|c| c == '[' || c == ']');
            let host = if let Ok(ip) = trimmed.parse::<std::net::IpAddr>() {
                ip.to_string()
            } else if hostport.is_empty() {
                "127.0.0.1".to_owned()
            } else {
                hostport.to_owned()
            };
            (host, None)
        }
    };
    let (port, fixup) = match port_text {
        None => (default_port, None),
        Some(text) => match text.parse::<u16>() {
            Ok(port) => (port, None),
            Err(_) => (default_port, Some(Fixup::InvalidPort(text.to_owned()))),
        },
    };
    let url = HostUrl {
        scheme: scheme.to_owned(),
        host,
        port,
        path: path.trim_matches('/').to_owned(),
    };
    (url, fixup)
}

/// Go's `net.SplitHostPort`: `host:port` or `[v6]:port`; `None` when there is no port.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    // More than one colon without brackets is a bare IPv6 address, not host:port.
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

impl HostUrl {
    /// The host to connect to: an empty or unspecified address means this machine, as
    /// Ollama's `ConnectableHost()` does.
    pub(crate) fn connectable_host(&self) -> &str {
        match self.host.as_str() {
            "" | "0.0.0.0" => "127.0.0.1",
            "::" => "::1",
            other => other,
        }
    }

    /// `host:port` with IPv6 brackets, for the connectable host.
    pub(crate) fn authority(&self) -> String {
        join_host_port(self.connectable_host(), self.port)
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for HostUrl {
    /// The URL as Ollama prints it (the listening form, not the connectable one).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}",
            self.scheme,
            join_host_port(&self.host, self.port)
        )?;
        if !self.path.is_empty() {
            write!(f, "/{}", self.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(raw: &str) -> String {
        parse(raw).0.to_string()
    }

    /// The table of `envconfig/config_test.go` (ollama-api.md section 1.1).
    #[test]
    fn ollama_fixtures() {
        let table = [
            ("", "http://127.0.0.1:11434"),
            ("1.2.3.4", "http://1.2.3.4:11434"),
            (":1234", "http://:1234"),
            ("1.2.3.4:1234", "http://1.2.3.4:1234"),
            ("example.com", "http://example.com:11434"),
            ("example.com:1234", "http://example.com:1234"),
            ("0.0.0.0", "http://0.0.0.0:11434"),
            ("localhost", "http://localhost:11434"),
            ("localhost:1234", "http://localhost:1234"),
            (":66000", "http://:11434"),
            ("[::]", "http://[::]:11434"),
            ("::1", "http://[::1]:11434"),
            ("[::]:1234", "http://[::]:1234"),
            ("\"1.2.3.4\"", "http://1.2.3.4:11434"),
            ("'1.2.3.4'", "http://1.2.3.4:11434"),
            ("  1.2.3.4  ", "http://1.2.3.4:11434"),
            ("http://1.2.3.4", "http://1.2.3.4:80"),
            ("https://1.2.3.4", "https://1.2.3.4:443"),
            ("https://1.2.3.4:4321", "https://1.2.3.4:4321"),
            ("ollama.com", "https://ollama.com:443"),
            (
                "https://example.com/ollama",
                "https://example.com:443/ollama",
            ),
            ("example.com/path/", "http://example.com:11434/path"),
        ];
        for (raw, want) in table {
            assert_eq!(show(raw), want, "OLLAMA_HOST={raw:?}");
        }
    }

    #[test]
    fn bad_port_is_reported() {
        let (url, fixup) = parse(":66000");
        assert_eq!(url.port, 11434);
        assert_eq!(fixup, Some(Fixup::InvalidPort("66000".into())));
        assert_eq!(parse("1.2.3.4:1234").1, None);
    }

    #[test]
    fn connectable_hosts() {
        assert_eq!(parse(":1234").0.authority(), "127.0.0.1:1234");
        assert_eq!(parse("0.0.0.0").0.authority(), "127.0.0.1:11434");
        assert_eq!(parse("[::]").0.authority(), "[::1]:11434");
        assert_eq!(parse("::1").0.authority(), "[::1]:11434");
        assert_eq!(parse("example.com/x").0.authority(), "example.com:11434");
    }
}
