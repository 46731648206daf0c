//! The engine contract, one named test per rule: the rows of the semantics
//! table in DESIGN.md ("The engine contract") and every reject reason in
//! `RejectReason::ALL`. Every test applies commands to a real `Engine`,
//! asserts the complete event sequence of each command, and audits the
//! engine's invariants after every command. Rejects are also checked to leave
//! the book (state hash, live counts, best prices) exactly as it was.

use lockstep_engine::engine::ADMIN_SESSION;
use lockstep_engine::{
    AccountId, CancelOrder, CancelReason, Command, CommandKind, Engine, EngineConfig, Event,
    InstrumentId, InstrumentSpec, NewOrder, OrderId, OrderRef, OrderType, Price, Qty, RejectReason,
    ReplaceOrder, SessionId, Side, StpMode, TimeInForce, Token,
};
use std::cell::RefCell;

use CancelReason::{ImmediateRemainder, Requested, SelfTrade, SessionDisconnected};
use Side::{Buy, Sell};

/// Tick 1, band 1..=1000, qty_max 1000.
const I0: InstrumentId = InstrumentId(0);
/// Tick 5, band 50..=200, qty_max 100.
const I1: InstrumentId = InstrumentId(1);

fn config(orders_max: u32, levels_max: u32) -> EngineConfig {
    EngineConfig {
        instruments: vec![
            InstrumentSpec {
                tick_size: 1,
                band_min: 1,
                band_max: 1_000,
                qty_max: 1_000,
            },
            InstrumentSpec {
                tick_size: 5,
                band_min: 50,
                band_max: 200,
                qty_max: 100,
            },
        ],
        instruments_max: 4,
        orders_max,
        levels_max,
        sessions_max: 4,
        accounts_max: 4,
    }
}

// ---------------------------------------------------------------------------
// Command and event builders
// ---------------------------------------------------------------------------

fn tok(value: u64) -> Token {
    Token::from_u64(value)
}

fn oref(session: u16, token: u64, order_id: u64) -> OrderRef {
    OrderRef {
        session: SessionId(session),
        token: tok(token),
        order_id: OrderId(order_id),
    }
}

/// A GTC limit order on I0 whose account number equals its session number.
fn limit(session: u16, token: u64, side: Side, price: Price, qty: Qty) -> NewOrder {
    NewOrder {
        session: SessionId(session),
        account: AccountId(session as u32),
        token: tok(token),
        instrument: I0,
        side,
        order_type: OrderType::Limit,
        price,
        qty,
        time_in_force: TimeInForce::Gtc,
        post_only: false,
        client_tag: 0,
    }
}

fn buy(session: u16, token: u64, price: Price, qty: Qty) -> NewOrder {
    limit(session, token, Buy, price, qty)
}

fn sell(session: u16, token: u64, price: Price, qty: Qty) -> NewOrder {
    limit(session, token, Sell, price, qty)
}

/// A market order (price 0) with IOC time in force on I0.
fn market(session: u16, token: u64, side: Side, qty: Qty) -> NewOrder {
    NewOrder {
        order_type: OrderType::Market,
        price: 0,
        time_in_force: TimeInForce::Ioc,
        ..limit(session, token, side, 0, qty)
    }
}

trait Tweak {
    fn tif(self, time_in_force: TimeInForce) -> Self;
    fn account(self, account: u32) -> Self;
    fn on(self, instrument: InstrumentId) -> Self;
    fn post_only(self) -> Self;
}

impl Tweak for NewOrder {
    fn tif(self, time_in_force: TimeInForce) -> Self {
        NewOrder {
            time_in_force,
            ..self
        }
    }
    fn account(self, account: u32) -> Self {
        NewOrder {
            account: AccountId(account),
            ..self
        }
    }
    fn on(self, instrument: InstrumentId) -> Self {
        NewOrder { instrument, ..self }
    }
    fn post_only(self) -> Self {
        NewOrder {
            post_only: true,
            ..self
        }
    }
}

fn cancel(session: u16, token: u64) -> Command {
    reduce(session, token, 0)
}

/// A cancel that keeps `qty_after` open (0: a whole cancel).
fn reduce(session: u16, token: u64, qty_after: Qty) -> Command {
    Command::Cancel(CancelOrder {
        session: SessionId(session),
        token: tok(token),
        qty_after,
    })
}

fn cancel_all(session: u16) -> Command {
    Command::CancelAllForSession {
        session: SessionId(session),
    }
}

/// A gateway's reject of a new order.
fn gateway_reject(session: u16, token: u64, reason: RejectReason) -> Command {
    Command::Reject {
        session: SessionId(session),
        token: tok(token),
        command: CommandKind::New,
        reason,
    }
}

fn replace(session: u16, token: u64, new_token: u64, price: Price, qty: Qty) -> Command {
    Command::Replace(ReplaceOrder {
        session: SessionId(session),
        token: tok(token),
        new_token: tok(new_token),
        price,
        qty,
    })
}

fn set_stp(account: u32, mode: StpMode) -> Command {
    Command::SetSelfTradePrevention {
        account: AccountId(account),
        mode,
    }
}

fn accepted(order: &NewOrder, order_id: u64) -> Event {
    Event::Accepted {
        order: OrderRef {
            session: order.session,
            token: order.token,
            order_id: OrderId(order_id),
        },
        account: order.account,
        instrument: order.instrument,
        side: order.side,
        order_type: order.order_type,
        time_in_force: order.time_in_force,
        post_only: order.post_only,
        price: order.price,
        qty: order.qty,
        client_tag: order.client_tag,
    }
}

/// A fill on I0 (see [`on_instrument`] for other instruments).
fn fill(
    match_id: u64,
    price: Price,
    qty: Qty,
    taker: OrderRef,
    taker_side: Side,
    maker: OrderRef,
    maker_qty_open: Qty,
) -> Event {
    Event::Fill {
        match_id: lockstep_engine::MatchId(match_id),
        instrument: I0,
        price,
        qty,
        taker,
        taker_side,
        maker,
        maker_qty_open,
    }
}

/// The same event on another instrument.
fn on_instrument(instrument_id: InstrumentId, mut event: Event) -> Event {
    match &mut event {
        Event::Fill { instrument, .. } | Event::Replaced { instrument, .. } => {
            *instrument = instrument_id
        }
        _ => panic!("event has no instrument to change"),
    }
    event
}

fn canceled(order: OrderRef, qty: Qty, reason: CancelReason) -> Event {
    Event::Canceled { order, qty, reason }
}

/// A replace on I0.
fn replaced(
    previous: OrderRef,
    order: OrderRef,
    side: Side,
    price: Price,
    qty_open_before: Qty,
    qty: Qty,
    priority_kept: bool,
) -> Event {
    Event::Replaced {
        previous,
        order,
        instrument: I0,
        side,
        price,
        qty_open_before,
        qty,
        priority_kept,
    }
}

fn rejected(session: SessionId, token: Token, command: CommandKind, reason: RejectReason) -> Event {
    Event::Rejected {
        session,
        token,
        command,
        reason,
    }
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

thread_local! {
    /// Every reject reason `expect_reject` has seen on this thread, so the
    /// coverage test can prove each scenario produced its reason.
    static REJECTS_SEEN: RefCell<Vec<RejectReason>> = const { RefCell::new(Vec::new()) };
}

/// Everything observable about the book without reading events.
#[derive(Debug, PartialEq, Eq)]
struct BookView {
    state_hash: u64,
    orders_live: u32,
    levels_live: u32,
    best: Vec<Option<(Price, u64)>>,
    halted: Vec<Option<bool>>,
}

struct Harness {
    engine: Engine,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_capacity(64, 64)
    }

    fn with_capacity(orders_max: u32, levels_max: u32) -> Harness {
        let engine = Engine::new(config(orders_max, levels_max)).expect("valid config");
        engine.check_invariants().unwrap();
        Harness { engine }
    }

    /// Applies one command, audits the engine, returns the command's events.
    fn apply(&mut self, command: Command) -> Vec<Event> {
        let mut events = Vec::new();
        self.engine.apply(&command, &mut |e| events.push(*e));
        self.engine.check_invariants().unwrap();
        for instrument in [I0, I1] {
            if let (Some((bid, _)), Some((ask, _))) = (
                self.engine.best(instrument, Buy),
                self.engine.best(instrument, Sell),
            ) {
                assert!(bid < ask, "book {instrument:?} crossed: {bid} >= {ask}");
            }
        }
        events
    }

    fn submit(&mut self, order: NewOrder) -> Vec<Event> {
        self.apply(Command::New(order))
    }

    /// Enters an order that must simply rest, with order id `order_id`.
    fn rest(&mut self, order: NewOrder, order_id: u64) -> OrderRef {
        assert_eq!(self.submit(order), vec![accepted(&order, order_id)]);
        let view = self
            .engine
            .order(order.session, order.token)
            .expect("order rests");
        assert_eq!(view.qty_open, order.qty);
        assert_eq!(view.price, order.price);
        view.order
    }

    fn view(&self) -> BookView {
        BookView {
            state_hash: self.engine.state_hash(),
            orders_live: self.engine.orders_live(),
            levels_live: self.engine.levels_live(),
            best: [I0, I1]
                .iter()
                .flat_map(|&i| [self.engine.best(i, Buy), self.engine.best(i, Sell)])
                .collect(),
            halted: [I0, I1].iter().map(|&i| self.engine.is_halted(i)).collect(),
        }
    }

    /// Applies a command that must be refused with `reason`, and checks that
    /// it changed nothing: not the book, not the id counters (both are in the
    /// state hash), not the live counts.
    fn expect_reject(&mut self, command: Command, reason: RejectReason) {
        let (session, token, kind) = match command {
            Command::New(o) => (o.session, o.token, CommandKind::New),
            Command::Cancel(c) => (c.session, c.token, CommandKind::Cancel),
            Command::Replace(r) => (r.session, r.token, CommandKind::Replace),
            Command::Halt { .. } => (ADMIN_SESSION, tok(0), CommandKind::Halt),
            Command::Resume { .. } => (ADMIN_SESSION, tok(0), CommandKind::Resume),
            Command::SetSelfTradePrevention { .. } => {
                (ADMIN_SESSION, tok(0), CommandKind::SetSelfTradePrevention)
            }
            Command::CancelAllForSession { session } => {
                (session, tok(0), CommandKind::CancelAllForSession)
            }
            Command::Reject {
                session,
                token,
                command,
                ..
            } => (session, token, command),
        };
        let before = self.view();
        let events = self.apply(command);
        assert_eq!(
            events,
            vec![rejected(session, token, kind, reason)],
            "command {command:?}"
        );
        assert_eq!(self.view(), before, "a reject changed the book");
        REJECTS_SEEN.with(|seen| seen.borrow_mut().push(reason));
    }

    fn best(&self, side: Side) -> Option<(Price, u64)> {
        self.engine.best(I0, side)
    }

    fn open_qty(&self, session: u16, token: u64) -> Option<Qty> {
        self.engine
            .order(SessionId(session), tok(token))
            .map(|v| v.qty_open)
    }
}

// ---------------------------------------------------------------------------
// Limit GTC
// ---------------------------------------------------------------------------

#[test]
fn limit_gtc_matches_what_crosses_at_resting_prices_then_rests_remainder() {
    let mut h = Harness::new();
    let a1 = h.rest(sell(1, 1, 101, 5), 1);
    let a2 = h.rest(sell(1, 2, 102, 5), 2);
    h.rest(sell(1, 3, 104, 5), 3);
    let order = buy(2, 1, 102, 12);
    let taker = oref(2, 1, 4);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 4),
            fill(1, 101, 5, taker, Buy, a1, 0),
            fill(2, 102, 5, taker, Buy, a2, 0),
        ]
    );
    assert_eq!(h.best(Buy), Some((102, 2)));
    assert_eq!(h.best(Sell), Some((104, 5)));
    assert_eq!(h.open_qty(2, 1), Some(2));
    assert_eq!(h.engine.order(SessionId(2), tok(1)).unwrap().order, taker);
}

#[test]
fn limit_gtc_rests_remainder_at_back_of_its_level() {
    let mut h = Harness::new();
    let ask = h.rest(sell(1, 1, 101, 2), 1);
    // Crosses for 2, rests 3 at 101 and opens that level.
    let first = buy(2, 1, 101, 5);
    let first_ref = oref(2, 1, 2);
    assert_eq!(
        h.submit(first),
        vec![accepted(&first, 2), fill(1, 101, 2, first_ref, Buy, ask, 0)]
    );
    // Nothing crosses now: joins the back of the 101 level.
    let second = h.rest(buy(3, 1, 101, 4), 3);
    // And one more behind it, from a session already in the queue.
    let third = h.rest(buy(1, 2, 101, 1), 4);
    assert_eq!(h.best(Buy), Some((101, 8)));
    let hit = sell(3, 2, 101, 8);
    let taker = oref(3, 2, 5);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 5),
            fill(2, 101, 3, taker, Sell, first_ref, 0),
            fill(3, 101, 4, taker, Sell, second, 0),
            fill(4, 101, 1, taker, Sell, third, 0),
        ]
    );
    assert_eq!(h.best(Buy), None);
    assert_eq!(h.best(Sell), None);
}

#[test]
fn strict_price_time_priority_better_price_first_then_earliest_arrival() {
    let mut h = Harness::new();
    let b99 = h.rest(buy(1, 1, 99, 1), 1);
    let b100_first = h.rest(buy(2, 1, 100, 1), 2);
    let b100_second = h.rest(buy(3, 1, 100, 1), 3);
    let b101 = h.rest(buy(1, 2, 101, 1), 4);
    let order = sell(2, 2, 99, 4);
    let taker = oref(2, 2, 5);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 5),
            fill(1, 101, 1, taker, Sell, b101, 0),
            fill(2, 100, 1, taker, Sell, b100_first, 0),
            fill(3, 100, 1, taker, Sell, b100_second, 0),
            fill(4, 99, 1, taker, Sell, b99, 0),
        ]
    );
    assert_eq!(h.engine.orders_live(), 0);
    assert_eq!(h.engine.levels_live(), 0);
}

#[test]
fn trade_price_is_the_resting_orders_price_and_partial_maker_keeps_its_place() {
    let mut h = Harness::new();
    let maker = h.rest(buy(1, 1, 105, 10), 1);
    let behind = h.rest(buy(2, 1, 105, 10), 2);
    let order = sell(3, 1, 90, 4);
    let taker = oref(3, 1, 3);
    assert_eq!(
        h.submit(order),
        vec![accepted(&order, 3), fill(1, 105, 4, taker, Sell, maker, 6)]
    );
    let order = sell(3, 2, 100, 7);
    let taker = oref(3, 2, 4);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 4),
            fill(2, 105, 6, taker, Sell, maker, 0),
            fill(3, 105, 1, taker, Sell, behind, 9),
        ]
    );
    assert_eq!(h.best(Buy), Some((105, 9)));
}

#[test]
fn order_and_match_ids_start_at_one_and_rejects_consume_none() {
    let mut h = Harness::new();
    h.expect_reject(Command::New(buy(1, 1, 100, 0)), RejectReason::QtyZero);
    let maker = h.rest(buy(1, 1, 100, 5), 1);
    h.expect_reject(
        Command::New(buy(1, 1, 100, 5)),
        RejectReason::DuplicateToken,
    );
    let order = sell(2, 1, 100, 2);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 2),
            fill(1, 100, 2, oref(2, 1, 2), Sell, maker, 3)
        ]
    );
    let order = sell(2, 2, 100, 1);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 3),
            fill(2, 100, 1, oref(2, 2, 3), Sell, maker, 2)
        ]
    );
}

// ---------------------------------------------------------------------------
// Limit IOC
// ---------------------------------------------------------------------------

#[test]
fn limit_ioc_matches_what_crosses_and_cancels_remainder() {
    let mut h = Harness::new();
    let ask = h.rest(sell(1, 1, 100, 3), 1);
    h.rest(sell(1, 2, 102, 3), 2);
    let order = buy(2, 1, 101, 5).tif(TimeInForce::Ioc);
    let taker = oref(2, 1, 3);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 3),
            fill(1, 100, 3, taker, Buy, ask, 0),
            canceled(taker, 2, ImmediateRemainder),
        ]
    );
    assert_eq!(h.best(Buy), None, "an IOC remainder never rests");
    assert_eq!(h.best(Sell), Some((102, 3)));
    assert_eq!(h.open_qty(2, 1), None);
}

#[test]
fn limit_ioc_with_nothing_crossing_cancels_whole_qty() {
    let mut h = Harness::new();
    h.rest(sell(1, 1, 105, 3), 1);
    let order = buy(2, 1, 104, 5).tif(TimeInForce::Ioc);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 2),
            canceled(oref(2, 1, 2), 5, ImmediateRemainder)
        ]
    );
    assert_eq!(h.engine.orders_live(), 1);
}

#[test]
fn limit_ioc_fully_filled_has_no_remainder_cancel() {
    let mut h = Harness::new();
    let ask = h.rest(sell(1, 1, 100, 5), 1);
    let order = buy(2, 1, 100, 5).tif(TimeInForce::Ioc);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 2),
            fill(1, 100, 5, oref(2, 1, 2), Buy, ask, 0)
        ]
    );
    assert_eq!(h.engine.orders_live(), 0);
}

// ---------------------------------------------------------------------------
// Limit FOK
// ---------------------------------------------------------------------------

#[test]
fn limit_fok_fills_completely_across_levels_within_its_limit() {
    let mut h = Harness::new();
    let a1 = h.rest(sell(1, 1, 100, 2), 1);
    let a2 = h.rest(sell(1, 2, 101, 2), 2);
    h.rest(sell(1, 3, 103, 5), 3);
    let order = buy(2, 1, 101, 4).tif(TimeInForce::Fok);
    let taker = oref(2, 1, 4);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 4),
            fill(1, 100, 2, taker, Buy, a1, 0),
            fill(2, 101, 2, taker, Buy, a2, 0),
        ]
    );
    assert_eq!(h.best(Sell), Some((103, 5)));
    assert_eq!(h.best(Buy), None);
}

#[test]
fn limit_fok_ignores_liquidity_beyond_its_limit_and_changes_nothing() {
    let mut h = Harness::new();
    h.rest(sell(1, 1, 100, 2), 1);
    h.rest(sell(1, 2, 101, 2), 2);
    h.rest(sell(1, 3, 103, 50), 3);
    // 4 lots at or under 101: not enough for 5, even though 103 has plenty.
    h.expect_reject(
        Command::New(buy(2, 1, 101, 5).tif(TimeInForce::Fok)),
        RejectReason::FokNotFillable,
    );
    // The rejected FOK consumed no order id.
    h.rest(buy(2, 1, 99, 1), 4);
}

// ---------------------------------------------------------------------------
// Market
// ---------------------------------------------------------------------------

#[test]
fn market_matches_best_levels_up_to_qty_and_cancels_remainder() {
    let mut h = Harness::new();
    let a1 = h.rest(sell(1, 1, 100, 2), 1);
    let a2 = h.rest(sell(1, 2, 105, 2), 2);
    let a3 = h.rest(sell(2, 1, 105, 1), 3);
    let order = market(3, 1, Buy, 6);
    let taker = oref(3, 1, 4);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 4),
            fill(1, 100, 2, taker, Buy, a1, 0),
            fill(2, 105, 2, taker, Buy, a2, 0),
            fill(3, 105, 1, taker, Buy, a3, 0),
            canceled(taker, 1, ImmediateRemainder),
        ]
    );
    assert_eq!(h.engine.orders_live(), 0);
    assert_eq!(h.engine.levels_live(), 0);
}

#[test]
fn market_fully_filled_leaves_rest_of_maker() {
    let mut h = Harness::new();
    let bid = h.rest(buy(1, 1, 100, 3), 1);
    let order = market(2, 1, Sell, 1);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 2),
            fill(1, 100, 1, oref(2, 1, 2), Sell, bid, 2)
        ]
    );
    assert_eq!(h.best(Buy), Some((100, 2)));
}

#[test]
fn market_never_rests_even_with_gtc_time_in_force() {
    let mut h = Harness::new();
    for (token, tif) in [(1, TimeInForce::Gtc), (2, TimeInForce::Ioc)] {
        let order = market(1, token, Buy, 7).tif(tif);
        let id = token;
        assert_eq!(
            h.submit(order),
            vec![
                accepted(&order, id),
                canceled(oref(1, token, id), 7, ImmediateRemainder)
            ]
        );
        assert_eq!(h.engine.orders_live(), 0);
        assert_eq!(h.best(Buy), None);
    }
}

#[test]
fn market_fok_fills_all_of_qty_at_any_price() {
    let mut h = Harness::new();
    let b1 = h.rest(buy(1, 1, 100, 2), 1);
    let b2 = h.rest(buy(1, 2, 3, 3), 2);
    let order = market(2, 1, Sell, 5).tif(TimeInForce::Fok);
    let taker = oref(2, 1, 3);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 3),
            fill(1, 100, 2, taker, Sell, b1, 0),
            fill(2, 3, 3, taker, Sell, b2, 0),
        ]
    );
    assert_eq!(h.engine.orders_live(), 0);
}

#[test]
fn market_fok_rejected_with_no_fills_when_book_cannot_fill_all() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 2), 1);
    h.rest(buy(1, 2, 3, 3), 2);
    h.expect_reject(
        Command::New(market(2, 1, Sell, 6).tif(TimeInForce::Fok)),
        RejectReason::FokNotFillable,
    );
    h.expect_reject(
        Command::New(market(2, 1, Buy, 1).tif(TimeInForce::Fok)),
        RejectReason::FokNotFillable,
    );
}

// ---------------------------------------------------------------------------
// Post-only
// ---------------------------------------------------------------------------

#[test]
fn post_only_rests_like_gtc_when_it_would_not_match() {
    let mut h = Harness::new();
    h.rest(sell(1, 1, 101, 3), 1);
    let maker = h.rest(buy(2, 1, 100, 4).post_only(), 2);
    assert!(h.engine.order(SessionId(2), tok(1)).unwrap().post_only);
    let behind = h.rest(buy(3, 1, 100, 1), 3);
    let order = sell(3, 2, 100, 5);
    let taker = oref(3, 2, 4);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 4),
            fill(1, 100, 4, taker, Sell, maker, 0),
            fill(2, 100, 1, taker, Sell, behind, 0),
        ]
    );
}

// ---------------------------------------------------------------------------
// Cancel
// ---------------------------------------------------------------------------

#[test]
fn cancel_removes_live_order_of_same_session_with_its_open_qty() {
    let mut h = Harness::new();
    let order = h.rest(buy(1, 1, 100, 10), 1);
    h.rest(buy(2, 1, 100, 1), 2);
    let hit = sell(2, 2, 100, 4);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 3),
            fill(1, 100, 4, oref(2, 2, 3), Sell, order, 6)
        ]
    );
    assert_eq!(h.apply(cancel(1, 1)), vec![canceled(order, 6, Requested)]);
    assert_eq!(h.open_qty(1, 1), None);
    assert_eq!(h.best(Buy), Some((100, 1)));
    // The token is free again for a new order.
    h.rest(buy(1, 1, 99, 2), 4);
}

#[test]
fn cancel_of_another_sessions_order_is_rejected_unknown_order() {
    let mut h = Harness::new();
    h.rest(buy(1, 7, 100, 10), 1);
    h.expect_reject(cancel(2, 7), RejectReason::UnknownOrder);
    assert_eq!(h.open_qty(1, 7), Some(10));
}

#[test]
fn cancel_of_filled_or_already_canceled_order_is_rejected_unknown_order() {
    let mut h = Harness::new();
    let maker = h.rest(buy(1, 1, 100, 2), 1);
    let hit = sell(2, 1, 100, 2);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 2),
            fill(1, 100, 2, oref(2, 1, 2), Sell, maker, 0)
        ]
    );
    h.expect_reject(cancel(1, 1), RejectReason::UnknownOrder);
    let other = h.rest(buy(1, 2, 99, 2), 3);
    assert_eq!(h.apply(cancel(1, 2)), vec![canceled(other, 2, Requested)]);
    h.expect_reject(cancel(1, 2), RejectReason::UnknownOrder);
}

#[test]
fn partial_cancel_reduces_in_place_keeps_priority_and_reports_the_decrement() {
    let mut h = Harness::new();
    let first = h.rest(buy(1, 1, 100, 10), 1);
    let second = h.rest(buy(2, 1, 100, 3), 2);
    // Keep 4 of 10: 6 leave the book, the order id and the place stay.
    assert_eq!(
        h.apply(reduce(1, 1, 4)),
        vec![canceled(first, 6, Requested)]
    );
    assert_eq!(h.open_qty(1, 1), Some(4));
    assert_eq!(h.best(Buy), Some((100, 7)));
    assert_eq!(h.engine.orders_live(), 2);
    // A seller meets the reduced order first: it kept its time priority.
    let hit = sell(3, 1, 100, 5);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 3),
            fill(1, 100, 4, oref(3, 1, 3), Sell, first, 0),
            fill(2, 100, 1, oref(3, 1, 3), Sell, second, 2),
        ]
    );
    // Down to one lot, then the last lot with a whole cancel.
    assert_eq!(
        h.apply(reduce(2, 1, 1)),
        vec![canceled(second, 1, Requested)]
    );
    assert_eq!(h.apply(cancel(2, 1)), vec![canceled(second, 1, Requested)]);
    assert_eq!(h.best(Buy), None);
    assert_eq!(h.engine.levels_live(), 0);
}

#[test]
fn partial_cancel_of_a_partly_filled_order_counts_from_its_open_qty() {
    let mut h = Harness::new();
    let maker = h.rest(sell(1, 1, 100, 10), 1);
    let hit = buy(2, 1, 100, 7);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 2),
            fill(1, 100, 7, oref(2, 1, 2), Buy, maker, 3)
        ]
    );
    // 3 are open: keeping 3 does not reduce, keeping 2 cancels 1.
    h.expect_reject(reduce(1, 1, 3), RejectReason::CancelWouldNotReduce);
    assert_eq!(
        h.apply(reduce(1, 1, 2)),
        vec![canceled(maker, 1, Requested)]
    );
    assert_eq!(h.best(Sell), Some((100, 2)));
}

#[test]
fn partial_cancel_is_accepted_while_the_instrument_is_halted() {
    let mut h = Harness::new();
    let order = h.rest(buy(1, 1, 100, 10), 1);
    h.apply(Command::Halt { instrument: I0 });
    assert_eq!(
        h.apply(reduce(1, 1, 9)),
        vec![canceled(order, 1, Requested)]
    );
    assert_eq!(h.open_qty(1, 1), Some(9));
}

// ---------------------------------------------------------------------------
// Cancel all of a session (cancel on disconnect)
// ---------------------------------------------------------------------------

#[test]
fn cancel_all_cancels_every_live_order_of_the_session_and_nothing_else() {
    let mut h = Harness::new();
    let a = h.rest(buy(1, 1, 100, 10), 1);
    let other = h.rest(buy(2, 1, 100, 5), 2);
    let b = h.rest(sell(1, 2, 105, 3).on(I1), 3);
    let c = h.rest(sell(1, 3, 106, 4), 4);
    // a is partly filled and reduced first: its open quantity is canceled.
    let hit = sell(3, 1, 100, 2);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 5),
            fill(1, 100, 2, oref(3, 1, 5), Sell, a, 8)
        ]
    );
    assert_eq!(h.apply(reduce(1, 1, 6)), vec![canceled(a, 2, Requested)]);
    assert_eq!(
        h.apply(cancel_all(1)),
        vec![
            canceled(a, 6, SessionDisconnected),
            canceled(b, 3, SessionDisconnected),
            canceled(c, 4, SessionDisconnected),
        ]
    );
    assert_eq!(h.engine.orders_live(), 1);
    assert_eq!(h.best(Buy), Some((100, 5)));
    assert_eq!(h.best(Sell), None);
    assert_eq!(h.engine.best(I1, Sell), None);
    assert_eq!(h.open_qty(2, 1), Some(5));
    assert_eq!(h.engine.order(SessionId(2), tok(1)).unwrap().order, other);
    // The session's tokens are free again.
    h.rest(buy(1, 1, 99, 1), 6);
}

#[test]
fn cancel_all_of_a_session_without_orders_emits_no_event_and_changes_nothing() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 10), 1);
    let before = h.view();
    assert_eq!(h.apply(cancel_all(2)), vec![]);
    assert_eq!(h.apply(cancel_all(0)), vec![]);
    assert_eq!(h.view(), before);
    // A second cancel-all of the same session finds nothing left either.
    assert_eq!(h.apply(cancel_all(1)).len(), 1);
    assert_eq!(h.apply(cancel_all(1)), vec![]);
}

#[test]
fn cancel_all_emits_in_pool_slot_order_not_order_id_order() {
    let mut h = Harness::new();
    // Slots are taken from the top of the free list: 0, 1, 2; the slot a
    // cancel frees is the next one taken.
    let a = h.rest(buy(1, 1, 100, 1), 1);
    let b = h.rest(buy(1, 2, 99, 1), 2);
    let c = h.rest(buy(1, 3, 98, 1), 3);
    assert_eq!(h.apply(cancel(1, 1)), vec![canceled(a, 1, Requested)]);
    let d = h.rest(buy(1, 4, 97, 1), 4);
    assert_eq!(
        h.apply(cancel_all(1)),
        vec![
            canceled(d, 1, SessionDisconnected),
            canceled(b, 1, SessionDisconnected),
            canceled(c, 1, SessionDisconnected),
        ]
    );
}

#[test]
fn cancel_all_then_restore_from_a_snapshot_cancels_the_same_orders_in_the_same_order() {
    let mut h = Harness::new();
    for token in 1..=6 {
        h.rest(buy(1 + token as u16 % 2, token, 90 + token, 2), token);
    }
    h.apply(cancel(1, 2));
    h.apply(cancel(2, 3));
    h.rest(buy(2, 9, 80, 1), 7);
    let (mut restored, _) = Engine::restore(&h.engine.snapshot(7)).expect("restores");
    let mut from_restored = Vec::new();
    restored.apply(&cancel_all(2), &mut |e| from_restored.push(*e));
    let events = h.apply(cancel_all(2));
    assert_eq!(events.len(), 3);
    assert_eq!(events, from_restored);
    assert_eq!(h.engine.state_hash(), restored.state_hash());
}

/// The walk over the order pool is O(orders_max); this measures it at a
/// million slots (run with `--nocapture` to see the times). On the 2-core VM
/// the project is built on (test profile, opt-level 2) a cancel-all took
/// about 5 ms, both for a session with no orders and for one with 1,000 of
/// 100,000 resting orders: reading the 48 MiB pool is the cost.
#[test]
fn cancel_all_walks_a_million_slots() {
    let mut config = config(1 << 20, 1 << 12);
    config.instruments[0].band_max = 1_000_000;
    let mut engine = Engine::new(config).expect("valid config");
    for token in 0..100_000u64 {
        let session = if token % 100 == 0 { 1 } else { 2 };
        let order = NewOrder {
            price: 1_000 + token % 1_000,
            ..buy(session, token, 0, 1)
        };
        engine.apply(&Command::New(order), &mut |_| {});
    }
    assert_eq!(engine.orders_live(), 100_000);
    let mut time = |session: u16| {
        let mut canceled = 0u32;
        let started = std::time::Instant::now();
        engine.apply(&cancel_all(session), &mut |_| canceled += 1);
        (started.elapsed(), canceled)
    };
    let (empty, none) = time(3);
    let (some, thousand) = time(1);
    assert_eq!((none, thousand), (0, 1_000));
    assert_eq!(engine.orders_live(), 99_000);
    engine.check_invariants().unwrap();
    eprintln!(
        "cancel-all over 1,048,576 slots: {empty:?} with no orders, {some:?} for 1,000 orders"
    );
}

// ---------------------------------------------------------------------------
// Client tags and gateway rejects
// ---------------------------------------------------------------------------

#[test]
fn client_tag_is_copied_into_accepted_and_changes_only_the_event_fingerprint() {
    let mut tagged = Harness::new();
    let mut plain = Harness::new();
    let order = buy(1, 1, 100, 10);
    let with_tag = NewOrder {
        client_tag: 0xbeef,
        ..order
    };
    assert_eq!(tagged.submit(with_tag), vec![accepted(&with_tag, 1)]);
    assert_eq!(plain.submit(order), vec![accepted(&order, 1)]);
    assert!(matches!(
        accepted(&with_tag, 1),
        Event::Accepted {
            client_tag: 0xbeef,
            ..
        }
    ));
    // The engine keeps nothing of the tag: the books are the same.
    assert_eq!(tagged.engine.state_hash(), plain.engine.state_hash());
    assert_ne!(tagged.engine.event_hash(), plain.engine.event_hash());
    assert_ne!(
        accepted(&with_tag, 1).fingerprint(),
        accepted(&order, 1).fingerprint()
    );
}

#[test]
fn a_gateway_reject_is_passed_on_for_any_reason_and_command_kind() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 10), 1);
    h.rest(sell(2, 1, 105, 10), 2);
    for reason in RejectReason::ALL {
        for command in CommandKind::ALL {
            // The token need not be live, and may be: nothing is looked up.
            h.expect_reject(
                Command::Reject {
                    session: SessionId(1),
                    token: tok(1),
                    command,
                    reason,
                },
                reason,
            );
        }
    }
    // A reject of a session that does not exist is the engine's own.
    h.expect_reject(
        Command::Reject {
            session: SessionId(4),
            token: tok(1),
            command: CommandKind::Replace,
            reason: RejectReason::SystemBusy,
        },
        RejectReason::UnknownSession,
    );
    // Rejects take no order id.
    h.rest(buy(1, 2, 99, 1), 3);
}

#[test]
fn command_kind_and_reject_reason_codes_round_trip() {
    for (code, kind) in CommandKind::ALL.iter().enumerate() {
        assert_eq!(CommandKind::from_code(code as u8), Some(*kind));
    }
    assert_eq!(CommandKind::from_code(CommandKind::ALL.len() as u8), None);
    for reason in RejectReason::ALL {
        assert_eq!(RejectReason::from_code(reason as u8), Some(reason));
    }
    assert_eq!(RejectReason::from_code(0), None);
    assert_eq!(RejectReason::from_code(31), None);
    assert_eq!(RejectReason::CancelWouldNotReduce as u8, 18);
    assert_eq!(RejectReason::SystemBusy as u8, 29);
    assert_eq!(RejectReason::InvalidField as u8, 30);
    assert_eq!(CommandKind::CancelAllForSession as u8, 6);
    assert_eq!(SessionDisconnected as u8, 4);
    assert!(!RejectReason::CancelWouldNotReduce.is_gateway_reason());
    assert!(RejectReason::InvalidTimeInForce.is_gateway_reason());
}

// ---------------------------------------------------------------------------
// Replace
// ---------------------------------------------------------------------------

#[test]
fn replace_same_price_smaller_qty_reduces_in_place_and_keeps_priority() {
    let mut h = Harness::new();
    let first = h.rest(buy(1, 1, 100, 5), 1);
    let second = h.rest(buy(2, 1, 100, 5), 2);
    let after = oref(1, 1, 3);
    assert_eq!(
        h.apply(replace(1, 1, 1, 100, 3)),
        vec![replaced(first, after, Buy, 100, 5, 3, true)]
    );
    assert_eq!(h.best(Buy), Some((100, 8)));
    let hit = sell(3, 1, 100, 4);
    let taker = oref(3, 1, 4);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 4),
            fill(1, 100, 3, taker, Sell, after, 0),
            fill(2, 100, 1, taker, Sell, second, 4),
        ]
    );
}

#[test]
fn replace_same_price_same_qty_keeps_priority_with_fresh_order_id_and_new_token() {
    let mut h = Harness::new();
    let first = h.rest(buy(1, 1, 100, 5), 1);
    h.rest(buy(2, 1, 100, 5), 2);
    let after = oref(1, 9, 3);
    assert_eq!(
        h.apply(replace(1, 1, 9, 100, 5)),
        vec![replaced(first, after, Buy, 100, 5, 5, true)]
    );
    assert_eq!(h.open_qty(1, 1), None, "the old token is gone");
    assert_eq!(h.open_qty(1, 9), Some(5));
    h.expect_reject(cancel(1, 1), RejectReason::UnknownOrder);
    let hit = sell(3, 1, 100, 1);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 4),
            fill(1, 100, 1, oref(3, 1, 4), Sell, after, 4)
        ]
    );
    // Each replace gets a fresh id, even one that changes nothing.
    assert_eq!(
        h.apply(replace(1, 9, 9, 100, 4)),
        vec![replaced(after, oref(1, 9, 5), Buy, 100, 4, 4, true)]
    );
}

#[test]
fn replace_larger_qty_loses_priority_and_goes_to_back_of_level() {
    let mut h = Harness::new();
    let first = h.rest(buy(1, 1, 100, 5), 1);
    let second = h.rest(buy(2, 1, 100, 5), 2);
    let after = oref(1, 1, 3);
    assert_eq!(
        h.apply(replace(1, 1, 1, 100, 6)),
        vec![replaced(first, after, Buy, 100, 5, 6, false)]
    );
    assert_eq!(h.best(Buy), Some((100, 11)));
    let hit = sell(3, 1, 100, 6);
    let taker = oref(3, 1, 4);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 4),
            fill(1, 100, 5, taker, Sell, second, 0),
            fill(2, 100, 1, taker, Sell, after, 5),
        ]
    );
}

#[test]
fn replace_above_open_qty_after_partial_fill_loses_priority() {
    let mut h = Harness::new();
    let first = h.rest(buy(1, 1, 100, 5), 1);
    let second = h.rest(buy(2, 1, 100, 5), 2);
    let hit = sell(3, 1, 100, 2);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 3),
            fill(1, 100, 2, oref(3, 1, 3), Sell, first, 3)
        ]
    );
    // 4 is below the original 5 but above the open 3: priority is lost.
    let after = oref(1, 1, 4);
    assert_eq!(
        h.apply(replace(1, 1, 1, 100, 4)),
        vec![replaced(first, after, Buy, 100, 3, 4, false)]
    );
    let hit = sell(3, 2, 100, 6);
    let taker = oref(3, 2, 5);
    assert_eq!(
        h.submit(hit),
        vec![
            accepted(&hit, 5),
            fill(2, 100, 5, taker, Sell, second, 0),
            fill(3, 100, 1, taker, Sell, after, 3),
        ]
    );
}

#[test]
fn replace_new_price_loses_priority_and_matches_as_taker() {
    let mut h = Harness::new();
    let bid = h.rest(buy(1, 1, 99, 5), 1);
    let a1 = h.rest(sell(2, 1, 101, 2), 2);
    h.rest(sell(2, 2, 102, 2), 3);
    let after = oref(1, 9, 4);
    assert_eq!(
        h.apply(replace(1, 1, 9, 101, 5)),
        vec![
            replaced(bid, after, Buy, 101, 5, 5, false),
            fill(1, 101, 2, after, Buy, a1, 0),
        ]
    );
    assert_eq!(h.open_qty(1, 1), None);
    let view = h.engine.order(SessionId(1), tok(9)).unwrap();
    assert_eq!((view.order, view.price, view.qty_open), (after, 101, 3));
    assert_eq!(h.best(Buy), Some((101, 3)));
    assert_eq!(h.best(Sell), Some((102, 2)));
}

#[test]
fn replace_that_fills_completely_leaves_nothing_resting() {
    let mut h = Harness::new();
    let ask = h.rest(sell(1, 1, 103, 5), 1);
    let bid = h.rest(buy(2, 1, 100, 2), 2);
    let after = oref(2, 1, 3);
    assert_eq!(
        h.apply(replace(2, 1, 1, 104, 4)),
        vec![
            replaced(bid, after, Buy, 104, 2, 4, false),
            fill(1, 103, 4, after, Buy, ask, 1),
        ]
    );
    assert_eq!(h.open_qty(2, 1), None);
    assert_eq!(h.best(Buy), None);
    assert_eq!(h.best(Sell), Some((103, 1)));
}

#[test]
fn replace_of_another_sessions_order_is_rejected_unknown_order() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 5), 1);
    h.expect_reject(replace(2, 1, 1, 100, 3), RejectReason::UnknownOrder);
    h.expect_reject(replace(1, 2, 2, 100, 3), RejectReason::UnknownOrder);
}

#[test]
fn replace_moves_order_to_other_side_of_the_spread_on_tick_five_instrument() {
    let mut h = Harness::new();
    let ask = h.rest(sell(1, 1, 150, 5).on(I1), 1);
    let bid = h.rest(buy(2, 1, 100, 5).on(I1), 2);
    let after = oref(2, 2, 3);
    assert_eq!(
        h.apply(replace(2, 1, 2, 150, 7)),
        vec![
            on_instrument(I1, replaced(bid, after, Buy, 150, 5, 7, false)),
            on_instrument(I1, fill(1, 150, 5, after, Buy, ask, 0)),
        ]
    );
    assert_eq!(h.engine.best(I1, Buy), Some((150, 2)));
    assert_eq!(h.engine.best(I1, Sell), None);
}

// ---------------------------------------------------------------------------
// Self-trade prevention
// ---------------------------------------------------------------------------

#[test]
fn stp_off_allows_self_trade() {
    let mut h = Harness::new();
    let maker = h.rest(sell(1, 1, 100, 2), 1);
    let order = buy(1, 2, 100, 2);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 2),
            fill(1, 100, 2, oref(1, 2, 2), Buy, maker, 0)
        ]
    );
}

#[test]
fn stp_set_is_acknowledged_and_per_account_not_per_session() {
    let mut h = Harness::new();
    assert_eq!(
        h.apply(set_stp(1, StpMode::CancelIncoming)),
        vec![Event::SelfTradePreventionSet {
            account: AccountId(1),
            mode: StpMode::CancelIncoming
        }]
    );
    // Same session, different account: trades.
    let maker = h.rest(sell(1, 1, 100, 2).account(2), 1);
    let order = buy(1, 2, 100, 1);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 2),
            fill(1, 100, 1, oref(1, 2, 2), Buy, maker, 1)
        ]
    );
    // Different session, same account 2 as the maker, whose mode is Off: trades.
    let order = buy(3, 1, 100, 1).account(2);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 3),
            fill(2, 100, 1, oref(3, 1, 3), Buy, maker, 0)
        ]
    );
    // Different session, same account 1 as the maker: prevented.
    h.rest(sell(2, 1, 100, 2).account(1), 4);
    let order = buy(3, 2, 100, 1).account(1);
    assert_eq!(
        h.submit(order),
        vec![accepted(&order, 5), canceled(oref(3, 2, 5), 1, SelfTrade)]
    );
    assert_eq!(h.best(Sell), Some((100, 2)));
}

#[test]
fn stp_cancel_resting_cancels_own_resting_orders_and_matching_continues() {
    let mut h = Harness::new();
    h.apply(set_stp(1, StpMode::CancelResting));
    let own1 = h.rest(sell(1, 1, 100, 2), 1);
    let other1 = h.rest(sell(2, 1, 100, 2), 2);
    // Same account 1 from another session.
    let own2 = h.rest(sell(3, 1, 101, 2).account(1), 3);
    let other2 = h.rest(sell(3, 2, 101, 2), 4);
    let order = buy(1, 5, 101, 3);
    let taker = oref(1, 5, 5);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 5),
            canceled(own1, 2, SelfTrade),
            fill(1, 100, 2, taker, Buy, other1, 0),
            canceled(own2, 2, SelfTrade),
            fill(2, 101, 1, taker, Buy, other2, 1),
        ]
    );
    assert_eq!(h.best(Sell), Some((101, 1)));
    assert_eq!(h.best(Buy), None);
}

#[test]
fn stp_cancel_incoming_cancels_incoming_remainder_and_leaves_resting_untouched() {
    let mut h = Harness::new();
    h.apply(set_stp(1, StpMode::CancelIncoming));
    let other = h.rest(sell(2, 1, 100, 2), 1);
    let own = h.rest(sell(1, 1, 100, 2), 2);
    h.rest(sell(2, 2, 100, 2), 3);
    let order = buy(1, 2, 100, 5);
    let taker = oref(1, 2, 4);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 4),
            fill(1, 100, 2, taker, Buy, other, 0),
            canceled(taker, 3, SelfTrade),
        ]
    );
    assert_eq!(h.best(Sell), Some((100, 4)));
    assert_eq!(h.best(Buy), None, "a GTC stopped by STP does not rest");
    assert_eq!(h.engine.order(SessionId(1), tok(1)).unwrap().order, own);
}

#[test]
fn stp_cancel_both_cancels_resting_and_incoming() {
    let mut h = Harness::new();
    h.apply(set_stp(1, StpMode::CancelBoth));
    let other = h.rest(sell(2, 1, 100, 2), 1);
    let own = h.rest(sell(1, 1, 100, 2), 2);
    h.rest(sell(2, 2, 100, 2), 3);
    let order = buy(1, 2, 100, 5);
    let taker = oref(1, 2, 4);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 4),
            fill(1, 100, 2, taker, Buy, other, 0),
            canceled(own, 2, SelfTrade),
            canceled(taker, 3, SelfTrade),
        ]
    );
    assert_eq!(h.best(Sell), Some((100, 2)));
    assert_eq!(h.open_qty(1, 1), None);
}

#[test]
fn stp_mode_can_be_switched_back_off() {
    let mut h = Harness::new();
    h.apply(set_stp(1, StpMode::CancelBoth));
    let before = h.engine.state_hash();
    assert_eq!(
        h.apply(set_stp(1, StpMode::Off)),
        vec![Event::SelfTradePreventionSet {
            account: AccountId(1),
            mode: StpMode::Off
        }]
    );
    assert_ne!(h.engine.state_hash(), before, "the STP mode is state");
    let maker = h.rest(sell(1, 1, 100, 2), 1);
    let order = buy(1, 2, 100, 2);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 2),
            fill(1, 100, 2, oref(1, 2, 2), Buy, maker, 0)
        ]
    );
}

#[test]
fn fok_counts_stp_cancel_resting_own_liquidity_as_unavailable() {
    let mut h = Harness::new();
    h.apply(set_stp(1, StpMode::CancelResting));
    let own = h.rest(sell(1, 1, 100, 5), 1);
    let other = h.rest(sell(2, 1, 100, 2), 2);
    h.expect_reject(
        Command::New(buy(1, 2, 100, 3).tif(TimeInForce::Fok)),
        RejectReason::FokNotFillable,
    );
    let order = buy(1, 2, 100, 2).tif(TimeInForce::Fok);
    let taker = oref(1, 2, 3);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 3),
            canceled(own, 5, SelfTrade),
            fill(1, 100, 2, taker, Buy, other, 0),
        ]
    );
    assert_eq!(h.engine.orders_live(), 0);
}

#[test]
fn fok_with_stp_cancel_incoming_or_both_rejects_when_own_order_is_in_the_way() {
    for mode in [StpMode::CancelIncoming, StpMode::CancelBoth] {
        let mut h = Harness::new();
        h.apply(set_stp(1, mode));
        let other = h.rest(sell(2, 1, 100, 2), 1);
        h.rest(sell(1, 1, 100, 2), 2);
        h.rest(sell(2, 2, 100, 5), 3);
        // 7 lots from others, but matching would stop at the own order.
        h.expect_reject(
            Command::New(buy(1, 2, 100, 3).tif(TimeInForce::Fok)),
            RejectReason::FokNotFillable,
        );
        h.expect_reject(
            Command::New(market(1, 2, Buy, 3).tif(TimeInForce::Fok)),
            RejectReason::FokNotFillable,
        );
        // Filled before the own order is reached: fine.
        let order = buy(1, 2, 100, 2).tif(TimeInForce::Fok);
        assert_eq!(
            h.submit(order),
            vec![
                accepted(&order, 4),
                fill(1, 100, 2, oref(1, 2, 4), Buy, other, 0)
            ]
        );
        assert_eq!(h.best(Sell), Some((100, 7)));
    }
}

#[test]
fn stp_applies_when_a_replaced_order_re_enters() {
    let mut h = Harness::new();
    h.apply(set_stp(1, StpMode::CancelBoth));
    let bid = h.rest(buy(1, 1, 99, 2), 1);
    let ask = h.rest(sell(1, 2, 101, 3), 2);
    let after = oref(1, 1, 3);
    assert_eq!(
        h.apply(replace(1, 1, 1, 101, 2)),
        vec![
            replaced(bid, after, Buy, 101, 2, 2, false),
            canceled(ask, 3, SelfTrade),
            canceled(after, 2, SelfTrade),
        ]
    );
    assert_eq!(h.engine.orders_live(), 0);
    assert_eq!(h.engine.levels_live(), 0);
}

#[test]
fn stp_cancel_resting_on_replace_lets_replaced_order_rest() {
    let mut h = Harness::new();
    h.apply(set_stp(1, StpMode::CancelResting));
    let bid = h.rest(buy(1, 1, 99, 2), 1);
    let ask = h.rest(sell(1, 2, 101, 3), 2);
    let after = oref(1, 1, 3);
    assert_eq!(
        h.apply(replace(1, 1, 1, 101, 2)),
        vec![
            replaced(bid, after, Buy, 101, 2, 2, false),
            canceled(ask, 3, SelfTrade),
        ]
    );
    assert_eq!(h.best(Buy), Some((101, 2)));
    assert_eq!(h.best(Sell), None);
}

// ---------------------------------------------------------------------------
// Halt and resume
// ---------------------------------------------------------------------------

#[test]
fn halt_rejects_new_and_replace_accepts_cancel_and_resume_reopens() {
    let mut h = Harness::new();
    let resting = h.rest(buy(1, 1, 100, 5), 1);
    h.rest(buy(1, 2, 99, 5), 2);
    assert_eq!(
        h.apply(Command::Halt { instrument: I0 }),
        vec![Event::InstrumentStatus {
            instrument: I0,
            halted: true
        }]
    );
    assert_eq!(h.engine.is_halted(I0), Some(true));
    h.expect_reject(
        Command::New(sell(2, 1, 100, 1)),
        RejectReason::InstrumentHalted,
    );
    h.expect_reject(
        Command::New(market(2, 1, Sell, 1)),
        RejectReason::InstrumentHalted,
    );
    h.expect_reject(replace(1, 1, 1, 100, 1), RejectReason::InstrumentHalted);
    assert_eq!(h.apply(cancel(1, 1)), vec![canceled(resting, 5, Requested)]);
    // Other instruments trade on.
    h.rest(buy(2, 1, 100, 1).on(I1), 3);
    assert_eq!(
        h.apply(Command::Resume { instrument: I0 }),
        vec![Event::InstrumentStatus {
            instrument: I0,
            halted: false
        }]
    );
    assert_eq!(h.engine.is_halted(I0), Some(false));
    h.rest(sell(2, 2, 101, 1), 4);
    assert_eq!(
        h.apply(replace(1, 2, 2, 99, 4)),
        vec![replaced(oref(1, 2, 2), oref(1, 2, 5), Buy, 99, 5, 4, true)]
    );
}

// ---------------------------------------------------------------------------
// Event order
// ---------------------------------------------------------------------------

#[test]
fn new_order_events_are_accepted_then_fills_and_stp_cancels_then_one_remainder_cancel() {
    let mut h = Harness::new();
    h.apply(set_stp(1, StpMode::CancelResting));
    let other1 = h.rest(sell(2, 1, 100, 1), 1);
    let own = h.rest(sell(1, 1, 100, 1), 2);
    let other2 = h.rest(sell(2, 2, 101, 1), 3);
    h.rest(sell(2, 3, 110, 1), 4);
    let order = buy(1, 2, 105, 5).tif(TimeInForce::Ioc);
    let taker = oref(1, 2, 5);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 5),
            fill(1, 100, 1, taker, Buy, other1, 0),
            canceled(own, 1, SelfTrade),
            fill(2, 101, 1, taker, Buy, other2, 0),
            canceled(taker, 3, ImmediateRemainder),
        ]
    );
}

// ---------------------------------------------------------------------------
// Capacity
// ---------------------------------------------------------------------------

#[test]
fn full_order_table_still_takes_orders_that_cannot_rest() {
    let mut h = Harness::with_capacity(2, 64);
    let b1 = h.rest(buy(1, 1, 100, 5), 1);
    h.rest(buy(1, 2, 99, 5), 2);
    let order = sell(2, 1, 100, 1).tif(TimeInForce::Ioc);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 3),
            fill(1, 100, 1, oref(2, 1, 3), Sell, b1, 4)
        ]
    );
    let order = market(2, 2, Sell, 1);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 4),
            fill(2, 100, 1, oref(2, 2, 4), Sell, b1, 3)
        ]
    );
    // A cancel frees a slot for a GTC order.
    h.apply(cancel(1, 2));
    h.rest(sell(2, 3, 101, 1), 5);
}

#[test]
fn replace_into_new_level_is_allowed_when_it_frees_its_own_level() {
    let mut h = Harness::with_capacity(64, 2);
    let bid = h.rest(buy(1, 1, 100, 5), 1);
    h.rest(sell(1, 2, 102, 5), 2);
    assert_eq!(
        h.apply(replace(1, 1, 1, 99, 5)),
        vec![replaced(bid, oref(1, 1, 3), Buy, 99, 5, 5, false)]
    );
    assert_eq!(h.best(Buy), Some((99, 5)));
}

// ---------------------------------------------------------------------------
// One test per reject reason
// ---------------------------------------------------------------------------

#[test]
fn reject_unknown_session() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 5), 1);
    // sessions_max is 4: sessions 0..=3 exist.
    h.expect_reject(
        Command::New(buy(4, 1, 100, 5)),
        RejectReason::UnknownSession,
    );
    h.expect_reject(
        Command::New(buy(u16::MAX, 1, 100, 5).account(1)),
        RejectReason::UnknownSession,
    );
    h.expect_reject(cancel(4, 1), RejectReason::UnknownSession);
    h.expect_reject(replace(4, 1, 1, 100, 1), RejectReason::UnknownSession);
    h.expect_reject(cancel_all(4), RejectReason::UnknownSession);
    h.expect_reject(cancel_all(u16::MAX), RejectReason::UnknownSession);
    h.expect_reject(
        gateway_reject(4, 1, RejectReason::UnknownSession),
        RejectReason::UnknownSession,
    );
    h.rest(buy(3, 1, 100, 5).account(0), 2);
}

#[test]
fn reject_unknown_account() {
    let mut h = Harness::new();
    h.expect_reject(
        Command::New(buy(1, 1, 100, 5).account(4)),
        RejectReason::UnknownAccount,
    );
    h.expect_reject(
        set_stp(4, StpMode::CancelBoth),
        RejectReason::UnknownAccount,
    );
    h.rest(buy(1, 1, 100, 5).account(3), 1);
}

#[test]
fn reject_unknown_instrument() {
    let mut h = Harness::new();
    h.expect_reject(
        Command::New(buy(1, 1, 100, 5).on(InstrumentId(2))),
        RejectReason::UnknownInstrument,
    );
    h.expect_reject(
        Command::Halt {
            instrument: InstrumentId(2),
        },
        RejectReason::UnknownInstrument,
    );
    h.expect_reject(
        Command::Resume {
            instrument: InstrumentId(u32::MAX),
        },
        RejectReason::UnknownInstrument,
    );
}

#[test]
fn reject_instrument_halted() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 5).on(I1), 1);
    h.apply(Command::Halt { instrument: I1 });
    h.expect_reject(
        Command::New(buy(1, 2, 100, 5).on(I1)),
        RejectReason::InstrumentHalted,
    );
    h.expect_reject(
        Command::New(market(1, 2, Sell, 5).on(I1).tif(TimeInForce::Fok)),
        RejectReason::InstrumentHalted,
    );
    h.expect_reject(replace(1, 1, 1, 100, 4), RejectReason::InstrumentHalted);
    h.expect_reject(replace(1, 1, 2, 105, 5), RejectReason::InstrumentHalted);
}

#[test]
fn reject_qty_zero() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 5), 1);
    h.expect_reject(Command::New(buy(1, 2, 100, 0)), RejectReason::QtyZero);
    h.expect_reject(Command::New(market(1, 2, Sell, 0)), RejectReason::QtyZero);
    h.expect_reject(replace(1, 1, 1, 100, 0), RejectReason::QtyZero);
    h.expect_reject(replace(1, 1, 2, 101, 0), RejectReason::QtyZero);
}

#[test]
fn reject_qty_above_max() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 100).on(I1), 1);
    h.expect_reject(
        Command::New(buy(1, 2, 100, 101).on(I1)),
        RejectReason::QtyAboveMax,
    );
    h.expect_reject(
        Command::New(market(1, 2, Sell, 101).on(I1)),
        RejectReason::QtyAboveMax,
    );
    h.expect_reject(replace(1, 1, 1, 100, 101), RejectReason::QtyAboveMax);
    // The limit is inclusive, and I0 has its own.
    h.rest(buy(1, 3, 100, 101), 2);
}

#[test]
fn reject_price_zero() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 5), 1);
    h.expect_reject(Command::New(buy(1, 2, 0, 5)), RejectReason::PriceZero);
    h.expect_reject(
        Command::New(sell(1, 2, 0, 5).tif(TimeInForce::Ioc)),
        RejectReason::PriceZero,
    );
    h.expect_reject(replace(1, 1, 1, 0, 5), RejectReason::PriceZero);
}

#[test]
fn reject_price_off_tick() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 5).on(I1), 1);
    h.expect_reject(
        Command::New(buy(1, 2, 102, 5).on(I1)),
        RejectReason::PriceOffTick,
    );
    h.expect_reject(
        Command::New(sell(1, 2, 149, 5).on(I1).tif(TimeInForce::Fok)),
        RejectReason::PriceOffTick,
    );
    h.expect_reject(replace(1, 1, 1, 101, 5), RejectReason::PriceOffTick);
    // Off tick is checked before the band (3 is both).
    h.expect_reject(
        Command::New(buy(1, 2, 3, 5).on(I1)),
        RejectReason::PriceOffTick,
    );
    h.rest(buy(1, 2, 105, 5).on(I1), 2);
}

#[test]
fn reject_price_outside_band() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 5).on(I1), 1);
    h.expect_reject(
        Command::New(buy(1, 2, 45, 5).on(I1)),
        RejectReason::PriceOutsideBand,
    );
    h.expect_reject(
        Command::New(sell(1, 2, 205, 5).on(I1)),
        RejectReason::PriceOutsideBand,
    );
    h.expect_reject(replace(1, 1, 1, 205, 5), RejectReason::PriceOutsideBand);
    h.expect_reject(
        Command::New(sell(1, 2, 1_001, 5)),
        RejectReason::PriceOutsideBand,
    );
    // The band is inclusive at both ends.
    h.rest(buy(1, 2, 50, 5).on(I1), 2);
    h.rest(sell(1, 3, 200, 5).on(I1), 3);
}

#[test]
fn reject_market_order_with_price() {
    let mut h = Harness::new();
    h.rest(sell(2, 1, 100, 5), 1);
    h.expect_reject(
        Command::New(NewOrder {
            price: 100,
            ..market(1, 1, Buy, 5)
        }),
        RejectReason::MarketOrderWithPrice,
    );
    h.expect_reject(
        Command::New(NewOrder {
            price: 1,
            ..market(1, 1, Buy, 5).tif(TimeInForce::Fok)
        }),
        RejectReason::MarketOrderWithPrice,
    );
}

#[test]
fn reject_post_only_not_gtc_limit() {
    let mut h = Harness::new();
    h.expect_reject(
        Command::New(buy(1, 1, 100, 5).tif(TimeInForce::Ioc).post_only()),
        RejectReason::PostOnlyNotGtcLimit,
    );
    h.expect_reject(
        Command::New(buy(1, 1, 100, 5).tif(TimeInForce::Fok).post_only()),
        RejectReason::PostOnlyNotGtcLimit,
    );
    h.expect_reject(
        Command::New(market(1, 1, Buy, 5).tif(TimeInForce::Gtc).post_only()),
        RejectReason::PostOnlyNotGtcLimit,
    );
    h.rest(buy(1, 1, 100, 5).post_only(), 1);
}

#[test]
fn reject_post_only_would_match() {
    let mut h = Harness::new();
    h.rest(sell(2, 1, 101, 5), 1);
    h.expect_reject(
        Command::New(buy(1, 1, 101, 5).post_only()),
        RejectReason::PostOnlyWouldMatch,
    );
    h.expect_reject(
        Command::New(buy(1, 1, 150, 5).post_only()),
        RejectReason::PostOnlyWouldMatch,
    );
    // A resting post-only order may not be replaced into a cross either.
    h.rest(buy(1, 1, 100, 5).post_only(), 2);
    h.expect_reject(replace(1, 1, 1, 101, 5), RejectReason::PostOnlyWouldMatch);
    assert_eq!(h.open_qty(1, 1), Some(5));
}

#[test]
fn reject_fok_not_fillable() {
    let mut h = Harness::new();
    h.rest(sell(2, 1, 100, 2), 1);
    h.rest(sell(2, 2, 101, 2), 2);
    h.expect_reject(
        Command::New(buy(1, 1, 101, 5).tif(TimeInForce::Fok)),
        RejectReason::FokNotFillable,
    );
    h.expect_reject(
        Command::New(market(1, 1, Buy, 5).tif(TimeInForce::Fok)),
        RejectReason::FokNotFillable,
    );
    h.expect_reject(
        Command::New(sell(1, 1, 50, 1).tif(TimeInForce::Fok)),
        RejectReason::FokNotFillable,
    );
    assert_eq!(h.best(Sell), Some((100, 2)));
}

#[test]
fn reject_duplicate_token() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 5), 1);
    h.rest(buy(1, 2, 99, 5), 2);
    // Any new order naming a live token of its session, whatever its type.
    h.expect_reject(
        Command::New(sell(1, 1, 105, 5)),
        RejectReason::DuplicateToken,
    );
    h.expect_reject(
        Command::New(market(1, 1, Sell, 5)),
        RejectReason::DuplicateToken,
    );
    // A replace to another live token of the same session.
    h.expect_reject(replace(1, 1, 2, 100, 5), RejectReason::DuplicateToken);
    // Tokens are per session: another session may use the same one.
    h.rest(buy(2, 1, 98, 1), 3);
}

#[test]
fn reject_unknown_order() {
    let mut h = Harness::new();
    h.expect_reject(cancel(1, 1), RejectReason::UnknownOrder);
    h.expect_reject(replace(1, 1, 1, 100, 5), RejectReason::UnknownOrder);
    // An order that never rested (IOC) is unknown afterwards.
    let order = buy(1, 1, 100, 5).tif(TimeInForce::Ioc);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 1),
            canceled(oref(1, 1, 1), 5, ImmediateRemainder)
        ]
    );
    h.expect_reject(cancel(1, 1), RejectReason::UnknownOrder);
    // Unknown order wins over halted: without the order there is no instrument.
    h.apply(Command::Halt { instrument: I0 });
    h.expect_reject(replace(1, 1, 1, 100, 5), RejectReason::UnknownOrder);
}

#[test]
fn reject_cancel_would_not_reduce() {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 5), 1);
    // Keeping all of it, or more than all of it, reduces nothing.
    h.expect_reject(reduce(1, 1, 5), RejectReason::CancelWouldNotReduce);
    h.expect_reject(reduce(1, 1, 6), RejectReason::CancelWouldNotReduce);
    h.expect_reject(reduce(1, 1, Qty::MAX), RejectReason::CancelWouldNotReduce);
    assert_eq!(h.open_qty(1, 1), Some(5));
}

/// A gateway reason's scenario: the gateway's reject is emitted as it is
/// and changes nothing.
fn reject_from_the_gateway(reason: RejectReason) {
    let mut h = Harness::new();
    h.rest(buy(1, 1, 100, 5), 1);
    h.expect_reject(gateway_reject(1, 2, reason), reason);
    h.expect_reject(gateway_reject(2, 1, reason), reason);
    h.rest(buy(1, 2, 99, 5), 2);
}

#[test]
fn reject_order_table_full() {
    let mut h = Harness::with_capacity(2, 64);
    h.rest(buy(1, 1, 100, 5), 1);
    h.rest(sell(1, 2, 105, 5), 2);
    h.expect_reject(Command::New(buy(2, 1, 99, 5)), RejectReason::OrderTableFull);
    // A GTC limit is refused on a full table even if it would fill at once:
    // the check comes before matching.
    h.expect_reject(
        Command::New(buy(2, 1, 105, 5)),
        RejectReason::OrderTableFull,
    );
    h.expect_reject(
        Command::New(buy(2, 1, 99, 5).post_only()),
        RejectReason::OrderTableFull,
    );
}

#[test]
fn reject_level_table_full() {
    let mut h = Harness::with_capacity(64, 2);
    h.rest(buy(1, 1, 100, 5), 1);
    h.rest(buy(1, 2, 100, 5), 2);
    h.rest(sell(1, 3, 105, 5), 3);
    h.expect_reject(Command::New(buy(2, 1, 99, 5)), RejectReason::LevelTableFull);
    h.expect_reject(
        Command::New(sell(2, 1, 110, 5).on(I1)),
        RejectReason::LevelTableFull,
    );
    // A replace to a new price whose own level stays behind.
    h.expect_reject(replace(1, 1, 1, 101, 5), RejectReason::LevelTableFull);
    // An existing level still takes orders, and IOCs need no level.
    h.rest(buy(2, 1, 100, 1), 4);
    let order = buy(2, 2, 99, 1).tif(TimeInForce::Ioc);
    assert_eq!(
        h.submit(order),
        vec![
            accepted(&order, 5),
            canceled(oref(2, 2, 5), 1, ImmediateRemainder)
        ]
    );
}

/// The contract does not say which reason a command with several faults
/// gets; the engine checks in a fixed order (`validate_new`,
/// `validate_replace`), and this pins that order down.
#[test]
fn a_command_with_several_faults_reports_the_first_in_validation_order() {
    use RejectReason::*;
    let mut h = Harness::with_capacity(2, 64);
    h.rest(buy(1, 1, 100, 5), 1);
    h.rest(buy(1, 2, 99, 5), 2);
    // The order table is full now, and tokens 1 and 2 of session 1 are live.
    let bad = |o: NewOrder| Command::New(o);
    let nowhere = InstrumentId(7);
    h.expect_reject(bad(buy(4, 1, 0, 0).account(9).on(nowhere)), UnknownSession);
    h.expect_reject(bad(buy(1, 1, 0, 0).account(9).on(nowhere)), UnknownAccount);
    h.expect_reject(bad(buy(1, 1, 0, 0).on(nowhere)), UnknownInstrument);
    h.apply(Command::Halt { instrument: I1 });
    h.expect_reject(bad(buy(1, 1, 0, 0).on(I1)), InstrumentHalted);
    h.apply(Command::Resume { instrument: I1 });
    h.expect_reject(bad(buy(1, 1, 0, 0).on(I1)), QtyZero);
    h.expect_reject(bad(buy(1, 1, 0, 101).on(I1)), QtyAboveMax);
    h.expect_reject(
        bad(buy(1, 1, 0, 5).on(I1).tif(TimeInForce::Ioc).post_only()),
        PriceZero,
    );
    h.expect_reject(bad(buy(1, 1, 3, 5).on(I1).post_only()), PriceOffTick);
    h.expect_reject(
        bad(NewOrder {
            price: 5,
            ..market(1, 1, Buy, 5).tif(TimeInForce::Fok).post_only()
        }),
        MarketOrderWithPrice,
    );
    h.expect_reject(
        bad(buy(1, 1, 100, 5).tif(TimeInForce::Ioc).post_only()),
        PostOnlyNotGtcLimit,
    );
    h.expect_reject(bad(sell(1, 1, 100, 5).post_only()), DuplicateToken);
    h.expect_reject(bad(sell(1, 3, 100, 5).post_only()), OrderTableFull);
    h.expect_reject(
        bad(sell(1, 3, 100, 5).tif(TimeInForce::Fok).account(9)),
        UnknownAccount,
    );
    // Replace: session, order, halt, qty, price, new token, then the checks
    // of a replace that loses priority.
    h.expect_reject(replace(4, 9, 2, 0, 0), UnknownSession);
    h.apply(Command::Halt { instrument: I0 });
    h.expect_reject(replace(1, 9, 2, 0, 0), UnknownOrder);
    h.expect_reject(replace(1, 1, 2, 0, 0), InstrumentHalted);
    h.apply(Command::Resume { instrument: I0 });
    h.expect_reject(replace(1, 1, 2, 0, 0), QtyZero);
    h.expect_reject(replace(1, 1, 2, 0, 1_001), QtyAboveMax);
    h.expect_reject(replace(1, 1, 2, 0, 5), PriceZero);
    h.expect_reject(replace(1, 1, 2, 2_000, 5), PriceOutsideBand);
    h.expect_reject(replace(1, 1, 2, 101, 5), DuplicateToken);
    // Cancel: session, order, then whether it reduces.
    h.expect_reject(reduce(4, 9, 5), UnknownSession);
    h.expect_reject(reduce(1, 9, 5), UnknownOrder);
    h.expect_reject(reduce(1, 1, 5), CancelWouldNotReduce);
}

/// Every reason in `RejectReason::ALL` names a scenario above; running each
/// proves it really produces that reason. Adding a reason without a scenario
/// fails to compile here.
#[test]
fn every_reject_reason_is_produced_by_its_named_test() {
    enum Scenario {
        /// A test the engine's own checks make fail.
        Engine(fn()),
        /// A reason only a gateway decides, passed on by the engine.
        Gateway,
    }
    fn scenario(reason: RejectReason) -> Scenario {
        use Scenario::{Engine, Gateway};
        match reason {
            RejectReason::UnknownSession => Engine(reject_unknown_session),
            RejectReason::UnknownAccount => Engine(reject_unknown_account),
            RejectReason::UnknownInstrument => Engine(reject_unknown_instrument),
            RejectReason::InstrumentHalted => Engine(reject_instrument_halted),
            RejectReason::QtyZero => Engine(reject_qty_zero),
            RejectReason::QtyAboveMax => Engine(reject_qty_above_max),
            RejectReason::PriceZero => Engine(reject_price_zero),
            RejectReason::PriceOffTick => Engine(reject_price_off_tick),
            RejectReason::PriceOutsideBand => Engine(reject_price_outside_band),
            RejectReason::MarketOrderWithPrice => Engine(reject_market_order_with_price),
            RejectReason::PostOnlyNotGtcLimit => Engine(reject_post_only_not_gtc_limit),
            RejectReason::PostOnlyWouldMatch => Engine(reject_post_only_would_match),
            RejectReason::FokNotFillable => Engine(reject_fok_not_fillable),
            RejectReason::DuplicateToken => Engine(reject_duplicate_token),
            RejectReason::UnknownOrder => Engine(reject_unknown_order),
            RejectReason::OrderTableFull => Engine(reject_order_table_full),
            RejectReason::LevelTableFull => Engine(reject_level_table_full),
            RejectReason::CancelWouldNotReduce => Engine(reject_cancel_would_not_reduce),
            RejectReason::InvalidTimeInForce
            | RejectReason::InvalidDisplay
            | RejectReason::InvalidMinimumQty
            | RejectReason::InvalidCrossType
            | RejectReason::InvalidFirm
            | RejectReason::InvalidCapacity
            | RejectReason::InvalidCustomerType
            | RejectReason::MessageRateExceeded
            | RejectReason::SessionOpenOrdersLimit
            | RejectReason::TokenTableFull
            | RejectReason::SystemBusy
            | RejectReason::InvalidField => Gateway,
        }
    }
    for reason in RejectReason::ALL {
        REJECTS_SEEN.with(|seen| seen.borrow_mut().clear());
        match scenario(reason) {
            Scenario::Engine(test) => test(),
            Scenario::Gateway => {
                assert!(reason.is_gateway_reason(), "{}", reason.name());
                reject_from_the_gateway(reason);
            }
        }
        let seen = REJECTS_SEEN.with(|seen| seen.borrow().clone());
        assert!(!seen.is_empty(), "{}: no reject produced", reason.name());
        assert!(
            seen.iter().all(|&r| r == reason),
            "{}: scenario also produced {seen:?}",
            reason.name()
        );
    }
}
