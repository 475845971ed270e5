//! Black-box checks of the endpoint facts in `ollama-api.md` (sections 1-3, 7) over real
//! loopback HTTP.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, assert_metrics, get, keys, post, quick, start_with};
use ollama_sim::{ModelSpec, Sim, SimConfig};
use serde_json::{Value, json};

async fn sim() -> ollama_sim::SimHandle {
    start_with(
        vec![
            quick("llama3.2:latest"),
            ModelSpec::embedding("all-minilm:latest", 32),
        ],
        |_| {},
    )
    .await
}

#[tokio::test]
async fn root_and_version() {
    let sim = sim().await;
    let r = get(&sim, "/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "Ollama is running");
    assert_eq!(r.head.content_type(), "text/plain; charset=utf-8");

    let r = common::call(&sim, "HEAD", "/", None).await;
    assert_eq!(r.status(), 200);
    assert!(r.body.is_empty());

    let r = get(&sim, "/api/version").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.head.content_type(), "application/json; charset=utf-8");
    assert_eq!(r.text(), r#"{"version":"0.12.3"}"#);
    sim.shutdown().await;
}

#[tokio::test]
async fn tags_and_ps_shapes() {
    let sim = sim().await;
    let r = get(&sim, "/api/tags").await;
    assert_eq!(r.head.content_type(), "application/json; charset=utf-8");
    let v = r.json();
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    let first = serde_json::to_string(&models[0]).unwrap();
    let raw = r.text();
    let start = raw.find("{\"name\"").unwrap();
    let end = start + raw[start..].find("}}").unwrap() + 2;
    assert_eq!(
        keys(&raw[start..end]),
        ["name", "model", "modified_at", "size", "digest", "details"]
    );
    assert_eq!(models[0]["name"], "llama3.2:latest", "{first}");
    let digest = models[0]["digest"].as_str().unwrap();
    assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()));
    for k in [
        "parent_model",
        "format",
        "family",
        "families",
        "parameter_size",
        "quantization_level",
    ] {
        assert!(models[0]["details"].get(k).is_some(), "details.{k}");
    }
    assert_eq!(get(&sim, "/api/ps").await.text(), r#"{"models":[]}"#);
    sim.shutdown().await;

    let empty = Sim::start(SimConfig {
        models: vec![],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(get(&empty, "/api/tags").await.text(), r#"{"models":[]}"#);
    assert_eq!(
        get(&empty, "/v1/models").await.json(),
        json!({"object":"list","data":null})
    );
    empty.shutdown().await;
}

#[tokio::test]
async fn generate_streams_ndjson_by_default() {
    let sim = sim().await;
    let r = post(
        &sim,
        "/api/generate",
        r#"{"model":"llama3.2","prompt":"Why is the sky blue?"}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.head.content_type(), "application/x-ndjson");
    assert!(r.head.is_chunked());
    // Every chunk is exactly one whole line: the server flushes per line.
    for c in &r.chunks {
        assert!(c.ends_with(b"\n") && !c[..c.len() - 1].contains(&b'\n'));
    }
    let lines = r.lines();
    let (last, rest) = lines.split_last().unwrap();
    assert!(!rest.is_empty());
    for l in rest {
        assert_eq!(l["done"], false);
        assert_eq!(l["model"], "llama3.2", "the request's name is echoed");
        for m in common::METRICS.iter().chain(&["done_reason", "context"]) {
            assert!(l.get(m).is_none(), "non-final line has {m}: {l}");
        }
    }
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["response"], "");
    assert_metrics(last);
    assert_eq!(last["eval_count"].as_u64().unwrap(), rest.len() as u64);
    let ctx = last["context"].as_array().unwrap();
    assert_eq!(
        ctx.len() as u64,
        last["prompt_eval_count"].as_u64().unwrap() + last["eval_count"].as_u64().unwrap()
    );
    let raw = String::from_utf8(r.chunks.last().unwrap().clone()).unwrap();
    assert_eq!(
        keys(raw.trim_end()),
        [
            "model",
            "created_at",
            "response",
            "done",
            "done_reason",
            "context",
            "total_duration",
            "load_duration",
            "prompt_eval_count",
            "prompt_eval_duration",
            "eval_count",
            "eval_duration"
        ]
    );
    let created = last["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && !created.contains(".0Z") && created.contains('T'));

    // The same request without streaming: the same text, one JSON object.
    let streamed: String = rest
        .iter()
        .map(|l| l["response"].as_str().unwrap())
        .collect();
    let r = post(
        &sim,
        "/api/generate",
        r#"{"model":"llama3.2","prompt":"Why is the sky blue?","stream":false}"#,
    )
    .await;
    assert_eq!(r.head.content_type(), "application/json; charset=utf-8");
    assert!(r.head.header("content-length").is_some());
    let v = r.json();
    assert_eq!(
        v["response"].as_str().unwrap(),
        streamed,
        "deterministic output"
    );
    assert_eq!(v["done"], true);
    assert_eq!(v["done_reason"], "stop");
    assert_metrics(&v);
    assert!(v["context"].is_array());

    // raw:true drops the context.
    let v = post(
        &sim,
        "/api/generate",
        r#"{"model":"llama3.2","prompt":"x","raw":true,"stream":false}"#,
    )
    .await
    .json();
    assert!(v.get("context").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn num_predict_caps_output_with_length() {
    let sim = sim().await;
    let v = post(
        &sim,
        "/api/generate",
        r#"{"model":"llama3.2","prompt":"x","stream":false,"options":{"num_predict":3}}"#,
    )
    .await
    .json();
    assert_eq!(v["done_reason"], "length");
    assert_eq!(v["eval_count"], 3);
    let lines = post(&sim, "/api/chat", r#"{"model":"llama3.2","messages":[{"role":"user","content":"x"}],"options":{"num_predict":2}}"#)
        .await
        .lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["done_reason"], "length");
    // A wrong option type is a 500 with Ollama's text.
    let r = post(
        &sim,
        "/api/generate",
        r#"{"model":"llama3.2","prompt":"x","options":{"temperature":"hot"}}"#,
    )
    .await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json(),
        json!({"error":"option \"temperature\" must be of type float32"})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn chat_streams_and_returns_whole_messages() {
    let sim = sim().await;
    let body = r#"{"model":"llama3.2","messages":[{"role":"user","content":"hello"}]}"#;
    let r = post(&sim, "/api/chat", body).await;
    assert_eq!(r.head.content_type(), "application/x-ndjson");
    let lines = r.lines();
    let (last, rest) = lines.split_last().unwrap();
    for l in rest {
        assert_eq!(l["done"], false);
        assert_eq!(l["message"]["role"], "assistant");
        assert!(l.get("total_duration").is_none());
    }
    assert_eq!(last["message"], json!({"role":"assistant","content":""}));
    assert_eq!(last["done_reason"], "stop");
    assert!(last.get("context").is_none());
    assert_metrics(last);
    let raw = String::from_utf8(r.chunks.last().unwrap().clone()).unwrap();
    assert_eq!(
        keys(raw.trim_end()),
        [
            "model",
            "created_at",
            "message",
            "done",
            "done_reason",
            "total_duration",
            "load_duration",
            "prompt_eval_count",
            "prompt_eval_duration",
            "eval_count",
            "eval_duration"
        ]
    );
    let streamed: String = rest
        .iter()
        .map(|l| l["message"]["content"].as_str().unwrap())
        .collect();
    let v = post(
        &sim,
        "/api/chat",
        r#"{"model":"llama3.2","messages":[{"role":"user","content":"hello"}],"stream":false}"#,
    )
    .await
    .json();
    assert_eq!(v["message"]["role"], "assistant");
    assert_eq!(v["message"]["content"].as_str().unwrap(), streamed);
    assert_metrics(&v);
    sim.shutdown().await;
}

#[tokio::test]
async fn empty_prompt_loads_and_keep_alive_zero_unloads() {
    let sim = sim().await;
    let r = post(&sim, "/api/generate", r#"{"model":"llama3.2"}"#).await;
    assert_eq!(r.head.content_type(), "application/json; charset=utf-8");
    let v = r.json();
    assert_eq!(v["response"], "");
    assert_eq!(v["done"], true);
    assert_eq!(v["done_reason"], "load");
    assert!(v.get("total_duration").is_none());
    assert_eq!(common::ps_names(&sim).await, ["llama3.2:latest"]);

    let v = post(
        &sim,
        "/api/generate",
        r#"{"model":"llama3.2","keep_alive":0}"#,
    )
    .await
    .json();
    assert_eq!(v["done_reason"], "unload");
    common::eventually(std::time::Duration::from_secs(5), "unload", || async {
        common::ps_names(&sim).await.is_empty()
    })
    .await;

    let r = post(&sim, "/api/chat", r#"{"model":"llama3.2","messages":[]}"#).await;
    let raw = r.text();
    assert_eq!(
        keys(&raw),
        ["model", "created_at", "message", "done", "done_reason"]
    );
    let v = r.json();
    assert_eq!(v["model"], "llama3.2");
    assert_eq!(v["message"], json!({"role":"assistant","content":""}));
    assert_eq!(v["done_reason"], "load");
    let v = post(
        &sim,
        "/api/chat",
        r#"{"model":"llama3.2","messages":[],"keep_alive":0}"#,
    )
    .await
    .json();
    assert_eq!(v["done_reason"], "unload");
    // Unloading a model that does not exist is a 404.
    assert_eq!(
        post(&sim, "/api/generate", r#"{"model":"nope","keep_alive":0}"#)
            .await
            .status(),
        404
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn native_errors_match_ollama() {
    let sim = sim().await;
    let cases: Vec<(&str, &str, u16, Value)> = vec![
        (
            "/api/generate",
            r#"{"model":"nope","prompt":"x"}"#,
            404,
            json!({"error":"model 'nope' not found"}),
        ),
        (
            "/api/chat",
            r#"{"model":"nope","messages":[]}"#,
            404,
            json!({"error":"model 'nope' not found"}),
        ),
        (
            "/api/generate",
            r#"{"prompt":"x"}"#,
            404,
            json!({"error":"model '' not found"}),
        ),
        (
            "/api/chat",
            r#"{"messages":[]}"#,
            400,
            json!({"error":"model is required"}),
        ),
        (
            "/api/generate",
            "",
            400,
            json!({"error":"missing request body"}),
        ),
        (
            "/api/chat",
            "",
            400,
            json!({"error":"missing request body"}),
        ),
        (
            "/api/generate",
            "{bad",
            400,
            json!({"error":"invalid character 'b' looking for beginning of object key string"}),
        ),
        (
            "/api/generate",
            r#"{"model":"llama3.2","prompt":"x","keep_alive":"-1"}"#,
            400,
            json!({"error":"time: missing unit in duration \"-1\""}),
        ),
        (
            "/api/embed",
            r#"{"model":"nope","input":"x"}"#,
            404,
            json!({"error":"model \"nope\" not found, try pulling it first"}),
        ),
        (
            "/api/embeddings",
            r#"{"model":"nope","prompt":"x"}"#,
            404,
            json!({"error":"model \"nope\" not found, try pulling it first"}),
        ),
        (
            "/api/embeddings",
            r#"{"prompt":"x"}"#,
            400,
            json!({"error":"model is required"}),
        ),
        (
            "/api/embed",
            r#"{"model":"all-minilm","input":3}"#,
            400,
            json!({"error":"invalid input type"}),
        ),
        (
            "/api/generate",
            r#"{"model":"llama3.2","prompt":"x","top_logprobs":21}"#,
            400,
            json!({"error":"top_logprobs must be between 0 and 20"}),
        ),
        (
            "/api/generate",
            r#"{"model":"llama3.2","prompt":"x","think":true}"#,
            400,
            json!({"error":"\"llama3.2\" does not support thinking"}),
        ),
        (
            "/api/generate",
            r#"{"model":"all-minilm","prompt":"x"}"#,
            400,
            json!({"error":"\"all-minilm\" does not support generate"}),
        ),
        (
            "/api/chat",
            r#"{"model":"all-minilm","messages":[{"role":"user","content":"x"}]}"#,
            400,
            json!({"error":"\"all-minilm\" does not support chat"}),
        ),
        (
            "/api/generate",
            r#"{"model":"llama3.2","prompt":"x","suffix":"y"}"#,
            400,
            json!({"error":"registry.ollama.ai/library/llama3.2:latest does not support insert"}),
        ),
        (
            "/api/generate",
            r#"{"model":"llama3.2","prompt":"x","raw":true,"system":"s"}"#,
            400,
            json!({"error":"raw mode does not support template, system, or context"}),
        ),
        ("/api/show", "{}", 400, json!({"error":"model is required"})),
        (
            "/api/show",
            r#"{"model":"nope"}"#,
            404,
            json!({"error":"model 'nope:latest' not found"}),
        ),
        (
            "/api/copy",
            r#"{"source":"nope","destination":"b"}"#,
            404,
            json!({"error":"model \"nope\" not found"}),
        ),
        (
            "/api/pull",
            r#"{"model":"nope","stream":false}"#,
            500,
            json!({"error":"pull model manifest: file does not exist"}),
        ),
    ];
    for (path, body, status, expected) in cases {
        let r = post(&sim, path, body).await;
        assert_eq!(r.status(), status, "{path} {body}: {}", r.text());
        assert_eq!(r.json(), expected, "{path} {body}");
        assert!(
            r.head.content_type().starts_with("application/json"),
            "{path} {body}"
        );
    }
    let r = common::call(&sim, "DELETE", "/api/delete", Some(r#"{"model":"nope"}"#)).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json(), json!({"error":"model 'nope' not found"}));

    // gin's own answers.
    let r = get(&sim, "/api/show").await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.text(), "405 method not allowed");
    assert_eq!(r.head.content_type(), "text/plain");
    let r = get(&sim, "/api/nothing").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.text(), "404 page not found");
    assert_eq!(r.head.content_type(), "text/plain");
    sim.shutdown().await;
}

#[tokio::test]
async fn embeddings_are_normalised_on_embed_only() {
    let sim = sim().await;
    let r = post(
        &sim,
        "/api/embed",
        r#"{"model":"all-minilm","input":["a","b","a"]}"#,
    )
    .await;
    assert_eq!(r.head.content_type(), "application/json; charset=utf-8");
    let v = r.json();
    assert_eq!(v["model"], "all-minilm");
    let e = v["embeddings"].as_array().unwrap();
    assert_eq!(e.len(), 3);
    for vec in e {
        let vec: Vec<f64> = vec
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(vec.len(), 32);
        let norm = vec.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "norm {norm}");
    }
    assert_eq!(e[0], e[2], "same input, same vector");
    assert_ne!(e[0], e[1]);
    assert!(v["total_duration"].as_u64().unwrap() > 0);
    assert!(v["prompt_eval_count"].as_u64().unwrap() > 0);
    assert!(
        v.get("prompt_eval_duration").is_none() && v.get("eval_count").is_none(),
        "embed carries only total, load and prompt_eval_count: {v}"
    );

    let v = post(
        &sim,
        "/api/embed",
        r#"{"model":"all-minilm","input":"a","dimensions":8}"#,
    )
    .await
    .json();
    assert_eq!(v["embeddings"][0].as_array().unwrap().len(), 8);

    let v = post(&sim, "/api/embed", r#"{"model":"all-minilm","input":[]}"#)
        .await
        .json();
    assert_eq!(v, json!({"model":"all-minilm","embeddings":[]}));

    let v = post(
        &sim,
        "/api/embeddings",
        r#"{"model":"all-minilm","prompt":"a"}"#,
    )
    .await
    .json();
    let raw: Vec<f64> = v["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(raw.len(), 32);
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(
        (norm - 1.0).abs() > 1e-3,
        "legacy vectors are not normalised"
    );
    let v = post(
        &sim,
        "/api/embeddings",
        r#"{"model":"all-minilm","prompt":""}"#,
    )
    .await
    .json();
    assert_eq!(v, json!({"embedding":[]}));
    sim.shutdown().await;
}

#[tokio::test]
async fn show_copy_delete_pull() {
    let sim = sim().await;
    // ollama-rs sends the deprecated `name`.
    let r = post(&sim, "/api/show", r#"{"name":"llama3.2"}"#).await;
    assert_eq!(r.status(), 200);
    let v = r.json();
    assert!(v["model_info"].is_object());
    assert_eq!(v["capabilities"][0], "completion");
    assert_eq!(v["details"]["family"], "llama");
    assert!(v["modelfile"].is_string() && v["template"].is_string() && v["parameters"].is_string());

    let r = post(
        &sim,
        "/api/copy",
        r#"{"source":"llama3.2","destination":"backup"}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.body.is_empty());
    let names: Vec<String> = get(&sim, "/api/tags").await.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names[0], "backup:latest", "newest first");

    let r = common::call(
        &sim,
        "DELETE",
        "/api/delete",
        Some(r#"{"name":"llama3.2"}"#),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.body.is_empty());
    assert_eq!(
        post(
            &sim,
            "/api/generate",
            r#"{"model":"llama3.2","prompt":"x"}"#
        )
        .await
        .status(),
        404
    );

    // Pull brings it back with a progress stream.
    let r = post(&sim, "/api/pull", r#"{"model":"llama3.2"}"#).await;
    assert_eq!(r.head.content_type(), "application/x-ndjson");
    let lines = r.lines();
    assert_eq!(lines[0], json!({"status":"pulling manifest"}));
    let progress: Vec<&Value> = lines.iter().filter(|l| l.get("total").is_some()).collect();
    assert!(progress.len() >= 2);
    assert!(
        progress[0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let last = progress.last().unwrap();
    assert_eq!(last["completed"], last["total"]);
    assert_eq!(lines.last().unwrap(), &json!({"status":"success"}));
    assert_eq!(
        post(
            &sim,
            "/api/generate",
            r#"{"model":"llama3.2","prompt":"x","stream":false}"#
        )
        .await
        .status(),
        200
    );

    let lines = post(&sim, "/api/pull", r#"{"model":"nope"}"#).await.lines();
    assert_eq!(
        lines,
        [
            json!({"status":"pulling manifest"}),
            json!({"error":"pull model manifest: file does not exist"})
        ]
    );
    let r = post(&sim, "/api/pull", r#"{"name":"llama3.2","stream":false}"#).await;
    assert_eq!(r.head.content_type(), "application/json");
    assert_eq!(r.json(), json!({"status":"success"}));
    sim.shutdown().await;
}

#[tokio::test]
async fn openai_chat_completions() {
    let sim = sim().await;
    let r = post(
        &sim,
        "/v1/chat/completions",
        r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.head.content_type(), "application/json");
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["system_fingerprint"], "fp_ollama");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = post(
        &sim,
        "/v1/chat/completions",
        r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
    )
    .await;
    assert_eq!(r.head.content_type(), "text/event-stream");
    let body = r.text();
    let events: Vec<&str> = body.split_inclusive("\n\n").collect();
    assert!(
        events
            .iter()
            .all(|e| e.starts_with("data: ") && e.ends_with("\n\n")),
        "{body}"
    );
    assert_eq!(*events.last().unwrap(), "data: [DONE]\n\n");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.trim_start_matches("data: ").trim_end()).unwrap())
        .collect();
    let n = chunks.len();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    for c in &chunks[1..n - 2] {
        assert!(
            c["choices"][0]["delta"].get("role").is_none(),
            "role only first"
        );
        assert!(c["choices"][0]["finish_reason"].is_null());
    }
    assert_eq!(chunks[n - 2]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(
        chunks[n - 1]["usage"]["completion_tokens"]
            .as_u64()
            .unwrap(),
        (n - 2) as u64
    );
    assert!(chunks.iter().all(|c| c["created"] == chunks[0]["created"]));
    let streamed: String = chunks[..n - 2]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, text);

    // Without include_usage: no usage chunk.
    let body = post(
        &sim,
        "/v1/chat/completions",
        r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
    )
    .await
    .text();
    assert!(!body.contains("\"usage\""));
    assert!(body.ends_with("data: [DONE]\n\n"));

    let r = post(
        &sim,
        "/v1/chat/completions",
        r#"{"model":"llama3.2","messages":[]}"#,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.head.content_type(), "application/json; charset=utf-8");
    assert_eq!(
        r.json(),
        json!({"error":{"message":"[] is too short - 'messages'","type":"invalid_request_error","param":null,"code":null}})
    );
    // gin's bind error passes through the /v1 middleware as is: Go's bare EOF.
    let r = post(&sim, "/v1/chat/completions", "").await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json()["error"]["message"], "EOF");
    let r = post(
        &sim,
        "/v1/chat/completions",
        r#"{"model":"llama3.2","messages":[{"role":"user"}]}"#,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json()["error"]["message"],
        "invalid message content type: <nil>"
    );
    let r = post(
        &sim,
        "/v1/chat/completions",
        r#"{"model":"nope","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.head.content_type(), "application/json");
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    sim.shutdown().await;
}

#[tokio::test]
async fn openai_completions_embeddings_models() {
    let sim = sim().await;
    let v = post(
        &sim,
        "/v1/completions",
        r#"{"model":"llama3.2","prompt":"x","max_tokens":2}"#,
    )
    .await
    .json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 2);

    let body = post(&sim, "/v1/completions", r#"{"model":"llama3.2","prompt":"x","stream":true,"stream_options":{"include_usage":true}}"#)
        .await
        .text();
    let events: Vec<Value> = body
        .split("\n\n")
        .filter(|e| !e.is_empty() && *e != "data: [DONE]")
        .map(|e| serde_json::from_str(e.trim_start_matches("data: ")).unwrap())
        .collect();
    assert!(body.ends_with("data: [DONE]\n\n"));
    let last = events.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["usage"]["total_tokens"] == 0)
    );

    let v = post(
        &sim,
        "/v1/embeddings",
        r#"{"model":"all-minilm","input":["a","b"]}"#,
    )
    .await
    .json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 32);
    let v = post(
        &sim,
        "/v1/embeddings",
        r#"{"model":"all-minilm","input":"a","encoding_format":"base64"}"#,
    )
    .await
    .json();
    // 32 little-endian f32s are 128 bytes: 172 base64 characters.
    assert_eq!(
        v["data"][0]["embedding"].as_str().unwrap().len(),
        4 * (32 * 4usize).div_ceil(3)
    );
    let r = post(
        &sim,
        "/v1/embeddings",
        r#"{"model":"all-minilm","input":"a","encoding_format":"x"}"#,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json()["error"]["message"],
        "Invalid value for 'encoding_format' = x. Supported values: ['float', 'base64']."
    );
    assert_eq!(
        post(
            &sim,
            "/v1/embeddings",
            r#"{"model":"all-minilm","input":[]}"#
        )
        .await
        .json()["error"]["message"],
        "invalid input"
    );

    let r = get(&sim, "/v1/models").await;
    assert_eq!(r.head.content_type(), "application/json");
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "llama3.2:latest");
    assert_eq!(v["data"][0]["owned_by"], "library");
    let v = get(&sim, "/v1/models/llama3.2").await.json();
    assert_eq!(v["id"], "llama3.2");
    assert_eq!(v["object"], "model");
    let r = get(&sim, "/v1/models/nope").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    sim.shutdown().await;
}

#[tokio::test]
async fn stats_count_connections_and_requests() {
    let sim = sim().await;
    let mut conn = Conn::connect(sim.addr()).await;
    for _ in 0..3 {
        assert_eq!(
            conn.request("GET", "/api/version", None).await.status(),
            200
        );
    }
    let _ = post(
        &sim,
        "/api/generate",
        r#"{"model":"llama3.2","prompt":"x","stream":false}"#,
    )
    .await;
    let _ = get(&sim, "/nope").await;
    common::eventually(
        std::time::Duration::from_secs(5),
        "in-flight drains",
        || async { sim.stats().in_flight_requests == 0 },
    )
    .await;
    let s = sim.stats();
    assert_eq!(s.requests_seen, 5);
    assert_eq!(s.requests_to("/api/version"), 3);
    assert_eq!(s.requests_to("/api/generate"), 1);
    assert_eq!(s.requests_to("unmatched"), 1);
    assert_eq!(s.connections_accepted, 3, "keep-alive reuses one socket");
    assert!(
        s.open_connections >= 1,
        "the first connection is still open"
    );
    assert!(s.max_in_flight_requests >= 1);
    drop(conn);
    common::eventually(
        std::time::Duration::from_secs(5),
        "connections close",
        || async { sim.stats().open_connections == 0 },
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn html_is_escaped_like_go() {
    let sim = start_with(vec![quick("a<b>&c")], |_| {}).await;
    let r = get(&sim, "/api/tags").await;
    assert!(
        r.text()
            .contains(r#""name":"a\u003cb\u003e\u0026c:latest""#),
        "{}",
        r.text()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn thinking_models_think_first_unless_told_not_to() {
    let thinker = ModelSpec {
        capabilities: vec![
            ollama_sim::Capability::Completion,
            ollama_sim::Capability::Thinking,
        ],
        thinking_tokens: 3,
        ..quick("qwen3:latest")
    };
    let sim = start_with(vec![thinker], |_| {}).await;
    let lines = post(&sim, "/api/generate", r#"{"model":"qwen3","prompt":"x"}"#)
        .await
        .lines();
    let (last, rest) = lines.split_last().unwrap();
    for l in &rest[..3] {
        assert_eq!(l["response"], "");
        assert!(!l["thinking"].as_str().unwrap().is_empty(), "{l}");
    }
    for l in &rest[3..] {
        assert!(l.get("thinking").is_none(), "{l}");
    }
    assert_eq!(last["eval_count"].as_u64().unwrap(), rest.len() as u64);

    let v = post(
        &sim,
        "/api/chat",
        r#"{"model":"qwen3","messages":[{"role":"user","content":"x"}],"stream":false}"#,
    )
    .await
    .json();
    assert_eq!(
        v["message"]["thinking"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        3
    );
    let v = post(&sim, "/api/chat", r#"{"model":"qwen3","messages":[{"role":"user","content":"x"}],"stream":false,"think":false}"#)
        .await
        .json();
    assert!(v["message"].get("thinking").is_none());
    let v = post(
        &sim,
        "/v1/chat/completions",
        r#"{"model":"qwen3","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await
    .json();
    assert!(
        !v["choices"][0]["message"]["reasoning"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    sim.shutdown().await;
}
