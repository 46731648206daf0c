//! `lockstep import-lobster`: converts a LOBSTER message file into a Flow
//! CSV v1 file and prints, per LOBSTER event type, how many events were
//! converted and how many skipped. This module owns the command line, the
//! files and the report; the conversion rules live in `lockstep_bench::lobster`.

use clap::Args;
use lockstep_bench::{import_lobster, ImportError, ImportStats, FRESH_ORDER_ID_BASE};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

/// Convert a LOBSTER message file (time,type,order_id,size,price,direction)
/// into a flow CSV for `lockstep replay`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The LOBSTER message file (`..._message_N.csv`).
    #[arg(value_name = "MESSAGE.csv")]
    pub message: PathBuf,
    /// The flow file to write.
    #[arg(long, value_name = "FILE.csv")]
    pub out: PathBuf,
}

fn report(input: &Path, output: &Path, stats: &ImportStats) -> String {
    let mut lines = vec![
        format!("imported {} into {}", input.display(), output.display()),
        format!(
            "{:<20}{:>10}{:>10}",
            "lobster event", "converted", "skipped"
        ),
    ];
    for (name, counts) in stats.kinds() {
        lines.push(format!(
            "{name:<20}{:>10}{:>10}",
            counts.converted, counts.skipped
        ));
    }
    lines.push(format!(
        "{:<20}{:>10}{:>10}",
        "total",
        stats.converted_total(),
        stats.skipped_total()
    ));
    lines.push(format!(
        "partial cancels written as cancel (nothing left): {}",
        stats.partial_cancels_written_as_cancel
    ));
    lines.push(format!(
        "flow records written: {} (executions became IOC orders with ids from {FRESH_ORDER_ID_BASE})",
        stats.records_written
    ));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

pub fn run(args: &ImportArgs) -> Result<String, String> {
    let input = File::open(&args.message)
        .map_err(|error| format!("cannot open {}: {error}", args.message.display()))?;
    let output = File::create(&args.out)
        .map_err(|error| format!("cannot write {}: {error}", args.out.display()))?;
    let result = import_lobster(
        BufReader::with_capacity(1 << 16, input),
        BufWriter::with_capacity(1 << 16, output),
    );
    match result {
        Ok(stats) => Ok(report(&args.message, &args.out, &stats)),
        Err(error) => {
            // A half-written flow would replay without complaint and
            // mislead; better no file than a truncated one.
            let _ = std::fs::remove_file(&args.out);
            Err(match error {
                ImportError::Malformed { line, message } => {
                    format!("{}:{line}: {message}", args.message.display())
                }
                ImportError::Read { line, error } => {
                    format!("{}:{line}: read error: {error}", args.message.display())
                }
                ImportError::Write(error) => {
                    format!("cannot write {}: {error}", args.out.display())
                }
            })
        }
    }
}
