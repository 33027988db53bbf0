//! Database configuration.

use crate::{key::BranchFactor, store::RocksConfig};

/// How a [`Db`](crate::Db) is set up. Build with [`Config::default`] and the `with_*` methods.
#[derive(Clone, Debug)]
pub struct Config {
    /// The trie's branch factor. Fixed at creation; reopening with another one is an error.
    pub branch_factor: BranchFactor,
    /// How many commits of history to keep (each lets proofs be served at one older root).
    pub history_len: usize,
    /// Bound on the clean-node cache, in nodes (at least 16), beside the part of
    /// `dirty_node_budget` the dirty set leaves unused, which the cache also takes: in a large
    /// state the dirty set holds only stored nodes (at 16-way branching about 70k at 10M keys,
    /// 1.1M at 100M), so up to tens of millions of keys most of that budget caches the lower
    /// nodes, which a miss rebuilds from the values. The default is 0: once a state's stored
    /// nodes fill the dirty budget (from ~70M keys), its lower nodes far outnumber any cache
    /// (one per 15 keys) and are seldom found there, and the memory holds more changed stored
    /// nodes in the dirty set instead (below).
    pub node_cache_nodes: usize,
    /// Changed inner nodes kept in memory before they are written to the nodes space: the stored
    /// ones, and the lower ones too while all of them fit in half this budget (a small state).
    /// The default (800k, with no cache of its own: the same 800k nodes in all as the earlier
    /// 400k + 400k and 700k + 100k) keeps most of a 100M-key state's stored nodes changed in
    /// memory, so fewer are written back and read again: write amplification over 3M changes
    /// 29.2 → 21.0 at 700k with a 100k cache, 16.3 → 15.0 at 800k with none; commit rate and
    /// latency unchanged, peak RSS +66–93 and +60–85 MiB (BENCHMARKS.md, Scale).
    pub dirty_node_budget: usize,
    /// RocksDB tuning (ignored by the in-memory store).
    pub rocks: RocksConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            branch_factor: BranchFactor::Sixteen,
            history_len: 128,
            node_cache_nodes: 0,
            dirty_node_budget: 800_000,
            rocks: RocksConfig::default(),
        }
    }
}

impl Config {
    /// Sets the branch factor.
    #[must_use]
    pub fn with_branch_factor(mut self, branch_factor: BranchFactor) -> Self {
        self.branch_factor = branch_factor;
        self
    }

    /// Sets how many commits of history are kept.
    #[must_use]
    pub fn with_history_len(mut self, history_len: usize) -> Self {
        self.history_len = history_len;
        self
    }

    /// Sets the clean-node cache bound.
    #[must_use]
    pub fn with_node_cache_nodes(mut self, nodes: usize) -> Self {
        self.node_cache_nodes = nodes;
        self
    }

    /// Bounds the database's memory to about `bytes`: RocksDB's block cache and memtables share
    /// half of it, the clean-node cache and the dirty-node budget a quarter each (at an estimated
    /// 1.5 KiB per cached node: a node with 16 children holds 16 child records of 44 bytes and its
    /// leaves' keys, and the estimate leaves room for the allocator and the cache's bookkeeping).
    /// For processes that must stay small whatever the database size, such as a sync client; the
    /// default favours speed.
    ///
    /// Measured in the `arbor` binary (`arbor load` of 10M random keys, peak RSS from `wait4`,
    /// twentieth session; `scripts/bench-memory.sh` repeats it), the process stays within the
    /// budget plus 256 MiB: 256 MiB → 410 MiB, 512 → 678, 1,024 → 1,200 and 1,203, 2,048 → 2,096.
    /// Two changes made it so: RocksDB allocates from mimalloc (on glibc's malloc its heap held
    /// 1.4× the block cache: 833 and 869 MiB at 512), and close writes the dirty set back in
    /// batches (one batch of the whole set took 1,024 to 1,334 MiB at close). The nodes take about
    /// 730 bytes each, half the estimate below, whose slack covers the process's other memory
    /// (proposals, undo lists, the caller's). A process whose C++ allocations stay on glibc's
    /// malloc (an embedder of `arbor-ffi`) needs more headroom.
    #[must_use]
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        const NODE_BYTES: usize = 1536;
        self.rocks.block_cache_bytes = bytes / 2;
        self.rocks.total_write_buffer_bytes = Some(bytes / 4);
        self.rocks.write_buffer_bytes = (bytes / 8).max(4 << 20);
        // Under the cap above (two memtables' worth for all families) four never fill: flush
        // them one at a time.
        self.rocks.memtables_per_flush = 1;
        self.node_cache_nodes = bytes / 4 / NODE_BYTES;
        self.dirty_node_budget = (bytes / 4 / NODE_BYTES).max(1024);
        self
    }

    /// Tunes the store for a writer that commits much and reads little, such as a sync client:
    /// RocksDB compacts level 0 into level 1 only once 12 files accumulate (instead of 4): a
    /// writer with small memtables flushes often, and each early compaction rewrites level 1.
    /// Reads over many level-0 files cost more, so a server should keep the default.
    #[must_use]
    pub fn for_bulk_writes(mut self) -> Self {
        self.rocks.level0_compaction_trigger = 12;
        self
    }

    /// Sets the dirty-node budget.
    #[must_use]
    pub fn with_dirty_node_budget(mut self, nodes: usize) -> Self {
        self.dirty_node_budget = nodes;
        self
    }
}
