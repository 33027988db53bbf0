//! Bootstrap: fetch a snapshot's parts in parallel, check each against the trusted root, and
//! write it with the sync's coverage map, so that a sync started afterwards (or a rerun after a
//! kill) fetches only what no good part covered.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use arbor_merkledb::{BranchFactor, Db, Hash, RangeProof, verify_range_proof};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use prost::Message;
use tokio::sync::Semaphore;

use super::{Manifest, Part};
use crate::{
    manager::{
        apply::{Answer, Job, Outcome, apply, save_progress, starting_coverage},
        coverage::{ClaimRefused, Coverage, Work},
    },
    pb,
};

/// Where parts come from: an object store, a web server, a directory. Its answers are not
/// trusted: they are checked against the manifest's size and hash and then proven.
pub trait PartSource: Send + Sync + 'static {
    /// Fetches the object `name` (relative to the snapshot location). An object longer than
    /// `max_bytes` must not be read whole: return its first `max_bytes` bytes or an error.
    fn fetch(&self, name: &str, max_bytes: u64) -> BoxFuture<'static, Result<Vec<u8>, String>>;
}

/// Told of each part's outcome.
pub type PartObserver = Arc<dyn Fn(&PartEvent) + Send + Sync>;

/// Settings of a bootstrap.
#[derive(Clone)]
pub struct BootstrapConfig {
    /// Bound on the bytes of parts being fetched or waiting to be written.
    pub inflight_bytes: usize,
    /// Most parts fetched at once.
    pub max_parallel: usize,
    /// An attempt to fetch a part that has not finished in this long is abandoned.
    pub part_timeout: Duration,
    /// Attempts per part when fetching fails (contents that fail their checks are not retried).
    pub attempts: u32,
    /// Pause after a failed attempt; doubles per attempt.
    pub retry_backoff: Duration,
    /// Told of each part's outcome as it happens.
    pub observer: Option<PartObserver>,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            inflight_bytes: 64 << 20,
            max_parallel: 16,
            part_timeout: Duration::from_secs(60),
            attempts: 3,
            retry_backoff: Duration::from_millis(200),
            observer: None,
        }
    }
}

impl std::fmt::Debug for BootstrapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapConfig")
            .field("inflight_bytes", &self.inflight_bytes)
            .field("max_parallel", &self.max_parallel)
            .field("part_timeout", &self.part_timeout)
            .field("attempts", &self.attempts)
            .field("retry_backoff", &self.retry_backoff)
            .finish_non_exhaustive()
    }
}

/// What became of one part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartStatus {
    /// Checked and written.
    Applied {
        /// Key-values written or deleted locally.
        keys: u64,
    },
    /// The database already held its range at the snapshot's root (an earlier run wrote it).
    Held,
    /// The database holds its range at another known root (a replica behind, or a sync that
    /// already moved it on): peers bring it to the target with change proofs instead.
    NotNeeded,
    /// Not used; its range is left for live peers.
    Failed {
        /// Why, for the operator.
        reason: String,
    },
}

/// A part's outcome, as reported to [`BootstrapConfig::observer`].
#[derive(Clone, Debug)]
pub struct PartEvent {
    /// Its position in the manifest.
    pub index: usize,
    /// Its object name.
    pub name: String,
    /// Bytes received for it (0 if none were used).
    pub bytes: u64,
    /// Share of the keyspace holding the snapshot's root once this part is settled, in
    /// `[0, 1]`: the bootstrap's progress.
    pub fraction: f64,
    /// What became of it.
    pub status: PartStatus,
}

/// What a bootstrap did.
#[derive(Clone, Debug, Default)]
pub struct BootstrapReport {
    /// Parts in the manifest.
    pub parts: usize,
    /// Parts checked and written by this run.
    pub applied: usize,
    /// Parts whose range the database already held.
    pub held: usize,
    /// Parts whose range the database holds at another root.
    pub not_needed: usize,
    /// Parts not used, with why.
    pub failed: Vec<PartEvent>,
    /// How the manifest fails to tile the keyspace (see [`Manifest::defects`]).
    pub defects: Vec<String>,
    /// Key-values written or deleted.
    pub keys: u64,
    /// Bytes of the parts written.
    pub bytes: u64,
    /// Share of the keyspace holding the snapshot's root afterwards, in `[0, 1]`.
    pub fraction: f64,
    /// Time taken.
    pub elapsed: Duration,
}

/// Why a bootstrap could not start or go on (a bad part is not one: it is reported and left).
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The manifest is for a root the caller does not trust.
    #[error("the snapshot is of root {manifest}, which is not the trusted root {trusted}")]
    UntrustedRoot {
        /// The manifest's root.
        manifest: Hash,
        /// The root the caller trusts.
        trusted: Hash,
    },
    /// The snapshot's trie has another shape than the database's.
    #[error("the snapshot's branch factor is {snapshot}, the database's is {local}")]
    BranchFactor {
        /// The manifest's.
        snapshot: u32,
        /// The database's.
        local: u32,
    },
    /// The local database failed.
    #[error("local database: {0}")]
    Db(#[from] arbor_merkledb::Error),
    /// A worker task failed.
    #[error("bootstrap task failed: {0}")]
    Task(String),
}

/// Writes into `db` every part of `manifest` that checks out against `trusted` (which the
/// manifest's root must equal), with the sync's persisted coverage map, so that a
/// [`SyncManager`](crate::SyncManager) started afterwards fetches only the ranges no good part
/// covered (and brings the written ones from `trusted` to its target with change proofs).
///
/// Every part is fetched at most `part.bytes + 1` bytes deep, compared with its declared size and
/// SHA-256, decoded and verified as a range proof over its bounds against `trusted` before
/// anything is written. Parts whose range the database already holds at `trusted` (an
/// interrupted run wrote them) are not fetched again.
pub async fn bootstrap(
    db: Db,
    source: Arc<dyn PartSource>,
    manifest: &Manifest,
    trusted: Hash,
    config: BootstrapConfig,
) -> Result<BootstrapReport, BootstrapError> {
    let started = Instant::now();
    if manifest.root != trusted {
        return Err(BootstrapError::UntrustedRoot {
            manifest: manifest.root,
            trusted,
        });
    }
    let bf = db.branch_factor();
    if manifest.branch_factor != bf {
        return Err(BootstrapError::BranchFactor {
            snapshot: manifest.branch_factor.children(),
            local: bf.children(),
        });
    }
    let mut coverage = starting_coverage(&db)?;
    let mut report = BootstrapReport {
        parts: manifest.parts.len(),
        defects: manifest.defects(),
        ..BootstrapReport::default()
    };
    let tell = |event: &PartEvent| {
        if let Some(observer) = &config.observer {
            observer(event);
        }
    };
    let budget_kib = (config.inflight_bytes >> 10).clamp(1, u32::MAX as usize);
    let budget = Arc::new(Semaphore::new(budget_kib));
    let mut fetching = FuturesUnordered::new();
    let mut next = 0;
    loop {
        // Hand out parts while the byte budget and the parallelism allow.
        while next < manifest.parts.len() && fetching.len() < config.max_parallel.max(1) {
            let part = &manifest.parts[next];
            let kib = usize::try_from(part.bytes.div_ceil(1024))
                .unwrap_or(usize::MAX)
                .clamp(1, budget_kib);
            let kib = u32::try_from(kib).unwrap_or(u32::MAX);
            let Ok(permit) = budget.clone().try_acquire_many_owned(kib) else {
                break;
            };
            let start = part.start.clone().unwrap_or_default();
            let fraction = coverage.fraction_at(trusted);
            let event = |status| PartEvent {
                index: next,
                name: part.name.clone(),
                bytes: 0,
                fraction,
                status,
            };
            match coverage.claim(&start, part.region_end().as_deref(), trusted) {
                Ok(work) => {
                    let fetch = fetch_checked(source.clone(), part.clone(), trusted, bf, &config);
                    let index = next;
                    fetching.push(async move {
                        let result = fetch.await;
                        (index, work, result, permit)
                    });
                }
                Err(ClaimRefused::Held) => {
                    report.held += 1;
                    tell(&event(PartStatus::Held));
                }
                Err(ClaimRefused::Known) => {
                    report.not_needed += 1;
                    tell(&event(PartStatus::NotNeeded));
                }
                Err(ClaimRefused::Overlaps) => {
                    let event = event(PartStatus::Failed {
                        reason: "its range overlaps another part's, or was partly synced before"
                            .to_owned(),
                    });
                    tell(&event);
                    report.failed.push(event);
                }
            }
            next += 1;
        }
        let Some((index, work, result, permit)) = fetching.next().await else {
            break;
        };
        let part = &manifest.parts[index];
        let status = match result {
            Ok(proof) => match write_part(&db, &mut coverage, work, proof, trusted).await {
                Ok(keys) => {
                    report.applied += 1;
                    report.keys += keys;
                    report.bytes += part.bytes;
                    PartStatus::Applied { keys }
                }
                Err(error) => return Err(error),
            },
            Err(reason) => {
                coverage.release(&work.start);
                PartStatus::Failed { reason }
            }
        };
        drop(permit);
        let event = PartEvent {
            index,
            name: part.name.clone(),
            bytes: matches!(status, PartStatus::Applied { .. })
                .then_some(part.bytes)
                .unwrap_or(0),
            fraction: coverage.fraction_at(trusted),
            status,
        };
        tell(&event);
        if matches!(event.status, PartStatus::Failed { .. }) {
            report.failed.push(event);
        }
    }
    // A completed region may reach further than the commit that wrote it recorded (the applier
    // skips what the local trie already shares with the root after committing), so the map is
    // saved once more.
    save_progress(&db, &coverage)?;
    report.failed.sort_by_key(|e| e.index);
    report.fraction = coverage.fraction_at(trusted);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Commits a verified part with the coverage it produces; returns the keys written.
async fn write_part(
    db: &Db,
    coverage: &mut Coverage,
    work: Work,
    proof: RangeProof,
    root: Hash,
) -> Result<u64, BootstrapError> {
    let key_limit = proof.key_values.len().max(1);
    let start = work.start.clone();
    let job = Job {
        work,
        root,
        answer: Answer::Range(proof),
        peer: None,
    };
    let (db, snapshot) = (db.clone(), coverage.clone());
    let outcomes = tokio::task::spawn_blocking(move || apply(&db, &snapshot, vec![job], key_limit))
        .await
        .map_err(|e| BootstrapError::Task(e.to_string()))??;
    let mut keys = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Done {
                start,
                until,
                root,
                keys: k,
                density,
                ..
            } => {
                coverage.complete(&start, &until, root, density);
                keys += k;
            }
            // Only change proofs are verified at apply time; a range proof cannot land here.
            Outcome::Rejected { .. } => coverage.release(&start),
        }
    }
    Ok(keys)
}

/// Fetches a part (retrying failed fetches) and checks it: size, hash, encoding, proof.
fn fetch_checked(
    source: Arc<dyn PartSource>,
    part: Part,
    root: Hash,
    bf: BranchFactor,
    config: &BootstrapConfig,
) -> BoxFuture<'static, Result<RangeProof, String>> {
    let (timeout, attempts, backoff) = (
        config.part_timeout,
        config.attempts.max(1),
        config.retry_backoff,
    );
    async move {
        let mut last_error = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff * 2u32.saturating_pow(attempt - 1)).await;
            }
            match tokio::time::timeout(timeout, source.fetch(&part.name, part.bytes + 1)).await {
                Err(_) => {
                    last_error = format!("no complete answer within {timeout:?}");
                }
                Ok(Err(error)) => last_error = format!("fetch failed: {error}"),
                Ok(Ok(bytes)) => {
                    return tokio::task::spawn_blocking(move || {
                        check_part(&part, &bytes, root, bf)
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                }
            }
        }
        Err(format!("{last_error} (after {attempts} attempts)"))
    }
    .boxed()
}

/// Checks a part's bytes against its description and proves its contents against `root`.
pub(crate) fn check_part(
    part: &Part,
    bytes: &[u8],
    root: Hash,
    bf: BranchFactor,
) -> Result<RangeProof, String> {
    let len = bytes.len() as u64;
    if len > part.bytes {
        return Err(format!(
            "larger than declared: more than {} bytes",
            part.bytes
        ));
    }
    if len < part.bytes {
        return Err(format!("truncated: {len} of {} bytes", part.bytes));
    }
    if Part::name_for(bytes).1 != part.sha256 {
        return Err("its content does not match its SHA-256".to_owned());
    }
    let proof = pb::RangeProof::decode(bytes)
        .map_err(|e| e.to_string())
        .and_then(|p| RangeProof::try_from(p).map_err(|e| e.to_string()))
        .map_err(|e| format!("not a range proof: {e}"))?;
    verify_range_proof(
        &proof,
        part.start.as_deref(),
        part.end.as_deref(),
        root,
        proof.key_values.len().max(1),
        bf,
    )
    .map_err(|e| format!("its proof does not verify against root {root}: {e}"))?;
    Ok(proof)
}
