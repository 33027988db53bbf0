//! `arbor serve` as a real process: it listens, answers, announces churn commits, shuts down
//! gracefully on SIGTERM, and rejects bad flags.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use arbor_merkledb::{BranchFactor, Hash, RangeProof, verify_range_proof};
use arbor_sync::pb;

fn arbor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arbor"))
}

/// Kills the child if the test fails before it exits.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_answers_churns_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db").display().to_string();
    let load = arbor()
        .args(["load", "--db", &db, "--keys", "2000", "--seed", "3"])
        .output()
        .expect("load");
    assert!(load.status.success());
    let mut child = Reaper(
        arbor()
            .args([
                "serve",
                "--db",
                &db,
                "--listen",
                "127.0.0.1:0",
                "--history",
                "16",
            ])
            .args([
                "--churn-keys",
                "40",
                "--churn-every",
                "100",
                "--churn-commits",
                "3",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf8");
    let addr = first
        .strip_prefix("listening on ")
        .expect("announces its address")
        .to_string();

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

    let pid = child.0.id().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(term.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            assert!(status.success(), "graceful shutdown exits 0, got {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
