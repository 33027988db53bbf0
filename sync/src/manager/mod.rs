//! The sync manager: brings a local database to a target root, fetching proofs from several
//! untrusted peers in parallel and verifying every one before anything is written.
//!
//! # How it works
//!
//! * The keyspace is a `coverage` map of half-open regions, each tagged with the root whose
//!   contents it holds locally (or unknown). Regions not at the target are work: unknown ones
//!   are fetched with range proofs, known ones with change proofs from their root, which the
//!   server answers with a range proof when it lacks that root's history.
//! * Up to `workers` requests are in flight, each to the best-scoring ready peer (`peers`);
//!   regions are halved while there are fewer pending regions than workers, so all stay busy.
//! * Range proofs are verified on a blocking thread as they arrive; change proofs, which are
//!   checked against local contents, are verified by the applier (`apply`), which commits
//!   batches of answers one at a time, each with the coverage map it produces.
//! * After a partial answer, `find_next_key` skips subtrees the local trie already shares with
//!   the fetched root: this is what makes catch-up and resume cheap.
//! * A new target ([`SyncManager::update_target`]) needs no bookkeeping: regions tagged with the
//!   old target simply stop being at the target and become change-proof work; answers in flight
//!   for the old target are still committed, tagged with the root they were fetched at.
//! * Done means provably done: every region holds the target and the local root equals it.
//!
//! A restarted manager reads the persisted map and fetches only what is missing. Without one, a
//! non-empty database is treated as holding its current root everywhere, so a replica that is
//! behind catches up with change proofs.

mod apply;
mod coverage;
mod peers;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use arbor_merkledb::{BranchFactor, ChangeOrRangeProof, Db, Hash, verify_range_proof};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
pub use peers::PeerStats;
use tokio::{sync::watch, task::JoinHandle};

use self::{
    apply::{Answer, Job, Outcome, load_progress, request_bounds},
    coverage::{Coverage, Work},
    peers::{Backoff, Fault, Peers},
};
use crate::{
    client::{ClientError, SyncClient},
    convert::{ChangeProofRequest, RangeProofRequest},
    serve::Limits,
};

/// Settings of a sync.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Requests in flight at once.
    pub workers: usize,
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
    /// Where to record the latency of each commit, if anywhere.
    pub metrics: Option<Arc<crate::metrics::SyncMetrics>>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            workers: 8,
            key_limit: limits.max_keys,
            bytes_limit: limits.max_bytes,
            request_timeout: Duration::from_secs(20),
            stall_timeout: Duration::from_secs(120),
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_secs(2),
            invalid_backoff: Duration::from_secs(5),
            max_batch: 4,
            metrics: None,
        }
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
    progress: watch::Receiver<Progress>,
    cancel: watch::Sender<bool>,
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
        if client.peer_count() == 0 && target != Hash::EMPTY_ROOT {
            return Err(SyncError::Config("no peers"));
        }
        let coverage = match load_progress(&db)? {
            Some(coverage) => coverage,
            None => {
                let root = db.root()?;
                Coverage::whole((root != Hash::EMPTY_ROOT).then_some(root))
            }
        };
        let names = (0..client.peer_count())
            .map(|p| client.peer_name(p))
            .collect();
        let backoff = Backoff {
            base: config.backoff_base,
            max: config.backoff_max,
            invalid: config.invalid_backoff,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let (target_tx, target_rx) = watch::channel(target);
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let started = Instant::now();
        let mut sync = Sync {
            bf: db.branch_factor(),
            db,
            client,
            peers: Peers::new(names, backoff, seed, config.workers),
            coverage,
            target,
            config,
            started,
            last_accept: started,
            keys: 0,
            bytes: 0,
            accepted: 0,
            rejected: 0,
            ready: Vec::new(),
            verify_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            )),
        };
        let (progress_tx, progress_rx) = watch::channel(sync.progress(false));
        let task = tokio::spawn(async move { sync.run(target_rx, cancel_rx, progress_tx).await });
        Ok(Self {
            target: target_tx,
            progress: progress_rx,
            cancel: cancel_tx,
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
            cancel: self.cancel.clone(),
        }
    }

    /// Progress, updated as answers are applied.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Stops the sync; [`SyncManager::wait`] then returns [`SyncError::Cancelled`]. What was
    /// committed stays, with its persisted progress, for a later sync to resume from.
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
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
    cancel: watch::Sender<bool>,
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

    /// See [`SyncManager::cancel`].
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }
}

/// What a request brought back.
enum Fetched {
    /// A verified range proof or an unverified change proof, ready for the applier, with its
    /// size and latency.
    Ready(Job, usize, Duration),
    /// The request failed.
    Failed(Work, usize, Fault, String),
}

/// The state of one sync, owned by its task.
struct Sync {
    db: Db,
    bf: BranchFactor,
    client: Arc<dyn SyncClient>,
    peers: Peers,
    coverage: Coverage,
    target: Hash,
    config: SyncConfig,
    started: Instant,
    last_accept: Instant,
    keys: u64,
    bytes: u64,
    accepted: u64,
    rejected: u64,
    /// Answers waiting for the applier.
    ready: Vec<Job>,
    /// Range-proof verifications allowed at once: one per core. Verification is CPU-bound, and
    /// each concurrent one keeps a blocking thread whose allocator retains its scratch trie's
    /// memory (~25 MB), so more would cost memory and gain nothing.
    verify_slots: Arc<tokio::sync::Semaphore>,
}

/// The applier's task: its outcomes and how long it took.
type Applying = JoinHandle<Result<(Vec<Outcome>, Duration), arbor_merkledb::Error>>;

impl Sync {
    async fn run(
        &mut self,
        mut target_rx: watch::Receiver<Hash>,
        mut cancel_rx: watch::Receiver<bool>,
        progress_tx: watch::Sender<Progress>,
    ) -> Result<SyncSummary, SyncError> {
        let mut in_flight: FuturesUnordered<BoxFuture<'static, Fetched>> = FuturesUnordered::new();
        let mut applying: Option<Applying> = None;
        // A dropped manager handle closes these channels; stop polling them then (a closed
        // channel is always ready and would spin the loop).
        let (mut target_open, mut cancel_open) = (true, true);
        loop {
            if *cancel_rx.borrow() {
                if let Some(task) = applying.take() {
                    // Let the commit in progress finish: it is atomic either way.
                    let _ = task.await;
                }
                return Err(SyncError::Cancelled);
            }
            let now = Instant::now();
            if applying.is_none() && in_flight.is_empty() && self.coverage.is_complete(self.target)
            {
                let actual = self.db.root()?;
                if actual != self.target {
                    return Err(SyncError::UnexpectedRoot {
                        expected: self.target,
                        actual,
                    });
                }
                // Persist the whole keyspace at the target, so a later sync starts from
                // change proofs for all of it.
                apply::save_progress(&self.db, &Coverage::whole(Some(self.target)))?;
                let summary = self.progress(true);
                progress_tx.send_replace(summary.clone());
                return Ok(summary);
            }
            if now.duration_since(self.last_accept) > self.config.stall_timeout {
                return Err(SyncError::Stalled {
                    waited: now.duration_since(self.last_accept),
                    peers: self.peers.stats(),
                });
            }
            if applying.is_none() && !self.ready.is_empty() {
                applying = Some(self.start_applying());
            }
            self.dispatch(&mut in_flight, now);
            progress_tx.send_replace(self.progress(false));

            let wake = self
                .peers
                .next_ready(now)
                .unwrap_or(now + Duration::from_secs(1))
                .min(self.last_accept + self.config.stall_timeout + Duration::from_millis(1));
            tokio::select! {
                Some(fetched) = in_flight.next(), if !in_flight.is_empty() => self.fetched(fetched),
                done = async { applying.as_mut().expect("guarded").await }, if applying.is_some() => {
                    applying = None;
                    let (outcomes, took) = done.map_err(|e| SyncError::Task(e.to_string()))??;
                    self.applied(outcomes, took);
                }
                changed = target_rx.changed(), if target_open => {
                    if changed.is_ok() {
                        self.target = *target_rx.borrow_and_update();
                        tracing::info!(target = %self.target, "sync target updated");
                    } else {
                        target_open = false;
                    }
                }
                changed = cancel_rx.changed(), if cancel_open => cancel_open = changed.is_ok(),
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Starts requests while workers and peers are free and answers are not piling up.
    fn dispatch(
        &mut self,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Fetched>>,
        now: Instant,
    ) {
        let workers = self.config.workers;
        while in_flight.len() < workers && self.ready.len() < workers {
            let split = self.coverage.pending(self.target) < workers;
            if self.target == Hash::EMPTY_ROOT {
                // Nothing to fetch: clear whatever is not yet known to be empty.
                let Some(work) = self.coverage.take(self.target, false) else {
                    return;
                };
                self.ready.push(Job {
                    work,
                    root: Hash::EMPTY_ROOT,
                    answer: Answer::Clear,
                    peer: None,
                });
                continue;
            }
            if self.coverage.pending(self.target) == 0 {
                return;
            }
            let Some(peer) = self.peers.choose(now) else {
                return;
            };
            let Some(work) = self.coverage.take(self.target, split) else {
                self.peers.abandoned(peer);
                return;
            };
            in_flight.push(self.fetch(peer, work));
        }
    }

    /// One request to `peer` for `work`, verified (range proofs) on a blocking thread.
    fn fetch(&self, peer: usize, work: Work) -> BoxFuture<'static, Fetched> {
        let (start, end, _) = request_bounds(&work);
        let client = self.client.clone();
        let root = self.target;
        let (key_limit, bytes_limit) = (self.config.key_limit, self.config.bytes_limit);
        let timeout = self.config.request_timeout;
        let bf = self.bf;
        let verify_slots = self.verify_slots.clone();
        async move {
            let sent = Instant::now();
            let answer = match work.tag {
                None => {
                    let request = RangeProofRequest {
                        root,
                        start: start.clone(),
                        end: end.clone(),
                        key_limit,
                        bytes_limit,
                    };
                    tokio::time::timeout(timeout, client.range_proof(peer, request))
                        .await
                        .map(|r| r.map(|r| (ChangeOrRangeProof::Range(r.answer), r.bytes)))
                }
                Some(start_root) => {
                    let request = ChangeProofRequest {
                        start_root,
                        end_root: root,
                        start: start.clone(),
                        end: end.clone(),
                        key_limit,
                        bytes_limit,
                    };
                    tokio::time::timeout(timeout, client.change_proof(peer, request))
                        .await
                        .map(|r| r.map(|r| (r.answer, r.bytes)))
                }
            };
            let latency = sent.elapsed();
            let (answer, bytes) = match answer {
                Err(_) => {
                    let error = format!("no answer within {timeout:?}");
                    return Fetched::Failed(work, peer, Fault::Unavailable, error);
                }
                Ok(Err(error)) => {
                    return Fetched::Failed(work, peer, fault_of(&error), error.to_string());
                }
                Ok(Ok(answer)) => answer,
            };
            if bytes > bytes_limit as usize {
                let error = format!("answer of {bytes} bytes exceeds the limit of {bytes_limit}");
                return Fetched::Failed(work, peer, Fault::Invalid, error);
            }
            let answer = match answer {
                ChangeOrRangeProof::Change(proof) => Answer::Change(proof),
                ChangeOrRangeProof::Range(proof) => {
                    let Ok(_slot) = verify_slots.acquire_owned().await else {
                        return Fetched::Failed(work, peer, Fault::Unavailable, "closing".into());
                    };
                    let verified = tokio::task::spawn_blocking(move || {
                        verify_range_proof(
                            &proof,
                            start.as_deref(),
                            end.as_deref(),
                            root,
                            key_limit as usize,
                            bf,
                        )
                        .map(|()| proof)
                    })
                    .await;
                    match verified {
                        Ok(Ok(proof)) => Answer::Range(proof),
                        Ok(Err(error)) => {
                            return Fetched::Failed(work, peer, Fault::Invalid, error.to_string());
                        }
                        Err(error) => {
                            return Fetched::Failed(
                                work,
                                peer,
                                Fault::Unavailable,
                                error.to_string(),
                            );
                        }
                    }
                }
            };
            let job = Job {
                work,
                root,
                answer,
                peer: Some(peer),
            };
            Fetched::Ready(job, bytes, latency)
        }
        .boxed()
    }

    /// Handles a finished request.
    fn fetched(&mut self, fetched: Fetched) {
        match fetched {
            Fetched::Ready(job, bytes, latency) => {
                self.bytes += bytes as u64;
                if let Some(metrics) = &self.config.metrics {
                    metrics.observe_answer(bytes);
                }
                if let Some(peer) = job.peer {
                    self.peers.succeeded(peer, latency, bytes);
                }
                self.ready.push(job);
            }
            Fetched::Failed(work, peer, fault, error) => {
                tracing::debug!(peer = %self.client.peer_name(peer), %error, ?fault, "request failed");
                if fault == Fault::Invalid {
                    self.reject();
                }
                self.peers.failed(peer, fault, error, Instant::now());
                self.coverage.release(&work.start);
            }
        }
    }

    /// Hands the waiting answers to the applier.
    fn start_applying(&mut self) -> Applying {
        let take = self.ready.len().min(self.config.max_batch);
        let jobs: Vec<Job> = self.ready.drain(..take).collect();
        let db = self.db.clone();
        let coverage = self.coverage.clone();
        let key_limit = self.config.key_limit as usize;
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            apply::apply(&db, &coverage, jobs, key_limit).map(|o| (o, started.elapsed()))
        })
    }

    /// Counts a rejected answer.
    fn reject(&mut self) {
        self.rejected += 1;
        if let Some(metrics) = &self.config.metrics {
            metrics.observe_rejected();
        }
    }

    /// Records what the applier did in a commit that took `took`.
    fn applied(&mut self, outcomes: Vec<Outcome>, took: Duration) {
        let now = Instant::now();
        let (keys_before, accepted_before) = (self.keys, self.accepted);
        for outcome in outcomes {
            match outcome {
                Outcome::Done {
                    start,
                    until,
                    root,
                    keys,
                } => {
                    self.coverage.complete(&start, &until, root);
                    self.keys += keys;
                    self.accepted += 1;
                    self.last_accept = now;
                }
                Outcome::Rejected {
                    start,
                    peer,
                    error,
                    ambiguous,
                } => {
                    if ambiguous {
                        tracing::debug!(%error, "change proof not checkable at a region edge; refetching with range proofs");
                        self.coverage.forget(&start);
                    } else {
                        self.reject();
                        self.coverage.release(&start);
                        if let Some(peer) = peer {
                            self.peers.penalize(peer, Fault::Invalid, error, now);
                        }
                    }
                }
            }
        }
        if let Some(metrics) = &self.config.metrics {
            let answers = self.accepted - accepted_before;
            metrics.observe_commit(took, answers, self.keys - keys_before);
        }
    }

    fn progress(&self, done: bool) -> Progress {
        let elapsed = self.started.elapsed();
        let fraction = self.coverage.fraction_at(self.target);
        let secs = elapsed.as_secs_f64().max(1e-9);
        let eta = (fraction > 0.0 && fraction < 1.0)
            .then(|| Duration::from_secs_f64(secs * (1.0 - fraction) / fraction));
        Progress {
            target: self.target,
            fraction,
            keys: self.keys,
            bytes: self.bytes,
            proofs_accepted: self.accepted,
            proofs_rejected: self.rejected,
            elapsed,
            eta: if done { Some(Duration::ZERO) } else { eta },
            peers: self.peers.stats(),
            done,
        }
    }
}

/// How a transport error reflects on the peer.
fn fault_of(error: &ClientError) -> Fault {
    // A refusal (even INVALID_ARGUMENT, which an honest server sends for requests it finds
    // malformed, e.g. after a protocol change) is not a lie: the peer backs off, no more.
    match error {
        ClientError::Malformed(_) => Fault::Invalid,
        ClientError::Status { .. } | ClientError::Transport(_) => Fault::Unavailable,
    }
}
