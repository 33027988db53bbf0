//! The sync manager end to end, each test over both transports (in-process and real gRPC
//! servers on 127.0.0.1).

mod harness;

use std::{sync::Arc, time::Duration};

use arbor::{
    merkledb::{
        BranchFactor, Db, Hash,
        test_utils::{SeedReporter, SeededRng},
    },
    sync::{SyncConfig, SyncManager, SyncSummary},
};
use harness::{
    Cluster, Concurrency, Fault, Pauses, PausingClient, TRANSPORTS, Transport, contents, copy_db,
    empty_db, random_db, test_config,
};

/// Key-values in key order.
type Contents = Vec<(Vec<u8>, Vec<u8>)>;

/// Syncs `client_db` to `target` from `peers` on `transport`; panics on failure.
async fn sync(
    transport: Transport,
    client_db: &Db,
    peers: Vec<(Db, Option<Fault>)>,
    target: Hash,
    config: SyncConfig,
) -> SyncSummary {
    let cluster = Cluster::start(transport, peers).await;
    let manager = SyncManager::start(client_db.clone(), cluster.client.clone(), target, config)
        .expect("start");
    let summary = tokio::time::timeout(Duration::from_secs(120), manager.wait())
        .await
        .expect("sync finishes in time")
        .expect("sync succeeds");
    assert_eq!(client_db.root().expect("root"), target);
    assert_eq!(summary.target, target);
    assert!(summary.done);
    summary
}

/// [`sync`] from one honest `server`, blocking on `rt`.
fn sync_from(
    rt: &tokio::runtime::Runtime,
    transport: Transport,
    client_db: &Db,
    server: &Db,
    target: Hash,
    config: SyncConfig,
) -> SyncSummary {
    rt.block_on(sync(
        transport,
        client_db,
        vec![(server.clone(), None)],
        target,
        config,
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn syncs_100k_keys_from_one_and_from_three_servers() {
    let seed = SeededRng::seed_from_env(0x5e_ed01);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let server = random_db(&mut rng, 100_000, 16);
    let target = server.root().expect("root");
    let rt = runtime();
    for transport in TRANSPORTS {
        for servers in [1, 3] {
            let client = empty_db(BranchFactor::default());
            let peers = (0..servers).map(|_| (server.clone(), None)).collect();
            let summary = rt.block_on(sync(transport, &client, peers, target, test_config()));
            assert_eq!(
                contents(&client),
                contents(&server),
                "{transport:?} x{servers}"
            );
            assert_eq!(summary.keys, 100_000, "a fresh sync writes each key once");
            assert_eq!(summary.proofs_rejected, 0);
            // Each peer's share is counted: the shares add up to the keys written.
            let shares: Vec<u64> = summary.peers.iter().map(|p| p.keys).collect();
            assert_eq!(shares.iter().sum::<u64>(), summary.keys, "{shares:?}");
            let goodput: f64 = summary.peers.iter().map(|p| p.goodput_bytes_per_sec).sum();
            assert!(goodput > 0.0, "{:?}", summary.peers);
            if servers == 3 {
                let used = summary.peers.iter().filter(|p| p.answers > 0).count();
                assert_eq!(
                    used, 3,
                    "load spreads over all servers: {:?}",
                    summary.peers
                );
            }
        }
    }
}

#[test]
fn an_empty_target_clears_the_replica() {
    let mut rng = SeededRng::new(7);
    let rt = runtime();
    for transport in TRANSPORTS {
        let client = random_db(&mut rng, 1000, 16);
        let server = empty_db(BranchFactor::default());
        sync_from(
            &rt,
            transport,
            &client,
            &server,
            Hash::EMPTY_ROOT,
            test_config(),
        );
        assert!(contents(&client).is_empty());
    }
}

#[test]
fn edge_data_syncs_exactly() {
    let rt = runtime();
    let mut rng = SeededRng::new(11);
    let mut cases: Vec<(&str, Contents)> = vec![
        ("one key", vec![(b"k".to_vec(), b"v".to_vec())]),
        (
            "empty key and values",
            vec![
                (vec![], vec![]),
                (vec![0], vec![]),
                (vec![0, 0], b"x".to_vec()),
            ],
        ),
        (
            "1 MiB values",
            (0u8..6).map(|i| (vec![i; 8], vec![i; 1 << 20])).collect(),
        ),
    ];
    // Keys sharing long prefixes: 200 keys differing only in the last bits of 100-byte keys.
    let prefixed = (0u8..200)
        .map(|i| {
            let mut k = vec![0xab; 100];
            k.push(i);
            (k, rng.bytes(40))
        })
        .collect();
    cases.push(("long shared prefixes", prefixed));
    for (name, kvs) in cases {
        for bf in [
            BranchFactor::default(),
            BranchFactor::from_children(2).expect("bf"),
        ] {
            let server = empty_db(bf);
            let ops: Vec<_> = kvs
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            server
                .propose(ops)
                .expect("propose")
                .commit()
                .expect("commit");
            let target = server.root().expect("root");
            for transport in TRANSPORTS {
                let client = empty_db(bf);
                sync_from(&rt, transport, &client, &server, target, test_config());
                assert_eq!(
                    contents(&client),
                    contents(&server),
                    "{name} {transport:?} {bf:?}"
                );
            }
        }
    }
}

#[test]
fn a_lying_or_dead_peer_among_three_is_outscored_and_nothing_wrong_is_written() {
    let seed = SeededRng::seed_from_env(0xbad);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let server = random_db(&mut rng, 20_000, 16);
    let target = server.root().expect("root");
    let liar_db = copy_db(&server, 16);
    liar_db
        .propose(
            (0..50)
                .map(|_| (rng.bytes(32), Some(rng.bytes(8))))
                .collect::<Vec<_>>(),
        )
        .expect("propose")
        .commit()
        .expect("commit");
    let faults = [
        Fault::Tamper,
        Fault::Truncate,
        Fault::OtherRoot(liar_db),
        Fault::Empty,
        Fault::Hang,
        Fault::Drop,
    ];
    let rt = runtime();
    let expected = contents(&server);
    for transport in TRANSPORTS {
        for fault in &faults {
            let client = empty_db(BranchFactor::default());
            let peers = vec![
                (server.clone(), None),
                (server.clone(), Some(fault.clone())),
                (server.clone(), None),
            ];
            let summary = rt.block_on(sync(transport, &client, peers, target, test_config()));
            assert_eq!(contents(&client), expected, "{transport:?} {fault:?}");
            let scores: Vec<f64> = summary.peers.iter().map(|p| p.score).collect();
            assert!(
                scores[1] < scores[0] && scores[1] < scores[2],
                "{transport:?} {fault:?}: the faulty peer ranks last: {:?}",
                summary.peers
            );
            // Every state the replica ever committed holds only the target's key-values.
            for root in client.retained_roots().expect("history") {
                let view = client.view_at(root).expect("view");
                for (k, v) in view.range(&[], None, usize::MAX).expect("range") {
                    assert!(
                        expected.binary_search(&(k.clone(), v)).is_ok(),
                        "{transport:?} {fault:?}: a wrong value for {k:02x?} was written"
                    );
                }
            }
        }
    }
}

/// Commits `n` random changes (puts of new and existing keys, deletes) to `db`; returns the
/// new root.
fn churn(db: &Db, rng: &mut SeededRng, n: usize) -> Hash {
    let existing = contents(db);
    let mut ops = Vec::with_capacity(n);
    for i in 0..n {
        let op = match i % 3 {
            0 => (rng.bytes(32), Some(rng.bytes(32))),
            1 if !existing.is_empty() => {
                let k = &existing[rng.below(existing.len() as u64) as usize].0;
                (k.clone(), Some(rng.bytes(32)))
            }
            _ if !existing.is_empty() => {
                let k = &existing[rng.below(existing.len() as u64) as usize].0;
                (k.clone(), None)
            }
            _ => (rng.bytes(32), Some(rng.bytes(32))),
        };
        ops.push(op);
    }
    let proposal = db.propose(ops).expect("propose");
    let root = proposal.root();
    proposal.commit().expect("commit");
    root
}

/// Bytes a fresh sync of `server`'s current root transfers.
fn fresh_sync_bytes(rt: &tokio::runtime::Runtime, transport: Transport, server: &Db) -> u64 {
    let client = empty_db(BranchFactor::default());
    let target = server.root().expect("root");
    sync_from(rt, transport, &client, server, target, test_config()).bytes
}

/// Syncs `client` from `server` (starting at its current root) while the server keeps
/// committing: each time the client has received another `step` of the server's key count, its
/// answers are held ([`Pauses`]) while `change` commits to the server and the target moves to the
/// new root, `changes` times. Returns the summary and the number of retargets. With `step ×
/// changes` below 1 every retarget happens mid-sync, however the threads are scheduled (with
/// progress steps instead, a fast in-process sync sometimes ran from one step to done while
/// the test's thread waited to run).
fn sync_while_changing(
    rt: &tokio::runtime::Runtime,
    transport: Transport,
    (server, client): (&Db, &Db),
    config: SyncConfig,
    (step, changes): (f64, u32),
    mut change: impl FnMut(&Db),
) -> (SyncSummary, u32) {
    assert!(
        step * f64::from(changes) < 1.0,
        "the last pause must come before the end"
    );
    rt.block_on(async {
        let cluster = Cluster::start(transport, vec![(server.clone(), None)]).await;
        let keys = server.key_count().expect("count") as f64;
        let pauses = Pauses::new((keys * step) as usize, changes);
        let client_at_pauses = Arc::new(PausingClient {
            inner: cluster.client.clone(),
            pauses: pauses.clone(),
        });
        let first = server.root().expect("root");
        let manager =
            SyncManager::start(client.clone(), client_at_pauses, first, config).expect("start");
        let mut retargets = 0;
        for n in 1..=changes {
            pauses.reached(n, Duration::from_secs(120)).await;
            assert!(!manager.progress().borrow().done, "done at pause {n}");
            change(server);
            manager.update_target(server.root().expect("root"));
            retargets += 1;
            pauses.release(n);
        }
        let summary = tokio::time::timeout(Duration::from_secs(120), manager.wait())
            .await
            .expect("in time")
            .expect("sync");
        assert_eq!(
            summary.target,
            server.root().expect("root"),
            "ends at the newest root"
        );
        assert_eq!(contents(client), contents(server), "{transport:?}");
        (summary, retargets)
    })
}

#[test]
fn a_replica_catches_up_with_change_proofs_in_proportion_to_what_changed() {
    let seed = SeededRng::seed_from_env(0xca7c);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let rt = runtime();
    for transport in TRANSPORTS {
        let server = random_db(&mut rng, 100_000, 64);
        let r1 = server.root().expect("root");
        let client = empty_db(BranchFactor::default());
        sync_from(&rt, transport, &client, &server, r1, test_config());
        // 1% of the keys change.
        let r2 = churn(&server, &mut rng, 1000);
        let catch_up = sync_from(&rt, transport, &client, &server, r2, test_config());
        assert_eq!(contents(&client), contents(&server));
        let fresh = fresh_sync_bytes(&rt, transport, &server);
        eprintln!(
            "{transport:?}: catch-up {} bytes, fresh sync {fresh} bytes",
            catch_up.bytes
        );
        assert!(
            catch_up.bytes * 10 < fresh,
            "{transport:?}: catch-up moved {} bytes, a fresh sync {fresh}",
            catch_up.bytes
        );
    }
}

/// A server of `n` random keys keeping two commits of history, a replica of it, and the
/// server four commits of `changes` further on: the replica's root has left its history.
fn beyond_history(rng: &mut SeededRng, n: usize, changes: usize) -> (Db, Db) {
    let server = random_db(rng, n, 2);
    let client = copy_db(&server, 16);
    for _ in 0..4 {
        churn(&server, rng, changes);
    }
    (server, client)
}

#[test]
fn a_replica_beyond_history_catches_up_by_node_diffs_in_proportion_to_what_changed() {
    let seed = SeededRng::seed_from_env(0x4157);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let rt = runtime();
    for transport in TRANSPORTS {
        // 1% of the keys change.
        let (server, client) = beyond_history(&mut rng, 40_000, 100);
        let target = server.root().expect("root");
        let summary = sync_from(&rt, transport, &client, &server, target, test_config());
        assert_eq!(contents(&client), contents(&server), "{transport:?}");
        assert_eq!(summary.proofs_rejected, 0);
        let fresh = fresh_sync_bytes(&rt, transport, &server);
        eprintln!(
            "{transport:?}: beyond history {} bytes ({} in node diffs, {} in range proofs), fresh sync {fresh}",
            summary.bytes, summary.diff_bytes, summary.range_bytes
        );
        assert!(
            summary.diff_bytes > 0,
            "{transport:?}: node diffs were used"
        );
        // Only the one-key probe that found the replica's root out of history, and the eight
        // sampled windows of 64 keys that found most keys equal.
        assert!(
            summary.range_bytes < 96 << 10,
            "{transport:?}: no range proof needed: {}",
            summary.range_bytes
        );
        assert_eq!(
            summary.bytes,
            summary.range_bytes + summary.change_bytes + summary.diff_bytes
        );
        assert!(
            summary.bytes * 10 < fresh,
            "{transport:?}: the catch-up moved {} bytes, a fresh sync {fresh}",
            summary.bytes
        );
        // Committing every few keys, so commits run beside the walk's reads all the time.
        for _ in 0..4 {
            churn(&server, &mut rng, 100);
        }
        let target = server.root().expect("root");
        let config = SyncConfig {
            key_limit: 4,
            max_batch: 1,
            ..test_config()
        };
        let summary = sync_from(&rt, transport, &client, &server, target, config);
        assert_eq!(contents(&client), contents(&server), "{transport:?}");
        assert!(summary.diff_bytes > 0 && summary.range_bytes < 96 << 10);
        // From a server that does not serve node diffs (AvalancheGo, an older Arbor): range
        // proofs, as before.
        for _ in 0..4 {
            churn(&server, &mut rng, 100);
        }
        let target = server.root().expect("root");
        let peers = vec![(server.clone(), Some(Fault::NoDiffs))];
        let summary = rt.block_on(sync(transport, &client, peers, target, test_config()));
        assert_eq!(contents(&client), contents(&server), "{transport:?}");
        assert_eq!(summary.diff_bytes, 0, "{transport:?}");
        assert!(summary.range_bytes > 0, "{transport:?}");
    }
}

#[test]
fn node_diff_catch_ups_are_exact_at_every_branch_factor_with_keys_of_any_length() {
    let seed = SeededRng::seed_from_env(0xbf);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let rt = runtime();
    for children in [2, 4, 256] {
        let bf = BranchFactor::from_children(children).expect("bf");
        let server = Db::open_memory(
            arbor::merkledb::Config::default()
                .with_branch_factor(bf)
                .with_history_len(2),
        )
        .expect("open");
        // Keys of 0 to 40 bytes, so nodes carry values and keys are prefixes of others.
        let random_ops = |rng: &mut SeededRng, n: usize| -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
            (0..n)
                .map(|_| {
                    let len = rng.below(41) as usize;
                    let value_len = rng.below(48) as usize;
                    (rng.bytes(len), Some(rng.bytes(value_len)))
                })
                .collect()
        };
        let ops = random_ops(&mut rng, 4000);
        server
            .propose(ops)
            .expect("propose")
            .commit()
            .expect("commit");
        for transport in TRANSPORTS {
            let client = copy_db(&server, 16);
            for _ in 0..3 {
                let mut ops = random_ops(&mut rng, 60);
                let existing = contents(&server);
                for _ in 0..40 {
                    let (k, _) = &existing[rng.below(existing.len() as u64) as usize];
                    ops.push((k.clone(), None));
                }
                server
                    .propose(ops)
                    .expect("propose")
                    .commit()
                    .expect("commit");
            }
            let target = server.root().expect("root");
            let summary = sync_from(&rt, transport, &client, &server, target, test_config());
            assert_eq!(contents(&client), contents(&server), "{transport:?} {bf:?}");
            assert!(summary.diff_bytes > 0, "{transport:?} {bf:?}: a diff walk");
            assert_eq!(summary.proofs_rejected, 0, "{transport:?} {bf:?}");
        }
    }
}

/// Commits to `db` that change every key's value and add half as many new keys.
fn rewrite_everything(db: &Db, rng: &mut SeededRng) -> Hash {
    let mut ops: Vec<_> = contents(db)
        .into_iter()
        .map(|(k, _)| (k, Some(rng.bytes(32))))
        .collect();
    let new = ops.len() / 2;
    ops.extend((0..new).map(|_| (rng.bytes(32), Some(rng.bytes(32)))));
    for chunk in ops.chunks(ops.len() / 4 + 1) {
        db.propose(chunk.to_vec())
            .expect("propose")
            .commit()
            .expect("commit");
    }
    db.root().expect("root")
}

#[test]
fn a_replica_sharing_little_with_the_target_is_emptied_and_fetched_whole() {
    let seed = SeededRng::seed_from_env(0xe4e4);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let rt = runtime();
    for transport in TRANSPORTS {
        let server = random_db(&mut rng, 20_000, 2);
        let client = copy_db(&server, 16);
        let target = rewrite_everything(&server, &mut rng);
        let fresh = fresh_sync_bytes(&rt, transport, &server);
        // Beside an honest server, one whose answers fail verification: its sampled windows
        // are asked again of the other, and it writes nothing.
        let peers = vec![
            (server.clone(), Some(Fault::Tamper)),
            (server.clone(), None),
        ];
        let summary = rt.block_on(sync(transport, &client, peers, target, test_config()));
        assert_eq!(contents(&client), contents(&server), "{transport:?}");
        eprintln!(
            "{transport:?}: {} bytes ({} in range proofs), fresh sync {fresh}",
            summary.bytes, summary.range_bytes
        );
        assert_eq!(summary.diff_bytes, 0, "{transport:?}: no walk");
        assert!(
            summary.bytes < fresh + fresh / 10 + (96 << 10),
            "{transport:?}: {} bytes, a fresh sync {fresh}",
            summary.bytes
        );

        // Again, cancelled once the emptied replica has taken its first answers, then resumed:
        // the resumed run does not start over.
        let client = copy_db(&server, 16);
        let target = rewrite_everything(&server, &mut rng);
        let fresh = fresh_sync_bytes(&rt, transport, &server);
        let slow = || vec![(server.clone(), Some(Fault::Slow(Duration::from_millis(20))))];
        rt.block_on(async {
            let cluster = Cluster::start(transport, slow()).await;
            let manager = SyncManager::start(
                client.clone(),
                cluster.client.clone(),
                target,
                test_config(),
            )
            .expect("start");
            let mut progress = manager.progress();
            progress
                .wait_for(|p| p.fraction > 0.3 || p.done)
                .await
                .expect("progress");
            manager.cancel();
            let first_run = manager.wait().await;
            // Every old value changed: the replica holds only what it fetched since emptied.
            let expected = contents(&server);
            let held = contents(&client);
            assert!(
                held.len() < expected.len(),
                "{transport:?}: cancelled midway"
            );
            assert!(
                held.iter().all(|kv| expected.binary_search(kv).is_ok()),
                "{transport:?}: the replica was emptied"
            );
            let resumed = SyncManager::start(
                client.clone(),
                cluster.client.clone(),
                target,
                test_config(),
            )
            .expect("start")
            .wait()
            .await
            .expect("resumed sync");
            assert_eq!(contents(&client), contents(&server), "{transport:?}");
            assert_eq!(resumed.diff_bytes, 0, "{transport:?}");
            assert!(
                resumed.bytes < fresh * 8 / 10,
                "{transport:?}: resumed with {} bytes, a fresh sync {fresh} (first run {:?})",
                resumed.bytes,
                first_run.map(|s| s.bytes)
            );
        });
    }
}

#[test]
fn a_node_diff_catch_up_outscores_lying_peers_and_writes_nothing_wrong() {
    let seed = SeededRng::seed_from_env(0xd1ff);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let rt = runtime();
    let (server, base) = beyond_history(&mut rng, 20_000, 200);
    let target = server.root().expect("root");
    let expected = contents(&server);
    let liar = copy_db(&server, 2);
    churn(&liar, &mut rng, 50);
    let faults = [
        Fault::Tamper,
        Fault::Truncate,
        Fault::Empty,
        Fault::OtherRoot(liar),
        Fault::Hang,
    ];
    for transport in TRANSPORTS {
        for fault in &faults {
            let client = copy_db(&base, 10_000);
            let old = contents(&client);
            let peers = vec![
                (server.clone(), Some(fault.clone())),
                (server.clone(), None),
            ];
            let summary = rt.block_on(sync(transport, &client, peers, target, test_config()));
            assert_eq!(contents(&client), expected, "{transport:?} {fault:?}");
            assert!(
                summary.diff_bytes > 0,
                "{transport:?} {fault:?}: a diff walk"
            );
            // Every state committed on the way holds, for each key, its value before or at
            // the target: nothing a liar made up.
            for root in client.retained_roots().expect("history") {
                let view = client.view_at(root).expect("view");
                for (k, v) in view.range(&[], None, usize::MAX).expect("range") {
                    let known = |set: &Contents| set.binary_search(&(k.clone(), v.clone())).is_ok();
                    assert!(
                        known(&expected) || known(&old),
                        "{transport:?} {fault:?}: a wrong value for {k:02x?} was written"
                    );
                }
            }
        }
    }
}

#[test]
fn a_node_diff_catch_up_retargets_mid_walk_and_resumes_after_a_cancel() {
    let seed = SeededRng::seed_from_env(0x7e57);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let rt = runtime();
    for transport in TRANSPORTS {
        let (server, client) = beyond_history(&mut rng, 20_000, 300);
        let slow = || vec![(server.clone(), Some(Fault::Slow(Duration::from_millis(30))))];
        rt.block_on(async {
            // Retargeted after the walk's first answer: it starts again from the new root.
            let cluster = Cluster::start(transport, slow()).await;
            let first = server.root().expect("root");
            let manager =
                SyncManager::start(client.clone(), cluster.client.clone(), first, test_config())
                    .expect("start");
            let mut progress = manager.progress();
            progress
                .wait_for(|p| p.proofs_accepted >= 1 && p.diff_bytes > 0)
                .await
                .expect("progress");
            assert!(
                !progress.borrow().done,
                "{transport:?}: retargeted mid-walk"
            );
            let second = churn(&server, &mut rng, 300);
            manager.update_target(second);
            let summary = manager.wait().await.expect("sync");
            assert_eq!(summary.target, second);
            assert_eq!(contents(&client), contents(&server), "{transport:?}");

            // Far behind again: cancelled after its first commit, then resumed.
            for _ in 0..4 {
                churn(&server, &mut rng, 300);
            }
            let third = server.root().expect("root");
            let manager =
                SyncManager::start(client.clone(), cluster.client.clone(), third, test_config())
                    .expect("start");
            let mut progress = manager.progress();
            progress
                .wait_for(|p| p.fraction > 0.0 || p.done)
                .await
                .expect("progress");
            manager.cancel();
            let first_run = manager.wait().await;
            let resumed =
                SyncManager::start(client.clone(), cluster.client.clone(), third, test_config())
                    .expect("start")
                    .wait()
                    .await
                    .expect("resumed sync");
            assert_eq!(client.root().expect("root"), third);
            assert_eq!(contents(&client), contents(&server), "{transport:?}");
            eprintln!(
                "{transport:?}: first run {:?}, resumed run {} bytes",
                first_run.map(|s| s.bytes),
                resumed.bytes
            );
        });
    }
}

#[test]
fn retargets_mid_sync_end_at_the_newest_root_without_starting_over() {
    let seed = SeededRng::seed_from_env(0x7a76);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let rt = runtime();
    for transport in TRANSPORTS {
        let server = random_db(&mut rng, 100_000, 64);
        let fresh_first = fresh_sync_bytes(&rt, transport, &server);
        let client = empty_db(BranchFactor::default());
        let config = SyncConfig {
            workers: 2,
            ..test_config()
        };
        // Retarget after each 8% of the keys received, as a chain producing blocks would.
        let (summary, retargets) = sync_while_changing(
            &rt,
            transport,
            (&server, &client),
            config,
            (0.08, 5),
            |server| {
                churn(server, &mut rng, 500);
            },
        );
        let fresh_last = fresh_sync_bytes(&rt, transport, &server);
        eprintln!(
            "{transport:?}: {retargets} retargets, {} bytes; fresh syncs: first root {fresh_first}, last root {fresh_last}",
            summary.bytes
        );
        assert!(
            summary.bytes < fresh_first + fresh_last && summary.bytes * 4 < fresh_last * 5,
            "{transport:?}: retargeting ({} bytes) must cost far less than starting over ({} + {})",
            summary.bytes,
            fresh_first,
            fresh_last
        );
    }
}

/// A database whose keys sit where region boundaries fall: every 1-byte key, keys ending in
/// zero bytes, prefixes of one another, and random keys around them.
fn boundary_db(rng: &mut SeededRng) -> Db {
    let db = empty_db(BranchFactor::default());
    let mut ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for b in 0..=255u8 {
        ops.push((vec![b], Some(rng.bytes(4))));
        ops.push((vec![b, 0], Some(rng.bytes(40))));
        ops.push((vec![b, 0, 0], Some(Vec::new())));
        ops.push((vec![b, 127, 0], Some(rng.bytes(2))));
    }
    for _ in 0..3000 {
        let len = 1 + rng.below(6) as usize;
        ops.push((rng.bytes(len), Some(rng.bytes(8))));
    }
    ops.push((Vec::new(), Some(b"empty key".to_vec())));
    db.propose(ops).expect("propose").commit().expect("commit");
    db
}

#[test]
fn keys_on_region_boundaries_sync_and_catch_up_exactly_with_tiny_answers() {
    let seed = SeededRng::seed_from_env(0xb0b0);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let rt = runtime();
    // Tiny answers: many partial proofs, skips and region edges.
    let config = SyncConfig {
        key_limit: 7,
        workers: 6,
        ..test_config()
    };
    for transport in TRANSPORTS {
        let server = boundary_db(&mut rng);
        let client = empty_db(BranchFactor::default());
        let r1 = server.root().expect("root");
        sync_from(&rt, transport, &client, &server, r1, config.clone());
        assert_eq!(contents(&client), contents(&server), "{transport:?} fresh");
        // Change values at boundary keys (and delete some) so change proofs cross them.
        let mut ops = Vec::new();
        for b in (0..=255u8).step_by(3) {
            ops.push((vec![b], Some(rng.bytes(5))));
            ops.push((vec![b, 0], None));
            ops.push((vec![b, 127, 0, 0], Some(rng.bytes(3))));
        }
        server
            .propose(ops)
            .expect("propose")
            .commit()
            .expect("commit");
        let r2 = server.root().expect("root");
        let summary = sync_from(&rt, transport, &client, &server, r2, config.clone());
        assert_eq!(
            contents(&client),
            contents(&server),
            "{transport:?} catch-up"
        );
        assert_eq!(
            summary.proofs_rejected, 0,
            "an honest server is never blamed"
        );
    }
}

#[test]
fn a_replica_with_unknown_contents_is_made_exact() {
    let mut rng = SeededRng::new(0x7e57);
    let rt = runtime();
    for transport in TRANSPORTS {
        let server = random_db(&mut rng, 5000, 4);
        // The replica holds some of the target's keys, stale values and junk: nothing the
        // server has in history.
        let client = empty_db(BranchFactor::default());
        let mut ops: Vec<_> = contents(&server)
            .into_iter()
            .step_by(2)
            .map(|(k, v)| (k, Some(v)))
            .collect();
        ops.extend((0..2000).map(|_| (rng.bytes(32), Some(rng.bytes(16)))));
        ops.extend((0..50).map(|i| (vec![i], Some(vec![i]))));
        client
            .propose(ops)
            .expect("propose")
            .commit()
            .expect("commit");
        let target = server.root().expect("root");
        let config = SyncConfig {
            key_limit: 300,
            ..test_config()
        };
        sync_from(&rt, transport, &client, &server, target, config);
        assert_eq!(contents(&client), contents(&server), "{transport:?}");
    }
}

#[test]
fn a_sync_cancelled_at_random_moments_resumes_in_process_to_the_exact_contents() {
    let seed = SeededRng::seed_from_env(0xca9ce1);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let rt = runtime();
    let server = boundary_db(&mut rng);
    let target = server.root().expect("root");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SyncConfig {
        key_limit: 16,
        workers: 3,
        ..test_config()
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        // A RocksDB replica, reopened for every attempt as a restarted process would.
        let client = Db::open(dir.path(), arbor::merkledb::Config::default()).expect("open");
        let done = rt.block_on(async {
            let cluster = Cluster::start(Transport::InProcess, vec![(server.clone(), None)]).await;
            let manager = SyncManager::start(
                client.clone(),
                cluster.client.clone(),
                target,
                config.clone(),
            )
            .expect("start");
            let handle = manager.handle();
            let delay = Duration::from_millis(1 + rng.below(10));
            let wait = manager.wait();
            tokio::pin!(wait);
            tokio::select! {
                result = &mut wait => return result.is_ok(),
                () = tokio::time::sleep(delay) => handle.cancel(),
            }
            wait.await.is_ok()
        });
        client.close().expect("close");
        drop(client);
        if done {
            break;
        }
        assert!(attempts < 1000, "never finished");
    }
    let client = Db::open(dir.path(), arbor::merkledb::Config::default()).expect("open");
    assert_eq!(client.root().expect("root"), target);
    assert_eq!(contents(&client), contents(&server));
    eprintln!("finished after {attempts} attempts");
    assert!(attempts > 1, "the test must actually interrupt the sync");
}

#[test]
fn retargets_with_tiny_answers_across_boundary_keys_never_blame_an_honest_server() {
    let seed = SeededRng::seed_from_env(0x7a7);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let rt = runtime();
    for transport in TRANSPORTS {
        let server = boundary_db(&mut rng);
        let client = empty_db(BranchFactor::default());
        let config = SyncConfig {
            key_limit: 7,
            workers: 2,
            ..test_config()
        };
        let (summary, _) = sync_while_changing(
            &rt,
            transport,
            (&server, &client),
            config,
            (0.2, 4),
            |server| {
                let mut ops = Vec::new();
                for b in 0..=255u8 {
                    if rng.below(4) != 0 {
                        continue;
                    }
                    ops.push((vec![b], Some(rng.bytes(3))));
                    let value = if rng.below(2) == 0 {
                        None
                    } else {
                        Some(vec![b])
                    };
                    ops.push((vec![b, 0], value));
                    ops.push((rng.bytes(2), Some(rng.bytes(2))));
                }
                server
                    .propose(ops)
                    .expect("propose")
                    .commit()
                    .expect("commit");
            },
        );
        assert_eq!(
            summary.proofs_rejected, 0,
            "{transport:?}: an honest server was blamed"
        );
    }
}

/// A peer that takes requests and never answers (its requests would time out only after ten
/// minutes) cannot hold the end of a sync: once every region is being fetched, its requests
/// are sent to the honest peer too, and the sync ends without waiting for it.
#[test]
fn a_peer_that_never_answers_does_not_hold_the_tail() {
    let seed = SeededRng::seed_from_env(31);
    let _reporter = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let server = random_db(&mut rng, 20_000, 0);
    let target = server.root().expect("root");
    let expected = contents(&server);
    let rt = runtime();
    for transport in TRANSPORTS {
        let client = empty_db(BranchFactor::default());
        let config = SyncConfig {
            request_timeout: Duration::from_secs(600),
            ..test_config()
        };
        let peers = vec![(server.clone(), None), (server.clone(), Some(Fault::Hang))];
        let summary = rt.block_on(sync(transport, &client, peers, target, config));
        assert_eq!(contents(&client), expected, "{transport:?}");
        let (honest, hung) = (&summary.peers[0], &summary.peers[1]);
        assert_eq!(hung.answers, 0, "{transport:?}: {hung:?}");
        // Its requests were copied to the honest peer, which answered first, and its own
        // copies were cancelled: nothing of it stays in flight.
        assert!(hung.overtaken > 0, "{transport:?}: it was asked: {hung:?}");
        assert_eq!(hung.in_flight, 0, "{transport:?}: {hung:?}");
        assert_eq!(honest.keys, summary.keys, "{transport:?}");
    }
}

/// A peer one commit behind the target (it announced an older root) still carries a share: it
/// answers that it lacks the target, is asked for ranges at the root it holds, and change
/// proofs from the up-to-date peer bring those ranges to the target.
#[test]
fn a_peer_behind_the_target_serves_ranges_at_the_root_it_holds() {
    let seed = SeededRng::seed_from_env(41);
    let _reporter = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let ahead = random_db(&mut rng, 30_000, 16);
    let behind = copy_db(&ahead, 16);
    let old_root = behind.root().expect("root");
    let target = churn(&ahead, &mut rng, 300);
    let expected = contents(&ahead);
    let rt = runtime();
    for transport in TRANSPORTS {
        let client = empty_db(BranchFactor::default());
        let summary = rt.block_on(async {
            let cluster = Cluster::start(
                transport,
                vec![(ahead.clone(), None), (behind.clone(), None)],
            )
            .await;
            let manager = SyncManager::start(
                client.clone(),
                cluster.client.clone(),
                target,
                test_config(),
            )
            .expect("start");
            manager.peer_holds(1, old_root);
            tokio::time::timeout(Duration::from_secs(120), manager.wait())
                .await
                .expect("in time")
                .expect("sync")
        });
        assert_eq!(contents(&client), expected, "{transport:?}");
        let behind_stats = &summary.peers[1];
        assert!(behind_stats.answers > 0, "{transport:?}: {behind_stats:?}");
        assert!(behind_stats.keys > 0, "{transport:?}: {behind_stats:?}");
        assert_eq!(behind_stats.invalid, 0, "{transport:?}");
    }
}

/// Keys under a long common prefix (an application's table prefix, unhashed keys) are fetched
/// with many requests in flight, as random keys are: the keyspace is measured past the prefix
/// and each remainder is cut into pieces by the density of keys its answer measured. (Measured
/// by their first eight bytes, such keys all sat at one point: no region could be split and the
/// sync ran one request at a time.)
#[test]
fn keys_under_a_long_common_prefix_are_fetched_in_parallel() {
    let seed = SeededRng::seed_from_env(53);
    let _reporter = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let prefix = b"accounts/2026/";
    let server = empty_db(BranchFactor::default());
    let ops: Vec<_> = (0..8_000)
        .map(|_| {
            let mut key = prefix.to_vec();
            key.extend_from_slice(&rng.bytes(12));
            (key, Some(rng.bytes(32)))
        })
        .collect();
    server
        .propose(ops)
        .expect("propose")
        .commit()
        .expect("commit");
    let target = server.root().expect("root");
    let expected = contents(&server);
    let rt = runtime();
    for transport in TRANSPORTS {
        let held = std::sync::Arc::new(Concurrency::default());
        let client = empty_db(BranchFactor::default());
        let config = SyncConfig {
            key_limit: 256,
            ..test_config()
        };
        let fault = Fault::Held(held.clone(), Duration::from_millis(20));
        let summary = rt.block_on(sync(
            transport,
            &client,
            vec![(server.clone(), Some(fault))],
            target,
            config,
        ));
        assert_eq!(contents(&client), expected, "{transport:?}");
        assert!(
            summary.fraction > 0.999,
            "{transport:?}: {}",
            summary.fraction
        );
        // 8,000 keys in answers of at most 256: 32 or more answers with keys, and no reason to
        // ask for them one at a time.
        assert!(
            held.peak() >= 4,
            "{transport:?}: at most {} answers with keys in flight at once",
            held.peak()
        );
    }
}
