//! Rendering reports, comparisons, trends and event summaries as Markdown (for pull
//! requests and chat) and as one self-contained HTML page with inline SVG charts.
//!
//! Both formats are built from the same view of the data (this module), so the numbers in
//! the Markdown and in the HTML of one input are always the same numbers.

mod html;
mod markdown;
mod svg;

use serde::{Deserialize, Serialize};

use crate::archive::SuiteReport;
use crate::compare::Comparison;
use crate::error::Error;
use crate::evidence::{Curve, RepData, cdf_points, evidence};
use crate::metric::Metric;
use crate::stats::{BootstrapConfig, Estimate, estimate};
use crate::trend::Trend;

pub use html::render_html;
pub use markdown::{comparison_markdown, events_markdown, report_markdown, trend_markdown};

/// Output format of `render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// GitHub-flavoured Markdown.
    Markdown,
    /// One self-contained HTML file.
    Html,
}

/// What one `render` call shows.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Comparisons, each with its own section.
    pub comparisons: Vec<Comparison>,
    /// Reports with their labels; the last one gets a detailed section.
    pub reports: Vec<(String, SuiteReport)>,
    /// A trend over the reports or an archive folder.
    pub trend: Option<Trend>,
}

/// Renders a page in `format`.
pub fn render(page: &Page, format: Format, cfg: &BootstrapConfig) -> Result<String, Error> {
    if page.comparisons.is_empty() && page.reports.is_empty() && page.trend.is_none() {
        return Err(Error::Input("nothing to render".into()));
    }
    match format {
        Format::Markdown => {
            let mut out = String::new();
            for c in &page.comparisons {
                out.push_str(&comparison_markdown(c));
                out.push('\n');
            }
            if let Some(t) = &page.trend {
                out.push_str(&trend_markdown(t));
                out.push('\n');
            }
            if let Some((label, r)) = page.reports.last() {
                out.push_str(&report_markdown(label, r, cfg)?);
            }
            Ok(out)
        }
        Format::Html => render_html(page, cfg),
    }
}

/// The headline numbers of one scenario of a report.
pub(crate) struct ScenarioView {
    pub(crate) name: String,
    pub(crate) repetitions: usize,
    pub(crate) requests: u64,
    pub(crate) requests_per_second: f64,
    pub(crate) model: String,
    pub(crate) endpoint: String,
    pub(crate) stream: bool,
    /// Closed-loop workers, if closed loop.
    pub(crate) concurrency: Option<usize>,
    /// Open-loop rate, if open loop.
    pub(crate) rate: Option<f64>,
    pub(crate) values: Vec<(Metric, Estimate)>,
    pub(crate) curves: Vec<(Curve, Vec<[f64; 2]>)>,
}

impl ScenarioView {
    pub(crate) fn value(&self, m: Metric) -> Option<Estimate> {
        self.values.iter().find(|(k, _)| *k == m).map(|(_, e)| *e)
    }
}

pub(crate) fn scenario_views(
    report: &SuiteReport,
    cfg: &BootstrapConfig,
) -> Result<Vec<ScenarioView>, Error> {
    report
        .scenarios
        .iter()
        .map(|run| {
            let reps = run
                .repetitions
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    RepData::from_report(
                        r,
                        &format!("scenario `{}` repetition {}", run.name, i + 1),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            let first = run.repetitions.first();
            let n = run.repetitions.len().max(1) as f64;
            Ok(ScenarioView {
                name: run.name.clone(),
                repetitions: run.repetitions.len(),
                requests: run
                    .repetitions
                    .iter()
                    .map(|r| r.summary.total_requests)
                    .sum(),
                requests_per_second: run
                    .repetitions
                    .iter()
                    .map(|r| r.summary.requests_per_second)
                    .sum::<f64>()
                    / n,
                model: first.map(|r| r.config.model.clone()).unwrap_or_default(),
                endpoint: first.map(|r| r.config.endpoint.clone()).unwrap_or_default(),
                stream: first.is_some_and(|r| r.config.stream),
                concurrency: first
                    .filter(|r| r.config.mode != "open")
                    .map(|r| r.config.workers),
                rate: first
                    .filter(|r| r.config.mode == "open")
                    .and_then(|r| r.config.rate),
                values: Metric::ALL
                    .into_iter()
                    .filter_map(|m| estimate(&evidence(&reps, m), cfg).map(|e| (m, e)))
                    .collect(),
                curves: Curve::ALL
                    .into_iter()
                    .map(|c| (c, cdf_points(&reps, c)))
                    .filter(|(_, p)| !p.is_empty())
                    .collect(),
            })
        })
        .collect()
}

/// The server version(s) of a report, for headers.
pub(crate) fn server_versions(report: &SuiteReport) -> String {
    let set: std::collections::BTreeSet<String> = report
        .scenarios
        .iter()
        .flat_map(|s| &s.repetitions)
        .map(|r| {
            r.environment
                .server_version
                .clone()
                .unwrap_or_else(|| "unknown".into())
        })
        .collect();
    if set.is_empty() {
        "unknown".into()
    } else {
        set.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// Formats an estimate as `value` or `value (lo–hi)`.
pub(crate) fn fmt_estimate(e: Option<Estimate>, with_ci: bool) -> String {
    match e {
        None => "–".into(),
        Some(e) => match (with_ci, e.ci) {
            (true, Some(ci)) if ci.hi > ci.lo => format!(
                "{} ({}–{})",
                svg::num(e.point),
                svg::num(ci.lo),
                svg::num(ci.hi)
            ),
            _ => svg::num(e.point),
        },
    }
}

/// Formats a signed percentage.
pub(crate) fn fmt_pct(v: f64) -> String {
    if v.is_finite() {
        format!("{v:+.1}%")
    } else {
        "n/a".into()
    }
}

/// Formats a threshold: whole numbers plainly, and huge ones (a tiny base widened by the
/// noise floor) as a bound.
pub(crate) fn fmt_threshold(t: f64) -> String {
    if t >= 1000.0 {
        "±>1000%".into()
    } else if (t - t.round()).abs() < 1e-9 {
        format!("±{t:.0}%")
    } else {
        format!("±{t:.1}%")
    }
}

/// Regressions grouped by scenario: `(count, [(scenario, "e2e p50, e2e p95")])`.
pub(crate) fn regressions_by_scenario(c: &Comparison) -> (usize, Vec<(String, String)>) {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    let mut n = 0;
    for (scenario, metric) in c.regressions() {
        n += 1;
        match groups.iter_mut().find(|(s, _)| s == scenario) {
            Some((_, ms)) => ms.push(metric.label()),
            None => groups.push((scenario.to_owned(), vec![metric.label()])),
        }
    }
    (
        n,
        groups
            .into_iter()
            .map(|(s, ms)| (s, ms.join(", ")))
            .collect(),
    )
}
