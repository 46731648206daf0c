//! What a seed runs: the system's shape (replicas, ring and queue sizes,
//! batch sizes, lag bound, snapshots, durability policy), the engine's
//! tables, the client load, and how often each fault happens. Everything is
//! drawn from the seed, so the seed alone names the run. Sizes are small on
//! purpose: rings wrap and fill, tables fill, batches split.

use crate::client::{engine_config, ClientFaultRates};
use crate::disk::CrashDamageRates;
use crate::gateway_clients::GatewayFaultRates;
use crate::rng::SimRng;
use crate::sim_gateway::gateway_config;
use lockstep_engine::EngineConfig;
use lockstep_sequencer::durability::DurabilityPolicy;
use lockstep_transport::gateway_config::GatewayConfig;

/// How often each fault is injected, per million steps (client faults: per
/// million commands; crash damage: per million crashes).
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultRates {
    pub replica_panic: u32,
    pub replica_stall: u32,
    pub replica_slow: u32,
    pub replica_diverge: u32,
    pub process_crash: u32,
    pub crash_in_write: u32,
    pub crash_before_sync: u32,
    pub short_write: u32,
    pub disk_full: u32,
    pub sync_failure: u32,
    pub clock_jump: u32,
    pub clock_drift: u32,
    pub snapshot_corruption: u32,
    /// The longest stall, in steps.
    pub stall_steps_max: u64,
    pub damage: CrashDamageRates,
    pub client: ClientFaultRates,
}

/// One seed's run.
#[derive(Clone, Debug)]
pub struct SimPlan {
    pub seed: u64,
    /// Steps with load and faults; then a quiet phase, without either, in
    /// which the system must converge.
    pub steps: u64,
    /// The quiet phase's bound, in steps.
    pub quiet_steps_max: u64,
    pub replicas: usize,
    pub engine: EngineConfig,
    pub durability: DurabilityPolicy,
    pub input_queue_max: usize,
    pub broadcast_ring_size: usize,
    pub output_ring_size: usize,
    pub sequencer_batch_max: usize,
    pub fence_lag_max: u64,
    pub hash_window_size: usize,
    pub snapshot_interval: u64,
    pub snapshots_kept: usize,
    /// The chance, per million, that clients send a burst in a step.
    pub load_per_million: u32,
    /// The most commands in one burst.
    pub burst_max: u64,
    pub faults: FaultRates,
    /// Order traffic through the real gateway from SoupBinTCP/OUCH clients
    /// (most seeds), or `None`: commands go straight to the sequencer.
    pub gateway: Option<GatewayPlan>,
}

/// The gateway of a seed that has one: its configuration (small limits, so
/// that they are reached) and how often its clients misbehave.
#[derive(Clone, Debug)]
pub struct GatewayPlan {
    pub config: GatewayConfig,
    pub faults: GatewayFaultRates,
}

/// A rate for one kind of fault: none in about a quarter of the seeds, so
/// that each fault is also seen alone, else anything up to `max`.
fn rate(rng: &mut SimRng, max: u32) -> u32 {
    if rng.below(4) == 0 {
        0
    } else {
        rng.range(1, u64::from(max)) as u32
    }
}

/// The gateway part of a seed's plan, drawn from a generator of its own so
/// that the rest of the plan is what it was before the gateway existed (the
/// regression seeds keep their shapes).
fn gateway_plan(seed: u64, sessions: u16) -> Option<GatewayPlan> {
    let mut rng = SimRng::new(seed).fork(0x6761_7465);
    // One seed in five keeps the command-level clients only.
    if rng.below(5) == 0 {
        return None;
    }
    let config = gateway_config(&mut rng, sessions);
    let faults = GatewayFaultRates {
        disconnect: rate(&mut rng, 3_000),
        garbage: rate(&mut rng, 2_000),
        duplicate_per_million: rate(&mut rng, 50_000),
        partial_per_million: rate(&mut rng, 300_000),
        bad_login_per_million: rate(&mut rng, 150_000),
        silent: rate(&mut rng, 1_000),
        stop_reading: rate(&mut rng, 1_000),
        logout: rate(&mut rng, 1_000),
        crash_reconnect_from_one_per_million: rng.range(200_000, 900_000) as u32,
        vanish: rate(&mut rng, 1_500),
    };
    Some(GatewayPlan { config, faults })
}

impl SimPlan {
    pub fn from_seed(seed: u64, steps: u64) -> SimPlan {
        let mut rng = SimRng::new(seed).fork(0x706c_616e);
        let replicas = rng.range_usize(1, 5);
        let broadcast_ring_size = 1usize << rng.range(3, 6);
        let output_ring_size = 1usize << rng.range(2, 6);
        let fence_lag_max = rng.range(1, broadcast_ring_size as u64 - 1);
        let hash_window_size = (fence_lag_max as usize + 1).next_power_of_two() << rng.range(0, 2);
        let faults = FaultRates {
            replica_panic: rate(&mut rng, 4_000),
            replica_stall: rate(&mut rng, 3_000),
            replica_slow: rate(&mut rng, 2_000),
            replica_diverge: rate(&mut rng, 2_000),
            process_crash: rate(&mut rng, 1_000),
            crash_in_write: rate(&mut rng, 700),
            crash_before_sync: rate(&mut rng, 700),
            short_write: rate(&mut rng, 400),
            disk_full: rate(&mut rng, 400),
            sync_failure: rate(&mut rng, 400),
            clock_jump: rate(&mut rng, 3_000),
            clock_drift: rate(&mut rng, 2_000),
            snapshot_corruption: rate(&mut rng, 2_000),
            stall_steps_max: rng.range(10, 1_500),
            damage: CrashDamageRates {
                torn_per_million: rate(&mut rng, 600_000),
                flip_unsynced_per_million: rate(&mut rng, 400_000),
                lost_page_per_million: rate(&mut rng, 300_000),
                zero_tail_per_million: rate(&mut rng, 300_000),
                rot_per_million: rate(&mut rng, 200_000),
            },
            client: ClientFaultRates {
                duplicate_per_million: rate(&mut rng, 50_000),
                unknown_session_per_million: rate(&mut rng, 30_000),
                unknown_order_per_million: rate(&mut rng, 100_000),
            },
        };
        let engine = engine_config(&mut rng);
        let gateway = gateway_plan(seed, engine.sessions_max);
        SimPlan {
            seed,
            steps,
            quiet_steps_max: 5_000,
            replicas,
            engine,
            durability: if rng.below(4) == 0 {
                DurabilityPolicy::Every
            } else {
                DurabilityPolicy::Batch
            },
            input_queue_max: 1 << rng.range(2, 8),
            broadcast_ring_size,
            output_ring_size,
            sequencer_batch_max: rng.range_usize(1, broadcast_ring_size),
            fence_lag_max,
            hash_window_size,
            snapshot_interval: if rng.below(3) == 0 {
                0
            } else {
                rng.range(4, 64)
            },
            snapshots_kept: rng.range_usize(1, 3),
            load_per_million: rng.range(100_000, 900_000) as u32,
            burst_max: rng.range(1, 16),
            faults,
            gateway,
        }
    }
}
