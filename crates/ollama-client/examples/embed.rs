//! Embeds a few texts in one call and compares them by cosine similarity.
//!
//! `cargo run -p ollama-client --example embed -- [model]`

use ollama_client::{Client, EmbedRequest};

#[tokio::main]
async fn main() -> Result<(), ollama_client::Error> {
    let model = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "all-minilm".to_owned());
    let texts = vec![
        "The cat sat on the mat.".to_owned(),
        "A kitten rests on a rug.".to_owned(),
        "Stock prices fell.".to_owned(),
    ];

    let client = Client::builder().connect().await?;
    let answer = client
        .embed(EmbedRequest::new(model, texts.clone()))
        .await?;
    // Ollama returns unit-length vectors, so the dot product is the cosine.
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for (i, a) in answer.embeddings.iter().enumerate() {
        for (j, b) in answer.embeddings.iter().enumerate().skip(i + 1) {
            println!("{:.3}  {:?} ~ {:?}", cos(a, b), texts[i], texts[j]);
        }
    }
    eprintln!(
        "{} vectors of {} dimensions",
        answer.embeddings.len(),
        answer.embeddings.first().map_or(0, Vec::len)
    );
    Ok(())
}
