//! The conformance suite every [`Store`] backend must pass unchanged, in
//! one file per store trait (`directory.rs`, `mailboxes.rs`, `messages.rs`,
//! `queue.rs`, `coordination.rs`, `reports.rs`).
//!
//! A backend's test file calls the macro with an expression that makes a
//! fresh, empty store:
//!
//! ```ignore
//! postamt_store::store_conformance_tests!(make_store());
//! ```
//!
//! Each check is also a public function (e.g.
//! `conformance::messages::flags_and_modseq`), so a backend can run one
//! alone.

pub mod coordination;
pub mod directory;
pub mod mailboxes;
pub mod messages;
pub mod queue;
pub mod reports;

use crate::*;

/// Generates one `#[test]` per conformance check, named after the check.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@each $make;
            directory: domains_and_accounts, special_use_mailboxes_with_each_account,
                passwords_are_argon2id_and_verified, aliases_and_catch_all,
                delete_mailbox_and_account, smime_certificates_per_account;
            mailboxes: uidvalidity_is_new_for_a_recreated_mailbox, rename_mailbox_and_children,
                rename_inbox_moves_messages, subscriptions_work, inbox_is_case_insensitive;
            messages: delivery_shares_content_and_keeps_prefixes,
                uids_ascend_and_are_never_reused, flags_and_modseq,
                conditional_store_refuses_changed_messages, expunge_log_serves_qresync,
                changes_since_a_modseq, changes_since_is_one_snapshot, quota_usage_is_kept_current,
                over_quota_fails_whole_delivery, meta_offsets_include_prefix,
                metas_in_bulk_match_one_by_one, concurrent_deliveries_get_distinct_uids,
                accept_delivers_and_queues_atomically, deliver_many_is_all_or_nothing,
                copy_and_move_share_content_and_keep_flags, recent_is_claimed_once,
                deliver_and_enqueue_are_halves_of_accept,
                listing_since_a_modseq_is_part_of_the_whole,
                store_flags_with_and_without_unchanged_since, reads_of_missing_messages_are_empty,
                recent_from_claims_nothing, search_headers_are_kept_with_the_content;
            queue: outbound_queue_keeps_envelope_and_content, queue_claims_settles_and_schedules;
            coordination: change_feed_reports_commits, account_signals_wake_only_that_account,
                maildrop_lock_is_exclusive;
            reports: report_counts_add_up_and_fall_due;
        );
    };
    (@each $make:expr; $($module:ident: $($name:ident),+;)+) => {
        $($(
            #[test]
            fn $name() {
                let store: std::sync::Arc<dyn $crate::Store> = $make;
                $crate::conformance::$module::$name(store);
            }
        )+)+
    };
}

const DOMAIN: &str = "example.org";

fn setup<S: Directory + ?Sized>(store: &S) -> Account {
    store.add_domain(DOMAIN).unwrap();
    store
        .create_account("alice@example.org", "pw-alice")
        .unwrap()
}

/// A delivery as the MDA makes one: plain-ASCII messages come with
/// pre-rendered ENVELOPE bytes (here a stand-in: to the store they are
/// opaque, [`rendered_envelope`]), 8-bit ones without.
fn delivery(content: &[u8], targets: Vec<DeliveryTarget>) -> Delivery {
    let mut d = Delivery::new(content.to_vec(), 1_700_000_000, targets);
    d.imap_envelope = d.content.is_ascii().then(|| rendered_envelope(&d.meta));
    d
}

/// The bytes [`delivery`] hands the store as the message's ENVELOPE.
fn rendered_envelope(meta: &MessageMeta) -> Vec<u8> {
    format!("(envelope of {:?})", meta.envelope.subject).into_bytes()
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

fn inbox<S: Mailboxes + ?Sized>(store: &S, account: AccountId) -> Mailbox {
    store
        .mailbox(account, "INBOX")
        .unwrap()
        .expect("INBOX exists")
}
