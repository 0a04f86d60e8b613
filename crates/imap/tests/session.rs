//! In-memory session tests: the real IMAP session over a
//! `tokio::io::duplex` pipe, a real SQLite store in a temporary directory,
//! and virtual time (`start_paused`), so the autologout, IDLE's maximum and
//! the login delay take no wall-clock time.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use postamt_imap::{Imap, ImapConfig};
use postamt_server::testing::{self, Pipe};
use postamt_server::{AuthPolicy, ServerContext, ShutdownController};
use postamt_store::{AccountId, Delivery, DeliveryTarget, SharedStore, SqliteOptions, SqliteStore};
use tokio::time::Instant;

const LOOPBACK: &str = "127.0.0.1:4000";
/// A client on another machine (RFC 5737 documentation address).
const REMOTE: &str = "192.0.2.7:4000";

struct Harness {
    _dir: tempfile::TempDir,
    store: SharedStore,
    alice: AccountId,
    server: Arc<ServerContext>,
    shutdown: ShutdownController,
}

fn harness(allow_plaintext: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore =
        Arc::new(SqliteStore::open(SqliteOptions::new(dir.path().join("db"))).unwrap());
    store.add_domain("example.test").unwrap();
    let alice = store.create_account("alice@example.test", "pw").unwrap().id;
    for i in 1..=3 {
        deliver(&store, alice, &format!("Subject: {i}\n\nbody {i}\n"), &[]);
    }
    let server = testing::context(
        dir.path(),
        AuthPolicy {
            allow_plaintext,
            ..testing::policy()
        },
    );
    Harness {
        _dir: dir,
        store,
        alice,
        server,
        shutdown: ShutdownController::new(),
    }
}

fn deliver(store: &SharedStore, account: AccountId, text: &str, keywords: &[&str]) {
    let target = DeliveryTarget {
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        ..DeliveryTarget::inbox(account)
    };
    store
        .deliver(Delivery::new(text.as_bytes().to_vec(), 0, vec![target]))
        .unwrap();
}

struct Client(Pipe);

impl Client {
    /// One line from the server ("" once the session has closed).
    async fn line(&mut self) -> String {
        self.0.line().await
    }

    async fn send(&mut self, text: &str) {
        self.0.send(text.as_bytes()).await;
    }

    /// Sends `tag command` and reads up to the tagged reply: (untagged
    /// lines, tagged line).
    async fn cmd(&mut self, tag: &str, command: &str) -> (Vec<String>, String) {
        self.send(&format!("{tag} {command}\r\n")).await;
        self.until(tag).await
    }

    async fn until(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        loop {
            let l = self.line().await;
            assert!(
                !l.is_empty(),
                "closed while waiting for {tag}: {untagged:?}"
            );
            if l.starts_with(&format!("{tag} ")) {
                return (untagged, l);
            }
            untagged.push(l);
        }
    }

    /// `cmd`, asserting a tagged OK; returns the untagged lines.
    async fn ok(&mut self, tag: &str, command: &str) -> Vec<String> {
        let (untagged, tagged) = self.cmd(tag, command).await;
        assert!(
            tagged.starts_with(&format!("{tag} OK")),
            "{command}: {tagged:?} after {untagged:?}"
        );
        untagged
    }

    async fn login(&mut self) {
        self.ok("l", "LOGIN alice@example.test pw").await;
    }
}

/// Starts a session of `imap` for a client at `peer`.
fn connect(h: &Harness, imap: &Arc<Imap>, peer: &str) -> (Client, tokio::task::JoinHandle<()>) {
    let local = "127.0.0.1:143".parse().unwrap();
    let (pipe, task) = testing::start(imap, &h.server, &h.shutdown, peer.parse().unwrap(), local);
    (Client(pipe), task)
}

fn imap(h: &Harness, config: ImapConfig) -> Arc<Imap> {
    Arc::new(Imap::new(Arc::clone(&h.store), config))
}

/// A session on loopback with the default configuration, past the greeting.
async fn start(h: &Harness) -> (Client, tokio::task::JoinHandle<()>) {
    let (mut c, task) = connect(h, &imap(h, ImapConfig::default()), LOOPBACK);
    assert!(c.line().await.starts_with("* OK [CAPABILITY "));
    (c, task)
}

#[tokio::test(start_paused = true)]
async fn autologout_after_the_idle_timeout_rfc9051_5_4() {
    let h = harness(false);
    let config = ImapConfig {
        idle_timeout: Duration::from_secs(30 * 60),
        ..ImapConfig::default()
    };
    let (mut c, task) = connect(&h, &imap(&h, config), LOOPBACK);
    c.line().await;
    c.login().await;
    c.ok("a1", "SELECT INBOX").await;
    let before = Instant::now();
    assert_eq!(
        c.line().await,
        "* BYE autologout: idle for too long (RFC 9051 §5.4)\r\n"
    );
    assert!(before.elapsed() >= Duration::from_secs(30 * 60));
    assert_eq!(c.line().await, "", "the server closed the connection");
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_ends_at_its_maximum() {
    let h = harness(false);
    let config = ImapConfig {
        idle_timeout: Duration::from_secs(30 * 60),
        idle_max: Duration::from_secs(2 * 60 * 60),
        ..ImapConfig::default()
    };
    let (mut c, task) = connect(&h, &imap(&h, config), LOOPBACK);
    c.line().await;
    c.login().await;
    c.ok("a1", "SELECT INBOX").await;
    c.send("a2 IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling\r\n");
    let before = Instant::now();
    // The idle timeout does not end an IDLE (RFC 2177: clients re-issue it
    // every 29 minutes); its own maximum does.
    assert_eq!(c.line().await, "* BYE autologout: IDLE for too long\r\n");
    assert!(before.elapsed() >= Duration::from_secs(2 * 60 * 60));
    assert_eq!(c.line().await, "");
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_is_woken_by_a_delivery_from_another_task() {
    let h = harness(false);
    let (mut c, _task) = start(&h).await;
    c.login().await;
    c.ok("a1", "SELECT INBOX").await;
    c.send("a2 IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling\r\n");
    let before = Instant::now();
    let (store, alice) = (Arc::clone(&h.store), h.alice);
    tokio::spawn(postamt_store::blocking(move || {
        deliver(&store, alice, "Subject: 4\n\nnews\n", &[]);
        Ok::<_, postamt_store::StoreError>(())
    }));
    assert_eq!(c.line().await, "* 4 EXISTS\r\n");
    assert_eq!(c.line().await, "* 4 RECENT\r\n");
    assert!(
        before.elapsed() < Duration::from_secs(60),
        "woken by the delivery, not by a timer"
    );
    c.send("DONE\r\n").await;
    assert_eq!(c.line().await, "a2 OK IDLE terminated\r\n");
    let u = c.ok("a3", "FETCH 4 (FLAGS)").await;
    assert_eq!(u, vec!["* 4 FETCH (FLAGS (\\Recent))\r\n"]);
}

#[tokio::test(start_paused = true)]
async fn failed_logins_are_delayed_then_throttled() {
    let h = harness(false);
    let (mut c, _task) = start(&h).await;
    let before = Instant::now();
    for i in 0..3 {
        let (_, t) = c
            .cmd(&format!("f{i}"), "LOGIN alice@example.test wrong")
            .await;
        assert_eq!(
            t,
            format!("f{i} NO [AUTHENTICATIONFAILED] invalid credentials\r\n")
        );
    }
    assert!(
        before.elapsed() >= Duration::from_secs(6),
        "each failure waits the configured delay"
    );
    // The right password too, once the failures reach the limit.
    let (_, t) = c.cmd("g", "LOGIN alice@example.test pw").await;
    assert_eq!(
        t,
        "g NO [UNAVAILABLE] too many failed logins from your address, try later\r\n"
    );
    // The session goes on (a NO is not a protocol error).
    c.ok("n", "NOOP").await;
}

#[tokio::test(start_paused = true)]
async fn plaintext_passwords_are_refused_from_a_remote_client_without_tls() {
    let h = harness(false);
    let (mut c, _task) = connect(&h, &imap(&h, ImapConfig::default()), REMOTE);
    let greeting = c.line().await;
    assert!(greeting.contains(" STARTTLS "), "{greeting}");
    assert!(greeting.contains(" LOGINDISABLED "), "{greeting}");
    assert!(!greeting.contains("AUTH=PLAIN"), "{greeting}");
    let u = c.ok("c", "CAPABILITY").await;
    assert!(u[0].contains(" LOGINDISABLED "), "{u:?}");
    // RFC 9051 §6.2.3, RFC 5530 PRIVACYREQUIRED.
    let (_, t) = c.cmd("a", "LOGIN alice@example.test pw").await;
    assert_eq!(t, "a NO [PRIVACYREQUIRED] use STARTTLS before LOGIN\r\n");
    let plain = base64::engine::general_purpose::STANDARD.encode(b"\0alice@example.test\0pw");
    let (_, t) = c.cmd("b", &format!("AUTHENTICATE PLAIN {plain}")).await;
    assert_eq!(
        t,
        "b NO [PRIVACYREQUIRED] use STARTTLS before AUTHENTICATE\r\n"
    );
    let (_, t) = c.cmd("s", "SELECT INBOX").await;
    assert_eq!(t, "s BAD log in first (LOGIN or AUTHENTICATE)\r\n");

    // Where the administrator allows plaintext, the same client may log in.
    let h = harness(true);
    let (mut c, _task) = connect(&h, &imap(&h, ImapConfig::default()), REMOTE);
    let greeting = c.line().await;
    assert!(greeting.contains(" AUTH=PLAIN "), "{greeting}");
    assert!(!greeting.contains("LOGINDISABLED"), "{greeting}");
    let (_, t) = c.cmd("b", &format!("AUTHENTICATE PLAIN {plain}")).await;
    assert!(t.starts_with("b OK [CAPABILITY "), "{t}");
}

#[tokio::test(start_paused = true)]
async fn pipelined_fetches_are_answered_in_order() {
    let h = harness(false);
    let (mut c, _task) = start(&h).await;
    c.login().await;
    c.ok("s", "SELECT INBOX").await;
    // RFC 9051 §5.5: one write, answered command by command.
    c.send(concat!(
        "a1 FETCH 3 (UID)\r\n",
        "a2 UID FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)])\r\n",
        "a3 FETCH 2 (UID RFC822.SIZE)\r\n",
        "a4 NOOP\r\n",
    ))
    .await;
    let mut got = Vec::new();
    loop {
        let l = c.line().await;
        let done = l.starts_with("a4 ");
        got.push(l);
        if done {
            break;
        }
    }
    assert_eq!(
        got,
        vec![
            "* 3 FETCH (UID 3)\r\n",
            "a1 OK FETCH completed\r\n",
            "* 1 FETCH (UID 1 BODY[HEADER.FIELDS (Subject)] {14}\r\n",
            "Subject: 1\r\n",
            "\r\n",
            ")\r\n",
            "a2 OK FETCH completed\r\n",
            "* 2 FETCH (UID 2 RFC822.SIZE 22)\r\n",
            "a3 OK FETCH completed\r\n",
            "a4 OK NOOP completed\r\n",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn bads_in_a_row_end_the_session_with_bye() {
    let h = harness(false);
    let config = ImapConfig {
        max_errors: 3,
        ..ImapConfig::default()
    };
    let (mut c, task) = connect(&h, &imap(&h, config), LOOPBACK);
    c.line().await;
    c.login().await;
    // Another reply in between starts the count again.
    for (tag, cmd) in [("b1", "FROB"), ("b2", "FETCH 1 FLAGS")] {
        let (_, t) = c.cmd(tag, cmd).await;
        assert!(t.starts_with(&format!("{tag} BAD ")), "{t}");
    }
    c.ok("n", "NOOP").await;
    // Regression: BADs of commands that parse (here: no mailbox selected)
    // count too; the count used to start again at every parsed command.
    for tag in ["c1", "c2", "c3"] {
        let (_, t) = c.cmd(tag, "FETCH 1 FLAGS").await;
        assert_eq!(t, format!("{tag} BAD select a mailbox first\r\n"));
    }
    assert_eq!(c.line().await, "* BYE too many protocol errors\r\n");
    assert_eq!(c.line().await, "");
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_says_bye_unavailable_also_in_idle() {
    let h = harness(false);
    let imap = imap(&h, ImapConfig::default());
    let (mut a, ta) = connect(&h, &imap, LOOPBACK);
    let (mut b, tb) = connect(&h, &imap, LOOPBACK);
    a.line().await;
    b.line().await;
    a.login().await;
    b.login().await;
    a.ok("a1", "SELECT INBOX").await;
    b.ok("b1", "SELECT INBOX").await;
    b.send("b2 IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling\r\n");
    let Harness { shutdown, .. } = h;
    let done = tokio::spawn(shutdown.shutdown(Duration::from_secs(10)));
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.line().await,
            "* BYE [UNAVAILABLE] server shutting down\r\n"
        );
        assert_eq!(c.line().await, "");
    }
    ta.await.unwrap();
    tb.await.unwrap();
    assert!(
        done.await.unwrap(),
        "sessions ended within the grace period"
    );
}

/// Checks that `lines` have a FLAGS naming `keyword`, and a PERMANENTFLAGS
/// naming it (read-only: an empty one), before the first FETCH with it.
fn assert_announced_before_fetch(lines: &[String], keyword: &str, read_only: bool) {
    let fetch = lines
        .iter()
        .position(|l| l.contains(" FETCH ") && l.contains(keyword))
        .unwrap_or_else(|| panic!("no FETCH with {keyword}: {lines:?}"));
    let flags = lines
        .iter()
        .position(|l| l.starts_with("* FLAGS (") && l.contains(keyword));
    assert!(
        flags.is_some_and(|f| f < fetch),
        "FLAGS naming {keyword} before its FETCH: {lines:?}"
    );
    let permanent = lines.iter().position(|l| {
        if read_only {
            l == "* OK [PERMANENTFLAGS ()] read-only mailbox\r\n"
        } else {
            l.starts_with("* OK [PERMANENTFLAGS (") && l.contains(keyword)
        }
    });
    assert!(
        permanent.is_some_and(|p| p < fetch),
        "PERMANENTFLAGS before the FETCH with {keyword}: {lines:?}"
    );
}

/// RFC 3501 §7.2.6 / RFC 9051 §7.3.5: the client learns a mailbox's
/// keywords from FLAGS, so a FETCH (FLAGS …) carries no keyword that the
/// last FLAGS did not name: a new one is announced first, whether this
/// session's STORE, another session's STORE or an APPEND brought it.
#[tokio::test(start_paused = true)]
async fn rfc3501_7_2_6_a_new_keyword_is_announced_in_flags_before_any_fetch() {
    let h = harness(false);
    let imap = imap(&h, ImapConfig::default());
    let (mut a, _ta) = connect(&h, &imap, LOOPBACK);
    let (mut b, _tb) = connect(&h, &imap, LOOPBACK);
    let (mut e, _te) = connect(&h, &imap, LOOPBACK);
    for c in [&mut a, &mut b, &mut e] {
        c.line().await;
        c.login().await;
    }
    let u = a.ok("a1", "SELECT INBOX").await;
    assert!(
        u.contains(&"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n".to_string()),
        "{u:?}"
    );
    b.ok("b1", "SELECT INBOX").await;
    e.ok("e1", "EXAMINE INBOX").await;

    // This session's STORE.
    let u = a.ok("a2", "STORE 1 +FLAGS ($Work)").await;
    assert_eq!(
        u,
        vec![
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] flags permitted\r\n",
            "* 1 FETCH (FLAGS (\\Recent $Work))\r\n",
        ]
    );
    // Announced once: the next STORE with it sends no FLAGS.
    let u = a.ok("a3", "STORE 2 +FLAGS ($Work)").await;
    assert_eq!(u, vec!["* 2 FETCH (FLAGS (\\Recent $Work))\r\n"]);

    // Another session's STORE, seen at NOOP (read-write and read-only).
    let u = b.ok("b2", "NOOP").await;
    assert_announced_before_fetch(&u, "$Work", false);
    let u = e.ok("e2", "NOOP").await;
    assert_announced_before_fetch(&u, "$Work", true);

    // A keyword that arrives with a new message (APPEND by another
    // session), then fetched.
    b.ok("b3", "APPEND INBOX ($Fresh) {14+}\r\nSubject: 4\r\n\r\n")
        .await;
    let mut u = a.ok("a4", "NOOP").await;
    u.extend(a.ok("a5", "FETCH 4 (FLAGS)").await);
    assert_announced_before_fetch(&u, "$Fresh", false);
    let mut u = e.ok("e3", "NOOP").await;
    u.extend(e.ok("e4", "FETCH 4 (FLAGS)").await);
    assert_announced_before_fetch(&u, "$Fresh", true);
    // A .SILENT STORE sends no FETCH, but the keyword is in the view now.
    let u = a.ok("a6", "STORE 3 +FLAGS.SILENT ($Quiet)").await;
    assert!(
        u.iter()
            .any(|l| l.starts_with("* FLAGS (") && l.contains("$Quiet")),
        "{u:?}"
    );
}
