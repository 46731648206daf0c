//! `lockstep replay`: replays a Flow CSV v1 file, or a journal written by
//! `lockstep run`, through one engine and reports what the engine did and how
//! fast. This module owns the replay procedure (read everything first, size
//! the engine from the input, time only the loop that applies commands), the
//! tally of events, the trades CSV and both report formats (text and JSON).
//! A journal is read without being changed: a torn tail is reported, not
//! truncated, and a corrupt record in the middle fails the replay with an
//! error naming its byte offset (see `journal_file`).

use crate::journal_file::{self, LoadedJournal};
use clap::{ArgGroup, Args};
use lockstep_bench::{engine_config_for, load_flow, LoadedFlow};
use lockstep_engine::{Command, Engine, Event, RejectReason};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The smallest order and level capacity a replay engine gets, so that tiny
/// flows still run on a realistically shaped engine.
pub(crate) const CAPACITY_MIN: u32 = 1024;

/// The largest table the engine accepts.
pub(crate) const CAPACITY_MAX: u32 = lockstep_engine::TABLE_CAPACITY_MAX;

/// Replay a flow CSV or a journal through one engine and report accepted and
/// rejected commands, fills, timing and the final hashes.
///
/// A journal names instruments by the engine's index; `lockstep run` prints
/// how many instruments it used (one for a one-instrument flow such as the
/// exchange-core mix), and `--instruments` must match it for the hashes to
/// match. A command naming an instrument the engine lacks is just a reject.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("input").required(true).args(["flow", "journal"])))]
pub struct ReplayArgs {
    /// The Flow CSV v1 file to replay.
    #[arg(long, value_name = "FILE.csv")]
    pub flow: Option<PathBuf>,
    /// A journal to replay (for example DIR/journal.lkj written by `lockstep
    /// run`); read only, a torn tail is reported and ignored.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Instruments of the engine a journal is replayed on (default 1).
    #[arg(long, value_name = "N", requires = "journal",
          value_parser = clap::value_parser!(u32).range(1..=u32::MAX as i64))]
    pub instruments: Option<u32>,
    /// Write every fill as `taker_order_id,maker_order_id,price,qty`, in
    /// execution order.
    #[arg(long, value_name = "FILE.csv")]
    pub trades_out: Option<PathBuf>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Order and price-level capacity of the engine (default: the number of
    /// new orders in the flow or journal, at least 1024).
    #[arg(long, value_name = "N")]
    pub capacity: Option<u32>,
}

/// One execution, as the trades CSV lists it.
#[derive(Clone, Copy, Debug)]
struct Trade {
    taker_order_id: u64,
    maker_order_id: u64,
    price_ticks: u64,
    qty_lots: u32,
}

/// What the engine emitted over the whole replay.
#[derive(Clone, Debug)]
struct Tally {
    accepted: u64,
    /// Indexed by the reason's numeric code.
    rejected_by_code: [u64; 256],
    fills: u64,
    canceled: u64,
    replaced: u64,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            accepted: 0,
            // Reason codes are a u8, so 256 slots hold any code the engine
            // may ever add without a bounds check failing.
            rejected_by_code: [0; 256],
            fills: 0,
            canceled: 0,
            replaced: 0,
        }
    }
}

impl Tally {
    fn rejected_total(&self) -> u64 {
        self.rejected_by_code.iter().sum()
    }

    fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected_by_code[reason as usize]
    }
}

/// Flow ids are `u64`s and a flow's tokens are made from them, so every
/// token converts back; the fallback only keeps this total.
fn flow_order_id(token: lockstep_engine::Token) -> u64 {
    token.to_u64().unwrap_or(u64::MAX)
}

pub(crate) fn read_flow(path: &Path) -> Result<LoadedFlow, String> {
    let file =
        File::open(path).map_err(|error| format!("cannot open {}: {error}", path.display()))?;
    load_flow(BufReader::with_capacity(1 << 16, file))
        .map_err(|error| format!("{}:{}: {}", path.display(), error.line, error.message))
}

fn write_trades(path: &Path, trades: &[Trade]) -> Result<(), String> {
    let failed = |error: std::io::Error| format!("cannot write {}: {error}", path.display());
    let file = File::create(path).map_err(failed)?;
    let mut writer = BufWriter::with_capacity(1 << 16, file);
    writeln!(writer, "taker_order_id,maker_order_id,price,qty").map_err(failed)?;
    for trade in trades {
        writeln!(
            writer,
            "{},{},{},{}",
            trade.taker_order_id, trade.maker_order_id, trade.price_ticks, trade.qty_lots
        )
        .map_err(failed)?;
    }
    writer.flush().map_err(failed)
}

/// Where the commands came from.
enum Source<'a> {
    Flow(&'a Path),
    Journal {
        path: &'a Path,
        journal: &'a LoadedJournal,
    },
}

pub fn run(args: &ReplayArgs) -> Result<String, String> {
    let (flow, journal);
    let (source, commands, instruments, new_orders) = match (&args.flow, &args.journal) {
        (Some(path), None) => {
            flow = read_flow(path)?;
            let instruments = flow.mapper.instrument_count();
            (
                Source::Flow(path),
                &flow.commands,
                instruments,
                flow.new_orders,
            )
        }
        (None, Some(path)) => {
            journal = journal_file::load(path)?;
            (
                Source::Journal {
                    path,
                    journal: &journal,
                },
                &journal.commands,
                args.instruments.unwrap_or(1),
                journal.new_orders,
            )
        }
        _ => return Err("give exactly one of --flow and --journal".to_string()),
    };
    // No more orders can rest at once than the input creates, and no more
    // levels than orders, so this capacity can never refuse an order.
    let capacity = args
        .capacity
        .unwrap_or_else(|| journal_file::default_capacity(new_orders));
    let config = engine_config_for(instruments, capacity);
    let mut engine = Engine::new(config).map_err(|error| error.to_string())?;
    let (tally, trades, elapsed) = apply_all(&mut engine, commands, args.trades_out.is_some());

    if let Some(path) = &args.trades_out {
        write_trades(path, &trades)?;
    }
    let ns_per_command = if commands.is_empty() {
        0.0
    } else {
        elapsed.as_nanos() as f64 / commands.len() as f64
    };
    let summary = Summary {
        source,
        commands: commands.len() as u64,
        instruments,
        capacity,
        tally: &tally,
        elapsed_ns: elapsed.as_nanos(),
        ns_per_command,
        state_hash: engine.state_hash(),
        event_hash: engine.event_hash(),
        orders_live: engine.orders_live(),
        trades_out: args.trades_out.as_deref(),
    };
    Ok(if args.json {
        summary.json()
    } else {
        summary.text()
    })
}

/// Applies every command, tallying events (and collecting trades if asked);
/// only this loop is timed.
fn apply_all(
    engine: &mut Engine,
    commands: &[Command],
    collect_trades: bool,
) -> (Tally, Vec<Trade>, std::time::Duration) {
    // Every fill either empties a resting order (each order rests at most
    // once per new or modify command) or ends its taker (once per command),
    // so a flow of n commands has at most 2n fills: reserving that up front
    // means the timed loop never grows the vector.
    let mut trades: Vec<Trade> = if collect_trades {
        Vec::with_capacity(commands.len().saturating_mul(2))
    } else {
        Vec::new()
    };
    let mut tally = Tally::default();
    let mut sink = |event: &Event| match event {
        Event::Accepted { .. } => tally.accepted += 1,
        Event::Rejected { reason, .. } => tally.rejected_by_code[*reason as usize] += 1,
        Event::Fill {
            price,
            qty,
            taker,
            maker,
            ..
        } => {
            tally.fills += 1;
            if collect_trades {
                trades.push(Trade {
                    taker_order_id: flow_order_id(taker.token),
                    maker_order_id: flow_order_id(maker.token),
                    price_ticks: *price,
                    qty_lots: *qty,
                });
            }
        }
        Event::Canceled { .. } => tally.canceled += 1,
        Event::Replaced { .. } => tally.replaced += 1,
        Event::InstrumentStatus { .. } | Event::SelfTradePreventionSet { .. } => {}
    };

    let started = Instant::now();
    for command in commands {
        engine.apply(command, &mut sink);
    }
    let elapsed = started.elapsed();
    (tally, trades, elapsed)
}

impl Source<'_> {
    fn path(&self) -> &Path {
        match self {
            Source::Flow(path) => path,
            Source::Journal { path, .. } => path,
        }
    }
}

/// Everything a report shows.
struct Summary<'a> {
    source: Source<'a>,
    commands: u64,
    instruments: u32,
    capacity: u32,
    tally: &'a Tally,
    elapsed_ns: u128,
    ns_per_command: f64,
    state_hash: u64,
    event_hash: u64,
    orders_live: u32,
    trades_out: Option<&'a Path>,
}

impl Summary<'_> {
    fn text(&self) -> String {
        let tally = self.tally;
        let mut lines = vec![format!(
            "replayed {} ({} instruments, capacity {})",
            self.source.path().display(),
            self.instruments,
            self.capacity
        )];
        if let Source::Journal { journal, .. } = &self.source {
            let seqs = match (journal.first_seq, journal.last_seq()) {
                (_, Some(last)) => format!("{}..={last}", journal.seq_at(0)),
                (Some(first), None) => format!("none (header first seq {first})"),
                (None, None) => "none (empty file)".to_string(),
            };
            lines.push(format!("journal seqs:     {seqs}"));
            lines.push(format!(
                "torn tail:        {}",
                journal_file::torn_tail_text(journal.torn_tail)
            ));
        }
        lines.extend([
            format!("commands applied: {}", self.commands),
            format!("accepted:         {}", tally.accepted),
            format!("rejected:         {}", tally.rejected_total()),
        ]);
        for reason in RejectReason::ALL {
            let count = tally.rejected(reason);
            if count > 0 {
                // Wide enough for the longest name and a gap.
                lines.push(format!("  {:<27}{count}", reason.name()));
            }
        }
        lines.extend([
            format!("fills:            {}", tally.fills),
            format!("canceled:         {}", tally.canceled),
            format!("replaced:         {}", tally.replaced),
            format!("orders resting:   {}", self.orders_live),
            format!(
                "apply loop:       {:.3} ms, {:.1} ns per command",
                self.elapsed_ns as f64 / 1e6,
                self.ns_per_command
            ),
            format!("state hash:       {:016x}", self.state_hash),
            format!("event hash:       {:016x}", self.event_hash),
        ]);
        if let Some(path) = self.trades_out {
            lines.push(format!(
                "trades written:   {} to {}",
                tally.fills,
                path.display()
            ));
        }
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    fn json(&self) -> String {
        let tally = self.tally;
        let rejected: serde_json::Map<String, serde_json::Value> = RejectReason::ALL
            .iter()
            .map(|reason| (reason.name().to_string(), tally.rejected(*reason).into()))
            .collect();
        let mut value = serde_json::json!({
            "instruments": self.instruments,
            "capacity": self.capacity,
            "commands": self.commands,
            "accepted": tally.accepted,
            "rejected": rejected,
            "rejected_total": tally.rejected_total(),
            "fills": tally.fills,
            "canceled": tally.canceled,
            "replaced": tally.replaced,
            "orders_resting": self.orders_live,
            "elapsed_ns": self.elapsed_ns as u64,
            "ns_per_command": self.ns_per_command,
            "state_hash": format!("{:016x}", self.state_hash),
            "event_hash": format!("{:016x}", self.event_hash),
            "trades_out": self.trades_out.map(|path| path.display().to_string()),
        });
        match &self.source {
            Source::Flow(path) => {
                value["flow"] = path.display().to_string().into();
            }
            Source::Journal { path, journal } => {
                value["journal"] = path.display().to_string().into();
                value["header_first_seq"] = journal.first_seq.into();
                value["first_seq"] = journal.last_seq().map(|_| journal.seq_at(0)).into();
                value["last_seq"] = journal.last_seq().into();
                value["torn_tail"] = journal_file::torn_tail_json(journal.torn_tail);
            }
        }
        format!("{value}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_bench::FLOW_HEADER;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("lockstep-replay-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_small_flow_reports_its_fills_rejects_and_trades() {
        let flow_path = temp_path("small.csv");
        let trades_path = temp_path("small.trades.csv");
        let flow = format!(
            "{FLOW_HEADER}\n\
new,1,1001,buy,limit,10050,100,gtc,0\n\
new,1,1002,sell,market,,50,ioc,0\n\
cancel,1,1001,,,,,,\n\
modify,1,1003,,,10060,80,,\n"
        );
        std::fs::write(&flow_path, flow).expect("temp file");
        let args = ReplayArgs {
            flow: Some(flow_path.clone()),
            journal: None,
            instruments: None,
            trades_out: Some(trades_path.clone()),
            json: true,
            capacity: None,
        };
        let report = run(&args).expect("replay runs");
        let value: serde_json::Value = serde_json::from_str(&report).expect("valid JSON");
        assert_eq!(value["commands"], 4);
        assert_eq!(value["accepted"], 2);
        assert_eq!(value["fills"], 1);
        assert_eq!(value["rejected_total"], 1);
        assert_eq!(value["rejected"]["unknown_order"], 1);
        assert_eq!(value["capacity"], 1024);
        assert_eq!(value["state_hash"].as_str().map(str::len), Some(16));
        let trades = std::fs::read_to_string(&trades_path).expect("trades written");
        assert_eq!(
            trades,
            "taker_order_id,maker_order_id,price,qty\n1002,1001,10050,50\n"
        );
        let _ = std::fs::remove_file(flow_path);
        let _ = std::fs::remove_file(trades_path);
    }

    #[test]
    fn a_parse_error_names_file_and_line_and_writes_nothing() {
        let flow_path = temp_path("bad.csv");
        let trades_path = temp_path("bad.trades.csv");
        std::fs::write(
            &flow_path,
            format!("{FLOW_HEADER}\nnew,1,1,buy,limit,5,5,gtc,0\nnew,1,2,buy,limit,x,5,gtc,0\n"),
        )
        .expect("temp file");
        let args = ReplayArgs {
            flow: Some(flow_path.clone()),
            journal: None,
            instruments: None,
            trades_out: Some(trades_path.clone()),
            json: false,
            capacity: None,
        };
        let error = run(&args).expect_err("bad price");
        assert_eq!(
            error,
            format!(
                "{}:3: price: \"x\" is not an unsigned decimal integer",
                flow_path.display()
            )
        );
        assert!(!trades_path.exists());
        let _ = std::fs::remove_file(flow_path);
    }
}
