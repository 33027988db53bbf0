//! [`LocalClient`]: peers that are databases in this process, reached through the same
//! `bytes in → bytes out` entry point a VM would carry over its own network: a [`Network`] of
//! in-process databases under a [`NetworkClient`].

use std::{
    collections::BTreeMap,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use arbor_merkledb::{ChangeOrRangeProof, Db, NodeDiff, RangeProof};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};

use super::{
    Announcement, ClientError, Network, NetworkClient, PeerId, PeerSet, Response, SyncClient, gone,
    gone_now,
};
use crate::{
    request::{ChangeProofRequest, NodeDiffRequest, RangeProofRequest},
    serve::{Limits, handle_request_bytes},
};

/// How often [`LocalClient::watch_roots`] looks for new commits.
const WATCH_POLL: Duration = Duration::from_millis(20);

/// A [`SyncClient`] whose peers are in-process databases. Requests and answers are encoded and
/// decoded exactly as on the wire, and refusals map to the same kinds as over gRPC. Peers can be
/// added and removed while a sync runs ([`LocalClient::add`], [`PeerSet::leave`]).
#[derive(Clone, Debug)]
pub struct LocalClient {
    client: NetworkClient<LocalDbs>,
}

/// The databases of a [`LocalClient`] by peer id: its network.
#[derive(Clone, Debug, Default)]
struct LocalDbs {
    dbs: Arc<RwLock<BTreeMap<PeerId, Db>>>,
}

impl LocalDbs {
    fn get(&self, peer: PeerId) -> Option<Db> {
        let dbs = self.dbs.read().unwrap_or_else(PoisonError::into_inner);
        dbs.get(&peer).cloned()
    }
}

impl LocalClient {
    /// Peers serving from `dbs` with the default limits, named `local#ID`.
    pub fn new(dbs: impl IntoIterator<Item = Db>) -> Self {
        let client = Self {
            client: NetworkClient::new(LocalDbs::default(), PeerSet::new()),
        };
        for db in dbs {
            client.add(db);
        }
        client
    }

    /// Adds a peer serving from `db`; returns its id.
    pub fn add(&self, db: Db) -> PeerId {
        let mut dbs = self
            .client
            .network()
            .dbs
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Under the lock, so the id the set gives is the one `dbs` records before anyone asks
        // (and, as only `add` joins, it equals the number of databases added before).
        let id = self.client.peers().join(format!("local#{}", dbs.len()));
        dbs.insert(id, db);
        id
    }
}

impl Network for LocalDbs {
    fn request(
        &self,
        peer: PeerId,
        request: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, ClientError>> {
        let Some(db) = self.get(peer) else {
            return gone_now(peer);
        };
        async move {
            tokio::task::spawn_blocking(move || {
                handle_request_bytes(&db, &request, &Limits::default())
            })
            .await
            .map_err(|e| ClientError::Transport(format!("peer task failed: {e}")))?
            .map_err(|e| ClientError::refused(e.kind(), e.to_string()))
        }
        .boxed()
    }

    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>> {
        let Some(db) = self.get(peer) else {
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

impl SyncClient for LocalClient {
    fn peers(&self) -> &PeerSet {
        self.client.peers()
    }

    fn range_proof(
        &self,
        peer: PeerId,
        request: RangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<RangeProof>, ClientError>> {
        self.client.range_proof(peer, request)
    }

    fn change_proof(
        &self,
        peer: PeerId,
        request: ChangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<ChangeOrRangeProof>, ClientError>> {
        self.client.change_proof(peer, request)
    }

    fn node_diff(
        &self,
        peer: PeerId,
        request: NodeDiffRequest,
    ) -> BoxFuture<'static, Result<Response<Vec<NodeDiff>>, ClientError>> {
        self.client.node_diff(peer, request)
    }

    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>> {
        self.client.watch_roots(peer)
    }
}
