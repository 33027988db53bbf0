//! The boundary's types and the only `unsafe` code of the crate: reading the caller's buffers,
//! writing its out-parameters, and handing buffers across and back.
//!
//! Rules every function of the ABI keeps (the header repeats them):
//! * It returns an [`ArborStatus`]; on anything but `ARBOR_STATUS_OK` it writes a UTF-8 message
//!   to `err` (when `err` is not NULL), which the caller frees with [`arbor_bytes_free`].
//! * Input buffers ([`ArborSlice`], [`ArborMaybeSlice`]) are borrowed for the call only.
//! * Every [`ArborBytes`] the library writes is owned by the caller, who frees it once with
//!   [`arbor_bytes_free`]; [`arbor_live_buffers`] counts those not yet freed (for tests).
//! * A panic never crosses the boundary: it becomes `ARBOR_STATUS_PANIC` with its message.

use std::{
    mem::ManuallyDrop,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::atomic::{AtomicI64, Ordering},
};

/// The outcome of a call.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArborStatus {
    /// Success.
    Ok = 0,
    /// A failure not covered below (storage, I/O); see the message.
    Error = 1,
    /// The handle is not open: never opened, or already closed.
    InvalidHandle = 2,
    /// The handle is in use by another call right now (handles are not for concurrent use).
    Busy = 3,
    /// An argument is malformed: a NULL pointer with a length, a bad branch factor, a malformed
    /// batch or request.
    InvalidArgument = 4,
    /// A proof failed verification, or an answer could not be decoded.
    InvalidProof = 5,
    /// The server side refused a request; the refusal code is in the call's `refusal` output.
    Refused = 6,
    /// The library panicked (a bug); the message says where.
    Panic = 7,
}

/// A buffer the library allocated and the caller owns: free it with [`arbor_bytes_free`].
/// A zeroed value (NULL `ptr`) is an empty buffer and needs no freeing.
#[repr(C)]
#[derive(Debug)]
pub struct ArborBytes {
    /// The bytes (NULL when empty).
    pub ptr: *mut u8,
    /// Their number.
    pub len: usize,
    /// The allocation's capacity (the library needs it back to free the buffer).
    pub cap: usize,
}

/// Bytes the caller lends for one call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ArborSlice {
    /// The bytes (may be NULL when `len` is 0).
    pub ptr: *const u8,
    /// Their number.
    pub len: usize,
}

/// An optional byte string the caller lends for one call (a range bound: absent = unbounded).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ArborMaybeSlice {
    /// The bytes (may be NULL when `len` is 0).
    pub ptr: *const u8,
    /// Their number.
    pub len: usize,
    /// Whether there is a value at all (`false`: absent, whatever `ptr` and `len` say).
    pub present: bool,
}

/// A root hash (32 bytes), by value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArborHash {
    /// The hash's bytes.
    pub bytes: [u8; 32],
}

/// Buffers handed out and not yet freed.
static LIVE_BUFFERS: AtomicI64 = AtomicI64::new(0);

/// How many [`ArborBytes`] the library has handed out that have not been freed yet.
#[unsafe(no_mangle)]
pub extern "C" fn arbor_live_buffers() -> i64 {
    LIVE_BUFFERS.load(Ordering::Relaxed)
}

/// Frees a buffer the library returned. Each buffer is freed exactly once; a zeroed one (NULL
/// `ptr`) is ignored.
///
/// # Safety
/// `bytes` must be a value the library wrote, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_bytes_free(bytes: ArborBytes) {
    if bytes.ptr.is_null() {
        return;
    }
    LIVE_BUFFERS.fetch_sub(1, Ordering::Relaxed);
    // SAFETY: a non-NULL `ArborBytes` comes from `ArborBytes::from_vec`, which leaked a `Vec<u8>`
    // with exactly this pointer, length and capacity; the caller's contract is to free it once.
    drop(unsafe { Vec::from_raw_parts(bytes.ptr, bytes.len, bytes.cap) });
}

impl ArborBytes {
    /// A zeroed buffer.
    pub(crate) const EMPTY: Self = Self {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };

    /// Hands `bytes` to the caller (to be freed with [`arbor_bytes_free`]).
    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        if bytes.capacity() == 0 {
            return Self::EMPTY;
        }
        LIVE_BUFFERS.fetch_add(1, Ordering::Relaxed);
        let mut bytes = ManuallyDrop::new(bytes);
        Self {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }
}

/// Why a call failed: the status to return and the message for `err`.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) status: ArborStatus,
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(status: ArborStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ArborStatus::InvalidArgument, message)
    }
}

impl From<arbor_merkledb::Error> for FfiError {
    fn from(error: arbor_merkledb::Error) -> Self {
        let status = match error {
            arbor_merkledb::Error::Proof(_) => ArborStatus::InvalidProof,
            _ => ArborStatus::Error,
        };
        Self::new(status, error.to_string())
    }
}

/// Runs one call: catches panics, turns errors into a status and writes their message to `err`.
///
/// # Safety
/// `err` is NULL or valid for writing an [`ArborBytes`].
pub(crate) unsafe fn guard(
    err: *mut ArborBytes,
    call: impl FnOnce() -> Result<(), FfiError>,
) -> ArborStatus {
    let error = match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(())) => return ArborStatus::Ok,
        Ok(Err(error)) => error,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            FfiError::new(ArborStatus::Panic, format!("panic in arbor: {message}"))
        }
    };
    if !err.is_null() {
        // SAFETY: this function's contract, and `err` is not NULL.
        let _ = unsafe { write(err, ArborBytes::from_vec(error.message.into_bytes())) };
    }
    error.status
}

/// Borrows the caller's bytes.
///
/// # Safety
/// `bytes` follows the ABI's contract for an [`ArborSlice`]: `len` readable bytes at `ptr`,
/// unchanged while the returned slice is used (within the call).
pub(crate) unsafe fn slice<'a>(bytes: ArborSlice) -> Result<&'a [u8], FfiError> {
    if bytes.len == 0 {
        return Ok(&[]);
    }
    if bytes.ptr.is_null() {
        return Err(FfiError::invalid("NULL pointer with a non-zero length"));
    }
    // SAFETY: this function's contract; no caller keeps the slice beyond its call (every one
    // copies what it keeps).
    Ok(unsafe { std::slice::from_raw_parts(bytes.ptr, bytes.len) })
}

/// Borrows the caller's optional bytes.
///
/// # Safety
/// As for [`slice`], when `bytes.present`.
pub(crate) unsafe fn maybe_slice<'a>(bytes: ArborMaybeSlice) -> Result<Option<&'a [u8]>, FfiError> {
    if !bytes.present {
        return Ok(None);
    }
    let bytes = ArborSlice {
        ptr: bytes.ptr,
        len: bytes.len,
    };
    // SAFETY: this function's contract.
    unsafe { slice(bytes) }.map(Some)
}

/// Writes an out-parameter; NULL is an error (the value is dropped).
///
/// # Safety
/// `out` is NULL or valid and aligned for writing a `T` (the ABI's contract for
/// out-parameters). The old contents are neither read nor dropped, so they may be
/// uninitialised.
pub(crate) unsafe fn write<T>(out: *mut T, value: T) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::invalid("NULL out-parameter"));
    }
    // SAFETY: this function's contract, and `out` is not NULL.
    unsafe { out.write(value) };
    Ok(())
}

/// Hands `bytes` to the caller through an out-parameter; NULL is an error (nothing is handed out).
///
/// # Safety
/// As for [`write`].
pub(crate) unsafe fn write_bytes(out: *mut ArborBytes, bytes: Vec<u8>) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::invalid("NULL out-parameter"));
    }
    // SAFETY: this function's contract.
    unsafe { write(out, ArborBytes::from_vec(bytes)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: ArborBytes) -> String {
        // SAFETY: `bytes` was written by `guard` and is freed once, here, after copying.
        unsafe {
            let text = String::from_utf8_lossy(
                slice(ArborSlice {
                    ptr: bytes.ptr,
                    len: bytes.len,
                })
                .expect("slice"),
            )
            .into_owned();
            arbor_bytes_free(bytes);
            text
        }
    }

    #[test]
    fn a_panic_becomes_a_status_with_its_message() {
        let mut err = ArborBytes::EMPTY;
        // SAFETY: `err` is a valid out-parameter.
        let status = unsafe { guard(&raw mut err, || panic!("the bug")) };
        assert_eq!(status, ArborStatus::Panic);
        assert_eq!(message(err), "panic in arbor: the bug");
    }

    #[test]
    fn errors_carry_a_message_and_null_out_parameters_are_refused() {
        let mut err = ArborBytes::EMPTY;
        // SAFETY: `err` is a valid out-parameter; the NULL one is what is being tested.
        let status = unsafe { guard(&raw mut err, || write_bytes(std::ptr::null_mut(), vec![1])) };
        assert_eq!(status, ArborStatus::InvalidArgument);
        assert_eq!(message(err), "NULL out-parameter");
        // SAFETY: a NULL `err` is allowed.
        let status = unsafe { guard(std::ptr::null_mut(), || Err(FfiError::invalid("x"))) };
        assert_eq!(status, ArborStatus::InvalidArgument);
    }
}
