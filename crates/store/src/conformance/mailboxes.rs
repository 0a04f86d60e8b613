//! Checks of [`Mailboxes`]: creating, renaming and
//! deleting mailboxes (UIDVALIDITY), INBOX's special rules, subscriptions.

use std::sync::Arc;

use super::{deliver_one, inbox, setup};
use crate::*;

pub fn uidvalidity_is_new_for_a_recreated_mailbox<S: Directory + Mailboxes + ?Sized>(
    store: impl std::ops::Deref<Target = S>,
) {
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

pub fn rename_mailbox_and_children<S: Directory + Mailboxes + ?Sized>(
    store: impl std::ops::Deref<Target = S>,
) {
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

pub fn subscriptions_work<S: Directory + Mailboxes + ?Sized>(
    store: impl std::ops::Deref<Target = S>,
) {
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

pub fn inbox_is_case_insensitive<S: Directory + Mailboxes + ?Sized>(
    store: impl std::ops::Deref<Target = S>,
) {
    let a = setup(&*store);
    let m = store.mailbox(a.id, "inbox").unwrap().unwrap();
    assert_eq!(m.name, "INBOX");
    assert!(store.create_mailbox(a.id, "Inbox", None).is_err());
}
