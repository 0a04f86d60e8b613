//! [`Messages`] for PostgreSQL: tables `blobs` (content stored once, with
//! its metadata and a reference count), `messages` (one row per message in
//! a mailbox), `envelopes`, `search_headers` and `expunged`, as
//! `sqlite/messages.rs` has them.
//!
//! **UIDs and MODSEQs across nodes.** A UID and a MODSEQ are taken by
//! `UPDATE mailboxes … RETURNING` in the transaction that uses them: the
//! update holds the mailbox's row lock until the commit, so every writer
//! of a mailbox, on whichever node, waits for the one before it. UIDs are
//! therefore never shared, and they become visible in the order they were
//! given (a client never sees UID 8 while 7 is still to come, which would
//! make it skip 7: RFC 9051 §2.3.1.1). Writers lock the mailbox rows they
//! need first, in ascending id order, then the account rows (quota), then
//! the content rows; a deadlock the server breaks anyway is run again
//! (`PgStore::write`).

use std::collections::BTreeMap;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::mailboxes::{MAILBOX_COLS, find_mailbox, mailbox_from_row};
use super::queue::enqueue_in;
use super::{PgStore, backend, exec, fail, row, row_opt, rows};
use crate::meta::MessageMeta;
use crate::model::*;
use crate::{Messages, Result, SearchHeaders, StoreError, canonical_mailbox_name};

const SUMMARY_COLS: &str = "uid, modseq, flags, keywords, internaldate, size";

fn summary_from_row(r: &Row) -> MessageSummary {
    MessageSummary {
        uid: Uid(r.get::<_, i64>(0) as u32),
        modseq: ModSeq(r.get::<_, i64>(1) as u64),
        flags: Flags::from_bits(r.get::<_, i16>(2) as u8),
        keywords: crate::rules::keywords_vec(r.get(3)),
        internaldate: r.get(4),
        size: r.get::<_, i64>(5).max(0) as u64,
    }
}

fn uid_list(uids: &[Uid]) -> Vec<i64> {
    let mut v: Vec<i64> = uids.iter().map(|u| i64::from(u.0)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Rows of `sql` for the messages `uids` (sorted, no duplicates) of
/// `mailbox`; `sql` holds `{uids}` where the UID condition goes, on the
/// column `m.uid`, and takes the mailbox as `$1`. A dense list (a FETCH
/// of `1:*` in chunks) is read as one range of the primary key and
/// filtered here: 512 probes of an `= ANY(array)` cost several times
/// more (FETCH ENVELOPE on 10,000 messages: bench/README.md).
async fn rows_for_uids(
    c: &impl GenericClient,
    sql: &str,
    mailbox: MailboxId,
    uids: &[i64],
) -> Result<Vec<Row>> {
    let (Some(&lo), Some(&hi)) = (uids.first(), uids.last()) else {
        return Ok(Vec::new());
    };
    if (hi - lo + 1) as usize <= uids.len() * 2 {
        let found = rows(
            c,
            &sql.replace("{uids}", "m.uid BETWEEN $2 AND $3"),
            &[&mailbox.0, &lo, &hi],
        )
        .await?;
        return Ok(found
            .into_iter()
            .filter(|r| uids.binary_search(&r.get::<_, i64>(0)).is_ok())
            .collect());
    }
    rows(
        c,
        &sql.replace("{uids}", "m.uid = ANY($2)"),
        &[&mailbox.0, &uids],
    )
    .await
}

/// Locks the mailboxes (in id order) and returns them by id; one that is
/// gone is an error.
async fn lock_mailboxes(
    tx: &Transaction<'_>,
    ids: &[MailboxId],
) -> Result<BTreeMap<MailboxId, Mailbox>> {
    let mut want: Vec<i64> = ids.iter().map(|m| m.0).collect();
    want.sort_unstable();
    want.dedup();
    let found = rows(
        tx,
        &format!("SELECT {MAILBOX_COLS} FROM mailboxes WHERE id = ANY($1) ORDER BY id FOR UPDATE"),
        &[&want],
    )
    .await?;
    let map: BTreeMap<MailboxId, Mailbox> = found
        .iter()
        .map(mailbox_from_row)
        .map(|m| (m.id, m))
        .collect();
    match want.iter().find(|id| !map.contains_key(&MailboxId(**id))) {
        Some(id) => Err(StoreError::NotFound(format!("mailbox {id}"))),
        None => Ok(map),
    }
}

/// Locks the accounts (in id order) and checks that `adding` bytes fit
/// each one's quota.
async fn check_quotas(tx: &Transaction<'_>, adding: &BTreeMap<AccountId, u64>) -> Result<()> {
    let ids: Vec<i64> = adding.keys().map(|a| a.0).collect();
    let found = rows(
        tx,
        "SELECT id, quota_bytes, used_bytes FROM accounts WHERE id = ANY($1)
         ORDER BY id FOR UPDATE",
        &[&ids],
    )
    .await?;
    for r in &found {
        let (id, quota, used): (i64, Option<i64>, i64) = (r.get(0), r.get(1), r.get(2));
        let add = adding.get(&AccountId(id)).copied().unwrap_or(0);
        if quota.is_some_and(|q| used.max(0) as u64 + add > q.max(0) as u64) {
            return Err(StoreError::OverQuota);
        }
    }
    Ok(())
}

/// Changes an account's usage by `delta` bytes.
pub(super) async fn add_used(tx: &Transaction<'_>, account: AccountId, delta: i64) -> Result<()> {
    if delta != 0 {
        exec(
            tx,
            "UPDATE accounts SET used_bytes = GREATEST(0, used_bytes + $2) WHERE id = $1",
            &[&account.0, &delta],
        )
        .await?;
    }
    Ok(())
}

/// Takes `n` UIDs (consecutive, from the one returned) and one MODSEQ in
/// the mailbox, whose row the caller has locked.
async fn take_uids(tx: &Transaction<'_>, mailbox: MailboxId, n: i64) -> Result<(i64, ModSeq)> {
    let r = row(
        tx,
        "UPDATE mailboxes SET uidnext = uidnext + $2, highestmodseq = highestmodseq + 1
         WHERE id = $1 RETURNING uidnext - $2, highestmodseq",
        &[&mailbox.0, &n],
    )
    .await?;
    let first: i64 = r.get(0);
    if first + n - 1 > i64::from(u32::MAX) {
        return Err(StoreError::Invalid("mailbox UID space exhausted".into()));
    }
    Ok((first, ModSeq(r.get::<_, i64>(1) as u64)))
}

/// A new MODSEQ of the mailbox (whose row the caller has locked).
async fn bump_modseq(tx: &Transaction<'_>, mailbox: MailboxId) -> Result<ModSeq> {
    let r = row(
        tx,
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1
         RETURNING highestmodseq",
        &[&mailbox.0],
    )
    .await?;
    Ok(ModSeq(r.get::<_, i64>(0) as u64))
}

/// Drops one reference of each content in `blobs` (an id once per
/// reference), and the content no message refers to any more, with its
/// envelope and search values.
pub(super) async fn unref_blobs(tx: &Transaction<'_>, blobs: &[i64]) -> Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let gone: Vec<i64> = rows(
        tx,
        "WITH n AS (SELECT b AS id, count(*) AS k FROM unnest($1::bigint[]) AS b GROUP BY b)
         UPDATE blobs SET refcount = blobs.refcount - n.k FROM n
         WHERE blobs.id = n.id AND blobs.refcount - n.k <= 0 RETURNING blobs.id",
        &[&blobs],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    exec(
        tx,
        "WITH n AS (SELECT b AS id, count(*) AS k FROM unnest($1::bigint[]) AS b GROUP BY b)
         UPDATE blobs SET refcount = blobs.refcount - n.k FROM n
         WHERE blobs.id = n.id AND blobs.refcount - n.k > 0",
        &[&blobs],
    )
    .await?;
    if !gone.is_empty() {
        for sql in [
            "DELETE FROM blobs WHERE id = ANY($1)",
            "DELETE FROM envelopes WHERE blob_id = ANY($1)",
            "DELETE FROM search_headers WHERE blob_id = ANY($1)",
            "DELETE FROM search_text WHERE blob_id = ANY($1)",
        ] {
            exec(tx, sql, &[&gone]).await?;
        }
    }
    Ok(())
}

/// Removes messages of a locked mailbox as an expunge: one new MODSEQ for
/// all (RFC 7162 §3.1.1), each UID logged with it for `VANISHED
/// (EARLIER)` (RFC 7162 §3.2.10), content references dropped, the bytes
/// taken off the account's usage.
pub(super) async fn expunge_in(
    tx: &Transaction<'_>,
    mailbox: &Mailbox,
    uids: &[i64],
) -> Result<Option<Change>> {
    let removed = rows(
        tx,
        "DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2)
         RETURNING uid, blob_id, size",
        &[&mailbox.id.0, &uids],
    )
    .await?;
    if removed.is_empty() {
        return Ok(None);
    }
    let mut gone: Vec<i64> = removed.iter().map(|r| r.get(0)).collect();
    gone.sort_unstable();
    let blobs: Vec<i64> = removed.iter().map(|r| r.get(1)).collect();
    let freed: i64 = removed.iter().map(|r| r.get::<_, i64>(2)).sum();
    let modseq = bump_modseq(tx, mailbox.id).await?;
    exec(
        tx,
        "INSERT INTO expunged(mailbox_id, uid, modseq) SELECT $1, u, $3 FROM unnest($2::bigint[]) AS u
         ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq",
        &[&mailbox.id.0, &gone, &(modseq.0 as i64)],
    )
    .await?;
    add_used(tx, mailbox.account, -freed).await?;
    unref_blobs(tx, &blobs).await?;
    Ok(Some(Change::Expunged {
        account: mailbox.account,
        mailbox: mailbox.id,
        uids: gone.into_iter().map(|u| Uid(u as u32)).collect(),
        modseq,
    }))
}

/// One delivery, its metadata as JSON.
type Prepared = (Delivery, String);

/// The deliveries of one transaction: every target resolved and locked
/// first (all or nothing), the quotas checked over all of them, then the
/// content stored once per delivery and a row per target.
async fn deliver_all(
    tx: &Transaction<'_>,
    deliveries: &[Prepared],
) -> Result<(Vec<Vec<Delivered>>, Vec<Change>)> {
    let mut names: Vec<Vec<MailboxId>> = Vec::with_capacity(deliveries.len());
    let mut adding: BTreeMap<AccountId, u64> = BTreeMap::new();
    for (d, _) in deliveries {
        let mut these = Vec::with_capacity(d.targets.len());
        for t in &d.targets {
            let name = canonical_mailbox_name(&t.mailbox);
            let m = find_mailbox(tx, t.account, &name)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
            these.push(m.id);
            *adding.entry(t.account).or_default() += (t.prefix.len() + d.content.len()) as u64;
        }
        names.push(these);
    }
    let all: Vec<MailboxId> = names.iter().flatten().copied().collect();
    let locked = lock_mailboxes(tx, &all).await?;
    check_quotas(tx, &adding).await?;
    let mut out = Vec::with_capacity(deliveries.len());
    let mut changes = Vec::new();
    for ((d, meta), ids) in deliveries.iter().zip(&names) {
        if d.targets.is_empty() {
            out.push(Vec::new());
            continue;
        }
        let blob: i64 = row(
            tx,
            "INSERT INTO blobs(refcount, data, meta) VALUES ($1, $2, $3) RETURNING id",
            &[&(d.targets.len() as i64), &d.content, meta],
        )
        .await?
        .get(0);
        if let Some(envelope) = &d.imap_envelope {
            exec(
                tx,
                "INSERT INTO envelopes(blob_id, envelope) VALUES ($1, $2)",
                &[&blob, envelope],
            )
            .await?;
        }
        if let Some(h) = kept_headers(d) {
            exec(
                tx,
                "INSERT INTO search_headers(blob_id, subject, from_, to_, cc, bcc)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&blob, &h.subject, &h.from, &h.to, &h.cc, &h.bcc],
            )
            .await?;
        }
        let mut delivered = Vec::with_capacity(d.targets.len());
        for (t, id) in d.targets.iter().zip(ids) {
            let m = &locked[id];
            let (uid, modseq) = take_uids(tx, m.id, 1).await?;
            let size = (t.prefix.len() + d.content.len()) as i64;
            exec(
                tx,
                "INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internaldate, size, blob_id, prefix, envelope)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &m.id.0,
                    &uid,
                    &(modseq.0 as i64),
                    &i16::from(t.flags.bits()),
                    &crate::rules::keywords_text(&t.keywords),
                    &d.internaldate,
                    &size,
                    &blob,
                    &t.prefix,
                    &d.imap_envelope,
                ],
            )
            .await?;
            let uid = Uid(uid as u32);
            delivered.push(Delivered {
                account: t.account,
                mailbox: m.id,
                uid,
                uidvalidity: m.uidvalidity,
            });
            changes.push(Change::MessageAdded {
                account: t.account,
                mailbox: m.id,
                uid,
                modseq,
            });
        }
        out.push(delivered);
    }
    for (account, bytes) in adding {
        add_used(tx, account, bytes as i64).await?;
    }
    Ok((out, changes))
}

fn prepare(deliveries: Vec<Delivery>) -> Result<Vec<Prepared>> {
    deliveries
        .into_iter()
        .map(|d| {
            let meta = serde_json::to_string(&d.meta).map_err(backend)?;
            Ok((d, meta))
        })
        .collect()
}

/// The envelope of an outbound message as JSON.
fn outbound_envelope(outbound: &Option<Outbound>) -> Result<Option<String>> {
    match outbound {
        Some(o) if o.recipients.is_empty() => Err(StoreError::Invalid("no recipients".into())),
        Some(o) => Ok(Some(serde_json::to_string(&o.envelope).map_err(backend)?)),
        None => Ok(None),
    }
}

async fn summaries(
    c: &impl GenericClient,
    mailbox: MailboxId,
    since: ModSeq,
) -> Result<Vec<MessageSummary>> {
    let found = if since == ModSeq(0) {
        rows(
            c,
            &format!("SELECT {SUMMARY_COLS} FROM messages WHERE mailbox_id = $1 ORDER BY uid"),
            &[&mailbox.0],
        )
        .await?
    } else {
        rows(
            c,
            &format!(
                "SELECT {SUMMARY_COLS} FROM messages WHERE mailbox_id = $1 AND modseq > $2
                 ORDER BY uid"
            ),
            &[&mailbox.0, &(since.0 as i64)],
        )
        .await?
    };
    Ok(found.iter().map(summary_from_row).collect())
}

async fn expunged_uids(
    c: &impl GenericClient,
    mailbox: MailboxId,
    since: ModSeq,
) -> Result<Vec<Uid>> {
    Ok(rows(
        c,
        "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
        &[&mailbox.0, &(since.0 as i64)],
    )
    .await?
    .iter()
    .map(|r| Uid(r.get::<_, i64>(0) as u32))
    .collect())
}

/// The `\Recent` mark of the mailbox and its UIDNEXT.
async fn recent_mark(c: &impl GenericClient, mailbox: MailboxId) -> Result<(i64, i64)> {
    let r = row_opt(
        c,
        "SELECT recent_uid, uidnext FROM mailboxes WHERE id = $1",
        &[&mailbox.0],
    )
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", mailbox.0)))?;
    Ok((r.get(0), r.get(1)))
}

/// A message's octets: its prefix, then the shared content (columns 1, 2).
fn content_of(r: &Row) -> Vec<u8> {
    let (prefix, data): (&[u8], &[u8]) = (r.get(1), r.get(2));
    let mut content = Vec::with_capacity(prefix.len() + data.len());
    content.extend_from_slice(prefix);
    content.extend_from_slice(data);
    content
}

/// The delivery of one message to one mailbox (SMTP and LMTP to one
/// recipient, `postamt deliver`, IMAP APPEND) in one statement: the
/// mailbox's row lock, the quota check and the account's usage, the
/// content with its envelope and search values, the UID and MODSEQ, the
/// message row and the notice to the other nodes, as data-modifying CTEs
/// that depend on each other — so nothing is written unless everything is,
/// and it is one round trip, committed on its own. What it finds
/// missing it reports in its row: the mailbox (`NotFound`), room in the
/// quota (`OverQuota`).
const DELIVER_ONE: &str = "
WITH mb AS (
    SELECT id, uidvalidity FROM mailboxes WHERE account_id = $1 AND name = $2 FOR UPDATE
),
acct AS (
    UPDATE accounts SET used_bytes = used_bytes + $3
    WHERE id = $1 AND EXISTS (SELECT 1 FROM mb)
      AND (quota_bytes IS NULL OR used_bytes + $3 <= quota_bytes)
    RETURNING id
),
blob AS (
    INSERT INTO blobs(refcount, data, meta) SELECT 1, $4, $5 FROM acct RETURNING id
),
env AS (
    INSERT INTO envelopes(blob_id, envelope) SELECT id, $6 FROM blob WHERE $6::bytea IS NOT NULL
),
sh AS (
    INSERT INTO search_headers(blob_id, subject, from_, to_, cc, bcc)
    SELECT id, $7, $8, $9, $10, $11 FROM blob WHERE $12
),
uid AS (
    UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
    WHERE id = (SELECT id FROM mb) AND EXISTS (SELECT 1 FROM acct)
    RETURNING id, uidnext - 1 AS uid, highestmodseq AS modseq
),
msg AS (
    INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internaldate, size, blob_id, prefix, envelope)
    SELECT uid.id, uid.uid, uid.modseq, $13, $14, $15, $3, blob.id, $16, $6 FROM uid, blob
    RETURNING mailbox_id, uid, modseq
)
SELECT (SELECT id FROM mb), (SELECT uidvalidity FROM mb), (SELECT count(*) FROM acct),
       msg.mailbox_id, msg.uid, msg.modseq,
       (SELECT pg_notify($17, json_build_object('n', $18::text, 'c', json_build_array(
            json_build_object('MessageAdded', json_build_object(
                'account', $1::bigint, 'mailbox', msg.mailbox_id, 'uid', msg.uid, 'modseq', msg.modseq))
        ))::text) WHERE msg.uid IS NOT NULL)::text
FROM (SELECT 1) one LEFT JOIN msg ON true";

/// The SEARCH header values of `d` to keep: none when PostgreSQL's `text`
/// cannot hold them, with a NUL in them (a broken or hostile message;
/// SQLite takes it). Without kept values a SEARCH reads the message
/// itself, as the values' contract allows, so the answers stay the same.
fn kept_headers(d: &Delivery) -> Option<&crate::SearchHeaders> {
    d.search_headers.as_ref().filter(|h| {
        [&h.subject, &h.from, &h.to, &h.cc, &h.bcc]
            .iter()
            .all(|v| v.as_ref().is_none_or(|v| !v.contains('\0')))
    })
}

/// A delivery waiting for [`batches`].
pub(super) struct Job {
    d: Delivery,
    meta: String,
    reply: tokio::sync::oneshot::Sender<Result<Accepted>>,
}

/// Deliveries taken into one transaction at most.
const BATCH: usize = 64;

/// The writer of single-target deliveries: while one batch commits, the
/// next gathers; each batch is one transaction ([`DELIVER_ONE`] per
/// delivery, pipelined, then one commit), so deliveries to one mailbox — which take
/// its row lock until their commit — share a commit instead of waiting for
/// each other's (group commit, as SQLite's writer does). A database error
/// in a batch (a deadlock with another node, a lost connection) rolls it
/// back, and its deliveries are run again one by one.
pub(super) async fn batches(
    pool: deadpool_postgres::Pool,
    control: std::sync::Arc<super::coordination::Control>,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let together = if batch.len() > 1 {
            run_batch(&pool, &control, &batch).await
        } else {
            Err(fail("one"))
        };
        match together {
            Ok(rows) => {
                for (job, r) in batch.into_iter().zip(rows) {
                    let result = interpret(&job.d, &r).map(|(accepted, change)| {
                        control.publish(vec![change]);
                        accepted
                    });
                    let _ = job.reply.send(result);
                }
            }
            Err(_) => {
                for job in batch {
                    let result = deliver_alone(&pool, &control, &job.d, &job.meta).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// A batch in one transaction: the rows of its statements, committed.
async fn run_batch(
    pool: &deadpool_postgres::Pool,
    control: &super::coordination::Control,
    batch: &[Job],
) -> Result<Vec<Row>> {
    let mut c = pool.get().await.map_err(backend)?;
    let tx = c.transaction().await.map_err(backend)?;
    // Pipelined: the statements are sent together and PostgreSQL runs
    // them one after the other, in this order, without a round trip
    // between them (tokio-postgres queues concurrent requests on one
    // connection). A failing one fails those after it ("transaction
    // aborted"), and the batch is run again one delivery at a time.
    let rows = futures_util::future::try_join_all(
        batch
            .iter()
            .map(|job| deliver_statement(&tx, control, &job.d, &job.meta)),
    )
    .await?;
    tx.commit().await.map_err(backend)?;
    Ok(rows)
}

/// One delivery in a transaction of its own (run again on a deadlock).
async fn deliver_alone(
    pool: &deadpool_postgres::Pool,
    control: &super::coordination::Control,
    d: &Delivery,
    meta: &str,
) -> Result<Accepted> {
    let mut attempt = 0;
    let r = loop {
        attempt += 1;
        let done = async {
            let c = pool.get().await.map_err(backend)?;
            deliver_statement(&c, control, d, meta).await
        }
        .await;
        match done {
            Err(e) if attempt < super::WRITE_ATTEMPTS && super::retryable(&e) => {
                tokio::time::sleep(std::time::Duration::from_millis(attempt as u64 * 2)).await;
            }
            other => break other?,
        }
    };
    let (accepted, change) = interpret(d, &r)?;
    control.publish(vec![change]);
    Ok(accepted)
}

/// Runs [`DELIVER_ONE`] for `d` on `c`.
async fn deliver_statement(
    c: &impl GenericClient,
    control: &super::coordination::Control,
    d: &Delivery,
    meta: &str,
) -> Result<Row> {
    let t = &d.targets[0];
    let name = canonical_mailbox_name(&t.mailbox);
    let size = (t.prefix.len() + d.content.len()) as i64;
    let kept = kept_headers(d);
    let keep = kept.is_some();
    // (All bound even when none is kept: then as NULLs.)
    let none = crate::SearchHeaders::default();
    let h = kept.unwrap_or(&none);
    let flags = i16::from(t.flags.bits());
    let keywords = crate::rules::keywords_text(&t.keywords);
    let (channel, node) = control.notice_channel();
    row(
        c,
        DELIVER_ONE,
        &[
            &t.account.0,
            &name,
            &size,
            &d.content,
            &meta,
            &d.imap_envelope,
            &h.subject,
            &h.from,
            &h.to,
            &h.cc,
            &h.bcc,
            &keep,
            &flags,
            &keywords,
            &d.internaldate,
            &t.prefix,
            &channel,
            &node,
        ],
    )
    .await
}

/// What [`DELIVER_ONE`]'s row says: the delivery and its change, or why
/// nothing was written.
fn interpret(d: &Delivery, r: &Row) -> Result<(Accepted, Change)> {
    let t = &d.targets[0];
    if r.get::<_, Option<i64>>(0).is_none() {
        return Err(StoreError::NotFound(format!(
            "mailbox {}",
            canonical_mailbox_name(&t.mailbox)
        )));
    }
    if r.get::<_, i64>(2) == 0 {
        return Err(StoreError::OverQuota);
    }
    let mailbox = MailboxId(r.get(3));
    let uid = r.get::<_, i64>(4);
    if uid > i64::from(u32::MAX) {
        return Err(StoreError::Invalid("mailbox UID space exhausted".into()));
    }
    let uid = Uid(uid as u32);
    let modseq = ModSeq(r.get::<_, i64>(5) as u64);
    Ok((
        Accepted {
            delivered: vec![Delivered {
                account: t.account,
                mailbox,
                uid,
                uidvalidity: UidValidity(r.get::<_, i64>(1) as u32),
            }],
            queued: None,
        },
        Change::MessageAdded {
            account: t.account,
            mailbox,
            uid,
            modseq,
        },
    ))
}

impl PgStore {
    /// A single-target delivery, through the batch writer.
    async fn deliver_one(&self, d: Delivery, meta: String) -> Result<Accepted> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job { d, meta, reply })
            .map_err(|_| fail("the store's writer stopped"))?;
        answer
            .await
            .map_err(|_| fail("the store's writer stopped"))?
    }
}

/// The one delivery with one target [`DELIVER_ONE`] takes, with its
/// metadata as JSON; or the deliveries back.
fn single(
    deliveries: Vec<Delivery>,
    outbound: &Option<Outbound>,
) -> Result<std::result::Result<(Delivery, String), Vec<Delivery>>> {
    let mut deliveries: Vec<Delivery> = deliveries
        .into_iter()
        .filter(|d| !d.targets.is_empty())
        .collect();
    if outbound.is_none() && deliveries.len() == 1 && deliveries[0].targets.len() == 1 {
        let d = deliveries.pop().unwrap_or_else(|| unreachable!());
        let meta = serde_json::to_string(&d.meta).map_err(backend)?;
        return Ok(Ok((d, meta)));
    }
    Ok(Err(deliveries))
}

impl Messages for PgStore {
    fn accept(&self, deliveries: Vec<Delivery>, outbound: Option<Outbound>) -> Result<Accepted> {
        let deliveries = match single(deliveries, &outbound)? {
            Ok((d, meta)) => {
                let rt = self.rt.as_ref().ok_or_else(|| fail("store closed"))?;
                return super::wait_on(rt, self.deliver_one(d, meta));
            }
            Err(deliveries) => prepare(deliveries)?,
        };
        let envelope = outbound_envelope(&outbound)?;
        self.write(async |tx| {
            let (delivered, mut changes) = deliver_all(tx, &deliveries).await?;
            let queued = match (&outbound, &envelope) {
                (Some(o), Some(e)) => Some(enqueue_in(tx, o, e).await?),
                _ => None,
            };
            if queued.is_some() {
                changes.push(Change::Queued);
            }
            let delivered = delivered.into_iter().flatten().collect();
            Ok((Accepted { delivered, queued }, changes))
        })
    }

    /// One delivery to one mailbox (most SMTP and LMTP transactions) is
    /// awaited on the store's runtime: the session's task waits without a
    /// thread of the blocking pool; anything else takes that thread.
    fn accept_async(
        self: std::sync::Arc<Self>,
        deliveries: Vec<Delivery>,
        outbound: Option<Outbound>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Accepted>> + Send>> {
        let handle = match self.rt.as_ref() {
            Some(rt) => rt.handle().clone(),
            None => return Box::pin(async { Err(fail("store closed")) }),
        };
        match single(deliveries, &outbound) {
            Err(e) => Box::pin(async move { Err(e) }),
            Ok(Ok((d, meta))) => Box::pin(async move {
                handle
                    .spawn(async move { self.deliver_one(d, meta).await })
                    .await
                    .map_err(backend)?
            }),
            Ok(Err(deliveries)) => {
                Box::pin(crate::blocking(move || self.accept(deliveries, outbound)))
            }
        }
    }

    fn deliver_many(&self, deliveries: Vec<Delivery>) -> Result<Vec<Vec<Delivered>>> {
        let deliveries = prepare(deliveries)?;
        self.write(async |tx| deliver_all(tx, &deliveries).await)
    }

    fn messages(&self, mailbox: MailboxId, since: ModSeq) -> Result<Vec<MessageSummary>> {
        self.block(async |c| summaries(&*c, mailbox, since).await)
    }

    fn message_summary(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<MessageSummary>> {
        self.block(async |c| {
            Ok(row_opt(
                &*c,
                &format!("SELECT {SUMMARY_COLS} FROM messages WHERE mailbox_id = $1 AND uid = $2"),
                &[&mailbox.0, &i64::from(uid.0)],
            )
            .await?
            .map(|r| summary_from_row(&r)))
        })
    }

    fn changes_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<Option<MailboxChanges>> {
        // One snapshot for the mailbox, its messages and its expunges: a
        // message is never both changed and expunged in the answer.
        self.snapshot(async |tx| {
            let Some(now) = row_opt(
                tx,
                &format!("SELECT {MAILBOX_COLS}, recent_uid FROM mailboxes WHERE id = $1"),
                &[&mailbox.0],
            )
            .await?
            else {
                return Ok(None);
            };
            let recent_from = Uid(now.get::<_, i64>(7) as u32);
            let changed = summaries(tx, mailbox, since).await?;
            let expunged = if since == ModSeq(0) {
                None
            } else {
                Some(expunged_uids(tx, mailbox, since).await?)
            };
            Ok(Some(MailboxChanges {
                mailbox: mailbox_from_row(&now),
                changed,
                expunged,
                recent_from,
            }))
        })
    }

    fn message_contents(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, Vec<u8>)>> {
        let uids = uid_list(uids);
        self.block(async |c| {
            Ok(rows_for_uids(
                &*c,
                "SELECT m.uid, m.prefix, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id
                 WHERE m.mailbox_id = $1 AND {uids} ORDER BY m.uid",
                mailbox,
                &uids,
            )
            .await?
            .iter()
            .map(|r| (Uid(r.get::<_, i64>(0) as u32), content_of(r)))
            .collect())
        })
    }

    fn message_content(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<Vec<u8>>> {
        self.block(async |c| {
            Ok(row_opt(
                &*c,
                "SELECT m.uid, m.prefix, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id
                 WHERE m.mailbox_id = $1 AND m.uid = $2",
                &[&mailbox.0, &i64::from(uid.0)],
            )
            .await?
            .map(|r| content_of(&r)))
        })
    }

    fn message_metas(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, MessageMeta)>> {
        let uids = uid_list(uids);
        let found: Vec<(Uid, i64, String)> = self.block(async |c| {
            Ok(rows_for_uids(
                &*c,
                "SELECT m.uid, octet_length(m.prefix)::bigint, b.meta FROM messages m
                 JOIN blobs b ON b.id = m.blob_id
                 WHERE m.mailbox_id = $1 AND {uids} ORDER BY m.uid",
                mailbox,
                &uids,
            )
            .await?
            .iter()
            .map(|r| (Uid(r.get::<_, i64>(0) as u32), r.get(1), r.get(2)))
            .collect())
        })?;
        let mut out = Vec::with_capacity(found.len());
        for (uid, prefix_len, json) in found {
            match crate::rules::meta_with_prefix(prefix_len, &json) {
                Ok(m) => out.push((uid, m)),
                Err(e) => {
                    tracing::warn!(error = %e, uid = uid.0, "stored metadata unreadable, parsing again");
                    if let Some(content) = self.message_content(mailbox, uid)? {
                        out.push((uid, MessageMeta::parse(&content)));
                    }
                }
            }
        }
        Ok(out)
    }

    fn text_matches(
        &self,
        mailbox: MailboxId,
        needle: &str,
        scope: TextScope,
    ) -> Result<Option<TextMatches>> {
        self.text_matches_here(mailbox, needle, scope)
    }

    fn search_headers(
        &self,
        mailbox: MailboxId,
        after: Uid,
    ) -> Result<Vec<(Uid, Option<SearchHeaders>)>> {
        self.block(async |c| {
            Ok(rows(
                &*c,
                "SELECT m.uid, h.blob_id, h.subject, h.from_, h.to_, h.cc, h.bcc
                 FROM messages m LEFT JOIN search_headers h ON h.blob_id = m.blob_id
                 WHERE m.mailbox_id = $1 AND m.uid > $2 ORDER BY m.uid",
                &[&mailbox.0, &i64::from(after.0)],
            )
            .await?
            .iter()
            .map(|r| {
                let kept: Option<i64> = r.get(1);
                (
                    Uid(r.get::<_, i64>(0) as u32),
                    kept.map(|_| SearchHeaders {
                        subject: r.get(2),
                        from: r.get(3),
                        to: r.get(4),
                        cc: r.get(5),
                        bcc: r.get(6),
                    }),
                )
            })
            .collect())
        })
    }

    fn message_envelopes(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, StoredEnvelope)>> {
        #[derive(serde::Deserialize)]
        struct OnlyEnvelope {
            envelope: crate::meta::Envelope,
        }
        let uids = uid_list(uids);
        self.block(async |c| {
            let found = rows_for_uids(
                &*c,
                "SELECT m.uid, e.envelope,
                        CASE WHEN e.envelope IS NULL
                             THEN (SELECT meta FROM blobs WHERE id = m.blob_id) END
                 FROM messages m CROSS JOIN LATERAL (SELECT COALESCE(m.envelope,
                     (SELECT envelope FROM envelopes WHERE blob_id = m.blob_id)) AS envelope) e
                 WHERE m.mailbox_id = $1 AND {uids} ORDER BY m.uid",
                mailbox,
                &uids,
            )
            .await?;
            let mut out = Vec::with_capacity(found.len());
            for r in &found {
                let uid = Uid(r.get::<_, i64>(0) as u32);
                let data = match r.get::<_, Option<Vec<u8>>>(1) {
                    Some(rendered) => StoredEnvelope::Rendered(rendered),
                    None => {
                        let json: String = r.get(2);
                        let e: OnlyEnvelope = serde_json::from_str(&json).map_err(backend)?;
                        StoredEnvelope::Parsed(Box::new(e.envelope))
                    }
                };
                out.push((uid, data));
            }
            Ok(out)
        })
    }

    fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> Result<(Vec<FlagUpdate>, Vec<Uid>)> {
        let uids = uid_list(uids);
        self.write(async |tx| {
            let m = lock_mailboxes(tx, &[mailbox]).await?.remove(&mailbox);
            let m = m.ok_or_else(|| fail("mailbox lock"))?;
            let found = rows(
                tx,
                "SELECT uid, flags, keywords, modseq FROM messages
                 WHERE mailbox_id = $1 AND uid = ANY($2) ORDER BY uid",
                &[&mailbox.0, &uids],
            )
            .await?;
            let mut updates = Vec::new();
            let mut modified = Vec::new();
            for r in &found {
                let uid = Uid(r.get::<_, i64>(0) as u32);
                // RFC 7162 §3.1.3: changed since the client looked: refuse.
                if unchanged_since.is_some_and(|u| r.get::<_, i64>(3) as u64 > u.0) {
                    modified.push(uid);
                    continue;
                }
                let old_flags = Flags::from_bits(r.get::<_, i16>(1) as u8);
                let old_kw = crate::rules::keywords_vec(r.get(2));
                let (new_flags, new_kw) =
                    crate::rules::apply_flags(op, old_flags, &old_kw, flags, keywords);
                if new_flags != old_flags || new_kw != old_kw {
                    updates.push(FlagUpdate {
                        uid,
                        modseq: ModSeq(0),
                        flags: new_flags,
                        keywords: new_kw,
                    });
                }
            }
            if updates.is_empty() {
                return Ok(((updates, modified), Vec::new()));
            }
            let modseq = bump_modseq(tx, mailbox).await?;
            let ids: Vec<i64> = updates.iter().map(|u| i64::from(u.uid.0)).collect();
            let bits: Vec<i16> = updates.iter().map(|u| i16::from(u.flags.bits())).collect();
            let words: Vec<String> = updates
                .iter()
                .map(|u| crate::rules::keywords_text(&u.keywords))
                .collect();
            exec(
                tx,
                "UPDATE messages SET flags = v.f, keywords = v.k, modseq = $2
                 FROM unnest($3::bigint[], $4::smallint[], $5::text[]) AS v(u, f, k)
                 WHERE mailbox_id = $1 AND uid = v.u",
                &[&mailbox.0, &(modseq.0 as i64), &ids, &bits, &words],
            )
            .await?;
            for u in &mut updates {
                u.modseq = modseq;
            }
            let change = Change::FlagsChanged {
                account: m.account,
                mailbox,
                uids: updates.iter().map(|u| u.uid).collect(),
                modseq,
            };
            Ok(((updates, modified), vec![change]))
        })
    }

    fn expunge(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<Uid>> {
        let uids = uid_list(uids);
        self.write(async |tx| {
            let m = lock_mailboxes(tx, &[mailbox]).await?.remove(&mailbox);
            let m = m.ok_or_else(|| fail("mailbox lock"))?;
            let change = expunge_in(tx, &m, &uids).await?;
            let removed = match &change {
                Some(Change::Expunged { uids, .. }) => uids.clone(),
                _ => Vec::new(),
            };
            Ok((removed, change.into_iter().collect()))
        })
    }

    fn expunged_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<Vec<Uid>> {
        self.block(async |c| expunged_uids(&*c, mailbox, since).await)
    }

    fn copy_messages(
        &self,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
        expunge_source: bool,
    ) -> Result<Vec<(Uid, Uid)>> {
        let uids = uid_list(uids);
        self.write(async |tx| {
            let mut locked = lock_mailboxes(tx, &[from, to]).await?;
            let src = locked.remove(&from).ok_or_else(|| fail("mailbox lock"))?;
            let dst = match locked.remove(&to) {
                Some(m) => m,
                None => src.clone(), // a copy into the same mailbox
            };
            let found = rows(
                tx,
                "SELECT uid, blob_id, size FROM messages
                 WHERE mailbox_id = $1 AND uid = ANY($2) ORDER BY uid",
                &[&from.0, &uids],
            )
            .await?;
            if found.is_empty() {
                return Ok((Vec::new(), Vec::new()));
            }
            let source: Vec<i64> = found.iter().map(|r| r.get(0)).collect();
            let blobs: Vec<i64> = found.iter().map(|r| r.get(1)).collect();
            let adding: i64 = found.iter().map(|r| r.get::<_, i64>(2)).sum();
            let moving_within = expunge_source && src.account == dst.account;
            if !moving_within {
                check_quotas(tx, &BTreeMap::from([(dst.account, adding.max(0) as u64)])).await?;
            }
            let n = source.len() as i64;
            let (first, modseq) = take_uids(tx, dst.id, n).await?;
            // New UIDs in the order of the source's (row_number over the
            // source UID), all with one MODSEQ.
            exec(
                tx,
                "INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internaldate, size, blob_id, prefix, envelope)
                 SELECT $1, $2 + row_number() OVER (ORDER BY uid) - 1, $3,
                        flags, keywords, internaldate, size, blob_id, prefix, envelope
                 FROM messages WHERE mailbox_id = $4 AND uid = ANY($5)",
                &[&dst.id.0, &first, &(modseq.0 as i64), &from.0, &source],
            )
            .await?;
            exec(
                tx,
                "WITH n AS (SELECT b AS id, count(*) AS k FROM unnest($1::bigint[]) AS b GROUP BY b)
                 UPDATE blobs SET refcount = blobs.refcount + n.k FROM n WHERE blobs.id = n.id",
                &[&blobs],
            )
            .await?;
            add_used(tx, dst.account, adding).await?;
            let pairs: Vec<(Uid, Uid)> = source
                .iter()
                .enumerate()
                .map(|(i, u)| (Uid(*u as u32), Uid((first + i as i64) as u32)))
                .collect();
            let mut changes: Vec<Change> = pairs
                .iter()
                .map(|(_, uid)| Change::MessageAdded {
                    account: dst.account,
                    mailbox: dst.id,
                    uid: *uid,
                    modseq,
                })
                .collect();
            if expunge_source {
                changes.extend(expunge_in(tx, &src, &source).await?);
            }
            Ok((pairs, changes))
        })
    }

    fn recent_from(&self, mailbox: MailboxId) -> Result<Uid> {
        self.block(async |c| Ok(Uid(recent_mark(&*c, mailbox).await?.0 as u32)))
    }

    fn claim_recent(&self, mailbox: MailboxId) -> Result<(Uid, Uid)> {
        // The old mark and UIDNEXT under the row lock, so that each
        // message is recent in one session only, across nodes.
        self.write(async |tx| {
            let r = row_opt(
                tx,
                "UPDATE mailboxes m SET recent_uid = m.uidnext
                 FROM (SELECT id, recent_uid FROM mailboxes WHERE id = $1 FOR UPDATE) old
                 WHERE m.id = old.id RETURNING old.recent_uid, m.uidnext",
                &[&mailbox.0],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", mailbox.0)))?;
            let (from, to): (i64, i64) = (r.get(0), r.get(1));
            Ok(((Uid(from as u32), Uid(to as u32)), Vec::new()))
        })
    }
}
