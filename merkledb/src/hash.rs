//! SHA-256 node hashing, bit-compatible with AvalancheGo's merkledb (`hashing.go`).
//!
//! A node's ID is `SHA-256` of this pre-image (uvarints are LEB128, low group first):
//!
//! ```text
//! uvarint(number of children)
//! per child, ascending index:  uvarint(index) ‖ child ID (32 bytes)
//! value digest:                0x01 ‖ uvarint(len) ‖ digest    or    0x00 when absent
//! uvarint(key length in bits) ‖ key bytes (zero-padded to whole bytes)
//! ```
//!
//! Child compressed keys and `has_value` flags are not part of the pre-image. The value digest is
//! the value itself when it is shorter than 32 bytes and `SHA-256(value)` otherwise.

use std::fmt;

use sha2::{Digest as _, Sha256, digest::generic_array::GenericArray};
use smallvec::SmallVec;

use crate::key::Key;

/// A 32-byte SHA-256 hash: a node ID or a root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The root of the empty trie: 32 zero bytes (AvalancheGo's `ids.Empty`).
    pub const EMPTY_ROOT: Hash = Hash([0; 32]);

    /// The hash as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(bytes).ok().map(Hash)
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(text: &str) -> Option<Hash> {
        let text = text.trim();
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
            let hi = (chunk[0] as char).to_digit(16)?;
            let lo = (chunk[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Hash(out))
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

/// What a node's hash commits to about its value: the value itself when shorter than 32 bytes,
/// else its SHA-256. Stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ValueDigest {
    len: u8,
    buf: [u8; 32],
}

impl ValueDigest {
    /// The digest of `value` (the value-hash rule: values of 32 bytes or more are hashed).
    pub fn of(value: &[u8]) -> Self {
        if value.len() < 32 {
            let mut buf = [0u8; 32];
            buf[..value.len()].copy_from_slice(value);
            Self {
                len: value.len() as u8,
                buf,
            }
        } else if value.len() <= MAX_ONE_BLOCK {
            // Values of 32 to 55 bytes (the common 32-byte hashes and values) fit one padded
            // block.
            let mut block: SmallVec<[u8; 64]> = SmallVec::from_slice(value);
            Self {
                len: 32,
                buf: sha256_padding_in_place(&mut block).0,
            }
        } else {
            Self {
                len: 32,
                buf: sha256(value).0,
            }
        }
    }

    /// Reinterprets bytes that already are a digest (≤ 32 bytes), as found in proofs and on disk.
    /// Returns `None` when longer than 32 bytes.
    pub fn from_digest_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > 32 {
            return None;
        }
        let mut buf = [0u8; 32];
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(Self {
            len: bytes.len() as u8,
            buf,
        })
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// True when `value` has this digest (AvalancheGo's `valueOrHashMatches` for a present value).
    pub fn matches(&self, value: &[u8]) -> bool {
        *self == Self::of(value)
    }
}

impl fmt::Debug for ValueDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValueDigest(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    Hash(Sha256::digest(data).into())
}

/// The longest message that one padded SHA-256 block holds (the padding takes 9 bytes or more).
const MAX_ONE_BLOCK: usize = 55;

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 of the bytes in `message`, computed by appending the padding to the buffer and
/// compressing its blocks where they lie: the hasher's own block buffer and the copies into it
/// are skipped. Node IDs are hashed this way (hashing is an eighth of a commit's CPU time).
fn sha256_padding_in_place<A: smallvec::Array<Item = u8>>(message: &mut SmallVec<A>) -> Hash {
    let bit_len = (message.len() as u64) * 8;
    message.push(0x80);
    let padded = (message.len() + 8).div_ceil(64) * 64;
    message.resize(padded - 8, 0);
    message.extend_from_slice(&bit_len.to_be_bytes());
    let mut state = SHA256_INITIAL;
    for block in message.chunks_exact(64) {
        sha2::compress256(
            &mut state,
            std::slice::from_ref(GenericArray::from_slice(block)),
        );
    }
    let mut out = [0u8; 32];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    Hash(out)
}

/// Appends `value` as a LEB128 unsigned varint (Go's `binary.AppendUvarint`).
pub(crate) fn put_uvarint(out: &mut impl Extend<u8>, mut value: u64) {
    let mut buf = [0u8; 10];
    let mut len = 0;
    while value >= 0x80 {
        buf[len] = (value as u8) | 0x80;
        value >>= 7;
        len += 1;
    }
    buf[len] = value as u8;
    out.extend(buf[..=len].iter().copied());
}

/// Pre-images up to this many bytes, padding included, are built on the stack: every node of up
/// to 16 children with a key of up to 32 bytes (see the test on [`padded_preimage_bound`]).
const PREIMAGE_INLINE: usize = 640;

/// At most the padded pre-image's size: the child count (1–2 bytes for up to 256), per child a
/// 1–2-byte index and the ID, the value digest (35), the key length (up to 3) and the key bytes,
/// then SHA-256's padding, rounded up to whole blocks.
fn padded_preimage_bound(children: usize, key_bytes: usize) -> usize {
    let unpadded = 2 + children * 34 + 35 + 3 + key_bytes;
    (unpadded + 9).div_ceil(64) * 64
}

/// The ID of a node with this key, value digest and children (`(index, child ID)` in ascending
/// index order).
pub fn hash_node<'a>(
    key: &Key,
    value: Option<&ValueDigest>,
    children: impl ExactSizeIterator<Item = (u8, &'a Hash)>,
) -> Hash {
    // On the stack for up to 16 children with hash-sized keys, padding included: one is built
    // per rewritten node.
    let mut pre: SmallVec<[u8; PREIMAGE_INLINE]> = SmallVec::new();
    pre.reserve(padded_preimage_bound(children.len(), key.as_bytes().len()));
    put_uvarint(&mut pre, children.len() as u64);
    for (index, id) in children {
        put_uvarint(&mut pre, u64::from(index));
        pre.extend_from_slice(&id.0);
    }
    match value {
        Some(digest) => {
            pre.push(1);
            put_uvarint(&mut pre, digest.as_bytes().len() as u64);
            pre.extend_from_slice(digest.as_bytes());
        }
        None => pre.push(0),
    }
    put_uvarint(&mut pre, key.bit_len() as u64);
    pre.extend_from_slice(key.as_bytes());
    sha256_padding_in_place(&mut pre)
}

#[cfg(test)]
mod tests;
