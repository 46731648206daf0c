//! The replicated core end to end: sequencer, journal, three replicas and
//! egress under load, with replicas panicking, stalling and diverging on
//! purpose. Every test checks the same promise: the published stream equals
//! a single-engine replay of the journal, event for event (so it has no gap
//! and no duplicate, and each event carries its command's journaled
//! timestamp), and every replica ends with the replay's state hash.
//!
//! `LOCKSTEP_LONG_TESTS=1` runs longer flows.

use lockstep_bench::{engine_config_for, generate_commands, Mix, FLOW_SESSION};
use lockstep_engine::{
    CancelOrder, CancelReason, Command, CommandKind, Event, NewOrder, RejectReason, Token,
};
use lockstep_sequencer::replica_fault::{FaultKind, ReplicaFault};
use lockstep_sequencer::system::SystemReport;
use lockstep_sequencer::system_config::SystemConfig;
use lockstep_tests::{first_difference, replay_journal, run_to_end, TempDir};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// One system at a time: each test runs a sequencer, three replicas and
/// egress (five busy threads), and two of them at once on a 2-core machine
/// starve replicas long enough to be fenced for lag (a replica's applied
/// seq can trail the ring by one read batch more than the ring's size),
/// which is not what these tests are about.
static ONE_SYSTEM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_system_at_a_time() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next test is still meaningful.
    ONE_SYSTEM_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn long() -> bool {
    std::env::var_os("LOCKSTEP_LONG_TESTS").is_some()
}

fn config(dir: &TempDir) -> SystemConfig {
    let mut config = SystemConfig::new(engine_config_for(1, 1 << 16), dir.path().to_path_buf());
    config.snapshot_interval = 20_000;
    config
}

/// Raises the lag bound to the ring's size less one: the ring never lets a
/// live replica fall further behind, so only the injected faults fence, and
/// a replica descheduled on a busy 2-core machine cannot be fenced (and
/// rebuilt past its fault's seq) instead.
fn without_lag_fencing(mut config: SystemConfig) -> SystemConfig {
    config.fence_lag_max = config.broadcast_ring_size as u64 - 1;
    config.hash_window_size = config.broadcast_ring_size * 2;
    config
}

/// Asserts the published stream is the replay of the journal and every
/// replica agrees with the replay's state hash.
fn assert_published_equals_replay(
    config: &SystemConfig,
    published: &[lockstep_tests::Output],
    report: &SystemReport,
) {
    let (replayed, replay_state_hash) = replay_journal(&config.journal_path(), &config.engine);
    if let Some(difference) = first_difference(published, &replayed) {
        panic!("published stream differs from the journal replay {difference}; report {report:?}");
    }
    assert_eq!(report.published_divergences, 0, "{report:?}");
    for (index, replica) in report.replicas.iter().enumerate() {
        assert_eq!(
            replica.applied_seq, report.last_seq,
            "replica {index} did not catch up: {report:?}"
        );
        assert_eq!(
            replica.state_hash, replay_state_hash,
            "replica {index} state hash: {report:?}"
        );
    }
}

#[test]
fn three_replicas_publish_exactly_the_single_engine_replay_of_the_journal() {
    let _one_system = one_system_at_a_time();
    let commands = generate_commands(
        Mix::ExchangeCore,
        11,
        if long() { 5_000_000 } else { 1_000_000 },
    );
    let dir = TempDir::new("three-replicas");
    let config = config(&dir);
    let (published, report) = run_to_end(config.clone(), &commands);
    assert_eq!(report.last_seq, commands.len() as u64);
    assert_eq!(report.published_seq, report.last_seq);
    assert!(
        report.hashes_compared > 0,
        "followers' hashes must be compared: {report:?}"
    );
    assert_published_equals_replay(&config, &published, &report);
}

#[test]
fn a_replica_panicking_at_any_seq_including_the_leader_is_fenced_and_rejoins_with_no_gap() {
    let _one_system = one_system_at_a_time();
    let commands = generate_commands(Mix::ExchangeCore, 12, 150_000);
    let dir = TempDir::new("panics");
    let mut config = without_lag_fencing(config(&dir));
    // Every replica panics once, at different seqs, so the one leading at
    // that moment is among those killed.
    config.faults = vec![
        ReplicaFault {
            replica: 0,
            at_seq: 23_456,
            kind: FaultKind::Panic,
        },
        ReplicaFault {
            replica: 1,
            at_seq: 61_234,
            kind: FaultKind::Panic,
        },
        ReplicaFault {
            replica: 2,
            at_seq: 98_765,
            kind: FaultKind::Panic,
        },
    ];
    let (published, report) = run_to_end(config.clone(), &commands);
    assert!(
        report
            .replicas
            .iter()
            .all(|replica| replica.panics == 1 && replica.epoch >= 1),
        "{report:?}"
    );
    assert_published_equals_replay(&config, &published, &report);
}

#[test]
fn the_leader_killed_on_request_mid_stream_fails_over_with_no_gap_and_rejoins() {
    let _one_system = one_system_at_a_time();
    let commands = generate_commands(Mix::ExchangeCore, 15, 150_000);
    let dir = TempDir::new("kill-leader");
    let config = without_lag_fencing(config(&dir));
    let (handle, published) = lockstep_tests::start_collecting(config.clone());
    let mut killed = None;
    lockstep_tests::submit_all(&handle, &commands, |index| {
        // Once publishing has started, kill whichever replica egress is
        // publishing from, as `lockstep bench --kill-replica` does.
        if index >= 75_000 && killed.is_none() {
            if let Some(leader) = handle.egress_stats().leader() {
                assert!(handle.kill_replica(leader));
                killed = Some(leader);
            }
        }
    });
    let killed = killed.expect("egress had a leader while commands flowed");
    assert!(!handle.kill_replica(99), "there is no replica 99");
    let report = handle.shutdown();
    let published = std::mem::take(&mut *published.lock().expect("sink lock"));
    assert_eq!(report.replicas[killed].panics, 1, "{report:?}");
    assert!(report.replicas[killed].rebuilds >= 1, "{report:?}");
    assert_eq!(report.last_seq, commands.len() as u64);
    assert_published_equals_replay(&config, &published, &report);
}

#[test]
fn a_stalled_replica_is_fenced_for_lag_then_catches_up_and_rejoins() {
    let _one_system = one_system_at_a_time();
    let commands = generate_commands(Mix::ExchangeCore, 13, 150_000);
    let dir = TempDir::new("stall");
    let mut config = config(&dir);
    config.fence_lag_max = 1024;
    config.faults = vec![ReplicaFault {
        replica: 1,
        at_seq: 40_000,
        kind: FaultKind::Stall(Duration::from_millis(1500)),
    }];
    let (published, report) = run_to_end(config.clone(), &commands);
    assert!(report.fenced_lagged >= 1, "{report:?}");
    assert!(report.replicas[1].rebuilds >= 1, "{report:?}");
    assert_published_equals_replay(&config, &published, &report);
}

#[test]
fn a_diverging_replica_is_fenced_by_hash_and_rebuilt_to_the_right_state() {
    let _one_system = one_system_at_a_time();
    let commands = generate_commands(Mix::ExchangeCore, 14, 150_000);
    let dir = TempDir::new("diverge");
    let mut config = without_lag_fencing(config(&dir));
    config.faults = vec![ReplicaFault {
        replica: 2,
        at_seq: 50_000,
        kind: FaultKind::Diverge,
    }];
    let (published, report) = run_to_end(config.clone(), &commands);
    assert!(report.fenced_diverged >= 1, "{report:?}");
    assert!(report.replicas[2].rebuilds >= 1, "{report:?}");
    assert_published_equals_replay(&config, &published, &report);
}

#[test]
fn two_of_three_replicas_killed_one_after_the_other_the_last_serves_and_both_rejoin() {
    let _one_system = one_system_at_a_time();
    let commands = generate_commands(Mix::ExchangeCore, 15, 200_000);
    let dir = TempDir::new("n-minus-one");
    let mut config = without_lag_fencing(config(&dir));
    config.faults = vec![
        ReplicaFault {
            replica: 0,
            at_seq: 30_000,
            kind: FaultKind::Panic,
        },
        ReplicaFault {
            replica: 1,
            at_seq: 30_500,
            kind: FaultKind::Panic,
        },
    ];
    let (published, report) = run_to_end(config.clone(), &commands);
    assert_eq!(report.replicas[0].panics, 1);
    assert_eq!(report.replicas[1].panics, 1);
    assert_published_equals_replay(&config, &published, &report);
}

#[test]
fn a_full_input_queue_rejects_cleanly_and_every_accepted_command_is_sequenced() {
    let _one_system = one_system_at_a_time();
    let commands = generate_commands(Mix::ExchangeCore, 16, 50_000);
    let dir = TempDir::new("queue-full");
    let mut config = config(&dir);
    config.input_queue_max = 8;
    let (handle, published) = lockstep_tests::start_collecting(config.clone());
    let mut accepted = 0u64;
    let mut rejected_full = 0u64;
    for command in &commands {
        match handle.submit(*command) {
            Ok(()) => accepted += 1,
            Err(lockstep_sequencer::system::SubmitError::Full(_)) => rejected_full += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let report = handle.shutdown();
    assert!(
        rejected_full > 0,
        "a queue of 8 must fill under a burst of 50,000"
    );
    assert_eq!(
        report.last_seq, accepted,
        "every accepted command, and nothing else, is sequenced"
    );
    let published = std::mem::take(&mut *published.lock().unwrap());
    assert_published_equals_replay(&config, &published, &report);
}

/// The order flow with the gateway's commands mixed in: client tags, partial
/// cancels (reducing or refused), gateway rejects and, now and then, a
/// cancel-all of the flow's session, some of which find nothing to cancel.
fn with_gateway_commands(commands: Vec<Command>) -> Vec<Command> {
    let mut mixed = Vec::with_capacity(commands.len() + commands.len() / 16);
    for (index, command) in commands.into_iter().enumerate() {
        match command {
            Command::New(order) => mixed.push(Command::New(NewOrder {
                client_tag: index as u16,
                ..order
            })),
            Command::Cancel(cancel) if index % 3 == 0 => {
                mixed.push(Command::Cancel(CancelOrder {
                    qty_after: 1 + (index % 50) as u32,
                    ..cancel
                }));
                mixed.push(command);
            }
            _ => mixed.push(command),
        }
        if index % 997 == 0 {
            mixed.push(Command::Reject {
                session: FLOW_SESSION,
                token: Token::from_u64(index as u64),
                command: CommandKind::New,
                reason: RejectReason::MessageRateExceeded,
            });
        }
        if index % 5_003 == 0 {
            // Twice: the second finds nothing left, a seq without events.
            mixed.push(Command::CancelAllForSession {
                session: FLOW_SESSION,
            });
            mixed.push(Command::CancelAllForSession {
                session: FLOW_SESSION,
            });
        }
    }
    mixed
}

#[test]
fn gateway_commands_and_seqs_without_events_are_published_like_the_replay_with_timestamps() {
    let _one_system = one_system_at_a_time();
    let commands = with_gateway_commands(generate_commands(Mix::ExchangeCore, 17, 120_000));
    let dir = TempDir::new("gateway-commands");
    let mut config = without_lag_fencing(config(&dir));
    // A panic makes the replica rebuild and re-emit a journal suffix, whose
    // events must carry the journal's timestamps too.
    config.faults = vec![ReplicaFault {
        replica: 1,
        at_seq: 44_444,
        kind: FaultKind::Panic,
    }];
    let (published, report) = run_to_end(config.clone(), &commands);
    assert_eq!(report.last_seq, commands.len() as u64);
    assert_eq!(report.published_seq, report.last_seq);
    assert_published_equals_replay(&config, &published, &report);
    let count = |wanted: fn(&Event) -> bool| published.iter().filter(|(_, _, e)| wanted(e)).count();
    assert!(
        count(|e| matches!(
            e,
            Event::Canceled {
                reason: CancelReason::SessionDisconnected,
                ..
            }
        )) > 0
    );
    assert!(
        count(|e| matches!(
            e,
            Event::Rejected {
                reason: RejectReason::MessageRateExceeded,
                ..
            }
        )) > 0
    );
    assert!(count(|e| matches!(e, Event::Accepted { client_tag, .. } if *client_tag != 0)) > 0);
    // Stamps come from the sequencer's clock and never go backwards.
    assert!(published
        .iter()
        .all(|(_, timestamp_ns, _)| *timestamp_ns > 0));
    assert!(published.windows(2).all(|pair| pair[0].1 <= pair[1].1));
}

#[test]
fn a_stream_of_commands_that_emit_no_events_is_still_published_through_to_the_last_seq() {
    let _one_system = one_system_at_a_time();
    // Cancel-all on an empty book: every seq is complete with no events.
    let commands = vec![
        Command::CancelAllForSession {
            session: FLOW_SESSION,
        };
        10_000
    ];
    let dir = TempDir::new("no-events");
    let config = config(&dir);
    let (published, report) = run_to_end(config.clone(), &commands);
    assert!(published.is_empty(), "{published:?}");
    assert_eq!(report.last_seq, 10_000);
    assert_eq!(report.published_seq, 10_000, "{report:?}");
    assert_eq!(report.events_published, 0);
    assert_published_equals_replay(&config, &published, &report);
}
