//! The `StateSync` gRPC service on tonic.
//!
//! * Proof RPCs run on the blocking pool, at most [`ServerConfig::max_in_flight`] at a time;
//!   up to [`ServerConfig::max_queued`] more wait for a turn (a client on a long link keeps
//!   many requests in flight, and they arrive in bursts); beyond that a request is refused at
//!   once with `RESOURCE_EXHAUSTED`, never queued without bound.
//! * Every failure is a status with a message: `INVALID_ARGUMENT` (malformed request),
//!   `NOT_FOUND` (root not held; the message lists the roots that are), `FAILED_PRECONDITION`
//!   (no proof fits the byte limit, or the trie is empty), `RESOURCE_EXHAUSTED`, `INTERNAL`.
//! * `WatchRoots` streams committed roots from a bounded broadcast channel: a subscriber that does
//!   not read falls behind and skips roots; it never makes the server buffer more.
//! * The standard `grpc.health.v1.Health` service is served beside it.

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use arbor_merkledb::{Db, Hash};
use futures::{Stream, StreamExt};
use tokio::sync::{Semaphore, broadcast};
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};

use crate::{
    client::StatusKind,
    observe::ServeObserver,
    pb,
    request::{ChangeProofRequest, NodeDiffRequest, RangeProofRequest},
    serve::{Limits, ServeError, serve_change_proof, serve_node_diff, serve_range_proof},
};

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Caps on what one request may ask for.
    pub limits: Limits,
    /// Proof computations allowed at once (0: serve none, refuse all).
    pub max_in_flight: usize,
    /// Requests that may wait for a computation beyond those; more are refused with
    /// `RESOURCE_EXHAUSTED`. A waiting request holds no answer yet, only its few bytes.
    pub max_queued: usize,
    /// Roots kept for `WatchRoots` subscribers that fall behind.
    pub watch_buffer: usize,
    /// Largest message accepted or sent on the transport, in bytes.
    pub max_message_bytes: usize,
    /// How often the database is polled for commits made outside [`RootAnnouncer`].
    pub poll_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_in_flight: 16,
            max_queued: 256,
            watch_buffer: 64,
            max_message_bytes: 4 << 20,
            poll_interval: Duration::from_millis(100),
        }
    }
}

impl From<ServeError> for Status {
    fn from(error: ServeError) -> Self {
        // One mapping for both transports (`ServeError::kind`, the gRPC code numbers); a
        // database failure, `Other` on the byte path, is `INTERNAL` here.
        let code = match error.kind() {
            StatusKind::Other => Code::Internal,
            kind => Code::from(kind.code() as i32),
        };
        Status::new(code, error.to_string())
    }
}

/// Announces committed roots to `WatchRoots` subscribers. Cheap to clone.
#[derive(Clone)]
pub struct RootAnnouncer {
    sender: broadcast::Sender<pb::RootUpdate>,
}

impl RootAnnouncer {
    /// Announces `root`, committed as commit number `commit_seq`.
    pub fn announce(&self, root: Hash, commit_seq: u64) {
        // No subscribers is not an error.
        let _ = self.sender.send(pb::RootUpdate {
            root_hash: root.0.to_vec(),
            commit_seq,
        });
    }
}

/// The `StateSync` service over a database.
#[derive(Clone)]
pub struct StateSyncService {
    db: Db,
    config: ServerConfig,
    in_flight: Arc<Semaphore>,
    /// Admission: `max_in_flight + max_queued` permits (none when `max_in_flight` is 0).
    admitted: Arc<Semaphore>,
    roots: broadcast::Sender<pb::RootUpdate>,
    /// Set when the server shuts down: ends `WatchRoots` streams, which would otherwise keep
    /// their connections (and a graceful shutdown) open forever.
    closing: CancellationToken,
    /// Told about every answered request, if set.
    observer: Option<Arc<dyn ServeObserver>>,
}

impl StateSyncService {
    /// A service answering from `db`.
    pub fn new(db: Db, config: ServerConfig) -> Self {
        let (roots, _) = broadcast::channel(config.watch_buffer.max(1));
        let in_flight = Arc::new(Semaphore::new(config.max_in_flight));
        let admissions = if config.max_in_flight == 0 {
            0
        } else {
            config.max_in_flight + config.max_queued
        };
        let admitted = Arc::new(Semaphore::new(admissions));
        Self {
            db,
            config,
            in_flight,
            admitted,
            roots,
            closing: CancellationToken::new(),
            observer: None,
        }
    }

    /// Tells `observer` about every answered request.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn ServeObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Tells the observer, if any, about `result` of `rpc` and passes it through.
    fn observed<T: prost::Message>(
        &self,
        rpc: &'static str,
        result: Result<Response<T>, Status>,
    ) -> Result<Response<T>, Status> {
        if let Some(observer) = &self.observer {
            match &result {
                Ok(answer) => observer.request(rpc, Code::Ok, answer.get_ref().encoded_len()),
                Err(status) => observer.request(rpc, status.code(), 0),
            }
        }
        result
    }

    /// Ends every `WatchRoots` stream (now and later); called when the server shuts down.
    pub fn close_streams(&self) {
        self.closing.cancel();
    }

    /// A handle to announce new roots (e.g. after each commit of a churn loop).
    pub fn announcer(&self) -> RootAnnouncer {
        RootAnnouncer {
            sender: self.roots.clone(),
        }
    }

    /// The tonic service, with the configured message size limits.
    pub fn into_server(self) -> pb::state_sync_server::StateSyncServer<Self> {
        let max = self.config.max_message_bytes;
        pb::state_sync_server::StateSyncServer::new(self)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
    }

    /// Polls the database and announces every new root, until `stop` resolves. Covers commits
    /// made by anyone, not only through a [`RootAnnouncer`].
    pub async fn poll_roots(self, stop: impl Future<Output = ()>) {
        let announcer = self.announcer();
        let mut last = self.db.commit_seq().ok();
        let mut ticker = tokio::time::interval(self.config.poll_interval);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticker.tick() => {
                    if let (Ok(seq), Ok(root)) = (self.db.commit_seq(), self.db.root()) {
                        if Some(seq) != last {
                            last = Some(seq);
                            announcer.announce(root, seq);
                        }
                    }
                }
            }
        }
    }

    /// Runs a proof computation on the blocking pool under the in-flight bound.
    async fn bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Db, &Limits) -> Result<T, ServeError> + Send + 'static,
    ) -> Result<T, Status> {
        let admission = self.admitted.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} proof requests already in flight and {} waiting; retry later",
                self.config.max_in_flight, self.config.max_queued
            ))
        })?;
        let permit = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        let db = self.db.clone();
        let limits = self.config.limits;
        tokio::task::spawn_blocking(move || {
            let _permits = (admission, permit);
            work(&db, &limits)
        })
        .await
        .map_err(|e| Status::internal(format!("proof task failed: {e}")))?
        .map_err(Status::from)
    }
}

/// The `WatchRoots` stream type.
pub type RootStream = Pin<Box<dyn Stream<Item = Result<pb::RootUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl pb::state_sync_server::StateSync for StateSyncService {
    async fn get_merkle_root(
        &self,
        _request: Request<()>,
    ) -> Result<Response<pb::GetMerkleRootResponse>, Status> {
        let result = self
            .db
            .root()
            .map_err(|e| Status::internal(e.to_string()))
            .map(|root| {
                Response::new(pb::GetMerkleRootResponse {
                    root_hash: root.0.to_vec(),
                })
            });
        self.observed("GetMerkleRoot", result)
    }

    async fn get_range_proof(
        &self,
        request: Request<pb::SyncGetRangeProofRequest>,
    ) -> Result<Response<pb::RangeProof>, Status> {
        let result = match RangeProofRequest::try_from(request.into_inner()) {
            Ok(req) => self
                .bounded(move |db, limits| serve_range_proof(db, &req, limits))
                .await
                .map(Response::new),
            Err(e) => Err(ServeError::from(e).into()),
        };
        self.observed("GetRangeProof", result)
    }

    async fn get_change_proof(
        &self,
        request: Request<pb::SyncGetChangeProofRequest>,
    ) -> Result<Response<pb::SyncGetChangeProofResponse>, Status> {
        let result = match ChangeProofRequest::try_from(request.into_inner()) {
            Ok(req) => self
                .bounded(move |db, limits| serve_change_proof(db, &req, limits))
                .await
                .map(Response::new),
            Err(e) => Err(ServeError::from(e).into()),
        };
        self.observed("GetChangeProof", result)
    }

    async fn get_node_diff(
        &self,
        request: Request<pb::NodeDiffRequest>,
    ) -> Result<Response<pb::NodeDiffResponse>, Status> {
        let result = match NodeDiffRequest::try_from(request.into_inner()) {
            Ok(req) => self
                .bounded(move |db, limits| serve_node_diff(db, &req, limits))
                .await
                .map(Response::new),
            Err(e) => Err(ServeError::from(e).into()),
        };
        self.observed("GetNodeDiff", result)
    }

    async fn get_proof(
        &self,
        request: Request<pb::GetProofRequest>,
    ) -> Result<Response<pb::GetProofResponse>, Status> {
        let key = request.into_inner().key;
        let result = self
            .bounded(move |db, _| {
                db.proof(&key).map_err(|e| match e {
                    arbor_merkledb::Error::Proof(p) => ServeError::Unservable(p),
                    arbor_merkledb::Error::Invalid => ServeError::Contended,
                    other => ServeError::Db(other),
                })
            })
            .await
            .map(|proof| {
                Response::new(pb::GetProofResponse {
                    proof: Some(proof.into()),
                })
            });
        self.observed("GetProof", result)
    }

    type WatchRootsStream = RootStream;

    async fn watch_roots(
        &self,
        _request: Request<pb::WatchRootsRequest>,
    ) -> Result<Response<RootStream>, Status> {
        let receiver = self.roots.subscribe();
        let (root, seq) = self
            .db
            .root()
            .and_then(|r| Ok((r, self.db.commit_seq()?)))
            .map_err(|e| Status::internal(e.to_string()))?;
        let current = pb::RootUpdate {
            root_hash: root.0.to_vec(),
            commit_seq: seq,
        };
        // A lagging subscriber skips the roots it missed (bounded buffer) and keeps going.
        let updates = BroadcastStream::new(receiver).filter_map(|item| async move {
            match item {
                Ok(update) => Some(Ok(update)),
                Err(BroadcastStreamRecvError::Lagged(_)) => None,
            }
        });
        let closed = self.closing.clone().cancelled_owned();
        let stream = futures::stream::once(async move { Ok(current) })
            .chain(updates)
            .take_until(closed);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Serves `service` (and the health service) on `listener` until `shutdown` resolves; in-flight
/// requests finish first.
pub async fn serve(
    service: StateSyncService,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // Small responses must not wait for Nagle's algorithm.
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
        let stream = stream?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    });
    serve_incoming(service, incoming, shutdown).await
}

/// Serves `service` (and the health service) on the connections `incoming` yields (TCP, TLS, an
/// in-memory pipe) until `shutdown` resolves; in-flight requests finish first. [`serve`] is this
/// over a TCP listener: every transport gets the same assembly.
pub async fn serve_incoming<IO, IE>(
    service: StateSyncService,
    incoming: impl Stream<Item = Result<IO, IE>> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error>
where
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let streams = service.clone();
    let shutdown = async move {
        shutdown.await;
        streams.close_streams();
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::state_sync_server::StateSyncServer<StateSyncService>>()
        .await;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Binds `addr` and returns the listener and its actual address (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
