//! An SPF record parsed (RFC 7208 §4.6.1, §5, §6, §7.1): the whole record
//! is checked before anything is evaluated, so that a syntax error
//! anywhere is a "permerror" (§4.6).

use std::net::{Ipv4Addr, Ipv6Addr};

/// What a matching mechanism yields (RFC 7208 §4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    All,
    Include(MacroString),
    A {
        domain: Option<MacroString>,
        v4: u8,
        v6: u8,
    },
    Mx {
        domain: Option<MacroString>,
        v4: u8,
        v6: u8,
    },
    Ptr(Option<MacroString>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(MacroString),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub qualifier: Qualifier,
    pub mechanism: Mechanism,
    /// The term as written, for the verdict's reason.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub directives: Vec<Directive>,
    pub redirect: Option<MacroString>,
    pub exp: Option<MacroString>,
}

/// A macro-string (RFC 7208 §7.1): literals and macros, expanded later.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MacroString(pub Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    Macro {
        letter: char,
        /// Upper-case letter: the value is URL-escaped (§7.3).
        escape: bool,
        keep: Option<usize>,
        reverse: bool,
        delimiters: String,
    },
}

/// Whether `txt` is an SPF version 1 record (§4.5): "v=spf1" alone or
/// followed by a space, in any case.
pub fn is_spf1(txt: &str) -> bool {
    let b = txt.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"v=spf1") && (b.len() == 6 || b[6] == b' ')
}

/// Parses a record selected by [`is_spf1`]. The error says what is wrong.
pub fn parse(txt: &str) -> Result<Record, String> {
    if !txt.is_ascii() {
        return Err("the record is not 7-bit ASCII (RFC 7208 §3.1)".into());
    }
    if !is_spf1(txt) {
        return Err("not an SPF version 1 record (RFC 7208 §4.5)".into());
    }
    let mut record = Record::default();
    for term in txt[6..].split(' ').filter(|t| !t.is_empty()) {
        if let Some((name, value)) = modifier(term) {
            let value = macro_string(value, false)?;
            if name.eq_ignore_ascii_case("redirect") {
                if record.redirect.is_some() {
                    return Err("two redirect= modifiers (RFC 7208 §6)".into());
                }
                domain_end(&value, term)?;
                record.redirect = Some(value);
            } else if name.eq_ignore_ascii_case("exp") {
                if record.exp.is_some() {
                    return Err("two exp= modifiers (RFC 7208 §6)".into());
                }
                domain_end(&value, term)?;
                record.exp = Some(value);
            }
            // Unknown modifiers are ignored (§6), once their syntax holds.
            continue;
        }
        record.directives.push(directive(term)?);
    }
    Ok(record)
}

/// `name=value` when `term` is a modifier: name = ALPHA *( ALPHA / DIGIT /
/// "-" / "_" / "." ).
fn modifier(term: &str) -> Option<(&str, &str)> {
    let end = term
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(term.len());
    if term[end..].starts_with('=') && term.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some((&term[..end], &term[end + 1..]))
    } else {
        None
    }
}

fn directive(term: &str) -> Result<Directive, String> {
    let (qualifier, rest) = match term.as_bytes()[0] {
        b'+' => (Qualifier::Pass, &term[1..]),
        b'-' => (Qualifier::Fail, &term[1..]),
        b'~' => (Qualifier::SoftFail, &term[1..]),
        b'?' => (Qualifier::Neutral, &term[1..]),
        _ => (Qualifier::Pass, term),
    };
    let end = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, args) = (rest[..end].to_ascii_lowercase(), &rest[end..]);
    let unknown = || format!("unknown mechanism {term:?} (RFC 7208 §5)");
    let spec = |args: &str| -> Result<MacroString, String> {
        let value = args
            .strip_prefix(':')
            .ok_or_else(|| format!("{term:?} needs a domain"))?;
        let m = macro_string(value, false)?;
        domain_end(&m, term)?;
        Ok(m)
    };
    let mechanism = match name.as_str() {
        "all" if args.is_empty() => Mechanism::All,
        "include" => Mechanism::Include(spec(args)?),
        "exists" => Mechanism::Exists(spec(args)?),
        "ptr" if args.is_empty() => Mechanism::Ptr(None),
        "ptr" => Mechanism::Ptr(Some(spec(args)?)),
        "a" | "mx" => {
            let (domain_part, v4, v6) = dual_cidr(args, term)?;
            let domain = match domain_part {
                "" => None,
                d => Some(spec(d)?),
            };
            if name == "a" {
                Mechanism::A { domain, v4, v6 }
            } else {
                Mechanism::Mx { domain, v4, v6 }
            }
        }
        "ip4" => {
            let (ip, len) = network(args, 32, term)?;
            Mechanism::Ip4(ip, len)
        }
        "ip6" => {
            let (ip, len) = network(args, 128, term)?;
            Mechanism::Ip6(ip, len)
        }
        _ => return Err(unknown()),
    };
    Ok(Directive {
        qualifier,
        mechanism,
        text: term.to_string(),
    })
}

/// `:address[/prefix]` of ip4 or ip6 (§5.6): the address and the prefix
/// length (`max` when none is given).
fn network<T: std::str::FromStr>(args: &str, max: u8, term: &str) -> Result<(T, u8), String> {
    let value = args
        .strip_prefix(':')
        .ok_or_else(|| format!("{term:?} needs an address"))?;
    let (addr, len) = match value.split_once('/') {
        Some((a, l)) => (a, cidr(l, max, term)?),
        None => (value, max),
    };
    let ip = addr
        .parse::<T>()
        .map_err(|_| format!("{term:?}: not an IP address of its family"))?;
    Ok((ip, len))
}

/// Splits `[:domain][/v4][//v6]` into the domain part and the prefix
/// lengths (defaults 32 and 128).
fn dual_cidr<'a>(args: &'a str, term: &str) -> Result<(&'a str, u8, u8), String> {
    let (mut rest, mut v4, mut v6) = (args, 32, 128);
    if let Some(i) = rest.rfind("//")
        && is_digits(&rest[i + 2..])
    {
        v6 = cidr(&rest[i + 2..], 128, term)?;
        rest = &rest[..i];
    }
    if let Some(i) = rest.rfind('/')
        && is_digits(&rest[i + 1..])
    {
        v4 = cidr(&rest[i + 1..], 32, term)?;
        rest = &rest[..i];
    }
    // What is left is ":" domain-spec, which may hold any visible
    // character but "%" outside macros (§7.1: "a:foo:bar/baz.example.com").
    Ok((rest, v4, v6))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A prefix length: digits without a leading zero, at most `max`.
fn cidr(s: &str, max: u8, term: &str) -> Result<u8, String> {
    let bad = || format!("{term:?}: bad prefix length /{s} (RFC 7208 §5.6)");
    if !is_digits(s) || (s.len() > 1 && s.starts_with('0')) {
        return Err(bad());
    }
    match s.parse::<u8>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(bad()),
    }
}

/// Parses a macro-string; `explain` allows the letters c, r and t and
/// spaces (an explain-string, §7.1).
pub fn macro_string(s: &str, explain: bool) -> Result<MacroString, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '%' {
            if !(c.is_ascii_graphic() || (explain && c == ' ')) {
                return Err(format!("{c:?} is not allowed in {s:?} (RFC 7208 §7.1)"));
            }
            literal.push(c);
            continue;
        }
        match chars.next() {
            Some((_, '%')) => literal.push('%'),
            Some((_, '_')) => literal.push(' '),
            Some((_, '-')) => literal.push_str("%20"),
            Some((_, '{')) => {
                let close = s[i..]
                    .find('}')
                    .ok_or_else(|| format!("unclosed macro in {s:?}"))?;
                let body = &s[i + 2..i + close];
                while chars.peek().is_some_and(|&(j, _)| j <= i + close) {
                    chars.next();
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(macro_expand(body, explain)?);
            }
            _ => return Err(format!("bad macro in {s:?} (RFC 7208 §7.1)")),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(MacroString(pieces))
}

fn macro_expand(body: &str, explain: bool) -> Result<Piece, String> {
    let bad = || format!("bad macro %{{{body}}} (RFC 7208 §7.1)");
    let mut chars = body.chars();
    let letter = chars.next().ok_or_else(bad)?;
    let lower = letter.to_ascii_lowercase();
    let allowed = match lower {
        's' | 'l' | 'o' | 'd' | 'i' | 'p' | 'h' | 'v' => true,
        'c' | 'r' | 't' => explain,
        _ => false,
    };
    if !allowed {
        return Err(bad());
    }
    let rest = chars.as_str();
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let keep = match &rest[..digits_end] {
        "" => None,
        d => match d.parse::<usize>() {
            Ok(n) if n > 0 => Some(n.min(128)),
            _ => return Err(bad()),
        },
    };
    let mut rest = &rest[digits_end..];
    let reverse = rest.starts_with(['r', 'R']);
    if reverse {
        rest = &rest[1..];
    }
    if !rest.chars().all(|c| ".-+,/_=".contains(c)) {
        return Err(bad());
    }
    Ok(Piece::Macro {
        letter: lower,
        escape: letter.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters: rest.to_string(),
    })
}

/// A domain-spec ends in a macro or in "." toplabel ["."] (§7.1): a
/// literal ending in an all-numeric label is not a domain.
fn domain_end(m: &MacroString, term: &str) -> Result<(), String> {
    let bad = || format!("{term:?}: the domain does not end in a top-level label (RFC 7208 §7.1)");
    match m.0.last() {
        None => Err(bad()),
        Some(Piece::Macro { .. }) => Ok(()),
        Some(Piece::Literal(l)) => {
            let l = l.strip_suffix('.').unwrap_or(l);
            let Some((before, top)) = l.rsplit_once('.') else {
                // A literal label right after a macro ("%{d}com") has no
                // dot of its own: not a domain-end either.
                return Err(bad());
            };
            let _ = before;
            if toplabel(top) { Ok(()) } else { Err(bad()) }
        }
    }
}

/// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum
/// / "-" ) alphanum ): not all digits, no hyphen at either end.
fn toplabel(l: &str) -> bool {
    !l.is_empty()
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.bytes().all(|b| b.is_ascii_digit())
        && !l.starts_with('-')
        && !l.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7208_4_5_version_selection() {
        assert!(is_spf1("v=spf1"));
        assert!(is_spf1("V=SPF1 -all"));
        assert!(!is_spf1("v=spf10 -all"));
        assert!(!is_spf1("v=spf1-all"));
    }

    #[test]
    fn rfc7208_terms() {
        let r = parse(
            "v=spf1 ip4:192.0.2.0/24 -a:mail.example.org/28//64 ~mx ?all exp=why.%{d} foo=bar",
        )
        .unwrap();
        assert_eq!(r.directives.len(), 4);
        assert_eq!(
            r.directives[0].mechanism,
            Mechanism::Ip4("192.0.2.0".parse().unwrap(), 24)
        );
        assert!(matches!(
            r.directives[1].mechanism,
            Mechanism::A { v4: 28, v6: 64, .. }
        ));
        assert_eq!(r.directives[2].qualifier, Qualifier::SoftFail);
        assert!(r.exp.is_some());
        for bad in [
            "v=spf1 ip4:192.0.2.0/33",
            "v=spf1 a:foo.com/024",
            "v=spf1 foo:bar",
            "v=spf1 a:foo.123",
            "v=spf1 redirect=a.example redirect=b.example",
            "v=spf1 include:%{z}.example",
            "v=spf1 all:foo",
            "v=spf1 exists:%{c}.example",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
