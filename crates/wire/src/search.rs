//! What SEARCH `BODY` and `TEXT` look into (RFC 9051 §6.4.4: "the body of
//! the message" and "the header or body"), as Dovecot searches without a
//! full-text plugin, which IMAP clients are used to:
//!
//! - the body: the decoded text (charset and transfer encoding undone) of
//!   every text part — the main text, text attachments, HTML as it is —
//!   and of every encapsulated `message/rfc822` (a bounce's returned
//!   message, a forwarded mail), recursively; binary parts are not text
//!   and are not searched;
//! - the header: every header field of the message, of every MIME part and
//!   of every encapsulated message, decoded (RFC 2047 encoded words), as
//!   `Name: value` lines; `Content-Type` and `Content-Disposition` both as
//!   written and with their RFC 2231 parameters decoded (Dovecot searches
//!   only the former: a search for `café` finds `filename*=utf-8''caf%C3%A9`
//!   here, not there).
//!
//! Sans-IO: bytes in, text out. Kept separate from the session so that an
//! index can store exactly what a scan would look at.

use mail_parser::{Addr, Address, HeaderValue, Message, MessageParser, PartType};

/// How deep encapsulated messages are followed.
const MAX_DEPTH: usize = 10;

/// The searchable text of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchText {
    /// Decoded header fields of the message and of all its parts.
    pub headers: String,
    /// Decoded text of all text parts.
    pub body: String,
}

/// The header fields SEARCH has keys of its own for (FROM, TO, CC, BCC,
/// SUBJECT), rendered as [`header_values`] renders them and lower-cased
/// (matching is case-insensitive): computed once at delivery and kept
/// beside the message, so such a search reads no message. `None`: the
/// message has no such field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchHeaders {
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cc: Option<String>,
    pub bcc: Option<String>,
}

impl SearchHeaders {
    /// The fields of the message `content` (its header block is enough).
    pub fn of(content: &[u8]) -> SearchHeaders {
        let end = crate::meta::header_len(content).min(content.len());
        let Some(msg) = MessageParser::default().parse_headers(&content[..end]) else {
            return SearchHeaders::default();
        };
        let value = |name: &str| rendered(&msg, name).map(|v| v.to_lowercase());
        SearchHeaders {
            subject: value("Subject"),
            from: value("From"),
            to: value("To"),
            cc: value("Cc"),
            bcc: value("Bcc"),
        }
    }

    /// The kept value of header `name`, if it is one of the five.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        let v = match name.to_ascii_lowercase().as_str() {
            "subject" => &self.subject,
            "from" => &self.from,
            "to" => &self.to,
            "cc" => &self.cc,
            "bcc" => &self.bcc,
            _ => return None,
        };
        Some(v.as_deref())
    }
}

/// The searchable text of `content`; empty for what cannot be parsed.
pub fn extract(content: &[u8]) -> SearchText {
    let mut out = SearchText::default();
    if !crate::meta::safe_to_parse(content) {
        return out;
    }
    if let Some(msg) = MessageParser::default().parse(content) {
        walk(&msg, &mut out, 0);
    }
    out
}

/// The values of header field `name` in the header block `header`, as
/// SEARCH FROM/TO/CC/BCC/SUBJECT/HEADER match them (as Dovecot does):
/// decoded (RFC 2047), addresses as `Name <mailbox@host>`, several fields
/// one per line; `None` when the message has no such field.
pub fn header_values(header: &[u8], name: &str) -> Option<String> {
    let msg = MessageParser::default().parse_headers(header)?;
    rendered(&msg, name)
}

/// Every field `name` of `msg` rendered, one per line; `None` when there
/// is none.
fn rendered(msg: &Message<'_>, name: &str) -> Option<String> {
    let mut out = String::new();
    let mut found = false;
    for h in msg.headers() {
        if h.name().eq_ignore_ascii_case(name) {
            found = true;
            render(&h.value, msg, h.offset_start, h.offset_end, &mut out);
            out.push('\n');
        }
    }
    found.then_some(out)
}

fn walk(msg: &Message<'_>, out: &mut SearchText, depth: usize) {
    for part in &msg.parts {
        for h in &part.headers {
            out.headers.push_str(h.name.as_str());
            out.headers.push_str(": ");
            render(
                &h.value,
                msg,
                h.offset_start,
                h.offset_end,
                &mut out.headers,
            );
            out.headers.push('\n');
        }
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.body.push_str(t);
                out.body.push('\n');
            }
            PartType::Message(inner) if depth < MAX_DEPTH => walk(inner, out, depth + 1),
            _ => {}
        }
    }
}

/// A header value as text: decoded where the parser decoded it, else as
/// written.
fn render(value: &HeaderValue<'_>, msg: &Message<'_>, start: u32, end: u32, out: &mut String) {
    match value {
        HeaderValue::Text(t) => out.push_str(t),
        HeaderValue::TextList(l) => out.push_str(&l.join(", ")),
        HeaderValue::Address(Address::List(list)) => render_addrs(list, out),
        HeaderValue::Address(Address::Group(groups)) => {
            // `Name: member, member;` (RFC 5322 §3.4), as written.
            for (n, g) in groups.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                match &g.name {
                    Some(name) => {
                        out.push_str(name);
                        out.push_str(": ");
                        render_addrs(&g.addresses, out);
                        out.push(';');
                    }
                    None => render_addrs(&g.addresses, out),
                }
            }
        }
        HeaderValue::ContentType(ct) => {
            // As written (what Dovecot searches: RFC 2231 parameters
            // encoded), then decoded (so `café.txt` is found too).
            let raw = msg
                .raw_message
                .get(start as usize..end as usize)
                .unwrap_or_default();
            out.push_str(String::from_utf8_lossy(raw).trim());
            out.push(' ');
            out.push_str(ct.ctype());
            if let Some(s) = ct.subtype() {
                out.push('/');
                out.push_str(s);
            }
            for a in ct.attributes().unwrap_or_default() {
                out.push_str("; ");
                out.push_str(&a.name);
                out.push('=');
                out.push_str(&a.value);
            }
        }
        _ => {
            let raw = msg
                .raw_message
                .get(start as usize..end as usize)
                .unwrap_or_default();
            out.push_str(String::from_utf8_lossy(raw).trim());
        }
    }
}

/// Addresses as `Name <mailbox@host>` (or `<mailbox@host>`), comma
/// separated.
fn render_addrs(list: &[Addr<'_>], out: &mut String) {
    for (n, x) in list.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        if let Some(name) = x.name() {
            out.push_str(name);
            out.push(' ');
        }
        if let Some(addr) = x.address() {
            out.push('<');
            out.push_str(addr);
            out.push('>');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNCE: &[u8] = b"From: MAILER-DAEMON@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; nobody@example.net\r\n--r\r\nContent-Type: message/rfc822\r\n\r\nFrom: alice@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from the trip\r\n\r\nThe photos are attached.\r\n--r--\r\n";

    /// RFC 9051 §6.4.4: a bounce's returned message is in BODY (its text)
    /// and TEXT (its header too, decoded).
    #[test]
    fn rfc9051_6_4_4_encapsulated_messages_are_searched() {
        let t = extract(BOUNCE);
        assert!(t.body.contains("The mail could not be delivered."), "{t:?}");
        assert!(t.body.contains("The photos are attached."), "{t:?}");
        assert!(t.headers.contains("Subject: Grüße from the trip"), "{t:?}");
        assert!(t.headers.contains("Subject: Undelivered Mail"), "{t:?}");
        assert!(t.headers.contains("report-type=delivery-status"), "{t:?}");
        assert!(!t.headers.contains("=?utf-8?"), "decoded: {t:?}");
    }

    /// Text attachments and HTML are searched, decoded; a binary
    /// attachment is not; RFC 2231 parameters are decoded into the
    /// header text.
    #[test]
    fn text_attachments_yes_binary_no() {
        let m = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nmain\r\n--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Disposition: attachment; filename*=utf-8''caf%C3%A9.txt\r\n\r\nattached caf=E9\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html part</p>\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nc2VjcmV0IGJpbmFyeQ==\r\n--b--\r\n";
        let t = extract(m);
        assert!(t.body.contains("attached café"), "{t:?}");
        assert!(t.body.contains("<p>html part</p>"), "{t:?}");
        assert!(!t.body.contains("secret binary"), "{t:?}");
        assert!(t.headers.contains("café.txt"), "{t:?}");
    }

    /// The kept header values equal what a search of the message would
    /// render, lower-cased; absent fields are `None`.
    #[test]
    fn search_headers_are_the_rendered_values() {
        let m = b"From: =?utf-8?q?J=C3=B6rg?= <J@Example.org>\r\nTo: Team: a@x.test, b@x.test;\r\nSubject: Hello World\r\n\r\nbody\r\n";
        let h = SearchHeaders::of(m);
        assert_eq!(h.from.as_deref(), Some("jörg <j@example.org>\n"));
        assert_eq!(h.to.as_deref(), Some("team: <a@x.test>, <b@x.test>;\n"));
        assert_eq!(h.subject.as_deref(), Some("hello world\n"));
        assert_eq!(h.cc, None);
        assert_eq!(h.get("SUBJECT"), Some(Some("hello world\n")));
        assert_eq!(h.get("X-Other"), None);
        assert_eq!(
            header_values(&m[..], "From").map(|v| v.to_lowercase()),
            h.from,
            "one rendering"
        );
    }

    #[test]
    fn nesting_is_bounded_and_garbage_is_empty() {
        let mut m = b"Subject: leaf\r\n\r\ninnermost\r\n".to_vec();
        for _ in 0..30 {
            let mut outer = b"Content-Type: message/rfc822\r\n\r\n".to_vec();
            outer.extend_from_slice(&m);
            m = outer;
        }
        let t = extract(&m);
        assert!(!t.body.contains("innermost"), "deeper than {MAX_DEPTH}");
        assert_eq!(extract(b""), SearchText::default());
    }
}
