//! `cargo xtask dashboards`: every PromQL expression in `docs/dashboards/*.json` must use
//! only contract metric names and must parse with the real `promtool`; with
//! `--prometheus URL` each one is also run through that Prometheus's HTTP API.
//!
//! promtool has no stand-alone "parse this query" command in the Debian release, so each
//! expression is written as a recording rule and checked with `promtool check rules`, which
//! runs the same PromQL parser the server uses.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{alerts, cmd, contract, prom};

/// One PromQL expression found in a dashboard, with where it was found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// `file: panel title [refId]`, for messages.
    pub(crate) origin: String,
    /// The expression as Grafana stores it (with `$variables`).
    pub(crate) expr: String,
}

/// Runs the task: `cargo xtask dashboards [--prometheus URL]`.
pub(crate) fn run_cli(args: &[OsString]) -> Result<()> {
    let mut prometheus = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("--prometheus") => {
                let url = iter.next().context("--prometheus needs a URL")?;
                prometheus = Some(prom::Api::new(&url.to_string_lossy())?);
            }
            _ => {
                bail!(
                    "unknown argument `{}`; usage: cargo xtask dashboards [--prometheus URL]",
                    arg.display()
                )
            }
        }
    }
    run()?;
    if let Some(api) = prometheus {
        let queries = load_all()?;
        for (query, samples) in query_all(&api, &queries)? {
            eprintln!("{samples:>4} series  {}", query.origin);
        }
    }
    Ok(())
}

/// The offline check CI runs: contract names and promtool parse of every expression.
pub(crate) fn run() -> Result<()> {
    let promtool = cmd::require("promtool", alerts::PROMTOOL_HINT)?;
    let queries = load_all()?;
    if queries.is_empty() {
        bail!("no PromQL expressions found in docs/dashboards/*.json");
    }
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut failures = Vec::new();
    for (index, query) in queries.iter().enumerate() {
        if let Err(err) = contract::check_text(&query.origin, &query.expr) {
            failures.push(format!("{err:#}"));
            continue;
        }
        let expr = substitute_variables(&query.expr);
        if let Err(err) = promtool_parse(&promtool, scratch.path(), index, &expr) {
            failures.push(format!("{}: {err:#}\n    expr: {expr}", query.origin));
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} dashboard expression(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    eprintln!(
        "dashboards: {} PromQL expressions parse and use only contract metrics",
        queries.len()
    );
    Ok(())
}

/// Every expression in every `docs/dashboards/*.json`.
pub(crate) fn load_all() -> Result<Vec<Query>> {
    let mut queries = Vec::new();
    for file in alerts::files_ending("docs/dashboards", ".json")? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", file.display()))?;
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        collect_queries(&name, &json, &mut queries);
        // Template variable queries (label_values(...)) are not PromQL, but they name
        // metrics too and must stay inside the contract.
        contract::check_text(&name, &text)?;
    }
    Ok(queries)
}

/// Runs every query (variables substituted) as an instant query; returns how many series
/// each returned.
pub(crate) fn query_all<'q>(
    api: &prom::Api,
    queries: &'q [Query],
) -> Result<Vec<(&'q Query, usize)>> {
    queries
        .iter()
        .map(|query| {
            let expr = substitute_variables(&query.expr);
            let result = api
                .query(&expr)
                .with_context(|| format!("{}: query failed", query.origin))?;
            Ok((query, result.len()))
        })
        .collect()
}

/// Walks a Grafana dashboard and collects each target's `expr`, naming its panel.
fn collect_queries(file: &str, value: &Value, out: &mut Vec<Query>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(targets)) = map.get("targets") {
                let title = map
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or("(untitled panel)");
                for target in targets {
                    if let Some(expr) = target.get("expr").and_then(Value::as_str) {
                        let ref_id = target.get("refId").and_then(Value::as_str).unwrap_or("?");
                        out.push(Query {
                            origin: format!("{file}: {title} [{ref_id}]"),
                            expr: expr.to_owned(),
                        });
                    }
                }
            }
            for (key, child) in map {
                if key != "targets" {
                    collect_queries(file, child, out);
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_queries(file, item, out)),
        _ => {}
    }
}

/// Replaces Grafana's variables with values Prometheus accepts: interval variables with a
/// one-minute range, every other variable (they are only used inside `=~"..."` matchers)
/// with the match-anything regex `.*`.
pub(crate) fn substitute_variables(expr: &str) -> String {
    const INTERVALS: &[&str] = &["__rate_interval", "__interval", "__range"];
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(if INTERVALS.contains(&name) {
            "1m"
        } else {
            ".*"
        });
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// Parses `expr` with promtool by checking a one-rule file that records it.
fn promtool_parse(promtool: &Path, dir: &Path, index: usize, expr: &str) -> Result<()> {
    let file = dir.join(format!("expr_{index}.rules.yml"));
    // A YAML double-quoted scalar is a JSON string, so serde_json does the escaping.
    let quoted = serde_json::to_string(expr)?;
    let rules = format!(
        "groups:\n  - name: dashboard\n    rules:\n      - record: dashboard:expr_{index}\n        expr: {quoted}\n"
    );
    std::fs::write(&file, rules).with_context(|| format!("cannot write {}", file.display()))?;
    let output = Command::new(promtool)
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .context("could not start promtool")?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        bail!("promtool rejects it: {}", text.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_substituted() {
        assert_eq!(
            substitute_variables(r#"rate(x{model=~"$model"}[$__rate_interval])"#),
            r#"rate(x{model=~".*"}[1m])"#
        );
        assert_eq!(
            substitute_variables(r#"x{a=~"${endpoint}"}[${__interval}]"#),
            r#"x{a=~".*"}[1m]"#
        );
        assert_eq!(substitute_variables("a $ b"), "a $ b");
    }

    #[test]
    fn queries_are_found_in_nested_rows() {
        let dashboard = serde_json::json!({
            "panels": [
                {"type": "row", "title": "r", "panels": [
                    {"title": "inner", "targets": [{"refId": "A", "expr": "up"}]}
                ]},
                {"title": "outer", "targets": [{"refId": "B", "expr": "sum(up)"}, {"refId": "C"}]}
            ]
        });
        let mut found = Vec::new();
        collect_queries("d.json", &dashboard, &mut found);
        let mut origins: Vec<_> = found.iter().map(|q| q.origin.as_str()).collect();
        origins.sort_unstable();
        assert_eq!(origins, vec!["d.json: inner [A]", "d.json: outer [B]"]);
    }
}
