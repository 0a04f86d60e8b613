//! The store's interface: one trait per concern, and [`Store`], all of them
//! together.
//!
//! - [`Directory`]: local domains, accounts, aliases (who receives mail).
//! - [`Mailboxes`]: an account's mailboxes and subscriptions.
//! - [`Messages`]: messages in mailboxes: delivery (and queueing in the same
//!   transaction), listing, content, flags, expunge, copy and move.
//! - [`Queue`]: the outbound queue, as the relay and the admin see it.
//! - [`Coordination`]: what concurrent sessions coordinate through: change
//!   notices and the POP3 maildrop lock.
//! - [`Reports`]: DMARC aggregate report counts waiting for their period
//!   to end (RFC 9990).
//!
//! A backend implements all six; [`Store`] is implemented for it by a
//! blanket impl, and servers pass one [`SharedStore`] around. Every method is
//! one atomic operation. The methods are synchronous: they may block on disk
//! (and on the group commit); async code calls them through
//! [`crate::blocking`] (or [`Messages::accept_async`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::meta::MessageMeta;
use crate::model::*;
use crate::{Result, SearchHeaders, StoreError, blocking};

/// Local domains, accounts and aliases: who has a mailbox here, with which
/// password and quota, and which addresses forward where.
pub trait Directory: Send + Sync + 'static {
    // --- local domains -----------------------------------------------------
    fn add_domain(&self, name: &str) -> Result<()>;
    fn remove_domain(&self, name: &str) -> Result<()>;
    fn domains(&self) -> Result<Vec<String>>;

    // --- accounts ----------------------------------------------------------
    /// Creates the account with its INBOX and the special-use mailboxes
    /// (Drafts, Sent, Trash, Junk, Archive, RFC 6154), all subscribed. The
    /// password is stored as an Argon2id hash.
    fn create_account(&self, address: &str, password: &str) -> Result<Account>;
    fn set_password(&self, address: &str, password: &str) -> Result<()>;
    /// Removes the account, its mailboxes and messages.
    fn delete_account(&self, address: &str) -> Result<()>;
    fn accounts(&self) -> Result<Vec<Account>>;
    fn account(&self, address: &str) -> Result<Option<Account>>;
    /// The account if `password` is right. Takes the same time whether or
    /// not the account exists.
    fn verify_password(&self, address: &str, password: &str) -> Result<Option<Account>>;
    fn set_quota(&self, account: AccountId, bytes: Option<u64>) -> Result<()>;
    /// The S/MIME certificate (PEM) every message delivered to the account
    /// is encrypted to before it is stored (encryption at rest); `None`
    /// turns that off. Checking the certificate is the caller's business.
    fn set_smime_certificate(&self, account: AccountId, pem: Option<&[u8]>) -> Result<()>;
    /// The certificates of those of `accounts` that have one (one read for
    /// a whole delivery).
    fn smime_certificates(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, Vec<u8>)>>;

    // --- aliases -----------------------------------------------------------
    /// Adds targets to `alias` (`user@domain`, or `@domain` for a catch-all).
    fn add_alias(&self, alias: &str, targets: &[String]) -> Result<()>;
    fn remove_alias(&self, alias: &str) -> Result<()>;
    fn aliases(&self) -> Result<Vec<Alias>>;
    /// The targets of exactly this alias (no recursion, no catch-all).
    fn alias_targets(&self, alias: &str) -> Result<Vec<String>>;
}

/// An account's mailboxes (names, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) and
/// its subscriptions.
pub trait Mailboxes: Send + Sync + 'static {
    fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox>;
    fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    /// `INBOX` matches case-insensitively (RFC 9051 §5.1).
    fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>>;
    /// A mailbox by id (its name may have changed under a session).
    fn mailbox_by_id(&self, mailbox: MailboxId) -> Result<Option<Mailbox>>;
    fn mailbox_status(&self, mailbox: MailboxId) -> Result<MailboxStatus>;
    /// Renames the mailbox and its children. Renaming INBOX moves its
    /// messages into a new mailbox and leaves INBOX empty (RFC 9051 §6.3.6).
    fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()>;
    /// Deletes the mailbox and its messages (not its children). INBOX can't
    /// be deleted. A later mailbox of the same name gets a new UIDVALIDITY.
    fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()>;
    fn subscribe(&self, account: AccountId, name: &str) -> Result<()>;
    fn unsubscribe(&self, account: AccountId, name: &str) -> Result<()>;
    fn subscriptions(&self, account: AccountId) -> Result<Vec<String>>;
}

/// Messages in mailboxes: delivery (with queueing for remote recipients in
/// the same transaction), listings, content and metadata, flags, expunge,
/// copy and move, and IMAP4rev1 `\Recent`.
pub trait Messages: Send + Sync + 'static {
    /// Stores deliveries for local targets and queues a message for remote
    /// recipients in one transaction: all or none (an SMTP `250` covers
    /// all). Several deliveries when targets get different content (a
    /// copy encrypted at rest for one of them). `Accepted::delivered`
    /// lists the targets in order, delivery after delivery.
    fn accept(&self, deliveries: Vec<Delivery>, outbound: Option<Outbound>) -> Result<Accepted>;
    /// [`Messages::accept`] for async callers: the future resolves when the
    /// commit is durable, and no thread waits for it meanwhile (an SMTP
    /// session delivers without a hop to the blocking pool). The default
    /// runs `accept` on the blocking pool.
    fn accept_async(
        self: Arc<Self>,
        deliveries: Vec<Delivery>,
        outbound: Option<Outbound>,
    ) -> Pin<Box<dyn Future<Output = Result<Accepted>> + Send>> {
        Box::pin(blocking(move || self.accept(deliveries, outbound)))
    }
    /// Stores one message for all targets atomically: all or none. The
    /// content is stored once and referenced by every target. Returns when
    /// the delivery is durable (committed and fsync'd). `accept` without
    /// an outbound part.
    fn deliver(&self, delivery: Delivery) -> Result<Vec<Delivered>> {
        if delivery.targets.is_empty() {
            return Ok(Vec::new());
        }
        self.accept(vec![delivery], None).map(|a| a.delivered)
    }
    /// Puts a message for other domains into the durable queue; returns when
    /// it is committed. `accept` without a local delivery.
    fn enqueue(&self, message: Outbound) -> Result<QueueId> {
        self.accept(Vec::new(), Some(message))?
            .queued
            .ok_or_else(|| StoreError::Backend("nothing queued".into()))
    }
    /// Several deliveries in one transaction: all or none (IMAP
    /// MULTIAPPEND, RFC 3502 §6.3.11). One result per delivery, in order.
    fn deliver_many(&self, deliveries: Vec<Delivery>) -> Result<Vec<Vec<Delivered>>>;
    /// The messages of the mailbox whose MODSEQ is above `since`,
    /// ascending by UID. With `ModSeq(0)`: all of them (a MODSEQ is
    /// positive, RFC 7162 `mod-sequence-value`); with the MODSEQ a session
    /// saw the mailbox at: what was added or changed since, what it must
    /// catch up on ([`Messages::expunged_since`] says what left).
    fn messages(&self, mailbox: MailboxId, since: ModSeq) -> Result<Vec<MessageSummary>>;
    /// [`Messages::messages`] of one message (the web interface's message
    /// page); `None` if it is not in the mailbox. A backend whose listing
    /// is costly overrides this with a point read (SQLite does).
    fn message_summary(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<MessageSummary>> {
        Ok(self
            .messages(mailbox, ModSeq(0))?
            .into_iter()
            .find(|m| m.uid == uid))
    }
    /// The octets of the messages (prefix and shared content), for many
    /// messages at once (IMAP FETCH of a range); messages that are gone are
    /// left out. In UID order.
    fn message_contents(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, Vec<u8>)>>;
    /// [`Messages::message_contents`] of one message (POP3 RETR, IMAP
    /// FETCH of one message). A backend whose bulk read is costly for a
    /// single message overrides this with a point read (SQLite does).
    fn message_content(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<Vec<u8>>> {
        Ok(self
            .message_contents(mailbox, &[uid])?
            .pop()
            .map(|(_, c)| c))
    }
    /// The parsed metadata, offsets adjusted for the target's prefix, for
    /// many messages at once (IMAP FETCH of a range); messages that are gone
    /// are left out. In UID order.
    fn message_metas(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, MessageMeta)>>;
    /// [`Messages::message_metas`] of one message.
    fn message_meta(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<MessageMeta>> {
        Ok(self.message_metas(mailbox, &[uid])?.pop().map(|(_, m)| m))
    }
    /// The messages of `mailbox` whose text contains `needle`
    /// (case-insensitively, as `str::to_lowercase` folds): for SEARCH BODY
    /// the text of the body parts, for TEXT the header fields as well, as
    /// `postamt_wire::search::extract` gives them, for HEADER the header
    /// fields — those the index is sure of, and those the caller must
    /// check. `None`: the backend cannot narrow (no index, or a needle too
    /// short for it) and every message must be checked.
    fn text_matches(
        &self,
        _mailbox: MailboxId,
        _needle: &str,
        _scope: TextScope,
    ) -> Result<Option<TextMatches>> {
        Ok(None)
    }
    /// The kept SEARCH header values of the messages of `mailbox` with a
    /// UID above `after`, in UID order (`None`: none kept for it: the
    /// message must be read). Values never change for a UID, so a caller
    /// may keep them and ask only for what is new.
    fn search_headers(
        &self,
        mailbox: MailboxId,
        after: Uid,
    ) -> Result<Vec<(Uid, Option<SearchHeaders>)>>;
    /// What FETCH ENVELOPE sends, for many messages at once (in UID order;
    /// messages that are gone are left out): rendered at delivery, or the
    /// raw values for the caller to render.
    fn message_envelopes(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, StoredEnvelope)>>;
    /// Changes flags; messages whose flags don't change keep their MODSEQ
    /// and are not returned. With `unchanged_since` (IMAP CONDSTORE, RFC
    /// 7162 §3.1.3), messages whose MODSEQ is above it are left alone and
    /// returned in the second list (the `MODIFIED` response code); without
    /// it that list is empty.
    fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> Result<(Vec<FlagUpdate>, Vec<Uid>)>;
    /// Removes the messages; returns the UIDs that were there. They are
    /// logged with the new MODSEQ for QRESYNC (RFC 7162 §3.2.10).
    fn expunge(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<Uid>>;
    /// UIDs expunged with a MODSEQ above `since`, ascending.
    fn expunged_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<Vec<Uid>>;
    /// The mailbox now, [`Messages::messages`] since `since` and (unless
    /// `since` is `ModSeq(0)`) [`Messages::expunged_since`], all read at one
    /// moment: a message is never both changed and expunged in the answer.
    /// `None`: the mailbox is gone.
    fn changes_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<Option<MailboxChanges>>;
    /// Copies messages (sharing their content) into `to`, keeping flags,
    /// keywords and internal date; with `expunge_source` they are removed
    /// from `from` in the same transaction (IMAP MOVE, RFC 6851). Returns
    /// (source UID, new UID) pairs in source UID order; UIDs not in `from`
    /// are skipped. Fails with `OverQuota` if the copies do not fit.
    fn copy_messages(
        &self,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
        expunge_source: bool,
    ) -> Result<Vec<(Uid, Uid)>>;
    /// The first UID that is still "recent" (IMAP4rev1 `\Recent`, RFC 3501
    /// §2.3.2): messages from it on have not been claimed by any session.
    /// A read: it claims nothing.
    fn recent_from(&self, mailbox: MailboxId) -> Result<Uid>;
    /// Takes the recent messages for the caller: moves the mark to UIDNEXT
    /// atomically and returns where it was, so each message is recent in
    /// one session only (a second call returns the new mark).
    ///
    /// Returns the claimed range (from, to): the messages with from <= UID
    /// < to are recent in the caller's session, and in no other; a message
    /// with a UID at or above `to` arrived after the claim and is someone
    /// else's to claim (the caller's own next claim, perhaps).
    fn claim_recent(&self, mailbox: MailboxId) -> Result<(Uid, Uid)>;
}

/// The outbound queue: messages for other domains waiting for the relay.
/// Entries are added with a local delivery by [`Messages::accept`] (one
/// transaction), alone by [`Messages::enqueue`], and as notifications by
/// [`Queue::queue_settle`].
pub trait Queue: Send + Sync + 'static {
    /// Every queue entry, oldest first (without content).
    fn queue(&self) -> Result<Vec<QueueEntry>>;
    /// One entry with its content.
    fn queue_entry(&self, id: QueueId) -> Result<Option<(QueueEntry, Vec<u8>)>>;
    /// Removes an entry (all its recipients).
    fn queue_delete(&self, id: QueueId) -> Result<()>;
    /// Takes up to `limit` entries due at `now` (not held, not active,
    /// recipients pending), soonest first, and marks them active so the
    /// next call does not return them again; without content.
    fn queue_claim(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>>;
    /// Makes every active entry inactive again (at start: attempts that a
    /// crash or stop cut short are due again), and removes entries with no
    /// recipient pending (a crash after the last delivery, before the
    /// settle). Returns how many claims were released.
    fn queue_release_claims(&self) -> Result<usize>;
    /// When the next inactive entry falls due.
    fn queue_next_due(&self) -> Result<Option<i64>>;
    /// Records recipients as delivered, durably, as soon as the remote
    /// server accepted them (at-least-once: nothing else re-sends them).
    fn queue_delivered(&self, id: QueueId, addresses: &[String]) -> Result<()>;
    /// Records the end of an attempt (see [`QueueSettle`]) and makes the
    /// entry inactive; removes it once no recipient is pending.
    fn queue_settle(&self, id: QueueId, settle: QueueSettle) -> Result<()>;
    /// Makes an entry due now (`postamt queue retry`).
    fn queue_retry(&self, id: QueueId) -> Result<()>;
    /// Holds an entry (never tried until released) or releases it.
    fn queue_hold(&self, id: QueueId, held: bool) -> Result<()>;
}

/// What concurrent sessions (and the relay) coordinate through, beside the
/// data itself: notices that something was committed, and who holds a
/// maildrop. Named for that role rather than for a mechanism: none of it is
/// stored mail, none of it survives a restart, and a caller that missed a
/// notice re-reads the store. The SQLite backend keeps it in the server's
/// memory (the writer publishes after each commit, and polls for commits by
/// other processes); a shared backend will use the database's own
/// (PostgreSQL LISTEN/NOTIFY and advisory locks), so that several server
/// processes see each other.
pub trait Coordination: Send + Sync + 'static {
    /// Takes the POP3 maildrop lock of the account; `None` if it is held.
    fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>>;
    /// Subscribes to the change feed. A receiver that lags must resynchronise
    /// from the store (RecvError::Lagged).
    fn watch(&self) -> broadcast::Receiver<Change>;
    /// Watches one account: the signal changes after every commit that
    /// touched the account, and when another process wrote. Only the
    /// sessions of that account wake up (an IMAP IDLE session must not wake
    /// for every delivery on the server), and a watcher never lags.
    fn watch_account(&self, account: AccountId) -> watch::Receiver<AccountSignal>;
}

/// DMARC aggregate report counts (RFC 9990): per reporting period, policy
/// domain and row, how many messages. The published policy and the row
/// are opaque strings to the store (JSON made by `postamt_auth::report`).
pub trait Reports: Send + Sync + 'static {
    /// Adds counts: a row already stored for the same period and domain
    /// grows by the count; the domain's published policy becomes the one
    /// given last (RFC 9990 §2.1: the final configuration observed).
    fn report_add(&self, counts: Vec<ReportCount>) -> Result<()>;
    /// The counts of every period that ended at or before `now`.
    fn report_due(&self, now: i64) -> Result<Vec<ReportCount>>;
    /// Removes one report's counts once it was queued (or dropped).
    fn report_remove(&self, domain: &str, begin: i64) -> Result<()>;
}

/// The whole store: every concern in one handle, as the servers pass it
/// around. Implemented for every type that implements the six traits.
///
/// Calls through `dyn Store` (a [`SharedStore`]) need no import; code that
/// holds a concrete backend imports the traits whose methods it calls.
pub trait Store:
    Directory + Mailboxes + Messages + Queue + Coordination + Reports + Send + Sync + 'static
{
}

impl<T: Directory + Mailboxes + Messages + Queue + Coordination + Reports> Store for T {}

/// A shared handle, as the servers pass it around.
pub type SharedStore = Arc<dyn Store>;
