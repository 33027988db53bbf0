//! [`LocalClient`]: peers that are databases in this process, reached through the same
//! `bytes in → bytes out` entry point a VM would carry over its own network.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use arbor_merkledb::{ChangeOrRangeProof, Db, RangeProof};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};

use super::{Announcement, ClientError, PeerId, PeerSet, Response, SyncClient, gone, gone_now};
use crate::{
    request::{ChangeProofRequest, RangeProofRequest, SyncRequest},
    serve::{Limits, handle_request_bytes},
    wire,
};

/// How often [`LocalClient::watch_roots`] looks for new commits.
const WATCH_POLL: Duration = Duration::from_millis(20);

/// A [`SyncClient`] whose peers are in-process databases. Requests and answers are encoded and
/// decoded exactly as on the wire, and refusals map to the same kinds as over gRPC. Peers can be
/// added and removed while a sync runs ([`LocalClient::add`], [`PeerSet::leave`]).
#[derive(Clone, Debug)]
pub struct LocalClient {
    peers: PeerSet,
    dbs: Arc<RwLock<BTreeMap<PeerId, Db>>>,
    limits: Limits,
}

impl LocalClient {
    /// Peers serving from `dbs` with the default limits, named `local#ID`.
    pub fn new(dbs: impl IntoIterator<Item = Db>) -> Self {
        let client = Self {
            peers: PeerSet::new(),
            dbs: Arc::default(),
            limits: Limits::default(),
        };
        for db in dbs {
            client.add(db);
        }
        client
    }

    /// Adds a peer serving from `db`; returns its id.
    pub fn add(&self, db: Db) -> PeerId {
        let mut dbs = self
            .dbs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Under the lock, so the id the set gives is the one `dbs` records before anyone asks.
        let id = self.peers.join(format!("local#{}", dbs.len()));
        dbs.insert(id, db);
        id
    }

    fn db(&self, peer: PeerId) -> Option<Db> {
        if !self.peers.contains(peer) {
            return None;
        }
        let dbs = self
            .dbs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        dbs.get(&peer).cloned()
    }

    /// Asks `peer` with an encoded v1.11 `Request`; returns the raw answer bytes.
    fn ask(
        &self,
        peer: PeerId,
        request: &SyncRequest,
    ) -> BoxFuture<'static, Result<Vec<u8>, ClientError>> {
        let Some(db) = self.db(peer) else {
            return gone_now(peer);
        };
        let (bytes, limits) = (wire::encode_request(request), self.limits);
        async move {
            tokio::task::spawn_blocking(move || handle_request_bytes(&db, &bytes, &limits))
                .await
                .map_err(|e| ClientError::Transport(format!("peer task failed: {e}")))?
                .map_err(|e| ClientError::refused(e.kind(), e.to_string()))
        }
        .boxed()
    }
}

impl SyncClient for LocalClient {
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

    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>> {
        let Some(db) = self.db(peer) else {
            return futures::stream::once(async move { Err(gone(peer)) }).boxed();
        };
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
