//! `cargo xtask calibrate REPORT --parallel N [--load-time DUR] [--sim-prompt-tokens N]
//! [-o FILE]`: turns the report
//! of a streamed load test against a real server into an `ollama-sim` profile (a TOML file
//! for `ollama-sim --config`), so a load test against the sim predicts the real server.
//!
//! It lives in xtask because it joins two tools by their file formats (the load-test report
//! and the sim's TOML config) and needs neither crate's code. The mapping, per field:
//! - `tokens_per_sec`: the median per-request decode rate of the run. It is measured at the
//!   run's concurrency: a real server shares its compute between busy slots, the sim's
//!   rate is per slot, so the profile predicts workloads of that concurrency best.
//! - `jitter`: from the inter-token gaps, assuming the sim's uniform +-jitter per token
//!   (p90 of a uniform is mean x (1 + 0.8 jitter)), capped at 0.9.
//! - `prompt_tokens_per_sec`: the median prompt tokens over the median TTFT less one token
//!   time (the sim sends its first token one token time after the prompt is evaluated).
//!   It is an effective speed: prompt caching and request overheads are folded in. The sim
//!   counts tokens its own way (about 4 bytes a token, no chat template), so with
//!   `--sim-prompt-tokens N` (what the sim counts for the run's prompt) the speed is
//!   converted to the sim's tokens and the sim spends the real prompt time.
//! - `output_tokens`: the mean answer length; when most answers hit `num_predict`, a length
//!   large enough that every sim answer hits it too (the sim varies lengths by the jitter).
//! - `load_time`: `--load-time` (e.g. the server's measured start-up), else the run's median
//!   `load_ms` (native endpoints), else zero.
//! - `num_parallel`: `--parallel`, the server's slot count (not in the report).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::e2e_agree::Report;

/// Most jitter the profile claims: the sim accepts up to 1.0, which lets tokens be instant.
const MAX_JITTER: f64 = 0.9;
/// Shortest prompt time the profile claims, seconds (keeps the speed finite).
const MIN_PROMPT_SECONDS: f64 = 0.001;

/// A calibrated model profile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Profile {
    pub(crate) model: String,
    pub(crate) parallel: u32,
    pub(crate) load_time: Duration,
    pub(crate) prompt_tokens_per_sec: f64,
    pub(crate) tokens_per_sec: f64,
    pub(crate) jitter: f64,
    pub(crate) output_tokens: u32,
    /// Where the figures came from, for the file's header comment.
    pub(crate) source: String,
}

/// Derives a profile from a report (see the module docs for the mapping).
pub(crate) fn profile(
    report: &Value,
    parallel: u32,
    load_time: Option<Duration>,
    sim_prompt_tokens: Option<f64>,
    source: &str,
) -> Result<Profile> {
    if parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    let r = Report(report);
    let model = report
        .pointer("/config/model")
        .and_then(Value::as_str)
        .context("report has no `config.model`")?
        .to_owned();
    let tps = r
        .number("metrics.tokens_per_second.p50")
        .context("calibration needs a decode rate: run the load test with --stream")?;
    let ttft_ms = r
        .number("metrics.ttft_ms.p50")
        .context("calibration needs TTFT: run the load test with --stream")?;
    let prompt_tokens = r.number("metrics.prompt_tokens.p50")?;
    let out_avg = r.number("metrics.output_tokens.avg")?;
    let out_p50 = r.number("metrics.output_tokens.p50")?;
    if tps <= 0.0 || !tps.is_finite() {
        bail!("report decode rate {tps} tok/s is not usable");
    }
    let jitter = match (
        r.optional("metrics.itl_ms.p50"),
        r.optional("metrics.itl_ms.p90"),
    ) {
        (Some(p50), Some(p90)) if p50 > 0.0 => ((p90 / p50 - 1.0) / 0.8).clamp(0.0, MAX_JITTER),
        _ => 0.0,
    };
    let token_ms = 1000.0 / tps;
    let prompt_seconds = ((ttft_ms - token_ms) / 1000.0).max(MIN_PROMPT_SECONDS);
    let prompt_tokens_per_sec =
        sim_prompt_tokens.unwrap_or(prompt_tokens).max(1.0) / prompt_seconds;
    let cap = r
        .optional("config.options.num_predict")
        .filter(|n| *n > 0.0);
    let output_tokens = match cap {
        // Most answers were cut at the cap: make the sim's shortest answer reach it.
        Some(cap) if out_p50 >= cap => (cap / (1.0 - jitter)).ceil(),
        _ => out_avg.round().max(1.0),
    };
    let load_time = match load_time {
        Some(t) => t,
        None => r
            .optional("metrics.load_ms.p50")
            .map_or(Duration::ZERO, |ms| {
                Duration::from_secs_f64(ms.max(0.0) / 1000.0)
            }),
    };
    Ok(Profile {
        model,
        parallel,
        load_time,
        prompt_tokens_per_sec,
        tokens_per_sec: tps,
        jitter,
        // Saturating float-to-int cast; answers are far below u32::MAX tokens.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        output_tokens: output_tokens as u32,
        source: source.to_owned(),
    })
}

impl Profile {
    /// The profile as an `ollama-sim --config` TOML file, with the derivation in comments.
    pub(crate) fn to_toml(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# ollama-sim profile calibrated by `cargo xtask calibrate`"
        );
        let _ = writeln!(out, "# from {}", self.source);
        let _ = writeln!(
            out,
            "# tokens_per_sec is per slot at the calibration run's concurrency; the sim does"
        );
        let _ = writeln!(
            out,
            "# not model compute shared between busy slots (see docs/OPERATIONS.md)."
        );
        let _ = writeln!(out, "num_parallel = {}", self.parallel);
        let _ = writeln!(out, "keep_alive = \"-1\"");
        let _ = writeln!(out);
        let _ = writeln!(out, "[[models]]");
        let _ = writeln!(out, "name = {}", Value::String(self.model.clone()));
        let _ = writeln!(out, "kind = \"chat\"");
        let _ = writeln!(out, "capabilities = [\"completion\"]");
        let _ = writeln!(out, "load_time = \"{}ms\"", self.load_time.as_millis());
        let _ = writeln!(
            out,
            "prompt_tokens_per_sec = {:.1}",
            self.prompt_tokens_per_sec
        );
        let _ = writeln!(out, "tokens_per_sec = {:.2}", self.tokens_per_sec);
        let _ = writeln!(out, "jitter = {:.3}", self.jitter);
        let _ = writeln!(out, "output_tokens = {}", self.output_tokens);
        let _ = writeln!(out, "thinking_tokens = 0");
        out
    }
}

/// Parses `2s`, `1500ms` or plain seconds (`1.5`).
fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || format!("--load-time `{text}`: expected e.g. 2s, 1500ms or 1.5");
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().with_context(bad)?;
    if !value.is_finite() || value < 0.0 {
        bail!(bad());
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// `cargo xtask calibrate REPORT --parallel N [--load-time DUR] [-o FILE]`.
pub(crate) fn run_cli(args: &[OsString]) -> Result<()> {
    let mut report = None;
    let mut parallel = None;
    let mut load_time = None;
    let mut sim_prompt_tokens = None;
    let mut output: Option<PathBuf> = None;
    let mut iter = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = iter.next() {
        let mut value = |flag: &str| iter.next().with_context(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--parallel" => {
                let v = value("--parallel")?;
                parallel = Some(v.parse::<u32>().with_context(|| {
                    format!("--parallel `{v}`: expected the server's slot count")
                })?);
            }
            "--load-time" => load_time = Some(parse_duration(&value("--load-time")?)?),
            "--sim-prompt-tokens" => {
                let v = value("--sim-prompt-tokens")?;
                let n = v.parse::<u32>().with_context(|| {
                    format!("--sim-prompt-tokens `{v}`: expected a token count")
                })?;
                sim_prompt_tokens = Some(f64::from(n));
            }
            "-o" | "--output" => output = Some(PathBuf::from(value("-o")?)),
            flag if flag.starts_with('-') => bail!("calibrate: unknown flag `{flag}`"),
            path if report.is_none() => report = Some(PathBuf::from(path)),
            extra => bail!("calibrate: unexpected argument `{extra}`"),
        }
    }
    let report = report.context(
        "usage: cargo xtask calibrate REPORT.json --parallel N [--load-time DUR] [--sim-prompt-tokens N] [-o profile.toml]",
    )?;
    let parallel = parallel.context("calibrate: --parallel N (the server's slots) is required")?;
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("cannot read report {}", report.display()))?;
    let json: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", report.display()))?;
    let profile = profile(
        &json,
        parallel,
        load_time,
        sim_prompt_tokens,
        &report.display().to_string(),
    )
    .with_context(|| format!("cannot calibrate from {}", report.display()))?;
    let toml = profile.to_toml();
    match output {
        Some(path) => {
            std::fs::write(&path, &toml)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("calibrate: wrote {}", path.display());
        }
        None => print!("{toml}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(out_p50: f64, cap: Option<u64>) -> Value {
        json!({
            "config": {"model": "gemma3-270m", "options": {"num_predict": cap}},
            "metrics": {
                "tokens_per_second": {"p50": 25.0},
                "ttft_ms": {"p50": 90.0},
                "prompt_tokens": {"p50": 29.0},
                "output_tokens": {"avg": out_p50, "p50": out_p50},
                "itl_ms": {"p50": 40.0, "p90": 48.0},
            }
        })
    }

    #[test]
    fn figures_map_to_the_sim_profile() {
        let p = profile(&report(20.0, Some(24)), 4, None, None, "r.json").unwrap();
        assert_eq!(p.model, "gemma3-270m");
        assert!((p.tokens_per_sec - 25.0).abs() < 1e-9);
        // p90/p50 = 1.2 -> jitter 0.25.
        assert!((p.jitter - 0.25).abs() < 1e-9, "{p:?}");
        // 90 ms TTFT less one 40 ms token: 29 tokens in 50 ms.
        assert!((p.prompt_tokens_per_sec - 580.0).abs() < 1e-6, "{p:?}");
        assert_eq!(p.output_tokens, 20, "answers under the cap keep their mean");
        assert_eq!(p.load_time, Duration::ZERO);
        let capped = profile(
            &report(24.0, Some(24)),
            4,
            Some(Duration::from_secs(2)),
            Some(58.0),
            "r",
        )
        .unwrap();
        assert_eq!(
            capped.output_tokens, 32,
            "24 / (1 - 0.25): every sim answer hits the cap"
        );
        // The sim counts 58 tokens where the server counted 29: twice the speed, same time.
        assert!(
            (capped.prompt_tokens_per_sec - 1160.0).abs() < 1e-6,
            "{capped:?}"
        );
        assert_eq!(capped.load_time, Duration::from_secs(2));
    }

    #[test]
    fn the_profile_is_a_sim_config() {
        let p = profile(&report(20.0, None), 4, None, None, "r.json").unwrap();
        let toml = p.to_toml();
        let parsed: toml::Table = toml.parse().unwrap();
        assert_eq!(parsed["num_parallel"].as_integer(), Some(4));
        let model = &parsed["models"].as_array().unwrap()[0];
        assert_eq!(model["name"].as_str(), Some("gemma3-270m"));
        assert_eq!(model["output_tokens"].as_integer(), Some(20));
        assert_eq!(model["load_time"].as_str(), Some("0ms"));
    }

    #[test]
    fn unstreamed_reports_and_bad_flags_are_clear_errors() {
        let mut r = report(20.0, None);
        r["metrics"]["ttft_ms"] = Value::Null;
        let err = format!("{:#}", profile(&r, 4, None, None, "r").unwrap_err());
        assert!(err.contains("--stream"), "{err}");
        assert!(profile(&report(20.0, None), 0, None, None, "r").is_err());
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
        let err = run_cli(&["r.json".into()]).unwrap_err().to_string();
        assert!(err.contains("--parallel"), "{err}");
    }
}
