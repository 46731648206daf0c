//! Wireshark as the arbiter of the wire layout. With `tshark` on the PATH
//! and permission to capture on `lo`, this test runs a whole Lockstep
//! in-process, captures its port with `tshark`, drives two sessions with the
//! client library through every packet and message Lockstep sends and
//! accepts, and then has `tshark` decode the capture with its `soupbintcp`
//! dissector (and the `ouch` heuristic sub-dissector under it). It asserts
//! that every SoupBinTCP packet type and every OUCH message type exchanged
//! is decoded, that the decoded fields carry the values the test put on the
//! wire (so the offsets and widths agree with Wireshark's), and that nothing
//! is malformed or flagged as an error.
//!
//! Without `tshark`, or where capturing is not permitted, the test prints
//! why and passes without checking anything; `.ci/run` installs `tshark` so
//! that CI always runs it.

use lockstep_engine::{AccountId, EngineConfig, InstrumentId, InstrumentSpec};
use lockstep_sequencer::system_config::SystemConfig;
use lockstep_transport::client::{Client, ClientConfig, ClientError, ClientMessage};
use lockstep_transport::gateway_config::{GatewayConfig, GatewayInstrument, SessionConfig};
use lockstep_transport::ouch::{
    self, CancelOrder, Capacity, CrossType, CustomerType, Display, EnterOrder, IntermarketSweep,
    Outbound, ReplaceOrder, Side, Stock, Token, TIF_IOC, TIF_MARKET_HOURS,
};
use lockstep_transport::server::Server;
use lockstep_transport::soupbintcp::LoginRejectReason;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// A directory removed when the test ends, however it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let path =
            std::env::temp_dir().join(format!("lockstep-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("the temporary directory can be created");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `tshark` runs here; `None` when it does not, with the reason
/// printed.
fn tshark_version() -> Option<String> {
    match Command::new("tshark").arg("--version").output() {
        Ok(output) if output.status.success() => {
            let text = String::from_utf8_lossy(&output.stdout);
            Some(text.lines().next().unwrap_or_default().to_string())
        }
        Ok(output) => {
            println!(
                "skipped: `tshark --version` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
            None
        }
        Err(error) => {
            println!("skipped: tshark is not on the PATH ({error}); apt-get install tshark");
            None
        }
    }
}

/// A running `tshark -i lo` writing a pcapng file. Dropping it kills
/// tshark, so a failing test leaves no capture running.
struct Capture {
    child: Child,
    /// tshark's output, drained for as long as it runs: a closed pipe
    /// would make it stop capturing.
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

/// Why a capture could not start.
enum CaptureStart {
    Started(Capture),
    /// Capturing on `lo` is not permitted here: the test is skipped.
    NotPermitted(String),
}

/// Sends each line `source` yields to a channel, from a thread that reads
/// until the end, so tshark never blocks on a full pipe.
fn lines_of(source: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

impl Capture {
    /// Starts capturing `port` (TCP, and UDP for the probe) into `path`, and
    /// returns once a packet sent now is seen to be captured: tshark says
    /// "Capturing on" before its capture filter is in place, so that line
    /// alone does not mean the next packet will be in the file.
    fn start(port: u16, path: &Path) -> CaptureStart {
        let mut child = Command::new("tshark")
            // -P -l: also print a summary of each packet as it is captured,
            // which is how the probe below sees that capturing has begun.
            .args(["-i", "lo", "-f", &format!("port {port}"), "-P", "-l", "-w"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tshark starts");
        let stdout = lines_of(child.stdout.take().expect("tshark's stdout is piped"));
        let stderr = lines_of(child.stderr.take().expect("tshark's stderr is piped"));
        let mut capture = Capture {
            child,
            stdout,
            stderr,
        };
        let probe = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket for the probe");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut said = Vec::new();
        loop {
            // A datagram to the port: nothing listens for UDP there, but the
            // capture filter matches it.
            let _ = probe.send_to(b"lockstep wireshark probe", ("127.0.0.1", port));
            match capture.stdout.recv_timeout(Duration::from_millis(100)) {
                Ok(_) => return CaptureStart::Started(capture),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // tshark closed its stdout: it is exiting. Say why.
                    let _ = capture.child.wait();
                    said.extend(capture.stderr.iter());
                    let said = said.join("\n");
                    let lowered = said.to_lowercase();
                    if lowered.contains("permission")
                        || lowered.contains("not permitted")
                        || lowered.contains("couldn't run")
                    {
                        return CaptureStart::NotPermitted(said);
                    }
                    panic!("tshark stopped before capturing: {said}");
                }
            }
            said.extend(capture.stderr.try_iter());
            assert!(
                Instant::now() < deadline,
                "tshark captured nothing within 30 s: {}",
                said.join("\n")
            );
        }
    }

    /// Stops the capture cleanly (SIGINT, as Ctrl-C would), so the file is
    /// complete.
    fn stop(mut self) {
        // Packets the kernel still holds for the capture socket get there.
        std::thread::sleep(Duration::from_millis(500));
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) on the pid of our own child, which has not been
        // waited for yet, so the pid cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let said: Vec<String> = self.stderr.try_iter().collect();
                assert!(
                    status.success(),
                    "tshark ended with {status}: {}",
                    said.join("\n")
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tshark did not stop within 20 s of SIGINT");
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn system_config(data_dir: &Path) -> SystemConfig {
    let instrument = InstrumentSpec {
        tick_size: 100,
        band_min: 100,
        band_max: 1_999_999_900,
        qty_max: 1_000_000,
    };
    let engine = EngineConfig {
        instruments: vec![instrument; 2],
        instruments_max: 2,
        orders_max: 1024,
        levels_max: 1024,
        sessions_max: 4,
        accounts_max: 8,
    };
    let mut config = SystemConfig::new(engine, data_dir.to_path_buf());
    // One replica is plenty here and keeps the shared machine quiet.
    config.replicas = 1;
    config
}

fn gateway_config(listen: SocketAddr) -> GatewayConfig {
    let session = |username: &str, password: &str, account: u32| SessionConfig {
        username: username.into(),
        password: password.into(),
        firm: "FRM1".into(),
        account: AccountId(account),
        cancel_on_disconnect: true,
        open_orders_max: 100,
        messages_per_second_max: 1_000,
        messages_burst_max: 100,
    };
    let mut config = GatewayConfig::new(
        listen,
        vec![
            GatewayInstrument {
                symbol: "AMZN".into(),
                instrument: InstrumentId(0),
            },
            GatewayInstrument {
                symbol: "AAPL".into(),
                instrument: InstrumentId(1),
            },
        ],
        vec![
            session("alice", "alicepass", 1),
            session("bob", "bobpass", 2),
        ],
    );
    // Server Heartbeats come quickly, so the test sees one without waiting.
    config.heartbeat_interval_ms = 200;
    config
}

fn token(text: &str) -> Token {
    Token::left(text).expect("the token fits")
}

fn enter(text: &str, side: Side, shares: u32, stock: &str, price: u32, tif: u32) -> EnterOrder {
    EnterOrder {
        token: token(text),
        side,
        shares,
        stock: Stock::left(stock).expect("the stock fits"),
        price,
        time_in_force: tif,
        firm: ouch::Firm::BLANK,
        display: Display::AnonymousPriceToComply,
        capacity: Capacity::Agency,
        intermarket_sweep: IntermarketSweep::NotEligible,
        minimum_quantity: 0,
        cross_type: CrossType::NoCross,
        customer_type: CustomerType::PortDefault,
    }
}

fn next(client: &mut Client) -> Outbound {
    client
        .recv_sequenced(WAIT)
        .expect("a Sequenced Data message arrives")
        .message
}

/// Drives two sessions through every packet and message Lockstep sends and
/// accepts. Returns the clients still logged in (bob), for End of Session.
fn exchange_every_message(addr: SocketAddr) -> Client {
    let config = |username: &str, password: &str| ClientConfig::new(addr, username, password);
    let mut alice = Client::connect(&config("alice", "alicepass")).expect("alice logs in");
    // Login Rejected 'A' (bad password) and 'S' (the session is taken).
    assert!(matches!(
        Client::connect(&config("alice", "wrong")),
        Err(ClientError::LoginRejected(LoginRejectReason::NotAuthorized))
    ));
    assert!(matches!(
        Client::connect(&config("alice", "alicepass")),
        Err(ClientError::LoginRejected(
            LoginRejectReason::SessionNotAvailable
        ))
    ));
    let mut bob = Client::connect(&config("bob", "bobpass")).expect("bob logs in");

    // Debug text and a Client Heartbeat, both ignored by the server.
    let debug_text = b"hello from the wireshark test";
    let mut debug = vec![0, debug_text.len() as u8 + 1, b'+'];
    debug.extend_from_slice(debug_text);
    alice.send_raw(&debug).expect("debug is sent");
    alice.send_heartbeat().expect("a heartbeat is sent");

    // Enter Order -> Accepted.
    alice
        .send_enter(&enter(
            "B1",
            Side::Buy,
            100,
            "AMZN",
            1_500_000,
            TIF_MARKET_HOURS,
        ))
        .expect("sent");
    assert!(matches!(next(&mut alice), Outbound::Accepted(_)));
    // Replace Order -> Replaced.
    alice
        .send_replace(&ReplaceOrder {
            existing_token: token("B1"),
            replacement_token: token("B1R"),
            shares: 80,
            price: 1_500_100,
            time_in_force: TIF_MARKET_HOURS,
            display: Display::AnonymousPriceToComply,
            intermarket_sweep: IntermarketSweep::NotEligible,
            minimum_quantity: 0,
        })
        .expect("sent");
    assert!(matches!(next(&mut alice), Outbound::Replaced(_)));
    // A crossing IOC sell -> Accepted and Executed to bob, Executed to alice.
    bob.send_enter(&enter("S1", Side::Sell, 30, "AMZN", 1_500_100, TIF_IOC))
        .expect("sent");
    assert!(matches!(next(&mut bob), Outbound::Accepted(_)));
    assert!(matches!(next(&mut bob), Outbound::Executed(_)));
    assert!(matches!(next(&mut alice), Outbound::Executed(_)));
    // Cancel Order -> Canceled.
    alice
        .send_cancel(&CancelOrder {
            token: token("B1R"),
            shares: 0,
        })
        .expect("sent");
    assert!(matches!(next(&mut alice), Outbound::Canceled(_)));
    // An unknown stock -> Rejected.
    bob.send_enter(&enter("S2", Side::Sell, 10, "ZZZZ", 1_500_100, TIF_IOC))
        .expect("sent");
    assert!(matches!(next(&mut bob), Outbound::Rejected(_)));

    // A Server Heartbeat, once the server has had nothing to send for a
    // heartbeat interval.
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no Server Heartbeat");
        match alice.recv(Duration::from_millis(500)) {
            Ok(ClientMessage::ServerHeartbeat) => break,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(ClientError::Timeout) => {}
            Err(error) => panic!("{error}"),
        }
    }
    // Logout Request.
    alice.logout().expect("alice logs out");
    bob
}

/// What `tshark` made of the capture.
struct Decoded {
    /// `tshark -V`: every field of every frame.
    verbose: String,
    /// One row per frame: field name -> the values it took in the frame.
    rows: Vec<BTreeMap<String, Vec<String>>>,
}

/// The fields read per frame with `-T fields`. (The sequence numbers of
/// the login packets are not among them: the dissector stores a
/// placeholder as their field value and only formats the number into the
/// text of `-V`, where [`Decoded::shown`] reads it.)
const FIELDS: [&str; 22] = [
    "tcp.srcport",
    "soupbintcp.packet_type",
    "soupbintcp.username",
    "soupbintcp.password",
    "soupbintcp.session",
    "soupbintcp.reject_code",
    "soupbintcp.text",
    "ouch.packet_type",
    "ouch.order_token",
    "ouch.existing_order_token",
    "ouch.replacement_order_token",
    "ouch.previous_order_token",
    "ouch.stock",
    "ouch.shares",
    "ouch.price",
    "ouch.tif",
    "ouch.firm",
    "ouch.executed_shares",
    "ouch.execution_price",
    "ouch.liquidity_flag",
    "ouch.decrement_shares",
    "ouch.reject_reason",
];

fn run_tshark(args: &[&str]) -> String {
    let output = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark runs");
    assert!(
        output.status.success(),
        "tshark {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Decoded {
    fn read(path: &Path, port: u16) -> Decoded {
        let path = path.to_str().expect("the capture path is UTF-8");
        let decode_as = format!("tcp.port=={port},soupbintcp");
        let verbose = run_tshark(&["-r", path, "-d", &decode_as, "-V"]);
        let mut args = vec![
            "-r",
            path,
            "-d",
            &decode_as,
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=|",
        ];
        for field in FIELDS {
            args.extend(["-e", field]);
        }
        let table = run_tshark(&args);
        let rows = table
            .lines()
            .map(|line| {
                FIELDS
                    .iter()
                    .zip(line.split('\t'))
                    .map(|(field, values)| {
                        // Characters come quoted ('L'), alpha fields with
                        // their padding; blank ones are left out.
                        let values = values
                            .split('|')
                            .map(|value| {
                                let value = value.trim();
                                let value = value
                                    .strip_prefix('\'')
                                    .and_then(|value| value.strip_suffix('\''))
                                    .unwrap_or(value);
                                value.trim().to_string()
                            })
                            .filter(|value| !value.is_empty())
                            .collect();
                        (field.to_string(), values)
                    })
                    .collect()
            })
            .collect();
        Decoded { verbose, rows }
    }

    /// Every value `field` took in the frames sent from `from_port`
    /// (`None`: either direction).
    fn values(&self, field: &str, from_port: Option<u16>) -> Vec<String> {
        self.rows
            .iter()
            .filter(|row| {
                from_port.is_none_or(|port| {
                    row.get("tcp.srcport")
                        .is_some_and(|ports| ports.iter().any(|p| *p == port.to_string()))
                })
            })
            .flat_map(|row| row.get(field).cloned().unwrap_or_default())
            .collect()
    }

    fn value_set(&self, field: &str, from_port: Option<u16>) -> BTreeSet<String> {
        self.values(field, from_port).into_iter().collect()
    }

    /// The text after `label: ` on every line of `-V` that starts with it.
    fn shown(&self, label: &str) -> Vec<String> {
        let prefix = format!("{label}: ");
        self.verbose
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix(prefix.as_str()))
            .map(|value| value.trim().to_string())
            .collect()
    }

    /// How many lines of `-V` are exactly `heading` (a protocol's summary
    /// line, such as `OUCH, Accepted`).
    fn count(&self, heading: &str) -> usize {
        self.verbose
            .lines()
            .filter(|line| line.trim_end() == heading)
            .count()
    }
}

#[test]
fn wireshark_decodes_every_packet_and_message_lockstep_exchanges() {
    let Some(version) = tshark_version() else {
        return;
    };
    println!("{version}");
    let dir = TempDir::new("wireshark");
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("the port is known");
    let capture_path = dir.0.join("lockstep.pcapng");
    let capture = match Capture::start(addr.port(), &capture_path) {
        CaptureStart::Started(capture) => capture,
        CaptureStart::NotPermitted(why) => {
            println!("skipped: capturing on lo is not permitted here: {why}");
            return;
        }
    };
    let server = Server::start(
        system_config(&dir.0.join("data")),
        gateway_config(addr),
        Some(listener),
        None,
    )
    .expect("the server starts");
    let mut bob = exchange_every_message(addr);
    // End of Session: the server stops cleanly with bob logged in.
    let report = server.stop();
    assert_eq!(report.gateway.stats.logins_accepted, 2, "{report:?}");
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no End of Session");
        match bob.recv(Duration::from_millis(500)) {
            Ok(ClientMessage::EndOfSession) => break,
            Ok(ClientMessage::ServerHeartbeat) | Err(ClientError::Timeout) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(error) => panic!("{error}"),
        }
    }
    drop(bob);
    capture.stop();

    let decoded = Decoded::read(&capture_path, addr.port());
    let keep = std::env::var_os("LOCKSTEP_WIRESHARK_KEEP").map(PathBuf::from);
    if let Some(keep) = &keep {
        std::fs::copy(&capture_path, keep.with_extension("pcapng")).expect("the capture is kept");
        std::fs::write(keep.with_extension("txt"), &decoded.verbose).expect("the decode is kept");
    }
    check_decode(&decoded, addr.port());
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|value| value.to_string()).collect()
}

fn check_decode(decoded: &Decoded, server_port: u16) {
    assert!(!decoded.rows.is_empty(), "the capture holds no frames");

    // Nothing malformed, no expert error, nothing the SoupBinTCP dissector
    // calls an invalid string. Warnings are printed: they belong to TCP.
    for line in decoded.verbose.lines() {
        assert!(
            !line.to_lowercase().contains("malformed"),
            "Wireshark reports a malformed packet: {line}"
        );
        assert!(
            !line.contains("Expert Info (Error") && !line.contains("Severity level: Error"),
            "Wireshark reports an error: {line}"
        );
        assert!(
            !line.contains("invalid string"),
            "Wireshark reports an invalid field: {line}"
        );
        if line.contains("Expert Info (Warning") {
            println!("Wireshark warns: {}", line.trim());
        }
    }

    // Every SoupBinTCP packet, as many times as it was exchanged.
    let packets = [
        ("Login Request", 4),
        ("Login Accepted", 2),
        ("Login Rejected", 2),
        ("Debug Packet", 1),
        ("Unsequenced Data", 5),
        ("Logout Request", 1),
        ("End of Session", 1),
    ];
    for (name, expected) in packets {
        let heading = format!("SoupBinTCP, {name}");
        assert_eq!(decoded.count(&heading), expected, "{heading}");
    }
    let sequenced = decoded
        .verbose
        .lines()
        .filter(|line| line.starts_with("SoupBinTCP, Sequenced Data"))
        .count();
    assert_eq!(sequenced, 7, "Sequenced Data packets");
    for heartbeat in [
        "SoupBinTCP, Client Heartbeat",
        "SoupBinTCP, Server Heartbeat",
    ] {
        assert!(decoded.count(heartbeat) >= 1, "no {heartbeat}");
    }
    // Each packet type from the side that sends it.
    let server_types = decoded.value_set("soupbintcp.packet_type", Some(server_port));
    assert_eq!(
        server_types,
        set(&["A", "J", "S", "H", "Z"]),
        "server packets"
    );
    let all_types = decoded.value_set("soupbintcp.packet_type", None);
    let client_types: BTreeSet<String> = all_types.difference(&server_types).cloned().collect();
    assert_eq!(
        client_types,
        set(&["L", "U", "R", "O", "+"]),
        "client packets"
    );

    // Every OUCH message, each data packet's payload recognised as OUCH.
    let messages = [
        ("Enter Order", 3),
        ("Replace Order", 1),
        ("Cancel Order", 1),
        ("Accepted", 2),
        ("Replaced", 1),
        ("Executed", 2),
        ("Canceled", 1),
        ("Rejected", 1),
    ];
    let mut ouch_messages = 0;
    for (name, expected) in messages {
        let heading = format!("OUCH, {name}");
        assert_eq!(decoded.count(&heading), expected, "{heading}");
        ouch_messages += expected;
    }
    assert_eq!(
        ouch_messages,
        5 + sequenced,
        "a data payload not decoded as OUCH"
    );
    assert_eq!(
        decoded.value_set("ouch.packet_type", None),
        set(&["O", "U", "X", "A", "E", "C", "J"]),
        "OUCH message types"
    );

    // The fields carry what the test sent, so every offset and width agrees
    // with Wireshark's.
    let expect = |field: &str, expected: &[&str]| {
        assert_eq!(decoded.value_set(field, None), set(expected), "{field}");
    };
    expect("soupbintcp.username", &["alice", "bob"]);
    expect("soupbintcp.password", &["alicepass", "wrong", "bobpass"]);
    expect("soupbintcp.session", &["LOCKSTEP"]);
    expect("soupbintcp.reject_code", &["A", "S"]);
    expect("soupbintcp.text", &["hello from the wireshark test"]);
    let shown = |label: &str| -> BTreeSet<String> { decoded.shown(label).into_iter().collect() };
    assert_eq!(shown("Requested sequence number"), set(&["0"]));
    assert_eq!(shown("Next sequence number"), set(&["1"]));
    expect("ouch.order_token", &["B1", "B1R", "S1", "S2"]);
    expect("ouch.existing_order_token", &["B1"]);
    expect("ouch.replacement_order_token", &["B1R"]);
    expect("ouch.previous_order_token", &["B1"]);
    expect("ouch.stock", &["AMZN", "ZZZZ"]);
    expect("ouch.shares", &["0", "10", "30", "80", "100"]);
    expect("ouch.price", &["1500000", "1500100"]);
    expect("ouch.tif", &["0", "99998"]);
    expect("ouch.firm", &["FRM1"]);
    expect("ouch.executed_shares", &["30"]);
    expect("ouch.execution_price", &["1500100"]);
    expect("ouch.liquidity_flag", &["A", "R"]);
    expect("ouch.decrement_shares", &["50"]);
    expect("ouch.reject_reason", &["S"]);
    // The last byte of Enter Order, Accepted and Replaced, a space here.
    assert_eq!(
        shown("Customer Type"),
        set(&["Default configured for port (' ')"])
    );
    assert_eq!(shown("BBO Weight Indicator"), set(&["Unspecified (' ')"]));
}
