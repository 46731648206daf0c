//! The two system calls of `lockstep bench`'s driver that std does not wrap:
//! `ppoll(2)` over the sessions' sockets with a nanosecond timeout (plain
//! `poll` and epoll round their timeouts up to a millisecond, far coarser
//! than the gap between two orders at tens of thousands per second), and the
//! thread's timer slack (`PR_SET_TIMERSLACK`), which Linux otherwise adds to
//! every sleep (50 µs for a normal thread). They are the only unsafe code of
//! the driver, each a single call on memory this module owns.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// The sockets the driver waits on, one `pollfd` each.
pub(crate) struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    pub(crate) fn new(fds: &[RawFd]) -> PollSet {
        PollSet {
            fds: fds
                .iter()
                .map(|&fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
        }
    }

    /// Also wait for socket `index` to take more output.
    pub(crate) fn want_write(&mut self, index: usize, want: bool) {
        if let Some(entry) = self.fds.get_mut(index) {
            entry.events = if want {
                libc::POLLIN | libc::POLLOUT
            } else {
                libc::POLLIN
            };
        }
    }

    /// Waits until a socket is ready or `timeout` passes (zero: just look);
    /// returns how many sockets are ready. A signal is "none ready".
    pub(crate) fn wait(&mut self, timeout: Duration) -> io::Result<usize> {
        let spec = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            // Below 10^9, so it fits a c_long of any width.
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        let count = libc::nfds_t::try_from(self.fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a live, exclusively borrowed array of `count`
        // pollfd entries and `spec` a valid timespec; ppoll writes only the
        // entries' `revents`. A null signal mask leaves the mask alone.
        let ready = unsafe { libc::ppoll(self.fds.as_mut_ptr(), count, &spec, std::ptr::null()) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(error)
            };
        }
        Ok(usize::try_from(ready).unwrap_or(0))
    }

    /// Socket `index` has input, an error or a hang-up to read.
    pub(crate) fn readable(&self, index: usize) -> bool {
        self.fds.get(index).is_some_and(|entry| {
            entry.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0
        })
    }

    /// Socket `index` takes output again.
    pub(crate) fn writable(&self, index: usize) -> bool {
        self.fds
            .get(index)
            .is_some_and(|entry| entry.revents & libc::POLLOUT != 0)
    }
}

/// Sets the calling thread's timer slack to 1 ns while it lives, so a
/// ppoll timeout ends when asked rather than up to 50 µs later; restores the
/// previous slack when dropped.
pub(crate) struct TightTimerSlack {
    previous_ns: Option<libc::c_ulong>,
}

impl TightTimerSlack {
    pub(crate) fn new() -> TightTimerSlack {
        // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the slack.
        let previous = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
        let previous_ns = libc::c_ulong::try_from(previous).ok();
        if previous_ns.is_some() {
            // SAFETY: PR_SET_TIMERSLACK takes the slack by value.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        }
        TightTimerSlack { previous_ns }
    }
}

impl Drop for TightTimerSlack {
    fn drop(&mut self) {
        if let Some(previous) = self.previous_ns {
            // SAFETY: as in `new`.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, previous, 0, 0, 0) };
        }
    }
}
