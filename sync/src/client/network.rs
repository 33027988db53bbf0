//! [`NetworkClient`]: a [`SyncClient`] over any network that carries bytes to a peer and back.

use arbor_merkledb::{ChangeOrRangeProof, NodeDiff, RangeProof};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};

use super::{Announcement, ClientError, PeerId, PeerSet, Response, SyncClient, gone_now};
use crate::{
    request::{ChangeProofRequest, NodeDiffRequest, RangeProofRequest, SyncRequest},
    wire,
};

/// What an application implements to sync over its own network (a VM's `AppRequest`, say):
/// carry an encoded request to a peer and bring back its answer, or why there is none.
///
/// On the peer's side the bytes go to [`handle_request_bytes`](crate::handle_request_bytes);
/// a refusal travels as [`StatusKind::code`](crate::StatusKind::code) and the error's message,
/// and comes back as [`ClientError::refused`].
pub trait Network: Send + Sync + 'static {
    /// Sends `request` (a v1.11 `sync.Request`) to `peer`; resolves to the answer's bytes. The
    /// manager bounds each request by its own timeout; a network with deadlines of its own may
    /// apply them too. A peer that left should fail fast with [`ClientError::Transport`].
    fn request(
        &self,
        peer: PeerId,
        request: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, ClientError>>;

    /// Roots `peer` announces, for follow mode; none by default.
    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>> {
        let _ = peer;
        futures::stream::pending().boxed()
    }
}

/// A [`SyncClient`] that encodes requests and decodes answers with [`wire`] and carries them
/// over a [`Network`]; its peers are whoever the application puts in the [`PeerSet`].
#[derive(Clone, Debug)]
pub struct NetworkClient<N> {
    network: N,
    peers: PeerSet,
}

impl<N: Network> NetworkClient<N> {
    /// A client over `network` asking the members of `peers` (a handle the application keeps to
    /// add and remove peers as they connect and disconnect).
    pub fn new(network: N, peers: PeerSet) -> Self {
        Self { network, peers }
    }

    /// The network.
    pub fn network(&self) -> &N {
        &self.network
    }

    fn ask(
        &self,
        peer: PeerId,
        request: &SyncRequest,
    ) -> BoxFuture<'static, Result<Vec<u8>, ClientError>> {
        if !self.peers.contains(peer) {
            return gone_now(peer);
        }
        self.network.request(peer, wire::encode_request(request))
    }
}

impl<N: Network> SyncClient for NetworkClient<N> {
    fn peers(&self) -> &PeerSet {
        &self.peers
    }

    fn range_proof(
        &self,
        peer: PeerId,
        request: RangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<RangeProof>, ClientError>> {
        let answer = self.ask(peer, &SyncRequest::Range(request));
        async move {
            let bytes = answer.await?;
            Ok(Response {
                answer: wire::decode_range_answer(&bytes)?,
                bytes: bytes.len(),
            })
        }
        .boxed()
    }

    fn change_proof(
        &self,
        peer: PeerId,
        request: ChangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<ChangeOrRangeProof>, ClientError>> {
        let answer = self.ask(peer, &SyncRequest::Change(request));
        async move {
            let bytes = answer.await?;
            Ok(Response {
                answer: wire::decode_change_answer(&bytes)?,
                bytes: bytes.len(),
            })
        }
        .boxed()
    }

    fn node_diff(
        &self,
        peer: PeerId,
        request: NodeDiffRequest,
    ) -> BoxFuture<'static, Result<Response<Vec<NodeDiff>>, ClientError>> {
        let answer = self.ask(peer, &SyncRequest::NodeDiff(request));
        async move {
            let bytes = answer.await?;
            Ok(Response {
                answer: wire::decode_node_diff_answer(&bytes)?,
                bytes: bytes.len(),
            })
        }
        .boxed()
    }

    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>> {
        self.network.watch_roots(peer)
    }
}
