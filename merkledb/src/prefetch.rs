//! Cache prefetch hints: ask the CPU to start loading memory that is about to be read, so that
//! several cache misses overlap instead of being paid one after the other.
//!
//! A commit into a large trie spends much of its time waiting for nodes of the dirty set, which
//! are scattered over the heap; the walk knows which children it will load next (the tokens of
//! the batch's keys), so it can ask for all of them before it loads the first.

/// Asks the CPU to start loading the `bytes` bytes from `start` into its caches.
///
/// Only a hint: it has no effect on what a program computes, whatever `start` points to (even
/// memory that is not mapped), and it costs a few instructions per 64-byte line. A no-op on
/// targets without a prefetch instruction in `core::arch`.
#[inline]
pub(crate) fn prefetch_bytes<T>(start: *const T, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = start.cast::<i8>();
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: `prefetch` neither faults nor reads memory observably, for any address
            // (Intel SDM, PREFETCHh: "does not affect program behavior"); SSE, which provides it,
            // is part of the x86_64 baseline. `wrapping_add` forms the address without the
            // in-bounds requirement of `add`.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset));
            }
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, bytes);
}
