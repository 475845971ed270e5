//! The binary end to end: a suite runs against the embedded simulator and is archived,
//! rendered (Markdown and a self-contained HTML page), compared, trended, merged; the
//! request log is summarised; bad inputs fail with an error that names the file.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SUITE: &str = r#"
name = "tiny"
description = "Two small scenarios for the CLI test."
repetitions = 2
[sim]
time_scale = 0.02
num_parallel = 2
[[scenario]]
name = "chat-c1"
model = "llama3.2:latest"
prompts = ["one", "two"]
concurrency = 1
requests = 6
warmup = 1
options = { num_predict = 8 }
[[scenario]]
name = "chat-c2"
model = "llama3.2:latest"
prompts = ["three"]
concurrency = 2
requests = 6
warmup = 1
options = { num_predict = 8 }
slo = "e2e=2s"
"#;

fn perfreport(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ollama-perfreport"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn no_arguments_prints_what_it_can_do() {
    let out = perfreport(&[]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for command in ["run", "compare", "trend", "merge", "events", "render"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn a_suite_runs_end_to_end_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("tiny.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let archive = dir.path().join("perf_reports");
    let out = perfreport(&[
        "run",
        "--suite",
        s(&suite),
        "--sim",
        "--output-dir",
        s(&archive),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let files = json_files(&archive);
    assert_eq!(files.len(), 1);
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tiny_"),
        "{files:?}"
    );
    let report = ollama_perfreport::read_report(&files[0]).unwrap();
    assert!(report.simulated);
    assert_eq!(report.scenarios.len(), 2);
    for sc in &report.scenarios {
        assert_eq!(sc.repetitions.len(), 2);
        for r in &sc.repetitions {
            assert_eq!(r.summary.total_requests, 6);
            assert_eq!(r.summary.successes, 6);
            assert!(r.histograms.contains_key("e2e"));
        }
    }
    assert!(
        text(&out.stdout).contains("| chat-c2 | c=2 | 2 | 12 |"),
        "{}",
        text(&out.stdout)
    );

    // A second run, so there is something to compare and a trend.
    let out = perfreport(&[
        "run",
        "--suite",
        s(&suite),
        "--sim",
        "--output-dir",
        s(&archive),
        "--seed",
        "9",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let files = json_files(&archive);
    let (first, second) = if files.len() == 2 {
        (files[0].clone(), files[1].clone())
    } else {
        // Both runs finished within the same second: same archive name, the second wins.
        // Write the second elsewhere instead.
        let other = dir.path().join("second.json");
        let out = perfreport(&["run", "--suite", s(&suite), "--sim", "-o", s(&other)]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        (files[0].clone(), other)
    };

    let cmp = dir.path().join("cmp.json");
    let out = perfreport(&[
        "compare",
        s(&first),
        s(&second),
        "-o",
        s(&cmp),
        "--threshold",
        "default=50",
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}",
        text(&out.stderr)
    );
    let md = text(&out.stdout);
    assert!(
        md.contains("## Performance comparison") && md.contains("### chat-c1"),
        "{md}"
    );

    // HTML: one file, charts inline, nothing fetched from anywhere.
    let html_path = dir.path().join("report.html");
    let out = perfreport(&[
        "render",
        s(&cmp),
        s(&first),
        s(&second),
        "--format",
        "html",
        "-o",
        s(&html_path),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.matches("<svg").count() >= 6,
        "charts for comparison, trend and report"
    );
    for forbidden in [
        "<script", "<link", "<img", "src=", "@import", "url(", "<iframe",
    ] {
        assert!(
            !html.contains(forbidden),
            "HTML must be self-contained: found {forbidden}"
        );
    }
    for part in [
        "CDF of end-to-end latency",
        "Trend over 2 reports",
        "Throughput versus concurrency",
        "Change per metric",
    ] {
        assert!(html.contains(part), "missing {part}");
    }

    let out = perfreport(&["render", s(&second), "--format", "md"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("## Performance report: suite `tiny`"));

    // Trend over the folder, with a foreign file in it that is skipped, not fatal.
    std::fs::write(archive.join("junk.json"), "{not json").unwrap();
    let out = perfreport(&["trend", s(&archive)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let trend = text(&out.stdout);
    assert!(
        trend.contains("### chat-c1") && trend.contains("skipped `junk.json`"),
        "{trend}"
    );

    // Merging two suite reports of the same suite (as two shards would be).
    let merged = dir.path().join("merged.json");
    let out = perfreport(&["merge", s(&first), s(&second), "-o", s(&merged)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let m = ollama_perfreport::read_report(&merged).unwrap();
    assert_eq!(m.shards, 2);
    assert_eq!(m.scenarios[0].repetitions[0].summary.total_requests, 12);
}

#[test]
fn events_are_summarised_and_bad_lines_reported_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    std::fs::write(
        &log,
        concat!(
            r#"{"event":"ollama_request","model":"m","outcome":"success","tokens_per_second":40,"latency_ms":120,"timestamp":"2026-01-01T00:00:00Z"}"#, "\n",
            "garbage\n",
            r#"{"event":"ollama_request","model":"m","outcome":"error","error_type":"read_timeout","timestamp":"2026-01-01T00:00:01Z"}"#, "\n",
        ),
    )
    .unwrap();
    let out = perfreport(&["events", s(&log)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let md = text(&out.stdout);
    assert!(
        md.contains("| m | 2 | 1 | 1 |") && md.contains("read_timeout: 1"),
        "{md}"
    );
    assert!(md.contains("line 2:"), "{md}");
    assert!(text(&out.stderr).contains("line 2"));
    let out = perfreport(&[
        "events",
        s(&log),
        "--since",
        "2026-01-01T00:00:01Z",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["requests"], 1);
    assert_eq!(v["outside_window"], 1);
    let out = perfreport(&["events", s(&log), "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--since"));
}

#[test]
fn malformed_and_foreign_reports_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let cases = [
        (
            write(
                "future.json",
                r#"{"kind":"ollama-perfreport-suite","schema_version":99}"#,
            ),
            "schema_version 99",
        ),
        (
            write("old-loadtest.json", r#"{"schema_version":0,"summary":{}}"#),
            "schema_version 0",
        ),
        (write("broken.json", "{\"kind\": "), "not valid JSON"),
        (
            write(
                "other.json",
                r#"{"kind":"grafana-dashboard","schema_version":1}"#,
            ),
            "unknown report kind `grafana-dashboard`",
        ),
        (write("array.json", "[1, 2]"), "not a JSON object"),
        (
            write(
                "empty-suite.json",
                r#"{"kind":"ollama-perfreport-suite","schema_version":1}"#,
            ),
            "malformed suite report",
        ),
    ];
    for (path, why) in &cases {
        let err = ollama_perfreport::read_report(path)
            .unwrap_err()
            .to_string();
        assert!(err.contains(s(path)), "{err}");
        assert!(err.contains(why), "{err}");
        // The CLI exits 1 and says the same.
        let out = perfreport(&["compare", s(path), s(path)]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(s(path)) && stderr.contains(why), "{stderr}");
    }
    // A suite report whose embedded load-test report is of another schema version.
    let good = dir.path().join("good.json");
    let suite = dir.path().join("tiny.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let out = perfreport(&["run", "--suite", s(&suite), "--sim", "-o", s(&good)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    v["scenarios"][1]["repetitions"][0]["schema_version"] = 2.into();
    let mixed = write("mixed.json", &v.to_string());
    let err = ollama_perfreport::read_report(&mixed)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mixed.json")
            && err.contains("`chat-c2` repetition 1")
            && err.contains("schema_version 2"),
        "{err}"
    );
    let missing = dir.path().join("missing.json");
    let err = ollama_perfreport::read_report(&missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.json"), "{err}");
    let out = perfreport(&["run", "--suite", s(&write("bad.toml", "name = 1"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bad.toml"),
        "{}",
        text(&out.stderr)
    );
}
