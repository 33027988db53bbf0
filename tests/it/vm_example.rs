//! The example VM (`examples/vm_network.rs`): a sync over an application's own message network,
//! with peers joining and leaving mid-sync.

#[path = "../../examples/vm_network.rs"]
mod vm_network;

use arbor_merkledb::test_utils::SeedReporter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_syncs_over_its_own_network_while_peers_come_and_go() {
    let seed = std::env::var("ARBOR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let _report = SeedReporter { seed };
    let report = vm_network::run(30_000, seed).await.expect("the sync ends");
    assert_eq!(report.root, report.target, "the replica ends at the target");
    assert_eq!(report.keys, 30_000);
    let names: Vec<&str> = report.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["node-1", "node-2", "node-3"],
        "every peer that joined is scheduled"
    );
    let first = &report.peers[0];
    assert!(first.departed, "node-1 left mid-sync: {first:?}");
    assert_eq!(
        first.failures + first.invalid,
        0,
        "leaving is not a fault: {first:?}"
    );
    assert_eq!(first.in_flight, 0);
    for joined in &report.peers[1..] {
        assert!(!joined.departed);
        assert!(
            joined.keys > 0,
            "a peer that joined mid-sync took a share: {joined:?}"
        );
    }
    assert_eq!(report.peers.iter().map(|p| p.keys).sum::<u64>(), 30_000);
}
