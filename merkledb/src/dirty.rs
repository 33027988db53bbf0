//! The dirty set: inner nodes changed since the last flush, not yet written to the nodes space,
//! and stored records to delete.
//!
//! Nodes are indexed by their own key: a table holds only `Arc<Node>` pointers (8 bytes each)
//! instead of a copy of every key beside them. There is one table per key length: a commit into
//! a large trie probes the tables once per node it rewrites and again to replace it, and most of
//! those nodes sit in the few upper levels, which every batch rewrites. Their tables are small
//! (the 65k nodes of level 4 of a 1M-key trie take 1.2 MB of buckets and control bytes) and stay
//! in the CPU caches, where one table of every inner node (4.7 MB for 340k nodes) missed the
//! cache twice per probe. Keys of removed inner nodes are kept apart; they are few.
//!
//! Invariants: a key is at most in one of the two parts; a node is in the table of its key's
//! length in bits (the last table takes every longer key).

use std::{collections::HashSet, hash::BuildHasher, mem, sync::Arc};

use hashbrown::HashTable;

use crate::{key::Key, node::Node, prefetch::prefetch_bytes, trie::Prefetch};

type Hasher = foldhash::fast::RandomState;

/// Tables for keys of 0 to `LENGTH_TABLES - 2` bits; longer keys share the last one. Keys of a
/// 16-ary trie of 32-byte keys end at multiples of 4 bits below 256.
const LENGTH_TABLES: usize = 258;

/// Inner nodes changed since the last flush.
#[derive(Default)]
pub(crate) struct DirtyNodes {
    /// Nodes to write, by `node.key`, in the table of the key's length (grown on demand).
    tables: Vec<HashTable<Arc<Node>>>,
    /// Keys whose stored record must be deleted.
    removed: HashSet<Key, Hasher>,
    hasher: Hasher,
}

/// What the dirty set holds at one key: `Some(node)` to write, `None` to delete the stored
/// record.
pub(crate) type DirtyEntry = Option<Arc<Node>>;

/// The table of keys `key.bit_len()` bits long.
fn table_of(key: &Key) -> usize {
    key.bit_len().min(LENGTH_TABLES - 1)
}

impl DirtyNodes {
    /// The number of entries (nodes and deletions).
    pub(crate) fn len(&self) -> usize {
        self.node_count() + self.removed.len()
    }

    /// The number of nodes in the tables (a sum over at most [`LENGTH_TABLES`] of them).
    fn node_count(&self) -> usize {
        self.tables.iter().map(HashTable::len).sum()
    }

    /// True when there is nothing to flush.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash(&self, key: &Key) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The table for `key`, created if missing.
    fn table_mut(&mut self, key: &Key) -> &mut HashTable<Arc<Node>> {
        let at = table_of(key);
        if self.tables.len() <= at {
            self.tables.resize_with(at + 1, HashTable::new);
        }
        &mut self.tables[at]
    }

    /// The entry at `key`, if there is one.
    pub(crate) fn get(&self, key: &Key) -> Option<Option<&Arc<Node>>> {
        let found = self
            .tables
            .get(table_of(key))
            .and_then(|table| table.find(self.hash(key), |n| n.key == *key));
        if let Some(node) = found {
            return Some(Some(node));
        }
        (!self.removed.is_empty() && self.removed.contains(key)).then_some(None)
    }

    /// Starts fetching the node at `key` into the CPU caches (see [`crate::trie::Prefetch`]),
    /// if the set holds one. For [`Prefetch::Node`] the node is not read: the first entry whose
    /// hash tag matches is taken, which is the node at `key` unless 7 bits of the hashes collide
    /// (then a useless but harmless hint). For [`Prefetch::Children`] the node is read to find
    /// its child records.
    pub(crate) fn prefetch(&self, key: &Key, part: Prefetch) {
        let Some(table) = self.tables.get(table_of(key)) else {
            return;
        };
        let hash = self.hash(key);
        match part {
            Prefetch::Node => {
                if let Some(node) = table.find(hash, |_| true) {
                    prefetch_bytes(Arc::as_ptr(node), mem::size_of::<Node>());
                }
            }
            Prefetch::Children => {
                if let Some(node) = table.find(hash, |n| n.key == *key) {
                    node.children.prefetch();
                }
            }
        }
    }

    /// Sets the entry at `key` (a node's key must be `key`). Returns the previous entry.
    pub(crate) fn set(&mut self, key: &Key, entry: DirtyEntry) -> Option<DirtyEntry> {
        self.set_replacing(key, entry, None)
    }

    /// [`DirtyNodes::set`], given the node expected at `key` (`likely`, a node whose key is
    /// `key`): an entry at the same address is known to be it without reading its key, which is
    /// usually a cache miss. Any other entry is compared by key, so a wrong guess costs only that
    /// read.
    pub(crate) fn set_replacing(
        &mut self,
        key: &Key,
        entry: DirtyEntry,
        likely: Option<&Arc<Node>>,
    ) -> Option<DirtyEntry> {
        debug_assert!(entry.as_ref().is_none_or(|n| n.key == *key));
        debug_assert!(likely.is_none_or(|n| n.key == *key));
        let hash = self.hash(key);
        let hasher = self.hasher;
        let is_key = |n: &Arc<Node>| likely.is_some_and(|l| Arc::ptr_eq(n, l)) || n.key == *key;
        match entry {
            Some(node) => {
                let table = self.table_mut(key);
                if let Some(slot) = table.find_mut(hash, is_key) {
                    return Some(Some(mem::replace(slot, node)));
                }
                table.insert_unique(hash, node, |n| hasher.hash_one(&n.key));
                let was_removed = self.removed.remove(key);
                was_removed.then_some(None)
            }
            None => {
                let before = self.remove_node(key, hash, is_key);
                let was_removed = !self.removed.insert(key.clone());
                before.map(Some).or(was_removed.then_some(None))
            }
        }
    }

    /// Removes and returns the node at `key`, whose hash is `hash`, found by `is_key`.
    fn remove_node(
        &mut self,
        key: &Key,
        hash: u64,
        is_key: impl FnMut(&Arc<Node>) -> bool,
    ) -> Option<Arc<Node>> {
        let table = self.tables.get_mut(table_of(key))?;
        let occupied = table.find_entry(hash, is_key).ok()?;
        Some(occupied.remove().0)
    }

    /// Removes whatever is at `key`.
    pub(crate) fn remove(&mut self, key: &Key) {
        self.remove_node(key, self.hash(key), |n| n.key == *key);
        self.removed.remove(key);
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, Option<&Arc<Node>>)> {
        self.tables
            .iter()
            .flat_map(|table| table.iter())
            .map(|n| (&n.key, Some(n)))
            .chain(self.removed.iter().map(|k| (k, None)))
    }

    /// Empties the set, returning the nodes and the removed keys.
    pub(crate) fn take(&mut self) -> (Vec<Arc<Node>>, Vec<Key>) {
        let mut nodes = Vec::with_capacity(self.node_count());
        for table in &mut self.tables {
            nodes.extend(table.drain());
        }
        (nodes, self.removed.drain().collect())
    }

    /// Empties the set.
    pub(crate) fn clear(&mut self) {
        self.tables.iter_mut().for_each(HashTable::clear);
        self.removed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hash::ValueDigest, node::Children};

    fn node(key: &[u8], value: &[u8]) -> Arc<Node> {
        Arc::new(Node {
            key: Key::from_bytes(key),
            value: Some(ValueDigest::of(value)),
            children: Children::new(),
        })
    }

    #[test]
    fn entries_replace_each_other_and_report_what_was_there() {
        let mut dirty = DirtyNodes::default();
        let a = Key::from_bytes(b"a");
        assert!(dirty.get(&a).is_none());
        assert_eq!(dirty.set(&a, Some(node(b"a", b"1"))), None);
        let before = dirty.set(&a, Some(node(b"a", b"2")));
        assert_eq!(before, Some(Some(node(b"a", b"1"))));
        assert_eq!(dirty.get(&a), Some(Some(&node(b"a", b"2"))));
        // A deletion replaces the node, and a node replaces the deletion.
        assert_eq!(dirty.set(&a, None), Some(Some(node(b"a", b"2"))));
        assert_eq!(dirty.get(&a), Some(None));
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty.set(&a, None), Some(None));
        assert_eq!(dirty.set(&a, Some(node(b"a", b"3"))), Some(None));
        assert_eq!(dirty.len(), 1);
        let b = Key::from_bytes(b"b");
        dirty.set(&b, None);
        assert_eq!(dirty.iter().count(), 2);
        dirty.remove(&a);
        dirty.remove(&b);
        assert!(dirty.is_empty());
    }

    /// The expected node only saves a key comparison: a stale guess (another version at the key)
    /// still finds the entry by key, and removals honour the guess the same way.
    #[test]
    fn replacing_finds_the_entry_with_or_without_the_right_guess() {
        let mut dirty = DirtyNodes::default();
        let a = Key::from_bytes(b"a");
        let first = node(b"a", b"1");
        dirty.set(&a, Some(first.clone()));
        let second = node(b"a", b"2");
        let before = dirty.set_replacing(&a, Some(second.clone()), Some(&first));
        assert!(before.flatten().is_some_and(|n| Arc::ptr_eq(&n, &first)));
        // A guess that is not the entry (a stale version at the same key) falls back to the
        // key.
        let stale = node(b"a", b"1");
        let before = dirty.set_replacing(&a, Some(node(b"a", b"3")), Some(&stale));
        assert!(before.flatten().is_some_and(|n| Arc::ptr_eq(&n, &second)));
        assert_eq!(dirty.len(), 1);
        let before = dirty.set_replacing(&a, None, Some(&first));
        assert_eq!(before, Some(Some(node(b"a", b"3"))));
        assert_eq!(dirty.get(&a), Some(None));
    }

    /// Keys of every length land in their own table, the longest ones (beyond the last table)
    /// together; keys equal in bytes but not in length stay apart.
    #[test]
    fn keys_of_every_length_are_found_and_counted() {
        let mut dirty = DirtyNodes::default();
        let long = [0xa5u8; 40];
        let mut keys = Vec::new();
        for bits in (0..=long.len() * 8).step_by(4) {
            keys.push(Key::from_bytes(&long).take(bits));
        }
        for key in &keys {
            let node = Arc::new(Node {
                key: key.clone(),
                value: None,
                children: Children::new(),
            });
            assert_eq!(dirty.set(key, Some(node)), None, "{key:?}");
        }
        assert_eq!(dirty.len(), keys.len());
        for key in &keys {
            let found = dirty.get(key).flatten().expect("present");
            assert_eq!(found.key, *key);
        }
        assert_eq!(dirty.iter().count(), keys.len());
        // Removing one key leaves the others of the shared last table in place.
        let last = keys.last().expect("keys");
        assert!(matches!(dirty.set(last, None), Some(Some(_))));
        assert_eq!(dirty.get(last), Some(None));
        assert!(dirty.get(&keys[keys.len() - 2]).flatten().is_some());
        let (nodes, removed) = dirty.take();
        assert_eq!((nodes.len(), removed.len()), (keys.len() - 1, 1));
        assert!(dirty.is_empty());
    }

    /// Prefetching is only a hint: for present, removed and absent keys, in both parts, it leaves
    /// every entry as it was.
    #[test]
    fn prefetch_changes_no_entry() {
        let mut dirty = DirtyNodes::default();
        let (a, b, c) = (
            Key::from_bytes(b"a"),
            Key::from_bytes(b"b"),
            Key::from_bytes(b"a long key, in a table of its own"),
        );
        dirty.set(&a, Some(node(b"a", b"1")));
        dirty.set(&b, None);
        for key in [&a, &b, &c] {
            for part in [Prefetch::Node, Prefetch::Children] {
                dirty.prefetch(key, part);
            }
        }
        assert_eq!(dirty.get(&a), Some(Some(&node(b"a", b"1"))));
        assert_eq!(dirty.get(&b), Some(None));
        assert_eq!(dirty.get(&c), None);
        assert_eq!(dirty.len(), 2);
    }
}
