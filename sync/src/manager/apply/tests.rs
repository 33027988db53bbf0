use arbor_merkledb::Config;

use super::*;

fn db_of(keys: &[u8]) -> Db {
    let db = Db::open_memory(Config::default()).expect("open");
    let ops = keys.iter().map(|k| (vec![*k], Some(vec![*k, *k])));
    db.propose(ops).expect("propose").commit().expect("commit");
    db
}

fn keys(db: &Db) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    db.view()
        .expect("view")
        .for_each_entry(&[], None, |k, _| out.push(k.to_vec()))
        .expect("scan");
    out
}

/// An answer fetched for a region that a steal has since shrunk is written only below the
/// region's new end, and completes it: the keys above belong to the stolen half, which another
/// request fills (`Coverage::steal`).
#[test]
fn an_answer_stops_at_the_end_its_region_has_when_applied() {
    let source = db_of(&[0x10, 0x30, 0x50, 0x70, 0x90]);
    let root = source.root().expect("root");
    let replica = Db::open_memory(Config::default()).expect("open");

    let mut coverage = Coverage::whole(None);
    let work = coverage.take(root).expect("work");
    let proof = source.range_proof_at(root, None, None, 16).expect("proof");
    assert_eq!(
        proof.key_values.len(),
        5,
        "the answer holds the whole keyspace"
    );
    // While it was in flight, the far half of its region was given to another request.
    assert!(coverage.steal(root, 0.0, |_| true));
    let half = coverage.end_of(&[]).expect("region").expect("bounded");
    assert!(half.as_slice() > [0x70].as_slice() && half.as_slice() < [0x90].as_slice());

    let job = Job {
        work,
        root,
        answer: Answer::Range(proof),
        peer: Some(0),
    };
    let outcomes = apply(&replica, &coverage, vec![job], 16).expect("apply");
    let [Outcome::Done { until, keys: n, .. }] = outcomes.as_slice() else {
        panic!("{outcomes:?}");
    };
    assert_eq!(*until, Until::End, "the shrunk region is complete");
    assert_eq!(*n, 4);
    assert_eq!(
        keys(&replica),
        vec![vec![0x10], vec![0x30], vec![0x50], vec![0x70]],
        "nothing at or above the new end is written"
    );
}
