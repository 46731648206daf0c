//! Rebuilding an engine from durable state: the newest usable snapshot plus
//! the journal records after it. Startup recovery and a fenced replica's
//! rejoin both use it. Replay stops at the end of the readable journal (a
//! record still being written reads as a torn tail and is not used); a
//! corrupt record in the middle is an error naming its offset. The journal
//! is read through a [`JournalSource`]: its file, or the simulator's disk.

use crate::journal::JournalError;
use crate::journal_reader::JournalSource;
use crate::snapshot_store::{SkippedSnapshot, SnapshotStore};
use lockstep_engine::{Engine, EngineConfig};

/// An engine rebuilt up to `applied_seq` (0: nothing applied).
pub struct Rebuilt {
    pub engine: Engine,
    pub applied_seq: u64,
    pub snapshot_seq: Option<u64>,
    pub replayed: u64,
    pub skipped_snapshots: Vec<SkippedSnapshot>,
}

/// Why a rebuild failed.
#[derive(Debug)]
pub enum RebuildError {
    Journal(JournalError),
    Engine(String),
}

impl std::fmt::Display for RebuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RebuildError::Journal(error) => write!(f, "rebuild: {error}"),
            RebuildError::Engine(problem) => write!(f, "rebuild: {problem}"),
        }
    }
}

impl std::error::Error for RebuildError {}

/// The newest snapshot at or below `seq_max` (and no later than what the
/// journal holds), then every journal record after it up to `seq_max`.
pub fn rebuild(
    config: &EngineConfig,
    journal: &dyn JournalSource,
    snapshots: &SnapshotStore,
    seq_max: u64,
) -> Result<Rebuilt, RebuildError> {
    let (snapshot, skipped_snapshots) = snapshots.load_latest(seq_max);
    let (mut engine, snapshot_seq) = match snapshot {
        Some((engine, header)) if engine.config() == config => (engine, Some(header.seq)),
        _ => (
            Engine::new(config.clone()).map_err(|error| RebuildError::Engine(error.to_string()))?,
            None,
        ),
    };
    let (applied_seq, replayed) =
        replay_journal(&mut engine, journal, snapshot_seq.unwrap_or(0), seq_max)?;
    Ok(Rebuilt {
        engine,
        applied_seq,
        snapshot_seq,
        replayed,
        skipped_snapshots,
    })
}

/// Applies the journal's records after `after_seq` (up to `seq_max` and the
/// end of what is readable) to `engine`, discarding the events. Returns the
/// last seq applied (`after_seq` if none) and how many were applied.
pub fn replay_journal(
    engine: &mut Engine,
    journal: &dyn JournalSource,
    after_seq: u64,
    seq_max: u64,
) -> Result<(u64, u64), RebuildError> {
    let mut applied_seq = after_seq;
    let mut replayed = 0;
    let Some(mut reader) = journal.open_reader().map_err(RebuildError::Journal)? else {
        return Ok((applied_seq, replayed));
    };
    reader
        .skip_to_seq(after_seq + 1)
        .map_err(RebuildError::Journal)?;
    for record in reader {
        let record = record.map_err(RebuildError::Journal)?;
        if record.seq <= applied_seq {
            continue;
        }
        if record.seq > seq_max {
            break;
        }
        // The reader checks continuity from the journal's first seq, so
        // the records after `applied_seq` follow it with no gap.
        assert_eq!(
            record.seq,
            applied_seq + 1,
            "journal replay must be gapless"
        );
        engine.apply(&record.command, &mut |_| {});
        applied_seq = record.seq;
        replayed += 1;
    }
    Ok((applied_seq, replayed))
}
