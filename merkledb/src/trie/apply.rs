//! Applying a sorted batch of changes to a trie.
//!
//! The recursion works on *subtries*: a position in the trie, the subtrie currently there (a
//! [`SubRoot`], or nothing) and the changes whose keys fall under it. Untouched subtries are never
//! loaded: a parent keeps their child pointer as is. At each level:
//!
//! * no changes → the subtrie is unchanged;
//! * no existing subtrie → build one from the puts (deletes of absent keys are no-ops);
//! * every change lies under the existing subtrie's top node → load that node, update its value,
//!   recurse into each child token that has changes, then *normalise*;
//! * some put lies outside it → a new branch node at the longest common prefix of the existing top
//!   key and those puts, with the existing subtrie as one of its children.
//!
//! Normalising keeps the trie canonical: a node with no value and no children disappears; a node
//! with no value and one child is replaced by that child (whose key, hence ID, is unchanged).
//! So the result depends only on the final key-value set, never on batching or order.

use std::sync::Arc;

use rayon::prelude::*;
use smallvec::SmallVec;

use super::NodeSource;
use crate::{
    error::Result,
    hash::ValueDigest,
    key::Key,
    layout::is_stored,
    node::{Children, Node, SubRoot},
};

/// Below this many changes a level is processed on the calling thread.
const PARALLEL_THRESHOLD: usize = 2048;

/// One change of a batch. Batches are sorted by key with no duplicates.
pub(crate) struct Change<'a> {
    /// The (whole-byte) key.
    pub key: Key,
    /// The new value; `None` deletes.
    pub value: Option<&'a [u8]>,
}

/// A node written or removed by a batch.
pub(crate) struct NodeChange {
    /// The node's key.
    pub key: Key,
    /// The new node; `None` when no node remains at `key`.
    pub node: Option<Arc<Node>>,
    /// True when the node that was at `key` before had a stored record (see
    /// [`is_stored`]), so a removal must be written to the nodes space.
    pub was_stored: bool,
    /// True when a node existed at `key` before the batch (so caches may hold a stale copy);
    /// false for a node the batch created.
    pub replaced: bool,
}

/// What applying a batch produced.
#[derive(Default)]
pub(crate) struct Applied {
    /// Every node created, changed or removed.
    pub nodes: Vec<NodeChange>,
    /// The keys of the batch that held a value before it.
    pub existed: Vec<Key>,
}

impl Applied {
    /// Empty, with room for the node changes of `changes` changes (1.3–1.6 per key for random
    /// inserts: more as the trie grows), so the list is not regrown by doubling.
    pub(crate) fn for_changes(changes: usize) -> Self {
        Self {
            nodes: Vec::with_capacity(2 * changes),
            existed: Vec::new(),
        }
    }

    fn record(&mut self, change: NodeChange) {
        self.nodes.push(change);
    }

    fn merge(&mut self, other: Applied) {
        self.nodes.extend(other.nodes);
        self.existed.extend(other.existed);
    }
}

/// A child token with changes: the token and its changes. (Small, so that the list of them on
/// every level's stack frame is too: the subtrie under the token is looked up when its turn
/// comes.)
type Work<'c, 'v> = (u8, &'c [Change<'v>]);

/// Where a node being updated came from.
enum Origin {
    /// Created by this batch (a new branch point or leaf).
    Fresh,
    /// Loaded from the trie; `stored` when it has a record in the nodes space.
    Loaded { stored: bool },
}

/// Applies `changes` (sorted, unique, all under the trie position of `at`) to the subtrie `at`.
/// Returns the new subtrie there.
pub(crate) fn apply(
    src: &dyn NodeSource,
    token_bits: usize,
    at: Option<SubRoot>,
    changes: &[Change<'_>],
    out: &mut Applied,
) -> Result<Option<SubRoot>> {
    let Some(existing) = at else {
        return build(src, token_bits, changes, out);
    };
    let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
        return Ok(Some(existing));
    };
    // An update or delete of a leaf: the new subtrie depends only on the key and the change,
    // so the leaf is not read (at 100M keys that read was a random read of the values space
    // per updated key, beside the one for the undo list).
    if existing.height == 0 && changes.len() == 1 && first.key == existing.key {
        if existing.has_value {
            out.existed.push(existing.key.clone());
        }
        let node = Node {
            key: existing.key,
            value: first.value.map(ValueDigest::of),
            children: Children::new(),
        };
        return Ok(finalize(
            node,
            Origin::Loaded { stored: false },
            token_bits,
            out,
        ));
    }
    // Keys under `existing.key` are contiguous in sorted order, so checking the ends suffices.
    if first.key.has_prefix(&existing.key) && last.key.has_prefix(&existing.key) {
        let node = src.load(&existing)?;
        let stored = is_stored(node.height(), token_bits);
        // Each change adds at most one child: room for them now spares a reallocation later.
        let room = changes.len().min((1 << token_bits) - node.children.len());
        let copy = Node {
            key: node.key.clone(),
            value: node.value,
            children: node.children.clone_with_room(room),
        };
        return update(
            copy,
            Origin::Loaded { stored },
            src,
            token_bits,
            changes,
            out,
        );
    }
    // The branch point: the longest common token-aligned prefix of the existing key and every
    // put outside the existing subtrie. Deletes outside it are no-ops.
    let mut branch_bits = usize::MAX;
    for change in changes {
        if change.value.is_some() && !change.key.has_prefix(&existing.key) {
            branch_bits = branch_bits.min(change.key.common_prefix_bits(&existing.key));
        }
    }
    if branch_bits == usize::MAX {
        let inside: Vec<usize> = (0..changes.len())
            .filter(|&i| changes[i].key.has_prefix(&existing.key))
            .collect();
        return match (inside.first(), inside.last()) {
            (Some(&a), Some(&b)) => apply(src, token_bits, Some(existing), &changes[a..=b], out),
            _ => Ok(Some(existing)),
        };
    }
    let branch_bits = branch_bits / token_bits * token_bits;
    let branch_key = existing.key.take(branch_bits);
    let token = existing.key.token(branch_bits, token_bits);
    // Room for the existing subtrie and a child per change, at most a full node: grown one at a
    // time, the records were reallocated twice on the way to a full node.
    let mut node = Node {
        key: branch_key,
        value: None,
        children: Children::with_capacity((1 + changes.len()).min(1 << token_bits)),
    };
    node.children
        .set_subroot(token, Some(&existing), branch_bits + token_bits);
    // Every change is under `branch_key`: puts by construction, inside changes through
    // `existing.key`, and outside deletes are skipped by `update` when they find nothing.
    update(node, Origin::Fresh, src, token_bits, changes, out)
}

/// Builds a subtrie from the puts of `changes` where nothing exists yet.
fn build(
    src: &dyn NodeSource,
    token_bits: usize,
    changes: &[Change<'_>],
    out: &mut Applied,
) -> Result<Option<SubRoot>> {
    let first = changes.iter().position(|c| c.value.is_some());
    let last = changes.iter().rposition(|c| c.value.is_some());
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(None);
    };
    if first == last {
        let change = &changes[first];
        let value = change.value.map(ValueDigest::of);
        let node = Node {
            key: change.key.clone(),
            value,
            children: Children::new(),
        };
        return Ok(finalize(node, Origin::Fresh, token_bits, out));
    }
    let common = changes[first].key.common_prefix_bits(&changes[last].key);
    let key = changes[first].key.take(common / token_bits * token_bits);
    let node = Node {
        key,
        value: None,
        children: Children::with_capacity((last + 1 - first).min(1 << token_bits)),
    };
    update(
        node,
        Origin::Fresh,
        src,
        token_bits,
        &changes[first..=last],
        out,
    )
}

/// Applies `changes` (all with `node.key` as prefix, except outside deletes in the branch case,
/// which are ignored) to `node` and its children.
fn update(
    mut node: Node,
    origin: Origin,
    src: &dyn NodeSource,
    token_bits: usize,
    changes: &[Change<'_>],
    out: &mut Applied,
) -> Result<Option<SubRoot>> {
    let mut rest = changes;
    // Changes sorting before `node.key` or outside it can only be deletes of absent keys.
    while let Some(change) = rest.first() {
        if change.key.has_prefix(&node.key) {
            break;
        }
        rest = &rest[1..];
    }
    while let Some(change) = rest.last() {
        if change.key.has_prefix(&node.key) {
            break;
        }
        rest = &rest[..rest.len() - 1];
    }
    if let Some(change) = rest.first() {
        if change.key == node.key {
            if node.value.is_some() {
                out.existed.push(node.key.clone());
            }
            node.value = change.value.map(ValueDigest::of);
            rest = &rest[1..];
        }
    }
    let depth = node.key.bit_len();
    // Group the remaining changes by the token that follows `node.key`, each with the existing
    // child under that token.
    let mut work: SmallVec<[Work<'_, '_>; 16]> = SmallVec::new();
    let mut start = 0;
    while start < rest.len() {
        let token = rest[start].key.token(depth, token_bits);
        let mut end = start + 1;
        while end < rest.len() && rest[end].key.token(depth, token_bits) == token {
            end += 1;
        }
        work.push((token, &rest[start..end]));
        start = end;
    }
    let offset = depth + token_bits;
    if rest.len() >= PARALLEL_THRESHOLD && work.len() > 1 {
        let parent = &node;
        let results = work
            .par_iter()
            .map(|&(token, group)| {
                let mut local = Applied::for_changes(group.len());
                let at = parent.child_subroot(token, token_bits);
                let sub = apply(src, token_bits, at, group, &mut local)?;
                Ok((token, sub, local))
            })
            .collect::<Result<Vec<_>>>()?;
        // Grow once: repeated doubling of these large vectors showed up as fresh-page faults.
        out.nodes
            .reserve(results.iter().map(|(_, _, l)| l.nodes.len()).sum::<usize>());
        out.existed.reserve(
            results
                .iter()
                .map(|(_, _, l)| l.existed.len())
                .sum::<usize>(),
        );
        for (token, sub, local) in results {
            out.merge(local);
            node.children.set_subroot(token, sub.as_ref(), offset);
        }
    } else {
        for &(token, group) in &work {
            let at = node.child_subroot(token, token_bits);
            let sub = apply(src, token_bits, at, group, out)?;
            node.children.set_subroot(token, sub.as_ref(), offset);
        }
    }
    Ok(finalize(node, origin, token_bits, out))
}

/// Records `node` (or its disappearance) and returns the subtrie now at its position.
fn finalize(node: Node, origin: Origin, token_bits: usize, out: &mut Applied) -> Option<SubRoot> {
    let (was_stored, replaced) = match origin {
        Origin::Loaded { stored } => (stored, true),
        Origin::Fresh => (false, false),
    };
    let removed = |key: Key, out: &mut Applied| {
        if replaced {
            out.record(NodeChange {
                key,
                node: None,
                was_stored,
                replaced,
            });
        }
    };
    if node.value.is_none() {
        match node.children.len() {
            0 => {
                removed(node.key, out);
                return None;
            }
            1 => {
                let sub = node
                    .children
                    .iter()
                    .next()
                    .map(|child| child.subroot(&node.key, token_bits));
                removed(node.key, out);
                return sub;
            }
            _ => {}
        }
    }
    let id = node.id();
    let sub = SubRoot::of(&node, id);
    // A new leaf needs no record: it is exactly its key and value, which the batch holds (a
    // proposal's node source rebuilds it from there), and no cache can hold a stale copy. About
    // half of the nodes of a batch of inserts are such leaves.
    if replaced || !node.children.is_empty() {
        out.record(NodeChange {
            key: node.key.clone(),
            node: Some(Arc::new(node)),
            was_stored,
            replaced,
        });
    }
    Some(sub)
}
