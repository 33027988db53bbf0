//! Tests of the proto ⇄ domain conversion: round trips through prost encoding, one rejection test
//! per [`ConvertError`] variant, and fuzzing with arbitrary and mutated bytes.

use std::collections::BTreeMap;

use arbor_merkledb::{
    ChangeOrRangeProof, ChangeProof, Hash, Key, KeyChange, KeyValue, Proof, ProofNode, RangeProof,
    ValueDigest,
};
use proptest::{collection::vec, option, prelude::*};
use prost::Message;

use super::{ChangeProofRequest, ConvertError, RangeProofRequest, SyncRequest};
use crate::pb;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Domain → proto → bytes → proto → domain.
fn round_trip<D, P>(domain: D) -> D
where
    P: From<D> + Message + Default,
    D: TryFrom<P, Error = ConvertError>,
{
    let bytes = P::from(domain).encode_to_vec();
    let decoded = P::decode(bytes.as_slice()).expect("prost decodes its own encoding");
    D::try_from(decoded).expect("a well-formed message converts")
}

fn some(value: &[u8]) -> Option<pb::MaybeBytes> {
    Some(pb::MaybeBytes {
        value: value.to_vec(),
        is_nothing: false,
    })
}

fn nothing() -> Option<pb::MaybeBytes> {
    Some(pb::MaybeBytes {
        value: Vec::new(),
        is_nothing: true,
    })
}

fn bad_maybe() -> Option<pb::MaybeBytes> {
    Some(pb::MaybeBytes {
        value: vec![1],
        is_nothing: true,
    })
}

/// A well-formed proto proof node: key `0xab` (8 bits), a 3-byte value, one child.
fn good_node() -> pb::ProofNode {
    pb::ProofNode {
        key: Some(pb::Key {
            length: 8,
            value: vec![0xab],
        }),
        value_or_hash: some(b"abc"),
        children: BTreeMap::from([(3, vec![7; 32])]),
    }
}

fn good_range_request() -> pb::SyncGetRangeProofRequest {
    pb::SyncGetRangeProofRequest {
        root_hash: vec![1; 32],
        start_key: some(b"a"),
        end_key: some(b"b"),
        key_limit: 10,
        bytes_limit: 1000,
    }
}

fn good_change_request() -> pb::SyncGetChangeProofRequest {
    pb::SyncGetChangeProofRequest {
        start_root_hash: vec![1; 32],
        end_root_hash: vec![2; 32],
        start_key: some(b"a"),
        end_key: some(b"b"),
        key_limit: 10,
        bytes_limit: 1000,
    }
}

fn node_err(node: pb::ProofNode) -> ConvertError {
    ProofNode::try_from(node).expect_err("malformed node is rejected")
}

fn range_err(request: pb::SyncGetRangeProofRequest) -> ConvertError {
    RangeProofRequest::try_from(request).expect_err("malformed request is rejected")
}

fn change_err(request: pb::SyncGetChangeProofRequest) -> ConvertError {
    ChangeProofRequest::try_from(request).expect_err("malformed request is rejected")
}

// ---------------------------------------------------------------------------------------------
// Well-formed inputs
// ---------------------------------------------------------------------------------------------

#[test]
fn good_fixtures_convert() {
    let node = ProofNode::try_from(good_node()).expect("good node");
    assert_eq!(node.key, Key::from_bytes(&[0xab]));
    assert_eq!(node.value_or_hash, Some(ValueDigest::of(b"abc")));
    assert_eq!(node.children, BTreeMap::from([(3u8, Hash([7; 32]))]));
    RangeProofRequest::try_from(good_range_request()).expect("good range request");
    ChangeProofRequest::try_from(good_change_request()).expect("good change request");
}

#[test]
fn nothing_maybes_are_always_populated() {
    let node = ProofNode {
        key: Key::empty(),
        value_or_hash: None,
        children: BTreeMap::new(),
    };
    let proto = pb::ProofNode::from(node);
    assert_eq!(proto.value_or_hash, nothing());
    assert_eq!(
        proto.key,
        Some(pb::Key {
            length: 0,
            value: vec![]
        })
    );
    let change = pb::KeyChange::from(KeyChange {
        key: b"k".to_vec(),
        value: None,
    });
    assert_eq!(change.value, nothing());
    let change = pb::KeyChange::from(KeyChange {
        key: b"k".to_vec(),
        value: Some(vec![]),
    });
    assert_eq!(change.value, some(b""));
    let proof = pb::Proof::from(Proof {
        key: b"k".to_vec(),
        value: None,
        path: vec![],
    });
    assert_eq!(proof.value, nothing());
    let request = pb::SyncGetRangeProofRequest::from(RangeProofRequest {
        root: Hash([1; 32]),
        start: None,
        end: None,
        key_limit: 1,
        bytes_limit: 1,
    });
    assert_eq!(request.start_key, nothing());
    assert_eq!(request.end_key, nothing());
}

#[test]
fn key_is_bits_and_padded_bytes() {
    // 12 bits: 0xab, 0xc0.
    let key = Key::from_bits(&[0xab, 0xcd], 12).expect("12 bits fit in 2 bytes");
    let proto = pb::Key::from(&key);
    assert_eq!(proto.length, 12);
    assert_eq!(hex::encode(&proto.value), "abc0");
    assert_eq!(pb::Key::from(key.clone()), proto);
    assert_eq!(Key::try_from(proto).expect("valid key"), key);
}

#[test]
fn key_padding_bits_are_masked_not_rejected() {
    let proto = pb::Key {
        length: 12,
        value: vec![0xab, 0xcd],
    };
    let key = Key::try_from(proto).expect("padding bits are masked");
    assert_eq!(key.bit_len(), 12);
    assert_eq!(hex::encode(key.as_bytes()), "abc0");
}

#[test]
fn absent_and_nothing_bounds_are_unbounded_and_empty_some_is_a_bound() {
    let mut request = good_range_request();
    request.start_key = None;
    request.end_key = nothing();
    let request = RangeProofRequest::try_from(request).expect("unbounded request");
    assert_eq!(request.start, None);
    assert_eq!(request.end, None);

    let mut request = good_range_request();
    request.start_key = some(b"");
    let request = RangeProofRequest::try_from(request).expect("empty start key");
    assert_eq!(request.start, Some(vec![]));
}

#[test]
fn equal_bounds_are_allowed_because_inclusive() {
    let mut request = good_range_request();
    request.start_key = some(b"k");
    request.end_key = some(b"k");
    RangeProofRequest::try_from(request).expect("start == end");
    let mut request = good_change_request();
    request.start_key = some(b"k");
    request.end_key = some(b"k");
    ChangeProofRequest::try_from(request).expect("start == end");
}

#[test]
fn nothing_value_or_hash_is_no_value() {
    let mut node = good_node();
    node.value_or_hash = nothing();
    assert_eq!(
        ProofNode::try_from(node).expect("valid").value_or_hash,
        None
    );
}

// ---------------------------------------------------------------------------------------------
// One test per ConvertError variant
// ---------------------------------------------------------------------------------------------

#[test]
fn rejects_missing_key() {
    let mut node = good_node();
    node.key = None;
    assert_eq!(node_err(node), ConvertError::MissingKey);
}

#[test]
fn rejects_invalid_key_length() {
    for (length, value) in [(8, vec![]), (8, vec![1, 2]), (9, vec![1]), (0, vec![0])] {
        let mut node = good_node();
        node.key = Some(pb::Key {
            length,
            value: value.clone(),
        });
        assert_eq!(
            node_err(node),
            ConvertError::InvalidKeyLength {
                bit_len: length,
                byte_len: value.len()
            }
        );
    }
}

#[test]
fn rejects_huge_key_length_without_allocating() {
    for length in [u64::MAX, i64::MAX as u64, u64::MAX - 7, 1 << 40] {
        for value in [vec![], vec![0xff; 3]] {
            let key = pb::Key {
                length,
                value: value.clone(),
            };
            let expected = ConvertError::InvalidKeyLength {
                bit_len: length,
                byte_len: value.len(),
            };
            assert_eq!(Key::try_from(key.clone()), Err(expected.clone()));
            // Also through the wire, inside a proof node of a range proof.
            let mut node = good_node();
            node.key = Some(key);
            let bytes = pb::RangeProof {
                start_proof: vec![],
                end_proof: vec![node],
                key_values: vec![],
            }
            .encode_to_vec();
            let decoded = pb::RangeProof::decode(bytes.as_slice()).expect("valid protobuf");
            assert_eq!(RangeProof::try_from(decoded), Err(expected));
        }
    }
}

#[test]
fn rejects_nil_value_or_hash() {
    let mut node = good_node();
    node.value_or_hash = None;
    assert_eq!(node_err(node), ConvertError::NilValueOrHash);
}

#[test]
fn rejects_invalid_maybe() {
    let mut node = good_node();
    node.value_or_hash = bad_maybe();
    assert_eq!(
        node_err(node),
        ConvertError::InvalidMaybe {
            field: "ProofNode.value_or_hash"
        }
    );
    let change = pb::KeyChange {
        key: b"k".to_vec(),
        value: bad_maybe(),
    };
    assert_eq!(
        KeyChange::try_from(change),
        Err(ConvertError::InvalidMaybe {
            field: "KeyChange.value"
        })
    );
    let proof = pb::Proof {
        key: b"k".to_vec(),
        value: bad_maybe(),
        proof: vec![],
    };
    assert_eq!(
        Proof::try_from(proof),
        Err(ConvertError::InvalidMaybe {
            field: "Proof.value"
        })
    );
}

#[test]
fn rejects_value_digest_too_long() {
    let mut node = good_node();
    node.value_or_hash = some(&[5; 32]);
    ProofNode::try_from(node.clone()).expect("32 bytes is a hash digest");
    node.value_or_hash = some(&[5; 33]);
    assert_eq!(node_err(node), ConvertError::ValueDigestTooLong { len: 33 });
}

#[test]
fn rejects_child_index_too_large() {
    let mut node = good_node();
    node.children.insert(255, vec![0; 32]);
    ProofNode::try_from(node.clone()).expect("255 is a valid index");
    node.children.insert(256, vec![0; 32]);
    assert_eq!(
        node_err(node),
        ConvertError::ChildIndexTooLarge { index: 256 }
    );
    let mut node = good_node();
    node.children.insert(u32::MAX, vec![0; 32]);
    assert_eq!(
        node_err(node),
        ConvertError::ChildIndexTooLarge { index: u32::MAX }
    );
}

#[test]
fn rejects_invalid_child_id() {
    for len in [0, 31, 33] {
        let mut node = good_node();
        node.children.insert(9, vec![0; len]);
        assert_eq!(
            node_err(node),
            ConvertError::InvalidChildId { index: 9, len }
        );
    }
}

#[test]
fn child_errors_are_reported_in_index_order() {
    let mut node = good_node();
    node.children.insert(1, vec![0; 5]);
    node.children.insert(300, vec![0; 32]);
    node.children.insert(2, vec![0; 6]);
    assert_eq!(
        node_err(node),
        ConvertError::InvalidChildId { index: 1, len: 5 }
    );
}

#[test]
fn rejects_nil_key_change_value() {
    let change = pb::KeyChange {
        key: b"k".to_vec(),
        value: None,
    };
    assert_eq!(
        KeyChange::try_from(change.clone()),
        Err(ConvertError::NilKeyChangeValue)
    );
    let proof = pb::ChangeProof {
        start_proof: vec![],
        end_proof: vec![],
        key_changes: vec![change],
    };
    assert_eq!(
        ChangeProof::try_from(proof),
        Err(ConvertError::NilKeyChangeValue)
    );
}

#[test]
fn rejects_nil_proof_value() {
    let proof = pb::Proof {
        key: b"k".to_vec(),
        value: None,
        proof: vec![good_node()],
    };
    assert_eq!(Proof::try_from(proof), Err(ConvertError::NilProofValue));
}

#[test]
fn rejects_invalid_root_hash() {
    for len in [0, 31, 33] {
        let mut request = good_range_request();
        request.root_hash = vec![0; len];
        assert_eq!(
            range_err(request),
            ConvertError::InvalidRootHash {
                field: "root_hash",
                len
            }
        );
        let mut request = good_change_request();
        request.start_root_hash = vec![0; len];
        assert_eq!(
            change_err(request),
            ConvertError::InvalidRootHash {
                field: "start_root_hash",
                len
            }
        );
        let mut request = good_change_request();
        request.end_root_hash = vec![0; len];
        assert_eq!(
            change_err(request),
            ConvertError::InvalidRootHash {
                field: "end_root_hash",
                len
            }
        );
    }
}

#[test]
fn rejects_invalid_bound() {
    let mut request = good_range_request();
    request.start_key = bad_maybe();
    assert_eq!(
        range_err(request),
        ConvertError::InvalidBound { field: "start_key" }
    );
    let mut request = good_range_request();
    request.end_key = bad_maybe();
    assert_eq!(
        range_err(request),
        ConvertError::InvalidBound { field: "end_key" }
    );
    let mut request = good_change_request();
    request.start_key = bad_maybe();
    assert_eq!(
        change_err(request),
        ConvertError::InvalidBound { field: "start_key" }
    );
    let mut request = good_change_request();
    request.end_key = bad_maybe();
    assert_eq!(
        change_err(request),
        ConvertError::InvalidBound { field: "end_key" }
    );
}

#[test]
fn rejects_start_after_end() {
    let mut request = good_range_request();
    request.start_key = some(b"b");
    request.end_key = some(b"a");
    assert_eq!(range_err(request), ConvertError::StartAfterEnd);
    let mut request = good_change_request();
    request.start_key = some(b"ab");
    request.end_key = some(b"a");
    assert_eq!(change_err(request), ConvertError::StartAfterEnd);
    // An empty end key is the smallest key: every non-empty start is after it.
    let mut request = good_range_request();
    request.start_key = some(b"\x00");
    request.end_key = some(b"");
    assert_eq!(range_err(request), ConvertError::StartAfterEnd);
}

#[test]
fn rejects_zero_key_limit() {
    let mut request = good_range_request();
    request.key_limit = 0;
    assert_eq!(range_err(request), ConvertError::ZeroKeyLimit);
    let mut request = good_change_request();
    request.key_limit = 0;
    assert_eq!(change_err(request), ConvertError::ZeroKeyLimit);
}

#[test]
fn rejects_zero_bytes_limit() {
    let mut request = good_range_request();
    request.bytes_limit = 0;
    assert_eq!(range_err(request), ConvertError::ZeroBytesLimit);
    let mut request = good_change_request();
    request.bytes_limit = 0;
    assert_eq!(change_err(request), ConvertError::ZeroBytesLimit);
}

#[test]
fn rejects_empty_change_proof_response() {
    let response = pb::SyncGetChangeProofResponse { response: None };
    assert_eq!(
        ChangeOrRangeProof::try_from(response),
        Err(ConvertError::EmptyChangeProofResponse)
    );
    // The empty message on the wire is zero bytes.
    let decoded = pb::SyncGetChangeProofResponse::decode(&[][..]).expect("empty message");
    assert_eq!(
        ChangeOrRangeProof::try_from(decoded),
        Err(ConvertError::EmptyChangeProofResponse)
    );
}

#[test]
fn rejects_empty_request() {
    let decoded = pb::Request::decode(&[][..]).expect("empty message");
    assert_eq!(
        SyncRequest::try_from(decoded),
        Err(ConvertError::EmptyRequest)
    );
}

#[test]
fn wrapped_errors_propagate() {
    let mut node = good_node();
    node.key = None;
    let response = pb::SyncGetChangeProofResponse {
        response: Some(pb::sync_get_change_proof_response::Response::RangeProof(
            pb::RangeProof {
                start_proof: vec![good_node(), node],
                end_proof: vec![],
                key_values: vec![],
            },
        )),
    };
    assert_eq!(
        ChangeOrRangeProof::try_from(response),
        Err(ConvertError::MissingKey)
    );
    let mut request = good_change_request();
    request.key_limit = 0;
    let request = pb::Request {
        message: Some(pb::request::Message::ChangeProofRequest(request)),
    };
    assert_eq!(
        SyncRequest::try_from(request),
        Err(ConvertError::ZeroKeyLimit)
    );
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn arb_key() -> impl Strategy<Value = Key> {
    (0usize..=300)
        .prop_flat_map(|bits| (vec(any::<u8>(), bits.div_ceil(8)), Just(bits)))
        .prop_map(|(bytes, bits)| Key::from_bits(&bytes, bits).expect("sized to fit"))
}

fn arb_digest() -> impl Strategy<Value = ValueDigest> {
    vec(any::<u8>(), 0..=32)
        .prop_map(|bytes| ValueDigest::from_digest_bytes(&bytes).expect("at most 32 bytes"))
}

fn arb_hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..40)
}

fn arb_node() -> impl Strategy<Value = ProofNode> {
    (
        arb_key(),
        option::of(arb_digest()),
        proptest::collection::btree_map(any::<u8>(), arb_hash(), 0..20),
    )
        .prop_map(|(key, value_or_hash, children)| ProofNode {
            key,
            value_or_hash,
            children,
        })
}

fn arb_nodes() -> impl Strategy<Value = Vec<ProofNode>> {
    vec(arb_node(), 0..5)
}

fn arb_range_proof() -> impl Strategy<Value = RangeProof> {
    let kv = (arb_bytes(), arb_bytes()).prop_map(|(key, value)| KeyValue { key, value });
    (arb_nodes(), arb_nodes(), vec(kv, 0..10)).prop_map(|(start_proof, end_proof, key_values)| {
        RangeProof {
            start_proof,
            end_proof,
            key_values,
        }
    })
}

fn arb_change_proof() -> impl Strategy<Value = ChangeProof> {
    let change =
        (arb_bytes(), option::of(arb_bytes())).prop_map(|(key, value)| KeyChange { key, value });
    (arb_nodes(), arb_nodes(), vec(change, 0..10)).prop_map(
        |(start_proof, end_proof, key_changes)| ChangeProof {
            start_proof,
            end_proof,
            key_changes,
        },
    )
}

fn arb_proof() -> impl Strategy<Value = Proof> {
    (arb_bytes(), option::of(arb_bytes()), arb_nodes()).prop_map(|(key, value, path)| Proof {
        key,
        value,
        path,
    })
}

/// Ordered inclusive bounds: when both are set, `start <= end`.
fn arb_bounds() -> impl Strategy<Value = (Option<Vec<u8>>, Option<Vec<u8>>)> {
    (option::of(arb_bytes()), option::of(arb_bytes())).prop_map(|(a, b)| match (a, b) {
        (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
        bounds => bounds,
    })
}

fn arb_range_request() -> impl Strategy<Value = RangeProofRequest> {
    (arb_hash(), arb_bounds(), 1u32.., 1u32..).prop_map(
        |(root, (start, end), key_limit, bytes_limit)| RangeProofRequest {
            root,
            start,
            end,
            key_limit,
            bytes_limit,
        },
    )
}

fn arb_change_request() -> impl Strategy<Value = ChangeProofRequest> {
    (arb_hash(), arb_hash(), arb_bounds(), 1u32.., 1u32..).prop_map(
        |(start_root, end_root, (start, end), key_limit, bytes_limit)| ChangeProofRequest {
            start_root,
            end_root,
            start,
            end,
            key_limit,
            bytes_limit,
        },
    )
}

/// Decodes `bytes` as `P`; when prost accepts, converts and discards the result. Panics (failing
/// the property) only if the conversion panics.
fn convert_if_decodes<P, D>(bytes: &[u8])
where
    P: Message + Default,
    D: TryFrom<P, Error = ConvertError>,
{
    if let Ok(message) = P::decode(bytes) {
        let _ = D::try_from(message);
    }
}

/// Runs [`convert_if_decodes`] for every convertible message type.
fn convert_all_if_decode(bytes: &[u8]) {
    convert_if_decodes::<pb::RangeProof, RangeProof>(bytes);
    convert_if_decodes::<pb::ChangeProof, ChangeProof>(bytes);
    convert_if_decodes::<pb::SyncGetChangeProofResponse, ChangeOrRangeProof>(bytes);
    convert_if_decodes::<pb::Request, SyncRequest>(bytes);
    convert_if_decodes::<pb::Proof, Proof>(bytes);
    convert_if_decodes::<pb::SyncGetRangeProofRequest, RangeProofRequest>(bytes);
    convert_if_decodes::<pb::SyncGetChangeProofRequest, ChangeProofRequest>(bytes);
    convert_if_decodes::<pb::ProofNode, ProofNode>(bytes);
    convert_if_decodes::<pb::KeyChange, KeyChange>(bytes);
    convert_if_decodes::<pb::Key, Key>(bytes);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn proof_node_round_trips(node in arb_node()) {
        prop_assert_eq!(round_trip::<_, pb::ProofNode>(node.clone()), node);
    }

    #[test]
    fn key_round_trips(key in arb_key()) {
        prop_assert_eq!(round_trip::<_, pb::Key>(key.clone()), key);
    }

    #[test]
    fn range_proof_round_trips(proof in arb_range_proof()) {
        prop_assert_eq!(round_trip::<_, pb::RangeProof>(proof.clone()), proof);
    }

    #[test]
    fn change_proof_round_trips(proof in arb_change_proof()) {
        prop_assert_eq!(round_trip::<_, pb::ChangeProof>(proof.clone()), proof);
    }

    #[test]
    fn change_or_range_proof_round_trips(
        proof in prop_oneof![
            arb_change_proof().prop_map(ChangeOrRangeProof::Change),
            arb_range_proof().prop_map(ChangeOrRangeProof::Range),
        ]
    ) {
        prop_assert_eq!(round_trip::<_, pb::SyncGetChangeProofResponse>(proof.clone()), proof);
    }

    #[test]
    fn proof_round_trips(proof in arb_proof()) {
        prop_assert_eq!(round_trip::<_, pb::Proof>(proof.clone()), proof);
    }

    #[test]
    fn requests_round_trip(range in arb_range_request(), change in arb_change_request()) {
        prop_assert_eq!(round_trip::<_, pb::SyncGetRangeProofRequest>(range.clone()), range.clone());
        prop_assert_eq!(round_trip::<_, pb::SyncGetChangeProofRequest>(change.clone()), change.clone());
        let range = SyncRequest::Range(range);
        prop_assert_eq!(round_trip::<_, pb::Request>(range.clone()), range);
        let change = SyncRequest::Change(change);
        prop_assert_eq!(round_trip::<_, pb::Request>(change.clone()), change);
    }

    #[test]
    fn fuzz_arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2000)) {
        convert_all_if_decode(&bytes);
    }

    /// Valid encodings with a few bytes overwritten and a random truncation: these decode far more
    /// often than arbitrary bytes, so they reach the conversion's checks.
    #[test]
    fn fuzz_mutated_encodings_never_panic(
        proof in prop_oneof![
            arb_change_proof().prop_map(ChangeOrRangeProof::Change),
            arb_range_proof().prop_map(ChangeOrRangeProof::Range),
        ],
        request in arb_change_request(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let encodings = [
            pb::SyncGetChangeProofResponse::from(proof.clone()).encode_to_vec(),
            match proof {
                ChangeOrRangeProof::Change(p) => pb::ChangeProof::from(p).encode_to_vec(),
                ChangeOrRangeProof::Range(p) => pb::RangeProof::from(p).encode_to_vec(),
            },
            pb::Request::from(SyncRequest::Change(request)).encode_to_vec(),
        ];
        for mut bytes in encodings {
            if bytes.is_empty() {
                continue;
            }
            for (at, byte) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
            convert_all_if_decode(&bytes);
            let keep = cut.index(bytes.len() + 1);
            convert_all_if_decode(&bytes[..keep]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Node diffs
// ---------------------------------------------------------------------------------------------

fn good_node_diff_request() -> crate::request::NodeDiffRequest {
    crate::request::NodeDiffRequest {
        root: Hash([7; 32]),
        queries: vec![
            arbor_merkledb::NodeQuery {
                path: None,
                local: vec![],
            },
            arbor_merkledb::NodeQuery {
                path: Some(Key::from_bits(&[0xa0], 4).expect("key")),
                local: vec![(0, Hash([1; 32])), (9, Hash([2; 32]))],
            },
        ],
        bytes_limit: 1000,
    }
}

#[test]
fn node_diff_requests_and_answers_round_trip() {
    use arbor_merkledb::{ChildChange, ChildDiff, NodeDiff};
    let request = good_node_diff_request();
    assert_eq!(
        round_trip::<_, pb::NodeDiffRequest>(request.clone()),
        request
    );
    let wrapped = SyncRequest::NodeDiff(request);
    assert_eq!(round_trip::<_, pb::Request>(wrapped.clone()), wrapped);
    let diff = NodeDiff {
        key: Key::from_bits(&[0xa0], 4).expect("key"),
        value: None,
        children: vec![
            ChildDiff {
                index: 1,
                change: ChildChange::Absent,
            },
            ChildDiff {
                index: 2,
                change: ChildChange::Leaf {
                    tail: Key::from_bits(&[0x12, 0x30], 12).expect("key"),
                    value: vec![],
                },
            },
            ChildDiff {
                index: 15,
                change: ChildChange::Node {
                    tail: Key::from_bits(&[], 0).expect("key"),
                    id: Hash([3; 32]),
                },
            },
        ],
    };
    let with_value = NodeDiff {
        value: Some(vec![]),
        ..diff.clone()
    };
    for d in [diff, with_value] {
        let answer = vec![d];
        assert_eq!(
            round_trip::<_, pb::NodeDiffResponse>(answer.clone()),
            answer
        );
    }
}

#[test]
fn malformed_node_diff_messages_are_rejected_by_field() {
    let err = |r: pb::NodeDiffRequest| {
        crate::request::NodeDiffRequest::try_from(r).expect_err("malformed")
    };
    let good = pb::NodeDiffRequest::from(good_node_diff_request());
    let mut r = good.clone();
    r.root_hash.pop();
    assert!(matches!(err(r), ConvertError::InvalidRootHash { .. }));
    let mut r = good.clone();
    r.bytes_limit = 0;
    assert_eq!(err(r), ConvertError::ZeroBytesLimit);
    let mut r = good.clone();
    r.queries.clear();
    assert_eq!(err(r), ConvertError::NoQueries);
    let mut r = good.clone();
    r.queries[1].local.swap(0, 1);
    assert_eq!(err(r), ConvertError::UnorderedChildren);
    let mut r = good.clone();
    r.queries[1].local[0].index = 256;
    assert_eq!(err(r), ConvertError::ChildIndexTooLarge { index: 256 });
    let mut r = good.clone();
    r.queries[1].local[0].id.push(0);
    assert!(matches!(err(r), ConvertError::InvalidChildId { .. }));
    let mut r = good;
    r.queries[1].path = Some(pb::Key {
        length: 9,
        value: vec![1],
    });
    assert!(matches!(err(r), ConvertError::InvalidKeyLength { .. }));

    let answer_err = |d: pb::NodeDiff| {
        Vec::<arbor_merkledb::NodeDiff>::try_from(pb::NodeDiffResponse { nodes: vec![d] })
            .expect_err("malformed")
    };
    let child = |index, tail, change| pb::ChildDiff {
        index,
        tail,
        change,
    };
    let key = Some(pb::Key {
        length: 4,
        value: vec![0xa0],
    });
    use pb::child_diff::Change;
    let node = |children| pb::NodeDiff {
        key: key.clone(),
        value: nothing(),
        children,
    };
    assert_eq!(
        answer_err(pb::NodeDiff {
            key: None,
            ..node(vec![])
        }),
        ConvertError::MissingKey
    );
    assert_eq!(
        answer_err(node(vec![child(1, key.clone(), None)])),
        ConvertError::IncompleteChildDiff { index: 1 }
    );
    assert_eq!(
        answer_err(node(vec![child(1, None, Some(Change::LeafValue(vec![])))])),
        ConvertError::IncompleteChildDiff { index: 1 }
    );
    assert!(matches!(
        answer_err(node(vec![child(
            1,
            key.clone(),
            Some(Change::NodeId(vec![1; 31]))
        )])),
        ConvertError::InvalidChildId { index: 1, len: 31 }
    ));
    assert_eq!(
        answer_err(node(vec![
            child(2, None, Some(Change::Absent(true))),
            child(2, None, Some(Change::Absent(true)))
        ])),
        ConvertError::UnorderedChildren
    );
    assert_eq!(
        answer_err(pb::NodeDiff {
            value: bad_maybe(),
            ..node(vec![])
        }),
        ConvertError::InvalidMaybe {
            field: "NodeDiff.value"
        }
    );
}
