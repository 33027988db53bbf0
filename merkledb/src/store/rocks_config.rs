//! [`RocksConfig`]: the RocksDB knobs of a [`Config`](crate::Config), defined whether or not the
//! `rocksdb` feature builds the store itself.

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
    /// A family holds up to `memtables_per_flush + 2` memtables. Default 4 (of 8 MiB): the commit
    /// benchmark ran faster than with one 32 MiB memtable per flush, while scans of unflushed data
    /// merge more skiplists.
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
