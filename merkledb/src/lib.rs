//! # arbor-merkledb
//!
//! A Merkle key-value database whose trie shape and hashes are bit-compatible with AvalancheGo's
//! `x/merkledb` (SHA-256, bit-string keys, branch factors 2/4/16/256, root at the longest common
//! prefix, empty root = 32 zero bytes, values of 32 bytes or more hashed).
//!
//! * [`Db`]: open on RocksDB ([`Db::open`]) or in memory ([`Db::open_memory`]); read with
//!   [`Db::get`] and views; write by [`Db::propose`] then [`Proposal::commit`].
//! * Proposals stack ([`Proposal::propose`]) and know their root before anything is written.
//! * History: the last [`Config::history_len`] commits are kept on disk, so [`Db::view_at`] can
//!   rebuild the trie at an older root, across restarts.
//! * Crash safety: see the [`db`](crate::Db) module docs and `ARCHITECTURE.md`.
//! * Proofs: [`Db::range_proof_at`] and [`Db::change_proof`] at any retained root, checked by
//!   [`verify_range_proof`] and [`Db::verify_change_proof`] (what `arbor-sync` carries).
//!
//! Open, commit, prove:
//!
//! ```
//! use arbor_merkledb::{Config, Db, verify_range_proof};
//!
//! // `Db::open(path, config)` for RocksDB (feature `rocksdb`); here, in memory.
//! let db = Db::open_memory(Config::default().with_history_len(128))?;
//! let proposal = db.propose(vec![
//!     (b"alice".to_vec(), Some(b"10".to_vec())),
//!     (b"bob".to_vec(), Some(b"20".to_vec())),
//! ])?;
//! let root = proposal.root(); // known before anything is written
//! proposal.commit()?; // atomic: all of the batch or none of it
//! assert_eq!(db.root()?, root);
//! assert_eq!(db.get(b"alice")?, Some(b"10".to_vec()));
//!
//! // A proof that [a, c] holds exactly these keys at `root`, checkable by anyone.
//! let proof = db.range_proof_at(root, Some(b"a"), Some(b"c"), 100)?;
//! verify_range_proof(&proof, Some(b"a"), Some(b"c"), root, 100, db.branch_factor())?;
//! # Ok::<(), arbor_merkledb::Error>(())
//! ```
//!
//! ## Feature flags
//! * `rocksdb` (default): the RocksDB store ([`store::RocksStore`], [`Db::open`]). Without it the
//!   crate compiles no C++: the trie, proofs, [`store::MemoryStore`] or a [`store::Store`] of
//!   the application's own.
//! * `test-utils`: deterministic random data helpers for tests and benchmarks.
//! * `fuzzing`: entry points for the fuzz targets into otherwise private code (the storage codec).

mod changes;
mod codec;
mod config;
mod db;
mod diff;
mod dirty;
mod error;
mod hash;
mod key;
mod layout;
mod node;
mod proof;
mod proposal;
pub mod store;
mod trie;

#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use config::Config;
pub use db::Db;
pub use diff::{
    ChildChange, ChildDiff, INLINE_LEAF_VALUE, NodeDiff, NodeDiffError, NodeQuery, VerifiedChild,
};
pub use error::{CorruptionError, Error, Result, StoreError};
pub use hash::{Hash, ValueDigest};
pub use key::{BranchFactor, Key};
pub use proof::{
    ChangeOrRangeProof, ChangeProof, KeyChange, KeyValue, MissingRoot, Proof, ProofError,
    ProofNode, RangeProof, verify_proof, verify_range_proof,
};
pub use proposal::{BatchOp, Proposal};
