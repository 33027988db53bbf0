//! Upstream full-trie roots (reference §2.6 b) and derived roots for every branch factor (§2.6 e).

use arbor_merkledb::{BranchFactor, Config, Db};
use sha2::{Digest, Sha256};

fn uvarint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn root_of(bf: BranchFactor, kvs: Vec<(Vec<u8>, Vec<u8>)>) -> String {
    let db = Db::open_memory(Config::default().with_branch_factor(bf)).expect("open");
    let proposal = db
        .propose(kvs.into_iter().map(|(k, v)| (k, Some(v))))
        .expect("propose");
    let root = proposal.root();
    proposal.commit().expect("commit");
    assert_eq!(db.root().expect("root"), root);
    root.to_hex()
}

fn uvarint_set(n: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let k = uvarint(i);
            let v = Sha256::digest(&k).to_vec();
            (k, v)
        })
        .collect()
}

/// Matches a full hex root, or an abbreviated `prefix…suffix` one from the reference.
fn assert_root(actual: &str, expected: &str) {
    match expected.split_once('…') {
        Some((head, tail)) => assert!(
            actual.starts_with(head) && actual.ends_with(tail),
            "root {actual} does not match {expected}"
        ),
        None => assert_eq!(actual, expected),
    }
}

#[test]
fn upstream_hash_changed_nodes_roots() {
    let cases = [
        (
            1,
            "9841ed7d0b2a2ebb35b09ee859099b437d99086a6ed720a54fd8b868b47e3dca",
        ),
        (
            10,
            "b6465f2f0d2276e2973d1d56e87e29b9d676f91bde534bac7b075fb8f3a1a728",
        ),
        (
            100,
            "2b990486ebedb4f2bd4eba924dcf6ee59112fd69edef170f75b2249eac811c12",
        ),
        (
            1000,
            "bcaee17f6ee69de51c88f8a23af2a51605f5ab56fa0388488323cadf3db924f7",
        ),
        (
            10000,
            "7b2a56b4546c727ba3c90859caa62812f36f6c9b907d7827b2005eb2cf760275",
        ),
        (
            100000,
            "a12334bda30987fa635490db8ec891003d78f21568dd5033832f5cb14447d067",
        ),
    ];
    for (n, expected) in cases {
        assert_eq!(
            root_of(BranchFactor::Sixteen, uvarint_set(n)),
            expected,
            "n = {n}"
        );
    }
}

#[test]
fn derived_roots_for_every_branch_factor() {
    use BranchFactor::*;
    let kv = |k: &[u8], v: &[u8]| (k.to_vec(), v.to_vec());
    assert_root(
        &root_of(Sixteen, vec![kv(b"key", b"value")]),
        "70efedfc5db7ea66f5b49ea566719633181d095fed089cce52224e11f889463a",
    );
    let basic: Vec<_> = (0u8..5).map(|i| kv(&[i], &[i])).collect();
    for (bf, expected) in [
        (
            Two,
            "8ef111bae8f48e32e403f2cf2d5cc3285dc387ef3733b92687ec2039a27973cd",
        ),
        (
            Four,
            "4dbb8d35d05084aa5af321f27941bd452c7c5b52448eb8c48b99d1db5f5f36c5",
        ),
        (
            Sixteen,
            "f3b6b7d99184423b41b68f09d2c3ac0fe7d3325c5d67d31fdb8ca5a17d62d38a",
        ),
        (
            TwoFiftySix,
            "41af2676ca1011b3df17c26849fb0368abc3e84b6e462e3f07a72fc46b067ee5",
        ),
    ] {
        assert_root(&root_of(bf, basic.clone()), expected);
    }
    let empty_values = vec![kv(b"key1", b""), kv(b"key12", b"value1"), kv(b"key2", b"")];
    for (bf, expected) in [
        (Two, "d28dc312…f0e6"),
        (Four, "08f48a83…c167"),
        (
            Sixteen,
            "f3c4ada6deeaa4f2a70a01c22b25f045ae30221ae1f5905b86c1045d84eef2c7",
        ),
        (TwoFiftySix, "bdbd55d9…5a2d"),
    ] {
        assert_root(&root_of(bf, empty_values.clone()), expected);
    }
    for bf in BranchFactor::ALL {
        assert_root(
            &root_of(bf, vec![kv(b"", &[1]), kv(&[0], &[2])]),
            "35dc77ed3a109a7e5877d6eeb9a9db16403cc60078461b0e7e4a57badf5705dd",
        );
    }
    for (n, bf, expected) in [
        (10, Two, "3a76a39b…b11f"),
        (10, Four, "03cd5d2b…f2f2"),
        (10, TwoFiftySix, "b119129c…469a"),
        (100, Two, "ca74889d…a8a9"),
        (100, Four, "fb284b36…9f6c"),
        (
            100,
            TwoFiftySix,
            "222268960c62ac8897179db6fc95576c6b416bf09ec5ae2cce0bf86d6a90e1a6",
        ),
        (1000, Two, "492851c9…f4b6"),
        (1000, Four, "cf9becf9…3eb7"),
        (
            1000,
            TwoFiftySix,
            "7b216fb3c2a30b4ca90fb2e4e1ebe0a2106b1db24759bc55d357acf4d053ad3b",
        ),
    ] {
        assert_root(&root_of(bf, uvarint_set(n)), expected);
    }
}

#[test]
fn empty_root_is_zero_and_roots_ignore_insertion_order() {
    let db = Db::open_memory(Config::default()).expect("open");
    assert_eq!(db.root().expect("root").to_hex(), "0".repeat(64));
    // Insert the 1000-key set one key per commit, in reverse: same root as one batch.
    let set = uvarint_set(1000);
    for (k, v) in set.iter().rev() {
        db.propose([(k.clone(), Some(v.clone()))])
            .expect("propose")
            .commit()
            .expect("commit");
    }
    assert_eq!(
        db.root().expect("root").to_hex(),
        "bcaee17f6ee69de51c88f8a23af2a51605f5ab56fa0388488323cadf3db924f7"
    );
    assert_eq!(db.key_count().expect("count"), 1000);
}
