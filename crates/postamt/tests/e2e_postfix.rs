//! A real Postfix (Debian's package) relaying into postamt: first over
//! SMTP, then over LMTP, with a private Postfix instance that the test
//! creates, starts and stops on loopback ports (tests/clients/
//! postfix_instance.sh). Mail is injected into Postfix's smtpd, relayed to
//! postamt and read back over POP3; unknown recipients must bounce in
//! Postfix with postamt's 550 5.1.1.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const HELPER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/postfix_instance.sh"
);

/// How long mail may take to arrive (or a bounce to be logged).
const DEADLINE: Duration = Duration::from_secs(60);

const DATE: &str = "Wed, 26 Nov 2025 12:00:00 +0000";

/// A private Postfix instance under a temp dir; stopped on drop, even when
/// the test panics (its log is printed then).
struct Postfix {
    dir: tempfile::TempDir,
    smtpd: SocketAddr,
    running: bool,
}

impl Postfix {
    /// Creates an instance whose smtpd listens on a free loopback port and
    /// that sends mail for example.test to `transport`.
    fn create(transport: &str) -> Postfix {
        Postfix::create_for("example.test", transport)
    }

    /// An instance that relays mail for `domain` to `transport`.
    fn create_for(domain: &str, transport: &str) -> Postfix {
        let smtpd = free_port();
        let p = Postfix {
            dir: tempfile::tempdir().unwrap(),
            smtpd,
            running: false,
        };
        p.helper(&["create", &smtpd.port().to_string(), transport, domain]);
        p
    }

    fn helper(&self, args: &[&str]) {
        let mut cmd = Command::new("sh");
        cmd.arg(HELPER)
            .arg(args[0])
            .arg(self.dir.path())
            .args(&args[1..]);
        let out = run_with_stdin(&mut cmd, b"");
        assert_eq!(
            out.code,
            0,
            "postfix_instance.sh {args:?}\nstdout: {}\nstderr: {}\nmaillog:\n{}",
            out.stdout,
            out.stderr,
            self.log()
        );
    }

    fn start(&mut self) {
        self.running = true;
        self.helper(&["start"]);
    }

    fn stop(&mut self) {
        if self.running {
            self.running = false;
            self.helper(&["stop"]);
        }
    }

    /// Where mail for example.test goes; takes effect at the next start.
    fn route(&self, transport: &str) {
        self.helper(&["route", transport]);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The log lines about queue id `qid`.
    fn log_of(&self, qid: &str) -> Vec<String> {
        let needle = format!(": {qid}: ");
        self.log()
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Waits until Postfix has logged a line about `qid` that contains all
    /// of `parts`; returns it.
    fn wait_log(&self, s: &Server, qid: &str, parts: &[&str]) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .log_of(qid)
                .into_iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l;
            }
            if start.elapsed() > DEADLINE {
                panic!(
                    "no Postfix log line for {qid} with {parts:?} within {DEADLINE:?}\npostamt log:\n{}",
                    s.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Injects a message into Postfix's smtpd; returns Postfix's queue id.
    fn inject(&self, from: &str, to: &[&str], message: &str) -> String {
        let mut c = Client::connect(self.smtpd);
        let g = c.line();
        assert!(g.starts_with("220 "), "{g}");
        c.smtp("EHLO client.test", "250");
        c.smtp(&format!("MAIL FROM:<{from}> BODY=8BITMIME"), "250");
        for rcpt in to {
            c.smtp(&format!("RCPT TO:<{rcpt}>"), "250");
        }
        c.smtp("DATA", "354");
        // Dot-stuffing: a line that starts with a dot gets another one.
        let stuffed = message.replace("\r\n.", "\r\n..");
        c.send(stuffed.as_bytes());
        let queued = c.smtp(".", "250");
        c.smtp("QUIT", "221");
        // "250 2.0.0 Ok: queued as 4dLr1b2Kqzz3x"
        queued.trim_end().rsplit(' ').next().unwrap().to_string()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- Postfix maillog ---\n{}--- end ---", self.log());
        }
        if self.running {
            self.running = false;
            let mut cmd = Command::new("sh");
            cmd.arg(HELPER).arg("stop").arg(self.dir.path());
            let out = run_with_stdin(&mut cmd, b"");
            if out.code != 0 {
                eprintln!("stopping Postfix: {}{}", out.stdout, out.stderr);
            }
        }
    }
}

/// A loopback port nobody listens on right now (the kernel's choice).
fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Postfix's master must start as root; the package must be installed.
fn postfix_usable() -> bool {
    if !Path::new("/usr/sbin/postfix").exists() && !require("postfix") {
        return false;
    }
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        if std::env::var("CI").is_ok() || std::env::var("POSTAMT_REQUIRE_TOOLS").is_ok() {
            panic!("the Postfix test must run as root");
        }
        eprintln!("skipping: Postfix needs root");
        return false;
    }
    true
}

fn message(to: &str, subject: &str, tag: &str) -> String {
    format!(
        "From: Carol <carol@remote.test>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {DATE}\r\nMessage-ID: <{tag}@remote.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello from Carol, relayed by Postfix.\r\n.a line that starts with a dot\r\n\r\nGr\u{fc}\u{df}e\r\n"
    )
}

/// Waits until `user`'s maildrop holds `n` messages; returns them.
fn wait_for_mail(s: &Server, user: &str, pass: &str, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let got = maildrop(s, user, pass);
        if got.len() >= n {
            assert_eq!(got.len(), n, "more mail than sent for {user}: {got:#?}");
            return got;
        }
        if start.elapsed() > DEADLINE {
            panic!(
                "{user} has {} of {n} messages after {DEADLINE:?}\npostamt log:\n{}",
                got.len(),
                s.log(),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Splits off the first header field (with its folded lines).
fn first_header(m: &str) -> (&str, &str) {
    let mut end = m.find("\r\n").unwrap() + 2;
    while m[end..].starts_with('\t') || m[end..].starts_with(' ') {
        end += m[end..].find("\r\n").unwrap() + 2;
    }
    m.split_at(end)
}

/// Checks a message that went carol -> Postfix -> postamt -> `user`:
/// postamt's trace, then Postfix's Received header, then the message as
/// injected, byte for byte. Returns postamt's Received header.
fn check_relayed(got: &str, user: &str, sent: &str, qid: &str) -> String {
    let prefix = format!("Return-Path: <carol@remote.test>\r\nDelivered-To: {user}\r\n");
    assert!(got.starts_with(&prefix), "{got}");
    let (ours, rest) = first_header(&got[prefix.len()..]);
    assert!(ours.starts_with("Received: from relay.test ("), "{got}");
    assert!(ours.contains("127.0.0.1]"), "{ours}");
    assert!(ours.contains("by mail.test (postamt) with "), "{ours}");
    assert!(ours.contains(&format!("for <{user}>;")), "{ours}");
    let (theirs, body) = first_header(rest);
    assert!(theirs.starts_with("Received: from client.test ("), "{got}");
    assert!(
        theirs.contains(&format!("by relay.test (Postfix) with ESMTP id {qid}")),
        "{theirs}"
    );
    assert_eq!(body, sent, "the message as injected into Postfix");
    assert_eq!(without_trace(got), rest);
    ours.to_string()
}

#[test]
fn postfix_relays_into_postamt_over_smtp_and_lmtp() {
    if !postfix_usable() {
        return;
    }
    let s = Server::start("");
    let smtp_route = format!("smtp:[127.0.0.1]:{}", s.addr("smtp").port());
    let lmtp_route = format!("lmtp:inet:127.0.0.1:{}", s.addr("lmtp").port());
    let mut pf = Postfix::create(&smtp_route);
    pf.start();

    // 1. Over SMTP: carol -> Postfix -> postamt's inbound SMTP -> alice.
    let sent = message("alice@example.test", "via postfix smtp", "smtp-1");
    let qid = pf.inject("carol@remote.test", &["alice@example.test"], &sent);
    let got = wait_for_mail(&s, "alice@example.test", "alice-pw", 1);
    let ours = check_relayed(&got[0], "alice@example.test", &sent, &qid);
    // Postfix's client uses STARTTLS when offered (opportunistic TLS, the
    // level Debian's default main.cf sets), so this hop is encrypted.
    assert!(ours.contains(" with ESMTPS id "), "{ours}");
    let sent_line = pf.wait_log(&s, &qid, &["to=<alice@example.test>", "status=sent"]);
    assert!(
        sent_line.contains(&format!(
            "relay=127.0.0.1[127.0.0.1]:{}",
            s.addr("smtp").port()
        )),
        "{sent_line}"
    );
    assert!(sent_line.contains("250 2.0.0"), "{sent_line}");
    let tls = format!(
        "TLS connection established to 127.0.0.1[127.0.0.1]:{}",
        s.addr("smtp").port()
    );
    assert!(pf.log().contains(&tls), "{}", pf.log());
    pf.wait_log(&s, &qid, &["removed"]);

    // 2. An unknown recipient over SMTP bounces in Postfix with postamt's
    // permanent refusal, and nothing arrives.
    let qid = pf.inject(
        "carol@remote.test",
        &["nobody@example.test"],
        &message("nobody@example.test", "nobody via smtp", "smtp-2"),
    );
    let bounced = pf.wait_log(&s, &qid, &["to=<nobody@example.test>", "status=bounced"]);
    assert!(bounced.contains("550 5.1.1"), "{bounced}");
    assert!(bounced.contains("in reply to RCPT TO command"), "{bounced}");
    // Postfix told the sender (the notice itself is discarded here).
    pf.wait_log(&s, &qid, &["sender non-delivery notification"]);
    pf.wait_log(&s, &qid, &["removed"]);

    // 3. Over LMTP: the same instance, restarted with the new route.
    pf.stop();
    pf.route(&lmtp_route);
    pf.start();
    let sent = message("bob@example.test", "via postfix lmtp", "lmtp-1");
    let qid = pf.inject("carol@remote.test", &["bob@example.test"], &sent);
    let got = wait_for_mail(&s, "bob@example.test", "bob-pw", 1);
    let ours = check_relayed(&got[0], "bob@example.test", &sent, &qid);
    assert!(ours.contains(" with LMTP"), "{ours}");
    let sent_line = pf.wait_log(&s, &qid, &["to=<bob@example.test>", "status=sent"]);
    assert!(
        sent_line.contains(&format!(
            "relay=127.0.0.1[127.0.0.1]:{}",
            s.addr("lmtp").port()
        )),
        "{sent_line}"
    );
    pf.wait_log(&s, &qid, &["removed"]);

    // 4. One LMTP transaction with a known and an unknown recipient: alice
    // gets it, nobody bounces.
    let sent = message(
        "alice@example.test, nobody@example.test",
        "nobody via lmtp",
        "lmtp-2",
    );
    let qid = pf.inject(
        "carol@remote.test",
        &["alice@example.test", "nobody@example.test"],
        &sent,
    );
    let bounced = pf.wait_log(&s, &qid, &["to=<nobody@example.test>", "status=bounced"]);
    assert!(bounced.contains("550 5.1.1"), "{bounced}");
    pf.wait_log(&s, &qid, &["to=<alice@example.test>", "status=sent"]);
    pf.wait_log(&s, &qid, &["sender non-delivery notification"]);
    pf.wait_log(&s, &qid, &["removed"]);
    let got = wait_for_mail(&s, "alice@example.test", "alice-pw", 2);
    let ours = check_relayed(&got[1], "alice@example.test", &sent, &qid);
    assert!(ours.contains(" with LMTP"), "{ours}");

    // Nothing else arrived, nothing is left queued in postamt.
    assert_eq!(maildrop(&s, "bob@example.test", "bob-pw").len(), 1);
    let queue = s.admin(&["queue", "list"]).success().stdout;
    assert!(queue.contains("queue is empty"), "{queue}");

    // Postfix's SMTP and LMTP clients, the ones that talked to postamt,
    // logged nothing but TLS sessions, deliveries and the two bounces: no
    // warnings, deferrals or lost connections.
    let log = pf.log();
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" postfix/smtp[") || l.contains(" postfix/lmtp["))
        .filter(|l| {
            !(l.contains("TLS connection established to 127.0.0.1[127.0.0.1]:")
                || l.contains("status=sent (250 2.0.0")
                || (l.contains("to=<nobody@example.test>") && l.contains("status=bounced")))
        })
        .collect();
    assert!(complaints.is_empty(), "Postfix complained: {complaints:#?}");
    assert!(
        !log.contains("status=deferred"),
        "nothing was deferred:\n{log}"
    );
    if std::env::var("POSTAMT_SHOW_POSTFIX_LOG").is_ok() {
        eprintln!("--- Postfix maillog ---\n{log}--- end ---");
        eprintln!("--- postamt log ---\n{}--- end ---", s.log());
        for m in got
            .iter()
            .chain(&maildrop(&s, "bob@example.test", "bob-pw"))
        {
            eprintln!("--- message ---\n{m}--- end ---");
        }
    }

    pf.stop();
}

/// The other direction: postamt's relay hands mail to a real Postfix
/// (its smarthost here), which passes it on to a second postamt that hosts
/// remote.test: alice -> postamt (submission, queue, relay) -> Postfix ->
/// postamt -> carol.
#[test]
fn postamt_relays_into_postfix() {
    if !postfix_usable() {
        return;
    }
    let peer = Server::remote_peer("[relay]\nenabled = false\n[smtp]\nspoof_policy = \"off\"\n");
    let route = format!("smtp:[127.0.0.1]:{}", peer.addr("smtp").port());
    let mut pf = Postfix::create_for("remote.test", &route);
    pf.start();
    // The smarthost is an address: no DNS is asked (port 9 answers nothing).
    let s = Server::start(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:9\"]\n[relay]\nsmarthost = \"127.0.0.1:{}\"\nretry_initial = 1\nretry_max = 1\n",
        pf.smtpd.port()
    ));
    let body = "Hallo Carol,\r\n.a line that starts with a dot\r\n\r\nGr\u{fc}\u{df}e\r\n";
    let sent = format!(
        "From: Alice <alice@example.test>\r\nTo: carol@remote.test\r\nSubject: via postfix\r\nDate: {DATE}\r\n\
         Message-ID: <to-postfix@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}"
    );
    let mut c = smtp(&s, "submission");
    c.smtp("EHLO client.test", "250");
    c.smtp("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==", "235");
    c.smtp("MAIL FROM:<alice@example.test> BODY=8BITMIME", "250");
    c.smtp("RCPT TO:<carol@remote.test>", "250");
    c.smtp("DATA", "354");
    c.send(sent.replace("\r\n.", "\r\n..").as_bytes());
    c.smtp(".", "250");
    c.smtp("QUIT", "221");
    let got = wait_for_mail(&peer, "carol@remote.test", "carol-pw", 1);
    let m = &got[0];
    assert!(m.ends_with(body), "body changed on the way:\n{m}");
    assert!(m.contains("Return-Path: <alice@example.test>"), "{m}");
    // Postfix received it from our relay (which says EHLO mail.test) ...
    assert!(m.contains("by relay.test (Postfix) with ESMTP"), "{m}");
    assert!(m.contains("Received: from mail.test ("), "{m}");
    // ... after our submission service took it from alice.
    assert!(m.contains("by mail.test (postamt) with ESMTPA"), "{m}");
    let log = pf.log();
    assert!(
        log.contains("from=<alice@example.test>")
            && log.contains("to=<carol@remote.test>")
            && log.contains("status=sent"),
        "{log}"
    );
    let start = Instant::now();
    while !s
        .admin(&["queue", "list"])
        .success()
        .stdout
        .contains("queue is empty")
    {
        assert!(start.elapsed() < DEADLINE, "queue not empty:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    pf.stop();
}

/// A private Dovecot (IMAP, POP3, LMTP) for the mail client test.
struct Dovecot {
    dir: tempfile::TempDir,
    imap: u16,
    pop3: u16,
    lmtp: u16,
}

const DOVECOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/dovecot_imap_instance.sh"
);

impl Dovecot {
    fn start() -> Dovecot {
        let d = Dovecot {
            dir: tempfile::tempdir().unwrap(),
            imap: free_port().port(),
            pop3: free_port().port(),
            lmtp: free_port().port(),
        };
        let mut cmd = Command::new("sh");
        cmd.args([DOVECOT, "start"]).arg(d.dir.path()).args([
            d.imap.to_string(),
            d.pop3.to_string(),
            d.lmtp.to_string(),
        ]);
        let out = run_with_stdin(&mut cmd, b"");
        assert_eq!(out.code, 0, "dovecot: {} {}", out.stdout, out.stderr);
        // Ready when the IMAP port answers.
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", d.imap)).is_err() {
            assert!(start.elapsed() < DEADLINE, "Dovecot did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default();
            eprintln!("--- Dovecot log ---\n{log}--- end ---");
        }
        let _ = Command::new("sh")
            .args([DOVECOT, "stop"])
            .arg(self.dir.path())
            .status();
    }
}

/// The UID (first column) of the line of `postamt mail list` output that
/// mentions `subject`.
fn uid_of(list: &str, subject: &str) -> String {
    list.lines()
        .find(|l| l.contains(subject))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {subject:?} in\n{list}"))
        .to_string()
}

/// `postamt mail` against Debian's Postfix (submission without AUTH from
/// loopback, as mynetworks allows) and Dovecot (IMAP, POP3; Postfix
/// delivers into it over LMTP): issue 6's "works against any
/// standards-compliant server".
#[test]
fn postamt_mail_client_against_postfix_and_dovecot() {
    if !postfix_usable()
        || !Path::new("/usr/lib/dovecot/lmtp").exists() && !require("/usr/lib/dovecot/lmtp")
    {
        return;
    }
    let dovecot = Dovecot::start();
    let mut pf = Postfix::create_for(
        "example.test",
        &format!("lmtp:inet:127.0.0.1:{}", dovecot.lmtp),
    );
    pf.start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("client.toml");
    std::fs::write(
        &cfg,
        format!(
            "[accounts.a]\naddress = \"alice@example.test\"\nuser = \"alice\"\npassword_env = \"PW\"\n\
             smtp = \"127.0.0.1:{}\"\nsmtp_security = \"plain\"\n\
             imap = \"127.0.0.1:{}\"\nimap_security = \"plain\"\n\
             pop3 = \"127.0.0.1:{}\"\npop3_security = \"plain\"\n",
            pf.smtpd.port(),
            dovecot.imap,
            dovecot.pop3
        ),
    )
    .unwrap();
    let mail = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("mail")
            .arg("--client-config")
            .arg(&cfg)
            .args(args)
            .env("PW", "alice");
        run_with_stdin(&mut cmd, b"")
    };
    let att = dir.path().join("daten.txt");
    std::fs::write(&att, "Zeile 1\nZeile 2\n").unwrap();
    let body = dir.path().join("body.txt");
    std::fs::write(&body, "Hallo,\n.eine Zeile mit Punkt\nTschüss\n").unwrap();
    for subject in ["Grüße über Postfix", "zweite"] {
        let out = mail(&[
            "send",
            "--to",
            "alice@example.test",
            "--subject",
            subject,
            "--body",
            body.to_str().unwrap(),
            "--attach",
            att.to_str().unwrap(),
        ])
        .success();
        // The copy went into Dovecot's \Sent mailbox.
        assert!(out.stdout.contains("copy saved in Sent"), "{}", out.stdout);
    }
    // Postfix delivers into Dovecot over LMTP; wait for both.
    let start = Instant::now();
    let list = loop {
        let l = mail(&["list"]).success().stdout;
        if l.contains("zweite") && l.contains("Grüße über Postfix") {
            break l;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "mail did not arrive in Dovecot:\n{l}\n{}",
            pf.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (first, second) = (uid_of(&list, "Grüße"), uid_of(&list, "zweite"));
    let read = mail(&["read", &first]).success().stdout;
    assert!(
        read.contains("Subject: Grüße über Postfix")
            && read.contains(".eine Zeile mit Punkt")
            && read.contains("[1] daten.txt (text/plain"),
        "{read}"
    );
    let saved = dir.path().join("saved.txt");
    mail(&[
        "save",
        &first,
        "--attachment",
        "1",
        "-o",
        saved.to_str().unwrap(),
    ])
    .success();
    assert_eq!(
        std::fs::read_to_string(&saved)
            .unwrap()
            .replace("\r\n", "\n"),
        "Zeile 1\nZeile 2\n"
    );
    // What Dovecot hands back is what was sent: the Sent copy (the composed
    // message as submitted) is the tail of the delivered message, behind
    // the trace headers Postfix and Dovecot's LMTP put in front.
    let sent_list = mail(&["list", "--mailbox", "Sent"]).success().stdout;
    let sent_uid = uid_of(&sent_list, "Grüße");
    let sent_raw = mail(&["raw", "--mailbox", "Sent", &sent_uid])
        .success()
        .stdout;
    let inbox_raw = mail(&["raw", &first]).success().stdout;
    assert!(
        sent_raw.len() > 200 && inbox_raw.ends_with(&sent_raw),
        "delivered:\n{inbox_raw}\nsent:\n{sent_raw}"
    );
    mail(&["flag", &second, "+\\Flagged"]).success();
    assert!(
        mail(&["list"])
            .success()
            .stdout
            .lines()
            .any(|l| l.contains("zweite") && l.contains("\\Flagged"))
    );
    mail(&["move", &second, "Archive"]).success();
    assert!(
        mail(&["list", "--mailbox", "Archive"])
            .success()
            .stdout
            .contains("zweite")
    );
    let sent = mail(&["list", "--mailbox", "Sent"]).success().stdout;
    assert_eq!(
        sent.lines()
            .filter(|l| l.contains("alice@example.test"))
            .count(),
        2,
        "{sent}"
    );
    // POP3: list, read, delete.
    let pop = mail(&["--pop3", "list"]).success().stdout;
    assert!(pop.contains("Grüße über Postfix"), "{pop}");
    let read = mail(&["--pop3", "read", "1"]).success().stdout;
    assert!(read.contains("Tschüss"), "{read}");
    let md = dir.path().join("md");
    assert!(
        mail(&["fetch", "--to-maildir", md.to_str().unwrap()])
            .success()
            .stdout
            .contains("fetched 1 new")
    );
    assert!(
        mail(&["fetch", "--to-maildir", md.to_str().unwrap()])
            .success()
            .stdout
            .contains("fetched 0 new")
    );
    let mbox = dir.path().join("alice.mbox");
    for expect in ["fetched 1 new", "fetched 0 new"] {
        let out = mail(&["fetch", "--to-mbox", mbox.to_str().unwrap()])
            .success()
            .stdout;
        assert!(out.contains(expect), "{out}");
    }
    let mbox_text = std::fs::read_to_string(&mbox).unwrap();
    assert!(
        mbox_text.starts_with("From ") && mbox_text.contains("Subject: =?"),
        "{mbox_text}"
    );
    mail(&["--pop3", "delete", "1"]).success();
    let left = mail(&["list"]).success().stdout;
    assert_eq!(left.lines().count(), 1, "INBOX should be empty:\n{left}");
    // IMAP delete, in the Archive mailbox.
    let archived = mail(&["list", "--mailbox", "Archive"]).success().stdout;
    let arch_uid = uid_of(&archived, "zweite");
    mail(&["delete", "--mailbox", "Archive", &arch_uid]).success();
    assert!(
        !mail(&["list", "--mailbox", "Archive"])
            .success()
            .stdout
            .contains("zweite")
    );
    // A mailbox name outside ASCII: the client speaks modified UTF-7
    // (RFC 3501 §5.1.3), which Dovecot requires of a client that has not
    // enabled UTF-8.
    mail(&["--mailbox", "Sent", "move", &sent_uid, "Entwürfe"]).success();
    let drafts = mail(&["list", "--mailbox", "Entwürfe"]).success().stdout;
    assert!(drafts.contains("Grüße über Postfix"), "{drafts}");
    // Wrong password: a clear error from Dovecot, non-zero exit.
    let mut cmd = Command::new(BIN);
    cmd.arg("mail")
        .arg("--client-config")
        .arg(&cfg)
        .arg("list")
        .env("PW", "wrong");
    let out = run_with_stdin(&mut cmd, b"");
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("login failed"), "{}", out.stderr);
    pf.stop();
}
