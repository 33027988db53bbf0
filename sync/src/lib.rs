//! # arbor-sync
//!
//! State sync for `arbor-merkledb`: the v1.11 protobuf messages and the `StateSync` gRPC service
//! (generated in [`pb`]), and their conversion to and from the domain types of `arbor-merkledb`
//! ([`convert`]). Later modules add the server, clients and the sync manager.

pub mod client;
pub mod convert;
pub mod follow;
pub mod manager;
pub mod metrics;
pub mod next_key;
pub mod serve;
pub mod server;

pub use convert::{ChangeProofRequest, ConvertError, RangeProofRequest, SyncRequest};
pub use manager::{Progress, SyncConfig, SyncError, SyncManager, SyncSummary};
pub use serve::{Limits, ServeError, handle_request_bytes, serve_change_proof, serve_range_proof};
pub use server::{RootAnnouncer, ServerConfig, StateSyncService};

/// Generated protobuf messages and gRPC stubs for `proto/sync/sync.proto`.
// Generated code: `allow`, not `expect`, because which of these lints fire depends on the
// generator's output.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("sync");
}
