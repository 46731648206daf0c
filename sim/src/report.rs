//! What one seed's run did, and how it ended: the plan's shape, every fault
//! injected by kind, commands, crashes and restarts with what recovery
//! found, fences and rebuilds, the final hashes, the trace hash (a hash of
//! everything that happened, so that two runs of a seed can be compared
//! for exact replay), and the failure, if any.

use lockstep_transport::gateway_core::GatewayStats;
use std::fmt;
use std::ops::AddAssign;

/// Faults injected, by kind. Replica, clock, snapshot and client faults are
/// counted when injected; disk faults when they hit an operation (one armed
/// and then cleared by a crash is not counted); crash damage per crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub replica_panic: u64,
    pub replica_stall: u64,
    pub replica_slow: u64,
    pub replica_diverge: u64,
    pub process_crash: u64,
    pub crash_in_write: u64,
    pub crash_before_sync: u64,
    pub torn_tail: u64,
    pub unsynced_bit_flip: u64,
    pub lost_page: u64,
    pub zero_tail: u64,
    pub synced_bit_rot: u64,
    pub short_write: u64,
    pub disk_full: u64,
    pub fsync_failure: u64,
    pub clock_jump: u64,
    pub clock_drift: u64,
    pub snapshot_corruption: u64,
    pub client_duplicate: u64,
    pub client_unknown_session: u64,
    pub client_unknown_order: u64,
    pub gateway_disconnect: u64,
    pub reconnect_from_one: u64,
    pub reconnect_from_next: u64,
    pub reconnect_from_zero: u64,
    pub reconnect_beyond_end: u64,
    pub gateway_duplicate_message: u64,
    pub gateway_garbage_frame: u64,
    pub gateway_partial_write: u64,
    pub gateway_bad_login: u64,
    pub gateway_client_silent: u64,
    pub gateway_client_stops_reading: u64,
    pub gateway_client_vanishes: u64,
}

impl FaultCounts {
    /// Every kind with its count, in a fixed order.
    pub fn kinds(&self) -> [(&'static str, u64); 33] {
        [
            ("replica panic", self.replica_panic),
            ("replica stall", self.replica_stall),
            ("replica slow", self.replica_slow),
            ("replica divergence", self.replica_diverge),
            ("process crash between steps", self.process_crash),
            ("process crash mid-write", self.crash_in_write),
            (
                "process crash after write, before fsync",
                self.crash_before_sync,
            ),
            ("torn last record", self.torn_tail),
            ("bit flip in unsynced data", self.unsynced_bit_flip),
            ("lost page in unsynced data", self.lost_page),
            ("zero-filled tail", self.zero_tail),
            ("bit rot in synced data", self.synced_bit_rot),
            ("short write", self.short_write),
            ("disk full", self.disk_full),
            ("fsync failure", self.fsync_failure),
            ("clock jump", self.clock_jump),
            ("clock drift change", self.clock_drift),
            ("snapshot corruption", self.snapshot_corruption),
            ("client duplicate command", self.client_duplicate),
            ("client unknown session", self.client_unknown_session),
            ("client unknown order", self.client_unknown_order),
            (
                "gateway client disconnect mid-stream",
                self.gateway_disconnect,
            ),
            (
                "reconnect asking for message 1 (old)",
                self.reconnect_from_one,
            ),
            (
                "reconnect asking for the next message (new)",
                self.reconnect_from_next,
            ),
            (
                "reconnect asking for 0 (most recent)",
                self.reconnect_from_zero,
            ),
            ("reconnect asking past the end", self.reconnect_beyond_end),
            ("gateway message sent twice", self.gateway_duplicate_message),
            ("garbage or malformed frame", self.gateway_garbage_frame),
            ("write cut mid-frame", self.gateway_partial_write),
            (
                "login with bad credentials or session",
                self.gateway_bad_login,
            ),
            ("client silent (timeouts)", self.gateway_client_silent),
            (
                "client stops reading (slow consumer)",
                self.gateway_client_stops_reading,
            ),
            (
                "client vanishes (half-open connection)",
                self.gateway_client_vanishes,
            ),
        ]
    }

    pub fn total(&self) -> u64 {
        self.kinds().iter().map(|(_, count)| count).sum()
    }
}

impl AddAssign for FaultCounts {
    fn add_assign(&mut self, other: FaultCounts) {
        let mut fields = [
            (&mut self.replica_panic, other.replica_panic),
            (&mut self.replica_stall, other.replica_stall),
            (&mut self.replica_slow, other.replica_slow),
            (&mut self.replica_diverge, other.replica_diverge),
            (&mut self.process_crash, other.process_crash),
            (&mut self.crash_in_write, other.crash_in_write),
            (&mut self.crash_before_sync, other.crash_before_sync),
            (&mut self.torn_tail, other.torn_tail),
            (&mut self.unsynced_bit_flip, other.unsynced_bit_flip),
            (&mut self.lost_page, other.lost_page),
            (&mut self.zero_tail, other.zero_tail),
            (&mut self.synced_bit_rot, other.synced_bit_rot),
            (&mut self.short_write, other.short_write),
            (&mut self.disk_full, other.disk_full),
            (&mut self.fsync_failure, other.fsync_failure),
            (&mut self.clock_jump, other.clock_jump),
            (&mut self.clock_drift, other.clock_drift),
            (&mut self.snapshot_corruption, other.snapshot_corruption),
            (&mut self.client_duplicate, other.client_duplicate),
            (
                &mut self.client_unknown_session,
                other.client_unknown_session,
            ),
            (&mut self.client_unknown_order, other.client_unknown_order),
            (&mut self.gateway_disconnect, other.gateway_disconnect),
            (&mut self.reconnect_from_one, other.reconnect_from_one),
            (&mut self.reconnect_from_next, other.reconnect_from_next),
            (&mut self.reconnect_from_zero, other.reconnect_from_zero),
            (&mut self.reconnect_beyond_end, other.reconnect_beyond_end),
            (
                &mut self.gateway_duplicate_message,
                other.gateway_duplicate_message,
            ),
            (&mut self.gateway_garbage_frame, other.gateway_garbage_frame),
            (&mut self.gateway_partial_write, other.gateway_partial_write),
            (&mut self.gateway_bad_login, other.gateway_bad_login),
            (&mut self.gateway_client_silent, other.gateway_client_silent),
            (
                &mut self.gateway_client_stops_reading,
                other.gateway_client_stops_reading,
            ),
            (
                &mut self.gateway_client_vanishes,
                other.gateway_client_vanishes,
            ),
        ];
        for (mine, theirs) in &mut fields {
            **mine += *theirs;
        }
    }
}

/// Restarts and what recovery found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartCounts {
    pub restarts: u64,
    /// Restarts by the operator after the journal fail-stopped.
    pub after_fail_stop: u64,
    /// Recoveries that cut a torn tail.
    pub torn_tails_cut: u64,
    /// Recoveries refused for damage in never-synced data, after which the
    /// operator cut the journal at the reported offset.
    pub operator_cuts: u64,
    /// Recoveries refused for bit rot in synced data (the expected outcome),
    /// after which the operator restored the data.
    pub rot_refusals: u64,
    /// Seqs durable but not yet published at a crash: the restarted egress
    /// starts after them, so their outputs exist only in the journal (from
    /// which a gateway rebuilds a session's stream).
    pub durable_unpublished_seqs: u64,
    /// Records written but never synced that survived a crash and became
    /// part of the journal.
    pub unsynced_records_kept: u64,
}

impl AddAssign for RestartCounts {
    fn add_assign(&mut self, other: RestartCounts) {
        self.restarts += other.restarts;
        self.after_fail_stop += other.after_fail_stop;
        self.torn_tails_cut += other.torn_tails_cut;
        self.operator_cuts += other.operator_cuts;
        self.rot_refusals += other.rot_refusals;
        self.durable_unpublished_seqs += other.durable_unpublished_seqs;
        self.unsynced_records_kept += other.unsynced_records_kept;
    }
}

/// Fencing and rebuilding, summed over every run of the system.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCounts {
    pub fenced_panicked: u64,
    pub fenced_lagged: u64,
    pub fenced_diverged: u64,
    pub rebuilds: u64,
    pub panics: u64,
    pub hashes_compared: u64,
    /// Replica states compared with the model's at the same seq.
    pub state_hashes_checked: u64,
}

impl AddAssign for ReplicaCounts {
    fn add_assign(&mut self, other: ReplicaCounts) {
        self.fenced_panicked += other.fenced_panicked;
        self.fenced_lagged += other.fenced_lagged;
        self.fenced_diverged += other.fenced_diverged;
        self.rebuilds += other.rebuilds;
        self.panics += other.panics;
        self.hashes_compared += other.hashes_compared;
        self.state_hashes_checked += other.state_hashes_checked;
    }
}

/// The gateway's work, summed over every gateway of a run (one per process
/// start), and what its clients saw and the checks compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayCounts {
    /// Runs with the gateway (a seed's report: 0 or 1).
    pub runs: u64,
    /// Gateways rebuilt from a recovered journal (one per restart).
    pub rebuilds: u64,
    /// The gateways' own counters, summed over every gateway of the run.
    pub stats: GatewayStats,
    /// Sequenced messages the clients received (again: received before).
    pub client_messages: u64,
    pub client_messages_again: u64,
    /// Client-seen messages compared with a gateway rebuilt from the
    /// journal, at restarts and at the end.
    pub messages_checked_against_rebuild: u64,
    /// Accepted messages looked up in the journal.
    pub accepted_checked: u64,
    /// Accepted and Replaced tokens checked day-unique at the end.
    pub tokens_checked: u64,
}

impl AddAssign for GatewayCounts {
    fn add_assign(&mut self, other: GatewayCounts) {
        let mut fields = [
            (&mut self.runs, other.runs),
            (&mut self.rebuilds, other.rebuilds),
            (&mut self.client_messages, other.client_messages),
            (&mut self.client_messages_again, other.client_messages_again),
            (
                &mut self.messages_checked_against_rebuild,
                other.messages_checked_against_rebuild,
            ),
            (&mut self.accepted_checked, other.accepted_checked),
            (&mut self.tokens_checked, other.tokens_checked),
        ];
        for (mine, theirs) in &mut fields {
            **mine += *theirs;
        }
        self.stats += other.stats;
    }
}

impl fmt::Display for GatewayCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gateway (run in {} seeds): {} rebuilt from a recovered journal; connections {} opened, {} refused; logins {} accepted, {} rejected; disconnects {} ({} malformed, {} slow consumer, {} timeout); {} OUCH messages in, {} commands submitted ({} gateway rejects), {} duplicate tokens ignored, {} submits refused busy, {} cancel-on-disconnects; {} messages logged (rebuilds included), {} received by clients ({} again, each compared with the first); {} compared with a gateway rebuilt from the journal; {} Accepted found in the journal; {} tokens checked day-unique",
            self.runs,
            self.rebuilds,
            self.stats.connections_opened,
            self.stats.connections_refused,
            self.stats.logins_accepted,
            self.stats.logins_rejected,
            self.stats.disconnects,
            self.stats.disconnects_malformed,
            self.stats.disconnects_slow_consumer,
            self.stats.disconnects_timeout,
            self.stats.messages_received,
            self.stats.commands_submitted,
            self.stats.rejects_submitted,
            self.stats.duplicate_tokens_ignored,
            self.stats.submit_busy,
            self.stats.session_cancels_submitted,
            self.stats.messages_sequenced,
            self.client_messages,
            self.client_messages_again,
            self.messages_checked_against_rebuild,
            self.accepted_checked,
            self.tokens_checked
        )
    }
}

/// One seed's run.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub seed: u64,
    pub steps: u64,
    /// The plan, in one line.
    pub shape: String,
    /// Steps the quiet phase took to converge (`None`: it did not get there).
    pub quiet_steps: Option<u64>,
    pub commands_submitted: u64,
    pub last_seq: u64,
    pub events_published: u64,
    /// Commands stamped earlier than the command before them (the wall
    /// clock stepped back); allowed, and reported.
    pub stamps_backwards: u64,
    pub faults: FaultCounts,
    pub restarts: RestartCounts,
    pub replicas: ReplicaCounts,
    pub gateway: GatewayCounts,
    pub model_state_hash: u64,
    /// Each replica's state hash at the end (`None`: not running).
    pub replica_state_hashes: Vec<Option<u64>>,
    pub trace_hash: u64,
    /// The first check that failed, with its step.
    pub failure: Option<String>,
}

impl SimReport {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// The command that replays this seed.
    pub fn reproduce_command(&self) -> String {
        format!("lockstep sim --seed {} --steps {}", self.seed, self.steps)
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} ({} steps): {}",
            self.seed, self.steps, self.shape
        )?;
        writeln!(
            f,
            "commands: {} submitted, {} sequenced, {} events published, {} stamps earlier than the one before",
            self.commands_submitted, self.last_seq, self.events_published, self.stamps_backwards
        )?;
        writeln!(f, "faults injected: {}", self.faults.total())?;
        for (kind, count) in self.faults.kinds() {
            if count > 0 {
                writeln!(f, "  {kind}: {count}")?;
            }
        }
        let restarts = &self.restarts;
        writeln!(
            f,
            "crashes and restarts: {} ({} after a fail-stop); torn tails cut {}, operator cuts {}, bit rot refused {}, unsynced records kept {}, durable seqs unpublished at a crash {}",
            restarts.restarts,
            restarts.after_fail_stop,
            restarts.torn_tails_cut,
            restarts.operator_cuts,
            restarts.rot_refusals,
            restarts.unsynced_records_kept,
            restarts.durable_unpublished_seqs
        )?;
        let replicas = &self.replicas;
        writeln!(
            f,
            "replicas: fenced {} panicked, {} lagged, {} diverged; {} panics, {} rebuilds; {} egress hash comparisons, {} state hashes checked against the model",
            replicas.fenced_panicked,
            replicas.fenced_lagged,
            replicas.fenced_diverged,
            replicas.panics,
            replicas.rebuilds,
            replicas.hashes_compared,
            replicas.state_hashes_checked
        )?;
        if self.gateway.runs > 0 {
            writeln!(f, "{}", self.gateway)?;
        } else {
            writeln!(
                f,
                "gateway: not used; commands go straight to the sequencer"
            )?;
        }
        match self.quiet_steps {
            Some(steps) => writeln!(f, "converged {steps} steps after the faults stopped")?,
            None => writeln!(f, "did not converge")?,
        }
        write!(f, "final state hash: model {:016x}", self.model_state_hash)?;
        for (replica, hash) in self.replica_state_hashes.iter().enumerate() {
            match hash {
                Some(hash) => write!(f, ", replica {replica} {hash:016x}")?,
                None => write!(f, ", replica {replica} down")?,
            }
        }
        writeln!(f)?;
        writeln!(f, "trace hash: {:016x}", self.trace_hash)?;
        match &self.failure {
            None => writeln!(f, "result: passed"),
            Some(failure) => writeln!(
                f,
                "result: FAILED: {failure}\nreproduce: {}",
                self.reproduce_command()
            ),
        }
    }
}
