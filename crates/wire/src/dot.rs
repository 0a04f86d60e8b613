//! Dot-stuffing, the one way content is framed when it ends with a line
//! holding a single dot: SMTP DATA (RFC 5321 §4.5.2) and POP3 multi-line
//! responses (RFC 1939 §3) alike.

/// Writes `content` framed for the wire into `out`: every line ending
/// becomes CRLF (a bare CR or LF is never passed on, so no receiver can be
/// made to see another end of data than meant — the SMTP smuggling family,
/// and CVE-2026-33604's dot after a bare CR), a dot that starts a line is
/// doubled, and `.CRLF` ends it.
pub fn stuff(content: &[u8], out: &mut Vec<u8>) {
    out.reserve(content.len() + content.len() / 64 + 5);
    crate::crlf::for_each_line(content, |line| {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    });
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        stuff(content, &mut out);
        out
    }

    #[test]
    fn rfc5321_4_5_2_leading_dots_are_doubled() {
        assert_eq!(stuffed(b"a\r\n.b\r\n..c\r\n"), b"a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(stuffed(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(stuffed(b""), b".\r\n");
        assert_eq!(stuffed(b"no end"), b"no end\r\n.\r\n");
    }

    #[test]
    fn bare_line_endings_become_crlf_before_stuffing() {
        // The dot after a bare CR or LF starts a line for some receivers:
        // it is stuffed, and the line ending sent as CRLF.
        assert_eq!(stuffed(b"a\r.\r\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuffed(b"a\n.\nb\n"), b"a\r\n..\r\nb\r\n.\r\n");
        // Every smuggling shape: the dot ends up doubled on a CRLF line.
        for input in [
            &b"a\n.\nb"[..],
            b"a\n.\r\nb",
            b"a\r.\r\nb",
            b"a\r\n.\rb",
            b"a\r\n.\nb",
            b"a\r.\rb",
        ] {
            let out = stuffed(input);
            assert_eq!(out, b"a\r\n..\r\nb\r\n.\r\n", "{input:?}");
            assert!(crate::crlf::is_clean(&out));
        }
    }
}
