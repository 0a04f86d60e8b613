//! Crash test: a process delivering from 16 threads at once is killed with
//! SIGKILL mid-stream. Afterwards the store opens cleanly, every delivery
//! that was acknowledged (the call returned Ok, which is what an SMTP `250`
//! or an MDA exit 0 is built on) is present exactly once, UIDs ascend and
//! UIDNEXT is above all of them.
//!
//! The test re-runs its own binary as the child (selected by an environment
//! variable), so the child is real code in a real process that really dies.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postamt_store::{Directory, Mailboxes, Messages, ModSeq, SqliteOptions, SqliteStore};

const CHILD_ENV: &str = "POSTAMT_CRASH_CHILD_DIR";
const THREADS: usize = 16;

fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(SqliteOptions::new(dir.join("store.db"))).expect("store opens after a crash")
}

/// The child: delivers until killed, printing `ACK tag` after each durable
/// delivery.
fn child(dir: &str) {
    let store = Arc::new(open(std::path::Path::new(dir)));
    let _ = store.add_domain("example.org");
    if store.account("alice@example.org").unwrap().is_none() {
        store.create_account("alice@example.org", "pw").unwrap();
    }
    let run = std::env::var("POSTAMT_CRASH_RUN").unwrap_or_default();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            let run = run.clone();
            std::thread::spawn(move || {
                // Bounded: the parent kills us long before this ends.
                for i in 0..100_000 {
                    let tag = format!("{run}-{t}-{i}");
                    let msg = format!(
                        "Subject: crash test\r\nX-Tag: {tag}\r\n\r\n{}\r\n",
                        "x".repeat(4000)
                    );
                    postamt_mda::deliver(
                        &*store,
                        "s@remote.net",
                        &["alice@example.org".into()],
                        msg.as_bytes(),
                        0,
                    )
                    .unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {tag}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn kill9_mid_delivery_stream_loses_nothing_acknowledged() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<String> = Vec::new();
    for run in 0..3 {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill9_mid_delivery_stream_loses_nothing_acknowledged",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("POSTAMT_CRASH_RUN", format!("r{run}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let target = 200 + run * 150;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut this_run = 0;
        while this_run < target && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(tag) = l.strip_prefix("ACK ") {
                        acked.push(tag.to_string());
                        this_run += 1;
                    }
                }
                _ => break,
            }
        }
        c.kill().unwrap(); // SIGKILL
        // Acks already written before the kill still count.
        for l in lines.map_while(Result::ok) {
            if let Some(tag) = l.strip_prefix("ACK ") {
                acked.push(tag.to_string());
            }
        }
        c.wait().unwrap();
        assert!(
            this_run >= target,
            "child delivered only {this_run} before the deadline"
        );

        let store = open(dir.path());
        let a = store.account("alice@example.org").unwrap().unwrap();
        let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
        let list = store.messages(inbox.id, ModSeq(0)).unwrap();
        let uids: Vec<u32> = list.iter().map(|m| m.uid.0).collect();
        assert!(uids.windows(2).all(|w| w[0] < w[1]), "UIDs ascend");
        assert!(
            inbox.uidnext.0 > *uids.last().unwrap(),
            "UIDNEXT above every UID"
        );
        let mut count: HashMap<String, usize> = HashMap::new();
        for m in &list {
            let content = store.message_content(inbox.id, m.uid).unwrap().unwrap();
            let text = String::from_utf8_lossy(&content);
            let tag = text
                .lines()
                .find_map(|l| l.strip_prefix("X-Tag: "))
                .unwrap()
                .to_string();
            *count.entry(tag).or_default() += 1;
        }
        assert!(count.values().all(|&n| n == 1), "a message is stored twice");
        for tag in &acked {
            assert_eq!(count.get(tag), Some(&1), "acknowledged {tag} is missing");
        }
        // Usage bookkeeping survived too.
        let used: u64 = list.iter().map(|m| m.size).sum();
        assert_eq!(a.used_bytes, used);
        // The store goes on: a new delivery gets a higher UID.
        let d = postamt_mda::deliver(
            &store,
            "",
            &["alice@example.org".into()],
            b"X-Tag: after\r\n\r\n",
            0,
        )
        .unwrap();
        assert!(d.delivered[0].1.uid.0 > *uids.last().unwrap());
        store.expunge(inbox.id, &[d.delivered[0].1.uid]).unwrap();
    }
}
