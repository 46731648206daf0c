//! A 64-bit hash that is the same on every run and every machine: it takes
//! explicit 64-bit words (never memory layouts), has no random seed, and mixes
//! with integer arithmetic only. The engine uses it for its state hash and its
//! rolling hash of emitted events, which replicas compare to prove they agree.

/// An incremental, seedless, platform-independent 64-bit hasher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StableHasher {
    state: u64,
}

/// The starting state; any odd constant would do, this one is the
/// fractional part of the golden ratio.
const INITIAL_STATE: u64 = 0x9E37_79B9_7F4A_7C15;
const MULTIPLIER: u64 = 0xD6E8_FEB8_6659_FD93;

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher::new()
    }
}

impl StableHasher {
    pub const fn new() -> StableHasher {
        StableHasher {
            state: INITIAL_STATE,
        }
    }

    /// Continues from a previously finished state (a rolling hash).
    pub const fn resume(state: u64) -> StableHasher {
        StableHasher { state }
    }

    /// Mixes one word in. Each word passes through a full multiply-xorshift
    /// round so that every input bit reaches every output bit.
    #[inline]
    pub fn write_u64(&mut self, word: u64) {
        let mut x = self.state ^ word;
        x = x.wrapping_mul(MULTIPLIER);
        x ^= x >> 32;
        x = x.wrapping_mul(MULTIPLIER);
        x ^= x >> 29;
        self.state = x.rotate_left(17).wrapping_add(word);
    }

    #[inline]
    pub fn write_u128(&mut self, word: u128) {
        self.write_u64(word as u64);
        self.write_u64((word >> 64) as u64);
    }

    /// The hash of everything written so far.
    #[inline]
    pub const fn finish(&self) -> u64 {
        self.state
    }
}

/// Folds an event fingerprint into a rolling hash: rotate, xor, multiply by
/// an odd constant. Each step is a bijection of the state for a fixed value
/// and of the value for a fixed state, so a different event anywhere gives a
/// different state from there on unless a later difference cancels it; the
/// rotation carries high bits down so that every bit feeds the next steps.
/// It is three instructions because it runs for every event.
#[inline(always)]
pub fn roll(state: u64, value: u64) -> u64 {
    (state.rotate_left(29) ^ value).wrapping_mul(MULTIPLIER)
}

/// Odd multipliers, one per word position of an event (the first 64 bits
/// of the fractional parts of the square roots of the first primes, made
/// odd).
const WORD_KEYS: [u64; 16] = [
    0x6A09_E667_F3BC_C909,
    0xBB67_AE85_84CA_A73B,
    0x3C6E_F372_FE94_F82B,
    0xA54F_F53A_5F1D_36F1,
    0x510E_527F_ADE6_82D1,
    0x9B05_688C_2B3E_6C1F,
    0x1F83_D9AB_FB41_BD6B,
    0x5BE0_CD19_137E_2179,
    0xCBBB_9D5D_C105_9ED9,
    0x629A_292A_367C_D507,
    0x9159_015A_3070_DD17,
    0x152F_ECD8_F70E_5939,
    0x6733_2667_FFC0_0B31,
    0x8EB4_4A87_6858_1511,
    0xDB0C_2E0D_64F9_8FA7,
    0x47B5_481D_BEFA_4FA5,
];

/// A cheap fingerprint of up to 16 words: each word times the odd key of
/// its position, summed. The products are independent, so the processor
/// computes them in parallel instead of one long dependent chain, and with
/// `N` known at compile time the loop unrolls to `N` multiplies and adds. A
/// change of any single word always changes the sum (an odd key is invertible
/// modulo 2^64). The engine folds each event's fingerprint into its rolling
/// hash with one strong [`roll`].
#[inline(always)]
pub fn fingerprint_words<const N: usize>(words: [u64; N]) -> u64 {
    const { assert!(N <= WORD_KEYS.len(), "at most 16 words") };
    let mut sum: u64 = 0;
    let mut position = 0;
    while position < N {
        sum = sum.wrapping_add(words[position].wrapping_mul(WORD_KEYS[position]));
        position += 1;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_of_fixed_words_is_pinned() {
        // Pinned so that a change of the mixing function, which would break
        // comparisons against journals and snapshots hashed before, is seen.
        let mut hasher = StableHasher::new();
        for word in [0u64, 1, 2, u64::MAX] {
            hasher.write_u64(word);
        }
        assert_eq!(hasher.finish(), hasher_reference());
    }

    fn hasher_reference() -> u64 {
        // The same computation written out longhand.
        let mut state = INITIAL_STATE;
        for word in [0u64, 1, 2, u64::MAX] {
            let mut x = state ^ word;
            x = x.wrapping_mul(MULTIPLIER);
            x ^= x >> 32;
            x = x.wrapping_mul(MULTIPLIER);
            x ^= x >> 29;
            state = x.rotate_left(17).wrapping_add(word);
        }
        state
    }

    #[test]
    fn fingerprint_changes_with_any_single_word_and_with_position() {
        let words = [3u64, 0, u64::MAX, 1 << 63];
        let base = fingerprint_words(words);
        for position in 0..words.len() {
            for bit in [0, 1, 31, 63] {
                let mut changed = words;
                changed[position] ^= 1 << bit;
                assert_ne!(
                    fingerprint_words(changed),
                    base,
                    "word {position} bit {bit}"
                );
            }
        }
        assert_ne!(fingerprint_words([1, 2]), fingerprint_words([2, 1]));
    }

    #[test]
    fn order_of_words_matters() {
        let mut a = StableHasher::new();
        a.write_u64(1);
        a.write_u64(2);
        let mut b = StableHasher::new();
        b.write_u64(2);
        b.write_u64(1);
        assert_ne!(a.finish(), b.finish());
    }
}
