//! IMAP data rendering that the store needs too: strings, address lists
//! and ENVELOPE (RFC 9051 §4, §7.5.2). The store renders every message's
//! ENVELOPE once at delivery (`blobs.envelope`), so `FETCH 1:* (ENVELOPE)`
//! copies bytes instead of parsing and rendering per message; the IMAP
//! crate renders with the same code when a session needs another form.

use crate::meta::Envelope;

/// Strings longer than this are sent as literals.
const MAX_QUOTED: usize = 1024;

/// Writes `s` as a quoted string, or as a literal when it cannot be quoted
/// (CR, LF, NUL, 8-bit without UTF-8 enabled, or long).
pub fn string(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    let quotable = s.len() <= MAX_QUOTED
        && s.iter()
            .all(|&b| b != b'\r' && b != b'\n' && b != 0 && (utf8 || b < 0x80))
        && (!utf8 || std::str::from_utf8(s).is_ok());
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
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

/// One address of an ENVELOPE list (RFC 9051 §7.5.2 `address`); a group is
/// a start marker (`mailbox` = group name, `host` = None) and an end marker
/// (everything None).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    pub name: Option<String>,
    /// The obsolete source route (`@a,@b`), RFC 9051 `addr-adl`.
    pub adl: Option<String>,
    pub mailbox: Option<String>,
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Special(char),
    Comment(String),
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                it.next();
            }
            '(' => {
                // Comments (nested) carry no address data, but one after a
                // bare address is taken as the name (`a@b (Name)`).
                let mut depth = 0;
                let mut text = String::new();
                for c in it.by_ref() {
                    match c {
                        '(' => {
                            depth += 1;
                            if depth == 1 {
                                continue;
                            }
                        }
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    text.push(c);
                }
                out.push(Tok::Comment(text.trim().to_string()));
            }
            '"' => {
                it.next();
                let mut q = String::new();
                while let Some(c) = it.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = it.next() {
                                q.push(n);
                            }
                        }
                        c => q.push(c),
                    }
                }
                out.push(Tok::Quoted(q));
            }
            '<' | '>' | '@' | ',' | ';' | ':' => {
                it.next();
                out.push(Tok::Special(c));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = it.peek() {
                    if " \t\r\n()\"<>@,;:".contains(c) {
                        break;
                    }
                    w.push(c);
                    it.next();
                }
                out.push(Tok::Word(w));
            }
        }
    }
    out
}

fn text(t: &Tok) -> Option<&str> {
    match t {
        Tok::Word(w) | Tok::Quoted(w) => Some(w),
        Tok::Special(_) | Tok::Comment(_) => None,
    }
}

/// Builds one mailbox from the tokens between separators.
fn mailbox(toks: &[Tok]) -> Option<Address> {
    let comment = toks.iter().find_map(|t| match t {
        Tok::Comment(c) if !c.is_empty() => Some(c.clone()),
        _ => None,
    });
    let toks: Vec<Tok> = toks
        .iter()
        .filter(|t| !matches!(t, Tok::Comment(_)))
        .cloned()
        .collect();
    let toks = &toks[..];
    if toks.is_empty() {
        return None;
    }
    let mut adl = None;
    let (phrase, spec): (&[Tok], &[Tok]) = match toks.iter().position(|t| *t == Tok::Special('<')) {
        Some(lt) => {
            let gt = toks[lt..]
                .iter()
                .position(|t| *t == Tok::Special('>'))
                .map_or(toks.len(), |p| lt + p);
            let mut inner = &toks[lt + 1..gt];
            // An obsolete source route `@a,@b:` becomes the adl.
            if inner.first() == Some(&Tok::Special('@'))
                && let Some(colon) = inner.iter().position(|t| *t == Tok::Special(':'))
            {
                let route: String = inner[..colon]
                    .iter()
                    .map(|t| match t {
                        Tok::Word(w) | Tok::Quoted(w) => w.clone(),
                        Tok::Special(c) => c.to_string(),
                        Tok::Comment(_) => String::new(),
                    })
                    .collect();
                adl = Some(route);
                inner = &inner[colon + 1..];
            }
            (&toks[..lt], inner)
        }
        None => (&[][..], toks),
    };
    let name: Vec<&str> = phrase.iter().filter_map(text).collect();
    let name = if name.is_empty() {
        // `user@host (Real Name)`: the comment is the name, as Dovecot does.
        comment.filter(|_| phrase.is_empty())
    } else {
        Some(name.join(" "))
    };
    let at = spec.iter().rposition(|t| *t == Tok::Special('@'));
    let join = |ts: &[Tok]| -> String {
        ts.iter()
            .map(|t| match t {
                Tok::Word(w) => w.clone(),
                Tok::Quoted(q) => format!("\"{q}\""),
                Tok::Special(c) => c.to_string(),
                Tok::Comment(_) => String::new(),
            })
            .collect()
    };
    let (local, host) = match at {
        Some(a) => (join(&spec[..a]), join(&spec[a + 1..])),
        None => (join(spec), String::new()),
    };
    if local.is_empty() && host.is_empty() && name.is_none() {
        return None;
    }
    Some(Address {
        name,
        adl,
        mailbox: Some(if local.is_empty() {
            "MISSING_MAILBOX".into()
        } else {
            local
        }),
        host: Some(if host.is_empty() {
            "MISSING_DOMAIN".into()
        } else {
            host
        }),
    })
}

/// Parses an RFC 5322 address list (raw, unfolded header value). Encoded
/// words in names are kept as they are, like Dovecot does.
pub fn parse_addresses(value: &str) -> Vec<Address> {
    let toks = tokenize(value);
    let mut out = Vec::new();
    let mut cur: Vec<Tok> = Vec::new();
    let mut in_angle = false;
    let mut in_group = false;
    for t in toks {
        match t {
            Tok::Special('<') => {
                in_angle = true;
                cur.push(t);
            }
            Tok::Special('>') => {
                in_angle = false;
                cur.push(t);
            }
            Tok::Special(':') if !in_angle && !in_group => {
                let name: Vec<&str> = cur.iter().filter_map(text).collect();
                out.push(Address {
                    mailbox: Some(name.join(" ")),
                    ..Address::default()
                });
                in_group = true;
                cur.clear();
            }
            Tok::Special(',') if !in_angle => {
                out.extend(mailbox(&cur));
                cur.clear();
            }
            Tok::Special(';') if !in_angle && in_group => {
                out.extend(mailbox(&cur));
                cur.clear();
                out.push(Address::default());
                in_group = false;
            }
            t => cur.push(t),
        }
    }
    out.extend(mailbox(&cur));
    if in_group {
        out.push(Address::default());
    }
    out
}

fn address_list(out: &mut Vec<u8>, value: Option<&str>, utf8: bool) {
    let addrs = value.map(parse_addresses).unwrap_or_default();
    if addrs.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in addrs {
        out.push(b'(');
        nstring(out, a.name.as_deref(), utf8);
        out.push(b' ');
        nstring(out, a.adl.as_deref(), utf8);
        out.push(b' ');
        nstring(out, a.mailbox.as_deref(), utf8);
        out.push(b' ');
        nstring(out, a.host.as_deref(), utf8);
        out.push(b')');
    }
    out.push(b')');
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.trim().is_empty())
}

/// ENVELOPE (RFC 9051 §7.5.2). Sender and Reply-To default to From.
pub fn envelope(out: &mut Vec<u8>, e: &Envelope, utf8: bool) {
    out.push(b'(');
    nstring(out, non_empty(&e.date), utf8);
    out.push(b' ');
    // RFC 9051 §7.5.2: present but empty is "" (only absent is NIL).
    nstring(out, e.subject.as_deref().map(str::trim), utf8);
    let from = non_empty(&e.from);
    for v in [
        from,
        non_empty(&e.sender).or(from),
        non_empty(&e.reply_to).or(from),
        non_empty(&e.to),
        non_empty(&e.cc),
        non_empty(&e.bcc),
    ] {
        out.push(b' ');
        address_list(out, v, utf8);
    }
    out.push(b' ');
    nstring(out, non_empty(&e.in_reply_to), utf8);
    out.push(b' ');
    nstring(out, non_empty(&e.message_id), utf8);
    out.push(b')');
}

/// What FETCH ENVELOPE needs of one message: the form rendered at
/// delivery, or the raw values when it could not be (8-bit text, whose
/// rendering depends on the session's UTF-8 mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeData {
    Rendered(Vec<u8>),
    Parsed(Box<Envelope>),
}

/// The ENVELOPE to keep with a message: only when it is plain ASCII
/// without literals, so that it is the same for every client.
pub fn prerendered_envelope(e: &Envelope) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    envelope(&mut out, e, false);
    (out.is_ascii() && !out.contains(&b'{')).then_some(out)
}
