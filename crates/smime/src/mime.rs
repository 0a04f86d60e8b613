//! The little MIME S/MIME needs: split a message into the outer header
//! fields and the MIME entity, read a Content-Type's type and parameters,
//! find the parts of a multipart/signed exactly as they were signed.

use base64::Engine;
use postamt_wire::meta::{field_is, header_fields, header_len};

/// The message with CRLF line ends (RFC 8551 §3.1.1: canonical form).
pub fn canonical(message: &[u8]) -> Vec<u8> {
    postamt_wire::crlf::normalize_owned(message.to_vec())
}

/// A header field's unfolded value.
pub fn field(message: &[u8], name: &str) -> Option<String> {
    let end = header_len(message);
    header_fields(message)
        .into_iter()
        .filter(|r| r.start < end)
        .find(|r| field_is(message, r, name))
        .map(|r| {
            let raw = String::from_utf8_lossy(&message[r.clone()]);
            let value = raw.split_once(':').map_or("", |(_, v)| v);
            value.split_whitespace().collect::<Vec<_>>().join(" ")
        })
}

/// (outer fields, entity): the fields that describe the content
/// (`Content-*`) go with the body into the entity; the others (From, To,
/// Subject, Date, Message-ID, MIME-Version …) stay outside. A message
/// without Content-Type gets `text/plain; charset=us-ascii` (RFC 2045
/// §5.2's default).
pub fn split(message: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let end = header_len(message);
    let mut outer = Vec::new();
    let mut entity = Vec::new();
    let mut has_type = false;
    for r in header_fields(message) {
        if r.start >= end {
            continue;
        }
        let field = &message[r.clone()];
        let name = field.split(|&b| b == b':').next().unwrap_or(b"");
        let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
        if name.starts_with("content-") {
            has_type |= name == "content-type";
            entity.extend_from_slice(field);
        } else if name != "mime-version" {
            outer.extend_from_slice(field);
        }
    }
    if !has_type {
        entity.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n");
    }
    entity.extend_from_slice(b"\r\n");
    let body_start = body_start(message);
    entity.extend_from_slice(&message[body_start..]);
    (outer, entity)
}

/// Where the body begins (after the empty line).
pub fn body_start(message: &[u8]) -> usize {
    let h = header_len(message);
    if message[h..].starts_with(b"\r\n") {
        h + 2
    } else if message[h..].starts_with(b"\n") {
        h + 1
    } else {
        h
    }
}

/// A Content-Type: the lower-case `type/subtype` and a parameter getter.
pub struct ContentType {
    pub mime: String,
    params: Vec<(String, String)>,
}

impl ContentType {
    pub fn parse(value: &str) -> ContentType {
        let mut parts = value.split(';');
        let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                )
            })
            .collect();
        ContentType { mime, params }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The two parts of a multipart/signed body (RFC 1847 §2.1): the signed
/// entity exactly as signed (the CRLF before the next delimiter belongs
/// to the delimiter, RFC 2046 §5.1.1) and the signature part.
pub fn signed_parts<'a>(body: &'a [u8], boundary: &str) -> Option<(&'a [u8], &'a [u8])> {
    match multipart_parts(body, boundary)?[..] {
        [entity, signature, ..] => Some((entity, signature)),
        _ => None,
    }
}

/// The body parts of a multipart body (RFC 2046 §5.1.1), each as it is
/// between its delimiter lines (the CRLF before a delimiter belongs to
/// the delimiter); the preamble and the epilogue are left out. `None`
/// without a delimiter line.
pub fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<&'a [u8]>> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let after = |p: usize| {
        body[p..]
            .iter()
            .position(|&x| x == b'\n')
            .map_or(body.len(), |e| p + e + 1)
    };
    let before = |p: usize| {
        if p >= 2 && &body[p - 2..p] == b"\r\n" {
            p - 2
        } else if p >= 1 && body[p - 1] == b'\n' {
            p - 1
        } else {
            p
        }
    };
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut i = 0;
    while i + d.len() <= body.len() {
        let at_line_start = i == 0 || body[i - 1] == b'\n';
        if !(at_line_start && &body[i..i + d.len()] == d) {
            i += 1;
            continue;
        }
        if let Some(start) = open {
            parts.push(&body[start..before(i).max(start)]);
        }
        if body[i + d.len()..].starts_with(b"--") {
            return Some(parts);
        }
        open = Some(after(i));
        i = after(i);
    }
    // No close delimiter: the last part runs to the end.
    if let Some(start) = open {
        parts.push(&body[start..]);
    }
    (!parts.is_empty()).then_some(parts)
}

/// The base64 body of a part (its header fields skipped), decoded.
pub fn base64_body(part: &[u8]) -> Option<Vec<u8>> {
    let start = body_start(part);
    let text: Vec<u8> = part[start..]
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Base64 in lines of 76 characters, CRLF-terminated (RFC 2045 §6.8).
pub fn base64_lines(data: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(b64.len() + b64.len() / 76 * 2 + 2);
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str("\r\n");
    }
    out
}

/// Whether an entity's body is 7-bit clean with lines of at most 998
/// octets (RFC 5322 §2.1.1): safe through any relay.
pub fn seven_bit(entity: &[u8]) -> bool {
    let body = &entity[body_start(entity)..];
    body.is_ascii() && body.split(|&b| b == b'\n').all(|l| l.len() <= 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1847_2_1_the_signed_part_is_taken_byte_exact() {
        let body = b"preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\nQUJD\r\n--b--\r\n";
        let (first, second) = signed_parts(body, "b").unwrap();
        assert_eq!(first, b"Content-Type: text/plain\r\n\r\nhi\r\n");
        assert_eq!(base64_body(second).unwrap(), b"ABC");
        assert!(signed_parts(b"--b\r\nx\r\n", "b").is_none());
    }

    #[test]
    fn content_fields_go_into_the_entity() {
        let m = b"From: a@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n";
        let (outer, entity) = split(m);
        assert_eq!(outer, b"From: a@b.example\r\nSubject: x\r\n");
        assert_eq!(
            entity,
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n"
        );
        let (_, plain) = split(b"From: a@b.example\r\n\r\nhi\r\n");
        assert!(plain.starts_with(b"Content-Type: text/plain; charset=us-ascii\r\n\r\nhi"));
        let ct = ContentType::parse(
            "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"x y\"",
        );
        assert_eq!(ct.mime, "multipart/signed");
        assert_eq!(ct.param("boundary"), Some("x y"));
    }
}
