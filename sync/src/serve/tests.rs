//! Serving within limits, fallback, the bytes entry point, and fuzzing of decode + verify.

use std::collections::BTreeMap;

use arbor_merkledb::{
    BranchFactor, ChangeOrRangeProof, ChangeProof, Config, Db, Hash, RangeProof,
    test_utils::{SeedReporter, SeededRng},
    verify_range_proof,
};
use proptest::prelude::*;
use prost::Message;

use super::*;

fn filled(n: usize, value_len: usize, history: usize) -> Db {
    let db = Db::open_memory(Config::default().with_history_len(history)).expect("open");
    let mut rng = SeededRng::new(7);
    let ops: Vec<_> = (0..n)
        .map(|_| (rng.bytes(8), Some(rng.bytes(value_len))))
        .collect();
    db.propose(ops).expect("propose").commit().expect("commit");
    db
}

fn range_req(root: Hash, key_limit: u32, bytes_limit: u32) -> RangeProofRequest {
    RangeProofRequest {
        root,
        start: None,
        end: None,
        key_limit,
        bytes_limit,
    }
}

#[test]
fn served_range_proofs_are_strictly_under_the_byte_limit_and_verify() {
    let db = filled(3000, 40, 4);
    let root = db.root().expect("root");
    let mut rng = SeededRng::new(SeededRng::seed_from_env(3));
    for _ in 0..40 {
        // A one-key proof here is ~1.2 KB (two boundary paths of 16-child nodes).
        let bytes_limit = 3000 + rng.below(120_000) as u32;
        let key_limit = 1 + rng.below(3000) as u32;
        let req = range_req(root, key_limit, bytes_limit);
        let served = serve_range_proof(&db, &req, &Limits::default()).expect("served");
        assert!(served.encoded_len() < bytes_limit as usize);
        assert!(served.key_values.len() <= key_limit.min(MAX_KEY_LIMIT) as usize);
        assert!(!served.key_values.is_empty());
        let proof = RangeProof::try_from(served).expect("converts");
        verify_range_proof(
            &proof,
            None,
            None,
            root,
            key_limit as usize,
            BranchFactor::Sixteen,
        )
        .expect("verifies");
    }
}

#[test]
fn a_key_value_that_cannot_fit_is_a_typed_error() {
    let db = Db::open_memory(Config::default()).expect("open");
    db.propose([(b"big".to_vec(), Some(vec![7; 10_000]))])
        .expect("p")
        .commit()
        .expect("c");
    let root = db.root().expect("root");
    assert!(matches!(
        serve_range_proof(&db, &range_req(root, 10, 5000), &Limits::default()),
        Err(ServeError::ProofTooLarge { bytes_limit: 5000 })
    ));
    assert!(serve_range_proof(&db, &range_req(root, 10, 20_000), &Limits::default()).is_ok());
}

#[test]
fn change_requests_fall_back_to_range_proofs_without_history_and_name_missing_roots() {
    let db = filled(200, 8, 2);
    let old = db.root().expect("root");
    for i in 0u8..4 {
        db.propose([(vec![i], Some(vec![i]))])
            .expect("p")
            .commit()
            .expect("c");
    }
    let new = db.root().expect("root");
    let req = ChangeProofRequest {
        start_root: old,
        end_root: new,
        start: None,
        end: None,
        key_limit: 100,
        bytes_limit: 1 << 20,
    };
    let response = serve_change_proof(&db, &req, &Limits::default()).expect("served");
    let Ok(ChangeOrRangeProof::Range(proof)) = ChangeOrRangeProof::try_from(response) else {
        panic!("expected the range-proof fallback");
    };
    verify_range_proof(&proof, None, None, new, 100, BranchFactor::Sixteen).expect("verifies");
    let unknown = Hash([9; 32]);
    match serve_change_proof(
        &db,
        &ChangeProofRequest {
            end_root: unknown,
            ..req
        },
        &Limits::default(),
    ) {
        Err(ServeError::RootNotHeld { root, retained }) => {
            assert_eq!(root, unknown);
            assert!(
                retained.contains(&new.to_hex()),
                "names the roots it holds: {retained}"
            );
        }
        other => panic!("expected RootNotHeld, got {other:?}"),
    }
}

#[test]
fn bytes_entry_point_answers_or_explains() {
    let db = filled(50, 8, 4);
    let root = db.root().expect("root");
    let request = pb::Request::from(SyncRequest::Range(range_req(root, 10, 100_000)));
    let answer =
        handle_request_bytes(&db, &request.encode_to_vec(), &Limits::default()).expect("answer");
    let proof = RangeProof::try_from(pb::RangeProof::decode(answer.as_slice()).expect("decode"))
        .expect("converts");
    assert_eq!(proof.key_values.len(), 10);
    assert!(matches!(
        handle_request_bytes(&db, &[0xff, 0xff], &Limits::default()),
        Err(ServeError::Undecodable(_))
    ));
    assert!(matches!(
        handle_request_bytes(&db, &[], &Limits::default()),
        Err(ServeError::Malformed(_))
    ));
    let zero_limit = pb::Request::from(SyncRequest::Range(range_req(root, 10, 1)));
    let mut bytes = zero_limit.encode_to_vec();
    bytes.truncate(bytes.len() - 2);
    assert!(handle_request_bytes(&db, &bytes, &Limits::default()).is_err());
}

/// The true contents of `[start, largest]`.
fn truth(db: &Db, start: &[u8], largest: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.view()
        .expect("view")
        .range(start, largest, usize::MAX)
        .expect("range")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Arbitrary bytes as a range proof: decoding, conversion and verification never panic.
    #[test]
    fn arbitrary_bytes_never_panic_decode_or_verify(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let root = Hash([3; 32]);
        if let Ok(msg) = pb::RangeProof::decode(bytes.as_slice()) {
            if let Ok(proof) = RangeProof::try_from(msg) {
                // Nothing rebuilds to a root nobody computed: every such proof is rejected.
                let verdict = verify_range_proof(&proof, None, Some(&[0x80]), root, 100, BranchFactor::Sixteen);
                prop_assert!(verdict.is_err(), "a random proof verified against {root:?}");
            }
        }
        if let Ok(msg) = pb::SyncGetChangeProofResponse::decode(bytes.as_slice()) {
            let _ = ChangeOrRangeProof::try_from(msg);
        }
    }
}

/// Mutated honest encodings: whatever still verifies must claim the true contents (soundness
/// under fuzzing), and nothing panics.
#[test]
fn mutated_honest_proofs_verify_only_when_true() {
    let seed = SeededRng::seed_from_env(0xf022);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let db = filled(400, 20, 8);
    let root = db.root().expect("root");
    let view = db.view().expect("view");
    let mut accepted = 0;
    for round in 0..3000 {
        let start = rng.bytes(1);
        let limit = 1 + rng.below(30) as usize;
        let honest = view.range_proof(Some(&start), None, limit).expect("proof");
        let mut bytes = pb::RangeProof::from(honest.clone()).encode_to_vec();
        for _ in 0..1 + rng.below(3) {
            if bytes.is_empty() {
                break;
            }
            let i = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes[i] ^= 1 << rng.below(8),
                1 => bytes[i] = rng.below(256) as u8,
                _ => bytes.truncate(i),
            }
        }
        let Ok(msg) = pb::RangeProof::decode(bytes.as_slice()) else {
            continue;
        };
        let Ok(proof) = RangeProof::try_from(msg) else {
            continue;
        };
        if verify_range_proof(
            &proof,
            Some(&start),
            None,
            root,
            limit,
            BranchFactor::Sixteen,
        )
        .is_ok()
        {
            accepted += 1;
            let largest = proof.key_values.last().map(|kv| kv.key.clone());
            let claimed: Vec<_> = proof
                .key_values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect();
            if let Some(largest) = largest {
                assert_eq!(
                    claimed,
                    truth(&db, &start, Some(&largest)),
                    "round {round}: false claim accepted"
                );
            } else {
                assert!(
                    truth(&db, &start, None).is_empty(),
                    "round {round}: false emptiness accepted"
                );
            }
        }
    }
    eprintln!("accepted {accepted}");
    assert!(
        accepted > 0,
        "no mutation kept a valid proof: the check above never ran"
    );
}

/// Mutated honest change proofs: accepted ones bring the client exactly to the server's contents
/// in the covered range.
#[test]
fn mutated_change_proofs_verify_only_when_true() {
    let seed = SeededRng::seed_from_env(0xf023);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let server = filled(300, 20, 8);
    let client = filled(300, 20, 8);
    let from = server.root().expect("root");
    let ops: Vec<_> = (0..80)
        .map(|i| {
            (
                rng.bytes(8),
                if i % 3 == 0 { None } else { Some(rng.bytes(5)) },
            )
        })
        .collect();
    server.propose(ops).expect("p").commit().expect("c");
    let deletes: Vec<_> = truth(&server, &[], None)
        .into_iter()
        .step_by(7)
        .map(|(k, _)| (k, None))
        .collect();
    server.propose(deletes).expect("p").commit().expect("c");
    let to = server.root().expect("root");
    let mut accepted = 0;
    for round in 0..1500 {
        let start = rng.bytes(1);
        let limit = 1 + rng.below(20) as usize;
        let honest = server
            .change_proof(from, to, Some(&start), None, limit)
            .expect("proof");
        let mut bytes = pb::ChangeProof::from(honest).encode_to_vec();
        let i = rng.below(bytes.len() as u64) as usize;
        bytes[i] ^= 1 << rng.below(8);
        let Ok(msg) = pb::ChangeProof::decode(bytes.as_slice()) else {
            continue;
        };
        let Ok(proof) = ChangeProof::try_from(msg) else {
            continue;
        };
        if client
            .verify_change_proof(&proof, Some(&start), None, to, limit)
            .is_ok()
        {
            accepted += 1;
            let largest = proof.key_changes.last().map(|c| c.key.clone());
            let mut after: BTreeMap<_, _> = truth(&client, &start, largest.as_deref())
                .into_iter()
                .collect();
            for c in &proof.key_changes {
                match &c.value {
                    Some(v) => after.insert(c.key.clone(), v.clone()),
                    None => after.remove(&c.key),
                };
            }
            let expected: BTreeMap<_, _> = truth(&server, &start, largest.as_deref())
                .into_iter()
                .collect();
            assert_eq!(
                after, expected,
                "round {round}: false change proof accepted"
            );
        }
    }
    eprintln!("accepted {accepted}");
    assert!(
        accepted > 0,
        "no mutation kept a valid proof: the check above never ran"
    );
}
