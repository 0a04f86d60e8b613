//! The sans-IO half of an SMTP *client* (RFC 5321 §4.1, §4.2): reading
//! replies, understanding an EHLO answer, writing paths and parameters, and
//! the [`dialogue`] that decides what to send next. Content for DATA is
//! framed by [`crate::dot::stuff`], for BDAT by [`crate::crlf::normalize`].
//! The relay and the mail client drive it over their sockets; nothing here
//! does I/O.

use std::fmt;

pub mod dialogue;

/// Longest reply line accepted from a server. RFC 5321 §4.5.3.1.5 says 512
/// octets; real servers send longer EHLO and error texts, so be generous
/// but bounded.
pub const MAX_REPLY_LINE: usize = 8192;
/// Most lines in one multi-line reply (an EHLO answer has a few dozen).
pub const MAX_REPLY_LINES: usize = 256;

/// One complete reply: `250-first` … `250 last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    /// The lines' texts, without the code and separator.
    pub lines: Vec<String>,
}

impl ServerReply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
    /// The enhanced status code (RFC 3463) the first line starts with, if
    /// the server sent one whose class matches the reply code.
    pub fn enhanced(&self) -> Option<String> {
        let first = self.lines.first()?;
        let word = first.split(' ').next()?;
        let mut parts = word.split('.');
        let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
        let class_ok = matches!(class, "2" | "4" | "5")
            && class.as_bytes()[0] - b'0' == (self.code / 100) as u8;
        let num = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
        };
        (class_ok && parts.next().is_none() && num(subject, 3) && num(detail, 3))
            .then(|| word.to_string())
    }
    /// The enhanced status code, or one derived from the reply's class
    /// (`2.0.0`, `4.0.0`, `5.0.0`) when the server sent none.
    pub fn status(&self) -> String {
        self.enhanced().unwrap_or_else(|| {
            match self.code / 100 {
                2 => "2.0.0",
                4 => "4.0.0",
                _ => "5.0.0",
            }
            .into()
        })
    }
    /// The text of all lines joined with spaces (for logs and bounces).
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

impl fmt::Display for ServerReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text())
    }
}

/// What went wrong while reading replies; the connection is unusable after.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_REPLY_LINE} octets")]
    LineTooLong,
    #[error("more than {MAX_REPLY_LINES} lines in one reply")]
    TooManyLines,
    #[error("malformed reply line: {0:?}")]
    Malformed(String),
    #[error("the code changed within a multi-line reply")]
    CodeChanged,
}

/// Splits a server's byte stream into replies (RFC 5321 §4.2: `code-text`
/// continues, `code text` or a bare `code` ends a reply). Lines may end in
/// CRLF or a bare LF; a client is lenient in what it reads.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    pending: Option<ServerReply>,
}

impl ReplyParser {
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Adds bytes read from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete reply, if the buffer holds one.
    pub fn next_reply(&mut self) -> Result<Option<ServerReply>, ReplyError> {
        loop {
            let Some(end) = memchr::memchr(b'\n', &self.buf) else {
                if self.buf.len() > MAX_REPLY_LINE {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(None);
            };
            if end > MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            let mut line = &self.buf[..end];
            if line.ends_with(b"\r") {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            self.buf.drain(..=end);
            let b = line.as_bytes();
            let digits = b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit);
            if !digits || (b.len() > 3 && b[3] != b' ' && b[3] != b'-') {
                return Err(ReplyError::Malformed(line));
            }
            let code: u16 = line[..3].parse().unwrap_or(0);
            if !(200..600).contains(&code) {
                return Err(ReplyError::Malformed(line));
            }
            let more = b.len() > 3 && b[3] == b'-';
            let text = line.get(4..).unwrap_or("").to_string();
            let reply = self.pending.get_or_insert_with(|| ServerReply {
                code,
                lines: Vec::new(),
            });
            if reply.code != code {
                return Err(ReplyError::CodeChanged);
            }
            if reply.lines.len() >= MAX_REPLY_LINES {
                return Err(ReplyError::TooManyLines);
            }
            reply.lines.push(text);
            if !more {
                return Ok(self.pending.take());
            }
        }
    }

    /// Bytes received but not yet part of a reply (a server that talks
    /// before it is asked, e.g. after STARTTLS, is misbehaving).
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty() || self.pending.is_some()
    }
}

/// What a server offers in its EHLO reply (RFC 5321 §4.1.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// False after a HELO fallback: no extensions at all.
    pub esmtp: bool,
    pub pipelining: bool,
    /// `SIZE n` (RFC 1870); `Some(0)` means no fixed limit.
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub starttls: bool,
    pub chunking: bool,
    pub binarymime: bool,
    pub dsn: bool,
    pub enhanced_status_codes: bool,
    /// SASL mechanisms of `AUTH` (RFC 4954), upper-cased.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Reads the keywords of an EHLO reply; the first line is the greeting.
    pub fn from_ehlo(reply: &ServerReply) -> Capabilities {
        let mut caps = Capabilities {
            esmtp: true,
            ..Capabilities::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "STARTTLS" => caps.starttls = true,
                "CHUNKING" => caps.chunking = true,
                "BINARYMIME" => caps.binarymime = true,
                "DSN" => caps.dsn = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "AUTH" => caps.auth.extend(words.map(|w| w.to_ascii_uppercase())),
                _ => {}
            }
        }
        caps
    }
}

/// True when the content has a byte over 127 (needs `BODY=8BITMIME`).
pub fn is_8bit(content: &[u8]) -> bool {
    content.iter().any(|&b| b >= 0x80)
}

/// Encodes text as xtext (RFC 3461 §4): `+`, `=`, controls and non-ASCII
/// become `+HH`.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// `ORCPT` as RFC 3461 §4.2 writes it, for a recipient that had none.
pub fn orcpt_for(address: &str) -> String {
    let kind = if address.is_ascii() {
        "rfc822"
    } else {
        "utf-8"
    };
    format!("{kind};{}", xtext(address))
}

/// Formats an address for `MAIL FROM:<…>` / `RCPT TO:<…>`: a local part
/// that is not a dot-atom is quoted again (RFC 5321 §4.1.2).
pub fn path(address: &str) -> String {
    if address.is_empty() {
        return "<>".into();
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return format!("<{address}>");
    };
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii();
    let dot_atom = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c == '.' || atext(c));
    if dot_atom {
        format!("<{local}@{domain}>")
    } else {
        let quoted: String = local
            .chars()
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        format!("<\"{quoted}\"@{domain}>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Result<Option<ServerReply>, ReplyError>> {
        let mut p = ReplyParser::new();
        p.feed(input);
        let mut out = Vec::new();
        for _ in 0..10 {
            let r = p.next_reply();
            let stop = !matches!(r, Ok(Some(_)));
            out.push(r);
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn rfc5321_4_2_multiline_reply() {
        let got = parse_all(b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
        let reply = got[0].clone().unwrap().unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, ["mx.example.org", "PIPELINING", "SIZE 1000"]);
        assert_eq!(got[1], Ok(None));
    }

    #[test]
    fn reply_split_across_reads_and_bare_code() {
        let mut p = ReplyParser::new();
        p.feed(b"354 go ahead\r\n25");
        assert_eq!(p.next_reply().unwrap().unwrap().code, 354);
        assert_eq!(p.next_reply().unwrap(), None);
        p.feed(b"0\n");
        let r = p.next_reply().unwrap().unwrap();
        assert_eq!((r.code, r.lines.as_slice()), (250, &[String::new()][..]));
    }

    #[test]
    fn malformed_and_unbounded_replies_are_errors() {
        assert!(matches!(
            parse_all(b"hello\r\n")[0],
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_all(b"099 x\r\n")[0],
            Err(ReplyError::Malformed(_))
        ));
        assert_eq!(
            parse_all(b"250-a\r\n550 b\r\n")[0],
            Err(ReplyError::CodeChanged)
        );
        let long = vec![b'2'; MAX_REPLY_LINE + 2];
        assert_eq!(parse_all(&long)[0], Err(ReplyError::LineTooLong));
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(parse_all(many.as_bytes())[0], Err(ReplyError::TooManyLines));
    }

    #[test]
    fn rfc3463_enhanced_code_only_when_class_matches() {
        let r = |code, text: &str| ServerReply {
            code,
            lines: vec![text.into()],
        };
        assert_eq!(
            r(550, "5.1.1 no such user").enhanced().as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            r(451, "4.7.1 try later").enhanced().as_deref(),
            Some("4.7.1")
        );
        assert_eq!(r(550, "4.1.1 wrong class").enhanced(), None);
        assert_eq!(r(550, "no such user").enhanced(), None);
        assert_eq!(r(550, "5.1 short").enhanced(), None);
        assert_eq!(r(550, "no such user").status(), "5.0.0");
        assert_eq!(r(421, "busy").status(), "4.0.0");
        assert_eq!(r(451, "4.7.1 try later").status(), "4.7.1");
    }

    #[test]
    fn ehlo_capabilities() {
        let reply = ServerReply {
            code: 250,
            lines: [
                "mx.example.org greets you",
                "PIPELINING",
                "SIZE 10240000",
                "8bitmime",
                "SMTPUTF8",
                "STARTTLS",
                "CHUNKING",
                "DSN",
                "AUTH PLAIN login",
                "ENHANCEDSTATUSCODES",
            ]
            .map(String::from)
            .to_vec(),
        };
        let c = Capabilities::from_ehlo(&reply);
        assert!(c.esmtp && c.pipelining && c.eight_bit_mime && c.smtputf8);
        assert!(c.starttls && c.chunking && c.dsn && c.enhanced_status_codes);
        assert_eq!(c.size, Some(10_240_000));
        assert_eq!(c.auth, ["PLAIN", "LOGIN"]);
        assert!(!c.binarymime);
    }

    #[test]
    fn rfc3461_xtext_and_quoted_paths() {
        assert_eq!(xtext("rfc822;a+b=c@x"), "rfc822;a+2Bb+3Dc@x");
        assert_eq!(xtext("ü"), "+C3+BC");
        assert_eq!(orcpt_for("a+b@x"), "rfc822;a+2Bb@x");
        assert_eq!(orcpt_for("ü@x"), "utf-8;+C3+BC@x");
        assert_eq!(path(""), "<>");
        assert_eq!(path("a.b@x.org"), "<a.b@x.org>");
        assert_eq!(path("a b@x.org"), "<\"a b\"@x.org>");
        assert_eq!(path("a\"b@x.org"), "<\"a\\\"b\"@x.org>");
        assert_eq!(path("jörg@bücher.de"), "<jörg@bücher.de>");
    }
}
