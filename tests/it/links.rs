//! A sync over emulated long links (`arbor-linkemu` in front of real gRPC servers): a near fast
//! peer and a far narrow one together, and a link cut in the middle of a sync. The sync must end
//! at the target root either way; how fast is the WAN benchmark's business, not a test's.

use std::{sync::Arc, time::Duration};

use arbor::{
    merkledb::{
        Config, Db,
        test_utils::{SeedReporter, SeededRng},
    },
    sync::{GrpcClient, ServerConfig, StateSyncService, SyncConfig, SyncManager},
};
use arbor_linkemu::{Link, LinkConfig};

/// A database of `n` random keys.
fn random_db(rng: &mut SeededRng, n: usize) -> Db {
    let db = Db::open_memory(Config::default()).expect("open");
    let ops: Vec<_> = (0..n)
        .map(|_| (rng.bytes(32), Some(rng.bytes_between(1, 80))))
        .collect();
    db.propose(ops).expect("propose").commit().expect("commit");
    db
}

/// Serves `db` on 127.0.0.1 behind a link with `config`; returns the link.
async fn serve_behind(db: Db, config: LinkConfig) -> Link {
    let (listener, addr) = arbor::sync::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let service = StateSyncService::new(db, ServerConfig::default());
    tokio::spawn(arbor::sync::serve(
        service,
        listener,
        std::future::pending(),
    ));
    Link::start("127.0.0.1:0".parse().expect("addr"), addr, config)
        .await
        .expect("link")
}

#[test]
fn a_sync_over_a_near_and_a_far_link_with_a_cut_ends_at_the_target() {
    let seed = SeededRng::seed_from_env(0x11_4c);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let server = random_db(&mut rng, 30_000);
    let target = server.root().expect("root");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let near = LinkConfig {
            one_way_latency: Duration::from_millis(2),
            ..LinkConfig::default()
        };
        let far = LinkConfig {
            one_way_latency: Duration::from_millis(40),
            bandwidth_bytes_per_sec: Some(2_500_000),
            queue_bytes: 128 << 10,
        };
        let links = [
            serve_behind(server.clone(), near).await,
            serve_behind(server.clone(), far).await,
        ];
        let urls: Vec<String> = links
            .iter()
            .map(|l| format!("http://{}", l.addr()))
            .collect();
        let client = Arc::new(GrpcClient::connect_lazy(&urls).expect("client"));
        let replica = Db::open_memory(Config::default().with_history_len(0)).expect("open");
        let config = SyncConfig {
            key_limit: 500,
            request_timeout: Duration::from_secs(5),
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(200),
            ..SyncConfig::default()
        };
        let manager = SyncManager::start(replica.clone(), client, target, config).expect("start");
        // Cut both links once the sync is under way: connections drop, requests fail, the
        // manager retries and the channels reconnect.
        let mut progress = manager.progress();
        let cut = async {
            let _ = progress.wait_for(|p| p.fraction > 0.0 || p.done).await;
            for link in &links {
                link.cut();
            }
            !progress.borrow().done
        };
        let (summary, cut_midway) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(120), manager.wait()),
            cut
        );
        let summary = summary.expect("in time").expect("sync succeeds");
        assert!(cut_midway, "the sync ended before the links were cut");
        assert!(summary.done);
        assert_eq!(replica.root().expect("root"), target);
        let answered: Vec<u64> = summary.peers.iter().map(|p| p.answers).collect();
        assert!(
            answered.iter().sum::<u64>() >= 60,
            "30k keys need 60 answers of 500: {answered:?}"
        );
    });
}
