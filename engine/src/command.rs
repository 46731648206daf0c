//! The commands the engine applies. A command is a plain value; the
//! sequencer stamps it with a sequence number and a time before any replica
//! sees it, so the engine itself needs neither.

use crate::event::{CommandKind, RejectReason};
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
    /// Sixteen bits that belong to the client's gateway: the engine never
    /// looks at them, only journals them and copies them into `Accepted`,
    /// so a gateway can keep what it must echo back (OUCH's echo fields)
    /// without a table of its own that would have to be rebuilt on restart.
    pub client_tag: u16,
}

/// Cancel all or part of the remaining quantity of a live order of this
/// session (OUCH's Cancel Order, whose shares field is `qty_after`).
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelOrder {
    pub session: SessionId,
    pub token: Token,
    /// The quantity the order is to keep open afterwards. 0 cancels the whole
    /// order; below its open quantity reduces it in place, keeping its time
    /// priority; the open quantity or more is refused
    /// (`CancelWouldNotReduce`).
    pub qty_after: Qty,
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
    /// Cancel every live order of a session: cancel on disconnect. It is
    /// sequenced like any other command, so every replica cancels the same
    /// orders at the same point of the stream.
    CancelAllForSession {
        session: SessionId,
    },
    /// A refusal decided outside the engine (a gateway's field validation or
    /// rate limit), sequenced and journaled so that a session's whole output
    /// stream can be rebuilt from the journal alone. The engine emits exactly
    /// this `Rejected` and changes nothing else.
    Reject {
        session: SessionId,
        token: Token,
        /// The kind of command the client sent.
        command: CommandKind,
        reason: RejectReason,
    },
}
