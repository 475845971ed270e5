//! Running child processes the way every task wants: echo the command, inherit the
//! terminal, and turn a non-zero exit into an error that names the command.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// The workspace root: xtask lives one directory below it, and the path is fixed at
/// compile time so the tasks work from any current directory.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// The `cargo` that runs us (cargo sets `CARGO` for `cargo run`), else `cargo` from PATH.
pub(crate) fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root());
    cmd
}

/// A human-readable rendering of a command line, for logs and error messages.
pub(crate) fn display(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Runs `cmd` with the terminal inherited; fails unless it exits with status 0.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` and returns its exit status without judging it (for pass-through tasks
/// whose exit code is the answer, such as a load test with thresholds).
pub(crate) fn run_status(cmd: &mut Command) -> Result<std::process::ExitStatus> {
    let shown = display(cmd);
    eprintln!("$ {shown}");
    cmd.status()
        .with_context(|| format!("could not start `{shown}`"))
}

/// Finds `program` on PATH, returning its full path.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Like [`which`], but a missing program is an error that says how to install it.
pub(crate) fn require(program: &str, install_hint: &str) -> Result<PathBuf> {
    which(program).with_context(|| format!("`{program}` not found on PATH; {install_hint}"))
}
