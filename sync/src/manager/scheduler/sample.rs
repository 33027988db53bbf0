//! How much of the replica differs from the target, estimated before a catch-up beyond history
//! commits to the diff walk.
//!
//! The walk's cost follows what changed: every differing key goes through the commit path of a
//! trie that already holds the replica's state, several times slower per key than writing into
//! an empty trie as a fresh sync does. When most keys differ, emptying the replica
//! (`Db::reset_with_meta`, one range deletion per space) and fetching the target whole with
//! range proofs is faster, for at most the bytes of a fresh sync.
//!
//! The estimate reads [`WINDOWS`] windows of the target, spread evenly over the keyspace (range
//! proofs of [`WINDOW_KEYS`] keys each, verified against the target), and compares each with the
//! replica's keys in the same bounds: the share of keys, of those in either trie, that are
//! missing from one side or hold another value.

use arbor_merkledb::{KeyValue, RangeProof};

use super::*;

/// Windows sampled. With [`WINDOW_KEYS`], 512 keys: the estimate's standard error is at most
/// 2.2 points when changes are spread, and the sample costs one round trip and about 70 KB
/// (half of it the windows' boundary proofs).
const WINDOWS: usize = 8;
/// Keys per window.
const WINDOW_KEYS: u32 = 64;
/// At this share of differing keys and above, the replica is emptied and the target fetched
/// whole. Below it the walk moves fewer bytes; above it, it moves over 60% of a full sync's
/// bytes and takes several times as long (every change through the commit path of a loaded
/// trie), so fetching whole costs at most 1.6× its bytes for a fraction of its time.
pub(super) const FETCH_WHOLE_FROM: f64 = 0.4;

/// The start of window `i` of [`WINDOWS`]: evenly spaced 8-byte keys, offset by the target's
/// hash so that each target samples other keys.
fn window_start(target: &Hash, i: usize) -> Vec<u8> {
    let stride = u64::MAX / WINDOWS as u64;
    let mut head = [0u8; 8];
    head.copy_from_slice(&target.as_bytes()[..8]);
    let offset = u64::from_be_bytes(head) % stride;
    (i as u64 * stride + offset).to_be_bytes().to_vec()
}

/// Compares a window of the target (`target`, sorted) with the replica's keys in the same bounds
/// (`local`, sorted): `(differing, in either)`.
fn compare(local: &[(Vec<u8>, Vec<u8>)], target: &[KeyValue]) -> (u64, u64) {
    let (mut differing, mut either) = (0, 0);
    let mut local = local.iter().peekable();
    let mut target = target.iter().peekable();
    loop {
        let order = match (local.peek(), target.peek()) {
            (None, None) => return (differing, either),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((key, _)), Some(kv)) => key.as_slice().cmp(kv.key.as_slice()),
        };
        either += 1;
        match order {
            std::cmp::Ordering::Less => {
                local.next();
                differing += 1;
            }
            std::cmp::Ordering::Greater => {
                target.next();
                differing += 1;
            }
            std::cmp::Ordering::Equal => {
                let same = matches!(
                    (local.next(), target.next()),
                    (Some((_, value)), Some(kv)) if *value == kv.value
                );
                differing += u64::from(!same);
            }
        }
    }
}

impl Sync {
    /// The share of keys that differ between the replica and the target (see the module
    /// docs), or `None` when too few windows were answered to say.
    pub(super) async fn sample_difference(
        &mut self,
        peer_rx: &mut watch::Receiver<Members>,
        cancel: &CancellationToken,
    ) -> Result<Option<f64>, SyncError> {
        let key_limit = WINDOW_KEYS.min(self.config.key_limit);
        let mut unasked: Vec<usize> = (0..WINDOWS).rev().collect();
        let mut in_flight = FuturesUnordered::new();
        let mut answered = Vec::new();
        // A window whose answer failed is asked again (another peer, if the scheduler picks
        // one), within twice as many requests as windows in all.
        let mut requests_left = 2 * WINDOWS;
        let started = Instant::now();
        while !cancel.is_cancelled()
            && started.elapsed() < self.config.stall_timeout
            && (!unasked.is_empty() || !in_flight.is_empty())
        {
            let now = Instant::now();
            while let Some(&i) = unasked.last() {
                if requests_left == 0 {
                    unasked.clear();
                    break;
                }
                let Some(peer) = self.peers.choose(now) else {
                    break;
                };
                unasked.pop();
                requests_left -= 1;
                let work = Work {
                    start: window_start(&self.target, i),
                    end: None,
                    tag: None,
                };
                let answer = self.fetch_keys(peer, work, self.target, key_limit);
                in_flight.push(answer.map(move |fetched| (i, fetched)));
            }
            let wake = self
                .peers
                .next_ready(now)
                .unwrap_or(now + Duration::from_millis(100));
            tokio::select! {
                Some((i, fetched)) = in_flight.next(), if !in_flight.is_empty() => {
                    match fetched {
                        Fetched::Ready(Job { work, answer: Answer::Range(proof), peer: Some(peer), .. }, bytes, latency) => {
                            self.peers.succeeded(peer, Instant::now(), latency, bytes);
                            self.bytes += bytes as u64;
                            self.range_bytes += bytes as u64;
                            answered.push((work.start, proof));
                        }
                        Fetched::Failed(_, peer, fault, error) => {
                            if fault == Fault::Invalid {
                                self.reject();
                            }
                            self.peers.failed(peer, fault, error, Instant::now());
                            unasked.push(i);
                        }
                        // A range request brings back a verified range proof from the peer
                        // asked, or fails; nothing here cancels it.
                        Fetched::Ready(..) | Fetched::Cancelled => unasked.push(i),
                    }
                }
                changed = peer_rx.changed(), if in_flight.is_empty() => {
                    if changed.is_err() {
                        break;
                    }
                    self.peers.update(&peer_rx.borrow_and_update());
                }
                () = tokio::time::sleep_until(wake.into()), if in_flight.is_empty() => {}
                () = cancel.cancelled() => {}
            }
        }
        if answered.len() < WINDOWS / 2 {
            return Ok(None);
        }
        let view = self.db.view()?;
        let (mut differing, mut either) = (0, 0);
        for (start, proof) in &answered {
            let local = local_window(&view, start, proof, key_limit)?;
            let (d, e) = compare(&local, &proof.key_values);
            differing += d;
            either += e;
        }
        Ok((either > 0).then(|| differing as f64 / either as f64))
    }
}

/// The replica's key-values in the bounds a verified window proves: from `start` to its last
/// key, or to the end of the keyspace when it holds none (then at most `limit` of them).
fn local_window(
    view: &arbor_merkledb::Proposal,
    start: &[u8],
    proof: &RangeProof,
    limit: u32,
) -> arbor_merkledb::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    match proof.key_values.last() {
        Some(last) => view.range(start, Some(&last.key), usize::MAX),
        None => view.range(start, None, limit as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &[u8], value: &[u8]) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn compare_counts_missing_added_and_changed_keys_once_each() {
        let local = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
            (b"d".to_vec(), b"4".to_vec()),
        ];
        let target = vec![kv(b"a", b"1"), kv(b"b", b"X"), kv(b"c", b"3")];
        // a equal, b changed, c added, d gone.
        assert_eq!(compare(&local, &target), (3, 4));
        assert_eq!(compare(&local, &[]), (3, 3));
        assert_eq!(compare(&[], &target), (3, 3));
        assert_eq!(compare(&[], &[]), (0, 0));
    }

    #[test]
    fn windows_are_spread_over_the_keyspace_and_ascend() {
        let target = Hash::from_slice(&[0xab; 32]).expect("hash");
        let starts: Vec<Vec<u8>> = (0..WINDOWS).map(|i| window_start(&target, i)).collect();
        assert!(starts.windows(2).all(|w| w[0] < w[1]));
        assert!(starts[0] < vec![0x20], "the first in the first eighth");
        assert!(starts[WINDOWS - 1] >= vec![0xdf], "the last near the end");
    }
}
