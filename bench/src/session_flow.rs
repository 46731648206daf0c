//! What one `lockstep bench` session sends, and how the replies are matched
//! to it. [`SessionFlow`] generates a deterministic (seeded) order flow for
//! one instrument: resting GTC limit orders a few cents either side of a
//! fixed mid price, IOC orders that cross the spread and take liquidity from
//! the other sessions, and cancels of the session's oldest resting orders,
//! forced once it has [`FlowConfig::resting_max`] of them, so the book stays
//! bounded. Each order's token is the run's 6-character prefix and the
//! order's index in base 36, so a reply is matched to its order without a
//! lookup table; the prefix makes tokens unique across runs against one
//! external server (OUCH ignores a reused token). [`Recorder`] takes each
//! answer's latency, from the message's intended send time, into the run's
//! histograms when the message was sent inside the measured window.

use crate::generate::SplitMix64;
use crate::latency::{new_latency_histogram, record_latency};
use hdrhistogram::Histogram;
use lockstep_transport::ouch::{
    self, CancelReason, Capacity, CrossType, CustomerType, Display, IntermarketSweep,
    LiquidityFlag, OrderState, Outbound, Side, Stock, Token,
};
use std::collections::VecDeque;

/// Which flow a session sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowKind {
    /// Resting orders, crossing IOC orders and cancels (per mille below):
    /// trades, fills and cancels, with a bounded book.
    Matching,
    /// Resting Enter Orders only, one reply each: the echo baseline's flow
    /// (the echo answers every order with a dead Accepted). Against
    /// Lockstep it would only grow the book.
    EnterOnly,
}

/// Per mille of messages that cancel a resting order (when there is one).
pub const CANCEL_PER_MILLE: u64 = 250;
/// Per mille of messages that are IOC orders crossing the spread.
pub const CROSSING_PER_MILLE: u64 = 200;

/// The instrument and prices of the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    pub kind: FlowKind,
    /// The OUCH stock symbol (AMZN by default).
    pub symbol: String,
    /// The mid price, in OUCH units ($0.0001).
    pub mid_price: u32,
    /// The distance between the flow's price levels, in OUCH units.
    pub price_step: u32,
    /// Resting orders a session keeps at most; one more forces a cancel.
    pub resting_max: u32,
}

impl Default for FlowConfig {
    /// AMZN around $100.00 in one-cent steps, at most 500 resting orders a
    /// session.
    fn default() -> FlowConfig {
        FlowConfig {
            kind: FlowKind::Matching,
            symbol: "AMZN".to_string(),
            mid_price: 1_000_000,
            price_step: 100,
            resting_max: 500,
        }
    }
}

/// A message the flow wants sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing {
    Enter(ouch::EnterOrder),
    Cancel(ouch::CancelOrder),
}

/// What happened over a run, over every session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounts {
    pub enters_sent: u64,
    pub iocs_sent: u64,
    pub cancels_sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub executions: u64,
    pub taker_executions: u64,
    pub canceled_by_request: u64,
    pub canceled_ioc_remainder: u64,
    pub canceled_self_match: u64,
    pub canceled_other: u64,
    pub cancel_rejected: u64,
    /// Replies whose token is not one of this run's orders, or that fit no
    /// message in flight.
    pub unmatched_replies: u64,
    /// Messages sent inside the measured window, and how many were answered.
    pub measured_sent: u64,
    pub measured_answered: u64,
}

/// The run's histograms and counts, shared by every session.
pub struct Recorder {
    /// Enter Order to its Accepted (or Rejected).
    pub accepted: Histogram<u64>,
    /// Enter Order to its first Executed as the taker (liquidity removed).
    pub executed: Histogram<u64>,
    /// Cancel Order to its Canceled.
    pub canceled: Histogram<u64>,
    /// How late the driver queued each message after its intended time.
    pub send_lag: Histogram<u64>,
    pub counts: FlowCounts,
    /// When the last answer to a measured message arrived (ns from start).
    pub last_measured_answer_ns: u64,
    /// With a replica kill: Enter Order to Accepted of the measured orders
    /// intended inside the kill window, and of those outside it.
    pub accepted_kill_window: Histogram<u64>,
    pub accepted_steady: Histogram<u64>,
    window_start_ns: u64,
    window_end_ns: u64,
    kill_window_ns: Option<(u64, u64)>,
    /// How many Executed messages carried each match number (index), over
    /// every session of the run: both sides of a trade are the run's own
    /// sessions, so each number from 1 up must be seen exactly twice.
    match_sides: Vec<u8>,
}

/// What the match numbers seen over a run say about gaps and duplicates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatchAudit {
    /// The highest match number seen (engine match numbers start at 1).
    pub match_number_max: u64,
    /// Sides missing: numbers up to the highest seen fewer than twice.
    pub sides_missing: u64,
    /// Sides too many: numbers seen more than twice.
    pub sides_duplicated: u64,
}

impl Recorder {
    /// Messages intended for `window_start_ns..window_end_ns` are measured.
    pub fn new(window_start_ns: u64, window_end_ns: u64) -> Recorder {
        Recorder {
            accepted: new_latency_histogram(),
            executed: new_latency_histogram(),
            canceled: new_latency_histogram(),
            send_lag: new_latency_histogram(),
            counts: FlowCounts::default(),
            last_measured_answer_ns: 0,
            accepted_kill_window: new_latency_histogram(),
            accepted_steady: new_latency_histogram(),
            window_start_ns,
            window_end_ns,
            kill_window_ns: None,
            match_sides: Vec::new(),
        }
    }

    /// Splits the Accepted latencies of measured orders into those intended
    /// inside `start_ns..end_ns` (around a replica kill) and the rest.
    pub fn set_kill_window(&mut self, start_ns: u64, end_ns: u64) {
        assert!(start_ns < end_ns, "an empty kill window");
        self.kill_window_ns = Some((start_ns, end_ns));
    }

    fn record_accepted(&mut self, intended_ns: u64, arrival_ns: u64) {
        let latency = arrival_ns.saturating_sub(intended_ns);
        record_latency(&mut self.accepted, latency);
        if let Some((start_ns, end_ns)) = self.kill_window_ns {
            if (start_ns..end_ns).contains(&intended_ns) {
                record_latency(&mut self.accepted_kill_window, latency);
            } else {
                record_latency(&mut self.accepted_steady, latency);
            }
        }
    }

    /// One Executed message carried `match_number`.
    fn note_match(&mut self, match_number: u64) {
        // A match number past every message the run may send is itself a
        // fault; it is counted as a duplicate side rather than grown into.
        let Some(index) = usize::try_from(match_number)
            .ok()
            .filter(|&index| index as u64 <= 2 * crate::driver::MESSAGES_PER_RUN_MAX)
        else {
            self.counts.unmatched_replies += 1;
            return;
        };
        if self.match_sides.len() <= index {
            self.match_sides.resize(index + 1, 0);
        }
        self.match_sides[index] = self.match_sides[index].saturating_add(1);
    }

    /// Gaps and duplicates in the match numbers seen so far.
    pub fn match_audit(&self) -> MatchAudit {
        let mut audit = MatchAudit {
            match_number_max: self.match_sides.len().saturating_sub(1) as u64,
            ..MatchAudit::default()
        };
        // Number 0 is never a match number: a side seen there is extra.
        audit.sides_duplicated += u64::from(self.match_sides.first().copied().unwrap_or(0));
        for &sides in self.match_sides.iter().skip(1) {
            audit.sides_missing += u64::from(2u8.saturating_sub(sides));
            audit.sides_duplicated += u64::from(sides.saturating_sub(2));
        }
        audit
    }

    pub fn is_measured(&self, intended_ns: u64) -> bool {
        (self.window_start_ns..self.window_end_ns).contains(&intended_ns)
    }

    /// A message intended at `intended_ns` was queued at `queued_ns`.
    pub fn sent(&mut self, intended_ns: u64, queued_ns: u64) {
        if self.is_measured(intended_ns) {
            self.counts.measured_sent += 1;
            record_latency(&mut self.send_lag, queued_ns.saturating_sub(intended_ns));
        }
    }

    fn answered(&mut self, measured: bool, arrival_ns: u64) {
        if measured {
            self.counts.measured_answered += 1;
            self.last_measured_answer_ns = self.last_measured_answer_ns.max(arrival_ns);
        }
    }
}

const ACCEPTED: u8 = 1;
const DEAD: u8 = 2;
const TAKER_SEEN: u8 = 4;
const CANCEL_PENDING: u8 = 8;
const IOC: u8 = 16;
const MEASURED: u8 = 32;
const CANCEL_MEASURED: u8 = 64;

/// One order of the session, indexed by the number in its token.
#[derive(Clone, Copy, Debug)]
struct OrderRecord {
    intended_ns: u64,
    cancel_intended_ns: u64,
    remaining: u32,
    flags: u8,
}

/// Base-36 digits of a token's order number.
const TOKEN_DIGITS: usize = 8;
/// Characters of a token's run prefix.
pub const TOKEN_PREFIX_LEN: usize = 6;
const BASE36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A run prefix for tokens: `seed` in base 36, six characters.
pub fn token_prefix(seed: u64) -> [u8; TOKEN_PREFIX_LEN] {
    let mut prefix = [b'0'; TOKEN_PREFIX_LEN];
    let mut rest = seed;
    for slot in prefix.iter_mut().rev() {
        *slot = BASE36[(rest % 36) as usize];
        rest /= 36;
    }
    prefix
}

/// One session's order flow and its orders in flight.
pub struct SessionFlow {
    config: FlowConfig,
    stock: Stock,
    prefix: [u8; TOKEN_PREFIX_LEN],
    rng: SplitMix64,
    orders: Vec<OrderRecord>,
    /// Accepted resting orders, oldest first; dead ones are skipped lazily.
    resting: VecDeque<u32>,
    /// Messages sent and not yet answered.
    pub pending_answers: u64,
}

impl SessionFlow {
    pub fn new(
        config: &FlowConfig,
        prefix: [u8; TOKEN_PREFIX_LEN],
        seed: u64,
    ) -> Result<SessionFlow, String> {
        let stock = Stock::left(&config.symbol)
            .ok_or_else(|| format!("'{}' is not an OUCH stock symbol", config.symbol))?;
        if config.price_step == 0 || config.mid_price <= 20 * config.price_step {
            return Err("the flow's mid price must exceed 20 price steps".to_string());
        }
        Ok(SessionFlow {
            config: config.clone(),
            stock,
            prefix,
            rng: SplitMix64::new(seed),
            orders: Vec::new(),
            resting: VecDeque::new(),
            pending_answers: 0,
        })
    }

    fn token(&self, index: u32) -> Token {
        let mut bytes = [b'0'; 14];
        bytes[..TOKEN_PREFIX_LEN].copy_from_slice(&self.prefix);
        let mut rest = index;
        for slot in bytes[TOKEN_PREFIX_LEN..].iter_mut().rev() {
            *slot = BASE36[(rest % 36) as usize];
            rest /= 36;
        }
        ouch::AsciiField(bytes)
    }

    fn index_of(&self, token: &Token) -> Option<usize> {
        let (prefix, digits) = token.0.split_at(TOKEN_PREFIX_LEN);
        if prefix != self.prefix || digits.len() != TOKEN_DIGITS {
            return None;
        }
        let mut index: u64 = 0;
        for &digit in digits {
            let value = BASE36.iter().position(|&b| b == digit)?;
            index = index * 36 + value as u64;
        }
        usize::try_from(index)
            .ok()
            .filter(|&index| index < self.orders.len())
    }

    /// The oldest resting order that is live and not being canceled.
    fn cancel_candidate(&mut self) -> Option<u32> {
        while let Some(index) = self.resting.pop_front() {
            let flags = self.orders[index as usize].flags;
            if flags & (DEAD | CANCEL_PENDING) == 0 {
                return Some(index);
            }
        }
        None
    }

    /// The next message, intended for `intended_ns`, registered as in flight.
    pub fn next_message(&mut self, intended_ns: u64, recorder: &mut Recorder) -> Outgoing {
        let measured = recorder.is_measured(intended_ns);
        self.pending_answers += 1;
        if self.config.kind == FlowKind::Matching {
            let roll = self.rng.below(1000);
            let forced = self.resting.len() >= self.config.resting_max as usize;
            if forced || roll < CANCEL_PER_MILLE {
                if let Some(index) = self.cancel_candidate() {
                    let record = &mut self.orders[index as usize];
                    record.flags |= CANCEL_PENDING;
                    if measured {
                        record.flags |= CANCEL_MEASURED;
                    }
                    record.cancel_intended_ns = intended_ns;
                    recorder.counts.cancels_sent += 1;
                    return Outgoing::Cancel(ouch::CancelOrder {
                        token: self.token(index),
                        shares: 0,
                    });
                }
            }
            if (CANCEL_PER_MILLE..CANCEL_PER_MILLE + CROSSING_PER_MILLE).contains(&roll) {
                return self.enter(intended_ns, measured, true, recorder);
            }
        }
        self.enter(intended_ns, measured, false, recorder)
    }

    fn enter(
        &mut self,
        intended_ns: u64,
        measured: bool,
        crossing: bool,
        recorder: &mut Recorder,
    ) -> Outgoing {
        let buy = self.rng.coin();
        let step = self.config.price_step;
        let mid = self.config.mid_price;
        let (levels, lots) = if crossing {
            (3, 1 + self.rng.below(3) as u32)
        } else {
            (1 + self.rng.below(10) as u32, 1 + self.rng.below(5) as u32)
        };
        // Resting orders sit 1 to 10 steps on their own side; a crossing
        // order reaches 3 steps into the other side.
        let price = match (buy, crossing) {
            (true, false) | (false, true) => mid - levels * step,
            (false, false) | (true, true) => mid + levels * step,
        };
        let shares = lots * 100;
        let index = u32::try_from(self.orders.len()).unwrap_or(u32::MAX);
        let mut flags = 0;
        if measured {
            flags |= MEASURED;
        }
        if crossing {
            flags |= IOC;
            recorder.counts.iocs_sent += 1;
        }
        self.orders.push(OrderRecord {
            intended_ns,
            cancel_intended_ns: 0,
            remaining: shares,
            flags,
        });
        recorder.counts.enters_sent += 1;
        Outgoing::Enter(ouch::EnterOrder {
            token: self.token(index),
            side: if buy { Side::Buy } else { Side::Sell },
            shares,
            stock: self.stock,
            price,
            time_in_force: if crossing {
                ouch::TIF_IOC
            } else {
                ouch::TIF_SYSTEM_HOURS
            },
            firm: ouch::Firm::BLANK,
            display: Display::AnonymousPriceToComply,
            capacity: Capacity::Agency,
            intermarket_sweep: IntermarketSweep::NotEligible,
            minimum_quantity: 0,
            cross_type: CrossType::NoCross,
            customer_type: CustomerType::PortDefault,
        })
    }

    /// Takes one reply that arrived at `arrival_ns`; returns how many of the
    /// session's messages in flight it answered (0 or 1).
    pub fn on_reply(&mut self, reply: &Outbound, arrival_ns: u64, recorder: &mut Recorder) -> u64 {
        let token = match reply {
            Outbound::Accepted(message) => message.token,
            Outbound::Executed(message) => message.token,
            Outbound::Canceled(message) => message.token,
            Outbound::Rejected(message) => message.token,
            Outbound::Replaced(_) => {
                recorder.counts.unmatched_replies += 1;
                return 0;
            }
            Outbound::SystemEvent(_) => return 0,
        };
        let Some(index) = self.index_of(&token) else {
            recorder.counts.unmatched_replies += 1;
            return 0;
        };
        let record = &mut self.orders[index];
        let answered = match reply {
            Outbound::Accepted(message) => {
                if record.flags & ACCEPTED != 0 {
                    recorder.counts.unmatched_replies += 1;
                    return 0;
                }
                record.flags |= ACCEPTED;
                recorder.counts.accepted += 1;
                let measured = record.flags & MEASURED != 0;
                if measured {
                    recorder.record_accepted(record.intended_ns, arrival_ns);
                }
                recorder.answered(measured, arrival_ns);
                if message.order_state == OrderState::Dead {
                    record.flags |= DEAD;
                } else if record.flags & (IOC | DEAD) == 0 {
                    self.resting.push_back(index as u32);
                }
                1
            }
            Outbound::Executed(message) => {
                recorder.counts.executions += 1;
                recorder.note_match(message.match_number);
                if message.liquidity_flag == LiquidityFlag::Removed
                    && record.flags & TAKER_SEEN == 0
                {
                    record.flags |= TAKER_SEEN;
                    recorder.counts.taker_executions += 1;
                    if record.flags & MEASURED != 0 {
                        let latency = arrival_ns.saturating_sub(record.intended_ns);
                        record_latency(&mut recorder.executed, latency);
                    }
                }
                record.remaining = record.remaining.saturating_sub(message.executed_shares);
                if record.remaining == 0 {
                    record.flags |= DEAD;
                }
                0
            }
            Outbound::Canceled(message) => {
                record.flags |= DEAD;
                match message.reason {
                    CancelReason::UserRequested if record.flags & CANCEL_PENDING != 0 => {
                        record.flags &= !CANCEL_PENDING;
                        recorder.counts.canceled_by_request += 1;
                        let measured = record.flags & CANCEL_MEASURED != 0;
                        if measured {
                            let latency = arrival_ns.saturating_sub(record.cancel_intended_ns);
                            record_latency(&mut recorder.canceled, latency);
                        }
                        recorder.answered(measured, arrival_ns);
                        1
                    }
                    CancelReason::ImmediateOrCancel => {
                        recorder.counts.canceled_ioc_remainder += 1;
                        0
                    }
                    CancelReason::SelfMatchPrevention => {
                        recorder.counts.canceled_self_match += 1;
                        0
                    }
                    _ => {
                        recorder.counts.canceled_other += 1;
                        0
                    }
                }
            }
            Outbound::Rejected(_) => {
                if record.flags & ACCEPTED == 0 {
                    record.flags |= ACCEPTED | DEAD;
                    recorder.counts.rejected += 1;
                    let measured = record.flags & MEASURED != 0;
                    if measured {
                        recorder.record_accepted(record.intended_ns, arrival_ns);
                    }
                    recorder.answered(measured, arrival_ns);
                    1
                } else if record.flags & CANCEL_PENDING != 0 {
                    record.flags &= !CANCEL_PENDING;
                    recorder.counts.cancel_rejected += 1;
                    let measured = record.flags & CANCEL_MEASURED != 0;
                    recorder.answered(measured, arrival_ns);
                    1
                } else {
                    recorder.counts.unmatched_replies += 1;
                    0
                }
            }
            Outbound::Replaced(_) | Outbound::SystemEvent(_) => 0,
        };
        self.pending_answers = self.pending_answers.saturating_sub(answered);
        answered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted_for(order: &ouch::EnterOrder, state: OrderState) -> Outbound {
        Outbound::Accepted(ouch::Accepted {
            timestamp: 0,
            token: order.token,
            side: order.side,
            shares: order.shares,
            stock: order.stock,
            price: order.price,
            time_in_force: order.time_in_force,
            firm: order.firm,
            display: order.display,
            order_reference_number: 1,
            capacity: order.capacity,
            intermarket_sweep: order.intermarket_sweep,
            minimum_quantity: 0,
            cross_type: order.cross_type,
            order_state: state,
            bbo_weight: ouch::BboWeight::Unspecified,
        })
    }

    #[test]
    fn tokens_carry_the_prefix_and_round_trip() {
        let flow = SessionFlow::new(&FlowConfig::default(), token_prefix(12345), 1).unwrap();
        let token = flow.token(36 * 36 + 5);
        assert_eq!(&token.0[..6], b"0009IX");
        assert_eq!(&token.0[6..], b"00000105");
        assert_eq!(token_prefix(36u64.pow(6) + 1), token_prefix(1));
    }

    #[test]
    fn replies_are_matched_and_timed_from_the_intended_time() {
        let mut recorder = Recorder::new(0, 1_000_000);
        let mut flow = SessionFlow::new(&FlowConfig::default(), token_prefix(7), 3).unwrap();
        let mut answered = 0;
        let mut sent = 0;
        for step in 0..200u64 {
            let message = flow.next_message(step * 1_000, &mut recorder);
            sent += 1;
            let reply = match message {
                Outgoing::Enter(order) => accepted_for(&order, OrderState::Live),
                Outgoing::Cancel(cancel) => Outbound::Canceled(ouch::Canceled {
                    timestamp: 0,
                    token: cancel.token,
                    decrement_shares: 100,
                    reason: CancelReason::UserRequested,
                }),
            };
            answered += flow.on_reply(&reply, step * 1_000 + 500, &mut recorder);
        }
        assert_eq!(answered, sent);
        assert_eq!(flow.pending_answers, 0);
        let counts = recorder.counts;
        assert_eq!(counts.enters_sent + counts.cancels_sent, 200);
        assert!(counts.cancels_sent > 20, "{counts:?}");
        assert!(counts.iocs_sent > 20, "{counts:?}");
        assert_eq!(counts.unmatched_replies, 0);
        assert_eq!(recorder.accepted.len(), counts.enters_sent);
        assert_eq!(
            recorder.accepted.max(),
            recorder.accepted.highest_equivalent(500)
        );
        assert_eq!(recorder.canceled.len(), counts.cancels_sent);
        assert_eq!(counts.measured_answered, 200);
    }

    #[test]
    fn a_foreign_token_is_unmatched() {
        let mut recorder = Recorder::new(0, 10);
        let mut flow = SessionFlow::new(&FlowConfig::default(), token_prefix(7), 3).unwrap();
        let Outgoing::Enter(mut order) = flow.next_message(0, &mut recorder) else {
            panic!("the first message is an order");
        };
        order.token = Token::left("SOMEONE-ELSE").unwrap();
        assert_eq!(
            flow.on_reply(&accepted_for(&order, OrderState::Live), 5, &mut recorder),
            0
        );
        assert_eq!(recorder.counts.unmatched_replies, 1);
    }

    #[test]
    fn the_book_of_a_session_stays_bounded() {
        let config = FlowConfig {
            resting_max: 10,
            ..FlowConfig::default()
        };
        let mut recorder = Recorder::new(0, u64::MAX);
        let mut flow = SessionFlow::new(&config, token_prefix(1), 9).unwrap();
        let mut live = 0i64;
        for step in 0..2_000u64 {
            match flow.next_message(step, &mut recorder) {
                Outgoing::Enter(order) => {
                    flow.on_reply(&accepted_for(&order, OrderState::Live), step, &mut recorder);
                    if order.time_in_force != ouch::TIF_IOC {
                        live += 1;
                    }
                }
                Outgoing::Cancel(cancel) => {
                    flow.on_reply(
                        &Outbound::Canceled(ouch::Canceled {
                            timestamp: 0,
                            token: cancel.token,
                            decrement_shares: 1,
                            reason: CancelReason::UserRequested,
                        }),
                        step,
                        &mut recorder,
                    );
                    live -= 1;
                }
            }
            assert!(live <= 11, "{live} live orders at step {step}");
        }
    }

    #[test]
    fn the_match_audit_finds_missing_and_duplicated_sides() {
        let mut recorder = Recorder::new(0, u64::MAX);
        assert_eq!(recorder.match_audit(), MatchAudit::default());
        // Match 1 seen by both sides, match 2 by one, match 3 three times.
        for number in [1, 1, 2, 3, 3, 3] {
            recorder.note_match(number);
        }
        assert_eq!(
            recorder.match_audit(),
            MatchAudit {
                match_number_max: 3,
                sides_missing: 1,
                sides_duplicated: 1,
            }
        );
        // A number never seen below the highest is two sides missing.
        recorder.note_match(5);
        recorder.note_match(5);
        assert_eq!(recorder.match_audit().sides_missing, 3);
    }

    #[test]
    fn the_kill_window_splits_accepted_latencies() {
        let mut recorder = Recorder::new(0, 1_000);
        recorder.set_kill_window(100, 200);
        recorder.record_accepted(50, 60);
        recorder.record_accepted(150, 400);
        recorder.record_accepted(250, 260);
        assert_eq!(recorder.accepted.len(), 3);
        assert_eq!(recorder.accepted_kill_window.len(), 1);
        assert_eq!(recorder.accepted_steady.len(), 2);
        assert!(recorder.accepted_kill_window.max() >= 249);
    }
}
