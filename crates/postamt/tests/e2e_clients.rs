//! Clients nobody here wrote, against the real binary: Python's poplib,
//! curl (pop3:// and pop3s://), fetchmail, openssl s_client.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Delivers three varied messages to alice and writes what RETR must send
/// (from the store, through the admin-free path: RETR of a fresh session
/// is checked against these bytes) into `dir/N.eml`.
fn deliver_corpus(s: &Server, dir: &Path) -> Vec<Vec<u8>> {
    let bodies: [&[u8]; 3] = [
        b"From: a@remote.test\r\nTo: alice@example.test\r\nSubject: plain\r\n\r\nHello.\r\n",
        // dot lines, bare LF, a line of one dot, 8-bit UTF-8
        b"From: b@remote.test\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n\n.\n..two dots\nGr\xc3\xbc\xc3\x9fe\n.leading\n",
        b"From: c@remote.test\r\nSubject: mime\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\npart\r\n--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--x--\r\n",
    ];
    let mut expected = Vec::new();
    for (i, b) in bodies.iter().enumerate() {
        s.deliver("sender@remote.test", &["alice@example.test"], b)
            .success();
        let mut e =
            b"Return-Path: <sender@remote.test>\r\nDelivered-To: alice@example.test\r\n".to_vec();
        let text = b.to_vec();
        // CRLF normalisation, as the store does.
        let mut norm = Vec::new();
        for (j, &c) in text.iter().enumerate() {
            if c == b'\n' && (j == 0 || text[j - 1] != b'\r') {
                norm.push(b'\r');
            }
            norm.push(c);
        }
        e.extend_from_slice(&norm);
        std::fs::write(dir.join(format!("{}.eml", i + 1)), &e).unwrap();
        expected.push(e);
    }
    expected
}

fn python(args: &[&str]) -> Output {
    run_with_stdin(Command::new("python3").args(args), b"")
}

#[test]
fn python_poplib_user_pass_auth_plain_stls_pop3s() {
    let s = Server::start("");
    let dir = tempfile::tempdir().unwrap();
    deliver_corpus(&s, dir.path());
    let out = python(&[
        &format!("{CLIENTS}/poplib_session.py"),
        "127.0.0.1",
        &s.addr("pop3").port().to_string(),
        &s.addr("pop3s").port().to_string(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("all checks passed"));
}

#[test]
fn stls_discards_pipelined_plaintext_cve_2011_0411() {
    let s = Server::start("");
    let out = python(&[
        &format!("{CLIENTS}/stls_injection.py"),
        "127.0.0.1",
        &s.addr("pop3").port().to_string(),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn curl_pop3_and_pop3s() {
    if !require("curl") {
        return;
    }
    let s = Server::start("");
    let dir = tempfile::tempdir().unwrap();
    let expected = deliver_corpus(&s, dir.path());
    let curl = |url: String, extra: &[&str]| {
        let out = run_with_stdin(
            Command::new("curl")
                .args([
                    "-sS",
                    "--max-time",
                    "20",
                    "-u",
                    "alice@example.test:alice-pw",
                ])
                .args(extra)
                .arg(url),
            b"",
        );
        assert_eq!(out.code, 0, "curl: {}", out.stderr);
        out.stdout
    };
    let pop3 = s.addr("pop3");
    let pop3s = s.addr("pop3s");
    // A listing: "1 SIZE" lines.
    let list = curl(format!("pop3://{pop3}/"), &[]);
    let sizes: Vec<usize> = list
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap().trim().parse().unwrap())
        .collect();
    assert_eq!(sizes, expected.iter().map(Vec::len).collect::<Vec<_>>());
    // RETR of message 2 over implicit TLS; curl undoes the dot-stuffing.
    let msg = curl(format!("pop3s://{pop3s}/2"), &["-k"]);
    assert_eq!(msg.as_bytes(), &expected[1][..]);
    // STLS required by the client (--ssl-reqd) on the plain port.
    let msg = curl(format!("pop3://{pop3}/1"), &["-k", "--ssl-reqd"]);
    assert_eq!(msg.as_bytes(), &expected[0][..]);
    // A custom command: UIDL.
    let uidl = curl(format!("pop3://{pop3}/"), &["-X", "UIDL"]);
    assert_eq!(uidl.lines().count(), 3, "{uidl}");
    // SASL PLAIN is what curl prefers when offered.
    let out = run_with_stdin(
        Command::new("curl")
            .args([
                "-sS",
                "-v",
                "--max-time",
                "20",
                "-u",
                "alice@example.test:alice-pw",
            ])
            .arg(format!("pop3://{pop3}/")),
        b"",
    );
    assert!(out.stderr.contains("AUTH PLAIN"), "{}", out.stderr);
    // Wrong password: curl fails.
    let out = run_with_stdin(
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "-u", "alice@example.test:nope"])
            .arg(format!("pop3://{pop3}/")),
        b"",
    );
    assert_ne!(out.code, 0);
}

#[test]
fn openssl_s_client_starttls_pop3() {
    if !require("openssl") {
        return;
    }
    let s = Server::start("");
    deliver_corpus(&s, tempfile::tempdir().unwrap().path());
    let input = b"USER alice@example.test\r\nPASS alice-pw\r\nSTAT\r\nQUIT\r\n";
    let out = run_with_stdin(
        Command::new("timeout")
            .args([
                "20",
                "openssl",
                "s_client",
                "-quiet",
                "-ign_eof",
                "-starttls",
                "pop3",
                "-connect",
            ])
            .arg(s.addr("pop3").to_string()),
        input,
    );
    assert!(
        out.stdout.contains("+OK logged in, 3 messages"),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("+OK 3 "), "{}", out.stdout);
    // Implicit TLS on pop3s, and the protocol version is TLS 1.2 or 1.3.
    let out = run_with_stdin(
        Command::new("timeout")
            .args(["20", "openssl", "s_client", "-ign_eof", "-connect"])
            .arg(s.addr("pop3s").to_string()),
        b"QUIT\r\n",
    );
    assert!(
        out.stdout.contains("+OK mail.test POP3 server"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("TLSv1.3") || out.stdout.contains("TLSv1.2"),
        "{}",
        out.stdout
    );
}

#[test]
fn fetchmail_pulls_into_an_mda_byte_for_byte() {
    if !require("fetchmail") {
        return;
    }
    let s = Server::start("");
    fetchmail_round_trip(&s, "POP3", s.addr("pop3").port());
    // fetchmail deletes what it fetched (no `keep`): the maildrop is empty.
    let mut c = pop3_client(&s);
    c.login("alice@example.test", "alice-pw");
    c.cmd("STAT", "+OK 0 0");
}

#[test]
fn fetchmail_over_imap_pulls_and_expunges() {
    if !require("fetchmail") {
        return;
    }
    let s = Server::start("");
    fetchmail_round_trip(&s, "IMAP", s.addr("imap").port());
    // It flagged what it fetched \Deleted and expunged it.
    let mut c = Imap::connect(s.addr("imap"));
    c.login("alice@example.test", "alice-pw");
    let u = c.ok("s", "STATUS INBOX (MESSAGES)");
    assert!(u[0].contains("(MESSAGES 0)"), "{u:?}");
}

/// Delivers the corpus, runs fetchmail over `proto` into an MDA script and
/// compares what the MDA got with what was delivered.
fn fetchmail_round_trip(s: &Server, proto: &str, port: u16) {
    let expected_dir = tempfile::tempdir().unwrap();
    let expected = deliver_corpus(s, expected_dir.path());
    let out_dir = tempfile::tempdir().unwrap();
    let rc = out_dir.path().join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\nset no bouncemail\nset invisible\npoll 127.0.0.1 service {port} protocol {proto} auth password timeout 20\n  user \"alice@example.test\" there with password \"alice-pw\" is root here\n  sslproto \"\" no rewrite fetchall\n  mda \"python3 {CLIENTS}/fetchmail_mda.py {}\"\n",
            out_dir.path().display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&rc).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&rc, perms).unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = run_with_stdin(
        Command::new("timeout")
            .args(["60", "fetchmail", "--nodetach", "-f"])
            .arg(&rc)
            // As root fetchmail's lock is system-wide: one per run instead,
            // so that the POP3 and IMAP tests may run at the same time.
            .arg("--pidfile")
            .arg(home.path().join("fetchmail.pid"))
            .env("HOME", home.path())
            .env("FETCHMAILHOME", home.path()),
        b"",
    );
    assert_eq!(
        out.code, 0,
        "fetchmail {proto}: {}\n{}",
        out.stdout, out.stderr
    );
    for (i, e) in expected.iter().enumerate() {
        let got = std::fs::read(out_dir.path().join(format!("{}.eml", i + 1))).unwrap();
        // fetchmail hands the MDA LF line endings.
        let want = String::from_utf8_lossy(e).replace("\r\n", "\n");
        assert_eq!(
            String::from_utf8_lossy(&got),
            want,
            "{proto} message {}",
            i + 1
        );
    }
}

fn pop3_client(s: &Server) -> Client {
    common::pop3(s)
}

#[test]
fn sighup_reloads_the_certificate() {
    if !require("openssl") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let out = run_with_stdin(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={name}"),
                ])
                .arg("-keyout")
                .arg(certs.path().join(format!("{name}.key")))
                .arg("-out")
                .arg(certs.path().join(format!("{name}.pem"))),
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
    };
    make("one");
    make("two");
    let cert = certs.path().join("live.pem");
    let key = certs.path().join("live.key");
    std::fs::copy(certs.path().join("one.pem"), &cert).unwrap();
    std::fs::copy(certs.path().join("one.key"), &key).unwrap();
    let s = Server::start(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let fp = || {
        let out = python(&[
            &format!("{CLIENTS}/cert_fingerprint.py"),
            "127.0.0.1",
            &s.addr("pop3s").port().to_string(),
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout.trim().to_string()
    };
    let first = fp();
    std::fs::copy(certs.path().join("two.pem"), &cert).unwrap();
    std::fs::copy(certs.path().join("two.key"), &key).unwrap();
    s.signal(1);
    let mut changed = false;
    for _ in 0..500 {
        if fp() != first {
            changed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(changed, "certificate not reloaded on SIGHUP");
    // A broken file on reload keeps the old certificate serving.
    std::fs::write(&cert, "garbage").unwrap();
    s.signal(1);
    let mut c = Client::connect(s.addr("pop3"));
    assert!(c.line().starts_with("+OK"));
    let second = fp();
    assert_ne!(second, first);
}

#[test]
fn python_smtplib_smtp_starttls_submission_smtputf8_lmtp() {
    let s = Server::start("");
    let port = |n: &str| s.addr(n).port().to_string();
    let out = python(&[
        &format!("{CLIENTS}/smtplib_session.py"),
        "127.0.0.1",
        &port("smtp"),
        &port("submission"),
        &port("submissions"),
        &port("lmtp"),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    let subjects = [
        "inbound plain",
        "inbound starttls",
        "submission starttls",
        "submissions smtputf8 Grüße",
        "lmtp",
    ];
    assert_eq!(got.len(), subjects.len(), "{got:#?}");
    for (m, subject) in got.iter().zip(subjects) {
        assert!(
            m.contains(&format!("Subject: {subject}\r\n")),
            "{subject}: {m}"
        );
    }
    assert!(
        got[1].contains(" with ESMTPS id ") && got[1].contains("(using TLSv1.3 with cipher "),
        "{}",
        got[1]
    );
    assert!(got[2].contains(" with ESMTPSA id "), "{}", got[2]);
    assert!(
        got[3].contains(" with UTF8SMTPSA id ") && got[3].contains("Grüße aus Köln"),
        "{}",
        got[3]
    );
    assert!(got[4].contains(" with LMTP id "));
}

#[test]
fn starttls_discards_pipelined_plaintext_cve_2011_0411() {
    let s = Server::start("");
    let out = python(&[
        &format!("{CLIENTS}/starttls_injection.py"),
        "127.0.0.1",
        &s.addr("smtp").port().to_string(),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn lmtp_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("lmtp.sock");
    // A config with the unix path replacing the TCP lmtp listener.
    let mut s = Server::prepare("");
    let text = std::fs::read_to_string(&s.config).unwrap().replace(
        "lmtp = \"127.0.0.1:0\"",
        &format!("lmtp = \"{}\"", sock.display()),
    );
    std::fs::write(&s.config, text).unwrap();
    s.spawn();
    let out = python(&[&format!("{CLIENTS}/lmtp_unix.py"), sock.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(maildrop(&s, "bob@example.test", "bob-pw").len(), 1);
}

#[test]
fn swaks_with_pipelining_tls_and_auth() {
    if !require("swaks") {
        return;
    }
    let s = Server::start("");
    let swaks = |args: &[&str]| {
        let out = run_with_stdin(
            Command::new("timeout").arg("30").arg("swaks").args(args),
            b"",
        );
        assert_eq!(out.code, 0, "swaks {args:?}: {}{}", out.stdout, out.stderr);
        out.stdout
    };
    let smtp = s.addr("smtp").to_string();
    let sub = s.addr("submission").to_string();
    swaks(&[
        "--server",
        &smtp,
        "--from",
        "carol@remote.test",
        "--to",
        "alice@example.test",
        "--pipeline",
        "--header",
        "Subject: swaks pipelined",
    ]);
    swaks(&[
        "--server",
        &smtp,
        "--from",
        "carol@remote.test",
        "--to",
        "alice@example.test",
        "--tls",
        "--header",
        "Subject: swaks tls",
    ]);
    swaks(&[
        "--server",
        &sub,
        "--from",
        "alice@example.test",
        "--to",
        "alice@example.test",
        "--tls",
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice@example.test",
        "--auth-password",
        "alice-pw",
        "--header",
        "Subject: swaks auth",
        "--header",
        "From: alice@example.test",
    ]);
    let out = run_with_stdin(
        Command::new("timeout").args([
            "30",
            "swaks",
            "--server",
            &smtp,
            "--from",
            "carol@remote.test",
            "--to",
            "victim@remote.test",
        ]),
        b"",
    );
    assert_ne!(out.code, 0);
    assert!(out.stdout.contains("554 5.7.1"), "{}", out.stdout);
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert_eq!(got.len(), 3);
    assert!(
        got[0].contains("Subject: swaks pipelined")
            && got[1].contains("Subject: swaks tls")
            && got[2].contains("Subject: swaks auth")
    );
}

#[test]
fn curl_smtp_with_ssl_reqd_and_openssl_starttls_smtp() {
    if !require("curl") || !require("openssl") {
        return;
    }
    let s = Server::start("");
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail.txt");
    let body = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: curl smtp\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <curl-1@example.test>\r\n\r\nsent by curl\r\n.leading dot\r\n";
    std::fs::write(&mail, body).unwrap();
    let out = run_with_stdin(
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "20",
                "-k",
                "--ssl-reqd",
                "--mail-from",
                "alice@example.test",
                "--mail-rcpt",
                "bob@example.test",
                "-u",
                "alice@example.test:alice-pw",
                "-T",
            ])
            .arg(&mail)
            .arg(format!("smtp://{}", s.addr("submission"))),
        b"",
    );
    assert_eq!(out.code, 0, "curl: {}", out.stderr);
    let got = maildrop(&s, "bob@example.test", "bob-pw");
    assert_eq!(
        without_trace(&got[0]),
        body,
        "byte-identical apart from trace headers"
    );
    let out = run_with_stdin(
        Command::new("timeout").args(["20", "openssl", "s_client", "-quiet", "-ign_eof", "-starttls", "smtp", "-connect"]).arg(s.addr("smtp").to_string()),
        b"EHLO openssl.test\r\nMAIL FROM:<carol@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: via openssl\r\n\r\nx\r\n.\r\nQUIT\r\n",
    );
    assert!(
        out.stdout.contains("250 2.0.0 Ok: queued as"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let got = maildrop(&s, "bob@example.test", "bob-pw");
    assert!(got[1].contains(" with ESMTPS id "), "{}", got[1]);
}
