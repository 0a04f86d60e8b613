//! [`Queue`] for PostgreSQL: tables `queue` and `queue_recipients`, as
//! `sqlite/queue.rs` has them, with leases instead of SQLite's `active`
//! mark (issue 18).
//!
//! **Leases.** Every node's relay claims due entries with `FOR UPDATE SKIP
//! LOCKED`: two nodes claiming at once get different entries, and a claim
//! names its node (`lease_node`) and runs out (`lease_until`, on the
//! database's clock, so the nodes' clocks do not matter). The node renews
//! its claims while it lives (`coordination.rs`); a node that dies loses
//! them after the lease, and the entry is due again for any node. An
//! attempt's end (`queue_settle`) counts only while its node still holds
//! the claim: if the claim ran out (the node was cut off from the
//! database longer than the lease) another node has the entry, and the
//! late settle is dropped. Recipients a remote server accepted are
//! recorded whoever holds the claim (`queue_delivered`), so another
//! node's retry leaves them out. Delivery is at least once: a node cut
//! off after a remote `250` and before recording it will see another node
//! send that recipient again; never two nodes at the same time while both
//! reach the database.

use deadpool_postgres::{GenericClient, Transaction};

use super::{PgStore, backend, exec, row, row_opt, rows};
use crate::model::*;
use crate::{Queue, Result, StoreError};

/// The database's clock, in seconds (leases compare against it).
const DB_NOW: &str = "extract(epoch FROM clock_timestamp())::bigint";

async fn queue_entry(c: &impl GenericClient, id: i64) -> Result<Option<QueueEntry>> {
    let Some(r) = row_opt(
        c,
        &format!(
            "SELECT created, next_attempt, held, sender, envelope, size, warned,
                    COALESCE(lease_until > {DB_NOW}, false)
             FROM queue WHERE id = $1"
        ),
        &[&id],
    )
    .await?
    else {
        return Ok(None);
    };
    let recipients = rows(
        c,
        "SELECT address, notify, orcpt, status, attempts, last_error FROM queue_recipients
         WHERE queue_id = $1 ORDER BY address",
        &[&id],
    )
    .await?
    .iter()
    .map(|q| QueuedRecipient {
        address: q.get(0),
        notify: q.get(1),
        orcpt: q.get(2),
        status: RecipientStatus::parse(q.get(3)),
        attempts: q.get::<_, i32>(4).max(0) as u32,
        last_error: q.get(5),
    })
    .collect();
    let envelope: String = r.get(4);
    Ok(Some(QueueEntry {
        id: QueueId(id),
        created: r.get(0),
        next_attempt: r.get(1),
        held: r.get(2),
        sender: r.get(3),
        size: r.get::<_, i64>(5).max(0) as u64,
        envelope: serde_json::from_str(&envelope).map_err(backend)?,
        recipients,
        warned: r.get(6),
        active: r.get(7),
    }))
}

/// Deletes an entry and its recipients.
async fn queue_remove(tx: &Transaction<'_>, id: i64) -> Result<u64> {
    let n = exec(tx, "DELETE FROM queue WHERE id = $1", &[&id]).await?;
    exec(
        tx,
        "DELETE FROM queue_recipients WHERE queue_id = $1",
        &[&id],
    )
    .await?;
    Ok(n)
}

/// Puts one message into the outbound queue inside the transaction.
pub(super) async fn enqueue_in(
    tx: &Transaction<'_>,
    message: &Outbound,
    envelope: &str,
) -> Result<QueueId> {
    let t = super::now();
    let id: i64 = row(
        tx,
        "INSERT INTO queue(created, next_attempt, sender, envelope, content, size)
         VALUES ($1, $1, $2, $3, $4, $5) RETURNING id",
        &[
            &t,
            &message.sender,
            &envelope,
            &message.content,
            &(message.content.len() as i64),
        ],
    )
    .await?
    .get(0);
    let addresses: Vec<&str> = message
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    let notify: Vec<Option<&str>> = message
        .recipients
        .iter()
        .map(|r| r.notify.as_deref())
        .collect();
    let orcpt: Vec<Option<&str>> = message
        .recipients
        .iter()
        .map(|r| r.orcpt.as_deref())
        .collect();
    let status: Vec<&str> = message
        .recipients
        .iter()
        .map(|r| r.status.as_str())
        .collect();
    let attempts: Vec<i32> = message
        .recipients
        .iter()
        .map(|r| r.attempts.min(i32::MAX as u32) as i32)
        .collect();
    let errors: Vec<Option<&str>> = message
        .recipients
        .iter()
        .map(|r| r.last_error.as_deref())
        .collect();
    exec(
        tx,
        "INSERT INTO queue_recipients(queue_id, address, notify, orcpt, status, attempts, last_error)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[])
         ON CONFLICT DO NOTHING",
        &[&id, &addresses, &notify, &orcpt, &status, &attempts, &errors],
    )
    .await?;
    Ok(QueueId(id))
}

impl Queue for PgStore {
    fn queue(&self) -> Result<Vec<QueueEntry>> {
        self.block(async |c| {
            let ids: Vec<i64> = rows(&*c, "SELECT id FROM queue ORDER BY created, id", &[])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(queue_entry(&*c, id).await?);
            }
            Ok(out)
        })
    }

    fn queue_entry(&self, id: QueueId) -> Result<Option<(QueueEntry, Vec<u8>)>> {
        self.block(async |c| {
            let Some(entry) = queue_entry(&*c, id.0).await? else {
                return Ok(None);
            };
            let content = row_opt(&*c, "SELECT content FROM queue WHERE id = $1", &[&id.0])
                .await?
                .map(|r| r.get::<_, Vec<u8>>(0));
            Ok(content.map(|c| (entry, c)))
        })
    }

    fn queue_delete(&self, id: QueueId) -> Result<()> {
        self.write(async |tx| {
            if queue_remove(tx, id.0).await? == 0 {
                return Err(StoreError::NotFound(format!("queue entry {}", id.0)));
            }
            Ok(((), vec![]))
        })
    }

    fn queue_claim(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>> {
        let lease = self.lease.as_secs().max(1) as i64;
        self.write(async |tx| {
            let ids: Vec<i64> = rows(
                tx,
                &format!(
                    "WITH due AS (
                         SELECT id FROM queue q
                         WHERE next_attempt <= $1 AND NOT held
                           AND (lease_until IS NULL OR lease_until <= {DB_NOW})
                           AND EXISTS (SELECT 1 FROM queue_recipients r
                                       WHERE r.queue_id = q.id AND r.status = 'pending')
                         ORDER BY next_attempt, id LIMIT $2
                         FOR UPDATE SKIP LOCKED)
                     UPDATE queue SET lease_node = $3, lease_until = {DB_NOW} + $4
                     FROM due WHERE queue.id = due.id
                     RETURNING queue.id, queue.next_attempt"
                ),
                &[&now, &(limit as i64), &self.node, &lease],
            )
            .await?
            .iter()
            .map(|r| (r.get::<_, i64>(1), r.get::<_, i64>(0)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|(_, id)| id)
            .collect();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(queue_entry(tx, id).await?);
            }
            Ok((out, vec![]))
        })
    }

    fn queue_release_claims(&self) -> Result<usize> {
        // This node's claims only: the other nodes' attempts go on. (The
        // node's name is held by one process at a time: these are the
        // claims of an earlier run that ended.)
        self.write(async |tx| {
            let n = exec(
                tx,
                "UPDATE queue SET lease_node = NULL, lease_until = NULL WHERE lease_node = $1",
                &[&self.node],
            )
            .await?;
            // Entries with nothing pending (a crash after the last
            // delivery, before the settle), not claimed by a live node.
            let done: Vec<i64> = rows(
                tx,
                &format!(
                    "SELECT id FROM queue q
                     WHERE (lease_until IS NULL OR lease_until <= {DB_NOW})
                       AND NOT EXISTS (SELECT 1 FROM queue_recipients r
                                       WHERE r.queue_id = q.id AND r.status = 'pending')
                     FOR UPDATE SKIP LOCKED"
                ),
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
            for id in done {
                queue_remove(tx, id).await?;
            }
            Ok((n as usize, vec![]))
        })
    }

    fn queue_next_due(&self) -> Result<Option<i64>> {
        // This node's claims are not due (its attempts are running). An
        // entry another node claimed is due when that claim runs out,
        // told in this node's clock: if that node died, this one notices
        // then; if it lives, the claim was renewed, and the next look
        // finds a later time.
        self.block(async |c| {
            let r = row(
                &*c,
                &format!(
                    "SELECT min(CASE WHEN lease_until IS NULL OR lease_until <= {DB_NOW}
                                     THEN next_attempt
                                     ELSE GREATEST(next_attempt, lease_until - {DB_NOW} + $2) END)
                     FROM queue q
                     WHERE NOT held
                       AND (lease_node IS DISTINCT FROM $1 OR lease_until <= {DB_NOW})
                       AND EXISTS (SELECT 1 FROM queue_recipients r
                                   WHERE r.queue_id = q.id AND r.status = 'pending')"
                ),
                &[&self.node, &super::now()],
            )
            .await?;
            Ok(r.get::<_, Option<i64>>(0))
        })
    }

    fn queue_delivered(&self, id: QueueId, addresses: &[String]) -> Result<()> {
        self.write(async |tx| {
            exec(
                tx,
                "UPDATE queue_recipients SET status = 'delivered', attempts = attempts + 1,
                 last_error = NULL WHERE queue_id = $1 AND address = ANY($2)",
                &[&id.0, &addresses],
            )
            .await?;
            Ok(((), vec![]))
        })
    }

    fn queue_settle(&self, id: QueueId, settle: QueueSettle) -> Result<()> {
        self.write(async |tx| {
            let holder = row_opt(
                tx,
                "SELECT lease_node FROM queue WHERE id = $1 FOR UPDATE",
                &[&id.0],
            )
            .await?;
            let Some(holder) = holder else {
                return Ok(((), vec![])); // deleted meanwhile
            };
            if holder.get::<_, Option<String>>(0).as_deref() != Some(self.node.as_str()) {
                tracing::warn!(
                    id = id.0,
                    "queue entry claimed by another node meanwhile: this attempt's end is dropped"
                );
                return Ok(((), vec![]));
            }
            let mut changes = vec![];
            for (list, status) in [(&settle.failed, "failed"), (&settle.deferred, "pending")] {
                let addresses: Vec<&str> = list.iter().map(|(a, _)| a.as_str()).collect();
                let errors: Vec<&str> = list.iter().map(|(_, e)| e.as_str()).collect();
                exec(
                    tx,
                    "UPDATE queue_recipients SET status = $2, attempts = attempts + 1,
                     last_error = v.e FROM unnest($3::text[], $4::text[]) AS v(a, e)
                     WHERE queue_id = $1 AND address = v.a",
                    &[&id.0, &status, &addresses, &errors],
                )
                .await?;
            }
            for notice in &settle.notices {
                let envelope = serde_json::to_string(&notice.envelope).map_err(backend)?;
                enqueue_in(tx, notice, &envelope).await?;
                changes.push(Change::Queued);
            }
            let pending: i64 = row(
                tx,
                "SELECT count(*) FROM queue_recipients WHERE queue_id = $1 AND status = 'pending'",
                &[&id.0],
            )
            .await?
            .get(0);
            if pending == 0 {
                queue_remove(tx, id.0).await?;
            } else {
                exec(
                    tx,
                    "UPDATE queue SET next_attempt = $2, warned = warned OR $3,
                     lease_node = NULL, lease_until = NULL WHERE id = $1",
                    &[&id.0, &settle.next_attempt, &settle.warned],
                )
                .await?;
            }
            Ok(((), changes))
        })
    }

    fn queue_retry(&self, id: QueueId) -> Result<()> {
        self.write(async |tx| {
            let n = exec(
                tx,
                "UPDATE queue SET next_attempt = $2 WHERE id = $1",
                &[&id.0, &super::now()],
            )
            .await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("queue entry {}", id.0)));
            }
            Ok(((), vec![Change::Queued]))
        })
    }

    fn queue_hold(&self, id: QueueId, held: bool) -> Result<()> {
        self.write(async |tx| {
            let n = exec(
                tx,
                "UPDATE queue SET held = $2 WHERE id = $1",
                &[&id.0, &held],
            )
            .await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("queue entry {}", id.0)));
            }
            Ok(((), if held { vec![] } else { vec![Change::Queued] }))
        })
    }
}
