//! What FETCH ENVELOPE, BODYSTRUCTURE and header searches need, parsed once
//! at delivery with mail-parser and stored beside the content.
//!
//! Offsets are relative to the shared content (without any per-target
//! prefix); readers add the prefix length.

use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};

/// Raw (still encoded, unfolded) values of the header fields the IMAP
/// ENVELOPE structure is built from (RFC 9051 §7.5.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub date: Option<String>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub sender: Option<String>,
    pub reply_to: Option<String>,
    pub to: Option<String>,
    pub cc: Option<String>,
    pub bcc: Option<String>,
    pub in_reply_to: Option<String>,
    pub message_id: Option<String>,
}

/// One MIME part, as BODYSTRUCTURE describes it (RFC 9051 §7.5.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyPart {
    /// Lower-case type and subtype; `text/plain` when absent (RFC 2045 §5.2).
    pub media_type: String,
    pub media_subtype: String,
    /// Content-Type parameters, RFC 2231 continuations already joined.
    pub params: Vec<(String, String)>,
    pub id: Option<String>,
    pub description: Option<String>,
    /// Content-Transfer-Encoding as written, `7BIT` when absent.
    pub encoding: String,
    pub disposition: Option<(String, Vec<(String, String)>)>,
    pub language: Option<Vec<String>>,
    pub location: Option<String>,
    pub md5: Option<String>,
    /// Byte offsets into the content: header start, body start, body end.
    pub header_start: u64,
    pub body_start: u64,
    pub body_end: u64,
    /// Number of lines of the body (text/* and message/rfc822).
    pub lines: u64,
    /// Sub-parts of a multipart.
    pub parts: Vec<BodyPart>,
    /// The envelope and body of an encapsulated message/rfc822 or global.
    pub message: Option<Box<(Envelope, BodyPart)>>,
}

/// All that is parsed once at delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Length of the top-level header block including the blank line.
    pub header_len: u64,
    pub envelope: Envelope,
    pub body: BodyPart,
}

impl MessageMeta {
    /// Parses `content` (CRLF line endings). Never fails: a message that is
    /// not MIME at all is described as one text/plain part, as IMAP servers
    /// do.
    pub fn parse(content: &[u8]) -> MessageMeta {
        let header_len = header_len(content) as u64;
        // A single-part message is described from its header alone: its body
        // is one leaf from the end of the header to the end of the content.
        // This spares mail-parser decoding a body nobody asked for yet (UTF-8
        // checks of text, base64 of attachments). Multiparts and
        // message/rfc822 need the full parse for their inner structure.
        if let Some(message) = MessageParser::default().parse_headers(content)
            && !message.parts.is_empty()
            && (is_leaf(&message) || !safe_to_parse(content))
        {
            let mut body = part(&message, 0, content, 0, 0);
            body.body_start = header_len.min(content.len() as u64);
            body.body_end = content.len() as u64;
            body.header_start = 0;
            body.lines = if body.media_type == "text" {
                count_lines(&content[body.body_start as usize..])
            } else {
                0
            };
            return MessageMeta {
                header_len,
                envelope: envelope(&message, 0),
                body,
            };
        }
        // mail-parser parses encapsulated messages recursively: a message
        // that may nest message/rfc822 thousands deep is described by its
        // header alone (its octets are all kept).
        let parsed = if safe_to_parse(content) {
            MessageParser::default().parse(content)
        } else {
            None
        };
        match parsed {
            Some(message) if !message.parts.is_empty() => MessageMeta {
                header_len,
                envelope: envelope(&message, 0),
                body: part(&message, 0, content, 0, MAX_DEPTH),
            },
            _ => MessageMeta {
                header_len,
                envelope: Envelope::default(),
                body: BodyPart {
                    media_type: "text".into(),
                    media_subtype: "plain".into(),
                    params: vec![("charset".into(), "us-ascii".into())],
                    encoding: "7BIT".into(),
                    header_start: 0,
                    body_start: header_len,
                    body_end: content.len() as u64,
                    lines: count_lines(&content[header_len as usize..]),
                    ..BodyPart::default()
                },
            },
        }
    }
}

/// True when the top-level part has no inner structure (not multipart/*,
/// not message/rfc822 or message/global).
fn is_leaf(message: &Message<'_>) -> bool {
    match message.parts[0].content_type() {
        None => true,
        Some(ct) => {
            let sub = ct.c_subtype.as_deref().unwrap_or("");
            !(ct.c_type.eq_ignore_ascii_case("multipart")
                || ct.c_type.eq_ignore_ascii_case("message")
                    && (sub.eq_ignore_ascii_case("rfc822") || sub.eq_ignore_ascii_case("global")))
        }
    }
}

/// Most `message/…` content types a message may mention before it is no
/// longer parsed in full (each can be one level of recursion in
/// mail-parser; 40,000 levels overflowed the stack).
pub const MAX_ENCAPSULATIONS: usize = 100;

/// Whether a full mail-parser parse of `content` is bounded: it mentions
/// `message/` (as in message/rfc822, message/global) at most
/// [`MAX_ENCAPSULATIONS`] times. Cheap: a memchr-driven scan.
pub fn safe_to_parse(content: &[u8]) -> bool {
    let finder = memchr::memmem::Finder::new(b"essage/");
    let mut n = 0;
    for at in finder.find_iter(content) {
        if at > 0 && content[at - 1].eq_ignore_ascii_case(&b'm') {
            n += 1;
            if n > MAX_ENCAPSULATIONS {
                return false;
            }
        }
    }
    true
}

/// How deep multiparts and encapsulated messages are described (a message
/// nested 1,000 deep is valid MIME, and an attack on every recursion).
pub const MAX_DEPTH: u8 = 20;

/// The length of the header block: up to and including the first empty line,
/// or the whole input when there is none.
pub fn header_len(content: &[u8]) -> usize {
    if content.starts_with(b"\r\n") {
        return 2;
    }
    content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| content.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(content.len())
}

/// The byte ranges of the header fields, each with its folded
/// continuation lines and line ending (RFC 5322 §2.2.3), in order; the
/// empty line that ends the header block is not a field.
pub fn header_fields(content: &[u8]) -> Vec<std::ops::Range<usize>> {
    let end = header_len(content);
    let mut fields = Vec::new();
    let mut at = 0;
    while at < end {
        let mut next = at;
        loop {
            next += content[next..end]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(end - next, |i| i + 1);
            if next >= end || !matches!(content[next], b' ' | b'\t') {
                break;
            }
        }
        if !matches!(&content[at..next], b"\r\n" | b"\n") {
            fields.push(at..next);
        }
        at = next;
    }
    fields
}

/// Whether the field at `range` of `content` is named `name` (ASCII,
/// case-insensitive; `name` without the colon).
pub fn field_is(content: &[u8], range: &std::ops::Range<usize>, name: &str) -> bool {
    let field = &content[range.clone()];
    field.len() > name.len()
        && field[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        && field[name.len()] == b':'
}

/// Lines of a body as IMAP reports them: its line breaks (an unterminated
/// last line is not counted, as Dovecot counts).
fn count_lines(body: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', body).count() as u64
}

fn raw_value(message: &Message<'_>, part: usize, name: HeaderName<'_>) -> Option<String> {
    let p = message.parts.get(part)?;
    let h = p.headers.iter().find(|h| h.name == name)?;
    let raw = message
        .raw_message
        .get(h.offset_start as usize..h.offset_end as usize)?;
    Some(unfold(raw))
}

/// RFC 5322 §2.2.3: unfolding removes the CRLF before folding whitespace.
fn unfold(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c != '\r' && c != '\n' {
            out.push(c);
        }
    }
    out.trim().to_string()
}

fn envelope(message: &Message<'_>, part: usize) -> Envelope {
    let v = |name| raw_value(message, part, name);
    Envelope {
        date: v(HeaderName::Date),
        subject: v(HeaderName::Subject),
        from: v(HeaderName::From),
        sender: v(HeaderName::Sender),
        reply_to: v(HeaderName::ReplyTo),
        to: v(HeaderName::To),
        cc: v(HeaderName::Cc),
        bcc: v(HeaderName::Bcc),
        in_reply_to: v(HeaderName::InReplyTo),
        message_id: v(HeaderName::MessageId),
    }
}

/// Describes part `id` of `message`; `base` is added to mail-parser's
/// offsets (non-zero for an encapsulated message parsed separately).
fn part(message: &Message<'_>, id: usize, content: &[u8], base: u64, depth: u8) -> BodyPart {
    let Some(p) = message.parts.get(id) else {
        return BodyPart::default();
    };
    let (media_type, media_subtype, params) = match p.content_type() {
        Some(ct) => (
            ct.c_type.to_ascii_lowercase(),
            ct.c_subtype
                .as_deref()
                .map(str::to_ascii_lowercase)
                .unwrap_or_default(),
            ct.attributes
                .iter()
                .flatten()
                .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
                .collect(),
        ),
        // RFC 2046 §5.1.5: in a multipart/digest a part without a type is
        // message/rfc822 (mail-parser parses it as one).
        None if matches!(p.body, PartType::Message(_)) => {
            ("message".into(), "rfc822".into(), Vec::new())
        }
        None => (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        ),
    };
    let (media_type, media_subtype) = if media_subtype.is_empty() {
        ("text".to_string(), "plain".to_string())
    } else {
        (media_type, media_subtype)
    };
    // Offsets stay inside the content whatever mail-parser reports for
    // malformed input.
    let len = content.len() as u64;
    let body_end = (base + u64::from(p.offset_end).max(u64::from(p.offset_body))).min(len);
    let body_start = (base + u64::from(p.offset_body)).min(body_end);
    let header_start = (base + u64::from(p.offset_header)).min(body_start);
    let body_bytes = content
        .get(body_start as usize..(body_end as usize).min(content.len()))
        .unwrap_or_default();
    let mut out = BodyPart {
        media_type,
        media_subtype,
        params,
        id: raw_value(message, id, HeaderName::ContentId),
        description: raw_value(message, id, HeaderName::ContentDescription),
        encoding: raw_value(message, id, HeaderName::ContentTransferEncoding)
            .unwrap_or_else(|| "7BIT".into()),
        disposition: p.content_disposition().map(|d| {
            (
                d.c_type.to_string(),
                d.attributes
                    .iter()
                    .flatten()
                    .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
                    .collect(),
            )
        }),
        language: p
            .content_language()
            .as_text_list()
            .map(|l| l.iter().map(|s| s.to_string()).collect::<Vec<String>>()),
        location: p.content_location().map(str::to_string),
        md5: raw_value(message, id, HeaderName::ContentMd5),
        header_start,
        body_start,
        body_end,
        lines: 0,
        parts: Vec::new(),
        message: None,
    };
    match &p.body {
        // Deeper structure is not described (the part stays without
        // children): bounded recursion here, in the JSON and in FETCH.
        PartType::Multipart(children) if depth > 0 => {
            out.parts = children
                .iter()
                .map(|c| part(message, *c as usize, content, base, depth - 1))
                .collect();
        }
        PartType::Message(inner) if depth > 0 && !inner.parts.is_empty() => {
            out.lines = count_lines(body_bytes);
            // An unencoded encapsulated message is parsed in-stream by
            // mail-parser; its offsets are then already absolute. An encoded
            // one (base64 message/rfc822) is described by its outer part only.
            let inner_base = if inner.raw_message.as_ref() == content {
                base
            } else if body_bytes.starts_with(inner.raw_message.as_ref()) {
                body_start
            } else {
                u64::MAX
            };
            if inner_base != u64::MAX {
                out.message = Some(Box::new((
                    envelope(inner, 0),
                    part(inner, 0, content, inner_base, depth - 1),
                )));
            }
        }
        _ => {
            if out.media_type == "text" {
                out.lines = count_lines(body_bytes);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5322_2_2_3_header_fields_with_folded_lines() {
        let m = b"A: 1\r\nB: 2\r\n\t2b\r\n c\r\nC: 3\r\n\r\nD: body\r\n";
        let f = header_fields(m);
        assert_eq!(f, [0..6, 6..21, 21..27]);
        assert!(field_is(m, &f[1], "b") && !field_is(m, &f[1], "B2"));
        assert_eq!(header_fields(b"\r\nbody"), []);
        assert_eq!(
            header_fields(b"X: no end"),
            vec![std::ops::Range { start: 0, end: 9 }]
        );
    }

    #[test]
    fn plain_message_envelope_and_offsets() {
        let m = b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hi\r\n =?utf-8?q?there?=\r\n\r\nline1\r\nline2\r\n";
        let meta = MessageMeta::parse(m);
        assert_eq!(meta.header_len as usize, m.len() - 14);
        assert_eq!(
            meta.envelope.subject.as_deref(),
            Some("hi =?utf-8?q?there?=")
        );
        assert_eq!(
            meta.envelope.from.as_deref(),
            Some("Alice <alice@example.org>")
        );
        assert_eq!(meta.body.media_type, "text");
        assert_eq!(meta.body.lines, 2);
        assert_eq!(
            &m[meta.body.body_start as usize..meta.body.body_end as usize],
            b"line1\r\nline2\r\n"
        );
    }

    /// The header-only fast path must describe a single-part message
    /// exactly as the full parse does.
    #[test]
    fn single_part_fast_path_matches_full_parse() {
        let samples: &[&[u8]] = &[
            b"From: a@b\r\nSubject: x\r\n\r\nline1\r\nline2\r\n",
            b"Content-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>caf=C3=A9</p>\r\n",
            b"Content-Type: image/png; name=\"a.png\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.png\"\r\nContent-ID: <x@y>\r\n\r\niVBORw0KGgo=\r\n",
            b"Subject: no body\r\n\r\n",
            b"Subject: only a header\r\n",
            b"To: x@y\r\n\r\nno final newline",
            b"Content-Type: text/plain; charset*=utf-8''%C3%A9\r\nContent-Language: de\r\n\r\nHallo\r\n",
            b"\r\nbody without header\r\n",
        ];
        for m in samples {
            let fast = MessageMeta::parse(m);
            let full = MessageParser::default().parse(*m).unwrap();
            let mut slow = part(&full, 0, m, 0, 8);
            if slow.media_type != "text" {
                slow.lines = 0;
            }
            assert_eq!(fast.body, slow, "{}", String::from_utf8_lossy(m));
            assert_eq!(fast.envelope, envelope(&full, 0));
        }
    }

    #[test]
    fn deep_nesting_is_cut_off_and_survives_json() {
        // 1,000 nested multiparts: valid MIME, and a stack-overflow attack
        // on every recursive walk if it were described in full.
        let mut m = b"Content-Type: text/plain\r\n\r\nleaf\r\n".to_vec();
        for i in 0..1000 {
            let b = format!("b{i}");
            let mut outer =
                format!("Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n--{b}\r\n")
                    .into_bytes();
            outer.extend_from_slice(&m);
            outer.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
            m = outer;
        }
        let meta = MessageMeta::parse(&m);
        let mut depth = 0;
        let mut p = &meta.body;
        while let Some(c) = p.parts.first() {
            depth += 1;
            p = c;
        }
        assert!(depth <= MAX_DEPTH as usize, "{depth}");
        let json = serde_json::to_string(&meta).unwrap();
        let back: MessageMeta = serde_json::from_str(&json).unwrap();
        assert_eq!(back, meta);
        // The same for message/rfc822 in message/rfc822.
        let mut m = b"Subject: inner\r\n\r\nx\r\n".to_vec();
        for _ in 0..200 {
            let mut outer = b"Content-Type: message/rfc822\r\n\r\n".to_vec();
            outer.extend_from_slice(&m);
            m = outer;
        }
        let meta = MessageMeta::parse(&m);
        let json = serde_json::to_string(&meta).unwrap();
        assert!(serde_json::from_str::<MessageMeta>(&json).is_ok());
    }

    #[test]
    fn thousands_of_encapsulated_messages_are_not_parsed_recursively() {
        let mut m = b"Subject: r\r\n".to_vec();
        for _ in 0..50_000 {
            m.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        m.extend_from_slice(b"Subject: inner\r\n\r\nbody\r\n");
        assert!(!safe_to_parse(&m));
        let meta = MessageMeta::parse(&m);
        assert_eq!(meta.envelope.subject.as_deref(), Some("r"));
        assert!(meta.body.body_end as usize <= m.len());
        assert!(safe_to_parse(
            b"Content-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\ny\r\n"
        ));
    }

    #[test]
    fn multipart_with_rfc2231_parameters() {
        let m = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--b\r\nContent-Type: application/pdf;\r\n name*0=\"long\"; name*1=\"name.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n";
        let meta = MessageMeta::parse(m);
        assert_eq!(meta.body.media_subtype, "mixed");
        assert_eq!(meta.body.parts.len(), 2);
        assert_eq!(meta.body.parts[1].media_subtype, "pdf");
        assert!(
            meta.body.parts[1]
                .params
                .contains(&("name".into(), "longname.pdf".into()))
        );
        assert_eq!(meta.body.parts[1].encoding, "base64");
        let p0 = &meta.body.parts[0];
        assert_eq!(&m[p0.body_start as usize..p0.body_end as usize], b"hello");
    }

    #[test]
    fn encapsulated_message_is_described() {
        let m = b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: c@d\r\n\r\ninner body\r\n--x--\r\n";
        let meta = MessageMeta::parse(m);
        let inner = meta.body.parts[0].message.as_ref().expect("nested message");
        assert_eq!(inner.0.subject.as_deref(), Some("inner"));
        assert_eq!(
            &m[inner.1.body_start as usize..inner.1.body_end as usize],
            b"inner body"
        );
    }

    #[test]
    fn offsets_stay_inside_truncated_and_broken_input() {
        let m: &[u8] = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogaQ0KDQpib2R5DQo=\r\n--x\r\nContent-Type: multipart/alternative; boundary=y\r\n\r\n--y\r\n";
        fn check(p: &BodyPart, len: u64) {
            assert!(
                p.header_start <= p.body_start && p.body_start <= p.body_end && p.body_end <= len,
                "{p:?}"
            );
            p.parts.iter().for_each(|c| check(c, len));
            if let Some(x) = &p.message {
                check(&x.1, len);
            }
        }
        for n in 0..=m.len() {
            let meta = MessageMeta::parse(&m[..n]);
            assert!(meta.header_len as usize <= n);
            check(&meta.body, n as u64);
        }
    }

    #[test]
    fn garbage_is_text_plain() {
        let meta = MessageMeta::parse(b"no header here");
        assert_eq!(meta.body.media_type, "text");
    }
}
