//! Proof generation from a view (a proposal) or from the database's history.

use std::ops::Bound;

use super::{
    ChangeProof, KeyChange, KeyValue, MissingRoot, Proof, ProofError, ProofNode, RangeProof,
};
use crate::{
    db::{Db, root_hash},
    error::Result,
    hash::Hash,
    key::Key,
    node::{Node, SubRoot},
    proposal::{Proposal, Reader},
    trie::NodeSource,
};

impl ProofNode {
    /// The proof form of a trie node.
    pub(crate) fn of(node: &Node) -> Self {
        Self {
            key: node.key.clone(),
            value_or_hash: node.value,
            children: node.children.ids().map(|(i, id)| (i, *id)).collect(),
        }
    }
}

/// The nodes from the root towards `key`: every node whose key is a prefix of `key`, then, for an
/// exclusion proof, the child that diverges from `key` (if the last ancestor has a child on
/// `key`'s next token).
fn path_to(
    nodes: &dyn NodeSource,
    root: Option<&SubRoot>,
    token_bits: usize,
    key: &Key,
) -> Result<Vec<ProofNode>> {
    let Some(root) = root else {
        return Err(ProofError::EmptyProof.into());
    };
    let mut path = Vec::new();
    let mut current = root.clone();
    loop {
        let node = nodes.load(&current)?;
        path.push(ProofNode::of(&node));
        if node.key == *key || !key.has_prefix(&node.key) {
            break;
        }
        let token = key.token(node.key.bit_len(), token_bits);
        let Some(child) = node.child_subroot(token, token_bits) else {
            break;
        };
        current = child;
    }
    Ok(path)
}

/// `start_path` without the leading nodes it shares (index-wise) with `end_path`.
fn strip_common(start_path: Vec<ProofNode>, end_path: &[ProofNode]) -> Vec<ProofNode> {
    let shared = start_path
        .iter()
        .zip(end_path)
        .take_while(|(a, b)| a.key == b.key)
        .count();
    start_path.into_iter().skip(shared).collect()
}

fn check_bounds(start: Option<&[u8]>, end: Option<&[u8]>, max_keys: usize) -> Result<()> {
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(ProofError::StartAfterEnd.into());
        }
    }
    if max_keys == 0 {
        return Err(ProofError::InvalidMaxLength.into());
    }
    Ok(())
}

/// Boundary proofs for `[start, last or end]`.
fn boundary_proofs(
    reader: &Reader<'_>,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
    last: Option<&[u8]>,
) -> Result<(Vec<ProofNode>, Vec<ProofNode>)> {
    let path = |key: &[u8]| {
        path_to(
            reader.nodes(),
            reader.root(),
            reader.token_bits(),
            &Key::from_bytes(key),
        )
    };
    let end_proof = match last.or(end) {
        Some(key) => path(key)?,
        None => Vec::new(),
    };
    let start_proof = match start {
        Some(key) => strip_common(path(key)?, &end_proof),
        None => Vec::new(),
    };
    Ok((start_proof, end_proof))
}

/// A proof of `key` in the reader's state.
fn proof_from(reader: &Reader<'_>, key: &[u8]) -> Result<Proof> {
    let target = Key::from_bytes(key);
    let path = path_to(reader.nodes(), reader.root(), reader.token_bits(), &target)?;
    let included = path
        .last()
        .is_some_and(|n| n.key == target && n.value_or_hash.is_some());
    let value = if included { reader.get(key)? } else { None };
    Ok(Proof {
        key: key.to_vec(),
        value,
        path,
    })
}

/// A range proof in the reader's state.
fn range_proof_from(
    reader: &Reader<'_>,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
    max_keys: usize,
) -> Result<RangeProof> {
    if reader.root().is_none() {
        return Err(ProofError::EmptyProof.into());
    }
    let key_values: Vec<KeyValue> = reader
        .range(start.unwrap_or(&[]), end, max_keys)?
        .into_iter()
        .map(|(key, value)| KeyValue { key, value })
        .collect();
    let last = key_values.last().map(|kv| kv.key.as_slice());
    let (start_proof, end_proof) = boundary_proofs(reader, start, end, last)?;
    Ok(RangeProof {
        start_proof,
        end_proof,
        key_values,
    })
}

impl Proposal {
    /// A proof that `key` has its value in this view, or is absent.
    pub fn proof(&self, key: &[u8]) -> Result<Proof> {
        self.with_reader(|reader| proof_from(reader, key))
    }

    /// The key-values of `[start, end]` (both inclusive; `None` = unbounded), at most `max_keys`,
    /// with their boundary proofs.
    pub fn range_proof(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        max_keys: usize,
    ) -> Result<RangeProof> {
        check_bounds(start, end, max_keys)?;
        self.with_reader(|reader| range_proof_from(reader, start, end, max_keys))
    }
}

// The `Db` entry points build their view and read it under one read lock, so a concurrent commit
// can neither invalidate the view halfway nor be observed: it waits for the proof to finish.
impl Db {
    /// A proof of `key` at the current root.
    pub fn proof(&self, key: &[u8]) -> Result<Proof> {
        let state = self.inner.read()?;
        let view = self.view_at_locked(&state, root_hash(&state.head.root))?;
        view.with_reader_locked(&state, |reader| proof_from(reader, key))
    }

    /// A range proof at `root` (the current root or one in history).
    pub fn range_proof_at(
        &self,
        root: Hash,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        max_keys: usize,
    ) -> Result<RangeProof> {
        check_bounds(start, end, max_keys)?;
        if root == Hash::EMPTY_ROOT {
            return Err(ProofError::EmptyProof.into());
        }
        let state = self.inner.read()?;
        let view = self.view_at_locked(&state, root).map_err(|e| match e {
            crate::Error::RootNotInHistory { root, .. } => ProofError::InsufficientHistory {
                root,
                which: MissingRoot::End,
            }
            .into(),
            other => other,
        })?;
        view.with_reader_locked(&state, |reader| {
            range_proof_from(reader, start, end, max_keys)
        })
    }

    /// The changes in `[start, end]` between `start_root` and `end_root` (both in history, the
    /// start no later than the end), at most `max_keys` (the smallest keys), with boundary proofs
    /// in the end root. A key whose value is the same at both roots is not a change.
    pub fn change_proof(
        &self,
        start_root: Hash,
        end_root: Hash,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        max_keys: usize,
    ) -> Result<ChangeProof> {
        check_bounds(start, end, max_keys)?;
        if start_root == end_root {
            return Err(ProofError::SameRoot.into());
        }
        if end_root == Hash::EMPTY_ROOT {
            return Err(ProofError::EmptyProof.into());
        }
        let state = self.inner.read()?;
        // Every (commit sequence, root) pair still retained, oldest first.
        let mut roots: Vec<(u64, Hash)> = state
            .history
            .front()
            .map(|e| (e.seq - 1, e.before))
            .into_iter()
            .collect();
        roots.extend(state.history.iter().map(|e| (e.seq, e.after)));
        roots.push((state.head.seq, root_hash(&state.head.root)));
        let seq_of = |root: Hash, at_most: u64| {
            roots
                .iter()
                .rev()
                .find(|(s, r)| *r == root && *s <= at_most)
                .map(|(s, _)| *s)
        };
        let end_seq = seq_of(end_root, u64::MAX).ok_or(ProofError::InsufficientHistory {
            root: end_root,
            which: MissingRoot::End,
        })?;
        let start_seq = seq_of(start_root, end_seq).ok_or(ProofError::InsufficientHistory {
            root: start_root,
            which: MissingRoot::Start,
        })?;
        let before = self.undo_between_cached(&state, start_seq, end_seq)?;
        let end_view = self.view_at_locked(&state, end_root)?;
        end_view.with_reader_locked(&state, |reader| {
            let from = start.map_or(Bound::Unbounded, Bound::Included);
            let mut key_changes = Vec::new();
            for (key, old) in before.range::<[u8], _>((from, Bound::Unbounded)) {
                if end.is_some_and(|e| key.as_slice() > e) {
                    break;
                }
                let new = reader.get(key)?;
                if new != *old {
                    key_changes.push(KeyChange {
                        key: key.clone(),
                        value: new,
                    });
                    if key_changes.len() == max_keys {
                        break;
                    }
                }
            }
            let last = key_changes.last().map(|c| c.key.as_slice());
            let (start_proof, end_proof) = boundary_proofs(reader, start, end, last)?;
            Ok(ChangeProof {
                start_proof,
                end_proof,
                key_changes,
            })
        })
    }
}
