//! # arbor
//!
//! The umbrella crate: re-exports the Arbor crates and hosts the cross-crate benchmarks and
//! integration tests.
//!
//! * [`merkledb`]: the Merkle trie on RocksDB (`arbor-merkledb`).
//! * [`sync`]: proto conversion, gRPC server and client, sync manager (`arbor-sync`).

pub use arbor_merkledb as merkledb;
pub use arbor_sync as sync;
