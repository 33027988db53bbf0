//! Answering proof requests within their limits: the server side of the wire contract, shared by
//! the gRPC service and the `bytes in → bytes out` entry point a VM carries over its own network.
//!
//! Limits are clamped to 2048 keys and 2,093,056 bytes (AvalancheGo's). A response is sent only if
//! its encoding is **strictly smaller** than the byte limit; otherwise the key limit shrinks to half
//! the number of keys the oversized answer held, and generation is retried. When not even one
//! key-value fits, the answer is [`ServeError::ProofTooLarge`], never silence.

use arbor_merkledb::{ChangeOrRangeProof, Db, Error as DbError, Hash, MissingRoot, ProofError};
use prost::Message;

use crate::{
    convert::ConvertError,
    pb,
    request::{ChangeProofRequest, NodeDiffRequest, RangeProofRequest, SyncRequest},
};

/// Most key-values served in one proof.
pub const MAX_KEY_LIMIT: u32 = 2048;
/// Largest encoded proof served: 2 MiB minus 4 KiB of message overhead.
pub const MAX_BYTES_LIMIT: u32 = 2 * 1024 * 1024 - 4096;
/// Most node-diff queries answered for one request (the first ones; the asker asks again for
/// the rest).
pub const MAX_NODE_QUERIES: usize = 4096;

/// The server's caps on what one request may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most key-values (or changes) in one proof.
    pub max_keys: u32,
    /// Largest encoded response, in bytes.
    pub max_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_keys: MAX_KEY_LIMIT,
            max_bytes: MAX_BYTES_LIMIT,
        }
    }
}

/// Why a request could not be answered. Each maps to one gRPC status code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The request is malformed (`INVALID_ARGUMENT`).
    #[error("malformed request: {0}")]
    Malformed(#[from] ConvertError),
    /// The request bytes are not a protobuf message (`INVALID_ARGUMENT`).
    #[error("undecodable request: {0}")]
    Undecodable(#[from] prost::DecodeError),
    /// A requested root is not held (`NOT_FOUND`); `retained` lists the roots that are.
    #[error("root {root} is not held; retained roots: {retained}")]
    RootNotHeld {
        /// The missing root.
        root: arbor_merkledb::Hash,
        /// The roots the server can serve, oldest first, comma-separated hex.
        retained: String,
    },
    /// The request is in AvalancheGo v1.14+'s dialect (`sync.ProofRequest`), which Arbor does not
    /// speak (`INVALID_ARGUMENT`); see [`crate::wire`].
    #[error(
        "this is an AvalancheGo v1.14+ request (sync.ProofRequest); Arbor speaks the v1.11 \
         dialect (sync.Request, AvalancheGo up to v1.13)"
    )]
    NewerDialect,
    /// The request names the empty trie's root, which has no proofs (`INVALID_ARGUMENT`).
    #[error("the empty root (32 zero bytes) has no proofs")]
    EmptyRoot,
    /// Not even one key-value fits the byte limit (`FAILED_PRECONDITION`).
    #[error("no proof fits in {bytes_limit} bytes")]
    ProofTooLarge {
        /// The (clamped) byte limit.
        bytes_limit: u32,
    },
    /// The request cannot be served as asked (`INVALID_ARGUMENT`; `FAILED_PRECONDITION` for
    /// an empty proof: the trie is empty at that root).
    #[error("cannot serve: {0}")]
    Unservable(ProofError),
    /// A commit invalidated the state being read; retry (`UNAVAILABLE`).
    #[error("the database moved while the proof was generated; retry")]
    Contended,
    /// The database failed (`INTERNAL`).
    #[error("database error: {0}")]
    Db(DbError),
}

impl ServeError {
    fn from_db(db: &Db, error: DbError) -> Self {
        let retained = || {
            db.retained_roots()
                .map(|roots| {
                    roots
                        .iter()
                        .map(|r| r.to_hex())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        match error {
            DbError::Proof(ProofError::InsufficientHistory { root, .. }) => {
                ServeError::RootNotHeld {
                    root,
                    retained: retained(),
                }
            }
            DbError::RootNotInHistory { root, .. } => ServeError::RootNotHeld {
                root,
                retained: retained(),
            },
            DbError::Proof(e) => ServeError::Unservable(e),
            DbError::Invalid => ServeError::Contended,
            other => ServeError::Db(other),
        }
    }
}

/// Generates with a shrinking key limit until the encoding fits strictly under `bytes_limit`.
fn within_limits<T>(
    limits: &Limits,
    key_limit: u32,
    bytes_limit: u32,
    mut generate: impl FnMut(usize) -> Result<T, ServeError>,
    keys_of: impl Fn(&T) -> usize,
    encoded_len: impl Fn(&T) -> usize,
) -> Result<T, ServeError> {
    let bytes_limit = bytes_limit.min(limits.max_bytes);
    let mut keys = key_limit.min(limits.max_keys) as usize;
    while keys > 0 {
        let answer = generate(keys)?;
        if encoded_len(&answer) < bytes_limit as usize {
            return Ok(answer);
        }
        keys = keys_of(&answer) / 2;
    }
    Err(ServeError::ProofTooLarge { bytes_limit })
}

/// Answers a range-proof request.
pub fn serve_range_proof(
    db: &Db,
    req: &RangeProofRequest,
    limits: &Limits,
) -> Result<pb::RangeProof, ServeError> {
    if req.root == Hash::EMPTY_ROOT {
        return Err(ServeError::EmptyRoot);
    }
    within_limits(
        limits,
        req.key_limit,
        req.bytes_limit,
        |keys| {
            db.range_proof_at(req.root, req.start.as_deref(), req.end.as_deref(), keys)
                .map(pb::RangeProof::from)
                .map_err(|e| ServeError::from_db(db, e))
        },
        |p| p.key_values.len(),
        Message::encoded_len,
    )
}

/// Answers a change-proof request: a change proof, or, when the start root is not in history, a
/// range proof at the end root over the same bounds.
pub fn serve_change_proof(
    db: &Db,
    req: &ChangeProofRequest,
    limits: &Limits,
) -> Result<pb::SyncGetChangeProofResponse, ServeError> {
    if req.end_root == Hash::EMPTY_ROOT {
        return Err(ServeError::EmptyRoot);
    }
    let change = within_limits(
        limits,
        req.key_limit,
        req.bytes_limit,
        |keys| {
            db.change_proof(
                req.start_root,
                req.end_root,
                req.start.as_deref(),
                req.end.as_deref(),
                keys,
            )
            .map(|p| pb::SyncGetChangeProofResponse::from(ChangeOrRangeProof::Change(p)))
            .map_err(|e| match e {
                DbError::Proof(ProofError::InsufficientHistory {
                    which: MissingRoot::Start,
                    ..
                }) => ServeError::Unservable(ProofError::InsufficientHistory {
                    root: req.start_root,
                    which: MissingRoot::Start,
                }),
                other => ServeError::from_db(db, other),
            })
        },
        |r| match &r.response {
            Some(pb::sync_get_change_proof_response::Response::ChangeProof(p)) => {
                p.key_changes.len()
            }
            _ => 0,
        },
        Message::encoded_len,
    );
    match change {
        Err(ServeError::Unservable(ProofError::InsufficientHistory {
            which: MissingRoot::Start,
            ..
        })) => {
            let fallback = RangeProofRequest {
                root: req.end_root,
                start: req.start.clone(),
                end: req.end.clone(),
                key_limit: req.key_limit,
                bytes_limit: req.bytes_limit,
            };
            let range = serve_range_proof(db, &fallback, limits)?;
            Ok(pb::SyncGetChangeProofResponse {
                response: Some(pb::sync_get_change_proof_response::Response::RangeProof(
                    range,
                )),
            })
        }
        other => other,
    }
}

/// Answers a node-diff request (Arbor's own): as many of its queries, in order, as fit strictly
/// under the byte limit (at least one, or [`ServeError::ProofTooLarge`]).
pub fn serve_node_diff(
    db: &Db,
    req: &NodeDiffRequest,
    limits: &Limits,
) -> Result<pb::NodeDiffResponse, ServeError> {
    if req.root == Hash::EMPTY_ROOT {
        return Err(ServeError::EmptyRoot);
    }
    let bytes_limit = req.bytes_limit.min(limits.max_bytes);
    let diffs = db
        .node_diffs_at(
            req.root,
            &req.queries[..req.queries.len().min(MAX_NODE_QUERIES)],
            bytes_limit as usize,
        )
        .map_err(|e| ServeError::from_db(db, e))?;
    let mut response = pb::NodeDiffResponse::from(diffs);
    // The size used to stop was an estimate: drop answers until the encoding fits.
    while response.encoded_len() >= bytes_limit as usize {
        if response.nodes.len() <= 1 {
            return Err(ServeError::ProofTooLarge { bytes_limit });
        }
        response.nodes.pop();
    }
    Ok(response)
}

/// The `bytes in → bytes out` entry point: a v1.11 `Request` in, the raw response out (a
/// `RangeProof` for range requests, a `SyncGetChangeProofResponse` for change requests, a
/// `NodeDiffResponse` for Arbor's node-diff requests), so a VM can carry the protocol over its
/// own network.
pub fn handle_request_bytes(
    db: &Db,
    request: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, ServeError> {
    let decoded = match crate::wire::decode_request(request) {
        Ok(decoded) => decoded,
        Err(_) if crate::wire::is_newer_dialect_request(request) => {
            return Err(ServeError::NewerDialect);
        }
        Err(error) => return Err(error),
    };
    Ok(match decoded {
        SyncRequest::Range(req) => serve_range_proof(db, &req, limits)?.encode_to_vec(),
        SyncRequest::Change(req) => serve_change_proof(db, &req, limits)?.encode_to_vec(),
        SyncRequest::NodeDiff(req) => serve_node_diff(db, &req, limits)?.encode_to_vec(),
    })
}

#[cfg(test)]
mod tests;
