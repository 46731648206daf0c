//! The gateway inside the simulated process. This module owns the seams
//! between the real `GatewayCore` and the simulation: the gateway's
//! configuration drawn from the seed (small limits, so that they are
//! reached), the `CommandSubmitter` that hands its commands to the simulated
//! system's input queue (the queue the command-level clients use), and the
//! start-up that rebuilds every session's output log from the recovered
//! journal with the same function `lockstep serve` uses
//! (`server::replay_journal_into`). The core is driven with the simulator's
//! monotonic clock, never the machine's. The checks that need the gateway
//! and the journal together live here too: an Accepted a client saw names
//! an order the journal accepted, and the live gateway's logs equal those of
//! a gateway rebuilt from the final journal.

use crate::gateway_clients::AcceptedSeen;
use crate::model::Output;
use crate::report::GatewayCounts;
use crate::rng::SimRng;
use crossbeam_queue::ArrayQueue;
use lockstep_engine::{AccountId, Command, EngineConfig, Event, InstrumentId};
use lockstep_sequencer::journal_reader::JournalReader;
use lockstep_transport::gateway_config::{GatewayConfig, GatewayInstrument, SessionConfig};
use lockstep_transport::gateway_core::{CommandSubmitter, GatewayCore, SubmitRefusal};
use lockstep_transport::ouch::Outbound;
use lockstep_transport::server::replay_journal_into;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The symbols of the engine's instruments, in instrument order.
pub const SYMBOLS: [&str; 2] = ["SIMA", "SIMB"];
/// A symbol no instrument has: orders for it are rejected.
pub const UNKNOWN_SYMBOL: &str = "NOPE";
/// The gateway's SoupBinTCP session name.
pub const SESSION_NAME: &str = "SIMDAY";

/// A session's username: `u` and its index.
pub fn username(session: usize) -> String {
    format!("u{session}")
}

/// A session's password.
pub fn password(session: usize) -> String {
    format!("pw{session}")
}

/// A session's OUCH firm.
pub fn firm(session: usize) -> String {
    format!("F{session}")
}

/// The gateway of a seed: one session per engine session, with limits small
/// enough that a seed reaches them (open orders, message rate, token table,
/// output buffer, connection table) and timers short enough that heartbeats
/// and timeouts happen within a run of a few hundred simulated ms.
pub fn gateway_config(rng: &mut SimRng, sessions: u16) -> GatewayConfig {
    let instruments = SYMBOLS
        .iter()
        .enumerate()
        .map(|(index, symbol)| GatewayInstrument {
            symbol: (*symbol).to_string(),
            instrument: InstrumentId(index as u32),
        })
        .collect();
    let sessions: Vec<SessionConfig> = (0..usize::from(sessions))
        .map(|session| SessionConfig {
            username: username(session),
            password: password(session),
            firm: firm(session),
            account: AccountId(session as u32 % 8),
            cancel_on_disconnect: rng.below(4) != 0,
            // A quarter of the sessions with a limit they live at, the rest
            // with one they reach now and then.
            open_orders_max: if rng.below(4) == 0 {
                rng.range(1, 8) as u32
            } else {
                rng.range(16, 256) as u32
            },
            // The simulated clients send tens of thousands of messages a
            // simulated second: a quarter of the sessions are held to less.
            messages_per_second_max: if rng.below(4) == 0 {
                rng.range(5_000, 50_000) as u32
            } else {
                rng.range(200_000, 2_000_000) as u32
            },
            messages_burst_max: rng.range(4, 64) as u32,
        })
        .collect();
    let session_count = sessions.len();
    let mut config = GatewayConfig::new(
        "127.0.0.1:0".parse().expect("a literal address"),
        instruments,
        sessions,
    );
    config.session_name = SESSION_NAME.to_string();
    // Sometimes fewer slots than sessions, so a connection is refused now
    // and then.
    config.connections_max =
        rng.range_usize(session_count.saturating_sub(1).max(1), session_count + 1);
    // An Enter Order's frame has a length field of 50.
    config.packet_len_max = *rng.pick(&[50, 64, 1024]);
    config.output_buffer_bytes_max = rng.range_usize(4 * 83, 4_096);
    // Reaching the output log's bound stops the server by design; it is
    // kept out of reach so that the simulated process does not fail-stop.
    config.output_log_messages_max = 1_000_000;
    // Now and then a token table that fills within the run.
    config.session_tokens_max = if rng.below(4) == 0 {
        rng.range_usize(20, 200)
    } else {
        rng.range_usize(1_000, 100_000)
    };
    config.event_queue_max = 1_024;
    config.heartbeat_interval_ms = rng.range(1, 2);
    config.idle_timeout_ms = config.heartbeat_interval_ms + rng.range(1, 4);
    config.login_timeout_ms = rng.range(1, 5);
    config
        .validate()
        .expect("the simulator draws only valid gateway configurations");
    config
}

/// Hands the gateway's commands to the simulated system's input queue, as
/// `SequencerSubmitter` does for `lockstep serve`; a full queue is Busy.
pub struct QueueSubmitter {
    input: Arc<ArrayQueue<Command>>,
    /// Commands taken, shared with the simulator for its report.
    submitted: Arc<AtomicU64>,
}

impl CommandSubmitter for QueueSubmitter {
    fn submit(&mut self, command: Command) -> Result<(), SubmitRefusal> {
        self.input.push(command).map_err(|_| SubmitRefusal::Busy)?;
        self.submitted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Starts a gateway for a freshly recovered system: every session's output
/// log is rebuilt from `journal` (the disk's bytes) through `through_seq`,
/// the recovered seq, exactly as the server does before it listens.
pub fn start_gateway(
    config: &GatewayConfig,
    engine: &EngineConfig,
    input: Arc<ArrayQueue<Command>>,
    submitted: Arc<AtomicU64>,
    journal: Vec<u8>,
    through_seq: u64,
    now_ns: u64,
) -> Result<GatewayCore, String> {
    let submitter = Box::new(QueueSubmitter { input, submitted });
    let mut core = GatewayCore::new(config.clone(), submitter, now_ns)
        .map_err(|error| format!("gateway config: {error}"))?;
    let rebuilt = if through_seq == 0 {
        // Nothing journaled yet: there is nothing to read.
        replay_journal_into(&mut core, engine, std::iter::empty(), 0)
    } else {
        let reader = JournalReader::from_bytes(journal)
            .map_err(|error| format!("gateway rebuild: {error}"))?;
        replay_journal_into(&mut core, engine, reader, through_seq)
    };
    rebuilt.map_err(|error| format!("gateway rebuild: {error}"))?;
    Ok(core)
}

/// The gateway's counters, as the report sums them.
pub fn gateway_counts(core: &GatewayCore) -> GatewayCounts {
    GatewayCounts {
        stats: core.stats(),
        ..GatewayCounts::default()
    }
}

/// Every session's output log of `live` equals that of `rebuilt`, a gateway
/// rebuilt from the whole journal once everything journaled is published.
pub fn check_logs_equal(live: &GatewayCore, rebuilt: &GatewayCore) -> Result<(), String> {
    for session in 0..live.config().sessions.len() {
        let (live_len, rebuilt_len) = (
            live.session_messages(session),
            rebuilt.session_messages(session),
        );
        if live_len != rebuilt_len {
            return Err(format!(
                "session {session}: the live gateway logged {live_len} messages, a gateway rebuilt from the final journal {rebuilt_len}"
            ));
        }
        // The open-order count the limit is enforced on must be a function
        // of the journal too, or a restart would change what is rejected.
        let (live_open, rebuilt_open) = (
            live.session_open_orders(session),
            rebuilt.session_open_orders(session),
        );
        if live_open != rebuilt_open {
            return Err(format!(
                "session {session}: the live gateway counts {live_open} open orders, a gateway rebuilt from the final journal {rebuilt_open}"
            ));
        }
        for number in 1..=live_len {
            if live.session_message(session, number) != rebuilt.session_message(session, number) {
                return Err(format!(
                    "session {session} message {number}: the live gateway's differs from the one rebuilt from the final journal"
                ));
            }
        }
    }
    Ok(())
}

/// The orders the journal accepted, by order id, with their session and
/// token: what a client's Accepted must name. Built from the model's events
/// as they come, and again from the start after a restart.
#[derive(Default)]
pub struct AcceptedIndex {
    scanned: usize,
    orders: BTreeMap<u64, (u16, [u8; 14])>,
}

impl AcceptedIndex {
    pub fn reset(&mut self) {
        *self = AcceptedIndex::default();
    }

    pub fn catch_up(&mut self, events: &[Output]) {
        for (_, _, event) in events.iter().skip(self.scanned) {
            if let Event::Accepted { order, .. } = event {
                self.orders
                    .insert(order.order_id.0, (order.session.0, order.token.to_bytes()));
            }
        }
        self.scanned = self.scanned.max(events.len());
    }

    /// The journal holds the order a client saw accepted.
    pub fn check(&self, seen: &AcceptedSeen) -> Result<(), String> {
        let held = self.orders.get(&seen.order_reference_number);
        if held != Some(&(seen.session as u16, seen.token)) {
            return Err(format!(
                "session {} message {}: the client saw order {} accepted as token {:?}, but the journal's accepted order {} is {held:?}",
                seen.session,
                seen.number,
                seen.order_reference_number,
                String::from_utf8_lossy(&seen.token),
                seen.order_reference_number
            ));
        }
        Ok(())
    }
}

/// OUCH's day-unique tokens, as the journal records them: in each session's
/// log no token is accepted twice, whether by an Enter Order or as a
/// Replace's replacement token, across every restart the journal saw (the
/// gateway rebuilds its token sets from the journal, and a full token table
/// rejects rather than forgets).
pub fn check_tokens_day_unique(gateway: &GatewayCore) -> Result<u64, String> {
    let mut checked = 0;
    for session in 0..gateway.config().sessions.len() {
        let mut tokens = BTreeMap::new();
        for number in 1..=gateway.session_messages(session) {
            let message = gateway
                .session_message(session, number)
                .expect("numbers up to the log's length are held");
            let token = match Outbound::decode(message) {
                Ok(Outbound::Accepted(accepted)) => accepted.token,
                Ok(Outbound::Replaced(replaced)) => replaced.replacement_token,
                Ok(_) => continue,
                Err(error) => {
                    return Err(format!(
                        "session {session} message {number}: does not decode: {error}"
                    ))
                }
            };
            if let Some(first) = tokens.insert(token.0, number) {
                return Err(format!(
                    "session {session} message {number}: token {:?} is accepted again, first in message {first}",
                    String::from_utf8_lossy(token.trimmed())
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}
