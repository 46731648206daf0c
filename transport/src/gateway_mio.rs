//! `MioGatewayAgent`: the gateway's default I/O backend, an epoll event loop
//! through mio on one thread. It accepts connections, reads what clients
//! send into the [`GatewayCore`], writes what the core has queued, closes
//! what the core says to close, and wakes on the [`EventInbox`] when egress
//! publishes. Sockets are edge-triggered, so the agent remembers which are
//! readable and writable and retries them each turn until they would block.
//! Every loop is bounded: accepts by the connection table, reads and writes
//! by a per-turn budget, events by the inbox batch.

use crate::event_inbox::EventInbox;
use crate::gateway_core::{ConnectionId, GatewayCore};
use crate::gateway_runtime::{GatewayControl, GatewayReport};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// Reads per connection per turn: enough to drain a socket, bounded so one
/// busy client cannot starve the others.
const READS_PER_TURN_MAX: usize = 16;
/// Events published per turn before the sockets are served again.
const EVENTS_PER_TURN_MAX: usize = 4096;
/// How often timers run when nothing else wakes the loop.
const TICK: Duration = Duration::from_millis(10);

struct Socket {
    stream: TcpStream,
    readable: bool,
    writable: bool,
}

/// The mio event loop around a [`GatewayCore`].
pub struct MioGatewayAgent {
    core: GatewayCore,
    inbox: Arc<EventInbox>,
    poll: Poll,
    listener: TcpListener,
    sockets: Vec<Option<Socket>>,
    control: Arc<GatewayControl>,
    started: Instant,
    read_buffer: Box<[u8]>,
}

impl MioGatewayAgent {
    /// Registers the listener and the inbox's waker.
    pub fn new(
        core: GatewayCore,
        inbox: Arc<EventInbox>,
        listener: std::net::TcpListener,
        control: Arc<GatewayControl>,
    ) -> io::Result<MioGatewayAgent> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let inbox_waker = Arc::clone(&waker);
        inbox.set_waker(Box::new(move || {
            let _ = inbox_waker.wake();
        }));
        let control_waker = Arc::clone(&waker);
        control.set_waker(Box::new(move || {
            let _ = control_waker.wake();
        }));
        let connections_max = core.config().connections_max;
        let mut sockets = Vec::with_capacity(connections_max);
        sockets.resize_with(connections_max, || None);
        Ok(MioGatewayAgent {
            core,
            inbox,
            poll,
            listener,
            sockets,
            control,
            started: Instant::now(),
            read_buffer: vec![0u8; 64 * 1024].into_boxed_slice(),
        })
    }

    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Runs until stopped; returns the core's final counters.
    pub fn run(mut self) -> GatewayReport {
        let mut events = Events::with_capacity(1024);
        let mut last_tick = Instant::now();
        loop {
            if self.control.stop_requested() {
                return self.shut_down();
            }
            if let Some(fatal) = self.core.fatal() {
                tracing::error!(%fatal, "gateway stopping");
                self.control.set_failure(fatal.to_string());
                return self.shut_down();
            }
            let timeout = if self.inbox.park() {
                Some(TICK)
            } else {
                Some(Duration::ZERO)
            };
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != io::ErrorKind::Interrupted {
                    self.control.set_failure(format!("poll: {error}"));
                    return self.shut_down();
                }
            }
            self.inbox.unpark();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    Token(token) => {
                        let id = token - FIRST_CONNECTION;
                        if let Some(Some(socket)) = self.sockets.get_mut(id) {
                            socket.readable |= event.is_readable() || event.is_read_closed();
                            socket.writable |= event.is_writable();
                        }
                    }
                }
            }
            self.core.drain_inbox(&self.inbox, EVENTS_PER_TURN_MAX);
            self.serve_sockets();
            // Timers run after the sockets are read, so a client whose
            // heartbeat is already in the socket buffer is never timed out
            // because this thread was descheduled for a while.
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                let now_ns = self.now_ns();
                self.core.on_tick(now_ns);
            }
        }
    }

    fn accept_all(&mut self) {
        // Bounded: at most one accept per table slot, plus the refusals of
        // a full table, per turn.
        for _ in 0..self.sockets.len() * 2 + 1 {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    return;
                }
            };
            let now_ns = self.now_ns();
            let Some(id) = self.core.open_connection(now_ns) else {
                tracing::warn!(%peer, "connection table full; closing new connection");
                continue;
            };
            let _ = stream.set_nodelay(true);
            if let Err(error) = self.poll.registry().register(
                &mut stream,
                Token(id + FIRST_CONNECTION),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!(%error, "register failed");
                self.core.on_disconnected(id, Some(error.to_string()));
                continue;
            }
            tracing::info!(connection = id, %peer, "connection accepted");
            self.sockets[id] = Some(Socket {
                stream,
                readable: true,
                writable: true,
            });
        }
    }

    fn serve_sockets(&mut self) {
        for id in 0..self.sockets.len() {
            if self.sockets[id].is_none() {
                continue;
            }
            self.read_socket(id);
            self.write_socket(id);
            if let Some(reason) = self.core.close_due(id) {
                tracing::debug!(connection = id, %reason, "socket closed");
                self.drop_socket(id, None);
            }
        }
    }

    fn read_socket(&mut self, id: ConnectionId) {
        for _ in 0..READS_PER_TURN_MAX {
            let room = self.core.input_room(id).min(self.read_buffer.len());
            let Some(socket) = self.sockets[id].as_mut() else {
                return;
            };
            if !socket.readable || room == 0 {
                return;
            }
            match socket.stream.read(&mut self.read_buffer[..room]) {
                Ok(0) => {
                    self.drop_socket(id, Some("end of stream".to_string()));
                    return;
                }
                Ok(read) => {
                    let now_ns = self.now_ns();
                    let taken = self.core.on_input(id, &self.read_buffer[..read], now_ns);
                    debug_assert_eq!(taken, read, "input_room was honoured");
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    socket.readable = false;
                    return;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.drop_socket(id, Some(error.to_string()));
                    return;
                }
            }
        }
    }

    fn write_socket(&mut self, id: ConnectionId) {
        for _ in 0..READS_PER_TURN_MAX {
            let Some(socket) = self.sockets[id].as_mut() else {
                return;
            };
            let pending = self.core.output_pending(id);
            if pending.is_empty() || !socket.writable {
                return;
            }
            match socket.stream.write(pending) {
                Ok(written) => {
                    let now_ns = self.now_ns();
                    self.core.output_consumed(id, written);
                    self.core.note_sent(id, now_ns);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    socket.writable = false;
                    return;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.drop_socket(id, Some(error.to_string()));
                    return;
                }
            }
        }
    }

    fn drop_socket(&mut self, id: ConnectionId, peer_reason: Option<String>) {
        if let Some(mut socket) = self.sockets[id].take() {
            let _ = self.poll.registry().deregister(&mut socket.stream);
            let _ = socket.stream.shutdown(std::net::Shutdown::Both);
        }
        self.core.on_disconnected(id, peer_reason);
    }

    /// End of Session to everyone, a bounded wait for the output to drain,
    /// then every socket closed.
    fn shut_down(mut self) -> GatewayReport {
        let now_ns = self.now_ns();
        self.core.drain_inbox(&self.inbox, usize::MAX);
        self.core.begin_shutdown(now_ns);
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut events = Events::with_capacity(256);
        while Instant::now() < deadline && self.sockets.iter().any(Option::is_some) {
            for id in 0..self.sockets.len() {
                if let Some(socket) = self.sockets[id].as_mut() {
                    socket.writable = true;
                }
            }
            self.serve_sockets();
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(10)));
        }
        for id in 0..self.sockets.len() {
            if self.sockets[id].is_some() {
                self.drop_socket(id, Some("server shutdown".to_string()));
            }
        }
        GatewayReport {
            stats: self.core.stats(),
            last_seq: self.core.last_seq(),
        }
    }
}
