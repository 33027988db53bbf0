//! Upstream `Test_SHA256_HashNode` vectors (reference §2.6 a), BF16.
use super::*;

fn leaf(key: &[u8], value: &[u8]) -> Hash {
    hash_node(
        &Key::from_bytes(key),
        Some(&ValueDigest::of(value)),
        std::iter::empty(),
    )
}

#[test]
fn upstream_hash_node_vectors() {
    let empty = hash_node(&Key::empty(), None, std::iter::empty());
    assert_eq!(
        empty.to_hex(),
        "709e80c88487a2411e1ee4dfb9f22a861492d20c4765150c0c794abd70f8147c"
    );

    let has_value = leaf(b"", b"value1");
    assert_eq!(
        has_value.to_hex(),
        "fe318e84f0535833fb3bf7a3714a52642fbd0d17279bfc22b1baec0e3e7b0194"
    );

    let has_key = hash_node(
        &Key::from_bytes(&[0, 1, 2, 3, 4, 5, 6, 7]),
        None,
        std::iter::empty(),
    );
    assert_eq!(
        has_key.to_hex(),
        "fc6587cf678733b4adb458b03b52be5d6068210749a6b18b5e11587e16e776bb"
    );

    let child_ff = leaf(&[0xff], b"value1");
    assert_eq!(
        child_ff.to_hex(),
        "d1db75d9daa6f46cf4c90adac5a5ccb570fdd2f9cf8f309c746021692fc03ba6"
    );
    let one_child = hash_node(&Key::empty(), None, [(0xf, &child_ff)].into_iter());
    assert_eq!(
        one_child.to_hex(),
        "47e3823b19d4b133d4eb9eacf19976d39923c434c6db6f95131635bcf8a002d8"
    );

    let child_ed = leaf(&[0xed], b"value2");
    let two = hash_node(
        &Key::empty(),
        None,
        [(0xe, &child_ed), (0xf, &child_ff)].into_iter(),
    );
    assert_eq!(
        two.to_hex(),
        "4783fbc68d966ca56c8ff812ba83e4be5e361743b89b78df6e6ad38335730c1c"
    );

    let kids: Vec<(u8, Hash)> = (0u8..16)
        .map(|i| (i, leaf(&[i << 4], b"some value")))
        .collect();
    let sixteen = hash_node(&Key::empty(), None, kids.iter().map(|(i, h)| (*i, h)));
    assert_eq!(
        sixteen.to_hex(),
        "0a52eda52af8012286851a9107e3ead3a0ab2e1abf36a28f3f63b09e043be8c1"
    );
}

#[test]
fn value_digest_rule_hashes_32_bytes_and_more() {
    assert_eq!(ValueDigest::of(&[7; 31]).as_bytes(), &[7; 31]);
    assert_eq!(
        ValueDigest::of(&[7; 32]).as_bytes(),
        sha256(&[7; 32]).as_bytes()
    );
    assert_eq!(ValueDigest::of(b"").as_bytes(), b"");
    assert!(ValueDigest::of(&[1; 40]).matches(&[1; 40]));
    assert!(ValueDigest::from_digest_bytes(&[0; 33]).is_none());
}

#[test]
fn uvarint_matches_go() {
    let enc = |v| {
        let mut out = Vec::new();
        put_uvarint(&mut out, v);
        out
    };
    assert_eq!(enc(0), vec![0]);
    assert_eq!(enc(127), vec![127]);
    assert_eq!(enc(256), vec![0x80, 0x02]);
    assert_eq!(enc(8192), vec![0x80, 0x40]);
}

#[test]
fn hex_round_trip() {
    let h = sha256(b"x");
    assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
    assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()), Some(h));
    assert!(Hash::from_hex("zz").is_none());
}

/// Values at the one-block limit and beyond hash like any other digest.
#[test]
fn value_digests_at_the_block_limit() {
    for len in [31usize, 32, 54, 55, 56, 64, 100] {
        let value = vec![0xa5u8; len];
        let expected = if len < 32 {
            value.clone()
        } else {
            sha256(&value).0.to_vec()
        };
        assert_eq!(ValueDigest::of(&value).as_bytes(), expected, "length {len}");
    }
}

/// A full 16-ary node with a value and a hash-sized key (the largest pre-image that stays on
/// the stack, 10 blocks once padded) hashes like the hasher over its pre-image written out.
#[test]
fn a_full_node_hashes_like_the_hasher_over_its_preimage() {
    let ids: Vec<(u8, Hash)> = (0..16u8).map(|i| (i, Hash([i; 32]))).collect();
    let key = Key::from_bytes(&[0xab; 32]);
    let digest = ValueDigest::of(&[7u8; 32]);
    let mut pre = vec![16u8];
    for (i, id) in &ids {
        pre.push(*i);
        pre.extend_from_slice(&id.0);
    }
    pre.extend_from_slice(&[1, 32]);
    pre.extend_from_slice(digest.as_bytes());
    pre.extend_from_slice(&[0x80, 0x02]);
    pre.extend_from_slice(key.as_bytes());
    let got = hash_node(&key, Some(&digest), ids.iter().map(|(i, id)| (*i, id)));
    assert_eq!(got, sha256(&pre));
}
