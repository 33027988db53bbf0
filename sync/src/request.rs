//! The requests a client sends and a server answers, as domain types (the wire forms are in
//! [`crate::pb`]; [`crate::convert`] converts between them).
//!
//! # Bounds
//!
//! Request bounds are **inclusive at both ends**: a request covers the keys `k` with
//! `start <= k <= end`, where `start = None` means "from the smallest key" and `end = None` means
//! "to +∞". When both are set, `start <= end` is required (`start == end` asks for one key).

use arbor_merkledb::{Hash, NodeQuery};

/// A request for a range proof: the key-values of `[start, end]` (both **inclusive**; `None` is
/// unbounded) at `root`, within the given limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeProofRequest {
    /// The root to prove against.
    pub root: Hash,
    /// The smallest key wanted (inclusive); `None` starts at the smallest key.
    pub start: Option<Vec<u8>>,
    /// The largest key wanted (inclusive); `None` goes to the end of the key space.
    pub end: Option<Vec<u8>>,
    /// The maximum number of key-values (non-zero).
    pub key_limit: u32,
    /// The maximum encoded response size in bytes (non-zero).
    pub bytes_limit: u32,
}

/// A request for a change proof: the changes of `[start, end]` (both **inclusive**; `None` is
/// unbounded) between `start_root` and `end_root`, within the given limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeProofRequest {
    /// The root the client has.
    pub start_root: Hash,
    /// The root the client wants.
    pub end_root: Hash,
    /// The smallest key wanted (inclusive); `None` starts at the smallest key.
    pub start: Option<Vec<u8>>,
    /// The largest key wanted (inclusive); `None` goes to the end of the key space.
    pub end: Option<Vec<u8>>,
    /// The maximum number of key changes (non-zero).
    pub key_limit: u32,
    /// The maximum encoded response size in bytes (non-zero).
    pub bytes_limit: u32,
}

/// A request for node diffs (Arbor's own, not in AvalancheGo's dialect): the nodes of the trie
/// at `root` at the queried paths, each against the asker's subtrie IDs, answered in order as
/// many as fit under `bytes_limit` (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDiffRequest {
    /// The root whose trie is asked about.
    pub root: Hash,
    /// The nodes asked for, in the order they are answered.
    pub queries: Vec<NodeQuery>,
    /// The maximum encoded response size in bytes (non-zero).
    pub bytes_limit: u32,
}

/// A request carried over a VM's own network (the v1.11 `Request` wrapper).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncRequest {
    /// A range-proof request.
    Range(RangeProofRequest),
    /// A change-proof request.
    Change(ChangeProofRequest),
    /// A node-diff request (Arbor's own).
    NodeDiff(NodeDiffRequest),
}
