//! The PostgreSQL schema, in versioned migrations (issue 18). The first
//! mirrors the SQLite backend's schema at its version 12 (`sqlite/schema.rs`),
//! with what PostgreSQL does differently:
//! - message content lives in `blobs.data` as `bytea` with `STORAGE
//!   EXTERNAL` (measured against large objects and compressed bytea:
//!   bench/README.md, "PostgreSQL: bytea or large objects"); no content
//!   files beside the database (a node keeps no state of its own);
//! - the outbound queue has leases (`lease_node`, `lease_until`) instead of
//!   SQLite's `active`: a node that dies loses its claims when they run
//!   out, and another node retries.
//!
//! All migrations run in one transaction under a transaction-level
//! advisory lock, so nodes that start together migrate once, one after
//! the other; the version is kept in `schema_version`.

use tokio_postgres::Client;

use crate::{Result, StoreError};

/// The advisory lock key of migrations (any constant: one per database).
const MIGRATION_LOCK: i64 = 0x706f_7374_616d_7431; // "postamt1"

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the store as SQLite has it at version 12.
    r#"
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE domains (
    name TEXT PRIMARY KEY             -- lower-cased by the code
);
CREATE TABLE accounts (
    id            BIGSERIAL PRIMARY KEY,
    address       TEXT NOT NULL UNIQUE, -- lower-cased by the code
    password_hash TEXT NOT NULL,
    quota_bytes   BIGINT,
    used_bytes    BIGINT NOT NULL DEFAULT 0,
    created       BIGINT NOT NULL,
    smime_cert    BYTEA
);
CREATE TABLE aliases (
    alias  TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (alias, target)
);
CREATE TABLE mailboxes (
    id            BIGSERIAL PRIMARY KEY,
    account_id    BIGINT NOT NULL REFERENCES accounts(id),
    name          TEXT NOT NULL,
    uidvalidity   BIGINT NOT NULL,
    uidnext       BIGINT NOT NULL,
    highestmodseq BIGINT NOT NULL,
    special_use   TEXT,
    recent_uid    BIGINT NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);
CREATE TABLE subscriptions (
    account_id BIGINT NOT NULL,
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
-- Message content, stored once per delivery and shared by every target.
CREATE TABLE blobs (
    id       BIGSERIAL PRIMARY KEY,
    refcount BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    meta     TEXT NOT NULL,
    indexed  SMALLINT NOT NULL DEFAULT 0
);
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX blobs_unindexed ON blobs (id) WHERE indexed = 0;
CREATE INDEX blobs_unparsed ON blobs (id) WHERE indexed = 2;
CREATE TABLE messages (
    mailbox_id   BIGINT NOT NULL,
    uid          BIGINT NOT NULL,
    modseq       BIGINT NOT NULL,
    flags        SMALLINT NOT NULL,
    keywords     TEXT NOT NULL DEFAULT '',
    internaldate BIGINT NOT NULL,
    size         BIGINT NOT NULL,
    blob_id      BIGINT NOT NULL,
    prefix       BYTEA NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX messages_by_modseq ON messages (mailbox_id, modseq);
CREATE INDEX messages_by_blob ON messages (blob_id);
-- Expunged UIDs with the MODSEQ of their expunge (RFC 7162 QRESYNC).
CREATE TABLE expunged (
    mailbox_id BIGINT NOT NULL,
    uid        BIGINT NOT NULL,
    modseq     BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_by_modseq ON expunged (mailbox_id, modseq);
CREATE TABLE envelopes (
    blob_id  BIGINT PRIMARY KEY,
    envelope BYTEA NOT NULL
);
CREATE TABLE search_headers (
    blob_id  BIGINT PRIMARY KEY,
    subject  TEXT,
    from_    TEXT,
    to_      TEXT,
    cc       TEXT,
    bcc      TEXT
);
CREATE TABLE queue (
    id           BIGSERIAL PRIMARY KEY,
    created      BIGINT NOT NULL,
    next_attempt BIGINT NOT NULL,
    held         BOOLEAN NOT NULL DEFAULT false,
    sender       TEXT NOT NULL,
    envelope     TEXT NOT NULL,
    content      BYTEA NOT NULL,
    size         BIGINT NOT NULL,
    warned       BOOLEAN NOT NULL DEFAULT false,
    lease_node   TEXT,
    lease_until  BIGINT
);
ALTER TABLE queue ALTER COLUMN content SET STORAGE EXTERNAL;
CREATE INDEX queue_by_next_attempt ON queue (next_attempt);
CREATE TABLE queue_recipients (
    queue_id   BIGINT NOT NULL,
    address    TEXT NOT NULL,
    notify     TEXT,
    orcpt      TEXT,
    status     TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (queue_id, address)
);
-- DMARC aggregate report counts (RFC 9990), until their period ends.
CREATE TABLE report_counts (
    begin_at  BIGINT NOT NULL,
    end_at    BIGINT NOT NULL,
    domain    TEXT NOT NULL,
    published TEXT NOT NULL,
    row       TEXT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (begin_at, domain, row)
);
CREATE INDEX report_counts_by_end ON report_counts (end_at);
"#,
    // 2: the text of SEARCH BODY/TEXT/HEADER (search.rs); its trigram
    // indexes are made by `search::trigram_indexes` where pg_trgm exists.
    r#"
CREATE TABLE search_text (
    blob_id BIGINT PRIMARY KEY,
    headers TEXT NOT NULL,
    body    TEXT NOT NULL
);
"#,
    // 3: the rendered IMAP ENVELOPE beside each message, written at
    // delivery and kept by COPY/MOVE, so that FETCH ENVELOPE reads one
    // table in UID order instead of probing `envelopes` once per message
    // (7 ms of the database's CPU per 10,000; bench/README.md). NULL (rows
    // from before, `store migrate`): read from `envelopes` as before.
    r#"
ALTER TABLE messages ADD COLUMN envelope BYTEA;
"#,
];

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Brings the schema to the newest version; returns (from, to).
pub(super) async fn migrate(client: &mut Client) -> Result<(usize, usize)> {
    let mut tx = client.transaction().await.map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(backend)?;
    // `IF NOT EXISTS` on a store already there says so in a NOTICE each
    // start (tokio-postgres logs them): not worth a line in `serve`'s log.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(backend)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .await
        .map_err(backend)?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await
        .map_err(backend)?
        .map(|r| r.get(0));
    let from = found.unwrap_or(0).max(0) as usize;
    if from > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "store schema version {from} is newer than this postamt ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.batch_execute(sql).await.map_err(backend)?;
        tracing::debug!(version = i + 1, "PostgreSQL store schema migrated");
    }
    super::search::trigram_indexes(&mut tx).await?;
    let to = MIGRATIONS.len() as i32;
    if found.is_none() {
        tx.execute("INSERT INTO schema_version(version) VALUES ($1)", &[&to])
            .await
            .map_err(backend)?;
    } else {
        tx.execute("UPDATE schema_version SET version = $1", &[&to])
            .await
            .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)?;
    if from < MIGRATIONS.len() {
        tracing::info!(
            "PostgreSQL store schema at version {} (migrated from {from})",
            MIGRATIONS.len()
        );
    }
    Ok((from, MIGRATIONS.len()))
}
