//! OUCH 4.2 messages: the three a client sends (Enter Order, Replace Order,
//! Cancel Order) and the six Lockstep sends back (System Event, Accepted,
//! Replaced, Canceled, Executed, Rejected), with typed decoders and encoders
//! into a caller's buffer.
//!
//! An OUCH message is the whole payload of one SoupBinTCP data packet, so a
//! decoder gets exactly one message and checks that its length is the one the
//! type requires: it never reads past the message and never panics. Every
//! enumerated byte is validated against the values the 4.2 specification lists
//! (as Wireshark's `ouch` dissector knows them); a bad one is a [`DecodeError`]
//! naming the field, which the gateway turns into an OUCH Rejected or a
//! disconnect. Integers are big-endian binary; alpha fields (order token,
//! stock, firm) are ASCII, left-justified and padded with spaces on the right.
//!
//! Replace Order (client) and Replaced (server) share the type byte 'U', so
//! decoding is per direction: [`Inbound::decode`] for what clients send,
//! [`Outbound::decode`] for what servers send.
//!
//! Which of these values Lockstep accepts and how they map onto its order
//! types (IOC, FOK, post-only, market) is the gateway's business and is
//! written down in `docs/protocol.md`; this module only checks that a message
//! is well formed.

use std::fmt;

/// Price with four implied decimals ($1.0000 = 10_000).
pub type Price = u32;

/// Time in force 0: immediate or cancel.
pub const TIF_IOC: u32 = 0;
/// Time in force 99998: until the end of market hours.
pub const TIF_MARKET_HOURS: u32 = 99_998;
/// Time in force 99999: until the end of system hours.
pub const TIF_SYSTEM_HOURS: u32 = 99_999;
/// $200,000.0000: the price Lockstep reads as "market" (see docs/protocol.md).
pub const MARKET_PRICE: Price = 2_000_000_000;

pub use crate::ascii_field::AsciiField;

/// Client-chosen order token, unique per session for the day.
pub type Token = AsciiField<14>;
/// Stock symbol.
pub type Stock = AsciiField<8>;
/// Firm identifier (MPID).
pub type Firm = AsciiField<4>;

/// Declares a one-byte ASCII enumeration with a checked `from_byte`.
macro_rules! ascii_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $b:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            /// Every value, in specification order.
            pub const ALL: &'static [Self] = &[$(Self::$v),+];

            pub const fn as_byte(self) -> u8 {
                match self { $(Self::$v => $b),+ }
            }

            pub const fn from_byte(b: u8) -> Option<Self> {
                match b { $($b => Some(Self::$v),)+ _ => None }
            }
        }
    };
}

ascii_enum!(
    /// Buy/sell indicator.
    Side {
        Buy = b'B',
        Sell = b'S',
        SellShort = b'T',
        SellShortExempt = b'E',
    }
);

ascii_enum!(
    /// Display instruction.
    Display {
        AttributablePriceToDisplay = b'A',
        ImbalanceOnly = b'I',
        PostOnlyAttributable = b'L',
        MidpointPeg = b'M',
        NonDisplay = b'N',
        RetailOrderType1 = b'O',
        PostOnly = b'P',
        RetailPriceImprovement = b'Q',
        RoundLotOnly = b'R',
        RetailOrderType2 = b'T',
        MidpointPegPostOnly = b'W',
        AnonymousPriceToComply = b'Y',
    }
);

ascii_enum!(
    /// Capacity.
    Capacity {
        Agency = b'A',
        Other = b'O',
        Principal = b'P',
        Riskless = b'R',
    }
);

ascii_enum!(
    /// Intermarket sweep eligibility.
    IntermarketSweep {
        Eligible = b'Y',
        NotEligible = b'N',
    }
);

ascii_enum!(
    /// Cross type.
    CrossType {
        NoCross = b'N',
        Opening = b'O',
        Closing = b'C',
        IntradayCross = b'I',
        HaltIpo = b'H',
        Retail = b'R',
        Supplemental = b'S',
    }
);

ascii_enum!(
    /// Customer type (Enter Order only).
    CustomerType {
        RetailDesignated = b'R',
        NotRetailDesignated = b'N',
        PortDefault = b' ',
    }
);

ascii_enum!(
    /// System event code.
    EventCode {
        StartOfDay = b'S',
        EndOfDay = b'E',
    }
);

ascii_enum!(
    /// Order state in Accepted and Replaced.
    OrderState {
        Live = b'L',
        Dead = b'D',
    }
);

ascii_enum!(
    /// BBO weight indicator (added in 4.2, last byte of Accepted and Replaced).
    BboWeight {
        Pct0To0_2 = b'0',
        Pct0_2To1 = b'1',
        Pct1To2 = b'2',
        Above2 = b'3',
        Unspecified = b' ',
        SetsQbboJoiningNbbo = b'S',
        ImprovesNbbo = b'N',
    }
);

ascii_enum!(
    /// Reason in Canceled.
    CancelReason {
        UserRequested = b'U',
        ImmediateOrCancel = b'I',
        Timeout = b'T',
        Supervisory = b'S',
        Regulatory = b'D',
        SelfMatchPrevention = b'Q',
        SystemCancel = b'Z',
    }
);

ascii_enum!(
    /// Liquidity flag in Executed.
    LiquidityFlag {
        Added = b'A',
        Removed = b'R',
        OpeningCrossBillable = b'O',
        OpeningCrossNonBillable = b'M',
        ClosingCrossBillable = b'C',
        ClosingCrossNonBillable = b'L',
        HaltIpoCrossBillable = b'H',
        HaltIpoCrossNonBillable = b'K',
        IntradayCross = b'I',
        NonDisplayedAdding = b'J',
        RemovedAtMidpoint = b'm',
        AddedViaMidpoint = b'k',
        Supplemental = b'0',
        DisplayedAddingImprovesNbbo = b'7',
        DisplayedAddingSetsQbbo = b'8',
        RetailRemoved = b'd',
        RetailAddedDisplayed = b'e',
        RetailAddedNonDisplayed = b'f',
        RpiProvides = b'j',
        RetailRemovesRpi = b'r',
        RetailRemovesNonDisplayed = b't',
        RemovingDesignatedSecurities = b'6',
    }
);

ascii_enum!(
    /// Reason in Rejected.
    RejectReason {
        TestMode = b'T',
        Halted = b'H',
        SharesExceedSafetyThreshold = b'Z',
        InvalidStock = b'S',
        InvalidDisplayType = b'D',
        Closed = b'C',
        FirmNotAuthorizedForClearingType = b'L',
        OutsideTimesForClearingType = b'M',
        NotAllowedInCrossType = b'R',
        InvalidPrice = b'X',
        InvalidMinimumQuantity = b'N',
        Other = b'O',
        RejectAllEnabled = b'a',
        EasyToBorrow = b'b',
        RestrictedSymbol = b'c',
        IsoRestriction = b'd',
        OddLotRestriction = b'e',
        MidpointRestriction = b'f',
        PreMarketRestriction = b'g',
        PostMarketRestriction = b'h',
        ShortSaleRestriction = b'i',
        OnOpenRestriction = b'j',
        OnCloseRestriction = b'k',
        TwoSidedQuoteReject = b'l',
        ExceededSharesLimit = b'm',
        ExceededDollarValueLimit = b'n',
    }
);

/// Message type bytes.
pub mod message_type {
    pub const ENTER_ORDER: u8 = b'O';
    pub const REPLACE_ORDER: u8 = b'U';
    pub const CANCEL_ORDER: u8 = b'X';
    pub const SYSTEM_EVENT: u8 = b'S';
    pub const ACCEPTED: u8 = b'A';
    pub const REPLACED: u8 = b'U';
    pub const CANCELED: u8 = b'C';
    pub const EXECUTED: u8 = b'E';
    pub const REJECTED: u8 = b'J';
}

/// Message lengths, type byte included (OUCH 4.2; Wireshark's `ouch`
/// dissector recognises exactly these).
pub mod message_len {
    pub const ENTER_ORDER: usize = 49;
    pub const REPLACE_ORDER: usize = 47;
    pub const CANCEL_ORDER: usize = 19;
    pub const SYSTEM_EVENT: usize = 10;
    pub const ACCEPTED: usize = 66;
    pub const REPLACED: usize = 80;
    pub const CANCELED: usize = 28;
    pub const EXECUTED: usize = 40;
    pub const REJECTED: usize = 24;
}

/// 'O' Enter Order (49 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnterOrder {
    pub token: Token,
    pub side: Side,
    pub shares: u32,
    pub stock: Stock,
    pub price: Price,
    pub time_in_force: u32,
    pub firm: Firm,
    pub display: Display,
    pub capacity: Capacity,
    pub intermarket_sweep: IntermarketSweep,
    pub minimum_quantity: u32,
    pub cross_type: CrossType,
    pub customer_type: CustomerType,
}

/// 'U' Replace Order (47 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaceOrder {
    pub existing_token: Token,
    pub replacement_token: Token,
    pub shares: u32,
    pub price: Price,
    pub time_in_force: u32,
    pub display: Display,
    pub intermarket_sweep: IntermarketSweep,
    pub minimum_quantity: u32,
}

/// 'X' Cancel Order (19 bytes). `shares` is the new intended order size:
/// 0 cancels the whole order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelOrder {
    pub token: Token,
    pub shares: u32,
}

/// 'S' System Event (10 bytes). Timestamps are nanoseconds since midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemEvent {
    pub timestamp: u64,
    pub event: EventCode,
}

/// 'A' Accepted (66 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub timestamp: u64,
    pub token: Token,
    pub side: Side,
    pub shares: u32,
    pub stock: Stock,
    pub price: Price,
    pub time_in_force: u32,
    pub firm: Firm,
    pub display: Display,
    pub order_reference_number: u64,
    pub capacity: Capacity,
    pub intermarket_sweep: IntermarketSweep,
    pub minimum_quantity: u32,
    pub cross_type: CrossType,
    pub order_state: OrderState,
    pub bbo_weight: BboWeight,
}

/// 'U' Replaced (80 bytes): the order as it stands after the replace, under
/// its new token; `previous_token` is the token it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    pub timestamp: u64,
    pub replacement_token: Token,
    pub side: Side,
    pub shares: u32,
    pub stock: Stock,
    pub price: Price,
    pub time_in_force: u32,
    pub firm: Firm,
    pub display: Display,
    pub order_reference_number: u64,
    pub capacity: Capacity,
    pub intermarket_sweep: IntermarketSweep,
    pub minimum_quantity: u32,
    pub cross_type: CrossType,
    pub order_state: OrderState,
    pub previous_token: Token,
    pub bbo_weight: BboWeight,
}

/// 'C' Canceled (28 bytes). `decrement_shares` is incremental, not cumulative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canceled {
    pub timestamp: u64,
    pub token: Token,
    pub decrement_shares: u32,
    pub reason: CancelReason,
}

/// 'E' Executed (40 bytes). Both sides of one trade carry the same match number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    pub timestamp: u64,
    pub token: Token,
    pub executed_shares: u32,
    pub execution_price: Price,
    pub liquidity_flag: LiquidityFlag,
    pub match_number: u64,
}

/// 'J' Rejected (24 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub timestamp: u64,
    pub token: Token,
    pub reason: RejectReason,
}

/// A message a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    EnterOrder(EnterOrder),
    ReplaceOrder(ReplaceOrder),
    CancelOrder(CancelOrder),
}

/// A message Lockstep sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    SystemEvent(SystemEvent),
    Accepted(Accepted),
    Replaced(Replaced),
    Canceled(Canceled),
    Executed(Executed),
    Rejected(Rejected),
}

/// A message the decoder refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// No bytes at all.
    Empty,
    /// A type byte this direction does not carry.
    UnknownType(u8),
    /// The message is not the length its type requires.
    BadLength {
        message_type: u8,
        len: usize,
        expected: usize,
    },
    /// An enumerated byte outside the specification's values.
    BadEnum { field: &'static str, value: u8 },
    /// An alpha field with a byte that is not printable ASCII.
    BadAlpha { field: &'static str },
}

impl DecodeError {
    /// The field a value error is about, for the gateway's reject reason.
    pub const fn field(&self) -> Option<&'static str> {
        match self {
            Self::BadEnum { field, .. } | Self::BadAlpha { field } => Some(field),
            _ => None,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty OUCH message"),
            Self::UnknownType(t) => write!(f, "unknown OUCH message type '{}'", t.escape_ascii()),
            Self::BadLength {
                message_type,
                len,
                expected,
            } => write!(
                f,
                "OUCH message '{}' has {len} bytes, expected {expected}",
                message_type.escape_ascii()
            ),
            Self::BadEnum { field, value } => {
                write!(
                    f,
                    "OUCH field {field}: invalid value '{}'",
                    value.escape_ascii()
                )
            }
            Self::BadAlpha { field } => write!(f, "OUCH field {field}: not printable ASCII"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The caller's buffer is shorter than the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall {
    pub needed: usize,
    pub available: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "buffer of {} bytes, OUCH message needs {}",
            self.available, self.needed
        )
    }
}

impl std::error::Error for BufferTooSmall {}

/// Sequential reader over a message whose length was checked up front, so
/// every read is in bounds; reads still go through `get` so that a layout bug
/// here could only yield zeros, never a panic on client input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(s) = self.buf.get(self.pos..self.pos + N) {
            out.copy_from_slice(s);
        }
        self.pos += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }
    fn alpha<const N: usize>(&mut self, field: &'static str) -> Result<AsciiField<N>, DecodeError> {
        let a = self.take::<N>();
        if a.iter().all(|c| (0x20..0x7f).contains(c)) {
            Ok(AsciiField(a))
        } else {
            Err(DecodeError::BadAlpha { field })
        }
    }
    fn en<T>(&mut self, field: &'static str, f: fn(u8) -> Option<T>) -> Result<T, DecodeError> {
        let b = self.u8();
        f(b).ok_or(DecodeError::BadEnum { field, value: b })
    }
}

/// Sequential writer into a slice already checked to be long enough.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        if let Some(d) = self.buf.get_mut(self.pos..self.pos + b.len()) {
            d.copy_from_slice(b);
        }
        self.pos += b.len();
    }
    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }
}

fn check_len(buf: &[u8], t: u8, expected: usize) -> Result<Reader<'_>, DecodeError> {
    if buf.len() != expected {
        return Err(DecodeError::BadLength {
            message_type: t,
            len: buf.len(),
            expected,
        });
    }
    // Skip the type byte: the caller dispatched on it.
    Ok(Reader { buf, pos: 1 })
}

fn write_checked(
    buf: &mut [u8],
    len: usize,
    f: impl FnOnce(&mut Writer<'_>),
) -> Result<usize, BufferTooSmall> {
    let Some(dst) = buf.get_mut(..len) else {
        return Err(BufferTooSmall {
            needed: len,
            available: buf.len(),
        });
    };
    let mut w = Writer { buf: dst, pos: 0 };
    f(&mut w);
    debug_assert_eq!(w.pos, len);
    Ok(len)
}

fn append(
    out: &mut Vec<u8>,
    len: usize,
    f: impl FnOnce(&mut [u8]) -> Result<usize, BufferTooSmall>,
) -> usize {
    let start = out.len();
    out.resize(start + len, 0);
    // The slice is exactly `len` long, so the writer cannot fail.
    f(&mut out[start..]).unwrap_or(0)
}

impl Inbound {
    /// Decodes one client message (the payload of one Unsequenced Data packet).
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        use message_len as l;
        use message_type as t;
        let &ty = buf.first().ok_or(DecodeError::Empty)?;
        match ty {
            t::ENTER_ORDER => {
                let mut r = check_len(buf, ty, l::ENTER_ORDER)?;
                Ok(Self::EnterOrder(EnterOrder {
                    token: r.alpha("order token")?,
                    side: r.en("buy/sell indicator", Side::from_byte)?,
                    shares: r.u32(),
                    stock: r.alpha("stock")?,
                    price: r.u32(),
                    time_in_force: r.u32(),
                    firm: r.alpha("firm")?,
                    display: r.en("display", Display::from_byte)?,
                    capacity: r.en("capacity", Capacity::from_byte)?,
                    intermarket_sweep: r
                        .en("intermarket sweep eligibility", IntermarketSweep::from_byte)?,
                    minimum_quantity: r.u32(),
                    cross_type: r.en("cross type", CrossType::from_byte)?,
                    customer_type: r.en("customer type", CustomerType::from_byte)?,
                }))
            }
            t::REPLACE_ORDER => {
                let mut r = check_len(buf, ty, l::REPLACE_ORDER)?;
                Ok(Self::ReplaceOrder(ReplaceOrder {
                    existing_token: r.alpha("existing order token")?,
                    replacement_token: r.alpha("replacement order token")?,
                    shares: r.u32(),
                    price: r.u32(),
                    time_in_force: r.u32(),
                    display: r.en("display", Display::from_byte)?,
                    intermarket_sweep: r
                        .en("intermarket sweep eligibility", IntermarketSweep::from_byte)?,
                    minimum_quantity: r.u32(),
                }))
            }
            t::CANCEL_ORDER => {
                let mut r = check_len(buf, ty, l::CANCEL_ORDER)?;
                Ok(Self::CancelOrder(CancelOrder {
                    token: r.alpha("order token")?,
                    shares: r.u32(),
                }))
            }
            other => Err(DecodeError::UnknownType(other)),
        }
    }

    pub const fn encoded_len(&self) -> usize {
        match self {
            Self::EnterOrder(_) => message_len::ENTER_ORDER,
            Self::ReplaceOrder(_) => message_len::REPLACE_ORDER,
            Self::CancelOrder(_) => message_len::CANCEL_ORDER,
        }
    }

    /// Writes the message at the start of `buf`; returns its length.
    pub fn encode_into(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        write_checked(buf, self.encoded_len(), |w| match self {
            Self::EnterOrder(m) => {
                w.u8(message_type::ENTER_ORDER);
                w.bytes(&m.token.0);
                w.u8(m.side.as_byte());
                w.u32(m.shares);
                w.bytes(&m.stock.0);
                w.u32(m.price);
                w.u32(m.time_in_force);
                w.bytes(&m.firm.0);
                w.u8(m.display.as_byte());
                w.u8(m.capacity.as_byte());
                w.u8(m.intermarket_sweep.as_byte());
                w.u32(m.minimum_quantity);
                w.u8(m.cross_type.as_byte());
                w.u8(m.customer_type.as_byte());
            }
            Self::ReplaceOrder(m) => {
                w.u8(message_type::REPLACE_ORDER);
                w.bytes(&m.existing_token.0);
                w.bytes(&m.replacement_token.0);
                w.u32(m.shares);
                w.u32(m.price);
                w.u32(m.time_in_force);
                w.u8(m.display.as_byte());
                w.u8(m.intermarket_sweep.as_byte());
                w.u32(m.minimum_quantity);
            }
            Self::CancelOrder(m) => {
                w.u8(message_type::CANCEL_ORDER);
                w.bytes(&m.token.0);
                w.u32(m.shares);
            }
        })
    }

    /// Appends the message to `out`; returns its length.
    pub fn encode(&self, out: &mut Vec<u8>) -> usize {
        append(out, self.encoded_len(), |b| self.encode_into(b))
    }
}

impl Outbound {
    /// Decodes one server message (the payload of one Sequenced Data packet).
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        use message_len as l;
        use message_type as t;
        let &ty = buf.first().ok_or(DecodeError::Empty)?;
        match ty {
            t::SYSTEM_EVENT => {
                let mut r = check_len(buf, ty, l::SYSTEM_EVENT)?;
                Ok(Self::SystemEvent(SystemEvent {
                    timestamp: r.u64(),
                    event: r.en("event code", EventCode::from_byte)?,
                }))
            }
            t::ACCEPTED => {
                let mut r = check_len(buf, ty, l::ACCEPTED)?;
                Ok(Self::Accepted(Accepted {
                    timestamp: r.u64(),
                    token: r.alpha("order token")?,
                    side: r.en("buy/sell indicator", Side::from_byte)?,
                    shares: r.u32(),
                    stock: r.alpha("stock")?,
                    price: r.u32(),
                    time_in_force: r.u32(),
                    firm: r.alpha("firm")?,
                    display: r.en("display", Display::from_byte)?,
                    order_reference_number: r.u64(),
                    capacity: r.en("capacity", Capacity::from_byte)?,
                    intermarket_sweep: r
                        .en("intermarket sweep eligibility", IntermarketSweep::from_byte)?,
                    minimum_quantity: r.u32(),
                    cross_type: r.en("cross type", CrossType::from_byte)?,
                    order_state: r.en("order state", OrderState::from_byte)?,
                    bbo_weight: r.en("BBO weight indicator", BboWeight::from_byte)?,
                }))
            }
            t::REPLACED => {
                let mut r = check_len(buf, ty, l::REPLACED)?;
                Ok(Self::Replaced(Replaced {
                    timestamp: r.u64(),
                    replacement_token: r.alpha("replacement order token")?,
                    side: r.en("buy/sell indicator", Side::from_byte)?,
                    shares: r.u32(),
                    stock: r.alpha("stock")?,
                    price: r.u32(),
                    time_in_force: r.u32(),
                    firm: r.alpha("firm")?,
                    display: r.en("display", Display::from_byte)?,
                    order_reference_number: r.u64(),
                    capacity: r.en("capacity", Capacity::from_byte)?,
                    intermarket_sweep: r
                        .en("intermarket sweep eligibility", IntermarketSweep::from_byte)?,
                    minimum_quantity: r.u32(),
                    cross_type: r.en("cross type", CrossType::from_byte)?,
                    order_state: r.en("order state", OrderState::from_byte)?,
                    previous_token: r.alpha("previous order token")?,
                    bbo_weight: r.en("BBO weight indicator", BboWeight::from_byte)?,
                }))
            }
            t::CANCELED => {
                let mut r = check_len(buf, ty, l::CANCELED)?;
                Ok(Self::Canceled(Canceled {
                    timestamp: r.u64(),
                    token: r.alpha("order token")?,
                    decrement_shares: r.u32(),
                    reason: r.en("cancel reason", CancelReason::from_byte)?,
                }))
            }
            t::EXECUTED => {
                let mut r = check_len(buf, ty, l::EXECUTED)?;
                Ok(Self::Executed(Executed {
                    timestamp: r.u64(),
                    token: r.alpha("order token")?,
                    executed_shares: r.u32(),
                    execution_price: r.u32(),
                    liquidity_flag: r.en("liquidity flag", LiquidityFlag::from_byte)?,
                    match_number: r.u64(),
                }))
            }
            t::REJECTED => {
                let mut r = check_len(buf, ty, l::REJECTED)?;
                Ok(Self::Rejected(Rejected {
                    timestamp: r.u64(),
                    token: r.alpha("order token")?,
                    reason: r.en("reject reason", RejectReason::from_byte)?,
                }))
            }
            other => Err(DecodeError::UnknownType(other)),
        }
    }

    pub const fn encoded_len(&self) -> usize {
        match self {
            Self::SystemEvent(_) => message_len::SYSTEM_EVENT,
            Self::Accepted(_) => message_len::ACCEPTED,
            Self::Replaced(_) => message_len::REPLACED,
            Self::Canceled(_) => message_len::CANCELED,
            Self::Executed(_) => message_len::EXECUTED,
            Self::Rejected(_) => message_len::REJECTED,
        }
    }

    /// Writes the message at the start of `buf`; returns its length.
    pub fn encode_into(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        write_checked(buf, self.encoded_len(), |w| match self {
            Self::SystemEvent(m) => {
                w.u8(message_type::SYSTEM_EVENT);
                w.u64(m.timestamp);
                w.u8(m.event.as_byte());
            }
            Self::Accepted(m) => {
                w.u8(message_type::ACCEPTED);
                w.u64(m.timestamp);
                w.bytes(&m.token.0);
                w.u8(m.side.as_byte());
                w.u32(m.shares);
                w.bytes(&m.stock.0);
                w.u32(m.price);
                w.u32(m.time_in_force);
                w.bytes(&m.firm.0);
                w.u8(m.display.as_byte());
                w.u64(m.order_reference_number);
                w.u8(m.capacity.as_byte());
                w.u8(m.intermarket_sweep.as_byte());
                w.u32(m.minimum_quantity);
                w.u8(m.cross_type.as_byte());
                w.u8(m.order_state.as_byte());
                w.u8(m.bbo_weight.as_byte());
            }
            Self::Replaced(m) => {
                w.u8(message_type::REPLACED);
                w.u64(m.timestamp);
                w.bytes(&m.replacement_token.0);
                w.u8(m.side.as_byte());
                w.u32(m.shares);
                w.bytes(&m.stock.0);
                w.u32(m.price);
                w.u32(m.time_in_force);
                w.bytes(&m.firm.0);
                w.u8(m.display.as_byte());
                w.u64(m.order_reference_number);
                w.u8(m.capacity.as_byte());
                w.u8(m.intermarket_sweep.as_byte());
                w.u32(m.minimum_quantity);
                w.u8(m.cross_type.as_byte());
                w.u8(m.order_state.as_byte());
                w.bytes(&m.previous_token.0);
                w.u8(m.bbo_weight.as_byte());
            }
            Self::Canceled(m) => {
                w.u8(message_type::CANCELED);
                w.u64(m.timestamp);
                w.bytes(&m.token.0);
                w.u32(m.decrement_shares);
                w.u8(m.reason.as_byte());
            }
            Self::Executed(m) => {
                w.u8(message_type::EXECUTED);
                w.u64(m.timestamp);
                w.bytes(&m.token.0);
                w.u32(m.executed_shares);
                w.u32(m.execution_price);
                w.u8(m.liquidity_flag.as_byte());
                w.u64(m.match_number);
            }
            Self::Rejected(m) => {
                w.u8(message_type::REJECTED);
                w.u64(m.timestamp);
                w.bytes(&m.token.0);
                w.u8(m.reason.as_byte());
            }
        })
    }

    /// Appends the message to `out`; returns its length.
    pub fn encode(&self, out: &mut Vec<u8>) -> usize {
        append(out, self.encoded_len(), |b| self.encode_into(b))
    }
}

#[cfg(test)]
mod tests;
