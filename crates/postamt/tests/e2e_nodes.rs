//! Several `postamt serve` nodes on one PostgreSQL store (issue 18), over
//! TCP like everything else: node A and node B are two processes with two
//! data directories and one database schema. What one node commits the
//! other's sessions see (IDLE within milliseconds), UIDs never collide,
//! the POP3 lock holds across nodes, the outbound queue is worked by both
//! and every recipient gets a message once, a killed node's queue claims
//! are taken over, and a node that loses the database answers `451 4.3.0`
//! while the other goes on, and recovers; and a node whose database is
//! restarted under load (a cluster of the test's own) does the same.
//!
//! These tests need PostgreSQL (the machine's, as everywhere in CI)
//! whichever store the rest of the suite runs on.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::*;

fn two_nodes(extra: &str) -> (Server, Server) {
    let mut a = Server::first_node(extra);
    a.spawn();
    let mut b = Server::another_node(&a, "b", extra);
    b.spawn();
    (a, b)
}

/// Reads untagged responses until one contains `want` (each read waits at
/// most the client's 10 s); how long it took.
fn wait_untagged(c: &mut Imap, want: &str) -> Duration {
    eprintln!("waiting for {want}");
    let start = Instant::now();
    for _ in 0..100 {
        let r = c.read_response();
        if r.contains(want) {
            return start.elapsed();
        }
    }
    panic!("no {want:?}");
}

fn deliver_smtp(s: &Server, subject: &str) {
    let mut c = smtp(s, "smtp");
    c.smtp("EHLO client.test", "250");
    c.smtp("MAIL FROM:<x@remote.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(format!("Subject: {subject}\r\n\r\nhello\r\n.\r\n").as_bytes());
    let r = c.reply();
    assert!(r.last().unwrap().starts_with("250"), "{r:?}");
    c.smtp("QUIT", "221");
}

/// Deliver on A, see it in IDLE on B (RFC 2177) within a second; STORE on
/// B, see the FETCH in IDLE on A; EXPUNGE on A, see it on B; a mailbox
/// made on B is listed on A.
#[test]
fn a_change_on_one_node_reaches_idle_sessions_on_the_other() {
    let (a, b) = two_nodes("");
    let mut on_b = Imap::logged_in(&b, "alice");
    on_b.ok("s", "SELECT INBOX");
    on_b.c.send(b"i1 IDLE\r\n");
    assert!(on_b.c.line().starts_with("+ "));
    let mut on_a = Imap::logged_in(&a, "alice");
    on_a.ok("s", "SELECT INBOX");
    on_a.c.send(b"i1 IDLE\r\n");
    assert!(on_a.c.line().starts_with("+ "));

    deliver_smtp(&a, "first");
    let took = wait_untagged(&mut on_b, "* 1 EXISTS");
    assert!(took < Duration::from_secs(1), "EXISTS on B after {took:?}");
    wait_untagged(&mut on_a, "* 1 EXISTS");

    on_b.c.send(b"DONE\r\n");
    on_b.until("i1");
    on_b.ok("f", "STORE 1 +FLAGS (\\Flagged)");
    wait_untagged(&mut on_a, "\\Flagged");

    on_b.c.send(b"i2 IDLE\r\n");
    assert!(on_b.c.line().starts_with("+ "));
    on_a.c.send(b"DONE\r\n");
    on_a.until("i1");
    on_a.ok("d", "STORE 1 +FLAGS.SILENT (\\Deleted)");
    on_a.ok("e", "EXPUNGE");
    wait_untagged(&mut on_b, "* 1 EXPUNGE");
    on_b.c.send(b"DONE\r\n");
    on_b.until("i2");

    on_b.ok("c", "CREATE Projects");
    let listed = on_a.ok("l", "LIST \"\" Projects");
    assert!(listed.iter().any(|l| l.contains("Projects")), "{listed:?}");
}

/// Both nodes APPEND to one mailbox at once (RFC 4315 APPENDUID): no UID
/// is given twice, none is skipped, and both nodes list the same.
#[test]
fn appends_on_both_nodes_never_share_a_uid() {
    let (a, b) = two_nodes("");
    let per_node = 25;
    let uids: Vec<u32> = std::thread::scope(|scope| {
        let hs: Vec<_> = [&a, &b]
            .into_iter()
            .enumerate()
            .map(|(n, node)| {
                scope.spawn(move || {
                    let mut c = Imap::logged_in(node, "alice");
                    let mut got = Vec::new();
                    for i in 0..per_node {
                        let msg = format!("Subject: n{n} m{i}\r\n\r\nx\r\n");
                        c.c.send(format!("a{i} APPEND INBOX {{{}}}\r\n", msg.len()).as_bytes());
                        assert!(c.c.line().starts_with("+ "));
                        c.c.send(format!("{msg}\r\n").as_bytes());
                        let (_, t) = c.until(&format!("a{i}"));
                        // a1 OK [APPENDUID 1700000000 7] APPEND completed
                        let uid = t
                            .split("APPENDUID ")
                            .nth(1)
                            .and_then(|r| r.split([' ', ']']).nth(1))
                            .and_then(|u| u.parse().ok())
                            .unwrap_or_else(|| panic!("{t}"));
                        got.push(uid);
                    }
                    got
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let set: BTreeSet<u32> = uids.iter().copied().collect();
    assert_eq!(set.len(), 2 * per_node, "a UID given twice: {uids:?}");
    assert_eq!(
        set.into_iter().collect::<Vec<_>>(),
        (1..=(2 * per_node) as u32).collect::<Vec<_>>()
    );
    for node in [&a, &b] {
        let mut c = Imap::logged_in(node, "alice");
        c.ok("s", "SELECT INBOX");
        let found = c.ok("u", "UID SEARCH ALL");
        let n = found[0].split_whitespace().count() - 2;
        assert_eq!(n, 2 * per_node, "{found:?}");
    }
}

/// RFC 1939 §8: one POP3 session per maildrop, across nodes.
#[test]
fn the_pop3_lock_holds_across_nodes() {
    let (a, b) = two_nodes("");
    let mut on_a = pop3(&a);
    on_a.login("alice@example.test", "alice-pw");
    let mut on_b = pop3(&b);
    on_b.cmd("USER alice@example.test", "+OK");
    on_b.cmd("PASS alice-pw", "-ERR [IN-USE]");
    on_a.cmd("QUIT", "+OK");
    // The unlock is sent when A's session ends: B gets in soon after.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = pop3(&b);
        c.cmd("USER alice@example.test", "+OK");
        c.send(b"PASS alice-pw\r\n");
        if c.line().starts_with("+OK") {
            break;
        }
        assert!(Instant::now() < deadline, "B never got the maildrop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scripted remote server (tests/clients/scripted_smtp.py) and what it
/// received: recipient → transactions.
struct Sink(Helper);

impl Sink {
    fn start(script: serde_json::Value) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("script.json");
        std::fs::write(&file, script.to_string()).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let args = [
            file.to_str().unwrap().to_string(),
            out.to_str().unwrap().to_string(),
            "127.0.0.1".to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Sink(Helper::start("scripted_smtp.py", &args, dir))
    }

    fn received(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for e in std::fs::read_dir(self.0.dir.path().join("out"))
            .unwrap()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("txn-") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue; // being written
            };
            for r in v["rcpts"].as_array().unwrap() {
                let r = r.as_str().unwrap();
                let addr = r
                    .split('<')
                    .nth(1)
                    .and_then(|x| x.split('>').next())
                    .unwrap_or(r);
                *out.entry(addr.to_string()).or_default() += 1;
            }
        }
        out
    }

    fn wait(&self, n: usize, within: Duration) -> HashMap<String, usize> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} recipients at the sink",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn relay_to(sink: &Sink, extra: &str) -> String {
    format!(
        "[relay]\nsmarthost = \"127.0.0.1:{}\"\ntls = \"off\"\nretry_initial = 1\nretry_max = 1\n\
         connect_timeout = 2\ngreeting_timeout = 3\ncommand_timeout = 3\ndata_block_timeout = 3\n\
         data_end_timeout = 30\n{extra}",
        sink.0.port
    )
}

fn submit(s: &Server, to: &str) {
    let mut c = smtp(s, "submission");
    c.smtp("EHLO client.test", "250");
    c.smtp("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==", "235");
    c.smtp("MAIL FROM:<alice@example.test>", "250");
    c.smtp(&format!("RCPT TO:<{to}>"), "250");
    c.smtp("DATA", "354");
    c.send(format!("Subject: to {to}\r\n\r\nhello\r\n.\r\n").as_bytes());
    let r = c.reply();
    assert!(r.last().unwrap().starts_with("250"), "{r:?}");
    c.smtp("QUIT", "221");
}

fn queue_empty(s: &Server) -> bool {
    s.admin(&["queue", "list"])
        .success()
        .stdout
        .contains("queue is empty")
}

/// Both nodes' relays work one queue (claims with FOR UPDATE SKIP
/// LOCKED): messages submitted on either node reach the remote server,
/// every recipient once.
#[test]
fn the_queue_is_worked_by_both_nodes_and_each_recipient_gets_one_copy() {
    if !python_ready() {
        return;
    }
    let sink = Sink::start(serde_json::json!([{}]));
    let extra = relay_to(&sink, "");
    let (a, b) = two_nodes(&extra);
    let n = 30;
    std::thread::scope(|scope| {
        for (k, node) in [&a, &b].into_iter().enumerate() {
            scope.spawn(move || {
                for i in 0..n / 2 {
                    submit(node, &format!("r{k}-{i}@remote.test"));
                }
            });
        }
    });
    let got = sink.wait(n, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !queue_empty(&a) {
        assert!(Instant::now() < deadline, "the queue did not empty");
        std::thread::sleep(Duration::from_millis(100));
    }
    let got_after = sink.received();
    assert_eq!(got_after, got, "more arrived after the queue emptied");
    assert_eq!(got.len(), n);
    assert!(
        got.values().all(|c| *c == 1),
        "a recipient got more than one copy: {got:?}"
    );
}

/// A node killed (SIGKILL) in the middle of an attempt: its claim runs
/// out after `[store] lease`, and the other node delivers the message.
#[test]
fn a_killed_nodes_queue_claims_are_taken_over() {
    if !python_ready() {
        return;
    }
    // The first connection never answers the final dot: A's attempt hangs
    // there until A dies; the next connection (B's) is accepted.
    let sink = Sink::start(serde_json::json!([{"stall": "final"}, {}]));
    let extra = format!("{}[store]\nlease = 3\n", relay_to(&sink, ""));
    let mut a = Server::first_node(&extra);
    a.spawn();
    submit(&a, "late@remote.test");
    // A's relay is in the stalled attempt: the sink saw its DATA.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(sink.0.dir.path().join("out/log"))
        .unwrap_or_default()
        .contains("DATA")
    {
        assert!(Instant::now() < deadline, "A never tried");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut b = Server::another_node(&a, "b", &extra);
    b.spawn();
    let start = Instant::now();
    let mut child = a.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let got = sink.wait(1, Duration::from_secs(30));
    assert_eq!(got.get("late@remote.test"), Some(&1));
    // The lease (3 s) and the relay's next look: well under the 60 s a
    // relay sleeps at most.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !queue_empty(&b) {
        assert!(Instant::now() < deadline, "B did not finish the entry");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Node A loses the database (every connection closed, new ones refused,
/// as when PostgreSQL restarts or the network fails) while SMTP clients
/// keep sending: A answers `451 4.3.0` (RFC 3463: system not accepting
/// messages) meanwhile, never `250` without a commit; node B goes on
/// delivering; once the database is back A delivers again, and every
/// message either node acknowledged is in the mailbox exactly once.
#[test]
fn a_node_cut_off_from_the_database_says_451_and_recovers() {
    let pg_addr: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = Proxy::start(pg_addr);
    let mut a = Server::first_node("");
    let url = a.pg.as_ref().unwrap().url.clone();
    // A reaches PostgreSQL through the proxy; B directly.
    let proxied = url.replacen("127.0.0.1:5432", &proxy.addr.to_string(), 1);
    assert_ne!(proxied, url, "the tests' PostgreSQL is at 127.0.0.1:5432");
    let text = std::fs::read_to_string(&a.config).unwrap();
    std::fs::write(&a.config, text.replace(&url, &proxied)).unwrap();
    a.spawn();
    let mut b = Server::another_node(&a, "b", "");
    b.spawn();

    let load = Load::start(&[a.addr("smtp"), b.addr("smtp")], 4);
    let (acked, refused) = (load.acked.clone(), load.refused.clone());
    let count = |v: &Arc<Mutex<Vec<String>>>| v.lock().unwrap().len();
    let wait_acked = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(&acked) < n {
            assert!(
                Instant::now() < deadline,
                "only {} acknowledged",
                count(&acked)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_acked(40);
    // An IMAP session on A across the outage.
    let mut session = Imap::logged_in(&a, "alice");
    session.ok("s", "SELECT INBOX");
    proxy.cut();
    let cut_at = count(&acked);
    // While A is cut off, B goes on: more messages are acknowledged, and
    // A refuses with 451.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&acked) < cut_at + 40
        || !refused.lock().unwrap().iter().any(|r| r.starts_with("451"))
    {
        assert!(
            Instant::now() < deadline,
            "acked {} (cut at {cut_at}), refused {:?}",
            count(&acked),
            refused.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // What needs the database fails with NO (RFC 5530 UNAVAILABLE), the
    // session stays.
    let (_, t) = session.cmd("f", "FETCH 1 BODY.PEEK[]");
    assert!(t.starts_with("f NO"), "{t}");
    proxy.restore();
    // A recovers: its workers' messages are acknowledged again.
    let before = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.starts_with("w0-") || t.starts_with("w2-"))
        .count();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = acked
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.starts_with("w0-") || t.starts_with("w2-"))
            .count();
        if now > before + 10 {
            break;
        }
        assert!(Instant::now() < deadline, "A did not recover: {}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    load.stop_and_check(a.open_store());
    // The session that lived through it works again, as do new ones.
    let (_, t) = session.cmd("f2", "FETCH 1 BODY.PEEK[]");
    assert!(t.starts_with("f2 OK"), "{t}");
    let mut c = Imap::logged_in(&a, "alice");
    c.ok("s", "SELECT INBOX");
}

/// SMTP load: `workers` threads, each sending one message per connection
/// (at most 2,000) to the nodes in turn, tagged `w<worker>-<n>`; what was
/// acknowledged with 250 and what was refused (the reply).
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(nodes: &[std::net::SocketAddr], workers: usize) -> Load {
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let refused = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers = (0..workers)
            .map(|w| {
                let node = nodes[w % nodes.len()];
                let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                        let tag = format!("w{w}-{i}");
                        let mut c = Client::connect(node);
                        let greeting = c.line();
                        if !greeting.starts_with("220") {
                            refused.lock().unwrap().push(greeting);
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        let mut step = |cmd: &str| {
                            c.send(cmd.as_bytes());
                            let mut l = c.line();
                            while l.starts_with("250-") {
                                l = c.line();
                            }
                            l
                        };
                        let mut last = String::new();
                        for cmd in [
                            "EHLO load.test\r\n".to_string(),
                            "MAIL FROM:<load@remote.test>\r\n".into(),
                            "RCPT TO:<alice@example.test>\r\n".into(),
                            "DATA\r\n".into(),
                            format!("Subject: {tag}\r\nX-Tag: {tag}\r\n\r\nload\r\n.\r\n"),
                        ] {
                            last = step(&cmd);
                            if !(last.starts_with('2') || last.starts_with('3')) {
                                break;
                            }
                        }
                        if last.starts_with("250") {
                            acked.lock().unwrap().push(tag);
                        } else {
                            refused.lock().unwrap().push(last);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                })
            })
            .collect();
        Load {
            acked,
            refused,
            stop,
            workers,
        }
    }

    /// Stops the load; every refusal was `451 4.3.0` (or `421` at the
    /// greeting) and every acknowledged message is in alice's INBOX once.
    fn stop_and_check(self, store: Arc<dyn postamt_store::Store>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        let refused = self.refused.lock().unwrap().clone();
        assert!(
            refused
                .iter()
                .all(|r| r.starts_with("451 4.3.0") || r.starts_with("421")),
            "refusals other than 451 4.3.0: {refused:?}"
        );
        let alice = store.account("alice@example.test").unwrap().unwrap();
        let inbox = store.mailbox(alice.id, "INBOX").unwrap().unwrap();
        let list = store.messages(inbox.id, postamt_store::ModSeq(0)).unwrap();
        let uids: Vec<_> = list.iter().map(|m| m.uid).collect();
        let mut count: HashMap<String, usize> = HashMap::new();
        for (_, content) in store.message_contents(inbox.id, &uids).unwrap() {
            let text = String::from_utf8_lossy(&content).into_owned();
            if let Some(tag) = text.lines().find_map(|l| l.strip_prefix("X-Tag: ")) {
                *count.entry(tag.to_string()).or_default() += 1;
            }
        }
        for tag in self.acked.lock().unwrap().iter() {
            assert_eq!(count.get(tag), Some(&1), "acknowledged {tag}");
        }
    }
}

/// Whether this test runs as root (`/proc/self` belongs to the effective
/// user).
fn as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A PostgreSQL cluster of the test's own (Debian's server binaries,
/// `initdb` into a temporary directory, as the `postgres` user when the
/// test runs as root), on a port of its own: one the test may stop and
/// start, which the machine's shared server is not.
struct Cluster {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl Cluster {
    /// `None` (a skip) outside CI when the server binaries are missing.
    fn start() -> Option<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path().join("bin"))
                .find(|b| b.join("initdb").exists())
        });
        let Some(bin) = bin else {
            assert!(
                std::env::var("POSTAMT_REQUIRE_TOOLS").is_err(),
                "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) are needed"
            );
            eprintln!("skipped: no PostgreSQL server binaries");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Cluster { dir, bin, port };
        if as_root() {
            // initdb refuses root: the cluster belongs to `postgres`.
            let id = |flag: &str| -> u32 {
                let out = std::process::Command::new("id")
                    .args([flag, "postgres"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
            };
            std::os::unix::fs::chown(c.dir.path(), Some(id("-u")), Some(id("-g"))).unwrap();
        }
        c.run(
            "initdb",
            &["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        );
        c.pg_ctl("start");
        Some(c)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let mut cmd = if as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            std::process::Command::new(self.bin.join(tool))
        };
        let out = cmd.args(["-D", &self.data()]).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `start`, or `stop` (fast: sessions cut, what was committed kept).
    fn pg_ctl(&self, what: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB",
            self.port,
            self.dir.path().display()
        );
        let log = format!("{}/log", self.dir.path().display());
        match what {
            "start" => self.run(
                "pg_ctl",
                &["-w", "-t", "30", "-l", &log, "-o", &options, "start"],
            ),
            _ => self.run("pg_ctl", &["-w", "-t", "30", "-m", "fast", "stop"]),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        if as_root() {
            let _ = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", &self.data(), "-m", "immediate", "stop"])
                .output();
        }
    }
}

/// The database restarted under SMTP load (issue 18): while it is down the
/// node answers `451 4.3.0` (never `250` without a commit), an IMAP
/// command that needs the store `NO`; once it is back, the node
/// reconnects by itself, deliveries are acknowledged again, the IMAP
/// session that lived through it works, and every acknowledged message is
/// there once. On a cluster of the test's own: the machine's server is
/// shared by every other test.
#[test]
fn the_database_restarted_under_load_451_then_recovery() {
    if !on_postgres() {
        eprintln!("runs in the PostgreSQL pass of the suite");
        return;
    }
    let Some(db) = Cluster::start() else { return };
    let mut a = Server::prepare_with("", None, Some(&db.url()), Some("a"), true);
    a.spawn();
    let load = Load::start(&[a.addr("smtp")], 3);
    let count = |v: &Arc<Mutex<Vec<String>>>| v.lock().unwrap().len();
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what}: acked {}, refused {:?}",
                count(&load.acked),
                load.refused.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait("load", &|| count(&load.acked) >= 30);
    let mut session = Imap::logged_in(&a, "alice");
    session.ok("s", "SELECT INBOX");
    db.pg_ctl("stop");
    wait("451 while the database is down", &|| {
        load.refused
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("451 4.3.0"))
    });
    let (_, t) = session.cmd("f", "FETCH 1 BODY.PEEK[]");
    assert!(t.starts_with("f NO"), "{t}");
    let down = count(&load.acked);
    db.pg_ctl("start");
    wait("acknowledged again after the restart", &|| {
        count(&load.acked) >= down + 20
    });
    load.stop_and_check(Arc::new(postamt_store::PgStore::open(&db.url()).unwrap()));
    let (_, t) = session.cmd("f2", "FETCH 1 BODY.PEEK[]");
    assert!(t.starts_with("f2 OK"), "{t}");
    let mut c = Imap::logged_in(&a, "alice");
    c.ok("s", "SELECT INBOX");
}
