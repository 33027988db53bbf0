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
