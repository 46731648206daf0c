//! Measures the journal under each durability policy and backend against a
//! plain `write` + `fdatasync` loop of the same sizes, and prints one line per
//! run. Usage: `journal_measure [dir] [records] [batch_records] [every_records]`
//! (defaults: the system temp dir, 200000, 64, 2000). `Every` syncs once per
//! record, so it runs on fewer records to finish in seconds.

use lockstep_sequencer::durability::{measure_baseline, measure_journal, DurabilityPolicy};
use lockstep_sequencer::journal_backend::JournalBackendKind;
use std::path::PathBuf;
use std::process::ExitCode;

fn arg<T: std::str::FromStr>(index: usize, default: T) -> Result<T, String> {
    match std::env::args().nth(index) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("argument {index} ({text:?}) is not a number")),
        None => Ok(default),
    }
}

fn run() -> Result<(), String> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let records: u64 = arg(2, 200_000)?;
    let batch_records: usize = arg(3, 64)?;
    let every_records: u64 = arg(4, 2_000)?;
    let path = dir.join("lockstep-journal-measure.journal");
    println!("file: {}", path.display());
    for policy in DurabilityPolicy::ALL {
        let records = if policy == DurabilityPolicy::Every {
            every_records
        } else {
            records
        };
        for backend in [JournalBackendKind::IoUring, JournalBackendKind::PlainFile] {
            let measured = measure_journal(&path, policy, backend, records, batch_records)
                .map_err(|error| error.to_string())?;
            println!("{measured}");
        }
        let baseline = measure_baseline(&path, policy, records, batch_records)
            .map_err(|error| format!("baseline: {error}"))?;
        println!("{baseline}");
    }
    std::fs::remove_file(&path).map_err(|error| format!("remove {}: {error}", path.display()))?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("journal_measure: {message}");
            ExitCode::FAILURE
        }
    }
}
