//! `arbor serve` as a real process: it listens, answers, announces churn commits, shuts down
//! gracefully on SIGTERM, and rejects bad flags.

use std::time::Duration;

use arbor_merkledb::{BranchFactor, Hash, RangeProof, verify_range_proof};
use arbor_sync::pb;
use support::{arbor, start_serve, terminate};

mod support;

#[test]
fn serve_answers_churns_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db").display().to_string();
    let extra = [
        "--history",
        "16",
        "--churn-keys",
        "40",
        "--churn-every",
        "100",
        "--churn-commits",
        "3",
    ];
    let (mut child, addr) = start_serve(dir.path(), "2000", &extra);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut client = pb::state_sync_client::StateSyncClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        let mut roots = client
            .watch_roots(pb::WatchRootsRequest {})
            .await
            .expect("watch")
            .into_inner();
        let initial = roots
            .message()
            .await
            .expect("stream")
            .expect("current root");
        // Churn commits arrive as new roots.
        let next = tokio::time::timeout(Duration::from_secs(20), roots.message())
            .await
            .expect("a churn commit within 20 s")
            .expect("stream")
            .expect("a root");
        assert_ne!(next.root_hash, initial.root_hash);
        assert!(next.commit_seq > initial.commit_seq);
        // Proofs at the announced root verify.
        let root = Hash::from_slice(&next.root_hash).expect("32 bytes");
        let request = pb::SyncGetRangeProofRequest {
            root_hash: root.0.to_vec(),
            start_key: None,
            end_key: None,
            key_limit: 100,
            bytes_limit: 1 << 20,
        };
        let reply = client.get_range_proof(request).await;
        match reply {
            Ok(reply) => {
                let proof = RangeProof::try_from(reply.into_inner()).expect("converts");
                verify_range_proof(&proof, None, None, root, 100, BranchFactor::Sixteen)
                    .expect("verifies");
            }
            // The root may have left history already if churn outran us; that must be NOT_FOUND.
            Err(status) => assert_eq!(status.code(), tonic::Code::NotFound, "{status}"),
        }
    });

    terminate(&mut child);
    // The database was closed cleanly and holds the churned commits.
    let root = arbor().args(["root", "--db", &db]).output().expect("root");
    assert!(root.status.success());
}

#[test]
fn serve_rejects_bad_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db").display().to_string();
    let bad_addr = arbor()
        .args(["serve", "--db", &db, "--listen", "nowhere"])
        .output()
        .expect("run");
    assert!(!bad_addr.status.success());
    assert!(String::from_utf8_lossy(&bad_addr.stderr).contains("--listen"));
    let half_churn = arbor()
        .args([
            "serve",
            "--db",
            &db,
            "--listen",
            "127.0.0.1:0",
            "--churn-keys",
            "5",
        ])
        .output()
        .expect("run");
    assert!(!half_churn.status.success());
    assert!(String::from_utf8_lossy(&half_churn.stderr).contains("churn-every"));
}

/// Resident memory of a process, in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

const WAVES: u32 = 14;
const WARMUP_WAVES: u32 = 9;

#[test]
fn hostile_load_keeps_server_memory_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, addr) = start_serve(
        dir.path(),
        "20000",
        &["--churn-keys", "50", "--churn-every", "20"],
    );
    let pid = child.0.id();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (before, after) = runtime.block_on(async {
        let client = pb::state_sync_client::StateSyncClient::connect(format!("http://{addr}"))
            .await
            .expect("connect")
            .max_decoding_message_size(8 << 20);
        let huge = |root: Vec<u8>, i: u32| pb::SyncGetRangeProofRequest {
            root_hash: root,
            start_key: Some(pb::MaybeBytes {
                value: i.to_be_bytes().to_vec(),
                is_nothing: false,
            }),
            end_key: None,
            key_limit: u32::MAX,
            bytes_limit: u32::MAX,
        };
        let root = client
            .clone()
            .get_merkle_root(())
            .await
            .expect("root")
            .into_inner()
            .root_hash;
        // Fifty subscribers that never read, while churn announces a root every 20 ms.
        let mut stalled = Vec::new();
        for _ in 0..50 {
            stalled.push(
                client
                    .clone()
                    .watch_roots(pb::WatchRootsRequest {})
                    .await
                    .expect("watch"),
            );
        }
        // Waves of 1000 concurrent requests with unbounded limits. The first waves fill the
        // caches (RocksDB block cache and memtables, node cache: bounded by configuration);
        // later waves must not grow memory with the amount of hostile traffic.
        let mut before = 0;
        for wave in 0..WAVES {
            eprintln!("wave {wave}: server RSS {} KiB", rss_kib(pid));
            if wave == WARMUP_WAVES {
                before = rss_kib(pid);
            }
            let calls = (0..1000u32).map(|i| {
                let mut client = client.clone();
                let request = huge(root.clone(), wave * 1000 + i);
                tokio::spawn(async move { client.get_range_proof(request).await.map(|_| ()) })
            });
            for call in futures_join(calls.collect()).await {
                match call {
                    Ok(()) => {}
                    Err(status) => assert!(
                        matches!(
                            status.code(),
                            tonic::Code::ResourceExhausted | tonic::Code::NotFound
                        ),
                        "unexpected {status}"
                    ),
                }
            }
        }
        let mut client = client.clone();
        client.get_merkle_root(()).await.expect("still answering");
        let after = rss_kib(pid);
        drop(stalled);
        (before, after)
    });
    assert!(
        after < before + 96 * 1024,
        "server RSS grew from {before} KiB to {after} KiB over 4000 more hostile requests"
    );
    eprintln!("server RSS: {before} KiB before, {after} KiB after hostile load");
}

async fn futures_join<T: Send + 'static>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("join"));
    }
    out
}
