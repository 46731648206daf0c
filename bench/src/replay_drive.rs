//! The event loop of `lockstep bench --replay` (see [`crate::replay`]):
//! every session's socket driven from one thread. It queues the planned
//! messages in the file's order, as soon as each is due (at once for
//! `--speed max`); before a message of another session than the previous
//! one it waits until the server has sequenced every message sent so far,
//! so the sequencer sees the file's total order. Replies are read all the
//! time, so nothing backs up, and each sequenced message a session receives
//! is matched, by its position, to the command the plan says caused it: a
//! command's first message to its own session is its answer, timed from
//! the command's intended send time. Every wait is bounded: the stall
//! timeout ends a run that stops making progress, the drain timeout ends
//! the wait for the last answers.

use crate::driver::{queue_inbound, read_replies};
use crate::latency::{new_latency_histogram, record_latency};
use crate::progress::ProgressSink;
use crate::replay::{ReplayOptions, ReplyCounts};
use crate::replay_plan::{Digest, Plan};
use crate::sys::{PollSet, TightTimerSlack};
use hdrhistogram::Histogram;
use lockstep_transport::client_nonblocking::NonBlockingClient;
use lockstep_transport::ouch::Inbound;
use lockstep_transport::server::Server;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Output buffer of each session's client.
pub(crate) const CLIENT_OUTPUT_BYTES: usize = 256 * 1024;
/// Messages queued per turn of the loop before replies are read again.
const SEND_BATCH: usize = 1024;
/// The longest single sleep, so heartbeats and progress keep their pace.
const SLEEP_MAX: Duration = Duration::from_millis(50);
/// How long to sleep while waiting for the sequencer at a session switch.
const BARRIER_POLL: Duration = Duration::from_micros(20);
/// How often heartbeats and progress are looked at.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

/// One logged-in session and what it has received.
pub(crate) struct Connected {
    pub(crate) username: String,
    pub(crate) client: NonBlockingClient,
    /// Sequenced messages received so far (the index of the next one in
    /// the plan's owners).
    pub(crate) received: usize,
    pub(crate) digest: Digest,
}

impl Connected {
    /// Queues one message; false if the output buffer is full.
    fn queue(&mut self, message: &Inbound) -> Result<bool, String> {
        // The username alone names the session in an error: no string is
        // built per message on this path.
        queue_inbound(&mut self.client, message, &self.username)
    }
}

/// What the driving measured.
pub(crate) struct Driven {
    pub(crate) sent: u64,
    pub(crate) received: ReplyCounts,
    pub(crate) unanswered: u64,
    pub(crate) outputs_match: bool,
    pub(crate) barriers: u64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) wall: Duration,
}

fn ns_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Sends every planned message in order and matches every reply; see the
/// module comment for the ordering and pacing rules.
pub(crate) fn drive(
    plan: &Plan,
    sessions: &mut [Connected],
    server: &Server,
    options: &ReplayOptions,
    progress: &mut dyn ProgressSink,
) -> Result<Driven, String> {
    let system = server
        .system()
        .ok_or_else(|| "the server has no running core".to_string())?;
    // A fresh data directory: the journal starts at seq 1, so after `sent`
    // commands the server has sequenced exactly `sent`.
    let base_seq = system.sequenced_seq();
    if base_seq != 0 {
        return Err(format!(
            "the fresh server has already sequenced {base_seq} commands; its journal must start at seq 1"
        ));
    }
    let count = plan.messages.len();
    let fds: Vec<_> = sessions.iter().map(|s| s.client.as_raw_fd()).collect();
    let mut poll = PollSet::new(&fds);
    let _slack = TightTimerSlack::new();
    let mut intended_ns = vec![0u64; count];
    let mut answered = vec![false; count];
    let mut answered_count: u64 = 0;
    let mut latency = new_latency_histogram();
    let mut received = ReplyCounts::default();
    let mut unexpected: u64 = 0;
    let mut scratch = Vec::with_capacity(128);
    let mut next = 0usize;
    let mut sent: u64 = 0;
    let mut barriers: u64 = 0;
    let mut last_session: Option<usize> = None;
    let mut last_answer_ns: u64 = 0;
    let mut drain_end_ns: Option<u64> = None;
    let stall_ns = u64::try_from(options.stall_timeout.as_nanos()).unwrap_or(u64::MAX);
    let start = Instant::now();
    let mut last_progress_ns: u64 = 0;
    let mut last_housekeeping = start;
    loop {
        let now_ns = ns_since(start);
        // Send whatever is due and allowed.
        let mut next_due_ns: Option<u64> = None;
        let mut at_barrier = false;
        let mut output_full = false;
        let mut batch = 0;
        while next < count && batch < SEND_BATCH {
            let planned = &plan.messages[next];
            let intended = planned.offset_ns.unwrap_or(now_ns);
            if intended > now_ns {
                next_due_ns = Some(intended);
                break;
            }
            let session = usize::from(planned.session);
            if last_session.is_some_and(|last| last != session) {
                let sequenced = system.sequenced_seq() - base_seq;
                if sequenced > sent {
                    return Err(format!(
                        "the server sequenced {sequenced} commands for {sent} sent: something \
                         other than the replay submitted commands"
                    ));
                }
                if sequenced < sent {
                    at_barrier = true;
                    break;
                }
                barriers += 1;
            }
            if !sessions[session].queue(&planned.message)? {
                output_full = true;
                break;
            }
            intended_ns[next] = intended;
            next += 1;
            sent += 1;
            batch += 1;
            last_session = Some(session);
            last_progress_ns = now_ns;
        }
        for (index, session) in sessions.iter_mut().enumerate() {
            if session.client.pending_output_bytes() > 0 {
                session
                    .client
                    .flush()
                    .map_err(|error| format!("session {}: {error}", session.username))?;
            }
            poll.want_write(index, session.client.pending_output_bytes() > 0);
        }
        // Done, or out of time?
        let all_received = sessions
            .iter()
            .zip(&plan.owners)
            .all(|(session, owners)| session.received >= owners.len());
        if next == count {
            if all_received {
                break;
            }
            let drain_timeout_ns =
                u64::try_from(options.drain_timeout.as_nanos()).unwrap_or(u64::MAX);
            let end = *drain_end_ns.get_or_insert(now_ns.saturating_add(drain_timeout_ns));
            if now_ns >= end {
                break;
            }
        } else if next_due_ns.is_none() && now_ns.saturating_sub(last_progress_ns) > stall_ns {
            let sequenced = system.sequenced_seq() - base_seq;
            return Err(if at_barrier {
                format!(
                    "no progress for {:?}: waiting at a session switch for the server to sequence \
                     the {sent} commands sent, it has sequenced {sequenced}",
                    options.stall_timeout
                )
            } else {
                format!(
                    "no progress for {:?}: {} of {count} commands sent, the server has sequenced \
                     {sequenced}{}",
                    options.stall_timeout,
                    sent,
                    if output_full {
                        " (the socket takes no more output)"
                    } else {
                        ""
                    }
                )
            });
        }
        // Sleep until something is due or arrives.
        let wait = if at_barrier {
            BARRIER_POLL
        } else if batch == SEND_BATCH {
            Duration::ZERO
        } else if let Some(due_ns) = next_due_ns {
            Duration::from_nanos(due_ns.saturating_sub(now_ns)).min(SLEEP_MAX)
        } else {
            SLEEP_MAX
        };
        poll.wait(wait).map_err(|error| format!("ppoll: {error}"))?;
        // Read and match every reply.
        for (index, session) in sessions.iter_mut().enumerate() {
            if poll.writable(index) {
                session
                    .client
                    .flush()
                    .map_err(|error| format!("session {}: {error}", session.username))?;
            }
            if !poll.readable(index) {
                continue;
            }
            let owners = &plan.owners[index];
            let digest = &mut session.digest;
            let received_here = &mut session.received;
            read_replies(
                &mut session.client,
                &session.username,
                start,
                |message, arrival_ns| {
                    received.count(message);
                    digest.add(message, &mut scratch);
                    let owner = owners.get(*received_here).map(|&owner| owner as usize);
                    *received_here += 1;
                    last_progress_ns = arrival_ns;
                    let Some(owner) = owner else {
                        unexpected += 1;
                        return Ok(());
                    };
                    // A command's first message to its own session is its
                    // answer; the plan says which it is.
                    if usize::from(plan.messages[owner].session) == index && !answered[owner] {
                        assert!(owner < next, "an answer came for a message not sent yet");
                        answered[owner] = true;
                        answered_count += 1;
                        record_latency(&mut latency, arrival_ns.saturating_sub(intended_ns[owner]));
                        last_answer_ns = last_answer_ns.max(arrival_ns);
                    }
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
            progress.update(start.elapsed(), sent, answered_count);
        }
    }
    // Every sent message whose reference has a message to its own session
    // expects an answer.
    let mut answers_expected = vec![false; count];
    for (index, owners) in plan.owners.iter().enumerate() {
        for &owner in owners {
            let owner = owner as usize;
            if usize::from(plan.messages[owner].session) == index {
                answers_expected[owner] = true;
            }
        }
    }
    let expected_total = answers_expected
        .iter()
        .filter(|&&expected| expected)
        .count() as u64;
    let outputs_match = unexpected == 0
        && sessions
            .iter()
            .zip(plan.owners.iter().zip(&plan.digests))
            .all(|(session, (owners, digest))| {
                session.received == owners.len() && session.digest == *digest
            });
    let unanswered = expected_total.saturating_sub(answered_count);
    // The run lasted until its last answer, or, when some never came, until
    // the drain gave up on them.
    let wall_ns = if unanswered == 0 {
        last_answer_ns
    } else {
        ns_since(start)
    };
    Ok(Driven {
        sent,
        received,
        unanswered,
        outputs_match,
        barriers,
        latency,
        wall: Duration::from_nanos(wall_ns.max(1)),
    })
}
