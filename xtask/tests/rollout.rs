//! `cargo xtask rollout` end to end against real `ollama-sim` servers on loopback, with
//! the real `ollama-loadtest` and `ollama-perfreport` binaries (built here in the dev
//! profile, which `cargo test` has mostly compiled already).
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the three tools once per test process and returns the directory holding them.
fn tool_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args([
                "build",
                "--locked",
                "-p",
                "ollama-sim",
                "-p",
                "ollama-loadtest",
                "-p",
                "ollama-perfreport",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "building the tools failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root().join("target"), PathBuf::from);
        target.join("debug")
    })
}

/// The end-to-end tests run one at a time: two rollouts measuring latency at once on a
/// two-core machine would make each other's candidate look slower.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An `ollama-sim` process on a free loopback port, killed on drop.
struct Sim {
    child: Child,
    port: u16,
}

impl Sim {
    fn start(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(tool_dir().join("ollama-sim"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--time-scale", "0.2", "--seed", "7"])
            // Deterministic models: no jitter, no load time; "slow" generates 10x slower.
            // At time scale 0.2 a "fast" answer takes about 20 ms of simulated time, which
            // dwarfs scheduling noise, so an unchanged candidate compares as unchanged.
            .args([
                "--model",
                "fast,tokens_per_sec=200,output_tokens=20,jitter=0,load_time=0s",
            ])
            .args([
                "--model",
                "slow,tokens_per_sec=20,output_tokens=20,jitter=0,load_time=0s",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ollama-sim did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plan with one evaluation server and one stage; `candidate_args` and the stage URL vary.
fn plan(
    dir: &Path,
    tools: &Path,
    eval_url: &str,
    candidate_model: &str,
    stage_url: &str,
) -> String {
    format!(
        r#"
name = "test rollout"
report_dir = "{reports}"

[tools]
loadtest = "{loadtest}"
perfreport = "{perfreport}"

[evaluate]
base_url = "{eval_url}"
models = ["fast", "slow"]
loadtest_args = ["--requests", "100", "--workers", "4", "--warmup", "5"]

[baseline]
loadtest_args = ["--model", "fast"]

[candidate]
loadtest_args = ["--model", "{candidate_model}"]
revert = "touch '{dir}/candidate-reverted'; echo candidate >> '{dir}/revert-order'"

[gates]
min_success_rate_percent = 99.0
max_5xx = 0

[evaluation]
window = "2s"
interval = "500ms"
loadtest_args = ["--model", "fast", "--workers", "2", "--abort-error-rate", "100"]

[[stage]]
name = "canary"
base_url = "{stage_url}"
apply = "touch '{dir}/canary-applied'"
revert = "touch '{dir}/canary-reverted'; echo canary >> '{dir}/revert-order'"
"#,
        reports = dir.join("reports").display(),
        loadtest = tools.join("ollama-loadtest").display(),
        perfreport = tools.join("ollama-perfreport").display(),
        dir = dir.display(),
    )
}

fn rollout(dir: &Path, plan_text: &str, extra: &[&str]) -> Output {
    let plan_path = dir.join("plan.toml");
    std::fs::write(&plan_path, plan_text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("rollout")
        .arg("--plan")
        .arg(&plan_path)
        .args(extra)
        .output()
        .unwrap()
}

/// The Markdown report of the (only) rollout written under `dir/reports`.
fn report_markdown(dir: &Path) -> String {
    let reports: Vec<_> = std::fs::read_dir(dir.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].join("rollout.html").is_file());
    std::fs::read_to_string(reports[0].join("rollout.md")).unwrap()
}

fn explain(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn an_unchanged_candidate_passes_every_gate() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (staging, canary) = (Sim::start(&[]), Sim::start(&[]));
    let output = rollout(
        dir.path(),
        &plan(
            dir.path(),
            tool_dir(),
            &staging.url(),
            "fast",
            &canary.url(),
        ),
        &[],
    );
    assert!(output.status.success(), "{}", explain(&output));
    let report = report_markdown(dir.path());
    assert!(report.contains("Verdict: **PASSED**"), "{report}");
    for gate in [
        "preflight",
        "baseline load run",
        "candidate load run",
        "compare",
        "stage canary apply hook",
        "stage canary watch",
    ] {
        assert!(report.contains(gate), "no `{gate}` gate in\n{report}");
    }
    assert!(dir.path().join("canary-applied").exists());
    assert!(!dir.path().join("canary-reverted").exists());
}

#[test]
fn a_slower_candidate_fails_at_compare_and_never_reaches_a_stage() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (staging, canary) = (Sim::start(&[]), Sim::start(&[]));
    let output = rollout(
        dir.path(),
        &plan(
            dir.path(),
            tool_dir(),
            &staging.url(),
            "slow",
            &canary.url(),
        ),
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let report = report_markdown(dir.path());
    assert!(
        report.contains("compare (ollama-perfreport) | **FAIL**"),
        "{report}"
    );
    assert!(!report.contains("stage canary"), "{report}");
    assert!(!dir.path().join("canary-applied").exists());
    assert!(dir.path().join("candidate-reverted").exists());
}

#[test]
fn a_stage_that_returns_5xx_fails_the_watch_and_is_reverted() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let staging = Sim::start(&[]);
    let canary = Sim::start(&[
        "--fault",
        "kind=status,status=500,every=3,endpoint=/api/generate",
    ]);
    let output = rollout(
        dir.path(),
        &plan(
            dir.path(),
            tool_dir(),
            &staging.url(),
            "fast",
            &canary.url(),
        ),
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let report = report_markdown(dir.path());
    assert!(
        report.contains("compare (ollama-perfreport) | pass"),
        "{report}"
    );
    assert!(report.contains("stage canary watch"), "{report}");
    assert!(report.contains("were 5xx"), "{report}");
    assert!(
        report.contains("stage canary revert hook | pass"),
        "{report}"
    );
    assert!(dir.path().join("canary-reverted").exists());
}

#[test]
fn a_later_stage_that_fails_rolls_back_every_applied_stage_newest_first() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (staging, canary) = (Sim::start(&[]), Sim::start(&[]));
    let production = Sim::start(&[
        "--fault",
        "kind=status,status=500,every=3,endpoint=/api/generate",
    ]);
    let mut plan_text = plan(
        dir.path(),
        tool_dir(),
        &staging.url(),
        "fast",
        &canary.url(),
    );
    let _ = write!(
        plan_text,
        r#"
[[stage]]
name = "production"
base_url = "{url}"
apply = "touch '{dir}/production-applied'"
revert = "echo production >> '{dir}/revert-order'"
"#,
        url = production.url(),
        dir = dir.path().display(),
    );
    let output = rollout(dir.path(), &plan_text, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let report = report_markdown(dir.path());
    assert!(report.contains("stage canary watch"), "{report}");
    assert!(report.contains("were 5xx"), "{report}");
    for hook in [
        "stage production revert hook | pass",
        "stage canary revert hook | pass",
        "candidate revert hook | pass",
    ] {
        assert!(report.contains(hook), "no `{hook}` in\n{report}");
    }
    assert!(dir.path().join("production-applied").exists());
    let order = std::fs::read_to_string(dir.path().join("revert-order")).unwrap();
    assert_eq!(order, "production\ncanary\ncandidate\n");
}

#[test]
fn a_suite_rollout_runs_the_suite_for_both_sides_and_passes_unchanged() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (staging, canary) = (Sim::start(&[]), Sim::start(&[]));
    let suite = dir.path().join("suite.toml");
    std::fs::write(
        &suite,
        r#"
name = "rollout-test"
repetitions = 2
[[scenario]]
name = "generate-c2"
model = "fast"
endpoint = "generate"
prompts = ["Why is the sky blue?"]
concurrency = 2
requests = 40
warmup = 2
"#,
    )
    .unwrap();
    let text = plan(
        dir.path(),
        tool_dir(),
        &staging.url(),
        "fast",
        &canary.url(),
    )
    .replace(
        r#"loadtest_args = ["--requests", "100", "--workers", "4", "--warmup", "5"]"#,
        &format!("suite = \"{}\"", suite.display()),
    )
    .replace("loadtest_args = [\"--model\", \"fast\"]\n", "")
    .replace("[candidate]\n", "[candidate]\napply = \"true\"\n");
    let output = rollout(dir.path(), &text, &[]);
    assert!(output.status.success(), "{}\n{text}", explain(&output));
    let report = report_markdown(dir.path());
    assert!(report.contains("Verdict: **PASSED**"), "{report}");
    assert!(report.contains("candidate apply hook | pass"), "{report}");
    assert!(
        report.contains("compare (ollama-perfreport) | pass"),
        "{report}"
    );
    assert!(report.contains("a suite report"), "{report}");
}

#[test]
fn a_dry_run_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on these ports: a dry run must not even connect.
    // The tools need not exist either: a dry run runs none of them.
    let text = plan(
        dir.path(),
        Path::new("/nonexistent"),
        "http://127.0.0.1:9",
        "slow",
        "http://127.0.0.1:9",
    );
    let output = rollout(dir.path(), &text, &["--dry-run"]);
    assert!(output.status.success(), "{}", explain(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for step in [
        "preflight",
        "baseline run",
        "candidate run",
        "ollama-perfreport compare",
        "stage `canary`",
        "touch",
    ] {
        assert!(stdout.contains(step), "no `{step}` in\n{stdout}");
    }
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, vec!["plan.toml"], "a dry run created files");
}
