//! Simulated command-level clients: the commands a seed submits straight to
//! the sequencer, as a gateway would after decoding (seeds that run the real
//! gateway, see `gateway_clients.rs`, send only operator commands this way):
//! new
//! orders of every type around a drifting mid price, cancels (whole and
//! partial), replaces, cancel-all of a session, halts and resumes,
//! self-trade prevention, and gateway-decided rejects. Client faults are
//! mixed in at the command level: a command sent twice, a session that does
//! not exist, a cancel or replace of an order that never existed.

use crate::rng::SimRng;
use lockstep_engine::{
    AccountId, CancelOrder, Command, CommandKind, EngineConfig, InstrumentId, InstrumentSpec,
    NewOrder, OrderType, RejectReason, ReplaceOrder, SessionId, Side, StpMode, TimeInForce, Token,
};

/// Tokens a session remembers to cancel or replace; older ones are
/// forgotten (the orders may well be dead by then anyway).
const RECENT_TOKENS_MAX: usize = 32;
/// The mid price the books start around, in ticks.
const MID_START_TICKS: u64 = 1_000;

/// How often each client fault happens, per million commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientFaultRates {
    pub duplicate_per_million: u32,
    pub unknown_session_per_million: u32,
    pub unknown_order_per_million: u32,
}

/// Client faults made so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientFaultCounts {
    pub duplicates: u64,
    pub unknown_sessions: u64,
    pub unknown_orders: u64,
}

/// The engine configuration every simulated system runs: two instruments
/// (one with a tick of 5, so that off-tick prices happen), few sessions and
/// accounts, and small tables so that they fill up.
pub fn engine_config(rng: &mut SimRng) -> EngineConfig {
    EngineConfig {
        instruments: vec![
            InstrumentSpec {
                tick_size: 1,
                band_min: 1,
                band_max: 100_000,
                qty_max: 1_000,
            },
            InstrumentSpec {
                tick_size: 5,
                band_min: 5,
                band_max: 100_000,
                qty_max: 500,
            },
        ],
        instruments_max: 4,
        orders_max: rng.range(32, 512) as u32,
        levels_max: rng.range(16, 256) as u32,
        sessions_max: rng.range(2, 8) as u16,
        accounts_max: 8,
    }
}

/// The clients of one run. Deterministic given its generator.
pub struct Clients {
    rng: SimRng,
    sessions: u16,
    instruments: Vec<InstrumentSpec>,
    faults: ClientFaultRates,
    /// Per session: the next token number, and recently used tokens.
    next_token: Vec<u64>,
    recent: Vec<Vec<Token>>,
    mid_ticks: Vec<u64>,
    last: Option<Command>,
    pub counts: ClientFaultCounts,
}

impl Clients {
    pub fn new(rng: SimRng, config: &EngineConfig, faults: ClientFaultRates) -> Clients {
        let sessions = config.sessions_max;
        Clients {
            rng,
            sessions,
            instruments: config.instruments.clone(),
            faults,
            next_token: vec![1; sessions as usize],
            recent: vec![Vec::new(); sessions as usize],
            mid_ticks: vec![MID_START_TICKS; config.instruments.len()],
            last: None,
            counts: ClientFaultCounts::default(),
        }
    }

    /// The next command a client sends.
    pub fn next_command(&mut self) -> Command {
        if let Some(last) = self.last {
            if self.rng.chance(self.faults.duplicate_per_million) {
                self.counts.duplicates += 1;
                return last;
            }
        }
        let command = self.fresh_command();
        self.last = Some(command);
        command
    }

    /// A halt or a resume of a random instrument; resumes outnumber halts,
    /// so instruments are mostly open.
    fn halt_or_resume(&mut self) -> Command {
        let instrument = self.instrument();
        if self.rng.below(3) == 0 {
            Command::Halt { instrument }
        } else {
            Command::Resume { instrument }
        }
    }

    /// A self-trade prevention setting for a random account.
    fn self_trade_setting(&mut self) -> Command {
        Command::SetSelfTradePrevention {
            account: AccountId(self.rng.below(10) as u32),
            mode: *self.rng.pick(&[
                StpMode::Off,
                StpMode::CancelResting,
                StpMode::CancelIncoming,
                StpMode::CancelBoth,
            ]),
        }
    }

    /// An operator's command, for seeds whose order traffic goes through
    /// the gateway: a halt or resume, a self-trade prevention setting, or a
    /// cancel-all of a session. None carries an order token, so the
    /// gateway's day-unique token sets stay its own.
    pub fn next_operator_command(&mut self) -> Command {
        match self.rng.below(10) {
            0..=5 => self.halt_or_resume(),
            6..=8 => self.self_trade_setting(),
            _ => Command::CancelAllForSession {
                session: SessionId(self.rng.below(u64::from(self.sessions)) as u16),
            },
        }
    }

    fn session(&mut self) -> SessionId {
        if self.rng.chance(self.faults.unknown_session_per_million) {
            self.counts.unknown_sessions += 1;
            // Out of range: past sessions_max, or the admin session.
            return SessionId(if self.rng.below(2) == 0 {
                self.sessions + self.rng.below(4) as u16
            } else {
                u16::MAX
            });
        }
        SessionId(self.rng.below(u64::from(self.sessions)) as u16)
    }

    fn new_token(&mut self, session: SessionId) -> Token {
        let Some(next) = self.next_token.get_mut(session.0 as usize) else {
            return Token::from_u64(self.rng.next_u64() >> 16);
        };
        let token = Token::from_u64(*next);
        *next += 1;
        let recent = &mut self.recent[session.0 as usize];
        if recent.len() == RECENT_TOKENS_MAX {
            recent.remove(0);
        }
        recent.push(token);
        token
    }

    /// A token the session used lately, or, as a client fault, one it never
    /// used.
    fn old_token(&mut self, session: SessionId) -> Token {
        let recent = self.recent.get(session.0 as usize);
        match recent {
            Some(recent)
                if !recent.is_empty()
                    && !self.rng.chance(self.faults.unknown_order_per_million) =>
            {
                *self.rng.pick(recent)
            }
            _ => {
                self.counts.unknown_orders += 1;
                Token::from_u64((1 << 40) + self.rng.below(1 << 20))
            }
        }
    }

    fn instrument(&mut self) -> InstrumentId {
        // Now and then one that does not exist.
        if self.rng.below(200) == 0 {
            return InstrumentId(self.instruments.len() as u32 + self.rng.below(3) as u32);
        }
        InstrumentId(self.rng.below(self.instruments.len() as u64) as u32)
    }

    /// A price near the instrument's mid, mostly on its tick; the mid drifts.
    fn price(&mut self, instrument: InstrumentId, side: Side) -> u64 {
        let Some(spec) = self.instruments.get(instrument.0 as usize).copied() else {
            return 100;
        };
        let mid = &mut self.mid_ticks[instrument.0 as usize];
        *mid = (*mid + self.rng.below(3)).saturating_sub(1).max(50);
        let spread = self.rng.below(12);
        let ticks = match side {
            Side::Buy => mid.saturating_sub(spread).max(1),
            Side::Sell => *mid + spread,
        };
        let price = ticks * spec.tick_size;
        if self.rng.below(50) == 0 {
            price + 1
        } else {
            price
        }
    }

    fn fresh_command(&mut self) -> Command {
        let roll = self.rng.below(100);
        match roll {
            0..=54 => self.new_order(),
            55..=74 => {
                let session = self.session();
                let token = self.old_token(session);
                let qty_after = if self.rng.below(5) == 0 {
                    self.rng.range(1, 40) as u32
                } else {
                    0
                };
                Command::Cancel(CancelOrder {
                    session,
                    token,
                    qty_after,
                })
            }
            75..=85 => {
                let session = self.session();
                let token = self.old_token(session);
                let new_token = if self.rng.below(3) == 0 {
                    token
                } else {
                    self.new_token(session)
                };
                let instrument = InstrumentId(0);
                let side = if self.rng.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let price = self.price(instrument, side);
                Command::Replace(ReplaceOrder {
                    session,
                    token,
                    new_token,
                    price,
                    qty: self.rng.range(0, 60) as u32,
                })
            }
            86..=88 => Command::CancelAllForSession {
                session: self.session(),
            },
            89..=90 => self.halt_or_resume(),
            91..=93 => self.self_trade_setting(),
            _ => {
                let session = self.session();
                let token = self.new_token(session);
                Command::Reject {
                    session,
                    token,
                    command: *self.rng.pick(&CommandKind::ALL),
                    reason: *self.rng.pick(&RejectReason::ALL),
                }
            }
        }
    }

    fn new_order(&mut self) -> Command {
        let session = self.session();
        let token = self.new_token(session);
        let instrument = self.instrument();
        let side = if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let market = self.rng.below(12) == 0;
        let time_in_force = match self.rng.below(20) {
            0..=15 => TimeInForce::Gtc,
            16..=18 => TimeInForce::Ioc,
            _ => TimeInForce::Fok,
        };
        let price = if market {
            0
        } else {
            self.price(instrument, side)
        };
        Command::New(NewOrder {
            session,
            // Accounts mostly follow sessions, so self-trades happen.
            account: AccountId(if self.rng.below(4) == 0 {
                self.rng.below(9) as u32
            } else {
                u32::from(session.0) % 8
            }),
            token,
            instrument,
            side,
            order_type: if market {
                OrderType::Market
            } else {
                OrderType::Limit
            },
            price,
            qty: if self.rng.below(100) == 0 {
                0
            } else {
                self.rng.range(1, 120) as u32
            },
            time_in_force,
            post_only: self.rng.below(20) == 0,
            client_tag: self.rng.below(1 << 16) as u16,
        })
    }
}
