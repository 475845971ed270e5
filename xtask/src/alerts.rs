//! `cargo xtask alerts`: lint and unit-test the Prometheus alerting rules in `docs/alerts/`
//! with the real `promtool`, and check they only use contract metric names.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{cmd, contract};

/// How to get `promtool` when it is missing.
pub(crate) const PROMTOOL_HINT: &str =
    "install Debian's `prometheus` package (apt-get install -y prometheus), which ships promtool";

/// Runs `promtool check rules` on every `*.rules.yml` and `promtool test rules` on every
/// `*.test.yml` under `docs/alerts/`.
pub(crate) fn run() -> Result<()> {
    let promtool = cmd::require("promtool", PROMTOOL_HINT)?;
    let rules = files_ending("docs/alerts", ".rules.yml")?;
    let tests = files_ending("docs/alerts", ".test.yml")?;
    if rules.is_empty() || tests.is_empty() {
        bail!("docs/alerts/ must hold *.rules.yml files and their *.test.yml unit tests");
    }
    for file in &rules {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        contract::check_text(&file.display().to_string(), &text)?;
    }
    cmd::run(
        Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .args(&rules),
    )?;
    // promtool resolves `rule_files` relative to the test file, so run from docs/alerts.
    cmd::run(
        Command::new(&promtool)
            .current_dir(cmd::workspace_root().join("docs/alerts"))
            .arg("test")
            .arg("rules")
            .args(tests.iter().filter_map(|t| t.file_name())),
    )?;
    Ok(())
}

/// The files directly in `dir` (relative to the workspace) whose name ends with `suffix`,
/// sorted, as paths relative to the workspace root's parent-independent absolute path.
pub(crate) fn files_ending(dir: &str, suffix: &str) -> Result<Vec<PathBuf>> {
    let dir = cmd::workspace_root().join(dir);
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
    {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(suffix))
        {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}
