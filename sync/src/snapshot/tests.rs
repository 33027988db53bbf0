use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use arbor_merkledb::{
    Config, Db, Hash,
    test_utils::{SeedReporter, SeededRng},
};
use futures::{FutureExt, future::BoxFuture};

use super::*;
use crate::{LocalClient, SyncConfig, SyncManager};

/// What a stored object does when fetched.
#[derive(Clone)]
enum Object {
    Bytes(Vec<u8>),
    /// Never answers.
    Stall,
    /// Always fails (an HTTP 500, say).
    Fail,
}

/// An object store in memory, counting fetches.
#[derive(Default)]
struct MemorySource {
    objects: Mutex<HashMap<String, Object>>,
    fetches: AtomicUsize,
}

impl MemorySource {
    fn put(&self, name: &str, object: Object) {
        self.objects
            .lock()
            .expect("lock")
            .insert(name.to_owned(), object);
    }
}

impl PartSource for MemorySource {
    fn fetch(&self, name: &str, max_bytes: u64) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let object = self.objects.lock().expect("lock").get(name).cloned();
        async move {
            match object {
                None => Err("404 not found".to_owned()),
                Some(Object::Bytes(mut b)) => {
                    b.truncate(max_bytes as usize);
                    Ok(b)
                }
                Some(Object::Stall) => std::future::pending().await,
                Some(Object::Fail) => Err("500 internal server error".to_owned()),
            }
        }
        .boxed()
    }
}

/// A server database of `n` random keys.
fn server(seed: u64, n: usize) -> Db {
    let db = Db::open_memory(Config::default()).expect("open");
    let mut rng = SeededRng::new(seed);
    let ops: Vec<_> = (0..n)
        .map(|_| (rng.bytes_between(1, 40), Some(rng.bytes_between(0, 80))))
        .collect();
    db.propose(ops).expect("propose").commit().expect("commit");
    db
}

/// Publishes `db`'s current state into a new source; returns the manifest.
fn publish(db: &Db, part_bytes: usize) -> (Manifest, Arc<MemorySource>) {
    let source = Arc::new(MemorySource::default());
    let root = db.root().expect("root");
    let mut parts = Vec::new();
    cut_parts::<arbor_merkledb::Error>(db, root, part_bytes, |cut| {
        source.put(&cut.part.name, Object::Bytes(cut.bytes));
        parts.push(cut.part);
        Ok(())
    })
    .expect("cut");
    let manifest = Manifest {
        root,
        branch_factor: db.branch_factor(),
        seq: db.commit_seq().expect("seq"),
        published_at: 0,
        parts,
    };
    (manifest, source)
}

fn replica() -> Db {
    Db::open_memory(Config::default().with_history_len(0)).expect("open")
}

fn quick() -> BootstrapConfig {
    BootstrapConfig {
        part_timeout: Duration::from_millis(300),
        retry_backoff: Duration::from_millis(5),
        attempts: 2,
        max_parallel: 4,
        ..BootstrapConfig::default()
    }
}

/// Finishes a sync of `replica` to `target` from `servers`, as the CLI does after a bootstrap.
async fn finish(replica: &Db, servers: Vec<Db>, target: Hash) {
    let client = Arc::new(LocalClient::new(servers));
    let config = SyncConfig {
        stall_timeout: Duration::from_secs(20),
        ..SyncConfig::default()
    };
    SyncManager::start(replica.clone(), client, target, config)
        .expect("start")
        .wait()
        .await
        .expect("sync");
    assert_eq!(replica.root().expect("root"), target);
}

#[test]
fn manifest_round_trips_and_rejects_what_it_cannot_trust() {
    let db = server(1, 500);
    let (manifest, _) = publish(&db, 4096);
    assert!(manifest.parts.len() > 3, "{} parts", manifest.parts.len());
    assert_eq!(manifest.keys(), db.key_count().expect("count"));
    assert!(manifest.defects().is_empty(), "{:?}", manifest.defects());
    let json = manifest.to_json();
    assert_eq!(Manifest::from_json(&json).expect("parse"), manifest);

    let text = String::from_utf8(json).expect("utf8");
    let newer = text.replacen("\"format\": 1", "\"format\": 2", 1);
    assert!(matches!(
        Manifest::from_json(newer.as_bytes()),
        Err(ManifestError::Format { found: 2 })
    ));
    let elsewhere = text.replacen("parts/", "../../etc/", 1);
    assert!(matches!(
        Manifest::from_json(elsewhere.as_bytes()),
        Err(ManifestError::Field { .. })
    ));
    assert!(Manifest::from_json(b"{\"format\": 1}").is_err());
    assert!(Manifest::from_json(b"not json").is_err());
}

#[test]
fn parts_come_out_near_the_asked_size_and_tile_the_keyspace() {
    let db = server(2, 3000);
    let (manifest, _) = publish(&db, 16 << 10);
    let sizes: Vec<u64> = manifest.parts.iter().map(|p| p.bytes).collect();
    assert!(sizes.iter().all(|&b| b <= 16 << 10), "{sizes:?}");
    // All but the last within 30% of the size asked for.
    assert!(
        sizes[..sizes.len() - 1].iter().all(|&b| b > 11 << 10),
        "{sizes:?}"
    );
    assert_eq!(manifest.parts.first().and_then(|p| p.start.clone()), None);
    assert_eq!(manifest.parts.last().and_then(|p| p.end.clone()), None);
    assert!(manifest.defects().is_empty());
}

#[tokio::test]
async fn bootstrap_alone_reaches_the_root() {
    let seed = SeededRng::seed_from_env(3);
    let _reporter = SeedReporter { seed };
    let db = server(seed, 2000);
    let (manifest, source) = publish(&db, 8 << 10);
    let local = replica();
    let fractions = Arc::new(Mutex::new(Vec::new()));
    let seen = fractions.clone();
    let config = BootstrapConfig {
        observer: Some(Arc::new(move |e: &PartEvent| {
            seen.lock().expect("lock").push(e.fraction)
        })),
        ..quick()
    };
    let report = bootstrap(
        local.clone(),
        source,
        &manifest,
        db.root().expect("root"),
        config,
    )
    .await
    .expect("bootstrap");
    assert_eq!(report.applied, manifest.parts.len());
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    // Progress only grows, within [0, 1], one event per part.
    let fractions = fractions.lock().expect("lock").clone();
    assert_eq!(fractions.len(), manifest.parts.len());
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    assert!(fractions.iter().all(|f| (0.0..=1.0).contains(f)));
    assert_eq!(report.keys, db.key_count().expect("count"));
    assert!((report.fraction - 1.0).abs() < 1e-9, "{}", report.fraction);
    assert_eq!(local.root().expect("root"), db.root().expect("root"));
    // A sync with no peer at all then has nothing left to do.
    finish(&local, vec![], db.root().expect("root")).await;
}

#[tokio::test]
async fn a_snapshot_of_an_empty_trie_has_no_parts() {
    let db = Db::open_memory(Config::default()).expect("open");
    let (manifest, source) = publish(&db, 4096);
    assert!(manifest.parts.is_empty() && manifest.defects().is_empty());
    let local = replica();
    let report = bootstrap(local.clone(), source, &manifest, Hash::EMPTY_ROOT, quick())
        .await
        .expect("bootstrap");
    assert_eq!(report.parts, 0);
    assert_eq!(local.root().expect("root"), Hash::EMPTY_ROOT);
}

#[tokio::test]
async fn a_manifest_of_another_root_is_refused() {
    let db = server(4, 100);
    let (manifest, source) = publish(&db, 4096);
    let local = replica();
    let other = Hash([9; 32]);
    let error = bootstrap(local.clone(), source.clone(), &manifest, other, quick())
        .await
        .expect_err("refused");
    assert!(
        matches!(error, BootstrapError::UntrustedRoot { .. }),
        "{error}"
    );
    assert_eq!(source.fetches.load(Ordering::Relaxed), 0, "nothing fetched");
    assert_eq!(local.root().expect("root"), Hash::EMPTY_ROOT);
}

/// Every kind of bad part is reported with its reason, nothing bad is written, and live peers
/// finish the sync.
#[tokio::test]
async fn hostile_parts_are_reported_and_peers_fill_their_ranges() {
    let seed = SeededRng::seed_from_env(5);
    let _reporter = SeedReporter { seed };
    let db = server(seed, 3000);
    let root = db.root().expect("root");
    let (manifest, source) = publish(&db, 8 << 10);
    assert!(manifest.parts.len() >= 8, "{} parts", manifest.parts.len());
    let bytes_of =
        |i: usize| match source.objects.lock().expect("lock")[&manifest.parts[i].name].clone() {
            Object::Bytes(b) => b,
            _ => unreachable!(),
        };
    let name = |i: usize| manifest.parts[i].name.clone();
    let mut tampered = bytes_of(0);
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    source.put(&name(0), Object::Bytes(tampered));
    let truncated = bytes_of(1)[..100].to_vec();
    source.put(&name(1), Object::Bytes(truncated));
    let mut larger = bytes_of(2);
    larger.extend_from_slice(b"trailing bytes");
    source.put(&name(2), Object::Bytes(larger));
    source.put(&name(3), Object::Stall);
    source.put(&name(4), Object::Fail);
    source.objects.lock().expect("lock").remove(&name(5));

    // A part whose hash matches but whose proof is for other contents: the manifest's bounds
    // and hash are both the storage's to choose, so re-declare part 6 with another part's bytes.
    let mut manifest = manifest.clone();
    let (name7, bytes7) = (name(7), bytes_of(7));
    manifest.parts[6].name.clone_from(&name7);
    manifest.parts[6].sha256 = Part::name_for(&bytes7).1;
    manifest.parts[6].bytes = bytes7.len() as u64;

    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let config = BootstrapConfig {
        observer: Some(Arc::new(move |e: &PartEvent| {
            seen.lock().expect("lock").push(e.clone())
        })),
        ..quick()
    };
    let local = replica();
    let report = bootstrap(local.clone(), source, &manifest, root, config)
        .await
        .expect("bootstrap");
    let reasons: Vec<(usize, String)> = report
        .failed
        .iter()
        .map(|e| match &e.status {
            PartStatus::Failed { reason } => (e.index, reason.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    let expect = [
        (0, "SHA-256"),
        (1, "truncated"),
        (2, "larger than declared"),
        (3, "no complete answer"),
        (4, "500"),
        (5, "404"),
        (6, "does not verify"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
    for ((index, reason), (want_index, want)) in reasons.iter().zip(expect) {
        assert_eq!(*index, want_index);
        assert!(reason.contains(want), "part {index}: {reason}");
    }
    assert_eq!(report.applied, manifest.parts.len() - expect.len());
    assert_eq!(events.lock().expect("lock").len(), manifest.parts.len());
    assert!(report.fraction < 1.0);
    // What was written is true: every local key is the server's.
    for (key, value) in local
        .view()
        .expect("view")
        .range(&[], None, usize::MAX)
        .expect("range")
    {
        assert_eq!(db.get(&key).expect("get"), Some(value));
    }
    finish(&local, vec![db], root).await;
}

#[tokio::test]
async fn overlapping_and_gapped_manifests_are_reported_and_completed_by_peers() {
    let db = server(6, 2000);
    let root = db.root().expect("root");
    let (manifest, source) = publish(&db, 8 << 10);
    assert!(manifest.parts.len() >= 5);
    // A gap: drop part 1. An overlap: part 3 listed twice.
    let mut bad = manifest.clone();
    bad.parts.remove(1);
    bad.parts.insert(3, bad.parts[2].clone());
    let defects = bad.defects();
    assert!(defects.iter().any(|d| d.contains("gap")), "{defects:?}");
    assert!(
        defects.iter().any(|d| d.contains("overlaps")),
        "{defects:?}"
    );
    let local = replica();
    let report = bootstrap(local.clone(), source, &bad, root, quick())
        .await
        .expect("bootstrap");
    assert_eq!(report.defects, defects);
    assert_eq!(
        report.failed.len(),
        1,
        "the repeated part: {:?}",
        report.failed
    );
    finish(&local, vec![db], root).await;
}

#[tokio::test]
async fn a_rerun_fetches_only_the_parts_not_yet_written() {
    let db = server(7, 2000);
    let root = db.root().expect("root");
    let (manifest, source) = publish(&db, 8 << 10);
    let parts = manifest.parts.len();
    // The first run loses every other part (the process was killed, say).
    let first = Arc::new(MemorySource::default());
    for (i, part) in manifest.parts.iter().enumerate() {
        let object = source.objects.lock().expect("lock")[&part.name].clone();
        first.put(&part.name, if i % 2 == 0 { object } else { Object::Fail });
    }
    let local = replica();
    let report = bootstrap(local.clone(), first, &manifest, root, quick())
        .await
        .expect("first run");
    assert_eq!(report.applied, parts.div_ceil(2));
    let report = bootstrap(local.clone(), source.clone(), &manifest, root, quick())
        .await
        .expect("second run");
    assert_eq!(report.held, parts.div_ceil(2), "{:?}", report.failed);
    assert_eq!(report.applied, parts / 2);
    assert_eq!(source.fetches.load(Ordering::Relaxed), parts / 2);
    assert_eq!(local.root().expect("root"), root);
}

/// From a snapshot of an older root, live peers bring the replica to the newer target.
#[tokio::test]
async fn an_older_snapshot_is_finished_by_peers_with_change_proofs() {
    let db = server(8, 2000);
    let (manifest, source) = publish(&db, 8 << 10);
    let old = db.root().expect("root");
    let mut rng = SeededRng::new(80);
    for _ in 0..5 {
        let ops: Vec<_> = (0..50)
            .map(|_| (rng.bytes_between(1, 40), Some(rng.bytes(8))))
            .collect();
        db.propose(ops).expect("propose").commit().expect("commit");
    }
    let target = db.root().expect("root");
    let local = replica();
    bootstrap(local.clone(), source, &manifest, old, quick())
        .await
        .expect("bootstrap");
    assert_eq!(local.root().expect("root"), old);
    finish(&local, vec![db], target).await;
}

proptest::proptest! {
    /// Storage is untrusted: whatever bytes it returns as a manifest, reading it and listing its
    /// defects never panics.
    #[test]
    fn any_manifest_bytes_are_read_without_panicking(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        if let Ok(manifest) = Manifest::from_json(&bytes) {
            let _ = manifest.defects();
        }
    }

    /// The same for a real manifest with bytes changed at random.
    #[test]
    fn mangled_manifests_are_read_without_panicking(flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8)) {
        let db = server(11, 300);
        let (manifest, _) = publish(&db, 2048);
        let mut json = manifest.to_json();
        for (at, byte) in flips {
            let at = at % json.len();
            json[at] = byte;
        }
        if let Ok(manifest) = Manifest::from_json(&json) {
            let _ = manifest.defects();
            let _ = manifest.to_json();
        }
    }
}
