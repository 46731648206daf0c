//! The plan and the reference of `lockstep bench --replay` (see
//! [`crate::replay`]): which gateway session replays each session of the
//! input, the OUCH message each order command becomes, and what the server
//! must do with them. [`build_plan`] passes every message's bytes through the
//! gateway's own [`OuchAdapter::translate`] and token rules, applies the
//! resulting commands in one [`Engine`] on the server's engine configuration
//! (its final state hash is the reference) and runs the events through the
//! gateway's [`OuchPublisher`], which says, for every sequenced message each
//! session will receive, which command caused it.

use crate::load::InProcessServer;
use crate::replay::{ReplyCounts, Speed};
use crate::replay_source::{
    encode_token, InputFormat, LoadedInput, Origin, SourceCommand, TokenMap, OUCH_TOKEN_LEN,
};
use lockstep_engine::{
    AccountId, Command, CommandKind, Engine, Event, InstrumentId, OrderType, RejectReason,
    SessionId, Side, TimeInForce, Token,
};
use lockstep_transport::event_inbox::PublishedEvent;
use lockstep_transport::gateway_config::SessionConfig;
use lockstep_transport::ouch::{self, Inbound, Outbound, Stock};
use lockstep_transport::ouch_adapter::{OuchAdapter, SessionContext, Translation};
use lockstep_transport::ouch_publisher::OuchPublisher;
use std::collections::{BTreeMap, HashSet};

/// The most sessions one input may use (usernames `rp1`..`rp999`).
pub const REPLAY_SESSIONS_MAX: usize = 999;
/// The highest account an input may name: the engine allocates a table of
/// accounts up to it in every replica.
pub const REPLAY_ACCOUNT_MAX: u32 = 1 << 16;

/// One session of the replay: the input's session id and the gateway
/// session (and login) it is replayed on.
#[derive(Clone, Debug)]
pub(crate) struct ReplaySession {
    pub(crate) input_session: SessionId,
    pub(crate) config: SessionConfig,
}

/// One message to send.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planned {
    /// Index into the replay's sessions.
    pub(crate) session: u16,
    pub(crate) message: Inbound,
    /// When to send it, ns after the start (paced replays only).
    pub(crate) offset_ns: Option<u64>,
}

/// What to send, and what the reference says will come of it.
pub(crate) struct Plan {
    pub(crate) sessions: Vec<ReplaySession>,
    pub(crate) messages: Vec<Planned>,
    /// Per session: for each sequenced message it will receive, in order,
    /// the index of the planned message that causes it.
    pub(crate) owners: Vec<Vec<u32>>,
    /// Per session: the digest of the messages it will receive.
    pub(crate) digests: Vec<Digest>,
    pub(crate) expected: ReplyCounts,
    /// The reference's rejects by reason, indexed by the reason's code.
    pub(crate) rejects_by_code: Vec<u64>,
    pub(crate) reference_hash: u64,
    pub(crate) skipped_not_ouch: u64,
    pub(crate) skipped_duplicate_token: u64,
    /// Tokens entered or replaced into, per session: sizes the gateway's
    /// token table.
    pub(crate) tokens_max: usize,
}

/// FNV-1a over a session's messages, each with its length in front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Digest(u64);

impl Digest {
    pub(crate) const START: Digest = Digest(0xcbf2_9ce4_8422_2325);

    pub(crate) fn add(&mut self, message: &Outbound, scratch: &mut Vec<u8>) {
        scratch.clear();
        without_timestamp(message).encode(scratch);
        let len = scratch.len() as u64;
        for &byte in len.to_le_bytes().iter().chain(scratch.iter()) {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The message with its timestamp zeroed: the server stamps messages by
/// its clock, the reference cannot.
fn without_timestamp(message: &Outbound) -> Outbound {
    let mut copy = *message;
    match &mut copy {
        Outbound::SystemEvent(inner) => inner.timestamp = 0,
        Outbound::Accepted(inner) => inner.timestamp = 0,
        Outbound::Replaced(inner) => inner.timestamp = 0,
        Outbound::Canceled(inner) => inner.timestamp = 0,
        Outbound::Executed(inner) => inner.timestamp = 0,
        Outbound::Rejected(inner) => inner.timestamp = 0,
    }
    copy
}

fn order_session(command: &Command) -> Option<SessionId> {
    match command {
        Command::New(order) => Some(order.session),
        Command::Cancel(cancel) => Some(cancel.session),
        Command::Replace(replace) => Some(replace.session),
        _ => None,
    }
}

/// The replay's sessions, in the order of the input's session ids, each on
/// the account of its session's first order.
fn replay_sessions(commands: &[SourceCommand]) -> Result<Vec<ReplaySession>, String> {
    // One pass: every session that sends an order command, and the account
    // (and origin) of its first new order.
    let mut first_orders: BTreeMap<SessionId, Option<(AccountId, Origin)>> = BTreeMap::new();
    for source in commands {
        let Some(session) = order_session(&source.command) else {
            continue;
        };
        let first = first_orders.entry(session).or_insert(None);
        if let (None, Command::New(order)) = (&first, &source.command) {
            *first = Some((order.account, source.origin));
        }
    }
    if first_orders.len() > REPLAY_SESSIONS_MAX {
        return Err(format!(
            "the input uses {} sessions, more than the {REPLAY_SESSIONS_MAX} a replay drives",
            first_orders.len()
        ));
    }
    let mut sessions = Vec::with_capacity(first_orders.len());
    for (index, (input_session, first_order)) in first_orders.into_iter().enumerate() {
        let account = match first_order {
            Some((account, origin)) if account.0 > REPLAY_ACCOUNT_MAX => {
                return Err(format!(
                    "{origin}: account {} is above {REPLAY_ACCOUNT_MAX}, the highest a replay \
                     configures",
                    account.0
                ))
            }
            Some((account, _)) => account,
            None => AccountId(0),
        };
        let number = index + 1;
        sessions.push(ReplaySession {
            input_session,
            config: SessionConfig {
                username: format!("rp{number}"),
                password: "replay".to_string(),
                firm: format!("R{number}"),
                account,
                // A cancel on disconnect would be one more command than the
                // input has, applied after it; the limits are lifted so a
                // real day's flow is never throttled.
                cancel_on_disconnect: false,
                open_orders_max: u32::MAX,
                messages_per_second_max: u32::MAX,
                messages_burst_max: u32::MAX,
            },
        });
    }
    Ok(sessions)
}

/// After a successful replace, the order of this session's input token
/// carries this OUCH token.
type Remap = (SessionId, Token, [u8; OUCH_TOKEN_LEN]);

/// The OUCH message of one order command, and the remapping a successful
/// replace makes; `None` if no OUCH message can say it.
fn express(
    command: &Command,
    tokens: &mut TokenMap,
    symbols: &[(Stock, InstrumentId)],
    origin: &dyn std::fmt::Display,
) -> Result<Option<(Inbound, Option<Remap>)>, String> {
    let limit_price = |price: u64| {
        u32::try_from(price)
            .ok()
            .filter(|&p| p < ouch::MARKET_PRICE)
    };
    Ok(match *command {
        Command::New(order) => {
            let price = match order.order_type {
                OrderType::Market => ouch::MARKET_PRICE,
                OrderType::Limit => match limit_price(order.price) {
                    Some(price) => price,
                    None => return Ok(None),
                },
            };
            let stock = symbols
                .iter()
                .find(|(_, id)| *id == order.instrument)
                .map(|(stock, _)| *stock)
                .ok_or_else(|| {
                    format!(
                        "{origin}: the order trades instrument {}, which the server config does \
                         not list (it has {}); give a --config with more [[instruments]]",
                        order.instrument.0,
                        symbols.len()
                    )
                })?;
            Some((
                Inbound::EnterOrder(ouch::EnterOrder {
                    token: ouch::AsciiField(tokens.current(order.session, order.token)),
                    side: match order.side {
                        Side::Buy => ouch::Side::Buy,
                        Side::Sell => ouch::Side::Sell,
                    },
                    shares: order.qty,
                    stock,
                    price,
                    time_in_force: match order.time_in_force {
                        TimeInForce::Gtc => ouch::TIF_SYSTEM_HOURS,
                        TimeInForce::Ioc | TimeInForce::Fok => ouch::TIF_IOC,
                    },
                    firm: ouch::Firm::BLANK,
                    display: if order.post_only {
                        ouch::Display::PostOnly
                    } else {
                        ouch::Display::AnonymousPriceToComply
                    },
                    capacity: ouch::Capacity::Agency,
                    intermarket_sweep: ouch::IntermarketSweep::NotEligible,
                    minimum_quantity: if order.time_in_force == TimeInForce::Fok {
                        order.qty
                    } else {
                        0
                    },
                    cross_type: ouch::CrossType::NoCross,
                    customer_type: ouch::CustomerType::PortDefault,
                }),
                None,
            ))
        }
        Command::Cancel(cancel) => Some((
            Inbound::CancelOrder(ouch::CancelOrder {
                token: ouch::AsciiField(tokens.current(cancel.session, cancel.token)),
                shares: cancel.qty_after,
            }),
            None,
        )),
        Command::Replace(replace) => {
            let Some(price) = limit_price(replace.price) else {
                return Ok(None);
            };
            // OUCH refuses a replacement token used before, so a replace
            // that keeps its token (a flow's modify) gets a fresh one.
            let replacement = if replace.new_token == replace.token {
                tokens.fresh()
            } else {
                encode_token(replace.new_token)
                    .expect("every input token was checked by TokenMap::new")
            };
            Some((
                Inbound::ReplaceOrder(ouch::ReplaceOrder {
                    existing_token: ouch::AsciiField(
                        tokens.current(replace.session, replace.token),
                    ),
                    replacement_token: ouch::AsciiField(replacement),
                    shares: replace.qty,
                    price,
                    time_in_force: ouch::TIF_SYSTEM_HOURS,
                    display: ouch::Display::AnonymousPriceToComply,
                    intermarket_sweep: ouch::IntermarketSweep::NotEligible,
                    minimum_quantity: 0,
                }),
                Some((replace.session, replace.new_token, replacement)),
            ))
        }
        _ => None,
    })
}

/// Builds the messages and the reference: every message through the
/// gateway's adapter and token rules, into one engine on the server's
/// engine configuration, and its events through the gateway's publisher.
pub(crate) fn build_plan(
    input: &LoadedInput,
    server: &mut InProcessServer,
    speed: Speed,
) -> Result<Plan, String> {
    let sessions = replay_sessions(&input.commands)?;
    if sessions.is_empty() {
        return Err(format!(
            "{}: nothing to replay: no new order, cancel or replace in {} commands",
            input.path.display(),
            input.commands.len()
        ));
    }
    if let Speed::Factor(_) = speed {
        if input.format == InputFormat::FlowCsv {
            return Err(format!(
                "{}: a flow CSV v1 has no time column, so it cannot be paced; use --speed max",
                input.path.display()
            ));
        }
    }
    // The server: the replay's sessions, and room in every table for them.
    let max_account = sessions
        .iter()
        .map(|s| s.config.account.0)
        .max()
        .unwrap_or(0);
    let engine = &mut server.system.engine;
    engine.sessions_max = engine.sessions_max.max(sessions.len().max(1) as u16);
    engine.accounts_max = engine.accounts_max.max(max_account + 1);
    let gateway = &mut server.gateway;
    gateway.sessions = sessions.iter().map(|s| s.config.clone()).collect();
    gateway.connections_max = gateway.connections_max.max(sessions.len() + 8);
    // As the gateway builds its adapter and publisher (gateway_core.rs).
    let symbols = gateway.stock_symbols();
    let adapter = OuchAdapter::new(symbols.clone());
    let symbol_by_instrument = gateway.symbol_by_instrument();
    let firms = sessions
        .iter()
        .map(|s| ouch::Firm::left(&s.config.firm).unwrap_or(ouch::Firm::BLANK))
        .collect();
    let mut publisher = OuchPublisher::new(symbol_by_instrument, firms);
    let contexts: Vec<SessionContext> = sessions
        .iter()
        .enumerate()
        .map(|(index, s)| SessionContext {
            session: SessionId(index as u16),
            account: s.config.account,
            firm: ouch::Firm::left(&s.config.firm).unwrap_or(ouch::Firm::BLANK),
        })
        .collect();
    let mut engine = Engine::new(server.system.engine.clone())
        .map_err(|error| format!("the server's engine config: {error}"))?;
    let mut tokens = TokenMap::new(&input.commands)?;
    let mut used_tokens: Vec<HashSet<Token>> = vec![HashSet::new(); sessions.len()];
    let mut plan = Plan {
        owners: vec![Vec::new(); sessions.len()],
        digests: vec![Digest::START; sessions.len()],
        sessions,
        messages: Vec::with_capacity(input.commands.len()),
        expected: ReplyCounts::default(),
        // Reason codes are a u8, so 256 slots hold any code.
        rejects_by_code: vec![0; 256],
        reference_hash: 0,
        skipped_not_ouch: 0,
        skipped_duplicate_token: 0,
        tokens_max: 0,
    };
    let first_time_ns = input.commands.iter().find_map(|source| source.time_ns);
    let mut payload = Vec::with_capacity(64);
    let mut scratch = Vec::with_capacity(128);
    let mut events: Vec<Event> = Vec::with_capacity(64);
    for source in &input.commands {
        let Some(input_session) = order_session(&source.command) else {
            plan.skipped_not_ouch += 1;
            continue;
        };
        let Some((message, remap)) =
            express(&source.command, &mut tokens, &symbols, &source.origin)?
        else {
            plan.skipped_not_ouch += 1;
            continue;
        };
        let index = plan
            .sessions
            .binary_search_by_key(&input_session, |s| s.input_session)
            .map_err(|_| {
                format!(
                    "{}: session {} has no replay session",
                    source.origin, input_session.0
                )
            })?;
        payload.clear();
        message.encode(&mut payload);
        let command = match adapter.translate(&contexts[index], &payload) {
            Translation::Command(command) => command,
            Translation::Malformed(why) => {
                return Err(format!(
                    "{}: the OUCH message built for it is malformed: {why}",
                    source.origin
                ))
            }
        };
        // The gateway's own rules after the adapter (gateway_core.rs,
        // on_ouch): a reused Enter Order token is ignored, a reused
        // replacement token is rejected. The rate, open-order and token
        // table limits are configured out of the way.
        let used = &mut used_tokens[index];
        let command = match command {
            Command::New(order) if used.contains(&order.token) => {
                plan.skipped_duplicate_token += 1;
                continue;
            }
            Command::Replace(replace) if used.contains(&replace.new_token) => Command::Reject {
                session: contexts[index].session,
                token: replace.token,
                command: CommandKind::Replace,
                reason: RejectReason::DuplicateToken,
            },
            other => other,
        };
        match command {
            Command::New(order) => {
                used.insert(order.token);
            }
            Command::Replace(replace) => {
                used.insert(replace.new_token);
            }
            _ => {}
        }
        plan.tokens_max = plan.tokens_max.max(used.len());
        let message_index =
            u32::try_from(plan.messages.len()).map_err(|_| "too many commands".to_string())?;
        let seq = u64::from(message_index) + 1;
        events.clear();
        engine.apply(&command, &mut |event: &Event| events.push(*event));
        let mut replaced = false;
        for event in &events {
            replaced |= matches!(event, Event::Replaced { .. });
            if let Event::Rejected { reason, .. } = event {
                plan.rejects_by_code[*reason as usize] += 1;
            }
            let published = PublishedEvent {
                seq,
                timestamp_ns: 0,
                event: *event,
            };
            let (owners, digests, expected) =
                (&mut plan.owners, &mut plan.digests, &mut plan.expected);
            publisher.publish(
                &published,
                &mut |session: SessionId, outbound: &Outbound| {
                    let session = usize::from(session.0);
                    assert!(
                        session < owners.len(),
                        "the publisher addressed an unknown session"
                    );
                    owners[session].push(message_index);
                    digests[session].add(outbound, &mut scratch);
                    expected.count(outbound);
                },
                &mut |_, _| {},
            );
        }
        if replaced {
            if let Some((session, token, bytes)) = remap {
                tokens.remap(session, token, bytes);
            }
        }
        let offset_ns = match (speed, source.time_ns, first_time_ns) {
            (Speed::Factor(factor), Some(time_ns), Some(first_ns)) => {
                Some((time_ns.saturating_sub(first_ns) as f64 / factor) as u64)
            }
            _ => None,
        };
        plan.messages.push(Planned {
            session: index as u16,
            message,
            offset_ns,
        });
    }
    plan.reference_hash = engine.state_hash();
    let gateway = &mut server.gateway;
    gateway.session_tokens_max = gateway.session_tokens_max.max(plan.tokens_max + 1);
    let messages_max = plan.owners.iter().map(Vec::len).max().unwrap_or(0);
    gateway.output_log_messages_max = gateway.output_log_messages_max.max(messages_max + 1);
    Ok(plan)
}
