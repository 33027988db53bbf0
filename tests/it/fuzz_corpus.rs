//! The fuzz targets' checks (`fuzz/checks.rs`) on stable Rust: every file of the seed corpus
//! (`fuzz/corpus/<target>/`) is replayed, and honest inputs built here (proofs and requests the
//! fixture's databases produce) are run through the same checks, with mutations of them.
//! `ARBOR_WRITE_CORPUS=1` writes the honest inputs into the corpus directories (to refresh the
//! seeds after a format change).

use std::path::{Path, PathBuf};

use arbor_merkledb::{ChangeOrRangeProof, test_utils::SeededRng};
use arbor_sync::{ChangeProofRequest, NodeDiffRequest, RangeProofRequest, SyncRequest, pb};
use prost::Message;

#[path = "../../fuzz/checks.rs"]
mod checks;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Honest inputs for each target, from the fixture.
fn honest_inputs(target: &str) -> Vec<Vec<u8>> {
    let checks::Fixture { old, new } = checks::fixture();
    let (old_root, new_root) = (old.root().expect("root"), new.root().expect("root"));
    type Bounds<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, usize);
    let bounds: [Bounds<'_>; 4] = [
        (None, None, 1000),
        (None, None, 10),
        (Some(&[0x40]), Some(&[0x80, 0x01]), 1000),
        (Some(&[0xf0]), None, 1000),
    ];
    match target {
        "node_diff" => checks::node_diff_queries()
            .into_iter()
            .map(|(query, _, _)| {
                let answer = new
                    .node_diffs_at(new_root, &[query], usize::MAX)
                    .expect("honest");
                pb::NodeDiffResponse::from(answer).encode_to_vec()
            })
            .collect(),
        "node_codec" => {
            // AvalancheGo's dbNode layout, written out by hand: value (0 | 1 ‖ len ‖ bytes),
            // child count, then per child: index, compressed key (bit length ‖ bytes), ID,
            // has_value.
            let child = |index: u8, key: &[u8], bits: u8| {
                let mut out = vec![index, bits];
                out.extend_from_slice(key);
                out.extend_from_slice(&[index; 32]);
                out.push(index % 2);
                out
            };
            let mut full = vec![1, 3, b'a', b'b', b'c', 16];
            for index in 0..16u8 {
                full.extend(child(index, &[index << 4], 4));
            }
            let mut two = vec![0, 2];
            two.extend(child(3, &[0xab, 0xc0], 12));
            two.extend(child(9, &[], 0));
            vec![vec![0, 0], full, two]
        }
        "range_proof" => bounds
            .iter()
            .map(|&(start, end, max)| {
                let proof = new
                    .range_proof_at(new_root, start, end, max)
                    .expect("proof");
                pb::RangeProof::from(proof).encode_to_vec()
            })
            .collect(),
        "change_proof" => bounds
            .iter()
            .map(|&(start, end, max)| {
                let proof = new
                    .change_proof(old_root, new_root, start, end, max)
                    .expect("proof");
                pb::SyncGetChangeProofResponse::from(ChangeOrRangeProof::Change(proof))
                    .encode_to_vec()
            })
            .collect(),
        "request" => bounds
            .iter()
            .flat_map(|&(start, end, max)| {
                let range = SyncRequest::Range(RangeProofRequest {
                    root: new_root,
                    start: start.map(<[u8]>::to_vec),
                    end: end.map(<[u8]>::to_vec),
                    key_limit: max as u32,
                    bytes_limit: 1 << 20,
                });
                let change = SyncRequest::Change(ChangeProofRequest {
                    start_root: old_root,
                    end_root: new_root,
                    start: start.map(<[u8]>::to_vec),
                    end: end.map(<[u8]>::to_vec),
                    key_limit: max as u32,
                    bytes_limit: 1 << 20,
                });
                [range, change].map(|r| pb::Request::from(r).encode_to_vec())
            })
            .chain(
                checks::node_diff_queries()
                    .into_iter()
                    .map(|(query, _, _)| {
                        let request = SyncRequest::NodeDiff(NodeDiffRequest {
                            root: new_root,
                            queries: vec![query],
                            bytes_limit: 1 << 20,
                        });
                        pb::Request::from(request).encode_to_vec()
                    }),
            )
            .collect(),
        other => panic!("no honest inputs for {other}"),
    }
}

#[test]
fn seed_corpus_and_honest_inputs_pass_every_check() {
    let seed = SeededRng::seed_from_env(0xf022);
    let _report = arbor_merkledb::test_utils::SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let write = std::env::var_os("ARBOR_WRITE_CORPUS").is_some();
    for (target, check) in checks::TARGETS {
        let dir = corpus_dir(target);
        let honest = honest_inputs(target);
        assert!(!honest.is_empty(), "{target}: no honest inputs");
        if write {
            std::fs::create_dir_all(&dir).expect("corpus dir");
            for (i, input) in honest.iter().enumerate() {
                std::fs::write(dir.join(format!("honest-{i}")), input).expect("write seed");
            }
        }
        let mut replayed = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
            let path = entry.expect("entry").path();
            let input = std::fs::read(&path).expect("read seed");
            check(&input);
            replayed += 1;
        }
        assert!(replayed > 0, "{target}: empty corpus at {dir:?}");
        for input in &honest {
            check(input);
            // Single-byte mutations: flipped bits, truncations.
            for _ in 0..200 {
                let mut mutated = input.clone();
                if mutated.is_empty() {
                    break;
                }
                let at = rng.below(mutated.len() as u64) as usize;
                match rng.below(3) {
                    0 => mutated[at] ^= 1 << rng.below(8),
                    1 => mutated.truncate(at),
                    _ => mutated[at] = rng.next_u64() as u8,
                }
                check(&mutated);
            }
        }
    }
}
