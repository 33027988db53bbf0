//! Where the commit benchmark's time goes: the same workload as `benches/merkledb_commit.rs`
//! (random 32-byte keys and values, committed in batches of 10k), timed per phase, with the
//! process CPU time beside the wall time (a 2-core machine has two seconds of CPU per second).
//! For profiling (`perf record … target/release/examples/commit_profile`), not for figures:
//! those come from criterion.
//!
//! Environment: `N` keys (default 1,000,000), `R` rounds (default 3), `MEM=1` for the in-memory
//! store, `WB` RocksDB memtable size in MiB, `PER_FLUSH` memtables merged per flush,
//! `NO_CLOSE=1` to leave each round's database open (and its files behind), `PERF_CTL` a fifo to
//! profile the timed commits only:
//! `mkfifo /tmp/ctl && PERF_CTL=/tmp/ctl perf record -D -1 --control fifo:/tmp/ctl -g …`.

use std::time::{Duration, Instant};

use arbor_merkledb::{
    Config, Db,
    test_utils::{put_batches, random_kvs},
};

/// The allocator the `arbor` binary ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Process CPU time (user + system) in seconds, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Sends `command` to `perf record --control fifo:$PERF_CTL` (if set), so that a profile started
/// with `-D -1` covers the timed commits only.
fn perf_control(command: &[u8]) {
    use std::io::Write;
    if let Some(path) = std::env::var_os("PERF_CTL") {
        let sent = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut fifo| fifo.write_all(command));
        if let Err(e) = sent {
            eprintln!("perf control {path:?}: {e}");
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = env("N", 1_000_000);
    let rounds = env("R", 3);
    let kvs = random_kvs(42, n);
    for round in 0..rounds {
        let dir = tempfile::tempdir()?;
        let db = if std::env::var_os("MEM").is_some() {
            Db::open_memory(Config::default())?
        } else {
            let mut config = Config::default();
            if let Ok(mib) = std::env::var("WB") {
                config.rocks.write_buffer_bytes = mib.parse::<usize>()? << 20;
            }
            if let Ok(count) = std::env::var("PER_FLUSH") {
                config.rocks.memtables_per_flush = count.parse()?;
            }
            Db::open(dir.path(), config)?
        };
        // Owned batches built before the clock, as in the criterion bench.
        let batches = put_batches(&kvs, 10_000);
        let (mut propose, mut commit) = (Duration::ZERO, Duration::ZERO);
        perf_control(b"enable\n");
        let cpu_start = cpu_seconds();
        let start = Instant::now();
        for ops in batches {
            let t = Instant::now();
            let proposal = db.propose(ops)?;
            propose += t.elapsed();
            let t = Instant::now();
            proposal.commit()?;
            commit += t.elapsed();
        }
        let total = start.elapsed();
        let cpu = cpu_seconds() - cpu_start;
        perf_control(b"disable\n");
        let t = Instant::now();
        if std::env::var_os("NO_CLOSE").is_some() {
            // Leaves the close's flush out of a profile: the database and its files leak.
            std::mem::forget(db);
            std::mem::forget(dir);
        } else {
            db.close()?;
        }
        println!(
            "round {round}: {:.2} s ({:.0} keys/s), cpu {cpu:.2} s; propose {:.2} s, commit {:.2} s, close {:.2} s",
            total.as_secs_f64(),
            n as f64 / total.as_secs_f64(),
            propose.as_secs_f64(),
            commit.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
