//! A proposal's batch: key → new value (`None` deletes), sorted by key with one entry per key.
//! A sorted vector rather than a tree map: it is built once, read by binary search and walked in
//! order, and building it is one sort instead of a tree insert per key.

use std::collections::BTreeMap;

use rayon::slice::ParallelSliceMut;

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
        // Stable sort keeps application order among equal keys; keep the last of each run.
        if entries.len() >= PARALLEL_SORT {
            entries.par_sort_by(|a, b| a.0.cmp(&b.0));
        } else {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
        // `dedup_by` removes the later of two equal neighbours: swap first, so the later
        // operation's value is the one kept.
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

#[cfg(test)]
mod tests {
    use super::*;

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
