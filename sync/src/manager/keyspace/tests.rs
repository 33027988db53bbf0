use arbor_merkledb::test_utils::{SeedReporter, SeededRng};

use super::*;

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
pub(crate) fn edgy_byte(rng: &mut SeededRng) -> u8 {
    const EDGES: [u8; 6] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
    if rng.below(2) == 0 {
        EDGES[rng.below(EDGES.len() as u64) as usize]
    } else {
        rng.next_u64() as u8
    }
}

pub(crate) fn edgy_bytes(rng: &mut SeededRng, max_len: u64) -> Vec<u8> {
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

/// Widths are exact under a common prefix of any length short of about 127 bytes, where eight
/// bytes read as one number would put every key at one point.
#[test]
fn widths_are_exact_under_long_common_prefixes() {
    assert_eq!(width(&[], None), 1.0);
    assert_eq!(width(&[0x80], None), 0.5);
    assert_eq!(width(&[0x40], Some(&[0x80])), 0.25);
    assert_eq!(width(&[5], Some(&[5])), 0.0);
    assert_eq!(width(&[5], Some(&[5, 0, 0])), 0.0, "equal once zero-padded");
    for shared in [0usize, 7, 8, 20, 100] {
        let mut a = vec![0x61; shared];
        let mut b = a.clone();
        a.push(0x40);
        b.push(0x80);
        let want = 0.25 * 256f64.powi(-i32::try_from(shared).expect("small"));
        let got = width(&a, Some(&b));
        assert!(
            (got - want).abs() <= want * 1e-12,
            "{shared}: {got} vs {want}"
        );
        // Widths add up across a point between.
        let mut mid = a.clone();
        mid.push(0x12);
        let sum = width(&a, Some(&mid)) + width(&mid, Some(&b));
        assert!(
            (sum - want).abs() <= want * 1e-9,
            "{shared}: {sum} vs {want}"
        );
    }
}

/// A frame near a key places a point a given width past it, at full precision: the key at the
/// frame position measures that width back from the start.
#[test]
fn frames_place_points_at_any_depth() {
    let mut start = b"accounts/2026/".to_vec();
    start.extend_from_slice(&[0x12, 0x34, 0x56]);
    for w in [1e-3, 1e-20, 1e-35, 1e-100] {
        let frame = Frame::near(&start, w);
        let at = frame.rel(Some(&start)) + w / frame.scale();
        assert!(at < 1.0, "{w}: the point lies in the frame");
        let key = frame.key_at((at * 18_446_744_073_709_551_616.0) as u64);
        assert!(key > start, "{w}");
        let got = width(&start, Some(&key));
        assert!((got - w).abs() <= w * 1e-6, "{w}: {got}");
    }
    // Keys before and after the frame's prefix sit at its ends.
    let frame = Frame::of(&[1, 2, 3], Some(&[1, 2, 9]));
    assert_eq!(frame.rel(Some(&[1, 1])), 0.0);
    assert_eq!(frame.rel(Some(&[1, 3])), 1.0);
    assert_eq!(frame.rel(None), 1.0);
}
