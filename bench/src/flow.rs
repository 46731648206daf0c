//! Flow CSV v1: the human-writable order flow of `docs` and `DESIGN.md`. This
//! module owns the record type ([`FlowRecord`]), the streaming parser
//! ([`FlowReader`]), the byte-exact writer ([`FlowWriter`]) and the mapping
//! from flow records to engine commands ([`FlowMapper`], [`engine_config_for`]).
//! The parser accepts only the canonical spelling of every field (no signs,
//! no leading zeros, no spaces), so any row it accepts is written back by the
//! writer byte for byte. A cancel row may carry a quantity, the quantity to
//! keep open (a partial cancel, OUCH's Cancel Order with shares); without one
//! it cancels the whole order, as every v1 file's cancels do.

use lockstep_engine::{
    AccountId, CancelOrder, Command, EngineConfig, InstrumentId, InstrumentSpec, NewOrder,
    OrderType, Price, Qty, ReplaceOrder, SessionId, Side, TimeInForce, Token,
};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, Write};

/// The header line every flow file starts with.
pub const FLOW_HEADER: &str = "action,instrument,order_id,side,type,price,qty,tif,post_only";

/// The number of comma-separated fields in every row.
const FIELD_COUNT: usize = 9;

/// The longest slice of a bad value quoted in an error, so that one absurd
/// field cannot turn an error message into a wall of text.
const QUOTED_VALUE_CHARS_MAX: usize = 40;

/// One row of a flow file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowRecord {
    /// Enter a new order.
    New {
        instrument: u32,
        order_id: u64,
        side: Side,
        order_type: OrderType,
        /// The limit price in ticks; 0 for a market order, whose price field
        /// is empty in the file. A limit price of 0 parses and is left to the
        /// engine to reject, like every other business rule.
        price_ticks: Price,
        /// Always positive: a new order without quantity is a format error.
        qty_lots: Qty,
        time_in_force: TimeInForce,
        post_only: bool,
    },
    /// Cancel a live order: all of it when `qty_after_lots` is 0 (an empty
    /// qty field), else down to `qty_after_lots` open, keeping its priority.
    Cancel {
        instrument: u32,
        order_id: u64,
        qty_after_lots: Qty,
    },
    /// Change a live order's price and remaining quantity. A quantity of 0
    /// parses; the engine rejects it with `QtyZero`.
    Modify {
        instrument: u32,
        order_id: u64,
        price_ticks: Price,
        qty_lots: Qty,
    },
}

impl FlowRecord {
    /// The flow's own instrument number (not the engine's dense index).
    pub fn instrument(&self) -> u32 {
        match *self {
            FlowRecord::New { instrument, .. }
            | FlowRecord::Cancel { instrument, .. }
            | FlowRecord::Modify { instrument, .. } => instrument,
        }
    }

    /// The order id the record names.
    pub fn order_id(&self) -> u64 {
        match *self {
            FlowRecord::New { order_id, .. }
            | FlowRecord::Cancel { order_id, .. }
            | FlowRecord::Modify { order_id, .. } => order_id,
        }
    }
}

/// The flow format's word for a side.
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// The flow format's word for an order type.
pub fn order_type_name(order_type: OrderType) -> &'static str {
    match order_type {
        OrderType::Limit => "limit",
        OrderType::Market => "market",
    }
}

/// The flow format's word for a time in force.
pub fn time_in_force_name(time_in_force: TimeInForce) -> &'static str {
    match time_in_force {
        TimeInForce::Gtc => "gtc",
        TimeInForce::Ioc => "ioc",
        TimeInForce::Fok => "fok",
    }
}

/// Formats the record as one CSV row without the line terminator, exactly
/// as the parser expects it.
impl fmt::Display for FlowRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FlowRecord::New {
                instrument,
                order_id,
                side,
                order_type,
                price_ticks,
                qty_lots,
                time_in_force,
                post_only,
            } => {
                write!(
                    formatter,
                    "new,{instrument},{order_id},{},{},",
                    side_name(side),
                    order_type_name(order_type)
                )?;
                // A market order has no price; its field stays empty whatever
                // the record carries, because that is the only spelling the
                // parser accepts.
                if order_type == OrderType::Limit {
                    write!(formatter, "{price_ticks}")?;
                }
                write!(
                    formatter,
                    ",{qty_lots},{},{}",
                    time_in_force_name(time_in_force),
                    u8::from(post_only)
                )
            }
            FlowRecord::Cancel {
                instrument,
                order_id,
                qty_after_lots: 0,
            } => write!(formatter, "cancel,{instrument},{order_id},,,,,,"),
            FlowRecord::Cancel {
                instrument,
                order_id,
                qty_after_lots,
            } => write!(
                formatter,
                "cancel,{instrument},{order_id},,,,{qty_after_lots},,"
            ),
            FlowRecord::Modify {
                instrument,
                order_id,
                price_ticks,
                qty_lots,
            } => write!(
                formatter,
                "modify,{instrument},{order_id},,,{price_ticks},{qty_lots},,"
            ),
        }
    }
}

/// A problem with one line of a flow file (or with reading it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowError {
    /// The 1-based line number; the header is line 1.
    pub line: u64,
    /// What is wrong, naming the field and quoting the bad value. Always a
    /// single line of text.
    pub message: String,
}

impl fmt::Display for FlowError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for FlowError {}

/// Quotes a field value for an error message: escaped (so control characters
/// and newlines cannot break the one-line promise) and cut to a readable length.
fn quote(value: &str) -> String {
    let mut shown: String = value.chars().take(QUOTED_VALUE_CHARS_MAX).collect();
    if shown.len() < value.len() {
        shown.push_str("...");
    }
    format!("{shown:?}")
}

/// Parses a canonical unsigned decimal: digits only, no sign, no leading
/// zero unless the value is 0, and within `max`.
fn parse_unsigned(field: &str, value: &str, max: u64) -> Result<u64, String> {
    if value.is_empty() {
        return Err(format!("{field}: missing value"));
    }
    if !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "{field}: {} is not an unsigned decimal integer",
            quote(value)
        ));
    }
    if value.len() > 1 && value.starts_with('0') {
        return Err(format!(
            "{field}: {} has a leading zero (write the plain number)",
            quote(value)
        ));
    }
    match value.parse::<u64>() {
        Ok(number) if number <= max => Ok(number),
        _ => Err(format!(
            "{field}: {} is out of range (at most {max})",
            quote(value)
        )),
    }
}

fn require_empty(field: &str, value: &str, action: &str) -> Result<(), String> {
    if value.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{field}: must be empty for action {action}, found {}",
            quote(value)
        ))
    }
}

fn parse_side(value: &str) -> Result<Side, String> {
    match value {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        "" => Err("side: missing value (buy or sell)".to_string()),
        other => Err(format!("side: {} is not buy or sell", quote(other))),
    }
}

fn parse_order_type(value: &str) -> Result<OrderType, String> {
    match value {
        "limit" => Ok(OrderType::Limit),
        "market" => Ok(OrderType::Market),
        "" => Err("type: missing value (limit or market)".to_string()),
        other => Err(format!("type: {} is not limit or market", quote(other))),
    }
}

fn parse_time_in_force(value: &str) -> Result<TimeInForce, String> {
    match value {
        "gtc" => Ok(TimeInForce::Gtc),
        "ioc" => Ok(TimeInForce::Ioc),
        "fok" => Ok(TimeInForce::Fok),
        "" => Err("tif: missing value (gtc, ioc or fok)".to_string()),
        other => Err(format!("tif: {} is not gtc, ioc or fok", quote(other))),
    }
}

fn parse_post_only(value: &str) -> Result<bool, String> {
    match value {
        "0" => Ok(false),
        "1" => Ok(true),
        "" => Err("post_only: missing value (0 or 1)".to_string()),
        other => Err(format!("post_only: {} is not 0 or 1", quote(other))),
    }
}

/// Parses one data row (without its line terminator). The error is the
/// message alone; [`parse_record`] adds the line number.
fn parse_fields(line: &str) -> Result<FlowRecord, String> {
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() != FIELD_COUNT {
        return Err(format!(
            "expected {FIELD_COUNT} comma-separated fields ({FLOW_HEADER}), found {}",
            fields.len()
        ));
    }
    let [action, instrument, order_id, side, order_type, price, qty, tif, post_only] =
        [0, 1, 2, 3, 4, 5, 6, 7, 8].map(|index| fields[index]);
    let instrument = parse_unsigned("instrument", instrument, u32::MAX as u64)? as u32;
    let order_id = parse_unsigned("order_id", order_id, u64::MAX)?;
    match action {
        "new" => {
            let side = parse_side(side)?;
            let order_type = parse_order_type(order_type)?;
            let price_ticks = match order_type {
                OrderType::Limit => parse_unsigned("price", price, Price::MAX)?,
                OrderType::Market => {
                    if !price.is_empty() {
                        return Err(format!(
                            "price: must be empty for a market order, found {}",
                            quote(price)
                        ));
                    }
                    0
                }
            };
            let qty_lots = parse_unsigned("qty", qty, Qty::MAX as u64)? as Qty;
            if qty_lots == 0 {
                return Err("qty: \"0\" must be positive for a new order".to_string());
            }
            let time_in_force = parse_time_in_force(tif)?;
            let post_only = parse_post_only(post_only)?;
            Ok(FlowRecord::New {
                instrument,
                order_id,
                side,
                order_type,
                price_ticks,
                qty_lots,
                time_in_force,
                post_only,
            })
        }
        "cancel" => {
            for (field, value) in [
                ("side", side),
                ("type", order_type),
                ("price", price),
                ("tif", tif),
                ("post_only", post_only),
            ] {
                require_empty(field, value, "cancel")?;
            }
            // An empty qty is the whole order; a written one must be
            // positive, so that each cancel has exactly one spelling.
            let qty_after_lots = if qty.is_empty() {
                0
            } else {
                let lots = parse_unsigned("qty", qty, Qty::MAX as u64)? as Qty;
                if lots == 0 {
                    return Err("qty: \"0\" must be positive for a cancel (leave it empty to cancel the whole order)".to_string());
                }
                lots
            };
            Ok(FlowRecord::Cancel {
                instrument,
                order_id,
                qty_after_lots,
            })
        }
        "modify" => {
            for (field, value) in [("side", side), ("type", order_type)] {
                require_empty(field, value, "modify")?;
            }
            let price_ticks = parse_unsigned("price", price, Price::MAX)?;
            let qty_lots = parse_unsigned("qty", qty, Qty::MAX as u64)? as Qty;
            for (field, value) in [("tif", tif), ("post_only", post_only)] {
                require_empty(field, value, "modify")?;
            }
            Ok(FlowRecord::Modify {
                instrument,
                order_id,
                price_ticks,
                qty_lots,
            })
        }
        "" => Err("action: missing value (new, cancel or modify)".to_string()),
        other => Err(format!(
            "action: {} is not new, cancel or modify",
            quote(other)
        )),
    }
}

/// Parses one data row (without its line terminator) found on line
/// `line_number` of a flow file.
pub fn parse_record(line: &str, line_number: u64) -> Result<FlowRecord, FlowError> {
    parse_fields(line).map_err(|message| FlowError {
        line: line_number,
        message,
    })
}

/// A streaming parser over any buffered reader. It checks the header on the
/// first call and then yields one item per data row. A bad row yields an
/// error and parsing goes on with the next line; a bad header or an I/O error
/// yields an error and ends the stream, since nothing after it can be
/// trusted. Blank lines are skipped and a `\r` before the `\n` is accepted,
/// so files saved by Windows editors parse too.
pub struct FlowReader<R> {
    reader: R,
    buffer: Vec<u8>,
    lines_read: u64,
    header_checked: bool,
    finished: bool,
}

impl<R: BufRead> FlowReader<R> {
    pub fn new(reader: R) -> FlowReader<R> {
        FlowReader {
            reader,
            buffer: Vec::with_capacity(128),
            lines_read: 0,
            header_checked: false,
            finished: false,
        }
    }

    /// Reads the next line into the buffer, without its terminator.
    /// `Ok(false)` at the end of the input.
    fn read_line(&mut self) -> Result<bool, FlowError> {
        self.buffer.clear();
        match self.reader.read_until(b'\n', &mut self.buffer) {
            Ok(0) => Ok(false),
            Ok(_) => {
                self.lines_read += 1;
                if self.buffer.last() == Some(&b'\n') {
                    self.buffer.pop();
                    if self.buffer.last() == Some(&b'\r') {
                        self.buffer.pop();
                    }
                }
                Ok(true)
            }
            Err(error) => Err(FlowError {
                line: self.lines_read + 1,
                message: format!("read error: {error}"),
            }),
        }
    }

    fn fail(&mut self, error: FlowError) -> Option<Result<FlowRecord, FlowError>> {
        self.finished = true;
        Some(Err(error))
    }
}

impl<R: BufRead> Iterator for FlowReader<R> {
    type Item = Result<FlowRecord, FlowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if !self.header_checked {
            self.header_checked = true;
            match self.read_line() {
                Ok(true) => {
                    if self.buffer != FLOW_HEADER.as_bytes() {
                        let found = String::from_utf8_lossy(&self.buffer).into_owned();
                        return self.fail(FlowError {
                            line: 1,
                            message: format!(
                                "header: expected {FLOW_HEADER:?}, found {}",
                                quote(&found)
                            ),
                        });
                    }
                }
                Ok(false) => {
                    return self.fail(FlowError {
                        line: 1,
                        message: format!("header: the file is empty, expected {FLOW_HEADER:?}"),
                    })
                }
                Err(error) => return self.fail(error),
            }
        }
        loop {
            match self.read_line() {
                Ok(false) => {
                    self.finished = true;
                    return None;
                }
                Ok(true) if self.buffer.is_empty() => continue,
                Ok(true) => {
                    let line_number = self.lines_read;
                    return Some(match std::str::from_utf8(&self.buffer) {
                        Ok(line) => parse_record(line, line_number),
                        Err(_) => Err(FlowError {
                            line: line_number,
                            message: "the line is not valid UTF-8".to_string(),
                        }),
                    });
                }
                Err(error) => return self.fail(error),
            }
        }
    }
}

/// Writes a flow file: the header when created, then one row per record,
/// each terminated by `\n`.
pub struct FlowWriter<W: Write> {
    writer: W,
}

impl<W: Write> FlowWriter<W> {
    /// Writes the header and returns the writer.
    pub fn new(mut writer: W) -> io::Result<FlowWriter<W>> {
        writer.write_all(FLOW_HEADER.as_bytes())?;
        writer.write_all(b"\n")?;
        Ok(FlowWriter { writer })
    }

    pub fn write(&mut self, record: &FlowRecord) -> io::Result<()> {
        writeln!(self.writer, "{record}")
    }

    /// Flushes and hands back the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.writer.flush()?;
        Ok(self.writer)
    }
}

/// Formats a whole flow file (header and rows) into a string.
pub fn flow_to_string(records: &[FlowRecord]) -> String {
    let mut text = String::with_capacity(FLOW_HEADER.len() + 1 + records.len() * 40);
    text.push_str(FLOW_HEADER);
    text.push('\n');
    for record in records {
        text.push_str(&record.to_string());
        text.push('\n');
    }
    text
}

/// The session every flow command is sent on: a flow is one client's story.
pub const FLOW_SESSION: SessionId = SessionId(0);
/// The account every flow order trades for.
pub const FLOW_ACCOUNT: AccountId = AccountId(0);

/// Turns flow records into engine commands. Flow instruments are arbitrary
/// `u32`s; the engine wants dense indexes, so each flow instrument gets the
/// next index the first time any record names it (a cancel or modify
/// included). Order ids become tokens with [`Token::from_u64`], and a modify
/// becomes a replace that keeps its token.
#[derive(Clone, Debug, Default)]
pub struct FlowMapper {
    /// Flow instrument to engine index. Only looked up, never iterated, so
    /// the hash map's random seed cannot leak into any output.
    dense_ids: HashMap<u32, InstrumentId>,
    /// Flow instruments in order of first appearance (index = engine index).
    flow_instruments: Vec<u32>,
}

impl FlowMapper {
    pub fn new() -> FlowMapper {
        FlowMapper::default()
    }

    /// The engine index of a flow instrument, assigning the next one if the
    /// instrument is new.
    pub fn instrument_id(&mut self, flow_instrument: u32) -> InstrumentId {
        if let Some(id) = self.dense_ids.get(&flow_instrument) {
            return *id;
        }
        let id = InstrumentId(self.flow_instruments.len() as u32);
        self.flow_instruments.push(flow_instrument);
        self.dense_ids.insert(flow_instrument, id);
        id
    }

    /// How many distinct instruments the mapped records named.
    pub fn instrument_count(&self) -> u32 {
        self.flow_instruments.len() as u32
    }

    /// The flow instruments in engine index order.
    pub fn flow_instruments(&self) -> &[u32] {
        &self.flow_instruments
    }

    /// The engine command for one record.
    pub fn map(&mut self, record: &FlowRecord) -> Command {
        let instrument = self.instrument_id(record.instrument());
        match *record {
            FlowRecord::New {
                order_id,
                side,
                order_type,
                price_ticks,
                qty_lots,
                time_in_force,
                post_only,
                ..
            } => Command::New(NewOrder {
                session: FLOW_SESSION,
                account: FLOW_ACCOUNT,
                token: Token::from_u64(order_id),
                instrument,
                side,
                order_type,
                price: match order_type {
                    OrderType::Limit => price_ticks,
                    OrderType::Market => 0,
                },
                qty: qty_lots,
                time_in_force,
                post_only,
                client_tag: 0,
            }),
            FlowRecord::Cancel {
                order_id,
                qty_after_lots,
                ..
            } => Command::Cancel(CancelOrder {
                session: FLOW_SESSION,
                token: Token::from_u64(order_id),
                qty_after: qty_after_lots,
            }),
            FlowRecord::Modify {
                order_id,
                price_ticks,
                qty_lots,
                ..
            } => Command::Replace(ReplaceOrder {
                session: FLOW_SESSION,
                token: Token::from_u64(order_id),
                new_token: Token::from_u64(order_id),
                price: price_ticks,
                qty: qty_lots,
            }),
        }
    }
}

/// The engine configuration a flow replay uses: `instrument_count`
/// unbounded instruments (tick 1, no band; at least one, because the engine
/// refuses an empty configuration), one session, one account, and
/// `capacity` orders and price levels.
pub fn engine_config_for(instrument_count: u32, capacity: u32) -> EngineConfig {
    let instrument_count = instrument_count.max(1);
    EngineConfig {
        instruments: vec![InstrumentSpec::unbounded(); instrument_count as usize],
        instruments_max: instrument_count,
        orders_max: capacity,
        levels_max: capacity,
        sessions_max: 1,
        accounts_max: 1,
    }
}

/// A whole flow, parsed and mapped to commands.
#[derive(Clone, Debug, Default)]
pub struct LoadedFlow {
    pub commands: Vec<Command>,
    /// How many records were `new` orders: no more orders than this can ever
    /// rest at once, which bounds the capacity a replay needs.
    pub new_orders: u64,
    pub mapper: FlowMapper,
}

/// Parses a whole flow and maps it to commands, stopping at the first error.
pub fn load_flow<R: BufRead>(reader: R) -> Result<LoadedFlow, FlowError> {
    let mut loaded = LoadedFlow::default();
    for record in FlowReader::new(reader) {
        let record = record?;
        if matches!(record, FlowRecord::New { .. }) {
            loaded.new_orders += 1;
        }
        let command = loaded.mapper.map(&record);
        loaded.commands.push(command);
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_engine::{Engine, Event, RejectReason};
    use proptest::prelude::*;

    const DESIGN_EXAMPLE: &str = "action,instrument,order_id,side,type,price,qty,tif,post_only\n\
new,1,1001,buy,limit,10050,100,gtc,0\n\
new,1,1002,sell,market,,50,ioc,0\n\
cancel,1,1001,,,,,,\n\
modify,1,1003,,,10060,80,,\n";

    fn parse_all(text: &str) -> Vec<Result<FlowRecord, FlowError>> {
        FlowReader::new(text.as_bytes()).collect()
    }

    fn parse_row(row: &str) -> Result<FlowRecord, FlowError> {
        let text = format!("{FLOW_HEADER}\n{row}\n");
        let mut items = parse_all(&text);
        assert_eq!(items.len(), 1, "one row gives one item");
        items.remove(0)
    }

    fn error_of(row: &str) -> FlowError {
        match parse_row(row) {
            Err(error) => error,
            Ok(record) => panic!("{row:?} parsed as {record:?}"),
        }
    }

    #[test]
    fn the_design_example_parses_to_the_records_it_describes() {
        let records: Vec<FlowRecord> = parse_all(DESIGN_EXAMPLE)
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("the example is valid");
        assert_eq!(
            records,
            vec![
                FlowRecord::New {
                    instrument: 1,
                    order_id: 1001,
                    side: Side::Buy,
                    order_type: OrderType::Limit,
                    price_ticks: 10050,
                    qty_lots: 100,
                    time_in_force: TimeInForce::Gtc,
                    post_only: false,
                },
                FlowRecord::New {
                    instrument: 1,
                    order_id: 1002,
                    side: Side::Sell,
                    order_type: OrderType::Market,
                    price_ticks: 0,
                    qty_lots: 50,
                    time_in_force: TimeInForce::Ioc,
                    post_only: false,
                },
                FlowRecord::Cancel {
                    instrument: 1,
                    order_id: 1001,
                    qty_after_lots: 0,
                },
                FlowRecord::Modify {
                    instrument: 1,
                    order_id: 1003,
                    price_ticks: 10060,
                    qty_lots: 80
                },
            ]
        );
        assert_eq!(flow_to_string(&records), DESIGN_EXAMPLE);
    }

    #[test]
    fn errors_name_the_line_the_field_and_the_value() {
        let text = format!(
            "{FLOW_HEADER}\nnew,1,1,buy,limit,100,10,gtc,0\n\nnew,1,2,up,limit,100,10,gtc,0\n"
        );
        let items = parse_all(&text);
        assert!(items[0].is_ok());
        let error = items[1].clone().expect_err("side up is wrong");
        // Line 3 is blank and skipped, so the bad row is line 4.
        assert_eq!(error.line, 4);
        assert_eq!(error.message, "side: \"up\" is not buy or sell");
        assert_eq!(error.to_string(), "line 4: side: \"up\" is not buy or sell");
    }

    #[test]
    fn every_rule_of_the_format_is_enforced() {
        let cases = [
            (
                "new,1,1,buy,limit,100,0,gtc,0",
                "qty: \"0\" must be positive",
            ),
            ("new,1,1,buy,market,100,5,ioc,0", "price: must be empty"),
            ("new,1,1,buy,limit,,5,gtc,0", "price: missing value"),
            ("new,1,1,buy,limit,+100,5,gtc,0", "price: \"+100\" is not"),
            (
                "new,1,1,buy,limit,0100,5,gtc,0",
                "price: \"0100\" has a leading zero",
            ),
            ("new,1,1,buy,limit,100,5,day,0", "tif: \"day\""),
            ("new,1,1,buy,limit,100,5,gtc,yes", "post_only: \"yes\""),
            ("new,1,1,buy,stop,100,5,gtc,0", "type: \"stop\""),
            (
                "new,4294967296,1,buy,limit,100,5,gtc,0",
                "instrument: \"4294967296\" is out of range",
            ),
            (
                "new,1,18446744073709551616,buy,limit,1,5,gtc,0",
                "order_id: \"18446744073709551616\" is out of range",
            ),
            (
                "new,1,1,buy,limit,100,4294967296,gtc,0",
                "qty: \"4294967296\" is out of range",
            ),
            (
                "cancel,1,1,buy,,,,,",
                "side: must be empty for action cancel, found \"buy\"",
            ),
            (
                "cancel,1,1,,,,,,0",
                "post_only: must be empty for action cancel",
            ),
            (
                "cancel,1,1,,,,0,,",
                "qty: \"0\" must be positive for a cancel",
            ),
            ("cancel,1,1,,,,05,,", "qty: \"05\" has a leading zero"),
            (
                "cancel,1,1,,,100,5,,",
                "price: must be empty for action cancel",
            ),
            (
                "modify,1,1,,,100,5,gtc,",
                "tif: must be empty for action modify",
            ),
            ("modify,1,1,,,,5,,", "price: missing value"),
            ("modify,1,1,,,100,,,", "qty: missing value"),
            (
                "delete,1,1,,,,,,",
                "action: \"delete\" is not new, cancel or modify",
            ),
            (
                "new,1,1,buy,limit,100,5,gtc",
                "expected 9 comma-separated fields",
            ),
            ("new,1,1,buy,limit,100,5,gtc,0,", "found 10"),
        ];
        for (row, expected) in cases {
            let error = error_of(row);
            assert_eq!(error.line, 2, "{row}");
            assert!(
                error.message.contains(expected),
                "{row}: {:?} does not contain {expected:?}",
                error.message
            );
        }
    }

    #[test]
    fn a_modify_to_zero_parses_and_the_engine_rejects_it() {
        let record = parse_row("modify,1,7,,,100,0,,").expect("qty 0 on a modify is allowed");
        let mut mapper = FlowMapper::new();
        let mut engine = Engine::new(engine_config_for(1, 16)).expect("valid config");
        let place = parse_row("new,1,7,buy,limit,100,5,gtc,0").expect("valid");
        engine.apply(&mapper.map(&place), &mut |_| {});
        let mut reasons = Vec::new();
        engine.apply(&mapper.map(&record), &mut |event| {
            if let Event::Rejected { reason, .. } = event {
                reasons.push(*reason);
            }
        });
        assert_eq!(reasons, vec![RejectReason::QtyZero]);
    }

    #[test]
    fn a_cancel_with_a_qty_keeps_that_much_open() {
        let record = parse_row("cancel,1,7,,,,2,,").expect("a partial cancel");
        assert_eq!(
            record,
            FlowRecord::Cancel {
                instrument: 1,
                order_id: 7,
                qty_after_lots: 2,
            }
        );
        assert_eq!(record.to_string(), "cancel,1,7,,,,2,,");
        let mut mapper = FlowMapper::new();
        let mut engine = Engine::new(engine_config_for(1, 16)).expect("valid config");
        let place = parse_row("new,1,7,buy,limit,100,5,gtc,0").expect("valid");
        engine.apply(&mapper.map(&place), &mut |_| {});
        let mut canceled = Vec::new();
        engine.apply(&mapper.map(&record), &mut |event| {
            if let Event::Canceled { qty, .. } = event {
                canceled.push(*qty);
            }
        });
        assert_eq!(canceled, vec![3]);
        assert_eq!(engine.best(InstrumentId(0), Side::Buy), Some((100, 2)));
    }

    #[test]
    fn a_bad_header_ends_the_stream_and_an_empty_file_is_an_error() {
        let items = parse_all("action,instrument\nnew,1,1,buy,limit,100,10,gtc,0\n");
        assert_eq!(items.len(), 1);
        let error = items[0].clone().expect_err("bad header");
        assert_eq!(error.line, 1);
        assert!(error.message.starts_with("header: expected"));
        let items = parse_all("");
        assert_eq!(items.len(), 1);
        assert!(items[0]
            .clone()
            .expect_err("empty")
            .message
            .contains("empty"));
    }

    #[test]
    fn windows_line_endings_and_a_missing_final_newline_are_accepted() {
        let text = format!("{FLOW_HEADER}\r\nnew,1,1,buy,limit,100,10,gtc,0\r\ncancel,1,1,,,,,,");
        let items = parse_all(&text);
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(Result::is_ok));
    }

    #[test]
    fn the_mapper_numbers_instruments_by_first_appearance_including_cancels() {
        let mut mapper = FlowMapper::new();
        let cancel = FlowRecord::Cancel {
            instrument: 900,
            order_id: 5,
            qty_after_lots: 0,
        };
        let modify = FlowRecord::Modify {
            instrument: 7,
            order_id: 6,
            price_ticks: 10,
            qty_lots: 3,
        };
        let command = mapper.map(&cancel);
        assert_eq!(
            command,
            Command::Cancel(CancelOrder {
                session: SessionId(0),
                token: Token::from_u64(5),
                qty_after: 0,
            })
        );
        assert_eq!(
            mapper.map(&modify),
            Command::Replace(ReplaceOrder {
                session: SessionId(0),
                token: Token::from_u64(6),
                new_token: Token::from_u64(6),
                price: 10,
                qty: 3,
            })
        );
        assert_eq!(mapper.instrument_id(900), InstrumentId(0));
        assert_eq!(mapper.instrument_id(7), InstrumentId(1));
        assert_eq!(mapper.instrument_count(), 2);
        assert_eq!(mapper.flow_instruments(), &[900, 7]);
    }

    #[test]
    fn a_config_for_a_flow_is_valid_and_never_empty() {
        let config = engine_config_for(0, 1024);
        assert_eq!(config.instruments.len(), 1);
        assert!(config.validate().is_ok());
        assert!(Engine::new(engine_config_for(3, 1024)).is_ok());
    }

    fn side_strategy() -> impl Strategy<Value = Side> {
        prop_oneof![Just(Side::Buy), Just(Side::Sell)]
    }

    fn time_in_force_strategy() -> impl Strategy<Value = TimeInForce> {
        prop_oneof![
            Just(TimeInForce::Gtc),
            Just(TimeInForce::Ioc),
            Just(TimeInForce::Fok)
        ]
    }

    fn record_strategy() -> impl Strategy<Value = FlowRecord> {
        prop_oneof![
            (
                any::<u32>(),
                any::<u64>(),
                side_strategy(),
                prop::option::of(any::<u64>()),
                1..=u32::MAX,
                time_in_force_strategy(),
                any::<bool>()
            )
                .prop_map(
                    |(instrument, order_id, side, price, qty_lots, time_in_force, post_only)| {
                        FlowRecord::New {
                            instrument,
                            order_id,
                            side,
                            order_type: if price.is_some() {
                                OrderType::Limit
                            } else {
                                OrderType::Market
                            },
                            price_ticks: price.unwrap_or(0),
                            qty_lots,
                            time_in_force,
                            post_only,
                        }
                    }
                ),
            (
                any::<u32>(),
                any::<u64>(),
                prop_oneof![Just(0u32), any::<u32>()]
            )
                .prop_map(|(instrument, order_id, qty_after_lots)| {
                    FlowRecord::Cancel {
                        instrument,
                        order_id,
                        qty_after_lots,
                    }
                }),
            (any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
                |(instrument, order_id, price_ticks, qty_lots)| FlowRecord::Modify {
                    instrument,
                    order_id,
                    price_ticks,
                    qty_lots
                }
            ),
        ]
    }

    /// Lines built from the format's own vocabulary, so that random lines
    /// often come close to valid and exercise the deep branches.
    fn near_valid_line() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just(String::new()),
            Just("new".to_string()),
            Just("cancel".to_string()),
            Just("modify".to_string()),
            Just("buy".to_string()),
            Just("sell".to_string()),
            Just("limit".to_string()),
            Just("market".to_string()),
            Just("gtc".to_string()),
            Just("ioc".to_string()),
            Just("fok".to_string()),
            Just("0".to_string()),
            Just("1".to_string()),
            Just("007".to_string()),
            Just("-5".to_string()),
            Just("99999999999999999999999".to_string()),
            "[0-9]{1,12}",
            ".{0,4}",
        ];
        prop::collection::vec(token, 0..12).prop_map(|fields| fields.join(","))
    }

    proptest! {
        #[test]
        fn written_records_parse_back_identically(records in prop::collection::vec(record_strategy(), 0..40)) {
            let text = flow_to_string(&records);
            let parsed: Vec<FlowRecord> = parse_all(&text)
                .into_iter()
                .collect::<Result<_, _>>()
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(parsed, records);
        }

        #[test]
        fn random_bytes_never_panic_and_errors_stay_on_one_line(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut input = FLOW_HEADER.as_bytes().to_vec();
            input.push(b'\n');
            input.extend_from_slice(&bytes);
            for item in FlowReader::new(input.as_slice()).chain(FlowReader::new(bytes.as_slice())) {
                if let Err(error) = item {
                    prop_assert!(!error.message.contains('\n'));
                    prop_assert!(error.line >= 1);
                }
            }
        }

        #[test]
        fn any_row_that_parses_is_written_back_byte_for_byte(line in near_valid_line()) {
            if let Ok(record) = parse_record(&line, 2) {
                prop_assert_eq!(record.to_string(), line);
            }
        }
    }
}
