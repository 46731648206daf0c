//! `run_replay` end to end through a real in-process server over loopback
//! TCP: a generated flow spread over three sessions (written as a journal,
//! with commands no client can send mixed in), the same kind of flow as a
//! flow CSV, and a slice of the bundled LOBSTER sample paced by its own
//! clock, and a journal a real server wrote. Each must end with the server's replicas on the offline
//! reference's state hash, every session's output as predicted and sane
//! counts; bad files must fail with an error naming the file and the line.
//! No timing is asserted.

use lockstep_bench::progress::NoProgress;
use lockstep_bench::replay_source::InputFormat;
use lockstep_bench::{
    engine_config_for, flow_to_string, generate, generate_commands, replay_text_report, run_replay,
    InProcessServer, Mix, ReplayOptions, ReplayReport, Speed,
};
use lockstep_engine::{Command, CommandKind, InstrumentId, RejectReason, SessionId, Token};
use lockstep_sequencer::durability::DurabilityPolicy;
use lockstep_sequencer::journal::Journal;
use lockstep_sequencer::journal_record::SequencedCommand;
use lockstep_sequencer::system_config::SystemConfig;
use lockstep_transport::client::{Client, ClientConfig};
use lockstep_transport::gateway_config::{GatewayConfig, GatewayInstrument, SessionConfig};
use lockstep_transport::ouch::{self, Outbound};
use lockstep_transport::server::Server;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A scratch directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "lockstep-replay-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small server: three unbounded instruments, no fsync. Its one session
/// is a placeholder the replay replaces.
fn server(scratch: &Path) -> InProcessServer {
    let mut engine = engine_config_for(3, 1 << 16);
    engine.sessions_max = 4;
    engine.accounts_max = 4;
    let mut system = SystemConfig::new(engine, scratch.to_path_buf());
    system.durability = DurabilityPolicy::None;
    system.prefer_io_uring = false;
    let instruments = ["AMZN", "AAPL", "MSFT"]
        .iter()
        .enumerate()
        .map(|(index, symbol)| GatewayInstrument {
            symbol: symbol.to_string(),
            instrument: InstrumentId(index as u32),
        })
        .collect();
    let placeholder = SessionConfig {
        username: "demo1".to_string(),
        password: "demo1pass".to_string(),
        firm: "DEM1".to_string(),
        account: lockstep_engine::AccountId(1),
        cancel_on_disconnect: true,
        open_orders_max: 100,
        messages_per_second_max: 100,
        messages_burst_max: 10,
    };
    let gateway = GatewayConfig::new(
        "127.0.0.1:0".parse().expect("address"),
        instruments,
        vec![placeholder],
    );
    InProcessServer {
        system,
        gateway,
        scratch_dir: scratch.to_path_buf(),
        gateway_core: None,
    }
}

fn replay(path: &Path, speed: Speed, scratch: &Path) -> Result<ReplayReport, String> {
    let mut options = ReplayOptions::new(path, speed, server(scratch));
    options.drain_timeout = Duration::from_secs(10);
    run_replay(&options, &mut NoProgress)
}

fn assert_passed(report: &ReplayReport) {
    let text = replay_text_report(report);
    assert!(report.passed(), "{text}");
    assert_eq!(report.server_hash, Some(report.reference_hash), "{text}");
    assert!(report.replicas_agree, "{text}");
    assert!(report.outputs_match, "{text}");
    assert_eq!(report.unanswered, 0, "{text}");
    assert_eq!(report.received, report.expected, "{text}");
    assert_eq!(report.server_sequenced, report.sent, "{text}");
    assert_eq!(report.latency.len(), report.sent, "{text}");
    assert!(text.contains("\nPASS\n"), "{text}");
}

/// Session and account of an order token: three sessions, each on its own
/// account, so orders of different sessions trade with each other.
fn session_of(token: Token) -> SessionId {
    SessionId((token.value() % 3) as u16)
}

/// A generated flow with every order type, cancels and modifies, spread
/// over three sessions and written as a journal, with a halt, a cancel-all
/// and a gateway reject mixed in (none of which a client can send).
fn write_multi_session_journal(path: &Path) -> usize {
    let mut commands = generate_commands(Mix::Simple, 7, 1_500);
    for command in &mut commands {
        match command {
            Command::New(order) => {
                order.session = session_of(order.token);
                order.account = lockstep_engine::AccountId(u32::from(order.session.0) + 1);
            }
            Command::Cancel(cancel) => cancel.session = session_of(cancel.token),
            Command::Replace(replace) => replace.session = session_of(replace.token),
            _ => {}
        }
    }
    commands.insert(
        10,
        Command::Halt {
            instrument: InstrumentId(2),
        },
    );
    commands.insert(
        11,
        Command::Resume {
            instrument: InstrumentId(2),
        },
    );
    commands.insert(
        500,
        Command::Reject {
            session: SessionId(1),
            token: Token::from_u64(99),
            command: CommandKind::New,
            reason: RejectReason::MessageRateExceeded,
        },
    );
    commands.push(Command::CancelAllForSession {
        session: SessionId(2),
    });
    let mut journal = Journal::open(path, DurabilityPolicy::None, false).expect("journal");
    for (index, command) in commands.iter().enumerate() {
        journal
            .append(&SequencedCommand {
                seq: index as u64 + 1,
                timestamp_ns: 1_000_000_000 + index as u64 * 10_000,
                command: *command,
            })
            .expect("append");
    }
    journal.sync().expect("sync");
    commands.len()
}

#[test]
fn a_multi_session_journal_replays_to_the_reference_hash() {
    let dir = TempDir::new("journal");
    let path = dir.0.join("flow.lkj");
    let written = write_multi_session_journal(&path);
    let report = replay(&path, Speed::Max, &dir.0).expect("replay runs");
    assert_eq!(report.format, InputFormat::Journal);
    assert_eq!(report.commands_read, written as u64);
    assert_eq!(
        report.skipped_not_ouch,
        4,
        "{}",
        replay_text_report(&report)
    );
    assert_eq!(report.sessions, 3);
    assert_eq!(report.sent, written as u64 - 4);
    assert!(report.barriers > 100, "{}", replay_text_report(&report));
    let received = report.received;
    assert!(received.accepted > 500, "{received:?}");
    assert!(received.executions > 50, "{received:?}");
    assert!(received.canceled > 50, "{received:?}");
    assert!(received.replaced > 50, "{received:?}");
    assert_passed(&report);
    assert!(replay_text_report(&report).contains("4 commands not expressible in OUCH were skipped"));
}

#[test]
fn a_paced_journal_and_a_flow_csv_replay_to_the_reference_hash() {
    let dir = TempDir::new("flow");
    let journal = dir.0.join("paced.lkj");
    write_multi_session_journal(&journal);
    // 1,500 orders 10 us apart in the journal's clock: 15 ms at 1x.
    let report = replay(&journal, Speed::Factor(1.0), &dir.0).expect("paced replay runs");
    assert_passed(&report);
    let path = dir.0.join("simple.csv");
    std::fs::write(&path, flow_to_string(&generate(Mix::Simple, 3, 1_000))).expect("flow");
    let report = replay(&path, Speed::Max, &dir.0).expect("replay runs");
    assert_eq!(report.format, InputFormat::FlowCsv);
    assert_eq!(report.sessions, 1);
    assert_eq!(report.skipped_not_ouch, 0);
    assert_eq!(report.sent, report.commands_read);
    assert!(report.received.replaced > 20, "{:?}", report.received);
    assert_passed(&report);
    // A flow has no clock to pace by.
    let error = replay(&path, Speed::Factor(10.0), &dir.0).expect_err("no time column");
    assert!(error.contains("no time column"), "{error}");
}

#[test]
fn a_slice_of_the_lobster_sample_replays_to_the_reference_hash() {
    let dir = TempDir::new("lobster");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv");
    let reader = BufReader::new(std::fs::File::open(&sample).expect("the bundled LOBSTER sample"));
    let path = dir.0.join("AMZN_slice_message_1.csv");
    let mut slice = std::fs::File::create(&path).expect("slice");
    for line in reader.lines().take(2_000) {
        writeln!(slice, "{}", line.expect("line")).expect("write");
    }
    drop(slice);
    let report = replay(&path, Speed::Factor(1000.0), &dir.0).expect("replay runs");
    assert_eq!(report.format, InputFormat::Lobster);
    assert_eq!(report.sessions, 1);
    assert!(report.sent > 1_500, "{}", replay_text_report(&report));
    assert!(report.received.executions > 10, "{:?}", report.received);
    assert!(report.received.canceled > 100, "{:?}", report.received);
    assert_passed(&report);
}

#[test]
fn bad_files_fail_with_the_file_and_the_line() {
    let dir = TempDir::new("bad");
    let unknown = dir.0.join("notes.txt");
    std::fs::write(&unknown, "hello\n").expect("file");
    let error = replay(&unknown, Speed::Max, &dir.0).expect_err("unknown format");
    assert!(
        error.contains("notes.txt: cannot tell the format"),
        "{error}"
    );

    let flow = dir.0.join("bad.csv");
    std::fs::write(
        &flow,
        format!(
            "{}\nnew,1,1,buy,limit,5,5,gtc,0\nnew,1,2,buy,limit,x,5,gtc,0\n",
            lockstep_bench::FLOW_HEADER
        ),
    )
    .expect("file");
    let error = replay(&flow, Speed::Max, &dir.0).expect_err("bad price");
    assert!(error.contains("bad.csv:3: price"), "{error}");

    let lobster = dir.0.join("X_message_1.csv");
    std::fs::write(&lobster, "34200.1,1,5,10,100,1\n34200.2,9,5,10,100,1\n").expect("file");
    let error = replay(&lobster, Speed::Max, &dir.0).expect_err("bad type");
    assert!(error.contains("X_message_1.csv: line 2: type"), "{error}");

    let journal = dir.0.join("torn.lkj");
    write_multi_session_journal(&journal);
    let mut bytes = std::fs::read(&journal).expect("journal");
    // Corrupt a record in the middle: valid records follow it.
    bytes[64 + 64 * 10 + 20] ^= 0xff;
    std::fs::write(&journal, bytes).expect("journal");
    let error = replay(&journal, Speed::Max, &dir.0).expect_err("corrupt record");
    assert!(
        error.contains("torn.lkj") && error.contains("byte offset 704"),
        "{error}"
    );

    let missing = dir.0.join("missing.lkj");
    let error = replay(&missing, Speed::Max, &dir.0).expect_err("missing");
    assert!(error.contains("missing.lkj"), "{error}");
}

fn enter(token: &str, side: ouch::Side, shares: u32, price: u32) -> ouch::EnterOrder {
    ouch::EnterOrder {
        token: ouch::Token::left(token).expect("token"),
        side,
        shares,
        stock: ouch::Stock::left("AAPL").expect("symbol"),
        price,
        time_in_force: ouch::TIF_SYSTEM_HOURS,
        firm: ouch::Firm::BLANK,
        display: ouch::Display::AnonymousPriceToComply,
        capacity: ouch::Capacity::Agency,
        intermarket_sweep: ouch::IntermarketSweep::NotEligible,
        minimum_quantity: 0,
        cross_type: ouch::CrossType::NoCross,
        customer_type: ouch::CustomerType::PortDefault,
    }
}

/// A journal a real server wrote (printable tokens, rate-limit rejects)
/// replays to the reference, and that reference is the original server's
/// own final state: the replay reproduces the day.
#[test]
fn a_journal_written_by_a_server_replays_to_its_own_state() {
    let dir = TempDir::new("served");
    let mut original = server(&dir.0);
    original.system.data_dir = dir.0.join("original");
    let session = |name: &str, account: u32, burst: u32| SessionConfig {
        username: name.to_string(),
        password: "pw".to_string(),
        firm: String::new(),
        account: lockstep_engine::AccountId(account),
        cancel_on_disconnect: false,
        open_orders_max: 1_000,
        messages_per_second_max: 1,
        messages_burst_max: burst,
    };
    original.gateway.sessions = vec![session("alice", 1, 1_000), session("bob", 2, 4)];
    let journal_path = original.system.journal_path();
    let started = Server::start(
        original.system.clone(),
        original.gateway.clone(),
        Some(std::net::TcpListener::bind("127.0.0.1:0").expect("listen")),
        None,
    )
    .expect("server");
    let addr = started.local_addr();
    let wait = Duration::from_secs(5);
    let mut alice = Client::connect(&ClientConfig::new(addr, "alice", "pw")).expect("alice");
    let mut bob = Client::connect(&ClientConfig::new(addr, "bob", "pw")).expect("bob");
    for (index, price) in [1_000u32, 1_001, 1_002].into_iter().enumerate() {
        alice
            .send_enter(&enter(&format!("A{index}"), ouch::Side::Buy, 100, price))
            .expect("send");
        alice.recv_sequenced(wait).expect("accepted");
    }
    alice
        .send_replace(&ouch::ReplaceOrder {
            existing_token: ouch::Token::left("A0").expect("token"),
            replacement_token: ouch::Token::left("A0-MOVED").expect("token"),
            shares: 50,
            price: 999,
            time_in_force: ouch::TIF_SYSTEM_HOURS,
            display: ouch::Display::AnonymousPriceToComply,
            intermarket_sweep: ouch::IntermarketSweep::NotEligible,
            minimum_quantity: 0,
        })
        .expect("send");
    alice.recv_sequenced(wait).expect("replaced");
    // Bob's bucket holds four messages: the last two are rate-limit
    // rejects, journaled as gateway rejects.
    for index in 0..6 {
        bob.send_enter(&enter(&format!("B{index}"), ouch::Side::Sell, 30, 1_001))
            .expect("send");
    }
    alice
        .send_cancel(&ouch::CancelOrder {
            token: ouch::Token::left("A1").expect("token"),
            shares: 0,
        })
        .expect("send");
    // Every message answered before the server stops, so the journal
    // holds them all; each loop is bounded by the messages it can get.
    let mut bob_answers = 0;
    for _ in 0..50 {
        if bob_answers == 6 {
            break;
        }
        let reply = bob.recv_sequenced(wait).expect("bob's replies");
        if matches!(reply.message, Outbound::Accepted(_) | Outbound::Rejected(_)) {
            bob_answers += 1;
        }
    }
    assert_eq!(bob_answers, 6);
    let mut alice_canceled = false;
    for _ in 0..50 {
        let reply = alice.recv_sequenced(wait).expect("alice's replies");
        if let Outbound::Canceled(canceled) = reply.message {
            if canceled.token == ouch::Token::left("A1").expect("token") {
                alice_canceled = true;
                break;
            }
        }
    }
    assert!(alice_canceled);
    drop((alice, bob));
    let stopped = started.stop();
    let original_hash = stopped.system.replicas[0].state_hash;
    assert!(stopped.gateway.stats.rejects_submitted >= 2);

    let report = replay(&journal_path, Speed::Max, &dir.0).expect("replay runs");
    assert_eq!(report.format, InputFormat::Journal);
    assert_eq!(report.sessions, 2);
    assert_eq!(
        report.skipped_not_ouch,
        stopped.gateway.stats.rejects_submitted,
        "{}",
        replay_text_report(&report)
    );
    assert!(report.received.executions >= 2, "{:?}", report.received);
    assert_passed(&report);
    assert_eq!(report.reference_hash, original_hash);
}
