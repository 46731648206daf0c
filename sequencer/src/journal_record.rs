//! The journal's on-disk format: the file header and the fixed-size record
//! that holds one sequenced command. This module owns the byte layout (every
//! field at a fixed offset, little-endian), the CRC32C that guards each record
//! and the header, and the encoder and decoder. Decoding is total: any 64
//! bytes either decode to exactly the command that produced them or give a
//! [`RecordError`] naming what is wrong; nothing here panics on input. The
//! layout is written out in `docs/journal.md`, which must change together with
//! the constants below.

use core::fmt;
use lockstep_engine::{
    AccountId, CancelOrder, Command, CommandKind, InstrumentId, NewOrder, OrderType, RejectReason,
    ReplaceOrder, SessionId, Side, StpMode, TimeInForce, Token,
};

/// The size of one record. A power of two, so records never straddle a page
/// and a record's offset is a shift of its index.
pub const RECORD_SIZE_BYTES: usize = 64;
/// The size of the file header. It equals the record size so that every record
/// starts on a 64-byte boundary of the file.
pub const HEADER_SIZE_BYTES: usize = 64;
/// The first eight bytes of every journal file.
pub const JOURNAL_MAGIC: [u8; 8] = *b"LKJRNL01";
/// The format version this code writes and the only one it reads.
pub const FORMAT_VERSION: u16 = 1;

const _: () = assert!(RECORD_SIZE_BYTES.is_power_of_two());
const _: () = assert!(HEADER_SIZE_BYTES == RECORD_SIZE_BYTES);

/// Where the CRC32C sits in a record and in the header: the last four bytes,
/// covering every byte before it.
const CRC_OFFSET: usize = RECORD_SIZE_BYTES - 4;

// Record field offsets. They are shared between kinds where a field means the
// same thing (session, token, price, qty, account, instrument), so a hex dump
// reads the same way whatever the kind.
const SEQ_OFFSET: usize = 0;
const TIMESTAMP_OFFSET: usize = 8;
const KIND_OFFSET: usize = 16;
const SIDE_OFFSET: usize = 17;
const SESSION_OFFSET: usize = 18;
const TOKEN_OFFSET: usize = 20;
const PRICE_OFFSET: usize = 34;
const QTY_OFFSET: usize = 42;
const ACCOUNT_OFFSET: usize = 46;
/// A replace has no account or instrument, so its new token takes their place.
const NEW_TOKEN_OFFSET: usize = 46;
const INSTRUMENT_OFFSET: usize = 50;
const ORDER_TYPE_OFFSET: usize = 54;
const TIME_IN_FORCE_OFFSET: usize = 55;
const POST_ONLY_OFFSET: usize = 56;
const STP_MODE_OFFSET: usize = 57;
/// A new order's client tag (u16). Only a self-trade prevention setting uses
/// byte 57 otherwise, and it has no client tag.
const CLIENT_TAG_OFFSET: usize = 57;
/// A reject's command kind and reason bytes sit where a new order keeps its
/// order type and time in force: the record's small enum bytes.
const REJECT_COMMAND_OFFSET: usize = 54;
const REJECT_REASON_OFFSET: usize = 55;

const _: () = assert!(TOKEN_OFFSET + Token::BYTES == PRICE_OFFSET);
const _: () = assert!(QTY_OFFSET + 4 == ACCOUNT_OFFSET);
const _: () = assert!(NEW_TOKEN_OFFSET + Token::BYTES == CRC_OFFSET);
const _: () = assert!(INSTRUMENT_OFFSET + 4 == ORDER_TYPE_OFFSET);
const _: () = assert!(STP_MODE_OFFSET < CRC_OFFSET);
const _: () = assert!(POST_ONLY_OFFSET + 1 == CLIENT_TAG_OFFSET);
const _: () = assert!(CLIENT_TAG_OFFSET + 2 <= CRC_OFFSET);
const _: () = assert!(TOKEN_OFFSET + Token::BYTES <= REJECT_COMMAND_OFFSET);
const _: () = assert!(REJECT_COMMAND_OFFSET + 1 == REJECT_REASON_OFFSET);

// Kind bytes. Zero is deliberately not a kind, so a zeroed record can never
// decode even if its CRC happened to match.
const KIND_NEW: u8 = 1;
const KIND_CANCEL: u8 = 2;
const KIND_REPLACE: u8 = 3;
const KIND_HALT: u8 = 4;
const KIND_RESUME: u8 = 5;
const KIND_SET_STP: u8 = 6;
const KIND_CANCEL_ALL: u8 = 7;
const KIND_REJECT: u8 = 8;

// Header field offsets.
const HEADER_MAGIC_OFFSET: usize = 0;
const HEADER_VERSION_OFFSET: usize = 8;
const HEADER_RECORD_SIZE_OFFSET: usize = 10;
const HEADER_HEADER_SIZE_OFFSET: usize = 12;
const HEADER_FIRST_SEQ_OFFSET: usize = 16;
const HEADER_RESERVED_START: usize = 24;

/// One command as the sequencer ordered it: its gapless sequence number, the
/// sequencer's clock reading, and the command itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequencedCommand {
    /// The position in the total order; the first command of a journal is 1
    /// (or the journal header's `first_seq`).
    pub seq: u64,
    /// The sequencer's timestamp, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// What the engine is asked to do.
    pub command: Command,
}

/// What the journal header says about the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalHeader {
    /// The seq the first record must carry: 1 for a journal that starts the
    /// day, larger for one that continues after a snapshot.
    pub first_seq: u64,
}

/// Why 64 bytes are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Every byte is zero: space the file system allocated but never filled.
    AllZero,
    /// The stored CRC32C does not match the bytes before it.
    CrcMismatch {
        stored: u32,
        computed: u32,
    },
    /// The kind byte names no command.
    UnknownKind(u8),
    BadSide(u8),
    BadOrderType(u8),
    BadTimeInForce(u8),
    /// Post-only must be 0 or 1.
    BadPostOnly(u8),
    BadStpMode(u8),
    /// A reject's command kind byte names no command kind.
    BadCommandKind(u8),
    /// A reject's reason byte names no reject reason.
    BadRejectReason(u8),
    /// A byte this kind does not use is not zero.
    NonZeroPadding {
        offset_bytes: usize,
    },
}

impl RecordError {
    /// True if a crash in the middle of a write can produce this error: the
    /// record never reached the disk whole. Every other error has a valid CRC,
    /// so the bytes are exactly what some writer wrote, and no torn write
    /// explains them.
    pub fn may_be_torn_write(&self) -> bool {
        matches!(self, RecordError::AllZero | RecordError::CrcMismatch { .. })
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::AllZero => write!(f, "record is all zero bytes"),
            RecordError::CrcMismatch { stored, computed } => write!(
                f,
                "CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            RecordError::UnknownKind(kind) => write!(f, "unknown command kind byte {kind}"),
            RecordError::BadSide(value) => write!(f, "invalid side byte {value}"),
            RecordError::BadOrderType(value) => write!(f, "invalid order type byte {value}"),
            RecordError::BadTimeInForce(value) => {
                write!(f, "invalid time-in-force byte {value}")
            }
            RecordError::BadPostOnly(value) => write!(f, "invalid post-only byte {value}"),
            RecordError::BadStpMode(value) => {
                write!(f, "invalid self-trade prevention mode byte {value}")
            }
            RecordError::BadCommandKind(value) => {
                write!(f, "invalid rejected command kind byte {value}")
            }
            RecordError::BadRejectReason(value) => write!(f, "invalid reject reason byte {value}"),
            RecordError::NonZeroPadding { offset_bytes } => write!(
                f,
                "non-zero byte at record offset {offset_bytes}, which this command kind does not use"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// Why 64 bytes are not a valid journal header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The file is not empty but shorter than a header.
    TooShort {
        len_bytes: u64,
    },
    /// The file does not start with [`JOURNAL_MAGIC`]: it is not a journal.
    BadMagic {
        found: [u8; 8],
    },
    UnsupportedVersion {
        found: u16,
    },
    RecordSize {
        found: u16,
    },
    HeaderSize {
        found: u16,
    },
    CrcMismatch {
        stored: u32,
        computed: u32,
    },
    NonZeroReserved {
        offset_bytes: usize,
    },
    /// Seq numbers start at 1; zero is not a valid first seq.
    FirstSeqZero,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooShort { len_bytes } => write!(
                f,
                "file is {len_bytes} bytes, shorter than the {HEADER_SIZE_BYTES}-byte header, and does not start like a journal"
            ),
            HeaderError::BadMagic { found } => write!(
                f,
                "not a Lockstep journal: magic is \"{}\", expected \"{}\"",
                found.escape_ascii(),
                JOURNAL_MAGIC.escape_ascii()
            ),
            HeaderError::UnsupportedVersion { found } => write!(
                f,
                "unsupported journal format version {found} (this build reads version {FORMAT_VERSION})"
            ),
            HeaderError::RecordSize { found } => write!(
                f,
                "header says records are {found} bytes, this build uses {RECORD_SIZE_BYTES}"
            ),
            HeaderError::HeaderSize { found } => write!(
                f,
                "header says the header is {found} bytes, this build uses {HEADER_SIZE_BYTES}"
            ),
            HeaderError::CrcMismatch { stored, computed } => write!(
                f,
                "header CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            HeaderError::NonZeroReserved { offset_bytes } => {
                write!(f, "reserved header byte at offset {offset_bytes} is not zero")
            }
            HeaderError::FirstSeqZero => write!(f, "header's first seq is 0; seqs start at 1"),
        }
    }
}

impl std::error::Error for HeaderError {}

fn put_u16(out: &mut [u8; RECORD_SIZE_BYTES], offset: usize, value: u16) {
    out[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(out: &mut [u8; RECORD_SIZE_BYTES], offset: usize, value: u32) {
    out[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut [u8; RECORD_SIZE_BYTES], offset: usize, value: u64) {
    out[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

fn put_token(out: &mut [u8; RECORD_SIZE_BYTES], offset: usize, token: Token) {
    out[offset..offset + Token::BYTES].copy_from_slice(&token.to_bytes());
}

fn get_u16(bytes: &[u8; RECORD_SIZE_BYTES], offset: usize) -> u16 {
    let mut field = [0u8; 2];
    field.copy_from_slice(&bytes[offset..offset + 2]);
    u16::from_le_bytes(field)
}

fn get_u32(bytes: &[u8; RECORD_SIZE_BYTES], offset: usize) -> u32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(field)
}

fn get_u64(bytes: &[u8; RECORD_SIZE_BYTES], offset: usize) -> u64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(field)
}

fn get_token(bytes: &[u8; RECORD_SIZE_BYTES], offset: usize) -> Token {
    let mut field = [0u8; Token::BYTES];
    field.copy_from_slice(&bytes[offset..offset + Token::BYTES]);
    Token::from_bytes(field)
}

/// Writes every field of `record` at its offset and zeroes everything else,
/// leaving the CRC bytes zero as well.
fn encode_body(record: &SequencedCommand, out: &mut [u8; RECORD_SIZE_BYTES]) {
    *out = [0u8; RECORD_SIZE_BYTES];
    put_u64(out, SEQ_OFFSET, record.seq);
    put_u64(out, TIMESTAMP_OFFSET, record.timestamp_ns);
    match record.command {
        Command::New(order) => {
            out[KIND_OFFSET] = KIND_NEW;
            out[SIDE_OFFSET] = order.side as u8;
            put_u16(out, SESSION_OFFSET, order.session.0);
            put_token(out, TOKEN_OFFSET, order.token);
            put_u64(out, PRICE_OFFSET, order.price);
            put_u32(out, QTY_OFFSET, order.qty);
            put_u32(out, ACCOUNT_OFFSET, order.account.0);
            put_u32(out, INSTRUMENT_OFFSET, order.instrument.0);
            out[ORDER_TYPE_OFFSET] = order.order_type as u8;
            out[TIME_IN_FORCE_OFFSET] = order.time_in_force as u8;
            out[POST_ONLY_OFFSET] = u8::from(order.post_only);
            put_u16(out, CLIENT_TAG_OFFSET, order.client_tag);
        }
        Command::Cancel(cancel) => {
            out[KIND_OFFSET] = KIND_CANCEL;
            put_u16(out, SESSION_OFFSET, cancel.session.0);
            put_token(out, TOKEN_OFFSET, cancel.token);
            put_u32(out, QTY_OFFSET, cancel.qty_after);
        }
        Command::Replace(replace) => {
            out[KIND_OFFSET] = KIND_REPLACE;
            put_u16(out, SESSION_OFFSET, replace.session.0);
            put_token(out, TOKEN_OFFSET, replace.token);
            put_u64(out, PRICE_OFFSET, replace.price);
            put_u32(out, QTY_OFFSET, replace.qty);
            put_token(out, NEW_TOKEN_OFFSET, replace.new_token);
        }
        Command::Halt { instrument } => {
            out[KIND_OFFSET] = KIND_HALT;
            put_u32(out, INSTRUMENT_OFFSET, instrument.0);
        }
        Command::Resume { instrument } => {
            out[KIND_OFFSET] = KIND_RESUME;
            put_u32(out, INSTRUMENT_OFFSET, instrument.0);
        }
        Command::SetSelfTradePrevention { account, mode } => {
            out[KIND_OFFSET] = KIND_SET_STP;
            put_u32(out, ACCOUNT_OFFSET, account.0);
            out[STP_MODE_OFFSET] = mode as u8;
        }
        Command::CancelAllForSession { session } => {
            out[KIND_OFFSET] = KIND_CANCEL_ALL;
            put_u16(out, SESSION_OFFSET, session.0);
        }
        Command::Reject {
            session,
            token,
            command,
            reason,
        } => {
            out[KIND_OFFSET] = KIND_REJECT;
            put_u16(out, SESSION_OFFSET, session.0);
            put_token(out, TOKEN_OFFSET, token);
            out[REJECT_COMMAND_OFFSET] = command as u8;
            out[REJECT_REASON_OFFSET] = reason as u8;
        }
    }
}

/// The CRC32C of everything before the CRC field.
fn body_crc(bytes: &[u8; RECORD_SIZE_BYTES]) -> u32 {
    crc32c::crc32c(&bytes[..CRC_OFFSET])
}

/// Encodes `record` into `out`, CRC included. This is the hot-path form: the
/// journal encodes straight into its preallocated batch buffer.
pub fn encode_record_into(record: &SequencedCommand, out: &mut [u8; RECORD_SIZE_BYTES]) {
    encode_body(record, out);
    let crc = body_crc(out);
    put_u32(out, CRC_OFFSET, crc);
}

/// Encodes `record` into a new 64-byte array, CRC included.
pub fn encode_record(record: &SequencedCommand) -> [u8; RECORD_SIZE_BYTES] {
    let mut out = [0u8; RECORD_SIZE_BYTES];
    encode_record_into(record, &mut out);
    out
}

fn decode_side(value: u8) -> Result<Side, RecordError> {
    match value {
        0 => Ok(Side::Buy),
        1 => Ok(Side::Sell),
        _ => Err(RecordError::BadSide(value)),
    }
}

fn decode_order_type(value: u8) -> Result<OrderType, RecordError> {
    match value {
        0 => Ok(OrderType::Limit),
        1 => Ok(OrderType::Market),
        _ => Err(RecordError::BadOrderType(value)),
    }
}

fn decode_time_in_force(value: u8) -> Result<TimeInForce, RecordError> {
    match value {
        0 => Ok(TimeInForce::Gtc),
        1 => Ok(TimeInForce::Ioc),
        2 => Ok(TimeInForce::Fok),
        _ => Err(RecordError::BadTimeInForce(value)),
    }
}

fn decode_post_only(value: u8) -> Result<bool, RecordError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(RecordError::BadPostOnly(value)),
    }
}

fn decode_stp_mode(value: u8) -> Result<StpMode, RecordError> {
    match value {
        0 => Ok(StpMode::Off),
        1 => Ok(StpMode::CancelResting),
        2 => Ok(StpMode::CancelIncoming),
        3 => Ok(StpMode::CancelBoth),
        _ => Err(RecordError::BadStpMode(value)),
    }
}

fn decode_command_kind(value: u8) -> Result<CommandKind, RecordError> {
    CommandKind::from_code(value).ok_or(RecordError::BadCommandKind(value))
}

fn decode_reject_reason(value: u8) -> Result<RejectReason, RecordError> {
    RejectReason::from_code(value).ok_or(RecordError::BadRejectReason(value))
}

fn decode_command(bytes: &[u8; RECORD_SIZE_BYTES]) -> Result<Command, RecordError> {
    let session = SessionId(get_u16(bytes, SESSION_OFFSET));
    let token = get_token(bytes, TOKEN_OFFSET);
    match bytes[KIND_OFFSET] {
        KIND_NEW => Ok(Command::New(NewOrder {
            session,
            account: AccountId(get_u32(bytes, ACCOUNT_OFFSET)),
            token,
            instrument: InstrumentId(get_u32(bytes, INSTRUMENT_OFFSET)),
            side: decode_side(bytes[SIDE_OFFSET])?,
            order_type: decode_order_type(bytes[ORDER_TYPE_OFFSET])?,
            price: get_u64(bytes, PRICE_OFFSET),
            qty: get_u32(bytes, QTY_OFFSET),
            time_in_force: decode_time_in_force(bytes[TIME_IN_FORCE_OFFSET])?,
            post_only: decode_post_only(bytes[POST_ONLY_OFFSET])?,
            client_tag: get_u16(bytes, CLIENT_TAG_OFFSET),
        })),
        KIND_CANCEL => Ok(Command::Cancel(CancelOrder {
            session,
            token,
            qty_after: get_u32(bytes, QTY_OFFSET),
        })),
        KIND_REPLACE => Ok(Command::Replace(ReplaceOrder {
            session,
            token,
            new_token: get_token(bytes, NEW_TOKEN_OFFSET),
            price: get_u64(bytes, PRICE_OFFSET),
            qty: get_u32(bytes, QTY_OFFSET),
        })),
        KIND_HALT => Ok(Command::Halt {
            instrument: InstrumentId(get_u32(bytes, INSTRUMENT_OFFSET)),
        }),
        KIND_RESUME => Ok(Command::Resume {
            instrument: InstrumentId(get_u32(bytes, INSTRUMENT_OFFSET)),
        }),
        KIND_SET_STP => Ok(Command::SetSelfTradePrevention {
            account: AccountId(get_u32(bytes, ACCOUNT_OFFSET)),
            mode: decode_stp_mode(bytes[STP_MODE_OFFSET])?,
        }),
        KIND_CANCEL_ALL => Ok(Command::CancelAllForSession { session }),
        KIND_REJECT => Ok(Command::Reject {
            session,
            token,
            command: decode_command_kind(bytes[REJECT_COMMAND_OFFSET])?,
            reason: decode_reject_reason(bytes[REJECT_REASON_OFFSET])?,
        }),
        kind => Err(RecordError::UnknownKind(kind)),
    }
}

/// Decodes one record, checking in this order: not all zero, the CRC, every
/// enum byte, and that every byte the kind does not use is zero. The padding
/// check re-encodes the decoded command and compares: every field round-trips
/// exactly, so the first difference can only be a stray padding byte, and the
/// encoding stays canonical (one command, one byte pattern).
pub fn decode_record(bytes: &[u8; RECORD_SIZE_BYTES]) -> Result<SequencedCommand, RecordError> {
    if bytes.iter().all(|&byte| byte == 0) {
        return Err(RecordError::AllZero);
    }
    let stored = get_u32(bytes, CRC_OFFSET);
    let computed = body_crc(bytes);
    if stored != computed {
        return Err(RecordError::CrcMismatch { stored, computed });
    }
    let record = SequencedCommand {
        seq: get_u64(bytes, SEQ_OFFSET),
        timestamp_ns: get_u64(bytes, TIMESTAMP_OFFSET),
        command: decode_command(bytes)?,
    };
    let mut canonical = [0u8; RECORD_SIZE_BYTES];
    encode_body(&record, &mut canonical);
    if let Some(offset_bytes) = (0..CRC_OFFSET).find(|&index| canonical[index] != bytes[index]) {
        return Err(RecordError::NonZeroPadding { offset_bytes });
    }
    Ok(record)
}

/// Encodes the file header.
pub fn encode_header(header: &JournalHeader) -> [u8; HEADER_SIZE_BYTES] {
    let mut out = [0u8; HEADER_SIZE_BYTES];
    out[HEADER_MAGIC_OFFSET..HEADER_MAGIC_OFFSET + 8].copy_from_slice(&JOURNAL_MAGIC);
    put_u16(&mut out, HEADER_VERSION_OFFSET, FORMAT_VERSION);
    // Both sizes are small compile-time constants, so the casts are exact.
    put_u16(
        &mut out,
        HEADER_RECORD_SIZE_OFFSET,
        RECORD_SIZE_BYTES as u16,
    );
    put_u16(
        &mut out,
        HEADER_HEADER_SIZE_OFFSET,
        HEADER_SIZE_BYTES as u16,
    );
    put_u64(&mut out, HEADER_FIRST_SEQ_OFFSET, header.first_seq);
    let crc = body_crc(&out);
    put_u32(&mut out, CRC_OFFSET, crc);
    out
}

/// Decodes the file header. The magic and version are checked before the CRC
/// so that a file of another kind, or of a later format whose CRC may cover
/// different bytes, is named as such rather than as corruption.
pub fn decode_header(bytes: &[u8; HEADER_SIZE_BYTES]) -> Result<JournalHeader, HeaderError> {
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&bytes[HEADER_MAGIC_OFFSET..HEADER_MAGIC_OFFSET + 8]);
    if magic != JOURNAL_MAGIC {
        return Err(HeaderError::BadMagic { found: magic });
    }
    let version = get_u16(bytes, HEADER_VERSION_OFFSET);
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion { found: version });
    }
    let record_size = get_u16(bytes, HEADER_RECORD_SIZE_OFFSET);
    if usize::from(record_size) != RECORD_SIZE_BYTES {
        return Err(HeaderError::RecordSize { found: record_size });
    }
    let header_size = get_u16(bytes, HEADER_HEADER_SIZE_OFFSET);
    if usize::from(header_size) != HEADER_SIZE_BYTES {
        return Err(HeaderError::HeaderSize { found: header_size });
    }
    let stored = get_u32(bytes, CRC_OFFSET);
    let computed = body_crc(bytes);
    if stored != computed {
        return Err(HeaderError::CrcMismatch { stored, computed });
    }
    let reserved = (HEADER_HEADER_SIZE_OFFSET + 2..HEADER_FIRST_SEQ_OFFSET)
        .chain(HEADER_RESERVED_START..CRC_OFFSET);
    for offset_bytes in reserved {
        if bytes[offset_bytes] != 0 {
            return Err(HeaderError::NonZeroReserved { offset_bytes });
        }
    }
    let first_seq = get_u64(bytes, HEADER_FIRST_SEQ_OFFSET);
    if first_seq == 0 {
        return Err(HeaderError::FirstSeqZero);
    }
    Ok(JournalHeader { first_seq })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = Token> {
        any::<[u8; Token::BYTES]>().prop_map(Token::from_bytes)
    }

    fn side() -> impl Strategy<Value = Side> {
        prop_oneof![Just(Side::Buy), Just(Side::Sell)]
    }

    fn order_type() -> impl Strategy<Value = OrderType> {
        prop_oneof![Just(OrderType::Limit), Just(OrderType::Market)]
    }

    fn time_in_force() -> impl Strategy<Value = TimeInForce> {
        prop_oneof![
            Just(TimeInForce::Gtc),
            Just(TimeInForce::Ioc),
            Just(TimeInForce::Fok)
        ]
    }

    fn stp_mode() -> impl Strategy<Value = StpMode> {
        prop_oneof![
            Just(StpMode::Off),
            Just(StpMode::CancelResting),
            Just(StpMode::CancelIncoming),
            Just(StpMode::CancelBoth)
        ]
    }

    fn new_order() -> impl Strategy<Value = Command> {
        (
            any::<u16>(),
            any::<u32>(),
            token(),
            any::<u32>(),
            side(),
            order_type(),
            any::<u64>(),
            any::<u32>(),
            time_in_force(),
            any::<bool>(),
            any::<u16>(),
        )
            .prop_map(
                |(
                    session,
                    account,
                    token,
                    instrument,
                    side,
                    order_type,
                    price,
                    qty,
                    time_in_force,
                    post_only,
                    client_tag,
                )| {
                    Command::New(NewOrder {
                        session: SessionId(session),
                        account: AccountId(account),
                        token,
                        instrument: InstrumentId(instrument),
                        side,
                        order_type,
                        price,
                        qty,
                        time_in_force,
                        post_only,
                        client_tag,
                    })
                },
            )
    }

    fn command_kind() -> impl Strategy<Value = CommandKind> {
        prop::sample::select(CommandKind::ALL.to_vec())
    }

    fn reject_reason() -> impl Strategy<Value = RejectReason> {
        prop::sample::select(RejectReason::ALL.to_vec())
    }

    fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            new_order(),
            (any::<u16>(), token(), any::<u32>()).prop_map(|(session, token, qty_after)| {
                Command::Cancel(CancelOrder {
                    session: SessionId(session),
                    token,
                    qty_after,
                })
            }),
            (any::<u16>(), token(), token(), any::<u64>(), any::<u32>()).prop_map(
                |(session, token, new_token, price, qty)| Command::Replace(ReplaceOrder {
                    session: SessionId(session),
                    token,
                    new_token,
                    price,
                    qty,
                })
            ),
            any::<u32>().prop_map(|id| Command::Halt {
                instrument: InstrumentId(id)
            }),
            any::<u32>().prop_map(|id| Command::Resume {
                instrument: InstrumentId(id)
            }),
            (any::<u32>(), stp_mode()).prop_map(|(account, mode)| {
                Command::SetSelfTradePrevention {
                    account: AccountId(account),
                    mode,
                }
            }),
            any::<u16>().prop_map(|session| Command::CancelAllForSession {
                session: SessionId(session)
            }),
            (any::<u16>(), token(), command_kind(), reject_reason()).prop_map(
                |(session, token, command, reason)| Command::Reject {
                    session: SessionId(session),
                    token,
                    command,
                    reason,
                }
            ),
        ]
    }

    fn sequenced() -> impl Strategy<Value = SequencedCommand> {
        (any::<u64>(), any::<u64>(), command()).prop_map(|(seq, timestamp_ns, command)| {
            SequencedCommand {
                seq,
                timestamp_ns,
                command,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn every_command_round_trips(record in sequenced()) {
            let bytes = encode_record(&record);
            prop_assert_eq!(decode_record(&bytes), Ok(record));
        }

        #[test]
        fn random_bytes_never_panic_and_decode_only_canonically(bytes in any::<[u8; RECORD_SIZE_BYTES]>()) {
            if let Ok(record) = decode_record(&bytes) {
                prop_assert_eq!(encode_record(&record), bytes);
            }
        }

        #[test]
        fn random_bytes_with_a_valid_crc_never_panic(mut bytes in any::<[u8; RECORD_SIZE_BYTES]>(), kind in 0u8..10) {
            // Random bytes almost never carry a matching CRC, so this case
            // fixes the CRC up to reach the field and padding checks.
            bytes[KIND_OFFSET] = kind;
            let crc = body_crc(&bytes);
            bytes[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
            if let Ok(record) = decode_record(&bytes) {
                prop_assert_eq!(encode_record(&record), bytes);
            }
        }

        #[test]
        fn any_single_bit_flip_is_detected(record in sequenced(), bit in 0usize..RECORD_SIZE_BYTES * 8) {
            let mut bytes = encode_record(&record);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode_record(&bytes).is_err());
        }

        #[test]
        fn random_headers_never_panic(bytes in any::<[u8; HEADER_SIZE_BYTES]>()) {
            let _ = decode_header(&bytes);
        }
    }

    #[test]
    fn zeroed_record_is_reported_as_all_zero() {
        assert_eq!(
            decode_record(&[0u8; RECORD_SIZE_BYTES]),
            Err(RecordError::AllZero)
        );
    }

    #[test]
    fn padding_byte_with_valid_crc_is_rejected() {
        let record = SequencedCommand {
            seq: 7,
            timestamp_ns: 99,
            command: Command::Halt {
                instrument: InstrumentId(3),
            },
        };
        let mut bytes = encode_record(&record);
        bytes[TOKEN_OFFSET] = 1;
        let crc = body_crc(&bytes);
        bytes[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_record(&bytes),
            Err(RecordError::NonZeroPadding {
                offset_bytes: TOKEN_OFFSET
            })
        );
    }

    /// Re-encodes `bytes` with a fixed-up CRC, so that decoding reaches the
    /// field checks.
    fn with_crc(mut bytes: [u8; RECORD_SIZE_BYTES]) -> [u8; RECORD_SIZE_BYTES] {
        let crc = body_crc(&bytes);
        bytes[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn reject_records_with_unknown_kind_or_reason_bytes_are_errors() {
        let record = SequencedCommand {
            seq: 3,
            timestamp_ns: 5,
            command: Command::Reject {
                session: SessionId(2),
                token: Token::from_u64(77),
                command: CommandKind::Cancel,
                reason: RejectReason::MessageRateExceeded,
            },
        };
        let bytes = encode_record(&record);
        assert_eq!(bytes[REJECT_COMMAND_OFFSET], 1);
        assert_eq!(bytes[REJECT_REASON_OFFSET], 26);
        assert_eq!(decode_record(&bytes), Ok(record));
        for (offset, value, error) in [
            (REJECT_COMMAND_OFFSET, 7, RecordError::BadCommandKind(7)),
            (REJECT_COMMAND_OFFSET, 255, RecordError::BadCommandKind(255)),
            (REJECT_REASON_OFFSET, 0, RecordError::BadRejectReason(0)),
            (REJECT_REASON_OFFSET, 31, RecordError::BadRejectReason(31)),
        ] {
            let mut damaged = bytes;
            damaged[offset] = value;
            assert_eq!(decode_record(&with_crc(damaged)), Err(error));
        }
    }

    #[test]
    fn new_fields_sit_at_their_documented_offsets() {
        let new = encode_record(&SequencedCommand {
            seq: 1,
            timestamp_ns: 1,
            command: Command::New(NewOrder {
                session: SessionId(1),
                account: AccountId(2),
                token: Token::from_u64(3),
                instrument: InstrumentId(4),
                side: Side::Sell,
                order_type: OrderType::Limit,
                price: 5,
                qty: 6,
                time_in_force: TimeInForce::Gtc,
                post_only: true,
                client_tag: 0xbeef,
            }),
        });
        assert_eq!(new[57..59], [0xef, 0xbe]);
        assert_eq!(new[59], 0);
        let cancel = encode_record(&SequencedCommand {
            seq: 2,
            timestamp_ns: 1,
            command: Command::Cancel(CancelOrder {
                session: SessionId(1),
                token: Token::from_u64(3),
                qty_after: 0x0102_0304,
            }),
        });
        assert_eq!(cancel[QTY_OFFSET..QTY_OFFSET + 4], [4, 3, 2, 1]);
        let cancel_all = encode_record(&SequencedCommand {
            seq: 3,
            timestamp_ns: 1,
            command: Command::CancelAllForSession {
                session: SessionId(0x0102),
            },
        });
        assert_eq!(cancel_all[KIND_OFFSET], 7);
        assert_eq!(cancel_all[SESSION_OFFSET..SESSION_OFFSET + 2], [2, 1]);
        assert!(cancel_all[SESSION_OFFSET + 2..CRC_OFFSET]
            .iter()
            .all(|&byte| byte == 0));
        // A cancel-all carries nothing but its session.
        let mut stray = cancel_all;
        stray[TOKEN_OFFSET] = 1;
        assert_eq!(
            decode_record(&with_crc(stray)),
            Err(RecordError::NonZeroPadding {
                offset_bytes: TOKEN_OFFSET
            })
        );
    }

    #[test]
    fn header_round_trips_and_rejects_other_files() {
        let header = JournalHeader { first_seq: 42 };
        assert_eq!(decode_header(&encode_header(&header)), Ok(header));
        let mut bytes = encode_header(&header);
        bytes[..8].copy_from_slice(b"NOTAJRNL");
        assert!(matches!(
            decode_header(&bytes),
            Err(HeaderError::BadMagic { .. })
        ));
        let mut bytes = encode_header(&header);
        bytes[HEADER_FIRST_SEQ_OFFSET] ^= 1;
        assert!(matches!(
            decode_header(&bytes),
            Err(HeaderError::CrcMismatch { .. })
        ));
    }
}
