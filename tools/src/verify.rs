//! `lockstep verify`: replays a journal through N independent engines in one
//! thread, giving each command to all N before the next, compares their
//! rolling event hashes after every seq and their state hashes at the end,
//! and reports either that all N agree (through which seq, on which state
//! hash) or the first seq where one diverges (exit 1). Engines are
//! deterministic, so a divergence means a bug in the engine or the build;
//! the hidden test-only flag `--inject-divergence-at SEQ` makes the last
//! engine apply a halt of instrument 0 instead of the command at SEQ, so the
//! divergence report itself can be tested. Reading goes through
//! `journal_file` (read only; a torn tail is reported and ignored, a corrupt
//! record fails with its byte offset), and the engines are configured as
//! `replay --journal` configures its one.

use crate::journal_file;
use clap::Args;
use lockstep_engine::{Command, Engine, InstrumentId};
use std::path::PathBuf;

/// The most engines one verify runs.
const REPLICAS_MAX: u32 = 64;

/// Replay a journal through N independent engines and check that they agree
/// after every seq (exit 1 at the first divergence).
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The journal file (for example DIR/journal.lkj written by `lockstep run`).
    #[arg(long, value_name = "FILE")]
    pub journal: PathBuf,
    /// How many independent engines replay the journal.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=REPLICAS_MAX as i64))]
    pub replicas: u32,
    /// Instruments of every engine; must match what wrote the journal
    /// (`lockstep run` prints it).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=u32::MAX as i64))]
    pub instruments: u32,
    /// Order and price-level capacity of every engine (default: the number
    /// of new orders in the journal, at least 1024).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=lockstep_engine::TABLE_CAPACITY_MAX as i64))]
    pub capacity: Option<u32>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Test only: the last engine applies a halt of instrument 0 instead of
    /// the command at this seq.
    #[arg(long, value_name = "SEQ", hide = true)]
    pub inject_divergence_at: Option<u64>,
}

impl VerifyArgs {
    /// The checks that involve more than one argument; a failure here is a
    /// usage error.
    pub fn validate(&self) -> Result<(), String> {
        if self.inject_divergence_at.is_some() && self.replicas < 2 {
            return Err(
                "--inject-divergence-at needs --replicas 2 or more to diverge from".to_string(),
            );
        }
        Ok(())
    }
}

pub fn run(args: &VerifyArgs) -> Result<String, String> {
    args.validate()?;
    let journal = journal_file::load(&args.journal)?;
    let config = journal_file::engine_config(args.instruments, args.capacity, journal.new_orders);
    let capacity = config.orders_max;
    let replicas = args.replicas as usize;
    let mut engines = Vec::with_capacity(replicas);
    for _ in 0..replicas {
        engines.push(Engine::new(config.clone()).map_err(|error| error.to_string())?);
    }
    if let Some(seq) = args.inject_divergence_at {
        let in_range = journal
            .last_seq()
            .is_some_and(|last| seq >= journal.seq_at(0) && seq <= last);
        if !in_range {
            return Err(format!(
                "--inject-divergence-at {seq} is not a seq of the journal ({})",
                match journal.last_seq() {
                    Some(last) => format!("seq {}..={last}", journal.seq_at(0)),
                    None => "it has no records".to_string(),
                }
            ));
        }
    }
    let injected = Command::Halt {
        instrument: InstrumentId(0),
    };
    let last_replica = replicas - 1;
    for (index, command) in journal.commands.iter().enumerate() {
        let seq = journal.seq_at(index);
        for (replica, engine) in engines.iter_mut().enumerate() {
            let command = if replica == last_replica && args.inject_divergence_at == Some(seq) {
                &injected
            } else {
                command
            };
            engine.apply(command, &mut |_| {});
        }
        let reference = engines[0].event_hash();
        if let Some((replica, engine)) = engines
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, engine)| engine.event_hash() != reference)
        {
            return Err(format!(
                "replicas diverge at seq {seq}: replica {replica}'s event hash after seq {seq} is {:016x}, replica 0's is {reference:016x}",
                engine.event_hash()
            ));
        }
    }
    let through_seq = journal.last_seq().unwrap_or(0);
    let state_hash = engines[0].state_hash();
    if let Some((replica, engine)) = engines
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, engine)| engine.state_hash() != state_hash)
    {
        return Err(format!(
            "replicas diverge after seq {through_seq}: every event hash matched, but replica {replica}'s state hash is {:016x} and replica 0's is {state_hash:016x}",
            engine.state_hash()
        ));
    }
    let event_hash = engines[0].event_hash();
    if args.json {
        let value = serde_json::json!({
            "journal": args.journal.display().to_string(),
            "replicas": replicas,
            "instruments": args.instruments,
            "capacity": capacity,
            "commands": journal.commands.len(),
            "first_seq": journal.last_seq().map(|_| journal.seq_at(0)),
            "last_seq": journal.last_seq(),
            "agree": true,
            "through_seq": through_seq,
            "state_hash": format!("{state_hash:016x}"),
            "event_hash": format!("{event_hash:016x}"),
            "torn_tail": journal_file::torn_tail_json(journal.torn_tail),
        });
        return Ok(format!("{value}\n"));
    }
    let lines = [
        format!(
            "verify {}: {} commands, {replicas} replicas, {} instruments, capacity {capacity}",
            args.journal.display(),
            journal.commands.len(),
            args.instruments
        ),
        format!(
            "torn tail: {}",
            journal_file::torn_tail_text(journal.torn_tail)
        ),
        format!("event hash after seq {through_seq}: {event_hash:016x}"),
        format!(
            "{replicas} replicas agree through seq {through_seq}, state hash {state_hash:016x}"
        ),
    ];
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}
