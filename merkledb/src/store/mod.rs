//! Storage behind one small trait, with two backends: [`RocksStore`] (embedded, the default) and
//! [`MemoryStore`] (tests, embedding). The trie and proofs never see which one they run on.
//!
//! A store holds four keyspaces ([`Space`]) and applies a [`Batch`] atomically: after a crash
//! either every operation of a batch is visible or none is.

mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;
mod rocks_config;

pub use memory::MemoryStore;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStore;
pub use rocks_config::RocksConfig;

use std::borrow::Cow;

use crate::error::StoreError;

/// The keyspaces of a store (column families in RocksDB).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// User key → user value. The source of truth.
    Values,
    /// Node key (see `storage_key`) → encoded inner node. Derived data: rebuildable from
    /// `Values`.
    Nodes,
    /// Database metadata: root, commit sequence, key count, clean-shutdown marker, config.
    Meta,
    /// Revision history: per-commit undo records and the root index.
    History,
}

impl Space {
    /// Every space.
    pub const ALL: [Space; 4] = [Space::Values, Space::Nodes, Space::Meta, Space::History];

    /// The space's name (its RocksDB column family).
    pub fn name(self) -> &'static str {
        match self {
            Space::Values => "values",
            Space::Nodes => "nodes",
            Space::Meta => "meta",
            Space::History => "history",
        }
    }
}

/// A key and its value.
pub type Record = (Vec<u8>, Vec<u8>);

/// One write: a put (`Some`) or a delete (`None`). Borrowed where the caller already holds the
/// bytes, so a commit does not copy its keys and values twice.
pub type Op<'a> = (Space, Cow<'a, [u8]>, Option<Cow<'a, [u8]>>);

/// A list of writes applied atomically by [`Store::write`].
#[derive(Default, Debug)]
pub struct Batch<'a> {
    /// The writes, applied in order.
    pub ops: Vec<Op<'a>>,
}

impl<'a> Batch<'a> {
    /// An empty batch with room for `ops` writes.
    pub fn with_capacity(ops: usize) -> Self {
        Self {
            ops: Vec::with_capacity(ops),
        }
    }

    /// Adds a put.
    pub fn put(
        &mut self,
        space: Space,
        key: impl Into<Cow<'a, [u8]>>,
        value: impl Into<Cow<'a, [u8]>>,
    ) {
        self.ops.push((space, key.into(), Some(value.into())));
    }

    /// Adds a delete.
    pub fn delete(&mut self, space: Space, key: impl Into<Cow<'a, [u8]>>) {
        self.ops.push((space, key.into(), None));
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// How durable a write must be before [`Store::write`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survives no crash until [`Store::compact_log`] has returned (RocksDB: not written to the
    /// WAL, only to memtables, which that call flushes). Only for data derived from the rest
    /// and vouched for by a later write once flushed: the nodes space, which counts only while
    /// the `clean` marker is set and is rebuilt from the values otherwise. Such a batch is
    /// still applied whole or not at all.
    Unlogged,
    /// Survives a crash of the process (RocksDB: WAL written, not fsynced).
    Process,
    /// Survives a crash of the machine (RocksDB: WAL fsynced).
    Machine,
}

/// Key-value storage for the trie.
pub trait Store: Send + Sync + 'static {
    /// The value at `key` in `space`.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The values at `keys` in `space`, in the order of `keys`, which are sorted ascending.
    /// One call for many keys: RocksDB looks them up together (its batched `MultiGet`, which
    /// shares the index and filter lookups and reads blocks in parallel), where one `get` per
    /// key would search every level for each.
    fn get_sorted(&self, space: Space, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(space, k)).collect()
    }

    /// Up to `limit` entries of `space` with `start <= key` and (when `end` is set) `key <= end`,
    /// in ascending key order.
    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;

    /// Every entry of `space` whose key starts with the first `bits` bits of `prefix` (padded
    /// bytes, bits past `bits` zero), in ascending key order.
    fn scan_prefix(
        &self,
        space: Space,
        prefix: &[u8],
        bits: usize,
    ) -> Result<Vec<Record>, StoreError> {
        const CHUNK: usize = 64;
        let mut out = Vec::new();
        let mut start = prefix.to_vec();
        loop {
            let items = self.scan(space, &start, None, CHUNK)?;
            let full = items.len() == CHUNK;
            for (key, value) in items {
                if !has_bit_prefix(&key, prefix, bits) {
                    return Ok(out);
                }
                start.clone_from(&key);
                out.push((key, value));
            }
            if !full {
                return Ok(out);
            }
            start.push(0);
        }
    }

    /// A reader for many [`Store::scan_prefix`] calls on `space` in a row. It may read the space
    /// as it was when the reader was made (RocksDB: one iterator, whose snapshot that is, seeked
    /// to each prefix: setting up an iterator per scan cost about 5 µs of a 14 µs scan at 100M
    /// keys), so a caller drops it before it must see a later write.
    fn prefix_reader(&self, space: Space) -> Result<Box<dyn PrefixReader + '_>, StoreError> {
        Ok(Box::new(ScanEach { store: self, space }))
    }

    /// Applies `batch` atomically.
    fn write(&self, batch: Batch<'_>, durability: Durability) -> Result<(), StoreError>;

    /// Removes every entry of the spaces in `clear`, then applies `batch`, all atomically: after
    /// a crash either the spaces are empty and the batch is written, or nothing changed.
    fn clear_and_write(
        &self,
        clear: &[Space],
        batch: Batch<'_>,
        durability: Durability,
    ) -> Result<(), StoreError>;

    /// Removes every entry of `space`.
    fn clear(&self, space: Space) -> Result<(), StoreError> {
        self.clear_and_write(&[space], Batch::default(), Durability::Process)
    }

    /// Moves buffered writes into the store's long-term files (RocksDB: flushes memtables), so
    /// the next open does not replay them. Writes made with [`Durability::Unlogged`] survive a
    /// crash only once this has returned; others do not depend on it.
    fn compact_log(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Prefix scans of one space, made by [`Store::prefix_reader`].
pub trait PrefixReader: Send {
    /// Every entry whose key starts with the first `bits` bits of `prefix`, as
    /// [`Store::scan_prefix`] returns them. Prefixes may come in any order.
    fn scan_prefix(&mut self, prefix: &[u8], bits: usize) -> Result<Vec<Record>, StoreError>;
}

/// The default [`PrefixReader`]: one [`Store::scan_prefix`] per call.
struct ScanEach<'a, S: ?Sized> {
    store: &'a S,
    space: Space,
}

impl<S: Store + ?Sized> PrefixReader for ScanEach<'_, S> {
    fn scan_prefix(&mut self, prefix: &[u8], bits: usize) -> Result<Vec<Record>, StoreError> {
        self.store.scan_prefix(self.space, prefix, bits)
    }
}

/// True when `key` starts with the first `bits` bits of `prefix` (which holds at least
/// `bits.div_ceil(8)` bytes).
pub fn has_bit_prefix(key: &[u8], prefix: &[u8], bits: usize) -> bool {
    let whole = bits / 8;
    if key.len() * 8 < bits || key[..whole] != prefix[..whole] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || (key[whole] ^ prefix[whole]) >> (8 - rest) == 0
}

/// Iterates `[start, end]` of a space in chunks, so neither backend holds a lock or a snapshot for
/// the whole walk.
pub struct ScanIter<'a> {
    store: &'a dyn Store,
    space: Space,
    next_start: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
    buffer: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    chunk: usize,
}

impl<'a> ScanIter<'a> {
    /// Starts a walk over `[start, end]` (`end = None` is unbounded).
    pub fn new(store: &'a dyn Store, space: Space, start: &[u8], end: Option<&[u8]>) -> Self {
        Self {
            store,
            space,
            next_start: Some(start.to_vec()),
            end: end.map(<[u8]>::to_vec),
            buffer: Vec::new().into_iter(),
            chunk: 1024,
        }
    }
}

impl Iterator for ScanIter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.buffer.next() {
            return Some(Ok(item));
        }
        let start = self.next_start.take()?;
        match self
            .store
            .scan(self.space, &start, self.end.as_deref(), self.chunk)
        {
            Err(e) => Some(Err(e)),
            Ok(items) => {
                if items.len() == self.chunk {
                    if let Some((last, _)) = items.last() {
                        let mut next = last.clone();
                        next.push(0);
                        self.next_start = Some(next);
                    }
                }
                self.buffer = items.into_iter();
                self.buffer.next().map(Ok)
            }
        }
    }
}

#[cfg(test)]
mod tests;
