//! `lockstep dump`: prints a journal's header and a range of its records
//! readably, one line per record: seq, byte offset, timestamp (ns since the
//! Unix epoch and as UTC ISO-8601), command kind and every field, or one JSON
//! object per line with `--json`. Tokens are shown as the `u64` they were
//! made from when they fit (every flow token does), otherwise as 28 hex
//! digits. This module owns only formatting; reading goes through
//! `JournalReader`, so the file is never changed, a torn tail is reported
//! when the dump reaches it, and a corrupt record stops the dump with an
//! error naming its byte offset after the records before it are printed.

use crate::journal_file;
use crate::run::print_before_failing;
use clap::Args;
use lockstep_bench::flow::{order_type_name, side_name, time_in_force_name};
use lockstep_engine::{Command, CommandKind, StpMode, Token};
use lockstep_sequencer::journal_record::{
    SequencedCommand, FORMAT_VERSION, HEADER_SIZE_BYTES, RECORD_SIZE_BYTES,
};
use std::path::PathBuf;

/// Print a journal's header and records readably.
#[derive(Args, Debug)]
pub struct DumpArgs {
    /// The journal file (for example DIR/journal.lkj written by `lockstep run`).
    #[arg(long, value_name = "FILE")]
    pub journal: PathBuf,
    /// The first seq to print (default: the journal's first).
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// How many records to print.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub count: u64,
    /// Print JSON lines: a header object, one object per record, an end object.
    #[arg(long)]
    pub json: bool,
}

/// Days since 1970-01-01 to a (year, month, day) of the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// Nanoseconds since the Unix epoch as UTC ISO-8601 with nanoseconds.
pub fn iso8601_utc(timestamp_ns: u64) -> String {
    let seconds = timestamp_ns / 1_000_000_000;
    let nanos = timestamp_ns % 1_000_000_000;
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let second_of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

fn token_text(token: Token) -> String {
    match token.to_u64() {
        Some(value) => value.to_string(),
        None => format!("0x{:028x}", token.value()),
    }
}

fn token_json(token: Token) -> serde_json::Value {
    match token.to_u64() {
        Some(value) => value.into(),
        None => format!("0x{:028x}", token.value()).into(),
    }
}

/// The name `dump` gives a command kind: the same as the kind field of that
/// command's own records.
fn command_kind_name(kind: CommandKind) -> &'static str {
    match kind {
        CommandKind::New => "new",
        CommandKind::Cancel => "cancel",
        CommandKind::Replace => "replace",
        CommandKind::Halt => "halt",
        CommandKind::Resume => "resume",
        CommandKind::SetSelfTradePrevention => "set_self_trade_prevention",
        CommandKind::CancelAllForSession => "cancel_all_for_session",
    }
}

fn stp_mode_name(mode: StpMode) -> &'static str {
    match mode {
        StpMode::Off => "off",
        StpMode::CancelResting => "cancel_resting",
        StpMode::CancelIncoming => "cancel_incoming",
        StpMode::CancelBoth => "cancel_both",
    }
}

/// The command's kind and fields as JSON members (kind first).
fn command_json(command: &Command) -> serde_json::Map<String, serde_json::Value> {
    let value = match command {
        Command::New(order) => serde_json::json!({
            "kind": "new",
            "session": order.session.0,
            "account": order.account.0,
            "instrument": order.instrument.0,
            "side": side_name(order.side),
            "order_type": order_type_name(order.order_type),
            "time_in_force": time_in_force_name(order.time_in_force),
            "post_only": order.post_only,
            "token": token_json(order.token),
            "price": order.price,
            "qty": order.qty,
            "client_tag": order.client_tag,
        }),
        Command::Cancel(cancel) => serde_json::json!({
            "kind": "cancel",
            "session": cancel.session.0,
            "token": token_json(cancel.token),
            "qty_after": cancel.qty_after,
        }),
        Command::Replace(replace) => serde_json::json!({
            "kind": "replace",
            "session": replace.session.0,
            "token": token_json(replace.token),
            "new_token": token_json(replace.new_token),
            "price": replace.price,
            "qty": replace.qty,
        }),
        Command::Halt { instrument } => serde_json::json!({
            "kind": "halt",
            "instrument": instrument.0,
        }),
        Command::Resume { instrument } => serde_json::json!({
            "kind": "resume",
            "instrument": instrument.0,
        }),
        Command::SetSelfTradePrevention { account, mode } => serde_json::json!({
            "kind": "set_self_trade_prevention",
            "account": account.0,
            "mode": stp_mode_name(*mode),
        }),
        Command::CancelAllForSession { session } => serde_json::json!({
            "kind": "cancel_all_for_session",
            "session": session.0,
        }),
        Command::Reject {
            session,
            token,
            command,
            reason,
        } => serde_json::json!({
            "kind": "reject",
            "session": session.0,
            "token": token_json(*token),
            "command": command_kind_name(*command),
            "reason": reason.name(),
        }),
    };
    match value {
        serde_json::Value::Object(members) => members,
        _ => serde_json::Map::new(),
    }
}

/// The command's kind and fields as text.
fn command_text(command: &Command) -> String {
    match command {
        Command::New(order) => format!(
            "new session={} account={} instrument={} side={} type={} tif={} post_only={} token={} price={} qty={} client_tag={}",
            order.session.0,
            order.account.0,
            order.instrument.0,
            side_name(order.side),
            order_type_name(order.order_type),
            time_in_force_name(order.time_in_force),
            order.post_only,
            token_text(order.token),
            order.price,
            order.qty,
            order.client_tag
        ),
        Command::Cancel(cancel) => format!(
            "cancel session={} token={} qty_after={}",
            cancel.session.0,
            token_text(cancel.token),
            cancel.qty_after
        ),
        Command::Replace(replace) => format!(
            "replace session={} token={} new_token={} price={} qty={}",
            replace.session.0,
            token_text(replace.token),
            token_text(replace.new_token),
            replace.price,
            replace.qty
        ),
        Command::Halt { instrument } => format!("halt instrument={}", instrument.0),
        Command::Resume { instrument } => format!("resume instrument={}", instrument.0),
        Command::SetSelfTradePrevention { account, mode } => format!(
            "set_self_trade_prevention account={} mode={}",
            account.0,
            stp_mode_name(*mode)
        ),
        Command::CancelAllForSession { session } => {
            format!("cancel_all_for_session session={}", session.0)
        }
        Command::Reject {
            session,
            token,
            command,
            reason,
        } => format!(
            "reject session={} token={} command={} reason={}",
            session.0,
            token_text(*token),
            command_kind_name(*command),
            reason.name()
        ),
    }
}

/// Where the record of `seq` starts in a journal whose first seq is `first_seq`.
fn record_offset(first_seq: u64, seq: u64) -> u64 {
    HEADER_SIZE_BYTES as u64 + (seq - first_seq) * RECORD_SIZE_BYTES as u64
}

fn record_line(record: &SequencedCommand, offset_bytes: u64, json: bool) -> String {
    if json {
        let mut members = serde_json::Map::new();
        members.insert("type".to_string(), "record".into());
        members.insert("seq".to_string(), record.seq.into());
        members.insert("offset_bytes".to_string(), offset_bytes.into());
        members.insert("timestamp_ns".to_string(), record.timestamp_ns.into());
        members.insert(
            "timestamp".to_string(),
            iso8601_utc(record.timestamp_ns).into(),
        );
        members.extend(command_json(&record.command));
        format!("{}\n", serde_json::Value::Object(members))
    } else {
        format!(
            "seq={} offset={offset_bytes} ts_ns={} ts={} {}\n",
            record.seq,
            record.timestamp_ns,
            iso8601_utc(record.timestamp_ns),
            command_text(&record.command)
        )
    }
}

pub fn run(args: &DumpArgs) -> Result<String, String> {
    let mut reader = journal_file::open(&args.journal)?;
    let first_seq = reader.header().map(|header| header.first_seq);
    let file_len_bytes = reader.file_len_bytes();
    let mut out = if args.json {
        format!(
            "{}\n",
            serde_json::json!({
                "type": "header",
                "journal": args.journal.display().to_string(),
                "format_version": first_seq.map(|_| FORMAT_VERSION),
                "first_seq": first_seq,
                "file_len_bytes": file_len_bytes,
            })
        )
    } else {
        match first_seq {
            Some(first_seq) => format!(
                "journal {}: format version {FORMAT_VERSION}, first seq {first_seq}, {file_len_bytes} bytes\n",
                args.journal.display()
            ),
            None => format!(
                "journal {}: no header (an empty journal), {file_len_bytes} bytes\n",
                args.journal.display()
            ),
        }
    };
    let from = args.from.unwrap_or(0);
    let mut shown = 0u64;
    let mut shown_first = None;
    let mut last_seq = None;
    let mut reached_end = true;
    if args.count > 0 {
        for record in reader.by_ref() {
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    print_before_failing(&out);
                    return Err(format!("{}: {error}", args.journal.display()));
                }
            };
            last_seq = Some(record.seq);
            if record.seq < from {
                continue;
            }
            let offset_bytes = record_offset(first_seq.unwrap_or(record.seq), record.seq);
            out.push_str(&record_line(&record, offset_bytes, args.json));
            shown_first.get_or_insert(record.seq);
            shown += 1;
            if shown == args.count {
                reached_end = false;
                break;
            }
        }
    } else {
        reached_end = false;
    }
    let torn_tail = if reached_end {
        reader.torn_tail()
    } else {
        None
    };
    if args.json {
        out.push_str(&format!(
            "{}\n",
            serde_json::json!({
                "type": "end",
                "shown": shown,
                "reached_end": reached_end,
                "last_seq": if reached_end { last_seq } else { None },
                "torn_tail": journal_file::torn_tail_json(torn_tail),
            })
        ));
    } else {
        let range = match (shown_first, shown) {
            (Some(first), count) if count > 0 => {
                format!(", seq {first}..={}", first + count - 1)
            }
            _ => String::new(),
        };
        out.push_str(&format!("shown {shown} records{range}"));
        if reached_end {
            let end =
                last_seq.map_or_else(|| "no records".to_string(), |seq| format!("last seq {seq}"));
            out.push_str(&format!(
                "; end of journal: {end}; torn tail: {}",
                journal_file::torn_tail_text(torn_tail)
            ));
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_utc_iso8601() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            iso8601_utc(1_700_000_000_000_000_000),
            "2023-11-14T22:13:20.000000000Z"
        );
        // A leap day and the last nanosecond of a day.
        assert_eq!(
            iso8601_utc(951_868_799_999_999_999),
            "2000-02-29T23:59:59.999999999Z"
        );
        assert_eq!(iso8601_utc(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn the_gateway_commands_and_fields_are_printed() {
        use lockstep_engine::{
            AccountId, CancelOrder, InstrumentId, NewOrder, OrderType, RejectReason, SessionId,
            Side, TimeInForce,
        };
        let new = Command::New(NewOrder {
            session: SessionId(1),
            account: AccountId(2),
            token: Token::from_u64(3),
            instrument: InstrumentId(0),
            side: Side::Buy,
            order_type: OrderType::Limit,
            price: 100,
            qty: 5,
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            client_tag: 513,
        });
        assert!(command_text(&new).ends_with(" qty=5 client_tag=513"));
        assert_eq!(command_json(&new)["client_tag"], 513);
        let cancel = Command::Cancel(CancelOrder {
            session: SessionId(1),
            token: Token::from_u64(3),
            qty_after: 2,
        });
        assert_eq!(
            command_text(&cancel),
            "cancel session=1 token=3 qty_after=2"
        );
        assert_eq!(command_json(&cancel)["qty_after"], 2);
        let cancel_all = Command::CancelAllForSession {
            session: SessionId(4),
        };
        assert_eq!(
            command_text(&cancel_all),
            "cancel_all_for_session session=4"
        );
        assert_eq!(command_json(&cancel_all)["kind"], "cancel_all_for_session");
        let reject = Command::Reject {
            session: SessionId(1),
            token: Token::from_u64(9),
            command: CommandKind::Replace,
            reason: RejectReason::MessageRateExceeded,
        };
        assert_eq!(
            command_text(&reject),
            "reject session=1 token=9 command=replace reason=message_rate_exceeded"
        );
        let json = command_json(&reject);
        assert_eq!(json["kind"], "reject");
        assert_eq!(json["command"], "replace");
        assert_eq!(json["reason"], "message_rate_exceeded");
        assert_eq!(json["token"], 9);
    }

    #[test]
    fn tokens_show_as_integers_when_they_fit_else_hex() {
        assert_eq!(token_text(Token::from_u64(1001)), "1001");
        let wide = Token::from_bytes(*b"ORDER000000001");
        assert_eq!(token_text(wide), "0x4f52444552303030303030303031");
    }
}
