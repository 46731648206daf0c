//! Test-only fault hooks for replicas: panic, stall or diverge at a chosen
//! seq. They exist so that the failure model (fencing, rebuilding, rejoining
//! with no gap in the published stream) can be proved by tests; a production
//! configuration has none. Each hook fires once, at the first seq at or
//! after its mark that the replica applies (a replica that rebuilt past the
//! mark silently fires at its next applied seq).

use std::time::Duration;

/// What a fault does when its replica reaches its seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The replica panics before applying the command.
    Panic,
    /// The replica stops for this long before applying the command.
    Stall(Duration),
    /// The replica waits until egress has published this seq from a healthy
    /// replica (at most a second), then applies a different command in place
    /// of this one, so its state and its event hash diverge from every
    /// other replica's.
    Diverge,
}

/// One fault: which replica, at which seq, doing what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaFault {
    pub replica: usize,
    pub at_seq: u64,
    pub kind: FaultKind,
}
