//! [`crate::Mailboxes`] for PostgreSQL: tables `mailboxes` (UIDVALIDITY,
//! UIDNEXT, HIGHESTMODSEQ, the `\Recent` mark) and `subscriptions`, and the
//! store-wide UIDVALIDITY counter, as `sqlite/mailboxes.rs` has them.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::{exec, now, row, row_opt, rows};
use crate::Result;
use crate::StoreError;
use crate::model::*;

pub(super) const MAILBOX_COLS: &str =
    "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use";

pub(super) fn mailbox_from_row(r: &Row) -> Mailbox {
    let special: Option<String> = r.get(6);
    Mailbox {
        id: MailboxId(r.get(0)),
        account: AccountId(r.get(1)),
        name: r.get(2),
        uidvalidity: UidValidity(r.get::<_, i64>(3) as u32),
        uidnext: Uid(r.get::<_, i64>(4) as u32),
        highestmodseq: ModSeq(r.get::<_, i64>(5) as u64),
        special_use: special.and_then(|s| crate::rules::special_use_from_stored(&s)),
    }
}

pub(super) async fn mailboxes_of(tx: &Transaction<'_>, account: AccountId) -> Result<Vec<Mailbox>> {
    let rows = rows(
        tx,
        &format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 ORDER BY name"),
        &[&account.0],
    )
    .await?;
    Ok(rows.iter().map(mailbox_from_row).collect())
}

/// A UIDVALIDITY never handed out before in this store: the clock in
/// seconds, or one more than the last, whichever is larger — one statement,
/// so nodes creating mailboxes at once never get the same.
async fn next_uidvalidity(tx: &Transaction<'_>) -> Result<u32> {
    let clock = (now() & 0xffff_ffff).max(1);
    let row = row(
        tx,
        "INSERT INTO counters(name, value) VALUES ('uidvalidity', $1)
             ON CONFLICT (name) DO UPDATE
                 SET value = GREATEST(EXCLUDED.value, counters.value + 1)
             RETURNING value",
        &[&clock],
    )
    .await?;
    let v: i64 = row.get(0);
    u32::try_from(v).map_err(|_| super::fail("UIDVALIDITY space used up"))
}

pub(super) async fn insert_mailbox(
    tx: &Transaction<'_>,
    account: AccountId,
    name: &str,
    special_use: Option<SpecialUse>,
) -> Result<Mailbox> {
    let uidvalidity = i64::from(next_uidvalidity(tx).await?);
    let special = special_use.map(crate::rules::special_use_stored);
    let row = row_opt(tx, &format!(
                "INSERT INTO mailboxes(account_id, name, uidvalidity, uidnext, highestmodseq, special_use)
                 VALUES ($1, $2, $3, 1, 1, $4)
                 ON CONFLICT (account_id, name) DO NOTHING
                 RETURNING {MAILBOX_COLS}"
            ), &[&account.0, &name, &uidvalidity, &special]).await?;
    row.map(|r| mailbox_from_row(&r))
        .ok_or_else(|| StoreError::AlreadyExists(format!("mailbox {name}")))
}

/// Removes a mailbox with all its messages (no expunge log: the mailbox and
/// its UIDVALIDITY are gone): content no other message refers to goes with
/// them, and the account's usage shrinks.
pub(super) async fn drop_mailbox(tx: &Transaction<'_>, mailbox: &Mailbox) -> Result<()> {
    let removed = rows(
        tx,
        "DELETE FROM messages WHERE mailbox_id = $1 RETURNING blob_id, size",
        &[&mailbox.id.0],
    )
    .await?;
    let blobs: Vec<i64> = removed.iter().map(|r| r.get(0)).collect();
    let freed: i64 = removed.iter().map(|r| r.get::<_, i64>(1)).sum();
    super::messages::unref_blobs(tx, &blobs).await?;
    if freed > 0 {
        exec(
            tx,
            "UPDATE accounts SET used_bytes = GREATEST(0, used_bytes - $2) WHERE id = $1",
            &[&mailbox.account.0, &freed],
        )
        .await?;
    }
    exec(
        tx,
        "DELETE FROM expunged WHERE mailbox_id = $1",
        &[&mailbox.id.0],
    )
    .await?;
    exec(tx, "DELETE FROM mailboxes WHERE id = $1", &[&mailbox.id.0]).await?;
    Ok(())
}

pub(super) async fn find_mailbox(
    c: &impl deadpool_postgres::GenericClient,
    account: AccountId,
    name: &str,
) -> Result<Option<Mailbox>> {
    Ok(row_opt(
        c,
        &format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 AND name = $2"),
        &[&account.0, &name],
    )
    .await?
    .map(|r| mailbox_from_row(&r)))
}

/// RFC 9051 §6.3.6: renaming INBOX moves its messages into `target` (new,
/// empty) with UIDs 1, 2, … in their order, and leaves INBOX empty; the
/// source logs the expunges for QRESYNC under a new MODSEQ. The content
/// and the account's usage stay as they are (a move within the account).
async fn move_all(tx: &Transaction<'_>, source: &Mailbox, target: &Mailbox) -> Result<Vec<Change>> {
    let moved = rows(
        tx,
        "WITH gone AS (DELETE FROM messages WHERE mailbox_id = $1 RETURNING *)
             SELECT uid, modseq, flags, keywords, internaldate, size, blob_id, prefix, envelope
             FROM gone ORDER BY uid",
        &[&source.id.0],
    )
    .await?;
    if moved.is_empty() {
        return Ok(Vec::new());
    }
    let modseq: i64 = row(
        tx,
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1
             RETURNING highestmodseq",
        &[&target.id.0],
    )
    .await?
    .get(0);
    let mut added = Vec::new();
    for (i, r) in moved.iter().enumerate() {
        let uid = i as i64 + 1;
        exec(tx, "INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internaldate, size, blob_id, prefix, envelope)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", &[
                &target.id.0,
                &uid,
                &modseq,
                &r.get::<_, i16>(2),
                &r.get::<_, String>(3),
                &r.get::<_, i64>(4),
                &r.get::<_, i64>(5),
                &r.get::<_, i64>(6),
                &r.get::<_, Vec<u8>>(7),
                &r.get::<_, Option<Vec<u8>>>(8),
            ]).await?;
        added.push(Uid(uid as u32));
    }
    exec(
        tx,
        "UPDATE mailboxes SET uidnext = $2 WHERE id = $1",
        &[&target.id.0, &(moved.len() as i64 + 1)],
    )
    .await?;
    let source_modseq: i64 = row(
        tx,
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1
             RETURNING highestmodseq",
        &[&source.id.0],
    )
    .await?
    .get(0);
    let gone: Vec<i64> = moved.iter().map(|r| r.get::<_, i64>(0)).collect();
    exec(tx, "INSERT INTO expunged(mailbox_id, uid, modseq) SELECT $1, u, $2 FROM unnest($3::bigint[]) AS u
         ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq", &[&source.id.0, &source_modseq, &gone]).await?;
    let mut changes: Vec<Change> = added
        .into_iter()
        .map(|uid| Change::MessageAdded {
            account: target.account,
            mailbox: target.id,
            uid,
            modseq: ModSeq(modseq as u64),
        })
        .collect();
    changes.push(Change::Expunged {
        account: source.account,
        mailbox: source.id,
        uids: gone.iter().map(|u| Uid(*u as u32)).collect(),
        modseq: ModSeq(source_modseq as u64),
    });
    Ok(changes)
}

impl crate::Mailboxes for super::PgStore {
    fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        crate::check_mailbox_name(name)?;
        let name = crate::canonical_mailbox_name(name);
        self.write(async move |tx| {
            let m = insert_mailbox(tx, account, &name, special_use).await?;
            Ok((
                m,
                vec![Change::MailboxCreated {
                    account,
                    name: name.clone(),
                }],
            ))
        })
    }

    fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.block(async move |c| {
            let rows = rows(
                &*c,
                &format!(
                    "SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 ORDER BY name"
                ),
                &[&account.0],
            )
            .await?;
            Ok(rows.iter().map(mailbox_from_row).collect())
        })
    }

    fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
        let name = crate::canonical_mailbox_name(name);
        self.block(async move |c| find_mailbox(&*c, account, &name).await)
    }

    fn mailbox_by_id(&self, mailbox: MailboxId) -> Result<Option<Mailbox>> {
        self.block(async move |c| {
            Ok(row_opt(
                &*c,
                &format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = $1"),
                &[&mailbox.0],
            )
            .await?
            .map(|r| mailbox_from_row(&r)))
        })
    }

    fn mailbox_status(&self, mailbox: MailboxId) -> Result<MailboxStatus> {
        self.block(async move |c| {
            let r = row(&*c, "SELECT COUNT(*), COUNT(*) FILTER (WHERE flags & 1 = 0), COALESCE(SUM(size), 0)::bigint
                     FROM messages WHERE mailbox_id = $1", &[&mailbox.0]).await?;
            Ok(MailboxStatus {
                messages: r.get::<_, i64>(0) as u32,
                unseen: r.get::<_, i64>(1) as u32,
                size: r.get::<_, i64>(2).max(0) as u64,
            })
        })
    }

    fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        crate::check_mailbox_name(to)?;
        let from = crate::canonical_mailbox_name(from);
        let to = crate::canonical_mailbox_name(to);
        self.write(async move |tx| {
            let source = find_mailbox(tx, account, &from)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {from}")))?;
            if find_mailbox(tx, account, &to).await?.is_some() || to == "INBOX" {
                return Err(StoreError::AlreadyExists(format!("mailbox {to}")));
            }
            if to.starts_with(&format!("{from}/")) {
                return Err(StoreError::Invalid(
                    "cannot rename a mailbox into itself".into(),
                ));
            }
            let mut changes = Vec::new();
            if from == "INBOX" {
                // RFC 9051 §6.3.6: INBOX's inferiors are not renamed.
                let target = insert_mailbox(tx, account, &to, None).await?;
                changes.push(Change::MailboxCreated {
                    account,
                    name: to.clone(),
                });
                changes.extend(move_all(tx, &source, &target).await?);
                return Ok(((), changes));
            }
            // The mailbox and its children: `from` and `from/…` (compared
            // as text, no LIKE: names may hold `%` and `_`).
            exec(
                tx,
                "UPDATE mailboxes SET name = $3 || substr(name, length($2) + 1)
                 WHERE account_id = $1 AND (name = $2 OR left(name, length($2) + 1) = $2 || '/')",
                &[&account.0, &from, &to],
            )
            .await?;
            changes.push(Change::MailboxRenamed {
                account,
                from: from.clone(),
                to: to.clone(),
            });
            Ok(((), changes))
        })
    }

    fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = crate::canonical_mailbox_name(name);
        self.write(async move |tx| {
            if name == "INBOX" {
                return Err(StoreError::Invalid("INBOX cannot be deleted".into()));
            }
            let m = find_mailbox(tx, account, &name)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
            drop_mailbox(tx, &m).await?;
            Ok((
                (),
                vec![Change::MailboxDeleted {
                    account,
                    name: name.clone(),
                }],
            ))
        })
    }

    fn subscribe(&self, account: AccountId, name: &str) -> Result<()> {
        let name = crate::canonical_mailbox_name(name);
        self.write(async move |tx| {
            exec(tx, "INSERT INTO subscriptions(account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&account.0, &name]).await?;
            Ok(((), vec![]))
        })
    }

    fn unsubscribe(&self, account: AccountId, name: &str) -> Result<()> {
        let name = crate::canonical_mailbox_name(name);
        self.write(async move |tx| {
            exec(
                tx,
                "DELETE FROM subscriptions WHERE account_id = $1 AND name = $2",
                &[&account.0, &name],
            )
            .await?;
            Ok(((), vec![]))
        })
    }

    fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.block(async move |c| {
            let rows = rows(
                &*c,
                "SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name",
                &[&account.0],
            )
            .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}
