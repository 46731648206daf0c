//! `lockstep-sequencer`: the sequencer, the journal, the broadcast ring, the
//! replica runner, egress, snapshots and recovery. Each part lives in its own
//! module, small enough to read in one sitting.
pub mod broadcast_ring;
pub mod clock;
pub mod core_probe;
pub mod durability;
pub mod egress;
pub mod fuzz_checks;
pub mod hop_probe;
pub mod journal;
pub mod journal_backend;
pub mod journal_reader;
pub mod journal_record;
pub mod output_record;
pub mod output_ring;
pub mod pinning;
pub mod rebuild;
pub mod replica;
pub mod replica_fault;
pub mod sequence;
pub mod sequencer_agent;
pub mod snapshot_store;
pub mod system;
pub mod system_config;
pub mod wait_strategy;
