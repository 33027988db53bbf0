//! Handles: the caller holds a number, never a pointer, so a handle used after close, or by two
//! threads at once, is an error the library detects rather than undefined behaviour.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, TryLockError,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::abi::{ArborStatus, FfiError};

/// Open objects by handle. Each entry has its own lock, taken without waiting for the length of
/// one call: a second call on the same handle meanwhile gets `ARBOR_STATUS_BUSY`.
///
/// Invariants: handles start at 1 (0 is never valid) and are never reused; an entry whose value
/// is `None` has been closed (a call that looked it up just before the close sees that).
pub(crate) struct Registry<T> {
    kind: &'static str,
    entries: Mutex<HashMap<u64, Arc<Mutex<Option<T>>>>>,
    next: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a call is caught at the boundary; the data it guarded is still consistent
    // (every call leaves its entry in a valid state before anything can panic), so go on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Registry<T> {
    pub(crate) fn new(kind: &'static str) -> Self {
        Self {
            kind,
            entries: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    /// Registers `value`; returns its handle.
    pub(crate) fn insert(&self, value: T) -> u64 {
        let handle = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.entries).insert(handle, Arc::new(Mutex::new(Some(value))));
        handle
    }

    fn entry(&self, handle: u64) -> Result<Arc<Mutex<Option<T>>>, FfiError> {
        lock(&self.entries)
            .get(&handle)
            .cloned()
            .ok_or_else(|| self.closed(handle))
    }

    fn closed(&self, handle: u64) -> FfiError {
        FfiError::new(
            ArborStatus::InvalidHandle,
            format!("{} handle {handle} is not open", self.kind),
        )
    }

    fn try_lock<'a>(
        &self,
        handle: u64,
        entry: &'a Mutex<Option<T>>,
    ) -> Result<MutexGuard<'a, Option<T>>, FfiError> {
        match entry.try_lock() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::Poisoned(poisoned)) => Ok(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => Err(FfiError::new(
                ArborStatus::Busy,
                format!("{} handle {handle} is in use by another call", self.kind),
            )),
        }
    }

    /// Runs `call` on the object behind `handle`, holding it for the call.
    pub(crate) fn with<R>(
        &self,
        handle: u64,
        call: impl FnOnce(&mut T) -> Result<R, FfiError>,
    ) -> Result<R, FfiError> {
        let entry = self.entry(handle)?;
        let mut guard = self.try_lock(handle, &entry)?;
        let value = guard.as_mut().ok_or_else(|| self.closed(handle))?;
        call(value)
    }

    /// Removes the object behind `handle` and returns it; later calls with the handle fail.
    pub(crate) fn remove(&self, handle: u64) -> Result<T, FfiError> {
        let entry = self.entry(handle)?;
        let value = self
            .try_lock(handle, &entry)?
            .take()
            .ok_or_else(|| self.closed(handle))?;
        lock(&self.entries).remove(&handle);
        Ok(value)
    }
}
