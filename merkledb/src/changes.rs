//! A proposal's batch: key → new value (`None` deletes), sorted by key with one entry per key.
//! A sorted vector rather than a tree map: it is built once, read by binary search and walked in
//! order, and building it is one sort instead of a tree insert per key.

use std::collections::BTreeMap;

use rayon::slice::ParallelSliceMut;

/// Batches at least this long are sorted through an index of key prefixes.
const PREFIX_SORT: usize = 256;

/// Batches at least this long are sorted on the thread pool.
const PARALLEL_SORT: usize = 4096;

/// One change: a key and its new value (`None` deletes).
pub(crate) type Entry = (Vec<u8>, Option<Vec<u8>>);

/// Sorted, unique changes.
#[derive(Default)]
pub(crate) struct Changes {
    entries: Vec<Entry>,
}

impl Changes {
    /// From operations in application order: the last operation on a key wins.
    pub(crate) fn from_ops(ops: impl IntoIterator<Item = Entry>) -> Self {
        let mut entries: Vec<Entry> = ops.into_iter().collect();
        // Strictly ascending input (a sync commits proof answers in key order) is already
        // sorted and unique; random input fails this test within a few pairs.
        if entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            return Self { entries };
        }
        if entries.len() >= PREFIX_SORT {
            entries = sort_by_prefix(entries);
        } else {
            // Stable: keeps application order among equal keys.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
        // Equal keys are adjacent in application order. `dedup_by` removes the later of two
        // equal neighbours: swap first, so the later operation's value is the one kept.
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        Self { entries }
    }

    /// From an already sorted, unique map.
    pub(crate) fn from_map(map: BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Self {
        Self {
            entries: map.into_iter().collect(),
        }
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no changes.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The change to `key`, if any: `Some(None)` is a delete.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.entries
            .binary_search_by(|(k, _)| k.as_slice().cmp(key))
            .ok()
            .map(|i| self.entries[i].1.as_deref())
    }

    /// The changes with `start <= key` and (if set) `key <= end`.
    pub(crate) fn range(&self, start: &[u8], end: Option<&[u8]>) -> &[Entry] {
        let from = self.entries.partition_point(|(k, _)| k.as_slice() < start);
        let to = match end {
            Some(end) => self.entries.partition_point(|(k, _)| k.as_slice() <= end),
            None => self.entries.len(),
        };
        if from >= to {
            &[]
        } else {
            &self.entries[from..to]
        }
    }

    /// All changes in key order.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.entries.iter()
    }
}

/// The first 8 bytes of `key` as a big-endian number, zero-padded. Ordering by it never
/// contradicts the keys' order: a strictly smaller prefix means a smaller key, and equal
/// prefixes need the keys compared.
fn key_prefix(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(bytes)
}

/// Sorts `entries` by key, equal keys in their original order. Sorting the entries themselves
/// follows a pointer to each key's bytes in every comparison (a cache miss per comparison once
/// the batch is larger than the caches); this sorts 16-byte `(prefix, position)` pairs instead
/// and reads the keys only on equal prefixes, then moves each entry once.
fn sort_by_prefix(mut entries: Vec<Entry>) -> Vec<Entry> {
    let Ok(len) = u32::try_from(entries.len()) else {
        entries.par_sort_by(|a, b| a.0.cmp(&b.0));
        return entries;
    };
    let mut order: Vec<(u64, u32)> = (0..len)
        .map(|i| (key_prefix(&entries[i as usize].0), i))
        .collect();
    let keys = &entries;
    let compare = |a: &(u64, u32), b: &(u64, u32)| {
        a.0.cmp(&b.0)
            .then_with(|| keys[a.1 as usize].0.cmp(&keys[b.1 as usize].0))
            .then(a.1.cmp(&b.1))
    };
    if order.len() >= PARALLEL_SORT {
        order.par_sort_unstable_by(compare);
    } else {
        order.sort_unstable_by(compare);
    }
    order
        .into_iter()
        .map(|(_, i)| std::mem::take(&mut entries[i as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
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
}
