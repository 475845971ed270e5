//! The rollout report: every gate with its verdict and evidence, as Markdown (for a
//! ticket or a PR) and as a self-contained HTML page (for a browser), written side by side.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};

/// One gate: what was checked, whether it passed, and the evidence.
#[derive(Debug)]
pub(crate) struct Gate {
    name: String,
    passed: bool,
    evidence: String,
    file: Option<PathBuf>,
}

impl Gate {
    pub(crate) fn new(name: String, passed: bool, evidence: String) -> Self {
        Self {
            name,
            passed,
            evidence,
            file: None,
        }
    }

    /// Names a file (a load report, the compare output) that holds the full evidence.
    pub(crate) fn with_file(mut self, path: &Path) -> Self {
        self.file = Some(path.to_path_buf());
        self
    }
}

/// The gates of one rollout, in order.
#[derive(Debug)]
pub(crate) struct Report {
    name: String,
    started: SystemTime,
    gates: Vec<Gate>,
}

impl Report {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            started: SystemTime::now(),
            gates: Vec::new(),
        }
    }

    /// Records a gate and logs it.
    pub(crate) fn push(&mut self, gate: Gate) {
        eprintln!(
            "rollout: [{}] {}",
            if gate.passed { "pass" } else { "FAIL" },
            gate.name
        );
        self.gates.push(gate);
    }

    /// Whether every recorded gate passed (and there is at least one).
    pub(crate) fn passed(&self) -> bool {
        !self.gates.is_empty() && self.gates.iter().all(|g| g.passed)
    }

    /// Writes `rollout.md` and `rollout.html` into `dir`; returns their paths.
    pub(crate) fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        let md = dir.join("rollout.md");
        let html = dir.join("rollout.html");
        std::fs::write(&md, self.markdown())
            .with_context(|| format!("cannot write {}", md.display()))?;
        std::fs::write(&html, self.html())
            .with_context(|| format!("cannot write {}", html.display()))?;
        Ok((md, html))
    }

    fn verdict(&self) -> &'static str {
        if self.passed() { "PASSED" } else { "FAILED" }
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Rollout: {}\n", self.name);
        let _ = writeln!(
            out,
            "Started {} UTC. Verdict: **{}**.\n",
            utc_stamp(self.started),
            self.verdict()
        );
        let _ = writeln!(out, "| # | Gate | Result |\n| --- | --- | --- |");
        for (index, gate) in self.gates.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                index + 1,
                gate.name.replace('|', "\\|"),
                if gate.passed { "pass" } else { "**FAIL**" }
            );
        }
        for (index, gate) in self.gates.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n## {}. {} ({})\n",
                index + 1,
                gate.name,
                if gate.passed { "pass" } else { "FAIL" }
            );
            if let Some(file) = &gate.file {
                let _ = writeln!(out, "Full evidence: `{}`\n", file.display());
            }
            let _ = writeln!(out, "```text\n{}\n```", gate.evidence.replace("```", "'''"));
        }
        out
    }

    fn html(&self) -> String {
        let mut out =
            String::from("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        let _ = writeln!(out, "<title>Rollout: {}</title>", escape(&self.name));
        out.push_str(
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}\
             table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
             .pass{color:#176f2c}.fail{color:#b00020;font-weight:bold}pre{background:#f5f5f5;padding:.6em;overflow-x:auto}</style>\n</head><body>\n",
        );
        let _ = writeln!(out, "<h1>Rollout: {}</h1>", escape(&self.name));
        let class = if self.passed() { "pass" } else { "fail" };
        let _ = writeln!(
            out,
            "<p>Started {} UTC. Verdict: <span class=\"{class}\">{}</span>.</p>",
            utc_stamp(self.started),
            self.verdict()
        );
        out.push_str("<table><tr><th>#</th><th>Gate</th><th>Result</th></tr>\n");
        for (index, gate) in self.gates.iter().enumerate() {
            let (class, word) = if gate.passed {
                ("pass", "pass")
            } else {
                ("fail", "FAIL")
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td><a href=\"#g{}\">{}</a></td><td class=\"{class}\">{word}</td></tr>",
                index + 1,
                index + 1,
                escape(&gate.name)
            );
        }
        out.push_str("</table>\n");
        for (index, gate) in self.gates.iter().enumerate() {
            let _ = writeln!(
                out,
                "<h2 id=\"g{}\">{}. {}</h2>",
                index + 1,
                index + 1,
                escape(&gate.name)
            );
            if let Some(file) = &gate.file {
                let _ = writeln!(
                    out,
                    "<p>Full evidence: <code>{}</code></p>",
                    escape(&file.display().to_string())
                );
            }
            let _ = writeln!(out, "<pre>{}</pre>", escape(&gate.evidence));
        }
        out.push_str("</body></html>\n");
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `YYYYMMDD_HHMMSS` in UTC (the load tester's report-name convention).
pub(crate) fn utc_stamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days.cast_signed());
    format!(
        "{year:04}{month:02}{day:02}_{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101_000000");
        // 2026-12-04 20:33:21 UTC.
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(1_796_416_401)),
            "20261204_203321"
        );
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229_000000"
        );
    }

    #[test]
    fn reports_escape_and_give_a_verdict() {
        let mut report = Report::new("a <b> & c");
        report.push(Gate::new("one".into(), true, "ok".into()));
        assert!(report.passed());
        report.push(Gate::new("two | x".into(), false, "<script>".into()));
        assert!(!report.passed());
        let html = report.html();
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        let md = report.markdown();
        assert!(md.contains("**FAILED**") && md.contains("two \\| x"));
    }
}
