//! Cutting the state at a root into parts of about a given size.

use arbor_merkledb::{Db, Hash};
use prost::Message;

use super::Part;
use crate::pb;

/// One part as it is cut: its description and its bytes.
#[derive(Debug)]
pub struct CutPart {
    /// What the manifest will say of it.
    pub part: Part,
    /// The encoded v1.11 `RangeProof`.
    pub bytes: Vec<u8>,
}

/// Cuts the trie at `root` (the current root or one in `db`'s history) into range proofs of
/// at most `part_bytes` each (a single key-value larger than that makes a part of its own), in
/// key order, handing each to `emit` as soon as it is cut. Returns how many parts were cut.
///
/// Each part's key count is chosen from the previous part's bytes per key, so the parts come out
/// close to `part_bytes` with one proof generated per part in the common case.
pub fn cut_parts<E>(
    db: &Db,
    root: Hash,
    part_bytes: usize,
    mut emit: impl FnMut(CutPart) -> Result<(), E>,
) -> Result<usize, E>
where
    E: From<arbor_merkledb::Error>,
{
    if root == Hash::EMPTY_ROOT {
        return Ok(0);
    }
    let part_bytes = part_bytes.max(1024);
    // A first guess at ~100 bytes per key-value; corrected from the first proof on.
    let mut keys = (part_bytes / 100).max(1);
    let mut start: Option<Vec<u8>> = None;
    let mut count = 0;
    loop {
        let proof = db.range_proof_at(root, start.as_deref(), None, keys)?;
        let returned = proof.key_values.len();
        let last = proof.key_values.last().map(|kv| kv.key.clone());
        let bytes = pb::RangeProof::from(proof).encode_to_vec();
        if bytes.len() > part_bytes && returned > 1 {
            // Too large: retry with the key count that would have fit, with a margin.
            keys = scaled(returned, part_bytes, bytes.len()).min(returned - 1);
            continue;
        }
        // Fewer key-values than asked for: the proof reaches the last key.
        let end = if returned < keys { None } else { last.clone() };
        let (name, sha256) = Part::name_for(&bytes);
        let len = bytes.len();
        emit(CutPart {
            part: Part {
                name,
                start: start.clone(),
                end: end.clone(),
                keys: returned as u64,
                bytes: len as u64,
                sha256,
            },
            bytes,
        })?;
        count += 1;
        let Some(mut next) = end else {
            return Ok(count);
        };
        next.push(0);
        start = Some(next);
        keys = scaled(returned.max(1), part_bytes, len.max(1));
    }
}

/// The key count that makes `bytes` out of `keys` key-values come to 97% of `target`.
fn scaled(keys: usize, target: usize, bytes: usize) -> usize {
    ((keys as f64 * target as f64 * 0.97 / bytes as f64) as usize).max(1)
}
