//! The `lockstep` command: parses the command line with clap and hands each
//! subcommand to its module (`demo`, `replay`, `gen`, `import`, `run`,
//! `dump`, `verify`, `bench_engine`, `bench_core`, `bench_cmd`, `serve`,
//! `sim`).
//! This file owns the process's contract with its caller: a report on
//! stdout, every error as one line on stderr starting with `lockstep: `, exit
//! status 0 on success, 1 when the work failed and 2 when the command line
//! was wrong.

mod bench_cmd;
mod bench_core;
mod bench_engine;
mod bench_replay;
mod demo;
mod dump;
mod gen;
mod import;
mod journal_file;
mod replay;
mod run;
mod serve;
mod serve_config;
mod sim;
mod verify;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

/// Lockstep's command-line tools: replay order flows through the matching
/// engine, generate synthetic flows, import real market data and benchmark
/// the engine.
#[derive(Parser, Debug)]
#[command(name = "lockstep", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Replay(replay::ReplayArgs),
    Gen(gen::GenArgs),
    ImportLobster(import::ImportArgs),
    BenchEngine(bench_engine::BenchEngineArgs),
    BenchCore(bench_core::BenchCoreArgs),
    Run(run::RunArgs),
    Dump(dump::DumpArgs),
    Verify(verify::VerifyArgs),
    Serve(serve::ServeArgs),
    Sim(sim::SimArgs),
    // Boxed: the bench has many options, and the enum is as large as its
    // largest variant.
    Bench(Box<bench_cmd::BenchArgs>),
    Demo(demo::DemoArgs),
}

/// The exit status for a command line clap refused, as clap itself uses.
const EXIT_USAGE: u8 = 2;
/// The exit status for work that failed.
const EXIT_FAILURE: u8 = 1;

/// Squeezes clap's multi-line message (problem, usage, hint) into the one
/// line the error contract promises: the problem and its details, then a
/// pointer to `--help`, which has everything the dropped usage text had.
fn one_line_usage_error(error: &clap::Error) -> String {
    let text = error.to_string();
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line);
        }
    }
    let problem = parts.join(" ");
    let problem = problem.strip_prefix("error: ").unwrap_or(&problem);
    format!("{problem} (see lockstep --help)")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            return match error.kind() {
                // Help and version are answers, not errors: clap prints them
                // to stdout and they exit 0.
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = error.print();
                    ExitCode::SUCCESS
                }
                // Clap would print the whole help to stderr here; one line
                // keeps the error contract and still says what to do.
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    eprintln!(
                        "lockstep: a subcommand is required: demo, replay, gen, import-lobster, run, dump, verify, bench-engine, bench-core, bench, serve or sim (see lockstep --help)"
                    );
                    ExitCode::from(EXIT_USAGE)
                }
                _ => {
                    eprintln!("lockstep: {}", one_line_usage_error(&error));
                    ExitCode::from(EXIT_USAGE)
                }
            };
        }
    };
    // Checks across several arguments, which clap cannot express, are usage
    // errors too.
    let usage_check = match &cli.command {
        Command::BenchEngine(args) => args.validate(),
        Command::BenchCore(args) => args.validate(),
        Command::Verify(args) => args.validate(),
        Command::Bench(args) => args.validate(),
        Command::Demo(args) => args.validate(),
        Command::Run(_) | Command::Dump(_) | Command::Serve(_) | Command::Sim(_) => Ok(()),
        Command::Replay(_) | Command::Gen(_) | Command::ImportLobster(_) => Ok(()),
    };
    if let Err(problem) = usage_check {
        eprintln!("lockstep: {problem} (see lockstep --help)");
        return ExitCode::from(EXIT_USAGE);
    }
    let result = match cli.command {
        Command::Replay(args) => replay::run(&args),
        Command::Gen(args) => gen::run(&args),
        Command::ImportLobster(args) => import::run(&args),
        Command::BenchEngine(args) => bench_engine::run(&args),
        Command::BenchCore(args) => bench_core::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Dump(args) => dump::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::Bench(args) => bench_cmd::run(&args),
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(report) => {
            // A closed stdout (say, piped into `head`) is not worth a panic;
            // the work itself is done.
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(report.as_bytes());
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(message) => {
            // Messages are built as one line; this guards the promise against
            // a stray newline from an operating-system error text.
            let message = message.replace(['\n', '\r'], " ");
            eprintln!("lockstep: {message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_become_one_line() {
        let error = Cli::try_parse_from(["lockstep", "replay", "--bogus"]).expect_err("bad flag");
        let line = one_line_usage_error(&error);
        assert!(!line.contains('\n'));
        assert!(line.contains("--bogus"), "{line}");
        let error = Cli::try_parse_from(["lockstep", "replay"]).expect_err("missing --flow");
        let line = one_line_usage_error(&error);
        assert!(line.contains("--flow"), "{line}");
    }
}
