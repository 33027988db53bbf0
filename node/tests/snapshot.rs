//! Snapshots through real storage: `arbor snapshot publish` to an S3 server (versitygw) and to a
//! directory that nginx serves, `arbor sync --snapshot` from both, `serve --publish` with
//! pruning, a killed bootstrap resumed, and hostile storage (tampered, truncated and oversized
//! parts, a 500, a stalled transfer, a manifest of another root, overlapping and missing parts).
//!
//! The servers come from `scripts/env.sh`: `ARBOR_NGINX` (Debian's nginx) and `ARBOR_VERSITYGW`
//! (built from the Go module proxy). Both bind to 127.0.0.1 and are killed with the test.

use std::{
    io::{BufRead, BufReader},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{Reaper, arbor, load, root_of, serve};

mod support;

const ACCESS: &str = "arbortest";
const SECRET: &str = "arbortestsecret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn server_binary(var: &str, default: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()));
    assert!(
        path.exists(),
        "{} not found: run the tests through scripts/test.sh (it installs it), or set {var}",
        path.display()
    );
    path
}

/// nginx serving `root` on a free port, with `locations` added to its server block; returns
/// the process and the base URL.
fn nginx(work: &Path, root: &Path, locations: &str) -> (Reaper, String) {
    let binary = server_binary("ARBOR_NGINX", "/usr/sbin/nginx");
    let port = free_port();
    let tmp = work.join(format!("nginx-{port}"));
    std::fs::create_dir_all(&tmp).expect("mkdir");
    let t = tmp.display();
    let config = format!(
        "daemon off; master_process off; worker_processes 1; pid {t}/pid; error_log {t}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {t}/body; proxy_temp_path {t}/proxy; fastcgi_temp_path {t}/fastcgi;
  uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    {locations}
  }}
}}
",
        root = root.display()
    );
    let file = tmp.join("nginx.conf");
    std::fs::write(&file, config).expect("write config");
    let child = Reaper(
        Command::new(binary)
            .args(["-e", &format!("{t}/error.log"), "-c"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx"),
    );
    wait_for_port(port, "nginx");
    (child, format!("http://127.0.0.1:{port}"))
}

/// versitygw serving the directories under `root` as buckets; returns the process and the
/// environment `arbor` needs to reach it.
fn s3_server(root: &Path) -> (Reaper, Vec<(&'static str, String)>) {
    let binary = server_binary(
        "ARBOR_VERSITYGW",
        &format!(
            "{}/.cache/arbor/bin/versitygw",
            std::env::var("HOME").unwrap_or_default()
        ),
    );
    std::fs::create_dir_all(root.join("arbor")).expect("bucket directory");
    let port = free_port();
    let child = Reaper(
        Command::new(binary)
            .args(["--access", ACCESS, "--secret", SECRET, "--port"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("posix")
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn versitygw"),
    );
    wait_for_port(port, "versitygw");
    let env = vec![
        ("AWS_ACCESS_KEY_ID", ACCESS.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_REGION", "us-east-1".to_owned()),
    ];
    (child, env)
}

fn run_ok(command: &mut Command) -> String {
    let out = command.output().expect("run arbor");
    assert!(
        out.status.success(),
        "arbor failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn publish(db: &Path, to: &str, env: &[(&str, String)], part_mb: &str) {
    let db = db.display().to_string();
    run_ok(
        arbor()
            .args([
                "snapshot",
                "publish",
                "--db",
                &db,
                "--to",
                to,
                "--part-mb",
                part_mb,
            ])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
    );
}

/// `arbor sync --json` with `args`; returns its JSON lines.
fn sync_json(db: &Path, args: &[&str], env: &[(&str, String)]) -> Vec<Value> {
    let db = db.display().to_string();
    let stdout = run_ok(
        arbor()
            .args(["sync", "--db", &db, "--json", "--progress-ms", "50"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn event<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {lines:?}"))
}

fn manifest(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest JSON")
}

fn part_path(dir: &Path, manifest: &Value, i: usize) -> PathBuf {
    dir.join(manifest["parts"][i]["name"].as_str().expect("name"))
}

#[test]
fn a_snapshot_travels_through_s3_and_a_static_web_server() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("source");
    let root = load(&source, "50000");

    // S3: publish, then bootstrap with no peer at all.
    let (_s3, env) = s3_server(&work.path().join("s3"));
    publish(&source, "s3://arbor/snapshots/main", &env, "1");
    let from_s3 = work.path().join("from-s3");
    let lines = sync_json(
        &from_s3,
        &["--snapshot", "s3://arbor/snapshots/main", "--root", &root],
        &env,
    );
    let snapshot = event(&lines, "snapshot");
    assert!(
        snapshot["parts"].as_u64().expect("parts") >= 2,
        "{snapshot}"
    );
    assert_eq!(snapshot["applied"], snapshot["parts"]);
    assert_eq!(snapshot["percent"].as_f64(), Some(100.0));
    assert_eq!(root_of(&from_s3), root);

    // A directory served by nginx, trusted in follow mode because the peer proves it holds
    // the snapshot's root.
    let published = work.path().join("published");
    publish(
        &source,
        &format!("file://{}", published.display()),
        &[],
        "1",
    );
    let (_nginx, url) = nginx(work.path(), &published, "");
    let (_server, addr) = serve(&source, &[]);
    let peer = format!("http://{addr}");
    let from_web = work.path().join("from-web");
    let lines = sync_json(
        &from_web,
        &[
            "--snapshot",
            &url,
            "--follow",
            "--insecure-follow",
            "--quiet-ms",
            "300",
            "--peer",
            &peer,
        ],
        &[],
    );
    let snapshot = event(&lines, "snapshot");
    assert_eq!(snapshot["applied"], snapshot["parts"], "{snapshot}");
    let done = event(&lines, "done");
    assert_eq!(done["root"], root.as_str());
    assert_eq!(done["keys_written"], 0, "the peer had nothing left to send");
    assert_eq!(root_of(&from_web), root);
}

#[test]
fn hostile_storage_is_reported_part_by_part_and_peers_fill_the_gaps() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("source");
    let root = load(&source, "100000");
    let published = work.path().join("published");
    publish(
        &source,
        &format!("file://{}", published.display()),
        &[],
        "1",
    );
    let m = manifest(&published);
    assert!(m["parts"].as_array().expect("parts").len() >= 6, "{m}");
    // Parts 0-2 are damaged on disk; nginx answers 500 for part 3 and trickles part 4.
    let tampered = part_path(&published, &m, 0);
    let mut bytes = std::fs::read(&tampered).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&tampered, bytes).expect("write");
    let truncated = part_path(&published, &m, 1);
    let bytes = std::fs::read(&truncated).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).expect("write");
    let larger = part_path(&published, &m, 2);
    let mut bytes = std::fs::read(&larger).expect("read");
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&larger, bytes).expect("write");
    let name = |i: usize| m["parts"][i]["name"].as_str().expect("name").to_owned();
    let locations = format!(
        "location = /{} {{ return 500; }}\n    location = /{} {{ limit_rate 1; }}",
        name(3),
        name(4)
    );
    let (_nginx, url) = nginx(work.path(), &published, &locations);
    let (_server, addr) = serve(&source, &[]);
    let peer = format!("http://{addr}");
    let replica = work.path().join("replica");
    let lines = sync_json(
        &replica,
        &[
            "--snapshot",
            &url,
            "--snapshot-timeout",
            "1",
            "--root",
            &root,
            "--peer",
            &peer,
        ],
        &[],
    );
    let failed: Vec<(u64, String)> = lines
        .iter()
        .filter(|l| l["event"] == "snapshot_part" && l["status"] == "failed")
        .map(|l| {
            (
                l["index"].as_u64().expect("index"),
                l["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect();
    let mut failed = failed;
    failed.sort();
    let expect = [
        "SHA-256",
        "truncated",
        "larger than declared",
        "500",
        "no complete answer",
    ];
    assert_eq!(failed.len(), expect.len(), "{failed:?}");
    for ((index, reason), (i, want)) in failed.iter().zip(expect.iter().enumerate()) {
        assert_eq!(*index, i as u64);
        assert!(reason.contains(want), "part {index}: {reason}");
    }
    let snapshot = event(&lines, "snapshot");
    assert!(snapshot["percent"].as_f64().expect("percent") < 100.0);
    let done = event(&lines, "done");
    assert!(
        done["keys_written"].as_u64().expect("keys") > 0,
        "peers filled the gaps"
    );
    assert_eq!(root_of(&replica), root);
}

#[test]
fn a_manifest_of_another_root_is_refused_and_a_defective_one_is_used_as_far_as_it_goes() {
    let work = tempfile::tempdir().expect("tempdir");
    let old = work.path().join("old");
    load(&old, "50000");
    let published = work.path().join("published");
    publish(&old, &format!("file://{}", published.display()), &[], "1");
    // The peer holds another state than the snapshot.
    let newer = work.path().join("newer");
    let db = newer.display().to_string();
    run_ok(arbor().args(["load", "--db", &db, "--keys", "20000", "--seed", "9"]));
    let target = root_of(&newer);
    let (_server, addr) = serve(&newer, &[]);
    let peer = format!("http://{addr}");
    let snapshot_url = format!("file://{}", published.display());
    let replica = work.path().join("replica");
    let lines = sync_json(
        &replica,
        &[
            "--snapshot",
            &snapshot_url,
            "--root",
            &target,
            "--peer",
            &peer,
        ],
        &[],
    );
    let refused = event(&lines, "snapshot_refused");
    assert!(
        refused["reason"]
            .as_str()
            .expect("reason")
            .contains("not the trusted root"),
        "{refused}"
    );
    assert_eq!(root_of(&replica), target);
    // Without a peer, the refusal is an error.
    let out = arbor()
        .args(["sync", "--db"])
        .arg(work.path().join("alone"))
        .args(["--snapshot", &snapshot_url, "--root", &target])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the trusted root"));

    // A manifest that lists one part twice and leaves another out.
    let old_root = root_of(&old);
    let mut m = manifest(&published);
    let parts = m["parts"].as_array_mut().expect("parts");
    assert!(parts.len() >= 3);
    parts.remove(1);
    let again = parts[0].clone();
    parts.insert(1, again);
    std::fs::write(
        published.join("manifest.json"),
        serde_json::to_vec(&m).expect("json"),
    )
    .expect("write");
    let (_old_server, old_addr) = serve(&old, &[]);
    let old_peer = format!("http://{old_addr}");
    let replica = work.path().join("replica-defective");
    let lines = sync_json(
        &replica,
        &[
            "--snapshot",
            &snapshot_url,
            "--root",
            &old_root,
            "--peer",
            &old_peer,
        ],
        &[],
    );
    let snapshot = event(&lines, "snapshot");
    let defects = snapshot["defects"].to_string();
    assert!(
        defects.contains("overlaps") && defects.contains("gap"),
        "{defects}"
    );
    assert_eq!(snapshot["failed"], 1, "the repeated part: {snapshot}");
    assert_eq!(root_of(&replica), old_root);
}

#[test]
fn a_killed_bootstrap_resumes_without_fetching_its_parts_again() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("source");
    let root = load(&source, "100000");
    let published = work.path().join("published");
    publish(
        &source,
        &format!("file://{}", published.display()),
        &[],
        "1",
    );
    let parts = manifest(&published)["parts"]
        .as_array()
        .expect("parts")
        .len();
    // Slow enough that the kill lands mid-bootstrap.
    let (_nginx, url) = nginx(work.path(), &published, "limit_rate 2m;");
    let replica = work.path().join("replica");
    let db = replica.display().to_string();
    let args = [
        "sync",
        "--db",
        &db,
        "--json",
        "--snapshot",
        &url,
        "--root",
        &root,
    ];
    let mut first = Reaper(
        arbor()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let stdout = first.0.stdout.take().expect("stdout");
    let mut applied = 0;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["event"] == "snapshot_part" && event["status"] == "applied" {
            applied += 1;
            if applied == 2 {
                first.0.kill().expect("SIGKILL");
                break;
            }
        }
    }
    let _ = first.0.wait();
    assert_eq!(applied, 2, "killed after two parts of {parts}");
    let lines = sync_json(&replica, &["--snapshot", &url, "--root", &root], &[]);
    let snapshot = event(&lines, "snapshot");
    let held = snapshot["held"].as_u64().expect("held");
    assert!(held >= 2, "{snapshot}");
    assert_eq!(
        held + snapshot["applied"].as_u64().expect("applied"),
        parts as u64,
        "{snapshot}"
    );
    assert_eq!(root_of(&replica), root);
}

#[test]
fn serve_publishes_every_n_commits_and_keeps_the_newest() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("source");
    load(&source, "20000");
    let published = work.path().join("published");
    let db = source.display().to_string();
    let to = format!("file://{}", published.display());
    let mut server = Reaper(
        arbor()
            .args(["serve", "--db", &db, "--listen", "127.0.0.1:0"])
            .args(["--churn-keys", "50", "--churn-every", "50"])
            .args([
                "--publish",
                &to,
                "--publish-every",
                "3",
                "--publish-keep",
                "2",
            ])
            .args(["--publish-grace-secs", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    let stdout = server.0.stdout.take().expect("stdout");
    let mut roots = Vec::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("published ") {
            let (seq, root) = rest.split_once(' ').expect("seq root");
            roots.push((seq.parse::<u64>().expect("seq"), root.to_owned()));
            if roots.len() == 4 {
                break;
            }
        }
    }
    support::terminate(&mut server);
    assert_eq!(roots.len(), 4);
    for pair in roots.windows(2) {
        assert!(pair[1].0 >= pair[0].0 + 3, "every 3 commits: {roots:?}");
    }
    // Pruned to the two newest, and no part that neither names.
    let manifests: Vec<_> = std::fs::read_dir(published.join("manifests"))
        .expect("manifests")
        .map(|e| e.expect("entry").file_name().into_string().expect("name"))
        .collect();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    let (newest_seq, newest_root) = roots.last().expect("newest").clone();
    assert!(manifests.contains(&format!("{newest_seq:020}-{newest_root}.json")));
    let mut named = std::collections::HashSet::new();
    for file in &manifests {
        let text = std::fs::read_to_string(published.join("manifests").join(file)).expect("read");
        let m: Value = serde_json::from_str(&text).expect("json");
        for part in m["parts"].as_array().expect("parts") {
            named.insert(part["name"].as_str().expect("name").to_owned());
        }
    }
    let on_disk = std::fs::read_dir(published.join("parts"))
        .expect("parts")
        .count();
    assert_eq!(on_disk, named.len());
    // The newest snapshot bootstraps a replica on its own.
    let replica = work.path().join("replica");
    sync_json(&replica, &["--snapshot", &to, "--root", &newest_root], &[]);
    assert_eq!(root_of(&replica), newest_root);
}

#[test]
fn an_older_snapshot_named_by_its_manifest_is_finished_by_peers_with_change_proofs() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("source");
    load(&source, "50000");
    let published = work.path().join("published");
    let db = source.display().to_string();
    let to = format!("file://{}", published.display());
    // Publishes once at start, then churns five commits past the snapshot's root.
    let mut server = Reaper(
        arbor()
            .args(["serve", "--db", &db, "--listen", "127.0.0.1:0"])
            .args([
                "--churn-keys",
                "200",
                "--churn-every",
                "100",
                "--churn-commits",
                "5",
            ])
            .args(["--publish", &to, "--publish-every", "1000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    let mut lines = BufReader::new(server.0.stdout.take().expect("stdout")).lines();
    let mut addr = None;
    let mut snapshot = None;
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = Some(a.to_owned());
        }
        if let Some(rest) = line.strip_prefix("published ") {
            let (seq, root) = rest.split_once(' ').expect("seq root");
            snapshot = Some((seq.parse::<u64>().expect("seq"), root.to_owned()));
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let (seq, old_root) = snapshot.expect("published at start");
    let peer = format!("http://{}", addr.expect("address"));
    std::thread::sleep(Duration::from_millis(1500)); // the five churn commits
    let url = format!("{to}/manifests/{seq:020}-{old_root}.json");
    let replica = work.path().join("replica");
    let lines = sync_json(
        &replica,
        &[
            "--snapshot",
            &url,
            "--snapshot-root",
            &old_root,
            "--follow",
            "--insecure-follow",
            "--quiet-ms",
            "500",
            "--peer",
            &peer,
        ],
        &[],
    );
    let snapshot = event(&lines, "snapshot");
    assert_eq!(snapshot["root"], old_root.as_str());
    assert_eq!(snapshot["applied"], snapshot["parts"], "{snapshot}");
    let done = event(&lines, "done");
    assert_ne!(done["root"], old_root.as_str(), "the target moved on");
    let (changed, from_snapshot) = (
        done["bytes"].as_u64().expect("bytes"),
        done["snapshot_bytes"].as_u64().expect("snapshot bytes"),
    );
    assert!(
        changed * 10 < from_snapshot,
        "change proofs, not a second full copy: {changed} bytes after {from_snapshot}"
    );
    support::terminate(&mut server);
    assert_eq!(root_of(&replica), root_of(&source));
}

#[test]
fn the_metrics_endpoint_counts_snapshot_parts() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("source");
    load(&source, "50000");
    let published = work.path().join("published");
    let to = format!("file://{}", published.display());
    publish(&source, &to, &[], "1");
    let parts = manifest(&published)["parts"]
        .as_array()
        .expect("parts")
        .len();
    let (_server, addr) = serve(&source, &[]);
    let peer = format!("http://{addr}");
    let db = work.path().join("replica").display().to_string();
    // --live keeps the process (and its metrics endpoint) up after the bootstrap.
    let mut sync = Reaper(
        arbor()
            .args(["sync", "--db", &db, "--snapshot", &to, "--peer", &peer])
            .args([
                "--follow",
                "--insecure-follow",
                "--live",
                "--metrics",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sync"),
    );
    let stderr = BufReader::new(sync.0.stderr.take().expect("stderr"));
    let mut lines = stderr.lines().map_while(Result::ok);
    let url = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("metrics on ").map(str::to_owned))
        .expect("announces its metrics endpoint");
    std::thread::spawn(move || lines.for_each(drop));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = support::http_get(&url);
        let applied = support::sample(&body, "arbor_sync_snapshot_parts_total{status=\"applied\"}");
        if applied == Some(parts as f64) {
            assert!(support::sample(&body, "arbor_sync_snapshot_bytes_total").unwrap_or(0.0) > 0.0);
            assert_eq!(
                support::sample(&body, "arbor_sync_snapshot_keyspace_fraction"),
                Some(1.0),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never counted {parts} parts: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
