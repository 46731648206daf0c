//! What one simulated OUCH client sends: Enter Orders of every kind the
//! gateway maps (limit GTC, IOC, FOK, market, post-only) around a drifting
//! mid price, Cancels (whole and partial) and Replaces of its recent orders,
//! and now and then a field the gateway must reject (an unknown symbol, an
//! off-tick price, a timed order, a foreign firm, an unsupported display or
//! cross type, a cancel of a token it never used, a replacement token it
//! already used). This module only builds messages; `gateway_clients.rs`
//! frames them and puts them on the wire.

use crate::rng::SimRng;
use crate::sim_gateway::{firm, SYMBOLS, UNKNOWN_SYMBOL};
use lockstep_transport::ouch::{
    self, Capacity, CrossType, CustomerType, Display, EnterOrder, Inbound, IntermarketSweep, Stock,
    MARKET_PRICE, TIF_IOC, TIF_MARKET_HOURS, TIF_SYSTEM_HOURS,
};

/// Tokens a client remembers to cancel or replace; older ones are forgotten.
const RECENT_TOKENS_MAX: usize = 32;
/// The mid price the books start around, in ticks.
const MID_START_TICKS: u64 = 1_000;
/// The tick size of each instrument, as `client::engine_config` sets it.
const TICKS: [u64; 2] = [1, 5];

/// One client's order flow. Deterministic given the generator it is handed.
pub struct OrderFlow {
    session: usize,
    next_token: u64,
    /// Recent tokens with the instrument of their order.
    recent: Vec<(ouch::Token, usize)>,
    mid_ticks: [u64; 2],
}

impl OrderFlow {
    pub fn new(session: usize) -> OrderFlow {
        OrderFlow {
            session,
            next_token: 1,
            recent: Vec::new(),
            mid_ticks: [MID_START_TICKS; 2],
        }
    }

    /// A token this session never used: `s<session>t<number>`.
    fn new_token(&mut self, instrument: usize) -> ouch::Token {
        let text = format!("s{}t{}", self.session, self.next_token);
        self.next_token += 1;
        let token = ouch::Token::left(&text).expect("a short ASCII token");
        if self.recent.len() == RECENT_TOKENS_MAX {
            self.recent.remove(0);
        }
        self.recent.push((token, instrument));
        token
    }

    /// A recent token, or (rarely, or when there is none) one never used.
    fn old_token(&mut self, rng: &mut SimRng) -> (ouch::Token, usize) {
        if self.recent.is_empty() || rng.below(50) == 0 {
            let text = format!("never{}", rng.below(1 << 20));
            return (ouch::Token::left(&text).expect("a short ASCII token"), 0);
        }
        *rng.pick(&self.recent)
    }

    /// A price near the instrument's mid, mostly on its tick; the mid drifts.
    fn price(&mut self, rng: &mut SimRng, instrument: usize, buy: bool) -> u32 {
        let mid = &mut self.mid_ticks[instrument];
        *mid = (*mid + rng.below(3)).saturating_sub(1).max(50);
        let spread = rng.below(12);
        let ticks = if buy {
            mid.saturating_sub(spread).max(1)
        } else {
            *mid + spread
        };
        let price = ticks * TICKS[instrument];
        let price = if rng.below(50) == 0 { price + 1 } else { price };
        price as u32
    }

    /// The next message this client sends.
    pub fn next_message(&mut self, rng: &mut SimRng) -> Inbound {
        match rng.below(100) {
            0..=59 => Inbound::EnterOrder(self.enter(rng)),
            60..=81 => {
                let (token, _) = self.old_token(rng);
                let shares = if rng.below(5) == 0 {
                    rng.range(1, 40) as u32
                } else {
                    0
                };
                Inbound::CancelOrder(ouch::CancelOrder { token, shares })
            }
            _ => {
                let (existing_token, instrument) = self.old_token(rng);
                let replacement_token = if rng.below(10) == 0 {
                    existing_token
                } else {
                    self.new_token(instrument)
                };
                let buy = rng.below(2) == 0;
                let price = self.price(rng, instrument, buy);
                Inbound::ReplaceOrder(ouch::ReplaceOrder {
                    existing_token,
                    replacement_token,
                    shares: rng.range(0, 60) as u32,
                    price,
                    // Now and then IOC, which a replace may not use.
                    time_in_force: if rng.below(40) == 0 {
                        TIF_IOC
                    } else {
                        TIF_SYSTEM_HOURS
                    },
                    display: Display::AnonymousPriceToComply,
                    intermarket_sweep: IntermarketSweep::NotEligible,
                    minimum_quantity: 0,
                })
            }
        }
    }

    fn enter(&mut self, rng: &mut SimRng) -> EnterOrder {
        let instrument = rng.below(2) as usize;
        let stock = if rng.below(100) == 0 {
            UNKNOWN_SYMBOL
        } else {
            SYMBOLS[instrument]
        };
        let token = self.new_token(instrument);
        let side = match rng.below(20) {
            0..=8 => ouch::Side::Buy,
            9..=17 => ouch::Side::Sell,
            18 => ouch::Side::SellShort,
            _ => ouch::Side::SellShortExempt,
        };
        let shares = if rng.below(100) == 0 {
            0
        } else {
            rng.range(1, 120) as u32
        };
        // (time in force, minimum quantity, market)
        let (time_in_force, minimum_quantity, market) = match rng.below(40) {
            0..=27 => (*rng.pick(&[TIF_MARKET_HOURS, TIF_SYSTEM_HOURS]), 0, false),
            28..=31 => (TIF_IOC, 0, false),
            32..=33 => (TIF_IOC, shares, false),
            34..=35 => (TIF_IOC, 0, true),
            36 => (TIF_IOC, shares, true),
            37 => (TIF_MARKET_HOURS, 0, true),
            38 => (30, 0, false),
            _ => (TIF_IOC, shares / 2 + 1, false),
        };
        let price = if market {
            MARKET_PRICE
        } else {
            self.price(rng, instrument, side == ouch::Side::Buy)
        };
        let firm = match rng.below(20) {
            0..=9 => ouch::Firm::BLANK,
            10..=18 => ouch::Firm::left(&firm(self.session)).expect("a short firm"),
            _ => ouch::Firm::left("ZZZZ").expect("a short firm"),
        };
        let display = match rng.below(100) {
            0..=89 => *rng.pick(&[
                Display::AnonymousPriceToComply,
                Display::AttributablePriceToDisplay,
                Display::NonDisplay,
            ]),
            90..=97 => Display::PostOnly,
            _ => Display::MidpointPeg,
        };
        EnterOrder {
            token,
            side,
            shares,
            stock: Stock::left(stock).expect("a short symbol"),
            price,
            time_in_force,
            firm,
            display,
            capacity: *rng.pick(Capacity::ALL),
            intermarket_sweep: *rng.pick(IntermarketSweep::ALL),
            minimum_quantity,
            cross_type: if rng.below(100) == 0 {
                CrossType::Opening
            } else {
                CrossType::NoCross
            },
            customer_type: *rng.pick(CustomerType::ALL),
        }
    }
}
