//! `UringGatewayAgent`: the gateway's io_uring backend, a completion-based
//! event loop on one thread around the same [`GatewayCore`] the mio backend
//! drives, so that both behave identically and one protocol test suite runs
//! against either. Where the mio agent asks the kernel "is this socket
//! ready?" and then reads or writes, this agent hands the kernel the work
//! itself: a re-armed Accept on the listener, a Read on an eventfd that the
//! [`EventInbox`] and the [`GatewayControl`] write to wake it, and per
//! connection at most one Recv into, and at most one Send from, a buffer the
//! agent owns. The kernel fills or drains those buffers while the loop does
//! other work, so a buffer must stay where it is, untouched, until its
//! completion has been reaped: buffers are boxed, a closed connection's
//! buffers are kept in a retired list until its last operation completes,
//! and every `user_data` carries the operation's kind, the connection slot
//! and a generation number, so that a late completion for a slot the core
//! has since given to a new connection is recognised and routed to the
//! retired entry instead. Every loop is bounded: completions by the
//! completion queue's size per turn, events by the inbox batch, connections
//! by the table, and the shutdown's flush and tear-down by a deadline.

use crate::event_inbox::EventInbox;
use crate::gateway_core::{ConnectionId, GatewayCore};
use crate::gateway_runtime::{GatewayControl, GatewayReport};
use io_uring::{opcode, squeue, types, IoUring};
use std::fs::File;
use std::io::{self, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events published per turn before the sockets are served again.
const EVENTS_PER_TURN_MAX: usize = 4096;
/// How often timers run when nothing else wakes the loop.
const TICK: Duration = Duration::from_millis(10);
/// The wait of one parked turn, as the kernel reads it. It is a static so
/// that it outlives every Timeout operation that points to it.
static TICK_TIMESPEC: types::Timespec = types::Timespec::new().nsec(10_000_000);
/// The size of each connection's receive and send buffers.
const IO_BUFFER_BYTES: usize = 64 * 1024;
/// How long a shutdown waits for End of Session to reach the clients.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);
/// How long the tear-down waits for cancelled operations to complete
/// before it gives up and leaks the buffers they still point to.
const TEARDOWN_WAIT: Duration = Duration::from_secs(1);

/// The low bits of `user_data` hold the connection slot.
const ID_BITS: u32 = 24;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
/// The top byte of `user_data` holds the operation kind.
const KIND_SHIFT: u32 = 56;

/// What an operation in flight is, as encoded in its `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Accept = 1,
    Wake = 2,
    Timer = 3,
    Cancel = 4,
    Recv = 5,
    Send = 6,
}

impl OpKind {
    fn from_bits(bits: u64) -> Option<OpKind> {
        match bits {
            1 => Some(OpKind::Accept),
            2 => Some(OpKind::Wake),
            3 => Some(OpKind::Timer),
            4 => Some(OpKind::Cancel),
            5 => Some(OpKind::Recv),
            6 => Some(OpKind::Send),
            _ => None,
        }
    }
}

/// Packs an operation's kind, connection slot and generation: the kind in
/// the top byte, the generation in the 32 bits below it, the slot in the
/// low 24 bits.
fn encode_user_data(kind: OpKind, id: ConnectionId, generation: u32) -> u64 {
    (kind as u64) << KIND_SHIFT | u64::from(generation) << ID_BITS | (id as u64 & ID_MASK)
}

fn decode_user_data(user_data: u64) -> (Option<OpKind>, ConnectionId, u32) {
    let kind = OpKind::from_bits(user_data >> KIND_SHIFT);
    // The mask keeps exactly the 32 generation bits, so the cast is exact.
    let generation = ((user_data >> ID_BITS) & u64::from(u32::MAX)) as u32;
    (kind, (user_data & ID_MASK) as usize, generation)
}

/// Errors that mean "try again" rather than "this connection failed".
fn is_transient(errno: i32) -> bool {
    matches!(errno, libc::EINTR | libc::EAGAIN | libc::ECANCELED)
}

/// One connection's receive and send buffers. They are boxed so that their
/// heap addresses, which the kernel holds while an operation is in flight,
/// do not change when the owning entry moves between the table, the
/// retired list and the spare pool.
struct Buffers {
    recv: Box<[u8]>,
    send: Box<[u8]>,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers {
            recv: vec![0u8; IO_BUFFER_BYTES].into_boxed_slice(),
            send: vec![0u8; IO_BUFFER_BYTES].into_boxed_slice(),
        }
    }
}

/// The agent's side of one connection: its socket, its buffers and which of
/// its two operations are in flight.
struct ConnectionIo {
    id: ConnectionId,
    generation: u32,
    stream: TcpStream,
    buffers: Buffers,
    recv_in_flight: bool,
    send_in_flight: bool,
    /// Bytes of `buffers.send` handed to the Send in flight.
    send_len: usize,
}

impl ConnectionIo {
    fn idle(&self) -> bool {
        !self.recv_in_flight && !self.send_in_flight
    }
}

/// Queues one entry, flushing a full submission queue to the kernel once.
///
/// # Safety
///
/// Every buffer `entry` points to must stay valid, must not move and must
/// not be touched by Rust until the entry's completion has been reaped (or
/// must be leaked if that never happens).
unsafe fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    // Bounded: one flush of a full queue, then one retry.
    for _ in 0..2 {
        // SAFETY: the caller guarantees that what `entry` points to outlives
        // its completion, which is `push`'s whole contract.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        match ring.submit() {
            Ok(_) => {}
            Err(error) if error.raw_os_error().is_some_and(|e| e == libc::EBUSY) => {}
            Err(error) if error.raw_os_error().is_some_and(is_transient) => {}
            Err(error) => return Err(error),
        }
    }
    Err(io::Error::other("io_uring submission queue full"))
}

/// Creates a ring of `entries` submission entries and checks that the
/// kernel has every operation the agent uses (all there since Linux 5.6).
/// The error says why io_uring cannot be used, so that the server can name
/// the mio backend as the way out.
pub(crate) fn new_ring(entries: u32) -> io::Result<IoUring> {
    let ring: IoUring = IoUring::builder()
        .setup_cqsize(entries.saturating_mul(4))
        .build(entries)
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "io_uring_setup failed ({error}): the kernel, or a seccomp policy of the \
                     container, refuses io_uring; use the mio backend"
                ),
            )
        })?;
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("io_uring opcode probe failed ({error}); Linux 5.6 or later is needed"),
            )
        })?;
    let needed = [
        (opcode::Accept::CODE, "ACCEPT"),
        (opcode::Recv::CODE, "RECV"),
        (opcode::Send::CODE, "SEND"),
        (opcode::Read::CODE, "READ"),
        (opcode::Timeout::CODE, "TIMEOUT"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    ];
    for (code, name) in needed {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the kernel's io_uring lacks IORING_OP_{name} (Linux 5.6 or later is \
                     needed); use the mio backend"
                ),
            ));
        }
    }
    Ok(ring)
}

/// A non-blocking eventfd, as a `File` so that waking is a plain write.
fn new_eventfd() -> io::Result<File> {
    // SAFETY: eventfd takes no pointers; its result is checked before use.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nothing
    // else, so the `OwnedFd` is its only owner and closes it exactly once.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Adds 1 to the eventfd's counter, which completes the agent's Read.
fn signal(eventfd: &File) {
    // The only failure of a non-blocking eventfd write is a counter about
    // to overflow, which already means "wake up", so errors are ignored.
    let mut eventfd = eventfd;
    let _ = eventfd.write(&1u64.to_ne_bytes());
}

/// Submission entries for a table of `connections_max`: a recv and a send
/// per connection, plus the accept, the wake-up read, the timer and room for
/// cancels. A queue that fills anyway is flushed by [`push`].
fn ring_entries(connections_max: usize) -> u32 {
    let wanted = connections_max.saturating_mul(2).saturating_add(8);
    // The clamp keeps the value far below u32::MAX, so the cast is exact.
    wanted.next_power_of_two().clamp(64, 4096) as u32
}

/// The io_uring event loop around a [`GatewayCore`].
pub struct UringGatewayAgent {
    core: GatewayCore,
    inbox: Arc<EventInbox>,
    control: Arc<GatewayControl>,
    ring: IoUring,
    listener: TcpListener,
    /// Shared with the wakers, which may outlive the agent; the fd stays
    /// open until the last of them is dropped.
    eventfd: Arc<File>,
    /// Where the wake-up Read puts the eventfd's counter.
    wake_buffer: Box<[u8; 8]>,
    /// Indexed by the core's connection id.
    connections: Vec<Option<ConnectionIo>>,
    /// Closed connections whose operations have not completed yet.
    retired: Vec<ConnectionIo>,
    /// Buffers of fully closed connections, reused by new ones.
    spare_buffers: Vec<Buffers>,
    /// Completions copied out of the ring, handled after it is released.
    completions: Vec<(u64, i32)>,
    next_generation: u32,
    accept_in_flight: bool,
    /// Set after an accept failed (for example with EMFILE): the accept is
    /// re-armed at the next tick rather than spinning on the error.
    accept_paused: bool,
    /// Cleared when the shutdown starts: no new connections are taken.
    accepting: bool,
    wake_in_flight: bool,
    timer_in_flight: bool,
    cancels_in_flight: usize,
    started: Instant,
    last_tick: Instant,
}

impl UringGatewayAgent {
    /// Creates the ring and the eventfd and installs the eventfd as the
    /// wake-up of both the inbox and the control. Fails with a clear error
    /// if the kernel refuses io_uring.
    pub fn new(
        core: GatewayCore,
        inbox: Arc<EventInbox>,
        listener: TcpListener,
        control: Arc<GatewayControl>,
    ) -> io::Result<UringGatewayAgent> {
        let connections_max = core.config().connections_max;
        if connections_max as u64 > ID_MASK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "connections_max {connections_max} is above the io_uring backend's {ID_MASK}"
                ),
            ));
        }
        let entries = ring_entries(connections_max);
        let ring = new_ring(entries)?;
        let eventfd = Arc::new(new_eventfd()?);
        let inbox_eventfd = Arc::clone(&eventfd);
        inbox.set_waker(Box::new(move || signal(&inbox_eventfd)));
        let control_eventfd = Arc::clone(&eventfd);
        control.set_waker(Box::new(move || signal(&control_eventfd)));
        let mut connections = Vec::with_capacity(connections_max);
        connections.resize_with(connections_max, || None);
        let completion_capacity = ring.params().cq_entries() as usize;
        Ok(UringGatewayAgent {
            core,
            inbox,
            control,
            ring,
            listener,
            eventfd,
            wake_buffer: Box::new([0u8; 8]),
            connections,
            retired: Vec::with_capacity(connections_max),
            spare_buffers: Vec::new(),
            completions: Vec::with_capacity(completion_capacity),
            next_generation: 0,
            accept_in_flight: false,
            accept_paused: false,
            accepting: true,
            wake_in_flight: false,
            timer_in_flight: false,
            cancels_in_flight: 0,
            started: Instant::now(),
            last_tick: Instant::now(),
        })
    }

    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Runs until stopped; returns the core's final counters.
    pub fn run(mut self) -> GatewayReport {
        loop {
            if self.control.stop_requested() {
                return self.shut_down();
            }
            if let Some(fatal) = self.core.fatal() {
                tracing::error!(%fatal, "gateway stopping");
                self.control.set_failure(fatal.to_string());
                return self.shut_down();
            }
            self.arm_accept();
            self.arm_wake();
            let block = self.inbox.park();
            let submitted = self.submit(block);
            self.inbox.unpark();
            if let Err(error) = submitted {
                self.control.set_failure(format!("io_uring_enter: {error}"));
                return self.shut_down();
            }
            self.reap();
            self.core.drain_inbox(&self.inbox, EVENTS_PER_TURN_MAX);
            if self.last_tick.elapsed() >= TICK {
                self.last_tick = Instant::now();
                self.accept_paused = false;
                let now_ns = self.now_ns();
                self.core.on_tick(now_ns);
            }
            self.serve_connections();
        }
    }

    /// Hands the queued entries to the kernel and, with `block`, waits for
    /// at least one completion, at most one tick (the timer guarantees it).
    /// Errors that only mean "reap first" or "try again" are not failures.
    fn submit(&mut self, block: bool) -> io::Result<()> {
        let result = if block {
            self.arm_timer();
            self.ring.submit_and_wait(1)
        } else {
            self.ring.submit()
        };
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.raw_os_error().is_some_and(|e| e == libc::EBUSY) => Ok(()),
            Err(error) if error.raw_os_error().is_some_and(is_transient) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn arm_accept(&mut self) {
        if !self.accepting || self.accept_paused || self.accept_in_flight {
            return;
        }
        let entry = opcode::Accept::new(
            types::Fd(self.listener.as_raw_fd()),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .flags(libc::SOCK_CLOEXEC)
        .build()
        .user_data(encode_user_data(OpKind::Accept, 0, 0));
        // SAFETY: both address pointers are null, so the entry points to no
        // memory at all; the kernel holds its own reference to the listener.
        match unsafe { push(&mut self.ring, &entry) } {
            Ok(()) => self.accept_in_flight = true,
            Err(error) => tracing::warn!(%error, "could not queue an accept"),
        }
    }

    fn arm_wake(&mut self) {
        if self.wake_in_flight {
            return;
        }
        let entry = opcode::Read::new(
            types::Fd(self.eventfd.as_raw_fd()),
            self.wake_buffer.as_mut_ptr(),
            self.wake_buffer.len() as u32,
        )
        .build()
        .user_data(encode_user_data(OpKind::Wake, 0, 0));
        // SAFETY: `wake_buffer` is a heap box owned by the agent that Rust
        // never reads or writes, so the kernel is its only user; it is freed
        // only with the agent, and `Drop` leaks it instead if the Read is
        // still in flight then.
        match unsafe { push(&mut self.ring, &entry) } {
            Ok(()) => self.wake_in_flight = true,
            Err(error) => tracing::warn!(%error, "could not queue the wake-up read"),
        }
    }

    fn arm_timer(&mut self) {
        if self.timer_in_flight {
            return;
        }
        let entry = opcode::Timeout::new(&TICK_TIMESPEC)
            .build()
            .user_data(encode_user_data(OpKind::Timer, 0, 0));
        // SAFETY: the timespec is a static, so it outlives the operation.
        match unsafe { push(&mut self.ring, &entry) } {
            Ok(()) => self.timer_in_flight = true,
            Err(error) => tracing::warn!(%error, "could not queue the tick timer"),
        }
    }

    /// Asks the kernel to cancel the operation `target`. Best effort: every
    /// connection is also shut down, which completes its operations anyway.
    fn cancel(&mut self, target: u64) {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(encode_user_data(OpKind::Cancel, 0, 0));
        // SAFETY: a cancel entry names its target by `user_data` and points
        // to no memory.
        match unsafe { push(&mut self.ring, &entry) } {
            Ok(()) => self.cancels_in_flight += 1,
            Err(error) => tracing::warn!(%error, "could not queue a cancel"),
        }
    }

    /// Copies the ready completions out of the ring and handles them.
    fn reap(&mut self) {
        self.completions.clear();
        // Bounded by the scratch's capacity, the completion queue's size;
        // any completions left wait for the next turn, which does not sleep
        // because the kernel sees them ready.
        let capacity = self.completions.capacity();
        for completion in self.ring.completion().take(capacity) {
            self.completions
                .push((completion.user_data(), completion.result()));
        }
        for index in 0..self.completions.len() {
            let (user_data, result) = self.completions[index];
            self.complete(user_data, result);
        }
    }

    fn complete(&mut self, user_data: u64, result: i32) {
        let (kind, id, generation) = decode_user_data(user_data);
        match kind {
            Some(OpKind::Accept) => {
                self.accept_in_flight = false;
                self.on_accepted(result);
            }
            Some(OpKind::Wake) => {
                // The Read reset the counter; the inbox is drained every turn,
                // so there is nothing more to do than re-arm it.
                self.wake_in_flight = false;
                if result < 0 && !is_transient(-result) {
                    let error = io::Error::from_raw_os_error(-result);
                    tracing::warn!(%error, "wake-up read failed");
                }
            }
            Some(OpKind::Timer) => self.timer_in_flight = false,
            Some(OpKind::Cancel) => {
                self.cancels_in_flight = self.cancels_in_flight.saturating_sub(1)
            }
            Some(OpKind::Recv) => self.on_received(id, generation, result),
            Some(OpKind::Send) => self.on_sent(id, generation, result),
            None => tracing::warn!(user_data, "completion of an unknown operation"),
        }
    }

    fn on_accepted(&mut self, result: i32) {
        if result < 0 {
            if !is_transient(-result) {
                let error = io::Error::from_raw_os_error(-result);
                tracing::warn!(%error, "accept failed");
                self.accept_paused = true;
            }
            return;
        }
        // SAFETY: a successful Accept returns a new descriptor that nothing
        // else owns, so the `OwnedFd` is its only owner and closes it once.
        let stream = TcpStream::from(unsafe { OwnedFd::from_raw_fd(result) });
        if !self.accepting {
            // The shutdown has begun; dropping the stream closes it.
            return;
        }
        let peer = stream.peer_addr().ok();
        if self.retired.len() >= self.connections.len() {
            // Closed connections whose operations the kernel has not yet
            // given back hold their buffers; taking more would let them grow
            // without bound, so the new connection is refused instead.
            tracing::warn!(
                ?peer,
                "earlier connections still closing; closing new connection"
            );
            return;
        }
        let now_ns = self.now_ns();
        let Some(id) = self.core.open_connection(now_ns) else {
            tracing::warn!(?peer, "connection table full; closing new connection");
            return;
        };
        let _ = stream.set_nodelay(true);
        if self.connections[id].is_some() {
            // The core only hands out free slots and the agent empties a
            // slot whenever it tells the core a connection is gone, so this
            // does not happen; if it did, the stale entry is retired.
            tracing::error!(connection = id, "slot still held by an old connection");
            self.retire(id);
        }
        let buffers = self.spare_buffers.pop().unwrap_or_else(Buffers::new);
        self.next_generation = self.next_generation.wrapping_add(1);
        self.connections[id] = Some(ConnectionIo {
            id,
            generation: self.next_generation,
            stream,
            buffers,
            recv_in_flight: false,
            send_in_flight: false,
            send_len: 0,
        });
        tracing::info!(connection = id, ?peer, "connection accepted");
    }

    /// Whether `(id, generation)` is the connection now in slot `id`.
    fn is_current(&self, id: ConnectionId, generation: u32) -> bool {
        matches!(self.connections.get(id), Some(Some(connection)) if connection.generation == generation)
    }

    fn on_received(&mut self, id: ConnectionId, generation: u32, result: i32) {
        if !self.is_current(id, generation) {
            self.retired_op_done(id, generation, OpKind::Recv);
            return;
        }
        let now_ns = self.now_ns();
        let Some(Some(connection)) = self.connections.get_mut(id) else {
            return;
        };
        connection.recv_in_flight = false;
        if result > 0 {
            let received = (result as usize).min(connection.buffers.recv.len());
            // The core takes less only if it began closing the connection
            // since the Recv was armed; the rest is then of no use.
            let _ = self
                .core
                .on_input(id, &connection.buffers.recv[..received], now_ns);
        } else if result == 0 {
            self.peer_gone(id, "end of stream".to_string());
        } else if !is_transient(-result) {
            self.peer_gone(id, io::Error::from_raw_os_error(-result).to_string());
        }
    }

    fn on_sent(&mut self, id: ConnectionId, generation: u32, result: i32) {
        if !self.is_current(id, generation) {
            self.retired_op_done(id, generation, OpKind::Send);
            return;
        }
        let now_ns = self.now_ns();
        let pending = self.core.output_pending(id).len();
        let Some(Some(connection)) = self.connections.get_mut(id) else {
            return;
        };
        connection.send_in_flight = false;
        let send_len = std::mem::take(&mut connection.send_len);
        if result >= 0 {
            // A short send consumes only what went out; the next Send copies
            // the rest afresh from the core's pending output.
            let written = (result as usize).min(send_len).min(pending);
            self.core.output_consumed(id, written);
            self.core.note_sent(id, now_ns);
        } else if !is_transient(-result) {
            let error = io::Error::from_raw_os_error(-result);
            tracing::debug!(connection = id, %error, "send failed");
            self.close_connection(id, Some(error.to_string()));
        }
    }

    /// The peer closed its side or the socket failed. A connection the core
    /// is already closing is left to finish flushing, as the mio agent does
    /// (it no longer reads such a connection, so it never sees the end of
    /// stream); a failed send or `close_due` then closes it.
    fn peer_gone(&mut self, id: ConnectionId, reason: String) {
        if self.core.is_closing(id) {
            tracing::debug!(connection = id, %reason, "peer gone while closing");
            return;
        }
        self.close_connection(id, Some(reason));
    }

    /// Closes the socket of slot `id` and tells the core it is gone.
    fn close_connection(&mut self, id: ConnectionId, peer_reason: Option<String>) {
        self.retire(id);
        self.core.on_disconnected(id, peer_reason);
    }

    /// Takes the connection out of slot `id`: shuts its socket down, which
    /// completes any Recv or Send in flight, asks the kernel to cancel them
    /// as well, and keeps its buffers in the retired list until they have
    /// completed. An idle connection is closed at once.
    fn retire(&mut self, id: ConnectionId) {
        let Some(connection) = self.connections.get_mut(id).and_then(Option::take) else {
            return;
        };
        let _ = connection.stream.shutdown(Shutdown::Both);
        if connection.idle() {
            self.recycle(connection);
            return;
        }
        if connection.recv_in_flight {
            self.cancel(encode_user_data(OpKind::Recv, id, connection.generation));
        }
        if connection.send_in_flight {
            self.cancel(encode_user_data(OpKind::Send, id, connection.generation));
        }
        self.retired.push(connection);
    }

    /// A retired connection's operation completed; once both have, its
    /// socket is closed and its buffers become spares.
    fn retired_op_done(&mut self, id: ConnectionId, generation: u32, kind: OpKind) {
        let Some(index) = self
            .retired
            .iter()
            .position(|entry| entry.id == id && entry.generation == generation)
        else {
            tracing::warn!(
                connection = id,
                generation,
                ?kind,
                "completion for no known connection"
            );
            return;
        };
        let entry = &mut self.retired[index];
        match kind {
            OpKind::Recv => entry.recv_in_flight = false,
            OpKind::Send => entry.send_in_flight = false,
            _ => {}
        }
        if entry.idle() {
            let entry = self.retired.swap_remove(index);
            self.recycle(entry);
        }
    }

    /// Closes an idle connection's socket and keeps its buffers for reuse.
    fn recycle(&mut self, connection: ConnectionIo) {
        debug_assert!(connection.idle(), "only idle connections are recycled");
        let ConnectionIo {
            stream, buffers, ..
        } = connection;
        drop(stream);
        if self.spare_buffers.len() < self.connections.len() {
            self.spare_buffers.push(buffers);
        }
    }

    /// Closes what the core says to close, then arms a Send for pending
    /// output and a Recv where the core has room.
    fn serve_connections(&mut self) {
        for id in 0..self.connections.len() {
            if self.connections[id].is_none() {
                continue;
            }
            if let Some(reason) = self.core.close_due(id) {
                tracing::debug!(connection = id, %reason, "socket closed");
                self.close_connection(id, None);
                continue;
            }
            self.arm_send(id);
            self.arm_recv(id);
        }
    }

    fn arm_recv(&mut self, id: ConnectionId) {
        // Checked every turn: the core has no room while a command waits
        // for the sequencer or the connection is closing.
        let room = self.core.input_room(id);
        let Some(Some(connection)) = self.connections.get_mut(id) else {
            return;
        };
        if connection.recv_in_flight || room == 0 {
            return;
        }
        let len = room.min(connection.buffers.recv.len());
        // The cast is exact: `len` is at most IO_BUFFER_BYTES.
        let entry = opcode::Recv::new(
            types::Fd(connection.stream.as_raw_fd()),
            connection.buffers.recv.as_mut_ptr(),
            len as u32,
        )
        .build()
        .user_data(encode_user_data(OpKind::Recv, id, connection.generation));
        // SAFETY: the receive buffer is a heap box owned by this connection
        // entry; Rust reads it only after the completion is reaped, and the
        // entry (with the box) moves to the retired list, not to the
        // allocator, if the connection closes first, and is leaked by `Drop`
        // if the agent ends while the Recv is still in flight.
        match unsafe { push(&mut self.ring, &entry) } {
            Ok(()) => connection.recv_in_flight = true,
            Err(error) => tracing::warn!(connection = id, %error, "could not queue a recv"),
        }
    }

    fn arm_send(&mut self, id: ConnectionId) {
        let pending = self.core.output_pending(id);
        let Some(Some(connection)) = self.connections.get_mut(id) else {
            return;
        };
        if connection.send_in_flight || pending.is_empty() {
            return;
        }
        let len = pending.len().min(connection.buffers.send.len());
        connection.buffers.send[..len].copy_from_slice(&pending[..len]);
        // The cast is exact: `len` is at most IO_BUFFER_BYTES. MSG_NOSIGNAL
        // turns a peer's reset into EPIPE rather than a SIGPIPE.
        let entry = opcode::Send::new(
            types::Fd(connection.stream.as_raw_fd()),
            connection.buffers.send.as_ptr(),
            len as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(encode_user_data(OpKind::Send, id, connection.generation));
        // SAFETY: the send buffer is a heap box owned by this connection
        // entry and is not written again until the completion is reaped
        // (`send_in_flight` guards the copy above); the entry moves to the
        // retired list, not to the allocator, if the connection closes
        // first, and `Drop` leaks it if the agent ends with the Send in
        // flight.
        match unsafe { push(&mut self.ring, &entry) } {
            Ok(()) => {
                connection.send_in_flight = true;
                connection.send_len = len;
            }
            Err(error) => tracing::warn!(connection = id, %error, "could not queue a send"),
        }
    }

    /// End of Session to everyone, a bounded wait for the output to drain,
    /// then every socket closed and every operation in flight cancelled.
    fn shut_down(mut self) -> GatewayReport {
        let now_ns = self.now_ns();
        self.core.drain_inbox(&self.inbox, usize::MAX);
        self.core.begin_shutdown(now_ns);
        self.accepting = false;
        if self.accept_in_flight {
            self.cancel(encode_user_data(OpKind::Accept, 0, 0));
        }
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        // Bounded by the deadline: each pass waits at most one tick.
        while Instant::now() < deadline && self.connections.iter().any(Option::is_some) {
            self.serve_connections();
            if let Err(error) = self.submit(true) {
                tracing::warn!(%error, "io_uring_enter failed during shutdown");
                break;
            }
            self.reap();
        }
        for id in 0..self.connections.len() {
            if self.connections[id].is_some() {
                self.close_connection(id, Some("server shutdown".to_string()));
            }
        }
        self.tear_down();
        GatewayReport {
            stats: self.core.stats(),
            last_seq: self.core.last_seq(),
        }
    }

    /// Operations whose completion still has to be reaped before the memory
    /// they point to may be freed (the timer points to a static and is not
    /// counted).
    fn operations_in_flight(&self) -> usize {
        let connection_ops = |connection: &ConnectionIo| {
            usize::from(connection.recv_in_flight) + usize::from(connection.send_in_flight)
        };
        usize::from(self.accept_in_flight)
            + usize::from(self.wake_in_flight)
            + self.cancels_in_flight
            + self
                .connections
                .iter()
                .flatten()
                .map(connection_ops)
                .sum::<usize>()
            + self.retired.iter().map(connection_ops).sum::<usize>()
    }

    /// Cancels everything still in flight and waits, for at most
    /// `TEARDOWN_WAIT`, for the completions; `Drop` leaks whatever buffers
    /// are still referenced after that.
    fn tear_down(&mut self) {
        if self.accept_in_flight {
            self.cancel(encode_user_data(OpKind::Accept, 0, 0));
        }
        if self.wake_in_flight {
            self.cancel(encode_user_data(OpKind::Wake, 0, 0));
        }
        // A second cancel is harmless (the kernel answers ENOENT), and it
        // covers any cancel that could not be queued when the connection
        // was retired.
        for index in 0..self.retired.len() {
            let entry = &self.retired[index];
            let (id, generation) = (entry.id, entry.generation);
            let (recv, send) = (entry.recv_in_flight, entry.send_in_flight);
            if recv {
                self.cancel(encode_user_data(OpKind::Recv, id, generation));
            }
            if send {
                self.cancel(encode_user_data(OpKind::Send, id, generation));
            }
        }
        let deadline = Instant::now() + TEARDOWN_WAIT;
        // Bounded by the deadline: each pass waits at most one tick.
        while self.operations_in_flight() > 0 && Instant::now() < deadline {
            if let Err(error) = self.submit(true) {
                tracing::warn!(%error, "io_uring_enter failed during tear-down");
                break;
            }
            self.reap();
        }
    }
}

impl Drop for UringGatewayAgent {
    /// Leaks every buffer an operation still in flight points to, so that
    /// the kernel can never write into freed memory: after a clean
    /// [`UringGatewayAgent::run`] nothing is left, but a panic, or a kernel
    /// that never completes a cancelled operation, would otherwise free
    /// them under its feet. The ring itself is closed after this, which
    /// makes the kernel cancel what remains.
    fn drop(&mut self) {
        let mut leaked = 0usize;
        if self.wake_in_flight {
            Box::leak(std::mem::take(&mut self.wake_buffer));
            leaked += 1;
        }
        let busy = self
            .connections
            .iter_mut()
            .flatten()
            .chain(self.retired.iter_mut())
            .filter(|connection| !connection.idle());
        for connection in busy {
            Box::leak(std::mem::take(&mut connection.buffers.recv));
            Box::leak(std::mem::take(&mut connection.buffers.send));
            leaked += 1;
        }
        if leaked > 0 {
            tracing::error!(
                buffers = leaked,
                "io_uring operations still in flight at exit; their buffers are leaked"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_inbox::PublishedEvent;
    use crate::gateway_config::{GatewayConfig, GatewayInstrument, IoBackend, SessionConfig};
    use crate::gateway_core::{CommandSubmitter, SubmitRefusal};
    use crate::gateway_runtime::{spawn_gateway, GatewayHandle};
    use crate::ouch::{self, Inbound};
    use crate::soupbintcp::{packet_type, Packet, Password, SessionName, Username};
    use lockstep_engine::{
        AccountId, Command, CommandKind, Event, InstrumentId, RejectReason, SessionId, Token,
    };
    use std::io::Read;
    use std::sync::Mutex;

    /// Records every command the gateway submits.
    struct RecordingSubmitter(Arc<Mutex<Vec<Command>>>);

    impl CommandSubmitter for RecordingSubmitter {
        fn submit(&mut self, command: Command) -> Result<(), SubmitRefusal> {
            self.0.lock().unwrap().push(command);
            Ok(())
        }
    }

    /// Why io_uring cannot run here, if it cannot.
    fn uring_unavailable() -> Option<String> {
        new_ring(8).err().map(|error| error.to_string())
    }

    /// Skips the calling test, with the reason printed, if io_uring is
    /// unavailable on this machine.
    macro_rules! require_uring {
        () => {
            if let Some(why) = uring_unavailable() {
                println!("skipped: io_uring is unavailable here: {why}");
                return;
            }
        };
    }

    struct Harness {
        handle: GatewayHandle,
        commands: Arc<Mutex<Vec<Command>>>,
        inbox: Arc<EventInbox>,
    }

    fn start(connections_max: usize) -> Harness {
        start_with(connections_max, |_| {})
    }

    fn start_with(connections_max: usize, adjust: impl FnOnce(&mut GatewayConfig)) -> Harness {
        let session = SessionConfig {
            username: "alice".to_string(),
            password: "secret".to_string(),
            firm: "ALIC".to_string(),
            account: AccountId(1),
            cancel_on_disconnect: false,
            open_orders_max: 10_000,
            messages_per_second_max: 1_000_000,
            messages_burst_max: 1_000_000,
        };
        let instrument = GatewayInstrument {
            symbol: "AAPL".to_string(),
            instrument: InstrumentId(0),
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut config = GatewayConfig::new(
            listener.local_addr().unwrap(),
            vec![instrument],
            vec![session],
        );
        config.io_backend = IoBackend::Uring;
        config.connections_max = connections_max;
        adjust(&mut config);
        let inbox = Arc::new(EventInbox::new(config.event_queue_max));
        let commands = Arc::new(Mutex::new(Vec::new()));
        let submitter = Box::new(RecordingSubmitter(Arc::clone(&commands)));
        let mut core = GatewayCore::new(config, submitter, 0).unwrap();
        core.finish_rebuild();
        let handle = spawn_gateway(core, Arc::clone(&inbox), listener, None).unwrap();
        assert_eq!(handle.backend, IoBackend::Uring);
        Harness {
            handle,
            commands,
            inbox,
        }
    }

    fn connect(harness: &Harness) -> TcpStream {
        let stream = TcpStream::connect(harness.handle.local_addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    }

    fn send_packet(stream: &mut TcpStream, packet: &Packet<'_>) {
        let mut frame = Vec::new();
        packet.encode(&mut frame).unwrap();
        stream.write_all(&frame).unwrap();
    }

    /// The next packet other than a Server Heartbeat, as (type, payload);
    /// `None` at end of stream.
    fn next_packet(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
        for _ in 0..100 {
            let mut length = [0u8; 2];
            match stream.read_exact(&mut length) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return None,
                Err(error) if error.kind() == io::ErrorKind::ConnectionReset => return None,
                Err(error) => panic!("reading a packet: {error}"),
            }
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut body).unwrap();
            if body[0] != packet_type::SERVER_HEARTBEAT {
                return Some((body[0], body[1..].to_vec()));
            }
        }
        panic!("only heartbeats arrived");
    }

    fn log_in(stream: &mut TcpStream) {
        send_packet(
            stream,
            &Packet::LoginRequest {
                username: Username::left("alice").unwrap(),
                password: Password::left("secret").unwrap(),
                requested_session: SessionName::BLANK,
                requested_sequence_number: 0,
            },
        );
        let (kind, _) = next_packet(stream).expect("a reply to the login");
        assert_eq!(kind, packet_type::LOGIN_ACCEPTED, "login accepted");
    }

    fn enter_order(token: &str, shares: u32) -> Vec<u8> {
        let order = ouch::EnterOrder {
            token: ouch::Token::left(token).unwrap(),
            side: ouch::Side::Buy,
            shares,
            stock: ouch::Stock::left("AAPL").unwrap(),
            price: 1_500_000,
            time_in_force: ouch::TIF_SYSTEM_HOURS,
            firm: ouch::Firm::BLANK,
            display: ouch::Display::AttributablePriceToDisplay,
            capacity: ouch::Capacity::Agency,
            intermarket_sweep: ouch::IntermarketSweep::NotEligible,
            minimum_quantity: 0,
            cross_type: ouch::CrossType::NoCross,
            customer_type: ouch::CustomerType::PortDefault,
        };
        let mut payload = Vec::new();
        Inbound::EnterOrder(order).encode(&mut payload);
        payload
    }

    /// Waits up to five seconds for `count` commands to have been submitted.
    fn wait_for_commands(harness: &Harness, count: usize) -> Vec<Command> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let commands = harness.commands.lock().unwrap().clone();
            if commands.len() >= count || Instant::now() >= deadline {
                return commands;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn uring_gateway_logs_in_takes_an_order_and_ends_the_session() {
        require_uring!();
        let harness = start(8);
        let mut client = connect(&harness);
        log_in(&mut client);
        let payload = enter_order("ORDER1", 100);
        send_packet(&mut client, &Packet::UnsequencedData(&payload));
        let commands = wait_for_commands(&harness, 1);
        assert_eq!(commands.len(), 1, "one command submitted: {commands:?}");
        let Command::New(order) = commands[0] else {
            panic!("expected a Command::New, got {:?}", commands[0]);
        };
        assert_eq!(order.qty, 100);
        assert_eq!(order.instrument, InstrumentId(0));
        assert_eq!(order.account, AccountId(1));
        assert_eq!(order.price, 1_500_000);

        let report = harness.handle.stop();
        let (kind, _) = next_packet(&mut client).expect("End of Session before the close");
        assert_eq!(kind, packet_type::END_OF_SESSION);
        assert_eq!(
            next_packet(&mut client),
            None,
            "the socket is closed after it"
        );
        assert_eq!(report.stats.connections_opened, 1);
        assert_eq!(report.stats.logins_accepted, 1);
        assert_eq!(report.stats.commands_submitted, 1);
        assert_eq!(report.stats.disconnects, 1);
    }

    #[test]
    fn uring_gateway_takes_a_burst_larger_than_its_input_buffer() {
        require_uring!();
        let harness = start(8);
        let mut client = connect(&harness);
        log_in(&mut client);
        // 2,000 orders of 52 bytes each, about 100 KiB in one write: more
        // than the core's input buffer and the agent's receive buffer, so
        // the Recv is re-armed many times with whatever room the core has.
        let count = 2_000;
        let mut burst = Vec::new();
        for index in 0..count {
            let payload = enter_order(&format!("T{index}"), 1 + index);
            Packet::UnsequencedData(&payload)
                .encode(&mut burst)
                .unwrap();
        }
        client.write_all(&burst).unwrap();
        let commands = wait_for_commands(&harness, count as usize);
        assert_eq!(commands.len(), count as usize);
        for (index, command) in commands.iter().enumerate() {
            let Command::New(order) = command else {
                panic!("expected a Command::New, got {command:?}");
            };
            assert_eq!(order.qty, 1 + index as u32, "orders arrive in order");
        }
        let report = harness.handle.stop();
        assert_eq!(report.stats.commands_submitted, u64::from(count));
    }

    #[test]
    fn uring_gateway_frees_the_slot_and_session_when_the_peer_disconnects() {
        require_uring!();
        // One slot: the second connection gets the first one's slot (under
        // a new generation) only if the disconnect was seen.
        let harness = start(1);
        let mut first = connect(&harness);
        log_in(&mut first);
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut second = loop {
            let mut client = connect(&harness);
            send_packet(
                &mut client,
                &Packet::LoginRequest {
                    username: Username::left("alice").unwrap(),
                    password: Password::left("secret").unwrap(),
                    requested_session: SessionName::BLANK,
                    requested_sequence_number: 0,
                },
            );
            // Until the first disconnect is processed, the table is full (the
            // connection is closed) or the session is taken (Login Rejected).
            match next_packet(&mut client) {
                Some((packet_type::LOGIN_ACCEPTED, _)) => break client,
                other => {
                    assert!(
                        Instant::now() < deadline,
                        "never logged in again: {other:?}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        let payload = enter_order("AFTER", 7);
        send_packet(&mut second, &Packet::UnsequencedData(&payload));
        let commands = wait_for_commands(&harness, 1);
        assert!(matches!(commands.as_slice(), [Command::New(order)] if order.qty == 7));
        let report = harness.handle.stop();
        assert_eq!(
            next_packet(&mut second).map(|(kind, _)| kind),
            Some(packet_type::END_OF_SESSION)
        );
        assert!(report.stats.connections_opened >= 2);
        assert!(report.stats.logins_accepted >= 2);
    }

    #[test]
    fn uring_gateway_closes_a_connection_the_table_has_no_room_for() {
        require_uring!();
        let harness = start(1);
        let mut first = connect(&harness);
        log_in(&mut first);
        let mut second = connect(&harness);
        assert_eq!(
            next_packet(&mut second),
            None,
            "the second connection is closed"
        );
        let report = harness.handle.stop();
        assert_eq!(report.stats.connections_refused, 1);
        assert_eq!(
            next_packet(&mut first).map(|(kind, _)| kind),
            Some(packet_type::END_OF_SESSION)
        );
    }

    #[test]
    fn uring_gateway_streams_published_messages_through_short_sends() {
        require_uring!();
        // The output buffer holds the whole stream, so that a client that is
        // slow to start reading is not taken for a slow consumer.
        let harness = start_with(8, |config| config.output_buffer_bytes_max = 16 << 20);
        let mut client = connect(&harness);
        log_in(&mut client);
        // About 6.75 MB of Sequenced Data, published while the client is not
        // reading: more than the two sockets' buffers hold (the sender's
        // grows to 4 MiB at most by default), so Sends come back short and
        // the rest goes out as the client reads.
        let count: u32 = 250_000;
        let stopping = std::sync::atomic::AtomicBool::new(false);
        for index in 0..count {
            let mut token = [b' '; 14];
            let digits = format!("R{index}");
            token[..digits.len()].copy_from_slice(digits.as_bytes());
            harness.inbox.push(
                PublishedEvent {
                    seq: u64::from(index) + 1,
                    timestamp_ns: 0,
                    event: Event::Rejected {
                        session: SessionId(0),
                        token: Token::from_bytes(token),
                        command: CommandKind::Cancel,
                        reason: RejectReason::UnknownOrder,
                    },
                },
                &stopping,
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        for index in 0..count {
            let (kind, payload) = next_packet(&mut client).expect("a Sequenced Data packet");
            assert_eq!(kind, packet_type::SEQUENCED_DATA, "message {index}");
            let Ok(ouch::Outbound::Rejected(rejected)) = ouch::Outbound::decode(&payload) else {
                panic!("message {index} is not a Rejected");
            };
            let expected = ouch::Token::left(&format!("R{index}")).unwrap();
            assert_eq!(rejected.token, expected, "messages arrive in order");
        }
        let report = harness.handle.stop();
        assert_eq!(
            next_packet(&mut client).map(|(kind, _)| kind),
            Some(packet_type::END_OF_SESSION)
        );
        assert_eq!(report.last_seq, u64::from(count));
        assert_eq!(report.stats.messages_sequenced, u64::from(count));
        assert_eq!(report.stats.disconnects_slow_consumer, 0);
    }

    #[test]
    fn user_data_round_trips() {
        let user_data = encode_user_data(OpKind::Send, 12_345, u32::MAX - 1);
        assert_eq!(
            decode_user_data(user_data),
            (Some(OpKind::Send), 12_345, u32::MAX - 1)
        );
        assert_eq!(decode_user_data(0).0, None);
    }
}
