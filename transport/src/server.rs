//! `Server`: the whole of Lockstep in one process — the sequencer, its
//! replicas and egress (from `lockstep-sequencer`) and the gateway — wired
//! together and started in the order that keeps every promise: the core
//! starts and recovers its journal first; the gateway's session output logs
//! are then rebuilt from that journal (every sequenced message is a function
//! of the journaled commands, so a client that reconnects after a restart
//! with a requested sequence number gets exactly what it was sent before);
//! only then does the gateway listen. `lockstep serve`, the integration tests
//! and the bench tool all run this.

use crate::event_inbox::{EventInbox, PublishedEvent};
use crate::gateway_config::GatewayConfig;
use crate::gateway_core::{CommandSubmitter, GatewayCore, SubmitRefusal};
use crate::gateway_runtime::{spawn_gateway, GatewayHandle, GatewayReport};
use lockstep_engine::{Command, Engine, EngineConfig, Event};
use lockstep_sequencer::journal::JournalError;
use lockstep_sequencer::journal_reader::JournalReader;
use lockstep_sequencer::journal_record::SequencedCommand;
use lockstep_sequencer::system::{
    self, StartupReport, SubmitError, SystemHandle, SystemReport, SystemSubmitter,
};
use lockstep_sequencer::system_config::SystemConfig;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Why the server could not start.
#[derive(Debug)]
pub struct ServerError(pub String);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

/// What rebuilding the sessions' output logs did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub commands_replayed: u64,
    pub events_replayed: u64,
    pub elapsed_ms: u64,
}

/// The end of a run.
#[derive(Clone, Debug)]
pub struct ServerReport {
    pub system: SystemReport,
    pub gateway: GatewayReport,
}

/// Hands the gateway's commands to the sequencer's input queue.
struct SequencerSubmitter(SystemSubmitter);

impl CommandSubmitter for SequencerSubmitter {
    fn submit(&mut self, command: Command) -> Result<(), SubmitRefusal> {
        self.0.submit(command).map_err(|error| match error {
            SubmitError::Full(_) => SubmitRefusal::Busy,
            SubmitError::Stopped(_) => SubmitRefusal::Stopped,
        })
    }
}

/// A running Lockstep.
pub struct Server {
    system: Option<SystemHandle>,
    gateway: Option<GatewayHandle>,
    /// Set once the gateway is gone, so the egress never waits on its inbox.
    inbox_closed: Arc<AtomicBool>,
    rebuild: RebuildReport,
}

/// Replays the journal through a fresh engine into the gateway, up to and
/// including `through_seq`, so every session's output log is as it was.
fn rebuild_sessions(
    core: &mut GatewayCore,
    config: &SystemConfig,
    through_seq: u64,
) -> Result<RebuildReport, ServerError> {
    let started = Instant::now();
    let journal_path = config.journal_path();
    if through_seq == 0 || !journal_path.exists() {
        core.finish_rebuild();
        return Ok(RebuildReport::default());
    }
    let reader = JournalReader::open(&journal_path)
        .map_err(|error| ServerError(format!("rebuild: {error}")))?;
    let mut report = replay_journal_into(core, &config.engine, reader, through_seq)?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Rebuilds a fresh gateway's sessions from journal records: every command
/// up to and including `through_seq` is replayed into the gateway (so the
/// day-unique token sets come back) and through a fresh engine whose events
/// are published to it (so every session's output log comes back byte for
/// byte), and then the rebuild is finished. The server feeds it the journal
/// file; the deterministic simulator feeds it its simulated disk's bytes, so
/// both rebuild the same way. It reads no clock: `elapsed_ms` stays 0.
pub fn replay_journal_into(
    core: &mut GatewayCore,
    engine_config: &EngineConfig,
    records: impl IntoIterator<Item = Result<SequencedCommand, JournalError>>,
    through_seq: u64,
) -> Result<RebuildReport, ServerError> {
    let mut report = RebuildReport::default();
    if through_seq == 0 {
        core.finish_rebuild();
        return Ok(report);
    }
    let mut engine = Engine::new(engine_config.clone())
        .map_err(|error| ServerError(format!("rebuild engine: {error}")))?;
    let mut events: Vec<Event> = Vec::with_capacity(1024);
    for record in records {
        let record = record.map_err(|error| ServerError(format!("rebuild: {error}")))?;
        if record.seq > through_seq {
            break;
        }
        core.replay_command(&record.command);
        events.clear();
        engine.apply(&record.command, &mut |event: &Event| events.push(*event));
        for event in &events {
            core.publish(&PublishedEvent {
                seq: record.seq,
                timestamp_ns: record.timestamp_ns,
                event: *event,
            });
        }
        report.commands_replayed += 1;
        report.events_replayed += events.len() as u64;
    }
    if let Some(fatal) = core.fatal() {
        return Err(ServerError(format!("rebuild: {fatal}")));
    }
    core.finish_rebuild();
    Ok(report)
}

impl Server {
    /// Starts everything; `listener` overrides the config's listen address
    /// (tests bind port 0 themselves). `gateway_core_id` pins the gateway.
    pub fn start(
        system_config: SystemConfig,
        gateway_config: GatewayConfig,
        listener: Option<TcpListener>,
        gateway_core_id: Option<usize>,
    ) -> Result<Server, ServerError> {
        gateway_config
            .validate()
            .map_err(|error| ServerError(format!("gateway config: {error}")))?;
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(gateway_config.listen).map_err(|error| {
                ServerError(format!("listen on {}: {error}", gateway_config.listen))
            })?,
        };
        let inbox = Arc::new(EventInbox::new(gateway_config.event_queue_max));
        let inbox_closed = Arc::new(AtomicBool::new(false));
        let sink_inbox = Arc::clone(&inbox);
        let sink_closed = Arc::clone(&inbox_closed);
        let sink = Box::new(move |seq: u64, timestamp_ns: u64, event: &Event| {
            sink_inbox.push(
                PublishedEvent {
                    seq,
                    timestamp_ns,
                    event: *event,
                },
                &sink_closed,
            );
        });
        let rebuild_config = system_config.clone();
        let system = system::start(system_config, sink)
            .map_err(|error| ServerError(format!("core: {error}")))?;
        let recovered_seq = system.startup().recovered_seq;
        let submitter = Box::new(SequencerSubmitter(system.submitter()));
        let started = GatewayCore::new(gateway_config, submitter, 0)
            .map_err(|error| ServerError(format!("gateway config: {error}")))
            .and_then(|mut core| {
                let rebuild = rebuild_sessions(&mut core, &rebuild_config, recovered_seq)?;
                tracing::info!(
                    recovered_seq,
                    commands = rebuild.commands_replayed,
                    events = rebuild.events_replayed,
                    elapsed_ms = rebuild.elapsed_ms,
                    "session output logs rebuilt from the journal"
                );
                let gateway = spawn_gateway(core, inbox, listener, gateway_core_id)
                    .map_err(|error| ServerError(error.to_string()))?;
                Ok((gateway, rebuild))
            });
        let (gateway, rebuild) = match started {
            Ok(started) => started,
            Err(error) => {
                // The core is running: stop it cleanly, and never let its
                // egress wait on an inbox nobody will drain.
                inbox_closed.store(true, Ordering::Release);
                system.shutdown();
                return Err(error);
            }
        };
        tracing::info!(addr = %gateway.local_addr, backend = gateway.backend.name(), "listening");
        Ok(Server {
            system: Some(system),
            gateway: Some(gateway),
            inbox_closed,
            rebuild,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.gateway
            .as_ref()
            .map(|gateway| gateway.local_addr)
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn startup(&self) -> Option<&StartupReport> {
        self.system.as_ref().map(SystemHandle::startup)
    }

    pub fn rebuild_report(&self) -> RebuildReport {
        self.rebuild
    }

    pub fn system(&self) -> Option<&SystemHandle> {
        self.system.as_ref()
    }

    /// A failure either half stopped on, if any.
    pub fn failure(&self) -> Option<String> {
        let system = self.system.as_ref().and_then(SystemHandle::failure);
        let gateway = self.gateway.as_ref().and_then(GatewayHandle::failure);
        system
            .map(|failure| format!("core: {failure}"))
            .or(gateway.map(|failure| format!("gateway: {failure}")))
    }

    /// Clean stop: clients get End of Session, then everything submitted is
    /// sequenced, journaled, synced and published, and the journal closed.
    pub fn stop(mut self) -> ServerReport {
        self.stop_with(|system| system.shutdown())
    }

    /// Stops as a crash would: the gateway drops its clients and the core's
    /// threads stop where they are, without syncing the journal.
    pub fn crash(mut self) -> ServerReport {
        self.stop_with(|system| system.crash())
    }

    fn stop_with(
        &mut self,
        stop_system: impl FnOnce(SystemHandle) -> SystemReport,
    ) -> ServerReport {
        let gateway = self
            .gateway
            .take()
            .map(GatewayHandle::stop)
            .unwrap_or(GatewayReport {
                stats: Default::default(),
                last_seq: 0,
            });
        self.inbox_closed.store(true, Ordering::Release);
        let system = self
            .system
            .take()
            .map(stop_system)
            .expect("a server is stopped once");
        ServerReport { system, gateway }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.system.is_some() {
            self.stop_with(|system| system.shutdown());
        }
    }
}
