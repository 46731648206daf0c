//! HdrHistogram's percentile-distribution text (`.hgrm`), the format of
//! Java's `outputPercentileDistribution` that HdrHistogram's plotter reads:
//! a `Value Percentile TotalCount 1/(1-Percentile)` header, one row per
//! percentile step (five steps per halving of the distance to 100%), a last
//! row at percentile 1 without the fourth column, and a footer of `#[Mean`,
//! `#[Max` and `#[Buckets` lines. Values are written divided by a unit scale
//! (1,000 turns nanoseconds into microseconds). [`parse_rows`] reads the
//! rows back, for tests and for anyone checking a file.

use hdrhistogram::Histogram;
use std::fmt::Write;

/// Percentile steps per halving of the distance to 100%, as HdrHistogram's
/// own tools default to.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// One row of a percentile distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HgrmRow {
    /// The value, divided by the unit scale.
    pub value: f64,
    /// The percentile as a fraction, 0 to 1.
    pub percentile: f64,
    pub total_count: u64,
    /// 1/(1-percentile); `None` on the last row (percentile 1).
    pub inverse: Option<f64>,
}

/// The sub-buckets per bucket of a histogram with `sigfig` digits, as the
/// Java implementation computes and prints it.
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest_single_unit = 2.0 * 10f64.powi(i32::from(sigfig));
    1u64 << (largest_single_unit.log2().ceil() as u32)
}

/// The percentile distribution of `histogram`, values divided by
/// `unit_scale` and printed with as many decimals as it has significant
/// digits.
pub fn percentile_distribution(histogram: &Histogram<u64>, unit_scale: f64) -> String {
    let decimals = usize::from(histogram.sigfig());
    let mut text = String::new();
    let _ = write!(
        text,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total: u64 = 0;
    if !histogram.is_empty() {
        for step in histogram.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += step.count_since_last_iteration();
            let value = step.value_iterated_to() as f64 / unit_scale;
            let percentile = step.quantile_iterated_to();
            if percentile < 1.0 {
                let _ = writeln!(
                    text,
                    "{value:>12.decimals$} {percentile:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - percentile)
                );
            } else {
                let _ = writeln!(text, "{value:>12.decimals$} {percentile:>2.12} {total:>10}");
            }
        }
    }
    let mean = if histogram.is_empty() {
        0.0
    } else {
        histogram.mean()
    } / unit_scale;
    let stdev = if histogram.is_empty() {
        0.0
    } else {
        histogram.stdev()
    } / unit_scale;
    let max = histogram.max() as f64 / unit_scale;
    let _ = writeln!(
        text,
        "#[Mean    = {mean:>12.decimals$}, StdDeviation   = {stdev:>12.decimals$}]"
    );
    let _ = writeln!(
        text,
        "#[Max     = {max:>12.decimals$}, Total count    = {:>12}]",
        histogram.len()
    );
    let _ = writeln!(
        text,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        histogram.buckets(),
        sub_bucket_count(histogram.sigfig())
    );
    text
}

/// Reads the rows of a percentile distribution (header and footer are
/// skipped); refuses a row that does not have three or four numbers.
pub fn parse_rows(text: &str) -> Result<Vec<HgrmRow>, String> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("Value") {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let number = |field: &str| {
            field
                .parse::<f64>()
                .map_err(|_| format!("line {}: '{field}' is not a number", index + 1))
        };
        if fields.len() != 3 && fields.len() != 4 {
            return Err(format!(
                "line {}: {} fields, expected 3 or 4",
                index + 1,
                fields.len()
            ));
        }
        rows.push(HgrmRow {
            value: number(fields[0])?,
            percentile: number(fields[1])?,
            total_count: fields[2]
                .parse()
                .map_err(|_| format!("line {}: '{}' is not a count", index + 1, fields[2]))?,
            inverse: fields.get(3).map(|field| number(field)).transpose()?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::new_latency_histogram;

    #[test]
    fn a_distribution_round_trips_through_its_rows() {
        let mut histogram = new_latency_histogram();
        for value in 1..=1_000u64 {
            histogram.record(value * 1_000).unwrap();
        }
        let text = percentile_distribution(&histogram, 1_000.0);
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(text.contains("#[Mean    = "), "{text}");
        assert!(text.contains("Total count    =         1000]"), "{text}");
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
        let rows = parse_rows(&text).unwrap();
        assert!(rows.len() > 20);
        let first = rows[0];
        assert_eq!(first.percentile, 0.0);
        assert_eq!(first.inverse, Some(1.0));
        let last = rows[rows.len() - 1];
        assert_eq!(last.percentile, 1.0);
        assert_eq!(last.inverse, None);
        assert_eq!(last.total_count, 1_000);
        assert!((last.value - 1_000.0).abs() < 1.0, "{last:?}");
        assert!(rows
            .windows(2)
            .all(|pair| pair[0].percentile <= pair[1].percentile));
    }

    #[test]
    fn an_empty_histogram_has_only_the_header_and_footer() {
        let text = percentile_distribution(&new_latency_histogram(), 1_000.0);
        assert!(parse_rows(&text).unwrap().is_empty());
        assert!(text.contains("Total count    =            0]"), "{text}");
    }

    #[test]
    fn a_malformed_row_is_refused() {
        assert!(parse_rows("1.0 0.5\n").is_err());
        assert!(parse_rows("x 0.5 3\n").is_err());
    }
}
