//! Replays the fuzz corpus on stable, without cargo-fuzz: every file in
//! `engine/fuzz/corpus/<target>/` and `engine/fuzz/artifacts/<target>/`
//! goes through the same check as the fuzz target of that name
//! (`lockstep_engine::fuzz_checks`), so inputs the fuzzer found
//! interesting, and any crash it saved, stay tested by `cargo test`. The
//! seed inputs are replayed too, and regression tests for findings are
//! named after the input they replay. The replay itself is
//! `lockstep-fuzz-corpus`, shared by every crate with fuzz targets.

use lockstep_engine::fuzz_checks::{self, FuzzConfig};
use lockstep_engine::reference_model::{self, Op, PriceSpec, QtySpec, Target};
use lockstep_engine::{CommandKind, Event, RejectReason, Side, StpMode, TimeInForce};
use lockstep_fuzz_corpus::Check;
use proptest::prelude::*;
use std::collections::BTreeSet;

static TARGETS: [(&str, Check); 1] = [("engine_vs_reference", fuzz_checks::engine_vs_reference)];

lockstep_fuzz_corpus::corpus_tests!(TARGETS, fuzz_checks::seed_inputs);

/// The written seed reaches what it says it reaches, so the corpus starts
/// deep: fills, both cancel kinds, both replace kinds, every self-trade
/// prevention mode, halts and the main rejects.
#[test]
fn the_written_seed_reaches_every_kind_of_outcome() {
    let seeds = fuzz_checks::seed_inputs();
    let (_, _, data) = seeds
        .iter()
        .find(|(_, name, _)| name == "seed-every-outcome")
        .expect("the written seed");
    let (config, ops) = fuzz_checks::decode(data);
    let mut seen = BTreeSet::new();
    reference_model::run(config.engine_config(), &ops, |_, events| {
        for event in events {
            seen.insert(match event {
                Event::Accepted { .. } => "accepted".to_string(),
                Event::Fill { .. } => "fill".to_string(),
                Event::Canceled { reason, .. } => format!("canceled {reason:?}"),
                Event::Replaced { priority_kept, .. } => format!("replaced {priority_kept}"),
                Event::Rejected { reason, .. } => format!("rejected {}", reason.name()),
                Event::InstrumentStatus { halted, .. } => format!("halted {halted}"),
                Event::SelfTradePreventionSet { mode, .. } => format!("stp {mode:?}"),
            });
        }
    })
    .expect("the seed passes");
    for expected in [
        "accepted",
        "fill",
        "canceled Requested",
        "canceled ImmediateRemainder",
        "canceled SelfTrade",
        "canceled SessionDisconnected",
        "replaced true",
        "replaced false",
        "halted true",
        "halted false",
        "stp CancelResting",
        "stp CancelIncoming",
        "stp CancelBoth",
        "rejected fok_not_fillable",
        "rejected post_only_would_match",
        "rejected instrument_halted",
        "rejected duplicate_token",
        "rejected unknown_instrument",
        "rejected unknown_session",
        "rejected qty_zero",
        "rejected unknown_account",
    ] {
        assert!(
            seen.contains(expected),
            "the seed never produced {expected}: {seen:?}"
        );
    }
}

// ----- the input format --------------------------------------------------

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn price() -> impl Strategy<Value = PriceSpec> {
    prop_oneof![
        (-4i8..=11).prop_map(PriceSpec::Ticks),
        (-8i8..=7).prop_map(PriceSpec::Near),
        Just(PriceSpec::Same),
        any::<u16>().prop_map(|p| PriceSpec::Raw(p.into())),
        any::<u16>().prop_map(|p| PriceSpec::Wide(p.into())),
    ]
}

fn qty_spec() -> impl Strategy<Value = QtySpec> {
    prop_oneof![
        (0u32..16).prop_map(QtySpec::Abs),
        (-4i8..=3).prop_map(QtySpec::Delta)
    ]
}

fn target(tokens: u64) -> impl Strategy<Value = Target> {
    prop_oneof![
        any::<u16>().prop_map(Target::Live),
        (0u16..4, 0..tokens).prop_map(|(session, token)| Target::Given { session, token }),
    ]
}

/// Every operation the fuzz input can express, drawn evenly.
fn op(tokens: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            (0u16..4, 0u32..4, 0..tokens, any::<bool>(), side()),
            (
                any::<bool>(),
                price(),
                0u32..16,
                prop_oneof![
                    Just(TimeInForce::Gtc),
                    Just(TimeInForce::Ioc),
                    Just(TimeInForce::Fok)
                ],
                any::<bool>()
            )
        )
            .prop_map(
                |(
                    (session, account, token, bad_instrument, side),
                    (market, price, qty, time_in_force, post_only),
                )| Op::New {
                    session,
                    account,
                    token,
                    instrument: if bad_instrument {
                        2
                    } else {
                        reference_model::token_instrument(token)
                    },
                    side,
                    market,
                    price,
                    qty,
                    time_in_force,
                    post_only,
                }
            ),
        (target(tokens), qty_spec())
            .prop_map(|(target, qty_after)| Op::Cancel { target, qty_after }),
        (
            target(tokens),
            prop::option::of(0..tokens),
            price(),
            qty_spec()
        )
            .prop_map(|(target, new_token, price, qty)| Op::Replace {
                target,
                new_token,
                price,
                qty,
            }),
        (0u16..4).prop_map(Op::CancelAll),
        (
            0u16..4,
            0..tokens,
            0..CommandKind::ALL.len(),
            0..RejectReason::ALL.len()
        )
            .prop_map(|(session, token, command, reason)| Op::Reject {
                session,
                token,
                command,
                reason,
            }),
        (
            0u32..4,
            prop_oneof![
                Just(StpMode::Off),
                Just(StpMode::CancelResting),
                Just(StpMode::CancelIncoming),
                Just(StpMode::CancelBoth)
            ]
        )
            .prop_map(|(account, mode)| Op::Stp(account, mode)),
        (0u32..3).prop_map(Op::Halt),
        (0u32..3).prop_map(Op::Resume),
    ]
}

fn fuzz_config() -> impl Strategy<Value = FuzzConfig> {
    (
        prop::sample::select(vec![2u32, 3, 4, 5, 6, 8, 64, 256]),
        prop::sample::select(vec![2u32, 3, 4, 5, 6, 64, 256]),
        2u32..=3,
        any::<bool>(),
        prop::sample::select(vec![16u64, 64]),
    )
        .prop_map(
            |(orders_max, levels_max, accounts_max, wide, tokens)| FuzzConfig {
                orders_max,
                levels_max,
                accounts_max,
                wide,
                tokens,
            },
        )
}

proptest! {
    /// The fuzz input format can say everything it is documented to: the
    /// bytes `encode` writes decode back to the same configuration and
    /// operations.
    #[test]
    fn encoded_operations_decode_back(
        (config, ops) in fuzz_config().prop_flat_map(|config| {
            (Just(config), prop::collection::vec(op(config.tokens), 0..200))
        })
    ) {
        let bytes = fuzz_checks::encode(&config, &ops);
        let (decoded_config, decoded_ops) = fuzz_checks::decode(&bytes);
        prop_assert_eq!(decoded_config, config);
        prop_assert_eq!(decoded_ops, ops);
    }

    /// Any bytes decode, to at most `OPS_MAX` operations, and re-encoding
    /// what they decode to decodes to the same thing.
    #[test]
    fn any_bytes_decode(bytes in prop::collection::vec(any::<u8>(), 0..3_000)) {
        let (config, ops) = fuzz_checks::decode(&bytes);
        prop_assert!(ops.len() <= fuzz_checks::OPS_MAX);
        let normalized: Vec<Op> = ops
            .iter()
            .map(|op| match *op {
                Op::Reject { session, token, command, reason } => Op::Reject {
                    session,
                    token,
                    command: command % CommandKind::ALL.len(),
                    reason: reason % RejectReason::ALL.len(),
                },
                other => other,
            })
            .collect();
        let again = fuzz_checks::decode(&fuzz_checks::encode(&config, &ops));
        prop_assert_eq!(again, (config, normalized));
    }
}
