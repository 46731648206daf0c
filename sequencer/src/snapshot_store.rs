//! Snapshot files on disk: `snapshot-<seq>.lks` under the data directory's
//! `snapshots/`, each the engine's own snapshot bytes (header with seq and
//! state hash, rkyv archive). A snapshot is written to a temporary file,
//! synced, and renamed into place, so a crash leaves either the old set or
//! the new one, never a half file under a final name. Only the newest
//! `snapshots_kept` are kept. Loading tries the newest first and falls back
//! to older ones if a file is damaged; it never returns a snapshot past a
//! given seq (past the journal's end, a snapshot would hold commands the
//! journal lost).

use lockstep_engine::{Engine, Snapshot};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".lks";

/// The snapshots of one data directory.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    kept: usize,
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
        }
    }

    fn path_for(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"))
    }

    /// The seqs of the snapshot files present, newest first.
    pub fn list(&self) -> Vec<u64> {
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
        fs::create_dir_all(&self.dir)?;
        let bytes = engine.snapshot(seq);
        let path = self.path_for(seq);
        let temporary = path.with_extension("tmp");
        {
            let mut file = fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
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
            match load(&path) {
                Ok(loaded) => return (Some(loaded), skipped),
                Err(problem) => skipped.push(SkippedSnapshot { path, problem }),
            }
        }
        (None, skipped)
    }
}

fn load(path: &Path) -> Result<(Engine, Snapshot), String> {
    let bytes = fs::read(path).map_err(|error| format!("cannot read: {error}"))?;
    Engine::restore(&bytes).map_err(|error| error.to_string())
}
