//! Status responses (RFC 9051 §7.1, RFC 3501 §7.1): `OK`, `NO`, `BAD`,
//! `PREAUTH` and `BYE`, tagged or untagged, with an optional response code
//! (RFC 9051 §7.1, RFC 5530, RFC 4315 UIDPLUS, RFC 7162 CONDSTORE/QRESYNC,
//! RFC 7889 APPENDLIMIT, RFC 3516 BINARY, RFC 6154 SPECIAL-USE, RFC 5182
//! SEARCHRES) and a human-readable text.
//!
//! A reply is built as a [`Status`] and turned into bytes in one place,
//! [`Status::write`]; the session never parses a reply back from its text
//! (the error budget looks at [`Status::kind`]). Store errors become a
//! status in one place too: `impl From<&StoreError> for Status`.

use std::borrow::Cow;
use std::fmt;

use postamt_store::StoreError;

use crate::sequence::SequenceSet;

/// The status condition (RFC 9051 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ok,
    No,
    Bad,
    PreAuth,
    Bye,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ok => "OK",
            Kind::No => "NO",
            Kind::Bad => "BAD",
            Kind::PreAuth => "PREAUTH",
            Kind::Bye => "BYE",
        }
    }
}

/// A response code (`resp-text-code`, the part in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// RFC 9051 §7.1: a message the user must see.
    Alert,
    /// RFC 5530 §3.
    AlreadyExists,
    /// RFC 4315 §3: the UIDVALIDITY and the UIDs an APPEND gave.
    AppendUid { uidvalidity: u32, uids: Vec<u32> },
    /// RFC 5530 §3.
    AuthenticationFailed,
    /// RFC 9051 §7.1: the charsets SEARCH supports.
    BadCharset(Vec<String>),
    /// RFC 5530 §3.
    Cannot,
    /// RFC 9051 §7.1: the capability list (space-separated).
    Capability(String),
    /// RFC 7162 §3.2.11, RFC 9051 §7.1: the selected mailbox is closed.
    Closed,
    /// RFC 4315 §3: the UIDVALIDITY of the target, source and target UIDs.
    CopyUid {
        uidvalidity: u32,
        source: Vec<u32>,
        destination: Vec<u32>,
    },
    /// RFC 5530 §3: messages were expunged meanwhile.
    ExpungeIssued,
    /// RFC 7162 §3.1.2.1.
    HighestModSeq(u64),
    /// RFC 5530 §3.
    Limit,
    /// RFC 7162 §3.1.3: messages a conditional STORE left alone (sequence
    /// numbers or UIDs, as the command used).
    Modified(Vec<u32>),
    /// RFC 5530 §3.
    NoPerm,
    /// RFC 5530 §3.
    Nonexistent,
    /// RFC 5530 §3, RFC 9208 §4.3.
    OverQuota,
    /// RFC 9051 §7.1: the flags a client may change permanently (`\*`:
    /// new keywords too).
    PermanentFlags(Vec<String>),
    /// RFC 5530 §3.
    PrivacyRequired,
    /// RFC 9051 §7.1.
    ReadOnly,
    /// RFC 9051 §7.1.
    ReadWrite,
    /// RFC 5530 §3.
    ServerBug,
    /// RFC 7889 §4, RFC 9051 §7.1.
    TooBig,
    /// RFC 9051 §7.1: APPEND or COPY into a mailbox that does not exist.
    TryCreate,
    /// RFC 9051 §7.1.
    UidNext(u32),
    /// RFC 9051 §7.1.
    UidValidity(u32),
    /// RFC 5530 §3.
    Unavailable,
    /// RFC 3516 §4.3.
    UnknownCte,
    /// RFC 3501 §7.1 (removed in RFC 9051): the first unseen message.
    Unseen(u32),
    /// RFC 6154 §6.
    UseAttr,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Alert => f.write_str("ALERT"),
            Code::AlreadyExists => f.write_str("ALREADYEXISTS"),
            Code::AppendUid { uidvalidity, uids } => {
                write!(f, "APPENDUID {uidvalidity} {}", SequenceSet::compact(uids))
            }
            Code::AuthenticationFailed => f.write_str("AUTHENTICATIONFAILED"),
            Code::BadCharset(charsets) => write!(f, "BADCHARSET ({})", charsets.join(" ")),
            Code::Cannot => f.write_str("CANNOT"),
            Code::Capability(caps) => write!(f, "CAPABILITY {caps}"),
            Code::Closed => f.write_str("CLOSED"),
            Code::CopyUid {
                uidvalidity,
                source,
                destination,
            } => write!(
                f,
                "COPYUID {uidvalidity} {} {}",
                SequenceSet::compact(source),
                SequenceSet::compact(destination)
            ),
            Code::ExpungeIssued => f.write_str("EXPUNGEISSUED"),
            Code::HighestModSeq(m) => write!(f, "HIGHESTMODSEQ {m}"),
            Code::Limit => f.write_str("LIMIT"),
            Code::Modified(nums) => write!(f, "MODIFIED {}", SequenceSet::compact(nums)),
            Code::NoPerm => f.write_str("NOPERM"),
            Code::Nonexistent => f.write_str("NONEXISTENT"),
            Code::OverQuota => f.write_str("OVERQUOTA"),
            Code::PermanentFlags(flags) => write!(f, "PERMANENTFLAGS ({})", flags.join(" ")),
            Code::PrivacyRequired => f.write_str("PRIVACYREQUIRED"),
            Code::ReadOnly => f.write_str("READ-ONLY"),
            Code::ReadWrite => f.write_str("READ-WRITE"),
            Code::ServerBug => f.write_str("SERVERBUG"),
            Code::TooBig => f.write_str("TOOBIG"),
            Code::TryCreate => f.write_str("TRYCREATE"),
            Code::UidNext(n) => write!(f, "UIDNEXT {n}"),
            Code::UidValidity(n) => write!(f, "UIDVALIDITY {n}"),
            Code::Unavailable => f.write_str("UNAVAILABLE"),
            Code::UnknownCte => f.write_str("UNKNOWN-CTE"),
            Code::Unseen(n) => write!(f, "UNSEEN {n}"),
            Code::UseAttr => f.write_str("USEATTR"),
        }
    }
}

/// One status response: `tag KIND [CODE] text` (the tag is given when it
/// is written: `*` for an untagged one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub kind: Kind,
    pub code: Option<Code>,
    pub text: Cow<'static, str>,
}

impl Status {
    pub fn new(kind: Kind, text: impl Into<Cow<'static, str>>) -> Status {
        Status {
            kind,
            code: None,
            text: text.into(),
        }
    }

    pub fn ok(text: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Kind::Ok, text)
    }

    pub fn no(text: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Kind::No, text)
    }

    pub fn bad(text: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Kind::Bad, text)
    }

    pub fn bye(text: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Kind::Bye, text)
    }

    /// The same status with a response code.
    pub fn with_code(mut self, code: Code) -> Status {
        self.code = Some(code);
        self
    }

    pub fn is_bad(&self) -> bool {
        self.kind == Kind::Bad
    }

    /// The one place a status becomes bytes: `tag KIND [CODE] text CRLF`.
    pub fn write(&self, tag: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.kind.as_str().as_bytes());
        if let Some(code) = &self.code {
            out.extend_from_slice(format!(" [{code}]").as_bytes());
        }
        if !self.text.is_empty() {
            out.push(b' ');
            out.extend_from_slice(self.text.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// [`Status::write`] into a new line.
    pub fn line(&self, tag: &str) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(tag, &mut out);
        out
    }
}

/// The one mapping from store errors to what the client is told (RFC 5530
/// response codes). A command that needs another code (APPEND and COPY
/// into a missing mailbox: `TRYCREATE`) says so where it calls the store.
impl From<&StoreError> for Status {
    fn from(e: &StoreError) -> Status {
        match e {
            StoreError::NotFound(_) => Status::no("no such mailbox").with_code(Code::Nonexistent),
            StoreError::AlreadyExists(_) => {
                Status::no("mailbox already exists").with_code(Code::AlreadyExists)
            }
            StoreError::Invalid(what) => Status::no(what.clone()).with_code(Code::Cannot),
            StoreError::OverQuota => Status::no("quota exceeded").with_code(Code::OverQuota),
            StoreError::Backend(_) => {
                Status::no("temporary failure, try again").with_code(Code::Unavailable)
            }
        }
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        Status::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &Status, tag: &str) -> String {
        String::from_utf8(s.line(tag)).unwrap()
    }

    #[test]
    fn rendering() {
        assert_eq!(
            text(&Status::ok("NOOP completed"), "a1"),
            "a1 OK NOOP completed\r\n"
        );
        assert_eq!(
            text(&Status::bad("expected a space"), "*"),
            "* BAD expected a space\r\n"
        );
        assert_eq!(
            text(
                &Status::bye("server shutting down").with_code(Code::Unavailable),
                "*"
            ),
            "* BYE [UNAVAILABLE] server shutting down\r\n"
        );
        assert_eq!(
            text(
                &Status::ok("APPEND completed").with_code(Code::AppendUid {
                    uidvalidity: 7,
                    uids: vec![1, 2, 3, 5]
                }),
                "t"
            ),
            "t OK [APPENDUID 7 1:3,5] APPEND completed\r\n"
        );
        assert_eq!(
            text(
                &Status::ok("moved").with_code(Code::CopyUid {
                    uidvalidity: 9,
                    source: vec![4],
                    destination: vec![10, 11]
                }),
                "*"
            ),
            "* OK [COPYUID 9 4 10:11] moved\r\n"
        );
        assert_eq!(
            text(
                &Status::ok("flags permitted").with_code(Code::PermanentFlags(vec![
                    "\\Seen".into(),
                    "$Work".into(),
                    "\\*".into()
                ])),
                "*"
            ),
            "* OK [PERMANENTFLAGS (\\Seen $Work \\*)] flags permitted\r\n"
        );
        assert_eq!(
            text(
                &Status::ok("read-only mailbox").with_code(Code::PermanentFlags(vec![])),
                "*"
            ),
            "* OK [PERMANENTFLAGS ()] read-only mailbox\r\n"
        );
        assert_eq!(
            text(
                &Status::bad("charset KOI8-R")
                    .with_code(Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()])),
                "s"
            ),
            "s BAD [BADCHARSET (UTF-8 US-ASCII)] charset KOI8-R\r\n"
        );
        for (code, name) in [
            (Code::ReadOnly, "READ-ONLY"),
            (Code::ReadWrite, "READ-WRITE"),
            (Code::UnknownCte, "UNKNOWN-CTE"),
            (Code::ExpungeIssued, "EXPUNGEISSUED"),
            (Code::Modified(vec![2, 3]), "MODIFIED 2:3"),
            (Code::HighestModSeq(42), "HIGHESTMODSEQ 42"),
            (Code::UidNext(5), "UIDNEXT 5"),
            (Code::UidValidity(6), "UIDVALIDITY 6"),
            (Code::Unseen(1), "UNSEEN 1"),
            (
                Code::Capability("IMAP4rev1 IDLE".into()),
                "CAPABILITY IMAP4rev1 IDLE",
            ),
        ] {
            assert_eq!(code.to_string(), name);
        }
        assert!(Status::bad("x").is_bad() && !Status::no("x").is_bad());
    }

    #[test]
    fn store_errors_map_to_rfc5530_codes() {
        let line = |e: StoreError| text(&Status::from(e), "a");
        assert_eq!(
            line(StoreError::NotFound("Foo".into())),
            "a NO [NONEXISTENT] no such mailbox\r\n"
        );
        assert_eq!(
            line(StoreError::AlreadyExists("Foo".into())),
            "a NO [ALREADYEXISTS] mailbox already exists\r\n"
        );
        assert_eq!(
            line(StoreError::Invalid("bad mailbox name".into())),
            "a NO [CANNOT] bad mailbox name\r\n"
        );
        assert_eq!(
            line(StoreError::OverQuota),
            "a NO [OVERQUOTA] quota exceeded\r\n"
        );
        assert_eq!(
            line(StoreError::Backend("disk on fire".into())),
            "a NO [UNAVAILABLE] temporary failure, try again\r\n"
        );
    }
}
