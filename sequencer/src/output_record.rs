//! What a replica hands to egress through its output ring: each event of a
//! seq, with the time the sequencer stamped on the seq's command, then an
//! end marker carrying the replica's rolling event hash after that seq. A
//! seq may have no events (a cancel-all of a session without orders): then
//! the end marker alone says it is done. The epoch numbers the replica's
//! lives: it grows each time the replica rebuilds and rejoins, so egress can
//! drop anything a replica wrote before it was fenced.

use lockstep_engine::Event;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputRecord {
    /// One event of `seq`, in the order the engine emitted it.
    /// `timestamp_ns` is the sequencer's stamp on the command (the journal
    /// record's), so every replica, and a rebuild from the journal, hands
    /// over the same one.
    Event {
        epoch: u64,
        seq: u64,
        timestamp_ns: u64,
        event: Event,
    },
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
