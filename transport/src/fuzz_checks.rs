//! The properties the fuzz targets in `transport/fuzz/` check, in one place,
//! so that `cargo fuzz run` and the stable test `tests/fuzz_corpus.rs` (which
//! replays every saved corpus file) check exactly the same things. Each check
//! takes arbitrary bytes and panics when a property fails; a panic is a
//! finding.
//!
//! - [`soupbintcp_decoder`]: the stream decoder never claims more bytes than
//!   it was given, decides incomplete and refused frames from the frame's
//!   own bytes only, and re-encoding a decoded packet gives its bytes back.
//! - [`ouch_inbound`] and [`ouch_outbound`]: a message that decodes encodes
//!   back to exactly the same bytes.
//! - [`gateway_session`]: bytes split at arbitrary points into a
//!   [`GatewayCore`]'s connections, with timers, engine round trips,
//!   back-pressure and disconnects in between, never panic, and everything
//!   the gateway writes is a valid server stream that is bounded (see the
//!   function's documentation).
//!
//! [`GatewayScript`] writes inputs for [`gateway_session`], for the seed
//! corpus and for regression tests.

use crate::event_inbox::PublishedEvent;
use crate::gateway_config::{GatewayConfig, GatewayInstrument, SessionConfig};
use crate::gateway_core::{
    CommandSubmitter, ConnectionId, GatewayCore, GatewayStats, SubmitRefusal,
};
use crate::ouch::{self, Inbound, Outbound};
use crate::soupbintcp::{self, Decoder, Packet, HEADER_LEN, LENGTH_PREFIX};
use lockstep_engine::{
    AccountId, Command, Engine, EngineConfig, Event, InstrumentId, InstrumentSpec,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

// ----- SoupBinTCP ----------------------------------------------------------

/// Decodes `data` as a stream, frame after frame, until the decoder reports
/// an incomplete frame or an error, with the default decoder and with the
/// smallest one (maximum length 47). For every frame it checks that the
/// decoder claimed at most the bytes it was given, that the frame alone
/// decodes to the same packet, that every proper prefix of it is incomplete,
/// and that re-encoding the packet gives the frame's bytes back. Login
/// Request and Login Accepted are compared byte for byte except for their
/// sequence number, which the decoder also accepts left-justified or
/// zero-padded: there the value must survive the round trip.
pub fn soupbintcp_decoder(data: &[u8]) {
    for decoder in [
        Decoder::default(),
        Decoder::new(soupbintcp::LOGIN_REQUEST_LEN),
    ] {
        let mut rest = data;
        loop {
            match decoder.decode(rest) {
                Ok(Some((packet, len))) => {
                    check_decoded_frame(&decoder, rest, packet, len);
                    rest = &rest[len..];
                }
                Ok(None) => {
                    // Incomplete means the length field promises more than
                    // is there.
                    if let Some(&[hi, lo]) = rest.get(..LENGTH_PREFIX) {
                        let promised = LENGTH_PREFIX + usize::from(u16::from_be_bytes([hi, lo]));
                        assert!(
                            rest.len() < promised,
                            "incomplete with {} bytes of a {promised}-byte frame",
                            rest.len()
                        );
                    }
                    break;
                }
                Err(error) => {
                    // The verdict depends on the frame's own bytes only: cut
                    // off whatever follows the frame and it must not change.
                    if let Some(&[hi, lo]) = rest.get(..LENGTH_PREFIX) {
                        let frame_len = LENGTH_PREFIX + usize::from(u16::from_be_bytes([hi, lo]));
                        let frame = &rest[..frame_len.min(rest.len())];
                        assert_eq!(
                            decoder.decode(frame),
                            Err(error),
                            "the error changed when the bytes after the frame were cut off"
                        );
                    }
                    break;
                }
            }
        }
    }
}

fn check_decoded_frame(decoder: &Decoder, rest: &[u8], packet: Packet<'_>, len: usize) {
    assert!(
        len <= rest.len(),
        "the decoder claimed {len} bytes of {}",
        rest.len()
    );
    assert!(len >= HEADER_LEN, "a frame of {len} bytes has no type byte");
    assert!(
        len <= LENGTH_PREFIX + usize::from(decoder.max_packet_len()),
        "a frame of {len} bytes is above the decoder's maximum {}",
        decoder.max_packet_len()
    );
    assert_eq!(packet.encoded_len(), len, "{packet:?}");
    let frame = &rest[..len];
    assert_eq!(
        decoder.decode(frame),
        Ok(Some((packet, len))),
        "the frame alone decodes differently"
    );
    for cut in 0..len {
        assert_eq!(
            decoder.decode(&frame[..cut]),
            Ok(None),
            "a {cut}-byte prefix of a {len}-byte frame is not incomplete"
        );
    }
    let mut encoded = Vec::with_capacity(len);
    let encoded_len = packet
        .encode(&mut encoded)
        .expect("a decoded packet encodes");
    assert_eq!(encoded_len, len);
    // The sequence number of the login packets is the one field with more
    // than one accepted spelling; it is the tail of both packets.
    let exact_prefix = match packet {
        Packet::LoginRequest { .. } | Packet::LoginAccepted { .. } => {
            len - soupbintcp::SEQUENCE_LEN
        }
        _ => len,
    };
    assert_eq!(
        encoded[..exact_prefix],
        frame[..exact_prefix],
        "re-encoding {packet:?} changed its bytes"
    );
    assert_eq!(
        decoder.decode(&encoded),
        Ok(Some((packet, len))),
        "the re-encoded frame decodes differently"
    );
}

// ----- OUCH ----------------------------------------------------------------

/// Decodes `data` as a client message; one that decodes must encode back to
/// exactly `data`.
pub fn ouch_inbound(data: &[u8]) {
    if let Ok(message) = Inbound::decode(data) {
        assert_eq!(message.encoded_len(), data.len(), "{message:?}");
        let mut encoded = Vec::with_capacity(data.len());
        assert_eq!(message.encode(&mut encoded), data.len());
        assert_eq!(encoded, data, "re-encoding {message:?} changed its bytes");
    }
}

/// Decodes `data` as a server message; one that decodes must encode back to
/// exactly `data`.
pub fn ouch_outbound(data: &[u8]) {
    if let Ok(message) = Outbound::decode(data) {
        assert_eq!(message.encoded_len(), data.len(), "{message:?}");
        let mut encoded = Vec::with_capacity(data.len());
        assert_eq!(message.encode(&mut encoded), data.len());
        assert_eq!(encoded, data, "re-encoding {message:?} changed its bytes");
    }
}

// ----- the gateway -----------------------------------------------------------

/// Connections the gateway harness drives.
pub const GATEWAY_CONNECTIONS: usize = 2;
/// Steps of one [`gateway_session`] input at most; the rest is ignored, so
/// a run's work is bounded whatever the input's length.
pub const GATEWAY_STEPS_MAX: usize = 4096;

/// One step of a [`gateway_session`] input. On the wire a step is a control
/// byte `c` (`kind = c & 7`, `connection = (c >> 3) & 1`, `arg = c >> 4`),
/// followed for a feed by a length byte and that many bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayStep {
    /// Kinds 0-2: the client sends these bytes (the connection is opened
    /// first if it is not open).
    Feed { connection: usize, bytes: Vec<u8> },
    /// Kind 3: the client reads `(arg + 1) / 16` of the pending output.
    Drain { connection: usize, sixteenths: u8 },
    /// Kind 4: `2^arg` milliseconds pass, then the gateway's timers run.
    Tick { log2_ms: u8 },
    /// Kinds 5 and 7 (with `arg` below 15): the sequencer and engine take
    /// every submitted command and publish its events.
    Pump,
    /// Kind 6 with an even `arg`: the client closes its socket.
    PeerClose { connection: usize },
    /// Kind 6 with an odd `arg` below 15: the sequencer's queue turns full
    /// (or stops being full).
    ToggleBusy,
    /// Kind 6 with `arg` 15: the sequencer stops taking commands for good.
    StopSequencer,
    /// Kind 7 with `arg` 15: the server begins a clean shutdown.
    Shutdown,
}

/// Splits a [`gateway_session`] input into steps.
pub fn gateway_steps(data: &[u8]) -> Vec<GatewayStep> {
    let mut steps = Vec::new();
    let mut at = 0;
    while at < data.len() && steps.len() < GATEWAY_STEPS_MAX {
        let control = data[at];
        at += 1;
        let kind = control & 7;
        let connection = usize::from((control >> 3) & 1);
        let arg = control >> 4;
        steps.push(match kind {
            0..=2 => {
                let len = data.get(at).map_or(0, |&len| usize::from(len));
                at += 1;
                let start = at.min(data.len());
                let end = (at + len).min(data.len());
                at = end;
                GatewayStep::Feed {
                    connection,
                    bytes: data[start..end].to_vec(),
                }
            }
            3 => GatewayStep::Drain {
                connection,
                sixteenths: arg + 1,
            },
            4 => GatewayStep::Tick { log2_ms: arg },
            6 if arg == 15 => GatewayStep::StopSequencer,
            6 if arg % 2 == 1 => GatewayStep::ToggleBusy,
            6 => GatewayStep::PeerClose { connection },
            7 if arg == 15 => GatewayStep::Shutdown,
            _ => GatewayStep::Pump,
        });
    }
    steps
}

/// Writes [`gateway_session`] inputs step by step.
#[derive(Clone, Debug, Default)]
pub struct GatewayScript {
    bytes: Vec<u8>,
}

impl GatewayScript {
    pub fn new() -> GatewayScript {
        GatewayScript::default()
    }

    fn control(&mut self, kind: u8, connection: usize, arg: u8) -> &mut Self {
        debug_assert!(kind < 8 && arg < 16 && connection < GATEWAY_CONNECTIONS);
        self.bytes
            .push(kind | ((connection as u8) << 3) | (arg << 4));
        self
    }

    /// The client sends `bytes`, in feeds of at most 255 bytes.
    pub fn feed(&mut self, connection: usize, bytes: &[u8]) -> &mut Self {
        for chunk in bytes.chunks(255) {
            self.control(0, connection, 0);
            self.bytes.push(chunk.len() as u8);
            self.bytes.extend_from_slice(chunk);
        }
        self
    }

    /// The client sends one SoupBinTCP packet.
    pub fn packet(&mut self, connection: usize, packet: &Packet<'_>) -> &mut Self {
        let mut frame = Vec::new();
        // Scripts are written by tests; a packet too long to encode is a bug.
        packet.encode(&mut frame).expect("the packet encodes");
        self.feed(connection, &frame)
    }

    /// The client logs in with requested sequence number `sequence`.
    pub fn login(
        &mut self,
        connection: usize,
        username: &str,
        password: &str,
        sequence: u64,
    ) -> &mut Self {
        self.packet(
            connection,
            &Packet::LoginRequest {
                username: soupbintcp::Username::left(username).expect("username fits"),
                password: soupbintcp::Password::left(password).expect("password fits"),
                requested_session: soupbintcp::SessionName::BLANK,
                requested_sequence_number: sequence,
            },
        )
    }

    /// The client sends one OUCH message in Unsequenced Data.
    pub fn ouch(&mut self, connection: usize, message: &Inbound) -> &mut Self {
        let mut payload = Vec::new();
        message.encode(&mut payload);
        self.packet(connection, &Packet::UnsequencedData(&payload))
    }

    /// The client reads all of its pending output.
    pub fn drain(&mut self, connection: usize) -> &mut Self {
        self.control(3, connection, 15)
    }

    /// The client reads `(sixteenths_less_one + 1) / 16` of its output.
    pub fn drain_part(&mut self, connection: usize, sixteenths_less_one: u8) -> &mut Self {
        self.control(3, connection, sixteenths_less_one.min(15))
    }

    /// `2^log2_ms` milliseconds pass.
    pub fn tick(&mut self, log2_ms: u8) -> &mut Self {
        self.control(4, 0, log2_ms.min(15))
    }

    pub fn pump(&mut self) -> &mut Self {
        self.control(5, 0, 0)
    }

    pub fn peer_close(&mut self, connection: usize) -> &mut Self {
        self.control(6, connection, 0)
    }

    pub fn toggle_busy(&mut self) -> &mut Self {
        self.control(6, 0, 1)
    }

    pub fn stop_sequencer(&mut self) -> &mut Self {
        self.control(6, 0, 15)
    }

    pub fn shutdown(&mut self) -> &mut Self {
        self.control(7, 0, 15)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A submitter that records commands, and can be made busy or stopped.
#[derive(Clone, Default)]
struct Recorder {
    commands: Arc<Mutex<Vec<Command>>>,
    busy: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

impl CommandSubmitter for Recorder {
    fn submit(&mut self, command: Command) -> Result<(), SubmitRefusal> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err(SubmitRefusal::Stopped);
        }
        if self.busy.load(Ordering::Relaxed) {
            return Err(SubmitRefusal::Busy);
        }
        self.commands
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(command);
        Ok(())
    }
}

/// The gateway configuration the harness runs: two sessions, two
/// instruments, and small bounds so that the limits are reached.
pub fn gateway_fuzz_config() -> GatewayConfig {
    let session = |username: &str, password: &str, account: u32| SessionConfig {
        username: username.into(),
        password: password.into(),
        firm: "FRM1".into(),
        account: AccountId(account),
        cancel_on_disconnect: true,
        open_orders_max: 16,
        messages_per_second_max: 1_000,
        messages_burst_max: 50,
    };
    let mut config = GatewayConfig::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
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
    config.connections_max = GATEWAY_CONNECTIONS;
    // Room for a few frames only, so slow consumers are found quickly.
    config.output_buffer_bytes_max = 512;
    config.output_log_messages_max = 256;
    config.session_tokens_max = 64;
    config
}

fn gateway_fuzz_engine() -> Engine {
    let amzn = InstrumentSpec {
        tick_size: 100,
        band_min: 100,
        band_max: 1_999_999_900,
        qty_max: 1_000_000,
    };
    Engine::new(EngineConfig {
        instruments: vec![amzn, InstrumentSpec::unbounded()],
        instruments_max: 2,
        orders_max: 256,
        levels_max: 256,
        sessions_max: 4,
        accounts_max: 8,
    })
    .expect("the fuzz engine's configuration is valid")
}

/// A connection's first packet other than Debug.
enum FirstPacket {
    /// Not whole yet: the bytes taken so far, less whole Debug packets.
    Pending(Vec<u8>),
    Login {
        username: soupbintcp::Username,
        password: soupbintcp::Password,
    },
    /// Anything else, or a frame the decoder refuses.
    Other,
}

impl Default for FirstPacket {
    fn default() -> FirstPacket {
        FirstPacket::Pending(Vec::new())
    }
}

impl FirstPacket {
    /// Follows the bytes the gateway took until the first packet that is
    /// not Debug is whole.
    fn taken(&mut self, bytes: &[u8]) {
        let FirstPacket::Pending(pending) = self else {
            return;
        };
        pending.extend_from_slice(bytes);
        let decoder = Decoder::default();
        let mut at = 0;
        let decided = loop {
            match decoder.decode(&pending[at..]) {
                Ok(Some((Packet::Debug(_), len))) => at += len,
                Ok(Some((
                    Packet::LoginRequest {
                        username, password, ..
                    },
                    _,
                ))) => break Some(FirstPacket::Login { username, password }),
                Ok(Some(_)) | Err(_) => break Some(FirstPacket::Other),
                Ok(None) => break None,
            }
        };
        match decided {
            Some(first) => *self = first,
            None => {
                pending.drain(..at);
            }
        }
    }
}

/// What one connection's client has seen.
#[derive(Default)]
struct ClientView {
    id: Option<ConnectionId>,
    /// Bytes the client has sent that the gateway has not taken yet (a
    /// socket would hold them).
    backlog: Vec<u8>,
    /// The client's first packet other than Debug (which is allowed before
    /// login), as the gateway took it.
    first_packet: FirstPacket,
    /// Bytes read from the gateway, not yet a whole frame.
    received: Vec<u8>,
    login_answered: bool,
    /// The session index and the number of the next Sequenced Data.
    session: Option<(usize, u64)>,
    ended: bool,
    heartbeats: u64,
    ticks: u64,
}

struct GatewayHarness {
    core: GatewayCore,
    engine: Engine,
    recorder: Recorder,
    config: GatewayConfig,
    clients: [ClientView; GATEWAY_CONNECTIONS],
    seq: u64,
    now_ns: u64,
    shut_down: bool,
}

impl GatewayHarness {
    fn new() -> GatewayHarness {
        let config = gateway_fuzz_config();
        let recorder = Recorder::default();
        let mut core = GatewayCore::new(config.clone(), Box::new(recorder.clone()), 0)
            .expect("the fuzz gateway's configuration is valid");
        core.finish_rebuild();
        GatewayHarness {
            core,
            engine: gateway_fuzz_engine(),
            recorder,
            config,
            clients: Default::default(),
            seq: 0,
            now_ns: 0,
            shut_down: false,
        }
    }

    fn run(&mut self, step: GatewayStep) {
        match step {
            GatewayStep::Feed { connection, bytes } => {
                if self.clients[connection].id.is_none() && !self.shut_down {
                    // A full table refuses the connection; the bytes go nowhere.
                    let id = self.core.open_connection(self.now_ns);
                    if id.is_some() {
                        self.clients[connection] = ClientView {
                            id,
                            ..ClientView::default()
                        };
                    }
                }
                if self.clients[connection].id.is_some() {
                    self.clients[connection].backlog.extend_from_slice(&bytes);
                }
            }
            GatewayStep::Drain {
                connection,
                sixteenths,
            } => self.drain(connection, sixteenths),
            GatewayStep::Tick { log2_ms } => {
                self.now_ns += 1_000_000u64 << log2_ms;
                self.core.on_tick(self.now_ns);
                for client in &mut self.clients {
                    if client.id.is_some() {
                        client.ticks += 1;
                    }
                }
            }
            GatewayStep::Pump => self.pump(),
            GatewayStep::PeerClose { connection } => {
                if let Some(id) = self.clients[connection].id {
                    self.disconnect(connection, id, Some("the fuzz client closed".into()));
                }
            }
            GatewayStep::ToggleBusy => {
                let busy = &self.recorder.busy;
                busy.store(!busy.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            GatewayStep::StopSequencer => self.recorder.stopped.store(true, Ordering::Relaxed),
            GatewayStep::Shutdown => {
                self.core.begin_shutdown(self.now_ns);
                self.shut_down = true;
            }
        }
        self.offer_backlogs();
        self.close_due_connections();
        self.check_bounds();
    }

    /// Hands each client's unsent bytes to the gateway, as far as it takes
    /// them (a backend reads the socket only while there is input room).
    fn offer_backlogs(&mut self) {
        for client in &mut self.clients {
            let Some(id) = client.id else { continue };
            if client.backlog.is_empty() {
                continue;
            }
            let room = self.core.input_room(id);
            let taken = self.core.on_input(id, &client.backlog, self.now_ns);
            assert!(
                taken <= room && taken <= client.backlog.len(),
                "on_input took {taken} bytes with room {room}"
            );
            client.first_packet.taken(&client.backlog[..taken]);
            client.backlog.drain(..taken);
        }
    }

    /// Closes what the gateway wants closed, as a backend would.
    fn close_due_connections(&mut self) {
        for connection in 0..GATEWAY_CONNECTIONS {
            let Some(id) = self.clients[connection].id else {
                continue;
            };
            if self.core.close_due(id).is_some() {
                // What is still pending now is discarded with the socket.
                self.disconnect(connection, id, None);
            }
        }
    }

    fn disconnect(&mut self, connection: usize, id: ConnectionId, reason: Option<String>) {
        self.core.on_disconnected(id, reason);
        assert!(!self.core.is_open(id), "a disconnected slot stays open");
        self.clients[connection] = ClientView::default();
    }

    fn pump(&mut self) {
        let commands = std::mem::take(
            &mut *self
                .recorder
                .commands
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let mut events: Vec<Event> = Vec::new();
        for command in commands {
            self.seq += 1;
            events.clear();
            self.engine
                .apply(&command, &mut |event: &Event| events.push(*event));
            for event in &events {
                self.core.publish(&PublishedEvent {
                    seq: self.seq,
                    timestamp_ns: self.seq * 1_000,
                    event: *event,
                });
            }
        }
        self.core.fill_outputs();
    }

    fn drain(&mut self, connection: usize, sixteenths: u8) {
        let Some(id) = self.clients[connection].id else {
            return;
        };
        let pending = self.core.output_pending(id);
        let take = pending.len() * usize::from(sixteenths) / 16;
        if take == 0 {
            return;
        }
        let bytes = pending[..take].to_vec();
        self.core.output_consumed(id, take);
        self.core.note_sent(id, self.now_ns);
        self.clients[connection].received.extend_from_slice(&bytes);
        self.check_received(connection);
    }

    /// Everything the gateway sends must be a valid server stream: Login
    /// Accepted or Rejected first (and once), Sequenced Data that is exactly
    /// the session's logged message of that number, nothing after End of
    /// Session, at most one Server Heartbeat per timer run.
    fn check_received(&mut self, connection: usize) {
        let decoder = Decoder::default();
        // Taken out so that packets can borrow it while the view changes.
        let received = std::mem::take(&mut self.clients[connection].received);
        let mut at = 0;
        loop {
            let packet = match decoder.decode(&received[at..]) {
                Ok(Some((packet, len))) => {
                    at += len;
                    packet
                }
                Ok(None) => break,
                Err(error) => panic!("the gateway sent a malformed frame: {error}"),
            };
            let client = &self.clients[connection];
            assert!(
                !client.ended,
                "the gateway sent {packet:?} after End of Session"
            );
            let first = !client.login_answered;
            match packet {
                Packet::LoginAccepted {
                    session,
                    sequence_number,
                } => {
                    assert!(first, "a second login answer");
                    assert_eq!(
                        session.trimmed(),
                        self.config.session_name.as_bytes(),
                        "Login Accepted names another session"
                    );
                    let index = self.logged_in_session(connection);
                    assert!(
                        sequence_number >= 1
                            && sequence_number <= self.core.session_messages(index) + 1,
                        "Login Accepted announces message {sequence_number} of {}",
                        self.core.session_messages(index)
                    );
                    let client = &mut self.clients[connection];
                    client.login_answered = true;
                    client.session = Some((index, sequence_number));
                }
                Packet::LoginRejected(_) => {
                    assert!(first, "Login Rejected after the login was answered");
                    let client = &mut self.clients[connection];
                    client.login_answered = true;
                    client.ended = true;
                }
                Packet::SequencedData(payload) => {
                    let Some((index, number)) = client.session else {
                        panic!("Sequenced Data before Login Accepted");
                    };
                    let decoded = Outbound::decode(payload);
                    assert!(
                        decoded.is_ok(),
                        "Sequenced Data {number} is not OUCH: {decoded:?}"
                    );
                    assert_eq!(
                        self.core.session_message(index, number),
                        Some(payload),
                        "Sequenced Data {number} is not the session's logged message"
                    );
                    self.clients[connection].session = Some((index, number + 1));
                }
                Packet::ServerHeartbeat => {
                    let client = &mut self.clients[connection];
                    client.heartbeats += 1;
                    assert!(
                        client.heartbeats <= client.ticks,
                        "{} heartbeats in {} timer runs",
                        client.heartbeats,
                        client.ticks
                    );
                }
                Packet::EndOfSession => {
                    assert!(client.session.is_some(), "End of Session before login");
                    self.clients[connection].ended = true;
                }
                other => panic!("the gateway sent a client packet {other:?}"),
            }
        }
        self.clients[connection].received = received[at..].to_vec();
    }

    /// The session a Login Accepted is for: the credentials of the Login
    /// Request the connection sent first (Debug packets aside).
    fn logged_in_session(&self, connection: usize) -> usize {
        let FirstPacket::Login { username, password } = &self.clients[connection].first_packet
        else {
            panic!("Login Accepted for a connection whose first packet is not a Login Request");
        };
        self.config
            .sessions
            .iter()
            .position(|session| {
                session.username.as_bytes() == username.trimmed()
                    && session.password.as_bytes() == password.trimmed()
            })
            .unwrap_or_else(|| panic!("Login Accepted for unknown credentials {username:?}"))
    }

    /// Output waiting for a client never exceeds its configured buffer.
    fn check_bounds(&self) {
        for client in &self.clients {
            let Some(id) = client.id else { continue };
            let pending = self.core.output_pending(id).len();
            assert!(
                pending <= self.config.output_buffer_bytes_max,
                "{pending} bytes pending, above the buffer of {}",
                self.config.output_buffer_bytes_max
            );
        }
    }
}

/// Drives a [`GatewayCore`] with the steps [`gateway_steps`] reads from
/// `data`: client bytes split at arbitrary points into two connections,
/// partial reads of the gateway's output, timers, engine round trips, a
/// busy or stopped sequencer, peer disconnects and shutdown. It panics if
/// the gateway panics, or if its output is not bounded and valid: pending
/// output never exceeds `output_buffer_bytes_max`; every frame it writes
/// decodes; the login answer comes first and once; each Sequenced Data is
/// exactly the session's logged message of that number (so the gateway
/// sends nothing the engine did not produce, and never a message twice);
/// at most one Server Heartbeat per timer run; nothing after End of Session
/// or Login Rejected.
pub fn gateway_session(data: &[u8]) {
    gateway_session_stats(data);
}

/// [`gateway_session`], returning the gateway's counters at the end, so
/// tests can see how deep an input reaches.
pub fn gateway_session_stats(data: &[u8]) -> GatewayStats {
    let mut harness = GatewayHarness::new();
    for step in gateway_steps(data) {
        harness.run(step);
    }
    // Finally every client reads what is left, so nothing queued goes
    // unchecked.
    harness.run(GatewayStep::Pump);
    for connection in 0..GATEWAY_CONNECTIONS {
        harness.run(GatewayStep::Drain {
            connection,
            sixteenths: 16,
        });
    }
    harness.core.stats()
}

/// Inputs that reach deep into each target, for seeding the corpus: valid
/// frames and messages of every type and a gateway script that logs in both
/// sessions and trades. Each is `(target, name, bytes)`.
pub fn seed_inputs() -> Vec<(&'static str, String, Vec<u8>)> {
    use ouch::{
        Accepted, BboWeight, CancelOrder, CancelReason, Canceled, Capacity, CrossType,
        CustomerType, Display, EnterOrder, EventCode, Executed, IntermarketSweep, LiquidityFlag,
        OrderState, RejectReason, Rejected, ReplaceOrder, Replaced, Side, Stock, SystemEvent,
        Token, TIF_IOC, TIF_MARKET_HOURS,
    };
    let token = |text: &str| Token::left(text).expect("token fits");
    let amzn = Stock::left("AMZN").expect("stock fits");
    let enter = |text: &str, side: Side, shares: u32, price: u32, tif: u32| {
        Inbound::EnterOrder(EnterOrder {
            token: token(text),
            side,
            shares,
            stock: amzn,
            price,
            time_in_force: tif,
            firm: ouch::Firm::BLANK,
            display: Display::AnonymousPriceToComply,
            capacity: Capacity::Agency,
            intermarket_sweep: IntermarketSweep::NotEligible,
            minimum_quantity: 0,
            cross_type: CrossType::NoCross,
            customer_type: CustomerType::PortDefault,
        })
    };
    let replace = Inbound::ReplaceOrder(ReplaceOrder {
        existing_token: token("B1"),
        replacement_token: token("B1R"),
        shares: 50,
        price: 1_500_100,
        time_in_force: TIF_MARKET_HOURS,
        display: Display::AnonymousPriceToComply,
        intermarket_sweep: IntermarketSweep::NotEligible,
        minimum_quantity: 0,
    });
    let cancel = Inbound::CancelOrder(CancelOrder {
        token: token("B1R"),
        shares: 0,
    });
    let accepted = Accepted {
        timestamp: 34_200_000_000_000,
        token: token("B1"),
        side: Side::Buy,
        shares: 100,
        stock: amzn,
        price: 1_500_000,
        time_in_force: TIF_MARKET_HOURS,
        firm: ouch::Firm::left("FRM1").expect("firm fits"),
        display: Display::AnonymousPriceToComply,
        order_reference_number: 7,
        capacity: Capacity::Agency,
        intermarket_sweep: IntermarketSweep::NotEligible,
        minimum_quantity: 0,
        cross_type: CrossType::NoCross,
        order_state: OrderState::Live,
        bbo_weight: BboWeight::Unspecified,
    };
    let outbound = [
        Outbound::SystemEvent(SystemEvent {
            timestamp: 1,
            event: EventCode::StartOfDay,
        }),
        Outbound::Accepted(accepted),
        Outbound::Replaced(Replaced {
            timestamp: accepted.timestamp,
            replacement_token: token("B1R"),
            side: accepted.side,
            shares: 50,
            stock: amzn,
            price: 1_500_100,
            time_in_force: accepted.time_in_force,
            firm: accepted.firm,
            display: accepted.display,
            order_reference_number: 8,
            capacity: accepted.capacity,
            intermarket_sweep: accepted.intermarket_sweep,
            minimum_quantity: 0,
            cross_type: accepted.cross_type,
            order_state: OrderState::Live,
            previous_token: token("B1"),
            bbo_weight: BboWeight::Unspecified,
        }),
        Outbound::Canceled(Canceled {
            timestamp: 2,
            token: token("B1R"),
            decrement_shares: 50,
            reason: CancelReason::UserRequested,
        }),
        Outbound::Executed(Executed {
            timestamp: 3,
            token: token("S1"),
            executed_shares: 10,
            execution_price: 1_500_000,
            liquidity_flag: LiquidityFlag::Removed,
            match_number: 42,
        }),
        Outbound::Rejected(Rejected {
            timestamp: 4,
            token: token("X9"),
            reason: RejectReason::InvalidStock,
        }),
    ];
    let inbound = [
        enter("B1", Side::Buy, 100, 1_500_000, TIF_MARKET_HOURS),
        replace,
        cancel,
    ];

    let mut seeds = Vec::new();
    let mut stream = Vec::new();
    for (index, message) in inbound.iter().enumerate() {
        let mut bytes = Vec::new();
        message.encode(&mut bytes);
        seeds.push((
            "ouch_inbound",
            format!("seed-inbound-{index}"),
            bytes.clone(),
        ));
        Packet::UnsequencedData(&bytes)
            .encode(&mut stream)
            .expect("encodes");
    }
    for (index, message) in outbound.iter().enumerate() {
        let mut bytes = Vec::new();
        message.encode(&mut bytes);
        seeds.push((
            "ouch_outbound",
            format!("seed-outbound-{index}"),
            bytes.clone(),
        ));
        Packet::SequencedData(&bytes)
            .encode(&mut stream)
            .expect("encodes");
    }
    let fixed = [
        Packet::LoginRequest {
            username: soupbintcp::Username::left("alice").expect("fits"),
            password: soupbintcp::Password::left("pw1").expect("fits"),
            requested_session: soupbintcp::SessionName::BLANK,
            requested_sequence_number: 1,
        },
        Packet::LoginAccepted {
            session: soupbintcp::SessionName::right("LOCKSTEP").expect("fits"),
            sequence_number: 1,
        },
        Packet::LoginRejected(soupbintcp::LoginRejectReason::NotAuthorized),
        Packet::ServerHeartbeat,
        Packet::ClientHeartbeat,
        Packet::LogoutRequest,
        Packet::EndOfSession,
        Packet::Debug(b"hello"),
    ];
    for packet in fixed {
        packet.encode(&mut stream).expect("encodes");
    }
    seeds.push(("soupbintcp_decoder", "seed-every-packet".into(), stream));

    // Two sessions trade: a resting buy, a crossing sell, a replace, a
    // partial cancel, a reject, heartbeats, a slow reader, a logout and a
    // reconnect that asks for a retransmission.
    let mut script = GatewayScript::new();
    script
        .login(0, "alice", "pw1", 0)
        .login(1, "bob", "pw2", 0)
        .drain(0)
        .drain(1)
        .ouch(0, &enter("B1", Side::Buy, 100, 1_500_000, TIF_MARKET_HOURS))
        .pump()
        .ouch(1, &enter("S1", Side::Sell, 30, 1_500_000, TIF_IOC))
        .ouch(1, &enter("S2", Side::Sell, 10, 1_500_050, TIF_IOC))
        .pump()
        .drain_part(0, 7)
        .drain(1)
        .ouch(0, &replace)
        .ouch(
            0,
            &Inbound::CancelOrder(CancelOrder {
                token: token("B1R"),
                shares: 20,
            }),
        )
        .pump()
        .packet(0, &Packet::ClientHeartbeat)
        .packet(1, &Packet::Debug(b"debug text"))
        // Both read between the two heartbeat intervals: output left
        // unwritten for a whole interval is a slow consumer.
        .drain(0)
        .drain(1)
        .tick(10)
        .drain(0)
        .drain(1)
        .tick(10)
        .drain(0)
        .drain(1)
        .packet(1, &Packet::LogoutRequest)
        .drain(1)
        .pump()
        .login(1, "bob", "pw2", 1)
        .drain(1)
        .ouch(0, &cancel)
        .pump()
        .drain(0)
        .shutdown()
        .drain(0)
        .drain(1);
    seeds.push((
        "gateway_session",
        "seed-two-sessions-trade".into(),
        script.bytes().to_vec(),
    ));

    // A frame split byte by byte, a busy sequencer, a login timeout.
    let mut split = GatewayScript::new();
    let mut login = Vec::new();
    Packet::LoginRequest {
        username: soupbintcp::Username::left("alice").expect("fits"),
        password: soupbintcp::Password::left("pw1").expect("fits"),
        requested_session: soupbintcp::SessionName::BLANK,
        requested_sequence_number: 0,
    }
    .encode(&mut login)
    .expect("encodes");
    for byte in &login {
        split.feed(0, std::slice::from_ref(byte));
    }
    split
        .drain(0)
        .toggle_busy()
        .ouch(0, &enter("B2", Side::Buy, 5, 1_500_000, TIF_MARKET_HOURS))
        .ouch(0, &enter("B3", Side::Buy, 5, 1_500_000, TIF_MARKET_HOURS))
        .tick(3)
        .toggle_busy()
        .tick(3)
        .pump()
        .drain(0)
        .feed(1, b"\x00\x01R")
        .tick(14)
        .tick(14)
        .drain(1)
        .peer_close(0)
        .pump();
    seeds.push((
        "gateway_session",
        "seed-split-busy-timeout".into(),
        split.bytes().to_vec(),
    ));
    seeds
}
