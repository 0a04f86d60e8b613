//! Line endings. Mail on the wire ends every line with CRLF (RFC 5321
//! §2.3.8, RFC 5322 §2.1); a bare CR or bare LF is what SMTP smuggling is
//! made of. Stored content is CRLF throughout, so that sizes count exactly
//! what POP3 RETR and IMAP FETCH send (RFC 1939 §11, RFC 9051 §2.3.4).

use std::borrow::Cow;

/// True when every CR is followed by LF and every LF follows a CR.
pub fn is_clean(input: &[u8]) -> bool {
    if input.first() == Some(&b'\n') || input.last() == Some(&b'\r') {
        return false;
    }
    // Clean means: at every position, "the byte before is CR" and "this byte
    // is LF" are both true or both false. Checked over whole blocks without
    // branches (the compiler vectorizes it), instead of stopping at every
    // line end: messages have a line end every 80 bytes or so.
    const BLOCK: usize = 4096;
    let mut at = 1;
    while at < input.len() {
        let end = (at + BLOCK).min(input.len());
        let (prev, cur) = (&input[at - 1..end - 1], &input[at..end]);
        let mismatch = prev.iter().zip(cur).fold(0u8, |acc, (p, c)| {
            acc | (u8::from(*p == b'\r') ^ u8::from(*c == b'\n'))
        });
        if mismatch != 0 {
            return false;
        }
        at = end;
    }
    true
}

/// Every line ending made CRLF (bare LF and bare CR alike) and a non-empty
/// text ended with CRLF. Clean input (the usual case, since SMTP refuses
/// bare CR/LF) is borrowed, not copied.
pub fn normalize(input: &[u8]) -> Cow<'_, [u8]> {
    if is_clean(input) && (input.is_empty() || input.ends_with(b"\r\n")) {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 32 + 2);
    for_each_line(input, |line| {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    });
    Cow::Owned(out)
}

/// [`normalize`] for owned content: clean input is returned as it is (at
/// most a final CRLF is added), without a copy.
pub fn normalize_owned(mut input: Vec<u8>) -> Vec<u8> {
    if is_clean(&input) {
        if !input.is_empty() && !input.ends_with(b"\r\n") {
            input.extend_from_slice(b"\r\n");
        }
        return input;
    }
    normalize(&input).into_owned()
}

/// Calls `f` with each line of `input` without its ending; CRLF, bare CR
/// and bare LF each end one line, and an unterminated last line counts.
pub fn for_each_line(input: &[u8], mut f: impl FnMut(&[u8])) {
    let mut rest = input;
    while !rest.is_empty() {
        match memchr::memchr2(b'\r', b'\n', rest) {
            Some(i) => {
                f(&rest[..i]);
                let ending = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + ending..];
            }
            None => {
                f(rest);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_check() {
        for (input, clean) in [
            (&b""[..], true),
            (b"a", true),
            (b"\r\n", true),
            (b"a\r\nb\r\n", true),
            (b"\n", false),
            (b"\r", false),
            (b"a\nb", false),
            (b"a\rb", false),
            (b"a\r\r\n", false),
            (b"a\r\n\n", false),
            (b"\r\n\r", false),
        ] {
            assert_eq!(is_clean(input), clean, "{input:?}");
        }
        // Across the block boundary of the vectorized check.
        for at in [4094usize, 4095, 4096, 4097, 8191, 8192] {
            let mut v = vec![b'x'; 9000];
            v[at] = b'\n';
            assert!(!is_clean(&v), "bare LF at {at}");
            v[at - 1] = b'\r';
            assert!(is_clean(&v), "CRLF at {at}");
            v[at] = b'y';
            assert!(!is_clean(&v), "bare CR at {}", at - 1);
        }
    }

    #[test]
    fn normalisation() {
        assert_eq!(&*normalize(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(&*normalize(b""), b"");
        assert_eq!(&*normalize(b"\r\n\r\n"), b"\r\n\r\n");
        assert_eq!(&*normalize(b"a\r\n\r\rb"), b"a\r\n\r\n\r\nb\r\n");
        assert!(matches!(normalize(b"a\r\nb\r\n"), Cow::Borrowed(_)));
        assert_eq!(normalize_owned(b"x".to_vec()), b"x\r\n");
        assert_eq!(normalize_owned(b"x\ny".to_vec()), b"x\r\ny\r\n");
        assert_eq!(normalize_owned(Vec::new()), b"");
    }

    #[test]
    fn normalized_is_always_clean_and_ends_in_crlf() {
        // Every combination of a few bytes that matter.
        let alphabet = [b'a', b'\r', b'\n', b'.'];
        for n in 0..=6u32 {
            for code in 0..4usize.pow(n) {
                let input: Vec<u8> = (0..n).map(|i| alphabet[code / 4usize.pow(i) % 4]).collect();
                let out = normalize(&input);
                assert!(is_clean(&out), "{input:?} -> {out:?}");
                assert!(out.is_empty() == input.is_empty(), "{input:?}");
                assert!(out.is_empty() || out.ends_with(b"\r\n"), "{input:?}");
                assert_eq!(normalize(&out), out, "idempotent for {input:?}");
            }
        }
    }
}
