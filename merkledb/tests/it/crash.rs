//! Crash safety: a child process commits in a loop and is SIGKILLed at random moments; after each
//! kill the database reopens at exactly the state of a completed commit (never a mix), without
//! manual repair, and the state includes every commit the child reported done.
//!
//! The child is this same test binary re-executed with `ARBOR_CRASH_DIR` set (see
//! `crash_child`).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use arbor_merkledb::{
    Config, Db,
    test_utils::{SeedReporter, SeededRng},
};

type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Batch number `i` (1-based) of the workload: deterministic in `(seed, i)`.
fn batch(seed: u64, i: u64) -> Batch {
    let mut rng = SeededRng::new(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    (0..300)
        .map(|_| {
            let key = rng.below(20_000).to_be_bytes().to_vec();
            if rng.below(5) == 0 {
                (key, None)
            } else {
                let len = rng.below(64) as usize;
                (key, Some(rng.bytes(len)))
            }
        })
        .collect()
}

fn config() -> Config {
    // A tiny dirty budget forces node flushes between commits, so kills also land mid-flush.
    Config::default()
        .with_dirty_node_budget(500)
        .with_history_len(16)
}

/// Runs only as the child of `sigkill_mid_commit_reopens_at_a_commit_boundary`.
#[test]
#[ignore = "helper process for the crash test"]
fn crash_child() {
    let Ok(dir) = std::env::var("ARBOR_CRASH_DIR") else {
        return;
    };
    let seed: u64 = std::env::var("ARBOR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let db = Db::open(&dir, config()).expect("child open");
    let start = db.commit_seq().expect("seq");
    // Bounded: the parent kills us long before this ends.
    for i in start + 1..start + 5000 {
        db.propose(batch(seed, i))
            .expect("propose")
            .commit()
            .expect("commit");
        println!("committed {i} {}", db.root().expect("root"));
    }
}

#[test]
fn sigkill_mid_commit_reopens_at_a_commit_boundary() {
    let seed = SeededRng::seed_from_env(0xc4a5_0001);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let model = Db::open_memory(config()).expect("model");
    let exe = std::env::current_exe().expect("current exe");
    let rounds = 12;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ARBOR_CRASH_DIR", dir.path())
            .env("ARBOR_CRASH_SEED", seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() == Some("committed") {
                    let seq: u64 = parts.next().and_then(|s| s.parse().ok()).expect("seq");
                    last = Some((seq, parts.next().expect("root").to_string()));
                }
            }
            last
        });
        // Wait for the child to start committing, then kill it at a random moment.
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(150 + rng.below(600)));
        child.kill().expect("SIGKILL child");
        child.wait().expect("reap child");
        let last_reported = reader.join().expect("reader");

        let db = Db::open(dir.path(), config()).expect("reopen after kill needs no repair");
        let seq = db.commit_seq().expect("seq");
        // Every commit the child reported is durable.
        if let Some((reported, _)) = &last_reported {
            assert!(
                seq >= *reported,
                "round {round}: lost commit {reported}, reopened at {seq}"
            );
        }
        // Replay the model up to `seq`; the reopened root must be exactly that commit's root.
        let model_seq = model.commit_seq().expect("model seq");
        assert!(
            seq >= model_seq,
            "round {round}: went back from {model_seq} to {seq}"
        );
        for i in model_seq + 1..=seq {
            model
                .propose(batch(seed, i))
                .expect("propose")
                .commit()
                .expect("commit");
        }
        assert_eq!(
            db.root().expect("root"),
            model.root().expect("model root"),
            "round {round} at seq {seq}"
        );
        assert_eq!(
            db.key_count().expect("count"),
            model.key_count().expect("model count")
        );
        if let Some((reported, root)) = last_reported {
            if reported == seq {
                assert_eq!(db.root().expect("root").to_hex(), root);
            }
        }
        // Every few rounds close cleanly, so clean reopen paths are exercised too.
        if round % 4 == 3 {
            db.close().expect("close");
        } else {
            // Leave it "open" as a crashed process would: drop without the clean marker is not
            // possible from here, so just drop (a clean close); the child kill covers the crash.
            drop(db);
        }
        let _ = started;
    }
    assert!(
        model.commit_seq().expect("seq") > 0,
        "the child never committed"
    );
}
