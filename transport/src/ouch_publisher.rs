//! `OuchPublisher`: turns each published engine event into the OUCH 4.2
//! messages it means, addressed to the sessions they belong to. A fill is
//! two Executed messages, one to each side's session, sharing the trade's
//! match number; everything else goes to the one session that owns the
//! order. The publisher keeps a table of the live orders' echo fields (the
//! `client_tag` of the command that entered them), because Replaced echoes
//! fields the engine's event does not carry, and it reports each order's
//! life (opened, closed) so the gateway can count a session's open orders.
//!
//! Everything here is a pure function of the event stream, so replaying the
//! journal through an engine and this publisher rebuilds every session's
//! output byte for byte.

use crate::event_inbox::PublishedEvent;
use crate::ouch::{
    self, Accepted, BboWeight, Canceled, CrossType, Executed, LiquidityFlag, OrderState, Outbound,
    Rejected, Replaced, Stock, MARKET_PRICE,
};
use crate::ouch_adapter::EchoFields;
use lockstep_engine::{
    CancelReason, CommandKind, Event, InstrumentId, OrderRef, OrderType, RejectReason, SessionId,
    TimeInForce,
};
use std::collections::HashMap;

/// Nanoseconds in a day: OUCH timestamps count from midnight.
const NANOS_PER_DAY: u64 = 86_400_000_000_000;

/// What the publisher remembers of one live order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OrderEcho {
    instrument: InstrumentId,
    client_tag: u16,
    qty_open: u32,
}

/// A change in a session's order count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderLifecycle {
    /// An Enter Order was answered (accepted or rejected): it is no longer
    /// in flight.
    NewAnswered,
    /// An order was accepted and is live.
    Opened,
    /// A live order is gone (filled, canceled, or its remainder canceled).
    Closed,
}

/// The OUCH side of the engine's event stream.
#[derive(Debug)]
pub struct OuchPublisher {
    symbols: Vec<Stock>,
    firms: Vec<ouch::Firm>,
    orders: HashMap<u64, OrderEcho>,
}

/// OUCH's reject code for each of Lockstep's reasons. OUCH 4.2 has no code
/// for several of them; those share `O` ("other") and the gateway logs the
/// precise reason.
pub fn ouch_reject_reason(reason: RejectReason) -> ouch::RejectReason {
    use ouch::RejectReason as R;
    match reason {
        RejectReason::UnknownInstrument => R::InvalidStock,
        RejectReason::InstrumentHalted => R::Halted,
        RejectReason::QtyAboveMax => R::SharesExceedSafetyThreshold,
        RejectReason::PriceZero
        | RejectReason::PriceOffTick
        | RejectReason::PriceOutsideBand
        | RejectReason::MarketOrderWithPrice => R::InvalidPrice,
        RejectReason::PostOnlyNotGtcLimit | RejectReason::InvalidDisplay => R::InvalidDisplayType,
        RejectReason::InvalidMinimumQty => R::InvalidMinimumQuantity,
        RejectReason::InvalidCrossType => R::NotAllowedInCrossType,
        RejectReason::InvalidFirm => R::FirmNotAuthorizedForClearingType,
        _ => R::Other,
    }
}

/// OUCH's cancel code for each of Lockstep's cancel reasons.
pub fn ouch_cancel_reason(reason: CancelReason) -> ouch::CancelReason {
    match reason {
        CancelReason::Requested => ouch::CancelReason::UserRequested,
        CancelReason::ImmediateRemainder => ouch::CancelReason::ImmediateOrCancel,
        CancelReason::SelfTrade => ouch::CancelReason::SelfMatchPrevention,
        // OUCH 4.2 has no "logged off" code; the system cancelled the order
        // because the session's connection ended.
        CancelReason::SessionDisconnected => ouch::CancelReason::SystemCancel,
    }
}

fn ouch_token(order: &OrderRef) -> ouch::Token {
    crate::ascii_field::AsciiField(order.token.to_bytes())
}

fn ouch_price(price: u64) -> ouch::Price {
    ouch::Price::try_from(price).unwrap_or(ouch::Price::MAX)
}

impl OuchPublisher {
    /// `symbols[i]` is instrument `i`'s OUCH symbol; `firms[s]` session `s`'s firm.
    pub fn new(symbols: Vec<Stock>, firms: Vec<ouch::Firm>) -> OuchPublisher {
        OuchPublisher {
            symbols,
            firms,
            orders: HashMap::new(),
        }
    }

    /// Live orders the publisher is tracking.
    pub fn live_orders(&self) -> usize {
        self.orders.len()
    }

    fn symbol(&self, instrument: InstrumentId) -> Stock {
        self.symbols
            .get(instrument.0 as usize)
            .copied()
            .unwrap_or(Stock::BLANK)
    }

    fn firm(&self, session: SessionId) -> ouch::Firm {
        self.firms
            .get(usize::from(session.0))
            .copied()
            .unwrap_or(ouch::Firm::BLANK)
    }

    /// Removes `qty` from a live order's open quantity; reports `Closed`
    /// when none is left.
    fn reduce(
        &mut self,
        order: &OrderRef,
        qty: u32,
        lifecycle: &mut impl FnMut(SessionId, OrderLifecycle),
    ) {
        let Some(echo) = self.orders.get_mut(&order.order_id.0) else {
            return;
        };
        echo.qty_open = echo.qty_open.saturating_sub(qty);
        if echo.qty_open == 0 {
            self.orders.remove(&order.order_id.0);
            lifecycle(order.session, OrderLifecycle::Closed);
        }
    }

    /// The OUCH messages of one event, each handed to `emit` with its
    /// session; order-count changes go to `lifecycle`.
    pub fn publish(
        &mut self,
        published: &PublishedEvent,
        emit: &mut impl FnMut(SessionId, &Outbound),
        lifecycle: &mut impl FnMut(SessionId, OrderLifecycle),
    ) {
        let timestamp = published.timestamp_ns % NANOS_PER_DAY;
        match published.event {
            Event::Accepted {
                order,
                instrument,
                order_type,
                time_in_force,
                post_only: _,
                price,
                qty,
                client_tag,
                ..
            } => {
                let echo = EchoFields::unpack(client_tag);
                let message = Outbound::Accepted(Accepted {
                    timestamp,
                    token: ouch_token(&order),
                    side: echo.side,
                    shares: qty,
                    stock: self.symbol(instrument),
                    price: match order_type {
                        OrderType::Market => MARKET_PRICE,
                        OrderType::Limit => ouch_price(price),
                    },
                    time_in_force: echo.time_in_force,
                    firm: self.firm(order.session),
                    display: echo.display,
                    order_reference_number: order.order_id.0,
                    capacity: echo.capacity,
                    intermarket_sweep: echo.intermarket_sweep,
                    minimum_quantity: if time_in_force == TimeInForce::Fok {
                        qty
                    } else {
                        0
                    },
                    cross_type: CrossType::NoCross,
                    order_state: OrderState::Live,
                    bbo_weight: BboWeight::Unspecified,
                });
                emit(order.session, &message);
                lifecycle(order.session, OrderLifecycle::NewAnswered);
                self.orders.insert(
                    order.order_id.0,
                    OrderEcho {
                        instrument,
                        client_tag,
                        qty_open: qty,
                    },
                );
                lifecycle(order.session, OrderLifecycle::Opened);
            }
            Event::Rejected {
                session,
                token,
                command,
                reason,
            } => {
                let message = Outbound::Rejected(Rejected {
                    timestamp,
                    token: crate::ascii_field::AsciiField(token.to_bytes()),
                    reason: ouch_reject_reason(reason),
                });
                emit(session, &message);
                if command == CommandKind::New {
                    lifecycle(session, OrderLifecycle::NewAnswered);
                }
            }
            Event::Fill {
                match_id,
                price,
                qty,
                taker,
                maker,
                maker_qty_open,
                ..
            } => {
                for (order, flag) in [
                    (taker, LiquidityFlag::Removed),
                    (maker, LiquidityFlag::Added),
                ] {
                    let message = Outbound::Executed(Executed {
                        timestamp,
                        token: ouch_token(&order),
                        executed_shares: qty,
                        execution_price: ouch_price(price),
                        liquidity_flag: flag,
                        match_number: match_id.0,
                    });
                    emit(order.session, &message);
                }
                self.reduce(&taker, qty, lifecycle);
                // The event states the maker's remainder; trust it over our
                // own arithmetic.
                if let Some(echo) = self.orders.get_mut(&maker.order_id.0) {
                    let already_open = echo.qty_open;
                    self.reduce(
                        &maker,
                        already_open.saturating_sub(maker_qty_open),
                        lifecycle,
                    );
                }
            }
            Event::Canceled { order, qty, reason } => {
                let message = Outbound::Canceled(Canceled {
                    timestamp,
                    token: ouch_token(&order),
                    decrement_shares: qty,
                    reason: ouch_cancel_reason(reason),
                });
                emit(order.session, &message);
                self.reduce(&order, qty, lifecycle);
            }
            Event::Replaced {
                previous,
                order,
                instrument,
                price,
                qty,
                ..
            } => {
                let client_tag = self
                    .orders
                    .remove(&previous.order_id.0)
                    .map(|echo| echo.client_tag)
                    .unwrap_or(0);
                let echo = EchoFields::unpack(client_tag);
                let message = Outbound::Replaced(Replaced {
                    timestamp,
                    replacement_token: ouch_token(&order),
                    side: echo.side,
                    shares: qty,
                    stock: self.symbol(instrument),
                    price: ouch_price(price),
                    time_in_force: echo.time_in_force,
                    firm: self.firm(order.session),
                    display: echo.display,
                    order_reference_number: order.order_id.0,
                    capacity: echo.capacity,
                    intermarket_sweep: echo.intermarket_sweep,
                    minimum_quantity: 0,
                    cross_type: CrossType::NoCross,
                    order_state: OrderState::Live,
                    previous_token: ouch_token(&previous),
                    bbo_weight: BboWeight::Unspecified,
                });
                emit(order.session, &message);
                self.orders.insert(
                    order.order_id.0,
                    OrderEcho {
                        instrument,
                        client_tag,
                        qty_open: qty,
                    },
                );
            }
            // Halts and self-trade settings have no OUCH order message.
            Event::InstrumentStatus { .. } | Event::SelfTradePreventionSet { .. } => {}
        }
    }
}
