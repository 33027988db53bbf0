//! Allocator tuning for processes whose global allocator is mimalloc and that free a large trie
//! and build another within seconds (the benchmarks, which open a fresh database per sample; an
//! application that closes and reopens or rebuilds its database).
//!
//! mimalloc returns freed pages to the OS after its purge delay (1 s by default in its v3). When
//! a process drops a 1M-key trie (~180 MB of nodes) and builds the next one, the first commits
//! of the new trie run while those pages are being purged and fault them in again, each one
//! zeroed by the kernel: such rounds took 2.3 s instead of the 2.0–2.1 s of the first database
//! of a fresh process (`examples/commit_profile.rs`; 34k more page faults per two rounds). A
//! 10-second delay, jemalloc's default decay time, removes that penalty: later rounds run as
//! fast as a fresh process's first (CPU −11%).
//!
//! It does not speed up a process that builds one database (its first round is unchanged) and it
//! keeps freed memory resident for up to 10 s: 1M-key `arbor sync` runs peaked at 287–341 MiB
//! with it against 260–310 MiB without (alternating runs), at the same speed. So the `arbor`
//! binary does not call it; the benchmarks do.

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
        // SAFETY: the call only reads one integer of mimalloc's static option table, at an index
        // inside it.
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
