use super::*;

fn k(bytes: &[u8], bits: usize) -> Key {
    Key::from_bits(bytes, bits).expect("valid key")
}

#[test]
fn from_bits_masks_padding_and_rejects_bad_length() {
    assert_eq!(k(&[0xff], 4).as_bytes(), &[0xf0]);
    assert!(Key::from_bits(&[0xff, 0x00], 4).is_none());
    assert!(Key::from_bits(&[], 1).is_none());
    assert_eq!(k(&[], 0), Key::empty());
}

#[test]
fn token_reads_each_width() {
    let key = Key::from_bytes(&[0b1011_0010, 0xa5]);
    assert_eq!(key.token(0, 1), 1);
    assert_eq!(key.token(1, 1), 0);
    assert_eq!(key.token(2, 2), 0b11);
    assert_eq!(key.token(4, 4), 0b0010);
    assert_eq!(key.token(8, 8), 0xa5);
    assert_eq!(key.token(12, 4), 0x5);
}

#[test]
fn take_skip_join_round_trip() {
    let key = Key::from_bytes(&[0x12, 0x34, 0x56]);
    for tb in [1usize, 2, 4, 8] {
        for split in (0..24 - tb).step_by(tb) {
            let head = key.take(split);
            let token = key.token(split, tb);
            let tail = key.skip(split + tb);
            assert_eq!(head.join(token, tb, &tail), key, "split {split} tb {tb}");
            assert_eq!(head.child(token, tb).bit_len(), split + tb);
        }
    }
    assert_eq!(key.skip(4), k(&[0x23, 0x45, 0x60], 20));
    assert_eq!(key.take(12), k(&[0x12, 0x30], 12));
}

#[test]
fn prefixes_are_bit_exact() {
    let key = Key::from_bytes(&[0b1010_0000]);
    assert!(key.has_prefix(&Key::empty()));
    assert!(key.has_prefix(&k(&[0b1010_0000], 3)));
    assert!(!key.has_prefix(&k(&[0b1110_0000], 3)));
    assert!(key.has_prefix(&key));
    assert!(!key.has_strict_prefix(&key));
    assert!(!k(&[0xa0], 4).has_prefix(&key));
    assert_eq!(key.common_prefix_bits(&Key::from_bytes(&[0b1011_0000])), 3);
    assert_eq!(key.common_prefix_bits(&k(&[0b1010_0000], 5)), 5);
    assert_eq!(
        Key::from_bytes(&[1, 2, 3]).common_prefix_bits(&Key::from_bytes(&[1, 2, 3, 4])),
        24
    );
}

#[test]
fn ordering_puts_prefixes_first() {
    let a = k(&[0x10], 4);
    let b = Key::from_bytes(&[0x10]);
    let c = Key::from_bytes(&[0x10, 0x00]);
    let d = Key::from_bytes(&[0x11]);
    assert!(Key::empty() < a && a < b && b < c && c < d);
}

#[test]
fn branch_factor_sizes() {
    let sizes: Vec<_> = BranchFactor::ALL
        .iter()
        .map(|b| (b.children(), b.token_bits()))
        .collect();
    assert_eq!(sizes, vec![(2, 1), (4, 2), (16, 4), (256, 8)]);
    assert_eq!(BranchFactor::from_children(16), Some(BranchFactor::Sixteen));
    assert_eq!(BranchFactor::from_children(8), None);
}

proptest::proptest! {
    #[test]
    fn skip_take_join_match_a_bit_model(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40), a in 0usize..330, b in 0usize..330) {
        let bits: Vec<u8> = bytes.iter().flat_map(|x| (0..8).rev().map(move |i| (x >> i) & 1)).collect();
        let key = Key::from_bytes(&bytes);
        let from_bits = |bits: &[u8]| {
            let mut out = vec![0u8; bits.len().div_ceil(8)];
            for (i, bit) in bits.iter().enumerate() {
                out[i / 8] |= bit << (7 - i % 8);
            }
            Key::from_bits(&out, bits.len()).expect("key")
        };
        let a = a.min(bits.len());
        let b = b.min(bits.len() - a);
        proptest::prop_assert_eq!(key.skip(a), from_bits(&bits[a..]));
        let mut written = [0xffu8; 48];
        let n = key.write_suffix(a, &mut written);
        proptest::prop_assert_eq!(n, bits.len() - a);
        let skipped = key.skip(a);
        proptest::prop_assert_eq!(&written[..n.div_ceil(8)], skipped.as_bytes());
        proptest::prop_assert_eq!(key.take(a), from_bits(&bits[..a]));
        let mid = key.skip(a).take(b);
        proptest::prop_assert_eq!(&mid, &from_bits(&bits[a..a + b]));
        // join(head, token, tail) with a 1-bit token rebuilds the key.
        if a < bits.len() {
            let head = key.take(a);
            let joined = head.join(key.token(a, 1), 1, &key.skip(a + 1));
            proptest::prop_assert_eq!(joined, key.clone());
        }
        proptest::prop_assert_eq!(key.common_prefix_bits(&from_bits(&bits[..a])), a);
    }
}
