//! The coverage map: what the local database is known to hold, range by range.
//!
//! # Bounds
//!
//! The map partitions the whole keyspace into **half-open** regions `[start, end)`: `start` is
//! inclusive (the first region starts at the empty key, the smallest byte string), `end` is
//! exclusive, `None` = +∞. Each region's `end` is the next region's `start`, so every key belongs
//! to exactly one region (`tests::every_key_has_one_region`).
//!
//! # Invariant
//!
//! A region tagged `Some(root)` holds, in the local database, exactly the contents of the trie at
//! `root` within `[start, end)`. `None` means nothing is known. The invariant holds in memory and
//! in the persisted copy: a region's tag only changes in the same atomic commit that writes its
//! contents (`apply.rs`), and a region being fetched is `busy`, so no one else writes inside it.
//!
//! The sync is complete when every region is tagged with the target and none is busy; the local
//! root must then equal the target.

use std::collections::BTreeMap;

use arbor_merkledb::Hash;

use crate::next_key::midpoint;

/// One region of the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    /// Exclusive end; `None` = +∞.
    pub(crate) end: Option<Vec<u8>>,
    /// The root whose contents the region holds, if known.
    pub(crate) tag: Option<Hash>,
    /// Being fetched: its contents and tag change only when that fetch completes.
    pub(crate) busy: bool,
}

/// A region handed out for fetching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Work {
    /// Inclusive start.
    pub(crate) start: Vec<u8>,
    /// Exclusive end; `None` = +∞.
    pub(crate) end: Option<Vec<u8>>,
    /// The root the region holds now (`None`: unknown, so fetch a range proof).
    pub(crate) tag: Option<Hash>,
}

/// How far a completed fetch covered its region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Until {
    /// The whole region.
    End,
    /// `[start, key)`, with `start < key < end`; the rest keeps its old tag.
    Key(Vec<u8>),
}

/// The partition of the keyspace into tagged regions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Coverage {
    /// Region start → region.
    regions: BTreeMap<Vec<u8>, Region>,
}

/// The narrowest region worth splitting, as a fraction of the keyspace (by key position).
const MIN_SPLIT_WIDTH: f64 = 1.0 / 65536.0;

/// Format version of [`Coverage::encode`].
const ENCODING_VERSION: u8 = 1;

impl Coverage {
    /// One region for the whole keyspace, tagged `tag`.
    pub(crate) fn whole(tag: Option<Hash>) -> Self {
        let mut regions = BTreeMap::new();
        regions.insert(
            Vec::new(),
            Region {
                end: None,
                tag,
                busy: false,
            },
        );
        Self { regions }
    }

    /// The regions in key order.
    #[cfg(test)]
    pub(crate) fn regions(&self) -> impl Iterator<Item = (&Vec<u8>, &Region)> {
        self.regions.iter()
    }

    /// Idle regions that still need fetching for `target`.
    pub(crate) fn pending(&self, target: Hash) -> usize {
        self.regions
            .values()
            .filter(|r| !r.busy && r.tag != Some(target))
            .count()
    }

    /// Every region holds `target` and none is being fetched.
    pub(crate) fn is_complete(&self, target: Hash) -> bool {
        self.regions
            .values()
            .all(|r| !r.busy && r.tag == Some(target))
    }

    /// Hands out the next idle region that does not hold `target`, marking it busy. Regions
    /// known at some older root come first (a change proof brings them up to date cheaply), then
    /// unknown ones, each in key order. With `split`, a region is halved first when it can be,
    /// and the left half handed out, so more workers find work.
    pub(crate) fn take(&mut self, target: Hash, split: bool) -> Option<Work> {
        let start = self
            .regions
            .iter()
            .filter(|(_, r)| !r.busy && r.tag != Some(target))
            .min_by_key(|(_, r)| r.tag.is_none())
            .map(|(s, _)| s.clone())?;
        if split {
            self.split(&start);
        }
        let region = self.regions.get_mut(&start)?;
        region.busy = true;
        Some(Work {
            start,
            end: region.end.clone(),
            tag: region.tag,
        })
    }

    /// Splits the region at `start` in two at a midpoint, when one exists and the region spans
    /// at least [`MIN_SPLIT_WIDTH`] of the keyspace (halving ever smaller regions would go on
    /// forever near the end of the keyspace, where keys grow instead of the gaps).
    fn split(&mut self, start: &[u8]) {
        let Some(region) = self.regions.get(start) else {
            return;
        };
        if position(region.end.as_deref()) - position(Some(start)) < MIN_SPLIT_WIDTH {
            return;
        }
        let Some(mid) = split_point(start, region.end.as_deref()) else {
            return;
        };
        let right = Region {
            end: region.end.clone(),
            tag: region.tag,
            busy: region.busy,
        };
        if let Some(left) = self.regions.get_mut(start) {
            left.end = Some(mid.clone());
        }
        self.regions.insert(mid, right);
    }

    /// Gives a busy region back untouched (its fetch failed).
    pub(crate) fn release(&mut self, start: &[u8]) {
        if let Some(region) = self.regions.get_mut(start) {
            region.busy = false;
        }
        self.merge_around(start);
    }

    /// Records that the busy region at `start` now holds `root` up to `until`; the rest of it
    /// keeps its old tag. The region becomes idle.
    pub(crate) fn complete(&mut self, start: &[u8], until: &Until, root: Hash) {
        let Some(region) = self.regions.get_mut(start) else {
            return;
        };
        region.busy = false;
        let old_tag = region.tag;
        region.tag = Some(root);
        if let Until::Key(key) = until {
            let inside =
                key.as_slice() > start && region.end.as_deref().is_none_or(|e| key.as_slice() < e);
            if inside {
                let rest = Region {
                    end: region.end.replace(key.clone()),
                    tag: old_tag,
                    busy: false,
                };
                self.regions.insert(key.clone(), rest);
                self.merge_around(key);
            }
        }
        self.merge_around(start);
    }

    /// Forgets what is known inside the region at `start` (e.g. when a change proof for it
    /// cannot be checked), so it is fetched again with range proofs.
    pub(crate) fn forget(&mut self, start: &[u8]) {
        if let Some(region) = self.regions.get_mut(start) {
            region.busy = false;
            region.tag = None;
        }
        self.merge_around(start);
    }

    /// Merges the region at `start` with idle neighbours of the same tag.
    fn merge_around(&mut self, start: &[u8]) {
        let mut start = start.to_vec();
        // With the predecessor.
        if let Some((prev_start, prev)) = self.regions.range(..start.clone()).next_back() {
            let here = &self.regions[&start];
            if !prev.busy && !here.busy && prev.tag == here.tag {
                let prev_start = prev_start.clone();
                if let Some(here) = self.regions.remove(&start) {
                    if let Some(prev) = self.regions.get_mut(&prev_start) {
                        prev.end = here.end;
                    }
                }
                start = prev_start;
            }
        }
        // With the successor.
        let here = &self.regions[&start];
        if let Some(next_start) = here.end.clone() {
            if let Some(next) = self.regions.get(&next_start) {
                if !next.busy && !here.busy && next.tag == here.tag {
                    if let Some(next) = self.regions.remove(&next_start) {
                        if let Some(here) = self.regions.get_mut(&start) {
                            here.end = next.end;
                        }
                    }
                }
            }
        }
    }

    /// The fraction of the keyspace (by the position of keys' first 8 bytes) that holds
    /// `target`, in `[0, 1]`.
    pub(crate) fn fraction_at(&self, target: Hash) -> f64 {
        self.regions
            .iter()
            .filter(|(_, r)| r.tag == Some(target))
            .map(|(s, r)| position(r.end.as_deref()) - position(Some(s)))
            .sum::<f64>()
            .clamp(0.0, 1.0)
    }

    /// The persisted form: version, region count, then per region its start, end and tag.
    /// Busy regions are written with their current (pre-fetch) tag, which is still true.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![ENCODING_VERSION];
        put_u32(&mut out, self.regions.len());
        for (start, region) in &self.regions {
            put_bytes(&mut out, start);
            match &region.end {
                Some(end) => {
                    out.push(1);
                    put_bytes(&mut out, end);
                }
                None => out.push(0),
            }
            match &region.tag {
                Some(tag) => {
                    out.push(1);
                    out.extend_from_slice(tag.as_bytes());
                }
                None => out.push(0),
            }
        }
        out
    }

    /// Reads [`Coverage::encode`]'s output; `None` if it is malformed or does not partition the
    /// keyspace (the caller then starts from what the database itself proves).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = bytes;
        if take(&mut r, 1)? != [ENCODING_VERSION] {
            return None;
        }
        let count = get_u32(&mut r)?;
        let mut regions = BTreeMap::new();
        let mut expected_start: Option<Vec<u8>> = Some(Vec::new());
        for _ in 0..count {
            let start = get_bytes(&mut r)?;
            if expected_start.as_ref() != Some(&start) {
                return None;
            }
            let end = match take(&mut r, 1)?[0] {
                0 => None,
                1 => Some(get_bytes(&mut r)?),
                _ => return None,
            };
            if end.as_ref().is_some_and(|e| *e <= start) {
                return None;
            }
            let tag = match take(&mut r, 1)?[0] {
                0 => None,
                1 => Some(Hash::from_slice(take(&mut r, 32)?)?),
                _ => return None,
            };
            expected_start = end.clone();
            regions.insert(
                start,
                Region {
                    end,
                    tag,
                    busy: false,
                },
            );
        }
        (r.is_empty() && expected_start.is_none()).then_some(Self { regions })
    }
}

/// A key strictly inside `(start, end)` to split at, preferring one that ends in a zero byte so
/// the left half's exclusive end `m ‖ 0` maps to the inclusive request end `m` exactly.
pub(crate) fn split_point(start: &[u8], end: Option<&[u8]>) -> Option<Vec<u8>> {
    let mid = midpoint(Some(start), end)?;
    let inside = |k: &[u8]| k > start && end.is_none_or(|e| k < e);
    let mut exact = mid.clone();
    exact.push(0);
    if inside(&exact) {
        Some(exact)
    } else {
        inside(&mid).then_some(mid)
    }
}

/// A key's position in the keyspace in `[0, 1)` by its first 8 bytes; `None` (+∞) is 1.
pub(crate) fn position(key: Option<&[u8]>) -> f64 {
    let Some(key) = key else {
        return 1.0;
    };
    let mut head = [0u8; 8];
    let n = key.len().min(8);
    head[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(head) as f64 / 18_446_744_073_709_551_616.0
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (head, tail) = r.split_at(n);
    *r = tail;
    Some(head)
}

fn get_u32(r: &mut &[u8]) -> Option<usize> {
    let bytes: [u8; 4] = take(r, 4)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(bytes)).ok()
}

fn get_bytes(r: &mut &[u8]) -> Option<Vec<u8>> {
    let n = get_u32(r)?;
    Some(take(r, n)?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> Hash {
        Hash([b; 32])
    }

    /// The regions tile the keyspace: first starts at the empty key, each ends where the next
    /// starts, the last ends at +∞.
    fn assert_partition(c: &Coverage) {
        let mut expected = Some(Vec::new());
        for (start, region) in c.regions() {
            assert_eq!(
                expected.as_ref(),
                Some(start),
                "gap or overlap at {start:?}"
            );
            if let Some(end) = &region.end {
                assert!(end > start, "empty region at {start:?}");
            }
            expected = region.end.clone();
        }
        assert_eq!(expected, None, "last region must reach +inf");
    }

    #[test]
    fn every_key_has_one_region() {
        let target = h(1);
        let mut c = Coverage::whole(None);
        let mut handed = Vec::new();
        for _ in 0..20 {
            if let Some(w) = c.take(target, true) {
                handed.push(w);
            }
            assert_partition(&c);
        }
        assert!(handed.len() >= 10, "splitting keeps handing out work");
        assert!(handed.len() < 20, "but stops at narrow regions");
        for w in &handed {
            c.complete(&w.start, &Until::End, target);
            assert_partition(&c);
        }
        while let Some(w) = c.take(target, false) {
            c.complete(&w.start, &Until::End, target);
        }
        assert!(c.is_complete(target));
        assert_eq!(c.regions().count(), 1, "equal neighbours merge");
        assert!((c.fraction_at(target) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn partial_completion_keeps_the_rest_at_its_old_tag() {
        let (old, target) = (h(1), h(2));
        let mut c = Coverage::whole(Some(old));
        let w = c.take(target, false).expect("work");
        assert_eq!(w.tag, Some(old));
        c.complete(&w.start, &Until::Key(vec![0x80]), target);
        let regions: Vec<_> = c.regions().map(|(s, r)| (s.clone(), r.clone())).collect();
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0].1.end, Some(vec![0x80]));
        assert_eq!(regions[0].1.tag, Some(target));
        assert_eq!(regions[1].0, vec![0x80]);
        assert_eq!(regions[1].1.tag, Some(old));
        assert!((c.fraction_at(target) - 0.5).abs() < 1e-12);
        // A key outside the region is ignored: the whole region is not claimed by mistake.
        let w = c.take(target, false).expect("work");
        c.complete(&w.start, &Until::Key(vec![0x10]), target);
        assert!(
            c.is_complete(target),
            "out-of-region key treated as whole region"
        );
    }

    #[test]
    fn known_regions_come_before_unknown_ones_and_busy_ones_are_skipped() {
        let (old, target) = (h(1), h(2));
        let mut c = Coverage::whole(None);
        let w = c.take(target, false).expect("work");
        c.complete(&w.start, &Until::Key(vec![0x40]), old);
        let first = c.take(target, false).expect("work");
        assert_eq!(first.tag, Some(old), "change-proof work first");
        let second = c.take(target, false).expect("work");
        assert_eq!(second.tag, None);
        assert_eq!(c.take(target, false), None, "everything is busy");
        c.release(&first.start);
        assert_eq!(c.take(target, false), Some(first));
    }

    #[test]
    fn forget_turns_a_region_into_range_work() {
        let (old, target) = (h(1), h(2));
        let mut c = Coverage::whole(Some(old));
        let w = c.take(target, false).expect("work");
        c.forget(&w.start);
        assert_eq!(c.take(target, false).expect("work").tag, None);
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let target = h(7);
        let mut c = Coverage::whole(Some(h(3)));
        for _ in 0..6 {
            let w = c.take(target, true).expect("work");
            c.complete(&w.start, &Until::End, target);
        }
        let w = c.take(target, true).expect("work");
        let bytes = c.encode();
        let mut decoded = Coverage::decode(&bytes).expect("decode");
        // Busy is not persisted: after a restart nothing is in flight.
        c.release(&w.start);
        decoded.merge_around(&w.start);
        assert_eq!(decoded, c);
        for cut in 0..bytes.len() {
            assert_eq!(Coverage::decode(&bytes[..cut]), None, "truncated at {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert_eq!(Coverage::decode(&bad), None, "unknown version");
    }

    #[test]
    fn split_points_lie_strictly_inside_and_prefer_a_trailing_zero() {
        let cases: [(&[u8], Option<&[u8]>); 5] = [
            (&[], None),
            (&[], Some(&[1])),
            (&[1, 255], Some(&[2, 1])),
            (&[5], Some(&[5, 0])),
            (&[0xff, 0xff], None),
        ];
        for (start, end) in cases {
            match split_point(start, end) {
                Some(m) => {
                    assert!(m.as_slice() > start && end.is_none_or(|e| m.as_slice() < e));
                }
                None => assert_eq!(end, Some(&[5u8, 0][..]), "only [5, 5‖0) cannot split"),
            }
        }
        assert_eq!(split_point(&[], None), Some(vec![127, 0]));
    }

    #[test]
    fn positions_are_monotone() {
        assert_eq!(position(Some(&[])), 0.0);
        assert_eq!(position(None), 1.0);
        assert!((position(Some(&[0x80])) - 0.5).abs() < 1e-12);
        assert!(position(Some(&[1, 2])) < position(Some(&[1, 3])));
    }
}
