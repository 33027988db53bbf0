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
