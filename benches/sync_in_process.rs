//! Guards the sync manager's throughput (issue #6) without process or socket noise: a 200k-key
//! RocksDB replica synced from an in-memory server through `LocalClient` (the full encode,
//! decode, verify and commit path), against the baseline of building the same database
//! locally in sorted 2048-key batches, as the sync commits it, measured in the same run.
//!
//! Run: `cargo bench --profile release --bench sync_in_process`
//! The end-to-end figures over real processes and sockets come from `scripts/bench-sync.sh`.

#![expect(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::{sync::Arc, time::Duration};

use arbor_merkledb::{
    Config, Db,
    test_utils::{put_batches, random_kvs},
};
use arbor_sync::{LocalClient, SyncConfig, SyncManager};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The allocator the `arbor` binary ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEYS: usize = 200_000;

fn bench(c: &mut Criterion) {
    let server = Db::open_memory(Config::default()).expect("open");
    let mut kvs = random_kvs(11, KEYS);
    for ops in put_batches(&kvs, 10_000) {
        server
            .propose(ops)
            .expect("propose")
            .commit()
            .expect("commit");
    }
    kvs.sort();
    let target = server.root().expect("root");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let replica_config = || Config::default().with_memory_budget(64 << 20);

    let mut group = c.benchmark_group("sync_200k_keys");
    group.throughput(Throughput::Elements(KEYS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("local_build_sorted_2048_batches", |b| {
        b.iter_with_large_drop(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Db::open(dir.path(), replica_config()).expect("open");
            for ops in put_batches(&kvs, 2048) {
                db.propose(ops).expect("propose").commit().expect("commit");
            }
            assert_eq!(db.root().expect("root"), target);
            (db, dir)
        });
    });
    group.bench_function("sync_local_client_8_workers", |b| {
        b.iter_with_large_drop(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Db::open(dir.path(), replica_config()).expect("open");
            let client = Arc::new(LocalClient::new([server.clone()]));
            runtime.block_on(async {
                let manager = SyncManager::start(db.clone(), client, target, SyncConfig::default())
                    .expect("start");
                manager.wait().await.expect("sync");
            });
            assert_eq!(db.root().expect("root"), target);
            (db, dir)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
