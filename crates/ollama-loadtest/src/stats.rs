//! Distributions kept in HDR histograms, so memory stays flat however many requests a run
//! makes, and histograms serialize losslessly so shards of one test merge exactly.
//!
//! Percentiles are nearest-rank (the smallest recorded value with at least `q` of the
//! samples at or below it), the definition the original script got off by one. Values are
//! recorded as integers in a fixed unit per metric (microseconds for times) with three
//! significant digits: below 2048 units a value is exact, above it a percentile is within
//! 0.1% of the true sample. Minimum, maximum and mean are kept exactly beside the histogram.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// Significant decimal digits kept by every histogram (0.1% relative resolution).
const SIGNIFICANT_DIGITS: u8 = 3;

/// Summary of one metric's distribution, in the metric's report unit (milliseconds for
/// times, tokens per second for rates, tokens for counts).
///
/// `min`, `max` and `avg` are exact when produced by a run; after a merge of serialized
/// histograms they carry the histogram's 0.1% resolution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub avg: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// 99.9th percentile (nearest rank).
    pub p999: f64,
}

impl Distribution {
    /// Summarises a histogram whose values are in raw units; `scale` converts a raw value to
    /// the report unit (for example `0.001` for microseconds to milliseconds).
    ///
    /// Returns `None` for an empty histogram. Used for merged histograms, where exact
    /// extremes are no longer known.
    pub fn from_histogram(histogram: &Histogram<u64>, scale: f64) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let min = histogram.min() as f64;
        let max = histogram.max() as f64;
        Some(Self::build(histogram, scale, min, max, histogram.mean()))
    }

    fn build(histogram: &Histogram<u64>, scale: f64, min: f64, max: f64, mean: f64) -> Self {
        let at = |q: f64| {
            let raw = histogram.median_equivalent(histogram.value_at_quantile(q)) as f64;
            // The bucket midpoint can fall outside the exact extremes; clamp so that
            // min <= p50 <= ... <= max always holds.
            raw.clamp(min, max) * scale
        };
        Self {
            count: histogram.len(),
            min: min * scale,
            max: max * scale,
            avg: mean * scale,
            p50: at(0.50),
            p90: at(0.90),
            p95: at(0.95),
            p99: at(0.99),
            p999: at(0.999),
        }
    }

    /// The value of a named statistic (`min`, `max`, `avg`, `p50`, `p90`, `p95`, `p99`,
    /// `p999`), as thresholds name them.
    pub fn statistic(&self, name: &str) -> Option<f64> {
        Some(match name {
            "min" => self.min,
            "max" => self.max,
            "avg" | "mean" => self.avg,
            "p50" | "median" => self.p50,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            "p999" => self.p999,
            _ => return None,
        })
    }
}

/// A histogram serialized for the report: HdrHistogram V2 with deflate, base64-encoded
/// (the format every HdrHistogram implementation reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedHistogram {
    /// Unit of the recorded integer values (`us`, `milli_tokens_per_second`, `tokens`).
    pub unit: String,
    /// Multiply a raw value by this to get the report unit of the matching [`Distribution`].
    pub scale: f64,
    /// Always `hdr-v2-deflate-base64`.
    pub encoding: String,
    /// The serialized histogram.
    pub data: String,
}

/// The `encoding` value of every [`EncodedHistogram`] this crate writes.
pub const HISTOGRAM_ENCODING: &str = "hdr-v2-deflate-base64";

/// Why a serialized histogram could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    /// The `encoding` field names a format this crate does not read.
    #[error("unsupported histogram encoding {0:?} (expected {HISTOGRAM_ENCODING:?})")]
    Encoding(String),
    /// The `data` field is not valid base64.
    #[error("histogram data is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The bytes are not a valid HdrHistogram V2 serialization.
    #[error("histogram data is not a valid HdrHistogram: {0:?}")]
    Decode(hdrhistogram::serialization::DeserializeError),
    /// Serialization failed (only on an internal inconsistency).
    #[error("histogram could not be serialized: {0:?}")]
    Encode(hdrhistogram::serialization::V2DeflateSerializeError),
}

impl EncodedHistogram {
    /// Serializes `histogram`, whose raw values are in `unit` and convert to the report
    /// unit by multiplying with `scale`.
    pub fn encode(
        histogram: &Histogram<u64>,
        unit: &str,
        scale: f64,
    ) -> Result<Self, HistogramError> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(histogram, &mut bytes)
            .map_err(HistogramError::Encode)?;
        Ok(Self {
            unit: unit.to_owned(),
            scale,
            encoding: HISTOGRAM_ENCODING.to_owned(),
            data: STANDARD.encode(bytes),
        })
    }

    /// Deserializes the histogram, ready to merge with `Histogram::add`.
    pub fn decode(&self) -> Result<Histogram<u64>, HistogramError> {
        if self.encoding != HISTOGRAM_ENCODING {
            return Err(HistogramError::Encoding(self.encoding.clone()));
        }
        let bytes = STANDARD.decode(&self.data)?;
        let mut histogram: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(HistogramError::Decode)?;
        // A decoded histogram's range ends at the largest value it holds; auto-resizing
        // lets another shard's larger values be added to it (merges) instead of failing.
        histogram.auto(true);
        Ok(histogram)
    }

    /// Summary of the serialized distribution in the report unit.
    pub fn distribution(&self) -> Result<Option<Distribution>, HistogramError> {
        Ok(Distribution::from_histogram(&self.decode()?, self.scale))
    }
}

/// One metric being recorded: an HDR histogram plus exact extremes and sum.
///
/// Invariant: `min`, `max` and `sum` describe exactly the values in `histogram`.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    histogram: Histogram<u64>,
    min: u64,
    max: u64,
    sum: u128,
    unit: &'static str,
    scale: f64,
}

impl Track {
    /// A track of raw integer values in `unit`; `scale` converts them to the report unit.
    pub(crate) fn new(unit: &'static str, scale: f64) -> Self {
        // An auto-resizing histogram: its size follows the largest value, not the count.
        let mut histogram = Histogram::new_with_bounds(1, 1 << 20, SIGNIFICANT_DIGITS)
            .unwrap_or_else(|_| unreachable!("constant bounds are valid"));
        histogram.auto(true);
        Self {
            histogram,
            min: u64::MAX,
            max: 0,
            sum: 0,
            unit,
            scale,
        }
    }

    /// A track of durations, recorded in microseconds and reported in milliseconds.
    pub(crate) fn micros() -> Self {
        Self::new("us", 0.001)
    }

    /// Records one raw value.
    pub(crate) fn record(&mut self, value: u64) {
        // Auto-resizing makes recording infallible for any u64 the histogram can hold;
        // a value past its 2^63 ceiling is clamped rather than lost.
        let value = value.min(u64::MAX >> 2);
        if self.histogram.record(value).is_err() {
            return;
        }
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    /// Adds every value of `other` (a track of the same unit), keeping the extremes and
    /// the sum exact.
    pub(crate) fn merge(&mut self, other: &Track) {
        // Auto-resizing makes adding infallible; should it ever fail, nothing was added
        // and the extremes and sum stay those of the histogram.
        if self.histogram.add(&other.histogram).is_err() {
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Records a duration in microseconds (sub-microsecond durations round down).
    pub(crate) fn record_duration(&mut self, duration: std::time::Duration) {
        self.record(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX));
    }

    pub(crate) fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Value at quantile `q` in the report unit, or `None` when empty (for live progress).
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        if self.histogram.is_empty() {
            return None;
        }
        Some(self.histogram.value_at_quantile(q) as f64 * self.scale)
    }

    /// Summary with exact extremes and mean.
    pub(crate) fn distribution(&self) -> Option<Distribution> {
        let count = self.histogram.len();
        if count == 0 {
            return None;
        }
        let mean = self.sum as f64 / count as f64;
        Some(Distribution::build(
            &self.histogram,
            self.scale,
            self.min as f64,
            self.max as f64,
            mean,
        ))
    }

    pub(crate) fn encode(&self) -> Result<EncodedHistogram, HistogramError> {
        EncodedHistogram::encode(&self.histogram, self.unit, self.scale)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let mut track = Track::new("us", 1.0);
        for v in 1..=100 {
            track.record(v);
        }
        let d = track.distribution().unwrap();
        assert_eq!(d.count, 100);
        assert!((d.min - 1.0).abs() < f64::EPSILON);
        assert!((d.max - 100.0).abs() < f64::EPSILON);
        assert!((d.avg - 50.5).abs() < 1e-9);
        // Nearest rank: the 50th, 95th and 99th smallest values, not one past them.
        assert!((d.p50 - 50.0).abs() < f64::EPSILON, "p50 {}", d.p50);
        assert!((d.p95 - 95.0).abs() < f64::EPSILON, "p95 {}", d.p95);
        assert!((d.p99 - 99.0).abs() < f64::EPSILON, "p99 {}", d.p99);
        assert!((d.p999 - 100.0).abs() < f64::EPSILON);
    }

    #[test]
    fn small_sample_percentiles_do_not_run_past_the_data() {
        let mut track = Track::new("us", 1.0);
        for v in [10, 20, 30] {
            track.record(v);
        }
        let d = track.distribution().unwrap();
        assert!((d.p50 - 20.0).abs() < f64::EPSILON);
        assert!((d.p95 - 30.0).abs() < f64::EPSILON);
        assert!((d.p99 - 30.0).abs() < f64::EPSILON);
    }

    #[test]
    fn large_values_stay_within_resolution_and_extremes_are_exact() {
        let mut track = Track::micros();
        // 1 ms .. 10 s in microseconds, uniformly.
        let values: Vec<u64> = (1..=10_000).map(|i| i * 1000).collect();
        for &v in &values {
            track.record(v);
        }
        let d = track.distribution().unwrap();
        assert!((d.min - 1.0).abs() < 1e-9);
        assert!((d.max - 10_000.0).abs() < 1e-9);
        for (q, got) in [(0.5, d.p50), (0.95, d.p95), (0.99, d.p99)] {
            let exact = values[(q * values.len() as f64).ceil() as usize - 1] as f64 / 1000.0;
            assert!(
                (got - exact).abs() / exact < 0.001,
                "q{q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn empty_track_has_no_distribution() {
        assert!(Track::micros().distribution().is_none());
        assert!(Track::micros().quantile(0.5).is_none());
    }

    #[test]
    fn encoded_histograms_round_trip_and_merge_losslessly() {
        let mut a = Track::micros();
        let mut b = Track::micros();
        let mut both = Track::micros();
        for v in 0..5000u64 {
            let x = v * 37 % 100_000 + 1;
            if v % 2 == 0 {
                a.record(x);
            } else {
                b.record(x);
            }
            both.record(x);
        }
        let mut merged = a.encode().unwrap().decode().unwrap();
        merged.add(b.encode().unwrap().decode().unwrap()).unwrap();
        let whole = both.encode().unwrap().decode().unwrap();
        assert_eq!(merged, whole);
        let d = Distribution::from_histogram(&merged, 0.001).unwrap();
        assert_eq!(d.count, 5000);
    }

    #[test]
    fn a_decoded_histogram_takes_larger_values_from_another_shard() {
        let (mut small, mut large) = (Track::micros(), Track::micros());
        small.record(10);
        large.record(10_000_000_000);
        let mut merged = small.encode().unwrap().decode().unwrap();
        merged
            .add(large.encode().unwrap().decode().unwrap())
            .unwrap();
        assert_eq!(merged.len(), 2);
        assert!(merged.max() >= 9_990_000_000);
    }

    #[test]
    fn bad_encodings_are_errors() {
        let mut h = Track::micros().encode().unwrap();
        h.data = "***".into();
        assert!(matches!(h.decode(), Err(HistogramError::Base64(_))));
        h.encoding = "csv".into();
        assert!(matches!(h.decode(), Err(HistogramError::Encoding(_))));
    }
}
