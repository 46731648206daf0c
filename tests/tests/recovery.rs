//! Crashing the whole core and starting it again from its data directory:
//! everything published before the crash is reproduced identically by the
//! journal, nothing published is lost, a torn tail left by the crash is cut
//! off and reported, and a journal corrupt in the middle is refused at start
//! with an error naming the offset.

use lockstep_bench::{engine_config_for, generate_commands, Mix};
use lockstep_sequencer::journal_record::{HEADER_SIZE_BYTES, RECORD_SIZE_BYTES};
use lockstep_sequencer::system;
use lockstep_sequencer::system_config::SystemConfig;
use lockstep_tests::{
    first_difference, replay_journal, start_collecting, submit_all, Output, TempDir,
};

fn config(dir: &TempDir) -> SystemConfig {
    let mut config = SystemConfig::new(engine_config_for(1, 1 << 16), dir.path().to_path_buf());
    config.snapshot_interval = 20_000;
    config
}

/// Runs `first` commands, crashes, optionally damages the journal, restarts,
/// runs the rest, and checks the published streams against the replay.
fn crash_and_restart(name: &str, first: usize, tear_tail: bool) {
    let commands = generate_commands(Mix::ExchangeCore, 21, 160_000);
    let dir = TempDir::new(name);
    let config = config(&dir);

    let (handle, published) = start_collecting(config.clone());
    submit_all(&handle, &commands[..first], |_| {});
    // No shutdown: the threads stop wherever they are and nothing more is
    // synced, as in a crash of the process.
    let crashed = handle.crash();
    let before: Vec<Output> = std::mem::take(&mut *published.lock().unwrap());
    let published_seq_before = before.last().map_or(0, |(seq, _, _)| *seq);
    assert!(
        published_seq_before <= crashed.durable_seq,
        "published past durable: {crashed:?}"
    );

    if tear_tail {
        // A torn write can only hit records that were not yet durable: keep
        // every durable record, then half a record that a write in flight
        // left behind.
        let path = config.journal_path();
        let durable_end =
            (HEADER_SIZE_BYTES + RECORD_SIZE_BYTES * crashed.durable_seq as usize) as u64;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(durable_end).unwrap();
        drop(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0xAB; RECORD_SIZE_BYTES / 2]);
        std::fs::write(&path, bytes).unwrap();
    }

    let (handle, published) = start_collecting(config.clone());
    let startup = handle.startup().clone();
    assert!(
        startup.recovered_seq >= published_seq_before,
        "restart recovered seq {} but seq {published_seq_before} was published before the crash",
        startup.recovered_seq
    );
    if tear_tail {
        assert!(
            startup.torn_tail.is_some(),
            "the torn tail must be reported: {startup:?}"
        );
    }
    submit_all(&handle, &commands[first..], |_| {});
    let report = handle.shutdown();
    let after: Vec<Output> = std::mem::take(&mut *published.lock().unwrap());

    let (replayed, replay_state_hash) = replay_journal(&config.journal_path(), &config.engine);
    let replayed_before: Vec<Output> = replayed
        .iter()
        .copied()
        .filter(|(seq, _, _)| *seq <= published_seq_before)
        .collect();
    if let Some(difference) = first_difference(&before, &replayed_before) {
        panic!("outputs published before the crash are not reproduced: {difference}");
    }
    let replayed_after: Vec<Output> = replayed
        .iter()
        .copied()
        .filter(|(seq, _, _)| *seq > startup.recovered_seq)
        .collect();
    if let Some(difference) = first_difference(&after, &replayed_after) {
        panic!("outputs after the restart differ from the replay: {difference}");
    }
    for replica in &report.replicas {
        assert_eq!(replica.state_hash, replay_state_hash, "{report:?}");
    }
}

#[test]
fn a_crash_mid_stream_then_restart_reproduces_every_published_output() {
    crash_and_restart("crash-mid-stream", 90_000, false);
}

#[test]
fn a_torn_tail_left_by_a_crash_is_cut_reported_and_loses_nothing_published() {
    crash_and_restart("crash-torn-tail", 70_000, true);
}

#[test]
fn a_crash_right_after_start_then_restart_loses_nothing_published() {
    crash_and_restart("crash-early", 10, false);
}

#[test]
fn a_journal_corrupt_in_the_middle_is_refused_at_start_naming_the_offset() {
    let commands = generate_commands(Mix::ExchangeCore, 22, 5_000);
    let dir = TempDir::new("corrupt-middle");
    let config = config(&dir);
    let (handle, _published) = start_collecting(config.clone());
    submit_all(&handle, &commands, |_| {});
    let report = handle.shutdown();
    assert_eq!(report.last_seq, 5_000);
    let path = config.journal_path();
    let mut bytes = std::fs::read(&path).unwrap();
    let offset = HEADER_SIZE_BYTES + RECORD_SIZE_BYTES * 2_000 + 40;
    bytes[offset] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let error = match system::start(config, Box::new(|_, _, _| {})) {
        Ok(_) => panic!("a journal corrupt in the middle must be refused"),
        Err(error) => error.to_string(),
    };
    let record_offset = (HEADER_SIZE_BYTES + RECORD_SIZE_BYTES * 2_000).to_string();
    assert!(
        error.contains(&record_offset),
        "the error must name offset {record_offset}: {error}"
    );
}
