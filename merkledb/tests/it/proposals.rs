//! Proposal lifecycle, reads through stacked proposals, history views.

use arbor_merkledb::{
    Config, Error, Hash,
    test_utils::{random_kvs, reference_root},
};

use crate::backends::{Harness, MakeHarness};

fn put(k: &[u8], v: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    (k.to_vec(), Some(v.to_vec()))
}

fn del(k: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    (k.to_vec(), None)
}

fn stacked_proposals_commit_in_order(make: &MakeHarness) {
    let h: Harness = make(Config::default());
    let p1 =
        h.db.propose([put(b"a", b"1"), put(b"b", b"2")])
            .expect("p1");
    let p2 = p1.propose([del(b"a"), put(b"c", b"3")]).expect("p2");
    assert_eq!(p2.get(b"a").expect("get"), None);
    assert_eq!(p2.get(b"b").expect("get"), Some(b"2".to_vec()));
    assert_eq!(p2.key_count(), 2);
    assert_eq!(
        h.db.get(b"b").expect("get"),
        None,
        "nothing written before commit"
    );
    assert!(matches!(p2.commit(), Err(Error::ParentNotCommitted)));
    let root2 = p2.root();
    p1.commit().expect("commit p1");
    p2.commit().expect("commit p2");
    assert_eq!(h.db.root().expect("root"), root2);
    assert!(matches!(p2.commit(), Err(Error::AlreadyCommitted)));
    let model = [
        (b"b".to_vec(), b"2".to_vec()),
        (b"c".to_vec(), b"3".to_vec()),
    ]
    .into_iter()
    .collect();
    assert_eq!(root2, reference_root(&model, h.db.branch_factor()));
}

fn committing_invalidates_siblings(make: &MakeHarness) {
    let h = make(Config::default());
    let a = h.db.propose([put(b"x", b"1")]).expect("a");
    let b = h.db.propose([put(b"y", b"1")]).expect("b");
    let b_child = b.propose([put(b"z", b"1")]).expect("b child");
    a.commit().expect("commit a");
    assert!(matches!(b.commit(), Err(Error::Invalid)));
    assert!(matches!(b.get(b"y"), Err(Error::Invalid)));
    assert!(matches!(b_child.get(b"z"), Err(Error::Invalid)));
    assert!(matches!(
        b_child.propose([put(b"q", b"")]),
        Err(Error::Invalid)
    ));
}

fn range_reads_merge_overlay_and_store(make: &MakeHarness) {
    let h = make(Config::default());
    h.db.propose((0u8..50).map(|i| put(&[i], &[i])))
        .expect("p")
        .commit()
        .expect("commit");
    let p =
        h.db.propose([del(&[10]), put(&[10, 0], b"new"), put(&[60], b"x")])
            .expect("p");
    let got = p.range(&[9], Some(&[11]), 100).expect("range");
    let keys: Vec<_> = got.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        vec![vec![9], vec![10, 0], vec![11]],
        "inclusive bounds, overlay merged"
    );
    assert_eq!(p.range(&[], None, 3).expect("range").len(), 3);
    assert_eq!(p.range(&[], None, 1000).expect("range").len(), 51);
    assert!(p.range(&[5], Some(&[4]), 10).expect("range").is_empty());
}

fn history_views_survive_reopen(make: &MakeHarness) {
    let mut h = make(Config::default().with_history_len(4));
    let mut roots = vec![h.db.root().expect("root")];
    let mut states = vec![std::collections::BTreeMap::new()];
    for round in 0u8..6 {
        let mut model = states.last().cloned().expect("state");
        let mut ops = vec![put(&[round], &[round; 40]), put(&[1, round], b"v")];
        if round > 1 {
            ops.push(del(&[round - 2]));
        }
        for (k, v) in &ops {
            match v {
                Some(v) => model.insert(k.clone(), v.clone()),
                None => model.remove(k),
            };
        }
        h.db.propose(ops)
            .expect("propose")
            .commit()
            .expect("commit");
        roots.push(h.db.root().expect("root"));
        states.push(model);
    }
    h.reopen();
    let retained = h.db.retained_roots().expect("retained");
    assert_eq!(retained, roots[2..].to_vec(), "history of 4 keeps 5 roots");
    for (root, model) in roots.iter().zip(&states).skip(2) {
        let view = h.db.view_at(*root).expect("view at");
        assert_eq!(view.root(), *root);
        let all = view.range(&[], None, usize::MAX).expect("range");
        assert_eq!(
            all,
            model
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        );
    }
    assert!(matches!(
        h.db.view_at(roots[1]),
        Err(Error::RootNotInHistory { .. })
    ));
}

/// After a reopen no lower node is cached: a commit rebuilds the lower subtries it changes
/// from the values, and takes the previous values of its keys for the undo list from what
/// those rebuilds read. The view at the root before it must hold exactly the old state.
fn history_keeps_previous_values_read_by_rebuilds(make: &MakeHarness) {
    let mut h = make(Config::default());
    let kvs = random_kvs(0xb4f0, 4000);
    h.db.propose(kvs.iter().map(|(k, v)| put(k, v)))
        .expect("propose")
        .commit()
        .expect("commit");
    let before = h.db.root().expect("root");
    h.reopen();
    // Updates, deletes and inserts, in several subtries of every size.
    let mut ops = Vec::new();
    for (i, (k, _)) in kvs.iter().enumerate() {
        match i % 7 {
            0 => ops.push(put(k, b"new value")),
            1 => ops.push(del(k)),
            2 => ops.push(put(&[k.as_slice(), b"+"].concat(), b"x")),
            _ => {}
        }
    }
    h.db.propose(ops)
        .expect("propose")
        .commit()
        .expect("commit");
    let view = h.db.view_at(before).expect("view at");
    let mut model = kvs.clone();
    model.sort();
    assert_eq!(view.range(&[], None, usize::MAX).expect("range"), model);
    for (k, v) in kvs.iter().take(50) {
        assert_eq!(view.get(k).expect("get"), Some(v.clone()));
    }
}

fn app_meta_commits_with_contents_and_survives_reopen(make: &MakeHarness) {
    let mut h = make(Config::default());
    assert_eq!(h.db.app_meta(b"progress").expect("read"), None);
    let p = h.db.propose([put(b"a", b"1")]).expect("propose");
    let root = p.root();
    p.commit_with_meta(&[(b"progress", Some(b"half"))])
        .expect("commit");
    assert_eq!(
        h.db.root().expect("root"),
        root,
        "metadata does not touch the trie"
    );
    // A proposal invalidated by a sibling's commit writes neither its contents nor its records.
    let stale = h.db.propose([put(b"b", b"2")]).expect("propose");
    h.db.propose([put(b"c", b"3")])
        .expect("propose")
        .commit()
        .expect("commit");
    assert!(
        stale
            .commit_with_meta(&[(b"progress", Some(b"lost"))])
            .is_err()
    );
    // Proposals hold the database open.
    drop((p, stale));
    h.reopen();
    assert_eq!(
        h.db.app_meta(b"progress").expect("read"),
        Some(b"half".to_vec())
    );
    assert_eq!(h.db.app_meta(b"head").expect("read"), None, "own namespace");
    h.db.put_app_meta(b"progress", None).expect("delete");
    h.reopen();
    assert_eq!(h.db.app_meta(b"progress").expect("read"), None);
}

fn reset_empties_the_database_with_its_meta_and_invalidates_proposals(make: &MakeHarness) {
    // A small dirty budget: part of the trie is in the nodes space, part in memory.
    let mut h = make(
        Config::default()
            .with_history_len(4)
            .with_dirty_node_budget(64),
    );
    let kvs = random_kvs(7, 3000);
    for chunk in kvs.chunks(500) {
        h.db.propose(chunk.iter().map(|(k, v)| put(k, v)))
            .expect("propose")
            .commit()
            .expect("commit");
    }
    let old_root = h.db.root().expect("root");
    let seq = h.db.commit_seq().expect("seq");
    let stale = h.db.propose([put(b"x", b"1")]).expect("propose");
    let view = h.db.view().expect("view");
    h.db.reset_with_meta(&[(b"progress", Some(b"fresh"))])
        .expect("reset");

    assert_eq!(h.db.root().expect("root"), Hash::EMPTY_ROOT);
    assert_eq!(h.db.key_count().expect("count"), 0);
    assert_eq!(h.db.commit_seq().expect("seq"), seq + 1);
    assert_eq!(h.db.get(&kvs[0].0).expect("get"), None);
    assert_eq!(
        h.db.retained_roots().expect("retained"),
        vec![Hash::EMPTY_ROOT]
    );
    assert!(h.db.view_at(old_root).is_err(), "history goes too");
    assert!(stale.commit().is_err(), "a proposal from before is invalid");
    assert!(view.get(&kvs[0].0).is_err(), "so is a view");
    assert_eq!(
        h.db.app_meta(b"progress").expect("meta"),
        Some(b"fresh".to_vec())
    );
    drop((stale, view));

    // A new state over some of the old keys (their stored nodes must not be reused) and others.
    let next: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = kvs[..1000]
        .iter()
        .map(|(k, _)| (k.clone(), b"new".to_vec()))
        .chain(random_kvs(8, 1000))
        .collect();
    h.db.propose(next.iter().map(|(k, v)| put(k, v)))
        .expect("propose")
        .commit()
        .expect("commit");
    let root = h.db.root().expect("root");
    assert_eq!(root, reference_root(&next, h.config.branch_factor));
    h.reopen();
    assert_eq!(h.db.root().expect("root"), root);
    assert_eq!(h.db.key_count().expect("count"), next.len() as u64);
    let all =
        h.db.view()
            .expect("view")
            .range(&[], None, usize::MAX)
            .expect("range");
    assert_eq!(all, next.into_iter().collect::<Vec<_>>());
    assert_eq!(h.db.retained_roots().expect("retained").len(), 2);
}

crate::for_each_backend!(
    reset_empties_the_database_with_its_meta_and_invalidates_proposals,
    app_meta_commits_with_contents_and_survives_reopen,
    stacked_proposals_commit_in_order,
    committing_invalidates_siblings,
    range_reads_merge_overlay_and_store,
    history_views_survive_reopen,
    history_keeps_previous_values_read_by_rebuilds,
);
