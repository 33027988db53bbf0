//! The dirty set: inner nodes changed since the last flush, not yet written to the nodes space
//! (lower nodes, which have no stored record, only while the state is small: see
//! `DbInner::lower_nodes_fit`), and stored records to delete.
//!
//! Nodes are indexed by their own key: the table holds `Arc<Node>` pointers and each key's
//! length (16 bytes per entry) instead of a copy of every key beside them. The length lets a
//! write-back choose the deepest nodes from the table's own memory: reading it through the
//! pointers, one cache miss per entry, took 20-60 ms of a 100M-key commit for a 700k-node set.
//! Keys of removed inner nodes are kept apart; they are few.
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
    nodes: HashTable<Entry>,
    /// Keys whose stored record must be deleted.
    removed: HashSet<Key, Hasher>,
    hasher: Hasher,
}

/// A node and its key's length in bits (`node.key.bit_len()`).
struct Entry {
    bits: usize,
    node: Arc<Node>,
}

impl Entry {
    fn new(node: Arc<Node>) -> Self {
        Self {
            bits: node.key.bit_len(),
            node,
        }
    }

    fn is(&self, key: &Key) -> bool {
        self.bits == key.bit_len() && self.node.key == *key
    }
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
        if let Some(entry) = self.nodes.find(self.hash(key), |e| e.is(key)) {
            return Some(Some(&entry.node));
        }
        (!self.removed.is_empty() && self.removed.contains(key)).then_some(None)
    }

    /// Sets the entry at `key` (a node's key must be `key`). Returns the previous entry.
    pub(crate) fn set(&mut self, key: &Key, entry: DirtyEntry) -> Option<DirtyEntry> {
        debug_assert!(entry.as_ref().is_none_or(|n| n.key == *key));
        let hash = self.hash(key);
        match entry {
            Some(node) => {
                if let Some(entry) = self.nodes.find_mut(hash, |e| e.is(key)) {
                    return Some(Some(mem::replace(&mut entry.node, node)));
                }
                let hasher = self.hasher;
                self.nodes
                    .insert_unique(hash, Entry::new(node), |e| hasher.hash_one(&e.node.key));
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
        let occupied = self.nodes.find_entry(hash, |e| e.is(key)).ok()?;
        Some(occupied.remove().0.node)
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
        (
            self.nodes.drain().map(|e| e.node).collect(),
            self.removed.drain().collect(),
        )
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
        for entry in self.nodes.iter() {
            *by_len.entry(entry.bits).or_default() += 1;
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
            .extract_if(|entry| {
                let len = entry.bits;
                if len > cut {
                    return true;
                }
                if len == cut && at_cut > 0 {
                    at_cut -= 1;
                    return true;
                }
                false
            })
            .map(|e| e.node)
            .collect();
        (nodes, self.removed.drain().collect())
    }

    /// A set of `nodes` and deletions of `removed`, all at distinct keys (what
    /// [`DirtyNodes::take_deepest`] returns).
    pub(crate) fn from_entries(nodes: Vec<Arc<Node>>, removed: Vec<Key>) -> Self {
        let mut set = Self::default();
        let hasher = set.hasher;
        set.nodes
            .reserve(nodes.len(), |e| hasher.hash_one(&e.node.key));
        for node in nodes {
            let hash = set.hash(&node.key);
            set.nodes
                .insert_unique(hash, Entry::new(node), |e| hasher.hash_one(&e.node.key));
        }
        set.removed.extend(removed);
        set
    }

    /// The nodes to write, in no order.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.iter().map(|e| &e.node)
    }

    /// The keys whose stored records must be deleted, in no order.
    pub(crate) fn removed(&self) -> impl Iterator<Item = &Key> {
        self.removed.iter()
    }

    /// Empties the set.
    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
        self.removed.clear();
    }
}

#[cfg(test)]
mod tests;
