//! The engine against a reference model. Random command sequences run
//! through the real `Engine` and through `RefBook`, a deliberately naive
//! order book written from the contract in DESIGN.md ("The engine
//! contract") and the rules in the engine's task brief (it lives in
//! `lockstep_engine::reference_model`, where the fuzz target
//! `engine_vs_reference` uses it too): resting orders live in one `Vec`
//! with an arrival counter, "best" is a linear scan, and a FOK is decided
//! by dry-running the match on a clone. Every command must give exactly the
//! same `Vec<Event>` from both, and after every command:
//!
//! - `engine.check_invariants()` passes;
//! - no book is crossed;
//! - every resting order, best price, live count and halt flag agrees with
//!   the model;
//! - for every order (followed across replaces), entered = filled +
//!   canceled + open, all taken from the events alone.
//!
//! The commands include partial cancels, cancel-all of a session and
//! gateway rejects as well as the order flow.
//!
//! Cases default to 1024 (sequences of up to 300 commands, about two
//! seconds); set `PROPTEST_CASES` to run more or fewer.

use lockstep_engine::reference_model::{
    instruments, token_instrument, Op, PriceSpec, QtySpec, Target,
};
use lockstep_engine::{
    Command, EngineConfig, Event, Qty, RejectReason, Side, StpMode, TimeInForce,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeMap;

/// What kinds of outcomes a run produced, by name, for coverage checks.
type Tally = BTreeMap<String, usize>;

fn outcome(event: &Event) -> String {
    match event {
        Event::Accepted {
            order_type,
            time_in_force,
            post_only,
            ..
        } => format!("accepted {order_type:?} {time_in_force:?} post_only={post_only}"),
        Event::Rejected {
            command, reason, ..
        } => format!("rejected {:?} {}", command, reason.name()),
        Event::Fill { .. } => "fill".to_string(),
        Event::Canceled { reason, .. } => format!("canceled {reason:?}"),
        Event::Replaced { priority_kept, .. } => format!("replaced priority_kept={priority_kept}"),
        Event::InstrumentStatus { halted, .. } => format!("instrument halted={halted}"),
        Event::SelfTradePreventionSet { mode, .. } => format!("stp set {mode:?}"),
    }
}

/// Runs `ops` through the engine and the model (see
/// `lockstep_engine::reference_model::run` for everything compared after
/// each command) and tallies the outcomes.
fn run(config: EngineConfig, ops: &[Op], tally: &mut Tally) -> Result<(), TestCaseError> {
    lockstep_engine::reference_model::run(config, ops, |command, events| {
        for event in events {
            // A gateway's reject is tallied apart, so that it cannot stand
            // in for a reject the engine must be seen to make itself.
            let name = match command {
                Command::Reject { .. } => format!("gateway {}", outcome(event)),
                _ => outcome(event),
            };
            *tally.entry(name).or_default() += 1;
        }
        if let (Command::Cancel(cancel), [Event::Canceled { .. }]) = (command, events) {
            if cancel.qty_after > 0 {
                *tally.entry("partial cancel".to_string()).or_default() += 1;
            }
        }
    })
    .map_err(TestCaseError::fail)
}

// ---------------------------------------------------------------------------
// Generating commands
// ---------------------------------------------------------------------------
//
// Proptest draws abstract operations (`Op`); the model's `resolve` turns
// each into a concrete command just before it is applied.

/// Three sessions, and sometimes session 3, which does not exist.
fn session() -> impl Strategy<Value = u16> {
    prop_oneof![60 => 0u16..3, 1 => Just(3u16)]
}

/// Accounts 0..=2 (2 exists only when accounts_max is 3) and sometimes 3.
fn account() -> impl Strategy<Value = u32> {
    prop_oneof![60 => 0u32..3, 1 => Just(3u32)]
}

/// Few tokens per session, so given tokens are often live and new orders
/// often clash with live ones.
fn token(tokens: u64) -> impl Strategy<Value = u64> {
    0..tokens
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

/// `wide` weighs far-off prices against the 25 of near ones.
fn price(wide: u32) -> impl Strategy<Value = PriceSpec> {
    prop_oneof![
        12 => (-1i8..=3).prop_map(PriceSpec::Ticks),
        12 => (-3i8..=1).prop_map(PriceSpec::Near),
        1 => (0u64..=130).prop_map(PriceSpec::Raw),
        1 => Just(PriceSpec::Raw(0)),
        wide => (1u64..=1_000).prop_map(PriceSpec::Wide),
    ]
}

fn qty() -> impl Strategy<Value = Qty> {
    prop_oneof![30 => 1u32..=6, 3 => 7u32..=14, 1 => Just(0u32)]
}

fn time_in_force() -> impl Strategy<Value = TimeInForce> {
    prop_oneof![
        12 => Just(TimeInForce::Gtc),
        2 => Just(TimeInForce::Ioc),
        2 => Just(TimeInForce::Fok),
    ]
}

fn stp_mode() -> impl Strategy<Value = StpMode> {
    prop_oneof![
        Just(StpMode::Off),
        Just(StpMode::CancelResting),
        Just(StpMode::CancelIncoming),
        Just(StpMode::CancelBoth),
    ]
}

fn target(tokens: u64) -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => any::<u16>().prop_map(Target::Live),
        1 => (session(), token(tokens)).prop_map(|(session, token)| Target::Given { session, token }),
    ]
}

fn new_order(tokens: u64, wide: u32) -> impl Strategy<Value = Op> {
    (
        session(),
        account(),
        token(tokens),
        prop_oneof![60 => Just(None), 1 => Just(Some(2u32))],
        side(),
        prop::bool::weighted(0.08),
        price(wide),
        qty(),
        time_in_force(),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(
                session,
                account,
                token,
                bad_instrument,
                side,
                market,
                price,
                qty,
                time_in_force,
                post_only,
            )| Op::New {
                session,
                account,
                token,
                instrument: bad_instrument.unwrap_or(token_instrument(token)),
                side,
                market,
                price,
                qty,
                time_in_force,
                post_only,
            },
        )
}

fn replace(tokens: u64, wide: u32) -> impl Strategy<Value = Op> {
    (
        target(tokens),
        prop_oneof![2 => Just(None), 1 => token(tokens).prop_map(Some)],
        prop_oneof![3 => Just(PriceSpec::Same), 4 => price(wide)],
        prop_oneof![
            3 => (-3i8..=2).prop_map(QtySpec::Delta),
            1 => qty().prop_map(QtySpec::Abs),
        ],
    )
        .prop_map(|(target, new_token, price, qty)| Op::Replace {
            target,
            new_token,
            price,
            qty,
        })
}

/// Mostly whole cancels; partial ones reduce by one to three lots, or keep
/// all (refused), or more than all (refused), or go below zero (whole).
fn cancel(tokens: u64) -> impl Strategy<Value = Op> {
    (
        target(tokens),
        prop_oneof![
            3 => Just(QtySpec::Abs(0)),
            3 => (-3i8..=1).prop_map(QtySpec::Delta),
            1 => qty().prop_map(QtySpec::Abs),
        ],
    )
        .prop_map(|(target, qty_after)| Op::Cancel { target, qty_after })
}

fn reject(tokens: u64) -> impl Strategy<Value = Op> {
    (session(), token(tokens), any::<usize>(), any::<usize>()).prop_map(
        |(session, token, command, reason)| Op::Reject {
            session,
            token,
            command,
            reason,
        },
    )
}

fn op(tokens: u64, wide: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        60 => new_order(tokens, wide),
        8 => cancel(tokens),
        1 => session().prop_map(Op::CancelAll),
        2 => reject(tokens),
        16 => replace(tokens, wide),
        4 => (account(), stp_mode()).prop_map(|(account, mode)| Op::Stp(account, mode)),
        1 => (0u32..3).prop_map(Op::Halt),
        10 => (0u32..3).prop_map(Op::Resume),
    ]
}

/// Capacities: usually roomy, sometimes tight enough that orders or levels
/// run out.
fn config() -> impl Strategy<Value = EngineConfig> {
    (
        prop_oneof![3 => Just(64u32), 1 => 2u32..=8],
        prop_oneof![3 => Just(64u32), 1 => 2u32..=6],
        2u32..=3,
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(orders_max, levels_max, accounts_max, wide)| EngineConfig {
                instruments: instruments(wide),
                instruments_max: 2,
                orders_max,
                levels_max,
                sessions_max: 3,
                accounts_max,
            },
        )
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_reference_model_event_for_event(
        config in config(),
        ops in prop::collection::vec(op(16, 4), 1..=300),
    ) {
        run(config, &ops, &mut Tally::new())?;
    }
}

/// Fixed seeded runs, roomy and tight, two of them with many more tokens for
/// a deep book (one with wide bands, for sparse levels); together they must
/// reach every reject reason, every cancel reason and both kinds of replace,
/// so the generator cannot silently stop exercising a rule.
#[test]
fn seeded_runs_match_reference_model_and_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let mut tally = Tally::new();
    // (orders_max, levels_max, accounts_max, tokens, wide band, weight of
    // far-off prices)
    for (orders_max, levels_max, accounts_max, tokens, wide, far) in [
        (256, 256, 3, 64, false, 4),
        (256, 256, 3, 64, true, 4),
        (256, 256, 3, 64, true, 60),
        (64, 64, 2, 16, false, 4),
        (4, 64, 3, 16, false, 4),
        (64, 3, 3, 16, false, 4),
    ] {
        let ops = prop::collection::vec(op(tokens, far), 3_000)
            .new_tree(&mut runner)
            .expect("a value")
            .current();
        let config = EngineConfig {
            instruments: instruments(wide),
            instruments_max: 2,
            orders_max,
            levels_max,
            sessions_max: 3,
            accounts_max,
        };
        run(config, &ops, &mut tally).unwrap();
    }
    // The engine's own reasons for a new order; every reason at all, from
    // the engine or passed on from a gateway's reject, is checked below.
    let mut expected: Vec<String> = RejectReason::ALL
        .iter()
        .filter(|reason| {
            !reason.is_gateway_reason()
                && ![
                    RejectReason::UnknownOrder,
                    RejectReason::CancelWouldNotReduce,
                ]
                .contains(reason)
        })
        .map(|reason| format!("rejected New {}", reason.name()))
        .collect();
    for reason in [
        RejectReason::UnknownSession,
        RejectReason::UnknownOrder,
        RejectReason::InstrumentHalted,
        RejectReason::QtyZero,
        RejectReason::QtyAboveMax,
        RejectReason::PriceZero,
        RejectReason::PriceOffTick,
        RejectReason::PriceOutsideBand,
        RejectReason::PostOnlyWouldMatch,
        RejectReason::DuplicateToken,
        RejectReason::LevelTableFull,
    ] {
        expected.push(format!("rejected Replace {}", reason.name()));
    }
    expected.extend(
        [
            "rejected Cancel unknown_session",
            "rejected Cancel unknown_order",
            "rejected Cancel cancel_would_not_reduce",
            "rejected CancelAllForSession unknown_session",
            "canceled SessionDisconnected",
            "partial cancel",
            "rejected Halt unknown_instrument",
            "rejected Resume unknown_instrument",
            "rejected SetSelfTradePrevention unknown_account",
            "fill",
            "canceled Requested",
            "canceled ImmediateRemainder",
            "canceled SelfTrade",
            "replaced priority_kept=true",
            "replaced priority_kept=false",
            "instrument halted=true",
            "instrument halted=false",
            "accepted Limit Gtc post_only=true",
            "accepted Limit Ioc post_only=false",
            "accepted Limit Fok post_only=false",
            "accepted Market Gtc post_only=false",
            "accepted Market Ioc post_only=false",
            "accepted Market Fok post_only=false",
        ]
        .map(String::from),
    );
    for mode in ["Off", "CancelResting", "CancelIncoming", "CancelBoth"] {
        expected.push(format!("stp set {mode}"));
    }
    for reason in RejectReason::ALL {
        if !tally
            .keys()
            .any(|name| name.contains("rejected ") && name.ends_with(reason.name()))
        {
            expected.push(format!("rejected (any command) {}", reason.name()));
        }
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|name| !tally.contains_key(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "never produced: {missing:?}\ntally: {tally:#?}"
    );
    if std::env::var_os("LOCKSTEP_PRINT_TALLY").is_some() {
        eprintln!("{tally:#?}");
    }
}
