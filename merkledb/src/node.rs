//! Trie nodes.

use crate::{
    hash::{Hash, ValueDigest, hash_node},
    key::Key,
};

/// A child pointer: what a node knows about one child.
///
/// The child's full key is `parent.key ‖ index token ‖ compressed`. Only `index` and `id` enter
/// the parent's hash; `compressed`, `has_value` and `height` are bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Child {
    /// The child's key bits after the parent's key and the index token.
    pub compressed: Key,
    /// The child's node ID.
    pub id: Hash,
    /// True when the child node holds a value.
    pub has_value: bool,
    /// The child's height (see [`Node::height`]): 0 for a leaf.
    pub height: u8,
}

/// A trie node: its full key, the digest of its value (if any) and its children.
///
/// Invariants in a canonical trie: a node without a value has at least two children (except a
/// lone root... which is then compressed away too); values sit only at whole-byte keys; every
/// child index is below the branch factor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    /// The node's full key.
    pub key: Key,
    /// The digest of the node's value, if it has one.
    pub value: Option<ValueDigest>,
    /// Children by ascending index.
    pub children: Children,
}

impl Node {
    /// A node without children.
    pub(crate) fn leaf(key: Key, value: ValueDigest) -> Self {
        Self {
            key,
            value: Some(value),
            children: Children::new(),
        }
    }

    /// The node's height: 0 for a leaf, else one more than its highest child (saturating).
    /// It decides whether the node has a stored record (see `layout::is_stored`).
    pub(crate) fn height(&self) -> u8 {
        self.children.height()
    }

    /// The node's ID (hash).
    pub(crate) fn id(&self) -> Hash {
        hash_node(&self.key, self.value.as_ref(), self.children.ids())
    }

    /// The subtrie under the child at `index`: its full key, ID and whether it holds a value.
    pub(crate) fn child_subroot(&self, index: u8, token_bits: usize) -> Option<SubRoot> {
        self.children
            .get_ref(index)
            .map(|c| c.subroot(&self.key, token_bits))
    }
}

/// Compressed keys up to this many bytes are stored inside their child record: every inner
/// child of a trie of random keys (its key ends one token, or a few, past its parent's). Longer
/// ones, a leaf's (the rest of its key), are kept in [`Children`]'s byte buffer. A record of 44
/// bytes, where one holding 36 key bytes took 74, nearly halves the memory of the upper levels'
/// nodes (16 inner children each), which the dirty set and the cache hold by the hundred
/// thousand; a leaf's key costs its bytes and no more.
const INLINE_KEY_BYTES: usize = 4;

/// One child record: fixed size and `Copy`, so copying a node's children is one `memcpy` (and
/// one more for the buffer of long keys). A commit copies every node it rewrites, and a node at
/// branch factor 16 has up to 16 children.
#[derive(Clone, Copy)]
struct Slot {
    id: Hash,
    index: u8,
    has_value: bool,
    height: u8,
    /// The compressed key's length in bits.
    bits: u32,
    /// The compressed key's padded bytes, zero after them, when they fit; else the position of
    /// its bytes in the buffer (little-endian `u32`).
    key: [u8; INLINE_KEY_BYTES],
}

impl Slot {
    /// A record with an empty compressed key.
    fn blank(index: u8, id: Hash, has_value: bool, height: u8) -> Self {
        Slot {
            id,
            index,
            has_value,
            height,
            bits: 0,
            key: [0; INLINE_KEY_BYTES],
        }
    }

    /// Whether the compressed key is in the buffer.
    fn is_long(&self) -> bool {
        self.bits as usize > INLINE_KEY_BYTES * 8
    }

    /// The compressed key's bytes in `long`, when they are there.
    fn long_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_long().then(|| {
            let at = u32::from_le_bytes(self.key) as usize;
            at..at + (self.bits as usize).div_ceil(8)
        })
    }

    /// Makes room for a compressed key of `bits` bits: in the record, or at the end of `long`.
    /// Returns where its padded bytes go.
    fn place<'a>(&'a mut self, bits: usize, long: &'a mut Vec<u8>) -> &'a mut [u8] {
        // Compressed keys are parts of keys, whose lengths are far below 2^32 bits, and a
        // node's buffer holds at most 256 of them.
        self.bits = bits as u32;
        let len = bits.div_ceil(8);
        if len <= INLINE_KEY_BYTES {
            self.key = [0; INLINE_KEY_BYTES];
            return &mut self.key[..len];
        }
        let at = long.len();
        self.key = (at as u32).to_le_bytes();
        long.resize(at + len, 0);
        &mut long[at..]
    }

    fn new(index: u8, child: Child, long: &mut Vec<u8>) -> Self {
        let mut slot = Slot::blank(index, child.id, child.has_value, child.height);
        let bytes = child.compressed.as_bytes();
        slot.place(child.compressed.bit_len(), long)
            .copy_from_slice(bytes);
        slot
    }

    /// The record of the subtrie `sub` under a parent whose child keys start at bit `offset`.
    fn of_subroot(index: u8, sub: &SubRoot, offset: usize, long: &mut Vec<u8>) -> Self {
        let mut slot = Slot::blank(index, sub.id, sub.has_value, sub.height);
        let bits = sub.key.bit_len().saturating_sub(offset);
        sub.key.write_suffix(offset, slot.place(bits, long));
        slot
    }
}

/// A borrowed view of one child.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChildRef<'a> {
    /// The child's index token.
    pub index: u8,
    /// The padded bytes of the child's compressed key.
    pub compressed_bytes: &'a [u8],
    /// The compressed key's length in bits.
    pub compressed_bits: usize,
    /// The child's node ID.
    pub id: &'a Hash,
    /// True when the child node holds a value.
    pub has_value: bool,
    /// The child's height.
    pub height: u8,
}

impl ChildRef<'_> {
    /// The subtrie this child roots, under a parent with key `parent`.
    pub(crate) fn subroot(&self, parent: &Key, token_bits: usize) -> SubRoot {
        SubRoot {
            key: parent.join_bits(
                self.index,
                token_bits,
                self.compressed_bytes,
                self.compressed_bits,
            ),
            id: *self.id,
            has_value: self.has_value,
            height: self.height,
        }
    }

    /// An owned copy of the child.
    pub(crate) fn to_child(self) -> Child {
        Child {
            compressed: Key::from_padded(self.compressed_bytes, self.compressed_bits),
            id: *self.id,
            has_value: self.has_value,
            height: self.height,
        }
    }
}

/// A node's children, sorted by index with no duplicates.
///
/// Stored as fixed-size records (see `Slot`), with compressed keys longer than 4 bytes in a
/// byte buffer, so that cloning a node, which every commit does for every node it rewrites,
/// copies memory in bulk instead of key by key. Replacing or removing a child with a long key
/// leaves its bytes in the buffer until the node is next copied ([`Children::clone_with_room`]
/// keeps only the live ones); a child replaced by one with a key of the same length (a leaf
/// whose value changed) reuses them.
#[derive(Clone, Default)]
pub(crate) struct Children {
    slots: Vec<Slot>,
    long: Vec<u8>,
}

impl Children {
    /// No children.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// No children yet, with room for `capacity` without reallocating.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            long: Vec::new(),
        }
    }

    /// The number of children.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when there are no children.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn view<'a>(&'a self, slot: &'a Slot) -> ChildRef<'a> {
        let bits = slot.bits as usize;
        let compressed_bytes = match slot.long_range() {
            Some(range) => &self.long[range],
            None => &slot.key[..bits.div_ceil(8)],
        };
        ChildRef {
            index: slot.index,
            compressed_bytes,
            compressed_bits: bits,
            id: &slot.id,
            has_value: slot.has_value,
            height: slot.height,
        }
    }

    /// The height of a node with these children: 0 without children, else one more than the
    /// highest child (saturating).
    pub(crate) fn height(&self) -> u8 {
        self.slots
            .iter()
            .map(|s| s.height.saturating_add(1))
            .max()
            .unwrap_or(0)
    }

    /// The children's heights, by ascending index.
    pub(crate) fn heights(&self) -> impl ExactSizeIterator<Item = u8> + '_ {
        self.slots.iter().map(|s| s.height)
    }

    /// Sets the children's heights, by ascending index (as [`Children::heights`] lists them).
    /// Returns false, changing nothing, when the count differs from the number of children.
    pub(crate) fn set_heights(&mut self, heights: &[u8]) -> bool {
        if heights.len() != self.slots.len() {
            return false;
        }
        for (slot, &h) in self.slots.iter_mut().zip(heights) {
            slot.height = h;
        }
        true
    }

    /// The child at `index`, borrowed.
    pub(crate) fn get_ref(&self, index: u8) -> Option<ChildRef<'_>> {
        let pos = self.slots.binary_search_by_key(&index, |s| s.index).ok()?;
        Some(self.view(&self.slots[pos]))
    }

    /// The children by ascending index, borrowed.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = ChildRef<'_>> + '_ {
        self.slots.iter().map(|s| self.view(s))
    }

    /// `(index, ID)` of every child by ascending index: what a node's hash covers.
    pub(crate) fn ids(&self) -> impl ExactSizeIterator<Item = (u8, &Hash)> + '_ {
        self.slots.iter().map(|s| (s.index, &s.id))
    }

    /// Sets or removes the child at `index`.
    pub(crate) fn set(&mut self, index: u8, child: Option<Child>) {
        self.put(
            index,
            child.map(|c| move |long: &mut Vec<u8>| Slot::new(index, c, long)),
        );
    }

    /// Sets the child at `index` to the subtrie `sub` (its key's bits from `offset` on, the
    /// parent's key and the index token before them, are the compressed key), or removes it.
    /// The same as [`Children::set`] with [`SubRoot::to_child`], without building the
    /// compressed key on the way: a commit does this for every node it rewrites.
    pub(crate) fn set_subroot(&mut self, index: u8, sub: Option<&SubRoot>, offset: usize) {
        self.put(
            index,
            sub.map(|s| move |long: &mut Vec<u8>| Slot::of_subroot(index, s, offset, long)),
        );
    }

    /// Puts the record `make` builds at `index`, or removes the one there.
    fn put(&mut self, index: u8, make: Option<impl FnOnce(&mut Vec<u8>) -> Slot>) {
        let found = self.slots.binary_search_by_key(&index, |s| s.index);
        match (found, make) {
            (Ok(pos), Some(make)) => {
                let before = self.slots[pos].long_range();
                let mark = self.long.len();
                let mut slot = make(&mut self.long);
                // A long key as long as the one it replaces takes its place in the buffer.
                if let (Some(old), Some(new)) = (before, slot.long_range()) {
                    if old.len() == new.len() {
                        self.long.copy_within(new, old.start);
                        self.long.truncate(mark);
                        slot.key = (old.start as u32).to_le_bytes();
                    }
                }
                self.slots[pos] = slot;
            }
            (Ok(pos), None) => {
                self.slots.remove(pos);
            }
            (Err(pos), Some(make)) => {
                let slot = make(&mut self.long);
                self.slots.insert(pos, slot);
            }
            (Err(_), None) => {}
        }
    }

    /// A copy with room for `extra` more children without reallocating, and only the live long
    /// keys in its buffer.
    pub(crate) fn clone_with_room(&self, extra: usize) -> Children {
        let mut slots = Vec::with_capacity(self.slots.len() + extra);
        slots.extend_from_slice(&self.slots);
        let live: usize = self
            .slots
            .iter()
            .filter_map(Slot::long_range)
            .map(|r| r.len())
            .sum();
        if live == self.long.len() {
            return Children {
                slots,
                long: self.long.clone(),
            };
        }
        let mut long = Vec::with_capacity(live);
        for slot in &mut slots {
            if let Some(range) = slot.long_range() {
                slot.key = (long.len() as u32).to_le_bytes();
                long.extend_from_slice(&self.long[range]);
            }
        }
        Children { slots, long }
    }
}

impl FromIterator<(u8, Child)> for Children {
    /// Collects children; a later child at the same index replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = (u8, Child)>>(iter: I) -> Self {
        let mut out = Children::new();
        for (index, child) in iter {
            out.set(index, Some(child));
        }
        out
    }
}

impl PartialEq for Children {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.iter().zip(other.iter()).all(|(a, b)| {
                a.index == b.index
                    && a.id == b.id
                    && a.has_value == b.has_value
                    && a.height == b.height
                    && a.compressed_bits == b.compressed_bits
                    && a.compressed_bytes == b.compressed_bytes
            })
    }
}

impl Eq for Children {}

impl std::fmt::Debug for Children {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|c| (c.index, c.to_child())))
            .finish()
    }
}

/// A reference to the root of a subtrie: its full key, ID, whether it holds a value and its
/// height. It is all a parent (or the database, for the trie root) records about a subtrie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SubRoot {
    /// The full key of the subtrie's top node.
    pub key: Key,
    /// That node's ID.
    pub id: Hash,
    /// Whether that node holds a value.
    pub has_value: bool,
    /// That node's height (see [`Node::height`]).
    pub height: u8,
}

impl SubRoot {
    /// The reference to `node`, whose ID is `id`.
    pub(crate) fn of(node: &Node, id: Hash) -> Self {
        Self {
            key: node.key.clone(),
            id,
            has_value: node.value.is_some(),
            height: node.height(),
        }
    }

    /// The child pointer to this subtrie from a parent whose child keys start at bit `offset`
    /// (`parent key bits + token bits`). The tests' reference for [`Children::set_subroot`].
    #[cfg(test)]
    pub(crate) fn to_child(&self, offset: usize) -> Child {
        Child {
            compressed: self.key.skip(offset),
            id: self.id,
            has_value: self.has_value,
            height: self.height,
        }
    }
}

#[cfg(test)]
mod tests;
