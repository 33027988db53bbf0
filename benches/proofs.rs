//! Guards proof generation and verification cost on a large database (issue #3):
//! 2048-key range proofs on a 1M-key RocksDB database (generate, verify) against a plain scan of
//! the same 2048 key-values (baseline, same run), and a 2048-key change proof when 1% of the keys
//! changed in one commit.
//!
//! Run: `cargo bench --profile release --bench proofs`
//! (`ARBOR_BENCH_KEYS` overrides the default 1,000,000 keys.)

#![expect(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::time::Duration;

use arbor_merkledb::{BranchFactor, Config, Db, test_utils::SeededRng, verify_range_proof};
/// The allocator the `arbor` binary ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn keys() -> usize {
    std::env::var("ARBOR_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

fn bench(c: &mut Criterion) {
    let n = keys();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Config::default()).expect("open");
    let mut rng = SeededRng::new(42);
    let mut all_keys = Vec::with_capacity(n);
    for _ in 0..n.div_ceil(10_000) {
        let ops: Vec<_> = (0..10_000.min(n))
            .map(|_| {
                let k = rng.bytes(32);
                all_keys.push(k.clone());
                (k, Some(rng.bytes(32)))
            })
            .collect();
        db.propose(ops).expect("propose").commit().expect("commit");
    }
    let root = db.root().expect("root");
    let view = db.view().expect("view");

    let mut group = c.benchmark_group("range_proof_2048_of_1m");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("baseline_scan_2048", |b| {
        b.iter_batched(
            || rng.bytes(32),
            |start| view.range(&start, None, 2048).expect("range"),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("generate", |b| {
        b.iter_batched(
            || rng.bytes(32),
            |start| view.range_proof(Some(&start), None, 2048).expect("proof"),
            BatchSize::SmallInput,
        )
    });
    let start = rng.bytes(32);
    let proof = view.range_proof(Some(&start), None, 2048).expect("proof");
    group.bench_function("verify", |b| {
        b.iter(|| {
            verify_range_proof(
                &proof,
                Some(&start),
                None,
                root,
                2048,
                BranchFactor::Sixteen,
            )
            .expect("verifies")
        })
    });
    group.finish();

    // 1% of the keys change in one commit.
    let changed = n / 100;
    let ops: Vec<_> = (0..changed)
        .map(|i| (all_keys[(i * 97) % n].clone(), Some(rng.bytes(32))))
        .collect();
    db.propose(ops).expect("propose").commit().expect("commit");
    let new_root = db.root().expect("root");
    let mut group = c.benchmark_group("change_proof_1pct_of_1m");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("generate_2048", |b| {
        b.iter(|| {
            db.change_proof(root, new_root, None, None, 2048)
                .expect("change proof")
        })
    });
    let change = db
        .change_proof(root, new_root, None, None, 2048)
        .expect("change proof");
    group.bench_function("verify_2048_against_local", |b| {
        // A client holding the start root's contents (copied from the server's history view).
        let client_dir = tempfile::tempdir().expect("tempdir");
        let client = Db::open(client_dir.path(), Config::default()).expect("open client");
        let mut cursor: Vec<u8> = Vec::new();
        let old = db.view_at(root).expect("view at start root");
        loop {
            let chunk = old.range(&cursor, None, 50_000).expect("range");
            let Some((last, _)) = chunk.last() else { break };
            cursor = last.clone();
            cursor.push(0);
            client
                .propose(chunk.into_iter().map(|(k, v)| (k, Some(v))))
                .expect("p")
                .commit()
                .expect("c");
        }
        b.iter(|| {
            client
                .verify_change_proof(&change, None, None, new_root, 2048)
                .expect("verifies")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
