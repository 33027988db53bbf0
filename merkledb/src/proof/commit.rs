//! Committing verified proofs. The caller must have verified the proof first (the sync client
//! does); these functions only apply it, each as one atomic commit.

use std::collections::BTreeMap;

use super::{ChangeProof, RangeProof};
use crate::{db::Db, error::Result, hash::Hash};

impl Db {
    /// Applies a verified range proof for `[start, end]`: writes its key-values and deletes every
    /// local key in `[start, largest]` that the proof does not hold, where `largest` is the last
    /// key-value or, when the proof holds none, `end` (`None` = unbounded). So an empty proof
    /// clears the range (AvalancheGo v1.11 skipped that on one path and kept stale keys).
    /// Returns the new root.
    pub fn commit_range_proof(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        proof: &RangeProof,
    ) -> Result<Hash> {
        let largest = proof.key_values.last().map(|kv| kv.key.as_slice()).or(end);
        let mut ops: BTreeMap<Vec<u8>, Option<Vec<u8>>> = proof
            .key_values
            .iter()
            .map(|kv| (kv.key.clone(), Some(kv.value.clone())))
            .collect();
        let view = self.view()?;
        view.for_each_key(start.unwrap_or(&[]), largest, |key| {
            ops.entry(key.to_vec()).or_insert(None);
        })?;
        let proposal = view.propose(ops)?;
        let root = proposal.root();
        proposal.commit()?;
        Ok(root)
    }

    /// Applies a verified change proof: its puts and deletes, nothing else. Returns the new root.
    pub fn commit_change_proof(&self, proof: &ChangeProof) -> Result<Hash> {
        let ops: Vec<_> = proof
            .key_changes
            .iter()
            .map(|c| (c.key.clone(), c.value.clone()))
            .collect();
        let proposal = self.propose(ops)?;
        let root = proposal.root();
        proposal.commit()?;
        Ok(root)
    }
}
