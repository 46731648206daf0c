//! `lockstep-sequencer`: the sequencer, the journal, the broadcast ring, the
//! replica runner, egress, snapshots and recovery. Each part lives in its own
//! module, small enough to read in one sitting.
