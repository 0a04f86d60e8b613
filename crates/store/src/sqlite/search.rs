//! The full-text index of IMAP SEARCH BODY and TEXT: SQLite FTS5 with the
//! trigram tokenizer, over the text `postamt_wire::search::extract` gives
//! (what a scan would look at), one row per content (rowid = blob id).
//!
//! **Why trigrams, and why the answer is exact.** IMAP SEARCH matches
//! substrings, case-insensitively (RFC 9051 §6.4.4): `SEARCH BODY "ort"`
//! finds "report". Word tokenizers find words; the trigram tokenizer finds
//! every substring of three characters or more: with `detail=full` (token
//! positions kept) a phrase query of the needle matches exactly the
//! documents that contain it as a substring. The index holds the text
//! folded by the same function a scan uses (`str::to_lowercase`), and the
//! tokenizer runs with `case_sensitive 1`: FTS5's own case folding (simple,
//! per code point) differs from Rust's for some characters, so the index
//! never folds anything itself, and a phrase of the folded needle over the
//! folded text is the scan's `contains`, computed by the index. So a search
//! reads no message the index has seen: a word in half of a 100,000-message
//! mailbox costs the index lookup, not 50,000 message reads. What the
//! index cannot answer is checked by reading: content not indexed yet, the
//! fields delivery put in front of a message (TEXT), a needle longer than
//! [`MAX_PHRASE`] characters (its first characters narrow), and a needle
//! shorter than three characters (a scan).
//!
//! **Why beside the delivery, not in it.** Indexing a 4 KB message costs
//! about half a millisecond of CPU, more than the whole rest of a
//! delivery; done in the delivery's transaction it would halve SMTP
//! throughput on two cores. So the index lives in a database file of its
//! own (`<store>.search.db`, its own lock, no fsync: it can always be
//! rebuilt), filled by an indexer thread at the lowest CPU priority from
//! the `blobs` rows marked `indexed = 0`; each row is marked indexed only
//! after its text is committed to the index. A search treats every message
//! whose content is not indexed yet as a candidate, so answers are exact
//! whatever the indexer's lag; after `kill -9` the unmarked rows are
//! indexed again (an insert replaces), and a missing index file makes
//! every content unindexed (rebuilt in the background).
//!
//! **What it costs.** Positions make the index big: for 110,000 messages
//! of 4 KB (440 MB of text) 1.5 GB, against about 0.65 GB without
//! positions;
//! the table keeps no copy of the text (`content = ''`,
//! `contentless_delete = 1`: rows can still be replaced and deleted).
//! Indexing takes about 0.85 ms of one core per 4 KB message, at nice 19.
//! (bench/README.md, "SEARCH answered by the index".)
//!
//! Expunged content leaves its row in the index until the indexer prunes
//! rows whose content is gone (when it is idle, after expunges): a stale
//! row matches no message meanwhile, and a row is trusted only for content
//! marked indexed, so a content id used again before the prune is checked
//! by reading until its own text replaces the row.

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::{SqliteStore, backend};
use crate::{Result, TextScope};

/// The index file beside the store file `db`.
pub(super) fn path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".search.db");
    db.with_file_name(name)
}

/// The index format (`PRAGMA user_version` of the index file): 2 is the
/// folded text with positions. Version 1 (no version set: trigrams of the
/// unfolded text, without positions) only narrowed; it is dropped and
/// rebuilt.
const FORMAT: i64 = 2;

/// Opens (creating) the index at `path`; `true` when it had to be created
/// or rebuilt (then nothing in it matches the `indexed` marks of the store).
pub(super) fn open(path: &Path) -> Result<(Connection, bool)> {
    let mut created = !path.exists();
    let c = Connection::open(path).map_err(backend)?;
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;")
        .map_err(backend)?;
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if version != FORMAT {
        c.execute_batch("DROP TABLE IF EXISTS fts;")
            .map_err(backend)?;
        created = true;
    }
    c.execute_batch(&format!(
        "CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
             headers, body, tokenize = 'trigram case_sensitive 1', detail = 'full',
             content = '', contentless_delete = 1
         );
         PRAGMA user_version = {FORMAT};"
    ))
    .map_err(backend)?;
    Ok((c, created))
}

/// Contents indexed per batch (one transaction in the index, one mark in
/// the store).
const BATCH: usize = 64;

/// The longest needle (in characters, folded) the index answers exactly;
/// a longer one is narrowed by its first [`MAX_PHRASE`] characters and its
/// candidates are checked (a phrase of thousands of trigrams would cost
/// more than the reads it saves).
pub(super) const MAX_PHRASE: usize = 128;

/// The FTS5 query for `needle`: a phrase of the folded needle (its first
/// [`MAX_PHRASE`] characters), in the columns `scope` looks at; and
/// whether its answer is exact (never for HEADER: the index does not know
/// the field). `None` for a needle too short for trigrams or one FTS5
/// cannot take (a NUL).
pub(super) fn fts_query(needle: &str, scope: TextScope) -> Option<(String, bool)> {
    let folded = needle.to_lowercase();
    let n = folded.chars().count();
    if n < 3 || folded.contains('\0') {
        return None;
    }
    // HEADER looks at one field's values, one per line: a needle across
    // a line break is a scan's matter.
    if scope == TextScope::Header && folded.contains(['\r', '\n']) {
        return None;
    }
    let phrase: String = folded.chars().take(MAX_PHRASE).collect();
    let q = format!("\"{}\"", phrase.replace('"', "\"\""));
    let q = match scope {
        TextScope::Body => format!("body : {q}"),
        TextScope::Text => q,
        TextScope::Header => format!("headers : {q}"),
    };
    Some((q, n <= MAX_PHRASE && scope != TextScope::Header))
}

impl SqliteStore {
    /// Starts the indexer thread (the server does; admin commands do not).
    /// It ends when the store is dropped.
    pub fn start_indexer(self: &std::sync::Arc<Self>) -> Result<()> {
        let weak = std::sync::Arc::downgrade(self);
        let path = self.search_path.clone();
        std::thread::Builder::new()
            .name("store-indexer".into())
            .spawn(move || indexer(weak, &path))
            .map_err(backend)?;
        Ok(())
    }

    /// A content as its `blobs` row gives it (`data`, and the file it
    /// names, if any) into `into`; `false` when its file is gone
    /// (expunged meanwhile).
    fn blob_content(&self, data: &[u8], file: Option<&str>, into: &mut Vec<u8>) -> bool {
        into.clear();
        into.extend_from_slice(data);
        file.is_none_or(|f| self.files.read_into(f, into).is_ok())
    }

    /// Indexes up to one batch of unindexed content; how many it did.
    pub(super) fn index_batch(&self, index: &mut Connection) -> Result<usize> {
        type Row = (i64, Vec<u8>, Option<String>);
        let rows: Vec<Row> = self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT id, data, file FROM blobs WHERE indexed = 0 ORDER BY id LIMIT ?1",
                )
                .map_err(backend)?;
            s.query_map([BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut done: Vec<(i64, Vec<u8>, Option<String>, i64)> = Vec::with_capacity(rows.len());
        let tx = index.transaction().map_err(backend)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO fts(rowid, headers, body) VALUES (?1, ?2, ?3)",
                )
                .map_err(backend)?;
            let mut content = Vec::new();
            for (id, data, file) in rows {
                if !self.blob_content(&data, file.as_deref(), &mut content) {
                    // Gone meanwhile (expunged): nothing to index.
                    content.clear();
                }
                let text = postamt_wire::search::extract(&content);
                insert
                    .execute(params![
                        id,
                        text.headers.to_lowercase(),
                        text.body.to_lowercase()
                    ])
                    .map_err(backend)?;
                // Content a parse refuses has no text for BODY and TEXT
                // (a scan finds none either), but its header fields can
                // still be searched with HEADER: marked 2, read by those.
                let mark = if postamt_wire::meta::safe_to_parse(&content) {
                    1
                } else {
                    2
                };
                done.push((id, data, file, mark));
            }
        }
        tx.commit().map_err(backend)?;
        let n = done.len();
        self.write(move |c| {
            // Marked only if the id still holds the content just indexed:
            // expunged and the id used again meanwhile, it stays unindexed
            // (and is indexed again) rather than trusted with another
            // message's text.
            let mut set = c
                .prepare_cached(
                    "UPDATE blobs SET indexed = ?4 WHERE id = ?1 AND data IS ?2 AND file IS ?3",
                )
                .map_err(backend)?;
            for (id, data, file, mark) in done {
                set.execute(params![id, data, file, mark])
                    .map_err(backend)?;
            }
            Ok(((), Vec::new()))
        })?;
        Ok(n)
    }

    /// Keeps the SEARCH header values (`search_headers`, schema 10) of up
    /// to one batch of contents stored before they were kept, from content
    /// id `after` on; the last id looked at, `None` when there are no more.
    /// Until then a SEARCH FROM/TO/CC/BCC/SUBJECT reads such a message
    /// (the same answer, slower).
    pub(super) fn backfill_search_headers(&self, after: i64) -> Result<Option<i64>> {
        type Row = (i64, Vec<u8>, Option<String>);
        let rows: Vec<Row> = self.read(|c| {
            let mut s = c
                .prepare_cached(
                    // The ids from `messages_by_blob` (small entries), not
                    // from a walk of `blobs` (whose rows carry the content).
                    "SELECT b.id, b.data, b.file FROM blobs b WHERE b.id IN (
                         SELECT DISTINCT m.blob_id FROM messages m
                         WHERE m.blob_id > ?1
                           AND NOT EXISTS (SELECT 1 FROM search_headers h WHERE h.blob_id = m.blob_id)
                         ORDER BY m.blob_id LIMIT ?2)
                     ORDER BY b.id",
                )
                .map_err(backend)?;
            s.query_map(params![after, BATCH as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(backend)
        })?;
        let Some(last) = rows.last().map(|r| r.0) else {
            return Ok(None);
        };
        let mut kept = Vec::with_capacity(rows.len());
        let mut content = Vec::new();
        for (id, data, file) in rows {
            if !self.blob_content(&data, file.as_deref(), &mut content) {
                continue; // gone meanwhile
            }
            kept.push((id, data, file, crate::SearchHeaders::of(&content)));
        }
        self.write(move |c| {
            // Only if the id still holds that content (see `index_batch`).
            let mut insert = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO search_headers(blob_id, subject, from_, to_, cc, bcc)
                     SELECT ?1, ?4, ?5, ?6, ?7, ?8 FROM blobs
                     WHERE id = ?1 AND data IS ?2 AND file IS ?3",
                )
                .map_err(backend)?;
            for (id, data, file, h) in kept {
                insert
                    .execute(params![
                        id, data, file, h.subject, h.from, h.to, h.cc, h.bcc
                    ])
                    .map_err(backend)?;
            }
            Ok(((), Vec::new()))
        })?;
        Ok(Some(last))
    }

    /// Removes the index rows of content that is gone (expunged); how many.
    /// Only the indexer writes the index, so a row found stale here is
    /// still the old text when it is deleted, even if its id has been
    /// given to new content meanwhile (that content is unindexed and gets
    /// its own row later).
    pub(super) fn prune_index(&self, index: &mut Connection) -> Result<usize> {
        let stale: Vec<i64> = self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT id FROM s.fts_docsize WHERE id NOT IN (SELECT id FROM blobs)",
                )
                .map_err(backend)?;
            s.query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })?;
        let tx = index.transaction().map_err(backend)?;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM fts WHERE rowid = ?1")
                .map_err(backend)?;
            for id in &stale {
                delete.execute([id]).map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        Ok(stale.len())
    }
}

/// The least time between two prunes of rows of removed content (a prune
/// reads the index's row list: about 100 ms for 100,000 contents).
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// The indexer: batches while there is work, a look every quarter second
/// when there is none; at nice 19, and out of the way of a burst of
/// deliveries (it waits for a tenth of a second without new messages,
/// unless more than [`crate::burst::MAX_DEFERRED`] wait), so deliveries and
/// sessions come first on a busy machine.
fn indexer(store: Weak<SqliteStore>, path: &Path) {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
    let Ok((mut index, _)) = open(path) else {
        tracing::warn!(path = %path.display(), "cannot open the search index; searches scan");
        return;
    };
    let mut burst = match store.upgrade() {
        Some(s) => crate::burst::Burst::new(s.changes.subscribe()),
        None => return,
    };
    // Whether content may have been removed since the last prune, and when
    // that was.
    let mut removed = false;
    let mut pruned = std::time::Instant::now();
    // Header values of contents stored before they were kept: filled in
    // once per start, when there is nothing to index.
    let mut backfill = Some(0i64);
    loop {
        let look = burst.look();
        removed |= look.removed;
        if look.wait {
            std::thread::sleep(crate::burst::QUIET);
            continue;
        }
        let Some(s) = store.upgrade() else { return };
        let done = match s.index_batch(&mut index) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "search indexer");
                0
            }
        };
        if done == 0 && removed && pruned.elapsed() >= PRUNE_EVERY {
            removed = false;
            pruned = std::time::Instant::now();
            if let Err(e) = s.prune_index(&mut index) {
                tracing::warn!(error = %e, "search index prune");
            }
        }
        let mut done = done;
        if done == 0
            && let Some(after) = backfill
        {
            backfill = s.backfill_search_headers(after).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "search header backfill");
                None
            });
            done = usize::from(backfill.is_some());
        }
        drop(s);
        if done == 0 {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Delivery, DeliveryTarget, Directory, Mailboxes, Messages, SqliteOptions, TextMatches,
        TextScope, Uid,
    };

    fn deliver(s: &SqliteStore, account: crate::AccountId, content: &str) -> Uid {
        let target = DeliveryTarget {
            prefix: b"Delivered-To: alice@example.org\r\n".to_vec(),
            ..DeliveryTarget::inbox(account)
        };
        s.deliver(Delivery::new(content.as_bytes().to_vec(), 1, vec![target]))
            .unwrap()[0]
            .uid
    }

    /// The index answers BODY and TEXT exactly once content is indexed
    /// (text attachments and encapsulated messages included; case folded
    /// as `to_lowercase` does, so an `İ` or a `ẞ` in the text is found as
    /// a scan finds it); every message not indexed yet, and for TEXT the
    /// delivery's own fields, are left to the caller to check; a needle
    /// too short is a scan. A lost index file makes every content
    /// unindexed again, and indexing makes the answers exact again.
    #[test]
    fn index_answers_and_is_rebuilt_when_lost() {
        let dir = tempfile::tempdir().unwrap();
        let open = || SqliteStore::open(SqliteOptions::new(dir.path().join("store.db"))).unwrap();
        let s = open();
        s.add_domain("example.org").unwrap();
        let a = s.create_account("alice@example.org", "pw").unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap().unwrap().id;
        let plain = deliver(
            &s,
            a.id,
            "Subject: lunch\r\n\r\nThe cafeteria opens at noon.\r\n",
        );
        let bounce = deliver(
            &s,
            a.id,
            "Subject: bounce\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nnot delivered\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: Quarterly numbers\r\n\r\nthe returned text\r\n--b--\r\n",
        );
        let unicode = deliver(
            &s,
            a.id,
            "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nISTANBUL \u{130}stanbul GRO\u{1e9e}E \"quoted\" text\r\n",
        );
        let m = |certain: Vec<Uid>, unsure: Vec<Uid>| Some(TextMatches { certain, unsure });
        let ask = |needle: &str, text: bool| {
            let scope = if text {
                TextScope::Text
            } else {
                TextScope::Body
            };
            s.text_matches(inbox, needle, scope).unwrap()
        };
        // Not indexed yet: everything is to be checked.
        assert_eq!(
            ask("cafeteria", false),
            m(vec![], vec![plain, bounce, unicode])
        );
        let mut index = open_index(&s);
        while s.index_batch(&mut index).unwrap() > 0 {}
        assert_eq!(ask("CAFETERIA", false), m(vec![plain], vec![]));
        // Several contents: the pass over the listing (one: lookups).
        assert_eq!(
            ask("SUBJECT: ", true),
            m(vec![plain, bounce, unicode], vec![])
        );
        assert_eq!(ask("teria opens at", false), m(vec![plain], vec![]));
        assert_eq!(ask("teria  opens", false), m(vec![], vec![]), "a phrase");
        assert_eq!(ask("returned text", false), m(vec![bounce], vec![]));
        assert_eq!(
            ask("quarterly", false),
            m(vec![], vec![]),
            "a header is not BODY"
        );
        assert_eq!(ask("quarterly", true), m(vec![bounce], vec![]));
        assert_eq!(ask("nowhere at all", true), m(vec![], vec![]));
        for needle in [
            "\u{130}stanbul",
            "i\u{307}stanbul",
            "gro\u{df}e",
            "GRO\u{1e9e}E",
            "\"quoted\"",
        ] {
            let scan = "ISTANBUL \u{130}stanbul GRO\u{1e9e}E \"quoted\" text"
                .to_lowercase()
                .contains(&needle.to_lowercase());
            let expect = if scan { vec![unicode] } else { vec![] };
            assert_eq!(ask(needle, false), m(expect, vec![]), "{needle}");
        }
        assert_eq!(
            ask("alice@example", true),
            m(vec![], vec![plain, bounce, unicode]),
            "Delivered-To: checked"
        );
        assert_eq!(ask("no", false), None, "too short for trigrams");
        let long = format!("{} cafeteria", "x".repeat(MAX_PHRASE));
        assert_eq!(
            ask(&long, false),
            m(vec![], vec![]),
            "narrowed by its start"
        );
        let later = deliver(&s, a.id, "Subject: x\r\n\r\nunrelated\r\n");
        assert_eq!(ask("cafeteria", false), m(vec![plain], vec![later]));
        drop(index);
        drop(s);
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("store.db.search.db{ext}")));
        }
        let s = open();
        let ask = |needle: &str| s.text_matches(inbox, needle, TextScope::Body).unwrap();
        assert_eq!(
            ask("cafeteria"),
            m(vec![], vec![plain, bounce, unicode, later]),
            "rebuilt from scratch"
        );
        let mut index = open_index(&s);
        while s.index_batch(&mut index).unwrap() > 0 {}
        assert_eq!(ask("cafeteria"), m(vec![plain], vec![]));
    }

    /// HEADER with a field the store keeps no values of: the index rules
    /// out messages whose header fields do not hold the text; the rest,
    /// and content no parse may look at (its fields are not in the index),
    /// are to be checked.
    #[test]
    fn header_needles_are_narrowed_never_answered() {
        let (_dir, s, a, inbox) = alice();
        let fancy = deliver(
            &s,
            a.id,
            "X-Mailer: FancyMail 3000\r\nSubject: a\r\n\r\nbody\r\n",
        );
        let plain = deliver(&s, a.id, "Subject: b\r\n\r\nfancymail in the body\r\n");
        let mut nested = String::from("Subject: c\r\nX-Mailer: FancyMail\r\n\r\n");
        for _ in 0..=postamt_wire::meta::MAX_ENCAPSULATIONS {
            nested.push_str("Content-Type: message/rfc822\r\n");
        }
        let hostile = deliver(&s, a.id, &nested);
        let mut index = open_index(&s);
        while s.index_batch(&mut index).unwrap() > 0 {}
        let m = |certain: Vec<Uid>, unsure: Vec<Uid>| Some(TextMatches { certain, unsure });
        let ask = |needle: &str, scope| s.text_matches(inbox, needle, scope).unwrap();
        // (Every message has a Delivered-To prefix here, which holds
        // neither needle.)
        assert_eq!(
            ask("fancymail", TextScope::Header),
            m(vec![], vec![fancy, hostile])
        );
        assert_eq!(ask("nowhere", TextScope::Header), m(vec![], vec![hostile]));
        assert_eq!(
            ask("fancymail", TextScope::Body),
            m(vec![plain], vec![]),
            "unparsed content has no text, as a scan finds"
        );
        assert_eq!(
            ask("alice@", TextScope::Header),
            m(vec![], vec![fancy, plain, hostile]),
            "Delivered-To"
        );
    }

    /// An index of the first format (no positions, unfolded) is dropped
    /// and rebuilt: every content is unindexed again.
    #[test]
    fn an_index_of_the_old_format_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db.search.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE VIRTUAL TABLE fts USING fts5(headers, body, tokenize = 'trigram', detail = 'column');
                 INSERT INTO fts(rowid, headers, body) VALUES (1, 'h', 'Old Text');",
            )
            .unwrap();
        }
        let (c, created) = open(&path).unwrap();
        assert!(created);
        let n: i64 = c
            .query_row("SELECT count(*) FROM fts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        drop(c);
        let (_, created) = open(&path).unwrap();
        assert!(!created, "the new format is kept");
    }

    /// Contents stored without kept header values (before schema 10) get
    /// them in batches, once; contents that have them are left alone.
    #[test]
    fn header_values_are_kept_for_older_contents() {
        let (_dir, s, a, inbox) = alice();
        let old: Vec<Uid> = (0..BATCH + 3)
            .map(|i| {
                let mut d = Delivery::new(
                    format!("Subject: Old {i}\r\nFrom: A <a@example.org>\r\n\r\nx\r\n")
                        .into_bytes(),
                    1,
                    vec![DeliveryTarget::inbox(a.id)],
                );
                d.search_headers = None;
                s.deliver(d).unwrap()[0].uid
            })
            .collect();
        let new = deliver(&s, a.id, "Subject: New\r\n\r\ny\r\n");
        let kept = |u: Uid| {
            s.search_headers(inbox, Uid(0))
                .unwrap()
                .into_iter()
                .find(|(x, _)| *x == u)
                .unwrap()
                .1
        };
        assert_eq!(kept(old[0]), None);
        let first = s.backfill_search_headers(0).unwrap().unwrap();
        let second = s.backfill_search_headers(first).unwrap().unwrap();
        assert!(second > first);
        assert_eq!(s.backfill_search_headers(second).unwrap(), None);
        let h = kept(old[BATCH + 2]).unwrap();
        assert_eq!(h.subject, Some(format!("old {}\n", BATCH + 2)));
        assert_eq!(h.from.as_deref(), Some("a <a@example.org>\n"));
        assert_eq!(kept(new).unwrap().subject.as_deref(), Some("new\n"));
        assert_eq!(s.backfill_search_headers(0).unwrap(), None, "all kept");
    }

    /// Rows of expunged content are pruned; content kept is not touched,
    /// and a content id given again before the prune is checked by
    /// reading, never answered from the earlier content's row.
    #[test]
    fn rows_of_removed_content_are_pruned() {
        let (_dir, s, a, inbox) = alice();
        let keep = deliver(&s, a.id, "Subject: a\r\n\r\nkeep this text\r\n");
        let drop_ = deliver(&s, a.id, "Subject: b\r\n\r\ndrop this text\r\n");
        let mut index = open_index(&s);
        while s.index_batch(&mut index).unwrap() > 0 {}
        s.expunge(inbox, &[drop_]).unwrap();
        // The next content may take the freed id.
        let again = deliver(&s, a.id, "Subject: c\r\n\r\nsomething else\r\n");
        let m = |certain: Vec<Uid>, unsure: Vec<Uid>| Some(TextMatches { certain, unsure });
        assert_eq!(
            s.text_matches(inbox, "drop this", TextScope::Body).unwrap(),
            m(vec![], vec![again])
        );
        assert_eq!(s.prune_index(&mut index).unwrap(), 0, "the id is in use");
        while s.index_batch(&mut index).unwrap() > 0 {}
        assert_eq!(
            s.text_matches(inbox, "drop this", TextScope::Body).unwrap(),
            m(vec![], vec![])
        );
        assert_eq!(
            s.text_matches(inbox, "something", TextScope::Body).unwrap(),
            m(vec![again], vec![])
        );
        s.expunge(inbox, &[again]).unwrap();
        assert_eq!(s.prune_index(&mut index).unwrap(), 1);
        assert_eq!(s.prune_index(&mut index).unwrap(), 0);
        assert_eq!(
            s.text_matches(inbox, "keep this", TextScope::Body).unwrap(),
            m(vec![keep], vec![])
        );
    }

    /// A store in a temporary directory with alice and her INBOX.
    fn alice() -> (
        tempfile::TempDir,
        SqliteStore,
        crate::Account,
        crate::MailboxId,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(SqliteOptions::new(dir.path().join("store.db"))).unwrap();
        s.add_domain("example.org").unwrap();
        let a = s.create_account("alice@example.org", "pw").unwrap();
        let inbox = s.mailbox(a.id, "INBOX").unwrap().unwrap().id;
        (dir, s, a, inbox)
    }

    fn open_index(s: &SqliteStore) -> Connection {
        open(&s.search_path).unwrap().0
    }

    #[test]
    fn phrase_queries() {
        assert_eq!(fts_query("ab", TextScope::Body), None);
        assert_eq!(fts_query("aB\0c", TextScope::Body), None);
        assert_eq!(
            fts_query("ABcd", TextScope::Body).unwrap(),
            ("body : \"abcd\"".to_string(), true)
        );
        assert_eq!(
            fts_query("a\"bc", TextScope::Text).unwrap(),
            ("\"a\"\"bc\"".to_string(), true)
        );
        assert_eq!(
            fts_query("ÄÖÜß", TextScope::Text).unwrap(),
            ("\"äöüß\"".to_string(), true)
        );
        assert_eq!(
            fts_query("Mailer", TextScope::Header).unwrap(),
            ("headers : \"mailer\"".to_string(), false),
            "HEADER: candidates only"
        );
        assert_eq!(fts_query("a\r\nb: c", TextScope::Header), None);
        let long = "x".repeat(MAX_PHRASE + 1);
        let (q, exact) = fts_query(&long, TextScope::Text).unwrap();
        assert!(!exact);
        assert_eq!(q.len(), MAX_PHRASE + 2);
    }
}
