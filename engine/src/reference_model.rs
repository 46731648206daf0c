//! The reference model the engine is checked against: `RefBook`, a
//! deliberately naive order book written from the contract in DESIGN.md
//! ("The engine contract") and the rules in the engine's task brief. Resting
//! orders live in one `Vec` with an arrival counter, "best" is a linear scan,
//! and a FOK is decided by dry-running the match on a clone. [`run`] applies
//! the same commands to a real [`Engine`] and to the model and requires,
//! after every command:
//!
//! - exactly the same `Vec<Event>` from both;
//! - `engine.check_invariants()` passes;
//! - no book is crossed;
//! - every resting order, best price, live count and halt flag agrees with
//!   the model;
//! - for every order (followed across replaces), entered = filled +
//!   canceled + open, all taken from the events alone ([`Ledger`]).
//!
//! Where the contract is silent the model follows choices read from
//! `engine.rs`; each is marked "ENGINE CHOICE" below.
//!
//! Commands are written as abstract operations ([`Op`]) that [`resolve`]
//! aims at the model's current state (a live order to cancel, a price next
//! to the opposite best), so that most of them do something interesting.
//! The proptest `engine/tests/reference_model.rs` draws them at random; the
//! fuzz target `engine_vs_reference` decodes them from bytes
//! ([`crate::fuzz_checks`]).
//!
//! This is test support, not part of the engine: nothing in the engine uses
//! it, and it allocates freely.

#![doc(hidden)]

use crate::engine::ADMIN_SESSION;
use crate::{
    AccountId, CancelOrder, CancelReason, Command, CommandKind, Engine, EngineConfig, Event,
    InstrumentId, InstrumentSpec, MatchId, NewOrder, OrderId, OrderRef, OrderType, Price, Qty,
    RejectReason, ReplaceOrder, SessionId, Side, StpMode, TimeInForce, Token,
};
use std::collections::{BTreeMap, BTreeSet};

/// Fails with a message unless the condition holds (like `assert!`, but
/// returning `Err` so that a proptest can shrink and a fuzz check can say
/// which command it was at).
macro_rules! ensure {
    ($condition:expr) => {
        if !$condition {
            return Err(format!("assertion failed: {}", stringify!($condition)));
        }
    };
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!(
                "assertion failed: {}: {}",
                stringify!($condition),
                format!($($message)+)
            ));
        }
    };
}

/// Fails with both values unless they are equal.
macro_rules! ensure_eq {
    ($left:expr, $right:expr) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!(
                "assertion failed: `{} == {}`\n  left: {:?}\n right: {:?}",
                stringify!($left),
                stringify!($right),
                left,
                right
            ));
        }
    }};
    ($left:expr, $right:expr, $($message:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!(
                "assertion failed: `{} == {}`: {}\n  left: {:?}\n right: {:?}",
                stringify!($left),
                stringify!($right),
                format!($($message)+),
                left,
                right
            ));
        }
    }};
}

// ---------------------------------------------------------------------------
// The reference book
// ---------------------------------------------------------------------------

/// A resting order of the model.
#[derive(Clone, Debug)]
struct RefOrder {
    session: SessionId,
    token: Token,
    order_id: u64,
    account: u32,
    instrument: u32,
    side: Side,
    price: Price,
    qty_open: Qty,
    post_only: bool,
    /// When the order took its current place in the queue.
    arrival: u64,
    /// The engine's order pool slot; see `RefBook::free_slots`.
    slot: u32,
}

impl RefOrder {
    fn order_ref(&self) -> OrderRef {
        OrderRef {
            session: self.session,
            token: self.token,
            order_id: OrderId(self.order_id),
        }
    }
}

/// The reference book: every instrument's resting orders, the halt flags
/// and the self-trade prevention modes.
#[derive(Clone, Debug)]
pub struct RefBook {
    config: EngineConfig,
    halted: Vec<bool>,
    stp: Vec<StpMode>,
    /// Every resting order, in no particular order.
    orders: Vec<RefOrder>,
    // ENGINE CHOICE: order ids and match ids both count from 1, a reject
    // takes neither, and every accepted order and every replace takes one
    // order id.
    next_order_id: u64,
    next_match_id: u64,
    next_arrival: u64,
    /// ENGINE CHOICE: cancel-all of a session emits its orders in the order
    /// of the engine's pool slots. So the model keeps the pool's free list:
    /// a stack (the last slot freed is the next taken), slot 0 on top at the
    /// start; a resting order takes a slot after its matching is done, a
    /// replace keeps its order's slot, and every order leaving the book
    /// frees its slot at once.
    free_slots: Vec<u32>,
}

/// True if an incoming order on `side` with `limit` (`None`: market) may
/// trade with a resting order at `resting`.
fn crosses(side: Side, limit: Option<Price>, resting: Price) -> bool {
    match (limit, side) {
        (None, _) => true,
        (Some(limit), Side::Buy) => limit >= resting,
        (Some(limit), Side::Sell) => limit <= resting,
    }
}

/// True if resting order `a` is ahead of resting order `b` on the same side:
/// a better price, or the same price and an earlier arrival.
fn ahead(a: &RefOrder, b: &RefOrder) -> bool {
    if a.price != b.price {
        match a.side {
            Side::Buy => a.price > b.price,
            Side::Sell => a.price < b.price,
        }
    } else {
        a.arrival < b.arrival
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    }
}

impl RefBook {
    pub fn new(config: EngineConfig) -> RefBook {
        RefBook {
            halted: vec![false; config.instruments.len()],
            stp: vec![StpMode::Off; config.accounts_max as usize],
            orders: Vec::new(),
            next_order_id: 1,
            next_match_id: 1,
            next_arrival: 0,
            free_slots: (0..config.orders_max).rev().collect(),
            config,
        }
    }

    /// Takes an order out of the book and frees its slot.
    fn remove(&mut self, index: usize) -> RefOrder {
        let order = self.orders.remove(index);
        self.free_slots.push(order.slot);
        order
    }

    fn find(&self, session: SessionId, token: Token) -> Option<usize> {
        self.orders
            .iter()
            .position(|o| o.session == session && o.token == token)
    }

    /// The number of distinct (instrument, side, price) among resting orders.
    pub fn level_count(&self) -> usize {
        self.orders
            .iter()
            .map(|o| (o.instrument, o.side, o.price))
            .collect::<BTreeSet<_>>()
            .len()
    }

    fn has_level(&self, instrument: u32, side: Side, price: Price) -> bool {
        self.orders
            .iter()
            .any(|o| o.instrument == instrument && o.side == side && o.price == price)
    }

    /// The best (price, total qty) of one side, by scanning.
    pub fn best(&self, instrument: u32, side: Side) -> Option<(Price, u64)> {
        let mut best: Option<Price> = None;
        for o in self
            .orders
            .iter()
            .filter(|o| o.instrument == instrument && o.side == side)
        {
            let better = match (best, side) {
                (None, _) => true,
                (Some(p), Side::Buy) => o.price > p,
                (Some(p), Side::Sell) => o.price < p,
            };
            if better {
                best = Some(o.price);
            }
        }
        best.map(|price| {
            let total = self
                .orders
                .iter()
                .filter(|o| o.instrument == instrument && o.side == side && o.price == price)
                .map(|o| o.qty_open as u64)
                .sum();
            (price, total)
        })
    }

    /// The index of the resting order an incoming order meets first, if it
    /// may trade with it.
    fn next_maker(&self, instrument: u32, side: Side, limit: Option<Price>) -> Option<usize> {
        let mut found: Option<usize> = None;
        for (index, o) in self.orders.iter().enumerate() {
            if o.instrument != instrument || o.side != other(side) {
                continue;
            }
            if !crosses(side, limit, o.price) {
                continue;
            }
            if found.is_none_or(|f| ahead(o, &self.orders[f])) {
                found = Some(index);
            }
        }
        found
    }

    fn limit_price_check(&self, instrument: u32, price: Price) -> Result<(), RejectReason> {
        // ENGINE CHOICE: zero, then tick, then band.
        let spec = &self.config.instruments[instrument as usize];
        if price == 0 {
            Err(RejectReason::PriceZero)
        } else if !price.is_multiple_of(spec.tick_size) {
            Err(RejectReason::PriceOffTick)
        } else if price < spec.band_min || price > spec.band_max {
            Err(RejectReason::PriceOutsideBand)
        } else {
            Ok(())
        }
    }

    fn qty_check(&self, instrument: u32, qty: Qty) -> Result<(), RejectReason> {
        if qty == 0 {
            Err(RejectReason::QtyZero)
        } else if qty > self.config.instruments[instrument as usize].qty_max {
            Err(RejectReason::QtyAboveMax)
        } else {
            Ok(())
        }
    }

    /// Matches an incoming order. Returns the quantity left and whether
    /// self-trade prevention stopped it.
    #[allow(clippy::too_many_arguments)]
    fn run_match(
        &mut self,
        instrument: u32,
        side: Side,
        limit: Option<Price>,
        qty: Qty,
        taker: OrderRef,
        account: u32,
        out: &mut Vec<Event>,
    ) -> (Qty, bool) {
        let mode = self.stp[account as usize];
        let mut remaining = qty;
        while remaining > 0 {
            let Some(index) = self.next_maker(instrument, side, limit) else {
                break;
            };
            let maker = self.orders[index].clone();
            if mode != StpMode::Off && maker.account == account {
                match mode {
                    StpMode::CancelIncoming => return (remaining, true),
                    StpMode::CancelResting | StpMode::CancelBoth => {
                        self.remove(index);
                        out.push(Event::Canceled {
                            order: maker.order_ref(),
                            qty: maker.qty_open,
                            reason: CancelReason::SelfTrade,
                        });
                        if mode == StpMode::CancelBoth {
                            return (remaining, true);
                        }
                        continue;
                    }
                    StpMode::Off => unreachable!(),
                }
            }
            let qty = remaining.min(maker.qty_open);
            remaining -= qty;
            let maker_qty_open = maker.qty_open - qty;
            out.push(Event::Fill {
                match_id: MatchId(self.next_match_id),
                instrument: InstrumentId(instrument),
                price: maker.price,
                qty,
                taker,
                taker_side: side,
                maker: maker.order_ref(),
                maker_qty_open,
            });
            self.next_match_id += 1;
            if maker_qty_open == 0 {
                self.remove(index);
            } else {
                self.orders[index].qty_open = maker_qty_open;
            }
        }
        (remaining, false)
    }

    fn validate_new(&self, o: &NewOrder) -> Result<(), RejectReason> {
        // ENGINE CHOICE: the order of these checks (validate_new).
        if o.session.0 >= self.config.sessions_max {
            return Err(RejectReason::UnknownSession);
        }
        if o.account.0 >= self.config.accounts_max {
            return Err(RejectReason::UnknownAccount);
        }
        let instrument = o.instrument.0;
        if instrument as usize >= self.config.instruments.len() {
            return Err(RejectReason::UnknownInstrument);
        }
        if self.halted[instrument as usize] {
            return Err(RejectReason::InstrumentHalted);
        }
        self.qty_check(instrument, o.qty)?;
        match o.order_type {
            OrderType::Market => {
                if o.price != 0 {
                    return Err(RejectReason::MarketOrderWithPrice);
                }
            }
            OrderType::Limit => self.limit_price_check(instrument, o.price)?,
        }
        let gtc_limit = o.order_type == OrderType::Limit && o.time_in_force == TimeInForce::Gtc;
        if o.post_only && !gtc_limit {
            return Err(RejectReason::PostOnlyNotGtcLimit);
        }
        // ENGINE CHOICE: a token only clashes with the session's resting
        // orders, and it clashes for every order type.
        if self.find(o.session, o.token).is_some() {
            return Err(RejectReason::DuplicateToken);
        }
        // ENGINE CHOICE: capacity is checked for every GTC limit order before
        // matching, even one that would fill completely.
        if gtc_limit {
            if self.orders.len() >= self.config.orders_max as usize {
                return Err(RejectReason::OrderTableFull);
            }
            if self.level_count() >= self.config.levels_max as usize
                && !self.has_level(instrument, o.side, o.price)
            {
                return Err(RejectReason::LevelTableFull);
            }
        }
        // ENGINE CHOICE: "would match" means any opposite order crosses the
        // price, even one that self-trade prevention would cancel.
        if o.post_only
            && self.orders.iter().any(|r| {
                r.instrument == instrument
                    && r.side == other(o.side)
                    && crosses(o.side, Some(o.price), r.price)
            })
        {
            return Err(RejectReason::PostOnlyWouldMatch);
        }
        if o.time_in_force == TimeInForce::Fok {
            // Dry-run the real match on a copy: it counts self-trade
            // prevention exactly as matching applies it.
            let limit = (o.order_type == OrderType::Limit).then_some(o.price);
            let mut scratch = self.clone();
            let taker = OrderRef {
                session: o.session,
                token: o.token,
                order_id: OrderId(0),
            };
            let (remaining, stopped) = scratch.run_match(
                instrument,
                o.side,
                limit,
                o.qty,
                taker,
                o.account.0,
                &mut Vec::new(),
            );
            if remaining > 0 || stopped {
                return Err(RejectReason::FokNotFillable);
            }
        }
        Ok(())
    }

    fn apply_new(&mut self, o: &NewOrder, out: &mut Vec<Event>) {
        if let Err(reason) = self.validate_new(o) {
            out.push(Event::Rejected {
                session: o.session,
                token: o.token,
                command: CommandKind::New,
                reason,
            });
            return;
        }
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let taker = OrderRef {
            session: o.session,
            token: o.token,
            order_id: OrderId(order_id),
        };
        out.push(Event::Accepted {
            order: taker,
            account: o.account,
            instrument: o.instrument,
            side: o.side,
            order_type: o.order_type,
            time_in_force: o.time_in_force,
            post_only: o.post_only,
            price: o.price,
            qty: o.qty,
            client_tag: o.client_tag,
        });
        let limit = (o.order_type == OrderType::Limit).then_some(o.price);
        let (remaining, stopped) = self.run_match(
            o.instrument.0,
            o.side,
            limit,
            o.qty,
            taker,
            o.account.0,
            out,
        );
        if stopped {
            out.push(Event::Canceled {
                order: taker,
                qty: remaining,
                reason: CancelReason::SelfTrade,
            });
        } else if remaining > 0 {
            if o.order_type == OrderType::Limit && o.time_in_force == TimeInForce::Gtc {
                self.orders.push(RefOrder {
                    session: o.session,
                    token: o.token,
                    order_id,
                    account: o.account.0,
                    instrument: o.instrument.0,
                    side: o.side,
                    price: o.price,
                    qty_open: remaining,
                    post_only: o.post_only,
                    arrival: self.next_arrival,
                    slot: self.free_slots.pop().expect("capacity checked"),
                });
                self.next_arrival += 1;
            } else {
                out.push(Event::Canceled {
                    order: taker,
                    qty: remaining,
                    reason: CancelReason::ImmediateRemainder,
                });
            }
        }
    }

    fn apply_cancel(&mut self, c: &CancelOrder, out: &mut Vec<Event>) {
        // ENGINE CHOICE: an out-of-range session is UnknownSession, not
        // UnknownOrder.
        let found = if c.session.0 >= self.config.sessions_max {
            Err(RejectReason::UnknownSession)
        } else {
            self.find(c.session, c.token)
                .ok_or(RejectReason::UnknownOrder)
        };
        match found {
            Err(reason) => out.push(Event::Rejected {
                session: c.session,
                token: c.token,
                command: CommandKind::Cancel,
                reason,
            }),
            // ENGINE CHOICE: a cancel that would not reduce is refused
            // after the order is found.
            Ok(index) if c.qty_after >= self.orders[index].qty_open => out.push(Event::Rejected {
                session: c.session,
                token: c.token,
                command: CommandKind::Cancel,
                reason: RejectReason::CancelWouldNotReduce,
            }),
            Ok(index) if c.qty_after > 0 => {
                let order = &mut self.orders[index];
                let qty = order.qty_open - c.qty_after;
                // The order keeps its arrival, so its place in the queue.
                order.qty_open = c.qty_after;
                out.push(Event::Canceled {
                    order: order.order_ref(),
                    qty,
                    reason: CancelReason::Requested,
                });
            }
            Ok(index) => {
                let order = self.remove(index);
                out.push(Event::Canceled {
                    order: order.order_ref(),
                    qty: order.qty_open,
                    reason: CancelReason::Requested,
                });
            }
        }
    }

    fn apply_cancel_all(&mut self, session: SessionId, out: &mut Vec<Event>) {
        if session.0 >= self.config.sessions_max {
            out.push(Event::Rejected {
                session,
                token: Token::from_u64(0),
                command: CommandKind::CancelAllForSession,
                reason: RejectReason::UnknownSession,
            });
            return;
        }
        let mut slots: Vec<u32> = self
            .orders
            .iter()
            .filter(|o| o.session == session)
            .map(|o| o.slot)
            .collect();
        slots.sort_unstable();
        for slot in slots {
            let index = self.orders.iter().position(|o| o.slot == slot).unwrap();
            let order = self.remove(index);
            out.push(Event::Canceled {
                order: order.order_ref(),
                qty: order.qty_open,
                reason: CancelReason::SessionDisconnected,
            });
        }
    }

    fn validate_replace(&self, r: &ReplaceOrder) -> Result<usize, RejectReason> {
        // ENGINE CHOICE: the order of these checks (validate_replace); the
        // order is looked up first, so an unknown order on a halted
        // instrument is UnknownOrder.
        if r.session.0 >= self.config.sessions_max {
            return Err(RejectReason::UnknownSession);
        }
        let index = self
            .find(r.session, r.token)
            .ok_or(RejectReason::UnknownOrder)?;
        let order = &self.orders[index];
        if self.halted[order.instrument as usize] {
            return Err(RejectReason::InstrumentHalted);
        }
        self.qty_check(order.instrument, r.qty)?;
        self.limit_price_check(order.instrument, r.price)?;
        if r.new_token != r.token && self.find(r.session, r.new_token).is_some() {
            return Err(RejectReason::DuplicateToken);
        }
        let keeps_priority = r.price == order.price && r.qty <= order.qty_open;
        if !keeps_priority {
            // ENGINE CHOICE: a post-only order stays post-only across a
            // replace that re-enters it.
            if order.post_only
                && self.orders.iter().any(|o| {
                    o.instrument == order.instrument
                        && o.side == other(order.side)
                        && crosses(order.side, Some(r.price), o.price)
                })
            {
                return Err(RejectReason::PostOnlyWouldMatch);
            }
            // The order leaves its level first; then it needs a level at its
            // new price unless another order already holds one.
            let mut without = self.clone();
            without.orders.remove(index);
            let needed = !without.has_level(order.instrument, order.side, r.price) as usize;
            if without.level_count() + needed > self.config.levels_max as usize {
                return Err(RejectReason::LevelTableFull);
            }
        }
        Ok(index)
    }

    fn apply_replace(&mut self, r: &ReplaceOrder, out: &mut Vec<Event>) {
        let index = match self.validate_replace(r) {
            Ok(index) => index,
            Err(reason) => {
                out.push(Event::Rejected {
                    session: r.session,
                    token: r.token,
                    command: CommandKind::Replace,
                    reason,
                });
                return;
            }
        };
        let before = self.orders[index].clone();
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let after = OrderRef {
            session: r.session,
            token: r.new_token,
            order_id: OrderId(order_id),
        };
        let keeps_priority = r.price == before.price && r.qty <= before.qty_open;
        out.push(Event::Replaced {
            previous: before.order_ref(),
            order: after,
            instrument: InstrumentId(before.instrument),
            side: before.side,
            price: r.price,
            qty_open_before: before.qty_open,
            qty: r.qty,
            priority_kept: keeps_priority,
        });
        if keeps_priority {
            let order = &mut self.orders[index];
            order.token = r.new_token;
            order.order_id = order_id;
            order.qty_open = r.qty;
            return;
        }
        // The order keeps its slot while it re-enters; it frees it only if
        // it does not rest again.
        self.orders.remove(index);
        let (remaining, stopped) = self.run_match(
            before.instrument,
            before.side,
            Some(r.price),
            r.qty,
            after,
            before.account,
            out,
        );
        if stopped || remaining == 0 {
            self.free_slots.push(before.slot);
        }
        if stopped {
            out.push(Event::Canceled {
                order: after,
                qty: remaining,
                reason: CancelReason::SelfTrade,
            });
        } else if remaining > 0 {
            self.orders.push(RefOrder {
                token: r.new_token,
                order_id,
                price: r.price,
                qty_open: remaining,
                arrival: self.next_arrival,
                ..before
            });
            self.next_arrival += 1;
        }
    }

    /// Applies one command and returns the events the engine must emit.
    pub fn apply(&mut self, command: &Command) -> Vec<Event> {
        let mut out = Vec::new();
        // ENGINE CHOICE: commands without a session reject with
        // ADMIN_SESSION and token 0.
        let admin_reject = |command, reason| Event::Rejected {
            session: ADMIN_SESSION,
            token: Token::from_u64(0),
            command,
            reason,
        };
        match command {
            Command::New(o) => self.apply_new(o, &mut out),
            Command::Cancel(c) => self.apply_cancel(c, &mut out),
            Command::Replace(r) => self.apply_replace(r, &mut out),
            Command::CancelAllForSession { session } => self.apply_cancel_all(*session, &mut out),
            // ENGINE CHOICE: a gateway reject for a session that does not
            // exist is answered with UnknownSession, under the command kind
            // the gateway named.
            Command::Reject {
                session,
                token,
                command,
                reason,
            } => out.push(Event::Rejected {
                session: *session,
                token: *token,
                command: *command,
                reason: if session.0 >= self.config.sessions_max {
                    RejectReason::UnknownSession
                } else {
                    *reason
                },
            }),
            Command::Halt { instrument } | Command::Resume { instrument } => {
                let halted = matches!(command, Command::Halt { .. });
                let kind = if halted {
                    CommandKind::Halt
                } else {
                    CommandKind::Resume
                };
                match self.halted.get_mut(instrument.0 as usize) {
                    None => out.push(admin_reject(kind, RejectReason::UnknownInstrument)),
                    Some(flag) => {
                        *flag = halted;
                        out.push(Event::InstrumentStatus {
                            instrument: *instrument,
                            halted,
                        });
                    }
                }
            }
            Command::SetSelfTradePrevention { account, mode } => {
                match self.stp.get_mut(account.0 as usize) {
                    None => out.push(admin_reject(
                        CommandKind::SetSelfTradePrevention,
                        RejectReason::UnknownAccount,
                    )),
                    Some(slot) => {
                        *slot = *mode;
                        out.push(Event::SelfTradePreventionSet {
                            account: *account,
                            mode: *mode,
                        });
                    }
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Quantity conservation, from events alone
// ---------------------------------------------------------------------------

/// One order followed from its `Accepted` across every replace.
struct Lineage {
    session: SessionId,
    token: Token,
    order_id: OrderId,
    entered: u64,
    filled: u64,
    canceled: u64,
}

/// Quantity conservation, from the events alone: see [`Ledger::check`].
#[derive(Default)]
pub struct Ledger {
    lineages: Vec<Lineage>,
    by_order_id: BTreeMap<OrderId, usize>,
    /// Lineages that may still hold open quantity.
    active: Vec<usize>,
}

impl Ledger {
    fn lineage(&mut self, order: &OrderRef) -> Result<&mut Lineage, String> {
        let index = *self
            .by_order_id
            .get(&order.order_id)
            .ok_or_else(|| format!("event names unknown {order:?}"))?;
        Ok(&mut self.lineages[index])
    }

    /// Follows one event; fails on an event that names an unknown order,
    /// reuses an order id or moves no quantity.
    pub fn record(&mut self, event: &Event) -> Result<(), String> {
        match *event {
            Event::Accepted { order, qty, .. } => {
                ensure!(!self.by_order_id.contains_key(&order.order_id));
                self.by_order_id.insert(order.order_id, self.lineages.len());
                self.active.push(self.lineages.len());
                self.lineages.push(Lineage {
                    session: order.session,
                    token: order.token,
                    order_id: order.order_id,
                    entered: qty as u64,
                    filled: 0,
                    canceled: 0,
                });
            }
            Event::Fill {
                taker, maker, qty, ..
            } => {
                ensure!(qty > 0);
                self.lineage(&taker)?.filled += qty as u64;
                self.lineage(&maker)?.filled += qty as u64;
            }
            Event::Canceled { order, qty, .. } => {
                ensure!(qty > 0);
                self.lineage(&order)?.canceled += qty as u64;
            }
            Event::Replaced {
                previous,
                order,
                qty_open_before,
                qty,
                ..
            } => {
                ensure!(!self.by_order_id.contains_key(&order.order_id));
                let index = self.by_order_id[&previous.order_id];
                let lineage = &mut self.lineages[index];
                ensure_eq!(lineage.order_id, previous.order_id);
                if qty >= qty_open_before {
                    lineage.entered += (qty - qty_open_before) as u64;
                } else {
                    lineage.canceled += (qty_open_before - qty) as u64;
                }
                lineage.session = order.session;
                lineage.token = order.token;
                lineage.order_id = order.order_id;
                self.by_order_id.insert(order.order_id, index);
            }
            Event::Rejected { .. }
            | Event::InstrumentStatus { .. }
            | Event::SelfTradePreventionSet { .. } => {}
        }
        Ok(())
    }

    /// entered = filled + canceled + open for every order; an order with
    /// nothing open is finished and stops being checked.
    pub fn check(&mut self, engine: &Engine) -> Result<(), String> {
        let mut still_active = Vec::with_capacity(self.active.len());
        for &index in &self.active {
            let l = &self.lineages[index];
            let open = engine
                .order(l.session, l.token)
                .filter(|view| view.order.order_id == l.order_id)
                .map_or(0, |view| view.qty_open as u64);
            ensure_eq!(
                l.entered,
                l.filled + l.canceled + open,
                "order {:?}: entered {} != filled {} + canceled {} + open {}",
                l.order_id,
                l.entered,
                l.filled,
                l.canceled,
                open
            );
            if open > 0 {
                still_active.push(index);
            }
        }
        self.active = still_active;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Comparing engine and model
// ---------------------------------------------------------------------------

/// The engine's invariants hold, no book is crossed, and every count, best
/// price, halt flag and resting order agrees with the model.
pub fn compare_state(engine: &Engine, model: &RefBook) -> Result<(), String> {
    if let Err(problem) = engine.check_invariants() {
        return Err(format!("invariant broken: {problem}"));
    }
    ensure_eq!(engine.orders_live() as usize, model.orders.len());
    ensure_eq!(engine.levels_live() as usize, model.level_count());
    for instrument in 0..model.config.instruments.len() as u32 {
        let id = InstrumentId(instrument);
        let bid = engine.best(id, Side::Buy);
        let ask = engine.best(id, Side::Sell);
        ensure_eq!(bid, model.best(instrument, Side::Buy));
        ensure_eq!(ask, model.best(instrument, Side::Sell));
        if let (Some((bid, _)), Some((ask, _))) = (bid, ask) {
            ensure!(
                bid < ask,
                "instrument {} crossed: {} >= {}",
                instrument,
                bid,
                ask
            );
        }
        ensure_eq!(
            engine.is_halted(id),
            Some(model.halted[instrument as usize])
        );
    }
    for o in &model.orders {
        let view = engine.order(o.session, o.token);
        ensure!(view.is_some(), "engine lost {:?}", o);
        let view = view.unwrap();
        ensure_eq!(view.order, o.order_ref());
        ensure_eq!(view.account, AccountId(o.account));
        ensure_eq!(view.instrument, InstrumentId(o.instrument));
        ensure_eq!(view.side, o.side);
        ensure_eq!(view.price, o.price);
        ensure_eq!(view.qty_open, o.qty_open);
        ensure_eq!(view.post_only, o.post_only);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running engine and model side by side
// ---------------------------------------------------------------------------

/// Applies `ops` to a new [`Engine`] and a new [`RefBook`] with `config`,
/// one by one: each op is resolved against the model into a command, both
/// apply it, and everything listed in the module documentation is checked.
/// `observe` sees every command with the events it produced, for tallies.
/// The error names the first disagreement and lists the commands so far.
pub fn run(
    config: EngineConfig,
    ops: &[Op],
    mut observe: impl FnMut(&Command, &[Event]),
) -> Result<(), String> {
    let mut engine = Engine::new(config.clone()).map_err(|e| format!("invalid config: {e}"))?;
    let mut model = RefBook::new(config);
    let mut ledger = Ledger::default();
    let mut applied: Vec<Command> = Vec::with_capacity(ops.len());
    let mut events = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let command = resolve(*op, &model);
        applied.push(command);
        events.clear();
        engine.apply(&command, &mut |e| events.push(*e));
        let expected = model.apply(&command);
        let listing = || {
            applied
                .iter()
                .enumerate()
                .map(|(i, c)| format!("  {i}: {c:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        if events != expected {
            return Err(format!(
                "command {step}: engine (left) and model (right) disagree\n  left: {events:?}\n right: {expected:?}\ncommands:\n{}",
                listing()
            ));
        }
        observe(&command, &events);
        events
            .iter()
            .try_for_each(|event| ledger.record(event))
            .and_then(|()| compare_state(&engine, &model))
            .and_then(|()| ledger.check(&engine))
            .map_err(|e| format!("command {step}: {e}\ncommands:\n{}", listing()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Generating commands
// ---------------------------------------------------------------------------
//
// The proptest and the fuzz target draw abstract operations; `resolve` turns each into a concrete
// command just before it is applied, looking at the model only to aim
// (pick a live order to cancel, a price next to the opposite best), so that
// most commands do something interesting. The comparison never depends on
// it: both sides get the same concrete command.

/// A price in abstract form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceSpec {
    /// `ticks` ticks away from the middle (100) on the order's own side:
    /// below it for a buy, above it for a sell; negative goes through the
    /// middle. On tick and mostly in band.
    Ticks(i8),
    /// `ticks` ticks from the opposite best, positive meaning more
    /// aggressive (crossing from 0 on); `Ticks` if that side is empty.
    Near(i8),
    /// The replaced order's own price (for new orders: `Ticks(0)`).
    Same,
    /// Any raw number: off tick, outside the band, zero, or fine.
    Raw(u64),
    /// A far-off price rounded down to the tick: outside a narrow band, but
    /// in a wide one it spreads a side thinly over many ticks.
    Wide(u64),
}

/// Which order a cancel or replace names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The n-th live order (modulo their number, by order id).
    Live(u16),
    /// A given session and token, live or not.
    Given { session: u16, token: u64 },
}

/// A replace's new quantity, or the quantity a cancel keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QtySpec {
    Abs(Qty),
    /// The target's open quantity plus this (0 if it goes below).
    Delta(i8),
}

impl QtySpec {
    pub fn resolve(self, open: Qty) -> Qty {
        match self {
            QtySpec::Abs(q) => q,
            QtySpec::Delta(d) => (open as i64 + d as i64).max(0) as Qty,
        }
    }
}

/// One abstract operation; [`resolve`] makes it a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    New {
        session: u16,
        account: u32,
        token: u64,
        instrument: u32,
        side: Side,
        market: bool,
        price: PriceSpec,
        qty: Qty,
        time_in_force: TimeInForce,
        post_only: bool,
    },
    Cancel {
        target: Target,
        /// The quantity to keep open; `Abs(0)` cancels the whole order.
        qty_after: QtySpec,
    },
    Replace {
        target: Target,
        /// `None`: keep the token.
        new_token: Option<u64>,
        price: PriceSpec,
        qty: QtySpec,
    },
    Halt(u32),
    Resume(u32),
    Stp(u32, StpMode),
    CancelAll(u16),
    /// A gateway's reject: session, token, command kind and reason, the
    /// last two as indexes into their `ALL` lists.
    Reject {
        session: u16,
        token: u64,
        command: usize,
        reason: usize,
    },
}

/// The middle of both instruments' bands, where near prices gather.
pub const MID: i64 = 100;

/// Two instruments: tick 1 and tick 5. Usually their bands are narrow, so
/// that most prices are close and orders cross often; a wide band lets far
/// prices in, which leaves gaps of many ticks between levels.
pub fn instruments(wide: bool) -> Vec<InstrumentSpec> {
    vec![
        InstrumentSpec {
            tick_size: 1,
            band_min: if wide { 1 } else { 96 },
            band_max: if wide { 1_000 } else { 104 },
            qty_max: 8,
        },
        InstrumentSpec {
            tick_size: 5,
            band_min: if wide { 5 } else { 85 },
            band_max: if wide { 1_000 } else { 115 },
            qty_max: 12,
        },
    ]
}

/// The instrument a token is used on: tokens 0..4 on instrument 0, 4..8 on
/// instrument 1, and so on, so that a session's token keeps its instrument.
pub fn token_instrument(token: u64) -> u32 {
    (token / 4 % 2) as u32
}

fn price_of(spec: PriceSpec, model: &RefBook, instrument: u32, side: Side, own: Price) -> Price {
    let tick = model
        .config
        .instruments
        .get(instrument as usize)
        .map_or(1, |s| s.tick_size) as i64;
    let offset = |base: i64, ticks: i8| (base + ticks as i64 * tick).max(0) as Price;
    match spec {
        PriceSpec::Raw(p) => p,
        PriceSpec::Wide(p) => p / tick as Price * tick as Price,
        PriceSpec::Same => own,
        PriceSpec::Ticks(ticks) => match side {
            Side::Buy => offset(MID, -ticks),
            Side::Sell => offset(MID, ticks),
        },
        PriceSpec::Near(ticks) => {
            let opposite = if (instrument as usize) < model.config.instruments.len() {
                model.best(instrument, other(side))
            } else {
                None
            };
            match (opposite, side) {
                (None, Side::Buy) => offset(MID, ticks),
                (None, Side::Sell) => offset(MID, -ticks),
                (Some((best, _)), Side::Buy) => offset(best as i64, ticks),
                (Some((best, _)), Side::Sell) => offset(best as i64, -ticks),
            }
        }
    }
}

/// The (session, token) a target names, with the live order if any.
fn target_of(target: Target, model: &RefBook) -> (SessionId, Token, Option<&RefOrder>) {
    match target {
        Target::Live(n) if !model.orders.is_empty() => {
            let mut live: Vec<&RefOrder> = model.orders.iter().collect();
            live.sort_by_key(|o| o.order_id);
            let o = live[n as usize % live.len()];
            (o.session, o.token, Some(o))
        }
        Target::Live(_) => (SessionId(0), Token::from_u64(0), None),
        Target::Given { session, token } => {
            let (session, token) = (SessionId(session), Token::from_u64(token));
            (
                session,
                token,
                model
                    .orders
                    .iter()
                    .find(|o| o.session == session && o.token == token),
            )
        }
    }
}

/// The concrete command `op` stands for, given the model's state.
pub fn resolve(op: Op, model: &RefBook) -> Command {
    match op {
        Op::New {
            session,
            account,
            token,
            instrument,
            side,
            market,
            price,
            qty,
            time_in_force,
            post_only,
        } => Command::New(NewOrder {
            session: SessionId(session),
            account: AccountId(account),
            token: Token::from_u64(token),
            instrument: InstrumentId(instrument),
            side,
            order_type: if market {
                OrderType::Market
            } else {
                OrderType::Limit
            },
            price: match (market, price) {
                (true, PriceSpec::Raw(p)) => p,
                (true, _) => 0,
                (false, PriceSpec::Same) => {
                    price_of(PriceSpec::Ticks(0), model, instrument, side, 0)
                }
                (false, spec) => price_of(spec, model, instrument, side, 0),
            },
            qty,
            time_in_force,
            post_only,
            client_tag: token as u16 ^ 0xa5a5,
        }),
        Op::Cancel { target, qty_after } => {
            let (session, token, order) = target_of(target, model);
            let open = order.map_or(3, |o| o.qty_open);
            Command::Cancel(CancelOrder {
                session,
                token,
                qty_after: qty_after.resolve(open),
            })
        }
        Op::Replace {
            target,
            new_token,
            price,
            qty,
        } => {
            let (session, token, order) = target_of(target, model);
            let (instrument, side, own_price, open) = match order {
                Some(o) => (o.instrument, o.side, o.price, o.qty_open),
                None => (
                    token_instrument(token.value() as u64),
                    Side::Buy,
                    MID as Price,
                    3,
                ),
            };
            Command::Replace(ReplaceOrder {
                session,
                token,
                new_token: new_token.map_or(token, Token::from_u64),
                price: price_of(price, model, instrument, side, own_price),
                qty: qty.resolve(open),
            })
        }
        Op::CancelAll(session) => Command::CancelAllForSession {
            session: SessionId(session),
        },
        Op::Reject {
            session,
            token,
            command,
            reason,
        } => Command::Reject {
            session: SessionId(session),
            token: Token::from_u64(token),
            command: CommandKind::ALL[command % CommandKind::ALL.len()],
            reason: RejectReason::ALL[reason % RejectReason::ALL.len()],
        },
        Op::Halt(instrument) => Command::Halt {
            instrument: InstrumentId(instrument),
        },
        Op::Resume(instrument) => Command::Resume {
            instrument: InstrumentId(instrument),
        },
        Op::Stp(account, mode) => Command::SetSelfTradePrevention {
            account: AccountId(account),
            mode,
        },
    }
}
