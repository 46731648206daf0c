//! The events the engine emits. Every event names the session and token it
//! belongs to, so the egress can route it to the right client without asking
//! the engine anything. For one command the events come in a fixed order:
//! a new order gives `Accepted`, then one `Fill` per execution in price-time
//! order (with `Canceled` events of self-trade prevention where they happen),
//! then at most one `Canceled` for an unfilled remainder that may not rest;
//! a refused command gives exactly one `Rejected`.

use crate::stable_hash::fingerprint_words;
use crate::types::{
    AccountId, InstrumentId, MatchId, OrderId, OrderType, Price, Qty, SessionId, Side, StpMode,
    TimeInForce, Token,
};

/// Identifies one order to its owner and to the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRef {
    pub session: SessionId,
    pub token: Token,
    pub order_id: OrderId,
}

/// Which command a `Rejected` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CommandKind {
    New = 0,
    Cancel = 1,
    Replace = 2,
    Halt = 3,
    Resume = 4,
    SetSelfTradePrevention = 5,
}

/// Why a command was refused. The numeric codes are stable: they are
/// journaled, hashed and sent to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
}

impl RejectReason {
    /// Every reason, in code order.
    pub const ALL: [RejectReason; 17] = [
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
    ];

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
        }
    }
}

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
    /// Quantity left the book without trading.
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
            } => {
                let (key_low, key_high, order_id) = order.words();
                fingerprint_words([
                    1 | (account.0 as u64) << 32,
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
