//! Clients: how the sync manager reaches its peers.
//!
//! [`SyncClient`] is the seam a blockchain VM implements over its own network. The manager picks
//! the peer for every request (see `manager::peers`), so a client only has to carry a request to
//! a numbered peer and bring back the decoded — **not yet verified** — answer. Two
//! implementations ship: [`GrpcClient`] (one lazily connected channel per peer) and
//! [`LocalClient`] (in-process databases, through the `bytes in → bytes out` entry point).

mod grpc;
mod local;

use arbor_merkledb::{ChangeOrRangeProof, Hash, RangeProof};
use futures::{future::BoxFuture, stream::BoxStream};

pub use grpc::{GrpcClient, MAX_ANSWER_BYTES};
pub use local::LocalClient;

use crate::{
    convert::ConvertError,
    request::{ChangeProofRequest, RangeProofRequest},
};

/// A peer's index in its client, `0..peer_count()`.
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
    /// Anything else (internal errors, unknown codes).
    Other,
}

/// How the sync manager talks to its peers. Implementations must be cheap to call concurrently:
/// the manager keeps up to `workers` requests in flight.
pub trait SyncClient: Send + Sync + 'static {
    /// How many peers there are; peers are numbered `0..peer_count()`.
    fn peer_count(&self) -> usize;

    /// A human-readable name for a peer (its URL, for gRPC), for progress and errors.
    fn peer_name(&self, peer: PeerId) -> String;

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

    /// `peer`'s current root, then each root it commits, as they are announced.
    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>>;
}
