//! Large content in files beside the SQLite database (a file per content,
//! or ranges of pack files): written before the commit, removed after the
//! commit that drops the last reference, and cleaned up after crashes
//! (trash table at open, orphan sweep).

use std::path::{Path, PathBuf};

use postamt_store::{
    Coordination, Delivery, DeliveryTarget, Directory, Mailboxes, Messages, ModSeq, Queue,
    SqliteOptions, SqliteStore,
};

/// A file per content (`pack_size` 0).
fn open(dir: &Path) -> SqliteStore {
    open_with(dir, 0)
}

fn open_with(dir: &Path, pack_size: u64) -> SqliteStore {
    let mut options = SqliteOptions::new(dir.join("store.db"));
    options.file_min_size = 1000;
    options.pack_size = pack_size;
    SqliteStore::open(options).unwrap()
}

/// Bytes of disk the content files and packs hold (punched holes hold none).
fn held(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    files(dir)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().blocks() * 512)
        .sum()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir.join("blobs")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out
}

fn delivery(content: &[u8], accounts: &[postamt_store::AccountId]) -> Delivery {
    Delivery::new(
        content.to_vec(),
        1_700_000_000,
        accounts
            .iter()
            .map(|a| DeliveryTarget {
                prefix: b"Delivered-To: x\r\n".to_vec(),
                ..DeliveryTarget::inbox(*a)
            })
            .collect(),
    )
}

fn big(tag: &str) -> Vec<u8> {
    let mut m = format!("Subject: {tag}\r\n\r\n").into_bytes();
    for i in 0..100 {
        m.extend_from_slice(
            format!("line {i} of a message that is stored in a file\r\n").as_bytes(),
        );
    }
    m
}

#[test]
fn large_content_lives_in_one_file_until_the_last_reference_goes() {
    lifecycle(0);
}

/// The same in a pack: one pack file, whose blocks are given back (holes
/// punched) when the last reference goes.
#[test]
fn large_content_lives_in_a_pack_until_the_last_reference_goes() {
    lifecycle(1 << 20);
}

fn lifecycle(pack_size: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), pack_size);
    store.add_domain("example.org").unwrap();
    let a = store.create_account("a@example.org", "pw").unwrap();
    let b = store.create_account("b@example.org", "pw").unwrap();

    // Small content stays inside the database.
    store
        .deliver(delivery(b"Subject: small\r\n\r\nhi\r\n", &[a.id]))
        .unwrap();
    assert!(files(dir.path()).is_empty());

    // Large content: one file, shared by both targets.
    let content = big("shared");
    let d = store.deliver(delivery(&content, &[a.id, b.id])).unwrap();
    assert_eq!(files(dir.path()).len(), 1);
    assert!(held(dir.path()) >= content.len() as u64);
    let mut want = b"Delivered-To: x\r\n".to_vec();
    want.extend_from_slice(&content);
    for t in &d {
        assert_eq!(
            store.message_content(t.mailbox, t.uid).unwrap().unwrap(),
            want
        );
    }

    store.expunge(d[0].mailbox, &[d[0].uid]).unwrap();
    assert!(
        held(dir.path()) >= content.len() as u64,
        "b still references it"
    );
    store.expunge(d[1].mailbox, &[d[1].uid]).unwrap();
    assert_eq!(held(dir.path()), 0, "removed after the last expunge");
    if pack_size == 0 {
        assert!(files(dir.path()).is_empty());
    }
    assert!(
        store
            .message_content(d[1].mailbox, d[1].uid)
            .unwrap()
            .is_none()
    );

    // A failed delivery (over quota) leaves nothing behind.
    store.set_quota(a.id, Some(100)).unwrap();
    assert!(store.deliver(delivery(&big("too big"), &[a.id])).is_err());
    assert_eq!(held(dir.path()), 0);

    // Deleting an account removes its content too.
    let d = store.deliver(delivery(&big("bob's"), &[b.id])).unwrap();
    assert_eq!(d.len(), 1);
    assert!(held(dir.path()) > 0);
    store.delete_account("b@example.org").unwrap();
    assert_eq!(held(dir.path()), 0);
}

#[test]
fn a_missing_file_of_a_live_message_is_an_error_not_an_empty_mailbox() {
    for pack_size in [0, 1 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), pack_size);
        store.add_domain("example.org").unwrap();
        let a = store.create_account("a@example.org", "pw").unwrap();
        let d = store.deliver(delivery(&big("x"), &[a.id])).unwrap();
        for f in files(dir.path()) {
            std::fs::remove_file(f).unwrap();
        }
        assert!(store.message_content(d[0].mailbox, d[0].uid).is_err());
    }
}

#[test]
fn trash_left_by_a_crash_is_emptied_at_open_and_orphans_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let name;
    {
        let store = open(dir.path());
        store.add_domain("example.org").unwrap();
        let a = store.create_account("a@example.org", "pw").unwrap();
        store.deliver(delivery(&big("kept"), &[a.id])).unwrap();
        let f = files(dir.path());
        assert_eq!(f.len(), 1);
        let p = &f[0];
        name = format!(
            "{}/{}",
            p.parent().unwrap().file_name().unwrap().to_str().unwrap(),
            p.file_name().unwrap().to_str().unwrap()
        );
    }
    // A crash after the commit that deleted the last reference, before the
    // unlink: the name is in the trash table and the file still exists.
    let trashed = dir
        .path()
        .join("blobs/00/0000000000000001-00000001-0000000000000001");
    std::fs::write(&trashed, b"deleted message").unwrap();
    // A crash between writing a file and committing its row: an orphan.
    let orphan = dir
        .path()
        .join("blobs/01/0000000000000002-00000001-0000000000000002");
    std::fs::write(&orphan, b"never committed").unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
        c.execute(
            "INSERT INTO blob_trash(file) VALUES ('00/0000000000000001-00000001-0000000000000001')",
            [],
        )
        .unwrap();
    }
    let store = open(dir.path());
    assert!(!trashed.exists(), "trash emptied at open");
    // Young orphans are kept (a `postamt deliver` may be about to commit).
    assert_eq!(store.sweep_orphan_files().unwrap(), 0);
    assert!(orphan.exists());
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(store.sweep_orphan_files().unwrap(), 1);
    assert!(!orphan.exists());
    // The referenced file is untouched and still readable.
    assert!(dir.path().join("blobs").join(&name).exists());
    let a = store.account("a@example.org").unwrap().unwrap();
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let m = store.messages(inbox.id, ModSeq(0)).unwrap();
    assert!(store.message_content(inbox.id, m[0].uid).unwrap().is_some());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// `accept_async`: large content is appended to a pack on the calling
/// thread and the writer syncs it before the commit; the message and the queue entry are both there, and
/// what fails leaves nothing behind — in pack mode and with a file per
/// content (which takes the blocking path).
#[test]
fn accept_async_stores_delivers_and_queues_and_cleans_up_after_failures() {
    for pack_size in [1u64 << 20, 0] {
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<SqliteStore> =
            std::sync::Arc::new(open_with(dir.path(), pack_size));
        store.add_domain("example.org").unwrap();
        let a = store.create_account("a@example.org", "pw").unwrap();
        let rt = runtime();
        let content = big("async");
        let outbound = postamt_store::Outbound {
            sender: "a@example.org".into(),
            recipients: vec![postamt_store::QueuedRecipient::new("x@remote.test")],
            envelope: Default::default(),
            content: content.clone(),
        };
        // Two large deliveries of different content (one encrypted at
        // rest, say) and the queue entry, in one call.
        let other = big("sealed copy");
        let accepted = rt
            .block_on(std::sync::Arc::clone(&store).accept_async(
                vec![delivery(&content, &[a.id]), delivery(&other, &[a.id])],
                Some(outbound),
            ))
            .unwrap();
        assert_eq!(accepted.delivered.len(), 2);
        let q = accepted.queued.expect("queued");
        assert_eq!(store.queue_entry(q).unwrap().unwrap().1, content);
        for (t, c) in accepted.delivered.iter().zip([&content, &other]) {
            let mut want = b"Delivered-To: x\r\n".to_vec();
            want.extend_from_slice(c);
            assert_eq!(
                store.message_content(t.mailbox, t.uid).unwrap().unwrap(),
                want
            );
        }
        let before = held(dir.path());
        assert!(before >= content.len() as u64);

        // Over quota: refused, and the appended content is punched again.
        store.set_quota(a.id, Some(100)).unwrap();
        let err = rt
            .block_on(
                std::sync::Arc::clone(&store)
                    .accept_async(vec![delivery(&big("too big"), &[a.id])], None),
            )
            .unwrap_err();
        assert!(matches!(err, postamt_store::StoreError::OverQuota), "{err}");
        assert_eq!(held(dir.path()), before, "pack_size {pack_size}");
        store.set_quota(a.id, None).unwrap();

        // Many at once share the batch and its sync; all are readable.
        let futures: Vec<_> = (0..40)
            .map(|i| {
                std::sync::Arc::clone(&store)
                    .accept_async(vec![delivery(&big(&format!("m{i}")), &[a.id])], None)
            })
            .collect();
        let results = rt.block_on(async {
            let mut out = Vec::new();
            for f in futures {
                out.push(f.await.unwrap());
            }
            out
        });
        for (i, r) in results.iter().enumerate() {
            let d = &r.delivered[0];
            let got = store.message_content(d.mailbox, d.uid).unwrap().unwrap();
            let want = format!("Subject: m{i}\r\n");
            assert!(
                got.windows(want.len()).any(|w| w == want.as_bytes()),
                "message {i}"
            );
        }
    }
}

/// Content of a mebibyte or more is appended under `block_in_place` on a
/// multi-threaded runtime (other tasks of the worker go on); it is stored
/// and read back whole, and concurrent small deliveries are not disturbed.
#[test]
fn accept_async_with_large_content_on_a_multi_threaded_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<SqliteStore> = std::sync::Arc::new(open_with(dir.path(), 64 << 20));
    store.add_domain("example.org").unwrap();
    let a = store.create_account("a@example.org", "pw").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut huge = b"Subject: huge\r\n\r\n".to_vec();
    while huge.len() < 3 << 20 {
        huge.extend_from_slice(format!("{} ", huge.len()).as_bytes());
        huge.extend_from_slice(b"0123456789abcdef0123456789abcdef\r\n");
    }
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let store = std::sync::Arc::clone(&store);
                let content = if i % 2 == 0 {
                    huge.clone()
                } else {
                    big(&format!("small {i}"))
                };
                tokio::spawn(async move {
                    let d = delivery(&content, &[a.id]);
                    let r = store.accept_async(vec![d], None).await.unwrap();
                    (content, r)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (content, r) in results {
        let d = &r.delivered[0];
        let got = store.message_content(d.mailbox, d.uid).unwrap().unwrap();
        assert!(got.ends_with(&content), "{} bytes", content.len());
        assert_eq!(got.len(), b"Delivered-To: x\r\n".len() + content.len());
    }
}

/// Drop-behind: a stream of large deliveries does not fill the page cache.
/// Pack content synced more than 16 MiB ago is dropped from the cache
/// (`fincore` from util-linux counts the resident pages), and it still
/// reads back whole from the disk.
#[test]
fn synced_pack_content_leaves_the_page_cache() {
    // Not /tmp, which may be a tmpfs (its pages cannot be dropped).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = open_with(dir.path(), 256 << 20);
    store.add_domain("example.org").unwrap();
    let a = store.create_account("a@example.org", "pw").unwrap();
    let message = |i: usize| {
        let mut m = format!("Subject: m{i}\r\n\r\n").into_bytes();
        while m.len() < 400 * 1024 {
            m.extend_from_slice(format!("message {i} line {}\r\n", m.len()).as_bytes());
        }
        m
    };
    let mut first = None;
    for i in 0..120 {
        let d = store.deliver(delivery(&message(i), &[a.id])).unwrap();
        first.get_or_insert(d[0]);
    }
    let packs = files(dir.path());
    let pack = packs
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .expect("a pack");
    let size = std::fs::metadata(pack).unwrap().len();
    assert!(size >= 40 << 20, "pack holds {size} bytes");
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(pack)
        .output()
        .expect("fincore (util-linux-extra) is needed for this test");
    assert!(out.status.success(), "{out:?}");
    let resident: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        resident <= 20 << 20,
        "{resident} bytes of a {size}-byte pack still cached"
    );
    let d = first.unwrap();
    let got = store.message_content(d.mailbox, d.uid).unwrap().unwrap();
    assert!(got.ends_with(&postamt_wire::crlf::normalize(&message(0))));
}

/// Another process's commit (here: a second store on the same database)
/// moves the `external` counter of every watched account: their sessions
/// re-read what they show.
#[test]
fn another_writer_moves_every_account_signal() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SqliteOptions::new(dir.path().join("store.db"));
    options.external_poll = Some(std::time::Duration::from_millis(20));
    let server = SqliteStore::open(options).unwrap();
    server.add_domain("example.org").unwrap();
    let a = server.create_account("a@example.org", "pw").unwrap();
    let b = server.create_account("b@example.org", "pw").unwrap();
    let mut wa = server.watch_account(a.id);
    let mut wb = server.watch_account(b.id);
    let before = *wa.borrow_and_update();
    let other = open_with(dir.path(), 0);
    other
        .deliver(delivery(b"Subject: x\r\n\r\nx\r\n", &[a.id]))
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            wa.changed().await.unwrap();
            wb.changed().await.unwrap();
        })
        .await
        .expect("signals moved")
    });
    assert_eq!(wa.borrow().external, before.external + 1);
    assert_eq!(wb.borrow().external, before.external + 1);
}
