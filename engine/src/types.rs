//! The small value types every command and event is made of: identifiers,
//! sides, order types, time in force and self-trade prevention modes. Prices
//! are integer price units (a multiple of the instrument's tick) and
//! quantities integer lots; neither is ever a float.

use rkyv::{Archive, Deserialize, Serialize};

/// A price in integer price units (for OUCH instruments: 1/10,000 of a dollar).
pub type Price = u64;
/// A quantity in integer lots.
pub type Qty = u32;

/// A client session (one logged-in SoupBinTCP user, or the single session of a
/// flow replay). Sessions own orders: only the owning session may cancel or
/// replace them.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct SessionId(pub u16);

/// The account an order trades for; self-trade prevention works per account.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct AccountId(pub u32);

/// An instrument's dense index in the engine's configuration.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct InstrumentId(pub u32);

/// The exchange-assigned order reference number. Assigned from a counter that
/// only grows, so an order id once used is never used again.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct OrderId(pub u64);

/// The number shared by both sides of one execution.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct MatchId(pub u64);

/// A client order token: up to 14 opaque bytes (OUCH 4.2's token is 14
/// alphanumeric characters), held as the low 112 bits of a `u128`. Tokens are
/// unique among a session's live orders.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct Token(u128);

impl Token {
    /// The number of bytes a token holds.
    pub const BYTES: usize = 14;
    const BITS: u32 = (Self::BYTES as u32) * 8;

    /// A token from an integer; `None` if it needs more than 112 bits.
    pub const fn new(value: u128) -> Option<Token> {
        if value >> Self::BITS == 0 {
            Some(Token(value))
        } else {
            None
        }
    }

    /// The token in the low 112 bits of an order key; the session bits above
    /// are dropped.
    #[inline]
    pub(crate) const fn from_key(key: u128) -> Token {
        Token(key & ((1u128 << Self::BITS) - 1))
    }

    /// A token from a `u64` (flow CSV order ids); always fits.
    pub const fn from_u64(value: u64) -> Token {
        Token(value as u128)
    }

    /// A token from 14 bytes, most significant first (OUCH's text token).
    pub const fn from_bytes(bytes: [u8; Self::BYTES]) -> Token {
        let mut value: u128 = 0;
        let mut index = 0;
        while index < Self::BYTES {
            value = (value << 8) | bytes[index] as u128;
            index += 1;
        }
        Token(value)
    }

    /// The 14 bytes of the token, most significant first.
    pub const fn to_bytes(self) -> [u8; Self::BYTES] {
        let mut bytes = [0u8; Self::BYTES];
        let mut index = 0;
        while index < Self::BYTES {
            bytes[index] = (self.0 >> (8 * (Self::BYTES - 1 - index))) as u8;
            index += 1;
        }
        bytes
    }

    /// The token as an integer.
    pub const fn value(self) -> u128 {
        self.0
    }

    /// The token as a `u64`, if it fits (tokens made by [`Token::from_u64`]).
    pub const fn to_u64(self) -> Option<u64> {
        if self.0 >> 64 == 0 {
            Some(self.0 as u64)
        } else {
            None
        }
    }
}

const _: () = assert!(
    Token::BITS + 16 == 128,
    "session and token must pack into one u128 key"
);

/// The side of an order.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[repr(u8)]
pub enum Side {
    Buy = 0,
    Sell = 1,
}

impl Side {
    /// The other side.
    #[inline]
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// The side as an array index (buy 0, sell 1).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// True if `price` is strictly better than `other` for a resting order on
    /// this side (higher for bids, lower for asks).
    #[inline]
    pub const fn is_better(self, price: Price, other: Price) -> bool {
        let flip = self.order_flip();
        (price ^ flip) > (other ^ flip)
    }

    /// True if an incoming order on this side with limit `limit` may trade
    /// against a resting order at `resting` price.
    #[inline]
    pub const fn crosses(self, limit: Price, resting: Price) -> bool {
        let flip = self.order_flip();
        (limit ^ flip) >= (resting ^ flip)
    }

    /// Zero for buy, all ones for sell. Inverting every bit of two prices
    /// reverses their order, so one comparison of prices xored with this
    /// serves both sides without a branch: the side of an order is as likely
    /// one as the other, so a branch on it would be mispredicted half the
    /// time.
    #[inline]
    const fn order_flip(self) -> u64 {
        (self as u64).wrapping_neg()
    }
}

/// Whether an order carries a limit price.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[repr(u8)]
pub enum OrderType {
    Limit = 0,
    /// Trades against the best opposite levels at any price; never rests.
    Market = 1,
}

/// How long an order may live.
#[derive(
    Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[repr(u8)]
pub enum TimeInForce {
    /// Good till canceled: the remainder rests.
    Gtc = 0,
    /// Immediate or cancel: the remainder is canceled.
    Ioc = 1,
    /// Fill or kill: all of the quantity now, or a reject with no fills.
    Fok = 2,
}

/// What happens when an incoming order would trade with a resting order of
/// the same account.
#[derive(
    Archive,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
)]
#[repr(u8)]
pub enum StpMode {
    /// Self-trades are allowed.
    #[default]
    Off = 0,
    /// The resting order is canceled and matching goes on.
    CancelResting = 1,
    /// The incoming order's remainder is canceled and matching stops.
    CancelIncoming = 2,
    /// Both the resting order and the incoming remainder are canceled.
    CancelBoth = 3,
}
