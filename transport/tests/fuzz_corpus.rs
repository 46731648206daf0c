//! Replays the fuzz corpus on stable, without cargo-fuzz: every file in
//! `transport/fuzz/corpus/<target>/` and `transport/fuzz/artifacts/<target>/`
//! goes through the same check as the fuzz target of that name
//! (`lockstep_transport::fuzz_checks`), so inputs the fuzzer found
//! interesting, and any crash it saved, stay tested by `cargo test`. The
//! seed inputs are replayed too, and regression tests for findings are
//! named after the input they replay. The replay itself is
//! `lockstep-fuzz-corpus`, shared by every crate with fuzz targets.

use lockstep_fuzz_corpus::Check;
use lockstep_transport::fuzz_checks;
use lockstep_transport::soupbintcp::Packet;

static TARGETS: [(&str, Check); 4] = [
    ("soupbintcp_decoder", fuzz_checks::soupbintcp_decoder),
    ("ouch_inbound", fuzz_checks::ouch_inbound),
    ("ouch_outbound", fuzz_checks::ouch_outbound),
    ("gateway_session", fuzz_checks::gateway_session),
];

lockstep_fuzz_corpus::corpus_tests!(TARGETS, fuzz_checks::seed_inputs);

#[test]
fn the_gateway_seeds_log_in_trade_and_time_out() {
    let seeds = fuzz_checks::seed_inputs();
    let stats = |name: &str| {
        let (_, _, data) = seeds
            .iter()
            .find(|(_, seed, _)| seed == name)
            .unwrap_or_else(|| panic!("no seed {name}"));
        fuzz_checks::gateway_session_stats(data)
    };
    let trade = stats("seed-two-sessions-trade");
    assert_eq!(trade.logins_accepted, 3, "{trade:?}");
    assert!(trade.messages_sequenced >= 8, "{trade:?}");
    assert_eq!(trade.disconnects_malformed, 0, "{trade:?}");
    let split = stats("seed-split-busy-timeout");
    assert_eq!(split.logins_accepted, 1, "{split:?}");
    assert!(split.submit_busy >= 1, "{split:?}");
    assert!(split.messages_sequenced >= 2, "{split:?}");
    assert!(split.disconnects_malformed >= 1, "{split:?}");
}

/// The first finding of `gateway_session` (artifact
/// `crash-0e2f4061-debug-before-login`): a connection that sends Debug
/// before its Login Request is logged in, as SoupBinTCP allows Debug at any
/// time; the check had assumed the Login Request was the very first packet.
/// The fault was in the check, not the gateway.
#[test]
fn crash_0e2f4061_debug_before_login_is_logged_in() {
    let data = corpus().read(
        "artifacts",
        "gateway_session",
        "crash-0e2f4061-debug-before-login",
    );
    let stats = fuzz_checks::gateway_session_stats(&data);
    assert_eq!(stats.logins_accepted, 1, "{stats:?}");

    let mut script = fuzz_checks::GatewayScript::new();
    script
        .packet(1, &Packet::Debug(b"before login"))
        .login(1, "bob", "pw2", 0)
        .drain(1);
    let stats = fuzz_checks::gateway_session_stats(script.bytes());
    assert_eq!(stats.logins_accepted, 1, "{stats:?}");
    assert_eq!(stats.disconnects_malformed, 0, "{stats:?}");
}
