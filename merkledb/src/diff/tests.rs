use std::collections::BTreeMap;

use super::*;
use crate::{
    Config,
    test_utils::{SeedReporter, SeededRng},
};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn db_of(model: &Model, bf: BranchFactor) -> Db {
    let db = Db::open_memory(Config {
        branch_factor: bf,
        ..Config::default()
    })
    .expect("open");
    if !model.is_empty() {
        let ops: Vec<_> = model
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        db.propose(ops).expect("propose").commit().expect("commit");
    }
    db
}

fn remove_under(model: &mut Model, prefix: &Key, except: Option<&Key>) {
    model.retain(|k, _| {
        let key = Key::from_bytes(k);
        !key.has_prefix(prefix) || except.is_some_and(|e| key.has_prefix(e))
    });
}

/// Walks `target` from its root against `local`'s IDs, as a replica would, applying every
/// verified difference to a model of `local`; returns the model and the nodes asked for.
fn walk(local: &Db, target: &Db) -> (Model, usize) {
    let bf = local.branch_factor();
    let mut model: Model = local
        .view()
        .expect("view")
        .range(&[], None, usize::MAX)
        .expect("range")
        .into_iter()
        .collect();
    let root = target.root().expect("root");
    // Pending nodes: the region their parent's child index spans, the node's key (`None`: the
    // root) and its ID.
    let mut pending: Vec<(Key, Option<Key>, Hash)> = vec![(Key::from_bytes(&[]), None, root)];
    let mut asked = 0;
    while let Some((region, path, id)) = pending.pop() {
        let local_ids = match &path {
            Some(p) => local.subtries_below(std::slice::from_ref(p)).expect("ids")[0].clone(),
            None => Vec::new(),
        };
        let query = NodeQuery {
            path: path.clone(),
            local: local_ids.clone(),
        };
        let diff = target
            .node_diffs_at(root, &[query], usize::MAX)
            .expect("served")
            .remove(0);
        asked += 1;
        let children = diff
            .verify(path.as_ref(), id, &local_ids, bf)
            .expect("an honest diff verifies");
        let node_key = diff.key.clone();
        // Only now is the node's key proven: nothing of the region lies outside it.
        remove_under(&mut model, &region, Some(&node_key));
        if path.is_none() {
            // The root was asked for without the replica's IDs: an index the target lacks was
            // not reported absent.
            for index in (0..bf.children()).map(|i| i as u8) {
                if !children.iter().any(|c| child_index(c) == index) {
                    remove_under(&mut model, &node_key.child(index, bf.token_bits()), None);
                }
            }
        }
        if node_key.is_whole_bytes() {
            match &diff.value {
                Some(v) => {
                    model.insert(node_key.as_bytes().to_vec(), v.clone());
                }
                None => {
                    model.remove(node_key.as_bytes());
                }
            }
        }
        for child in children {
            match child {
                VerifiedChild::Absent { index } => {
                    remove_under(&mut model, &node_key.child(index, bf.token_bits()), None);
                }
                VerifiedChild::Leaf { index, key, value } => {
                    remove_under(&mut model, &node_key.child(index, bf.token_bits()), None);
                    model.insert(key.as_bytes().to_vec(), value);
                }
                VerifiedChild::Node { index, key, id } => {
                    pending.push((node_key.child(index, bf.token_bits()), Some(key), id));
                }
            }
        }
    }
    (model, asked)
}

fn child_index(child: &VerifiedChild) -> u8 {
    match child {
        VerifiedChild::Absent { index }
        | VerifiedChild::Leaf { index, .. }
        | VerifiedChild::Node { index, .. } => *index,
    }
}

fn contents(db: &Db) -> Model {
    db.view()
        .expect("view")
        .range(&[], None, usize::MAX)
        .expect("range")
        .into_iter()
        .collect()
}

fn random_model(rng: &mut SeededRng, n: usize) -> Model {
    (0..n)
        .map(|_| {
            let len = 1 + rng.below(6) as usize;
            let vlen = if rng.below(20) == 0 {
                INLINE_LEAF_VALUE + 10
            } else {
                rng.below(40) as usize
            };
            (rng.bytes(len), rng.bytes(vlen))
        })
        .collect()
}

#[test]
fn walking_the_differences_rebuilds_the_target_exactly() {
    let seed = SeededRng::seed_from_env(0xd1ff);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    for bf in [
        BranchFactor::Sixteen,
        BranchFactor::Two,
        BranchFactor::TwoFiftySix,
    ] {
        for round in 0..20 {
            let size = rng.below(300) as usize;
            let local = random_model(&mut rng, size);
            let mut target = local.clone();
            let changes = rng.below(40) as usize;
            for _ in 0..changes {
                match rng.below(3) {
                    0 => {
                        let len = 1 + rng.below(6) as usize;
                        target.insert(rng.bytes(len), rng.bytes(8));
                    }
                    1 if !target.is_empty() => {
                        let k = target.keys().nth(rng.below(target.len() as u64) as usize);
                        let k = k.cloned().expect("key");
                        target.insert(k, rng.bytes(3));
                    }
                    _ if !target.is_empty() => {
                        let k = target.keys().nth(rng.below(target.len() as u64) as usize);
                        let k = k.cloned().expect("key");
                        target.remove(&k);
                    }
                    _ => {}
                }
            }
            if target.is_empty() {
                continue;
            }
            let (local_db, target_db) = (db_of(&local, bf), db_of(&target, bf));
            let (rebuilt, asked) = walk(&local_db, &target_db);
            assert_eq!(rebuilt, contents(&target_db), "{bf:?} round {round}");
            if local == target {
                // The root is asked for without the replica's IDs (its key is not known yet),
                // so each of its inner children is asked for once more, and found equal.
                assert!(
                    asked <= 1 + bf.children() as usize,
                    "equal tries need only the root and its children: {asked}"
                );
            }
        }
    }
}

#[test]
fn a_walk_asks_for_the_changed_paths_only() {
    let mut rng = SeededRng::new(7);
    let local: Model = (0..20_000)
        .map(|_| (rng.bytes(32), rng.bytes(32)))
        .collect();
    let mut target = local.clone();
    for _ in 0..10 {
        target.insert(rng.bytes(32), rng.bytes(32));
    }
    let bf = BranchFactor::Sixteen;
    let (rebuilt, asked) = walk(&db_of(&local, bf), &db_of(&target, bf));
    assert_eq!(rebuilt, target);
    // Ten new keys in a trie about four levels deep: at most ten paths of four inner nodes.
    assert!(asked <= 1 + 10 * 4, "asked for {asked} nodes");
}

#[test]
fn every_tampering_of_an_honest_diff_is_rejected() {
    let mut rng = SeededRng::new(11);
    let local: Model = (0..500).map(|_| (rng.bytes(4), rng.bytes(8))).collect();
    let mut target = local.clone();
    for _ in 0..50 {
        target.insert(rng.bytes(4), rng.bytes(8));
    }
    for k in local.keys().take(20) {
        target.remove(k);
    }
    let bf = BranchFactor::Sixteen;
    let (local_db, target_db) = (db_of(&local, bf), db_of(&target, bf));
    let root = target_db.root().expect("root");
    let diff = target_db
        .node_diffs_at(
            root,
            &[NodeQuery {
                path: None,
                local: vec![],
            }],
            usize::MAX,
        )
        .expect("root")
        .remove(0);
    let children = diff.verify(None, root, &[], bf).expect("honest");
    let (key, id) = children
        .iter()
        .find_map(|c| match c {
            VerifiedChild::Node { key, id, .. } => Some((key.clone(), *id)),
            _ => None,
        })
        .expect("an inner child");
    let local_ids = local_db
        .subtries_below(std::slice::from_ref(&key))
        .expect("ids")[0]
        .clone();
    let honest = target_db
        .node_diffs_at(
            root,
            &[NodeQuery {
                path: Some(key.clone()),
                local: local_ids.clone(),
            }],
            usize::MAX,
        )
        .expect("served")
        .remove(0);
    honest
        .verify(Some(&key), id, &local_ids, bf)
        .expect("honest verifies");
    assert!(!honest.children.is_empty());
    let mut tamperings: Vec<NodeDiff> = Vec::new();
    // Drop each differing child (a change hidden as "unchanged").
    for i in 0..honest.children.len() {
        let mut t = honest.clone();
        t.children.remove(i);
        tamperings.push(t);
    }
    // Change each leaf's value or key, each node's ID.
    for i in 0..honest.children.len() {
        let mut t = honest.clone();
        match &mut t.children[i].change {
            ChildChange::Leaf { value, .. } => value.push(1),
            ChildChange::Node { id, .. } => id.0[0] ^= 1,
            ChildChange::Absent => continue,
        }
        tamperings.push(t);
        // A leaf's key is in its ID. (A node's is too, so a false key for a node is caught
        // when that node is asked for: its key must be the one claimed here.)
        let mut t = honest.clone();
        match &mut t.children[i].change {
            ChildChange::Leaf { tail, .. } => *tail = Key::from_bytes(&[0xff; 3]).skip(4),
            _ => continue,
        }
        tamperings.push(t);
    }
    // A value added, an index out of range, out of order.
    let mut t = honest.clone();
    t.value = Some(vec![1]);
    tamperings.push(t);
    let mut t = honest.clone();
    t.children[0].index = 16;
    tamperings.push(t);
    if honest.children.len() > 1 {
        let mut t = honest.clone();
        t.children.swap(0, 1);
        tamperings.push(t);
    }
    for (n, t) in tamperings.iter().enumerate() {
        assert!(
            t.verify(Some(&key), id, &local_ids, bf).is_err(),
            "tampering {n} was accepted: {t:?}"
        );
    }
    // A key that does not end on a token boundary (a peer's answer for the root, whose key is
    // not known beforehand), for the node and for a child.
    let mut t = honest.clone();
    t.key = Key::from_bits(&[0xa8], 5).expect("key");
    assert_eq!(
        t.verify(None, id, &local_ids, bf),
        Err(NodeDiffError::UnalignedKey)
    );
    let mut t = honest.clone();
    t.children[0].change = ChildChange::Node {
        tail: Key::from_bits(&[0x80], 1).expect("key"),
        id: Hash([1; 32]),
    };
    assert_eq!(
        t.verify(Some(&key), id, &local_ids, bf),
        Err(NodeDiffError::UnalignedKey)
    );
    // The honest diff against another key or ID.
    assert_eq!(
        honest.verify(Some(&key.child(1, 4)), id, &local_ids, bf),
        Err(NodeDiffError::WrongKey)
    );
    assert_eq!(
        honest.verify(Some(&key), Hash([3; 32]), &local_ids, bf),
        Err(NodeDiffError::HashMismatch)
    );
}

#[test]
fn a_path_that_is_not_a_node_is_refused() {
    let model: Model = [(vec![0x10], vec![1]), (vec![0x20], vec![2])].into();
    let db = db_of(&model, BranchFactor::Sixteen);
    let root = db.root().expect("root");
    let query = NodeQuery {
        path: Some(Key::from_bytes(&[0x30])),
        local: vec![],
    };
    let unaligned = NodeQuery {
        path: Some(Key::from_bits(&[0x10], 3).expect("key")),
        local: vec![],
    };
    assert!(matches!(
        db.node_diffs_at(root, &[unaligned], usize::MAX),
        Err(crate::Error::Proof(ProofError::NoNodeAtPath))
    ));
    assert!(matches!(
        db.node_diffs_at(root, &[query], usize::MAX),
        Err(crate::Error::Proof(ProofError::NoNodeAtPath))
    ));
    assert!(matches!(
        db.node_diffs_at(Hash([9; 32]), &[], usize::MAX),
        Err(crate::Error::Proof(ProofError::InsufficientHistory { .. }))
    ));
}
