//! Guards the write path: committing random 32-byte keys with 32-byte values in batches of 10k
//! into RocksDB, against raw RocksDB puts of the same batches.
//!
//! Baselines measured in the same run:
//! * `rocksdb_values_only`: the same key-values written as raw RocksDB batches through our store
//!   (no trie, no history): the floor our commit path stands on.
//! * `memory_store`: the full commit path on the in-memory store (CPU cost of trie + hashing).
//!
//! Every variant gets its input as owned batches built before the clock starts: the database
//! takes ownership of the keys and values it is given, so copying them is the harness's cost,
//! not the commit's.
//!
//! Run: `cargo bench --profile release --bench merkledb_commit`
//! (`ARBOR_BENCH_KEYS` overrides the default 1,000,000 keys.)

#![expect(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::time::{Duration, Instant};

use arbor_merkledb::{
    BatchOp, Config, Db,
    store::{Batch, Durability, RocksConfig, RocksStore, Space, Store},
    test_utils::{put_batches, random_kvs},
};
/// The allocator the `arbor` binary ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 10_000;

fn keys() -> usize {
    std::env::var("ARBOR_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

fn commit_all(db: &Db, batches: Vec<Vec<BatchOp>>) {
    for ops in batches {
        db.propose(ops).expect("propose").commit().expect("commit");
    }
}

fn bench(c: &mut Criterion) {
    let n = keys();
    let kvs = random_kvs(42, n);
    let mut group = c.benchmark_group("commit_random_kvs");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .throughput(Throughput::Elements(n as u64));

    group.bench_function("rocksdb_merkledb", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let db = Db::open(dir.path(), Config::default()).expect("open");
                let input = put_batches(&kvs, BATCH);
                let start = Instant::now();
                commit_all(&db, input);
                db.close().expect("close");
                total += start.elapsed();
            }
            total
        });
    });

    // Every commit is durable when it returns (values, head and history in one WAL batch); the
    // close above additionally writes all cached inner nodes. This variant stops the clock at the
    // last commit.
    group.bench_function("rocksdb_merkledb_commits_only", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let db = Db::open(dir.path(), Config::default()).expect("open");
                let input = put_batches(&kvs, BATCH);
                let start = Instant::now();
                commit_all(&db, input);
                total += start.elapsed();
                db.close().expect("close");
            }
            total
        });
    });

    group.bench_function("rocksdb_values_only", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = RocksStore::open(dir.path(), &RocksConfig::default()).expect("open");
                let input = put_batches(&kvs, BATCH);
                let start = Instant::now();
                for mut ops in input {
                    // Sorted, as a commit writes them (RocksDB inserts sorted keys much faster).
                    ops.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    let mut batch = Batch::with_capacity(ops.len());
                    for (k, v) in ops {
                        batch.put(Space::Values, k, v.unwrap_or_default());
                    }
                    store.write(batch, Durability::Process).expect("write");
                }
                total += start.elapsed();
            }
            total
        });
    });

    group.bench_function("memory_store", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let db = Db::open_memory(Config::default()).expect("open");
                let input = put_batches(&kvs, BATCH);
                let start = Instant::now();
                commit_all(&db, input);
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
