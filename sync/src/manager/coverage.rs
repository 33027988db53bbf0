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
//! A busy region only ever shrinks, from its end ([`Coverage::steal`]): the fetch in flight keeps
//! its start, and its answer is applied only up to the region's end when it is applied. The
//! answer was verified for the wider range it was asked for, so the keys it holds below that end
//! are the root's, and it proves there are no others between them.
//!
//! The sync is complete when every region is tagged with the target and none is busy; the local
//! root must then equal the target.

use std::collections::BTreeMap;

use arbor_merkledb::Hash;

use super::keyspace::{Frame, midpoint, width};

/// One region of the map.
#[derive(Clone, Debug)]
pub(crate) struct Region {
    /// Exclusive end; `None` = +∞.
    pub(crate) end: Option<Vec<u8>>,
    /// The root whose contents the region holds, if known.
    pub(crate) tag: Option<Hash>,
    /// Being fetched: its contents and tag change only when that fetch completes.
    pub(crate) busy: bool,
    /// Keys per unit of keyspace width that the answer which left this region measured just
    /// before it (see [`Coverage::complete`]), if one did: a hint for sizing requests, not part
    /// of what the region holds (not persisted, not compared).
    pub(crate) density: Option<f64>,
}

impl PartialEq for Region {
    fn eq(&self, other: &Self) -> bool {
        (&self.end, self.tag, self.busy) == (&other.end, other.tag, other.busy)
    }
}

impl Eq for Region {}

impl Region {
    /// An idle region of unknown density.
    fn new(end: Option<Vec<u8>>, tag: Option<Hash>) -> Self {
        Self {
            end,
            tag,
            busy: false,
            density: None,
        }
    }
}

/// How wide one answer's worth of keys is: the keys an answer brings, and the density of keys
/// where a region has none of its own (0: unknown). Keys are seldom spread evenly over the
/// keyspace (an application's keys sit under a few prefixes), so a region's own density, from
/// the answer that left it, comes first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sizing {
    /// Keys in one full answer.
    pub(crate) answer_keys: f64,
    /// Keys per unit of keyspace width over what the sync has covered (0: no keys yet).
    pub(crate) density: f64,
}

impl Sizing {
    /// Nothing known yet: regions are sized by width alone.
    #[cfg(test)]
    pub(crate) const UNKNOWN: Self = Self {
        answer_keys: 0.0,
        density: 0.0,
    };

    /// Sizing where one answer covers `width` of the keyspace wherever a region has no density
    /// of its own.
    #[cfg(test)]
    pub(crate) fn answers_of_width(width: f64) -> Self {
        Self {
            answer_keys: 1.0,
            density: 1.0 / width,
        }
    }

    /// The keyspace width one answer covers in `region` (0: unknown).
    fn answer_width(&self, region: &Region) -> f64 {
        let density = region.density.unwrap_or(self.density);
        if density > 0.0 && self.answer_keys > 0.0 {
            self.answer_keys / density
        } else {
            0.0
        }
    }

    /// How much work `region` holds, to find the largest: its expected keys, or its width
    /// where the density is unknown.
    fn weight(&self, start: &[u8], region: &Region) -> f64 {
        let w = width(start, region.end.as_deref());
        match region.density.unwrap_or(self.density) {
            d if d > 0.0 => w * d,
            _ => w,
        }
    }
}

/// A region is split for another request only when it holds at least this many answers' worth
/// of keys: with fewer, each request still pays its round trip for a smaller answer.
const SPLIT_ANSWERS: f64 = 2.0;

/// A busy region is split ([`Coverage::steal`]) from this many answers' worth (halves of 0.4
/// or more): one that holds a few keys more than an answer, as random keys often do, would
/// otherwise leave a remainder that costs the sync's tail another round trip.
const STEAL_ANSWERS: f64 = 0.8;

/// The width of keyspace one request asks for once the density of keys is known, in answers'
/// widths: a little short of one, so that a piece rarely holds more keys than its answer brings
/// (which would leave a remainder to fetch).
const PIECE: f64 = 0.95;

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

/// Why [`Coverage::claim`] refused an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClaimRefused {
    /// The database already holds the root's contents there.
    Held,
    /// The database holds the interval's contents at another root (change proofs bring it to
    /// the target more cheaply than a whole part).
    Known,
    /// The interval is being fetched, or straddles regions (another part overlaps it, or an
    /// earlier sync covered part of it).
    Overlaps,
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
        regions.insert(Vec::new(), Region::new(None, tag));
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
    /// unknown ones, each in key order. ([`Coverage::spread`] splits them beforehand, so that
    /// more requests can be in flight at once.)
    pub(crate) fn take(&mut self, target: Hash) -> Option<Work> {
        let start = self
            .regions
            .iter()
            .filter(|(_, r)| !r.busy && r.tag != Some(target))
            .min_by_key(|(_, r)| r.tag.is_none())
            .map(|(s, _)| s.clone())?;
        let region = self.regions.get_mut(&start)?;
        region.busy = true;
        Some(Work {
            start,
            end: region.end.clone(),
            tag: region.tag,
        })
    }

    /// [`Coverage::take`], but an unknown region at least 1.5 pieces wide is cut on an aligned key
    /// ([`aligned_point`]) about one piece past its start and only that first part is handed out (a
    /// piece: a little less than one answer's width, once `sizing` or the region knows the density
    /// of keys). Requests then advance through the keyspace in key order, one answer each, so what
    /// a replica writes between two flushes is a few contiguous stretches of keys, not a slice of
    /// every region at once: its files hardly overlap, and compaction moves them down instead of
    /// rewriting the levels below (a 30M-key sync spent 45% of its CPU there).
    pub(crate) fn take_piece(&mut self, target: Hash, sizing: Sizing) -> Option<Work> {
        let mut work = self.take(target)?;
        let piece = PIECE * sizing.answer_width(self.regions.get(&work.start)?);
        if piece <= 0.0 || work.tag.is_some() {
            return Some(work);
        }
        if width(&work.start, work.end.as_deref()) < 1.5 * piece {
            return Some(work);
        }
        // Placed in a frame around the start fine enough for the piece: a piece can be far
        // narrower than what eight bytes of a key resolve (keys under a long common prefix).
        let frame = Frame::near(&work.start, piece);
        let at = frame.rel(Some(&work.start)) + piece / frame.scale();
        let (lo, hi) = (at - 0.05 * piece / frame.scale(), at.min(1.0));
        let Some(cut) = aligned_point(&frame, &work.start, work.end.as_deref(), lo, hi, hi) else {
            return Some(work);
        };
        let Some(mid) = self.split_at(&work.start, cut) else {
            return Some(work);
        };
        if let Some(right) = self.regions.get_mut(&mid) {
            right.busy = false;
        }
        work.end = Some(mid);
        Some(work)
    }

    /// Splits the idle regions not at `target`, the largest first (by expected keys, see
    /// [`Sizing`]), in halves until there are `wanted` of them or none is large enough (see
    /// [`Coverage::split`]). So the requests that fill an empty pipeline cover equal shares of
    /// what is left: taking the first region and halving what remains would send a request for
    /// half the keyspace, then a quarter, an eighth, and the widest would take a long chain of
    /// answers to finish.
    pub(crate) fn spread(&mut self, target: Hash, wanted: usize, sizing: Sizing) {
        let mut idle: Vec<(f64, Vec<u8>)> = self
            .regions
            .iter()
            .filter(|(_, r)| !r.busy && r.tag != Some(target))
            .map(|(start, r)| (sizing.weight(start, r), start.clone()))
            .collect();
        while idle.len() < wanted {
            let Some(widest) = idle
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
                .map(|(i, _)| i)
            else {
                return;
            };
            let start = idle[widest].1.clone();
            let Some(mid) = self.split(&start, SPLIT_ANSWERS, sizing) else {
                return;
            };
            let weight = |c: &Self, start: &[u8]| {
                c.regions
                    .get(start)
                    .map_or(0.0, |r| sizing.weight(start, r))
            };
            idle[widest].0 = weight(self, &start);
            idle.push((weight(self, &mid), mid));
        }
    }

    /// Splits the largest busy region not at `target` that `stealable` allows (by its start) in
    /// halves, as [`Coverage::split`] does (when it holds [`STEAL_ANSWERS`] answers' worth), and
    /// leaves the right half idle for another request. A fetch in flight returns at most one
    /// answer's worth of keys from its region's start, so when the sync has no idle region left,
    /// the far half of a region two answers wide is work another peer can take now instead of
    /// waiting for a slow peer's answer (or hedging its whole request). Its answer is applied only
    /// up to the region's end at that time ([`Coverage::end_of`]). Returns whether a region was
    /// split.
    pub(crate) fn steal(
        &mut self,
        target: Hash,
        sizing: Sizing,
        stealable: impl Fn(&[u8]) -> bool,
    ) -> bool {
        let widest = self
            .regions
            .iter()
            .filter(|(start, r)| r.busy && r.tag != Some(target) && stealable(start))
            .map(|(start, r)| (sizing.weight(start, r), start))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, start)| start.clone());
        let Some(start) = widest else {
            return false;
        };
        let Some(mid) = self.split(&start, STEAL_ANSWERS, sizing) else {
            return false;
        };
        if let Some(right) = self.regions.get_mut(&mid) {
            right.busy = false;
        }
        true
    }

    /// The end of the region starting at `start` (`Some(None)`: +∞), if a region starts there.
    pub(crate) fn end_of(&self, start: &[u8]) -> Option<Option<Vec<u8>>> {
        self.regions.get(start).map(|r| r.end.clone())
    }

    /// Splits the region at `start` in two near its middle (within a sixteenth of its width),
    /// on the most aligned key there ([`aligned_point`]; else at [`split_point`]), when the
    /// region holds at least `answers` answers' worth of keys by `sizing`. A region without a
    /// density of its own must also span at least [`MIN_SPLIT_WIDTH`] of the keyspace (halving
    /// ever smaller regions would go on forever near the end of the keyspace, where keys grow
    /// instead of the gaps); one with a density halves its expected keys with each split, so
    /// its splits end, however narrow it is. Returns the split key, the start of the right half.
    fn split(&mut self, start: &[u8], answers: f64, sizing: Sizing) -> Option<Vec<u8>> {
        let region = self.regions.get(start)?;
        let min_width = answers * sizing.answer_width(region);
        let min_width = match region.density {
            Some(_) => min_width,
            None => min_width.max(MIN_SPLIT_WIDTH),
        };
        let end = region.end.as_deref();
        let w = width(start, end);
        if w < min_width || w <= 0.0 {
            return None;
        }
        let frame = Frame::of(start, end);
        let (from, to) = (frame.rel(Some(start)), frame.rel(end));
        let middle = from + (to - from) / 2.0;
        let near_middle = (to - from) / 16.0;
        let mid = aligned_point(
            &frame,
            start,
            end,
            middle - near_middle,
            middle + near_middle,
            middle,
        )
        .or_else(|| split_point(start, end))?;
        self.split_at(start, mid)
    }

    /// Splits the region at `start` in two at `mid`, which lies strictly inside it (both halves
    /// keep its tag and busy flag). Returns `mid`, the start of the right half.
    fn split_at(&mut self, start: &[u8], mid: Vec<u8>) -> Option<Vec<u8>> {
        let region = self.regions.get(start)?;
        let right = region.clone();
        if let Some(left) = self.regions.get_mut(start) {
            left.end = Some(mid.clone());
        }
        self.regions.insert(mid.clone(), right);
        Some(mid)
    }

    /// Marks `[start, end)` busy for a fetch of its contents at `root` (a snapshot part, whose
    /// bounds the manifest fixed), splitting the region around it. Only an idle region of
    /// unknown contents is claimed: refused when the interval does not lie inside one, or when
    /// it holds `root` or another known root.
    pub(crate) fn claim(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        root: Hash,
    ) -> Result<Work, ClaimRefused> {
        if end.is_some_and(|e| e <= start) {
            return Err(ClaimRefused::Overlaps);
        }
        let (region_start, region) = self
            .regions
            .range(..=start.to_vec())
            .next_back()
            .ok_or(ClaimRefused::Overlaps)?;
        let inside = match (end, region.end.as_deref()) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(e), Some(region_end)) => e <= region_end,
        };
        if region.tag == Some(root) && inside && !region.busy {
            return Err(ClaimRefused::Held);
        }
        if region.busy || !inside {
            return Err(ClaimRefused::Overlaps);
        }
        if region.tag.is_some() {
            return Err(ClaimRefused::Known);
        }
        let (region_start, region) = (region_start.clone(), region.clone());
        if region_start.as_slice() < start {
            self.regions.insert(start.to_vec(), region.clone());
            if let Some(left) = self.regions.get_mut(&region_start) {
                left.end = Some(start.to_vec());
            }
        }
        if let Some(e) = end {
            if region.end.as_deref() != Some(e) {
                self.regions.insert(e.to_vec(), region.clone());
            }
        }
        let claimed = self.regions.get_mut(start).ok_or(ClaimRefused::Overlaps)?;
        claimed.end = end.map(<[u8]>::to_vec);
        claimed.busy = true;
        Ok(Work {
            start: start.to_vec(),
            end: claimed.end.clone(),
            tag: claimed.tag,
        })
    }

    /// Gives a busy region back untouched (its fetch failed).
    pub(crate) fn release(&mut self, start: &[u8]) {
        if let Some(region) = self.regions.get_mut(start) {
            region.busy = false;
        }
        self.merge_around(start);
    }

    /// Records that the busy region at `start` now holds `root` up to `until`; the rest of it keeps
    /// its old tag. The region becomes idle. `density` is what the answer measured (keys per unit
    /// of width: over its own keys when it stopped at a key, over the region when it covered it);
    /// the region after it (the rest, or else the first idle region past it: past the pieces in
    /// flight) takes it as the density where it starts, replacing what it inherited from a split.
    /// (A density is only a hint, but a stale high one would cut an empty stretch into ever smaller
    /// pieces; an empty answer resets it, and the next piece is sized by the sync's overall
    /// density.)
    pub(crate) fn complete(
        &mut self,
        start: &[u8],
        until: &Until,
        root: Hash,
        density: Option<f64>,
    ) {
        let Some(region) = self.regions.get_mut(start) else {
            return;
        };
        region.busy = false;
        let old_tag = region.tag;
        region.tag = Some(root);
        let density = density.filter(|d| d.is_finite() && *d > 0.0);
        match until {
            Until::Key(key) => {
                let inside = key.as_slice() > start
                    && region.end.as_deref().is_none_or(|e| key.as_slice() < e);
                if inside {
                    let rest = Region {
                        end: region.end.replace(key.clone()),
                        tag: old_tag,
                        busy: false,
                        density,
                    };
                    self.regions.insert(key.clone(), rest);
                    self.merge_around(key);
                }
            }
            Until::End => {
                // Past the pieces still in flight: the first idle region after this one.
                if let Some(end) = region.end.clone() {
                    if let Some((_, next)) =
                        self.regions.range_mut(end..).find(|(_, next)| !next.busy)
                    {
                        next.density = density;
                    }
                }
            }
        }
        self.merge_around(start);
    }

    /// Records that `[start, end)` (`None`: +∞) now holds `root`, whatever the regions there
    /// held: the diff walk, which writes such an interval in the same commit. No region
    /// overlapping it may be busy.
    pub(crate) fn mark(&mut self, start: &[u8], end: Option<&[u8]>, root: Hash) {
        if end.is_some_and(|e| e <= start) {
            return;
        }
        self.cut_at(start);
        if let Some(e) = end {
            self.cut_at(e);
        }
        let inside: Vec<Vec<u8>> = self
            .regions
            .range(start.to_vec()..)
            .take_while(|(s, _)| end.is_none_or(|e| s.as_slice() < e))
            .map(|(s, _)| s.clone())
            .collect();
        debug_assert!(inside.iter().all(|s| !self.regions[s].busy));
        for s in inside {
            self.regions.remove(&s);
        }
        self.regions.insert(
            start.to_vec(),
            Region::new(end.map(<[u8]>::to_vec), Some(root)),
        );
        self.merge_around(start);
    }

    /// Splits the region holding `key` so that a region starts at `key`.
    fn cut_at(&mut self, key: &[u8]) {
        let Some((start, region)) = self.regions.range(..=key.to_vec()).next_back() else {
            return;
        };
        if start.as_slice() == key || region.end.as_deref().is_some_and(|e| e <= key) {
            return;
        }
        let (start, right) = (start.clone(), region.clone());
        if let Some(left) = self.regions.get_mut(&start) {
            left.end = Some(key.to_vec());
        }
        self.regions.insert(key.to_vec(), right);
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
                        prev.density = denser(prev.density, here.density);
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
                            here.density = denser(here.density, next.density);
                        }
                    }
                }
            }
        }
    }

    /// The root other than `target` that the widest share of the keyspace holds, if any.
    pub(crate) fn widest_stale_tag(&self, target: Hash) -> Option<Hash> {
        let mut widths: Vec<(Hash, f64)> = Vec::new();
        for (start, region) in &self.regions {
            let Some(tag) = region.tag.filter(|t| *t != target) else {
                continue;
            };
            let width = width(start, region.end.as_deref());
            match widths.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, w)) => *w += width,
                None => widths.push((tag, width)),
            }
        }
        widths
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(tag, _)| tag)
    }

    /// The fraction of the keyspace (keys read as base-256 fractions) that holds `target`, in
    /// `[0, 1]`.
    pub(crate) fn fraction_at(&self, target: Hash) -> f64 {
        self.regions
            .iter()
            .filter(|(_, r)| r.tag == Some(target))
            .map(|(s, r)| width(s, r.end.as_deref()))
            .sum::<f64>()
            .clamp(0.0, 1.0)
            // An empty sum is -0.0, which JSON would show as "-0.0".
            + 0.0
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
            regions.insert(start, Region::new(end, tag));
        }
        (r.is_empty() && expected_start.is_none()).then_some(Self { regions })
    }
}

/// A key strictly inside `(start, end)` to split at when no aligned key lies near the middle
/// (e.g. keys that share their first 8 bytes), preferring one that ends in a zero byte so the
/// left half's exclusive end `m ‖ 0` maps to the inclusive request end `m` exactly.
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

/// The key strictly inside `(start, end)` whose position in `frame` ([`Frame::rel`]) lies in
/// `[lo, hi]` with the fewest significant nibbles after the frame's prefix (trailing zero bytes
/// dropped), the nearest to `near` of those; `None` when there is none.
///
/// Regions are split on such keys. An answer ends with a proof of its last key, from which the
/// next key to ask for is the start of the next subtrie to its right (`find_next_key`): when a
/// region ends inside a subtrie's span, an answer holding every key of the region still leaves
/// `[that subtrie's start, region end)` to ask for, nearly always for nothing (17 of 537
/// answers of a 1M-key sync, 77 of 680 with narrow peers beside, were such empty answers). A
/// bound on a nibble boundary at least as coarse as the trie's branching there is where a
/// subtrie starts, so that remainder does not arise.
pub(crate) fn aligned_point(
    frame: &Frame,
    start: &[u8],
    end: Option<&[u8]>,
    lo: f64,
    hi: f64,
    near: f64,
) -> Option<Vec<u8>> {
    const SCALE: f64 = 18_446_744_073_709_551_616.0;
    // Float-to-integer `as` saturates: a value at or past 2^64 becomes u64::MAX.
    let lo = (lo.max(0.0) * SCALE).ceil() as u64;
    let hi = (hi.min(1.0) * SCALE).floor() as u64;
    let near = (near.clamp(0.0, 1.0) * SCALE) as u64;
    let inside = |k: &[u8]| k > start && end.is_none_or(|e| k < e);
    (1..=16u32).find_map(|nibbles| {
        let unit = 1u64 << (64 - 4 * nibbles);
        let below = near / unit * unit;
        let mut candidates = [Some(below), below.checked_add(unit)];
        candidates.sort_by_key(|c| c.map(|c| c.abs_diff(near)));
        candidates.into_iter().flatten().find_map(|at| {
            if at < lo || at > hi || at == 0 {
                return None;
            }
            let key = frame.key_at(at);
            inside(&key).then_some(key)
        })
    })
}

/// The density a merged region keeps: the higher of its parts' (splitting more where keys may
/// be dense costs a few small answers; splitting less costs round trips in sequence).
fn denser(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
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
mod tests;
