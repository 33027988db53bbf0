//! The RocksDB [`Store`]: one column family per [`Space`].
//!
//! Crash-safety argument: every [`Batch`] is one RocksDB `WriteBatch`, written to the WAL before
//! the memtable, and RocksDB recovers a WAL up to the last complete batch. With
//! [`Durability::Process`] the WAL is not fsynced: a killed process loses nothing that `write`
//! returned for (the data is in the OS page cache); a machine crash may lose the newest batches but
//! never splits one. [`Durability::Machine`] fsyncs, for the few writes that must survive power
//! loss (the clean-shutdown marker). [`Durability::Unlogged`] batches skip the WAL: they live in
//! memtables until a flush, and a killed process loses them whole (RocksDB applies a batch to
//! the memtables atomically); the nodes space's write-backs are such, since a crash discards
//! the nodes space anyway.

use std::{
    ops::Deref,
    path::Path,
    sync::{Arc, RwLock, RwLockReadGuard},
};

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, BoundColumnFamily, Cache, ColumnFamilyDescriptor,
    DBCompressionType, DBRawIteratorWithThreadMode, DBWithThreadMode, Direction, IteratorMode,
    MultiThreaded, Options, WriteBatch, WriteBufferManager, WriteOptions,
};

use super::{
    Batch, Durability, Op, PrefixReader, Record, RocksConfig, Space, Store, has_bit_prefix,
};
use crate::error::StoreError;

/// RocksDB in the mode whose column families can be dropped and created through `&self`, so
/// that a [`RocksPrefixReader`] can borrow the database without holding a lock guard (which
/// could not move between threads).
type Rocks = DBWithThreadMode<MultiThreaded>;

/// A RocksDB-backed store.
pub struct RocksStore {
    db: Rocks,
    /// Shared by every operation while it looks up column families; taken alone only to drop
    /// and recreate the column families a clear emptied, so no operation finds one missing.
    cf_swap: RwLock<()>,
    /// Each space's column-family options (by `Space as usize`), to recreate a dropped one.
    cf_opts: Vec<Options>,
}

fn rocks_err(op: &'static str, space: Option<Space>) -> impl Fn(rocksdb::Error) -> StoreError {
    move |source| StoreError::Rocks {
        op,
        space: space.map(Space::name),
        source,
    }
}

impl RocksStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path, config: &RocksConfig) -> Result<Self, StoreError> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);
        db_opts.set_max_background_jobs(2);
        db_opts.set_max_total_wal_size(512 << 20);
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        if let Some(total) = config.total_write_buffer_bytes {
            let manager = WriteBufferManager::new_write_buffer_manager_with_cache(
                total,
                false,
                cache.clone(),
            );
            db_opts.set_write_buffer_manager(&manager);
        }
        let cf_opts = |space: Space| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            table.set_cache_index_and_filter_blocks(true);
            // Index and filter blocks in 4 KiB partitions under a small pinned top level: a
            // read loads only the partitions on its key's path. Whole-file filters (about 1.2 MB
            // per million keys) and indexes do not stay in a small block cache (a sync client's,
            // or any cache at 100M+ keys): each read loaded and checksummed them whole again,
            // 62% of a 64 MiB sync client's CPU in a 1M-key catch-up. Partitioned, catch-ups
            // ran 2.3-2.9x faster; loading 1M keys onto 2M with the default 256 MiB cache about
            // 6% slower (55.3k against 58.8k keys/s, runs spread over 14%).
            table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
            table.set_partition_filters(true);
            table.set_metadata_block_size(4096);
            table.set_pin_top_level_index_and_filter(true);
            let mut opts = Options::default();
            opts.set_block_based_table_factory(&table);
            // Keys and values are mostly hashes: compression costs CPU and saves little.
            opts.set_compression_type(DBCompressionType::None);
            opts.set_write_buffer_size(match space {
                Space::Values | Space::Nodes | Space::History => config.write_buffer_bytes,
                Space::Meta => 4 << 20,
            });
            let per_flush = match space {
                Space::Values | Space::Nodes | Space::History => config.memtables_per_flush.max(1),
                Space::Meta => 1,
            };
            opts.set_min_write_buffer_number_to_merge(per_flush);
            opts.set_max_write_buffer_number(per_flush.saturating_add(2));
            let trigger = config.level0_compaction_trigger.max(1);
            opts.set_level_zero_file_num_compaction_trigger(trigger);
            opts.set_level_zero_slowdown_writes_trigger((trigger.saturating_mul(5) / 2).max(20));
            opts.set_level_zero_stop_writes_trigger((trigger.saturating_mul(7) / 2).max(36));
            if space == Space::Nodes {
                separate_node_records(&mut opts);
            }
            opts
        };
        let cf_opts: Vec<Options> = Space::ALL.iter().map(|s| cf_opts(*s)).collect();
        let cfs = Space::ALL
            .iter()
            .map(|s| ColumnFamilyDescriptor::new(s.name(), cf_opts[*s as usize].clone()));
        let db =
            Rocks::open_cf_descriptors(&db_opts, path, cfs).map_err(rocks_err("open", None))?;
        Ok(Self {
            db,
            cf_swap: RwLock::new(()),
            cf_opts,
        })
    }

    /// The database, with its column families held in place while the result lives.
    fn db(&self) -> Result<DbRef<'_>, StoreError> {
        Ok(DbRef {
            _swap: self.cf_swap.read().map_err(|_| StoreError::Poisoned)?,
            db: &self.db,
        })
    }
}

/// The database under a shared hold of [`RocksStore::cf_swap`].
struct DbRef<'a> {
    _swap: RwLockReadGuard<'a, ()>,
    db: &'a Rocks,
}

impl Deref for DbRef<'_> {
    type Target = Rocks;

    fn deref(&self) -> &Rocks {
        self.db
    }
}

/// [`Store::prefix_reader`] of RocksDB: one iterator, seeked to each prefix. It reads the
/// snapshot taken when it was made; the iterator keeps its column family's data alive even if
/// a clear drops the column family meanwhile.
struct RocksPrefixReader<'a> {
    iter: DBRawIteratorWithThreadMode<'a, Rocks>,
    space: Space,
}

impl PrefixReader for RocksPrefixReader<'_> {
    fn scan_prefix(&mut self, prefix: &[u8], bits: usize) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        self.iter.seek(&prefix[..bits.div_ceil(8)]);
        while let (Some(key), Some(value)) = (self.iter.key(), self.iter.value()) {
            if !has_bit_prefix(key, prefix, bits) {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
            self.iter.next();
        }
        self.iter
            .status()
            .map_err(rocks_err("scan", Some(self.space)))?;
        Ok(out)
    }
}

/// Appends `ops` to `wb`.
fn add_ops(db: &Rocks, wb: &mut WriteBatch, ops: &[Op<'_>]) -> Result<(), StoreError> {
    // Column family handles looked up once per space, not once per write.
    let mut handles: [Option<Arc<BoundColumnFamily<'_>>>; Space::ALL.len()] =
        [const { None }; Space::ALL.len()];
    for (space, key, value) in ops {
        let cf = match &handles[*space as usize] {
            Some(cf) => cf,
            None => handles[*space as usize].insert(cf(db, *space)?),
        };
        match value {
            Some(v) => wb.put_cf(cf, key, v),
            None => wb.delete_cf(cf, key),
        }
    }
    Ok(())
}

/// Node records of [`NODE_BLOB_MIN`] bytes or more (inner nodes with about seven children or
/// more: the stored levels of a large trie are nearly all full) go to blob files, and the nodes
/// space's SST files hold only their keys and references. A 10k-key commit into a large state
/// rewrites about one stored node per key, ~600 bytes each, and leveled compaction copied each
/// record again at every level: at 100M keys the nodes made 28 of the 38 bytes written per byte
/// committed. Compaction now moves ~30-byte references instead; a blob file is rewritten by
/// garbage collection once a quarter of the oldest files' contents are overwritten
/// (`blob_gc_age_cutoff`), or when half of an old file is garbage (`blob_gc_force_threshold`).
/// Measured (`benches/scale.rs`, alternating runs): write amplification 37.1 → 29.3 at 100M
/// keys and 8.1 → 7.55 at 10M; commit rates unchanged beyond the spread at 1M, 10M and 100M
/// (BENCHMARKS.md, Scale).
fn separate_node_records(opts: &mut Options) {
    opts.set_enable_blob_files(true);
    opts.set_min_blob_size(NODE_BLOB_MIN);
    opts.set_blob_file_size(64 << 20);
    opts.set_enable_blob_gc(true);
    opts.set_blob_gc_age_cutoff(0.25);
    opts.set_blob_gc_force_threshold(0.5);
}

/// The smallest node record [`separate_node_records`] puts in a blob file.
const NODE_BLOB_MIN: u64 = 256;

/// RocksDB's options for a write at `durability`: fsynced for [`Durability::Machine`], without
/// the WAL for [`Durability::Unlogged`].
fn write_options(durability: Durability) -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(durability == Durability::Machine);
    opts.disable_wal(durability == Durability::Unlogged);
    opts
}

fn cf(db: &Rocks, space: Space) -> Result<Arc<BoundColumnFamily<'_>>, StoreError> {
    db.cf_handle(space.name())
        .ok_or(StoreError::MissingSpace(space.name()))
}

/// At least the size of `ops` in RocksDB's write-batch encoding: a 12-byte header, then per
/// record a tag, a column family varint and length-prefixed key and value (≤ 5 bytes per varint).
fn encoded_size_bound(ops: &[Op<'_>]) -> usize {
    12 + ops
        .iter()
        .map(|(_, key, value)| 16 + key.len() + value.as_ref().map_or(0, |v| v.len()))
        .sum::<usize>()
}

impl Store for RocksStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db()?;
        db.get_cf(&cf(&db, space)?, key)
            .map_err(rocks_err("get", Some(space)))
    }

    fn get_sorted(&self, space: Space, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let db = self.db()?;
        db.batched_multi_get_cf(&cf(&db, space)?, keys.iter().copied(), true)
            .into_iter()
            .map(|r| {
                r.map(|v| v.map(|v| v.to_vec()))
                    .map_err(rocks_err("get", Some(space)))
            })
            .collect()
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        let db = self.db()?;
        let iter = db.iterator_cf(
            &cf(&db, space)?,
            IteratorMode::From(start, Direction::Forward),
        );
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(rocks_err("scan", Some(space)))?;
            if end.is_some_and(|e| &*k > e) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn scan_prefix(
        &self,
        space: Space,
        prefix: &[u8],
        bits: usize,
    ) -> Result<Vec<Record>, StoreError> {
        // One iterator, stopped at the first key past the prefix: the default's chunks would
        // read entries beyond it.
        self.prefix_reader(space)?.scan_prefix(prefix, bits)
    }

    fn prefix_reader(&self, space: Space) -> Result<Box<dyn PrefixReader + '_>, StoreError> {
        let _swap = self.cf_swap.read().map_err(|_| StoreError::Poisoned)?;
        let iter = self.db.raw_iterator_cf(&cf(&self.db, space)?);
        Ok(Box::new(RocksPrefixReader { iter, space }))
    }

    fn write(&self, batch: Batch<'_>, durability: Durability) -> Result<(), StoreError> {
        let db = self.db()?;
        // Sized once: growing RocksDB's buffer by doubling would copy it about twice per commit.
        let mut wb = WriteBatch::with_capacity_bytes(encoded_size_bound(&batch.ops));
        add_ops(&db, &mut wb, &batch.ops)?;
        db.write_opt(wb, &write_options(durability))
            .map_err(rocks_err("write", None))
    }

    fn compact_log(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        let cfs: Vec<Arc<BoundColumnFamily<'_>>> = Space::ALL
            .iter()
            .map(|s| cf(&db, *s))
            .collect::<Result<_, _>>()?;
        let cfs: Vec<&Arc<BoundColumnFamily<'_>>> = cfs.iter().collect();
        db.flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
            .map_err(rocks_err("flush", None))
    }

    fn clear_and_write(
        &self,
        clear: &[Space],
        batch: Batch<'_>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        {
            let db = self.db()?;
            let mut wb = WriteBatch::default();
            // The range deletions go first in the one write batch, so the batch's own writes
            // land after them. A range deletion's end is exclusive: the last key goes on its own.
            for space in clear {
                let cf = cf(&db, *space)?;
                let first = db.iterator_cf(&cf, IteratorMode::Start).next();
                let last = db.iterator_cf(&cf, IteratorMode::End).next();
                if let (Some(first), Some(last)) = (first, last) {
                    let (first, _) = first.map_err(rocks_err("clear", Some(*space)))?;
                    let (last, _) = last.map_err(rocks_err("clear", Some(*space)))?;
                    wb.delete_range_cf(&cf, &*first, &*last);
                    wb.delete_cf(&cf, &*last);
                }
            }
            add_ops(&db, &mut wb, &batch.ops)?;
            db.write_opt(wb, &write_options(durability))
                .map_err(rocks_err("clear", None))?;
        }
        // The spaces are empty now, after a crash too. Their files still hold the old records
        // under the range deletions, and RocksDB would read them again in every compaction that
        // meets them (in level 0, where bulk writes leave most files, it cannot drop files by
        // range): a 1M-key replica emptied and refilled compacted 276 MB instead of 158 MB.
        // Dropping and recreating the column families frees them at once. Only when the batch
        // wrote nothing there: the drop would take those writes along. A crash between the drop
        // and the creation leaves a column family missing, which the next open creates.
        let writes_cleared = batch.ops.iter().any(|(space, _, _)| clear.contains(space));
        if !writes_cleared {
            let _swap = self.cf_swap.write().map_err(|_| StoreError::Poisoned)?;
            for space in clear {
                self.db
                    .drop_cf(space.name())
                    .map_err(rocks_err("drop", Some(*space)))?;
                self.db
                    .create_cf(space.name(), &self.cf_opts[*space as usize])
                    .map_err(rocks_err("create", Some(*space)))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
