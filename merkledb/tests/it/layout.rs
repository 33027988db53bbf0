//! The storage layout's version: a database written before version 2 (every inner node stored,
//! no heights) is migrated on open; a newer version is refused, naming it. And the nodes space
//! of version 2 holds only the upper inner nodes: the rest is rebuilt from the values.

use arbor_merkledb::{
    Config, CorruptionError, Db, Error,
    store::{Batch, Durability, RocksConfig, RocksStore, Space, Store},
    verify_range_proof,
};

/// Key-value pairs as a batch takes them.
type Kvs = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// 5,000 keys of 4 bytes (BF16: a trie of height 4), written and closed; returns them and the
/// root.
fn filled(dir: &std::path::Path) -> (Kvs, arbor_merkledb::Hash) {
    filled_with(dir, Config::default())
}

/// [`filled`], with `config`.
fn filled_with(dir: &std::path::Path, config: Config) -> (Kvs, arbor_merkledb::Hash) {
    let kvs: Vec<_> = (0u32..5000)
        .map(|i| {
            (
                i.wrapping_mul(0x9e37_79b9).to_be_bytes().to_vec(),
                Some(vec![i as u8; 40]),
            )
        })
        .collect();
    let db = Db::open(dir, config).expect("open");
    db.propose(kvs.clone())
        .expect("propose")
        .commit()
        .expect("commit");
    let root = db.root().expect("root");
    db.close().expect("close");
    (kvs, root)
}

fn edit_store(dir: &std::path::Path, f: impl FnOnce(&RocksStore, &mut Batch<'static>)) {
    let store = RocksStore::open(dir, &RocksConfig::default()).expect("store");
    let mut batch = Batch::default();
    f(&store, &mut batch);
    store.write(batch, Durability::Machine).expect("write");
}

fn count(dir: &std::path::Path, space: Space) -> usize {
    let store = RocksStore::open(dir, &RocksConfig::default()).expect("store");
    store
        .scan(space, &[], None, usize::MAX)
        .expect("scan")
        .len()
}

#[test]
fn only_the_upper_inner_nodes_are_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    // 5,000 random keys at BF16: the root and its 16 children have height 3 or more; the 256
    // nodes below them (about 20 keys each) and everything under those are rebuilt from values.
    assert_eq!(count(dir.path(), Space::Nodes), 17);
}

#[test]
fn a_close_writes_back_a_dirty_set_larger_than_one_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A dirty budget of 160 nodes: close writes the set back 10 nodes per store batch, so the
    // 17 stored nodes take two batches, and the nodes space must hold all of them.
    let (mut kvs, root) = filled_with(dir.path(), Config::default().with_dirty_node_budget(160));
    assert_eq!(count(dir.path(), Space::Nodes), 17);
    let db = Db::open(dir.path(), Config::default()).expect("open");
    assert_eq!(db.root().expect("root"), root);
    // A proof of everything walks every stored node: none may be missing or stale.
    let proof = db
        .range_proof_at(root, None, None, kvs.len())
        .expect("range proof");
    verify_range_proof(&proof, None, None, root, kvs.len(), db.branch_factor()).expect("verifies");
    kvs.sort();
    let proved: Kvs = proof
        .key_values
        .iter()
        .map(|kv| (kv.key.clone(), Some(kv.value.clone())))
        .collect();
    assert_eq!(proved, kvs);
}

#[test]
fn a_version_1_database_is_migrated_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kvs, root) = filled(dir.path());
    // What version 1 left: no layout record, a head without the root's height, and node
    // records in another encoding (here: garbage, which the migration must discard).
    edit_store(dir.path(), |store, batch| {
        batch.delete(Space::Meta, b"format".to_vec());
        let head = store.get(Space::Meta, b"head").expect("get").expect("head");
        batch.put(
            Space::Meta,
            b"head".to_vec(),
            head[..head.len() - 1].to_vec(),
        );
        for (key, _) in store
            .scan(Space::Nodes, &[], None, usize::MAX)
            .expect("scan")
        {
            batch.put(Space::Nodes, key, vec![0xde, 0xad]);
        }
        batch.put(Space::Nodes, vec![0x42, 0], vec![0xbe, 0xef]);
    });
    let db = Db::open(dir.path(), Config::default()).expect("migrated");
    assert_eq!(db.root().expect("root"), root);
    for (key, value) in kvs.iter().step_by(97) {
        assert_eq!(db.get(key).expect("get"), *value);
    }
    // The migrated database commits and proves like any other.
    let p = db
        .propose([(kvs[5].0.clone(), Some(b"changed".to_vec()))])
        .expect("propose");
    p.commit().expect("commit");
    let new_root = db.root().expect("root");
    let start = kvs[200].0.clone();
    let proof = db
        .range_proof_at(new_root, Some(&start), None, 100)
        .expect("range proof");
    assert_eq!(proof.key_values.len(), 100);
    verify_range_proof(
        &proof,
        Some(&start),
        None,
        new_root,
        100,
        db.branch_factor(),
    )
    .expect("verifies");
    db.close().expect("close");
    drop((p, db));
    assert_eq!(count(dir.path(), Space::Nodes), 17);
    let store = RocksStore::open(dir.path(), &RocksConfig::default()).expect("store");
    assert_eq!(
        store.get(Space::Meta, b"format").expect("get"),
        Some(2u32.to_be_bytes().to_vec())
    );
}

#[test]
fn a_newer_layout_is_refused_with_its_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    edit_store(dir.path(), |_, batch| {
        batch.put(Space::Meta, b"format".to_vec(), 3u32.to_be_bytes().to_vec());
    });
    match Db::open(dir.path(), Config::default()) {
        Err(e @ Error::UnsupportedFormat { found: 3, .. }) => {
            assert!(e.to_string().contains("layout version 3"), "{e}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|d| d.root())),
    }
}

#[test]
fn a_value_missing_under_an_unstored_subtrie_is_a_corruption_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kvs, _) = filled(dir.path());
    let gone = kvs[11].0.clone();
    edit_store(dir.path(), |_, batch| {
        batch.delete(Space::Values, gone.clone())
    });
    let db = Db::open(dir.path(), Config::default()).expect("open");
    let mut neighbour = gone.clone();
    *neighbour.last_mut().expect("4 bytes") ^= 1;
    match db.propose([(neighbour, Some(b"x".to_vec()))]) {
        Err(Error::Corrupt(
            CorruptionError::NodeHashMismatch { .. } | CorruptionError::MissingNode(_),
        )) => {}
        other => panic!(
            "expected a corruption error, got {:?}",
            other.map(|p| p.root())
        ),
    }
}
