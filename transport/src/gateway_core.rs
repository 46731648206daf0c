//! `GatewayCore`: everything the gateway decides, with no I/O of its own. It
//! owns the connection table (bounded by `connections_max`), each
//! connection's input and output buffers, the sessions (login, heartbeats,
//! timeouts, the output log every retransmission is served from, open-order
//! and message-rate limits, day-unique tokens), and the translation between
//! OUCH and engine commands and events. An I/O backend (mio or io_uring)
//! only moves bytes: it hands received bytes to [`GatewayCore::on_input`],
//! writes what [`GatewayCore::output_pending`] shows, and closes what
//! [`GatewayCore::close_due`] says. Both backends therefore behave
//! identically, and the core is tested without sockets.
//!
//! Nothing a client does can block the gateway: a client that stops reading
//! fills only its own bounded output buffer (the rest of its messages wait
//! in its session's log) and is disconnected once a heartbeat interval has
//! passed without a byte of it being written; a
//! sequencer that is momentarily full holds back only the connection whose
//! command it refused (its socket is simply not read until the command is
//! taken), which is TCP's own back-pressure.

use crate::event_inbox::{EventInbox, PublishedEvent};
use crate::gateway_config::{GatewayConfig, GatewayConfigError, SessionConfig};
use crate::ouch::{self, Outbound};
use crate::ouch_adapter::{OuchAdapter, SessionContext, Translation};
use crate::ouch_publisher::{OrderLifecycle, OuchPublisher};
use crate::session_output_log::SessionOutputLog;
use crate::soupbintcp::{self, Decoder, LoginRejectReason, Packet, SessionName};
use crate::token_bucket::TokenBucket;
use lockstep_engine::{Command, CommandKind, RejectReason, SessionId, Token};
use std::collections::{HashSet, VecDeque};

/// Why the sequencer did not take a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitRefusal {
    /// Its input queue is full for now; try again.
    Busy,
    /// It is stopping; nothing more will be taken.
    Stopped,
}

/// Where the gateway sends commands: the sequencer's input queue.
pub trait CommandSubmitter: Send {
    fn submit(&mut self, command: Command) -> Result<(), SubmitRefusal>;
}

/// A slot in the connection table.
pub type ConnectionId = usize;

/// Why a connection is being closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent Logout Request.
    Logout,
    /// The peer closed the socket or it failed.
    PeerClosed(String),
    LoginRejected(LoginRejectReason),
    /// No Login Request within `login_timeout_ms`.
    LoginTimeout,
    /// No whole packet from a logged-in client within `idle_timeout_ms`.
    IdleTimeout,
    /// A packet the protocol does not allow here (before login, from the
    /// server's side, a second login).
    Protocol(String),
    /// A frame or OUCH message that cannot be decoded.
    Malformed(String),
    /// Output waited a whole heartbeat interval without a byte of it being
    /// written: the client stopped reading.
    SlowConsumer,
    /// The connection table was full when it arrived.
    TableFull,
    ServerShutdown,
}

impl CloseReason {
    /// Whether the queued output (Login Rejected, End of Session) should be
    /// flushed before the socket is closed.
    pub fn flush_first(&self) -> bool {
        matches!(
            self,
            CloseReason::Logout | CloseReason::LoginRejected(_) | CloseReason::ServerShutdown
        )
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Logout => f.write_str("logout"),
            CloseReason::PeerClosed(why) => write!(f, "peer closed: {why}"),
            CloseReason::LoginRejected(reason) => {
                write!(f, "login rejected '{}'", char::from(reason.as_byte()))
            }
            CloseReason::LoginTimeout => f.write_str("no login within the login timeout"),
            CloseReason::IdleTimeout => f.write_str("no message within the idle timeout"),
            CloseReason::Protocol(why) => write!(f, "protocol violation: {why}"),
            CloseReason::Malformed(why) => write!(f, "malformed input: {why}"),
            CloseReason::SlowConsumer => {
                f.write_str("output waited a heartbeat interval unwritten: client not reading")
            }
            CloseReason::TableFull => f.write_str("connection table full"),
            CloseReason::ServerShutdown => f.write_str("server shutting down"),
        }
    }
}

/// Counters for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayStats {
    pub connections_opened: u64,
    pub connections_refused: u64,
    pub logins_accepted: u64,
    pub logins_rejected: u64,
    pub disconnects: u64,
    pub disconnects_malformed: u64,
    pub disconnects_slow_consumer: u64,
    pub disconnects_timeout: u64,
    pub messages_received: u64,
    pub commands_submitted: u64,
    pub rejects_submitted: u64,
    pub duplicate_tokens_ignored: u64,
    pub submit_busy: u64,
    pub messages_sequenced: u64,
    pub session_cancels_submitted: u64,
}

impl std::ops::AddAssign for GatewayStats {
    /// Sums counters over gateways (the simulator's seeds and restarts).
    fn add_assign(&mut self, other: GatewayStats) {
        let GatewayStats {
            connections_opened,
            connections_refused,
            logins_accepted,
            logins_rejected,
            disconnects,
            disconnects_malformed,
            disconnects_slow_consumer,
            disconnects_timeout,
            messages_received,
            commands_submitted,
            rejects_submitted,
            duplicate_tokens_ignored,
            submit_busy,
            messages_sequenced,
            session_cancels_submitted,
        } = other;
        self.connections_opened += connections_opened;
        self.connections_refused += connections_refused;
        self.logins_accepted += logins_accepted;
        self.logins_rejected += logins_rejected;
        self.disconnects += disconnects;
        self.disconnects_malformed += disconnects_malformed;
        self.disconnects_slow_consumer += disconnects_slow_consumer;
        self.disconnects_timeout += disconnects_timeout;
        self.messages_received += messages_received;
        self.commands_submitted += commands_submitted;
        self.rejects_submitted += rejects_submitted;
        self.duplicate_tokens_ignored += duplicate_tokens_ignored;
        self.submit_busy += submit_busy;
        self.messages_sequenced += messages_sequenced;
        self.session_cancels_submitted += session_cancels_submitted;
    }
}

struct Connection {
    input: Box<[u8]>,
    input_len: usize,
    output: Box<[u8]>,
    output_start: usize,
    output_end: usize,
    session: Option<usize>,
    /// The number of the next sequenced message this connection is sent.
    /// Messages the output buffer has no room for wait in the session's
    /// log, after login as later (a burst bigger than the buffer is not a
    /// slow client); `on_tick` decides when a client is not reading.
    next_message: u64,
    opened_ns: u64,
    last_received_ns: u64,
    last_sent_ns: u64,
    closing: Option<CloseReason>,
    /// When a closing connection stops waiting for its output to drain: a
    /// client that does not read its Login Rejected or End of Session is
    /// not waited for longer than a heartbeat interval.
    flush_deadline_ns: Option<u64>,
    /// A command the sequencer refused for now; nothing more is read from
    /// this connection until it is taken.
    pending: Option<Command>,
}

impl Connection {
    fn output_room(&self) -> usize {
        self.output.len() - self.output_end + self.output_start
    }

    /// Appends `bytes`, compacting first if needed; the caller checked room.
    fn append_output(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.len() <= self.output_room());
        if self.output.len() - self.output_end < bytes.len() {
            self.output
                .copy_within(self.output_start..self.output_end, 0);
            self.output_end -= self.output_start;
            self.output_start = 0;
        }
        self.output[self.output_end..self.output_end + bytes.len()].copy_from_slice(bytes);
        self.output_end += bytes.len();
    }
}

struct SessionState {
    config: SessionConfig,
    id: SessionId,
    firm: ouch::Firm,
    log: SessionOutputLog,
    connection: Option<ConnectionId>,
    live_orders: u32,
    new_in_flight: u32,
    tokens: HashSet<Token>,
    bucket: TokenBucket,
}

/// The gateway's state and decisions.
pub struct GatewayCore {
    config: GatewayConfig,
    decoder: Decoder,
    adapter: OuchAdapter,
    publisher: OuchPublisher,
    sessions: Vec<SessionState>,
    connections: Vec<Option<Connection>>,
    submitter: Box<dyn CommandSubmitter>,
    /// Cancel-on-disconnect commands the sequencer has not taken yet.
    pending_session_cancels: VecDeque<SessionId>,
    session_name: SessionName,
    last_seq: u64,
    rebuilding: bool,
    fatal: Option<String>,
    stats: GatewayStats,
    frame_scratch: Vec<u8>,
}

/// The largest frame the gateway sends: a Replaced in Sequenced Data.
const OUTBOUND_FRAME_MAX: usize = soupbintcp::HEADER_LEN + ouch::message_len::REPLACED;

impl GatewayCore {
    /// A gateway on `config`, sending commands to `submitter`. It starts in
    /// rebuild mode: feed it the journal with [`Self::replay_command`] and
    /// [`Self::publish`], then call [`Self::finish_rebuild`].
    pub fn new(
        config: GatewayConfig,
        submitter: Box<dyn CommandSubmitter>,
        now_ns: u64,
    ) -> Result<GatewayCore, GatewayConfigError> {
        config.validate()?;
        let symbols = config.stock_symbols();
        let symbol_by_instrument = config.symbol_by_instrument();
        let sessions: Vec<SessionState> = config
            .sessions
            .iter()
            .enumerate()
            .map(|(index, session)| SessionState {
                config: session.clone(),
                id: SessionId(index as u16),
                firm: ouch::Firm::left(&session.firm).unwrap_or(ouch::Firm::BLANK),
                log: SessionOutputLog::new(config.output_log_messages_max),
                connection: None,
                live_orders: 0,
                new_in_flight: 0,
                tokens: HashSet::new(),
                bucket: TokenBucket::new(
                    session.messages_per_second_max,
                    session.messages_burst_max,
                    now_ns,
                ),
            })
            .collect();
        let firms = sessions.iter().map(|session| session.firm).collect();
        let mut connections = Vec::with_capacity(config.connections_max);
        connections.resize_with(config.connections_max, || None);
        Ok(GatewayCore {
            decoder: Decoder::new(config.packet_len_max),
            adapter: OuchAdapter::new(symbols),
            publisher: OuchPublisher::new(symbol_by_instrument, firms),
            session_name: SessionName::right(&config.session_name).unwrap_or(SessionName::BLANK),
            sessions,
            connections,
            submitter,
            pending_session_cancels: VecDeque::new(),
            last_seq: 0,
            rebuilding: true,
            fatal: None,
            stats: GatewayStats::default(),
            frame_scratch: Vec::with_capacity(OUTBOUND_FRAME_MAX),
            config,
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    pub fn stats(&self) -> GatewayStats {
        self.stats
    }

    /// Set when the gateway cannot go on (a session's output log is full):
    /// the server must stop rather than drop a sequenced message.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// The last seq whose events were published here.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Sequenced messages session `session` has been sent so far.
    pub fn session_messages(&self, session: usize) -> u64 {
        self.sessions.get(session).map_or(0, |s| s.log.len())
    }

    /// One message of a session's output log (1-based), for tests and tools.
    pub fn session_message(&self, session: usize, number: u64) -> Option<&[u8]> {
        self.sessions.get(session)?.log.message(number)
    }

    /// Live orders plus unanswered Enter Orders of a session.
    pub fn session_open_orders(&self, session: usize) -> u32 {
        self.sessions
            .get(session)
            .map_or(0, |s| s.live_orders + s.new_in_flight)
    }

    // ----- rebuild ---------------------------------------------------------

    /// During rebuild: a journaled command, so the day-unique token sets
    /// come back exactly as they were.
    pub fn replay_command(&mut self, command: &Command) {
        assert!(self.rebuilding, "replay_command is for the rebuild only");
        Self::remember_tokens(&mut self.sessions, command);
    }

    /// Ends the rebuild: live traffic may start.
    pub fn finish_rebuild(&mut self) {
        self.rebuilding = false;
        for session in &mut self.sessions {
            session.new_in_flight = 0;
        }
    }

    fn remember_tokens(sessions: &mut [SessionState], command: &Command) {
        let (session, token) = match command {
            Command::New(order) => (order.session, order.token),
            Command::Replace(replace) => (replace.session, replace.new_token),
            _ => return,
        };
        if let Some(state) = sessions.get_mut(usize::from(session.0)) {
            state.tokens.insert(token);
        }
    }

    // ----- events from the engine ------------------------------------------

    /// Publishes one event: its OUCH messages are appended to their
    /// sessions' logs. Connections are filled by [`Self::fill_outputs`].
    pub fn publish(&mut self, published: &PublishedEvent) {
        assert!(
            published.seq >= self.last_seq,
            "events must arrive in seq order: {} after {}",
            published.seq,
            self.last_seq
        );
        self.last_seq = published.seq;
        let GatewayCore {
            publisher,
            sessions,
            fatal,
            stats,
            frame_scratch,
            rebuilding,
            ..
        } = self;
        let mut emit = |session: SessionId, message: &Outbound| {
            let Some(state) = sessions.get_mut(usize::from(session.0)) else {
                return;
            };
            frame_scratch.clear();
            message.encode(frame_scratch);
            if let Err(full) = state.log.append(frame_scratch) {
                if fatal.is_none() {
                    *fatal = Some(format!(
                        "session {}: output log full ({} messages); stopping rather than drop a sequenced message",
                        state.config.username, full.messages_max
                    ));
                }
            } else {
                stats.messages_sequenced += 1;
            }
        };
        let mut lifecycle_changes: [(SessionId, OrderLifecycle); 8] =
            [(SessionId(0), OrderLifecycle::Opened); 8];
        let mut change_count = 0;
        let mut lifecycle = |session: SessionId, change: OrderLifecycle| {
            // One event changes at most four order counts (a fill: the
            // taker's and the maker's); the array has room to spare.
            lifecycle_changes[change_count] = (session, change);
            change_count += 1;
        };
        publisher.publish(published, &mut emit, &mut lifecycle);
        for &(session, change) in &lifecycle_changes[..change_count] {
            let Some(state) = sessions.get_mut(usize::from(session.0)) else {
                continue;
            };
            match change {
                OrderLifecycle::NewAnswered => {
                    if !*rebuilding {
                        state.new_in_flight = state.new_in_flight.saturating_sub(1);
                    }
                }
                OrderLifecycle::Opened => state.live_orders += 1,
                OrderLifecycle::Closed => state.live_orders = state.live_orders.saturating_sub(1),
            }
        }
    }

    /// Publishes up to `batch_max` events from the inbox, then queues the
    /// new messages to every connection. Returns how many were published.
    pub fn drain_inbox(&mut self, inbox: &EventInbox, batch_max: usize) -> usize {
        let mut published = 0;
        while published < batch_max {
            let Some(event) = inbox.pop() else { break };
            self.publish(&event);
            published += 1;
        }
        if published > 0 {
            self.fill_outputs();
        }
        published
    }

    /// Queues every logged-in connection's pending messages, as far as its
    /// output buffer allows.
    pub fn fill_outputs(&mut self) {
        for id in 0..self.connections.len() {
            self.fill_output(id);
        }
    }

    fn fill_output(&mut self, id: ConnectionId) {
        let Some(connection) = self.connections[id].as_mut() else {
            return;
        };
        if connection.closing.is_some() {
            return;
        }
        let Some(session_index) = connection.session else {
            return;
        };
        let log = &self.sessions[session_index].log;
        while connection.next_message <= log.len() {
            let Some(message) = log.message(connection.next_message) else {
                break;
            };
            let frame_len = soupbintcp::HEADER_LEN + message.len();
            if connection.output_room() < frame_len {
                return;
            }
            let mut header = [0u8; soupbintcp::HEADER_LEN];
            // The header of a message that fits the buffer always encodes.
            let _ = soupbintcp::encode_data_header(
                soupbintcp::packet_type::SEQUENCED_DATA,
                message.len(),
                &mut header,
            );
            connection.append_output(&header);
            connection.append_output(message);
            connection.next_message += 1;
        }
    }

    // ----- connections -------------------------------------------------------

    /// A new connection; `None` if the table is full (close the socket).
    pub fn open_connection(&mut self, now_ns: u64) -> Option<ConnectionId> {
        let Some(id) = self.connections.iter().position(Option::is_none) else {
            self.stats.connections_refused += 1;
            return None;
        };
        let input_len = usize::from(self.config.packet_len_max) + soupbintcp::LENGTH_PREFIX;
        self.connections[id] = Some(Connection {
            // Room for a few whole packets, so one read takes several.
            input: vec![0u8; input_len.max(4096) * 2].into_boxed_slice(),
            input_len: 0,
            output: vec![0u8; self.config.output_buffer_bytes_max].into_boxed_slice(),
            output_start: 0,
            output_end: 0,
            session: None,
            next_message: 1,
            opened_ns: now_ns,
            last_received_ns: now_ns,
            last_sent_ns: now_ns,
            closing: None,
            flush_deadline_ns: None,
            pending: None,
        });
        self.stats.connections_opened += 1;
        Some(id)
    }

    pub fn is_open(&self, id: ConnectionId) -> bool {
        self.connections.get(id).is_some_and(Option::is_some)
    }

    /// The slots in use.
    pub fn open_connections(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.connections
            .iter()
            .enumerate()
            .filter_map(|(id, connection)| connection.as_ref().map(|_| id))
    }

    /// Whether a command of the connection waits for the sequencer to take
    /// it (input behind it waits unread).
    pub fn is_held_back(&self, id: ConnectionId) -> bool {
        self.connections
            .get(id)
            .and_then(Option::as_ref)
            .is_some_and(|connection| connection.pending.is_some())
    }

    /// Bytes the connection's input buffer can take now; 0 once it is
    /// closing. While a command waits for the sequencer the buffer is not
    /// drained, so it fills and the backend stops reading the socket:
    /// TCP's own back-pressure.
    pub fn input_room(&self, id: ConnectionId) -> usize {
        match self.connections.get(id).and_then(Option::as_ref) {
            Some(connection) if connection.closing.is_none() => {
                connection.input.len() - connection.input_len
            }
            _ => 0,
        }
    }

    /// Received bytes; returns how many were taken (at most `input_room`).
    pub fn on_input(&mut self, id: ConnectionId, bytes: &[u8], now_ns: u64) -> usize {
        let room = self.input_room(id);
        let taken = bytes.len().min(room);
        if taken == 0 {
            return 0;
        }
        if let Some(connection) = self.connections[id].as_mut() {
            connection.input[connection.input_len..connection.input_len + taken]
                .copy_from_slice(&bytes[..taken]);
            connection.input_len += taken;
        }
        self.process_input(id, now_ns);
        taken
    }

    fn process_input(&mut self, id: ConnectionId, now_ns: u64) {
        let Some(connection) = self.connections[id].as_mut() else {
            return;
        };
        if connection.pending.is_some() || connection.closing.is_some() {
            return;
        }
        // Take the buffer out so packets can borrow it while `self` changes.
        let input = std::mem::take(&mut connection.input);
        let input_len = connection.input_len;
        let mut consumed = 0;
        // Each pass consumes one whole packet or stops, so the loop is
        // bounded by the bytes buffered.
        while consumed < input_len {
            match self.decoder.decode(&input[consumed..input_len]) {
                Ok(None) => break,
                Ok(Some((packet, len))) => {
                    consumed += len;
                    if let Some(connection) = self.connections[id].as_mut() {
                        connection.last_received_ns = now_ns;
                    }
                    self.on_packet(id, packet, now_ns);
                    let Some(connection) = self.connections[id].as_ref() else {
                        break;
                    };
                    if connection.pending.is_some() || connection.closing.is_some() {
                        break;
                    }
                }
                Err(error) => {
                    self.close(id, CloseReason::Malformed(error.to_string()));
                    consumed = input_len;
                    break;
                }
            }
        }
        if let Some(connection) = self.connections[id].as_mut() {
            let mut input = input;
            input.copy_within(consumed..input_len, 0);
            connection.input = input;
            connection.input_len = input_len - consumed;
        }
        self.fill_output(id);
    }

    fn close(&mut self, id: ConnectionId, reason: CloseReason) {
        if let Some(connection) = self.connections[id].as_mut() {
            if connection.closing.is_none() {
                tracing::info!(connection = id, %reason, "closing connection");
                connection.closing = Some(reason);
            }
        }
    }

    fn queue_packet(&mut self, id: ConnectionId, packet: &Packet<'_>, now_ns: u64) {
        let Some(connection) = self.connections[id].as_mut() else {
            return;
        };
        let mut frame = [0u8; 64];
        let Ok(len) = packet.encode_into(&mut frame) else {
            return;
        };
        if connection.output_room() < len {
            connection.closing.get_or_insert(CloseReason::SlowConsumer);
            return;
        }
        connection.append_output(&frame[..len]);
        connection.last_sent_ns = now_ns;
    }

    fn on_packet(&mut self, id: ConnectionId, packet: Packet<'_>, now_ns: u64) {
        let logged_in = self.connections[id]
            .as_ref()
            .and_then(|connection| connection.session);
        match (packet, logged_in) {
            (Packet::LoginRequest { .. }, Some(_)) => {
                self.close(id, CloseReason::Protocol("a second Login Request".into()))
            }
            (
                Packet::LoginRequest {
                    username,
                    password,
                    requested_session,
                    requested_sequence_number,
                },
                None,
            ) => self.on_login(
                id,
                (&username, &password, &requested_session),
                requested_sequence_number,
                now_ns,
            ),
            (Packet::Debug(_), _) => {}
            (Packet::ClientHeartbeat, Some(_)) => {}
            (Packet::LogoutRequest, Some(_)) => self.close(id, CloseReason::Logout),
            (Packet::UnsequencedData(payload), Some(session)) => {
                self.on_ouch(id, session, payload, now_ns)
            }
            (other, None) if other.is_from_client() => self.close(
                id,
                CloseReason::Protocol(format!(
                    "packet '{}' before login",
                    char::from(other.packet_type())
                )),
            ),
            (other, _) => self.close(
                id,
                CloseReason::Protocol(format!(
                    "packet '{}' is not sent by clients",
                    char::from(other.packet_type())
                )),
            ),
        }
    }

    fn on_login(
        &mut self,
        id: ConnectionId,
        (username, password, requested_session): (
            &soupbintcp::Username,
            &soupbintcp::Password,
            &SessionName,
        ),
        requested_sequence_number: u64,
        now_ns: u64,
    ) {
        let found = self.sessions.iter().position(|session| {
            session.config.username.as_bytes() == username.trimmed()
                && session.config.password.as_bytes() == password.trimmed()
        });
        let reject = match found {
            None => Some(LoginRejectReason::NotAuthorized),
            Some(_)
                if !requested_session.is_blank()
                    && requested_session.trimmed() != self.session_name.trimmed() =>
            {
                Some(LoginRejectReason::SessionNotAvailable)
            }
            // One connection per session: a second login while the first is
            // open is refused rather than silently taking the session over.
            Some(index) if self.sessions[index].connection.is_some() => {
                Some(LoginRejectReason::SessionNotAvailable)
            }
            Some(_) => None,
        };
        if let Some(reason) = reject {
            self.stats.logins_rejected += 1;
            tracing::info!(connection = id, username = ?username, "login rejected");
            self.queue_packet(id, &Packet::LoginRejected(reason), now_ns);
            self.close(id, CloseReason::LoginRejected(reason));
            return;
        }
        let index = found.unwrap_or_default();
        let log_len = self.sessions[index].log.len();
        let next_message =
            if requested_sequence_number == 0 || requested_sequence_number > log_len + 1 {
                log_len + 1
            } else {
                requested_sequence_number
            };
        self.queue_packet(
            id,
            &Packet::LoginAccepted {
                session: self.session_name,
                sequence_number: next_message,
            },
            now_ns,
        );
        self.sessions[index].connection = Some(id);
        if let Some(connection) = self.connections[id].as_mut() {
            connection.session = Some(index);
            connection.next_message = next_message;
        }
        self.stats.logins_accepted += 1;
        tracing::info!(
            connection = id,
            session = %self.sessions[index].config.username,
            next_message,
            "login accepted"
        );
    }

    fn on_ouch(&mut self, id: ConnectionId, session_index: usize, payload: &[u8], now_ns: u64) {
        self.stats.messages_received += 1;
        let session = &mut self.sessions[session_index];
        let context = SessionContext {
            session: session.id,
            account: session.config.account,
            firm: session.firm,
        };
        let command = match self.adapter.translate(&context, payload) {
            Translation::Malformed(why) => {
                self.close(id, CloseReason::Malformed(why.to_string()));
                return;
            }
            Translation::Command(command) => command,
        };
        let session = &mut self.sessions[session_index];
        let reject_with = |reason: RejectReason| -> Command {
            let (token, kind) = match command {
                Command::New(order) => (order.token, CommandKind::New),
                Command::Replace(replace) => (replace.token, CommandKind::Replace),
                Command::Cancel(cancel) => (cancel.token, CommandKind::Cancel),
                Command::Reject { token, command, .. } => (token, command),
                _ => (Token::from_u64(0), CommandKind::New),
            };
            Command::Reject {
                session: context.session,
                token,
                command: kind,
                reason,
            }
        };
        let command = if !session.bucket.try_take(now_ns) {
            reject_with(RejectReason::MessageRateExceeded)
        } else {
            match command {
                Command::New(order) => {
                    if session.tokens.contains(&order.token) {
                        // OUCH: an Enter Order with a token already used
                        // today is ignored, silently.
                        self.stats.duplicate_tokens_ignored += 1;
                        return;
                    }
                    if session.live_orders + session.new_in_flight >= session.config.open_orders_max
                    {
                        reject_with(RejectReason::SessionOpenOrdersLimit)
                    } else if session.tokens.len() >= self.config.session_tokens_max {
                        reject_with(RejectReason::TokenTableFull)
                    } else {
                        command
                    }
                }
                Command::Replace(replace) => {
                    if session.tokens.contains(&replace.new_token) {
                        reject_with(RejectReason::DuplicateToken)
                    } else if session.tokens.len() >= self.config.session_tokens_max {
                        reject_with(RejectReason::TokenTableFull)
                    } else {
                        command
                    }
                }
                other => other,
            }
        };
        self.submit_for(id, command);
    }

    /// Submits a connection's command, or parks it if the sequencer is busy.
    fn submit_for(&mut self, id: ConnectionId, command: Command) {
        match self.submitter.submit(command) {
            Ok(()) => {
                self.stats.commands_submitted += 1;
                let session = match command {
                    Command::New(order) => Some(order.session),
                    Command::Reject {
                        session,
                        command: CommandKind::New,
                        ..
                    } => Some(session),
                    _ => None,
                };
                if matches!(command, Command::Reject { .. }) {
                    self.stats.rejects_submitted += 1;
                }
                if let Some(session) = session {
                    if let Some(state) = self.sessions.get_mut(usize::from(session.0)) {
                        state.new_in_flight += 1;
                    }
                }
                Self::remember_tokens(&mut self.sessions, &command);
            }
            Err(SubmitRefusal::Busy) => {
                self.stats.submit_busy += 1;
                if let Some(connection) = self.connections[id].as_mut() {
                    connection.pending = Some(command);
                }
            }
            Err(SubmitRefusal::Stopped) => self.close(id, CloseReason::ServerShutdown),
        }
    }

    // ----- output and closing -------------------------------------------------

    /// Bytes waiting to be written to the connection's socket.
    pub fn output_pending(&self, id: ConnectionId) -> &[u8] {
        match self.connections.get(id).and_then(Option::as_ref) {
            Some(connection) => &connection.output[connection.output_start..connection.output_end],
            None => &[],
        }
    }

    /// `written` bytes of the pending output reached the socket.
    pub fn output_consumed(&mut self, id: ConnectionId, written: usize) {
        let Some(connection) = self.connections.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let pending = connection.output_end - connection.output_start;
        assert!(written <= pending, "wrote more than was pending");
        connection.output_start += written;
        if connection.output_start == connection.output_end {
            connection.output_start = 0;
            connection.output_end = 0;
        }
        if written > 0 {
            // Room appeared: messages waiting in the log can follow.
            self.fill_output(id);
        }
    }

    /// Whether the backend should close the socket now, and why.
    pub fn close_due(&self, id: ConnectionId) -> Option<&CloseReason> {
        let connection = self.connections.get(id)?.as_ref()?;
        let reason = connection.closing.as_ref()?;
        let drained = connection.output_start == connection.output_end;
        (drained || !reason.flush_first()).then_some(reason)
    }

    /// Whether the connection is closing (it may still be flushing).
    pub fn is_closing(&self, id: ConnectionId) -> bool {
        self.connections
            .get(id)
            .and_then(Option::as_ref)
            .is_some_and(|connection| connection.closing.is_some())
    }

    /// The socket is gone (closed by us or by the peer). Frees the slot and
    /// applies cancel-on-disconnect.
    pub fn on_disconnected(&mut self, id: ConnectionId, peer_reason: Option<String>) {
        let Some(connection) = self.connections.get_mut(id).and_then(Option::take) else {
            return;
        };
        let reason = connection
            .closing
            .unwrap_or_else(|| CloseReason::PeerClosed(peer_reason.unwrap_or_default()));
        self.stats.disconnects += 1;
        match reason {
            CloseReason::Malformed(_) | CloseReason::Protocol(_) => {
                self.stats.disconnects_malformed += 1
            }
            CloseReason::SlowConsumer => self.stats.disconnects_slow_consumer += 1,
            CloseReason::IdleTimeout | CloseReason::LoginTimeout => {
                self.stats.disconnects_timeout += 1
            }
            _ => {}
        }
        let Some(session_index) = connection.session else {
            tracing::info!(connection = id, %reason, "connection closed before login");
            return;
        };
        let session = &mut self.sessions[session_index];
        session.connection = None;
        tracing::info!(
            connection = id,
            session = %session.config.username,
            %reason,
            "session disconnected"
        );
        if session.config.cancel_on_disconnect {
            self.pending_session_cancels.push_back(session.id);
            self.submit_session_cancels();
        }
    }

    fn submit_session_cancels(&mut self) {
        // Bounded by the sessions waiting: each is tried once per call.
        for _ in 0..self.pending_session_cancels.len() {
            let Some(session) = self.pending_session_cancels.pop_front() else {
                break;
            };
            match self
                .submitter
                .submit(Command::CancelAllForSession { session })
            {
                Ok(()) => self.stats.session_cancels_submitted += 1,
                Err(SubmitRefusal::Busy) => self.pending_session_cancels.push_back(session),
                Err(SubmitRefusal::Stopped) => {}
            }
        }
    }

    /// Timers and retries; call every few milliseconds and after waking.
    pub fn on_tick(&mut self, now_ns: u64) {
        self.submit_session_cancels();
        let heartbeat_ns = self.config.heartbeat_interval_ms * 1_000_000;
        let idle_ns = self.config.idle_timeout_ms * 1_000_000;
        let login_ns = self.config.login_timeout_ms * 1_000_000;
        for id in 0..self.connections.len() {
            let Some(connection) = self.connections[id].as_mut() else {
                continue;
            };
            if connection.closing.is_some() {
                let deadline = *connection
                    .flush_deadline_ns
                    .get_or_insert(now_ns + heartbeat_ns);
                if now_ns >= deadline {
                    connection.output_start = 0;
                    connection.output_end = 0;
                }
                continue;
            }
            if let Some(command) = connection.pending.take() {
                self.submit_for(id, command);
                if let Some(connection) = self.connections[id]
                    .as_mut()
                    .filter(|connection| connection.pending.is_none())
                {
                    // While the sequencer held the command back the gateway
                    // read nothing more from this client: its silence was
                    // the gateway's own, so the idle clock starts again now.
                    connection.last_received_ns = now_ns;
                    self.process_input(id, now_ns);
                }
            }
            let Some(connection) = self.connections[id].as_ref() else {
                continue;
            };
            if connection.session.is_none() {
                if now_ns.saturating_sub(connection.opened_ns) >= login_ns {
                    self.close(id, CloseReason::LoginTimeout);
                }
                continue;
            }
            // Not while a command waits for the sequencer: the packets the
            // client sent meanwhile wait unread behind it (back-pressure),
            // and closing would drop that command.
            if connection.pending.is_none()
                && now_ns.saturating_sub(connection.last_received_ns) >= idle_ns
            {
                self.close(id, CloseReason::IdleTimeout);
                continue;
            }
            let idle_output = connection.output_start == connection.output_end;
            // A client that took no byte of its waiting output for a whole
            // heartbeat interval would not even see the server's heartbeats
            // in time: it is not reading. A full buffer alone is not enough,
            // since a burst of messages may fill it before a reading client
            // had any chance to take them. The interval is short on purpose:
            // a client that sends but does not read must not be able to
            // grow its session's log for long.
            if !idle_output && now_ns.saturating_sub(connection.last_sent_ns) >= heartbeat_ns {
                self.close(id, CloseReason::SlowConsumer);
                continue;
            }
            if idle_output && now_ns.saturating_sub(connection.last_sent_ns) >= heartbeat_ns {
                self.queue_packet(id, &Packet::ServerHeartbeat, now_ns);
            }
        }
    }

    /// Records that bytes went out (resets the heartbeat timer).
    pub fn note_sent(&mut self, id: ConnectionId, now_ns: u64) {
        if let Some(connection) = self.connections.get_mut(id).and_then(Option::as_mut) {
            connection.last_sent_ns = now_ns;
        }
    }

    /// Clean shutdown: every logged-in client is sent End of Session and
    /// every connection is closed once flushed.
    pub fn begin_shutdown(&mut self, now_ns: u64) {
        for id in 0..self.connections.len() {
            let Some(connection) = self.connections[id].as_ref() else {
                continue;
            };
            if connection.closing.is_some() {
                continue;
            }
            if connection.session.is_some() {
                self.fill_output(id);
                self.queue_packet(id, &Packet::EndOfSession, now_ns);
            }
            self.close(id, CloseReason::ServerShutdown);
        }
    }
}

#[cfg(test)]
mod tests;
