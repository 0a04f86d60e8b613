//! Checks of [`Directory`]: domains, accounts
//! (passwords, the mailboxes an account starts with, deletion) and aliases.
//! Those that need nothing but the directory take any `Directory` (a
//! backend being written runs them before it has the other traits).

use std::sync::Arc;

use super::{deliver_one, inbox, setup};
use crate::*;

pub fn domains_and_accounts<S: Directory + ?Sized>(store: impl std::ops::Deref<Target = S>) {
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

pub fn special_use_mailboxes_with_each_account<S: Directory + Mailboxes + ?Sized>(
    store: impl std::ops::Deref<Target = S>,
) {
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

pub fn passwords_are_argon2id_and_verified<S: Directory + ?Sized>(
    store: impl std::ops::Deref<Target = S>,
) {
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

pub fn aliases_and_catch_all<S: Directory + ?Sized>(store: impl std::ops::Deref<Target = S>) {
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

/// The S/MIME certificate of encryption at rest: set, read for several
/// accounts at once (only those with one), replaced, removed; an unknown
/// account is NotFound; a new account of a deleted one's address has none.
pub fn smime_certificates_per_account<S: Directory + ?Sized>(
    store: impl std::ops::Deref<Target = S>,
) {
    let a = setup(&*store);
    let b = store.create_account("bob@example.org", "pw").unwrap();
    assert!(store.smime_certificates(&[a.id, b.id]).unwrap().is_empty());
    store
        .set_smime_certificate(b.id, Some(b"PEM of bob"))
        .unwrap();
    assert_eq!(
        store.smime_certificates(&[a.id, b.id]).unwrap(),
        vec![(b.id, b"PEM of bob".to_vec())]
    );
    store.set_smime_certificate(b.id, Some(b"renewed")).unwrap();
    store
        .set_smime_certificate(a.id, Some(b"PEM of alice"))
        .unwrap();
    assert_eq!(
        store.smime_certificates(&[b.id, a.id]).unwrap(),
        vec![
            (b.id, b"renewed".to_vec()),
            (a.id, b"PEM of alice".to_vec())
        ]
    );
    store.set_smime_certificate(a.id, None).unwrap();
    assert_eq!(store.smime_certificates(&[a.id]).unwrap(), vec![]);
    assert!(matches!(
        store.set_smime_certificate(AccountId(999_999), Some(b"x")),
        Err(StoreError::NotFound(_))
    ));
    store.delete_account("bob@example.org").unwrap();
    let again = store.create_account("bob@example.org", "pw").unwrap();
    assert!(store.smime_certificates(&[again.id]).unwrap().is_empty());
}
