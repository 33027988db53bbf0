//! Where to resume inside a work range: [`find_next_key`] skips subtrees the local trie already
//! shares with the target trie.
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
pub(crate) fn find_next_key(
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
    // The target holds nothing after the key. If the local trie holds nothing there either,
    // nothing can differ, whatever shape the local path has (a replica filling an empty
    // keyspace part by part has a path of another shape, so the comparison below could not
    // tell).
    if received.regions().next().is_none() && !has_key_after(db, last_received, range_end)? {
        return Ok(None);
    }
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

/// Whether the local trie holds a key in `(key, range_end)` (`range_end` exclusive, `None` = +∞).
fn has_key_after(db: &Db, key: &[u8], range_end: Option<&[u8]>) -> Result<bool> {
    let mut next = key.to_vec();
    next.push(0);
    let first = db.view()?.range(&next, None, 1)?;
    Ok(first
        .first()
        .is_some_and(|(k, _)| range_end.is_none_or(|end| k.as_slice() < end)))
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
mod tests;
