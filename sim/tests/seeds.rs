//! The simulator under `cargo test`: a fixed range of seeds must pass, every
//! seed that once found a bug must pass (each test is named after its seed,
//! and says what the bug was), and a seed must replay exactly: the same seed
//! gives the same trace hash, whichever thread runs it and whatever ran
//! before it.

use lockstep_sim::rng::SimRng;
use lockstep_sim::{quiet_injected_panics, run_seed, run_seeds, SimReport, DEFAULT_STEPS};

/// Seeds `0..FIXED_SEEDS` run on every `cargo test`: about twenty seconds
/// on two cores.
const FIXED_SEEDS: u64 = 300;

fn assert_passes(seed: u64) -> SimReport {
    quiet_injected_panics();
    let report = run_seed(seed, DEFAULT_STEPS);
    assert!(report.passed(), "{report}");
    report
}

#[test]
fn a_fixed_range_of_seeds_passes() {
    quiet_injected_panics();
    let reports = run_seeds(0..FIXED_SEEDS, DEFAULT_STEPS, 2, &|_| {});
    let failures: Vec<String> = reports
        .iter()
        .filter(|report| !report.passed())
        .map(|report| {
            format!(
                "{}\n  {}",
                report.failure.as_deref().unwrap_or_default(),
                report.reproduce_command()
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failing seeds:\n{}",
        failures.join("\n")
    );
    // The range must exercise what it claims to: every kind of fault (the
    // gateway clients' among them), crashes that recovery had to work for,
    // and the gateway's checks.
    let mut faults = lockstep_sim::FaultCounts::default();
    let mut gateway = lockstep_sim::GatewayCounts::default();
    let mut torn_tails_cut = 0;
    let mut rot_refusals = 0;
    let mut operator_cuts = 0;
    for report in &reports {
        faults += report.faults;
        gateway += report.gateway;
        torn_tails_cut += report.restarts.torn_tails_cut;
        rot_refusals += report.restarts.rot_refusals;
        operator_cuts += report.restarts.operator_cuts;
    }
    for (kind, count) in faults.kinds() {
        assert!(count > 0, "no {kind} in seeds 0..{FIXED_SEEDS}");
    }
    assert!(torn_tails_cut > 0 && rot_refusals > 0 && operator_cuts > 0);
    let gateway_runs = gateway.runs as usize;
    assert!(
        gateway_runs > reports.len() / 2 && gateway_runs < reports.len(),
        "most seeds, not all, run the gateway: {gateway_runs}"
    );
    for (what, count) in [
        (
            "gateway rebuilds from a recovered journal",
            gateway.rebuilds,
        ),
        ("messages received again", gateway.client_messages_again),
        (
            "client messages compared with a rebuilt gateway",
            gateway.messages_checked_against_rebuild,
        ),
        ("Accepted found in the journal", gateway.accepted_checked),
        ("tokens checked day-unique", gateway.tokens_checked),
        ("refused connections", gateway.stats.connections_refused),
        ("malformed disconnects", gateway.stats.disconnects_malformed),
        (
            "slow consumer disconnects",
            gateway.stats.disconnects_slow_consumer,
        ),
        ("timeout disconnects", gateway.stats.disconnects_timeout),
        (
            "duplicate tokens ignored",
            gateway.stats.duplicate_tokens_ignored,
        ),
        ("gateway rejects", gateway.stats.rejects_submitted),
        ("busy submits", gateway.stats.submit_busy),
        (
            "cancel-on-disconnects",
            gateway.stats.session_cancels_submitted,
        ),
    ] {
        assert!(count > 0, "no {what} in seeds 0..{FIXED_SEEDS}: {gateway}");
    }
}

#[test]
fn a_seed_replays_exactly_to_the_same_trace_hash() {
    quiet_injected_panics();
    for seed in [3, 110, 2407] {
        let first = run_seed(seed, DEFAULT_STEPS);
        let second = run_seed(seed, DEFAULT_STEPS);
        assert_eq!(first.trace_hash, second.trace_hash, "seed {seed}");
        assert_eq!(first.to_string(), second.to_string(), "seed {seed}");
    }
    // On other threads, interleaved with other seeds, the same again.
    let alone = run_seed(5, DEFAULT_STEPS);
    let among = run_seeds(4..7, DEFAULT_STEPS, 3, &|_| {});
    assert_eq!(among[1].seed, 5);
    assert_eq!(among[1].trace_hash, alone.trace_hash);
    assert_ne!(among[0].trace_hash, among[1].trace_hash);
}

#[test]
fn the_step_count_is_part_of_the_seed() {
    quiet_injected_panics();
    let short = run_seed(9, 500);
    let long = run_seed(9, 1_000);
    assert!(short.passed() && long.passed(), "{short}\n{long}");
    assert_ne!(short.trace_hash, long.trace_hash);
    assert!(short.reproduce_command().ends_with("--seed 9 --steps 500"));
}

/// A burst of messages bigger than a connection's output buffer, published
/// in one step, made the gateway close a client that was reading every step
/// as a slow consumer. Seed 57 found it (46 of seeds 0..500 failed) while
/// the gateway's limits were drawn differently; with today's plans seed 14
/// is the first of 27 in 0..500 that fail with the old rule. Now the
/// messages wait in the session's log and follow as the client reads; only
/// a client that takes no byte for a heartbeat interval is closed, and the
/// simulator fails any seed in which a reading client is closed so.
/// (`gateway_core`'s test of the same name shows it without a simulation.)
#[test]
fn seed_14_a_burst_bigger_than_the_output_buffer_does_not_close_a_reading_client() {
    let report = assert_passes(14);
    assert_eq!(report.gateway.runs, 1, "{report}");
    assert!(report.gateway.client_messages > 0, "{report}");
}

/// A connection whose command waited for a busy sequencer was closed for
/// the idle timeout although its client kept sending heartbeats (they wait
/// unread behind the held-back command), and the held-back command was
/// dropped with it: 109 of seeds 0..300 failed once the simulator checked
/// that only a client whose frames the gateway had not taken for the idle
/// timeout is closed for it. Now the idle clock stops while the sequencer
/// holds a connection back. (`gateway_core`'s test of the same name shows it
/// without a simulation.)
#[test]
fn seed_2_a_client_held_back_by_a_busy_sequencer_is_not_timed_out_for_idleness() {
    let report = assert_passes(2);
    assert!(report.gateway.stats.submit_busy > 0, "{report}");
}

/// A panic fault that fires while a rebuilt replica catches up from the
/// journal (rather than in the ring) escaped the replica's `catch_unwind`
/// and ended its thread for good: the replica never came back.
#[test]
fn seed_4_a_panic_while_catching_up_from_the_journal_is_caught_and_the_replica_rebuilds() {
    let report = assert_passes(4);
    assert!(report.replicas.panics > 0, "{report}");
}

/// A replica that stopped reading held the ring full part-way through a
/// batch; the batch was synced only once all of it was published, so the
/// durable seq, and with it the published seq, could never get far enough
/// ahead of the stopped replica for egress to fence it for lag: the whole
/// system waited for the one replica.
#[test]
fn seed_13_a_stopped_replica_cannot_hold_the_durable_seq_and_the_system_back() {
    let report = assert_passes(13);
    assert!(report.faults.replica_stall > 0, "{report}");
}

/// A replica that had silently diverged wrote its snapshot before egress
/// caught the divergence; rebuilds then restored the wrong state from it
/// (and so would start-up recovery have).
#[test]
fn seed_110_a_diverged_replica_never_leaves_a_snapshot_behind() {
    let report = assert_passes(110);
    assert!(report.faults.replica_diverge > 0, "{report}");
}

/// Snapshots were taken of seqs not yet durable. A crash that lost those
/// seqs left the snapshot on the disk, past the journal's end, and once the
/// journal grew past it again (with other commands) rebuilds would restore
/// it. The simulator now checks after every step that no snapshot is past
/// the journal; without the fix this seed breaks that within a few steps.
#[test]
fn seed_168_no_snapshot_is_ever_past_the_journal() {
    let report = assert_passes(168);
    assert!(report.restarts.restarts > 0, "{report}");
}

/// A snapshot whose header's seq was damaged was restored as the state of
/// another seq: the header is outside the payload's checksum, and the rebuild
/// replayed the journal after the wrong seq.
#[test]
fn seed_812_a_snapshot_whose_header_names_another_seq_is_refused() {
    let report = assert_passes(812);
    assert!(report.faults.snapshot_corruption > 0, "{report}");
    let engine =
        lockstep_engine::Engine::new(lockstep_sim::client::engine_config(&mut SimRng::new(812)))
            .expect("valid config");
    let files = lockstep_sequencer::snapshot_store::MemorySnapshots::default();
    let store = lockstep_sequencer::snapshot_store::SnapshotStore::in_memory(files.clone(), 2);
    store.save(&engine, 96).expect("saved");
    let mut bytes = files.lock().unwrap().remove(&96).expect("saved at 96");
    bytes[8] ^= 0x40; // The header's seq: 96 becomes 32.
    files.lock().unwrap().insert(96, bytes);
    let (loaded, skipped) = store.load_latest(1_000);
    assert!(loaded.is_none());
    assert!(skipped[0].problem.contains("says seq 32"), "{skipped:?}");
}

/// `Engine::restore` wrote a payload checksum but never checked it: a
/// flipped bit in a field that neither the invariants nor the state hash
/// cover (an instrument's price band, here) restored an engine that
/// rejected orders its peers accepted.
#[test]
fn seed_2407_a_snapshot_damaged_where_no_invariant_looks_is_refused() {
    assert_passes(2407);
    let mut rng = SimRng::new(2407);
    let mut engine = lockstep_engine::Engine::new(lockstep_sim::client::engine_config(&mut rng))
        .expect("valid config");
    let mut clients =
        lockstep_sim::client::Clients::new(SimRng::new(2407), engine.config(), Default::default());
    for _ in 0..200 {
        engine.apply(&clients.next_command(), &mut |_| {});
    }
    let snapshot = engine.snapshot(200);
    // Every flipped bit, at any of a sample of places, is refused.
    let restored: Vec<usize> = (0..400)
        .filter_map(|_| {
            let mut damaged = snapshot.clone();
            let offset = rng.range_usize(40, damaged.len() - 1);
            damaged[offset] ^= 1 << rng.below(8);
            lockstep_engine::Engine::restore(&damaged)
                .is_ok()
                .then_some(offset)
        })
        .collect();
    assert!(
        restored.is_empty(),
        "snapshots damaged at these byte offsets were restored: {restored:?}"
    );
}

/// A replica catching up from the journal read it from its first record on
/// every pass (and so did every rebuild), skipping what it had applied one
/// record at a time: with a long journal, a replica fenced again during the
/// catch-up never got back. It now seeks to its seq (records are all the
/// same size). Seed 2403 found it; seed 355 shows it with today's traces.
#[test]
fn seed_355_catching_up_seeks_to_its_seq_instead_of_rereading_the_journal() {
    let report = assert_passes(355);
    assert!(report.replicas.rebuilds > 0, "{report}");
}

/// With a lag bound of 1 and more load than a catching-up replica could
/// match, egress fenced replicas for lag again and again while they caught
/// up, and two of four gave up for good after a thousand rebuilds in a row,
/// although each rebuild had started from a later seq. Only rebuilds that
/// get no further count now. Found with 5,000 steps.
#[test]
fn seed_8436_a_replica_rebuilt_again_and_again_under_load_does_not_give_up() {
    quiet_injected_panics();
    let report = run_seed(8436, 5_000);
    assert!(report.passed(), "{report}");
    assert!(report.replicas.rebuilds > 1_000, "{report}");
    assert!(
        report
            .replica_state_hashes
            .iter()
            .all(|hash| *hash == Some(report.model_state_hash)),
        "{report}"
    );
}
