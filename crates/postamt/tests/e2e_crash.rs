//! Issue 2's crash test through the real server: 8 SMTP clients deliver at
//! once, the server is killed with SIGKILL mid-stream, and after a restart
//! every message that got its `250` is present exactly once and whole (100 KB
//! ones from pack files too), UIDs ascend, UIDNEXT is above all of them, and
//! the store keeps working.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use postamt_store::ModSeq;

/// The body a worker sends for `tag`: odd workers send 100 KB (stored in a
/// pack file beside the database), even ones 4 KB (stored in it).
fn body_of(tag: &str) -> String {
    let worker: usize = tag[1..tag.find('-').unwrap()].parse().unwrap();
    let lines = if worker % 2 == 1 { 1300 } else { 50 };
    (0..lines)
        .map(|n| format!("{tag} line {n:05} {}\r\n", "y".repeat(60)))
        .collect()
}

#[test]
fn kill9_during_concurrent_smtp_deliveries_loses_nothing_acknowledged() {
    let mut s = Server::start("[limits]\nmax_connections_per_ip = 100\n");
    let addr = s.addr("smtp");
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let acked = Arc::clone(&acked);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let Ok(stream) = std::net::TcpStream::connect(addr) else {
                    return;
                };
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut c = Client {
                    reader: std::io::BufReader::new(stream.try_clone().unwrap()),
                    stream,
                };
                let greet = c.line();
                if !greet.starts_with("220") {
                    return;
                }
                let send = |c: &mut Client, cmd: &str| -> Option<String> {
                    use std::io::Write;
                    c.stream.write_all(cmd.as_bytes()).ok()?;
                    let l = c.line();
                    (!l.is_empty()).then_some(l)
                };
                // The EHLO reply has several lines; read up to its last ("250 ").
                let Some(mut l) = send(&mut c, "EHLO crash.test\r\n") else {
                    return;
                };
                for _ in 0..50 {
                    if !l.starts_with("250-") {
                        break;
                    }
                    l = c.line();
                }
                // Bounded: the server is killed long before this ends.
                for i in 0..10_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let tag = format!("w{w}-{i}");
                    let Some(r) = send(&mut c, "MAIL FROM:<load@remote.test>\r\n") else {
                        return;
                    };
                    if !r.starts_with("250") {
                        return;
                    }
                    let Some(r) = send(&mut c, "RCPT TO:<alice@example.test>\r\n") else {
                        return;
                    };
                    if !r.starts_with("250") {
                        return;
                    }
                    let Some(r) = send(&mut c, "DATA\r\n") else {
                        return;
                    };
                    if !r.starts_with("354") {
                        return;
                    }
                    let body = format!(
                        "Subject: {tag}\r\nX-Tag: {tag}\r\n\r\n{}.\r\n",
                        body_of(&tag)
                    );
                    match send(&mut c, &body) {
                        Some(r) if r.starts_with("250") => acked.lock().unwrap().push(tag),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    // Let a few hundred messages through, then kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 300 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut child = s.child.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 300,
        "only {} acknowledged before the deadline",
        acked.len()
    );

    // The store opens cleanly after the crash.
    let store = s.open_store();
    let a = store.account("alice@example.test").unwrap().unwrap();
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let list = store.messages(inbox.id, ModSeq(0)).unwrap();
    let uids: Vec<u32> = list.iter().map(|m| m.uid.0).collect();
    assert!(uids.windows(2).all(|w| w[0] < w[1]), "UIDs ascend");
    assert!(inbox.uidnext.0 > *uids.last().unwrap());
    let mut count: HashMap<String, usize> = HashMap::new();
    for m in &list {
        let content = store.message_content(inbox.id, m.uid).unwrap().unwrap();
        let text = String::from_utf8_lossy(&content).to_string();
        let tag = text
            .lines()
            .find_map(|l| l.strip_prefix("X-Tag: "))
            .unwrap()
            .to_string();
        // Every stored message is whole, the large ones (in packs) too.
        assert!(
            text.ends_with(&format!("\r\n\r\n{}", body_of(&tag))),
            "{tag} is damaged"
        );
        *count.entry(tag).or_default() += 1;
    }
    assert!(count.values().all(|&n| n == 1), "a message is stored twice");
    for tag in &acked {
        assert_eq!(count.get(tag), Some(&1), "acknowledged {tag} is missing");
    }
    drop(store);

    // The restarted server goes on delivering with higher UIDs.
    s.spawn();
    let mut c = smtp(&s, "smtp");
    c.smtp("HELO again.test", "250");
    c.smtp("MAIL FROM:<load@remote.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(b"Subject: after\r\n\r\n.\r\n");
    c.smtp(".", "250");
    let mut p = pop3(&s);
    p.login("alice@example.test", "alice-pw");
    p.cmd("UIDL", "+OK");
    let uidl = String::from_utf8(p.multiline()).unwrap();
    assert_eq!(uidl.lines().count(), list.len() + 1);
}
