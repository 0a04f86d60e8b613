//! Rendering of IMAP data (RFC 9051 §4, §7.5.2): strings, ENVELOPE and
//! BODY/BODYSTRUCTURE from the metadata parsed once at delivery.

use postamt_store::meta::{BodyPart, Envelope};

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
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
        d,
        M[(m - 1) as usize],
        y,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use postamt_store::meta::MessageMeta;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn strings_are_quoted_or_literal() {
        assert_eq!(s(|o| string(o, b"a \"b\" \\c", false)), r#""a \"b\" \\c""#);
        assert_eq!(s(|o| string(o, b"a\r\nb", false)), "{4}\r\na\r\nb");
        assert_eq!(s(|o| string(o, "ä".as_bytes(), true)), "\"ä\"");
        assert_eq!(s(|o| string(o, "ä".as_bytes(), false)), "{2}\r\nä");
        assert_eq!(s(|o| nstring(o, None, false)), "NIL");
    }

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
