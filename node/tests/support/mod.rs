//! Helpers for tests that run `arbor` as real processes.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The `arbor` binary under test.
pub(crate) fn arbor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arbor"))
}

/// Kills the child if the test fails before it exits.
pub(crate) struct Reaper(pub(crate) Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `arbor load` of `keys` keys (seed 3) into `db`; returns the root it printed.
pub(crate) fn load(db: &Path, keys: &str) -> String {
    let db = db.display().to_string();
    let load = arbor()
        .args(["load", "--db", &db, "--keys", keys, "--seed", "3"])
        .output()
        .expect("load");
    assert!(load.status.success(), "load failed");
    String::from_utf8(load.stdout)
        .expect("utf8")
        .lines()
        .next()
        .expect("root line")
        .to_owned()
}

/// Starts `arbor serve` on the database at `db` with `extra` flags; returns the process and
/// the address it announced.
pub(crate) fn serve(db: &Path, extra: &[&str]) -> (Reaper, String) {
    let (child, addr, _) = start(db, extra, false);
    (child, addr)
}

/// Like [`serve`] with `--metrics 127.0.0.1:0` added; also returns the metrics URL it announced.
pub(crate) fn serve_with_metrics(db: &Path, extra: &[&str]) -> (Reaper, String, String) {
    let (child, addr, metrics) = start(db, extra, true);
    (child, addr, metrics.expect("metrics URL"))
}

/// Starts `arbor serve` and reads what it announces: `listening on ADDR`, `root R`, and with
/// `metrics`, `metrics on URL`.
fn start(db: &Path, extra: &[&str], metrics: bool) -> (Reaper, String, Option<String>) {
    let db = db.display().to_string();
    let mut command = arbor();
    command.args(["serve", "--db", &db, "--listen", "127.0.0.1:0"]);
    if metrics {
        command.args(["--metrics", "127.0.0.1:0"]);
    }
    let mut child = Reaper(
        command
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().expect("a line").expect("utf8");
    let addr = next()
        .strip_prefix("listening on ")
        .expect("announces its address")
        .to_string();
    let metrics = metrics.then(|| {
        let _root = next();
        next()
            .strip_prefix("metrics on ")
            .expect("announces its metrics endpoint")
            .to_string()
    });
    // Keep reading whatever else it prints, so its stdout never hits a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr, metrics)
}

/// `GET url` (an `http://HOST:PORT/PATH` URL) over a plain TCP connection; returns the body.
pub(crate) fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample `name` (with its labels, exactly as exposed) in a Prometheus text
/// exposition, if present.
pub(crate) fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Loads `keys` keys into a new database `dir/db`, then serves it (see [`serve`]).
pub(crate) fn start_serve(dir: &Path, keys: &str, extra: &[&str]) -> (Reaper, String) {
    let db = dir.join("db");
    load(&db, keys);
    serve(&db, extra)
}

/// Sends SIGTERM and waits (at most 20 s) for a clean exit.
pub(crate) fn terminate(child: &mut Reaper) {
    let pid = child.0.id().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            assert!(status.success(), "graceful shutdown exits 0, got {status}");
            return;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first line of `arbor root --db DB`.
pub(crate) fn root_of(db: &Path) -> String {
    let out = arbor()
        .args(["root", "--db", &db.display().to_string()])
        .output()
        .expect("root");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .next()
        .expect("root line")
        .to_owned()
}
