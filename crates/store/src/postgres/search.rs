//! The full-text index of IMAP SEARCH BODY, TEXT and HEADER on PostgreSQL
//! (issue 18): a table `search_text` with the text of each content as
//! `postamt_wire::search::extract` gives it (what a scan looks at), folded
//! by the scan's own `str::to_lowercase`, and `pg_trgm` GIN indexes on it.
//!
//! **Why the answer is exact.** IMAP SEARCH matches substrings,
//! case-insensitively (RFC 9051 §6.4.4). The query is `LIKE '%needle%'`
//! over the folded text with the folded needle, its `%`, `_` and `\`
//! escaped: that *is* the scan's `contains`. The trigram index only finds
//! the candidate rows; PostgreSQL checks each against the `LIKE` itself
//! (a "recheck"), so a trigram coincidence never makes a false match, and
//! a needle of any length is answered (no phrase limit, unlike FTS5's).
//! What the index cannot answer is for the caller to read and check, as on
//! SQLite: content not indexed yet, the fields delivery put in front of a
//! message (TEXT, HEADER), every HEADER candidate (the index does not know
//! the field), and needles under three characters (no trigram: `None`).
//!
//! **Why beside the delivery.** As on SQLite, indexing in the delivery's
//! transaction would cost SMTP throughput: an indexer thread per node
//! (at nice 19, pausing while this node's deliveries come in bursts) takes unindexed contents in batches with `FOR UPDATE SKIP
//! LOCKED` (the nodes share the work, never index one content twice) and
//! stores the text and the mark in one transaction. Content ids are never
//! reused (a sequence), and a content's text goes with it
//! (`messages::unref_blobs`), so nothing needs pruning.
//!
//! **Without pg_trgm** (an extension the database may not offer, or the
//! role may not create) the table and the exact `LIKE` stay: searches are
//! right, and slower; `migrate` says so, and creates the indexes at a
//! later start once the extension exists.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{PgStore, backend, exec, rows};
use crate::model::*;
use crate::{Result, TextScope};

/// Contents indexed per batch (one transaction).
const BATCH: i64 = 64;

/// `needle` folded as a scan folds it, for `LIKE` with `\` as the escape:
/// `%`, `_` and `\` stand for themselves.
fn like_pattern(folded: &str) -> String {
    let mut p = String::with_capacity(folded.len() + 2);
    p.push('%');
    for c in folded.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl PgStore {
    /// Starts the indexer thread (the server does; commands do not). It
    /// ends when the store is dropped.
    pub fn start_indexer(self: &Arc<Self>) -> Result<()> {
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("store-indexer".into())
            .spawn(move || indexer(weak))
            .map_err(backend)?;
        Ok(())
    }

    /// Indexes up to one batch of unindexed content (this node's share);
    /// how many it did.
    pub fn index_batch(&self) -> Result<usize> {
        self.write(async |tx| {
            let found = rows(
                tx,
                "SELECT id, data FROM blobs WHERE indexed = 0 ORDER BY id LIMIT $1
                 FOR UPDATE SKIP LOCKED",
                &[&BATCH],
            )
            .await?;
            let mut ids = Vec::with_capacity(found.len());
            let mut heads = Vec::with_capacity(found.len());
            let mut bodies = Vec::with_capacity(found.len());
            let mut marks = Vec::with_capacity(found.len());
            let mut all = Vec::with_capacity(found.len());
            for r in &found {
                let content: &[u8] = r.get(1);
                let id = r.get::<_, i64>(0);
                let text = postamt_wire::search::extract(content);
                all.push(id);
                if text.headers.contains('\0') || text.body.contains('\0') {
                    // PostgreSQL's text holds no NUL: such content is left
                    // out of the index and always checked (mark 3).
                    marks.push(UNINDEXABLE);
                    continue;
                }
                ids.push(id);
                heads.push(text.headers.to_lowercase());
                bodies.push(text.body.to_lowercase());
                // Content a parse refuses has no text for BODY and TEXT (a
                // scan finds none either); HEADER reads it (mark 2).
                marks.push(if postamt_wire::meta::safe_to_parse(content) {
                    1i16
                } else {
                    2
                });
            }
            if all.is_empty() {
                return Ok((0, Vec::new()));
            }
            exec(
                tx,
                "INSERT INTO search_text(blob_id, headers, body)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
                 ON CONFLICT (blob_id) DO UPDATE SET headers = EXCLUDED.headers, body = EXCLUDED.body",
                &[&ids, &heads, &bodies],
            )
            .await?;
            exec(
                tx,
                "UPDATE blobs SET indexed = v.m FROM unnest($1::bigint[], $2::smallint[]) AS v(id, m)
                 WHERE blobs.id = v.id",
                &[&all, &marks],
            )
            .await?;
            Ok((all.len(), Vec::new()))
        })
    }

    pub(super) fn text_matches_here(
        &self,
        mailbox: MailboxId,
        needle: &str,
        scope: TextScope,
    ) -> Result<Option<TextMatches>> {
        let folded = needle.to_lowercase();
        if folded.chars().count() < 3 || folded.contains('\0') {
            return Ok(None);
        }
        // HEADER looks at one field's values, one per line: a needle across
        // a line break is a scan's matter.
        if scope == TextScope::Header && folded.contains(['\r', '\n']) {
            return Ok(None);
        }
        let pattern = like_pattern(&folded);
        let matching = match scope {
            TextScope::Body => "s.body LIKE $2",
            TextScope::Text => "(s.body LIKE $2 OR s.headers LIKE $2)",
            TextScope::Header => "s.headers LIKE $2",
        };
        // The prefix (Return-Path, Delivered-To) is bytes: an ASCII needle
        // is looked for in its escaped form, lower-cased; a prefix with
        // anything else in it (a non-ASCII byte shows as `\ooo`, a
        // backslash as `\\`), or a needle that is not plain ASCII, is left
        // to the caller.
        let simple = folded.is_ascii() && !folded.contains('\\');
        self.snapshot(async |tx| {
            let uids = |rows: Vec<tokio_postgres::Row>| -> Vec<Uid> {
                rows.iter().map(|r| Uid(r.get::<_, i64>(0) as u32)).collect()
            };
            let mut found = uids(
                rows(
                    tx,
                    &format!(
                        "SELECT m.uid FROM search_text s
                         JOIN blobs b ON b.id = s.blob_id AND b.indexed = 1
                         JOIN messages m ON m.blob_id = s.blob_id AND m.mailbox_id = $1
                         WHERE {matching} ORDER BY m.uid"
                    ),
                    &[&mailbox.0, &pattern],
                )
                .await?,
            );
            let marks: &[i16] = if scope == TextScope::Header {
                &[0, 2, UNINDEXABLE]
            } else {
                &[0, UNINDEXABLE]
            };
            let mut unsure = uids(
                rows(
                    tx,
                    "SELECT m.uid FROM messages m
                     WHERE m.blob_id IN (SELECT id FROM blobs WHERE indexed = ANY($2))
                       AND m.mailbox_id = $1",
                    &[&mailbox.0, &marks],
                )
                .await?,
            );
            if scope != TextScope::Body {
                let prefixed = if simple {
                    rows(
                        tx,
                        "SELECT uid FROM messages WHERE mailbox_id = $1 AND octet_length(prefix) > 0
                           AND (strpos(lower(encode(prefix, 'escape')), $2) > 0
                                OR strpos(encode(prefix, 'escape'), '\\') > 0)",
                        &[&mailbox.0, &folded],
                    )
                    .await?
                } else {
                    rows(
                        tx,
                        "SELECT uid FROM messages WHERE mailbox_id = $1 AND octet_length(prefix) > 0",
                        &[&mailbox.0],
                    )
                    .await?
                };
                unsure.extend(uids(prefixed));
            }
            if scope == TextScope::Header {
                // The text holds every field: only candidates.
                unsure.append(&mut found);
            }
            Ok(Some(TextMatches::settle(found, unsure)))
        })
    }
}

/// `blobs.indexed` of content whose text holds a NUL: not in
/// `search_text`, a candidate of every search (0: not yet indexed, 1:
/// indexed, 2: indexed, the parse refused it).
const UNINDEXABLE: i16 = 3;

/// The indexer: batches while there is work, a look every quarter second
/// when there is none, at nice 19, and out of the way of a burst of
/// deliveries (it waits for a tenth of a second without new messages on
/// this node, unless more than [`crate::burst::MAX_DEFERRED`] wait), so that deliveries
/// come first on a busy node.
fn indexer(store: Weak<PgStore>) {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
    let mut burst = match store.upgrade() {
        Some(s) => crate::burst::Burst::new(crate::Coordination::watch(&*s)),
        None => return,
    };
    loop {
        if burst.look().wait {
            std::thread::sleep(crate::burst::QUIET);
            continue;
        }
        let Some(s) = store.upgrade() else { return };
        let done = match s.index_batch() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "search indexer");
                0
            }
        };
        drop(s);
        if done == 0 {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Creates the trigram indexes of `search_text` if `pg_trgm` is there or
/// can be made (in a savepoint: without it the migration goes on); whether
/// they exist.
pub(super) async fn trigram_indexes(tx: &mut tokio_postgres::Transaction<'_>) -> Result<bool> {
    let sp = tx.savepoint("trgm").await.map_err(backend)?;
    let made = async {
        let found = sp
            .query_opt(
                "SELECT n.nspname::text FROM pg_extension e
                 JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'",
                &[],
            )
            .await
            .map_err(backend)?;
        let schema: String = match found {
            Some(r) => r.get(0),
            None => {
                // In `public`, not in the store's schema: dropping a
                // store's schema must not drop the extension under
                // another store's indexes.
                sp.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
                    .await
                    .map_err(backend)?;
                "public".into()
            }
        };
        let q = schema.replace('"', "\"\"");
        sp.batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS search_text_body ON search_text USING gin (body \"{q}\".gin_trgm_ops);
             CREATE INDEX IF NOT EXISTS search_text_headers ON search_text USING gin (headers \"{q}\".gin_trgm_ops);"
        ))
        .await
        .map_err(backend)?;
        Ok::<_, crate::StoreError>(())
    }
    .await;
    match made {
        Ok(()) => {
            sp.commit().await.map_err(backend)?;
            Ok(true)
        }
        Err(e) => {
            sp.rollback().await.map_err(backend)?;
            tracing::warn!(
                error = %e,
                "no pg_trgm: SEARCH BODY/TEXT stay exact but read the whole text table (CREATE EXTENSION pg_trgm, then restart)"
            );
            Ok(false)
        }
    }
}
