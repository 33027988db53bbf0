//! Databases: open and close, read, commit a batch, serve and verify proofs.

use std::sync::LazyLock;

use arbor_merkledb::{
    BatchOp, BranchFactor, ChangeOrRangeProof, Config, Db, Hash, verify_range_proof,
};
use arbor_sync::{
    ChangeProofRequest, Limits, RangeProofRequest, ServeError, handle_request_bytes,
    serve_change_proof, serve_range_proof, wire,
};
use prost::Message;

use crate::{
    abi::{
        ArborBytes, ArborHash, ArborMaybeSlice, ArborSlice, ArborStatus, FfiError, guard,
        maybe_slice, slice, write, write_bytes,
    },
    handles::Registry,
};

/// Open databases.
pub(crate) static DBS: LazyLock<Registry<Db>> = LazyLock::new(|| Registry::new("database"));

fn branch_factor(children: u32) -> Result<BranchFactor, FfiError> {
    BranchFactor::from_children(children).ok_or_else(|| {
        FfiError::invalid(format!("branch factor {children} is not 2, 4, 16 or 256"))
    })
}

fn invalid_proof(error: impl std::fmt::Display) -> FfiError {
    FfiError::new(ArborStatus::InvalidProof, error.to_string())
}

/// Verifies a change-proof answer of `[start, end]` towards `end_root` against `db` (a range
/// proof answer against `end_root` alone).
fn verify_change_answer(
    db: &Db,
    answer: &ChangeOrRangeProof,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
    end_root: Hash,
    key_limit: usize,
) -> Result<(), FfiError> {
    match answer {
        ChangeOrRangeProof::Change(proof) => {
            db.verify_change_proof(proof, start, end, end_root, key_limit)?;
        }
        ChangeOrRangeProof::Range(proof) => {
            verify_range_proof(proof, start, end, end_root, key_limit, db.branch_factor())?;
        }
    }
    Ok(())
}

fn refused(error: ServeError) -> FfiError {
    FfiError::new(ArborStatus::Refused, error.to_string())
}

impl From<ArborHash> for Hash {
    fn from(hash: ArborHash) -> Self {
        Hash(hash.bytes)
    }
}

fn to_c(hash: Hash) -> ArborHash {
    ArborHash { bytes: hash.0 }
}

/// Parses a batch: per operation, a kind byte (0 put, 1 delete), the key's length (u32 little
/// endian) and the key, then for a put the value's length (u32 LE) and the value.
fn parse_batch(mut bytes: &[u8]) -> Result<Vec<BatchOp>, FfiError> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], FfiError> {
        if bytes.len() < n {
            return Err(FfiError::invalid(
                "batch ends in the middle of an operation",
            ));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn length(bytes: &mut &[u8]) -> Result<usize, FfiError> {
        let raw = take(bytes, 4)?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
    }
    let mut ops = Vec::new();
    while !bytes.is_empty() {
        let kind = take(&mut bytes, 1)?[0];
        let key_len = length(&mut bytes)?;
        let key = take(&mut bytes, key_len)?.to_vec();
        let value = match kind {
            0 => {
                let value_len = length(&mut bytes)?;
                Some(take(&mut bytes, value_len)?.to_vec())
            }
            1 => None,
            other => {
                return Err(FfiError::invalid(format!(
                    "unknown batch operation {other}"
                )));
            }
        };
        ops.push((key, value));
    }
    Ok(ops)
}

/// Opens a database at `path` (UTF-8) on RocksDB, creating it if needed, or in memory when
/// `path` is empty. `branch_factor` is 2, 4, 16 or 256 (a RocksDB database keeps the one it was
/// created with); `history_len` commits are kept for change proofs. Writes the new handle to
/// `handle_out`.
///
/// # Safety
/// The ABI's contract on every argument (see the header's preamble).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_open(
    path: ArborSlice,
    branch_factor_children: u32,
    history_len: u32,
    handle_out: *mut u64,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let path = std::str::from_utf8(slice(path)?)
                .map_err(|_| FfiError::invalid("path is not UTF-8"))?;
            let config = Config::default()
                .with_branch_factor(branch_factor(branch_factor_children)?)
                .with_history_len(history_len as usize);
            let db = if path.is_empty() {
                Db::open_memory(config)?
            } else {
                Db::open(path, config)?
            };
            write(handle_out, DBS.insert(db))
        })
    }
}

/// Closes a database: writes what is buffered and releases the handle, which is invalid from
/// then on. Syncs started on it keep their own reference until they are closed.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_close(db: u64, err: *mut ArborBytes) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe { guard(err, || Ok(DBS.remove(db)?.close()?)) }
}

/// Reads `key`. Writes whether it exists to `found_out` and its value to `value_out` (an empty
/// buffer when absent). The caller frees `value_out`.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_get(
    db: u64,
    key: ArborSlice,
    value_out: *mut ArborBytes,
    found_out: *mut bool,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let key = slice(key)?;
            let value = DBS.with(db, |db| Ok(db.get(key)?))?;
            write(found_out, value.is_some())?;
            write_bytes(value_out, value.unwrap_or_default())
        })
    }
}

/// Commits a batch of puts and deletes atomically (all or nothing); writes the new root to
/// `root_out`. Batch layout: per operation, a kind byte (0 put, 1 delete), the key's length as
/// u32 little endian, the key, then for a put the value's length (u32 LE) and the value. A later
/// operation on the same key wins.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_commit(
    db: u64,
    batch: ArborSlice,
    root_out: *mut ArborHash,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let ops = parse_batch(slice(batch)?)?;
            let root = DBS.with(db, |db| {
                let proposal = db.propose(ops)?;
                let root = proposal.root();
                proposal.commit()?;
                Ok(root)
            })?;
            write(root_out, to_c(root))
        })
    }
}

/// Writes the current root to `root_out` (32 zero bytes for the empty trie).
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_root(
    db: u64,
    root_out: *mut ArborHash,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            write(root_out, to_c(DBS.with(db, |db| Ok(db.root()?))?))
        })
    }
}

/// A range proof of the keys in `[start, end]` at `root` (any root in the database's history),
/// at most `key_limit` keys and under `bytes_limit` bytes encoded, as a v1.11 `sync.RangeProof`
/// in `proof_out` (the caller frees it). A request the database cannot serve is
/// `ARBOR_STATUS_REFUSED`.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_range_proof(
    db: u64,
    root: ArborHash,
    start: ArborMaybeSlice,
    end: ArborMaybeSlice,
    key_limit: u32,
    bytes_limit: u32,
    proof_out: *mut ArborBytes,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let request = RangeProofRequest {
                root: root.into(),
                start: maybe_slice(start)?.map(<[u8]>::to_vec),
                end: maybe_slice(end)?.map(<[u8]>::to_vec),
                key_limit,
                bytes_limit,
            };
            let proof = DBS.with(db, |db| {
                serve_range_proof(db, &request, &Limits::default()).map_err(refused)
            })?;
            write_bytes(proof_out, proof.encode_to_vec())
        })
    }
}

/// A change proof of the keys in `[start, end]` from `start_root` to `end_root`, as a v1.11
/// `sync.SyncGetChangeProofResponse` in `answer_out` (a range proof of `end_root` when
/// `start_root` is no longer held). The caller frees `answer_out`.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_change_proof(
    db: u64,
    start_root: ArborHash,
    end_root: ArborHash,
    start: ArborMaybeSlice,
    end: ArborMaybeSlice,
    key_limit: u32,
    bytes_limit: u32,
    answer_out: *mut ArborBytes,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let request = ChangeProofRequest {
                start_root: start_root.into(),
                end_root: end_root.into(),
                start: maybe_slice(start)?.map(<[u8]>::to_vec),
                end: maybe_slice(end)?.map(<[u8]>::to_vec),
                key_limit,
                bytes_limit,
            };
            let answer = DBS.with(db, |db| {
                serve_change_proof(db, &request, &Limits::default()).map_err(refused)
            })?;
            write_bytes(answer_out, answer.encode_to_vec())
        })
    }
}

/// The server's `bytes in → bytes out` handler: answers a v1.11 `sync.Request` with the answer's
/// bytes in `answer_out` (the caller frees them). A refusal is `ARBOR_STATUS_REFUSED`, with its
/// kind as a gRPC code number in `refusal_out` (to send back to the asker with the message).
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_handle_request(
    db: u64,
    request: ArborSlice,
    answer_out: *mut ArborBytes,
    refusal_out: *mut u32,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let request = slice(request)?;
            let answer = DBS.with(db, |db| {
                Ok(handle_request_bytes(db, request, &Limits::default()))
            })?;
            match answer {
                Ok(answer) => {
                    write(refusal_out, 0)?;
                    write_bytes(answer_out, answer)
                }
                Err(error) => {
                    write(refusal_out, error.kind().code())?;
                    Err(refused(error))
                }
            }
        })
    }
}

/// Verifies a range proof (v1.11 `sync.RangeProof` bytes) of `[start, end]` against `root`, for
/// a request of `key_limit` keys, in a trie of `branch_factor` children per node. Returns
/// `ARBOR_STATUS_OK` only if the proof is sound; `ARBOR_STATUS_INVALID_PROOF` says why not.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_verify_range_proof(
    proof: ArborSlice,
    root: ArborHash,
    start: ArborMaybeSlice,
    end: ArborMaybeSlice,
    key_limit: u32,
    branch_factor_children: u32,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let bf = branch_factor(branch_factor_children)?;
            let proof = wire::decode_range_answer(slice(proof)?).map_err(invalid_proof)?;
            let (start, end) = (maybe_slice(start)?, maybe_slice(end)?);
            Ok(verify_range_proof(
                &proof,
                start,
                end,
                root.into(),
                key_limit as usize,
                bf,
            )?)
        })
    }
}

/// Verifies the answer to a change-proof request (v1.11 `sync.SyncGetChangeProofResponse`
/// bytes) of `[start, end]` towards `end_root`, against this database, which must be at the
/// request's start root. A range-proof answer is verified against `end_root` alone.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_verify_change_proof(
    db: u64,
    answer: ArborSlice,
    start: ArborMaybeSlice,
    end: ArborMaybeSlice,
    end_root: ArborHash,
    key_limit: u32,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let answer = wire::decode_change_answer(slice(answer)?).map_err(invalid_proof)?;
            let (start, end) = (maybe_slice(start)?, maybe_slice(end)?);
            DBS.with(db, |db| {
                verify_change_answer(db, &answer, start, end, end_root.into(), key_limit as usize)
            })
        })
    }
}

/// Verifies a range proof (v1.11 `sync.RangeProof` bytes) of `[start, end]` against `root`, then
/// commits it: the database's keys in the proven range become exactly the proof's. Writes the
/// new root to `root_out`. Nothing is written when verification fails.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_apply_range_proof(
    db: u64,
    proof: ArborSlice,
    root: ArborHash,
    start: ArborMaybeSlice,
    end: ArborMaybeSlice,
    key_limit: u32,
    root_out: *mut ArborHash,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let proof = wire::decode_range_answer(slice(proof)?).map_err(invalid_proof)?;
            let (start, end) = (maybe_slice(start)?, maybe_slice(end)?);
            let new_root = DBS.with(db, |db| {
                verify_range_proof(
                    &proof,
                    start,
                    end,
                    root.into(),
                    key_limit as usize,
                    db.branch_factor(),
                )?;
                Ok(db.commit_range_proof(start, end, &proof)?)
            })?;
            write(root_out, to_c(new_root))
        })
    }
}

/// Verifies the answer to a change-proof request (v1.11 `sync.SyncGetChangeProofResponse`
/// bytes) of `[start, end]` towards `end_root` against this database, then commits it (a
/// range-proof answer is committed as a range proof). Writes the new root to `root_out`.
/// Nothing is written when verification fails.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_db_apply_change_proof(
    db: u64,
    answer: ArborSlice,
    start: ArborMaybeSlice,
    end: ArborMaybeSlice,
    end_root: ArborHash,
    key_limit: u32,
    root_out: *mut ArborHash,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let answer = wire::decode_change_answer(slice(answer)?).map_err(invalid_proof)?;
            let (start, end) = (maybe_slice(start)?, maybe_slice(end)?);
            let new_root = DBS.with(db, |db| {
                let limit = key_limit as usize;
                verify_change_answer(db, &answer, start, end, end_root.into(), limit)?;
                Ok(match &answer {
                    ChangeOrRangeProof::Change(proof) => db.commit_change_proof(proof)?,
                    ChangeOrRangeProof::Range(proof) => db.commit_range_proof(start, end, proof)?,
                })
            })?;
            write(root_out, to_c(new_root))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_parse_and_malformed_ones_are_refused() {
        let mut batch = vec![0, 1, 0, 0, 0, b'k', 2, 0, 0, 0, b'v', b'w'];
        batch.extend([1, 1, 0, 0, 0, b'x']);
        assert_eq!(
            parse_batch(&batch).expect("parses"),
            [(b"k".to_vec(), Some(b"vw".to_vec())), (b"x".to_vec(), None)]
        );
        for cut in 1..batch.len() {
            if cut == 12 {
                continue; // a whole first operation
            }
            assert!(parse_batch(&batch[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_batch(&[7, 0, 0, 0, 0]).is_err());
    }
}
