//! [`Messages`] for SQLite: tables `blobs` (content stored once, with its
//! metadata, or the name of its pack range), `messages` (one row per
//! message in a mailbox), `envelopes` and `expunged`; delivery and queueing
//! in one transaction (`accept`), bulk reads by UID ranges, flags, expunge,
//! copy and move, `\Recent`.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::directory::add_used;
use super::mailboxes::{bump_modseq, find_mailbox, mailbox_by_id};
use super::queue::enqueue_in;
use super::rows::summary_from_row;
use super::writer::{Appended, append_here};
use super::{SqliteStore, backend};
use crate::meta::MessageMeta;
use crate::model::*;
use crate::rules::{apply_flags, keywords_text, keywords_vec, meta_with_prefix};
use crate::{Messages, Result, SearchHeaders, StoreError, canonical_mailbox_name};

impl Messages for SqliteStore {
    fn accept(&self, deliveries: Vec<Delivery>, outbound: Option<Outbound>) -> Result<Accepted> {
        let (deliveries, outbound, envelope) = accept_args(deliveries, outbound)?;
        // Large content is written (and made durable) here, on the caller's
        // thread, before the commit that will reference it.
        let files = self.write_files(deliveries.iter().map(|(d, _)| d))?;
        let job_files = files.clone();
        let result = self.write(move |c| accept_in(c, deliveries, outbound, envelope, &job_files));
        if result.is_err() {
            self.remove_files(&files);
        }
        result
    }

    fn accept_async(
        self: Arc<Self>,
        deliveries: Vec<Delivery>,
        outbound: Option<Outbound>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Accepted>> + Send>> {
        let large = deliveries
            .iter()
            .any(|d| !d.targets.is_empty() && self.files.wants(d.content.len()));
        if large && !self.files.packs() {
            // A file of its own costs an fsync of the file and of its
            // directory: not on the writer thread.
            return Box::pin(crate::blocking(move || self.accept(deliveries, outbound)));
        }
        let (deliveries, outbound, envelope) = match accept_args(deliveries, outbound) {
            Ok(a) => a,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        // Large content is appended to a pack here, on the caller's thread
        // (a copy into the page cache, as a socket read is), not on the
        // writer thread, which every commit waits for. The writer syncs
        // the packs of its batch before the commit (see `writer_loop`), and
        // the content is removed again if the job or the commit fails.
        let mut appended = Appended::default();
        let mut names = Vec::with_capacity(deliveries.len());
        for (d, _) in &deliveries {
            if !self.files.wants(d.content.len()) {
                names.push(None);
                continue;
            }
            let failed = match append_here(&self.files, &d.content) {
                Some(Ok((n, unsynced))) => {
                    appended.names.push(n.clone());
                    appended.unsynced.push(unsynced);
                    names.push(Some(n));
                    continue;
                }
                Some(Err(e)) => backend(e),
                None => backend("packs are off"),
            };
            self.remove_files(&names);
            return Box::pin(async move { Err(failed) });
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<Accepted>>();
        let sent = self.submit(
            appended,
            move |c| accept_in(c, deliveries, outbound, envelope, &names),
            move |r| {
                let _ = tx.send(r);
            },
        );
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| backend("store writer stopped"))?
        })
    }

    fn deliver_many(&self, deliveries: Vec<Delivery>) -> Result<Vec<Vec<Delivered>>> {
        let mut prepared = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            let meta = serde_json::to_string(&d.meta).map_err(backend)?;
            prepared.push((d, meta));
        }
        let files = self.write_files(prepared.iter().map(|(d, _)| d))?;
        let job_files = files.clone();
        let result = self.write(move |c| {
            let mut out = Vec::with_capacity(prepared.len());
            let mut changes = Vec::new();
            for ((d, meta), file) in prepared.into_iter().zip(job_files) {
                if d.targets.is_empty() {
                    out.push(Vec::new());
                    continue;
                }
                let (delivered, ch) = deliver_in(c, d, meta, file.as_deref())?;
                out.push(delivered);
                changes.extend(ch);
            }
            Ok((out, changes))
        });
        if result.is_err() {
            self.remove_files(&files);
        }
        result
    }

    fn messages(&self, mailbox: MailboxId, since: ModSeq) -> Result<Vec<MessageSummary>> {
        self.read(|c| summaries(c, mailbox, since))
    }

    fn message_summary(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<MessageSummary>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT uid, modseq, flags, keywords, internaldate, size FROM messages
                     WHERE mailbox_id = ?1 AND uid = ?2",
                )
                .map_err(backend)?;
            s.query_row(params![mailbox.0, uid.0 as i64], summary_from_row)
                .optional()
                .map_err(backend)
        })
    }

    fn changes_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<Option<MailboxChanges>> {
        // One read transaction: one snapshot for the three reads. Read one
        // by one, a message added and expunged in between would be listed
        // as changed *and* as expunged, and a session would announce it
        // twice (found by the concurrency test).
        self.read(|c| {
            c.execute_batch("BEGIN").map_err(backend)?;
            let read = || -> Result<Option<MailboxChanges>> {
                let now = match super::mailboxes::mailbox_by_id(c, mailbox) {
                    Ok(m) => m,
                    Err(StoreError::NotFound(_)) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let changed = summaries(c, mailbox, since)?;
                let expunged = if since == ModSeq(0) {
                    None
                } else {
                    Some(expunged_uids(c, mailbox, since)?)
                };
                let recent_from = Uid(recent_mark(c, mailbox)?.0 as u32);
                Ok(Some(MailboxChanges {
                    mailbox: now,
                    changed,
                    expunged,
                    recent_from,
                }))
            };
            let out = read();
            c.execute_batch("COMMIT").map_err(backend)?;
            out
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
        self.read(|c| {
            let mut out = Vec::new();
            for_each_uid_row(
                c,
                "SELECT m.uid, e.envelope,
                        CASE WHEN e.envelope IS NULL
                             THEN (SELECT meta FROM blobs WHERE id = m.blob_id) END
                 FROM messages m LEFT JOIN envelopes e ON e.blob_id = m.blob_id
                 WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid",
                mailbox,
                uids,
                |uid, r| {
                    let data = match r.get::<_, Option<Vec<u8>>>(1).map_err(backend)? {
                        Some(rendered) => StoredEnvelope::Rendered(rendered),
                        None => {
                            let json: String = r.get(2).map_err(backend)?;
                            let e: OnlyEnvelope = serde_json::from_str(&json).map_err(backend)?;
                            StoredEnvelope::Parsed(Box::new(e.envelope))
                        }
                    };
                    out.push((uid, data));
                    Ok(())
                },
            )?;
            Ok(out)
        })
    }

    fn text_matches(
        &self,
        mailbox: MailboxId,
        needle: &str,
        scope: TextScope,
    ) -> Result<Option<TextMatches>> {
        let Some((query, exact)) = super::search::fts_query(needle, scope) else {
            return Ok(None);
        };
        self.read(|c| {
            // The first column of a query's rows.
            let ids = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<Vec<i64>> {
                let mut s = c.prepare_cached(sql).map_err(backend)?;
                let rows = s.query_map(p, |r| r.get::<_, i64>(0)).map_err(backend)?;
                rows.collect::<rusqlite::Result<Vec<i64>>>()
                    .map_err(backend)
            };
            let uids = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<Vec<Uid>> {
                Ok(ids(sql, p)?.into_iter().map(|u| Uid(u as u32)).collect())
            };
            // What the index says (content ids, ascending), for content
            // marked indexed: a row of content not marked may be an
            // earlier content's under the same id (search.rs).
            let mut hits = ids("SELECT rowid FROM s.fts WHERE fts MATCH ?1", &[&query])?;
            let unindexed = ids("SELECT id FROM blobs WHERE indexed = 0 ORDER BY id", &[])?;
            hits.sort_unstable();
            hits.retain(|id| unindexed.binary_search(id).is_err());
            // Their messages here: a lookup per content while there are
            // few (the time grows with the matches), one pass over the
            // mailbox's listing when there are many (a lookup each for
            // 50,000 contents cost more than the pass over 100,000).
            let mut found = Vec::new();
            if hits.len() <= MAX_LOOKUPS {
                let mut s = c
                    .prepare_cached(
                        "SELECT uid FROM messages WHERE blob_id = ?1 AND mailbox_id = ?2",
                    )
                    .map_err(backend)?;
                for id in hits {
                    let rows = s
                        .query_map(params![id, mailbox.0], |r| r.get::<_, i64>(0))
                        .map_err(backend)?;
                    for u in rows {
                        found.push(Uid(u.map_err(backend)? as u32));
                    }
                }
            } else {
                let mut s = c
                    .prepare_cached("SELECT uid, blob_id FROM messages WHERE mailbox_id = ?1")
                    .map_err(backend)?;
                // The contents as a bit set over their id range.
                let (lo, hi) = (hits[0], hits[hits.len() - 1]);
                let mut bits = vec![0u64; ((hi - lo) / 64 + 1) as usize];
                for id in &hits {
                    let k = (id - lo) as usize;
                    bits[k / 64] |= 1 << (k % 64);
                }
                let named = |id: i64| {
                    (lo..=hi).contains(&id) && {
                        let k = (id - lo) as usize;
                        bits[k / 64] & (1 << (k % 64)) != 0
                    }
                };
                let mut rows = s.query([mailbox.0]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    if named(r.get(1).map_err(backend)?) {
                        found.push(Uid(r.get::<_, i64>(0).map_err(backend)? as u32));
                    }
                }
            }
            // Content the indexer has not reached yet: to be checked.
            // (The few unindexed contents first, by their partial index, then
            // their messages by `messages_by_blob`: not a pass over the
            // whole mailbox.)
            let mut unsure = uids(
                "SELECT m.uid FROM messages m
                 WHERE m.blob_id IN (SELECT id FROM blobs WHERE indexed = 0)
                   AND m.mailbox_id = ?1",
                &[&mailbox.0],
            )?;
            if scope == TextScope::Header {
                // Content no parse may look at (search.rs): its header
                // fields are read.
                unsure.extend(uids(
                    "SELECT m.uid FROM messages m
                     WHERE m.blob_id IN (SELECT id FROM blobs WHERE indexed = 2)
                       AND m.mailbox_id = ?1",
                    &[&mailbox.0],
                )?);
            }
            if scope != TextScope::Body {
                // TEXT and HEADER also look at the fields delivery put in
                // front of each message (Return-Path, Delivered-To): not
                // indexed. SQLite's lower() folds ASCII only, so a prefix
                // with any other character is checked too.
                unsure.extend(uids(
                    "SELECT uid FROM messages WHERE mailbox_id = ?1 AND length(prefix) > 0
                       AND (instr(lower(CAST(prefix AS TEXT)), ?2) > 0
                            OR length(CAST(prefix AS BLOB)) != length(CAST(prefix AS TEXT)))",
                    &[&mailbox.0, &needle.to_lowercase()],
                )?);
            }
            if !exact {
                // The phrase was the needle's beginning: only candidates.
                unsure.append(&mut found);
            }
            Ok(Some(TextMatches::settle(found, unsure)))
        })
    }

    fn search_headers(
        &self,
        mailbox: MailboxId,
        after: Uid,
    ) -> Result<Vec<(Uid, Option<SearchHeaders>)>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT m.uid, h.blob_id, h.subject, h.from_, h.to_, h.cc, h.bcc
                     FROM messages m LEFT JOIN search_headers h ON h.blob_id = m.blob_id
                     WHERE m.mailbox_id = ?1 AND m.uid > ?2 ORDER BY m.uid",
                )
                .map_err(backend)?;
            s.query_map(params![mailbox.0, after.0], |r| {
                let uid = Uid(r.get::<_, i64>(0)? as u32);
                let kept: Option<i64> = r.get(1)?;
                Ok((
                    uid,
                    kept.map(|_| -> rusqlite::Result<SearchHeaders> {
                        Ok(SearchHeaders {
                            subject: r.get(2)?,
                            from: r.get(3)?,
                            to: r.get(4)?,
                            cc: r.get(5)?,
                            bcc: r.get(6)?,
                        })
                    })
                    .transpose()?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(backend)
        })
    }

    fn message_contents(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, Vec<u8>)>> {
        let rows: Vec<(Uid, Vec<u8>, Option<String>)> = self.read(|c| {
            let mut out = Vec::new();
            for_each_uid_row(
                c,
                "SELECT m.uid, m.prefix, b.data, b.file FROM messages m
                 JOIN blobs b ON b.id = m.blob_id
                 WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid",
                mailbox,
                uids,
                |uid, r| {
                    let (content, file) = content_from_row(r).map_err(backend)?;
                    out.push((uid, content, file));
                    Ok(())
                },
            )?;
            Ok(out)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (uid, content, file) in rows {
            if let Some(content) = self.with_file(mailbox, uid, content, file)? {
                out.push((uid, content));
            }
        }
        Ok(out)
    }

    /// One message by a point query, not the bulk read's range query: POP3
    /// reads every RETR this way, and the range machinery (UID list,
    /// ranges, result lists) cost 10 % of RETR throughput
    /// (bench/README.md, "After the restructuring").
    fn message_content(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<Vec<u8>>> {
        let row = self.read(|c| {
            c.prepare_cached(
                "SELECT m.uid, m.prefix, b.data, b.file FROM messages m
                 JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ?1 AND m.uid = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![mailbox.0, uid.0], content_from_row)
                    .optional()
            })
            .map_err(backend)
        })?;
        match row {
            Some((content, file)) => self.with_file(mailbox, uid, content, file),
            None => Ok(None),
        }
    }

    fn message_metas(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, MessageMeta)>> {
        let rows: Vec<(Uid, i64, String)> = self.read(|c| {
            let mut out = Vec::new();
            for_each_uid_row(
                c,
                "SELECT m.uid, length(m.prefix), b.meta FROM messages m
                 JOIN blobs b ON b.id = m.blob_id
                 WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid",
                mailbox,
                uids,
                |uid, r| {
                    out.push((uid, r.get(1).map_err(backend)?, r.get(2).map_err(backend)?));
                    Ok(())
                },
            )?;
            Ok(out)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (uid, prefix_len, json) in rows {
            match meta_with_prefix(prefix_len, &json) {
                Ok(m) => out.push((uid, m)),
                // Stored by an older version that described deeper structure
                // than the JSON reader accepts: parse the message again.
                Err(e) => {
                    tracing::warn!(error = %e, uid = uid.0, "stored metadata unreadable, parsing again");
                    if let Some((_, content)) = self.message_contents(mailbox, &[uid])?.pop() {
                        out.push((uid, MessageMeta::parse(&content)));
                    }
                }
            }
        }
        Ok(out)
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
        let uids = uids.to_vec();
        let keywords = keywords.to_vec();
        self.write(move |c| {
            let m = mailbox_by_id(c, mailbox)?;
            let mut updates = Vec::new();
            let mut modified = Vec::new();
            let mut modseq = None;
            for uid in uids {
                let row: Option<(u8, String, i64)> = c
                    .prepare_cached(
                        "SELECT flags, keywords, modseq FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![mailbox.0, uid.0], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                        .optional()
                    })
                    .map_err(backend)?;
                let Some((old_bits, old_kw, old_modseq)) = row else {
                    continue;
                };
                // RFC 7162 §3.1.3: changed since the client looked: refuse.
                if unchanged_since.is_some_and(|u| old_modseq as u64 > u.0) {
                    modified.push(uid);
                    continue;
                }
                let old_flags = Flags::from_bits(old_bits);
                let old_kw = keywords_vec(&old_kw);
                let (new_flags, new_kw) = apply_flags(op, old_flags, &old_kw, flags, &keywords);
                if new_flags == old_flags && new_kw == old_kw {
                    continue;
                }
                let ms = match modseq {
                    Some(ms) => ms,
                    None => {
                        let ms = bump_modseq(c, mailbox)?;
                        modseq = Some(ms);
                        ms
                    }
                };
                c.prepare_cached(
                    "UPDATE messages SET flags = ?3, keywords = ?4, modseq = ?5
                     WHERE mailbox_id = ?1 AND uid = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        mailbox.0,
                        uid.0,
                        new_flags.bits(),
                        keywords_text(&new_kw),
                        ms.0 as i64
                    ])
                })
                .map_err(backend)?;
                updates.push(FlagUpdate {
                    uid,
                    modseq: ms,
                    flags: new_flags,
                    keywords: new_kw,
                });
            }
            let changes = match modseq {
                Some(modseq) => vec![Change::FlagsChanged {
                    account: m.account,
                    mailbox,
                    uids: updates.iter().map(|u| u.uid).collect(),
                    modseq,
                }],
                None => vec![],
            };
            Ok(((updates, modified), changes))
        })
    }

    fn expunge(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<Uid>> {
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        self.write(move |c| {
            let m = mailbox_by_id(c, mailbox)?;
            let change = expunge_in(c, &m, &uids)?;
            let removed = match &change {
                Some(Change::Expunged { uids, .. }) => uids.clone(),
                _ => Vec::new(),
            };
            Ok((removed, change.into_iter().collect()))
        })
    }

    fn copy_messages(
        &self,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
        expunge_source: bool,
    ) -> Result<Vec<(Uid, Uid)>> {
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        self.write(move |c| {
            let src = mailbox_by_id(c, from)?;
            let dst = mailbox_by_id(c, to)?;
            copy_in(c, &src, &uids, &dst, expunge_source)
        })
    }

    fn recent_from(&self, mailbox: MailboxId) -> Result<Uid> {
        self.read(|c| recent_mark(c, mailbox).map(|(r, _)| Uid(r as u32)))
    }

    fn claim_recent(&self, mailbox: MailboxId) -> Result<(Uid, Uid)> {
        self.write(move |c| {
            let (recent, uidnext) = recent_mark(c, mailbox)?;
            if recent != uidnext {
                c.execute(
                    "UPDATE mailboxes SET recent_uid = ?2 WHERE id = ?1",
                    params![mailbox.0, uidnext],
                )
                .map_err(backend)?;
            }
            Ok(((Uid(recent as u32), Uid(uidnext as u32)), Vec::new()))
        })
    }

    fn expunged_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<Vec<Uid>> {
        self.read(|c| expunged_uids(c, mailbox, since))
    }
}

/// Contents the index names up to which their messages are looked up one
/// by one; above, the mailbox's listing is read once (`text_matches`).
/// Small in unit tests, so that they take both ways.
#[cfg(not(test))]
const MAX_LOOKUPS: usize = 4096;
#[cfg(test)]
const MAX_LOOKUPS: usize = 1;

/// The messages of `mailbox` changed or added after `since` (all with
/// `ModSeq(0)`), by UID.
fn summaries(c: &Connection, mailbox: MailboxId, since: ModSeq) -> Result<Vec<MessageSummary>> {
    // Two statements, for their query plans: the whole mailbox is a
    // range of the primary key, already in UID order (an IMAP SELECT);
    // what changed since a MODSEQ is a range of `messages_by_modseq`,
    // sorted afterwards (a session catching up). One statement for
    // both takes the index every time (SQLite plans it without knowing
    // `since`), and listing 100,000 messages took 45 ms instead of
    // 10-12 (the statement alone, release build).
    if since == ModSeq(0) {
        let mut s = c
            .prepare_cached(
                "SELECT uid, modseq, flags, keywords, internaldate, size FROM messages
                 WHERE mailbox_id = ?1 ORDER BY uid",
            )
            .map_err(backend)?;
        return s
            .query_map([mailbox.0], summary_from_row)
            .and_then(|rows| rows.collect())
            .map_err(backend);
    }
    let mut s = c
        .prepare_cached(
            "SELECT uid, modseq, flags, keywords, internaldate, size FROM messages
             WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
        )
        .map_err(backend)?;
    s.query_map(params![mailbox.0, since.0 as i64], summary_from_row)
        .and_then(|rows| rows.collect())
        .map_err(backend)
}

/// UIDs of `mailbox` expunged after `since`, ascending.
fn expunged_uids(c: &Connection, mailbox: MailboxId, since: ModSeq) -> Result<Vec<Uid>> {
    let mut s = c
        .prepare_cached(
            "SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
        )
        .map_err(backend)?;
    s.query_map(params![mailbox.0, since.0 as i64], |r| {
        Ok(Uid(r.get::<_, i64>(0)? as u32))
    })
    .and_then(|rows| rows.collect())
    .map_err(backend)
}

/// The `\Recent` mark of the mailbox and its UIDNEXT.
fn recent_mark(c: &Connection, mailbox: MailboxId) -> Result<(i64, i64)> {
    c.prepare_cached("SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?1")
        .and_then(|mut s| s.query_row([mailbox.0], |r| Ok((r.get(0)?, r.get(1)?))))
        .optional()
        .map_err(backend)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", mailbox.0)))
}

impl SqliteStore {
    /// Completes `content` (prefix and content kept in the database) with
    /// the content in `file`, if any. `None` when the message was expunged
    /// meanwhile (its row gone, and with it the file).
    fn with_file(
        &self,
        mailbox: MailboxId,
        uid: Uid,
        mut content: Vec<u8>,
        file: Option<String>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(file) = file else {
            return Ok(Some(content));
        };
        match self.files.read_into(&file, &mut content) {
            Ok(()) => Ok(Some(content)),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && !self.message_exists(mailbox, uid)? =>
            {
                Ok(None)
            }
            Err(e) => Err(backend(format!("message file {file}: {e}"))),
        }
    }

    fn message_exists(&self, mailbox: MailboxId, uid: Uid) -> Result<bool> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uid = ?2")
                .and_then(|mut s| s.exists(params![mailbox.0, uid.0]))
                .map_err(backend)
        })
    }
}

/// A message's prefix and its content kept in the database, joined, and the
/// name of the file or pack range that holds the rest (the columns after
/// the UID: `m.prefix, b.data, b.file`).
fn content_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Vec<u8>, Option<String>)> {
    let (prefix, data) = (r.get_ref(1)?.as_blob()?, r.get_ref(2)?.as_blob()?);
    let mut content = Vec::with_capacity(prefix.len() + data.len());
    content.extend_from_slice(prefix);
    content.extend_from_slice(data);
    Ok((content, r.get(3)?))
}

/// Calls `f` with each row of `sql` for the messages `uids` of `mailbox`,
/// in UID order, leaving out UIDs that were not asked for. `sql` selects the
/// UID first and takes the mailbox and a UID range (`?1`, `?2`, `?3`).
/// Nearby UIDs are read with one range query (a gap of up to 64 UIDs is
/// read through): one statement step per row, not one query per message.
fn for_each_uid_row(
    c: &Connection,
    sql: &str,
    mailbox: MailboxId,
    uids: &[Uid],
    mut f: impl FnMut(Uid, &rusqlite::Row<'_>) -> Result<()>,
) -> Result<()> {
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for u in &uids {
        match ranges.last_mut() {
            Some((_, hi)) if u.0 <= hi.saturating_add(64) => *hi = u.0,
            _ => ranges.push((u.0, u.0)),
        }
    }
    let mut s = c.prepare_cached(sql).map_err(backend)?;
    for (lo, hi) in ranges {
        let mut rows = s.query(params![mailbox.0, lo, hi]).map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let uid = Uid(r.get::<_, i64>(0).map_err(backend)? as u32);
            if uids.binary_search(&uid).is_ok() {
                f(uid, r)?;
            }
        }
    }
    Ok(())
}

/// What `accept` passes to its transaction: see [`accept_args`].
type AcceptArgs = (Vec<(Delivery, String)>, Option<Outbound>, Option<String>);

/// The deliveries with targets, each with its metadata as JSON, and the
/// outbound message with its envelope as JSON.
fn accept_args(deliveries: Vec<Delivery>, outbound: Option<Outbound>) -> Result<AcceptArgs> {
    let mut out = Vec::with_capacity(deliveries.len());
    for d in deliveries.into_iter().filter(|d| !d.targets.is_empty()) {
        let meta = serde_json::to_string(&d.meta).map_err(backend)?;
        out.push((d, meta));
    }
    let envelope = match &outbound {
        Some(o) if o.recipients.is_empty() => {
            return Err(StoreError::Invalid("no recipients".into()));
        }
        Some(o) => Some(serde_json::to_string(&o.envelope).map_err(backend)?),
        None => None,
    };
    Ok((out, outbound, envelope))
}

/// The transaction of `accept`: the local deliveries (the large content of
/// each already in its `files` entry) and the queue entry.
fn accept_in(
    c: &Connection,
    deliveries: Vec<(Delivery, String)>,
    outbound: Option<Outbound>,
    envelope: Option<String>,
    files: &[Option<String>],
) -> Result<(Accepted, Vec<Change>)> {
    let mut delivered = Vec::new();
    let mut changes = Vec::new();
    for ((d, meta), file) in deliveries.into_iter().zip(files) {
        let (mut these, ch) = deliver_in(c, d, meta, file.as_deref())?;
        delivered.append(&mut these);
        changes.extend(ch);
    }
    let queued = match (outbound, envelope) {
        (Some(o), Some(e)) => Some(enqueue_in(c, o, e)?),
        _ => None,
    };
    if queued.is_some() {
        changes.push(Change::Queued);
    }
    Ok((Accepted { delivered, queued }, changes))
}

impl SqliteStore {
    /// Writes the large content of `deliveries` to files of their own (made
    /// durable), one entry per delivery (`None`: kept in the database). On
    /// failure the files already written are removed.
    fn write_files<'a>(
        &self,
        deliveries: impl Iterator<Item = &'a Delivery>,
    ) -> Result<Vec<Option<String>>> {
        let mut files = Vec::new();
        for d in deliveries {
            if d.targets.is_empty() || !self.files.wants(d.content.len()) {
                files.push(None);
                continue;
            }
            match self.files.write(&d.content) {
                Ok(f) => files.push(Some(f)),
                Err(e) => {
                    self.remove_files(&files);
                    return Err(backend(e));
                }
            }
        }
        Ok(files)
    }

    fn remove_files(&self, files: &[Option<String>]) {
        for f in files.iter().flatten() {
            self.files.remove(f);
        }
    }
}

/// Stores one delivery inside the current transaction (see
/// [`Messages::deliver`]).
fn deliver_in(
    c: &Connection,
    delivery: Delivery,
    meta: String,
    file: Option<&str>,
) -> Result<(Vec<Delivered>, Vec<Change>)> {
    // Resolve every target first: all or nothing.
    let mut resolved = Vec::with_capacity(delivery.targets.len());
    let mut per_account: Vec<(AccountId, u64)> = Vec::new();
    for t in &delivery.targets {
        let name = canonical_mailbox_name(&t.mailbox);
        let m = find_mailbox(c, t.account, &name)?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
        let size = (t.prefix.len() + delivery.content.len()) as u64;
        match per_account.iter_mut().find(|(a, _)| *a == t.account) {
            Some((_, s)) => *s += size,
            None => per_account.push((t.account, size)),
        }
        resolved.push((m, t, size));
    }
    for (account, adding) in &per_account {
        let (quota, used): (Option<i64>, i64) = c
            .prepare_cached("SELECT quota_bytes, used_bytes FROM accounts WHERE id = ?1")
            .and_then(|mut s| s.query_row([account.0], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(backend)?;
        if quota.is_some_and(|q| used as u64 + adding > q as u64) {
            return Err(StoreError::OverQuota);
        }
    }
    let blob: i64 = c
        .prepare_cached(
            "INSERT INTO blobs(refcount, data, meta, file) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )
        .and_then(|mut s| {
            // Content in a file leaves an empty value here.
            let data: &[u8] = if file.is_some() {
                &[]
            } else {
                &delivery.content
            };
            s.query_row(params![resolved.len() as i64, data, meta, file], |r| {
                r.get(0)
            })
        })
        .map_err(backend)?;
    if let Some(envelope) = &delivery.imap_envelope {
        c.prepare_cached("INSERT INTO envelopes(blob_id, envelope) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![blob, envelope]))
            .map_err(backend)?;
    }
    if let Some(h) = &delivery.search_headers {
        c.prepare_cached(
            "INSERT INTO search_headers(blob_id, subject, from_, to_, cc, bcc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| s.execute(params![blob, h.subject, h.from, h.to, h.cc, h.bcc]))
        .map_err(backend)?;
    }
    let mut out = Vec::with_capacity(resolved.len());
    let mut changes = Vec::with_capacity(resolved.len());
    for (m, t, size) in resolved {
        let (uid, modseq, uidvalidity) = append_row(
            c,
            m.id,
            blob,
            &t.prefix,
            size,
            t.flags,
            &keywords_text(&t.keywords),
            delivery.internaldate,
        )?;
        out.push(Delivered {
            account: t.account,
            mailbox: m.id,
            uid,
            uidvalidity,
        });
        changes.push(Change::MessageAdded {
            account: t.account,
            mailbox: m.id,
            uid,
            modseq,
        });
    }
    for (account, adding) in per_account {
        add_used(c, account, adding as i64)?;
    }
    Ok((out, changes))
}

/// Appends one message row into `mailbox`, taking the next UID and MODSEQ.
#[allow(clippy::too_many_arguments)]
pub(super) fn append_row(
    conn: &Connection,
    mailbox: MailboxId,
    blob: i64,
    prefix: &[u8],
    size: u64,
    flags: Flags,
    keywords: &str,
    internaldate: i64,
) -> Result<(Uid, ModSeq, UidValidity)> {
    let (uid, modseq, uidvalidity): (i64, i64, i64) = conn
        .prepare_cached(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
             WHERE id = ?1 RETURNING uidnext - 1, highestmodseq, uidvalidity",
        )
        .and_then(|mut s| s.query_row([mailbox.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
        .map_err(backend)?;
    if uid > u32::MAX as i64 {
        return Err(StoreError::Invalid("mailbox UID space exhausted".into()));
    }
    conn.prepare_cached(
        "INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internaldate, size, blob_id, prefix)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            mailbox.0,
            uid,
            modseq,
            flags.bits(),
            keywords,
            internaldate,
            size as i64,
            blob,
            prefix
        ])
    })
    .map_err(backend)?;
    Ok((
        Uid(uid as u32),
        ModSeq(modseq as u64),
        UidValidity(uidvalidity as u32),
    ))
}

/// (source UID, new UID) pairs, and the changes to announce.
type Copied = (Vec<(Uid, Uid)>, Vec<Change>);

/// Copies messages (sharing their content) from `src` into `dst` inside the
/// current transaction, keeping flags, keywords and internal date; with
/// `expunge_source` they leave `src` as an expunge (IMAP MOVE, RFC 6851;
/// RENAME of INBOX, RFC 9051 §6.3.6). UIDs not in `src` are skipped.
pub(super) fn copy_in(
    c: &Connection,
    src: &Mailbox,
    uids: &[Uid],
    dst: &Mailbox,
    expunge_source: bool,
) -> Result<Copied> {
    let mut rows = Vec::new();
    {
        let mut sel = c
            .prepare_cached(
                "SELECT blob_id, prefix, size, flags, keywords, internaldate FROM messages
                 WHERE mailbox_id = ?1 AND uid = ?2",
            )
            .map_err(backend)?;
        for uid in uids {
            let row = sel
                .query_row(params![src.id.0, uid.0], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, u8>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .optional()
                .map_err(backend)?;
            if let Some(row) = row {
                rows.push((*uid, row));
            }
        }
    }
    if rows.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let adding: u64 = rows.iter().map(|(_, r)| r.2 as u64).sum();
    let moving_within = expunge_source && src.account == dst.account;
    if !moving_within {
        let (quota, used): (Option<i64>, i64) = c
            .query_row(
                "SELECT quota_bytes, used_bytes FROM accounts WHERE id = ?1",
                [dst.account.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(backend)?;
        if quota.is_some_and(|q| used as u64 + adding > q as u64) {
            return Err(StoreError::OverQuota);
        }
    }
    let mut pairs = Vec::with_capacity(rows.len());
    let mut changes = Vec::new();
    let mut refs = c
        .prepare_cached("UPDATE blobs SET refcount = refcount + 1 WHERE id = ?1")
        .map_err(backend)?;
    for (uid, (blob, prefix, size, flags, keywords, internaldate)) in &rows {
        refs.execute([blob]).map_err(backend)?;
        let (new_uid, modseq, _) = append_row(
            c,
            dst.id,
            *blob,
            prefix,
            *size as u64,
            Flags::from_bits(*flags),
            keywords,
            *internaldate,
        )?;
        pairs.push((*uid, new_uid));
        changes.push(Change::MessageAdded {
            account: dst.account,
            mailbox: dst.id,
            uid: new_uid,
            modseq,
        });
    }
    add_used(c, dst.account, adding as i64)?;
    if expunge_source {
        let source: Vec<Uid> = pairs.iter().map(|p| p.0).collect();
        changes.extend(expunge_in(c, src, &source)?);
    }
    Ok((pairs, changes))
}

/// Removes messages from `mailbox` as an expunge, inside the current
/// transaction: one new MODSEQ for all of them (RFC 7162 §3.1.1), each UID
/// logged with it for `VANISHED (EARLIER)` (RFC 7162 §3.2.10), their
/// bytes taken off the account's quota usage. Returns the change to
/// announce, or `None` when none of `uids` was there.
pub(super) fn expunge_in(
    c: &Connection,
    mailbox: &Mailbox,
    uids: &[Uid],
) -> Result<Option<Change>> {
    let (removed, freed) = remove_messages(c, mailbox.id, uids)?;
    if removed.is_empty() {
        return Ok(None);
    }
    let modseq = bump_modseq(c, mailbox.id)?;
    log_expunged(c, mailbox.id, &removed, modseq)?;
    add_used(c, mailbox.account, -(freed as i64))?;
    Ok(Some(Change::Expunged {
        account: mailbox.account,
        mailbox: mailbox.id,
        uids: removed,
        modseq,
    }))
}

/// Logs expunged UIDs with the MODSEQ of their expunge.
pub(super) fn log_expunged(
    c: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
    modseq: ModSeq,
) -> Result<()> {
    let mut log = c
        .prepare_cached(
            "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)",
        )
        .map_err(backend)?;
    for uid in uids {
        log.execute(params![mailbox.0, uid.0, modseq.0 as i64])
            .map_err(backend)?;
    }
    Ok(())
}

/// Deletes message rows and drops their blob references; returns the
/// removed UIDs and the bytes freed.
pub(super) fn remove_messages(
    conn: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<(Vec<Uid>, u64)> {
    let mut removed = Vec::new();
    let mut freed = 0u64;
    let mut del = conn
        .prepare_cached(
            "DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2 RETURNING blob_id, size",
        )
        .map_err(backend)?;
    let mut unref = conn
        .prepare_cached("UPDATE blobs SET refcount = refcount - 1 WHERE id = ?1 RETURNING refcount")
        .map_err(backend)?;
    let mut drop_blob = conn
        .prepare_cached("DELETE FROM blobs WHERE id = ?1 RETURNING file")
        .map_err(backend)?;
    let mut drop_envelope = conn
        .prepare_cached("DELETE FROM envelopes WHERE blob_id = ?1")
        .map_err(backend)?;
    let mut drop_search = conn
        .prepare_cached("DELETE FROM search_headers WHERE blob_id = ?1")
        .map_err(backend)?;
    let mut to_trash = conn
        .prepare_cached("INSERT OR IGNORE INTO blob_trash(file) VALUES (?1)")
        .map_err(backend)?;
    for uid in uids {
        let row = del
            .query_row(params![mailbox.0, uid.0], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()
            .map_err(backend)?;
        if let Some((blob, size)) = row {
            let left: i64 = unref.query_row([blob], |r| r.get(0)).map_err(backend)?;
            if left <= 0 {
                let file: Option<String> = drop_blob
                    .query_row([blob], |r| r.get(0))
                    .optional()
                    .map_err(backend)?
                    .flatten();
                drop_envelope.execute([blob]).map_err(backend)?;
                drop_search.execute([blob]).map_err(backend)?;
                if let Some(file) = file {
                    to_trash.execute([file]).map_err(backend)?;
                }
            }
            removed.push(*uid);
            freed += size as u64;
        }
    }
    Ok((removed, freed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Directory, Mailboxes, SqliteOptions};

    /// Metadata that cannot be read back (stored by an older version that
    /// described deeper structure than the JSON reader accepts) is parsed
    /// again from the message, by the bulk read and the single one alike.
    #[test]
    fn unreadable_metadata_is_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(SqliteOptions::new(&path)).unwrap();
        store.add_domain("example.org").unwrap();
        let a = store.create_account("a@example.org", "pw").unwrap();
        let content = postamt_wire::crlf::normalize_owned(b"Subject: again\n\nbody\n".to_vec());
        let target = DeliveryTarget {
            prefix: b"X-Prefix: 1\r\n".to_vec(),
            ..DeliveryTarget::inbox(a.id)
        };
        let d = store
            .deliver(Delivery::new(content.clone(), 1, vec![target]))
            .unwrap()[0];
        let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
        let stored = store.message_meta(inbox.id, d.uid).unwrap().unwrap();
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE blobs SET meta = '{'", [])
            .unwrap();
        let full = store.message_content(inbox.id, d.uid).unwrap().unwrap();
        let parsed = MessageMeta::parse(&full);
        assert_eq!(parsed.envelope, stored.envelope);
        assert_eq!(
            store.message_meta(inbox.id, d.uid).unwrap(),
            Some(parsed.clone())
        );
        assert_eq!(
            store.message_metas(inbox.id, &[d.uid, Uid(99)]).unwrap(),
            vec![(d.uid, parsed)]
        );
    }
}
