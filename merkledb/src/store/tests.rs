//! Conformance suite: every backend must pass the same tests.
use super::*;

fn conformance(store: &dyn Store) {
    assert_eq!(store.get(Space::Values, b"a").expect("get"), None);
    let mut batch = Batch::default();
    for k in [b"a".as_slice(), b"b", b"bb", b"c", b""] {
        batch.put(Space::Values, k.to_vec(), k.to_vec());
    }
    batch.put(Space::Nodes, b"a".to_vec(), b"node".to_vec());
    store.write(batch, Durability::Process).expect("write");
    assert_eq!(
        store.get(Space::Values, b"bb").expect("get"),
        Some(b"bb".to_vec())
    );
    assert_eq!(
        store.get(Space::Nodes, b"a").expect("get"),
        Some(b"node".to_vec())
    );
    assert_eq!(
        store.get(Space::Meta, b"a").expect("get"),
        None,
        "spaces are separate"
    );
    // Many sorted keys at once: present and absent ones, each in its place.
    assert_eq!(
        store
            .get_sorted(Space::Values, &[b"", b"a", b"ab", b"bb", b"d"])
            .expect("get_sorted"),
        vec![
            Some(b"".to_vec()),
            Some(b"a".to_vec()),
            None,
            Some(b"bb".to_vec()),
            None
        ]
    );
    assert_eq!(
        store.get_sorted(Space::Meta, &[b"a"]).expect("get_sorted"),
        vec![None]
    );
    assert!(
        store
            .get_sorted(Space::Values, &[])
            .expect("get_sorted")
            .is_empty()
    );

    let keys =
        |items: Vec<(Vec<u8>, Vec<u8>)>| items.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let all = store.scan(Space::Values, b"", None, 100).expect("scan");
    assert_eq!(
        keys(all),
        vec![
            b"".to_vec(),
            b"a".to_vec(),
            b"b".to_vec(),
            b"bb".to_vec(),
            b"c".to_vec()
        ]
    );
    // Both bounds inclusive.
    let mid = store
        .scan(Space::Values, b"a", Some(b"bb"), 100)
        .expect("scan");
    assert_eq!(
        keys(mid),
        vec![b"a".to_vec(), b"b".to_vec(), b"bb".to_vec()]
    );
    assert_eq!(
        store
            .scan(Space::Values, b"a", Some(b"b"), 1)
            .expect("scan")
            .len(),
        1
    );
    assert!(
        store
            .scan(Space::Values, b"c", Some(b"a"), 10)
            .expect("scan")
            .is_empty()
    );
    let walked: Vec<_> = ScanIter::new(store, Space::Values, b"a", None)
        .map(|r| r.expect("iter").0)
        .collect();
    assert_eq!(walked.len(), 4);

    let mut batch = Batch::default();
    batch.delete(Space::Values, b"b".to_vec());
    batch.put(Space::Values, b"d".to_vec(), vec![]);
    store.write(batch, Durability::Machine).expect("write");
    assert_eq!(store.get(Space::Values, b"b").expect("get"), None);
    assert_eq!(store.get(Space::Values, b"d").expect("get"), Some(vec![]));

    store.clear(Space::Values).expect("clear");
    assert!(
        store
            .scan(Space::Values, b"", None, 10)
            .expect("scan")
            .is_empty()
    );
    assert_eq!(
        store.get(Space::Nodes, b"a").expect("get"),
        Some(b"node".to_vec())
    );
}

fn chunked_iteration(store: &dyn Store) {
    let mut batch = Batch::default();
    for i in 0u32..3000 {
        batch.put(Space::History, i.to_be_bytes().to_vec(), vec![1]);
    }
    store.write(batch, Durability::Process).expect("write");
    let walked: Vec<_> = ScanIter::new(store, Space::History, &[], Some(&2999u32.to_be_bytes()))
        .map(|r| r.expect("iter").0)
        .collect();
    assert_eq!(walked.len(), 3000);
    assert!(walked.windows(2).all(|w| w[0] < w[1]));
}

/// `scan_prefix`, and one `prefix_reader` used for every scan in turn (its seeks going back as
/// well as forth), return exactly the keys under the prefix, at every bit length, over keys of
/// every length from 0 bytes, with the data spread over several files and the memtable (keys of
/// one prefix in several of them).
fn prefix_scans(store: &dyn Store) {
    let mut rng = crate::test_utils::SeededRng::new(0x5ca9);
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for round in 0..4 {
        let mut batch = Batch::default();
        for _ in 0..400 {
            // Few distinct first bytes, so that prefixes are shared across rounds.
            let len = (rng.bytes(1)[0] % 7) as usize;
            let mut key = rng.bytes(len);
            if let Some(first) = key.first_mut() {
                *first %= 4;
            }
            if let Some(second) = key.get_mut(1) {
                *second %= 8;
            }
            batch.put(Space::Values, key.clone(), vec![round]);
            keys.push(key);
        }
        store.write(batch, Durability::Process).expect("write");
        if round < 3 {
            store.compact_log().expect("flush");
        }
    }
    keys.sort();
    keys.dedup();
    let mut reader = store.prefix_reader(Space::Values).expect("prefix_reader");
    for (i, key) in keys.iter().enumerate().step_by(7) {
        for bits in 0..=key.len() * 8 {
            let mut prefix = key.clone();
            // A prefix's bits past `bits` are zero (see `Store::scan_prefix`).
            let whole = bits / 8;
            if whole < prefix.len() {
                let rest = bits % 8;
                prefix[whole] &= !(0xffu8 >> rest);
                prefix.truncate(whole + usize::from(rest > 0));
            }
            let want: Vec<&Vec<u8>> = keys
                .iter()
                .filter(|k| has_bit_prefix(k, &prefix, bits))
                .collect();
            let got = store
                .scan_prefix(Space::Values, &prefix, bits)
                .expect("scan_prefix");
            let got: Vec<&Vec<u8>> = got.iter().map(|(k, _)| k).collect();
            assert_eq!(got, want, "key {i} {key:?}, {bits} bits");
            let read = reader.scan_prefix(&prefix, bits).expect("reader");
            let read: Vec<&Vec<u8>> = read.iter().map(|(k, _)| k).collect();
            assert_eq!(read, want, "reader: key {i} {key:?}, {bits} bits");
        }
    }
}

macro_rules! store_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn conformance() {
                let (_guard, store) = $make;
                super::conformance(&store);
            }
            #[test]
            fn prefix_scans() {
                let (_guard, store) = $make;
                super::prefix_scans(&store);
            }
            #[test]
            fn chunked_iteration() {
                let (_guard, store) = $make;
                super::chunked_iteration(&store);
            }
        }
    };
}

store_suite!(memory, ((), MemoryStore::new()));
#[cfg(feature = "rocksdb")]
store_suite!(rocks, {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RocksStore::open(dir.path(), &RocksConfig::default()).expect("open");
    (dir, store)
});
