//! The client side of one Lockstep order session over SoupBinTCP 4.0 + OUCH
//! 4.2, as integration tests and the bench tool use it. This module owns the
//! blocking [`Client`] (connect and log in, send OUCH orders as Unsequenced
//! Data, receive and number Sequenced Data, keep the session alive with Client
//! Heartbeats while waiting, log out) and the parts the non-blocking client in
//! [`crate::client_nonblocking`] shares with it: [`ClientConfig`],
//! [`ClientError`], [`ClientMessage`], the login handshake and the bounded read
//! buffer that turns a byte stream into owned messages.
//!
//! Every byte from the server goes through [`soupbintcp::Decoder`] and
//! [`ouch::Outbound::decode`]; nothing the server sends can make the client
//! panic or buffer more than a fixed number of maximum-size frames. A frame
//! the decoder refuses is reported as [`ClientError::Protocol`] and stays
//! reported (the stream cannot be resynchronised after it); an OUCH message
//! that fails to decode is reported once, with its sequence number, and
//! consumed, because its frame boundary is intact.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::ouch;
use crate::soupbintcp::{
    self, packet_type, Decoder, LoginRejectReason, Packet, Password, SessionName, Username,
    HEADER_LEN, LENGTH_PREFIX,
};

/// The heartbeat interval SoupBinTCP prescribes for both sides.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How long connect plus login, and the wait for the server to close after a
/// Logout Request, may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The read buffer holds this many maximum-size frames, so one read system
/// call can bring in many small messages while the memory a server can make
/// us hold stays bounded by `max_packet_len`.
const READ_BUFFER_FRAMES: usize = 8;
/// The longest frame the client sends: an Enter Order (49 bytes) or a Login
/// Request (47 + 2) in its SoupBinTCP envelope.
pub(crate) const MAX_CLIENT_FRAME_LEN: usize = HEADER_LEN + ouch::message_len::ENTER_ORDER;
/// Socket timeouts of zero are refused by the operating system interface, so
/// every bounded wait lasts at least this long.
const MIN_SOCKET_WAIT: Duration = Duration::from_millis(1);
/// A Client Heartbeat on the wire: length 1, type 'R'.
pub(crate) const CLIENT_HEARTBEAT_FRAME: [u8; HEADER_LEN] = [0, 1, packet_type::CLIENT_HEARTBEAT];
/// A Logout Request on the wire: length 1, type 'O'.
const LOGOUT_REQUEST_FRAME: [u8; HEADER_LEN] = [0, 1, packet_type::LOGOUT_REQUEST];
/// A Login Request on the wire: the length field plus its 47 counted bytes.
const LOGIN_REQUEST_FRAME_LEN: usize = LENGTH_PREFIX + soupbintcp::LOGIN_REQUEST_LEN as usize;
/// Waits are capped at a year so that adding one to `Instant::now()` cannot
/// overflow, whatever `Duration` a caller passes.
const LONGEST_WAIT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The instant `wait` from now, with `wait` capped at [`LONGEST_WAIT`].
fn deadline_after(wait: Duration) -> Instant {
    Instant::now() + wait.min(LONGEST_WAIT)
}

/// Where and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The gateway's order port.
    pub addr: SocketAddr,
    /// At most 6 printable ASCII characters.
    pub username: String,
    /// At most 10 printable ASCII characters.
    pub password: String,
    /// At most 10 printable ASCII characters; blank asks for the current session.
    pub requested_session: String,
    /// The next Sequenced Data message wanted; 0 means "from the most recent".
    pub requested_sequence_number: u64,
    /// Send a Client Heartbeat when nothing was sent for this long.
    /// `Duration::ZERO` disables heartbeats (for tests of the server's idle
    /// timeout).
    pub heartbeat_interval: Duration,
    /// The largest SoupBinTCP length field accepted from the server.
    pub max_packet_len: u16,
    /// Bounds TCP connect plus login together, each blocking write, and the
    /// wait for the server to close after a Logout Request.
    pub connect_timeout: Duration,
}

impl ClientConfig {
    /// The current session from its most recent message, 1 s heartbeats,
    /// the decoder's default maximum packet length and a 5 s connect timeout.
    pub fn new(addr: SocketAddr, username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            addr,
            username: username.into(),
            password: password.into(),
            requested_session: String::new(),
            requested_sequence_number: 0,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            max_packet_len: soupbintcp::DEFAULT_MAX_PACKET_LEN,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The Login Request frame for this configuration.
    fn login_request_frame(&self) -> Result<[u8; LOGIN_REQUEST_FRAME_LEN], ClientError> {
        let field_error = |field: &str, width: usize| {
            ClientError::InvalidConfig(format!(
                "{field} must be at most {width} printable ASCII characters"
            ))
        };
        let request = Packet::LoginRequest {
            username: Username::left(&self.username)
                .ok_or_else(|| field_error("username", soupbintcp::USERNAME_LEN))?,
            password: Password::left(&self.password)
                .ok_or_else(|| field_error("password", soupbintcp::PASSWORD_LEN))?,
            // Session names are right-justified, as Login Accepted carries them.
            requested_session: SessionName::right(&self.requested_session)
                .ok_or_else(|| field_error("requested session", soupbintcp::SESSION_LEN))?,
            requested_sequence_number: self.requested_sequence_number,
        };
        let mut frame = [0u8; LOGIN_REQUEST_FRAME_LEN];
        request
            .encode_into(&mut frame)
            .map_err(|e| ClientError::InvalidConfig(format!("Login Request: {e}")))?;
        Ok(frame)
    }
}

// Written by hand so that the password never reaches a log.
impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("addr", &self.addr)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("requested_session", &self.requested_session)
            .field("requested_sequence_number", &self.requested_sequence_number)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("max_packet_len", &self.max_packet_len)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// Why a client call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The configuration cannot be put on the wire (a username longer than
    /// its field, a non-ASCII password, ...).
    InvalidConfig(String),
    /// The server answered the Login Request with Login Rejected.
    LoginRejected(LoginRejectReason),
    /// Nothing arrived (or could be written) within the allowed time.
    Timeout,
    /// The server closed the connection (or reset it).
    Closed,
    /// The server sent End of Session where [`Client::recv_sequenced`]
    /// waited for a Sequenced Data message.
    EndOfSession,
    /// The server sent something the protocol does not allow; the text names
    /// what was wrong.
    Protocol(String),
    /// The non-blocking client's output buffer has no room for the message.
    OutputFull,
    /// Any other socket error.
    Io(io::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig(what) => write!(f, "invalid client configuration: {what}"),
            Self::LoginRejected(LoginRejectReason::NotAuthorized) => {
                write!(f, "login rejected: not authorized")
            }
            Self::LoginRejected(LoginRejectReason::SessionNotAvailable) => {
                write!(f, "login rejected: session not available")
            }
            Self::Timeout => write!(f, "timed out"),
            Self::Closed => write!(f, "the server closed the connection"),
            Self::EndOfSession => write!(f, "the server ended the session"),
            Self::Protocol(what) => write!(f, "protocol violation by the server: {what}"),
            Self::OutputFull => write!(f, "output buffer full"),
            Self::Io(e) => write!(f, "socket error: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Socket timeouts become [`ClientError::Timeout`] and the ways a peer can
/// go away become [`ClientError::Closed`], so callers match on one variant
/// whatever the operating system reported.
impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        use io::ErrorKind as K;
        match e.kind() {
            K::WouldBlock | K::TimedOut => Self::Timeout,
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                Self::Closed
            }
            _ => Self::Io(e),
        }
    }
}

/// One message from the server after login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// A Sequenced Data packet; `sequence_number` is counted from Login
    /// Accepted's number, as SoupBinTCP numbers these packets implicitly.
    Sequenced {
        sequence_number: u64,
        message: ouch::Outbound,
    },
    ServerHeartbeat,
    /// The session is over; the server will not send more on it.
    EndOfSession,
    /// Free-form text the server sent for humans.
    Debug(Vec<u8>),
}

/// One Sequenced Data message, as [`Client::recv_sequenced`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencedMessage {
    pub sequence_number: u64,
    pub message: ouch::Outbound,
}

/// A server packet copied out of the read buffer, so the buffer can move on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerPacket {
    LoginAccepted {
        session: SessionName,
        sequence_number: u64,
    },
    LoginRejected(LoginRejectReason),
    SequencedData(Result<ouch::Outbound, ouch::DecodeError>),
    ServerHeartbeat,
    EndOfSession,
    Debug(Vec<u8>),
}

/// What one read into the [`ReadBuffer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// This many bytes arrived.
    Read(usize),
    /// The peer closed its side: no more bytes will come.
    PeerClosed,
    /// Complete frames fill the buffer; decode some before reading again.
    BufferFull,
}

/// A fixed-size buffer of received bytes and the decoder that cuts them into
/// frames. Its size is a multiple of the largest frame the decoder accepts,
/// so a frame that is still arriving always fits once decoded frames are
/// discarded.
pub(crate) struct ReadBuffer {
    decoder: Decoder,
    bytes: Box<[u8]>,
    /// First byte not decoded yet.
    start: usize,
    /// One past the last byte received.
    end: usize,
}

impl ReadBuffer {
    pub(crate) fn new(max_packet_len: u16) -> Self {
        let decoder = Decoder::new(max_packet_len);
        let largest_frame_len = LENGTH_PREFIX + usize::from(decoder.max_packet_len());
        Self {
            decoder,
            bytes: vec![0; READ_BUFFER_FRAMES * largest_frame_len].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Reads once from `source` into the free space, moving undecoded bytes
    /// to the front first if the tail is full.
    pub(crate) fn fill_from(&mut self, source: &mut impl Read) -> io::Result<Fill> {
        if self.start == self.end {
            // Nothing pending: restarting at the front costs no copy.
            self.start = 0;
            self.end = 0;
        } else if self.end == self.bytes.len() && self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let Some(free) = self
            .bytes
            .get_mut(self.end..)
            .filter(|free| !free.is_empty())
        else {
            return Ok(Fill::BufferFull);
        };
        let read_len = source.read(free)?;
        if read_len == 0 {
            return Ok(Fill::PeerClosed);
        }
        self.end += read_len;
        Ok(Fill::Read(read_len))
    }

    /// Decodes the next buffered packet, `Ok(None)` if no whole one is
    /// buffered. A refused frame is not consumed, so it is reported again on
    /// every call: nothing after it can be trusted.
    pub(crate) fn next_packet(&mut self) -> Result<Option<ServerPacket>, ClientError> {
        let pending = self.bytes.get(self.start..self.end).unwrap_or_default();
        let (packet, frame_len) = match self.decoder.decode(pending) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => return Ok(None),
            Err(e) => return Err(ClientError::Protocol(format!("malformed frame: {e}"))),
        };
        let owned = match packet {
            Packet::LoginAccepted {
                session,
                sequence_number,
            } => ServerPacket::LoginAccepted {
                session,
                sequence_number,
            },
            Packet::LoginRejected(reason) => ServerPacket::LoginRejected(reason),
            Packet::SequencedData(payload) => {
                ServerPacket::SequencedData(ouch::Outbound::decode(payload))
            }
            Packet::ServerHeartbeat => ServerPacket::ServerHeartbeat,
            Packet::EndOfSession => ServerPacket::EndOfSession,
            Packet::Debug(text) => ServerPacket::Debug(text.to_vec()),
            Packet::LoginRequest { .. }
            | Packet::UnsequencedData(_)
            | Packet::ClientHeartbeat
            | Packet::LogoutRequest => {
                return Err(ClientError::Protocol(format!(
                    "the server sent a client packet, type '{}'",
                    packet.packet_type().escape_ascii()
                )));
            }
        };
        self.start += frame_len;
        Ok(Some(owned))
    }
}

/// The session as Login Accepted set it up, and the implicit numbering of
/// Sequenced Data since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionState {
    pub(crate) session: String,
    pub(crate) next_sequence_number: u64,
}

impl SessionState {
    /// Turns a packet received after login into the caller's message,
    /// numbering Sequenced Data.
    pub(crate) fn message_from(
        &mut self,
        packet: ServerPacket,
    ) -> Result<ClientMessage, ClientError> {
        match packet {
            ServerPacket::SequencedData(decoded) => {
                let sequence_number = self.next_sequence_number;
                // Wrapping, not overflowing: a server announcing u64::MAX in
                // Login Accepted must not be able to make the client panic.
                self.next_sequence_number = sequence_number.wrapping_add(1);
                match decoded {
                    Ok(message) => Ok(ClientMessage::Sequenced {
                        sequence_number,
                        message,
                    }),
                    Err(e) => Err(ClientError::Protocol(format!(
                        "Sequenced Data {sequence_number}: {e}"
                    ))),
                }
            }
            ServerPacket::ServerHeartbeat => Ok(ClientMessage::ServerHeartbeat),
            ServerPacket::EndOfSession => Ok(ClientMessage::EndOfSession),
            ServerPacket::Debug(text) => Ok(ClientMessage::Debug(text)),
            ServerPacket::LoginAccepted { .. } => Err(ClientError::Protocol(
                "Login Accepted after the session was logged in".to_string(),
            )),
            ServerPacket::LoginRejected(_) => Err(ClientError::Protocol(
                "Login Rejected after the session was logged in".to_string(),
            )),
        }
    }
}

/// Reads once from a blocking `stream`, waiting at most `wait`. A wait that
/// ends with nothing read is `Ok`: the caller decides whether its deadline
/// has passed.
fn read_with_timeout(
    stream: &mut TcpStream,
    inbox: &mut ReadBuffer,
    wait: Duration,
) -> Result<(), ClientError> {
    stream.set_read_timeout(Some(wait.max(MIN_SOCKET_WAIT)))?;
    match inbox.fill_from(stream) {
        Ok(Fill::Read(_)) => Ok(()),
        Ok(Fill::PeerClosed) => Err(ClientError::Closed),
        // The caller decodes everything buffered before reading, and the
        // buffer holds several maximum-size frames, so this cannot happen;
        // it is still an error rather than a panic or a busy loop.
        Ok(Fill::BufferFull) => Err(ClientError::Protocol(
            "read buffer full of undecoded bytes".to_string(),
        )),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Encodes `message` as the payload of an Unsequenced Data frame at the start
/// of `frame`; `None` if `frame` is too short.
pub(crate) fn encode_unsequenced(message: &ouch::Inbound, frame: &mut [u8]) -> Option<usize> {
    let header_len =
        soupbintcp::encode_data_header(packet_type::UNSEQUENCED_DATA, message.encoded_len(), frame)
            .ok()?;
    let payload_len = message.encode_into(frame.get_mut(header_len..)?).ok()?;
    Some(header_len + payload_len)
}

/// A logged-in session over a blocking socket. Calls block at most for the
/// time they are given (`recv`) or the configured connect timeout (writes,
/// `logout`).
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    inbox: ReadBuffer,
    state: SessionState,
    heartbeat_interval: Duration,
    connect_timeout: Duration,
    last_send_at: Instant,
}

impl fmt::Debug for ReadBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBuffer")
            .field("capacity", &self.bytes.len())
            .field("pending", &(self.end - self.start))
            .finish()
    }
}

/// What [`Client`] hands over to the non-blocking client after login.
pub(crate) struct LoggedIn {
    pub(crate) stream: TcpStream,
    pub(crate) inbox: ReadBuffer,
    pub(crate) state: SessionState,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) last_send_at: Instant,
}

impl Client {
    /// Connects (with TCP_NODELAY), sends the Login Request and waits for the
    /// answer, all within `config.connect_timeout`.
    pub fn connect(config: &ClientConfig) -> Result<Self, ClientError> {
        let login_request = config.login_request_frame()?;
        let connect_timeout = config.connect_timeout.clamp(MIN_SOCKET_WAIT, LONGEST_WAIT);
        let deadline = deadline_after(connect_timeout);
        let mut stream = TcpStream::connect_timeout(&config.addr, connect_timeout)?;
        // Orders are small and latency matters more than packet count.
        stream.set_nodelay(true)?;
        // A server that stops reading must not block a write forever.
        stream.set_write_timeout(Some(connect_timeout))?;
        stream.write_all(&login_request)?;
        let last_send_at = Instant::now();
        let mut inbox = ReadBuffer::new(config.max_packet_len);
        let state = Self::await_login_answer(&mut stream, &mut inbox, deadline)?;
        Ok(Self {
            stream,
            inbox,
            state,
            heartbeat_interval: config.heartbeat_interval,
            connect_timeout,
            last_send_at,
        })
    }

    fn await_login_answer(
        stream: &mut TcpStream,
        inbox: &mut ReadBuffer,
        deadline: Instant,
    ) -> Result<SessionState, ClientError> {
        loop {
            while let Some(packet) = inbox.next_packet()? {
                match packet {
                    ServerPacket::LoginAccepted {
                        session,
                        sequence_number,
                    } => {
                        return Ok(SessionState {
                            session: String::from_utf8_lossy(session.trimmed()).into_owned(),
                            next_sequence_number: sequence_number,
                        })
                    }
                    ServerPacket::LoginRejected(reason) => {
                        return Err(ClientError::LoginRejected(reason))
                    }
                    // Neither says anything about the login; keep waiting.
                    ServerPacket::ServerHeartbeat | ServerPacket::Debug(_) => {}
                    ServerPacket::SequencedData(_) => {
                        return Err(ClientError::Protocol(
                            "Sequenced Data before Login Accepted".to_string(),
                        ))
                    }
                    ServerPacket::EndOfSession => {
                        return Err(ClientError::Protocol(
                            "End of Session before Login Accepted".to_string(),
                        ))
                    }
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClientError::Timeout);
            }
            read_with_timeout(stream, inbox, remaining)?;
        }
    }

    /// The session name from Login Accepted, without its padding.
    pub fn session(&self) -> &str {
        &self.state.session
    }

    /// The number the next Sequenced Data message will carry: Login
    /// Accepted's number plus the messages received since.
    pub fn next_sequence_number(&self) -> u64 {
        self.state.next_sequence_number
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    pub fn send_enter(&mut self, order: &ouch::EnterOrder) -> Result<(), ClientError> {
        self.send_inbound(&ouch::Inbound::EnterOrder(*order))
    }

    pub fn send_replace(&mut self, replace: &ouch::ReplaceOrder) -> Result<(), ClientError> {
        self.send_inbound(&ouch::Inbound::ReplaceOrder(*replace))
    }

    pub fn send_cancel(&mut self, cancel: &ouch::CancelOrder) -> Result<(), ClientError> {
        self.send_inbound(&ouch::Inbound::CancelOrder(*cancel))
    }

    /// Writes `bytes` as they are, framed or not: tests use it to send
    /// malformed input.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.write_frame(bytes)
    }

    pub fn send_heartbeat(&mut self) -> Result<(), ClientError> {
        self.write_frame(&CLIENT_HEARTBEAT_FRAME)
    }

    fn send_inbound(&mut self, message: &ouch::Inbound) -> Result<(), ClientError> {
        let mut frame = [0u8; MAX_CLIENT_FRAME_LEN];
        // The frame buffer fits the longest inbound message, so encoding
        // cannot run out of room.
        let frame_len = encode_unsequenced(message, &mut frame).ok_or(ClientError::OutputFull)?;
        self.write_frame(frame.get(..frame_len).unwrap_or_default())
    }

    fn write_frame(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(frame)?;
        self.last_send_at = Instant::now();
        Ok(())
    }

    /// The next message from the server, waiting at most `timeout`. While it
    /// waits it sends a Client Heartbeat whenever nothing was sent for the
    /// heartbeat interval, so a long wait never gets the session timed out.
    /// A zero `timeout` still reads once what the socket already holds.
    pub fn recv(&mut self, timeout: Duration) -> Result<ClientMessage, ClientError> {
        self.recv_until(deadline_after(timeout))
    }

    /// The next Sequenced Data message, skipping heartbeats and debug text,
    /// waiting at most `timeout` in all. End of Session is
    /// [`ClientError::EndOfSession`].
    pub fn recv_sequenced(&mut self, timeout: Duration) -> Result<SequencedMessage, ClientError> {
        let deadline = deadline_after(timeout);
        loop {
            match self.recv_until(deadline)? {
                ClientMessage::Sequenced {
                    sequence_number,
                    message,
                } => {
                    return Ok(SequencedMessage {
                        sequence_number,
                        message,
                    })
                }
                ClientMessage::EndOfSession => return Err(ClientError::EndOfSession),
                ClientMessage::ServerHeartbeat | ClientMessage::Debug(_) => {}
            }
        }
    }

    fn recv_until(&mut self, deadline: Instant) -> Result<ClientMessage, ClientError> {
        let mut read_attempted = false;
        loop {
            if let Some(packet) = self.inbox.next_packet()? {
                return self.state.message_from(packet);
            }
            let now = Instant::now();
            if read_attempted && now >= deadline {
                return Err(ClientError::Timeout);
            }
            let mut wake_at = deadline;
            if !self.heartbeat_interval.is_zero() {
                let heartbeat_at = self.last_send_at + self.heartbeat_interval.min(LONGEST_WAIT);
                if now >= heartbeat_at {
                    self.send_heartbeat()?;
                    continue;
                }
                wake_at = wake_at.min(heartbeat_at);
            }
            read_attempted = true;
            read_with_timeout(
                &mut self.stream,
                &mut self.inbox,
                wake_at.saturating_duration_since(now),
            )?;
        }
    }

    /// Sends a Logout Request and waits, at most the connect timeout, for the
    /// server to close the connection. Whatever the server sends meanwhile is
    /// discarded.
    pub fn logout(mut self) -> Result<(), ClientError> {
        self.write_frame(&LOGOUT_REQUEST_FRAME)?;
        let deadline = deadline_after(self.connect_timeout);
        let mut discarded = [0u8; 512];
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClientError::Timeout);
            }
            self.stream
                .set_read_timeout(Some(remaining.max(MIN_SOCKET_WAIT)))?;
            match self.stream.read(&mut discarded) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => match ClientError::from(e) {
                    // A reset is the server closing too, only less politely.
                    ClientError::Closed => return Ok(()),
                    // The loop checks the deadline.
                    ClientError::Timeout => {}
                    ClientError::Io(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => return Err(other),
                },
            }
        }
    }

    /// Hands the logged-in connection to the non-blocking client.
    pub(crate) fn into_logged_in(self) -> LoggedIn {
        LoggedIn {
            stream: self.stream,
            inbox: self.inbox,
            state: self.state,
            heartbeat_interval: self.heartbeat_interval,
            last_send_at: self.last_send_at,
        }
    }
}

/// A scripted stand-in for the gateway, shared by the tests of both clients.
#[cfg(test)]
pub(crate) mod fake_server {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};
    use std::thread::{self, JoinHandle};

    /// The server end of one client connection.
    pub(crate) struct FakeConnection {
        stream: TcpStream,
        received: Vec<u8>,
    }

    impl FakeConnection {
        /// The next whole frame the client sent, `None` if the client closed
        /// or `wait` passed first.
        pub(crate) fn read_frame(&mut self, wait: Duration) -> Option<Vec<u8>> {
            let deadline = Instant::now() + wait;
            loop {
                match soupbintcp::decode(&self.received) {
                    Ok(Some((_, frame_len))) => {
                        return Some(self.received.drain(..frame_len).collect())
                    }
                    Ok(None) => {}
                    Err(e) => panic!("the client sent a malformed frame: {e}"),
                }
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return None;
                }
                self.stream.set_read_timeout(Some(remaining)).ok()?;
                let mut chunk = [0u8; 1024];
                match self.stream.read(&mut chunk) {
                    Ok(0) => return None,
                    Ok(n) => self.received.extend_from_slice(&chunk[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return None,
                }
            }
        }

        /// Reads the Login Request and answers Login Accepted; returns the
        /// request's fields.
        pub(crate) fn accept_login(
            &mut self,
            session: &str,
            sequence_number: u64,
        ) -> (Username, Password, SessionName, u64) {
            let frame = self
                .read_frame(Duration::from_secs(2))
                .expect("login request");
            let Ok(Some((
                Packet::LoginRequest {
                    username,
                    password,
                    requested_session,
                    requested_sequence_number,
                },
                _,
            ))) = soupbintcp::decode(&frame)
            else {
                panic!("expected a Login Request, got {frame:?}");
            };
            self.send(&Packet::LoginAccepted {
                session: SessionName::right(session).expect("session name"),
                sequence_number,
            });
            (
                username,
                password,
                requested_session,
                requested_sequence_number,
            )
        }

        pub(crate) fn send(&mut self, packet: &Packet<'_>) {
            let mut frame = Vec::new();
            packet.encode(&mut frame).expect("encodes");
            self.send_bytes(&frame);
        }

        pub(crate) fn send_sequenced(&mut self, message: &ouch::Outbound) {
            let mut payload = Vec::new();
            message.encode(&mut payload);
            self.send(&Packet::SequencedData(&payload));
        }

        pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).expect("server write");
        }
    }

    /// Listens on 127.0.0.1:0 and runs `script` on the first connection in a
    /// thread; join the handle to see the script's assertions.
    pub(crate) fn spawn(
        script: impl FnOnce(FakeConnection) + Send + 'static,
    ) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            script(FakeConnection {
                stream,
                received: Vec::new(),
            });
        });
        (addr, handle)
    }

    /// A configuration with short timers, so tests stay fast.
    pub(crate) fn config(addr: SocketAddr) -> ClientConfig {
        let mut config = ClientConfig::new(addr, "demo1", "demo1pass");
        config.heartbeat_interval = Duration::from_millis(200);
        config.connect_timeout = Duration::from_secs(2);
        config
    }

    pub(crate) fn token(text: &str) -> ouch::Token {
        ouch::Token::left(text).expect("token")
    }

    pub(crate) fn enter_order() -> ouch::EnterOrder {
        ouch::EnterOrder {
            token: token("ORD00000000001"),
            side: ouch::Side::Buy,
            shares: 100,
            stock: ouch::Stock::left("AAPL").expect("stock"),
            price: 1_500_000,
            time_in_force: ouch::TIF_MARKET_HOURS,
            firm: ouch::Firm::left("LOCK").expect("firm"),
            display: ouch::Display::AnonymousPriceToComply,
            capacity: ouch::Capacity::Agency,
            intermarket_sweep: ouch::IntermarketSweep::NotEligible,
            minimum_quantity: 0,
            cross_type: ouch::CrossType::NoCross,
            customer_type: ouch::CustomerType::PortDefault,
        }
    }

    pub(crate) fn accepted(
        order: &ouch::EnterOrder,
        order_reference_number: u64,
    ) -> ouch::Outbound {
        ouch::Outbound::Accepted(ouch::Accepted {
            timestamp: 34_200_000_000_000,
            token: order.token,
            side: order.side,
            shares: order.shares,
            stock: order.stock,
            price: order.price,
            time_in_force: order.time_in_force,
            firm: order.firm,
            display: order.display,
            order_reference_number,
            capacity: order.capacity,
            intermarket_sweep: order.intermarket_sweep,
            minimum_quantity: order.minimum_quantity,
            cross_type: order.cross_type,
            order_state: ouch::OrderState::Live,
            bbo_weight: ouch::BboWeight::Unspecified,
        })
    }

    pub(crate) fn canceled(token_text: &str, decrement_shares: u32) -> ouch::Outbound {
        ouch::Outbound::Canceled(ouch::Canceled {
            timestamp: 34_200_000_000_001,
            token: token(token_text),
            decrement_shares,
            reason: ouch::CancelReason::UserRequested,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fake_server::{self, accepted, canceled, enter_order, token, FakeConnection};
    use super::*;
    use proptest::prelude::*;

    const WAIT: Duration = Duration::from_secs(2);

    fn decoded(frame: &[u8]) -> Packet<'_> {
        soupbintcp::decode(frame)
            .expect("well-formed frame")
            .expect("whole frame")
            .0
    }

    #[test]
    fn login_accepted_records_session_and_sequence_number() {
        let (addr, server) = fake_server::spawn(|mut conn| {
            let (username, password, requested_session, requested_sequence_number) =
                conn.accept_login("SESS01", 42);
            assert_eq!(username, Username::left("demo1").unwrap());
            assert_eq!(password, Password::left("demo1pass").unwrap());
            assert!(requested_session.is_blank());
            assert_eq!(requested_sequence_number, 0);
            // Hold the connection until the client is done with it.
            conn.read_frame(WAIT);
        });
        let client = Client::connect(&fake_server::config(addr)).expect("login");
        assert_eq!(client.session(), "SESS01");
        assert_eq!(client.next_sequence_number(), 42);
        drop(client);
        server.join().expect("fake server");
    }

    #[test]
    fn requested_session_and_sequence_number_go_on_the_wire() {
        let (addr, server) = fake_server::spawn(|mut conn| {
            let (_, _, requested_session, requested_sequence_number) =
                conn.accept_login("SESS02", 7);
            assert_eq!(requested_session, SessionName::right("SESS02").unwrap());
            assert_eq!(requested_sequence_number, 7);
        });
        let mut config = fake_server::config(addr);
        config.requested_session = "SESS02".to_string();
        config.requested_sequence_number = 7;
        let client = Client::connect(&config).expect("login");
        assert_eq!(client.next_sequence_number(), 7);
        server.join().expect("fake server");
    }

    #[test]
    fn login_rejected_surfaces_the_reason() {
        for reason in [
            LoginRejectReason::NotAuthorized,
            LoginRejectReason::SessionNotAvailable,
        ] {
            let (addr, server) = fake_server::spawn(move |mut conn| {
                let request = conn.read_frame(WAIT).expect("login request");
                assert!(matches!(decoded(&request), Packet::LoginRequest { .. }));
                conn.send(&Packet::LoginRejected(reason));
            });
            match Client::connect(&fake_server::config(addr)) {
                Err(ClientError::LoginRejected(got)) => assert_eq!(got, reason),
                other => panic!("expected Login Rejected, got {other:?}"),
            }
            server.join().expect("fake server");
        }
    }

    #[test]
    fn credentials_too_long_for_their_fields_are_refused_before_connecting() {
        // Nothing listens on this address; the check must come first.
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let config = ClientConfig::new(addr, "toolongname", "pw");
        assert!(matches!(
            Client::connect(&config),
            Err(ClientError::InvalidConfig(text)) if text.contains("username")
        ));
    }

    #[test]
    fn sequenced_messages_are_numbered_from_the_login_number() {
        let order = enter_order();
        let (addr, server) = fake_server::spawn(move |mut conn| {
            conn.accept_login("SESS01", 42);
            conn.send(&Packet::ServerHeartbeat);
            conn.send(&Packet::Debug(b"hello"));
            conn.send_sequenced(&accepted(&order, 1));
            conn.send(&Packet::ServerHeartbeat);
            conn.send_sequenced(&canceled("ORD00000000001", 100));
            conn.send(&Packet::EndOfSession);
            conn.read_frame(WAIT);
        });
        let mut client = Client::connect(&fake_server::config(addr)).expect("login");
        assert_eq!(client.recv(WAIT).unwrap(), ClientMessage::ServerHeartbeat);
        assert_eq!(
            client.recv(WAIT).unwrap(),
            ClientMessage::Debug(b"hello".to_vec())
        );
        assert_eq!(
            client.recv(WAIT).unwrap(),
            ClientMessage::Sequenced {
                sequence_number: 42,
                message: accepted(&order, 1)
            }
        );
        // recv_sequenced skips the heartbeat in between.
        assert_eq!(
            client.recv_sequenced(WAIT).unwrap(),
            SequencedMessage {
                sequence_number: 43,
                message: canceled("ORD00000000001", 100)
            }
        );
        assert_eq!(client.next_sequence_number(), 44);
        assert!(matches!(
            client.recv_sequenced(WAIT),
            Err(ClientError::EndOfSession)
        ));
        drop(client);
        server.join().expect("fake server");
    }

    #[test]
    fn orders_reach_the_server_as_unsequenced_data() {
        let order = enter_order();
        let replace = ouch::ReplaceOrder {
            existing_token: token("ORD00000000001"),
            replacement_token: token("ORD00000000002"),
            shares: 80,
            price: 1_499_900,
            time_in_force: ouch::TIF_MARKET_HOURS,
            display: ouch::Display::AnonymousPriceToComply,
            intermarket_sweep: ouch::IntermarketSweep::NotEligible,
            minimum_quantity: 0,
        };
        let cancel = ouch::CancelOrder {
            token: token("ORD00000000002"),
            shares: 0,
        };
        let (addr, server) = fake_server::spawn(move |mut conn| {
            conn.accept_login("SESS01", 1);
            let expected = [
                ouch::Inbound::EnterOrder(order),
                ouch::Inbound::ReplaceOrder(replace),
                ouch::Inbound::CancelOrder(cancel),
            ];
            for message in expected {
                let frame = conn.read_frame(WAIT).expect("order frame");
                let Packet::UnsequencedData(payload) = decoded(&frame) else {
                    panic!("expected Unsequenced Data, got {frame:?}");
                };
                assert_eq!(ouch::Inbound::decode(payload), Ok(message));
            }
            let raw = conn.read_frame(WAIT).expect("raw frame");
            assert_eq!(raw, [0, 1, packet_type::CLIENT_HEARTBEAT]);
            let logout = conn.read_frame(WAIT).expect("logout request");
            assert_eq!(decoded(&logout), Packet::LogoutRequest);
            // Dropping the connection closes it, which ends the client's logout.
        });
        let mut client = Client::connect(&fake_server::config(addr)).expect("login");
        client.send_enter(&order).unwrap();
        client.send_replace(&replace).unwrap();
        client.send_cancel(&cancel).unwrap();
        client.send_raw(&CLIENT_HEARTBEAT_FRAME).unwrap();
        client
            .logout()
            .expect("logout ends with the server closing");
        server.join().expect("fake server");
    }

    #[test]
    fn an_idle_client_sends_heartbeats_while_it_waits() {
        let order = enter_order();
        let (addr, server) = fake_server::spawn(move |mut conn| {
            conn.accept_login("SESS01", 1);
            let silence_started = Instant::now();
            let frame = conn
                .read_frame(Duration::from_millis(1500))
                .expect("a heartbeat within 1.5 s of silence");
            assert_eq!(decoded(&frame), Packet::ClientHeartbeat);
            assert!(silence_started.elapsed() < Duration::from_millis(1500));
            // A second one proves the timer restarts after each heartbeat.
            let frame = conn
                .read_frame(Duration::from_millis(1500))
                .expect("a second heartbeat");
            assert_eq!(decoded(&frame), Packet::ClientHeartbeat);
            conn.send_sequenced(&accepted(&order, 9));
            conn.read_frame(WAIT);
        });
        let mut client = Client::connect(&fake_server::config(addr)).expect("login");
        let reply = client.recv_sequenced(Duration::from_secs(3)).unwrap();
        assert_eq!(reply.sequence_number, 1);
        drop(client);
        server.join().expect("fake server");
    }

    #[test]
    fn silence_past_the_timeout_is_a_timeout() {
        let (addr, server) = fake_server::spawn(|mut conn| {
            conn.accept_login("SESS01", 1);
            conn.read_frame(WAIT);
        });
        let mut client = Client::connect(&fake_server::config(addr)).expect("login");
        let started = Instant::now();
        assert!(matches!(
            client.recv(Duration::from_millis(50)),
            Err(ClientError::Timeout)
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(
            client.recv(Duration::ZERO),
            Err(ClientError::Timeout)
        ));
        drop(client);
        server.join().expect("fake server");
    }

    /// Logs in, lets the server send `bytes`, and returns what `recv` made
    /// of them.
    fn recv_after_server_sends(bytes: &'static [u8]) -> Result<ClientMessage, ClientError> {
        let (addr, server) = fake_server::spawn(move |mut conn: FakeConnection| {
            conn.accept_login("SESS01", 1);
            conn.send_bytes(bytes);
            conn.read_frame(WAIT);
        });
        let mut client = Client::connect(&fake_server::config(addr)).expect("login");
        let result = client.recv(WAIT);
        drop(client);
        server.join().expect("fake server");
        result
    }

    #[test]
    fn garbage_from_the_server_is_a_protocol_error_naming_the_fault() {
        let cases: [(&'static [u8], &str); 6] = [
            (b"\x00\x01X", "unknown SoupBinTCP packet type"),
            (b"\xff\xff", "exceeds maximum"),
            (b"\x00\x00", "length 0"),
            (b"\x00\x02Hx", "has length 2, expected 1"),
            (
                b"\x00\x02SQ",
                "Sequenced Data 1: unknown OUCH message type 'Q'",
            ),
            (b"\x00\x01R", "client packet, type 'R'"),
        ];
        for (bytes, expected_text) in cases {
            match recv_after_server_sends(bytes) {
                Err(ClientError::Protocol(text)) => {
                    assert!(text.contains(expected_text), "{bytes:?}: {text}")
                }
                other => panic!("{bytes:?}: expected a protocol error, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_refused_frame_keeps_being_reported() {
        let (addr, server) = fake_server::spawn(|mut conn| {
            conn.accept_login("SESS01", 1);
            conn.send_bytes(b"\x00\x01X\x00\x01H");
            conn.read_frame(WAIT);
        });
        let mut client = Client::connect(&fake_server::config(addr)).expect("login");
        for _ in 0..2 {
            assert!(matches!(client.recv(WAIT), Err(ClientError::Protocol(_))));
        }
        drop(client);
        server.join().expect("fake server");
    }

    #[test]
    fn garbage_instead_of_a_login_answer_is_a_protocol_error() {
        let (addr, server) = fake_server::spawn(|mut conn| {
            conn.read_frame(WAIT).expect("login request");
            conn.send_bytes(b"\x00\x05Zjunk");
            conn.read_frame(WAIT);
        });
        assert!(matches!(
            Client::connect(&fake_server::config(addr)),
            Err(ClientError::Protocol(_))
        ));
        server.join().expect("fake server");
    }

    #[test]
    fn a_server_that_closes_gives_closed() {
        let (addr, server) = fake_server::spawn(|mut conn| {
            conn.accept_login("SESS01", 1);
        });
        let mut client = Client::connect(&fake_server::config(addr)).expect("login");
        server.join().expect("fake server");
        assert!(matches!(client.recv(WAIT), Err(ClientError::Closed)));
    }

    #[test]
    fn a_server_that_closes_during_login_gives_closed() {
        let (addr, server) = fake_server::spawn(|mut conn| {
            conn.read_frame(WAIT).expect("login request");
        });
        assert!(matches!(
            Client::connect(&fake_server::config(addr)),
            Err(ClientError::Closed)
        ));
        server.join().expect("fake server");
    }

    #[test]
    fn a_silent_server_times_the_login_out() {
        let (addr, server) = fake_server::spawn(|mut conn| {
            conn.read_frame(WAIT).expect("login request");
            conn.read_frame(WAIT);
        });
        let mut config = fake_server::config(addr);
        config.connect_timeout = Duration::from_millis(100);
        assert!(matches!(
            Client::connect(&config),
            Err(ClientError::Timeout)
        ));
        server.join().expect("fake server");
    }

    /// Feeds `bytes` through the read buffer in `chunk_len` pieces the way
    /// the clients do, and returns how many messages came out before an
    /// error or the end.
    fn decode_stream(bytes: &[u8], chunk_len: usize, max_packet_len: u16) -> usize {
        let mut inbox = ReadBuffer::new(max_packet_len);
        let mut state = SessionState {
            session: String::new(),
            next_sequence_number: u64::MAX,
        };
        let mut messages = 0;
        for chunk in bytes.chunks(chunk_len.max(1)) {
            let mut source = chunk;
            while !source.is_empty() {
                match inbox.fill_from(&mut source) {
                    Ok(Fill::Read(_)) => {}
                    Ok(Fill::BufferFull) => {
                        assert!(inbox.next_packet().is_err(), "full buffer without an error");
                        return messages;
                    }
                    other => panic!("reading from a slice: {other:?}"),
                }
                loop {
                    match inbox.next_packet() {
                        Ok(Some(packet)) => match state.message_from(packet) {
                            Ok(_) => messages += 1,
                            Err(_) => return messages,
                        },
                        Ok(None) => break,
                        Err(_) => return messages,
                    }
                }
            }
        }
        messages
    }

    #[test]
    fn valid_stream_split_anywhere_decodes_every_message() {
        let order = enter_order();
        let mut stream = Vec::new();
        for packet_index in 0..50u64 {
            let mut payload = Vec::new();
            accepted(&order, packet_index).encode(&mut payload);
            Packet::SequencedData(&payload).encode(&mut stream).unwrap();
            Packet::ServerHeartbeat.encode(&mut stream).unwrap();
        }
        for chunk_len in [1, 2, 3, 7, 68, 69, 500, 10_000] {
            assert_eq!(decode_stream(&stream, chunk_len, 100), 100, "{chunk_len}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_server_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            chunk_len in 1usize..300,
            max_packet_len in 0u16..200,
        ) {
            decode_stream(&bytes, chunk_len, max_packet_len);
        }
    }
}
