//! Conversion between the wire messages ([`crate::pb`]) and the domain types of `arbor-merkledb`.
//!
//! This is the only place where protobuf types meet domain types. The rules are those of
//! AvalancheGo v1.11 (`ToProto` / `UnmarshalProto`):
//!
//! * Domain → proto is infallible ([`From`]). Every `MaybeBytes` field is always populated:
//!   Nothing is `MaybeBytes { value: [], is_nothing: true }` and `Some(v)` is
//!   `MaybeBytes { value: v, is_nothing: false }`.
//! * Proto → domain is fallible ([`TryFrom`]) and returns a [`ConvertError`] naming the malformed
//!   field. It never panics and never allocates from a length read off the wire: a [`pb::Key`]'s
//!   bit length is checked against the bytes actually received before anything is built.
//! * `Key.length` counts **bits**; `Key.value` holds `ceil(length / 8)` bytes whose padding bits
//!   are masked (not rejected), as upstream.
//! * In proofs, a `MaybeBytes` field (`value_or_hash`, `KeyChange.value`, `Proof.value`) must be
//!   present; `is_nothing = true` with a non-empty value is malformed.
//! * In requests, a bound that is absent or has `is_nothing = true` means *unbounded* (the
//!   bounds rule is in [`crate::request`]).
//!
use std::collections::BTreeMap;

use arbor_merkledb::{
    ChangeOrRangeProof, ChangeProof, ChildChange, ChildDiff, Hash, Key, KeyChange, KeyValue,
    NodeDiff, NodeQuery, Proof, ProofNode, RangeProof, ValueDigest,
};

use crate::{
    pb,
    request::{ChangeProofRequest, NodeDiffRequest, RangeProofRequest, SyncRequest},
};

#[cfg(test)]
mod tests;

/// Why a wire message could not be converted to its domain type. One variant per malformed field.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConvertError {
    /// A `ProofNode` without its `key` (upstream `ErrNilKey`).
    #[error("proof node has no key")]
    MissingKey,
    /// A `Key` whose `value` is not `ceil(length / 8)` bytes long (upstream `ErrInvalidKeyLength`).
    #[error("key of {bit_len} bits carries {byte_len} bytes")]
    InvalidKeyLength {
        /// The claimed length in bits.
        bit_len: u64,
        /// The number of bytes received.
        byte_len: usize,
    },
    /// A `ProofNode` without `value_or_hash` (upstream `ErrNilValueOrHash`).
    #[error("proof node has no value_or_hash")]
    NilValueOrHash,
    /// A `MaybeBytes` in a proof with `is_nothing = true` and a non-empty value (upstream
    /// `ErrInvalidMaybe`).
    #[error("{field}: maybe is nothing but has a value")]
    InvalidMaybe {
        /// The proto field holding the `MaybeBytes`.
        field: &'static str,
    },
    /// A `value_or_hash` longer than 32 bytes (it is a value digest: a short value or a SHA-256).
    #[error("value digest of {len} bytes is longer than 32")]
    ValueDigestTooLong {
        /// Its length.
        len: usize,
    },
    /// A child index above 255 (upstream `errChildIndexTooLarge`).
    #[error("child index {index} is larger than 255")]
    ChildIndexTooLarge {
        /// The index received.
        index: u32,
    },
    /// A child ID that is not exactly 32 bytes.
    #[error("child {index} has an ID of {len} bytes, expected 32")]
    InvalidChildId {
        /// The child index.
        index: u8,
        /// The ID's length.
        len: usize,
    },
    /// A `KeyChange` without `value` (upstream `ErrNilMaybeBytes`).
    #[error("key change has no value")]
    NilKeyChangeValue,
    /// A `Proof` without `value` (upstream `ErrNilValue`).
    #[error("proof has no value")]
    NilProofValue,
    /// A root hash that is not exactly 32 bytes.
    #[error("{field} has {len} bytes, expected 32")]
    InvalidRootHash {
        /// The proto field (`root_hash`, `start_root_hash` or `end_root_hash`).
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A request bound (`start_key` or `end_key`) with `is_nothing = true` and a non-empty value.
    #[error("{field}: bound is nothing but has a value")]
    InvalidBound {
        /// The proto field (`start_key` or `end_key`).
        field: &'static str,
    },
    /// A request whose start bound is after its end bound (both are inclusive, so equal bounds are
    /// allowed).
    #[error("start key is after end key")]
    StartAfterEnd,
    /// A request with `key_limit = 0`.
    #[error("key limit is zero")]
    ZeroKeyLimit,
    /// A request with `bytes_limit = 0`.
    #[error("bytes limit is zero")]
    ZeroBytesLimit,
    /// A `SyncGetChangeProofResponse` holding neither a change proof nor a range proof.
    #[error("change proof response holds no proof")]
    EmptyChangeProofResponse,
    /// A `Request` holding neither a range-proof nor a change-proof request.
    #[error("request holds no message")]
    EmptyRequest,
    /// A node query's local IDs or a node diff's children not in strictly ascending index order.
    #[error("child indices are not strictly ascending")]
    UnorderedChildren,
    /// A `NodeDiffRequest` without queries.
    #[error("node-diff request holds no query")]
    NoQueries,
    /// A `ChildDiff` without its change, or a leaf or node without its key.
    #[error("child diff {index} is incomplete")]
    IncompleteChildDiff {
        /// The child index.
        index: u8,
    },
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `Some(v)` → `{ v, is_nothing: false }`; `None` → `{ [], is_nothing: true }`.
fn maybe_to_proto(value: Option<Vec<u8>>) -> pb::MaybeBytes {
    match value {
        Some(value) => pb::MaybeBytes {
            value,
            is_nothing: false,
        },
        None => pb::MaybeBytes {
            value: Vec::new(),
            is_nothing: true,
        },
    }
}

/// A present `MaybeBytes` of a proof: `is_nothing` → `None`, else `Some(value)`.
fn maybe_from_proto(
    maybe: pb::MaybeBytes,
    field: &'static str,
) -> Result<Option<Vec<u8>>, ConvertError> {
    match (maybe.is_nothing, maybe.value.is_empty()) {
        (true, true) => Ok(None),
        (true, false) => Err(ConvertError::InvalidMaybe { field }),
        (false, _) => Ok(Some(maybe.value)),
    }
}

/// A request bound: absent or `is_nothing` → unbounded (`None`), else `Some(value)`.
fn bound_from_proto(
    maybe: Option<pb::MaybeBytes>,
    field: &'static str,
) -> Result<Option<Vec<u8>>, ConvertError> {
    match maybe {
        None => Ok(None),
        Some(maybe) if maybe.is_nothing && !maybe.value.is_empty() => {
            Err(ConvertError::InvalidBound { field })
        }
        Some(maybe) if maybe.is_nothing => Ok(None),
        Some(maybe) => Ok(Some(maybe.value)),
    }
}

/// Checks that inclusive bounds are ordered (`start <= end` when both are set).
fn check_bounds(start: Option<&[u8]>, end: Option<&[u8]>) -> Result<(), ConvertError> {
    match (start, end) {
        (Some(start), Some(end)) if start > end => Err(ConvertError::StartAfterEnd),
        _ => Ok(()),
    }
}

/// Checks that both limits are non-zero.
fn check_limits(key_limit: u32, bytes_limit: u32) -> Result<(), ConvertError> {
    if key_limit == 0 {
        return Err(ConvertError::ZeroKeyLimit);
    }
    if bytes_limit == 0 {
        return Err(ConvertError::ZeroBytesLimit);
    }
    Ok(())
}

/// Parses a 32-byte root hash.
fn hash_from_proto(bytes: &[u8], field: &'static str) -> Result<Hash, ConvertError> {
    Hash::from_slice(bytes).ok_or(ConvertError::InvalidRootHash {
        field,
        len: bytes.len(),
    })
}

/// Converts proof nodes in order, stopping at the first malformed one.
fn nodes_from_proto(nodes: Vec<pb::ProofNode>) -> Result<Vec<ProofNode>, ConvertError> {
    nodes.into_iter().map(ProofNode::try_from).collect()
}

/// Converts proof nodes in order.
fn nodes_to_proto(nodes: Vec<ProofNode>) -> Vec<pb::ProofNode> {
    nodes.into_iter().map(pb::ProofNode::from).collect()
}

/// Parses a child map. Entries are checked in ascending index order, so the error reported for a
/// map with several malformed entries does not depend on hash-map iteration order.
fn children_from_proto(
    children: BTreeMap<u32, Vec<u8>>,
) -> Result<BTreeMap<u8, Hash>, ConvertError> {
    let mut entries: Vec<(u32, Vec<u8>)> = children.into_iter().collect();
    entries.sort_unstable_by_key(|(index, _)| *index);
    entries
        .into_iter()
        .map(|(index, id)| {
            let index =
                u8::try_from(index).map_err(|_| ConvertError::ChildIndexTooLarge { index })?;
            let id = Hash::from_slice(&id).ok_or(ConvertError::InvalidChildId {
                index,
                len: id.len(),
            })?;
            Ok((index, id))
        })
        .collect()
}

/// Parses `value_or_hash`: it must be present, and when Some it is a digest (≤ 32 bytes).
fn value_digest_from_proto(
    maybe: Option<pb::MaybeBytes>,
) -> Result<Option<ValueDigest>, ConvertError> {
    let maybe = maybe.ok_or(ConvertError::NilValueOrHash)?;
    match maybe_from_proto(maybe, "ProofNode.value_or_hash")? {
        None => Ok(None),
        Some(bytes) => ValueDigest::from_digest_bytes(&bytes)
            .map(Some)
            .ok_or(ConvertError::ValueDigestTooLong { len: bytes.len() }),
    }
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

impl From<&Key> for pb::Key {
    fn from(key: &Key) -> Self {
        pb::Key {
            length: key.bit_len() as u64,
            value: key.as_bytes().to_vec(),
        }
    }
}

impl From<Key> for pb::Key {
    fn from(key: Key) -> Self {
        pb::Key {
            length: key.bit_len() as u64,
            value: key.into_bytes(),
        }
    }
}

impl TryFrom<pb::Key> for Key {
    type Error = ConvertError;

    /// Checks `value.len() == ceil(length / 8)` in `u64` arithmetic before building anything, so
    /// a huge claimed length with few bytes is rejected without allocating. Padding bits are
    /// masked.
    fn try_from(key: pb::Key) -> Result<Self, Self::Error> {
        let invalid = ConvertError::InvalidKeyLength {
            bit_len: key.length,
            byte_len: key.value.len(),
        };
        let byte_len = u64::try_from(key.value.len()).map_err(|_| invalid.clone())?;
        if key.length.div_ceil(8) != byte_len {
            return Err(invalid);
        }
        let bit_len = usize::try_from(key.length).map_err(|_| invalid.clone())?;
        Key::from_bits(&key.value, bit_len).ok_or(invalid)
    }
}

// ---------------------------------------------------------------------------------------------
// Proof nodes and proofs
// ---------------------------------------------------------------------------------------------

impl From<ProofNode> for pb::ProofNode {
    fn from(node: ProofNode) -> Self {
        let value_or_hash = node.value_or_hash.map(|digest| digest.as_bytes().to_vec());
        pb::ProofNode {
            key: Some(pb::Key::from(node.key)),
            value_or_hash: Some(maybe_to_proto(value_or_hash)),
            children: node
                .children
                .into_iter()
                .map(|(index, id)| (u32::from(index), id.0.to_vec()))
                .collect(),
        }
    }
}

impl TryFrom<pb::ProofNode> for ProofNode {
    type Error = ConvertError;

    fn try_from(node: pb::ProofNode) -> Result<Self, Self::Error> {
        let key = Key::try_from(node.key.ok_or(ConvertError::MissingKey)?)?;
        let value_or_hash = value_digest_from_proto(node.value_or_hash)?;
        let children = children_from_proto(node.children)?;
        Ok(ProofNode {
            key,
            value_or_hash,
            children,
        })
    }
}

impl From<Proof> for pb::Proof {
    fn from(proof: Proof) -> Self {
        pb::Proof {
            key: proof.key,
            value: Some(maybe_to_proto(proof.value)),
            proof: nodes_to_proto(proof.path),
        }
    }
}

impl TryFrom<pb::Proof> for Proof {
    type Error = ConvertError;

    fn try_from(proof: pb::Proof) -> Result<Self, Self::Error> {
        let value = proof.value.ok_or(ConvertError::NilProofValue)?;
        Ok(Proof {
            key: proof.key,
            value: maybe_from_proto(value, "Proof.value")?,
            path: nodes_from_proto(proof.proof)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Key-values, key changes, range and change proofs
// ---------------------------------------------------------------------------------------------

impl From<KeyValue> for pb::KeyValue {
    fn from(kv: KeyValue) -> Self {
        pb::KeyValue {
            key: kv.key,
            value: kv.value,
        }
    }
}

impl TryFrom<pb::KeyValue> for KeyValue {
    type Error = ConvertError;

    /// Never fails today (any bytes are a valid key and value); fallible for symmetry and so that
    /// future checks do not change the signature.
    fn try_from(kv: pb::KeyValue) -> Result<Self, Self::Error> {
        Ok(KeyValue {
            key: kv.key,
            value: kv.value,
        })
    }
}

impl From<KeyChange> for pb::KeyChange {
    fn from(change: KeyChange) -> Self {
        pb::KeyChange {
            key: change.key,
            value: Some(maybe_to_proto(change.value)),
        }
    }
}

impl TryFrom<pb::KeyChange> for KeyChange {
    type Error = ConvertError;

    fn try_from(change: pb::KeyChange) -> Result<Self, Self::Error> {
        let value = change.value.ok_or(ConvertError::NilKeyChangeValue)?;
        Ok(KeyChange {
            key: change.key,
            value: maybe_from_proto(value, "KeyChange.value")?,
        })
    }
}

impl From<RangeProof> for pb::RangeProof {
    fn from(proof: RangeProof) -> Self {
        pb::RangeProof {
            start_proof: nodes_to_proto(proof.start_proof),
            end_proof: nodes_to_proto(proof.end_proof),
            key_values: proof
                .key_values
                .into_iter()
                .map(pb::KeyValue::from)
                .collect(),
        }
    }
}

impl TryFrom<pb::RangeProof> for RangeProof {
    type Error = ConvertError;

    fn try_from(proof: pb::RangeProof) -> Result<Self, Self::Error> {
        Ok(RangeProof {
            start_proof: nodes_from_proto(proof.start_proof)?,
            end_proof: nodes_from_proto(proof.end_proof)?,
            key_values: proof
                .key_values
                .into_iter()
                .map(KeyValue::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<ChangeProof> for pb::ChangeProof {
    fn from(proof: ChangeProof) -> Self {
        pb::ChangeProof {
            start_proof: nodes_to_proto(proof.start_proof),
            end_proof: nodes_to_proto(proof.end_proof),
            key_changes: proof
                .key_changes
                .into_iter()
                .map(pb::KeyChange::from)
                .collect(),
        }
    }
}

impl TryFrom<pb::ChangeProof> for ChangeProof {
    type Error = ConvertError;

    fn try_from(proof: pb::ChangeProof) -> Result<Self, Self::Error> {
        Ok(ChangeProof {
            start_proof: nodes_from_proto(proof.start_proof)?,
            end_proof: nodes_from_proto(proof.end_proof)?,
            key_changes: proof
                .key_changes
                .into_iter()
                .map(KeyChange::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<ChangeOrRangeProof> for pb::SyncGetChangeProofResponse {
    fn from(proof: ChangeOrRangeProof) -> Self {
        use pb::sync_get_change_proof_response::Response;
        let response = match proof {
            ChangeOrRangeProof::Change(proof) => Response::ChangeProof(proof.into()),
            ChangeOrRangeProof::Range(proof) => Response::RangeProof(proof.into()),
        };
        pb::SyncGetChangeProofResponse {
            response: Some(response),
        }
    }
}

impl TryFrom<pb::SyncGetChangeProofResponse> for ChangeOrRangeProof {
    type Error = ConvertError;

    fn try_from(response: pb::SyncGetChangeProofResponse) -> Result<Self, Self::Error> {
        use pb::sync_get_change_proof_response::Response;
        match response.response {
            Some(Response::ChangeProof(proof)) => Ok(ChangeOrRangeProof::Change(proof.try_into()?)),
            Some(Response::RangeProof(proof)) => Ok(ChangeOrRangeProof::Range(proof.try_into()?)),
            None => Err(ConvertError::EmptyChangeProofResponse),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

impl From<RangeProofRequest> for pb::SyncGetRangeProofRequest {
    fn from(request: RangeProofRequest) -> Self {
        pb::SyncGetRangeProofRequest {
            root_hash: request.root.0.to_vec(),
            start_key: Some(maybe_to_proto(request.start)),
            end_key: Some(maybe_to_proto(request.end)),
            key_limit: request.key_limit,
            bytes_limit: request.bytes_limit,
        }
    }
}

impl TryFrom<pb::SyncGetRangeProofRequest> for RangeProofRequest {
    type Error = ConvertError;

    fn try_from(request: pb::SyncGetRangeProofRequest) -> Result<Self, Self::Error> {
        let root = hash_from_proto(&request.root_hash, "root_hash")?;
        let start = bound_from_proto(request.start_key, "start_key")?;
        let end = bound_from_proto(request.end_key, "end_key")?;
        check_bounds(start.as_deref(), end.as_deref())?;
        check_limits(request.key_limit, request.bytes_limit)?;
        Ok(RangeProofRequest {
            root,
            start,
            end,
            key_limit: request.key_limit,
            bytes_limit: request.bytes_limit,
        })
    }
}

impl From<ChangeProofRequest> for pb::SyncGetChangeProofRequest {
    fn from(request: ChangeProofRequest) -> Self {
        pb::SyncGetChangeProofRequest {
            start_root_hash: request.start_root.0.to_vec(),
            end_root_hash: request.end_root.0.to_vec(),
            start_key: Some(maybe_to_proto(request.start)),
            end_key: Some(maybe_to_proto(request.end)),
            key_limit: request.key_limit,
            bytes_limit: request.bytes_limit,
        }
    }
}

impl TryFrom<pb::SyncGetChangeProofRequest> for ChangeProofRequest {
    type Error = ConvertError;

    fn try_from(request: pb::SyncGetChangeProofRequest) -> Result<Self, Self::Error> {
        let start_root = hash_from_proto(&request.start_root_hash, "start_root_hash")?;
        let end_root = hash_from_proto(&request.end_root_hash, "end_root_hash")?;
        let start = bound_from_proto(request.start_key, "start_key")?;
        let end = bound_from_proto(request.end_key, "end_key")?;
        check_bounds(start.as_deref(), end.as_deref())?;
        check_limits(request.key_limit, request.bytes_limit)?;
        Ok(ChangeProofRequest {
            start_root,
            end_root,
            start,
            end,
            key_limit: request.key_limit,
            bytes_limit: request.bytes_limit,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Node diffs (Arbor's own)
// ---------------------------------------------------------------------------------------------

fn child_index(index: u32) -> Result<u8, ConvertError> {
    u8::try_from(index).map_err(|_| ConvertError::ChildIndexTooLarge { index })
}

/// Child indices must be strictly ascending.
fn check_ascending(indices: impl Iterator<Item = u8>) -> Result<(), ConvertError> {
    let mut last = None;
    for index in indices {
        if last.is_some_and(|l| l >= index) {
            return Err(ConvertError::UnorderedChildren);
        }
        last = Some(index);
    }
    Ok(())
}

impl From<NodeQuery> for pb::NodeQuery {
    fn from(query: NodeQuery) -> Self {
        pb::NodeQuery {
            path: query.path.map(pb::Key::from),
            local: query
                .local
                .into_iter()
                .map(|(index, id)| pb::ChildId {
                    index: u32::from(index),
                    id: id.0.to_vec(),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::NodeQuery> for NodeQuery {
    type Error = ConvertError;

    fn try_from(query: pb::NodeQuery) -> Result<Self, Self::Error> {
        let path = query.path.map(Key::try_from).transpose()?;
        let local = query
            .local
            .into_iter()
            .map(|child| {
                let index = child_index(child.index)?;
                let id = Hash::from_slice(&child.id).ok_or(ConvertError::InvalidChildId {
                    index,
                    len: child.id.len(),
                })?;
                Ok((index, id))
            })
            .collect::<Result<Vec<_>, ConvertError>>()?;
        check_ascending(local.iter().map(|(i, _)| *i))?;
        Ok(NodeQuery { path, local })
    }
}

impl From<NodeDiffRequest> for pb::NodeDiffRequest {
    fn from(request: NodeDiffRequest) -> Self {
        pb::NodeDiffRequest {
            root_hash: request.root.0.to_vec(),
            queries: request
                .queries
                .into_iter()
                .map(pb::NodeQuery::from)
                .collect(),
            bytes_limit: request.bytes_limit,
        }
    }
}

impl TryFrom<pb::NodeDiffRequest> for NodeDiffRequest {
    type Error = ConvertError;

    fn try_from(request: pb::NodeDiffRequest) -> Result<Self, Self::Error> {
        let root = hash_from_proto(&request.root_hash, "root_hash")?;
        if request.bytes_limit == 0 {
            return Err(ConvertError::ZeroBytesLimit);
        }
        if request.queries.is_empty() {
            return Err(ConvertError::NoQueries);
        }
        let queries = request
            .queries
            .into_iter()
            .map(NodeQuery::try_from)
            .collect::<Result<_, _>>()?;
        Ok(NodeDiffRequest {
            root,
            queries,
            bytes_limit: request.bytes_limit,
        })
    }
}

impl From<NodeDiff> for pb::NodeDiff {
    fn from(diff: NodeDiff) -> Self {
        use pb::child_diff::Change;
        pb::NodeDiff {
            key: Some(diff.key.into()),
            value: Some(maybe_to_proto(diff.value)),
            children: diff
                .children
                .into_iter()
                .map(|child| {
                    let (tail, change) = match child.change {
                        ChildChange::Absent => (None, Change::Absent(true)),
                        ChildChange::Leaf { tail, value } => {
                            (Some(tail.into()), Change::LeafValue(value))
                        }
                        ChildChange::Node { tail, id } => {
                            (Some(tail.into()), Change::NodeId(id.0.to_vec()))
                        }
                    };
                    pb::ChildDiff {
                        index: u32::from(child.index),
                        tail,
                        change: Some(change),
                    }
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::NodeDiff> for NodeDiff {
    type Error = ConvertError;

    fn try_from(diff: pb::NodeDiff) -> Result<Self, Self::Error> {
        use pb::child_diff::Change;
        let key = Key::try_from(diff.key.ok_or(ConvertError::MissingKey)?)?;
        let value = match diff.value {
            None => None,
            Some(maybe) => maybe_from_proto(maybe, "NodeDiff.value")?,
        };
        let children = diff
            .children
            .into_iter()
            .map(|child| {
                let index = child_index(child.index)?;
                let incomplete = ConvertError::IncompleteChildDiff { index };
                let change = match child.change.ok_or(incomplete.clone())? {
                    Change::Absent(_) => ChildChange::Absent,
                    Change::LeafValue(value) => ChildChange::Leaf {
                        tail: Key::try_from(child.tail.ok_or(incomplete)?)?,
                        value,
                    },
                    Change::NodeId(id) => ChildChange::Node {
                        tail: Key::try_from(child.tail.ok_or(incomplete)?)?,
                        id: Hash::from_slice(&id).ok_or(ConvertError::InvalidChildId {
                            index,
                            len: id.len(),
                        })?,
                    },
                };
                Ok(ChildDiff { index, change })
            })
            .collect::<Result<Vec<_>, ConvertError>>()?;
        check_ascending(children.iter().map(|c| c.index))?;
        Ok(NodeDiff {
            key,
            value,
            children,
        })
    }
}

impl From<Vec<NodeDiff>> for pb::NodeDiffResponse {
    fn from(nodes: Vec<NodeDiff>) -> Self {
        pb::NodeDiffResponse {
            nodes: nodes.into_iter().map(pb::NodeDiff::from).collect(),
        }
    }
}

impl TryFrom<pb::NodeDiffResponse> for Vec<NodeDiff> {
    type Error = ConvertError;

    fn try_from(response: pb::NodeDiffResponse) -> Result<Self, Self::Error> {
        response.nodes.into_iter().map(NodeDiff::try_from).collect()
    }
}

impl From<SyncRequest> for pb::Request {
    fn from(request: SyncRequest) -> Self {
        use pb::request::Message;
        let message = match request {
            SyncRequest::Range(request) => Message::RangeProofRequest(request.into()),
            SyncRequest::Change(request) => Message::ChangeProofRequest(request.into()),
            SyncRequest::NodeDiff(request) => Message::NodeDiffRequest(request.into()),
        };
        pb::Request {
            message: Some(message),
        }
    }
}

impl TryFrom<pb::Request> for SyncRequest {
    type Error = ConvertError;

    fn try_from(request: pb::Request) -> Result<Self, Self::Error> {
        use pb::request::Message;
        match request.message {
            Some(Message::RangeProofRequest(request)) => {
                Ok(SyncRequest::Range(request.try_into()?))
            }
            Some(Message::ChangeProofRequest(request)) => {
                Ok(SyncRequest::Change(request.try_into()?))
            }
            Some(Message::NodeDiffRequest(request)) => {
                Ok(SyncRequest::NodeDiff(request.try_into()?))
            }
            None => Err(ConvertError::EmptyRequest),
        }
    }
}
