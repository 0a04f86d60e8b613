//! The selected mailbox's view and its updates: SELECT and EXAMINE (RFC
//! 9051 §6.3.2, §6.3.3, with the responses of §7.1, §7.3.5 FLAGS, §7.4.1
//! EXISTS), keeping the view in step with other sessions (`sync`: RFC 9051
//! §7.4.1 EXPUNGE, §5.2 and §5.5 on when the view may change, RFC 3501
//! §7.3.2 RECENT, §2.3.2 `\Recent` in one session only), and announcing
//! what changed: EXISTS, EXPUNGE, VANISHED (RFC 7162 §3.2.10), FETCH FLAGS
//! (RFC 9051 §7.5.2), new keywords in FLAGS first (RFC 3501 §7.2.6),
//! HIGHESTMODSEQ (RFC 7162 §3.1.2.1), QRESYNC on SELECT (RFC 7162 §3.2.5).
//!
//! The view is a list of [`Msg`] in sequence-number order; it changes only
//! at a response point (`sync` at the end of a command, and in IDLE).

use std::collections::BTreeSet;

use postamt_store::{AccountSignal, Flags, Mailbox, MessageSummary, Uid};
use tokio::io::{AsyncRead, AsyncWrite};

use super::flags::flag_names;
use super::{Reply, Session};
use crate::command;
use crate::sequence::SequenceSet;
use crate::status::{Code, Status};
use postamt_store::MailboxChanges;

/// Memory of big views from sessions that ended, reused by the next big
/// SELECT: a 100,000-message view is megabytes, and fresh pages must be
/// faulted in and zeroed (a few ms) while reused ones need not.
#[derive(Default)]
pub(super) struct SpareViews(std::sync::Mutex<Vec<Vec<Msg>>>);

impl SpareViews {
    const MIN: usize = 10_000;
    const MAX_KEPT: usize = 4;

    pub(super) fn take(&self, wanted: usize) -> Vec<Msg> {
        if wanted < Self::MIN {
            return Vec::new();
        }
        let Ok(mut spare) = self.0.lock() else {
            return Vec::new();
        };
        match spare.iter().position(|v| v.capacity() >= wanted) {
            Some(i) => spare.swap_remove(i),
            None => Vec::new(),
        }
    }

    pub(super) fn give(&self, mut v: Vec<Msg>) {
        if v.capacity() < Self::MIN {
            return;
        }
        v.clear();
        if let Ok(mut spare) = self.0.lock()
            && spare.len() < Self::MAX_KEPT
        {
            spare.push(v);
        }
    }
}

/// One message of the selected mailbox as this session knows it.
#[derive(Debug, Clone)]
pub(super) struct Msg {
    pub(super) uid: Uid,
    pub(super) flags: Flags,
    pub(super) keywords: Vec<String>,
    pub(super) modseq: u64,
    pub(super) size: u64,
    pub(super) internaldate: i64,
    pub(super) recent: bool,
    /// Expunged by another session, not yet announced (RFC 9051 §7.4.1:
    /// no EXPUNGE during FETCH, STORE or SEARCH).
    pub(super) gone: bool,
}

impl Msg {
    fn from_summary(m: MessageSummary, recent: bool) -> Msg {
        Msg {
            uid: m.uid,
            flags: m.flags,
            keywords: m.keywords,
            modseq: m.modseq.0,
            size: m.size,
            internaldate: m.internaldate,
            recent,
            gone: false,
        }
    }
}

/// Marks the view for a sync after the account's signal moved from `seen`
/// to `now`: another process wrote (unknown what): re-read the whole
/// mailbox; else read what changed since the view's MODSEQ.
fn mark(sel: &mut Selected, seen: &AccountSignal, now: &AccountSignal) {
    if now.external != seen.external {
        sel.dirty = true;
        sel.full = true;
    } else if now.changes != seen.changes {
        sel.dirty = true;
    }
}

/// The selected mailbox (RFC 9051 §3.3, the Selected state) and this
/// session's view of it.
pub(super) struct Selected {
    pub(super) mailbox: Mailbox,
    pub(super) read_only: bool,
    pub(super) msgs: Vec<Msg>,
    /// A change for this mailbox arrived on the feed since the last sync.
    pub(super) dirty: bool,
    /// The result of the last `SEARCH RETURN (SAVE)`, as UIDs (`$`, RFC
    /// 5182); expunged messages leave it.
    pub(super) saved: Vec<Uid>,
    /// The MODSEQ the view is up to date with: a sync reads only what
    /// changed after it (and what was expunged after it).
    pub(super) modseq: u64,
    /// The keywords the client was told about in the last FLAGS response
    /// (RFC 3501 §7.2.6): no FETCH may carry another one.
    pub(super) keywords: BTreeSet<String>,
    /// Catch up by re-reading the whole listing (events were lost, or
    /// another process wrote).
    pub(super) full: bool,
    /// The UID ranges whose `\Recent` this session claimed (RFC 3501
    /// §2.3.2: one session only), the latest few.
    pub(super) claimed: Vec<(u32, u32)>,
}

impl Selected {
    /// Removes the messages `leaves` picks from the view and from the
    /// saved result (RFC 5182 §2.1), in one pass (a `remove` each made a
    /// mass expunge by another session quadratic). Returns their
    /// (sequence number, UID), highest number first: each EXPUNGE's number
    /// is then still the message's number when the client reads it.
    pub(super) fn take_out(&mut self, leaves: impl Fn(&Msg) -> bool) -> Vec<(usize, u32)> {
        let gone: Vec<(usize, u32)> = (0..self.msgs.len())
            .rev()
            .filter(|&i| leaves(&self.msgs[i]))
            .map(|i| (i + 1, self.msgs[i].uid.0))
            .collect();
        if !gone.is_empty() {
            self.msgs.retain(|m| !leaves(m));
            let uids: std::collections::HashSet<u32> = gone.iter().map(|g| g.1).collect();
            self.saved.retain(|u| !uids.contains(&u.0));
        }
        gone
    }

    /// Whether this session claimed `\Recent` for `uid`.
    pub(super) fn claimed(&self, uid: Uid) -> bool {
        self.claimed.iter().any(|&(a, b)| a <= uid.0 && uid.0 < b)
    }

    /// Records a claimed range (the latest 16 are kept: messages arrive in
    /// UID order, older ranges hold nothing that can still join the view).
    fn claim(&mut self, (from, to): (Uid, Uid)) {
        if from < to {
            self.claimed.push((from.0, to.0));
            if self.claimed.len() > 16 {
                self.claimed.remove(0);
            }
        }
    }

    /// Adds `names` to the keywords the client knows; whether any was new
    /// (then FLAGS must be sent again: [`Session::announce_keywords`]).
    pub(super) fn learn_keywords(&mut self, names: &[String]) -> bool {
        let mut learned = false;
        for k in names {
            if !self.keywords.contains(k) {
                self.keywords.insert(k.clone());
                learned = true;
            }
        }
        learned
    }

    pub(super) fn max_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.uid.0)
    }

    /// Indices of the messages `set` names (sequence numbers or UIDs).
    pub(super) fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, Status> {
        if set.is_saved() {
            return Ok((0..self.msgs.len())
                .filter(|&i| self.saved.contains(&self.msgs[i].uid))
                .collect());
        }
        if uid {
            let max = self.max_uid();
            Ok((0..self.msgs.len())
                .filter(|&i| set.contains(self.msgs[i].uid.0, max))
                .collect())
        } else {
            let n = self.msgs.len() as u32;
            if set.exceeds(n) {
                return Err(Status::bad("invalid message sequence number"));
            }
            Ok((0..self.msgs.len())
                .filter(|&i| set.contains(i as u32 + 1, n))
                .collect())
        }
    }
}

/// The system flags (RFC 9051 §2.3.2) every mailbox has.
const SYSTEM_FLAGS: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

/// `FLAGS (…)` (RFC 9051 §7.3.5): the system flags and the keywords.
fn flags_response(keywords: &BTreeSet<String>) -> String {
    let kw: String = keywords.iter().map(|k| format!(" {k}")).collect();
    format!("FLAGS ({}{kw})", SYSTEM_FLAGS.join(" "))
}

/// `OK [PERMANENTFLAGS (…)]` (RFC 9051 §7.1): what a client may change
/// for good; `\*`: new keywords too. Nothing in a read-only mailbox.
fn permanent_flags(keywords: &BTreeSet<String>, read_only: bool) -> Status {
    if read_only {
        return Status::ok("read-only mailbox").with_code(Code::PermanentFlags(Vec::new()));
    }
    let flags = SYSTEM_FLAGS
        .iter()
        .map(|f| f.to_string())
        .chain(keywords.iter().cloned())
        .chain(["\\*".to_string()])
        .collect();
    Status::ok("flags permitted").with_code(Code::PermanentFlags(flags))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    /// A CONDSTORE-enabling command (FETCH MODSEQ or CHANGEDSINCE, STORE
    /// UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ) turns CONDSTORE
    /// on; with a mailbox selected, the client learns its HIGHESTMODSEQ
    /// now (RFC 7162 §3.1).
    pub(super) fn enable_condstore(&mut self) {
        if !self.condstore {
            self.condstore = true;
            self.announce_highestmodseq();
        }
    }

    /// `* OK [HIGHESTMODSEQ n]` for the selected mailbox (RFC 7162 §3.1.2.1).
    pub(super) fn announce_highestmodseq(&mut self) {
        let Some(sel) = &self.selected else { return };
        if let Ok(Some(m)) = self
            .store
            .read_mailbox(sel.mailbox.account, &sel.mailbox.name)
        {
            self.untagged_status(
                Status::ok("highest").with_code(Code::HighestModSeq(m.highestmodseq.0)),
            );
        }
    }

    /// RFC 3501 §7.2.6, RFC 9051 §7.3.5: the client learns the mailbox's
    /// keywords from FLAGS, so a FETCH (FLAGS …) must not carry one that the
    /// last FLAGS did not name. When a STORE or APPEND (of this session or
    /// another) brought new keywords into the view, FLAGS and PERMANENTFLAGS
    /// go out again (as at SELECT, and as Dovecot does) before any FETCH
    /// that carries them.
    pub(super) fn announce_keywords(&mut self) {
        let Some(sel) = &self.selected else { return };
        let flags = flags_response(&sel.keywords);
        let permanent = permanent_flags(&sel.keywords, sel.read_only);
        self.untagged(&flags);
        self.untagged_status(permanent);
    }

    /// One message's flags as an untagged FETCH (with MODSEQ for
    /// CONDSTORE-aware clients).
    pub(super) fn flags_line(&self, seq: usize, m: &Msg, with_uid: bool) -> String {
        // RFC 7162 §3.2.4: with QRESYNC enabled, every FETCH carries UID.
        let uid = if with_uid || self.qresync {
            format!("UID {} ", m.uid.0)
        } else {
            String::new()
        };
        let modseq = if self.condstore {
            format!(" MODSEQ ({})", m.modseq)
        } else {
            String::new()
        };
        format!(
            "{seq} FETCH ({uid}FLAGS {}{modseq})",
            flag_names(m.flags, &m.keywords, m.recent && !self.rev2)
        )
    }

    /// Announces expunged messages: `* VANISHED uids` once QRESYNC is
    /// enabled (RFC 7162 §3.2.10), else one `* n EXPUNGE` each. `gone` are
    /// (sequence number, UID) pairs, highest sequence number first.
    fn announce_expunged(&mut self, gone: &[(usize, u32)]) {
        if gone.is_empty() {
            return;
        }
        if self.qresync {
            let mut uids: Vec<u32> = gone.iter().map(|g| g.1).collect();
            uids.sort_unstable();
            self.untagged(&format!("VANISHED {}", SequenceSet::compact(&uids)));
        } else {
            for (seq, _) in gone {
                self.untagged(&format!("{seq} EXPUNGE"));
            }
        }
    }

    pub(super) async fn select(
        &mut self,
        raw: &[u8],
        read_only: bool,
        condstore: bool,
        qresync: Option<command::Qresync>,
    ) -> Reply {
        if qresync.is_some() && !self.qresync {
            // RFC 7162 §3.2.5.
            return Err(Status::bad("QRESYNC parameter without ENABLE QRESYNC"));
        }
        if condstore {
            self.condstore = true;
        }
        // The old view's memory is reused for the new one (a big mailbox's
        // view is megabytes: no fresh pages to fault in and zero).
        let mut reuse: Vec<Msg> = Vec::new();
        if let Some(old) = self.selected.take() {
            reuse = old.msgs;
            reuse.clear();
            if self.qresync || self.rev2 {
                // RFC 7162 §3.2.11: the old mailbox is closed first.
                self.untagged_status(Status::ok("previous mailbox closed").with_code(Code::Closed));
            }
        }
        // RFC 9051 §6.3.2: a failed SELECT leaves no mailbox selected.
        let name = self.name_in(raw)?;
        let mailbox = self.find_mailbox(&name)?;
        // The view will be up to date with this MODSEQ: read before the
        // listing, so nothing committed meanwhile is missed later.
        let view_modseq = mailbox.highestmodseq.0;
        // \Recent: only a session that finds unclaimed messages writes;
        // what it claims is the range up to UIDNEXT at the claim (a message
        // delivered after it is not this session's, RFC 3501 §2.3.2). A
        // read-only session claims nothing and shows what is unclaimed.
        let recent_from = self.store.read_recent_from(mailbox.id)?;
        let claimed = if !read_only && recent_from < mailbox.uidnext {
            Some(self.store.write_claim_recent(mailbox.id).await?)
        } else {
            None
        };
        let recent = |uid: Uid| match claimed {
            Some((from, to)) => from <= uid && uid < to,
            None => read_only && uid >= recent_from,
        };
        let listing = self.store.read_listing(&mailbox)?;
        let mut msgs = if reuse.capacity() >= listing.msgs.len() {
            reuse
        } else {
            self.spare_views.give(reuse);
            self.spare_views.take(listing.msgs.len())
        };
        msgs.extend(
            listing
                .msgs
                .iter()
                .map(|m| Msg::from_summary(m.clone(), recent(m.uid))),
        );
        // The listing may be newer than the mailbox row read before it.
        let mut mailbox = mailbox;
        if let Some(last) = msgs.last() {
            mailbox.uidnext = Uid(mailbox.uidnext.0.max(last.uid.0.saturating_add(1)));
        }
        let mut keywords: BTreeSet<String> = BTreeSet::new();
        for m in &msgs {
            keywords.extend(m.keywords.iter().cloned());
        }
        self.untagged(&flags_response(&keywords));
        self.untagged(&format!("{} EXISTS", msgs.len()));
        // RFC 9051 removed RECENT and the UNSEEN response code.
        if !self.rev2 {
            self.untagged(&format!(
                "{} RECENT",
                msgs.iter().filter(|m| m.recent).count()
            ));
            if let Some(first) = msgs.iter().position(|m| !m.flags.contains(Flags::SEEN)) {
                let first = u32::try_from(first + 1).unwrap_or(u32::MAX);
                self.untagged_status(
                    Status::ok("first unseen message").with_code(Code::Unseen(first)),
                );
            }
        }
        self.untagged_status(
            Status::ok("UIDs valid").with_code(Code::UidValidity(mailbox.uidvalidity.0)),
        );
        self.untagged_status(
            Status::ok("predicted next UID").with_code(Code::UidNext(mailbox.uidnext.0)),
        );
        self.untagged_status(permanent_flags(&keywords, read_only));
        if self.condstore {
            self.untagged_status(Status::ok("highest").with_code(Code::HighestModSeq(view_modseq)));
        }
        if self.rev2 {
            // RFC 9051 §6.3.2: the mailbox's name as the server spells it.
            let mut line = b"* LIST () \"/\" ".to_vec();
            line.extend_from_slice(&self.name_out(&mailbox.name));
            line.extend_from_slice(b"\r\n");
            self.push_raw(&line);
        }
        // RFC 7162 §3.2.5.1: what changed since the client's last visit.
        if let Some(q) = qresync
            && q.uidvalidity == mailbox.uidvalidity.0
        {
            let vanished = self.store.read_expunged_since(mailbox.id, q.modseq)?;
            let vanished: Vec<u32> = vanished
                .into_iter()
                .map(|u| u.0)
                .filter(|u| {
                    q.known_uids
                        .as_ref()
                        .is_none_or(|k| k.contains(*u, u32::MAX))
                })
                .collect();
            if !vanished.is_empty() {
                self.untagged(&format!(
                    "VANISHED (EARLIER) {}",
                    SequenceSet::compact(&vanished)
                ));
            }
            let lines: Vec<String> = msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| m.modseq > q.modseq)
                .map(|(i, m)| self.flags_line(i + 1, m, true))
                .collect();
            for l in lines {
                self.untagged(&l);
            }
        }
        // Changes that raced with the listing are caught by the next sync
        // (the new view starts dirty).
        if let Some(signal) = &mut self.signal {
            self.seen = *signal.borrow_and_update();
        }
        self.selected = Some(Selected {
            mailbox,
            read_only,
            msgs,
            dirty: true,
            saved: Vec::new(),
            modseq: view_modseq,
            full: false,
            keywords,
            claimed: claimed.map(|(a, b)| vec![(a.0, b.0)]).unwrap_or_default(),
        });
        Ok(if read_only {
            Status::ok("EXAMINE completed").with_code(Code::ReadOnly)
        } else {
            Status::ok("SELECT completed").with_code(Code::ReadWrite)
        })
    }

    /// Brings the selected mailbox's view up to date with the store and
    /// announces the differences: EXPUNGE (only if `allow_expunge`),
    /// EXISTS/RECENT for new messages, FETCH FLAGS for changed flags.
    pub(super) async fn sync(&mut self, allow_expunge: bool) {
        // Compared with what the view has seen (not `has_changed`: IDLE's
        // `changed()` already marked it seen), and taken even with nothing
        // selected, so IDLE then waits for the next change.
        let now = self.signal.as_mut().map(|s| *s.borrow_and_update());
        let seen = self.seen;
        self.seen = now.unwrap_or(seen);
        let Some(sel) = &mut self.selected else {
            return;
        };
        if let Some(now) = now {
            mark(sel, &seen, &now);
        }
        let has_ghosts = sel.msgs.iter().any(|m| m.gone);
        if !(sel.dirty || allow_expunge && has_ghosts) {
            return;
        }
        let id = sel.mailbox.id;
        let read_only = sel.read_only;
        let Ok(changes) = self.store.read_changes(id, sel.modseq, sel.full) else {
            return;
        };
        let Some(MailboxChanges {
            mailbox: mb,
            changed,
            expunged: gone_uids,
            recent_from,
        }) = changes
        else {
            // Deleted by another session (RFC 9051 §7.1: CLOSED).
            self.selected = None;
            self.untagged_status(
                Status::ok("the selected mailbox was deleted").with_code(Code::Closed),
            );
            return;
        };
        if mb.uidvalidity != sel.mailbox.uidvalidity {
            self.selected = None;
            self.untagged_status(
                Status::ok("the selected mailbox was replaced").with_code(Code::Closed),
            );
            return;
        }
        sel.dirty = false;
        sel.full = false;
        sel.modseq = mb.highestmodseq.0;
        sel.mailbox = mb;
        let find = |msgs: &[Msg], uid: u32| msgs.binary_search_by_key(&uid, |m| m.uid.0).ok();
        // Which messages left: listed as expunged, or (full) not listed.
        let removed: Vec<u32> = match &gone_uids {
            Some(g) => g.iter().map(|u| u.0).collect(),
            None => {
                let live: std::collections::HashSet<u32> =
                    changed.iter().map(|m| m.uid.0).collect();
                sel.msgs
                    .iter()
                    .map(|m| m.uid.0)
                    .filter(|u| !live.contains(u))
                    .collect()
            }
        };
        // New messages are those above the view's last UID before any
        // removal: a message this sync removes is never taken for a new
        // one.
        let max = sel.max_uid();
        for &uid in &removed {
            if let Some(i) = find(&sel.msgs, uid) {
                sel.msgs[i].gone = true;
            }
        }
        let mut gone = Vec::new();
        if allow_expunge {
            gone = sel.take_out(|m| m.gone);
        }
        // Changed flags, and new messages.
        let mut flag_changes = Vec::new();
        let mut new = Vec::new();
        let mut new_keywords = false;
        for c in changed {
            if c.uid.0 > max {
                new_keywords |= sel.learn_keywords(&c.keywords);
                new.push(c);
            } else if let Some(i) = find(&sel.msgs, c.uid.0) {
                new_keywords |= sel.learn_keywords(&c.keywords);
                let m = &mut sel.msgs[i];
                if c.flags != m.flags || c.keywords != m.keywords {
                    flag_changes.push(i);
                }
                m.flags = c.flags;
                m.keywords = c.keywords;
                m.modseq = c.modseq.0;
            }
        }
        let mut lines: Vec<String> = Vec::new();
        if !new.is_empty() {
            // A claim is a write: only when some new message is still
            // unclaimed (with many sessions on one mailbox, claims that
            // found nothing were two thirds of the writer's jobs).
            let unclaimed = new.iter().any(|m| m.uid >= recent_from);
            if !read_only
                && unclaimed
                && let Ok(range) = self.store.write_claim_recent(id).await
            {
                sel.claim(range);
                // Messages this session showed before its claim covered
                // them (they arrived between a listing and a claim)
                // become recent here, and nowhere else.
                for (i, m) in sel.msgs.iter_mut().enumerate() {
                    if !m.recent && !m.gone && range.0 <= m.uid && m.uid < range.1 {
                        m.recent = true;
                        flag_changes.push(i);
                    }
                }
            }
            for m in new {
                let recent = sel.claimed(m.uid);
                sel.msgs.push(Msg::from_summary(m, recent));
            }
            lines.push(format!("{} EXISTS", sel.msgs.len()));
            if !self.rev2 {
                lines.push(format!(
                    "{} RECENT",
                    sel.msgs.iter().filter(|m| m.recent).count()
                ));
            }
        }
        flag_changes.sort_unstable();
        flag_changes.dedup();
        let sel = self.selected.as_ref().expect("selected");
        let flag_lines: Vec<String> = flag_changes
            .iter()
            .map(|&i| self.flags_line(i + 1, &sel.msgs[i], true))
            .collect();
        self.announce_expunged(&gone);
        if new_keywords {
            self.announce_keywords();
        }
        for l in flag_lines.into_iter().chain(lines) {
            self.untagged(&l);
        }
    }

    /// Drops expunged UIDs from the view, announcing each (highest first).
    pub(super) fn forget(&mut self, removed: &[Uid], silent: bool) {
        let Some(sel) = &mut self.selected else {
            return;
        };
        let removed: std::collections::HashSet<Uid> = removed.iter().copied().collect();
        let gone = sel.take_out(|m| removed.contains(&m.uid));
        if !silent {
            self.announce_expunged(&gone);
        }
    }
}
