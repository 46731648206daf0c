//! The preallocated store of resting orders and of price levels. Both are
//! slabs: a vector sized once from the configuration, whose free slots form an
//! intrusive singly linked list, so taking and returning a slot is O(1) and
//! never allocates.

use crate::types::{Price, Side};
use rkyv::{Archive, Deserialize, Serialize};

/// The "no slot" marker in every link.
pub const NIL: u32 = u32::MAX;

/// A resting order. It stays small on purpose (the target is at most 64
/// bytes a resting order): price, instrument and side live in its level.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// `session << 112 | token`: the key of the token index.
    pub key: u128,
    pub order_id: u64,
    pub qty_open: u32,
    pub account: u32,
    /// The previous (older) order at the same level, or `NIL`.
    pub prev: u32,
    /// The next (newer) order at the same level, or `NIL`; also the free link.
    pub next: u32,
    /// The order's level; `NIL` in a free slot (an order is unlinked before
    /// its slot is released), which is how a walk over the pool tells live
    /// slots from free ones.
    pub level: u32,
    pub post_only: bool,
}

const _: () = assert!(
    std::mem::size_of::<Order>() <= 48,
    "an order must stay within 48 bytes"
);

/// One price level of one side of one instrument: a FIFO of orders.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub price: Price,
    pub qty_total: u64,
    pub head: u32,
    pub tail: u32,
    /// The next better level on the same side, or `NIL` for the best.
    pub better: u32,
    /// The next worse level on the same side, or `NIL`; also the free link.
    pub worse: u32,
    pub order_count: u32,
    pub instrument: u32,
    pub side: Side,
}

const _: () = assert!(
    std::mem::size_of::<Level>() <= 48,
    "a level must stay within 48 bytes"
);

/// An item a [`Slab`] can hold: it lends one of its links to the free list.
pub trait SlabItem: Copy {
    const VACANT: Self;
    fn free_link(&self) -> u32;
    fn set_free_link(&mut self, link: u32);
}

impl SlabItem for Order {
    const VACANT: Order = Order {
        key: 0,
        order_id: 0,
        qty_open: 0,
        account: 0,
        prev: NIL,
        next: NIL,
        level: NIL,
        post_only: false,
    };
    fn free_link(&self) -> u32 {
        self.next
    }
    fn set_free_link(&mut self, link: u32) {
        self.next = link;
    }
}

impl SlabItem for Level {
    const VACANT: Level = Level {
        price: 0,
        qty_total: 0,
        head: NIL,
        tail: NIL,
        better: NIL,
        worse: NIL,
        order_count: 0,
        instrument: 0,
        side: Side::Buy,
    };
    fn free_link(&self) -> u32 {
        self.worse
    }
    fn set_free_link(&mut self, link: u32) {
        self.worse = link;
    }
}

/// A fixed-capacity slab with an intrusive free list.
#[derive(Archive, Serialize, Deserialize, Clone, Debug)]
pub struct Slab<T> {
    pub items: Vec<T>,
    free_head: u32,
    live: u32,
}

impl<T: SlabItem> Slab<T> {
    pub fn with_capacity(capacity: u32) -> Slab<T> {
        assert!(capacity > 0 && capacity < NIL, "slab capacity out of range");
        let mut items = vec![T::VACANT; capacity as usize];
        for (index, item) in items.iter_mut().enumerate() {
            let next = index as u32 + 1;
            item.set_free_link(if next == capacity { NIL } else { next });
        }
        Slab {
            items,
            free_head: 0,
            live: 0,
        }
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.free_head == NIL
    }

    #[inline]
    pub fn live(&self) -> u32 {
        self.live
    }

    #[inline]
    pub fn capacity(&self) -> u32 {
        self.items.len() as u32
    }

    /// Takes a free slot and stores `item` in it; `None` if the slab is full.
    #[inline]
    pub fn allocate(&mut self, item: T) -> Option<u32> {
        let index = self.free_head;
        if index == NIL {
            return None;
        }
        self.free_head = self.items[index as usize].free_link();
        self.items[index as usize] = item;
        self.live += 1;
        Some(index)
    }

    /// Returns a slot to the free list.
    #[inline]
    pub fn release(&mut self, index: u32) {
        debug_assert!(self.live > 0);
        // Only the free link is written: the stale rest of the slot is never
        // read again before `allocate` overwrites the whole item.
        self.items[index as usize].set_free_link(self.free_head);
        self.free_head = index;
        self.live -= 1;
    }

    /// Walks the free list: every link in range, no cycle, and exactly
    /// `capacity - live` free slots.
    pub fn check_free_list(&self, name: &str) -> Result<(), String> {
        let capacity = self.capacity();
        if self.live > capacity {
            return Err(format!(
                "{name}: {} live slots in a pool of {capacity}",
                self.live
            ));
        }
        let mut free = 0u32;
        let mut index = self.free_head;
        while index != NIL {
            if index >= capacity || free >= capacity - self.live {
                return Err(format!(
                    "{name}: free list is out of range, cyclic or too long"
                ));
            }
            free += 1;
            index = self.items[index as usize].free_link();
        }
        if free != capacity - self.live {
            return Err(format!(
                "{name}: {free} free slots listed, {} expected",
                capacity - self.live
            ));
        }
        Ok(())
    }

    #[inline]
    pub fn get(&self, index: u32) -> &T {
        &self.items[index as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, index: u32) -> &mut T {
        &mut self.items[index as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_hands_out_every_slot_once_then_refuses() {
        let mut slab: Slab<Order> = Slab::with_capacity(4);
        let mut taken: Vec<u32> = (0..4)
            .map(|_| slab.allocate(Order::VACANT).unwrap())
            .collect();
        assert!(slab.is_full());
        assert_eq!(slab.allocate(Order::VACANT), None);
        taken.sort();
        assert_eq!(taken, vec![0, 1, 2, 3]);
        slab.release(2);
        assert_eq!(slab.live(), 3);
        assert_eq!(slab.allocate(Order::VACANT), Some(2));
    }
}
