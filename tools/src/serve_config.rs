//! The configuration file of `lockstep serve`: a TOML file with one section
//! per concern ([server], [[instruments]], [[sessions]], [engine], [system],
//! [journal], [gateway], [waits], [cores]) that this module parses, checks
//! and turns into the two runtime values the server starts from, the
//! sequencer's `SystemConfig` and the gateway's `GatewayConfig`. The bundled
//! default (`tools/config/default.toml`, embedded as [`DEFAULT_CONFIG_TOML`])
//! is what `lockstep serve` runs with no `--config` and what
//! `--print-config` prints. Every problem is refused before anything starts,
//! with the file, and the key: TOML syntax errors, wrong types, unknown and
//! missing keys also carry the line and column; values that parse but make
//! no sense (a ring that is not a power of two, a duplicate username, a band
//! upside down) are refused by the same checks the sequencer, the engine and
//! the gateway apply themselves, with their key names translated into this
//! file's layout. The data directory is not part of the file: it comes from
//! `--data-dir` and is passed to [`ServeConfig::to_runtime`].

// Nothing calls this module until the `serve` subcommand lands; remove this
// line then, so dead code is reported again.

use lockstep_engine::{AccountId, ConfigError, EngineConfig, InstrumentId, InstrumentSpec};
use lockstep_engine::{Price, Qty};
use lockstep_sequencer::durability::DurabilityPolicy;
use lockstep_sequencer::system_config::{SystemConfig, ThreadCores, ThreadWaits};
use lockstep_sequencer::wait_strategy::WaitStrategy;
use lockstep_transport::gateway_config::{
    GatewayConfig, GatewayInstrument, IoBackend, SessionConfig,
};
use lockstep_transport::ouch::MARKET_PRICE;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The bundled default configuration, exactly as `--print-config` prints it.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../config/default.toml");

/// How errors in the bundled default name their origin.
pub const DEFAULT_CONFIG_ORIGIN: &str = "<bundled default.toml>";

/// The data directory `lockstep serve` uses without `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = "./lockstep-data";

/// The longest password SoupBinTCP carries.
const PASSWORD_LEN_MAX: usize = 10;

/// The longest park a "spin-then-park" thread may take, in nanoseconds: a
/// longer one would delay every wake-up and the shutdown by as much.
pub const PARK_NS_MAX: u64 = 100_000_000;

/// Where the SoupBinTCP gateway listens and what it calls itself.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// An IP address and TCP port.
    pub listen: SocketAddr,
    /// The gateway's event loop, "mio" or "uring".
    #[serde(deserialize_with = "io_backend_by_name")]
    pub io_backend: IoBackend,
    /// The SoupBinTCP session name of this run.
    pub session_name: String,
}

/// One `[[instruments]]` entry; its engine id is its position in the list.
/// Prices are OUCH prices with four implied decimals (1 is $0.0001).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentEntry {
    pub symbol: String,
    pub tick_size: Price,
    pub band_min: Price,
    pub band_max: Price,
    pub qty_max: Qty,
}

/// One `[[sessions]]` entry; its engine session id is its position in the
/// list.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionEntry {
    pub username: String,
    pub password: String,
    pub firm: String,
    pub account: u32,
    pub cancel_on_disconnect: bool,
    pub open_orders_max: u32,
    pub messages_per_second_max: u32,
    pub messages_burst_max: u32,
}

/// The capacities of every engine table (the instruments come from the
/// `[[instruments]]` list).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    pub orders_max: u32,
    pub levels_max: u32,
    pub accounts_max: u32,
    pub sessions_max: u16,
}

/// The replicated core: how many replicas, and every ring and queue size.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSection {
    pub replicas: usize,
    pub input_queue_max: usize,
    pub broadcast_ring_size: usize,
    pub output_ring_size: usize,
    pub sequencer_batch_max: usize,
    pub fence_lag_max: u64,
    pub hash_window_size: usize,
}

/// The journal's durability and the snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// "none", "batch" or "every".
    #[serde(deserialize_with = "durability_by_name")]
    pub durability: DurabilityPolicy,
    pub prefer_io_uring: bool,
    pub snapshot_interval: u64,
    pub snapshots_kept: usize,
}

/// The gateway's table and buffer bounds and its timers.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    pub connections_max: usize,
    pub packet_len_max: u16,
    pub output_buffer_bytes_max: usize,
    pub output_log_messages_max: usize,
    pub session_tokens_max: usize,
    pub event_queue_max: usize,
    pub heartbeat_interval_ms: u64,
    pub idle_timeout_ms: u64,
    pub login_timeout_ms: u64,
}

/// A wait strategy as the file names it; the "spin-then-park" parameters
/// live beside the names in [`WaitsSection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitName {
    BusySpin,
    Yield,
    SpinThenPark,
}

/// How each hot thread waits when it has nothing to do.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitsSection {
    pub sequencer: WaitName,
    pub replica: WaitName,
    pub egress: WaitName,
    pub spin_iterations: u32,
    pub yield_iterations: u32,
    pub park_ns: u64,
}

impl WaitsSection {
    fn strategy(&self, name: WaitName) -> WaitStrategy {
        match name {
            WaitName::BusySpin => WaitStrategy::BusySpin,
            WaitName::Yield => WaitStrategy::Yield,
            WaitName::SpinThenPark => WaitStrategy::SpinThenPark {
                spin_iterations: self.spin_iterations,
                yield_iterations: self.yield_iterations,
                park_ns: self.park_ns,
            },
        }
    }
}

/// The core each hot thread is pinned to; every key is optional and an
/// absent one leaves the thread to the OS scheduler.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoresSection {
    pub sequencer: Option<usize>,
    pub egress: Option<usize>,
    /// One core per replica, in replica order; replicas past the end of the
    /// list are not pinned.
    #[serde(default)]
    pub replicas: Vec<usize>,
    pub gateway: Option<usize>,
}

/// The whole configuration file of `lockstep serve`. Its fields are public
/// so the command line can override them (see also
/// [`ServeConfig::set_io_backend`]); [`ServeConfig::to_runtime`] checks
/// everything again, so an override cannot slip past validation.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    pub server: ServerSection,
    pub instruments: Vec<InstrumentEntry>,
    pub sessions: Vec<SessionEntry>,
    pub engine: EngineSection,
    pub system: SystemSection,
    pub journal: JournalSection,
    pub gateway: GatewaySection,
    pub waits: WaitsSection,
    #[serde(default)]
    pub cores: CoresSection,
    /// Where the configuration came from (a path, or
    /// [`DEFAULT_CONFIG_ORIGIN`]), for error messages.
    #[serde(skip)]
    origin: String,
}

/// Why a configuration cannot be used. Every variant names where the
/// configuration came from, and all but `Read` the key at fault.
#[derive(Debug)]
pub enum ServeConfigError {
    /// The file could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The TOML parser refused the text: bad syntax, a value of the wrong
    /// type or out of its type's range, an unknown or a missing key, or a
    /// name (io_backend, durability, wait) that is not one of the choices.
    Parse {
        origin: String,
        /// The 1-based line and column of the offending text, when known.
        position: Option<(usize, usize)>,
        /// The key path (`sessions[1].password`), when it can be told from
        /// the text.
        key: Option<String>,
        message: String,
    },
    /// The values parsed but break a rule.
    Invalid {
        origin: String,
        key: String,
        problem: String,
    },
}

impl ServeConfigError {
    /// The key at fault, as this file's layout names it.
    #[cfg(test)]
    pub fn key(&self) -> Option<&str> {
        match self {
            ServeConfigError::Read { .. } => None,
            ServeConfigError::Parse { key, .. } => key.as_deref(),
            ServeConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

impl fmt::Display for ServeConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeConfigError::Read { path, error } => {
                write!(f, "cannot read config file {}: {error}", path.display())
            }
            ServeConfigError::Parse {
                origin,
                position,
                key,
                message,
            } => {
                write!(f, "{origin}")?;
                if let Some((line, column)) = position {
                    write!(f, ":{line}:{column}")?;
                }
                if let Some(key) = key {
                    write!(f, ": {key}")?;
                }
                write!(f, ": {message}")
            }
            ServeConfigError::Invalid {
                origin,
                key,
                problem,
            } => write!(f, "{origin}: {key}: {problem}"),
        }
    }
}

impl std::error::Error for ServeConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeConfigError::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl ServeConfig {
    /// Parses and checks a configuration. `origin` names it in errors (the
    /// file's path, say).
    pub fn parse(text: &str, origin: &str) -> Result<ServeConfig, ServeConfigError> {
        let mut config: ServeConfig =
            toml::from_str(text).map_err(|error| parse_error(text, origin, &error))?;
        config.origin = origin.to_string();
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and checks the configuration file at `path`.
    pub fn load(path: &Path) -> Result<ServeConfig, ServeConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ServeConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        ServeConfig::parse(&text, &path.display().to_string())
    }

    /// The bundled default, [`DEFAULT_CONFIG_TOML`].
    pub fn default_config() -> ServeConfig {
        // The bundled text is part of the program, not input, and a unit test
        // parses and validates it, so this cannot fail in a tested build.
        ServeConfig::parse(DEFAULT_CONFIG_TOML, DEFAULT_CONFIG_ORIGIN)
            .expect("the bundled default config is valid")
    }

    /// Where this configuration came from, as errors name it.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The gateway's event loop.
    pub fn io_backend(&self) -> IoBackend {
        self.server.io_backend
    }

    /// Overrides the file's `server.io_backend` (for `lockstep serve --io`).
    pub fn set_io_backend(&mut self, io_backend: IoBackend) {
        self.server.io_backend = io_backend;
    }

    /// The core the gateway thread is pinned to, if any (`cores.gateway`).
    pub fn gateway_core(&self) -> Option<usize> {
        self.cores.gateway
    }

    /// Checks every rule [`ServeConfig::to_runtime`] checks.
    pub fn validate(&self) -> Result<(), ServeConfigError> {
        self.to_runtime(PathBuf::from(DEFAULT_DATA_DIR)).map(|_| ())
    }

    /// Builds the sequencer's and the gateway's configurations, with the
    /// journal and snapshots under `data_dir`. Instrument ids are the
    /// positions in `[[instruments]]` and session ids the positions in
    /// `[[sessions]]`. Both results have passed their own `validate`.
    pub fn to_runtime(
        &self,
        data_dir: PathBuf,
    ) -> Result<(SystemConfig, GatewayConfig), ServeConfigError> {
        self.check_own_rules()?;
        let gateway = self.gateway_config();
        gateway
            .validate()
            .map_err(|error| self.invalid(gateway_key(&error.key), error.problem))?;
        let engine = self.engine_config();
        engine
            .validate()
            .map_err(|error| self.engine_error(&error))?;
        let system = self.system_config(engine, data_dir);
        system
            .validate()
            .map_err(|error| self.invalid(system_key(error.key), error.problem))?;
        Ok((system, gateway))
    }

    fn invalid(&self, key: impl Into<String>, problem: impl Into<String>) -> ServeConfigError {
        ServeConfigError::Invalid {
            origin: self.origin.clone(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// The rules that span sections or that no runtime check words in this
    /// file's terms.
    fn check_own_rules(&self) -> Result<(), ServeConfigError> {
        for (index, instrument) in self.instruments.iter().enumerate() {
            let key = |field: &str| format!("instruments[{index}].{field}");
            if instrument.tick_size == 0 {
                return Err(self.invalid(key("tick_size"), "must be at least 1"));
            }
            if instrument.band_min == 0 {
                return Err(self.invalid(key("band_min"), "must be at least 1"));
            }
            if instrument.band_max < instrument.band_min {
                return Err(self.invalid(
                    key("band_max"),
                    format!(
                        "{} is below band_min ({})",
                        instrument.band_max, instrument.band_min
                    ),
                ));
            }
            let ouch_limit_price_max = Price::from(MARKET_PRICE) - 1;
            if instrument.band_max > ouch_limit_price_max {
                return Err(self.invalid(
                    key("band_max"),
                    format!(
                        "{} is above {ouch_limit_price_max}, the highest OUCH limit price \
                         ({MARKET_PRICE} means a market order)",
                        instrument.band_max
                    ),
                ));
            }
            if instrument.qty_max == 0 {
                return Err(self.invalid(key("qty_max"), "must be at least 1"));
            }
        }
        for (index, session) in self.sessions.iter().enumerate() {
            let key = |field: &str| format!("sessions[{index}].{field}");
            // The gateway checks passwords too, but quotes them in its
            // message; a password has no business in a log line.
            if session.password.len() > PASSWORD_LEN_MAX {
                return Err(self.invalid(
                    key("password"),
                    format!("longer than {PASSWORD_LEN_MAX} characters"),
                ));
            }
            if !session
                .password
                .bytes()
                .all(|byte| (0x21..0x7f).contains(&byte))
            {
                return Err(self.invalid(key("password"), "must be printable ASCII without spaces"));
            }
            if session.account >= self.engine.accounts_max {
                return Err(self.invalid(
                    key("account"),
                    format!(
                        "{} is not below engine.accounts_max ({}): accounts are numbered \
                         from 0 to accounts_max - 1",
                        session.account, self.engine.accounts_max
                    ),
                ));
            }
        }
        if self.sessions.len() > usize::from(self.engine.sessions_max) {
            return Err(self.invalid(
                "engine.sessions_max",
                format!(
                    "{} is below the {} sessions listed (a session's id is its position \
                     in [[sessions]])",
                    self.engine.sessions_max,
                    self.sessions.len()
                ),
            ));
        }
        if self.cores.replicas.len() > self.system.replicas {
            return Err(self.invalid(
                "cores.replicas",
                format!(
                    "{} cores listed for {} replicas (system.replicas)",
                    self.cores.replicas.len(),
                    self.system.replicas
                ),
            ));
        }
        if self.waits.park_ns == 0 || self.waits.park_ns > PARK_NS_MAX {
            return Err(self.invalid(
                "waits.park_ns",
                format!("{} is outside 1..={PARK_NS_MAX}", self.waits.park_ns),
            ));
        }
        Ok(())
    }

    /// Words an engine refusal in this file's keys.
    fn engine_error(&self, error: &ConfigError) -> ServeConfigError {
        match error {
            ConfigError::CapacityOutOfRange {
                name: "instruments_max",
                ..
            }
            | ConfigError::InstrumentCount { .. } => self.invalid(
                "instruments",
                format!("{} listed: {error}", self.instruments.len()),
            ),
            ConfigError::CapacityOutOfRange { name, value } => self.invalid(
                format!("engine.{name}"),
                format!(
                    "{value} is outside 1..={}",
                    lockstep_engine::TABLE_CAPACITY_MAX
                ),
            ),
            ConfigError::BadInstrument { index, problem } => {
                self.invalid(format!("instruments[{index}]"), *problem)
            }
        }
    }

    fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            instruments: self
                .instruments
                .iter()
                .map(|instrument| InstrumentSpec {
                    tick_size: instrument.tick_size,
                    band_min: instrument.band_min,
                    band_max: instrument.band_max,
                    qty_max: instrument.qty_max,
                })
                .collect(),
            // The list is the whole instrument set of the run; a count that
            // does not fit is refused by the engine's own range check.
            instruments_max: u32::try_from(self.instruments.len()).unwrap_or(u32::MAX),
            orders_max: self.engine.orders_max,
            levels_max: self.engine.levels_max,
            sessions_max: self.engine.sessions_max,
            accounts_max: self.engine.accounts_max,
        }
    }

    fn system_config(&self, engine: EngineConfig, data_dir: PathBuf) -> SystemConfig {
        let mut system = SystemConfig::new(engine, data_dir);
        system.replicas = self.system.replicas;
        system.durability = self.journal.durability;
        system.prefer_io_uring = self.journal.prefer_io_uring;
        system.input_queue_max = self.system.input_queue_max;
        system.broadcast_ring_size = self.system.broadcast_ring_size;
        system.output_ring_size = self.system.output_ring_size;
        system.sequencer_batch_max = self.system.sequencer_batch_max;
        system.fence_lag_max = self.system.fence_lag_max;
        system.hash_window_size = self.system.hash_window_size;
        system.snapshot_interval = self.journal.snapshot_interval;
        system.snapshots_kept = self.journal.snapshots_kept;
        system.cores = ThreadCores {
            sequencer: self.cores.sequencer,
            egress: self.cores.egress,
            replicas: self.cores.replicas.iter().copied().map(Some).collect(),
        };
        system.waits = ThreadWaits {
            sequencer: self.waits.strategy(self.waits.sequencer),
            replica: self.waits.strategy(self.waits.replica),
            egress: self.waits.strategy(self.waits.egress),
        };
        system
    }

    fn gateway_config(&self) -> GatewayConfig {
        let instruments = (0u32..)
            .zip(&self.instruments)
            .map(|(id, instrument)| GatewayInstrument {
                symbol: instrument.symbol.clone(),
                instrument: InstrumentId(id),
            })
            .collect();
        let sessions = self
            .sessions
            .iter()
            .map(|session| SessionConfig {
                username: session.username.clone(),
                password: session.password.clone(),
                firm: session.firm.clone(),
                account: AccountId(session.account),
                cancel_on_disconnect: session.cancel_on_disconnect,
                open_orders_max: session.open_orders_max,
                messages_per_second_max: session.messages_per_second_max,
                messages_burst_max: session.messages_burst_max,
            })
            .collect();
        let mut gateway = GatewayConfig::new(self.server.listen, instruments, sessions);
        gateway.io_backend = self.server.io_backend;
        gateway.session_name = self.server.session_name.clone();
        gateway.connections_max = self.gateway.connections_max;
        gateway.packet_len_max = self.gateway.packet_len_max;
        gateway.output_buffer_bytes_max = self.gateway.output_buffer_bytes_max;
        gateway.output_log_messages_max = self.gateway.output_log_messages_max;
        gateway.session_tokens_max = self.gateway.session_tokens_max;
        gateway.event_queue_max = self.gateway.event_queue_max;
        gateway.heartbeat_interval_ms = self.gateway.heartbeat_interval_ms;
        gateway.idle_timeout_ms = self.gateway.idle_timeout_ms;
        gateway.login_timeout_ms = self.gateway.login_timeout_ms;
        gateway
    }
}

/// Deserializes `io_backend` through the gateway's own parser, so the file
/// and `--io` accept the same spellings.
fn io_backend_by_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IoBackend, D::Error> {
    let name = String::deserialize(deserializer)?;
    IoBackend::parse(&name).ok_or_else(|| {
        D::Error::custom(format!(
            "unknown io_backend {name:?}, expected \"mio\" or \"uring\""
        ))
    })
}

/// Deserializes `durability` through the sequencer's own parser.
fn durability_by_name<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DurabilityPolicy, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse::<DurabilityPolicy>().map_err(D::Error::custom)
}

/// Translates a gateway key (`session_name`, `connections_max`,
/// `sessions[1].password`) into this file's layout.
fn gateway_key(key: &str) -> String {
    if key.starts_with("sessions") || key.starts_with("instruments") {
        key.to_string()
    } else if matches!(key, "listen" | "io_backend" | "session_name") {
        format!("server.{key}")
    } else {
        format!("gateway.{key}")
    }
}

/// Translates a `SystemConfig` key into this file's layout.
fn system_key(key: &str) -> String {
    match key {
        "engine" => key.to_string(),
        "durability" | "prefer_io_uring" | "snapshot_interval" | "snapshots_kept" => {
            format!("journal.{key}")
        }
        _ => format!("system.{key}"),
    }
}

/// Turns the TOML parser's error into one line naming the origin, the line
/// and column, and the key path when the text shows it.
fn parse_error(text: &str, origin: &str, error: &toml::de::Error) -> ServeConfigError {
    // An error about the document as a whole (a missing top-level section)
    // is reported at its start; unless the first line is a key or a table
    // header, that points at no line in particular, so none is named.
    let offset = error
        .span()
        .map(|span| span.start)
        .filter(|&offset| offset > 0 || key_path_at(text, 0).is_some());
    ServeConfigError::Parse {
        origin: origin.to_string(),
        position: offset.map(|offset| line_and_column(text, offset)),
        key: offset.and_then(|offset| key_path_at(text, offset)),
        message: error.message().trim().replace('\n', "; "),
    }
}

/// The 1-based line and column (in characters) of byte `offset`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let bytes = &text.as_bytes()[..offset.min(text.len())];
    let line_start = bytes
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = bytes.iter().filter(|&&byte| byte == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&bytes[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// The key path of the line holding byte `offset`, as this file's errors
/// name keys: the enclosing table (`server`, `sessions[1]`) and the key
/// assigned on that line. It reads table headers line by line, which is
/// exact for files laid out as the bundled default is; where the line shows
/// no key (inside a multi-line array, say) the table alone is named, and the
/// line and column are exact either way.
fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let (error_line, _) = line_and_column(text, offset);
    let mut table: Option<String> = None;
    let mut array_lengths: Vec<(String, usize)> = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let line = line.trim();
        let header = table_header(line);
        if let Some((name, is_array)) = header {
            table = Some(if is_array {
                let position = match array_lengths.iter_mut().find(|(seen, _)| *seen == name) {
                    Some((_, length)) => {
                        *length += 1;
                        *length - 1
                    }
                    None => {
                        array_lengths.push((name.to_string(), 1));
                        0
                    }
                };
                format!("{name}[{position}]")
            } else {
                name.to_string()
            });
        }
        if index + 1 == error_line {
            if header.is_some() {
                return table;
            }
            return match (table, assigned_key(line)) {
                (Some(table), Some(key)) => Some(format!("{table}.{key}")),
                (None, Some(key)) => Some(key.to_string()),
                (table, None) => table,
            };
        }
    }
    None
}

/// The name of a `[table]` or `[[array]]` header line, and whether it is an
/// array of tables.
fn table_header(line: &str) -> Option<(&str, bool)> {
    let (rest, close, is_array) = if let Some(rest) = line.strip_prefix("[[") {
        (rest, "]]", true)
    } else if let Some(rest) = line.strip_prefix('[') {
        (rest, "]", false)
    } else {
        return None;
    };
    let name = rest[..rest.find(close)?].trim();
    is_key_text(name).then_some((name, is_array))
}

/// The key a `key = value` line assigns.
fn assigned_key(line: &str) -> Option<&str> {
    if line.starts_with('#') {
        return None;
    }
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    is_key_text(key).then_some(key)
}

fn is_key_text(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default text with `from` (which must occur) replaced once by `to`.
    fn default_with(from: &str, to: &str) -> String {
        assert!(
            DEFAULT_CONFIG_TOML.contains(from),
            "{from:?} not in default"
        );
        DEFAULT_CONFIG_TOML.replacen(from, to, 1)
    }

    /// The message a configuration is refused with; panics if it is accepted.
    fn refusal(text: &str) -> String {
        match ServeConfig::parse(text, "test.toml") {
            Ok(_) => panic!("config accepted"),
            Err(error) => {
                let message = error.to_string();
                assert!(message.starts_with("test.toml"), "{message}");
                assert!(!message.contains('\n'), "{message}");
                message
            }
        }
    }

    #[test]
    fn the_bundled_default_parses_validates_and_converts() {
        let config = ServeConfig::default_config();
        assert_eq!(config.origin(), DEFAULT_CONFIG_ORIGIN);
        let data_dir = PathBuf::from("/tmp/lockstep-test-data");
        let (system, gateway) = config.to_runtime(data_dir.clone()).expect("converts");

        assert_eq!(system.replicas, 3);
        assert_eq!(system.data_dir, data_dir);
        assert_eq!(system.durability, DurabilityPolicy::Batch);
        assert_eq!(system.engine.instruments.len(), 3);
        assert_eq!(system.engine.instruments_max, 3);
        for spec in &system.engine.instruments {
            assert_eq!(spec.tick_size, 1);
            assert_eq!(spec.band_min, 1);
            assert_eq!(spec.band_max, 1_999_999_999);
            assert_eq!(spec.qty_max, 1_000_000);
        }
        assert!(usize::from(system.engine.sessions_max) >= 2);
        assert!(system.engine.accounts_max > 2);
        assert_eq!(system.cores, ThreadCores::default());
        // The waits are the shared-machine defaults SystemConfig::new picks.
        assert_eq!(system.waits, ThreadWaits::default());

        assert_eq!(
            gateway.listen,
            "127.0.0.1:15001".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(gateway.io_backend, IoBackend::Mio);
        assert_eq!(gateway.session_name, "LOCKSTEP");
        let symbols: Vec<(&str, InstrumentId)> = gateway
            .instruments
            .iter()
            .map(|instrument| (instrument.symbol.as_str(), instrument.instrument))
            .collect();
        assert_eq!(
            symbols,
            [
                ("AMZN", InstrumentId(0)),
                ("AAPL", InstrumentId(1)),
                ("MSFT", InstrumentId(2))
            ]
        );
        let logins: Vec<(&str, &str, &str, AccountId)> = gateway
            .sessions
            .iter()
            .map(|session| {
                (
                    session.username.as_str(),
                    session.password.as_str(),
                    session.firm.as_str(),
                    session.account,
                )
            })
            .collect();
        assert_eq!(
            logins,
            [
                ("demo1", "demo1pass", "DEM1", AccountId(1)),
                ("demo2", "demo2pass", "DEM2", AccountId(2))
            ]
        );
        for session in &gateway.sessions {
            assert!(session.cancel_on_disconnect);
            assert_eq!(session.open_orders_max, 100_000);
            assert_eq!(session.messages_per_second_max, 200_000);
            assert_eq!(session.messages_burst_max, 20_000);
        }
        assert_eq!(gateway.heartbeat_interval_ms, 1_000);
        assert_eq!(gateway.idle_timeout_ms, 15_000);
        assert_eq!(config.gateway_core(), None);
    }

    #[test]
    fn overrides_reach_the_runtime_configs() {
        let mut config = ServeConfig::default_config();
        config.set_io_backend(IoBackend::Uring);
        assert_eq!(config.io_backend(), IoBackend::Uring);
        let (_, gateway) = config.to_runtime(PathBuf::from("x")).unwrap();
        assert_eq!(gateway.io_backend, IoBackend::Uring);
    }

    #[test]
    fn cores_and_waits_are_carried_over() {
        let text = default_with(
            "# gateway = 0\n",
            "sequencer = 1\negress = 0\nreplicas = [1, 0]\ngateway = 1\n",
        )
        .replacen(
            "sequencer = \"spin-then-park\"",
            "sequencer = \"busy-spin\"",
            1,
        )
        .replacen("egress = \"spin-then-park\"", "egress = \"yield\"", 1);
        let config = ServeConfig::parse(&text, "test.toml").expect("valid");
        assert_eq!(config.gateway_core(), Some(1));
        let (system, _) = config.to_runtime(PathBuf::from("x")).unwrap();
        assert_eq!(
            system.cores,
            ThreadCores {
                sequencer: Some(1),
                egress: Some(0),
                replicas: vec![Some(1), Some(0)],
            }
        );
        assert_eq!(system.waits.sequencer, WaitStrategy::BusySpin);
        assert_eq!(system.waits.egress, WaitStrategy::Yield);
        assert_eq!(system.waits.replica, WaitStrategy::default());
    }

    #[test]
    fn an_unknown_key_is_refused_by_name_and_line() {
        let text = default_with("[server]\n", "[server]\nlisten_port = 15001\n");
        let message = refusal(&text);
        assert!(message.contains("server.listen_port"), "{message}");
        assert!(message.contains("unknown field `listen_port`"), "{message}");
        let line = text
            .lines()
            .position(|line| line.starts_with("listen_port"))
            .unwrap()
            + 1;
        assert!(
            message.starts_with(&format!("test.toml:{line}:")),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_section_is_refused_by_name() {
        let message = refusal(&format!("{DEFAULT_CONFIG_TOML}\n[metrics]\nport = 9\n"));
        assert!(message.contains("metrics"), "{message}");
    }

    #[test]
    fn a_wrong_type_is_refused_by_key_and_line() {
        let message = refusal(&default_with("replicas = 3", "replicas = \"three\""));
        assert!(message.contains("system.replicas"), "{message}");
        assert!(message.contains("invalid type"), "{message}");
        let message = refusal(&default_with("sessions_max = 16", "sessions_max = 70_000"));
        assert!(message.contains("engine.sessions_max"), "{message}");
    }

    #[test]
    fn a_missing_key_is_refused_by_name() {
        let message = refusal(&default_with("listen = \"127.0.0.1:15001\"\n", ""));
        assert!(message.contains("missing field `listen`"), "{message}");
        assert!(message.contains("server"), "{message}");
        let message = refusal(&default_with("password = \"demo2pass\"\n", ""));
        assert!(message.contains("missing field `password`"), "{message}");
        assert!(message.contains("sessions[1]"), "{message}");
    }

    #[test]
    fn a_missing_section_is_refused_by_name() {
        let text = default_with("[engine]\n", "[not_engine]\n");
        let message = refusal(&text);
        assert!(message.contains("not_engine"), "{message}");
        let start = DEFAULT_CONFIG_TOML.find("[engine]").unwrap();
        let end = DEFAULT_CONFIG_TOML.find("[system]").unwrap();
        let text = format!(
            "{}{}",
            &DEFAULT_CONFIG_TOML[..start],
            &DEFAULT_CONFIG_TOML[end..]
        );
        let message = refusal(&text);
        assert_eq!(message, "test.toml: missing field `engine`");
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let text = default_with("listen = \"127.0.0.1:15001\"", "listen = \"127.0.0.1:15001");
        let message = refusal(&text);
        let line = text
            .lines()
            .position(|line| line.starts_with("listen"))
            .unwrap()
            + 1;
        assert!(
            message.starts_with(&format!("test.toml:{line}:")),
            "{message}"
        );
    }

    #[test]
    fn a_bad_listen_address_is_refused() {
        let message = refusal(&default_with(
            "listen = \"127.0.0.1:15001\"",
            "listen = \"localhost:15001\"",
        ));
        assert!(message.contains("server.listen"), "{message}");
    }

    #[test]
    fn a_ring_that_is_not_a_power_of_two_is_refused() {
        let message = refusal(&default_with(
            "broadcast_ring_size = 65_536",
            "broadcast_ring_size = 1000",
        ));
        assert!(
            message
                .ends_with("system.broadcast_ring_size: 1000 is not a power of two of at least 2"),
            "{message}"
        );
    }

    #[test]
    fn a_duplicate_username_is_refused() {
        let message = refusal(&default_with(
            "username = \"demo2\"",
            "username = \"demo1\"",
        ));
        assert!(message.contains("sessions[1].username"), "{message}");
        assert!(message.contains("listed twice"), "{message}");
    }

    #[test]
    fn a_long_password_is_refused_without_being_quoted() {
        let message = refusal(&default_with("\"demo2pass\"", "\"demo2password\""));
        assert!(
            message.ends_with("sessions[1].password: longer than 10 characters"),
            "{message}"
        );
        assert!(!message.contains("demo2password"), "{message}");
    }

    #[test]
    fn a_band_upside_down_is_refused() {
        let message = refusal(&default_with("band_max = 1_999_999_999", "band_max = 0"));
        assert!(
            message.contains("instruments[0].band_max: 0 is below band_min (1)"),
            "{message}"
        );
        let message = refusal(&default_with(
            "band_max = 1_999_999_999\nqty_max = 1_000_000\n\n# The sessions",
            "band_max = 2_000_000_000\nqty_max = 1_000_000\n\n# The sessions",
        ));
        assert!(message.contains("instruments[2].band_max"), "{message}");
        assert!(message.contains("market order"), "{message}");
    }

    #[test]
    fn a_bad_io_backend_is_refused() {
        let message = refusal(&default_with(
            "io_backend = \"mio\"",
            "io_backend = \"epoll\"",
        ));
        assert!(message.contains("server.io_backend"), "{message}");
        assert!(message.contains("\"epoll\""), "{message}");
    }

    #[test]
    fn a_bad_durability_is_refused() {
        let message = refusal(&default_with(
            "durability = \"batch\"",
            "durability = \"fast\"",
        ));
        assert!(message.contains("journal.durability"), "{message}");
        assert!(message.contains("none, batch or every"), "{message}");
    }

    #[test]
    fn a_bad_wait_name_is_refused() {
        let message = refusal(&default_with(
            "replica = \"spin-then-park\"",
            "replica = \"sleep\"",
        ));
        assert!(message.contains("waits.replica"), "{message}");
        assert!(message.contains("busy-spin"), "{message}");
    }

    #[test]
    fn zero_replicas_are_refused() {
        let message = refusal(&default_with("replicas = 3", "replicas = 0"));
        assert!(
            message.contains("system.replicas: 0 is outside 1..=8"),
            "{message}"
        );
        let error = ServeConfig::parse(&default_with("replicas = 3", "replicas = 0"), "test.toml")
            .unwrap_err();
        assert_eq!(error.key(), Some("system.replicas"));
    }

    #[test]
    fn an_account_outside_the_engine_is_refused() {
        let message = refusal(&default_with("account = 2", "account = 16"));
        assert!(message.contains("sessions[1].account"), "{message}");
    }

    #[test]
    fn too_few_engine_sessions_are_refused() {
        let message = refusal(&default_with("sessions_max = 16", "sessions_max = 1"));
        assert!(message.contains("engine.sessions_max"), "{message}");
    }

    #[test]
    fn engine_capacities_are_checked_with_their_keys() {
        let message = refusal(&default_with("orders_max = 1_048_576", "orders_max = 0"));
        assert!(
            message.contains("engine.orders_max: 0 is outside"),
            "{message}"
        );
    }

    #[test]
    fn gateway_and_journal_rules_name_their_sections() {
        let message = refusal(&default_with(
            "idle_timeout_ms = 15_000",
            "idle_timeout_ms = 500",
        ));
        assert!(message.contains("gateway.idle_timeout_ms"), "{message}");
        let message = refusal(&default_with("snapshots_kept = 2", "snapshots_kept = 0"));
        assert!(message.contains("journal.snapshots_kept"), "{message}");
        let message = refusal(&default_with(
            "session_name = \"LOCKSTEP\"",
            "session_name = \"LOCKSTEP-DEMO\"",
        ));
        assert!(message.contains("server.session_name"), "{message}");
    }

    #[test]
    fn more_replica_cores_than_replicas_are_refused() {
        let message = refusal(&default_with(
            "# gateway = 0\n",
            "replicas = [0, 1, 0, 1]\n",
        ));
        assert!(message.contains("cores.replicas"), "{message}");
    }

    #[test]
    fn a_park_outside_its_bounds_is_refused() {
        let message = refusal(&default_with("park_ns = 50_000", "park_ns = 0"));
        assert!(message.contains("waits.park_ns"), "{message}");
    }

    #[test]
    fn an_unreadable_file_is_refused_by_path() {
        let path = Path::new("/nonexistent/lockstep/serve.toml");
        let message = ServeConfig::load(path).unwrap_err().to_string();
        assert!(
            message.contains("/nonexistent/lockstep/serve.toml"),
            "{message}"
        );
    }

    #[test]
    fn a_file_is_loaded_and_named_in_errors() {
        let dir =
            std::env::temp_dir().join(format!("lockstep-serve-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, DEFAULT_CONFIG_TOML).unwrap();
        let loaded = ServeConfig::load(&good).expect("loads");
        assert_eq!(loaded.origin(), good.display().to_string());
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, default_with("replicas = 3", "replicas = 0")).unwrap();
        let message = ServeConfig::load(&bad).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: system.replicas", bad.display())),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
