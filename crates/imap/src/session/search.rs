//! SEARCH (RFC 9051 §6.4.4; RFC 4731 ESEARCH; RFC 5182 SEARCHRES; RFC
//! 7162 §3.1.5 MODSEQ; RFC 5032 WITHIN), SORT and THREAD (RFC 5256, RFC
//! 5957 SORT=DISPLAY). Keys are evaluated per message by [`SearchContext`],
//! which reads a message's metadata and content only when a key needs them.

use postamt_store::{Flags, TextScope, Uid, meta::MessageMeta};
use tokio::io::{AsyncRead, AsyncWrite};

use super::store_access::StoreAccess;
use super::view::Msg;
use super::{Reply, Session};
use crate::command::{SearchKey, SearchReturn};
use crate::sequence::SequenceSet;
use crate::status::{Code, Status};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    /// Indices of the selected messages that match all `keys`.
    /// The matching messages (view indexes), and whether some message could
    /// not be read because another session expunged it meanwhile.
    fn search_hits(&self, keys: &[SearchKey]) -> (Vec<usize>, bool) {
        let sel = self.selected.as_ref().expect("selected");
        let mut hits: Vec<usize> = Vec::new();
        // FROM, TO, CC, BCC, SUBJECT are answered from the values kept at
        // delivery (one read for the mailbox, no message read).
        let kept = if uses_kept_header(keys) {
            self.store
                .read_search_headers(sel.mailbox.id)
                .unwrap_or_default()
        } else {
            Default::default()
        };
        // BODY and TEXT: the full-text index names the messages that
        // match and those it cannot answer for; only those are read and
        // checked.
        let mut needles = Vec::new();
        text_keys(keys, &mut needles);
        let mut candidates = Vec::new();
        for (needle, scope) in needles {
            if let Ok(Some(m)) = self.store.read_text_matches(sel.mailbox.id, needle, scope) {
                candidates.push((needle, answers(&sel.msgs, &m)));
            }
        }
        let mut ctx = SearchContext {
            store: self.store,
            mailbox: sel.mailbox.id,
            msgs: &sel.msgs,
            saved: &sel.saved,
            cache: None,
            text: None,
            kept: &kept,
            candidates: &candidates,
            missing: false,
            now: postamt_wire::time::unix_now() as i64,
        };
        for i in 0..sel.msgs.len() {
            if sel.msgs[i].gone {
                continue;
            }
            ctx.cache = None;
            ctx.text = None;
            if keys.iter().all(|k| ctx.matches(i, k)) {
                hits.push(i);
            }
        }
        // A message the index did not name is left out unread: if another
        // session expunged one of the view's messages meanwhile, the answer
        // must say so (it may have been left out for that reason).
        let mut missing = ctx.missing;
        if !missing
            && !candidates.is_empty()
            && let Ok(gone) = self.store.read_expunged_since(sel.mailbox.id, sel.modseq)
        {
            missing = gone
                .iter()
                .any(|u| sel.msgs.binary_search_by_key(u, |m| m.uid).is_ok());
        }
        (hits, missing)
    }

    /// SORT (`criteria`) or THREAD (RFC 5256) over the messages matching
    /// `keys`.
    pub(super) fn sort_or_thread(
        &mut self,
        uid: bool,
        keys: &[SearchKey],
        criteria: Option<&[(bool, crate::sort::SortKey)]>,
        references: bool,
    ) -> Reply {
        let (hits, missing) = self.search_hits(keys);
        let sel = self.selected.as_ref().expect("selected");
        let expunge_issued = missing || sel.msgs.iter().any(|m| m.gone);
        let done = move |text| completed(text, expunge_issued);
        let mailbox = sel.mailbox.id;
        // Only THREAD=REFERENCES needs a header outside the envelope.
        let with_references = references && criteria.is_none();
        let mut items = Vec::with_capacity(hits.len());
        for i in hits {
            let m = &sel.msgs[i];
            let (meta, content) = self.store.read_message(mailbox, m.uid, with_references)?;
            let refs = content.and_then(|c| {
                let h = meta
                    .as_ref()
                    .map_or(0, |m| m.header_len as usize)
                    .min(c.len());
                let f = crate::fetch::header_fields(&c[..h], &["References".into()], false);
                let v = String::from_utf8_lossy(&f).into_owned();
                v.split_once(':').map(|(_, v)| v.to_string())
            });
            items.push(crate::sort::Item {
                number: if uid { m.uid.0 } else { i as u32 + 1 },
                internaldate: m.internaldate,
                size: m.size,
                envelope: meta.map(|m| m.envelope).unwrap_or_default(),
                references: refs,
            });
        }
        match criteria {
            Some(c) => {
                let line: String = crate::sort::sort(&items, c)
                    .iter()
                    .map(|n| format!(" {n}"))
                    .collect();
                self.untagged(&format!("SORT{line}"));
                Ok(done("SORT completed"))
            }
            None => {
                let t = if references {
                    crate::sort::thread_references(&items)
                } else {
                    crate::sort::thread_orderedsubject(&items)
                };
                let sp = if t.is_empty() { "" } else { " " };
                self.untagged(&format!("THREAD{sp}{t}"));
                Ok(done("THREAD completed"))
            }
        }
    }

    pub(super) fn search(
        &mut self,
        tag: &str,
        uid: bool,
        ret: Option<&[SearchReturn]>,
        keys: &[SearchKey],
    ) -> Reply {
        let modseq_key = uses_modseq(keys);
        if modseq_key {
            self.enable_condstore();
        }
        let (hits, missing) = self.search_hits(keys);
        let sel = self.selected.as_ref().expect("selected");
        let expunge_issued = missing || sel.msgs.iter().any(|m| m.gone);
        let done = move |text| completed(text, expunge_issued);
        let completed = done("SEARCH completed");
        let num = |i: usize| if uid { sel.msgs[i].uid.0 } else { i as u32 + 1 };
        // RFC 7162 §3.1.5: the highest MODSEQ of the matches.
        let modseq = hits.iter().map(|&i| sel.msgs[i].modseq).max();
        let modseq_suffix = if modseq_key { modseq } else { None };
        // RFC 9051 §6.4.4: IMAP4rev2 answers every SEARCH with ESEARCH.
        let ret = match ret {
            None if self.rev2 => Some(&[SearchReturn::All][..]),
            r => r,
        };
        let Some(ret) = ret else {
            let mut line: String = "SEARCH".into();
            for &i in &hits {
                line.push_str(&format!(" {}", num(i)));
            }
            if let Some(m) = modseq_suffix {
                line.push_str(&format!(" (MODSEQ {m})"));
            }
            self.untagged(&line);
            return Ok(completed);
        };
        let has = |r: SearchReturn| ret.contains(&r);
        let nums: Vec<u32> = hits.iter().map(|&i| num(i)).collect();
        let (min, max) = (hits.first().copied(), hits.last().copied());
        if has(SearchReturn::Save) {
            // RFC 5182 §2.4: with only MIN and/or MAX, only those are saved.
            let chosen: Vec<usize> = if (has(SearchReturn::Min) || has(SearchReturn::Max))
                && !has(SearchReturn::All)
                && !has(SearchReturn::Count)
            {
                let mut v: Vec<usize> = Vec::new();
                if has(SearchReturn::Min) {
                    v.extend(min);
                }
                if has(SearchReturn::Max) {
                    v.extend(max.filter(|m| Some(*m) != min));
                }
                v
            } else {
                hits.clone()
            };
            let uids: Vec<Uid> = chosen.iter().map(|&i| sel.msgs[i].uid).collect();
            self.selected.as_mut().expect("selected").saved = uids;
            if ret.iter().all(|r| *r == SearchReturn::Save) {
                return Ok(done("SEARCH completed, result saved"));
            }
        }
        // RFC 4731 §3.1: the ESEARCH response.
        let mut line = format!("ESEARCH (TAG \"{tag}\")");
        if uid {
            line.push_str(" UID");
        }
        if has(SearchReturn::Min)
            && let Some(m) = nums.first()
        {
            line.push_str(&format!(" MIN {m}"));
        }
        if has(SearchReturn::Max)
            && let Some(m) = nums.last()
        {
            line.push_str(&format!(" MAX {m}"));
        }
        if has(SearchReturn::Count) {
            line.push_str(&format!(" COUNT {}", nums.len()));
        }
        if has(SearchReturn::All) && !nums.is_empty() {
            line.push_str(&format!(" ALL {}", SequenceSet::compact(&nums)));
        }
        // RFC 7162 §3.1.5: the highest MODSEQ of the messages returned: of
        // MIN and MAX alone when only they are asked for.
        let returned_modseq = if has(SearchReturn::All) || has(SearchReturn::Count) {
            modseq_suffix
        } else {
            let ends = [
                min.filter(|_| has(SearchReturn::Min)),
                max.filter(|_| has(SearchReturn::Max)),
            ];
            let sel = self.selected.as_ref().expect("selected");
            ends.iter()
                .flatten()
                .map(|&i| sel.msgs[i].modseq)
                .max()
                .filter(|_| modseq_key)
        };
        if let Some(m) = returned_modseq {
            line.push_str(&format!(" MODSEQ {m}"));
        }
        self.untagged(&line);
        Ok(completed)
    }
}

/// Evaluates SEARCH keys for one message, loading its metadata and
/// content only when a key needs them.
struct SearchContext<'a> {
    /// The time the search started (OLDER, YOUNGER: one clock for all).
    now: i64,
    store: StoreAccess<'a>,
    mailbox: postamt_store::MailboxId,
    msgs: &'a [Msg],
    saved: &'a [Uid],
    cache: Option<(Option<MessageMeta>, Option<Vec<u8>>)>,
    /// What BODY and TEXT look into, extracted once per message.
    text: Option<crate::search_text::SearchText>,
    /// Kept header values by UID (UID order), when the search needs them.
    kept: &'a [(Uid, Option<postamt_store::SearchHeaders>)],
    /// For a BODY, TEXT or HEADER key (its needle, by identity): what the
    /// full-text index says of each message of the view.
    candidates: &'a [(&'a String, Vec<Answer>)],
    /// A message was gone from the store when it was read (expunged by
    /// another session, not yet announced to this one).
    missing: bool,
}

/// What the full-text index says of one message for one needle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
    /// Not indexed (or not exactly): read and check.
    Check,
}

/// The index's answers for each message of the view (both in UID order:
/// one merge).
fn answers(msgs: &[Msg], m: &postamt_store::TextMatches) -> Vec<Answer> {
    let (mut c, mut u) = (m.certain.iter().peekable(), m.unsure.iter().peekable());
    msgs.iter()
        .map(|msg| {
            while c.next_if(|&&x| x < msg.uid).is_some() {}
            while u.next_if(|&&x| x < msg.uid).is_some() {}
            if u.peek() == Some(&&msg.uid) {
                Answer::Check
            } else if c.peek() == Some(&&msg.uid) {
                Answer::Yes
            } else {
                Answer::No
            }
        })
        .collect()
}

/// The BODY, TEXT and HEADER needles of `keys` (at any depth), with where
/// each is looked for.
fn text_keys<'k>(keys: &'k [SearchKey], out: &mut Vec<(&'k String, TextScope)>) {
    for k in keys {
        match k {
            SearchKey::Body(s) => out.push((s, TextScope::Body)),
            SearchKey::Text(s) => out.push((s, TextScope::Text)),
            // A field whose values are not kept at delivery: the index
            // rules messages out.
            SearchKey::Header(name, value)
                if !value.is_empty()
                    && postamt_store::SearchHeaders::default().get(name).is_none() =>
            {
                out.push((value, TextScope::Header))
            }
            SearchKey::Not(k) => text_keys(std::slice::from_ref(k), out),
            SearchKey::Or(a, b) => {
                text_keys(std::slice::from_ref(a), out);
                text_keys(std::slice::from_ref(b), out);
            }
            SearchKey::And(ks) => text_keys(ks, out),
            _ => {}
        }
    }
}

/// Whether any key (at any depth) is one of the header keys whose values
/// are kept at delivery (FROM, TO, CC, BCC, SUBJECT).
fn uses_kept_header(keys: &[SearchKey]) -> bool {
    keys.iter().any(|k| match k {
        SearchKey::Header(name, value) => {
            !value.is_empty() && postamt_store::SearchHeaders::default().get(name).is_some()
        }
        SearchKey::Not(k) => uses_kept_header(std::slice::from_ref(k)),
        SearchKey::Or(a, b) => {
            uses_kept_header(std::slice::from_ref(a)) || uses_kept_header(std::slice::from_ref(b))
        }
        SearchKey::And(ks) => uses_kept_header(ks),
        _ => false,
    })
}

/// Whether any key (at any depth) is MODSEQ.
fn uses_modseq(keys: &[SearchKey]) -> bool {
    keys.iter().any(|k| match k {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => uses_modseq(std::slice::from_ref(k)),
        SearchKey::Or(a, b) => {
            uses_modseq(std::slice::from_ref(a)) || uses_modseq(std::slice::from_ref(b))
        }
        SearchKey::And(ks) => uses_modseq(ks),
        _ => false,
    })
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

impl SearchContext<'_> {
    fn content(&mut self, i: usize) -> (Option<&MessageMeta>, Option<&[u8]>) {
        if self.cache.is_none() {
            let uid = self.msgs[i].uid;
            let r = self.store.read_message(self.mailbox, uid, true);
            let r = r.unwrap_or((None, None));
            self.missing |= r.0.is_none() || r.1.is_none();
            self.cache = Some(r);
        }
        let c = self.cache.as_ref().expect("filled");
        (c.0.as_ref(), c.1.as_deref())
    }

    /// The values of header `name`, decoded ([`crate::search_text::header_values`]);
    /// `None` without such a field.
    fn header_text(&mut self, i: usize, name: &str) -> Option<String> {
        let (meta, content) = self.content(i);
        let (Some(meta), Some(content)) = (meta, content) else {
            return None;
        };
        let header = &content[..(meta.header_len as usize).min(content.len())];
        crate::search_text::header_values(header, name)
    }

    /// The decoded text of every text part (BODY), and with it every
    /// header field of the message and its parts (TEXT): see
    /// [`crate::search_text`].
    fn search_text(&mut self, i: usize) -> &crate::search_text::SearchText {
        if self.text.is_none() {
            let (_, content) = self.content(i);
            let t = content.map(crate::search_text::extract).unwrap_or_default();
            self.text = Some(t);
        }
        self.text.as_ref().expect("filled")
    }

    fn sent_day(&mut self, i: usize) -> Option<i64> {
        let (meta, _) = self.content(i);
        let date = meta?.envelope.date.clone()?;
        let hdr = format!("Date: {date}\r\n\r\n");
        let msg = mail_parser::MessageParser::default().parse_headers(hdr.as_bytes())?;
        let d = msg.date()?;
        let days = postamt_wire::time::days_from_civil(d.year as i64, d.month as u32, d.day as u32);
        Some(days)
    }

    fn matches(&mut self, i: usize, key: &SearchKey) -> bool {
        use SearchKey as K;
        let m = &self.msgs[i];
        let max_uid = || self.msgs.last().map_or(0, |m| m.uid.0);
        let day = m.internaldate.div_euclid(86400);
        let now = self.now;
        match key {
            K::All => true,
            K::Answered => m.flags.contains(Flags::ANSWERED),
            K::Deleted => m.flags.contains(Flags::DELETED),
            K::Draft => m.flags.contains(Flags::DRAFT),
            K::Flagged => m.flags.contains(Flags::FLAGGED),
            K::Seen => m.flags.contains(Flags::SEEN),
            K::Recent => m.recent,
            K::New => m.recent && !m.flags.contains(Flags::SEEN),
            K::Old => !m.recent,
            K::Unanswered => !m.flags.contains(Flags::ANSWERED),
            K::Undeleted => !m.flags.contains(Flags::DELETED),
            K::Undraft => !m.flags.contains(Flags::DRAFT),
            K::Unflagged => !m.flags.contains(Flags::FLAGGED),
            K::Unseen => !m.flags.contains(Flags::SEEN),
            K::Keyword(k) => m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)),
            K::Unkeyword(k) => !m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)),
            K::Larger(n) => m.size > *n,
            K::Smaller(n) => m.size < *n,
            K::Before(d) => day < *d,
            K::On(d) => day == *d,
            K::Since(d) => day >= *d,
            K::SentBefore(d) => self.sent_day(i).is_some_and(|s| s < *d),
            K::SentOn(d) => self.sent_day(i).is_some_and(|s| s == *d),
            K::SentSince(d) => self.sent_day(i).is_some_and(|s| s >= *d),
            K::Uid(set) | K::Seq(set) if set.is_saved() => self.saved.contains(&m.uid),
            K::Uid(set) => set.contains(m.uid.0, max_uid()),
            K::Seq(set) => set.contains(i as u32 + 1, self.msgs.len() as u32),
            K::ModSeq(n) => m.modseq >= *n,
            K::Older(secs) => m.internaldate < now - *secs as i64,
            K::Younger(secs) => m.internaldate >= now - *secs as i64,
            K::Header(name, value)
                if !value.is_empty()
                    && let Ok(at) = self.kept.binary_search_by_key(&m.uid, |(u, _)| *u)
                    && let Some(kept) = &self.kept[at].1
                    && let Some(v) = kept.get(name) =>
            {
                // Kept lower-cased at delivery.
                v.is_some_and(|v| v.contains(&value.to_lowercase()))
            }
            K::Header(_, value)
                if self
                    .candidates
                    .iter()
                    .any(|(n, answers)| std::ptr::eq(*n, value) && answers[i] == Answer::No) =>
            {
                // The index says no header field holds the text.
                false
            }
            K::Header(name, value) => match self.header_text(i, name) {
                // RFC 9051 §6.4.4: HEADER with an empty value matches every
                // message that has the field.
                Some(_) if value.is_empty() => true,
                Some(text) => contains_ci(&text, value),
                None => false,
            },
            K::Body(s) | K::Text(s)
                if let Some((_, answers)) =
                    self.candidates.iter().find(|(n, _)| std::ptr::eq(*n, s))
                    && answers[i] != Answer::Check =>
            {
                // The index answers for this message.
                answers[i] == Answer::Yes
            }
            K::Body(s) => contains_ci(&self.search_text(i).body, s),
            K::Text(s) => {
                let t = self.search_text(i);
                contains_ci(&t.headers, s) || contains_ci(&t.body, s)
            }
            K::Not(k) => !self.matches(i, k),
            K::Or(a, b) => self.matches(i, a) || self.matches(i, b),
            K::And(ks) => ks.iter().all(|k| self.matches(i, k)),
        }
    }
}

/// The tagged OK of SEARCH, SORT and THREAD. RFC 5530 §3: when messages
/// another session expunged (not announced to this one yet) could not be
/// looked at, the answer says so with EXPUNGEISSUED.
fn completed(text: &'static str, expunge_issued: bool) -> Status {
    let s = Status::ok(text);
    if expunge_issued {
        s.with_code(Code::ExpungeIssued)
    } else {
        s
    }
}
