//! Proof verification: pure functions of the proof, the bounds, the expected root and (for change
//! proofs) a read-only view of the local database. See the module docs of `proof` for the phases.

use std::collections::BTreeMap;

use super::{ChangeProof, Proof, ProofError, ProofNode, RangeProof};
use crate::{
    config::Config,
    db::Db,
    error::Result,
    hash::{Hash, ValueDigest, hash_node},
    key::{BranchFactor, Key},
    proposal::Reader,
};

/// What a proof claims, independent of its kind.
struct Claim<'a> {
    start: Option<&'a [u8]>,
    end: Option<&'a [u8]>,
    start_proof: &'a [ProofNode],
    end_proof: &'a [ProofNode],
    keys: Vec<&'a [u8]>,
    max_keys: usize,
}

/// Phase 1: the proof's shape. Returns `(smallest, largest)`, the range the proof covers.
fn check_shape(claim: &Claim<'_>) -> Result<(Option<Key>, Option<Key>), ProofError> {
    if let (Some(s), Some(e)) = (claim.start, claim.end) {
        if s > e {
            return Err(ProofError::StartAfterEnd);
        }
    }
    if claim.keys.len() > claim.max_keys {
        return Err(ProofError::TooManyKeys {
            limit: claim.max_keys,
            got: claim.keys.len(),
        });
    }
    if claim.keys.is_empty() && claim.start_proof.is_empty() && claim.end_proof.is_empty() {
        return Err(ProofError::EmptyProof);
    }
    if claim.start.is_none() && !claim.start_proof.is_empty() {
        return Err(ProofError::UnexpectedStartProof);
    }
    if claim.end.is_none() && claim.keys.is_empty() && !claim.end_proof.is_empty() {
        return Err(ProofError::UnexpectedEndProof);
    }
    if claim.end_proof.is_empty() && (claim.end.is_some() || !claim.keys.is_empty()) {
        return Err(ProofError::NoEndProof);
    }
    for pair in claim.keys.windows(2) {
        if pair[0] >= pair[1] {
            return Err(ProofError::NonIncreasingValues);
        }
    }
    let inside = |k: &[u8]| claim.start.is_none_or(|s| k >= s) && claim.end.is_none_or(|e| k <= e);
    if !claim.keys.iter().all(|k| inside(k)) {
        return Err(ProofError::StateFromOutsideOfRange);
    }
    let smallest = claim.start.map(Key::from_bytes);
    let largest = claim
        .keys
        .last()
        .copied()
        .or(claim.end)
        .map(Key::from_bytes);
    Ok((smallest, largest))
}

/// Phase 2: `path` is a chain of nodes towards `key`, with the v1.13.1+ exclusion checks.
fn check_path(path: &[ProofNode], key: &Key, bf: BranchFactor) -> Result<(), ProofError> {
    let tb = bf.token_bits();
    for node in path {
        if node.key.bit_len() % tb != 0 {
            return Err(ProofError::InvalidProofNodeKey(node.key.clone()));
        }
        if !node.key.is_whole_bytes() && node.value_or_hash.is_some() {
            return Err(ProofError::PartialByteLengthWithValue);
        }
        if let Some((&index, _)) = node
            .children
            .iter()
            .find(|(i, _)| u32::from(**i) >= bf.children())
        {
            return Err(ProofError::ChildIndexOutOfRange {
                index,
                branch_factor: bf.children(),
            });
        }
    }
    let Some((last, ancestors)) = path.split_last() else {
        return Ok(());
    };
    for (i, node) in ancestors.iter().enumerate() {
        if !key.has_strict_prefix(&node.key) {
            return Err(ProofError::ProofNodeNotForKey);
        }
        if !path[i + 1].key.has_strict_prefix(&node.key) {
            return Err(ProofError::NonIncreasingProofNodes);
        }
    }
    if key.has_prefix(&last.key) {
        // An ancestor (or the key itself): an exclusion proof must not stop above a child that
        // leads towards the key.
        if last.key != *key
            && last
                .children
                .contains_key(&key.token(last.key.bit_len(), tb))
        {
            return Err(ProofError::ExclusionProofMissingEndNodes);
        }
    } else if let Some(parent) = ancestors.last() {
        // The replacement child: it must hang off the parent on the key's next token.
        let bits = parent.key.bit_len() + tb;
        if last.key.bit_len() < bits || last.key.take(bits) != key.take(bits) {
            return Err(ProofError::ExclusionProofInvalidNode);
        }
    }
    Ok(())
}

fn in_range(key: &Key, smallest: Option<&Key>, largest: Option<&Key>) -> bool {
    smallest.is_none_or(|s| key >= s) && largest.is_none_or(|l| key <= l)
}

/// Phase 3: boundary nodes inside the range carry the values the claimed contents give.
fn check_values(
    reader: &Reader<'_>,
    nodes: &[&ProofNode],
    smallest: Option<&Key>,
    largest: Option<&Key>,
) -> Result<()> {
    for node in nodes {
        if !node.key.is_whole_bytes() || !in_range(&node.key, smallest, largest) {
            continue;
        }
        let expected = reader
            .get(node.key.as_bytes())?
            .map(|v| ValueDigest::of(&v));
        match (expected, node.value_or_hash) {
            (None, Some(_)) => return Err(ProofError::ProofNodeHasUnincludedValue.into()),
            (a, b) if a != b => return Err(ProofError::ProofValueDoesntMatch.into()),
            _ => {}
        }
    }
    Ok(())
}

/// The boundary nodes of both proofs, by key; the same key must mean the same node.
fn anchors<'a>(
    start_proof: &'a [ProofNode],
    end_proof: &'a [ProofNode],
) -> Result<Vec<&'a ProofNode>, ProofError> {
    let mut by_key: BTreeMap<&Key, &ProofNode> = BTreeMap::new();
    for node in start_proof.iter().chain(end_proof) {
        if let Some(previous) = by_key.insert(&node.key, node) {
            if previous != node {
                return Err(ProofError::InconsistentProofNodes(node.key.clone()));
            }
        }
    }
    Ok(by_key.into_values().collect())
}

/// Phase 4: the root of the trie made of the claimed in-range contents (`reader`) and, at every
/// position entirely outside `[smallest, largest]` below a boundary node, the child ID the
/// boundary node gives.
struct Rebuild<'a, 'r> {
    reader: &'a Reader<'r>,
    bf: BranchFactor,
    smallest: Option<&'a Key>,
    largest: Option<&'a Key>,
}

impl Rebuild<'_, '_> {
    /// Every key under position `p` sorts before `smallest`.
    fn left_of(&self, p: &Key) -> bool {
        self.smallest.is_some_and(|s| p < s && !s.has_prefix(p))
    }

    /// Every key under position `p` sorts after `largest`.
    fn right_of(&self, p: &Key) -> bool {
        self.largest.is_some_and(|l| p > l)
    }

    /// Every key under position `p` lies in `[smallest, largest]`.
    fn inside(&self, p: &Key) -> bool {
        self.smallest.is_none_or(|s| p >= s)
            && self.largest.is_none_or(|l| p < l && !l.has_prefix(p))
    }

    /// The ID of the claimed contents' subtrie at position `p`.
    fn subtrie_at(&self, p: &Key) -> Result<Option<Hash>> {
        let tb = self.bf.token_bits();
        let Some(mut current) = self.reader.root().cloned() else {
            return Ok(None);
        };
        loop {
            if current.key.has_prefix(p) {
                return Ok(Some(current.id));
            }
            if !p.has_prefix(&current.key) {
                return Ok(None);
            }
            let node = self.reader.nodes().load(&current)?;
            let token = p.token(node.key.bit_len(), tb);
            let Some(child) = node.child_subroot(token, tb) else {
                return Ok(None);
            };
            current = child;
        }
    }

    /// Fails when the claimed contents hold an in-range key under `p` but not under `except`: data
    /// the boundary proofs do not account for.
    fn ensure_no_data(&self, p: &Key, except: Option<&Key>) -> Result<()> {
        let upper = self.largest.map(Key::as_bytes);
        let first_from = |lo: &[u8]| -> Result<Option<Vec<u8>>> {
            let lo = match self.smallest {
                Some(s) if s.as_bytes() > lo => s.as_bytes(),
                _ => lo,
            };
            Ok(self
                .reader
                .range(lo, upper, 1)?
                .into_iter()
                .next()
                .map(|(k, _)| k))
        };
        let Some(first) = first_from(p.as_bytes())? else {
            return Ok(());
        };
        let first = Key::from_vec(first);
        if !first.has_prefix(p) {
            return Ok(());
        }
        let Some(except) = except.filter(|e| first.has_prefix(e)) else {
            return Err(ProofError::MissingProofNodes(p.clone()).into());
        };
        let Some(after) = successor(except) else {
            return Ok(());
        };
        match first_from(after.as_bytes())? {
            Some(next) if Key::from_bytes(&next).has_prefix(p) => {
                Err(ProofError::MissingProofNodes(p.clone()).into())
            }
            _ => Ok(()),
        }
    }

    /// The ID of the rebuilt subtrie at position `p`, given the boundary nodes under it.
    fn compute(&self, p: &Key, anchors: &[&ProofNode]) -> Result<Option<Hash>> {
        if self.left_of(p) || self.right_of(p) {
            return Ok(None);
        }
        let (Some(first), Some(last)) = (anchors.first(), anchors.last()) else {
            // No boundary node here: the claimed contents decide, and a position that straddles
            // a bound must hold none of them.
            if self.inside(p) {
                return self.subtrie_at(p);
            }
            self.ensure_no_data(p, None)?;
            return Ok(None);
        };
        // Boundary nodes are rebuilt even at positions inside the range, so that each one is
        // checked against what is rebuilt under it.
        let tb = self.bf.token_bits();
        let top = first
            .key
            .take(first.key.common_prefix_bits(&last.key) / tb * tb);
        if top.bit_len() > p.bit_len() {
            self.ensure_no_data(p, Some(&top))?;
        }
        // Honest boundary proofs hold every node on both paths, so the node where the anchors
        // below `p` meet is one of them.
        let Some(node) = anchors.iter().find(|a| a.key == top) else {
            return Err(ProofError::MissingProofNodes(top).into());
        };
        let value = if top.is_whole_bytes() && in_range(&top, self.smallest, self.largest) {
            self.reader
                .get(top.as_bytes())?
                .map(|v| ValueDigest::of(&v))
        } else {
            node.value_or_hash
        };
        let mut children: Vec<(u8, Hash)> = Vec::new();
        let mut rest: &[&ProofNode] = anchors;
        for token in 0..self.bf.children() {
            let token = token as u8;
            let position = top.child(token, tb);
            // Anchors are sorted, so those under `position` are contiguous and come after those
            // under smaller tokens.
            let under: &[&ProofNode] = match rest.iter().position(|a| a.key.has_prefix(&position)) {
                Some(start) => {
                    let len = rest[start..]
                        .iter()
                        .take_while(|a| a.key.has_prefix(&position))
                        .count();
                    let under = &rest[start..start + len];
                    rest = &rest[start + len..];
                    under
                }
                None => &[],
            };
            let id = if self.left_of(&position) || self.right_of(&position) {
                node.children.get(&token).copied()
            } else {
                self.compute(&position, under)?
            };
            if let Some(id) = id {
                children.push((token, id));
            }
        }
        // A boundary node must be exactly the node rebuilt at its position: every child ID it
        // claims, in range or not, matches (so no tampered entry goes unnoticed).
        if !node
            .children
            .iter()
            .map(|(t, id)| (*t, *id))
            .eq(children.iter().copied())
        {
            return Err(ProofError::ProofNodeChildMismatch(top).into());
        }
        if value.is_none() && children.len() <= 1 {
            return Ok(children.first().map(|(_, id)| *id));
        }
        Ok(Some(hash_node(
            &top,
            value.as_ref(),
            children.iter().map(|(t, id)| (*t, id)),
        )))
    }
}

/// The boundary nodes together reach `key`: the deepest one on `key`'s path either is `key` or
/// has no child towards it, unless a node under that child (the next path node, or an exclusion
/// proof's diverging child) is present too. This catches a start proof cut short, which the
/// stripped start proof alone cannot show.
fn check_complete_path(
    anchors: &[&ProofNode],
    key: &Key,
    bf: BranchFactor,
) -> Result<(), ProofError> {
    let tb = bf.token_bits();
    let Some(deepest) = anchors
        .iter()
        .filter(|a| key.has_prefix(&a.key))
        .max_by_key(|a| a.key.bit_len())
    else {
        return Ok(());
    };
    if deepest.key == *key {
        return Ok(());
    }
    let token = key.token(deepest.key.bit_len(), tb);
    if !deepest.children.contains_key(&token) {
        return Ok(());
    }
    let position = deepest.key.child(token, tb);
    if anchors.iter().any(|a| a.key.has_prefix(&position)) {
        Ok(())
    } else {
        Err(ProofError::ExclusionProofMissingEndNodes)
    }
}

/// The smallest bit string greater than every key with prefix `key`, if any.
fn successor(key: &Key) -> Option<Key> {
    let bits = key.bit_len();
    let bytes = key.as_bytes();
    let bit = |i: usize| (bytes[i / 8] >> (7 - i % 8)) & 1;
    let last_zero = (0..bits).rev().find(|&i| bit(i) == 0)?;
    let mut out = key.take(last_zero + 1).into_bytes();
    out[last_zero / 8] |= 1 << (7 - last_zero % 8);
    Key::from_bits(&out, last_zero + 1)
}

/// Phases 2–4 over a reader of the claimed in-range contents.
fn check_against(
    reader: &Reader<'_>,
    claim: &Claim<'_>,
    smallest: Option<&Key>,
    largest: Option<&Key>,
    expected_root: Hash,
    bf: BranchFactor,
) -> Result<()> {
    if let Some(s) = smallest {
        check_path(claim.start_proof, s, bf)?;
    }
    if let Some(l) = largest {
        check_path(claim.end_proof, l, bf)?;
    }
    let anchors = anchors(claim.start_proof, claim.end_proof)?;
    for bound in [smallest, largest].into_iter().flatten() {
        check_complete_path(&anchors, bound, bf)?;
    }
    check_values(reader, &anchors, smallest, largest)?;
    let rebuild = Rebuild {
        reader,
        bf,
        smallest,
        largest,
    };
    let actual = rebuild
        .compute(&Key::empty(), &anchors)?
        .unwrap_or(Hash::EMPTY_ROOT);
    if actual != expected_root {
        return Err(ProofError::InvalidProof {
            expected: expected_root,
            actual,
        }
        .into());
    }
    Ok(())
}

/// A scratch in-memory trie holding `contents`, for checking claims against.
fn scratch(bf: BranchFactor, contents: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<crate::Proposal> {
    // Nothing is ever read back from this store, so no node cache: a default-sized one costs
    // tens of MB per concurrent verification.
    let config = Config::default()
        .with_branch_factor(bf)
        .with_history_len(0)
        .with_node_cache_nodes(16);
    Db::open_memory(config)?.propose(contents)
}

/// Verifies a range proof for `[start, end]` against `expected_root`: the key-values are exactly
/// the trie's contents in `[start, largest]`, where `largest` is the last key-value or `end`.
pub fn verify_range_proof(
    proof: &RangeProof,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
    expected_root: Hash,
    max_keys: usize,
    bf: BranchFactor,
) -> Result<()> {
    let claim = Claim {
        start,
        end,
        start_proof: &proof.start_proof,
        end_proof: &proof.end_proof,
        keys: proof
            .key_values
            .iter()
            .map(|kv| kv.key.as_slice())
            .collect(),
        max_keys,
    };
    let (smallest, largest) = check_shape(&claim)?;
    let contents = proof
        .key_values
        .iter()
        .map(|kv| (kv.key.clone(), Some(kv.value.clone())));
    scratch(bf, contents.collect())?.with_reader(|reader| {
        check_against(
            reader,
            &claim,
            smallest.as_ref(),
            largest.as_ref(),
            expected_root,
            bf,
        )
    })
}

/// Verifies a single-key proof against `expected_root`.
pub fn verify_proof(proof: &Proof, expected_root: Hash, bf: BranchFactor) -> Result<()> {
    let Some(last) = proof.path.last() else {
        return Err(ProofError::EmptyProof.into());
    };
    let key = Key::from_bytes(&proof.key);
    check_path(&proof.path, &key, bf)?;
    if last.key == key {
        let matches = match (&proof.value, &last.value_or_hash) {
            (None, None) => true,
            (Some(v), Some(d)) => d.matches(v),
            _ => false,
        };
        if !matches {
            return Err(ProofError::ProofValueDoesntMatch.into());
        }
    } else if proof.value.is_some() {
        return Err(ProofError::ExclusionProofUnexpectedValue.into());
    }
    let claim = Claim {
        start: Some(&proof.key),
        end: Some(&proof.key),
        start_proof: &[],
        end_proof: &proof.path,
        keys: Vec::new(),
        max_keys: 1,
    };
    let contents = proof
        .value
        .iter()
        .map(|v| (proof.key.clone(), Some(v.clone())));
    scratch(bf, contents.collect())?.with_reader(|reader| {
        check_against(reader, &claim, Some(&key), Some(&key), expected_root, bf)
    })
}

impl Db {
    /// Verifies a change proof for `[start, end]` against this database, which must hold, inside
    /// that range, the contents of the proof's start root: the changes applied to the local
    /// contents give the trie's contents at `expected_end_root` in `[start, largest]`.
    pub fn verify_change_proof(
        &self,
        proof: &ChangeProof,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        expected_end_root: Hash,
        max_keys: usize,
    ) -> Result<()> {
        let claim = Claim {
            start,
            end,
            start_proof: &proof.start_proof,
            end_proof: &proof.end_proof,
            keys: proof.key_changes.iter().map(|c| c.key.as_slice()).collect(),
            max_keys,
        };
        let (smallest, largest) = check_shape(&claim)?;
        let bf = self.branch_factor();
        let changes = proof
            .key_changes
            .iter()
            .map(|c| (c.key.clone(), c.value.clone()));
        self.propose(changes.collect::<Vec<_>>())?
            .with_reader(|reader| {
                check_against(
                    reader,
                    &claim,
                    smallest.as_ref(),
                    largest.as_ref(),
                    expected_end_root,
                    bf,
                )
            })
    }
}
