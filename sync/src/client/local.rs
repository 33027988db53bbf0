//! [`LocalClient`]: peers that are databases in this process, reached through the same
//! `bytes in → bytes out` entry point a VM would carry over its own network.

use std::time::Duration;

use arbor_merkledb::{ChangeOrRangeProof, Db, RangeProof};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};
use prost::Message;
use tonic::Status;

use super::{Announcement, ClientError, PeerId, Response, SyncClient, grpc::from_status};
use crate::{
    pb,
    request::{ChangeProofRequest, RangeProofRequest, SyncRequest},
    serve::{Limits, handle_request_bytes},
};

/// How often [`LocalClient::watch_roots`] looks for new commits.
const WATCH_POLL: Duration = Duration::from_millis(20);

/// A [`SyncClient`] whose peers are in-process databases. Requests and answers are encoded and
/// decoded exactly as on the wire, and errors map to the same kinds as over gRPC.
#[derive(Clone, Debug)]
pub struct LocalClient {
    peers: Vec<(String, Db, Limits)>,
}

impl LocalClient {
    /// Peers serving from `dbs` with the default limits.
    pub fn new(dbs: impl IntoIterator<Item = Db>) -> Self {
        Self {
            peers: dbs
                .into_iter()
                .enumerate()
                .map(|(i, db)| (format!("local#{i}"), db, Limits::default()))
                .collect(),
        }
    }

    /// Asks `peer` with an encoded v1.11 `Request`; returns the raw answer bytes.
    fn ask(
        &self,
        peer: PeerId,
        request: SyncRequest,
    ) -> BoxFuture<'static, Result<Vec<u8>, ClientError>> {
        let (_, db, limits) = self.peers[peer].clone();
        let bytes = pb::Request::from(request).encode_to_vec();
        async move {
            tokio::task::spawn_blocking(move || handle_request_bytes(&db, &bytes, &limits))
                .await
                .map_err(|e| ClientError::Transport(format!("peer task failed: {e}")))?
                .map_err(|e| from_status(Status::from(e)))
        }
        .boxed()
    }
}

impl SyncClient for LocalClient {
    fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn peer_name(&self, peer: PeerId) -> String {
        self.peers
            .get(peer)
            .map_or_else(|| format!("local#{peer}"), |p| p.0.clone())
    }

    fn range_proof(
        &self,
        peer: PeerId,
        request: RangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<RangeProof>, ClientError>> {
        let answer = self.ask(peer, SyncRequest::Range(request));
        async move {
            let bytes = answer.await?;
            let proof = pb::RangeProof::decode(bytes.as_slice())?;
            Ok(Response {
                answer: RangeProof::try_from(proof)?,
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
        let answer = self.ask(peer, SyncRequest::Change(request));
        async move {
            let bytes = answer.await?;
            let proof = pb::SyncGetChangeProofResponse::decode(bytes.as_slice())?;
            Ok(Response {
                answer: ChangeOrRangeProof::try_from(proof)?,
                bytes: bytes.len(),
            })
        }
        .boxed()
    }

    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>> {
        let db = self.peers[peer].1.clone();
        // The current root first, then each new one as commits land.
        futures::stream::unfold(None, move |last: Option<u64>| {
            let db = db.clone();
            async move {
                loop {
                    if last.is_some() {
                        tokio::time::sleep(WATCH_POLL).await;
                    }
                    let seen = db.commit_seq().and_then(|seq| Ok((seq, db.root()?)));
                    match seen {
                        Ok((seq, root)) if last != Some(seq) => {
                            return Some((Ok(Announcement { root, seq }), Some(seq)));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            return Some((Err(ClientError::Transport(e.to_string())), last));
                        }
                    }
                }
            }
        })
        .boxed()
    }
}
