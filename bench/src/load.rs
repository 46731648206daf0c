//! One `lockstep bench` run: [`run_load`] starts the [`Target`] (a Lockstep
//! [`Server`] in this process on a fresh data directory, an echo baseline,
//! or nothing for an external server), logs N sessions in over loopback TCP
//! with the non-blocking client, drives them (see [`crate::driver`]), stops
//! the target and returns a [`LoadReport`]: the latency histograms, the
//! counts, the achieved rate and, for an in-process server, the replicas'
//! state hash. Every run starts a fresh server, so a sweep's runs do not
//! share a book, tokens or a journal.

use crate::driver::{drive, DriverSession};
use crate::echo::{EchoBackend, EchoServer, EchoStats};
use crate::progress::{NoProgress, ProgressSink};
use crate::session_flow::{
    token_prefix, FlowConfig, FlowCounts, MatchAudit, Recorder, SessionFlow,
};
use hdrhistogram::Histogram;
use lockstep_sequencer::system::{SystemHandle, SystemReport};
use lockstep_sequencer::system_config::SystemConfig;
use lockstep_transport::client::ClientConfig;
use lockstep_transport::client_nonblocking::NonBlockingClient;
use lockstep_transport::gateway_config::{GatewayConfig, IoBackend};
use lockstep_transport::server::Server;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

/// Output buffer of each session: thousands of orders, so a burst after a
/// stall is queued rather than refused.
const CLIENT_OUTPUT_BYTES: usize = 256 * 1024;

/// How the driver paces its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// All sessions together send `rate_per_s` messages a second on a fixed
    /// schedule, whatever the answers do.
    OpenLoop { rate_per_s: u64 },
    /// Each session keeps `outstanding` messages unanswered.
    ClosedLoop { outstanding: u32 },
}

/// What one run does.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Names the run in progress lines and reports.
    pub label: String,
    pub sessions: usize,
    pub pacing: Pacing,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    /// Messages intended during the warm-up are sent but not measured.
    pub warmup: Duration,
    /// How long to wait for the last answers after the last send.
    pub drain_timeout: Duration,
    pub flow: FlowConfig,
    /// Seeds the flow (each session's from it and its index).
    pub seed: u64,
    /// Busy-poll the sockets instead of sleeping in ppoll between sends.
    pub spin: bool,
    /// Kill the leading replica partway through (in-process server, open
    /// loop only).
    pub kill_replica: Option<ReplicaKill>,
}

/// When to kill the leading replica, and the window of orders around it
/// whose latency is reported apart from the steady state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaKill {
    /// From the start of the run (warm-up included).
    pub at: Duration,
    /// Orders intended from `at - window_before` to `at + window_after` are
    /// the kill window.
    pub window_before: Duration,
    pub window_after: Duration,
}

impl ReplicaKill {
    /// A kill at `at`, its window from 50 ms before to 450 ms after: a
    /// rebuild from snapshot and journal takes tens to hundreds of
    /// milliseconds, and the window should hold all of its effect.
    pub fn at(at: Duration) -> ReplicaKill {
        ReplicaKill {
            at,
            window_before: Duration::from_millis(50),
            window_after: Duration::from_millis(450),
        }
    }
}

/// What a run with a replica kill saw.
#[derive(Clone, Debug)]
pub struct KillOutcome {
    /// The replica killed: the one egress was publishing from at the kill
    /// time (`was_leader`), or replica 0 if egress was between leaders.
    pub replica: usize,
    pub was_leader: bool,
    /// The published seq when the kill was requested; the replica panics
    /// before its next command.
    pub published_seq_at_kill: u64,
    /// When the kill was requested, from the start of the run.
    pub at: Duration,
    pub window_before: Duration,
    pub window_after: Duration,
    /// The replica panicked, was fenced, rebuilt and rejoined.
    pub replica_panics: u64,
    pub replica_rebuilds: u64,
    /// Messages never answered, and match sides missing: what the clients
    /// lost. Must be 0.
    pub gaps: u64,
    /// Second answers to one message, and match sides seen more than
    /// twice: what the clients got twice. Must be 0.
    pub duplicates: u64,
    /// Enter Order to Accepted inside the kill window, and outside it.
    pub accepted_kill_window: Histogram<u64>,
    pub accepted_steady: Histogram<u64>,
}

impl LoadOptions {
    /// `sessions` sessions at `pacing`, 5 s after a 1 s warm-up, the
    /// default AMZN flow, a 10 s drain.
    pub fn new(label: impl Into<String>, sessions: usize, pacing: Pacing) -> LoadOptions {
        LoadOptions {
            label: label.into(),
            sessions,
            pacing,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(10),
            flow: FlowConfig::default(),
            seed: 1,
            spin: false,
            kill_replica: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.sessions == 0 {
            return Err("at least one session is needed".to_string());
        }
        if self.duration.is_zero() {
            return Err("the measured duration must be positive".to_string());
        }
        match self.pacing {
            Pacing::OpenLoop { rate_per_s: 0 } => Err("the rate must be positive".to_string()),
            Pacing::ClosedLoop { outstanding: 0 } => {
                Err("at least one outstanding message per session is needed".to_string())
            }
            _ => Ok(()),
        }?;
        if let Some(kill) = self.kill_replica {
            if !matches!(self.pacing, Pacing::OpenLoop { .. }) {
                return Err("a replica kill needs an open-loop run (--rate)".to_string());
            }
            if kill.at.is_zero() || kill.at >= self.warmup + self.duration {
                return Err(format!(
                    "the replica kill at {:.3} s must fall inside the run (0 to {:.3} s)",
                    kill.at.as_secs_f64(),
                    (self.warmup + self.duration).as_secs_f64()
                ));
            }
        }
        Ok(())
    }
}

/// A username and password to log a session in with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// A Lockstep server to start in this process for one run.
#[derive(Clone, Debug)]
pub struct InProcessServer {
    pub system: SystemConfig,
    /// Its first `sessions` sessions log in; the listen address is replaced
    /// by a free port on 127.0.0.1.
    pub gateway: GatewayConfig,
    /// A fresh data directory is made in here for the run and removed after.
    pub scratch_dir: PathBuf,
    pub gateway_core: Option<usize>,
}

/// What a run drives.
#[derive(Clone, Debug)]
pub enum Target {
    /// Boxed: the two configurations are large.
    InProcess(Box<InProcessServer>),
    /// A server someone else runs, one login per session.
    Connect {
        addr: SocketAddr,
        credentials: Vec<Credentials>,
    },
    Echo(EchoBackend),
}

/// What a run drove, for reports and for pairing a run with its baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Lockstep(IoBackend),
    External,
    Echo(EchoBackend),
}

impl TargetKind {
    pub fn name(self) -> String {
        match self {
            TargetKind::Lockstep(io) => format!("lockstep-{}", io.name()),
            TargetKind::External => "external".to_string(),
            TargetKind::Echo(io) => format!("echo-{}", io.name()),
        }
    }

    /// The echo baseline of the same I/O backend family.
    pub fn baseline(self) -> Option<EchoBackend> {
        match self {
            TargetKind::Lockstep(IoBackend::Mio) | TargetKind::External => Some(EchoBackend::Mio),
            TargetKind::Lockstep(IoBackend::Uring) => Some(EchoBackend::Uring),
            TargetKind::Echo(_) => None,
        }
    }
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::InProcess(server) => TargetKind::Lockstep(server.gateway.io_backend),
            Target::Connect { .. } => TargetKind::External,
            Target::Echo(backend) => TargetKind::Echo(*backend),
        }
    }
}

/// How an in-process server ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOutcome {
    pub last_seq: u64,
    /// The state hash of the replicas that applied every command.
    pub state_hash: Option<u64>,
    /// Every replica that applied every command has that hash.
    pub replicas_agree: bool,
    pub replicas: usize,
    pub failure: Option<String>,
    pub fenced_panicked: u64,
    pub fenced_leaders: u64,
    /// Per replica: panics and rebuilds.
    pub replica_panics: Vec<u64>,
    pub replica_rebuilds: Vec<u64>,
}

/// Everything one run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub label: String,
    pub target: TargetKind,
    pub sessions: usize,
    pub pacing: Pacing,
    pub duration: Duration,
    pub warmup: Duration,
    /// Enter Order to Accepted (or Rejected), ns.
    pub accepted: Histogram<u64>,
    /// Enter Order to its first Executed as the taker, ns.
    pub executed: Histogram<u64>,
    /// Cancel Order to Canceled, ns.
    pub canceled: Histogram<u64>,
    /// How late the driver queued messages after their intended time, ns.
    pub send_lag: Histogram<u64>,
    pub counts: FlowCounts,
    /// Measured messages answered per second, from the start of the
    /// measured window to the last of their answers.
    pub achieved_rate: f64,
    /// Messages never answered (within the drain timeout).
    pub unanswered: u64,
    /// The run stopped sending at the per-run message cap.
    pub capped: bool,
    pub elapsed: Duration,
    pub server: Option<ServerOutcome>,
    pub echo: Option<EchoStats>,
    /// Gaps and duplicates in the match numbers the sessions saw.
    pub match_audit: MatchAudit,
    pub kill: Option<KillOutcome>,
}

/// A data directory removed when dropped.
pub(crate) struct ScratchDir(pub(crate) PathBuf);

impl ScratchDir {
    /// A fresh directory in `parent`, named `{prefix}-{pid}-{nanos}`.
    pub(crate) fn new(parent: &std::path::Path, prefix: &str) -> Result<ScratchDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_nanos())
            .unwrap_or(0);
        let path = parent.join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|error| format!("create {}: {error}", path.display()))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A started target.
enum Running {
    Lockstep(Box<Server>, ScratchDir),
    Echo(EchoServer),
    External,
}

fn start(
    target: Target,
    sessions: usize,
) -> Result<(Running, SocketAddr, Vec<Credentials>), String> {
    match target {
        Target::InProcess(config) => {
            let config = *config;
            if config.gateway.sessions.len() < sessions {
                return Err(format!(
                    "the server config has {} sessions, {sessions} needed",
                    config.gateway.sessions.len()
                ));
            }
            let credentials = config.gateway.sessions[..sessions]
                .iter()
                .map(|session| Credentials {
                    username: session.username.clone(),
                    password: session.password.clone(),
                })
                .collect();
            let scratch = ScratchDir::new(&config.scratch_dir, "lockstep-bench")?;
            let mut system = config.system;
            system.data_dir = scratch.0.clone();
            let listener = TcpListener::bind("127.0.0.1:0")
                .map_err(|error| format!("listen on 127.0.0.1: {error}"))?;
            let server = Server::start(system, config.gateway, Some(listener), config.gateway_core)
                .map_err(|error| format!("start the server: {error}"))?;
            let addr = server.local_addr();
            Ok((
                Running::Lockstep(Box::new(server), scratch),
                addr,
                credentials,
            ))
        }
        Target::Echo(backend) => {
            let echo = EchoServer::spawn(backend, sessions)?;
            let addr = echo.local_addr();
            let credentials = (0..sessions)
                .map(|index| Credentials {
                    username: format!("echo{}", index + 1),
                    password: "echo".to_string(),
                })
                .collect();
            Ok((Running::Echo(echo), addr, credentials))
        }
        Target::Connect { addr, credentials } => {
            if credentials.len() < sessions {
                return Err(format!(
                    "{} logins given for {sessions} sessions",
                    credentials.len()
                ));
            }
            Ok((Running::External, addr, credentials))
        }
    }
}

/// The state hash of the replicas that applied every command, and whether
/// there is at least one and they all agree on it.
pub(crate) fn final_state_hash(system: &SystemReport) -> (Option<u64>, bool) {
    let mut complete = system
        .replicas
        .iter()
        .filter(|replica| replica.applied_seq == system.last_seq)
        .map(|replica| replica.state_hash);
    let first = complete.next();
    let agree = first.is_some() && complete.all(|hash| Some(hash) == first);
    (first, agree)
}

/// Stops what `start` started; the outcome of a server or echo.
fn stop(running: Running) -> Result<(Option<ServerOutcome>, Option<EchoStats>), String> {
    match running {
        Running::Lockstep(server, scratch) => {
            let report = (*server).stop();
            drop(scratch);
            let system = report.system;
            let (state_hash, replicas_agree) = final_state_hash(&system);
            Ok((
                Some(ServerOutcome {
                    last_seq: system.last_seq,
                    state_hash,
                    replicas_agree,
                    replicas: system.replicas.len(),
                    fenced_panicked: system.fenced_panicked,
                    fenced_leaders: system.fenced_leaders,
                    replica_panics: system.replicas.iter().map(|r| r.panics).collect(),
                    replica_rebuilds: system.replicas.iter().map(|r| r.rebuilds).collect(),
                    failure: system.failure,
                }),
                None,
            ))
        }
        Running::Echo(echo) => Ok((None, Some(echo.stop()?))),
        Running::External => Ok((None, None)),
    }
}

/// What the kill thread did.
struct KillRequested {
    replica: usize,
    was_leader: bool,
    published_seq: u64,
    at: Duration,
}

/// Sleeps until the kill time, then asks the replica egress is publishing
/// from to panic before its next command. The run's clock starts a few
/// microseconds after this thread's, which the window's width dwarfs.
fn kill_leader(system: &SystemHandle, kill: ReplicaKill) -> KillRequested {
    let start = std::time::Instant::now();
    std::thread::sleep(kill.at);
    let leader = system.egress_stats().leader();
    let replica = leader.unwrap_or(0);
    let published_seq = system.published_seq();
    let killed = system.kill_replica(replica);
    assert!(killed, "replica {replica} exists: egress named it");
    KillRequested {
        replica,
        was_leader: leader.is_some(),
        published_seq,
        at: start.elapsed(),
    }
}

/// One run without progress reports.
pub fn run_load(options: &LoadOptions, target: Target) -> Result<LoadReport, String> {
    run_load_with_progress(options, target, &mut NoProgress)
}

/// One run, reporting progress to `progress`.
pub fn run_load_with_progress(
    options: &LoadOptions,
    target: Target,
    progress: &mut dyn ProgressSink,
) -> Result<LoadReport, String> {
    options.validate()?;
    if options.kill_replica.is_some() && !matches!(target, Target::InProcess(_)) {
        return Err(format!(
            "{}: a replica kill needs the in-process server",
            options.label
        ));
    }
    let kind = target.kind();
    let (running, addr, credentials) = start(target, options.sessions)?;
    let window_start = u64::try_from(options.warmup.as_nanos()).unwrap_or(u64::MAX);
    let window_end =
        u64::try_from((options.warmup + options.duration).as_nanos()).unwrap_or(u64::MAX);
    let mut recorder = Recorder::new(window_start, window_end);
    if let Some(kill) = options.kill_replica {
        let at_ns = u64::try_from(kill.at.as_nanos()).unwrap_or(u64::MAX);
        recorder.set_kill_window(
            at_ns.saturating_sub(u64::try_from(kill.window_before.as_nanos()).unwrap_or(0)),
            at_ns.saturating_add(u64::try_from(kill.window_after.as_nanos()).unwrap_or(0)),
        );
    }
    // Tokens unique across runs: the prefix is the time in tenths of a second.
    let prefix = token_prefix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_millis() as u64 / 100)
            .unwrap_or(0),
    );
    let driven = (|| {
        let mut sessions = Vec::with_capacity(options.sessions);
        for (index, login) in credentials.iter().take(options.sessions).enumerate() {
            let config = ClientConfig::new(addr, login.username.clone(), login.password.clone());
            let client =
                NonBlockingClient::connect_with_output_capacity(&config, CLIENT_OUTPUT_BYTES)
                    .map_err(|error| format!("session {} ({addr}): {error}", login.username))?;
            let seed = options
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(index as u64);
            let flow = SessionFlow::new(&options.flow, prefix, seed)?;
            sessions.push(DriverSession::new(login.username.clone(), client, flow));
        }
        progress.start(&options.label, options.warmup + options.duration);
        let system = match &running {
            Running::Lockstep(server, _) => server.system(),
            _ => None,
        };
        let (outcome, kill) = std::thread::scope(|scope| {
            let killer = match (options.kill_replica, system) {
                (Some(kill), Some(system)) => Some(scope.spawn(move || kill_leader(system, kill))),
                _ => None,
            };
            let outcome = drive(&mut sessions, options, &mut recorder, progress);
            let kill = killer.map(|thread| thread.join().expect("the kill thread does not panic"));
            (outcome, kill)
        });
        // Closing the sessions before the server stops lets it see them go.
        drop(sessions);
        outcome.map(|outcome| (outcome, kill))
    })();
    let stopped = stop(running);
    let (outcome, kill_requested) = match driven {
        Ok(driven) => driven,
        Err(error) => {
            let failure = stopped
                .ok()
                .and_then(|(server, _)| server.and_then(|server| server.failure));
            return Err(match failure {
                Some(failure) => format!("{}: {error} (server: {failure})", options.label),
                None => format!("{}: {error}", options.label),
            });
        }
    };
    let (server, echo) = stopped?;
    let measured_ns = recorder
        .last_measured_answer_ns
        .saturating_sub(window_start)
        .max(u64::try_from(options.duration.as_nanos()).unwrap_or(u64::MAX));
    let achieved_rate = recorder.counts.measured_answered as f64 * 1e9 / measured_ns as f64;
    let summary = format!(
        "bench: {}: {} messages answered, {:.0}/s achieved, {} unanswered",
        options.label, recorder.counts.measured_answered, achieved_rate, outcome.unanswered
    );
    progress.finish(&summary);
    let match_audit = recorder.match_audit();
    let kill = match (options.kill_replica, kill_requested, &server) {
        (Some(kill), Some(requested), Some(server)) => Some(KillOutcome {
            replica: requested.replica,
            was_leader: requested.was_leader,
            published_seq_at_kill: requested.published_seq,
            at: requested.at,
            window_before: kill.window_before,
            window_after: kill.window_after,
            replica_panics: server
                .replica_panics
                .get(requested.replica)
                .copied()
                .unwrap_or(0),
            replica_rebuilds: server
                .replica_rebuilds
                .get(requested.replica)
                .copied()
                .unwrap_or(0),
            gaps: outcome.unanswered + match_audit.sides_missing,
            duplicates: recorder.counts.unmatched_replies + match_audit.sides_duplicated,
            accepted_kill_window: recorder.accepted_kill_window.clone(),
            accepted_steady: recorder.accepted_steady.clone(),
        }),
        _ => None,
    };
    Ok(LoadReport {
        label: options.label.clone(),
        target: kind,
        sessions: options.sessions,
        pacing: options.pacing,
        duration: options.duration,
        warmup: options.warmup,
        accepted: recorder.accepted,
        executed: recorder.executed,
        canceled: recorder.canceled,
        send_lag: recorder.send_lag,
        counts: recorder.counts,
        achieved_rate,
        unanswered: outcome.unanswered,
        capped: outcome.capped,
        elapsed: outcome.elapsed,
        server,
        echo,
        match_audit,
        kill,
    })
}
