//! `lockstep-engine` is Lockstep's deterministic matching engine: the state
//! machine every replica owns. It holds the order books of many instruments,
//! matches with strict price-time priority, and keeps every session's order
//! state. It is a pure function of its state and the command it is given: no
//! I/O, no clock, no randomness, no floating point and no heap allocation after
//! construction. Capacities come from [`EngineConfig`]; a full table is a clean
//! reject, never growth.
//!
//! Two hidden modules are test support, not engine: `reference_model`, the
//! naive order book the engine is checked against, and `fuzz_checks`, the
//! property the fuzz target in `engine/fuzz/` checks.

#![forbid(unsafe_code)]

pub mod command;
pub mod config;
pub mod engine;
pub mod event;
pub mod fuzz_checks;
pub mod invariants;
mod open_table;
mod order_pool;
pub mod reference_model;
mod side_book;
pub mod snapshot;
pub mod stable_hash;
mod state_hash;
pub mod types;

pub use command::{CancelOrder, Command, NewOrder, ReplaceOrder};
pub use config::{ConfigError, EngineConfig, InstrumentSpec, TABLE_CAPACITY_MAX};
pub use engine::Engine;
pub use event::{CancelReason, CommandKind, Event, OrderRef, RejectReason};
pub use snapshot::{Snapshot, SnapshotError};
pub use types::{
    AccountId, InstrumentId, MatchId, OrderId, OrderType, Price, Qty, SessionId, Side, StpMode,
    TimeInForce, Token,
};
