//! What the SMTP session tests share: a real SQLite store in a temporary
//! directory, the real session over a `tokio::io::duplex` pipe, and a
//! client with one-line helpers. Tests run in virtual time
//! (`start_paused`), so timeouts and login delays take no wall-clock time.

#![allow(dead_code)] // each test file uses a part

use std::net::SocketAddr;
use std::sync::Arc;

use postamt_server::testing::{self, Pipe};
use postamt_server::{ServerContext, ShutdownController};
use postamt_smtp::{Smtp, SmtpConfig};
use postamt_store::{SharedStore, SqliteOptions, SqliteStore};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub store: SharedStore,
    pub server: Arc<ServerContext>,
    pub shutdown: ShutdownController,
}

/// A store with the domain `example.test`, the accounts alice and bob
/// (passwords `alice-pw`, `bob-pw`), the alias `sales@` → alice and the
/// alias `fwd@` → `carol@remote.test` (forwarded through the queue).
pub fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore =
        Arc::new(SqliteStore::open(SqliteOptions::new(dir.path().join("db"))).unwrap());
    store.add_domain("example.test").unwrap();
    store
        .create_account("alice@example.test", "alice-pw")
        .unwrap();
    store.create_account("bob@example.test", "bob-pw").unwrap();
    store
        .add_alias("sales@example.test", &["alice@example.test".to_string()])
        .unwrap();
    store
        .add_alias("fwd@example.test", &["carol@remote.test".to_string()])
        .unwrap();
    let server = testing::context(dir.path(), testing::policy());
    Harness {
        dir,
        store,
        server,
        shutdown: ShutdownController::new(),
    }
}

pub struct Client(pub Pipe);

impl Client {
    pub async fn line(&mut self) -> String {
        self.0.line().await
    }

    /// One reply, all its lines (`250-…` continuation lines included).
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let l = self.line().await;
            all.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.0.send(bytes).await;
    }

    /// Sends a command line and checks the start of its reply.
    pub async fn cmd(&mut self, cmd: &str, expect: &str) -> String {
        self.send(format!("{cmd}\r\n").as_bytes()).await;
        let r = self.reply().await;
        assert!(
            r.starts_with(expect),
            "{cmd}: expected {expect:?}, got {r:?}"
        );
        r
    }

    /// After the greeting: EHLO, and a transaction from a remote sender to
    /// `rcpt`.
    pub async fn transaction(&mut self, rcpt: &str) {
        self.reply().await;
        self.cmd("EHLO client.test", "250").await;
        self.cmd("MAIL FROM:<a@remote.test>", "250 2.1.0").await;
        self.cmd(&format!("RCPT TO:<{rcpt}>"), "250 2.1.5").await;
    }

    /// Everything the server sends until it closes the connection.
    pub async fn rest(&mut self) -> String {
        self.0.rest().await
    }
}

/// Starts a session from 127.0.0.1 (plaintext logins allowed).
pub fn start(h: &Harness, config: SmtpConfig) -> (Client, tokio::task::JoinHandle<()>) {
    start_from(h, config, "127.0.0.1:4000".parse().unwrap())
}

pub fn start_from(
    h: &Harness,
    config: SmtpConfig,
    peer: SocketAddr,
) -> (Client, tokio::task::JoinHandle<()>) {
    let smtp = Arc::new(Smtp::new(Arc::clone(&h.store), config));
    let local = "127.0.0.1:25".parse().unwrap();
    let (pipe, task) = testing::start(&smtp, &h.server, &h.shutdown, peer, local);
    (Client(pipe), task)
}

/// The messages in `address`'s INBOX, oldest first.
pub fn inbox(store: &SharedStore, address: &str) -> Vec<String> {
    let a = store.account(address).unwrap().unwrap();
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    store
        .messages(inbox.id, postamt_store::ModSeq(0))
        .unwrap()
        .iter()
        .map(|m| {
            let c = store.message_content(inbox.id, m.uid).unwrap().unwrap();
            String::from_utf8_lossy(&c).into_owned()
        })
        .collect()
}

/// The outbound queue: one text per entry (envelope, recipients, content).
pub fn queue(store: &SharedStore) -> Vec<String> {
    store
        .queue()
        .unwrap()
        .iter()
        .map(|e| {
            let (_, content) = store.queue_entry(e.id).unwrap().unwrap();
            let rcpts: Vec<String> = e
                .recipients
                .iter()
                .map(|r| format!("{} notify={:?} orcpt={:?}", r.address, r.notify, r.orcpt))
                .collect();
            format!(
                "from <{}> {:?}\nto {}\n{}",
                e.sender,
                e.envelope,
                rcpts.join(", "),
                String::from_utf8_lossy(&content)
            )
        })
        .collect()
}

/// Replaces what differs from run to run: message ids (runs of 16 or more
/// hex digits) and RFC 5322 dates.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || ('a'..='f').contains(*c))
            .count();
        let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if boundary && run >= 16 {
            out.push_str("<ID>");
            i += run;
            continue;
        }
        // Unix times (in DSN boundaries and ids).
        if boundary && run == 10 && chars[i..i + 10].iter().all(|c| c.is_ascii_digit()) {
            out.push_str("<TIME>");
            i += run;
            continue;
        }
        // "Thu, 26 Nov 2026 12:00:00 +0000"
        if chars.len() - i >= 31
            && chars[i + 3] == ','
            && chars[i..i + 3].iter().all(|c| c.is_ascii_alphabetic())
            && chars[i + 25..i + 31].iter().collect::<String>() == " +0000"
        {
            out.push_str("<DATE>");
            i += 31;
            continue;
        }
        let n = run.max(1);
        out.extend(&chars[i..i + n]);
        i += n;
    }
    out
}
