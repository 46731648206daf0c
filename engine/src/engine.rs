//! The engine: validation, matching and order state for all instruments. It
//! owns the books (see `side_book`), the index from (session, token) to live
//! orders, the self-trade prevention modes of the accounts and the counters
//! that give order and match ids. `apply` is the only way state changes.

use crate::command::{CancelOrder, Command, NewOrder, ReplaceOrder};
use crate::config::{ConfigError, EngineConfig};
use crate::event::{CancelReason, CommandKind, Event, OrderRef, RejectReason};
use crate::open_table::{Homing, OpenTable};
use crate::order_pool::{Level, Order, NIL};
use crate::side_book::Books;
use crate::stable_hash::StableHasher;
use crate::types::{
    AccountId, InstrumentId, MatchId, OrderId, OrderType, Price, Qty, SessionId, Side, StpMode,
    TimeInForce, Token,
};
use rkyv::{Archive, Deserialize, Serialize};

/// The session named in rejects of commands that have no session
/// (halt, resume, self-trade prevention settings).
pub const ADMIN_SESSION: SessionId = SessionId(u16::MAX);

#[inline]
fn order_key(session: SessionId, token: Token) -> u128 {
    (session.0 as u128) << 112 | token.value()
}

#[inline]
fn order_ref(order: &Order) -> OrderRef {
    OrderRef {
        session: SessionId((order.key >> 112) as u16),
        token: Token::from_key(order.key),
        order_id: OrderId(order.order_id),
    }
}

/// A read-only view of one live order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderView {
    pub order: OrderRef,
    pub account: AccountId,
    pub instrument: InstrumentId,
    pub side: Side,
    pub price: Price,
    pub qty_open: Qty,
    pub post_only: bool,
}

/// What validating a replace read: the order's slot, a copy of the order
/// and of its level, and whether the replace keeps the order's priority.
struct ReplaceTarget {
    slot: u32,
    order: Order,
    level: Level,
    keeps_priority: bool,
}

/// How a matching pass ended.
struct MatchOutcome {
    qty_remaining: Qty,
    /// Self-trade prevention canceled the rest of the incoming order.
    stopped_by_self_trade: bool,
}

/// The deterministic matching engine.
#[derive(Archive, Serialize, Deserialize, Clone, Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) books: Books,
    /// (session, token) of every live resting order to its pool slot.
    pub(crate) token_index: OpenTable,
    pub(crate) stp_modes: Vec<StpMode>,
    pub(crate) next_order_id: u64,
    pub(crate) next_match_id: u64,
    pub(crate) event_hash: u64,
    pub(crate) events_emitted: u64,
    pub(crate) commands_applied: u64,
}

impl Engine {
    /// Builds an engine and allocates every table it will ever use.
    pub fn new(config: EngineConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        Ok(Engine {
            books: Books::new(&config.instruments, config.orders_max, config.levels_max),
            token_index: OpenTable::with_capacity(config.orders_max, Homing::Scattered),
            stp_modes: vec![StpMode::Off; config.accounts_max as usize],
            next_order_id: 1,
            next_match_id: 1,
            event_hash: StableHasher::new().finish(),
            events_emitted: 0,
            commands_applied: 0,
            config,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The rolling hash of every event emitted since construction.
    pub fn event_hash(&self) -> u64 {
        self.event_hash
    }

    pub fn events_emitted(&self) -> u64 {
        self.events_emitted
    }

    pub fn commands_applied(&self) -> u64 {
        self.commands_applied
    }

    /// Orders resting now, over all instruments.
    pub fn orders_live(&self) -> u32 {
        self.books.orders.live()
    }

    /// Price levels in use now, over all instruments and sides.
    pub fn levels_live(&self) -> u32 {
        self.books.levels.live()
    }

    /// Bytes of every table the engine allocated at construction.
    pub fn table_bytes(&self) -> usize {
        self.books.order_bytes()
            + self.books.level_bytes()
            + self.books.window_bytes()
            + self.token_index.bytes()
            + self.stp_modes.len()
    }

    /// Bytes the engine reserves for each resting order it can hold: the
    /// order's pool slot and its share of the (session, token) index. Levels
    /// are counted apart, per level, by [`Engine::bytes_per_level`].
    pub fn bytes_per_resting_order(&self) -> usize {
        (self.books.order_bytes() + self.token_index.bytes()) / self.config.orders_max as usize
    }

    /// Bytes the engine reserves for each price level it can hold: the
    /// level's pool slot and its share of the price index.
    pub fn bytes_per_level(&self) -> usize {
        self.books.level_bytes() / self.config.levels_max as usize
    }

    /// The best price and total quantity of one side, if any.
    pub fn best(&self, instrument: InstrumentId, side: Side) -> Option<(Price, u64)> {
        let level = self.books.best(instrument.0, side);
        (level != NIL).then(|| {
            let level = self.books.levels.get(level);
            (level.price, level.qty_total)
        })
    }

    pub fn is_halted(&self, instrument: InstrumentId) -> Option<bool> {
        self.books
            .instruments
            .get(instrument.0 as usize)
            .map(|book| book.halted)
    }

    /// A live order of a session, by its token.
    pub fn order(&self, session: SessionId, token: Token) -> Option<OrderView> {
        let slot = self.find_slot(order_key(session, token))?;
        let order = self.books.orders.get(slot);
        let level = self.books.levels.get(order.level);
        Some(OrderView {
            order: order_ref(order),
            account: AccountId(order.account),
            instrument: InstrumentId(level.instrument),
            side: level.side,
            price: level.price,
            qty_open: order.qty_open,
            post_only: order.post_only,
        })
    }

    /// Applies one command, handing every event to `sink` in order.
    pub fn apply<S: FnMut(&Event)>(&mut self, command: &Command, sink: &mut S) {
        self.commands_applied += 1;
        match command {
            Command::New(new_order) => self.apply_new(new_order, sink),
            Command::Cancel(cancel) => self.apply_cancel(cancel, sink),
            Command::Replace(replace) => self.apply_replace(replace, sink),
            Command::Halt { instrument } => {
                self.apply_halt(*instrument, true, CommandKind::Halt, sink)
            }
            Command::Resume { instrument } => {
                self.apply_halt(*instrument, false, CommandKind::Resume, sink)
            }
            Command::CancelAllForSession { session } => self.apply_cancel_all(*session, sink),
            Command::Reject {
                session,
                token,
                command,
                reason,
            } => {
                // The gateway's reason is passed on unless the session does
                // not exist: then nobody could receive it, and the engine
                // answers for itself, as it does for every other command.
                let reason = if session.0 >= self.config.sessions_max {
                    RejectReason::UnknownSession
                } else {
                    *reason
                };
                self.reject(*session, *token, *command, reason, sink);
            }
            Command::SetSelfTradePrevention { account, mode } => {
                if account.0 >= self.config.accounts_max {
                    self.reject(
                        ADMIN_SESSION,
                        Token::from_u64(0),
                        CommandKind::SetSelfTradePrevention,
                        RejectReason::UnknownAccount,
                        sink,
                    );
                } else {
                    self.stp_modes[account.0 as usize] = *mode;
                    self.emit(
                        sink,
                        Event::SelfTradePreventionSet {
                            account: *account,
                            mode: *mode,
                        },
                    );
                }
            }
        }
    }

    #[inline]
    fn emit<S: FnMut(&Event)>(&mut self, sink: &mut S, event: Event) {
        self.event_hash = crate::stable_hash::roll(self.event_hash, event.fingerprint());
        self.events_emitted += 1;
        sink(&event);
    }

    fn reject<S: FnMut(&Event)>(
        &mut self,
        session: SessionId,
        token: Token,
        command: CommandKind,
        reason: RejectReason,
        sink: &mut S,
    ) {
        self.emit(
            sink,
            Event::Rejected {
                session,
                token,
                command,
                reason,
            },
        );
    }

    fn apply_halt<S: FnMut(&Event)>(
        &mut self,
        instrument: InstrumentId,
        halted: bool,
        kind: CommandKind,
        sink: &mut S,
    ) {
        match self.books.instruments.get_mut(instrument.0 as usize) {
            None => self.reject(
                ADMIN_SESSION,
                Token::from_u64(0),
                kind,
                RejectReason::UnknownInstrument,
                sink,
            ),
            Some(book) => {
                book.halted = halted;
                self.emit(sink, Event::InstrumentStatus { instrument, halted });
            }
        }
    }

    /// Checks a limit price against an instrument's tick and band.
    #[inline]
    fn check_limit_price(&self, instrument: u32, price: Price) -> Result<(), RejectReason> {
        let spec = &self.books.instruments[instrument as usize].spec;
        if price == 0 {
            Err(RejectReason::PriceZero)
        } else if spec.tick_size != 1 && !price.is_multiple_of(spec.tick_size) {
            Err(RejectReason::PriceOffTick)
        } else if price < spec.band_min || price > spec.band_max {
            Err(RejectReason::PriceOutsideBand)
        } else {
            Ok(())
        }
    }

    #[inline]
    fn check_qty(&self, instrument: u32, qty: Qty) -> Result<(), RejectReason> {
        if qty == 0 {
            Err(RejectReason::QtyZero)
        } else if qty > self.books.instruments[instrument as usize].spec.qty_max {
            Err(RejectReason::QtyAboveMax)
        } else {
            Ok(())
        }
    }

    /// Everything that can refuse a new order, in a fixed order so that the
    /// reason reported for an order with several faults is deterministic.
    fn validate_new(&self, order: &NewOrder) -> Result<(), RejectReason> {
        if order.session.0 >= self.config.sessions_max {
            return Err(RejectReason::UnknownSession);
        }
        if order.account.0 >= self.config.accounts_max {
            return Err(RejectReason::UnknownAccount);
        }
        let instrument = order.instrument.0;
        let Some(book) = self.books.instruments.get(instrument as usize) else {
            return Err(RejectReason::UnknownInstrument);
        };
        if book.halted {
            return Err(RejectReason::InstrumentHalted);
        }
        self.check_qty(instrument, order.qty)?;
        match order.order_type {
            OrderType::Market if order.price != 0 => {
                return Err(RejectReason::MarketOrderWithPrice)
            }
            OrderType::Market => {}
            OrderType::Limit => self.check_limit_price(instrument, order.price)?,
        }
        if order.post_only
            && (order.order_type != OrderType::Limit || order.time_in_force != TimeInForce::Gtc)
        {
            return Err(RejectReason::PostOnlyNotGtcLimit);
        }
        if self
            .find_slot(order_key(order.session, order.token))
            .is_some()
        {
            return Err(RejectReason::DuplicateToken);
        }
        let may_rest =
            order.order_type == OrderType::Limit && order.time_in_force == TimeInForce::Gtc;
        if may_rest {
            if self.books.orders.is_full() {
                return Err(RejectReason::OrderTableFull);
            }
            // Matching only ever frees levels, so checking before matching is
            // enough to guarantee the remainder a level.
            if self.books.levels.is_full()
                && self
                    .books
                    .find_level(instrument, order.side, order.price)
                    .is_none()
            {
                return Err(RejectReason::LevelTableFull);
            }
        }
        let limit = (order.order_type == OrderType::Limit).then_some(order.price);
        if order.post_only && self.would_cross(instrument, order.side, order.price) {
            return Err(RejectReason::PostOnlyWouldMatch);
        }
        if order.time_in_force == TimeInForce::Fok {
            let mode = self.stp_modes[order.account.0 as usize];
            if !self.can_fill(
                instrument,
                order.side,
                limit,
                order.qty,
                order.account.0,
                mode,
            ) {
                return Err(RejectReason::FokNotFillable);
            }
        }
        Ok(())
    }

    /// True if an order at `price` on `side` would trade on entry.
    #[inline]
    fn would_cross(&self, instrument: u32, side: Side, price: Price) -> bool {
        let best = self.books.best(instrument, side.opposite());
        best != NIL && side.crosses(price, self.books.levels.get(best).price)
    }

    /// True if an incoming order could fill all of `qty` now, counting self
    /// trade prevention exactly as matching will apply it.
    fn can_fill(
        &self,
        instrument: u32,
        side: Side,
        limit: Option<Price>,
        qty: Qty,
        account: u32,
        mode: StpMode,
    ) -> bool {
        let mut needed = qty as u64;
        let mut level_index = self.books.best(instrument, side.opposite());
        while level_index != NIL {
            let level = self.books.levels.get(level_index);
            if limit.is_some_and(|limit| !side.crosses(limit, level.price)) {
                return false;
            }
            if mode == StpMode::Off {
                if level.qty_total >= needed {
                    return true;
                }
                needed -= level.qty_total;
            } else {
                let mut slot = level.head;
                while slot != NIL {
                    let order = self.books.orders.get(slot);
                    if order.account == account {
                        if mode != StpMode::CancelResting {
                            return false;
                        }
                    } else if order.qty_open as u64 >= needed {
                        return true;
                    } else {
                        needed -= order.qty_open as u64;
                    }
                    slot = order.next;
                }
            }
            level_index = level.worse;
        }
        false
    }

    fn apply_new<S: FnMut(&Event)>(&mut self, order: &NewOrder, sink: &mut S) {
        if let Err(reason) = self.validate_new(order) {
            self.reject(order.session, order.token, CommandKind::New, reason, sink);
            return;
        }
        let instrument = order.instrument.0;
        let order_id = self.take_order_id();
        let taker = OrderRef {
            session: order.session,
            token: order.token,
            order_id,
        };
        self.emit(
            sink,
            Event::Accepted {
                order: taker,
                account: order.account,
                instrument: order.instrument,
                side: order.side,
                order_type: order.order_type,
                time_in_force: order.time_in_force,
                post_only: order.post_only,
                price: order.price,
                qty: order.qty,
                client_tag: order.client_tag,
            },
        );
        let limit = (order.order_type == OrderType::Limit).then_some(order.price);
        let mode = self.stp_modes[order.account.0 as usize];
        let outcome = self.match_incoming(
            instrument,
            order.side,
            limit,
            order.qty,
            taker,
            order.account.0,
            mode,
            sink,
        );
        let remaining = outcome.qty_remaining;
        if outcome.stopped_by_self_trade {
            self.emit(
                sink,
                Event::Canceled {
                    order: taker,
                    qty: remaining,
                    reason: CancelReason::SelfTrade,
                },
            );
        } else if remaining > 0 {
            if order.order_type == OrderType::Limit && order.time_in_force == TimeInForce::Gtc {
                let resting = Order {
                    key: order_key(order.session, order.token),
                    order_id: order_id.0,
                    qty_open: remaining,
                    account: order.account.0,
                    prev: NIL,
                    next: NIL,
                    level: NIL,
                    post_only: order.post_only,
                };
                let slot = self
                    .books
                    .orders
                    .allocate(resting)
                    .expect("capacity checked before matching");
                self.rest(slot, instrument, order.side, order.price, NIL);
                self.index(slot);
            } else {
                self.emit(
                    sink,
                    Event::Canceled {
                        order: taker,
                        qty: remaining,
                        reason: CancelReason::ImmediateRemainder,
                    },
                );
            }
        }
        assert!(
            !self.books.is_crossed(instrument),
            "book crossed after a new order"
        );
    }

    /// Links an allocated order into its level and the token index.
    #[inline]
    fn rest(&mut self, slot: u32, instrument: u32, side: Side, price: Price, hint: u32) {
        let level = self
            .books
            .find_or_insert_level(instrument, side, price, hint)
            .expect("level capacity checked before matching");
        self.books.append_order(level, slot);
    }

    /// Adds a resting order's key to the token index.
    #[inline]
    fn index(&mut self, slot: u32) {
        let key = self.books.orders.get(slot).key;
        let indexed = self.token_index.insert(key, slot);
        assert!(
            indexed,
            "token index holds as many entries as the order pool"
        );
    }

    /// The pool slot of the live order with this (session, token) key.
    #[inline]
    pub(crate) fn find_slot(&self, key: u128) -> Option<u32> {
        let orders = &self.books.orders;
        self.token_index.get(key, |slot| orders.get(slot).key)
    }

    /// Drops a key from the token index; the order must still carry it.
    #[inline]
    fn unindex(&mut self, key: u128) -> Option<u32> {
        let orders = &self.books.orders;
        self.token_index.remove(key, |slot| orders.get(slot).key)
    }

    #[inline]
    fn take_order_id(&mut self) -> OrderId {
        let id = OrderId(self.next_order_id);
        self.next_order_id += 1;
        id
    }

    /// Removes a resting order entirely: from its level, from the token
    /// index and from the pool.
    #[inline]
    fn remove_order(&mut self, slot: u32) {
        let key = self.books.orders.get(slot).key;
        let removed = self.unindex(key);
        debug_assert_eq!(removed, Some(slot));
        self.books.unlink_order(slot);
        self.books.orders.release(slot);
    }

    /// Matches an incoming order against the opposite side. Most orders do
    /// not cross, so that test is made here, inline, before the full match.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn match_incoming<S: FnMut(&Event)>(
        &mut self,
        instrument: u32,
        side: Side,
        limit: Option<Price>,
        qty: Qty,
        taker: OrderRef,
        account: u32,
        mode: StpMode,
        sink: &mut S,
    ) -> MatchOutcome {
        let can_trade = match limit {
            Some(limit) => self.would_cross(instrument, side, limit),
            None => self.books.best(instrument, side.opposite()) != NIL,
        };
        if !can_trade {
            return MatchOutcome {
                qty_remaining: qty,
                stopped_by_self_trade: false,
            };
        }
        self.match_crossing(instrument, side, limit, qty, taker, account, mode, sink)
    }

    /// The full match of an order that crosses the opposite best level.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn match_crossing<S: FnMut(&Event)>(
        &mut self,
        instrument: u32,
        side: Side,
        limit: Option<Price>,
        qty: Qty,
        taker: OrderRef,
        account: u32,
        mode: StpMode,
        sink: &mut S,
    ) -> MatchOutcome {
        let opposite = side.opposite();
        let mut remaining = qty;
        while remaining > 0 {
            let level = self.books.best(instrument, opposite);
            if level == NIL {
                break;
            }
            let price = self.books.levels.get(level).price;
            if limit.is_some_and(|limit| !side.crosses(limit, price)) {
                break;
            }
            // Each pass of this loop removes or fills into one order, so it
            // runs at most once per resting order of the level.
            let mut slot = self.books.levels.get(level).head;
            while slot != NIL && remaining > 0 {
                let maker = *self.books.orders.get(slot);
                let next = maker.next;
                if mode != StpMode::Off && maker.account == account {
                    if mode == StpMode::CancelIncoming {
                        return MatchOutcome {
                            qty_remaining: remaining,
                            stopped_by_self_trade: true,
                        };
                    }
                    // CancelResting and CancelBoth both take the resting order out.
                    self.remove_order(slot);
                    self.emit(
                        sink,
                        Event::Canceled {
                            order: order_ref(&maker),
                            qty: maker.qty_open,
                            reason: CancelReason::SelfTrade,
                        },
                    );
                    if mode == StpMode::CancelBoth {
                        return MatchOutcome {
                            qty_remaining: remaining,
                            stopped_by_self_trade: true,
                        };
                    }
                    slot = next;
                    continue;
                }
                let fill = remaining.min(maker.qty_open);
                remaining -= fill;
                let maker_qty_open = maker.qty_open - fill;
                let match_id = MatchId(self.next_match_id);
                self.next_match_id += 1;
                self.emit(
                    sink,
                    Event::Fill {
                        match_id,
                        instrument: InstrumentId(instrument),
                        price,
                        qty: fill,
                        taker,
                        taker_side: side,
                        maker: order_ref(&maker),
                        maker_qty_open,
                    },
                );
                if maker_qty_open == 0 {
                    self.remove_order(slot);
                } else {
                    self.books.reduce_order(slot, fill);
                }
                slot = next;
            }
        }
        MatchOutcome {
            qty_remaining: remaining,
            stopped_by_self_trade: false,
        }
    }

    fn apply_cancel<S: FnMut(&Event)>(&mut self, cancel: &CancelOrder, sink: &mut S) {
        let slot = match self.lookup(cancel.session, cancel.token) {
            Ok(slot) => slot,
            Err(reason) => {
                return self.reject(
                    cancel.session,
                    cancel.token,
                    CommandKind::Cancel,
                    reason,
                    sink,
                )
            }
        };
        let order = *self.books.orders.get(slot);
        // A resting order always has quantity open, so `qty_after` 0 (cancel
        // everything) always passes this check.
        if cancel.qty_after >= order.qty_open {
            return self.reject(
                cancel.session,
                cancel.token,
                CommandKind::Cancel,
                RejectReason::CancelWouldNotReduce,
                sink,
            );
        }
        let qty = order.qty_open - cancel.qty_after;
        if cancel.qty_after == 0 {
            self.remove_order(slot);
        } else {
            // Less quantity at the same price keeps the order's place, as a
            // replace that only reduces does; only its level's total changes.
            self.books.reduce_order(slot, qty);
        }
        self.emit(
            sink,
            Event::Canceled {
                order: order_ref(&order),
                qty,
                reason: CancelReason::Requested,
            },
        );
    }

    /// Cancels every live order of `session`, in pool slot order.
    ///
    /// Orders carry no per-session list: a link pair would grow `Order` past
    /// its 48 bytes, and bytes per resting order is a target, paid on every
    /// order all day, while a disconnect is rare. So this walks the whole
    /// order pool, bounded by its capacity, and picks the session's orders by
    /// the session bits of their key. A free slot keeps a stale key but
    /// always has `level == NIL` (an order is unlinked before its slot is
    /// released, and `check_invariants` checks it), so that is the liveness
    /// test. Slot order is a function of the engine's state alone (snapshots
    /// keep slots where they are), so every replica emits the same events.
    ///
    /// Cost: O(orders_max), a sequential read of the pool (48 bytes a
    /// slot). With 1,048,576 slots it takes about 5 ms whether the session
    /// holds no orders or 1,000 of 100,000 (`cancel_all_walks_a_million_slots`
    /// in `engine/tests/semantics.rs`, opt-level 2, on the 2-core VM the
    /// project is built on): the read of the pool dominates, and every
    /// command sequenced behind the disconnect waits that long.
    fn apply_cancel_all<S: FnMut(&Event)>(&mut self, session: SessionId, sink: &mut S) {
        if session.0 >= self.config.sessions_max {
            return self.reject(
                session,
                Token::from_u64(0),
                CommandKind::CancelAllForSession,
                RejectReason::UnknownSession,
                sink,
            );
        }
        for slot in 0..self.books.orders.capacity() {
            let order = self.books.orders.get(slot);
            if order.level == NIL || (order.key >> 112) as u16 != session.0 {
                continue;
            }
            let order = *order;
            debug_assert_eq!(self.find_slot(order.key), Some(slot));
            self.remove_order(slot);
            self.emit(
                sink,
                Event::Canceled {
                    order: order_ref(&order),
                    qty: order.qty_open,
                    reason: CancelReason::SessionDisconnected,
                },
            );
        }
    }

    #[inline]
    fn lookup(&self, session: SessionId, token: Token) -> Result<u32, RejectReason> {
        if session.0 >= self.config.sessions_max {
            return Err(RejectReason::UnknownSession);
        }
        self.find_slot(order_key(session, token))
            .ok_or(RejectReason::UnknownOrder)
    }

    /// Everything that can refuse a replace, in a fixed order. On success it
    /// hands back what it read (the order's slot, the order and its level),
    /// so that applying the replace does not look any of it up again.
    #[inline(always)]
    fn validate_replace(&self, replace: &ReplaceOrder) -> Result<ReplaceTarget, RejectReason> {
        let slot = self.lookup(replace.session, replace.token)?;
        let order = *self.books.orders.get(slot);
        let level = *self.books.levels.get(order.level);
        let instrument = level.instrument;
        if self.books.instruments[instrument as usize].halted {
            return Err(RejectReason::InstrumentHalted);
        }
        self.check_qty(instrument, replace.qty)?;
        self.check_limit_price(instrument, replace.price)?;
        if replace.new_token != replace.token
            && self
                .find_slot(order_key(replace.session, replace.new_token))
                .is_some()
        {
            return Err(RejectReason::DuplicateToken);
        }
        let keeps_priority = replace.price == level.price && replace.qty <= order.qty_open;
        if !keeps_priority {
            if order.post_only && self.would_cross(instrument, level.side, replace.price) {
                return Err(RejectReason::PostOnlyWouldMatch);
            }
            // The order's own level is freed when it is the only order there.
            if self.books.levels.is_full()
                && level.order_count > 1
                && self
                    .books
                    .find_level(instrument, level.side, replace.price)
                    .is_none()
            {
                return Err(RejectReason::LevelTableFull);
            }
        }
        Ok(ReplaceTarget {
            slot,
            order,
            level,
            keeps_priority,
        })
    }

    /// The `Replaced` event of a replace. It is built where it is emitted:
    /// built early and kept across other work, it is copied as a block, and
    /// reading back fields that were just stored one by one stalls the
    /// processor's store forwarding on every move.
    #[inline(always)]
    fn replaced_event(
        previous: &Order,
        after: OrderRef,
        level: &Level,
        replace: &ReplaceOrder,
        priority_kept: bool,
    ) -> Event {
        Event::Replaced {
            previous: order_ref(previous),
            order: after,
            instrument: InstrumentId(level.instrument),
            side: level.side,
            price: replace.price,
            qty_open_before: previous.qty_open,
            qty: replace.qty,
            priority_kept,
        }
    }

    fn apply_replace<S: FnMut(&Event)>(&mut self, replace: &ReplaceOrder, sink: &mut S) {
        let target = match self.validate_replace(replace) {
            Ok(target) => target,
            Err(reason) => {
                return self.reject(
                    replace.session,
                    replace.token,
                    CommandKind::Replace,
                    reason,
                    sink,
                )
            }
        };
        let ReplaceTarget {
            slot,
            order: before,
            level,
            keeps_priority,
        } = target;
        let (instrument, side) = (level.instrument, level.side);
        let new_key = order_key(replace.session, replace.new_token);
        let order_id = self.take_order_id();
        let after = OrderRef {
            session: replace.session,
            token: replace.new_token,
            order_id,
        };
        let token_changes = new_key != before.key;
        if keeps_priority {
            if replace.qty < before.qty_open {
                self.books.reduce_order(slot, before.qty_open - replace.qty);
            }
            if token_changes {
                self.unindex(before.key);
                let indexed = self.token_index.insert(new_key, slot);
                assert!(indexed, "a slot was freed just before");
            }
            let order = self.books.orders.get_mut(slot);
            order.key = new_key;
            order.order_id = order_id.0;
            self.emit(
                sink,
                Self::replaced_event(&before, after, &level, replace, true),
            );
            return;
        }
        // The most common move: the order is alone at its level and its new
        // price neither trades nor passes another level. Leaving and
        // re-entering would free the level and take the same slot straight
        // back at the same place in the list, so the level is re-priced where
        // it stands instead. The result is the same state, slot for slot.
        if level.order_count == 1
            && self.books.fits_in_place(&level, replace.price)
            && !self.would_cross(instrument, side, replace.price)
        {
            self.books
                .reprice_level(before.level, replace.price, replace.qty);
            if token_changes {
                self.unindex(before.key);
            }
            let order = self.books.orders.get_mut(slot);
            order.key = new_key;
            order.order_id = order_id.0;
            order.qty_open = replace.qty;
            if token_changes {
                self.index(slot);
            }
            self.emit(
                sink,
                Self::replaced_event(&before, after, &level, replace, false),
            );
            assert!(
                !self.books.is_crossed(instrument),
                "book crossed after a replace"
            );
            return;
        }
        // Losing priority: the order leaves the book, keeps its pool slot,
        // and re-enters as an incoming order at the new price. Its old level
        // (or that level's neighbour, if the order was alone there) is the
        // hint for finding the new level: matching only touches the other
        // side, so the hint is still live when the order rests again.
        let hint = if level.order_count > 1 {
            before.level
        } else if level.better != NIL {
            level.better
        } else {
            level.worse
        };
        // With the token unchanged the index entry can stay: it names the
        // same slot, and nothing looks tokens up while this command runs.
        if token_changes {
            self.unindex(before.key);
        }
        self.books.unlink_order(slot);
        self.emit(
            sink,
            Self::replaced_event(&before, after, &level, replace, false),
        );
        let mode = self.stp_modes[before.account as usize];
        let outcome = self.match_incoming(
            instrument,
            side,
            Some(replace.price),
            replace.qty,
            after,
            before.account,
            mode,
            sink,
        );
        let remaining = outcome.qty_remaining;
        if outcome.stopped_by_self_trade || remaining == 0 {
            if outcome.stopped_by_self_trade {
                self.emit(
                    sink,
                    Event::Canceled {
                        order: after,
                        qty: remaining,
                        reason: CancelReason::SelfTrade,
                    },
                );
            }
            if !token_changes {
                self.unindex(before.key);
            }
            self.books.orders.release(slot);
        } else {
            let order = self.books.orders.get_mut(slot);
            order.key = new_key;
            order.order_id = order_id.0;
            order.qty_open = remaining;
            self.rest(slot, instrument, side, replace.price, hint);
            if token_changes {
                self.index(slot);
            }
        }
        assert!(
            !self.books.is_crossed(instrument),
            "book crossed after a replace"
        );
    }
}

impl Engine {
    /// Checks that every table has the size its configuration implies; a
    /// restored snapshot must pass this before anything indexes into it.
    pub(crate) fn check_table_shapes(&self) -> Result<(), String> {
        let config = &self.config;
        if self.books.instruments.len() != config.instruments.len()
            || self.books.orders.capacity() != config.orders_max
            || self.books.levels.capacity() != config.levels_max
            || self.stp_modes.len() != config.accounts_max as usize
        {
            return Err("table sizes disagree with the configuration".to_string());
        }
        self.books.check_links()?;
        self.token_index
            .check_shape("token index", self.config.orders_max)?;
        let orders = &self.books.orders;
        self.token_index
            .check_displaced("token index", |slot| orders.get(slot).key)
    }
}
