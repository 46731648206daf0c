//! The event loop of `lockstep bench`: every session's socket, driven from
//! one thread. Open loop, each session has a fixed schedule (session `s`'s
//! `j`-th message is intended for `(j * sessions + s) / rate` seconds after
//! the start, so the sessions together send at the rate, evenly spread); a
//! message is queued as soon as its time has come, however far behind the
//! server is, and its latency counts from that intended time, so a stall of
//! the server (or of the driver) shows up in full instead of being omitted.
//! Closed loop, each session keeps K messages unanswered and sends the next
//! as an answer arrives. Between sends the thread sleeps in `ppoll` until the
//! next intended time or an answer, with 1 ns timer slack (or spins with
//! `spin`). A full output buffer keeps the message (and its intended time)
//! until the socket takes more. After the last intended time it waits for
//! every answer, at most the drain timeout.

use crate::load::{LoadOptions, Pacing};
use crate::progress::ProgressSink;
use crate::session_flow::{Outgoing, Recorder, SessionFlow};
use crate::sys::{PollSet, TightTimerSlack};
use lockstep_transport::client::{ClientError, ClientMessage};
use lockstep_transport::client_nonblocking::NonBlockingClient;
use lockstep_transport::ouch::{Inbound, Outbound};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Messages one run sends at most (each keeps a small record until the run
/// ends); a closed-loop run stops sending when it gets there.
pub const MESSAGES_PER_RUN_MAX: u64 = 30_000_000;
/// How often heartbeats and progress are looked at.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// The longest single sleep, so housekeeping keeps its pace.
const SLEEP_MAX: Duration = Duration::from_millis(50);
/// A read at least this long may have stopped at a full read buffer.
const FULL_READ_BYTES: usize = 4096;
/// How long to keep reading after the last answer, for trailing executions.
const GRACE: Duration = Duration::from_millis(20);
/// Full reads of one socket per turn of the loop, at most.
const READS_PER_TURN_MAX: usize = 64;

/// One session as the driver holds it.
pub(crate) struct DriverSession {
    pub(crate) label: String,
    pub(crate) client: NonBlockingClient,
    pub(crate) flow: SessionFlow,
    next_slot: u64,
    /// A message the output buffer had no room for, and its intended time.
    stalled: Option<(Outgoing, u64)>,
}

impl DriverSession {
    pub(crate) fn new(label: String, client: NonBlockingClient, flow: SessionFlow) -> Self {
        DriverSession {
            label,
            client,
            flow,
            next_slot: 0,
            stalled: None,
        }
    }

    /// Queues `message`; false if the output buffer is full.
    fn queue(&mut self, message: &Outgoing) -> Result<bool, String> {
        let inbound = match message {
            Outgoing::Enter(order) => Inbound::EnterOrder(*order),
            Outgoing::Cancel(cancel) => Inbound::CancelOrder(*cancel),
        };
        queue_inbound(&mut self.client, &inbound, &self.label)
    }
}

/// Queues one OUCH message on `client`; false if its output buffer is full
/// (the caller keeps the message and tries again when the socket drains).
/// Shared by the load driver and the replay driver.
pub(crate) fn queue_inbound(
    client: &mut NonBlockingClient,
    message: &Inbound,
    label: &str,
) -> Result<bool, String> {
    let queued = match message {
        Inbound::EnterOrder(order) => client.queue_enter(order),
        Inbound::CancelOrder(cancel) => client.queue_cancel(cancel),
        Inbound::ReplaceOrder(replace) => client.queue_replace(replace),
    };
    match queued {
        Ok(()) => Ok(true),
        Err(ClientError::OutputFull) => Ok(false),
        Err(error) => Err(format!("{label}: {error}")),
    }
}

/// How the driving ended.
pub(crate) struct DriveOutcome {
    pub(crate) elapsed: Duration,
    pub(crate) unanswered: u64,
    pub(crate) capped: bool,
}

fn ns_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The intended time of session `session`'s `slot`-th message.
fn slot_ns(slot: u64, session: usize, sessions: usize, rate_per_s: u64) -> u64 {
    let global = u128::from(slot) * sessions as u128 + session as u128;
    u64::try_from(global * 1_000_000_000 / u128::from(rate_per_s.max(1))).unwrap_or(u64::MAX)
}

/// Reads everything a readable session's socket holds and hands each
/// sequenced message, with its arrival time since `start`, to `on_reply`.
/// Shared by the load driver and the replay driver.
pub(crate) fn read_replies(
    client: &mut NonBlockingClient,
    label: &str,
    start: Instant,
    mut on_reply: impl FnMut(&Outbound, u64) -> Result<(), String>,
) -> Result<(), String> {
    // Bounded: each turn either reads a full buffer or ends the loop, and
    // a socket cannot stay full for ever against a reader this fast; the
    // cap keeps one flooding session from starving the others.
    for _ in 0..READS_PER_TURN_MAX {
        let read = client
            .poll_read()
            .map_err(|error| format!("{label}: {error}"))?;
        let arrival_ns = ns_since(start);
        while let Some(message) = client.next_message() {
            match message.map_err(|error| format!("{label}: {error}"))? {
                ClientMessage::Sequenced { message, .. } => on_reply(&message, arrival_ns)?,
                ClientMessage::ServerHeartbeat | ClientMessage::Debug(_) => {}
                ClientMessage::EndOfSession => {
                    return Err(format!("{label}: the server ended the session"))
                }
            }
        }
        // The messages were drained before the read, so a read that
        // stopped at a full buffer brought in at least 7 KiB (8 frames of
        // 1 KiB, less a partial one); anything less ended at "would block"
        // and another read would only say so again. (Were the buffer
        // smaller, nothing is lost: ppoll is level-triggered and reports
        // the rest on the next turn.)
        if read < FULL_READ_BYTES {
            break;
        }
    }
    Ok(())
}

pub(crate) fn drive(
    sessions: &mut [DriverSession],
    options: &LoadOptions,
    recorder: &mut Recorder,
    progress: &mut dyn ProgressSink,
) -> Result<DriveOutcome, String> {
    let count = sessions.len();
    let fds: Vec<_> = sessions.iter().map(|s| s.client.as_raw_fd()).collect();
    let mut poll = PollSet::new(&fds);
    let _slack = TightTimerSlack::new();
    let end_ns = u64::try_from((options.warmup + options.duration).as_nanos()).unwrap_or(u64::MAX);
    let drain_end_ns =
        end_ns.saturating_add(u64::try_from(options.drain_timeout.as_nanos()).unwrap_or(u64::MAX));
    let mut sent_total: u64 = 0;
    let mut answered_total: u64 = 0;
    let mut capped = false;
    let mut grace_end_ns: Option<u64> = None;
    let start = Instant::now();
    let mut last_housekeeping = start;
    loop {
        let now_ns = ns_since(start);
        // Send whatever is due.
        let mut next_due_ns = u64::MAX;
        for (index, session) in sessions.iter_mut().enumerate() {
            loop {
                if let Some((message, intended_ns)) = session.stalled.take() {
                    if !session.queue(&message)? {
                        session.stalled = Some((message, intended_ns));
                        break;
                    }
                    recorder.sent(intended_ns, now_ns);
                    continue;
                }
                if sent_total >= MESSAGES_PER_RUN_MAX {
                    capped = true;
                    break;
                }
                let intended_ns = match options.pacing {
                    Pacing::OpenLoop { rate_per_s } => {
                        let due = slot_ns(session.next_slot, index, count, rate_per_s);
                        if due >= end_ns {
                            break;
                        }
                        if due > now_ns {
                            next_due_ns = next_due_ns.min(due);
                            break;
                        }
                        due
                    }
                    Pacing::ClosedLoop { outstanding } => {
                        if now_ns >= end_ns
                            || session.flow.pending_answers >= u64::from(outstanding)
                        {
                            break;
                        }
                        now_ns
                    }
                };
                let message = session.flow.next_message(intended_ns, recorder);
                session.next_slot += 1;
                sent_total += 1;
                if session.queue(&message)? {
                    recorder.sent(intended_ns, now_ns);
                } else {
                    session.stalled = Some((message, intended_ns));
                    break;
                }
            }
            if session.client.pending_output_bytes() > 0 {
                session
                    .client
                    .flush()
                    .map_err(|error| format!("{}: {error}", session.label))?;
            }
            poll.want_write(index, session.client.pending_output_bytes() > 0);
        }
        // Done, or out of time?
        let schedule_done = match options.pacing {
            // No session has a message due before the end.
            Pacing::OpenLoop { .. } => next_due_ns == u64::MAX,
            Pacing::ClosedLoop { .. } => capped || now_ns >= end_ns,
        };
        let sending_done = schedule_done && sessions.iter().all(|s| s.stalled.is_none());
        let pending: u64 = sessions.iter().map(|s| s.flow.pending_answers).sum();
        if sending_done && pending == 0 {
            let grace_end = *grace_end_ns.get_or_insert(now_ns + GRACE.as_nanos() as u64);
            if now_ns >= grace_end {
                break;
            }
        }
        if now_ns >= drain_end_ns {
            break;
        }
        // Sleep until something is due or arrives.
        let wait = if options.spin {
            Duration::ZERO
        } else if next_due_ns != u64::MAX {
            Duration::from_nanos(next_due_ns.saturating_sub(now_ns)).min(SLEEP_MAX)
        } else {
            SLEEP_MAX
        };
        poll.wait(wait).map_err(|error| format!("ppoll: {error}"))?;
        // Read and match every answer.
        for (index, session) in sessions.iter_mut().enumerate() {
            if poll.writable(index) {
                session
                    .client
                    .flush()
                    .map_err(|error| format!("{}: {error}", session.label))?;
            }
            if !poll.readable(index) {
                continue;
            }
            let flow = &mut session.flow;
            read_replies(
                &mut session.client,
                &session.label,
                start,
                |message, arrival_ns| {
                    answered_total += flow.on_reply(message, arrival_ns, recorder);
                    Ok(())
                },
            )?;
        }
        if last_housekeeping.elapsed() >= HOUSEKEEPING {
            let now = Instant::now();
            last_housekeeping = now;
            for session in sessions.iter_mut() {
                session.client.maybe_heartbeat(now);
            }
            progress.update(start.elapsed(), sent_total, answered_total);
        }
    }
    let unanswered = sessions.iter().map(|s| s.flow.pending_answers).sum();
    Ok(DriveOutcome {
        elapsed: start.elapsed(),
        unanswered,
        capped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_share_the_rate_evenly() {
        // Two sessions at 1,000/s: one message every millisecond, alternating.
        assert_eq!(slot_ns(0, 0, 2, 1_000), 0);
        assert_eq!(slot_ns(0, 1, 2, 1_000), 1_000_000);
        assert_eq!(slot_ns(1, 0, 2, 1_000), 2_000_000);
        assert_eq!(slot_ns(1, 1, 2, 1_000), 3_000_000);
        assert_eq!(slot_ns(u64::MAX, 0, 2, 1), u64::MAX);
    }
}
