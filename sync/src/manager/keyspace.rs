//! Keyspace arithmetic: [`midpoint`] splits a work range in two, with upstream's bytes.

/// Byte-string midpoint of `[start, end]` per upstream `midPoint` (None start = all 0x00, None end
/// = all 0xFF).
///
/// The bytes are upstream's: a per-byte average with a half-carry of 256 to the next byte, one
/// extra byte when `start` ends in 0xFF and `end` is None or ends in 0xFF, and a trailing 127 for a
/// leftover half. `(None, None)` gives `[127]`.
///
/// Returns `None` when the range should not be split: when both bounds are empty and `end` is
/// `Some`, and when the point equals `start` or `end` (upstream's `enqueueWork` then inserts the
/// range unsplit). For a valid range (`start < end`, None start = the empty key, None end = +∞)
/// upstream's point always lies in `[start, end]`, so a returned point is strictly inside; it
/// equals `end` only when rounding lands there, e.g. when nothing lies in between at all
/// (`end = start ‖ 0x00`). For `start >= end` the bytes are upstream's, meaningless but harmless
/// (one upstream vector has `start > end`). Never panics.
pub(crate) fn midpoint(start: Option<&[u8]>, end: Option<&[u8]>) -> Option<Vec<u8>> {
    let s = start.unwrap_or(&[]);
    let e = end.unwrap_or(&[]);
    let mut len = s.len().max(e.len());
    if len == 0 {
        // Both empty: only a None end leaves room.
        return end.is_none().then(|| vec![127]);
    }
    // `midpoint([.., 255], ..255)` needs one more byte than the inputs, or it would equal start.
    if s.last() == Some(&255) && (e.is_empty() || e.last() == Some(&255)) {
        len += 1;
    }
    let mut mid = Vec::with_capacity(len + 1);
    // 256 when the previous byte's sum was odd: half a unit carried into this byte.
    let mut half = 0u16;
    for i in 0..len {
        let sv = u16::from(s.get(i).copied().unwrap_or(0));
        let ev = match e.get(i) {
            Some(&b) => u16::from(b),
            None if end.is_none() => 255,
            None => 0,
        };
        // At most 255 + 255 + 256: no overflow.
        let total = sv + ev + half;
        half = if total % 2 == 1 { 256 } else { 0 };
        let mut avg = total / 2;
        if avg >= 256 {
            avg -= 256;
            carry_into(&mut mid);
        }
        // Invariant: avg < 256.
        mid.push(avg as u8);
    }
    if half > 0 {
        mid.push(127);
    }
    let at_bound = mid.as_slice() == s || end == Some(mid.as_slice());
    (!at_bound).then_some(mid)
}

/// Adds one to the big-endian number `digits`, as upstream does: trailing 0xFF bytes (except the
/// first) roll over to 0, and the first byte wraps (only reachable for `start > end`).
fn carry_into(digits: &mut [u8]) {
    let Some(mut i) = digits.len().checked_sub(1) else {
        return;
    };
    while i > 0 && digits[i] == 255 {
        digits[i] = 0;
        i -= 1;
    }
    digits[i] = digits[i].wrapping_add(1);
}

#[cfg(test)]
pub(crate) mod tests;
