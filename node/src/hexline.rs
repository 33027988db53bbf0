//! The line format of `import` and `export`: hex bytes, with `-` for the empty byte string.

/// Parses one hex field (`-` = empty).
pub(crate) fn parse_field(field: &str) -> Result<Vec<u8>, String> {
    if field == "-" {
        return Ok(Vec::new());
    }
    hex::decode(field).map_err(|e| format!("invalid hex {field:?}: {e}"))
}

/// Formats bytes as lowercase hex (`-` when empty).
pub(crate) fn format_field(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "-".to_string()
    } else {
        hex::encode(bytes)
    }
}

/// A parsed import line: a put, a delete, or nothing (blank).
pub(crate) type Op = Option<(Vec<u8>, Option<Vec<u8>>)>;

/// Parses one import line.
pub(crate) fn parse_line(line: &str) -> Result<Op, String> {
    let mut fields = line.split_whitespace();
    let Some(key) = fields.next() else {
        return Ok(None);
    };
    let key = parse_field(key)?;
    let value = fields.next().map(parse_field).transpose()?;
    if fields.next().is_some() {
        return Err("more than two fields".to_string());
    }
    Ok(Some((key, value)))
}

#[cfg(test)]
mod tests;
