use std::collections::{BTreeMap, BTreeSet};

use arbor_merkledb::{
    BranchFactor, Config,
    test_utils::{SeedReporter, SeededRng},
};

use super::*;
use crate::manager::keyspace::{
    midpoint,
    tests::{edgy_byte, edgy_bytes},
};

type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

// ---- find_next_key: helpers ----

fn open(bf: BranchFactor) -> Db {
    Db::open_memory(Config::default().with_branch_factor(bf)).expect("open")
}

fn put(db: &Db, key: &[u8], value: &[u8]) {
    db.propose(vec![(key.to_vec(), Some(value.to_vec()))])
        .expect("propose")
        .commit()
        .expect("commit");
}

fn delete(db: &Db, key: &[u8]) {
    db.propose(vec![(key.to_vec(), None)])
        .expect("propose")
        .commit()
        .expect("commit");
}

fn db_of(bf: BranchFactor, entries: &Entries) -> Db {
    let db = open(bf);
    if !entries.is_empty() {
        let ops = entries.iter().map(|(k, v)| (k.clone(), Some(v.clone())));
        db.propose(ops).expect("propose").commit().expect("commit");
    }
    db
}

fn proof_path(db: &Db, key: &[u8]) -> Vec<ProofNode> {
    db.proof(key).expect("proof").path
}

/// The last key and the end proof of a range proof of `[.., end]` with at most `max` keys.
fn range_end_proof(db: &Db, end: Option<&[u8]>, max: usize) -> (Vec<u8>, Vec<ProofNode>) {
    let root = db.root().expect("root");
    let proof = db
        .range_proof_at(root, None, end, max)
        .expect("range proof");
    let last = proof
        .key_values
        .last()
        .expect("some key-values")
        .key
        .clone();
    (last, proof.end_proof)
}

fn next_key(
    local: &Db,
    last: &[u8],
    range_end: Option<&[u8]>,
    end_proof: &[ProofNode],
) -> Option<Vec<u8>> {
    find_next_key(local, last, range_end, end_proof).expect("find_next_key")
}

/// Upstream `generateTrie`: `count` keys of 0..50 random bytes, 40% extending an earlier key.
fn random_trie_entries(rng: &mut SeededRng, count: usize) -> Entries {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut entries = Entries::new();
    while entries.len() < count {
        let key = if keys.len() > 2 && rng.below(25) < 10 {
            let prefix = &keys[rng.below(keys.len() as u64) as usize];
            [prefix.as_slice(), &rng.bytes_between(0, 50)].concat()
        } else {
            rng.bytes_between(0, 50)
        };
        if entries.contains_key(&key) {
            continue;
        }
        keys.push(key.clone());
        entries.insert(key, rng.bytes_between(1, 51));
    }
    entries
}

/// Upstream `isPrefix(data, prefix)` for branch factor 16: `prefix` may end in a zero-padded
/// nibble.
fn nibble_prefix(data: &[u8], prefix: &[u8]) -> bool {
    let Some((&last, head)) = prefix.split_last() else {
        return true;
    };
    if last % 16 == 0 {
        data.len() > head.len() && data.starts_with(head) && data[head.len()] >> 4 == last >> 4
    } else {
        data.starts_with(prefix)
    }
}

// ---- find_next_key: upstream tests ----

#[test]
fn in_sync() {
    let seed = SeededRng::seed_from_env(0x1515);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    for _ in 0..3 {
        let entries = random_trie_entries(&mut rng, 1000);
        let target = db_of(BranchFactor::Sixteen, &entries);
        let local = db_of(BranchFactor::Sixteen, &entries);
        let (last, end_proof) = range_end_proof(&target, None, 500);
        assert_eq!(next_key(&local, &last, None, &end_proof), None);

        // An extra local key after the last one.
        let new_key = midpoint(Some(&last), None).expect("midpoint");
        put(&local, &new_key, &[1]);
        let next = next_key(&local, &last, None, &end_proof).expect("a difference");
        assert!(
            last < next && next <= new_key,
            "{last:?} < {next:?} <= {new_key:?}"
        );

        // A range end before the new key's subtrie: nothing to do in range.
        let mut before_new = Vec::new();
        for (i, &byte) in new_key.iter().enumerate() {
            before_new.push(byte);
            if last.get(i) == Some(&byte) {
                continue;
            }
            if byte >= 16 {
                before_new[i] -= 16;
                break;
            }
            if byte > 0 {
                before_new[i] -= 1;
                break;
            }
        }
        assert_eq!(
            next_key(&local, &last, Some(&before_new), &end_proof),
            None,
            "range end {before_new:?}"
        );
    }
}

#[test]
fn deleted() {
    let target = open(BranchFactor::Sixteen);
    put(&target, &[0x10], &[1]);
    put(&target, &[0x11, 0x11], &[1]);
    // 0x12 was "received" but is not in the trie: the path stops on it.
    let no_extra_node = proof_path(&target, &[0x12]);
    // 0x11 was "received" but is not in the trie: the path ends at 0x1111, extending it.
    let extra_node = proof_path(&target, &[0x11]);

    let local = open(BranchFactor::Sixteen);
    put(&local, &[0x10], &[1]);
    put(&local, &[0x11, 0x11], &[1]);
    put(&local, &[0x13], &[3]);
    assert_eq!(
        next_key(&local, &[0x12], Some(&[0x20]), &no_extra_node),
        Some(vec![0x13])
    );
    assert_eq!(
        next_key(&local, &[0x11], Some(&[0x20]), &extra_node),
        Some(vec![0x13])
    );
}

#[test]
fn branch_in_local() {
    let target = open(BranchFactor::Sixteen);
    put(&target, &[0x11], &[1]);
    put(&target, &[0x11, 0x11], &[2]);
    let end_proof = proof_path(&target, &[0x11, 0x11]);

    let local = open(BranchFactor::Sixteen);
    put(&local, &[0x11], &[1]);
    put(&local, &[0x11, 0x11], &[2]);
    put(&local, &[0x11, 0x15], &[4]);
    assert_eq!(
        next_key(&local, &[0x11, 0x11], Some(&[0x20]), &end_proof),
        Some(vec![0x11, 0x15])
    );
}

#[test]
fn branch_in_received() {
    let target = open(BranchFactor::Sixteen);
    put(&target, &[0x11], &[1]);
    put(&target, &[0x12], &[2]);
    put(&target, &[0x12, 0xa0], &[4]);
    let end_proof = proof_path(&target, &[0x12]);

    let local = open(BranchFactor::Sixteen);
    put(&local, &[0x11], &[1]);
    put(&local, &[0x12], &[2]);
    put(&local, &[0x12, 0xa0], &[4]);
    delete(&local, &[0x12, 0xa0]);
    assert_eq!(
        next_key(&local, &[0x12], Some(&[0x20]), &end_proof),
        Some(vec![0x12, 0xa0])
    );
}

#[test]
fn extra_values() {
    let seed = SeededRng::seed_from_env(0xe7a1);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    for _ in 0..10 {
        let entries = random_trie_entries(&mut rng, 1000);
        let target = db_of(BranchFactor::Sixteen, &entries);
        let local = db_of(BranchFactor::Sixteen, &entries);
        let (last, end_proof) = range_end_proof(&target, None, 500);
        let mid = midpoint(Some(&last), None).expect("midpoint");

        // An extra local value: the next key is a prefix of it.
        put(&local, &mid, &[1]);
        let next = next_key(&local, &last, None, &end_proof).expect("a difference");
        assert!(
            nibble_prefix(&mid, &next),
            "{next:?} is not a prefix of {mid:?}"
        );

        // An extra target value instead.
        delete(&local, &mid);
        put(&target, &mid, &[1]);
        let (last2, end_proof) = range_end_proof(&target, Some(&last), 500);
        assert_eq!(last2, last);
        let next = next_key(&local, &last, None, &end_proof).expect("a difference");
        assert!(
            nibble_prefix(&mid, &next),
            "{next:?} is not a prefix of {mid:?}"
        );
    }
}

#[test]
fn different_child() {
    let seed = SeededRng::seed_from_env(0xd1ff);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    for _ in 0..10 {
        let entries = random_trie_entries(&mut rng, 500);
        let target = db_of(BranchFactor::Sixteen, &entries);
        let local = db_of(BranchFactor::Sixteen, &entries);
        let (last, _) = range_end_proof(&target, None, 100);

        // The local trie has a different child than the target below the last key.
        let extended = [last.as_slice(), &[16]].concat();
        put(&local, &extended, &[1]);
        put(&target, &extended, &[2]);

        let (last2, end_proof) = range_end_proof(&target, Some(&last), 100);
        assert_eq!(last2, last);
        assert_eq!(
            next_key(&local, &last, None, &end_proof),
            Some(extended.clone())
        );
    }
}

#[test]
fn empty_end_proof_resumes_right_after_the_key() {
    let local = open(BranchFactor::Sixteen);
    put(&local, &[0x10], &[1]);
    assert_eq!(next_key(&local, &[0x10], None, &[]), Some(vec![0x10, 0]));
    assert_eq!(
        next_key(&local, &[0x10], Some(&[0x11]), &[]),
        Some(vec![0x10, 0])
    );
    // Unlike upstream, the range end applies here too.
    assert_eq!(next_key(&local, &[0x10], Some(&[0x10, 0]), &[]), None);
}

// ---- find_next_key: upstream's defects ----

#[test]
fn defect_a_end_proof_root_off_the_key_path() {
    // The last change deleted 0x10; the target's root (nibble 2) is not on 0x10's path.
    let target = open(BranchFactor::Sixteen);
    put(&target, &[0x20], &[1]);
    put(&target, &[0x21], &[1]);
    let end_proof = proof_path(&target, &[0x10]);
    assert_eq!(end_proof.len(), 1);
    assert!(!Key::from_bytes(&[0x10]).has_prefix(&end_proof[0].key));

    let local = open(BranchFactor::Sixteen);
    put(&local, &[0x10], &[1]);
    put(&local, &[0x20], &[2]);
    assert_eq!(
        next_key(&local, &[0x10], None, &end_proof),
        Some(vec![0x10, 0])
    );
    assert_eq!(
        next_key(&local, &[0x10], Some(&[0x10, 0]), &end_proof),
        None
    );
}

#[test]
fn defect_b_local_root_off_the_key_path() {
    let target = open(BranchFactor::Sixteen);
    for key in [[0x10], [0x11], [0x20], [0x21]] {
        put(&target, &key, &[1]);
    }
    let end_proof = proof_path(&target, &[0x10]);
    // The local root (nibble 2) is not on 0x10's path; upstream returned "complete" and
    // never fetched 0x11.
    let local = open(BranchFactor::Sixteen);
    put(&local, &[0x20], &[1]);
    put(&local, &[0x21], &[1]);
    assert_eq!(
        next_key(&local, &[0x10], Some(&[0x30]), &end_proof),
        Some(vec![0x10, 0])
    );
}

#[test]
fn defect_c_empty_local_trie() {
    let target = open(BranchFactor::Sixteen);
    put(&target, &[0x10], &[1]);
    put(&target, &[0x11], &[1]);
    let end_proof = proof_path(&target, &[0x10]);
    let local = open(BranchFactor::Sixteen);
    assert_eq!(
        next_key(&local, &[0x10], None, &end_proof),
        Some(vec![0x10, 0])
    );
    assert_eq!(
        next_key(&local, &[0x10], Some(&[0x10, 0]), &end_proof),
        None
    );
}

#[test]
fn local_exclusion_node_after_the_key_is_compared() {
    // Upstream drops the local path's last node (0x0102, off 0x0101's path) and never
    // compares it, so it answers "complete" while the local trie holds 0x0102.
    let target = open(BranchFactor::TwoFiftySix);
    put(&target, &[0], &[1]);
    put(&target, &[1, 1], &[1]);
    let end_proof = proof_path(&target, &[1, 1]);
    let local = open(BranchFactor::TwoFiftySix);
    put(&local, &[0], &[1]);
    put(&local, &[1, 2], &[1]);
    assert_eq!(
        next_key(&local, &[1, 1], None, &end_proof),
        Some(vec![1, 2])
    );
}

#[test]
fn received_exclusion_node_after_the_key_is_compared() {
    // The target's path for 0x0101 ends at 0x0102, off the key's path.
    let target = open(BranchFactor::TwoFiftySix);
    put(&target, &[0], &[1]);
    put(&target, &[1, 2], &[1]);
    let end_proof = proof_path(&target, &[1, 1]);
    let local = open(BranchFactor::TwoFiftySix);
    put(&local, &[0], &[1]);
    put(&local, &[1, 3], &[1]);
    assert_eq!(
        next_key(&local, &[1, 1], None, &end_proof),
        Some(vec![1, 2])
    );
    // The same 0x0102 subtrie is skipped, though it hangs off the root in the target and off
    // node 0x01 locally.
    put(&local, &[1, 2], &[1]);
    assert_eq!(
        next_key(&local, &[1, 1], None, &end_proof),
        Some(vec![1, 3])
    );
    delete(&local, &[1, 3]);
    assert_eq!(next_key(&local, &[1, 1], None, &end_proof), None);
}

#[test]
fn malformed_end_proofs_never_panic() {
    let seed = SeededRng::seed_from_env(0xbad);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    for bf in BranchFactor::ALL {
        let local = open(bf);
        for key in [&[0x10u8][..], &[0x10, 0x20], &[0x80], &[]] {
            put(&local, key, &[1]);
        }
        for _ in 0..2000 {
            let nodes = (0..rng.below(4))
                .map(|_| {
                    let bytes = edgy_bytes(&mut rng, 3);
                    let bits = (bytes.len() * 8).saturating_sub(rng.below(8) as usize);
                    let key = Key::from_bits(&bytes[..bits.div_ceil(8)], bits).expect("key");
                    let children = (0..rng.below(4))
                        .map(|_| (edgy_byte(&mut rng), Hash([rng.next_u64() as u8; 32])))
                        .collect();
                    ProofNode {
                        key,
                        value_or_hash: None,
                        children,
                    }
                })
                .collect::<Vec<_>>();
            let last = edgy_bytes(&mut rng, 3);
            let end = (rng.below(2) == 0).then(|| edgy_bytes(&mut rng, 3));
            let next = next_key(&local, &last, end.as_deref(), &nodes);
            if let Some(next) = next {
                assert!(next > last, "{next:?} <= {last:?}");
                assert!(end.is_none_or(|e| next < e));
            }
        }
    }
}

// ---- find_next_key: brute-force soundness ----

/// A key of 0..=4 bytes drawn mostly from a small alphabet, so keys share prefixes at every
/// branch factor.
fn clustered_key(rng: &mut SeededRng) -> Vec<u8> {
    const ALPHABET: [u8; 9] = [0x00, 0x01, 0x0f, 0x10, 0x11, 0x7f, 0x80, 0xf0, 0xff];
    let len = rng.below(5);
    (0..len)
        .map(|_| {
            if rng.below(8) == 0 {
                rng.next_u64() as u8
            } else {
                ALPHABET[rng.below(ALPHABET.len() as u64) as usize]
            }
        })
        .collect()
}

/// Local and target entries: shared keys (some with different values) plus keys of each side.
fn random_pair(rng: &mut SeededRng) -> (Entries, Entries) {
    let (mut local, mut target) = (Entries::new(), Entries::new());
    for _ in 0..rng.below(40) {
        let key = clustered_key(rng);
        let value = vec![rng.below(2) as u8 + 1];
        match rng.below(8) {
            0 => {
                local.insert(key, value);
            }
            1 => {
                target.insert(key, value);
            }
            2 => {
                local.insert(key.clone(), value);
                target.insert(key, vec![3]);
            }
            _ => {
                local.insert(key.clone(), value.clone());
                target.insert(key, value);
            }
        }
    }
    (local, target)
}

/// Panics unless both sides hold the same values on the open interval `(after, before)`.
fn assert_same_between(
    local: &Entries,
    target: &Entries,
    after: &[u8],
    before: Option<&[u8]>,
    context: &str,
) {
    let keys: BTreeSet<&Vec<u8>> = local.keys().chain(target.keys()).collect();
    for key in keys {
        if key.as_slice() > after && before.is_none_or(|b| key.as_slice() < b) {
            assert_eq!(
                local.get(key),
                target.get(key),
                "key {key:02x?} differs but was skipped; {context}"
            );
        }
    }
}

#[test]
fn random_tries_skip_only_matching_keys() {
    let seed = SeededRng::seed_from_env(0x5eed);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    for bf in [
        BranchFactor::Two,
        BranchFactor::Sixteen,
        BranchFactor::TwoFiftySix,
    ] {
        let mut differences = 0;
        for _ in 0..150 {
            let (local_entries, target_entries) = random_pair(&mut rng);
            let local = db_of(bf, &local_entries);
            let target = db_of(bf, &target_entries);
            let target_keys: Vec<&Vec<u8>> = target_entries.keys().collect();
            for _ in 0..12 {
                // A received key (inclusion proof) or a deleted one (exclusion proof).
                let last = if !target_keys.is_empty() && rng.below(2) == 0 {
                    target_keys[rng.below(target_keys.len() as u64) as usize].clone()
                } else {
                    clustered_key(&mut rng)
                };
                let range_end =
                    Some(clustered_key(&mut rng)).filter(|e| *e > last && rng.below(2) == 0);
                let end_proof = if target_entries.is_empty() {
                    Vec::new()
                } else {
                    proof_path(&target, &last)
                };
                let next = next_key(&local, &last, range_end.as_deref(), &end_proof);
                let context = format!(
                    "bf {bf:?}, last {last:02x?}, range end {range_end:02x?}, next \
                     {next:02x?}, local {local_entries:02x?}, target {target_entries:02x?}"
                );
                if let Some(next) = &next {
                    assert!(*next > last, "next not after last; {context}");
                    assert!(
                        range_end.as_ref().is_none_or(|e| next < e),
                        "next not before range end; {context}"
                    );
                    differences += 1;
                }
                let skipped_to = next.as_deref().or(range_end.as_deref());
                assert_same_between(&local_entries, &target_entries, &last, skipped_to, &context);

                // Identical tries: nothing to fetch once the paths can be compared.
                let root_on_path = end_proof
                    .first()
                    .is_some_and(|root| Key::from_bytes(&last).has_prefix(&root.key));
                if root_on_path {
                    assert_eq!(
                        next_key(&target, &last, range_end.as_deref(), &end_proof),
                        None,
                        "identical tries; {context}"
                    );
                }
            }
        }
        assert!(
            differences > 100,
            "bf {bf:?}: only {differences} differences"
        );
    }
}
