//! Peer scores: who to ask next, and who to leave alone for a while.
//!
//! A peer's score is its measured throughput (an exponential moving average of answer bytes per
//! second; untried peers get an optimistic prior so each is tried, peers that have only failed
//! next to nothing), halved for every
//! consecutive failure and divided by a thousand for every proof that failed verification. The
//! next request goes to the peer with the best `score / (1 + requests in flight)`, which prefers
//! fast peers and spreads load across them. A failing peer backs off exponentially with jitter;
//! a lying one backs off for much longer. No peer is ever dropped for good: if all others are
//! gone, even a demoted peer is asked again once its backoff expires.

use std::time::{Duration, Instant};

/// Throughput assumed for a peer that has not answered yet (bytes/s).
const PRIOR_BYTES_PER_SEC: f64 = 50e6;
/// Weight of the newest sample in the moving averages.
const EWMA_ALPHA: f64 = 0.3;
/// Score factor per proof that failed verification.
const INVALID_PENALTY: f64 = 1e-3;

/// Backoff settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    /// After the first failure.
    pub(crate) base: Duration,
    /// Cap for ordinary failures.
    pub(crate) max: Duration,
    /// After a proof that failed verification (doubling per repeat, capped at 8×).
    pub(crate) invalid: Duration,
}

/// What went wrong with a peer's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Unreachable, timed out, overloaded, or lacking the root: try again later.
    Unavailable,
    /// Sent something that failed decoding or verification: a liar or a broken peer.
    Invalid,
}

/// Figures for one peer, as shown in progress reports.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerStats {
    /// The peer's name (its URL for gRPC).
    pub name: String,
    /// The current score (higher is better); see the module docs.
    pub score: f64,
    /// Answers accepted.
    pub answers: u64,
    /// Requests that failed (transport, timeout, refusal).
    pub failures: u64,
    /// Answers rejected by verification or decoding.
    pub invalid: u64,
    /// Bytes of accepted answers.
    pub bytes: u64,
    /// Moving average of the latency of accepted answers, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Requests in flight now.
    pub in_flight: usize,
    /// The last error seen, if any (kept after later successes, for diagnosis).
    pub last_error: Option<String>,
    /// Backing off after a failure right now.
    pub backing_off: bool,
}

#[derive(Debug)]
struct Peer {
    stats: PeerStats,
    bytes_per_sec: Option<f64>,
    consecutive_failures: u32,
    backoff_until: Option<Instant>,
}

impl Peer {
    fn score(&self) -> f64 {
        // The optimistic prior is for peers never tried. One that has only ever failed scores
        // next to nothing, below any peer that has delivered, however slowly.
        let speed = match self.bytes_per_sec {
            Some(speed) => speed,
            None if self.stats.failures + self.stats.invalid == 0 => PRIOR_BYTES_PER_SEC,
            None => 1e-3,
        };
        let invalid = i32::try_from(self.stats.invalid.min(50)).unwrap_or(50);
        let failures = i32::try_from(self.consecutive_failures.min(60)).unwrap_or(60);
        speed * 0.5f64.powi(failures) * INVALID_PENALTY.powi(invalid)
    }
}

/// All peers of one sync.
#[derive(Debug)]
pub(crate) struct Peers {
    peers: Vec<Peer>,
    backoff: Backoff,
    rng: u64,
    /// Most requests one peer may have in flight: one fewer than the workers when there are
    /// several peers, so a lower-ranked peer that recovered keeps being probed.
    max_per_peer: usize,
}

impl Peers {
    /// Peers with these names, all untried.
    pub(crate) fn new(names: Vec<String>, backoff: Backoff, seed: u64, workers: usize) -> Self {
        let max_per_peer = if names.len() > 1 {
            workers.saturating_sub(1).max(1)
        } else {
            workers.max(1)
        };
        let peers = names
            .into_iter()
            .map(|name| Peer {
                stats: PeerStats {
                    name,
                    // Derived when reported (`stats`).
                    score: 0.0,
                    answers: 0,
                    failures: 0,
                    invalid: 0,
                    bytes: 0,
                    latency_ms: None,
                    in_flight: 0,
                    last_error: None,
                    backing_off: false,
                },
                bytes_per_sec: None,
                consecutive_failures: 0,
                backoff_until: None,
            })
            .collect();
        Self {
            peers,
            backoff,
            rng: seed | 1,
            max_per_peer,
        }
    }

    /// The peer to ask next, if any is not backing off; counts the request as in flight.
    pub(crate) fn choose(&mut self, now: Instant) -> Option<usize> {
        let best = self
            .peers
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.backoff_until.is_none_or(|t| t <= now) && p.stats.in_flight < self.max_per_peer
            })
            .max_by(|(_, a), (_, b)| {
                let a = a.score() / (1 + a.stats.in_flight) as f64;
                let b = b.score() / (1 + b.stats.in_flight) as f64;
                a.total_cmp(&b)
            })
            .map(|(i, _)| i)?;
        self.peers[best].stats.in_flight += 1;
        Some(best)
    }

    /// When the earliest backoff ends, if any peer is backing off.
    pub(crate) fn next_ready(&self, now: Instant) -> Option<Instant> {
        self.peers
            .iter()
            .filter_map(|p| p.backoff_until.filter(|t| *t > now))
            .min()
    }

    /// Records an accepted answer.
    pub(crate) fn succeeded(&mut self, peer: usize, latency: Duration, bytes: usize) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        p.stats.in_flight = p.stats.in_flight.saturating_sub(1);
        p.stats.answers += 1;
        p.stats.bytes += bytes as u64;
        let secs = latency.as_secs_f64().max(1e-6);
        let rate = bytes as f64 / secs;
        p.bytes_per_sec = Some(p.bytes_per_sec.map_or(rate, |old| ewma(old, rate)));
        let ms = secs * 1e3;
        p.stats.latency_ms = Some(p.stats.latency_ms.map_or(ms, |old| ewma(old, ms)));
        p.consecutive_failures = 0;
        p.backoff_until = None;
    }

    /// Records a failed request; the peer backs off.
    pub(crate) fn failed(&mut self, peer: usize, fault: Fault, error: String, now: Instant) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.stats.in_flight = p.stats.in_flight.saturating_sub(1);
        }
        self.penalize(peer, fault, error, now);
    }

    /// Penalizes a peer for an answer found wrong after its request was settled (a change proof
    /// is verified only when it is applied); the peer backs off.
    pub(crate) fn penalize(&mut self, peer: usize, fault: Fault, error: String, now: Instant) {
        let jitter = self.jitter();
        let backoff = self.backoff;
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        p.consecutive_failures = p.consecutive_failures.saturating_add(1);
        let exp = p.consecutive_failures.saturating_sub(1).min(20);
        let delay = match fault {
            Fault::Unavailable => {
                p.stats.failures += 1;
                backoff.base.saturating_mul(1 << exp).min(backoff.max)
            }
            Fault::Invalid => {
                p.stats.invalid += 1;
                let repeats = p.stats.invalid.saturating_sub(1).min(3);
                backoff.invalid.saturating_mul(1 << repeats)
            }
        };
        // Jitter in [0.5, 1.0) of the delay, so peers that failed together do not retry together.
        p.backoff_until = Some(now + delay.mul_f64(0.5 + 0.5 * jitter));
        p.stats.last_error = Some(shorten(error));
    }

    /// Records a request whose answer is no longer wanted (the sync was cancelled).
    pub(crate) fn abandoned(&mut self, peer: usize) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.stats.in_flight = p.stats.in_flight.saturating_sub(1);
        }
    }

    /// Figures for every peer.
    pub(crate) fn stats(&self) -> Vec<PeerStats> {
        let now = Instant::now();
        self.peers
            .iter()
            .map(|p| PeerStats {
                score: p.score(),
                backing_off: p.backoff_until.is_some_and(|t| t > now),
                ..p.stats.clone()
            })
            .collect()
    }

    /// A uniform number in `[0, 1)` (xorshift; jitter needs no cryptographic quality).
    fn jitter(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Errors are kept for display; a `NOT_FOUND` lists every root the server holds, so long ones
/// are cut.
fn shorten(mut error: String) -> String {
    const MAX: usize = 240;
    if error.len() > MAX {
        let mut cut = MAX;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
        error.push('…');
    }
    error
}

fn ewma(old: f64, sample: f64) -> f64 {
    old + EWMA_ALPHA * (sample - old)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Peers {
        let backoff = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_secs(1),
            invalid: Duration::from_secs(5),
        };
        Peers::new((0..n).map(|i| format!("p{i}")).collect(), backoff, 42, 8)
    }

    #[test]
    fn untried_peers_share_the_load() {
        let mut p = peers(3);
        let now = Instant::now();
        let mut chosen: Vec<_> = (0..3).filter_map(|_| p.choose(now)).collect();
        chosen.sort_unstable();
        assert_eq!(chosen, vec![0, 1, 2]);
    }

    #[test]
    fn a_peer_that_never_delivered_ranks_below_any_that_did() {
        let mut p = peers(2);
        let now = Instant::now();
        p.choose(now);
        p.choose(now);
        // A slow but working peer, and one whose every request fails.
        p.succeeded(0, Duration::from_secs(1), 1000);
        p.failed(1, Fault::Unavailable, "reset".into(), now);
        let stats = p.stats();
        assert!(stats[1].score < stats[0].score, "{stats:?}");
    }

    #[test]
    fn faster_peers_get_more_requests() {
        let mut p = peers(2);
        let now = Instant::now();
        for _ in 0..5 {
            let a = p.choose(now).expect("peer");
            let b = p.choose(now).expect("peer");
            for peer in [a, b] {
                let latency = if peer == 0 { 1 } else { 10 };
                p.succeeded(peer, Duration::from_millis(latency), 100_000);
            }
        }
        let picks: Vec<_> = (0..6).filter_map(|_| p.choose(now)).collect();
        let fast = picks.iter().filter(|&&i| i == 0).count();
        assert!(
            fast >= 4,
            "the 10x faster peer gets most requests: {picks:?}"
        );
    }

    #[test]
    fn failing_peers_back_off_exponentially_and_liars_rank_last() {
        let mut p = peers(3);
        let now = Instant::now();
        for peer in 0..3 {
            p.choose(now);
            p.succeeded(peer, Duration::from_millis(5), 10_000);
        }
        let mut last = Duration::ZERO;
        for round in 0..4 {
            p.choose(now);
            p.failed(1, Fault::Unavailable, "down".into(), now);
            let wait = p.peers[1].backoff_until.expect("backing off") - now;
            let cap = Duration::from_millis(10 << round);
            assert!(wait <= cap && wait >= cap / 2, "round {round}: {wait:?}");
            assert!(round == 0 || wait > last / 2);
            last = wait;
        }
        p.choose(now);
        p.failed(2, Fault::Invalid, "bad proof".into(), now);
        assert!(p.peers[2].backoff_until.expect("backoff") - now >= Duration::from_millis(2500));
        let stats = p.stats();
        assert!(
            stats[2].score < stats[1].score,
            "a liar ranks below a flaky peer"
        );
        assert!(stats[1].score < stats[0].score);
        assert_eq!(p.choose(now), Some(0), "only the healthy peer is ready");
        assert_eq!(p.choose(now), Some(0), "and it takes the load");
        let later = now + Duration::from_secs(60);
        assert!(p.next_ready(now).is_some());
        assert!(
            p.choose(later).is_some(),
            "backoff ends: nobody is dropped for good"
        );
    }
}
