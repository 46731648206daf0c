//! A fixed-capacity hash map from `u128` keys to `u32` values with open
//! addressing and linear probing. It never grows: its slot count is a power of
//! two fixed at construction, at least twice the most entries it may hold, so
//! probe sequences stay short. Deletion shifts later entries back instead of
//! leaving tombstones, so a long day of inserts and deletes never degrades it.
//! The hash is a fixed multiply-shift with no seed, so the layout, and with it
//! everything derived from it, is the same on every run.

use rkyv::{Archive, Deserialize, Serialize};

/// Marks an empty slot; no stored value may equal it.
pub const EMPTY: u32 = u32::MAX;

#[derive(Archive, Serialize, Deserialize, Clone, Debug)]
pub struct OpenTable {
    keys: Vec<u128>,
    values: Vec<u32>,
    /// `slot count - 1`.
    mask: u64,
    /// `64 - log2(slot count)`: the multiply-shift keeps the high bits.
    shift: u32,
    len: u32,
    len_max: u32,
}

impl OpenTable {
    /// A table for at most `len_max` entries.
    pub fn with_capacity(len_max: u32) -> OpenTable {
        assert!(
            len_max > 0 && len_max <= 1 << 30,
            "open table capacity out of range"
        );
        let slots = (len_max as u64 * 2).next_power_of_two().max(2);
        assert!(slots.is_power_of_two() && slots >= 2 * len_max as u64);
        OpenTable {
            keys: vec![0; slots as usize],
            values: vec![EMPTY; slots as usize],
            mask: slots - 1,
            shift: 64 - slots.trailing_zeros(),
            len: 0,
            len_max,
        }
    }

    #[inline]
    fn home_slot(&self, key: u128) -> usize {
        let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(23);
        (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == self.len_max
    }

    /// Total bytes of the slot arrays.
    pub fn bytes(&self) -> usize {
        self.keys.len() * std::mem::size_of::<u128>()
            + self.values.len() * std::mem::size_of::<u32>()
    }

    /// Checks the table's own arithmetic (slot count, mask, shift, fill),
    /// so that probing a restored table can neither index out of bounds nor
    /// probe forever.
    pub fn check_shape(&self, name: &str) -> Result<(), String> {
        let slots = self.keys.len() as u64;
        let shape_ok = slots.is_power_of_two()
            && self.values.len() as u64 == slots
            && self.mask == slots - 1
            && self.shift == 64 - slots.trailing_zeros()
            && slots >= 2 * self.len_max as u64
            && self.len <= self.len_max;
        let filled = self.values.iter().filter(|&&value| value != EMPTY).count();
        if !shape_ok || filled != self.len as usize {
            return Err(format!("{name}: table shape or fill count is inconsistent"));
        }
        Ok(())
    }

    #[inline]
    pub fn get(&self, key: u128) -> Option<u32> {
        let mut slot = self.home_slot(key);
        // The table is never more than half full, so an empty slot ends
        // every probe sequence well before it wraps around.
        loop {
            let value = self.values[slot];
            if value == EMPTY {
                return None;
            }
            if self.keys[slot] == key {
                return Some(value);
            }
            slot = (slot + 1) & self.mask as usize;
        }
    }

    /// Inserts a key that is not present. Returns false, changing nothing,
    /// if the table already holds `len_max` entries.
    #[inline]
    pub fn insert(&mut self, key: u128, value: u32) -> bool {
        debug_assert!(value != EMPTY);
        if self.len == self.len_max {
            return false;
        }
        let mut slot = self.home_slot(key);
        loop {
            if self.values[slot] == EMPTY {
                self.keys[slot] = key;
                self.values[slot] = value;
                self.len += 1;
                return true;
            }
            debug_assert!(self.keys[slot] != key, "key inserted twice");
            slot = (slot + 1) & self.mask as usize;
        }
    }

    /// Changes the value of a present key.
    #[inline]
    pub fn update(&mut self, key: u128, value: u32) -> bool {
        let mut slot = self.home_slot(key);
        loop {
            if self.values[slot] == EMPTY {
                return false;
            }
            if self.keys[slot] == key {
                self.values[slot] = value;
                return true;
            }
            slot = (slot + 1) & self.mask as usize;
        }
    }

    /// Removes a key, returning its value.
    #[inline]
    pub fn remove(&mut self, key: u128) -> Option<u32> {
        let mask = self.mask as usize;
        let mut slot = self.home_slot(key);
        loop {
            let value = self.values[slot];
            if value == EMPTY {
                return None;
            }
            if self.keys[slot] == key {
                break;
            }
            slot = (slot + 1) & mask;
        }
        let removed = self.values[slot];
        // Backward-shift deletion: move each later entry of the cluster into
        // the hole if its home slot does not lie (cyclically) between the hole
        // and its current slot.
        let mut hole = slot;
        let mut next = (hole + 1) & mask;
        while self.values[next] != EMPTY {
            let home = self.home_slot(self.keys[next]);
            let distance_to_home = next.wrapping_sub(home) & mask;
            let distance_to_hole = next.wrapping_sub(hole) & mask;
            if distance_to_home >= distance_to_hole {
                self.keys[hole] = self.keys[next];
                self.values[hole] = self.values[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.values[hole] = EMPTY;
        self.len -= 1;
        Some(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn full_table_refuses_insert_cleanly() {
        let mut table = OpenTable::with_capacity(3);
        assert!(table.insert(1, 10));
        assert!(table.insert(2, 20));
        assert!(table.insert(3, 30));
        assert!(table.is_full());
        assert!(!table.insert(4, 40));
        assert_eq!(table.get(4), None);
        assert_eq!(table.remove(2), Some(20));
        assert!(table.insert(4, 40));
        assert_eq!(table.get(4), Some(40));
    }

    proptest! {
        #[test]
        fn table_behaves_like_a_btreemap(ops in proptest::collection::vec((0u8..3, 0u128..64, 0u32..1000), 1..400)) {
            let mut table = OpenTable::with_capacity(48);
            let mut model: BTreeMap<u128, u32> = BTreeMap::new();
            for (op, key, value) in ops {
                // Keys spread over both halves of the u128 to exercise the fold.
                let key = key << 100 | key;
                match op {
                    0 => {
                        if model.contains_key(&key) { continue; }
                        let inserted = table.insert(key, value);
                        prop_assert_eq!(inserted, model.len() < 48);
                        if inserted { model.insert(key, value); }
                    }
                    1 => prop_assert_eq!(table.remove(key), model.remove(&key)),
                    _ => prop_assert_eq!(table.get(key), model.get(&key).copied()),
                }
                prop_assert_eq!(table.len() as usize, model.len());
            }
            for (key, value) in &model {
                prop_assert_eq!(table.get(*key), Some(*value));
            }
        }
    }
}
