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
mod tests {
    use super::*;

    #[test]
    fn fields_and_lines() {
        assert_eq!(parse_line("- 01"), Ok(Some((vec![], Some(vec![1])))));
        assert_eq!(parse_line("ab -"), Ok(Some((vec![0xab], Some(vec![])))));
        assert_eq!(parse_line("-"), Ok(Some((vec![], None))));
        assert_eq!(
            parse_line("AB cd"),
            Ok(Some((vec![0xab], Some(vec![0xcd]))))
        );
        assert_eq!(parse_line("   "), Ok(None));
        assert!(parse_line("abc").is_err());
        assert!(parse_line("ab cd ef").is_err());
        assert!(parse_line("zz").is_err());
        assert_eq!(format_field(&[]), "-");
        assert_eq!(format_field(&[0xab]), "ab");
    }
}
