//! The PostgreSQL backend against the machine's PostgreSQL (issue 18; CI
//! has one: 127.0.0.1:5432, role root, database test, trust
//! authentication; `POSTAMT_TEST_PG` overrides the URL). Each test works in
//! a schema of its own, dropped at the end.

use std::sync::atomic::{AtomicU32, Ordering};

use postamt_store::PgStore;

fn base_url() -> String {
    std::env::var("POSTAMT_TEST_PG")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string())
}

/// A fresh schema, dropped on drop; `url` points the store into it.
struct Schema {
    name: String,
    url: String,
}

impl Schema {
    /// `None` (a skip) only outside CI when no PostgreSQL answers.
    fn new() -> Option<Schema> {
        static N: AtomicU32 = AtomicU32::new(0);
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_schemas);
        let name = format!(
            "pt_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = sql(&format!("CREATE SCHEMA {name}")) {
            if std::env::var("CI").is_ok() || std::env::var("POSTAMT_REQUIRE_TOOLS").is_ok() {
                panic!("PostgreSQL at {} is needed: {e}", base_url());
            }
            eprintln!("skipping: no PostgreSQL at {}: {e}", base_url());
            return None;
        }
        let url = format!("{}?options=-csearch_path%3D{name}", base_url());
        Some(Schema { name, url })
    }
}

/// Drops the schemas of test processes that are gone (a store kept for a
/// whole process, or a test that was killed, leaves its schema behind).
fn sweep_schemas() {
    let Ok(rows) = sql("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'pt\\_%'") else {
        return;
    };
    for r in rows {
        let name: String = r.get(0);
        let pid = name.split('_').nth(1).unwrap_or("");
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = sql(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = sql(&format!("DROP SCHEMA {} CASCADE", self.name));
    }
}

/// Several statements (no results) over a connection of their own.
fn batch(statements: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let io = tokio::spawn(conn);
        let done = client
            .batch_execute(statements)
            .await
            .map_err(|e| format!("{e:?}"));
        drop(client);
        let _ = io.await;
        done
    })
}

/// One statement over a connection of its own.
fn sql(statement: &str) -> Result<Vec<tokio_postgres::Row>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let io = tokio::spawn(conn);
        let rows = client
            .query(statement, &[])
            .await
            .map_err(|e| e.to_string());
        drop(client);
        let _ = io.await;
        rows
    })
}

#[test]
fn nodes_starting_together_migrate_once() {
    let Some(schema) = Schema::new() else { return };
    let url = schema.url.clone();
    // Four nodes at once: the advisory lock lets one create the schema,
    // the others find it done.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url).map(|s| s.schema_version()))
        })
        .collect();
    let versions: Vec<usize> = handles
        .into_iter()
        .map(|h| h.join().unwrap().expect("open"))
        .collect();
    assert!(
        versions.iter().all(|v| *v == versions[0] && *v >= 1),
        "{versions:?}"
    );
    let rows = sql(&format!(
        "SELECT version FROM {}.schema_version",
        schema.name
    ))
    .unwrap();
    assert_eq!(rows.len(), 1, "one version row");
    // Opening again changes nothing.
    let store = PgStore::open(&url).unwrap();
    assert_eq!(store.schema_version(), versions[0]);
    assert!(
        store
            .server_version()
            .unwrap()
            .starts_with(char::is_numeric)
    );
    let (server, found) = postamt_store::postgres::probe(&url).unwrap();
    assert!(!server.is_empty());
    assert_eq!(found, Some(versions[0]));
}

#[test]
fn content_is_bytea_stored_outside_the_row_uncompressed() {
    let Some(schema) = Schema::new() else { return };
    PgStore::open(&schema.url).unwrap();
    // bench/README.md, "PostgreSQL: bytea or large objects": `e` is
    // STORAGE EXTERNAL.
    for (table, column) in [("blobs", "data"), ("queue", "content")] {
        let rows = sql(&format!(
            "SELECT a.attstorage::text, t.typname::text FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_type t ON t.oid = a.atttypid
             WHERE n.nspname = '{}' AND c.relname = '{table}' AND a.attname = '{column}'",
            schema.name
        ))
        .unwrap();
        assert_eq!(rows.len(), 1, "{table}.{column}");
        assert_eq!(rows[0].get::<_, String>(0), "e", "{table}.{column}");
        assert_eq!(rows[0].get::<_, String>(1), "bytea", "{table}.{column}");
    }
}

#[test]
fn a_schema_newer_than_this_version_is_refused() {
    let Some(schema) = Schema::new() else { return };
    PgStore::open(&schema.url).unwrap();
    sql(&format!(
        "UPDATE {}.schema_version SET version = 999",
        schema.name
    ))
    .unwrap();
    let err = PgStore::open(&schema.url).unwrap_err();
    assert!(err.to_string().contains("newer than this postamt"), "{err}");
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let err = PgStore::open("postgres://root@127.0.0.1:1/test?connect_timeout=2").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("cannot connect to PostgreSQL at root@127.0.0.1:1/test"),
        "{text}"
    );
    assert!(text.contains("refused"), "the cause is said: {text}");
    let bad = PgStore::open("postgres://root@127.0.0.1:notaport/test").unwrap_err();
    assert!(bad.to_string().contains("[store] url"), "{bad}");
}

/// The whole conformance suite, as SQLite runs it (`sqlite_conformance.rs`),
/// each check on a store in a schema of its own.
#[cfg(feature = "conformance")]
mod conformance {
    postamt_store::store_conformance_tests!(super::fresh_store());
}

/// A store in a new schema, kept for the rest of the process (the
/// conformance checks own their store; `Schema::new` drops the schemas of
/// test processes that ended).
#[cfg(feature = "conformance")]
fn fresh_store() -> std::sync::Arc<dyn postamt_store::Store> {
    let schema = Schema::new().expect("PostgreSQL for the conformance suite");
    let store = PgStore::open(&schema.url).unwrap();
    std::mem::forget(schema);
    std::sync::Arc::new(store)
}

/// PostgreSQL-only checks beside the suite.
#[cfg(feature = "conformance")]
mod more {
    use super::*;

    /// Two nodes flushing counts for the same row at once: none is lost
    /// (the upsert adds atomically).
    #[test]
    fn report_counts_from_two_nodes_add_up() {
        use postamt_store::{ReportCount, Reports};
        let Some(s) = Schema::new() else { return };
        let nodes = [store(&s), store(&s)];
        std::thread::scope(|scope| {
            for node in &nodes {
                scope.spawn(move || {
                    for _ in 0..50 {
                        node.report_add(vec![ReportCount {
                            begin: 0,
                            end: 10,
                            domain: "bank.example".into(),
                            published: "p".into(),
                            row: "r".into(),
                            count: 1,
                        }])
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(nodes[0].report_due(10).unwrap()[0].count, 100);
    }

    /// RFC 9051 §6.3.6 on PostgreSQL, with message rows written by hand
    /// (delivery comes with `Messages`): INBOX's messages move to the new
    /// mailbox with UIDs from 1, INBOX stays with its expunges logged, the
    /// content keeps its one reference, and a mailbox named with `_`
    /// renames only itself and its children.
    #[test]
    fn renaming_inbox_moves_its_messages() {
        use postamt_store::{Directory, Mailboxes};
        let Some(s) = Schema::new() else { return };
        let st = store(&s);
        st.add_domain("example.org").unwrap();
        let a = st.create_account("alice@example.org", "pw").unwrap();
        let inbox = st.mailbox(a.id, "inbox").unwrap().unwrap();
        let n = &s.name;
        batch(&format!(
            "INSERT INTO {n}.blobs(id, refcount, data, meta) VALUES (1, 1, 'x', '{{}}'), (2, 1, 'y', '{{}}');
             INSERT INTO {n}.messages(mailbox_id, uid, modseq, flags, internaldate, size, blob_id, prefix)
             VALUES ({0}, 7, 2, 1, 0, 10, 1, ''), ({0}, 9, 3, 0, 0, 20, 2, '');
             UPDATE {n}.mailboxes SET uidnext = 10, highestmodseq = 3 WHERE id = {0}",
            inbox.id.0
        ))
        .unwrap();
        assert_eq!(st.mailbox_status(inbox.id).unwrap().messages, 2);
        assert_eq!(st.mailbox_status(inbox.id).unwrap().unseen, 1);
        st.rename_mailbox(a.id, "INBOX", "Old").unwrap();
        let old = st.mailbox(a.id, "Old").unwrap().unwrap();
        let moved = sql(&format!(
            "SELECT uid, blob_id FROM {n}.messages WHERE mailbox_id = {} ORDER BY uid",
            old.id.0
        ))
        .unwrap();
        let moved: Vec<(i64, i64)> = moved.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(moved, [(1, 1), (2, 2)]);
        assert_eq!(old.uidnext.0, 3);
        assert_eq!(st.mailbox_status(inbox.id).unwrap().messages, 0);
        let logged = sql(&format!(
            "SELECT uid FROM {n}.expunged WHERE mailbox_id = {} ORDER BY uid",
            inbox.id.0
        ))
        .unwrap();
        assert_eq!(
            logged
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect::<Vec<_>>(),
            [7, 9]
        );
        assert!(st.mailbox(a.id, "INBOX").unwrap().unwrap().highestmodseq.0 > 3);
        // A name with LIKE's wildcard `_` renames only what it names.
        st.create_mailbox(a.id, "a_b", None).unwrap();
        st.create_mailbox(a.id, "a_b/c", None).unwrap();
        st.create_mailbox(a.id, "axb", None).unwrap();
        st.rename_mailbox(a.id, "a_b", "z").unwrap();
        let names: Vec<String> = st
            .mailboxes(a.id)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert!(
            names.contains(&"z".to_string()) && names.contains(&"z/c".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&"axb".to_string()), "{names:?}");
        // Deleting a mailbox frees its content.
        st.delete_mailbox(a.id, "Old").unwrap();
        let blobs = sql(&format!("SELECT count(*) FROM {n}.blobs")).unwrap();
        assert_eq!(blobs[0].get::<_, i64>(0), 0);
    }

    fn store(schema: &Schema) -> PgStore {
        PgStore::open(&schema.url).unwrap()
    }

    /// What SQLite's suite checks through `Mailboxes`, read here from the
    /// tables: the mailboxes and subscriptions an account starts with, and
    /// that they go with it.
    #[test]
    fn an_account_comes_and_goes_with_its_mailboxes() {
        use postamt_store::Directory;
        let Some(s) = Schema::new() else { return };
        let st = store(&s);
        st.add_domain("example.org").unwrap();
        let a = st.create_account("alice@example.org", "pw").unwrap();
        let rows = sql(&format!(
            "SELECT name, special_use, uidvalidity FROM {}.mailboxes WHERE account_id = {} ORDER BY name",
            s.name, a.id.0
        ))
        .unwrap();
        let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(
            names,
            ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
        );
        let mut validities: Vec<i64> = rows.iter().map(|r| r.get(2)).collect();
        validities.sort();
        validities.dedup();
        assert_eq!(validities.len(), 6, "each mailbox its own UIDVALIDITY");
        let subs = sql(&format!(
            "SELECT count(*) FROM {}.subscriptions WHERE account_id = {}",
            s.name, a.id.0
        ))
        .unwrap();
        assert_eq!(subs[0].get::<_, i64>(0), 6);
        st.delete_account("alice@example.org").unwrap();
        let left = sql(&format!(
            "SELECT (SELECT count(*) FROM {0}.mailboxes) + (SELECT count(*) FROM {0}.subscriptions)",
            s.name
        ))
        .unwrap();
        assert_eq!(left[0].get::<_, i64>(0), 0);
        // A new account of the same name gets new UIDVALIDITYs.
        let b = st.create_account("alice@example.org", "pw").unwrap();
        let again = sql(&format!(
            "SELECT min(uidvalidity) FROM {}.mailboxes WHERE account_id = {}",
            s.name, b.id.0
        ))
        .unwrap();
        assert!(again[0].get::<_, i64>(0) > *validities.last().unwrap());
    }
}
