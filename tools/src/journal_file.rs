//! Reading a journal for the commands that inspect one (`replay --journal`,
//! `dump`, `verify`) and sizing the engine that replays it. This module owns
//! the read-only load (through `JournalReader`, so the file is never changed
//! and a torn tail is reported rather than truncated), the one-line error
//! messages that name the file and the byte offset, and the engine
//! configuration rule: a journal names instruments by the engine's index, so
//! the replaying engine gets `--instruments` of them (default 1, which is what
//! `lockstep run` uses for a flow on one instrument, such as the
//! exchange-core mix) and, unless `--capacity` says otherwise, as many order
//! and level slots as the journal has new orders (at least 1024), which no
//! journal can exceed. A command naming an instrument the engine lacks is
//! simply rejected (`unknown_instrument`), as any engine would.

use crate::replay::{CAPACITY_MAX, CAPACITY_MIN};
use lockstep_bench::engine_config_for;
use lockstep_engine::{Command, EngineConfig};
use lockstep_sequencer::journal_reader::{JournalReader, TornTail};
use lockstep_sequencer::journal_record::RECORD_SIZE_BYTES;
use std::path::Path;

/// A whole journal's valid records, read without changing the file.
#[derive(Debug, Default)]
pub struct LoadedJournal {
    /// The header's first seq; `None` for an empty journal (no header yet).
    pub first_seq: Option<u64>,
    /// The commands of the valid records, in seq order: the command at index
    /// `i` has seq `first_seq + i` (the reader guarantees there are no gaps).
    pub commands: Vec<Command>,
    /// How many of the commands are new orders.
    pub new_orders: u64,
    /// What follows the last valid record, if it is a torn tail.
    pub torn_tail: Option<TornTail>,
    pub file_len_bytes: u64,
}

impl LoadedJournal {
    /// The seq of the command at `index`.
    pub fn seq_at(&self, index: usize) -> u64 {
        self.first_seq.unwrap_or(1) + index as u64
    }

    /// The seq of the last valid record, if there is one.
    pub fn last_seq(&self) -> Option<u64> {
        self.commands
            .len()
            .checked_sub(1)
            .map(|index| self.seq_at(index))
    }
}

/// Opens `path` for reading, with an error naming the file.
pub fn open(path: &Path) -> Result<JournalReader, String> {
    JournalReader::open(path).map_err(|error| format!("{}: {error}", path.display()))
}

/// Reads every valid record of the journal at `path`. A corrupt record, a
/// seq gap or a bad header is an error naming the file and the byte offset;
/// a torn tail is not an error and is returned in the result.
pub fn load(path: &Path) -> Result<LoadedJournal, String> {
    let mut reader = open(path)?;
    let mut loaded = LoadedJournal {
        first_seq: reader.header().map(|header| header.first_seq),
        file_len_bytes: reader.file_len_bytes(),
        ..LoadedJournal::default()
    };
    // The file length bounds the record count; reserving it avoids
    // regrowing a vector of millions of commands.
    let records_max =
        usize::try_from(loaded.file_len_bytes / RECORD_SIZE_BYTES as u64).unwrap_or(0);
    loaded.commands.reserve_exact(records_max);
    for record in reader.by_ref() {
        let record = record.map_err(|error| format!("{}: {error}", path.display()))?;
        if matches!(record.command, Command::New(_)) {
            loaded.new_orders += 1;
        }
        loaded.commands.push(record.command);
    }
    loaded.torn_tail = reader.torn_tail();
    Ok(loaded)
}

/// How many new orders the journal at `path` holds, counting valid records
/// up to the first error (0 for a missing or unreadable file: whoever opens
/// it next reports the problem).
pub fn count_new_orders(path: &Path) -> u64 {
    let Ok(reader) = JournalReader::open(path) else {
        return 0;
    };
    reader
        .map_while(Result::ok)
        .filter(|record| matches!(record.command, Command::New(_)))
        .count() as u64
}

/// The default order and level capacity for `new_orders` new orders: no more
/// orders can rest at once, and no more levels than orders, so this capacity
/// never refuses an order.
pub fn default_capacity(new_orders: u64) -> u32 {
    (new_orders.min(u64::from(CAPACITY_MAX)) as u32).max(CAPACITY_MIN)
}

/// The engine a journal is replayed on: `instruments` instruments and
/// `capacity` (or the default for `new_orders`) orders and levels.
pub fn engine_config(instruments: u32, capacity: Option<u32>, new_orders: u64) -> EngineConfig {
    engine_config_for(
        instruments,
        capacity.unwrap_or_else(|| default_capacity(new_orders)),
    )
}

/// The torn tail as a JSON value (`null` if there is none).
pub fn torn_tail_json(torn_tail: Option<TornTail>) -> serde_json::Value {
    match torn_tail {
        Some(tail) => serde_json::json!({
            "offset_bytes": tail.offset_bytes,
            "bytes_dropped": tail.bytes_dropped,
            "reason": tail.reason.to_string(),
        }),
        None => serde_json::Value::Null,
    }
}

/// The torn tail in words, for text reports.
pub fn torn_tail_text(torn_tail: Option<TornTail>) -> String {
    match torn_tail {
        Some(tail) => format!("{tail} (ignored; the file is not changed)"),
        None => "none".to_string(),
    }
}
