//! Helpers for end-to-end tests: start the real `postamt` binary on
//! loopback ports chosen by the kernel, talk to it over TCP.
#![allow(dead_code)]

pub mod http;
pub mod proxy;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_postamt");
/// The test helpers in Python (DNS server, scripted SMTP server, clients).
pub const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// The store the end-to-end tests run on: SQLite (the default), or
/// PostgreSQL when `POSTAMT_TEST_STORE=postgres` (issue 18: the same tests
/// on both backends; scripts/test.sh runs them twice). On PostgreSQL each
/// server gets a schema of its own in the machine's database
/// (`POSTAMT_TEST_PG`, default `postgres://root@127.0.0.1:5432/test`),
/// dropped with the server.
pub fn on_postgres() -> bool {
    std::env::var("POSTAMT_TEST_STORE").is_ok_and(|v| v == "postgres")
}

fn pg_base_url() -> String {
    std::env::var("POSTAMT_TEST_PG")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_string())
}

/// Runs SQL with psql against the tests' database.
pub fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(pg_base_url())
        .args(["-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PostgreSQL schema for one server, dropped on drop.
pub struct PgSchema {
    pub name: String,
    pub url: String,
}

impl PgSchema {
    pub fn new() -> PgSchema {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "e2e_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        psql(&format!("CREATE SCHEMA {name}"));
        let url = format!("{}?options=-csearch_path%3D{name}", pg_base_url());
        PgSchema { name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-X", "-q", "-d"])
            .arg(pg_base_url())
            .args([
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            ])
            .output();
    }
}

/// For a test of what only the SQLite backend has (its files, its
/// crash recovery): whether to skip it, saying why, on PostgreSQL.
pub fn sqlite_only(what: &str) -> bool {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: {what} is SQLite's");
    }
    on_postgres()
}

pub struct Server {
    pub dir: tempfile::TempDir,
    /// The server's PostgreSQL schema (matrix runs on PostgreSQL).
    pub pg: Option<PgSchema>,
    pub config: PathBuf,
    pub child: Option<Child>,
    /// listener name -> bound addresses
    pub addrs: HashMap<String, Vec<SocketAddr>>,
    pub stdout_rest: Option<std::thread::JoinHandle<String>>,
}

/// A config on loopback with kernel-chosen ports; `extra` is appended.
pub fn config_text(dir: &Path, extra: &str) -> String {
    format!(
        r#"hostname = "mail.test"
domains = ["example.test"]
data_dir = "{}"
[listen]
pop3 = "127.0.0.1:0"
pop3s = "127.0.0.1:0"
smtp = "127.0.0.1:0"
submission = "127.0.0.1:0"
submissions = "127.0.0.1:0"
lmtp = "127.0.0.1:0"
imap = "127.0.0.1:0"
imaps = "127.0.0.1:0"
http = "127.0.0.1:0"
[auth]
failure_delay_ms = 50
{extra}
"#,
        dir.display()
    )
}

impl Server {
    /// Writes a config and creates alice/bob, without starting.
    pub fn prepare(extra: &str) -> Server {
        let pg = on_postgres().then(PgSchema::new);
        let url = pg.as_ref().map(|p| p.url.clone());
        Server::prepare_with(extra, pg, url.as_deref(), None, true)
    }

    /// The first of several nodes on one PostgreSQL store (whatever store
    /// the other tests run on): node `a`, with alice and bob.
    pub fn first_node(extra: &str) -> Server {
        let pg = PgSchema::new();
        let url = pg.url.clone();
        Server::prepare_with(extra, Some(pg), Some(&url), Some("a"), true)
    }

    /// Another node on `first`'s store, named `node` (not started).
    pub fn another_node(first: &Server, node: &str, extra: &str) -> Server {
        let url = first.pg.as_ref().expect("a PostgreSQL node").url.clone();
        Server::prepare_with(extra, None, Some(&url), Some(node), false)
    }

    /// Writes a config: `extra` last, the store at `url` (a schema `pg`
    /// this server drops), as node `node`; with the users alice and bob.
    pub fn prepare_with(
        extra: &str,
        pg: Option<PgSchema>,
        url: Option<&str>,
        node: Option<&str>,
        users: bool,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("postamt.toml");
        let mut text = config_text(dir.path(), "");
        // Allow sections in `extra` to extend the defaults: put it last.
        if !extra.is_empty() {
            text = text.replace("[auth]\nfailure_delay_ms = 50\n", "");
            let extra = if extra.contains("[auth]") {
                extra.replace("[auth]", "[auth]\nfailure_delay_ms = 50")
            } else {
                format!("[auth]\nfailure_delay_ms = 50\n{extra}")
            };
            text.push_str(&extra);
        }
        // The relay stays off unless a test configures it (with its own DNS
        // server): no test may send mail, or DNS queries for it, anywhere.
        if !text.contains("[relay]") {
            text.push_str("[relay]\nenabled = false\n");
        }
        // Likewise SPF: only against a DNS server the test started.
        if !text.contains("[verify]") {
            text.push_str("[verify]\nspf = \"off\"\ndkim = false\ndmarc = \"off\"\n");
        }
        if let Some(url) = url {
            let mut line = format!("url = \"{url}\"\n");
            if let Some(node) = node {
                line.push_str(&format!("node = \"{node}\"\n"));
            }
            if text.contains("[store]\n") {
                text = text.replacen("[store]\n", &format!("[store]\n{line}"), 1);
            } else {
                text.push_str(&format!("[store]\n{line}"));
            }
        }
        std::fs::write(&config, text).unwrap();
        let s = Server {
            dir,
            pg,
            config,
            child: None,
            addrs: HashMap::new(),
            stdout_rest: None,
        };
        if !users {
            return s;
        }
        s.admin_stdin(
            &["user", "add", "alice@example.test", "--password-stdin"],
            "alice-pw\n",
        )
        .success();
        s.admin_stdin(
            &["user", "add", "bob@example.test", "--password-stdin"],
            "bob-pw\n",
        )
        .success();
        s
    }

    pub fn start(extra: &str) -> Server {
        let mut s = Server::prepare(extra);
        s.spawn();
        s
    }

    /// A server that also hosts `remote.test`, with the user
    /// `carol@remote.test` (password `carol-pw`): the receiving side of the
    /// relay tests.
    pub fn remote_peer(extra: &str) -> Server {
        let s = Server::start(extra);
        s.admin(&["domain", "add", "remote.test"]).success();
        s.admin_stdin(
            &["user", "add", "carol@remote.test", "--password-stdin"],
            "carol-pw\n",
        )
        .success();
        s
    }

    pub fn spawn(&mut self) {
        self.spawn_with_log(&std::env::var("POSTAMT_TEST_LOG").unwrap_or_else(|_| "info".into()));
    }

    pub fn spawn_with_log(&mut self, level: &str) {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("POSTAMT_LOG", level)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("stderr.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut addrs: HashMap<String, Vec<SocketAddr>> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "server did not get ready");
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!("server exited before ready: {}", self.log());
            }
            if line.trim() == "postamt: ready" {
                break;
            }
            // "postamt: pop3        listening on 127.0.0.1:1234"
            if let Some(rest) = line.strip_prefix("postamt: ")
                && let Some((name, addr)) = rest.split_once(" listening on ")
                && !addr.starts_with("unix:")
            {
                addrs
                    .entry(name.trim().to_string())
                    .or_default()
                    .push(addr.trim().parse().unwrap());
            }
        }
        self.stdout_rest = Some(std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            rest
        }));
        self.addrs = addrs;
        self.child = Some(child);
    }

    /// The server's store, opened beside it (or after it stopped), on
    /// whichever backend the tests run.
    pub fn open_store(&self) -> std::sync::Arc<dyn postamt_store::Store> {
        match &self.pg {
            Some(pg) => std::sync::Arc::new(postamt_store::PgStore::open(&pg.url).unwrap()),
            None => std::sync::Arc::new(
                postamt_store::SqliteStore::open(postamt_store::SqliteOptions::new(
                    self.dir.path().join("postamt.db"),
                ))
                .unwrap(),
            ),
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs[name][0]
    }

    /// Runs an admin subcommand against this server's config.
    pub fn admin(&self, args: &[&str]) -> Output {
        self.admin_stdin(args, "")
    }

    pub fn admin_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(
            Command::new(BIN)
                .args(args)
                .arg("--config")
                .arg(&self.config),
            stdin.as_bytes(),
        )
    }

    /// `postamt deliver`
    pub fn deliver(&self, from: &str, to: &[&str], message: &[u8]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(["deliver", "--config"])
            .arg(&self.config)
            .args(["--from", from, "--to"])
            .args(to);
        run_with_stdin(&mut cmd, message)
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns the rest
    /// of stdout.
    pub fn stop(&mut self) -> String {
        self.signal(15);
        self.stop_wait()
    }

    /// Waits for the server to exit after a signal was sent.
    pub fn stop_wait(&mut self) -> String {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "server exit status {status}");
                break;
            }
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stdout_rest
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // `pg` (the schema) is dropped after this: once the server is gone.
    }
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(self) -> Output {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("POSTAMT_LOG", "warn")
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// A raw protocol client with a read timeout, for typed sessions.
pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    pub fn send(&mut self, data: &[u8]) {
        self.stream.write_all(data).unwrap();
    }

    pub fn line(&mut self) -> String {
        let mut s = String::new();
        self.reader.read_line(&mut s).unwrap();
        s
    }

    /// Sends `cmd` + CRLF and asserts the reply starts with `expect`.
    pub fn cmd(&mut self, cmd: &str, expect: &str) -> String {
        self.send(format!("{cmd}\r\n").as_bytes());
        let l = self.line();
        assert!(
            l.starts_with(expect),
            "{cmd:?}: expected {expect:?}, got {l:?}"
        );
        l
    }

    /// Reads a dot-terminated multi-line body (after the status line),
    /// undoing byte-stuffing.
    pub fn multiline(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(
                !line.is_empty(),
                "connection closed inside a multi-line reply"
            );
            if line == b".\r\n" {
                return out;
            }
            let l = if line.starts_with(b"..") {
                &line[1..]
            } else {
                &line[..]
            };
            out.extend_from_slice(l);
        }
    }

    /// True if the server closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }

    pub fn login(&mut self, user: &str, pass: &str) {
        self.cmd(&format!("USER {user}"), "+OK");
        self.cmd(&format!("PASS {pass}"), "+OK");
    }
}

pub fn pop3(server: &Server) -> Client {
    let mut c = Client::connect(server.addr("pop3"));
    let g = c.line();
    assert!(g.starts_with("+OK"), "{g}");
    c
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The third-party tools the suite runs: the Debian packages that give
/// each everything it needs at run time (`apt-get install
/// --no-install-recommends` leaves out recommended packages: swaks without
/// its Perl TLS modules says "TLS not available: requires Net::SSLeay"),
/// and a shell check that the installed tool can do what the tests ask of
/// it. `scripts/test.sh` installs the same packages.
const TOOLS: &[(&str, &[&str], &str)] = &[
    ("curl", &["curl"], "curl --version | grep -q ' imaps '"),
    ("openssl", &["openssl"], ""),
    ("fetchmail", &["fetchmail"], ""),
    (
        "swaks",
        &["swaks", "libnet-ssleay-perl", "libio-socket-ssl-perl"],
        "swaks --support 2>&1 | grep -q '=== TLS supported'",
    ),
    ("python3", &["python3"], ""),
    ("mbsync", &["isync"], ""),
    ("offlineimap", &["offlineimap3"], ""),
    ("postfix", &["postfix"], ""),
    ("/usr/lib/dovecot/imap", &["dovecot-imapd"], ""),
    ("/usr/lib/dovecot/pop3", &["dovecot-pop3d"], ""),
    ("/usr/lib/dovecot/lmtp", &["dovecot-lmtpd"], ""),
    ("/usr/sbin/opendkim-testmsg", &["opendkim-tools"], ""),
    ("cmsutil", &["libnss3-tools"], ""),
    ("gpgsm", &["gpgsm", "gpg-agent"], "command -v gpg-agent"),
    (
        "chromedriver",
        &["chromium", "chromium-driver", "fonts-dejavu-core"],
        "chromium --version && chromedriver --version",
    ),
];

/// Whether `tool` is installed and passes its check in [`TOOLS`]; `Err`
/// says what is missing and which packages to install.
fn usable(tool: &str) -> Result<(), String> {
    let (packages, check) = TOOLS
        .iter()
        .find(|(name, _, _)| *name == tool)
        .map(|(_, p, c)| (p.join(" "), *c))
        .unwrap_or_else(|| (tool.to_string(), ""));
    if !have(tool) {
        return Err(format!(
            "{tool} is not installed: apt-get install {packages} (scripts/test.sh does)"
        ));
    }
    let works = check.is_empty()
        || Command::new("sh")
            .arg("-c")
            .arg(check)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !works {
        return Err(format!(
            "{tool} is installed but cannot do what the tests need ({check} failed): \
             apt-get install {packages} (scripts/test.sh does)"
        ));
    }
    Ok(())
}

/// Tools the suite needs are installed by the test command; in CI their
/// absence is a failure that names the packages, locally a skip with a note.
pub fn require(tool: &str) -> bool {
    let Err(why) = usable(tool) else {
        return true;
    };
    if std::env::var("CI").is_ok() || std::env::var("POSTAMT_REQUIRE_TOOLS").is_ok() {
        panic!("{why}");
    }
    eprintln!("skipping: {why}");
    false
}

pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: Sender <sender@remote.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@remote.test>\r\n\r\n{body}").into_bytes()
}

pub fn smtp(server: &Server, listener: &str) -> Client {
    let mut c = Client::connect(server.addr(listener));
    let g = c.line();
    assert!(g.starts_with("220 "), "{g}");
    c
}

impl Client {
    /// Reads a (possibly multi-line) SMTP reply; returns all its lines.
    pub fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            assert!(l.len() >= 4, "short reply {l:?} after {lines:?}");
            let last = l.as_bytes()[3] == b' ';
            lines.push(l);
            if last {
                return lines;
            }
        }
    }

    /// Sends an SMTP command and checks the reply code prefix of the last line.
    pub fn smtp(&mut self, cmd: &str, expect: &str) -> String {
        self.send(format!("{cmd}\r\n").as_bytes());
        let r = self.reply();
        let last = r.last().unwrap().clone();
        assert!(
            last.starts_with(expect),
            "{cmd:?}: expected {expect:?}, got {r:?}"
        );
        last
    }
}

/// The messages in a POP3 maildrop, as RETR sends them.
pub fn maildrop(server: &Server, user: &str, pass: &str) -> Vec<String> {
    let mut c = pop3(server);
    c.login(user, pass);
    let stat = c.cmd("STAT", "+OK");
    let n: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut out = Vec::new();
    for i in 1..=n {
        c.cmd(&format!("RETR {i}"), "+OK");
        out.push(String::from_utf8_lossy(&c.multiline()).to_string());
    }
    c.cmd("QUIT", "+OK");
    out
}

/// The message without the trace headers the server put in front of it
/// (Return-Path, Delivered-To, and one Received header with its folds).
pub fn without_trace(m: &str) -> String {
    let mut rest = m;
    for h in ["Return-Path:", "Delivered-To:"] {
        if rest.starts_with(h) {
            rest = &rest[rest.find("\r\n").unwrap() + 2..];
        }
    }
    if rest.starts_with("Received:") {
        let mut end = rest.find("\r\n").unwrap() + 2;
        while rest[end..].starts_with('\t') || rest[end..].starts_with(' ') {
            end += rest[end..].find("\r\n").unwrap() + 2;
        }
        rest = &rest[end..];
    }
    rest.to_string()
}

/// An IMAP client for typed sessions: commands with a tag, responses read
/// up to the tagged line, literals read by their announced length.
pub struct Imap {
    pub c: Client,
}

impl Imap {
    pub fn connect(addr: SocketAddr) -> Imap {
        let mut c = Client::connect(addr);
        let greeting = c.line();
        assert!(
            greeting.starts_with("* OK [CAPABILITY IMAP4rev1"),
            "{greeting}"
        );
        Imap { c }
    }

    /// Reads one response line, with any literals it announces inlined.
    pub fn read_response(&mut self) -> String {
        let mut out = String::new();
        loop {
            let line = self.c.line();
            assert!(!line.is_empty(), "connection closed; got so far: {out}");
            out.push_str(&line);
            let trimmed = line.trim_end_matches("\r\n");
            let lit = trimmed
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok());
            match lit {
                Some(n) => {
                    let mut buf = vec![0u8; n];
                    self.c.reader.read_exact(&mut buf).unwrap();
                    out.push_str(&String::from_utf8_lossy(&buf));
                }
                None => return out,
            }
        }
    }

    /// Sends `tag cmd` and returns (untagged responses, tagged line).
    pub fn cmd(&mut self, tag: &str, cmd: &str) -> (Vec<String>, String) {
        self.c.send(format!("{tag} {cmd}\r\n").as_bytes());
        self.until(tag)
    }

    pub fn until(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        for _ in 0..100_000 {
            let r = self.read_response();
            if r.starts_with(&format!("{tag} ")) {
                return (untagged, r);
            }
            untagged.push(r);
        }
        panic!("no tagged response for {tag}");
    }

    /// Like `cmd`, asserting the tagged status (OK, NO, BAD).
    pub fn ok(&mut self, tag: &str, cmd: &str) -> Vec<String> {
        let (u, t) = self.cmd(tag, cmd);
        assert!(
            t.starts_with(&format!("{tag} OK")),
            "{cmd}: {t} after {u:?}"
        );
        u
    }

    pub fn login(&mut self, user: &str, pass: &str) {
        self.ok("l1", &format!("LOGIN {user} {pass}"));
    }

    /// A session of `name@example.test` (password `name-pw`, as the test
    /// servers make their users), logged in.
    pub fn logged_in(server: &Server, name: &str) -> Imap {
        let mut c = Imap::connect(server.addr("imap"));
        c.login(&format!("{name}@example.test"), &format!("{name}-pw"));
        c
    }
}

/// Python with the test modules (dnslib, dkimpy), or a skip.
pub fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import dnslib, dkim, authres"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").is_ok() || std::env::var("POSTAMT_REQUIRE_TOOLS").is_ok() {
            panic!(
                "python3 modules dnslib, dkimpy and authres are missing (the test command installs them)"
            );
        }
        eprintln!("skipping: python3 dnslib/dkimpy not installed");
    }
    ok
}

/// A helper process that prints "ready PORT"; killed on drop.
pub struct Helper {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Helper {
    pub fn start(script: &str, args: &[&str], dir: tempfile::TempDir) -> Helper {
        let mut child = Command::new("python3")
            .arg(Path::new(CLIENTS).join(script))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
                panic!("{script} did not start: {line:?}\n{err}")
            });
        Helper { child, port, dir }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's DNS server, with a zone it can change while running.
pub struct Dns(pub Helper);

impl Dns {
    pub fn start(zone: serde_json::Value) -> Dns {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("zone.json");
        std::fs::write(&file, zone.to_string()).unwrap();
        let file = file.to_str().unwrap().to_string();
        Dns(Helper::start("dns_server.py", &[&file], dir))
    }
    pub fn port(&self) -> u16 {
        self.0.port
    }
    pub fn set(&self, zone: serde_json::Value) {
        let file = self.0.dir.path().join("zone.json");
        std::fs::write(file.with_extension("tmp"), zone.to_string()).unwrap();
        std::fs::rename(file.with_extension("tmp"), file).unwrap();
    }
}

/// dkimpy (tests/clients/dkim_check.py): `sign` or `verify`.
pub fn dkim_check(args: &[&str]) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(CLIENTS).join("dkim_check.py")).args(args);
    run_with_stdin(&mut cmd, b"")
}

impl Server {
    /// `postamt dkim keygen DOMAIN --selector S [ARGS]`: the TXT value to
    /// publish (the quoted strings of the printed record, joined).
    pub fn dkim_keygen(&self, domain: &str, selector: &str, args: &[&str]) -> String {
        let mut cmd = vec!["dkim", "keygen", domain, "--selector", selector];
        cmd.extend_from_slice(args);
        let out = self.admin(&cmd).success().stdout;
        let line = out.lines().find(|l| l.contains("._domainkey.")).unwrap();
        let (_, rest) = line.split_once(" IN TXT ").unwrap();
        rest.split('"').skip(1).step_by(2).collect()
    }
}

/// dkimpy's `sign` or `arc-sign` of FILE with the key (tests/clients/
/// dkim_check.py): the signed message, CRLF line ends.
pub fn dkimpy_sign(args: &[&str]) -> String {
    let out = dkim_check(args);
    assert_eq!(out.code, 0, "dkimpy {args:?}: {}", out.stderr);
    out.stdout.replace("\r\n", "\n").replace('\n', "\r\n")
}
