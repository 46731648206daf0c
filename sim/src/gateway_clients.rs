//! Simulated SoupBinTCP clients of the real gateway, one per session. This
//! module owns what happens on the "wire": each client encodes real frames
//! (Login Request with a requested sequence number, Unsequenced Data with an
//! OUCH message, Client Heartbeat, Logout Request, Debug), hands them to
//! `GatewayCore::on_input`, reads what `output_pending` shows, decodes it
//! with the real decoders, and keeps every sequenced message it was ever
//! sent, by number. Faults are drawn here from the seed: a connection
//! dropped mid-stream, reconnects asking for message 1, for the next one,
//! for 0 (only new ones) or for one past the end, the same message sent
//! twice, garbage and malformed frames, writes cut short mid-frame, logins
//! with bad credentials, clients that go silent (timeouts) or stop reading
//! (slow consumer), and clients that vanish without the gateway being told
//! (a half-open connection that holds the session until it times out).
//!
//! Checked on every message a client receives: Login Accepted numbers the
//! next message as the protocol's rule says for the requested number and
//! the log's length at login; messages then arrive numbered one after the
//! other from there; a message received again (after a reconnect or a
//! process crash) is byte for byte the one received the first time; every
//! frame and OUCH message decodes; a client that sent garbage is closed; a
//! connection is closed only for what its client did (garbage, a logout, a
//! bad login, silence, not reading); a login is refused, with 'S', exactly
//! while an earlier connection of the session is still open.

use crate::ouch_traffic::OrderFlow;
use crate::plan::GatewayPlan;
use crate::rng::SimRng;
use crate::sim_gateway::{password, username, SESSION_NAME};
use lockstep_transport::gateway_core::{ConnectionId, GatewayCore};
use lockstep_transport::ouch;
use lockstep_transport::soupbintcp::{
    packet_type, Decoder, Packet, Password, SessionName, Username,
};

/// Bytes a client holds unsent before it stops making new messages (its
/// socket's send buffer, in effect).
const OUTBOUND_BYTES_MAX: usize = 2_048;
/// Reads of the gateway's output a client makes in one step.
const READS_PER_STEP_MAX: usize = 4;
/// The longest wait before a client reconnects, in steps.
const RECONNECT_DELAY_STEPS_MAX: u64 = 100;
/// The client-side decoder accepts anything the gateway may send.
const CLIENT_DECODER: Decoder = Decoder::new(u16::MAX);

/// How often each gateway fault happens: per million client-steps unless
/// the name says otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayFaultRates {
    pub disconnect: u32,
    pub garbage: u32,
    /// Per message sent.
    pub duplicate_per_million: u32,
    /// Per write.
    pub partial_per_million: u32,
    /// Per login.
    pub bad_login_per_million: u32,
    pub silent: u32,
    pub stop_reading: u32,
    /// A clean Logout Request (not a fault, but another way to end).
    pub logout: u32,
    /// After a process crash, the chance a client asks for message 1.
    pub crash_reconnect_from_one_per_million: u32,
    /// The client's side of the connection dies without the gateway being
    /// told (a half-open TCP connection); the gateway finds out by its
    /// timeouts, and logins meanwhile find the session taken.
    pub vanish: u32,
}

/// Gateway faults injected so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayFaultCounts {
    pub disconnects: u64,
    pub reconnect_from_one: u64,
    pub reconnect_from_next: u64,
    pub reconnect_from_zero: u64,
    pub reconnect_beyond_end: u64,
    pub duplicates: u64,
    pub garbage: u64,
    pub partial_writes: u64,
    pub bad_logins: u64,
    pub silences: u64,
    pub stopped_reading: u64,
    pub vanished: u64,
}

/// What the clients saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCounts {
    pub logins: u64,
    pub messages_received: u64,
    /// Messages received again, each compared with the first time.
    pub messages_received_again: u64,
}

/// An Accepted a client saw for the first time: the simulator checks that
/// the journal holds that order.
#[derive(Clone, Copy, Debug)]
pub struct AcceptedSeen {
    pub session: usize,
    pub number: u64,
    pub order_reference_number: u64,
    pub token: [u8; 14],
}

struct SimClient {
    session: usize,
    rng: SimRng,
    flow: OrderFlow,
    connection: Option<ConnectionId>,
    logged_in: bool,
    /// Set once the client sent garbage or a Logout Request: it waits to be
    /// closed, from the time the gateway had taken the last byte.
    doomed: bool,
    sent_garbage: bool,
    sent_logout: bool,
    /// Whether it ever opened a connection (the first login asks for 1).
    ever_connected: bool,
    doomed_since_ns: Option<u64>,
    /// The gateway's input room for the connection when last looked at.
    doomed_room: Option<usize>,
    /// A bad login was sent: Login Rejected is the expected answer.
    expect_reject: bool,
    /// A connection the client abandoned without the gateway knowing.
    half_open: Option<ConnectionId>,
    /// When the gateway answered the login: whether the half-open
    /// connection still held the session (`None`: not answered yet).
    session_taken_at_login: Option<bool>,
    reconnect_at_step: u64,
    /// The next connection follows a process crash.
    after_crash: bool,
    requested: u64,
    /// The session's log length when the gateway accepted the login.
    login_log_len: Option<u64>,
    /// The number of the next sequenced message on this connection.
    next_number: u64,
    /// Every sequenced message ever received, at index `number - 1`.
    seen: Vec<Option<Box<[u8]>>>,
    inbound: Vec<u8>,
    outbound: Vec<u8>,
    last_sent_ns: u64,
    /// When the gateway last took every byte the client had to send, so
    /// its last frame was whole: the client was not silent then.
    last_drained_ns: u64,
    last_payload: Option<Vec<u8>>,
    silent_until_step: u64,
    deaf_until_step: u64,
}

/// The clients of one run.
pub struct GatewayClients {
    clients: Vec<SimClient>,
    rates: GatewayFaultRates,
    /// Per client and step, per million: a burst of messages.
    load_per_million: u32,
    burst_max: u64,
    heartbeat_ns: u64,
    idle_timeout_ns: u64,
    packet_len_max: u16,
    pub faults: GatewayFaultCounts,
    pub counts: ClientCounts,
}

/// Bytes as hex, for failure messages.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn frame(packet: &Packet<'_>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(packet.encoded_len());
    packet.encode(&mut bytes).expect("client packets encode");
    bytes
}

fn data_frame(payload: &[u8]) -> Vec<u8> {
    frame(&Packet::UnsequencedData(payload))
}

fn login_frame(username: &str, password: &str, session: &str, requested: u64) -> Vec<u8> {
    frame(&Packet::LoginRequest {
        username: Username::left(username).expect("a short username"),
        password: Password::left(password).expect("a short password"),
        requested_session: SessionName::right(session).expect("a short session name"),
        requested_sequence_number: requested,
    })
}

impl SimClient {
    fn highest_seen(&self) -> u64 {
        self.seen.len() as u64
    }

    fn go_offline(&mut self, step: u64) {
        self.connection = None;
        self.logged_in = false;
        self.doomed = false;
        self.sent_garbage = false;
        self.sent_logout = false;
        self.doomed_since_ns = None;
        self.doomed_room = None;
        self.expect_reject = false;
        self.session_taken_at_login = None;
        self.login_log_len = None;
        self.inbound.clear();
        self.outbound.clear();
        self.reconnect_at_step = step + self.rng.range(1, RECONNECT_DELAY_STEPS_MAX);
    }
}

impl GatewayClients {
    pub fn new(
        mut rng: SimRng,
        plan: &GatewayPlan,
        load_per_million: u32,
        burst_max: u64,
    ) -> GatewayClients {
        let sessions = plan.config.sessions.len();
        let clients = (0..sessions)
            .map(|session| SimClient {
                session,
                rng: rng.fork(session as u64),
                flow: OrderFlow::new(session),
                connection: None,
                logged_in: false,
                doomed: false,
                sent_garbage: false,
                sent_logout: false,
                ever_connected: false,
                doomed_since_ns: None,
                doomed_room: None,
                expect_reject: false,
                half_open: None,
                session_taken_at_login: None,
                reconnect_at_step: 0,
                after_crash: false,
                requested: 0,
                login_log_len: None,
                next_number: 0,
                seen: Vec::new(),
                inbound: Vec::new(),
                outbound: Vec::new(),
                last_sent_ns: 0,
                last_drained_ns: 0,
                last_payload: None,
                silent_until_step: 0,
                deaf_until_step: 0,
            })
            .collect();
        GatewayClients {
            clients,
            rates: plan.faults,
            load_per_million: load_per_million / sessions.max(1) as u32,
            burst_max,
            heartbeat_ns: plan.config.heartbeat_interval_ms * 1_000_000,
            idle_timeout_ns: plan.config.idle_timeout_ms * 1_000_000,
            packet_len_max: plan.config.packet_len_max,
            faults: GatewayFaultCounts::default(),
            counts: ClientCounts::default(),
        }
    }

    /// The process crashed: every connection is gone. Clients reconnect a
    /// little later, often asking for everything again.
    pub fn process_crashed(&mut self, step: u64) {
        for client in &mut self.clients {
            if client.connection.is_some() {
                client.go_offline(step);
            }
            client.half_open = None;
            client.after_crash = true;
        }
    }

    /// Connects, sends and lets the gateway's timers run: the clients' half
    /// of a step before the system's agents run.
    pub fn send(&mut self, gateway: &mut GatewayCore, step: u64, now_ns: u64, active: bool) {
        for index in 0..self.clients.len() {
            self.client_acts(index, gateway, step, now_ns, active);
            self.write(index, gateway, step, now_ns);
        }
        gateway.on_tick(now_ns);
    }

    fn connect(
        &mut self,
        index: usize,
        gateway: &mut GatewayCore,
        step: u64,
        now_ns: u64,
        active: bool,
    ) {
        let rates = self.rates;
        let client = &mut self.clients[index];
        let Some(id) = gateway.open_connection(now_ns) else {
            // The connection table is full: try again later.
            client.reconnect_at_step = step + client.rng.range(1, RECONNECT_DELAY_STEPS_MAX);
            return;
        };
        client.connection = Some(id);
        client.last_sent_ns = now_ns;
        let next = client.highest_seen() + 1;
        let first_login = !client.ever_connected;
        client.ever_connected = true;
        client.requested = if first_login || !active {
            if client.seen.is_empty() {
                1
            } else {
                next
            }
        } else if client.after_crash
            && client
                .rng
                .chance(rates.crash_reconnect_from_one_per_million)
        {
            self.faults.reconnect_from_one += 1;
            1
        } else {
            match client.rng.below(10) {
                0..=2 => {
                    self.faults.reconnect_from_one += 1;
                    1
                }
                3..=6 => {
                    self.faults.reconnect_from_next += 1;
                    next
                }
                7..=8 => {
                    self.faults.reconnect_from_zero += 1;
                    0
                }
                _ => {
                    // Past anything the log can hold (its bound is a
                    // million messages), up to the largest number the
                    // 20-digit field can carry.
                    self.faults.reconnect_beyond_end += 1;
                    if client.rng.below(4) == 0 {
                        u64::MAX
                    } else {
                        next + 1_000_000 + client.rng.below(1 << 40)
                    }
                }
            }
        };
        client.after_crash = false;
        let session = client.session;
        let (user, pass, name) = if active && client.rng.chance(rates.bad_login_per_million) {
            self.faults.bad_logins += 1;
            client.expect_reject = true;
            match client.rng.below(3) {
                0 => (username(session), "wrong".to_string(), String::new()),
                1 => ("nobody".to_string(), password(session), String::new()),
                _ => (username(session), password(session), "OTHERDAY".to_string()),
            }
        } else {
            let name = if client.rng.below(2) == 0 {
                String::new()
            } else {
                SESSION_NAME.to_string()
            };
            (username(session), password(session), name)
        };
        if active && client.rng.chance(rates.garbage.saturating_mul(20)) {
            // Data before the login: the gateway must close the connection.
            self.faults.garbage += 1;
            client.doomed = true;
            client.sent_garbage = true;
            client
                .outbound
                .extend_from_slice(&frame(&Packet::ClientHeartbeat));
            return;
        }
        client
            .outbound
            .extend(login_frame(&user, &pass, &name, client.requested));
    }

    fn client_acts(
        &mut self,
        index: usize,
        gateway: &mut GatewayCore,
        step: u64,
        now_ns: u64,
        active: bool,
    ) {
        let rates = self.rates;
        let client = &mut self.clients[index];
        let Some(id) = client.connection else {
            if step >= client.reconnect_at_step {
                self.connect(index, gateway, step, now_ns, active);
            }
            return;
        };
        if step < client.silent_until_step || client.doomed {
            return;
        }
        if active && client.logged_in {
            if client.rng.chance(rates.disconnect) {
                // The connection drops mid-stream: whatever the gateway had
                // not handed over yet, and a frame the client had read only
                // part of, are lost with it.
                self.faults.disconnects += 1;
                gateway.on_disconnected(id, Some("reset by the simulated client".to_string()));
                client.go_offline(step);
                return;
            }
            if client.half_open.is_none() && client.rng.chance(rates.vanish) {
                // The gateway is not told: it keeps the connection (and the
                // session) until its timeouts close it.
                self.faults.vanished += 1;
                client.half_open = Some(id);
                client.go_offline(step);
                return;
            }
            if client.rng.chance(rates.garbage) {
                self.faults.garbage += 1;
                let garbage = Self::garbage(&mut client.rng, &mut client.flow, self.packet_len_max);
                client.outbound.extend(garbage);
                client.doomed = true;
                client.sent_garbage = true;
                return;
            }
            if client.rng.chance(rates.logout) {
                client.outbound.extend(frame(&Packet::LogoutRequest));
                client.doomed = true;
                client.sent_logout = true;
                return;
            }
            if client.rng.chance(rates.silent) {
                self.faults.silences += 1;
                client.silent_until_step = step + client.rng.range(10, 400);
                return;
            }
            if client.rng.chance(rates.stop_reading) {
                self.faults.stopped_reading += 1;
                client.deaf_until_step = step + client.rng.range(10, 500);
            }
            if client.outbound.len() < OUTBOUND_BYTES_MAX
                && client.rng.chance(self.load_per_million)
            {
                let burst = client.rng.range(1, self.burst_max);
                for _ in 0..burst {
                    let payload = match &client.last_payload {
                        Some(last) if client.rng.chance(rates.duplicate_per_million) => {
                            self.faults.duplicates += 1;
                            last.clone()
                        }
                        _ => {
                            let mut payload = Vec::new();
                            client
                                .flow
                                .next_message(&mut client.rng)
                                .encode(&mut payload);
                            payload
                        }
                    };
                    client.outbound.extend(data_frame(&payload));
                    client.last_payload = Some(payload);
                }
                if client.rng.below(200) == 0 {
                    client
                        .outbound
                        .extend(frame(&Packet::Debug(b"simulated client")));
                }
            }
        }
        if client.outbound.is_empty()
            && now_ns.saturating_sub(client.last_sent_ns) >= self.heartbeat_ns / 2
        {
            client.outbound.extend(frame(&Packet::ClientHeartbeat));
        }
    }

    /// A frame the gateway must close the connection for.
    fn garbage(rng: &mut SimRng, flow: &mut OrderFlow, packet_len_max: u16) -> Vec<u8> {
        let mut enter = Vec::new();
        if let ouch::Inbound::EnterOrder(order) = flow.next_message(rng) {
            ouch::Inbound::EnterOrder(order).encode(&mut enter);
        } else {
            enter.extend_from_slice(&[b'O'; ouch::message_len::ENTER_ORDER]);
        }
        match rng.below(9) {
            0 => vec![0, 0],
            1 => {
                let len = (u32::from(packet_len_max) + 1 + rng.below(100) as u32)
                    .min(u32::from(u16::MAX)) as u16;
                let mut bytes = len.to_be_bytes().to_vec();
                bytes.push(packet_type::UNSEQUENCED_DATA);
                bytes
            }
            2 => vec![0, 1, *rng.pick(&[b'Q', b'x', 0, 0xff])],
            3 => vec![0, 3, packet_type::CLIENT_HEARTBEAT, 1, 2],
            4 => vec![0, 1, packet_type::SERVER_HEARTBEAT],
            5 => login_frame("u0", "pw0", "", 1),
            6 => data_frame(b"Mnot an OUCH message"),
            7 => {
                enter.truncate(rng.range_usize(1, enter.len() - 1));
                data_frame(&enter)
            }
            _ => {
                // A control byte in the order token.
                if enter.len() > 1 {
                    enter[1] = 0x01;
                }
                data_frame(&enter)
            }
        }
    }

    /// Hands the client's unsent bytes to the gateway, sometimes cut short
    /// mid-frame (the rest follows in another call, now or next step).
    fn write(&mut self, index: usize, gateway: &mut GatewayCore, step: u64, now_ns: u64) {
        let partial = self.rates.partial_per_million;
        let client = &mut self.clients[index];
        let Some(id) = client.connection else { return };
        if step < client.silent_until_step || client.outbound.is_empty() {
            return;
        }
        let len = client.outbound.len();
        let cut = if len > 1 && client.rng.chance(partial) {
            self.faults.partial_writes += 1;
            client.rng.range_usize(1, len - 1)
        } else {
            len
        };
        let mut sent = 0;
        let mut pieces = vec![(0, cut)];
        if cut < len && client.rng.below(2) == 0 {
            pieces.push((cut, len));
        }
        for (start, end) in pieces {
            let before = gateway.stats();
            // Whether an abandoned connection still holds the session, as
            // the gateway sees it while it handles these bytes.
            let session_taken = client.half_open.is_some_and(|old| gateway.is_open(old));
            let taken = gateway.on_input(id, &client.outbound[start..end], now_ns);
            let after = gateway.stats();
            if after.logins_accepted > before.logins_accepted {
                client.login_log_len = Some(gateway.session_messages(client.session));
            }
            if after.logins_accepted + after.logins_rejected
                > before.logins_accepted + before.logins_rejected
            {
                client.session_taken_at_login = Some(session_taken);
            }
            sent += taken;
            if taken < end - start {
                break;
            }
        }
        client.outbound.drain(..sent);
        if sent > 0 {
            client.last_sent_ns = now_ns;
            if client.outbound.is_empty() {
                client.last_drained_ns = now_ns;
            }
        }
        if client.doomed && client.outbound.is_empty() && client.doomed_since_ns.is_none() {
            client.doomed_since_ns = Some(now_ns);
        }
    }
}

mod receive;
