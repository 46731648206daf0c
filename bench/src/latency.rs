//! The latency histograms of `lockstep bench` and their summary: every
//! latency is recorded in nanoseconds in an HdrHistogram (1 ns to one minute,
//! three significant digits), and [`Percentiles`] is the row a report prints
//! for one (p50, p90, p99, p99.9, p99.99, max, mean, count).

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// The highest latency a histogram holds; longer ones are recorded as this.
pub const LATENCY_HIGHEST_NS: u64 = 60_000_000_000;
/// Significant digits of every latency histogram.
pub const LATENCY_SIGFIG: u8 = 3;

/// An empty latency histogram: 1 ns to a minute, three significant digits.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_HIGHEST_NS, LATENCY_SIGFIG)
        .expect("constant bounds are valid")
}

/// Records `ns`, clamped into the histogram's range.
pub fn record_latency(histogram: &mut Histogram<u64>, ns: u64) {
    histogram.saturating_record(ns.max(1));
}

/// The summary row of one histogram; all zero when it is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub p9999_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            p50_ns: histogram.value_at_quantile(0.5),
            p90_ns: histogram.value_at_quantile(0.9),
            p99_ns: histogram.value_at_quantile(0.99),
            p999_ns: histogram.value_at_quantile(0.999),
            p9999_ns: histogram.value_at_quantile(0.9999),
            max_ns: histogram.max(),
            mean_ns: histogram.mean(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count,
            "p50_ns": self.p50_ns,
            "p90_ns": self.p90_ns,
            "p99_ns": self.p99_ns,
            "p99_9_ns": self.p999_ns,
            "p99_99_ns": self.p9999_ns,
            "max_ns": self.max_ns,
            "mean_ns": self.mean_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut histogram = new_latency_histogram();
        for value in 1..=10_000u64 {
            record_latency(&mut histogram, value * 1_000);
        }
        let row = Percentiles::of(&histogram);
        assert_eq!(row.count, 10_000);
        assert!(
            (row.p50_ns as f64 - 5_000_000.0).abs() < 10_000.0,
            "{row:?}"
        );
        assert!(
            (row.p99_ns as f64 - 9_900_000.0).abs() < 20_000.0,
            "{row:?}"
        );
        assert!(row.max_ns >= 10_000_000 - 10_000);
        assert_eq!(
            Percentiles::of(&new_latency_histogram()),
            Percentiles::default()
        );
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut histogram = new_latency_histogram();
        record_latency(&mut histogram, 0);
        record_latency(&mut histogram, u64::MAX);
        assert_eq!(histogram.len(), 2);
    }
}
