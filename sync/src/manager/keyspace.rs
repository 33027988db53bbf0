//! Keyspace arithmetic: [`midpoint`] splits a work range in two, with upstream's bytes;
//! [`Frame`] measures and cuts ranges at full precision, however many leading bytes their keys
//! share.

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

/// 2^64, the scale of eight bytes read as a fraction.
const SCALE: f64 = 18_446_744_073_709_551_616.0;

/// Keys near a range, read as fractions of the keyspace at full precision.
///
/// A key is a base-256 fraction (`[0x80]` is 0.5; `None`, +∞, is 1). Eight bytes read as one
/// `u64` would tell apart only keys that differ in their first eight bytes: keys under a common
/// prefix (an application's table prefix, say) would all sit at one point, and a range of them
/// could be neither measured nor split. A frame reads the eight bytes *after* a prefix that the
/// keys it measures share (`rel`), and scales by that prefix's length (`scale` = 256^-len).
#[derive(Debug)]
pub(crate) struct Frame {
    /// The bytes every key of the frame starts with (keys shorter than it are zero-padded).
    prefix: Vec<u8>,
    /// The width of the whole frame as a fraction of the keyspace: 256^-`prefix.len()` (0 past
    /// about 127 bytes, where an f64 underflows; such frames cannot be measured).
    scale: f64,
}

impl Frame {
    /// The frame of `[start, end)`: under the bytes `start` and `end` share (zero-padded), or
    /// the whole keyspace when `end` is +∞.
    pub(crate) fn of(start: &[u8], end: Option<&[u8]>) -> Self {
        let shared = end.map_or(0, |end| {
            shared_len(start, end).unwrap_or(start.len().max(end.len()))
        });
        Self::under(start, shared)
    }

    /// The frame under `key`'s first `len` bytes (zero-padded).
    fn under(key: &[u8], len: usize) -> Self {
        Self {
            prefix: (0..len).map(|i| byte(key, i)).collect(),
            scale: scale_under(len),
        }
    }

    /// A frame around `key` fine enough to place a point `width` past it: under as many of its
    /// bytes as leave `width` between 2^-16 and 2^-8 of the frame (the whole keyspace for
    /// widths of 2^-16 and more).
    pub(crate) fn near(key: &[u8], width: f64) -> Self {
        let bytes = if width > 0.0 {
            ((-width.log2() / 8.0).floor() - 1.0).max(0.0)
        } else {
            0.0
        };
        // Float-to-integer `as` saturates; the frame's scale underflows long before this cap.
        Self::under(key, (bytes as usize).min(256))
    }

    /// The width of the frame as a fraction of the keyspace.
    pub(crate) fn scale(&self) -> f64 {
        self.scale
    }

    /// `key`'s position in the frame, in `[0, 1]`: the eight bytes after the prefix as a
    /// fraction (`None`, +∞, is 1; so is a key past the frame, and a key before it is 0).
    pub(crate) fn rel(&self, key: Option<&[u8]>) -> f64 {
        let Some(key) = key else {
            return 1.0;
        };
        let n = self.prefix.len();
        match (0..n)
            .map(|i| byte(key, i))
            .cmp(self.prefix.iter().copied())
        {
            std::cmp::Ordering::Less => 0.0,
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Equal => eight_bytes(key, n) as f64 / SCALE,
        }
    }

    /// The key at position `rel` (in 2^-64 units) of the frame: the prefix, then `rel`'s eight
    /// bytes without their trailing zeros.
    pub(crate) fn key_at(&self, rel: u64) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(&rel.to_be_bytes());
        while key.len() > self.prefix.len() && key.last() == Some(&0) {
            key.pop();
        }
        key
    }
}

/// The width of `[start, end)` as a fraction of the keyspace, exact to an f64's precision
/// however many leading bytes the bounds share (0 when they share over about 127, or differ
/// only in trailing zero bytes).
pub(crate) fn width(start: &[u8], end: Option<&[u8]>) -> f64 {
    // Frame::of's arithmetic, without building the frame's prefix.
    let Some(end) = end else {
        return 1.0 - eight_bytes(start, 0) as f64 / SCALE;
    };
    let Some(shared) = shared_len(start, end) else {
        return 0.0;
    };
    let (a, b) = (eight_bytes(start, shared), eight_bytes(end, shared));
    b.saturating_sub(a) as f64 / SCALE * scale_under(shared)
}

/// The number of leading bytes `a` and `b` share, zero-padded; `None` when they are equal so
/// padded.
fn shared_len(a: &[u8], b: &[u8]) -> Option<usize> {
    (0..a.len().max(b.len())).find(|&i| byte(a, i) != byte(b, i))
}

/// The width of the keys under a prefix of `len` bytes: 256^-`len` (0 once an f64 underflows).
fn scale_under(len: usize) -> f64 {
    2f64.powi(i32::try_from(len).map_or(i32::MIN, |len| len.saturating_mul(-8)))
}

/// Bytes `from..from + 8` of `key` (zero-padded) as one big-endian number.
fn eight_bytes(key: &[u8], from: usize) -> u64 {
    u64::from_be_bytes(std::array::from_fn(|i| byte(key, from.saturating_add(i))))
}

/// Byte `i` of `key`, zero past its end.
fn byte(key: &[u8], i: usize) -> u8 {
    key.get(i).copied().unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests;
