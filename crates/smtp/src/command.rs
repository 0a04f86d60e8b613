//! SMTP command lines (RFC 5321 §4.1, with the ESMTP parameters of RFC 1870
//! SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 3461 DSN, RFC 4954 AUTH and
//! RFC 3030 BDAT) parsed into typed commands. Sans-IO.
//!
//! Hand-typed forms are accepted as Sendmail and Postfix accept them:
//! lowercase verbs, `MAIL FROM: user@host` with a space and no angle
//! brackets. Source routes (`<@a,@b:user@host>`) are accepted and ignored
//! (RFC 5321 §4.1.2, Appendix C). Quoted local parts keep their quotes.

use postamt_wire::Secret;

/// A mailbox `local@domain`. `local` is kept as written (a quoted local part
/// with its quotes), so it can be relayed unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub local: String,
    pub domain: String,
}

impl Mailbox {
    /// `local@domain` as written.
    pub fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
    /// The local part without quoting (RFC 5321 §4.1.2 Quoted-string).
    pub fn local_unquoted(&self) -> String {
        match self
            .local
            .strip_prefix('"')
            .and_then(|l| l.strip_suffix('"'))
        {
            Some(inner) => {
                let mut out = String::new();
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        if let Some(n) = chars.next() {
                            out.push(n);
                        }
                    } else {
                        out.push(c);
                    }
                }
                out
            }
            None => self.local.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    /// DSN RET=FULL|HDRS
    pub ret: Option<String>,
    pub envid: Option<String>,
    /// RFC 4954 §5 AUTH=<mailbox>; accepted, not trusted.
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    /// RFC 2033 §4.1
    Lhlo(String),
    /// `None`: the null reverse-path `<>`.
    Mail {
        from: Option<Mailbox>,
        params: MailParams,
    },
    /// `Postmaster` without a domain is `Mailbox { local: "postmaster", domain: "" }`.
    Rcpt {
        to: Mailbox,
        params: RcptParams,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Help,
    Vrfy,
    Expn,
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<Secret<String>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// 500 5.5.1
    Unknown,
    /// 501 5.5.4 / 5.1.7 / 5.1.3: bad arguments
    Syntax(&'static str),
    /// 501 5.1.7 bad sender address syntax / 501 5.1.3 bad recipient
    BadAddress(&'static str),
    /// 555 5.5.4 unknown or bad MAIL/RCPT parameter (RFC 5321 §4.1.1.11)
    BadParameter(&'static str),
    /// 500 5.5.2 bare CR or LF, or a NUL, in a command line
    BadLineEnding,
}

/// Parses one command line, CRLF included. A line must end in CRLF and hold
/// no other CR, LF or NUL (smuggling defences: RFC 5321 §2.3.8).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return Err(ParseError::BadLineEnding);
    };
    if body.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ParseError::BadLineEnding);
    }
    let text = std::str::from_utf8(body).map_err(|_| ParseError::Syntax("command is not UTF-8"))?;
    let text = text.trim_end_matches([' ', '\t']);
    let (verb, rest) = match text.find([' ', '\t']) {
        Some(i) => (&text[..i], text[i..].trim_start_matches([' ', '\t'])),
        None => (text, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax("no parameters allowed"))
        }
    };
    match verb.as_str() {
        "HELO" | "EHLO" | "LHLO" => {
            let domain = rest
                .split_whitespace()
                .next()
                .ok_or(ParseError::Syntax("a domain name is required"))?;
            let d = domain.to_string();
            Ok(match verb.as_str() {
                "HELO" => Command::Helo(d),
                "EHLO" => Command::Ehlo(d),
                _ => Command::Lhlo(d),
            })
        }
        "MAIL" => {
            let arg =
                strip_keyword(rest, "FROM").ok_or(ParseError::Syntax("MAIL FROM:<address>"))?;
            let (path, params) = split_path(arg)?;
            let from = if path.is_empty() {
                None
            } else {
                Some(parse_mailbox(path, false)?)
            };
            Ok(Command::Mail {
                from,
                params: mail_params(params)?,
            })
        }
        "RCPT" => {
            let arg = strip_keyword(rest, "TO").ok_or(ParseError::Syntax("RCPT TO:<address>"))?;
            let (path, params) = split_path(arg)?;
            if path.is_empty() {
                return Err(ParseError::BadAddress("a recipient is required"));
            }
            Ok(Command::Rcpt {
                to: parse_mailbox(path, true)?,
                params: rcpt_params(params)?,
            })
        }
        "DATA" => no_args(Command::Data),
        "BDAT" => {
            let mut words = rest.split_whitespace();
            let size = words
                .next()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 18)
                .and_then(|s| s.parse().ok())
                .ok_or(ParseError::Syntax("BDAT chunk-size [LAST]"))?;
            let last = match words.next() {
                None => false,
                Some(w) if w.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(ParseError::Syntax("BDAT chunk-size [LAST]")),
            };
            if words.next().is_some() {
                return Err(ParseError::Syntax("BDAT chunk-size [LAST]"));
            }
            Ok(Command::Bdat { size, last })
        }
        "RSET" => no_args(Command::Rset),
        // RFC 5321 §4.1.1.9: NOOP may have a parameter, to be ignored.
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "HELP" => Ok(Command::Help),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => {
            let mut words = rest.split_whitespace();
            let mechanism = words
                .next()
                .ok_or(ParseError::Syntax("AUTH mechanism [initial-response]"))?
                .to_ascii_uppercase();
            let initial = words.next().map(|i| Secret::new(i.to_string()));
            if words.next().is_some() {
                return Err(ParseError::Syntax("AUTH mechanism [initial-response]"));
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(ParseError::Unknown),
    }
}

/// `FROM:` / `TO:` case-insensitively, with optional spaces around the colon
/// (`MAIL FROM: <a@b>` and `MAIL FROM:<a@b>` alike).
fn strip_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let after = rest[keyword.len()..].trim_start_matches([' ', '\t']);
    let after = after.strip_prefix(':')?;
    Some(after.trim_start_matches([' ', '\t']))
}

/// Splits `<path> params` (or `path params` without brackets).
fn split_path(arg: &str) -> Result<(&str, &str), ParseError> {
    if let Some(inner) = arg.strip_prefix('<') {
        // Find the closing '>' outside a quoted string.
        let mut quoted = false;
        let mut escape = false;
        for (i, c) in inner.char_indices() {
            if escape {
                escape = false;
                continue;
            }
            match c {
                '\\' if quoted => escape = true,
                '"' => quoted = !quoted,
                '>' if !quoted => {
                    let params = inner[i + 1..].trim_start_matches([' ', '\t']);
                    if !params.is_empty() && !inner[i + 1..].starts_with([' ', '\t']) {
                        return Err(ParseError::Syntax("a space must follow the address"));
                    }
                    return Ok((&inner[..i], params));
                }
                _ => {}
            }
        }
        Err(ParseError::BadAddress("unterminated <address>"))
    } else {
        // The hand-typed form: `MAIL FROM: user@host [params]`.
        let (path, params) = arg.split_once([' ', '\t']).unwrap_or((arg, ""));
        if path.is_empty() {
            return Err(ParseError::BadAddress("an address is required"));
        }
        Ok((path, params.trim_start_matches([' ', '\t'])))
    }
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// RFC 5321 §4.1.2 `Mailbox`, after dropping a source route.
fn parse_mailbox(path: &str, rcpt: bool) -> Result<Mailbox, ParseError> {
    let bad = if rcpt {
        "bad recipient address syntax"
    } else {
        "bad sender address syntax"
    };
    let mut path = path;
    // A-d-l ":" — the source route, ignored (RFC 5321 §4.1.2, Appendix C).
    if path.starts_with('@') {
        let colon = path.find(':').ok_or(ParseError::BadAddress(bad))?;
        path = &path[colon + 1..];
    }
    if path.len() > 512 {
        return Err(ParseError::BadAddress("address too long"));
    }
    if rcpt && path.eq_ignore_ascii_case("postmaster") {
        // RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted.
        return Ok(Mailbox {
            local: "postmaster".into(),
            domain: String::new(),
        });
    }
    let (local, domain) = if path.starts_with('"') {
        // Quoted-string local part: find its end.
        let mut escape = false;
        let mut end = None;
        for (i, c) in path.char_indices().skip(1) {
            if escape {
                escape = false;
                continue;
            }
            match c {
                '\\' => escape = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                c if c.is_control() => return Err(ParseError::BadAddress(bad)),
                _ => {}
            }
        }
        let end = end.ok_or(ParseError::BadAddress(bad))?;
        let rest = &path[end + 1..];
        let domain = rest.strip_prefix('@').ok_or(ParseError::BadAddress(bad))?;
        (&path[..=end], domain)
    } else {
        let (local, domain) = path.rsplit_once('@').ok_or(ParseError::BadAddress(bad))?;
        // Dot-string: atoms separated by single dots; no '@' inside.
        if local.is_empty()
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
            || !local.chars().all(|c| c == '.' || is_atext(c))
        {
            return Err(ParseError::BadAddress(bad));
        }
        (local, domain)
    };
    if local.len() > 256 || !valid_domain(domain) {
        return Err(ParseError::BadAddress(bad));
    }
    Ok(Mailbox {
        local: local.to_string(),
        domain: domain.to_string(),
    })
}

/// A domain name (letters, digits, hyphens, dots; UTF-8 labels allowed for
/// SMTPUTF8) or an address literal `[192.0.2.1]` / `[IPv6:…]`.
fn valid_domain(d: &str) -> bool {
    if let Some(lit) = d.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return match lit
            .strip_prefix("IPv6:")
            .or_else(|| lit.strip_prefix("ipv6:"))
        {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => lit.parse::<std::net::Ipv4Addr>().is_ok(),
        };
    }
    !d.is_empty()
        && d.len() <= 255
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        })
}

fn params(s: &str) -> impl Iterator<Item = (String, Option<&str>)> {
    s.split([' ', '\t'])
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
            None => (p.to_ascii_uppercase(), None),
        })
}

/// RFC 3461 §4: xtext (printable ASCII, `+XX` escapes).
fn valid_xtext(v: &str) -> bool {
    !v.is_empty() && v.len() <= 500 && v.bytes().all(|b| (33..=126).contains(&b) && b != b'=')
}

fn mail_params(s: &str) -> Result<MailParams, ParseError> {
    let mut p = MailParams::default();
    for (k, v) in params(s) {
        match (k.as_str(), v) {
            ("SIZE", Some(n))
                if !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()) =>
            {
                p.size = Some(n.parse().unwrap_or(u64::MAX));
            }
            ("BODY", Some(b)) => {
                p.body = Some(match b.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(ParseError::BadParameter("BODY=7BIT|8BITMIME|BINARYMIME")),
                })
            }
            ("SMTPUTF8", None) => p.smtputf8 = true,
            ("RET", Some(r))
                if r.eq_ignore_ascii_case("FULL") || r.eq_ignore_ascii_case("HDRS") =>
            {
                p.ret = Some(r.to_ascii_uppercase())
            }
            ("ENVID", Some(e)) if valid_xtext(e) && e.len() <= 100 => p.envid = Some(e.to_string()),
            ("AUTH", Some(a)) if !a.is_empty() && a.len() <= 500 => p.auth = Some(a.to_string()),
            _ => {
                return Err(ParseError::BadParameter(
                    "unknown or malformed MAIL parameter",
                ));
            }
        }
    }
    Ok(p)
}

fn rcpt_params(s: &str) -> Result<RcptParams, ParseError> {
    let mut p = RcptParams::default();
    for (k, v) in params(s) {
        match (k.as_str(), v) {
            ("NOTIFY", Some(n)) => {
                let items: Vec<String> = n.split(',').map(|x| x.to_ascii_uppercase()).collect();
                let ok = if items.iter().any(|i| i == "NEVER") {
                    items.len() == 1
                } else {
                    items
                        .iter()
                        .all(|i| matches!(i.as_str(), "SUCCESS" | "FAILURE" | "DELAY"))
                };
                if !ok {
                    return Err(ParseError::BadParameter(
                        "NOTIFY=NEVER or SUCCESS,FAILURE,DELAY",
                    ));
                }
                p.notify = Some(items.join(","));
            }
            ("ORCPT", Some(o)) if o.contains(';') && valid_xtext(o) => {
                p.orcpt = Some(o.to_string())
            }
            _ => {
                return Err(ParseError::BadParameter(
                    "unknown or malformed RCPT parameter",
                ));
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(local: &str, domain: &str) -> Mailbox {
        Mailbox {
            local: local.into(),
            domain: domain.into(),
        }
    }

    fn p(s: &str) -> Result<Command, ParseError> {
        parse(format!("{s}\r\n").as_bytes())
    }

    #[test]
    fn envelope_forms_typed_by_hand() {
        for line in [
            "MAIL FROM:<a@b.org>",
            "mail from:<a@b.org>",
            "MAIL FROM: <a@b.org>",
            "MAIL FROM: a@b.org",
            "Mail From:a@b.org",
            "MAIL FROM : <a@b.org>",
        ] {
            assert_eq!(
                p(line),
                Ok(Command::Mail {
                    from: Some(mb("a", "b.org")),
                    params: MailParams::default()
                }),
                "{line}"
            );
        }
        assert_eq!(
            p("RCPT TO: alice@postamt.test"),
            Ok(Command::Rcpt {
                to: mb("alice", "postamt.test"),
                params: RcptParams::default()
            })
        );
        assert_eq!(
            p("MAIL FROM:<>"),
            Ok(Command::Mail {
                from: None,
                params: MailParams::default()
            })
        );
        assert_eq!(
            p("rcpt to:<Postmaster>"),
            Ok(Command::Rcpt {
                to: mb("postmaster", ""),
                params: RcptParams::default()
            })
        );
    }

    #[test]
    fn parameters() {
        let c = p(
            "MAIL FROM:<a@b.org> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159 AUTH=<>",
        )
        .unwrap();
        let Command::Mail { params, .. } = c else {
            panic!()
        };
        assert_eq!(params.size, Some(1000));
        assert_eq!(params.body, Some(Body::EightBitMime));
        assert!(params.smtputf8);
        assert_eq!(params.ret.as_deref(), Some("HDRS"));
        assert_eq!(params.envid.as_deref(), Some("QQ314159"));
        let c = p("RCPT TO:<c@d.org> NOTIFY=success,failure ORCPT=rfc822;c@d.org").unwrap();
        let Command::Rcpt { params, .. } = c else {
            panic!()
        };
        assert_eq!(params.notify.as_deref(), Some("SUCCESS,FAILURE"));
        assert_eq!(params.orcpt.as_deref(), Some("rfc822;c@d.org"));
        assert_eq!(
            p("MAIL FROM:<a@b.org> FOO=1"),
            Err(ParseError::BadParameter(
                "unknown or malformed MAIL parameter"
            ))
        );
        assert!(matches!(
            p("RCPT TO:<a@b.org> NOTIFY=NEVER,SUCCESS"),
            Err(ParseError::BadParameter(_))
        ));
        assert!(matches!(
            p("MAIL FROM:<a@b.org>SIZE=1"),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn source_routes_are_ignored_and_quotes_kept() {
        assert_eq!(
            p("RCPT TO:<@relay.example,@other.example:user@local.test>"),
            Ok(Command::Rcpt {
                to: mb("user", "local.test"),
                params: RcptParams::default()
            })
        );
        let Command::Rcpt { to, .. } = p(r#"RCPT TO:<"john smith"@local.test>"#).unwrap() else {
            panic!()
        };
        assert_eq!(to.local, "\"john smith\"");
        assert_eq!(to.local_unquoted(), "john smith");
        let Command::Rcpt { to, .. } = p(r#"RCPT TO:<"user@remote.example"@local.test>"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(to.domain, "local.test");
        assert_eq!(to.local_unquoted(), "user@remote.example");
    }

    #[test]
    fn relay_disguises_parse_to_their_literal_local_part() {
        // user@remote@local: '@' is not allowed in an unquoted local part.
        assert!(matches!(
            p("RCPT TO:<user@remote.example@local.test>"),
            Err(ParseError::BadAddress(_))
        ));
        // The percent hack stays a local part with a '%' in it.
        let Command::Rcpt { to, .. } = p("RCPT TO:<user%remote.example@local.test>").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (to.local.as_str(), to.domain.as_str()),
            ("user%remote.example", "local.test")
        );
        // A bang path is a local part too.
        let Command::Rcpt { to, .. } = p("RCPT TO:<remote.example!user@local.test>").unwrap()
        else {
            panic!()
        };
        assert_eq!(to.domain, "local.test");
    }

    #[test]
    fn bad_addresses() {
        for a in [
            "RCPT TO:<>",
            "RCPT TO:<nodomain>",
            "RCPT TO:<a@>",
            "RCPT TO:<@b.org>",
            "RCPT TO:<a..b@c.org>",
            "RCPT TO:<a@b..org>",
            "RCPT TO:<a@-b.org>",
            "RCPT TO:<a@b.org",
            "MAIL FROM:<a b@c.org>",
            "RCPT TO:<\"unterminated@b.org>",
            "RCPT TO:<a@[300.1.1.1]>",
        ] {
            assert!(
                matches!(
                    p(a),
                    Err(ParseError::BadAddress(_)) | Err(ParseError::Syntax(_))
                ),
                "{a}: {:?}",
                p(a)
            );
        }
        assert!(p("RCPT TO:<a@[192.0.2.1]>").is_ok());
        assert!(p("RCPT TO:<a@[IPv6:2001:db8::1]>").is_ok());
        assert!(
            p("RCPT TO:<jörg@bücher.example>").is_ok(),
            "UTF-8 parses; the session checks SMTPUTF8"
        );
    }

    #[test]
    fn bare_line_endings_and_nul_in_commands() {
        for l in [
            &b"NOOP\n"[..],
            b"NOOP\r",
            b"NO\rOP\r\n",
            b"NO\nOP\r\n",
            b"NOOP\0\r\n",
            b"MAIL FROM:<a@b>\n\r\n",
        ] {
            assert_eq!(parse(l), Err(ParseError::BadLineEnding), "{l:?}");
        }
    }

    #[test]
    fn every_prefix_of_a_command_is_incomplete_or_an_error_never_a_command() {
        // The framing layer hands complete lines only; a prefix without CRLF
        // must never parse as a command.
        let full = b"MAIL FROM:<alice@example.org> SIZE=100 BODY=8BITMIME\r\n";
        for n in 0..full.len() {
            assert!(parse(&full[..n]).is_err(), "prefix {n} parsed");
        }
        assert!(parse(full).is_ok());
    }

    #[test]
    fn other_verbs() {
        assert_eq!(
            p("ehlo client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(
            p("HELO"),
            Err(ParseError::Syntax("a domain name is required"))
        );
        assert_eq!(
            p("BDAT 100 LAST"),
            Ok(Command::Bdat {
                size: 100,
                last: true
            })
        );
        assert_eq!(
            p("BDAT 0"),
            Ok(Command::Bdat {
                size: 0,
                last: false
            })
        );
        assert!(p("BDAT -1").is_err() && p("BDAT 1 FIRST").is_err() && p("BDAT").is_err());
        assert_eq!(p("NOOP anything"), Ok(Command::Noop));
        assert_eq!(
            p("DATA x"),
            Err(ParseError::Syntax("no parameters allowed"))
        );
        assert_eq!(p("VRFY alice"), Ok(Command::Vrfy));
        assert_eq!(p("XYZZY"), Err(ParseError::Unknown));
        let Command::Auth { mechanism, initial } = p("auth plain AGEAYg==").unwrap() else {
            panic!()
        };
        assert_eq!(
            (mechanism.as_str(), initial.unwrap().expose().as_str()),
            ("PLAIN", "AGEAYg==")
        );
    }
}
