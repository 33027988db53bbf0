//! The diff walk: catching up a replica whose root no peer keeps in history, by comparing its
//! trie with the target's from the top down (`arbor_merkledb::NodeDiff`).
//!
//! It runs before the proof loop, when the regions not at the target are known at a root that a
//! peer answers it no longer holds (a change-proof request comes back as a range proof), and a
//! sample of the keyspace finds that less than [`sample::FETCH_WHOLE_FROM`] of the keys differ
//! (otherwise the replica is emptied and the proof loop fetches the target whole). The
//! walk keeps a stack of target nodes to compare, each with the ID its parent recorded (the
//! trusted root first), and asks peers for batches of them, sending the replica's own subtrie
//! IDs below each. A verified answer resolves its node:
//!
//! * keys of the parent's child region that lie outside the node's key are deleted;
//! * the node's value is written (or its key deleted);
//! * a child the target lacks has its region cleared; a leaf child replaces its region's keys;
//!   a differing inner child goes on the stack, owning its region; an equal child needs nothing.
//!
//! Everything a resolved node decided is written in one commit together with the coverage map,
//! in which the node's region minus its children still on the stack is marked at the target.
//! So nothing is written before it is verified, a killed walk resumes (a rerun compares again
//! and finds the resolved parts equal), and the proof loop afterwards has nothing left but a
//! check that the local root is the target. On a new target the walk starts again from the new
//! root: what is equal already is skipped at once. Peers that do not serve node diffs (an older
//! Arbor, AvalancheGo) are left to the proof loop; if none does, the sync falls back to range
//! proofs and says so.

use arbor_merkledb::{Key, NodeDiff, NodeQuery, Proposal, VerifiedChild};

use super::*;
use crate::{client::Response, request::NodeDiffRequest};

/// Nodes asked for in one request. An answer holds about 100–600 bytes per node, so a full
/// request stays well under the byte limit, and the stack of a depth-first walk stays small.
const QUERIES_PER_REQUEST: usize = 512;
/// Writes gathered before they are committed, in keys per answer of the proof loop: as a
/// batch of its answers, times four (by default 2048 × 4 × 4 = 32,768).
const COMMIT_ANSWERS: usize = 4;
/// Resolved intervals gathered before they are committed (each is a coverage update; most
/// merge with their neighbours).
const COMMIT_PIECES: usize = 65_536;

/// A target node still to compare: the region its parent's child index spans (every key of the
/// target there lies under the node's key), the node's key (`None`: the root, whose key is not
/// known before it is asked for) and the ID its parent recorded.
#[derive(Clone, Debug)]
struct Pending {
    region: Key,
    path: Option<Key>,
    id: Hash,
    /// The replica may hold keys in `region` (it had a subtrie at that index when the parent
    /// was compared, or this is the root): otherwise nothing there needs deleting.
    replica_had: bool,
}

/// A request in flight: the nodes asked for and the replica's IDs they were asked with.
struct Sent {
    peer: PeerId,
    target: Hash,
    nodes: Vec<Pending>,
    local: Vec<Vec<(u8, Hash)>>,
}

/// What became of a request, decided off the scheduler's task (the replica's IDs read before
/// it is sent, its answer verified and resolved after).
enum Fetched {
    /// Verified and resolved.
    Resolved(Resolved),
    /// The peer's answer was wrong: nothing of it is used.
    Invalid(String),
    /// The request failed.
    Failed(ClientError),
    /// A local read failed.
    Db(arbor_merkledb::Error),
    /// A blocking task failed (a bug): the sync stops.
    Task(String),
}

/// A verified answer, resolved.
struct Resolved {
    /// The writes and finished intervals of its nodes.
    part: Gathered,
    /// Their differing inner children, in key order.
    below: Vec<Pending>,
    /// How many of the nodes asked for were answered (the first ones).
    answered: usize,
    /// The answer's size.
    bytes: usize,
}

/// A finished request: what was sent, what came of it, and the request's round trip.
type DiffAnswer = (Sent, Fetched, Duration);

/// Writes and coverage decided by resolved nodes, waiting for the next commit.
#[derive(Default)]
struct Gathered {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Half-open intervals that hold `root` once `ops` are written.
    pieces: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    root: Option<Hash>,
}

/// The half-open byte range `[lo, hi)` of the keys that start with `prefix` (`hi = None`: +∞).
pub(super) fn prefix_range(prefix: &Key) -> (Vec<u8>, Option<Vec<u8>>) {
    let lo = prefix.as_bytes().to_vec();
    let bits = prefix.bit_len();
    if bits == 0 {
        return (lo, None);
    }
    // Add one at the prefix's last bit, carrying; a byte that overflows is dropped (a shorter
    // key sorts first, so `a4` is the first key after every key starting with `a3 f`).
    let mut hi = lo.clone();
    let used = bits - (hi.len() - 1) * 8;
    let mut add = 1u16 << (8 - used);
    while let Some(last) = hi.last_mut() {
        let sum = u16::from(*last) + add;
        if let Ok(byte) = u8::try_from(sum) {
            *last = byte;
            return (lo, Some(hi));
        }
        hi.pop();
        add = 1;
    }
    (lo, None)
}

/// A verified answer for one node: what was asked (the node, the replica's IDs sent with it),
/// the diff and its verified children.
struct Answered<'a> {
    pending: &'a Pending,
    local: &'a [(u8, Hash)],
    diff: &'a NodeDiff,
    children: &'a [VerifiedChild],
}

/// Resolves a verified node (see the module docs): its writes and finished intervals go to
/// `out`, its differing inner children to `below_out`, in key order.
fn resolve(
    view: &Proposal,
    token_bits: usize,
    answered: &Answered<'_>,
    out: &mut Gathered,
    below_out: &mut Vec<Pending>,
) -> arbor_merkledb::Result<()> {
    let Answered {
        pending,
        local,
        diff,
        children,
    } = *answered;
    let key = &diff.key;
    let (region_lo, region_hi) = prefix_range(&pending.region);
    let (key_lo, key_hi) = prefix_range(key);
    // Only now is the node's key proven (it is in its ID): nothing of the region lies outside.
    // (A region the replica had nothing in needs no reads: it is asked with no IDs, and every
    // local range there is empty.)
    if pending.replica_had {
        apply::deletes_in(view, &region_lo, Some(&key_lo), None, &mut out.ops)?;
        if let Some(key_hi) = &key_hi {
            apply::deletes_in(view, key_hi, region_hi.as_deref(), None, &mut out.ops)?;
        }
    }
    let is_root = pending.path.is_none();
    // Whether the replica had a subtrie below this node at `index` (unknown for the root).
    let had = |index: u8| is_root || local.binary_search_by_key(&index, |(i, _)| *i).is_ok();
    if key.is_whole_bytes() {
        match &diff.value {
            Some(value) => out.ops.push((key.as_bytes().to_vec(), Some(value.clone()))),
            None if pending.replica_had && view.get(key.as_bytes())?.is_some() => {
                out.ops.push((key.as_bytes().to_vec(), None));
            }
            None => {}
        }
    }
    let child_range = |index: u8| prefix_range(&key.child(index, token_bits));
    if pending.path.is_none() {
        // The root is asked for without the replica's IDs (its key was unknown), so an index
        // the target lacks is not reported absent: clear every index that is not a child.
        let mut present = children.iter().map(child_index).peekable();
        for index in (0..1u32 << token_bits).filter_map(|i| u8::try_from(i).ok()) {
            if present.next_if_eq(&index).is_none() {
                let (lo, hi) = child_range(index);
                apply::deletes_in(view, &lo, hi.as_deref(), None, &mut out.ops)?;
            }
        }
    }
    let mut below = Vec::new();
    for child in children {
        match child {
            VerifiedChild::Absent { index } => {
                let (lo, hi) = child_range(*index);
                apply::deletes_in(view, &lo, hi.as_deref(), None, &mut out.ops)?;
            }
            VerifiedChild::Leaf { index, key, value } => {
                if had(*index) {
                    let (lo, hi) = child_range(*index);
                    apply::deletes_in(
                        view,
                        &lo,
                        hi.as_deref(),
                        Some(key.as_bytes()),
                        &mut out.ops,
                    )?;
                }
                out.ops.push((key.as_bytes().to_vec(), Some(value.clone())));
            }
            VerifiedChild::Node {
                index,
                key: path,
                id,
            } => below.push(Pending {
                region: key.child(*index, token_bits),
                path: Some(path.clone()),
                id: *id,
                replica_had: had(*index),
            }),
        }
    }
    // The region is finished but for the children still to compare.
    let mut cursor = Some(region_lo);
    for child in &below {
        let (lo, hi) = prefix_range(&child.region);
        if let Some(from) = cursor.take() {
            if from < lo {
                out.pieces.push((from, Some(lo)));
            }
        }
        cursor = hi;
    }
    if let Some(from) = cursor {
        if region_hi.as_ref().is_none_or(|hi| from < *hi) {
            out.pieces.push((from, region_hi));
        }
    }
    below_out.extend(below);
    Ok(())
}

fn child_index(child: &VerifiedChild) -> u8 {
    match child {
        VerifiedChild::Absent { index }
        | VerifiedChild::Leaf { index, .. }
        | VerifiedChild::Node { index, .. } => *index,
    }
}

impl Sync {
    /// Whether the walk is worth running: the regions not at the target are known at a root
    /// `from` that a peer says it no longer holds (a change proof from it comes back as a range
    /// proof). Returns that root.
    async fn diff_needed(
        &mut self,
        peer_rx: &mut watch::Receiver<Members>,
        cancel: &CancellationToken,
    ) -> Result<Option<Hash>, SyncError> {
        if self.target == Hash::EMPTY_ROOT || self.db.root()? == Hash::EMPTY_ROOT {
            return Ok(None);
        }
        let Some(from) = self.coverage.widest_stale_tag(self.target) else {
            return Ok(None);
        };

        // A few tries: a peer that cannot say leaves the question to the proof loop, which asks
        // for change proofs anyway (answered with range proofs beyond history).
        let started = Instant::now();
        let mut tries = 0;
        while started.elapsed() < self.config.stall_timeout
            && !cancel.is_cancelled()
            && tries < 2 * self.peers.present().max(1)
        {
            let now = Instant::now();
            let Some(peer) = self.peers.choose(now) else {
                // No peer yet (they may join later), or all backing off.
                let wake = self
                    .peers
                    .next_ready(now)
                    .unwrap_or(now + Duration::from_millis(100));
                tokio::select! {
                    () = tokio::time::sleep_until(wake.into()) => {}
                    changed = peer_rx.changed() => {
                        if changed.is_err() {
                            return Ok(None);
                        }
                        self.peers.update(&peer_rx.borrow_and_update());
                    }
                    () = cancel.cancelled() => {}
                }
                continue;
            };
            tries += 1;
            let request = ChangeProofRequest {
                start_root: from,
                end_root: self.target,
                start: None,
                end: None,
                key_limit: 1,
                bytes_limit: self.config.bytes_limit,
            };
            let answer = tokio::time::timeout(
                self.config.request_timeout,
                self.client.change_proof(peer, request),
            )
            .await;
            match answer {
                Ok(Ok(response)) => {
                    self.peers
                        .succeeded(peer, Instant::now(), now.elapsed(), response.bytes);
                    let bytes = response.bytes as u64;
                    self.bytes += bytes;
                    return Ok(match response.answer {
                        ChangeOrRangeProof::Change(_) => {
                            self.change_bytes += bytes;
                            None
                        }
                        ChangeOrRangeProof::Range(_) => {
                            self.range_bytes += bytes;
                            Some(from)
                        }
                    });
                }
                Ok(Err(error)) => {
                    self.peers
                        .failed(peer, fault_of(&error), error.to_string(), Instant::now());
                }
                Err(_) => {
                    let error = format!("no answer within {:?}", self.config.request_timeout);
                    self.peers
                        .failed(peer, Fault::Unavailable, error, Instant::now());
                }
            }
        }
        Ok(None)
    }

    /// Runs the diff walk when it is needed (see the module docs).
    pub(super) async fn diff_walk(
        &mut self,
        target_rx: &mut watch::Receiver<Hash>,
        peer_rx: &mut watch::Receiver<Members>,
        cancel: &CancellationToken,
        progress_tx: &watch::Sender<Progress>,
    ) -> Result<(), SyncError> {
        let Some(from) = self.diff_needed(peer_rx, cancel).await? else {
            return Ok(());
        };
        if let Some(share) = self.sample_difference(peer_rx, cancel).await? {
            if share >= sample::FETCH_WHOLE_FROM {
                tracing::info!(
                    %from,
                    target = %self.target,
                    differing = format!("{:.0}%", share * 100.0),
                    "no peer holds the replica's root in history, and most keys differ: emptying the replica and fetching the target whole"
                );
                apply::reset(&self.db)?;
                self.coverage = Coverage::whole(None);
                return Ok(());
            }
            tracing::debug!(
                differing = format!("{:.1}%", share * 100.0),
                "sampled the target"
            );
        }
        tracing::info!(%from, target = %self.target, "no peer holds the replica's root in history: comparing tries");
        self.mode = SyncMode::Diff;
        let result = self.walk(target_rx, peer_rx, cancel, progress_tx).await;
        self.mode = SyncMode::Proofs;
        result
    }

    async fn walk(
        &mut self,
        target_rx: &mut watch::Receiver<Hash>,
        peer_rx: &mut watch::Receiver<Members>,
        cancel: &CancellationToken,
        progress_tx: &watch::Sender<Progress>,
    ) -> Result<(), SyncError> {
        let root_of = |target: Hash| Pending {
            region: Key::from_bytes(&[]),
            path: None,
            id: target,
            replica_had: true,
        };
        let mut stack = vec![root_of(self.target)];
        let mut in_flight: FuturesUnordered<BoxFuture<'static, DiffAnswer>> =
            FuturesUnordered::new();
        let mut gathered = Gathered::default();
        // The commit in progress (one at a time, beside the walk: it writes only regions the walk
        // has finished with), resolving to the coverage it persisted.
        let mut committing: Option<Committing> = None;
        let mut unsupported = std::collections::HashSet::new();
        let mut target_open = true;
        let mut peers_open = true;
        loop {
            if cancel.is_cancelled() {
                // Let the commit in progress finish: it is atomic either way.
                self.finish_commit(&mut committing).await?;
                return Err(SyncError::Cancelled);
            }
            let now = Instant::now();
            if stack.is_empty() && in_flight.is_empty() {
                self.start_commit(&mut gathered, &mut committing).await?;
                self.finish_commit(&mut committing).await?;
                return Ok(());
            }
            if now.duration_since(self.last_accept) > self.config.stall_timeout {
                return Err(SyncError::Stalled {
                    waited: now.duration_since(self.last_accept),
                    peers: self.peers.stats(),
                });
            }
            // Dispatch.
            while !stack.is_empty() && in_flight.len() < self.peers.capacity().max(1) {
                let Some(peer) = self.peers.choose(now) else {
                    break;
                };
                if unsupported.contains(&peer) {
                    let why = "does not serve node diffs".to_owned();
                    self.peers.failed(peer, Fault::Lagging, why, now);
                    if unsupported.len() >= self.peers.present() {
                        break;
                    }
                    continue;
                }
                let nodes = stack.split_off(stack.len().saturating_sub(QUERIES_PER_REQUEST));
                let nodes: Vec<Pending> = nodes.into_iter().rev().collect();
                in_flight.push(
                    fetch_nodes(
                        self.db.clone(),
                        self.client.clone(),
                        peer,
                        self.target,
                        nodes,
                        self.config.bytes_limit,
                        self.config.request_timeout,
                    )
                    .boxed(),
                );
            }
            if in_flight.is_empty()
                && !stack.is_empty()
                && unsupported.len() >= self.peers.present()
            {
                if unsupported.is_empty() {
                    // No peer at all yet: wait for one below.
                } else {
                    self.start_commit(&mut gathered, &mut committing).await?;
                    self.finish_commit(&mut committing).await?;
                    tracing::warn!(
                        "no peer serves node diffs (AvalancheGo and older Arbor servers do not): fetching what changed with range proofs"
                    );
                    return Ok(());
                }
            }
            let commit_ops =
                self.config.key_limit as usize * self.config.max_batch * COMMIT_ANSWERS;
            if gathered.ops.len() >= commit_ops || gathered.pieces.len() >= COMMIT_PIECES {
                self.start_commit(&mut gathered, &mut committing).await?;
            }
            progress_tx.send_replace(self.progress(false));
            let wake = self
                .peers
                .next_ready(now)
                .unwrap_or(now + Duration::from_secs(1))
                .min(self.last_accept + self.config.stall_timeout + Duration::from_millis(1));
            tokio::select! {
                Some((sent, fetched, latency)) = in_flight.next(), if !in_flight.is_empty() => {
                    if sent.target != self.target {
                        // Asked at an earlier target: the walk has started again.
                        self.peers.abandoned(sent.peer);
                        continue;
                    }
                    match fetched {
                        Fetched::Resolved(resolved) => {
                            self.peers.succeeded(sent.peer, Instant::now(), latency, resolved.bytes);
                            self.take_resolved(&sent, resolved, &mut gathered, &mut stack);
                        }
                        Fetched::Invalid(error) => {
                            tracing::debug!(peer = %self.client.peers().name(sent.peer), %error, "node diff rejected");
                            self.reject();
                            self.peers.failed(sent.peer, Fault::Invalid, error, Instant::now());
                            stack.extend(sent.nodes.into_iter().rev());
                        }
                        Fetched::Db(error) => return Err(error.into()),
                        Fetched::Task(error) => return Err(SyncError::Task(error)),
                        Fetched::Failed(error) => {
                            let unsupported_kind = matches!(
                                &error,
                                ClientError::Status { kind: StatusKind::Unimplemented | StatusKind::InvalidArgument, .. }
                            );
                            if unsupported_kind {
                                unsupported.insert(sent.peer);
                                self.peers.abandoned(sent.peer);
                            } else {
                                self.peers.failed(sent.peer, fault_of(&error), error.to_string(), Instant::now());
                            }
                            stack.extend(sent.nodes.into_iter().rev());
                        }
                    }
                }
                done = async { committing.as_mut().expect("guarded").await }, if committing.is_some() => {
                    committing = None;
                    // The coverage it persisted: progress shows what is done.
                    self.coverage = done.map_err(|e| SyncError::Task(e.to_string()))??;
                }
                changed = target_rx.changed(), if target_open => {
                    if changed.is_ok() {
                        let target = *target_rx.borrow_and_update();
                        if target != self.target {
                            self.start_commit(&mut gathered, &mut committing).await?;
                            self.target = target;
                            tracing::info!(target = %self.target, "sync target updated: comparing again from the new root");
                            stack = vec![root_of(target)];
                            if target == Hash::EMPTY_ROOT {
                                return Ok(());
                            }
                        }
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
                () = cancel.cancelled() => {}
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Takes a resolved answer: its writes and finished intervals join the next commit, the
    /// nodes it did not answer go back on the stack, then its differing children (asked next).
    fn take_resolved(
        &mut self,
        sent: &Sent,
        resolved: Resolved,
        gathered: &mut Gathered,
        stack: &mut Vec<Pending>,
    ) {
        let Resolved {
            part,
            below,
            answered,
            bytes,
        } = resolved;
        // Never mixed: answers at an earlier target are dropped before this, and a commit starts
        // before a retarget restarts the walk.
        debug_assert!(gathered.root.is_none_or(|r| r == sent.target));
        self.keys += part.ops.len() as u64;
        gathered.ops.extend(part.ops);
        gathered.pieces.extend(part.pieces);
        gathered.root = Some(sent.target);
        // The unanswered nodes go back first, so the answered ones' children are asked next.
        stack.extend(sent.nodes[answered..].iter().rev().cloned());
        stack.extend(below.into_iter().rev());
        self.bytes += bytes as u64;
        self.diff_bytes += bytes as u64;
        self.accepted += 1;
        self.last_accept = Instant::now();
        if let Some(observer) = &self.config.observer {
            observer.answer(bytes);
        }
    }

    /// Starts committing the gathered writes with the coverage they complete, once the commit
    /// in progress (if any) has finished.
    async fn start_commit(
        &mut self,
        gathered: &mut Gathered,
        committing: &mut Option<Committing>,
    ) -> Result<(), SyncError> {
        self.finish_commit(committing).await?;
        let Some(root) = gathered.root else {
            return Ok(());
        };
        let gathered = std::mem::take(gathered);
        let mut coverage = self.coverage.clone();
        for (lo, hi) in &gathered.pieces {
            coverage.mark(lo, hi.as_deref(), root);
        }
        let db = self.db.clone();
        let ops = gathered.ops;
        *committing = Some(tokio::task::spawn_blocking(move || {
            apply::commit_with_coverage(&db, ops, &coverage).map(|()| coverage)
        }));
        Ok(())
    }

    /// Waits for the commit in progress; its coverage becomes the sync's.
    async fn finish_commit(
        &mut self,
        committing: &mut Option<Committing>,
    ) -> Result<(), SyncError> {
        if let Some(task) = committing.take() {
            self.coverage = task.await.map_err(|e| SyncError::Task(e.to_string()))??;
        }
        Ok(())
    }
}

/// One request for `nodes` at `target`, on blocking threads but for the network: the replica's
/// IDs below each node are read, the request sent, and its answer verified and resolved.
async fn fetch_nodes(
    db: Db,
    client: Arc<dyn SyncClient>,
    peer: PeerId,
    target: Hash,
    nodes: Vec<Pending>,
    bytes_limit: u32,
    timeout: Duration,
) -> DiffAnswer {
    let paths: Vec<Key> = nodes.iter().filter_map(|p| p.path.clone()).collect();
    let reader = db.clone();
    let known = tokio::task::spawn_blocking(move || reader.subtries_below(&paths)).await;
    let mut sent = Sent {
        peer,
        target,
        nodes,
        local: Vec::new(),
    };
    let mut known = match known {
        Ok(Ok(known)) => known.into_iter(),
        Ok(Err(error)) => return (sent, Fetched::Db(error), Duration::ZERO),
        Err(error) => return (sent, Fetched::Task(error.to_string()), Duration::ZERO),
    };
    // The root is asked for without IDs: its key is not known yet.
    sent.local = sent
        .nodes
        .iter()
        .map(|p| match p.path {
            Some(_) => known.next().unwrap_or_default(),
            None => Vec::new(),
        })
        .collect();
    let request = NodeDiffRequest {
        root: target,
        queries: sent
            .nodes
            .iter()
            .zip(&sent.local)
            .map(|(p, local)| NodeQuery {
                path: p.path.clone(),
                local: local.clone(),
            })
            .collect(),
        bytes_limit,
    };
    let at = Instant::now();
    let answer = match tokio::time::timeout(timeout, client.node_diff(peer, request)).await {
        Ok(answer) => answer,
        Err(_) => Err(ClientError::Transport(format!(
            "no answer within {timeout:?}"
        ))),
    };
    let latency = at.elapsed();
    let response = match answer {
        Ok(response) => response,
        Err(error) => return (sent, Fetched::Failed(error), latency),
    };
    let resolved = tokio::task::spawn_blocking(move || {
        let fetched = resolve_answer(&db, &sent, response, bytes_limit);
        (sent, fetched)
    })
    .await;
    match resolved {
        Ok((sent, fetched)) => (sent, fetched, latency),
        Err(error) => {
            let sent = Sent {
                peer,
                target,
                nodes: Vec::new(),
                local: Vec::new(),
            };
            (sent, Fetched::Task(error.to_string()), latency)
        }
    }
}

/// Verifies an answer and resolves its nodes. Nothing of an answer with one bad node is used.
fn resolve_answer(
    db: &Db,
    sent: &Sent,
    response: Response<Vec<NodeDiff>>,
    bytes_limit: u32,
) -> Fetched {
    let diffs = response.answer;
    if response.bytes > bytes_limit as usize {
        return Fetched::Invalid(format!(
            "answer of {} bytes exceeds the limit of {bytes_limit}",
            response.bytes
        ));
    }
    if diffs.is_empty() || diffs.len() > sent.nodes.len() {
        return Fetched::Invalid(format!(
            "{} node diffs for {} queries",
            diffs.len(),
            sent.nodes.len()
        ));
    }
    let bf = db.branch_factor();
    let mut verified = Vec::with_capacity(diffs.len());
    for ((diff, pending), local) in diffs.iter().zip(&sent.nodes).zip(&sent.local) {
        match diff.verify(pending.path.as_ref(), pending.id, local, bf) {
            Ok(children) => verified.push(children),
            Err(error) => return Fetched::Invalid(format!("node diff: {error}")),
        }
    }
    // The local reads are made on a view, which a commit of the walk's earlier writes
    // (running beside it, in other regions) invalidates: then they are made again.
    let mut attempts = 0;
    loop {
        let view = match db.view() {
            Ok(view) => view,
            Err(error) => return Fetched::Db(error),
        };
        let mut part = Gathered::default();
        let mut below = Vec::new();
        let resolved = diffs
            .iter()
            .zip(&sent.nodes)
            .zip(&sent.local)
            .zip(&verified)
            .try_for_each(|(((diff, pending), local), children)| {
                let answered = Answered {
                    pending,
                    local,
                    diff,
                    children,
                };
                resolve(&view, bf.token_bits(), &answered, &mut part, &mut below)
            });
        match resolved {
            Ok(()) => {
                return Fetched::Resolved(Resolved {
                    part,
                    below,
                    answered: diffs.len(),
                    bytes: response.bytes,
                });
            }
            Err(arbor_merkledb::Error::Invalid) if attempts < 16 => attempts += 1,
            Err(error) => return Fetched::Db(error),
        }
    }
}

/// A commit of the walk's writes, resolving to the coverage map it persisted.
type Committing = JoinHandle<Result<Coverage, arbor_merkledb::Error>>;

#[cfg(test)]
mod tests {
    use super::prefix_range;
    use arbor_merkledb::Key;

    #[test]
    fn prefix_ranges_hold_exactly_the_keys_under_the_prefix() {
        let key = |bytes: &[u8], bits: usize| Key::from_bits(bytes, bits).expect("key");
        assert_eq!(prefix_range(&key(&[], 0)), (vec![], None));
        assert_eq!(
            prefix_range(&key(&[0xa3, 0x50], 12)),
            (vec![0xa3, 0x50], Some(vec![0xa3, 0x60]))
        );
        assert_eq!(
            prefix_range(&key(&[0xa3, 0xf0], 12)),
            (vec![0xa3, 0xf0], Some(vec![0xa4]))
        );
        assert_eq!(
            prefix_range(&key(&[0xa3], 8)),
            (vec![0xa3], Some(vec![0xa4]))
        );
        assert_eq!(
            prefix_range(&key(&[0xff, 0xf0], 12)),
            (vec![0xff, 0xf0], None)
        );
        assert_eq!(prefix_range(&key(&[0x80], 1)), (vec![0x80], None));
        assert_eq!(
            prefix_range(&key(&[0x00], 1)),
            (vec![0x00], Some(vec![0x80]))
        );
        // Every byte string of up to two bytes lies in the range exactly when it has the prefix.
        for (bytes, bits) in [
            (vec![0xa3, 0x50], 12),
            (vec![0xa3, 0xf0], 12),
            (vec![0x40], 2),
        ] {
            let prefix = key(&bytes, bits);
            let (lo, hi) = prefix_range(&prefix);
            let mut strings: Vec<Vec<u8>> = (0..=255u8).map(|a| vec![a]).collect();
            for a in 0..=255u8 {
                for b in (0..=255u8).step_by(7) {
                    strings.push(vec![a, b]);
                }
            }
            for s in strings {
                let inside = s >= lo && hi.as_ref().is_none_or(|h| s < *h);
                assert_eq!(inside, Key::from_bytes(&s).has_prefix(&prefix), "{s:02x?}");
            }
        }
    }
}
