//! Corrupt data read from disk yields a typed error: never a panic, never a wrong root.

use arbor_merkledb::{
    Config, CorruptionError, Db, Error,
    store::{Batch, Durability, RocksConfig, RocksStore, Space, Store},
};

fn filled(dir: &std::path::Path) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let kvs: Vec<_> = (0u32..2000)
        .map(|i| (i.to_be_bytes().to_vec(), Some(vec![i as u8; 40])))
        .collect();
    let db = Db::open(dir, Config::default()).expect("open");
    db.propose(kvs.clone())
        .expect("propose")
        .commit()
        .expect("commit");
    db.close().expect("close");
    kvs
}

fn tamper(
    dir: &std::path::Path,
    space: Space,
    f: impl Fn(&[u8], &[u8]) -> Option<Vec<u8>>,
) -> usize {
    let store = RocksStore::open(dir, &RocksConfig::default()).expect("store");
    let mut batch = Batch::default();
    for (k, v) in store.scan(space, &[], None, usize::MAX).expect("scan") {
        if let Some(new) = f(&k, &v) {
            batch.put(space, k, new);
        }
    }
    let n = batch.ops.len();
    store.write(batch, Durability::Machine).expect("write");
    n
}

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::Corrupt(_)) => {}
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[test]
fn garbage_node_record_is_a_decode_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    assert!(tamper(dir.path(), Space::Nodes, |_, _| Some(vec![0xde, 0xad])) > 0);
    let db = Db::open(dir.path(), Config::default()).expect("open");
    assert_corrupt(db.propose([(vec![0, 0, 0, 5], Some(b"x".to_vec()))]));
}

#[test]
fn wellformed_but_wrong_node_is_a_hash_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    // Flip one byte of every last child ID: still decodes, but hashes differently. A record
    // ends with the last child's ID, its has-value byte and one height per child; the stored
    // nodes of this trie (the root and the 16 below it) all have 16 children.
    tamper(dir.path(), Space::Nodes, |_, v| {
        let mut v = v.to_vec();
        let last = v.len() - 2 - 16;
        v[last] ^= 1;
        Some(v)
    });
    let db = Db::open(dir.path(), Config::default()).expect("open");
    match db.propose([(vec![0, 0, 0, 5], Some(b"x".to_vec()))]) {
        Err(Error::Corrupt(CorruptionError::NodeHashMismatch { .. })) => {}
        other => panic!(
            "expected a hash mismatch, got {:?}",
            other.map(|p| p.root())
        ),
    }
}

#[test]
fn corrupt_value_is_detected_when_its_leaf_is_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    tamper(dir.path(), Space::Values, |k, _| {
        (k == [0, 0, 0, 7]).then(|| vec![1; 40])
    });
    let db = Db::open(dir.path(), Config::default()).expect("open");
    assert_corrupt(db.propose([(vec![0, 0, 0, 7], None)]));
}

#[test]
fn corrupt_value_after_a_crash_fails_the_rebuild_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    tamper(dir.path(), Space::Values, |k, _| {
        (k == [0, 0, 0, 9]).then(|| vec![2; 40])
    });
    tamper(dir.path(), Space::Meta, |k, _| {
        (k == b"clean").then(|| vec![0])
    });
    match Db::open(dir.path(), Config::default()) {
        Err(Error::Corrupt(CorruptionError::RootMismatch { .. })) => {}
        other => panic!(
            "expected a root mismatch, got {:?}",
            other.map(|d| d.root())
        ),
    }
}

#[test]
fn corrupt_head_is_a_decode_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    tamper(dir.path(), Space::Meta, |k, v| {
        (k == b"head").then(|| v[..v.len() - 3].to_vec())
    });
    assert_corrupt(Db::open(dir.path(), Config::default()));
}
