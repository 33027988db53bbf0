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
    let db = db.display().to_string();
    let mut child = Reaper(
        arbor()
            .args(["serve", "--db", &db, "--listen", "127.0.0.1:0"])
            .args(extra)
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
    // Keep reading whatever else it prints, so its stdout never hits a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
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
