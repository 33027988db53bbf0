//! What each fuzz target checks, as plain functions over arbitrary bytes: the cargo-fuzz targets
//! (`fuzz/fuzz_targets/`) call them under libFuzzer, and the root package's tests replay the
//! seed corpus (`fuzz/corpus/<target>/`) through them on stable Rust. Every input a peer can send
//! must be rejected or accepted without a panic; the asserts below are the properties beyond that.

use std::sync::OnceLock;

use arbor_merkledb::{
    BranchFactor, ChangeOrRangeProof, Config, Db, Hash, Key, NodeDiff, NodeQuery, RangeProof,
    VerifiedChild, verify_range_proof,
};
use arbor_sync::{Limits, SyncRequest, handle_request_bytes, pb};
use prost::Message;

/// A check: panics when `data` breaks a property.
pub(crate) type Check = fn(&[u8]);

/// Request bounds (`None` = unbounded).
type Bounds = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The targets, by name (the corpus directory and the fuzz binary share it).
pub(crate) const TARGETS: [(&str, Check); 5] = [
    ("node_codec", node_codec),
    ("range_proof", range_proof),
    ("change_proof", change_proof),
    ("request", request),
    ("node_diff", node_diff),
];

/// Keys of the fixed database the proofs are checked against.
const KEYS: u32 = 300;

/// Two fixed in-memory databases: `old` (keys `0..KEYS`) and `new` (`old` with every third key
/// changed and every seventh deleted), so change proofs `old → new` exist.
pub(crate) struct Fixture {
    /// The database at the old root (the local state a change proof applies to).
    pub(crate) old: Db,
    /// The database at the new root, with the old root in its history.
    pub(crate) new: Db,
}

fn key(i: u32) -> Vec<u8> {
    // Spread over the keyspace, some sharing long prefixes.
    let mut k = i.wrapping_mul(2_654_435_761).to_be_bytes().to_vec();
    k.extend_from_slice(&[(i % 3) as u8; 3][..(i % 4) as usize]);
    k
}

/// The shared fixture, built once per process.
pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ops: Vec<_> = (0..KEYS)
            .map(|i| (key(i), Some(i.to_le_bytes().repeat(1 + (i % 20) as usize))))
            .collect();
        let changes: Vec<_> = (0..KEYS)
            .filter(|i| i % 3 == 0 || i % 7 == 0)
            .map(|i| (key(i), (i % 7 != 0).then(|| b"changed".to_vec())))
            .collect();
        let open = || Db::open_memory(Config::default()).expect("open");
        let (old, new) = (open(), open());
        for db in [&old, &new] {
            db.propose(ops.clone())
                .expect("propose")
                .commit()
                .expect("commit");
        }
        new.propose(changes)
            .expect("propose")
            .commit()
            .expect("commit");
        Fixture { old, new }
    })
}

/// Node records as stored: a record that decodes is canonical (it re-encodes to the same
/// bytes), so one node has exactly one encoding and its hash cannot be forged by re-encoding.
pub(crate) fn node_codec(data: &[u8]) {
    arbor_merkledb::fuzzing::check_node_codec(data);
}

/// Range proofs from the wire, verified against the fixture's root: a proof that verifies claims
/// the truth (exactly the fixture's key-values of the range it covers), and none verifies against
/// a root nobody computed.
pub(crate) fn range_proof(data: &[u8]) {
    let Ok(message) = pb::RangeProof::decode(data) else {
        return;
    };
    let Ok(proof) = RangeProof::try_from(message) else {
        return;
    };
    let db = &fixture().new;
    let root = db.root().expect("root");
    let made_up = Hash([3; 32]);
    for (start, end) in bounds_of(data) {
        let (start, end) = (start.as_deref(), end.as_deref());
        let bf = BranchFactor::Sixteen;
        assert!(
            verify_range_proof(&proof, start, end, made_up, 1000, bf).is_err(),
            "a proof verified against a made-up root"
        );
        if verify_range_proof(&proof, start, end, root, 1000, bf).is_ok() {
            let largest = proof.key_values.last().map(|kv| kv.key.as_slice()).or(end);
            let truth = db
                .view()
                .expect("view")
                .range(start.unwrap_or_default(), largest, usize::MAX)
                .expect("range");
            let claimed: Vec<_> = proof
                .key_values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect();
            assert_eq!(claimed, truth, "a verified proof claims a falsehood");
        }
    }
}

/// The request bounds a verifier might use for `data`: unbounded, and bounds taken from the
/// proof's own first and last keys (the honest seeds' bounds).
fn bounds_of(data: &[u8]) -> Vec<Bounds> {
    let mut out = vec![(None, None)];
    if let Ok(message) = pb::RangeProof::decode(data)
        && let Ok(proof) = RangeProof::try_from(message)
        && let (Some(first), Some(last)) = (proof.key_values.first(), proof.key_values.last())
    {
        out.push((Some(first.key.clone()), Some(last.key.clone())));
    }
    out
}

/// Change-proof answers from the wire, verified against the fixture's old database towards its
/// new root: never a panic; a change proof that verifies, applied to the old state, gives the new
/// state's contents over the range it covers.
pub(crate) fn change_proof(data: &[u8]) {
    let Ok(message) = pb::SyncGetChangeProofResponse::decode(data) else {
        return;
    };
    let Ok(ChangeOrRangeProof::Change(proof)) = ChangeOrRangeProof::try_from(message) else {
        return;
    };
    let Fixture { old, new } = fixture();
    let target = new.root().expect("root");
    if old
        .verify_change_proof(&proof, None, None, target, 1000)
        .is_err()
    {
        return;
    }
    let largest = proof.key_changes.last().map(|c| c.key.clone());
    let view = old
        .propose(
            proof
                .key_changes
                .iter()
                .map(|c| (c.key.clone(), c.value.clone())),
        )
        .expect("propose");
    let after = view
        .range(&[], largest.as_deref(), usize::MAX)
        .expect("range");
    let truth = new
        .view()
        .expect("view")
        .range(&[], largest.as_deref(), usize::MAX)
        .expect("range");
    assert_eq!(after, truth, "a verified change proof leads elsewhere");
}

/// Requests from the wire: one that converts survives a round trip unchanged, and the server's
/// bytes-in/bytes-out handler answers anything with bytes or an error, never a panic.
pub(crate) fn request(data: &[u8]) {
    if let Ok(message) = pb::Request::decode(data)
        && let Ok(request) = SyncRequest::try_from(message)
    {
        let again = SyncRequest::try_from(pb::Request::from(request.clone()));
        assert_eq!(
            again.as_ref(),
            Ok(&request),
            "a request changed in a round trip"
        );
    }
    let limits = Limits::default();
    let _answer = handle_request_bytes(&fixture().new, data, &limits);
}

/// The node-diff questions a replica at the fixture's old root asks about the new root: the root
/// (its key unknown, no IDs sent) and the root's first differing inner child (with the old
/// trie's IDs below it), each with its expected key and ID. From honest, verified answers.
pub(crate) fn node_diff_queries() -> Vec<(NodeQuery, Option<Key>, Hash)> {
    let Fixture { old, new } = fixture();
    let bf = BranchFactor::default();
    let root = new.root().expect("root");
    let top = NodeQuery {
        path: None,
        local: vec![],
    };
    let mut queries = vec![(top.clone(), None, root)];
    let honest = new
        .node_diffs_at(root, &[top], usize::MAX)
        .expect("root diff");
    let children = honest[0].verify(None, root, &[], bf).expect("honest");
    if let Some((key, id)) = children.into_iter().find_map(|c| match c {
        VerifiedChild::Node { key, id, .. } => Some((key, id)),
        _ => None,
    }) {
        let local = old
            .subtries_below(std::slice::from_ref(&key))
            .expect("ids")
            .remove(0);
        queries.push((
            NodeQuery {
                path: Some(key.clone()),
                local,
            },
            Some(key),
            id,
        ));
    }
    queries
}

/// Node-diff answers from the wire, checked as a replica at the fixture's old root checks them
/// against the new root: never a panic, and a node diff that verifies tells the truth (the same
/// key, value and differing children as the honest answer).
pub(crate) fn node_diff(data: &[u8]) {
    let Ok(message) = pb::NodeDiffResponse::decode(data) else {
        return;
    };
    let Ok(diffs) = Vec::<NodeDiff>::try_from(message) else {
        return;
    };
    let new = &fixture().new;
    let root = new.root().expect("root");
    let bf = BranchFactor::default();
    for diff in &diffs {
        for (query, key, id) in node_diff_queries() {
            let Ok(children) = diff.verify(key.as_ref(), id, &query.local, bf) else {
                continue;
            };
            let honest = new
                .node_diffs_at(root, std::slice::from_ref(&query), usize::MAX)
                .expect("honest")
                .remove(0);
            let truth = honest
                .verify(key.as_ref(), id, &query.local, bf)
                .expect("honest verifies");
            assert_eq!(
                (&diff.key, &diff.value, &children),
                (&honest.key, &honest.value, &truth),
                "a verified node diff differs from the truth"
            );
        }
    }
}
