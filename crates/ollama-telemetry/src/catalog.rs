//! The metric catalogue: every metric name this crate records, its help text, its unit and,
//! for histograms, its bucket bounds.
//!
//! Names are fixed by the team contract (alert rules and dashboards use them verbatim), so
//! they live in one place and every recording site refers to these constants. The bucket
//! bounds are chosen for LLM traffic: a warm embedding answers in milliseconds, a long
//! generation or a cold load of a large model takes minutes.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// `counter{endpoint, model, outcome}`: requests finished, by outcome
/// (`success`, `error`, `abandoned`).
pub const REQUESTS_TOTAL: &str = "ollama_client_requests_total";
/// `counter{endpoint, model, status}`: HTTP responses received, by status code.
pub const RESPONSES_TOTAL: &str = "ollama_client_responses_total";
/// `counter{endpoint, model, kind}`: failed requests, by `ErrorKind::as_str()`.
pub const ERRORS_TOTAL: &str = "ollama_client_errors_total";
/// `histogram{endpoint, model, outcome}`: client-side end-to-end duration.
pub const REQUEST_DURATION_SECONDS: &str = "ollama_client_request_duration_seconds";
/// `histogram{endpoint, model}`: time from the call to the first chunk carrying token text.
pub const TIME_TO_FIRST_TOKEN_SECONDS: &str = "ollama_client_time_to_first_token_seconds";
/// `histogram{endpoint, model}`: gap between consecutive chunks carrying token text.
pub const INTER_TOKEN_SECONDS: &str = "ollama_client_inter_token_seconds";
/// `histogram{model}`: the server's `load_duration`.
pub const MODEL_LOAD_DURATION_SECONDS: &str = "ollama_client_model_load_duration_seconds";
/// `counter{model, kind}`: tokens the server counted (`prompt`, `completion`).
pub const TOKENS_TOTAL: &str = "ollama_client_tokens_total";
/// `histogram{model}`: generation speed, `eval_count / eval_duration`.
pub const TOKENS_PER_SECOND: &str = "ollama_client_tokens_per_second";
/// `histogram{model}`: client end-to-end time minus the server's `total_duration`.
pub const QUEUE_WAIT_SECONDS: &str = "ollama_client_queue_wait_seconds";
/// `gauge`: requests in flight in the client (from `ClientStats`).
pub const IN_FLIGHT_REQUESTS: &str = "ollama_client_in_flight_requests";
/// `gauge`: sockets the client holds open (from `ClientStats`).
pub const OPEN_CONNECTIONS: &str = "ollama_client_open_connections";
/// `histogram`: time requests waited for a connection or concurrency slot (from `ClientStats`).
pub const POOL_WAIT_SECONDS: &str = "ollama_client_pool_wait_seconds";
/// `counter{endpoint, model}`: 503 "server busy" answers.
pub const SERVER_BUSY_TOTAL: &str = "ollama_client_server_busy_total";
/// `counter`: JSONL events dropped because the writer's queue was full.
pub const EVENTS_DROPPED_TOTAL: &str = "ollama_client_events_dropped_total";
/// `counter`: JSONL events the writer could not write (the sink returned an error).
pub const EVENT_WRITE_ERRORS_TOTAL: &str = "ollama_client_event_write_errors_total";

/// Bounds for end-to-end request durations: 5 ms to 10 min.
pub const REQUEST_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Bounds for time to first token: 5 ms to 5 min (a cold load of a large model sits in it).
pub const TIME_TO_FIRST_TOKEN_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Bounds for inter-token gaps: 1 ms (fast GPU) to 5 s (a stalling server).
pub const INTER_TOKEN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Bounds for model load durations. A warm request reports a few ms; 30 s is a bound so an
/// alert can count loads slower than 30 s as `count - bucket{le="30"}`.
pub const MODEL_LOAD_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Bounds for generation speed in tokens per second: a CPU-bound large model to a small model
/// on a fast GPU.
pub const TOKENS_PER_SECOND_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0, 2000.0,
    5000.0,
];
/// Bounds for the queue-wait estimate: 1 ms to 10 min.
pub const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];
/// Bounds for pool waits: 100 µs to 60 s.
pub const POOL_WAIT_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0,
];

/// Every histogram with its bucket bounds, for exporters that need them per metric.
pub const HISTOGRAM_BUCKETS: &[(&str, &[f64])] = &[
    (REQUEST_DURATION_SECONDS, REQUEST_DURATION_BUCKETS),
    (TIME_TO_FIRST_TOKEN_SECONDS, TIME_TO_FIRST_TOKEN_BUCKETS),
    (INTER_TOKEN_SECONDS, INTER_TOKEN_BUCKETS),
    (MODEL_LOAD_DURATION_SECONDS, MODEL_LOAD_BUCKETS),
    (TOKENS_PER_SECOND, TOKENS_PER_SECOND_BUCKETS),
    (QUEUE_WAIT_SECONDS, QUEUE_WAIT_BUCKETS),
    (POOL_WAIT_SECONDS, POOL_WAIT_BUCKETS),
];

/// Registers the help text and unit of every metric with the current recorder, so an
/// exporter prints `# HELP` lines (Prometheus tooling warns about metrics without them).
pub fn describe_metrics() {
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Requests to the Ollama server that finished, by endpoint, model and outcome (success, error, abandoned)."
    );
    describe_counter!(
        RESPONSES_TOTAL,
        Unit::Count,
        "HTTP responses received from the Ollama server, by endpoint, model and status code."
    );
    describe_counter!(
        ERRORS_TOTAL,
        Unit::Count,
        "Failed requests, by endpoint, model and error kind."
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Client-side end-to-end request duration (to the last chunk for streams)."
    );
    describe_histogram!(
        TIME_TO_FIRST_TOKEN_SECONDS,
        Unit::Seconds,
        "Time from the call to the first streamed chunk carrying token text."
    );
    describe_histogram!(
        INTER_TOKEN_SECONDS,
        Unit::Seconds,
        "Gap between consecutive streamed chunks carrying token text."
    );
    describe_histogram!(
        MODEL_LOAD_DURATION_SECONDS,
        Unit::Seconds,
        "Model load duration reported by the server (load_duration)."
    );
    describe_counter!(
        TOKENS_TOTAL,
        Unit::Count,
        "Tokens counted by the server, by model and kind (prompt, completion)."
    );
    describe_histogram!(
        TOKENS_PER_SECOND,
        "Generation speed reported by the server: eval_count / eval_duration."
    );
    describe_histogram!(
        QUEUE_WAIT_SECONDS,
        Unit::Seconds,
        "Estimated time outside the server's work: client end-to-end minus server total_duration."
    );
    describe_gauge!(
        IN_FLIGHT_REQUESTS,
        Unit::Count,
        "Requests in flight in the client, as of the last request start or end."
    );
    describe_gauge!(
        OPEN_CONNECTIONS,
        Unit::Count,
        "Sockets the client holds open, as of the last request start or end."
    );
    describe_histogram!(
        POOL_WAIT_SECONDS,
        Unit::Seconds,
        "Time requests waited for a connection or concurrency slot in the client."
    );
    describe_counter!(
        SERVER_BUSY_TOTAL,
        Unit::Count,
        "Requests refused with 503 server busy, by endpoint and model."
    );
    describe_counter!(
        EVENTS_DROPPED_TOTAL,
        Unit::Count,
        "JSONL request events dropped because the event writer's queue was full."
    );
    describe_counter!(
        EVENT_WRITE_ERRORS_TOTAL,
        Unit::Count,
        "JSONL request events the event writer failed to write to its sink."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_strictly_increasing_and_positive() {
        for (name, bounds) in HISTOGRAM_BUCKETS {
            assert!(bounds[0] > 0.0, "{name}");
            assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{name}");
        }
    }

    #[test]
    fn load_buckets_contain_thirty_seconds() {
        assert!(MODEL_LOAD_BUCKETS.contains(&30.0));
    }

    #[test]
    fn latency_buckets_span_milliseconds_to_ten_minutes() {
        assert!(REQUEST_DURATION_BUCKETS[0] <= 0.005);
        assert!(REQUEST_DURATION_BUCKETS.last().copied() == Some(600.0));
    }
}
