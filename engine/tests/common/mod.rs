//! A seeded generator of random but well-formed engine commands, shared by
//! the engine's integration tests. It keeps its own list of tokens it has
//! sent so that cancels and replaces usually name live orders, and mixes in
//! every order type, self-trade prevention settings and halts.

#![allow(dead_code)]

use lockstep_engine::{
    AccountId, CancelOrder, Command, CommandKind, EngineConfig, InstrumentId, InstrumentSpec,
    NewOrder, OrderType, RejectReason, ReplaceOrder, SessionId, Side, StpMode, TimeInForce, Token,
};

/// SplitMix64: tiny, seedable and the same on every machine.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

pub fn config(orders_max: u32, levels_max: u32) -> EngineConfig {
    EngineConfig {
        instruments: vec![
            InstrumentSpec {
                tick_size: 1,
                band_min: 1,
                band_max: 1_000_000,
                qty_max: 10_000,
            },
            InstrumentSpec {
                tick_size: 5,
                band_min: 5,
                band_max: 1_000_000,
                qty_max: 10_000,
            },
        ],
        instruments_max: 4,
        orders_max,
        levels_max,
        sessions_max: 4,
        accounts_max: 4,
    }
}

/// Produces commands around a mid price of 10,000 so that orders cross.
pub struct CommandSource {
    prng: Prng,
    next_token: u64,
    /// Tokens sent as GTC orders, per session; some are dead by now, which
    /// exercises unknown-order rejects.
    sent: Vec<(SessionId, Token)>,
}

impl CommandSource {
    pub fn new(seed: u64) -> CommandSource {
        CommandSource {
            prng: Prng::new(seed),
            next_token: 1,
            sent: Vec::with_capacity(1 << 20),
        }
    }

    fn price(&mut self, instrument: u32, side: Side) -> u64 {
        let offset = self.prng.below(40);
        let base: u64 = 10_000;
        let raw = match side {
            Side::Buy => base + 10 - offset,
            Side::Sell => base - 10 + offset,
        };
        if instrument == 1 {
            raw / 5 * 5
        } else {
            raw
        }
    }

    pub fn next_command(&mut self) -> Command {
        let roll = self.prng.below(1000);
        if roll < 5 {
            let instrument = InstrumentId(self.prng.below(2) as u32);
            return if self.prng.below(2) == 0 {
                Command::Halt { instrument }
            } else {
                Command::Resume { instrument }
            };
        }
        if roll < 10 {
            let modes = [
                StpMode::Off,
                StpMode::CancelResting,
                StpMode::CancelIncoming,
                StpMode::CancelBoth,
            ];
            return Command::SetSelfTradePrevention {
                account: AccountId(self.prng.below(4) as u32),
                mode: modes[self.prng.below(4) as usize],
            };
        }
        if roll < 250 && !self.sent.is_empty() {
            let index = self.prng.below(self.sent.len() as u64) as usize;
            let (session, token) = self.sent[index];
            if roll < 120 {
                self.sent.swap_remove(index);
                return Command::Cancel(CancelOrder {
                    session,
                    token,
                    qty_after: 0,
                });
            }
            let instrument = 0; // replaces keep their instrument; price it like instrument 0 and let off-tick prices reject
            let side = if self.prng.below(2) == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let new_token = if self.prng.below(4) == 0 {
                let token = Token::from_u64(self.next_token);
                self.next_token += 1;
                self.sent[index] = (session, token);
                token
            } else {
                token
            };
            return Command::Replace(ReplaceOrder {
                session,
                token,
                new_token,
                price: self.price(instrument, side),
                qty: self.prng.below(200) as u32,
            });
        }
        let instrument = self.prng.below(2) as u32;
        let side = if self.prng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let session = SessionId(self.prng.below(3) as u16);
        let token = Token::from_u64(self.next_token);
        self.next_token += 1;
        let kind = self.prng.below(100);
        let (order_type, time_in_force, post_only) = match kind {
            0..=59 => (OrderType::Limit, TimeInForce::Gtc, false),
            60..=69 => (OrderType::Limit, TimeInForce::Gtc, true),
            70..=79 => (OrderType::Limit, TimeInForce::Ioc, false),
            80..=87 => (OrderType::Limit, TimeInForce::Fok, false),
            88..=94 => (OrderType::Market, TimeInForce::Ioc, false),
            _ => (OrderType::Market, TimeInForce::Fok, false),
        };
        let price = if order_type == OrderType::Market {
            0
        } else {
            self.price(instrument, side)
        };
        if time_in_force == TimeInForce::Gtc {
            self.sent.push((session, token));
        }
        Command::New(NewOrder {
            session,
            account: AccountId(self.prng.below(3) as u32),
            token,
            instrument: InstrumentId(instrument),
            side,
            order_type,
            price,
            qty: 1 + self.prng.below(150) as u32,
            time_in_force,
            post_only,
            client_tag: 0,
        })
    }

    pub fn commands(seed: u64, count: usize) -> Vec<Command> {
        let mut source = CommandSource::new(seed);
        (0..count).map(|_| source.next_command()).collect()
    }

    /// The flow of [`CommandSource::commands`] with what it never makes mixed
    /// in: client tags on new orders, a partial cancel (reducing, or refused
    /// as not reducing) before some cancels, cancel-all of a session and
    /// gateway rejects. Kept apart from `commands` so that the flow whose
    /// hashes `determinism.rs` pins stays as it was. A cancel-all comes about
    /// once every `disconnect_every` commands: each empties a session's part
    /// of the book, so a long flow wants them rare.
    pub fn commands_of_every_kind(seed: u64, count: usize, disconnect_every: u64) -> Vec<Command> {
        let mut prng = Prng::new(seed ^ 0x0123_4567_89ab_cdef);
        let mut commands = Vec::with_capacity(count + count / 8);
        for command in CommandSource::commands(seed, count) {
            if prng.below(disconnect_every) == 0 {
                commands.push(Command::CancelAllForSession {
                    session: SessionId(prng.below(5) as u16),
                });
            }
            // In hundred-thousandths.
            let roll = prng.below(100_000);
            match command {
                _ if roll < 400 => {
                    let reasons = RejectReason::ALL;
                    let kinds = CommandKind::ALL;
                    commands.push(Command::Reject {
                        session: SessionId(prng.below(5) as u16),
                        token: Token::from_u64(prng.below(1 << 20)),
                        command: kinds[prng.below(kinds.len() as u64) as usize],
                        reason: reasons[prng.below(reasons.len() as u64) as usize],
                    });
                }
                Command::New(order) if roll < 50_000 => {
                    commands.push(Command::New(NewOrder {
                        client_tag: prng.next_u64() as u16,
                        ..order
                    }));
                    continue;
                }
                Command::Cancel(cancel) if roll < 50_000 => {
                    commands.push(Command::Cancel(CancelOrder {
                        qty_after: 1 + prng.below(150) as u32,
                        ..cancel
                    }));
                }
                _ => {}
            }
            commands.push(command);
        }
        commands
    }
}
