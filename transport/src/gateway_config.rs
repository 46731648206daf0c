//! The gateway's configuration: where it listens, which sessions may log in,
//! the per-session protections (open orders, message rate, output buffer) and
//! every bound of its tables and buffers. It is a plain value validated once
//! at start-up; `lockstep serve` fills it from its TOML file.

use lockstep_engine::{AccountId, InstrumentId};
use std::net::SocketAddr;

/// Which event loop moves the gateway's bytes. Both drive the same
/// [`crate::gateway_core::GatewayCore`], so they behave identically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBackend {
    /// epoll through mio: the default, portable across Linux kernels.
    Mio,
    /// io_uring: completion-based; needs Linux 5.6 or later.
    Uring,
}

impl IoBackend {
    pub const fn name(self) -> &'static str {
        match self {
            IoBackend::Mio => "mio",
            IoBackend::Uring => "uring",
        }
    }

    /// Parses `mio` or `uring` (the spellings of the config and `--io`).
    pub fn parse(text: &str) -> Option<IoBackend> {
        match text {
            "mio" => Some(IoBackend::Mio),
            "uring" | "io_uring" | "io-uring" => Some(IoBackend::Uring),
            _ => None,
        }
    }
}

/// One OUCH instrument: its 8-character symbol and the engine's id for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayInstrument {
    pub symbol: String,
    pub instrument: InstrumentId,
}

/// One session a client may log in to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// SoupBinTCP username, at most 6 printable ASCII characters.
    pub username: String,
    /// SoupBinTCP password, at most 10 printable ASCII characters.
    pub password: String,
    /// The OUCH firm (MPID) of this session, at most 4 characters. An Enter
    /// Order must carry it or all spaces (meaning "the session's firm").
    pub firm: String,
    /// The engine account the session's orders belong to (self-trade
    /// prevention works per account).
    pub account: AccountId,
    /// Cancel the session's open orders whenever its connection ends (logout,
    /// disconnect, timeout, protocol error). The cancel goes through the
    /// sequencer as a command, so every replica applies it at the same seq.
    pub cancel_on_disconnect: bool,
    /// Open orders the session may have, counting orders sent but not yet
    /// answered; more is a clean reject.
    pub open_orders_max: u32,
    /// Sustained inbound OUCH messages per second (token bucket rate).
    pub messages_per_second_max: u32,
    /// Messages the bucket holds: the burst allowed above the rate.
    pub messages_burst_max: u32,
}

/// Everything the gateway needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub io_backend: IoBackend,
    /// The SoupBinTCP session name of this run (at most 10 characters). A
    /// login naming another session is refused with 'S'.
    pub session_name: String,
    pub instruments: Vec<GatewayInstrument>,
    pub sessions: Vec<SessionConfig>,
    /// Connections open at once, logged in or not; more are closed on accept.
    pub connections_max: usize,
    /// Largest SoupBinTCP packet accepted (the length field's value).
    pub packet_len_max: u16,
    /// Bytes buffered per connection towards its client. Messages that do
    /// not fit wait in the session's output log; a client none of whose
    /// waiting output is written for a heartbeat interval is disconnected
    /// as a slow consumer.
    pub output_buffer_bytes_max: usize,
    /// Sequenced messages kept per session for retransmission. Reaching it
    /// stops the server (`GatewayCore::fatal`) rather than drop a sequenced
    /// message a client may still ask for; size it for a whole day.
    pub output_log_messages_max: usize,
    /// Day-unique order tokens remembered per session.
    pub session_tokens_max: usize,
    /// Published events buffered between egress and the gateway thread.
    pub event_queue_max: usize,
    /// Send a Server Heartbeat after this long without sending anything.
    pub heartbeat_interval_ms: u64,
    /// Disconnect a logged-in client heard nothing from for this long.
    pub idle_timeout_ms: u64,
    /// Disconnect a connection that has not logged in within this long.
    pub login_timeout_ms: u64,
}

/// A configuration the gateway refuses, naming the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfigError {
    pub key: String,
    pub problem: String,
}

impl std::fmt::Display for GatewayConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for GatewayConfigError {}

fn refuse(key: impl Into<String>, problem: impl Into<String>) -> GatewayConfigError {
    GatewayConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

fn check_ascii(key: &str, text: &str, len_max: usize) -> Result<(), GatewayConfigError> {
    if text.len() > len_max {
        return Err(refuse(
            key,
            format!("'{text}' is longer than {len_max} characters"),
        ));
    }
    if !text.bytes().all(|byte| (0x21..0x7f).contains(&byte)) {
        return Err(refuse(
            key,
            format!("'{text}' must be printable ASCII without spaces"),
        ));
    }
    Ok(())
}

impl GatewayConfig {
    /// Each instrument's OUCH stock symbol with its engine id: the mapping
    /// the gateway's adapter decodes Enter Orders with.
    pub fn stock_symbols(&self) -> Vec<(crate::ouch::Stock, InstrumentId)> {
        self.instruments
            .iter()
            .map(|instrument| {
                (
                    crate::ouch::Stock::left(&instrument.symbol)
                        .unwrap_or(crate::ouch::Stock::BLANK),
                    instrument.instrument,
                )
            })
            .collect()
    }

    /// The stock symbol of each engine instrument id (blank where none):
    /// the table the gateway's publisher encodes outbound messages with.
    pub fn symbol_by_instrument(&self) -> Vec<crate::ouch::Stock> {
        let symbols = self.stock_symbols();
        let count = symbols
            .iter()
            .map(|(_, id)| id.0 as usize + 1)
            .max()
            .unwrap_or(0);
        let mut by_instrument = vec![crate::ouch::Stock::BLANK; count];
        for (symbol, id) in symbols {
            by_instrument[id.0 as usize] = symbol;
        }
        by_instrument
    }

    /// The defaults of `lockstep serve`, for the given instruments and sessions.
    pub fn new(
        listen: SocketAddr,
        instruments: Vec<GatewayInstrument>,
        sessions: Vec<SessionConfig>,
    ) -> GatewayConfig {
        GatewayConfig {
            listen,
            io_backend: IoBackend::Mio,
            session_name: "LOCKSTEP".to_string(),
            instruments,
            sessions,
            connections_max: 64,
            packet_len_max: crate::soupbintcp::DEFAULT_MAX_PACKET_LEN,
            output_buffer_bytes_max: 1 << 20,
            output_log_messages_max: 4_000_000,
            session_tokens_max: 1_000_000,
            event_queue_max: 65_536,
            heartbeat_interval_ms: 1_000,
            idle_timeout_ms: 15_000,
            login_timeout_ms: 15_000,
        }
    }

    /// Checks every field; the error names the offending key.
    pub fn validate(&self) -> Result<(), GatewayConfigError> {
        check_ascii("session_name", &self.session_name, 10)?;
        if self.session_name.is_empty() {
            return Err(refuse("session_name", "must not be empty"));
        }
        if self.instruments.is_empty() {
            return Err(refuse("instruments", "at least one instrument is needed"));
        }
        for (index, instrument) in self.instruments.iter().enumerate() {
            let key = format!("instruments[{index}].symbol");
            check_ascii(&key, &instrument.symbol, 8)?;
            if instrument.symbol.is_empty() {
                return Err(refuse(key, "must not be empty"));
            }
            if self.instruments[..index]
                .iter()
                .any(|other| other.symbol == instrument.symbol)
            {
                return Err(refuse(
                    key,
                    format!("'{}' is listed twice", instrument.symbol),
                ));
            }
        }
        if self.sessions.is_empty() {
            return Err(refuse("sessions", "at least one session is needed"));
        }
        if self.sessions.len() >= usize::from(u16::MAX) {
            return Err(refuse("sessions", "too many sessions"));
        }
        for (index, session) in self.sessions.iter().enumerate() {
            let key = |field: &str| format!("sessions[{index}].{field}");
            check_ascii(&key("username"), &session.username, 6)?;
            check_ascii(&key("password"), &session.password, 10)?;
            check_ascii(&key("firm"), &session.firm, 4)?;
            if session.username.is_empty() {
                return Err(refuse(key("username"), "must not be empty"));
            }
            if self.sessions[..index]
                .iter()
                .any(|other| other.username == session.username)
            {
                return Err(refuse(
                    key("username"),
                    format!("'{}' is listed twice", session.username),
                ));
            }
            if session.open_orders_max == 0 {
                return Err(refuse(key("open_orders_max"), "must be at least 1"));
            }
            if session.messages_per_second_max == 0 {
                return Err(refuse(key("messages_per_second_max"), "must be at least 1"));
            }
            if session.messages_burst_max == 0 {
                return Err(refuse(key("messages_burst_max"), "must be at least 1"));
            }
        }
        let positive = [
            ("connections_max", self.connections_max),
            ("output_log_messages_max", self.output_log_messages_max),
            ("session_tokens_max", self.session_tokens_max),
            ("event_queue_max", self.event_queue_max),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(refuse(key, "must be at least 1"));
            }
        }
        if self.packet_len_max < crate::soupbintcp::LOGIN_REQUEST_LEN {
            return Err(refuse(
                "packet_len_max",
                format!(
                    "must be at least {} (a Login Request)",
                    crate::soupbintcp::LOGIN_REQUEST_LEN
                ),
            ));
        }
        // The largest frame the gateway sends is a Replaced in Sequenced Data.
        let frame_max = crate::soupbintcp::HEADER_LEN + crate::ouch::message_len::REPLACED;
        if self.output_buffer_bytes_max < 4 * frame_max {
            return Err(refuse(
                "output_buffer_bytes_max",
                format!("must hold at least 4 frames ({} bytes)", 4 * frame_max),
            ));
        }
        if self.heartbeat_interval_ms == 0 {
            return Err(refuse("heartbeat_interval_ms", "must be at least 1"));
        }
        if self.idle_timeout_ms <= self.heartbeat_interval_ms {
            return Err(refuse(
                "idle_timeout_ms",
                "must be longer than heartbeat_interval_ms",
            ));
        }
        if self.login_timeout_ms == 0 {
            return Err(refuse("login_timeout_ms", "must be at least 1"));
        }
        Ok(())
    }
}
