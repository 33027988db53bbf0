//! Clients: how the sync manager reaches its peers.
//!
//! [`SyncClient`] is the seam between the sync manager and a network. The manager picks the
//! peer for every request (see `manager::peers`) among the members of the client's [`PeerSet`],
//! so a client only has to carry a request to a peer and bring back the decoded — **not yet
//! verified** — answer. Three implementations ship: [`NetworkClient`] (over any network that
//! carries bytes: what a VM uses), `GrpcClient` (feature `grpc`: one lazily connected channel
//! per peer) and [`LocalClient`] (in-process databases, through the `bytes in → bytes out`
//! entry point).

#[cfg(feature = "grpc")]
mod grpc;
mod local;
mod network;
mod peer_set;

use arbor_merkledb::{ChangeOrRangeProof, Hash, NodeDiff, RangeProof};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};

#[cfg(feature = "grpc")]
pub use grpc::{GrpcClient, MAX_ANSWER_BYTES};
pub use local::LocalClient;
pub use network::{Network, NetworkClient};
pub use peer_set::{Members, PeerSet};

use crate::{
    convert::ConvertError,
    request::{ChangeProofRequest, NodeDiffRequest, RangeProofRequest},
};

/// A peer's id in its client's [`PeerSet`].
pub type PeerId = usize;

/// An answer and its size on the wire.
#[derive(Clone, Debug)]
pub struct Response<T> {
    /// The decoded answer (unverified: it came from an untrusted peer).
    pub answer: T,
    /// Encoded size in bytes, for throughput figures.
    pub bytes: usize,
}

/// A root a peer announced, with its commit number (higher is newer, for peers that share a
/// history).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The root.
    pub root: Hash,
    /// The peer's commit number for it.
    pub seq: u64,
}

/// Why a request failed, as far as the transport can tell.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    /// The peer could not be reached or the connection broke.
    #[error("transport: {0}")]
    Transport(String),
    /// The peer answered with an error status.
    #[error("{kind:?}: {message}")]
    Status {
        /// What kind of refusal.
        kind: StatusKind,
        /// The peer's explanation.
        message: String,
    },
    /// The peer's answer could not be decoded: the peer is faulty or lying.
    #[error("undecodable answer: {0}")]
    Malformed(String),
}

impl From<ConvertError> for ClientError {
    fn from(error: ConvertError) -> Self {
        Self::Malformed(error.to_string())
    }
}

impl From<prost::DecodeError> for ClientError {
    fn from(error: prost::DecodeError) -> Self {
        Self::Malformed(error.to_string())
    }
}

/// The kinds of error status a peer can answer with (the gRPC codes of the protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusKind {
    /// The request was malformed (a bug on our side, or a peer that rejects valid requests).
    InvalidArgument,
    /// The peer does not hold the requested root (yet, or any more).
    NotFound,
    /// The peer is overloaded; try later.
    ResourceExhausted,
    /// No proof fits the byte limit.
    FailedPrecondition,
    /// The peer is shutting down or unreachable.
    Unavailable,
    /// The peer does not serve this kind of request (an older Arbor, or AvalancheGo asked for
    /// a node diff).
    Unimplemented,
    /// Anything else (internal errors, unknown codes).
    Other,
}

impl StatusKind {
    /// A name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::InvalidArgument => "InvalidArgument",
            StatusKind::NotFound => "NotFound",
            StatusKind::ResourceExhausted => "ResourceExhausted",
            StatusKind::FailedPrecondition => "FailedPrecondition",
            StatusKind::Unavailable => "Unavailable",
            StatusKind::Unimplemented => "Unimplemented",
            StatusKind::Other => "Other",
        }
    }
}

/// How the sync manager talks to its peers. Implementations must be cheap to call concurrently:
/// the manager keeps many requests in flight.
pub trait SyncClient: Send + Sync + 'static {
    /// The peers that can be asked now, with their names (a URL, for gRPC) for progress and
    /// errors. Peers may join and leave while a sync runs.
    fn peers(&self) -> &PeerSet;

    /// Asks `peer` for a range proof.
    fn range_proof(
        &self,
        peer: PeerId,
        request: RangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<RangeProof>, ClientError>>;

    /// Asks `peer` for a change proof (or its range-proof fallback).
    fn change_proof(
        &self,
        peer: PeerId,
        request: ChangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<ChangeOrRangeProof>, ClientError>>;

    /// Asks `peer` for node diffs (Arbor's own request; see `arbor_merkledb::NodeDiff`). The
    /// default answers [`StatusKind::Unimplemented`]: a client that cannot carry them, and the
    /// sync then fetches what changed with range proofs.
    fn node_diff(
        &self,
        peer: PeerId,
        request: NodeDiffRequest,
    ) -> BoxFuture<'static, Result<Response<Vec<NodeDiff>>, ClientError>> {
        let _ = (peer, request);
        futures::future::ready(Err(ClientError::Status {
            kind: StatusKind::Unimplemented,
            message: "this client does not carry node diffs".into(),
        }))
        .boxed()
    }

    /// `peer`'s current root, then each root it commits, as they are announced (follow mode).
    /// The default announces nothing, which is all a sync to a root the application chose needs.
    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>> {
        let _ = peer;
        futures::stream::pending().boxed()
    }
}

/// An error for a request to a peer that is not in the set (it left).
fn gone(peer: PeerId) -> ClientError {
    ClientError::Transport(format!("peer #{peer} is not connected"))
}

/// A ready future of `gone(peer)`.
fn gone_now<T: Send + 'static>(peer: PeerId) -> BoxFuture<'static, Result<T, ClientError>> {
    futures::future::ready(Err(gone(peer))).boxed()
}
