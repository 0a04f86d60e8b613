//! The lexical layer of the command parser (RFC 9051 §9, RFC 3501 §9):
//! atoms, numbers, quoted strings, literals (RFC 9051 §4.3, RFC 7888
//! LITERAL+, RFC 3516 literal8), astrings, flags, dates, parenthesised
//! lists; and the nesting bound every list and search key goes through
//! ([`MAX_DEPTH`]).

use super::{FlagName, MAX_DEPTH, parse_date, parse_date_time};
use crate::sequence::SequenceSet;
use crate::status::Code;

/// A parser over one framed command.
pub(super) struct Parser<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) depth: usize,
    /// A response code for the `BAD` (`BADCHARSET`), set where the error
    /// that needs it is found.
    pub(super) code: Option<Code>,
}

/// A parse step: the error is the reason sent back in the tagged `BAD`.
pub(super) type R<T> = Result<T, String>;

pub(super) fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

pub(super) fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

pub(super) fn is_list_char(b: u8) -> bool {
    is_atom_char(b) || matches!(b, b'%' | b'*' | b']')
}

impl<'a> Parser<'a> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn expect(&mut self, b: u8) -> R<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(match b {
                b' ' => "expected a space".into(),
                _ => format!("expected {:?}", b as char),
            })
        }
    }

    pub(super) fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    pub(super) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `word` case-insensitively if it comes next as a whole token.
    pub(super) fn eat_word(&mut self, word: &str) -> bool {
        let end = self.pos + word.len();
        if self.buf.len() >= end
            && self.buf[self.pos..end].eq_ignore_ascii_case(word.as_bytes())
            && self.buf.get(end).is_none_or(|&b| !is_atom_char(b))
        {
            self.pos = end;
            true
        } else {
            false
        }
    }

    pub(super) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    pub(super) fn atom(&mut self) -> R<String> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err("expected an atom".into());
        }
        Ok(String::from_utf8_lossy(a).into_owned())
    }

    pub(super) fn number(&mut self) -> R<u64> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 19 {
            return Err("expected a number".into());
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "number too large".into())
    }

    pub(super) fn number32(&mut self) -> R<u32> {
        u32::try_from(self.number()?).map_err(|_| "number too large".into())
    }

    /// `{n}CRLF` or `{n+}CRLF` followed by n octets (RFC 9051 §4.3, RFC
    /// 7888); `~{n}` (RFC 3516 literal8) too.
    pub(super) fn literal(&mut self) -> R<Vec<u8>> {
        self.eat(b'~');
        self.expect(b'{')?;
        let n = self.number()? as usize;
        self.eat(b'+');
        self.expect(b'}')?;
        if !self.buf[self.pos..].starts_with(b"\r\n") {
            return Err("literal must be followed by CRLF".into());
        }
        self.pos += 2;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or("literal shorter than announced")?;
        let v = self.buf[self.pos..end].to_vec();
        self.pos = end;
        Ok(v)
    }

    pub(super) fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return Err("bad escape in quoted string".into()),
                    }
                }
                Some(0) => return Err("NUL in quoted string".into()),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    pub(super) fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') | Some(b'~') => self.literal(),
            _ => Err("expected a string".into()),
        }
    }

    pub(super) fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    Err("expected a string or atom".into())
                } else {
                    Ok(a.to_vec())
                }
            }
        }
    }

    pub(super) fn nstring_or_nil(&mut self) -> R<Option<String>> {
        if self.eat_word("NIL") {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&self.string()?).into_owned()))
    }

    pub(super) fn list_mailbox(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let a = self.take_while(is_list_char);
                if a.is_empty() {
                    Err("expected a mailbox pattern".into())
                } else {
                    Ok(a.to_vec())
                }
            }
        }
    }

    pub(super) fn open(&mut self) -> R<()> {
        self.expect(b'(')?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("too deeply nested".into());
        }
        Ok(())
    }

    pub(super) fn close(&mut self) -> R<()> {
        self.expect(b')')?;
        self.depth -= 1;
        Ok(())
    }

    pub(super) fn seqset(&mut self) -> R<SequenceSet> {
        let s = self.take_while(|b| b.is_ascii_digit() || matches!(b, b':' | b',' | b'*' | b'$'));
        SequenceSet::parse(s).map_err(|e| e.to_string())
    }

    pub(super) fn flag(&mut self) -> R<FlagName> {
        if self.eat(b'\\') {
            if self.eat(b'*') {
                return Ok("\\*".into());
            }
            return Ok(format!("\\{}", self.atom()?));
        }
        self.atom()
    }

    pub(super) fn flag_list(&mut self) -> R<Vec<FlagName>> {
        self.open()?;
        let mut out = Vec::new();
        if !self.eat(b')') {
            loop {
                out.push(self.flag()?);
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        }
        self.depth -= 1;
        Ok(out)
    }

    /// `"dd-Mon-yyyy"` (search) as days since the epoch.
    pub(super) fn date(&mut self) -> R<i64> {
        let quoted = self.eat(b'"');
        let d = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-');
        if quoted {
            self.expect(b'"')?;
        }
        parse_date(d).ok_or_else(|| "bad date (expected dd-Mon-yyyy)".into())
    }

    /// `"dd-Mon-yyyy hh:mm:ss +zzzz"` (APPEND) as seconds since the epoch.
    pub(super) fn date_time(&mut self) -> R<i64> {
        let s = self.quoted()?;
        parse_date_time(&s).ok_or_else(|| "bad date-time".into())
    }

    /// Runs `f` one level deeper (NOT and OR nest without parentheses).
    pub(super) fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("too deeply nested".into());
        }
        let r = f(self);
        self.depth -= 1;
        r
    }

    pub(super) fn astring_lossy(&mut self) -> R<String> {
        Ok(String::from_utf8_lossy(&self.astring()?).into_owned())
    }
}
