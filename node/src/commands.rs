//! The local database commands: load, root, import, export.

use std::{
    io::{BufRead, BufWriter, Write},
    path::Path,
    time::Instant,
};

use anyhow::{Context, bail};
use arbor_merkledb::{Config, Db, test_utils::SeededRng};

use crate::hexline::{format_field, parse_line};

fn open(path: &Path) -> anyhow::Result<Db> {
    Db::open(path, Config::default())
        .with_context(|| format!("opening database {}", path.display()))
}

/// Reopens a closed database (dropping the old handle first: RocksDB allows one opener).
fn db_after_close(db: Db, path: &Path) -> anyhow::Result<Db> {
    drop(db);
    open(path)
}

fn print_root(db: &Db) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    // A reader that stops early (`arbor root | head -1`) is not an error.
    let (root, count) = (db.root()?, db.key_count()?);
    let written = writeln!(out, "{root}").and_then(|()| writeln!(out, "{count}"));
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The `i`-th key-value of the deterministic load stream.
pub(crate) fn load_stream(
    seed: u64,
    value_size: usize,
) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
    let mut rng = SeededRng::new(seed);
    std::iter::from_fn(move || Some((rng.bytes(32), rng.bytes(value_size))))
}

pub(crate) fn load(
    path: &Path,
    keys: u64,
    seed: u64,
    value_size: usize,
    batch: usize,
    memory_mb: Option<u64>,
) -> anyhow::Result<()> {
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let mut config = Config::default();
    if let Some(mb) = memory_mb {
        config = config.with_memory_budget(usize::try_from(mb)? << 20);
    }
    let db =
        Db::open(path, config).with_context(|| format!("opening database {}", path.display()))?;
    let started = Instant::now();
    let mut stream = load_stream(seed, value_size);
    let mut left = keys;
    let (mut propose_time, mut commit_time) =
        (std::time::Duration::ZERO, std::time::Duration::ZERO);
    while left > 0 {
        let n = left.min(batch as u64);
        let ops: Vec<_> = stream
            .by_ref()
            .take(n as usize)
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let t0 = Instant::now();
        let proposal = db.propose(ops)?;
        let t1 = Instant::now();
        proposal.commit()?;
        propose_time += t1 - t0;
        commit_time += t1.elapsed();
        left -= n;
    }
    let t_close = Instant::now();
    db.close()?;
    tracing::info!(?propose_time, ?commit_time, close_time = ?t_close.elapsed(), "load phases");
    let secs = started.elapsed().as_secs_f64();
    print_root(&db_after_close(db, path)?)?;
    eprintln!(
        "loaded {keys} keys in {secs:.2} s ({:.0} keys/s)",
        keys as f64 / secs.max(1e-9)
    );
    Ok(())
}

pub(crate) fn root(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    print_root(&open(path)?)
}

pub(crate) fn import(path: &Path, file: Option<&Path>) -> anyhow::Result<()> {
    let input: Box<dyn BufRead> = match file {
        Some(f) => Box::new(std::io::BufReader::new(
            std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    // Parse everything first: a malformed line aborts the import before anything is written.
    let mut ops = Vec::new();
    for (number, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", number + 1))?;
        match parse_line(&line) {
            Ok(Some(op)) => ops.push(op),
            Ok(None) => {}
            Err(e) => bail!("line {}: {e}; nothing was imported", number + 1),
        }
    }
    let db = open(path)?;
    db.propose(ops)?.commit()?;
    print_root(&db)
}

pub(crate) fn export(path: &Path, start: Option<&str>, end: Option<&str>) -> anyhow::Result<()> {
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    let parse = |s: &str| crate::hexline::parse_field(s).map_err(anyhow::Error::msg);
    let mut cursor = start.map(parse).transpose()?.unwrap_or_default();
    let end = end.map(parse).transpose()?;
    if end.as_ref().is_some_and(|e| *e < cursor) {
        bail!("--start is after --end (both bounds are inclusive)");
    }
    let db = open(path)?;
    let view = db.view()?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let written = (|| -> std::io::Result<()> {
        loop {
            let chunk = view
                .range(&cursor, end.as_deref(), 4096)
                .map_err(std::io::Error::other)?;
            for (k, v) in &chunk {
                writeln!(out, "{} {}", format_field(k), format_field(v))?;
            }
            match chunk.last() {
                Some((k, _)) if chunk.len() == 4096 => {
                    cursor = k.clone();
                    cursor.push(0);
                }
                _ => break,
            }
        }
        out.flush()
    })();
    match written {
        // A reader that stops early (`arbor export | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
