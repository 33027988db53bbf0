//! The client side of the `bytes in → bytes out` protocol, symmetric to
//! [`handle_request_bytes`](crate::handle_request_bytes): encode a request for a peer, decode the
//! peer's answer into a proof ready to verify, and carry a refusal as a code and a message.
//!
//! The bytes are AvalancheGo v1.11's: a request is a `sync.Request`; a range answer is a
//! `sync.RangeProof`, a change answer a `sync.SyncGetChangeProofResponse`. An application that
//! carries them over its own network (AvalancheGo's `AppRequest`/`AppResponse`, say) implements
//! [`Network`](crate::Network) and syncs with a [`NetworkClient`](crate::NetworkClient).
//!
//! ## Dialects
//! Arbor speaks the v1.11 dialect, which AvalancheGo's `x/sync` uses up to v1.13. AvalancheGo
//! v1.14 moved sync to `database/merkle/sync` with a dialect of its own: requests are a
//! `sync.ProofRequest` whose oneof numbers change and range requests the other way round, answers
//! a `sync.ProofResponse` holding the proof as bytes, and `MaybeBytes` loses `is_nothing`. The
//! two cannot be told apart from one message in every case, and a v1.11 "nothing" read by v1.14
//! code is an empty value, so Arbor does not guess: a v1.14+ request is refused with
//! [`ServeError::NewerDialect`], which names both dialects (every valid v1.14+ request fails to
//! decode as v1.11: its key limit lands on a field of another wire type, or reads as zero).
//! v1.14+ servers likewise refuse v1.11 requests. `go/interop/v115` checks both against
//! AvalancheGo v1.15.0's own code.

use arbor_merkledb::{ChangeOrRangeProof, NodeDiff, ProofError, RangeProof};
use prost::Message;

use crate::{
    client::{ClientError, StatusKind},
    pb,
    request::SyncRequest,
    serve::ServeError,
};

/// Encodes `request` as a v1.11 `sync.Request`.
pub fn encode_request(request: &SyncRequest) -> Vec<u8> {
    pb::Request::from(request.clone()).encode_to_vec()
}

/// Decodes a v1.11 `sync.Request` (what [`handle_request_bytes`](crate::handle_request_bytes)
/// does first).
pub fn decode_request(bytes: &[u8]) -> Result<SyncRequest, ServeError> {
    Ok(SyncRequest::try_from(pb::Request::decode(bytes)?)?)
}

/// Decodes the answer to a range-proof request. The proof is **not verified**: check it with
/// [`verify_range_proof`](arbor_merkledb::verify_range_proof) against the root you trust.
pub fn decode_range_answer(bytes: &[u8]) -> Result<RangeProof, ClientError> {
    Ok(RangeProof::try_from(pb::RangeProof::decode(bytes)?)?)
}

/// Decodes the answer to a change-proof request: a change proof, or the range proof a server
/// sends when it no longer holds the start root. **Not verified.**
pub fn decode_change_answer(bytes: &[u8]) -> Result<ChangeOrRangeProof, ClientError> {
    Ok(ChangeOrRangeProof::try_from(
        pb::SyncGetChangeProofResponse::decode(bytes)?,
    )?)
}

/// Decodes a `NodeDiffResponse`, the answer to a node-diff request. **Not verified.**
pub fn decode_node_diff_answer(bytes: &[u8]) -> Result<Vec<NodeDiff>, ClientError> {
    Ok(Vec::<NodeDiff>::try_from(pb::NodeDiffResponse::decode(
        bytes,
    )?)?)
}

/// Decodes the answer to a proof request, whichever kind it is (a node-diff request's answer
/// is not a proof: [`decode_node_diff_answer`]). **Not verified.**
pub fn decode_answer(
    request: &SyncRequest,
    bytes: &[u8],
) -> Result<ChangeOrRangeProof, ClientError> {
    match request {
        SyncRequest::Range(_) => decode_range_answer(bytes).map(ChangeOrRangeProof::Range),
        SyncRequest::Change(_) => decode_change_answer(bytes),
        SyncRequest::NodeDiff(_) => Err(ClientError::Malformed(
            "a node-diff answer is not a proof".into(),
        )),
    }
}

/// AvalancheGo v1.14+'s `sync.ProofRequest`: the same request messages as v1.11 (their
/// `MaybeBytes` has no `is_nothing`, which decodes as `false`) under other oneof numbers.
#[derive(Clone, PartialEq, prost::Message)]
struct NewerProofRequest {
    #[prost(oneof = "NewerRequest", tags = "1, 2")]
    request: Option<NewerRequest>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum NewerRequest {
    #[prost(message, tag = "1")]
    ChangeProof(pb::SyncGetChangeProofRequest),
    #[prost(message, tag = "2")]
    RangeProof(pb::SyncGetRangeProofRequest),
}

/// Whether `bytes` are a well-formed request of AvalancheGo v1.14+'s dialect.
pub(crate) fn is_newer_dialect_request(bytes: &[u8]) -> bool {
    match NewerProofRequest::decode(bytes).map(|r| r.request) {
        Ok(Some(NewerRequest::ChangeProof(request))) => {
            crate::request::ChangeProofRequest::try_from(request).is_ok()
        }
        Ok(Some(NewerRequest::RangeProof(request))) => {
            crate::request::RangeProofRequest::try_from(request).is_ok()
        }
        _ => false,
    }
}

impl ServeError {
    /// The kind of refusal to send back in place of an answer, with `to_string()` as its message;
    /// the client side turns the pair back into an error with [`ClientError::refused`].
    pub fn kind(&self) -> StatusKind {
        match self {
            ServeError::Malformed(_)
            | ServeError::Undecodable(_)
            | ServeError::NewerDialect
            | ServeError::EmptyRoot => StatusKind::InvalidArgument,
            ServeError::Unservable(ProofError::EmptyProof) | ServeError::ProofTooLarge { .. } => {
                StatusKind::FailedPrecondition
            }
            ServeError::Unservable(_) => StatusKind::InvalidArgument,
            ServeError::RootNotHeld { .. } => StatusKind::NotFound,
            ServeError::Contended => StatusKind::Unavailable,
            ServeError::Db(_) => StatusKind::Other,
        }
    }
}

impl ClientError {
    /// The error for a peer's refusal of `kind` with `message` (a transport error when the peer
    /// is merely unavailable, so it is retried like one).
    pub fn refused(kind: StatusKind, message: impl Into<String>) -> Self {
        let message = message.into();
        match kind {
            StatusKind::Unavailable => ClientError::Transport(message),
            kind => ClientError::Status { kind, message },
        }
    }
}

impl StatusKind {
    /// A stable numeric code for carrying the kind over a byte network (the gRPC code numbers).
    pub fn code(self) -> u32 {
        match self {
            StatusKind::InvalidArgument => 3,
            StatusKind::NotFound => 5,
            StatusKind::ResourceExhausted => 8,
            StatusKind::FailedPrecondition => 9,
            StatusKind::Unavailable => 14,
            StatusKind::Unimplemented => 12,
            StatusKind::Other => 2,
        }
    }

    /// The kind for a numeric code from [`StatusKind::code`]; unknown codes are
    /// [`StatusKind::Other`].
    pub fn from_code(code: u32) -> Self {
        match code {
            3 => StatusKind::InvalidArgument,
            5 => StatusKind::NotFound,
            8 => StatusKind::ResourceExhausted,
            9 => StatusKind::FailedPrecondition,
            1 | 4 | 14 => StatusKind::Unavailable,
            12 => StatusKind::Unimplemented,
            _ => StatusKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use arbor_merkledb::{Config, Db, Hash, verify_range_proof};

    use super::*;
    use crate::{Limits, RangeProofRequest, handle_request_bytes};

    #[test]
    fn a_round_trip_through_bytes_verifies() {
        let db = Db::open_memory(Config::default()).expect("open");
        let ops = (0u8..50)
            .map(|i| (vec![i], Some(vec![i; 3])))
            .collect::<Vec<_>>();
        db.propose(ops).expect("propose").commit().expect("commit");
        let root = db.root().expect("root");
        let request = SyncRequest::Range(RangeProofRequest {
            root,
            start: Some(vec![10]),
            end: Some(vec![20]),
            key_limit: 100,
            bytes_limit: 1 << 20,
        });
        let bytes = encode_request(&request);
        assert_eq!(decode_request(&bytes).expect("decodes"), request);
        let answer = handle_request_bytes(&db, &bytes, &Limits::default()).expect("served");
        let ChangeOrRangeProof::Range(proof) = decode_answer(&request, &answer).expect("decodes")
        else {
            panic!("a range request has a range answer");
        };
        assert_eq!(proof.key_values.len(), 11);
        verify_range_proof(
            &proof,
            Some(&[10]),
            Some(&[20]),
            root,
            100,
            db.branch_factor(),
        )
        .expect("verifies");
        assert!(
            verify_range_proof(
                &proof,
                Some(&[10]),
                Some(&[20]),
                Hash([1; 32]),
                100,
                db.branch_factor()
            )
            .is_err()
        );
    }

    /// A v1.14+ request, built here as v1.14 encodes it (the same inner messages under swapped
    /// oneof numbers), is refused by name; `go/interop/v115` checks it with AvalancheGo's code.
    #[test]
    fn newer_dialect_requests_are_refused_by_name() {
        let db = Db::open_memory(Config::default()).expect("open");
        let mut roots = Vec::new();
        for i in 0u8..2 {
            db.propose([(vec![i], Some(vec![i]))])
                .expect("propose")
                .commit()
                .expect("commit");
            roots.push(db.root().expect("root"));
        }
        let (start_root, root) = (roots[0], roots[1]);
        let range = RangeProofRequest {
            root,
            start: None,
            end: None,
            key_limit: 10,
            bytes_limit: 1 << 20,
        };
        let change = crate::ChangeProofRequest {
            start_root,
            end_root: root,
            start: None,
            end: None,
            key_limit: 10,
            bytes_limit: 1 << 20,
        };
        for newer in [
            NewerRequest::RangeProof(range.clone().into()),
            NewerRequest::ChangeProof(change.clone().into()),
        ] {
            let bytes = NewerProofRequest {
                request: Some(newer),
            }
            .encode_to_vec();
            let error = handle_request_bytes(&db, &bytes, &Limits::default()).expect_err("refused");
            assert!(matches!(error, ServeError::NewerDialect), "{error}");
            assert!(error.to_string().contains("v1.14"));
        }
        // The v1.11 requests themselves are served.
        for request in [SyncRequest::Range(range), SyncRequest::Change(change)] {
            handle_request_bytes(&db, &encode_request(&request), &Limits::default())
                .expect("served");
        }
    }

    #[test]
    fn refusals_keep_their_kind() {
        let db = Db::open_memory(Config::default()).expect("open");
        let error =
            handle_request_bytes(&db, b"\xff\xff", &Limits::default()).expect_err("garbage");
        assert_eq!(error.kind(), StatusKind::InvalidArgument);
        let back = ClientError::refused(
            StatusKind::from_code(error.kind().code()),
            error.to_string(),
        );
        assert!(matches!(
            back,
            ClientError::Status {
                kind: StatusKind::InvalidArgument,
                ..
            }
        ));
        assert!(matches!(
            ClientError::refused(StatusKind::Unavailable, "busy"),
            ClientError::Transport(_)
        ));
        for kind in [
            StatusKind::InvalidArgument,
            StatusKind::NotFound,
            StatusKind::ResourceExhausted,
            StatusKind::FailedPrecondition,
            StatusKind::Unavailable,
            StatusKind::Other,
        ] {
            assert_eq!(StatusKind::from_code(kind.code()), kind);
        }
    }
}
