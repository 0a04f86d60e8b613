//! Local delivery, the MDA: turns "this message for these addresses" into
//! messages in INBOXes. Used by `postamt deliver` (for Postfix's
//! `mailbox_command`, Exim's pipe transport) and by every protocol that
//! accepts mail, so there is one delivery path. Here a message is parsed
//! once (`postamt_wire::meta`) and its IMAP ENVELOPE rendered once
//! (`postamt_wire::imap::prerendered_envelope`): nothing later parses it
//! again.
//!
//! Recipient resolution, in order (what Postfix `local`/`virtual` users
//! expect): an account with that address; an alias (recursively, at most
//! [`MAX_ALIAS_DEPTH`] levels, loops cut); the domain's catch-all
//! (`@domain`). A `+detail` suffix on the local part (RFC 5233
//! subaddressing) is tried without the detail when the full address does
//! not exist.

use std::collections::BTreeSet;

use postamt_store::{
    Accepted, AccountId, Delivered, Delivery, DeliveryTarget, MessageMeta, Outbound,
    OutboundEnvelope, QueueId, QueuedRecipient, SharedStore, SpecialUse, Store, StoreError,
    normalize_address,
};

/// How deep alias chains are followed.
pub const MAX_ALIAS_DEPTH: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No local account, alias or catch-all for this address (SMTP 550
    /// 5.1.1, sysexits EX_NOUSER).
    #[error("unknown recipient {0}")]
    UnknownRecipient(String),
    /// The address is not one of ours and we are not a relay here.
    #[error("recipient {0} is not in a local domain")]
    NotLocal(String),
    /// Quota full: temporary, as Dovecot does by default (4.2.2).
    #[error("mailbox of {0} is over quota")]
    OverQuota(String),
    /// Anything the store could not do now (EX_TEMPFAIL, SMTP 451).
    #[error("temporary failure: {0}")]
    Temporary(String),
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// Where an address leads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Local accounts (address, id), deduplicated.
    pub local: Vec<(String, AccountId)>,
    /// Remote addresses an alias points to (need the relay).
    pub remote: Vec<String>,
    /// A local account has used up its quota (read with the account, so
    /// SMTP can refuse at RCPT time without reading it again).
    pub full: bool,
}

impl From<StoreError> for DeliveryError {
    fn from(e: StoreError) -> DeliveryError {
        match e {
            StoreError::OverQuota => DeliveryError::OverQuota(String::new()),
            e => DeliveryError::Temporary(e.to_string()),
        }
    }
}

fn temp(e: StoreError) -> DeliveryError {
    DeliveryError::Temporary(e.to_string())
}

fn is_local(domains: &[String], domain: &str) -> bool {
    domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
}

/// Resolves one recipient address.
pub fn resolve(store: &dyn Store, address: &str) -> Result<Resolution, DeliveryError> {
    let unknown = || DeliveryError::UnknownRecipient(address.to_string());
    let (_, domain) = address.trim().rsplit_once('@').ok_or_else(unknown)?;
    // Read once per address, not once per alias step.
    let domains = store.domains().map_err(temp)?;
    // The domain decides first: another domain's local part is that
    // domain's business (RFC 5321 §2.3.11), quoted with spaces or not,
    // and goes out as written; only a local one must name an account.
    if !is_local(&domains, domain) {
        return Err(DeliveryError::NotLocal(address.trim().to_string()));
    }
    let address = normalize_address(address).map_err(|_| unknown())?;
    let mut out = Resolution::default();
    let mut seen = BTreeSet::new();
    expand(store, &domains, &address, 0, &mut seen, &mut out)?;
    if out.local.is_empty() && out.remote.is_empty() {
        return Err(DeliveryError::UnknownRecipient(address));
    }
    Ok(out)
}

fn expand(
    store: &dyn Store,
    domains: &[String],
    address: &str,
    depth: usize,
    seen: &mut BTreeSet<String>,
    out: &mut Resolution,
) -> Result<(), DeliveryError> {
    if depth > MAX_ALIAS_DEPTH || !seen.insert(address.to_string()) {
        return Ok(());
    }
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    if !is_local(domains, domain) {
        if !out.remote.iter().any(|r| r == address) {
            out.remote.push(address.to_string());
        }
        return Ok(());
    }
    let base = local.split_once('+').map(|(b, _)| format!("{b}@{domain}"));
    for candidate in std::iter::once(address.to_string()).chain(base) {
        if let Some(account) = store.account(&candidate).map_err(temp)? {
            out.full |= account.quota_bytes.is_some_and(|q| account.used_bytes >= q);
            if !out.local.iter().any(|(_, id)| *id == account.id) {
                out.local.push((account.address, account.id));
            }
            return Ok(());
        }
        let targets = store.alias_targets(&candidate).map_err(temp)?;
        if !targets.is_empty() {
            for t in targets {
                expand(store, domains, &t, depth + 1, seen, out)?;
            }
            return Ok(());
        }
    }
    if depth == 0 {
        // Only an address as given falls through to the catch-all; an
        // alias target that does not exist is an administrator's mistake.
        for t in store.alias_targets(&format!("@{domain}")).map_err(temp)? {
            expand(store, domains, &t, depth + 1, seen, out)?;
        }
    }
    Ok(())
}

/// The outcome of one delivery.
#[derive(Debug, Clone, Default)]
pub struct DeliveryReport {
    pub delivered: Vec<(String, Delivered)>,
    /// Remote alias targets put into the outbound queue (forwarding).
    pub queued: Vec<String>,
    pub queue_id: Option<QueueId>,
}

/// A message whose recipients are already resolved (SMTP resolves them at
/// RCPT time).
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    /// Envelope sender; empty for the null sender `<>`.
    pub from: &'a str,
    /// Local accounts (address, id), each delivered once.
    pub local: Vec<(String, AccountId)>,
    /// Recipients on other domains, for the outbound queue.
    pub remote: Vec<QueuedRecipient>,
    pub envelope: OutboundEnvelope,
    /// The message; line endings are normalised to CRLF here (in place
    /// when they already are).
    pub content: Vec<u8>,
    pub internaldate: i64,
    /// Into each local account's `Junk` mailbox (RFC 6154 `\Junk`), made
    /// again when the user deleted it (DMARC `p=quarantine`, RFC 7489 §6.3).
    pub junk: bool,
}

/// The mailbox `incoming` goes to for `account`: for quarantined mail the
/// account's `Junk`, created (with `\Junk`, RFC 6154) when the user deleted
/// it, as Dovecot's autocreate would; INBOX if even that fails.
fn target_mailbox(store: &dyn Store, account: AccountId, junk: bool) -> &'static str {
    if !junk {
        return "INBOX";
    }
    match store.mailbox(account, JUNK) {
        Ok(Some(_)) => JUNK,
        Ok(None) => match store.create_mailbox(account, JUNK, Some(SpecialUse::Junk)) {
            Ok(_) => JUNK,
            Err(e) => {
                tracing::warn!(account = account.0, error = %e, "cannot create Junk; quarantined mail goes to INBOX");
                "INBOX"
            }
        },
        Err(_) => "INBOX",
    }
}

/// The Junk mailbox every account is created with (RFC 6154).
const JUNK: &str = "Junk";

/// Stores `incoming` for its local accounts and queues it for its remote
/// recipients, in one transaction, durable when this returns.
pub fn accept(store: &dyn Store, incoming: Incoming<'_>) -> Result<DeliveryReport, DeliveryError> {
    let junk = incoming.junk;
    let sealing = certificates(store, &incoming.local)?;
    let p = Prepared::new(incoming, sealing, |a| target_mailbox(store, a, junk))?;
    let accepted = store.accept(p.deliveries, p.outbound);
    Prepared::report(p.local, p.queued, accepted)
}

/// [`accept`] for async callers (the SMTP server): the message is prepared
/// (line ends, MIME metadata) on the caller's task and the future resolves
/// when the store's commit is durable, without a thread waiting for it.
pub async fn accept_async(
    store: SharedStore,
    incoming: Incoming<'_>,
) -> Result<DeliveryReport, DeliveryError> {
    let junk = incoming.junk;
    let sealing = certificates(&*store, &incoming.local)?;
    let p = Prepared::new(incoming, sealing, |a| target_mailbox(&*store, a, junk))?;
    let accepted = store.accept_async(p.deliveries, p.outbound).await;
    Prepared::report(p.local, p.queued, accepted)
}

/// The S/MIME certificates of those `local` accounts whose mail is
/// encrypted at rest (`postamt user smime`).
fn certificates(
    store: &dyn Store,
    local: &[(String, AccountId)],
) -> Result<Vec<(AccountId, Vec<u8>)>, DeliveryError> {
    let ids: Vec<AccountId> = local.iter().map(|(_, id)| *id).collect();
    store.smime_certificates(&ids).map_err(temp)
}

/// What the store is given for one accepted message, and what the report
/// needs afterwards.
struct Prepared {
    /// The shared content for every target, then one delivery per account
    /// whose copy is encrypted at rest; `local` is in the same order.
    deliveries: Vec<Delivery>,
    outbound: Option<Outbound>,
    local: Vec<(String, AccountId)>,
    queued: Vec<String>,
}

impl Prepared {
    fn new(
        incoming: Incoming<'_>,
        sealing: Vec<(AccountId, Vec<u8>)>,
        mailbox: impl Fn(AccountId) -> &'static str,
    ) -> Result<Prepared, DeliveryError> {
        let content = postamt_wire::crlf::normalize_owned(incoming.content);
        let return_path = sanitize_header_value(incoming.from);
        let mut local = incoming.local;
        let mut seen = BTreeSet::new();
        local.retain(|(_, id)| seen.insert(*id));
        // Encryption at rest: a copy of its own, encrypted to the
        // account's certificate, for each account that has one (unless the
        // message is encrypted already). The sender's 250 waits for it, so
        // a certificate that cannot be used is a temporary failure: the
        // message is never stored in the clear instead.
        let mut sealed = Vec::new();
        for (id, pem) in &sealing {
            let Some(pos) = local.iter().position(|(_, a)| a == id) else {
                continue;
            };
            match postamt_smime::encrypt_at_rest(&content, pem) {
                Ok(Some(c)) => sealed.push((local.remove(pos), c)),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(account = id.0, error = %e, "cannot encrypt at rest");
                    return Err(DeliveryError::Temporary(format!(
                        "cannot encrypt for {} at rest: {e}",
                        local[pos].0
                    )));
                }
            }
        }
        let target = |address: &str, id: AccountId| DeliveryTarget {
            // RFC 5321 §4.4: the delivering MTA records the reverse-path.
            prefix: format!(
                "Return-Path: <{return_path}>\r\nDelivered-To: {}\r\n",
                sanitize_header_value(address)
            )
            .into_bytes(),
            mailbox: mailbox(id).to_string(),
            ..DeliveryTarget::inbox(id)
        };
        let new_delivery = |content: Vec<u8>, targets: Vec<DeliveryTarget>| {
            let meta = MessageMeta::parse(&content);
            Delivery {
                // Parsed and rendered once, here (ARCHITECTURE.md, step 4).
                imap_envelope: postamt_wire::imap::prerendered_envelope(&meta.envelope),
                search_headers: Some(postamt_store::SearchHeaders::of(&content)),
                meta,
                content,
                internaldate: incoming.internaldate,
                targets,
            }
        };
        // The content is copied only when both a delivery and the queue need it.
        let (delivery_content, queue_content) = match (local.is_empty(), incoming.remote.is_empty())
        {
            (false, false) => (Some(content.clone()), Some(content)),
            (false, true) => (Some(content), None),
            (true, _) => (None, Some(content)),
        };
        let mut deliveries: Vec<Delivery> = delivery_content
            .map(|content| {
                let targets = local.iter().map(|(a, id)| target(a, *id)).collect();
                new_delivery(content, targets)
            })
            .into_iter()
            .collect();
        for ((address, id), content) in sealed {
            deliveries.push(new_delivery(content, vec![target(&address, id)]));
            local.push((address, id));
        }
        let queued: Vec<String> = incoming.remote.iter().map(|r| r.address.clone()).collect();
        let outbound = match queue_content {
            Some(content) if !incoming.remote.is_empty() => Some(Outbound {
                sender: incoming.from.to_string(),
                recipients: incoming.remote,
                envelope: incoming.envelope,
                content,
            }),
            _ => None,
        };
        if deliveries.is_empty() && outbound.is_none() {
            return Err(DeliveryError::Invalid("no recipients".into()));
        }
        Ok(Prepared {
            deliveries,
            outbound,
            local,
            queued,
        })
    }

    fn report(
        local: Vec<(String, AccountId)>,
        queued: Vec<String>,
        accepted: Result<Accepted, StoreError>,
    ) -> Result<DeliveryReport, DeliveryError> {
        let accepted = accepted.map_err(|e| match e {
            StoreError::OverQuota => DeliveryError::OverQuota(
                local
                    .iter()
                    .map(|(a, _)| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            e => temp(e),
        })?;
        Ok(DeliveryReport {
            delivered: local
                .into_iter()
                .map(|(a, _)| a)
                .zip(accepted.delivered)
                .collect(),
            queued,
            queue_id: accepted.queued,
        })
    }
}

/// Delivers `message` from envelope sender `from` (empty: the null sender
/// `<>`) to every recipient. All recipients are resolved before anything is
/// stored; then the message is stored for all local targets at once (one
/// copy of the content) and queued for remote alias targets, or nothing
/// happens.
pub fn deliver(
    store: &dyn Store,
    from: &str,
    recipients: &[String],
    message: &[u8],
    internaldate: i64,
) -> Result<DeliveryReport, DeliveryError> {
    if recipients.is_empty() {
        return Err(DeliveryError::Invalid("no recipients".into()));
    }
    let mut local: Vec<(String, AccountId)> = Vec::new();
    let mut remote: Vec<QueuedRecipient> = Vec::new();
    for r in recipients {
        let res = resolve(store, r)?;
        local.extend(res.local);
        for a in res.remote {
            if !remote.iter().any(|q| q.address == a) {
                remote.push(QueuedRecipient::new(a));
            }
        }
    }
    accept(
        store,
        Incoming {
            from,
            local,
            remote,
            envelope: OutboundEnvelope::default(),
            content: message.to_vec(),
            internaldate,
            junk: false,
        },
    )
}

/// Keeps a header value on one line: no CR, LF or other control characters
/// can be smuggled in through an envelope address.
fn sanitize_header_value(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && *c != '<' && *c != '>')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postamt_store::{
        Directory, Mailboxes, Messages, ModSeq, Queue, SqliteOptions, SqliteStore,
    };

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(SqliteOptions::new(dir.path().join("db"))).unwrap();
        s.add_domain("example.org").unwrap();
        s.create_account("alice@example.org", "a").unwrap();
        s.create_account("bob@example.org", "b").unwrap();
        (dir, s)
    }

    #[test]
    fn aliases_expand_and_dedupe() {
        let (_d, s) = store();
        s.add_alias(
            "team@example.org",
            &[
                "alice@example.org".into(),
                "bob@example.org".into(),
                "x@remote.net".into(),
            ],
        )
        .unwrap();
        s.add_alias("loop@example.org", &["loop2@example.org".into()])
            .unwrap();
        s.add_alias(
            "loop2@example.org",
            &["loop@example.org".into(), "alice@example.org".into()],
        )
        .unwrap();
        let r = resolve(&s, "team@example.org").unwrap();
        assert_eq!(r.local.len(), 2);
        let rep = deliver(&s, "", &["team@example.org".into()], b"S: x\r\n\r\n", 0).unwrap();
        assert_eq!(rep.delivered.len(), 2);
        assert_eq!(
            rep.queued,
            vec!["x@remote.net"],
            "remote alias target forwarded via the queue"
        );
        assert_eq!(s.queue().unwrap().len(), 1);
        assert_eq!(r.remote, vec!["x@remote.net"]);
        let r = resolve(&s, "loop@example.org").unwrap();
        assert_eq!(r.local.len(), 1);
    }

    #[test]
    fn rfc5321_2_3_11_another_domains_local_part_is_not_ours_to_judge() {
        let (_d, s) = store();
        for remote in [
            "\"carol x\"@remote.test",
            "Carol@Remote.Test",
            "a..b@remote.test",
        ] {
            match resolve(&s, remote) {
                Err(DeliveryError::NotLocal(a)) => assert_eq!(a, remote),
                other => panic!("{remote}: {other:?}"),
            }
        }
        assert!(matches!(
            resolve(&s, "\"x y\"@example.org"),
            Err(DeliveryError::UnknownRecipient(_))
        ));
        assert!(matches!(
            resolve(&s, "no-domain"),
            Err(DeliveryError::UnknownRecipient(_))
        ));
    }

    #[test]
    fn unknown_catch_all_and_subaddress() {
        let (_d, s) = store();
        assert!(matches!(
            resolve(&s, "nobody@example.org"),
            Err(DeliveryError::UnknownRecipient(_))
        ));
        assert!(matches!(
            resolve(&s, "x@remote.net"),
            Err(DeliveryError::NotLocal(_))
        ));
        assert_eq!(
            resolve(&s, "alice+lists@example.org").unwrap().local[0].0,
            "alice@example.org"
        );
        s.add_alias("@example.org", &["bob@example.org".into()])
            .unwrap();
        assert_eq!(
            resolve(&s, "nobody@example.org").unwrap().local[0].0,
            "bob@example.org"
        );
    }

    #[test]
    fn delivery_adds_return_path_and_delivered_to() {
        let (_d, s) = store();
        let rep = deliver(
            &s,
            "sender@remote.net",
            &["alice@example.org".into(), "ALICE@example.org".into()],
            b"Subject: x\n\nhi\n",
            0,
        )
        .unwrap();
        assert_eq!(rep.delivered.len(), 1, "one copy per account");
        let d = rep.delivered[0].1;
        let c = s.message_content(d.mailbox, d.uid).unwrap().unwrap();
        assert_eq!(c, b"Return-Path: <sender@remote.net>\r\nDelivered-To: alice@example.org\r\nSubject: x\r\n\r\nhi\r\n");
        let rep = deliver(&s, "", &["bob@example.org".into()], b"\r\n", 0).unwrap();
        let d = rep.delivered[0].1;
        let c = s.message_content(d.mailbox, d.uid).unwrap().unwrap();
        assert!(c.starts_with(b"Return-Path: <>\r\n"));
    }

    #[test]
    fn header_injection_through_envelope_is_cut() {
        let (_d, s) = store();
        let rep = deliver(
            &s,
            "a@b>\r\nX-Evil: 1",
            &["bob@example.org".into()],
            b"S: x\r\n\r\n",
            0,
        )
        .unwrap();
        let d = rep.delivered[0].1;
        let c = s.message_content(d.mailbox, d.uid).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&c).contains("\r\nX-Evil"));
    }

    #[test]
    fn one_unknown_recipient_stores_nothing() {
        let (_d, s) = store();
        let err = deliver(
            &s,
            "",
            &["alice@example.org".into(), "nobody@example.org".into()],
            b"x\r\n",
            0,
        )
        .unwrap_err();
        assert!(matches!(err, DeliveryError::UnknownRecipient(_)));
        let a = s.account("alice@example.org").unwrap().unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap().unwrap();
        assert!(s.messages(inbox.id, ModSeq(0)).unwrap().is_empty());
    }

    /// Encryption at rest (`postamt user smime`): in one delivery to two
    /// local accounts and a remote one, only bob's copy is encrypted (to
    /// his certificate: his key opens it, and it is the message as sent
    /// with our trace fields outside); alice and the queue get the message
    /// as sent. An encrypted message is stored as it is; a certificate
    /// that cannot be used is a temporary failure, never a clear copy.
    #[test]
    fn rfc8551_encryption_at_rest_for_accounts_with_a_certificate() {
        use postamt_smime::{Ca, KeyKind};
        let (_d, s) = store();
        let ca = Ca::new("Course", KeyKind::Rsa2048, 30).unwrap();
        let bob = ca.issue("bob@example.org", KeyKind::Rsa2048, 30).unwrap();
        let b = s.account("bob@example.org").unwrap().unwrap();
        let a = s.account("alice@example.org").unwrap().unwrap();
        s.set_smime_certificate(b.id, Some(&bob.cert.to_pem().unwrap()))
            .unwrap();
        let msg = b"From: x@remote.net\r\nSubject: secret plan\r\n\r\nthe body nobody may read\r\n";
        s.add_alias("fwd@example.org", &["y@remote.net".into()])
            .unwrap();
        let to = [
            "alice@example.org".into(),
            "bob@example.org".into(),
            "fwd@example.org".into(),
        ];
        let rep = deliver(&s, "x@remote.net", &to, msg, 0).unwrap();
        assert_eq!(rep.delivered.len(), 2);
        assert_eq!(rep.queued, vec!["y@remote.net"]);
        let stored = |addr: &str| {
            let (_, d) = rep.delivered.iter().find(|(x, _)| x == addr).unwrap();
            s.message_content(d.mailbox, d.uid).unwrap().unwrap()
        };
        let (plain, sealed) = (stored("alice@example.org"), stored("bob@example.org"));
        assert!(plain.ends_with(b"the body nobody may read\r\n"));
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("nobody may read"), "{text}");
        assert!(text.contains("smime-type=enveloped-data"), "{text}");
        assert!(
            text.starts_with("Return-Path: <x@remote.net>\r\nDelivered-To: bob@example.org\r\n")
        );
        assert!(
            text.contains("Subject: secret plan\r\n"),
            "outer fields stay readable"
        );
        let opened = postamt_smime::decrypt(&sealed, &bob).unwrap();
        let opened = String::from_utf8(opened).unwrap();
        assert!(
            opened.ends_with("\r\n\r\nthe body nobody may read\r\n"),
            "{opened}"
        );
        assert!(postamt_smime::is_encrypted(&sealed));
        let queued = s.queue().unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(
            s.queue_entry(queued[0].id).unwrap().unwrap().1,
            msg.to_vec()
        );
        // Already encrypted: stored as it came, not encrypted twice.
        let body = sealed
            .split_at(
                sealed
                    .windows(11)
                    .position(|w| w == b"Subject: se")
                    .unwrap(),
            )
            .1
            .to_vec();
        let rep = deliver(&s, "", &["bob@example.org".into()], &body, 0).unwrap();
        let (_, d) = &rep.delivered[0];
        let again = s.message_content(d.mailbox, d.uid).unwrap().unwrap();
        assert!(again.ends_with(&body), "stored as it came");
        // A certificate that cannot be used: 4xx, nothing stored for anyone.
        s.set_smime_certificate(b.id, Some(b"not a certificate"))
            .unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap().unwrap();
        let before = s.messages(inbox.id, ModSeq(0)).unwrap().len();
        let e = deliver(
            &s,
            "",
            &["alice@example.org".into(), "bob@example.org".into()],
            msg,
            0,
        )
        .unwrap_err();
        assert!(matches!(e, DeliveryError::Temporary(_)), "{e}");
        assert_eq!(s.messages(inbox.id, ModSeq(0)).unwrap().len(), before);
    }
}
