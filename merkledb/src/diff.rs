//! Node diffs: how a replica finds what differs between its trie and a target trie, node by
//! node, when no peer keeps the history a change proof needs.
//!
//! The replica asks for the target's node at a path (the root first), sending the IDs of its
//! own subtries below that path, one per child index ([`Db::subtries_below`]). The server
//! answers with the node's key and value and only the children whose ID differs
//! ([`Db::node_diffs_at`]): a child the target lacks, a leaf with its key and value, or an
//! inner node with its key and ID. The replica rebuilds the target node from its own IDs and
//! the differing ones, and checks its hash against the ID the parent recorded
//! ([`NodeDiff::verify`]), so an answer that calls a changed child unchanged, or leaves a change
//! out, fails before anything is used. A child whose ID equals the replica's needs no bytes:
//! the two subtries are equal, keys and values.
//!
//! Paths are node keys (bit strings); the subtrie "below `path` at index `i`" holds the keys
//! that start with `path ‖ i`.

use crate::{
    db::{Db, root_hash},
    error::Result,
    hash::{Hash, ValueDigest, hash_node},
    key::{BranchFactor, Key},
    node::SubRoot,
    proof::{MissingRoot, ProofError},
    proposal::Reader,
    trie::NodeSource,
};

/// Leaves whose value is at most this long travel inside their parent's diff; a longer one is
/// sent as an inner child (key and ID), and its own node diff carries the value.
pub const INLINE_LEAF_VALUE: usize = 1024;

/// What a node's child at one index became in the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildChange {
    /// The target has no child at this index.
    Absent,
    /// A leaf (a node without children): its key after `parent ‖ index`, and its value.
    Leaf {
        /// The leaf's key bits after the parent's key and the index token.
        tail: Key,
        /// The leaf's value.
        value: Vec<u8>,
    },
    /// A node to descend into: its key after `parent ‖ index`, and its ID.
    Node {
        /// The node's key bits after the parent's key and the index token.
        tail: Key,
        /// The node's ID.
        id: Hash,
    },
}

/// One child that differs from the asker's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildDiff {
    /// The child index (token).
    pub index: u8,
    /// What the target holds there.
    pub change: ChildChange,
}

/// A target node as seen against the asker's subtries: the node's key and value, and the
/// children whose IDs differ from the asker's, by ascending index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDiff {
    /// The node's full key.
    pub key: Key,
    /// The node's value, if it has one.
    pub value: Option<Vec<u8>>,
    /// The differing children, by ascending index.
    pub children: Vec<ChildDiff>,
}

/// One question of a node-diff request: the target node at `path` (`None`: the root, whose key
/// the asker does not know yet), and the asker's subtrie IDs below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeQuery {
    /// The node's key, or `None` for the root.
    pub path: Option<Key>,
    /// The asker's subtrie IDs below the path, by ascending index.
    pub local: Vec<(u8, Hash)>,
}

/// A verified child of a target node, with its full key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifiedChild {
    /// The target has no key that starts with `parent ‖ index`.
    Absent {
        /// The child index.
        index: u8,
    },
    /// The only key that starts with `parent ‖ index` is `key`, holding `value`.
    Leaf {
        /// The child index.
        index: u8,
        /// The leaf's full key (whole bytes).
        key: Key,
        /// Its value.
        value: Vec<u8>,
    },
    /// Every key that starts with `parent ‖ index` starts with `key`; the node there has `id`.
    Node {
        /// The child index.
        index: u8,
        /// The node's full key.
        key: Key,
        /// Its ID.
        id: Hash,
    },
}

/// Why a node diff was rejected.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeDiffError {
    /// The node's key is not the one its parent recorded.
    #[error("the node's key is not the one asked for")]
    WrongKey,
    /// Child indices are not strictly ascending or not below the branch factor.
    #[error("child indices out of order or out of range")]
    BadIndex,
    /// A leaf's key is not whole bytes, or a value sits at a key that is not.
    #[error("a value at a key that is not whole bytes")]
    PartialByteKey,
    /// A node's key does not end on a token boundary (no node of a trie has such a key).
    #[error("a node key that does not end on a token boundary")]
    UnalignedKey,
    /// A child reported absent that the asker does not have either.
    #[error("a child reported absent that was not there")]
    NotADifference,
    /// The node rebuilt from the asker's IDs and the diff does not hash to the recorded ID.
    #[error("the node does not hash to the ID its parent recorded")]
    HashMismatch,
}

impl NodeDiff {
    /// Checks this diff against the ID the parent recorded (`expected_id`; the trusted root for
    /// the root) and the asker's subtrie IDs `local` it was asked with, and returns every
    /// differing child with its full key. `expected_key` is the key the parent recorded
    /// (`None` for the root).
    pub fn verify(
        &self,
        expected_key: Option<&Key>,
        expected_id: Hash,
        local: &[(u8, Hash)],
        branch_factor: BranchFactor,
    ) -> std::result::Result<Vec<VerifiedChild>, NodeDiffError> {
        if expected_key.is_some_and(|k| *k != self.key) {
            return Err(NodeDiffError::WrongKey);
        }
        let token_bits = branch_factor.token_bits();
        if self.key.bit_len() % token_bits != 0 {
            return Err(NodeDiffError::UnalignedKey);
        }
        if self.value.is_some() && !self.key.is_whole_bytes() {
            return Err(NodeDiffError::PartialByteKey);
        }
        let mut last = None;
        let mut verified = Vec::with_capacity(self.children.len());
        // The target's children: the asker's IDs where nothing differs, the diff's elsewhere.
        let mut ids: Vec<(u8, Hash)> = local.to_vec();
        for child in &self.children {
            if u32::from(child.index) >= branch_factor.children()
                || last.is_some_and(|l| l >= child.index)
            {
                return Err(NodeDiffError::BadIndex);
            }
            last = Some(child.index);
            let index = child.index;
            let position = ids.binary_search_by_key(&index, |(i, _)| *i);
            let id = match &child.change {
                ChildChange::Absent => {
                    let Ok(at) = position else {
                        return Err(NodeDiffError::NotADifference);
                    };
                    ids.remove(at);
                    verified.push(VerifiedChild::Absent { index });
                    continue;
                }
                ChildChange::Leaf { tail, value } => {
                    let key = self.key.join(index, token_bits, tail);
                    if !key.is_whole_bytes() {
                        return Err(NodeDiffError::PartialByteKey);
                    }
                    let id = hash_node(&key, Some(&ValueDigest::of(value)), std::iter::empty());
                    verified.push(VerifiedChild::Leaf {
                        index,
                        key,
                        value: value.clone(),
                    });
                    id
                }
                ChildChange::Node { tail, id } => {
                    let key = self.key.join(index, token_bits, tail);
                    if key.bit_len() % token_bits != 0 {
                        return Err(NodeDiffError::UnalignedKey);
                    }
                    verified.push(VerifiedChild::Node {
                        index,
                        key,
                        id: *id,
                    });
                    *id
                }
            };
            match position {
                Ok(at) => ids[at].1 = id,
                Err(at) => ids.insert(at, (index, id)),
            }
        }
        let digest = self.value.as_deref().map(ValueDigest::of);
        let rebuilt = hash_node(
            &self.key,
            digest.as_ref(),
            ids.iter().map(|(i, id)| (*i, id)),
        );
        if rebuilt != expected_id {
            return Err(NodeDiffError::HashMismatch);
        }
        Ok(verified)
    }

    /// A rough encoded size, for answers kept within a byte limit.
    pub fn approx_size(&self) -> usize {
        let children: usize = self
            .children
            .iter()
            .map(|c| {
                4 + match &c.change {
                    ChildChange::Absent => 0,
                    ChildChange::Leaf { tail, value } => 8 + tail.as_bytes().len() + value.len(),
                    ChildChange::Node { tail, .. } => 40 + tail.as_bytes().len(),
                }
            })
            .sum();
        12 + self.key.as_bytes().len() + self.value.as_ref().map_or(0, |v| v.len() + 4) + children
    }
}

/// The topmost subtrie of the trie under `root` whose keys all start with `path`: the node at
/// `path`, or the one node below it that every such key shares; `None` when no key starts with
/// `path`.
fn subtrie_at(
    nodes: &dyn NodeSource,
    root: Option<&SubRoot>,
    token_bits: usize,
    path: &Key,
) -> Result<Option<SubRoot>> {
    let mut current = root.cloned();
    while let Some(sub) = current {
        if sub.key.has_prefix(path) {
            return Ok(Some(sub));
        }
        if !path.has_prefix(&sub.key) {
            return Ok(None);
        }
        let node = nodes.load(&sub)?;
        current = node.child_subroot(path.token(sub.key.bit_len(), token_bits), token_bits);
    }
    Ok(None)
}

/// The subtrie IDs below `path` in the trie under `root`: for each index `i`, the ID of the
/// topmost node whose key starts with `path ‖ i`, if any.
fn subtries_below(
    nodes: &dyn NodeSource,
    root: Option<&SubRoot>,
    token_bits: usize,
    path: &Key,
) -> Result<Vec<(u8, Hash)>> {
    Ok(match subtrie_at(nodes, root, token_bits, path)? {
        None => Vec::new(),
        Some(sub) if sub.key == *path => {
            let node = nodes.load(&sub)?;
            node.children.ids().map(|(i, id)| (i, *id)).collect()
        }
        // The node lies below the path: it is the only subtrie there.
        Some(sub) => vec![(sub.key.token(path.bit_len(), token_bits), sub.id)],
    })
}

/// The target node at the query's path, diffed against the query's IDs; `None` when the trie
/// has no node with exactly that key.
fn node_diff(reader: &Reader<'_>, query: &NodeQuery) -> Result<Option<NodeDiff>> {
    let token_bits = reader.token_bits();
    let nodes = reader.nodes();
    let sub = match &query.path {
        // Node keys end on token boundaries.
        Some(path) if path.bit_len() % token_bits != 0 => None,
        Some(path) => {
            subtrie_at(nodes, reader.root(), token_bits, path)?.filter(|sub| sub.key == *path)
        }
        None => reader.root().cloned(),
    };
    let Some(sub) = sub else {
        return Ok(None);
    };
    let node = nodes.load(&sub)?;
    let value = match &node.value {
        Some(_) => reader.get(node.key.as_bytes())?,
        None => None,
    };
    let mut children = Vec::new();
    let mut local = query.local.iter().peekable();
    for child in node.children.iter() {
        while let Some((index, _)) = local.next_if(|(i, _)| *i < child.index) {
            children.push(ChildDiff {
                index: *index,
                change: ChildChange::Absent,
            });
        }
        if local
            .next_if(|(i, _)| *i == child.index)
            .is_some_and(|(_, id)| id == child.id)
        {
            continue;
        }
        let sub = child.subroot(&node.key, token_bits);
        let tail = sub.key.skip(node.key.bit_len() + token_bits);
        let loaded = nodes.load(&sub)?;
        let leaf_value = if loaded.children.is_empty() {
            reader
                .get(sub.key.as_bytes())?
                .filter(|v| v.len() <= INLINE_LEAF_VALUE)
        } else {
            None
        };
        let change = match leaf_value {
            Some(value) => ChildChange::Leaf { tail, value },
            None => ChildChange::Node { tail, id: sub.id },
        };
        children.push(ChildDiff {
            index: child.index,
            change,
        });
    }
    for (index, _) in local {
        children.push(ChildDiff {
            index: *index,
            change: ChildChange::Absent,
        });
    }
    Ok(Some(NodeDiff {
        key: node.key.clone(),
        value,
        children,
    }))
}

impl Db {
    /// The IDs of the current trie's subtries below each path (see the module docs), read under
    /// one lock.
    pub fn subtries_below(&self, paths: &[Key]) -> Result<Vec<Vec<(u8, Hash)>>> {
        let state = self.inner.read()?;
        let view = self.view_at_locked(&state, root_hash(&state.head.root))?;
        view.with_reader_locked(&state, |reader| {
            paths
                .iter()
                .map(|path| {
                    subtries_below(reader.nodes(), reader.root(), reader.token_bits(), path)
                })
                .collect()
        })
    }

    /// Answers node-diff queries at `root` (the current root or one in history), in order,
    /// until their approximate size reaches `max_bytes` (at least one is answered). A query
    /// whose path is not a node of that trie is [`ProofError::NoNodeAtPath`].
    pub fn node_diffs_at(
        &self,
        root: Hash,
        queries: &[NodeQuery],
        max_bytes: usize,
    ) -> Result<Vec<NodeDiff>> {
        if root == Hash::EMPTY_ROOT {
            return Err(ProofError::EmptyProof.into());
        }
        let state = self.inner.read()?;
        let view = self.view_at_locked(&state, root).map_err(|e| match e {
            crate::Error::RootNotInHistory { root, .. } => ProofError::InsufficientHistory {
                root,
                which: MissingRoot::End,
            }
            .into(),
            other => other,
        })?;
        view.with_reader_locked(&state, |reader| {
            let mut out = Vec::with_capacity(queries.len());
            let mut size = 0;
            for query in queries {
                let diff = node_diff(reader, query)?.ok_or(ProofError::NoNodeAtPath)?;
                size += diff.approx_size();
                out.push(diff);
                if size >= max_bytes {
                    break;
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests;
