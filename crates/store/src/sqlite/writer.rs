//! The group-commit writer: one thread owns the write connection. A write
//! is a job ([`SqliteStore::write`], or [`SqliteStore::submit`] for callers
//! that do not wait on a thread); the writer runs the jobs that are waiting
//! in one transaction, each inside its own SAVEPOINT, syncs the pack content
//! they appended (one `fdatasync` per pack), commits, publishes their
//! changes (the change feed and the signals of the accounts they touched),
//! and only then answers the callers. Between batches it notices commits by
//! other processes (`PRAGMA data_version`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::broadcast;

use super::files::{self, BlobFiles};
use super::{SqliteStore, backend};
use crate::model::*;
use crate::signals::Signals;
use crate::{Result, StoreError};

type Reply = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// What running a job left: whether to keep its work, what to announce, and
/// how to answer its caller once the batch is committed (or not).
pub(super) struct Completion {
    ok: bool,
    changes: Vec<Change>,
    /// Content the job appended to packs: synced before the batch commits.
    unsynced: Vec<files::Unsynced>,
    reply: Reply,
}

/// Content appended to packs for a job: synced before its batch commits,
/// removed again if the job or the commit fails.
#[derive(Default)]
pub(super) struct Appended {
    pub(super) names: Vec<String>,
    pub(super) unsynced: Vec<files::Unsynced>,
}

/// A write job. `Err` means the batch could not even begin.
pub(super) type Job =
    Box<dyn FnOnce(std::result::Result<&Connection, String>) -> Completion + Send>;

impl SqliteStore {
    /// Runs `f` on the writer thread in the next group commit and returns
    /// its value once the commit is durable.
    pub(super) fn write<T: Send + 'static>(
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
    pub(super) fn submit<T: Send + 'static>(
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
}

/// Unlinks the files listed in `blob_trash` (committed deletions whose
/// files a crash left behind) and empties it.
pub(super) fn empty_trash(conn: &Connection, files: &BlobFiles) -> Result<()> {
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
pub(super) fn append_here(
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
pub(super) struct Publish {
    pub(super) feed: broadcast::Sender<Change>,
    pub(super) signals: Arc<Signals>,
}

pub(super) fn writer_loop(
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
