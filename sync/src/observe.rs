//! The observer seam: what a server and a sync report as they work, for an application to export
//! (the `arbor` binary binds both to Prometheus). Every method has an empty default, so an
//! observer implements only what it records. Calls happen on the hot path: keep them cheap
//! (counters, not I/O).

use std::{fmt::Debug, time::Duration};

/// Told about every request a [`StateSyncService`](crate::StateSyncService) answers.
#[cfg(feature = "grpc")]
pub trait ServeObserver: Debug + Send + Sync {
    /// `rpc` (e.g. `GetRangeProof`) ended with `status`, sending `bytes` bytes of answer (0 for
    /// an error).
    fn request(&self, rpc: &'static str, status: tonic::Code, bytes: usize) {
        let _ = (rpc, status, bytes);
    }
}

/// Told about the events of a sync ([`SyncConfig::observer`](crate::SyncConfig::observer)). A
/// follow-mode sync runs several managers in turn with the same observer, so counts add up across
/// them. Gauges (fraction done, per-peer figures) come from
/// [`Progress`](crate::Progress) instead.
pub trait SyncObserver: Debug + Send + Sync {
    /// An answer of `bytes` bytes arrived (before verification).
    fn answer(&self, bytes: usize) {
        let _ = bytes;
    }

    /// An answer was rejected: undecodable or failing verification.
    fn rejected(&self) {}

    /// One commit of `answers` verified answers, writing `keys` keys, took `took`.
    fn committed(&self, took: Duration, answers: u64, keys: u64) {
        let _ = (took, answers, keys);
    }
}
