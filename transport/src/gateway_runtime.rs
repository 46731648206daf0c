//! Running a gateway: `spawn_gateway` starts the chosen I/O backend's agent
//! on its own thread around a [`GatewayCore`], and `GatewayHandle` stops it.
//! `GatewayControl` is what the handle and the agent share: the stop flag,
//! the agent's wake-up, and a failure the agent hit (a poll error, a full
//! output log) for the server to report.

use crate::event_inbox::{EventInbox, WakeFn};
use crate::gateway_config::IoBackend;
use crate::gateway_core::{GatewayCore, GatewayStats};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

/// Shared between a running agent and its handle.
#[derive(Default)]
pub struct GatewayControl {
    stop: AtomicBool,
    waker: OnceLock<WakeFn>,
    failure: Mutex<Option<String>>,
}

impl GatewayControl {
    pub fn new() -> GatewayControl {
        GatewayControl::default()
    }

    pub fn set_waker(&self, waker: WakeFn) {
        let _ = self.waker.set(waker);
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(waker) = self.waker.get() {
            waker();
        }
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// The stop flag itself, for waits that must end when the gateway stops.
    pub fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    pub fn set_failure(&self, failure: String) {
        let mut slot = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(failure);
    }

    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What a gateway did, when it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayReport {
    pub stats: GatewayStats,
    pub last_seq: u64,
}

/// A running gateway thread.
pub struct GatewayHandle {
    pub local_addr: SocketAddr,
    pub backend: IoBackend,
    control: Arc<GatewayControl>,
    thread: Option<JoinHandle<GatewayReport>>,
}

impl GatewayHandle {
    pub fn control(&self) -> &Arc<GatewayControl> {
        &self.control
    }

    /// A failure the gateway stopped on, if any.
    pub fn failure(&self) -> Option<String> {
        self.control.failure()
    }

    /// Whether the gateway thread has ended (on its own, after a failure).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Sends End of Session to every client, closes every connection and
    /// joins the thread.
    pub fn stop(mut self) -> GatewayReport {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> GatewayReport {
        self.control.request_stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(report)) => report,
            Some(Err(_)) => {
                self.control
                    .set_failure("the gateway thread panicked".to_string());
                GatewayReport {
                    stats: GatewayStats::default(),
                    last_seq: 0,
                }
            }
            None => GatewayReport {
                stats: GatewayStats::default(),
                last_seq: 0,
            },
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_and_join();
        }
    }
}

/// Why a gateway could not start.
#[derive(Debug)]
pub struct GatewayStartError(pub String);

impl std::fmt::Display for GatewayStartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GatewayStartError {}

/// Starts the gateway on `listener` with the backend its config names,
/// pinned to `core_id` if given.
pub fn spawn_gateway(
    core: GatewayCore,
    inbox: Arc<EventInbox>,
    listener: std::net::TcpListener,
    core_id: Option<usize>,
) -> Result<GatewayHandle, GatewayStartError> {
    let backend = core.config().io_backend;
    let local_addr = listener
        .local_addr()
        .map_err(|error| GatewayStartError(format!("listener address: {error}")))?;
    let control = Arc::new(GatewayControl::new());
    let agent_control = Arc::clone(&control);
    let run: Box<dyn FnOnce() -> GatewayReport + Send> = match backend {
        IoBackend::Mio => {
            let agent =
                crate::gateway_mio::MioGatewayAgent::new(core, inbox, listener, agent_control)
                    .map_err(|error| GatewayStartError(format!("mio gateway: {error}")))?;
            Box::new(move || agent.run())
        }
        IoBackend::Uring => {
            let agent =
                crate::gateway_uring::UringGatewayAgent::new(core, inbox, listener, agent_control)
                    .map_err(|error| GatewayStartError(format!("io_uring gateway: {error}")))?;
            Box::new(move || agent.run())
        }
    };
    let thread = std::thread::Builder::new()
        .name(format!("gateway-{}", backend.name()))
        .spawn(move || {
            if let Some(core_id) = core_id {
                let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: core_id });
                if !pinned {
                    tracing::warn!(core_id, "could not pin the gateway thread");
                }
            }
            run()
        })
        .map_err(|error| GatewayStartError(format!("gateway thread: {error}")))?;
    Ok(GatewayHandle {
        local_addr,
        backend,
        control,
        thread: Some(thread),
    })
}
