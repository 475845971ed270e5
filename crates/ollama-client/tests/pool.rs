//! What the connection pool guarantees beyond the limits themselves: a returned connection
//! goes straight to a waiting request, a stream dropped midway costs only its own
//! connection, idle connections close on time without further requests, and a connection
//! the server closed while idle is never used.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{MODEL, builder, eventually, mixed_burst, streaming_sim, within};
use ollama_client::{Client, GenerateRequest};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_gets_a_returned_connection_long_before_pool_timeout() {
    let sim = streaming_sim(20, 100.0).await;
    let client = builder(&sim)
        .max_connections(1)
        .max_keepalive_connections(1)
        .pool_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    within(LIMIT, async {
        // The one connection is busy with a stream of about 200 ms.
        let mut held = client
            .generate_stream(GenerateRequest::new(MODEL, "slow"))
            .await
            .unwrap();
        held.next().await.unwrap().unwrap();
        let waiter = {
            let c = client.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                c.version().await.map(|_| started.elapsed())
            })
        };
        assert!(
            eventually(Duration::from_secs(5), || client.stats().in_flight_requests
                == 2)
            .await
        );
        // Reading the stream to its end returns the connection, which goes to the waiter.
        while let Some(chunk) = held.next().await {
            chunk.unwrap();
        }
        let waited = waiter.await.unwrap().unwrap();
        assert!(
            waited < Duration::from_secs(10),
            "waited {waited:?} for a returned connection"
        );
    })
    .await;
    assert_eq!(
        sim.stats().connections_accepted,
        1,
        "the waiter reused the returned connection"
    );
    assert_eq!(client.stats().open_connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_beyond_max_connections_are_all_served() {
    let sim = streaming_sim(4, 2000.0).await;
    let client = builder(&sim)
        .max_connections(2)
        .max_keepalive_connections(2)
        .build()
        .unwrap();
    within(LIMIT, mixed_burst(&client, 100, 3)).await;
    assert_eq!(
        sim.stats().connections_accepted,
        2,
        "every waiter was served by one of the two connections"
    );
    assert_eq!(client.stats().pool_waits_total, 100);
}

#[tokio::test]
async fn a_stream_dropped_midway_does_not_poison_the_pool() {
    let sim = streaming_sim(50, 50.0).await;
    let client = builder(&sim)
        .max_connections(2)
        .max_keepalive_connections(2)
        .build()
        .unwrap();
    within(LIMIT, async {
        for _ in 0..3 {
            let mut s = client
                .generate_stream(GenerateRequest::new(MODEL, "x"))
                .await
                .unwrap();
            s.next().await.unwrap().unwrap();
            drop(s);
            // The next requests succeed, on a new connection when needed.
            client.version().await.unwrap();
            client
                .generate(GenerateRequest::new(MODEL, "short"))
                .await
                .unwrap();
        }
        // Every dropped stream's socket was closed; one idle connection is left.
        assert!(
            eventually(Duration::from_secs(10), || client.stats().open_connections
                == 1
                && sim.stats().open_connections == 1)
            .await,
            "client {:?} sim {:?}",
            client.stats(),
            sim.stats()
        );
    })
    .await;
    assert_eq!(client.stats().in_flight_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_after_keep_alive_idle_and_again_after_reuse() {
    let sim = streaming_sim(10, 200.0).await;
    let client = builder(&sim)
        .max_connections(4)
        .max_keepalive_connections(4)
        .keep_alive_idle(Duration::from_millis(300))
        .build()
        .unwrap();
    for round in 1..=2 {
        within(LIMIT, burst(&client, 4)).await;
        assert!(client.stats().open_connections >= 2, "round {round}");
        // No request follows: the idle connections still close.
        assert!(
            eventually(Duration::from_secs(10), || client.stats().open_connections
                == 0
                && sim.stats().open_connections == 0)
            .await,
            "round {round}: client {:?} sim {:?}",
            client.stats(),
            sim.stats()
        );
    }
}

/// `n` concurrent generate requests, all successful.
async fn burst(client: &Client, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.generate(GenerateRequest::new(MODEL, "x")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn dropping_the_client_closes_its_idle_connections() {
    let sim = Arc::new(streaming_sim(4, f64::INFINITY).await);
    let client = builder(&sim).build().unwrap();
    within(LIMIT, burst(&client, 3)).await;
    assert!(sim.stats().open_connections >= 1);
    drop(client);
    assert!(
        eventually(Duration::from_secs(10), || sim.stats().open_connections
            == 0)
        .await,
        "sim {:?}",
        sim.stats()
    );
}

/// A keep-alive server that closes every connection `close_after` after its first
/// response, as a proxy with a short idle timeout does. Returns its address and a counter
/// of accepted connections.
async fn closing_server(
    close_after: Duration,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                // One request without a body (GET): read up to the blank line.
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let body = br#"{"version":"0.0.0-test"}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body).await;
                tokio::time::sleep(close_after).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_not_used() {
    let (addr, accepted) = closing_server(Duration::from_millis(50)).await;
    let client = Client::builder()
        .base_url(format!("http://{addr}"))
        .max_retries(0)
        .verify_on_init(false)
        .build()
        .unwrap();
    within(LIMIT, async {
        for i in 1..=5_u64 {
            assert_eq!(client.version().await.unwrap(), "0.0.0-test");
            // Let the server close the idle connection, and the client see it.
            assert!(
                eventually(Duration::from_secs(5), || client.stats().open_connections
                    == 0)
                .await
            );
            assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), i);
        }
    })
    .await;
}
