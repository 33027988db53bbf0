//! Guards the server's throughput (issue #4): 2048-key range-proof requests served over loopback
//! gRPC from a 200k-key RocksDB database, one at a time and 8 concurrently, and the bytes per key
//! on the wire (printed once).
//!
//! Run: `cargo bench --profile release --bench grpc_serve`

#![expect(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::time::Duration;

use arbor_merkledb::{Config, Db, Hash, test_utils::SeededRng};
use arbor_sync::{ServerConfig, StateSyncService, pb};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

/// The allocator the `arbor` binary ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn request(root: Hash, start: Vec<u8>) -> pb::SyncGetRangeProofRequest {
    pb::SyncGetRangeProofRequest {
        root_hash: root.0.to_vec(),
        start_key: Some(pb::MaybeBytes {
            value: start,
            is_nothing: false,
        }),
        end_key: None,
        key_limit: 2048,
        bytes_limit: 2 * 1024 * 1024 - 4096,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Config::default()).expect("open");
    let mut rng = SeededRng::new(7);
    for _ in 0..20 {
        let ops: Vec<_> = (0..10_000)
            .map(|_| (rng.bytes(32), Some(rng.bytes(32))))
            .collect();
        db.propose(ops).expect("propose").commit().expect("commit");
    }
    let root = db.root().expect("root");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (client, _stop) = runtime.block_on(async {
        let (listener, addr) = arbor_sync::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = StateSyncService::new(db.clone(), ServerConfig::default());
        tokio::spawn(arbor_sync::serve(service, listener, async move {
            let _ = stopped.await;
        }));
        let client = pb::state_sync_client::StateSyncClient::connect(format!("http://{addr}"))
            .await
            .expect("connect")
            .max_decoding_message_size(4 << 20);
        (client, stop)
    });
    let sample = runtime
        .block_on(client.clone().get_range_proof(request(root, rng.bytes(32))))
        .expect("proof")
        .into_inner();
    let keys = sample.key_values.len();
    let bytes = sample.encoded_len();
    println!(
        "wire: {bytes} bytes for {keys} keys = {:.1} bytes/key (payload 64 bytes/key)",
        bytes as f64 / keys as f64
    );

    let mut group = c.benchmark_group("grpc_range_proof_2048_loopback");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    group.bench_function("sequential", |b| {
        b.iter(|| {
            let start = rng.bytes(32);
            runtime
                .block_on(client.clone().get_range_proof(request(root, start)))
                .expect("proof")
        })
    });
    group.throughput(Throughput::Elements(8));
    group.bench_function("8_concurrent", |b| {
        b.iter(|| {
            let starts: Vec<_> = (0..8).map(|_| rng.bytes(32)).collect();
            runtime.block_on(async {
                let calls = starts.into_iter().map(|s| {
                    let mut client = client.clone();
                    async move {
                        client
                            .get_range_proof(request(root, s))
                            .await
                            .expect("proof")
                    }
                });
                futures::future::join_all(calls).await
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
