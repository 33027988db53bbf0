//! The dirty set: inner nodes changed since the last flush, not yet written to the nodes space,
//! and stored records to delete.
//!
//! Nodes are indexed by their own key: the table holds only `Arc<Node>` pointers (8 bytes each)
//! instead of a copy of every key beside them. A commit into a large trie probes this table once
//! per node it rewrites and again to replace it; a small table stays in the CPU caches where a
//! map of 56-byte entries did not. Keys of removed inner nodes are kept apart; they are few.
//!
//! Invariant: a key is at most in one of the two parts.

use std::{collections::HashSet, hash::BuildHasher, mem, sync::Arc};

use hashbrown::HashTable;

use crate::{key::Key, node::Node};

type Hasher = foldhash::fast::RandomState;

/// Inner nodes changed since the last flush.
#[derive(Default)]
pub(crate) struct DirtyNodes {
    /// Nodes to write, by `node.key`.
    nodes: HashTable<Arc<Node>>,
    /// Keys whose stored record must be deleted.
    removed: HashSet<Key, Hasher>,
    hasher: Hasher,
}

/// What the dirty set holds at one key: `Some(node)` to write, `None` to delete the stored
/// record.
pub(crate) type DirtyEntry = Option<Arc<Node>>;

impl DirtyNodes {
    /// The number of entries (nodes and deletions).
    pub(crate) fn len(&self) -> usize {
        self.nodes.len() + self.removed.len()
    }

    /// True when there is nothing to flush.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash(&self, key: &Key) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The entry at `key`, if there is one.
    pub(crate) fn get(&self, key: &Key) -> Option<Option<&Arc<Node>>> {
        if let Some(node) = self.nodes.find(self.hash(key), |n| n.key == *key) {
            return Some(Some(node));
        }
        (!self.removed.is_empty() && self.removed.contains(key)).then_some(None)
    }

    /// Sets the entry at `key` (a node's key must be `key`). Returns the previous entry.
    pub(crate) fn set(&mut self, key: &Key, entry: DirtyEntry) -> Option<DirtyEntry> {
        debug_assert!(entry.as_ref().is_none_or(|n| n.key == *key));
        let hash = self.hash(key);
        let hasher = &self.hasher;
        match entry {
            Some(node) => {
                if let Some(slot) = self.nodes.find_mut(hash, |n| n.key == *key) {
                    return Some(Some(mem::replace(slot, node)));
                }
                let was_removed = self.removed.remove(key);
                self.nodes
                    .insert_unique(hash, node, |n| hasher.hash_one(&n.key));
                was_removed.then_some(None)
            }
            None => {
                let before = match self.nodes.find_entry(hash, |n| n.key == *key) {
                    Ok(occupied) => Some(Some(occupied.remove().0)),
                    Err(_) => None,
                };
                let was_removed = !self.removed.insert(key.clone());
                before.or(was_removed.then_some(None))
            }
        }
    }

    /// Removes whatever is at `key`.
    pub(crate) fn remove(&mut self, key: &Key) {
        let hash = self.hash(key);
        if let Ok(occupied) = self.nodes.find_entry(hash, |n| n.key == *key) {
            occupied.remove();
        }
        self.removed.remove(key);
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, Option<&Arc<Node>>)> {
        self.nodes
            .iter()
            .map(|n| (&n.key, Some(n)))
            .chain(self.removed.iter().map(|k| (k, None)))
    }

    /// Empties the set, returning the nodes and the removed keys.
    pub(crate) fn take(&mut self) -> (Vec<Arc<Node>>, Vec<Key>) {
        (self.nodes.drain().collect(), self.removed.drain().collect())
    }

    /// Empties the set.
    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
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
}
