//! A blockchain VM that carries Arbor's sync over its own network.
//!
//! The network here is an in-process message hub shaped like AvalancheGo's: a node sends an
//! `AppRequest` (bytes, a request id and a deadline) to another node and gets back either an
//! `AppResponse` (bytes, the same request id) or an `AppError` (a code and a message). Peers
//! connect and disconnect while the sync runs: the VM tells Arbor through the client's
//! [`PeerSet`], and Arbor takes new peers into its schedule and stops asking departed ones.
//!
//! Run it with `cargo run --release --example vm_network`; `tests/it/vm_example.rs` runs the same
//! scenario. The VM code is everything but `main`: about 150 lines an embedder writes once.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use arbor::{
    merkledb::{Config, Db, Hash},
    sync::{
        ClientError, Limits, Network, NetworkClient, PeerId, PeerSet, PeerStats, StatusKind,
        SyncConfig, SyncManager, handle_request_bytes,
    },
};
use futures::{FutureExt, future::BoxFuture};
use tokio::sync::{mpsc, oneshot};

/// A node's address on the hub.
pub(crate) type NodeId = u32;

/// What travels between nodes.
#[derive(Debug)]
pub(crate) enum Message {
    /// A request for the receiver to answer before `deadline` (`AppRequest`).
    Request {
        /// The sender.
        from: NodeId,
        /// Chosen by the sender; echoed in the answer.
        request_id: u32,
        /// After this the sender no longer waits.
        deadline: Instant,
        /// The request (Arbor's v1.11 `sync.Request` bytes).
        bytes: Vec<u8>,
    },
    /// The answer to a request (`AppResponse`).
    Response {
        /// The request's id.
        request_id: u32,
        /// The answer.
        bytes: Vec<u8>,
    },
    /// A refusal of a request (`AppError`).
    Refusal {
        /// The request's id.
        request_id: u32,
        /// Why, as a number ([`StatusKind::code`]).
        code: u32,
        /// Why, for people.
        message: String,
    },
}

/// The message hub: every node's inbox by address.
#[derive(Default)]
pub(crate) struct Hub {
    inboxes: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Message>>>,
}

impl Hub {
    /// Delivers `message` to `to`; false if there is no such node.
    fn send(&self, to: NodeId, message: Message) -> bool {
        let inboxes = self.inboxes.lock().expect("hub lock");
        inboxes
            .get(&to)
            .is_some_and(|inbox| inbox.send(message).is_ok())
    }
}

/// Where the answer to a request goes.
type Waiter = oneshot::Sender<Result<Vec<u8>, ClientError>>;

/// One VM node: its database, the requests it is waiting on, and the peers it is connected to.
pub(crate) struct Node {
    id: NodeId,
    hub: Arc<Hub>,
    db: Db,
    /// How long this node takes to answer a request beyond the work itself (a slow link).
    delay: Duration,
    next_request: AtomicU32,
    /// Requests sent and not yet answered: the peer asked, and where its answer goes.
    pending: Mutex<HashMap<u32, (NodeId, Waiter)>>,
    /// The peers Arbor may ask, and which node each is.
    peers: PeerSet,
    nodes: Mutex<HashMap<PeerId, NodeId>>,
}

impl Node {
    /// A node on `hub` holding `db`, answering requests after `delay`; starts its message loop.
    pub(crate) fn start(hub: &Arc<Hub>, id: NodeId, db: Db, delay: Duration) -> Arc<Self> {
        let (inbox, mut messages) = mpsc::unbounded_channel();
        hub.inboxes.lock().expect("hub lock").insert(id, inbox);
        let node = Arc::new(Self {
            id,
            hub: hub.clone(),
            db,
            delay,
            next_request: AtomicU32::new(0),
            pending: Mutex::default(),
            peers: PeerSet::new(),
            nodes: Mutex::default(),
        });
        let this = node.clone();
        tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                this.receive(message);
            }
        });
        node
    }

    fn receive(self: &Arc<Self>, message: Message) {
        match message {
            Message::Request {
                from,
                request_id,
                deadline,
                bytes,
            } => {
                let this = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(this.delay).await;
                    let db = this.db.clone();
                    let answer = tokio::task::spawn_blocking(move || {
                        handle_request_bytes(&db, &bytes, &Limits::default())
                    })
                    .await
                    .expect("serving task");
                    if Instant::now() > deadline {
                        return; // The asker has stopped waiting.
                    }
                    let reply = match answer {
                        Ok(bytes) => Message::Response { request_id, bytes },
                        Err(error) => Message::Refusal {
                            request_id,
                            code: error.kind().code(),
                            message: error.to_string(),
                        },
                    };
                    this.hub.send(from, reply);
                });
            }
            Message::Response { request_id, bytes } => self.settle(request_id, Ok(bytes)),
            Message::Refusal {
                request_id,
                code,
                message,
            } => self.settle(
                request_id,
                Err(ClientError::refused(StatusKind::from_code(code), message)),
            ),
        }
    }

    fn settle(&self, request_id: u32, answer: Result<Vec<u8>, ClientError>) {
        let waiter = self
            .pending
            .lock()
            .expect("pending lock")
            .remove(&request_id);
        if let Some((_, waiter)) = waiter {
            let _ = waiter.send(answer);
        }
    }

    /// The VM's "peer connected" callback: Arbor may ask `peer` from now on.
    pub(crate) fn connected(&self, peer: NodeId) -> PeerId {
        let id = self.peers.join(format!("node-{peer}"));
        self.nodes.lock().expect("nodes lock").insert(id, peer);
        id
    }

    /// The VM's "peer disconnected" callback: Arbor stops asking it, and what it was asked fails
    /// (Arbor re-issues it elsewhere, without holding it against the peer).
    pub(crate) fn disconnected(&self, peer: NodeId) {
        let ids: Vec<PeerId> = {
            let mut nodes = self.nodes.lock().expect("nodes lock");
            let ids = nodes
                .iter()
                .filter(|(_, n)| **n == peer)
                .map(|(id, _)| *id)
                .collect();
            nodes.retain(|_, n| *n != peer);
            ids
        };
        for id in ids {
            self.peers.leave(id);
        }
        let mut pending = self.pending.lock().expect("pending lock");
        let failed: Vec<u32> = pending
            .iter()
            .filter(|(_, (to, _))| *to == peer)
            .map(|(r, _)| *r)
            .collect();
        for request_id in failed {
            if let Some((_, waiter)) = pending.remove(&request_id) {
                let _ = waiter.send(Err(ClientError::Transport(format!(
                    "node-{peer} disconnected"
                ))));
            }
        }
    }

    /// A sync client over this node's network and peers.
    pub(crate) fn sync_client(self: &Arc<Self>) -> Arc<NetworkClient<VmNetwork>> {
        Arc::new(NetworkClient::new(
            VmNetwork(self.clone()),
            self.peers.clone(),
        ))
    }
}

/// Arbor's view of a node's network: send a request to a peer, wait for its answer.
pub(crate) struct VmNetwork(Arc<Node>);

/// How long a request may wait for its answer on this network.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

impl Network for VmNetwork {
    fn request(
        &self,
        peer: PeerId,
        bytes: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, ClientError>> {
        let node = &self.0;
        let Some(to) = node.nodes.lock().expect("nodes lock").get(&peer).copied() else {
            let error = ClientError::Transport(format!("peer #{peer} is not connected"));
            return futures::future::ready(Err(error)).boxed();
        };
        let request_id = node.next_request.fetch_add(1, Ordering::Relaxed);
        let (waiter, answer) = oneshot::channel();
        node.pending
            .lock()
            .expect("pending lock")
            .insert(request_id, (to, waiter));
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let message = Message::Request {
            from: node.id,
            request_id,
            deadline,
            bytes,
        };
        if !node.hub.send(to, message) {
            node.settle(
                request_id,
                Err(ClientError::Transport(format!("node-{to} unreachable"))),
            );
        }
        async move {
            match tokio::time::timeout_at(deadline.into(), answer).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(ClientError::Transport("request dropped".into())),
                Err(_) => Err(ClientError::Transport("deadline passed".into())),
            }
        }
        .boxed()
    }
}

/// What [`run`] reports.
#[derive(Debug)]
pub(crate) struct Report {
    /// The root synced to.
    pub(crate) target: Hash,
    /// The replica's root at the end.
    pub(crate) root: Hash,
    /// Keys the replica wrote.
    pub(crate) keys: u64,
    /// Per-peer figures at the end.
    pub(crate) peers: Vec<PeerStats>,
}

/// Syncs a fresh replica from server nodes holding `keys` keys: one server is connected at the
/// start, two more connect once a fifth of the keyspace is synced, and the first disconnects at
/// half. The sync must end at the servers' root.
pub(crate) async fn run(keys: u32, seed: u64) -> Result<Report, Box<dyn std::error::Error>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let state: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..keys)
        .map(|_| {
            (
                rng.u64(..).to_be_bytes().to_vec(),
                Some(rng.u64(..).to_le_bytes().to_vec()),
            )
        })
        .collect();
    let hub = Arc::new(Hub::default());
    let mut servers = Vec::new();
    for id in 1..=3 {
        let db = Db::open_memory(Config::default())?;
        db.propose(state.clone())?.commit()?;
        servers.push(Node::start(&hub, id, db, Duration::from_millis(3)));
    }
    let target = servers[0].db.root()?;
    let replica = Node::start(
        &hub,
        0,
        Db::open_memory(Config::default().with_history_len(0))?,
        Duration::ZERO,
    );
    replica.connected(1);

    // Small answers and few workers, so the sync lasts long enough for peers to come and go.
    let config = SyncConfig {
        key_limit: 256,
        workers: 4,
        ..SyncConfig::default()
    };
    let manager = SyncManager::start(replica.db.clone(), replica.sync_client(), target, config)?;
    let mut progress = manager.progress();
    let (mut joined, mut left) = (false, false);
    let wait = manager.wait();
    tokio::pin!(wait);
    let summary = loop {
        tokio::select! {
            result = &mut wait => break result?,
            Ok(()) = progress.changed() => {
                let fraction = progress.borrow_and_update().fraction;
                if fraction >= 0.2 && !joined {
                    joined = true;
                    replica.connected(2);
                    replica.connected(3);
                }
                if fraction >= 0.5 && joined && !left {
                    left = true;
                    replica.disconnected(1);
                }
            }
        }
    };
    Ok(Report {
        target,
        root: replica.db.root()?,
        keys: summary.keys,
        peers: summary.peers,
    })
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let report = run(60_000, 7).await?;
    println!(
        "synced {} keys in {:.2?} over the VM's network; root {} (target {})",
        report.keys,
        started.elapsed(),
        report.root,
        report.target
    );
    for peer in &report.peers {
        println!(
            "  {:8} answers {:4}  keys {:6}  failures {}  {}",
            peer.name,
            peer.answers,
            peer.keys,
            peer.failures,
            if peer.departed {
                "departed"
            } else {
                "connected"
            }
        );
    }
    if report.root != report.target {
        return Err("the replica's root differs from the target".into());
    }
    Ok(())
}
