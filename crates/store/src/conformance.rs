//! The conformance suite every [`Store`] backend must pass unchanged.
//!
//! A backend's test file calls the macro with an expression that makes a
//! fresh, empty store:
//!
//! ```ignore
//! postamt_store::store_conformance_tests!(make_store());
//! ```
//!
//! Each check is also a public function, so a backend can run one alone.

use std::sync::Arc;

use crate::*;

/// Generates one `#[test]` per conformance check.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@each $make;
            domains_and_accounts, special_use_mailboxes_with_each_account,
            passwords_are_argon2id_and_verified, aliases_and_catch_all,
            delivery_shares_content_and_keeps_prefixes, uids_ascend_and_are_never_reused,
            uidvalidity_is_new_for_a_recreated_mailbox, flags_and_modseq,
            expunge_log_serves_qresync, quota_usage_is_kept_current, over_quota_fails_whole_delivery,
            change_feed_reports_commits, maildrop_lock_is_exclusive, meta_offsets_include_prefix,
            rename_mailbox_and_children, rename_inbox_moves_messages, delete_mailbox_and_account,
            concurrent_deliveries_get_distinct_uids, subscriptions_work, inbox_is_case_insensitive,
            outbound_queue_keeps_envelope_and_content, accept_delivers_and_queues_atomically,
            copy_and_move_share_content_and_keep_flags, recent_is_claimed_once,
            conditional_store_refuses_changed_messages, deliver_many_is_all_or_nothing,
            changes_since_a_modseq, metas_in_bulk_match_one_by_one,
            queue_claims_settles_and_schedules, account_signals_wake_only_that_account);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let store: std::sync::Arc<dyn $crate::Store> = $make;
                $crate::conformance::$name(store);
            }
        )*
    };
}

const DOMAIN: &str = "example.org";

fn setup(store: &dyn Store) -> Account {
    store.add_domain(DOMAIN).unwrap();
    store
        .create_account("alice@example.org", "pw-alice")
        .unwrap()
}

fn delivery(content: &[u8], targets: Vec<DeliveryTarget>) -> Delivery {
    let content = normalize_crlf(content);
    Delivery {
        meta: MessageMeta::parse(&content),
        content,
        internaldate: 1_700_000_000,
        targets,
    }
}

fn to_inbox(account: AccountId, prefix: &str) -> DeliveryTarget {
    DeliveryTarget {
        account,
        mailbox: "INBOX".into(),
        prefix: prefix.as_bytes().to_vec(),
        flags: Flags::empty(),
        keywords: vec![],
    }
}

fn deliver_one(store: &dyn Store, account: AccountId, body: &str) -> Delivered {
    let msg = format!("Subject: test\r\n\r\n{body}\r\n");
    store
        .deliver(delivery(msg.as_bytes(), vec![to_inbox(account, "")]))
        .unwrap()[0]
}

fn inbox(store: &dyn Store, account: AccountId) -> Mailbox {
    store
        .mailbox(account, "INBOX")
        .unwrap()
        .expect("INBOX exists")
}

pub fn domains_and_accounts(store: Arc<dyn Store>) {
    store.add_domain("Example.ORG").unwrap();
    store.add_domain("example.org").unwrap(); // idempotent
    assert_eq!(store.domains().unwrap(), vec!["example.org".to_string()]);
    let err = store.create_account("x@elsewhere.net", "pw").unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let a = store.create_account("Alice@Example.org", "pw").unwrap();
    assert_eq!(a.address, "alice@example.org");
    assert!(matches!(
        store.create_account("alice@example.org", "pw"),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store.account("ALICE@example.org").unwrap().unwrap().id,
        a.id
    );
    assert_eq!(store.accounts().unwrap().len(), 1);
    store.remove_domain("example.org").unwrap();
    assert!(store.domains().unwrap().is_empty());
    assert!(matches!(
        store.remove_domain("nope.org"),
        Err(StoreError::NotFound(_))
    ));
}

pub fn special_use_mailboxes_with_each_account(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let boxes = store.mailboxes(a.id).unwrap();
    for (name, use_) in SpecialUse::DEFAULTS {
        let m = boxes.iter().find(|m| m.name == name).expect(name);
        assert_eq!(m.special_use, Some(use_));
    }
    assert!(
        boxes
            .iter()
            .any(|m| m.name == "INBOX" && m.special_use.is_none())
    );
    let subs = store.subscriptions(a.id).unwrap();
    assert!(subs.contains(&"INBOX".to_string()) && subs.contains(&"Sent".to_string()));
}

pub fn passwords_are_argon2id_and_verified(store: Arc<dyn Store>) {
    let a = setup(&*store);
    assert_eq!(
        store
            .verify_password("alice@example.org", "pw-alice")
            .unwrap()
            .unwrap()
            .id,
        a.id
    );
    assert!(
        store
            .verify_password("alice@example.org", "wrong")
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .verify_password("nobody@example.org", "pw-alice")
            .unwrap()
            .is_none()
    );
    store.set_password("alice@example.org", "new").unwrap();
    assert!(
        store
            .verify_password("alice@example.org", "pw-alice")
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .verify_password("alice@example.org", "new")
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        store.set_password("nobody@example.org", "x"),
        Err(StoreError::NotFound(_))
    ));
}

pub fn aliases_and_catch_all(store: Arc<dyn Store>) {
    setup(&*store);
    store
        .add_alias(
            "team@example.org",
            &["alice@example.org".into(), "carol@remote.net".into()],
        )
        .unwrap();
    store
        .add_alias("@example.org", &["alice@example.org".into()])
        .unwrap();
    let mut t = store.alias_targets("TEAM@example.org").unwrap();
    t.sort();
    assert_eq!(t, vec!["alice@example.org", "carol@remote.net"]);
    assert_eq!(
        store.alias_targets("@example.org").unwrap(),
        vec!["alice@example.org"]
    );
    assert_eq!(store.aliases().unwrap().len(), 2);
    assert!(
        store
            .add_alias("x@remote.net", &["alice@example.org".into()])
            .is_err()
    );
    store.remove_alias("team@example.org").unwrap();
    assert!(store.alias_targets("team@example.org").unwrap().is_empty());
}

pub fn delivery_shares_content_and_keeps_prefixes(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let b = store.create_account("bob@example.org", "pw").unwrap();
    let d = store
        .deliver(delivery(
            b"Subject: shared\n\nbody\n",
            vec![
                to_inbox(a.id, "Delivered-To: alice@example.org\r\n"),
                to_inbox(b.id, "Delivered-To: bob@example.org\r\n"),
            ],
        ))
        .unwrap();
    assert_eq!(d.len(), 2);
    let ca = store
        .message_content(d[0].mailbox, d[0].uid)
        .unwrap()
        .unwrap();
    let cb = store
        .message_content(d[1].mailbox, d[1].uid)
        .unwrap()
        .unwrap();
    assert_eq!(
        ca,
        b"Delivered-To: alice@example.org\r\nSubject: shared\r\n\r\nbody\r\n"
    );
    assert_eq!(
        cb,
        b"Delivered-To: bob@example.org\r\nSubject: shared\r\n\r\nbody\r\n"
    );
    let la = store.messages(d[0].mailbox, ModSeq(0)).unwrap();
    assert_eq!(la[0].size, ca.len() as u64);
    // Removing one reference leaves the other intact.
    store.expunge(d[0].mailbox, &[d[0].uid]).unwrap();
    assert!(
        store
            .message_content(d[0].mailbox, d[0].uid)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .message_content(d[1].mailbox, d[1].uid)
            .unwrap()
            .unwrap(),
        cb
    );
    store.expunge(d[1].mailbox, &[d[1].uid]).unwrap();
    assert!(
        store
            .message_content(d[1].mailbox, d[1].uid)
            .unwrap()
            .is_none()
    );
}

pub fn uids_ascend_and_are_never_reused(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let u: Vec<Uid> = (0..5)
        .map(|i| deliver_one(&*store, a.id, &i.to_string()).uid)
        .collect();
    assert!(u.windows(2).all(|w| w[0] < w[1]), "{u:?}");
    let m = inbox(&*store, a.id);
    store.expunge(m.id, &[u[3], u[4]]).unwrap();
    let next = deliver_one(&*store, a.id, "after").uid;
    assert!(next > u[4], "UID {next:?} reused");
    let m = inbox(&*store, a.id);
    assert!(m.uidnext > next);
    let listed: Vec<Uid> = store
        .messages(m.id, ModSeq(0))
        .unwrap()
        .iter()
        .map(|s| s.uid)
        .collect();
    assert_eq!(listed, vec![u[0], u[1], u[2], next]);
}

pub fn uidvalidity_is_new_for_a_recreated_mailbox(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let m1 = store.create_mailbox(a.id, "Projects", None).unwrap();
    assert!(matches!(
        store.create_mailbox(a.id, "Projects", None),
        Err(StoreError::AlreadyExists(_))
    ));
    store.delete_mailbox(a.id, "Projects").unwrap();
    let m2 = store.create_mailbox(a.id, "Projects", None).unwrap();
    assert_ne!(m1.uidvalidity, m2.uidvalidity);
    assert_eq!(m2.uidnext, Uid(1));
    assert!(store.create_mailbox(a.id, "bad//name", None).is_err());
    assert!(store.create_mailbox(a.id, "", None).is_err());
}

pub fn flags_and_modseq(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let d1 = deliver_one(&*store, a.id, "1");
    let d2 = deliver_one(&*store, a.id, "2");
    let before = inbox(&*store, a.id).highestmodseq;
    let (up, modified) = store
        .store_flags(
            d1.mailbox,
            &[d1.uid, d2.uid],
            FlagOp::Add,
            Flags::SEEN | Flags::FLAGGED,
            &["$Label1".into()],
            None,
        )
        .unwrap();
    assert_eq!(up.len(), 2);
    assert!(
        modified.is_empty(),
        "without UNCHANGEDSINCE nothing is refused"
    );
    assert!(up[0].modseq > before);
    let after = inbox(&*store, a.id).highestmodseq;
    assert_eq!(after, up[0].modseq);
    // No change, no new modseq.
    let (none, _) = store
        .store_flags(d1.mailbox, &[d1.uid], FlagOp::Add, Flags::SEEN, &[], None)
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(inbox(&*store, a.id).highestmodseq, after);
    let (up, _) = store
        .store_flags(
            d1.mailbox,
            &[d1.uid],
            FlagOp::Remove,
            Flags::FLAGGED,
            &["$label1".into()],
            None,
        )
        .unwrap();
    assert_eq!(up[0].flags, Flags::SEEN);
    assert!(up[0].keywords.is_empty());
    let (up, _) = store
        .store_flags(
            d1.mailbox,
            &[d2.uid],
            FlagOp::Replace,
            Flags::DRAFT,
            &[],
            None,
        )
        .unwrap();
    assert_eq!(up[0].flags, Flags::DRAFT);
    let list = store.messages(d1.mailbox, ModSeq(0)).unwrap();
    assert_eq!(list[0].flags, Flags::SEEN);
    assert_eq!(list[1].flags, Flags::DRAFT);
    assert!(list[1].modseq > list[0].modseq);
    let st = store.mailbox_status(d1.mailbox).unwrap();
    assert_eq!((st.messages, st.unseen), (2, 1));
}

pub fn expunge_log_serves_qresync(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let d: Vec<Delivered> = (0..3)
        .map(|i| deliver_one(&*store, a.id, &i.to_string()))
        .collect();
    let mark = inbox(&*store, a.id).highestmodseq;
    let gone = store.expunge(d[0].mailbox, &[d[1].uid, Uid(9999)]).unwrap();
    assert_eq!(gone, vec![d[1].uid]);
    assert_eq!(
        store.expunged_since(d[0].mailbox, mark).unwrap(),
        vec![d[1].uid]
    );
    let now = inbox(&*store, a.id).highestmodseq;
    assert!(now > mark);
    assert!(store.expunged_since(d[0].mailbox, now).unwrap().is_empty());
}

pub fn quota_usage_is_kept_current(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let d = deliver_one(&*store, a.id, "x");
    let size = store.messages(d.mailbox, ModSeq(0)).unwrap()[0].size;
    assert_eq!(
        store
            .account("alice@example.org")
            .unwrap()
            .unwrap()
            .used_bytes,
        size
    );
    store.expunge(d.mailbox, &[d.uid]).unwrap();
    assert_eq!(
        store
            .account("alice@example.org")
            .unwrap()
            .unwrap()
            .used_bytes,
        0
    );
}

pub fn over_quota_fails_whole_delivery(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let b = store.create_account("bob@example.org", "pw").unwrap();
    store.set_quota(b.id, Some(10)).unwrap();
    let err = store
        .deliver(delivery(
            b"Subject: big\n\nbody\n",
            vec![to_inbox(a.id, ""), to_inbox(b.id, "")],
        ))
        .unwrap_err();
    assert!(matches!(err, StoreError::OverQuota));
    assert!(
        store
            .messages(inbox(&*store, a.id).id, ModSeq(0))
            .unwrap()
            .is_empty(),
        "all or nothing"
    );
    assert_eq!(
        store
            .account("bob@example.org")
            .unwrap()
            .unwrap()
            .quota_bytes,
        Some(10)
    );
}

pub fn change_feed_reports_commits(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let mut rx = store.watch();
    let d = deliver_one(&*store, a.id, "x");
    store
        .store_flags(d.mailbox, &[d.uid], FlagOp::Add, Flags::SEEN, &[], None)
        .unwrap();
    store.expunge(d.mailbox, &[d.uid]).unwrap();
    store.create_mailbox(a.id, "New", None).unwrap();
    store.rename_mailbox(a.id, "New", "Newer").unwrap();
    store.delete_mailbox(a.id, "Newer").unwrap();
    let got: Vec<Change> = (0..6).map(|_| rx.try_recv().expect("event")).collect();
    assert!(matches!(got[0], Change::MessageAdded { uid, .. } if uid == d.uid));
    assert!(matches!(&got[1], Change::FlagsChanged { uids, .. } if uids == &vec![d.uid]));
    assert!(matches!(&got[2], Change::Expunged { uids, .. } if uids == &vec![d.uid]));
    assert!(matches!(&got[3], Change::MailboxCreated { name, .. } if name == "New"));
    assert!(matches!(&got[4], Change::MailboxRenamed { to, .. } if to == "Newer"));
    assert!(matches!(&got[5], Change::MailboxDeleted { name, .. } if name == "Newer"));
    assert!(got.iter().all(|c| c.account() == Some(a.id)));
    // A failed write announces nothing.
    let _ = store.create_mailbox(a.id, "INBOX", None);
    assert!(rx.try_recv().is_err());
}

/// `watch_account`: a commit that touches one account moves that
/// account's signal (once per commit) and no other account's, so an IMAP
/// IDLE session does not wake for every delivery on the server.
pub fn account_signals_wake_only_that_account(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let b = store.create_account(&format!("b@{DOMAIN}"), "pw").unwrap();
    let mut wa = store.watch_account(a.id);
    let mut wb = store.watch_account(b.id);
    let (sa, sb) = (*wa.borrow_and_update(), *wb.borrow_and_update());
    let d = deliver_one(&*store, a.id, "x");
    assert!(wa.has_changed().unwrap());
    assert_eq!(wa.borrow_and_update().changes, sa.changes + 1);
    assert!(!wb.has_changed().unwrap(), "b woke for a's delivery");
    store
        .store_flags(d.mailbox, &[d.uid], FlagOp::Add, Flags::SEEN, &[], None)
        .unwrap();
    store.create_mailbox(b.id, "Other", None).unwrap();
    assert_eq!(wa.borrow_and_update().changes, sa.changes + 2);
    assert_eq!(wb.borrow_and_update().changes, sb.changes + 1);
    // A failed write moves nothing; a second watcher sees the same signal.
    let _ = store.create_mailbox(a.id, "INBOX", None);
    assert!(!wa.has_changed().unwrap());
    assert_eq!(*store.watch_account(a.id).borrow(), *wa.borrow());
}

pub fn maildrop_lock_is_exclusive(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let lock = store.lock_maildrop(a.id).unwrap().expect("first lock");
    assert!(store.lock_maildrop(a.id).unwrap().is_none());
    drop(lock);
    assert!(store.lock_maildrop(a.id).unwrap().is_some());
}

pub fn meta_offsets_include_prefix(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let prefix = "Return-Path: <x@y>\r\n";
    let d = store
        .deliver(delivery(
            b"Subject: s\r\nFrom: x@y\r\n\r\nhello\r\n",
            vec![to_inbox(a.id, prefix)],
        ))
        .unwrap()[0];
    let content = store.message_content(d.mailbox, d.uid).unwrap().unwrap();
    let meta = store.message_meta(d.mailbox, d.uid).unwrap().unwrap();
    assert_eq!(meta.envelope.subject.as_deref(), Some("s"));
    assert_eq!(&content[meta.header_len as usize..], b"hello\r\n");
    assert_eq!(
        &content[meta.body.body_start as usize..meta.body.body_end as usize],
        b"hello\r\n"
    );
}

pub fn rename_mailbox_and_children(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let m = store.create_mailbox(a.id, "Work", None).unwrap();
    store.create_mailbox(a.id, "Work/2026", None).unwrap();
    store.create_mailbox(a.id, "Workshop", None).unwrap();
    store.rename_mailbox(a.id, "Work", "Job").unwrap();
    let names: Vec<String> = store
        .mailboxes(a.id)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(names.contains(&"Job".into()) && names.contains(&"Job/2026".into()));
    assert!(names.contains(&"Workshop".into()) && !names.contains(&"Work".into()));
    assert_eq!(
        store.mailbox(a.id, "Job").unwrap().unwrap().uidvalidity,
        m.uidvalidity
    );
    assert!(store.rename_mailbox(a.id, "Job", "Sent").is_err());
    assert!(store.rename_mailbox(a.id, "Nope", "X").is_err());
}

pub fn rename_inbox_moves_messages(store: Arc<dyn Store>) {
    let a = setup(&*store);
    deliver_one(&*store, a.id, "1");
    deliver_one(&*store, a.id, "2");
    store.rename_mailbox(a.id, "INBOX", "Old").unwrap();
    let old = store.mailbox(a.id, "Old").unwrap().unwrap();
    assert_eq!(store.messages(old.id, ModSeq(0)).unwrap().len(), 2);
    let inbox = inbox(&*store, a.id);
    assert!(store.messages(inbox.id, ModSeq(0)).unwrap().is_empty());
    assert!(
        deliver_one(&*store, a.id, "3").uid >= Uid(3),
        "INBOX UIDs go on"
    );
}

pub fn delete_mailbox_and_account(store: Arc<dyn Store>) {
    let a = setup(&*store);
    assert!(store.delete_mailbox(a.id, "INBOX").is_err());
    assert!(matches!(
        store.delete_mailbox(a.id, "Nope"),
        Err(StoreError::NotFound(_))
    ));
    deliver_one(&*store, a.id, "x");
    store.delete_account("alice@example.org").unwrap();
    assert!(store.account("alice@example.org").unwrap().is_none());
    assert!(store.mailboxes(a.id).unwrap().is_empty());
    let again = store.create_account("alice@example.org", "pw").unwrap();
    assert!(
        store
            .messages(inbox(&*store, again.id).id, ModSeq(0))
            .unwrap()
            .is_empty()
    );
}

pub fn concurrent_deliveries_get_distinct_uids(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| deliver_one(&*store, a.id, &format!("{t}-{i}")).uid)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<Uid> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200);
    let m = inbox(&*store, a.id);
    assert_eq!(store.messages(m.id, ModSeq(0)).unwrap().len(), 200);
    assert!(m.uidnext > *all.last().unwrap());
}

pub fn subscriptions_work(store: Arc<dyn Store>) {
    let a = setup(&*store);
    store.subscribe(a.id, "Lists/rust").unwrap();
    assert!(
        store
            .subscriptions(a.id)
            .unwrap()
            .contains(&"Lists/rust".to_string())
    );
    store.unsubscribe(a.id, "Lists/rust").unwrap();
    assert!(
        !store
            .subscriptions(a.id)
            .unwrap()
            .contains(&"Lists/rust".to_string())
    );
}

pub fn inbox_is_case_insensitive(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let m = store.mailbox(a.id, "inbox").unwrap().unwrap();
    assert_eq!(m.name, "INBOX");
    assert!(store.create_mailbox(a.id, "Inbox", None).is_err());
}

pub fn outbound_queue_keeps_envelope_and_content(store: Arc<dyn Store>) {
    assert!(store.queue().unwrap().is_empty());
    let mut r1 = QueuedRecipient::new("carol@remote.net");
    r1.notify = Some("SUCCESS,FAILURE".into());
    r1.orcpt = Some("rfc822;carol@remote.net".into());
    let msg = Outbound {
        sender: "alice@example.org".into(),
        recipients: vec![r1.clone(), QueuedRecipient::new("dave@other.net")],
        envelope: OutboundEnvelope {
            ret: Some("HDRS".into()),
            envid: Some("x+2By".into()),
            body: Some("8BITMIME".into()),
            smtputf8: true,
            authenticated_as: Some("alice@example.org".into()),
        },
        content: b"Subject: out\r\n\r\nbody\r\n".to_vec(),
    };
    let id = store.enqueue(msg.clone()).unwrap();
    let id2 = store
        .enqueue(Outbound {
            sender: String::new(),
            ..msg.clone()
        })
        .unwrap();
    assert_ne!(id, id2);
    let list = store.queue().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].sender, "alice@example.org");
    assert_eq!(list[0].size, msg.content.len() as u64);
    assert_eq!(list[0].envelope, msg.envelope);
    assert_eq!(list[0].recipients.len(), 2);
    assert!(list[0].recipients.contains(&r1));
    assert!(
        list[0]
            .recipients
            .iter()
            .all(|r| r.status == RecipientStatus::Pending)
    );
    assert_eq!(list[1].sender, "", "null sender kept");
    let (entry, content) = store.queue_entry(id).unwrap().unwrap();
    assert_eq!(entry.id, id);
    assert_eq!(content, msg.content);
    store.queue_delete(id).unwrap();
    assert!(store.queue_entry(id).unwrap().is_none());
    assert!(matches!(
        store.queue_delete(id),
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .enqueue(Outbound {
                recipients: vec![],
                ..msg
            })
            .is_err()
    );
}

/// The relay's view of the queue: claiming marks entries active (a second
/// claim does not return them), a delivered recipient is recorded at once,
/// settling records failures with their notifications in one step and
/// removes the entry when nobody is pending; hold/retry steer it.
pub fn queue_claims_settles_and_schedules(store: Arc<dyn Store>) {
    let out = |sender: &str, to: &[&str]| Outbound {
        sender: sender.into(),
        recipients: to.iter().map(|a| QueuedRecipient::new(*a)).collect(),
        envelope: OutboundEnvelope::default(),
        content: b"Subject: q\r\n\r\nx\r\n".to_vec(),
    };
    let mut feed = store.watch();
    let id = store
        .enqueue(out("a@x.org", &["b@y.net", "c@y.net", "d@z.net"]))
        .unwrap();
    // RFC-agnostic, but the relay relies on it: enqueueing wakes it.
    assert!(std::iter::from_fn(|| feed.try_recv().ok()).any(|c| c == Change::Queued));
    let far = i64::MAX / 2;
    let claimed = store.queue_claim(far, 10).unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].active);
    assert!(
        store.queue_claim(far, 10).unwrap().is_empty(),
        "claimed twice"
    );
    assert_eq!(
        store.queue_next_due().unwrap(),
        None,
        "an active entry is not due"
    );
    store.queue_delivered(id, &["b@y.net".to_string()]).unwrap();
    let notice = out("", &["a@x.org"]);
    store
        .queue_settle(
            id,
            QueueSettle {
                failed: vec![("c@y.net".into(), "5.1.1 no such user".into())],
                deferred: vec![("d@z.net".into(), "4.4.1 refused".into())],
                next_attempt: 12_345,
                notices: vec![notice],
                warned: true,
            },
        )
        .unwrap();
    let (entry, _) = store.queue_entry(id).unwrap().unwrap();
    assert!(!entry.active && entry.warned);
    assert_eq!(entry.next_attempt, 12_345);
    let state = |a: &str| {
        entry
            .recipients
            .iter()
            .find(|r| r.address == a)
            .unwrap()
            .clone()
    };
    assert_eq!(state("b@y.net").status, RecipientStatus::Delivered);
    assert_eq!(state("c@y.net").status, RecipientStatus::Failed);
    assert_eq!(
        state("c@y.net").last_error.as_deref(),
        Some("5.1.1 no such user")
    );
    assert_eq!(state("d@z.net").status, RecipientStatus::Pending);
    assert_eq!(state("d@z.net").attempts, 1);
    // The notice was queued in the same step: two entries now.
    let all = store.queue().unwrap();
    assert_eq!(all.len(), 2);
    let notice_id = all.iter().find(|e| e.id != id).unwrap().id;
    assert_eq!(
        store.queue_next_due().unwrap().map(|t| t <= 12_345),
        Some(true)
    );
    // Held: never claimed; released and retried: due now.
    store.queue_hold(id, true).unwrap();
    store.queue_delete(notice_id).unwrap();
    assert!(store.queue_claim(far, 10).unwrap().is_empty());
    store.queue_hold(id, false).unwrap();
    store.queue_retry(id).unwrap();
    let claimed = store.queue_claim(far, 10).unwrap();
    assert_eq!(claimed.len(), 1);
    // A stop in the middle of an attempt: the claim is released at start.
    assert_eq!(store.queue_release_claims().unwrap(), 1);
    let claimed = store.queue_claim(far, 10).unwrap();
    assert_eq!(claimed.len(), 1);
    // The last pending recipient delivered, then a crash before the
    // settle: at start the entry has nothing left to do and goes (it was
    // never claimable again, so the queue would never have emptied).
    store.queue_delivered(id, &["d@z.net".to_string()]).unwrap();
    assert_eq!(store.queue_release_claims().unwrap(), 1);
    assert!(store.queue_entry(id).unwrap().is_none());
    // Settling it afterwards (a relay that did not crash) is harmless.
    store.queue_settle(id, QueueSettle::default()).unwrap();
    assert!(store.queue_entry(id).unwrap().is_none());
    assert!(matches!(
        store.queue_retry(id),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.queue_hold(id, true),
        Err(StoreError::NotFound(_))
    ));
}

pub fn accept_delivers_and_queues_atomically(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let out = Outbound {
        sender: "x@remote.net".into(),
        recipients: vec![QueuedRecipient::new("y@remote.net")],
        envelope: OutboundEnvelope::default(),
        content: b"Subject: both\r\n\r\n".to_vec(),
    };
    let acc = store
        .accept(
            Some(delivery(b"Subject: both\r\n\r\n", vec![to_inbox(a.id, "")])),
            Some(out.clone()),
        )
        .unwrap();
    assert_eq!(acc.delivered.len(), 1);
    assert!(acc.queued.is_some());
    // A failing local part (unknown mailbox) queues nothing either.
    let mut bad = to_inbox(a.id, "");
    bad.mailbox = "Nope".into();
    assert!(
        store
            .accept(Some(delivery(b"S: x\r\n\r\n", vec![bad])), Some(out))
            .is_err()
    );
    assert_eq!(store.queue().unwrap().len(), 1);
    assert_eq!(
        store
            .messages(inbox(&*store, a.id).id, ModSeq(0))
            .unwrap()
            .len(),
        1
    );
}

pub fn copy_and_move_share_content_and_keep_flags(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let archive = store.mailbox(a.id, "Archive").unwrap().unwrap();
    let m1 = deliver_one(&*store, a.id, "one");
    let m2 = deliver_one(&*store, a.id, "two");
    store
        .store_flags(
            inbox.id,
            &[m1.uid],
            FlagOp::Add,
            Flags::FLAGGED,
            &["$Work".into()],
            None,
        )
        .unwrap();
    let used = store
        .account("alice@example.org")
        .unwrap()
        .unwrap()
        .used_bytes;
    let mut feed = store.watch();
    let pairs = store
        .copy_messages(inbox.id, &[m2.uid, m1.uid, Uid(999)], archive.id, false)
        .unwrap();
    assert_eq!(pairs.len(), 2, "the unknown UID is skipped");
    assert_eq!(pairs[0].0, m1.uid);
    assert!(pairs[1].1 > pairs[0].1);
    let copied = store.messages(archive.id, ModSeq(0)).unwrap();
    assert_eq!(copied.len(), 2);
    assert!(copied[0].flags.contains(Flags::FLAGGED));
    assert_eq!(copied[0].keywords, vec!["$Work".to_string()]);
    assert_eq!(
        store.message_content(archive.id, pairs[0].1).unwrap(),
        store.message_content(inbox.id, m1.uid).unwrap()
    );
    let after_copy = store
        .account("alice@example.org")
        .unwrap()
        .unwrap()
        .used_bytes;
    assert!(after_copy > used, "copies count against the quota");
    assert!(matches!(feed.try_recv(), Ok(Change::MessageAdded { .. })));
    // Expunging the source keeps the copy readable (shared content).
    store.expunge(inbox.id, &[m1.uid]).unwrap();
    assert!(
        store
            .message_content(archive.id, pairs[0].1)
            .unwrap()
            .is_some()
    );
    // MOVE: one transaction, source expunged with a MODSEQ for QRESYNC.
    let trash = store.mailbox(a.id, "Trash").unwrap().unwrap();
    let before = store.mailbox(a.id, "INBOX").unwrap().unwrap().highestmodseq;
    let moved = store
        .copy_messages(inbox.id, &[m2.uid], trash.id, true)
        .unwrap();
    assert_eq!(moved.len(), 1);
    assert!(store.messages(inbox.id, ModSeq(0)).unwrap().is_empty());
    assert_eq!(
        store.expunged_since(inbox.id, before).unwrap(),
        vec![m2.uid]
    );
    assert!(
        store
            .message_content(trash.id, moved[0].1)
            .unwrap()
            .is_some()
    );
    // Over quota: nothing is copied.
    store.set_quota(a.id, Some(1)).unwrap();
    assert!(matches!(
        store.copy_messages(archive.id, &[pairs[0].1], trash.id, false),
        Err(StoreError::OverQuota)
    ));
    assert_eq!(store.messages(trash.id, ModSeq(0)).unwrap().len(), 1);
}

pub fn recent_is_claimed_once(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let m1 = deliver_one(&*store, a.id, "one");
    assert_eq!(store.recent_from(inbox.id).unwrap(), Uid(1));
    assert_eq!(store.claim_recent(inbox.id).unwrap(), Uid(1));
    // The first claimer got m1; a second session sees nothing recent.
    assert!(store.claim_recent(inbox.id).unwrap() > m1.uid);
    let m2 = deliver_one(&*store, a.id, "two");
    assert_eq!(store.recent_from(inbox.id).unwrap(), m2.uid);
    assert_eq!(store.claim_recent(inbox.id).unwrap(), m2.uid);
    assert!(store.recent_from(inbox.id).unwrap() > m2.uid);
}

pub fn conditional_store_refuses_changed_messages(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let m1 = deliver_one(&*store, a.id, "one");
    let m2 = deliver_one(&*store, a.id, "two");
    let seen = store.mailbox(a.id, "INBOX").unwrap().unwrap().highestmodseq;
    store
        .store_flags(inbox.id, &[m1.uid], FlagOp::Add, Flags::ANSWERED, &[], None)
        .unwrap();
    let (updates, modified) = store
        .store_flags(
            inbox.id,
            &[m1.uid, m2.uid],
            FlagOp::Add,
            Flags::DELETED,
            &[],
            Some(seen),
        )
        .unwrap();
    assert_eq!(modified, vec![m1.uid]);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].uid, m2.uid);
    let list = store.messages(inbox.id, ModSeq(0)).unwrap();
    assert!(!list[0].flags.contains(Flags::DELETED));
    assert!(list[1].flags.contains(Flags::DELETED));
    // UNCHANGEDSINCE 0 refuses everything (RFC 7162 §3.1.3 example).
    let (u, m) = store
        .store_flags(
            inbox.id,
            &[m2.uid],
            FlagOp::Add,
            Flags::SEEN,
            &[],
            Some(ModSeq(0)),
        )
        .unwrap();
    assert!(u.is_empty());
    assert_eq!(m, vec![m2.uid]);
}

pub fn deliver_many_is_all_or_nothing(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let got = store
        .deliver_many(vec![
            delivery(b"Subject: 1\n\none\n", vec![to_inbox(a.id, "")]),
            delivery(b"Subject: 2\n\ntwo\n", vec![to_inbox(a.id, "")]),
        ])
        .unwrap();
    assert_eq!(got.len(), 2);
    assert!(got[1][0].uid > got[0][0].uid);
    assert_eq!(store.messages(inbox.id, ModSeq(0)).unwrap().len(), 2);
    // The second target's mailbox does not exist: nothing is stored.
    let mut bad = to_inbox(a.id, "");
    bad.mailbox = "Nowhere".into();
    assert!(
        store
            .deliver_many(vec![
                delivery(b"Subject: 3\n\nthree\n", vec![to_inbox(a.id, "")]),
                delivery(b"Subject: 4\n\nfour\n", vec![bad]),
            ])
            .is_err()
    );
    assert_eq!(store.messages(inbox.id, ModSeq(0)).unwrap().len(), 2);
}

pub fn changes_since_a_modseq(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let m1 = deliver_one(&*store, a.id, "one");
    let m2 = deliver_one(&*store, a.id, "two");
    let seen = store
        .mailbox_by_id(inbox.id)
        .unwrap()
        .unwrap()
        .highestmodseq;
    assert!(store.messages(inbox.id, seen).unwrap().is_empty());
    store
        .store_flags(inbox.id, &[m1.uid], FlagOp::Add, Flags::SEEN, &[], None)
        .unwrap();
    let m3 = deliver_one(&*store, a.id, "three");
    store.expunge(inbox.id, &[m2.uid]).unwrap();
    let changed: Vec<Uid> = store
        .messages(inbox.id, seen)
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(changed, vec![m1.uid, m3.uid]);
    assert_eq!(store.expunged_since(inbox.id, seen).unwrap(), vec![m2.uid]);
    // Renamed: still found by id.
    store.rename_mailbox(a.id, "Archive", "Old").unwrap();
    let archive_id = store.mailbox(a.id, "Old").unwrap().unwrap().id;
    assert_eq!(
        store.mailbox_by_id(archive_id).unwrap().unwrap().name,
        "Old"
    );
    store.delete_mailbox(a.id, "Old").unwrap();
    assert!(store.mailbox_by_id(archive_id).unwrap().is_none());
}

pub fn metas_in_bulk_match_one_by_one(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let uids: Vec<Uid> = (0..200)
        .map(|i| deliver_one(&*store, a.id, &format!("message {i}")).uid)
        .collect();
    store.expunge(inbox.id, &[uids[5]]).unwrap();
    // An 8-bit Subject: its ENVELOPE depends on the client's UTF-8 mode,
    // so it is not rendered at delivery.
    let raw8 = store
        .deliver(delivery(
            "Subject: Grüße\n\n8-bit\n".as_bytes(),
            vec![to_inbox(a.id, "")],
        ))
        .unwrap()[0]
        .uid;
    let wanted = vec![
        uids[0],
        uids[5],
        uids[6],
        uids[150],
        uids[199],
        Uid(99_999),
        raw8,
    ];
    let got = store.message_metas(inbox.id, &wanted).unwrap();
    let got_uids: Vec<Uid> = got.iter().map(|g| g.0).collect();
    assert_eq!(got_uids, vec![uids[0], uids[6], uids[150], uids[199], raw8]);
    for (uid, meta) in got {
        assert_eq!(Some(meta), store.message_meta(inbox.id, uid).unwrap());
    }
    let envelopes = store.message_envelopes(inbox.id, &wanted).unwrap();
    assert_eq!(envelopes.len(), 5);
    assert!(matches!(
        envelopes[4].1,
        crate::imapdata::EnvelopeData::Parsed(_)
    ));
    for (uid, e) in envelopes {
        let meta = store.message_meta(inbox.id, uid).unwrap().unwrap();
        let mut want = Vec::new();
        crate::imapdata::envelope(&mut want, &meta.envelope, false);
        match e {
            crate::imapdata::EnvelopeData::Rendered(r) => assert_eq!(r, want),
            crate::imapdata::EnvelopeData::Parsed(p) => assert_eq!(*p, meta.envelope),
        }
    }
    let contents = store.message_contents(inbox.id, &wanted).unwrap();
    assert_eq!(contents.len(), 5);
    for (uid, content) in contents {
        assert_eq!(Some(content), store.message_content(inbox.id, uid).unwrap());
    }
}
