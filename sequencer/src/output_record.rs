//! What a replica hands to egress through its output ring: each event of a
//! seq, then an end marker carrying the replica's rolling event hash after
//! that seq. The epoch numbers the replica's lives: it grows each time the
//! replica rebuilds and rejoins, so egress can drop anything a replica wrote
//! before it was fenced.

use lockstep_engine::Event;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputRecord {
    /// One event of `seq`, in the order the engine emitted it.
    Event { epoch: u64, seq: u64, event: Event },
    /// `seq` is complete; `event_hash` is the engine's rolling event hash
    /// after it and `events` how many events the seq produced.
    End {
        epoch: u64,
        seq: u64,
        event_hash: u64,
        events: u32,
    },
}

impl OutputRecord {
    #[inline]
    pub fn seq(&self) -> u64 {
        match self {
            OutputRecord::Event { seq, .. } | OutputRecord::End { seq, .. } => *seq,
        }
    }

    #[inline]
    pub fn epoch(&self) -> u64 {
        match self {
            OutputRecord::Event { epoch, .. } | OutputRecord::End { epoch, .. } => *epoch,
        }
    }
}
