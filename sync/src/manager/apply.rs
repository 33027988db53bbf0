//! Applying verified answers: one atomic commit for a batch of them, with the coverage map.
//!
//! Every answer reaching [`apply`] has been verified against the root it was fetched at, except
//! change proofs, which can only be checked against the local contents and are verified here,
//! under the same exclusive turn as the commit (only one batch is applied at a time, and the
//! regions of a batch are busy, so nothing else writes inside them in between).
//!
//! A batch's contents and the coverage map claiming them are written in one commit
//! (`Proposal::commit_with_meta`), so after a crash the persisted map never claims more than the
//! database holds.

use arbor_merkledb::{ChangeProof, Db, Hash, Key, Proposal, RangeProof, Result};

use super::coverage::{Coverage, Until, Work};
use super::keyspace::width;
use super::next_key::find_next_key;

/// The application metadata record holding the persisted progress.
pub(crate) const PROGRESS_KEY: &[u8] = b"sync/progress";

/// What was fetched for a region.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A verified range proof at the job's root.
    Range(RangeProof),
    /// A change proof from the region's tag to the job's root, not yet verified.
    Change(ChangeProof),
    /// The target is the empty trie: the region is cleared without asking anyone.
    Clear,
}

/// A fetched answer for a busy region.
#[derive(Debug)]
pub(crate) struct Job {
    /// The region, with the tag it had when it was handed out.
    pub(crate) work: Work,
    /// The root the answer is for.
    pub(crate) root: Hash,
    /// The answer.
    pub(crate) answer: Answer,
    /// Who sent it.
    pub(crate) peer: Option<usize>,
}

/// What became of a job.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Committed: the region holds `root` up to `until`.
    Done {
        /// The region's start.
        start: Vec<u8>,
        /// How far it now holds `root`.
        until: Until,
        /// The root.
        root: Hash,
        /// Keys written or deleted.
        keys: u64,
        /// Keys per unit of keyspace width over the answer's own keys (see [`density`]).
        density: Option<f64>,
        /// Who sent the answer (none for a local clear).
        peer: Option<usize>,
    },
    /// A change proof failed verification; nothing was written.
    Rejected {
        /// The region's start.
        start: Vec<u8>,
        /// Who sent it.
        peer: Option<usize>,
        /// Why.
        error: String,
        /// The failure may be ours, not the peer's (see [`ambiguous`]): do not blame the peer,
        /// fetch the region with range proofs instead.
        ambiguous: bool,
    },
}

/// The inclusive request bounds for a half-open region `[start, end)`, and whether they are
/// exact. A region end `e ‖ 0` maps exactly to the inclusive end `e`; any other end `y` is sent
/// as the inclusive end `y`, one key too far, and the key `y` itself is then ignored.
pub(crate) fn request_bounds(work: &Work) -> (Option<Vec<u8>>, Option<Vec<u8>>, bool) {
    let start = (!work.start.is_empty()).then(|| work.start.clone());
    match &work.end {
        None => (start, None, true),
        Some(end) if end.last() == Some(&0) => (start, Some(end[..end.len() - 1].to_vec()), true),
        Some(end) => (start, Some(end.clone()), false),
    }
}

/// Applies `jobs` (regions busy in `coverage`) in one commit, persisting the coverage they
/// produce. Returns one outcome per job. `key_limit` is the limit the requests were sent with.
pub(crate) fn apply(
    db: &Db,
    coverage: &Coverage,
    jobs: Vec<Job>,
    key_limit: usize,
) -> Result<Vec<Outcome>> {
    let mut claimed = coverage.clone();
    let mut ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut accepted = Vec::new();
    let mut outcomes = Vec::new();
    let view = db.view()?;
    for mut job in jobs {
        // Verification is against the bounds the request was sent with; what is written stops at
        // the region's end now, which a steal may have moved closer (see `Coverage::steal`).
        let (req_start, req_end, exact) = request_bounds(&job.work);
        if let Some(end) = coverage.end_of(&job.work.start) {
            job.work.end = end;
        }
        let below_end = |k: &[u8]| job.work.end.as_deref().is_none_or(|e| k < e);
        let before = ops.len();
        let (answer_keys, span_density) = match &job.answer {
            Answer::Range(proof) => (
                proof.key_values.len(),
                density(proof.key_values.iter().map(|kv| kv.key.as_slice())),
            ),
            Answer::Change(proof) => (
                proof.key_changes.len(),
                density(proof.key_changes.iter().map(|c| c.key.as_slice())),
            ),
            Answer::Clear => (0, None),
        };
        let largest = match &mut job.answer {
            Answer::Range(proof) => {
                let largest = proof
                    .key_values
                    .last()
                    .map(|kv| kv.key.clone())
                    .or(req_end.clone());
                // Deletes: local keys in [start, largest] the proof does not hold. Key-values the
                // replica already holds with the same value are left out of the batch: a replica
                // catching up with range proofs (its root no longer in any peer's history) would
                // otherwise rewrite its whole state through the commit path.
                let mut unchanged = vec![false; proof.key_values.len()];
                let mut kvs = proof.key_values.iter().enumerate().peekable();
                view.for_each_entry(&job.work.start, largest.as_deref(), |key, value| {
                    while kvs.next_if(|(_, kv)| kv.key.as_slice() < key).is_some() {}
                    match kvs.peek() {
                        Some((i, kv)) if kv.key == key => unchanged[*i] = kv.value == value,
                        _ if below_end(key) => ops.push((key.to_vec(), None)),
                        _ => {}
                    }
                })?;
                // The answer is not needed after this: its key-values move into the batch.
                ops.extend(
                    std::mem::take(&mut proof.key_values)
                        .into_iter()
                        .zip(unchanged)
                        .filter(|(kv, same)| !same && below_end(&kv.key))
                        .map(|(kv, _)| (kv.key, Some(kv.value))),
                );
                largest
            }
            Answer::Change(proof) => {
                let checked = db.verify_change_proof(
                    proof,
                    req_start.as_deref(),
                    req_end.as_deref(),
                    job.root,
                    key_limit,
                );
                if let Err(error) = checked {
                    outcomes.push(Outcome::Rejected {
                        start: job.work.start.clone(),
                        peer: job.peer,
                        error: error.to_string(),
                        ambiguous: !exact && ambiguous(db, proof, req_end.as_deref())?,
                    });
                    continue;
                }
                let largest = proof
                    .key_changes
                    .last()
                    .map(|c| c.key.clone())
                    .or(req_end.clone());
                ops.extend(
                    std::mem::take(&mut proof.key_changes)
                        .into_iter()
                        .filter(|c| below_end(&c.key))
                        .map(|c| (c.key, c.value)),
                );
                largest
            }
            Answer::Clear => {
                deletes_in(
                    &view,
                    &job.work.start,
                    job.work.end.as_deref(),
                    None,
                    &mut ops,
                )?;
                None
            }
        };
        // Everything up to `largest` (inclusive) now holds `job.root`.
        let until = match &largest {
            None => Until::End,
            Some(l) if req_end.as_ref() == Some(l) => Until::End,
            Some(l) if job.work.end.as_deref().is_some_and(|e| l.as_slice() >= e) => Until::End,
            Some(l) => {
                let mut next = l.clone();
                next.push(0);
                Until::Key(next)
            }
        };
        // What the answer measured: over its keys when it stopped at the key limit; over the
        // whole region when it covered it (few keys or none: the density past it is low).
        let density = match &until {
            Until::Key(_) => span_density,
            Until::End => {
                let w = width(&job.work.start, job.work.end.as_deref());
                (w > 0.0).then(|| answer_keys as f64 / w)
            }
        };
        claimed.complete(&job.work.start, &until, job.root, density);
        accepted.push((job, largest, until, (ops.len() - before) as u64, density));
    }
    drop(view);
    if !accepted.is_empty() {
        commit_with_coverage(db, ops, &claimed)?;
    }
    for (job, largest, until, keys, density) in accepted {
        // Skip ahead past subtrees the local trie already shares with the fetched root.
        let until = match (&until, &largest, &job.answer) {
            (Until::Key(_), Some(last), Answer::Range(RangeProof { end_proof, .. }))
            | (Until::Key(_), Some(last), Answer::Change(ChangeProof { end_proof, .. })) => {
                match find_next_key(db, last, job.work.end.as_deref(), end_proof)? {
                    Some(next) => Until::Key(next),
                    None => Until::End,
                }
            }
            _ => until,
        };
        outcomes.push(Outcome::Done {
            start: job.work.start,
            until,
            root: job.root,
            keys,
            density,
            peer: job.peer,
        });
    }
    Ok(outcomes)
}

/// Keys per unit of keyspace width over an answer's `keys` (in key order): one less than their
/// count over the width from the first to the last. `None` for fewer than two keys, or keys
/// too close to measure. It is measured over the keys alone, not the requested range: an
/// answer from a range whose keys all sit under one prefix would otherwise count the empty
/// stretch before them.
fn density<'a>(mut keys: impl ExactSizeIterator<Item = &'a [u8]>) -> Option<f64> {
    let n = keys.len();
    let first = keys.next()?;
    let last = keys.last()?;
    let span = width(first, Some(last));
    (span > 0.0).then(|| (n - 1) as f64 / span)
}

/// Whether a change proof's failure may come from the key `end` itself rather than from the
/// peer. The request's inclusive end `end` is the first key of the *next* region, whose local
/// value belongs to that region's root, not to this one's. When the proof changes nothing up to
/// `end`, verification compares that borrowed value; it can differ from this region's root only
/// if `end` is a key locally or in the end root.
fn ambiguous(db: &Db, proof: &ChangeProof, end: Option<&[u8]>) -> Result<bool> {
    let Some(end) = end else {
        return Ok(false);
    };
    if !proof.key_changes.is_empty() {
        return Ok(false);
    }
    let end_key = Key::from_bytes(end);
    let claims_value = proof
        .end_proof
        .last()
        .is_some_and(|n| n.key == end_key && n.value_or_hash.is_some());
    Ok(claims_value || db.get(end)?.is_some())
}

/// Adds deletes of every local key in the half-open `[lo, hi)` (`hi = None`: +∞) but `keep`.
pub(crate) fn deletes_in(
    view: &Proposal,
    lo: &[u8],
    hi: Option<&[u8]>,
    keep: Option<&[u8]>,
    ops: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
) -> Result<()> {
    if hi.is_some_and(|h| h <= lo) {
        return Ok(());
    }
    view.for_each_key(lo, hi, |key| {
        if hi.is_none_or(|h| key < h) && Some(key) != keep {
            ops.push((key.to_vec(), None));
        }
    })
}

/// Commits `ops` and persists `coverage`, which claims them, in the same commit (only the
/// coverage when there is nothing to write).
pub(crate) fn commit_with_coverage(
    db: &Db,
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    coverage: &Coverage,
) -> Result<()> {
    let record = |root: Hash| {
        let mut bytes = root.as_bytes().to_vec();
        bytes.extend_from_slice(&coverage.encode());
        bytes
    };
    if ops.is_empty() {
        db.put_app_meta(PROGRESS_KEY, Some(&record(db.root()?)))
    } else {
        let proposal = db.propose(ops)?;
        let bytes = record(proposal.root());
        proposal.commit_with_meta(&[(PROGRESS_KEY, Some(&bytes))])
    }
}

/// Empties the database, with its persisted progress, in one atomic write: a sync resumed
/// after it starts from nothing, as a fresh one does.
pub(crate) fn reset(db: &Db) -> Result<()> {
    db.reset_with_meta(&[(PROGRESS_KEY, None)])
}

/// Persists `coverage` on its own, claiming the database's current root; for states that need
/// no commit (e.g. a finished sync, whose skipped ranges may not have been persisted yet).
pub(crate) fn save_progress(db: &Db, coverage: &Coverage) -> Result<()> {
    let mut bytes = db.root()?.as_bytes().to_vec();
    bytes.extend_from_slice(&coverage.encode());
    db.put_app_meta(PROGRESS_KEY, Some(&bytes))
}

/// What a sync (or a bootstrap) starts from: the persisted coverage of an interrupted one, or
/// else, for a non-empty database, its current root everywhere (so a replica that is behind
/// catches up with change proofs), or nothing known.
pub(crate) fn starting_coverage(db: &Db) -> Result<Coverage> {
    if let Some(coverage) = load_progress(db)? {
        return Ok(coverage);
    }
    let root = db.root()?;
    Ok(Coverage::whole((root != Hash::EMPTY_ROOT).then_some(root)))
}

/// The persisted coverage, if there is one and the database has not been changed by anything
/// else since it was written (the record carries the root it was written with).
fn load_progress(db: &Db) -> Result<Option<Coverage>> {
    let Some(record) = db.app_meta(PROGRESS_KEY)? else {
        return Ok(None);
    };
    if record.len() < 32 || record[..32] != *db.root()?.as_bytes() {
        return Ok(None);
    }
    Ok(Coverage::decode(&record[32..]))
}

#[cfg(test)]
mod tests;
