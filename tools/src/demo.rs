//! `lockstep demo`: the first command a newcomer runs. It starts the whole
//! system in this process on loopback, with the bundled default config of
//! `lockstep serve` (three replicas, journal on group commit), twice:
//!
//! 1. it replays the bundled real day of AMZN order flow (LOBSTER) through
//!    TCP clients, compressed in time, and checks that the server ends in
//!    the state hash an offline replay of the same flow gives;
//! 2. it drives a synthetic open-loop load through TCP clients, next to a
//!    bare TCP echo baseline of the same message sizes, kills the replica
//!    egress is publishing from halfway, and counts the gaps and
//!    duplicates the clients saw.
//!
//! It prints a short report (throughput, latency percentiles against the
//! echo, replica agreement, failover gaps) and writes the histograms, the
//! JSON summary and the latency plot. It fails (exit status 1) when a check
//! fails: a state hash mismatch, replicas that disagree, or a gap or a
//! duplicate seen by a client.

use crate::bench_cmd::{self, BenchArgs};
use clap::Args;
use lockstep_bench::latency::Percentiles;
use lockstep_bench::progress::stderr_progress;
use lockstep_bench::{
    run_load_with_progress, run_replay, write_reports, EchoBackend, LoadOptions, LoadReport,
    Pacing, ReplayOptions, ReplayReport, ReplicaKill, Speed, Target,
};
use lockstep_transport::gateway_config::IoBackend;
use serde_json::json;
use std::ffi::OsStr;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The bundled real day, relative to the repository's root.
const BUNDLED_LOBSTER: &str = "data/lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The LOBSTER message file to replay [default: the bundled AMZN day]
    #[arg(long, value_name = "FILE")]
    pub lobster: Option<PathBuf>,
    /// How fast the LOBSTER day is replayed against its own timestamps:
    /// 2000x plays its 6.5 hours in about 12 s; max sends as fast as the
    /// flow's order allows
    #[arg(long, value_name = "SPEED", default_value = "2000x", value_parser = Speed::parse)]
    pub speed: Speed,
    /// The synthetic load's offered rate, messages per second over all
    /// sessions: 10000, 10k, 2.5k
    #[arg(long, value_name = "RATE", default_value = "10k", value_parser = bench_cmd::parse_rate)]
    pub rate: u64,
    /// Measured seconds of the synthetic load (after a 1 s warm-up); the
    /// leading replica is killed halfway through the whole run
    #[arg(long, value_name = "SECS", default_value_t = 8.0)]
    pub duration_s: f64,
    /// The gateway's I/O backend: mio or uring
    #[arg(long, value_name = "IO", default_value = "mio")]
    pub io: String,
    /// Where the .hgrm files, summary.json and latency.png are written
    #[arg(long, value_name = "DIR", default_value = "./lockstep-demo-out")]
    pub out: PathBuf,
}

impl DemoArgs {
    pub fn validate(&self) -> Result<(), String> {
        if !(1.0..=600.0).contains(&self.duration_s) {
            return Err(format!(
                "--duration-s {} is outside 1..=600",
                self.duration_s
            ));
        }
        IoBackend::parse(&self.io)
            .ok_or_else(|| format!("--io '{}' is not an I/O backend (mio, uring)", self.io))?;
        Ok(())
    }
}

/// The bundled LOBSTER file: relative to the working directory (a fresh
/// clone's root), else relative to this crate's source tree.
fn bundled_lobster() -> PathBuf {
    let relative = PathBuf::from(BUNDLED_LOBSTER);
    if relative.is_file() {
        return relative;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(BUNDLED_LOBSTER)
}

/// The `lockstep bench` arguments the synthetic part runs with: the
/// in-process server on the bundled default config, 4 sessions.
fn synthetic_bench_args(args: &DemoArgs) -> Result<BenchArgs, String> {
    let run_s = 1.0 + args.duration_s;
    let argv = vec![
        "--rate".to_string(),
        args.rate.to_string(),
        "--duration-s".to_string(),
        args.duration_s.to_string(),
        "--kill-replica".to_string(),
        (run_s / 2.0).to_string(),
        "--io".to_string(),
        args.io.clone(),
    ];
    BenchArgs::from_args(argv)
}

/// Replays the LOBSTER file through a fresh server on the bundled default
/// config, as `lockstep bench --replay FILE --speed S` does.
fn real_flow(args: &DemoArgs, lobster: &Path) -> Result<ReplayReport, String> {
    let bench = BenchArgs::from_args([
        OsStr::new("--replay"),
        lobster.as_os_str(),
        OsStr::new("--io"),
        OsStr::new(&args.io),
    ])?;
    let server = crate::bench_replay::replay_server(&bench)?;
    let options = ReplayOptions::new(lobster, args.speed, server);
    let mut progress = stderr_progress();
    run_replay(&options, progress.as_mut())
}

/// The real-flow part of the report; the failures it found, if any.
fn real_flow_text(text: &mut String, replay: &ReplayReport) -> Vec<String> {
    let mut failures = Vec::new();
    let latency = Percentiles::of(&replay.latency);
    let _ = writeln!(
        text,
        "\n1. Real order flow: {} at speed {}, through {} TCP session(s)",
        replay.input.display(),
        replay.speed.text(),
        replay.sessions
    );
    let _ = writeln!(
        text,
        "   {} commands read, {} sent ({} not expressible in OUCH skipped), {:.1} s, {:.0} commands/s",
        replay.commands_read,
        replay.sent,
        replay.skipped_not_ouch + replay.skipped_duplicate_token,
        replay.wall.as_secs_f64(),
        replay.achieved_per_s
    );
    let _ = writeln!(
        text,
        "   replies: {} accepted, {} rejected, {} executions, {} canceled, {} replaced",
        replay.received.accepted,
        replay.received.rejected,
        replay.received.executions,
        replay.received.canceled,
        replay.received.replaced
    );
    let _ = writeln!(
        text,
        "   command -> first answer, from its intended send time: p50 {}  p99 {}  max {}",
        micros(latency.p50_ns),
        micros(latency.p99_ns),
        micros(latency.max_ns)
    );
    let server_hash = replay
        .server_hash
        .map_or_else(|| "none".to_string(), |hash| format!("{hash:016x}"));
    if replay.passed() {
        let _ = writeln!(
            text,
            "   server state hash {server_hash} ({} replicas agree): state hash matches the offline replay; every session got exactly the predicted messages",
            replay.replicas
        );
    } else {
        let _ = writeln!(
            text,
            "   server state hash {server_hash} against the offline replay's {:016x}: MISMATCH (replicas agree: {}, sequenced {} of {} sent, outputs match: {}, unanswered {})",
            replay.reference_hash,
            replay.replicas_agree,
            replay.server_sequenced,
            replay.sent,
            replay.outputs_match,
            replay.unanswered
        );
        failures.push("the real-flow replay did not end in the offline replay's state".to_string());
    }
    failures
}

fn micros(ns: u64) -> String {
    format!("{:.0} µs", ns as f64 / 1_000.0)
}

/// Runs the synthetic part: the echo baseline, then Lockstep with a kill.
fn synthetic(args: &DemoArgs) -> Result<(LoadReport, LoadReport), String> {
    let bench = synthetic_bench_args(args)?;
    let io = IoBackend::parse(&args.io).expect("validated");
    let server = bench_cmd::server_config(&bench, io)?;
    let pacing = Pacing::OpenLoop {
        rate_per_s: args.rate,
    };
    let options = |label: &str| LoadOptions {
        duration: Duration::from_secs_f64(args.duration_s),
        warmup: Duration::from_secs(1),
        drain_timeout: Duration::from_secs(10),
        ..LoadOptions::new(label, 4, pacing)
    };
    let mut progress = stderr_progress();
    let echo_backend = if io == IoBackend::Uring {
        EchoBackend::Uring
    } else {
        EchoBackend::Mio
    };
    let mut echo_options = options(&format!("echo-{}", echo_backend.name()));
    echo_options.flow.kind = lockstep_bench::session_flow::FlowKind::EnterOnly;
    let echo =
        run_load_with_progress(&echo_options, Target::Echo(echo_backend), progress.as_mut())?;
    let mut lockstep_options = options(&format!("lockstep-{}", io.name()));
    let run_s = lockstep_options.warmup + lockstep_options.duration;
    lockstep_options.kill_replica = Some(ReplicaKill::at(run_s / 2));
    let lockstep = run_load_with_progress(
        &lockstep_options,
        Target::InProcess(Box::new(server)),
        progress.as_mut(),
    )?;
    Ok((echo, lockstep))
}

/// The synthetic part of the report; the failures it found, if any.
fn synthetic_text(text: &mut String, echo: &LoadReport, lockstep: &LoadReport) -> Vec<String> {
    let mut failures = Vec::new();
    let ours = Percentiles::of(&lockstep.accepted);
    let theirs = Percentiles::of(&echo.accepted);
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    let _ = writeln!(
        text,
        "\n2. Synthetic load, {} sessions open loop at {}/s for {:.0} s (+1 s warm-up), TCP echo baseline in the same run",
        lockstep.sessions,
        match lockstep.pacing {
            Pacing::OpenLoop { rate_per_s } => rate_per_s,
            Pacing::ClosedLoop { .. } => 0,
        },
        lockstep.duration.as_secs_f64()
    );
    let _ = writeln!(
        text,
        "   throughput: {:.0} messages/s answered; {} orders, {} cancels, {} executions",
        lockstep.achieved_rate,
        lockstep.counts.enters_sent,
        lockstep.counts.cancels_sent,
        lockstep.counts.executions
    );
    let _ = writeln!(
        text,
        "   order -> accepted   p50 {}  p99 {}  p99.9 {}  max {}",
        micros(ours.p50_ns),
        micros(ours.p99_ns),
        micros(ours.p999_ns),
        micros(ours.max_ns)
    );
    let _ = writeln!(
        text,
        "   TCP echo round trip p50 {}  p99 {}  p99.9 {}  max {}",
        micros(theirs.p50_ns),
        micros(theirs.p99_ns),
        micros(theirs.p999_ns),
        micros(theirs.max_ns)
    );
    let _ = writeln!(
        text,
        "   Lockstep over echo: p50 {:.2}x, p99 {:.2}x (targets 1.5x and 2x; see docs/benchmarks.md for what bounds them)",
        ratio(ours.p50_ns, theirs.p50_ns),
        ratio(ours.p99_ns, theirs.p99_ns)
    );
    match &lockstep.server {
        Some(server) => {
            let hash = server
                .state_hash
                .map_or_else(|| "none".to_string(), |hash| format!("{hash:016x}"));
            let _ = writeln!(
                text,
                "   replicas: {} of {} at seq {} with state hash {hash}: {}",
                if server.replicas_agree {
                    server.replicas
                } else {
                    0
                },
                server.replicas,
                server.last_seq,
                if server.replicas_agree {
                    "they agree"
                } else {
                    "THEY DISAGREE"
                }
            );
            if !server.replicas_agree {
                failures.push("the replicas' state hashes disagree".to_string());
            }
            if let Some(failure) = &server.failure {
                failures.push(format!("the server failed: {failure}"));
            }
        }
        None => failures.push("the in-process server gave no outcome".to_string()),
    }
    match &lockstep.kill {
        Some(kill) => {
            let window = Percentiles::of(&kill.accepted_kill_window);
            let steady = Percentiles::of(&kill.accepted_steady);
            let _ = writeln!(
                text,
                "   failover: replica {} ({}) killed {:.1} s in; it rebuilt {} time(s) and rejoined",
                kill.replica,
                if kill.was_leader {
                    "the one egress published from"
                } else {
                    "egress was between leaders"
                },
                kill.at.as_secs_f64(),
                kill.replica_rebuilds
            );
            let _ = writeln!(
                text,
                "   gaps seen by clients: {}, duplicates: {}",
                kill.gaps, kill.duplicates
            );
            let _ = writeln!(
                text,
                "   around the kill ({} orders): p50 {}  p99 {}  max {}; steady state: p50 {}  p99 {}  max {}",
                window.count,
                micros(window.p50_ns),
                micros(window.p99_ns),
                micros(window.max_ns),
                micros(steady.p50_ns),
                micros(steady.p99_ns),
                micros(steady.max_ns)
            );
            if kill.gaps != 0 || kill.duplicates != 0 {
                failures.push(format!(
                    "clients saw {} gaps and {} duplicates across the replica kill",
                    kill.gaps, kill.duplicates
                ));
            }
            if kill.replica_panics != 1 {
                failures.push(format!(
                    "the killed replica panicked {} times, not once",
                    kill.replica_panics
                ));
            }
        }
        None => failures.push("the replica kill did not happen".to_string()),
    }
    if lockstep.unanswered != 0 {
        failures.push(format!(
            "{} messages were never answered",
            lockstep.unanswered
        ));
    }
    failures
}

pub fn run(args: &DemoArgs) -> Result<String, String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|error| format!("--out {}: {error}", args.out.display()))?;
    let lobster = args.lobster.clone().unwrap_or_else(bundled_lobster);
    if !lobster.is_file() {
        return Err(format!(
            "{}: no such LOBSTER message file (the demo expects the bundled {BUNDLED_LOBSTER}; run it from the repository's root or pass --lobster)",
            lobster.display()
        ));
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Lockstep demo: the whole system in this process on 127.0.0.1, bundled default config (3 replicas, journal group commit, {} gateway)",
        args.io
    );
    let mut failures = Vec::new();
    let replay = real_flow(args, &lobster)?;
    failures.extend(real_flow_text(&mut text, &replay));
    let (echo, lockstep) = synthetic(args)?;
    failures.extend(synthetic_text(&mut text, &echo, &lockstep));
    let runs = vec![echo, lockstep];
    let meta = json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "demo": true,
        "real_flow": {
            "input": replay.input.display().to_string(),
            "speed": replay.speed.text(),
            "commands_read": replay.commands_read,
            "sent": replay.sent,
            "wall_s": replay.wall.as_secs_f64(),
            "achieved_per_s": replay.achieved_per_s,
            "latency_ns": Percentiles::of(&replay.latency).to_json(),
            "reference_hash": format!("{:016x}", replay.reference_hash),
            "server_hash": replay.server_hash.map(|hash| format!("{hash:016x}")),
            "passed": replay.passed(),
        },
    });
    let written = write_reports(&args.out, &runs, meta)?;
    let _ = writeln!(
        text,
        "\nwritten to {}: {} files (latency.png, summary.json, .hgrm histograms for HdrHistogram's plotter)",
        args.out.display(),
        written.len()
    );
    if failures.is_empty() {
        let _ = writeln!(text, "\nall checks passed");
        Ok(text)
    } else {
        print!("{text}");
        Err(format!("demo checks failed: {}", failures.join("; ")))
    }
}
