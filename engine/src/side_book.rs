//! The books of all instruments: for each instrument and side, a doubly
//! linked list of price levels sorted best first, each level a FIFO of
//! orders. A tick window near each side's best (below) and a price index
//! for the levels outside it map (instrument, side, price) to its level, so
//! adding to an existing level, removing an order, removing an empty level
//! and reading the best price are all O(1). Only a brand-new level must find
//! its place in the list: it probes a few neighbouring ticks in the price
//! index for an existing level to start from, and otherwise walks from the
//! end of the list nearer in price; the walk is bounded by `levels_max`.
//!
//! Most new levels are placed without any walk: each side also keeps a tick
//! window, a bitmap of the occupied ticks over `WINDOW_TICKS` ticks near its
//! best plus the level slot of each occupied tick. A new level inside the
//! window finds its better neighbour with a few word scans, and a price with
//! a level is found by one array read. The walk it replaces was the largest
//! source of branch mispredictions when orders move by a few ticks, and a
//! level inside the window costs no price index insert or remove, which
//! most moves used to pay twice. Each level is recorded in exactly one of
//! the two: the window if its price is inside, else the price index.
//! Prices outside the window take the walk, and the window is moved (its
//! bits rebuilt from the level list, and levels handed between it and the
//! index) only when a price falls outside it and the best has drifted out
//! of its home quarter, so moves are rare and their cost, bounded by the
//! window's size, is amortised.

use crate::config::InstrumentSpec;
use crate::open_table::{Homing, OpenTable};
use crate::order_pool::{Level, Order, Slab, NIL};
use crate::types::{Price, Side};
use rkyv::{Archive, Deserialize, Serialize};

/// How many neighbouring ticks on each side a new level probes for an
/// existing level before falling back to a walk.
const NEIGHBOUR_PROBES: u64 = 8;

/// How many levels a hinted search walks before it falls back to the index.
const HINT_WALK_MAX: u32 = 16;

/// Ticks covered by each side's tick window. Memory per side of each
/// instrument: one bit and one 4-byte level slot per tick, 16,896 bytes at
/// 4,096 ticks (33,792 bytes per instrument), all allocated at construction.
pub const WINDOW_TICKS: usize = 4096;

/// 64-bit words of a window's bitmap.
const WINDOW_WORDS: usize = WINDOW_TICKS / 64;

/// Ticks of a window kept better than the best when it is moved: new bests
/// usually arrive a few ticks better, while depth builds on the worse side.
const WINDOW_AHEAD: u64 = WINDOW_TICKS as u64 / 4;

/// How far (in ticks) the best may drift from its home tick in the window
/// before a price outside the window moves the window.
const WINDOW_DRIFT: u64 = WINDOW_TICKS as u64 / 4;

/// Where a price belongs in a side's level list.
enum Located {
    /// A level at the price exists.
    Existing(u32),
    /// A new level belongs between these two (either may be `NIL`).
    Between(u32, u32),
}

/// One side of one instrument's book.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideBook {
    pub best: u32,
    pub worst: u32,
    pub level_count: u32,
    /// The price of tick 0 of this side's tick window, a multiple of the
    /// instrument's tick (or 0).
    pub window_base: Price,
}

impl SideBook {
    const EMPTY: SideBook = SideBook {
        best: NIL,
        worst: NIL,
        level_count: 0,
        window_base: 0,
    };
}

/// The tick of `price` in a window starting at `base`, if it is inside.
#[inline]
fn window_tick(base: Price, tick: Price, price: Price) -> Option<usize> {
    let distance = price.checked_sub(base)?;
    let ticks = if tick == 1 {
        distance
    } else if distance % tick == 0 {
        distance / tick
    } else {
        return None;
    };
    (ticks < WINDOW_TICKS as u64).then_some(ticks as usize)
}

/// The lowest set tick above `tick` in a window's bitmap.
#[inline]
fn next_set_above(bits: &[u64; WINDOW_WORDS], tick: usize) -> Option<usize> {
    let first = tick / 64;
    let word = bits[first] & (!1u64 << (tick % 64));
    if word != 0 {
        return Some(first * 64 + word.trailing_zeros() as usize);
    }
    let index = first + 1 + bits[first + 1..].iter().position(|&word| word != 0)?;
    Some(index * 64 + bits[index].trailing_zeros() as usize)
}

/// The highest set tick below `tick` in a window's bitmap.
#[inline]
fn next_set_below(bits: &[u64; WINDOW_WORDS], tick: usize) -> Option<usize> {
    let first = tick / 64;
    let word = bits[first] & ((1u64 << (tick % 64)) - 1);
    if word != 0 {
        return Some(first * 64 + 63 - word.leading_zeros() as usize);
    }
    let index = bits[..first].iter().rposition(|&word| word != 0)?;
    Some(index * 64 + 63 - bits[index].leading_zeros() as usize)
}

/// One instrument: its rules, its trading state and both sides of its book.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentBook {
    pub spec: InstrumentSpec,
    pub halted: bool,
    pub sides: [SideBook; 2],
}

/// Every instrument's book and the pools their levels and orders live in.
#[derive(Archive, Serialize, Deserialize, Clone, Debug)]
pub struct Books {
    pub instruments: Vec<InstrumentBook>,
    pub orders: Slab<Order>,
    pub levels: Slab<Level>,
    price_index: OpenTable,
    /// The tick windows' bitmaps, one per side, sides in (instrument, side)
    /// order.
    window_bits: Vec<[u64; WINDOW_WORDS]>,
    /// The level slot of each occupied window tick, one array per side;
    /// entries under a clear bit are stale and never read.
    window_slots: Vec<[u32; WINDOW_TICKS]>,
}

/// The price-index key: the price in the low word, where the index's
/// clustered homing keeps neighbouring prices in neighbouring slots, and the
/// book (instrument and side) in the high word.
#[inline]
fn price_key(instrument: u32, side: Side, price: Price) -> u128 {
    (instrument as u128) << 65 | (side as u128) << 64 | price as u128
}

/// The price-index key of the level in `slot`.
#[inline]
fn level_key(levels: &Slab<Level>, slot: u32) -> u128 {
    let level = levels.get(slot);
    price_key(level.instrument, level.side, level.price)
}

impl Books {
    pub fn new(specs: &[InstrumentSpec], orders_max: u32, levels_max: u32) -> Books {
        Books {
            instruments: specs
                .iter()
                .map(|spec| InstrumentBook {
                    spec: *spec,
                    halted: false,
                    sides: [SideBook::EMPTY; 2],
                })
                .collect(),
            orders: Slab::with_capacity(orders_max),
            levels: Slab::with_capacity(levels_max),
            price_index: OpenTable::with_capacity(levels_max, Homing::Clustered),
            window_bits: vec![[0; WINDOW_WORDS]; specs.len() * 2],
            window_slots: vec![[NIL; WINDOW_TICKS]; specs.len() * 2],
        }
    }

    /// Levels recorded in the tick windows, over all sides.
    pub(crate) fn window_levels(&self) -> u64 {
        self.window_bits
            .iter()
            .flatten()
            .map(|word| word.count_ones() as u64)
            .sum()
    }

    /// Levels recorded in the price index (those outside their window).
    pub(crate) fn indexed_levels(&self) -> u64 {
        self.price_index.len() as u64
    }

    /// Bytes of the tick windows.
    pub fn window_bytes(&self) -> usize {
        self.window_bits.len() * WINDOW_WORDS * 8 + self.window_slots.len() * WINDOW_TICKS * 4
    }

    /// The index of a side among all sides, for the window tables.
    #[inline]
    fn book_index(instrument: u32, side: Side) -> usize {
        instrument as usize * 2 + side.index()
    }

    /// The window tick of `price` on a side, if it is inside the window.
    #[inline]
    pub(crate) fn window_tick_of(
        &self,
        instrument: u32,
        side: Side,
        price: Price,
    ) -> Option<usize> {
        let book = &self.instruments[instrument as usize];
        window_tick(
            book.sides[side.index()].window_base,
            book.spec.tick_size,
            price,
        )
    }

    /// A side's window bitmap.
    #[inline]
    pub(crate) fn window_bits(&self, instrument: u32, side: Side) -> &[u64; WINDOW_WORDS] {
        &self.window_bits[Self::book_index(instrument, side)]
    }

    /// The level slot recorded for a window tick of a side.
    #[inline]
    pub(crate) fn window_slot(&self, instrument: u32, side: Side, tick: usize) -> u32 {
        self.window_slots[Self::book_index(instrument, side)][tick]
    }

    /// Marks window tick `tick` (if any) occupied by `level`.
    #[inline]
    fn window_set_tick(&mut self, instrument: u32, side: Side, tick: Option<usize>, level: u32) {
        if let Some(tick) = tick {
            let book = Self::book_index(instrument, side);
            self.window_bits[book][tick / 64] |= 1 << (tick % 64);
            self.window_slots[book][tick] = level;
        }
    }

    /// Marks `price` free in its side's window, if inside.
    #[inline]
    fn window_clear(&mut self, instrument: u32, side: Side, price: Price) {
        if let Some(tick) = self.window_tick_of(instrument, side, price) {
            let book = Self::book_index(instrument, side);
            self.window_bits[book][tick / 64] &= !(1 << (tick % 64));
        }
    }

    /// Moves a side's window so that its best sits `WINDOW_AHEAD` ticks
    /// from the better edge, and rebuilds the bits from the level list. The
    /// walk stops at the first level past the worse edge, so it visits at
    /// most `WINDOW_TICKS` levels.
    fn move_window(&mut self, instrument: u32, side: Side) {
        let book = Self::book_index(instrument, side);
        // The levels in the old window go to the price index first.
        for word_index in 0..WINDOW_WORDS {
            let mut word = self.window_bits[book][word_index];
            for _ in 0..64 {
                if word == 0 {
                    break;
                }
                let tick = word_index * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                let level = self.window_slots[book][tick];
                let price = self.levels.get(level).price;
                self.index_level(instrument, side, price, level);
            }
        }
        self.window_bits[book] = [0; WINDOW_WORDS];
        let side_book = *self.side(instrument, side);
        if side_book.best == NIL {
            return;
        }
        let tick = self.instruments[instrument as usize].spec.tick_size;
        let best_price = self.levels.get(side_book.best).price;
        let base = match side {
            Side::Buy => best_price
                .saturating_sub(tick.saturating_mul(WINDOW_TICKS as u64 - 1 - WINDOW_AHEAD)),
            Side::Sell => best_price.saturating_sub(tick.saturating_mul(WINDOW_AHEAD)),
        };
        // Keep the base on the tick grid (a saturated base of 0 is on it).
        let base = base - base % tick;
        self.side_mut(instrument, side).window_base = base;
        let mut level = side_book.best;
        for _ in 0..WINDOW_TICKS {
            if level == NIL {
                break;
            }
            let entry = *self.levels.get(level);
            let tick = self.window_tick_of(instrument, side, entry.price);
            if tick.is_none() {
                break;
            }
            self.unindex_level(instrument, side, entry.price, level);
            self.window_set_tick(instrument, side, tick, level);
            level = entry.worse;
        }
    }

    /// Called when a new level's price is outside its side's window: points
    /// an empty side's window at the price, or moves the window if the best
    /// has drifted more than `WINDOW_DRIFT` ticks from its home tick.
    #[cold]
    fn maybe_move_window(&mut self, instrument: u32, side: Side, price: Price) {
        let side_book = *self.side(instrument, side);
        let tick = self.instruments[instrument as usize].spec.tick_size;
        if side_book.best == NIL {
            // The bitmap of an empty side is all clear, so only the base moves.
            let base = match side {
                Side::Buy => price
                    .saturating_sub(tick.saturating_mul(WINDOW_TICKS as u64 - 1 - WINDOW_AHEAD)),
                Side::Sell => price.saturating_sub(tick.saturating_mul(WINDOW_AHEAD)),
            };
            self.side_mut(instrument, side).window_base = base - base % tick;
            return;
        }
        let best_price = self.levels.get(side_book.best).price;
        let home = match side {
            Side::Buy => WINDOW_TICKS as u64 - 1 - WINDOW_AHEAD,
            Side::Sell => WINDOW_AHEAD,
        };
        let drifted = match self.window_tick_of(instrument, side, best_price) {
            Some(best_tick) => (best_tick as u64).abs_diff(home) > WINDOW_DRIFT,
            None => true,
        };
        if drifted {
            self.move_window(instrument, side);
        }
    }

    /// Bytes of the order pool.
    pub fn order_bytes(&self) -> usize {
        self.orders.capacity() as usize * std::mem::size_of::<Order>()
    }

    /// Bytes of the level pool and the price index.
    pub fn level_bytes(&self) -> usize {
        self.levels.capacity() as usize * std::mem::size_of::<Level>() + self.price_index.bytes()
    }

    #[inline]
    pub fn side(&self, instrument: u32, side: Side) -> &SideBook {
        &self.instruments[instrument as usize].sides[side.index()]
    }

    #[inline]
    fn side_mut(&mut self, instrument: u32, side: Side) -> &mut SideBook {
        &mut self.instruments[instrument as usize].sides[side.index()]
    }

    /// The best level of a side, or `NIL`.
    #[inline]
    pub fn best(&self, instrument: u32, side: Side) -> u32 {
        self.side(instrument, side).best
    }

    /// The level at `price` on a side: from the tick window if the price is
    /// inside it, else from the price index, which holds exactly the levels
    /// outside their side's window.
    #[inline]
    pub fn find_level(&self, instrument: u32, side: Side, price: Price) -> Option<u32> {
        if let Some(tick) = self.window_tick_of(instrument, side, price) {
            let bits = self.window_bits(instrument, side);
            return (bits[tick / 64] >> (tick % 64) & 1 != 0)
                .then(|| self.window_slot(instrument, side, tick));
        }
        let levels = &self.levels;
        self.price_index
            .get(price_key(instrument, side, price), |slot| {
                level_key(levels, slot)
            })
    }

    /// True if both sides have levels and the best bid is at or above the
    /// best ask. Must never hold between commands.
    #[inline]
    pub fn is_crossed(&self, instrument: u32) -> bool {
        let bid = self.best(instrument, Side::Buy);
        let ask = self.best(instrument, Side::Sell);
        bid != NIL && ask != NIL && self.levels.get(bid).price >= self.levels.get(ask).price
    }

    /// The level at `price`, created (and linked into place) if absent.
    /// `hint` is a live level of the same side near `price` (the level an
    /// order is moving from), or `NIL`; with a hint the place is found by a
    /// short walk instead of index probes. `None` only if the pool is full.
    pub fn find_or_insert_level(
        &mut self,
        instrument: u32,
        side: Side,
        price: Price,
        hint: u32,
    ) -> Option<u32> {
        let mut tick = self.window_tick_of(instrument, side, price);
        if tick.is_none() {
            self.maybe_move_window(instrument, side, price);
            tick = self.window_tick_of(instrument, side, price);
        }
        let located = match tick.and_then(|tick| self.locate_in_window(instrument, side, tick)) {
            Some(located) => located,
            None => self.locate_with_hint(instrument, side, price, hint),
        };
        let (better, worse) = match located {
            Located::Existing(level) => return Some(level),
            Located::Between(better, worse) => (better, worse),
        };
        let level = self.levels.allocate(Level {
            price,
            qty_total: 0,
            head: NIL,
            tail: NIL,
            better,
            worse,
            order_count: 0,
            instrument,
            side,
        })?;
        self.attach_level(level, better, worse, tick);
        Some(level)
    }

    /// Where `price` belongs on a side: its level, or the neighbours a new
    /// level there would have. A short walk from `hint` (a live level of the
    /// side near `price`, or `NIL`) answers most calls; the price index and
    /// a full [`Books::locate`] answer the rest. Used when the tick window
    /// cannot answer.
    #[inline]
    fn locate_with_hint(&self, instrument: u32, side: Side, price: Price, hint: u32) -> Located {
        match self.locate_near(side, price, hint) {
            Some(located) => located,
            None => match self.find_level(instrument, side, price) {
                Some(level) => Located::Existing(level),
                None => {
                    let (better, worse) = self.locate(instrument, side, price);
                    Located::Between(better, worse)
                }
            },
        }
    }

    /// Where the price at window tick `tick` belongs, from the window alone:
    /// its level if the tick is occupied, else the nearest occupied better
    /// tick's level and that level's worse neighbour (or, with no better
    /// tick in the window, the nearest worse one and its better neighbour).
    /// The list is sorted, so those are the new level's neighbours. `None`
    /// if the window holds no level of the side.
    #[inline]
    fn locate_in_window(&self, instrument: u32, side: Side, tick: usize) -> Option<Located> {
        let bits = self.window_bits(instrument, side);
        if bits[tick / 64] >> (tick % 64) & 1 != 0 {
            return Some(Located::Existing(self.window_slot(instrument, side, tick)));
        }
        let better = match side {
            Side::Buy => next_set_above(bits, tick),
            Side::Sell => next_set_below(bits, tick),
        };
        if let Some(better) = better {
            let level = self.window_slot(instrument, side, better);
            return Some(Located::Between(level, self.levels.get(level).worse));
        }
        let worse = match side {
            Side::Buy => next_set_below(bits, tick),
            Side::Sell => next_set_above(bits, tick),
        };
        let level = self.window_slot(instrument, side, worse?);
        Some(Located::Between(self.levels.get(level).better, level))
    }

    /// Links a level that is in no list (its price, instrument and side
    /// already set) between `better` and `worse`, and indexes its price and
    /// its window tick (`None` if outside the window).
    #[inline]
    fn attach_level(&mut self, level: u32, better: u32, worse: u32, tick: Option<usize>) {
        let entry = self.levels.get_mut(level);
        entry.better = better;
        entry.worse = worse;
        let (instrument, side, price) = (entry.instrument, entry.side, entry.price);
        if tick.is_some() {
            self.window_set_tick(instrument, side, tick, level);
        } else {
            self.index_level(instrument, side, price, level);
        }
        if better == NIL {
            self.side_mut(instrument, side).best = level;
        } else {
            self.levels.get_mut(better).worse = level;
        }
        if worse == NIL {
            self.side_mut(instrument, side).worst = level;
        } else {
            self.levels.get_mut(worse).better = level;
        }
        self.side_mut(instrument, side).level_count += 1;
    }

    /// Unlinks a level from its side's list and drops its price from the
    /// index; the slot stays taken, and its contents stay as they were.
    #[inline]
    fn detach_level(&mut self, level: u32) {
        let removed = *self.levels.get(level);
        let (instrument, side) = (removed.instrument, removed.side);
        if removed.better == NIL {
            self.side_mut(instrument, side).best = removed.worse;
        } else {
            self.levels.get_mut(removed.better).worse = removed.worse;
        }
        if removed.worse == NIL {
            self.side_mut(instrument, side).worst = removed.better;
        } else {
            self.levels.get_mut(removed.worse).better = removed.better;
        }
        self.side_mut(instrument, side).level_count -= 1;
        self.forget_level(instrument, side, removed.price, level);
    }

    /// Records a level at `price` in the price index.
    #[inline]
    fn index_level(&mut self, instrument: u32, side: Side, price: Price, level: u32) {
        let inserted = self
            .price_index
            .insert(price_key(instrument, side, price), level);
        assert!(
            inserted,
            "price index holds as many entries as the level pool"
        );
    }

    /// Drops the level at `price` from the price index.
    #[inline]
    fn unindex_level(&mut self, instrument: u32, side: Side, price: Price, level: u32) {
        let levels = &self.levels;
        let indexed = self
            .price_index
            .remove(price_key(instrument, side, price), |slot| {
                level_key(levels, slot)
            });
        debug_assert_eq!(indexed, Some(level));
    }

    /// Records a level at `price` in its side's window if the price is
    /// inside it, else in the price index.
    #[inline]
    fn record_level(&mut self, instrument: u32, side: Side, price: Price, level: u32) {
        match self.window_tick_of(instrument, side, price) {
            Some(tick) => self.window_set_tick(instrument, side, Some(tick), level),
            None => self.index_level(instrument, side, price, level),
        }
    }

    /// Drops the record of a level at `price` from the window or the index.
    #[inline]
    fn forget_level(&mut self, instrument: u32, side: Side, price: Price, level: u32) {
        if self.window_tick_of(instrument, side, price).is_some() {
            self.window_clear(instrument, side, price);
        } else {
            self.unindex_level(instrument, side, price, level);
        }
    }

    /// Walks at most `HINT_WALK_MAX` levels from `hint` towards `price`:
    /// the level at `price` if it exists, else the neighbours a new level
    /// there would have. `None` if there is no hint or the walk is too long.
    #[inline]
    fn locate_near(&self, side: Side, price: Price, hint: u32) -> Option<Located> {
        if hint == NIL {
            return None;
        }
        let mut level = hint;
        let hint_price = self.levels.get(hint).price;
        if hint_price == price {
            return Some(Located::Existing(hint));
        }
        let walking_worse = side.is_better(hint_price, price);
        for _ in 0..HINT_WALK_MAX {
            let current = self.levels.get(level);
            let next = if walking_worse {
                current.worse
            } else {
                current.better
            };
            if next == NIL {
                return Some(if walking_worse {
                    Located::Between(level, NIL)
                } else {
                    Located::Between(NIL, level)
                });
            }
            let next_price = self.levels.get(next).price;
            if next_price == price {
                return Some(Located::Existing(next));
            }
            let passed = if walking_worse {
                side.is_better(price, next_price)
            } else {
                side.is_better(next_price, price)
            };
            if passed {
                return Some(if walking_worse {
                    Located::Between(level, next)
                } else {
                    Located::Between(next, level)
                });
            }
            level = next;
        }
        None
    }

    /// The neighbours (better, worse) between which a new level at `price`
    /// belongs. The price must not have a level yet.
    fn locate(&self, instrument: u32, side: Side, price: Price) -> (u32, u32) {
        let side_book = *self.side(instrument, side);
        if side_book.best == NIL {
            return (NIL, NIL);
        }
        let best_price = self.levels.get(side_book.best).price;
        if side.is_better(price, best_price) {
            return (NIL, side_book.best);
        }
        let worst_price = self.levels.get(side_book.worst).price;
        if side.is_better(worst_price, price) {
            return (side_book.worst, NIL);
        }
        let tick = self.instruments[instrument as usize].spec.tick_size;
        for steps in 1..=NEIGHBOUR_PROBES {
            let distance = tick.saturating_mul(steps);
            let (better_price, worse_price) = match side {
                Side::Buy => (price.checked_add(distance), price.checked_sub(distance)),
                Side::Sell => (price.checked_sub(distance), price.checked_add(distance)),
            };
            if let Some(level) = better_price.and_then(|p| self.find_level(instrument, side, p)) {
                return self.walk_worse_from(level, side, price);
            }
            if let Some(level) = worse_price.and_then(|p| self.find_level(instrument, side, p)) {
                return self.walk_better_from(level, side, price);
            }
        }
        if best_price.abs_diff(price) <= worst_price.abs_diff(price) {
            self.walk_worse_from(side_book.best, side, price)
        } else {
            self.walk_better_from(side_book.worst, side, price)
        }
    }

    /// From a level better than `price`, walks towards worse levels.
    fn walk_worse_from(&self, mut level: u32, side: Side, price: Price) -> (u32, u32) {
        loop {
            let worse = self.levels.get(level).worse;
            if worse == NIL || side.is_better(price, self.levels.get(worse).price) {
                return (level, worse);
            }
            level = worse;
        }
    }

    /// From a level worse than `price`, walks towards better levels.
    fn walk_better_from(&self, mut level: u32, side: Side, price: Price) -> (u32, u32) {
        loop {
            let better = self.levels.get(level).better;
            if better == NIL || side.is_better(self.levels.get(better).price, price) {
                return (better, level);
            }
            level = better;
        }
    }

    /// True if a level at `price` would take the place `level` holds in its
    /// side's list: strictly worse than its better neighbour and strictly
    /// better than its worse one. No other level can then sit at `price`,
    /// because the neighbours are adjacent in price order.
    #[inline]
    pub fn fits_in_place(&self, level: &Level, price: Price) -> bool {
        let side = level.side;
        (level.better == NIL || side.is_better(self.levels.get(level.better).price, price))
            && (level.worse == NIL || side.is_better(price, self.levels.get(level.worse).price))
    }

    /// Moves a level that holds a single order of `qty` lots to `price`,
    /// keeping its slot and its place in the list; the caller has checked
    /// with [`Books::fits_in_place`] that the place is right for the new
    /// price. Its record in the window or the price index moves exactly as
    /// a delete and an insert would move it, so both end up as if the level
    /// had been freed and taken again.
    #[inline]
    pub fn reprice_level(&mut self, level: u32, price: Price, qty: u32) {
        let current = *self.levels.get(level);
        debug_assert_eq!(current.order_count, 1);
        self.forget_level(current.instrument, current.side, current.price, level);
        let entry = self.levels.get_mut(level);
        entry.price = price;
        entry.qty_total = qty as u64;
        self.record_level(current.instrument, current.side, price, level);
    }

    /// Unlinks an empty level from its side and returns it to the pool.
    fn remove_level(&mut self, level: u32) {
        debug_assert_eq!(self.levels.get(level).order_count, 0);
        self.detach_level(level);
        self.levels.release(level);
    }

    /// Puts an order (already in the order pool) at the back of a level.
    #[inline]
    pub fn append_order(&mut self, level: u32, slot: u32) {
        let tail = self.levels.get(level).tail;
        let qty = {
            let order = self.orders.get_mut(slot);
            order.level = level;
            order.prev = tail;
            order.next = NIL;
            order.qty_open
        };
        if tail == NIL {
            self.levels.get_mut(level).head = slot;
        } else {
            self.orders.get_mut(tail).next = slot;
        }
        let level_entry = self.levels.get_mut(level);
        level_entry.tail = slot;
        level_entry.order_count += 1;
        level_entry.qty_total += qty as u64;
    }

    /// Takes an order out of its level (removing the level if it empties);
    /// the order keeps its pool slot.
    #[inline]
    pub fn unlink_order(&mut self, slot: u32) {
        let order = *self.orders.get(slot);
        if order.prev == NIL {
            self.levels.get_mut(order.level).head = order.next;
        } else {
            self.orders.get_mut(order.prev).next = order.next;
        }
        if order.next == NIL {
            self.levels.get_mut(order.level).tail = order.prev;
        } else {
            self.orders.get_mut(order.next).prev = order.prev;
        }
        let level = self.levels.get_mut(order.level);
        level.order_count -= 1;
        level.qty_total -= order.qty_open as u64;
        if level.order_count == 0 {
            self.remove_level(order.level);
        }
        let order = self.orders.get_mut(slot);
        order.level = NIL;
        order.prev = NIL;
        order.next = NIL;
    }

    /// Lowers a resting order's open quantity in place, keeping its priority.
    #[inline]
    pub fn reduce_order(&mut self, slot: u32, by: u32) {
        let order = self.orders.get_mut(slot);
        debug_assert!(by < order.qty_open);
        order.qty_open -= by;
        let level = order.level;
        self.levels.get_mut(level).qty_total -= by as u64;
    }
}

impl Books {
    /// Checks that every link of every slot, used or free, is `NIL` or in
    /// range, and that the free lists are sound, so that walking the books
    /// can never index out of bounds or loop forever. Used on restore.
    pub fn check_links(&self) -> Result<(), String> {
        let orders_max = self.orders.capacity();
        let levels_max = self.levels.capacity();
        let in_range = |link: u32, max: u32| link == NIL || link < max;
        for (slot, order) in self.orders.items.iter().enumerate() {
            if !(in_range(order.prev, orders_max)
                && in_range(order.next, orders_max)
                && in_range(order.level, levels_max))
            {
                return Err(format!("order slot {slot} has a link out of range"));
            }
        }
        for (slot, level) in self.levels.items.iter().enumerate() {
            let links_ok = [level.head, level.tail]
                .iter()
                .all(|&link| in_range(link, orders_max))
                && [level.better, level.worse]
                    .iter()
                    .all(|&link| in_range(link, levels_max));
            if !links_ok || level.instrument as usize >= self.instruments.len() {
                return Err(format!("level slot {slot} has a link out of range"));
            }
        }
        for (instrument, book) in self.instruments.iter().enumerate() {
            for side_book in &book.sides {
                if !(in_range(side_book.best, levels_max) && in_range(side_book.worst, levels_max))
                {
                    return Err(format!(
                        "instrument {instrument}: best or worst level out of range"
                    ));
                }
            }
        }
        self.orders.check_free_list("order pool")?;
        self.levels.check_free_list("level pool")?;
        self.price_index.check_shape("price index", levels_max)?;
        let levels = &self.levels;
        self.price_index
            .check_displaced("price index", |slot| level_key(levels, slot))?;
        if self.window_bits.len() != self.instruments.len() * 2
            || self.window_slots.len() != self.instruments.len() * 2
        {
            return Err("tick windows have the wrong size".to_string());
        }
        for (bits, slots) in self.window_bits.iter().zip(&self.window_slots) {
            for (tick, slot) in slots.iter().enumerate() {
                if bits[tick / 64] >> (tick % 64) & 1 != 0 && *slot >= levels_max {
                    return Err(format!("tick window slot {tick} out of range"));
                }
            }
        }
        if self.price_index.len() as u64 + self.window_levels() != self.levels.live() as u64 {
            return Err(
                "price index and tick windows disagree with the level pool on the number of levels"
                    .to_string(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The tick windows under prices that roam far beyond a window's width,
    //! so that windows move, hand levels to and from the price index, and
    //! sides empty and refill: every command is followed by a full audit,
    //! and snapshots must round-trip the windows.

    use crate::command::{CancelOrder, Command, NewOrder, ReplaceOrder};
    use crate::config::{EngineConfig, InstrumentSpec};
    use crate::engine::Engine;
    use crate::types::{AccountId, InstrumentId, OrderType, SessionId, Side, TimeInForce, Token};

    #[test]
    fn windows_stay_consistent_while_prices_roam() {
        let spec = |tick_size| InstrumentSpec {
            tick_size,
            band_min: tick_size,
            band_max: tick_size * 100_000,
            qty_max: 1_000,
        };
        let mut engine = Engine::new(EngineConfig {
            instruments: vec![spec(1), spec(7)],
            instruments_max: 2,
            orders_max: 600,
            levels_max: 400,
            sessions_max: 2,
            accounts_max: 2,
        })
        .unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut mid = [50_000i64; 2];
        let mut next_token = 1u64;
        let (mut indexed_seen, mut window_moves) = (0u64, 0u32);
        let mut bases = [0u64; 4];
        for step in 0..40_000u32 {
            let instrument = (next() % 2) as u32;
            let tick = [1u64, 7][instrument as usize];
            // Mostly small drifts, now and then a jump of several windows.
            let r = next();
            mid[instrument as usize] += match r % 100 {
                0 => (r >> 8) as i64 % 20_000 - 10_000,
                _ => (r >> 8) as i64 % 5 - 2,
            };
            mid[instrument as usize] = mid[instrument as usize].clamp(10_000, 90_000);
            let side = if next() % 2 == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let spread = [3u64, 40, 6_000][(next() % 3) as usize];
            let offset = next() % spread + 1;
            let ticks = match side {
                Side::Buy => mid[instrument as usize] as u64 - offset,
                Side::Sell => mid[instrument as usize] as u64 + offset,
            };
            let price = ticks * tick;
            let session = (next() % 2) as u16;
            let old_token = Token::from_u64(next() % next_token.max(1) + 1);
            let command = match next() % 10 {
                0..=3 => {
                    next_token += 1;
                    Command::New(NewOrder {
                        session: SessionId(session),
                        account: AccountId(session as u32),
                        token: Token::from_u64(next_token),
                        instrument: InstrumentId(instrument),
                        side,
                        order_type: OrderType::Limit,
                        price,
                        qty: (next() % 20 + 1) as u32,
                        time_in_force: TimeInForce::Gtc,
                        post_only: false,
                        client_tag: 0,
                    })
                }
                4 => Command::Cancel(CancelOrder {
                    session: SessionId(session),
                    token: old_token,
                    qty_after: 0,
                }),
                _ => Command::Replace(ReplaceOrder {
                    session: SessionId(session),
                    token: old_token,
                    new_token: old_token,
                    price,
                    qty: (next() % 20 + 1) as u32,
                }),
            };
            engine.apply(&command, &mut |_| {});
            if let Err(problem) = engine.check_invariants() {
                panic!("after command {step} ({command:?}): {problem}");
            }
            indexed_seen += engine.books.indexed_levels();
            for (index, base) in bases.iter_mut().enumerate() {
                let side_base = engine.books.instruments[index / 2].sides[index % 2].window_base;
                if side_base != *base
                    && engine.books.instruments[index / 2].sides[index % 2].level_count > 1
                {
                    window_moves += 1;
                }
                *base = side_base;
            }
            if step % 2_000 == 0 {
                let bytes = engine.snapshot(step as u64);
                let (restored, _) = Engine::restore(&bytes).unwrap();
                assert_eq!(restored.state_hash(), engine.state_hash());
                engine = restored;
            }
        }
        // The run must have used both the price index and moved windows.
        assert!(indexed_seen > 1_000, "{indexed_seen}");
        assert!(window_moves > 20, "{window_moves}");
    }
}
