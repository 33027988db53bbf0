use super::*;

fn peers(n: usize) -> Peers {
    let backoff = Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_secs(1),
        invalid: Duration::from_secs(5),
    };
    let members = (0..n).map(|i| (i, format!("p{i}"))).collect();
    Peers::new(&members, backoff, 42, 8, 64)
}

#[test]
fn joining_peers_are_asked_and_departed_ones_are_not() {
    let mut p = peers(1);
    let now = Instant::now();
    assert_eq!(p.choose(now), Some(0));
    let members = [(1, "p1".to_owned())].into_iter().collect();
    p.update(&members);
    assert!(p.departed(0));
    assert!(!p.departed(1));
    for _ in 0..5 {
        assert_eq!(p.choose(now), Some(1), "only the joined peer is asked");
    }
    // The departed peer's request ends: no penalty, and its figures stay, marked departed.
    p.abandoned(0);
    let stats = p.stats();
    assert_eq!(stats.len(), 2);
    assert!(stats[0].departed && stats[0].failures == 0 && stats[0].in_flight == 0);
    assert_eq!(p.present(), 1);
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
    p.succeeded(0, now, Duration::from_secs(1), 1000);
    p.failed(1, Fault::Unavailable, "reset".into(), now);
    let stats = p.stats();
    assert!(stats[1].score < stats[0].score, "{stats:?}");
}

#[test]
fn a_peer_overtaken_before_it_ever_answered_ranks_below_a_slow_one_that_answered() {
    // A peer holding requests it never answers is overtaken by hedged copies of them; the
    // untried prior must not keep it above a peer that delivers slowly (this once depended on
    // how many hedges the sync's tail happened to make).
    let mut p = peers(2);
    let now = Instant::now();
    p.choose(now);
    p.choose(now);
    p.succeeded(0, now, Duration::from_secs(10), 1000);
    p.overtaken(1);
    let stats = p.stats();
    assert!(stats[1].score < stats[0].score, "{stats:?}");
    assert_eq!(
        stats[1].failures, 0,
        "being overtaken is not counted as a failure"
    );
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
            p.succeeded(peer, now, Duration::from_millis(latency), 100_000);
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
        p.succeeded(peer, now, Duration::from_millis(5), 10_000);
    }
    let mut last = Duration::ZERO;
    for round in 0..4 {
        p.choose(now);
        p.failed(1, Fault::Unavailable, "down".into(), now);
        let wait = p.peers[&1].backoff_until.expect("backing off") - now;
        let cap = Duration::from_millis(10 << round);
        assert!(wait <= cap && wait >= cap / 2, "round {round}: {wait:?}");
        assert!(round == 0 || wait > last / 2);
        last = wait;
    }
    p.choose(now);
    p.failed(2, Fault::Invalid, "bad proof".into(), now);
    assert!(p.peers[&2].backoff_until.expect("backoff") - now >= Duration::from_millis(2500));
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

/// Each peer's window follows its own answers: one whose answers queue (twice its fastest)
/// narrows to half of `workers`, one whose answers come back as fast as ever widens, and requests
/// go to each only as far as its window allows.
#[test]
fn each_peer_gets_the_window_its_answers_earn() {
    let mut p = peers(2);
    let now = Instant::now();
    // Both start with their share of the budget of 64.
    let mut sent = [0usize; 2];
    while let Some(peer) = p.choose(now) {
        sent[peer] += 1;
    }
    assert_eq!(sent, [32, 32]);
    // Peer 0 answers at a steady 50 ms; peer 1's answers queue: 100 ms, then ever slower,
    // each sent after the one before came back.
    let mut clock = now;
    for i in 0..40u64 {
        let slow = Duration::from_millis(100 + 300 * i);
        clock += slow;
        p.succeeded(0, clock, Duration::from_millis(50), 1000);
        p.succeeded(1, clock, slow, 1000);
        let _ = (p.choose(clock), p.choose(clock));
    }
    let stats = p.stats();
    assert!(
        stats[0].in_flight > 32,
        "the fast peer's window grew: {stats:?}"
    );
    assert!(
        stats[1].in_flight <= 4,
        "the slow peer's window shrank to half of workers: {stats:?}"
    );
}

/// A peer that lacks the target root (a commit behind) is paused briefly, not demoted: it
/// keeps its untried prior and is asked again after the pause.
#[test]
fn a_lagging_peer_is_asked_again_not_demoted() {
    let mut p = peers(2);
    let now = Instant::now();
    let first = p.choose(now).expect("peer");
    p.failed(first, Fault::Lagging, "root not held".into(), now);
    let stats = p.stats();
    assert_eq!(stats[first].failures, 0);
    assert!(stats[first].score >= PRIOR_BYTES_PER_SEC, "{stats:?}");
    assert!(stats[first].backing_off);
    let later = now + Duration::from_secs(1);
    let asked: Vec<_> = (0..4).filter_map(|_| p.choose(later)).collect();
    assert!(asked.contains(&first), "{asked:?}");
}

/// Slow answers of requests sent before the window last shrank do not shrink it again: a
/// narrow link's queue drains for a round trip after the first slow answer, and shrinking per
/// answer would close the window to its floor within that round trip.
#[test]
fn a_window_shrinks_once_per_round_trip() {
    let mut p = peers(1);
    let start = Instant::now();
    while p.choose(start).is_some() {}
    let window = |p: &Peers| p.capacity();
    let full = window(&p);
    // The fastest answer: 100 ms. Then twenty answers that queued for a second, all sent at
    // the start, arrive within a few milliseconds of each other.
    p.succeeded(
        0,
        start + Duration::from_millis(100),
        Duration::from_millis(100),
        1000,
    );
    let at = start + Duration::from_millis(1000);
    for i in 0..20 {
        let now = at + Duration::from_millis(i);
        p.succeeded(0, now, now - start, 1000);
    }
    let once = window(&p);
    assert!(
        once < full && once * 10 >= full * 7,
        "one shrink of a fifth: {full} -> {once}"
    );
    // An answer to a request sent after that shrink, still slow, shrinks it again.
    let sent = at + Duration::from_millis(50);
    let now = sent + Duration::from_millis(500);
    p.succeeded(0, now, now - sent, 1000);
    assert!(window(&p) < once, "{once} -> {}", window(&p));
}
