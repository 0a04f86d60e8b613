//! [`Queue`] for SQLite: tables `queue` (one entry per message, with its
//! content and envelope) and `queue_recipients` (per-recipient state).

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, backend, now};
use crate::model::*;
use crate::{Queue, Result, StoreError};

impl Queue for SqliteStore {
    fn queue(&self) -> Result<Vec<QueueEntry>> {
        self.read(|c| {
            let mut s = c
                .prepare("SELECT id FROM queue ORDER BY created, id")
                .map_err(backend)?;
            let ids: Vec<i64> = s
                .query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(backend)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(e) = queue_entry(c, id)? {
                    out.push(e);
                }
            }
            Ok(out)
        })
    }

    fn queue_entry(&self, id: QueueId) -> Result<Option<(QueueEntry, Vec<u8>)>> {
        self.read(|c| {
            let Some(entry) = queue_entry(c, id.0)? else {
                return Ok(None);
            };
            let content: Vec<u8> = c
                .query_row("SELECT content FROM queue WHERE id = ?1", [id.0], |r| {
                    r.get(0)
                })
                .map_err(backend)?;
            Ok(Some((entry, content)))
        })
    }

    fn queue_delete(&self, id: QueueId) -> Result<()> {
        self.write(move |c| {
            if queue_remove(c, id.0)? == 0 {
                return Err(StoreError::NotFound(format!("queue entry {}", id.0)));
            }
            Ok(((), vec![]))
        })
    }

    fn queue_claim(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>> {
        self.write(move |c| {
            let ids: Vec<i64> = c
                .prepare_cached(
                    "SELECT id FROM queue q WHERE next_attempt <= ?1 AND held = 0 AND active = 0
                     AND EXISTS (SELECT 1 FROM queue_recipients r
                                 WHERE r.queue_id = q.id AND r.status = 'pending')
                     ORDER BY next_attempt, id LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(params![now, limit as i64], |r| r.get(0))
                        .and_then(|rows| rows.collect())
                })
                .map_err(backend)?;
            let mut out = Vec::with_capacity(ids.len());
            let mut mark = c
                .prepare_cached("UPDATE queue SET active = 1 WHERE id = ?1")
                .map_err(backend)?;
            for id in ids {
                mark.execute([id]).map_err(backend)?;
                out.extend(queue_entry(c, id)?);
            }
            Ok((out, vec![]))
        })
    }

    fn queue_release_claims(&self) -> Result<usize> {
        self.write(|c| {
            let n = c
                .execute("UPDATE queue SET active = 0 WHERE active = 1", [])
                .map_err(backend)?;
            // A crash between recording the last delivery (`queue_delivered`)
            // and the settle leaves an entry with nothing pending: never
            // claimed again, so it would stay for ever. Its work is done.
            let done: Vec<i64> = c
                .prepare_cached(
                    "SELECT id FROM queue q WHERE NOT EXISTS (SELECT 1 FROM queue_recipients r
                     WHERE r.queue_id = q.id AND r.status = 'pending')",
                )
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(backend)?;
            for id in done {
                queue_remove(c, id)?;
            }
            Ok((n, vec![]))
        })
    }

    fn queue_next_due(&self) -> Result<Option<i64>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT min(next_attempt) FROM queue q WHERE held = 0 AND active = 0
                 AND EXISTS (SELECT 1 FROM queue_recipients r
                             WHERE r.queue_id = q.id AND r.status = 'pending')",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(backend)
        })
    }

    fn queue_delivered(&self, id: QueueId, addresses: &[String]) -> Result<()> {
        let addresses = addresses.to_vec();
        self.write(move |c| {
            let mut s = c
                .prepare_cached(
                    "UPDATE queue_recipients SET status = 'delivered', attempts = attempts + 1,
                     last_error = NULL WHERE queue_id = ?1 AND address = ?2",
                )
                .map_err(backend)?;
            for a in &addresses {
                s.execute(params![id.0, a]).map_err(backend)?;
            }
            Ok(((), vec![]))
        })
    }

    fn queue_settle(&self, id: QueueId, settle: QueueSettle) -> Result<()> {
        self.write(move |c| {
            let mut changes = vec![];
            {
                let mut s = c
                    .prepare_cached(
                        "UPDATE queue_recipients SET status = ?3, attempts = attempts + 1,
                         last_error = ?4 WHERE queue_id = ?1 AND address = ?2",
                    )
                    .map_err(backend)?;
                for (a, e) in &settle.failed {
                    s.execute(params![id.0, a, "failed", e]).map_err(backend)?;
                }
                for (a, e) in &settle.deferred {
                    s.execute(params![id.0, a, "pending", e]).map_err(backend)?;
                }
            }
            for notice in settle.notices {
                let envelope = serde_json::to_string(&notice.envelope).map_err(backend)?;
                enqueue_in(c, notice, envelope)?;
                changes.push(Change::Queued);
            }
            if queue_pending(c, id.0)? == 0 {
                queue_remove(c, id.0)?;
            } else {
                c.prepare_cached(
                    "UPDATE queue SET next_attempt = ?2, warned = warned OR ?3, active = 0
                     WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![id.0, settle.next_attempt, settle.warned]))
                .map_err(backend)?;
            }
            Ok(((), changes))
        })
    }

    fn queue_retry(&self, id: QueueId) -> Result<()> {
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE queue SET next_attempt = ?2 WHERE id = ?1",
                    params![id.0, now()],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("queue entry {}", id.0)));
            }
            Ok(((), vec![Change::Queued]))
        })
    }

    fn queue_hold(&self, id: QueueId, held: bool) -> Result<()> {
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE queue SET held = ?2 WHERE id = ?1",
                    params![id.0, held],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("queue entry {}", id.0)));
            }
            Ok(((), if held { vec![] } else { vec![Change::Queued] }))
        })
    }
}

fn queue_entry(c: &Connection, id: i64) -> Result<Option<QueueEntry>> {
    type Row = (i64, i64, bool, String, String, i64, bool, bool);
    let row: Option<Row> = c
        .prepare_cached(
            "SELECT created, next_attempt, held, sender, envelope, size, warned, active
             FROM queue WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .optional()
        })
        .map_err(backend)?;
    let Some((created, next_attempt, held, sender, envelope, size, warned, active)) = row else {
        return Ok(None);
    };
    let mut s = c
        .prepare_cached(
            "SELECT address, notify, orcpt, status, attempts, last_error FROM queue_recipients
             WHERE queue_id = ?1 ORDER BY address",
        )
        .map_err(backend)?;
    let recipients = s
        .query_map([id], |r| {
            Ok(QueuedRecipient {
                address: r.get(0)?,
                notify: r.get(1)?,
                orcpt: r.get(2)?,
                status: RecipientStatus::parse(&r.get::<_, String>(3)?),
                attempts: r.get::<_, i64>(4)? as u32,
                last_error: r.get(5)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(backend)?;
    Ok(Some(QueueEntry {
        id: QueueId(id),
        created,
        next_attempt,
        held,
        sender,
        size: size as u64,
        envelope: serde_json::from_str(&envelope).map_err(backend)?,
        recipients,
        warned,
        active,
    }))
}

/// Deletes an entry and its recipients (inside the current transaction).
fn queue_remove(c: &Connection, id: i64) -> Result<usize> {
    let n = c
        .prepare_cached("DELETE FROM queue WHERE id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(backend)?;
    c.prepare_cached("DELETE FROM queue_recipients WHERE queue_id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(backend)?;
    Ok(n)
}

fn queue_pending(c: &Connection, id: i64) -> Result<i64> {
    c.prepare_cached(
        "SELECT count(*) FROM queue_recipients WHERE queue_id = ?1 AND status = 'pending'",
    )
    .and_then(|mut s| s.query_row([id], |r| r.get(0)))
    .map_err(backend)
}

/// Puts one message into the outbound queue inside the current transaction.
pub(super) fn enqueue_in(c: &Connection, message: Outbound, envelope: String) -> Result<QueueId> {
    let t = now();
    let id: i64 = c
        .prepare_cached(
            "INSERT INTO queue(created, next_attempt, sender, envelope, content, size)
             VALUES (?1, ?1, ?2, ?3, ?4, ?5) RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    t,
                    message.sender,
                    envelope,
                    message.content,
                    message.content.len() as i64
                ],
                |r| r.get(0),
            )
        })
        .map_err(backend)?;
    let mut ins = c
        .prepare_cached(
            "INSERT OR IGNORE INTO queue_recipients(queue_id, address, notify, orcpt, status, attempts, last_error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(backend)?;
    for r in &message.recipients {
        ins.execute(params![
            id,
            r.address,
            r.notify,
            r.orcpt,
            r.status.as_str(),
            r.attempts,
            r.last_error
        ])
        .map_err(backend)?;
    }
    Ok(QueueId(id))
}
