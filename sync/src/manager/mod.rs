//! The sync manager: brings a local database to a target root, fetching proofs from several
//! untrusted peers in parallel and verifying every one before anything is written.
//!
//! # How it works
//!
//! * The keyspace is a `coverage` map of half-open regions, each tagged with the root whose
//!   contents it holds locally (or unknown). Regions not at the target are work: unknown ones
//!   are fetched with range proofs, known ones with change proofs from their root, which the
//!   server answers with a range proof when it lacks that root's history.
//! * Requests in flight (and answers waiting for the applier) stay within a byte budget
//!   (`inflight_bytes`), each peer within its own window sized from its answers (`peers`); each
//!   request goes to the best-scoring ready peer. Regions are halved while there are fewer
//!   pending regions than the windows allow, and when none is idle a free peer takes the far
//!   half of one in flight.
//! * At the tail, a request out for longer than a free peer would take is sent to that peer
//!   too; the first answer is taken and the other copy cancelled. So a slow, narrow or stalled
//!   peer never holds the end of a sync.
//! * Range proofs are verified on a blocking thread as they arrive; change proofs, which are
//!   checked against local contents, are verified by the applier (`apply`), which commits
//!   batches of answers one at a time, each with the coverage map it produces.
//! * After a partial answer, `find_next_key` skips subtrees the local trie already shares with
//!   the fetched root: this is what makes catch-up and resume cheap.
//! * A new target ([`SyncManager::update_target`]) needs no bookkeeping: regions tagged with the
//!   old target simply stop being at the target and become change-proof work; answers in flight
//!   for the old target are still committed, tagged with the root they were fetched at.
//! * When the regions to bring up to date are known at a root no peer keeps in history any
//!   more (a one-key change-proof request comes back as a range proof), the sync first compares
//!   the replica's trie with the target's node by node (`scheduler/diff.rs`, node diffs), so
//!   what travels follows what changed at any distance.
//! * Done means provably done: every region holds the target and the local root equals it.
//!
//! A restarted manager reads the persisted map and fetches only what is missing. Without one, a
//! non-empty database is treated as holding its current root everywhere, so a replica that is
//! behind catches up with change proofs.

pub(crate) mod apply;
pub(crate) mod coverage;
mod keyspace;
mod next_key;
mod peers;
mod scheduler;

use std::{sync::Arc, time::Duration};

use arbor_merkledb::{Db, Hash};
pub use peers::PeerStats;
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use self::{
    apply::starting_coverage,
    peers::{Backoff, Peers},
    scheduler::Sync,
};
use crate::{
    client::{PeerId, SyncClient},
    observe::SyncObserver,
    serve::Limits,
};

/// The older root each peer holds, as far as the sync was told ([`SyncHandle::peer_holds`]).
pub(crate) type PeerRoots = std::collections::BTreeMap<PeerId, Hash>;

/// Settings of a sync.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Requests in flight to each peer at the start. Each peer's window then follows its
    /// answers: wider while they come back as fast as its fastest (a long round trip, nothing
    /// queued), narrower when they queue.
    pub workers: usize,
    /// Bound on the answers in flight and waiting to be applied, in bytes at the byte limit
    /// each: how far all peers' windows together may grow.
    pub inflight_bytes: usize,
    /// Keys asked for per request.
    pub key_limit: u32,
    /// Byte limit per answer.
    pub bytes_limit: u32,
    /// A request not answered within this is abandoned and its peer backs off.
    pub request_timeout: Duration,
    /// Give up when no answer has been accepted for this long while work remains.
    pub stall_timeout: Duration,
    /// Backoff after a peer's first failure; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Cap on the backoff of failing peers.
    pub backoff_max: Duration,
    /// Backoff after a peer sent a proof that failed verification.
    pub invalid_backoff: Duration,
    /// Most answers committed together in one batch.
    pub max_batch: usize,
    /// Told about answers, rejections and commits as they happen, if set.
    pub observer: Option<Arc<dyn SyncObserver>>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            workers: 8,
            inflight_bytes: 256 << 20,
            key_limit: limits.max_keys,
            bytes_limit: limits.max_bytes,
            request_timeout: Duration::from_secs(20),
            stall_timeout: Duration::from_secs(120),
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_secs(2),
            invalid_backoff: Duration::from_secs(5),
            max_batch: 4,
            observer: None,
        }
    }
}

impl SyncConfig {
    /// Requests in flight (and answers waiting) allowed in all: `inflight_bytes` at the byte
    /// limit each, at least `workers`.
    pub(crate) fn max_in_flight_requests(&self) -> usize {
        (self.inflight_bytes / self.bytes_limit.max(1) as usize).max(self.workers)
    }
}

/// Why a sync did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The local database failed.
    #[error("local database: {0}")]
    Db(#[from] arbor_merkledb::Error),
    /// No answer was accepted for the configured time.
    #[error("no peer answered usefully for {waited:?}; last errors: {}", describe(.peers))]
    Stalled {
        /// How long it waited.
        waited: Duration,
        /// Every peer's figures, with its last error.
        peers: Vec<PeerStats>,
    },
    /// [`SyncManager::cancel`] was called.
    #[error("cancelled")]
    Cancelled,
    /// Every region was covered but the local root differs: a bug, never a peer's doing.
    #[error("finished with root {actual}, expected {expected}")]
    UnexpectedRoot {
        /// The target.
        expected: Hash,
        /// The local root.
        actual: Hash,
    },
    /// The manager task failed.
    #[error("sync task failed: {0}")]
    Task(String),
}

fn describe(peers: &[PeerStats]) -> String {
    peers
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p.name,
                p.last_error.as_deref().unwrap_or("no answer")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a sync is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Fetching range and change proofs of regions of the keyspace.
    Proofs,
    /// Comparing the replica's trie with the target's node by node (node diffs): its root is
    /// in no peer's history, so no change proof can bring it up to date.
    Diff,
}

impl SyncMode {
    /// A name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Proofs => "proofs",
            SyncMode::Diff => "diff",
        }
    }
}

/// Where a sync stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The current target.
    pub target: Hash,
    /// Fraction of the keyspace holding the target, in `[0, 1]`.
    pub fraction: f64,
    /// Keys written or deleted locally.
    pub keys: u64,
    /// Bytes of accepted answers.
    pub bytes: u64,
    /// Answers verified and committed.
    pub proofs_accepted: u64,
    /// Answers rejected (undecodable or failing verification).
    pub proofs_rejected: u64,
    /// Since the start.
    pub elapsed: Duration,
    /// Estimated time left, from the rate at which the keyspace has been covered.
    pub eta: Option<Duration>,
    /// Per-peer figures.
    pub peers: Vec<PeerStats>,
    /// What the sync is doing now.
    pub mode: SyncMode,
    /// Of `bytes`: range proofs (including those sent for change-proof requests whose start
    /// root the peer no longer held).
    pub range_bytes: u64,
    /// Of `bytes`: change proofs.
    pub change_bytes: u64,
    /// Of `bytes`: node diffs.
    pub diff_bytes: u64,
    /// The sync has finished at `target`.
    pub done: bool,
}

impl Progress {
    /// Keys written per second since the start.
    pub fn keys_per_sec(&self) -> f64 {
        self.keys as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The result of a finished sync.
pub type SyncSummary = Progress;

/// A running sync. Dropping it does not stop the sync; call [`SyncManager::cancel`].
pub struct SyncManager {
    target: watch::Sender<Hash>,
    peer_roots: watch::Sender<PeerRoots>,
    progress: watch::Receiver<Progress>,
    cancel: CancellationToken,
    task: JoinHandle<Result<SyncSummary, SyncError>>,
}

impl SyncManager {
    /// Starts syncing `db` to `target` through `client` (inside a Tokio runtime). Resumes from
    /// the progress persisted in `db` by an earlier, interrupted sync.
    pub fn start(
        db: Db,
        client: Arc<dyn SyncClient>,
        target: Hash,
        config: SyncConfig,
    ) -> Result<Self, SyncError> {
        if config.workers == 0 {
            return Err(SyncError::Config("workers must be at least 1"));
        }
        if config.key_limit == 0 || config.bytes_limit == 0 {
            return Err(SyncError::Config("key and byte limits must be positive"));
        }
        let coverage = starting_coverage(&db)?;
        // Subscribed before the first look, so no change of the peer set is missed. A sync may
        // start with no peers and wait (up to its stall timeout) for some to join.
        let peer_rx = client.peers().subscribe();
        let members = peer_rx.borrow().clone();
        let backoff = Backoff {
            base: config.backoff_base,
            max: config.backoff_max,
            invalid: config.invalid_backoff,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let (target_tx, target_rx) = watch::channel(target);
        let (peer_roots_tx, peer_roots_rx) = watch::channel(PeerRoots::new());
        let cancel = CancellationToken::new();
        let sync = Sync::new(
            db,
            client,
            Peers::new(
                &members,
                backoff,
                seed,
                config.workers,
                config.max_in_flight_requests(),
            ),
            coverage,
            target,
            config,
        );
        let (progress_tx, progress_rx) = watch::channel(sync.progress(false));
        let cancelled = cancel.clone();
        let task =
            tokio::spawn(sync.run(target_rx, peer_rx, peer_roots_rx, cancelled, progress_tx));
        Ok(Self {
            target: target_tx,
            peer_roots: peer_roots_tx,
            progress: progress_rx,
            cancel,
            task,
        })
    }

    /// Moves the target to `root`. Ranges already synced are brought to it with change proofs.
    pub fn update_target(&self, root: Hash) {
        self.handle().update_target(root);
    }

    /// A handle that can retarget or cancel this sync while another task waits for it.
    pub fn handle(&self) -> SyncHandle {
        SyncHandle {
            target: self.target.clone(),
            peer_roots: self.peer_roots.clone(),
            cancel: self.cancel.clone(),
        }
    }

    /// See [`SyncHandle::peer_holds`].
    pub fn peer_holds(&self, peer: PeerId, root: Hash) {
        self.handle().peer_holds(peer, root);
    }

    /// Progress, updated as answers are applied.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Stops the sync; [`SyncManager::wait`] then returns [`SyncError::Cancelled`]. What was
    /// committed stays, with its persisted progress, for a later sync to resume from.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits for the sync to finish: `Ok` only when the local root equals the target.
    pub async fn wait(self) -> Result<SyncSummary, SyncError> {
        self.task
            .await
            .map_err(|e| SyncError::Task(e.to_string()))?
    }
}

/// Retargets or cancels a running sync; cheap to clone.
#[derive(Clone, Debug)]
pub struct SyncHandle {
    target: watch::Sender<Hash>,
    peer_roots: watch::Sender<PeerRoots>,
    cancel: CancellationToken,
}

impl SyncHandle {
    /// See [`SyncManager::update_target`].
    pub fn update_target(&self, root: Hash) {
        self.target.send_if_modified(|t| {
            let changed = *t != root;
            *t = root;
            changed
        });
    }

    /// Tells the sync that `peer` holds `root`, a root **older** than the target (it announced
    /// it, and has not announced the target yet). A peer that answers that it lacks the target
    /// is then asked for ranges at `root` instead of being left idle; change proofs bring those
    /// ranges to the target afterwards. Follow mode does this with every announcement.
    pub fn peer_holds(&self, peer: PeerId, root: Hash) {
        self.peer_roots
            .send_if_modified(|roots| roots.insert(peer, root) != Some(root));
    }

    /// See [`SyncManager::cancel`].
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}
