//! The gateway end to end: a real in-process `Server` (sequencer, three
//! replicas, egress and the gateway) on a loopback port and a temporary data
//! directory, driven by real clients over TCP. Every test runs once per I/O
//! backend (`_mio`, `_uring`); the io_uring variant prints why and returns
//! when the io_uring gateway cannot start on this machine.
//!
//! Nothing here waits on a timer for correctness: every wait is a bounded
//! receive of a message the test knows must come (or of the close it knows
//! must happen), so a slow machine makes the tests slower, never wrong.
//! "No message" is proven the same way: a session sends a fresh order and the
//! very next message it receives must be that order's answer.

use lockstep_engine::{Command, EngineConfig, InstrumentSpec, SessionId};
use lockstep_sequencer::durability::DurabilityPolicy;
use lockstep_sequencer::journal_reader::JournalReader;
use lockstep_sequencer::system_config::{SystemConfig, ThreadWaits};
use lockstep_sequencer::wait_strategy::WaitStrategy;
use lockstep_tests::TempDir;
use lockstep_transport::client::{Client, ClientConfig, ClientError, ClientMessage};
use lockstep_transport::gateway_config::{
    GatewayConfig, GatewayInstrument, IoBackend, SessionConfig,
};
use lockstep_transport::ouch::{
    self, Accepted, CancelReason, Canceled, Capacity, CrossType, CustomerType, Display, EnterOrder,
    Executed, Inbound, IntermarketSweep, LiquidityFlag, OrderState, Outbound, RejectReason,
    Replaced, Side, MARKET_PRICE, TIF_IOC, TIF_MARKET_HOURS, TIF_SYSTEM_HOURS,
};
use lockstep_transport::server::{Server, ServerReport};
use lockstep_transport::soupbintcp::{LoginRejectReason, Packet, Password, SessionName, Username};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The longest any single expected message or close may take.
const WAIT: Duration = Duration::from_secs(10);
/// Clients heartbeat well inside the shortest idle timeout used here.
const CLIENT_HEARTBEAT: Duration = Duration::from_millis(50);
const QTY_MAX: u32 = 1_000_000;
const BAND_MAX: u32 = 1_999_999_999;

const AMZN: &str = "AMZN";
const AAPL: &str = "AAPL";
const MSFT: &str = "MSFT";
/// The one instrument with a coarse tick (100), for the off-tick case.
const IBM: &str = "IBM";

// ----- configuration --------------------------------------------------------

fn engine_config() -> EngineConfig {
    let fine = InstrumentSpec {
        tick_size: 1,
        band_min: 1,
        band_max: u64::from(BAND_MAX),
        qty_max: QTY_MAX,
    };
    let coarse = InstrumentSpec {
        tick_size: 100,
        band_min: 100,
        band_max: 1_999_999_900,
        qty_max: QTY_MAX,
    };
    EngineConfig {
        instruments: vec![fine, fine, fine, coarse],
        instruments_max: 4,
        orders_max: 4096,
        levels_max: 4096,
        sessions_max: 8,
        accounts_max: 16,
    }
}

/// Small rings and queues so the core starts fast, and threads that give
/// their core away when idle: the machine has two cores and tests run in
/// parallel.
fn system_config(dir: &TempDir) -> SystemConfig {
    let mut config = SystemConfig::new(engine_config(), dir.path().to_path_buf());
    config.durability = DurabilityPolicy::None;
    config.prefer_io_uring = false;
    config.input_queue_max = 4096;
    config.broadcast_ring_size = 4096;
    config.output_ring_size = 4096;
    config.sequencer_batch_max = 256;
    config.fence_lag_max = 4095;
    config.hash_window_size = 8192;
    config.snapshot_interval = 0;
    let wait = WaitStrategy::SpinThenPark {
        spin_iterations: 64,
        yield_iterations: 32,
        park_ns: 100_000,
    };
    config.waits = ThreadWaits {
        sequencer: wait,
        replica: wait,
        egress: wait,
    };
    config
}

fn instruments() -> Vec<GatewayInstrument> {
    [AMZN, AAPL, MSFT, IBM]
        .iter()
        .enumerate()
        .map(|(index, symbol)| GatewayInstrument {
            symbol: symbol.to_string(),
            instrument: lockstep_engine::InstrumentId(index as u32),
        })
        .collect()
}

fn password_of(username: &str) -> String {
    format!("{username}-pw")
}

/// A session with generous limits and cancel-on-disconnect on.
fn session(username: &str, firm: &str, account: u32) -> SessionConfig {
    SessionConfig {
        username: username.to_string(),
        password: password_of(username),
        firm: firm.to_string(),
        account: lockstep_engine::AccountId(account),
        cancel_on_disconnect: true,
        open_orders_max: 10_000,
        messages_per_second_max: 1_000_000,
        messages_burst_max: 1_000_000,
    }
}

/// alice (session 0), bob (1) and carol (2), each on an account of its own.
fn trio() -> Vec<SessionConfig> {
    vec![
        session("alice", "ALIC", 1),
        session("bob", "BOBB", 2),
        session("carol", "CARL", 3),
    ]
}

fn gateway_config(backend: IoBackend, sessions: Vec<SessionConfig>) -> GatewayConfig {
    let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap(), instruments(), sessions);
    config.io_backend = backend;
    config.connections_max = 16;
    config.event_queue_max = 4096;
    config.output_log_messages_max = 1_000_000;
    config.session_tokens_max = 1_000_000;
    config.heartbeat_interval_ms = 200;
    config.idle_timeout_ms = 5_000;
    config.login_timeout_ms = 5_000;
    config
}

// ----- the exchange under test ------------------------------------------------

/// A server on a data directory that outlives restarts.
struct Exchange {
    /// Declared first so it stops before the directory is removed.
    server: Option<Server>,
    name: String,
    dir: TempDir,
    gateway: GatewayConfig,
    addr: SocketAddr,
}

impl Exchange {
    /// Starts a server, or returns `None` (after saying why) when the
    /// io_uring variant cannot start its gateway on this machine.
    fn start(name: &str, gateway: GatewayConfig) -> Option<Exchange> {
        let backend = gateway.io_backend;
        let name = format!("{name}-{}", backend.name());
        let mut exchange = Exchange {
            dir: TempDir::new(&format!("gateway-{name}")),
            name,
            gateway,
            server: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        match exchange.launch() {
            Ok(()) => Some(exchange),
            Err(error) if backend == IoBackend::Uring && error.contains("io_uring") => {
                eprintln!(
                    "skipping {}: the io_uring gateway did not start: {error}",
                    exchange.name
                );
                None
            }
            Err(error) => panic!("{}: the server did not start: {error}", exchange.name),
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let server = Server::start(
            system_config(&self.dir),
            self.gateway.clone(),
            Some(listener),
            None,
        )
        .map_err(|error| error.to_string())?;
        self.addr = server.local_addr();
        self.server = Some(server);
        Ok(())
    }

    /// A new server on the same data directory (and a new port).
    fn restart(&mut self) {
        assert!(self.server.is_none(), "stop the running server first");
        if let Err(error) = self.launch() {
            panic!("{}: the server did not restart: {error}", self.name);
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("the server is running")
    }

    fn assert_healthy(&self) {
        if let Some(failure) = self.server().failure() {
            panic!("{}: the server failed: {failure}", self.name);
        }
    }

    fn stop(&mut self) -> ServerReport {
        self.assert_healthy();
        let report = self.server.take().expect("the server is running").stop();
        assert!(report.system.failure.is_none(), "{report:?}");
        report
    }

    fn crash(&mut self) -> ServerReport {
        self.assert_healthy();
        self.server.take().expect("the server is running").crash()
    }

    fn journal_path(&self) -> std::path::PathBuf {
        system_config(&self.dir).journal_path()
    }

    fn client_config(&self, username: &str, requested_sequence_number: u64) -> ClientConfig {
        let mut config = ClientConfig::new(self.addr, username, password_of(username));
        config.requested_sequence_number = requested_sequence_number;
        config.heartbeat_interval = CLIENT_HEARTBEAT;
        config.connect_timeout = WAIT;
        config
    }

    /// Logs `username` in, retrying while the gateway still holds the
    /// session for a connection it has not yet seen close.
    fn login(&self, username: &str, requested_sequence_number: u64) -> Session {
        self.login_with(self.client_config(username, requested_sequence_number))
    }

    fn login_with(&self, config: ClientConfig) -> Session {
        let deadline = Instant::now() + WAIT;
        loop {
            match Client::connect(&config) {
                Ok(client) => {
                    return Session {
                        name: config.username.clone(),
                        next: client.next_sequence_number(),
                        first: client.next_sequence_number(),
                        client,
                        received: Vec::new(),
                    }
                }
                Err(ClientError::LoginRejected(LoginRejectReason::SessionNotAvailable))
                    if Instant::now() < deadline =>
                {
                    // The previous connection's close is still on its way.
                    thread::sleep(Duration::from_millis(2));
                }
                Err(error) => panic!("{}: login of {}: {error}", self.name, config.username),
            }
        }
    }
}

// ----- OUCH helpers ---------------------------------------------------------

fn tok(text: &str) -> ouch::Token {
    ouch::Token::left(text).expect("a token of at most 14 characters")
}

fn firm(text: &str) -> ouch::Firm {
    ouch::Firm::left(text).expect("a firm of at most 4 characters")
}

/// A plain limit order, good till canceled, with the default echo fields.
fn order(token: &str, side: Side, shares: u32, stock: &str, price: u32) -> EnterOrder {
    EnterOrder {
        token: tok(token),
        side,
        shares,
        stock: ouch::Stock::left(stock).expect("a symbol"),
        price,
        time_in_force: TIF_MARKET_HOURS,
        firm: ouch::Firm::BLANK,
        display: Display::AnonymousPriceToComply,
        capacity: Capacity::Agency,
        intermarket_sweep: IntermarketSweep::NotEligible,
        minimum_quantity: 0,
        cross_type: CrossType::NoCross,
        customer_type: CustomerType::PortDefault,
    }
}

/// The same order, immediate or cancel.
fn ioc(mut order: EnterOrder) -> EnterOrder {
    order.time_in_force = TIF_IOC;
    order
}

/// An IOC buy of one IBM at the lowest price: nothing here ever sells IBM,
/// so it is always Accepted, then Canceled 'I'.
fn harmless(token: &str) -> EnterOrder {
    ioc(order(token, Side::Buy, 1, IBM, 100))
}

fn encoded(message: &Outbound) -> Vec<u8> {
    let mut bytes = Vec::new();
    message.encode(&mut bytes);
    bytes
}

fn payload(message: &Inbound) -> Vec<u8> {
    let mut bytes = Vec::new();
    message.encode(&mut bytes);
    bytes
}

fn enter_payload(order: &EnterOrder) -> Vec<u8> {
    payload(&Inbound::EnterOrder(*order))
}

fn frame(packet: &Packet<'_>) -> Vec<u8> {
    let mut bytes = Vec::new();
    packet.encode(&mut bytes).expect("the packet encodes");
    bytes
}

fn unsequenced(payload: &[u8]) -> Vec<u8> {
    frame(&Packet::UnsequencedData(payload))
}

fn login_frame(username: &str, password: &str, session: &str, sequence: u64) -> Vec<u8> {
    frame(&Packet::LoginRequest {
        username: Username::left(username).unwrap(),
        password: Password::left(password).unwrap(),
        requested_session: SessionName::right(session).unwrap(),
        requested_sequence_number: sequence,
    })
}

/// Checks every field an Accepted echoes from its Enter Order.
fn assert_echo(accepted: &Accepted, order: &EnterOrder, session_firm: &str) {
    assert_eq!(accepted.token, order.token);
    assert_eq!(accepted.side, order.side, "{accepted:?}");
    assert_eq!(accepted.shares, order.shares, "{accepted:?}");
    assert_eq!(accepted.stock, order.stock, "{accepted:?}");
    assert_eq!(accepted.price, order.price, "{accepted:?}");
    assert_eq!(accepted.time_in_force, order.time_in_force, "{accepted:?}");
    assert_eq!(accepted.firm, firm(session_firm), "{accepted:?}");
    assert_eq!(accepted.display, order.display, "{accepted:?}");
    assert_eq!(accepted.capacity, order.capacity, "{accepted:?}");
    assert_eq!(
        accepted.intermarket_sweep, order.intermarket_sweep,
        "{accepted:?}"
    );
    assert_eq!(
        accepted.minimum_quantity, order.minimum_quantity,
        "{accepted:?}"
    );
    assert_eq!(accepted.cross_type, CrossType::NoCross, "{accepted:?}");
    assert_eq!(accepted.order_state, OrderState::Live, "{accepted:?}");
    assert_eq!(accepted.bbo_weight, ouch::BboWeight::Unspecified);
    assert!(accepted.order_reference_number > 0, "{accepted:?}");
}

// ----- a logged-in session --------------------------------------------------

/// One connection of a session, checking that Sequenced Data arrives
/// numbered without a gap, and keeping the bytes of every message.
struct Session {
    name: String,
    client: Client,
    /// The number Login Accepted announced.
    first: u64,
    /// The number the next message must carry.
    next: u64,
    /// Every message received on this connection, as bytes on the wire.
    received: Vec<Vec<u8>>,
}

impl Session {
    fn recv(&mut self) -> Outbound {
        let message = match self.client.recv_sequenced(WAIT) {
            Ok(message) => message,
            Err(error) => panic!("{}: waiting for message {}: {error}", self.name, self.next),
        };
        assert_eq!(
            message.sequence_number, self.next,
            "{}: numbering",
            self.name
        );
        self.next += 1;
        self.received.push(encoded(&message.message));
        message.message
    }

    fn enter(&mut self, order: &EnterOrder) {
        self.client.send_enter(order).expect("send Enter Order");
    }

    fn cancel(&mut self, token: &str, shares: u32) {
        self.client
            .send_cancel(&ouch::CancelOrder {
                token: tok(token),
                shares,
            })
            .expect("send Cancel Order");
    }

    fn replace(&mut self, existing: &str, replacement: &str, shares: u32, price: u32) {
        self.client
            .send_replace(&ouch::ReplaceOrder {
                existing_token: tok(existing),
                replacement_token: tok(replacement),
                shares,
                price,
                time_in_force: TIF_MARKET_HOURS,
                display: Display::AnonymousPriceToComply,
                intermarket_sweep: IntermarketSweep::NotEligible,
                minimum_quantity: 0,
            })
            .expect("send Replace Order");
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.client.send_raw(bytes).expect("send raw bytes");
    }

    fn accepted(&mut self, token: &str) -> Accepted {
        match self.recv() {
            Outbound::Accepted(accepted) if accepted.token == tok(token) => accepted,
            other => panic!("{}: expected Accepted {token}, got {other:?}", self.name),
        }
    }

    fn executed(&mut self, token: &str) -> Executed {
        match self.recv() {
            Outbound::Executed(executed) if executed.token == tok(token) => executed,
            other => panic!("{}: expected Executed {token}, got {other:?}", self.name),
        }
    }

    fn canceled(&mut self, token: &str, shares: u32, reason: CancelReason) -> Canceled {
        match self.recv() {
            Outbound::Canceled(canceled)
                if canceled.token == tok(token)
                    && canceled.decrement_shares == shares
                    && canceled.reason == reason =>
            {
                canceled
            }
            other => panic!(
                "{}: expected Canceled {token} {shares} {reason:?}, got {other:?}",
                self.name
            ),
        }
    }

    fn replaced(&mut self, token: &str) -> Replaced {
        match self.recv() {
            Outbound::Replaced(replaced) if replaced.replacement_token == tok(token) => replaced,
            other => panic!("{}: expected Replaced {token}, got {other:?}", self.name),
        }
    }

    fn rejected(&mut self, token: &str, reason: RejectReason) {
        match self.recv() {
            Outbound::Rejected(rejected)
                if rejected.token == tok(token) && rejected.reason == reason => {}
            other => panic!(
                "{}: expected Rejected {token} {reason:?}, got {other:?}",
                self.name
            ),
        }
    }

    /// Sends a harmless IOC and requires its Accepted and Canceled to be the
    /// very next messages: nothing else was pending for this session.
    fn round_trip(&mut self, token: &str) {
        self.enter(&harmless(token));
        self.accepted(token);
        self.canceled(token, 1, CancelReason::ImmediateOrCancel);
    }

    /// Waits until the server closes the connection; a Sequenced Data
    /// message before that is a failure.
    fn expect_closed(mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{}: the server never closed", self.name);
            match self.client.recv(left) {
                Ok(ClientMessage::Sequenced { message, .. }) => {
                    panic!("{}: expected a close, got {message:?}", self.name)
                }
                Ok(_) | Err(ClientError::Timeout) => {}
                Err(ClientError::Closed) => return,
                Err(error) => panic!("{}: expected a close, got {error}", self.name),
            }
        }
    }

    /// After a server stop: End of Session (or the close right after it).
    fn expect_end_of_session(&mut self) {
        match self.client.recv_sequenced(WAIT) {
            Err(ClientError::EndOfSession) | Err(ClientError::Closed) => {}
            other => panic!("{}: expected End of Session, got {other:?}", self.name),
        }
    }
}

macro_rules! on_both_backends {
    ($case:ident => $mio:ident, $uring:ident) => {
        #[test]
        fn $mio() {
            $case(IoBackend::Mio);
        }

        #[test]
        fn $uring() {
            $case(IoBackend::Uring);
        }
    };
}

// ----- 1: several sessions trading --------------------------------------------

on_both_backends!(several_sessions_trade_case =>
    several_sessions_trade_and_receive_exactly_the_engines_answers_mio,
    several_sessions_trade_and_receive_exactly_the_engines_answers_uring);

fn several_sessions_trade_case(backend: IoBackend) {
    let Some(exchange) = Exchange::start("trading", gateway_config(backend, trio())) else {
        return;
    };
    let mut alice = exchange.login("alice", 0);
    let mut bob = exchange.login("bob", 0);
    let mut carol = exchange.login("carol", 0);
    for session in [&alice, &bob, &carol] {
        assert_eq!(session.first, 1, "a fresh session starts at message 1");
        assert_eq!(session.client.session(), "LOCKSTEP");
    }
    let mut references = Vec::new();

    // A resting sell; a blank firm is echoed as the session's.
    let a1 = order("A-SELL-1", Side::Sell, 100, AMZN, 1_000_000);
    alice.enter(&a1);
    let accepted = alice.accepted("A-SELL-1");
    assert_echo(&accepted, &a1, "ALIC");
    references.push(accepted.order_reference_number);

    // bob buys 60 of it at a better price: he takes, she makes, at her price.
    let mut b1 = order("B-BUY-1", Side::Buy, 60, AMZN, 1_000_100);
    b1.firm = firm("BOBB");
    b1.display = Display::AttributablePriceToDisplay;
    b1.capacity = Capacity::Principal;
    b1.intermarket_sweep = IntermarketSweep::Eligible;
    b1.customer_type = CustomerType::RetailDesignated;
    b1.time_in_force = TIF_SYSTEM_HOURS;
    bob.enter(&b1);
    let accepted = bob.accepted("B-BUY-1");
    assert_echo(&accepted, &b1, "BOBB");
    references.push(accepted.order_reference_number);
    let taker = bob.executed("B-BUY-1");
    let maker = alice.executed("A-SELL-1");
    assert_eq!(
        (
            taker.executed_shares,
            taker.execution_price,
            taker.liquidity_flag
        ),
        (60, 1_000_000, LiquidityFlag::Removed)
    );
    assert_eq!(
        (
            maker.executed_shares,
            maker.execution_price,
            maker.liquidity_flag
        ),
        (60, 1_000_000, LiquidityFlag::Added)
    );
    assert_eq!(taker.match_number, maker.match_number);
    let first_match = taker.match_number;

    // carol's IOC takes the other 40; its remainder of 10 is canceled 'I'.
    let c1 = ioc(order("C-IOC-1", Side::Buy, 50, AMZN, 1_000_000));
    carol.enter(&c1);
    let accepted = carol.accepted("C-IOC-1");
    assert_echo(&accepted, &c1, "CARL");
    references.push(accepted.order_reference_number);
    let taker = carol.executed("C-IOC-1");
    assert_eq!(
        (
            taker.executed_shares,
            taker.execution_price,
            taker.liquidity_flag
        ),
        (40, 1_000_000, LiquidityFlag::Removed)
    );
    carol.canceled("C-IOC-1", 10, CancelReason::ImmediateOrCancel);
    let maker = alice.executed("A-SELL-1");
    assert_eq!(
        (maker.executed_shares, maker.liquidity_flag),
        (40, LiquidityFlag::Added)
    );
    assert_eq!(maker.match_number, taker.match_number);
    assert_ne!(
        maker.match_number, first_match,
        "each trade has its own match number"
    );

    // A partial cancel (shares > 0) reduces the order to that size.
    let a2 = order("A-BUY-2", Side::Buy, 200, AAPL, 500_000);
    alice.enter(&a2);
    references.push(alice.accepted("A-BUY-2").order_reference_number);
    alice.cancel("A-BUY-2", 150);
    alice.canceled("A-BUY-2", 50, CancelReason::UserRequested);
    // A short sale of 200 finds exactly the 150 left.
    let b2 = ioc(order("B-SELL-2", Side::SellShort, 200, AAPL, 499_000));
    bob.enter(&b2);
    let accepted = bob.accepted("B-SELL-2");
    assert_echo(&accepted, &b2, "BOBB");
    references.push(accepted.order_reference_number);
    let taker = bob.executed("B-SELL-2");
    assert_eq!(
        (taker.executed_shares, taker.execution_price),
        (150, 500_000)
    );
    bob.canceled("B-SELL-2", 50, CancelReason::ImmediateOrCancel);
    let maker = alice.executed("A-BUY-2");
    assert_eq!(
        (maker.executed_shares, maker.match_number),
        (150, taker.match_number)
    );

    // A replace: new token, new reference number, echo fields kept.
    let c2 = order("C-SELL-2", Side::Sell, 30, MSFT, 2_000_000);
    carol.enter(&c2);
    let original = carol.accepted("C-SELL-2");
    references.push(original.order_reference_number);
    carol.replace("C-SELL-2", "C-SELL-3", 40, 2_000_100);
    let replaced = carol.replaced("C-SELL-3");
    assert_eq!(replaced.previous_token, tok("C-SELL-2"));
    assert_eq!(
        (replaced.side, replaced.shares, replaced.price),
        (Side::Sell, 40, 2_000_100)
    );
    assert_eq!(replaced.stock, c2.stock);
    assert_eq!(replaced.firm, firm("CARL"));
    assert_eq!(replaced.time_in_force, TIF_MARKET_HOURS);
    assert_eq!(replaced.display, Display::AnonymousPriceToComply);
    assert_eq!(replaced.capacity, Capacity::Agency);
    assert_eq!(replaced.order_state, OrderState::Live);
    assert_ne!(
        replaced.order_reference_number,
        original.order_reference_number
    );
    references.push(replaced.order_reference_number);

    // A fill-or-kill that can fill: minimum quantity = shares, IOC.
    let mut b3 = ioc(order("B-FOK-3", Side::Buy, 10, MSFT, 2_000_100));
    b3.minimum_quantity = 10;
    bob.enter(&b3);
    let accepted = bob.accepted("B-FOK-3");
    assert_echo(&accepted, &b3, "BOBB");
    references.push(accepted.order_reference_number);
    let taker = bob.executed("B-FOK-3");
    let maker = carol.executed("C-SELL-3");
    assert_eq!(
        (taker.executed_shares, taker.execution_price),
        (10, 2_000_100)
    );
    assert_eq!(
        (maker.executed_shares, maker.liquidity_flag),
        (10, LiquidityFlag::Added)
    );
    assert_eq!(taker.match_number, maker.match_number);

    // A fill-or-kill that cannot: the engine refuses it, reason 'O'.
    let mut a3 = ioc(order("A-FOK-3", Side::Buy, 100, MSFT, 3_000_000));
    a3.minimum_quantity = 100;
    alice.enter(&a3);
    alice.rejected("A-FOK-3", RejectReason::Other);

    // A post-only order rests; one that would trade is refused.
    let mut a4 = order("A-POST-4", Side::Buy, 10, MSFT, 1_000_000);
    a4.display = Display::PostOnly;
    alice.enter(&a4);
    let accepted = alice.accepted("A-POST-4");
    assert_echo(&accepted, &a4, "ALIC");
    references.push(accepted.order_reference_number);
    let mut c4 = order("C-POST-4", Side::Sell, 10, MSFT, 900_000);
    c4.display = Display::PostOnly;
    carol.enter(&c4);
    carol.rejected("C-POST-4", RejectReason::Other);
    alice.cancel("A-POST-4", 0);
    alice.canceled("A-POST-4", 10, CancelReason::UserRequested);

    // The rest of carol's replaced order is canceled by its new token.
    carol.cancel("C-SELL-3", 0);
    carol.canceled("C-SELL-3", 30, CancelReason::UserRequested);

    // A market IOC into an empty side: accepted at the market price, then
    // canceled whole.
    let b4 = ioc(order("B-MKT-4", Side::Buy, 5, MSFT, MARKET_PRICE));
    bob.enter(&b4);
    let accepted = bob.accepted("B-MKT-4");
    assert_echo(&accepted, &b4, "BOBB");
    references.push(accepted.order_reference_number);
    bob.canceled("B-MKT-4", 5, CancelReason::ImmediateOrCancel);

    // The engine's own rejects: too many shares, and a cancel of an order
    // that is not bob's.
    bob.enter(&order("B-HUGE-5", Side::Buy, QTY_MAX + 1, AMZN, 1_000));
    bob.rejected("B-HUGE-5", RejectReason::SharesExceedSafetyThreshold);
    bob.cancel("C-SELL-3", 0);
    bob.rejected("C-SELL-3", RejectReason::Other);

    // Order reference numbers are the engine's order ids: distinct, rising.
    assert!(
        references.windows(2).all(|pair| pair[0] < pair[1]),
        "{references:?}"
    );
    // Nothing else is pending for anyone.
    alice.round_trip("A-LAST");
    bob.round_trip("B-LAST");
    carol.round_trip("C-LAST");
    exchange.assert_healthy();
}

// ----- 2: reconnect with a requested sequence number ------------------------

on_both_backends!(reconnect_case =>
    a_reconnect_with_a_sequence_number_replays_from_it_without_gap_or_duplicate_mio,
    a_reconnect_with_a_sequence_number_replays_from_it_without_gap_or_duplicate_uring);

/// alice rests A1 (70 left after bob's fill), A2 (50) and A3 (reduced to 4),
/// receiving five messages.
fn alice_rests_three_orders(alice: &mut Session, bob: &mut Session) {
    alice.enter(&order("A1", Side::Sell, 100, AMZN, 1_000));
    alice.accepted("A1");
    alice.enter(&order("A2", Side::Sell, 50, AMZN, 1_001));
    alice.accepted("A2");
    alice.enter(&order("A3", Side::Buy, 10, AAPL, 500));
    alice.accepted("A3");
    bob.enter(&ioc(order("B1", Side::Buy, 30, AMZN, 1_000)));
    bob.accepted("B1");
    bob.executed("B1");
    alice.executed("A1");
    alice.cancel("A3", 4);
    alice.canceled("A3", 6, CancelReason::UserRequested);
}

/// The next `count` messages must all be system cancels; returns them as
/// (token, shares), sorted.
fn system_cancels(session: &mut Session, count: usize) -> Vec<(String, u32)> {
    let mut cancels: Vec<(String, u32)> = (0..count)
        .map(|_| match session.recv() {
            Outbound::Canceled(canceled) if canceled.reason == CancelReason::SystemCancel => (
                String::from_utf8_lossy(canceled.token.trimmed()).into_owned(),
                canceled.decrement_shares,
            ),
            other => panic!("{}: expected a system cancel, got {other:?}", session.name),
        })
        .collect();
    cancels.sort();
    cancels
}

fn reconnect_case(backend: IoBackend) {
    let Some(exchange) = Exchange::start("reconnect", gateway_config(backend, trio())) else {
        return;
    };
    let mut alice = exchange.login("alice", 0);
    let mut bob = exchange.login("bob", 0);
    alice_rests_three_orders(&mut alice, &mut bob);
    let first_time = std::mem::take(&mut alice.received);
    assert_eq!(first_time.len(), 5);

    // A forced disconnect: the TCP stream is dropped, no Logout Request.
    drop(alice);
    let mut again = exchange.login("alice", 2);
    assert_eq!(again.first, 2, "Login Accepted names the requested number");
    for _ in 2..=5 {
        again.recv();
    }
    assert_eq!(
        again.received[..],
        first_time[1..],
        "messages 2 to 5 again, byte for byte"
    );
    // Then cancel-on-disconnect's cancels of the three open orders.
    assert_eq!(
        system_cancels(&mut again, 3),
        vec![
            ("A1".to_string(), 70),
            ("A2".to_string(), 50),
            ("A3".to_string(), 4)
        ]
    );
    // No duplicate and nothing more: the next message answers a new order.
    again.round_trip("A4");
    assert_eq!(again.next, 11);
    // bob's stream was not touched by any of it.
    bob.round_trip("B2");
    exchange.assert_healthy();
}

on_both_backends!(login_position_case =>
    a_login_from_zero_or_past_the_end_starts_at_the_next_message_mio,
    a_login_from_zero_or_past_the_end_starts_at_the_next_message_uring);

fn login_position_case(backend: IoBackend) {
    let mut sessions = trio();
    sessions[0].cancel_on_disconnect = false;
    let Some(exchange) = Exchange::start("login-position", gateway_config(backend, sessions))
    else {
        return;
    };
    let mut alice = exchange.login("alice", 0);
    alice.round_trip("A1");
    alice.round_trip("A2");
    let seen = alice.received.clone();
    drop(alice);
    // 0 means "from the next new message".
    let mut alice = exchange.login("alice", 0);
    assert_eq!(alice.first, 5);
    alice.round_trip("A3");
    drop(alice);
    // A number past the end starts at the next new message too.
    let mut alice = exchange.login("alice", 1_000);
    assert_eq!(alice.first, 7);
    alice.round_trip("A4");
    drop(alice);
    // 1 replays the whole day.
    let mut alice = exchange.login("alice", 1);
    for _ in 0..8 {
        alice.recv();
    }
    assert_eq!(alice.received[..4], seen[..]);
    alice.round_trip("A5");
    exchange.assert_healthy();
}

// ----- 3: reconnect after a restart -----------------------------------------

on_both_backends!(clean_restart_case =>
    a_reconnect_after_a_clean_restart_replays_the_same_bytes_from_one_mio,
    a_reconnect_after_a_clean_restart_replays_the_same_bytes_from_one_uring);

fn clean_restart_case(backend: IoBackend) {
    let Some(mut exchange) = Exchange::start("clean-restart", gateway_config(backend, trio()))
    else {
        return;
    };
    let mut alice = exchange.login("alice", 0);
    let mut bob = exchange.login("bob", 0);
    alice_rests_three_orders(&mut alice, &mut bob);
    carol_replaces_and_is_rejected(&exchange);
    alice.cancel("A2", 0);
    alice.canceled("A2", 50, CancelReason::UserRequested);
    alice.cancel("A3", 0);
    alice.canceled("A3", 4, CancelReason::UserRequested);
    let alice_seen = alice.received.clone();
    let bob_seen = bob.received.clone();

    exchange.stop();
    alice.expect_end_of_session();
    bob.expect_end_of_session();
    exchange.restart();
    let rebuilt = exchange.server().rebuild_report();
    assert!(rebuilt.commands_replayed >= 10, "{rebuilt:?}");

    let mut alice = exchange.login("alice", 1);
    assert_eq!(alice.first, 1);
    for _ in 0..alice_seen.len() {
        alice.recv();
    }
    assert_eq!(alice.received, alice_seen, "alice's day, byte for byte");
    // The stop closed alice's connection, and cancel-on-disconnect was
    // sequenced before the core stopped: A1's 70 left the book.
    system_cancels(&mut alice, 1);
    let mut bob = exchange.login("bob", 1);
    for _ in 0..bob_seen.len() {
        bob.recv();
    }
    assert_eq!(bob.received, bob_seen, "bob's day, byte for byte");
    bob.round_trip("B9");
    // The day-unique tokens survived the restart: A1 again is ignored
    // silently, so the next message answers A9.
    alice.enter(&harmless("A1"));
    alice.round_trip("A9");
    // carol's day is intact as well.
    let mut carol = exchange.login("carol", 1);
    for _ in 0..4 {
        carol.recv();
    }
    carol.round_trip("C9");
    exchange.assert_healthy();
}

/// carol: an Accepted, a Replaced, a Rejected and a Canceled.
fn carol_replaces_and_is_rejected(exchange: &Exchange) {
    let mut carol = exchange.login("carol", 0);
    carol.enter(&order("C1", Side::Buy, 10, MSFT, 700));
    carol.accepted("C1");
    carol.replace("C1", "C2", 12, 701);
    carol.replaced("C2");
    carol.enter(&order("C3", Side::Buy, 0, MSFT, 700));
    carol.rejected("C3", RejectReason::Other);
    carol.cancel("C2", 0);
    carol.canceled("C2", 12, CancelReason::UserRequested);
    assert_eq!(carol.received.len(), 4);
    // carol's connection closes now; her first message on the next day's
    // connection is the fifth.
}

on_both_backends!(crash_restart_case =>
    a_reconnect_after_a_crash_replays_everything_received_before_it_mio,
    a_reconnect_after_a_crash_replays_everything_received_before_it_uring);

fn crash_restart_case(backend: IoBackend) {
    let Some(mut exchange) = Exchange::start("crash-restart", gateway_config(backend, trio()))
    else {
        return;
    };
    let mut alice = exchange.login("alice", 0);
    let mut bob = exchange.login("bob", 0);
    // Everything alice has is answered and nothing of hers rests at the
    // crash, so her log after the restart is exactly what she saw.
    alice.enter(&order("A1", Side::Sell, 100, AMZN, 1_000));
    alice.accepted("A1");
    bob.enter(&ioc(order("B1", Side::Buy, 100, AMZN, 1_000)));
    bob.accepted("B1");
    bob.executed("B1");
    alice.executed("A1");
    alice.enter(&order("A2", Side::Buy, 10, AAPL, 500));
    alice.accepted("A2");
    alice.replace("A2", "A3", 8, 501);
    alice.replaced("A3");
    alice.cancel("A3", 0);
    alice.canceled("A3", 8, CancelReason::UserRequested);
    alice.enter(&order("A4", Side::Buy, 10, "ZZZZ", 500));
    alice.rejected("A4", RejectReason::InvalidStock);
    let alice_seen = alice.received.clone();
    let bob_seen = bob.received.clone();

    exchange.crash();
    exchange.restart();
    let mut alice = exchange.login("alice", 1);
    for _ in 0..alice_seen.len() {
        alice.recv();
    }
    assert_eq!(
        alice.received, alice_seen,
        "alice's messages, byte for byte"
    );
    let mut bob = exchange.login("bob", 1);
    for _ in 0..bob_seen.len() {
        bob.recv();
    }
    assert_eq!(bob.received, bob_seen, "bob's messages, byte for byte");
    // Tokens used before the crash are still used: A2 is ignored silently.
    alice.enter(&harmless("A2"));
    alice.round_trip("A5");
    bob.round_trip("B5");
    exchange.assert_healthy();
}

// ----- 4: malformed input ---------------------------------------------------

/// A logged-in session on a thread of its own that heartbeats while idle,
/// so it stays logged in through the short idle timeout whatever the main
/// thread does, and trades on request.
struct Bystander {
    requests: mpsc::Sender<Option<(Vec<Inbound>, usize)>>,
    replies: mpsc::Receiver<Result<Vec<Outbound>, String>>,
    thread: Option<thread::JoinHandle<()>>,
    probes: u32,
}

impl Bystander {
    fn start(mut session: Session) -> Bystander {
        let (requests, requests_in) = mpsc::channel::<Option<(Vec<Inbound>, usize)>>();
        let (replies_out, replies) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut trouble: Option<String> = None;
            loop {
                match requests_in.try_recv() {
                    Ok(Some((messages, expected))) => {
                        let reply = match trouble.take() {
                            Some(trouble) => Err(trouble),
                            None => Self::serve(&mut session, &messages, expected),
                        };
                        if replies_out.send(reply).is_err() {
                            return;
                        }
                    }
                    Ok(None) | Err(mpsc::TryRecvError::Disconnected) => return,
                    Err(mpsc::TryRecvError::Empty) => {
                        // Idle: read (sending heartbeats as due); nothing
                        // sequenced may arrive unasked.
                        match session.client.recv(Duration::from_millis(10)) {
                            Ok(ClientMessage::Sequenced { message, .. }) => {
                                trouble.get_or_insert(format!("unexpected {message:?}"));
                            }
                            Ok(_) | Err(ClientError::Timeout) => {}
                            Err(error) => {
                                trouble.get_or_insert(format!("connection lost: {error}"));
                                thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                }
            }
        });
        Bystander {
            requests,
            replies,
            thread: Some(thread),
            probes: 0,
        }
    }

    fn serve(
        session: &mut Session,
        messages: &[Inbound],
        expected: usize,
    ) -> Result<Vec<Outbound>, String> {
        for message in messages {
            let sent = match message {
                Inbound::EnterOrder(order) => session.client.send_enter(order),
                Inbound::ReplaceOrder(replace) => session.client.send_replace(replace),
                Inbound::CancelOrder(cancel) => session.client.send_cancel(cancel),
            };
            sent.map_err(|error| format!("send: {error}"))?;
        }
        let mut received = Vec::with_capacity(expected);
        while received.len() < expected {
            match session.client.recv_sequenced(WAIT) {
                Ok(message) if message.sequence_number == session.next => {
                    session.next += 1;
                    received.push(message.message);
                }
                Ok(message) => {
                    return Err(format!(
                        "message {} where {} was due",
                        message.sequence_number, session.next
                    ))
                }
                Err(error) => return Err(format!("receive: {error}")),
            }
        }
        Ok(received)
    }

    /// Sends `messages` and returns the next `expected` sequenced messages.
    fn trade(&self, messages: Vec<Inbound>, expected: usize) -> Vec<Outbound> {
        self.requests
            .send(Some((messages, expected)))
            .expect("the bystander thread runs");
        match self.replies.recv().expect("the bystander thread answers") {
            Ok(received) => received,
            Err(trouble) => panic!("bystander: {trouble}"),
        }
    }

    /// The bystander still trades: an order of its gets Accepted (and, being
    /// a harmless IOC, Canceled 'I').
    fn probe(&mut self, after: &str) {
        self.probes += 1;
        let token = format!("P{}", self.probes);
        let received = self.trade(vec![Inbound::EnterOrder(harmless(&token))], 2);
        match &received[..] {
            [Outbound::Accepted(accepted), Outbound::Canceled(canceled)]
                if accepted.token == tok(&token)
                    && canceled.token == tok(&token)
                    && canceled.reason == CancelReason::ImmediateOrCancel => {}
            other => panic!("bystander after {after}: expected Accepted {token}, got {other:?}"),
        }
    }

    fn stop(mut self) {
        let _ = self.requests.send(None);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the bystander thread ends cleanly");
        }
    }
}

/// What every malformed-input case works with.
struct Lab<'a> {
    exchange: &'a Exchange,
    bystander: &'a mut Bystander,
    tokens: u32,
}

impl Lab<'_> {
    /// A token no earlier case used.
    fn token(&mut self) -> String {
        self.tokens += 1;
        format!("V{}", self.tokens)
    }

    fn victim(&self) -> Session {
        self.exchange.login("victim", 0)
    }

    /// A plain sell that would rest far from every other order.
    fn victim_order(&mut self) -> EnterOrder {
        order(&self.token(), Side::Sell, 10, AMZN, 1_500_000)
    }

    /// The victim sends `bytes` and must be disconnected.
    fn disconnects(&mut self, bytes: &[u8]) {
        let mut victim = self.victim();
        victim.send_raw(bytes);
        victim.expect_closed();
    }

    /// The victim sends `bytes` carrying an order with token `token`; it
    /// must get Rejected `reason` and stay logged in.
    fn rejects_raw(&mut self, bytes: &[u8], token: &str, reason: RejectReason) {
        let mut victim = self.victim();
        victim.send_raw(bytes);
        victim.rejected(token, reason);
        let next = self.token();
        victim.round_trip(&next);
    }

    fn rejects(&mut self, order: EnterOrder, reason: RejectReason) {
        let token = String::from_utf8_lossy(order.token.trimmed()).into_owned();
        self.rejects_raw(&unsequenced(&enter_payload(&order)), &token, reason);
    }

    /// An order whose byte at `offset` is replaced by `value`.
    fn rejects_patched(&mut self, offset: usize, value: u8, reason: RejectReason) {
        let order = self.victim_order();
        let mut bytes = enter_payload(&order);
        bytes[offset] = value;
        let token = String::from_utf8_lossy(order.token.trimmed()).into_owned();
        self.rejects_raw(&unsequenced(&bytes), &token, reason);
    }

    fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.exchange.addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream
    }

    /// A raw socket logged in as the victim; Login Accepted is read.
    fn raw_victim(&self) -> TcpStream {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut stream = self.raw();
            stream
                .write_all(&login_frame("victim", &password_of("victim"), "", 0))
                .unwrap();
            let mut answer = [0u8; 3];
            stream.read_exact(&mut answer).expect("a login answer");
            if answer[2] == b'A' {
                let mut rest = [0u8; 31 - 1];
                stream.read_exact(&mut rest).expect("Login Accepted");
                return stream;
            }
            assert!(
                answer[2] == b'J' && Instant::now() < deadline,
                "victim login: {answer:?}"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Reads until the server closes the raw connection.
    fn raw_expect_closed(&self, mut stream: TcpStream) {
        let deadline = Instant::now() + WAIT;
        let mut sink = [0u8; 256];
        loop {
            assert!(Instant::now() < deadline, "the server never closed");
            match stream.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(error) => panic!("expected a close, got {error}"),
            }
        }
    }

    fn login_rejected(&self, config: ClientConfig, reason: LoginRejectReason) {
        match Client::connect(&config) {
            Err(ClientError::LoginRejected(got)) => assert_eq!(got, reason),
            other => panic!("expected Login Rejected {reason:?}, got {other:?}"),
        }
    }
}

/// Closes `stream` with a reset rather than a FIN (SO_LINGER of zero).
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let result = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(result, 0, "SO_LINGER: {}", io::Error::last_os_error());
    drop(stream);
}

type Case = fn(&mut Lab<'_>);

fn case(name: &'static str, run: Case) -> (&'static str, Case) {
    (name, run)
}

fn malformed_cases() -> Vec<(&'static str, Case)> {
    vec![
        // ----- framing: the connection is closed -----
        case("truncated frame then close", |lab| {
            let mut victim = lab.victim();
            let order = lab.victim_order();
            victim.send_raw(&unsequenced(&enter_payload(&order))[..20]);
            // The half order must never be taken: the next case's victim
            // round trip finds nothing pending.
        }),
        case("frame of length 0", |lab| lab.disconnects(&[0, 0])),
        case("length beyond the maximum", |lab| {
            lab.disconnects(&[0x04, 0x01, b'U'])
        }),
        case("length 0xffff", |lab| lab.disconnects(&[0xff, 0xff, b'U'])),
        case("unknown packet type", |lab| lab.disconnects(&[0, 1, b'Q'])),
        case("fixed-size packet of the wrong length", |lab| {
            lab.disconnects(&[0, 2, b'R', b'x'])
        }),
        case("unknown OUCH message type", |lab| {
            lab.disconnects(&unsequenced(b"Q123456789"))
        }),
        case("OUCH message of the wrong length", |lab| {
            let order = lab.victim_order();
            lab.disconnects(&unsequenced(&enter_payload(&order)[..30]))
        }),
        case("empty Unsequenced Data", |lab| {
            lab.disconnects(&[0, 1, b'U'])
        }),
        case("token that is not printable", |lab| {
            let order = lab.victim_order();
            let mut bytes = enter_payload(&order);
            bytes[3] = 0x01;
            lab.disconnects(&unsequenced(&bytes))
        }),
        case("Sequenced Data sent by a client", |lab| {
            let order = lab.victim_order();
            lab.disconnects(&frame(&Packet::SequencedData(&enter_payload(&order))))
        }),
        case("Server Heartbeat sent by a client", |lab| {
            lab.disconnects(&[0, 1, b'H'])
        }),
        case("End of Session sent by a client", |lab| {
            lab.disconnects(&[0, 1, b'Z'])
        }),
        case("Login Accepted sent by a client", |lab| {
            lab.disconnects(&frame(&Packet::LoginAccepted {
                session: SessionName::right("LOCKSTEP").unwrap(),
                sequence_number: 1,
            }))
        }),
        case("Login Rejected sent by a client", |lab| {
            lab.disconnects(&[0, 2, b'J', b'A'])
        }),
        // ----- bad values: OUCH Rejected, the session stays -----
        case("bad buy/sell indicator", |lab| {
            lab.rejects_patched(15, b'X', RejectReason::Other)
        }),
        case("bad display", |lab| {
            lab.rejects_patched(40, b'?', RejectReason::InvalidDisplayType)
        }),
        case("display Lockstep does not offer", |lab| {
            let mut order = lab.victim_order();
            order.display = Display::MidpointPeg;
            lab.rejects(order, RejectReason::InvalidDisplayType)
        }),
        case("bad capacity", |lab| {
            lab.rejects_patched(41, b'?', RejectReason::Other)
        }),
        case("bad intermarket sweep eligibility", |lab| {
            lab.rejects_patched(42, b'?', RejectReason::Other)
        }),
        case("bad cross type", |lab| {
            lab.rejects_patched(47, b'?', RejectReason::NotAllowedInCrossType)
        }),
        case("cross type Lockstep does not offer", |lab| {
            let mut order = lab.victim_order();
            order.cross_type = CrossType::Opening;
            lab.rejects(order, RejectReason::NotAllowedInCrossType)
        }),
        case("bad customer type", |lab| {
            lab.rejects_patched(48, b'?', RejectReason::Other)
        }),
        case("zero quantity", |lab| {
            let mut order = lab.victim_order();
            order.shares = 0;
            lab.rejects(order, RejectReason::Other)
        }),
        case("quantity above the maximum", |lab| {
            let mut order = lab.victim_order();
            order.shares = QTY_MAX + 1;
            lab.rejects(order, RejectReason::SharesExceedSafetyThreshold)
        }),
        case("price off the tick", |lab| {
            let mut order = lab.victim_order();
            order.stock = ouch::Stock::left(IBM).unwrap();
            order.price = 1_000_050;
            lab.rejects(order, RejectReason::InvalidPrice)
        }),
        case("price outside the band", |lab| {
            let mut order = lab.victim_order();
            order.price = MARKET_PRICE + 1;
            lab.rejects(order, RejectReason::InvalidPrice)
        }),
        case("price zero", |lab| {
            let mut order = lab.victim_order();
            order.price = 0;
            lab.rejects(order, RejectReason::InvalidPrice)
        }),
        case("unknown stock", |lab| {
            let mut order = lab.victim_order();
            order.stock = ouch::Stock::left("ZZZZ").unwrap();
            lab.rejects(order, RejectReason::InvalidStock)
        }),
        case("time in force other than 0, 99998, 99999", |lab| {
            let mut order = lab.victim_order();
            order.time_in_force = 30;
            lab.rejects(order, RejectReason::Other)
        }),
        case("minimum quantity on an order that may rest", |lab| {
            let mut order = lab.victim_order();
            order.minimum_quantity = 5;
            lab.rejects(order, RejectReason::InvalidMinimumQuantity)
        }),
        case("minimum quantity below the shares of an IOC", |lab| {
            let mut order = ioc(lab.victim_order());
            order.minimum_quantity = 5;
            lab.rejects(order, RejectReason::InvalidMinimumQuantity)
        }),
        case("market price with a time in force other than 0", |lab| {
            let mut order = lab.victim_order();
            order.price = MARKET_PRICE;
            lab.rejects(order, RejectReason::InvalidPrice)
        }),
        case("firm of another session", |lab| {
            let mut order = lab.victim_order();
            order.firm = firm("BYST");
            lab.rejects(order, RejectReason::FirmNotAuthorizedForClearingType)
        }),
        // ----- orders that are not the victim's to touch -----
        case("cancel of another session's order", |lab| {
            let token = lab.token();
            let resting = order(&token, Side::Buy, 7, AMZN, 2);
            let accepted = lab.bystander.trade(vec![Inbound::EnterOrder(resting)], 1);
            assert!(
                matches!(accepted[..], [Outbound::Accepted(_)]),
                "{accepted:?}"
            );
            let mut victim = lab.victim();
            victim.cancel(&token, 0);
            victim.rejected(&token, RejectReason::Other);
            let other = lab.token();
            victim.replace(&token, &other, 1, 3);
            victim.rejected(&token, RejectReason::Other);
            // The bystander's order is untouched: all 7 are still there.
            let canceled = lab.bystander.trade(
                vec![Inbound::CancelOrder(ouch::CancelOrder {
                    token: tok(&token),
                    shares: 0,
                })],
                1,
            );
            match &canceled[..] {
                [Outbound::Canceled(canceled)]
                    if canceled.decrement_shares == 7
                        && canceled.reason == CancelReason::UserRequested => {}
                other => panic!("expected the bystander's Canceled 7, got {other:?}"),
            }
        }),
        case("replace of an unknown order", |lab| {
            let (unknown, replacement) = (lab.token(), lab.token());
            let mut victim = lab.victim();
            victim.replace(&unknown, &replacement, 10, 1_500_000);
            victim.rejected(&unknown, RejectReason::Other);
        }),
        case("duplicate replacement token", |lab| {
            let resting = lab.victim_order();
            let used = lab.token();
            let mut victim = lab.victim();
            let resting_token = String::from_utf8_lossy(resting.token.trimmed()).into_owned();
            victim.enter(&resting);
            victim.accepted(&resting_token);
            victim.round_trip(&used);
            victim.replace(&resting_token, &used, 9, 1_500_000);
            victim.rejected(&resting_token, RejectReason::Other);
            // The order is as it was: 10 shares.
            victim.cancel(&resting_token, 0);
            victim.canceled(&resting_token, 10, CancelReason::UserRequested);
        }),
        case("replace with a bad display", |lab| {
            let resting = lab.victim_order();
            let replacement = lab.token();
            let token = String::from_utf8_lossy(resting.token.trimmed()).into_owned();
            let mut victim = lab.victim();
            victim.enter(&resting);
            victim.accepted(&token);
            let mut bytes = payload(&Inbound::ReplaceOrder(ouch::ReplaceOrder {
                existing_token: tok(&token),
                replacement_token: tok(&replacement),
                shares: 5,
                price: 1_500_000,
                time_in_force: TIF_MARKET_HOURS,
                display: Display::AnonymousPriceToComply,
                intermarket_sweep: IntermarketSweep::NotEligible,
                minimum_quantity: 0,
            }));
            bytes[41] = b'?';
            victim.send_raw(&unsequenced(&bytes));
            victim.rejected(&token, RejectReason::InvalidDisplayType);
            victim.cancel(&token, 0);
            victim.canceled(&token, 10, CancelReason::UserRequested);
        }),
        case("cancel that would not reduce the order", |lab| {
            let resting = lab.victim_order();
            let token = String::from_utf8_lossy(resting.token.trimmed()).into_owned();
            let mut victim = lab.victim();
            victim.enter(&resting);
            victim.accepted(&token);
            victim.cancel(&token, 10);
            victim.rejected(&token, RejectReason::Other);
            victim.cancel(&token, 0);
            victim.canceled(&token, 10, CancelReason::UserRequested);
        }),
        // ----- session layer -----
        case("a login that never comes", |lab| {
            // Nothing is sent: the login timeout (300 ms) closes it.
            let stream = lab.raw();
            lab.raw_expect_closed(stream);
        }),
        case("slowloris half frame", |lab| {
            // Half a frame and then silence, not even heartbeats: a half
            // frame is not a message, so the idle timeout (500 ms) fires.
            let mut config = lab.exchange.client_config("victim", 0);
            config.heartbeat_interval = Duration::ZERO;
            let mut victim = lab.exchange.login_with(config);
            victim.send_raw(&[0, 49, b'U', b'O']);
            victim.expect_closed();
        }),
        case("reset mid-frame", |lab| {
            let mut stream = lab.raw_victim();
            let order = lab.victim_order();
            stream
                .write_all(&unsequenced(&enter_payload(&order))[..25])
                .unwrap();
            reset(stream);
        }),
        case("a second login on the same connection", |lab| {
            lab.disconnects(&login_frame("victim", &password_of("victim"), "", 0))
        }),
        case("a bad password", |lab| {
            let mut config = lab.exchange.client_config("victim", 0);
            config.password = "wrong".to_string();
            lab.login_rejected(config, LoginRejectReason::NotAuthorized);
        }),
        case("an unknown username", |lab| {
            let config = lab.exchange.client_config("nobody", 0);
            lab.login_rejected(config, LoginRejectReason::NotAuthorized);
        }),
        case("a login to another session name", |lab| {
            let mut config = lab.exchange.client_config("victim", 0);
            config.requested_session = "OTHER".to_string();
            lab.login_rejected(config, LoginRejectReason::SessionNotAvailable);
        }),
        case("a login to a session in use", |lab| {
            let config = lab.exchange.client_config("byst", 0);
            lab.login_rejected(config, LoginRejectReason::SessionNotAvailable);
        }),
        case("a non-numeric requested sequence number", |lab| {
            let mut bytes = login_frame("victim", &password_of("victim"), "", 0);
            bytes[29..].copy_from_slice(b"abcdefghijklmnopqrst");
            let mut stream = lab.raw();
            stream.write_all(&bytes).unwrap();
            lab.raw_expect_closed(stream);
        }),
        case("garbage bytes before login", |lab| {
            let mut stream = lab.raw();
            stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            lab.raw_expect_closed(stream);
        }),
        case("an order before login", |lab| {
            let order = lab.victim_order();
            let mut stream = lab.raw();
            stream
                .write_all(&unsequenced(&enter_payload(&order)))
                .unwrap();
            lab.raw_expect_closed(stream);
        }),
        case("a heartbeat before login", |lab| {
            let mut stream = lab.raw();
            stream.write_all(&[0, 1, b'R']).unwrap();
            lab.raw_expect_closed(stream);
        }),
        // ----- ignored, or refused by a limit -----
        case("a Debug packet is ignored", |lab| {
            let next = lab.token();
            let mut victim = lab.victim();
            victim.send_raw(&frame(&Packet::Debug(b"hello from the victim")));
            victim.round_trip(&next);
        }),
        case("a duplicate order token is ignored silently", |lab| {
            let (token, next) = (lab.token(), lab.token());
            let mut victim = lab.victim();
            victim.round_trip(&token);
            victim.enter(&harmless(&token));
            victim.round_trip(&next);
        }),
        case("the message rate limit", |lab| {
            // "rate" holds a burst of 2 and refills at one a second.
            let tokens: Vec<String> = (0..4).map(|_| lab.token()).collect();
            let mut session = lab.exchange.login("rate", 0);
            let burst: Vec<u8> = tokens
                .iter()
                .flat_map(|token| unsequenced(&enter_payload(&harmless(token))))
                .collect();
            session.send_raw(&burst);
            for token in &tokens[..2] {
                session.accepted(token);
                session.canceled(token, 1, CancelReason::ImmediateOrCancel);
            }
            for token in &tokens[2..] {
                session.rejected(token, RejectReason::Other);
            }
        }),
        case("the open orders limit", |lab| {
            // "limit" may hold 2 open orders.
            let tokens: Vec<String> = (0..4).map(|_| lab.token()).collect();
            let mut session = lab.exchange.login("limit", 0);
            let orders: Vec<u8> = tokens[..3]
                .iter()
                .flat_map(|token| unsequenced(&enter_payload(&order(token, Side::Buy, 1, AMZN, 2))))
                .collect();
            session.send_raw(&orders);
            session.accepted(&tokens[0]);
            session.accepted(&tokens[1]);
            session.rejected(&tokens[2], RejectReason::Other);
            // A cancel frees a place.
            session.cancel(&tokens[0], 0);
            session.canceled(&tokens[0], 1, CancelReason::UserRequested);
            session.enter(&order(&tokens[3], Side::Buy, 1, AMZN, 2));
            session.accepted(&tokens[3]);
            for token in [&tokens[1], &tokens[3]] {
                session.cancel(token, 0);
                session.canceled(token, 1, CancelReason::UserRequested);
            }
        }),
    ]
}

on_both_backends!(malformed_input_case =>
    malformed_input_is_rejected_or_disconnected_while_a_bystander_keeps_trading_mio,
    malformed_input_is_rejected_or_disconnected_while_a_bystander_keeps_trading_uring);

fn malformed_input_case(backend: IoBackend) {
    let mut rate = session("rate", "RATE", 6);
    rate.messages_per_second_max = 1;
    rate.messages_burst_max = 2;
    let mut limit = session("limit", "LIMT", 7);
    limit.open_orders_max = 2;
    let sessions = vec![
        session("byst", "BYST", 4),
        session("victim", "VICT", 5),
        rate,
        limit,
    ];
    let mut config = gateway_config(backend, sessions);
    config.heartbeat_interval_ms = 100;
    config.idle_timeout_ms = 500;
    config.login_timeout_ms = 300;
    let Some(mut exchange) = Exchange::start("malformed", config) else {
        return;
    };
    let mut bystander = Bystander::start(exchange.login("byst", 0));
    bystander.probe("login");
    let cases = malformed_cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut lab = Lab {
        exchange: &exchange,
        bystander: &mut bystander,
        tokens: 0,
    };
    for (name, case) in &cases {
        eprintln!("malformed input: {name}");
        case(&mut lab);
        // The victim's session is usable again and nothing of the case is
        // left in its stream; the bystander never noticed.
        let next = lab.token();
        lab.victim().round_trip(&next);
        lab.bystander.probe(name);
    }
    bystander.stop();
    let report = exchange.stop();
    let stats = report.gateway.stats;
    assert!(
        stats.disconnects_malformed >= 19,
        "malformed and protocol disconnects: {stats:?}"
    );
    assert!(stats.disconnects_timeout >= 2, "{stats:?}");
    assert!(stats.logins_rejected >= 4, "{stats:?}");
    assert_eq!(stats.duplicate_tokens_ignored, 1, "{stats:?}");
}

// ----- 5: a client that never reads -------------------------------------------

/// Logs in on a raw socket with a small receive buffer, then sends harmless
/// IOC orders (an Accepted and a Canceled each) without ever reading, until
/// the server cuts it off. Returns the orders sent and the write error.
fn flood_until_disconnected(addr: SocketAddr) -> (u64, io::Error) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let receive_buffer: libc::c_int = 4096;
    // SAFETY: a valid socket and a correctly sized option value.
    let result = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&receive_buffer as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(result, 0, "SO_RCVBUF: {}", io::Error::last_os_error());
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(&login_frame("flood", &password_of("flood"), "", 0))
        .unwrap();
    let mut accepted = [0u8; 33];
    stream.read_exact(&mut accepted).expect("Login Accepted");
    assert_eq!(accepted[2], b'A', "{accepted:?}");
    let mut sent = 0u64;
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        for _ in 0..64 {
            chunk.extend(unsequenced(&enter_payload(&harmless(&format!("F{sent}")))));
            sent += 1;
        }
        if let Err(error) = stream.write_all(&chunk) {
            return (sent, error);
        }
        assert!(
            sent < 1_000_000,
            "a client that never reads was never cut off"
        );
    }
}

on_both_backends!(slow_consumer_case =>
    a_client_that_never_reads_is_disconnected_while_another_receives_every_message_mio,
    a_client_that_never_reads_is_disconnected_while_another_receives_every_message_uring);

fn slow_consumer_case(backend: IoBackend) {
    let mut sessions = trio();
    let mut flood = session("flood", "FLOD", 4);
    flood.cancel_on_disconnect = false;
    sessions.push(flood);
    let mut config = gateway_config(backend, sessions);
    config.output_buffer_bytes_max = 8 * 1024;
    let Some(mut exchange) = Exchange::start("slow-consumer", config) else {
        return;
    };
    let mut bob = exchange.login("bob", 0);
    let mut carol = exchange.login("carol", 0);
    // bob rests one-share sells, in chunks small enough for the 8 KiB
    // output buffer whatever the socket buffers hold.
    const RESTING: usize = 2_000;
    const CHUNK: usize = 50;
    let sells: Vec<String> = (0..RESTING).map(|index| format!("BS{index}")).collect();
    for chunk in sells.chunks(CHUNK) {
        let orders: Vec<u8> = chunk
            .iter()
            .flat_map(|token| {
                unsequenced(&enter_payload(&order(token, Side::Sell, 1, AAPL, 100_000)))
            })
            .collect();
        bob.send_raw(&orders);
        for token in chunk {
            bob.accepted(token);
        }
    }

    // Now, at the same time: the silent client floods, carol takes bob's
    // sells in a stream of IOC orders, and bob reads his executions.
    let addr = exchange.addr;
    let flood = thread::spawn(move || flood_until_disconnected(addr));
    let maker_tokens = sells.clone();
    let maker = thread::spawn(move || {
        let matches: Vec<u64> = maker_tokens
            .iter()
            .map(|token| bob.executed(token).match_number)
            .collect();
        (bob, matches)
    });
    let mut taker_matches = Vec::with_capacity(RESTING);
    for (index, chunk) in sells.chunks(CHUNK).enumerate() {
        let buys: Vec<String> = (0..chunk.len())
            .map(|offset| format!("CB{}", index * CHUNK + offset))
            .collect();
        let orders: Vec<u8> = buys
            .iter()
            .flat_map(|token| {
                unsequenced(&enter_payload(&ioc(order(
                    token,
                    Side::Buy,
                    1,
                    AAPL,
                    100_000,
                ))))
            })
            .collect();
        carol.send_raw(&orders);
        for token in &buys {
            carol.accepted(token);
            taker_matches.push(carol.executed(token).match_number);
        }
    }
    let (mut bob, maker_matches) = maker.join().expect("bob's reader ends");
    assert_eq!(
        maker_matches, taker_matches,
        "one match number per trade, both sides"
    );

    // Trading goes on while, and after, the silent client is cut off.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rounds = 0usize;
    let mut rounds_after = 0u32;
    while rounds_after < 10 {
        assert!(
            Instant::now() < deadline,
            "the silent client was never cut off"
        );
        let (sell, buy) = (format!("BR{rounds}"), format!("CR{rounds}"));
        bob.enter(&order(&sell, Side::Sell, 1, AAPL, 100_000));
        bob.accepted(&sell);
        carol.enter(&ioc(order(&buy, Side::Buy, 1, AAPL, 100_000)));
        carol.accepted(&buy);
        let taker = carol.executed(&buy);
        let maker = bob.executed(&sell);
        assert_eq!(taker.match_number, maker.match_number);
        rounds += 1;
        if flood.is_finished() {
            rounds_after += 1;
        }
    }
    let (sent, error) = flood.join().expect("the flood thread ends");
    assert!(
        matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        ),
        "the flood ended with {error} after {sent} orders, not with a disconnect"
    );
    eprintln!(
        "{}: the silent client was cut off after sending {sent} orders",
        exchange.name
    );
    // Every message of the trading sessions arrived, numbered without a gap:
    // bob's Accepted and Executed per sell, carol's Accepted and Executed
    // per buy.
    let expected = (2 * (RESTING + rounds)) as u64;
    assert_eq!(bob.received.len() as u64, expected);
    assert_eq!(carol.received.len() as u64, expected);
    assert_eq!((bob.next, carol.next), (expected + 1, expected + 1));
    let report = exchange.stop();
    assert_eq!(
        report.gateway.stats.disconnects_slow_consumer, 1,
        "{:?}",
        report.gateway.stats
    );
}

// ----- 6: cancel-on-disconnect goes through the sequencer -----------------------

on_both_backends!(cancel_on_disconnect_case =>
    cancel_on_disconnect_takes_resting_orders_off_the_book_through_the_sequencer_mio,
    cancel_on_disconnect_takes_resting_orders_off_the_book_through_the_sequencer_uring);

fn cancel_on_disconnect_case(backend: IoBackend) {
    let Some(mut exchange) =
        Exchange::start("cancel-on-disconnect", gateway_config(backend, trio()))
    else {
        return;
    };
    let mut alice = exchange.login("alice", 0);
    let mut bob = exchange.login("bob", 0);
    alice.enter(&order("S1", Side::Sell, 100, AMZN, 1_000));
    alice.accepted("S1");
    alice.enter(&order("S2", Side::Sell, 20, AMZN, 1_001));
    alice.accepted("S2");
    drop(alice);
    // Once alice can log in again the gateway has seen her connection close
    // and has submitted the cancel ahead of anything it submits later.
    let mut alice = exchange.login("alice", 3);
    assert_eq!(
        system_cancels(&mut alice, 2),
        vec![("S1".to_string(), 100), ("S2".to_string(), 20)]
    );
    // bob's crossing order finds nothing to trade with.
    bob.enter(&ioc(order("B1", Side::Buy, 200, AMZN, 1_001)));
    bob.accepted("B1");
    bob.canceled("B1", 200, CancelReason::ImmediateOrCancel);
    alice.round_trip("A9");
    drop(alice);
    drop(bob);
    exchange.stop();

    // The journal holds the cancel as a command of its own, sequenced after
    // alice's orders and before bob's.
    let commands: Vec<Command> = JournalReader::open(exchange.journal_path())
        .expect("the journal opens")
        .map(|record| record.expect("a valid record").command)
        .collect();
    let position = |wanted: &dyn Fn(&Command) -> bool| {
        commands
            .iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("not in the journal: {commands:?}"))
    };
    let engine_token = |text: &str| lockstep_engine::Token::from_bytes(tok(text).0);
    let s2 = position(
        &|command| matches!(command, Command::New(order) if order.token == engine_token("S2")),
    );
    let cancel = position(&|command| {
        matches!(
            command,
            Command::CancelAllForSession {
                session: SessionId(0)
            }
        )
    });
    let b1 = position(
        &|command| matches!(command, Command::New(order) if order.token == engine_token("B1")),
    );
    assert!(s2 < cancel && cancel < b1, "{commands:?}");
}

on_both_backends!(no_cancel_on_disconnect_case =>
    without_cancel_on_disconnect_resting_orders_outlive_the_connection_mio,
    without_cancel_on_disconnect_resting_orders_outlive_the_connection_uring);

fn no_cancel_on_disconnect_case(backend: IoBackend) {
    let mut sessions = trio();
    sessions[0].cancel_on_disconnect = false;
    let Some(exchange) =
        Exchange::start("no-cancel-on-disconnect", gateway_config(backend, sessions))
    else {
        return;
    };
    let mut alice = exchange.login("alice", 0);
    let mut bob = exchange.login("bob", 0);
    alice.enter(&order("S1", Side::Sell, 100, AMZN, 1_000));
    alice.accepted("S1");
    drop(alice);
    let mut alice = exchange.login("alice", 2);
    bob.enter(&ioc(order("B1", Side::Buy, 30, AMZN, 1_000)));
    bob.accepted("B1");
    bob.executed("B1");
    let maker = alice.executed("S1");
    assert_eq!(maker.executed_shares, 30);
    alice.cancel("S1", 0);
    alice.canceled("S1", 70, CancelReason::UserRequested);
    exchange.assert_healthy();
}
