use super::*;
use crate::test_utils::{SeedReporter, SeededRng};

/// Puts, deletes and an empty batch apply; a delete after a put in one batch wins.
#[test]
fn batches_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RocksStore::open(dir.path(), &RocksConfig::default()).expect("open");
    write_and_read_back(&store);
}

/// Memtables merged per flush (`memtables_per_flush`) lose nothing: with 64 KiB memtables,
/// ~20 of them fill, flushes merge some while others wait unflushed, and every key reads
/// back, by point read and in one ordered scan, before and after a reopen. Merging makes
/// fewer level-0 files (at most two memtables can merge when one is flushed at a time: a
/// third stalls the writer), which shows the setting reaches RocksDB.
#[test]
fn merged_memtable_flushes_keep_every_write() {
    let seed = SeededRng::seed_from_env(0x3e37);
    let _report = SeedReporter { seed };
    let mut files = Vec::new();
    for per_flush in [1, 4] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RocksConfig {
            write_buffer_bytes: 64 << 10,
            memtables_per_flush: per_flush,
            level0_compaction_trigger: 1000,
            ..RocksConfig::default()
        };
        let mut rng = SeededRng::new(seed);
        let mut model = std::collections::BTreeMap::new();
        let store = RocksStore::open(dir.path(), &config).expect("open");
        for _ in 0..400 {
            let mut batch = Batch::default();
            for _ in 0..25 {
                let key = rng.bytes(32);
                let len = rng.below(200) as usize;
                let value = rng.bytes(len);
                batch.put(Space::Values, key.clone(), value.clone());
                model.insert(key, value);
            }
            store.write(batch, Durability::Process).expect("write");
        }
        let level0 = |store: &RocksStore| {
            let db = store.db().expect("db");
            let cf = cf(&db, Space::Values).expect("family");
            db.property_int_value_cf(&cf, "rocksdb.num-files-at-level0")
                .expect("property")
                .unwrap_or(0)
        };
        let check = |store: &RocksStore| {
            for (key, value) in &model {
                let got = store.get(Space::Values, key).expect("get");
                assert_eq!(got.as_ref(), Some(value), "per_flush {per_flush}");
            }
            let all = store
                .scan(Space::Values, b"", None, usize::MAX)
                .expect("scan");
            let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert!(all == expected, "per_flush {per_flush}: scan differs");
        };
        check(&store);
        store.compact_log().expect("flush");
        files.push(level0(&store));
        drop(store);
        let store = RocksStore::open(dir.path(), &config).expect("reopen");
        check(&store);
    }
    assert!(
        files[0] >= 8 && files[1] < files[0],
        "level-0 files, one and four memtables per flush: {files:?}"
    );
}

/// Partitioned index and filter blocks find every key and no absent one, across many small
/// files in a cache far smaller than them, and after a reopen.
#[test]
fn partitioned_index_and_filters_read_every_file() {
    let seed = SeededRng::seed_from_env(0x9a27);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = std::collections::BTreeMap::new();
    for round in 0..3 {
        let config = RocksConfig {
            write_buffer_bytes: 64 << 10,
            block_cache_bytes: 256 << 10,
            ..RocksConfig::default()
        };
        let store = RocksStore::open(dir.path(), &config).expect("open");
        for _ in 0..200 {
            let mut batch = Batch::default();
            for _ in 0..25 {
                let (key, value) = (rng.bytes(32), rng.bytes(64));
                batch.put(Space::Values, key.clone(), value.clone());
                model.insert(key, value);
            }
            store.write(batch, Durability::Process).expect("write");
        }
        store.compact_log().expect("flush");
        for (key, value) in &model {
            let got = store.get(Space::Values, key).expect("get");
            assert_eq!(got.as_ref(), Some(value), "round {round}");
            let mut absent = key.clone();
            absent.push(0);
            assert_eq!(store.get(Space::Values, &absent).expect("get"), None);
        }
        let all = store
            .scan(Space::Values, b"", None, usize::MAX)
            .expect("scan");
        assert_eq!(all.len(), model.len());
    }
}

fn write_and_read_back(store: &RocksStore) {
    store.clear(Space::Values).expect("clear");
    store.clear(Space::History).expect("clear");
    let mut batch = Batch::default();
    batch.put(Space::Values, b"k".to_vec(), vec![7; 200]);
    batch.put(Space::History, b"h".to_vec(), b"".to_vec());
    batch.put(Space::Values, b"gone".to_vec(), b"x".to_vec());
    batch.delete(Space::Values, b"gone".to_vec());
    store.write(batch, Durability::Process).expect("write");
    assert_eq!(
        store.get(Space::Values, b"k").expect("get"),
        Some(vec![7; 200])
    );
    assert_eq!(store.get(Space::History, b"h").expect("get"), Some(vec![]));
    assert_eq!(store.get(Space::Values, b"gone").expect("get"), None);
    assert_eq!(store.get(Space::Nodes, b"k").expect("get"), None);
    // An empty batch (a header with a count of 0) is a no-op, also when fsynced.
    store
        .write(Batch::default(), Durability::Machine)
        .expect("empty write");
    assert_eq!(
        store.get(Space::Values, b"k").expect("get"),
        Some(vec![7; 200])
    );
}

/// A clear empties its spaces at once, files and all (the column family is recreated), unless
/// its batch writes there; either way the batch's writes and the emptiness survive a reopen.
#[test]
fn clearing_drops_the_files_and_keeps_the_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RocksConfig {
        write_buffer_bytes: 64 << 10,
        level0_compaction_trigger: 1000,
        ..RocksConfig::default()
    };
    let files = |store: &RocksStore| {
        let db = store.db().expect("db");
        let cf = cf(&db, Space::Values).expect("family");
        db.property_int_value_cf(&cf, "rocksdb.num-files-at-level0")
            .expect("property")
            .unwrap_or(0)
    };
    let fill = |store: &RocksStore, tag: u8| {
        for i in 0..100u32 {
            let mut batch = Batch::default();
            for j in 0..20u32 {
                let key = [&[tag][..], &i.to_be_bytes(), &j.to_be_bytes()].concat();
                batch.put(Space::Values, key, vec![tag; 100]);
            }
            store.write(batch, Durability::Process).expect("write");
        }
        store.compact_log().expect("flush");
    };
    let all = |store: &RocksStore, space| store.scan(space, b"", None, usize::MAX).expect("scan");

    let store = RocksStore::open(dir.path(), &config).expect("open");
    fill(&store, 1);
    assert!(files(&store) > 0, "level-0 files to drop");
    let mut batch = Batch::default();
    batch.put(Space::Meta, b"m".to_vec(), b"1".to_vec());
    store
        .clear_and_write(&[Space::Values], batch, Durability::Process)
        .expect("clear");
    assert_eq!(files(&store), 0, "the files went with the column family");
    assert!(all(&store, Space::Values).is_empty());
    assert_eq!(
        store.get(Space::Meta, b"m").expect("get"),
        Some(b"1".to_vec())
    );
    fill(&store, 2);
    drop(store);
    let store = RocksStore::open(dir.path(), &config).expect("reopen");
    assert_eq!(all(&store, Space::Values).len(), 2000);
    assert!(all(&store, Space::Values).iter().all(|(_, v)| v[0] == 2));

    // A batch writing the space it clears: range deletions only, its writes kept.
    let mut batch = Batch::default();
    batch.put(Space::Values, b"kept".to_vec(), b"v".to_vec());
    store
        .clear_and_write(&[Space::Values], batch, Durability::Process)
        .expect("clear");
    let expected = vec![(b"kept".to_vec(), b"v".to_vec())];
    assert_eq!(all(&store, Space::Values), expected);
    drop(store);
    let store = RocksStore::open(dir.path(), &config).expect("reopen");
    assert_eq!(all(&store, Space::Values), expected);
    assert_eq!(
        store.get(Space::Meta, b"m").expect("get"),
        Some(b"1".to_vec())
    );
}

/// Node records from [`NODE_BLOB_MIN`] bytes on live in blob files (`separate_node_records`),
/// smaller ones and every other space's records in the SST files, and the two kinds read back
/// alike: by point read and in one ordered scan, after overwrites and deletes whose garbage the
/// blob files keep, after a flush and a reopen; clearing the space empties it and frees its
/// blob files.
#[test]
fn large_node_records_live_in_blob_files() {
    let seed = SeededRng::seed_from_env(0xb10b);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RocksConfig {
        write_buffer_bytes: 64 << 10,
        memtables_per_flush: 1,
        ..RocksConfig::default()
    };
    let blob_files = |store: &RocksStore, space: Space| {
        let db = store.db().expect("db");
        let cf = cf(&db, space).expect("family");
        db.property_int_value_cf(&cf, "rocksdb.num-blob-files")
            .expect("property")
            .unwrap_or(0)
    };
    let mut model = std::collections::BTreeMap::new();
    let store = RocksStore::open(dir.path(), &config).expect("open");
    let keys: Vec<Vec<u8>> = (0..500).map(|_| rng.bytes(8)).collect();
    for _ in 0..8 {
        let mut batch = Batch::default();
        for key in &keys {
            match rng.below(10) {
                0 => {
                    batch.delete(Space::Nodes, key.clone());
                    batch.delete(Space::Values, key.clone());
                    model.remove(key);
                }
                r => {
                    // Both sides of the threshold, the threshold itself among them.
                    let len = match r {
                        1 => NODE_BLOB_MIN as usize,
                        2..=4 => rng.below(NODE_BLOB_MIN) as usize,
                        _ => NODE_BLOB_MIN as usize + rng.below(600) as usize,
                    };
                    let value = rng.bytes(len);
                    batch.put(Space::Nodes, key.clone(), value.clone());
                    batch.put(Space::Values, key.clone(), value.clone());
                    model.insert(key.clone(), value);
                }
            }
        }
        store.write(batch, Durability::Process).expect("write");
    }
    let check = |store: &RocksStore| {
        for key in &keys {
            assert_eq!(
                store.get(Space::Nodes, key).expect("get").as_ref(),
                model.get(key)
            );
        }
        let all = store
            .scan(Space::Nodes, b"", None, usize::MAX)
            .expect("scan");
        let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(all == expected, "the scan of the nodes space differs");
    };
    check(&store);
    store.compact_log().expect("flush");
    assert!(blob_files(&store, Space::Nodes) > 0, "no blob file");
    assert_eq!(blob_files(&store, Space::Values), 0);
    check(&store);
    drop(store);
    let store = RocksStore::open(dir.path(), &config).expect("reopen");
    check(&store);
    store.clear(Space::Nodes).expect("clear");
    assert!(
        store
            .scan(Space::Nodes, b"", None, usize::MAX)
            .expect("scan")
            .is_empty()
    );
    assert_eq!(blob_files(&store, Space::Nodes), 0);
    assert_eq!(
        store.get(Space::Values, &keys[0]).expect("get").as_ref(),
        model.get(&keys[0])
    );
}

/// An unlogged batch is applied whole and read back at once, is lost whole by a kill before
/// `compact_log` (it never reached the WAL, while a logged batch written after it survives),
/// and survives once `compact_log` has returned.
#[test]
fn unlogged_writes_survive_a_kill_only_once_flushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RocksStore::open(&dir.path().join("live"), &RocksConfig::default()).expect("open");
    let mut batch = Batch::default();
    batch.put(Space::Nodes, b"n1".to_vec(), vec![1; 300]);
    batch.put(Space::Nodes, b"n2".to_vec(), vec![2; 10]);
    store.write(batch, Durability::Unlogged).expect("write");
    let mut batch = Batch::default();
    batch.put(Space::Values, b"v".to_vec(), b"logged".to_vec());
    store.write(batch, Durability::Process).expect("write");
    assert_eq!(
        store.get(Space::Nodes, b"n1").expect("get"),
        Some(vec![1; 300])
    );

    let killed = dir.path().join("killed");
    crate::test_utils::copy_dir(&dir.path().join("live"), &killed);
    let reopened = RocksStore::open(&killed, &RocksConfig::default()).expect("open copy");
    assert_eq!(
        reopened.get(Space::Values, b"v").expect("get"),
        Some(b"logged".to_vec())
    );
    assert_eq!(reopened.get(Space::Nodes, b"n1").expect("get"), None);
    assert_eq!(reopened.get(Space::Nodes, b"n2").expect("get"), None);
    drop(reopened);

    store.compact_log().expect("flush");
    let flushed = dir.path().join("flushed");
    crate::test_utils::copy_dir(&dir.path().join("live"), &flushed);
    let reopened = RocksStore::open(&flushed, &RocksConfig::default()).expect("open copy");
    assert_eq!(
        reopened.get(Space::Nodes, b"n1").expect("get"),
        Some(vec![1; 300])
    );
    assert_eq!(
        reopened.get(Space::Nodes, b"n2").expect("get"),
        Some(vec![2; 10])
    );
}
