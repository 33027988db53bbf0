//! # arbor-sync
//!
//! State sync for `arbor-merkledb`:
//! * serving: [`handle_request_bytes`] answers a v1.11 request's bytes with the answer's bytes
//!   (over any network); `StateSyncService` serves the same over gRPC (feature `grpc`);
//! * syncing: the [`SyncManager`] brings a database to a trusted root, verifying every proof
//!   before writing; [`follow()`] retargets it to the roots peers announce;
//! * reaching peers: the [`SyncClient`] trait, with [`NetworkClient`] over a [`Network`] of the
//!   application's own (requests and answers as bytes, see [`wire`]), `GrpcClient` (feature
//!   `grpc`) and [`LocalClient`] (in-process); peers join and leave through the client's
//!   [`PeerSet`] while a sync runs;
//! * [`snapshot`]: the state at one root cut into parts that object storage or a web server can
//!   hold, and a bootstrap that checks each against the trusted root before writing it;
//! * [`pb`]: the v1.11 protobuf messages;
//! * [`SyncObserver`] (and `ServeObserver` with `grpc`): the seam through which both sides report
//!   what they do (the `arbor` binary binds it to Prometheus).
//!
//! ## Feature flags
//! * `grpc` (default): the gRPC server and client, TLS. Without it the crate has no tonic, no
//!   HTTP/2 and no rustls: the protocol core, the manager and the byte-level client and server.
//!
//! Embedding a sync (the target root comes from whatever the application trusts, e.g. consensus):
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//!
//! use arbor_merkledb::{Config, Db};
//! use arbor_sync::{LocalClient, SyncConfig, SyncManager};
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

//! Syncing over an application's own network: implement [`Network`] (carry request bytes to a
//! peer, bring back the answer's bytes), answer on the other side with [`handle_request_bytes`],
//! and keep the [`PeerSet`] up to date as peers connect and disconnect:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//!
//! use arbor_merkledb::{Config, Db};
//! use arbor_sync::{
//!     ClientError, Limits, Network, NetworkClient, PeerId, PeerSet, SyncConfig, SyncManager,
//!     handle_request_bytes,
//! };
//! use futures::{FutureExt, future::BoxFuture};
//!
//! /// A "network" of one peer in this process; a VM would send an AppRequest here.
//! struct Loopback(Db);
//!
//! impl Network for Loopback {
//!     fn request(&self, _peer: PeerId, request: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, ClientError>> {
//!         let answer = handle_request_bytes(&self.0, &request, &Limits::default())
//!             .map_err(|e| ClientError::refused(e.kind(), e.to_string()));
//!         futures::future::ready(answer).boxed()
//!     }
//! }
//!
//! let server = Db::open_memory(Config::default())?;
//! server.propose(vec![(b"key".to_vec(), Some(b"value".to_vec()))])?.commit()?;
//! let target = server.root()?;
//!
//! let peers = PeerSet::new();
//! let client = Arc::new(NetworkClient::new(Loopback(server), peers.clone()));
//! peers.join("the server"); // peers may join (and leave) at any time, also mid-sync
//! let replica = Db::open_memory(Config::default().with_history_len(0))?;
//! SyncManager::start(replica.clone(), client, target, SyncConfig::default())?.wait().await?;
//! assert_eq!(replica.root()?, target);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod client;
mod convert;
mod follow;
mod manager;
mod observe;
mod request;
mod serve;
#[cfg(feature = "grpc")]
mod server;
pub mod snapshot;
#[cfg(feature = "grpc")]
pub mod tls;
pub mod wire;

pub use client::{
    Announcement, ClientError, LocalClient, Members, Network, NetworkClient, PeerId, PeerSet,
    Response, StatusKind, SyncClient,
};
#[cfg(feature = "grpc")]
pub use client::{GrpcClient, MAX_ANSWER_BYTES};
pub use convert::ConvertError;
pub use follow::{FollowConfig, follow};
pub use manager::{
    PeerStats, Progress, SyncConfig, SyncError, SyncHandle, SyncManager, SyncMode, SyncSummary,
};
#[cfg(feature = "grpc")]
pub use observe::ServeObserver;
pub use observe::SyncObserver;
pub use request::{ChangeProofRequest, NodeDiffRequest, RangeProofRequest, SyncRequest};
pub use serve::{
    Limits, MAX_BYTES_LIMIT, MAX_KEY_LIMIT, MAX_NODE_QUERIES, ServeError, handle_request_bytes,
    serve_change_proof, serve_node_diff, serve_range_proof,
};
#[cfg(feature = "grpc")]
pub use server::{
    RootAnnouncer, RootStream, ServerConfig, StateSyncService, bind, serve, serve_incoming,
};

/// Generated protobuf messages (and, with `grpc`, the gRPC stubs) for `proto/sync/sync.proto`:
/// AvalancheGo v1.11's `sync` package.
// Generated code: `allow`, not `expect`, because which of these lints fire depends on the
// generator's output.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/sync.rs"));
}
