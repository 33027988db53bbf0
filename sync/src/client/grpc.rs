//! [`GrpcClient`]: the `StateSync` service over tonic, one channel per peer.

use std::time::Duration;

use arbor_merkledb::{ChangeOrRangeProof, Hash, NodeDiff, RangeProof};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};
use prost::Message;
use tonic::{
    Status,
    transport::{Channel, Endpoint},
};

use super::{Announcement, ClientError, PeerId, PeerSet, Response, StatusKind, SyncClient, gone};
use crate::{
    pb::{self, state_sync_client::StateSyncClient},
    request::{ChangeProofRequest, NodeDiffRequest, RangeProofRequest},
    tls::ClientTls,
};

/// Largest answer accepted from a peer. Honest answers stay below the request's byte limit
/// (2 MB by default); anything far larger is refused by the transport before it is buffered.
pub const MAX_ANSWER_BYTES: usize = 8 << 20;

/// HTTP/2 receive window of a connection: how many answer bytes a peer may send before the
/// client acknowledges them, so at most this much per round trip. hyper's default (5 MiB) caps a
/// 400 ms link at 12.5 MB/s; 64 MiB allows 160 MB/s there. It grants permission, not memory:
/// what the client buffers is bounded by its requests in flight (`SyncConfig::inflight_bytes`).
const CONNECTION_WINDOW: u32 = 64 << 20;
/// HTTP/2 receive window of one stream (one answer, at most ~2 MiB).
const STREAM_WINDOW: u32 = 4 << 20;

/// A [`SyncClient`] over gRPC. Channels connect lazily on first use and reconnect by themselves
/// after a failure, so an unreachable peer costs a failed request, never a hang at start-up.
#[derive(Clone, Debug)]
pub struct GrpcClient {
    peers: PeerSet,
    /// By peer id (the set's ids are `0..n`, in URL order).
    channels: Vec<Channel>,
}

impl GrpcClient {
    /// One lazily connected channel per URL (`http://HOST:PORT`, or `https://HOST:PORT` checked
    /// against the system's roots). Fails only on a malformed URL.
    pub fn connect_lazy(urls: &[String]) -> Result<Self, ClientError> {
        Self::connect_lazy_tls(urls, &ClientTls::default())
    }

    /// [`GrpcClient::connect_lazy`], with `tls` for the `https://` peers.
    pub fn connect_lazy_tls(urls: &[String], tls: &ClientTls) -> Result<Self, ClientError> {
        let channels = urls
            .iter()
            .map(|url| {
                let bad = |e: &dyn std::fmt::Display| {
                    ClientError::Transport(format!("bad peer URL {url:?}: {e}"))
                };
                let mut endpoint = Endpoint::from_shared(url.clone())
                    .map_err(|e| bad(&e))?
                    .connect_timeout(Duration::from_secs(5))
                    .tcp_nodelay(true)
                    .initial_connection_window_size(CONNECTION_WINDOW)
                    .initial_stream_window_size(STREAM_WINDOW)
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .keep_alive_timeout(Duration::from_secs(10));
                if endpoint.uri().scheme_str() == Some("https") {
                    endpoint = endpoint
                        .tls_config(tls.tonic_config())
                        .map_err(|e| bad(&e))?;
                }
                Ok(endpoint.connect_lazy())
            })
            .collect::<Result<_, ClientError>>()?;
        Ok(Self {
            peers: PeerSet::with_names(urls.iter().cloned()),
            channels,
        })
    }

    fn stub(&self, peer: PeerId) -> Result<StateSyncClient<Channel>, ClientError> {
        let channel = self
            .channels
            .get(peer)
            .filter(|_| self.peers.contains(peer))
            .ok_or_else(|| gone(peer))?;
        Ok(StateSyncClient::new(channel.clone())
            .max_decoding_message_size(MAX_ANSWER_BYTES)
            .max_encoding_message_size(MAX_ANSWER_BYTES))
    }
}

/// Maps a gRPC status to a [`ClientError`].
/// The kinds are the gRPC code numbers ([`StatusKind::from_code`]); tonic reports connection
/// failures as `UNAVAILABLE`, `CANCELLED` or `DEADLINE_EXCEEDED`, all transport errors.
pub(super) fn from_status(status: Status) -> ClientError {
    let kind = StatusKind::from_code(status.code() as u32);
    ClientError::refused(kind, status.message())
}

impl SyncClient for GrpcClient {
    fn peers(&self) -> &PeerSet {
        &self.peers
    }

    fn range_proof(
        &self,
        peer: PeerId,
        request: RangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<RangeProof>, ClientError>> {
        let stub = self.stub(peer);
        async move {
            let answer = stub?
                .get_range_proof(pb::SyncGetRangeProofRequest::from(request))
                .await
                .map_err(from_status)?
                .into_inner();
            let bytes = answer.encoded_len();
            Ok(Response {
                answer: RangeProof::try_from(answer)?,
                bytes,
            })
        }
        .boxed()
    }

    fn change_proof(
        &self,
        peer: PeerId,
        request: ChangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<ChangeOrRangeProof>, ClientError>> {
        let stub = self.stub(peer);
        async move {
            let answer = stub?
                .get_change_proof(pb::SyncGetChangeProofRequest::from(request))
                .await
                .map_err(from_status)?
                .into_inner();
            let bytes = answer.encoded_len();
            Ok(Response {
                answer: ChangeOrRangeProof::try_from(answer)?,
                bytes,
            })
        }
        .boxed()
    }

    fn node_diff(
        &self,
        peer: PeerId,
        request: NodeDiffRequest,
    ) -> BoxFuture<'static, Result<Response<Vec<NodeDiff>>, ClientError>> {
        let stub = self.stub(peer);
        async move {
            let answer = stub?
                .get_node_diff(pb::NodeDiffRequest::from(request))
                .await
                .map_err(from_status)?
                .into_inner();
            let bytes = answer.encoded_len();
            Ok(Response {
                answer: Vec::<NodeDiff>::try_from(answer)?,
                bytes,
            })
        }
        .boxed()
    }

    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>> {
        let stub = self.stub(peer);
        async move {
            let mut stub = match stub {
                Ok(stub) => stub,
                Err(error) => return futures::stream::once(async move { Err(error) }).boxed(),
            };
            match stub.watch_roots(pb::WatchRootsRequest {}).await {
                Ok(stream) => stream
                    .into_inner()
                    .map(|item| {
                        let update = item.map_err(from_status)?;
                        let root = Hash::from_slice(&update.root_hash)
                            .ok_or_else(|| ClientError::Malformed("root is not 32 bytes".into()))?;
                        Ok(Announcement {
                            root,
                            seq: update.commit_seq,
                        })
                    })
                    .boxed(),
                Err(status) => {
                    futures::stream::once(async move { Err(from_status(status)) }).boxed()
                }
            }
        }
        .flatten_stream()
        .boxed()
    }
}
