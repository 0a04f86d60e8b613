//! IMAP command syntax (RFC 9051 §9, RFC 3501 §9) as a sans-IO parser over
//! one complete command: the line(s) and any literals, already framed by
//! [`crate::frame`]. Errors carry a reason a human can act on (they are sent
//! back in the tagged `BAD`), and the parser bounds its own recursion.

use std::fmt;

use crate::sequence::SequenceSet;
use postamt_wire::Secret;
use postamt_wire::time::{MONTHS, days_from_civil};

/// Deepest nesting of parentheses accepted (search keys, fetch lists).
pub const MAX_DEPTH: usize = 16;

/// Most messages in one MULTIAPPEND (RFC 3502).
pub const MAX_APPEND_MESSAGES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The tag, when it could be read (for the tagged BAD).
    pub tag: Option<String>,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub kind: CommandKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreMode {
    Replace,
    Add,
    Remove,
}

/// A flag as written by the client: system flags keep their backslash.
pub type FlagName = String;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Size,
    HighestModSeq,
    /// RFC 7889 §3.
    AppendLimit,
    /// RFC 9208 §4.2: messages with \Deleted, and their size.
    Deleted,
    DeletedStorage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    Capability,
    Noop,
    Logout,
    StartTls,
    Id(Option<Vec<(String, Option<String>)>>),
    Enable(Vec<String>),
    /// RFC 9051 §6.2.3. The password never shows in `Debug` (logs,
    /// panics): it is a [`Secret`].
    Login {
        user: Vec<u8>,
        password: Secret<Vec<u8>>,
    },
    /// RFC 9051 §6.2.2 with the RFC 4959 initial response (a SASL payload,
    /// so a [`Secret`] too).
    Authenticate {
        mechanism: String,
        initial: Option<Secret<String>>,
    },
    Select {
        mailbox: Vec<u8>,
        read_only: bool,
        condstore: bool,
        qresync: Option<Qresync>,
    },
    /// CREATE, with RFC 6154 `(USE (\Sent …))` attributes.
    Create {
        name: Vec<u8>,
        uses: Vec<String>,
    },
    GetQuota(Vec<u8>),
    GetQuotaRoot(Vec<u8>),
    SetQuota(Vec<u8>),
    Delete(Vec<u8>),
    Rename(Vec<u8>, Vec<u8>),
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
    List {
        reference: Vec<u8>,
        patterns: Vec<Vec<u8>>,
        /// `LSUB` (RFC 3501 §6.3.9) rather than `LIST`.
        lsub: bool,
        /// RFC 5258 selection options (upper case), RFC 6154 SPECIAL-USE.
        select: Vec<String>,
        /// RFC 5258 return options; `None` for a basic LIST.
        returns: Option<ListReturn>,
    },
    Namespace,
    Status {
        mailbox: Vec<u8>,
        items: Vec<StatusItem>,
    },
    /// APPEND, one message or several (RFC 3502 MULTIAPPEND).
    Append {
        mailbox: Vec<u8>,
        messages: Vec<AppendMessage>,
    },
    Idle,
    Check,
    Close,
    Unselect,
    Expunge {
        uids: Option<SequenceSet>,
    },
    Search {
        uid: bool,
        /// `RETURN (…)` (RFC 4731 ESEARCH, RFC 5182 SAVE); `None`: a
        /// classic `* SEARCH` response.
        ret: Option<Vec<SearchReturn>>,
        keys: Vec<SearchKey>,
    },
    /// RFC 5256 SORT.
    Sort {
        uid: bool,
        criteria: Vec<(bool, crate::sort::SortKey)>,
        keys: Vec<SearchKey>,
    },
    /// RFC 5256 THREAD; `references`: REFERENCES, else ORDEREDSUBJECT.
    Thread {
        uid: bool,
        references: bool,
        keys: Vec<SearchKey>,
    },
    Fetch {
        uid: bool,
        set: SequenceSet,
        items: Vec<FetchItem>,
        changed_since: Option<u64>,
        /// `VANISHED` modifier (RFC 7162 §3.2.6), with CHANGEDSINCE.
        vanished: bool,
    },
    Store {
        uid: bool,
        set: SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: Vec<FlagName>,
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
        /// MOVE (RFC 6851) rather than COPY.
        moving: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<FlagName>,
    pub date: Option<i64>,
    pub content: Vec<u8>,
    /// Sent as `UTF8 (~{n})` (RFC 6855 §4).
    pub utf8: bool,
}

/// LIST return options (RFC 5258 §3.2, RFC 5819 STATUS, RFC 6154).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListReturn {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    pub status: Option<Vec<StatusItem>>,
}

/// `SELECT … (QRESYNC (uidvalidity modseq [known-uids …]))`, RFC 7162 §3.2.5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
}

/// Which part of a message a `BODY[...]` fetch names (RFC 9051 §6.4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Part numbers (`1.2.3`); empty for the whole message.
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    HeaderFields { not: bool, fields: Vec<String> },
    Text,
    Mime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    Flags,
    InternalDate,
    Rfc822Size,
    Envelope,
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    BodySection {
        section: Section,
        peek: bool,
        partial: Option<(u32, u32)>,
    },
    /// RFC 3516: a part with its content-transfer-encoding undone.
    Binary {
        part: Vec<u32>,
        peek: bool,
        partial: Option<(u32, u32)>,
    },
    BinarySize {
        part: Vec<u32>,
    },
}

/// ESEARCH result options (RFC 4731 §3.1) and SAVE (RFC 5182).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Answered,
    Deleted,
    Draft,
    Flagged,
    Seen,
    Recent,
    New,
    Old,
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unseen,
    Keyword(String),
    Unkeyword(String),
    Larger(u64),
    Smaller(u64),
    /// Internal date, days since the epoch.
    Before(i64),
    On(i64),
    Since(i64),
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Header(String, String),
    Body(String),
    Text(String),
    Uid(SequenceSet),
    Seq(SequenceSet),
    ModSeq(u64),
    /// RFC 5032 WITHIN: internal date at least / less than n seconds ago.
    Older(u64),
    Younger(u64),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    And(Vec<SearchKey>),
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

type R<T> = Result<T, String>;

fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

fn is_list_char(b: u8) -> bool {
    is_atom_char(b) || matches!(b, b'%' | b'*' | b']')
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn expect(&mut self, b: u8) -> R<()> {
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

    fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `word` case-insensitively if it comes next as a whole token.
    fn eat_word(&mut self, word: &str) -> bool {
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

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    fn atom(&mut self) -> R<String> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err("expected an atom".into());
        }
        Ok(String::from_utf8_lossy(a).into_owned())
    }

    fn number(&mut self) -> R<u64> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 19 {
            return Err("expected a number".into());
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "number too large".into())
    }

    fn number32(&mut self) -> R<u32> {
        u32::try_from(self.number()?).map_err(|_| "number too large".into())
    }

    /// `{n}CRLF` or `{n+}CRLF` followed by n octets (RFC 9051 §4.3, RFC
    /// 7888); `~{n}` (RFC 3516 literal8) too.
    fn literal(&mut self) -> R<Vec<u8>> {
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

    fn quoted(&mut self) -> R<Vec<u8>> {
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

    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') | Some(b'~') => self.literal(),
            _ => Err("expected a string".into()),
        }
    }

    fn astring(&mut self) -> R<Vec<u8>> {
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

    fn nstring_or_nil(&mut self) -> R<Option<String>> {
        if self.eat_word("NIL") {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&self.string()?).into_owned()))
    }

    fn list_mailbox(&mut self) -> R<Vec<u8>> {
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

    fn open(&mut self) -> R<()> {
        self.expect(b'(')?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("too deeply nested".into());
        }
        Ok(())
    }

    fn close(&mut self) -> R<()> {
        self.expect(b')')?;
        self.depth -= 1;
        Ok(())
    }

    fn seqset(&mut self) -> R<SequenceSet> {
        let s = self.take_while(|b| b.is_ascii_digit() || matches!(b, b':' | b',' | b'*' | b'$'));
        SequenceSet::parse(s).map_err(|e| e.to_string())
    }

    fn flag(&mut self) -> R<FlagName> {
        if self.eat(b'\\') {
            if self.eat(b'*') {
                return Ok("\\*".into());
            }
            return Ok(format!("\\{}", self.atom()?));
        }
        self.atom()
    }

    fn flag_list(&mut self) -> R<Vec<FlagName>> {
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
    fn date(&mut self) -> R<i64> {
        let quoted = self.eat(b'"');
        let d = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-');
        if quoted {
            self.expect(b'"')?;
        }
        parse_date(d).ok_or_else(|| "bad date (expected dd-Mon-yyyy)".into())
    }

    /// `"dd-Mon-yyyy hh:mm:ss +zzzz"` (APPEND) as seconds since the epoch.
    fn date_time(&mut self) -> R<i64> {
        let s = self.quoted()?;
        parse_date_time(&s).ok_or_else(|| "bad date-time".into())
    }

    fn search_key(&mut self) -> R<SearchKey> {
        use SearchKey as K;
        if self.peek() == Some(b'(') {
            self.open()?;
            let keys = self.search_keys_until(b')')?;
            self.close()?;
            return Ok(K::And(keys));
        }
        if self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || b == b'*' || b == b'$')
        {
            return Ok(K::Seq(self.seqset()?));
        }
        let word = self.atom()?.to_ascii_uppercase();
        let key = match word.as_str() {
            "ALL" => K::All,
            "ANSWERED" => K::Answered,
            "DELETED" => K::Deleted,
            "DRAFT" => K::Draft,
            "FLAGGED" => K::Flagged,
            "SEEN" => K::Seen,
            "RECENT" => K::Recent,
            "NEW" => K::New,
            "OLD" => K::Old,
            "UNANSWERED" => K::Unanswered,
            "UNDELETED" => K::Undeleted,
            "UNDRAFT" => K::Undraft,
            "UNFLAGGED" => K::Unflagged,
            "UNSEEN" => K::Unseen,
            "KEYWORD" => {
                self.sp()?;
                K::Keyword(self.atom()?)
            }
            "UNKEYWORD" => {
                self.sp()?;
                K::Unkeyword(self.atom()?)
            }
            "LARGER" => {
                self.sp()?;
                K::Larger(self.number()?)
            }
            "SMALLER" => {
                self.sp()?;
                K::Smaller(self.number()?)
            }
            "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
                self.sp()?;
                let d = self.date()?;
                match word.as_str() {
                    "BEFORE" => K::Before(d),
                    "ON" => K::On(d),
                    "SINCE" => K::Since(d),
                    "SENTBEFORE" => K::SentBefore(d),
                    "SENTON" => K::SentOn(d),
                    _ => K::SentSince(d),
                }
            }
            "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => {
                self.sp()?;
                let v = self.astring_lossy()?;
                let name = match word.as_str() {
                    "FROM" => "From",
                    "TO" => "To",
                    "CC" => "Cc",
                    "BCC" => "Bcc",
                    _ => "Subject",
                };
                K::Header(name.into(), v)
            }
            "HEADER" => {
                self.sp()?;
                let name = self.astring_lossy()?;
                self.sp()?;
                K::Header(name, self.astring_lossy()?)
            }
            "BODY" => {
                self.sp()?;
                K::Body(self.astring_lossy()?)
            }
            "TEXT" => {
                self.sp()?;
                K::Text(self.astring_lossy()?)
            }
            "UID" => {
                self.sp()?;
                K::Uid(self.seqset()?)
            }
            "OLDER" => {
                self.sp()?;
                K::Older(self.number()?)
            }
            "YOUNGER" => {
                self.sp()?;
                K::Younger(self.number()?)
            }
            "MODSEQ" => {
                self.sp()?;
                // RFC 7162 §3.1.5: optional entry name and type are ignored.
                if self.peek() == Some(b'"') {
                    self.quoted()?;
                    self.sp()?;
                    self.atom()?;
                    self.sp()?;
                }
                K::ModSeq(self.number()?)
            }
            "NOT" => {
                self.sp()?;
                self.nested(|p| p.search_key())
                    .map(|k| K::Not(Box::new(k)))?
            }
            "OR" => {
                self.sp()?;
                let a = self.nested(|p| p.search_key())?;
                self.sp()?;
                let b = self.nested(|p| p.search_key())?;
                K::Or(Box::new(a), Box::new(b))
            }
            other => return Err(format!("unknown search key {other}")),
        };
        Ok(key)
    }

    /// Runs `f` one level deeper (NOT and OR nest without parentheses).
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("too deeply nested".into());
        }
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn astring_lossy(&mut self) -> R<String> {
        Ok(String::from_utf8_lossy(&self.astring()?).into_owned())
    }

    fn search_keys_until(&mut self, end: u8) -> R<Vec<SearchKey>> {
        let mut keys = vec![self.search_key()?];
        while self.peek() == Some(b' ') {
            self.pos += 1;
            keys.push(self.search_key()?);
        }
        if self.peek() != Some(end) && !(end == 0 && self.at_end()) {
            return Err("unexpected characters in search".into());
        }
        Ok(keys)
    }

    fn section(&mut self) -> R<Section> {
        self.expect(b'[')?;
        let mut part = Vec::new();
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            let n = self.number32()?;
            if n == 0 {
                return Err("part numbers start at 1".into());
            }
            part.push(n);
            if part.len() > 64 {
                return Err("part number too deep".into());
            }
            if !self.eat(b'.') {
                break;
            }
        }
        let text = if self.peek() == Some(b']') {
            None
        } else {
            let w = self
                .take_while(|b| b.is_ascii_alphanumeric() || b == b'.')
                .to_ascii_uppercase();
            Some(match &w[..] {
                b"HEADER" => SectionText::Header,
                b"TEXT" => SectionText::Text,
                b"MIME" if !part.is_empty() => SectionText::Mime,
                b"HEADER.FIELDS" | b"HEADER.FIELDS.NOT" => {
                    let not = w.len() > 13;
                    self.sp()?;
                    self.open()?;
                    let mut fields = vec![self.astring_lossy()?];
                    while self.eat(b' ') {
                        fields.push(self.astring_lossy()?);
                    }
                    self.close()?;
                    SectionText::HeaderFields { not, fields }
                }
                _ => return Err("bad section".into()),
            })
        };
        self.expect(b']')?;
        Ok(Section { part, text })
    }

    fn fetch_item(&mut self) -> R<FetchItem> {
        let w = self
            .take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            .to_ascii_uppercase();
        Ok(match &w[..] {
            b"FLAGS" => FetchItem::Flags,
            b"INTERNALDATE" => FetchItem::InternalDate,
            b"RFC822.SIZE" => FetchItem::Rfc822Size,
            b"ENVELOPE" => FetchItem::Envelope,
            b"BODYSTRUCTURE" => FetchItem::BodyStructure,
            b"UID" => FetchItem::Uid,
            b"MODSEQ" => FetchItem::ModSeq,
            b"RFC822" => FetchItem::Rfc822,
            b"RFC822.HEADER" => FetchItem::Rfc822Header,
            b"RFC822.TEXT" => FetchItem::Rfc822Text,
            b"BODY" if self.peek() != Some(b'[') => FetchItem::Body,
            b"BODY" | b"BODY.PEEK" => {
                let section = self.section()?;
                let partial = self.partial()?;
                FetchItem::BodySection {
                    section,
                    peek: w.len() > 4,
                    partial,
                }
            }
            b"BINARY" | b"BINARY.PEEK" | b"BINARY.SIZE" => {
                let section = self.section()?;
                if section.text.is_some() {
                    // RFC 3516 §4.1: part numbers only.
                    return Err("BINARY takes part numbers only".into());
                }
                if &w[..] == b"BINARY.SIZE" {
                    FetchItem::BinarySize { part: section.part }
                } else {
                    FetchItem::Binary {
                        part: section.part,
                        peek: w.len() > 6,
                        partial: self.partial()?,
                    }
                }
            }
            _ => {
                return Err(format!(
                    "unknown fetch item {}",
                    String::from_utf8_lossy(&w)
                ));
            }
        })
    }

    /// `<start.len>` after a section, if present.
    fn partial(&mut self) -> R<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let start = self.number32()?;
        self.expect(b'.')?;
        let len = self.number32()?;
        self.expect(b'>')?;
        if len == 0 {
            return Err("partial length must be at least 1".into());
        }
        Ok(Some((start, len)))
    }

    fn fetch_items(&mut self) -> R<Vec<FetchItem>> {
        use FetchItem as F;
        if self.peek() == Some(b'(') {
            self.open()?;
            let mut items = vec![self.fetch_item()?];
            while self.eat(b' ') {
                items.push(self.fetch_item()?);
            }
            self.close()?;
            return Ok(items);
        }
        // RFC 9051 §6.4.5 macros.
        if self.eat_word("ALL") {
            return Ok(vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope]);
        }
        if self.eat_word("FAST") {
            return Ok(vec![F::Flags, F::InternalDate, F::Rfc822Size]);
        }
        if self.eat_word("FULL") {
            return Ok(vec![
                F::Flags,
                F::InternalDate,
                F::Rfc822Size,
                F::Envelope,
                F::Body,
            ]);
        }
        Ok(vec![self.fetch_item()?])
    }

    fn status_items(&mut self) -> R<Vec<StatusItem>> {
        self.open()?;
        let mut items = Vec::new();
        loop {
            let w = self.atom()?.to_ascii_uppercase();
            items.push(match w.as_str() {
                "MESSAGES" => StatusItem::Messages,
                "RECENT" => StatusItem::Recent,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "SIZE" => StatusItem::Size,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                "APPENDLIMIT" => StatusItem::AppendLimit,
                "DELETED" => StatusItem::Deleted,
                "DELETED-STORAGE" => StatusItem::DeletedStorage,
                _ => return Err(format!("unknown status item {w}")),
            });
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        self.depth -= 1;
        Ok(items)
    }

    fn command(&mut self, tag: &str) -> R<CommandKind> {
        use CommandKind as C;
        let name = self.atom()?.to_ascii_uppercase();
        let kind = match name.as_str() {
            "CAPABILITY" => C::Capability,
            "NOOP" => C::Noop,
            "LOGOUT" => C::Logout,
            "STARTTLS" => C::StartTls,
            "NAMESPACE" => C::Namespace,
            "IDLE" => C::Idle,
            "CHECK" => C::Check,
            "CLOSE" => C::Close,
            "UNSELECT" => C::Unselect,
            "EXPUNGE" => C::Expunge { uids: None },
            "ID" => {
                self.sp()?;
                if self.eat_word("NIL") {
                    C::Id(None)
                } else {
                    self.open()?;
                    let mut fields = Vec::new();
                    if !self.eat(b')') {
                        loop {
                            let k = String::from_utf8_lossy(&self.string()?).into_owned();
                            self.sp()?;
                            let v = self.nstring_or_nil()?;
                            if fields.len() < 30 {
                                fields.push((k, v));
                            }
                            if self.eat(b')') {
                                break;
                            }
                            self.sp()?;
                        }
                    }
                    self.depth -= 1;
                    C::Id(Some(fields))
                }
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.eat(b' ') {
                    caps.push(self.atom()?.to_ascii_uppercase());
                }
                if caps.is_empty() {
                    return Err("ENABLE needs a capability".into());
                }
                C::Enable(caps)
            }
            "LOGIN" => {
                self.sp()?;
                let user = self.astring()?;
                self.sp()?;
                let password = Secret::new(self.astring()?);
                C::Login { user, password }
            }
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.atom()?.to_ascii_uppercase();
                let initial = if self.eat(b' ') {
                    // RFC 4959: base64 or "=".
                    let t = self.take_while(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
                    Some(Secret::new(String::from_utf8_lossy(t).into_owned()))
                } else {
                    None
                };
                C::Authenticate { mechanism, initial }
            }
            "SELECT" | "EXAMINE" => {
                self.sp()?;
                let mailbox = self.astring()?;
                let mut condstore = false;
                let mut qresync = None;
                if self.eat(b' ') {
                    self.open()?;
                    loop {
                        let p = self.atom()?.to_ascii_uppercase();
                        match p.as_str() {
                            "CONDSTORE" => condstore = true,
                            "QRESYNC" => {
                                self.sp()?;
                                self.open()?;
                                let uidvalidity = self.number32()?;
                                self.sp()?;
                                let modseq = self.number()?;
                                let mut known_uids = None;
                                if self.eat(b' ') {
                                    if self.peek() != Some(b'(') {
                                        known_uids = Some(self.seqset()?);
                                        self.eat(b' ');
                                    }
                                    // The sequence match data is an optional
                                    // hint; it is parsed and not needed.
                                    if self.peek() == Some(b'(') {
                                        self.open()?;
                                        self.seqset()?;
                                        self.sp()?;
                                        self.seqset()?;
                                        self.close()?;
                                    }
                                }
                                self.close()?;
                                qresync = Some(Qresync {
                                    uidvalidity,
                                    modseq,
                                    known_uids,
                                });
                            }
                            _ => return Err(format!("unsupported select parameter {p}")),
                        }
                        if self.eat(b')') {
                            break;
                        }
                        self.sp()?;
                    }
                    self.depth -= 1;
                }
                C::Select {
                    mailbox,
                    read_only: name == "EXAMINE",
                    condstore,
                    qresync,
                }
            }
            "CREATE" => {
                self.sp()?;
                let name = self.astring()?;
                let mut uses = Vec::new();
                if self.eat(b' ') {
                    self.open()?;
                    if !self.eat_word("USE") {
                        return Err("unsupported CREATE parameter".into());
                    }
                    self.sp()?;
                    uses = self.flag_list()?;
                    self.close()?;
                }
                C::Create { name, uses }
            }
            "GETQUOTA" => {
                self.sp()?;
                C::GetQuota(self.astring()?)
            }
            "GETQUOTAROOT" => {
                self.sp()?;
                C::GetQuotaRoot(self.astring()?)
            }
            "SETQUOTA" => {
                self.sp()?;
                let root = self.astring()?;
                self.sp()?;
                self.open()?;
                while !self.eat(b')') {
                    self.atom()?;
                    self.eat(b' ');
                    if self.at_end() {
                        return Err("expected ')'".into());
                    }
                }
                self.depth -= 1;
                C::SetQuota(root)
            }
            "DELETE" => {
                self.sp()?;
                C::Delete(self.astring()?)
            }
            "RENAME" => {
                self.sp()?;
                let a = self.astring()?;
                self.sp()?;
                C::Rename(a, self.astring()?)
            }
            "SUBSCRIBE" => {
                self.sp()?;
                C::Subscribe(self.astring()?)
            }
            "UNSUBSCRIBE" => {
                self.sp()?;
                C::Unsubscribe(self.astring()?)
            }
            "LIST" | "LSUB" => {
                self.sp()?;
                let lsub = name == "LSUB";
                let mut select = Vec::new();
                let mut extended = false;
                if !lsub && self.peek() == Some(b'(') {
                    // RFC 5258 §3: selection options.
                    extended = true;
                    self.open()?;
                    while !self.eat(b')') {
                        let o = self.atom()?.to_ascii_uppercase();
                        match o.as_str() {
                            "SUBSCRIBED" | "REMOTE" | "RECURSIVEMATCH" | "SPECIAL-USE" => {}
                            _ => return Err(format!("unknown LIST selection option {o}")),
                        }
                        select.push(o);
                        self.eat(b' ');
                        if self.at_end() {
                            return Err("expected ')'".into());
                        }
                    }
                    self.depth -= 1;
                    self.sp()?;
                    // RFC 5258 §3: RECURSIVEMATCH needs another option.
                    if select.iter().any(|o| o == "RECURSIVEMATCH")
                        && !select
                            .iter()
                            .any(|o| o == "SUBSCRIBED" || o == "SPECIAL-USE")
                    {
                        return Err("RECURSIVEMATCH needs another selection option".into());
                    }
                }
                let reference = self.astring()?;
                self.sp()?;
                let mut patterns = Vec::new();
                if !lsub && self.peek() == Some(b'(') {
                    extended = true;
                    self.open()?;
                    loop {
                        patterns.push(self.list_mailbox()?);
                        if patterns.len() > 64 {
                            return Err("too many patterns".into());
                        }
                        if self.eat(b')') {
                            break;
                        }
                        self.sp()?;
                    }
                    self.depth -= 1;
                } else {
                    patterns.push(self.list_mailbox()?);
                }
                let mut returns = None;
                if !lsub && self.eat(b' ') {
                    if !self.eat_word("RETURN") {
                        return Err("expected RETURN".into());
                    }
                    self.sp()?;
                    self.open()?;
                    let mut r = ListReturn::default();
                    while !self.eat(b')') {
                        let o = self.atom()?.to_ascii_uppercase();
                        match o.as_str() {
                            "SUBSCRIBED" => r.subscribed = true,
                            "CHILDREN" => r.children = true,
                            "SPECIAL-USE" => r.special_use = true,
                            "STATUS" => {
                                self.sp()?;
                                r.status = Some(self.status_items()?);
                            }
                            _ => return Err(format!("unknown LIST return option {o}")),
                        }
                        self.eat(b' ');
                        if self.at_end() {
                            return Err("expected ')'".into());
                        }
                    }
                    self.depth -= 1;
                    returns = Some(r);
                } else if extended {
                    returns = Some(ListReturn::default());
                }
                C::List {
                    reference,
                    patterns,
                    lsub,
                    select,
                    returns,
                }
            }
            "STATUS" => {
                self.sp()?;
                let mailbox = self.astring()?;
                self.sp()?;
                C::Status {
                    mailbox,
                    items: self.status_items()?,
                }
            }
            "APPEND" => {
                self.sp()?;
                let mailbox = self.astring()?;
                let mut messages = Vec::new();
                // RFC 3502: one or more (flags, date, literal) groups.
                while self.eat(b' ') {
                    if messages.len() >= MAX_APPEND_MESSAGES {
                        return Err("too many messages in one APPEND".into());
                    }
                    let mut flags = Vec::new();
                    if self.peek() == Some(b'(') {
                        flags = self.flag_list()?;
                        self.sp()?;
                    }
                    let mut date = None;
                    if self.peek() == Some(b'"') {
                        date = Some(self.date_time()?);
                        self.sp()?;
                    }
                    let (content, utf8) = if self.eat_word("UTF8") {
                        self.sp()?;
                        self.open()?;
                        let c = self.literal()?;
                        self.close()?;
                        (c, true)
                    } else {
                        (self.literal()?, false)
                    };
                    messages.push(AppendMessage {
                        flags,
                        date,
                        content,
                        utf8,
                    });
                }
                if messages.is_empty() {
                    return Err("APPEND needs a message".into());
                }
                C::Append { mailbox, messages }
            }
            "SEARCH" => {
                self.sp()?;
                let (ret, keys) = self.search_args()?;
                C::Search {
                    uid: false,
                    ret,
                    keys,
                }
            }
            "FETCH" | "STORE" | "COPY" | "MOVE" => self.message_command(&name, false)?,
            "SORT" => self.sort_command(false)?,
            "THREAD" => self.thread_command(false)?,
            "UID" => {
                self.sp()?;
                let sub = self.atom()?.to_ascii_uppercase();
                match sub.as_str() {
                    "FETCH" | "STORE" | "COPY" | "MOVE" => self.message_command(&sub, true)?,
                    "SORT" => self.sort_command(true)?,
                    "THREAD" => self.thread_command(true)?,
                    "SEARCH" => {
                        self.sp()?;
                        let (ret, keys) = self.search_args()?;
                        C::Search {
                            uid: true,
                            ret,
                            keys,
                        }
                    }
                    "EXPUNGE" => {
                        self.sp()?;
                        C::Expunge {
                            uids: Some(self.seqset()?),
                        }
                    }
                    _ => return Err(format!("unknown UID command {sub}")),
                }
            }
            _ => {
                let _ = tag;
                return Err(format!("unknown command {name}"));
            }
        };
        Ok(kind)
    }

    #[allow(clippy::type_complexity)]
    fn search_args(&mut self) -> R<(Option<Vec<SearchReturn>>, Vec<SearchKey>)> {
        let mut ret = None;
        if self.eat_word("RETURN") {
            self.sp()?;
            self.open()?;
            let mut opts = Vec::new();
            if !self.eat(b')') {
                loop {
                    let w = self.atom()?.to_ascii_uppercase();
                    opts.push(match w.as_str() {
                        "MIN" => SearchReturn::Min,
                        "MAX" => SearchReturn::Max,
                        "ALL" => SearchReturn::All,
                        "COUNT" => SearchReturn::Count,
                        "SAVE" => SearchReturn::Save,
                        _ => return Err(format!("unknown search return option {w}")),
                    });
                    if self.eat(b')') {
                        break;
                    }
                    self.sp()?;
                }
            }
            self.depth -= 1;
            self.sp()?;
            // RFC 4731 §3.1: RETURN () means RETURN (ALL).
            if opts.is_empty() {
                opts.push(SearchReturn::All);
            }
            ret = Some(opts);
        }
        if self.eat_word("CHARSET") {
            self.sp()?;
            let cs = self.astring_lossy()?.to_ascii_uppercase();
            if cs != "UTF-8" && cs != "US-ASCII" {
                return Err(format!("[BADCHARSET (UTF-8 US-ASCII)] charset {cs}"));
            }
            self.sp()?;
        }
        Ok((ret, self.search_keys_until(0)?))
    }

    /// The charset argument of SORT and THREAD (RFC 5256 §3).
    fn charset(&mut self) -> R<()> {
        let cs = self.astring_lossy()?.to_ascii_uppercase();
        if cs != "UTF-8" && cs != "US-ASCII" {
            return Err(format!("[BADCHARSET (UTF-8 US-ASCII)] charset {cs}"));
        }
        Ok(())
    }

    fn sort_command(&mut self, uid: bool) -> R<CommandKind> {
        use crate::sort::SortKey as S;
        self.sp()?;
        self.open()?;
        let mut criteria = Vec::new();
        let mut reverse = false;
        loop {
            let w = self.atom()?.to_ascii_uppercase();
            let key = match w.as_str() {
                "REVERSE" => {
                    reverse = true;
                    self.sp()?;
                    continue;
                }
                "ARRIVAL" => S::Arrival,
                "CC" => S::Cc,
                "DATE" => S::Date,
                "FROM" => S::From,
                "SIZE" => S::Size,
                "SUBJECT" => S::Subject,
                "TO" => S::To,
                "DISPLAYFROM" => S::DisplayFrom,
                "DISPLAYTO" => S::DisplayTo,
                _ => return Err(format!("unknown sort criterion {w}")),
            };
            criteria.push((reverse, key));
            reverse = false;
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        self.depth -= 1;
        self.sp()?;
        self.charset()?;
        self.sp()?;
        Ok(CommandKind::Sort {
            uid,
            criteria,
            keys: self.search_keys_until(0)?,
        })
    }

    fn thread_command(&mut self, uid: bool) -> R<CommandKind> {
        self.sp()?;
        let alg = self.atom()?.to_ascii_uppercase();
        let references = match alg.as_str() {
            "REFERENCES" => true,
            "ORDEREDSUBJECT" => false,
            _ => return Err(format!("unknown thread algorithm {alg}")),
        };
        self.sp()?;
        self.charset()?;
        self.sp()?;
        Ok(CommandKind::Thread {
            uid,
            references,
            keys: self.search_keys_until(0)?,
        })
    }

    fn message_command(&mut self, name: &str, uid: bool) -> R<CommandKind> {
        self.sp()?;
        let set = self.seqset()?;
        self.sp()?;
        Ok(match name {
            "FETCH" => {
                let items = self.fetch_items()?;
                let mut changed_since = None;
                let mut vanished = false;
                if self.eat(b' ') {
                    self.open()?;
                    loop {
                        if self.eat_word("CHANGEDSINCE") {
                            self.sp()?;
                            changed_since = Some(self.number()?);
                        } else if self.eat_word("VANISHED") {
                            vanished = true;
                        } else {
                            return Err("unsupported fetch modifier".into());
                        }
                        if !self.eat(b' ') {
                            break;
                        }
                    }
                    self.close()?;
                    if vanished && (changed_since.is_none() || !uid) {
                        // RFC 7162 §3.2.6: only UID FETCH, only with CHANGEDSINCE.
                        return Err("VANISHED needs UID FETCH and CHANGEDSINCE".into());
                    }
                }
                CommandKind::Fetch {
                    uid,
                    set,
                    items,
                    changed_since,
                    vanished,
                }
            }
            "STORE" => {
                let mut unchanged_since = None;
                if self.peek() == Some(b'(') {
                    self.open()?;
                    if !self.eat_word("UNCHANGEDSINCE") {
                        return Err("unsupported store modifier".into());
                    }
                    self.sp()?;
                    unchanged_since = Some(self.number()?);
                    self.close()?;
                    self.sp()?;
                }
                let mode = if self.eat(b'+') {
                    StoreMode::Add
                } else if self.eat(b'-') {
                    StoreMode::Remove
                } else {
                    StoreMode::Replace
                };
                let w = self.atom()?.to_ascii_uppercase();
                let silent = match w.as_str() {
                    "FLAGS" => false,
                    "FLAGS.SILENT" => true,
                    _ => return Err("expected FLAGS or FLAGS.SILENT".into()),
                };
                self.sp()?;
                let flags = if self.peek() == Some(b'(') {
                    self.flag_list()?
                } else {
                    let mut f = vec![self.flag()?];
                    while self.eat(b' ') {
                        f.push(self.flag()?);
                    }
                    f
                };
                CommandKind::Store {
                    uid,
                    set,
                    mode,
                    silent,
                    flags,
                    unchanged_since,
                }
            }
            _ => CommandKind::Copy {
                uid,
                set,
                mailbox: self.astring()?,
                moving: name == "MOVE",
            },
        })
    }
}

/// Parses one complete command (without its final CRLF).
pub fn parse(buf: &[u8]) -> Result<Command, ParseError> {
    let mut p = Parser {
        buf,
        pos: 0,
        depth: 0,
    };
    let tag_bytes = p.take_while(|b| is_astring_char(b) && b != b'+');
    if tag_bytes.is_empty() {
        return Err(ParseError {
            tag: None,
            reason: "missing tag".into(),
        });
    }
    let tag = String::from_utf8_lossy(tag_bytes).into_owned();
    let fail = |reason: String| ParseError {
        tag: Some(tag.clone()),
        reason,
    };
    p.sp()
        .map_err(|_| fail("expected a space after the tag".into()))?;
    let kind = p.command(&tag).map_err(fail)?;
    if !p.at_end() {
        return Err(fail(
            "unexpected characters at the end of the command".into(),
        ));
    }
    Ok(Command { tag, kind })
}

/// `d-Mon-yyyy` or `dd-Mon-yyyy` as days since the epoch.
pub fn parse_date(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?;
    let mut it = s.split('-');
    let d: u32 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let y: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=31).contains(&d) {
        return None;
    }
    let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(mon))? as u32 + 1;
    // A real day of that month (31-Feb is refused), years 1..=9999.
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=9999).contains(&y) || d > days_in_month[m as usize - 1] {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` (RFC 9051 `date-time`) as Unix seconds.
pub fn parse_date_time(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?.trim_start();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let days = parse_date(date.as_bytes())?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let se: i64 = t.next()?.parse().ok()?;
    if h > 23 || mi > 59 || se > 60 || zone.len() != 5 {
        return None;
    }
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    Some(days * 86400 + h * 3600 + mi * 60 + se - sign * (zh * 3600 + zm * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> CommandKind {
        parse(s.as_bytes())
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .kind
    }

    fn bad(s: &str) -> String {
        parse(s.as_bytes()).unwrap_err().reason
    }

    #[test]
    fn credentials_never_show_in_debug() {
        for line in ["a LOGIN alice hunter2", "a AUTHENTICATE PLAIN aHVudGVyMg=="] {
            let cmd = parse(line.as_bytes()).unwrap();
            let shown = format!("{cmd:?}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("aHVudGVyMg"),
                "{shown}"
            );
            assert!(shown.contains("[REDACTED]"), "{shown}");
        }
    }

    #[test]
    fn rfc9051_examples_parse() {
        assert_eq!(ok("a001 CAPABILITY"), CommandKind::Capability);
        assert_eq!(
            ok("a001 LOGIN SMITH SESAME"),
            CommandKind::Login {
                user: b"SMITH".to_vec(),
                password: Secret::new(b"SESAME".to_vec())
            }
        );
        assert_eq!(
            ok("A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man"),
            CommandKind::Login {
                user: b"FRED FOOBAR".to_vec(),
                password: Secret::new(b"fat man".to_vec())
            }
        );
        assert_eq!(
            ok("a002 login \"al\\\"ice\" \"p w\""),
            CommandKind::Login {
                user: b"al\"ice".to_vec(),
                password: Secret::new(b"p w".to_vec())
            }
        );
        assert!(matches!(
            ok("A142 SELECT INBOX"),
            CommandKind::Select {
                read_only: false,
                ..
            }
        ));
        assert!(matches!(
            ok("A932 EXAMINE blurdybloop"),
            CommandKind::Select {
                read_only: true,
                ..
            }
        ));
        assert!(matches!(
            ok("A202 LIST ~/Mail/ %"),
            CommandKind::List { .. }
        ));
        assert!(matches!(
            ok("A042 STATUS blurdybloop (UIDNEXT MESSAGES)"),
            CommandKind::Status { .. }
        ));
        match ok("A003 APPEND saved-messages (\\Seen) \"05-Nov-1994 14:12:34 -0800\" {5}\r\nHello")
        {
            CommandKind::Append { messages, .. } => {
                assert_eq!(messages[0].flags, vec!["\\Seen".to_string()]);
                assert_eq!(messages[0].date, Some(784073554));
                assert_eq!(messages[0].content, b"Hello");
            }
            k => panic!("{k:?}"),
        }
        match ok("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])") {
            CommandKind::Fetch { items, .. } => {
                assert_eq!(items[0], FetchItem::Flags);
                assert_eq!(
                    items[1],
                    FetchItem::BodySection {
                        section: Section {
                            part: vec![],
                            text: Some(SectionText::HeaderFields {
                                not: false,
                                fields: vec!["DATE".into(), "FROM".into()]
                            })
                        },
                        peek: false,
                        partial: None
                    }
                );
            }
            k => panic!("{k:?}"),
        }
        match ok("a FETCH 1 (BODY.PEEK[1.2.MIME] BODY[]<0.100> BODY[3.HEADER] RFC822.SIZE)") {
            CommandKind::Fetch { items, .. } => {
                assert_eq!(items.len(), 4);
                assert!(
                    matches!(&items[0], FetchItem::BodySection { peek: true, section, .. } if section.part == vec![1, 2] && section.text == Some(SectionText::Mime))
                );
                assert!(matches!(
                    &items[1],
                    FetchItem::BodySection {
                        partial: Some((0, 100)),
                        ..
                    }
                ));
            }
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            ok("A003 STORE 2:4 +FLAGS (\\Deleted)"),
            CommandKind::Store {
                mode: StoreMode::Add,
                silent: false,
                ..
            }
        ));
        assert!(matches!(
            ok("A003 UID STORE 2:4 -FLAGS.SILENT \\Seen $Junk"),
            CommandKind::Store {
                uid: true,
                mode: StoreMode::Remove,
                silent: true,
                ..
            }
        ));
        assert!(matches!(
            ok("A004 UID MOVE 42:69 foo"),
            CommandKind::Copy {
                uid: true,
                moving: true,
                ..
            }
        ));
        assert!(matches!(
            ok("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
            CommandKind::Search { .. }
        ));
        assert!(matches!(
            ok("A283 SEARCH CHARSET UTF-8 TEXT {4+}\r\nXXXX"),
            CommandKind::Search { .. }
        ));
        assert!(matches!(
            ok("a ID (\"name\" \"x\" \"version\" NIL)"),
            CommandKind::Id(Some(_))
        ));
        assert_eq!(
            ok("a AUTHENTICATE PLAIN AGFsaWNlAGFsaWNl"),
            CommandKind::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some(Secret::new("AGFsaWNlAGFsaWNl".into()))
            }
        );
        assert!(matches!(
            ok("a UID EXPUNGE 3:5"),
            CommandKind::Expunge { uids: Some(_) }
        ));
        match ok("A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))") {
            CommandKind::Select {
                qresync: Some(q), ..
            } => {
                assert_eq!((q.uidvalidity, q.modseq), (67890007, 20050715194045000));
                assert!(q.known_uids.unwrap().contains(43, 1000));
            }
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            ok(
                "B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:15,100 41,75:211)))"
            ),
            CommandKind::Select {
                qresync: Some(_),
                ..
            }
        ));
        assert!(matches!(
            ok("a SELECT INBOX (QRESYNC (1 2))"),
            CommandKind::Select {
                qresync: Some(_),
                ..
            }
        ));
        assert!(matches!(
            ok("s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)"),
            CommandKind::Fetch {
                vanished: true,
                changed_since: Some(12345),
                ..
            }
        ));
        assert!(bad("a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)").contains("VANISHED"));
        assert!(matches!(
            ok("A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
            CommandKind::Search { ret: Some(r), .. } if r == vec![SearchReturn::Min, SearchReturn::Count]
        ));
        assert!(matches!(
            ok("A283 UID SEARCH RETURN () CHARSET UTF-8 ALL"),
            CommandKind::Search { uid: true, ret: Some(r), .. } if r == vec![SearchReturn::All]
        ));
        assert!(matches!(ok("a FETCH $ FLAGS"), CommandKind::Fetch { set, .. } if set.is_saved()));
        assert!(matches!(
            ok("a SEARCH $ UNSEEN"),
            CommandKind::Search { .. }
        ));
        assert!(matches!(
            ok("a SEARCH YOUNGER 3600 OLDER 60"),
            CommandKind::Search { .. }
        ));
        match ok(
            "A02 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"%\" Work/*) RETURN (CHILDREN STATUS (MESSAGES SIZE))",
        ) {
            CommandKind::List {
                select,
                patterns,
                returns: Some(r),
                ..
            } => {
                assert_eq!(select, vec!["SUBSCRIBED", "RECURSIVEMATCH"]);
                assert_eq!(patterns.len(), 2);
                assert!(r.children && !r.subscribed);
                assert_eq!(r.status, Some(vec![StatusItem::Messages, StatusItem::Size]));
            }
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            ok("a LIST \"\" *"),
            CommandKind::List { returns: None, .. }
        ));
        assert!(matches!(
            ok("a LIST \"\" % RETURN (SPECIAL-USE)"),
            CommandKind::List {
                returns: Some(_),
                ..
            }
        ));
        assert!(bad("a LIST (RECURSIVEMATCH) \"\" *").contains("RECURSIVEMATCH"));
        match ok("t1 CREATE MySpecial (USE (\\Drafts \\Sent))") {
            CommandKind::Create { uses, .. } => assert_eq!(uses, vec!["\\Drafts", "\\Sent"]),
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            ok("G0001 GETQUOTAROOT INBOX"),
            CommandKind::GetQuotaRoot(_)
        ));
        assert!(matches!(
            ok("S0000 SETQUOTA \"User quota\" (STORAGE 512)"),
            CommandKind::SetQuota(_)
        ));
    }

    #[test]
    fn sort_and_thread() {
        use crate::sort::SortKey;
        match ok("A282 SORT (SUBJECT REVERSE DATE) UTF-8 ALL") {
            CommandKind::Sort { criteria, uid, .. } => {
                assert!(!uid);
                assert_eq!(
                    criteria,
                    vec![(false, SortKey::Subject), (true, SortKey::Date)]
                );
            }
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            ok("A283 UID SORT (REVERSE ARRIVAL) US-ASCII UNSEEN"),
            CommandKind::Sort { uid: true, .. }
        ));
        assert!(matches!(
            ok("A284 THREAD REFERENCES UTF-8 SINCE 5-MAR-2000"),
            CommandKind::Thread {
                references: true,
                ..
            }
        ));
        assert!(matches!(
            ok("A285 UID THREAD ORDEREDSUBJECT UTF-8 ALL"),
            CommandKind::Thread {
                references: false,
                uid: true,
                ..
            }
        ));
        assert!(bad("a SORT (FOO) UTF-8 ALL").contains("unknown sort criterion"));
        assert!(bad("a THREAD X UTF-8 ALL").contains("unknown thread algorithm"));
        assert!(bad("a SORT (DATE) KOI8-R ALL").contains("BADCHARSET"));
    }

    #[test]
    fn multiappend_utf8_and_binary() {
        match ok(
            "A003 APPEND saved-messages (\\Seen) {3+}\r\nabc \"01-Jan-2020 00:00:00 +0000\" {2+}\r\nde UTF8 (~{1+}\r\nf)",
        ) {
            CommandKind::Append { messages, .. } => {
                assert_eq!(messages.len(), 3);
                assert_eq!(messages[1].content, b"de");
                assert!(messages[1].date.is_some() && messages[1].flags.is_empty());
                assert!(messages[2].utf8);
            }
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            ok("a FETCH 1 (BINARY.PEEK[1.2]<0.10> BINARY.SIZE[1] BINARY[])"),
            CommandKind::Fetch { items, .. } if items.len() == 3
        ));
        assert!(bad("a FETCH 1 BINARY[1.HEADER]").contains("part numbers"));
    }

    #[test]
    fn errors_name_the_problem_and_keep_the_tag() {
        let e = parse(b"a1 FROB").unwrap_err();
        assert_eq!(e.tag.as_deref(), Some("a1"));
        assert!(e.reason.contains("unknown command FROB"));
        assert!(bad("a1 LOGIN alice").contains("space"));
        assert!(bad("a1 FETCH 1 (FLAGS").contains("expected"));
        assert!(bad("a1 SELECT INBOX extra").contains("expected"));
        assert!(bad("a1 NOOP extra").contains("unexpected"));
        assert!(parse(b"").unwrap_err().tag.is_none());
        assert!(bad("a1 SEARCH CHARSET KOI8-R ALL").contains("BADCHARSET"));
        assert!(bad("a1 FETCH 0 FLAGS").contains("sequence"));
        assert!(bad("a LOGIN {10}\r\nshort").contains("shorter"));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("a SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100));
        assert!(bad(&deep).contains("deeply"));
        let nots = format!("a SEARCH {}ALL", "NOT ".repeat(100));
        assert!(bad(&nots).contains("deeply"));
        let ok_depth = format!("a SEARCH {}ALL{}", "(".repeat(10), ")".repeat(10));
        assert!(parse(ok_depth.as_bytes()).is_ok());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date(b"1-Jan-1970"), Some(0));
        assert_eq!(
            parse_date(b"01-feb-1994"),
            Some(days_from_civil(1994, 2, 1))
        );
        assert_eq!(parse_date(b"32-Jan-1994"), None);
        assert_eq!(parse_date(b"31-Feb-2020"), None);
        assert_eq!(
            parse_date(b"29-Feb-2020"),
            Some(days_from_civil(2020, 2, 29))
        );
        assert_eq!(parse_date(b"29-Feb-2100"), None);
        assert_eq!(parse_date(b"1-Jan-99999"), None);
        assert_eq!(parse_date_time(b"01-Jan-1970 00:00:00 +0100"), Some(-3600));
    }

    #[test]
    fn every_prefix_of_a_command_is_rejected_not_panicking() {
        let full =
            "a1 UID FETCH 1:*,3 (FLAGS BODY.PEEK[1.HEADER.FIELDS.NOT (x y)]<1.2>) (CHANGEDSINCE 5)";
        assert!(parse(full.as_bytes()).is_ok());
        for i in 0..full.len() {
            let _ = parse(&full.as_bytes()[..i]);
        }
    }
}
