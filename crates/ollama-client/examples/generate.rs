//! One completion, not streamed, with the server's timings.
//!
//! `cargo run -p ollama-client --example generate -- [model] [prompt]`; the server is
//! `OLLAMA_HOST` or `http://127.0.0.1:11434` (try `cargo run -p ollama-sim` for one).

use ollama_client::{Client, GenerateRequest, Options};

#[tokio::main]
async fn main() -> Result<(), ollama_client::Error> {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| "llama3.2".to_owned());
    let prompt = args
        .next()
        .unwrap_or_else(|| "Why is the sky blue? One sentence.".to_owned());

    // `connect` checks the server first (HEAD /, with retries).
    let client = Client::builder().connect().await?;
    let request = GenerateRequest::new(model, prompt).options(Options::new().temperature(0.2));
    match client.generate(request).await {
        Ok(answer) => {
            println!("{}", answer.response);
            let m = answer.metrics();
            eprintln!(
                "total {:?}, load {:?}, {} prompt tokens, {} generated, {:.1} tokens/s",
                m.total_duration.unwrap_or_default(),
                m.load_duration.unwrap_or_default(),
                m.prompt_eval_count.unwrap_or(0),
                m.eval_count.unwrap_or(0),
                m.tokens_per_second().unwrap_or(0.0)
            );
            Ok(())
        }
        Err(e) if e.is_model_not_found() => {
            eprintln!(
                "the server does not have that model: {}",
                e.message().unwrap_or_default()
            );
            Err(e)
        }
        Err(e) => Err(e),
    }
}
