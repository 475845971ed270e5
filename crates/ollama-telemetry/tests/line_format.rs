//! The event writer's hand-written JSON is byte-for-byte what `serde_json` makes of a
//! `RequestEvent`: arbitrary events (strings that need escapes, non-finite floats, absent
//! values, error keys, nested options) go through an `EventLog` and come out as the lines
//! `serde_json::to_string` produces.
#![allow(clippy::unwrap_used)]

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use ollama_telemetry::{EventLog, Outcome, RequestEvent};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// A sink shared with the test.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Text with what JSON must escape: quotes, backslashes, every control character, DEL,
/// and multi-byte characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9:._-]{0,12}",
        "\\PC{0,16}",
        prop::collection::vec(
            prop_oneof![
                (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
                Just('"'),
                Just('\\'),
                Just('/'),
                Just('\u{7f}'),
                Just('é'),
                Just('\u{2028}'),
                Just('😀'),
                Just('a'),
            ],
            0..24
        )
        .prop_map(|chars| chars.into_iter().collect()),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        Just(1e-7),
        Just(1e16),
        0.0..10_000.0f64,
        any::<f64>(),
    ]
}

fn options() -> impl Strategy<Value = Option<Value>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        float().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    });
    prop::option::of(value)
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Error),
        Just(Outcome::Abandoned)
    ]
}

prop_compose! {
    fn event()(
        names in (text(), text(), text(), text(), text(), text(), text()),
        model in prop::option::of(text()),
        (stream, outcome, model_warm_start) in (any::<bool>(), outcome(), prop::option::of(any::<bool>())),
        latency_ms in float(),
        durations in prop::array::uniform6(prop::option::of(float())),
        counts in prop::array::uniform3(prop::option::of(any::<u64>())),
        done_reason in prop::option::of(text()),
        options in options(),
        prompt in prop::option::of(text()),
        error in prop::option::of((text(), text(), prop::option::of(any::<u16>()))),
    ) -> RequestEvent {
        let (event, timestamp, request_id, client_type, operation, endpoint, status) = names;
        let [ttft_ms, total_duration_ms, model_load_ms, prompt_eval_ms, eval_ms, queue_wait_ms] =
            durations;
        let (error_type, error_message, http_status) = match error {
            Some((kind, message, status)) => (Some(kind.into()), Some(message), status),
            None => (None, None, None),
        };
        RequestEvent {
            event: event.into(),
            timestamp,
            request_id,
            client_type: client_type.into(),
            operation: operation.into(),
            endpoint: endpoint.into(),
            model,
            stream,
            status: status.into(),
            outcome,
            latency_ms,
            ttft_ms,
            total_duration_ms,
            model_load_ms,
            model_warm_start,
            prompt_eval_ms,
            eval_ms,
            queue_wait_ms,
            prompt_chars: counts[0],
            prompt_eval_count: counts[1],
            generation_eval_count: counts[2],
            tokens_per_second: durations[5].map(|v| v * 3.0),
            done_reason,
            options,
            prompt,
            error_type,
            error_message,
            http_status,
        }
    }
}

/// What the writer makes of `events`, and what serde_json makes of them.
fn both(events: &[RequestEvent]) -> (String, String) {
    let sink = Sink::default();
    let log = EventLog::to_writer(sink.clone(), events.len().max(1)).unwrap();
    for e in events {
        assert!(log.record(e.clone()));
    }
    log.shutdown();
    let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let expected: String = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    (written, expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lines_are_what_serde_json_writes(events in prop::collection::vec(event(), 1..8)) {
        let (written, expected) = both(&events);
        prop_assert_eq!(written, expected);
    }
}

#[test]
fn a_typical_event_and_an_error_event_match() {
    let ok = RequestEvent {
        event: "ollama_request".into(),
        timestamp: "2026-12-04T20:51:18.123456Z".to_owned(),
        request_id: "0a1b2c3d-42".to_owned(),
        client_type: "rust_async".into(),
        operation: "generate".into(),
        endpoint: "/api/generate".into(),
        model: Some("llama3.2:latest".to_owned()),
        stream: false,
        status: "success".into(),
        outcome: Outcome::Success,
        latency_ms: 0.412_345,
        ttft_ms: None,
        total_duration_ms: Some(0.2),
        model_load_ms: Some(0.001),
        model_warm_start: Some(true),
        prompt_eval_ms: Some(0.05),
        eval_ms: Some(0.1),
        queue_wait_ms: Some(0.212_345),
        prompt_chars: Some(44),
        prompt_eval_count: Some(11),
        generation_eval_count: Some(24),
        tokens_per_second: Some(240_000.0),
        done_reason: Some("stop".to_owned()),
        options: Some(json!({"temperature": 0.2, "stop": ["\n", "\u{1}"]})),
        prompt: None,
        error_type: None,
        error_message: None,
        http_status: None,
    };
    let failed = RequestEvent {
        status: "error".into(),
        outcome: Outcome::Error,
        latency_ms: f64::NAN,
        error_type: Some("http_status".into()),
        error_message: Some("server said \"busy\"\tretry".to_owned()),
        http_status: Some(503),
        prompt: Some("line\nbreak".to_owned()),
        options: None,
        ..ok.clone()
    };
    let (written, expected) = both(&[ok, failed]);
    assert_eq!(written, expected);
}
