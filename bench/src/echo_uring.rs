//! The io_uring loop of the echo baseline ([`crate::echo`]): the same
//! protocol as the mio loop, with the work handed to the kernel as the
//! gateway's io_uring backend does it: per connection at most one Recv into,
//! and at most one Send from, a buffer this loop owns and does not touch
//! until the operation's completion is reaped; replies produced meanwhile
//! wait in a second buffer. A re-armed 20 ms Timeout lets the loop see the
//! stop flag; it ends when every connection is closed. The unsafe code is the
//! submission of entries that point into those buffers.

#![allow(unsafe_code)]

use crate::echo::{EchoConnection, EchoInput, EchoStats, READ_CHUNK};
use io_uring::{opcode, squeue, types, IoUring};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const RECV: u64 = 1;
const SEND: u64 = 2;
const TIMER: u64 = 3;
/// How often the loop wakes to look at the stop flag.
static TICK: types::Timespec = types::Timespec::new().nsec(20_000_000);
/// How long a stop waits for operations in flight before leaking buffers.
const TEARDOWN_WAIT: Duration = Duration::from_secs(1);

fn user_data(kind: u64, index: usize) -> u64 {
    kind << 32 | index as u64
}

/// A ring for `sessions` connections, or why io_uring is unavailable.
pub(crate) fn new_ring(sessions: usize) -> Result<IoUring, String> {
    let entries = sessions
        .saturating_mul(2)
        .saturating_add(8)
        .next_power_of_two()
        .clamp(16, 4096) as u32;
    IoUring::builder()
        .setup_cqsize(entries.saturating_mul(2))
        .build(entries)
        .map_err(|error| format!("io_uring unavailable: {error}"))
}

struct Connection {
    stream: TcpStream,
    protocol: EchoConnection,
    recv_buffer: Box<[u8]>,
    recv_in_flight: bool,
    /// Replies not yet handed to the kernel.
    pending: Vec<u8>,
    /// The buffer of the Send in flight, and how much of it is written.
    sending: Vec<u8>,
    sent: usize,
    send_in_flight: bool,
    closing: bool,
}

/// Queues `entry`, flushing a full submission queue once.
///
/// # Safety
/// Whatever `entry` points to must stay valid until its completion.
unsafe fn push(ring: &mut IoUring, entry: &squeue::Entry) -> Result<(), String> {
    for _ in 0..2 {
        // SAFETY: forwarded from the caller.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()
            .map_err(|error| format!("echo: io_uring submit: {error}"))?;
    }
    Err("echo: io_uring submission queue full".to_string())
}

impl Connection {
    fn arm(&mut self, ring: &mut IoUring, index: usize) -> Result<(), String> {
        if self.closing {
            return Ok(());
        }
        if !self.recv_in_flight {
            let entry = opcode::Recv::new(
                types::Fd(self.stream.as_raw_fd()),
                self.recv_buffer.as_mut_ptr(),
                self.recv_buffer.len() as u32,
            )
            .build()
            .user_data(user_data(RECV, index));
            // SAFETY: the boxed buffer is neither read nor moved nor freed
            // while the Recv is in flight (teardown leaks it if need be).
            unsafe { push(ring, &entry)? };
            self.recv_in_flight = true;
        }
        if !self.send_in_flight {
            if self.sent == self.sending.len() && !self.pending.is_empty() {
                self.sending.clear();
                self.sent = 0;
                std::mem::swap(&mut self.sending, &mut self.pending);
            }
            if self.sent < self.sending.len() {
                let remaining = &self.sending[self.sent..];
                let entry = opcode::Send::new(
                    types::Fd(self.stream.as_raw_fd()),
                    remaining.as_ptr(),
                    remaining.len() as u32,
                )
                .build()
                .user_data(user_data(SEND, index));
                // SAFETY: `sending` is not touched (so its heap buffer does
                // not move) until the Send's completion is reaped.
                unsafe { push(ring, &entry)? };
                self.send_in_flight = true;
            }
        }
        Ok(())
    }

    fn close(&mut self) {
        if !self.closing {
            self.closing = true;
            // Completes a Recv or Send still in flight.
            let _ = self.stream.shutdown(Shutdown::Both);
        }
    }

    fn finished(&self) -> bool {
        self.closing && !self.recv_in_flight && !self.send_in_flight
    }
}

pub(crate) fn serve(
    mut ring: IoUring,
    streams: Vec<TcpStream>,
    stop: &AtomicBool,
) -> Result<EchoStats, String> {
    let mut stats = EchoStats {
        connections: streams.len() as u64,
        ..EchoStats::default()
    };
    let mut connections: Vec<Option<Connection>> = Vec::with_capacity(streams.len());
    for stream in streams {
        // io_uring waits for readiness itself; a non-blocking socket would
        // make it return EAGAIN instead.
        stream
            .set_nonblocking(false)
            .map_err(|error| format!("echo: {error}"))?;
        connections.push(Some(Connection {
            stream,
            protocol: EchoConnection::new(),
            recv_buffer: vec![0u8; READ_CHUNK].into_boxed_slice(),
            recv_in_flight: false,
            pending: Vec::with_capacity(READ_CHUNK),
            sending: Vec::with_capacity(READ_CHUNK),
            sent: 0,
            send_in_flight: false,
            closing: false,
        }));
    }
    let mut timer_in_flight = false;
    let mut completions: Vec<(u64, i32)> = Vec::with_capacity(256);
    let mut stop_deadline: Option<Instant> = None;
    let mut result = Ok(());
    while connections.iter().any(Option::is_some) {
        if stop.load(Ordering::Acquire) && stop_deadline.is_none() {
            stop_deadline = Some(Instant::now() + TEARDOWN_WAIT);
            connections.iter_mut().flatten().for_each(Connection::close);
        }
        if stop_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        for (index, slot) in connections.iter_mut().enumerate() {
            if let Some(connection) = slot {
                if let Err(error) = connection.arm(&mut ring, index) {
                    result = Err(error);
                    connection.close();
                }
            }
        }
        if !timer_in_flight {
            let entry = opcode::Timeout::new(&TICK)
                .build()
                .user_data(user_data(TIMER, 0));
            // SAFETY: the timespec is a static.
            if let Err(error) = unsafe { push(&mut ring, &entry) } {
                result = Err(error);
                break;
            }
            timer_in_flight = true;
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(error) if error.raw_os_error() == Some(libc::EINTR) => {}
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) => {}
            Err(error) => {
                result = Err(format!("echo: io_uring_enter: {error}"));
                break;
            }
        }
        completions.clear();
        completions.extend(ring.completion().map(|cqe| (cqe.user_data(), cqe.result())));
        for &(data, outcome) in &completions {
            let kind = data >> 32;
            let index = (data & 0xFFFF_FFFF) as usize;
            if kind == TIMER {
                timer_in_flight = false;
                continue;
            }
            let Some(Some(connection)) = connections.get_mut(index) else {
                continue;
            };
            match kind {
                RECV => {
                    connection.recv_in_flight = false;
                    if outcome > 0 {
                        let bytes = &connection.recv_buffer[..outcome as usize];
                        match connection
                            .protocol
                            .take(bytes, &mut connection.pending, &mut stats)
                        {
                            Ok(EchoInput::Open) => {}
                            Ok(EchoInput::Logout) | Err(_) => connection.close(),
                        }
                    } else if outcome != -libc::EINTR && outcome != -libc::EAGAIN {
                        connection.close();
                    }
                }
                SEND => {
                    connection.send_in_flight = false;
                    if outcome >= 0 {
                        connection.sent += outcome as usize;
                    } else if outcome != -libc::EINTR && outcome != -libc::EAGAIN {
                        connection.close();
                    }
                }
                _ => {}
            }
        }
        for slot in connections.iter_mut() {
            if slot.as_ref().is_some_and(Connection::finished) {
                *slot = None;
            }
        }
    }
    // Operations still in flight after the teardown wait point into these
    // buffers: leak them rather than let the kernel write freed memory.
    for connection in connections.into_iter().flatten() {
        if connection.recv_in_flight || connection.send_in_flight {
            std::mem::forget(connection);
        }
    }
    result.map(|()| stats)
}
