//! Upstream `codec_test.go` vectors (reference §2.6 c) and canonical-decoding checks.
use super::*;

fn id(start: u8) -> Hash {
    let mut out = [0u8; 32];
    for (j, b) in out.iter_mut().enumerate() {
        *b = start.wrapping_add(j as u8);
    }
    Hash(out)
}

fn child(key: &[u8], id: Hash, has_value: bool) -> Child {
    Child {
        compressed: Key::from_bytes(key),
        id,
        has_value,
        height: 0,
    }
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[test]
fn upstream_node_vectors_round_trip() {
    let id_a = id(0);
    let id_b = id(0x20);
    type Case = (Option<&'static [u8]>, Vec<(u8, Child)>, String);
    let cases: Vec<Case> = vec![
        (None, vec![], "0000".into()),
        (Some(b"value"), vec![], "010576616c756500".into()),
        (
            Some(b"value"),
            vec![(0, child(&[0], id_a, true))],
            format!("010576616c7565010008 00{}01", hex(&id_a.0)),
        ),
        (
            Some(b"value"),
            vec![
                (0, child(&[0], id_a, true)),
                (1, child(&[1, 2, 3], id_b, false)),
            ],
            format!(
                "010576616c7565020008 00{}01 0118010203{}00",
                hex(&id_a.0),
                hex(&id_b.0)
            ),
        ),
    ];
    for (value, children, expected) in cases {
        let children: Children = children.into_iter().collect();
        let expected = expected.replace(' ', "");
        let encoded = encode_node(value, &children);
        assert_eq!(hex(&encoded), expected);
        let (v, c) = decode_node(&encoded).expect("decodes");
        assert_eq!(v.as_deref(), value);
        assert_eq!(c, children);
    }
}

#[test]
fn sixteen_children_round_trip() {
    let children: Children = (0u8..16)
        .map(|i| (i, child(&[i], id(i), i % 2 == 0)))
        .collect();
    let encoded = encode_node(Some(b"value"), &children);
    assert_eq!(encoded[7], 0x10, "child count byte");
    assert_eq!(decode_node(&encoded).expect("decodes").1, children);
}

#[test]
fn upstream_key_vectors() {
    let cases: Vec<(Vec<u8>, String)> = vec![
        (vec![], "00".into()),
        (vec![0], "0800".into()),
        (vec![0, 1], "100001".into()),
        (vec![0, 1, 2, 3], "2000010203".into()),
        ((0..8).collect(), "400001020304050607".into()),
        (vec![0; 32], format!("8002{}", "00".repeat(32))),
        (vec![0; 64], format!("8004{}", "00".repeat(64))),
        (vec![0; 1024], format!("8040{}", "00".repeat(1024))),
    ];
    for (bytes, expected) in cases {
        let key = Key::from_bytes(&bytes);
        let mut out = Vec::new();
        encode_key(&mut out, &key);
        assert_eq!(hex(&out), expected);
        assert_eq!(decode_key(&out), Ok(key));
    }
}

#[test]
fn key_length_overflow_is_eof_not_allocation() {
    // uvarint(i64::MAX), as TestCodecDecodeKeyLengthOverflowRegression.
    let mut out = Vec::new();
    put_uvarint(&mut out, i64::MAX as u64);
    assert_eq!(decode_key(&out), Err(CodecError::UnexpectedEof));
    let mut out = Vec::new();
    put_uvarint(&mut out, u64::MAX);
    assert_eq!(decode_key(&out), Err(CodecError::UnexpectedEof));
}

#[test]
fn non_canonical_inputs_are_rejected() {
    assert_eq!(decode_key(&[0x80, 0x00]), Err(CodecError::LeadingZeroes));
    assert_eq!(
        decode_key(&[0x04, 0xf8]),
        Err(CodecError::NonZeroKeyPadding)
    );
    assert_eq!(
        decode_key(&[0x08, 0x01, 0x00]),
        Err(CodecError::ExtraSpace(1))
    );
    assert_eq!(decode_node(&[0x02, 0x00]), Err(CodecError::InvalidBool(2)));
    assert_eq!(decode_node(&[0x00]), Err(CodecError::UnexpectedEof));
    assert_eq!(
        decode_node(&[0x00, 0x80, 0x02]),
        Err(CodecError::UnexpectedEof)
    );
    assert_eq!(
        decode_node(&[0x00, 0x81, 0x02]),
        Err(CodecError::TooManyChildren(257))
    );
    assert_eq!(
        decode_node(&[0x00, 0x00, 0x00]),
        Err(CodecError::ExtraSpace(1))
    );
    // Two children with the same index.
    let c = child(&[], id(0), false);
    let mut bytes = encode_node(None, &[(1, c.clone()), (2, c)].into_iter().collect());
    let second = 2 + 1 + 1 + 32 + 1;
    bytes[second] = 1;
    assert_eq!(decode_node(&bytes), Err(CodecError::ChildIndex(1)));
    // Ten-byte varint overflow.
    assert_eq!(decode_key(&[0xff; 10]), Err(CodecError::VarintOverflow));
}

proptest::proptest! {
    #[test]
    fn decode_never_panics_and_is_canonical(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        if let Ok((value, children)) = decode_node(&bytes) {
            proptest::prop_assert_eq!(encode_node(value.as_deref(), &children), bytes);
        }
    }
}
