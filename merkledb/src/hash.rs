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

use sha2::{Digest as _, Sha256};
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
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut out).ok()?;
        Some(Hash(out))
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
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
        write!(f, "ValueDigest({})", hex::encode(self.as_bytes()))
    }
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> Hash {
    Hash(Sha256::digest(data).into())
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

/// Pre-images up to this many bytes are built on the stack: every node of up to 16 children with
/// a key of up to 32 bytes (child count 1, 16 × (index 1 + ID 32), value digest ≤ 35, key length
/// ≤ 3, key 32).
const PREIMAGE_INLINE: usize = 640;

/// The ID of a node with this key, value digest and children (`(index, child ID)` in ascending
/// index order).
pub(crate) fn hash_node<'a>(
    key: &Key,
    value: Option<&ValueDigest>,
    children: impl ExactSizeIterator<Item = (u8, &'a Hash)>,
) -> Hash {
    // One is built per rewritten node: on the stack.
    let mut pre: SmallVec<[u8; PREIMAGE_INLINE]> = SmallVec::new();
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
    sha256(&pre)
}

#[cfg(test)]
mod tests;
