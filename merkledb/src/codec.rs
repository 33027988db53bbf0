//! The storage codec of AvalancheGo's merkledb (`codec.go`), used for nodes on disk.
//!
//! ```text
//! node  := maybe_bytes(value) ‖ uvarint(n children ≤ 256) ‖ child*      (strictly increasing index)
//! child := uvarint(index ≤ 255) ‖ key(compressed) ‖ id (32 bytes) ‖ bool(has_value)
//! key   := uvarint(bit length) ‖ ceil(bits / 8) bytes, padding bits zero
//! maybe_bytes := 0x00 | 0x01 ‖ uvarint(len) ‖ bytes
//! ```
//!
//! Decoding is canonical: non-minimal varints, non-zero key padding, bools other than 0/1,
//! unsorted or duplicate children, truncation and trailing bytes are all errors. No length read
//! from the input is used to allocate before the bytes it announces are known to be present.
//!
//! We store a node's value *digest* in the `value` slot (the value itself lives in the values
//! column); the codec does not care which bytes it carries.

use thiserror::Error;

use crate::{
    hash::{Hash, put_uvarint},
    key::Key,
    node::{Child, Children},
};

/// Why bytes failed to decode.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended early.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// A varint had a redundant trailing zero group.
    #[error("varint with leading zeroes")]
    LeadingZeroes,
    /// A varint overflowed 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// Bytes remained after the value.
    #[error("{0} trailing bytes")]
    ExtraSpace(usize),
    /// A boolean byte other than 0 or 1.
    #[error("invalid bool byte {0:#04x}")]
    InvalidBool(u8),
    /// More than 256 children.
    #[error("too many children: {0}")]
    TooManyChildren(u64),
    /// A child index above 255, or not above the previous one.
    #[error("child index {0} too large or out of order")]
    ChildIndex(u64),
    /// A key whose padding bits are not zero.
    #[error("non-zero key padding")]
    NonZeroKeyPadding,
}

/// A decoding cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(CodecError::ExtraSpace(self.bytes.len()))
        }
    }

    pub(crate) fn byte(&mut self) -> Result<u8, CodecError> {
        let (&b, rest) = self.bytes.split_first().ok_or(CodecError::UnexpectedEof)?;
        self.bytes = rest;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.bytes.len() < n {
            return Err(CodecError::UnexpectedEof);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(CodecError::VarintOverflow);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i > 0 && b == 0 {
                    return Err(CodecError::LeadingZeroes);
                }
                return Ok(value);
            }
        }
        Err(CodecError::VarintOverflow)
    }

    fn bool(&mut self) -> Result<bool, CodecError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(CodecError::InvalidBool(b)),
        }
    }

    pub(crate) fn key(&mut self) -> Result<Key, CodecError> {
        let bits = self.uvarint()?;
        // The byte count is checked against the remaining input before anything is allocated.
        let byte_len = usize::try_from(bits.div_ceil(8)).map_err(|_| CodecError::UnexpectedEof)?;
        let bytes = self.take(byte_len)?;
        let bits = bits as usize;
        let rem = bits % 8;
        if rem != 0 && bytes[byte_len - 1] & (0xff >> rem) != 0 {
            return Err(CodecError::NonZeroKeyPadding);
        }
        Key::from_bits(bytes, bits).ok_or(CodecError::UnexpectedEof)
    }

    fn maybe_bytes(&mut self) -> Result<Option<&'a [u8]>, CodecError> {
        if !self.bool()? {
            return Ok(None);
        }
        let len = self.uvarint()?;
        let len = usize::try_from(len).map_err(|_| CodecError::UnexpectedEof)?;
        Ok(Some(self.take(len)?))
    }
}

/// Appends the encoding of `key`.
pub(crate) fn encode_key(out: &mut Vec<u8>, key: &Key) {
    encode_key_bits(out, key.as_bytes(), key.bit_len());
}

/// [`encode_key`] of a key given as its padded bytes and bit length.
fn encode_key_bits(out: &mut Vec<u8>, bytes: &[u8], bit_len: usize) {
    put_uvarint(out, bit_len as u64);
    out.extend_from_slice(bytes);
}

/// Decodes a whole buffer holding one key (the inverse of [`encode_key`], for the tests).
#[cfg(test)]
pub(crate) fn decode_key(bytes: &[u8]) -> Result<Key, CodecError> {
    let mut r = Reader::new(bytes);
    let key = r.key()?;
    r.finish()?;
    Ok(key)
}

/// Encodes a node as AvalancheGo's `encodeDBNode`.
pub(crate) fn encode_node(value: Option<&[u8]>, children: &Children) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + value.map_or(0, <[u8]>::len) + children.len() * 40);
    match value {
        Some(v) => {
            out.push(1);
            put_uvarint(&mut out, v.len() as u64);
            out.extend_from_slice(v);
        }
        None => out.push(0),
    }
    put_uvarint(&mut out, children.len() as u64);
    for child in children.iter() {
        put_uvarint(&mut out, u64::from(child.index));
        encode_key_bits(&mut out, child.compressed_bytes, child.compressed_bits);
        out.extend_from_slice(child.id.as_bytes());
        out.push(u8::from(child.has_value));
    }
    out
}

/// A decoded node: its value slot and children.
pub(crate) type DecodedNode = (Option<Vec<u8>>, Children);

/// Decodes AvalancheGo's `decodeDBNode`, canonically. Children's heights are 0 (the codec does
/// not carry them).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_node(bytes: &[u8]) -> Result<DecodedNode, CodecError> {
    let mut r = Reader::new(bytes);
    let node = read_node(&mut r)?;
    r.finish()?;
    Ok(node)
}

/// Decodes a `decodeDBNode` encoding at the start of `bytes`; returns it and the bytes after it.
pub(crate) fn decode_node_prefix(bytes: &[u8]) -> Result<(DecodedNode, &[u8]), CodecError> {
    let mut r = Reader::new(bytes);
    let node = read_node(&mut r)?;
    Ok((node, r.bytes))
}

fn read_node(r: &mut Reader<'_>) -> Result<DecodedNode, CodecError> {
    let value = r.maybe_bytes()?.map(<[u8]>::to_vec);
    let count = r.uvarint()?;
    if count > 256 {
        return Err(CodecError::TooManyChildren(count));
    }
    let mut children = Children::new();
    let mut previous: Option<u64> = None;
    for _ in 0..count {
        let index = r.uvarint()?;
        if index > 255 || previous.is_some_and(|p| index <= p) {
            return Err(CodecError::ChildIndex(index));
        }
        previous = Some(index);
        let compressed = r.key()?;
        let id = Hash::from_slice(r.take(32)?).ok_or(CodecError::UnexpectedEof)?;
        let has_value = r.bool()?;
        children.set(
            index as u8,
            Some(Child {
                compressed,
                id,
                has_value,
                height: 0,
            }),
        );
    }
    Ok((value, children))
}

#[cfg(test)]
mod tests;
