//! Servers for sync tests, on either transport, some of them faulty.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use arbor::{
    merkledb::{
        BranchFactor, ChangeOrRangeProof, ChangeProof, ChildChange, Config, Db, NodeDiff,
        RangeProof, test_utils::SeededRng,
    },
    sync::{
        Announcement, ChangeProofRequest, ClientError, GrpcClient, LocalClient, NodeDiffRequest,
        PeerId, PeerSet, RangeProofRequest, Response, ServerConfig, StateSyncService, StatusKind,
        SyncClient, SyncConfig, pb,
    },
};
use futures::{FutureExt, future::BoxFuture, stream::BoxStream};
use tonic::{Request, Status};

/// How the sync reaches its servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// In-process databases through the bytes-in/bytes-out entry point.
    InProcess,
    /// Real gRPC servers on 127.0.0.1.
    Socket,
}

/// Both transports: every sync test runs over each.
pub(crate) const TRANSPORTS: [Transport; 2] = [Transport::InProcess, Transport::Socket];

/// How a faulty server misbehaves.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Flips a byte of a value (or of a proof node's child ID).
    Tamper,
    /// Drops the last key-value or change, keeping the boundary proofs.
    Truncate,
    /// Answers from this other database at its own root, whatever root is asked for.
    OtherRoot(Db),
    /// Answers with an empty proof.
    Empty,
    /// Never answers.
    Hang,
    /// Drops every connection (over sockets: accepts and closes each TCP connection).
    Drop,
    /// Answers honestly, each answer this much later.
    Slow(Duration),
    /// Does not serve node diffs (as AvalancheGo and older Arbor servers): `UNIMPLEMENTED`.
    NoDiffs,
    /// Answers honestly, holding each answer this long first and counting how many answers
    /// that carry keys it holds at once.
    Held(Arc<Concurrency>, Duration),
}

/// How many answers with keys a server holds at once, and the most it ever held.
#[derive(Debug, Default)]
pub(crate) struct Concurrency {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Concurrency {
    /// Holds `answer` for `delay`, counted while held if it carries keys (answers for empty
    /// stretches of the keyspace come back together at the start of any sync).
    async fn hold(&self, delay: Duration, answer: &ChangeOrRangeProof) {
        let counted = match answer {
            ChangeOrRangeProof::Range(p) => !p.key_values.is_empty(),
            ChangeOrRangeProof::Change(p) => !p.key_changes.is_empty(),
        };
        if !counted {
            tokio::time::sleep(delay).await;
            return;
        }
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    /// The most requests held at once so far.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// What a faulty server does with a request.
enum Behaviour {
    Answer(ChangeOrRangeProof),
    Hang,
    Drop,
}

fn corrupt_range(fault: &Fault, mut proof: RangeProof) -> RangeProof {
    match fault {
        Fault::Tamper => {
            if let Some(kv) = proof.key_values.first_mut() {
                match kv.value.first_mut() {
                    Some(b) => *b ^= 1,
                    None => kv.value.push(1),
                }
            } else if let Some(node) = proof.end_proof.first_mut() {
                if let Some(child) = node.children.values_mut().next() {
                    child.0[0] ^= 1;
                }
            }
        }
        Fault::Truncate => {
            if proof.key_values.len() > 1 {
                proof.key_values.pop();
            } else {
                proof.end_proof.pop();
            }
        }
        Fault::Empty => proof = RangeProof::default(),
        _ => {}
    }
    proof
}

fn corrupt_change(fault: &Fault, mut proof: ChangeProof) -> ChangeProof {
    match fault {
        Fault::Tamper => {
            if let Some(change) = proof.key_changes.first_mut() {
                match &mut change.value {
                    Some(v) => v.push(1),
                    None => change.value = Some(vec![1]),
                }
            } else if let Some(node) = proof.end_proof.first_mut() {
                if let Some(child) = node.children.values_mut().next() {
                    child.0[0] ^= 1;
                }
            }
        }
        Fault::Truncate => {
            if proof.key_changes.len() > 1 {
                proof.key_changes.pop();
            } else {
                proof.end_proof.pop();
            }
        }
        Fault::Empty => proof = ChangeProof::default(),
        _ => {}
    }
    proof
}

/// A node-diff answer with the fault applied (`Tamper` changes a leaf's value or a node's ID,
/// `Truncate` drops a differing child, `Empty` answers nothing).
fn corrupt_diffs(fault: &Fault, mut diffs: Vec<NodeDiff>) -> Vec<NodeDiff> {
    match fault {
        Fault::Tamper => {
            let child = diffs
                .iter_mut()
                .flat_map(|d| d.children.iter_mut())
                .find(|c| !matches!(c.change, ChildChange::Absent));
            match child.map(|c| &mut c.change) {
                Some(ChildChange::Leaf { value, .. }) => value.push(1),
                Some(ChildChange::Node { id, .. }) => id.0[0] ^= 1,
                _ => {
                    if let Some(d) = diffs.first_mut() {
                        d.value = Some(vec![1]);
                    }
                }
            }
        }
        Fault::Truncate => match diffs.iter_mut().find(|d| !d.children.is_empty()) {
            Some(d) => {
                d.children.pop();
            }
            None => {
                if let Some(d) = diffs.first_mut() {
                    d.value = Some(vec![2]);
                }
            }
        },
        Fault::Empty => diffs.clear(),
        _ => {}
    }
    diffs
}

/// What the faulty server answers for a node-diff request.
async fn misbehave_diffs(
    fault: &Fault,
    honest: Result<Vec<NodeDiff>, String>,
    request: &NodeDiffRequest,
) -> Result<Vec<NodeDiff>, String> {
    match fault {
        Fault::Hang => {
            tokio::time::sleep(HANG).await;
            Err("hung".into())
        }
        Fault::Drop => Err("connection reset".into()),
        Fault::NoDiffs => unreachable!("answered before"),
        Fault::Slow(delay) => {
            tokio::time::sleep(*delay).await;
            honest
        }
        Fault::Held(_, delay) => {
            tokio::time::sleep(*delay).await;
            honest
        }
        Fault::OtherRoot(other) => other
            .node_diffs_at(
                other.root().expect("root"),
                &request.queries,
                request.bytes_limit as usize,
            )
            .map_err(|e| e.to_string()),
        fault => honest.map(|diffs| corrupt_diffs(fault, diffs)),
    }
}

/// What the faulty server answers in place of an honest `answer`.
fn misbehave(
    fault: &Fault,
    answer: ChangeOrRangeProof,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
    key_limit: u32,
) -> Behaviour {
    match fault {
        Fault::Hang => Behaviour::Hang,
        Fault::Drop => Behaviour::Drop,
        Fault::Slow(_) | Fault::Held(..) => Behaviour::Answer(answer),
        Fault::OtherRoot(other) => {
            let root = other.root().expect("root");
            let proof = other
                .range_proof_at(root, start, end, key_limit.min(2048) as usize)
                .unwrap_or_default();
            Behaviour::Answer(ChangeOrRangeProof::Range(proof))
        }
        _ => Behaviour::Answer(match answer {
            ChangeOrRangeProof::Range(p) => ChangeOrRangeProof::Range(corrupt_range(fault, p)),
            ChangeOrRangeProof::Change(p) => ChangeOrRangeProof::Change(corrupt_change(fault, p)),
        }),
    }
}

const HANG: Duration = Duration::from_secs(3600);

/// A client whose peers with a fault misbehave (the in-process transport).
struct FaultyLocal {
    inner: LocalClient,
    faults: Vec<Option<Fault>>,
}

impl SyncClient for FaultyLocal {
    fn peers(&self) -> &PeerSet {
        self.inner.peers()
    }
    fn range_proof(
        &self,
        peer: PeerId,
        request: RangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<RangeProof>, ClientError>> {
        let fault = self.faults[peer].clone();
        let (start, end, limit) = (
            request.start.clone(),
            request.end.clone(),
            request.key_limit,
        );
        let honest = self.inner.range_proof(peer, request);
        async move {
            let response = honest.await?;
            let Some(fault) = fault else {
                return Ok(response);
            };
            let answer = ChangeOrRangeProof::Range(response.answer);
            if let Fault::Held(count, delay) = &fault {
                count.hold(*delay, &answer).await;
            }
            match misbehave(&fault, answer, start.as_deref(), end.as_deref(), limit) {
                Behaviour::Answer(ChangeOrRangeProof::Range(p)) => Ok(Response {
                    answer: p,
                    bytes: response.bytes,
                }),
                Behaviour::Answer(ChangeOrRangeProof::Change(_)) => unreachable!(),
                Behaviour::Hang => {
                    tokio::time::sleep(HANG).await;
                    Err(ClientError::Transport("hung".into()))
                }
                Behaviour::Drop => Err(ClientError::Transport("connection reset".into())),
            }
        }
        .boxed()
    }
    fn change_proof(
        &self,
        peer: PeerId,
        request: ChangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<ChangeOrRangeProof>, ClientError>> {
        let fault = self.faults[peer].clone();
        let (start, end, limit) = (
            request.start.clone(),
            request.end.clone(),
            request.key_limit,
        );
        let honest = self.inner.change_proof(peer, request);
        async move {
            let response = honest.await?;
            let Some(fault) = fault else {
                return Ok(response);
            };
            if let Fault::Held(count, delay) = &fault {
                count.hold(*delay, &response.answer).await;
            }
            match misbehave(
                &fault,
                response.answer,
                start.as_deref(),
                end.as_deref(),
                limit,
            ) {
                Behaviour::Answer(answer) => Ok(Response {
                    answer,
                    bytes: response.bytes,
                }),
                Behaviour::Hang => {
                    tokio::time::sleep(HANG).await;
                    Err(ClientError::Transport("hung".into()))
                }
                Behaviour::Drop => Err(ClientError::Transport("connection reset".into())),
            }
        }
        .boxed()
    }
    fn node_diff(
        &self,
        peer: PeerId,
        request: NodeDiffRequest,
    ) -> BoxFuture<'static, Result<Response<Vec<NodeDiff>>, ClientError>> {
        let fault = self.faults[peer].clone();
        if let Some(Fault::NoDiffs) = fault {
            return futures::future::ready(Err(ClientError::Status {
                kind: StatusKind::Unimplemented,
                message: "unknown method GetNodeDiff".into(),
            }))
            .boxed();
        }
        let honest = self.inner.node_diff(peer, request.clone());
        async move {
            let response = honest.await?;
            let Some(fault) = fault else {
                return Ok(response);
            };
            let answer = misbehave_diffs(&fault, Ok(response.answer), &request)
                .await
                .map_err(ClientError::Transport)?;
            Ok(Response {
                answer,
                bytes: response.bytes,
            })
        }
        .boxed()
    }
    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>> {
        self.inner.watch_roots(peer)
    }
}

/// A gRPC service that answers like `inner`, then misbehaves (the socket transport).
struct FaultyService {
    inner: StateSyncService,
    fault: Fault,
}

impl FaultyService {
    async fn act(
        &self,
        answer: ChangeOrRangeProof,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        limit: u32,
    ) -> Result<ChangeOrRangeProof, Status> {
        match misbehave(&self.fault, answer, start, end, limit) {
            Behaviour::Answer(answer) => {
                match &self.fault {
                    Fault::Slow(delay) => tokio::time::sleep(*delay).await,
                    Fault::Held(count, delay) => count.hold(*delay, &answer).await,
                    _ => {}
                }
                Ok(answer)
            }
            Behaviour::Hang => {
                tokio::time::sleep(HANG).await;
                Err(Status::unavailable("hung"))
            }
            Behaviour::Drop => Err(Status::unavailable("connection reset")),
        }
    }
}

#[tonic::async_trait]
impl pb::state_sync_server::StateSync for FaultyService {
    async fn get_merkle_root(
        &self,
        request: Request<()>,
    ) -> Result<tonic::Response<pb::GetMerkleRootResponse>, Status> {
        self.inner.get_merkle_root(request).await
    }

    async fn get_range_proof(
        &self,
        request: Request<pb::SyncGetRangeProofRequest>,
    ) -> Result<tonic::Response<pb::RangeProof>, Status> {
        let req = RangeProofRequest::try_from(request.get_ref().clone())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let honest = self.inner.get_range_proof(request).await?.into_inner();
        let honest = RangeProof::try_from(honest).map_err(|e| Status::internal(e.to_string()))?;
        let answer = self
            .act(
                ChangeOrRangeProof::Range(honest),
                req.start.as_deref(),
                req.end.as_deref(),
                req.key_limit,
            )
            .await?;
        match answer {
            ChangeOrRangeProof::Range(p) => Ok(tonic::Response::new(p.into())),
            ChangeOrRangeProof::Change(_) => Err(Status::internal("unreachable")),
        }
    }

    async fn get_change_proof(
        &self,
        request: Request<pb::SyncGetChangeProofRequest>,
    ) -> Result<tonic::Response<pb::SyncGetChangeProofResponse>, Status> {
        let req = ChangeProofRequest::try_from(request.get_ref().clone())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let honest = self.inner.get_change_proof(request).await?.into_inner();
        let honest =
            ChangeOrRangeProof::try_from(honest).map_err(|e| Status::internal(e.to_string()))?;
        let answer = self
            .act(
                honest,
                req.start.as_deref(),
                req.end.as_deref(),
                req.key_limit,
            )
            .await?;
        Ok(tonic::Response::new(answer.into()))
    }

    async fn get_proof(
        &self,
        request: Request<pb::GetProofRequest>,
    ) -> Result<tonic::Response<pb::GetProofResponse>, Status> {
        self.inner.get_proof(request).await
    }

    async fn get_node_diff(
        &self,
        request: Request<pb::NodeDiffRequest>,
    ) -> Result<tonic::Response<pb::NodeDiffResponse>, Status> {
        if let Fault::NoDiffs = self.fault {
            return Err(Status::unimplemented("unknown method GetNodeDiff"));
        }
        let req = NodeDiffRequest::try_from(request.get_ref().clone())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let honest = self.inner.get_node_diff(request).await?.into_inner();
        let honest = Vec::<NodeDiff>::try_from(honest).map_err(|e| e.to_string());
        let answer = misbehave_diffs(&self.fault, honest, &req)
            .await
            .map_err(Status::unavailable)?;
        Ok(tonic::Response::new(answer.into()))
    }

    type WatchRootsStream =
        <StateSyncService as pb::state_sync_server::StateSync>::WatchRootsStream;

    async fn watch_roots(
        &self,
        request: Request<pb::WatchRootsRequest>,
    ) -> Result<tonic::Response<Self::WatchRootsStream>, Status> {
        self.inner.watch_roots(request).await
    }
}

/// A set of running servers and a client of all of them. Dropping it stops the servers.
pub(crate) struct Cluster {
    pub(crate) client: Arc<dyn SyncClient>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Cluster {
    /// Serves each database (with its fault, if any) on `transport`.
    pub(crate) async fn start(transport: Transport, peers: Vec<(Db, Option<Fault>)>) -> Self {
        match transport {
            Transport::InProcess => {
                let faults = peers.iter().map(|(_, f)| f.clone()).collect();
                let inner = LocalClient::new(peers.into_iter().map(|(db, _)| db));
                Self {
                    client: Arc::new(FaultyLocal { inner, faults }),
                    stops: Vec::new(),
                }
            }
            Transport::Socket => {
                let mut urls = Vec::new();
                let mut stops = Vec::new();
                for (db, fault) in peers {
                    let (listener, addr) = arbor::sync::bind("127.0.0.1:0".parse().expect("addr"))
                        .await
                        .expect("bind");
                    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    let service = StateSyncService::new(db, ServerConfig::default());
                    match fault {
                        None => {
                            tokio::spawn(arbor::sync::serve(service, listener, shutdown));
                        }
                        Some(Fault::Drop) => {
                            // A peer that accepts every TCP connection and closes it at once.
                            tokio::spawn(async move {
                                tokio::pin!(shutdown);
                                loop {
                                    tokio::select! {
                                        () = &mut shutdown => return,
                                        accepted = listener.accept() => drop(accepted),
                                    }
                                }
                            });
                        }
                        Some(fault) => {
                            let faulty =
                                pb::state_sync_server::StateSyncServer::new(FaultyService {
                                    inner: service,
                                    fault,
                                })
                                .max_encoding_message_size(8 << 20);
                            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                            tokio::spawn(
                                tonic::transport::Server::builder()
                                    .add_service(faulty)
                                    .serve_with_incoming_shutdown(incoming, shutdown),
                            );
                        }
                    }
                    urls.push(format!("http://{addr}"));
                    stops.push(stop);
                }
                Self {
                    client: Arc::new(GrpcClient::connect_lazy(&urls).expect("urls")),
                    stops,
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

/// Sync settings for tests: short timeouts so faulty peers cost little time.
pub(crate) fn test_config() -> SyncConfig {
    SyncConfig {
        workers: 4,
        request_timeout: Duration::from_millis(1500),
        stall_timeout: Duration::from_secs(60),
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(200),
        invalid_backoff: Duration::from_millis(300),
        ..SyncConfig::default()
    }
}

/// An in-memory database with `n` random keys (32 B keys, 32 B values) from `rng`.
pub(crate) fn random_db(rng: &mut SeededRng, n: usize, history: usize) -> Db {
    let db = Db::open_memory(Config::default().with_history_len(history)).expect("open");
    let mut ops = Vec::with_capacity(10_000);
    for i in 0..n {
        ops.push((rng.bytes(32), Some(rng.bytes(32))));
        if ops.len() == 10_000 || i + 1 == n {
            db.propose(std::mem::take(&mut ops))
                .expect("propose")
                .commit()
                .expect("commit");
        }
    }
    db
}

/// An empty in-memory database for a client.
pub(crate) fn empty_db(bf: BranchFactor) -> Db {
    Db::open_memory(
        Config::default()
            .with_branch_factor(bf)
            .with_history_len(10_000),
    )
    .expect("open")
}

/// Every key-value of `db`, in order.
pub(crate) fn contents(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.view()
        .expect("view")
        .range(&[], None, usize::MAX)
        .expect("range")
}

/// A copy of `db`'s contents in a new in-memory database with the same history length.
pub(crate) fn copy_db(db: &Db, history: usize) -> Db {
    let copy = Db::open_memory(
        Config::default()
            .with_branch_factor(db.branch_factor())
            .with_history_len(history),
    )
    .expect("open");
    let ops: Vec<_> = contents(db)
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect();
    copy.propose(ops)
        .expect("propose")
        .commit()
        .expect("commit");
    copy
}

/// Fixed points of a sync where a test acts: after each `every` keys the client has received
/// (at most `pauses` times), every answer is held until the test releases that pause. A sync
/// cannot end while answers are held, nor before its last pause when `every × pauses` is below
/// the keys it must fetch: what the test does at a pause happens mid-sync, however fast the sync
/// runs and however late the test's thread gets to run.
pub(crate) struct Pauses {
    every: usize,
    pauses: u32,
    received: AtomicUsize,
    /// How many pauses the sync has reached.
    reached: tokio::sync::watch::Sender<u32>,
    /// How many pauses the test has released.
    released: tokio::sync::watch::Sender<u32>,
}

impl Pauses {
    pub(crate) fn new(every: usize, pauses: u32) -> Arc<Self> {
        Arc::new(Self {
            every: every.max(1),
            pauses,
            received: AtomicUsize::new(0),
            reached: tokio::sync::watch::Sender::new(0),
            released: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Counts an answer of `keys` keys; returns once every pause reached is released.
    async fn pass(&self, keys: usize) {
        let before = self.received.fetch_add(keys, Ordering::SeqCst);
        let crossed = ((before + keys) / self.every).min(self.pauses as usize) as u32;
        self.reached.send_if_modified(|reached| {
            let more = crossed > *reached;
            *reached = (*reached).max(crossed);
            more
        });
        let need = *self.reached.borrow();
        let mut released = self.released.subscribe();
        let _ = released.wait_for(|r| *r >= need).await;
    }

    /// Waits until the sync reaches pause `n` (from 1); panics after `limit`.
    pub(crate) async fn reached(&self, n: u32, limit: Duration) {
        let mut reached = self.reached.subscribe();
        tokio::time::timeout(limit, reached.wait_for(|r| *r >= n))
            .await
            .unwrap_or_else(|_| panic!("the sync did not reach pause {n} in {limit:?}"))
            .expect("pauses");
    }

    /// Lets answers through again, up to the next pause after `n`.
    pub(crate) fn release(&self, n: u32) {
        self.released.send_replace(n);
    }
}

/// `inner`, with its answers held at [`Pauses`].
pub(crate) struct PausingClient {
    pub(crate) inner: Arc<dyn SyncClient>,
    pub(crate) pauses: Arc<Pauses>,
}

impl SyncClient for PausingClient {
    fn peers(&self) -> &PeerSet {
        self.inner.peers()
    }
    fn range_proof(
        &self,
        peer: PeerId,
        request: RangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<RangeProof>, ClientError>> {
        let answer = self.inner.range_proof(peer, request);
        let pauses = self.pauses.clone();
        async move {
            let answer = answer.await?;
            pauses.pass(answer.answer.key_values.len()).await;
            Ok(answer)
        }
        .boxed()
    }
    fn change_proof(
        &self,
        peer: PeerId,
        request: ChangeProofRequest,
    ) -> BoxFuture<'static, Result<Response<ChangeOrRangeProof>, ClientError>> {
        let answer = self.inner.change_proof(peer, request);
        let pauses = self.pauses.clone();
        async move {
            let answer = answer.await?;
            let keys = match &answer.answer {
                ChangeOrRangeProof::Change(p) => p.key_changes.len(),
                ChangeOrRangeProof::Range(p) => p.key_values.len(),
            };
            pauses.pass(keys).await;
            Ok(answer)
        }
        .boxed()
    }
    fn node_diff(
        &self,
        peer: PeerId,
        request: NodeDiffRequest,
    ) -> BoxFuture<'static, Result<Response<Vec<NodeDiff>>, ClientError>> {
        let answer = self.inner.node_diff(peer, request);
        let pauses = self.pauses.clone();
        async move {
            let answer = answer.await?;
            pauses.pass(0).await;
            Ok(answer)
        }
        .boxed()
    }
    fn watch_roots(&self, peer: PeerId) -> BoxStream<'static, Result<Announcement, ClientError>> {
        self.inner.watch_roots(peer)
    }
}
