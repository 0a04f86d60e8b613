//! IMAP strings (RFC 9051 §4.3): quoted, literal, literal8, NIL.

/// Strings longer than this are sent as literals.
pub const MAX_QUOTED: usize = 1024;

/// Writes `s` as a quoted string, or as a literal when it cannot be quoted
/// (CR, LF, NUL, 8-bit without UTF-8 enabled, or long).
pub fn string(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    let quotable = s.len() <= MAX_QUOTED
        && s.iter().all(|&b| utf8 || b < 0x80)
        && (!utf8 || std::str::from_utf8(s).is_ok());
    if quotable && quote_into(out, s) {
        return;
    }
    literal(out, s);
}

/// `s` as a quoted string (`"` and `\` escaped), or `None` when it holds
/// CR, LF or NUL, which no quoted string can carry (RFC 9051 `quoted`).
/// What a client puts in its command lines.
pub fn quoted(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len() + 2);
    quote_into(&mut out, s.as_bytes()).then(|| String::from_utf8(out).expect("from a str"))
}

/// Appends `s` quoted; false (and nothing appended) when it cannot be.
fn quote_into(out: &mut Vec<u8>, s: &[u8]) -> bool {
    if s.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return false;
    }
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    true
}

/// A literal (`{n}`). A literal may not carry NUL (RFC 9051 §4.3,
/// `CHAR8`): NUL octets are sent as 0x80, as Dovecot does.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    let start = out.len();
    out.extend_from_slice(s);
    if memchr::memchr(0, s).is_some() {
        for b in &mut out[start..] {
            if *b == 0 {
                *b = 0x80;
            }
        }
    }
}

/// A `literal8` (`~{n}`, RFC 3516): any octets, NUL included.
pub fn literal8(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("~{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

pub fn nstring(out: &mut Vec<u8>, s: Option<&str>, utf8: bool) {
    match s {
        Some(s) => string(out, s.as_bytes(), utf8),
        None => out.extend_from_slice(b"NIL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::rendered as s;

    #[test]
    fn strings_are_quoted_or_literal() {
        assert_eq!(s(|o| string(o, b"a \"b\" \\c", false)), r#""a \"b\" \\c""#);
        assert_eq!(s(|o| string(o, b"a\r\nb", false)), "{4}\r\na\r\nb");
        assert_eq!(s(|o| string(o, "ä".as_bytes(), true)), "\"ä\"");
        assert_eq!(s(|o| string(o, "ä".as_bytes(), false)), "{2}\r\nä");
        assert_eq!(s(|o| nstring(o, None, false)), "NIL");
        assert_eq!(quoted("a \"b\"").as_deref(), Some(r#""a \"b\"""#));
        assert_eq!(quoted("a\r\nb"), None);
        assert_eq!(s(|o| literal8(o, b"a\0b")), "~{3}\r\na\0b");
        // RFC 9051 §4.3: no NUL in a literal; sent as 0x80, as Dovecot does.
        let mut v = Vec::new();
        literal(&mut v, b"a\0b");
        assert_eq!(v, b"{3}\r\na\x80b");
    }
}
