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

/// The failover path README describes: the URL names two database
/// servers and `target_session_attrs=read-write`; the first does not
/// answer, the store connects to the second.
#[test]
fn a_url_with_two_hosts_finds_the_one_that_answers() {
    let Some(schema) = Schema::new() else { return };
    let base = base_url();
    let Some(rest) = base.strip_prefix("postgres://root@127.0.0.1:5432/") else {
        return; // another database than the machine's: not this test's case
    };
    let url = format!(
        "postgres://root@127.0.0.1:1,127.0.0.1:5432/{rest}?target_session_attrs=read-write&connect_timeout=2&options=-csearch_path%3D{}",
        schema.name
    );
    let store = PgStore::open(&url).unwrap();
    assert!(store.schema_version() >= 1);
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

    /// SEARCH by the trigram index (RFC 9051 §6.4.4: case-insensitive
    /// substrings): before indexing every message is to be checked; after,
    /// BODY and TEXT are answered exactly — `%`, `_` and `\` in a needle
    /// are themselves, case folds as `to_lowercase` folds (ẞ, İ) —, the
    /// delivery prefix and HEADER stay the caller's to check, and for
    /// every needle the index's answer plus the checked rest is what a
    /// scan of every message finds.
    #[test]
    fn search_by_the_trigram_index_is_exact() {
        use postamt_store::*;
        let Some(s) = Schema::new() else { return };
        let st = store(&s);
        st.add_domain("example.org").unwrap();
        let a = st.create_account("alice@example.org", "pw").unwrap();
        const PREFIX: &[u8] = b"Delivered-To: alice@example.org\r\n";
        let bodies = [
            "Subject: Quarterly report\r\n\r\nThe report is 50% done.\r\n",
            "Subject: rates\r\n\r\nabout 500 units, file a_b.txt\r\n",
            "Subject: paths\r\n\r\nC:\\temp\\axb and GRO\u{1e9e}E Freude aus \u{130}stanbul\r\n",
            "Subject: nothing\r\n\r\nplain words only\r\n",
        ];
        let mut uids = Vec::new();
        for b in bodies {
            let t = DeliveryTarget {
                prefix: PREFIX.to_vec(),
                ..DeliveryTarget::inbox(a.id)
            };
            uids.push(
                st.deliver(Delivery::new(b.as_bytes().to_vec(), 1, vec![t]))
                    .unwrap()[0]
                    .uid,
            );
        }
        let inbox = st.mailbox(a.id, "INBOX").unwrap().unwrap().id;
        let before = st
            .text_matches(inbox, "report", TextScope::Body)
            .unwrap()
            .unwrap();
        assert!(before.certain.is_empty());
        assert_eq!(before.unsure, uids, "unindexed: all to check");
        while st.index_batch().unwrap() > 0 {}
        let scan = |needle: &str, scope: TextScope| -> Vec<Uid> {
            let folded = needle.to_lowercase();
            let mut out = Vec::new();
            for (uid, content) in st.message_contents(inbox, &uids).unwrap() {
                let (prefix, own) = content.split_at(PREFIX.len());
                let t = postamt_wire::search::extract(own);
                let prefix = String::from_utf8_lossy(prefix).to_lowercase();
                let hit = match scope {
                    TextScope::Body => t.body.to_lowercase().contains(&folded),
                    _ => {
                        t.body.to_lowercase().contains(&folded)
                            || t.headers.to_lowercase().contains(&folded)
                            || prefix.contains(&folded)
                    }
                };
                if hit {
                    out.push(uid);
                }
            }
            out
        };
        let body = |n: &str| st.text_matches(inbox, n, TextScope::Body).unwrap().unwrap();
        assert_eq!(body("REPORT").certain, vec![uids[0]]);
        assert!(body("REPORT").unsure.is_empty());
        assert_eq!(body("50%").certain, vec![uids[0]], "% is itself");
        assert_eq!(body("a_b").certain, vec![uids[1]], "_ is itself");
        assert_eq!(body("\\temp").certain, vec![uids[2]], "\\ is itself");
        assert_eq!(body("gro\u{df}e").certain, vec![uids[2]], "ẞ folds to ß");
        assert_eq!(
            body("i\u{307}stanbul").certain,
            vec![uids[2]],
            "İ folds to i̇"
        );
        assert!(body("absent words").certain.is_empty());
        // TEXT: the prefix is not indexed: every message with one is checked.
        let text = st
            .text_matches(inbox, "delivered-to: alice", TextScope::Text)
            .unwrap()
            .unwrap();
        assert!(text.certain.is_empty());
        assert_eq!(text.unsure, uids);
        let text = st
            .text_matches(inbox, "quarterly", TextScope::Text)
            .unwrap()
            .unwrap();
        assert_eq!(text.certain, vec![uids[0]]);
        assert!(text.unsure.is_empty(), "an ASCII needle not in any prefix");
        // HEADER: candidates only.
        let h = st
            .text_matches(inbox, "quarterly", TextScope::Header)
            .unwrap()
            .unwrap();
        assert!(h.certain.is_empty());
        assert_eq!(h.unsure, vec![uids[0]]);
        assert!(
            st.text_matches(inbox, "50", TextScope::Body)
                .unwrap()
                .is_none(),
            "too short"
        );
        for needle in [
            "report",
            "50%",
            "a_b",
            "subject: rates",
            "\u{130}stanbul",
            "units, file",
            "words",
            "alice@example.org",
        ] {
            for scope in [TextScope::Body, TextScope::Text] {
                let m = st.text_matches(inbox, needle, scope).unwrap().unwrap();
                let mut got = m.certain.clone();
                got.extend(
                    scan(needle, scope)
                        .into_iter()
                        .filter(|u| m.unsure.contains(u)),
                );
                got.sort();
                got.dedup();
                assert_eq!(got, scan(needle, scope), "{needle:?} {scope:?}");
            }
        }
        // The indexes exist, and expunged content leaves the table.
        let idx = sql(&format!(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = '{}' AND tablename = 'search_text'
             AND indexdef LIKE '%gin_trgm_ops%'",
            s.name
        ))
        .unwrap();
        assert_eq!(idx[0].get::<_, i64>(0), 2);
        st.expunge(inbox, &uids).unwrap();
        let left = sql(&format!("SELECT count(*) FROM {}.search_text", s.name)).unwrap();
        assert_eq!(left[0].get::<_, i64>(0), 0);
    }

    fn store(schema: &Schema) -> PgStore {
        PgStore::open(&schema.url).unwrap()
    }

    /// PostgreSQL's text cannot hold NUL (SQLite's can): a message with NUL
    /// bytes in its headers and body (hostile, or just broken) is stored,
    /// found by SEARCH on its other words, and does not stall the indexer.
    #[test]
    fn nul_bytes_in_a_message_are_stored_and_indexed() {
        use postamt_store::{Delivery, DeliveryTarget, Directory, Mailboxes, Messages, Uid};
        let Some(sc) = Schema::new() else { return };
        let s = store(&sc);
        s.add_domain("example.org").unwrap();
        let a = s.create_account("alice@example.org", "pw-a").unwrap();
        let content = b"Subject: odd\0subject words\r\nFrom: x\0y@remote.example\r\nTo: alice@example.org\r\n\r\nbody with \0 nul and findable text\r\n".to_vec();
        for targets in [
            vec![DeliveryTarget::inbox(a.id)],
            vec![DeliveryTarget::inbox(a.id), DeliveryTarget::inbox(a.id)],
        ] {
            let d = Delivery::new(content.clone(), 1_700_000_000, targets);
            s.deliver(d).unwrap();
        }
        let inbox = s.mailbox(a.id, "INBOX").unwrap().unwrap();
        let uids: Vec<Uid> = (1..=3).map(Uid).collect();
        let got = s.message_contents(inbox.id, &uids).unwrap();
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|(_, c)| c.ends_with(&content)));
        let metas = s.message_metas(inbox.id, &uids).unwrap();
        assert_eq!(metas.len(), 3);
        // The indexer gets through it (a stall would leave it unindexed).
        for _ in 0..100 {
            if s.index_batch().unwrap() == 0 {
                break;
            }
        }
        let found = s
            .text_matches(inbox.id, "findable", postamt_store::TextScope::Body)
            .unwrap();
        assert!(found.is_some(), "{found:?}");
    }

    /// Schema 3: the rendered ENVELOPE is kept beside each message (one
    /// target or several, COPY, MOVE, INBOX renamed); rows without it
    /// (from schema 2) are answered from `envelopes` with the same bytes.
    #[test]
    fn envelopes_beside_the_messages_and_from_older_rows_alike() {
        use postamt_store::{
            Delivery, DeliveryTarget, Directory, MailboxId, Mailboxes, Messages, StoredEnvelope,
            Uid,
        };
        let Some(sc) = Schema::new() else { return };
        let s = store(&sc);
        s.add_domain("example.org").unwrap();
        let a = s.create_account("alice@example.org", "pw-a").unwrap();
        let b = s.create_account("bob@example.org", "pw-b").unwrap();
        for i in 0..6 {
            let targets = if i % 2 == 0 {
                vec![DeliveryTarget::inbox(a.id)]
            } else {
                vec![DeliveryTarget::inbox(a.id), DeliveryTarget::inbox(b.id)]
            };
            let mut d = Delivery::new(
                format!("Subject: m{i}\r\n\r\nbody {i}\r\n").into_bytes(),
                1_700_000_000 + i,
                targets,
            );
            d.imap_envelope = Some(format!("(env {i})").into_bytes());
            s.deliver(d).unwrap();
        }
        let inbox = s.mailbox(a.id, "INBOX").unwrap().unwrap();
        let archive = s.create_mailbox(a.id, "Kept", None).unwrap();
        let all: Vec<Uid> = (1..=6).map(Uid).collect();
        s.copy_messages(inbox.id, &all[..2], archive.id, false)
            .unwrap();
        s.copy_messages(inbox.id, &all[2..4], archive.id, true)
            .unwrap();
        s.rename_mailbox(a.id, "INBOX", "Old").unwrap();
        let old = s.mailbox(a.id, "Old").unwrap().unwrap();
        let read =
            |m: MailboxId| -> Vec<(Uid, StoredEnvelope)> { s.message_envelopes(m, &all).unwrap() };
        let before = [read(old.id), read(archive.id)];
        let env = |i: u32| StoredEnvelope::Rendered(format!("(env {i})").into_bytes());
        // INBOX kept 1, 2, 5, 6 (3 and 4 moved); renamed, they are 1..4.
        assert_eq!(
            before[0],
            vec![
                (Uid(1), env(0)),
                (Uid(2), env(1)),
                (Uid(3), env(4)),
                (Uid(4), env(5))
            ]
        );
        assert_eq!(
            before[1],
            vec![
                (Uid(1), env(0)),
                (Uid(2), env(1)),
                (Uid(3), env(2)),
                (Uid(4), env(3))
            ]
        );
        let missing = sql(&format!(
            "SELECT count(*) FROM {}.messages WHERE envelope IS NULL",
            sc.name
        ))
        .unwrap();
        assert_eq!(missing[0].get::<_, i64>(0), 0);
        sql(&format!("UPDATE {}.messages SET envelope = NULL", sc.name)).unwrap();
        assert_eq!([read(old.id), read(archive.id)], before);
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

/// Several nodes on one database (issue 18): each test opens two stores on
/// one schema, as two `postamt serve` processes would.
#[cfg(feature = "conformance")]
mod nodes {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use postamt_store::postgres::PgOptions;
    use postamt_store::*;

    use super::*;

    fn node(schema: &Schema, name: &str, lease: Duration) -> Arc<PgStore> {
        Arc::new(
            PgStore::open_with(PgOptions {
                node: name.to_string(),
                lease,
                ..PgOptions::new(&schema.url)
            })
            .unwrap(),
        )
    }

    fn two(schema: &Schema) -> (Arc<PgStore>, Arc<PgStore>, Account) {
        let a = node(schema, "a", Duration::from_secs(60));
        let b = node(schema, "b", Duration::from_secs(60));
        a.add_domain("example.org").unwrap();
        let alice = a.create_account("alice@example.org", "pw").unwrap();
        (a, b, alice)
    }

    /// Returns once `to` has heard everything `from` committed so far:
    /// notices arrive in commit order, so a marker written last is heard
    /// last.
    fn quiesce(from: &PgStore, to: &PgStore) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mut feed = to.watch();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let marker = from
            .create_account(&format!("marker{n}@example.org"), "pw")
            .unwrap();
        let start = Instant::now();
        loop {
            match feed.try_recv() {
                Ok(c) if c.account() == Some(marker.id) => return,
                Ok(_) => {}
                Err(_) => {
                    assert!(start.elapsed() < Duration::from_secs(5), "marker not heard");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    fn message(n: usize) -> Delivery {
        Delivery::new(
            format!("Subject: m{n}\r\n\r\nbody {n}\r\n").into_bytes(),
            1_700_000_000,
            Vec::new(),
        )
    }

    fn to(delivery: Delivery, account: AccountId) -> Delivery {
        Delivery {
            targets: vec![DeliveryTarget::inbox(account)],
            ..delivery
        }
    }

    /// Waits (at most 5 s) for a signal to move; how long it took.
    fn changed(rx: &mut tokio::sync::watch::Receiver<AccountSignal>) -> Duration {
        let start = Instant::now();
        while !rx.has_changed().unwrap() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no signal within 5 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        rx.borrow_and_update();
        start.elapsed()
    }

    #[test]
    fn a_second_process_with_the_same_node_name_is_refused() {
        let Some(s) = Schema::new() else { return };
        let first = node(&s, "mx1", Duration::from_secs(60));
        let err = PgStore::open_with(PgOptions {
            node: "mx1".into(),
            ..PgOptions::new(&s.url)
        })
        .unwrap_err();
        assert!(err.to_string().contains("node \"mx1\""), "{err}");
        drop(first);
        // Once the first is gone, the name is free (its connection closed).
        let start = Instant::now();
        loop {
            match PgStore::open_with(PgOptions {
                node: "mx1".into(),
                ..PgOptions::new(&s.url)
            }) {
                Ok(_) => break,
                Err(e) => assert!(start.elapsed() < Duration::from_secs(5), "{e}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A delivery on node A, a flag change on node B, an expunge and a
    /// mailbox rename: the other node's watchers of that account hear of
    /// each (LISTEN/NOTIFY), and the change feed carries the changes
    /// themselves.
    #[test]
    fn changes_on_one_node_reach_the_other() {
        let Some(s) = Schema::new() else { return };
        let (a, b, alice) = two(&s);
        let bob = a.create_account("bob@example.org", "pw").unwrap();
        quiesce(&a, &b);
        quiesce(&b, &a);
        let mut on_b = b.watch_account(alice.id);
        let bob_on_b = b.watch_account(bob.id);
        let mut feed_b = b.watch();
        let mut on_a = a.watch_account(alice.id);
        let d = a.deliver(to(message(1), alice.id)).unwrap()[0];
        let took = changed(&mut on_b);
        assert!(took < Duration::from_secs(1), "{took:?}");
        let start = Instant::now();
        let heard = loop {
            match feed_b.try_recv() {
                Ok(c @ Change::MessageAdded { .. }) => break c,
                Ok(_) => {}
                Err(_) => {
                    assert!(start.elapsed() < Duration::from_secs(5));
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        };
        assert!(matches!(heard, Change::MessageAdded { uid, .. } if uid == d.uid));
        on_a.borrow_and_update();
        b.store_flags(d.mailbox, &[d.uid], FlagOp::Add, Flags::SEEN, &[], None)
            .unwrap();
        changed(&mut on_a);
        let seen = a.messages(d.mailbox, ModSeq(0)).unwrap();
        assert_eq!(seen[0].flags, Flags::SEEN, "A reads B's change");
        a.expunge(d.mailbox, &[d.uid]).unwrap();
        changed(&mut on_b);
        b.create_mailbox(alice.id, "Projects", None).unwrap();
        b.rename_mailbox(alice.id, "Projects", "Done").unwrap();
        changed(&mut on_a);
        assert!(a.mailbox(alice.id, "Done").unwrap().is_some());
        assert!(!bob_on_b.has_changed().unwrap(), "bob woke for alice");
    }

    /// Changes too large for one notice (PostgreSQL takes 8000 bytes)
    /// still wake the other node's watchers of the accounts concerned.
    #[test]
    fn a_large_change_is_announced_by_its_accounts() {
        let Some(s) = Schema::new() else { return };
        let (a, b, alice) = two(&s);
        let many: Vec<Delivery> = (0..2500).map(|n| to(message(n), alice.id)).collect();
        let done = a.deliver_many(many).unwrap();
        let inbox = done[0][0].mailbox;
        let uids: Vec<Uid> = done.iter().map(|d| d[0].uid).collect();
        quiesce(&a, &b);
        let mut on_b = b.watch_account(alice.id);
        on_b.borrow_and_update();
        let mut feed_b = b.watch();
        let flagged = a
            .store_flags(inbox, &uids, FlagOp::Add, Flags::FLAGGED, &[], None)
            .unwrap();
        assert_eq!(flagged.0.len(), 2500);
        changed(&mut on_b);
        let start = Instant::now();
        loop {
            match feed_b.try_recv() {
                Ok(Change::External) => break,
                Ok(other) => panic!("unexpected {:?}", other.account()),
                Err(_) => {
                    assert!(start.elapsed() < Duration::from_secs(5));
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// Both nodes deliver (and append) into one mailbox at once: UIDs are
    /// never shared, leave no gap, and MODSEQs never repeat.
    #[test]
    fn concurrent_deliveries_from_two_nodes_share_no_uid() {
        let Some(s) = Schema::new() else { return };
        let (a, b, alice) = two(&s);
        let per_thread = 40;
        let got: Vec<(Uid, ModSeq)> = std::thread::scope(|scope| {
            let handles: Vec<_> = [&a, &b, &a, &b]
                .into_iter()
                .enumerate()
                .map(|(t, node)| {
                    let alice = alice.id;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for n in 0..per_thread {
                            let d = node.deliver(to(message(t * 1000 + n), alice)).unwrap()[0];
                            out.push(d.uid);
                        }
                        out
                    })
                })
                .collect();
            let uids: Vec<Uid> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            let inbox = a.mailbox(alice.id, "INBOX").unwrap().unwrap();
            let listed = b.messages(inbox.id, ModSeq(0)).unwrap();
            assert_eq!(listed.len(), uids.len());
            listed.into_iter().map(|m| (m.uid, m.modseq)).collect()
        });
        let uids: BTreeSet<u32> = got.iter().map(|(u, _)| u.0).collect();
        assert_eq!(uids.len(), 4 * per_thread, "a UID was shared");
        assert_eq!(
            uids.iter().copied().collect::<Vec<_>>(),
            (1..=(4 * per_thread) as u32).collect::<Vec<_>>(),
            "UIDs without gaps"
        );
        let modseqs: BTreeSet<u64> = got.iter().map(|(_, m)| m.0).collect();
        assert_eq!(modseqs.len(), got.len(), "a MODSEQ was shared");
    }

    /// The POP3 maildrop lock holds across nodes (RFC 1939 §8), and is
    /// released with the node that held it.
    #[test]
    fn the_maildrop_lock_holds_across_nodes() {
        let Some(s) = Schema::new() else { return };
        let (a, b, alice) = two(&s);
        let lock = a.lock_maildrop(alice.id).unwrap().expect("A locks");
        assert!(b.lock_maildrop(alice.id).unwrap().is_none(), "B too");
        assert!(a.lock_maildrop(alice.id).unwrap().is_none(), "A twice");
        drop(lock);
        let start = Instant::now();
        let on_b = loop {
            if let Some(l) = b.lock_maildrop(alice.id).unwrap() {
                break l;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "never released");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(a.lock_maildrop(alice.id).unwrap().is_none());
        // Node B goes away holding it: its connection closes, and A can
        // take it.
        std::mem::forget(on_b);
        drop(b);
        let start = Instant::now();
        while a.lock_maildrop(alice.id).unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "kept by a dead node"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `\Recent` (RFC 3501 §2.3.2) is claimed by one session on one node
    /// only, however the claims interleave.
    #[test]
    fn recent_is_claimed_once_across_nodes() {
        let Some(s) = Schema::new() else { return };
        let (a, b, alice) = two(&s);
        let inbox = a.mailbox(alice.id, "INBOX").unwrap().unwrap();
        let claimed: Vec<(Uid, Uid)> = std::thread::scope(|scope| {
            let hs: Vec<_> = [&a, &b]
                .into_iter()
                .enumerate()
                .map(|(t, node)| {
                    let alice = alice.id;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for n in 0..30 {
                            node.deliver(to(message(t * 100 + n), alice)).unwrap();
                            out.push(node.claim_recent(inbox.id).unwrap());
                        }
                        out
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut seen = BTreeSet::new();
        for (from, to) in claimed {
            for u in from.0..to.0 {
                assert!(seen.insert(u), "UID {u} recent twice");
            }
        }
        assert_eq!(seen.len(), 60);
    }

    fn outbound(to: &str) -> Outbound {
        Outbound {
            sender: "alice@example.org".into(),
            recipients: vec![QueuedRecipient::new(to)],
            envelope: OutboundEnvelope::default(),
            content: b"Subject: out\r\n\r\nx\r\n".to_vec(),
        }
    }

    /// Both nodes claim from one queue at once: each entry goes to one of
    /// them (FOR UPDATE SKIP LOCKED), and a node's settle makes it due
    /// again for either.
    #[test]
    fn queue_entries_are_claimed_by_one_node() {
        let Some(s) = Schema::new() else { return };
        let (a, b, _) = two(&s);
        for n in 0..60 {
            a.enqueue(outbound(&format!("r{n}@remote.example")))
                .unwrap();
        }
        let far = i64::MAX / 2;
        let (got_a, got_b) = std::thread::scope(|scope| {
            let ha = scope.spawn(|| {
                (0..30)
                    .flat_map(|_| a.queue_claim(far, 3).unwrap())
                    .collect::<Vec<_>>()
            });
            let hb = scope.spawn(|| {
                (0..30)
                    .flat_map(|_| b.queue_claim(far, 3).unwrap())
                    .collect::<Vec<_>>()
            });
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let ids_a: BTreeSet<i64> = got_a.iter().map(|e| e.id.0).collect();
        let ids_b: BTreeSet<i64> = got_b.iter().map(|e| e.id.0).collect();
        assert_eq!(ids_a.len() + ids_b.len(), 60, "every entry claimed once");
        assert!(ids_a.is_disjoint(&ids_b), "an entry claimed by both nodes");
        assert!(got_a.iter().chain(&got_b).all(|e| e.active));
        // All claimed: A's own claims are not due; B's are, from A's
        // view, when they would run out (later than now).
        let due = a
            .queue_next_due()
            .unwrap()
            .expect("B's claims run out some time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(due > now + 30, "B's claims are due now");
        // A settle by a node that does not hold the claim is dropped.
        let theirs = got_b[0].id;
        a.queue_settle(
            theirs,
            QueueSettle {
                failed: vec![(got_b[0].recipients[0].address.clone(), "550 no".into())],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            a.queue_entry(theirs).unwrap().is_some(),
            "not A's to settle"
        );
        b.queue_settle(
            theirs,
            QueueSettle {
                deferred: vec![(got_b[0].recipients[0].address.clone(), "451 later".into())],
                next_attempt: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let again = a.queue_claim(far, 10).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, theirs);
        assert_eq!(again[0].recipients[0].attempts, 1);
    }

    /// A node that dies loses its claims when the lease runs out, and the
    /// other node takes them; a live node keeps its claims however long
    /// its attempt takes (the lease is renewed), and at its next start a
    /// node takes back its own claims at once.
    #[test]
    fn a_dead_nodes_claims_run_out_and_a_live_node_keeps_its_own() {
        let Some(s) = Schema::new() else { return };
        let lease = Duration::from_secs(2);
        let a = node(&s, "a", lease);
        let b = node(&s, "b", lease);
        a.add_domain("example.org").unwrap();
        let first = a.enqueue(outbound("x@remote.example")).unwrap();
        let second = a.enqueue(outbound("y@remote.example")).unwrap();
        let far = i64::MAX / 2;
        assert_eq!(a.queue_claim(far, 1).unwrap()[0].id, first);
        assert_eq!(b.queue_claim(far, 1).unwrap()[0].id, second);
        // Twice the lease later, both claims still hold: renewed.
        std::thread::sleep(lease * 2);
        assert!(a.queue_claim(far, 10).unwrap().is_empty());
        assert!(b.queue_claim(far, 10).unwrap().is_empty());
        // B dies (its process ends: no more renewals).
        drop(b);
        let start = Instant::now();
        let taken = loop {
            let got = a.queue_claim(far, 10).unwrap();
            if !got.is_empty() {
                break got;
            }
            assert!(start.elapsed() < lease * 3, "the dead node's claim stayed");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(taken[0].id, second);
        // A restarts as "a": its claims are its own to release at once.
        drop(a);
        let a = {
            let start = Instant::now();
            loop {
                match PgStore::open_with(PgOptions {
                    node: "a".into(),
                    lease,
                    ..PgOptions::new(&s.url)
                }) {
                    Ok(a) => break a,
                    Err(e) => assert!(start.elapsed() < Duration::from_secs(5), "{e}"),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        assert_eq!(a.queue_release_claims().unwrap(), 2);
        assert_eq!(a.queue_claim(far, 10).unwrap().len(), 2);
    }

    /// The local domains a node keeps (SMTP asks at every RCPT) are
    /// forgotten when another node changes them: the change is seen at
    /// once, not after the list's time to live.
    #[test]
    fn a_domain_added_on_one_node_is_local_on_the_other_at_once() {
        let Some(s) = Schema::new() else { return };
        let (a, b, _) = two(&s);
        assert!(!b.domains().unwrap().contains(&"new.example".to_string()));
        a.add_domain("new.example").unwrap();
        let start = Instant::now();
        while !b.domains().unwrap().contains(&"new.example".to_string()) {
            assert!(
                start.elapsed() < Duration::from_millis(500),
                "B kept its old list"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        a.remove_domain("new.example").unwrap();
        let start = Instant::now();
        while b.domains().unwrap().contains(&"new.example".to_string()) {
            assert!(
                start.elapsed() < Duration::from_millis(500),
                "B kept its old list"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// One node sends the DMARC aggregate reports (two would send each
    /// report twice): the first to ask; when it is gone, another.
    #[test]
    fn one_node_sends_the_reports() {
        let Some(s) = Schema::new() else { return };
        let (a, b, _) = two(&s);
        let count = ReportCount {
            begin: 0,
            end: 10,
            domain: "bank.example".into(),
            published: "p".into(),
            row: "r".into(),
            count: 1,
        };
        a.report_add(vec![count.clone()]).unwrap();
        b.report_add(vec![count]).unwrap();
        assert_eq!(a.report_due(10).unwrap()[0].count, 2);
        assert!(b.report_due(10).unwrap().is_empty(), "B reports too");
        assert_eq!(a.report_due(10).unwrap().len(), 1, "A stays the reporter");
        drop(a);
        let start = Instant::now();
        while b.report_due(10).unwrap().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(5), "nobody reports");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The control connection is cut (as by a PostgreSQL restart or a
    /// network fault): the node opens it again, tells its watchers to
    /// re-read what they show, and hears the other node again.
    #[test]
    fn a_lost_control_connection_is_opened_again_and_watchers_re_read() {
        let Some(s) = Schema::new() else { return };
        let (a, b, alice) = two(&s);
        let mut on_b = b.watch_account(alice.id);
        let mut feed_b = b.watch();
        let before = *on_b.borrow_and_update();
        // End B's control connection: the one holding B's node lock in
        // this schema.
        let killed = sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_locks
             WHERE locktype = 'advisory' AND objsubid = 2
               AND classid = hashtext('postamt.{}.node')::oid AND objid = hashtext('b')::oid",
            s.name
        ))
        .unwrap();
        assert!(!killed.is_empty(), "B's control connection found");
        let start = Instant::now();
        loop {
            if let Ok(Change::External) = feed_b.try_recv() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "no re-read");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(on_b.borrow_and_update().external > before.external);
        a.deliver(to(message(1), alice.id)).unwrap();
        changed(&mut on_b);
    }
}

/// `postamt store migrate` (issue 18): a SQLite store with everything in
/// it — content in the database, in files and in packs, flags, keywords,
/// expunges, several mailboxes, subscriptions, aliases, an S/MIME
/// certificate, queue entries, report counts — moved into PostgreSQL:
/// what clients see is the same (UIDVALIDITY, UIDs, MODSEQs, flags,
/// content), and the store goes on from there.
#[cfg(feature = "conformance")]
mod migrate {
    use std::sync::Arc;

    use postamt_store::*;

    use super::*;

    fn sqlite(dir: &std::path::Path, pack_size: u64) -> Arc<SqliteStore> {
        let mut o = SqliteOptions::new(dir.join("store.db"));
        o.file_min_size = 2000;
        o.pack_size = pack_size;
        Arc::new(SqliteStore::open(o).unwrap())
    }

    fn fill(s: &SqliteStore) -> Account {
        s.add_domain("example.org").unwrap();
        let a = s.create_account("alice@example.org", "pw-a").unwrap();
        let b = s.create_account("bob@example.org", "pw-b").unwrap();
        s.set_quota(b.id, Some(10_000_000)).unwrap();
        s.set_smime_certificate(
            a.id,
            Some(b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"),
        )
        .unwrap();
        s.add_alias("postmaster@example.org", &["alice@example.org".to_string()])
            .unwrap();
        s.create_mailbox(a.id, "Projects/2026", None).unwrap();
        s.subscribe(a.id, "Projects/2026").unwrap();
        for i in 0..40 {
            // Small, file-sized and pack-sized content, 8-bit too.
            let body = match i % 3 {
                0 => format!("small {i}\r\n"),
                1 => format!("{}\r\n", "large line of text ".repeat(200)),
                _ => format!("gr\u{fc}\u{df}e {i} {}\r\n", "x".repeat(3000)),
            };
            let mut d = Delivery::new(
                format!("Subject: m{i}\r\nFrom: x@remote.example\r\n\r\n{body}").into_bytes(),
                1_700_000_000 + i,
                vec![
                    DeliveryTarget {
                        prefix: format!("Delivered-To: alice@example.org\r\nX-N: {i}\r\n")
                            .into_bytes(),
                        keywords: if i % 5 == 0 {
                            vec!["$Work".into()]
                        } else {
                            vec![]
                        },
                        ..DeliveryTarget::inbox(a.id)
                    },
                    DeliveryTarget::inbox(b.id),
                ],
            );
            d.imap_envelope = (i % 2 == 0).then(|| format!("(env {i})").into_bytes());
            s.deliver(d).unwrap();
        }
        let inbox = s.mailbox(a.id, "INBOX").unwrap().unwrap();
        s.store_flags(
            inbox.id,
            &[Uid(3), Uid(4), Uid(5)],
            FlagOp::Add,
            Flags::SEEN,
            &[],
            None,
        )
        .unwrap();
        s.expunge(inbox.id, &[Uid(7), Uid(8)]).unwrap();
        let projects = s.mailbox(a.id, "Projects/2026").unwrap().unwrap();
        s.copy_messages(inbox.id, &[Uid(1), Uid(2), Uid(9)], projects.id, true)
            .unwrap();
        s.claim_recent(inbox.id).unwrap();
        s.enqueue(Outbound {
            sender: "alice@example.org".into(),
            recipients: vec![
                QueuedRecipient::new("carol@remote.example"),
                QueuedRecipient::new("dave@remote.example"),
            ],
            envelope: OutboundEnvelope {
                ret: Some("HDRS".into()),
                ..Default::default()
            },
            content: b"Subject: out\r\n\r\nqueued\r\n".to_vec(),
        })
        .unwrap();
        s.report_add(vec![ReportCount {
            begin: 0,
            end: 86400,
            domain: "bank.example".into(),
            published: "{\"p\":\"reject\"}".into(),
            row: "{\"ip\":\"192.0.2.1\"}".into(),
            count: 3,
        }])
        .unwrap();
        a
    }

    /// Everything a client or the relay could see, per account.
    fn view(s: &dyn Store) -> String {
        let mut out = String::new();
        for acc in s.accounts().unwrap() {
            out += &format!("{acc:?}\n");
            out += &format!("subs {:?}\n", s.subscriptions(acc.id).unwrap());
            for m in s.mailboxes(acc.id).unwrap() {
                out += &format!("{m:?} recent {:?}\n", s.recent_from(m.id).unwrap());
                let list = s.messages(m.id, ModSeq(0)).unwrap();
                let uids: Vec<Uid> = list.iter().map(|x| x.uid).collect();
                out += &format!("{list:?}\n");
                out += &format!("{:?}\n", s.message_contents(m.id, &uids).unwrap());
                out += &format!("{:?}\n", s.message_metas(m.id, &uids).unwrap());
                out += &format!("{:?}\n", s.message_envelopes(m.id, &uids).unwrap());
                out += &format!("{:?}\n", s.search_headers(m.id, Uid(0)).unwrap());
                out += &format!(
                    "expunged {:?}\n",
                    s.expunged_since(m.id, ModSeq(1)).unwrap()
                );
            }
        }
        out += &format!("{:?}\n", s.domains().unwrap());
        out += &format!("{:?}\n", s.aliases().unwrap());
        let ids: Vec<AccountId> = s.accounts().unwrap().iter().map(|a| a.id).collect();
        out += &format!("{:?}\n", s.smime_certificates(&ids).unwrap());
        for e in s.queue().unwrap() {
            out += &format!("{e:?} {:?}\n", s.queue_entry(e.id).unwrap().map(|x| x.1));
        }
        out += &format!("{:?}\n", s.report_due(i64::MAX / 2).unwrap());
        out
    }

    #[test]
    fn a_sqlite_store_moves_into_postgres_unchanged() {
        for pack_size in [0, 1 << 20] {
            let Some(schema) = Schema::new() else { return };
            let dir = tempfile::tempdir().unwrap();
            let from = sqlite(dir.path(), pack_size);
            let alice = fill(&from);
            let to = PgStore::open(&schema.url).unwrap();
            let mut lines = Vec::new();
            let report = to
                .import_sqlite(&from, &mut |l| lines.push(l.to_string()))
                .unwrap();
            assert!(lines.iter().any(|l| l.starts_with("messages")), "{lines:?}");
            let rows = |t: &str| report.tables.iter().find(|(n, _)| n == t).unwrap().1;
            assert_eq!(rows("messages"), 40 + 40 - 2);
            assert_eq!(rows("expunged"), 2 + 3);
            assert!(report.content_bytes > 40 * 1000);
            let to: Arc<dyn Store> = Arc::new(to);
            let before = view(&*from);
            assert_eq!(view(&*to), before, "pack_size {pack_size}");
            // Passwords still work; the store goes on after the copied
            // UIDs, ids and UIDVALIDITYs.
            assert!(
                to.verify_password("alice@example.org", "pw-a")
                    .unwrap()
                    .is_some()
            );
            let inbox = to.mailbox(alice.id, "INBOX").unwrap().unwrap();
            let d = to
                .deliver(Delivery::new(
                    b"Subject: after\r\n\r\nx\r\n".to_vec(),
                    1,
                    vec![DeliveryTarget::inbox(alice.id)],
                ))
                .unwrap()[0];
            assert_eq!(d.uid, inbox.uidnext);
            let newest = to
                .mailboxes(alice.id)
                .unwrap()
                .iter()
                .map(|m| m.uidvalidity.0)
                .max()
                .unwrap();
            let fresh = to.create_mailbox(alice.id, "Fresh", None).unwrap();
            assert!(fresh.uidvalidity.0 > newest);
            let carol = to.create_account("carol@example.org", "pw").unwrap();
            assert!(carol.id.0 > alice.id.0);
            // A second migration into the same (now full) store is refused.
            let err = PgStore::open(&schema.url)
                .unwrap()
                .import_sqlite(&from, &mut |_| {})
                .unwrap_err();
            assert!(err.to_string().contains("not empty"), "{err}");
        }
    }
}

/// TLS between a node and PostgreSQL (`src/postgres/tls.rs`). The
/// machine's PostgreSQL is reached through a TLS front made here (the
/// PostgreSQL protocol's SSLRequest answered `S`, the TLS ended, the
/// plain stream carried on to 127.0.0.1:5432), with a CA and
/// certificates made for the test: what is verified is the store's side.
mod tls {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    /// A CA (PEM, in a file) and a certificate it signed for `name`.
    struct Pki {
        ca_file: tempfile::NamedTempFile,
        chain: Vec<CertificateDer<'static>>,
        key: Vec<u8>,
    }

    fn pki(name: &str) -> Pki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca_file.path(), ca_cert.pem()).unwrap();
        Pki {
            ca_file,
            chain: vec![leaf.der().clone(), ca_cert.der().clone()],
            key: key.serialize_der(),
        }
    }

    /// The TLS front: its port and how many handshakes it completed.
    struct Front {
        port: u16,
        handshakes: Arc<AtomicUsize>,
        _rt: tokio::runtime::Runtime,
    }

    /// `tls`: `None` answers every SSLRequest `N` (a server without TLS).
    fn front(pki: Option<&Pki>) -> Front {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let acceptor = pki.map(|p| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(p.chain.clone(), PrivateKeyDer::Pkcs8(p.key.clone().into()))
                .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&handshakes);
        rt.spawn(async move {
            // Bounded: a test opens a few connections.
            for _ in 0..64 {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    // SSLRequest: length 8, code 80877103.
                    let mut request = [0u8; 8];
                    if socket.read_exact(&mut request).await.is_err()
                        || request != [0, 0, 0, 8, 4, 210, 22, 47]
                    {
                        return;
                    }
                    let Some(acceptor) = acceptor else {
                        let _ = socket.write_all(b"N").await;
                        return;
                    };
                    if socket.write_all(b"S").await.is_err() {
                        return;
                    }
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut db) = tokio::net::TcpStream::connect("127.0.0.1:5432").await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut db).await;
                });
            }
        });
        Front {
            port,
            handshakes,
            _rt: rt,
        }
    }

    /// The store's URL through the front, as host `localhost`.
    fn url(schema: &Schema, front: &Front, tls: &str) -> Option<String> {
        let rest = base_url()
            .strip_prefix("postgres://root@127.0.0.1:5432/")?
            .to_string();
        Some(format!(
            "postgres://root@localhost:{}/{rest}?hostaddr=127.0.0.1&connect_timeout=5&options=-csearch_path%3D{}&{tls}",
            front.port, schema.name
        ))
    }

    fn ca_param(pki: &Pki) -> String {
        format!(
            "sslrootcert={}",
            pki.ca_file.path().display().to_string().replace('/', "%2F")
        )
    }

    /// `sslmode=verify-full` (and libpq's `require`, verified here too)
    /// with the CA that signed the server's certificate: every connection
    /// of the node is TLS (the pool's and the control connection), and the
    /// store works through it.
    #[test]
    fn verify_full_connects_over_tls_and_the_store_works() {
        use postamt_store::Directory;
        let Some(schema) = Schema::new() else { return };
        let pki = pki("localhost");
        let front = front(Some(&pki));
        for mode in ["verify-full", "require"] {
            let Some(url) = url(
                &schema,
                &front,
                &format!("sslmode={mode}&{}", ca_param(&pki)),
            ) else {
                return;
            };
            let before = front.handshakes.load(Ordering::SeqCst);
            let store = PgStore::open(&url).unwrap();
            assert!(format!("{store:?}").contains("over TLS"), "{store:?}");
            let user = format!("tls-{mode}@example.org");
            store.add_domain("example.org").unwrap();
            store.create_account(&user, "secret-password").unwrap();
            assert!(store.account(&user).unwrap().is_some());
            let (server, version) = postamt_store::postgres::probe(&url).unwrap();
            assert!(server.starts_with(char::is_numeric), "{server}");
            assert_eq!(version, Some(store.schema_version()));
            // The pool, the control connection and the probe.
            assert!(front.handshakes.load(Ordering::SeqCst) >= before + 3);
        }
    }

    /// A certificate from another CA, or one that names another host, is
    /// refused before any password or query is sent; `verify-ca` accepts
    /// the second (the chain is good) and still refuses the first.
    #[test]
    fn a_wrong_certificate_is_refused_and_verify_ca_skips_only_the_name() {
        let Some(schema) = Schema::new() else { return };
        let pki_other_name = pki("db.example.net");
        let front = front(Some(&pki_other_name));
        let stranger = pki("localhost"); // a CA that did not sign it
        let Some(url_name) = url(
            &schema,
            &front,
            &format!("sslmode=verify-full&{}", ca_param(&pki_other_name)),
        ) else {
            return;
        };
        let err = PgStore::open(&url_name).unwrap_err().to_string();
        assert!(err.contains("not valid for name"), "{err}");
        let url_ca = url(
            &schema,
            &front,
            &format!("sslmode=verify-ca&{}", ca_param(&pki_other_name)),
        )
        .unwrap();
        PgStore::open(&url_ca).unwrap();
        for mode in ["verify-full", "verify-ca"] {
            let url_stranger = url(
                &schema,
                &front,
                &format!("sslmode={mode}&{}", ca_param(&stranger)),
            )
            .unwrap();
            let err = PgStore::open(&url_stranger).unwrap_err().to_string();
            assert!(err.contains("invalid peer certificate"), "{mode}: {err}");
        }
        // The system's bundle does not know the test's CA either.
        let url_system = url(&schema, &front, "sslmode=verify-full").unwrap();
        let err = PgStore::open(&url_system).unwrap_err().to_string();
        assert!(err.contains("invalid peer certificate"), "{err}");
    }

    /// A server that answers the SSLRequest with `N` (no TLS) is not
    /// talked to in plain text when TLS was asked for; a CA file that
    /// cannot be read is a configuration error.
    #[test]
    fn tls_asked_of_a_server_without_it_or_with_a_bad_ca_file_is_an_error() {
        let Some(schema) = Schema::new() else { return };
        let plain = front(None);
        let Some(url) = url(&schema, &plain, "sslmode=verify-full") else {
            return;
        };
        let err = PgStore::open(&url).unwrap_err().to_string();
        assert!(err.to_lowercase().contains("tls"), "{err}");
        let missing = url.replace(
            "sslmode=verify-full",
            "sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.pem",
        );
        let err = PgStore::open(&missing).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let err = postamt_store::postgres::probe(&missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
