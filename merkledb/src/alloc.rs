//! Allocator tuning for processes that run a database: call the functions here once at startup.
//!
//! * [`tune_system_malloc`]: RocksDB's C++ code allocates through the C library's `malloc`,
//!   whatever Rust's global allocator is. Its memtables are built from blocks of an eighth of
//!   the write buffer, freed whole when a memtable is flushed. glibc's defaults hand such
//!   blocks back to the OS (`mmap` above its threshold, heap trimming above another), so every
//!   new memtable was faulted in again and zeroed by the kernel, on the commit's critical path.
//!   With 32 MiB memtables (4 MiB blocks): 56k page faults per million committed keys
//!   (`perf record -e page-faults`: 80% of them in `MemTable::Add`); tuned, 13k remained, and
//!   alternating runs of `examples/commit_profile.rs` ran 3% faster (2.070 → 2.005 s median,
//!   CPU −3.4%). With the default since, 8 MiB memtables (1 MiB blocks): 193k → 97k page
//!   faults over three rounds of 1M keys, 1.755 → 1.720 s median (CPU −2.3%). It pays in
//!   processes whose hot path is a loop of commits (the benchmarks; an application committing
//!   blocks). The `arbor` binary does not call it: with 32 MiB memtables its sync ran at the
//!   same speed with it and peaked higher (10M keys: 26.4–26.7 s and 377 MiB against 26.0–27.1 s
//!   and 298–351 MiB, alternating runs), and `arbor load` did not change (3.04–3.09 s against
//!   3.00–3.07 s for 1M keys).
//! * `tune_mimalloc` (feature `mimalloc`): for processes whose global allocator is mimalloc
//!   and that free a large trie and build another within seconds.
//!
//! mimalloc returns freed pages to the OS after its purge delay (1 s by default in its v3). When
//! a process drops a 1M-key trie (~180 MB of nodes) and builds the next one, the first commits
//! of the new trie run while those pages are being purged and fault them in again, each one
//! zeroed by the kernel: such rounds took 2.3 s instead of the 2.0–2.1 s of the first database
//! of a fresh process (`examples/commit_profile.rs`; 34k more page faults per two rounds). A
//! 10-second delay, jemalloc's default decay time, removes that penalty: later rounds run as
//! fast as a fresh process's first (CPU −11%).
//!
//! `tune_mimalloc` does not speed up a process that builds one database (its first round is
//! unchanged) and it keeps freed memory resident for up to 10 s: 1M-key `arbor sync` runs peaked
//! at 287–341 MiB with it against 260–310 MiB without (alternating runs), at the same speed. So
//! the `arbor` binary does not call it; the benchmarks do.

/// Allocations from this size up are `mmap`ed by glibc, and unmapped when freed
/// ([`tune_system_malloc`]): 32 MiB, the most glibc's own adaptive threshold reaches. A memtable
/// block (an eighth of its write buffer) stays below it for write buffers up to 256 MiB.
pub const SYSTEM_MMAP_THRESHOLD: usize = 32 << 20;

/// Free memory at the top of a glibc heap beyond this is given back to the OS
/// ([`tune_system_malloc`]): room for a few memtables of every column family to be freed and
/// rebuilt in place.
pub const SYSTEM_TRIM_THRESHOLD: usize = 256 << 20;

/// Makes glibc's `malloc` keep the memory RocksDB frees for reuse: allocations below
/// [`SYSTEM_MMAP_THRESHOLD`] come from its heaps, which are trimmed only beyond
/// [`SYSTEM_TRIM_THRESHOLD`] of free space. A freed memtable's memory then serves the next one
/// instead of being unmapped and faulted in again (see the module docs for the figures).
///
/// The cost: up to [`SYSTEM_TRIM_THRESHOLD`] of freed memory per heap may stay resident.
/// Returns whether the settings were applied: not when `GLIBC_TUNABLES` sets any `glibc.malloc`
/// tunable (the operator's choice wins), nor on a C library other than glibc.
pub fn tune_system_malloc() -> bool {
    !environment_tunes_malloc() && set_glibc_thresholds()
}

/// True when `GLIBC_TUNABLES` sets a `glibc.malloc` tunable.
fn environment_tunes_malloc() -> bool {
    std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_glibc_thresholds() -> bool {
    let as_int = |bytes: usize| libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only stores a parameter in glibc's malloc state, under its own lock; any
    // value is accepted or refused (returning 0), and no memory is touched.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, as_int(SYSTEM_MMAP_THRESHOLD)) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, as_int(SYSTEM_TRIM_THRESHOLD)) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_glibc_thresholds() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mallopt` reports success on glibc (it returns 0 for a parameter it rejects), and the
    /// environment's choice is respected. (Whether blocks then come from the heap is not
    /// observable without racing the other tests' allocations; the page-fault counts in the
    /// module docs are the evidence.)
    #[test]
    fn system_malloc_tuning_applies_on_glibc_unless_the_environment_chose() {
        let glibc = cfg!(all(target_os = "linux", target_env = "gnu"));
        assert_eq!(tune_system_malloc(), glibc && !environment_tunes_malloc());
    }
}

#[cfg(feature = "mimalloc")]
pub use self::mi::{PURGE_DELAY_MS, tune_mimalloc};

#[cfg(feature = "mimalloc")]
mod mi {
    use libmimalloc_sys::{mi_option_set_default, mi_option_t};

    /// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers; the Rust
    /// bindings do not name it). The test below fails if a new mimalloc moves it.
    const PURGE_DELAY: mi_option_t = 15;

    /// The purge delay [`tune_mimalloc`] sets, in milliseconds.
    pub const PURGE_DELAY_MS: i64 = 10_000;

    /// Sets mimalloc's purge delay to [`PURGE_DELAY_MS`] unless the environment chose one
    /// (`MIMALLOC_PURGE_DELAY`). Call it once at startup; it is harmless when mimalloc is linked
    /// but not the global allocator.
    pub fn tune_mimalloc() {
        #[allow(unsafe_code)]
        // SAFETY: the call only stores one integer in mimalloc's static option table, at an index
        // inside it; it allocates nothing and has no other precondition.
        unsafe {
            mi_option_set_default(PURGE_DELAY, PURGE_DELAY_MS as _);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// mimalloc's current purge delay in milliseconds.
        fn purge_delay_ms() -> i64 {
            #[allow(unsafe_code)]
            // SAFETY: the call only reads one integer of mimalloc's static option table, at an
            // index inside it.
            let value = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
            value as i64
        }

        #[test]
        fn the_purge_delay_is_the_option_tuned() {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
                eprintln!("MIMALLOC_PURGE_DELAY is set: the environment's value wins; skipped");
                return;
            }
            // mimalloc v3's default purge delay: if another option sat at this index, its default
            // would not be 1000.
            assert_eq!(
                purge_delay_ms(),
                1000,
                "mimalloc moved or changed its purge delay"
            );
            tune_mimalloc();
            assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
        }
    }
}
