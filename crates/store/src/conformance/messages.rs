//! Checks of [`Messages`]: delivery (shared content,
//! prefixes, all-or-nothing, quota), UIDs and MODSEQs, flags (with and
//! without UNCHANGEDSINCE), listings and changes since a MODSEQ, expunge
//! log, bulk reads, copy and move, `\Recent`.

use std::sync::Arc;

use super::{deliver_one, delivery, inbox, rendered_envelope, setup, to_inbox};
use crate::*;

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
    // One message's entry, read alone, is the listing's.
    for m in &list {
        assert_eq!(
            store.message_summary(d1.mailbox, m.uid).unwrap().as_ref(),
            Some(m)
        );
    }
    assert_eq!(store.message_summary(d1.mailbox, Uid(999)).unwrap(), None);
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

/// `changes_since` reads at one moment while another thread delivers and
/// expunges: no message is both changed and expunged, no MODSEQ is above
/// the mailbox's HIGHESTMODSEQ, no UID at or above its UIDNEXT.
pub fn changes_since_is_one_snapshot(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let since = inbox.highestmodseq;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            for i in 0..400 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let d = deliver_one(&*store, a.id, &format!("m{i}"));
                store.expunge(d.mailbox, &[d.uid]).unwrap();
            }
        })
    };
    for _ in 0..200 {
        let c = store.changes_since(inbox.id, since).unwrap().unwrap();
        let expunged = c.expunged.unwrap();
        for m in &c.changed {
            assert!(
                expunged.binary_search(&m.uid).is_err(),
                "UID {} both changed and expunged",
                m.uid.0
            );
            assert!(m.modseq <= c.mailbox.highestmodseq);
            assert!(m.uid < c.mailbox.uidnext);
        }
        assert!(expunged.iter().all(|u| *u < c.mailbox.uidnext));
        assert!(c.recent_from <= c.mailbox.uidnext);
        let all = store.changes_since(inbox.id, ModSeq(0)).unwrap().unwrap();
        assert!(all.expunged.is_none());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        store
            .changes_since(MailboxId(i64::MAX), since)
            .unwrap()
            .is_none()
    );
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
    // The bytes kept at delivery come back as they were given; without
    // them, the raw values of the metadata do.
    assert_eq!(
        envelopes[4].1,
        StoredEnvelope::Parsed(Box::new(
            store
                .message_meta(inbox.id, raw8)
                .unwrap()
                .unwrap()
                .envelope
        ))
    );
    for (uid, e) in envelopes {
        let meta = store.message_meta(inbox.id, uid).unwrap().unwrap();
        match e {
            StoredEnvelope::Rendered(r) => assert_eq!(r, rendered_envelope(&meta)),
            StoredEnvelope::Parsed(p) => assert_eq!(*p, meta.envelope),
        }
    }
    let contents = store.message_contents(inbox.id, &wanted).unwrap();
    assert_eq!(contents.len(), 5);
    for (uid, content) in contents {
        assert_eq!(Some(content), store.message_content(inbox.id, uid).unwrap());
    }
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
            vec![delivery(b"Subject: both\r\n\r\n", vec![to_inbox(a.id, "")])],
            Some(out.clone()),
        )
        .unwrap();
    assert_eq!(acc.delivered.len(), 1);
    assert!(acc.queued.is_some());
    // A failing local part (unknown mailbox) queues nothing either, and
    // the delivery before it in the same call is not stored.
    let mut bad = to_inbox(a.id, "");
    bad.mailbox = "Nope".into();
    assert!(
        store
            .accept(
                vec![
                    delivery(b"S: first\r\n\r\n", vec![to_inbox(a.id, "")]),
                    delivery(b"S: x\r\n\r\n", vec![bad]),
                ],
                Some(out.clone())
            )
            .is_err()
    );
    assert_eq!(store.queue().unwrap().len(), 1);
    let id = inbox(&*store, a.id).id;
    assert_eq!(store.messages(id, ModSeq(0)).unwrap().len(), 1);
    // Several deliveries of different content (one copy encrypted at rest
    // for one target) and the queue entry in one call: each target gets
    // its own content, `delivered` lists them in order.
    let b = store.create_account("bob@example.org", "pw").unwrap();
    let acc = store
        .accept(
            vec![
                delivery(b"Subject: plain\r\n\r\nfor a\r\n", vec![to_inbox(a.id, "")]),
                delivery(
                    b"Subject: sealed\r\n\r\nfor b\r\n",
                    vec![to_inbox(b.id, "")],
                ),
            ],
            Some(out),
        )
        .unwrap();
    assert_eq!(acc.delivered.len(), 2);
    assert_eq!(
        (acc.delivered[0].account, acc.delivered[1].account),
        (a.id, b.id)
    );
    assert!(acc.queued.is_some());
    assert_eq!(store.queue().unwrap().len(), 2);
    let read = |d: &Delivered| store.message_content(d.mailbox, d.uid).unwrap().unwrap();
    assert!(read(&acc.delivered[0]).ends_with(b"for a\r\n"));
    assert!(read(&acc.delivered[1]).ends_with(b"for b\r\n"));
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
    let (from, to) = store.claim_recent(inbox.id).unwrap();
    assert_eq!(from, Uid(1));
    assert!(to > m1.uid, "the claimed range holds m1");
    // The first claimer got m1; a second session sees nothing recent.
    let (from, to) = store.claim_recent(inbox.id).unwrap();
    assert!(from > m1.uid && from == to, "nothing left to claim");
    let m2 = deliver_one(&*store, a.id, "two");
    assert_eq!(store.recent_from(inbox.id).unwrap(), m2.uid);
    assert_eq!(store.claim_recent(inbox.id).unwrap().0, m2.uid);
    assert!(store.recent_from(inbox.id).unwrap() > m2.uid);
}

/// `deliver` stores without queueing and `enqueue` queues without storing
/// (each is `accept` with one side); a delivery without targets stores
/// nothing and does not fail.
pub fn deliver_and_enqueue_are_halves_of_accept(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let id = inbox(&*store, a.id).id;
    let none = store
        .deliver(delivery(b"Subject: nobody\r\n\r\n", vec![]))
        .unwrap();
    assert!(none.is_empty());
    assert!(store.messages(id, ModSeq(0)).unwrap().is_empty());
    deliver_one(&*store, a.id, "local");
    assert!(store.queue().unwrap().is_empty(), "deliver queued");
    let queued = store
        .enqueue(Outbound {
            sender: "alice@example.org".into(),
            recipients: vec![QueuedRecipient::new("x@remote.net")],
            envelope: OutboundEnvelope::default(),
            content: b"Subject: out\r\n\r\nx\r\n".to_vec(),
        })
        .unwrap();
    let entries: Vec<QueueId> = store.queue().unwrap().iter().map(|e| e.id).collect();
    assert_eq!(entries, vec![queued]);
    assert_eq!(
        store.messages(id, ModSeq(0)).unwrap().len(),
        1,
        "enqueue delivered"
    );
}

/// `messages(mailbox, since)`: `ModSeq(0)` lists every message (a MODSEQ
/// is positive), and any other `since` exactly those of the whole listing
/// whose MODSEQ is above it, in the same order (a backend may answer the
/// two with different queries).
pub fn listing_since_a_modseq_is_part_of_the_whole(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let uids: Vec<Uid> = (0..6)
        .map(|i| deliver_one(&*store, a.id, &i.to_string()).uid)
        .collect();
    let id = inbox(&*store, a.id).id;
    store
        .store_flags(id, &[uids[1], uids[4]], FlagOp::Add, Flags::SEEN, &[], None)
        .unwrap();
    store.expunge(id, &[uids[2]]).unwrap();
    let all = store.messages(id, ModSeq(0)).unwrap();
    let listed: Vec<Uid> = all.iter().map(|m| m.uid).collect();
    assert_eq!(listed, vec![uids[0], uids[1], uids[3], uids[4], uids[5]]);
    assert!(all.iter().all(|m| m.modseq > ModSeq(0)));
    let top = inbox(&*store, a.id).highestmodseq;
    for since in (1..=top.0).map(ModSeq) {
        let want: Vec<MessageSummary> = all.iter().filter(|m| m.modseq > since).cloned().collect();
        assert_eq!(store.messages(id, since).unwrap(), want, "since {since:?}");
    }
    assert!(store.messages(id, top).unwrap().is_empty());
}

/// The one flags method, with and without `unchanged_since`: without it
/// nothing is refused; with it a message whose MODSEQ equals the value is
/// changed (only a greater one changed since, RFC 7162 §3.1.3), a greater
/// one is refused, and UIDs not in the mailbox are in neither list.
pub fn store_flags_with_and_without_unchanged_since(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let m1 = deliver_one(&*store, a.id, "one");
    let m2 = deliver_one(&*store, a.id, "two");
    let id = m1.mailbox;
    let list = store.messages(id, ModSeq(0)).unwrap();
    let (ms1, ms2) = (list[0].modseq, list[1].modseq);
    assert!(ms1 < ms2);
    let uids = [m1.uid, m2.uid, Uid(999)];
    let (up, modified) = store
        .store_flags(id, &uids, FlagOp::Add, Flags::FLAGGED, &[], Some(ms1))
        .unwrap();
    let updated: Vec<Uid> = up.iter().map(|u| u.uid).collect();
    assert_eq!(updated, vec![m1.uid]);
    assert_eq!(modified, vec![m2.uid]);
    // Without: m2 changes too (m1 is flagged already: not returned).
    let (up, modified) = store
        .store_flags(id, &uids, FlagOp::Add, Flags::FLAGGED, &[], None)
        .unwrap();
    let updated: Vec<Uid> = up.iter().map(|u| u.uid).collect();
    assert_eq!(updated, vec![m2.uid]);
    assert!(modified.is_empty());
    let list = store.messages(id, ModSeq(0)).unwrap();
    assert!(list.iter().all(|m| m.flags.contains(Flags::FLAGGED)));
}

/// Reads of messages that are not there: the one-message forms say
/// `None`, the bulk forms leave them out (also for a deleted mailbox).
pub fn reads_of_missing_messages_are_empty(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let d = deliver_one(&*store, a.id, "x");
    store.expunge(d.mailbox, &[d.uid]).unwrap();
    let gone = store.create_mailbox(a.id, "Gone", None).unwrap();
    store.delete_mailbox(a.id, "Gone").unwrap();
    for (mailbox, uid) in [(d.mailbox, d.uid), (d.mailbox, Uid(999)), (gone.id, Uid(1))] {
        assert!(store.message_content(mailbox, uid).unwrap().is_none());
        assert!(store.message_meta(mailbox, uid).unwrap().is_none());
        assert!(store.message_contents(mailbox, &[uid]).unwrap().is_empty());
        assert!(store.message_metas(mailbox, &[uid]).unwrap().is_empty());
        assert!(store.message_envelopes(mailbox, &[uid]).unwrap().is_empty());
    }
    assert!(store.messages(gone.id, ModSeq(0)).unwrap().is_empty());
}

/// `recent_from` only reads: asking twice gives the same mark, and the
/// messages stay recent for the session that claims them. `claim_recent`
/// returns the old mark once and leaves the mark at UIDNEXT.
pub fn recent_from_claims_nothing(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let m1 = deliver_one(&*store, a.id, "one");
    let m2 = deliver_one(&*store, a.id, "two");
    let id = m1.mailbox;
    assert_eq!(store.recent_from(id).unwrap(), m1.uid);
    assert_eq!(store.recent_from(id).unwrap(), m1.uid, "a read claimed");
    assert_eq!(store.claim_recent(id).unwrap().0, m1.uid);
    let uidnext = inbox(&*store, a.id).uidnext;
    assert!(uidnext > m2.uid);
    assert_eq!(store.recent_from(id).unwrap(), uidnext);
    assert_eq!(
        store.claim_recent(id).unwrap(),
        (uidnext, uidnext),
        "claimed twice"
    );
    // A mailbox that is gone has no mark.
    let gone = store.create_mailbox(a.id, "Gone", None).unwrap();
    store.delete_mailbox(a.id, "Gone").unwrap();
    assert!(matches!(
        store.recent_from(gone.id),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.claim_recent(gone.id),
        Err(StoreError::NotFound(_))
    ));
}

/// The SEARCH header values kept with a delivery: listed per message (in
/// UID order), shared by a copy, gone with the last message of the content;
/// a delivery without them lists `None`.
pub fn search_headers_are_kept_with_the_content(store: Arc<dyn Store>) {
    let a = setup(&*store);
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let archive = store.mailbox(a.id, "Archive").unwrap().unwrap();
    let with = deliver_one(&*store, a.id, "kept");
    let mut d = delivery(b"Subject: not kept\r\n\r\nx\r\n", vec![to_inbox(a.id, "")]);
    d.search_headers = None;
    let without = store.deliver(d).unwrap()[0];
    let listed = store.search_headers(inbox.id, Uid(0)).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].0, with.uid);
    let kept = listed[0].1.clone().expect("kept");
    assert_eq!(kept.subject.as_deref(), Some("test\n"), "{kept:?}");
    assert_eq!(listed[1], (without.uid, None));
    assert_eq!(
        store.search_headers(inbox.id, with.uid).unwrap(),
        vec![(without.uid, None)],
        "only what is above `after`"
    );
    let copied = store
        .copy_messages(inbox.id, &[with.uid], archive.id, false)
        .unwrap();
    store.expunge(inbox.id, &[with.uid]).unwrap();
    let in_archive = store.search_headers(archive.id, Uid(0)).unwrap();
    assert_eq!(
        in_archive,
        vec![(copied[0].1, Some(kept))],
        "shared by the copy"
    );
    store.expunge(archive.id, &[copied[0].1]).unwrap();
    assert!(store.search_headers(archive.id, Uid(0)).unwrap().is_empty());
}
