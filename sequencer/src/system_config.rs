//! The configuration of one running Lockstep core: the engine's own config,
//! how many replicas, where the journal and snapshots live, the durability
//! policy, every ring and queue size, the fencing bounds, the snapshot
//! interval, and which core and wait strategy each thread gets. Every bound
//! the running system respects is named here with a `_max` or `_size`
//! suffix, and `validate` checks their relationships before anything starts.

use crate::durability::DurabilityPolicy;
use crate::replica_fault::ReplicaFault;
use crate::wait_strategy::WaitStrategy;
use lockstep_engine::EngineConfig;
use std::fmt;
use std::path::PathBuf;

/// The most replicas one system runs (each is a reader of the ring).
pub const REPLICAS_MAX: usize = 8;

/// Which core each hot thread is pinned to; `None` leaves it to the OS. A
/// core that does not exist on this machine is skipped with a log line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadCores {
    pub sequencer: Option<usize>,
    pub egress: Option<usize>,
    /// One entry per replica; missing entries mean no pinning.
    pub replicas: Vec<Option<usize>>,
}

/// How each hot thread waits when it has nothing to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadWaits {
    pub sequencer: WaitStrategy,
    pub replica: WaitStrategy,
    pub egress: WaitStrategy,
}

/// Everything a [`crate::system::start`] needs to start.
#[derive(Clone, Debug)]
pub struct SystemConfig {
    pub engine: EngineConfig,
    pub replicas: usize,
    /// Holds `journal.lkj` and `snapshots/`.
    pub data_dir: PathBuf,
    pub durability: DurabilityPolicy,
    pub prefer_io_uring: bool,
    /// Commands waiting for the sequencer; a full queue rejects `submit`.
    pub input_queue_max: usize,
    /// Slots of the broadcast ring (a power of two).
    pub broadcast_ring_size: usize,
    /// Slots of each replica's output ring (a power of two).
    pub output_ring_size: usize,
    /// Commands the sequencer stamps, journals and publishes as one batch.
    pub sequencer_batch_max: usize,
    /// A replica this many commands behind the sequencer is fenced. Must be
    /// below `broadcast_ring_size`, so a stalled replica is fenced before the
    /// ring fills and the sequencer would wait for it.
    pub fence_lag_max: u64,
    /// How many published seqs' hashes egress keeps to compare late
    /// replicas against (a power of two, larger than `fence_lag_max`).
    pub hash_window_size: usize,
    /// Take a snapshot every this many seqs (0: never).
    pub snapshot_interval: u64,
    /// Snapshots kept on disk.
    pub snapshots_kept: usize,
    pub cores: ThreadCores,
    pub waits: ThreadWaits,
    /// Test-only fault hooks; empty in production.
    pub faults: Vec<ReplicaFault>,
}

/// Why a [`SystemConfig`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemConfigError {
    pub key: &'static str,
    pub problem: String,
}

impl fmt::Display for SystemConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "system config: {}: {}", self.key, self.problem)
    }
}

impl std::error::Error for SystemConfigError {}

fn error(key: &'static str, problem: impl Into<String>) -> SystemConfigError {
    SystemConfigError {
        key,
        problem: problem.into(),
    }
}

impl SystemConfig {
    /// A configuration with the defaults for a shared 2-core machine.
    pub fn new(engine: EngineConfig, data_dir: PathBuf) -> SystemConfig {
        SystemConfig {
            engine,
            replicas: 3,
            data_dir,
            durability: DurabilityPolicy::Batch,
            prefer_io_uring: true,
            input_queue_max: 1 << 16,
            broadcast_ring_size: 1 << 16,
            output_ring_size: 1 << 14,
            // Group commit: while one fdatasync runs (about 0.2-0.3 ms on this
            // machine's disk) commands queue up; a large batch lets the next
            // sync cover all of them instead of capping throughput at
            // batch / sync time.
            sequencer_batch_max: 4096,
            // The ring less one: a replica is fenced for lag only when it
            // is about to hold the sequencer back. On a shared 2-core machine
            // replicas time-slice and routinely fall tens of thousands of
            // seqs behind the leader without being stuck; a dedicated-core
            // deployment can set a much smaller bound.
            fence_lag_max: (1 << 16) - 1,
            hash_window_size: 1 << 16,
            snapshot_interval: 1 << 18,
            snapshots_kept: 2,
            cores: ThreadCores::default(),
            waits: ThreadWaits::default(),
            faults: Vec::new(),
        }
    }

    /// Checks every bound and the relationships between them.
    pub fn validate(&self) -> Result<(), SystemConfigError> {
        self.engine
            .validate()
            .map_err(|problem| error("engine", problem.to_string()))?;
        if self.replicas == 0 || self.replicas > REPLICAS_MAX {
            return Err(error(
                "replicas",
                format!("{} is outside 1..={REPLICAS_MAX}", self.replicas),
            ));
        }
        for (key, size) in [
            ("broadcast_ring_size", self.broadcast_ring_size),
            ("output_ring_size", self.output_ring_size),
            ("hash_window_size", self.hash_window_size),
        ] {
            if size < 2 || !size.is_power_of_two() {
                return Err(error(
                    key,
                    format!("{size} is not a power of two of at least 2"),
                ));
            }
        }
        if self.input_queue_max == 0 {
            return Err(error("input_queue_max", "must be positive"));
        }
        if self.sequencer_batch_max == 0 || self.sequencer_batch_max > self.broadcast_ring_size {
            return Err(error(
                "sequencer_batch_max",
                "must be between 1 and broadcast_ring_size",
            ));
        }
        if self.fence_lag_max == 0 || self.fence_lag_max >= self.broadcast_ring_size as u64 {
            return Err(error(
                "fence_lag_max",
                "must be positive and below broadcast_ring_size",
            ));
        }
        if self.hash_window_size as u64 <= self.fence_lag_max {
            return Err(error(
                "hash_window_size",
                "must be larger than fence_lag_max",
            ));
        }
        if self.snapshots_kept == 0 {
            return Err(error("snapshots_kept", "must be at least 1"));
        }
        for fault in &self.faults {
            if fault.replica >= self.replicas {
                return Err(error(
                    "faults",
                    format!("fault names replica {} of {}", fault.replica, self.replicas),
                ));
            }
        }
        Ok(())
    }

    pub fn journal_path(&self) -> PathBuf {
        self.data_dir.join("journal.lkj")
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.data_dir.join("snapshots")
    }
}
