//! Differential tests against a `BTreeMap` model: after every commit the root equals a root
//! computed from scratch on the model, and the contents match; after reopening, nothing changed.

use std::collections::BTreeMap;

use arbor_merkledb::{
    BranchFactor, Config,
    test_utils::{SeedReporter, SeededRng, reference_root},
};
use proptest::prelude::*;

use crate::backends::{Harness, MakeHarness};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Keys drawn so that many share long prefixes (and the empty key occurs).
fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(0u8), Just(1), Just(0x10), Just(0xff), any::<u8>()],
        0..5,
    )
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3),
        prop::collection::vec(any::<u8>(), 30..34)
    ]
}

fn batch_strategy() -> impl Strategy<Value = Batch> {
    prop::collection::vec(
        (
            key_strategy(),
            prop::option::weighted(0.7, value_strategy()),
        ),
        0..24,
    )
}

fn check(h: &Harness, model: &Model, bf: BranchFactor) {
    assert_eq!(h.db.root().expect("root"), reference_root(model, bf));
    assert_eq!(h.db.key_count().expect("count"), model.len() as u64);
    let all =
        h.db.view()
            .expect("view")
            .range(&[], None, usize::MAX)
            .expect("range");
    let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(all, expected);
}

fn apply(model: &mut Model, batch: &Batch) {
    for (k, v) in batch {
        match v {
            Some(v) => model.insert(k.clone(), v.clone()),
            None => model.remove(k),
        };
    }
}

fn run_batches(make: &MakeHarness, bf: BranchFactor, batches: &[Batch]) {
    let mut h = make(
        Config::default()
            .with_branch_factor(bf)
            .with_dirty_node_budget(8),
    );
    let mut model = Model::new();
    for batch in batches {
        let proposal = h.db.propose(batch.clone()).expect("propose");
        apply(&mut model, batch);
        assert_eq!(proposal.root(), reference_root(&model, bf), "proposal root");
        proposal.commit().expect("commit");
        check(&h, &model, bf);
    }
    h.reopen();
    check(&h, &model, bf);
}

fn proptest_model(make: &MakeHarness) {
    let bfs = prop_oneof![
        Just(BranchFactor::Two),
        Just(BranchFactor::Four),
        Just(BranchFactor::Sixteen),
        Just(BranchFactor::TwoFiftySix)
    ];
    let config = ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    };
    proptest!(config, |(bf in bfs, batches in prop::collection::vec(batch_strategy(), 1..6))| {
        run_batches(make, bf, &batches);
    });
}

/// Larger seeded workload: thousands of random keys of random lengths, puts and deletes, in
/// batches of random sizes, for every branch factor.
fn seeded_large(make: &MakeHarness) {
    let seed = SeededRng::seed_from_env(0x5eed_0001);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    for bf in BranchFactor::ALL {
        let mut batches = Vec::new();
        let mut known: Vec<Vec<u8>> = Vec::new();
        for _ in 0..8 {
            let size = rng.below(1500) as usize;
            let mut batch = Batch::new();
            for _ in 0..size {
                if !known.is_empty() && rng.below(4) == 0 {
                    let k = known[rng.below(known.len() as u64) as usize].clone();
                    batch.push((k, None));
                } else {
                    let len = rng.below(40) as usize;
                    let k = if !known.is_empty() && rng.below(3) == 0 {
                        // Extend an existing key: long shared prefixes.
                        let mut k = known[rng.below(known.len() as u64) as usize].clone();
                        k.extend(rng.bytes(1 + len % 3));
                        k
                    } else {
                        rng.bytes(len)
                    };
                    known.push(k.clone());
                    let vlen = rng.below(70) as usize;
                    batch.push((k, Some(rng.bytes(vlen))));
                }
            }
            batches.push(batch);
        }
        run_batches(make, bf, &batches);
    }
}

fn rebatching_gives_same_root(make: &MakeHarness) {
    let seed = SeededRng::seed_from_env(0x5eed_0002);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..5000)
        .map(|_| {
            let len = 1 + rng.below(12) as usize;
            (rng.bytes(len), rng.bytes(8))
        })
        .collect();
    let model: Model = kvs.iter().cloned().collect();
    let expected = reference_root(&model, BranchFactor::Sixteen);
    for batch_size in [1usize, 7, 500, 5000] {
        let h = make(Config::default());
        for chunk in
            kvs.chunks(batch_size.max(1))
                .take(if batch_size == 1 { 600 } else { usize::MAX })
        {
            h.db.propose(chunk.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))
                .expect("propose")
                .commit()
                .expect("commit");
        }
        if batch_size == 1 {
            // One key per commit is slow; finish the rest in one batch.
            let rest = kvs[600..].iter().map(|(k, v)| (k.clone(), Some(v.clone())));
            h.db.propose(rest)
                .expect("propose")
                .commit()
                .expect("commit");
        }
        assert_eq!(
            h.db.root().expect("root"),
            expected,
            "batch size {batch_size}"
        );
    }
}

crate::for_each_backend!(proptest_model, seeded_large, rebatching_gives_same_root);
