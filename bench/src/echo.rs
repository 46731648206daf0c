//! The echo baseline of `lockstep bench`: a server that speaks just enough
//! SoupBinTCP for the bench's own client to log in, then answers every
//! Unsequenced Data packet (an OUCH Enter Order, 49 + 3 bytes) with one
//! Sequenced Data packet of an Accepted's size (66 + 3 bytes) carrying the
//! order's token, and does nothing else: no sequencing, journal, replicas or
//! matching. Driven by the same driver, client, message sizes and pacing as
//! a Lockstep run, it measures what the loopback TCP path, the kernel's
//! wake-ups and the driver cost by themselves, so Lockstep's latency can be
//! stated as a ratio to it. Logins are taken one by one on a blocking socket
//! (the driver connects its sessions one by one); the connections are then
//! served by a mio (epoll) loop here or by the io_uring loop of
//! [`crate::echo_uring`], the two I/O backend families of the gateway. Both
//! block in the kernel when idle, as the gateway does.

use lockstep_transport::ouch::{self, Outbound};
use lockstep_transport::soupbintcp::{self, packet_type, Packet, SessionName, HEADER_LEN};
use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Which event loop serves the echo's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoBackend {
    Mio,
    Uring,
}

impl EchoBackend {
    pub const fn name(self) -> &'static str {
        match self {
            EchoBackend::Mio => "mio",
            EchoBackend::Uring => "uring",
        }
    }
}

/// Whether this kernel, and its seccomp policy, allow io_uring; the error
/// says why not.
pub fn uring_available() -> Result<(), String> {
    crate::echo_uring::new_ring(1).map(|_| ())
}

/// What an echo server did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoStats {
    pub connections: u64,
    pub replies: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// How long the echo waits for all its sessions to log in.
const LOGIN_WAIT: Duration = Duration::from_secs(30);
/// The reply frame: Sequenced Data header plus an Accepted.
pub(crate) const REPLY_LEN: usize = HEADER_LEN + ouch::message_len::ACCEPTED;
/// Where the token sits in the reply frame (Accepted offset 9).
const REPLY_TOKEN_AT: usize = HEADER_LEN + 9;
/// Bytes read per system call.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// The protocol state of one echo connection after login.
pub(crate) struct EchoConnection {
    input: Vec<u8>,
    template: [u8; REPLY_LEN],
}

/// What a connection's input asked for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EchoInput {
    Open,
    /// Logout Request: close once the replies are written.
    Logout,
}

impl EchoConnection {
    pub(crate) fn new() -> EchoConnection {
        EchoConnection {
            input: Vec::with_capacity(READ_CHUNK),
            template: reply_template(),
        }
    }

    /// Takes `bytes` read from the socket, appends a reply frame to `out`
    /// for every whole Unsequenced Data packet; an error closes the
    /// connection.
    pub(crate) fn take(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        stats: &mut EchoStats,
    ) -> Result<EchoInput, String> {
        stats.bytes_in += bytes.len() as u64;
        self.input.extend_from_slice(bytes);
        let mut consumed = 0;
        let mut state = EchoInput::Open;
        while let Some((packet, len)) = soupbintcp::decode(&self.input[consumed..])
            .map_err(|error| format!("echo: bad frame from the client: {error}"))?
        {
            match packet {
                Packet::UnsequencedData(payload) => {
                    let mut reply = self.template;
                    if let Some(token) = payload.get(1..15) {
                        reply[REPLY_TOKEN_AT..REPLY_TOKEN_AT + 14].copy_from_slice(token);
                    }
                    out.extend_from_slice(&reply);
                    stats.replies += 1;
                    stats.bytes_out += REPLY_LEN as u64;
                }
                Packet::ClientHeartbeat | Packet::Debug(_) => {}
                Packet::LogoutRequest => state = EchoInput::Logout,
                other => {
                    return Err(format!(
                        "echo: unexpected packet type '{}'",
                        char::from(other.packet_type())
                    ))
                }
            }
            consumed += len;
        }
        self.input.drain(..consumed);
        Ok(state)
    }
}

/// A Sequenced Data frame of a dead Accepted, the token left blank.
fn reply_template() -> [u8; REPLY_LEN] {
    let accepted = Outbound::Accepted(ouch::Accepted {
        timestamp: 0,
        token: ouch::Token::BLANK,
        side: ouch::Side::Buy,
        shares: 100,
        stock: ouch::Stock::left("AMZN").unwrap_or(ouch::Stock::BLANK),
        price: 1_000_000,
        time_in_force: ouch::TIF_SYSTEM_HOURS,
        firm: ouch::Firm::BLANK,
        display: ouch::Display::AnonymousPriceToComply,
        order_reference_number: 0,
        capacity: ouch::Capacity::Agency,
        intermarket_sweep: ouch::IntermarketSweep::NotEligible,
        minimum_quantity: 0,
        cross_type: ouch::CrossType::NoCross,
        order_state: ouch::OrderState::Dead,
        bbo_weight: ouch::BboWeight::Unspecified,
    });
    let mut frame = [0u8; REPLY_LEN];
    frame[..2].copy_from_slice(&((REPLY_LEN - 2) as u16).to_be_bytes());
    frame[2] = packet_type::SEQUENCED_DATA;
    let _ = accepted.encode_into(&mut frame[HEADER_LEN..]);
    frame
}

/// Accepts `sessions` connections and answers each Login Request with Login
/// Accepted, on blocking sockets; returns them non-blocking.
fn accept_logins(
    listener: &TcpListener,
    sessions: usize,
    stop: &AtomicBool,
) -> Result<Vec<TcpStream>, String> {
    listener
        .set_nonblocking(true)
        .map_err(|error| format!("echo: {error}"))?;
    let deadline = Instant::now() + LOGIN_WAIT;
    let mut streams = Vec::with_capacity(sessions);
    while streams.len() < sessions {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::Acquire) || Instant::now() >= deadline {
                    return Err(format!(
                        "echo: {} of {sessions} sessions logged in",
                        streams.len()
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(error) => return Err(format!("echo: accept: {error}")),
        };
        let setup = |stream: &mut TcpStream| -> io::Result<()> {
            stream.set_nonblocking(false)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut request = [0u8; 2 + soupbintcp::LOGIN_REQUEST_LEN as usize];
            stream.read_exact(&mut request)?;
            if !matches!(
                soupbintcp::decode(&request),
                Ok(Some((Packet::LoginRequest { .. }, _)))
            ) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "no Login Request",
                ));
            }
            let accepted = Packet::LoginAccepted {
                session: SessionName::right("LOCKSTEP").unwrap_or(SessionName::BLANK),
                sequence_number: 1,
            };
            let mut frame = Vec::new();
            accepted
                .encode(&mut frame)
                .map_err(|error| io::Error::other(format!("{error:?}")))?;
            stream.write_all(&frame)?;
            stream.set_nonblocking(true)
        };
        setup(&mut stream).map_err(|error| format!("echo: login: {error}"))?;
        streams.push(stream);
    }
    Ok(streams)
}

/// A running echo server.
pub struct EchoServer {
    addr: SocketAddr,
    backend: EchoBackend,
    stop: Arc<AtomicBool>,
    waker: Option<Arc<Waker>>,
    thread: Option<JoinHandle<Result<EchoStats, String>>>,
}

impl EchoServer {
    /// Listens on 127.0.0.1 (a free port) for `sessions` sessions.
    pub fn spawn(backend: EchoBackend, sessions: usize) -> Result<EchoServer, String> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|error| format!("echo: {error}"))?;
        let addr = listener
            .local_addr()
            .map_err(|error| format!("echo: {error}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let (waker, thread) = match backend {
            EchoBackend::Mio => {
                let poll = Poll::new().map_err(|error| format!("echo: {error}"))?;
                let waker = Arc::new(
                    Waker::new(poll.registry(), Token(usize::MAX))
                        .map_err(|error| format!("echo: {error}"))?,
                );
                let thread = std::thread::Builder::new()
                    .name("echo-mio".to_string())
                    .spawn(move || {
                        let streams = accept_logins(&listener, sessions, &thread_stop)?;
                        serve_mio(poll, streams, &thread_stop)
                    })
                    .map_err(|error| format!("echo: {error}"))?;
                (Some(waker), thread)
            }
            EchoBackend::Uring => {
                let ring = crate::echo_uring::new_ring(sessions)?;
                let thread = std::thread::Builder::new()
                    .name("echo-uring".to_string())
                    .spawn(move || {
                        let streams = accept_logins(&listener, sessions, &thread_stop)?;
                        crate::echo_uring::serve(ring, streams, &thread_stop)
                    })
                    .map_err(|error| format!("echo: {error}"))?;
                (None, thread)
            }
        };
        Ok(EchoServer {
            addr,
            backend,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn backend(&self) -> EchoBackend {
        self.backend
    }

    /// Stops the server (its loop also ends once every client is gone) and
    /// returns what it did.
    pub fn stop(mut self) -> Result<EchoStats, String> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> Result<EchoStats, String> {
        self.stop.store(true, Ordering::Release);
        if let Some(waker) = &self.waker {
            let _ = waker.wake();
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| "echo: the server thread panicked".to_string())?,
            None => Ok(EchoStats::default()),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}

/// One connection of the mio loop.
struct MioConnection {
    stream: MioStream,
    protocol: EchoConnection,
    out: Vec<u8>,
    logout: bool,
}

impl MioConnection {
    /// Writes what is queued; `Ok(true)` when the connection is finished.
    fn write(&mut self) -> io::Result<bool> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Ok(true),
                Ok(written) => {
                    self.out.drain(..written);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(self.logout)
    }

    /// Reads and answers everything there is; `Ok(true)` when finished.
    fn read(&mut self, buffer: &mut [u8], stats: &mut EchoStats) -> Result<bool, String> {
        loop {
            match self.stream.read(buffer) {
                Ok(0) => return Ok(true),
                Ok(read) => {
                    if self.protocol.take(&buffer[..read], &mut self.out, stats)?
                        == EchoInput::Logout
                    {
                        self.logout = true;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(true),
            }
        }
    }
}

fn serve_mio(
    mut poll: Poll,
    streams: Vec<TcpStream>,
    stop: &AtomicBool,
) -> Result<EchoStats, String> {
    let mut stats = EchoStats {
        connections: streams.len() as u64,
        ..EchoStats::default()
    };
    let mut connections: Vec<Option<MioConnection>> = Vec::with_capacity(streams.len());
    for (index, stream) in streams.into_iter().enumerate() {
        let mut stream = MioStream::from_std(stream);
        poll.registry()
            .register(
                &mut stream,
                Token(index),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|error| format!("echo: {error}"))?;
        connections.push(Some(MioConnection {
            stream,
            protocol: EchoConnection::new(),
            out: Vec::with_capacity(READ_CHUNK),
            logout: false,
        }));
    }
    let mut events = Events::with_capacity(1024);
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut open = connections.len();
    while open > 0 && !stop.load(Ordering::Acquire) {
        if let Err(error) = poll.poll(&mut events, None) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("echo: poll: {error}"));
        }
        for event in events.iter() {
            let Some(slot) = connections.get_mut(event.token().0) else {
                continue;
            };
            let Some(connection) = slot else { continue };
            let mut finished = false;
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                finished = connection.read(&mut buffer, &mut stats)?;
            }
            if !finished {
                finished = connection.write().unwrap_or(true);
            }
            if finished {
                let _ = poll.registry().deregister(&mut connection.stream);
                *slot = None;
                open -= 1;
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enter_frame(token: &str) -> Vec<u8> {
        let order = ouch::Inbound::EnterOrder(ouch::EnterOrder {
            token: ouch::Token::left(token).unwrap(),
            side: ouch::Side::Sell,
            shares: 100,
            stock: ouch::Stock::left("AMZN").unwrap(),
            price: 1_000_000,
            time_in_force: ouch::TIF_SYSTEM_HOURS,
            firm: ouch::Firm::BLANK,
            display: ouch::Display::AnonymousPriceToComply,
            capacity: ouch::Capacity::Agency,
            intermarket_sweep: ouch::IntermarketSweep::NotEligible,
            minimum_quantity: 0,
            cross_type: ouch::CrossType::NoCross,
            customer_type: ouch::CustomerType::PortDefault,
        });
        let mut frame = vec![0u8; HEADER_LEN + ouch::message_len::ENTER_ORDER];
        frame[..2].copy_from_slice(&50u16.to_be_bytes());
        frame[2] = packet_type::UNSEQUENCED_DATA;
        order.encode_into(&mut frame[HEADER_LEN..]).unwrap();
        frame
    }

    #[test]
    fn every_order_gets_an_accepted_sized_reply_with_its_token() {
        let mut connection = EchoConnection::new();
        let mut stats = EchoStats::default();
        let mut out = Vec::new();
        let mut input = enter_frame("T1");
        input.extend_from_slice(&enter_frame("T2"));
        // Split mid-frame: the second order completes on the next read.
        let (first, second) = input.split_at(60);
        assert_eq!(
            connection.take(first, &mut out, &mut stats),
            Ok(EchoInput::Open)
        );
        assert_eq!(out.len(), REPLY_LEN);
        connection.take(second, &mut out, &mut stats).unwrap();
        assert_eq!(out.len(), 2 * REPLY_LEN);
        assert_eq!(stats.replies, 2);
        let (packet, len) = soupbintcp::decode(&out[REPLY_LEN..]).unwrap().unwrap();
        assert_eq!(len, REPLY_LEN);
        let Packet::SequencedData(payload) = packet else {
            panic!("not Sequenced Data: {packet:?}");
        };
        let Ok(Outbound::Accepted(accepted)) = Outbound::decode(payload) else {
            panic!("not an Accepted");
        };
        assert_eq!(accepted.token, ouch::Token::left("T2").unwrap());
        assert_eq!(accepted.order_state, ouch::OrderState::Dead);
    }

    #[test]
    fn logout_and_garbage_are_recognised() {
        let mut connection = EchoConnection::new();
        let mut stats = EchoStats::default();
        let mut out = Vec::new();
        assert_eq!(
            connection.take(&[0, 1, b'O'], &mut out, &mut stats),
            Ok(EchoInput::Logout)
        );
        assert!(connection
            .take(&[0, 1, b'?'], &mut out, &mut stats)
            .is_err());
    }
}
