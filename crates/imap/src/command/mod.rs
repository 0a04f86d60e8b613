//! IMAP command syntax (RFC 9051 §9, RFC 3501 §9) as a sans-IO parser over
//! one complete command: the line(s) and any literals, already framed by
//! [`crate::frame`]. Errors carry a reason a human can act on (they are sent
//! back in the tagged `BAD`), and the parser bounds its own recursion.
//!
//! Here: the command types ([`Command`], [`CommandKind`], …) and [`parse`].
//! The grammar is in rooms of its own: `syntax` (atoms, strings, literals,
//! lists, the nesting bound), `commands` (one arm per command), `search`
//! (SEARCH keys, SORT, THREAD) and `fetch` (FETCH items and sections).

use std::fmt;

use crate::sequence::SequenceSet;
use crate::status::Code;
use postamt_wire::Secret;
use postamt_wire::time::{MONTHS, days_from_civil};

mod commands;
mod fetch;
mod search;
mod syntax;
#[cfg(test)]
mod tests;

use syntax::{Parser, is_astring_char};

/// Deepest nesting of parentheses accepted (search keys, fetch lists).
pub const MAX_DEPTH: usize = 16;

/// Most messages in one MULTIAPPEND (RFC 3502).
pub const MAX_APPEND_MESSAGES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The tag, when it could be read (for the tagged BAD).
    pub tag: Option<String>,
    /// A response code for the BAD (`BADCHARSET`), if the error has one.
    pub code: Option<Code>,
    pub reason: String,
}

/// As sent after `BAD`: `[CODE] reason`.
impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(code) = &self.code {
            write!(f, "[{code}] ")?;
        }
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
    /// Sent as a literal8 (`~{n}`, RFC 3516 §4.4): binary content, stored
    /// as it is (bare LFs and NULs included).
    pub binary: bool,
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

/// Parses one complete command (without its final CRLF).
pub fn parse(buf: &[u8]) -> Result<Command, ParseError> {
    let mut p = Parser {
        buf,
        pos: 0,
        depth: 0,
        code: None,
    };
    let tag_bytes = p.take_while(|b| is_astring_char(b) && b != b'+');
    if tag_bytes.is_empty() {
        return Err(ParseError {
            tag: None,
            code: None,
            reason: "missing tag".into(),
        });
    }
    let tag = String::from_utf8_lossy(tag_bytes).into_owned();
    let fail = |reason: String, code: Option<Code>| ParseError {
        tag: Some(tag.clone()),
        code,
        reason,
    };
    p.sp()
        .map_err(|_| fail("expected a space after the tag".into(), None))?;
    let kind = match p.command(&tag) {
        Ok(kind) => kind,
        Err(reason) => return Err(fail(reason, p.code.take())),
    };
    if !p.at_end() {
        return Err(fail(
            "unexpected characters at the end of the command".into(),
            None,
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
