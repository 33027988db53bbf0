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
//!
//! Each peer has its own window of requests in flight, sized from what its answers show: it
//! starts at its share of the budget (at least `workers`), grows by one per answer that came
//! back as fast as the peer's fastest (a long round trip with nothing queued: room for more),
//! and shrinks by a fifth for an answer that took twice that, or by 10% per refusal for lack of
//! capacity (requests queue at the peer or on its link), down to half of `workers`. A slow
//! answer shrinks the window only if its request went out after the last shrink: the answers
//! of requests sent before it are late for the queue it already acted on (as TCP reduces its
//! window once per round trip), and shrinking for each of them would close a narrow link's
//! window down to a few requests, leaving the link idle.
//! So a near, wide peer keeps many requests in flight and a far, narrow one few, and a slow
//! peer's queue never holds a large share of the keyspace (which would hold the sync's tail).
//! All windows together stay within the sync's budget (`SyncConfig::inflight_bytes`).
//!
//! The set follows the client's [`PeerSet`](crate::PeerSet): a peer that joins is added untried;
//! one that leaves is asked nothing more, and what it had in flight is given back without a
//! penalty ([`Peers::abandoned`]). Its figures stay, marked `departed`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::client::{Members, PeerId};

/// Throughput assumed for a peer that has not answered yet (bytes/s).
const PRIOR_BYTES_PER_SEC: f64 = 50e6;
/// Weight of the newest sample in the moving averages.
const EWMA_ALPHA: f64 = 0.3;
/// Window factor for an answer that took twice the peer's fastest (once per round trip).
const SLOW_ANSWER_SHRINK: f64 = 0.8;
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
    /// Has more requests than it will take (`RESOURCE_EXHAUSTED`): no fault, a signal to send
    /// it fewer.
    Busy,
    /// Does not hold the requested root (`NOT_FOUND`): usually a peer a commit or two behind the
    /// newest root, which will hold it shortly. No fault: it is asked again after a pause.
    Lagging,
}

/// How long a peer that lacks the target root is left alone before it is asked again.
const LAGGING_PAUSE: Duration = Duration::from_millis(200);

/// How long a busy peer is left alone: about one request's service time, so it drains a little.
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// Figures for one peer, as shown in progress reports.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PeerStats {
    /// The peer's id in its client's [`PeerSet`](crate::PeerSet).
    pub id: PeerId,
    /// The peer's name (its URL for gRPC).
    #[serde(rename = "peer")]
    pub name: String,
    /// The peer has left the client's peer set.
    pub departed: bool,
    /// The current score (higher is better); see the module docs.
    pub score: f64,
    /// Answers accepted.
    pub answers: u64,
    /// Requests that failed (transport, timeout, refusal).
    pub failures: u64,
    /// Answers rejected by verification or decoding.
    pub invalid: u64,
    /// Requests of this peer that another peer answered first (copied to it at the sync's
    /// tail); this peer's copy was cancelled.
    pub overtaken: u64,
    /// Bytes of accepted answers.
    pub bytes: u64,
    /// Keys written or deleted from this peer's verified answers: its share of the sync.
    pub keys: u64,
    /// Bytes of accepted answers per second since the peer's first request (in follow mode,
    /// since the follow started).
    pub goodput_bytes_per_sec: f64,
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
    /// The fastest answer so far: the peer's round trip plus its least service time.
    min_latency: Option<Duration>,
    /// Requests this peer may have in flight (see the module docs).
    window: f64,
    /// When a slow answer last shrank the window.
    last_shrink: Option<Instant>,
    /// When it was first asked something (goodput is counted from there).
    first_request: Option<Instant>,
    bytes_per_sec: Option<f64>,
    consecutive_failures: u32,
    backoff_until: Option<Instant>,
}

impl Peer {
    fn untried(id: PeerId, name: String, window: usize) -> Self {
        Self {
            stats: PeerStats {
                id,
                name,
                departed: false,
                // Derived when reported (`stats`).
                score: 0.0,
                answers: 0,
                failures: 0,
                invalid: 0,
                overtaken: 0,
                bytes: 0,
                keys: 0,
                goodput_bytes_per_sec: 0.0,
                latency_ms: None,
                in_flight: 0,
                last_error: None,
                backing_off: false,
            },
            min_latency: None,
            window: window as f64,
            last_shrink: None,
            first_request: None,
            bytes_per_sec: None,
            consecutive_failures: 0,
            backoff_until: None,
        }
    }

    fn score(&self) -> f64 {
        // The optimistic prior is for peers never tried. One that has only ever failed, or
        // been overtaken by a hedged copy of its request before it ever answered (it holds
        // requests it does not answer), scores next to nothing, below any peer that has
        // delivered, however slowly.
        let speed = match self.bytes_per_sec {
            Some(speed) => speed,
            None if self.stats.failures + self.stats.invalid == 0
                && self.consecutive_failures == 0 =>
            {
                PRIOR_BYTES_PER_SEC
            }
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
    peers: BTreeMap<PeerId, Peer>,
    backoff: Backoff,
    rng: fastrand::Rng,
    /// The least window a new peer starts with (`workers`).
    initial_window: usize,
    /// The narrowest a window gets: half of `initial_window`. With fewer requests in flight the
    /// peer would sit idle while the client verifies and applies its last answer; a slow peer's
    /// queue still holds only a few answers.
    min_window: f64,
    /// Requests in flight allowed in all. One peer may have one fewer when there are several,
    /// so a lower-ranked peer that recovered keeps being probed.
    budget: usize,
}

impl Peers {
    /// These peers, all untried, each with a window of `initial_window` requests, all within
    /// `budget`.
    pub(crate) fn new(
        members: &Members,
        backoff: Backoff,
        seed: u64,
        initial_window: usize,
        budget: usize,
    ) -> Self {
        let mut peers = Self {
            peers: BTreeMap::new(),
            backoff,
            rng: fastrand::Rng::with_seed(seed),
            initial_window: initial_window.max(1),
            min_window: (initial_window / 2).max(1) as f64,
            budget: budget.max(initial_window).max(1),
        };
        peers.update(members);
        peers
    }

    /// Follows the client's peer set: adds the peers that joined (untried), marks those that
    /// left as departed.
    pub(crate) fn update(&mut self, members: &Members) {
        // A new peer starts with its share of the budget: on a long round trip the first
        // requests are what fills the link, and a window grown from a few requests needs a
        // round trip per doubling. A peer that cannot keep up shrinks its window from there.
        let start = (self.budget / members.len().max(1)).max(self.initial_window);
        for (id, name) in members {
            self.peers
                .entry(*id)
                .or_insert_with(|| Peer::untried(*id, name.clone(), start));
        }
        for (id, peer) in &mut self.peers {
            peer.stats.departed = !members.contains_key(id);
        }
    }

    /// Most requests one peer may have in flight, whatever its window.
    fn max_per_peer(&self) -> usize {
        if self.present() > 1 {
            self.budget.saturating_sub(1).max(1)
        } else {
            self.budget
        }
    }

    /// Requests the present peers' windows allow in flight now, within the budget.
    pub(crate) fn capacity(&self) -> usize {
        let cap = self.max_per_peer();
        let sum: usize = self
            .peers
            .values()
            .filter(|p| !p.stats.departed)
            .map(|p| (p.window as usize).clamp(1, cap))
            .sum();
        sum.min(self.budget)
    }

    /// Whether `peer` has left the client's peer set.
    pub(crate) fn departed(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_none_or(|p| p.stats.departed)
    }

    /// Peers present now.
    pub(crate) fn present(&self) -> usize {
        self.peers.values().filter(|p| !p.stats.departed).count()
    }

    /// The peer to ask next, if any is not backing off; counts the request as in flight.
    pub(crate) fn choose(&mut self, now: Instant) -> Option<PeerId> {
        let cap = self.max_per_peer();
        let best = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.stats.departed
                    && p.backoff_until.is_none_or(|t| t <= now)
                    && p.stats.in_flight < (p.window as usize).clamp(1, cap)
            })
            .max_by(|(_, a), (_, b)| {
                let a = a.score() / (1 + a.stats.in_flight) as f64;
                let b = b.score() / (1 + b.stats.in_flight) as f64;
                a.total_cmp(&b)
            })
            .map(|(id, _)| *id)?;
        let chosen = self.peers.get_mut(&best)?;
        chosen.stats.in_flight += 1;
        chosen.first_request.get_or_insert(now);
        Some(best)
    }

    /// The peer's usual latency (moving average of its accepted answers), once it has answered.
    pub(crate) fn latency(&self, peer: PeerId) -> Option<Duration> {
        let ms = self.peers.get(&peer)?.stats.latency_ms?;
        Some(Duration::from_secs_f64(ms / 1e3))
    }

    /// When the earliest backoff ends, if any peer is backing off.
    pub(crate) fn next_ready(&self, now: Instant) -> Option<Instant> {
        self.peers
            .values()
            .filter(|p| !p.stats.departed)
            .filter_map(|p| p.backoff_until.filter(|t| *t > now))
            .min()
    }

    /// Records an accepted answer, received `now` after `latency`, and moves the peer's window
    /// by how long it took compared with the fastest the peer ever answered (see the module
    /// docs).
    pub(crate) fn succeeded(
        &mut self,
        peer: PeerId,
        now: Instant,
        latency: Duration,
        bytes: usize,
    ) {
        let budget = self.budget as f64;
        let min_window = self.min_window;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let fastest = *p.min_latency.get_or_insert(latency);
        p.min_latency = Some(fastest.min(latency));
        let stretch = latency.as_secs_f64() / fastest.min(latency).as_secs_f64().max(1e-6);
        if stretch < 1.25 {
            p.window = (p.window + 1.0).min(budget);
        } else if stretch > 2.0 {
            let sent = now.checked_sub(latency).unwrap_or(now);
            if p.last_shrink.is_none_or(|t| sent >= t) {
                p.window = (p.window * SLOW_ANSWER_SHRINK).max(min_window);
                p.last_shrink = Some(now);
            }
        }
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

    /// Records that another peer answered a copy of this peer's request first (a hedge at the
    /// tail, see the scheduler; its copy here is cancelled): it counts like a failure in the
    /// score, which halves until the peer answers again, with no backoff and no failure counted
    /// in its figures (only `overtaken`).
    pub(crate) fn overtaken(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.consecutive_failures += 1;
            p.stats.overtaken += 1;
        }
    }

    /// Records that `keys` keys of this peer's answer were committed.
    pub(crate) fn applied(&mut self, peer: PeerId, keys: u64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.stats.keys += keys;
        }
    }

    /// Records a failed request; the peer backs off.
    pub(crate) fn failed(&mut self, peer: PeerId, fault: Fault, error: String, now: Instant) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.stats.in_flight = p.stats.in_flight.saturating_sub(1);
        }
        self.penalize(peer, fault, error, now);
    }

    /// Penalizes a peer for an answer found wrong after its request was settled (a change proof
    /// is verified only when it is applied), or for a failed request (through
    /// [`Peers::failed`]). Faults count against the peer and back it off exponentially; a busy
    /// or lagging peer is only paused (its score and failure count untouched, so it is tried
    /// again rather than ranked below every peer that ever answered), and a busy one's window
    /// narrows.
    pub(crate) fn penalize(&mut self, peer: PeerId, fault: Fault, error: String, now: Instant) {
        let jitter = self.jitter();
        let (backoff, min_window) = (self.backoff, self.min_window);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.stats.last_error = Some(shorten(error));
        let delay = match fault {
            Fault::Busy => {
                p.window = (p.window * 0.9).max(min_window);
                BUSY_PAUSE
            }
            Fault::Lagging => LAGGING_PAUSE,
            Fault::Unavailable | Fault::Invalid => {
                p.consecutive_failures = p.consecutive_failures.saturating_add(1);
                let exp = p.consecutive_failures.saturating_sub(1).min(20);
                let delay = if fault == Fault::Unavailable {
                    p.stats.failures += 1;
                    backoff.base.saturating_mul(1 << exp).min(backoff.max)
                } else {
                    p.stats.invalid += 1;
                    let repeats = p.stats.invalid.saturating_sub(1).min(3);
                    backoff.invalid.saturating_mul(1 << repeats)
                };
                // Jitter in [0.5, 1.0) of the delay, so peers that failed together do not
                // retry together.
                delay.mul_f64(0.5 + 0.5 * jitter)
            }
        };
        p.backoff_until = Some(p.backoff_until.map_or(now, |t| t.max(now)).max(now + delay));
    }

    /// Ends a pause (a peer paused for lacking the target, which can now be asked for ranges at
    /// the older root it holds). Failures and liars keep their backoff: only pauses of peers
    /// with no fault counted are ended.
    pub(crate) fn resume(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.consecutive_failures == 0 && p.stats.invalid == 0 {
                p.backoff_until = None;
            }
        }
    }

    /// Records a request whose answer is no longer wanted (the sync was cancelled), or one that
    /// ended after its peer departed, whatever its outcome: no penalty.
    pub(crate) fn abandoned(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.stats.in_flight = p.stats.in_flight.saturating_sub(1);
        }
    }

    /// Figures for every peer.
    pub(crate) fn stats(&self) -> Vec<PeerStats> {
        let now = Instant::now();
        self.peers
            .values()
            .map(|p| PeerStats {
                score: p.score(),
                backing_off: p.backoff_until.is_some_and(|t| t > now),
                goodput_bytes_per_sec: p.first_request.map_or(0.0, |t| {
                    p.stats.bytes as f64 / now.duration_since(t).as_secs_f64().max(1e-3)
                }),
                ..p.stats.clone()
            })
            .collect()
    }

    /// A uniform number in `[0, 1)`.
    fn jitter(&mut self) -> f64 {
        self.rng.f64()
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
mod tests;
