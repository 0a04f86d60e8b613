//! In-memory session tests: the real POP3 session over a `tokio::io::duplex`
//! pipe, a real SQLite store, and virtual time (`start_paused`), so idle
//! timeouts and login delays take no wall-clock time.

use std::sync::Arc;
use std::time::Duration;

use postamt_pop3::session::{Pop3, Pop3Config};
use postamt_server::testing::{self, Pipe};
use postamt_server::{ServerContext, ShutdownController};
use postamt_store::{
    Delivery, DeliveryTarget, Flags, ModSeq, SharedStore, SqliteOptions, SqliteStore,
};

struct Harness {
    _dir: tempfile::TempDir,
    store: SharedStore,
    server: Arc<ServerContext>,
    shutdown: ShutdownController,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore =
        Arc::new(SqliteStore::open(SqliteOptions::new(dir.path().join("db"))).unwrap());
    store.add_domain("example.test").unwrap();
    let alice = store.create_account("alice@example.test", "pw").unwrap();
    for i in 0..3 {
        let content = format!("Subject: {i}\n\nbody {i}\n").into_bytes();
        store
            .deliver(Delivery::new(
                content,
                0,
                vec![DeliveryTarget::inbox(alice.id)],
            ))
            .unwrap();
    }
    Harness {
        server: testing::context(dir.path(), testing::policy()),
        _dir: dir,
        store,
        shutdown: ShutdownController::new(),
    }
}

struct Client(Pipe);

impl Client {
    async fn line(&mut self) -> String {
        self.0.line().await
    }

    async fn cmd(&mut self, cmd: &str, expect: &str) -> String {
        self.0.send(format!("{cmd}\r\n").as_bytes()).await;
        let l = self.line().await;
        assert!(
            l.starts_with(expect),
            "{cmd}: expected {expect:?}, got {l:?}"
        );
        l
    }
}

fn start(h: &Harness, config: Pop3Config) -> (Client, tokio::task::JoinHandle<()>) {
    let pop3 = Arc::new(Pop3::new(Arc::clone(&h.store), config));
    let addr = "127.0.0.1:4000".parse().unwrap();
    let (pipe, task) = testing::start(&pop3, &h.server, &h.shutdown, addr, addr);
    (Client(pipe), task)
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_in_virtual_time() {
    let h = harness();
    let (mut c, task) = start(
        &h,
        Pop3Config {
            idle_timeout: Duration::from_secs(600),
            ..Pop3Config::default()
        },
    );
    assert!(c.line().await.starts_with("+OK mail.test POP3"));
    c.cmd("USER alice@example.test", "+OK").await;
    c.cmd("PASS pw", "+OK logged in, 3 messages").await;
    c.cmd("DELE 1", "+OK").await;
    // Ten silent minutes (RFC 1939 §3) end the session without UPDATE.
    // RFC 1939 §3: closed without a response.
    assert_eq!(c.line().await, "");
    task.await.unwrap();
    let (mut c, _t) = start(&h, Pop3Config::default());
    c.line().await;
    c.cmd("USER alice@example.test", "+OK").await;
    c.cmd("PASS pw", "+OK logged in, 3 messages").await;
}

#[tokio::test(start_paused = true)]
async fn failed_logins_are_delayed_then_throttled() {
    let h = harness();
    let (mut c, _t) = start(&h, Pop3Config::default());
    c.line().await;
    let before = tokio::time::Instant::now();
    for _ in 0..3 {
        c.cmd("USER alice@example.test", "+OK").await;
        c.cmd("PASS wrong", "-ERR [AUTH] authentication failed")
            .await;
    }
    assert!(
        before.elapsed() >= Duration::from_secs(6),
        "each failure waits the configured delay"
    );
    c.cmd("USER alice@example.test", "+OK").await;
    c.cmd("PASS pw", "-ERR [SYS/TEMP] too many failed logins")
        .await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_mid_transaction_says_goodbye_and_deletes_nothing() {
    let h = harness();
    let (mut c, task) = start(&h, Pop3Config::default());
    c.line().await;
    c.cmd("USER alice@example.test", "+OK").await;
    c.cmd("PASS pw", "+OK").await;
    c.cmd("DELE 2", "+OK").await;
    let Harness {
        shutdown, store, ..
    } = h;
    let done = tokio::spawn(shutdown.shutdown(Duration::from_secs(10)));
    let l = c.line().await;
    assert_eq!(
        l,
        "-ERR [SYS/TEMP] server shutting down, try again later\r\n"
    );
    task.await.unwrap();
    assert!(
        done.await.unwrap(),
        "session finished within the grace period"
    );
    let a = store.account("alice@example.test").unwrap().unwrap();
    let inbox = store.mailbox(a.id, "INBOX").unwrap().unwrap();
    assert_eq!(store.messages(inbox.id, ModSeq(0)).unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn quit_applies_deletes_and_marks_retrieved_seen() {
    let h = harness();
    let (mut c, task) = start(&h, Pop3Config::default());
    c.line().await;
    c.cmd("USER alice@example.test", "+OK").await;
    c.cmd("PASS pw", "+OK").await;
    c.cmd("RETR 3", "+OK").await;
    loop {
        if c.line().await == ".\r\n" {
            break;
        }
    }
    c.cmd("DELE 1", "+OK").await;
    c.cmd(
        "QUIT",
        "+OK postamt POP3 server signing off (2 messages left)",
    )
    .await;
    task.await.unwrap();
    let a = h.store.account("alice@example.test").unwrap().unwrap();
    let inbox = h.store.mailbox(a.id, "INBOX").unwrap().unwrap();
    let list = h.store.messages(inbox.id, ModSeq(0)).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].flags, Flags::empty());
    assert_eq!(list[1].flags, Flags::SEEN, "RETR marks \\Seen at QUIT");
    // The lock went with the session.
    assert!(h.store.lock_maildrop(a.id).unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn overlong_line_is_drained_and_answered() {
    let h = harness();
    let (mut c, _t) = start(
        &h,
        Pop3Config {
            max_line: 64,
            ..Pop3Config::default()
        },
    );
    c.line().await;
    // 1 MB without a newline, then the end of the line, then a command.
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..16 {
        c.0.send(&chunk).await;
    }
    c.0.send(b"\r\nNOOP\r\n").await;
    assert_eq!(c.line().await, "-ERR line too long\r\n");
    assert_eq!(c.line().await, "-ERR not allowed before login\r\n");
    c.cmd("CAPA", "+OK").await;
}
