//! Test and benchmark helpers: seeded randomness and an independent reference trie hasher.
//!
//! [`SeededRng`] reads its seed from `ARBOR_TEST_SEED` when set, and [`SeedReporter`] prints the
//! seed if the test panics, so every random failure can be replayed.

use std::collections::BTreeMap;

use crate::{
    hash::{Hash, ValueDigest, hash_node},
    key::{BranchFactor, Key},
};

/// A small, fast, deterministic generator (`fastrand`'s wyrand) whose seed can come from the
/// environment. Not for cryptography.
#[derive(Clone, Debug)]
pub struct SeededRng {
    rng: fastrand::Rng,
}

impl SeededRng {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The seed from `ARBOR_TEST_SEED`, or `default` (tests pass a fixed or time-based one).
    pub fn seed_from_env(default: u64) -> u64 {
        std::env::var("ARBOR_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.u64(..)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.rng.u64(..n)
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        self.rng.fill(out);
    }

    /// Random bytes of a random length in `min..max` (`max > min`).
    pub fn bytes_between(&mut self, min: usize, max: usize) -> Vec<u8> {
        let len = min + self.below((max - min) as u64) as usize;
        self.bytes(len)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.fill(&mut out);
        out
    }
}

/// `n` random `(key, value)` pairs of 32 bytes each, from `seed`: the benchmarks' workload.
pub fn random_kvs(seed: u64, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = SeededRng::new(seed);
    (0..n).map(|_| (rng.bytes(32), rng.bytes(32))).collect()
}

/// `kvs` as owned batches of `size` puts, ready for [`Db::propose`](crate::Db::propose).
/// Benchmarks build them before their clock starts: the database takes ownership of what it is
/// given, so copying the input is the harness's cost, not the commit's.
pub fn put_batches(kvs: &[(Vec<u8>, Vec<u8>)], size: usize) -> Vec<Vec<crate::BatchOp>> {
    kvs.chunks(size)
        .map(|chunk| {
            chunk
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect()
        })
        .collect()
}

/// Prints the seed when dropped during a panic (a failing test).
pub struct SeedReporter {
    /// The seed to report.
    pub seed: u64,
}

impl Drop for SeedReporter {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test failed with seed {0}; replay with ARBOR_TEST_SEED={0}",
                self.seed
            );
        }
    }
}

/// Copies the files of the directory `from` (a database's, not its subdirectories) into `to`,
/// creating it. Of an open database this is what a process killed at this moment leaves: a kill
/// loses memory only, and the copy reads unsynced writes from the page cache.
///
/// # Panics
/// On any I/O error: a test helper.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// The root of the trie holding exactly `model`, computed from scratch by a deliberately naive
/// recursive construction that shares no code with the database's batch algorithm.
pub fn reference_root(model: &BTreeMap<Vec<u8>, Vec<u8>>, bf: BranchFactor) -> Hash {
    let entries: Vec<(Key, &[u8])> = model
        .iter()
        .map(|(k, v)| (Key::from_bytes(k), v.as_slice()))
        .collect();
    match subtrie(&entries, bf.token_bits()) {
        Some((_, id)) => id,
        None => Hash::EMPTY_ROOT,
    }
}

/// Returns the key and ID of the node rooting the (sorted, non-empty) `entries`.
fn subtrie(entries: &[(Key, &[u8])], tb: usize) -> Option<(Key, Hash)> {
    let (first, last) = (entries.first()?, entries.last()?);
    if entries.len() == 1 {
        let digest = ValueDigest::of(first.1);
        let id = hash_node(&first.0, Some(&digest), std::iter::empty());
        return Some((first.0.clone(), id));
    }
    let lcp = first.0.common_prefix_bits(&last.0) / tb * tb;
    let key = first.0.take(lcp);
    let mut rest = entries;
    let mut value = None;
    if first.0 == key {
        value = Some(ValueDigest::of(first.1));
        rest = &entries[1..];
    }
    let mut children: Vec<(u8, Hash)> = Vec::new();
    let mut start = 0;
    while start < rest.len() {
        let token = rest[start].0.token(lcp, tb);
        let mut end = start;
        while end < rest.len() && rest[end].0.token(lcp, tb) == token {
            end += 1;
        }
        let (_, id) = subtrie(&rest[start..end], tb)?;
        children.push((token, id));
        start = end;
    }
    if value.is_none() && children.len() == 1 {
        // Cannot happen: `lcp` is the longest common prefix of at least two keys.
        return None;
    }
    let id = hash_node(&key, value.as_ref(), children.iter().map(|(t, h)| (*t, h)));
    Some((key, id))
}
