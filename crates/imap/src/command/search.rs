//! The SEARCH grammar (RFC 9051 §6.4.4): search keys, bounded in depth,
//! with RFC 4731 `RETURN (…)` (ESEARCH) and RFC 5182 SAVE, RFC 5032 WITHIN,
//! RFC 7162 MODSEQ; and the SORT and THREAD commands (RFC 5256 §3), which
//! take the same keys after their charset.

use super::syntax::{Parser, R};
use super::{CommandKind, SearchKey, SearchReturn};
use crate::status::Code;

impl Parser<'_> {
    pub(super) fn search_key(&mut self) -> R<SearchKey> {
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

    pub(super) fn search_keys_until(&mut self, end: u8) -> R<Vec<SearchKey>> {
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

    #[allow(clippy::type_complexity)]
    pub(super) fn search_args(&mut self) -> R<(Option<Vec<SearchReturn>>, Vec<SearchKey>)> {
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
            self.charset()?;
            self.sp()?;
        }
        Ok((ret, self.search_keys_until(0)?))
    }

    /// The charset argument of SEARCH, SORT and THREAD (RFC 9051 §6.4.4,
    /// RFC 5256 §3): UTF-8 or US-ASCII, else `BAD [BADCHARSET (…)]`.
    pub(super) fn charset(&mut self) -> R<()> {
        let cs = self.astring_lossy()?.to_ascii_uppercase();
        if cs != "UTF-8" && cs != "US-ASCII" {
            self.code = Some(Code::BadCharset(vec!["UTF-8".into(), "US-ASCII".into()]));
            return Err(format!("charset {cs}"));
        }
        Ok(())
    }

    pub(super) fn sort_command(&mut self, uid: bool) -> R<CommandKind> {
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

    pub(super) fn thread_command(&mut self, uid: bool) -> R<CommandKind> {
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
}
