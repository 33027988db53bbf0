//! Error types. Each operation family has its own enum; [`Error`] is the umbrella.

use thiserror::Error;

use crate::{codec::CodecError, hash::Hash, key::Key, proof::ProofError};

/// A storage backend failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// RocksDB failed.
    #[cfg(feature = "rocksdb")]
    #[error("rocksdb {op} failed (column family {space:?}): {source}")]
    Rocks {
        /// The operation: open, get, scan, write, clear.
        op: &'static str,
        /// The column family, when the operation had one.
        space: Option<&'static str>,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// A column family is missing from an opened database.
    #[error("column family {0} missing")]
    MissingSpace(&'static str),
    /// A lock was poisoned by a panic in another thread.
    #[error("store lock poisoned")]
    Poisoned,
    /// The thread writing inner nodes back could not start or panicked.
    #[error("node write-back thread failed: {0}")]
    WriteBackThread(String),
}

/// Data read from storage is not what the trie wrote there.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CorruptionError {
    /// A stored record failed to decode.
    #[error("corrupt {what} record at {key:02x?}: {source}")]
    Decode {
        /// Which kind of record.
        what: &'static str,
        /// Its storage key.
        key: Vec<u8>,
        /// The decoding error.
        source: CodecError,
    },
    /// A record has an impossible size or content.
    #[error("corrupt {what} record at {key:02x?}")]
    Malformed {
        /// Which kind of record.
        what: &'static str,
        /// Its storage key.
        key: Vec<u8>,
    },
    /// A node referenced by its parent is missing.
    #[error("node {0:?} referenced by its parent is missing")]
    MissingNode(Key),
    /// A node's recomputed hash differs from the ID its parent recorded.
    #[error("node {key:?} hashes to {actual}, its parent recorded {expected}")]
    NodeHashMismatch {
        /// The node.
        key: Key,
        /// The ID the parent recorded.
        expected: Hash,
        /// The ID recomputed from the stored node.
        actual: Hash,
    },
    /// Rebuilding the trie from the stored values gave a root other than the committed one.
    #[error("rebuilt root {actual} differs from committed root {expected}")]
    RootMismatch {
        /// The root recorded by the last commit.
        expected: Hash,
        /// The root rebuilt from the values.
        actual: Hash,
    },
}

/// Any merkledb failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored data is corrupt.
    #[error(transparent)]
    Corrupt(#[from] CorruptionError),
    /// The proposal's base was changed by another commit; it can no longer be read or committed.
    #[error("proposal is invalid: the database moved past its base")]
    Invalid,
    /// The proposal was already committed.
    #[error("proposal already committed")]
    AlreadyCommitted,
    /// Only proposals whose parent is the database (or a committed proposal) can be committed.
    #[error("proposal's parent is not committed")]
    ParentNotCommitted,
    /// The database was created with another branch factor.
    #[error("database uses branch factor {stored}, {requested} was requested")]
    BranchFactorMismatch {
        /// The stored branch factor.
        stored: u32,
        /// The configured one.
        requested: u32,
    },
    /// The database was written in a storage layout this build does not read (a newer one).
    #[error(
        "database layout version {found} is not supported (this build reads versions 1 and {supported})"
    )]
    UnsupportedFormat {
        /// The layout version the database records.
        found: u32,
        /// The version this build writes.
        supported: u32,
    },
    /// The requested root is not the current root nor in the retained history.
    #[error("root {root} is not in history (retained: {retained} roots)")]
    RootNotInHistory {
        /// The root asked for.
        root: Hash,
        /// How many roots history holds.
        retained: usize,
    },
    /// The database was closed.
    #[error("database closed")]
    Closed,
    /// A proof was rejected or could not be generated.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
