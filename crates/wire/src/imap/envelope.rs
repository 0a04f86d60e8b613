//! ENVELOPE (RFC 9051 §7.5.2) and the RFC 5322 address lists in it. Every
//! message's ENVELOPE is rendered once at delivery ([`prerendered_envelope`],
//! kept by the store as opaque bytes), so `FETCH 1:* (ENVELOPE)` copies bytes
//! instead of parsing and rendering per message; a session renders with the
//! same code when it needs another form (8-bit text without UTF-8).

use super::quote::nstring;
use crate::meta::Envelope;

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

/// The ENVELOPE to keep with a message: only when it is plain ASCII
/// without literals, so that it is the same for every client.
pub fn prerendered_envelope(e: &Envelope) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    envelope(&mut out, e, false);
    (out.is_ascii() && !out.contains(&b'{')).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = parse_addresses("\"Smith, John\" <john@example.org>, jane@example.net (Jane)");
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name.as_deref(), Some("Smith, John"));
        assert_eq!(a[0].mailbox.as_deref(), Some("john"));
        assert_eq!(a[0].host.as_deref(), Some("example.org"));
        assert_eq!(a[1].name.as_deref(), Some("Jane"), "comment as the name");
        assert_eq!(a[1].host.as_deref(), Some("example.net"));
        let g = parse_addresses("undisclosed-recipients:;");
        assert_eq!(
            g,
            vec![
                Address {
                    mailbox: Some("undisclosed-recipients".into()),
                    ..Address::default()
                },
                Address::default()
            ]
        );
        let g = parse_addresses("Team: a@x, B <b@y>; c@z");
        assert_eq!(g.len(), 5);
        assert_eq!(g[2].name.as_deref(), Some("B"));
        assert_eq!(g[3], Address::default());
        assert_eq!(g[4].mailbox.as_deref(), Some("c"));
        let r = parse_addresses("=?utf-8?q?J=C3=B6rg?= <j@x>");
        assert_eq!(r[0].name.as_deref(), Some("=?utf-8?q?J=C3=B6rg?="));
        let q = parse_addresses("<\"odd local\"@x>");
        assert_eq!(q[0].mailbox.as_deref(), Some("\"odd local\""));
        assert!(parse_addresses("").is_empty());
        let r = parse_addresses("<@route1.example,@route2.example:routed@example.net>");
        assert_eq!(r[0].adl.as_deref(), Some("@route1.example,@route2.example"));
        assert_eq!(r[0].mailbox.as_deref(), Some("routed"));
        assert_eq!(
            parse_addresses("Name <a@b> (comment)")[0].name.as_deref(),
            Some("Name")
        );
        assert_eq!(
            parse_addresses("nobody")[0].host.as_deref(),
            Some("MISSING_DOMAIN")
        );
    }
}
