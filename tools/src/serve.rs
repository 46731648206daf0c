//! `lockstep serve`: runs the whole system in one process — the gateway on
//! its TCP port, the sequencer, the replicas and egress — on a TOML config
//! (`--config`) or the bundled default (`--print-config` shows it). It logs
//! through `tracing` to stderr, prints one `listening on ADDR` line to stdout
//! once clients can connect, and on Ctrl-C (or SIGTERM) stops cleanly:
//! clients get End of Session, everything submitted is journaled, synced and
//! published, and the journal is closed.

use crate::serve_config::{ServeConfig, DEFAULT_CONFIG_TOML, DEFAULT_DATA_DIR};
use clap::Args;
use lockstep_transport::gateway_config::IoBackend;
use lockstep_transport::server::Server;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Run gateway, sequencer, replicas and egress in one process.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The TOML configuration; without it the bundled default is used.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Print the bundled default configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Where the journal and snapshots live.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The I/O backend of the gateway, overriding the config: mio or uring.
    #[arg(long, value_name = "BACKEND", value_parser = parse_backend)]
    io: Option<IoBackend>,
    /// Listen here instead of the config's address (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

fn parse_backend(text: &str) -> Result<IoBackend, String> {
    IoBackend::parse(text).ok_or_else(|| format!("'{text}' is not an I/O backend (mio, uring)"))
}

/// Installs the stderr log subscriber once; `RUST_LOG` filters it.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(args: &ServeArgs) -> Result<String, String> {
    if args.print_config {
        return Ok(DEFAULT_CONFIG_TOML.to_string());
    }
    let mut config = match &args.config {
        Some(path) => ServeConfig::load(path).map_err(|error| error.to_string())?,
        None => ServeConfig::default_config(),
    };
    if let Some(backend) = args.io {
        config.set_io_backend(backend);
    }
    let (system_config, mut gateway_config) = config
        .to_runtime(args.data_dir.clone())
        .map_err(|error| error.to_string())?;
    if let Some(listen) = args.listen {
        gateway_config.listen = listen;
    }
    // Logging starts only once the configuration is accepted, so a refused
    // config is reported as the one error line the CLI promises.
    init_logging();
    tracing::info!(
        config = config.origin(),
        io_backend = config.io_backend().name(),
        data_dir = %args.data_dir.display(),
        "configuration accepted"
    );
    let interrupted = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&interrupted);
    ctrlc::set_handler(move || handler_flag.store(true, Ordering::Release))
        .map_err(|error| format!("installing the Ctrl-C handler: {error}"))?;
    let server = Server::start(system_config, gateway_config, None, config.gateway_core())
        .map_err(|error| error.to_string())?;
    let startup = server.startup().cloned();
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on {}", server.local_addr());
        let _ = stdout.flush();
    }
    if let Some(startup) = &startup {
        tracing::info!(
            recovered_seq = startup.recovered_seq,
            journal_backend = ?startup.journal_backend,
            "core started"
        );
    }
    let failure = loop {
        if interrupted.load(Ordering::Acquire) {
            tracing::info!("interrupted: stopping cleanly");
            break None;
        }
        if let Some(failure) = server.failure() {
            tracing::error!(%failure, "stopping after a failure");
            break Some(failure);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let report = server.stop();
    let summary = format!(
        "stopped: {} commands sequenced, {} durable, {} published; {} connections, {} logins; journal flushed and closed\n",
        report.system.last_seq,
        report.system.durable_seq,
        report.system.published_seq,
        report.gateway.stats.connections_opened,
        report.gateway.stats.logins_accepted,
    );
    match failure.or(report.system.failure) {
        Some(failure) => Err(format!("{failure} ({})", summary.trim_end())),
        None => Ok(summary),
    }
}
