//! A full audit of the engine's internal consistency, for tests and for
//! checking a restored snapshot: every list, count, total and index agrees
//! with every other, and no book is crossed. It walks everything, so it is
//! O(state) and not run on the hot path; `apply` asserts the cheap part
//! (the touched book is not crossed) on every command, in release builds too.

use crate::engine::Engine;
use crate::order_pool::NIL;
use crate::types::Side;

impl Engine {
    /// Checks every structural invariant; the error names the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let books = &self.books;
        let mut orders_seen: u64 = 0;
        let mut levels_seen: u64 = 0;
        for (instrument, book) in books.instruments.iter().enumerate() {
            for side in [Side::Buy, Side::Sell] {
                let side_book = book.sides[side.index()];
                let mut level_index = side_book.best;
                let mut previous = NIL;
                let mut previous_price = None;
                let mut count = 0u32;
                let mut in_window = 0u32;
                while level_index != NIL {
                    if count >= books.levels.capacity() {
                        return Err(format!(
                            "instrument {instrument} {side:?}: level list is cyclic"
                        ));
                    }
                    let level = books.levels.get(level_index);
                    let place =
                        format!("instrument {instrument} {side:?} level at {}", level.price);
                    if level.better != previous {
                        return Err(format!("{place}: back link broken"));
                    }
                    if level.instrument != instrument as u32 || level.side != side {
                        return Err(format!("{place}: belongs to another book"));
                    }
                    if let Some(previous_price) = previous_price {
                        if !side.is_better(previous_price, level.price) {
                            return Err(format!("{place}: levels out of price order"));
                        }
                    }
                    if books.find_level(instrument as u32, side, level.price) != Some(level_index) {
                        return Err(format!("{place}: price index disagrees"));
                    }
                    if let Some(tick) = books.window_tick_of(instrument as u32, side, level.price) {
                        let bits = books.window_bits(instrument as u32, side);
                        if bits[tick / 64] >> (tick % 64) & 1 == 0
                            || books.window_slot(instrument as u32, side, tick) != level_index
                        {
                            return Err(format!("{place}: tick window disagrees"));
                        }
                        in_window += 1;
                    }
                    let (mut qty_total, mut order_count, mut slot, mut previous_slot) =
                        (0u64, 0u32, level.head, NIL);
                    while slot != NIL {
                        if order_count >= books.orders.capacity() {
                            return Err(format!("{place}: order list is cyclic"));
                        }
                        let order = books.orders.get(slot);
                        if order.prev != previous_slot || order.level != level_index {
                            return Err(format!("{place}: order slot {slot} has broken links"));
                        }
                        if order.qty_open == 0 {
                            return Err(format!(
                                "{place}: order {} rests with zero quantity",
                                order.order_id
                            ));
                        }
                        if self.find_slot(order.key) != Some(slot) {
                            return Err(format!(
                                "{place}: order {} missing from the token index",
                                order.order_id
                            ));
                        }
                        qty_total += order.qty_open as u64;
                        order_count += 1;
                        previous_slot = slot;
                        slot = order.next;
                    }
                    if previous_slot != level.tail {
                        return Err(format!("{place}: tail link broken"));
                    }
                    if order_count == 0
                        || order_count != level.order_count
                        || qty_total != level.qty_total
                    {
                        return Err(format!(
                            "{place}: holds {order_count} orders for {qty_total} lots but records {} for {}",
                            level.order_count, level.qty_total
                        ));
                    }
                    orders_seen += order_count as u64;
                    count += 1;
                    previous = level_index;
                    previous_price = Some(level.price);
                    level_index = level.worse;
                }
                if previous != side_book.worst || count != side_book.level_count {
                    return Err(format!(
                        "instrument {instrument} {side:?}: worst link or level count wrong"
                    ));
                }
                // Every level inside the window has its bit, so equal counts
                // mean every set bit is a live level.
                let bits_set: u32 = books
                    .window_bits(instrument as u32, side)
                    .iter()
                    .map(|word| word.count_ones())
                    .sum();
                if bits_set != in_window {
                    return Err(format!(
                        "instrument {instrument} {side:?}: tick window marks {bits_set} ticks for {in_window} levels"
                    ));
                }
                levels_seen += count as u64;
            }
            if books.is_crossed(instrument as u32) {
                return Err(format!("instrument {instrument}: book is crossed"));
            }
        }
        if orders_seen != books.orders.live() as u64 || orders_seen != self.token_index.len() as u64
        {
            return Err(format!(
                "{orders_seen} orders in books, {} in the pool, {} in the token index",
                books.orders.live(),
                self.token_index.len()
            ));
        }
        // Every order in a book was checked to name its level, so equal
        // counts mean every slot outside the books (a free one) has none:
        // cancel-all tells live slots from free ones by that alone.
        let slots_with_level = books
            .orders
            .items
            .iter()
            .filter(|order| order.level != NIL)
            .count() as u64;
        if slots_with_level != orders_seen {
            return Err(format!(
                "{slots_with_level} pool slots name a level, but {orders_seen} orders are in books"
            ));
        }
        if books.indexed_levels() + books.window_levels() != levels_seen {
            return Err(format!(
                "{levels_seen} levels in books, {} in the price index and {} in tick windows",
                books.indexed_levels(),
                books.window_levels()
            ));
        }
        if levels_seen != books.levels.live() as u64 {
            return Err(format!(
                "{levels_seen} levels in books, {} in the pool",
                books.levels.live()
            ));
        }
        Ok(())
    }
}
