//! The LOBSTER importer: turns a LOBSTER message file (see
//! `data/lobster/README.md`) into a Flow CSV v1 file, streaming, and counts
//! what it converted and what it had to skip. LOBSTER records what happened
//! to resting orders; the flow format records what clients asked for, so an
//! execution (which names only the resting order that was hit) becomes an
//! immediate-or-cancel order from a synthetic aggressor on the other side.
//!
//! The mapping, row by row (columns `time,type,order_id,size,price,direction`):
//! - type 1, submission: a `new` GTC limit order, buy for direction 1 and
//!   sell for -1, at the file's price (dollars x 10,000, used as ticks);
//! - type 2, partial cancel: a `modify` to the same price with the remaining
//!   quantity reduced by `size`, or a `cancel` if nothing would remain;
//! - type 3, deletion: a `cancel`;
//! - type 4, visible execution: a `new` IOC limit order on the other side at
//!   the execution's price and size, with a fresh order id from
//!   [`FRESH_ORDER_ID_BASE`] upwards; the hit order's tracked remaining
//!   quantity shrinks by the size;
//! - types 5 (hidden execution), 6 (cross trade) and 7 (halt): skipped.
//!
//! Events that name an order never submitted in the file, or one already
//! gone, are skipped and counted: a level-1 file only holds the events that
//! touched the top of the book, so such events are expected.

use crate::flow::{FlowRecord, FlowWriter};
use lockstep_engine::{OrderType, Price, Qty, Side, TimeInForce};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, Write};

/// The flow instrument every imported event trades.
pub const LOBSTER_INSTRUMENT: u32 = 1;

/// The first order id of the synthetic aggressors made from executions.
/// The importer streams, so it cannot first find the largest LOBSTER id;
/// instead it leaves LOBSTER the ids below 2^40 (Nasdaq's order reference
/// numbers for a day are far below that; the sample's largest is about
/// 2.9 x 10^8) and skips any submission at or above this base, so the two
/// ranges can never collide.
pub const FRESH_ORDER_ID_BASE: u64 = 1 << 40;

const FIELD_COUNT: usize = 6;

/// How many events of one LOBSTER type became flow records and how many
/// were skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCounts {
    pub converted: u64,
    pub skipped: u64,
}

/// What an import did, per LOBSTER event type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Type 1. Skipped: zero size, a non-positive price, a size above the
    /// engine's quantity type, a reused order id or an id at or above
    /// [`FRESH_ORDER_ID_BASE`].
    pub submissions: KindCounts,
    /// Type 2. Skipped: the order is unknown or gone, or the size is zero.
    pub partial_cancels: KindCounts,
    /// Of the converted partial cancels, those that took the whole remaining
    /// quantity and so were written as `cancel`.
    pub partial_cancels_written_as_cancel: u64,
    /// Type 3. Skipped: the order is unknown or already gone.
    pub deletions: KindCounts,
    /// Type 4. Skipped: the order is unknown or gone, or size or price is
    /// unusable.
    pub visible_executions: KindCounts,
    /// Type 5: always skipped (hidden orders never entered the visible book).
    pub hidden_executions: KindCounts,
    /// Type 6: always skipped (auction crosses are not continuous trading).
    pub cross_trades: KindCounts,
    /// Type 7: always skipped (the flow format has no halt record).
    pub halts: KindCounts,
    /// Flow records written, not counting the header.
    pub records_written: u64,
}

impl ImportStats {
    /// Every kind with its name, in LOBSTER type order.
    pub fn kinds(&self) -> [(&'static str, KindCounts); 7] {
        [
            ("submission", self.submissions),
            ("partial_cancel", self.partial_cancels),
            ("deletion", self.deletions),
            ("visible_execution", self.visible_executions),
            ("hidden_execution", self.hidden_executions),
            ("cross_trade", self.cross_trades),
            ("halt", self.halts),
        ]
    }

    pub fn converted_total(&self) -> u64 {
        self.kinds()
            .iter()
            .map(|(_, counts)| counts.converted)
            .sum()
    }

    pub fn skipped_total(&self) -> u64 {
        self.kinds().iter().map(|(_, counts)| counts.skipped).sum()
    }
}

/// Why an import stopped.
#[derive(Debug)]
pub enum ImportError {
    /// A line is not a LOBSTER message row.
    Malformed { line: u64, message: String },
    /// Reading the input failed.
    Read { line: u64, error: io::Error },
    /// Writing the flow failed.
    Write(io::Error),
}

impl fmt::Display for ImportError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Malformed { line, message } => write!(formatter, "line {line}: {message}"),
            ImportError::Read { line, error } => {
                write!(formatter, "line {line}: read error: {error}")
            }
            ImportError::Write(error) => write!(formatter, "write error: {error}"),
        }
    }
}

impl std::error::Error for ImportError {}

/// One LOBSTER message row, checked for shape but not for meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Message {
    /// The row's time, nanoseconds after midnight.
    time_ns: u64,
    event_type: u8,
    order_id: u64,
    size: u64,
    price: i64,
    side: Side,
}

/// Quotes a value for an error message, escaped and cut short.
fn quote(value: &str) -> String {
    let mut shown: String = value.chars().take(40).collect();
    if shown.len() < value.len() {
        shown.push_str("...");
    }
    format!("{shown:?}")
}

fn parse_message(line: &str) -> Result<Message, String> {
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() != FIELD_COUNT {
        return Err(format!(
            "expected {FIELD_COUNT} comma-separated fields (time,type,order_id,size,price,direction), found {}",
            fields.len()
        ));
    }
    let [time, event_type, order_id, size, price, direction] =
        [0, 1, 2, 3, 4, 5].map(|index| fields[index].trim());
    let mut parts = time.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next().unwrap_or("0");
    let is_digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if !is_digits(whole) || !is_digits(fraction) {
        return Err(format!(
            "time: {} is not a decimal number of seconds",
            quote(time)
        ));
    }
    let time_ns = time_ns_of(whole, fraction)
        .ok_or_else(|| format!("time: {} is out of range", quote(time)))?;
    let event_type = match event_type.parse::<u8>() {
        Ok(value @ 1..=7) => value,
        _ => {
            return Err(format!(
                "type: {} is not a LOBSTER event type (1 to 7)",
                quote(event_type)
            ))
        }
    };
    let order_id = order_id
        .parse::<u64>()
        .map_err(|_| format!("order_id: {} is not an unsigned integer", quote(order_id)))?;
    let size = size
        .parse::<u64>()
        .map_err(|_| format!("size: {} is not an unsigned integer", quote(size)))?;
    let price = price
        .parse::<i64>()
        .map_err(|_| format!("price: {} is not an integer", quote(price)))?;
    let side = match direction {
        "1" => Side::Buy,
        "-1" => Side::Sell,
        other => return Err(format!("direction: {} is not 1 or -1", quote(other))),
    };
    Ok(Message {
        time_ns,
        event_type,
        order_id,
        size,
        price,
        side,
    })
}

/// Seconds and their decimal fraction (both non-empty digit strings) as
/// nanoseconds; digits beyond the ninth decimal are dropped. `None` if the
/// value does not fit a `u64`.
fn time_ns_of(whole: &str, fraction: &str) -> Option<u64> {
    let seconds: u64 = whole.parse().ok()?;
    let mut fraction_ns: u64 = 0;
    for position in 0..9 {
        let digit = fraction
            .as_bytes()
            .get(position)
            .map_or(0, |byte| byte - b'0');
        fraction_ns = fraction_ns * 10 + u64::from(digit);
    }
    seconds.checked_mul(1_000_000_000)?.checked_add(fraction_ns)
}

/// What the importer believes about one submitted order.
#[derive(Clone, Copy, Debug)]
struct TrackedOrder {
    /// 0 once the order is fully executed or deleted; the entry stays so a
    /// second submission with the same id is recognised as a reuse.
    remaining_qty_lots: u64,
    price_ticks: Price,
}

/// The importer's state: the orders it has seen and the next fresh id.
struct Importer {
    orders: HashMap<u64, TrackedOrder>,
    next_fresh_order_id: u64,
    stats: ImportStats,
}

impl Importer {
    /// The live tracked order an event names, if there is one.
    fn live_order(&self, order_id: u64) -> Option<TrackedOrder> {
        self.orders
            .get(&order_id)
            .copied()
            .filter(|order| order.remaining_qty_lots > 0)
    }

    /// The flow record for one message, or `None` if it is skipped. The
    /// statistics are updated either way.
    fn convert(&mut self, message: Message) -> Option<FlowRecord> {
        let order_id = message.order_id;
        match message.event_type {
            1 => {
                let usable = message.size > 0
                    && message.size <= Qty::MAX as u64
                    && message.price > 0
                    && order_id < FRESH_ORDER_ID_BASE
                    && !self.orders.contains_key(&order_id);
                if !usable {
                    self.stats.submissions.skipped += 1;
                    return None;
                }
                self.stats.submissions.converted += 1;
                let price_ticks = message.price as Price;
                self.orders.insert(
                    order_id,
                    TrackedOrder {
                        remaining_qty_lots: message.size,
                        price_ticks,
                    },
                );
                Some(FlowRecord::New {
                    instrument: LOBSTER_INSTRUMENT,
                    order_id,
                    side: message.side,
                    order_type: OrderType::Limit,
                    price_ticks,
                    qty_lots: message.size as Qty,
                    time_in_force: TimeInForce::Gtc,
                    post_only: false,
                })
            }
            2 => {
                let Some(order) = self.live_order(order_id).filter(|_| message.size > 0) else {
                    self.stats.partial_cancels.skipped += 1;
                    return None;
                };
                self.stats.partial_cancels.converted += 1;
                let remaining = order.remaining_qty_lots.saturating_sub(message.size);
                self.set_remaining(order_id, remaining);
                if remaining == 0 {
                    self.stats.partial_cancels_written_as_cancel += 1;
                    Some(FlowRecord::Cancel {
                        instrument: LOBSTER_INSTRUMENT,
                        order_id,
                        qty_after_lots: 0,
                    })
                } else {
                    Some(FlowRecord::Modify {
                        instrument: LOBSTER_INSTRUMENT,
                        order_id,
                        price_ticks: order.price_ticks,
                        // Below the submitted size, which fitted a Qty.
                        qty_lots: remaining as Qty,
                    })
                }
            }
            3 => {
                if self.live_order(order_id).is_none() {
                    self.stats.deletions.skipped += 1;
                    return None;
                }
                self.stats.deletions.converted += 1;
                self.set_remaining(order_id, 0);
                Some(FlowRecord::Cancel {
                    instrument: LOBSTER_INSTRUMENT,
                    order_id,
                    qty_after_lots: 0,
                })
            }
            4 => {
                let usable =
                    message.size > 0 && message.size <= Qty::MAX as u64 && message.price > 0;
                let Some(order) = self.live_order(order_id).filter(|_| usable) else {
                    self.stats.visible_executions.skipped += 1;
                    return None;
                };
                self.stats.visible_executions.converted += 1;
                self.set_remaining(
                    order_id,
                    order.remaining_qty_lots.saturating_sub(message.size),
                );
                let aggressor_id = self.next_fresh_order_id;
                self.next_fresh_order_id += 1;
                Some(FlowRecord::New {
                    instrument: LOBSTER_INSTRUMENT,
                    order_id: aggressor_id,
                    side: message.side.opposite(),
                    order_type: OrderType::Limit,
                    price_ticks: message.price as Price,
                    qty_lots: message.size as Qty,
                    time_in_force: TimeInForce::Ioc,
                    post_only: false,
                })
            }
            5 => {
                self.stats.hidden_executions.skipped += 1;
                None
            }
            6 => {
                self.stats.cross_trades.skipped += 1;
                None
            }
            _ => {
                self.stats.halts.skipped += 1;
                None
            }
        }
    }

    fn set_remaining(&mut self, order_id: u64, remaining_qty_lots: u64) {
        if let Some(order) = self.orders.get_mut(&order_id) {
            order.remaining_qty_lots = remaining_qty_lots;
        }
    }
}

/// One flow record converted from a LOBSTER row, with where and when the
/// row happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedRecord {
    /// The 1-based line of the LOBSTER file the record came from.
    pub line: u64,
    /// The row's time, nanoseconds after midnight.
    pub time_ns: u64,
    pub record: FlowRecord,
}

/// Converts a LOBSTER message file read from `input` into a flow written to
/// `output`, line by line. Blank lines and an optional header line starting
/// with `time` are ignored; a trailing `\r` is accepted. The first malformed
/// line stops the import with its line number; what was written up to then
/// stays written (and flushed), so a caller that wants all or nothing
/// should write to a temporary file.
pub fn import_lobster<R: BufRead, W: Write>(
    input: R,
    output: W,
) -> Result<ImportStats, ImportError> {
    let mut writer = FlowWriter::new(output).map_err(ImportError::Write)?;
    let stats = import_lobster_timed(input, |timed| {
        writer.write(&timed.record).map_err(ImportError::Write)
    })?;
    writer.finish().map_err(ImportError::Write)?;
    Ok(stats)
}

/// The same conversion as [`import_lobster`], handing each record to `sink`
/// with its line and time instead of writing a flow: `lockstep bench
/// --replay` paces a LOBSTER file by its own clock. An error from `sink`
/// stops the import and is returned.
pub fn import_lobster_timed<R: BufRead>(
    mut input: R,
    mut sink: impl FnMut(TimedRecord) -> Result<(), ImportError>,
) -> Result<ImportStats, ImportError> {
    let mut importer = Importer {
        orders: HashMap::new(),
        next_fresh_order_id: FRESH_ORDER_ID_BASE,
        stats: ImportStats::default(),
    };
    let mut buffer = Vec::with_capacity(128);
    let mut line_number = 0u64;
    loop {
        buffer.clear();
        let read = input
            .read_until(b'\n', &mut buffer)
            .map_err(|error| ImportError::Read {
                line: line_number + 1,
                error,
            })?;
        if read == 0 {
            break;
        }
        line_number += 1;
        let line = std::str::from_utf8(&buffer).map_err(|_| ImportError::Malformed {
            line: line_number,
            message: "the line is not valid UTF-8".to_string(),
        })?;
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() || (line_number == 1 && line.starts_with("time")) {
            continue;
        }
        let message = parse_message(line).map_err(|message| ImportError::Malformed {
            line: line_number,
            message,
        })?;
        if let Some(record) = importer.convert(message) {
            sink(TimedRecord {
                line: line_number,
                time_ns: message.time_ns,
                record,
            })?;
            importer.stats.records_written += 1;
        }
    }
    Ok(importer.stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowReader, FLOW_HEADER};
    use proptest::prelude::*;

    fn import(text: &str) -> (ImportStats, Vec<FlowRecord>) {
        let mut output = Vec::new();
        let stats = import_lobster(text.as_bytes(), &mut output).expect("valid input");
        let records = FlowReader::new(output.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .expect("the importer writes valid flows");
        (stats, records)
    }

    fn new_gtc(order_id: u64, side: Side, price_ticks: Price, qty_lots: Qty) -> FlowRecord {
        FlowRecord::New {
            instrument: 1,
            order_id,
            side,
            order_type: OrderType::Limit,
            price_ticks,
            qty_lots,
            time_in_force: TimeInForce::Gtc,
            post_only: false,
        }
    }

    #[test]
    fn every_event_type_maps_as_documented() {
        let text = "\
34200.1,1,100,50,2238100,1
34200.2,1,200,30,2238400,-1
34200.3,2,100,20,2238100,1
34200.4,4,100,10,2238100,1
34200.5,4,200,30,2238400,-1
34200.6,2,100,20,2238100,1
34200.7,3,100,0,2238100,1
34200.8,5,0,100,2238200,-1
34200.9,6,0,100,2238200,-1
34201.0,7,0,0,-1,-1
34201.1,3,999,10,2238100,1
";
        let (stats, records) = import(text);
        assert_eq!(
            records,
            vec![
                new_gtc(100, Side::Buy, 2238100, 50),
                new_gtc(200, Side::Sell, 2238400, 30),
                FlowRecord::Modify {
                    instrument: 1,
                    order_id: 100,
                    price_ticks: 2238100,
                    qty_lots: 30
                },
                // The hit order was a buy, so the aggressor sells.
                FlowRecord::New {
                    instrument: 1,
                    order_id: FRESH_ORDER_ID_BASE,
                    side: Side::Sell,
                    order_type: OrderType::Limit,
                    price_ticks: 2238100,
                    qty_lots: 10,
                    time_in_force: TimeInForce::Ioc,
                    post_only: false,
                },
                FlowRecord::New {
                    instrument: 1,
                    order_id: FRESH_ORDER_ID_BASE + 1,
                    side: Side::Buy,
                    order_type: OrderType::Limit,
                    price_ticks: 2238400,
                    qty_lots: 30,
                    time_in_force: TimeInForce::Ioc,
                    post_only: false,
                },
                // 50 - 20 - 10 = 20 left, and this partial cancel takes all 20.
                FlowRecord::Cancel {
                    instrument: 1,
                    order_id: 100,
                    qty_after_lots: 0,
                },
            ]
        );
        assert_eq!(
            stats.submissions,
            KindCounts {
                converted: 2,
                skipped: 0
            }
        );
        assert_eq!(
            stats.partial_cancels,
            KindCounts {
                converted: 2,
                skipped: 0
            }
        );
        assert_eq!(stats.partial_cancels_written_as_cancel, 1);
        // Order 100 was already gone (deleted by its partial cancel) and 999
        // was never submitted.
        assert_eq!(
            stats.deletions,
            KindCounts {
                converted: 0,
                skipped: 2
            }
        );
        assert_eq!(
            stats.visible_executions,
            KindCounts {
                converted: 2,
                skipped: 0
            }
        );
        assert_eq!(stats.hidden_executions.skipped, 1);
        assert_eq!(stats.cross_trades.skipped, 1);
        assert_eq!(stats.halts.skipped, 1);
        assert_eq!(stats.records_written, 6);
        assert_eq!(stats.converted_total(), 6);
        assert_eq!(stats.skipped_total(), 5);
    }

    #[test]
    fn a_fully_executed_order_is_gone_and_ids_are_never_reused() {
        let text = "\
1.0,1,7,10,100,1
2.0,4,7,10,100,1
3.0,3,7,10,100,1
4.0,1,7,10,100,1
5.0,1,1099511627776,10,100,1
";
        let (stats, records) = import(text);
        assert_eq!(records.len(), 2);
        assert_eq!(stats.deletions.skipped, 1);
        // A resubmitted id and an id in the fresh range are both refused.
        assert_eq!(
            stats.submissions,
            KindCounts {
                converted: 1,
                skipped: 2
            }
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_their_line_number() {
        let cases = [
            ("1.0,1,7,10,100", "expected 6 comma-separated fields"),
            (
                "1.0,8,7,10,100,1",
                "type: \"8\" is not a LOBSTER event type",
            ),
            ("1.0,1,7,10,100,0", "direction: \"0\" is not 1 or -1"),
            ("1.0,1,x,10,100,1", "order_id: \"x\""),
            ("1.0,1,7,-10,100,1", "size: \"-10\""),
            ("1.0,1,7,10,1.5,1", "price: \"1.5\""),
            ("abc,1,7,10,100,1", "time: \"abc\""),
        ];
        for (line, expected) in cases {
            let text = format!("1.0,1,1,10,100,1\n\n{line}\n");
            let error = import_lobster(text.as_bytes(), Vec::new()).expect_err(line);
            match error {
                ImportError::Malformed { line: 3, message } => {
                    assert!(message.contains(expected), "{message:?} lacks {expected:?}")
                }
                other => panic!("{line}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn timed_records_carry_their_line_and_time_in_nanoseconds() {
        let text = "time,type,order_id,size,price,direction\n\
34200.017459617,1,7,10,100,1\n\
34200.5,5,0,1,100,-1\n\
34201.0000000019,3,7,10,100,1\n";
        let mut timed = Vec::new();
        let stats = import_lobster_timed(text.as_bytes(), |record| {
            timed.push(record);
            Ok(())
        })
        .expect("valid input");
        assert_eq!(stats.records_written, 2);
        assert_eq!(timed.len(), 2);
        assert_eq!((timed[0].line, timed[0].time_ns), (2, 34_200_017_459_617));
        // Digits beyond nanoseconds are dropped.
        assert_eq!((timed[1].line, timed[1].time_ns), (4, 34_201_000_000_001));
        assert_eq!(time_ns_of("18446744074", "0"), None);
        let error = import_lobster_timed("1.5,1,1,1,1,1\n".as_bytes(), |_| {
            Err(ImportError::Malformed {
                line: 9,
                message: "stop".to_string(),
            })
        })
        .expect_err("the sink's error stops the import");
        assert_eq!(error.to_string(), "line 9: stop");
    }

    #[test]
    fn an_empty_input_gives_a_flow_with_only_its_header() {
        let mut output = Vec::new();
        let stats = import_lobster(&b""[..], &mut output).expect("empty is fine");
        assert_eq!(stats, ImportStats::default());
        assert_eq!(output, format!("{FLOW_HEADER}\n").into_bytes());
    }

    proptest! {
        #[test]
        fn random_input_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = import_lobster(bytes.as_slice(), Vec::new());
        }

        #[test]
        fn random_well_formed_rows_always_give_a_valid_flow(
            rows in prop::collection::vec((1u8..=7, 0u64..20, 0u64..50, -2i64..200, any::<bool>()), 0..200)
        ) {
            let text: String = rows
                .iter()
                .enumerate()
                .map(|(index, (event_type, order_id, size, price, buy))| {
                    format!("{index}.5,{event_type},{order_id},{size},{price},{}\n", if *buy { 1 } else { -1 })
                })
                .collect();
            let mut output = Vec::new();
            let stats = import_lobster(text.as_bytes(), &mut output)
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            let records = FlowReader::new(output.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(records.len() as u64, stats.records_written);
            prop_assert_eq!(stats.converted_total() + stats.skipped_total(), rows.len() as u64);
        }
    }
}
