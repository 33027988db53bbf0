//! The suite, stamped out for both transports.

use std::time::Duration;

use arbor_merkledb::{
    BranchFactor, ChangeOrRangeProof, Config, Db, Hash, Proof, RangeProof,
    test_utils::{SeedReporter, SeededRng},
    verify_proof, verify_range_proof,
};
use arbor_sync::{ServerConfig, pb};
use futures::StreamExt;
use prost::Message;
use tonic::Code;

use crate::harness::{Harness, Transport};

fn filled(n: usize, history: usize) -> Db {
    let db = Db::open_memory(Config::default().with_history_len(history)).expect("open");
    let mut rng = SeededRng::new(11);
    let ops: Vec<_> = (0..n)
        .map(|_| (rng.bytes(32), Some(rng.bytes(40))))
        .collect();
    db.propose(ops).expect("propose").commit().expect("commit");
    db
}

fn some(bytes: &[u8]) -> Option<pb::MaybeBytes> {
    Some(pb::MaybeBytes {
        value: bytes.to_vec(),
        is_nothing: false,
    })
}

fn range_request(
    root: Hash,
    start: Option<&[u8]>,
    key_limit: u32,
    bytes_limit: u32,
) -> pb::SyncGetRangeProofRequest {
    pb::SyncGetRangeProofRequest {
        root_hash: root.0.to_vec(),
        start_key: start.and_then(some),
        end_key: None,
        key_limit,
        bytes_limit,
    }
}

async fn root_and_proofs_verify(transport: Transport) {
    let seed = SeededRng::seed_from_env(0x6e9c);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let db = filled(5000, 8);
    let root = db.root().expect("root");
    let h = Harness::start(transport, db.clone(), ServerConfig::default()).await;
    let mut client = h.client.clone();
    let got = client.get_merkle_root(()).await.expect("root").into_inner();
    assert_eq!(got.root_hash, root.0.to_vec());
    for _ in 0..25 {
        let start = rng.bytes(32);
        let key_limit = 1 + rng.below(3000) as u32;
        let bytes_limit = 4000 + rng.below(3_000_000) as u32;
        let req = range_request(root, Some(&start), key_limit, bytes_limit);
        let reply = client
            .get_range_proof(req)
            .await
            .expect("range proof")
            .into_inner();
        assert!(
            reply.encoded_len() < bytes_limit as usize,
            "strictly under the byte limit"
        );
        assert!(reply.key_values.len() <= key_limit.min(2048) as usize);
        let proof = RangeProof::try_from(reply).expect("converts");
        verify_range_proof(
            &proof,
            Some(&start),
            None,
            root,
            2048,
            BranchFactor::Sixteen,
        )
        .expect("verifies");
    }
    for key in [
        db.view().expect("view").range(&[], None, 1).expect("range")[0]
            .0
            .clone(),
        vec![1, 2, 3],
    ] {
        let reply = client
            .get_proof(pb::GetProofRequest { key })
            .await
            .expect("proof")
            .into_inner();
        let proof = Proof::try_from(reply.proof.expect("proof")).expect("converts");
        verify_proof(&proof, root, BranchFactor::Sixteen).expect("verifies");
    }
    h.stop().await;
}

async fn change_proofs_and_range_fallback(transport: Transport) {
    let server_db = filled(3000, 4);
    let client_db = filled(3000, 4);
    let r1 = server_db.root().expect("root");
    let h = Harness::start(transport, server_db.clone(), ServerConfig::default()).await;
    let mut client = h.client.clone();
    let mut rng = SeededRng::new(5);
    let commit = |rng: &mut SeededRng| {
        let ops: Vec<_> = (0..50)
            .map(|_| (rng.bytes(32), Some(rng.bytes(8))))
            .collect();
        server_db.propose(ops).expect("p").commit().expect("c");
        server_db.root().expect("root")
    };
    let r2 = commit(&mut rng);
    let req = |from: Hash, to: Hash| pb::SyncGetChangeProofRequest {
        start_root_hash: from.0.to_vec(),
        end_root_hash: to.0.to_vec(),
        start_key: None,
        end_key: None,
        key_limit: 2048,
        bytes_limit: 1 << 20,
    };
    let reply = client
        .get_change_proof(req(r1, r2))
        .await
        .expect("change proof")
        .into_inner();
    match ChangeOrRangeProof::try_from(reply).expect("converts") {
        ChangeOrRangeProof::Change(proof) => {
            assert_eq!(proof.key_changes.len(), 50);
            client_db
                .verify_change_proof(&proof, None, None, r2, 2048)
                .expect("verifies");
        }
        ChangeOrRangeProof::Range(_) => panic!("history holds r1: expected a change proof"),
    }
    let mut r = r2;
    for _ in 0..6 {
        r = commit(&mut rng);
    }
    let reply = client
        .get_change_proof(req(r1, r))
        .await
        .expect("fallback")
        .into_inner();
    match ChangeOrRangeProof::try_from(reply).expect("converts") {
        ChangeOrRangeProof::Range(proof) => {
            verify_range_proof(&proof, None, None, r, 2048, BranchFactor::Sixteen)
                .expect("verifies");
        }
        ChangeOrRangeProof::Change(_) => {
            panic!("r1 left history: expected the range-proof fallback")
        }
    }
    h.stop().await;
}

async fn every_failure_is_a_status(transport: Transport) {
    let db = filled(2000, 4);
    let root = db.root().expect("root");
    let h = Harness::start(transport, db.clone(), ServerConfig::default()).await;
    let mut client = h.client.clone();
    let code =
        |r: Result<tonic::Response<pb::RangeProof>, tonic::Status>| r.expect_err("must fail");
    let e = code(
        client
            .get_range_proof(range_request(root, None, 0, 1000))
            .await,
    );
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let e = code(
        client
            .get_range_proof(range_request(root, None, 10, 0))
            .await,
    );
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let mut bad_root = range_request(root, None, 10, 1000);
    bad_root.root_hash.pop();
    let e = code(client.get_range_proof(bad_root).await);
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let mut backwards = range_request(root, Some(&[9]), 10, 100_000);
    backwards.end_key = some(&[1]);
    let e = code(client.get_range_proof(backwards).await);
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let mut maybe = range_request(root, None, 10, 100_000);
    maybe.start_key = Some(pb::MaybeBytes {
        value: vec![1],
        is_nothing: true,
    });
    let e = code(client.get_range_proof(maybe).await);
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let e = code(
        client
            .get_range_proof(range_request(Hash([0; 32]), None, 10, 100_000))
            .await,
    );
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "the empty root has no proofs: {e}"
    );
    let e = code(
        client
            .get_range_proof(range_request(Hash([7; 32]), None, 10, 100_000))
            .await,
    );
    assert_eq!(e.code(), Code::NotFound, "{e}");
    assert!(
        e.message().contains(&root.to_hex()),
        "names the held roots: {}",
        e.message()
    );
    let e = code(
        client
            .get_range_proof(range_request(root, None, 10, 300))
            .await,
    );
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    h.stop().await;

    // An empty database has no proofs; a server out of capacity sheds load.
    let empty = Db::open_memory(Config::default()).expect("open");
    let config = ServerConfig {
        max_in_flight: 0,
        ..ServerConfig::default()
    };
    let h = Harness::start(transport, empty, config).await;
    let mut client = h.client.clone();
    let e = client
        .get_proof(pb::GetProofRequest { key: vec![1] })
        .await
        .expect_err("shed");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    h.stop().await;
    let h = Harness::start(
        transport,
        Db::open_memory(Config::default()).expect("open"),
        ServerConfig::default(),
    )
    .await;
    let mut client = h.client.clone();
    let e = client
        .get_proof(pb::GetProofRequest { key: vec![1] })
        .await
        .expect_err("empty");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    h.stop().await;
}

async fn watch_roots_streams_commits_and_ignores_slow_subscribers(transport: Transport) {
    let db = filled(100, 4);
    let config = ServerConfig {
        watch_buffer: 8,
        ..ServerConfig::default()
    };
    let h = Harness::start(transport, db.clone(), config).await;
    let mut client = h.client.clone();
    let mut stream = client
        .watch_roots(pb::WatchRootsRequest {})
        .await
        .expect("watch")
        .into_inner();
    let first = stream.next().await.expect("first").expect("ok");
    assert_eq!(first.root_hash, db.root().expect("root").0.to_vec());
    // A subscriber that never reads.
    let _slow = client
        .watch_roots(pb::WatchRootsRequest {})
        .await
        .expect("watch")
        .into_inner();
    let mut last = Hash::EMPTY_ROOT;
    for i in 0u32..300 {
        db.propose([(i.to_be_bytes().to_vec(), Some(vec![1]))])
            .expect("p")
            .commit()
            .expect("c");
        last = db.root().expect("root");
        h.announcer.announce(last, db.commit_seq().expect("seq"));
    }
    // The reading subscriber sees the newest root (it may skip some: the buffer is bounded).
    let newest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(update) = stream.next().await {
            let update = update.expect("ok");
            if update.root_hash == last.0.to_vec() {
                return update;
            }
        }
        panic!("stream ended");
    })
    .await
    .expect("newest root arrives");
    assert_eq!(newest.commit_seq, db.commit_seq().expect("seq"));
    // The server keeps answering others.
    let root = tokio::time::timeout(Duration::from_secs(5), client.get_merkle_root(())).await;
    assert_eq!(
        root.expect("in time").expect("root").into_inner().root_hash,
        last.0.to_vec()
    );
    h.stop().await;
}

async fn hostile_clients_do_not_disturb_the_server(transport: Transport) {
    let db = filled(3000, 4);
    let root = db.root().expect("root");
    let config = ServerConfig {
        max_in_flight: 4,
        ..ServerConfig::default()
    };
    let h = Harness::start(transport, db.clone(), config).await;
    // Thousands of concurrent requests with huge limits: answered or shed, never stuck.
    let mut tasks = Vec::new();
    for i in 0..2000u32 {
        let mut client = h.client.clone();
        tasks.push(tokio::spawn(async move {
            let start = i.to_be_bytes();
            client
                .get_range_proof(range_request(root, Some(&start), u32::MAX, u32::MAX))
                .await
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("no hang")
            .expect("join")
        {
            Ok(reply) => {
                assert!(reply.get_ref().key_values.len() <= 2048);
                ok += 1;
            }
            Err(status) if status.code() == Code::ResourceExhausted => shed += 1,
            Err(status) => panic!("unexpected status {status}"),
        }
    }
    assert_eq!(ok + shed, 2000);
    assert!(ok > 0, "some requests were served");
    // Giant keys are answered (or refused) with a status, not a crash.
    let mut client = h.client.clone();
    let giant = vec![0xab; 1 << 20];
    let reply = client
        .get_range_proof(range_request(root, Some(&giant), 10, 1 << 20))
        .await
        .expect("a giant start key is answered");
    let proof = RangeProof::try_from(reply.into_inner()).expect("converts");
    verify_range_proof(&proof, Some(&giant), None, root, 10, BranchFactor::Sixteen)
        .expect("the answer for a giant start key verifies");
    let too_big = vec![0xab; 6 << 20];
    let e = client
        .get_proof(pb::GetProofRequest { key: too_big })
        .await
        .expect_err("over the message limit");
    assert_ne!(e.code(), Code::Ok);
    // Garbage on the socket: the server survives and keeps answering.
    if let Some(addr) = h.addr {
        use tokio::io::AsyncWriteExt;
        let mut raw = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = raw.write_all(&[0xde; 4096]).await;
        drop(raw);
    }
    let mut client = h.client.clone();
    let got = client
        .get_merkle_root(())
        .await
        .expect("still serving")
        .into_inner();
    assert_eq!(got.root_hash, root.0.to_vec());
    assert_eq!(
        db.root().expect("root"),
        root,
        "nothing was written to the server's database"
    );
    h.stop().await;
}

async fn graceful_shutdown_ends_streams_and_finishes(transport: Transport) {
    let db = filled(100, 4);
    let h = Harness::start(transport, db, ServerConfig::default()).await;
    let mut client = h.client.clone();
    let mut stream = client
        .watch_roots(pb::WatchRootsRequest {})
        .await
        .expect("watch")
        .into_inner();
    stream.next().await.expect("first").expect("ok");
    // A subscriber reading forever must not keep the server from stopping.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    assert!(
        h.stop().await,
        "server stopped within 10 s with a subscriber attached"
    );
    tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("stream ended")
        .expect("join");
}

async fn health_service_reports_serving(transport: Transport) {
    let h = Harness::start(transport, filled(10, 4), ServerConfig::default()).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(h.channel.clone());
    let service = "sync.StateSync".to_string();
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest { service })
        .await
        .expect("check");
    assert_eq!(
        reply.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    h.stop().await;
}

macro_rules! both_transports {
    ($($test:ident),* $(,)?) => {
        mod socket {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Transport::Socket).await; })*
        }
        mod in_process {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Transport::InProcess).await; })*
        }
    };
}

both_transports!(
    root_and_proofs_verify,
    change_proofs_and_range_fallback,
    every_failure_is_a_status,
    watch_roots_streams_commits_and_ignores_slow_subscribers,
    hostile_clients_do_not_disturb_the_server,
    graceful_shutdown_ends_streams_and_finishes,
    health_service_reports_serving,
);

/// Random requests (proptest): the limits hold and every returned proof verifies, on both
/// transports.
fn random_requests_respect_limits_and_verify(transport: Transport) {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let db = filled(4000, 4);
    let root = db.root().expect("root");
    let h = runtime.block_on(Harness::start(transport, db, ServerConfig::default()));
    let client = h.client.clone();
    let config = ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    };
    proptest!(config, |(start in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
                        end in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
                        key_limit in 1u32..5000,
                        bytes_limit in 1u32..3_000_000)| {
        let mut client = client.clone();
        let request = pb::SyncGetRangeProofRequest {
            root_hash: root.0.to_vec(),
            start_key: start.as_deref().and_then(some),
            end_key: end.as_deref().and_then(some),
            key_limit,
            bytes_limit,
        };
        match runtime.block_on(client.get_range_proof(request)) {
            Ok(reply) => {
                let reply = reply.into_inner();
                prop_assert!(reply.encoded_len() < bytes_limit as usize);
                prop_assert!(reply.key_values.len() <= key_limit.min(2048) as usize);
                let proof = RangeProof::try_from(reply).expect("converts");
                verify_range_proof(&proof, start.as_deref(), end.as_deref(), root, 2048, BranchFactor::Sixteen)
                    .expect("verifies");
            }
            Err(status) => {
                let ordered = match (&start, &end) { (Some(s), Some(e)) => s <= e, _ => true };
                prop_assert!(
                    (!ordered && status.code() == Code::InvalidArgument)
                        || status.code() == Code::FailedPrecondition,
                    "unexpected status {status}"
                );
            }
        }
    });
    runtime.block_on(h.stop());
}

#[test]
fn random_requests_over_socket() {
    random_requests_respect_limits_and_verify(Transport::Socket);
}

#[test]
fn random_requests_in_process() {
    random_requests_respect_limits_and_verify(Transport::InProcess);
}

/// Wire compatibility must not drift: the exact bytes of a known range proof (BF16, keys
/// 0x00..0x04 with values equal to the keys, range [0x01, 0x0305]) and of a change-proof response
/// for a later commit.
#[test]
fn golden_encodings() {
    let db = Db::open_memory(Config::default()).expect("open");
    db.propose((0u8..5).map(|i| (vec![i], Some(vec![i]))))
        .expect("p")
        .commit()
        .expect("c");
    let proof = db
        .view()
        .expect("view")
        .range_proof(Some(&[1]), Some(&[3, 5]), 10)
        .expect("proof");
    let range_hex = hex::encode(pb::RangeProof::from(proof.clone()).encode_to_vec());
    // A change proof: key 0x02 updated, 0x05 inserted, 0x00 deleted.
    let r1 = db.root().expect("root");
    db.propose([
        (vec![2], Some(vec![9])),
        (vec![5], Some(vec![5])),
        (vec![0], None),
    ])
    .expect("p")
    .commit()
    .expect("c");
    let r2 = db.root().expect("root");
    let change = db
        .change_proof(r1, r2, None, None, 10)
        .expect("change proof");
    let response = pb::SyncGetChangeProofResponse::from(ChangeOrRangeProof::Change(change));
    let response_hex = hex::encode(response.encode_to_vec());
    assert_eq!(range_hex, GOLDEN_RANGE_PROOF, "RangeProof encoding drifted");
    assert_eq!(
        response_hex, GOLDEN_CHANGE_RESPONSE,
        "SyncGetChangeProofResponse encoding drifted"
    );
}

const GOLDEN_RANGE_PROOF: &str = "0a0c0a05080812010112030a010112c7010a050804120100120210011a221220073615413d814b23383fc2c8d8af13abfffcb371b654b98dbf47dd74b1e4d1b91a2408011220f3ff56d1d653abfb464b689a09cd6109cca840e930d6f805d34a9403e47244ea1a2408021220f9b0e4c620c9a3ac1f4cce07b3aeb6ceaa2e9c65a6f3e0145d874b090dad3bce1a2408031220ef57b1dd004d23fe901c4f1aba3b8acac03f0f8140cf1f2a87e88757252ae2601a24080412207e0218ec3de4c3ebdcf9d7525f1796ee7561ac5a3af26cffc740d319f5d295d2120c0a05080812010312030a01031a060a01011201011a060a01021201021a060a0103120103";
const GOLDEN_CHANGE_RESPONSE: &str = "0af70112c9010a050804120100120210011a2408011220f3ff56d1d653abfb464b689a09cd6109cca840e930d6f805d34a9403e47244ea1a2408021220ff517e518de0f57b4433a802993494fd1098e3acfe4229707822358e3756cc3c1a2408031220ef57b1dd004d23fe901c4f1aba3b8acac03f0f8140cf1f2a87e88757252ae2601a24080412207e0218ec3de4c3ebdcf9d7525f1796ee7561ac5a3af26cffc740d319f5d295d21a2408051220378aaf267fde5a4005fcbeb13ae91c6887b58df01f50e0d0b3afb71b2c297db7120c0a05080812010512030a01051a070a0100120210011a080a010212030a01091a080a010512030a0105";
