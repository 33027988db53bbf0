//! A client syncs from a server through the `bytes in → bytes out` entry point only, as a VM
//! carrying the v1.11 messages over its own network would: range proofs to bootstrap, then change
//! proofs to catch up, every answer decoded, converted and verified before it is committed.

use arbor::{
    merkledb::{
        BranchFactor, ChangeOrRangeProof, Config, Db, Hash, RangeProof,
        test_utils::{SeedReporter, SeededRng},
        verify_range_proof,
    },
    sync::{ChangeProofRequest, Limits, RangeProofRequest, SyncRequest, handle_request_bytes, pb},
};
use prost::Message;

const KEY_LIMIT: u32 = 700;
const BYTES_LIMIT: u32 = 64 * 1024;

fn ask(server: &Db, request: SyncRequest) -> Vec<u8> {
    let bytes = pb::Request::from(request).encode_to_vec();
    handle_request_bytes(server, &bytes, &Limits::default()).expect("server answers")
}

fn next_after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// Bootstraps `client` to `root` with range proofs: [start, ∞) until an empty answer proves the
/// rest empty.
fn bootstrap(server: &Db, client: &Db, root: Hash) -> usize {
    let mut start: Option<Vec<u8>> = None;
    let mut requests = 0;
    loop {
        requests += 1;
        let req = RangeProofRequest {
            root,
            start: start.clone(),
            end: None,
            key_limit: KEY_LIMIT,
            bytes_limit: BYTES_LIMIT,
        };
        let answer = ask(server, SyncRequest::Range(req));
        assert!(
            answer.len() < BYTES_LIMIT as usize,
            "answer within the byte limit"
        );
        let proof =
            RangeProof::try_from(pb::RangeProof::decode(answer.as_slice()).expect("decode"))
                .expect("well-formed");
        verify_range_proof(
            &proof,
            start.as_deref(),
            None,
            root,
            KEY_LIMIT as usize,
            BranchFactor::Sixteen,
        )
        .expect("verifies");
        client
            .commit_range_proof(start.as_deref(), None, &proof)
            .expect("commit");
        match proof.key_values.last() {
            Some(last) => start = Some(next_after(&last.key)),
            None => return requests,
        }
    }
}

/// Catches `client` up from `from` to `to` with change proofs (or the server's range-proof
/// fallback).
fn catch_up(server: &Db, client: &Db, from: Hash, to: Hash) {
    let mut start: Option<Vec<u8>> = None;
    loop {
        let req = ChangeProofRequest {
            start_root: from,
            end_root: to,
            start: start.clone(),
            end: None,
            key_limit: KEY_LIMIT,
            bytes_limit: BYTES_LIMIT,
        };
        let answer = ask(server, SyncRequest::Change(req));
        let response = pb::SyncGetChangeProofResponse::decode(answer.as_slice()).expect("decode");
        let last = match ChangeOrRangeProof::try_from(response).expect("well-formed") {
            ChangeOrRangeProof::Change(proof) => {
                client
                    .verify_change_proof(&proof, start.as_deref(), None, to, KEY_LIMIT as usize)
                    .expect("verifies");
                client.commit_change_proof(&proof).expect("commit");
                proof.key_changes.last().map(|c| c.key.clone())
            }
            ChangeOrRangeProof::Range(proof) => {
                verify_range_proof(
                    &proof,
                    start.as_deref(),
                    None,
                    to,
                    KEY_LIMIT as usize,
                    BranchFactor::Sixteen,
                )
                .expect("verifies");
                client
                    .commit_range_proof(start.as_deref(), None, &proof)
                    .expect("commit");
                proof.key_values.last().map(|kv| kv.key.clone())
            }
        };
        match last {
            Some(key) => start = Some(next_after(&key)),
            None => return,
        }
    }
}

#[test]
fn client_syncs_and_catches_up_over_the_bytes_entry_point() {
    let seed = SeededRng::seed_from_env(0xb17e5);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let server_dir = tempfile::tempdir().expect("tempdir");
    let client_dir = tempfile::tempdir().expect("tempdir");
    let server =
        Db::open(server_dir.path(), Config::default().with_history_len(16)).expect("server");
    let client = Db::open(client_dir.path(), Config::default()).expect("client");
    let ops: Vec<_> = (0..20_000)
        .map(|_| (rng.bytes(32), Some(rng.bytes(48))))
        .collect();
    server
        .propose(ops)
        .expect("propose")
        .commit()
        .expect("commit");
    let root1 = server.root().expect("root");
    let requests = bootstrap(&server, &client, root1);
    assert_eq!(client.root().expect("client root"), root1);
    assert!(
        requests > 20_000 / KEY_LIMIT as usize,
        "the byte limit split the answers: {requests}"
    );

    // The server moves on: updates, inserts, deletes.
    let existing = client
        .view()
        .expect("view")
        .range(&[], None, 3000)
        .expect("range");
    let mut ops: Vec<_> = existing
        .iter()
        .step_by(3)
        .map(|(k, _)| (k.clone(), None))
        .collect();
    ops.extend(
        existing
            .iter()
            .skip(1)
            .step_by(3)
            .map(|(k, _)| (k.clone(), Some(rng.bytes(10)))),
    );
    ops.extend((0..500).map(|_| (rng.bytes(32), Some(rng.bytes(20)))));
    server
        .propose(ops)
        .expect("propose")
        .commit()
        .expect("commit");
    let root2 = server.root().expect("root");
    catch_up(&server, &client, root1, root2);
    assert_eq!(client.root().expect("client root"), root2);
    assert_eq!(
        client.key_count().expect("count"),
        server.key_count().expect("count")
    );
}
