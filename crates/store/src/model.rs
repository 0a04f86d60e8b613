//! The domain model: what protocol code sees of the store.
//!
//! Names follow IMAP (RFC 9051 §2.3): a [`Uid`] is strictly ascending within
//! a mailbox and never reused while its [`UidValidity`] stands; every change
//! to a message bumps the mailbox's [`ModSeq`] (RFC 7162 §3).

use serde::{Deserialize, Serialize};

use crate::meta::MessageMeta;

/// Identifies an account (one login, one set of mailboxes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub i64);

/// Identifies a mailbox across the whole store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MailboxId(pub i64);

/// An IMAP unique identifier (RFC 9051 §2.3.1.1): a non-zero 32-bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Uid(pub u32);

/// RFC 9051 §2.3.1.1: changes whenever UIDs of a mailbox are reassigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UidValidity(pub u32);

/// A modification sequence (RFC 7162 §3.1.1): grows with every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModSeq(pub u64);

/// The IMAP system flags kept per message (RFC 9051 §2.3.2). `\Recent` is a
/// property of a session, not of the message, and is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Flags(u8);

impl Flags {
    pub const SEEN: Flags = Flags(1);
    pub const ANSWERED: Flags = Flags(2);
    pub const FLAGGED: Flags = Flags(4);
    pub const DELETED: Flags = Flags(8);
    pub const DRAFT: Flags = Flags(16);
    const ALL: [(Flags, &'static str); 5] = [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
    ];

    pub const fn empty() -> Flags {
        Flags(0)
    }
    pub const fn bits(self) -> u8 {
        self.0
    }
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits & 0x1f)
    }
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    pub const fn difference(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
    /// Parses a system flag name, case-insensitively (RFC 9051 §9 `flag`).
    pub fn from_name(name: &str) -> Option<Flags> {
        Flags::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(f, _)| *f)
    }
    /// The flag names set, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::ALL
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

/// How `store_flags` combines the given flags with the present ones
/// (RFC 9051 §6.4.6: `FLAGS`, `+FLAGS`, `-FLAGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Replace,
    Add,
    Remove,
}

/// Special-use attributes of RFC 6154 §2 that the store knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    Drafts,
    Sent,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    /// The mailboxes every new account gets, with their names.
    pub const DEFAULTS: [(&'static str, SpecialUse); 5] = [
        ("Drafts", SpecialUse::Drafts),
        ("Sent", SpecialUse::Sent),
        ("Trash", SpecialUse::Trash),
        ("Junk", SpecialUse::Junk),
        ("Archive", SpecialUse::Archive),
    ];

    /// The attribute as IMAP writes it (`\Sent`).
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }

    pub fn from_attribute(s: &str) -> Option<SpecialUse> {
        SpecialUse::DEFAULTS
            .iter()
            .map(|(_, u)| *u)
            .find(|u| u.attribute().eq_ignore_ascii_case(s))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    /// The login and primary address, stored lower-cased.
    pub address: String,
    /// `None`: unlimited.
    pub quota_bytes: Option<u64>,
    /// Sum of the sizes of all messages in all mailboxes of the account.
    pub used_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// `user@domain`, or `@domain` for the domain's catch-all.
    pub alias: String,
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub account: AccountId,
    /// Full hierarchical name with `/` as the delimiter; `INBOX` is canonical.
    pub name: String,
    pub uidvalidity: UidValidity,
    /// The UID the next message will get; above every UID ever assigned.
    pub uidnext: Uid,
    pub highestmodseq: ModSeq,
    pub special_use: Option<SpecialUse>,
}

/// Counters of a mailbox (IMAP STATUS, POP3 STAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailboxStatus {
    pub messages: u32,
    pub unseen: u32,
    pub size: u64,
}

/// What listing a mailbox returns for each message: no content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    pub uid: Uid,
    pub modseq: ModSeq,
    pub flags: Flags,
    pub keywords: Vec<String>,
    /// Seconds since the Unix epoch (RFC 9051 §2.3.3).
    pub internaldate: i64,
    /// RFC822.SIZE: the octets FETCH/RETR send, CRLF line endings.
    pub size: u64,
}

/// The outcome of a flag change for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    pub uid: Uid,
    pub modseq: ModSeq,
    pub flags: Flags,
    pub keywords: Vec<String>,
}

/// One message going into one or more mailboxes. The content is stored once
/// and shared; each target gets its own header `prefix` (e.g. `Return-Path`,
/// `Delivered-To`) that is sent in front of the shared content.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message with CRLF line endings (`postamt_wire::crlf`).
    pub content: Vec<u8>,
    /// Parsed once, here, so reading never re-parses (see [`MessageMeta`]).
    pub meta: MessageMeta,
    /// The message's IMAP ENVELOPE as the IMAP code rendered it at delivery
    /// (`postamt_wire::imap::prerendered_envelope`), kept beside the
    /// content as opaque bytes so `FETCH 1:* (ENVELOPE)` copies instead of
    /// rendering; `None` when there is no form that suits every client.
    /// The store never renders IMAP syntax itself.
    pub imap_envelope: Option<Vec<u8>>,
    /// The header values SEARCH FROM/TO/CC/BCC/SUBJECT match
    /// (`postamt_wire::search::SearchHeaders::of`), computed by the caller
    /// and kept beside the content; `None`: not kept (searches then read
    /// the message).
    pub search_headers: Option<crate::SearchHeaders>,
    pub internaldate: i64,
    pub targets: Vec<DeliveryTarget>,
}

impl Delivery {
    /// A delivery of `content` (any line endings: they become CRLF) with its
    /// metadata parsed, and no pre-rendered ENVELOPE.
    pub fn new(content: Vec<u8>, internaldate: i64, targets: Vec<DeliveryTarget>) -> Delivery {
        let content = postamt_wire::crlf::normalize_owned(content);
        Delivery {
            meta: MessageMeta::parse(&content),
            search_headers: Some(crate::SearchHeaders::of(&content)),
            content,
            imap_envelope: None,
            internaldate,
            targets,
        }
    }
}

/// What the store keeps of a message's IMAP ENVELOPE
/// ([`crate::Messages::message_envelopes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredEnvelope {
    /// The bytes rendered at delivery ([`Delivery::imap_envelope`]).
    Rendered(Vec<u8>),
    /// None were kept: the raw header values, for the caller to render.
    Parsed(Box<crate::meta::Envelope>),
}

#[derive(Debug, Clone)]
pub struct DeliveryTarget {
    pub account: AccountId,
    /// Mailbox name; `INBOX` for ordinary delivery.
    pub mailbox: String,
    /// Header lines (CRLF-terminated) put in front of the shared content.
    pub prefix: Vec<u8>,
    pub flags: Flags,
    pub keywords: Vec<String>,
}

impl DeliveryTarget {
    /// The account's INBOX, with no prefix, flags or keywords.
    pub fn inbox(account: AccountId) -> DeliveryTarget {
        DeliveryTarget {
            account,
            mailbox: "INBOX".into(),
            prefix: Vec::new(),
            flags: Flags::empty(),
            keywords: Vec::new(),
        }
    }
}

/// Where one target of a delivery landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub uid: Uid,
    pub uidvalidity: UidValidity,
}

/// A mailbox and what changed in it since a MODSEQ, read at one moment
/// ([`crate::Messages::changes_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxChanges {
    pub mailbox: Mailbox,
    /// Messages changed or added since (all of them since `ModSeq(0)`).
    pub changed: Vec<MessageSummary>,
    /// UIDs expunged since; `None` for `ModSeq(0)` (then every message not
    /// in `changed` is gone).
    pub expunged: Option<Vec<Uid>>,
    /// The first UID no session has claimed as `\Recent` yet
    /// ([`crate::Messages::recent_from`]).
    pub recent_from: Uid,
}

/// Where a SEARCH needle is looked for (RFC 9051 §6.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextScope {
    /// BODY: the text of the body parts.
    Body,
    /// TEXT: the body parts and every header field.
    Text,
    /// HEADER with a field the store keeps no values of: the index can
    /// only rule messages out (it does not know which field holds the
    /// text), so whatever it names is to be checked.
    Header,
}

/// What the full-text index says about a SEARCH BODY, TEXT or HEADER
/// needle in a mailbox (RFC 9051 §6.4.4: a case-insensitive substring).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TextMatches {
    /// Messages that contain it, exactly as a scan would find (UID order).
    pub certain: Vec<Uid>,
    /// Messages the index cannot answer for (content not indexed yet, the
    /// fields delivery put in front, a needle too long for an exact
    /// phrase): the caller reads and checks them (UID order). Every other
    /// message does not contain it.
    pub unsure: Vec<Uid>,
}

impl TextMatches {
    /// The answer from what the index is sure of and what is to be
    /// checked (both backends): each list in UID order, once, and a
    /// message in one list only.
    pub(crate) fn settle(mut certain: Vec<Uid>, mut unsure: Vec<Uid>) -> TextMatches {
        certain.sort_unstable();
        certain.dedup();
        unsure.sort_unstable();
        unsure.dedup();
        unsure.retain(|u| certain.binary_search(u).is_err());
        TextMatches { certain, unsure }
    }
}

/// An event of the change feed. Live sessions (IMAP IDLE, NOOP) subscribe to
/// it with [`crate::Coordination::watch`]. Events are published after the
/// commit that made them durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    MessageAdded {
        account: AccountId,
        mailbox: MailboxId,
        uid: Uid,
        modseq: ModSeq,
    },
    FlagsChanged {
        account: AccountId,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        modseq: ModSeq,
    },
    Expunged {
        account: AccountId,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        modseq: ModSeq,
    },
    MailboxCreated {
        account: AccountId,
        name: String,
    },
    MailboxRenamed {
        account: AccountId,
        from: String,
        to: String,
    },
    MailboxDeleted {
        account: AccountId,
        name: String,
    },
    /// Another process (e.g. `postamt deliver`) committed something: what
    /// is not known, so listeners re-read what they show.
    External,
    /// Something was put into the outbound queue (or made due again):
    /// wakes the relay's scheduler.
    Queued,
}

/// What a session watching one account compares (see
/// [`crate::Coordination::watch_account`]): two counters, never a backlog, so
/// a watcher cannot lag behind and costs the same however busy the server
/// is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountSignal {
    /// Bumped after each commit that changed the account's mailboxes or
    /// their messages (MessageAdded, FlagsChanged, Expunged, Mailbox*).
    pub changes: u64,
    /// Bumped when another process committed (what changed is unknown:
    /// re-read everything shown).
    pub external: u64,
}

impl Change {
    /// The account concerned; `None` for [`Change::External`].
    pub fn account(&self) -> Option<AccountId> {
        match self {
            Change::MessageAdded { account, .. }
            | Change::FlagsChanged { account, .. }
            | Change::Expunged { account, .. }
            | Change::MailboxCreated { account, .. }
            | Change::MailboxRenamed { account, .. }
            | Change::MailboxDeleted { account, .. } => Some(*account),
            Change::External | Change::Queued => None,
        }
    }
}

/// Held while a POP3 session is in TRANSACTION state (RFC 1939 §8): a second
/// session on the same maildrop is refused. Released on drop.
pub struct MaildropLock {
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl MaildropLock {
    pub fn new(release: impl FnOnce() + Send + 'static) -> MaildropLock {
        MaildropLock {
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for MaildropLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaildropLock")
    }
}

/// Identifies a message in the outbound queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QueueId(pub i64);

/// What the envelope of a queued message carries besides sender and
/// recipients (RFC 3461 DSN, RFC 6152/6531 body and address types).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundEnvelope {
    /// DSN `RET=FULL|HDRS` (RFC 3461 §4.3).
    pub ret: Option<String>,
    /// DSN `ENVID` (RFC 3461 §4.4), still xtext-encoded.
    pub envid: Option<String>,
    /// `BODY=8BITMIME` (RFC 6152) or `BINARYMIME` (RFC 3030).
    pub body: Option<String>,
    /// The message needs SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// The login that submitted it.
    pub authenticated_as: Option<String>,
}

/// Delivery state of one recipient of a queued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientStatus {
    Pending,
    Delivered,
    Failed,
}

impl RecipientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Delivered => "delivered",
            RecipientStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> RecipientStatus {
        match s {
            "delivered" => RecipientStatus::Delivered,
            "failed" => RecipientStatus::Failed,
            _ => RecipientStatus::Pending,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecipient {
    pub address: String,
    /// DSN `NOTIFY` (RFC 3461 §4.1).
    pub notify: Option<String>,
    /// DSN `ORCPT` (RFC 3461 §4.2).
    pub orcpt: Option<String>,
    pub status: RecipientStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
}

impl QueuedRecipient {
    pub fn new(address: impl Into<String>) -> QueuedRecipient {
        QueuedRecipient {
            address: address.into(),
            notify: None,
            orcpt: None,
            status: RecipientStatus::Pending,
            attempts: 0,
            last_error: None,
        }
    }
}

/// A message accepted for other domains, waiting for the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<QueuedRecipient>,
    pub envelope: OutboundEnvelope,
    /// The message as it will be sent (CRLF, trace headers added).
    pub content: Vec<u8>,
}

/// Messages counted for a DMARC aggregate report ([`crate::Reports`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportCount {
    /// The reporting period, seconds since the epoch: [begin, end).
    pub begin: i64,
    pub end: i64,
    /// The policy domain the report is about.
    pub domain: String,
    /// The published policy (opaque to the store).
    pub published: String,
    /// The row (opaque to the store): equal rows are counted together.
    pub row: String,
    pub count: u64,
}

/// A queue entry as `postamt queue list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: QueueId,
    pub created: i64,
    pub next_attempt: i64,
    pub held: bool,
    pub sender: String,
    pub size: u64,
    pub envelope: OutboundEnvelope,
    pub recipients: Vec<QueuedRecipient>,
    /// A delay warning (RFC 3464 `Action: delayed`) was sent for it.
    pub warned: bool,
    /// The relay is attempting it right now.
    pub active: bool,
}

/// What one delivery attempt of a queue entry came to, recorded at once by
/// [`crate::Queue::queue_settle`]: the failures together with the
/// notifications that report them, so a crash never loses a bounce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSettle {
    /// Recipients that failed for good: (address, diagnostic).
    pub failed: Vec<(String, String)>,
    /// Recipients to try again: (address, diagnostic).
    pub deferred: Vec<(String, String)>,
    /// When to try the deferred ones again (unix seconds).
    pub next_attempt: i64,
    /// Delivery status notifications to queue in the same transaction.
    pub notices: Vec<Outbound>,
    /// Mark the entry as warned about its delay.
    pub warned: bool,
}

/// What [`crate::Messages::accept`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    pub delivered: Vec<Delivered>,
    pub queued: Option<QueueId>,
}
