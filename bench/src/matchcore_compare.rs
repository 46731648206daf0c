//! Runs one flow through Lockstep's engine and through the `matchcore` crate
//! (a single-threaded deterministic Rust order book) side by side, so the
//! report can quote a ratio measured in one run on one machine. The flow is
//! translated to matchcore's commands before any timing starts; both books
//! are built before their clocks start, and each round alternates the two so
//! that drift in the machine's speed hits both alike.
//!
//! matchcore 0.4.0 keeps sweeping worse levels with a crossing limit order
//! (it ignores the limit price once it crosses), so its trades differ from
//! ours on the same flow: this compares speed, not trades.

use lockstep_engine::{Command, Engine, EngineConfig, Event, OrderType, TimeInForce, Token};
use matchcore as mc;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

/// matchcore's form of a flow, ready to execute.
pub struct MatchcoreFlow {
    commands: Vec<mc::Command>,
}

impl MatchcoreFlow {
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The translated commands, in order.
    pub fn commands(&self) -> &[mc::Command] {
        &self.commands
    }
}

fn side(side: lockstep_engine::Side) -> mc::Side {
    match side {
        lockstep_engine::Side::Buy => mc::Side::Buy,
        lockstep_engine::Side::Sell => mc::Side::Sell,
    }
}

/// Translates a flow of engine commands. matchcore names an order by the
/// sequence number of the command that submitted it, so each token is mapped
/// to that number; commands matchcore has no counterpart for (halts, self
/// trade prevention) are left out, which the flows compared here never hold.
pub fn translate(flow: &[Command]) -> MatchcoreFlow {
    let mut order_ids: BTreeMap<(u16, Token), mc::OrderId> = BTreeMap::new();
    let mut commands = Vec::with_capacity(flow.len());
    for command in flow {
        let sequence_number = commands.len() as u64;
        let kind = match command {
            Command::New(order) => {
                order_ids.insert((order.session.0, order.token), mc::OrderId(sequence_number));
                let quantity = mc::Quantity(order.qty as u64);
                let new_order = match order.order_type {
                    OrderType::Market => mc::NewOrder::Market(mc::MarketOrder::new(
                        quantity,
                        side(order.side),
                        false,
                    )),
                    OrderType::Limit => {
                        let time_in_force = match order.time_in_force {
                            TimeInForce::Gtc => mc::TimeInForce::Gtc,
                            TimeInForce::Ioc => mc::TimeInForce::Ioc,
                            TimeInForce::Fok => mc::TimeInForce::Fok,
                        };
                        mc::NewOrder::Limit(mc::LimitOrder::new(
                            mc::Price(order.price),
                            mc::QuantityPolicy::Standard { quantity },
                            mc::OrderFlags::new(side(order.side), order.post_only, time_in_force),
                        ))
                    }
                };
                mc::CommandKind::Submit(mc::SubmitCmd { order: new_order })
            }
            Command::Cancel(cancel) => match order_ids.get(&(cancel.session.0, cancel.token)) {
                Some(order_id) if cancel.qty_after == 0 => mc::CommandKind::Cancel(mc::CancelCmd {
                    order_id: *order_id,
                    order_kind: mc::OrderKind::Limit,
                }),
                // A partial cancel is an amend of the quantity alone, which
                // keeps the price and the order's priority.
                Some(order_id) => mc::CommandKind::Amend(mc::AmendCmd {
                    order_id: *order_id,
                    patch: mc::AmendPatch::Limit(mc::LimitOrderPatch::new().with_quantity_policy(
                        mc::QuantityPolicy::Standard {
                            quantity: mc::Quantity(cancel.qty_after as u64),
                        },
                    )),
                }),
                None => continue,
            },
            Command::Replace(replace) => {
                let Some(order_id) = order_ids.get(&(replace.session.0, replace.token)).copied()
                else {
                    continue;
                };
                if replace.new_token != replace.token {
                    order_ids.insert((replace.session.0, replace.new_token), order_id);
                }
                mc::CommandKind::Amend(mc::AmendCmd {
                    order_id,
                    patch: mc::AmendPatch::Limit(
                        mc::LimitOrderPatch::new()
                            .with_price(mc::Price(replace.price))
                            .with_quantity_policy(mc::QuantityPolicy::Standard {
                                quantity: mc::Quantity(replace.qty as u64),
                            }),
                    ),
                })
            }
            Command::Halt { .. }
            | Command::Resume { .. }
            | Command::SetSelfTradePrevention { .. }
            | Command::CancelAllForSession { .. }
            | Command::Reject { .. } => continue,
        };
        commands.push(mc::Command {
            meta: mc::CommandMeta {
                sequence_number: mc::SequenceNumber(sequence_number),
                timestamp: mc::Timestamp(sequence_number),
            },
            kind,
        });
    }
    MatchcoreFlow { commands }
}

/// Nanoseconds per command of one pass of `flow` through a fresh engine.
pub fn time_lockstep(config: &EngineConfig, flow: &[Command]) -> f64 {
    let mut engine = Engine::new(config.clone()).expect("the caller gives a valid config");
    let mut events: u64 = 0;
    let mut sink = |event: &Event| {
        events += 1;
        black_box(event);
    };
    let started = Instant::now();
    for command in flow {
        engine.apply(black_box(command), &mut sink);
    }
    let elapsed_ns = started.elapsed().as_nanos() as f64;
    black_box(events);
    black_box(engine.state_hash());
    elapsed_ns / flow.len().max(1) as f64
}

/// Nanoseconds per command of one pass of `flow` through a fresh matchcore book.
pub fn time_matchcore(flow: &MatchcoreFlow) -> f64 {
    let mut book = mc::OrderBook::new("BENCH");
    let started = Instant::now();
    for command in &flow.commands {
        let outcome = book.execute(black_box(command));
        black_box(&outcome);
    }
    let elapsed_ns = started.elapsed().as_nanos() as f64;
    black_box(&book);
    elapsed_ns / flow.commands.len().max(1) as f64
}

/// The result of an interleaved comparison.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub rounds: usize,
    pub commands: usize,
    pub lockstep_ns_per_command: Vec<f64>,
    pub matchcore_ns_per_command: Vec<f64>,
}

/// The median of a list of timings.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

impl Comparison {
    pub fn lockstep_median_ns(&self) -> f64 {
        median(&self.lockstep_ns_per_command)
    }

    pub fn matchcore_median_ns(&self) -> f64 {
        median(&self.matchcore_ns_per_command)
    }

    /// How many times faster Lockstep is (matchcore's median over ours).
    pub fn speedup(&self) -> f64 {
        self.matchcore_median_ns() / self.lockstep_median_ns()
    }
}

/// Runs both books over the same flow `rounds` times, alternating which
/// goes first.
pub fn compare(config: &EngineConfig, flow: &[Command], rounds: usize) -> Comparison {
    let translated = translate(flow);
    let mut comparison = Comparison {
        rounds,
        commands: flow.len(),
        lockstep_ns_per_command: Vec::with_capacity(rounds),
        matchcore_ns_per_command: Vec::with_capacity(rounds),
    };
    for round in 0..rounds {
        if round % 2 == 0 {
            comparison
                .lockstep_ns_per_command
                .push(time_lockstep(config, flow));
            comparison
                .matchcore_ns_per_command
                .push(time_matchcore(&translated));
        } else {
            comparison
                .matchcore_ns_per_command
                .push(time_matchcore(&translated));
            comparison
                .lockstep_ns_per_command
                .push(time_lockstep(config, flow));
        }
    }
    comparison
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_engine::{
        AccountId, CancelOrder, InstrumentId, NewOrder, ReplaceOrder, SessionId, Side,
    };

    fn new_order(token: u64, side: Side, price: u64) -> Command {
        Command::New(NewOrder {
            session: SessionId(0),
            account: AccountId(0),
            token: Token::from_u64(token),
            instrument: InstrumentId(0),
            side,
            order_type: OrderType::Limit,
            price,
            qty: 10,
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            client_tag: 0,
        })
    }

    #[test]
    fn translation_names_orders_by_their_submit_sequence_number() {
        let flow = vec![
            new_order(7, Side::Buy, 100),
            new_order(8, Side::Sell, 105),
            Command::Replace(ReplaceOrder {
                session: SessionId(0),
                token: Token::from_u64(8),
                new_token: Token::from_u64(8),
                price: 104,
                qty: 10,
            }),
            Command::Cancel(CancelOrder {
                session: SessionId(0),
                token: Token::from_u64(7),
                qty_after: 0,
            }),
            Command::Cancel(CancelOrder {
                session: SessionId(0),
                token: Token::from_u64(99),
                qty_after: 0,
            }),
        ];
        let translated = translate(&flow);
        // The cancel of an unknown token has no matchcore counterpart.
        assert_eq!(translated.len(), 4);
        match &translated.commands[2].kind {
            mc::CommandKind::Amend(amend) => assert_eq!(amend.order_id, mc::OrderId(1)),
            other => panic!("expected an amend, got {other:?}"),
        }
        match &translated.commands[3].kind {
            mc::CommandKind::Cancel(cancel) => assert_eq!(cancel.order_id, mc::OrderId(0)),
            other => panic!("expected a cancel, got {other:?}"),
        }
        // matchcore accepts the whole translated flow in sequence.
        let mut book = mc::OrderBook::new("TEST");
        for command in &translated.commands {
            assert!(matches!(
                book.execute(command),
                mc::CommandOutcome::Applied(_)
            ));
        }
    }
}
