//! Checks of [`Coordination`]: the change feed, the
//! per-account signals and the POP3 maildrop lock.

use std::sync::Arc;

use super::{DOMAIN, deliver_one, setup};
use crate::*;

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
