//! # arbor-sync
//!
//! State sync for `arbor-merkledb`:
//! * [`pb`] and [`convert`]: the v1.11 protobuf messages and the `StateSync` gRPC service, and
//!   their conversion to and from the domain types of `arbor-merkledb`;
//! * [`serve`] and [`server`]: answering proof requests (bytes in → bytes out, or over gRPC);
//! * [`client`]: the [`client::SyncClient`] trait a VM implements over its own network, with a
//!   gRPC and an in-process implementation;
//! * [`manager`]: the [`SyncManager`], which brings a database to a trusted root, verifying
//!   every proof before writing; [`follow`] retargets it to the roots peers announce;
//! * [`observe`]: the observer seam through which both sides report what they do (the `arbor`
//!   binary binds it to Prometheus).
//!
//! Embedding a sync (the target root comes from whatever the application trusts, e.g. consensus):
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//!
//! use arbor_merkledb::{Config, Db};
//! use arbor_sync::{SyncConfig, SyncManager, client::LocalClient};
//!
//! let server = Db::open_memory(Config::default())?;
//! server.propose(vec![(b"key".to_vec(), Some(b"value".to_vec()))])?.commit()?;
//! let target = server.root()?;
//!
//! // A replica keeps no history while it syncs: the partial states a sync passes through are
//! // never served, and their undo records cost a sixth of its writes. Reopen with history to
//! // serve proofs once it is done.
//! let replica = Db::open_memory(Config::default().with_history_len(0))?;
//! let client = Arc::new(LocalClient::new([server]));
//! let manager = SyncManager::start(replica.clone(), client, target, SyncConfig::default())?;
//! let mut progress = manager.progress(); // a watch channel of `Progress`
//! let summary = manager.wait().await?;
//! assert_eq!(replica.root()?, target);
//! assert!(summary.done && progress.borrow_and_update().done);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub mod client;
pub mod convert;
pub mod follow;
pub mod manager;
pub mod observe;
pub mod request;
pub mod serve;
pub mod server;
pub mod tls;

pub use convert::ConvertError;
pub use manager::{Progress, SyncConfig, SyncError, SyncManager, SyncSummary};
pub use observe::{ServeObserver, SyncObserver};
pub use request::{ChangeProofRequest, RangeProofRequest, SyncRequest};
pub use serve::{Limits, ServeError, handle_request_bytes, serve_change_proof, serve_range_proof};
pub use server::{RootAnnouncer, ServerConfig, StateSyncService};

/// Generated protobuf messages and gRPC stubs for `proto/sync/sync.proto`.
// Generated code: `allow`, not `expect`, because which of these lints fire depends on the
// generator's output.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("sync");
}
