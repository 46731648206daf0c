//! The events the engine emits. Every event names the session and token it
//! belongs to, so the egress can route it to the right client without asking
//! the engine anything. For one command the events come in a fixed order:
//! a new order gives `Accepted`, then one `Fill` per execution in price-time
//! order (with `Canceled` events of self-trade prevention where they happen),
//! then at most one `Canceled` for an unfilled remainder that may not rest;
//! a refused command gives exactly one `Rejected`. A cancel-all of a session
//! gives one `Canceled` per live order of the session, in pool slot order,
//! and no event at all when the session has none.

use crate::stable_hash::fingerprint_words;
use crate::types::{
    AccountId, InstrumentId, MatchId, OrderId, OrderType, Price, Qty, SessionId, Side, StpMode,
    TimeInForce, Token,
};
use rkyv::{Archive, Deserialize, Serialize};

/// Identifies one order to its owner and to the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRef {
    pub session: SessionId,
    pub token: Token,
    pub order_id: OrderId,
}

/// Which command a `Rejected` answers. The numeric codes are stable: they are
/// journaled (in `Reject` commands) and hashed.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CommandKind {
    New = 0,
    Cancel = 1,
    Replace = 2,
    Halt = 3,
    Resume = 4,
    SetSelfTradePrevention = 5,
    CancelAllForSession = 6,
}

impl CommandKind {
    /// Every kind, in code order.
    pub const ALL: [CommandKind; 7] = [
        CommandKind::New,
        CommandKind::Cancel,
        CommandKind::Replace,
        CommandKind::Halt,
        CommandKind::Resume,
        CommandKind::SetSelfTradePrevention,
        CommandKind::CancelAllForSession,
    ];

    /// The kind with this code, if any.
    pub const fn from_code(code: u8) -> Option<CommandKind> {
        if (code as usize) < Self::ALL.len() {
            Some(Self::ALL[code as usize])
        } else {
            None
        }
    }
}

const _: () = {
    let mut index = 0;
    while index < CommandKind::ALL.len() {
        assert!(
            CommandKind::ALL[index] as usize == index,
            "CommandKind::ALL must list the kinds in code order from 0"
        );
        index += 1;
    }
};

/// Why a command was refused. The numeric codes are stable: they are
/// journaled, hashed and sent to clients. Codes 1 to 18 are the engine's
/// own; from 19 on they are decided by a gateway before the engine sees the
/// command, and reach the engine only inside a `Command::Reject`.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum RejectReason {
    UnknownSession = 1,
    UnknownAccount = 2,
    UnknownInstrument = 3,
    InstrumentHalted = 4,
    QtyZero = 5,
    QtyAboveMax = 6,
    PriceZero = 7,
    PriceOffTick = 8,
    PriceOutsideBand = 9,
    MarketOrderWithPrice = 10,
    PostOnlyNotGtcLimit = 11,
    PostOnlyWouldMatch = 12,
    FokNotFillable = 13,
    DuplicateToken = 14,
    UnknownOrder = 15,
    OrderTableFull = 16,
    LevelTableFull = 17,
    /// A cancel whose `qty_after` is not below the order's open quantity.
    CancelWouldNotReduce = 18,
    /// Gateway: a time in force the engine does not offer.
    InvalidTimeInForce = 19,
    /// Gateway: a display instruction the engine does not offer.
    InvalidDisplay = 20,
    /// Gateway: a minimum quantity the engine cannot honour.
    InvalidMinimumQty = 21,
    /// Gateway: a cross type the engine does not offer.
    InvalidCrossType = 22,
    /// Gateway: a firm the session may not use.
    InvalidFirm = 23,
    /// Gateway: a capacity value out of range.
    InvalidCapacity = 24,
    /// Gateway: a customer type value out of range.
    InvalidCustomerType = 25,
    /// Gateway: the session sent faster than its limit allows.
    MessageRateExceeded = 26,
    /// Gateway: the session holds as many open orders as it may.
    SessionOpenOrdersLimit = 27,
    /// Gateway: its table of the session's tokens is full.
    TokenTableFull = 28,
    /// Gateway: it is shedding load.
    SystemBusy = 29,
    /// Gateway: an enumerated field with a value outside its protocol's
    /// list, for fields that have no reject code of their own.
    InvalidField = 30,
}

impl RejectReason {
    /// Every reason, in code order.
    pub const ALL: [RejectReason; 30] = [
        RejectReason::UnknownSession,
        RejectReason::UnknownAccount,
        RejectReason::UnknownInstrument,
        RejectReason::InstrumentHalted,
        RejectReason::QtyZero,
        RejectReason::QtyAboveMax,
        RejectReason::PriceZero,
        RejectReason::PriceOffTick,
        RejectReason::PriceOutsideBand,
        RejectReason::MarketOrderWithPrice,
        RejectReason::PostOnlyNotGtcLimit,
        RejectReason::PostOnlyWouldMatch,
        RejectReason::FokNotFillable,
        RejectReason::DuplicateToken,
        RejectReason::UnknownOrder,
        RejectReason::OrderTableFull,
        RejectReason::LevelTableFull,
        RejectReason::CancelWouldNotReduce,
        RejectReason::InvalidTimeInForce,
        RejectReason::InvalidDisplay,
        RejectReason::InvalidMinimumQty,
        RejectReason::InvalidCrossType,
        RejectReason::InvalidFirm,
        RejectReason::InvalidCapacity,
        RejectReason::InvalidCustomerType,
        RejectReason::MessageRateExceeded,
        RejectReason::SessionOpenOrdersLimit,
        RejectReason::TokenTableFull,
        RejectReason::SystemBusy,
        RejectReason::InvalidField,
    ];

    /// The reason with this code, if any.
    pub const fn from_code(code: u8) -> Option<RejectReason> {
        if code >= 1 && (code as usize) <= Self::ALL.len() {
            Some(Self::ALL[code as usize - 1])
        } else {
            None
        }
    }

    /// True for the reasons only a gateway decides; the engine itself never
    /// produces them, it only passes them on from a `Command::Reject`.
    pub const fn is_gateway_reason(self) -> bool {
        self as u8 >= RejectReason::InvalidTimeInForce as u8
    }

    /// A stable snake_case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            RejectReason::UnknownSession => "unknown_session",
            RejectReason::UnknownAccount => "unknown_account",
            RejectReason::UnknownInstrument => "unknown_instrument",
            RejectReason::InstrumentHalted => "instrument_halted",
            RejectReason::QtyZero => "qty_zero",
            RejectReason::QtyAboveMax => "qty_above_max",
            RejectReason::PriceZero => "price_zero",
            RejectReason::PriceOffTick => "price_off_tick",
            RejectReason::PriceOutsideBand => "price_outside_band",
            RejectReason::MarketOrderWithPrice => "market_order_with_price",
            RejectReason::PostOnlyNotGtcLimit => "post_only_not_gtc_limit",
            RejectReason::PostOnlyWouldMatch => "post_only_would_match",
            RejectReason::FokNotFillable => "fok_not_fillable",
            RejectReason::DuplicateToken => "duplicate_token",
            RejectReason::UnknownOrder => "unknown_order",
            RejectReason::OrderTableFull => "order_table_full",
            RejectReason::LevelTableFull => "level_table_full",
            RejectReason::CancelWouldNotReduce => "cancel_would_not_reduce",
            RejectReason::InvalidTimeInForce => "invalid_time_in_force",
            RejectReason::InvalidDisplay => "invalid_display",
            RejectReason::InvalidMinimumQty => "invalid_minimum_qty",
            RejectReason::InvalidCrossType => "invalid_cross_type",
            RejectReason::InvalidFirm => "invalid_firm",
            RejectReason::InvalidCapacity => "invalid_capacity",
            RejectReason::InvalidCustomerType => "invalid_customer_type",
            RejectReason::MessageRateExceeded => "message_rate_exceeded",
            RejectReason::SessionOpenOrdersLimit => "session_open_orders_limit",
            RejectReason::TokenTableFull => "token_table_full",
            RejectReason::SystemBusy => "system_busy",
            RejectReason::InvalidField => "invalid_field",
        }
    }
}

const _: () = {
    let mut index = 0;
    while index < RejectReason::ALL.len() {
        assert!(
            RejectReason::ALL[index] as usize == index + 1,
            "RejectReason::ALL must list the reasons in code order from 1"
        );
        index += 1;
    }
};

/// Why an order (or part of it) left the book without trading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CancelReason {
    /// The owning session asked.
    Requested = 1,
    /// The remainder of an IOC, FOK or market order, which never rests.
    ImmediateRemainder = 2,
    /// Self-trade prevention.
    SelfTrade = 3,
    /// The owning session went away and its orders were canceled for it
    /// (`Command::CancelAllForSession`).
    SessionDisconnected = 4,
}

/// One output of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new order passed validation and was given its order id.
    Accepted {
        order: OrderRef,
        account: AccountId,
        instrument: InstrumentId,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        post_only: bool,
        price: Price,
        qty: Qty,
        /// The new order's `client_tag`, passed through untouched.
        client_tag: u16,
    },
    /// A command was refused; the book is unchanged.
    Rejected {
        session: SessionId,
        token: Token,
        command: CommandKind,
        reason: RejectReason,
    },
    /// One execution. The price is the resting (maker) order's price.
    Fill {
        match_id: MatchId,
        instrument: InstrumentId,
        price: Price,
        qty: Qty,
        taker: OrderRef,
        taker_side: Side,
        maker: OrderRef,
        /// The maker's remaining quantity after this fill; 0 means it is gone.
        maker_qty_open: Qty,
    },
    /// Quantity left the book without trading. After a partial cancel the
    /// order still rests with `qty` less open.
    Canceled {
        order: OrderRef,
        qty: Qty,
        reason: CancelReason,
    },
    /// A replace took effect. `order` is the order after the replace (new
    /// token, new order id); if `priority_kept` is false it re-entered and
    /// `Fill` events may follow with it as the taker.
    Replaced {
        previous: OrderRef,
        order: OrderRef,
        instrument: InstrumentId,
        side: Side,
        price: Price,
        qty_open_before: Qty,
        qty: Qty,
        priority_kept: bool,
    },
    /// An instrument was halted or resumed.
    InstrumentStatus {
        instrument: InstrumentId,
        halted: bool,
    },
    /// An account's self-trade prevention mode was set.
    SelfTradePreventionSet { account: AccountId, mode: StpMode },
}

impl OrderRef {
    /// The order reference as two words: the session and token packed
    /// together (16 + 112 bits), and the order id.
    #[inline(always)]
    fn words(&self) -> (u64, u64, u64) {
        let key = (self.session.0 as u128) << 112 | self.token.value();
        (key as u64, (key >> 64) as u64, self.order_id.0)
    }
}

impl Event {
    /// A 64-bit fingerprint of the event: its fields packed into at most
    /// nine words, tag first, the same on every machine. The engine rolls
    /// these into its event hash. It is always inlined: the engine emits
    /// each event where its variant is known, so the match folds away and
    /// the fields are packed straight from registers.
    #[inline(always)]
    pub fn fingerprint(&self) -> u64 {
        match *self {
            Event::Accepted {
                order,
                account,
                instrument,
                side,
                order_type,
                time_in_force,
                post_only,
                price,
                qty,
                client_tag,
            } => {
                let (key_low, key_high, order_id) = order.words();
                // The client tag takes bits 8..24 of the first word, which
                // were zero before it existed, so an order with tag 0 has the
                // fingerprint it always had.
                fingerprint_words([
                    1 | (client_tag as u64) << 8 | (account.0 as u64) << 32,
                    key_low,
                    key_high,
                    order_id,
                    (instrument.0 as u64) << 32
                        | (side as u64) << 24
                        | (order_type as u64) << 16
                        | (time_in_force as u64) << 8
                        | post_only as u64,
                    price,
                    qty as u64,
                ])
            }
            Event::Rejected {
                session,
                token,
                command,
                reason,
            } => {
                let (key_low, key_high, _) = OrderRef {
                    session,
                    token,
                    order_id: crate::types::OrderId(0),
                }
                .words();
                fingerprint_words([
                    2 | (command as u64) << 8 | (reason as u64) << 16,
                    key_low,
                    key_high,
                ])
            }
            Event::Fill {
                match_id,
                instrument,
                price,
                qty,
                taker,
                taker_side,
                maker,
                maker_qty_open,
            } => {
                let (taker_low, taker_high, taker_id) = taker.words();
                let (maker_low, maker_high, maker_id) = maker.words();
                fingerprint_words([
                    3 | (taker_side as u64) << 8 | (instrument.0 as u64) << 32,
                    match_id.0,
                    price,
                    (qty as u64) << 32 | maker_qty_open as u64,
                    taker_low,
                    taker_high,
                    taker_id,
                    maker_low,
                    maker_high,
                    maker_id,
                ])
            }
            Event::Canceled { order, qty, reason } => {
                let (key_low, key_high, order_id) = order.words();
                fingerprint_words([
                    4 | (reason as u64) << 8 | (qty as u64) << 32,
                    key_low,
                    key_high,
                    order_id,
                ])
            }
            Event::Replaced {
                previous,
                order,
                instrument,
                side,
                price,
                qty_open_before,
                qty,
                priority_kept,
            } => {
                let (previous_low, previous_high, previous_id) = previous.words();
                let (key_low, key_high, order_id) = order.words();
                fingerprint_words([
                    5 | (side as u64) << 8
                        | (priority_kept as u64) << 16
                        | (instrument.0 as u64) << 32,
                    previous_low,
                    previous_high,
                    previous_id,
                    key_low,
                    key_high,
                    order_id,
                    price,
                    (qty_open_before as u64) << 32 | qty as u64,
                ])
            }
            Event::InstrumentStatus { instrument, halted } => {
                fingerprint_words([6 | (halted as u64) << 8 | (instrument.0 as u64) << 32])
            }
            Event::SelfTradePreventionSet { account, mode } => {
                fingerprint_words([7 | (mode as u64) << 8 | (account.0 as u64) << 32])
            }
        }
    }
}
