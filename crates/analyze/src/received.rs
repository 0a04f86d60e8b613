//! One `Received:` field (RFC 5321 §4.4) read into its parts, the way
//! real MTAs write them rather than the way the grammar says: Postfix's
//! `from helo (rdns [ip])`, Sendmail's `(may be forged)` and
//! `user@rdns`, qmail's `from rdns (HELO helo) (ident@ip)`, Exim's
//! `from rdns (helo) [ip]:port` and `([ip] helo=…)`, Exchange's
//! `([ip])`/`(ip)` and `mapi id`, bracketed IPs with ports, IPv6 with
//! `IPv6:` or zone ids, and the comments that carry TLS versions and
//! ciphers. The date after the last `;` is read by mail-parser.
//!
//! A field that records no relay — no client address (`invoked by uid`,
//! `mail pickup service`, a local re-injection), a fetchmail pickup or a
//! content scanner's pass — is [`Parsed::Local`]: it says something about
//! the receiving machine, nothing about where the message came from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest field read; the rest is ignored (a hostile header must not
/// cost more).
pub const MAX_FIELD: usize = 8 * 1024;

/// What one field says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A hop: a client handed the message to `by`.
    Relay(Hop),
    /// A local hop (pickup, re-injection, scanner, fetchmail): the reason.
    Local(&'static str, Hop),
}

impl Parsed {
    pub fn hop(&self) -> &Hop {
        match self {
            Parsed::Relay(h) | Parsed::Local(_, h) => h,
        }
    }
}

/// The parts of one `Received:` field. Empty strings are absent parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hop {
    /// The client's address (IPv4-mapped IPv6 as IPv4).
    pub ip: Option<IpAddr>,
    /// The client's name as the receiver looked it up (reverse DNS).
    pub rdns: String,
    /// The name the client gave in HELO/EHLO.
    pub helo: String,
    /// The receiving host.
    pub by: String,
    /// The protocol after `with` (`ESMTPS`, `LMTP`, `HTTP`, …).
    pub with: String,
    /// The TLS version and cipher, where recorded.
    pub tls: String,
    pub id: String,
    pub for_: String,
    /// The ident or authenticated user recorded.
    pub ident: String,
    /// `envelope-from`, where recorded.
    pub envfrom: String,
    /// How the client authenticated: `ESMTPA`, `ESMTPSA`, `HTTP`, or the
    /// user of Postfix's `(Authenticated sender: …)`.
    pub auth: String,
    /// The date after `;`, milliseconds since the epoch; `None` when
    /// missing or unreadable.
    pub date_ms: Option<i64>,
    /// The date as written.
    pub date_text: String,
}

/// A top-level part of the field: a word (or `[...]`, `<...>`) or a
/// parenthesised comment (nested comments kept inside).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Comment(&'a str),
}

fn tokens(s: &str) -> Vec<Token<'_>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b',' => i += 1,
            b'(' => {
                let start = i + 1;
                let mut depth = 1;
                i += 1;
                while i < b.len() && depth > 0 {
                    match b[i] {
                        b'(' => depth += 1,
                        b')' => depth -= 1,
                        b'\\' => i += 1,
                        _ => {}
                    }
                    i += 1;
                }
                let end = if depth == 0 { i - 1 } else { b.len() };
                out.push(Token::Comment(&s[start..end.max(start)]));
            }
            b'[' | b'<' => {
                let close = if b[i] == b'[' { b']' } else { b'>' };
                let start = i;
                while i < b.len() && b[i] != close {
                    i += 1;
                }
                i = (i + 1).min(b.len());
                // `[1.2.3.4]:25` and `<a@b>;` stay one word.
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'(' | b';') {
                    i += 1;
                }
                out.push(Token::Word(&s[start..i]));
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n' | b'(') {
                    i += 1;
                }
                out.push(Token::Word(&s[start..i]));
            }
        }
    }
    out
}

/// The position of the `;` that ends the field's clauses (the last one
/// outside comments and brackets).
fn date_split(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut last = None;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = (depth - 1).max(0),
            ';' if depth == 0 => last = Some(i),
            _ => {}
        }
    }
    last
}

const KEYWORDS: &[&str] = &["from", "by", "via", "with", "id", "for"];

/// An IP address written as `1.2.3.4`, `[1.2.3.4]`, `[1.2.3.4]:25`,
/// `1.2.3.4.25` (Exim's port), `[IPv6:…]`, `::ffff:1.2.3.4`, `fe80::1%eth0`.
pub fn ip_in(text: &str) -> Option<IpAddr> {
    let t = text
        .trim()
        .trim_start_matches('[')
        .trim_end_matches([']', ')', ',']);
    let t = t.split(']').next().unwrap_or(t);
    let t = t
        .strip_prefix("IPv6:")
        .or_else(|| t.strip_prefix("ipv6:"))
        .unwrap_or(t);
    // A zone id (RFC 6874) is not part of the address.
    let t = t.split('%').next().unwrap_or(t);
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // `1.2.3.4:port` or Exim's `1.2.3.4.port`.
    if let Some((a, port)) = t.rsplit_once([':', '.'])
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.is_empty()
        && let Ok(ip) = a.parse::<Ipv4Addr>()
    {
        return Some(IpAddr::V4(ip));
    }
    // `[2001:db8::1]:port`
    if let Some(inner) = text
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.split(']').next())
        && let Ok(ip) = inner.trim_start_matches("IPv6:").parse::<Ipv6Addr>()
    {
        return Some(canonical(IpAddr::V6(ip)));
    }
    None
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Whether `w` could be a host name (letters, digits, dots, hyphens,
/// underscores; at least one letter or a lone label).
fn hostish(w: &str) -> bool {
    !w.is_empty()
        && w.len() <= 255
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn unquote(w: &str) -> &str {
    w.trim_matches(|c| c == '<' || c == '>' || c == ';' || c == ',' || c == '"')
}

/// Reads one field's value (unfolded or not, without `Received:`).
pub fn parse(value: &str) -> Parsed {
    let value = if value.len() > MAX_FIELD {
        let mut end = MAX_FIELD;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        &value[..end]
    } else {
        value
    };
    // `(from host [ip]) by …` (Norton's gateway): the from clause in
    // parentheses.
    let unwrapped;
    let value = match value.trim_start().strip_prefix("(from ") {
        Some(rest) if rest.contains(')') => {
            let (inner, after) = rest.split_once(')').unwrap_or((rest, ""));
            unwrapped = format!("from {inner} {after}");
            unwrapped.as_str()
        }
        _ => value,
    };
    let (clauses, date_text) = match date_split(value) {
        Some(p) => (&value[..p], value[p + 1..].trim()),
        None => (value, ""),
    };
    // `…; date id X` (some MTAs put the id after the date).
    let (date_text, late_id) = match date_text.find(" id ") {
        Some(p) => (date_text[..p].trim(), date_text[p + 4..].trim()),
        None => (date_text, ""),
    };
    let mut hop = Hop {
        date_text: date_text.to_string(),
        date_ms: crate::date::parse(date_text),
        ..Hop::default()
    };
    let lower = value.to_ascii_lowercase();
    let toks = tokens(clauses);
    // Split into clauses by keyword; comments belong to the clause before.
    let mut parts: Vec<(&str, Vec<Token<'_>>)> = Vec::new();
    for t in toks {
        if let Token::Word(w) = t {
            let lw = w.to_ascii_lowercase();
            if let Some(k) = KEYWORDS.iter().find(|k| **k == lw) {
                // A second `by` inside the by clause (`by uid 502`) stays.
                parts.push((k, Vec::new()));
                continue;
            }
        }
        match parts.last_mut() {
            Some((_, v)) => v.push(t),
            None => parts.push(("", vec![t])),
        }
    }
    let clause = |k: &str| {
        parts
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.as_slice())
    };
    // No `;` (SendGrid: `… id X 2018-03-26 13:35:36 +0000 UTC`): the date
    // may follow the last clause's value.
    if hop.date_ms.is_none()
        && date_text.is_empty()
        && let Some((_, last)) = parts.last()
    {
        let rest: Vec<&str> = last
            .iter()
            .skip(1)
            .filter_map(|t| match t {
                Token::Word(w) => Some(*w),
                _ => None,
            })
            .collect();
        let text = rest.join(" ");
        if let Some(ms) = crate::date::parse(&text) {
            hop.date_ms = Some(ms);
            hop.date_text = text;
        }
    }
    if let Some(by) = clause("by") {
        // A host name or an address literal; anything else (an address
        // `user@host` in a forged line) is no receiving host.
        hop.by = by
            .iter()
            .find_map(|t| match t {
                Token::Word(w) => Some(unquote(w).to_string()),
                _ => None,
            })
            .filter(|b| hostish(b) || ip_in(b).is_some())
            .unwrap_or_default();
    }
    if let Some(with) = clause("with") {
        let words: Vec<&str> = with
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(*w),
                _ => None,
            })
            .collect();
        hop.with = match words.as_slice() {
            ["Microsoft", next, ..] => {
                format!("Microsoft {}", next.split('(').next().unwrap_or(""))
            }
            [first, ..] => unquote(first).to_string(),
            [] => String::new(),
        };
    }
    if !late_id.is_empty() {
        hop.id = late_id.split_whitespace().next().unwrap_or("").to_string();
    }
    if let Some(id) = clause("id") {
        hop.id = id
            .iter()
            .find_map(|t| match t {
                Token::Word(w) => Some(unquote(w).to_string()),
                _ => None,
            })
            .unwrap_or_default();
    }
    if let Some(f) = clause("for") {
        hop.for_ = f
            .iter()
            .find_map(|t| match t {
                Token::Word(w) => Some(unquote(w).to_string()),
                _ => None,
            })
            .unwrap_or_default();
    }
    read_from(clause("from").unwrap_or(&[]), &lower, &mut hop);
    // XMail: `… for <rcpt> from <sender>`: a second from clause.
    if let Some((_, words)) = parts.iter().filter(|(k, _)| *k == "from").nth(1)
        && let Some(Token::Word(w)) = words.first()
        && w.contains('@')
    {
        hop.envfrom = unquote(w).to_string();
    }
    // envelope-from (or -sender), anywhere in a comment.
    let key = ["envelope-from", "envelope-sender"]
        .into_iter()
        .find_map(|k| lower.find(k).map(|p| (p, k.len())));
    if let Some((p, len)) = key {
        let rest = &value[p + len..];
        let rest = rest.trim_start_matches([' ', '=', '\t']);
        let end = rest
            .find(['>', ')', ',', ' ', ';'])
            .map_or(rest.len(), |e| e + usize::from(rest[e..].starts_with('>')));
        hop.envfrom = unquote(&rest[..end]).to_string();
    }
    // TIS smtpd: `from rdns(ip), claiming to be "helo" via SMTP`; without
    // the claim no HELO is recorded.
    if let Some(p) = lower.find("claiming to be ") {
        hop.helo = unquote(value[p + 15..].split_whitespace().next().unwrap_or("")).to_string();
    } else if lower.contains(" via smtp by ")
        && let Some(Token::Word(w)) = clause("from").and_then(|f| f.first())
        && value.contains(&format!("{w}("))
    {
        hop.helo.clear();
    }
    read_tls(value, &lower, &mut hop);
    read_auth(value, &lower, &mut hop);
    // A web client (webmail submitting by HTTP) says no HELO.
    if hop.auth.starts_with("HTTP") {
        hop.helo.clear();
    }
    if let Some(why) = local(&lower, &hop) {
        return Parsed::Local(why, hop);
    }
    Parsed::Relay(hop)
}

/// What the comments of a `from` clause said.
#[derive(Default)]
struct FromNotes {
    helo: Option<String>,
    rdns: Option<String>,
    /// The address found in a comment.
    ip: Option<IpAddr>,
    /// qmail's form: `from rdns (HELO helo) (ident@ip)`.
    qmail: bool,
    /// CommuniGate's `([ip] verified)`: the first word was verified.
    verified: bool,
    /// A lone name in parentheses before a bracketed address (Exim's
    /// `from rdns (helo) [ip]`).
    paren_name: Option<String>,
}

/// Whether a name could be a reverse DNS name (a fully qualified name,
/// or `localhost`).
fn fqdn(s: &str) -> bool {
    hostish(s) && (s.contains('.') || s.eq_ignore_ascii_case("localhost"))
}

/// The `from` clause: HELO name, reverse DNS name, address, ident.
fn read_from(from: &[Token<'_>], lower: &str, hop: &mut Hop) {
    // The first word: HELO (Postfix, Sendmail, Exchange) or the reverse
    // name (qmail, Exim), decided below; or an address.
    let first = match from.first() {
        Some(Token::Word(w)) => Some(*w),
        _ => None,
    };
    let mut first_name = String::new();
    let mut first_ip = None;
    let mut first_literal = String::new();
    if let Some(w) = first {
        match ip_in(w) {
            Some(ip) => {
                first_ip = Some(ip);
                if w.starts_with('[') {
                    first_literal = unquote(w).to_string();
                } else {
                    first_name = w.to_string();
                }
            }
            None => first_name = unquote(w).to_string(),
        }
    }
    let mut notes = FromNotes::default();
    let mut bracket_ip = None;
    for (i, t) in from.iter().enumerate().skip(usize::from(first.is_some())) {
        match t {
            Token::Word(w) => {
                if let Some(ip) = ip_in(w) {
                    bracket_ip.get_or_insert(ip);
                } else if let Some(h) = w.strip_prefix("helo=") {
                    notes.helo = Some(unquote(h).to_string());
                }
            }
            Token::Comment(c) => {
                let before_bracket = bracket_ip.is_none()
                    && from[i + 1..]
                        .iter()
                        .any(|t| matches!(t, Token::Word(w) if ip_in(w).is_some()));
                read_from_comment(c, before_bracket, hop, &mut notes)
            }
        }
    }
    let exim = lower.contains("(exim ") || lower.contains("exim 4") || lower.contains("exim 3");
    // The client's address: the one the receiver wrote in a comment or
    // after the name; the first word's only when there is no other (it
    // is then what the client said in HELO, Sendmail's `from [10.0.0.1]
    // (rdns [real ip])`).
    hop.ip = notes.ip.or(bracket_ip).or(first_ip);
    let first_is_helo_literal = !first_literal.is_empty();
    if notes.qmail {
        // qmail: the first word is the reverse name; without a HELO
        // comment, the HELO was the same.
        let rdns = if fqdn(&first_name) || (first_ip.is_some() && !first_is_helo_literal) {
            first_name.clone()
        } else {
            String::new()
        };
        hop.helo = notes.helo.unwrap_or_else(|| {
            if first_is_helo_literal {
                first_literal.clone()
            } else if first_name.eq_ignore_ascii_case("unknown") || first_ip.is_some() {
                String::new()
            } else {
                first_name.clone()
            }
        });
        hop.rdns = rdns;
    } else if (bracket_ip.is_some() || exim) && notes.rdns.is_none() && !first_name.is_empty() {
        // Exim: `from rdns (helo) [ip]` or `from rdns ([ip] helo=x)`
        // (the HELO omitted when it equals the name).
        hop.rdns = if fqdn(&first_name) {
            first_name.clone()
        } else {
            String::new()
        };
        hop.helo = notes.helo.or(notes.paren_name).unwrap_or(first_name);
    } else {
        if notes.verified && notes.rdns.is_none() && fqdn(&first_name) {
            notes.rdns = Some(first_name.clone());
        }
        hop.helo = notes.helo.unwrap_or(if first_is_helo_literal {
            first_literal
        } else if first_ip.is_some() && notes.ip.is_none() && bracket_ip.is_none() {
            // `from 1.2.3.4 by …`: an address, not a name the client gave.
            String::new()
        } else {
            first_name
        });
        hop.rdns = notes.rdns.filter(|r| fqdn(r)).unwrap_or_default();
    }
    // Gmail writes the reverse name fully qualified (`host.example.`).
    if hop.rdns.ends_with('.') {
        hop.rdns.pop();
    }
}

/// One comment of the `from` clause. `before_bracket`: a bracketed
/// address follows it outside the comment.
fn read_from_comment(c: &str, before_bracket: bool, hop: &mut Hop, notes: &mut FromNotes) {
    let words: Vec<&str> = c.split_ascii_whitespace().collect();
    let lower = c.to_ascii_lowercase();
    // `(HELO name)`, `(EHLO name)`, `(LHLO name)`, possibly empty; inside
    // CommuniGate's `(account u@d HELO name)`.
    if let Some(p) = words
        .iter()
        .position(|w| matches!(w.to_ascii_uppercase().as_str(), "HELO" | "EHLO" | "LHLO"))
    {
        notes.helo = Some(
            words
                .get(p + 1)
                .map(|h| unquote(h).to_string())
                .unwrap_or_default(),
        );
        notes.qmail = !lower.starts_with("account ");
        return;
    }
    // ecelerity/Exim: `helo=name`.
    for w in &words {
        if let Some(h) = w.strip_prefix("helo=") {
            notes.helo = Some(unquote(h).to_string());
        }
    }
    if words.iter().any(|w| w.eq_ignore_ascii_case("verified")) {
        notes.verified = true;
    }
    if let [one] = words.as_slice()
        && ip_in(one).is_none()
        && hostish(one)
    {
        // Exim: `(helo)` before `[ip]` outside the comment; after it,
        // an ident, which is not the HELO.
        if before_bracket {
            notes.paren_name = Some(one.to_string());
        }
        return;
    }
    for (i, w) in words.iter().enumerate() {
        // `user@host` or `user@1.2.3.4`: ident.
        let (ident, rest) = match w.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() && !w.starts_with('[') => (Some(u), r),
            _ => (None, *w),
        };
        if let Some(ip) = ip_in(rest) {
            if notes.ip.is_none() {
                notes.ip = Some(ip);
                if !w.starts_with('[') && !rest.contains(':') && words.len() == 1 {
                    // qmail writes the address bare in parentheses.
                    notes.qmail = true;
                }
            }
            if let Some(u) = ident {
                hop.ident = u.to_string();
            }
            // Postfix/Sendmail: `(rdns [ip])`: the word before the address.
            if i > 0 && notes.rdns.is_none() {
                let before = words[i - 1];
                let before = before.rsplit_once('@').map_or(before, |(u, h)| {
                    hop.ident = u.to_string();
                    h
                });
                if hostish(before) && ip_in(before).is_none() {
                    notes.rdns = Some(before.to_string());
                }
            }
            continue;
        }
        if let Some(u) = ident
            && hostish(rest)
            && words.get(i + 1).and_then(|n| ip_in(n)).is_some()
        {
            // `(user@rdns [ip])`
            hop.ident = u.to_string();
            if notes.rdns.is_none() {
                notes.rdns = Some(rest.to_string());
            }
        }
    }
}

/// TLS as MTAs record it: Postfix `(using TLSv1.3 with cipher X …)`,
/// Gmail/Exchange `(version=TLS1_3 cipher=X bits=…)`, Exim `with esmtps
/// (TLS1.2) tls X`, postamt `with ESMTPS (TLSv1_3 X)`.
fn read_tls(value: &str, lower: &str, hop: &mut Hop) {
    let word_after = |key: &str| -> Option<String> {
        let p = lower.find(key)?;
        let rest = &value[p + key.len()..];
        let w = rest
            .trim_start()
            .split(|c: char| c.is_whitespace() || c == ')' || c == ';' || c == ',')
            .next()?;
        (!w.is_empty()).then(|| w.to_string())
    };
    if let Some(v) = word_after("using ") {
        let cipher = word_after("with cipher ").unwrap_or_default();
        if v.to_ascii_lowercase().starts_with("tls") || v.to_ascii_lowercase().starts_with("ssl") {
            hop.tls = format!("{v} {cipher}").trim().to_string();
            return;
        }
    }
    if let Some(v) = word_after("version=") {
        let cipher = word_after("cipher=").unwrap_or_default();
        hop.tls = format!("{v} {cipher}").trim().to_string();
        return;
    }
    if let Some(p) = lower.find(" tls ")
        && lower[..p].contains("esmtps")
    {
        let cipher = value[p + 5..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches([';', ')']);
        let version = lower
            .find("(tls")
            .map(|q| value[q + 1..].split(')').next().unwrap_or(""))
            .unwrap_or("");
        hop.tls = format!("{version} {cipher}").trim().to_string();
        return;
    }
    // postamt: `with ESMTPS (TLSv1_3 TLS13_AES_256_GCM_SHA384)`.
    if let Some(p) = lower.find("(tlsv") {
        let inner = value[p + 1..].split(')').next().unwrap_or("");
        hop.tls = inner.trim().to_string();
    }
}

fn read_auth(value: &str, lower: &str, hop: &mut Hop) {
    let with = hop.with.to_ascii_uppercase();
    // RFC 3848: ESMTPA, ESMTPSA, LMTPA, LMTPSA; webmail submits by HTTP.
    if with.ends_with("SA") || with.ends_with("MTPA") || with.starts_with("HTTP") || with == "ASMTP"
    {
        hop.auth = with;
        return;
    }
    if lower.contains("(via http)") {
        hop.auth = "HTTP".into();
        return;
    }
    // Sendmail `(authenticated bits=0)`, Critical Path `(authenticated as
    // u)`, `(AUTH: LOGIN u)`, CommuniGate `(account u)`, SquirrelMail.
    if [
        "(authenticated",
        "(auth:",
        "authenticated user",
        "(account ",
    ]
    .iter()
    .any(|k| lower.contains(k))
    {
        hop.auth = "authenticated".into();
    }
    if let Some(p) = lower.find("authenticated sender:") {
        let rest = &value[p + "authenticated sender:".len()..];
        hop.auth = rest
            .split(|c: char| c == ')' || c.is_whitespace())
            .find(|w| !w.is_empty())
            .unwrap_or("")
            .to_string();
    }
}

/// Why a field records no relay, if it does not.
fn local(lower: &str, hop: &Hop) -> Option<&'static str> {
    let with = hop.with.to_ascii_lowercase();
    if lower.contains("fetchmail") && matches!(with.as_str(), "imap" | "pop3" | "odmr" | "etrn") {
        return Some("a fetchmail pickup from a mailbox");
    }
    if with.contains("qmail-scanner") || with.contains("spamassassin") || with.contains("scanned") {
        return Some("a content scanner's pass");
    }
    if lower.contains("invoked by") || lower.contains("invoked from network") {
        return Some("a local qmail hand-over");
    }
    if lower.starts_with("from mail pickup service") {
        return Some("a local pickup");
    }
    if hop.ip.is_none() {
        return Some("no client address recorded");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(s: &str) -> Hop {
        match parse(s) {
            Parsed::Relay(h) => h,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn rfc5321_4_4_postfix_and_postamt_fields() {
        let h = relay(
            "from mail.example.org (mail.example.org [192.0.2.7])\r\n\tby mx.example.net (Postfix) with ESMTPS id 4ABC12\r\n\tfor <bob@example.net>; Thu, 26 Nov 2026 12:00:02 +0000",
        );
        assert_eq!(h.ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(
            (h.helo.as_str(), h.rdns.as_str()),
            ("mail.example.org", "mail.example.org")
        );
        assert_eq!(
            (h.by.as_str(), h.with.as_str(), h.id.as_str()),
            ("mx.example.net", "ESMTPS", "4ABC12")
        );
        assert_eq!(h.for_, "bob@example.net");
        assert_eq!(h.date_ms, Some(1_795_694_402_000));
        let h = relay(
            "from client.test (unknown [IPv6:2001:db8::5]) by mail.test (postamt) with ESMTPS (TLSv1_3 TLS13_AES_256_GCM_SHA384) id 01J; Sat, 5 Dec 2026 14:00:00 +0000",
        );
        assert_eq!(h.ip, Some("2001:db8::5".parse().unwrap()));
        assert_eq!(h.rdns, "");
        assert_eq!(h.tls, "TLSv1_3 TLS13_AES_256_GCM_SHA384");
    }

    #[test]
    fn odd_addresses() {
        assert_eq!(
            ip_in("[192.0.2.1]:2525"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(ip_in("[10.0.8.6.13219]"), Some("10.0.8.6".parse().unwrap()));
        assert_eq!(
            ip_in("[::ffff:64.235.238.165]"),
            Some("64.235.238.165".parse().unwrap())
        );
        assert_eq!(ip_in("[fe80::1%eth0]"), Some("fe80::1".parse().unwrap()));
        assert_eq!(
            ip_in("[IPv6:2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(ip_in("mail.example.org"), None);
        assert_eq!(ip_in("[Masked]"), None);
    }

    #[test]
    fn local_hops_are_not_relays() {
        for s in [
            "(qmail 10681 invoked by uid 404); 14 Nov 2003 08:05:52 -0000",
            "from mail pickup service by hotmail.com with Microsoft SMTPSVC; Tue, 16 Mar 2004 18:12:31 -0800",
            "from localhost [127.0.0.1] by localhost with IMAP (fetchmail-6.2.4) for z@localhost (single-drop); Mon, 08 Mar 2004 16:13:23 -0800 (PST)",
            "by mx.example.net (Postfix, from userid 1000) id 1234; Thu, 26 Nov 2026 12:00:00 +0000",
        ] {
            assert!(matches!(parse(s), Parsed::Local(..)), "{s}");
        }
    }

    #[test]
    fn hostile_fields_are_bounded() {
        let long = format!(
            "from {} by x; Thu, 1 Jan 1970 00:00:00 +0000",
            "(".repeat(100_000)
        );
        let _ = parse(&long);
        let _ = parse("");
        let _ = parse(";;;;");
        let _ = parse("from \u{fffd}\u{fffd} ([1.2.3.4]) by ü; Mon, 1 Jan 0000 00:00:00 +0000");
        let h = relay("from x ([1.2.3.4]) by y; Fri, 31 Dec 9999 23:59:59 +0000");
        assert!(h.date_ms.is_some());
    }
}
