//! The trie algorithms, independent of storage.
//!
//! * [`apply`]: apply a sorted batch of puts and deletes to a trie, producing the new root and
//!   every node that changed, hashing independent subtries in parallel.
//! * [`NodeSource`]: where existing nodes come from (the database, a proposal's overlay, ...).

mod apply;

pub(crate) use apply::{Applied, Change, NodeChange, apply};

use std::sync::Arc;

use crate::{
    error::Result,
    node::{Node, SubRoot},
};

/// Reads existing nodes by key. Implementations check that the node they return hashes to
/// `sub.id` (the ID its parent recorded), so corrupt storage surfaces as an error, never as a
/// wrong root.
pub(crate) trait NodeSource: Sync {
    /// The node at `sub.key`, of which its parent recorded `sub`.
    fn load(&self, sub: &SubRoot) -> Result<Arc<Node>>;
}
