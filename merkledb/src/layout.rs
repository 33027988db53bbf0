//! The storage layout: how keys and records are encoded in each [`Space`](crate::store::Space).
//! `ARCHITECTURE.md` ("Storage layout") describes the same layout; keep them in sync.

use crate::{
    codec::{CodecError, DecodedNode, Reader, decode_node_prefix, encode_key, encode_node},
    error::CorruptionError,
    hash::{Hash, ValueDigest, put_uvarint},
    key::Key,
    node::{Node, SubRoot},
    store::{Batch, Space},
};

/// Meta record: the layout version (u32 BE). Absent in databases written before version 2,
/// which stored every inner node and no heights; those are migrated on open (the nodes space
/// is rebuilt from the values).
pub(crate) const META_FORMAT: &[u8] = b"format";
/// The layout version this code writes: inner nodes stored only from a height on
/// ([`is_stored`]), node records and the head carrying child heights.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// True when a node of `height` has a record in the nodes space, at branch factor
/// `2^token_bits`. Lower subtries (at most 256 leaves below, plus values at their inner nodes:
/// `height - 1` levels of full nodes) are rebuilt from the values space when a read misses the
/// caches: a commit of random keys into a large state then reads one key range instead of a
/// chain of node records, and writes no records for the trie's bottom levels, which hold
/// nearly all of its nodes.
pub(crate) fn is_stored(height: u8, token_bits: usize) -> bool {
    usize::from(height) > 8 / token_bits
}

/// A stored node's record: its `dbNode` encoding (value *digest* in the value slot), then one
/// byte per child, its height.
pub(crate) fn encode_node_record(node: &Node) -> Vec<u8> {
    let mut out = encode_node(
        node.value.as_ref().map(ValueDigest::as_bytes),
        &node.children,
    );
    out.extend(node.children.heights());
    out
}

/// Decodes [`encode_node_record`].
pub(crate) fn decode_node_record(bytes: &[u8]) -> Result<DecodedNode, CodecError> {
    let ((value, mut children), heights) = decode_node_prefix(bytes)?;
    if heights.len() < children.len() {
        return Err(CodecError::UnexpectedEof);
    }
    if !children.set_heights(heights) {
        return Err(CodecError::ExtraSpace(heights.len() - children.len()));
    }
    Ok((value, children))
}

/// Meta record: the branch factor (u32 BE, number of children).
pub(crate) const META_BRANCH_FACTOR: &[u8] = b"branch_factor";
/// Meta record: the head of the database (see [`Head`]).
pub(crate) const META_HEAD: &[u8] = b"head";
/// Meta record: `1` after a clean close, `0` while open.
pub(crate) const META_CLEAN: &[u8] = b"clean";

/// Meta record prefix for application metadata (see [`Db::app_meta`](crate::Db::app_meta)),
/// so an application's keys never collide with the records above.
pub(crate) const META_APP_PREFIX: &[u8] = b"app/";

/// The meta-space key of application metadata record `key`.
pub(crate) fn app_meta_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(META_APP_PREFIX.len() + key.len());
    out.extend_from_slice(META_APP_PREFIX);
    out.extend_from_slice(key);
    out
}

/// Adds the writes of application metadata records `meta` to `batch`: a put per `Some` value, a
/// delete per `None`.
pub(crate) fn write_app_meta<'a>(batch: &mut Batch<'a>, meta: &[(&[u8], Option<&'a [u8]>)]) {
    for (key, value) in meta {
        match value {
            Some(v) => batch.put(Space::Meta, app_meta_key(key), *v),
            None => batch.delete(Space::Meta, app_meta_key(key)),
        }
    }
}

/// History record prefix: `i ‖ seq` → root before ‖ root after (64 bytes).
pub(crate) const HISTORY_INDEX: u8 = b'i';
/// History record prefix: `u ‖ seq` → the commit's undo list.
pub(crate) const HISTORY_UNDO: u8 = b'u';

/// The storage key of the inner node at `key`: the padded key bytes followed by one byte holding
/// `bit_len % 8`, so keys of different bit lengths never collide.
pub(crate) fn node_storage_key(key: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.as_bytes().len() + 1);
    out.extend_from_slice(key.as_bytes());
    out.push((key.bit_len() % 8) as u8);
    out
}

/// The history key for commit `seq` with record prefix `kind`.
pub(crate) fn history_key(kind: u8, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(kind);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// What the last commit left: its sequence number, the key count and the root.
/// Written atomically with every commit's values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Head {
    /// Number of commits since creation.
    pub seq: u64,
    /// Number of keys.
    pub count: u64,
    /// The root subtrie, `None` when empty.
    pub root: Option<SubRoot>,
}

impl Head {
    /// `seq (8 BE) ‖ count (8 BE) ‖ 0` or `... ‖ 1 ‖ key ‖ id ‖ has_value ‖ height`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        match &self.root {
            None => out.push(0),
            Some(root) => {
                out.push(1);
                encode_key(&mut out, &root.key);
                out.extend_from_slice(root.id.as_bytes());
                out.push(u8::from(root.has_value));
                out.push(root.height);
            }
        }
        out
    }

    /// Decodes [`Head::encode`]; a head written before layout version 2 has no root height
    /// (read as 0: such a database is rebuilt on open, which sets it).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, CorruptionError> {
        let corrupt = |source| CorruptionError::Decode {
            what: "head",
            key: META_HEAD.to_vec(),
            source,
        };
        let mut r = Reader::new(bytes);
        let seq = u64::from_be_bytes(
            r.take(8)
                .map_err(corrupt)?
                .try_into()
                .map_err(|_| corrupt(CodecError::UnexpectedEof))?,
        );
        let count = u64::from_be_bytes(
            r.take(8)
                .map_err(corrupt)?
                .try_into()
                .map_err(|_| corrupt(CodecError::UnexpectedEof))?,
        );
        let root = match r.byte().map_err(corrupt)? {
            0 => None,
            1 => {
                let key = r.key().map_err(corrupt)?;
                let id = Hash::from_slice(r.take(32).map_err(corrupt)?)
                    .ok_or(corrupt(CodecError::UnexpectedEof))?;
                let has_value = r.byte().map_err(corrupt)? == 1;
                let height = match r.byte() {
                    Ok(h) => h,
                    Err(CodecError::UnexpectedEof) => 0,
                    Err(e) => return Err(corrupt(e)),
                };
                Some(SubRoot {
                    key,
                    id,
                    has_value,
                    height,
                })
            }
            b => return Err(corrupt(CodecError::InvalidBool(b))),
        };
        r.finish().map_err(corrupt)?;
        Ok(Self { seq, count, root })
    }
}

/// Encodes a commit's undo list: `uvarint(n)`, then per key `uvarint(len) ‖ key ‖ maybe(before)`.
pub(crate) fn encode_undo<'a>(
    entries: impl ExactSizeIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 40 + 8);
    put_uvarint(&mut out, entries.len() as u64);
    for (key, before) in entries {
        put_uvarint(&mut out, key.len() as u64);
        out.extend_from_slice(key);
        match before {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                put_uvarint(&mut out, v.len() as u64);
                out.extend_from_slice(v);
            }
        }
    }
    out
}

/// An undo list entry: a key and its value before the commit (`None`: absent).
pub(crate) type UndoEntry = (Vec<u8>, Option<Vec<u8>>);

/// Decodes [`encode_undo`].
pub(crate) fn decode_undo(bytes: &[u8]) -> Result<Vec<UndoEntry>, CodecError> {
    let mut r = Reader::new(bytes);
    let n = r.uvarint()?;
    // Each entry takes at least two bytes: bound the allocation by the input size.
    let mut out = Vec::with_capacity((n as usize).min(bytes.len() / 2));
    for _ in 0..n {
        let len = usize::try_from(r.uvarint()?).map_err(|_| CodecError::UnexpectedEof)?;
        let key = r.take(len)?.to_vec();
        let before = match r.byte()? {
            0 => None,
            1 => {
                let len = usize::try_from(r.uvarint()?).map_err(|_| CodecError::UnexpectedEof)?;
                Some(r.take(len)?.to_vec())
            }
            b => return Err(CodecError::InvalidBool(b)),
        };
        out.push((key, before));
    }
    r.finish()?;
    Ok(out)
}
