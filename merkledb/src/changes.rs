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
mod tests;
