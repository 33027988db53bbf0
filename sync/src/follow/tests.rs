use std::time::Duration;

use arbor_merkledb::Hash;

use super::*;

fn peer(name: &str, answers: u64, bytes: u64, last_error: Option<&str>) -> PeerStats {
    PeerStats {
        // One letter per peer: `a` is id 0, `b` id 1, ...
        id: usize::from(name.as_bytes()[0] - b'a'),
        name: name.to_owned(),
        departed: false,
        score: 1.0,
        answers,
        failures: 1,
        invalid: 0,
        overtaken: 0,
        bytes,
        keys: answers * 10,
        goodput_bytes_per_sec: 0.0,
        latency_ms: Some(3.0),
        in_flight: 0,
        last_error: last_error.map(str::to_owned),
        backing_off: false,
    }
}

fn progress(keys: u64, peers: Vec<PeerStats>) -> Progress {
    Progress {
        target: Hash::EMPTY_ROOT,
        fraction: 1.0,
        keys,
        bytes: peers.iter().map(|p| p.bytes).sum(),
        proofs_accepted: peers.iter().map(|p| p.answers).sum(),
        proofs_rejected: 0,
        elapsed: Duration::ZERO,
        eta: None,
        peers,
        mode: crate::SyncMode::Proofs,
        range_bytes: 0,
        change_bytes: 0,
        diff_bytes: 0,
        done: true,
    }
}

/// A follow's figures, per peer too, count every manager it ran, not only the current one.
#[test]
fn per_peer_figures_add_up_across_managers() {
    let mut totals = Totals::new();
    let first = progress(
        100,
        vec![peer("a", 6, 600, None), peer("b", 2, 200, Some("timeout"))],
    );
    totals.absorb(&first);
    let second = progress(50, vec![peer("a", 3, 300, None), peer("b", 4, 400, None)]);
    totals.absorb(&second);
    let mut third = progress(10, vec![peer("a", 1, 100, None), peer("b", 0, 0, None)]);
    totals.adjust(&mut third);
    assert_eq!(third.keys, 160);
    assert_eq!(third.proofs_accepted, 16);
    let answers: Vec<u64> = third.peers.iter().map(|p| p.answers).collect();
    assert_eq!(answers, [10, 6]);
    assert_eq!(third.peers[1].bytes, 600);
    assert_eq!(third.peers[0].keys, 100, "keys carried, per peer");
    assert_eq!(third.peers[0].failures, 3);
    assert_eq!(
        third.peers.iter().map(|p| p.answers).sum::<u64>(),
        third.proofs_accepted
    );
    // The last error seen is kept for diagnosis.
    assert_eq!(third.peers[1].last_error.as_deref(), Some("timeout"));
}

/// A peer that left keeps its share in the follow's figures, marked departed.
#[test]
fn departed_peers_keep_their_share() {
    let mut totals = Totals::new();
    totals.absorb(&progress(
        100,
        vec![peer("a", 6, 600, None), peer("b", 2, 200, None)],
    ));
    // `a` left; `c` joined.
    let mut next = progress(10, vec![peer("b", 1, 100, None), peer("c", 5, 500, None)]);
    totals.adjust(&mut next);
    let names: Vec<&str> = next.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(next.peers[0].departed && next.peers[0].answers == 6);
    assert_eq!(next.peers[1].answers, 3);
    assert_eq!(
        next.peers.iter().map(|p| p.answers).sum::<u64>(),
        next.proofs_accepted
    );
}
