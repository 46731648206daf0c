//! Deterministic synthetic order flows. This module owns the in-crate
//! pseudo-random generator ([`SplitMix64`]), the flow mixes ([`Mix`]) and the
//! generator that writes them ([`FlowGenerator`], [`generate`],
//! [`generate_commands`]). A flow is a pure function of its mix, seed and
//! length: there is no global random state, no clock and no floating point,
//! and the generator learns which orders are still live by running every
//! record it emits through a real [`Engine`], so its cancels and moves only
//! ever name orders that exist at that point of the flow.

use crate::flow::{engine_config_for, FlowMapper, FlowRecord, FLOW_SESSION};
use lockstep_engine::{
    Command, Engine, Event, InstrumentId, OrderType, Price, Qty, Side, TimeInForce, Token,
};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast, and with a fixed
/// output sequence for every seed on every machine, which is all a load
/// generator needs.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0). It takes the high half
    /// of a 128-bit product instead of a remainder; the bias is below 2^-40
    /// for the small bounds used here and, more to the point, deterministic.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// True with probability `per_mille / 1000`.
    pub fn per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}

/// Which kind of flow to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// The load of exchange-core's throughput benchmark on one instrument:
    /// about 9% new GTC limit orders, 3% IOC limit orders, 6% cancels and 82%
    /// moves (a modify of a live order to a nearby price with its quantity
    /// unchanged), about 1,000 live orders over roughly 750 price levels.
    ExchangeCore,
    /// Every order type the flow format knows (limit GTC, IOC and FOK,
    /// market IOC and FOK, post-only) plus cancels and modifies, over three
    /// instruments. Meant for correctness runs rather than speed.
    Simple,
}

impl Mix {
    pub const ALL: [Mix; 2] = [Mix::ExchangeCore, Mix::Simple];

    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Mix::ExchangeCore => "exchange-core",
            Mix::Simple => "simple",
        }
    }

    /// The flow instruments the mix trades, in the order the generator
    /// first names them (so instrument `k` here becomes engine index `k`).
    pub const fn flow_instruments(self) -> &'static [u32] {
        match self {
            Mix::ExchangeCore => &[1],
            Mix::Simple => &SIMPLE_INSTRUMENTS,
        }
    }

    /// How many instruments an engine needs to replay this mix.
    pub const fn instrument_count(self) -> u32 {
        self.flow_instruments().len() as u32
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Mix, String> {
        Mix::ALL
            .into_iter()
            .find(|mix| mix.name() == text)
            .ok_or_else(|| format!("unknown mix {text:?} (expected exchange-core or simple)"))
    }
}

/// Exchange-core mix: the price every flow starts around.
const EXCHANGE_CORE_CENTRE_TICKS: u64 = 100_000;
/// Exchange-core mix: how far the mid may wander from the centre.
const EXCHANGE_CORE_MID_RANGE_TICKS: u64 = 150;
/// Exchange-core mix: a resting order is placed up to this far from the mid.
const EXCHANGE_CORE_DEPTH_TICKS: u64 = 1200;
/// Exchange-core mix: the live order count the generator steers towards.
const EXCHANGE_CORE_LIVE_TARGET: usize = 1_000;
/// Exchange-core mix: the largest price step of one move.
const EXCHANGE_CORE_MOVE_TICKS_MAX: u64 = 6;

/// Simple mix: its three instruments, deliberately not 0, 1, 2 so that the
/// mapping to dense engine indexes is exercised.
const SIMPLE_INSTRUMENTS: [u32; 3] = [11, 22, 33];
const SIMPLE_CENTRE_TICKS: u64 = 10_000;
const SIMPLE_MID_RANGE_TICKS: u64 = 40;
const SIMPLE_DEPTH_TICKS: u64 = 30;
const SIMPLE_LIVE_TARGET: usize = 300;

/// The capacity of the generator's own engine: far above any live target,
/// so the simulation never refuses an order a replay would accept.
const SIMULATION_CAPACITY: u32 = 1 << 16;

/// One order the generator knows to be resting, as the engine reports it.
#[derive(Clone, Copy, Debug)]
struct LiveOrder {
    order_id: u64,
    instrument: u32,
    price_ticks: Price,
    qty_lots: Qty,
}

/// The live orders, in a vector for uniform random choice and a map for
/// removal by id. The map is only looked up, never iterated, so its hash
/// seed has no effect on the output.
#[derive(Default)]
struct LiveOrders {
    orders: Vec<LiveOrder>,
    position_of: HashMap<u64, usize>,
}

impl LiveOrders {
    fn len(&self) -> usize {
        self.orders.len()
    }

    fn upsert(&mut self, order: LiveOrder) {
        match self.position_of.get(&order.order_id) {
            Some(&position) => self.orders[position] = order,
            None => {
                self.position_of.insert(order.order_id, self.orders.len());
                self.orders.push(order);
            }
        }
    }

    fn remove(&mut self, order_id: u64) {
        if let Some(position) = self.position_of.remove(&order_id) {
            self.orders.swap_remove(position);
            if let Some(moved) = self.orders.get(position) {
                self.position_of.insert(moved.order_id, position);
            }
        }
    }

    fn pick(&self, random: &mut SplitMix64) -> Option<LiveOrder> {
        let index = random.below(self.orders.len() as u64) as usize;
        self.orders.get(index).copied()
    }
}

/// A slowly wandering mid price that stays within `range` of `centre`.
#[derive(Clone, Copy, Debug)]
struct Mid {
    price_ticks: u64,
    centre_ticks: u64,
    range_ticks: u64,
}

impl Mid {
    fn new(centre_ticks: u64, range_ticks: u64) -> Mid {
        Mid {
            price_ticks: centre_ticks,
            centre_ticks,
            range_ticks,
        }
    }

    /// One step of a reflected random walk, taken only now and then so the
    /// book has time to follow.
    fn wander(&mut self, random: &mut SplitMix64, per_mille: u64) {
        if !random.per_mille(per_mille) {
            return;
        }
        let low = self.centre_ticks - self.range_ticks;
        let high = self.centre_ticks + self.range_ticks;
        self.price_ticks = if random.coin() {
            if self.price_ticks < high {
                self.price_ticks + 1
            } else {
                self.price_ticks - 1
            }
        } else if self.price_ticks > low {
            self.price_ticks - 1
        } else {
            self.price_ticks + 1
        };
    }

    /// A resting price on `side`, 1 to `depth` ticks away from the mid.
    /// The distance is uniform below a uniform bound, which makes prices
    /// near the mid the most likely (density falls like the logarithm of the
    /// distance), as in a real book, where the inside refills fastest.
    fn passive_price(&self, random: &mut SplitMix64, side: Side, depth_ticks: u64) -> Price {
        let bound = 1 + random.below(depth_ticks);
        let offset = 1 + random.below(bound);
        match side {
            Side::Buy => self.price_ticks.saturating_sub(offset).max(1),
            Side::Sell => self.price_ticks + offset,
        }
    }
}

/// A price on `side` that reaches 0 to `reach_ticks` ticks through
/// `reference` (the best opposite price, or the mid when that side is empty).
fn through_price(random: &mut SplitMix64, reference: Price, side: Side, reach_ticks: u64) -> Price {
    let offset = random.below(reach_ticks + 1);
    match side {
        Side::Buy => reference + offset,
        Side::Sell => reference.saturating_sub(offset).max(1),
    }
}

fn random_side(random: &mut SplitMix64) -> Side {
    if random.coin() {
        Side::Buy
    } else {
        Side::Sell
    }
}

/// Writes a flow record by record, simulating each one on its own engine.
pub struct FlowGenerator {
    mix: Mix,
    random: SplitMix64,
    engine: Engine,
    mapper: FlowMapper,
    live: LiveOrders,
    /// One mid per instrument of the mix, in the mix's instrument order.
    mids: Vec<Mid>,
    /// Order ids only grow, so none is ever reused.
    next_order_id: u64,
    /// The exchange-core mix first fills the book to its live target with
    /// plain resting orders, as exchange-core's benchmark does before it
    /// starts measuring; after that the mix's proportions apply.
    warming_up: bool,
    /// Makers touched by the last record; kept to reuse its allocation.
    touched_order_ids: Vec<u64>,
}

impl FlowGenerator {
    pub fn new(mix: Mix, seed: u64) -> FlowGenerator {
        let config = engine_config_for(mix.instrument_count(), SIMULATION_CAPACITY);
        // The configuration is a constant of this module; if it were ever
        // invalid every generator test would fail at once.
        let engine = Engine::new(config).expect("the generator's engine configuration is valid");
        let mids = match mix {
            Mix::ExchangeCore => vec![Mid::new(
                EXCHANGE_CORE_CENTRE_TICKS,
                EXCHANGE_CORE_MID_RANGE_TICKS,
            )],
            Mix::Simple => vec![Mid::new(SIMPLE_CENTRE_TICKS, SIMPLE_MID_RANGE_TICKS); 3],
        };
        let mut mapper = FlowMapper::new();
        // Naming the instruments up front fixes their engine indexes to the
        // mix's order, whichever instrument the flow happens to name first.
        // A replay maps by first appearance, which can differ, but the
        // instruments are independent books, so the result is the same.
        for &instrument in mix.flow_instruments() {
            mapper.instrument_id(instrument);
        }
        FlowGenerator {
            mix,
            // SplitMix64 copes with neighbouring seeds by itself; the
            // constant ("Lockstep" in ASCII) only keeps these streams apart
            // from any other SplitMix64 user handed the same seed.
            random: SplitMix64::new(seed ^ 0x4C6F_636B_7374_6570),
            engine,
            mapper,
            live: LiveOrders::default(),
            mids,
            next_order_id: 1,
            warming_up: mix == Mix::ExchangeCore,
            touched_order_ids: Vec::new(),
        }
    }

    /// How many orders rest in the simulated book now.
    pub fn orders_live(&self) -> u32 {
        self.engine.orders_live()
    }

    /// How many price levels are in use in the simulated book now.
    pub fn levels_live(&self) -> u32 {
        self.engine.levels_live()
    }

    /// The next record of the flow.
    pub fn next_record(&mut self) -> FlowRecord {
        let record = match self.mix {
            Mix::ExchangeCore => self.exchange_core_record(),
            Mix::Simple => self.simple_record(),
        };
        self.simulate(&record);
        record
    }

    /// A price on `side` that trades on entry: it reaches up to
    /// `reach_ticks` ticks through the best opposite price, the way a trader
    /// who wants to execute prices off the book. Pricing off the mid instead
    /// would often miss, because the inside of the book drifts around it.
    fn marketable_price(&mut self, instrument_index: usize, side: Side, reach_ticks: u64) -> Price {
        let best_opposite = self
            .engine
            .best(InstrumentId(instrument_index as u32), side.opposite())
            .map(|(price, _)| price);
        let reference = best_opposite.unwrap_or(self.mids[instrument_index].price_ticks);
        through_price(&mut self.random, reference, side, reach_ticks)
    }

    fn take_order_id(&mut self) -> u64 {
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        order_id
    }

    #[allow(clippy::too_many_arguments)]
    fn new_order(
        &mut self,
        instrument: u32,
        side: Side,
        order_type: OrderType,
        price_ticks: Price,
        qty_lots: Qty,
        time_in_force: TimeInForce,
        post_only: bool,
    ) -> FlowRecord {
        FlowRecord::New {
            instrument,
            order_id: self.take_order_id(),
            side,
            order_type,
            price_ticks: if order_type == OrderType::Market {
                0
            } else {
                price_ticks
            },
            qty_lots,
            time_in_force,
            post_only,
        }
    }

    fn exchange_core_record(&mut self) -> FlowRecord {
        const INSTRUMENT: u32 = 1;
        let mut mid = self.mids[0];
        mid.wander(&mut self.random, 30);
        self.mids[0] = mid;
        let live = self.live.len();
        if self.warming_up {
            if live < EXCHANGE_CORE_LIVE_TARGET {
                let side = random_side(&mut self.random);
                let price = mid.passive_price(&mut self.random, side, EXCHANGE_CORE_DEPTH_TICKS);
                let qty = 1 + self.random.below(100) as Qty;
                return self.new_order(
                    INSTRUMENT,
                    side,
                    OrderType::Limit,
                    price,
                    qty,
                    TimeInForce::Gtc,
                    false,
                );
            }
            self.warming_up = false;
        }
        // The nominal proportions, in per mille; the live count steers only
        // the choice between adding and cancelling, which keeps the book near
        // its target size without disturbing the share of moves.
        let roll = self.random.below(1000);
        let mut action = match roll {
            0..=89 => 'g',
            90..=119 => 'i',
            120..=179 => 'c',
            _ => 'm',
        };
        let high_water = EXCHANGE_CORE_LIVE_TARGET + EXCHANGE_CORE_LIVE_TARGET / 10;
        let low_water = EXCHANGE_CORE_LIVE_TARGET - EXCHANGE_CORE_LIVE_TARGET / 10;
        if action == 'g' && live > high_water {
            action = 'c';
        } else if action == 'c' && live < low_water {
            action = 'g';
        }
        match action {
            'g' => {
                let side = random_side(&mut self.random);
                // One new order in twenty is placed through the mid, the
                // way a real aggressive limit order would be.
                let price = if self.random.per_mille(50) {
                    self.marketable_price(0, side, 2)
                } else {
                    mid.passive_price(&mut self.random, side, EXCHANGE_CORE_DEPTH_TICKS)
                };
                let qty = 1 + self.random.below(100) as Qty;
                self.new_order(
                    INSTRUMENT,
                    side,
                    OrderType::Limit,
                    price,
                    qty,
                    TimeInForce::Gtc,
                    false,
                )
            }
            'i' => {
                let side = random_side(&mut self.random);
                let price = self.marketable_price(0, side, 3);
                let qty = 1 + self.random.below(150) as Qty;
                self.new_order(
                    INSTRUMENT,
                    side,
                    OrderType::Limit,
                    price,
                    qty,
                    TimeInForce::Ioc,
                    false,
                )
            }
            'c' => match self.live.pick(&mut self.random) {
                Some(order) => FlowRecord::Cancel {
                    instrument: order.instrument,
                    order_id: order.order_id,
                    qty_after_lots: 0,
                },
                None => self.fallback_new_order(INSTRUMENT, mid),
            },
            _ => match self.live.pick(&mut self.random) {
                Some(order) => {
                    let price = self.moved_price(order, mid);
                    FlowRecord::Modify {
                        instrument: order.instrument,
                        order_id: order.order_id,
                        price_ticks: price,
                        qty_lots: order.qty_lots,
                    }
                }
                None => self.fallback_new_order(INSTRUMENT, mid),
            },
        }
    }

    /// A plain resting order, for when a cancel or a move was chosen but no
    /// order is live to name.
    fn fallback_new_order(&mut self, instrument: u32, mid: Mid) -> FlowRecord {
        let side = random_side(&mut self.random);
        let price = mid.passive_price(&mut self.random, side, 10);
        let qty = 1 + self.random.below(50) as Qty;
        self.new_order(
            instrument,
            side,
            OrderType::Limit,
            price,
            qty,
            TimeInForce::Gtc,
            false,
        )
    }

    /// A nearby price for a move. Orders that have drifted further than the
    /// book's depth from the mid are pulled back towards it, so repeated
    /// moves cannot scatter the book over ever more levels.
    fn moved_price(&mut self, order: LiveOrder, mid: Mid) -> Price {
        let step = 1 + self.random.below(EXCHANGE_CORE_MOVE_TICKS_MAX);
        let distance = order.price_ticks.abs_diff(mid.price_ticks);
        let towards_mid = if distance > EXCHANGE_CORE_DEPTH_TICKS {
            true
        } else {
            self.random.coin()
        };
        let up = (order.price_ticks < mid.price_ticks) == towards_mid;
        if up {
            order.price_ticks + step
        } else {
            order.price_ticks.saturating_sub(step).max(1)
        }
    }

    fn simple_record(&mut self) -> FlowRecord {
        let instrument_index = self.random.below(SIMPLE_INSTRUMENTS.len() as u64) as usize;
        let instrument = SIMPLE_INSTRUMENTS[instrument_index];
        let mut mid = self.mids[instrument_index];
        mid.wander(&mut self.random, 100);
        self.mids[instrument_index] = mid;
        let live = self.live.len();
        // Per mille: 300 GTC, 80 post-only, 100 IOC limit, 60 FOK limit,
        // 60 market IOC, 40 market FOK, 160 cancel, 200 modify.
        let mut roll = self.random.below(1000);
        if roll < 380 && live > SIMPLE_LIVE_TARGET {
            // Too many resting orders: this one cancels instead of adding.
            roll = 700;
        }
        let side = random_side(&mut self.random);
        let qty = 1 + self.random.below(50) as Qty;
        match roll {
            0..=299 => {
                let price = if self.random.per_mille(100) {
                    self.marketable_price(instrument_index, side, 2)
                } else {
                    mid.passive_price(&mut self.random, side, SIMPLE_DEPTH_TICKS)
                };
                self.new_order(
                    instrument,
                    side,
                    OrderType::Limit,
                    price,
                    qty,
                    TimeInForce::Gtc,
                    false,
                )
            }
            300..=379 => {
                // Close to the mid, so that some post-only orders would
                // match and are rejected.
                let price = mid.passive_price(&mut self.random, side, 4);
                self.new_order(
                    instrument,
                    side,
                    OrderType::Limit,
                    price,
                    qty,
                    TimeInForce::Gtc,
                    true,
                )
            }
            380..=479 => {
                let price = self.marketable_price(instrument_index, side, 3);
                self.new_order(
                    instrument,
                    side,
                    OrderType::Limit,
                    price,
                    qty,
                    TimeInForce::Ioc,
                    false,
                )
            }
            480..=539 => {
                let price = self.marketable_price(instrument_index, side, 3);
                self.new_order(
                    instrument,
                    side,
                    OrderType::Limit,
                    price,
                    qty,
                    TimeInForce::Fok,
                    false,
                )
            }
            540..=599 => self.new_order(
                instrument,
                side,
                OrderType::Market,
                0,
                qty,
                TimeInForce::Ioc,
                false,
            ),
            600..=639 => self.new_order(
                instrument,
                side,
                OrderType::Market,
                0,
                qty,
                TimeInForce::Fok,
                false,
            ),
            640..=799 => match self.live.pick(&mut self.random) {
                Some(order) => FlowRecord::Cancel {
                    instrument: order.instrument,
                    order_id: order.order_id,
                    qty_after_lots: 0,
                },
                None => self.fallback_new_order(instrument, mid),
            },
            _ => match self.live.pick(&mut self.random) {
                Some(order) => {
                    // Half the modifies only shrink the order in place (the
                    // priority-keeping path); the rest move it and may
                    // change its size either way.
                    let (price, qty) = if self.random.coin() {
                        let qty = 1 + self.random.below(order.qty_lots as u64) as Qty;
                        (order.price_ticks, qty)
                    } else {
                        let step = self.random.below(7);
                        let price = (order.price_ticks + step).saturating_sub(3).max(1);
                        (price, qty)
                    };
                    FlowRecord::Modify {
                        instrument: order.instrument,
                        order_id: order.order_id,
                        price_ticks: price,
                        qty_lots: qty,
                    }
                }
                None => self.fallback_new_order(instrument, mid),
            },
        }
    }

    /// Applies a record to the simulated engine and brings the live order
    /// list up to date with what the engine says about every order the
    /// record touched: the order it names and every maker it traded with.
    fn simulate(&mut self, record: &FlowRecord) {
        let command = self.mapper.map(record);
        let mut touched = std::mem::take(&mut self.touched_order_ids);
        touched.clear();
        self.engine.apply(&command, &mut |event| {
            if let Event::Fill { maker, .. } = event {
                if let Some(order_id) = maker.token.to_u64() {
                    touched.push(order_id);
                }
            }
        });
        touched.push(record.order_id());
        for &order_id in &touched {
            match self.engine.order(FLOW_SESSION, Token::from_u64(order_id)) {
                Some(view) => {
                    let instrument = self.mapper.flow_instruments()[view.instrument.0 as usize];
                    self.live.upsert(LiveOrder {
                        order_id,
                        instrument,
                        price_ticks: view.price,
                        qty_lots: view.qty_open,
                    });
                }
                None => self.live.remove(order_id),
            }
        }
        self.touched_order_ids = touched;
    }
}

impl Iterator for FlowGenerator {
    type Item = FlowRecord;

    /// The flow never ends; take as many records as needed.
    fn next(&mut self) -> Option<FlowRecord> {
        Some(self.next_record())
    }
}

/// The first `orders` records of the flow of `mix` from `seed`.
pub fn generate(mix: Mix, seed: u64, orders: usize) -> Vec<FlowRecord> {
    FlowGenerator::new(mix, seed).take(orders).collect()
}

/// The same flow as [`generate`], already mapped to engine commands, for
/// benchmarks: exactly the commands `lockstep replay` builds from the written
/// flow (instruments numbered by first appearance). Replay them on an engine
/// built with `engine_config_for(mix.instrument_count(), capacity)`.
pub fn generate_commands(mix: Mix, seed: u64, orders: usize) -> Vec<Command> {
    let mut mapper = FlowMapper::new();
    FlowGenerator::new(mix, seed)
        .take(orders)
        .map(|record| mapper.map(&record))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{flow_to_string, load_flow, FlowReader};
    use lockstep_engine::RejectReason;
    use std::collections::{BTreeMap, HashSet};

    #[test]
    fn splitmix_matches_its_reference_output() {
        // The first outputs for seed 1234567 from the reference C code.
        let mut random = SplitMix64::new(1234567);
        let expected = [
            6457827717110365317u64,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ];
        for value in expected {
            assert_eq!(random.next_u64(), value);
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut random = SplitMix64::new(9);
        assert_eq!(random.below(0), 0);
        for bound in [1u64, 2, 3, 7, 1000] {
            for _ in 0..1000 {
                assert!(random.below(bound) < bound);
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_flow_and_another_seed_another() {
        for mix in Mix::ALL {
            let first = generate(mix, 42, 20_000);
            let second = generate(mix, 42, 20_000);
            assert_eq!(flow_to_string(&first), flow_to_string(&second), "{mix}");
            let other = generate(mix, 43, 20_000);
            assert_ne!(first, other, "{mix}");
            assert_eq!(
                generate_commands(mix, 42, 20_000),
                generate_commands(mix, 42, 20_000)
            );
        }
    }

    #[test]
    fn mix_names_parse_back() {
        for mix in Mix::ALL {
            assert_eq!(mix.name().parse::<Mix>(), Ok(mix));
        }
        assert!("exchange_core".parse::<Mix>().is_err());
    }

    /// Counts what a replay of `records` on a fresh engine does.
    struct ReplayCounts {
        rejects: BTreeMap<RejectReason, u64>,
        fills: u64,
        levels_live_sum: u64,
        orders_live_sum: u64,
    }

    fn replay(mix: Mix, records: &[FlowRecord]) -> ReplayCounts {
        let mut mapper = FlowMapper::new();
        let mut engine =
            Engine::new(engine_config_for(mix.instrument_count(), 1 << 20)).expect("valid");
        let mut counts = ReplayCounts {
            rejects: BTreeMap::new(),
            fills: 0,
            levels_live_sum: 0,
            orders_live_sum: 0,
        };
        for record in records {
            engine.apply(&mapper.map(record), &mut |event| match event {
                Event::Rejected { reason, .. } => *counts.rejects.entry(*reason).or_default() += 1,
                Event::Fill { .. } => counts.fills += 1,
                _ => {}
            });
            counts.levels_live_sum += engine.levels_live() as u64;
            counts.orders_live_sum += engine.orders_live() as u64;
        }
        counts
    }

    #[test]
    fn exchange_core_has_its_proportions_book_shape_and_no_rejects() {
        let orders = 200_000;
        let records = generate(Mix::ExchangeCore, 7, orders);
        let mut gtc = 0u64;
        let mut ioc = 0u64;
        let mut cancels = 0u64;
        let mut moves = 0u64;
        let mut seen_ids = HashSet::new();
        let mut last_new_id = 0;
        for record in &records {
            match *record {
                FlowRecord::New {
                    order_id,
                    time_in_force,
                    ..
                } => {
                    assert!(order_id > last_new_id, "order ids only grow");
                    last_new_id = order_id;
                    assert!(seen_ids.insert(order_id));
                    match time_in_force {
                        TimeInForce::Gtc => gtc += 1,
                        TimeInForce::Ioc => ioc += 1,
                        TimeInForce::Fok => panic!("no FOK in this mix"),
                    }
                }
                FlowRecord::Cancel { .. } => cancels += 1,
                FlowRecord::Modify { .. } => moves += 1,
            }
        }
        let per_mille = |count: u64| count * 1000 / orders as u64;
        // Nominal 90 / 30 / 60 / 820 per mille; steering the book size and
        // the warm-up shift a few per mille between adding and cancelling.
        assert!(
            (75..=110).contains(&per_mille(gtc)),
            "gtc {}",
            per_mille(gtc)
        );
        assert!(
            (25..=35).contains(&per_mille(ioc)),
            "ioc {}",
            per_mille(ioc)
        );
        assert!(
            (40..=75).contains(&per_mille(cancels)),
            "cancel {}",
            per_mille(cancels)
        );
        assert!(
            (800..=840).contains(&per_mille(moves)),
            "move {}",
            per_mille(moves)
        );

        let counts = replay(Mix::ExchangeCore, &records);
        // The generator only cancels and moves orders it knows are live,
        // and it learned that from the same engine, so nothing is refused.
        assert!(counts.rejects.is_empty(), "{:?}", counts.rejects);
        assert!(counts.fills > orders as u64 / 50, "fills {}", counts.fills);
        let orders_live_mean = counts.orders_live_sum / orders as u64;
        let levels_live_mean = counts.levels_live_sum / orders as u64;
        assert!(
            (900..=1100).contains(&orders_live_mean),
            "orders {orders_live_mean}"
        );
        assert!(
            (600..=900).contains(&levels_live_mean),
            "levels {levels_live_mean}"
        );
    }

    #[test]
    fn simple_uses_every_order_type_and_three_instruments() {
        let records = generate(Mix::Simple, 3, 50_000);
        let mut kinds = HashSet::new();
        let mut instruments = HashSet::new();
        for record in &records {
            instruments.insert(record.instrument());
            let kind = match *record {
                FlowRecord::New {
                    order_type,
                    time_in_force,
                    post_only,
                    ..
                } => format!("{order_type:?}-{time_in_force:?}-{post_only}"),
                FlowRecord::Cancel { .. } => "cancel".to_string(),
                FlowRecord::Modify { .. } => "modify".to_string(),
            };
            kinds.insert(kind);
        }
        for expected in [
            "Limit-Gtc-false",
            "Limit-Gtc-true",
            "Limit-Ioc-false",
            "Limit-Fok-false",
            "Market-Ioc-false",
            "Market-Fok-false",
            "cancel",
            "modify",
        ] {
            assert!(
                kinds.contains(expected),
                "{expected} missing from {kinds:?}"
            );
        }
        assert_eq!(instruments.len(), 3);
        let counts = replay(Mix::Simple, &records);
        assert!(counts.fills > 1000);
        // Only the rejects the mix provokes on purpose: post-only orders
        // that would trade and FOK orders that cannot fill.
        for reason in counts.rejects.keys() {
            assert!(
                matches!(
                    reason,
                    RejectReason::PostOnlyWouldMatch | RejectReason::FokNotFillable
                ),
                "unexpected {reason:?}"
            );
        }
    }

    #[test]
    fn generated_flows_survive_the_file_format() {
        for mix in Mix::ALL {
            let records = generate(mix, 11, 5_000);
            let text = flow_to_string(&records);
            let parsed: Vec<FlowRecord> = FlowReader::new(text.as_bytes())
                .collect::<Result<_, _>>()
                .expect("generated flows are valid");
            assert_eq!(parsed, records);
            let loaded = load_flow(text.as_bytes()).expect("valid");
            assert_eq!(loaded.commands, generate_commands(mix, 11, 5_000), "{mix}");
        }
    }
}
