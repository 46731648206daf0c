//! `lockstep bench --replay`: a captured order log (a journal, a flow CSV v1
//! or a LOBSTER message file, read by [`crate::replay_source`]) replayed
//! through the whole system over real TCP, and proof that the server ends
//! where an offline replay ends. [`run_replay`] turns every order command of
//! the input into the OUCH message a client would send (Enter Order, Cancel
//! Order with its remaining shares, Replace Order); commands no client can
//! send (halts, cancel-all, journaled gateway rejects) are counted and
//! skipped. The reference is built from exactly those message bytes: each
//! goes through the gateway's own [`OuchAdapter::translate`] with its
//! session's context and the gateway's token rules, and the resulting
//! commands are applied in one [`Engine`] on the server's engine
//! configuration, as `lockstep replay` applies a journal; its state hash is
//! what the server's replicas must reach. The same pass runs the engine's
//! events through the gateway's [`OuchPublisher`], so the run knows which
//! sequenced message each session will receive and for which command: that
//! is how a reply is matched to its command, and every session's received
//! stream (timestamps aside) is compared with the predicted one.
//!
//! The run starts a fresh in-process [`Server`] with one gateway session per
//! session of the input (no rate or open-order limit, no cancel on
//! disconnect, which would add commands), logs each in with the
//! non-blocking client and sends in the file's order: whenever the next
//! command belongs to another session than the previous one, it first waits
//! until the server has sequenced everything sent so far, so the sequencer
//! sees the file's total order. `--speed max` sends as fast as that allows
//! (a command's intended time is then the moment it may first be sent);
//! `--speed Nx` sends command `i` at `(t_i - t_0) / N` after the start, by
//! the input's own clock, and latency counts from that intended time to the
//! command's first answer, so a stall is never omitted. This module owns
//! the options, the run and the report; reading the inputs and the token
//! encoding live in `replay_source`, the plan and the reference in
//! `replay_plan`, the event loop in `replay_drive`.

use crate::latency::Percentiles;
use crate::load::{final_state_hash, InProcessServer, ScratchDir};
use crate::progress::ProgressSink;
use crate::replay_drive::{drive, Connected, CLIENT_OUTPUT_BYTES};
use crate::replay_plan::{build_plan, Digest};
use crate::replay_source::{load_input, InputFormat};
use hdrhistogram::Histogram;
use lockstep_engine::RejectReason;
use lockstep_transport::client::ClientConfig;
use lockstep_transport::client_nonblocking::NonBlockingClient;
use lockstep_transport::ouch::Outbound;
use lockstep_transport::server::Server;
use std::fmt::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::replay_plan::{REPLAY_ACCOUNT_MAX, REPLAY_SESSIONS_MAX};

/// The most commands one replay sends (each keeps a small record).
pub const REPLAY_COMMANDS_MAX: usize = crate::driver::MESSAGES_PER_RUN_MAX as usize;

/// How fast the input is replayed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// As fast as the ordering allows.
    Max,
    /// The input's own clock, sped up by this factor (positive, finite).
    Factor(f64),
}

impl Speed {
    /// `max`, or a positive number followed by `x`: `1x`, `10x`, `0.5x`.
    pub fn parse(text: &str) -> Result<Speed, String> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let number = trimmed.strip_suffix(['x', 'X']).ok_or_else(|| {
            format!("'{text}' is not a speed (max, or a factor such as 1x, 10x, 1000x)")
        })?;
        match number.parse::<f64>() {
            Ok(factor) if factor.is_finite() && factor > 0.0 => Ok(Speed::Factor(factor)),
            _ => Err(format!(
                "'{text}' is not a positive speed factor (such as 1x, 10x, 1000x)"
            )),
        }
    }

    pub fn text(self) -> String {
        match self {
            Speed::Max => "max".to_string(),
            Speed::Factor(factor) => format!("{factor}x"),
        }
    }
}

/// What one replay does.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub input: PathBuf,
    pub speed: Speed,
    /// The server to start: its sessions are replaced by the replay's, and
    /// its engine's session and account tables and its gateway's token and
    /// output tables are raised to what the input needs.
    pub server: InProcessServer,
    /// The longest the run waits without any progress (at a session switch
    /// for the sequencer, or for the socket to take output) before failing.
    pub stall_timeout: Duration,
    /// How long to wait for the last answers after the last send.
    pub drain_timeout: Duration,
}

impl ReplayOptions {
    /// Replays `input` at `speed` on `server`, with a 10 s stall timeout and
    /// a 30 s drain.
    pub fn new(input: impl Into<PathBuf>, speed: Speed, server: InProcessServer) -> ReplayOptions {
        ReplayOptions {
            input: input.into(),
            speed,
            server,
            stall_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// The replies the sessions received, by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplyCounts {
    pub accepted: u64,
    pub rejected: u64,
    pub executions: u64,
    pub canceled: u64,
    pub replaced: u64,
    pub system_events: u64,
}

impl ReplyCounts {
    pub(crate) fn count(&mut self, message: &Outbound) {
        match message {
            Outbound::Accepted(_) => self.accepted += 1,
            Outbound::Rejected(_) => self.rejected += 1,
            Outbound::Executed(_) => self.executions += 1,
            Outbound::Canceled(_) => self.canceled += 1,
            Outbound::Replaced(_) => self.replaced += 1,
            Outbound::SystemEvent(_) => self.system_events += 1,
        }
    }
}

/// Everything one replay found.
#[derive(Clone, Debug)]
pub struct ReplayReport {
    pub input: PathBuf,
    pub format: InputFormat,
    pub speed: Speed,
    pub notes: Vec<String>,
    /// Commands read from the input.
    pub commands_read: u64,
    /// Commands no OUCH message expresses (halts, cancel-all, journaled
    /// rejects, self-trade settings, prices OUCH cannot carry).
    pub skipped_not_ouch: u64,
    /// Enter Orders whose token the session had used before: OUCH ignores
    /// them without an answer, so they were not sent.
    pub skipped_duplicate_token: u64,
    pub sessions: usize,
    pub sent: u64,
    /// Replies received, and the replies the reference predicted.
    pub received: ReplyCounts,
    pub expected: ReplyCounts,
    /// The reference's rejects by reason (name, count), the non-zero ones.
    pub expected_rejects: Vec<(&'static str, u64)>,
    /// Sent commands whose first answer never came (within the drain).
    pub unanswered: u64,
    /// Every session received exactly the predicted messages, timestamps
    /// aside.
    pub outputs_match: bool,
    /// Session switches that waited for the sequencer.
    pub barriers: u64,
    /// From each command's intended send time to its first answer, ns.
    pub latency: Histogram<u64>,
    /// From the first send to the last answer.
    pub wall: Duration,
    pub achieved_per_s: f64,
    pub reference_hash: u64,
    /// The hash every replica that applied every command reached.
    pub server_hash: Option<u64>,
    pub replicas: usize,
    pub replicas_agree: bool,
    /// Commands the server sequenced (its last seq; the journal started at 1).
    pub server_sequenced: u64,
    pub server_failure: Option<String>,
}

impl ReplayReport {
    /// The server's replicas agree on the reference's state hash, the
    /// server sequenced exactly what was sent, and every session received
    /// what the reference predicted.
    pub fn passed(&self) -> bool {
        self.server_hash == Some(self.reference_hash)
            && self.replicas_agree
            && self.server_sequenced == self.sent
            && self.server_failure.is_none()
            && self.outputs_match
            && self.unanswered == 0
    }
}

/// Replays `options.input` through a fresh in-process server and compares
/// its final state with the offline reference.
pub fn run_replay(
    options: &ReplayOptions,
    progress: &mut dyn ProgressSink,
) -> Result<ReplayReport, String> {
    let input = load_input(&options.input, REPLAY_COMMANDS_MAX)?;
    let mut server_config = options.server.clone();
    let plan = build_plan(&input, &mut server_config, options.speed)?;
    let scratch = ScratchDir::new(&server_config.scratch_dir, "lockstep-replay")?;
    let mut system = server_config.system;
    system.data_dir = scratch.0.clone();
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("listen on 127.0.0.1: {error}"))?;
    let server = Server::start(
        system,
        server_config.gateway.clone(),
        Some(listener),
        server_config.gateway_core,
    )
    .map_err(|error| format!("start the server: {error}"))?;
    if let Some(startup) = server.startup() {
        if startup.recovered_seq != 0 {
            return Err(format!(
                "the fresh server recovered {} commands from its new data directory",
                startup.recovered_seq
            ));
        }
    }
    let addr = server.local_addr();
    let label = format!("replay {}", options.input.display());
    let driven = (|| {
        let mut sessions = Vec::with_capacity(plan.sessions.len());
        for session in &plan.sessions {
            let login = &session.config;
            let config = ClientConfig::new(addr, login.username.clone(), login.password.clone());
            let client =
                NonBlockingClient::connect_with_output_capacity(&config, CLIENT_OUTPUT_BYTES)
                    .map_err(|error| format!("session {} ({addr}): {error}", login.username))?;
            sessions.push(Connected {
                username: login.username.clone(),
                client,
                received: 0,
                digest: Digest::START,
            });
        }
        let planned = plan
            .messages
            .last()
            .and_then(|last| last.offset_ns)
            .map_or(Duration::ZERO, Duration::from_nanos);
        progress.start(&label, planned);
        let driven = drive(&plan, &mut sessions, &server, options, progress);
        // Closing the sessions before the server stops lets it see them go;
        // no session cancels on disconnect, so that adds no command.
        drop(sessions);
        driven
    })();
    let report = server.stop();
    drop(scratch);
    let system = report.system;
    let driven = driven.map_err(|error| match &system.failure {
        Some(failure) => format!("{label}: {error} (server: {failure})"),
        None => format!("{label}: {error}"),
    })?;
    let (server_hash, replicas_agree) = final_state_hash(&system);
    let achieved_per_s = driven.sent as f64 / driven.wall.as_secs_f64().max(1e-9);
    let replay = ReplayReport {
        input: options.input.clone(),
        format: input.format,
        speed: options.speed,
        notes: input.notes,
        commands_read: input.commands.len() as u64,
        skipped_not_ouch: plan.skipped_not_ouch,
        skipped_duplicate_token: plan.skipped_duplicate_token,
        sessions: plan.sessions.len(),
        sent: driven.sent,
        received: driven.received,
        expected: plan.expected,
        expected_rejects: RejectReason::ALL
            .iter()
            .map(|reason| (reason.name(), plan.rejects_by_code[*reason as usize]))
            .filter(|&(_, count)| count > 0)
            .collect(),
        unanswered: driven.unanswered,
        outputs_match: driven.outputs_match,
        barriers: driven.barriers,
        latency: driven.latency,
        wall: driven.wall,
        achieved_per_s,
        reference_hash: plan.reference_hash,
        server_hash,
        replicas: system.replicas.len(),
        replicas_agree,
        server_sequenced: system.last_seq,
        server_failure: system.failure,
    };
    progress.finish(&format!(
        "replay: {} commands sent, {:.0}/s, {}",
        replay.sent,
        replay.achieved_per_s,
        if replay.passed() { "PASS" } else { "FAIL" }
    ));
    Ok(replay)
}

fn micros(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1e3)
}

/// The report `lockstep bench --replay` prints.
pub fn replay_text_report(report: &ReplayReport) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "replay of {} ({}), speed {}",
        report.input.display(),
        report.format.name(),
        report.speed.text()
    );
    for note in &report.notes {
        let _ = writeln!(text, "  note: {note}");
    }
    let _ = writeln!(text, "commands read:     {}", report.commands_read);
    if report.skipped_not_ouch > 0 {
        let _ = writeln!(
            text,
            "  {} commands not expressible in OUCH were skipped",
            report.skipped_not_ouch
        );
    }
    if report.skipped_duplicate_token > 0 {
        let _ = writeln!(
            text,
            "  {} Enter Orders reusing a token were skipped (OUCH ignores them)",
            report.skipped_duplicate_token
        );
    }
    let _ = writeln!(
        text,
        "sent:              {} over {} sessions ({} waits for the sequencer at session switches)",
        report.sent, report.sessions, report.barriers
    );
    let received = report.received;
    let expected = report.expected;
    let _ = writeln!(
        text,
        "replies:           accepted {}, rejected {}, executions {}, canceled {}, replaced {} \
         (predicted {}, {}, {}, {}, {})",
        received.accepted,
        received.rejected,
        received.executions,
        received.canceled,
        received.replaced,
        expected.accepted,
        expected.rejected,
        expected.executions,
        expected.canceled,
        expected.replaced
    );
    if !report.expected_rejects.is_empty() {
        let reasons: Vec<String> = report
            .expected_rejects
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        let _ = writeln!(
            text,
            "  rejects predicted by reason: {}",
            reasons.join(", ")
        );
    }
    let _ = writeln!(text, "unanswered:        {}", report.unanswered);
    let latency = Percentiles::of(&report.latency);
    let _ = writeln!(
        text,
        "latency to first answer: p50 {}, p99 {}, p99.9 {}, max {} ({} answers)",
        micros(latency.p50_ns),
        micros(latency.p99_ns),
        micros(latency.p999_ns),
        micros(latency.max_ns),
        latency.count
    );
    let _ = writeln!(
        text,
        "wall time:         {:.3} s, {:.0} commands/s",
        report.wall.as_secs_f64(),
        report.achieved_per_s
    );
    let _ = writeln!(
        text,
        "session outputs:   {}",
        if report.outputs_match {
            "every session received exactly the predicted messages"
        } else {
            "DIFFER from the prediction"
        }
    );
    let _ = writeln!(
        text,
        "server sequenced:  {} commands ({} sent)",
        report.server_sequenced, report.sent
    );
    if let Some(failure) = &report.server_failure {
        let _ = writeln!(text, "server failure:    {failure}");
    }
    let _ = writeln!(text, "reference hash:    {:016x}", report.reference_hash);
    let _ = writeln!(
        text,
        "server hash:       {} ({} replicas, {})",
        report
            .server_hash
            .map_or_else(|| "none".to_string(), |hash| format!("{hash:016x}")),
        report.replicas,
        if report.replicas_agree {
            "agree"
        } else {
            "DISAGREE"
        }
    );
    let _ = writeln!(text, "{}", if report.passed() { "PASS" } else { "FAIL" });
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse() {
        assert_eq!(Speed::parse("max"), Ok(Speed::Max));
        assert_eq!(Speed::parse("1x"), Ok(Speed::Factor(1.0)));
        assert_eq!(Speed::parse("1000X"), Ok(Speed::Factor(1000.0)));
        assert_eq!(Speed::parse("0.5x"), Ok(Speed::Factor(0.5)));
        for bad in ["0x", "-1x", "10", "fast", "infx", "NaNx", "x"] {
            assert!(Speed::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Speed::Factor(10.0).text(), "10x");
    }
}
