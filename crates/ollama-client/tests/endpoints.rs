//! Every endpoint against the simulator over loopback HTTP.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{EMBED_MODEL, MODEL, client, fast_sim, within};
use futures_util::StreamExt;
use ollama_client::openai::{ChatCompletionRequest, ChatMessage};
use ollama_client::{
    ChatRequest, EmbedRequest, EmbeddingsRequest, ErrorKind, Format, GenerateRequest, KeepAlive,
    Message, Options, PullRequest, ResponseSummary, ShowRequest,
};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn health_version_verify() {
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        c.health().await.unwrap();
        c.verify().await.unwrap();
        assert_eq!(c.version().await.unwrap(), "0.12.3");
    })
    .await;
    let connected = common::builder(&sim)
        .verify_on_init(true)
        .connect()
        .await
        .unwrap();
    connected.health().await.unwrap();
}

#[tokio::test]
async fn generate_plain_and_streamed() {
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        let r = c
            .generate(
                GenerateRequest::new(MODEL, "Why is the sky blue?")
                    .options(Options::new().temperature(0.0).seed(1)),
            )
            .await
            .unwrap();
        assert!(r.done);
        assert!(!r.response.is_empty());
        assert_eq!(r.done_reason.as_deref(), Some("stop"));
        let m = r.metrics();
        assert!(
            m.total_duration.is_some() && m.eval_count.is_some() && m.prompt_eval_count.is_some()
        );
        assert!(r.context.is_some());

        let mut s = c
            .generate_stream(GenerateRequest::new(MODEL, "Tell me a story"))
            .await
            .unwrap();
        let mut text = String::new();
        let mut last = None;
        let mut count = 0;
        let mut prev_at = None;
        while let Some(chunk) = s.next().await {
            let chunk = chunk.unwrap();
            if let Some(prev) = prev_at {
                assert!(chunk.received_at >= prev, "arrival instants are monotonic");
            }
            prev_at = Some(chunk.received_at);
            text.push_str(&chunk.item.response);
            count += 1;
            last = Some(chunk.item);
        }
        let last = last.unwrap();
        assert!(last.done && count > 1, "{count} chunks");
        assert!(last.metrics().eval_count.unwrap() > 0);
        assert!(!text.is_empty());
    })
    .await;
}

#[tokio::test]
async fn generate_load_and_unload() {
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        let r = c.generate(GenerateRequest::new(MODEL, "")).await.unwrap();
        assert_eq!(r.done_reason.as_deref(), Some("load"));
        // A load request answers with one object even when streaming was asked.
        let mut s = c
            .generate_stream(GenerateRequest::new(MODEL, ""))
            .await
            .unwrap();
        let first = s.next().await.unwrap().unwrap();
        assert_eq!(first.item.done_reason.as_deref(), Some("load"));
        assert!(s.next().await.is_none());
        let r = c
            .generate(GenerateRequest::new(MODEL, "").keep_alive(KeepAlive::unload()))
            .await
            .unwrap();
        assert_eq!(r.done_reason.as_deref(), Some("unload"));
    })
    .await;
}

#[tokio::test]
async fn chat_plain_streamed_with_format_and_tools() {
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        let req = ChatRequest::new(MODEL, vec![Message::system("be brief"), Message::user("hello")]);
        let r = c.chat(req.clone()).await.unwrap();
        assert!(r.done);
        assert_eq!(r.message.role, "assistant");
        assert!(!r.message.content.is_empty());
        assert!(r.metrics().eval_duration.is_some());

        let mut s = c.chat_stream(req.clone()).await.unwrap();
        let mut n = 0;
        let mut done = false;
        while let Some(chunk) = s.next().await {
            let chunk = chunk.unwrap();
            n += 1;
            done = chunk.item.done;
        }
        assert!(done && n > 1);

        let schema = serde_json::json!({"type":"object","properties":{"a":{"type":"string"}}});
        let r = c.chat(req.clone().format(Format::Schema(schema))).await.unwrap();
        assert!(r.done);
        let tool = ollama_client::Tool::function(
            "get_weather",
            "Weather for a city",
            serde_json::json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
        );
        let r = c.chat(req.tool(tool)).await.unwrap();
        assert!(r.done);
    })
    .await;
}

#[tokio::test]
async fn unknown_model_is_model_not_found() {
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        let e = c
            .generate(GenerateRequest::new("nope:latest", "hi"))
            .await
            .unwrap_err();
        assert!(e.is_model_not_found(), "{e}");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(404));
        assert!(e.message().unwrap().contains("not found"));
        let e = c
            .chat_stream(ChatRequest::new("nope", vec![Message::user("x")]))
            .await
            .unwrap_err();
        assert!(e.is_model_not_found(), "{e}");
        let e = c.embed(EmbedRequest::new("nope", "x")).await.unwrap_err();
        assert!(e.is_model_not_found(), "{e}");
        let e = c.show(ShowRequest::new("nope")).await.unwrap_err();
        assert!(e.is_model_not_found(), "{e}");
        let e = c.delete("nope").await.unwrap_err();
        assert!(e.is_model_not_found(), "{e}");
        let e = c
            .openai_chat(ChatCompletionRequest::new(
                "nope",
                vec![ChatMessage::user("x")],
            ))
            .await
            .unwrap_err();
        assert!(e.is_model_not_found(), "{e}");
    })
    .await;
}

#[tokio::test]
async fn embed_and_legacy_embeddings() {
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        let r = c
            .embed(EmbedRequest::new(
                EMBED_MODEL,
                vec!["a".to_owned(), "b c".to_owned()],
            ))
            .await
            .unwrap();
        assert_eq!(r.embeddings.len(), 2);
        for v in &r.embeddings {
            assert_eq!(v.len(), 384);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-3, "unit length, got {norm}");
        }
        assert!(r.metrics().prompt_eval_count.is_some());
        let r = c
            .embed(EmbedRequest::new(EMBED_MODEL, "one").dimensions(16))
            .await
            .unwrap();
        assert_eq!(r.embeddings[0].len(), 16);
        let r = c
            .embeddings(EmbeddingsRequest::new(EMBED_MODEL, "hello"))
            .await
            .unwrap();
        assert_eq!(r.embedding.len(), 384);
        // An embedding-only model cannot generate: a plain 400, not "model not found".
        let e = c
            .generate(GenerateRequest::new(EMBED_MODEL, "x"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HttpStatus);
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
    })
    .await;
}

#[tokio::test]
async fn models_list_ps_show_copy_delete_pull() {
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        let list = c.list_models().await.unwrap();
        let names: Vec<_> = list.models.iter().map(|m| m.name.as_str()).collect();
        assert!(
            names.contains(&MODEL) && names.contains(&EMBED_MODEL),
            "{names:?}"
        );
        assert!(
            list.models
                .iter()
                .all(|m| m.size > 0 && !m.digest.is_empty())
        );

        c.generate(GenerateRequest::new(MODEL, "")).await.unwrap();
        let ps = c.ps().await.unwrap();
        assert!(ps.models.iter().any(|m| m.name == MODEL), "{ps:?}");

        let show = c.show(ShowRequest::new(MODEL)).await.unwrap();
        assert!(!show.capabilities.is_empty());
        assert_eq!(show.details.family, "llama");

        c.copy(MODEL, "backup:latest").await.unwrap();
        assert!(
            c.list_models()
                .await
                .unwrap()
                .models
                .iter()
                .any(|m| m.name == "backup:latest")
        );
        c.delete("backup:latest").await.unwrap();
        assert!(
            !c.list_models()
                .await
                .unwrap()
                .models
                .iter()
                .any(|m| m.name == "backup:latest")
        );
        let e = c.copy("missing", "x").await.unwrap_err();
        assert!(e.is_model_not_found(), "{e}");

        let mut progress = c.pull(PullRequest::new(MODEL)).await.unwrap();
        let mut statuses = Vec::new();
        while let Some(p) = progress.next().await {
            statuses.push(p.unwrap().item.status);
        }
        assert_eq!(
            statuses.first().map(String::as_str),
            Some("pulling manifest")
        );
        assert_eq!(statuses.last().map(String::as_str), Some("success"));
    })
    .await;
}

#[tokio::test]
async fn pull_of_unknown_model_is_a_stream_error() {
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        let mut s = c.pull(PullRequest::new("does-not-exist")).await.unwrap();
        let mut kinds = Vec::new();
        while let Some(item) = s.next().await {
            kinds.push(item.map(|c| c.item.status).map_err(|e| e.kind()));
        }
        assert_eq!(
            kinds.last(),
            Some(&Err(ErrorKind::StreamError)),
            "{kinds:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn openai_chat_plain_and_streamed() {
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        let req = ChatCompletionRequest::new(MODEL, vec![ChatMessage::user("hi")]).max_tokens(16);
        let r = c.openai_chat(req.clone()).await.unwrap();
        assert_eq!(r.object, "chat.completion");
        assert!(!r.text().unwrap().is_empty());
        let usage = r.usage.unwrap();
        assert_eq!(
            usage.total_tokens,
            usage.prompt_tokens + usage.completion_tokens
        );

        let mut s = c
            .openai_chat_stream(req.clone().include_usage(true))
            .await
            .unwrap();
        let mut text = String::new();
        let mut finish = None;
        let mut usage = None;
        while let Some(chunk) = s.next().await {
            let chunk = chunk.unwrap().item;
            text.push_str(chunk.content());
            if let Some(f) = chunk.finish_reason() {
                finish = Some(f.to_owned());
            }
            if chunk.usage.is_some() {
                usage = chunk.usage;
            }
        }
        assert!(!text.is_empty());
        assert!(finish.is_some());
        assert!(usage.unwrap().completion_tokens > 0);

        // Without include_usage there is no usage chunk, and the stream still ends cleanly.
        let mut s = c.openai_chat_stream(req).await.unwrap();
        let mut saw_usage = false;
        while let Some(chunk) = s.next().await {
            saw_usage |= chunk.unwrap().item.usage.is_some();
        }
        assert!(!saw_usage);
    })
    .await;
}

#[tokio::test]
async fn default_model_fills_empty_model() {
    let sim = fast_sim().await;
    let c = common::builder(&sim).default_model(MODEL).build().unwrap();
    within(LIMIT, async {
        let r = c.generate(GenerateRequest::new("", "hi")).await.unwrap();
        assert_eq!(r.model, MODEL);
    })
    .await;
}

#[tokio::test]
async fn streams_work_through_the_futures_stream_trait() {
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        let s = c
            .chat_stream(ChatRequest::new(MODEL, vec![Message::user("hi")]))
            .await
            .unwrap();
        let items: Vec<_> = s.collect().await;
        assert!(items.iter().all(Result::is_ok));
        assert!(items.last().unwrap().as_ref().unwrap().item.done);
    })
    .await;
}

#[test]
fn blocking_client_works_without_a_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(fast_sim());
    let c = ollama_client::blocking::Client::connect(common::builder(&sim).verify_on_init(true))
        .unwrap();
    assert_eq!(c.version().unwrap(), "0.12.3");
    let r = c.generate(GenerateRequest::new(MODEL, "hi")).unwrap();
    assert!(r.done);
    let items: Vec<_> = c
        .chat_stream(ChatRequest::new(MODEL, vec![Message::user("hi")]))
        .unwrap()
        .collect();
    assert!(items.last().unwrap().as_ref().unwrap().item.done);
    // Inside an async runtime it refuses instead of panicking.
    let inside = rt.block_on(async { c.version() });
    assert_eq!(inside.unwrap_err().kind(), ErrorKind::Other);
    drop(c);
    rt.block_on(sim.shutdown());
}

#[tokio::test]
async fn request_fields_reach_the_server() {
    // Each field is sent only when set; the server's validation proves it arrived.
    let sim = fast_sim().await;
    let c = client(&sim);
    within(LIMIT, async {
        let cases: Vec<(GenerateRequest, &str)> = vec![
            (
                GenerateRequest::new(MODEL, "x").raw(true).system("s"),
                "raw mode does not support",
            ),
            (
                GenerateRequest::new(MODEL, "x").think(true),
                "does not support thinking",
            ),
            (
                GenerateRequest::new(MODEL, "x").suffix("y"),
                "does not support insert",
            ),
            (
                GenerateRequest::new(MODEL, "x").top_logprobs(21),
                "top_logprobs must be between 0 and 20",
            ),
        ];
        for (req, want) in cases {
            let e = c.generate(req).await.unwrap_err();
            assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{want}: {e}");
            assert!(e.message().unwrap().contains(want), "{want}: {e}");
        }
        // Accepted fields: format, keep_alive as a string, options, think false, context.
        let r = c
            .generate(
                GenerateRequest::new(MODEL, "x")
                    .format(Format::Json)
                    .keep_alive(KeepAlive::Text("10m".into()))
                    .think(false)
                    .context(vec![1, 2, 3])
                    .options(Options::new().num_predict(4).stop(["\n"])),
            )
            .await
            .unwrap();
        assert!(r.done);
        // A bad keep_alive string is the server's 400, with Go's parse error.
        let e = c
            .generate(GenerateRequest::new(MODEL, "x").keep_alive(KeepAlive::Text("5".into())))
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    })
    .await;
}

/// The summary methods measure the same answers the full methods read: the sim answers a
/// seeded request with the same text every time, so lengths, counts and endings agree.
#[tokio::test]
async fn summaries_measure_the_full_answers() {
    let sim = fast_sim().await;
    let c = client(&sim);
    let seeded = || Options::new().temperature(0.0).seed(7);
    let generate = || GenerateRequest::new(MODEL, "Why is the sky blue?").options(seeded());
    let chat = || ChatRequest::new(MODEL, vec![Message::user("hello")]).options(seeded());
    let same = |full: &ResponseSummary, lean: &ResponseSummary| {
        assert_eq!(
            (
                full.text_bytes,
                full.thinking_bytes,
                full.tool_calls,
                full.done
            ),
            (
                lean.text_bytes,
                lean.thinking_bytes,
                lean.tool_calls,
                lean.done
            )
        );
        assert_eq!(full.done_reason, lean.done_reason);
        let (f, l) = (full.metrics, lean.metrics);
        assert_eq!(
            (f.eval_count, f.prompt_eval_count),
            (l.eval_count, l.prompt_eval_count)
        );
        assert_eq!(f.total_duration.is_some(), l.total_duration.is_some());
    };
    within(LIMIT, async {
        let full = c.generate(generate()).await.unwrap();
        let lean = c.generate_summary(generate()).await.unwrap();
        assert!(lean.done && lean.text_bytes > 0 && lean.metrics.eval_count.is_some());
        same(&ResponseSummary::from(&full), &lean);

        let full = c.chat(chat()).await.unwrap();
        let lean = c.chat_summary(chat()).await.unwrap();
        assert!(lean.done && lean.text_bytes > 0);
        same(&ResponseSummary::from(&full), &lean);

        let mut full = c.generate_stream(generate()).await.unwrap();
        let mut lean = c.generate_stream_summary(generate()).await.unwrap();
        let mut chunks = 0;
        while let Some(f) = full.next().await {
            let l = lean.next().await.unwrap().unwrap();
            same(&ResponseSummary::from(&f.unwrap().item), &l.item);
            chunks += 1;
        }
        assert!(lean.next().await.is_none() && chunks > 1);

        let mut full = c.chat_stream(chat()).await.unwrap();
        let mut lean = c.chat_stream_summary(chat()).await.unwrap();
        while let Some(f) = full.next().await {
            let l = lean.next().await.unwrap().unwrap();
            same(&ResponseSummary::from(&f.unwrap().item), &l.item);
        }
        assert!(lean.next().await.is_none());
    })
    .await;
}
