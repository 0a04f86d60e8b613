//! Versioned schema migrations, applied in order at open. The version is
//! kept in `PRAGMA user_version`; a migration runs in one transaction with
//! the version bump, so a crash leaves either the old or the new schema.

use rusqlite::Connection;

use super::backend;
use crate::{Result, StoreError};

/// Index = version - 1. Never edit a released migration; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE domains (
    name TEXT PRIMARY KEY COLLATE NOCASE
);
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    address       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    quota_bytes   INTEGER,
    used_bytes    INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL
);
CREATE TABLE aliases (
    alias  TEXT NOT NULL COLLATE NOCASE,
    target TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (alias, target)
);
CREATE TABLE mailboxes (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    name          TEXT NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL,
    highestmodseq INTEGER NOT NULL,
    special_use   TEXT,
    UNIQUE (account_id, name)
);
CREATE TABLE subscriptions (
    account_id INTEGER NOT NULL,
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
-- Message content, stored once per delivery and shared by every target.
CREATE TABLE blobs (
    id       INTEGER PRIMARY KEY,
    refcount INTEGER NOT NULL,
    data     BLOB NOT NULL,
    meta     TEXT NOT NULL
);
-- One row per message in a mailbox; clustered by (mailbox, uid) so a
-- mailbox listing is one range scan.
CREATE TABLE messages (
    mailbox_id   INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    modseq       INTEGER NOT NULL,
    flags        INTEGER NOT NULL,
    keywords     TEXT NOT NULL DEFAULT '',
    internaldate INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    blob_id      INTEGER NOT NULL,
    prefix       BLOB NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX messages_by_modseq ON messages (mailbox_id, modseq);
-- Expunged UIDs with the MODSEQ of their expunge (RFC 7162 QRESYNC).
CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
"#,
    // 2: the outbound queue (submission to other domains; delivered by the relay).
    r#"
CREATE TABLE queue (
    id           INTEGER PRIMARY KEY,
    created      INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    held         INTEGER NOT NULL DEFAULT 0,
    sender       TEXT NOT NULL,
    envelope     TEXT NOT NULL,
    content      BLOB NOT NULL,
    size         INTEGER NOT NULL
);
CREATE TABLE queue_recipients (
    queue_id   INTEGER NOT NULL,
    address    TEXT NOT NULL,
    notify     TEXT,
    orcpt      TEXT,
    status     TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (queue_id, address)
) WITHOUT ROWID;
"#,
    // 3: large content in files beside the database (see files.rs).
    r#"
ALTER TABLE blobs ADD COLUMN file TEXT;
-- Files whose last reference was deleted, unlinked after that commit.
CREATE TABLE blob_trash (
    file TEXT PRIMARY KEY
) WITHOUT ROWID;
"#,
    // 4: the IMAP4rev1 \Recent mark per mailbox.
    r#"
ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 1;
"#,
    // 5: expunges by MODSEQ, for catching a session up (and QRESYNC).
    r#"
CREATE INDEX expunged_by_modseq ON expunged (mailbox_id, modseq);
"#,
    // 6: the ENVELOPE rendered once at delivery (IMAP FETCH ENVELOPE), in
    // its own table: in `blobs` it would sit behind the content, on
    // overflow pages a FETCH would have to walk.
    r#"
CREATE TABLE envelopes (
    blob_id  INTEGER PRIMARY KEY,
    envelope BLOB NOT NULL
);
"#,
    // 7: the relay's scheduler: due entries by time, delay warnings sent,
    // entries being attempted ("active", Postfix's active queue).
    r#"
ALTER TABLE queue ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue ADD COLUMN active INTEGER NOT NULL DEFAULT 0;
CREATE INDEX queue_by_next_attempt ON queue (next_attempt);
"#,
    // 8: DMARC aggregate report counts (RFC 9990), until their period ends.
    r#"
CREATE TABLE report_counts (
    begin_at  INTEGER NOT NULL,
    end_at    INTEGER NOT NULL,
    domain    TEXT NOT NULL,
    published TEXT NOT NULL,
    row       TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (begin_at, domain, row)
) WITHOUT ROWID;
CREATE INDEX report_counts_by_end ON report_counts (end_at);
"#,
    // 9: S/MIME encryption at rest: the certificate (PEM) an account's
    // deliveries are encrypted to.
    r#"
ALTER TABLE accounts ADD COLUMN smime_cert BLOB;
"#,
    // 10: the header values SEARCH FROM/TO/CC/BCC/SUBJECT match, kept per
    // content at delivery (lower-cased; NULL: no such field), so those
    // searches read no message. Content stored before has no row: its
    // searches read the message as before.
    r#"
CREATE TABLE search_headers (
    blob_id  INTEGER PRIMARY KEY,
    subject  TEXT,
    from_    TEXT,
    to_      TEXT,
    cc       TEXT,
    bcc      TEXT
);
"#,
    // 11: the full-text index of SEARCH BODY/TEXT (search.rs): which
    // contents it holds (every one stored so far is indexed in the
    // background), and messages by content, to turn its answers into UIDs.
    r#"
ALTER TABLE blobs ADD COLUMN indexed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX blobs_unindexed ON blobs (id) WHERE indexed = 0;
CREATE INDEX messages_by_blob ON messages (blob_id);
"#,
    // 12: contents the indexer could not parse (`indexed = 2`: more
    // encapsulations than a parse is allowed, wire::meta::safe_to_parse):
    // SEARCH HEADER must read them (search.rs).
    r#"
CREATE INDEX blobs_unparsed ON blobs (id) WHERE indexed = 2;
"#,
];

/// Brings the schema to the newest version. Says once (INFO) which
/// version a migrated store is at now; each step is a DEBUG line.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    let version = version.max(0) as usize;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "store schema version {version} is newer than this postamt ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::debug!(version = i + 1, "store schema migrated");
    }
    let latest = MIGRATIONS.len();
    if version < latest {
        tracing::info!("store schema at version {latest} (migrated from {version})");
    } else {
        tracing::debug!("store schema at version {latest}");
    }
    Ok(())
}
