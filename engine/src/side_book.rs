//! The books of all instruments: for each instrument and side, a doubly
//! linked list of price levels sorted best first, each level a FIFO of
//! orders. A price index maps (instrument, side, price) to its level, so
//! adding to an existing level, removing an order, removing an empty level
//! and reading the best price are all O(1). Only a brand-new level must find
//! its place in the list: it probes a few neighbouring ticks in the price
//! index for an existing level to start from, and otherwise walks from the
//! end of the list nearer in price; the walk is bounded by `levels_max`.

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
}

impl SideBook {
    const EMPTY: SideBook = SideBook {
        best: NIL,
        worst: NIL,
        level_count: 0,
    };
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

    #[inline]
    pub fn find_level(&self, instrument: u32, side: Side, price: Price) -> Option<u32> {
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
        let (better, worse) = match self.locate_with_hint(instrument, side, price, hint) {
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
        self.attach_level(level, better, worse);
        Some(level)
    }

    /// Where `price` belongs on a side: its level, or the neighbours a new
    /// level there would have. A short walk from `hint` (a live level of the
    /// side near `price`, or `NIL`) answers most calls; the price index and
    /// a full [`Books::locate`] answer the rest.
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

    /// Links a level that is in no list (its price, instrument and side
    /// already set) between `better` and `worse`, and indexes its price.
    #[inline]
    fn attach_level(&mut self, level: u32, better: u32, worse: u32) {
        let entry = self.levels.get_mut(level);
        entry.better = better;
        entry.worse = worse;
        let (instrument, side, price) = (entry.instrument, entry.side, entry.price);
        let inserted = self
            .price_index
            .insert(price_key(instrument, side, price), level);
        assert!(
            inserted,
            "price index holds as many entries as the level pool"
        );
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
        let levels = &self.levels;
        let indexed = self
            .price_index
            .remove(price_key(instrument, side, removed.price), |slot| {
                level_key(levels, slot)
            });
        debug_assert_eq!(indexed, Some(level));
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
    /// price. The price index entry moves exactly as a delete and an insert
    /// would move it, so the index ends up as if the level had been freed
    /// and taken again.
    #[inline]
    pub fn reprice_level(&mut self, level: u32, price: Price, qty: u32) {
        let current = *self.levels.get(level);
        debug_assert_eq!(current.order_count, 1);
        let levels = &self.levels;
        let indexed = self.price_index.remove(
            price_key(current.instrument, current.side, current.price),
            |slot| level_key(levels, slot),
        );
        debug_assert_eq!(indexed, Some(level));
        let entry = self.levels.get_mut(level);
        entry.price = price;
        entry.qty_total = qty as u64;
        let inserted = self
            .price_index
            .insert(price_key(current.instrument, current.side, price), level);
        debug_assert!(inserted, "a price index entry was freed just before");
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
        if self.price_index.len() != self.levels.live() {
            return Err("price index and level pool disagree on the number of levels".to_string());
        }
        Ok(())
    }
}
