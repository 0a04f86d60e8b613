//! [`Mailboxes`] for SQLite: tables `mailboxes` (UIDVALIDITY, UIDNEXT,
//! HIGHESTMODSEQ, the `\Recent` mark) and `subscriptions`, and the
//! store-wide UIDVALIDITY counter.

use rusqlite::{Connection, OptionalExtension, params};

use super::directory::add_used;
use super::messages::{copy_in, remove_messages};
use super::rows::{MAILBOX_COLS, mailbox_from_row};
use super::{SqliteStore, backend, now};
use crate::model::*;
use crate::{Mailboxes, Result, StoreError, canonical_mailbox_name, check_mailbox_name};

impl Mailboxes for SqliteStore {
    fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        check_mailbox_name(name)?;
        let name = canonical_mailbox_name(name);
        self.write(move |c| {
            let m = insert_mailbox(c, account, &name, special_use)?;
            Ok((m, vec![Change::MailboxCreated { account, name }]))
        })
    }

    fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = ?1 ORDER BY name"
                ))
                .map_err(backend)?;
            s.query_map([account.0], mailbox_from_row)
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
    }

    fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
        let name = canonical_mailbox_name(name);
        self.read(|c| find_mailbox(c, account, &name))
    }

    fn mailbox_status(&self, mailbox: MailboxId) -> Result<MailboxStatus> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(flags & 1 = 0), 0), COALESCE(SUM(size), 0)
                 FROM messages WHERE mailbox_id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([mailbox.0], |r| {
                    Ok(MailboxStatus {
                        messages: r.get::<_, i64>(0)? as u32,
                        unseen: r.get::<_, i64>(1)? as u32,
                        size: r.get::<_, i64>(2)? as u64,
                    })
                })
            })
            .map_err(backend)
        })
    }

    fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        check_mailbox_name(to)?;
        let from = canonical_mailbox_name(from);
        let to = canonical_mailbox_name(to);
        self.write(move |c| {
            let source = find_mailbox(c, account, &from)?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {from}")))?;
            if find_mailbox(c, account, &to)?.is_some() || to == "INBOX" {
                return Err(StoreError::AlreadyExists(format!("mailbox {to}")));
            }
            if to.starts_with(&format!("{from}/")) {
                return Err(StoreError::Invalid(
                    "cannot rename a mailbox into itself".into(),
                ));
            }
            let mut changes = Vec::new();
            if from == "INBOX" {
                // RFC 9051 §6.3.6: move all messages to a new mailbox, leave
                // INBOX empty; its inferiors are not renamed.
                let target = insert_mailbox(c, account, &to, None)?;
                let uids = all_uids(c, source.id)?;
                changes.push(Change::MailboxCreated {
                    account,
                    name: to.clone(),
                });
                let (_, moved) = copy_in(c, &source, &uids, &target, true)?;
                changes.extend(moved);
                return Ok(((), changes));
            }
            let pattern = format!("{from}/%");
            c.execute(
                "UPDATE mailboxes SET name = ?3 || substr(name, length(?2) + 1)
                 WHERE account_id = ?1 AND (name = ?2 OR name LIKE ?4 ESCAPE '\\')",
                params![account.0, from, to, pattern.replace('_', "\\_")],
            )
            .map_err(backend)?;
            changes.push(Change::MailboxRenamed { account, from, to });
            Ok(((), changes))
        })
    }

    fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = canonical_mailbox_name(name);
        self.write(move |c| {
            if name == "INBOX" {
                return Err(StoreError::Invalid("INBOX cannot be deleted".into()));
            }
            let m = find_mailbox(c, account, &name)?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
            drop_mailbox(c, &m)?;
            Ok(((), vec![Change::MailboxDeleted { account, name }]))
        })
    }

    fn subscribe(&self, account: AccountId, name: &str) -> Result<()> {
        let name = canonical_mailbox_name(name);
        self.write(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES (?1, ?2)",
                params![account.0, name],
            )
            .map_err(backend)?;
            Ok(((), vec![]))
        })
    }

    fn unsubscribe(&self, account: AccountId, name: &str) -> Result<()> {
        let name = canonical_mailbox_name(name);
        self.write(move |c| {
            c.execute(
                "DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2",
                params![account.0, name],
            )
            .map_err(backend)?;
            Ok(((), vec![]))
        })
    }

    fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT name FROM subscriptions WHERE account_id = ?1 ORDER BY name",
                )
                .map_err(backend)?;
            s.query_map([account.0], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
    }

    fn mailbox_by_id(&self, mailbox: MailboxId) -> Result<Option<Mailbox>> {
        self.read(|c| match mailbox_by_id(c, mailbox) {
            Ok(m) => Ok(Some(m)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        })
    }
}

pub(super) fn find_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> Result<Option<Mailbox>> {
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = ?1 AND name = ?2"
    ))
    .and_then(|mut s| {
        s.query_row(params![account.0, name], mailbox_from_row)
            .optional()
    })
    .map_err(backend)
}

pub(super) fn mailbox_by_id(conn: &Connection, id: MailboxId) -> Result<Mailbox> {
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id.0], mailbox_from_row).optional())
    .map_err(backend)?
    .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", id.0)))
}

/// A UIDVALIDITY never handed out before in this store: the clock in
/// seconds, or one more than the last, whichever is larger.
fn next_uidvalidity(conn: &Connection) -> Result<u32> {
    let last: i64 = conn
        .query_row(
            "SELECT value FROM counters WHERE name = 'uidvalidity'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?
        .unwrap_or(0);
    let next = (now() & 0xffff_ffff)
        .max(last + 1)
        .clamp(1, u32::MAX as i64);
    conn.execute(
        "INSERT INTO counters(name, value) VALUES ('uidvalidity', ?1)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        [next],
    )
    .map_err(backend)?;
    Ok(next as u32)
}

pub(super) fn insert_mailbox(
    conn: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<SpecialUse>,
) -> Result<Mailbox> {
    if find_mailbox(conn, account, name)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {name}")));
    }
    let uidvalidity = next_uidvalidity(conn)?;
    conn.execute(
        "INSERT INTO mailboxes(account_id, name, uidvalidity, uidnext, highestmodseq, special_use)
         VALUES (?1, ?2, ?3, 1, 1, ?4)",
        params![
            account.0,
            name,
            uidvalidity,
            special_use.map(crate::rules::special_use_stored)
        ],
    )
    .map_err(backend)?;
    find_mailbox(conn, account, name)?.ok_or_else(|| backend("mailbox vanished"))
}

/// Takes a new MODSEQ for the mailbox (RFC 7162 §3.1.1: one per command).
pub(super) fn bump_modseq(conn: &Connection, mailbox: MailboxId) -> Result<ModSeq> {
    conn.prepare_cached(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?1
         RETURNING highestmodseq",
    )
    .and_then(|mut s| s.query_row([mailbox.0], |r| r.get::<_, i64>(0)))
    .map(|m| ModSeq(m as u64))
    .map_err(backend)
}

fn all_uids(conn: &Connection, mailbox: MailboxId) -> Result<Vec<Uid>> {
    let mut s = conn
        .prepare_cached("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid")
        .map_err(backend)?;
    s.query_map([mailbox.0], |r| Ok(Uid(r.get::<_, i64>(0)? as u32)))
        .and_then(|rows| rows.collect())
        .map_err(backend)
}

/// Removes a mailbox with all its messages (no expunge log: the mailbox and
/// its UIDVALIDITY are gone).
pub(super) fn drop_mailbox(conn: &Connection, mailbox: &Mailbox) -> Result<()> {
    let uids = all_uids(conn, mailbox.id)?;
    let (_, freed) = remove_messages(conn, mailbox.id, &uids)?;
    add_used(conn, mailbox.account, -(freed as i64))?;
    conn.execute("DELETE FROM expunged WHERE mailbox_id = ?1", [mailbox.id.0])
        .map_err(backend)?;
    conn.execute("DELETE FROM mailboxes WHERE id = ?1", [mailbox.id.0])
        .map_err(backend)?;
    Ok(())
}
