//! The commands the engine applies. A command is a plain value; the
//! sequencer stamps it with a sequence number and a time before any replica
//! sees it, so the engine itself needs neither.

use crate::types::{
    AccountId, InstrumentId, OrderType, Price, Qty, SessionId, Side, StpMode, TimeInForce, Token,
};
use rkyv::{Archive, Deserialize, Serialize};

/// Enter a new order.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewOrder {
    pub session: SessionId,
    pub account: AccountId,
    pub token: Token,
    pub instrument: InstrumentId,
    pub side: Side,
    pub order_type: OrderType,
    /// The limit price; must be 0 for a market order.
    pub price: Price,
    pub qty: Qty,
    pub time_in_force: TimeInForce,
    /// Rejected if it would trade on entry; only with a GTC limit order.
    pub post_only: bool,
}

/// Cancel the whole remaining quantity of a live order of this session.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelOrder {
    pub session: SessionId,
    pub token: Token,
}

/// Change a live order's price and remaining quantity. Same price and the
/// same or a smaller remaining quantity keeps time priority; anything else
/// re-enters the order at the back of its new level, where it may trade.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplaceOrder {
    pub session: SessionId,
    pub token: Token,
    /// The token the order carries afterwards; may equal `token`.
    pub new_token: Token,
    pub price: Price,
    /// The new remaining quantity; must be positive.
    pub qty: Qty,
}

/// Everything the engine can be asked to do.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    New(NewOrder),
    Cancel(CancelOrder),
    Replace(ReplaceOrder),
    /// Stop accepting new orders and replaces for an instrument; cancels go on.
    Halt {
        instrument: InstrumentId,
    },
    /// Accept orders for a halted instrument again.
    Resume {
        instrument: InstrumentId,
    },
    /// Set an account's self-trade prevention mode.
    SetSelfTradePrevention {
        account: AccountId,
        mode: StpMode,
    },
}
