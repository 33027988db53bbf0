//! The scale benchmark's engine (issue #17): what a chain's state costs as it grows. For one
//! state size it builds the state, then measures the sustained commit rate of a chain's mix of
//! changes, each commit's latency, peak RSS, disk bytes per key, write amplification and the
//! time to reopen, and the same figures for plain RocksDB puts of the same key-values (no trie).
//! `scripts/bench-scale.sh` runs it at several sizes, adds a loopback sync of each state, and
//! draws the table and plot of BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench scale -- --keys 10000000 [--churn 1000000] [--dir DIR] [--keep]
//!     [--build random|sorted] [--reuse] [--no-baseline | --baseline-only] [--windows N]
//! cargo bench --bench scale -- --keys 100000000 --dir DIR --read-cost
//! ```
//!
//! Prints a human summary on stderr and one JSON object on stdout. `--keep` leaves the trie
//! database in `DIR/trie` (for the script's sync). `--windows N` also prints the figures of
//! every N changes of the churn as they end (a curve over the run: one figure for a whole
//! churn hides the compaction debt that builds up in it); `--baseline-only` runs plain RocksDB
//! alone (its sustained rate over a long churn is the floor of any system writing its values
//! there). `--read-cost` measures what one read from the values space of a state kept in
//! `DIR/trie` costs (see [`read_cost`]). Under `cargo test` (no `--bench` argument) it runs the
//! same code paths at 20k keys and checks their results.
//!
//! The workload: keys are 32 pseudo-random bytes derived from their index, values 32 bytes; the
//! state is built in commits of 10k new keys; then commits of 10k changes, each 47.5% updates
//! of existing keys, 47.5% new keys and 5% deletes of existing keys, until `--churn` changes
//! have been committed.
//!
//! `--build sorted` builds the same state in key order (each commit 10k keys adjacent in key
//! order, as a sync or an import writes them): at 100M keys this takes minutes where random
//! commits take an hour. `--reuse` skips the build when `DIR/trie` already holds a state this
//! tool built with the same `--keys` and no churn (a copy of one kept with `--keep --churn 0`),
//! so that variants of the commit path can be compared on one large state; its build figures
//! then read zero. `--no-baseline` skips plain RocksDB. `SCALE_CACHE_NODES` and
//! `SCALE_DIRTY_NODES` set the trie's node budgets, `SCALE_BLOCK_CACHE_MIB` its RocksDB block
//! cache (default: `Config::default()`'s).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use arbor_merkledb::{
    BatchOp, Config, Db,
    store::{Batch, Durability, RocksConfig, RocksStore, Space, Store},
};

/// mimalloc, as in the `arbor` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: u64 = 10_000;

/// Key `i` of the workload: 32 bytes that look random and never repeat.
fn key(i: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5ca1e);
    let mut k = vec![0; 32];
    rng.fill(&mut k);
    // The index in the last 8 bytes makes keys distinct whatever the generator does.
    k[24..].copy_from_slice(&i.to_be_bytes());
    k
}

/// Value of key `i` at `version`.
fn value(i: u64, version: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(i ^ version.rotate_left(32) ^ 0xda7a);
    let mut v = vec![0; 32];
    rng.fill(&mut v);
    v
}

/// Which keys exist: indices below `next` that were not deleted.
struct Keyspace {
    next: u64,
    deleted: Vec<bool>,
    rng: fastrand::Rng,
    version: u64,
}

impl Keyspace {
    fn new() -> Self {
        Self {
            next: 0,
            deleted: Vec::new(),
            rng: fastrand::Rng::with_seed(0x5eed),
            version: 0,
        }
    }

    /// `n` new keys.
    fn grow(&mut self, n: u64) -> Vec<BatchOp> {
        (0..n)
            .map(|_| {
                let i = self.next;
                self.next += 1;
                self.deleted.push(false);
                (key(i), Some(value(i, 0)))
            })
            .collect()
    }

    /// Records keys `next..n` as created without generating them.
    fn advance(&mut self, n: u64) {
        self.deleted.resize(n as usize, false);
        self.next = n;
    }

    /// A random existing key's index.
    fn existing(&mut self) -> u64 {
        loop {
            let i = self.rng.u64(..self.next);
            if !self.deleted[i as usize] {
                return i;
            }
        }
    }

    /// One commit of a chain's mix: 47.5% updates, 47.5% new keys, 5% deletes.
    fn churn(&mut self, n: u64) -> Vec<BatchOp> {
        self.version += 1;
        let deletes = n / 20;
        let updates = (n - deletes) / 2;
        let mut ops = self.grow(n - deletes - updates);
        for _ in 0..updates {
            let i = self.existing();
            ops.push((key(i), Some(value(i, self.version))));
        }
        for _ in 0..deletes {
            let i = self.existing();
            self.deleted[i as usize] = true;
            ops.push((key(i), None));
        }
        ops
    }

    fn live(&self) -> u64 {
        self.deleted.iter().filter(|d| !**d).count() as u64
    }
}

/// Bytes of user data in `ops`: key and value of a put, the key of a delete.
fn user_bytes(ops: &[BatchOp]) -> u64 {
    ops.iter()
        .map(|(k, v)| (k.len() + v.as_ref().map_or(0, Vec::len)) as u64)
        .sum()
}

/// Bytes this process has caused to be written to storage (`/proc/self/io`), RocksDB's
/// background flushes and compactions included.
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The peak resident set since the last [`reset_peak_rss`], in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let kib: u64 = l
                    .strip_prefix("VmHWM:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()?;
                Some(kib << 10)
            })
        })
        .unwrap_or(0)
}

/// Starts a new peak-RSS measurement (Linux: writing 5 to `clear_refs` resets `VmHWM`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Total size of the files under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Latency percentiles of the commits, in milliseconds.
struct Latencies {
    p50: f64,
    p99: f64,
    max: f64,
}

fn latencies(mut samples: Vec<Duration>) -> Latencies {
    if samples.is_empty() {
        // No churn (a build kept for `--reuse`).
        samples.push(Duration::ZERO);
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e3
    };
    Latencies {
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// What one system (the trie, or plain RocksDB) measured.
struct Figures {
    build_secs: f64,
    build_peak_rss: u64,
    churn_ops: u64,
    churn_secs: f64,
    latency: Latencies,
    churn_peak_rss: u64,
    write_amplification: f64,
    /// Bytes on disk per live key after the close.
    disk_bytes_per_key: f64,
    reopen_secs: f64,
    /// Windows printed (`--windows`; zero without).
    windows: u64,
}

impl Figures {
    fn json(&self, keys: u64) -> String {
        format!(
            concat!(
                "{{\"build_keys_per_sec\":{:.0},\"build_peak_rss_mib\":{:.0},\"windows\":{},",
                "\"churn_keys_per_sec\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},",
                "\"churn_peak_rss_mib\":{:.0},\"write_amplification\":{:.2},",
                "\"disk_bytes_per_key\":{:.1},\"reopen_secs\":{:.3}}}"
            ),
            keys as f64 / self.build_secs,
            self.build_peak_rss as f64 / 1048576.0,
            self.windows,
            self.churn_ops as f64 / self.churn_secs,
            self.latency.p50,
            self.latency.p99,
            self.latency.max,
            self.churn_peak_rss as f64 / 1048576.0,
            self.write_amplification,
            self.disk_bytes_per_key,
            self.reopen_secs,
        )
    }

    fn print(&self, name: &str, keys: u64) {
        eprintln!(
            "{name}: build {:.0} keys/s (peak {:.0} MiB); churn {:.0} keys/s, commit p50 {:.1} ms \
             p99 {:.1} ms max {:.1} ms (peak {:.0} MiB); write amplification {:.2}; disk {:.1} \
             B/key; reopen {:.3} s",
            keys as f64 / self.build_secs,
            self.build_peak_rss as f64 / 1048576.0,
            self.churn_ops as f64 / self.churn_secs,
            self.latency.p50,
            self.latency.p99,
            self.latency.max,
            self.churn_peak_rss as f64 / 1048576.0,
            self.write_amplification,
            self.disk_bytes_per_key,
            self.reopen_secs,
        );
    }
}

/// The figures of consecutive windows of the churn (`--windows`), each printed as it ends.
struct Window {
    /// Changes per window.
    size: u64,
    /// Windows printed so far.
    ended: u64,
    started: Instant,
    /// Changes, `written_bytes()`, user bytes and commits counted when the current window
    /// started.
    from: u64,
    written: u64,
    user: u64,
    commits: usize,
}

impl Window {
    fn new(size: u64, written: u64) -> Self {
        Window {
            size: size.max(1),
            ended: 0,
            started: Instant::now(),
            from: 0,
            written,
            user: 0,
            commits: 0,
        }
    }

    /// Called after each commit with the changes and user bytes committed so far and every
    /// commit's latency; prints and restarts the window once it holds `size` changes or more
    /// (a window ends with a commit).
    fn after_commit(&mut self, done: u64, user: u64, samples: &[Duration]) {
        if done - self.from < self.size {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        let written = written_bytes();
        let latency = latencies(samples[self.commits..].to_vec());
        eprintln!(
            "window {} (changes {}..{done}): {:.0} keys/s, commit p50 {:.1} ms p99 {:.1} ms max \
             {:.1} ms; write amplification {:.2}",
            self.ended + 1,
            self.from,
            (done - self.from) as f64 / secs,
            latency.p50,
            latency.p99,
            latency.max,
            written.saturating_sub(self.written) as f64 / (user - self.user).max(1) as f64,
        );
        self.ended += 1;
        self.from = done;
        self.started = Instant::now();
        self.written = written;
        self.user = user;
        self.commits = samples.len();
    }
}

/// The two ways of applying a batch that are compared.
trait System {
    fn apply(&mut self, ops: Vec<BatchOp>);
    fn close(self);
}

struct Trie(Db);

impl System for Trie {
    fn apply(&mut self, ops: Vec<BatchOp>) {
        self.0
            .propose(ops)
            .expect("propose")
            .commit()
            .expect("commit");
    }

    fn close(self) {
        self.0.close().expect("close");
    }
}

struct Raw(RocksStore);

impl System for Raw {
    fn apply(&mut self, mut ops: Vec<BatchOp>) {
        // Sorted, as a commit writes them.
        ops.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut batch = Batch::with_capacity(ops.len());
        for (k, v) in ops {
            match v {
                Some(v) => batch.put(Space::Values, k, v),
                None => batch.delete(Space::Values, k),
            }
        }
        self.0.write(batch, Durability::Process).expect("write");
    }

    fn close(self) {
        self.0.compact_log().expect("flush");
    }
}

/// How the state is built before the churn.
#[derive(Clone, Copy, PartialEq)]
enum Build {
    /// Commits of 10k new keys in the order of their indices (random in key order).
    Random,
    /// Commits of 10k new keys adjacent in key order.
    Sorted,
    /// No build: the database already holds the built state.
    Reused,
}

/// Commits keys `0..keys` of the workload in key order, 10k per commit, and advances
/// `keyspace` past them. The keys are generated in sixteen passes, one per first nibble, so
/// that at most a sixteenth of them is held at a time.
fn build_sorted<S: System>(system: &mut S, keyspace: &mut Keyspace, keys: u64) {
    for nibble in 0..16u8 {
        let mut part: Vec<[u8; 32]> = (0..keys)
            .map(key)
            .filter(|k| k[0] >> 4 == nibble)
            .map(|k| k.try_into().expect("32 bytes"))
            .collect();
        part.sort_unstable();
        for chunk in part.chunks(BATCH as usize) {
            let ops = chunk
                .iter()
                .map(|k| {
                    // The index is the key's last 8 bytes (see `key`).
                    let i = u64::from_be_bytes(k[24..].try_into().expect("8 bytes"));
                    (k.to_vec(), Some(value(i, 0)))
                })
                .collect();
            system.apply(ops);
        }
    }
    keyspace.advance(keys);
}

/// Builds `keys` keys into `system`, churns `churn` changes, closes; `reopen` times a reopen.
fn measure<S: System>(
    mut system: S,
    keys: u64,
    churn: u64,
    build: Build,
    windows: Option<u64>,
    dir: &Path,
    reopen: impl FnOnce() -> Duration,
) -> Figures {
    let mut keyspace = Keyspace::new();
    reset_peak_rss();
    let start = Instant::now();
    match build {
        Build::Random => {
            while keyspace.next < keys {
                let ops = keyspace.grow(BATCH.min(keys - keyspace.next));
                system.apply(ops);
            }
        }
        Build::Sorted => build_sorted(&mut system, &mut keyspace, keys),
        Build::Reused => keyspace.advance(keys),
    }
    let build_secs = match build {
        Build::Reused => f64::INFINITY,
        _ => start.elapsed().as_secs_f64(),
    };
    let build_peak_rss = peak_rss();
    reset_peak_rss();
    let written_before = written_bytes();
    let mut user = 0;
    let mut samples = Vec::new();
    let mut done = 0;
    let mut window = windows.map(|size| Window::new(size, written_before));
    let start = Instant::now();
    while done < churn {
        let ops = keyspace.churn(BATCH.min(churn - done).max(20));
        done += ops.len() as u64;
        user += user_bytes(&ops);
        let t = Instant::now();
        system.apply(ops);
        samples.push(t.elapsed());
        if let Some(window) = &mut window {
            window.after_commit(done, user, &samples);
        }
    }
    let churn_secs = start.elapsed().as_secs_f64();
    let churn_peak_rss = peak_rss();
    system.close();
    // Zero without a churn (a build kept for `--reuse`).
    let write_amplification = match user {
        0 => 0.0,
        _ => (written_bytes() - written_before) as f64 / user as f64,
    };
    let live = keyspace.live();
    Figures {
        build_secs,
        build_peak_rss,
        churn_ops: done,
        churn_secs,
        latency: latencies(samples),
        churn_peak_rss,
        write_amplification,
        disk_bytes_per_key: disk_bytes(dir) as f64 / live.max(1) as f64,
        reopen_secs: reopen().as_secs_f64(),
        windows: window.map_or(0, |w| w.ended),
    }
}

struct Args {
    keys: u64,
    churn: u64,
    dir: Option<PathBuf>,
    keep: bool,
    build: Build,
    reuse: bool,
    systems: Systems,
    /// Changes per window of `--windows`.
    windows: Option<u64>,
    /// `--read-cost`: measure reads from a kept state instead.
    read_cost: bool,
}

fn parse_args() -> Option<Args> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if !argv.iter().any(|a| a == "--bench") {
        return None;
    }
    let value = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1))
            .cloned()
    };
    let number =
        |flag: &str, default: u64| value(flag).map_or(default, |v| v.parse().expect("a number"));
    let keys = number("--keys", 1_000_000);
    Some(Args {
        keys,
        churn: number("--churn", 1_000_000),
        dir: value("--dir").map(PathBuf::from),
        keep: argv.iter().any(|a| a == "--keep"),
        build: match value("--build").as_deref() {
            None | Some("random") => Build::Random,
            Some("sorted") => Build::Sorted,
            Some(other) => panic!("--build random|sorted, not {other}"),
        },
        reuse: argv.iter().any(|a| a == "--reuse"),
        systems: match (
            argv.iter().any(|a| a == "--no-baseline"),
            argv.iter().any(|a| a == "--baseline-only"),
        ) {
            (false, false) => Systems::Both,
            (true, false) => Systems::Trie,
            (false, true) => Systems::Baseline,
            (true, true) => panic!("--no-baseline and --baseline-only exclude each other"),
        },
        windows: value("--windows").map(|v| v.parse().expect("a number of changes")),
        read_cost: argv.iter().any(|a| a == "--read-cost"),
    })
}

/// The trie's configuration: the defaults, with the node budgets from `SCALE_CACHE_NODES` and
/// `SCALE_DIRTY_NODES` and RocksDB's block cache from `SCALE_BLOCK_CACHE_MIB` when set (to
/// measure other budgets with the same binary).
fn trie_config() -> Config {
    let from_env = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.parse::<usize>().expect("a number of nodes"))
    };
    let mut config = Config::default();
    if let Some(nodes) = from_env("SCALE_CACHE_NODES") {
        config = config.with_node_cache_nodes(nodes);
    }
    if let Some(nodes) = from_env("SCALE_DIRTY_NODES") {
        config = config.with_dirty_node_budget(nodes);
    }
    if let Some(mib) = from_env("SCALE_BLOCK_CACHE_MIB") {
        config.rocks.block_cache_bytes = mib << 20;
    }
    config
}

/// Which systems a run measures.
#[derive(Clone, Copy, PartialEq)]
enum Systems {
    /// The trie, then plain RocksDB.
    Both,
    /// The trie only (`--no-baseline`).
    Trie,
    /// Plain RocksDB only (`--baseline-only`).
    Baseline,
}

/// Runs the chosen systems at one size; returns the JSON line.
fn run(args: &Args, dir: &Path) -> String {
    let Args {
        keys,
        churn,
        build,
        reuse,
        systems,
        windows,
        ..
    } = *args;
    let build_name = match build {
        Build::Sorted => "sorted",
        _ => "random",
    };
    let mut line = format!("{{\"keys\":{keys},\"churn\":{churn},\"build\":\"{build_name}\"");
    if systems != Systems::Baseline {
        let trie_dir = dir.join("trie");
        let reused = reuse && trie_dir.exists();
        let db = Db::open(&trie_dir, trie_config()).expect("open");
        let trie_build = match reused {
            true => {
                let count = db.key_count().expect("count");
                assert_eq!(
                    count, keys,
                    "--reuse: {trie_dir:?} holds {count} keys, not {keys}"
                );
                Build::Reused
            }
            false => build,
        };
        let reopen_dir = trie_dir.clone();
        let trie = measure(
            Trie(db),
            keys,
            churn,
            trie_build,
            windows,
            &trie_dir,
            || {
                let start = Instant::now();
                let db = Db::open(&reopen_dir, trie_config()).expect("reopen");
                let took = start.elapsed();
                db.close().expect("close");
                took
            },
        );
        trie.print("trie", keys);
        line += &format!(",\"trie\":{}", trie.json(keys));
    }
    if systems != Systems::Trie {
        let raw_dir = dir.join("raw");
        let store = RocksStore::open(&raw_dir, &RocksConfig::default()).expect("open raw");
        let reopen_raw = raw_dir.clone();
        let raw = measure(Raw(store), keys, churn, build, windows, &raw_dir, || {
            let start = Instant::now();
            let store = RocksStore::open(&reopen_raw, &RocksConfig::default()).expect("reopen raw");
            let took = start.elapsed();
            drop(store);
            took
        });
        raw.print("plain RocksDB", keys);
        let _ = std::fs::remove_dir_all(&raw_dir);
        line += &format!(",\"rocksdb\":{}", raw.json(keys));
    }
    line + "}"
}

/// `--read-cost`: the CPU cost of one read from the values space of the state in `dir/trie` (of
/// `keys` keys that this tool built, with no churn since), a floor under what a commit of
/// random keys pays per changed key at that size. Per round, each in key order (as a commit
/// reads) on one thread: 20k gets of present keys, 20k gets of absent keys (answered by the
/// filters), and 20k scans of the keys under a present key's first 3 bytes through one
/// reader (at 100M keys, the values a rebuild of a lowest subtrie reads). Returns the JSON
/// line of the last round.
fn read_cost(keys: u64, dir: &Path) -> String {
    const READS: usize = 20_000;
    let store = RocksStore::open(&dir.join("trie"), &RocksConfig::default()).expect("open");
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut sorted = |make: &mut dyn FnMut(&mut fastrand::Rng) -> Vec<u8>| {
        let mut keys: Vec<Vec<u8>> = (0..READS).map(|_| make(&mut rng)).collect();
        keys.sort_unstable();
        keys
    };
    let per_read = |start: Instant| start.elapsed().as_secs_f64() * 1e6 / READS as f64;
    // Microseconds per get of `keys`, and how many were found.
    let gets = |keys: &[Vec<u8>]| {
        let start = Instant::now();
        let found = keys
            .iter()
            .filter(|k| store.get(Space::Values, k).expect("get").is_some())
            .count();
        (per_read(start), found)
    };
    let mut line = String::new();
    for round in 1..=4 {
        let present = sorted(&mut |rng| key(rng.u64(..keys)));
        let absent = sorted(&mut |rng| {
            let mut k = vec![0; 32];
            rng.fill(&mut k);
            k
        });
        let prefixes = sorted(&mut |rng| key(rng.u64(..keys))[..3].to_vec());
        let (get_present, found) = gets(&present);
        let (get_absent, found_absent) = gets(&absent);
        let mut reader = store.prefix_reader(Space::Values).expect("reader");
        let start = Instant::now();
        let scanned: usize = prefixes
            .iter()
            .map(|p| reader.scan_prefix(p, 24).expect("scan").len())
            .sum();
        let scan = per_read(start);
        drop(reader);
        eprintln!(
            "read cost, round {round}: get of a present key {get_present:.2} µs ({found} of \
             {READS} found), of an absent key {get_absent:.2} µs ({found_absent} found), scan \
             of a 3-byte prefix {scan:.2} µs ({:.1} keys each)",
            scanned as f64 / READS as f64
        );
        line = format!(
            "{{\"keys\":{keys},\"read_cost_us\":{{\"get_present\":{get_present:.2},\
             \"get_absent\":{get_absent:.2},\"scan_prefix\":{scan:.2},\"found\":{found}}}}}"
        );
    }
    line
}

fn main() {
    let Some(args) = parse_args() else {
        smoke_test();
        return;
    };
    if args.read_cost {
        let dir = args.dir.as_deref().expect("--read-cost needs --dir");
        println!("{}", read_cost(args.keys, dir));
        return;
    }
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).expect("dir");
    let line = run(&args, &dir);
    println!("{line}");
    if !args.keep {
        let _ = std::fs::remove_dir_all(dir.join("trie"));
    }
}

/// `cargo test --bench scale`: the same paths at 20k keys, with their results checked.
fn smoke_test() {
    const KEYS: u64 = 20_000;
    let root_of = |dir: &Path| {
        let db = Db::open(dir.join("trie"), Config::default()).expect("open");
        let root = db.root().expect("root");
        db.close().expect("close");
        root
    };
    // A sorted build makes the state a random one does.
    let random = tempfile::tempdir().expect("tempdir");
    let sorted = tempfile::tempdir().expect("tempdir");
    let args = |churn, build, reuse, systems, windows| Args {
        keys: KEYS,
        churn,
        dir: None,
        keep: false,
        build,
        reuse,
        systems,
        windows,
        read_cost: false,
    };
    run(
        &args(0, Build::Random, false, Systems::Trie, None),
        random.path(),
    );
    run(
        &args(0, Build::Sorted, false, Systems::Trie, None),
        sorted.path(),
    );
    assert_eq!(root_of(random.path()), root_of(sorted.path()));
    // Every present key is found.
    let costs = read_cost(KEYS, random.path());
    assert!(costs.contains("\"found\":20000}"), "{costs}");
    // A churn on the reused state, then on a fresh build: the same state after both.
    let reused = args(KEYS, Build::Random, true, Systems::Trie, None);
    let line = run(&reused, sorted.path());
    assert!(line.contains("\"build_keys_per_sec\":0,"), "{line}");
    let temp = tempfile::tempdir().expect("tempdir");
    let line = run(
        &args(KEYS, Build::Random, false, Systems::Both, None),
        temp.path(),
    );
    assert!(line.contains("\"trie\":{\"build_keys_per_sec\":"), "{line}");
    assert!(line.contains("\"rocksdb\":{"), "{line}");
    // Plain RocksDB alone, in windows of 5k changes (commits of 10k: one window per commit).
    let alone = tempfile::tempdir().expect("tempdir");
    let baseline = args(KEYS, Build::Random, false, Systems::Baseline, Some(5_000));
    let only = run(&baseline, alone.path());
    assert!(!only.contains("\"trie\""), "{only}");
    assert!(only.contains("\"windows\":2,"), "{only}");
    assert_eq!(root_of(temp.path()), root_of(sorted.path()));
    // The state the trie holds after the churn is the state the workload describes.
    let db = Db::open(temp.path().join("trie"), Config::default()).expect("open");
    let mut keyspace = Keyspace::new();
    keyspace.grow(KEYS);
    let mut done = 0;
    while done < KEYS {
        done += keyspace.churn(BATCH.min(KEYS - done).max(20)).len() as u64;
    }
    assert_eq!(db.key_count().expect("count"), keyspace.live());
    let sample = keyspace.existing();
    assert!(db.get(&key(sample)).expect("get").is_some());
    db.close().expect("close");
    println!("scale smoke test: {line}");
}
