//! `OuchAdapter`: decodes one inbound OUCH 4.2 message of a logged-in session
//! and turns it into the engine command it asks for, or into the reject it
//! earns. The mapping of OUCH's fields onto Lockstep's order types is the
//! contract written in `docs/protocol.md` ("Mapping OUCH onto Lockstep's
//! orders"). Fields Lockstep does not use but must echo in Accepted and
//! Replaced (buy/sell indicator, display, capacity, intermarket sweep,
//! customer type, time in force) are packed into the command's `client_tag`,
//! which is journaled with the order, so every message can be rebuilt from
//! the journal alone.
//!
//! The adapter only classifies; it changes no state. Rejects are not sent
//! from here: the gateway sequences them as `Command::Reject`, so a session's
//! output stream is a function of the journal.

use crate::ouch::{
    self, Capacity, CustomerType, Display, Inbound, IntermarketSweep, Stock, MARKET_PRICE, TIF_IOC,
    TIF_MARKET_HOURS, TIF_SYSTEM_HOURS,
};
use lockstep_engine::{
    AccountId, CancelOrder, Command, CommandKind, InstrumentId, NewOrder, OrderType, RejectReason,
    ReplaceOrder, SessionId, Side, TimeInForce, Token,
};

/// The OUCH fields Lockstep echoes but does not act on, packed into 11 bits
/// of a command's `client_tag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoFields {
    pub side: ouch::Side,
    pub display: Display,
    pub capacity: Capacity,
    pub intermarket_sweep: IntermarketSweep,
    pub customer_type: CustomerType,
    /// The OUCH time in force as sent: 0, 99998 or 99999.
    pub time_in_force: u32,
}

const SIDES: [ouch::Side; 4] = [
    ouch::Side::Buy,
    ouch::Side::Sell,
    ouch::Side::SellShort,
    ouch::Side::SellShortExempt,
];
/// The display values Lockstep accepts, in tag order.
const DISPLAYS: [Display; 4] = [
    Display::AnonymousPriceToComply,
    Display::AttributablePriceToDisplay,
    Display::NonDisplay,
    Display::PostOnly,
];
const CAPACITIES: [Capacity; 4] = [
    Capacity::Agency,
    Capacity::Other,
    Capacity::Principal,
    Capacity::Riskless,
];
const CUSTOMER_TYPES: [CustomerType; 3] = [
    CustomerType::PortDefault,
    CustomerType::RetailDesignated,
    CustomerType::NotRetailDesignated,
];
const TIMES_IN_FORCE: [u32; 3] = [TIF_IOC, TIF_MARKET_HOURS, TIF_SYSTEM_HOURS];

fn index_of<T: PartialEq>(values: &[T], value: &T) -> u16 {
    values
        .iter()
        .position(|candidate| candidate == value)
        .unwrap_or(0) as u16
}

impl EchoFields {
    /// Packs the fields; every field must be one of the accepted values
    /// (the adapter checks that before packing).
    pub fn pack(&self) -> u16 {
        index_of(&SIDES, &self.side)
            | index_of(&DISPLAYS, &self.display) << 2
            | index_of(&CAPACITIES, &self.capacity) << 4
            | u16::from(self.intermarket_sweep == IntermarketSweep::Eligible) << 6
            | index_of(&CUSTOMER_TYPES, &self.customer_type) << 7
            | index_of(&TIMES_IN_FORCE, &self.time_in_force) << 9
    }

    /// Unpacks a tag. Out-of-range indexes (a tag the gateway never wrote)
    /// fall back to the first value rather than panicking.
    pub fn unpack(tag: u16) -> EchoFields {
        let pick = |shift: u16, mask: u16| usize::from((tag >> shift) & mask);
        EchoFields {
            side: SIDES[pick(0, 3)],
            display: DISPLAYS[pick(2, 3)],
            capacity: CAPACITIES[pick(4, 3)],
            intermarket_sweep: if pick(6, 1) == 1 {
                IntermarketSweep::Eligible
            } else {
                IntermarketSweep::NotEligible
            },
            customer_type: *CUSTOMER_TYPES.get(pick(7, 3)).unwrap_or(&CUSTOMER_TYPES[0]),
            time_in_force: *TIMES_IN_FORCE.get(pick(9, 3)).unwrap_or(&TIMES_IN_FORCE[0]),
        }
    }
}

/// What the session the message came from is.
#[derive(Clone, Copy, Debug)]
pub struct SessionContext {
    pub session: SessionId,
    pub account: AccountId,
    pub firm: ouch::Firm,
}

/// What one inbound message becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Translation {
    /// A command to sequence (possibly a `Command::Reject`).
    Command(Command),
    /// The message cannot be trusted at all (wrong length, unknown type, a
    /// token that is not printable): the connection is closed.
    Malformed(MalformedReason),
}

/// Why a message could not be interpreted at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedReason(pub ouch::DecodeError);

impl std::fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ouch::DecodeError::Empty => f.write_str("empty OUCH message"),
            ouch::DecodeError::UnknownType(byte) => {
                write!(f, "unknown OUCH message type 0x{byte:02x}")
            }
            ouch::DecodeError::BadLength {
                message_type,
                len,
                expected,
            } => write!(
                f,
                "OUCH message '{}' is {len} bytes, expected {expected}",
                char::from(message_type)
            ),
            ouch::DecodeError::BadEnum { field, value } => {
                write!(f, "OUCH field {field} has bad value 0x{value:02x}")
            }
            ouch::DecodeError::BadAlpha { field } => {
                write!(f, "OUCH field {field} is not printable ASCII")
            }
        }
    }
}

/// Translates inbound OUCH into engine commands.
#[derive(Clone, Debug)]
pub struct OuchAdapter {
    symbols: Vec<(Stock, InstrumentId)>,
}

fn reject(session: SessionId, token: Token, command: CommandKind, reason: RejectReason) -> Command {
    Command::Reject {
        session,
        token,
        command,
        reason,
    }
}

fn engine_token(token: &ouch::Token) -> Token {
    Token::from_bytes(token.0)
}

impl OuchAdapter {
    /// `symbols` maps each OUCH stock symbol to its instrument.
    pub fn new(symbols: Vec<(Stock, InstrumentId)>) -> OuchAdapter {
        OuchAdapter { symbols }
    }

    pub fn instrument_of(&self, stock: &Stock) -> Option<InstrumentId> {
        self.symbols
            .iter()
            .find(|(symbol, _)| symbol.trimmed() == stock.trimmed())
            .map(|&(_, instrument)| instrument)
    }

    pub fn symbol_of(&self, instrument: InstrumentId) -> Stock {
        self.symbols
            .iter()
            .find(|&&(_, id)| id == instrument)
            .map(|&(symbol, _)| symbol)
            .unwrap_or(Stock::BLANK)
    }

    /// Decodes and translates one Unsequenced Data payload.
    pub fn translate(&self, context: &SessionContext, payload: &[u8]) -> Translation {
        match Inbound::decode(payload) {
            Ok(Inbound::EnterOrder(order)) => {
                Translation::Command(match self.enter(context, &order) {
                    Ok(new_order) => Command::New(new_order),
                    Err(reason) => reject(
                        context.session,
                        engine_token(&order.token),
                        CommandKind::New,
                        reason,
                    ),
                })
            }
            Ok(Inbound::ReplaceOrder(replace)) => {
                Translation::Command(match Self::replace(context.session, &replace) {
                    Ok(replace_order) => Command::Replace(replace_order),
                    Err(reason) => reject(
                        context.session,
                        engine_token(&replace.existing_token),
                        CommandKind::Replace,
                        reason,
                    ),
                })
            }
            Ok(Inbound::CancelOrder(cancel)) => {
                Translation::Command(Command::Cancel(CancelOrder {
                    session: context.session,
                    token: engine_token(&cancel.token),
                    qty_after: cancel.shares,
                }))
            }
            Err(error) => Self::classify_error(context.session, payload, error),
        }
    }

    /// A bad enumerated value in an otherwise well-formed message is an
    /// invalid field: the client gets a Rejected naming it. Anything else
    /// means the message cannot be trusted, and the connection closes.
    fn classify_error(session: SessionId, payload: &[u8], error: ouch::DecodeError) -> Translation {
        let ouch::DecodeError::BadEnum { field, .. } = error else {
            return Translation::Malformed(MalformedReason(error));
        };
        // The decoder checked the length and reads fields in order, so the
        // token (bytes 1..15) was read, and found printable, before any enum.
        let Some(token_bytes) = payload.get(1..15) else {
            return Translation::Malformed(MalformedReason(error));
        };
        let mut token = [0u8; 14];
        token.copy_from_slice(token_bytes);
        let command = match payload[0] {
            ouch::message_type::ENTER_ORDER => CommandKind::New,
            ouch::message_type::REPLACE_ORDER => CommandKind::Replace,
            _ => CommandKind::Cancel,
        };
        let reason = match field {
            "display" => RejectReason::InvalidDisplay,
            "capacity" => RejectReason::InvalidCapacity,
            "cross type" => RejectReason::InvalidCrossType,
            "customer type" => RejectReason::InvalidCustomerType,
            // The buy/sell indicator and intermarket sweep have no reject
            // code of their own in OUCH 4.2; they share "other".
            _ => RejectReason::InvalidField,
        };
        Translation::Command(reject(session, Token::from_bytes(token), command, reason))
    }

    /// Enter Order → `NewOrder`, following the table in `docs/protocol.md`.
    pub fn enter(
        &self,
        context: &SessionContext,
        order: &ouch::EnterOrder,
    ) -> Result<NewOrder, RejectReason> {
        let instrument = self
            .instrument_of(&order.stock)
            .ok_or(RejectReason::UnknownInstrument)?;
        if !order.firm.is_blank() && order.firm.trimmed() != context.firm.trimmed() {
            return Err(RejectReason::InvalidFirm);
        }
        if order.cross_type != ouch::CrossType::NoCross {
            return Err(RejectReason::InvalidCrossType);
        }
        let post_only = match order.display {
            Display::AnonymousPriceToComply
            | Display::AttributablePriceToDisplay
            | Display::NonDisplay => false,
            Display::PostOnly => true,
            _ => return Err(RejectReason::InvalidDisplay),
        };
        let immediate = match order.time_in_force {
            TIF_IOC => true,
            TIF_MARKET_HOURS | TIF_SYSTEM_HOURS => false,
            _ => return Err(RejectReason::InvalidTimeInForce),
        };
        let all_or_none = match order.minimum_quantity {
            0 => false,
            minimum if immediate && minimum == order.shares => true,
            _ => return Err(RejectReason::InvalidMinimumQty),
        };
        let time_in_force = match (immediate, all_or_none) {
            (false, _) => TimeInForce::Gtc,
            (true, false) => TimeInForce::Ioc,
            (true, true) => TimeInForce::Fok,
        };
        let (order_type, price) = if order.price == MARKET_PRICE {
            if !immediate {
                // A market order never rests: it needs time in force 0.
                return Err(RejectReason::PriceOutsideBand);
            }
            (OrderType::Market, 0)
        } else {
            (OrderType::Limit, u64::from(order.price))
        };
        let side = match order.side {
            ouch::Side::Buy => Side::Buy,
            ouch::Side::Sell | ouch::Side::SellShort | ouch::Side::SellShortExempt => Side::Sell,
        };
        let echo = EchoFields {
            side: order.side,
            display: order.display,
            capacity: order.capacity,
            intermarket_sweep: order.intermarket_sweep,
            customer_type: order.customer_type,
            time_in_force: order.time_in_force,
        };
        Ok(NewOrder {
            session: context.session,
            account: context.account,
            token: engine_token(&order.token),
            instrument,
            side,
            order_type,
            price,
            qty: order.shares,
            time_in_force,
            post_only,
            client_tag: echo.pack(),
        })
    }

    /// Replace Order → `ReplaceOrder`. A replace changes price and size only:
    /// it must keep a resting order's time in force and may not set a
    /// minimum quantity; its display byte must be one Lockstep accepts but is
    /// not applied (the order keeps its own, which Replaced echoes).
    pub fn replace(
        session: SessionId,
        replace: &ouch::ReplaceOrder,
    ) -> Result<ReplaceOrder, RejectReason> {
        if !matches!(replace.time_in_force, TIF_MARKET_HOURS | TIF_SYSTEM_HOURS) {
            return Err(RejectReason::InvalidTimeInForce);
        }
        if replace.minimum_quantity != 0 {
            return Err(RejectReason::InvalidMinimumQty);
        }
        if !DISPLAYS.contains(&replace.display) {
            return Err(RejectReason::InvalidDisplay);
        }
        if replace.price == MARKET_PRICE {
            return Err(RejectReason::PriceOutsideBand);
        }
        Ok(ReplaceOrder {
            session,
            token: engine_token(&replace.existing_token),
            new_token: engine_token(&replace.replacement_token),
            price: u64::from(replace.price),
            qty: replace.shares,
        })
    }
}

#[cfg(test)]
mod tests;
