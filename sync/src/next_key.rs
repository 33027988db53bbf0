//! Where to resume inside a work range: [`midpoint`] splits a range in two, and
//! [`find_next_key`] skips subtrees the local trie already shares with the target trie.
//!
//! # How `find_next_key` reads two proof paths
//!
//! Fix the last received key `K` (a whole-byte key) and the token size `tb` of the branch factor.
//! Every key greater than `K` lies in exactly one **region**, named by a depth `d` (a multiple of
//! `tb`) and a token `t`, holding the keys with prefix `K[..d] ‖ t`:
//!
//! * `d < |K|` and `t > K.token(d)`: keys that leave `K`'s path to the right at depth `d`;
//! * `d = |K|` and any `t`: strict extensions of `K`.
//!
//! Ordered deepest first, then by token, the regions are consecutive intervals of the key order,
//! and the smallest key of region `(d, t)` is `K[..d] ‖ t`, zero-padded to whole bytes.
//!
//! A trie's contents in a region are read off the proof path of `K` in that trie: a path node at
//! depth `d` gives them as its child `t` (absent = empty region); a trailing exclusion node `X`
//! (a child of the last path node that leaves `K`'s path, or extends `K`) holds everything the
//! trie has in the one region where `X`'s key leaves `K`'s path; every other region is empty.
//! Equal child IDs mean equal subtries (a node's ID commits to its key and its whole subtrie), so
//! the first region where the two paths disagree is where the tries may first differ, and every
//! key before its smallest key is known to match.
//!
//! This is upstream's `findNextKey` (`x/sync/manager.go`) with the two-pointer walk written as a
//! merge of the two region lists, plus four repairs: (a) an end proof with no node on `K`'s path,
//! (b) a local proof with no node on `K`'s path and (c) an empty local trie each fall back to
//! `K ‖ 0x00` instead of panicking, returning "complete" unchecked, or failing; and a trailing
//! exclusion node is accounted for instead of being dropped (upstream drops the local one, so a
//! local-only subtrie to the right of `K` hanging off `K`'s path was never compared).
//! Sentinel root nodes are not needed: both lists are keyed by region, not by node.

use std::{cmp::Ordering, ops::Bound};

use arbor_merkledb::{Db, Error, Hash, Key, ProofError, ProofNode, Result};

/// Byte-string midpoint of `[start, end]` per upstream `midPoint` (None start = all 0x00, None end
/// = all 0xFF).
///
/// The bytes are upstream's: a per-byte average with a half-carry of 256 to the next byte, one
/// extra byte when `start` ends in 0xFF and `end` is None or ends in 0xFF, and a trailing 127 for a
/// leftover half. `(None, None)` gives `[127]`.
///
/// Returns `None` when the range should not be split: when both bounds are empty and `end` is
/// `Some`, and when the point equals `start` or `end` (upstream's `enqueueWork` then inserts the
/// range unsplit). For a valid range (`start < end`, None start = the empty key, None end = +∞)
/// upstream's point always lies in `[start, end]`, so a returned point is strictly inside; it
/// equals `end` only when rounding lands there, e.g. when nothing lies in between at all
/// (`end = start ‖ 0x00`). For `start >= end` the bytes are upstream's, meaningless but harmless
/// (one upstream vector has `start > end`). Never panics.
pub fn midpoint(start: Option<&[u8]>, end: Option<&[u8]>) -> Option<Vec<u8>> {
    let s = start.unwrap_or(&[]);
    let e = end.unwrap_or(&[]);
    let mut len = s.len().max(e.len());
    if len == 0 {
        // Both empty: only a None end leaves room.
        return end.is_none().then(|| vec![127]);
    }
    // `midpoint([.., 255], ..255)` needs one more byte than the inputs, or it would equal start.
    if s.last() == Some(&255) && (e.is_empty() || e.last() == Some(&255)) {
        len += 1;
    }
    let mut mid = Vec::with_capacity(len + 1);
    // 256 when the previous byte's sum was odd: half a unit carried into this byte.
    let mut half = 0u16;
    for i in 0..len {
        let sv = u16::from(s.get(i).copied().unwrap_or(0));
        let ev = match e.get(i) {
            Some(&b) => u16::from(b),
            None if end.is_none() => 255,
            None => 0,
        };
        // At most 255 + 255 + 256: no overflow.
        let total = sv + ev + half;
        half = if total % 2 == 1 { 256 } else { 0 };
        let mut avg = total / 2;
        if avg >= 256 {
            avg -= 256;
            carry_into(&mut mid);
        }
        // Invariant: avg < 256.
        mid.push(avg as u8);
    }
    if half > 0 {
        mid.push(127);
    }
    let at_bound = mid.as_slice() == s || end == Some(mid.as_slice());
    (!at_bound).then_some(mid)
}

/// Adds one to the big-endian number `digits`, as upstream does: trailing 0xFF bytes (except the
/// first) roll over to 0, and the first byte wraps (only reachable for `start > end`).
fn carry_into(digits: &mut [u8]) {
    let Some(mut i) = digits.len().checked_sub(1) else {
        return;
    };
    while i > 0 && digits[i] == 255 {
        digits[i] = 0;
        i -= 1;
    }
    digits[i] = digits[i].wrapping_add(1);
}

/// After a verified proof whose last key is `last_received` (its `end_proof` is the proof path of
/// that key, or an exclusion path, in the TARGET trie), the smallest key > last_received where the
/// local trie (`db`) may differ from the target trie, or None when nothing in
/// (last_received, range_end) can differ. `range_end` is EXCLUSIVE here (our work ranges are
/// half-open [start, end) internally; None = +infinity): return None when next >= range_end.
///
/// Guarantees, for any input (no panics, even on a malformed `end_proof`):
/// * a returned key is strictly greater than `last_received` and below `range_end`;
/// * every key strictly between `last_received` and the returned key (or `range_end`, or +∞, when
///   `None` is returned) has the same value in both tries, *provided* `end_proof` really is the
///   proof path of `last_received` in the target trie;
/// * `None` is only returned after the two paths were compared, or when `range_end` leaves no room.
///
/// When the paths cannot be compared (an empty `end_proof`, defects (a), (b), (c) of the module
/// docs, or a path of unexpected shape), the answer is `last_received ‖ 0x00`, the smallest key
/// after it, which skips nothing.
///
/// # Errors
/// Reading the local proof fails (other than the local trie being empty).
pub fn find_next_key(
    db: &Db,
    last_received: &[u8],
    range_end: Option<&[u8]>,
    end_proof: &[ProofNode],
) -> Result<Option<Vec<u8>>> {
    let below_end = |next: Vec<u8>| {
        range_end
            .is_none_or(|end| next.as_slice() < end)
            .then_some(next)
    };
    let successor = || {
        let mut next = Vec::with_capacity(last_received.len() + 1);
        next.extend_from_slice(last_received);
        next.push(0);
        below_end(next)
    };

    // Upstream step 1: no information about the target trie.
    if end_proof.is_empty() {
        return Ok(successor());
    }
    let key = Key::from_bytes(last_received);
    let token_bits = db.branch_factor().token_bits();
    // Defect (a): the end proof's only node is an exclusion node off the key's path (or the proof
    // is malformed).
    let Some(received) = PathRegions::new(end_proof, &key, token_bits) else {
        return Ok(successor());
    };
    let local_path = match db.proof(last_received) {
        Ok(proof) => proof.path,
        // Defect (c): the local trie is empty.
        Err(Error::Proof(ProofError::EmptyProof)) => return Ok(successor()),
        Err(e) => return Err(e),
    };
    // Defect (b): the local root is not on the key's path.
    let Some(local) = PathRegions::new(&local_path, &key, token_bits) else {
        return Ok(successor());
    };

    let Some(region) = first_difference(received.regions(), local.regions()) else {
        // Every region after the key matches: nothing after it can differ.
        return Ok(None);
    };
    let next = region.smallest_key(&key, token_bits);
    // Invariant: a region's keys are all greater than `key`; checked anyway (upstream step 6).
    if next.as_slice() <= last_received {
        return Ok(successor());
    }
    Ok(below_end(next))
}

/// A region of the keys after `K`: those with prefix `K[..depth] ‖ token` (see the module docs).
/// Invariant: `depth` is a multiple of the token size, `depth <= |K|`, and `token > K.token(depth)`
/// when `depth < |K|`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    depth: usize,
    token: u8,
}

impl Ord for Region {
    /// Key order: deeper regions hold smaller keys; at one depth, tokens order the keys.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .depth
            .cmp(&self.depth)
            .then(self.token.cmp(&other.token))
    }
}

impl PartialOrd for Region {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Region {
    /// The smallest key of the region: `K[..depth] ‖ token`, zero-padded to whole bytes.
    fn smallest_key(self, key: &Key, token_bits: usize) -> Vec<u8> {
        key.take(self.depth)
            .child(self.token, token_bits)
            .into_bytes()
    }
}

/// A proof path towards `K`, checked to have the shape the region reading relies on.
struct PathRegions<'a> {
    key: &'a Key,
    token_bits: usize,
    /// The nodes whose keys are prefixes of `K`, root first. Invariant: non-empty, strictly
    /// deepening, token-aligned, child indices below the branch factor, each linked to the next by
    /// its child on `K`'s next token.
    on_path: &'a [ProofNode],
    /// The region holding the trailing exclusion node, with that node's ID, when the node lies
    /// after `K`. Invariant: deeper than every node of `on_path`.
    beyond: Option<(Region, Hash)>,
}

impl<'a> PathRegions<'a> {
    /// Checks `path` (root first) against `key`; `None` when it has no node on `key`'s path or an
    /// unexpected shape (then the caller must not skip anything).
    fn new(path: &'a [ProofNode], key: &'a Key, token_bits: usize) -> Option<Self> {
        let on_path_len = path.iter().take_while(|n| key.has_prefix(&n.key)).count();
        let (on_path, rest) = path.split_at(on_path_len);
        let last = on_path.last()?;
        let exclusion = match rest {
            [] => None,
            [node] => Some(node),
            _ => return None,
        };
        let children = 1u16 << token_bits;
        for node in on_path {
            let aligned = node.key.bit_len() % token_bits == 0;
            let max_child = node.children.keys().next_back().copied();
            if !aligned || max_child.is_some_and(|c| u16::from(c) >= children) {
                return None;
            }
        }
        for pair in on_path.windows(2) {
            let (parent, child) = (&pair[0], &pair[1]);
            // `child` is a prefix of `key` longer than `parent`, so `parent` ends before `key`.
            if child.key.bit_len() <= parent.key.bit_len()
                || !parent
                    .children
                    .contains_key(&key.token(parent.key.bit_len(), token_bits))
            {
                return None;
            }
        }
        // The last node's child towards `key`, if `key` goes on past it.
        let toward =
            (last.key.bit_len() < key.bit_len()).then(|| key.token(last.key.bit_len(), token_bits));
        let beyond = match (exclusion, toward) {
            // An inclusion proof, or an exclusion proof ending on the path.
            (None, None) => None,
            (None, Some(token)) => {
                if last.children.contains_key(&token) {
                    // Truncated: the subtrie towards `key` is missing.
                    return None;
                }
                None
            }
            // Nothing can follow the node of `key` itself.
            (Some(_), None) => return None,
            (Some(node), Some(token)) => {
                let id = *last.children.get(&token)?;
                let aligned = node.key.bit_len() % token_bits == 0;
                if !aligned || !node.key.has_prefix(&last.key.child(token, token_bits)) {
                    return None;
                }
                exclusion_region(&node.key, key, token_bits).map(|region| (region, id))
            }
        };
        Some(Self {
            key,
            token_bits,
            on_path,
            beyond,
        })
    }

    /// The non-empty regions after `K` with their subtrie IDs, in key order (deepest first).
    fn regions(&self) -> impl Iterator<Item = (Region, Hash)> + '_ {
        let on_path = self.on_path.iter().rev().flat_map(|node| {
            let depth = node.key.bit_len();
            // Only children to the right of `K`'s path, or all children of `K`'s own node.
            let lower = if depth < self.key.bit_len() {
                Bound::Excluded(self.key.token(depth, self.token_bits))
            } else {
                Bound::Unbounded
            };
            node.children
                .range((lower, Bound::Unbounded))
                .map(move |(&token, &id)| (Region { depth, token }, id))
        });
        self.beyond.into_iter().chain(on_path)
    }
}

/// The region of the keys after `key` that holds all of `node`'s subtrie, for a node that is not
/// on `key`'s path, or `None` when that subtrie lies before `key`.
///
/// Precondition: both keys are token-aligned and `node` is not a prefix of `key`.
fn exclusion_region(node: &Key, key: &Key, token_bits: usize) -> Option<Region> {
    let common = node.common_prefix_bits(key);
    if common >= key.bit_len() {
        // `key` is a strict prefix of `node`, whose aligned length reaches one more token.
        let depth = key.bit_len();
        return (node.bit_len() >= depth + token_bits).then(|| Region {
            depth,
            token: node.token(depth, token_bits),
        });
    }
    // The keys part inside the token at `depth`, which both keys contain whole.
    let depth = common / token_bits * token_bits;
    if node.bit_len() < depth + token_bits {
        return None;
    }
    let token = node.token(depth, token_bits);
    (token > key.token(depth, token_bits)).then_some(Region { depth, token })
}

/// The first region (in key order) where two sorted region lists disagree: present in one only,
/// or with different IDs. `None` when they are equal.
fn first_difference(
    mut a: impl Iterator<Item = (Region, Hash)>,
    mut b: impl Iterator<Item = (Region, Hash)>,
) -> Option<Region> {
    let (mut x, mut y) = (a.next(), b.next());
    loop {
        match (x, y) {
            (None, None) => return None,
            (Some((region, _)), None) | (None, Some((region, _))) => return Some(region),
            (Some((ra, ia)), Some((rb, ib))) => match ra.cmp(&rb) {
                Ordering::Less => return Some(ra),
                Ordering::Greater => return Some(rb),
                Ordering::Equal if ia != ib => return Some(ra),
                Ordering::Equal => (x, y) = (a.next(), b.next()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use arbor_merkledb::{
        BranchFactor, Config,
        test_utils::{SeedReporter, SeededRng},
    };

    use super::*;

    type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

    // ---- midpoint ----

    #[test]
    fn midpoint_upstream_vectors() {
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, Option<&'a [u8]>);
        let cases: [Case<'_>; 13] = [
            (Some(&[1, 255]), Some(&[2, 1]), Some(&[2, 0])),
            (None, Some(&[255, 255, 0]), Some(&[127, 255, 128])),
            (
                Some(&[255, 255, 255]),
                Some(&[255, 255]),
                Some(&[255, 255, 127, 128]),
            ),
            (None, Some(&[255]), Some(&[127, 127])),
            (Some(&[1, 255]), Some(&[255, 1]), Some(&[128, 128])),
            (Some(&[140, 255]), Some(&[141, 0]), Some(&[140, 255, 127])),
            (Some(&[126, 255]), Some(&[127]), Some(&[126, 255, 127])),
            (None, None, Some(&[127])),
            (None, Some(&[127]), Some(&[63, 127])),
            (Some(&[127]), None, Some(&[191])),
            (Some(&[255, 255]), None, Some(&[255, 255, 127, 127])),
            (Some(&[255]), None, Some(&[255, 127, 127])),
            // Empty range: nothing to split.
            (None, Some(&[]), None),
        ];
        for (start, end, want) in cases {
            assert_eq!(
                midpoint(start, end).as_deref(),
                want,
                "midpoint({start:?}, {end:?})"
            );
        }
    }

    #[test]
    fn midpoint_refuses_ranges_with_nothing_inside() {
        assert_eq!(midpoint(Some(&[1]), Some(&[1, 0])), None);
        assert_eq!(midpoint(None, Some(&[0])), None);
        assert_eq!(midpoint(Some(&[]), Some(&[])), None);
        assert_eq!(midpoint(Some(&[5]), Some(&[5])), None);
    }

    /// A byte that is often an edge value.
    fn edgy_byte(rng: &mut SeededRng) -> u8 {
        const EDGES: [u8; 6] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
        if rng.below(2) == 0 {
            EDGES[rng.below(EDGES.len() as u64) as usize]
        } else {
            rng.next_u64() as u8
        }
    }

    fn edgy_bytes(rng: &mut SeededRng, max_len: u64) -> Vec<u8> {
        let len = rng.below(max_len + 1);
        (0..len).map(|_| edgy_byte(rng)).collect()
    }

    #[test]
    fn midpoint_is_strictly_inside_random_ranges() {
        let seed = SeededRng::seed_from_env(0x6d1d);
        let _report = SeedReporter { seed };
        let mut rng = SeededRng::new(seed);
        let mut split = 0;
        let mut tried = 0;
        while tried < 5000 {
            let start = (rng.below(5) > 0).then(|| edgy_bytes(&mut rng, 6));
            let end = (rng.below(5) > 0).then(|| edgy_bytes(&mut rng, 6));
            // start < end, with None start = the empty key and None end = +∞.
            let valid = match (&start, &end) {
                (_, None) => true,
                (s, Some(e)) => s.as_deref().unwrap_or(&[]) < e.as_slice(),
            };
            if !valid {
                continue;
            }
            tried += 1;
            let Some(mid) = midpoint(start.as_deref(), end.as_deref()) else {
                continue;
            };
            split += 1;
            assert!(
                mid.as_slice() > start.as_deref().unwrap_or(&[]),
                "midpoint({start:?}, {end:?}) = {mid:?} is not after start"
            );
            if let Some(end) = &end {
                assert!(
                    mid < *end,
                    "midpoint({start:?}, {end:?}) = {mid:?} is not before end"
                );
            }
        }
        assert!(split > 4500, "only {split} of 5000 ranges were split");
    }

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
                    assert_same_between(
                        &local_entries,
                        &target_entries,
                        &last,
                        skipped_to,
                        &context,
                    );

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
}
