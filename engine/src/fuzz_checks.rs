//! The property the fuzz target in `engine/fuzz/` checks, in one place, so
//! that `cargo fuzz run` and the stable test `tests/fuzz_corpus.rs` (which
//! replays every saved corpus file) check exactly the same thing. The check
//! takes arbitrary bytes and panics when the property fails; a panic is a
//! finding.
//!
//! [`engine_vs_reference`]: the bytes are decoded ([`decode`]) into an
//! engine configuration and a bounded list of abstract operations
//! ([`reference_model::Op`]) over small domains (two instruments with
//! narrow bands, three sessions and a missing one, 16 or 64 tokens, a few
//! accounts), so that orders cross, rest, fill partly, get canceled in part
//! or whole, replaced, canceled with their session, rejected, stopped by
//! self-trade prevention and halted. Every operation runs through the real
//! [`Engine`](crate::Engine) and through the reference model, and
//! [`reference_model::run`] compares every event, the engine's invariants,
//! the books and quantity conservation after every command.
//!
//! [`encode`] writes the bytes that decode to given operations, for seeds
//! and regression tests.

#![doc(hidden)]

use crate::reference_model::{self, instruments, token_instrument, Op, PriceSpec, QtySpec, Target};
use crate::{CommandKind, EngineConfig, RejectReason, Side, StpMode, TimeInForce};

/// Operations of one input at most; the rest is ignored, so a run's work is
/// bounded whatever the input's length.
pub const OPS_MAX: usize = 1024;

/// `orders_max` by the low nibble of the first byte: usually roomy,
/// sometimes tight enough that the order table fills.
const ORDERS_MAX: [u32; 16] = [64, 64, 64, 64, 64, 64, 64, 64, 256, 256, 2, 3, 4, 5, 6, 8];
/// `levels_max` by the high nibble of the first byte.
const LEVELS_MAX: [u32; 16] = [64, 64, 64, 64, 64, 64, 64, 64, 256, 256, 2, 3, 4, 5, 6, 3];

const TIME_IN_FORCE: [TimeInForce; 4] = [
    TimeInForce::Gtc,
    TimeInForce::Ioc,
    TimeInForce::Fok,
    TimeInForce::Gtc,
];
const STP_MODES: [StpMode; 4] = [
    StpMode::Off,
    StpMode::CancelResting,
    StpMode::CancelIncoming,
    StpMode::CancelBoth,
];

/// The engine configuration and token domain of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuzzConfig {
    pub orders_max: u32,
    pub levels_max: u32,
    /// 2 or 3 (account 3 never exists, so it is always a reject).
    pub accounts_max: u32,
    /// Wide bands (prices far apart, sparse levels) instead of narrow ones.
    pub wide: bool,
    /// Tokens per session: 16 or 64.
    pub tokens: u64,
}

impl FuzzConfig {
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            instruments: instruments(self.wide),
            instruments_max: 2,
            orders_max: self.orders_max,
            levels_max: self.levels_max,
            sessions_max: 3,
            accounts_max: self.accounts_max,
        }
    }

    fn decode(first: u8, second: u8) -> FuzzConfig {
        FuzzConfig {
            orders_max: ORDERS_MAX[usize::from(first & 15)],
            levels_max: LEVELS_MAX[usize::from(first >> 4)],
            accounts_max: if second & 1 == 1 { 3 } else { 2 },
            wide: second & 2 == 2,
            tokens: if second & 4 == 4 { 64 } else { 16 },
        }
    }

    /// The two bytes that decode to this configuration. Panics if it is
    /// not one [`decode`] can give.
    fn encode(&self) -> [u8; 2] {
        let index = |table: &[u32; 16], value: u32| {
            table
                .iter()
                .position(|&entry| entry == value)
                .unwrap_or_else(|| panic!("{value} is not in {table:?}")) as u8
        };
        assert!(
            matches!(self.accounts_max, 2 | 3) && matches!(self.tokens, 16 | 64),
            "{self:?} cannot be encoded"
        );
        [
            index(&ORDERS_MAX, self.orders_max) | index(&LEVELS_MAX, self.levels_max) << 4,
            u8::from(self.accounts_max == 3)
                | u8::from(self.wide) << 1
                | u8::from(self.tokens == 64) << 2,
        ]
    }
}

/// Reads bytes; past the end every byte is zero.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let byte = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        byte
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn more(&self) -> bool {
        self.at < self.data.len()
    }
}

fn side_of(bit: bool) -> Side {
    if bit {
        Side::Sell
    } else {
        Side::Buy
    }
}

/// Tick offsets are kept small (-4 to 11 from the middle, -8 to 7 from the
/// opposite best), so that most prices are in band and orders meet.
fn decode_price(reader: &mut Reader<'_>) -> PriceSpec {
    let kind = reader.byte() % 5;
    let value = reader.u16();
    let small_offset = (value % 16) as i8;
    match kind {
        0 => PriceSpec::Ticks(small_offset - 4),
        1 => PriceSpec::Near(small_offset - 8),
        2 => PriceSpec::Same,
        3 => PriceSpec::Raw(u64::from(value)),
        _ => PriceSpec::Wide(u64::from(value)),
    }
}

fn encode_price(out: &mut Vec<u8>, price: PriceSpec) {
    let (kind, value): (u8, u16) = match price {
        PriceSpec::Ticks(ticks @ -4..=11) => (0, (ticks + 4) as u16),
        PriceSpec::Near(ticks @ -8..=7) => (1, (ticks + 8) as u16),
        PriceSpec::Ticks(_) | PriceSpec::Near(_) => panic!("{price:?} is out of range"),
        PriceSpec::Same => (2, 0),
        PriceSpec::Raw(raw) => (3, u16::try_from(raw).expect("a raw price below 2^16")),
        PriceSpec::Wide(wide) => (4, u16::try_from(wide).expect("a wide price below 2^16")),
    };
    out.push(kind);
    out.extend_from_slice(&value.to_le_bytes());
}

/// Quantities 0 to 15 (both instruments' maximums, 8 and 12, are inside);
/// deltas -4 to 3.
fn decode_qty(reader: &mut Reader<'_>) -> QtySpec {
    let kind = reader.byte();
    let value = reader.byte();
    if kind & 1 == 0 {
        QtySpec::Abs(u32::from(value % 16))
    } else {
        QtySpec::Delta((value % 8) as i8 - 4)
    }
}

fn encode_qty(out: &mut Vec<u8>, qty: QtySpec) {
    match qty {
        QtySpec::Abs(qty @ 0..=15) => out.extend_from_slice(&[0, qty as u8]),
        QtySpec::Delta(delta @ -4..=3) => out.extend_from_slice(&[1, (delta + 4) as u8]),
        QtySpec::Abs(_) | QtySpec::Delta(_) => panic!("{qty:?} is out of range"),
    }
}

fn decode_target(reader: &mut Reader<'_>, tokens: u64) -> Target {
    let kind = reader.byte();
    let first = reader.byte();
    let second = reader.byte();
    if kind & 1 == 0 {
        Target::Live(u16::from_le_bytes([first, second]))
    } else {
        Target::Given {
            session: u16::from(first & 3),
            token: u64::from(second) % tokens,
        }
    }
}

fn encode_target(out: &mut Vec<u8>, target: Target) {
    match target {
        Target::Live(n) => {
            out.push(0);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Target::Given { session, token } => {
            out.extend_from_slice(&[1, small(session), small(token)])
        }
    }
}

/// A session, account or token the encoder writes as one byte.
fn small<T: TryInto<u8> + Copy + std::fmt::Debug>(value: T) -> u8 {
    value
        .try_into()
        .unwrap_or_else(|_| panic!("{value:?} does not fit a byte"))
}

fn decode_op(reader: &mut Reader<'_>, tokens: u64) -> Op {
    let tag = reader.byte() & 15;
    match tag {
        0..=5 => {
            let flags = reader.byte();
            let token = u64::from(reader.byte()) % tokens;
            let time_in_force = TIME_IN_FORCE[usize::from(reader.byte() & 3)];
            let price = decode_price(reader);
            let qty = u32::from(reader.byte() % 16);
            Op::New {
                session: u16::from(flags & 3),
                account: u32::from((flags >> 2) & 3),
                token,
                instrument: if flags & 0x80 != 0 {
                    2
                } else {
                    token_instrument(token)
                },
                side: side_of(flags & 0x10 != 0),
                market: flags & 0x20 != 0,
                price,
                qty,
                time_in_force,
                post_only: flags & 0x40 != 0,
            }
        }
        6 | 7 => Op::Cancel {
            target: decode_target(reader, tokens),
            qty_after: decode_qty(reader),
        },
        8..=10 => {
            let target = decode_target(reader, tokens);
            let keep = reader.byte();
            let new_token = u64::from(reader.byte()) % tokens;
            Op::Replace {
                target,
                new_token: (keep & 1 == 1).then_some(new_token),
                price: decode_price(reader),
                qty: decode_qty(reader),
            }
        }
        11 => Op::CancelAll(u16::from(reader.byte() & 3)),
        12 => Op::Reject {
            session: u16::from(reader.byte() & 3),
            token: u64::from(reader.byte()) % tokens,
            command: usize::from(reader.byte()),
            reason: usize::from(reader.byte()),
        },
        13 => Op::Stp(
            u32::from(reader.byte() & 3),
            STP_MODES[usize::from(reader.byte() & 3)],
        ),
        14 => Op::Halt(u32::from(reader.byte() % 3)),
        _ => Op::Resume(u32::from(reader.byte() % 3)),
    }
}

fn encode_op(out: &mut Vec<u8>, op: Op, tokens: u64) {
    let token_byte = |token: u64| {
        assert!(token < tokens, "token {token} is not below {tokens}");
        small(token)
    };
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
        } => {
            assert!(session < 4 && account < 4, "{op:?} cannot be encoded");
            let bad_instrument = instrument != token_instrument(token);
            assert!(
                !bad_instrument || instrument == 2,
                "{op:?}: the instrument is the token's or 2"
            );
            out.push(0);
            out.push(
                small(session)
                    | small(account) << 2
                    | u8::from(side == Side::Sell) << 4
                    | u8::from(market) << 5
                    | u8::from(post_only) << 6
                    | u8::from(bad_instrument) << 7,
            );
            out.push(token_byte(token));
            out.push(
                TIME_IN_FORCE
                    .iter()
                    .position(|&tif| tif == time_in_force)
                    .expect("every time in force is in the table") as u8,
            );
            encode_price(out, price);
            assert!(qty < 16, "{op:?}: qty is out of range");
            out.push(qty as u8);
        }
        Op::Cancel { target, qty_after } => {
            out.push(6);
            encode_target(out, target);
            encode_qty(out, qty_after);
        }
        Op::Replace {
            target,
            new_token,
            price,
            qty,
        } => {
            out.push(8);
            encode_target(out, target);
            match new_token {
                None => out.extend_from_slice(&[0, 0]),
                Some(token) => out.extend_from_slice(&[1, token_byte(token)]),
            }
            encode_price(out, price);
            encode_qty(out, qty);
        }
        Op::CancelAll(session) => out.extend_from_slice(&[11, small(session)]),
        Op::Reject {
            session,
            token,
            command,
            reason,
        } => out.extend_from_slice(&[
            12,
            small(session),
            token_byte(token),
            small(command % CommandKind::ALL.len()),
            small(reason % RejectReason::ALL.len()),
        ]),
        Op::Stp(account, mode) => out.extend_from_slice(&[
            13,
            small(account),
            STP_MODES
                .iter()
                .position(|&entry| entry == mode)
                .expect("every mode is in the table") as u8,
        ]),
        Op::Halt(instrument) => out.extend_from_slice(&[14, small(instrument)]),
        Op::Resume(instrument) => out.extend_from_slice(&[15, small(instrument)]),
    }
}

/// Decodes a fuzz input: two configuration bytes (see [`FuzzConfig`]), then
/// operations until the bytes or [`OPS_MAX`] run out. Each operation is a
/// tag byte (low nibble 0-5 new order, 6-7 cancel, 8-10 replace, 11
/// cancel-all, 12 gateway reject, 13 self-trade prevention, 14 halt, 15
/// resume) and a fixed number of argument bytes, zero past the end. Every
/// byte string decodes.
pub fn decode(data: &[u8]) -> (FuzzConfig, Vec<Op>) {
    let mut reader = Reader { data, at: 0 };
    let config = FuzzConfig::decode(reader.byte(), reader.byte());
    let mut ops = Vec::new();
    while reader.more() && ops.len() < OPS_MAX {
        ops.push(decode_op(&mut reader, config.tokens));
    }
    (config, ops)
}

/// The bytes [`decode`] turns into `config` and `ops` (a gateway reject's
/// command and reason taken modulo their lists, as `resolve` takes them).
/// Panics if an operation is outside the fuzz domains.
pub fn encode(config: &FuzzConfig, ops: &[Op]) -> Vec<u8> {
    let mut out = config.encode().to_vec();
    for op in ops {
        encode_op(&mut out, *op, config.tokens);
    }
    out
}

/// Runs the operations `data` decodes to through the engine and the
/// reference model; panics at the first disagreement, broken invariant or
/// unbalanced order (see [`reference_model::run`]).
pub fn engine_vs_reference(data: &[u8]) {
    let (config, ops) = decode(data);
    if let Err(problem) = reference_model::run(config.engine_config(), &ops, |_, _| {}) {
        panic!("{config:?}: {problem}");
    }
}

/// A small deterministic generator for the random seeds.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Inputs for seeding the corpus, as `(target, name, bytes)`: a written
/// session that reaches every kind of outcome (crossing, resting, partial
/// and whole cancels, both kinds of replace, cancel-all, gateway rejects,
/// every self-trade prevention mode, halts, FOK, post-only), and random
/// bytes under a roomy and a tight configuration.
pub fn seed_inputs() -> Vec<(&'static str, String, Vec<u8>)> {
    let roomy = FuzzConfig {
        orders_max: 64,
        levels_max: 64,
        accounts_max: 3,
        wide: false,
        tokens: 16,
    };
    let new = |session: u16,
               account: u32,
               token: u64,
               side: Side,
               price: PriceSpec,
               qty: u32,
               time_in_force: TimeInForce| Op::New {
        session,
        account,
        token,
        instrument: token_instrument(token),
        side,
        market: false,
        price,
        qty,
        time_in_force,
        post_only: false,
    };
    let given = |session: u16, token: u64| Target::Given { session, token };
    let gtc = TimeInForce::Gtc;
    let ops = vec![
        // A resting buy and sell on instrument 0 (and the sell's token again:
        // a duplicate), then a crossing sell that fills part of the buy.
        new(0, 0, 1, Side::Buy, PriceSpec::Ticks(0), 5, gtc),
        new(1, 1, 2, Side::Sell, PriceSpec::Ticks(1), 4, gtc),
        new(1, 1, 2, Side::Sell, PriceSpec::Ticks(2), 1, gtc),
        new(1, 1, 3, Side::Sell, PriceSpec::Near(0), 2, TimeInForce::Ioc),
        // A partial cancel, a replace that keeps priority and one that
        // re-enters and crosses.
        Op::Cancel {
            target: given(0, 1),
            qty_after: QtySpec::Delta(-1),
        },
        Op::Replace {
            target: given(0, 1),
            new_token: None,
            price: PriceSpec::Same,
            qty: QtySpec::Delta(-1),
        },
        Op::Replace {
            target: given(0, 1),
            new_token: Some(0),
            price: PriceSpec::Near(0),
            qty: QtySpec::Abs(6),
        },
        // FOK that cannot fill, a market order, a post-only that would match.
        new(2, 2, 5, Side::Buy, PriceSpec::Ticks(0), 7, TimeInForce::Fok),
        Op::New {
            session: 2,
            account: 2,
            token: 6,
            instrument: token_instrument(6),
            side: Side::Sell,
            market: true,
            price: PriceSpec::Same,
            qty: 3,
            time_in_force: TimeInForce::Ioc,
            post_only: false,
        },
        Op::New {
            session: 0,
            account: 0,
            token: 2,
            instrument: token_instrument(2),
            side: Side::Sell,
            market: false,
            price: PriceSpec::Near(0),
            qty: 1,
            time_in_force: gtc,
            post_only: true,
        },
        // Self-trade prevention in every mode against account 0's orders.
        new(0, 0, 8, Side::Buy, PriceSpec::Ticks(0), 3, gtc),
        Op::Stp(0, StpMode::CancelResting),
        new(0, 0, 9, Side::Sell, PriceSpec::Near(0), 2, gtc),
        Op::Stp(0, StpMode::CancelIncoming),
        new(0, 0, 10, Side::Buy, PriceSpec::Ticks(0), 3, gtc),
        new(0, 0, 11, Side::Sell, PriceSpec::Near(0), 2, gtc),
        Op::Stp(0, StpMode::CancelBoth),
        new(0, 0, 12, Side::Sell, PriceSpec::Near(0), 2, gtc),
        Op::Stp(0, StpMode::Off),
        Op::Stp(3, StpMode::Off),
        // Rejects: bad price, bad qty, unknown instrument, unknown session,
        // a gateway reject.
        new(1, 1, 13, Side::Buy, PriceSpec::Raw(7), 1, gtc),
        new(1, 1, 14, Side::Buy, PriceSpec::Ticks(0), 0, gtc),
        Op::New {
            session: 1,
            account: 1,
            token: 15,
            instrument: 2,
            side: Side::Buy,
            market: false,
            price: PriceSpec::Ticks(0),
            qty: 1,
            time_in_force: gtc,
            post_only: false,
        },
        Op::Cancel {
            target: given(3, 4),
            qty_after: QtySpec::Abs(0),
        },
        Op::Reject {
            session: 1,
            token: 7,
            command: 0,
            reason: 20,
        },
        // Halt, an order refused while halted, resume; cancel-all.
        Op::Halt(0),
        new(1, 1, 0, Side::Buy, PriceSpec::Ticks(0), 1, gtc),
        Op::Resume(0),
        Op::Halt(2),
        Op::CancelAll(1),
        Op::CancelAll(0),
        Op::Cancel {
            target: Target::Live(0),
            qty_after: QtySpec::Abs(0),
        },
    ];
    let mut seeds = vec![(
        "engine_vs_reference",
        "seed-every-outcome".to_string(),
        encode(&roomy, &ops),
    )];
    let mut random = SplitMix64(0x5eed);
    for (name, config) in [
        ("seed-random-roomy", roomy),
        (
            "seed-random-tight",
            FuzzConfig {
                orders_max: 4,
                levels_max: 3,
                accounts_max: 2,
                wide: false,
                tokens: 16,
            },
        ),
        (
            "seed-random-wide",
            FuzzConfig {
                orders_max: 256,
                levels_max: 256,
                accounts_max: 3,
                wide: true,
                tokens: 64,
            },
        ),
    ] {
        let mut bytes = config.encode().to_vec();
        bytes.extend((0..1_500).map(|_| random.next() as u8));
        seeds.push(("engine_vs_reference", name.to_string(), bytes));
    }
    seeds
}
