//! Proofs: upstream shape tests, honest proofs verify, every tampering is rejected, and a full
//! sync by proofs with no network (range proofs, then change proofs, with history fallback and
//! across a reopen).

use std::collections::BTreeMap;

use arbor_merkledb::{
    BranchFactor, Config, Db, Error, Hash, Key, KeyValue, MissingRoot, ProofError, RangeProof,
    test_utils::{SeedReporter, SeededRng},
    verify_proof, verify_range_proof,
};

fn db_with(bf: BranchFactor, kvs: &[(Vec<u8>, Vec<u8>)]) -> Db {
    let db = Db::open_memory(Config::default().with_branch_factor(bf)).expect("open");
    db.propose(kvs.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))
        .expect("propose")
        .commit()
        .expect("commit");
    db
}

fn kv(k: &[u8], v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (k.to_vec(), v.to_vec())
}

fn rejected(result: Result<(), Error>) -> bool {
    matches!(result, Err(Error::Proof(_)))
}

#[test]
fn upstream_range_proof_shape() {
    let kvs: Vec<_> = (0u8..5).map(|i| kv(&[i], &[i])).collect();
    let db = db_with(BranchFactor::Sixteen, &kvs);
    let proof = db
        .view()
        .expect("view")
        .range_proof(Some(&[1]), Some(&[3, 5]), 10)
        .expect("proof");
    let keys: Vec<_> = proof.key_values.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![vec![1], vec![2], vec![3]]);
    assert_eq!(proof.end_proof.len(), 2);
    assert_eq!(
        proof.end_proof[0].key,
        Key::from_bits(&[0], 4).expect("key")
    );
    assert_eq!(proof.end_proof[0].children.len(), 5);
    assert_eq!(proof.end_proof[1].key, Key::from_bytes(&[3]));
    assert_eq!(proof.start_proof.len(), 1);
    assert_eq!(proof.start_proof[0].key, Key::from_bytes(&[1]));
    let root = db.root().expect("root");
    verify_range_proof(
        &proof,
        Some(&[1]),
        Some(&[3, 5]),
        root,
        10,
        BranchFactor::Sixteen,
    )
    .expect("verifies");
}

#[test]
fn upstream_range_proof_empty_values_shape() {
    let kvs = vec![kv(b"key1", b""), kv(b"key12", b"value1"), kv(b"key2", b"")];
    let db = db_with(BranchFactor::Sixteen, &kvs);
    let proof = db
        .view()
        .expect("view")
        .range_proof(Some(b"key1"), Some(b"key2"), 10)
        .expect("proof");
    assert_eq!(proof.key_values.len(), 3);
    let start: Vec<_> = proof.start_proof.iter().map(|n| n.key.clone()).collect();
    let end: Vec<_> = proof.end_proof.iter().map(|n| n.key.clone()).collect();
    assert_eq!(start, vec![Key::from_bytes(b"key1")]);
    assert_eq!(
        end,
        vec![Key::from_bytes(b"key1").take(28), Key::from_bytes(b"key2")]
    );
    let root = db.root().expect("root");
    verify_range_proof(
        &proof,
        Some(b"key1"),
        Some(b"key2"),
        root,
        10,
        BranchFactor::Sixteen,
    )
    .expect("verifies");
}

#[test]
fn single_key_proofs_inclusion_and_exclusion() {
    for bf in BranchFactor::ALL {
        let kvs: Vec<_> = [&[1u8][..], &[1, 2], &[1, 2, 3], &[1, 2, 3, 4], &[9; 40]]
            .iter()
            .map(|k| kv(k, &k.repeat(9)))
            .collect();
        let db = db_with(bf, &kvs);
        let root = db.root().expect("root");
        let view = db.view().expect("view");
        for key in [
            &[1u8][..],
            &[1, 2, 3],
            &[9; 40],
            &[],
            &[1, 2, 4],
            &[0],
            &[1, 2, 3, 4, 5],
            &[255],
        ] {
            let proof = view.proof(key).expect("proof");
            assert_eq!(proof.value, db.get(key).expect("get"));
            verify_proof(&proof, root, bf).expect("honest proof verifies");
            // Claim the opposite.
            let mut lie = proof.clone();
            lie.value = if lie.value.is_some() {
                None
            } else {
                Some(b"x".to_vec())
            };
            assert!(rejected(verify_proof(&lie, root, bf)), "{bf:?} {key:?}");
            // Tamper with the first node.
            let mut lie = proof.clone();
            lie.path[0].children.insert(0, Hash([7; 32]));
            assert!(rejected(verify_proof(&lie, root, bf)));
            let mut lie = proof.clone();
            lie.path.remove(0);
            assert!(rejected(verify_proof(&lie, root, bf)) || lie.path.is_empty());
            assert!(rejected(verify_proof(&proof, Hash([1; 32]), bf)));
        }
    }
}

#[test]
fn empty_trie_has_no_proofs() {
    let db = Db::open_memory(Config::default()).expect("open");
    assert!(matches!(
        db.view().expect("view").range_proof(None, None, 10),
        Err(Error::Proof(ProofError::EmptyProof))
    ));
    assert!(matches!(
        db.view().expect("view").proof(b"a"),
        Err(Error::Proof(ProofError::EmptyProof))
    ));
}

/// A random database whose keys share prefixes and vary in length.
fn random_db(rng: &mut SeededRng, bf: BranchFactor, n: usize) -> (Db, BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut model = BTreeMap::new();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for _ in 0..n {
        let key = if !keys.is_empty() && rng.below(3) == 0 {
            let mut k = keys[rng.below(keys.len() as u64) as usize].clone();
            k.truncate(rng.below(k.len() as u64 + 1) as usize);
            k.push(rng.below(256) as u8);
            k
        } else {
            let len = 1 + rng.below(6) as usize;
            rng.bytes(len)
        };
        keys.push(key.clone());
        let vlen = rng.below(40) as usize;
        model.insert(key, rng.bytes(vlen));
    }
    let kvs: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    (db_with(bf, &kvs), model)
}

fn random_bound(rng: &mut SeededRng, model: &BTreeMap<Vec<u8>, Vec<u8>>) -> Option<Vec<u8>> {
    match rng.below(4) {
        0 => None,
        1 => model
            .keys()
            .nth(rng.below(model.len() as u64) as usize)
            .cloned(),
        _ => Some(rng.bytes_between(1, 4)),
    }
}

fn start_nodes(p: &mut RangeProof) -> &mut Vec<arbor_merkledb::ProofNode> {
    &mut p.start_proof
}

fn end_nodes(p: &mut RangeProof) -> &mut Vec<arbor_merkledb::ProofNode> {
    &mut p.end_proof
}

/// Every single tampering of an honest range proof is rejected.
fn tamperings(
    proof: &RangeProof,
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    rng: &mut SeededRng,
) -> Vec<(&'static str, RangeProof)> {
    let mut out = Vec::new();
    let n = proof.key_values.len();
    if n >= 2 {
        let mut p = proof.clone();
        p.key_values.remove(rng.below(n as u64 - 1) as usize);
        out.push(("drop a key-value", p));
    }
    if n >= 1 {
        let i = rng.below(n as u64) as usize;
        let mut p = proof.clone();
        p.key_values[i].value.push(1);
        out.push(("change a value", p));
        let mut p = proof.clone();
        let mut k = p.key_values[i].key.clone();
        k.push(0);
        if !model.contains_key(&k) && (i + 1 == n || k < p.key_values[i + 1].key) && i + 1 < n {
            p.key_values.insert(
                i + 1,
                KeyValue {
                    key: k,
                    value: vec![5],
                },
            );
            out.push(("add a key-value", p));
        }
        let mut p = proof.clone();
        p.key_values.swap(0, n - 1);
        if n >= 2 {
            out.push(("reorder key-values", p));
        }
    }
    for (which, nodes) in [("start", &proof.start_proof), ("end", &proof.end_proof)] {
        if nodes.is_empty() {
            continue;
        }
        let i = rng.below(nodes.len() as u64) as usize;
        let edit = |f: &dyn Fn(&mut RangeProof)| {
            let mut p = proof.clone();
            f(&mut p);
            p
        };
        let pick = if which == "start" {
            start_nodes
        } else {
            end_nodes
        };
        out.push((
            "remove a proof node",
            edit(&|p| {
                pick(p).remove(i);
            }),
        ));
        out.push((
            "change a proof node's value",
            edit(&|p| {
                let node = &mut pick(p)[i];
                node.value_or_hash = match node.value_or_hash {
                    Some(_) => None,
                    None => Some(arbor_merkledb::ValueDigest::of(b"x")),
                };
            }),
        ));
        if let Some((&t, _)) = nodes[i].children.iter().next() {
            out.push((
                "change a child ID",
                edit(&|p| {
                    pick(p)[i].children.insert(t, Hash([9; 32]));
                }),
            ));
        }
        out.push((
            "add a child",
            edit(&|p| {
                let node = &mut pick(p)[i];
                let free = (0u8..=1).find(|t| !node.children.contains_key(t));
                if let Some(t) = free {
                    node.children.insert(t, Hash([3; 32]));
                } else {
                    node.children.clear();
                }
            }),
        ));
        out.push((
            "duplicate a proof node",
            edit(&|p| {
                let node = pick(p)[i].clone();
                pick(p).insert(i, node);
            }),
        ));
        if nodes.len() >= 2 {
            out.push((
                "reorder proof nodes",
                edit(&|p| {
                    pick(p).swap(0, 1);
                }),
            ));
        }
    }
    out
}

#[test]
fn honest_range_proofs_verify_and_tampered_ones_do_not() {
    let seed = SeededRng::seed_from_env(0x9f00_0001);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let mut checked = 0;
    for round in 0..60 {
        let bf = BranchFactor::ALL[round % 4];
        let n = 5 + rng.below(300) as usize;
        let (db, model) = random_db(&mut rng, bf, n);
        let root = db.root().expect("root");
        let view = db.view().expect("view");
        for _ in 0..8 {
            let (mut start, mut end) = (
                random_bound(&mut rng, &model),
                random_bound(&mut rng, &model),
            );
            if let (Some(s), Some(e)) = (&start, &end) {
                if s > e {
                    std::mem::swap(&mut start, &mut end);
                }
            }
            let limit = 1 + rng.below(40) as usize;
            let proof = view
                .range_proof(start.as_deref(), end.as_deref(), limit)
                .expect("proof");
            let expected: Vec<_> = model
                .range::<Vec<u8>, _>((
                    start
                        .clone()
                        .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included),
                    end.clone()
                        .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included),
                ))
                .take(limit)
                .map(|(k, _)| k.clone())
                .collect();
            assert_eq!(
                proof
                    .key_values
                    .iter()
                    .map(|kv| kv.key.clone())
                    .collect::<Vec<_>>(),
                expected
            );
            let verify = |p: &RangeProof, s: Option<&[u8]>, e: Option<&[u8]>, r: Hash, l: usize| {
                verify_range_proof(p, s, e, r, l, bf)
            };
            verify(&proof, start.as_deref(), end.as_deref(), root, limit)
                .expect("honest proof verifies");
            assert!(
                rejected(verify(
                    &proof,
                    start.as_deref(),
                    end.as_deref(),
                    Hash([1; 32]),
                    limit
                )),
                "other root"
            );
            if !proof.key_values.is_empty() {
                let got = proof.key_values.len();
                assert!(
                    matches!(
                        verify(&proof, start.as_deref(), end.as_deref(), root, got - 1),
                        Err(Error::Proof(ProofError::TooManyKeys { .. })
                            | Error::Proof(ProofError::EmptyProof))
                    ) || got == 1
                );
            }
            // Shift the start bound down over a key the proof does not hold.
            if let Some(s) = &start {
                if let Some((before, _)) = model.range::<Vec<u8>, _>(..s.clone()).next_back() {
                    assert!(
                        rejected(verify(&proof, Some(before), end.as_deref(), root, limit)),
                        "shifted start"
                    );
                }
            }
            for (what, tampered) in tamperings(&proof, &model, &mut rng) {
                let result = verify(&tampered, start.as_deref(), end.as_deref(), root, limit);
                assert!(
                    rejected(result),
                    "round {round}: tampering '{what}' was accepted: {bf:?} [{start:02x?}, {end:02x?}] limit {limit}\nhonest: {proof:#?}\ntampered: {tampered:#?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "only {checked} tamperings checked");
}

/// Fetches `[start, ∞)` from `server` at `root` into `client` in verified chunks.
fn sync_range(server: &Db, client: &Db, root: Hash, rng: &mut SeededRng) {
    let bf = server.branch_factor();
    let mut start: Option<Vec<u8>> = None;
    loop {
        let limit = 1 + rng.below(64) as usize;
        let proof = server
            .range_proof_at(root, start.as_deref(), None, limit)
            .expect("range proof");
        verify_range_proof(&proof, start.as_deref(), None, root, limit, bf).expect("verifies");
        client
            .commit_range_proof(start.as_deref(), None, &proof)
            .expect("commit");
        // Only an empty answer proves that nothing follows: a short one covers [start, last].
        match proof.key_values.last() {
            Some(last) => {
                let mut next = last.key.clone();
                next.push(0);
                start = Some(next);
            }
            None => break,
        }
    }
}

/// Brings `client` (holding `from`) to `to` with change proofs, falling back to range proofs where
/// the server lacks history.
fn sync_changes(server: &Db, client: &Db, from: Hash, to: Hash, rng: &mut SeededRng) -> usize {
    let bf = server.branch_factor();
    let mut start: Option<Vec<u8>> = None;
    let mut fallbacks = 0;
    loop {
        let limit = 1 + rng.below(64) as usize;
        let next_of = |k: &[u8]| {
            let mut next = k.to_vec();
            next.push(0);
            next
        };
        match server.change_proof(from, to, start.as_deref(), None, limit) {
            Ok(proof) => {
                client
                    .verify_change_proof(&proof, start.as_deref(), None, to, limit)
                    .expect("change proof verifies");
                client.commit_change_proof(&proof).expect("commit");
                match proof.key_changes.last() {
                    Some(last) => start = Some(next_of(&last.key)),
                    None => break,
                }
            }
            Err(Error::Proof(ProofError::InsufficientHistory {
                which: MissingRoot::Start,
                ..
            })) => {
                fallbacks += 1;
                let proof = server
                    .range_proof_at(to, start.as_deref(), None, limit)
                    .expect("range proof");
                verify_range_proof(&proof, start.as_deref(), None, to, limit, bf)
                    .expect("verifies");
                client
                    .commit_range_proof(start.as_deref(), None, &proof)
                    .expect("commit");
                match proof.key_values.last() {
                    Some(last) => start = Some(next_of(&last.key)),
                    None => break,
                }
            }
            Err(e) => panic!("change proof failed: {e}"),
        }
    }
    fallbacks
}

fn mutate(db: &Db, model: &mut BTreeMap<Vec<u8>, Vec<u8>>, rng: &mut SeededRng) {
    let mut ops = Vec::new();
    for _ in 0..(1 + rng.below(60)) {
        if !model.is_empty() && rng.below(3) == 0 {
            let k = model
                .keys()
                .nth(rng.below(model.len() as u64) as usize)
                .cloned()
                .expect("key");
            model.remove(&k);
            ops.push((k, None));
        } else {
            let k = rng.bytes_between(1, 6);
            let v = rng.bytes_between(0, 40);
            model.insert(k.clone(), v.clone());
            ops.push((k, Some(v)));
        }
    }
    db.propose(ops).expect("propose").commit().expect("commit");
}

#[test]
fn sync_by_proofs_then_catch_up_by_change_proofs() {
    let seed = SeededRng::seed_from_env(0x9f00_0002);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    for bf in BranchFactor::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::default().with_branch_factor(bf).with_history_len(8);
        let (seeded, mut model) = random_db(&mut rng, bf, 400);
        let server = Db::open(dir.path(), config.clone()).expect("open server");
        let kvs: Vec<_> = model
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        server
            .propose(kvs)
            .expect("propose")
            .commit()
            .expect("commit");
        assert_eq!(server.root().expect("root"), seeded.root().expect("root"));
        let client = Db::open_memory(Config::default().with_branch_factor(bf)).expect("client");
        // Stale data in the client must be removed by the range sync.
        client
            .propose([(vec![0xff, 0xff], Some(vec![1]))])
            .expect("p")
            .commit()
            .expect("c");
        let root1 = server.root().expect("root");
        sync_range(&server, &client, root1, &mut rng);
        assert_eq!(
            client.root().expect("client root"),
            root1,
            "{bf:?}: range sync"
        );

        // A few commits later, catch up with change proofs from root1.
        for _ in 0..3 {
            mutate(&server, &mut model, &mut rng);
        }
        let root2 = server.root().expect("root");
        assert_eq!(sync_changes(&server, &client, root1, root2, &mut rng), 0);
        assert_eq!(
            client.root().expect("client root"),
            root2,
            "{bf:?}: change sync"
        );

        // History persists across a reopen of the server.
        drop(seeded);
        for _ in 0..2 {
            mutate(&server, &mut model, &mut rng);
        }
        let root3 = server.root().expect("root");
        server.close().expect("close");
        drop(server);
        let server = Db::open(dir.path(), config.clone()).expect("reopen server");
        assert_eq!(sync_changes(&server, &client, root2, root3, &mut rng), 0);
        assert_eq!(
            client.root().expect("client root"),
            root3,
            "{bf:?}: after reopen"
        );

        // Exhaust history: root3 falls out, so the server falls back to range proofs.
        for _ in 0..10 {
            mutate(&server, &mut model, &mut rng);
        }
        let root4 = server.root().expect("root");
        assert!(
            sync_changes(&server, &client, root3, root4, &mut rng) > 0,
            "fallback used"
        );
        let all = client
            .view()
            .expect("view")
            .range(&[], None, usize::MAX)
            .expect("range");
        let expected: Vec<_> = model.into_iter().collect();
        if all != expected {
            let a: BTreeMap<_, _> = all.into_iter().collect();
            let b: BTreeMap<_, _> = expected.into_iter().collect();
            for (k, v) in &a {
                if b.get(k) != Some(v) {
                    eprintln!("client has {k:02x?} = {v:02x?}, server {:02x?}", b.get(k));
                }
            }
            for (k, v) in &b {
                if !a.contains_key(k) {
                    eprintln!("client lacks {k:02x?} = {v:02x?}");
                }
            }
            panic!("{bf:?}: contents differ after fallback");
        }
        assert_eq!(
            client.root().expect("client root"),
            root4,
            "{bf:?}: after fallback"
        );
    }
}

#[test]
fn empty_range_proof_commit_deletes_stale_keys() {
    let server = db_with(BranchFactor::Sixteen, &[kv(&[1], &[1]), kv(&[9], &[9])]);
    let client = db_with(
        BranchFactor::Sixteen,
        &[
            kv(&[1], &[1]),
            kv(&[5], &[5]),
            kv(&[6], &[6]),
            kv(&[9], &[9]),
        ],
    );
    let root = server.root().expect("root");
    let proof = server
        .range_proof_at(root, Some(&[2]), Some(&[8]), 10)
        .expect("proof");
    assert!(proof.key_values.is_empty());
    verify_range_proof(
        &proof,
        Some(&[2]),
        Some(&[8]),
        root,
        10,
        BranchFactor::Sixteen,
    )
    .expect("verifies");
    client
        .commit_range_proof(Some(&[2]), Some(&[8]), &proof)
        .expect("commit");
    assert_eq!(client.root().expect("root"), root);
}

#[test]
fn change_proof_errors_tell_missing_start_from_missing_end() {
    let db = db_with(BranchFactor::Sixteen, &[kv(&[1], &[1])]);
    let r1 = db.root().expect("root");
    db.propose([(vec![2], Some(vec![2]))])
        .expect("p")
        .commit()
        .expect("c");
    let r2 = db.root().expect("root");
    let unknown = Hash([5; 32]);
    let err = |r: Result<_, Error>| match r {
        Err(Error::Proof(e)) => e,
        other => panic!("expected a proof error, got {other:?}"),
    };
    assert!(matches!(
        err(db.change_proof(unknown, r2, None, None, 10)),
        ProofError::InsufficientHistory {
            which: MissingRoot::Start,
            ..
        }
    ));
    assert!(matches!(
        err(db.change_proof(r1, unknown, None, None, 10)),
        ProofError::InsufficientHistory {
            which: MissingRoot::End,
            ..
        }
    ));
    assert_eq!(
        err(db.change_proof(r1, r1, None, None, 10)),
        ProofError::SameRoot
    );
    assert_eq!(
        err(db.change_proof(r1, r2, Some(&[3]), Some(&[1]), 10)),
        ProofError::StartAfterEnd
    );
    assert_eq!(
        err(db.change_proof(r1, r2, None, None, 0)),
        ProofError::InvalidMaxLength
    );
}

#[test]
fn exclusion_proof_checks_of_v1_13() {
    let bf = BranchFactor::TwoFiftySix;
    let keys: [&[u8]; 4] = [&[1], &[1, 2], &[1, 2, 3], &[1, 2, 3, 4]];
    let kvs: Vec<_> = keys.iter().map(|k| kv(k, k)).collect();
    let db = db_with(bf, &kvs);
    let root = db.root().expect("root");
    let view = db.view().expect("view");
    let err = |r: Result<(), Error>| match r {
        Err(Error::Proof(e)) => e,
        other => panic!("expected a proof error, got {other:?}"),
    };
    // Happy paths: inclusion of every key, exclusion below and beside the path.
    for key in keys {
        let proof = view.proof(key).expect("proof");
        assert_eq!(proof.value.as_deref(), Some(key));
        verify_proof(&proof, root, bf).expect("inclusion verifies");
    }
    let absent = view.proof(&[1, 2, 3, 4, 5]).expect("proof");
    assert_eq!(absent.value, None);
    verify_proof(&absent, root, bf).expect("exclusion verifies");
    // An exclusion proof claiming a value.
    let mut lie = absent.clone();
    lie.value = Some(vec![1]);
    assert_eq!(
        err(verify_proof(&lie, root, bf)),
        ProofError::ExclusionProofUnexpectedValue
    );
    // Stopping above a child that leads towards the key.
    let mut short = view.proof(&[1, 2, 3, 9]).expect("proof");
    verify_proof(&short, root, bf).expect("exclusion verifies");
    short.path.truncate(2);
    assert_eq!(
        err(verify_proof(&short, root, bf)),
        ProofError::ExclusionProofMissingEndNodes
    );
    // Ending at a node that does not hang off the last ancestor on the key's token.
    let mut sibling = view.proof(&[1, 5]).expect("proof");
    verify_proof(&sibling, root, bf).expect("exclusion verifies");
    sibling
        .path
        .push(view.proof(&[1, 2]).expect("proof").path[1].clone());
    assert_eq!(
        err(verify_proof(&sibling, root, bf)),
        ProofError::ExclusionProofInvalidNode
    );
    // Inclusion with a wrong value.
    let mut wrong = view.proof(&[1, 2]).expect("proof");
    wrong.value = Some(vec![9]);
    assert_eq!(
        err(verify_proof(&wrong, root, bf)),
        ProofError::ProofValueDoesntMatch
    );
    // A tampered first node.
    let mut tampered = view.proof(&[1, 2, 3]).expect("proof");
    tampered.path[0].children.insert(7, Hash([1; 32]));
    assert!(rejected(verify_proof(&tampered, root, bf)));
}

#[test]
fn change_proof_bad_data_is_rejected() {
    let seed = SeededRng::seed_from_env(0x9f00_0003);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    for bf in BranchFactor::ALL {
        let (server, mut model) = random_db(&mut rng, bf, 300);
        let kvs: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let client = db_with(bf, &kvs);
        let r1 = server.root().expect("root");
        mutate(&server, &mut model, &mut rng);
        mutate(&server, &mut model, &mut rng);
        let r2 = server.root().expect("root");
        let proof = server
            .change_proof(r1, r2, None, None, 1000)
            .expect("proof");
        assert!(proof.key_changes.len() >= 2, "the workload changes keys");
        client
            .verify_change_proof(&proof, None, None, r2, 1000)
            .expect("honest proof verifies");
        let check = |p: &arbor_merkledb::ChangeProof, what: &str| {
            assert!(
                rejected(client.verify_change_proof(p, None, None, r2, 1000)),
                "{bf:?}: {what} accepted"
            );
        };
        let mut p = proof.clone();
        p.key_changes.remove(0);
        check(&p, "dropped change");
        let mut p = proof.clone();
        let c = &mut p.key_changes[0];
        c.value = match &c.value {
            Some(_) => None,
            None => Some(vec![42]),
        };
        check(&p, "put/delete flipped");
        let mut p = proof.clone();
        if let Some(v) = p.key_changes.iter_mut().find_map(|c| c.value.as_mut()) {
            v.push(1);
            check(&p, "changed value");
        }
        let mut p = proof.clone();
        p.key_changes.swap(0, 1);
        check(&p, "reordered changes");
        let mut p = proof.clone();
        if let Some(node) = p.end_proof.first_mut() {
            node.children.insert(0, Hash([4; 32]));
            check(&p, "tampered end proof");
        }
        assert!(
            rejected(client.verify_change_proof(&proof, None, None, r1, 1000)),
            "wrong end root"
        );
        let n = proof.key_changes.len();
        assert!(matches!(
            client.verify_change_proof(&proof, None, None, r2, n - 1),
            Err(Error::Proof(ProofError::TooManyKeys { .. }))
        ));
        assert!(matches!(
            client.verify_change_proof(&proof, Some(&[9]), Some(&[1]), r2, 1000),
            Err(Error::Proof(ProofError::StartAfterEnd))
        ));
        // The client is unchanged by verification; committing the honest proof reaches r2.
        assert_eq!(client.root().expect("root"), r1);
        client.commit_change_proof(&proof).expect("commit");
        assert_eq!(client.root().expect("root"), r2);
    }
}
