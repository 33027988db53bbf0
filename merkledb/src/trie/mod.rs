//! The trie algorithms, independent of storage.
//!
//! * [`apply`]: apply a sorted batch of puts and deletes to a trie, producing the new root and
//!   every node that changed, hashing independent subtries in parallel.
//! * [`NodeSource`]: where existing nodes come from (the database, a proposal's overlay, ...).

mod apply;

pub(crate) use apply::{Applied, Change, NodeChange, apply};

use std::sync::Arc;

use crate::{error::Result, hash::Hash, key::Key, node::Node};

/// Reads existing nodes by key. Implementations check that the node they return hashes to `id`
/// (the ID its parent recorded), so corrupt storage surfaces as an error, never as a wrong root.
pub(crate) trait NodeSource: Sync {
    /// The node at `key`, whose parent recorded `id` and `has_value`.
    fn load(&self, key: &Key, id: &Hash, has_value: bool) -> Result<Arc<Node>>;

    /// A hint that the node at `key` will be loaded soon: a source that holds it in memory may
    /// ask the CPU to start fetching it (see [`Prefetch`]). Never changes what `load` returns.
    fn prefetch(&self, _key: &Key, _part: Prefetch) {}
}

/// Which part of a node [`NodeSource::prefetch`] asks for. A node and its child records are two
/// places in memory, and the records' address is only known once the node is read: a walk asks
/// for the nodes of all the children it will visit first, then for each one's records shortly
/// before it visits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prefetch {
    /// The node itself (its key, value and the address of its child records).
    Node,
    /// The node's child records (reads the node: ask for [`Prefetch::Node`] well before).
    Children,
}
