//! The dirty set: inner nodes changed since the last flush, not yet written to the nodes space
//! (lower nodes, which have no stored record, only while the state is small: see
//! `DbInner::lower_nodes_fit`), and stored records to delete.
//!
//! Nodes are indexed by their own key: the table holds only `Arc<Node>` pointers (8 bytes each)
//! instead of a copy of every key beside them. Keys of removed inner nodes are kept apart; they
//! are few.
//!
//! Invariant: a key is at most in one of the two parts.

use std::{collections::HashSet, hash::BuildHasher, mem, sync::Arc};

use hashbrown::HashTable;

use crate::{key::Key, node::Node};

type Hasher = foldhash::fast::RandomState;

/// Inner nodes changed since the last flush.
#[derive(Default)]
pub(crate) struct DirtyNodes {
    /// Nodes to write, found by `node.key`.
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
        match entry {
            Some(node) => {
                if let Some(slot) = self.nodes.find_mut(hash, |n| n.key == *key) {
                    return Some(Some(mem::replace(slot, node)));
                }
                let hasher = self.hasher;
                self.nodes
                    .insert_unique(hash, node, |n| hasher.hash_one(&n.key));
                let was_removed = self.removed.remove(key);
                was_removed.then_some(None)
            }
            None => {
                let before = self.remove_node(key, hash);
                let was_removed = !self.removed.insert(key.clone());
                before.map(Some).or(was_removed.then_some(None))
            }
        }
    }

    /// Removes and returns the node at `key`, whose hash is `hash`.
    fn remove_node(&mut self, key: &Key, hash: u64) -> Option<Arc<Node>> {
        let occupied = self.nodes.find_entry(hash, |n| n.key == *key).ok()?;
        Some(occupied.remove().0)
    }

    /// Removes and returns whatever is at `key`.
    pub(crate) fn take_entry(&mut self, key: &Key) -> Option<DirtyEntry> {
        if let Some(node) = self.remove_node(key, self.hash(key)) {
            return Some(Some(node));
        }
        self.removed.remove(key).then_some(None)
    }

    /// Removes whatever is at `key`.
    pub(crate) fn remove(&mut self, key: &Key) {
        self.remove_node(key, self.hash(key));
        self.removed.remove(key);
    }

    /// Empties the set, returning the nodes and the removed keys.
    pub(crate) fn take(&mut self) -> (Vec<Arc<Node>>, Vec<Key>) {
        (self.nodes.drain().collect(), self.removed.drain().collect())
    }

    /// Takes at least `n` entries out (or all, if there are fewer), the deepest nodes first
    /// (those with the longest keys: a commit changes few of them, while the nodes near the
    /// root change in nearly every commit and would only be dirtied again), and every removed
    /// key.
    pub(crate) fn take_deepest(&mut self, n: usize) -> (Vec<Arc<Node>>, Vec<Key>) {
        if n >= self.nodes.len() {
            return self.take();
        }
        // The shortest key length to take: counting from the longest keys down, where `n` is
        // reached. Entries of that length are taken only as far as needed.
        let mut by_len = std::collections::BTreeMap::<usize, usize>::new();
        for node in self.nodes.iter() {
            *by_len.entry(node.key.bit_len()).or_default() += 1;
        }
        let mut deeper = 0;
        let mut cut = 0;
        for (&len, &count) in by_len.iter().rev() {
            cut = len;
            if deeper + count >= n {
                break;
            }
            deeper += count;
        }
        let mut at_cut = n - deeper;
        let nodes: Vec<Arc<Node>> = self
            .nodes
            .extract_if(|node| {
                let len = node.key.bit_len();
                if len > cut {
                    return true;
                }
                if len == cut && at_cut > 0 {
                    at_cut -= 1;
                    return true;
                }
                false
            })
            .collect();
        (nodes, self.removed.drain().collect())
    }

    /// Empties the set.
    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
        self.removed.clear();
    }
}

#[cfg(test)]
mod tests;
