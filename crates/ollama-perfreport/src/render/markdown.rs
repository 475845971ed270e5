//! Markdown: short enough for a pull-request comment, with the verdict first.

use std::fmt::Write as _;

use crate::archive::SuiteReport;
use crate::compare::Comparison;
use crate::error::Error;
use crate::events::{Distribution, EventsSummary};
use crate::metric::Metric;
use crate::stats::BootstrapConfig;
use crate::trend::Trend;
use crate::verdict::Verdict;

use super::svg::num;
use super::{
    fmt_estimate, fmt_pct, fmt_threshold, regressions_by_scenario, scenario_views, server_versions,
};

fn badge(v: Verdict) -> &'static str {
    match v {
        Verdict::Regressed => "🔴 regressed",
        Verdict::Improved => "🟢 improved",
        Verdict::Unchanged => "⚪ unchanged",
        Verdict::Inconclusive => "🟡 inconclusive",
    }
}

/// Table cells must not break the table.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A comparison: overall verdict, warnings, then one table per scenario.
pub fn comparison_markdown(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Performance comparison\n");
    let _ = writeln!(
        s,
        "**Base** `{}` ({}, {}) → **candidate** `{}` ({}, {})\n",
        cell(&c.base.label),
        cell(&c.base.suite),
        cell(&c.base.started_at),
        cell(&c.candidate.label),
        cell(&c.candidate.suite),
        cell(&c.candidate.started_at)
    );
    let (n, groups) = regressions_by_scenario(c);
    if n == 0 {
        let _ = writeln!(s, "**Verdict: no regressions.**");
    } else {
        let _ = writeln!(
            s,
            "**Verdict: {n} regression{}** in {} scenario{}:",
            if n == 1 { "" } else { "s" },
            groups.len(),
            if groups.len() == 1 { "" } else { "s" }
        );
        for (scenario, metrics) in &groups {
            let _ = writeln!(s, "- `{}`: {metrics}", cell(scenario));
        }
    }
    let tally = c
        .tally()
        .iter()
        .map(|(v, n)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "\n{tally} (of {} metric rows; {:.0}% bootstrap intervals, {} resamples).\n",
        c.scenarios.iter().map(|x| x.metrics.len()).sum::<usize>(),
        c.bootstrap.confidence * 100.0,
        c.bootstrap.resamples
    );
    if !c.warnings.is_empty() {
        let _ = writeln!(s, "> **Warning: the two runs differ**");
        for w in &c.warnings {
            let _ = writeln!(s, "> - {}", cell(w));
        }
        s.push('\n');
    }
    for u in &c.unmatched {
        let _ = writeln!(s, "- not compared: scenario {}", cell(u));
    }
    for sc in &c.scenarios {
        let _ = writeln!(
            s,
            "\n### {} ({} → {} repetitions)\n",
            cell(&sc.name),
            sc.base_repetitions,
            sc.candidate_repetitions
        );
        let _ = writeln!(
            s,
            "| metric | base | candidate | change | 95% CI | threshold | verdict |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|");
        for m in &sc.metrics {
            let unit = m.metric.unit();
            let ch = m.change.and_then(|c| c.pct).map_or("n/a".into(), fmt_pct);
            let ci = m.change.and_then(|c| c.ci).map_or("–".into(), |ci| {
                format!("{} … {}", fmt_pct(ci.lo), fmt_pct(ci.hi))
            });
            let verdict = match &m.note {
                Some(n) => format!("{} ({})", badge(m.verdict), cell(n)),
                None => badge(m.verdict).to_owned(),
            };
            let _ = writeln!(
                s,
                "| {} | {} {unit} | {} {unit} | {ch} | {ci} | {} | {verdict} |",
                m.metric.label(),
                fmt_estimate(m.base, false),
                fmt_estimate(m.candidate, false),
                fmt_threshold(m.threshold_pct)
            );
        }
    }
    s
}

/// One report: environment and a table of headline numbers per scenario.
pub fn report_markdown(
    label: &str,
    r: &SuiteReport,
    cfg: &BootstrapConfig,
) -> Result<String, Error> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Performance report: suite `{}`\n",
        cell(&r.suite.name)
    );
    if !r.suite.description.is_empty() {
        let _ = writeln!(s, "{}\n", r.suite.description);
    }
    let _ = writeln!(
        s,
        "`{}` · started {} · server {} ({}, version {}){}\n",
        cell(label),
        r.started_at,
        cell(&r.base_url),
        if r.simulated {
            "simulator"
        } else {
            "real server"
        },
        cell(&server_versions(r)),
        if r.shards > 1 {
            format!(" · merged from {} shards", r.shards)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "Values are means over repetitions; ranges are {:.0}% bootstrap intervals.\n",
        cfg.confidence * 100.0
    );
    let _ = writeln!(
        s,
        "| scenario | load | reps | requests | success % | req/s | e2e p50 ms | e2e p99 ms | TTFT p50 ms | TPOT p50 ms | tok/s per req | output tok/s | goodput req/s |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for v in scenario_views(r, cfg)? {
        let load = match (v.concurrency, v.rate) {
            (Some(c), _) => format!("c={c}"),
            (None, Some(rate)) => format!("{} req/s", num(rate)),
            _ => "–".into(),
        };
        let e = |m: Metric, ci: bool| fmt_estimate(v.value(m), ci);
        let _ = writeln!(
            s,
            "| {} | {load} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.name),
            v.repetitions,
            v.requests,
            e(Metric::SuccessRate, false),
            num(v.requests_per_second),
            e(Metric::E2eP50, true),
            e(Metric::E2eP99, true),
            e(Metric::TtftP50, false),
            e(Metric::TpotP50, false),
            e(Metric::TokensPerSecond, false),
            e(Metric::Throughput, false),
            e(Metric::Goodput, false),
        );
    }
    Ok(s)
}

/// A trend: per scenario, one row per report.
pub fn trend_markdown(t: &Trend) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Trend over {} reports\n", t.reports.len());
    let cols = [
        Metric::E2eP50,
        Metric::E2eP99,
        Metric::TtftP50,
        Metric::TpotP50,
        Metric::TokensPerSecond,
        Metric::Throughput,
        Metric::SuccessRate,
    ];
    let mut scenarios: Vec<&str> = Vec::new();
    for series in &t.series {
        if !scenarios.contains(&series.scenario.as_str()) {
            scenarios.push(&series.scenario);
        }
    }
    for sc in scenarios {
        let _ = writeln!(s, "### {}\n", cell(sc));
        let _ = write!(s, "| report | started |");
        for m in cols {
            let _ = write!(s, " {} ({}) |", m.label(), m.unit());
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "|---|---|{}", "---:|".repeat(cols.len()));
        for label in &t.reports {
            let at = t
                .series
                .iter()
                .filter(|x| x.scenario == sc)
                .flat_map(|x| &x.points)
                .find(|p| &p.label == label)
                .map(|p| p.at.clone());
            let Some(at) = at else { continue };
            let _ = write!(s, "| `{}` | {} |", cell(label), at);
            for m in cols {
                let v = t
                    .series
                    .iter()
                    .find(|x| x.scenario == sc && x.metric == m)
                    .and_then(|x| x.points.iter().find(|p| &p.label == label))
                    .map_or("–".into(), |p| num(p.value));
                let _ = write!(s, " {v} |");
            }
            let _ = writeln!(s);
        }
        s.push('\n');
    }
    for sk in &t.skipped {
        let _ = writeln!(s, "- skipped `{}`: {}", cell(&sk.file), cell(&sk.reason));
    }
    s
}

fn dist(d: Option<&Distribution>) -> (String, String, String) {
    d.map_or(("–".into(), "–".into(), "–".into()), |d| {
        (num(d.mean), num(d.p50), num(d.p95))
    })
}

/// The JSONL event summary: one row per model, then malformed lines.
pub fn events_markdown(e: &EventsSummary) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Request events: `{}`\n", e.path.display());
    let span = match (e.first, e.last) {
        (Some(a), Some(b)) => format!("from {} to {}", a.to_rfc3339(), b.to_rfc3339()),
        _ => "no timestamps".into(),
    };
    let _ = writeln!(
        s,
        "{} request events ({span}); {} other events; {} outside the window; {} without timestamp; {} malformed lines.\n",
        e.requests, e.other_events, e.outside_window, e.untimed, e.malformed
    );
    let _ = writeln!(
        s,
        "| model | requests | ok | errors | abandoned | tok/s mean | tok/s p50 | tok/s p95 | latency p50 ms | latency p95 ms | cold loads | cold load ms mean | cold load ms max | load ms p95 (all) | errors by type |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for m in &e.models {
        let (tm, t50, t95) = dist(m.tokens_per_second.as_ref());
        let (_, l50, l95) = dist(m.latency_ms.as_ref());
        let errors = m
            .errors_by_type
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {tm} | {t50} | {t95} | {l50} | {l95} | {} | {} | {} | {} | {} |",
            cell(&m.model),
            m.requests,
            m.successes,
            m.errors,
            m.abandoned,
            m.cold_starts,
            m.load_ms.map_or("–".into(), |d| num(d.mean)),
            m.load_ms.map_or("–".into(), |d| num(d.max)),
            m.load_ms_all.map_or("–".into(), |d| num(d.p95)),
            cell(&errors)
        );
    }
    if !e.malformed_lines.is_empty() {
        let _ = writeln!(s, "\nMalformed lines:");
        for l in &e.malformed_lines {
            let _ = writeln!(s, "- line {}: {}", l.line, cell(&l.reason));
        }
        if e.malformed > e.malformed_lines.len() as u64 {
            let _ = writeln!(
                s,
                "- … and {} more",
                e.malformed - e.malformed_lines.len() as u64
            );
        }
    }
    s
}
