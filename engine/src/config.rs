//! The engine's configuration: the instruments it trades and the capacity of
//! every table it owns. Everything the engine will ever hold is allocated from
//! these numbers at construction; nothing grows afterwards.

use crate::types::{Price, Qty};
use rkyv::{Archive, Deserialize, Serialize};
use std::fmt;

/// One tradable instrument.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentSpec {
    /// Every limit price must be a positive multiple of this.
    pub tick_size: Price,
    /// The lowest limit price accepted (inclusive).
    pub band_min: Price,
    /// The highest limit price accepted (inclusive).
    pub band_max: Price,
    /// The largest quantity one order may carry.
    pub qty_max: Qty,
}

impl InstrumentSpec {
    /// An instrument with tick size 1, no price band and no quantity limit
    /// beyond the type's own, as a flow replay uses.
    pub const fn unbounded() -> InstrumentSpec {
        InstrumentSpec {
            tick_size: 1,
            band_min: 1,
            band_max: Price::MAX,
            qty_max: Qty::MAX,
        }
    }
}

/// Capacities and instruments of one engine.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The instruments, indexed by [`crate::InstrumentId`].
    pub instruments: Vec<InstrumentSpec>,
    /// The most instruments a configuration may name.
    pub instruments_max: u32,
    /// The most orders resting at once, over all instruments.
    pub orders_max: u32,
    /// The most price levels at once, over all instruments and sides.
    pub levels_max: u32,
    /// Sessions are numbered `0..sessions_max`.
    pub sessions_max: u16,
    /// Accounts are numbered `0..accounts_max`.
    pub accounts_max: u32,
}

/// The largest capacity any table may have; it keeps every index inside a
/// `u32` with room for the "none" marker.
pub const TABLE_CAPACITY_MAX: u32 = 1 << 30;

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A capacity is zero or above [`TABLE_CAPACITY_MAX`].
    CapacityOutOfRange { name: &'static str, value: u64 },
    /// More instruments than `instruments_max`, or none at all.
    InstrumentCount { count: usize, instruments_max: u32 },
    /// An instrument's tick, band or quantity limit makes no sense.
    BadInstrument { index: usize, problem: &'static str },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::CapacityOutOfRange { name, value } => write!(
                f,
                "engine config: {name} = {value} is out of range (1..={TABLE_CAPACITY_MAX})"
            ),
            ConfigError::InstrumentCount { count, instruments_max } => write!(
                f,
                "engine config: {count} instruments named, but between 1 and instruments_max = {instruments_max} are allowed"
            ),
            ConfigError::BadInstrument { index, problem } => {
                write!(f, "engine config: instrument {index}: {problem}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl EngineConfig {
    /// Checks every capacity and instrument.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let capacities: [(&'static str, u64); 5] = [
            ("instruments_max", self.instruments_max as u64),
            ("orders_max", self.orders_max as u64),
            ("levels_max", self.levels_max as u64),
            ("sessions_max", self.sessions_max as u64),
            ("accounts_max", self.accounts_max as u64),
        ];
        for (name, value) in capacities {
            if value == 0 || value > TABLE_CAPACITY_MAX as u64 {
                return Err(ConfigError::CapacityOutOfRange { name, value });
            }
        }
        if self.instruments.is_empty() || self.instruments.len() > self.instruments_max as usize {
            return Err(ConfigError::InstrumentCount {
                count: self.instruments.len(),
                instruments_max: self.instruments_max,
            });
        }
        for (index, spec) in self.instruments.iter().enumerate() {
            let problem = if spec.tick_size == 0 {
                Some("tick_size must be positive")
            } else if spec.band_min == 0 {
                Some("band_min must be positive")
            } else if spec.band_min > spec.band_max {
                Some("band_min is above band_max")
            } else if spec.qty_max == 0 {
                Some("qty_max must be positive")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ConfigError::BadInstrument { index, problem });
            }
        }
        Ok(())
    }
}
