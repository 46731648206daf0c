//! The 64-bit hash of the whole engine state. It walks the books in their
//! logical order (instrument, side, levels best first, orders oldest first)
//! and hashes values, never memory layout, so any two engines that hold the
//! same orders in the same priority agree on it, on every machine.

use crate::engine::Engine;
use crate::order_pool::NIL;
use crate::stable_hash::StableHasher;
use crate::types::{Side, StpMode};

impl Engine {
    /// The hash of all book state, order ids and match ids, halts and
    /// self-trade prevention modes. O(live orders + accounts).
    pub fn state_hash(&self) -> u64 {
        let mut hasher = StableHasher::new();
        hasher.write_u64(self.next_order_id);
        hasher.write_u64(self.next_match_id);
        for (index, book) in self.books.instruments.iter().enumerate() {
            hasher.write_u64(index as u64);
            hasher.write_u64(book.halted as u64);
            for side in [Side::Buy, Side::Sell] {
                let side_book = book.sides[side.index()];
                hasher.write_u64(side_book.level_count as u64);
                let mut level_index = side_book.best;
                while level_index != NIL {
                    let level = self.books.levels.get(level_index);
                    hasher.write_u64(level.price);
                    hasher.write_u64(level.qty_total);
                    hasher.write_u64(level.order_count as u64);
                    let mut slot = level.head;
                    while slot != NIL {
                        let order = self.books.orders.get(slot);
                        hasher.write_u128(order.key);
                        hasher.write_u64(order.order_id);
                        hasher.write_u64((order.qty_open as u64) << 8 | order.post_only as u64);
                        hasher.write_u64(order.account as u64);
                        slot = order.next;
                    }
                    level_index = level.worse;
                }
            }
        }
        for (account, mode) in self.stp_modes.iter().enumerate() {
            if *mode != StpMode::Off {
                hasher.write_u64((account as u64) << 8 | *mode as u64);
            }
        }
        hasher.finish()
    }
}
