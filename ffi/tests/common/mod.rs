//! Helpers shared by the ABI tests: lending slices, taking buffers back, checking statuses.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different part"
)]
#![allow(
    clippy::undocumented_unsafe_blocks,
    reason = "every call passes pointers to live locals"
)]

use std::ptr;

use arbor_ffi::{
    abi::{ArborBytes, ArborHash, ArborMaybeSlice, ArborSlice, ArborStatus, arbor_bytes_free},
    db::*,
};

pub const NONE: ArborMaybeSlice = ArborMaybeSlice {
    ptr: ptr::null(),
    len: 0,
    present: false,
};

pub fn lend(bytes: &[u8]) -> ArborSlice {
    ArborSlice {
        ptr: bytes.as_ptr(),
        len: bytes.len(),
    }
}

/// Copies a buffer out and frees it.
pub fn take(bytes: ArborBytes) -> Vec<u8> {
    let out = if bytes.ptr.is_null() {
        Vec::new()
    } else {
        // SAFETY: the library wrote `bytes`: `len` bytes at `ptr`, not freed yet.
        unsafe { std::slice::from_raw_parts(bytes.ptr, bytes.len) }.to_vec()
    };
    // SAFETY: freed once, here.
    unsafe { arbor_bytes_free(bytes) };
    out
}

pub fn check(status: ArborStatus, err: ArborBytes) {
    assert_eq!(
        status,
        ArborStatus::Ok,
        "{}",
        String::from_utf8_lossy(&take(err))
    );
}

pub fn open_memory() -> u64 {
    let (mut handle, mut err) = (
        0,
        ArborBytes {
            ptr: ptr::null_mut(),
            len: 0,
            cap: 0,
        },
    );
    // SAFETY: valid out-parameters; an empty path.
    let status = unsafe { arbor_db_open(lend(b""), 16, 10, &raw mut handle, &raw mut err) };
    check(status, err);
    handle
}

pub fn put(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut op = vec![0];
    op.extend_from_slice(&(key.len() as u32).to_le_bytes());
    op.extend_from_slice(key);
    op.extend_from_slice(&(value.len() as u32).to_le_bytes());
    op.extend_from_slice(value);
    op
}

pub fn commit(db: u64, batch: &[u8]) -> ArborHash {
    let mut root = ArborHash { bytes: [0; 32] };
    let mut err = ArborBytes {
        ptr: ptr::null_mut(),
        len: 0,
        cap: 0,
    };
    // SAFETY: valid arguments.
    check(
        unsafe { arbor_db_commit(db, lend(batch), &raw mut root, &raw mut err) },
        err,
    );
    root
}

pub const EMPTY: ArborBytes = ArborBytes {
    ptr: ptr::null_mut(),
    len: 0,
    cap: 0,
};
