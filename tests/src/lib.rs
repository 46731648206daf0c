//! `lockstep-tests`: support for the cross-crate integration and fault tests
//! in `tests/tests/`: temporary data directories, a system runner that
//! collects the published stream, and the single-engine replay of a journal
//! that the published stream must equal. Both streams are
//! `(seq, timestamp_ns, event)`: the timestamp is the sequencer's stamp on
//! the seq's command, which the journal record holds.

use lockstep_engine::{Command, Engine, EngineConfig, Event};
use lockstep_sequencer::journal_reader::JournalReader;
use lockstep_sequencer::system::{self, SubmitError, SystemHandle, SystemReport};
use lockstep_sequencer::system_config::SystemConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A directory under the system's temporary directory, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "lockstep-test-{name}-{}-{unique}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One published event: its seq, the timestamp of its command, the event.
pub type Output = (u64, u64, Event);

/// The published stream, in publication order.
pub type Published = Arc<Mutex<Vec<Output>>>;

/// Starts a system whose egress appends to a shared vector.
pub fn start_collecting(config: SystemConfig) -> (SystemHandle, Published) {
    let published: Published = Arc::new(Mutex::new(Vec::new()));
    let sink_target = Arc::clone(&published);
    let handle = system::start(
        config,
        Box::new(move |seq, timestamp_ns, event| {
            sink_target
                .lock()
                .expect("sink lock")
                .push((seq, timestamp_ns, *event))
        }),
    )
    .expect("system starts");
    (handle, published)
}

/// Submits every command, waiting while the input queue is full; calls
/// `between` after each command with its index, so a test can act mid-run.
pub fn submit_all(handle: &SystemHandle, commands: &[Command], mut between: impl FnMut(usize)) {
    for (index, command) in commands.iter().enumerate() {
        let mut pending = *command;
        loop {
            match handle.submit(pending) {
                Ok(()) => break,
                Err(SubmitError::Full(returned)) => {
                    pending = returned;
                    std::thread::yield_now();
                }
                Err(SubmitError::Stopped(_)) => panic!("system stopped while submitting"),
            }
        }
        between(index);
    }
}

/// Runs `commands` through a fresh system on `config` and stops it cleanly.
pub fn run_to_end(config: SystemConfig, commands: &[Command]) -> (Vec<Output>, SystemReport) {
    let (handle, published) = start_collecting(config);
    submit_all(&handle, commands, |_| {});
    let report = handle.shutdown();
    let published = std::mem::take(&mut *published.lock().expect("sink lock"));
    (published, report)
}

/// Replays a journal through one engine: every event with its seq and its
/// record's timestamp, and the engine's final state hash.
pub fn replay_journal(path: &Path, config: &EngineConfig) -> (Vec<Output>, u64) {
    let mut engine = Engine::new(config.clone()).expect("valid engine config");
    let mut events = Vec::new();
    for record in JournalReader::open(path).expect("journal opens") {
        let record = record.expect("journal record is valid");
        engine.apply(&record.command, &mut |event| {
            events.push((record.seq, record.timestamp_ns, *event))
        });
    }
    (events, engine.state_hash())
}

/// The first difference between two streams, for a readable failure.
pub fn first_difference(published: &[Output], replayed: &[Output]) -> Option<String> {
    for (index, (left, right)) in published.iter().zip(replayed).enumerate() {
        if left != right {
            return Some(format!(
                "at index {index}: published {left:?}, replay {right:?}"
            ));
        }
    }
    (published.len() != replayed.len()).then(|| {
        format!(
            "published {} events, replay {}",
            published.len(),
            replayed.len()
        )
    })
}
