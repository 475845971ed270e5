//! Shards merge losslessly: three load generators running a third of a test each give the
//! same counts as one generator running the whole, and merged percentiles match the exact
//! percentiles of all shards' requests within histogram precision. Different scenarios
//! refuse to merge with an error naming the files.
#![allow(clippy::unwrap_used)]

mod common;

use ollama_loadtest::{ClientSettings, LoadTestConfig, Mode, Prompts, Report, Stop, WeightedModel};
use ollama_perfreport::{Document, Merged, merge_documents, read_document};

fn config(base_url: &str, workers: usize, requests: u64, seed: u64) -> LoadTestConfig {
    let mut c = LoadTestConfig {
        client: ClientSettings {
            base_url: Some(base_url.to_owned()),
            ..ClientSettings::default()
        },
        mode: Mode::Closed {
            workers,
            delay: std::time::Duration::ZERO,
        },
        stop: Stop::Requests(requests),
        warmup: 1,
        seed,
        simulated: true,
        ..LoadTestConfig::default()
    };
    c.workload.endpoint = ollama_loadtest::Endpoint::Chat;
    c.workload.stream = true;
    c.workload.models = vec![WeightedModel {
        name: "llama3.2:latest".into(),
        weight: 1,
    }];
    c.workload.prompts = Prompts::single("shard me");
    c.workload.options.num_predict = Some(8);
    c
}

/// Exact nearest-rank percentile of `values`.
fn exact(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_merge_into_the_whole() {
    let sim = common::sim_scaled(200.0, 0.05).await;
    let url = sim.base_url();
    // One generator with 3 workers and 36 requests...
    let whole = ollama_loadtest::run(config(&url, 3, 36, 1)).await.unwrap();
    // ...and three generators with 1 worker and 12 requests each, at the same time.
    let (east, west, north) = tokio::join!(
        ollama_loadtest::run(config(&url, 1, 12, 2)),
        ollama_loadtest::run(config(&url, 1, 12, 3)),
        ollama_loadtest::run(config(&url, 1, 12, 4)),
    );
    sim.shutdown().await;
    let shards = [east.unwrap(), west.unwrap(), north.unwrap()];

    // Through files, as the CLI does.
    let dir = tempfile::tempdir().unwrap();
    let mut docs = Vec::new();
    for (i, r) in shards.iter().enumerate() {
        let p = dir.path().join(format!("shard-{i}.json"));
        r.write_atomic(&p).unwrap();
        docs.push((p.display().to_string(), read_document(&p).unwrap()));
    }
    let Merged::LoadTest(merged) = merge_documents(docs).unwrap() else {
        panic!("load-test shards merge into a load-test report");
    };
    let (m, w) = (&merged.summary, &whole.summary);
    assert_eq!(m.total_requests, w.total_requests);
    assert_eq!(m.successes, w.successes);
    assert_eq!(m.failures, w.failures);
    assert_eq!(m.output_tokens_total, w.output_tokens_total);
    assert_eq!(m.prompt_tokens_total, w.prompt_tokens_total);
    assert_eq!(merged.config.workers, whole.config.workers);
    assert_eq!(merged.config.requests, whole.config.requests);
    assert_eq!(
        merged.histogram("e2e").unwrap().unwrap().len(),
        w.successes,
        "every success is in the merged histogram"
    );
    // Rates add up: the shards ran side by side.
    let rps: f64 = shards.iter().map(|r| r.summary.requests_per_second).sum();
    assert!((m.requests_per_second - rps).abs() < 1e-9);

    // Each shard kept every request as a sample (12 <= sample_count), so the exact
    // percentiles of the union are known; the merged histogram must match them to within
    // its 3 significant digits (plus the microsecond recording unit).
    let mut e2e: Vec<f64> = shards
        .iter()
        .flat_map(|r| r.samples.requests.iter().map(|s| s.e2e_ms))
        .collect();
    assert_eq!(e2e.len() as u64, m.successes);
    let d = merged.metrics.e2e_ms.clone().unwrap();
    for (q, got) in [(0.5, d.p50), (0.95, d.p95), (0.99, d.p99)] {
        let want = exact(&mut e2e, q);
        assert!(
            (got - want).abs() <= want * 0.002 + 0.002,
            "p{q}: merged {got} ms, exact {want} ms"
        );
    }
    assert!((m.latency_ms.p99 - d.p99).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_scenarios_and_kinds_refuse_to_merge() {
    let sim = common::sim_scaled(200.0, 0.05).await;
    let url = sim.base_url();
    let chat = ollama_loadtest::run(config(&url, 1, 4, 1)).await.unwrap();
    let mut generate_cfg = config(&url, 1, 4, 2);
    generate_cfg.workload.endpoint = ollama_loadtest::Endpoint::Generate;
    let generate = ollama_loadtest::run(generate_cfg).await.unwrap();
    // Two suite-report shards of a tiny suite, merged repetition by repetition.
    let suite = common::suite_of("shards", 4);
    let (s1, s2) = tokio::join!(common::run(&suite, &sim, 1), common::run(&suite, &sim, 2));
    sim.shutdown().await;

    let doc = |r: &Report| Document::LoadTest(Box::new(r.clone()));
    let message = |r: Result<Merged, ollama_perfreport::Error>| match r {
        Ok(_) => panic!("these reports must not merge"),
        Err(e) => e.to_string(),
    };
    let err = message(merge_documents(vec![
        ("east.json".into(), doc(&chat)),
        ("west.json".into(), doc(&generate)),
    ]));
    assert!(
        err.contains("east.json") && err.contains("west.json") && err.contains("endpoint"),
        "{err}"
    );
    let err = message(merge_documents(vec![
        ("east.json".into(), doc(&chat)),
        ("suite.json".into(), Document::Suite(Box::new(s1.clone()))),
    ]));
    assert!(err.contains("one kind"), "{err}");
    let err = message(merge_documents(vec![("only.json".into(), doc(&chat))]));
    assert!(err.contains("at least two"), "{err}");

    let Merged::Suite(merged) = merge_documents(vec![
        ("s1.json".into(), Document::Suite(Box::new(s1.clone()))),
        ("s2.json".into(), Document::Suite(Box::new(s2.clone()))),
    ])
    .unwrap() else {
        panic!("suite shards merge into a suite report");
    };
    assert_eq!(merged.shards, 2);
    for (rep, r) in merged.scenarios[0].repetitions.iter().enumerate() {
        let sum = s1.scenarios[0].repetitions[rep].summary.total_requests
            + s2.scenarios[0].repetitions[rep].summary.total_requests;
        assert_eq!(r.summary.total_requests, sum);
    }
}

/// A model mix merges per model too: each model's distributions are recomputed from its own
/// histograms summed over the shards, and match the exact percentiles of that model's
/// requests. Shards written before per-model histograms existed still merge, without the
/// distributions of a mixed model that ran on several shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_mix_merges_per_model() {
    let mut fast = ollama_sim::ModelSpec::chat("fast:latest");
    fast.tokens_per_sec = 800.0;
    // 8 tokens at 20 tokens/s, at time scale 0.05: at least ~17 ms of generation per
    // request, whatever the machine's load adds to both models.
    let mut slow = ollama_sim::ModelSpec::chat("slow:latest");
    slow.tokens_per_sec = 20.0;
    let sim = ollama_sim::Sim::start(ollama_sim::SimConfig {
        models: vec![fast, slow],
        num_parallel: 4,
        time_scale: 0.05,
        seed: 7,
        ..ollama_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let url = sim.base_url();
    let mixed = |seed: u64| {
        let mut c = config(&url, 1, 16, seed);
        c.workload.models = ["fast:latest", "slow:latest"]
            .map(|name| WeightedModel {
                name: name.into(),
                weight: 1,
            })
            .to_vec();
        c
    };
    let (east, west, north) = tokio::join!(
        ollama_loadtest::run(mixed(2)),
        ollama_loadtest::run(mixed(3)),
        ollama_loadtest::run(mixed(4)),
    );
    sim.shutdown().await;
    let shards = [east.unwrap(), west.unwrap(), north.unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let mut docs = Vec::new();
    let mut old_docs = Vec::new();
    for (i, r) in shards.iter().enumerate() {
        let p = dir.path().join(format!("shard-{i}.json"));
        r.write_atomic(&p).unwrap();
        docs.push((p.display().to_string(), read_document(&p).unwrap()));
        // The same shard as an older version wrote it: no per-model histograms.
        let mut value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for model in value["models"].as_object_mut().unwrap().values_mut() {
            model.as_object_mut().unwrap().remove("histograms");
        }
        let old = dir.path().join(format!("old-{i}.json"));
        std::fs::write(&old, value.to_string()).unwrap();
        old_docs.push((old.display().to_string(), read_document(&old).unwrap()));
    }
    let Merged::LoadTest(merged) = merge_documents(docs).unwrap() else {
        panic!("load-test shards merge into a load-test report");
    };
    let mut p50s = Vec::new();
    for name in ["fast:latest", "slow:latest"] {
        let model = &merged.models[name];
        let ran: Vec<_> = shards.iter().filter_map(|r| r.models.get(name)).collect();
        assert!(ran.len() > 1, "{name} ran on several shards (seeded mix)");
        assert_eq!(
            model.successes,
            ran.iter().map(|shard| shard.successes).sum::<u64>()
        );
        assert_eq!(
            model.requests,
            ran.iter().map(|shard| shard.requests).sum::<u64>()
        );
        let latency = model.latency_ms.clone().expect("merged per-model latency");
        assert_eq!(
            latency.count, model.successes,
            "every success of {name} is counted"
        );
        // Every request of every shard is a sample (16 <= sample_count).
        let mut e2e: Vec<f64> = shards
            .iter()
            .flat_map(|r| r.samples.requests.iter())
            .filter(|sample| sample.model == name)
            .map(|sample| sample.e2e_ms)
            .collect();
        assert_eq!(e2e.len() as u64, model.successes);
        for (q, got) in [(0.5, latency.p50), (0.95, latency.p95), (1.0, latency.max)] {
            let want = exact(&mut e2e, q);
            assert!(
                (got - want).abs() <= want * 0.002 + 0.002,
                "{name} p{q}: merged {got} ms, exact {want} ms"
            );
        }
        assert!(model.ttft_ms.is_some() && model.tokens_per_second.is_some());
        p50s.push(latency.p50);
    }
    assert!(
        p50s[1] >= 15.0 && p50s[1] > p50s[0],
        "the slow model's latency is its own, not the mix's: {p50s:?}"
    );

    let Merged::LoadTest(old) = merge_documents(old_docs).unwrap() else {
        panic!("load-test shards merge into a load-test report");
    };
    for name in ["fast:latest", "slow:latest"] {
        let model = &old.models[name];
        assert_eq!(model.successes, merged.models[name].successes);
        assert!(model.latency_ms.is_none() && model.histograms.is_empty());
    }
}
