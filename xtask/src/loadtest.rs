//! `cargo xtask loadtest [ARGS]`: build the load tester in release mode and run it.
//!
//! This is the README's "run the main job" command, so it has to do something useful on a
//! fresh clone with no Ollama around: when no target is configured it adds `--sim`, which
//! makes `ollama-loadtest` start its embedded simulator.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// The load tester's package and binary name.
const LOADTEST: &str = "ollama-loadtest";

/// Builds `ollama-loadtest` in release mode and runs it with `args` (plus `--sim` when no
/// target is configured); returns the load tester's exit status.
pub(crate) fn run(args: &[OsString]) -> Result<ExitStatus> {
    let binary = build_release_binary(LOADTEST)?;
    let ollama_host = std::env::var_os("OLLAMA_HOST");
    let mut full_args = args.to_vec();
    if needs_sim(args, ollama_host.as_deref()) {
        eprintln!(
            "xtask: no target configured (no --base-url, OLLAMA_HOST unset): adding --sim, \
             the load test runs against the embedded ollama-sim"
        );
        full_args.push("--sim".into());
    }
    let mut command = Command::new(&binary);
    command.args(&full_args).current_dir(cmd::workspace_root());
    cmd::run_status(&mut command)
}

/// Builds `package` with `cargo build --release` and returns the path of its binary of the
/// same name, with an error that says what is missing when there is none.
pub(crate) fn build_release_binary(package: &str) -> Result<PathBuf> {
    cmd::run(cmd::cargo().args(["build", "--release", "--locked", "-p", package]))
        .with_context(|| format!("building `{package}` in release mode failed"))?;
    let binary = target_dir()
        .join("release")
        .join(format!("{package}{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!(
            "`{package}` built, but {} does not exist: the crate has no `{package}` binary yet",
            binary.display()
        );
    }
    Ok(binary)
}

/// The cargo target directory: `CARGO_TARGET_DIR` when set, else `target/` in the workspace.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                cmd::workspace_root().join(dir)
            }
        }
        _ => cmd::workspace_root().join("target"),
    }
}

/// Whether the embedded simulator must be requested: no `--base-url` among `args`, no
/// non-empty `OLLAMA_HOST`, no `--sim` already, and not a help/version request (which
/// runs nothing).
fn needs_sim(args: &[OsString], ollama_host: Option<&std::ffi::OsStr>) -> bool {
    let has = |flag: &str| {
        args.iter().any(|arg| {
            let arg = arg.to_string_lossy();
            arg == flag || arg.starts_with(&format!("{flag}="))
        })
    };
    let host_set = ollama_host.is_some_and(|host| !host.to_string_lossy().trim().is_empty());
    !(host_set
        || has("--base-url")
        || has("--sim")
        || has("--help")
        || has("-h")
        || has("--version")
        || has("-V"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn no_target_means_sim() {
        assert!(needs_sim(&args(&[]), None));
        assert!(needs_sim(&args(&["--requests", "10"]), None));
        assert!(needs_sim(&args(&["--requests", "10"]), Some("  ".as_ref())));
    }

    #[test]
    fn a_configured_target_is_left_alone() {
        assert!(!needs_sim(
            &args(&["--base-url", "http://127.0.0.1:11434"]),
            None
        ));
        assert!(!needs_sim(
            &args(&["--base-url=http://127.0.0.1:11434"]),
            None
        ));
        assert!(!needs_sim(&args(&[]), Some("127.0.0.1:11434".as_ref())));
    }

    #[test]
    fn explicit_sim_and_help_are_not_doubled() {
        assert!(!needs_sim(&args(&["--sim"]), None));
        assert!(!needs_sim(&args(&["--help"]), None));
        assert!(!needs_sim(&args(&["-V"]), None));
        // A flag that merely starts with the same letters is not `--base-url`.
        assert!(needs_sim(&args(&["--base-urls-file", "x"]), None));
    }
}
