//! A fixed-capacity hash index from `u128` keys to `u32` slot numbers with
//! open addressing and linear probing. It stores only the 4-byte slot
//! numbers: the key of an entry is read back from the slot it names (the
//! order or level it indexes), through a `key_of` function the caller passes.
//! That keeps the index at 8 bytes an entry at its load limit instead of 40.
//! It never grows: its slot count is a power of two fixed at construction, at
//! least twice the most entries it may hold, so probe sequences stay short.
//! Deletion shifts later entries back instead of leaving tombstones, so a
//! long day of inserts and deletes never degrades it. The table counts the
//! entries that sit away from their home slot; while there are none, which
//! is the usual case at the low load the tables run at, a deletion only
//! clears its slot, because no later entry can need shifting back. Neither
//! way of finding a home slot has a seed, so the layout is the same on every
//! run.

use rkyv::{Archive, Deserialize, Serialize};

/// Marks an empty slot; no stored value may equal it.
pub const EMPTY: u32 = u32::MAX;

/// How a table finds the home slot of a key.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Homing {
    /// A multiply-shift of the whole key: keys that are alike land far
    /// apart. For keys a client chooses freely, such as order tokens.
    Scattered,
    /// The low word of the key plus a scattered offset of the high word:
    /// keys whose low words are close land in neighbouring slots, so the
    /// price levels of one side of a book, which cluster around its inside
    /// prices, share a few cache lines instead of one line each. The offset
    /// keeps the books of different instruments and sides apart.
    Clustered,
}

/// The multiplier of both ways of homing: the fractional part of the
/// golden ratio, odd.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Archive, Serialize, Deserialize, Clone, Debug)]
pub struct OpenTable {
    values: Vec<u32>,
    /// `slot count - 1`.
    mask: u64,
    /// `64 - log2(slot count)`: the multiply-shift keeps the high bits.
    shift: u32,
    len: u32,
    len_max: u32,
    /// Entries not in their home slot.
    displaced: u32,
    homing: Homing,
}

impl OpenTable {
    /// A table for at most `len_max` entries.
    pub fn with_capacity(len_max: u32, homing: Homing) -> OpenTable {
        assert!(
            len_max > 0 && len_max <= 1 << 30,
            "open table capacity out of range"
        );
        let slots = (len_max as u64 * 2).next_power_of_two().max(2);
        assert!(slots.is_power_of_two() && slots >= 2 * len_max as u64);
        OpenTable {
            values: vec![EMPTY; slots as usize],
            mask: slots - 1,
            shift: 64 - slots.trailing_zeros(),
            len: 0,
            len_max,
            displaced: 0,
            homing,
        }
    }

    #[inline]
    fn home_slot(&self, key: u128) -> usize {
        match self.homing {
            Homing::Scattered => {
                let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(23);
                (folded.wrapping_mul(GOLDEN) >> self.shift) as usize
            }
            Homing::Clustered => {
                let offset = ((key >> 64) as u64).wrapping_mul(GOLDEN);
                ((key as u64).wrapping_add(offset) & self.mask) as usize
            }
        }
    }

    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Total bytes of the slot array.
    pub fn bytes(&self) -> usize {
        self.values.len() * std::mem::size_of::<u32>()
    }

    /// Checks the table's own arithmetic (slot count, mask, shift, fill) and
    /// that every stored value is below `value_limit`, so that probing a
    /// restored table can neither index out of bounds nor probe forever.
    pub fn check_shape(&self, name: &str, value_limit: u32) -> Result<(), String> {
        let slots = self.values.len() as u64;
        let shape_ok = slots.is_power_of_two()
            && self.mask == slots - 1
            && self.shift == 64 - slots.trailing_zeros()
            && slots >= 2 * self.len_max as u64
            && self.len <= self.len_max
            && self.displaced <= self.len;
        let filled = self.values.iter().filter(|&&value| value != EMPTY).count();
        let values_ok = self
            .values
            .iter()
            .all(|&value| value == EMPTY || value < value_limit);
        if !shape_ok || !values_ok || filled != self.len as usize {
            return Err(format!(
                "{name}: table shape, values or fill count is inconsistent"
            ));
        }
        Ok(())
    }

    /// Checks that the count of entries away from their home slot is right,
    /// since deletion trusts it. Call it only after [`OpenTable::check_shape`]
    /// and once `key_of` can read every stored value.
    pub fn check_displaced(&self, name: &str, key_of: impl Fn(u32) -> u128) -> Result<(), String> {
        let displaced = self
            .values
            .iter()
            .enumerate()
            .filter(|&(slot, &value)| value != EMPTY && self.home_slot(key_of(value)) != slot)
            .count();
        if displaced != self.displaced as usize {
            return Err(format!(
                "{name}: {displaced} entries away from home, {} recorded",
                self.displaced
            ));
        }
        Ok(())
    }

    /// The value stored for `key`, reading each candidate's key via `key_of`.
    #[inline]
    pub fn get(&self, key: u128, key_of: impl Fn(u32) -> u128) -> Option<u32> {
        let mut slot = self.home_slot(key);
        // The table is never more than half full, so an empty slot ends
        // every probe sequence well before it wraps around.
        loop {
            let value = self.values[slot];
            if value == EMPTY {
                return None;
            }
            if key_of(value) == key {
                return Some(value);
            }
            slot = (slot + 1) & self.mask as usize;
        }
    }

    /// Inserts `value` under `key`, which must not be present. Returns
    /// false, changing nothing, if the table already holds `len_max` entries.
    #[inline]
    pub fn insert(&mut self, key: u128, value: u32) -> bool {
        debug_assert!(value != EMPTY);
        if self.len == self.len_max {
            return false;
        }
        let home = self.home_slot(key);
        let mut slot = home;
        while self.values[slot] != EMPTY {
            slot = (slot + 1) & self.mask as usize;
        }
        self.values[slot] = value;
        self.len += 1;
        self.displaced += (slot != home) as u32;
        true
    }

    /// Removes `key`, returning its value.
    #[inline]
    pub fn remove(&mut self, key: u128, key_of: impl Fn(u32) -> u128) -> Option<u32> {
        let mask = self.mask as usize;
        let home = self.home_slot(key);
        let mut slot = home;
        loop {
            let value = self.values[slot];
            if value == EMPTY {
                return None;
            }
            if key_of(value) == key {
                break;
            }
            slot = (slot + 1) & mask;
        }
        let removed = self.values[slot];
        self.len -= 1;
        if self.displaced == 0 {
            // Every entry is at home, so none after this one can belong in
            // its slot: clearing it keeps every probe sequence intact.
            self.values[slot] = EMPTY;
            return Some(removed);
        }
        self.displaced -= (slot != home) as u32;
        // Backward-shift deletion: move each later entry of the cluster into
        // the hole if its home slot does not lie (cyclically) between the hole
        // and its current slot.
        let mut hole = slot;
        let mut next = (hole + 1) & mask;
        while self.values[next] != EMPTY {
            let home = self.home_slot(key_of(self.values[next]));
            let distance_to_home = next.wrapping_sub(home) & mask;
            let distance_to_hole = next.wrapping_sub(hole) & mask;
            if distance_to_home >= distance_to_hole {
                // The entry was away from home (it sat past the hole); it is
                // at home now only if the hole is its home.
                self.displaced -= (hole == home) as u32;
                self.values[hole] = self.values[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.values[hole] = EMPTY;
        Some(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Values index a vector of keys, as slots index the order pool.
    fn key_of(keys: &[u128]) -> impl Fn(u32) -> u128 + '_ {
        move |value| keys[value as usize]
    }

    #[test]
    fn full_table_refuses_insert_cleanly() {
        let keys: Vec<u128> = (0..8).map(|k| k * 1_000_003).collect();
        let mut table = OpenTable::with_capacity(3, Homing::Scattered);
        assert!(table.insert(keys[1], 1));
        assert!(table.insert(keys[2], 2));
        assert!(table.insert(keys[3], 3));
        assert!(!table.insert(keys[4], 4));
        assert_eq!(table.get(keys[4], key_of(&keys)), None);
        assert_eq!(table.remove(keys[2], key_of(&keys)), Some(2));
        assert!(table.insert(keys[4], 4));
        assert_eq!(table.get(keys[4], key_of(&keys)), Some(4));
    }

    proptest! {
        #[test]
        fn table_behaves_like_a_btreemap(ops in proptest::collection::vec((0u8..3, 0u32..64), 1..400)) {
            // Key i lives in slot i. The first set spreads keys over both
            // halves of the u128; the second keeps one high word and puts
            // low words close together and a slot count apart, so that
            // clustered homing collides and displaces entries.
            let spread: Vec<u128> = (0..64u128).map(|k| k << 100 | k).collect();
            let crowded: Vec<u128> = (0..64u128).map(|k| (7 << 64) | ((k % 8) * 128 + k / 8)).collect();
            for homing in [Homing::Scattered, Homing::Clustered] {
                for keys in [&spread, &crowded] {
                    let mut table = OpenTable::with_capacity(48, homing);
                    let mut model: BTreeMap<u128, u32> = BTreeMap::new();
                    for &(op, index) in &ops {
                        let key = keys[index as usize];
                        match op {
                            0 => {
                                if model.contains_key(&key) { continue; }
                                let inserted = table.insert(key, index);
                                prop_assert_eq!(inserted, model.len() < 48);
                                if inserted { model.insert(key, index); }
                            }
                            1 => prop_assert_eq!(table.remove(key, key_of(keys)), model.remove(&key)),
                            _ => prop_assert_eq!(table.get(key, key_of(keys)), model.get(&key).copied()),
                        }
                        prop_assert_eq!(table.len() as usize, model.len());
                        prop_assert!(table.check_displaced("table", key_of(keys)).is_ok());
                    }
                    for (key, value) in &model {
                        prop_assert_eq!(table.get(*key, key_of(keys)), Some(*value));
                    }
                }
            }
        }
    }
}
