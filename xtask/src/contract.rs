//! The telemetry metric names fixed by the cross-crate contract, and a check that alert
//! rules and dashboards use nothing else (a renamed metric would silently show nothing).

use anyhow::{Result, bail};

/// Every `ollama_client_*` metric family the telemetry crate exports, with its type.
pub(crate) const METRICS: &[(&str, Kind)] = &[
    ("ollama_client_requests_total", Kind::Counter),
    ("ollama_client_responses_total", Kind::Counter),
    ("ollama_client_errors_total", Kind::Counter),
    ("ollama_client_request_duration_seconds", Kind::Histogram),
    ("ollama_client_time_to_first_token_seconds", Kind::Histogram),
    ("ollama_client_inter_token_seconds", Kind::Histogram),
    ("ollama_client_model_load_duration_seconds", Kind::Histogram),
    ("ollama_client_tokens_total", Kind::Counter),
    ("ollama_client_tokens_per_second", Kind::Histogram),
    ("ollama_client_queue_wait_seconds", Kind::Histogram),
    ("ollama_client_in_flight_requests", Kind::Gauge),
    ("ollama_client_open_connections", Kind::Gauge),
    ("ollama_client_pool_wait_seconds", Kind::Histogram),
    ("ollama_client_server_busy_total", Kind::Counter),
    ("ollama_client_events_dropped_total", Kind::Counter),
];

/// The Prometheus type of a metric family, which decides the series names it exposes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Whether `series` is a series name that a contract metric exposes (histograms expose
/// `_bucket`, `_sum` and `_count`, never the bare name).
pub(crate) fn is_contract_series(series: &str) -> bool {
    METRICS.iter().any(|&(name, kind)| match kind {
        Kind::Counter | Kind::Gauge => series == name,
        Kind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| series.strip_suffix(suffix) == Some(name)),
    })
}

/// Every `ollama_client_<name>` identifier in `text`, in order of appearance.
pub(crate) fn referenced_series(text: &str) -> Vec<&str> {
    const PREFIX: &str = "ollama_client_";
    let mut found = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(at) = rest.find(PREFIX) {
        let start = offset + at;
        let preceded_by_ident = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let len = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(text.len() - start);
        // A bare prefix (as in "the ollama_client_* metrics") names the family, not a series.
        if !preceded_by_ident && len > PREFIX.len() {
            found.push(&text[start..start + len]);
        }
        offset = start + len;
        rest = &text[offset..];
    }
    found
}

/// Fails, naming each offender, if `text` (from `origin`) references a metric series that
/// is not in the contract.
pub(crate) fn check_text(origin: &str, text: &str) -> Result<()> {
    let mut unknown: Vec<&str> = referenced_series(text)
        .into_iter()
        .filter(|series| !is_contract_series(series))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    if !unknown.is_empty() {
        bail!(
            "{origin} uses metric series outside the telemetry contract: {}",
            unknown.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_series_need_a_suffix() {
        assert!(is_contract_series(
            "ollama_client_request_duration_seconds_bucket"
        ));
        assert!(is_contract_series("ollama_client_pool_wait_seconds_count"));
        assert!(!is_contract_series(
            "ollama_client_request_duration_seconds"
        ));
        assert!(is_contract_series("ollama_client_open_connections"));
        assert!(!is_contract_series("ollama_client_open_connections_bucket"));
        assert!(!is_contract_series("ollama_client_request_total"));
    }

    #[test]
    fn finds_identifiers_in_promql() {
        let expr = r#"sum(rate(ollama_client_errors_total{kind="x"}[5m])) / my_ollama_client_x"#;
        assert_eq!(referenced_series(expr), vec!["ollama_client_errors_total"]);
        assert!(referenced_series("the ollama_client_* metrics").is_empty());
        assert!(check_text("test", expr).is_ok());
        let bad = "rate(ollama_client_request_total[1m])";
        let err = check_text("test", bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ollama_client_request_total"), "{err}");
    }
}
