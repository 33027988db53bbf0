//! The RocksDB [`Store`]: one column family per [`Space`].
//!
//! Crash-safety argument: every [`Batch`] is one RocksDB `WriteBatch`, written to the WAL before
//! the memtable, and RocksDB recovers a WAL up to the last complete batch. With
//! [`Durability::Process`] the WAL is not fsynced: a killed process loses nothing that `write`
//! returned for (the data is in the OS page cache); a machine crash may lose the newest batches but
//! never splits one. [`Durability::Machine`] fsyncs, for the few writes that must survive power
//! loss (the clean-shutdown marker).

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    Direction, IteratorMode, Options, WriteBatch, WriteBufferManager, WriteOptions,
};

use super::{
    Batch, Durability, KeyValue, Op, Space, Store,
    batch_rep::{self, FamilyIds},
};
use crate::error::StoreError;

/// RocksDB tuning knobs.
#[derive(Clone, Debug)]
pub struct RocksConfig {
    /// Shared block cache size in bytes.
    pub block_cache_bytes: usize,
    /// Memtable size per column family in bytes.
    pub write_buffer_bytes: usize,
    /// Full memtables of a column family that one flush merges into one level-0 file
    /// (RocksDB's `min_write_buffer_number_to_merge`; up to two more fill meanwhile). Random
    /// writes land all over a memtable's skiplist and each insert misses the cache on the levels
    /// its search walks, more often the more entries it holds: many small memtables flushed
    /// together make inserts cheaper than one large one, with level-0 files as large as before.
    /// A family holds up to `memtables_per_flush + 2` memtables. Default 4 (of 8 MiB): the 1M-key
    /// commit benchmark 7% faster than one 32 MiB memtable per flush (BENCHMARKS.md, seventh
    /// session), scans of unflushed data ~7% slower (more skiplists to merge).
    pub memtables_per_flush: i32,
    /// Cap on all memtables together, in bytes (charged to the block cache, so block cache and
    /// memtables then share `block_cache_bytes`); `None` = only the per-family sizes bound them.
    pub total_write_buffer_bytes: Option<usize>,
    /// Level-0 files per column family that start a compaction into level 1 (RocksDB's default
    /// is 4). Writers with small memtables produce many small level-0 files, and every such
    /// compaction rewrites the overlapping part of level 1: a bulk writer that reads little
    /// gains from waiting for more (see
    /// [`Config::for_bulk_writes`](crate::Config::for_bulk_writes)).
    /// Writes slow down at 2.5× and stop at 3.5× this many files, never earlier than RocksDB's
    /// defaults (20 and 36).
    pub level0_compaction_trigger: i32,
}

impl Default for RocksConfig {
    fn default() -> Self {
        Self {
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 8 << 20,
            memtables_per_flush: 4,
            total_write_buffer_bytes: None,
            level0_compaction_trigger: 4,
        }
    }
}

/// A RocksDB-backed store.
pub struct RocksStore {
    db: DB,
    /// Each space's column family ID, when this RocksDB's batch encoding was checked to be the
    /// one `batch_rep` writes; `None`: batches are built through the C API.
    family_ids: Option<FamilyIds>,
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
            ColumnFamilyDescriptor::new(space.name(), opts)
        };
        let cfs = Space::ALL.map(cf_opts);
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(rocks_err("open", None))?;
        let mut store = Self {
            db,
            family_ids: None,
        };
        store.family_ids = batch_rep::learn_family_ids(|ops| {
            store
                .batch_through_api(ops)
                .map(|wb| wb.data().to_vec())
                .unwrap_or_default()
        });
        if store.family_ids.is_none() {
            tracing::warn!("RocksDB's write-batch encoding differs from Arbor's: using its C API");
        }
        Ok(store)
    }

    /// A RocksDB batch of `ops`, built record by record through the C API.
    fn batch_through_api(&self, ops: &[Op<'_>]) -> Result<WriteBatch, StoreError> {
        // Sized once: growing RocksDB's buffer by doubling reallocated (and page-faulted) about
        // twice the batch's size on every commit.
        let mut wb = WriteBatch::with_capacity_bytes(batch_rep::size_bound(ops));
        // Column family handles looked up once per space, not once per write.
        let mut handles: [Option<&ColumnFamily>; Space::ALL.len()] = [None; Space::ALL.len()];
        for (space, key, value) in ops {
            let cf = match handles[*space as usize] {
                Some(cf) => cf,
                None => *handles[*space as usize].insert(self.cf(*space)?),
            };
            match value {
                Some(v) => wb.put_cf(cf, key, v),
                None => wb.delete_cf(cf, key),
            }
        }
        Ok(wb)
    }

    fn cf(&self, space: Space) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(space.name())
            .ok_or(StoreError::MissingSpace(space.name()))
    }
}

impl Store for RocksStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.cf(space)?, key)
            .map_err(rocks_err("get", Some(space)))
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(space)?,
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

    fn write(&self, batch: Batch<'_>, durability: Durability) -> Result<(), StoreError> {
        // Serialized here and handed over in one piece (see `batch_rep`), unless the encoding
        // was not confirmed at open or the batch does not fit RocksDB's format.
        let encoded = self
            .family_ids
            .as_ref()
            .and_then(|ids| batch_rep::encode(&batch.ops, ids));
        let wb = match encoded {
            Some(rep) => WriteBatch::from_data(&rep),
            None => self.batch_through_api(&batch.ops)?,
        };
        let mut opts = WriteOptions::default();
        opts.set_sync(durability == Durability::Machine);
        self.db
            .write_opt(wb, &opts)
            .map_err(rocks_err("write", None))
    }

    fn compact_log(&self) -> Result<(), StoreError> {
        let cfs: Vec<&ColumnFamily> = Space::ALL
            .iter()
            .map(|s| self.cf(*s))
            .collect::<Result<_, _>>()?;
        self.db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
            .map_err(rocks_err("flush", None))
    }

    fn clear(&self, space: Space) -> Result<(), StoreError> {
        let cf = self.cf(space)?;
        let first = self.db.iterator_cf(cf, IteratorMode::Start).next();
        let last = self.db.iterator_cf(cf, IteratorMode::End).next();
        if let (Some(first), Some(last)) = (first, last) {
            let (first, _) = first.map_err(rocks_err("clear", Some(space)))?;
            let (last, _) = last.map_err(rocks_err("clear", Some(space)))?;
            let mut wb = WriteBatch::default();
            wb.delete_range_cf(cf, &*first, &*last);
            wb.delete_cf(cf, &*last);
            self.db.write(wb).map_err(rocks_err("clear", Some(space)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{SeedReporter, SeededRng};

    /// The batches a commit hands RocksDB are the bytes RocksDB's own API would have built, for
    /// random batches over every space: puts and deletes, empty keys and values, lengths on both
    /// sides of each varint boundary.
    #[test]
    fn encoded_batches_equal_the_c_apis() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksStore::open(dir.path(), &RocksConfig::default()).expect("open");
        let ids = store
            .family_ids
            .expect("this RocksDB's encoding is the one batch_rep writes");
        let seed = SeededRng::seed_from_env(0xba7c4);
        let _report = SeedReporter { seed };
        let mut rng = SeededRng::new(seed);
        let lengths = [0, 1, 31, 32, 127, 128, 129, 300, 16_383, 16_384];
        for _ in 0..50 {
            let ops: Vec<Op<'_>> = (0..rng.below(40))
                .map(|_| {
                    let space = Space::ALL[rng.below(Space::ALL.len() as u64) as usize];
                    let pick = |rng: &mut SeededRng| {
                        let len = lengths[rng.below(lengths.len() as u64) as usize];
                        rng.bytes(len)
                    };
                    let key = pick(&mut rng);
                    let value = (rng.below(3) > 0).then(|| pick(&mut rng).into());
                    (space, key.into(), value)
                })
                .collect();
            let ours = batch_rep::encode(&ops, &ids).expect("fits the format");
            let theirs = store.batch_through_api(&ops).expect("batch");
            assert_eq!(ours, theirs.data(), "{} ops", ops.len());
        }
    }

    /// A batch written from the Rust encoding reads back, deletes included; so does one built
    /// through the C API (the fallback when the encoding is not confirmed).
    #[test]
    fn encoded_batches_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = RocksStore::open(dir.path(), &RocksConfig::default()).expect("open");
        assert!(store.family_ids.is_some());
        write_and_read_back(&store);
        store.family_ids = None;
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
                let cf = store.cf(Space::Values).expect("family");
                store
                    .db
                    .property_int_value_cf(cf, "rocksdb.num-files-at-level0")
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
}
