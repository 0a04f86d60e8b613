//! The mail store: accounts, domains, aliases, mailboxes and messages, behind
//! one domain-level trait, [`Store`]. Protocol code talks to this trait and
//! never sees SQL.
//!
//! The default backend is [`SqliteStore`] (bundled SQLite, WAL,
//! `synchronous=FULL`, group commit). Any future backend must pass the suite
//! in [`conformance`] unchanged (enable the `conformance` feature).
//!
//! The trait is synchronous: calls may block on disk (and on the group
//! commit). Async code calls it from `tokio::task::spawn_blocking`.

/// ENVELOPE pre-rendering (now in `postamt-wire`).
pub use postamt_wire::imap::envelope as imapdata;
pub use postamt_wire::meta;
mod model;
pub mod password;
mod sqlite;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use meta::MessageMeta;
pub use model::*;
pub use sqlite::{SqliteOptions, SqliteStore};

use std::sync::Arc;

/// Errors classified by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist (a 5xx / NO for the client).
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The request is malformed (bad address, bad mailbox name, …).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The account's quota would be exceeded (RFC 9208 OVERQUOTA).
    #[error("over quota")]
    OverQuota,
    /// The backend failed; retrying later may work (4xx / `[SYS/TEMP]`).
    #[error("storage backend: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The mail store. See the crate docs; every method is one atomic operation.
pub trait Store: Send + Sync + 'static {
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

    // --- aliases -----------------------------------------------------------
    /// Adds targets to `alias` (`user@domain`, or `@domain` for a catch-all).
    fn add_alias(&self, alias: &str, targets: &[String]) -> Result<()>;
    fn remove_alias(&self, alias: &str) -> Result<()>;
    fn aliases(&self) -> Result<Vec<Alias>>;
    /// The targets of exactly this alias (no recursion, no catch-all).
    fn alias_targets(&self, alias: &str) -> Result<Vec<String>>;

    // --- mailboxes ---------------------------------------------------------
    fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox>;
    fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    /// `INBOX` matches case-insensitively (RFC 9051 §5.1).
    fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>>;
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

    // --- messages ----------------------------------------------------------
    /// Stores one message for all targets atomically: all or none. The
    /// content is stored once and referenced by every target. Returns when
    /// the delivery is durable (committed and fsync'd).
    fn deliver(&self, delivery: Delivery) -> Result<Vec<Delivered>>;
    /// Stores a delivery for local targets and queues a message for remote
    /// recipients in one transaction: both or neither (an SMTP `250` covers
    /// both).
    fn accept(&self, delivery: Option<Delivery>, outbound: Option<Outbound>) -> Result<Accepted>;
    /// [`Store::accept`] for async callers: the future resolves when the
    /// commit is durable, and no thread waits for it meanwhile (an SMTP
    /// session delivers without a hop to the blocking pool). The default
    /// runs `accept` on the blocking pool.
    fn accept_async(
        self: Arc<Self>,
        delivery: Option<Delivery>,
        outbound: Option<Outbound>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Accepted>> + Send>> {
        Box::pin(blocking(move || self.accept(delivery, outbound)))
    }
    /// All messages of the mailbox, ascending by UID.
    /// Several deliveries in one transaction: all or none (IMAP
    /// MULTIAPPEND, RFC 3502 §6.3.11). One result per delivery, in order.
    fn deliver_many(&self, deliveries: Vec<Delivery>) -> Result<Vec<Vec<Delivered>>>;
    fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageSummary>>;
    /// Messages added or changed after `since` (MODSEQ greater), by UID:
    /// what a session that saw the mailbox at `since` must catch up on.
    fn messages_changed_since(
        &self,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<Vec<MessageSummary>>;
    /// A mailbox by id (its name may have changed under a session).
    fn mailbox_by_id(&self, mailbox: MailboxId) -> Result<Option<Mailbox>>;
    /// The octets of the message (prefix and shared content).
    fn message_content(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<Vec<u8>>>;
    /// The parsed metadata, offsets adjusted for the target's prefix.
    fn message_meta(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<MessageMeta>>;
    /// [`Store::message_meta`] for many messages at once (IMAP FETCH of a
    /// range); messages that are gone are left out. In UID order.
    fn message_metas(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, MessageMeta)>>;
    /// What FETCH ENVELOPE sends, for many messages at once (in UID order;
    /// messages that are gone are left out): rendered at delivery, or the
    /// raw values for the caller to render.
    fn message_envelopes(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, imapdata::EnvelopeData)>>;
    /// [`Store::message_content`] for many messages at once; messages that
    /// are gone are left out. In UID order.
    fn message_contents(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, Vec<u8>)>>;
    /// Changes flags; messages whose flags don't change keep their MODSEQ
    /// and are not returned.
    fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
    ) -> Result<Vec<FlagUpdate>>;
    /// [`Store::store_flags`] for IMAP CONDSTORE (RFC 7162 §3.1.3): messages
    /// whose MODSEQ is above `unchanged_since` are left alone and returned
    /// in the second list (the `MODIFIED` response code).
    fn store_flags_unchanged_since(
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
    /// §2.3.2). With `claim`, the caller takes the recent messages for
    /// itself: the mark moves to UIDNEXT atomically, so each message is
    /// recent in one session only.
    fn claim_recent(&self, mailbox: MailboxId, claim: bool) -> Result<Uid>;

    // --- outbound queue --------------------------------------------------------
    /// Puts a message for other domains into the durable queue; returns when
    /// it is committed.
    fn enqueue(&self, message: Outbound) -> Result<QueueId>;
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

    // --- sessions ------------------------------------------------------------
    /// Takes the POP3 maildrop lock of the account; `None` if it is held.
    fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>>;
    /// Subscribes to the change feed. A receiver that lags must resynchronise
    /// from the store (RecvError::Lagged).
    fn watch(&self) -> tokio::sync::broadcast::Receiver<Change>;
    /// Watches one account: the signal changes after every commit that
    /// touched the account, and when another process wrote. Only the
    /// sessions of that account wake up (an IMAP IDLE session must not wake
    /// for every delivery on the server), and a watcher never lags.
    fn watch_account(&self, account: AccountId) -> tokio::sync::watch::Receiver<AccountSignal>;
}

/// A shared handle, as the servers pass it around.
pub type SharedStore = Arc<dyn Store>;

/// Runs a store call (which may block on disk or on the group commit) on
/// tokio's blocking pool, from async code.
pub async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static + From<StoreError>,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(E::from(StoreError::Backend(e.to_string()))),
    }
}

/// Canonical form of a mailbox name: `INBOX` in any case becomes `INBOX`,
/// also as the first level of a hierarchical name (RFC 9051 §5.1).
pub fn canonical_mailbox_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        return "INBOX".into();
    }
    match name.split_once('/') {
        Some((first, rest)) if first.eq_ignore_ascii_case("INBOX") => format!("INBOX/{rest}"),
        _ => name.to_string(),
    }
}

/// Checks a mailbox name: non-empty, no empty hierarchy levels, no control
/// characters, bounded length.
pub fn check_mailbox_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 1000
        || name.starts_with('/')
        || name.ends_with('/')
        || name.contains("//")
        || name.chars().any(|c| c.is_control() || c == '*' || c == '%');
    if bad {
        Err(StoreError::Invalid(format!("mailbox name {name:?}")))
    } else {
        Ok(())
    }
}

/// Lower-cases and checks `local@domain`.
pub fn normalize_address(address: &str) -> Result<String> {
    let a = address.trim().to_lowercase();
    match a.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !local.contains('@')
                && a.len() <= 254
                && !a
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>') =>
        {
            Ok(a)
        }
        _ => Err(StoreError::Invalid(format!("address {address:?}"))),
    }
}

/// Turns every line ending into CRLF (bare LF and bare CR alike) and ends a
/// non-empty message with CRLF, so that sizes count exactly what POP3 RETR
/// and IMAP FETCH send (RFC 1939 §11, RFC 9051 §2.3.4).
pub fn normalize_crlf(input: &[u8]) -> Vec<u8> {
    normalize_crlf_owned(input.to_vec())
}

/// [`normalize_crlf`] for owned content: clean input (the usual case, since
/// SMTP refuses bare CR/LF) is returned as it is, without a copy.
pub fn normalize_crlf_owned(mut input: Vec<u8>) -> Vec<u8> {
    if is_crlf_clean(&input) {
        if !input.is_empty() && !input.ends_with(b"\r\n") {
            input.extend_from_slice(b"\r\n");
        }
        return input;
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 32 + 2);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// True when every CR is followed by LF and every LF follows a CR. Only the
/// line endings are looked at (memchr), not every byte.
pub fn is_crlf_clean(input: &[u8]) -> bool {
    if input.first() == Some(&b'\n') || input.last() == Some(&b'\r') {
        return false;
    }
    // Clean means: at every position, "the byte before is CR" and "this byte
    // is LF" are both true or both false. Checked over whole blocks without
    // branches (the compiler vectorizes it), instead of stopping at every
    // line end: messages have a line end every 80 bytes or so.
    const BLOCK: usize = 4096;
    let mut at = 1;
    while at < input.len() {
        let end = (at + BLOCK).min(input.len());
        let (prev, cur) = (&input[at - 1..end - 1], &input[at..end]);
        let mismatch = prev.iter().zip(cur).fold(0u8, |acc, (p, c)| {
            acc | (u8::from(*p == b'\r') ^ u8::from(*c == b'\n'))
        });
        if mismatch != 0 {
            return false;
        }
        at = end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_clean_check() {
        for (input, clean) in [
            (&b""[..], true),
            (b"a", true),
            (b"\r\n", true),
            (b"a\r\nb\r\n", true),
            (b"\n", false),
            (b"\r", false),
            (b"a\nb", false),
            (b"a\rb", false),
            (b"a\r\r\n", false),
            (b"a\r\n\n", false),
            (b"\r\n\r", false),
        ] {
            assert_eq!(is_crlf_clean(input), clean, "{input:?}");
        }
        // Across the block boundary of the vectorized check.
        for at in [4094usize, 4095, 4096, 4097, 8191, 8192] {
            let mut v = vec![b'x'; 9000];
            v[at] = b'\n';
            assert!(!is_crlf_clean(&v), "bare LF at {at}");
            v[at - 1] = b'\r';
            assert!(is_crlf_clean(&v), "CRLF at {at}");
            v[at] = b'y';
            assert!(!is_crlf_clean(&v), "bare CR at {}", at - 1);
        }
    }

    #[test]
    fn crlf_normalisation() {
        assert_eq!(normalize_crlf(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(normalize_crlf(b""), b"");
        assert_eq!(normalize_crlf(b"\r\n\r\n"), b"\r\n\r\n");
    }

    #[test]
    fn inbox_is_case_insensitive() {
        assert_eq!(canonical_mailbox_name("inBox"), "INBOX");
        assert_eq!(canonical_mailbox_name("inbox/x"), "INBOX/x");
        assert_eq!(canonical_mailbox_name("Inboxes"), "Inboxes");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            normalize_address(" Alice@Example.ORG ").unwrap(),
            "alice@example.org"
        );
        assert!(normalize_address("nodomain").is_err());
        assert!(normalize_address("a@b@c").is_err());
        assert!(normalize_address("a b@c").is_err());
    }
}
