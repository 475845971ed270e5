//! Merging the reports of load-generator shards that ran the same scenario at the same time.
//!
//! Lossless where the schema allows it: histograms (the report's, and each model's own) are
//! added bucket by bucket and every distribution is recomputed from the sum, counts are
//! summed, rates (requests/s, tokens/s, goodput, open-loop rates) are added because the
//! shards ran side by side, and the timed window spans the earliest start to the latest end.
//! One thing cannot be exact: the peak number of requests in flight is the sum of the
//! shards' peaks (an upper bound, the peaks need not coincide). Reports written before
//! per-model histograms existed merge too, but a model of a mix that ran on several of them
//! keeps only its counts. The environment (server, host) is the first shard's.
//!
//! Reports of different scenarios never merge: the workload (mode, endpoint, streaming,
//! model mix, prompts, options, SLOs) must be identical; only the share of load (workers,
//! rate, request count), the seed and the host may differ.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use ollama_loadtest::{ConfigRecord, Distribution, EncodedHistogram, Report, SecondBucket};
use serde_json::Value;

use crate::archive::{Document, SuiteReport, now_rfc3339};
use crate::error::Error;

/// The result of a merge: the same kind of file as the inputs.
#[derive(Debug, Clone)]
pub enum Merged {
    /// Inputs were bare load-test reports.
    LoadTest(Box<Report>),
    /// Inputs were suite reports.
    Suite(Box<SuiteReport>),
}

/// Merges shards given as `(label, document)`; labels (file names) appear in errors.
///
/// All inputs must be of one kind: bare load-test reports of one scenario, or suite reports
/// of one suite with the same scenarios and repetition counts (repetition `i` of every
/// shard merges into repetition `i`).
pub fn merge_documents(inputs: Vec<(String, Document)>) -> Result<Merged, Error> {
    let Some((first_label, _)) = inputs.first() else {
        return Err(Error::Merge("no reports given".into()));
    };
    let first_label = first_label.clone();
    if inputs.len() < 2 {
        return Err(Error::Merge(format!(
            "only one report given ({first_label}); merging needs at least two shards"
        )));
    }
    let mut bare = Vec::new();
    let mut suites = Vec::new();
    for (label, doc) in inputs {
        match doc {
            Document::LoadTest(r) => bare.push((label, *r)),
            Document::Suite(s) => suites.push((label, *s)),
            Document::Comparison(_) => {
                return Err(Error::Merge(format!(
                    "{label} is a comparison; only reports merge"
                )));
            }
        }
    }
    match (bare.is_empty(), suites.is_empty()) {
        (false, true) => {
            let parts: Vec<(String, &Report)> = bare.iter().map(|(l, r)| (l.clone(), r)).collect();
            Ok(Merged::LoadTest(Box::new(merge_loadtest(&parts)?)))
        }
        (true, false) => merge_suites(&suites).map(|s| Merged::Suite(Box::new(s))),
        _ => Err(Error::Merge(format!(
            "{} are load-test reports but {} are suite reports; merge files of one kind",
            bare.iter()
                .map(|(l, _)| l.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            suites
                .iter()
                .map(|(l, _)| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn merge_suites(shards: &[(String, SuiteReport)]) -> Result<SuiteReport, Error> {
    let Some((first_label, first)) = shards.first() else {
        return Err(Error::Merge("no reports given".into()));
    };
    for (label, r) in shards {
        if r.suite.name != first.suite.name {
            return Err(Error::Merge(format!(
                "{label} is from suite `{}` but {first_label} is from suite `{}`",
                r.suite.name, first.suite.name
            )));
        }
        let names = |r: &SuiteReport| {
            r.scenarios
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        };
        if names(r) != names(first) {
            return Err(Error::Merge(format!(
                "{label} has scenarios [{}] but {first_label} has [{}]",
                names(r).join(", "),
                names(first).join(", ")
            )));
        }
    }
    let mut merged = first.clone();
    merged.shards = shards.iter().map(|(_, r)| r.shards).sum();
    merged.partial = shards.iter().any(|(_, r)| r.partial);
    merged.started_at = shards
        .iter()
        .map(|(_, r)| r.started_at.clone())
        .min()
        .unwrap_or_default();
    merged.finished_at = shards
        .iter()
        .map(|(_, r)| r.finished_at.clone())
        .max()
        .unwrap_or_else(now_rfc3339);
    for (si, scenario) in merged.scenarios.iter_mut().enumerate() {
        let reps = first.scenarios[si].repetitions.len();
        for (label, r) in shards {
            let n = r.scenarios[si].repetitions.len();
            if n != reps {
                return Err(Error::Merge(format!(
                    "scenario `{}` has {n} repetitions in {label} but {reps} in {first_label}",
                    scenario.name
                )));
            }
        }
        for rep in 0..reps {
            let parts: Vec<(String, &Report)> = shards
                .iter()
                .map(|(l, r)| {
                    (
                        format!("{l} (scenario `{}`, repetition {})", scenario.name, rep + 1),
                        &r.scenarios[si].repetitions[rep],
                    )
                })
                .collect();
            scenario.repetitions[rep] = merge_loadtest(&parts)?;
        }
    }
    Ok(merged)
}

/// The workload identity of a load-test report: what must match for a merge.
fn identity(c: &ConfigRecord) -> Vec<(&'static str, String)> {
    let j = |v: &dyn erased::Json| v.json();
    vec![
        ("mode", c.mode.clone()),
        ("endpoint", c.endpoint.clone()),
        ("stream", c.stream.to_string()),
        ("models", j(&c.models)),
        ("prompt", j(&c.prompt)),
        ("prompt_count", c.prompt_count.to_string()),
        ("prompt_order", c.prompt_order.clone()),
        ("options", j(&c.options)),
        ("slo", j(&c.slo)),
        ("arrival", j(&c.arrival)),
    ]
}

mod erased {
    /// Serialises any field to compact JSON for comparison and messages.
    pub(super) trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn sum_maps(maps: impl Iterator<Item = BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            *out.entry(k).or_default() += v;
        }
    }
    out
}

/// Merges load-test reports of one scenario.
pub(crate) fn merge_loadtest(parts: &[(String, &Report)]) -> Result<Report, Error> {
    let Some(&(ref first_label, first)) = parts.first() else {
        return Err(Error::Merge("no reports given".into()));
    };
    let want = identity(&first.config);
    for (label, r) in &parts[1..] {
        for ((name, a), (_, b)) in want.iter().zip(identity(&r.config)) {
            if *a != b {
                return Err(Error::Merge(format!(
                    "{label} and {first_label} ran different scenarios: `{name}` is {b} in one and {a} in the other"
                )));
            }
        }
    }
    let reports: Vec<&Report> = parts.iter().map(|(_, r)| *r).collect();

    // Histograms first: every distribution is recomputed from them.
    let mut summed = sum_histograms(parts, |r| Some(&r.histograms), "histogram")?;
    let histograms = std::mem::take(&mut summed.encoded);
    let dist = |name: &str| summed.distribution(name);

    let mut out = first.clone();
    out.histograms = histograms;

    // Metrics: every field `<name>` or `<name>_ms` is the distribution of histogram `<name>`.
    let mut metrics =
        serde_json::to_value(&first.metrics).map_err(|e| Error::Merge(format!("metrics: {e}")))?;
    if let Value::Object(fields) = &mut metrics {
        for (field, value) in fields.iter_mut() {
            let name = field.strip_suffix("_ms").unwrap_or(field);
            *value = match dist(name) {
                Some(d) => serde_json::to_value(d).unwrap_or(Value::Null),
                None => Value::Null,
            };
        }
    }
    out.metrics =
        serde_json::from_value(metrics).map_err(|e| Error::Merge(format!("metrics: {e}")))?;

    // The timed window: earliest start to latest end, when timestamps are readable.
    let starts: Vec<Option<DateTime<Utc>>> =
        reports.iter().map(|r| parse_ts(&r.timestamp)).collect();
    let earliest = starts.iter().flatten().min().copied();
    let offsets: Vec<f64> = starts
        .iter()
        .map(|s| match (s, earliest) {
            (Some(s), Some(e)) => (*s - e).as_seconds_f64().max(0.0),
            _ => 0.0,
        })
        .collect();
    let window = reports
        .iter()
        .zip(&offsets)
        .map(|(r, off)| off + r.summary.test_duration_seconds)
        .fold(0.0, f64::max);
    if let Some(e) = earliest {
        out.timestamp = e.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    }
    out.partial = reports.iter().any(|r| r.partial);
    out.aborted = reports.iter().find_map(|r| r.aborted.clone());

    // Summary.
    let s = &mut out.summary;
    let sum = |f: &dyn Fn(&Report) -> u64| reports.iter().map(|r| f(r)).sum::<u64>();
    let fsum = |f: &dyn Fn(&Report) -> f64| reports.iter().map(|r| f(r)).sum::<f64>();
    s.total_requests = sum(&|r| r.summary.total_requests);
    s.successes = sum(&|r| r.summary.successes);
    s.failures = sum(&|r| r.summary.failures);
    s.success_rate = if s.total_requests > 0 {
        s.successes as f64 / s.total_requests as f64 * 100.0
    } else {
        0.0
    };
    s.test_duration_seconds = window;
    s.requests_per_second = fsum(&|r| r.summary.requests_per_second);
    s.latency_ms = dist("e2e").unwrap_or_default();
    s.latency_uncorrected_ms = if first.summary.latency_uncorrected_ms.is_some() {
        dist("e2e_uncorrected")
    } else {
        None
    };
    s.errors = sum_maps(reports.iter().map(|r| r.summary.errors.clone()));
    s.http_statuses = sum_maps(reports.iter().map(|r| r.summary.http_statuses.clone()));
    s.abandoned = sum(&|r| r.summary.abandoned);
    s.peak_in_flight = sum(&|r| r.summary.peak_in_flight);
    s.output_tokens_total = sum(&|r| r.summary.output_tokens_total);
    s.prompt_tokens_total = sum(&|r| r.summary.prompt_tokens_total);
    s.output_tokens_per_second = fsum(&|r| r.summary.output_tokens_per_second);
    s.cold_loads = sum(&|r| r.summary.cold_loads);
    s.warmup.requests = sum(&|r| r.summary.warmup.requests);
    s.warmup.failures = sum(&|r| r.summary.warmup.failures);
    s.warmup.duration_seconds = reports
        .iter()
        .map(|r| r.summary.warmup.duration_seconds)
        .fold(0.0, f64::max);

    // Config: the shares of load add up.
    let c = &mut out.config;
    c.workers = reports.iter().map(|r| r.config.workers).sum();
    c.requests = reports
        .iter()
        .map(|r| r.config.requests)
        .sum::<Option<u64>>();
    c.duration = reports
        .iter()
        .map(|r| r.config.duration)
        .try_fold(0.0, |acc: f64, d| d.map(|d| acc.max(d)));
    c.concurrency = reports
        .iter()
        .map(|r| r.config.concurrency)
        .sum::<Option<usize>>();
    c.rate = reports.iter().map(|r| r.config.rate).sum::<Option<f64>>();
    c.max_in_flight = reports
        .iter()
        .map(|r| r.config.max_in_flight)
        .sum::<Option<usize>>();
    c.output = None;

    // Open loop.
    if let Some(ol) = &mut out.open_loop {
        let ols: Vec<_> = reports
            .iter()
            .filter_map(|r| r.open_loop.as_ref())
            .collect();
        ol.target_rate = ols.iter().map(|o| o.target_rate).sum();
        ol.sent = ols.iter().map(|o| o.sent).sum();
        ol.achieved_rate = ols.iter().map(|o| o.achieved_rate).sum();
        ol.schedule_lag_ms = dist("schedule_lag");
        ol.max_in_flight = ols.iter().map(|o| o.max_in_flight).sum();
        ol.max_in_flight_hits = ols.iter().map(|o| o.max_in_flight_hits).sum();
    }

    // Goodput.
    if let Some(g) = &mut out.goodput {
        g.good_requests = reports
            .iter()
            .filter_map(|r| r.goodput.as_ref())
            .map(|g| g.good_requests)
            .sum();
        g.goodput_rps = reports
            .iter()
            .filter_map(|r| r.goodput.as_ref())
            .map(|g| g.goodput_rps)
            .sum();
        g.good_percent = if out.summary.total_requests > 0 {
            g.good_requests as f64 / out.summary.total_requests as f64 * 100.0
        } else {
            0.0
        };
    }

    // Per model: counts sum; distributions come from the models' own histograms, summed like
    // the report's. Reports written before those existed fall back to the report's
    // distributions for a single model, and to none for a model of a mix that ran on several
    // shards (its distributions cannot be recomputed from anything).
    let single_model = reports
        .iter()
        .flat_map(|r| r.models.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == 1;
    let mut models = BTreeMap::new();
    for r in &reports {
        for (name, m) in &r.models {
            models
                .entry(name.clone())
                .and_modify(|acc: &mut (ollama_loadtest::ModelStats, u32)| {
                    let (a, shards) = acc;
                    a.requests += m.requests;
                    a.successes += m.successes;
                    a.failures += m.failures;
                    a.output_tokens_total += m.output_tokens_total;
                    a.cold_loads += m.cold_loads;
                    *shards += 1;
                })
                .or_insert_with(|| (m.clone(), 1));
        }
    }
    let mut merged_models = BTreeMap::new();
    for (name, (mut m, shards)) in models {
        // Every shard where the model succeeded recorded its latency histogram.
        let recorded = reports.iter().all(|r| {
            r.models.get(&name).is_none_or(|on_shard| {
                on_shard.successes == 0 || on_shard.histograms.contains_key("e2e")
            })
        });
        if recorded {
            let own = sum_histograms(
                parts,
                |r| r.models.get(&name).map(|m| &m.histograms),
                &format!("model `{name}` histogram"),
            )?;
            m.latency_ms = own.distribution("e2e");
            m.ttft_ms = own.distribution("ttft");
            m.tokens_per_second = own.distribution("tokens_per_second");
            m.histograms = own.encoded;
        } else if single_model {
            m.latency_ms = dist("e2e");
            m.ttft_ms = dist("ttft");
            m.tokens_per_second = dist("tokens_per_second");
            m.histograms = BTreeMap::new();
        } else if shards > 1 {
            m.latency_ms = None;
            m.ttft_ms = None;
            m.tokens_per_second = None;
            m.histograms = BTreeMap::new();
        }
        merged_models.insert(name, m);
    }
    out.models = merged_models;

    out.time_series = merge_series(&reports, &offsets);
    out.samples.requests = reports
        .iter()
        .flat_map(|r| r.samples.requests.iter().cloned())
        .collect();
    out.samples.errors = reports
        .iter()
        .flat_map(|r| r.samples.errors.iter().cloned())
        .collect();
    Ok(out)
}

/// Histograms of several shards added name by name, encoded for the report and decoded for
/// recomputing distributions.
struct Summed {
    encoded: BTreeMap<String, EncodedHistogram>,
    decoded: BTreeMap<String, (Histogram<u64>, f64)>,
}

impl Summed {
    /// The distribution of histogram `name` in its report unit, if any shard had it.
    fn distribution(&self, name: &str) -> Option<Distribution> {
        self.decoded
            .get(name)
            .and_then(|(h, scale)| Distribution::from_histogram(h, *scale))
    }
}

/// Adds up, name by name, the histograms that `of` finds in each shard (a shard without
/// them, or without one name, adds nothing to it). `what` names them in errors, with the
/// shard's label: one that cannot be decoded, or whose unit differs from the first shard's.
fn sum_histograms<'r>(
    parts: &[(String, &'r Report)],
    of: impl Fn(&'r Report) -> Option<&'r BTreeMap<String, EncodedHistogram>>,
    what: &str,
) -> Result<Summed, Error> {
    let mut summed = Summed {
        encoded: BTreeMap::new(),
        decoded: BTreeMap::new(),
    };
    let names: std::collections::BTreeSet<&String> = parts
        .iter()
        .filter_map(|(_, r)| of(r))
        .flat_map(BTreeMap::keys)
        .collect();
    for name in names {
        let mut acc: Option<(Histogram<u64>, &EncodedHistogram)> = None;
        for (label, r) in parts {
            let Some(enc) = of(r).and_then(|map| map.get(name)) else {
                continue;
            };
            let h = enc.decode().map_err(|e| {
                Error::Merge(format!("{label}: {what} `{name}` cannot be decoded: {e}"))
            })?;
            match &mut acc {
                None => acc = Some((h, enc)),
                Some((sum, first_enc)) => {
                    if first_enc.unit != enc.unit
                        || first_enc.scale.to_bits() != enc.scale.to_bits()
                    {
                        return Err(Error::Merge(format!(
                            "{label}: {what} `{name}` is in unit {} (scale {}), not {} (scale {})",
                            enc.unit, enc.scale, first_enc.unit, first_enc.scale
                        )));
                    }
                    sum.add(&h).map_err(|e| {
                        Error::Merge(format!("{label}: {what} `{name}` cannot be added: {e:?}"))
                    })?;
                }
            }
        }
        if let Some((h, enc)) = acc {
            let encoded = EncodedHistogram::encode(&h, &enc.unit, enc.scale)
                .map_err(|e| Error::Merge(format!("{what} `{name}`: {e}")))?;
            summed.encoded.insert(name.clone(), encoded);
            summed.decoded.insert(name.clone(), (h, enc.scale));
        }
    }
    Ok(summed)
}

/// Adds the per-second series, aligned by each shard's start.
fn merge_series(reports: &[&Report], offsets: &[f64]) -> Vec<SecondBucket> {
    let mut by_second: BTreeMap<u64, (SecondBucket, f64)> = BTreeMap::new();
    for (r, off) in reports.iter().zip(offsets) {
        for b in &r.time_series {
            let second = b.second + off.round() as u64;
            let ok = b.requests.saturating_sub(b.errors) as f64;
            let (acc, latency_sum) = by_second.entry(second).or_insert_with(|| {
                (
                    SecondBucket {
                        second,
                        ..SecondBucket::default()
                    },
                    0.0,
                )
            });
            acc.requests += b.requests;
            acc.errors += b.errors;
            acc.output_tokens += b.output_tokens;
            acc.latency_max_ms = acc.latency_max_ms.max(b.latency_max_ms);
            *latency_sum += b.latency_avg_ms * ok;
        }
    }
    by_second
        .into_values()
        .map(|(mut b, latency_sum)| {
            let ok = b.requests.saturating_sub(b.errors);
            b.latency_avg_ms = if ok > 0 { latency_sum / ok as f64 } else { 0.0 };
            b
        })
        .collect()
}
