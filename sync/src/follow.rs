//! Follow mode: take the target from the roots peers announce, and keep retargeting.
//!
//! Here the operator chooses to trust the peers' announcements (`--follow`); the proofs are
//! still verified against each announced root. The newest root is the one with the highest
//! commit number seen from any peer. A sync ends when the local root equals the newest root and
//! no newer one has been announced for a quiet period — or never, when following live.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use arbor_merkledb::{Db, Hash};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    client::{Announcement, PeerId, SyncClient},
    manager::{PeerStats, Progress, SyncConfig, SyncError, SyncManager, SyncSummary},
};

/// Follow-mode settings.
#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// Finish once synced and no newer root has come for this long.
    pub quiet: Duration,
    /// Never finish: keep following new roots.
    pub live: bool,
    /// Pause before resubscribing to a peer whose stream failed or ended.
    pub resubscribe: Duration,
}

impl Default for FollowConfig {
    fn default() -> Self {
        Self {
            quiet: Duration::from_secs(2),
            live: false,
            resubscribe: Duration::from_millis(500),
        }
    }
}

/// What the earlier managers of one follow did, added to each later manager's own figures, so
/// the follow's figures (per peer too) count everything since it started.
struct Totals {
    started: std::time::Instant,
    keys: u64,
    bytes: u64,
    range_bytes: u64,
    change_bytes: u64,
    diff_bytes: u64,
    accepted: u64,
    rejected: u64,
    /// Per peer id (one client, whose ids are never reused): the counters of earlier managers.
    peers: BTreeMap<PeerId, PeerStats>,
}

impl Totals {
    fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
            keys: 0,
            bytes: 0,
            range_bytes: 0,
            change_bytes: 0,
            diff_bytes: 0,
            accepted: 0,
            rejected: 0,
            peers: BTreeMap::new(),
        }
    }

    /// Turns a manager's own figures into the follow's.
    fn adjust(&self, p: &mut Progress) {
        p.keys += self.keys;
        p.bytes += self.bytes;
        p.range_bytes += self.range_bytes;
        p.change_bytes += self.change_bytes;
        p.diff_bytes += self.diff_bytes;
        p.proofs_accepted += self.accepted;
        p.proofs_rejected += self.rejected;
        p.elapsed = self.started.elapsed();
        for peer in &mut p.peers {
            let Some(earlier) = self.peers.get(&peer.id) else {
                continue;
            };
            peer.answers += earlier.answers;
            peer.failures += earlier.failures;
            peer.invalid += earlier.invalid;
            peer.overtaken += earlier.overtaken;
            peer.bytes += earlier.bytes;
            peer.keys += earlier.keys;
            peer.goodput_bytes_per_sec = peer.bytes as f64 / p.elapsed.as_secs_f64().max(1e-3);
            if peer.last_error.is_none() {
                peer.last_error.clone_from(&earlier.last_error);
            }
            if peer.latency_ms.is_none() {
                peer.latency_ms = earlier.latency_ms;
            }
        }
        // Peers that left before this manager started keep their share.
        let present: HashSet<PeerId> = p.peers.iter().map(|peer| peer.id).collect();
        p.peers.extend(
            self.peers
                .values()
                .filter(|earlier| !present.contains(&earlier.id))
                .map(|earlier| PeerStats {
                    departed: true,
                    in_flight: 0,
                    ..earlier.clone()
                }),
        );
        p.peers.sort_by_key(|peer| peer.id);
    }

    /// Adds a finished manager's own figures.
    fn absorb(&mut self, own: &Progress) {
        self.keys += own.keys;
        self.bytes += own.bytes;
        self.range_bytes += own.range_bytes;
        self.change_bytes += own.change_bytes;
        self.diff_bytes += own.diff_bytes;
        self.accepted += own.proofs_accepted;
        self.rejected += own.proofs_rejected;
        let mut merged = own.clone();
        self.adjust(&mut merged);
        self.peers = merged
            .peers
            .into_iter()
            .map(|peer| (peer.id, peer))
            .collect();
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Subscribes to the announcements of every peer, present and joining; resubscribes after
/// failures while the peer is a member, until the receiver is dropped.
fn subscribe_all(
    client: &Arc<dyn SyncClient>,
    resubscribe: Duration,
) -> mpsc::Receiver<(PeerId, Announcement)> {
    let (tx, rx) = mpsc::channel(256);
    let mut members = client.peers().subscribe();
    let client = client.clone();
    tokio::spawn(async move {
        let mut watched = HashSet::new();
        loop {
            let joined: Vec<PeerId> = members
                .borrow_and_update()
                .keys()
                .copied()
                .filter(|peer| watched.insert(*peer))
                .collect();
            for peer in joined {
                tokio::spawn(watch_peer(client.clone(), peer, tx.clone(), resubscribe));
            }
            tokio::select! {
                changed = members.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
        }
    });
    rx
}

/// Forwards one peer's announcements to `tx` while it is a member and `tx` is open.
async fn watch_peer(
    client: Arc<dyn SyncClient>,
    peer: PeerId,
    tx: mpsc::Sender<(PeerId, Announcement)>,
    resubscribe: Duration,
) {
    while !tx.is_closed() && client.peers().contains(peer) {
        let mut stream = client.watch_roots(peer);
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(announcement)) => {
                        if tx.send((peer, announcement)).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::debug!(peer = %client.peers().name(peer), %error, "root stream failed");
                        break;
                    }
                    None => break,
                },
                () = tx.closed() => return,
            }
        }
        tokio::time::sleep(resubscribe).await;
    }
}

/// Syncs `db` to the newest root its peers announce, retargeting as new roots arrive; see the
/// module docs for when it finishes. Progress of the current sync is sent to `progress`;
/// cancelling `cancel` stops it. Keys and bytes in the summary add up every retarget.
pub async fn follow(
    db: Db,
    client: Arc<dyn SyncClient>,
    config: SyncConfig,
    follow: FollowConfig,
    progress: watch::Sender<Option<Progress>>,
    cancel: CancellationToken,
) -> Result<SyncSummary, SyncError> {
    let mut announcements = subscribe_all(&client, follow.resubscribe);
    let first = tokio::select! {
        first = tokio::time::timeout(config.stall_timeout, announcements.recv()) => first,
        () = cancel.cancelled() => return Err(SyncError::Cancelled),
    };
    // The newest root each peer announced: a peer behind the target still serves ranges at it.
    let mut held: BTreeMap<PeerId, Hash> = BTreeMap::new();
    let mut newest = match first {
        Ok(Some((peer, a))) => {
            held.insert(peer, a.root);
            a
        }
        _ => {
            return Err(SyncError::Stalled {
                waited: config.stall_timeout,
                peers: Vec::new(),
            });
        }
    };
    let mut totals = Totals::new();
    loop {
        let manager = SyncManager::start(db.clone(), client.clone(), newest.root, config.clone())?;
        let handle = manager.handle();
        for (peer, root) in &held {
            handle.peer_holds(*peer, *root);
        }
        let mut updates = manager.progress();
        let wait = manager.wait();
        tokio::pin!(wait);
        let mut cancelling = false;
        let result = loop {
            tokio::select! {
                result = &mut wait => break result,
                Some((peer, a)) = announcements.recv() => {
                    if a.seq > newest.seq {
                        newest = a;
                        handle.update_target(a.root);
                    }
                    held.insert(peer, a.root);
                    handle.peer_holds(peer, a.root);
                }
                Ok(()) = updates.changed() => {
                    let mut p = updates.borrow_and_update().clone();
                    totals.adjust(&mut p);
                    p.done = false;
                    progress.send_replace(Some(p));
                }
                () = cancel.cancelled(), if !cancelling => {
                    cancelling = true;
                    handle.cancel();
                }
            }
        };
        let own = result?;
        let mut summary = own.clone();
        totals.adjust(&mut summary);
        totals.absorb(&own);
        // Drain what arrived while finishing.
        while let Ok((peer, a)) = announcements.try_recv() {
            held.insert(peer, a.root);
            if a.seq > newest.seq {
                newest = a;
            }
        }
        if newest.root != summary.target {
            continue;
        }
        progress.send_replace(Some(summary.clone()));
        let deadline = (!follow.live).then(|| tokio::time::Instant::now() + follow.quiet);
        let newer = loop {
            tokio::select! {
                a = announcements.recv() => match a {
                    Some((peer, a)) => {
                        held.insert(peer, a.root);
                        if a.seq > newest.seq {
                            break Some(a);
                        }
                    }
                    None => break None,
                },
                () = sleep_until_some(deadline) => break None,
                () = cancel.cancelled() => return Err(SyncError::Cancelled),
            }
        };
        match newer {
            Some(a) => newest = a,
            None => return Ok(summary),
        }
    }
}

#[cfg(test)]
mod tests;
