//! Mailbox rows for PostgreSQL: what the directory needs of them so far
//! (creating an account's mailboxes, dropping them with the account). The
//! [`crate::Mailboxes`] trait follows with the messages (issue 18).

use tokio_postgres::{Row, Transaction};

use super::{backend, now};
use crate::Result;
use crate::StoreError;
use crate::model::*;

const MAILBOX_COLS: &str = "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use";

fn special_use_name(u: SpecialUse) -> &'static str {
    &u.attribute()[1..]
}

fn mailbox_from_row(r: &Row) -> Mailbox {
    let special: Option<String> = r.get(6);
    Mailbox {
        id: MailboxId(r.get(0)),
        account: AccountId(r.get(1)),
        name: r.get(2),
        uidvalidity: UidValidity(r.get::<_, i64>(3) as u32),
        uidnext: Uid(r.get::<_, i64>(4) as u32),
        highestmodseq: ModSeq(r.get::<_, i64>(5) as u64),
        special_use: special.and_then(|s| SpecialUse::from_attribute(&format!("\\{s}"))),
    }
}

pub(super) async fn mailboxes_of(tx: &Transaction<'_>, account: AccountId) -> Result<Vec<Mailbox>> {
    let rows = tx
        .query(
            &format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = $1 ORDER BY name"),
            &[&account.0],
        )
        .await
        .map_err(backend)?;
    Ok(rows.iter().map(mailbox_from_row).collect())
}

/// A UIDVALIDITY never handed out before in this store: the clock in
/// seconds, or one more than the last, whichever is larger — one statement,
/// so nodes creating mailboxes at once never get the same.
async fn next_uidvalidity(tx: &Transaction<'_>) -> Result<u32> {
    let clock = (now() & 0xffff_ffff).max(1);
    let row = tx
        .query_one(
            "INSERT INTO counters(name, value) VALUES ('uidvalidity', $1)
             ON CONFLICT (name) DO UPDATE
                 SET value = GREATEST(EXCLUDED.value, counters.value + 1)
             RETURNING value",
            &[&clock],
        )
        .await
        .map_err(backend)?;
    let v: i64 = row.get(0);
    u32::try_from(v).map_err(|_| backend("UIDVALIDITY space used up"))
}

pub(super) async fn insert_mailbox(
    tx: &Transaction<'_>,
    account: AccountId,
    name: &str,
    special_use: Option<SpecialUse>,
) -> Result<Mailbox> {
    let uidvalidity = i64::from(next_uidvalidity(tx).await?);
    let special = special_use.map(special_use_name);
    let row = tx
        .query_opt(
            &format!(
                "INSERT INTO mailboxes(account_id, name, uidvalidity, uidnext, highestmodseq, special_use)
                 VALUES ($1, $2, $3, 1, 1, $4)
                 ON CONFLICT (account_id, name) DO NOTHING
                 RETURNING {MAILBOX_COLS}"
            ),
            &[&account.0, &name, &uidvalidity, &special],
        )
        .await
        .map_err(backend)?;
    row.map(|r| mailbox_from_row(&r))
        .ok_or_else(|| StoreError::AlreadyExists(format!("mailbox {name}")))
}

/// Removes a mailbox with all its messages (no expunge log: the mailbox and
/// its UIDVALIDITY are gone): content no other message refers to goes with
/// them, and the account's usage shrinks.
pub(super) async fn drop_mailbox(tx: &Transaction<'_>, mailbox: &Mailbox) -> Result<()> {
    let removed = tx
        .query(
            "DELETE FROM messages WHERE mailbox_id = $1 RETURNING blob_id, size",
            &[&mailbox.id.0],
        )
        .await
        .map_err(backend)?;
    let mut freed: i64 = 0;
    for r in &removed {
        let blob: i64 = r.get(0);
        freed += r.get::<_, i64>(1);
        let left: i64 = tx
            .query_one(
                "UPDATE blobs SET refcount = refcount - 1 WHERE id = $1 RETURNING refcount",
                &[&blob],
            )
            .await
            .map_err(backend)?
            .get(0);
        if left <= 0 {
            for sql in [
                "DELETE FROM blobs WHERE id = $1",
                "DELETE FROM envelopes WHERE blob_id = $1",
                "DELETE FROM search_headers WHERE blob_id = $1",
            ] {
                tx.execute(sql, &[&blob]).await.map_err(backend)?;
            }
        }
    }
    if freed > 0 {
        tx.execute(
            "UPDATE accounts SET used_bytes = GREATEST(0, used_bytes - $2) WHERE id = $1",
            &[&mailbox.account.0, &freed],
        )
        .await
        .map_err(backend)?;
    }
    tx.execute(
        "DELETE FROM expunged WHERE mailbox_id = $1",
        &[&mailbox.id.0],
    )
    .await
    .map_err(backend)?;
    tx.execute("DELETE FROM mailboxes WHERE id = $1", &[&mailbox.id.0])
        .await
        .map_err(backend)?;
    Ok(())
}
