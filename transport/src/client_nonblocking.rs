//! The non-blocking form of the client, for a bench tool that drives many
//! sessions from one thread, open loop: it owns [`NonBlockingClient`], which
//! logs in like the blocking [`Client`] and then never blocks. Orders are
//! encoded into a bounded output buffer and written by [`flush`] as far as
//! the socket takes them; [`poll_read`] pulls in whatever has arrived and
//! [`next_message`] decodes one buffered message at a time. The caller owns
//! the event loop: it polls
//! [`as_raw_fd`](std::os::fd::AsRawFd::as_raw_fd) for readiness, calls
//! [`maybe_heartbeat`] with its own clock, and decides what to do when the
//! output is full, so that a slow server shows up as back-pressure the bench
//! can measure instead of as a hidden queue.
//!
//! [`flush`]: NonBlockingClient::flush
//! [`poll_read`]: NonBlockingClient::poll_read
//! [`next_message`]: NonBlockingClient::next_message
//! [`maybe_heartbeat`]: NonBlockingClient::maybe_heartbeat

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::client::{
    encode_unsequenced, Client, ClientConfig, ClientError, ClientMessage, Fill, ReadBuffer,
    SessionState, CLIENT_HEARTBEAT_FRAME, MAX_CLIENT_FRAME_LEN,
};
use crate::ouch;

/// Output buffer capacity of [`NonBlockingClient::connect`]: over a thousand
/// Enter Orders, far more than one flush normally leaves behind.
pub const DEFAULT_OUTPUT_CAPACITY_BYTES: usize = 64 * 1024;

/// Bytes queued for the socket, in a buffer whose capacity never changes.
#[derive(Debug)]
struct OutputBuffer {
    bytes: Box<[u8]>,
    /// First byte not written to the socket yet.
    start: usize,
    /// One past the last queued byte.
    end: usize,
}

impl OutputBuffer {
    fn new(capacity_bytes: usize) -> Self {
        Self {
            bytes: vec![0; capacity_bytes].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn pending(&self) -> &[u8] {
        self.bytes.get(self.start..self.end).unwrap_or_default()
    }

    /// Appends `frame` whole or not at all; `false` if it does not fit.
    fn push(&mut self, frame: &[u8]) -> bool {
        if self.bytes.len() - self.end < frame.len() && self.start > 0 {
            // Written bytes at the front are free space; reclaim them only
            // when needed, so the common case copies nothing.
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let Some(slot) = self.bytes.get_mut(self.end..self.end + frame.len()) else {
            return false;
        };
        slot.copy_from_slice(frame);
        self.end += frame.len();
        true
    }

    fn consume(&mut self, written_len: usize) {
        self.start = (self.start + written_len).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

/// A logged-in session over a non-blocking socket.
#[derive(Debug)]
pub struct NonBlockingClient {
    stream: TcpStream,
    inbox: ReadBuffer,
    outbox: OutputBuffer,
    state: SessionState,
    heartbeat_interval: Duration,
    last_queued_at: Instant,
}

impl NonBlockingClient {
    /// Connects and logs in exactly like [`Client::connect`] (blocking, within
    /// the connect timeout), then switches the socket to non-blocking, with an
    /// output buffer of [`DEFAULT_OUTPUT_CAPACITY_BYTES`].
    pub fn connect(config: &ClientConfig) -> Result<Self, ClientError> {
        Self::connect_with_output_capacity(config, DEFAULT_OUTPUT_CAPACITY_BYTES)
    }

    /// [`NonBlockingClient::connect`] with an output buffer of
    /// `output_capacity_bytes` (raised to one Enter Order frame if smaller,
    /// so that at least one order always fits an empty buffer).
    pub fn connect_with_output_capacity(
        config: &ClientConfig,
        output_capacity_bytes: usize,
    ) -> Result<Self, ClientError> {
        let logged_in = Client::connect(config)?.into_logged_in();
        logged_in.stream.set_nonblocking(true)?;
        Ok(Self {
            stream: logged_in.stream,
            // Bytes that arrived with Login Accepted are already in here.
            inbox: logged_in.inbox,
            outbox: OutputBuffer::new(output_capacity_bytes.max(MAX_CLIENT_FRAME_LEN)),
            state: logged_in.state,
            heartbeat_interval: logged_in.heartbeat_interval,
            last_queued_at: logged_in.last_send_at,
        })
    }

    /// The session name from Login Accepted, without its padding.
    pub fn session(&self) -> &str {
        &self.state.session
    }

    /// The number the next Sequenced Data message will carry.
    pub fn next_sequence_number(&self) -> u64 {
        self.state.next_sequence_number
    }

    /// Bytes queued and not yet taken by the socket.
    pub fn pending_output_bytes(&self) -> usize {
        self.outbox.pending().len()
    }

    pub fn queue_enter(&mut self, order: &ouch::EnterOrder) -> Result<(), ClientError> {
        self.queue_inbound(&ouch::Inbound::EnterOrder(*order))
    }

    pub fn queue_replace(&mut self, replace: &ouch::ReplaceOrder) -> Result<(), ClientError> {
        self.queue_inbound(&ouch::Inbound::ReplaceOrder(*replace))
    }

    pub fn queue_cancel(&mut self, cancel: &ouch::CancelOrder) -> Result<(), ClientError> {
        self.queue_inbound(&ouch::Inbound::CancelOrder(*cancel))
    }

    fn queue_inbound(&mut self, message: &ouch::Inbound) -> Result<(), ClientError> {
        let mut frame = [0u8; MAX_CLIENT_FRAME_LEN];
        let frame_len = encode_unsequenced(message, &mut frame).ok_or(ClientError::OutputFull)?;
        self.queue_frame(frame.get(..frame_len).unwrap_or_default())
    }

    fn queue_frame(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        if !self.outbox.push(frame) {
            return Err(ClientError::OutputFull);
        }
        self.last_queued_at = Instant::now();
        Ok(())
    }

    /// Queues a Client Heartbeat if nothing was queued for the heartbeat
    /// interval as of `now`; returns whether it did. The caller flushes it
    /// with everything else. A full output buffer gets no heartbeat: the
    /// bytes already waiting will show the server the session is alive once
    /// they are written.
    pub fn maybe_heartbeat(&mut self, now: Instant) -> bool {
        if self.heartbeat_interval.is_zero()
            || now.saturating_duration_since(self.last_queued_at) < self.heartbeat_interval
            || !self.outbox.push(&CLIENT_HEARTBEAT_FRAME)
        {
            return false;
        }
        self.last_queued_at = now;
        true
    }

    /// Writes as much queued output as the socket takes without blocking;
    /// `Ok(true)` when nothing is left queued.
    pub fn flush(&mut self) -> Result<bool, ClientError> {
        while !self.outbox.pending().is_empty() {
            match self.stream.write(self.outbox.pending()) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(written_len) => self.outbox.consume(written_len),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Reads whatever the socket holds, without blocking, until it has no
    /// more or the read buffer is full of whole frames (drain them with
    /// [`NonBlockingClient::next_message`] and call again); returns the bytes
    /// read. The peer closing is [`ClientError::Closed`], reported once the
    /// bytes before it have been returned.
    pub fn poll_read(&mut self) -> Result<usize, ClientError> {
        let mut total_read_len = 0;
        loop {
            match self.inbox.fill_from(&mut self.stream) {
                Ok(Fill::Read(read_len)) => total_read_len += read_len,
                Ok(Fill::BufferFull) => return Ok(total_read_len),
                // End of stream repeats on the next read, so returning the
                // bytes first loses nothing.
                Ok(Fill::PeerClosed) if total_read_len > 0 => return Ok(total_read_len),
                Ok(Fill::PeerClosed) => return Err(ClientError::Closed),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total_read_len),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Decodes one buffered message; `None` until a whole one has been read.
    /// A [`ClientError::Protocol`] for a malformed frame repeats on every
    /// call (the stream cannot be resynchronised): drop the client.
    pub fn next_message(&mut self) -> Option<Result<ClientMessage, ClientError>> {
        match self.inbox.next_packet() {
            Ok(Some(packet)) => Some(self.state.message_from(packet)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for NonBlockingClient {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake_server::{self, accepted, enter_order};
    use crate::soupbintcp::{self, Packet};
    use std::os::fd::AsRawFd;
    use std::thread;

    const WAIT: Duration = Duration::from_secs(2);

    /// Polls `client` until it yields a message or `wait` passes, the way a
    /// bench loop would (with a sleep standing in for `poll(2)`).
    fn wait_for_message(
        client: &mut NonBlockingClient,
        wait: Duration,
    ) -> Result<ClientMessage, ClientError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(message) = client.next_message() {
                return message;
            }
            if client.poll_read()? == 0 {
                if Instant::now() >= deadline {
                    return Err(ClientError::Timeout);
                }
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn flush_all(client: &mut NonBlockingClient) {
        let deadline = Instant::now() + WAIT;
        while !client.flush().expect("flush") {
            assert!(Instant::now() < deadline, "output never drained");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_order_and_its_reply_round_trip() {
        let order = enter_order();
        let (addr, server) = fake_server::spawn(move |mut conn| {
            conn.accept_login("BENCH1", 7);
            let frame = conn.read_frame(WAIT).expect("order frame");
            let Ok(Some((Packet::UnsequencedData(payload), _))) = soupbintcp::decode(&frame) else {
                panic!("expected Unsequenced Data, got {frame:?}");
            };
            assert_eq!(
                ouch::Inbound::decode(payload),
                Ok(ouch::Inbound::EnterOrder(order))
            );
            conn.send_sequenced(&accepted(&order, 1));
            conn.read_frame(WAIT);
        });
        let mut client = NonBlockingClient::connect(&fake_server::config(addr)).expect("login");
        assert_eq!(client.session(), "BENCH1");
        assert!(client.as_raw_fd() >= 0);
        client.queue_enter(&order).unwrap();
        assert_eq!(client.pending_output_bytes(), MAX_CLIENT_FRAME_LEN);
        flush_all(&mut client);
        assert_eq!(client.pending_output_bytes(), 0);
        let reply = wait_for_message(&mut client, WAIT).expect("reply");
        assert_eq!(
            reply,
            ClientMessage::Sequenced {
                sequence_number: 7,
                message: accepted(&order, 1)
            }
        );
        assert_eq!(client.next_sequence_number(), 8);
        assert!(client.next_message().is_none());
        drop(client);
        server.join().expect("fake server");
    }

    #[test]
    fn messages_sent_right_after_login_are_not_lost() {
        let order = enter_order();
        let (addr, server) = fake_server::spawn(move |mut conn| {
            conn.accept_login("BENCH1", 1);
            // Likely to arrive in the same read as Login Accepted.
            conn.send_sequenced(&accepted(&order, 1));
            conn.send(&Packet::EndOfSession);
            conn.read_frame(WAIT);
        });
        let mut client = NonBlockingClient::connect(&fake_server::config(addr)).expect("login");
        let first = wait_for_message(&mut client, WAIT).expect("first message");
        assert!(matches!(
            first,
            ClientMessage::Sequenced {
                sequence_number: 1,
                ..
            }
        ));
        assert_eq!(
            wait_for_message(&mut client, WAIT).expect("second message"),
            ClientMessage::EndOfSession
        );
        drop(client);
        server.join().expect("fake server");
    }

    #[test]
    fn a_full_output_buffer_refuses_orders_until_flushed() {
        let order = enter_order();
        let (addr, server) = fake_server::spawn(move |mut conn| {
            conn.accept_login("BENCH1", 1);
            for _ in 0..2 {
                let frame = conn.read_frame(WAIT).expect("order frame");
                assert!(matches!(
                    soupbintcp::decode(&frame),
                    Ok(Some((Packet::UnsequencedData(_), _)))
                ));
            }
        });
        let mut client =
            NonBlockingClient::connect_with_output_capacity(&fake_server::config(addr), 100)
                .expect("login");
        client.queue_enter(&order).unwrap();
        assert!(matches!(
            client.queue_enter(&order),
            Err(ClientError::OutputFull)
        ));
        flush_all(&mut client);
        client.queue_enter(&order).unwrap();
        flush_all(&mut client);
        server.join().expect("fake server");
    }

    #[test]
    fn an_idle_client_queues_heartbeats() {
        let (addr, server) = fake_server::spawn(|mut conn| {
            conn.accept_login("BENCH1", 1);
            let frame = conn.read_frame(WAIT).expect("heartbeat");
            assert_eq!(
                soupbintcp::decode(&frame),
                Ok(Some((Packet::ClientHeartbeat, 3)))
            );
        });
        let mut client = NonBlockingClient::connect(&fake_server::config(addr)).expect("login");
        let now = Instant::now();
        assert!(!client.maybe_heartbeat(now), "not idle right after login");
        let later = now + Duration::from_millis(250);
        assert!(client.maybe_heartbeat(later));
        assert!(!client.maybe_heartbeat(later), "one heartbeat per interval");
        flush_all(&mut client);
        server.join().expect("fake server");
    }

    #[test]
    fn a_server_that_closes_gives_closed_after_its_last_message() {
        let order = enter_order();
        let (addr, server) = fake_server::spawn(move |mut conn| {
            conn.accept_login("BENCH1", 1);
            conn.send_sequenced(&accepted(&order, 1));
        });
        let mut client = NonBlockingClient::connect(&fake_server::config(addr)).expect("login");
        server.join().expect("fake server");
        assert!(matches!(
            wait_for_message(&mut client, WAIT),
            Ok(ClientMessage::Sequenced { .. })
        ));
        assert!(matches!(
            wait_for_message(&mut client, WAIT),
            Err(ClientError::Closed)
        ));
    }

    #[test]
    fn garbage_from_the_server_is_a_protocol_error() {
        let (addr, server) = fake_server::spawn(|mut conn| {
            conn.accept_login("BENCH1", 1);
            conn.send_bytes(b"\x00\x01X");
            conn.read_frame(WAIT);
        });
        let mut client = NonBlockingClient::connect(&fake_server::config(addr)).expect("login");
        assert!(matches!(
            wait_for_message(&mut client, WAIT),
            Err(ClientError::Protocol(text)) if text.contains("unknown SoupBinTCP packet type")
        ));
        drop(client);
        server.join().expect("fake server");
    }
}
