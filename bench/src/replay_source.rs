//! The inputs of `lockstep bench --replay` and the tokens their orders are
//! sent with. This module owns format detection (a journal by its header
//! magic, a flow CSV v1 by its header line, a LOBSTER message file by its
//! `*_message_*.csv` name), reading each of the three into one list of
//! engine commands with their own timestamps where the format has them, and
//! the deterministic mapping of engine tokens (112-bit integers) onto OUCH
//! tokens (14 printable characters). A token that already is 14 printable
//! characters (every token a gateway journaled) is sent as it is; any other
//! token below 2^64 (flow order ids, LOBSTER order numbers) is sent as its
//! value in 14 base-36 digits. A replace that keeps its token (a flow's
//! modify) needs a fresh OUCH token, because OUCH refuses a replacement
//! token used before; fresh tokens are `R` and a counter in 13 base-36
//! digits, skipping any token the input itself uses. [`TokenMap`] checks
//! that no two input tokens of one session share an OUCH token, so the
//! mapping is injective on every file it accepts.

use crate::flow::{FlowMapper, FlowReader, FLOW_HEADER};
use crate::lobster::{import_lobster_timed, ImportError, ImportStats};
use lockstep_engine::{Command, SessionId, Token};
use lockstep_sequencer::journal_reader::JournalReader;
use lockstep_sequencer::journal_record::JOURNAL_MAGIC;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Bytes in an OUCH token.
pub const OUCH_TOKEN_LEN: usize = 14;
const BASE36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// The first character of a fresh replacement token.
const FRESH_TOKEN_MARK: u8 = b'R';
/// How much of a file's start format detection looks at.
const DETECT_BYTES: usize = 512;

/// The three kinds of file a replay reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// A Lockstep journal (`.lkj`), told by its header magic.
    Journal,
    /// A flow CSV v1, told by its header line.
    FlowCsv,
    /// A LOBSTER message file, told by its `*_message_*.csv` name.
    Lobster,
}

impl InputFormat {
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Journal => "journal",
            InputFormat::FlowCsv => "flow CSV v1",
            InputFormat::Lobster => "LOBSTER message file",
        }
    }
}

/// Where in its file a command came from, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A 1-based line of a LOBSTER file.
    Line(u64),
    /// A 1-based data row of a flow CSV (blank lines not counted).
    Row(u64),
    /// A journal record's seq.
    Seq(u64),
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(line) => write!(formatter, "line {line}"),
            Origin::Row(row) => write!(formatter, "data row {row}"),
            Origin::Seq(seq) => write!(formatter, "journal seq {seq}"),
        }
    }
}

/// One command of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceCommand {
    pub command: Command,
    /// The input's own clock for this command, in nanoseconds (LOBSTER:
    /// after midnight; journal: the sequencer's timestamp); `None` for a
    /// flow CSV, which has no time column.
    pub time_ns: Option<u64>,
    pub origin: Origin,
}

/// A whole input, read.
#[derive(Clone, Debug)]
pub struct LoadedInput {
    pub path: PathBuf,
    pub format: InputFormat,
    pub commands: Vec<SourceCommand>,
    /// Things worth a line in the report (a LOBSTER import's skips, a
    /// journal's torn tail).
    pub notes: Vec<String>,
}

/// Tells the format of `path` from its first bytes and its name.
pub fn detect_format(path: &Path) -> Result<InputFormat, String> {
    let mut file =
        File::open(path).map_err(|error| format!("cannot open {}: {error}", path.display()))?;
    let mut head = Vec::with_capacity(DETECT_BYTES);
    file.by_ref()
        .take(DETECT_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    detect_format_of(path, &head)
}

/// The detection rules on a file's first bytes: the journal magic, then the
/// flow header as the first line, then the LOBSTER file name.
pub fn detect_format_of(path: &Path, head: &[u8]) -> Result<InputFormat, String> {
    if head.is_empty() {
        return Err(format!(
            "{}: the file is empty (expected a journal, a flow CSV v1 or a LOBSTER message file)",
            path.display()
        ));
    }
    if head.starts_with(&JOURNAL_MAGIC) {
        return Ok(InputFormat::Journal);
    }
    let first_line = head.split(|&byte| byte == b'\n').next().unwrap_or_default();
    let first_line = first_line.strip_suffix(b"\r").unwrap_or(first_line);
    if first_line == FLOW_HEADER.as_bytes() {
        return Ok(InputFormat::FlowCsv);
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.contains("_message_") && name.ends_with(".csv") {
        return Ok(InputFormat::Lobster);
    }
    Err(format!(
        "{}: cannot tell the format: not a journal (no {:?} magic), not a flow CSV v1 \
         (line 1 is not {FLOW_HEADER:?}) and not a LOBSTER message file (name *_message_*.csv)",
        path.display(),
        String::from_utf8_lossy(&JOURNAL_MAGIC)
    ))
}

fn too_many(path: &Path, commands_max: usize) -> String {
    format!(
        "{}: more than {commands_max} commands, the most one replay sends",
        path.display()
    )
}

/// Reads `path` (any of the three formats) into commands, at most
/// `commands_max` of them.
pub fn load_input(path: &Path, commands_max: usize) -> Result<LoadedInput, String> {
    let format = detect_format(path)?;
    let mut notes = Vec::new();
    let commands = match format {
        InputFormat::Journal => read_journal(path, commands_max, &mut notes)?,
        InputFormat::FlowCsv => read_flow(path, commands_max)?,
        InputFormat::Lobster => read_lobster(path, commands_max, &mut notes)?,
    };
    Ok(LoadedInput {
        path: path.to_path_buf(),
        format,
        commands,
        notes,
    })
}

fn open_buffered(path: &Path) -> Result<BufReader<File>, String> {
    let file =
        File::open(path).map_err(|error| format!("cannot open {}: {error}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 16, file))
}

fn read_journal(
    path: &Path,
    commands_max: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<SourceCommand>, String> {
    let mut reader =
        JournalReader::open(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut commands = Vec::new();
    for record in reader.by_ref() {
        let record = record.map_err(|error| format!("{}: {error}", path.display()))?;
        if commands.len() >= commands_max {
            return Err(too_many(path, commands_max));
        }
        commands.push(SourceCommand {
            command: record.command,
            time_ns: Some(record.timestamp_ns),
            origin: Origin::Seq(record.seq),
        });
    }
    if let Some(tail) = reader.torn_tail() {
        notes.push(format!("the journal ends in a {tail}; it was ignored"));
    }
    Ok(commands)
}

fn read_flow(path: &Path, commands_max: usize) -> Result<Vec<SourceCommand>, String> {
    let mut mapper = FlowMapper::new();
    let mut commands = Vec::new();
    for (index, record) in FlowReader::new(open_buffered(path)?).enumerate() {
        let record = record
            .map_err(|error| format!("{}:{}: {}", path.display(), error.line, error.message))?;
        if commands.len() >= commands_max {
            return Err(too_many(path, commands_max));
        }
        commands.push(SourceCommand {
            command: mapper.map(&record),
            time_ns: None,
            origin: Origin::Row(index as u64 + 1),
        });
    }
    Ok(commands)
}

fn read_lobster(
    path: &Path,
    commands_max: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<SourceCommand>, String> {
    let mut mapper = FlowMapper::new();
    let mut commands = Vec::new();
    let stats: ImportStats = import_lobster_timed(open_buffered(path)?, |timed| {
        if commands.len() >= commands_max {
            return Err(ImportError::Malformed {
                line: timed.line,
                message: too_many(path, commands_max),
            });
        }
        commands.push(SourceCommand {
            command: mapper.map(&timed.record),
            time_ns: Some(timed.time_ns),
            origin: Origin::Line(timed.line),
        });
        Ok(())
    })
    .map_err(|error| format!("{}: {error}", path.display()))?;
    notes.push(format!(
        "LOBSTER import: {} events converted, {} skipped (hidden executions, cross trades, \
         halts, events on orders the file never entered)",
        stats.converted_total(),
        stats.skipped_total()
    ));
    Ok(commands)
}

/// Whether every byte is one OUCH accepts in a token (printable ASCII,
/// space included).
fn is_printable(bytes: &[u8]) -> bool {
    bytes.iter().all(|byte| (0x20..0x7f).contains(byte))
}

/// `value` in `digits` base-36 digits after `mark`.
fn base36_token(mark: u8, value: u64) -> [u8; OUCH_TOKEN_LEN] {
    let mut bytes = [b'0'; OUCH_TOKEN_LEN];
    bytes[0] = mark;
    let mut rest = value;
    for slot in bytes[1..].iter_mut().rev() {
        *slot = BASE36[(rest % 36) as usize];
        rest /= 36;
    }
    // 36^13 exceeds 2^64, so 13 digits hold every u64.
    assert_eq!(rest, 0, "a u64 fits 13 base-36 digits");
    bytes
}

/// The OUCH token an input token is sent as, before any replacement: the
/// token itself if its 14 bytes are printable, else its value in 14 base-36
/// digits if it is below 2^64, else `None` (OUCH cannot carry it).
pub fn encode_token(token: Token) -> Option<[u8; OUCH_TOKEN_LEN]> {
    let bytes = token.to_bytes();
    if is_printable(&bytes) {
        return Some(bytes);
    }
    token.to_u64().map(|value| base36_token(b'0', value))
}

/// The `counter`-th fresh replacement token, before skipping any the
/// input uses.
pub fn fresh_token(counter: u64) -> [u8; OUCH_TOKEN_LEN] {
    base36_token(FRESH_TOKEN_MARK, counter)
}

/// The OUCH token of every order of one replay, per session.
#[derive(Debug, Default)]
pub struct TokenMap {
    /// Every OUCH token an input token of the session encodes to, and that
    /// input token: two input tokens on one encoding would be one order.
    encoded: HashMap<(SessionId, [u8; OUCH_TOKEN_LEN]), u128>,
    /// The same encodings, whatever their session.
    encoded_any_session: HashSet<[u8; OUCH_TOKEN_LEN]>,
    /// Input tokens whose order now carries a fresh token (after a replace
    /// that kept its input token).
    replaced: HashMap<(SessionId, u128), [u8; OUCH_TOKEN_LEN]>,
    /// Fresh tokens handed out, so none is handed out twice.
    fresh_used: HashSet<[u8; OUCH_TOKEN_LEN]>,
    next_fresh: u64,
}

/// The session and tokens an order command names.
fn tokens_of(command: &Command) -> Option<(SessionId, Token, Option<Token>)> {
    match command {
        Command::New(order) => Some((order.session, order.token, None)),
        Command::Cancel(cancel) => Some((cancel.session, cancel.token, None)),
        Command::Replace(replace) => {
            Some((replace.session, replace.token, Some(replace.new_token)))
        }
        _ => None,
    }
}

impl TokenMap {
    /// Encodes every token of `commands` up front, so fresh tokens can
    /// avoid the ones used later in the file; fails on a token OUCH cannot
    /// carry or on two input tokens of one session sharing an encoding.
    pub fn new(commands: &[SourceCommand]) -> Result<TokenMap, String> {
        let mut map = TokenMap::default();
        for source in commands {
            let Some((session, token, new_token)) = tokens_of(&source.command) else {
                continue;
            };
            for token in std::iter::once(token).chain(new_token) {
                let Some(bytes) = encode_token(token) else {
                    return Err(format!(
                        "{}: token {:#x} is neither 14 printable characters nor a number below \
                         2^64, so OUCH cannot carry it",
                        source.origin,
                        token.value()
                    ));
                };
                match map.encoded.get(&(session, bytes)) {
                    Some(&other) if other != token.value() => {
                        return Err(format!(
                            "{}: tokens {:#x} and {other:#x} of session {} would both be sent as \
                             {:?}",
                            source.origin,
                            token.value(),
                            session.0,
                            String::from_utf8_lossy(&bytes)
                        ));
                    }
                    Some(_) => {}
                    None => {
                        map.encoded.insert((session, bytes), token.value());
                        map.encoded_any_session.insert(bytes);
                    }
                }
            }
        }
        Ok(map)
    }

    /// The OUCH token the order of input token `token` carries now.
    pub fn current(&self, session: SessionId, token: Token) -> [u8; OUCH_TOKEN_LEN] {
        if let Some(bytes) = self.replaced.get(&(session, token.value())) {
            return *bytes;
        }
        // `new` encoded every token of the input, so this cannot fail for
        // one; anything else is a caller's bug.
        encode_token(token).expect("every input token was checked by TokenMap::new")
    }

    /// A token no input token and no earlier fresh token of any session
    /// encodes to.
    pub fn fresh(&mut self) -> [u8; OUCH_TOKEN_LEN] {
        // Each skipped candidate is an input token, so the loop ends within
        // one more round than there are input tokens.
        for _ in 0..=self.encoded_any_session.len() {
            let candidate = fresh_token(self.next_fresh);
            self.next_fresh += 1;
            let taken = self.fresh_used.contains(&candidate)
                || self.encoded_any_session.contains(&candidate);
            if !taken {
                self.fresh_used.insert(candidate);
                return candidate;
            }
        }
        unreachable!("more fresh candidates were tried than there are input tokens")
    }

    /// From now on the order of input token `token` carries `bytes`.
    pub fn remap(&mut self, session: SessionId, token: Token, bytes: [u8; OUCH_TOKEN_LEN]) {
        self.replaced.insert((session, token.value()), bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_engine::{AccountId, CancelOrder, InstrumentId, NewOrder, ReplaceOrder};
    use proptest::prelude::*;

    fn new_order(session: u16, token: Token) -> SourceCommand {
        SourceCommand {
            command: Command::New(NewOrder {
                session: SessionId(session),
                account: AccountId(0),
                token,
                instrument: InstrumentId(0),
                side: lockstep_engine::Side::Buy,
                order_type: lockstep_engine::OrderType::Limit,
                price: 100,
                qty: 1,
                time_in_force: lockstep_engine::TimeInForce::Gtc,
                post_only: false,
                client_tag: 0,
            }),
            time_ns: None,
            origin: Origin::Row(1),
        }
    }

    #[test]
    fn numbers_become_base36_and_printable_tokens_stay() {
        assert_eq!(
            &encode_token(Token::from_u64(0)).unwrap(),
            b"00000000000000"
        );
        assert_eq!(
            &encode_token(Token::from_u64(36 + 35)).unwrap(),
            b"0000000000001Z"
        );
        let max = encode_token(Token::from_u64(u64::MAX)).unwrap();
        assert_eq!(&max, b"03W5E11264SGSF");
        let printable = Token::from_bytes(*b"ABCDEFGHIJ 123");
        assert_eq!(&encode_token(printable).unwrap(), b"ABCDEFGHIJ 123");
        // Neither printable nor below 2^64.
        assert_eq!(encode_token(Token::new(1 << 100).unwrap()), None);
        assert_eq!(&fresh_token(1), b"R0000000000001");
    }

    proptest! {
        #[test]
        fn the_encoding_is_printable_and_injective(a in any::<u64>(), b in any::<u64>()) {
            let encoded_a = encode_token(Token::from_u64(a)).unwrap();
            let encoded_b = encode_token(Token::from_u64(b)).unwrap();
            prop_assert!(is_printable(&encoded_a));
            prop_assert_eq!(encoded_a == encoded_b, a == b);
            // Through the gateway's mapping and back: distinct engine tokens.
            let gateway_a = Token::from_bytes(encoded_a);
            let gateway_b = Token::from_bytes(encoded_b);
            prop_assert_eq!(gateway_a == gateway_b, a == b);
            prop_assert!(is_printable(&fresh_token(a)));
            prop_assert_eq!(fresh_token(a) == fresh_token(b), a == b);
            prop_assert_ne!(fresh_token(a), encoded_b);
        }
    }

    #[test]
    fn a_collision_between_a_number_and_a_printable_token_is_refused() {
        let number = Token::from_u64(5);
        let text = Token::from_bytes(encode_token(number).unwrap());
        let commands = [new_order(0, number), new_order(0, text)];
        let error = TokenMap::new(&commands).unwrap_err();
        assert!(error.contains("would both be sent as"), "{error}");
        // In different sessions they are different orders.
        let commands = [new_order(0, number), new_order(1, text)];
        assert!(TokenMap::new(&commands).is_ok());
    }

    #[test]
    fn fresh_tokens_skip_the_inputs_own_and_replaced_tokens_stick() {
        let taken = Token::from_bytes(fresh_token(0));
        let commands = [
            new_order(0, taken),
            SourceCommand {
                command: Command::Replace(ReplaceOrder {
                    session: SessionId(0),
                    token: Token::from_u64(9),
                    new_token: Token::from_u64(9),
                    price: 1,
                    qty: 1,
                }),
                time_ns: None,
                origin: Origin::Row(2),
            },
            SourceCommand {
                command: Command::Cancel(CancelOrder {
                    session: SessionId(0),
                    token: Token::from_u64(9),
                    qty_after: 0,
                }),
                time_ns: None,
                origin: Origin::Row(3),
            },
        ];
        let mut map = TokenMap::new(&commands).unwrap();
        let fresh = map.fresh();
        assert_eq!(&fresh, b"R0000000000001");
        assert_ne!(map.fresh(), fresh);
        map.remap(SessionId(0), Token::from_u64(9), fresh);
        assert_eq!(map.current(SessionId(0), Token::from_u64(9)), fresh);
        assert_eq!(
            &map.current(SessionId(1), Token::from_u64(9)),
            b"00000000000009"
        );
    }

    #[test]
    fn formats_are_told_by_magic_header_and_name() {
        let path = Path::new("/x/file.bin");
        let mut journal = JOURNAL_MAGIC.to_vec();
        journal.extend_from_slice(&[0; 8]);
        assert_eq!(detect_format_of(path, &journal), Ok(InputFormat::Journal));
        let flow = format!("{FLOW_HEADER}\r\nnew,1,1,buy,limit,1,1,gtc,0\n");
        assert_eq!(
            detect_format_of(path, flow.as_bytes()),
            Ok(InputFormat::FlowCsv)
        );
        let lobster = Path::new("/x/AMZN_2012-06-21_34200000_57600000_message_1.csv");
        assert_eq!(
            detect_format_of(lobster, b"34200.1,1,5,10,100,1\n"),
            Ok(InputFormat::Lobster)
        );
        let error = detect_format_of(path, b"hello\n").unwrap_err();
        assert!(
            error.starts_with("/x/file.bin: cannot tell the format"),
            "{error}"
        );
        let error = detect_format_of(path, b"").unwrap_err();
        assert!(error.contains("empty"), "{error}");
    }
}
