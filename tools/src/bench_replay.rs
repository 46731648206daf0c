//! `lockstep bench --replay FILE [--speed max|Nx]`: the command-line side of
//! `lockstep_bench::run_replay`. This module owns the replay's server
//! configuration (the bundled default of `lockstep serve`, or `--config`,
//! with `--io`, `--durability` and `--dir` applied exactly as for a load
//! run; the replay itself replaces the sessions and sizes the tables) and
//! the outcome: the report on stdout, and a failure (exit status 1) when the
//! server's state does not match the offline reference.

use crate::bench_cmd::{self, BenchArgs};
use lockstep_bench::hgrm::percentile_distribution;
use lockstep_bench::latency::Percentiles;
use lockstep_bench::{
    replay_text_report, run_replay, InProcessServer, ReplayOptions, ReplayReport,
};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// The in-process server a replay starts, before the replay sets its
/// sessions.
pub(crate) fn replay_server(args: &BenchArgs) -> Result<InProcessServer, String> {
    let mut config = bench_cmd::base_config(args)?;
    match args.io.as_slice() {
        [] => {}
        [io] => {
            if *io == lockstep_transport::gateway_config::IoBackend::Uring {
                lockstep_bench::echo::uring_available()
                    .map_err(|why| format!("--io uring: {why}"))?;
            }
            config.set_io_backend(*io);
        }
        _ => return Err("--replay runs one server: give at most one --io backend".to_string()),
    }
    bench_cmd::in_process_server(args, config)
}

/// Writes the latency histogram (`replay.command_to_answer.hgrm`, for
/// HdrHistogram's plotter) and `replay-summary.json` into `out`; returns
/// the file names.
fn write_replay_files(out: &Path, report: &ReplayReport) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(out).map_err(|error| format!("--out {}: {error}", out.display()))?;
    let hgrm = "replay.command_to_answer.hgrm";
    let summary = "replay-summary.json";
    let json = json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "input": report.input.display().to_string(),
        "format": format!("{:?}", report.format),
        "speed": report.speed.text(),
        "commands_read": report.commands_read,
        "skipped_not_ouch": report.skipped_not_ouch,
        "skipped_duplicate_token": report.skipped_duplicate_token,
        "sessions": report.sessions,
        "sent": report.sent,
        "unanswered": report.unanswered,
        "outputs_match": report.outputs_match,
        "wall_s": report.wall.as_secs_f64(),
        "achieved_per_s": report.achieved_per_s,
        "latency_ns": Percentiles::of(&report.latency).to_json(),
        "reference_hash": format!("{:016x}", report.reference_hash),
        "server_hash": report.server_hash.map(|hash| format!("{hash:016x}")),
        "replicas": report.replicas,
        "replicas_agree": report.replicas_agree,
        "passed": report.passed(),
        "files": {"command_to_answer": hgrm},
    });
    for (name, text) in [
        (hgrm, percentile_distribution(&report.latency, 1_000.0)),
        (summary, format!("{json:#}\n")),
    ] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|error| format!("{}: {error}", path.display()))?;
    }
    Ok(vec![hgrm.to_string(), summary.to_string()])
}

pub fn run(args: &BenchArgs, input: &Path) -> Result<String, String> {
    let mut options = ReplayOptions::new(input, args.speed, replay_server(args)?);
    options.drain_timeout = Duration::from_secs_f64(args.drain_timeout_s);
    let mut progress = lockstep_bench::progress::stderr_progress();
    let report = run_replay(&options, progress.as_mut())?;
    let mut text = replay_text_report(&report);
    let written = write_replay_files(&args.out, &report)?;
    text.push_str(&format!(
        "\nwritten to {}: {}\n",
        args.out.display(),
        written.join(", ")
    ));
    if report.passed() {
        return Ok(text);
    }
    // The report is the evidence; it goes to stdout like a passing one,
    // and the one-line error says which check failed.
    print!("{text}");
    Err(format!(
        "replay FAILED: server state hash {} vs reference {:016x}, replicas {}, {} sequenced for \
         {} sent, session outputs {}, {} unanswered",
        report
            .server_hash
            .map_or_else(|| "none".to_string(), |hash| format!("{hash:016x}")),
        report.reference_hash,
        if report.replicas_agree {
            "agree"
        } else {
            "disagree"
        },
        report.server_sequenced,
        report.sent,
        if report.outputs_match {
            "match"
        } else {
            "differ"
        },
        report.unanswered
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[&str]) -> Result<BenchArgs, String> {
        BenchArgs::from_args(line.iter().copied())
    }

    #[test]
    fn replay_takes_a_speed_and_refuses_connect() {
        let args = parse(&["--replay", "x.csv", "--speed", "1000x"]).unwrap();
        assert_eq!(args.speed, lockstep_bench::Speed::Factor(1000.0));
        let args = parse(&["--replay", "x.csv"]).unwrap();
        assert_eq!(args.speed, lockstep_bench::Speed::Max);
        assert!(parse(&["--replay", "x.csv", "--connect", "127.0.0.1:1"]).is_err());
        assert!(parse(&["--replay", "x.csv", "--rate", "10k"]).is_err());
        assert!(parse(&["--replay", "x.csv", "--speed", "0x"]).is_err());
        assert!(parse(&["--speed", "10x"]).is_err());
    }

    #[test]
    fn the_replay_server_follows_the_config_and_refuses_two_backends() {
        let args = parse(&["--replay", "x.csv", "--durability", "none"]).unwrap();
        let server = replay_server(&args).unwrap();
        assert_eq!(
            server.system.durability,
            lockstep_sequencer::durability::DurabilityPolicy::None
        );
        let args = parse(&["--replay", "x.csv", "--io", "mio,uring"]).unwrap();
        assert!(replay_server(&args).is_err());
    }
}
