//! Checks of [`Queue`]: entries keep envelope and content;
//! the relay's claim, delivered, settle, hold and retry.

use std::sync::Arc;

use crate::*;

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
