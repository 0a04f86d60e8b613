//! Every store call of the IMAP session (RFC 9051 §6 and its extensions
//! need nothing more), in one place, each named for what it does and
//! where it runs:
//!
//! - `read_…`: short indexed reads (a few rows, one message, one chunk of
//!   a FETCH), run inline on the session's worker with
//!   [`postamt_server::blocking::read_inline`]: a hand-off to another
//!   thread would cost more than the read while the pages are cached.
//! - `write_…`: everything that writes (and so waits for the group
//!   commit's fsync) goes to tokio's blocking pool with
//!   [`postamt_store::blocking`] and returns when it is committed.
//! - The password check runs on the blocking pool too, through
//!   `AuthThrottle::login` (Argon2id takes tens of milliseconds).
//!
//! The rooms of the session call the store through these helpers only, so
//! a change of the store's interface is a change of this file.

use std::collections::HashMap;
use std::sync::Arc;

use postamt_server::blocking::read_inline;
use postamt_store::{
    Account, AccountId, AccountSignal, Delivered, Delivery, FlagOp, FlagUpdate, Flags, Mailbox,
    MailboxChanges, MailboxId, MailboxStatus, MessageSummary, ModSeq, Result, SharedStore,
    SpecialUse, StoredEnvelope, Uid, blocking, meta::MessageMeta,
};
use postamt_wire::Secret;
use tokio::sync::watch;

use crate::listing::{Listing, ListingCache};

/// The store as the session sees it.
#[derive(Clone, Copy)]
pub(super) struct StoreAccess<'a> {
    store: &'a SharedStore,
    /// Listings of big mailboxes shared by all sessions (`SELECT`).
    listings: &'a ListingCache,
}

/// Which parts of the messages one FETCH chunk needs.
#[derive(Clone, Copy)]
pub(super) struct FetchParts {
    pub(super) meta: bool,
    pub(super) envelope: bool,
    pub(super) content: bool,
}

/// One FETCH chunk's metadata, envelopes and content, by UID (messages
/// expunged meanwhile are missing).
#[derive(Default)]
pub(super) struct FetchData {
    pub(super) metas: HashMap<Uid, MessageMeta>,
    pub(super) envelopes: HashMap<Uid, StoredEnvelope>,
    pub(super) contents: HashMap<Uid, Vec<u8>>,
}

/// A FETCH chunk being read ([`StoreAccess::prefetch`]).
pub(super) struct Prefetch(tokio::task::JoinHandle<Result<FetchData>>);

impl Prefetch {
    pub(super) async fn wait(self) -> Result<FetchData> {
        match self.0.await {
            Ok(r) => r,
            Err(e) => Err(postamt_store::StoreError::Backend(e.to_string())),
        }
    }
}

fn fetch_data(
    store: &SharedStore,
    mailbox: MailboxId,
    uids: &[Uid],
    parts: FetchParts,
) -> Result<FetchData> {
    let mut data = FetchData::default();
    if parts.meta {
        data.metas = store.message_metas(mailbox, uids)?.into_iter().collect();
    }
    if parts.envelope {
        data.envelopes = store
            .message_envelopes(mailbox, uids)?
            .into_iter()
            .collect();
    }
    if parts.content {
        data.contents = store.message_contents(mailbox, uids)?.into_iter().collect();
    }
    Ok(data)
}

impl<'a> StoreAccess<'a> {
    pub(super) fn new(store: &'a SharedStore, listings: &'a ListingCache) -> StoreAccess<'a> {
        StoreAccess { store, listings }
    }

    // --- login and the account's signal ------------------------------------

    /// The password check, for `AuthThrottle::login` to run on the
    /// blocking pool.
    pub(super) fn password_check(
        &self,
        user: String,
        password: Secret<String>,
    ) -> impl FnOnce() -> Result<Option<Account>> + Send + 'static {
        let store = Arc::clone(self.store);
        move || store.verify_password(&user, password.expose())
    }

    /// The account's change signal (in memory, no I/O).
    pub(super) fn watch_account(&self, account: AccountId) -> watch::Receiver<AccountSignal> {
        self.store.watch_account(account)
    }

    // --- reads, inline ---------------------------------------------------

    pub(super) fn read_account(&self, address: &str) -> Result<Option<Account>> {
        read_inline(|| self.store.account(address))
    }

    pub(super) fn read_mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
        read_inline(|| self.store.mailbox(account, name))
    }

    /// LIST and LSUB: the account's mailboxes and subscriptions.
    pub(super) fn read_mailboxes_and_subscriptions(
        &self,
        account: AccountId,
    ) -> Result<(Vec<Mailbox>, Vec<String>)> {
        read_inline(|| {
            Ok((
                self.store.mailboxes(account)?,
                self.store.subscriptions(account)?,
            ))
        })
    }

    /// STATUS: the counts; the message list if asked for (RECENT, DELETED),
    /// and the first recent UID if asked for (`Uid(u32::MAX)` otherwise).
    pub(super) fn read_status(
        &self,
        mailbox: MailboxId,
        with_messages: bool,
        with_recent: bool,
    ) -> Result<(MailboxStatus, Vec<MessageSummary>, Uid)> {
        read_inline(|| {
            let status = self.store.mailbox_status(mailbox)?;
            let messages = if with_messages {
                self.store.messages(mailbox, ModSeq(0))?
            } else {
                Vec::new()
            };
            let recent_from = if with_recent {
                self.store.recent_from(mailbox)?
            } else {
                Uid(u32::MAX)
            };
            Ok((status, messages, recent_from))
        })
    }

    /// The first UID still `\Recent` (RFC 3501 §2.3.2), without claiming.
    pub(super) fn read_recent_from(&self, mailbox: MailboxId) -> Result<Uid> {
        read_inline(|| self.store.recent_from(mailbox))
    }

    /// SELECT's listing of the mailbox (shared for big mailboxes, caught
    /// up from its MODSEQ: `imap::listing`).
    pub(super) fn read_listing(&self, mailbox: &Mailbox) -> Result<Arc<Listing>> {
        read_inline(|| self.listings.listing(&**self.store, mailbox))
    }

    pub(super) fn read_expunged_since(&self, mailbox: MailboxId, since: u64) -> Result<Vec<Uid>> {
        read_inline(|| self.store.expunged_since(mailbox, ModSeq(since)))
    }

    /// What a sync needs (the mailbox first, then the changes: whatever
    /// commits in between is seen again next time, which is harmless);
    /// `None` when the mailbox is gone. `full`: re-read every message.
    pub(super) fn read_changes(
        &self,
        mailbox: MailboxId,
        since: u64,
        full: bool,
    ) -> Result<Option<MailboxChanges>> {
        let since = if full { ModSeq(0) } else { ModSeq(since) };
        read_inline(|| self.store.changes_since(mailbox, since))
    }

    /// The messages that contain `needle` and those to check (the
    /// full-text index), or `None`: every message must be checked.
    pub(super) fn read_text_matches(
        &self,
        mailbox: MailboxId,
        needle: &str,
        scope: postamt_store::TextScope,
    ) -> Result<Option<postamt_store::TextMatches>> {
        read_inline(|| self.store.text_matches(mailbox, needle, scope))
    }

    /// The kept SEARCH header values of the mailbox's messages, by UID.
    pub(super) fn read_search_headers(&self, mailbox: MailboxId) -> Result<crate::listing::Kept> {
        read_inline(|| self.listings.kept_headers(&**self.store, mailbox))
    }

    pub(super) fn read_message(
        &self,
        mailbox: MailboxId,
        uid: Uid,
        with_content: bool,
    ) -> Result<(Option<MessageMeta>, Option<Vec<u8>>)> {
        read_inline(|| {
            let meta = self.store.message_meta(mailbox, uid)?;
            let content = if with_content {
                self.store.message_content(mailbox, uid)?
            } else {
                None
            };
            Ok((meta, content))
        })
    }

    /// One FETCH chunk, read in bulk (range queries).
    pub(super) fn read_fetch_data(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        parts: FetchParts,
    ) -> Result<FetchData> {
        read_inline(|| fetch_data(self.store, mailbox, uids, parts))
    }

    /// Starts reading a FETCH chunk on the blocking pool, to be taken
    /// with [`Prefetch::wait`] once the chunk before is written; dropped
    /// (the FETCH failed), its answer is thrown away.
    pub(super) fn prefetch(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        parts: FetchParts,
    ) -> Prefetch {
        let store = Arc::clone(self.store);
        Prefetch(tokio::task::spawn_blocking(move || {
            fetch_data(&store, mailbox, &uids, parts)
        }))
    }

    // --- writes, on the blocking pool ----------------------------------------

    /// Takes the mailbox's `\Recent` messages for this session (RFC 3501
    /// §2.3.2: recent in one session only): the mark moves to UIDNEXT.
    /// Returns the first UID that is recent here.
    pub(super) async fn write_claim_recent(&self, mailbox: MailboxId) -> Result<(Uid, Uid)> {
        let store = Arc::clone(self.store);
        blocking(move || store.claim_recent(mailbox)).await
    }

    /// CREATE, with the missing parents (RFC 9051 §6.3.4).
    pub(super) async fn write_create_mailbox(
        &self,
        account: AccountId,
        name: String,
        special: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        let store = Arc::clone(self.store);
        blocking(move || {
            let mut path = String::new();
            for level in name.split('/') {
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(level);
                if path != name && store.mailbox(account, &path)?.is_none() {
                    store.create_mailbox(account, &path, None)?;
                }
            }
            store.create_mailbox(account, &name, special)
        })
        .await
    }

    pub(super) async fn write_delete_mailbox(
        &self,
        account: AccountId,
        name: String,
    ) -> Result<()> {
        let store = Arc::clone(self.store);
        blocking(move || store.delete_mailbox(account, &name)).await
    }

    pub(super) async fn write_rename_mailbox(
        &self,
        account: AccountId,
        from: String,
        to: String,
    ) -> Result<()> {
        let store = Arc::clone(self.store);
        blocking(move || store.rename_mailbox(account, &from, &to)).await
    }

    /// SUBSCRIBE (`subscribed`) or UNSUBSCRIBE.
    pub(super) async fn write_subscription(
        &self,
        account: AccountId,
        name: String,
        subscribed: bool,
    ) -> Result<()> {
        let store = Arc::clone(self.store);
        blocking(move || {
            if subscribed {
                store.subscribe(account, &name)
            } else {
                store.unsubscribe(account, &name)
            }
        })
        .await
    }

    /// APPEND: all the messages or none (RFC 3502 §6.3.11).
    pub(super) async fn write_deliveries(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Result<Vec<Vec<Delivered>>> {
        let store = Arc::clone(self.store);
        blocking(move || store.deliver_many(deliveries)).await
    }

    /// STORE, and the `\Seen` of a FETCH: the changed messages' new flags,
    /// and (with `unchanged_since`, RFC 7162 §3.1.3) the UIDs left alone
    /// because they changed after it.
    pub(super) async fn write_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        op: FlagOp,
        flags: Flags,
        keywords: Vec<String>,
        unchanged_since: Option<u64>,
    ) -> Result<(Vec<FlagUpdate>, Vec<Uid>)> {
        let store = Arc::clone(self.store);
        let since = unchanged_since.map(ModSeq);
        blocking(move || store.store_flags(mailbox, &uids, op, flags, &keywords, since)).await
    }

    /// EXPUNGE: the UIDs that were there.
    pub(super) async fn write_expunge(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
    ) -> Result<Vec<Uid>> {
        let store = Arc::clone(self.store);
        blocking(move || store.expunge(mailbox, &uids)).await
    }

    /// COPY, or MOVE (`expunge_source`): (source UID, new UID) pairs.
    pub(super) async fn write_copy(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
        expunge_source: bool,
    ) -> Result<Vec<(Uid, Uid)>> {
        let store = Arc::clone(self.store);
        blocking(move || store.copy_messages(from, &uids, to, expunge_source)).await
    }
}
