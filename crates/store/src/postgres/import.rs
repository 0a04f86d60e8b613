//! `postamt store migrate`: a single-node SQLite store moved into an
//! empty PostgreSQL store (issue 18), so that an installation can grow to
//! several nodes without its users' clients noticing.
//!
//! **What is kept.** Every row of every table, with its ids: accounts,
//! mailboxes with their UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and `\Recent`
//! mark, messages with their UIDs, MODSEQs, flags, keywords and internal
//! dates, the expunge log (QRESYNC clients resume), subscriptions,
//! aliases, domains, the outbound queue with its recipients' states, the
//! DMARC report counts, and the content (also what SQLite kept in files
//! beside the database). A client that knew the mailbox goes on as if
//! nothing happened: same UIDVALIDITY, same UIDs, same MODSEQs. The
//! full-text index is not copied: the PostgreSQL indexer builds its own
//! (searches are exact meanwhile, they read more).
//!
//! **How.** The source is read in one read transaction (one snapshot:
//! stop the server first, or mail that arrives meanwhile is not copied);
//! the target is written in one transaction, so a failure leaves it
//! empty. Before that transaction commits, every table is read back from
//! PostgreSQL and compared with the source: the row counts, and a SHA-256
//! over every column of every row in key order (content and prefixes
//! compared by their own SHA-256, computed by PostgreSQL on its side). Any
//! difference rolls the whole copy back. The sequences then continue after
//! the copied ids.

use rusqlite::types::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;

use super::{PgStore, backend, exec, fail, row, rows};

fn lite(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("the SQLite store: {e}"))
}
use crate::{Result, SqliteStore, StoreError};

/// How a column is copied and compared.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    I64,
    I32,
    I16,
    Bool,
    Text,
    Bytes,
    /// Bytes compared by their SHA-256 (content, prefixes).
    Big,
}

/// One table: its columns (name, kind), its key (for the order), and
/// whether the source selects something else for a column.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    key: &'static str,
}

use Kind::*;

const TABLES: &[Table] = &[
    Table {
        name: "counters",
        columns: &[("name", Text), ("value", I64)],
        key: "name",
    },
    Table {
        name: "domains",
        columns: &[("name", Text)],
        key: "name",
    },
    Table {
        name: "accounts",
        columns: &[
            ("id", I64),
            ("address", Text),
            ("password_hash", Text),
            ("quota_bytes", I64),
            ("used_bytes", I64),
            ("created", I64),
            ("smime_cert", Bytes),
        ],
        key: "id",
    },
    Table {
        name: "aliases",
        columns: &[("alias", Text), ("target", Text)],
        key: "alias, target",
    },
    Table {
        name: "mailboxes",
        columns: &[
            ("id", I64),
            ("account_id", I64),
            ("name", Text),
            ("uidvalidity", I64),
            ("uidnext", I64),
            ("highestmodseq", I64),
            ("special_use", Text),
            ("recent_uid", I64),
        ],
        key: "id",
    },
    Table {
        name: "subscriptions",
        columns: &[("account_id", I64), ("name", Text)],
        key: "account_id, name",
    },
    // `data` here is the whole content: SQLite's own column and the file
    // it names, read by the copy (`content_of`).
    Table {
        name: "blobs",
        columns: &[
            ("id", I64),
            ("refcount", I64),
            ("data", Big),
            ("meta", Text),
        ],
        key: "id",
    },
    Table {
        name: "messages",
        columns: &[
            ("mailbox_id", I64),
            ("uid", I64),
            ("modseq", I64),
            ("flags", I16),
            ("keywords", Text),
            ("internaldate", I64),
            ("size", I64),
            ("blob_id", I64),
            ("prefix", Big),
        ],
        key: "mailbox_id, uid",
    },
    Table {
        name: "expunged",
        columns: &[("mailbox_id", I64), ("uid", I64), ("modseq", I64)],
        key: "mailbox_id, uid",
    },
    Table {
        name: "envelopes",
        columns: &[("blob_id", I64), ("envelope", Bytes)],
        key: "blob_id",
    },
    Table {
        name: "search_headers",
        columns: &[
            ("blob_id", I64),
            ("subject", Text),
            ("from_", Text),
            ("to_", Text),
            ("cc", Text),
            ("bcc", Text),
        ],
        key: "blob_id",
    },
    Table {
        name: "queue",
        columns: &[
            ("id", I64),
            ("created", I64),
            ("next_attempt", I64),
            ("held", Bool),
            ("sender", Text),
            ("envelope", Text),
            ("content", Big),
            ("size", I64),
            ("warned", Bool),
        ],
        key: "id",
    },
    Table {
        name: "queue_recipients",
        columns: &[
            ("queue_id", I64),
            ("address", Text),
            ("notify", Text),
            ("orcpt", Text),
            ("status", Text),
            ("attempts", I32),
            ("last_error", Text),
        ],
        key: "queue_id, address",
    },
    Table {
        name: "report_counts",
        columns: &[
            ("begin_at", I64),
            ("end_at", I64),
            ("domain", Text),
            ("published", Text),
            ("row", Text),
            ("count", I64),
        ],
        key: "begin_at, domain, row",
    },
];

/// Rows read per page (of large tables: content).
const PAGE: usize = 256;

/// What a migration copied: rows per table, and content bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub tables: Vec<(String, u64)>,
    pub content_bytes: u64,
}

/// A value on its way, typed for PostgreSQL.
enum Val {
    I64(Option<i64>),
    I32(Option<i32>),
    I16(Option<i16>),
    Bool(bool),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Val {
    fn from_sqlite(v: Value, kind: Kind) -> Result<Val> {
        let int = |v: &Value| match v {
            Value::Integer(i) => Ok(Some(*i)),
            Value::Null => Ok(None),
            other => Err(StoreError::Invalid(format!(
                "expected a number, found {other:?}"
            ))),
        };
        Ok(match kind {
            I64 => Val::I64(int(&v)?),
            I32 => Val::I32(int(&v)?.map(|i| i as i32)),
            I16 => Val::I16(int(&v)?.map(|i| i as i16)),
            Bool => Val::Bool(int(&v)?.unwrap_or(0) != 0),
            Text => Val::Text(match v {
                Value::Text(s) => Some(s),
                Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                Value::Null => None,
                Value::Integer(i) => Some(i.to_string()),
                Value::Real(r) => Some(r.to_string()),
            }),
            Bytes | Big => Val::Bytes(match v {
                Value::Blob(b) => Some(b),
                Value::Text(s) => Some(s.into_bytes()),
                Value::Null => None,
                other => {
                    return Err(StoreError::Invalid(format!(
                        "expected bytes, found {other:?}"
                    )));
                }
            }),
        })
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Val::I64(v) => v,
            Val::I32(v) => v,
            Val::I16(v) => v,
            Val::Bool(v) => v,
            Val::Text(v) => v,
            Val::Bytes(v) => v,
        }
    }

    /// Feeds the value to the table's digest (a `Big` one by its SHA-256,
    /// which PostgreSQL computes on its side).
    fn digest(&self, kind: Kind, h: &mut Sha256) {
        fn opt(h: &mut Sha256, tag: u8, bytes: Option<&[u8]>) {
            match bytes {
                None => h.update([0u8]),
                Some(b) => {
                    h.update([tag]);
                    h.update((b.len() as u64).to_be_bytes());
                    h.update(b);
                }
            }
        }
        match self {
            Val::I64(v) => opt(h, 1, v.map(i64::to_be_bytes).as_ref().map(|b| &b[..])),
            Val::I32(v) => opt(
                h,
                1,
                v.map(|i| i64::from(i).to_be_bytes())
                    .as_ref()
                    .map(|b| &b[..]),
            ),
            Val::I16(v) => opt(
                h,
                1,
                v.map(|i| i64::from(i).to_be_bytes())
                    .as_ref()
                    .map(|b| &b[..]),
            ),
            Val::Bool(v) => opt(h, 2, Some(&[u8::from(*v)])),
            Val::Text(v) => opt(h, 3, v.as_deref().map(str::as_bytes)),
            Val::Bytes(v) if kind == Big => {
                let d = v.as_deref().map(|b| Sha256::digest(b).to_vec());
                opt(h, 4, d.as_deref())
            }
            Val::Bytes(v) => opt(h, 4, v.as_deref()),
        }
    }

    /// A value read back from PostgreSQL (a `Big` column is read as its
    /// SHA-256: see `read_back`).
    fn from_pg(r: &tokio_postgres::Row, i: usize, kind: Kind) -> Val {
        match kind {
            I64 => Val::I64(r.get(i)),
            I32 => Val::I32(r.get(i)),
            I16 => Val::I16(r.get(i)),
            Bool => Val::Bool(r.get(i)),
            Text => Val::Text(r.get(i)),
            Bytes | Big => Val::Bytes(r.get(i)),
        }
    }
}

impl PgStore {
    /// Copies the SQLite store `from` into this store, which must be empty;
    /// verifies the copy before it commits (see the module's text).
    /// `progress` hears a line per table.
    pub fn import_sqlite(
        &self,
        from: &SqliteStore,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<MigrationReport> {
        let rt = self.rt.as_ref().ok_or_else(|| fail("store closed"))?;
        let mut source = from.export_connection()?;
        let snapshot = source.transaction().map_err(lite)?;
        super::wait_on(rt, async {
            let mut c = self.pool.get().await.map_err(backend)?;
            let tx = c.transaction().await.map_err(backend)?;
            let present: i64 = row(
                &tx,
                "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM domains)
                      + (SELECT count(*) FROM blobs) + (SELECT count(*) FROM queue)",
                &[],
            )
            .await?
            .get(0);
            if present > 0 {
                return Err(StoreError::Invalid(
                    "the PostgreSQL store is not empty: migrate into a new database (or schema)"
                        .into(),
                ));
            }
            // Rows the schema's first use made (the UIDVALIDITY counter).
            exec(&tx, "DELETE FROM counters", &[]).await?;
            let mut report = MigrationReport::default();
            for table in TABLES {
                let (n, bytes, digest) = copy_table(&snapshot, from, &tx, table).await?;
                let (m, back) = read_back(&tx, table).await?;
                if n != m || digest != back {
                    return Err(StoreError::Backend(format!(
                        "{}: the copy differs from the source ({n} rows read, {m} written; checksums {})",
                        table.name,
                        if digest == back { "equal" } else { "differ" }
                    )));
                }
                progress(&format!("{:<17} {n} rows copied and verified", table.name));
                report.tables.push((table.name.to_string(), n));
                report.content_bytes += bytes;
            }
            for (table, column) in [
                ("accounts", "id"),
                ("mailboxes", "id"),
                ("blobs", "id"),
                ("queue", "id"),
            ] {
                exec(
                    &tx,
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                                       COALESCE((SELECT max({column}) FROM {table}), 0) + 1, false)"
                    ),
                    &[],
                )
                .await?;
            }
            // Schema 3: each message's ENVELOPE beside it (FETCH reads one
            // table); the copy above left it NULL, SQLite has no such column.
            exec(
                &tx,
                "UPDATE messages m SET envelope = e.envelope FROM envelopes e
                 WHERE e.blob_id = m.blob_id AND m.envelope IS NULL",
                &[],
            )
            .await?;
            tx.commit().await.map_err(backend)?;
            Ok(report)
        })
    }
}

/// Copies one table; (rows, content bytes, digest of the source rows).
async fn copy_table(
    source: &rusqlite::Transaction<'_>,
    from: &SqliteStore,
    tx: &deadpool_postgres::Transaction<'_>,
    table: &Table,
) -> Result<(u64, u64, [u8; 32])> {
    let names: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    // Content in a file beside SQLite's database: its name comes along.
    let file = table.name == "blobs";
    // Keys in byte order (SQLite's NOCASE columns hold lower-case text,
    // but the order must be the one `read_back` asks PostgreSQL for).
    let order: Vec<String> = table
        .key
        .split(", ")
        .map(|k| match table.columns.iter().find(|(n, _)| n == &k) {
            Some((_, Text)) => format!("{k} COLLATE BINARY"),
            _ => k.to_string(),
        })
        .collect();
    let select = format!(
        "SELECT {}{} FROM {} ORDER BY {}",
        names.join(", "),
        if file { ", file" } else { "" },
        table.name,
        order.join(", ")
    );
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO {}({}) VALUES ({})",
        table.name,
        names.join(", "),
        placeholders.join(", ")
    );
    let mut stmt = source.prepare(&select).map_err(lite)?;
    let mut cursor = stmt.query([]).map_err(lite)?;
    let mut h = Sha256::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    loop {
        // A page of rows from SQLite (synchronous), then their inserts.
        let mut page: Vec<Vec<Val>> = Vec::with_capacity(PAGE);
        while page.len() < PAGE {
            let Some(r) = cursor.next().map_err(lite)? else {
                break;
            };
            let mut vals = Vec::with_capacity(names.len());
            for (i, (_, kind)) in table.columns.iter().enumerate() {
                let v: Value = r.get(i).map_err(lite)?;
                vals.push(Val::from_sqlite(v, *kind)?);
            }
            if file {
                let name: Option<String> = r.get(names.len()).map_err(lite)?;
                if let (Some(name), Val::Bytes(Some(data))) = (name, &mut vals[2]) {
                    from.read_blob_file(&name, data)?;
                }
            }
            page.push(vals);
        }
        if page.is_empty() {
            break;
        }
        for vals in &page {
            for (v, (_, kind)) in vals.iter().zip(table.columns) {
                v.digest(*kind, &mut h);
                if let (Val::Bytes(Some(b)), Big) = (v, kind) {
                    bytes += b.len() as u64;
                }
            }
            let params: Vec<&(dyn ToSql + Sync)> = vals.iter().map(Val::param).collect();
            exec(tx, &insert, &params).await?;
            n += 1;
        }
    }
    Ok((n, bytes, h.finalize().into()))
}

/// Reads a table back from PostgreSQL in key order; (rows, digest), the
/// digest computed as the source's (`Big` columns by their SHA-256).
async fn read_back(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &Table,
) -> Result<(u64, [u8; 32])> {
    let cols: Vec<String> = table
        .columns
        .iter()
        .map(|(n, k)| match k {
            Big => format!("sha256({n})"),
            _ => n.to_string(),
        })
        .collect();
    let all = rows(
        tx,
        &format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            table.name,
            // Text keys in the source's order (SQLite compares bytes).
            table
                .key
                .split(", ")
                .map(|k| match table.columns.iter().find(|(n, _)| n == &k) {
                    Some((_, Text)) => format!("{k} COLLATE \"C\""),
                    _ => k.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        &[],
    )
    .await?;
    let mut h = Sha256::new();
    for r in &all {
        for (i, (_, kind)) in table.columns.iter().enumerate() {
            match kind {
                // Already the digest: fed as the source feeds its own.
                Big => {
                    let d: Option<Vec<u8>> = r.get(i);
                    Val::Bytes(d).digest(Bytes, &mut h);
                }
                k => Val::from_pg(r, i, *k).digest(*k, &mut h),
            }
        }
    }
    Ok((all.len() as u64, h.finalize().into()))
}
