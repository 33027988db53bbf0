use arbor_merkledb::Config;

use super::*;
use crate::manager::coverage::Sizing;

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
    assert!(coverage.steal(root, Sizing::UNKNOWN, |_| true));
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

/// Regions split from an arbitrary start (a remainder after an answer) end on nibble
/// boundaries, so an answer holding every key of its region completes it: nothing is left to
/// ask for. With byte-string midpoints as bounds, most such regions left a remainder between
/// the start of the next subtrie (where `find_next_key` resumes) and the region's end, which
/// cost a request that came back empty.
#[test]
fn an_answer_holding_all_of_a_split_region_completes_it() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let source = Db::open_memory(Config::default()).expect("open");
    let ops: Vec<_> = (0..20_000)
        .map(|_| {
            let key: Vec<u8> = (0..4).flat_map(|_| next().to_be_bytes()).collect();
            (key, Some(vec![1u8; 32]))
        })
        .collect();
    source
        .propose(ops)
        .expect("propose")
        .commit()
        .expect("commit");
    let root = source.root().expect("root");
    let replica = Db::open_memory(Config::default()).expect("open");

    // A first answer covered the keyspace up to an arbitrary key; what is left is spread.
    let mut coverage = Coverage::whole(None);
    let first = coverage.take(root).expect("work");
    let resume: Vec<u8> = next().to_be_bytes().to_vec();
    coverage.complete(&first.start, &Until::Key(resume), root, None);
    coverage.spread(root, 32, Sizing::UNKNOWN);
    let mut remainders = 0;
    while let Some(work) = coverage.take(root) {
        let (start, end, _) = request_bounds(&work);
        let proof = source
            .range_proof_at(root, start.as_deref(), end.as_deref(), 100_000)
            .expect("proof");
        let job = Job {
            work,
            root,
            answer: Answer::Range(proof),
            peer: Some(0),
        };
        let outcomes = apply(&replica, &coverage, vec![job], 100_000).expect("apply");
        for outcome in outcomes {
            let Outcome::Done {
                start, until, root, ..
            } = outcome
            else {
                panic!("{outcome:?}");
            };
            if until != Until::End {
                remainders += 1;
            }
            coverage.complete(&start, &until, root, None);
        }
        if remainders > 0 {
            break;
        }
    }
    assert_eq!(remainders, 0, "a region answered whole left a remainder");
}
