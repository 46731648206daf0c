//! Proves snapshot and restore are exact: restoring the snapshot taken after
//! command k and replaying commands k+1..n gives the same events and the same
//! state hash as replaying 1..n from the start; and a damaged snapshot is
//! refused with a reason instead of restoring a wrong state.

mod common;

use lockstep_engine::{Engine, Event, SnapshotError};
use proptest::prelude::*;

fn replay(engine: &mut Engine, commands: &[lockstep_engine::Command]) -> Vec<Event> {
    let mut events = Vec::new();
    for command in commands {
        engine.apply(command, &mut |event| events.push(*event));
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn restore_after_k_then_replay_of_the_suffix_equals_replay_from_the_start(
        seed in any::<u64>(),
        total in 1usize..3_000,
        split_per_mille in 0usize..=1000,
    ) {
        let commands = common::CommandSource::commands(seed, total);
        let k = total * split_per_mille / 1000;
        let mut straight = Engine::new(common::config(512, 256)).unwrap();
        let straight_events = replay(&mut straight, &commands);

        let mut first_part = Engine::new(common::config(512, 256)).unwrap();
        let prefix_events = replay(&mut first_part, &commands[..k]);
        let bytes = first_part.snapshot(k as u64);
        let (mut restored, header) = Engine::restore(&bytes).unwrap();
        prop_assert_eq!(header.seq, k as u64);
        prop_assert_eq!(header.state_hash, first_part.state_hash());
        prop_assert_eq!(restored.event_hash(), first_part.event_hash());
        let suffix_events = replay(&mut restored, &commands[k..]);

        prop_assert_eq!(&straight_events[..prefix_events.len()], &prefix_events[..]);
        prop_assert_eq!(&straight_events[prefix_events.len()..], &suffix_events[..]);
        prop_assert_eq!(restored.state_hash(), straight.state_hash());
        prop_assert_eq!(restored.event_hash(), straight.event_hash());
    }
}

fn sample_snapshot() -> Vec<u8> {
    let mut engine = Engine::new(common::config(512, 256)).unwrap();
    replay(&mut engine, &common::CommandSource::commands(9, 2_000));
    assert!(engine.orders_live() > 10, "the sample must hold orders");
    engine.snapshot(2_000)
}

#[test]
fn truncated_snapshot_is_refused() {
    let bytes = sample_snapshot();
    for cut in [0, 10, 31, 32, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            Engine::restore(&bytes[..cut]).is_err(),
            "a snapshot cut at {cut} bytes was accepted"
        );
    }
}

#[test]
fn snapshot_with_bad_magic_is_refused() {
    let mut bytes = sample_snapshot();
    bytes[0] ^= 0xFF;
    assert_eq!(
        Engine::restore(&bytes).unwrap_err(),
        SnapshotError::BadMagic
    );
}

#[test]
fn snapshot_with_wrong_recorded_hash_is_refused() {
    let mut bytes = sample_snapshot();
    bytes[16] ^= 1;
    assert!(matches!(
        Engine::restore(&bytes),
        Err(SnapshotError::StateHashMismatch { .. })
    ));
}

#[test]
fn every_single_bit_flip_in_the_payload_is_refused_or_restores_the_exact_state() {
    // A flip may land in padding or in an unused pool slot, where it changes
    // nothing the engine will ever read; then the restore must still be the
    // exact original state. Anywhere else it must be refused, never panic.
    let bytes = sample_snapshot();
    let (original, _) = Engine::restore(&bytes).unwrap();
    let mut refused = 0;
    for position in (32..bytes.len()).step_by(97) {
        let mut damaged = bytes.clone();
        damaged[position] ^= 1 << (position % 8);
        match Engine::restore(&damaged) {
            Err(_) => refused += 1,
            Ok((engine, _)) => assert_eq!(engine.state_hash(), original.state_hash()),
        }
    }
    assert!(refused > 0, "no damaged snapshot was refused");
}
