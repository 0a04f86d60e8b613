//! The SQLite backend: one file, WAL journal, `synchronous=FULL`.
//!
//! **Durability and group commit.** Every write is a job sent to one writer
//! thread. The writer takes all jobs that are waiting (up to `max_batch`),
//! runs each inside its own SAVEPOINT (a failing job rolls back alone) and
//! commits them in one transaction: one fsync for the whole batch. Only
//! after the commit returned are the callers answered and the change feed
//! fed. So a caller that got `Ok` holds a durable result, and concurrent
//! deliveries share fsyncs instead of queueing behind them.
//!
//! Reads use a small pool of read-only connections; WAL lets them run beside
//! the writer and they only ever see committed data.
//!
//! **Layout**, one file per store trait so that another backend can mirror
//! it file for file:
//! - `mod.rs`: [`SqliteStore`], [`SqliteOptions`], `open`, the read pool;
//! - `writer.rs`: the group-commit writer thread (`write`, `submit`), and
//!   what it publishes after a commit;
//! - `directory.rs`, `mailboxes.rs`, `messages.rs`, `queue.rs`,
//!   `coordination.rs`: the implementations of [`crate::Directory`],
//!   [`crate::Mailboxes`], [`crate::Messages`], [`crate::Queue`] and
//!   [`crate::Coordination`], each with the in-transaction helpers of its
//!   tables;
//! - `rows.rs`: rows to domain types and back;
//! - `schema.rs`: the migrations; `files.rs`: large content in pack files.

mod coordination;
mod directory;
mod files;
mod mailboxes;
mod messages;
mod queue;
mod reports;
mod rows;
mod schema;
mod search;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tokio::sync::broadcast;

use crate::model::*;
use crate::signals::Signals;
use crate::{Result, StoreError};
use files::BlobFiles;
use schema::migrate;
use writer::{Job, Publish, empty_trash, writer_loop};

/// Tuning of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    /// Most jobs committed together in one transaction.
    pub max_batch: usize,
    /// How long a write waits for another process's lock (e.g. `postamt
    /// deliver` beside a running server).
    pub busy_timeout: Duration,
    /// Message content of at least this many bytes is stored in a file
    /// beside the database instead of inside it (see `files.rs`).
    pub file_min_size: usize,
    /// Such content is appended to pack files of up to this many bytes
    /// (one `fdatasync` for concurrent writers, no inode per message); 0: a
    /// file per content (see `files.rs`).
    pub pack_size: u64,
    /// Where those files live; default: `blobs/` next to the database file.
    pub blob_dir: Option<PathBuf>,
    /// How often to look for commits by other processes (`postamt
    /// deliver` beside the server) and announce them as
    /// [`Change::External`]; `None`: never (admin commands).
    pub external_poll: Option<Duration>,
}

impl SqliteOptions {
    pub fn new(path: impl Into<PathBuf>) -> SqliteOptions {
        SqliteOptions {
            path: path.into(),
            max_batch: 512,
            busy_timeout: Duration::from_secs(10),
            file_min_size: 64 * 1024,
            pack_size: 256 * 1024 * 1024,
            blob_dir: None,
            external_poll: None,
        }
    }
}

pub struct SqliteStore {
    path: PathBuf,
    /// The full-text index beside the store (search.rs).
    search_path: PathBuf,
    busy_timeout: Duration,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    changes: broadcast::Sender<Change>,
    signals: Arc<Signals>,
    locks: Arc<Mutex<HashSet<AccountId>>>,
    files: Arc<BlobFiles>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `options.path` and applies
    /// pending migrations.
    pub fn open(options: SqliteOptions) -> Result<SqliteStore> {
        if let Some(dir) = options.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let mut conn = connect(&options.path, options.busy_timeout)?;
        // Every statement the writer runs stays prepared (the default
        // cache of 16 is smaller than what one delivery uses).
        conn.set_prepared_statement_cache_capacity(256);
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;",
        )
        .map_err(backend)?;
        migrate(&mut conn)?;
        // A new (or lost) index file: every content is indexed again, in
        // the background (search.rs).
        let search_path = search::path(&options.path);
        let (_, created) = search::open(&search_path)?;
        if created {
            conn.execute("UPDATE blobs SET indexed = 0 WHERE indexed != 0", [])
                .map_err(backend)?;
        }
        let blob_dir = options.blob_dir.clone().unwrap_or_else(|| {
            options
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .join("blobs")
        });
        let files = Arc::new(
            BlobFiles::open(blob_dir, options.file_min_size, options.pack_size).map_err(backend)?,
        );
        empty_trash(&conn, &files)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (changes, _) = broadcast::channel(4096);
        let feed = changes.clone();
        let max_batch = options.max_batch.max(1);
        let writer_files = Arc::clone(&files);
        let poll = options.external_poll;
        let signals = Arc::new(Signals::default());
        let writer_signals = Arc::clone(&signals);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let publish = Publish {
                    feed,
                    signals: writer_signals,
                };
                writer_loop(conn, rx, publish, max_batch, &writer_files, poll)
            })
            .map_err(backend)?;
        Ok(SqliteStore {
            path: options.path,
            search_path,
            busy_timeout: options.busy_timeout,
            jobs: Some(tx),
            writer: Some(writer),
            readers: Mutex::new(Vec::new()),
            changes,
            signals,
            locks: Arc::new(Mutex::new(HashSet::new())),
            files,
        })
    }

    /// Removes content files that no message references and that are older
    /// than an hour (left by a crash between writing a file and committing
    /// its row). The server runs this at start; returns how many went.
    pub fn sweep_orphan_files(&self) -> Result<usize> {
        let referenced: HashSet<String> = self.read(|c| {
            let mut s = c
                .prepare("SELECT file FROM blobs WHERE file IS NOT NULL")
                .map_err(backend)?;
            s.query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })?;
        self.files
            .sweep(&referenced, Duration::from_secs(3600))
            .map_err(backend)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A read-only connection of its own (`store migrate` reads the whole
    /// store in one transaction on it).
    pub(crate) fn export_connection(&self) -> Result<Connection> {
        let c = connect(&self.path, self.busy_timeout)?;
        c.execute_batch("PRAGMA query_only=1;").map_err(backend)?;
        Ok(c)
    }

    /// Appends the content kept in the file or pack range `name` (a
    /// `blobs.file`) to `into`.
    pub(crate) fn read_blob_file(&self, name: &str, into: &mut Vec<u8>) -> Result<()> {
        self.files
            .read_into(name, into)
            .map_err(|e| backend(format!("message file {name}: {e}")))
    }

    /// Runs `f` on a pooled read-only connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().map_err(backend)?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = connect(&self.path, self.busy_timeout)?;
                // The full-text index, for SEARCH BODY/TEXT (search.rs).
                c.execute(
                    "ATTACH DATABASE ?1 AS s",
                    [self.search_path.to_string_lossy()],
                )
                .map_err(backend)?;
                // Reads through a memory map of the database file: content
                // is copied once (by SQLite, out of the page cache) instead
                // of twice (into SQLite's page buffers first); FETCH of
                // 4 KB bodies went from 150-170k to 185-250k messages/s.
                // SQLite's caveat is a truncated file under the map (SIGBUS):
                // the store never shrinks its file (no VACUUM).
                c.execute_batch("PRAGMA query_only=1; PRAGMA mmap_size=1073741824;")
                    .map_err(backend)?;
                c.set_prepared_statement_cache_capacity(128);
                c
            }
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < 16
        {
            pool.push(conn);
        }
        result
    }
}

/// A connection to the store's database, as every connection of the store
/// is set up.
///
/// The query planner stability guarantee is on (`SQLITE_DBCONFIG_ENABLE_QPSG`):
/// without it, SQLite compiles a statement with a join (content, metadata,
/// envelopes: messages joined with blobs) again every time it is run with a
/// new UID, "as if there had been a schema change", because the plan might
/// depend on the value — 27–31 % of the POP3 server's CPU went into
/// re-preparing the RETR read (bench/README.md, "After the restructuring").
/// The store has no statistics (`ANALYZE` never runs), so a bound value
/// could not change the plan anyway.
fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let c = Connection::open(path).map_err(backend)?;
    c.busy_timeout(busy_timeout).map_err(backend)?;
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(backend)?;
    Ok(c)
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Directory, Mailboxes, Messages};
    use rusqlite::StatementStatus;

    /// A join run with one UID after another is compiled once: with the
    /// default planner, every new binding recompiled it (the POP3 RETR
    /// read spent 27–31 % of the server's CPU doing that).
    #[test]
    fn a_statement_with_a_join_is_not_recompiled_for_each_uid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(SqliteOptions::new(&path)).unwrap();
        store.add_domain("example.org").unwrap();
        let a = store.create_account("a@example.org", "pw").unwrap();
        for i in 0..3 {
            let d = Delivery::new(
                format!("Subject: {i}\r\n\r\nbody\r\n").into_bytes(),
                1,
                vec![DeliveryTarget::inbox(a.id)],
            );
            store.deliver(d).unwrap();
        }
        let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
        let c = connect(&path, Duration::from_secs(1)).unwrap();
        let sql = "SELECT m.uid, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id
                   WHERE m.mailbox_id = ?1 AND m.uid = ?2";
        for uid in 1..=3u32 {
            let mut s = c.prepare_cached(sql).unwrap();
            let got: u32 = s
                .query_row(rusqlite::params![inbox.id.0, uid], |r| r.get(0))
                .unwrap();
            assert_eq!(got, uid);
        }
        let s = c.prepare_cached(sql).unwrap();
        assert_eq!(s.get_status(StatementStatus::RePrepare), 0);
    }
}
