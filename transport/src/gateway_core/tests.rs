//! The gateway's decisions, tested without sockets: a harness feeds bytes in
//! as a backend would, runs submitted commands through a real engine, and
//! publishes the engine's events back, so each test sees exactly the frames
//! a client would receive.

use super::*;
use crate::gateway_config::{GatewayInstrument, IoBackend};
use crate::ouch::{
    Capacity, CrossType, CustomerType, Display, EnterOrder, Inbound, IntermarketSweep, Stock,
    TIF_MARKET_HOURS,
};
use lockstep_engine::{AccountId, Engine, EngineConfig, InstrumentId, InstrumentSpec};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const SECOND_NS: u64 = 1_000_000_000;

#[derive(Clone, Default)]
struct Recorder {
    commands: Arc<Mutex<Vec<Command>>>,
    busy: Arc<AtomicBool>,
}

impl CommandSubmitter for Recorder {
    fn submit(&mut self, command: Command) -> Result<(), SubmitRefusal> {
        if self.busy.load(Ordering::Relaxed) {
            return Err(SubmitRefusal::Busy);
        }
        self.commands.lock().unwrap().push(command);
        Ok(())
    }
}

fn session(username: &str, password: &str, account: u32) -> SessionConfig {
    SessionConfig {
        username: username.into(),
        password: password.into(),
        firm: "FRM1".into(),
        account: AccountId(account),
        cancel_on_disconnect: true,
        open_orders_max: 100,
        messages_per_second_max: 1_000,
        messages_burst_max: 100,
    }
}

fn config() -> GatewayConfig {
    let mut config = GatewayConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![
            GatewayInstrument {
                symbol: "AMZN".into(),
                instrument: InstrumentId(0),
            },
            GatewayInstrument {
                symbol: "AAPL".into(),
                instrument: InstrumentId(1),
            },
        ],
        vec![session("alice", "pw1", 1), session("bob", "pw2", 2)],
    );
    config.io_backend = IoBackend::Mio;
    config.connections_max = 4;
    config.output_buffer_bytes_max = 4096;
    config
}

struct Harness {
    core: GatewayCore,
    engine: Engine,
    recorder: Recorder,
    seq: u64,
    now_ns: u64,
}

impl Harness {
    fn new(config: GatewayConfig) -> Harness {
        let recorder = Recorder::default();
        let mut core = GatewayCore::new(config, Box::new(recorder.clone()), 0).unwrap();
        core.finish_rebuild();
        let engine = Engine::new(EngineConfig {
            instruments: vec![InstrumentSpec::unbounded(); 2],
            instruments_max: 2,
            orders_max: 1024,
            levels_max: 1024,
            sessions_max: 4,
            accounts_max: 8,
        })
        .unwrap();
        Harness {
            core,
            engine,
            recorder,
            seq: 0,
            now_ns: 0,
        }
    }

    fn connect(&mut self) -> ConnectionId {
        self.core.open_connection(self.now_ns).unwrap()
    }

    fn send(&mut self, id: ConnectionId, bytes: &[u8]) {
        let taken = self.core.on_input(id, bytes, self.now_ns);
        assert_eq!(taken, bytes.len(), "the core took everything");
    }

    fn send_packet(&mut self, id: ConnectionId, packet: &Packet<'_>) {
        let mut bytes = Vec::new();
        packet.encode(&mut bytes).unwrap();
        self.send(id, &bytes);
    }

    fn login(&mut self, id: ConnectionId, username: &str, password: &str, sequence: u64) {
        self.send_packet(
            id,
            &Packet::LoginRequest {
                username: soupbintcp::Username::left(username).unwrap(),
                password: soupbintcp::Password::left(password).unwrap(),
                requested_session: SessionName::BLANK,
                requested_sequence_number: sequence,
            },
        );
    }

    fn send_ouch(&mut self, id: ConnectionId, message: &Inbound) {
        let mut payload = Vec::new();
        message.encode(&mut payload);
        self.send_packet(id, &Packet::UnsequencedData(&payload));
    }

    /// Runs every submitted command through the engine and publishes its
    /// events, as sequencer, replica and egress would.
    fn pump(&mut self) {
        let commands: Vec<Command> = std::mem::take(&mut *self.recorder.commands.lock().unwrap());
        for command in commands {
            self.seq += 1;
            let mut events = Vec::new();
            self.engine
                .apply(&command, &mut |event: &lockstep_engine::Event| {
                    events.push(*event)
                });
            for event in events {
                self.core.publish(&PublishedEvent {
                    seq: self.seq,
                    timestamp_ns: self.seq * 1_000,
                    event,
                });
            }
        }
        self.core.fill_outputs();
    }

    /// Takes everything queued for the connection, as a socket write would.
    fn take_output(&mut self, id: ConnectionId) -> Vec<u8> {
        let bytes = self.core.output_pending(id).to_vec();
        self.core.output_consumed(id, bytes.len());
        bytes
    }

    fn take_packets(&mut self, id: ConnectionId) -> Vec<OwnedPacket> {
        decode_all(&self.take_output(id))
    }

    fn tick(&mut self, advance_ns: u64) {
        self.now_ns += advance_ns;
        self.core.on_tick(self.now_ns);
    }

    fn submitted(&self) -> Vec<Command> {
        self.recorder.commands.lock().unwrap().clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnedPacket {
    LoginAccepted { sequence_number: u64 },
    LoginRejected(LoginRejectReason),
    Sequenced(Outbound),
    Heartbeat,
    EndOfSession,
}

fn decode_all(bytes: &[u8]) -> Vec<OwnedPacket> {
    let decoder = Decoder::default();
    let mut packets = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (packet, len) = decoder.decode(&bytes[at..]).unwrap().unwrap();
        at += len;
        packets.push(match packet {
            Packet::LoginAccepted {
                sequence_number, ..
            } => OwnedPacket::LoginAccepted { sequence_number },
            Packet::LoginRejected(reason) => OwnedPacket::LoginRejected(reason),
            Packet::SequencedData(payload) => {
                OwnedPacket::Sequenced(Outbound::decode(payload).unwrap())
            }
            Packet::ServerHeartbeat => OwnedPacket::Heartbeat,
            Packet::EndOfSession => OwnedPacket::EndOfSession,
            other => panic!("the server sent a client packet {other:?}"),
        });
    }
    packets
}

fn enter(token: &str, side: ouch::Side, shares: u32, price: u32) -> Inbound {
    Inbound::EnterOrder(EnterOrder {
        token: ouch::Token::left(token).unwrap(),
        side,
        shares,
        stock: Stock::left("AMZN").unwrap(),
        price,
        time_in_force: TIF_MARKET_HOURS,
        firm: ouch::Firm::BLANK,
        display: Display::AnonymousPriceToComply,
        capacity: Capacity::Agency,
        intermarket_sweep: IntermarketSweep::NotEligible,
        minimum_quantity: 0,
        cross_type: CrossType::NoCross,
        customer_type: CustomerType::PortDefault,
    })
}

fn logged_in(harness: &mut Harness, username: &str, password: &str) -> ConnectionId {
    let id = harness.connect();
    harness.login(id, username, password, 0);
    let packets = harness.take_packets(id);
    assert!(
        matches!(packets[..], [OwnedPacket::LoginAccepted { .. }]),
        "{packets:?}"
    );
    id
}

#[test]
fn a_good_login_is_accepted_and_numbers_messages_from_one() {
    let mut harness = Harness::new(config());
    let id = harness.connect();
    harness.login(id, "alice", "pw1", 0);
    assert_eq!(
        harness.take_packets(id),
        vec![OwnedPacket::LoginAccepted { sequence_number: 1 }]
    );
}

#[test]
fn a_bad_password_gets_login_rejected_a_and_is_closed() {
    let mut harness = Harness::new(config());
    let id = harness.connect();
    harness.login(id, "alice", "wrong", 0);
    assert_eq!(
        harness.take_packets(id),
        vec![OwnedPacket::LoginRejected(LoginRejectReason::NotAuthorized)]
    );
    assert!(matches!(
        harness.core.close_due(id),
        Some(CloseReason::LoginRejected(_))
    ));
}

#[test]
fn an_unknown_session_gets_login_rejected_s() {
    let mut harness = Harness::new(config());
    let id = harness.connect();
    harness.send_packet(
        id,
        &Packet::LoginRequest {
            username: soupbintcp::Username::left("alice").unwrap(),
            password: soupbintcp::Password::left("pw1").unwrap(),
            requested_session: SessionName::right("OTHER").unwrap(),
            requested_sequence_number: 0,
        },
    );
    assert_eq!(
        harness.take_packets(id),
        vec![OwnedPacket::LoginRejected(
            LoginRejectReason::SessionNotAvailable
        )]
    );
}

#[test]
fn a_second_login_to_a_session_in_use_is_refused() {
    let mut harness = Harness::new(config());
    logged_in(&mut harness, "alice", "pw1");
    let second = harness.connect();
    harness.login(second, "alice", "pw1", 0);
    assert_eq!(
        harness.take_packets(second),
        vec![OwnedPacket::LoginRejected(
            LoginRejectReason::SessionNotAvailable
        )]
    );
}

#[test]
fn data_before_login_closes_the_connection() {
    let mut harness = Harness::new(config());
    let id = harness.connect();
    harness.send_packet(id, &Packet::ClientHeartbeat);
    assert!(matches!(
        harness.core.close_due(id),
        Some(CloseReason::Protocol(_))
    ));
}

#[test]
fn a_login_that_never_comes_times_out() {
    let mut harness = Harness::new(config());
    let id = harness.connect();
    harness.tick(14 * SECOND_NS);
    assert!(harness.core.close_due(id).is_none());
    harness.tick(2 * SECOND_NS);
    assert_eq!(harness.core.close_due(id), Some(&CloseReason::LoginTimeout));
}

#[test]
fn the_server_heartbeats_after_a_second_of_silence_and_drops_a_silent_client_after_fifteen() {
    let mut harness = Harness::new(config());
    let id = logged_in(&mut harness, "alice", "pw1");
    harness.tick(SECOND_NS / 2);
    assert!(harness.take_packets(id).is_empty());
    harness.tick(SECOND_NS / 2 + 1);
    assert_eq!(harness.take_packets(id), vec![OwnedPacket::Heartbeat]);
    // A client heartbeat keeps the session alive past 15 s. The client
    // reads what it is sent, as a socket would take it: output left
    // unwritten for a heartbeat interval is a slow consumer.
    harness.tick(10 * SECOND_NS);
    assert_eq!(harness.take_packets(id), vec![OwnedPacket::Heartbeat]);
    harness.core.note_sent(id, harness.now_ns);
    harness.send_packet(id, &Packet::ClientHeartbeat);
    harness.tick(10 * SECOND_NS);
    assert!(harness.core.close_due(id).is_none());
    harness.tick(6 * SECOND_NS);
    assert_eq!(harness.core.close_due(id), Some(&CloseReason::IdleTimeout));
}

#[test]
fn a_half_frame_does_not_count_as_a_message_so_slowloris_times_out() {
    let mut harness = Harness::new(config());
    let id = logged_in(&mut harness, "alice", "pw1");
    // Two bytes of a length and one type byte, then nothing more, ever.
    harness.send(id, &[0, 20, b'U']);
    harness.tick(16 * SECOND_NS);
    assert_eq!(harness.core.close_due(id), Some(&CloseReason::IdleTimeout));
}

#[test]
fn crossing_orders_produce_accepted_and_executed_on_both_sessions_with_one_match_number() {
    let mut harness = Harness::new(config());
    let alice = logged_in(&mut harness, "alice", "pw1");
    let bob = logged_in(&mut harness, "bob", "pw2");
    harness.send_ouch(alice, &enter("A1", ouch::Side::Sell, 100, 1_000_000));
    harness.pump();
    harness.send_ouch(bob, &enter("B1", ouch::Side::Buy, 60, 1_000_000));
    harness.pump();
    let alice_packets = harness.take_packets(alice);
    let bob_packets = harness.take_packets(bob);
    let OwnedPacket::Sequenced(Outbound::Accepted(accepted)) = &alice_packets[0] else {
        panic!("{alice_packets:?}")
    };
    assert_eq!(accepted.shares, 100);
    assert_eq!(
        accepted.firm.trimmed(),
        b"FRM1",
        "blank firm echoes the session's"
    );
    let OwnedPacket::Sequenced(Outbound::Executed(maker)) = &alice_packets[1] else {
        panic!("{alice_packets:?}")
    };
    let OwnedPacket::Sequenced(Outbound::Executed(taker)) = &bob_packets[1] else {
        panic!("{bob_packets:?}")
    };
    assert_eq!(maker.match_number, taker.match_number);
    assert_eq!(maker.liquidity_flag, ouch::LiquidityFlag::Added);
    assert_eq!(taker.liquidity_flag, ouch::LiquidityFlag::Removed);
    assert_eq!((maker.executed_shares, taker.executed_shares), (60, 60));
    assert_eq!(
        harness.core.session_open_orders(0),
        1,
        "alice's remainder rests"
    );
    assert_eq!(
        harness.core.session_open_orders(1),
        0,
        "bob's order is done"
    );
}

#[test]
fn a_reconnect_with_a_requested_sequence_number_replays_from_it_with_no_gap() {
    let mut harness = Harness::new(config());
    let alice = logged_in(&mut harness, "alice", "pw1");
    for index in 0..5 {
        harness.send_ouch(
            alice,
            &enter(&format!("T{index}"), ouch::Side::Buy, 10, 100_000),
        );
    }
    harness.pump();
    let first = harness.take_packets(alice);
    assert_eq!(first.len(), 5);
    harness.core.on_disconnected(alice, Some("test".into()));
    harness.pump();
    let again = harness.connect();
    harness.login(again, "alice", "pw1", 3);
    let replayed = harness.take_packets(again);
    assert_eq!(
        replayed[0],
        OwnedPacket::LoginAccepted { sequence_number: 3 }
    );
    // Messages 3, 4, 5 as before, then the cancel-on-disconnect's cancels.
    assert_eq!(&replayed[1..4], &first[2..5]);
    assert!(replayed[4..]
        .iter()
        .all(|packet| matches!(packet, OwnedPacket::Sequenced(Outbound::Canceled(_)))));
    assert_eq!(replayed.len(), 4 + 5);
}

#[test]
fn cancel_on_disconnect_is_submitted_as_a_sequenced_command() {
    let mut harness = Harness::new(config());
    let alice = logged_in(&mut harness, "alice", "pw1");
    harness.core.on_disconnected(alice, None);
    assert_eq!(
        harness.submitted(),
        vec![Command::CancelAllForSession {
            session: SessionId(0)
        }]
    );
}

#[test]
fn an_invalid_enum_value_gets_an_ouch_rejected_and_the_session_stays() {
    let mut harness = Harness::new(config());
    let alice = logged_in(&mut harness, "alice", "pw1");
    let mut payload = Vec::new();
    enter("BAD1", ouch::Side::Buy, 10, 100_000).encode(&mut payload);
    payload[40] = b'?'; // display
    harness.send_packet(alice, &Packet::UnsequencedData(&payload));
    harness.pump();
    let packets = harness.take_packets(alice);
    let OwnedPacket::Sequenced(Outbound::Rejected(rejected)) = &packets[0] else {
        panic!("{packets:?}")
    };
    assert_eq!(rejected.reason, ouch::RejectReason::InvalidDisplayType);
    assert!(harness.core.close_due(alice).is_none());
}

#[test]
fn a_wrong_length_ouch_message_disconnects_only_that_session() {
    let mut harness = Harness::new(config());
    let alice = logged_in(&mut harness, "alice", "pw1");
    let bob = logged_in(&mut harness, "bob", "pw2");
    harness.send_packet(alice, &Packet::UnsequencedData(b"O too short"));
    assert!(matches!(
        harness.core.close_due(alice),
        Some(CloseReason::Malformed(_))
    ));
    harness.send_ouch(bob, &enter("B1", ouch::Side::Buy, 10, 100_000));
    harness.pump();
    assert!(harness.core.close_due(bob).is_none());
    assert_eq!(harness.take_packets(bob).len(), 1);
}

#[test]
fn a_token_used_earlier_today_is_ignored_silently() {
    let mut harness = Harness::new(config());
    let alice = logged_in(&mut harness, "alice", "pw1");
    harness.send_ouch(alice, &enter("DUP", ouch::Side::Buy, 10, 100_000));
    harness.pump();
    harness.send_ouch(
        alice,
        &Inbound::CancelOrder(ouch::CancelOrder {
            token: ouch::Token::left("DUP").unwrap(),
            shares: 0,
        }),
    );
    harness.pump();
    assert_eq!(harness.take_packets(alice).len(), 2, "accepted, canceled");
    harness.send_ouch(alice, &enter("DUP", ouch::Side::Buy, 10, 100_000));
    harness.pump();
    assert!(harness.take_packets(alice).is_empty());
    assert_eq!(harness.core.stats().duplicate_tokens_ignored, 1);
}

#[test]
fn the_open_orders_limit_rejects_cleanly() {
    let mut config = config();
    config.sessions[0].open_orders_max = 2;
    let mut harness = Harness::new(config);
    let alice = logged_in(&mut harness, "alice", "pw1");
    for index in 0..3 {
        harness.send_ouch(
            alice,
            &enter(&format!("L{index}"), ouch::Side::Buy, 10, 100_000),
        );
    }
    harness.pump();
    let packets = harness.take_packets(alice);
    assert!(matches!(
        packets[2],
        OwnedPacket::Sequenced(Outbound::Rejected(_))
    ));
    assert_eq!(harness.core.session_open_orders(0), 2);
}

#[test]
fn the_message_rate_limit_rejects_beyond_the_burst() {
    let mut config = config();
    config.sessions[0].messages_burst_max = 3;
    config.sessions[0].messages_per_second_max = 1;
    let mut harness = Harness::new(config);
    let alice = logged_in(&mut harness, "alice", "pw1");
    for index in 0..4 {
        harness.send_ouch(
            alice,
            &enter(&format!("R{index}"), ouch::Side::Buy, 10, 100_000),
        );
    }
    let last = *harness.submitted().last().unwrap();
    assert!(matches!(
        last,
        Command::Reject {
            reason: RejectReason::MessageRateExceeded,
            ..
        }
    ));
}

#[test]
fn a_client_that_stops_reading_is_disconnected_after_a_heartbeat_interval() {
    let mut harness = Harness::new(config());
    let alice = logged_in(&mut harness, "alice", "pw1");
    // Alice never reads again: her 4 KiB buffer fills with Accepted and
    // the rest wait in her session's log.
    for index in 0..200 {
        harness.send_ouch(
            alice,
            &enter(&format!("S{index}"), ouch::Side::Buy, 1, 100_000),
        );
        harness.pump();
    }
    assert!(harness.core.output_pending(alice).len() > 4_000);
    assert_eq!(harness.core.session_messages(0), 200);
    // A full buffer alone is not a slow client; a heartbeat interval
    // without a byte written is.
    let heartbeat_ns = harness.core.config().heartbeat_interval_ms * 1_000_000;
    harness.tick(heartbeat_ns - 1);
    assert_eq!(harness.core.close_due(alice), None);
    harness.tick(1);
    assert_eq!(
        harness.core.close_due(alice),
        Some(&CloseReason::SlowConsumer)
    );
}

/// Found by the simulator (seed 57 then, seed 14 with today's plans): a burst
/// of messages bigger than a connection's output buffer, published in one
/// go, closed a client that had caught up and was reading as a slow
/// consumer before it had any chance to read. The messages now wait in the
/// session's log and follow as the client reads, as after a login.
#[test]
fn seed_14_a_burst_bigger_than_the_output_buffer_waits_for_a_client_that_reads() {
    let mut harness = Harness::new(config());
    let alice = logged_in(&mut harness, "alice", "pw1");
    let burst: Vec<u8> = (0..100)
        .flat_map(|index| {
            let mut payload = Vec::new();
            enter(&format!("B{index}"), ouch::Side::Buy, 1, 100_000).encode(&mut payload);
            let mut frame = Vec::new();
            Packet::UnsequencedData(&payload)
                .encode(&mut frame)
                .unwrap();
            frame
        })
        .collect();
    harness.send(alice, &burst);
    harness.pump();
    // 100 Accepted of 69 bytes each do not fit the 4 KiB buffer.
    assert_eq!(harness.core.session_messages(0), 100);
    let mut received = Vec::new();
    for _ in 0..10 {
        assert_eq!(harness.core.close_due(alice), None);
        received.extend(harness.take_packets(alice));
        harness.core.note_sent(alice, harness.now_ns);
        harness.tick(1_000_000);
    }
    let tokens: Vec<String> = received
        .iter()
        .map(|packet| match packet {
            OwnedPacket::Sequenced(Outbound::Accepted(accepted)) => {
                String::from_utf8_lossy(accepted.token.trimmed()).into_owned()
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let expected: Vec<String> = (0..100).map(|index| format!("B{index}")).collect();
    assert_eq!(tokens, expected, "every message, in order, once");
}

/// Found by the simulator (seed 2, and a third of seeds 0..300, once it
/// checked that a client whose frames the gateway took is not "silent"): a
/// connection whose command waited for a busy sequencer was closed for the
/// idle timeout, although the client kept sending heartbeats (unread behind
/// the held-back command), and the held-back command was dropped with it.
#[test]
fn seed_2_a_client_held_back_by_a_busy_sequencer_is_not_timed_out_for_idleness() {
    let mut harness = Harness::new(config());
    let alice = logged_in(&mut harness, "alice", "pw1");
    harness.recorder.busy.store(true, Ordering::Relaxed);
    harness.send_ouch(alice, &enter("H1", ouch::Side::Buy, 10, 100_000));
    // Twenty seconds of back-pressure, Alice heartbeating every second.
    for _ in 0..20 {
        harness.send_packet(alice, &Packet::ClientHeartbeat);
        harness.tick(SECOND_NS);
        harness.take_output(alice);
        harness.core.note_sent(alice, harness.now_ns);
        assert_eq!(harness.core.close_due(alice), None);
    }
    assert!(harness.submitted().is_empty());
    harness.recorder.busy.store(false, Ordering::Relaxed);
    harness.tick(1);
    assert_eq!(harness.submitted().len(), 1, "the held-back order is taken");
    assert_eq!(harness.core.close_due(alice), None);
    // Real silence still times out.
    harness.tick(16 * SECOND_NS);
    assert_eq!(
        harness.core.close_due(alice),
        Some(&CloseReason::IdleTimeout)
    );
}

#[test]
fn a_busy_sequencer_holds_the_connection_back_and_loses_nothing() {
    let mut harness = Harness::new(config());
    let alice = logged_in(&mut harness, "alice", "pw1");
    harness.recorder.busy.store(true, Ordering::Relaxed);
    harness.send_ouch(alice, &enter("W1", ouch::Side::Buy, 10, 100_000));
    harness.send_ouch(alice, &enter("W2", ouch::Side::Buy, 10, 100_000));
    assert!(harness.submitted().is_empty());
    harness.recorder.busy.store(false, Ordering::Relaxed);
    harness.tick(1_000_000);
    assert_eq!(
        harness.submitted().len(),
        2,
        "both orders went through, in order"
    );
}

#[test]
fn a_full_output_log_is_fatal_rather_than_a_gap() {
    let mut config = config();
    config.output_log_messages_max = 2;
    let mut harness = Harness::new(config);
    let alice = logged_in(&mut harness, "alice", "pw1");
    for index in 0..3 {
        harness.send_ouch(
            alice,
            &enter(&format!("F{index}"), ouch::Side::Buy, 10, 100_000),
        );
    }
    harness.pump();
    assert!(harness.core.fatal().is_some());
}
