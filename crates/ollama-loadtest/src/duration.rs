//! Human durations for flags, SLOs and thresholds: `250ms`, `1.5s`, `2m`, `90` (a bare
//! number takes the caller's default unit). humantime is used where it fits, but it
//! rejects fractions such as `1.5s`, which thresholds need.

use std::time::Duration;

/// Unit assumed for a bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BareUnit {
    Seconds,
    Millis,
}

/// Parses a command-line duration: `90` (seconds), `250ms`, `1.5s`, `2m`, `1h`. The error
/// names the text and says what was wrong.
pub fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text, BareUnit::Seconds)
}

/// Parses a non-negative duration; the error says what was wrong with `text`.
pub(crate) fn parse_duration(text: &str, bare: BareUnit) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 500ms, 2s, 1.5m)"))?;
    let seconds = match (unit.trim(), bare) {
        ("", BareUnit::Seconds) | ("s" | "sec" | "secs", _) => value,
        ("", BareUnit::Millis) | ("ms", _) => value / 1e3,
        ("us" | "µs", _) => value / 1e6,
        ("m" | "min", _) => value * 60.0,
        ("h", _) => value * 3600.0,
        (other, _) => {
            return humantime::parse_duration(t).map_err(|_| {
                format!("{text:?} has an unknown unit {other:?} (use us, ms, s, m or h)")
            });
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_units_fractions_and_bare_numbers() {
        let ms = |s| parse_duration(s, BareUnit::Millis).unwrap();
        assert_eq!(ms("500ms"), Duration::from_millis(500));
        assert_eq!(ms("1.5s"), Duration::from_millis(1500));
        assert_eq!(ms("2m"), Duration::from_secs(120));
        assert_eq!(ms("250"), Duration::from_millis(250));
        assert_eq!(ms("100us"), Duration::from_micros(100));
        assert_eq!(
            parse_duration("30", BareUnit::Seconds).unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(ms("1h 30m"), Duration::from_secs(5400));
    }

    #[test]
    fn rejects_garbage_with_the_text_in_the_message() {
        let e = parse_duration("fast", BareUnit::Millis).unwrap_err();
        assert!(e.contains("fast"), "{e}");
        let e = parse_duration("5 parsecs", BareUnit::Millis).unwrap_err();
        assert!(e.contains("parsecs"), "{e}");
        assert!(parse_duration("-1s", BareUnit::Millis).is_err());
    }
}
