//! Entry points for the fuzz targets (feature `fuzzing`) into code that is otherwise private.

/// Decodes `data` as a stored node record; if it decodes, re-encoding must give `data` back
/// (the decoder accepts canonical encodings only). Panics otherwise.
pub fn check_node_codec(data: &[u8]) {
    if let Ok((value, children)) = crate::codec::decode_node(data) {
        assert_eq!(
            crate::codec::encode_node(value.as_deref(), &children),
            data,
            "a non-canonical node record decoded"
        );
    }
    // The record the nodes space holds: the same encoding, then one height per child.
    if let Ok(((value, children), heights)) = crate::codec::decode_node_prefix(data) {
        if crate::layout::decode_node_record(data).is_ok() {
            let mut encoded = crate::codec::encode_node(value.as_deref(), &children);
            encoded.extend_from_slice(heights);
            assert_eq!(encoded, data, "a non-canonical node record decoded");
        }
    }
}
