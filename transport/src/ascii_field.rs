//! `AsciiField<N>`: a fixed-width ASCII field as it is on the wire, padding
//! included, shared by the SoupBinTCP session layer (username, password,
//! session name) and OUCH (token, stock, firm). Keeping the padded bytes
//! makes encoding what was decoded byte-identical; the constructors decide
//! the justification the specifications ask for.

use std::fmt;

/// A fixed-width field of printable ASCII, space-padded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsciiField<const N: usize>(pub [u8; N]);

impl<const N: usize> AsciiField<N> {
    /// All spaces: "blank" in the specifications.
    pub const BLANK: Self = Self([b' '; N]);

    /// Left-justified, padded with spaces on the right (OUCH alpha fields,
    /// SoupBinTCP username and password). `None` if `s` is longer than `N`
    /// or not printable ASCII.
    pub fn left(s: &str) -> Option<Self> {
        let bytes = Self::checked(s)?;
        let mut out = [b' '; N];
        out[..bytes.len()].copy_from_slice(bytes);
        Some(Self(out))
    }

    /// Right-justified, padded with spaces on the left (session names).
    pub fn right(s: &str) -> Option<Self> {
        let bytes = Self::checked(s)?;
        let mut out = [b' '; N];
        out[N - bytes.len()..].copy_from_slice(bytes);
        Some(Self(out))
    }

    fn checked(s: &str) -> Option<&[u8]> {
        let bytes = s.as_bytes();
        (bytes.len() <= N && bytes.iter().all(|c| (0x20..0x7f).contains(c))).then_some(bytes)
    }

    /// The value with padding on either side removed, for comparisons that
    /// must not depend on which way a peer justified the field.
    pub fn trimmed(&self) -> &[u8] {
        self.0.trim_ascii()
    }

    pub fn is_blank(&self) -> bool {
        self.0.iter().all(|&c| c == b' ')
    }
}

impl<const N: usize> fmt::Debug for AsciiField<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}
