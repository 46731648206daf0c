//! `lockstep serve` as an operator runs it: on the bundled default config it
//! listens, takes a demo session's order over SoupBinTCP/OUCH, and stops
//! cleanly on SIGINT with the journal flushed; a bad config file is refused
//! with one line naming the key.

mod common;

use common::{lockstep, path_arg, single_error_line, stdout_of, BINARY};
use lockstep_transport::client::{Client, ClientConfig, ClientMessage};
use lockstep_transport::ouch::{
    self, Capacity, CrossType, CustomerType, Display, EnterOrder, IntermarketSweep, Outbound,
    Stock, TIF_SYSTEM_HOURS,
};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockstep-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn serve_on_the_default_config_accepts_a_demo_order_and_stops_cleanly_on_sigint() {
    let dir = temp_dir("default");
    let data_dir = dir.join("data");
    let mut child = Command::new(BINARY)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            path_arg(&data_dir),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("serve prints its address");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("an address");

    let mut client =
        Client::connect(&ClientConfig::new(addr, "demo1", "demo1pass")).expect("demo1 logs in");
    client
        .send_enter(&EnterOrder {
            token: ouch::Token::left("SERVE1").unwrap(),
            side: ouch::Side::Buy,
            shares: 100,
            stock: Stock::left("AMZN").unwrap(),
            price: 1_000_000,
            time_in_force: TIF_SYSTEM_HOURS,
            firm: ouch::Firm::BLANK,
            display: Display::AnonymousPriceToComply,
            capacity: Capacity::Agency,
            intermarket_sweep: IntermarketSweep::NotEligible,
            minimum_quantity: 0,
            cross_type: CrossType::NoCross,
            customer_type: CustomerType::PortDefault,
        })
        .expect("order sent");
    let accepted = client
        .recv_sequenced(Duration::from_secs(10))
        .expect("an answer");
    assert_eq!(accepted.sequence_number, 1);
    assert!(
        matches!(accepted.message, Outbound::Accepted(ref a) if a.shares == 100),
        "{accepted:?}"
    );

    // SAFETY: kill(2) on our own child's pid with SIGINT has no memory effects.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0, "SIGINT delivered");
    // The client is told the session ended before the server exits.
    let mut saw_end = false;
    for _ in 0..50 {
        match client.recv(Duration::from_millis(200)) {
            Ok(ClientMessage::EndOfSession) => {
                saw_end = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(saw_end, "End of Session before the close");
    let mut rest = String::new();
    for line in stdout.lines() {
        rest.push_str(&line.expect("stdout"));
        rest.push('\n');
    }
    let status = child.wait().expect("serve exits");
    assert!(status.success(), "serve exited with {status:?}: {rest}");
    assert!(rest.contains("journal flushed and closed"), "{rest}");
    assert!(
        data_dir
            .join("journal.lkj")
            .metadata()
            .expect("journal")
            .len()
            > 0,
        "the journal holds the order"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_print_config_prints_the_bundled_default() {
    let output = lockstep(&["serve", "--print-config"]);
    let text = stdout_of(&output);
    assert!(output.status.success());
    for needle in [
        "127.0.0.1:15001",
        "AMZN",
        "AAPL",
        "MSFT",
        "demo1pass",
        "demo2pass",
    ] {
        assert!(text.contains(needle), "default config lacks {needle}");
    }
}

#[test]
fn serve_refuses_a_bad_config_naming_the_key() {
    let dir = temp_dir("bad");
    let config = dir.join("bad.toml");
    let default = stdout_of(&lockstep(&["serve", "--print-config"]));
    std::fs::write(
        &config,
        default.replace("demo2pass", "far-too-long-password"),
    )
    .unwrap();
    let output = lockstep(&["serve", "--config", path_arg(&config)]);
    let line = single_error_line(&output, 1);
    assert!(line.contains("password"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}
