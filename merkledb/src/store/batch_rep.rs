//! RocksDB's serialized write batch (`WriteBatch::rep_`, `db/write_batch.cc`), built in Rust.
//!
//! A commit hands RocksDB ~10k puts, on the commit's critical path. Added one by one through
//! the C API, 100 batches of 10k 32-byte pairs took 38 ms; encoded here and handed over whole
//! (`WriteBatch::from_data`, one copy), 11 ms (hot data; in alternating runs of
//! `examples/commit_profile.rs` the whole commit path gained 0.8%, within noise). The format
//! is RocksDB's, so it is checked, not assumed: the store
//! encodes a probe batch both ways when it opens and uses this encoder only if the bytes are
//! identical (see [`learn_family_ids`]); a test compares the two encodings over random batches.
//!
//! Format: a 12-byte header (the sequence number, fixed64, set by the write itself; the record
//! count, fixed32 little-endian), then per record a type byte, the column family's ID as a
//! varint32 (omitted for the default family, ID 0, whose records have their own types), the
//! key and, for a put, the value, each a varint32 length followed by the bytes.

use super::{Op, Space};
use crate::{codec::Reader, hash::put_uvarint};

/// Header bytes: sequence (8) and count (4).
const HEADER: usize = 12;
/// Record types (`ValueType` in RocksDB's `db/dbformat.h`).
const TYPE_DELETION: u8 = 0x0;
const TYPE_VALUE: u8 = 0x1;
const TYPE_FAMILY_DELETION: u8 = 0x4;
const TYPE_FAMILY_VALUE: u8 = 0x5;

/// Each space's column family ID, indexed by `Space as usize`.
pub(super) type FamilyIds = [u32; Space::ALL.len()];

/// RocksDB's varint32 is the LEB128 varint the node hashing writes, limited to 32 bits.
fn put_varint32(out: &mut Vec<u8>, value: u32) {
    put_uvarint(out, u64::from(value));
}

fn put_slice(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    put_varint32(out, u32::try_from(bytes.len()).ok()?);
    out.extend_from_slice(bytes);
    Some(())
}

/// At least the serialized size of `ops`: per record a type, a family ID and two lengths of
/// up to 5 bytes each, and the bytes.
pub(super) fn size_bound(ops: &[Op<'_>]) -> usize {
    HEADER
        + ops
            .iter()
            .map(|(_, k, v)| 16 + k.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum::<usize>()
}

/// The serialized batch of `ops`, or `None` when RocksDB's format cannot hold it (more than
/// 2^32 − 1 records, or a key or value of 4 GiB or more).
pub(super) fn encode(ops: &[Op<'_>], ids: &FamilyIds) -> Option<Vec<u8>> {
    let count = u32::try_from(ops.len()).ok()?;
    let mut rep = Vec::with_capacity(size_bound(ops));
    rep.extend_from_slice(&[0; 8]);
    rep.extend_from_slice(&count.to_le_bytes());
    for (space, key, value) in ops {
        let id = ids[*space as usize];
        let (default_type, family_type) = match value {
            Some(_) => (TYPE_VALUE, TYPE_FAMILY_VALUE),
            None => (TYPE_DELETION, TYPE_FAMILY_DELETION),
        };
        if id == 0 {
            rep.push(default_type);
        } else {
            rep.push(family_type);
            put_varint32(&mut rep, id);
        }
        put_slice(&mut rep, key)?;
        if let Some(value) = value {
            put_slice(&mut rep, value)?;
        }
    }
    Some(rep)
}

/// The column family ID in `probe`, RocksDB's own encoding of a batch holding one put of an
/// empty key and value into that family; `None` if `probe` is not such a batch.
fn family_id_of_probe(probe: &[u8]) -> Option<u32> {
    let mut reader = Reader::new(probe.get(HEADER..)?);
    let id = match reader.byte().ok()? {
        TYPE_VALUE => 0,
        TYPE_FAMILY_VALUE => u32::try_from(reader.uvarint().ok()?).ok()?,
        _ => return None,
    };
    // An empty key and an empty value: two zero lengths, nothing after.
    (reader.take(2).ok()? == [0, 0] && reader.finish().is_ok()).then_some(id)
}

/// Learns each space's column family ID from RocksDB's encoding of probe batches, and checks
/// that this module encodes a put and a delete in every space byte for byte as RocksDB does.
/// `rocks_encoding(ops)` is RocksDB's own encoding of `ops` (through its C API). `None` when
/// anything differs: the caller then adds records through the C API instead.
pub(super) fn learn_family_ids(rocks_encoding: impl Fn(&[Op<'_>]) -> Vec<u8>) -> Option<FamilyIds> {
    // A probe key and value of 200 bytes, whose length takes a two-byte varint.
    const PROBE: &[u8] = &[0xa5; 200];
    let empty_put = |space| -> Op<'_> { (space, (&b""[..]).into(), Some((&b""[..]).into())) };
    let mut ids: FamilyIds = [0; Space::ALL.len()];
    for space in Space::ALL {
        ids[space as usize] = family_id_of_probe(&rocks_encoding(&[empty_put(space)]))?;
    }
    for space in Space::ALL {
        let ops = [
            empty_put(space),
            (space, PROBE.into(), None),
            (space, PROBE.into(), Some(PROBE.into())),
        ];
        if encode(&ops, &ids)? != rocks_encoding(&ops) {
            return None;
        }
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_leb128() {
        for (value, bytes) in [
            (0u32, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (u32::MAX, vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
        ] {
            let mut out = Vec::new();
            put_varint32(&mut out, value);
            assert_eq!(out, bytes, "{value}");
        }
    }

    /// The IDs are learned from an encoder that agrees with this one, and refused (so the
    /// store falls back to the C API) when the other encoding differs in any byte.
    #[test]
    fn family_ids_are_learned_only_from_an_agreeing_encoding() {
        let ids: FamilyIds = [3, 1, 0, 200];
        let agreeing = |ops: &[Op<'_>]| encode(ops, &ids).expect("encodes");
        assert_eq!(learn_family_ids(agreeing), Some(ids));
        assert_eq!(learn_family_ids(|_: &[Op<'_>]| Vec::new()), None);
        // Right on the single probes, one byte off on the put-and-delete ones.
        let off_by_one_byte = |ops: &[Op<'_>]| {
            let mut rep = agreeing(ops);
            if ops.len() > 1 {
                *rep.last_mut().expect("non-empty") ^= 1;
            }
            rep
        };
        assert_eq!(learn_family_ids(off_by_one_byte), None);
    }

    #[test]
    fn probes_that_are_not_single_empty_puts_are_refused() {
        let header = [0u8; HEADER];
        let probe = |tail: &[u8]| [&header[..], tail].concat();
        assert_eq!(family_id_of_probe(&probe(&[TYPE_VALUE, 0, 0])), Some(0));
        assert_eq!(
            family_id_of_probe(&probe(&[TYPE_FAMILY_VALUE, 0x83, 0x01, 0, 0])),
            Some(131)
        );
        for bad in [
            &[][..],
            &[TYPE_DELETION, 0],
            &[TYPE_VALUE, 0, 0, 0],
            &[TYPE_FAMILY_VALUE, 0x80],
            &[TYPE_FAMILY_VALUE, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0],
            &[0x7, 0, 0],
        ] {
            assert_eq!(family_id_of_probe(&probe(bad)), None, "{bad:?}");
        }
        assert_eq!(family_id_of_probe(&[TYPE_VALUE, 0, 0]), None);
    }
}
