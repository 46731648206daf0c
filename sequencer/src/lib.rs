//! `lockstep-sequencer` will own the sequencer, the journal, the broadcast
//! ring, the replica runner, egress, snapshots and recovery (issue 3). It is
//! an empty member of the workspace until then: nothing here pretends to work.
