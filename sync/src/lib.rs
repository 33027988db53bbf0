//! # arbor-sync
//!
//! State sync for `arbor-merkledb`: the v1.11 protobuf messages and the `StateSync` gRPC service
//! (generated in [`pb`]). Later modules add proto conversion, the server, clients and the sync
//! manager.

/// Generated protobuf messages and gRPC stubs for `proto/sync/sync.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("sync");
}
