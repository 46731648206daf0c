//! The reference the simulated system is checked against: one engine that
//! applies the journal, exactly as `lockstep replay --journal` would. It
//! reads the simulated disk incrementally after every step (every record a
//! reader can see, synced or not, must be whole, valid and gapless), and
//! keeps, for every seq of the current timeline, the state hash and event
//! hash after it and the events it produced. After a crash the timeline is
//! what the recovered journal holds, and the model is rebuilt from it.

use crate::disk::SimDisk;
use lockstep_engine::{Engine, EngineConfig, Event};
use lockstep_sequencer::journal_record::{
    decode_header, decode_record, HEADER_SIZE_BYTES, RECORD_SIZE_BYTES,
};

/// One published or replayed event: seq, timestamp, event.
pub type Output = (u64, u64, Event);

/// The model's record of one seq.
#[derive(Clone, Copy, Debug)]
pub struct SeqAfter {
    pub state_hash: u64,
    pub event_hash: u64,
    pub timestamp_ns: u64,
    /// Its events are `events[events_start..events_end]`.
    pub events_start: usize,
    pub events_end: usize,
}

pub struct Model {
    config: EngineConfig,
    engine: Engine,
    initial_state_hash: u64,
    initial_event_hash: u64,
    /// Index `seq - 1`.
    seqs: Vec<SeqAfter>,
    events: Vec<Output>,
    /// Bytes of the disk decoded so far (the header and whole records).
    parsed_bytes: usize,
}

impl Model {
    pub fn new(config: &EngineConfig) -> Model {
        let engine = Engine::new(config.clone()).expect("the simulator's engine config is valid");
        Model {
            config: config.clone(),
            initial_state_hash: engine.state_hash(),
            initial_event_hash: engine.event_hash(),
            engine,
            seqs: Vec::new(),
            events: Vec::new(),
            parsed_bytes: 0,
        }
    }

    /// Starts over from the disk's journal (after a restart).
    pub fn rebuild(&mut self, disk: &SimDisk) -> Result<(), String> {
        *self = Model::new(&self.config);
        self.catch_up(disk)
    }

    /// Applies every whole record the disk shows beyond what was read
    /// before. Every one must decode and carry the next seq.
    pub fn catch_up(&mut self, disk: &SimDisk) -> Result<(), String> {
        let bytes = disk.read_from(self.parsed_bytes);
        let mut offset = 0;
        if self.parsed_bytes == 0 {
            if bytes.len() < HEADER_SIZE_BYTES {
                return Ok(());
            }
            let header: &[u8; HEADER_SIZE_BYTES] = bytes[..HEADER_SIZE_BYTES]
                .try_into()
                .expect("sliced to the header's size");
            let header =
                decode_header(header).map_err(|error| format!("journal header: {error}"))?;
            if header.first_seq != 1 {
                return Err(format!("journal starts at seq {}", header.first_seq));
            }
            offset = HEADER_SIZE_BYTES;
        }
        while bytes.len() - offset >= RECORD_SIZE_BYTES {
            let slot: &[u8; RECORD_SIZE_BYTES] = bytes[offset..offset + RECORD_SIZE_BYTES]
                .try_into()
                .expect("sliced to a record's size");
            let expected_seq = self.last_seq() + 1;
            let record = decode_record(slot).map_err(|error| {
                format!(
                    "journal record at byte offset {} (seq {expected_seq}) is invalid while the system runs: {error}",
                    self.parsed_bytes + offset
                )
            })?;
            if record.seq != expected_seq {
                return Err(format!(
                    "journal seq gap at byte offset {}: expected seq {expected_seq}, found {}",
                    self.parsed_bytes + offset,
                    record.seq
                ));
            }
            let events_start = self.events.len();
            let events = &mut self.events;
            self.engine.apply(&record.command, &mut |event| {
                events.push((record.seq, record.timestamp_ns, *event));
            });
            self.seqs.push(SeqAfter {
                state_hash: self.engine.state_hash(),
                event_hash: self.engine.event_hash(),
                timestamp_ns: record.timestamp_ns,
                events_start,
                events_end: self.events.len(),
            });
            offset += RECORD_SIZE_BYTES;
        }
        self.parsed_bytes += offset;
        Ok(())
    }

    /// The last seq of the timeline (0: none).
    pub fn last_seq(&self) -> u64 {
        self.seqs.len() as u64
    }

    /// The state hash and event hash after `seq`, if the timeline has it.
    pub fn hashes_after(&self, seq: u64) -> Option<(u64, u64)> {
        if seq == 0 {
            return Some((self.initial_state_hash, self.initial_event_hash));
        }
        self.seqs
            .get(seq as usize - 1)
            .map(|after| (after.state_hash, after.event_hash))
    }

    pub fn seq(&self, seq: u64) -> Option<&SeqAfter> {
        seq.checked_sub(1)
            .and_then(|index| self.seqs.get(index as usize))
    }

    pub fn events(&self) -> &[Output] {
        &self.events
    }

    /// The index in `events` of the first event of a seq after `seq`.
    pub fn first_event_after(&self, seq: u64) -> usize {
        match self.seq(seq) {
            Some(after) => after.events_end,
            None if seq == 0 => 0,
            None => self.events.len(),
        }
    }

    pub fn state_hash(&self) -> u64 {
        self.engine.state_hash()
    }
}
