//! `arbor sync` as a real process against real `arbor serve` processes: a sync killed with
//! SIGKILL resumes without starting over, `--follow` tracks churning servers, and bad input
//! gets a clear error.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    time::{Duration, Instant},
};

use support::{Reaper, arbor, load, root_of, serve, terminate};

mod support;

fn json_lines(stdout: std::process::ChildStdout) -> impl Iterator<Item = serde_json::Value> {
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
}

#[test]
fn a_sync_killed_midway_resumes_and_fetches_only_what_is_missing() {
    const KEYS: u64 = 300_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let server_db = dir.path().join("server");
    let root = load(&server_db, &KEYS.to_string());
    let (_server, addr) = serve(&server_db, &[]);
    let client_db = dir.path().join("client").display().to_string();
    let peer = format!("http://{addr}");
    let args = [
        "sync",
        "--db",
        &client_db,
        "--peer",
        &peer,
        "--root",
        &root,
        "--json",
        "--progress-ms",
        "20",
        "--workers",
        "2",
    ];

    let mut first = Reaper(
        arbor()
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sync"),
    );
    let mut killed_at = None;
    let stdout = first.0.stdout.take().expect("stdout");
    for event in json_lines(stdout) {
        let percent = event["percent"].as_f64().unwrap_or(0.0);
        if event["event"] == "progress" && percent >= 45.0 {
            first.0.kill().expect("SIGKILL");
            killed_at = Some((percent, event["keys_written"].as_u64().expect("keys")));
            break;
        }
        assert_ne!(event["event"], "done", "finished before it could be killed");
    }
    let (percent, written_before) = killed_at.expect("progress reached 45%");
    let _ = first.0.wait();
    assert!(percent < 80.0, "killed near the middle, not at {percent}%");

    let second = arbor().args(args).output().expect("resume");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let done: serde_json::Value = String::from_utf8(second.stdout)
        .expect("utf8")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "done")
        .expect("a summary");
    assert_eq!(done["root"], root.as_str());
    assert_eq!(done["key_count"], KEYS);
    let written_after = done["keys_written"].as_u64().expect("keys");
    eprintln!(
        "killed at {percent:.1}% after {written_before} keys; the resumed sync wrote {written_after}"
    );
    assert!(
        written_after * 10 <= KEYS * 6,
        "the resumed sync fetched {written_after} of {KEYS} keys (more than 60%)"
    );
    assert_eq!(root_of(std::path::Path::new(&client_db)), root);
}

/// A replica whose root has left the server's history catches up by node diffs; killed with
/// SIGKILL after the walk's first commit, it resumes: nothing it committed is fetched again,
/// and it ends at the server's root.
#[test]
fn a_node_diff_catch_up_killed_midway_resumes() {
    const KEYS: u64 = 300_000;
    const CHANGES: u64 = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let server_db = dir.path().join("server");
    load(&server_db, &KEYS.to_string());
    let replica = dir.path().join("replica");
    arbor_merkledb::test_utils::copy_dir(&server_db, &replica);
    // A third of the state changes (new keys), in three commits; then one more under a history
    // of two: the replica's root has left it.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut files = vec![String::new(); 3];
    for i in 0..CHANGES {
        let mut line = String::new();
        for _ in 0..2 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            line.push_str(&format!("{x:016x}{x:016x}{x:016x}{x:016x} "));
        }
        line.pop();
        files[(i % 3) as usize].push_str(&line);
        files[(i % 3) as usize].push('\n');
    }
    for (i, lines) in files.iter().enumerate() {
        let file = dir.path().join(format!("changes-{i}"));
        std::fs::write(&file, lines).expect("write");
        let imported = arbor()
            .args(["import", "--db", &server_db.display().to_string()])
            .arg(&file)
            .output()
            .expect("import");
        assert!(imported.status.success(), "{imported:?}");
    }
    let churn = [
        "--history",
        "2",
        "--churn-keys",
        "1",
        "--churn-every",
        "1",
        "--churn-commits",
        "1",
    ];
    let (mut churning, _) = serve(&server_db, &churn);
    std::thread::sleep(Duration::from_secs(1));
    terminate(&mut churning);
    let root = root_of(&server_db);
    let (_server, addr) = serve(&server_db, &["--history", "2"]);
    let peer = format!("http://{addr}");
    let sync_args = |db: &std::path::Path| {
        [
            "sync",
            "--db",
            &db.display().to_string(),
            "--peer",
            &peer,
            "--root",
            &root,
            "--json",
            "--progress-ms",
            "10",
        ]
        .map(str::to_owned)
    };
    // The walk on a copy, whole, for comparison.
    let whole = dir.path().join("whole");
    arbor_merkledb::test_utils::copy_dir(&replica, &whole);
    let summary = |output: std::process::Output| -> serde_json::Value {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf8")
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "done")
            .expect("a summary")
    };
    let whole_run = summary(arbor().args(sync_args(&whole)).output().expect("sync"));
    assert_eq!(whole_run["root"], root.as_str());
    // Only the one-key probe that found the replica's root out of history, and the sampled
    // windows that found most keys equal.
    assert!(
        whole_run["range_bytes"].as_u64().expect("bytes") < 96 << 10,
        "{whole_run}"
    );
    let whole_bytes = whole_run["diff_bytes"].as_u64().expect("bytes");
    assert!(whole_bytes > 0, "{whole_run}");

    let mut first = Reaper(
        arbor()
            .args(sync_args(&replica))
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sync"),
    );
    let mut killed_at = None;
    for event in json_lines(first.0.stdout.take().expect("stdout")) {
        assert_ne!(event["event"], "done", "finished before it could be killed");
        let percent = event["percent"].as_f64().unwrap_or(0.0);
        if event["mode"] == "diff" && percent > 0.0 {
            first.0.kill().expect("SIGKILL");
            killed_at = Some(percent);
            break;
        }
    }
    let percent = killed_at.expect("the walk committed before the end");
    let _ = first.0.wait();
    let resumed = summary(arbor().args(sync_args(&replica)).output().expect("resume"));
    assert_eq!(resumed["root"], root.as_str());
    let resumed_bytes = resumed["diff_bytes"].as_u64().expect("bytes");
    eprintln!(
        "killed at {percent:.1}%; the resumed walk moved {resumed_bytes} bytes, a whole one \
         {whole_bytes}"
    );
    assert!(
        resumed_bytes < whole_bytes,
        "the resumed walk fetched everything again"
    );
    assert_eq!(root_of(&replica), root);
}

#[test]
fn follow_tracks_two_churning_servers_to_their_final_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a");
    load(&a, "50000");
    let b = dir.path().join("b");
    arbor_merkledb::test_utils::copy_dir(&a, &b);
    let churn = [
        "--churn-keys",
        "200",
        "--churn-every",
        "150",
        "--churn-commits",
        "8",
    ];
    let (mut server_a, addr_a) = serve(&a, &churn);
    let (mut server_b, addr_b) = serve(&b, &churn);
    let client = dir.path().join("client").display().to_string();
    let started = Instant::now();
    let out = arbor()
        .args(["sync", "--db", &client, "--follow", "--quiet-ms", "2500"])
        .arg("--insecure-follow")
        .args(["--peer", &format!("http://{addr_a}")])
        .args(["--peer", &format!("http://{addr_b}")])
        .output()
        .expect("sync");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    terminate(&mut server_a);
    terminate(&mut server_b);
    // Both servers churned identically (same seed from the same history) to the same root.
    let final_root = root_of(&a);
    assert_eq!(root_of(&b), final_root);
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(
        stdout.lines().next(),
        Some(format!("root {final_root}").as_str())
    );
    assert_eq!(root_of(std::path::Path::new(&client)), final_root);
}

#[test]
fn sync_rejects_bad_input_with_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db").display().to_string();
    let root = "00".repeat(32);
    let cases: [(&[&str], &str); 7] = [
        (&["--peer", "http://127.0.0.1:1", "--root", "zz"], "64 hex"),
        (
            &["--peer", "localhost:7000", "--root", &root],
            "http://HOST:PORT",
        ),
        (
            &["--peer", "http://127.0.0.1:notaport", "--root", &root],
            "numeric port",
        ),
        (&["--peer", "http://127.0.0.1:1"], "--root"),
        (&["--root", &root], "--peer"),
        (
            &["--peer", "http://127.0.0.1:1", "--root", &root, "--follow"],
            "exclude each other",
        ),
        (
            &["--peer", "http://127.0.0.1:1", "--root", &root, "--live"],
            "--live needs --follow",
        ),
    ];
    for (args, expected) in cases {
        let out = arbor()
            .args(["sync", "--db", &db])
            .args(args)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreachable_peer_is_named_and_the_sync_gives_up_in_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db").display().to_string();
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let peer = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let out = arbor()
        .args([
            "sync",
            "--db",
            &db,
            "--peer",
            &peer,
            "--root",
            &"ab".repeat(32),
        ])
        .args(["--give-up-after", "2"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up in time"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&peer), "names the peer: {stderr}");
    assert!(stderr.contains("giving up"), "{stderr}");
}

#[test]
fn metrics_endpoints_show_requests_and_sync_progress_moving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_db = dir.path().join("server");
    load(&server_db, "100000");
    let (mut server, addr, server_metrics) = support::serve_with_metrics(&server_db, &[]);
    let before = support::http_get(&server_metrics);
    let range_ok = r#"arbor_requests_total{rpc="GetRangeProof",status="Ok"}"#;
    assert_eq!(
        support::sample(&before, range_ok),
        None,
        "no requests yet:\n{before}"
    );

    let client = dir.path().join("client").display().to_string();
    let mut sync = Reaper(
        arbor()
            .args(["sync", "--db", &client, "--peer", &format!("http://{addr}")])
            .args([
                "--follow",
                "--insecure-follow",
                "--live",
                "--metrics",
                "127.0.0.1:0",
                "--progress-ms",
                "50",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sync"),
    );
    let stderr = sync.0.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let sync_metrics = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("metrics on ").map(str::to_owned))
        .expect("announces its metrics endpoint");
    std::thread::spawn(move || lines.for_each(drop));
    // The sync finishes (live mode keeps it running): its counters reach the whole database.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_keys = Vec::new();
    loop {
        let body = support::http_get(&sync_metrics);
        let keys = support::sample(&body, "arbor_sync_keys_total").unwrap_or(0.0);
        seen_keys.push(keys);
        let fraction = support::sample(&body, "arbor_sync_keyspace_fraction").unwrap_or(0.0);
        if keys >= 100_000.0 && fraction >= 1.0 {
            assert!(
                support::sample(&body, "arbor_sync_proofs_verified_total").unwrap_or(0.0) > 0.0
            );
            let latencies = support::sample(&body, "arbor_sync_commit_latency_seconds_count");
            assert!(
                latencies.unwrap_or(0.0) > 0.0,
                "commit latencies observed:\n{body}"
            );
            assert!(body.contains("arbor_sync_peer_score{peer="), "{body}");
            // The per-peer figures: this peer carried the whole sync.
            let peer_keys = format!("arbor_sync_peer_keys{{peer=\"http://{addr}\"}}");
            let share = support::sample(&body, &peer_keys).unwrap_or(0.0);
            assert!(share >= 100_000.0, "{peer_keys} = {share}\n{body}");
            assert!(
                body.contains("arbor_sync_peer_goodput_bytes_per_second{peer="),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sync metrics never completed: {seen_keys:?}\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = support::http_get(&server_metrics);
    let served = support::sample(&after, range_ok).expect("range proofs counted");
    assert!(
        served >= 49.0,
        "100k keys need at least 49 answers of 2048: {served}"
    );
    assert!(support::sample(&after, "arbor_served_bytes_total").expect("bytes") > 1e6);
    drop(sync);
    terminate(&mut server);
}

#[test]
fn a_config_file_carries_the_flags_and_the_command_line_overrides_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_db = dir.path().join("server");
    let root = load(&server_db, "5000");
    let (mut server, addr) = serve(&server_db, &[]);
    let client = dir.path().join("client");
    let config = dir.path().join("arbor.toml");
    std::fs::write(
        &config,
        format!(
            "[sync]\ndb = {:?}\npeer = [\"http://{addr}\"]\nroot = \"{root}\"\nworkers = 2\n",
            client.display().to_string()
        ),
    )
    .expect("write config");
    let config = config.display().to_string();
    let out = arbor()
        .args(["sync", "--config", &config])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(root_of(&client), root);
    // A flag on the command line replaces the file's value: 0 workers is refused.
    let out = arbor()
        .args(["sync", "--config", &config, "--workers", "0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
    terminate(&mut server);
}
