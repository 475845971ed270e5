//! Trends: every archived report of a folder as a time series per scenario and metric.
//!
//! An archive collects files over months, some from older builds; a file that cannot be read
//! is listed with its reason and left out, never fatal, so one bad file does not hide the
//! trend of the others.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::archive::{Document, SuiteReport, read_document};
use crate::error::Error;
use crate::evidence::{RepData, evidence};
use crate::metric::Metric;
use crate::stats::{BootstrapConfig, Interval, estimate};

/// One report's value of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// The report's file name.
    pub label: String,
    /// When the run started (RFC 3339).
    pub at: String,
    /// Mean over repetitions.
    pub value: f64,
    /// Bootstrap interval of the value.
    pub ci: Option<Interval>,
}

/// A metric of a scenario over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Scenario name.
    pub scenario: String,
    /// Metric.
    pub metric: Metric,
    /// Points in time order.
    pub points: Vec<TrendPoint>,
}

/// A file of the folder that was left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// All series of an archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Reports used, in time order (file names).
    pub reports: Vec<String>,
    /// Files left out.
    pub skipped: Vec<Skipped>,
    /// One series per scenario and metric that has data.
    pub series: Vec<Series>,
}

fn start_of(r: &SuiteReport) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&r.started_at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Reads every `*.json` report in `dir` (not recursive) and builds the trend.
pub fn trend_dir(dir: &Path, cfg: &BootstrapConfig) -> Result<Trend, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let label = p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        match read_document(&p) {
            Ok(Document::Suite(r)) => reports.push((label, *r)),
            Ok(Document::LoadTest(r)) => reports.push((label, SuiteReport::from_loadtest(*r))),
            Ok(Document::Comparison(_)) => skipped.push(Skipped {
                file: label,
                reason: "a comparison, not a report".into(),
            }),
            Err(e) => skipped.push(Skipped {
                file: label,
                reason: e.to_string(),
            }),
        }
    }
    if reports.is_empty() {
        return Err(Error::Input(format!(
            "{}: no readable reports{}",
            dir.display(),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({} files skipped)", skipped.len())
            }
        )));
    }
    let mut t = trend_of(reports, cfg)?;
    t.skipped = skipped;
    Ok(t)
}

/// Builds the trend of labelled reports (sorted here by start time).
pub fn trend_of(
    mut reports: Vec<(String, SuiteReport)>,
    cfg: &BootstrapConfig,
) -> Result<Trend, Error> {
    reports.sort_by(|a, b| start_of(&a.1).cmp(&start_of(&b.1)).then(a.0.cmp(&b.0)));
    let mut series: Vec<Series> = Vec::new();
    for (label, report) in &reports {
        for run in &report.scenarios {
            let reps = run
                .repetitions
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    RepData::from_report(
                        r,
                        &format!("{label} scenario `{}` repetition {}", run.name, i + 1),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            for metric in Metric::ALL {
                let Some(e) = estimate(&evidence(&reps, metric), cfg) else {
                    continue;
                };
                let point = TrendPoint {
                    label: label.clone(),
                    at: report.started_at.clone(),
                    value: e.point,
                    ci: e.ci,
                };
                match series
                    .iter_mut()
                    .find(|s| s.scenario == run.name && s.metric == metric)
                {
                    Some(s) => s.points.push(point),
                    None => series.push(Series {
                        scenario: run.name.clone(),
                        metric,
                        points: vec![point],
                    }),
                }
            }
        }
    }
    Ok(Trend {
        reports: reports.into_iter().map(|(l, _)| l).collect(),
        skipped: Vec::new(),
        series,
    })
}
