//! `lockstep bench`: the whole system's latency under load, over real TCP.
//! For each I/O backend (`--io`) and each offered load (`--rate` or
//! `--rates`, or `--closed-loop`) it starts a fresh Lockstep server in this
//! process on the bundled default config (or `--config`), with sessions
//! `bench1`..`benchN` (then `b10`, `b11`, ...: usernames have six
//! characters) on accounts 1..N and no rate or open-order limits in the way,
//! and drives it with `lockstep_bench::run_load`; right before each Lockstep
//! run it runs the echo baseline of the same backend at the same load, so
//! the report can state Lockstep's latency as a ratio to the bare loopback
//! round trip. `--connect` drives an external server instead (no state hash
//! then). This module owns the command line, its checks, the server
//! configuration of the runs and the files written into `--out`.

use crate::run::DurabilityName;
use crate::serve_config::{ServeConfig, SessionEntry};
use clap::Args;
use lockstep_bench::{
    run_load_with_progress, text_report, write_reports, Credentials, EchoBackend, InProcessServer,
    LoadOptions, LoadReport, Pacing, ReplicaKill, Target, MESSAGES_PER_RUN_MAX,
};
use lockstep_transport::gateway_config::IoBackend;
use serde_json::json;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The most sessions a run drives (usernames `b10`..`b999` beyond nine).
pub const SESSIONS_MAX: u32 = 999;
/// The highest offered load accepted, messages per second.
pub const RATE_MAX: u64 = 10_000_000;

/// Drive the whole system over TCP with N client sessions at a fixed
/// offered load (open loop, no coordinated omission) or closed loop, and
/// report order-to-Accepted and order-to-Executed latency percentiles and
/// the achieved rate, next to a bare TCP echo baseline.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Client sessions, each its own login and account [default: 4, or the
    /// number of --user logins with --connect].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=SESSIONS_MAX as i64))]
    pub sessions: Option<u32>,
    /// Offered load over all sessions, messages per second: 50000, 50k,
    /// 2.5k or 1M [default: 10k].
    #[arg(long, value_name = "RATE", value_parser = parse_rate,
          conflicts_with_all = ["rates", "closed_loop"])]
    pub rate: Option<u64>,
    /// A sweep of offered loads, one run each: 10k,50k,100k.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_rate,
          conflicts_with = "closed_loop")]
    pub rates: Vec<u64>,
    /// Closed loop: each session keeps --outstanding messages unanswered
    /// instead of following a schedule.
    #[arg(long)]
    pub closed_loop: bool,
    /// Unanswered messages per session in closed loop [default: 1].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub outstanding: Option<u32>,
    /// Measured seconds per run, after the warm-up.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_seconds)]
    pub duration_s: f64,
    /// Seconds sent but not measured at the start of each run.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_seconds)]
    pub warmup_s: f64,
    /// Seconds to wait for the last answers after the last send.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_seconds)]
    pub drain_timeout_s: f64,
    /// The gateway's I/O backends, one set of runs each: mio, uring or
    /// mio,uring [default: mio,uring where the kernel allows io_uring, else
    /// mio].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_backend)]
    pub io: Vec<IoBackend>,
    /// Skip the echo baselines.
    #[arg(long)]
    pub no_echo: bool,
    /// Drive the server at this address instead of starting one.
    #[arg(long, value_name = "ADDR")]
    pub connect: Option<SocketAddr>,
    /// With --connect: the usernames, one per session (comma-separated).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub user: Vec<String>,
    /// With --connect: the passwords, in the order of --user.
    #[arg(long, value_name = "PASSWORDS", value_delimiter = ',')]
    pub password: Vec<String>,
    /// The in-process server's TOML config (its sessions are replaced by
    /// the bench's); default: the bundled default of `lockstep serve`.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Override the config's journal durability: none, batch or every.
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityName>,
    /// Where the .hgrm files, summary.json and latency.png are written.
    #[arg(long, value_name = "DIR", default_value = "./lockstep-bench-out")]
    pub out: PathBuf,
    /// Where each run's temporary data directory is made (and removed).
    /// Default: the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The flow's seed.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Busy-poll the sockets between sends instead of sleeping in ppoll
    /// (takes a whole core).
    #[arg(long)]
    pub spin: bool,
    /// Replay a captured order log through a fresh in-process server over
    /// TCP instead of generating load, and check that the server ends in
    /// the state of an offline replay: a journal (.lkj), a flow CSV v1 or a
    /// LOBSTER message file (*_message_*.csv). Uses --config, --io (one),
    /// --durability, --dir and --drain-timeout-s; not --connect, which
    /// drives a server this run cannot inspect.
    #[arg(long, value_name = "FILE",
          conflicts_with_all = ["connect", "user", "password", "rate", "rates", "closed_loop",
                                "outstanding", "sessions"])]
    pub replay: Option<PathBuf>,
    /// With --replay: max (as fast as the file's order allows) or a factor
    /// of the file's own clock such as 1x, 10x or 1000x.
    #[arg(long, value_name = "SPEED", default_value = "max", requires = "replay",
          value_parser = lockstep_bench::Speed::parse)]
    pub speed: lockstep_bench::Speed,
    /// Kill the leading replica this many seconds into each Lockstep run
    /// (warm-up included), then report the gaps and duplicates the clients
    /// saw (must be 0) and the latency around the kill against the rest.
    /// Open loop against the in-process server only.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds,
          conflicts_with_all = ["closed_loop", "connect"])]
    pub kill_replica: Option<f64>,
}

/// "50000", "50k", "2.5k", "1M" as messages per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let (number, scale) = match trimmed.char_indices().last() {
        Some((at, 'k' | 'K')) => (&trimmed[..at], 1e3),
        Some((at, 'm' | 'M')) => (&trimmed[..at], 1e6),
        _ => (trimmed, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a rate (e.g. 50000, 50k, 2.5k, 1M)"))?;
    let rate = value * scale;
    if !rate.is_finite() || rate < 1.0 || rate > RATE_MAX as f64 || rate.fract() != 0.0 {
        return Err(format!(
            "'{text}' is not a whole number of messages per second from 1 to 10M"
        ));
    }
    Ok(rate as u64)
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !seconds.is_finite() || !(0.0..=3_600.0).contains(&seconds) {
        return Err(format!("'{text}' is not between 0 and 3600 seconds"));
    }
    Ok(seconds)
}

fn parse_backend(text: &str) -> Result<IoBackend, String> {
    IoBackend::parse(text).ok_or_else(|| format!("'{text}' is not an I/O backend (mio, uring)"))
}

impl BenchArgs {
    /// `lockstep bench`'s arguments from `args` (without the subcommand's
    /// name), checked as the command line's are: for the demo, which runs
    /// the bench on settings of its own, and for tests.
    pub fn from_args<I, S>(args: I) -> Result<BenchArgs, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let argv = std::iter::once(std::ffi::OsString::from("bench"))
            .chain(args.into_iter().map(Into::into));
        let wrapper =
            <Wrapper as clap::Parser>::try_parse_from(argv).map_err(|error| error.to_string())?;
        wrapper.bench.validate()?;
        Ok(wrapper.bench)
    }

    /// The checks that involve more than one argument; a failure here is a
    /// usage error.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration_s < 0.1 {
            return Err(format!("--duration-s {} is below 0.1", self.duration_s));
        }
        if self.warmup_s > 600.0 {
            return Err(format!("--warmup-s {} is above 600", self.warmup_s));
        }
        if self.drain_timeout_s < 0.1 || self.drain_timeout_s > 600.0 {
            return Err(format!(
                "--drain-timeout-s {} is outside 0.1..=600",
                self.drain_timeout_s
            ));
        }
        if self.outstanding.is_some() && !self.closed_loop {
            return Err("--outstanding needs --closed-loop".to_string());
        }
        if self.connect.is_some() {
            if self.user.is_empty() {
                return Err("--connect needs --user (one login per session)".to_string());
            }
            if self.user.len() != self.password.len() {
                return Err(format!(
                    "{} --user names but {} --password values",
                    self.user.len(),
                    self.password.len()
                ));
            }
            if let Some(sessions) = self.sessions {
                if sessions as usize > self.user.len() {
                    return Err(format!(
                        "--sessions {sessions} needs as many --user logins, {} given",
                        self.user.len()
                    ));
                }
            }
            for (flag, given) in [
                ("--io", !self.io.is_empty()),
                ("--config", self.config.is_some()),
                ("--durability", self.durability.is_some()),
                ("--dir", self.dir.is_some()),
            ] {
                if given {
                    return Err(format!(
                        "{flag} sets up the in-process server; it does not apply with --connect"
                    ));
                }
            }
        } else if !self.user.is_empty() || !self.password.is_empty() {
            return Err("--user and --password need --connect".to_string());
        }
        let seconds = self.warmup_s + self.duration_s;
        if let Some(at) = self.kill_replica {
            if at <= 0.0 || at >= seconds {
                return Err(format!(
                    "--kill-replica {at} must fall inside the run: above 0 and below {seconds} s (warm-up plus duration)"
                ));
            }
        }
        for rate in self.offered_rates() {
            let planned = rate as f64 * seconds;
            if planned > MESSAGES_PER_RUN_MAX as f64 {
                return Err(format!(
                    "{rate}/s for {seconds} s is {planned:.0} messages, above the {MESSAGES_PER_RUN_MAX} a run may send"
                ));
            }
        }
        Ok(())
    }

    fn offered_rates(&self) -> Vec<u64> {
        match (self.rate, self.rates.is_empty()) {
            (Some(rate), _) => vec![rate],
            (None, false) => self.rates.clone(),
            (None, true) => vec![10_000],
        }
    }

    fn sessions(&self) -> usize {
        match (self.sessions, self.connect) {
            (Some(sessions), _) => sessions as usize,
            (None, Some(_)) => self.user.len(),
            (None, None) => 4,
        }
    }

    fn pacings(&self) -> Vec<Pacing> {
        if self.closed_loop {
            vec![Pacing::ClosedLoop {
                outstanding: self.outstanding.unwrap_or(1),
            }]
        } else {
            self.offered_rates()
                .into_iter()
                .map(|rate_per_s| Pacing::OpenLoop { rate_per_s })
                .collect()
        }
    }
}

/// `bench1`..`bench9`, then `b10`, `b11`, ... (six characters at most).
fn username(index: usize) -> String {
    let name = format!("bench{index}");
    if name.len() <= 6 {
        name
    } else {
        format!("b{index}")
    }
}

/// The in-process server's config: the file's (or the bundled default),
/// with the bench's sessions and room for them and their messages.
pub(crate) fn server_config(args: &BenchArgs, io: IoBackend) -> Result<InProcessServer, String> {
    let mut config = base_config(args)?;
    let sessions = args.sessions();
    config.sessions = (1..=sessions)
        .map(|index| SessionEntry {
            username: username(index),
            password: "bench".to_string(),
            firm: format!("B{index}"),
            account: index as u32,
            cancel_on_disconnect: true,
            open_orders_max: 1_000_000,
            messages_per_second_max: u32::MAX,
            messages_burst_max: u32::MAX,
        })
        .collect();
    config.engine.accounts_max = config.engine.accounts_max.max(sessions as u32 + 1);
    config.engine.sessions_max = config.engine.sessions_max.max(sessions as u16);
    config.gateway.connections_max = config.gateway.connections_max.max(sessions + 8);
    config.gateway.session_tokens_max = config
        .gateway
        .session_tokens_max
        .max(MESSAGES_PER_RUN_MAX as usize);
    // An order makes a few messages (Accepted, Executed, Canceled); a full
    // log would stop the server, so it gets room for every one of them.
    config.gateway.output_log_messages_max = config
        .gateway
        .output_log_messages_max
        .max(4 * MESSAGES_PER_RUN_MAX as usize);
    config.set_io_backend(io);
    in_process_server(args, config)
}

/// The config file of `--config`, or the bundled default of `lockstep
/// serve`.
pub(crate) fn base_config(args: &BenchArgs) -> Result<ServeConfig, String> {
    match &args.config {
        Some(path) => ServeConfig::load(path).map_err(|error| error.to_string()),
        None => Ok(ServeConfig::default_config()),
    }
}

/// `config` with `--durability` applied, as an in-process server whose
/// data directories go under `--dir` (default: the temporary directory).
pub(crate) fn in_process_server(
    args: &BenchArgs,
    mut config: ServeConfig,
) -> Result<InProcessServer, String> {
    if let Some(durability) = args.durability {
        config.journal.durability = durability.into();
    }
    let scratch_dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let (system, gateway) = config
        .to_runtime(scratch_dir.clone())
        .map_err(|error| error.to_string())?;
    Ok(InProcessServer {
        system,
        gateway,
        scratch_dir,
        gateway_core: config.gateway_core(),
    })
}

fn label(target: &str, pacing: Pacing) -> String {
    match pacing {
        Pacing::OpenLoop { rate_per_s } => {
            format!("{target}-{}", lockstep_bench::report::rate_text(rate_per_s))
        }
        Pacing::ClosedLoop { outstanding } => format!("{target}-closed{outstanding}"),
    }
}

fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

pub fn run(args: &BenchArgs) -> Result<String, String> {
    if let Some(input) = &args.replay {
        return crate::bench_replay::run(args, input);
    }
    let sessions = args.sessions();
    let ios: Vec<IoBackend> = if args.connect.is_some() {
        Vec::new()
    } else if !args.io.is_empty() {
        let mut ios = args.io.clone();
        ios.dedup();
        ios
    } else if lockstep_bench::echo::uring_available().is_ok() {
        vec![IoBackend::Mio, IoBackend::Uring]
    } else {
        vec![IoBackend::Mio]
    };
    if ios.contains(&IoBackend::Uring) {
        lockstep_bench::echo::uring_available().map_err(|why| format!("--io uring: {why}"))?;
    }
    // Everything that can be refused is refused before the first run: the
    // output directory and each backend's server configuration.
    std::fs::create_dir_all(&args.out)
        .map_err(|error| format!("--out {}: {error}", args.out.display()))?;
    let servers = ios
        .iter()
        .map(|&io| server_config(args, io).map(|server| (io, server)))
        .collect::<Result<Vec<_>, String>>()?;
    let mut notes = Vec::new();
    if args.io.is_empty() && args.connect.is_none() && !ios.contains(&IoBackend::Uring) {
        if let Err(why) = lockstep_bench::echo::uring_available() {
            notes.push(format!("io_uring runs skipped: {why}"));
        }
    }
    // (target, echo baseline of the same family, name)
    let mut targets: Vec<(Option<IoBackend>, EchoBackend, String)> = ios
        .iter()
        .map(|&io| {
            let echo = if io == IoBackend::Uring {
                EchoBackend::Uring
            } else {
                EchoBackend::Mio
            };
            (Some(io), echo, format!("lockstep-{}", io.name()))
        })
        .collect();
    if args.connect.is_some() {
        targets.push((None, EchoBackend::Mio, "external".to_string()));
    }
    let load_at_start = load_average();
    let mut progress = lockstep_bench::progress::stderr_progress();
    let mut runs: Vec<LoadReport> = Vec::new();
    for (io, echo, name) in &targets {
        for pacing in args.pacings() {
            let options = |label: String| LoadOptions {
                duration: Duration::from_secs_f64(args.duration_s),
                warmup: Duration::from_secs_f64(args.warmup_s),
                drain_timeout: Duration::from_secs_f64(args.drain_timeout_s),
                seed: args.seed,
                spin: args.spin,
                ..LoadOptions::new(label, sessions, pacing)
            };
            if !args.no_echo {
                let mut echo_options = options(label(&format!("echo-{}", echo.name()), pacing));
                echo_options.flow.kind = lockstep_bench::session_flow::FlowKind::EnterOnly;
                runs.push(run_load_with_progress(
                    &echo_options,
                    Target::Echo(*echo),
                    progress.as_mut(),
                )?);
            }
            let target = match (io, args.connect) {
                (Some(io), _) => {
                    let server = servers
                        .iter()
                        .find(|(backend, _)| backend == io)
                        .map(|(_, server)| server.clone())
                        .ok_or_else(|| format!("no server configuration for {}", io.name()))?;
                    Target::InProcess(Box::new(server))
                }
                (None, Some(addr)) => Target::Connect {
                    addr,
                    credentials: args
                        .user
                        .iter()
                        .zip(&args.password)
                        .map(|(username, password)| Credentials {
                            username: username.clone(),
                            password: password.clone(),
                        })
                        .collect(),
                },
                (None, None) => unreachable!("every target has a backend or an address"),
            };
            let mut lockstep_options = options(label(name, pacing));
            lockstep_options.kill_replica = args
                .kill_replica
                .map(|at| ReplicaKill::at(Duration::from_secs_f64(at)));
            runs.push(run_load_with_progress(
                &lockstep_options,
                target,
                progress.as_mut(),
            )?);
        }
    }
    let meta = json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "sessions": sessions,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_average(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|text| text.trim().to_string()),
        "unix_time_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or(0),
        "notes": notes,
    });
    let written = write_reports(&args.out, &runs, meta)?;
    let mut report = text_report(&runs);
    for note in &notes {
        let _ = writeln!(report, "note: {note}");
    }
    let _ = writeln!(report, "\nwritten to {}:", args.out.display());
    for path in written {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let _ = writeln!(report, "  {name}");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[&str]) -> Result<BenchArgs, String> {
        BenchArgs::from_args(line.iter().copied())
    }

    #[test]
    fn rates_take_suffixes() {
        assert_eq!(parse_rate("50k"), Ok(50_000));
        assert_eq!(parse_rate("2.5k"), Ok(2_500));
        assert_eq!(parse_rate("1M"), Ok(1_000_000));
        assert_eq!(parse_rate("750"), Ok(750));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("0.5").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("11M").is_err());
    }

    #[test]
    fn usernames_fit_six_characters() {
        assert_eq!(username(1), "bench1");
        assert_eq!(username(9), "bench9");
        assert_eq!(username(10), "b10");
        assert_eq!(username(999), "b999");
    }

    #[test]
    fn the_command_line_is_checked() {
        let args = parse(&["--rates", "10k,50k"]).unwrap();
        assert_eq!(args.pacings().len(), 2);
        assert_eq!(args.sessions(), 4);
        assert!(parse(&["--rate", "10k", "--rates", "5k"]).is_err());
        assert!(parse(&["--rate", "10k", "--closed-loop"]).is_err());
        assert!(parse(&["--outstanding", "4"]).is_err());
        assert_eq!(
            parse(&["--closed-loop", "--outstanding", "4"])
                .unwrap()
                .pacings(),
            vec![Pacing::ClosedLoop { outstanding: 4 }]
        );
        assert!(parse(&["--connect", "127.0.0.1:1"]).is_err());
        assert!(parse(&[
            "--connect",
            "127.0.0.1:1",
            "--user",
            "a,b",
            "--password",
            "x"
        ])
        .is_err());
        assert!(parse(&[
            "--connect",
            "127.0.0.1:1",
            "--user",
            "a",
            "--password",
            "x",
            "--io",
            "mio"
        ])
        .is_err());
        assert_eq!(
            parse(&[
                "--connect",
                "127.0.0.1:1",
                "--user",
                "a,b",
                "--password",
                "x,y"
            ])
            .unwrap()
            .sessions(),
            2
        );
        assert!(parse(&["--user", "a", "--password", "x"]).is_err());
        assert!(parse(&["--rate", "10M", "--duration-s", "10"]).is_err());
        assert!(parse(&["--duration-s", "0"]).is_err());
        assert!(parse(&["--sessions", "0"]).is_err());
        assert!(parse(&["--io", "epoll"]).is_err());
    }

    #[test]
    fn the_server_config_has_room_for_the_sessions() {
        let args = parse(&["--sessions", "20", "--durability", "none"]).unwrap();
        let server = server_config(&args, IoBackend::Uring).unwrap();
        assert_eq!(server.gateway.sessions.len(), 20);
        assert_eq!(server.gateway.sessions[19].username, "b20");
        assert_eq!(server.gateway.io_backend, IoBackend::Uring);
        assert!(server.gateway.connections_max >= 20);
    }
}
