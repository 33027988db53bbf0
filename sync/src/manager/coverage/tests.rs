use super::*;
use crate::manager::keyspace::{Frame, width};

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
        c.spread(target, 2, Sizing::UNKNOWN);
        if let Some(w) = c.take(target) {
            handed.push(w);
        }
        assert_partition(&c);
    }
    assert!(handed.len() >= 10, "splitting keeps handing out work");
    assert!(handed.len() < 20, "but stops at narrow regions");
    for w in &handed {
        c.complete(&w.start, &Until::End, target, None);
        assert_partition(&c);
    }
    while let Some(w) = c.take(target) {
        c.complete(&w.start, &Until::End, target, None);
    }
    assert!(c.is_complete(target));
    assert_eq!(c.regions().count(), 1, "equal neighbours merge");
    assert!((c.fraction_at(target) - 1.0).abs() < 1e-12);
}

#[test]
fn partial_completion_keeps_the_rest_at_its_old_tag() {
    let (old, target) = (h(1), h(2));
    let mut c = Coverage::whole(Some(old));
    let w = c.take(target).expect("work");
    assert_eq!(w.tag, Some(old));
    c.complete(&w.start, &Until::Key(vec![0x80]), target, None);
    let regions: Vec<_> = c.regions().map(|(s, r)| (s.clone(), r.clone())).collect();
    assert_eq!(regions.len(), 2);
    assert_eq!(regions[0].1.end, Some(vec![0x80]));
    assert_eq!(regions[0].1.tag, Some(target));
    assert_eq!(regions[1].0, vec![0x80]);
    assert_eq!(regions[1].1.tag, Some(old));
    assert!((c.fraction_at(target) - 0.5).abs() < 1e-12);
    // A key outside the region is ignored: the whole region is not claimed by mistake.
    let w = c.take(target).expect("work");
    c.complete(&w.start, &Until::Key(vec![0x10]), target, None);
    assert!(
        c.is_complete(target),
        "out-of-region key treated as whole region"
    );
}

#[test]
fn known_regions_come_before_unknown_ones_and_busy_ones_are_skipped() {
    let (old, target) = (h(1), h(2));
    let mut c = Coverage::whole(None);
    let w = c.take(target).expect("work");
    c.complete(&w.start, &Until::Key(vec![0x40]), old, None);
    let first = c.take(target).expect("work");
    assert_eq!(first.tag, Some(old), "change-proof work first");
    let second = c.take(target).expect("work");
    assert_eq!(second.tag, None);
    assert_eq!(c.take(target), None, "everything is busy");
    c.release(&first.start);
    assert_eq!(c.take(target), Some(first));
}

#[test]
fn forget_turns_a_region_into_range_work() {
    let (old, target) = (h(1), h(2));
    let mut c = Coverage::whole(Some(old));
    let w = c.take(target).expect("work");
    c.forget(&w.start);
    assert_eq!(c.take(target).expect("work").tag, None);
}

#[test]
fn encoding_round_trips_and_rejects_garbage() {
    let target = h(7);
    let mut c = Coverage::whole(Some(h(3)));
    for _ in 0..6 {
        c.spread(target, 2, Sizing::UNKNOWN);
        let w = c.take(target).expect("work");
        c.complete(&w.start, &Until::End, target, None);
    }
    c.spread(target, 2, Sizing::UNKNOWN);
    let w = c.take(target).expect("work");
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

/// A key's position in the keyspace: the width before it.
fn position(key: Option<&[u8]>) -> f64 {
    width(&[], key)
}

#[test]
fn positions_are_monotone() {
    assert_eq!(position(Some(&[])), 0.0);
    assert_eq!(position(None), 1.0);
    assert!((position(Some(&[0x80])) - 0.5).abs() < 1e-12);
    assert!(position(Some(&[1, 2])) < position(Some(&[1, 3])));
}

#[test]
fn claim_splits_around_the_interval_and_refuses_overlaps() {
    let root = h(7);
    let mut c = Coverage::whole(None);
    let w = c
        .claim(&[0x40], Some(&[0x80]), root)
        .expect("inside one idle region");
    assert_eq!(
        (w.start.clone(), w.end.clone(), w.tag),
        (vec![0x40], Some(vec![0x80]), None)
    );
    assert_partition(&c);
    assert_eq!(c.regions().count(), 3);
    // Overlapping the busy interval from either side, or inside it.
    assert_eq!(
        c.claim(&[0x30], Some(&[0x50]), root),
        Err(ClaimRefused::Overlaps)
    );
    assert_eq!(
        c.claim(&[0x50], Some(&[0x60]), root),
        Err(ClaimRefused::Overlaps)
    );
    assert_eq!(
        c.claim(&[0x70], Some(&[0x90]), root),
        Err(ClaimRefused::Overlaps)
    );
    assert_eq!(
        c.claim(&[0x10], Some(&[0x10]), root),
        Err(ClaimRefused::Overlaps),
        "empty"
    );
    c.complete(&w.start, &Until::End, root, None);
    assert_eq!(
        c.claim(&[0x40], Some(&[0x80]), root),
        Err(ClaimRefused::Held)
    );
    assert_eq!(
        c.claim(&[0x50], Some(&[0x60]), root),
        Err(ClaimRefused::Held),
        "inside held"
    );
    // Straddling a held and an unknown region.
    assert_eq!(c.claim(&[0x70], None, root), Err(ClaimRefused::Overlaps));
    // The edges: from the empty key, and to +inf.
    let first = c.claim(&[], Some(&[0x40]), root).expect("first");
    let last = c.claim(&[0x80], None, root).expect("last");
    assert_eq!(last.end, None);
    c.complete(&first.start, &Until::End, root, None);
    c.complete(&last.start, &Until::End, root, None);
    assert!(c.is_complete(root));
    assert_eq!(c.regions().count(), 1);
    // A region known at another root is left to change proofs.
    let mut c = Coverage::whole(Some(h(8)));
    assert_eq!(
        c.claim(&[0x40], Some(&[0x80]), root),
        Err(ClaimRefused::Known)
    );
    // A released claim merges back.
    let mut c = Coverage::whole(None);
    let w = c.claim(&[0x40], Some(&[0x80]), root).expect("claim");
    c.release(&w.start);
    assert_eq!(c.regions().count(), 1);
}

#[test]
fn mark_tags_any_interval_and_merges_with_its_neighbours() {
    let mut c = Coverage::whole(Some(h(1)));
    c.mark(&[0x20], Some(&[0x30]), h(2));
    assert_partition(&c);
    let tags: Vec<_> = c.regions().map(|(s, r)| (s.clone(), r.tag)).collect();
    assert_eq!(
        tags,
        vec![
            (vec![], Some(h(1))),
            (vec![0x20], Some(h(2))),
            (vec![0x30], Some(h(1)))
        ]
    );
    // Across region edges, and touching the last region's open end.
    c.mark(&[0x25], None, h(2));
    assert_partition(&c);
    let tags: Vec<_> = c.regions().map(|(s, r)| (s.clone(), r.tag)).collect();
    assert_eq!(tags, vec![(vec![], Some(h(1))), (vec![0x20], Some(h(2)))]);
    c.mark(&[], Some(&[0x20]), h(2));
    assert!(c.is_complete(h(2)));
    assert_eq!(c.regions().count(), 1);
    // An empty interval changes nothing.
    c.mark(&[0x40], Some(&[0x40]), h(3));
    assert!(c.is_complete(h(2)));
}

/// Spreading splits the widest idle regions first, so a pipeline filled from nothing asks for
/// equal shares of the keyspace; busy and finished regions stay as they are, and splitting
/// stops at the narrowest width allowed.
#[test]
fn spreading_splits_the_widest_idle_regions_into_equal_shares() {
    let target = h(1);
    let mut c = Coverage::whole(None);
    c.spread(target, 8, Sizing::UNKNOWN);
    assert_partition(&c);
    let widths: Vec<f64> = c
        .regions()
        .map(|(s, r)| position(r.end.as_deref()) - position(Some(s)))
        .collect();
    assert_eq!(widths.len(), 8);
    assert!(
        widths.iter().all(|w| (w - 0.125).abs() < 0.002),
        "{widths:?}"
    );

    // One region busy, one finished: only the six idle ones count and split.
    let busy = c.take(target).expect("work");
    let done = c.take(target).expect("work");
    c.complete(&done.start, &Until::End, target, None);
    c.spread(target, 12, Sizing::UNKNOWN);
    assert_partition(&c);
    assert_eq!(c.pending(target), 12);
    let region = |start: &[u8]| {
        c.regions()
            .find(|(s, _)| s.as_slice() == start)
            .map(|(_, r)| r.clone())
            .expect("region")
    };
    assert!(region(&busy.start).busy);
    assert_eq!(
        region(&busy.start).end,
        busy.end,
        "a busy region is not split"
    );

    // A region narrower than the minimum width is not halved: eighths are, sixteenths not.
    let mut c = Coverage::whole(None);
    c.spread(target, 1000, Sizing::answers_of_width(0.05));
    assert_eq!(c.pending(target), 16, "halving stops below a tenth");
}

/// Split points are the most aligned keys near where they are wanted (so a region ends where
/// a subtrie starts, and an answer holding all its keys leaves nothing to ask for), with no
/// trailing zero bytes, strictly inside their region.
#[test]
fn split_points_fall_on_nibble_boundaries() {
    // The middle of [0x10, 0x20) is 0x18, on a nibble boundary itself.
    assert_eq!(
        aligned_point(
            &Frame::of(&[], None),
            &[0x10],
            Some(&[0x20]),
            0.09,
            0.1,
            0.09375
        ),
        Some(vec![0x18])
    );
    // Between 0x1234.. and 0x1240..: the coarsest point in the window, then the nearest.
    let start = [0x12, 0x34, 0x56];
    let end = [0x12, 0x40];
    let frame = Frame::of(&start, Some(&end));
    let (lo, hi) = (frame.rel(Some(&start)), frame.rel(Some(&end)));
    let key = aligned_point(&frame, &start, Some(&end), lo, hi, (lo + hi) / 2.0).expect("a point");
    assert_eq!(
        key,
        vec![0x12, 0x3a],
        "four nibbles, nearest the middle 0x123a2b"
    );
    // Nothing aligned inside: not a key at or beyond the bounds.
    assert_eq!(
        aligned_point(
            &Frame::of(&[], None),
            &[0x12],
            Some(&[0x12, 0, 1]),
            0.0,
            1.0,
            0.5
        ),
        None
    );
    // Every split of a random region lies strictly inside it.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut found = 0;
    for _ in 0..10_000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let a = rng.to_be_bytes()[..(rng % 9) as usize].to_vec();
        let b = rng.rotate_left(17).to_be_bytes()[..(rng % 7 + 1) as usize].to_vec();
        let (start, end) = if a < b { (a, b) } else { (b, a) };
        let frame = Frame::of(&start, Some(&end));
        let (lo, hi) = (frame.rel(Some(&start)), frame.rel(Some(&end)));
        if let Some(k) = aligned_point(&frame, &start, Some(&end), lo, hi, (lo + hi) / 2.0) {
            assert!(k > start && k < end, "{start:?} {k:?} {end:?}");
            assert_ne!(k.last(), Some(&0));
            found += 1;
        }
    }
    assert!(
        found > 5_000,
        "only {found} of 10,000 random regions had a split point"
    );
}

/// With no idle region left, a steal halves the widest busy region the caller allows, leaving
/// its right half idle and its left half busy (the fetch in flight keeps its start); regions
/// narrower than the minimum width, at the target, or refused by the caller are not split.
#[test]
fn a_steal_gives_the_far_half_of_the_widest_busy_region_back() {
    let target = h(1);
    let mut c = Coverage::whole(None);
    c.spread(target, 4, Sizing::UNKNOWN);
    let quarters: Vec<Work> = (0..4).map(|_| c.take(target).expect("work")).collect();
    assert_eq!(c.pending(target), 0);
    // The first quarter is finished; the last one may not be split (e.g. a snapshot part).
    c.complete(&quarters[0].start, &Until::End, target, None);
    let last = quarters[3].start.clone();
    let end_before = c.end_of(&quarters[1].start).expect("region");

    let second = quarters[1].start.clone();
    assert!(c.steal(target, Sizing::answers_of_width(0.125), |s| s
        == second.as_slice()));
    assert_partition(&c);
    assert_eq!(c.pending(target), 1, "one half given back");
    let left = c
        .end_of(&quarters[1].start)
        .expect("region")
        .expect("bounded");
    assert!(position(Some(&left)) - position(Some(&quarters[1].start)) < 0.13);
    let right = c.take(target).expect("the right half is idle");
    assert_eq!(right.start, left, "the halves meet");
    assert_eq!(
        right.end, end_before,
        "the right half ends where the region did"
    );
    assert_eq!(
        c.end_of(&last),
        Some(quarters[3].end.clone()),
        "refused: not split"
    );
    // The widest busy region allowed goes next: the third quarter, not the second's left half.
    assert!(c.steal(target, Sizing::answers_of_width(0.125), |s| s
        != last.as_slice()));
    assert_partition(&c);
    assert_eq!(c.take(target).expect("work").end, quarters[2].end);
    assert_eq!(
        c.end_of(&last),
        Some(quarters[3].end.clone()),
        "refused: not split"
    );

    // No busy region is wider than a quarter of the keyspace.
    assert!(
        !c.steal(target, Sizing::answers_of_width(0.375), |_| true),
        "all busy regions too narrow"
    );
    // Finished regions are never stolen from, busy or not.
    let mut done = Coverage::whole(None);
    let whole = done.take(target).expect("work");
    done.complete(&whole.start, &Until::End, target, None);
    assert!(!done.steal(target, Sizing::UNKNOWN, |_| true));
}

/// Once the density of keys is known, work is handed out a piece at a time in key order: the
/// first idle region's first piece (about one answer, cut on an aligned key), the next piece
/// right after it, and so on; a region under 1.5 pieces, or one known at an older root (a
/// change proof's work), goes whole, as does everything while the piece width is unknown.
#[test]
fn pieces_are_handed_out_in_key_order() {
    let target = h(1);
    let piece = 0.01;
    let mut c = Coverage::whole(None);
    let first = c
        .take_piece(target, Sizing::answers_of_width(piece / PIECE))
        .expect("work");
    let second = c
        .take_piece(target, Sizing::answers_of_width(piece / PIECE))
        .expect("work");
    assert_partition(&c);
    assert_eq!(first.start, Vec::<u8>::new());
    let cut = first.end.clone().expect("cut");
    assert!(
        (0.0095..=0.01).contains(&position(Some(&cut))),
        "{cut:?} is about one piece in"
    );
    assert_eq!(
        second.start, cut,
        "the next piece starts where the first ends"
    );
    let gap = position(second.end.as_deref()) - position(Some(&second.start));
    assert!((0.0095..=0.0105).contains(&gap), "{gap}");
    assert_eq!(c.pending(target), 1, "the rest stays one idle region");

    // Unknown piece width: the whole region.
    let mut c = Coverage::whole(None);
    assert_eq!(
        c.take_piece(target, Sizing::UNKNOWN).expect("work").end,
        None
    );
    // Under 1.5 pieces: whole.
    let mut c = Coverage::whole(None);
    assert_eq!(
        c.take_piece(target, Sizing::answers_of_width(0.7 / PIECE))
            .expect("work")
            .end,
        None
    );
    // Known at an older root: whole (a change proof from that root brings it up to date).
    let mut c = Coverage::whole(Some(h(2)));
    assert_eq!(
        c.take_piece(target, Sizing::answers_of_width(piece / PIECE))
            .expect("work")
            .end,
        None
    );
}

/// Keys under a long common prefix: once an answer has measured their density, the rest of
/// their region is cut into pieces of about one answer each, placed past the prefix (eight
/// bytes read as one number would see no width at all), and spreads into halves too.
#[test]
fn regions_under_a_long_prefix_are_cut_by_their_own_density() {
    let target = h(1);
    let prefix = b"accounts/2026/".to_vec();
    let key = |tail: &[u8]| [prefix.as_slice(), tail].concat();
    let mut c = Coverage::whole(None);
    let whole = c.take(target).expect("work");
    // The first answer: 256 keys between `prefix ‖ 00 10` and `prefix ‖ 01 10`, stopping at
    // the key limit.
    let span = width(&key(&[0x00, 0x10]), Some(&key(&[0x01, 0x10])));
    let density = 255.0 / span;
    c.complete(
        &whole.start,
        &Until::Key(key(&[0x01, 0x10, 0])),
        target,
        Some(density),
    );
    let sizing = Sizing {
        answer_keys: 256.0,
        // Over the whole keyspace the sync has seen few keys: the global density is useless.
        density: 256.0,
    };
    let first = c.take_piece(target, sizing).expect("work");
    assert_eq!(first.start, key(&[0x01, 0x10, 0]));
    let end = first.end.clone().expect("cut");
    assert!(end.starts_with(&prefix), "{end:02x?}");
    let piece = width(&first.start, Some(&end));
    assert!(
        (0.90 * span..=0.96 * span).contains(&piece),
        "a piece of {piece:e}, an answer {span:e}"
    );
    let second = c.take_piece(target, sizing).expect("work");
    assert_eq!(second.start, end, "the next piece follows");
    // Spreading halves the rest while it holds two answers' worth, past the prefix too.
    let mut c = Coverage::whole(None);
    let whole = c.take(target).expect("work");
    c.complete(
        &whole.start,
        &Until::Key(key(&[0x01, 0x10, 0])),
        target,
        Some(density),
    );
    c.spread(target, 4, sizing);
    assert_partition(&c);
    assert_eq!(c.pending(target), 4, "split by the region's own density");
    // An empty answer resets the density past it: the next region is sized by the sync's.
    let mut c = Coverage::whole(None);
    let whole = c.take(target).expect("work");
    c.complete(
        &whole.start,
        &Until::Key(key(&[0x01, 0x10, 0])),
        target,
        Some(density),
    );
    let piece = c.take_piece(target, sizing).expect("work");
    c.complete(&piece.start, &Until::End, target, Some(0.0));
    let rest = c.take_piece(target, sizing).expect("work");
    assert_eq!(rest.end, None, "the whole rest in one request: {rest:02x?}");
}
