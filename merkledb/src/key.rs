//! Bit-string keys and branch factors.
//!
//! A [`Key`] is a string of bits, stored MSB-first in `ceil(bits / 8)` bytes whose unused low bits
//! are always zero. User keys are whole bytes; keys of inner trie nodes may end inside a byte
//! (an odd number of nibbles at branch factor 16, any bit count at branch factor 2).
//!
//! Ordering (as AvalancheGo's `Key.Compare`): compare the padded bytes, then the bit length, so a
//! key sorts immediately before all of its extensions.

use std::{cmp::Ordering, fmt};

use smallvec::SmallVec;

/// Key bytes: inline up to 32 bytes (every hash-sized key), so cloning a key rarely allocates.
type KeyBytes = SmallVec<[u8; 32]>;

/// The number of children a trie node may have: 2, 4, 16 or 256.
///
/// It fixes the token size (1, 2, 4 or 8 bits) by which keys are split into child indices. Roots
/// differ between branch factors, so both ends of a sync must use the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BranchFactor {
    /// Tokens of 1 bit.
    Two,
    /// Tokens of 2 bits.
    Four,
    /// Tokens of 4 bits (nibbles); the default, as in AvalancheGo.
    #[default]
    Sixteen,
    /// Tokens of 8 bits (bytes).
    TwoFiftySix,
}

impl BranchFactor {
    /// Every supported branch factor, smallest first.
    pub const ALL: [BranchFactor; 4] = [Self::Two, Self::Four, Self::Sixteen, Self::TwoFiftySix];

    /// The branch factor with `n` children, if `n` is 2, 4, 16 or 256.
    pub fn from_children(n: u32) -> Option<Self> {
        match n {
            2 => Some(Self::Two),
            4 => Some(Self::Four),
            16 => Some(Self::Sixteen),
            256 => Some(Self::TwoFiftySix),
            _ => None,
        }
    }

    /// The number of children a node may have.
    pub fn children(self) -> u32 {
        1 << self.token_bits()
    }

    /// The size of one token in bits: 1, 2, 4 or 8.
    pub fn token_bits(self) -> usize {
        match self {
            Self::Two => 1,
            Self::Four => 2,
            Self::Sixteen => 4,
            Self::TwoFiftySix => 8,
        }
    }
}

/// A bit string. Invariant: `bytes.len() == bit_len.div_ceil(8)` and the padding bits of the
/// last byte are zero.
#[derive(PartialEq, Eq, Hash, Default)]
pub struct Key {
    bit_len: usize,
    bytes: KeyBytes,
}

impl Clone for Key {
    /// One copy of the bytes. (`SmallVec`'s own `clone` pushes them one at a time, and keys are
    /// cloned for every child of every node a commit rewrites.)
    fn clone(&self) -> Self {
        Self {
            bit_len: self.bit_len,
            bytes: SmallVec::from_slice(&self.bytes),
        }
    }
}

impl Key {
    /// The empty key (zero bits).
    pub const fn empty() -> Self {
        Self {
            bit_len: 0,
            bytes: SmallVec::new_const(),
        }
    }

    /// A whole-byte key holding `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            bit_len: bytes.len() * 8,
            bytes: SmallVec::from_slice(bytes),
        }
    }

    /// A whole-byte key taking ownership of `bytes`.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self {
            bit_len: bytes.len() * 8,
            bytes: SmallVec::from_vec(bytes),
        }
    }

    /// A key from its padded bytes (`ceil(bit_len / 8)` of them, padding bits zero), as another
    /// key's `as_bytes` gives them.
    pub(crate) fn from_padded(bytes: &[u8], bit_len: usize) -> Self {
        debug_assert_eq!(bytes.len(), bit_len.div_ceil(8));
        let mut key = Self {
            bit_len,
            bytes: SmallVec::from_slice(bytes),
        };
        key.clear_padding();
        key
    }

    /// The first `bit_len` bits of `bytes` (padding bits are cleared). Returns `None` when `bytes`
    /// is not exactly `ceil(bit_len / 8)` long.
    pub fn from_bits(bytes: &[u8], bit_len: usize) -> Option<Self> {
        if bytes.len() != bit_len.div_ceil(8) {
            return None;
        }
        let mut key = Self {
            bit_len,
            bytes: SmallVec::from_slice(bytes),
        };
        key.clear_padding();
        Some(key)
    }

    /// The length in bits.
    pub fn bit_len(&self) -> usize {
        self.bit_len
    }

    /// True for the zero-bit key.
    pub fn is_empty(&self) -> bool {
        self.bit_len == 0
    }

    /// The padded bytes (`ceil(bit_len / 8)` of them).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Consumes the key, returning its padded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes.into_vec()
    }

    /// True when the key is a whole number of bytes (only such keys may hold values).
    pub fn is_whole_bytes(&self) -> bool {
        self.bit_len % 8 == 0
    }

    /// The `token_bits`-wide token starting at bit `bit_index`. Tokens never straddle a byte,
    /// because token sizes divide 8 and `bit_index` is a multiple of the token size.
    ///
    /// # Panics
    /// If the token does not lie inside the key (an internal invariant, never peer input).
    pub fn token(&self, bit_index: usize, token_bits: usize) -> u8 {
        debug_assert!(bit_index + token_bits <= self.bit_len);
        debug_assert_eq!(bit_index % token_bits, 0);
        let byte = self.bytes[bit_index / 8];
        let shift = 8 - token_bits - bit_index % 8;
        (byte >> shift) & (((1u16 << token_bits) - 1) as u8)
    }

    /// The first `bits` bits.
    pub fn take(&self, bits: usize) -> Key {
        let bits = bits.min(self.bit_len);
        let mut key = Key {
            bit_len: bits,
            bytes: SmallVec::from_slice(&self.bytes[..bits.div_ceil(8)]),
        };
        key.clear_padding();
        key
    }

    /// The key without its first `bits` bits.
    pub fn skip(&self, bits: usize) -> Key {
        let bits = bits.min(self.bit_len);
        let mut out = Key::empty();
        out.append_bits(&self.bytes, bits, self.bit_len - bits);
        out
    }

    /// Writes the bits after the first `from` into `out` as padded bytes and returns their
    /// number: [`Key::skip`] without building a key. `out` must have room for them; its bytes
    /// after them are left as they are.
    pub(crate) fn write_suffix(&self, from: usize, out: &mut [u8]) -> usize {
        let from = from.min(self.bit_len);
        let bits = self.bit_len - from;
        let len = bits.div_ceil(8);
        // `len` bytes exist from here on: the key has `bit_len.div_ceil(8)` bytes.
        let src = &self.bytes[from / 8..];
        let shift = from % 8;
        if shift == 0 {
            out[..len].copy_from_slice(&src[..len]);
        } else {
            for (i, byte) in out[..len].iter_mut().enumerate() {
                let lo = src.get(i + 1).map_or(0, |b| b >> (8 - shift));
                *byte = (src[i] << shift) | lo;
            }
        }
        if bits % 8 != 0 {
            out[len - 1] &= 0xffu8 << (8 - bits % 8);
        }
        bits
    }

    /// `self ‖ token ‖ suffix`, where `token` is `token_bits` wide.
    pub fn join(&self, token: u8, token_bits: usize, suffix: &Key) -> Key {
        self.join_bits(token, token_bits, &suffix.bytes, suffix.bit_len)
    }

    /// [`Key::join`] with the suffix given as its padded bytes and bit length.
    pub(crate) fn join_bits(
        &self,
        token: u8,
        token_bits: usize,
        suffix: &[u8],
        suffix_bits: usize,
    ) -> Key {
        let mut out = Key {
            bit_len: self.bit_len,
            bytes: SmallVec::with_capacity((self.bit_len + token_bits + suffix_bits).div_ceil(8)),
        };
        out.bytes.extend_from_slice(&self.bytes);
        out.push_token(token, token_bits);
        out.append_bits(suffix, 0, suffix_bits);
        out
    }

    /// `self ‖ token`.
    pub fn child(&self, token: u8, token_bits: usize) -> Key {
        let mut out = self.clone();
        out.push_token(token, token_bits);
        out
    }

    fn push_token(&mut self, token: u8, token_bits: usize) {
        let offset = self.bit_len % 8;
        if offset == 0 {
            self.bytes.push(token << (8 - token_bits));
        } else {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= token << (8 - token_bits - offset);
        }
        self.bit_len += token_bits;
    }

    /// Appends `count` bits of the padded bytes `src_bytes` starting at bit `from`, a byte at a
    /// time.
    fn append_bits(&mut self, src_bytes: &[u8], from: usize, count: usize) {
        if count == 0 {
            return;
        }
        let first = from / 8;
        let len = count.div_ceil(8);
        let shift = from % 8;
        let offset = self.bit_len % 8;
        if offset == 0 && shift == 0 {
            self.bytes.extend_from_slice(&src_bytes[first..first + len]);
        } else {
            self.bytes.reserve(len + 1);
            for i in 0..len {
                // The next 8 source bits, aligned to the top of the byte.
                let hi = src_bytes[first + i] << shift;
                let lo = match src_bytes.get(first + i + 1) {
                    Some(b) if shift > 0 => b >> (8 - shift),
                    _ => 0,
                };
                let byte = hi | lo;
                if offset == 0 {
                    self.bytes.push(byte);
                } else {
                    let last = self.bytes.len() - 1;
                    self.bytes[last] |= byte >> offset;
                    self.bytes.push(byte << (8 - offset));
                }
            }
        }
        self.bit_len += count;
        self.bytes.truncate(self.bit_len.div_ceil(8));
        self.clear_padding();
    }

    fn clear_padding(&mut self) {
        let rem = self.bit_len % 8;
        if rem != 0 {
            if let Some(last) = self.bytes.last_mut() {
                *last &= 0xffu8 << (8 - rem);
            }
        }
    }

    /// True when `prefix` is a (not necessarily strict) prefix of `self`, bit-exactly.
    pub fn has_prefix(&self, prefix: &Key) -> bool {
        if prefix.bit_len > self.bit_len {
            return false;
        }
        let whole = prefix.bit_len / 8;
        if self.bytes[..whole] != prefix.bytes[..whole] {
            return false;
        }
        let rem = prefix.bit_len % 8;
        if rem == 0 {
            return true;
        }
        let mask = 0xffu8 << (8 - rem);
        self.bytes[whole] & mask == prefix.bytes[whole]
    }

    /// True when `prefix` is a strict prefix of `self`.
    pub fn has_strict_prefix(&self, prefix: &Key) -> bool {
        prefix.bit_len < self.bit_len && self.has_prefix(prefix)
    }

    /// The number of leading bits `self` and `other` share.
    pub fn common_prefix_bits(&self, other: &Key) -> usize {
        let max = self.bit_len.min(other.bit_len);
        let mut bits = 0;
        for (a, b) in self.bytes.iter().zip(&other.bytes) {
            if a == b {
                bits += 8;
                if bits >= max {
                    return max;
                }
            } else {
                bits += (a ^ b).leading_zeros() as usize;
                return bits.min(max);
            }
        }
        bits.min(max)
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes
            .cmp(&other.bytes)
            .then(self.bit_len.cmp(&other.bit_len))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}b:{})", self.bit_len, hex::encode(&self.bytes[..]))
    }
}

#[cfg(test)]
mod tests;
