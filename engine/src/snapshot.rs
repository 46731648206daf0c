//! Snapshots: the whole engine state as an rkyv archive behind a small
//! header that names the sequence number it covers and the state hash it
//! must reproduce. Restoring validates the archive (rkyv's checked access),
//! the configuration, every structural invariant and finally the state hash,
//! so a damaged snapshot is refused with a reason instead of producing an
//! engine that silently disagrees with its peers.

use crate::engine::Engine;
use std::fmt;

const MAGIC: [u8; 8] = *b"LKSNAP03";
const HEADER_BYTES: usize = 40;

/// A checksum of the payload, so a flipped bit anywhere is refused before
/// the archive is even read.
fn payload_checksum(payload: &[u8]) -> u64 {
    let mut hasher = crate::stable_hash::StableHasher::new();
    let mut chunks = payload.chunks_exact(8);
    for chunk in &mut chunks {
        hasher.write_u64(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    hasher.write_u64(u64::from_le_bytes(tail));
    hasher.write_u64(payload.len() as u64);
    hasher.finish()
}

/// What a snapshot says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The last sequence number applied before the snapshot was taken.
    pub seq: u64,
    pub state_hash: u64,
}

/// Why a snapshot could not be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    TooShort { bytes: usize },
    BadMagic,
    LengthMismatch { declared: u64, actual: u64 },
    ChecksumMismatch { declared: u64, computed: u64 },
    Archive(String),
    Invariant(String),
    StateHashMismatch { declared: u64, computed: u64 },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::TooShort { bytes } => write!(f, "snapshot: {bytes} bytes is shorter than the {HEADER_BYTES}-byte header"),
            SnapshotError::BadMagic => write!(f, "snapshot: bad magic (not a Lockstep snapshot, or another version)"),
            SnapshotError::LengthMismatch { declared, actual } => {
                write!(f, "snapshot: header declares {declared} payload bytes but {actual} follow")
            }
            SnapshotError::ChecksumMismatch { declared, computed } => write!(
                f,
                "snapshot: payload checksum {computed:016x} differs from the recorded {declared:016x} (damaged file)"
            ),
            SnapshotError::Archive(problem) => write!(f, "snapshot: archive invalid: {problem}"),
            SnapshotError::Invariant(problem) => write!(f, "snapshot: restored state is inconsistent: {problem}"),
            SnapshotError::StateHashMismatch { declared, computed } => write!(
                f,
                "snapshot: state hash {computed:016x} of the restored state differs from the recorded {declared:016x}"
            ),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl Engine {
    /// Serializes the whole state; `seq` is the last sequence number applied.
    pub fn snapshot(&self, seq: u64) -> Vec<u8> {
        let payload =
            rkyv::to_bytes::<rkyv::rancor::Error>(self).expect("serializing to memory cannot fail");
        let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&seq.to_le_bytes());
        bytes.extend_from_slice(&self.state_hash().to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&payload_checksum(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes
    }

    /// Rebuilds an engine from [`Engine::snapshot`]'s bytes.
    pub fn restore(bytes: &[u8]) -> Result<(Engine, Snapshot), SnapshotError> {
        if bytes.len() < HEADER_BYTES {
            return Err(SnapshotError::TooShort { bytes: bytes.len() });
        }
        if bytes[..8] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let header = Snapshot {
            seq: word(8),
            state_hash: word(16),
        };
        let declared = word(24);
        let payload = &bytes[HEADER_BYTES..];
        if declared != payload.len() as u64 {
            return Err(SnapshotError::LengthMismatch {
                declared,
                actual: payload.len() as u64,
            });
        }
        // Damage to a field that neither the invariants nor the state hash
        // cover (an instrument's band or tick, say) would otherwise restore
        // an engine that silently disagrees with its peers. This check was
        // documented but missing until the simulator found it (seed 2407).
        let declared_checksum = word(32);
        let computed_checksum = payload_checksum(payload);
        if declared_checksum != computed_checksum {
            return Err(SnapshotError::ChecksumMismatch {
                declared: declared_checksum,
                computed: computed_checksum,
            });
        }
        // rkyv needs the archive aligned; a copy into an aligned buffer is
        // cheap next to the validation that follows.
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
        aligned.extend_from_slice(payload);
        let engine = rkyv::from_bytes::<Engine, rkyv::rancor::Error>(&aligned)
            .map_err(|error| SnapshotError::Archive(error.to_string()))?;
        engine
            .config
            .validate()
            .map_err(|error| SnapshotError::Invariant(error.to_string()))?;
        engine
            .check_table_shapes()
            .map_err(SnapshotError::Invariant)?;
        engine
            .check_invariants()
            .map_err(SnapshotError::Invariant)?;
        let computed = engine.state_hash();
        if computed != header.state_hash {
            return Err(SnapshotError::StateHashMismatch {
                declared: header.state_hash,
                computed,
            });
        }
        Ok((engine, header))
    }
}
