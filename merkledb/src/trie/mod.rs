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
}
