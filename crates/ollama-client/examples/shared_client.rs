//! One client shared by many tasks: the limits hold for all of them together.
//!
//! 100 tasks ask at once; at most 8 requests are in flight and at most 4 sockets are open,
//! whatever the tasks do. `cargo run -p ollama-client --example shared_client -- [model]`

use std::time::Duration;

use ollama_client::{Client, GenerateRequest};

#[tokio::main]
async fn main() -> Result<(), ollama_client::Error> {
    let model = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "llama3.2".to_owned());
    let client = Client::builder()
        .max_connections(4)
        .max_keepalive_connections(4)
        .max_concurrent_requests(8)
        // Waiting for a slot longer than this is an error of kind `pool_timeout`.
        .pool_timeout(Duration::from_secs(120))
        .connect()
        .await?;

    let tasks: Vec<_> = (0..100)
        .map(|i| {
            // Clones share one pool, one set of limits and one set of counters.
            let client = client.clone();
            let model = model.clone();
            tokio::spawn(async move {
                client
                    .generate(GenerateRequest::new(model, format!("Say the number {i}.")))
                    .await
            })
        })
        .collect();

    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        match task.await {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("{}: {e}", e.kind());
            }
            Err(join) => {
                failed += 1;
                eprintln!("task failed: {join}");
            }
        }
    }
    let stats = client.stats();
    println!(
        "{ok} ok, {failed} failed; {} sockets opened, mean pool wait {:?}",
        stats.connections_opened_total,
        stats.pool_wait_mean().unwrap_or_default()
    );
    Ok(())
}
