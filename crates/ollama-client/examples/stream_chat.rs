//! A streamed chat: prints tokens as they arrive, then time to first token and the gaps.
//!
//! `cargo run -p ollama-client --example stream_chat -- [model] [question]`

use std::io::Write;
use std::time::Instant;

use ollama_client::{ChatRequest, Client, Message};

#[tokio::main]
async fn main() -> Result<(), ollama_client::Error> {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| "llama3.2".to_owned());
    let question = args
        .next()
        .unwrap_or_else(|| "Name three rivers.".to_owned());

    let client = Client::builder().connect().await?;
    let request = ChatRequest::new(
        model,
        vec![Message::system("Answer briefly."), Message::user(question)],
    );
    let sent = Instant::now();
    let mut stream = client.chat_stream(request).await?;
    let mut first = None;
    let mut last = sent;
    let mut max_gap = std::time::Duration::ZERO;
    // Every chunk, a mid-stream error, or a truncated stream: nothing is dropped silently.
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        first.get_or_insert(chunk.received_at);
        max_gap = max_gap.max(chunk.received_at - last);
        last = chunk.received_at;
        print!("{}", chunk.item.message.content);
        let _ = std::io::stdout().flush();
        if chunk.item.done {
            let m = chunk.item.metrics();
            println!();
            eprintln!(
                "ttft {:?}, longest gap {:?}, {} tokens, server total {:?}",
                first.map(|f| f - sent).unwrap_or_default(),
                max_gap,
                m.eval_count.unwrap_or(0),
                m.total_duration.unwrap_or_default()
            );
        }
    }
    Ok(())
}
