//! Snapshot files on disk: `snapshot-<seq>.lks` under the data directory's
//! `snapshots/`, each the engine's own snapshot bytes (header with seq and
//! state hash, rkyv archive). A snapshot is written to a temporary file,
//! synced, and renamed into place, so a crash leaves either the old set or
//! the new one, never a half file under a final name. Only the newest
//! `snapshots_kept` are kept. Loading tries the newest first and falls back
//! to older ones if a file is damaged; it never returns a snapshot past a
//! given seq (past the journal's end, a snapshot would hold commands the
//! journal lost).
//!
//! The simulator keeps its snapshots in memory instead
//! ([`SnapshotStore::in_memory`]): a map from seq to the same bytes, where a
//! save is atomic and durable at once, as the rename-and-sync is on disk.

use lockstep_engine::{Engine, Snapshot};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Snapshots held in memory, by seq: the simulator's snapshot directory.
pub type MemorySnapshots = Arc<Mutex<BTreeMap<u64, Vec<u8>>>>;

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".lks";

/// The snapshots of one data directory.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    kept: usize,
    /// Set for an in-memory store; `dir` then only names its entries.
    memory: Option<MemorySnapshots>,
}

/// A snapshot that could not be used, and why (reported, then skipped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedSnapshot {
    pub path: PathBuf,
    pub problem: String,
}

impl SnapshotStore {
    pub fn new(dir: PathBuf, kept: usize) -> SnapshotStore {
        SnapshotStore {
            dir,
            kept: kept.max(1),
            memory: None,
        }
    }

    /// A store that keeps its snapshots in `files` (the simulator's).
    pub fn in_memory(files: MemorySnapshots, kept: usize) -> SnapshotStore {
        SnapshotStore {
            dir: PathBuf::from("memory"),
            kept: kept.max(1),
            memory: Some(files),
        }
    }

    fn path_for(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"))
    }

    /// The seqs of the snapshot files present, newest first.
    pub fn list(&self) -> Vec<u64> {
        if let Some(memory) = &self.memory {
            return lock(memory).keys().rev().copied().collect();
        }
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut seqs: Vec<u64> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                name.strip_prefix(PREFIX)?
                    .strip_suffix(SUFFIX)?
                    .parse()
                    .ok()
            })
            .collect();
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        seqs
    }

    /// Writes the engine's snapshot after `seq` durably, then prunes old ones.
    pub fn save(&self, engine: &Engine, seq: u64) -> std::io::Result<PathBuf> {
        self.save_bytes(&engine.snapshot(seq), seq)
    }

    /// Writes a snapshot taken earlier (`Engine::snapshot(seq)`'s bytes)
    /// durably, then prunes old ones.
    pub fn save_bytes(&self, bytes: &[u8], seq: u64) -> std::io::Result<PathBuf> {
        let path = self.path_for(seq);
        if let Some(memory) = &self.memory {
            let mut files = lock(memory);
            files.insert(seq, bytes.to_vec());
            while files.len() > self.kept {
                files.pop_first();
            }
            return Ok(path);
        }
        fs::create_dir_all(&self.dir)?;
        let temporary = path.with_extension("tmp");
        {
            let mut file = fs::File::create(&temporary)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        fs::rename(&temporary, &path)?;
        // The rename itself must reach the disk before older snapshots go.
        fs::File::open(&self.dir)?.sync_all()?;
        for old in self.list().into_iter().skip(self.kept) {
            let _ = fs::remove_file(self.path_for(old));
        }
        Ok(path)
    }

    /// The newest valid snapshot whose seq is at most `seq_max`, and the
    /// damaged or too-new ones it skipped on the way.
    pub fn load_latest(&self, seq_max: u64) -> (Option<(Engine, Snapshot)>, Vec<SkippedSnapshot>) {
        let mut skipped = Vec::new();
        for seq in self.list() {
            let path = self.path_for(seq);
            if seq > seq_max {
                skipped.push(SkippedSnapshot {
                    path,
                    problem: format!("covers seq {seq}, past the journal's end {seq_max}"),
                });
                continue;
            }
            match self.load(seq) {
                Ok(loaded) => return (Some(loaded), skipped),
                Err(problem) => skipped.push(SkippedSnapshot { path, problem }),
            }
        }
        (None, skipped)
    }
}

impl SnapshotStore {
    fn load(&self, seq: u64) -> Result<(Engine, Snapshot), String> {
        let bytes = match &self.memory {
            Some(memory) => lock(memory)
                .get(&seq)
                .cloned()
                .ok_or_else(|| "cannot read: gone".to_string())?,
            None => {
                fs::read(self.path_for(seq)).map_err(|error| format!("cannot read: {error}"))?
            }
        };
        let (engine, header) = Engine::restore(&bytes).map_err(|error| error.to_string())?;
        // The header's seq is outside the payload's checksum; a rebuild
        // replays the journal after it, so a damaged one would apply
        // commands twice or skip them. The name must agree. (The simulator
        // found it, seed 812.)
        if header.seq != seq {
            return Err(format!(
                "the snapshot's header says seq {}, but it is stored as the snapshot of seq {seq}",
                header.seq
            ));
        }
        Ok((engine, header))
    }
}

/// Locks an in-memory store; a panic elsewhere cannot leave the map half
/// changed (every change is one insert or remove), so poisoning is ignored.
fn lock(memory: &MemorySnapshots) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<u8>>> {
    memory
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
