//! Body sections (RFC 9051 §6.4.5 `BODY[section]<partial>`) cut out of
//! the stored octets with the offsets parsed at delivery: no re-parsing.

use std::borrow::Cow;

use postamt_wire::meta::{BodyPart, MessageMeta};

use crate::command::{Section, SectionText};

/// Finds the part a section's numbers name. A non-multipart body is part 1;
/// numbers below a message/rfc822 part refer to its encapsulated body.
fn find_part<'m>(root: &'m BodyPart, numbers: &[u32]) -> Option<&'m BodyPart> {
    let mut cur = root;
    for (i, &n) in numbers.iter().enumerate() {
        if i > 0 {
            match &cur.message {
                Some(inner) => cur = &inner.1,
                None if cur.media_type == "multipart" => {}
                // `p.1` of a leaf part inside a multipart is the part itself
                // (Dovecot's reading; RFC 9051 §6.4.5 gives only messages a
                // part 1); not so for the top-level body or message parts.
                None if n == 1 && !std::ptr::eq(cur, root) && cur.media_type != "message" => {
                    continue;
                }
                None => return None,
            }
        }
        cur = if cur.media_type == "multipart" {
            cur.parts.get(n as usize - 1)?
        } else if n == 1 {
            cur
        } else {
            return None;
        };
    }
    Some(cur)
}

fn slice(content: &[u8], start: u64, end: u64) -> &[u8] {
    let len = content.len() as u64;
    let (s, e) = (start.min(len), end.min(len));
    &content[s as usize..e.max(s) as usize]
}

/// The header fields of `header` named (or, with `not`, not named) in
/// `fields`, each with its continuation lines, then the empty line.
pub fn header_fields(header: &[u8], fields: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line
                .iter()
                .position(|&b| b == b':')
                .map(|p| line[..p].trim_ascii_end())
                .unwrap_or(b"");
            let named = fields
                .iter()
                .any(|f| f.as_bytes().eq_ignore_ascii_case(name));
            keep = !name.is_empty() && named != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    // RFC 9051 §6.4.5: the fields are followed by the empty line (also
    // for a message without one, as Dovecot answers).
    out.extend_from_slice(b"\r\n");
    out
}

/// The octets of `section`, or `None` when the message has no such part
/// (the response is then an empty string, as Dovecot and Cyrus answer).
pub fn section<'c>(
    content: &'c [u8],
    meta: &MessageMeta,
    section: &Section,
) -> Option<Cow<'c, [u8]>> {
    if section.part.is_empty() {
        let h = meta.header_len;
        return Some(match &section.text {
            None => Cow::Borrowed(content),
            Some(SectionText::Header) => Cow::Borrowed(slice(content, 0, h)),
            Some(SectionText::Text) => Cow::Borrowed(slice(content, h, u64::MAX)),
            Some(SectionText::HeaderFields { not, fields }) => {
                Cow::Owned(header_fields(slice(content, 0, h), fields, *not))
            }
            Some(SectionText::Mime) => return None,
        });
    }
    let part = find_part(&meta.body, &section.part)?;
    Some(match &section.text {
        None => Cow::Borrowed(slice(content, part.body_start, part.body_end)),
        Some(SectionText::Mime) => {
            Cow::Borrowed(slice(content, part.header_start, part.body_start))
        }
        Some(t) => {
            // HEADER/TEXT after part numbers: only for message/rfc822 parts.
            let inner = &part.message.as_ref()?.1;
            let (hs, bs, be) = (inner.header_start, inner.body_start, part.body_end);
            match t {
                SectionText::Header => Cow::Borrowed(slice(content, hs, bs)),
                SectionText::Text => Cow::Borrowed(slice(content, bs, be)),
                SectionText::HeaderFields { not, fields } => {
                    Cow::Owned(header_fields(slice(content, hs, bs), fields, *not))
                }
                SectionText::Mime => unreachable!("handled above"),
            }
        }
    })
}

/// Undoes base64 (lenient: characters outside the alphabet, as line breaks,
/// are skipped; decoding stops at the first `=`).
pub fn decode_base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Undoes quoted-printable (RFC 2045 §6.7): `=XX` and soft line breaks;
/// a malformed `=` is kept as it is. Rule 3: white space at the end of an
/// encoded line was added in transport and is deleted (also between a
/// soft line break's `=` and the line end).
pub fn decode_qp(data: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    let mut out = Vec::with_capacity(data.len());
    // Where the current output line starts: trailing blanks are dropped
    // back to there only (never into decoded `=20` of an earlier line).
    let mut protected = 0;
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') || data[i] == b'\n' {
            while out.len() > protected && out.last().is_some_and(blank) {
                out.pop();
            }
            let n = if data[i] == b'\r' { 2 } else { 1 };
            out.extend_from_slice(&data[i..i + n]);
            i += n;
            protected = out.len();
            continue;
        }
        if data[i] == b'=' {
            let after = data[i + 1..].iter().take_while(|c| blank(c)).count();
            let rest = &data[i + 1 + after..];
            if rest.starts_with(b"\r\n") {
                i += 3 + after;
                protected = out.len();
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2 + after;
                protected = out.len();
                continue;
            }
            if rest.is_empty() {
                // A soft break at the very end of the part.
                break;
            }
            if let (Some(h), Some(l)) = (
                data.get(i + 1).and_then(|&c| hex(c)),
                data.get(i + 2).and_then(|&c| hex(c)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                // A decoded blank is data, not transport padding.
                protected = out.len();
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    while out.len() > protected && out.last().is_some_and(blank) {
        out.pop();
    }
    out
}

/// `BINARY[part]` (RFC 3516): the part's body with its
/// content-transfer-encoding undone. `Ok(None)`: no such part; `Err`: an
/// encoding we cannot undo (`NO [UNKNOWN-CTE]`).
pub fn binary<'c>(
    content: &'c [u8],
    meta: &MessageMeta,
    part: &[u32],
) -> Result<Option<Cow<'c, [u8]>>, String> {
    if part.is_empty() {
        return Ok(Some(Cow::Borrowed(content)));
    }
    let Some(p) = find_part(&meta.body, part) else {
        return Ok(None);
    };
    let body = slice(content, p.body_start, p.body_end);
    if p.media_type == "multipart" || p.message.is_some() {
        return Ok(Some(Cow::Borrowed(body)));
    }
    match p.encoding.trim().to_ascii_lowercase().as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(Some(Cow::Borrowed(body))),
        "base64" => Ok(Some(Cow::Owned(decode_base64(body)))),
        "quoted-printable" => Ok(Some(Cow::Owned(decode_qp(body)))),
        other => Err(other.to_string()),
    }
}

/// Applies `<start.len>`: the octets from `start`, at most `len`.
pub fn partial(data: &[u8], start: u32, len: u32) -> &[u8] {
    let s = (start as usize).min(data.len());
    let e = s.saturating_add(len as usize).min(data.len());
    &data[s..e]
}

/// The section as echoed in the response (`BODY[1.HEADER.FIELDS (To)]`).
pub fn section_name(s: &Section) -> String {
    let mut out: Vec<String> = s.part.iter().map(u32::to_string).collect();
    match &s.text {
        None => {}
        Some(SectionText::Header) => out.push("HEADER".into()),
        Some(SectionText::Text) => out.push("TEXT".into()),
        Some(SectionText::Mime) => out.push("MIME".into()),
        Some(SectionText::HeaderFields { not, fields }) => {
            let quoted: Vec<String> = fields
                .iter()
                .map(|f| {
                    if !f.is_empty()
                        && f.bytes()
                            .all(|b| b.is_ascii_graphic() && !b"()\"\\{%*]".contains(&b))
                    {
                        f.clone()
                    } else {
                        format!("\"{}\"", f.replace('\\', "\\\\").replace('"', "\\\""))
                    }
                })
                .collect();
            out.push(format!(
                "HEADER.FIELDS{} ({})",
                if *not { ".NOT" } else { "" },
                quoted.join(" ")
            ));
        }
    }
    out.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &[u8] = b"From: a@x\r\nSubject: outer\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@y\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>inner</p>\r\n--i--\r\n\r\n--o--\r\n";

    fn sec(part: &[u32], text: Option<SectionText>) -> Section {
        Section {
            part: part.to_vec(),
            text,
        }
    }

    fn get(part: &[u32], text: Option<SectionText>) -> Option<String> {
        let meta = MessageMeta::parse(NESTED);
        section(NESTED, &meta, &sec(part, text)).map(|c| String::from_utf8(c.into_owned()).unwrap())
    }

    /// RFC 2045 §6.7: `=XX`, soft line breaks (also with padding after
    /// the `=`), trailing white space of a line deleted, `=20` kept, a
    /// malformed `=` left as it is.
    #[test]
    fn rfc2045_6_7_quoted_printable() {
        let d = |s: &str| String::from_utf8(decode_qp(s.as_bytes())).unwrap();
        assert_eq!(d("Gr=C3=BC=C3=9Fe"), "Grüße");
        assert_eq!(d("a=3Db"), "a=b");
        assert_eq!(d("soft=\r\nbreak"), "softbreak");
        assert_eq!(d("soft=  \r\nbreak"), "softbreak");
        assert_eq!(d("padded   \r\nline\t\r\n"), "padded\r\nline\r\n");
        assert_eq!(d("kept=20\r\n"), "kept \r\n");
        assert_eq!(d("a =20 \r\n"), "a  \r\n");
        assert_eq!(d("end  "), "end");
        assert_eq!(d("bad=ZZ and = alone"), "bad=ZZ and = alone");
        assert_eq!(d("lf only  \nx"), "lf only\nx");
        assert_eq!(d("last="), "last");
    }

    #[test]
    fn sections_of_a_nested_message() {
        assert_eq!(get(&[1], None).unwrap(), "first");
        assert_eq!(
            get(&[1], Some(SectionText::Mime)).unwrap(),
            "Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(
            get(&[2], Some(SectionText::Header)).unwrap(),
            "From: b@y\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n"
        );
        assert_eq!(get(&[2, 1], None).unwrap(), "inner text");
        assert_eq!(get(&[2, 2], None).unwrap(), "<p>inner</p>");
        assert!(get(&[2, 3], None).is_none());
        assert!(get(&[3], None).is_none());
        assert!(
            get(&[1], Some(SectionText::Header)).is_none(),
            "not a message/rfc822 part"
        );
        assert!(
            get(&[2], Some(SectionText::Text))
                .unwrap()
                .starts_with("--i\r\n")
        );
        assert_eq!(
            get(
                &[],
                Some(SectionText::HeaderFields {
                    not: false,
                    fields: vec!["subject".into()]
                })
            )
            .unwrap(),
            "Subject: outer\r\n\r\n"
        );
        assert_eq!(
            get(
                &[2],
                Some(SectionText::HeaderFields {
                    not: true,
                    fields: vec!["Content-Type".into(), "From".into()]
                })
            )
            .unwrap(),
            "Subject: inner\r\n\r\n"
        );
    }

    #[test]
    fn single_part_message_is_part_one() {
        let m = b"Subject: x\r\n\r\nbody\r\n";
        let meta = MessageMeta::parse(m);
        assert_eq!(&*section(m, &meta, &sec(&[1], None)).unwrap(), b"body\r\n");
        assert!(section(m, &meta, &sec(&[2], None)).is_none());
        assert!(section(m, &meta, &sec(&[1, 1], None)).is_none());
    }

    #[test]
    fn header_fields_keep_continuations() {
        let h = b"To: a,\r\n b\r\nX-Other: 1\r\nto: c\r\n\r\n";
        assert_eq!(
            header_fields(h, &["TO".into()], false),
            b"To: a,\r\n b\r\nto: c\r\n\r\n"
        );
    }

    #[test]
    fn binary_decodes_the_transfer_encoding() {
        let m = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\nAw==\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =\r\nsoft=3D\r\n--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--\r\n";
        let meta = MessageMeta::parse(m);
        assert_eq!(&*binary(m, &meta, &[1]).unwrap().unwrap(), &[0u8, 1, 2, 3]);
        assert_eq!(
            &*binary(m, &meta, &[2]).unwrap().unwrap(),
            "café soft=".as_bytes()
        );
        assert_eq!(binary(m, &meta, &[3]).unwrap_err(), "x-uuencode");
        assert!(binary(m, &meta, &[4]).unwrap().is_none());
        assert_eq!(&*binary(m, &meta, &[]).unwrap().unwrap(), &m[..]);
        assert_eq!(decode_qp(b"a=\nb=ZZ"), b"ab=ZZ");
        assert_eq!(decode_base64(b"aGVsbG8gd29ybGQ="), b"hello world");
    }

    #[test]
    fn partial_ranges() {
        assert_eq!(partial(b"0123456789", 2, 3), b"234");
        assert_eq!(partial(b"0123", 2, 100), b"23");
        assert_eq!(partial(b"0123", 10, 1), b"");
    }

    #[test]
    fn names() {
        assert_eq!(
            section_name(&sec(&[1, 2], Some(SectionText::Mime))),
            "1.2.MIME"
        );
        assert_eq!(
            section_name(&sec(
                &[],
                Some(SectionText::HeaderFields {
                    not: false,
                    fields: vec!["Date".into(), "From".into()]
                })
            )),
            "HEADER.FIELDS (Date From)"
        );
        assert_eq!(section_name(&sec(&[], None)), "");
    }
}
