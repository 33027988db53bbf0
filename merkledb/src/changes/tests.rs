use super::*;

/// Large batches (the prefix sort) agree with a map model: keys sharing 8-byte prefixes,
/// keys that are prefixes of others (also with zero bytes after), repeated keys.
#[test]
fn prefix_sort_keeps_the_last_write_of_every_key() {
    let seed = crate::test_utils::SeededRng::seed_from_env(7);
    let mut rng = crate::test_utils::SeededRng::new(seed);
    for _ in 0..20 {
        let mut ops = Vec::new();
        let mut model = BTreeMap::new();
        for i in 0..(PREFIX_SORT * 3) as u32 {
            let mut key = b"prefix00".to_vec();
            key.truncate(rng.below(9) as usize);
            for _ in 0..rng.below(3) {
                key.push([0u8, 1, 0xff][rng.below(3) as usize]);
            }
            let value = (rng.below(4) > 0).then(|| i.to_be_bytes().to_vec());
            model.insert(key.clone(), value.clone());
            ops.push((key, value));
        }
        let changes = Changes::from_ops(ops);
        let expected: Vec<Entry> = model.into_iter().collect();
        assert_eq!(
            changes.iter().cloned().collect::<Vec<_>>(),
            expected,
            "ARBOR_TEST_SEED={seed}"
        );
    }
}

/// Ascending input takes the no-sort path only when strictly ascending: a repeated key, even
/// at the end, still leaves one entry holding the last write.
#[test]
fn ascending_input_is_kept_and_repeats_are_still_merged() {
    let ascending: Vec<Entry> = (0u16..1000)
        .map(|i| (i.to_be_bytes().to_vec(), Some(vec![1])))
        .collect();
    let changes = Changes::from_ops(ascending.clone());
    assert_eq!(changes.iter().cloned().collect::<Vec<_>>(), ascending);
    let mut repeated = ascending.clone();
    repeated.push((999u16.to_be_bytes().to_vec(), None));
    let changes = Changes::from_ops(repeated);
    assert_eq!(changes.len(), 1000);
    assert_eq!(changes.get(&999u16.to_be_bytes()), Some(None));
}

#[test]
fn last_write_wins_and_ranges_are_inclusive() {
    let ops = vec![
        (b"b".to_vec(), Some(b"1".to_vec())),
        (b"a".to_vec(), None),
        (b"b".to_vec(), Some(b"2".to_vec())),
        (b"c".to_vec(), Some(b"3".to_vec())),
        (b"a".to_vec(), Some(b"0".to_vec())),
    ];
    let changes = Changes::from_ops(ops);
    assert_eq!(changes.len(), 3);
    assert_eq!(changes.get(b"a"), Some(Some(&b"0"[..])));
    assert_eq!(changes.get(b"b"), Some(Some(&b"2"[..])));
    assert_eq!(changes.get(b"z"), None);
    assert_eq!(changes.range(b"a", Some(b"b")).len(), 2);
    assert_eq!(changes.range(b"b", None).len(), 2);
    assert!(changes.range(b"c", Some(b"a")).is_empty());
    assert_eq!(changes.range(b"", Some(b"")).len(), 0);
}
