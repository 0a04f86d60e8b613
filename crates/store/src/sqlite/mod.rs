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

mod files;
mod schema;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::broadcast;

use crate::meta::{BodyPart, MessageMeta};
use crate::model::*;
use crate::{
    Coordination, Directory, Mailboxes, Messages, Queue, Result, StoreError,
    canonical_mailbox_name, check_mailbox_name, normalize_address, password,
};
use files::BlobFiles;

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

type Reply = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// What running a job left: whether to keep its work, what to announce, and
/// how to answer its caller once the batch is committed (or not).
struct Completion {
    ok: bool,
    changes: Vec<Change>,
    /// Content the job appended to packs: synced before the batch commits.
    unsynced: Vec<files::Unsynced>,
    reply: Reply,
}

/// Content appended to packs for a job: synced before its batch commits,
/// removed again if the job or the commit fails.
#[derive(Default)]
struct Appended {
    names: Vec<String>,
    unsynced: Vec<files::Unsynced>,
}

/// A write job. `Err` means the batch could not even begin.
type Job = Box<dyn FnOnce(std::result::Result<&Connection, String>) -> Completion + Send>;

/// The per-account signals of [`Coordination::watch_account`]: a `watch`
/// channel per account that someone watches (dropped again once nobody
/// does), bumped by the writer after each commit, and how many times
/// another process's commits were seen (a new channel starts there).
#[derive(Default)]
struct Signals(
    Mutex<(
        std::collections::HashMap<AccountId, tokio::sync::watch::Sender<AccountSignal>>,
        u64,
    )>,
);

impl Signals {
    fn subscribe(&self, account: AccountId) -> tokio::sync::watch::Receiver<AccountSignal> {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, external) = &mut *guard;
        map.entry(account)
            .or_insert_with(|| {
                tokio::sync::watch::channel(AccountSignal {
                    changes: 0,
                    external: *external,
                })
                .0
            })
            .subscribe()
    }

    /// After a commit: one bump per account the batch changed.
    fn changed(&self, accounts: &HashSet<AccountId>) {
        if accounts.is_empty() {
            return;
        }
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, _) = &mut *guard;
        for a in accounts {
            if let Some(tx) = map.get(a) {
                if tx.receiver_count() == 0 {
                    map.remove(a);
                } else {
                    tx.send_modify(|s| s.changes += 1);
                }
            }
        }
    }

    /// Another process committed: every watcher re-reads.
    fn external(&self) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, external) = &mut *guard;
        *external += 1;
        map.retain(|_, tx| tx.receiver_count() > 0);
        for tx in map.values() {
            tx.send_modify(|s| s.external += 1);
        }
    }
}

pub struct SqliteStore {
    path: PathBuf,
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
        let mut conn = Connection::open(&options.path).map_err(backend)?;
        conn.busy_timeout(options.busy_timeout).map_err(backend)?;
        // Every statement the writer runs stays prepared (the default
        // cache of 16 is smaller than what one delivery uses).
        conn.set_prepared_statement_cache_capacity(256);
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;",
        )
        .map_err(backend)?;
        migrate(&mut conn)?;
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

    fn message_exists(&self, mailbox: MailboxId, uid: Uid) -> Result<bool> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM messages WHERE mailbox_id = ?1 AND uid = ?2")
                .and_then(|mut s| s.exists(params![mailbox.0, uid.0]))
                .map_err(backend)
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

    /// Runs `f` on the writer thread in the next group commit and returns
    /// its value once the commit is durable.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<(T, Vec<Change>)> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel::<Result<T>>(1);
        self.submit(Appended::default(), f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv().map_err(|_| backend("store writer stopped"))?
    }

    /// Queues a job for the writer: `f` runs in the next group commit;
    /// content already appended to packs for it (`appended`) is synced
    /// before that commit and removed again if the job or the commit fails;
    /// `reply` gets the value once the commit is durable, or the error.
    fn submit<T: Send + 'static>(
        &self,
        appended: Appended,
        f: impl FnOnce(&Connection) -> Result<(T, Vec<Change>)> + Send + 'static,
        reply: impl FnOnce(Result<T>) + Send + 'static,
    ) -> Result<()> {
        let files = Arc::clone(&self.files);
        let job: Job = Box::new(move |conn| {
            let outcome = conn.map_err(StoreError::Backend).and_then(f);
            match outcome {
                Ok((value, changes)) => Completion {
                    ok: true,
                    changes,
                    unsynced: appended.unsynced,
                    reply: Box::new(move |committed| {
                        if committed.is_err() {
                            appended.names.iter().for_each(|n| files.remove(n));
                        }
                        reply(committed.map(|()| value).map_err(StoreError::Backend));
                    }),
                },
                Err(e) => {
                    appended.names.iter().for_each(|n| files.remove(n));
                    Completion {
                        ok: false,
                        changes: Vec::new(),
                        unsynced: Vec::new(),
                        reply: Box::new(move |_| reply(Err(e))),
                    }
                }
            }
        });
        let sender = self.jobs.as_ref().ok_or_else(|| backend("store closed"))?;
        sender
            .send(job)
            .map_err(|_| backend("store writer stopped"))
    }

    /// Runs `f` on a pooled read-only connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().map_err(backend)?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.path).map_err(backend)?;
                c.busy_timeout(self.busy_timeout).map_err(backend)?;
                c.execute_batch("PRAGMA query_only=1;").map_err(backend)?;
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

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    let version = version.max(0) as usize;
    if version > schema::MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "store schema version {version} is newer than this postamt ({})",
            schema::MIGRATIONS.len()
        )));
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    Ok(())
}

/// Unlinks the files listed in `blob_trash` (committed deletions whose
/// files a crash left behind) and empties it.
fn empty_trash(conn: &Connection, files: &BlobFiles) -> Result<()> {
    for name in trash(conn)? {
        files.remove(&name);
    }
    conn.execute("DELETE FROM blob_trash", [])
        .map_err(backend)?;
    Ok(())
}

fn trash(conn: &Connection) -> Result<Vec<String>> {
    let mut s = conn
        .prepare_cached("SELECT file FROM blob_trash")
        .map_err(backend)?;
    s.query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(backend)
}

/// Runs a statement without parameters through the statement cache: the
/// writer runs BEGIN, SAVEPOINT, RELEASE and COMMIT for every batch and job,
/// and parsing them each time was 5 % of the SMTP server's CPU.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
}

/// Appends `content` to a pack on the calling thread. Content of a
/// mebibyte or more is copied under `block_in_place` on a multi-threaded
/// runtime, so the other tasks of this worker move on meanwhile.
fn append_here(
    files: &BlobFiles,
    content: &[u8],
) -> Option<std::io::Result<(String, files::Unsynced)>> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let big = content.len() >= 1 << 20;
    match Handle::try_current() {
        Ok(h) if big && h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| files.append(content))
        }
        _ => files.append(content),
    }
}

/// Where the writer announces committed changes: the change feed, and the
/// signals of the accounts concerned.
struct Publish {
    feed: broadcast::Sender<Change>,
    signals: Arc<Signals>,
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    publish: Publish,
    max_batch: usize,
    files: &BlobFiles,
    poll: Option<Duration>,
) {
    // Trash rows whose files were unlinked after the last commit; deleted in
    // the next transaction (a crash in between only repeats the unlink).
    let mut unlinked: Vec<String> = Vec::new();
    // `PRAGMA data_version` on this connection changes only when another
    // connection commits, and every other connection of this process only
    // reads: so a change means another process wrote (SQLite §pragma
    // data_version).
    let data_version = |c: &Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap_or(0)
    };
    let mut seen_version = data_version(&conn);
    let mut last_poll = std::time::Instant::now();
    loop {
        let first = match poll {
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => break,
            },
            Some(every) => {
                if last_poll.elapsed() >= every {
                    last_poll = std::time::Instant::now();
                    let v = data_version(&conn);
                    if v != seen_version {
                        seen_version = v;
                        let _ = publish.feed.send(Change::External);
                        publish.signals.external();
                    }
                }
                match rx.recv_timeout(every) {
                    Ok(j) => j,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = exec_cached(&conn, "BEGIN IMMEDIATE") {
            for job in batch {
                let c = job(Err(format!("begin: {e}")));
                (c.reply)(Err(format!("begin: {e}")));
            }
            continue;
        }
        if !unlinked.is_empty() {
            let _ = conn.execute_batch("SAVEPOINT trash");
            let cleared = conn
                .prepare_cached("DELETE FROM blob_trash WHERE file = ?1")
                .and_then(|mut s| unlinked.iter().try_for_each(|f| s.execute([f]).map(drop)));
            let end = match cleared {
                Ok(()) => "RELEASE trash",
                Err(_) => "ROLLBACK TO trash; RELEASE trash",
            };
            let _ = conn.execute_batch(end);
        }
        let mut done = Vec::with_capacity(batch.len());
        for job in batch {
            let _ = exec_cached(&conn, "SAVEPOINT job");
            let c = job(Ok(&conn));
            let end = if c.ok {
                exec_cached(&conn, "RELEASE job")
            } else {
                exec_cached(&conn, "ROLLBACK TO job")
                    .and_then(|()| exec_cached(&conn, "RELEASE job"))
            };
            if let Err(e) = end {
                tracing::error!(error = %e, "savepoint end failed");
            }
            done.push(c);
        }
        // Content appended to packs by this batch's jobs is made durable
        // first (one fdatasync per pack): a committed row never names
        // content that is not on disk.
        let synced = done
            .iter()
            .filter(|c| c.ok)
            .flat_map(|c| &c.unsynced)
            .try_for_each(files::Unsynced::sync);
        let committed = match synced {
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                tracing::error!(error = %e, "message content sync failed");
                Err(format!("content sync: {e}"))
            }
            Ok(()) => exec_cached(&conn, "COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                tracing::error!(error = %e, "store commit failed");
                format!("commit: {e}")
            }),
        };
        if committed.is_ok() {
            // The rows are gone for good: now the files may go too.
            unlinked = trash(&conn).unwrap_or_default();
            for name in &unlinked {
                files.remove(name);
            }
        }
        // Announced before the callers are answered: a session that just
        // changed its own mailbox sees the change at its next sync.
        let mut touched = HashSet::new();
        for c in &mut done {
            if committed.is_ok() && c.ok {
                for change in std::mem::take(&mut c.changes) {
                    touched.extend(change.account());
                    let _ = publish.feed.send(change);
                }
            }
        }
        publish.signals.changed(&touched);
        for c in done {
            (c.reply)(committed.clone());
        }
    }
}

// --- row helpers -------------------------------------------------------------

/// Sorted, deduplicated UIDs and the ranges that cover them (a gap of up
/// to 64 UIDs is read through rather than starting another query).
fn uid_ranges(uids: &[Uid]) -> (Vec<Uid>, Vec<(u32, u32)>) {
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
    (uids, ranges)
}

/// Stored metadata, with offsets moved past the message's own prefix.
fn meta_with_prefix(prefix_len: i64, json: &str) -> Result<MessageMeta> {
    let mut meta: MessageMeta = serde_json::from_str(json).map_err(backend)?;
    meta.header_len += prefix_len as u64;
    shift(&mut meta.body, prefix_len as u64);
    // The top-level header block starts at 0 and includes the prefix.
    meta.body.header_start = 0;
    Ok(meta)
}

fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageSummary> {
    Ok(MessageSummary {
        uid: Uid(r.get::<_, i64>(0)? as u32),
        modseq: ModSeq(r.get::<_, i64>(1)? as u64),
        flags: Flags::from_bits(r.get(2)?),
        keywords: keywords_vec(r.get_ref(3)?.as_str().unwrap_or("")),
        internaldate: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
    })
}

fn account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: AccountId(r.get(0)?),
        address: r.get(1)?,
        quota_bytes: r.get::<_, Option<i64>>(2)?.map(|q| q as u64),
        used_bytes: r.get::<_, i64>(3)? as u64,
    })
}

const ACCOUNT_COLS: &str = "id, address, quota_bytes, used_bytes";
const MAILBOX_COLS: &str = "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use";

fn special_use_name(u: SpecialUse) -> &'static str {
    &u.attribute()[1..]
}

fn mailbox_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Mailbox> {
    let special: Option<String> = r.get(6)?;
    Ok(Mailbox {
        id: MailboxId(r.get(0)?),
        account: AccountId(r.get(1)?),
        name: r.get(2)?,
        uidvalidity: UidValidity(r.get::<_, i64>(3)? as u32),
        uidnext: Uid(r.get::<_, i64>(4)? as u32),
        highestmodseq: ModSeq(r.get::<_, i64>(5)? as u64),
        special_use: special.and_then(|s| SpecialUse::from_attribute(&format!("\\{s}"))),
    })
}

fn find_account(conn: &Connection, address: &str) -> Result<Option<Account>> {
    conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLS} FROM accounts WHERE address = ?1"
    ))
    .and_then(|mut s| s.query_row([address], account_from_row).optional())
    .map_err(backend)
}

fn find_mailbox(conn: &Connection, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = ?1 AND name = ?2"
    ))
    .and_then(|mut s| {
        s.query_row(params![account.0, name], mailbox_from_row)
            .optional()
    })
    .map_err(backend)
}

fn mailbox_by_id(conn: &Connection, id: MailboxId) -> Result<Mailbox> {
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

fn insert_mailbox(
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
            special_use.map(special_use_name)
        ],
    )
    .map_err(backend)?;
    find_mailbox(conn, account, name)?.ok_or_else(|| backend("mailbox vanished"))
}

/// Takes a new MODSEQ for the mailbox (RFC 7162 §3.1.1: one per command).
fn bump_modseq(conn: &Connection, mailbox: MailboxId) -> Result<ModSeq> {
    conn.prepare_cached(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?1
         RETURNING highestmodseq",
    )
    .and_then(|mut s| s.query_row([mailbox.0], |r| r.get::<_, i64>(0)))
    .map(|m| ModSeq(m as u64))
    .map_err(backend)
}

/// Deletes message rows and drops their blob references; returns the
/// removed UIDs and the bytes freed.
fn remove_messages(conn: &Connection, mailbox: MailboxId, uids: &[Uid]) -> Result<(Vec<Uid>, u64)> {
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

fn all_uids(conn: &Connection, mailbox: MailboxId) -> Result<Vec<Uid>> {
    let mut s = conn
        .prepare_cached("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid")
        .map_err(backend)?;
    s.query_map([mailbox.0], |r| Ok(Uid(r.get::<_, i64>(0)? as u32)))
        .and_then(|rows| rows.collect())
        .map_err(backend)
}

fn add_used(conn: &Connection, account: AccountId, delta: i64) -> Result<()> {
    conn.prepare_cached("UPDATE accounts SET used_bytes = MAX(0, used_bytes + ?2) WHERE id = ?1")
        .and_then(|mut s| s.execute(params![account.0, delta]))
        .map(|_| ())
        .map_err(backend)
}

/// Removes a mailbox with all its messages (no expunge log: the mailbox and
/// its UIDVALIDITY are gone).
fn drop_mailbox(conn: &Connection, mailbox: &Mailbox) -> Result<()> {
    let uids = all_uids(conn, mailbox.id)?;
    let (_, freed) = remove_messages(conn, mailbox.id, &uids)?;
    add_used(conn, mailbox.account, -(freed as i64))?;
    conn.execute("DELETE FROM expunged WHERE mailbox_id = ?1", [mailbox.id.0])
        .map_err(backend)?;
    conn.execute("DELETE FROM mailboxes WHERE id = ?1", [mailbox.id.0])
        .map_err(backend)?;
    Ok(())
}

fn keywords_text(k: &[String]) -> String {
    k.join(" ")
}

fn keywords_vec(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// Appends one message row into `mailbox`, taking the next UID and MODSEQ.
#[allow(clippy::too_many_arguments)]
fn append_row(
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

fn shift(part: &mut BodyPart, by: u64) {
    part.header_start += by;
    part.body_start += by;
    part.body_end += by;
    for p in &mut part.parts {
        shift(p, by);
    }
    if let Some(m) = &mut part.message {
        shift(&mut m.1, by);
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

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

fn check_local_domain(conn: &Connection, domain: &str) -> Result<()> {
    let found: Option<String> = conn
        .query_row("SELECT name FROM domains WHERE name = ?1", [domain], |r| {
            r.get(0)
        })
        .optional()
        .map_err(backend)?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::Invalid(format!("domain {domain} is not local"))),
    }
}

/// Stores one delivery inside the current transaction (see `Store::deliver`).
type AcceptArgs = (
    Option<Delivery>,
    Option<String>,
    Option<Outbound>,
    Option<String>,
);

/// A delivery with targets and its metadata as JSON, and the outbound
/// message with its envelope as JSON.
fn accept_args(delivery: Option<Delivery>, outbound: Option<Outbound>) -> Result<AcceptArgs> {
    let delivery = delivery.filter(|d| !d.targets.is_empty());
    let meta = match &delivery {
        Some(d) => Some(serde_json::to_string(&d.meta).map_err(backend)?),
        None => None,
    };
    let envelope = match &outbound {
        Some(o) if o.recipients.is_empty() => {
            return Err(StoreError::Invalid("no recipients".into()));
        }
        Some(o) => Some(serde_json::to_string(&o.envelope).map_err(backend)?),
        None => None,
    };
    Ok((delivery, meta, outbound, envelope))
}

/// The transaction of `accept`: the local delivery (its large content
/// already in `file`) and the queue entry.
fn accept_in(
    c: &Connection,
    delivery: Option<Delivery>,
    meta: Option<String>,
    outbound: Option<Outbound>,
    envelope: Option<String>,
    file: Option<&str>,
) -> Result<(Accepted, Vec<Change>)> {
    let (delivered, mut changes) = match (delivery, meta) {
        (Some(d), Some(meta)) => deliver_in(c, d, meta, file)?,
        _ => (Vec::new(), Vec::new()),
    };
    let queued = match (outbound, envelope) {
        (Some(o), Some(e)) => Some(enqueue_in(c, o, e)?),
        _ => None,
    };
    if queued.is_some() {
        changes.push(Change::Queued);
    }
    Ok((Accepted { delivered, queued }, changes))
}

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
    if let Some(envelope) = crate::imapdata::prerendered_envelope(&delivery.meta.envelope) {
        c.prepare_cached("INSERT INTO envelopes(blob_id, envelope) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![blob, envelope]))
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

/// Puts one message into the outbound queue inside the current transaction.
fn enqueue_in(c: &Connection, message: Outbound, envelope: String) -> Result<QueueId> {
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

impl Directory for SqliteStore {
    fn add_domain(&self, name: &str) -> Result<()> {
        let name = name.trim().trim_end_matches('.').to_lowercase();
        if name.is_empty() || name.contains('@') || name.chars().any(char::is_whitespace) {
            return Err(StoreError::Invalid(format!("domain {name:?}")));
        }
        self.write(move |c| {
            c.execute("INSERT OR IGNORE INTO domains(name) VALUES (?1)", [&name])
                .map_err(backend)?;
            Ok(((), vec![]))
        })
    }

    fn remove_domain(&self, name: &str) -> Result<()> {
        let name = name.to_lowercase();
        self.write(move |c| {
            let n = c
                .execute("DELETE FROM domains WHERE name = ?1", [&name])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("domain {name}")));
            }
            Ok(((), vec![]))
        })
    }

    fn domains(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT name FROM domains ORDER BY name")
                .map_err(backend)?;
            s.query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
    }

    fn create_account(&self, address: &str, password: &str) -> Result<Account> {
        let address = normalize_address(address)?;
        let hash = password::hash(password).map_err(backend)?;
        self.write(move |c| {
            check_local_domain(c, domain_of(&address))?;
            if find_account(c, &address)?.is_some() {
                return Err(StoreError::AlreadyExists(format!("account {address}")));
            }
            c.execute(
                "INSERT INTO accounts(address, password_hash, created) VALUES (?1, ?2, ?3)",
                params![address, hash, now()],
            )
            .map_err(backend)?;
            let account = find_account(c, &address)?.ok_or_else(|| backend("account vanished"))?;
            let mut changes = Vec::new();
            let names = std::iter::once(("INBOX", None))
                .chain(SpecialUse::DEFAULTS.iter().map(|(n, u)| (*n, Some(*u))));
            for (name, use_) in names {
                insert_mailbox(c, account.id, name, use_)?;
                c.execute(
                    "INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES (?1, ?2)",
                    params![account.id.0, name],
                )
                .map_err(backend)?;
                changes.push(Change::MailboxCreated {
                    account: account.id,
                    name: name.to_string(),
                });
            }
            Ok((account, changes))
        })
    }

    fn set_password(&self, address: &str, password: &str) -> Result<()> {
        let address = normalize_address(address)?;
        let hash = password::hash(password).map_err(backend)?;
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE accounts SET password_hash = ?2 WHERE address = ?1",
                    params![address, hash],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {address}")));
            }
            Ok(((), vec![]))
        })
    }

    fn delete_account(&self, address: &str) -> Result<()> {
        let address = normalize_address(address)?;
        self.write(move |c| {
            let account = find_account(c, &address)?
                .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
            let mut s = c
                .prepare(&format!(
                    "SELECT {MAILBOX_COLS} FROM mailboxes WHERE account_id = ?1"
                ))
                .map_err(backend)?;
            let boxes: Vec<Mailbox> = s
                .query_map([account.id.0], mailbox_from_row)
                .and_then(|rows| rows.collect())
                .map_err(backend)?;
            let mut changes = Vec::new();
            for m in &boxes {
                drop_mailbox(c, m)?;
                changes.push(Change::MailboxDeleted {
                    account: account.id,
                    name: m.name.clone(),
                });
            }
            c.execute(
                "DELETE FROM subscriptions WHERE account_id = ?1",
                [account.id.0],
            )
            .map_err(backend)?;
            c.execute("DELETE FROM accounts WHERE id = ?1", [account.id.0])
                .map_err(backend)?;
            Ok(((), changes))
        })
    }

    fn accounts(&self) -> Result<Vec<Account>> {
        self.read(|c| {
            let mut s = c
                .prepare(&format!(
                    "SELECT {ACCOUNT_COLS} FROM accounts ORDER BY address"
                ))
                .map_err(backend)?;
            s.query_map([], account_from_row)
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
    }

    fn account(&self, address: &str) -> Result<Option<Account>> {
        let Ok(address) = normalize_address(address) else {
            return Ok(None);
        };
        self.read(|c| find_account(c, &address))
    }

    fn verify_password(&self, address: &str, pw: &str) -> Result<Option<Account>> {
        let address = normalize_address(address).unwrap_or_default();
        let row: Option<(Account, String)> = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {ACCOUNT_COLS}, password_hash FROM accounts WHERE address = ?1"
            ))
            .and_then(|mut s| {
                s.query_row([&address], |r| Ok((account_from_row(r)?, r.get(4)?)))
                    .optional()
            })
            .map_err(backend)
        })?;
        match row {
            Some((account, hash)) => Ok(password::verify(pw, &hash).then_some(account)),
            None => {
                // Same work as for a real account: no user enumeration by timing.
                let _ = password::verify(pw, password::dummy_hash());
                Ok(None)
            }
        }
    }

    fn set_quota(&self, account: AccountId, bytes: Option<u64>) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE accounts SET quota_bytes = ?2 WHERE id = ?1",
                params![account.0, bytes.map(|b| b as i64)],
            )
            .map_err(backend)?;
            Ok(((), vec![]))
        })
    }

    fn add_alias(&self, alias: &str, targets: &[String]) -> Result<()> {
        let alias = alias.trim().to_lowercase();
        let valid = match alias.strip_prefix('@') {
            Some(domain) => !domain.is_empty() && !domain.contains('@'),
            None => normalize_address(&alias).is_ok(),
        };
        if !valid || targets.is_empty() {
            return Err(StoreError::Invalid(format!("alias {alias:?}")));
        }
        let targets = targets
            .iter()
            .map(|t| normalize_address(t))
            .collect::<Result<Vec<_>>>()?;
        self.write(move |c| {
            check_local_domain(c, domain_of(&alias))?;
            for t in &targets {
                c.execute(
                    "INSERT OR IGNORE INTO aliases(alias, target) VALUES (?1, ?2)",
                    params![alias, t],
                )
                .map_err(backend)?;
            }
            Ok(((), vec![]))
        })
    }

    fn remove_alias(&self, alias: &str) -> Result<()> {
        let alias = alias.trim().to_lowercase();
        self.write(move |c| {
            let n = c
                .execute("DELETE FROM aliases WHERE alias = ?1", [&alias])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("alias {alias}")));
            }
            Ok(((), vec![]))
        })
    }

    fn aliases(&self) -> Result<Vec<Alias>> {
        self.read(|c| {
            let mut s = c
                .prepare("SELECT alias, target FROM aliases ORDER BY alias, target")
                .map_err(backend)?;
            let rows: Vec<(String, String)> = s
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(backend)?;
            let mut out: Vec<Alias> = Vec::new();
            for (alias, target) in rows {
                match out.last_mut() {
                    Some(last) if last.alias == alias => last.targets.push(target),
                    _ => out.push(Alias {
                        alias,
                        targets: vec![target],
                    }),
                }
            }
            Ok(out)
        })
    }

    fn alias_targets(&self, alias: &str) -> Result<Vec<String>> {
        let alias = alias.trim().to_lowercase();
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT target FROM aliases WHERE alias = ?1 ORDER BY target")
                .map_err(backend)?;
            s.query_map([&alias], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
    }
}

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
                return Err(StoreError::Invalid("cannot rename a mailbox into itself".into()));
            }
            let mut changes = Vec::new();
            if from == "INBOX" {
                // RFC 9051 §6.3.6: move all messages to a new mailbox, leave
                // INBOX empty; its inferiors are not renamed.
                let target = insert_mailbox(c, account, &to, None)?;
                let uids = all_uids(c, source.id)?;
                let modseq = bump_modseq(c, source.id)?;
                for uid in &uids {
                    let (blob, prefix, size, flags, kw, date): (i64, Vec<u8>, i64, u8, String, i64) = c
                        .query_row(
                            "SELECT blob_id, prefix, size, flags, keywords, internaldate FROM messages
                             WHERE mailbox_id = ?1 AND uid = ?2",
                            params![source.id.0, uid.0],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                        )
                        .map_err(backend)?;
                    append_row(c, target.id, blob, &prefix, size as u64, Flags::from_bits(flags), &kw, date)?;
                    c.execute(
                        "DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
                        params![source.id.0, uid.0],
                    )
                    .map_err(backend)?;
                    c.execute(
                        "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)",
                        params![source.id.0, uid.0, modseq.0 as i64],
                    )
                    .map_err(backend)?;
                }
                changes.push(Change::MailboxCreated { account, name: to.clone() });
                if !uids.is_empty() {
                    changes.push(Change::Expunged { account, mailbox: source.id, uids, modseq });
                }
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

impl Messages for SqliteStore {
    fn deliver(&self, delivery: Delivery) -> Result<Vec<Delivered>> {
        if delivery.targets.is_empty() {
            return Ok(Vec::new());
        }
        self.accept(Some(delivery), None).map(|a| a.delivered)
    }

    fn accept(&self, delivery: Option<Delivery>, outbound: Option<Outbound>) -> Result<Accepted> {
        let (delivery, meta, outbound, envelope) = accept_args(delivery, outbound)?;
        // Large content is written (and made durable) here, on the caller's
        // thread, before the commit that will reference it.
        let file = match &delivery {
            Some(d) if self.files.wants(d.content.len()) => {
                Some(self.files.write(&d.content).map_err(backend)?)
            }
            _ => None,
        };
        let job_file = file.clone();
        let result = self
            .write(move |c| accept_in(c, delivery, meta, outbound, envelope, job_file.as_deref()));
        if result.is_err()
            && let Some(f) = &file
        {
            self.files.remove(f);
        }
        result
    }

    fn accept_async(
        self: Arc<Self>,
        delivery: Option<Delivery>,
        outbound: Option<Outbound>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Accepted>> + Send>> {
        let large = delivery
            .as_ref()
            .is_some_and(|d| !d.targets.is_empty() && self.files.wants(d.content.len()));
        if large && !self.files.packs() {
            // A file of its own costs an fsync of the file and of its
            // directory: not on the writer thread.
            return Box::pin(crate::blocking(move || self.accept(delivery, outbound)));
        }
        let (delivery, meta, outbound, envelope) = match accept_args(delivery, outbound) {
            Ok(a) => a,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        // Large content is appended to a pack here, on the caller's thread
        // (a copy into the page cache, as a socket read is), not on the
        // writer thread, which every commit waits for. The writer syncs
        // the packs of its batch before the commit (see `writer_loop`), and
        // the content is removed again if the job or the commit fails.
        let mut appended = Appended::default();
        let mut name = None;
        if let Some(d) = delivery.as_ref().filter(|_| large) {
            match append_here(&self.files, &d.content) {
                Some(Ok((n, unsynced))) => {
                    appended.names.push(n.clone());
                    appended.unsynced.push(unsynced);
                    name = Some(n);
                }
                Some(Err(e)) => return Box::pin(async move { Err(backend(e)) }),
                None => return Box::pin(async { Err(backend("packs are off")) }),
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<Accepted>>();
        let sent = self.submit(
            appended,
            move |c| accept_in(c, delivery, meta, outbound, envelope, name.as_deref()),
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
        let mut files = Vec::new();
        let cleanup = |files: &[String]| {
            for f in files {
                self.files.remove(f);
            }
        };
        for d in deliveries {
            let meta = serde_json::to_string(&d.meta).map_err(backend)?;
            let file = if self.files.wants(d.content.len()) {
                match self.files.write(&d.content) {
                    Ok(f) => {
                        files.push(f.clone());
                        Some(f)
                    }
                    Err(e) => {
                        cleanup(&files);
                        return Err(backend(e));
                    }
                }
            } else {
                None
            };
            prepared.push((d, meta, file));
        }
        let result = self.write(move |c| {
            let mut out = Vec::with_capacity(prepared.len());
            let mut changes = Vec::new();
            for (d, meta, file) in prepared {
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
            cleanup(&files);
        }
        result
    }

    fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageSummary>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT uid, modseq, flags, keywords, internaldate, size FROM messages
                     WHERE mailbox_id = ?1 ORDER BY uid",
                )
                .map_err(backend)?;
            s.query_map([mailbox.0], summary_from_row)
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
    }

    fn messages_changed_since(
        &self,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<Vec<MessageSummary>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT uid, modseq, flags, keywords, internaldate, size FROM messages
                     WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
                )
                .map_err(backend)?;
            s.query_map(params![mailbox.0, since.0 as i64], summary_from_row)
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
    }

    fn message_content(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<Vec<u8>>> {
        let row = self.read(|c| {
            c.prepare_cached(
                "SELECT m.prefix, b.data, b.file FROM messages m JOIN blobs b ON b.id = m.blob_id
                 WHERE m.mailbox_id = ?1 AND m.uid = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![mailbox.0, uid.0], |r| {
                    let prefix = r.get_ref(0)?.as_blob()?;
                    let data = r.get_ref(1)?.as_blob()?;
                    let file: Option<String> = r.get(2)?;
                    let mut out = Vec::with_capacity(prefix.len() + data.len());
                    out.extend_from_slice(prefix);
                    out.extend_from_slice(data);
                    Ok((out, file))
                })
                .optional()
            })
            .map_err(backend)
        })?;
        match row {
            None => Ok(None),
            Some((out, None)) => Ok(Some(out)),
            Some((mut out, Some(file))) => match self.files.read_into(&file, &mut out) {
                Ok(()) => Ok(Some(out)),
                // Expunged by another session since the row was read? Then
                // the row is gone too; otherwise the file is really missing.
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && !self.message_exists(mailbox, uid)? =>
                {
                    Ok(None)
                }
                Err(e) => Err(backend(format!("message file {file}: {e}"))),
            },
        }
    }

    fn message_meta(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<MessageMeta>> {
        let row: Option<(i64, String)> = self.read(|c| {
            c.prepare_cached(
                "SELECT length(m.prefix), b.meta FROM messages m JOIN blobs b ON b.id = m.blob_id
                 WHERE m.mailbox_id = ?1 AND m.uid = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![mailbox.0, uid.0], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(backend)
        })?;
        let Some((prefix_len, json)) = row else {
            return Ok(None);
        };
        match meta_with_prefix(prefix_len, &json) {
            Ok(m) => Ok(Some(m)),
            // Stored by an older version that described deeper structure
            // than the JSON reader accepts: parse the message again.
            Err(e) => {
                tracing::warn!(error = %e, uid = uid.0, "stored metadata unreadable, parsing again");
                Ok(self
                    .message_content(mailbox, uid)?
                    .map(|c| MessageMeta::parse(&c)))
            }
        }
    }

    fn message_envelopes(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, crate::imapdata::EnvelopeData)>> {
        use crate::imapdata::EnvelopeData;
        #[derive(serde::Deserialize)]
        struct OnlyEnvelope {
            envelope: crate::meta::Envelope,
        }
        let (uids, ranges) = uid_ranges(uids);
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT m.uid, e.envelope,
                            CASE WHEN e.envelope IS NULL
                                 THEN (SELECT meta FROM blobs WHERE id = m.blob_id) END
                     FROM messages m LEFT JOIN envelopes e ON e.blob_id = m.blob_id
                     WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid",
                )
                .map_err(backend)?;
            let mut out = Vec::new();
            for (lo, hi) in &ranges {
                let mut rows = s.query(params![mailbox.0, lo, hi]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    let uid = Uid(r.get::<_, i64>(0).map_err(backend)? as u32);
                    if uids.binary_search(&uid).is_err() {
                        continue;
                    }
                    let data = match r.get::<_, Option<Vec<u8>>>(1).map_err(backend)? {
                        Some(rendered) => EnvelopeData::Rendered(rendered),
                        None => {
                            let json: String = r.get(2).map_err(backend)?;
                            let e: OnlyEnvelope = serde_json::from_str(&json).map_err(backend)?;
                            EnvelopeData::Parsed(Box::new(e.envelope))
                        }
                    };
                    out.push((uid, data));
                }
            }
            Ok(out)
        })
    }

    fn message_contents(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, Vec<u8>)>> {
        let (uids, ranges) = uid_ranges(uids);
        let rows: Vec<(u32, Vec<u8>, Option<String>)> = self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT m.uid, m.prefix, b.data, b.file FROM messages m
                     JOIN blobs b ON b.id = m.blob_id
                     WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid",
                )
                .map_err(backend)?;
            let mut out = Vec::new();
            for (lo, hi) in &ranges {
                let mut rows = s.query(params![mailbox.0, lo, hi]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    let uid = r.get::<_, i64>(0).map_err(backend)? as u32;
                    if uids.binary_search(&Uid(uid)).is_err() {
                        continue;
                    }
                    let prefix = r
                        .get_ref(1)
                        .and_then(|v| Ok(v.as_blob()?))
                        .map_err(backend)?;
                    let data = r
                        .get_ref(2)
                        .and_then(|v| Ok(v.as_blob()?))
                        .map_err(backend)?;
                    let mut content = Vec::with_capacity(prefix.len() + data.len());
                    content.extend_from_slice(prefix);
                    content.extend_from_slice(data);
                    out.push((uid, content, r.get(3).map_err(backend)?));
                }
            }
            Ok(out)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (uid, mut content, file) in rows {
            if let Some(file) = file {
                match self.files.read_into(&file, &mut content) {
                    Ok(()) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound
                            && !self.message_exists(mailbox, Uid(uid))? =>
                    {
                        continue;
                    }
                    Err(e) => return Err(backend(format!("message file {file}: {e}"))),
                }
            }
            out.push((Uid(uid), content));
        }
        Ok(out)
    }

    fn message_metas(&self, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<(Uid, MessageMeta)>> {
        // Nearby UIDs are read with one range query (one transaction, one
        // statement step per row) instead of one query each.
        let (uids, ranges) = uid_ranges(uids);
        let rows: Vec<(u32, i64, String)> = self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT m.uid, length(m.prefix), b.meta FROM messages m
                     JOIN blobs b ON b.id = m.blob_id
                     WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid",
                )
                .map_err(backend)?;
            let mut out = Vec::new();
            for (lo, hi) in &ranges {
                let mut rows = s.query(params![mailbox.0, lo, hi]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    let uid = r.get::<_, i64>(0).map_err(backend)? as u32;
                    if uids.binary_search(&Uid(uid)).is_ok() {
                        out.push((uid, r.get(1).map_err(backend)?, r.get(2).map_err(backend)?));
                    }
                }
            }
            Ok(out)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (uid, prefix_len, json) in rows {
            match meta_with_prefix(prefix_len, &json) {
                Ok(m) => out.push((Uid(uid), m)),
                Err(_) => {
                    if let Some(m) = self.message_meta(mailbox, Uid(uid))? {
                        out.push((Uid(uid), m));
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
    ) -> Result<Vec<FlagUpdate>> {
        self.store_flags_unchanged_since(mailbox, uids, op, flags, keywords, None)
            .map(|(updates, _)| updates)
    }

    fn store_flags_unchanged_since(
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
                let (new_flags, new_kw) = match op {
                    FlagOp::Replace => (flags, keywords.clone()),
                    FlagOp::Add => {
                        let mut k = old_kw.clone();
                        for w in &keywords {
                            if !k.iter().any(|x| x.eq_ignore_ascii_case(w)) {
                                k.push(w.clone());
                            }
                        }
                        (old_flags.union(flags), k)
                    }
                    FlagOp::Remove => (
                        old_flags.difference(flags),
                        old_kw
                            .iter()
                            .filter(|x| !keywords.iter().any(|w| w.eq_ignore_ascii_case(x)))
                            .cloned()
                            .collect(),
                    ),
                };
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
            let (removed, freed) = remove_messages(c, mailbox, &uids)?;
            if removed.is_empty() {
                return Ok((removed, vec![]));
            }
            let modseq = bump_modseq(c, mailbox)?;
            let mut log = c
                .prepare_cached(
                    "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)",
                )
                .map_err(backend)?;
            for uid in &removed {
                log.execute(params![mailbox.0, uid.0, modseq.0 as i64])
                    .map_err(backend)?;
            }
            add_used(c, m.account, -(freed as i64))?;
            let change = Change::Expunged {
                account: m.account,
                mailbox,
                uids: removed.clone(),
                modseq,
            };
            Ok((removed, vec![change]))
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
            let mut rows = Vec::new();
            {
                let mut sel = c
                    .prepare_cached(
                        "SELECT blob_id, prefix, size, flags, keywords, internaldate FROM messages
                         WHERE mailbox_id = ?1 AND uid = ?2",
                    )
                    .map_err(backend)?;
                for uid in &uids {
                    let row = sel
                        .query_row(params![from.0, uid.0], |r| {
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
                    to,
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
                    mailbox: to,
                    uid: new_uid,
                    modseq,
                });
            }
            add_used(c, dst.account, adding as i64)?;
            if expunge_source {
                let source: Vec<Uid> = pairs.iter().map(|p| p.0).collect();
                let (removed, freed) = remove_messages(c, from, &source)?;
                let modseq = bump_modseq(c, from)?;
                let mut log = c
                    .prepare_cached(
                        "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(backend)?;
                for uid in &removed {
                    log.execute(params![from.0, uid.0, modseq.0 as i64])
                        .map_err(backend)?;
                }
                add_used(c, src.account, -(freed as i64))?;
                changes.push(Change::Expunged {
                    account: src.account,
                    mailbox: from,
                    uids: removed,
                    modseq,
                });
            }
            Ok((pairs, changes))
        })
    }

    fn claim_recent(&self, mailbox: MailboxId, claim: bool) -> Result<Uid> {
        let get = move |c: &Connection| -> Result<(i64, i64)> {
            c.prepare_cached("SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?1")
                .and_then(|mut s| s.query_row([mailbox.0], |r| Ok((r.get(0)?, r.get(1)?))))
                .optional()
                .map_err(backend)?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", mailbox.0)))
        };
        if !claim {
            return self.read(|c| get(c).map(|(r, _)| Uid(r as u32)));
        }
        self.write(move |c| {
            let (recent, uidnext) = get(c)?;
            if recent != uidnext {
                c.execute(
                    "UPDATE mailboxes SET recent_uid = ?2 WHERE id = ?1",
                    params![mailbox.0, uidnext],
                )
                .map_err(backend)?;
            }
            Ok((Uid(recent as u32), Vec::new()))
        })
    }

    fn expunged_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<Vec<Uid>> {
        self.read(|c| {
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
        })
    }

    fn enqueue(&self, message: Outbound) -> Result<QueueId> {
        self.accept(None, Some(message))?
            .queued
            .ok_or_else(|| backend("nothing queued"))
    }
}

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

impl Coordination for SqliteStore {
    fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>> {
        let mut held = self.locks.lock().map_err(backend)?;
        if !held.insert(account) {
            return Ok(None);
        }
        let locks = Arc::clone(&self.locks);
        Ok(Some(MaildropLock::new(move || {
            if let Ok(mut held) = locks.lock() {
                held.remove(&account);
            }
        })))
    }

    fn watch(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn watch_account(&self, account: AccountId) -> tokio::sync::watch::Receiver<AccountSignal> {
        self.signals.subscribe(account)
    }
}
