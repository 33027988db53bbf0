//! The scheduler: the task that owns one sync's state, dispatches requests to peers, verifies
//! range proofs as they arrive, hands answers to the applier one batch at a time and decides
//! when the sync is done (every region at the target **and** the local root equal to it).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use arbor_merkledb::{BranchFactor, ChangeOrRangeProof, Db, Hash, verify_range_proof};
use futures::{
    FutureExt, StreamExt,
    future::{AbortHandle, BoxFuture, abortable},
    stream::FuturesUnordered,
};
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

mod diff;
mod sample;

use super::{
    PeerRoots, Progress, SyncConfig, SyncError, SyncMode, SyncSummary,
    apply::{self, Answer, Job, Outcome, request_bounds},
    coverage::{Coverage, Sizing, Work},
    peers::{Fault, Peers},
};
use crate::{
    client::{ClientError, Members, PeerId, StatusKind, SyncClient},
    request::{ChangeProofRequest, RangeProofRequest},
};

/// What a request brought back.
enum Fetched {
    /// A verified range proof or an unverified change proof, ready for the applier, with its
    /// size and latency.
    Ready(Job, usize, Duration),
    /// The request failed.
    Failed(Work, PeerId, Fault, String),
    /// The copy was cancelled: another copy of its request answered first.
    Cancelled,
}

/// A request and its copies (see [`Sync::hedge`]), by the id they share.
struct Request {
    work: Work,
    /// The copies still out, by the peer asked (the first request first; a peer has at most
    /// one), each with what cancels it. The request is forgotten once one copy answers (the
    /// others are cancelled then) or the last one fails.
    copies: Vec<(PeerId, AbortHandle)>,
    sent: Instant,
}

/// The least time a request is out before it is hedged: below it, a copy costs more work than
/// it can save time.
const HEDGE_AFTER: Duration = Duration::from_millis(100);

/// In-flight copies of requests, each resolving to its request id, the peer asked and what it
/// brought back.
type InFlight = FuturesUnordered<BoxFuture<'static, (u64, PeerId, Fetched)>>;

/// The state of one sync, owned by its task.
pub(super) struct Sync {
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
    /// Bytes of accepted answers by kind: range proofs (and change-proof requests answered
    /// with one), change proofs, node diffs.
    range_bytes: u64,
    change_bytes: u64,
    diff_bytes: u64,
    /// What the sync is doing now.
    mode: SyncMode,
    accepted: u64,
    rejected: u64,
    /// Answers waiting for the applier.
    ready: Vec<Job>,
    /// Peers that answered that they lack the target, since their last answer at it.
    lagging: std::collections::HashSet<PeerId>,
    /// The older roots peers hold (see `SyncHandle::peer_holds`).
    peer_roots: Option<watch::Receiver<PeerRoots>>,
    /// Requests in flight by id; a hedged request has two copies under one id.
    requests: std::collections::HashMap<u64, Request>,
    next_request: u64,
    /// Requests in flight and answers waiting for the applier allowed in all:
    /// `inflight_bytes / bytes_limit`, at least `workers`. Within it, each peer's own window
    /// (`peers`) decides how many requests it gets.
    budget: usize,
    /// Range-proof verifications allowed at once: one per core. Verification is CPU-bound, and
    /// each concurrent one keeps a blocking thread whose allocator retains its scratch trie's
    /// memory, so more would cost memory and gain nothing.
    verify_slots: Arc<tokio::sync::Semaphore>,
}

/// The applier's task: its outcomes and how long it took.
type Applying = JoinHandle<Result<(Vec<Outcome>, Duration), arbor_merkledb::Error>>;

impl Sync {
    /// A sync of `db` to `target`, starting from what `coverage` says `db` holds.
    pub(super) fn new(
        db: Db,
        client: Arc<dyn SyncClient>,
        peers: Peers,
        coverage: Coverage,
        target: Hash,
        config: SyncConfig,
    ) -> Self {
        let started = Instant::now();
        let budget = config.max_in_flight_requests();
        Self {
            bf: db.branch_factor(),
            db,
            client,
            peers,
            coverage,
            target,
            config,
            started,
            last_accept: started,
            keys: 0,
            bytes: 0,
            range_bytes: 0,
            change_bytes: 0,
            diff_bytes: 0,
            mode: SyncMode::Proofs,
            accepted: 0,
            rejected: 0,
            ready: Vec::new(),
            lagging: std::collections::HashSet::new(),
            peer_roots: None,
            requests: std::collections::HashMap::new(),
            next_request: 0,
            budget,
            verify_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            )),
        }
    }

    /// Runs the sync to its end: `Ok` only when the local root equals the target.
    pub(super) async fn run(
        mut self,
        mut target_rx: watch::Receiver<Hash>,
        mut peer_rx: watch::Receiver<Members>,
        peer_roots: watch::Receiver<PeerRoots>,
        cancel: CancellationToken,
        progress_tx: watch::Sender<Progress>,
    ) -> Result<SyncSummary, SyncError> {
        let mut roots_rx = peer_roots.clone();
        let mut roots_open = true;
        self.peer_roots = Some(peer_roots);
        let mut in_flight: InFlight = FuturesUnordered::new();
        let mut applying: Option<Applying> = None;
        // A dropped manager handle closes the target channel; stop polling it then (a closed
        // channel is always ready and would spin the loop).
        let mut target_open = true;
        let mut peers_open = true;
        self.diff_walk(&mut target_rx, &mut peer_rx, &cancel, &progress_tx)
            .await?;
        loop {
            if cancel.is_cancelled() {
                if let Some(task) = applying.take() {
                    // Let the commit in progress finish: it is atomic either way.
                    let _ = task.await;
                }
                return Err(SyncError::Cancelled);
            }
            let now = Instant::now();
            // (Cancelled copies leave `in_flight` at its next poll.)
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
                Some((id, peer, fetched)) = in_flight.next(), if !in_flight.is_empty() => {
                    self.fetched(id, peer, fetched);
                }
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
                changed = peer_rx.changed(), if peers_open => {
                    if changed.is_ok() {
                        self.peers.update(&peer_rx.borrow_and_update());
                    } else {
                        peers_open = false;
                    }
                }
                changed = roots_rx.changed(), if roots_open => {
                    if changed.is_ok() {
                        roots_rx.borrow_and_update();
                        // A peer paused for lacking the target, whose older root is now known,
                        // is asked for ranges at that root at once (it may have answered before
                        // its announcement arrived).
                        let known: Vec<PeerId> = self
                            .lagging
                            .iter()
                            .copied()
                            .filter(|p| self.held_root(*p).is_some())
                            .collect();
                        for peer in known {
                            self.peers.resume(peer);
                        }
                    } else {
                        roots_open = false;
                    }
                }
                () = cancel.cancelled() => {}
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Starts requests while workers and peers are free and answers are not piling up.
    fn dispatch(&mut self, in_flight: &mut InFlight, now: Instant) {
        // Neither changes inside the loop: regions are split and handed out here, but their
        // tags and what is covered change only when answers are applied.
        let sizing = self.sizing();
        let stale = self.coverage.widest_stale_tag(self.target).is_some();
        // Answers waiting for the applier count against the same budget as requests in flight,
        // not against a count of their own: on a long link answers come in bursts, and stopping
        // requests while a burst is applied would leave the link idle for a whole round trip.
        // The peers' windows decide how many of the budget are used.
        while in_flight.len() + self.ready.len() < self.budget {
            let wanted = self.peers.capacity();
            // Once the first answers show how dense the keys are, unknown regions are no longer
            // spread but handed out a piece at a time, lowest first (`Coverage::take_piece`), so
            // what the replica writes between two flushes is a few contiguous stretches. Regions
            // at an older root (change proofs) still spread.
            if (sizing.density <= 0.0 || stale) && self.coverage.pending(self.target) < wanted {
                // Before any answer shows how dense the keys are, a catch-up (regions at an
                // older root, fetched as change proofs) spreads over `workers` requests only:
                // every request carries boundary proofs, which a sparse change set would pay
                // for many times over. A sync of unknown regions spreads over the whole window:
                // its first requests are what fills a long link.
                let regions = if self.keys == 0 && stale {
                    wanted.min(self.config.workers)
                } else {
                    wanted
                };
                self.coverage.spread(self.target, regions, sizing);
            }
            if self.target == Hash::EMPTY_ROOT {
                // Nothing to fetch: clear whatever is not yet known to be empty.
                let Some(work) = self.coverage.take(self.target) else {
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
                // No idle region: split one in flight before copying a whole request.
                let requests = &self.requests;
                let stealable =
                    |start: &[u8]| requests.values().any(|r| r.work.start.as_slice() == start);
                if sizing.density > 0.0 && self.coverage.steal(self.target, sizing, stealable) {
                    continue;
                }
                self.hedge(in_flight, now);
                return;
            }
            let Some(peer) = self.peers.choose(now) else {
                return;
            };
            let Some(work) = self.coverage.take_piece(self.target, sizing) else {
                self.peers.abandoned(peer);
                return;
            };
            if work.tag.is_some() && self.lagging.contains(&peer) && self.held_root(peer).is_some()
            {
                // The region needs a change proof to the target, which this peer lacks: it is
                // left alone a while, as any peer behind the target is.
                self.coverage.release(&work.start);
                let why = "does not hold the target yet".to_owned();
                self.peers.failed(peer, Fault::Lagging, why, now);
                continue;
            }
            let root = self.root_for(peer, &work);
            let id = self.next_request;
            self.next_request += 1;
            let cancel = self.launch(in_flight, id, peer, work.clone(), root);
            self.requests.insert(
                id,
                Request {
                    work,
                    copies: vec![(peer, cancel)],
                    sent: now,
                },
            );
        }
    }

    /// The root to ask `peer` for `work` at: the target, unless the peer said it lacks it and
    /// holds an older root, and the region is unknown (a range proof at the older root fills it
    /// now; a change proof brings it to the target later).
    fn root_for(&self, peer: PeerId, work: &Work) -> Hash {
        if work.tag.is_some() || !self.lagging.contains(&peer) {
            return self.target;
        }
        self.held_root(peer).unwrap_or(self.target)
    }

    /// The older root `peer` holds, if the sync was told of one other than the target.
    fn held_root(&self, peer: PeerId) -> Option<Hash> {
        let roots = self.peer_roots.as_ref()?;
        let root = *roots.borrow().get(&peer)?;
        (root != self.target).then_some(root)
    }

    /// The tail: every region is being fetched, and a peer that has answered before has room.
    /// An overdue request (out for at least [`HEDGE_AFTER`] and four times the free peer's usual
    /// latency: longer than the free peer would take) is sent to the free peer as well, once;
    /// the first answer is taken and the other copy cancelled. So a stalled or far slower peer
    /// never holds the end of a sync. What the request's own peer usually takes does not count:
    /// a narrow peer given a large window at the start queues requests on its link for seconds,
    /// and waiting for them leaves the free peer idle at the tail.
    fn hedge(&mut self, in_flight: &mut InFlight, now: Instant) {
        while in_flight.len() + self.ready.len() < self.budget {
            let Some(peer) = self.peers.choose(now) else {
                return;
            };
            let Some(free_latency) = self.peers.latency(peer) else {
                self.peers.abandoned(peer);
                return;
            };
            let floor = HEDGE_AFTER.max(free_latency.saturating_mul(4));
            let overdue = |r: &Request| now.saturating_duration_since(r.sent) > floor;
            let slowest = self
                .requests
                .iter()
                .filter(|(_, r)| {
                    matches!(r.copies.as_slice(), [(other, _)] if *other != peer) && overdue(r)
                })
                .min_by_key(|(_, r)| r.sent)
                .map(|(id, _)| *id);
            let Some(id) = slowest else {
                self.peers.abandoned(peer);
                return;
            };
            let Some(mut work) = self.requests.get(&id).map(|r| r.work.clone()) else {
                self.peers.abandoned(peer);
                return;
            };
            // The copy asks for what is left of the region (a steal may have shrunk it).
            if let Some(end) = self.coverage.end_of(&work.start) {
                work.end = end;
            }
            tracing::debug!(peer = %self.client.peers().name(peer), start = ?work.start, "hedging a slow request");
            let cancel = self.launch(in_flight, id, peer, work, self.target);
            if let Some(request) = self.requests.get_mut(&id) {
                request.copies.push((peer, cancel));
            }
        }
    }

    /// Sends one copy of request `id` to `peer`; returns what cancels it.
    fn launch(
        &self,
        in_flight: &mut InFlight,
        id: u64,
        peer: PeerId,
        work: Work,
        root: Hash,
    ) -> AbortHandle {
        let (fetch, cancel) = abortable(self.fetch(peer, work, root));
        in_flight.push(
            fetch
                .map(move |f| (id, peer, f.unwrap_or(Fetched::Cancelled)))
                .boxed(),
        );
        cancel
    }

    /// How wide an answer's worth of keys is: the key limit, and the density of keys over what
    /// the sync has covered (0 before any keys), for regions without a density of their own
    /// ([`Sizing`]). (Keys of an earlier, resumed run are not counted, so the density is
    /// underestimated and splitting errs on the side of more requests.)
    fn sizing(&self) -> Sizing {
        let covered = self.coverage.fraction_at(self.target);
        let density = if self.keys == 0 || covered <= 0.0 {
            0.0
        } else {
            self.keys as f64 / covered
        };
        Sizing {
            answer_keys: f64::from(self.config.key_limit),
            density,
        }
    }

    /// One request to `peer` for `work`, verified (range proofs) on a blocking thread.
    fn fetch(&self, peer: PeerId, work: Work, root: Hash) -> BoxFuture<'static, Fetched> {
        self.fetch_keys(peer, work, root, self.config.key_limit)
    }

    /// [`Sync::fetch`] with a key limit of its own.
    fn fetch_keys(
        &self,
        peer: PeerId,
        work: Work,
        root: Hash,
        key_limit: u32,
    ) -> BoxFuture<'static, Fetched> {
        let (start, end, _) = request_bounds(&work);
        let client = self.client.clone();
        let bytes_limit = self.config.bytes_limit;
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
                    let Ok(slot) = verify_slots.acquire_owned().await else {
                        return Fetched::Failed(work, peer, Fault::Unavailable, "closing".into());
                    };
                    // The slot goes with the verification: a cancelled copy does not free it
                    // while its verification still runs.
                    let verified = tokio::task::spawn_blocking(move || {
                        let _slot = slot;
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

    /// Handles a finished request (the copy of request `id` sent to `peer`).
    fn fetched(&mut self, id: u64, peer: PeerId, fetched: Fetched) {
        let (take, release) = self.settle_copy(id, peer, &fetched);
        match fetched {
            Fetched::Ready(job, bytes, latency) => {
                if let Some(peer) = job.peer {
                    self.peers.succeeded(peer, Instant::now(), latency, bytes);
                    if job.root == self.target {
                        self.lagging.remove(&peer);
                    }
                }
                if take {
                    self.bytes += bytes as u64;
                    match job.answer {
                        Answer::Change(_) => self.change_bytes += bytes as u64,
                        Answer::Range(_) | Answer::Clear => self.range_bytes += bytes as u64,
                    }
                    if let Some(observer) = &self.config.observer {
                        observer.answer(bytes);
                    }
                    self.ready.push(job);
                }
            }
            // Its peer was told when it was cancelled (`settle_copy`).
            Fetched::Cancelled => {}
            Fetched::Failed(work, peer, fault, error) => {
                if self.peers.departed(peer) || !self.client.peers().contains(peer) {
                    // Whatever went wrong, the peer has gone: nothing counts against it. (The
                    // set itself is asked too: a network fails a departed peer's requests at
                    // once, possibly before this task sees the change.)
                    tracing::debug!(peer = %self.client.peers().name(peer), %error, "request to a departed peer ended");
                    self.peers.abandoned(peer);
                } else if fault == Fault::Lagging && self.held_root(peer).is_some() {
                    // It lacks the target but holds an older root: no pause, it is asked for
                    // ranges at that root next (`root_for`).
                    self.lagging.insert(peer);
                    self.peers.abandoned(peer);
                } else {
                    if fault == Fault::Lagging {
                        self.lagging.insert(peer);
                    }
                    // Busy and lagging peers are paused, not blamed (see `Peers::penalize`).
                    tracing::debug!(peer = %self.client.peers().name(peer), %error, ?fault, "request failed");
                    if fault == Fault::Invalid {
                        self.reject();
                    }
                    self.peers.failed(peer, fault, error, Instant::now());
                }
                if release {
                    self.coverage.release(&work.start);
                }
            }
        }
    }

    /// Settles the returned copy of request `id` sent to `peer`: whether to take its answer and
    /// whether a failure gives the region back (only when no other copy is still out). The
    /// first answer is taken; the copies still out then are cancelled, their peers overtaken
    /// and no longer counting them in flight. A cancelled copy finds its request gone.
    fn settle_copy(&mut self, id: u64, peer: PeerId, fetched: &Fetched) -> (bool, bool) {
        let Some(request) = self.requests.get_mut(&id) else {
            return (false, false);
        };
        request.copies.retain(|(p, _)| *p != peer);
        let settled = match fetched {
            Fetched::Ready(..) => {
                // The other copies' answers would be dropped, and until they came they would
                // hold places in the budget and their peers' links.
                for (loser, cancel) in request.copies.drain(..) {
                    cancel.abort();
                    self.peers.overtaken(loser);
                    self.peers.abandoned(loser);
                }
                (true, false)
            }
            Fetched::Failed(..) => (false, request.copies.is_empty()),
            Fetched::Cancelled => (false, false),
        };
        if request.copies.is_empty() {
            self.requests.remove(&id);
        }
        settled
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
        if let Some(observer) = &self.config.observer {
            observer.rejected();
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
                    density,
                    peer,
                } => {
                    self.coverage.complete(&start, &until, root, density);
                    self.keys += keys;
                    if let Some(peer) = peer {
                        self.peers.applied(peer, keys);
                    }
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
        if let Some(observer) = &self.config.observer {
            let answers = self.accepted - accepted_before;
            observer.committed(took, answers, self.keys - keys_before);
        }
    }

    pub(super) fn progress(&self, done: bool) -> Progress {
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
            mode: self.mode,
            range_bytes: self.range_bytes,
            change_bytes: self.change_bytes,
            diff_bytes: self.diff_bytes,
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
        ClientError::Status {
            kind: StatusKind::ResourceExhausted,
            ..
        } => Fault::Busy,
        ClientError::Status {
            kind: StatusKind::NotFound,
            ..
        } => Fault::Lagging,
        ClientError::Status { .. } | ClientError::Transport(_) => Fault::Unavailable,
    }
}
