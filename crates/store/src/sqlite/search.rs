//! The full-text index of IMAP SEARCH BODY and TEXT: SQLite FTS5 with the
//! trigram tokenizer, over the text `postamt_wire::search::extract` gives
//! (what a scan would look at), one row per content (rowid = blob id).
//!
//! **Why trigrams.** IMAP SEARCH matches substrings, case-insensitively
//! (RFC 9051 §6.4.4): `SEARCH BODY "ort"` finds "report". Word tokenizers
//! find words; the trigram tokenizer finds every substring of three
//! characters or more. The index only narrows: a query is the AND of the
//! needle's trigrams (a superset of the matches, `detail=column` keeps the
//! index small and still allows BODY to look at the body column alone),
//! and the session checks every candidate exactly, as a scan would. A
//! needle shorter than three characters cannot use it: such a search
//! scans.
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
//! Expunged content leaves its row in the index until the blob id is used
//! again (then it is replaced): a stale row matches no message.

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::{SqliteStore, backend};
use crate::Result;

/// The index file beside the store file `db`.
pub(super) fn path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".search.db");
    db.with_file_name(name)
}

/// Opens (creating) the index at `path`; `true` when it had to be created
/// (then nothing in it matches the `indexed` marks of the store).
pub(super) fn open(path: &Path) -> Result<(Connection, bool)> {
    let created = !path.exists();
    let c = Connection::open(path).map_err(backend)?;
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;
         CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
             headers, body, tokenize = 'trigram', detail = 'column'
         );",
    )
    .map_err(backend)?;
    Ok((c, created))
}

/// Contents indexed per batch (one transaction in the index, one mark in
/// the store).
const BATCH: usize = 64;

/// The FTS5 query for `needle`: its trigrams, ANDed (a superset of the
/// messages containing it), in `body` alone unless `headers_too`. `None`
/// for a needle too short for trigrams.
pub(super) fn fts_query(needle: &str, headers_too: bool) -> Option<String> {
    let chars: Vec<char> = needle.chars().collect();
    if chars.len() < 3 {
        return None;
    }
    let mut grams: Vec<String> = chars
        .windows(3)
        .map(|w| w.iter().collect::<String>())
        .collect();
    grams.sort();
    grams.dedup();
    // A long needle: a spread of its trigrams narrows as well as all.
    if grams.len() > 24 {
        let step = grams.len() / 24;
        grams = grams.into_iter().step_by(step.max(1)).take(24).collect();
    }
    let terms: Vec<String> = grams
        .iter()
        .map(|g| format!("\"{}\"", g.replace('"', "\"\"")))
        .collect();
    let q = terms.join(" AND ");
    Some(if headers_too {
        q
    } else {
        format!("body : ({q})")
    })
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

    /// Indexes up to one batch of unindexed content; how many it did.
    pub(super) fn index_batch(&self, index: &mut Connection) -> Result<usize> {
        let rows: Vec<(i64, Vec<u8>, Option<String>)> = self.read(|c| {
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
        let mut ids = Vec::with_capacity(rows.len());
        let tx = index.transaction().map_err(backend)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO fts(rowid, headers, body) VALUES (?1, ?2, ?3)",
                )
                .map_err(backend)?;
            for (id, mut content, file) in rows {
                if let Some(f) = file
                    && self.files.read_into(&f, &mut content).is_err()
                {
                    // Gone meanwhile (expunged): nothing to index.
                    content.clear();
                }
                let text = postamt_wire::search::extract(&content);
                insert
                    .execute(params![id, text.headers, text.body])
                    .map_err(backend)?;
                ids.push(id);
            }
        }
        tx.commit().map_err(backend)?;
        let n = ids.len();
        self.write(move |c| {
            let mut mark = c
                .prepare_cached("UPDATE blobs SET indexed = 1 WHERE id = ?1")
                .map_err(backend)?;
            for id in ids {
                mark.execute([id]).map_err(backend)?;
            }
            Ok(((), Vec::new()))
        })?;
        Ok(n)
    }
}

/// How long deliveries must pause before the indexer works (unless the
/// backlog has grown past [`MAX_DEFERRED`]).
const QUIET: Duration = Duration::from_millis(100);
/// Unindexed contents the indexer lets wait for a quiet moment.
const MAX_DEFERRED: usize = 10_000;

/// The indexer: batches while there is work, a look every quarter second
/// when there is none; at nice 19, and out of the way of a burst of
/// deliveries (it waits for a tenth of a second without new messages,
/// unless more than [`MAX_DEFERRED`] contents wait), so deliveries and
/// sessions come first on a busy machine.
fn indexer(store: Weak<SqliteStore>, path: &Path) {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
    let Ok((mut index, _)) = open(path) else {
        tracing::warn!(path = %path.display(), "cannot open the search index; searches scan");
        return;
    };
    let mut feed = match store.upgrade() {
        Some(s) => s.changes.subscribe(),
        None => return,
    };
    let mut deferred = 0usize;
    loop {
        // New messages since the last look: a burst is going on.
        let mut added = 0usize;
        loop {
            match feed.try_recv() {
                Ok(crate::Change::MessageAdded { .. }) => added += 1,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => added += n as usize,
                Err(_) => break,
            }
        }
        deferred += added;
        if added > 0 && deferred < MAX_DEFERRED {
            std::thread::sleep(QUIET);
            continue;
        }
        deferred = 0;
        let Some(s) = store.upgrade() else { return };
        let done = match s.index_batch(&mut index) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Delivery, DeliveryTarget, Directory, Mailboxes, Messages, SqliteOptions, Uid};

    fn deliver(s: &SqliteStore, account: crate::AccountId, content: &str) -> Uid {
        let target = DeliveryTarget {
            prefix: b"Delivered-To: alice@example.org\r\n".to_vec(),
            ..DeliveryTarget::inbox(account)
        };
        s.deliver(Delivery::new(content.as_bytes().to_vec(), 1, vec![target]))
            .unwrap()[0]
            .uid
    }

    /// The index narrows BODY and TEXT to the messages that may match:
    /// exactly those after indexing (text attachments and encapsulated
    /// messages included, the delivery's own fields for TEXT), every
    /// message that is not indexed yet, nothing for a needle too short
    /// (the caller scans). A lost index file makes every content
    /// unindexed again, and indexing makes the answers exact again.
    #[test]
    fn index_narrows_and_is_rebuilt_when_lost() {
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
        let cands = |needle: &str, text: bool| s.text_candidates(inbox, needle, text).unwrap();
        // Not indexed yet: everything is a candidate.
        assert_eq!(cands("cafeteria", false), Some(vec![plain, bounce]));
        let mut index = open_index(&s);
        while s.index_batch(&mut index).unwrap() > 0 {}
        assert_eq!(cands("CAFETERIA", false), Some(vec![plain]));
        assert_eq!(cands("returned text", false), Some(vec![bounce]));
        assert_eq!(
            cands("quarterly", false),
            Some(vec![]),
            "a header is not BODY"
        );
        assert_eq!(cands("quarterly", true), Some(vec![bounce]));
        assert_eq!(cands("nowhere at all", true), Some(vec![]));
        assert_eq!(
            cands("alice@example", true),
            Some(vec![plain, bounce]),
            "Delivered-To"
        );
        assert_eq!(cands("no", false), None, "too short for trigrams");
        let later = deliver(&s, a.id, "Subject: x\r\n\r\nunrelated\r\n");
        assert_eq!(cands("cafeteria", false), Some(vec![plain, later]));
        drop(index);
        drop(s);
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("store.db.search.db{ext}")));
        }
        let s = open();
        let cands = |needle: &str| s.text_candidates(inbox, needle, false).unwrap();
        assert_eq!(
            cands("cafeteria"),
            Some(vec![plain, bounce, later]),
            "rebuilt from scratch"
        );
        let mut index = open_index(&s);
        while s.index_batch(&mut index).unwrap() > 0 {}
        assert_eq!(cands("cafeteria"), Some(vec![plain]));
    }

    fn open_index(s: &SqliteStore) -> Connection {
        open(&s.search_path).unwrap().0
    }

    #[test]
    fn trigram_queries() {
        assert_eq!(fts_query("ab", false), None);
        assert_eq!(
            fts_query("abcd", false).unwrap(),
            "body : (\"abc\" AND \"bcd\")"
        );
        assert_eq!(
            fts_query("a\"bc", true).unwrap(),
            "\"\"\"bc\" AND \"a\"\"b\""
        );
        assert_eq!(fts_query("äöüß", true).unwrap(), "\"äöü\" AND \"öüß\"");
        let long = "x".repeat(10) + &"abcdefghijklmnopqrstuvwxyz".repeat(4);
        let q = fts_query(&long, true).unwrap();
        assert!(q.matches(" AND ").count() < 24, "{q}");
    }
}
