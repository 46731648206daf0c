//! The properties the fuzz targets in `bench/fuzz/` check, in one place, so
//! that `cargo fuzz run` and the stable test `tests/fuzz_corpus.rs` (which
//! replays every saved corpus file) check exactly the same things. Each
//! check takes arbitrary bytes and panics when a property fails; a panic is
//! a finding.
//!
//! - [`flow_csv`]: the bytes are read as a flow file by the streaming
//!   [`FlowReader`] and by [`load_flow`]. Nothing panics; the reader gives
//!   exactly the items that splitting the whole text into lines and
//!   parsing each with [`parse_record`] gives (so its buffering, line
//!   numbers, blank lines and `\r\n` handling are right); every accepted
//!   row is the canonical spelling of its record (written back byte for
//!   byte); every error names a line that exists and stays on one line;
//!   `load_flow` fails at the reader's first error or maps every record;
//!   an accepted flow written out again with [`FlowWriter`] reads back to
//!   the same records and loads to the same commands; and the commands run
//!   through an [`Engine`] without panicking or breaking its invariants.
//! - [`lobster_import`]: the bytes are imported as a LOBSTER message file.
//!   Nothing panics; a malformed line stops the import with an error that
//!   names that line (one that exists, is not blank and is not the
//!   header), and what was written before it is exactly what importing the
//!   lines before it writes; a successful import writes a valid flow with
//!   one record per converted event, counts every data line once, never
//!   reuses an order id, and cancels or modifies only orders it entered
//!   and has not canceled.

#![doc(hidden)]

use crate::flow::{
    engine_config_for, flow_to_string, load_flow, parse_record, FlowError, FlowMapper, FlowReader,
    FlowRecord, FlowWriter, FLOW_HEADER,
};
use crate::generate::{generate, Mix};
use crate::lobster::{import_lobster, ImportError, FRESH_ORDER_ID_BASE, LOBSTER_INSTRUMENT};
use lockstep_engine::{Engine, TimeInForce};
use std::collections::HashSet;

/// Flows naming at most this many instruments are also run through an
/// engine (each instrument costs the engine memory up front).
const ENGINE_INSTRUMENTS_MAX: u32 = 8;
/// Order and level capacity of that engine: small, so tables fill.
const ENGINE_CAPACITY: u32 = 64;

/// One line of a text as a `read_until(b'\n')` loop sees it.
struct Line<'a> {
    /// 1-based.
    number: u64,
    /// Where the line starts in the text.
    start: usize,
    /// The line without its `\n`.
    bytes: &'a [u8],
}

/// Splits `data` into lines: each ends at a `\n` (not included), and a
/// last line without one counts too.
fn lines(data: &[u8]) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = data[start..]
            .iter()
            .position(|&byte| byte == b'\n')
            .map_or(data.len(), |at| start + at);
        lines.push(Line {
            number: lines.len() as u64 + 1,
            start,
            bytes: &data[start..end],
        });
        start = end + 1;
    }
    lines
}

/// A line as the flow reader reads it: without a `\r` before its `\n`.
fn flow_line<'a>(data: &[u8], line: &Line<'a>) -> &'a [u8] {
    let terminated = data.get(line.start + line.bytes.len()) == Some(&b'\n');
    match line.bytes.strip_suffix(b"\r") {
        Some(stripped) if terminated => stripped,
        _ => line.bytes,
    }
}

/// What [`FlowReader`] must give for `data`, from the whole text at once.
fn expected_flow_items(data: &[u8]) -> Vec<Result<(FlowRecord, Vec<u8>), FlowError>> {
    let lines = lines(data);
    let Some(header) = lines.first() else {
        return vec![Err(FlowError {
            line: 1,
            message: format!("header: the file is empty, expected {FLOW_HEADER:?}"),
        })];
    };
    if flow_line(data, header) != FLOW_HEADER.as_bytes() {
        // The message is the reader's; only its line is checked.
        return vec![Err(FlowError {
            line: 1,
            message: String::new(),
        })];
    }
    let mut items = Vec::new();
    for line in &lines[1..] {
        let bytes = flow_line(data, line);
        if bytes.is_empty() {
            continue;
        }
        items.push(match std::str::from_utf8(bytes) {
            Ok(text) => parse_record(text, line.number).map(|record| (record, bytes.to_vec())),
            Err(_) => Err(FlowError {
                line: line.number,
                message: "the line is not valid UTF-8".to_string(),
            }),
        });
    }
    items
}

fn check_flow_error(error: &FlowError, line_count: usize) {
    assert!(
        error.line >= 1 && error.line <= line_count.max(1) as u64,
        "{error:?} names a line outside 1..={line_count}"
    );
    assert!(!error.message.contains('\n'), "{error:?} spans lines");
    assert!(!error.message.is_empty(), "{error:?} says nothing");
    assert!(error
        .to_string()
        .starts_with(&format!("line {}: ", error.line)));
}

/// Reads `data` as a flow file; see the module documentation.
pub fn flow_csv(data: &[u8]) {
    let items: Vec<Result<FlowRecord, FlowError>> = FlowReader::new(data).collect();
    let expected = expected_flow_items(data);
    assert_eq!(
        items.len(),
        expected.len(),
        "the reader gave {items:?}, the lines say {expected:?}"
    );
    let line_count = lines(data).len();
    for (item, expected) in items.iter().zip(&expected) {
        match (item, expected) {
            (Ok(record), Ok((expected, line))) => {
                assert_eq!(record, expected);
                assert_eq!(
                    record.to_string().as_bytes(),
                    &line[..],
                    "{record:?} is not written as the row it was read from"
                );
            }
            (Err(error), Err(expected)) => {
                check_flow_error(error, line_count);
                assert_eq!(error.line, expected.line);
                if !expected.message.is_empty() {
                    assert_eq!(error.message, expected.message);
                }
            }
            _ => panic!("the reader gave {item:?}, the line says {expected:?}"),
        }
    }
    let first_error = items.iter().find_map(|item| item.as_ref().err());
    match (load_flow(data), first_error) {
        (Err(error), Some(first)) => assert_eq!(&error, first),
        (Ok(loaded), None) => {
            let records: Vec<FlowRecord> = items.into_iter().map(Result::unwrap).collect();
            let mut mapper = FlowMapper::new();
            let commands: Vec<_> = records.iter().map(|record| mapper.map(record)).collect();
            assert_eq!(loaded.commands, commands);
            assert_eq!(
                loaded.new_orders,
                records
                    .iter()
                    .filter(|record| matches!(record, FlowRecord::New { .. }))
                    .count() as u64
            );
            // Written out again, the flow reads and loads the same.
            let mut written = FlowWriter::new(Vec::new()).expect("writing to memory");
            for record in &records {
                written.write(record).expect("writing to memory");
            }
            let written = written.finish().expect("writing to memory");
            assert_eq!(written, flow_to_string(&records).into_bytes());
            let reread: Vec<FlowRecord> = FlowReader::new(written.as_slice())
                .collect::<Result<_, _>>()
                .expect("a written flow reads back");
            assert_eq!(reread, records);
            let reloaded = load_flow(written.as_slice()).expect("a written flow loads");
            assert_eq!(reloaded.commands, loaded.commands);
            assert_eq!(
                reloaded.mapper.flow_instruments(),
                loaded.mapper.flow_instruments()
            );
            replay(&loaded.commands, loaded.mapper.instrument_count());
        }
        (result, first) => panic!("load_flow gave {result:?}, the reader's first error {first:?}"),
    }
}

/// Runs a flow's commands through an engine, as `lockstep replay` does;
/// the engine must take any flow without panicking.
fn replay(commands: &[lockstep_engine::Command], instrument_count: u32) {
    if instrument_count > ENGINE_INSTRUMENTS_MAX {
        return;
    }
    let mut engine = Engine::new(engine_config_for(instrument_count, ENGINE_CAPACITY))
        .expect("a flow's engine configuration is valid");
    for command in commands {
        engine.apply(command, &mut |_| {});
    }
    if let Err(problem) = engine.check_invariants() {
        panic!("the engine broke an invariant: {problem}");
    }
}

// ----- LOBSTER -----------------------------------------------------------------

/// Imports `data` as a LOBSTER message file; see the module documentation.
pub fn lobster_import(data: &[u8]) {
    let mut output = Vec::new();
    let result = import_lobster(data, &mut output);
    let lines = lines(data);
    match result {
        Ok(stats) => {
            let records: Vec<FlowRecord> = FlowReader::new(output.as_slice())
                .collect::<Result<_, _>>()
                .unwrap_or_else(|error| panic!("the import wrote an invalid flow: {error}"));
            assert_eq!(records.len() as u64, stats.records_written);
            assert_eq!(stats.converted_total(), stats.records_written);
            let data_lines = lines
                .iter()
                .filter(|line| {
                    let text = std::str::from_utf8(line.bytes).expect("an imported line is UTF-8");
                    let text = text.trim_end_matches('\r');
                    !(text.trim().is_empty() || (line.number == 1 && text.starts_with("time")))
                })
                .count() as u64;
            assert_eq!(
                stats.converted_total() + stats.skipped_total(),
                data_lines,
                "not every data line is counted once: {stats:?}"
            );
            check_imported_flow(&records);
        }
        Err(ImportError::Malformed { line, message }) => {
            let error = ImportError::Malformed {
                line,
                message: message.clone(),
            };
            assert!(error.to_string().starts_with(&format!("line {line}: ")));
            assert!(!message.contains('\n'), "{message:?} spans lines");
            let named = lines
                .iter()
                .find(|candidate| candidate.number == line)
                .unwrap_or_else(|| panic!("line {line} of {} is named", lines.len()));
            if let Ok(text) = std::str::from_utf8(named.bytes) {
                let text = text.trim_end_matches('\r');
                assert!(!text.trim().is_empty(), "blank line {line} is named");
                assert!(
                    !(line == 1 && text.starts_with("time")),
                    "the header is named"
                );
            }
            // What was written before the error is what the lines before it
            // write on their own.
            let mut before = Vec::new();
            import_lobster(&data[..named.start], &mut before)
                .unwrap_or_else(|error| panic!("the lines before line {line} fail: {error}"));
            assert_eq!(
                output, before,
                "the output before the error at line {line} is not the import of the lines before it"
            );
        }
        Err(error) => panic!("importing from memory into memory failed: {error}"),
    }
}

/// Ids are never reused; a cancel or modify names an order the flow entered
/// as a resting (GTC) order and has not canceled yet.
fn check_imported_flow(records: &[FlowRecord]) {
    let mut entered = HashSet::new();
    let mut resting = HashSet::new();
    for record in records {
        assert_eq!(record.instrument(), LOBSTER_INSTRUMENT);
        match *record {
            FlowRecord::New {
                order_id,
                time_in_force,
                ..
            } => {
                assert!(entered.insert(order_id), "order id {order_id} reused");
                if time_in_force == TimeInForce::Gtc {
                    assert!(order_id < FRESH_ORDER_ID_BASE);
                    resting.insert(order_id);
                } else {
                    assert!(order_id >= FRESH_ORDER_ID_BASE);
                }
            }
            FlowRecord::Modify { order_id, .. } => {
                assert!(resting.contains(&order_id), "modify of {order_id}");
            }
            FlowRecord::Cancel { order_id, .. } => {
                assert!(resting.remove(&order_id), "cancel of {order_id}");
            }
        }
    }
}

// ----- seeds ---------------------------------------------------------------------

/// Inputs that reach deep into each target, for seeding the corpus: flows
/// of every record kind (written by hand, with Windows line endings, and
/// generated), and LOBSTER files with every event type. Each is
/// `(target, name, bytes)`.
pub fn seed_inputs() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let design = format!(
        "{FLOW_HEADER}\nnew,1,1001,buy,limit,10050,100,gtc,0\nnew,1,1002,sell,market,,50,ioc,0\n\
         cancel,1,1001,,,,,,\nmodify,1,1003,,,10060,80,,\nnew,2,7,sell,limit,10,5,fok,0\n\
         new,2,8,buy,limit,9,5,gtc,1\ncancel,2,8,,,,2,,\n\nmodify,2,8,,,9,0,,"
    );
    seeds.push((
        "flow_csv",
        "seed-every-kind".to_string(),
        design.clone().into_bytes(),
    ));
    seeds.push((
        "flow_csv",
        "seed-crlf".to_string(),
        design.replace('\n', "\r\n").into_bytes(),
    ));
    for mix in Mix::ALL {
        seeds.push((
            "flow_csv",
            format!("seed-generated-{}", mix.name()),
            flow_to_string(&generate(mix, 7, 40)).into_bytes(),
        ));
    }
    let lobster = "time,type,order_id,size,price,direction\n\
                   34200.017459617,5,0,1,2238200,-1\n\
                   34200.18960767,1,11885113,21,2238100,1\n\
                   34200.190226476,4,11885113,5,2238100,1\n\
                   34200.2,1,11534792,26,2237500,1\n\
                   34200.3,2,11534792,6,2237500,1\n\
                   34200.4,2,11534792,20,2237500,1\n\
                   34200.5,1,11534793,10,2239000,-1\n\
                   34200.6,3,11534793,10,2239000,-1\n\
                   34200.7,3,11534793,10,2239000,-1\n\
                   34200.8,6,0,100,2238000,1\n\
                   34200.9,7,0,0,-1,-1\n\
                   34201,4,11885113,16,2238100,1\r\n\
                   \n\
                   34201.1,1,11885113,3,2238100,1\n";
    seeds.push((
        "lobster_import",
        "seed-every-type".to_string(),
        lobster.as_bytes().to_vec(),
    ));
    seeds.push((
        "lobster_import",
        "seed-malformed".to_string(),
        b"34200.1,1,5,10,100,1\n34200.2,9,5,10,100,1\n".to_vec(),
    ));
    seeds
}
