//! Each limit proven against the simulator: sockets counted by the server, requests in
//! flight counted on both sides, under bursts of hundreds of concurrent requests.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{MODEL, builder, eventually, mixed_burst, streaming_sim, within};
use ollama_client::{ChatRequest, Client, ErrorKind, GenerateRequest, Message};
use ollama_sim::SimHandle;

const LIMIT: Duration = Duration::from_secs(60);

/// Samples the sim's open sockets and the client's counters until `stop`, recording maxima.
fn watch(
    sim: &Arc<SimHandle>,
    client: &Client,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64, u64)> {
    let (sim, client) = (Arc::clone(sim), client.clone());
    tokio::spawn(async move {
        let (mut sim_open, mut client_open, mut client_in_flight) = (0, 0, 0);
        while !stop.load(Ordering::Relaxed) {
            sim_open = sim_open.max(sim.stats().open_connections);
            let s = client.stats();
            client_open = client_open.max(s.open_connections);
            client_in_flight = client_in_flight.max(s.in_flight_requests);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (sim_open, client_open, client_in_flight)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_under_a_burst_of_plain_requests() {
    let sim = Arc::new(streaming_sim(8, f64::INFINITY).await);
    let client = builder(&sim)
        .max_connections(4)
        .max_keepalive_connections(4)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(&sim, &client, Arc::clone(&stop));
    within(LIMIT, async {
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let c = client.clone();
                tokio::spawn(async move {
                    c.generate(GenerateRequest::new(MODEL, format!("burst {i}")))
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap().done);
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let (sim_open, client_open, _) = watcher.await.unwrap();
    let stats = sim.stats();
    assert!(
        sim_open <= 4 && client_open <= 4,
        "sim saw {sim_open} open, client {client_open}"
    );
    assert!(
        stats.connections_accepted <= 4,
        "accepted {}",
        stats.connections_accepted
    );
    assert_eq!(stats.requests_to("/api/generate"), 300);
    assert_eq!(
        client.stats().connections_opened_total,
        stats.connections_accepted
    );
    assert_eq!(client.stats().in_flight_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_under_a_burst_of_streams() {
    let sim = Arc::new(streaming_sim(16, 2000.0).await);
    let client = builder(&sim)
        .max_connections(8)
        .max_keepalive_connections(8)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(&sim, &client, Arc::clone(&stop));
    let chunks = Arc::new(AtomicU64::new(0));
    within(LIMIT, async {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (c, chunks) = (client.clone(), Arc::clone(&chunks));
                tokio::spawn(async move {
                    let mut s = c
                        .chat_stream(ChatRequest::new(MODEL, vec![Message::user("hi")]))
                        .await?;
                    let mut done = false;
                    while let Some(chunk) = s.next().await {
                        done = chunk?.item.done;
                        chunks.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<bool, ollama_client::Error>(done)
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap());
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let (sim_open, client_open, _) = watcher.await.unwrap();
    assert!(
        sim_open <= 8 && client_open <= 8,
        "sim saw {sim_open} open, client {client_open}"
    );
    assert!(
        sim.stats().connections_accepted <= 8,
        "accepted {}",
        sim.stats().connections_accepted
    );
    assert_eq!(
        chunks.load(Ordering::Relaxed),
        200 * 17,
        "16 tokens plus the final chunk, every stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_requests_holds_and_streams_keep_their_slot_until_the_end() {
    let sim = Arc::new(streaming_sim(10, 1000.0).await);
    let client = builder(&sim).max_concurrent_requests(5).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(&sim, &client, Arc::clone(&stop));
    within(LIMIT, mixed_burst(&client, 200, 2)).await;
    stop.store(true, Ordering::Relaxed);
    let (_, _, client_in_flight) = watcher.await.unwrap();
    let server_max = sim.stats().max_in_flight_requests;
    assert!(
        client_in_flight <= 5,
        "client had {client_in_flight} in flight"
    );
    assert!(server_max <= 5, "server saw {server_max} in flight");
    assert!(
        server_max >= 2,
        "the burst should have run requests side by side, saw {server_max}"
    );
}

#[tokio::test]
async fn a_held_stream_holds_its_request_slot_until_dropped() {
    let sim = streaming_sim(50, 10.0).await;
    let client = builder(&sim)
        .max_concurrent_requests(1)
        .pool_timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    within(LIMIT, async {
        let held = client
            .generate_stream(GenerateRequest::new(MODEL, "slow"))
            .await
            .unwrap();
        assert_eq!(client.stats().in_flight_requests, 1);
        let e = client.version().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PoolTimeout, "{e}");
        assert!(e.is_timeout() && e.is_retryable());
        drop(held);
        assert_eq!(client.stats().in_flight_requests, 0);
        client.version().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn waiting_for_a_connection_slot_is_bounded_by_pool_timeout() {
    let sim = streaming_sim(50, 10.0).await;
    let client = builder(&sim)
        .max_connections(1)
        .max_keepalive_connections(1)
        .pool_timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    within(LIMIT, async {
        let mut held = client
            .generate_stream(GenerateRequest::new(MODEL, "slow"))
            .await
            .unwrap();
        held.next().await.unwrap().unwrap();
        let e = client.version().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PoolTimeout, "{e}");
        assert!(e.to_string().contains("max_connections"), "{e}");
        drop(held);
        // The dropped stream's socket is closed (its body was not finished), freeing the slot.
        client.version().await.unwrap();
        assert_eq!(sim.stats().connections_accepted, 2);
    })
    .await;
}

#[tokio::test]
async fn sequential_requests_reuse_one_socket() {
    let sim = streaming_sim(4, f64::INFINITY).await;
    let client = builder(&sim).build().unwrap();
    within(LIMIT, async {
        for _ in 0..20 {
            client
                .generate(GenerateRequest::new(MODEL, "x"))
                .await
                .unwrap();
            let mut s = client
                .chat_stream(ChatRequest::new(MODEL, vec![Message::user("x")]))
                .await
                .unwrap();
            while let Some(c) = s.next().await {
                c.unwrap();
            }
            client.version().await.unwrap();
            client.health().await.unwrap();
        }
    })
    .await;
    assert_eq!(sim.stats().connections_accepted, 1);
    assert_eq!(client.stats().connections_opened_total, 1);
    assert_eq!(client.stats().requests_total, 80);
}

#[tokio::test]
async fn a_stream_read_to_its_final_chunk_returns_its_socket() {
    let sim = streaming_sim(4, f64::INFINITY).await;
    let client = builder(&sim).build().unwrap();
    within(LIMIT, async {
        for _ in 0..10 {
            // Stop at the final chunk without polling for the end of the stream.
            let mut s = client
                .generate_stream(GenerateRequest::new(MODEL, "x"))
                .await
                .unwrap();
            loop {
                if s.next().await.unwrap().unwrap().item.done {
                    break;
                }
            }
            drop(s);
            // The end marker is read in the background; wait until the request is over.
            assert!(
                eventually(Duration::from_secs(5), || client.stats().in_flight_requests
                    == 0)
                .await
            );
        }
    })
    .await;
    assert_eq!(
        sim.stats().connections_accepted,
        1,
        "the final chunk's stream was drained for reuse"
    );
}

#[tokio::test]
async fn idle_sockets_expire_after_keep_alive_idle() {
    let sim = streaming_sim(4, f64::INFINITY).await;
    let client = builder(&sim)
        .keep_alive_idle(Duration::from_millis(200))
        .build()
        .unwrap();
    client.version().await.unwrap();
    assert_eq!(client.stats().open_connections, 1);
    assert!(
        eventually(Duration::from_secs(10), || client.stats().open_connections
            == 0
            && sim.stats().open_connections == 0)
        .await,
        "idle socket still open: client {:?}, sim {:?}",
        client.stats(),
        sim.stats()
    );
    client.version().await.unwrap();
    assert_eq!(sim.stats().connections_accepted, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_beyond_max_keepalive_are_closed() {
    let sim = streaming_sim(20, 200.0).await;
    let client = builder(&sim)
        .max_connections(10)
        .max_keepalive_connections(2)
        .build()
        .unwrap();
    within(LIMIT, async {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let c = client.clone();
                tokio::spawn(async move { c.generate(GenerateRequest::new(MODEL, "x")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    })
    .await;
    assert!(
        sim.stats().connections_accepted >= 3,
        "the burst needed more than two sockets"
    );
    assert!(
        eventually(Duration::from_secs(10), || client.stats().open_connections
            <= 2
            && sim.stats().open_connections <= 2)
        .await,
        "client {:?} sim {:?}",
        client.stats(),
        sim.stats()
    );
}

#[tokio::test]
async fn pool_wait_is_measured() {
    let sim = streaming_sim(4, f64::INFINITY).await;
    let client = builder(&sim).build().unwrap();
    client.version().await.unwrap();
    client.version().await.unwrap();
    let s = client.stats();
    assert_eq!(s.pool_waits_total, 2);
    assert!(s.pool_wait_max >= s.pool_wait_last);
    assert!(s.pool_wait_total >= s.pool_wait_max);
}
