//! Proofs: single-key, range and change proofs, generated from any retained root and verified by
//! pure functions before anything is written.
//!
//! # Bounds
//!
//! Range bounds are **inclusive at both ends**: `[start, end]`. `start = None` means "from the
//! smallest key" and `end = None` means "to +∞". A proof covers `[start, largest]`, where `largest`
//! is the last key-value returned (or `end` when none are).
//!
//! # Verification, in phases (see `verify.rs`)
//!
//! 1. Shape: bounds ordered, key limit respected, keys strictly increasing and inside the bounds,
//!    start/end proofs present exactly when required.
//! 2. Paths: each boundary proof is a chain of nodes towards its key, with the stricter exclusion
//!    checks of AvalancheGo v1.13.1+ on its last node.
//! 3. Values: every boundary node inside `[start, largest]` carries the value the proof claims.
//! 4. Root: rebuild the trie's hash from the boundary nodes (whose children *entirely outside*
//!    the range are taken from the proof by ID) and the claimed in-range contents (whose subtries
//!    are rebuilt from data, never trusted); it must equal the expected root.
//!
//! Phase 4 alone makes the check sound: the rebuilt structure holds exactly the claimed in-range
//! contents, so equality with the root proves that the trie's contents in range are exactly those.

mod commit;
mod generate;
mod verify;

use std::collections::BTreeMap;

pub use verify::{verify_proof, verify_range_proof};

use crate::{
    hash::{Hash, ValueDigest},
    key::Key,
};

/// A node on a proof path: its key, value digest and child IDs (child compressed keys are not part
/// of the hash, so proofs do not carry them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofNode {
    /// The node's full key (may end inside a byte).
    pub key: Key,
    /// The digest of the node's value, if it has one.
    pub value_or_hash: Option<ValueDigest>,
    /// Child index → child ID.
    pub children: BTreeMap<u8, Hash>,
}

/// A proof that `key` has `value` (inclusion) or is absent (exclusion, `value = None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The key proven.
    pub key: Vec<u8>,
    /// Its value, `None` when absent.
    pub value: Option<Vec<u8>>,
    /// The nodes from the root towards `key`.
    pub path: Vec<ProofNode>,
}

/// A key and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// A key's new value in a change proof; `None` deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyChange {
    /// The key.
    pub key: Vec<u8>,
    /// The value at the end root, `None` when deleted.
    pub value: Option<Vec<u8>>,
}

/// The key-values of `[start, largest]` at a root, with the boundary proofs that pin them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeProof {
    /// Proof of `start`, without the leading nodes it shares with `end_proof`.
    pub start_proof: Vec<ProofNode>,
    /// Proof of the last key-value (or of `end` when there are none).
    pub end_proof: Vec<ProofNode>,
    /// The key-values, strictly increasing.
    pub key_values: Vec<KeyValue>,
}

/// The changes in `[start, largest]` between two roots, with boundary proofs in the end root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeProof {
    /// Proof of `start` in the end root, without the nodes it shares with `end_proof`.
    pub start_proof: Vec<ProofNode>,
    /// Proof of the last change's key (or of `end` when there are none) in the end root.
    pub end_proof: Vec<ProofNode>,
    /// The changes, strictly increasing by key.
    pub key_changes: Vec<KeyChange>,
}

/// What a change-proof request can be answered with: a change proof, or a range proof of the end
/// root when the server lacks the history for the start root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeOrRangeProof {
    /// The changes.
    Change(ChangeProof),
    /// A range proof at the end root (fallback).
    Range(RangeProof),
}

/// Which root of a change-proof request is missing from history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingRoot {
    /// The start root (the server can fall back to a range proof at the end root).
    Start,
    /// The end root (no proof is possible).
    End,
}

/// Why a proof was rejected or could not be generated. Every rejection reason is its own variant.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// The trie is empty (root = 32 zero bytes) or the proof holds nothing.
    #[error("empty proof")]
    EmptyProof,
    /// A node diff was asked for at a path where the trie has no node.
    #[error("no node at the requested path")]
    NoNodeAtPath,
    /// `start > end`.
    #[error("start key is after end key")]
    StartAfterEnd,
    /// A key limit of zero.
    #[error("invalid max length (zero)")]
    InvalidMaxLength,
    /// More key-values or changes than the limit.
    #[error("{got} keys exceed the limit of {limit}")]
    TooManyKeys {
        /// The limit.
        limit: usize,
        /// What the proof holds.
        got: usize,
    },
    /// Keys not strictly increasing.
    #[error("key-values are not strictly increasing")]
    NonIncreasingValues,
    /// A key outside `[start, end]`.
    #[error("a key lies outside the requested range")]
    StateFromOutsideOfRange,
    /// A proof node whose key does not extend the previous node's key.
    #[error("proof nodes are not increasing")]
    NonIncreasingProofNodes,
    /// A non-final proof node that is not a strict prefix of the proven key.
    #[error("proof node is not on the path of the key")]
    ProofNodeNotForKey,
    /// An exclusion proof stopping at an ancestor that has a child towards the key.
    #[error("exclusion proof is missing its end nodes")]
    ExclusionProofMissingEndNodes,
    /// An exclusion proof whose last node is not a child of the previous one towards the key.
    #[error("exclusion proof ends at an unrelated node")]
    ExclusionProofInvalidNode,
    /// An exclusion proof claiming a value.
    #[error("exclusion proof has a value")]
    ExclusionProofUnexpectedValue,
    /// A proof node's value differs from the claimed one.
    #[error("proof node value does not match")]
    ProofValueDoesntMatch,
    /// A proof node inside the range has a value the key-values do not include.
    #[error("proof node has a value not included in the proof")]
    ProofNodeHasUnincludedValue,
    /// A value at a key that is not a whole number of bytes.
    #[error("partial-byte key with a value")]
    PartialByteLengthWithValue,
    /// A proof node key whose length is not a whole number of tokens.
    #[error("proof node key {0:?} is not token-aligned")]
    InvalidProofNodeKey(Key),
    /// A child index not below the branch factor.
    #[error("child index {index} out of range for branch factor {branch_factor}")]
    ChildIndexOutOfRange {
        /// The index.
        index: u8,
        /// The branch factor.
        branch_factor: u32,
    },
    /// An end proof where none is allowed (no end bound and no key-values).
    #[error("unexpected end proof")]
    UnexpectedEndProof,
    /// A start proof without a start bound.
    #[error("unexpected start proof")]
    UnexpectedStartProof,
    /// A missing end proof.
    #[error("missing end proof")]
    NoEndProof,
    /// The start and end proofs disagree about a node.
    #[error("start and end proofs disagree about node {0:?}")]
    InconsistentProofNodes(Key),
    /// In-range data at a position the boundary proofs do not account for.
    #[error("proof is missing nodes for in-range data at {0:?}")]
    MissingProofNodes(Key),
    /// A boundary node's child IDs differ from the subtries rebuilt under it.
    #[error("proof node {0:?} claims children that differ from the rebuilt ones")]
    ProofNodeChildMismatch(Key),
    /// The rebuilt root differs from the expected root.
    #[error("proof gives root {actual}, expected {expected}")]
    InvalidProof {
        /// The trusted root.
        expected: Hash,
        /// The root the proof gives.
        actual: Hash,
    },
    /// A change proof between a root and itself.
    #[error("start and end roots are the same")]
    SameRoot,
    /// A root of the request is not in the retained history.
    #[error("root {root} ({which:?}) is not in history")]
    InsufficientHistory {
        /// The missing root.
        root: Hash,
        /// Which one.
        which: MissingRoot,
    },
}
