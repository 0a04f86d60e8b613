//! BODY and BODYSTRUCTURE (RFC 9051 §7.5.2) from the metadata parsed once
//! at delivery, and INTERNALDATE's `date-time`.

use super::envelope::envelope;
use super::quote::{nstring, string};
use crate::meta::BodyPart;

/// RFC 2231 §7 `ext-octet` encoding of a value.
fn percent_encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn params(out: &mut Vec<u8>, params: &[(String, String)], utf8: bool) {
    // mail-parser reports RFC 2231 languages as extra `name-language`
    // parameters: not header parameters, so not sent.
    let shown: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !k.ends_with("-language"))
        .map(|(k, v)| {
            if !utf8 && !v.is_ascii() {
                // The continuations are joined and decoded at delivery; for
                // a client without UTF-8 the value goes back into RFC 2231
                // form (`name*` = `utf-8''…`), which mail clients decode.
                (format!("{k}*"), format!("utf-8''{}", percent_encode(v)))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    if shown.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in shown.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.as_bytes(), utf8);
        out.push(b' ');
        string(out, v.as_bytes(), utf8);
    }
    out.push(b')');
}

fn encoding_name(e: &str) -> String {
    let u = e.trim().to_ascii_uppercase();
    if u.is_empty() { "7BIT".into() } else { u }
}

/// BODY (`extended` = false) or BODYSTRUCTURE (RFC 9051 §7.5.2).
pub fn body_structure(out: &mut Vec<u8>, p: &BodyPart, extended: bool, utf8: bool) {
    out.push(b'(');
    if p.media_type == "multipart" {
        if p.parts.is_empty() {
            // A multipart without parts (no boundary) holds one empty text
            // part: RFC 9051 `body-type-mpart` needs at least one.
            out.extend_from_slice(
                b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 0 0",
            );
            if extended {
                out.extend_from_slice(b" NIL NIL NIL NIL");
            }
            out.push(b')');
        } else {
            for c in &p.parts {
                body_structure(out, c, extended, utf8);
            }
        }
        out.push(b' ');
        string(out, p.media_subtype.as_bytes(), utf8);
        if extended {
            out.push(b' ');
            params(out, &p.params, utf8);
            extension_tail(out, p, utf8);
        }
        out.push(b')');
        return;
    }
    string(out, p.media_type.as_bytes(), utf8);
    out.push(b' ');
    string(out, p.media_subtype.as_bytes(), utf8);
    out.push(b' ');
    if p.media_type == "text" && !p.params.iter().any(|(k, _)| k == "charset") {
        // RFC 2045 §5.2: text without a charset is US-ASCII.
        let mut with = p.params.clone();
        with.push(("charset".to_string(), "us-ascii".to_string()));
        params(out, &with, utf8);
    } else {
        params(out, &p.params, utf8);
    }
    out.push(b' ');
    nstring(out, p.id.as_deref(), utf8);
    out.push(b' ');
    nstring(out, p.description.as_deref(), utf8);
    out.push(b' ');
    string(out, encoding_name(&p.encoding).as_bytes(), utf8);
    out.extend_from_slice(format!(" {}", p.body_end.saturating_sub(p.body_start)).as_bytes());
    let is_message =
        p.media_type == "message" && (p.media_subtype == "rfc822" || p.media_subtype == "global");
    if let Some(inner) = &p.message {
        out.push(b' ');
        envelope(out, &inner.0, utf8);
        out.push(b' ');
        body_structure(out, &inner.1, extended, utf8);
        out.extend_from_slice(format!(" {}", p.lines).as_bytes());
    } else if is_message {
        // RFC 9051 `body-type-msg` always has an envelope, a body and lines;
        // an encoded encapsulated message is not parsed, so they are empty.
        out.extend_from_slice(
            b" (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 0 0",
        );
        if extended {
            out.extend_from_slice(b" NIL NIL NIL NIL");
        }
        out.push(b')');
        out.extend_from_slice(format!(" {}", p.lines).as_bytes());
    } else if p.media_type == "text" {
        out.extend_from_slice(format!(" {}", p.lines).as_bytes());
    }
    if extended {
        out.push(b' ');
        nstring(out, p.md5.as_deref(), utf8);
        extension_tail(out, p, utf8);
    }
    out.push(b')');
}

/// body-fld-dsp SP body-fld-lang SP body-fld-loc.
fn extension_tail(out: &mut Vec<u8>, p: &BodyPart, utf8: bool) {
    out.push(b' ');
    match &p.disposition {
        Some((kind, ps)) => {
            out.push(b'(');
            string(out, kind.as_bytes(), utf8);
            out.push(b' ');
            params(out, ps, utf8);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match &p.language {
        Some(l) if !l.is_empty() => {
            out.push(b'(');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, x.as_bytes(), utf8);
            }
            out.push(b')');
        }
        _ => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring(out, p.location.as_deref(), utf8);
}

/// `dd-Mon-yyyy hh:mm:ss +0000` (RFC 9051 `date-time`) for INTERNALDATE.
pub fn date_time(unix: i64) -> String {
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    let (y, m, d) = crate::time::civil_from_days(days);
    format!(
        "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
        d,
        crate::time::MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::rendered as s;
    use crate::meta::MessageMeta;

    #[test]
    fn envelope_of_rfc9051_style_message() {
        let m = b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\nFrom: Terry Gray <gray@cac.washington.edu>\r\nSubject: IMAP4rev2 WG mtg summary and minutes\r\nTo: imap@cac.washington.edu\r\ncc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\nMessage-Id: <B27397-0100000@cac.washington.edu>\r\n\r\nbody\r\n";
        let meta = MessageMeta::parse(m);
        let got = s(|o| envelope(o, &meta.envelope, false));
        assert_eq!(
            got,
            "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev2 WG mtg summary and minutes\" ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((NIL NIL \"imap\" \"cac.washington.edu\")) ((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL \"<B27397-0100000@cac.washington.edu>\")"
        );
        let got = s(|o| body_structure(o, &meta.body, false, false));
        assert_eq!(
            got,
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 6 1)"
        );
    }

    #[test]
    fn multipart_bodystructure() {
        let m = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--b\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n\r\nAAAA\r\n--b--\r\n";
        let meta = MessageMeta::parse(m);
        assert_eq!(
            s(|o| body_structure(o, &meta.body, true, false)),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 5 0 NIL NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL \"BASE64\" 4 NIL (\"attachment\" (\"filename\" \"a.pdf\")) NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)"
        );
        assert_eq!(
            s(|o| body_structure(o, &meta.body, false, false)),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 5 0)(\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL \"BASE64\" 4) \"mixed\")"
        );
    }

    #[test]
    fn internal_date() {
        assert_eq!(date_time(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(date_time(784073554), "05-Nov-1994 22:12:34 +0000");
        assert_eq!(date_time(951782400), "29-Feb-2000 00:00:00 +0000");
    }
}
