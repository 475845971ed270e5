//! The exporter end to end: its output passes `promtool check metrics`, and Debian's real
//! Prometheus scrapes it and answers a query for a counter we moved. This binary installs
//! the process-global Prometheus recorder, so it holds exactly one test.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{CHAT_MODEL, client_for, fast_sim};
use ollama_client::GenerateRequest;
use ollama_sim::{FaultKind, FaultPlan, FaultRule};
use ollama_telemetry::{EventsConfig, InstrumentedClient, TelemetryConfig, install_exporter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET: the status code and the body.
async fn http_get(addr: SocketAddr, path_and_query: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Kills the Prometheus child when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(binary: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: install Debian's Prometheus with `apt-get install prometheus` \
         (this test needs the real binaries and does not skip)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_output_and_prometheus_scrapes_a_counter() {
    require(PROMETHEUS);
    require(PROMTOOL);
    let exporter_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let exporter = install_exporter(exporter_addr).unwrap();

    // Some traffic: three successes, one 503, one stream.
    let sim = fast_sim().await;
    let config = TelemetryConfig {
        events: EventsConfig::Off,
        ..TelemetryConfig::default()
    };
    let client = InstrumentedClient::new(client_for(&sim), config).unwrap();
    for _ in 0..3 {
        client
            .generate(GenerateRequest::new(CHAT_MODEL, "hi"))
            .await
            .unwrap();
    }
    let mut stream = client
        .generate_stream(GenerateRequest::new(CHAT_MODEL, "hi"))
        .await
        .unwrap();
    while let Some(chunk) = stream.next().await {
        chunk.unwrap();
    }
    sim.set_faults(FaultPlan::none().with(FaultRule::new(FaultKind::Busy)));
    client
        .generate(GenerateRequest::new(CHAT_MODEL, "hi"))
        .await
        .unwrap_err();

    // The scrape endpoint itself.
    let (status, text) = http_get(exporter_addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    // The handle renders the same families the listener serves.
    assert!(
        exporter
            .render()
            .contains("# TYPE ollama_client_requests_total counter")
    );
    for needle in [
        "# TYPE ollama_client_requests_total counter",
        "# HELP ollama_client_requests_total",
        "# TYPE ollama_client_request_duration_seconds histogram",
        "ollama_client_model_load_duration_seconds_bucket{model=\"llama3.2:latest\",le=\"30\"}",
        "ollama_client_server_busy_total{endpoint=\"/api/generate\",model=\"llama3.2:latest\"} 1",
        "ollama_client_errors_total{endpoint=\"/api/generate\",model=\"llama3.2:latest\",kind=\"server_busy\"} 1",
    ] {
        assert!(text.contains(needle), "scrape lacks {needle:?}:\n{text}");
    }

    // promtool's linter: names, types, help, units.
    let mut promtool = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics complained:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A real Prometheus on loopback, scraping every second.
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(
        &config_path,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: ollama_client\n    static_configs:\n      \
             - targets: ['{exporter_addr}']\n"
        ),
    )
    .unwrap();
    let prometheus_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _prometheus = KillOnDrop(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={prometheus_addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let query = r#"ollama_client_requests_total{endpoint="/api/generate",outcome="success"}"#;
    let path = format!("/api/v1/query?query={}", percent_encode(query));
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut last = String::from("no answer yet");
    let value = loop {
        assert!(
            Instant::now() < deadline,
            "Prometheus did not return the counter within 25 s; last answer: {last}"
        );
        if let Ok((200, body)) = http_get(prometheus_addr, &path).await {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            if let Some(sample) = json["data"]["result"].as_array().and_then(|r| r.first()) {
                break sample["value"][1].as_str().unwrap().to_owned();
            }
            last = body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Three plain successes and one stream.
    assert_eq!(value, "4");
}
