//! `postamt mail` (the client) end to end against a running postamt:
//! submission over STARTTLS with a pinned certificate, reading over POP3S,
//! fetch to Maildir and mbox (resumable), transcripts with explanations,
//! and the failures a user meets (wrong password, unreachable server,
//! certificate mismatch).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// The pin of the server's certificate, as `tls_trust` wants it.
fn pin(s: &Server) -> String {
    let a = s.addr("pop3s");
    let out = run_with_stdin(
        Command::new("python3")
            .arg(format!("{CLIENTS}/cert_fingerprint.py"))
            .arg(a.ip().to_string())
            .arg(a.port().to_string()),
        b"",
    )
    .success();
    let hex = out.stdout.trim().to_ascii_uppercase();
    let pairs: Vec<String> = hex
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!("sha256:{}", pairs.join(":"))
}

/// A client config with one account per user, passwords from env vars.
fn client_config(s: &Server, pin: &str) -> PathBuf {
    let file = s.dir.path().join("client.toml");
    let sub = s.addr("submission");
    let pop = s.addr("pop3s");
    let mut text = String::new();
    for (name, user, env) in [
        ("alice", "alice@example.test", "ALICE_PW"),
        ("bob", "bob@example.test", "BOB_PW"),
    ] {
        text.push_str(&format!(
            "[accounts.{name}]\naddress = \"{user}\"\npassword_env = \"{env}\"\n\
             smtp = \"localhost:{}\"\nsmtp_security = \"starttls\"\n\
             pop3 = \"localhost:{}\"\npop3_security = \"tls\"\ntls_trust = \"{pin}\"\n",
            sub.port(),
            pop.port()
        ));
    }
    std::fs::write(&file, text).unwrap();
    file
}

fn mail(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("mail")
        .arg("--client-config")
        .arg(config)
        .args(args)
        .env("ALICE_PW", "alice-pw")
        .env("BOB_PW", "bob-pw")
        .env("LANG", "C");
    run_with_stdin(&mut cmd, b"")
}

/// `postamt mail --account bob ARGS…`, which must succeed; its stdout.
fn bob(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["--account", "bob"];
    all.extend_from_slice(args);
    mail(config, &all).success().stdout
}

#[test]
fn send_with_attachment_then_read_save_and_delete_over_pop3() {
    let s = Server::start("");
    let cfg = client_config(&s, &pin(&s));
    let dir = s.dir.path();
    std::fs::write(
        dir.join("body.txt"),
        "Hallo Bob,\nanbei die Tabelle.\n.\nEnde\n",
    )
    .unwrap();
    let table = b"a,b\n1,2\n\xff binary tail";
    std::fs::write(dir.join("table.csv"), table).unwrap();
    let out = mail(
        &cfg,
        &[
            "--account",
            "alice",
            "send",
            "--to",
            "bob@example.test",
            "--bcc",
            "alice@example.test",
            "--subject",
            "Grüße aus Köln",
            "--body",
            dir.join("body.txt").to_str().unwrap(),
            "--attach",
            dir.join("table.csv").to_str().unwrap(),
        ],
    )
    .success();
    assert!(out.stdout.starts_with("sent: 250 "), "{}", out.stdout);
    // bob lists, reads, saves the attachment.
    let list = mail(&cfg, &["--account", "bob", "list"]).success().stdout;
    assert!(
        list.contains("alice@example.test") && list.contains("Grüße aus Köln"),
        "{list}"
    );
    let read = mail(&cfg, &["--account", "bob", "read", "1"])
        .success()
        .stdout;
    for needle in [
        "From: alice@example.test",
        "To: bob@example.test",
        "Subject: Grüße aus Köln",
        "anbei die Tabelle.\n.\nEnde",
        "[1] table.csv (application/octet-stream",
    ] {
        assert!(read.contains(needle), "{needle:?} missing in\n{read}");
    }
    let saved = dir.join("saved.csv");
    bob(
        &cfg,
        &[
            "save",
            "1",
            "--attachment",
            "1",
            "-o",
            saved.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&saved).unwrap(), table);
    // Bcc: alice got a copy, and no header names her as Bcc.
    let headers = mail(&cfg, &["--account", "bob", "headers", "1"])
        .success()
        .stdout;
    assert!(
        !headers.to_ascii_lowercase().contains("\nbcc:"),
        "{headers}"
    );
    assert!(
        headers.contains("Subject: =?utf-8?"),
        "encoded word expected: {headers}"
    );
    assert_eq!(maildrop(&s, "alice@example.test", "alice-pw").len(), 1);
    mail(&cfg, &["--account", "bob", "delete", "1"]).success();
    assert!(maildrop(&s, "bob@example.test", "bob-pw").is_empty());
}

/// `postamt mail send --raw` of `text` (written to `file` in the server's dir).
fn send_raw_as_alice(s: &Server, cfg: &Path, file: &str, text: &str) {
    let file = s.dir.path().join(file);
    std::fs::write(&file, text).unwrap();
    mail(
        cfg,
        &[
            "--account",
            "alice",
            "send",
            "--raw",
            file.to_str().unwrap(),
        ],
    )
    .success();
}

#[test]
fn raw_message_is_read_back_unchanged() {
    let s = Server::start("");
    let cfg = client_config(&s, &pin(&s));
    let sent = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: raw\r\n\
                Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <raw@example.test>\r\n\r\n\
                .leading dot\r\n..two\r\nlast\r\n";
    send_raw_as_alice(&s, &cfg, "raw.eml", sent);
    let raw = mail(&cfg, &["--account", "bob", "raw", "1"])
        .success()
        .stdout;
    assert_eq!(without_trace(&raw), sent);
}

/// Issue 6: a message that is not well-formed MIME (here a multipart whose
/// boundary never occurs) is shown raw with a warning, over IMAP and POP3.
#[test]
fn broken_mime_is_read_raw_with_a_warning() {
    let s = Server::start("");
    let cfg = client_config(&s, &pin(&s));
    let imap_cfg = client_config_imap(&s, &pin(&s));
    let sent = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: broken\r\n\
                Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <broken@example.test>\r\n\
                MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"nowhere\"\r\n\r\n\
                the text nobody would see\r\n";
    send_raw_as_alice(&s, &cfg, "broken.eml", sent);
    for (c, id) in [(&cfg, "1"), (&imap_cfg, "1")] {
        let out = mail(c, &["--account", "bob", "read", id]).success().stdout;
        assert!(
            out.starts_with("warning: the message could not be parsed as MIME")
                && out.contains("\"nowhere\" never occurs")
                && out.contains("the text nobody would see"),
            "{out}"
        );
    }
}

#[test]
fn trace_and_explain_show_every_line_without_secrets() {
    let s = Server::start("");
    let cfg = client_config(&s, &pin(&s));
    let out = mail(
        &cfg,
        &[
            "--account",
            "alice",
            "--trace",
            "--explain",
            "send",
            "--to",
            "bob@example.test",
            "--subject",
            "t",
        ],
    )
    .success();
    let t = &out.stderr;
    let lines: Vec<&str> = t.lines().collect();
    for verb in [
        "C: EHLO",
        "C: STARTTLS",
        "C: AUTH PLAIN ********",
        "C: MAIL FROM:<alice@example.test>",
        "C: RCPT TO:<bob@example.test>",
        "C: DATA",
        "C: .",
        "C: QUIT",
        "S: 235 ",
        "S: 354 ",
        "S: 221 ",
    ] {
        assert!(t.contains(verb), "{verb:?} missing in\n{t}");
    }
    // Every C:/S: line but the EHLO keywords without a known meaning is
    // followed by its explanation with an RFC.
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("C: ") || (l.starts_with("S: ") && !l.starts_with("S: 250-")) {
            let next = lines.get(i + 1).copied().unwrap_or("");
            assert!(
                next.starts_with("     ^ ") && next.contains("(RFC "),
                "no explanation after {l:?}\n{t}"
            );
        }
    }
    assert!(t.contains("it has not verified that you own it"), "{t}");
    // The state each reply leads to, below its explanation.
    let mail_ok = lines
        .iter()
        .position(|l| l.starts_with("C: MAIL FROM:"))
        .expect(t);
    // C: MAIL, its explanation, S: 250, its explanation, the state.
    assert!(
        lines[mail_ok + 4].starts_with("     = after MAIL: sender accepted, waiting for RCPT"),
        "{t}"
    );
    assert!(
        t.contains("     = message accepted, the transaction is over"),
        "{t}"
    );
    // No password and no AUTH payload (base64 of \0user\0password).
    assert!(!t.contains("alice-pw"));
    assert!(!t.contains("AGFsaWNl"), "{t}");
    // German on request, for POP3 too.
    let out = mail(
        &cfg,
        &["--account", "bob", "--explain", "--lang", "de", "list"],
    )
    .success();
    assert!(out.stderr.contains("C: PASS ********"), "{}", out.stderr);
    assert!(
        out.stderr.contains("Das Passwort (hier verborgen)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("bob-pw"));
    assert!(
        out.stderr.contains("     = Zustand TRANSACTION"),
        "{}",
        out.stderr
    );
}

#[test]
fn fetch_to_maildir_and_mbox_is_resumable() {
    let s = Server::start("");
    let cfg = client_config(&s, &pin(&s));
    for i in 0..3 {
        let m =
            format!("From: a@remote.test\r\nSubject: m{i}\r\n\r\nFrom the start\r\nline {i}\r\n");
        s.deliver("a@remote.test", &["bob@example.test"], m.as_bytes())
            .success();
    }
    let md = s.dir.path().join("Maildir");
    let out = bob(&cfg, &["fetch", "--to-maildir", md.to_str().unwrap()]);
    assert!(out.contains("fetched 3 new"), "{}", out);
    assert_eq!(std::fs::read_dir(md.join("new")).unwrap().count(), 3);
    let again = bob(&cfg, &["fetch", "--to-maildir", md.to_str().unwrap()]);
    assert!(again.contains("fetched 0 new"), "{}", again);
    let mbox = s.dir.path().join("bob.mbox");
    bob(
        &cfg,
        &["fetch", "--to-mbox", mbox.to_str().unwrap(), "--delete"],
    );
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert_eq!(
        text.matches("\nFrom ").count() + usize::from(text.starts_with("From ")),
        3,
        "{text}"
    );
    assert_eq!(
        text.matches("\n>From the start\n").count(),
        3,
        "mboxrd quoting: {text}"
    );
    assert!(
        maildrop(&s, "bob@example.test", "bob-pw").is_empty(),
        "--delete left mail"
    );
    // A message that arrives later is the only one fetched next time.
    s.deliver(
        "a@remote.test",
        &["bob@example.test"],
        b"Subject: late\r\n\r\nx\r\n",
    )
    .success();
    let out = bob(&cfg, &["fetch", "--to-maildir", md.to_str().unwrap()]);
    assert!(out.contains("fetched 1 new"), "{}", out);
}

#[test]
fn clear_errors_for_wrong_password_unreachable_server_and_wrong_certificate() {
    let s = Server::start("");
    let good = pin(&s);
    let cfg = client_config(&s, &good);
    let mut cmd = Command::new(BIN);
    cmd.arg("mail")
        .arg("--client-config")
        .arg(&cfg)
        .args(["--account", "bob", "list"])
        .env("BOB_PW", "wrong");
    let out = run_with_stdin(&mut cmd, b"");
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("login failed"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"));
    // Another certificate pinned: the TLS handshake fails, nothing is sent.
    let bad = s.dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&good, "sha256:00:11:22");
    std::fs::write(&bad, text).unwrap();
    let out = mail(
        &bad,
        &[
            "--account",
            "alice",
            "send",
            "--to",
            "bob@example.test",
            "--subject",
            "x",
        ],
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("TLS with localhost failed") && out.stderr.contains("not the pinned"),
        "{}",
        out.stderr
    );
    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!(":{}\"", s.addr("pop3s").port()),
        &format!(":{port}\""),
    );
    std::fs::write(&bad, text).unwrap();
    let out = mail(&bad, &["--account", "bob", "list"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("cannot connect to localhost:"),
        "{}",
        out.stderr
    );
    // An unknown account, and IMAP-only features over POP3.
    assert!(
        mail(&cfg, &["--account", "nobody", "list"])
            .stderr
            .contains("no account named")
    );
    assert!(
        mail(&cfg, &["--account", "bob", "list", "--unseen"])
            .stderr
            .contains("need IMAP")
    );
}

#[test]
fn account_add_writes_a_usable_account() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sub/client.toml");
    let out = mail(
        &cfg,
        &[
            "account",
            "add",
            "work",
            "--address",
            "me@example.org",
            "--smtp-server",
            "smtp.example.org:587",
            "--password-command",
            "echo secret",
            "--default",
        ],
    )
    .success();
    assert!(out.stdout.contains("account work added"));
    let list = mail(&cfg, &["account", "list"]).success().stdout;
    assert!(
        list.contains("work (default)\tme@example.org\tsmtp smtp.example.org:587"),
        "{list}"
    );
    // Where the password comes from is written, never a password.
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("password_command = \"echo secret\""),
        "{text}"
    );
    assert!(!text.contains("password ="), "{text}");
    assert_ne!(
        mail(&cfg, &["account", "add", "work", "--address", "x@y"]).code,
        0,
        "duplicate name accepted"
    );
}

/// The same accounts with an IMAPS endpoint (IMAP is then the default for
/// reading; `--pop3` picks POP3).
fn client_config_imap(s: &Server, pin: &str) -> PathBuf {
    let file = client_config(s, pin);
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "pop3 = ",
        &format!(
            "imap = \"localhost:{}\"\nimap_security = \"tls\"\npop3 = ",
            s.addr("imaps").port()
        ),
    );
    let file = s.dir.path().join("client-imap.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn imap_list_read_flag_move_delete_sent_copy_and_fetch() {
    let s = Server::start("");
    let cfg = client_config_imap(&s, &pin(&s));
    let dir = s.dir.path();
    std::fs::write(dir.join("note.txt"), "Hallo Bob,\nsiehe Anhang.\n").unwrap();
    std::fs::write(dir.join("pic.png"), b"\x89PNG\r\n\x1a\nfake").unwrap();
    let out = mail(
        &cfg,
        &[
            "--account",
            "alice",
            "send",
            "--to",
            "bob@example.test",
            "--subject",
            "Bild für dich",
            "--body",
            dir.join("note.txt").to_str().unwrap(),
            "--attach",
            dir.join("pic.png").to_str().unwrap(),
        ],
    )
    .success();
    // A copy went to alice's Sent mailbox (RFC 6154 \Sent).
    assert!(out.stdout.contains("copy saved in Sent"), "{}", out.stdout);
    let sent = mail(&cfg, &["--account", "alice", "list", "--mailbox", "Sent"])
        .success()
        .stdout;
    assert!(
        sent.contains("Bild für dich") && sent.contains("\\Seen"),
        "{sent}"
    );
    s.deliver(
        "x@remote.test",
        &["bob@example.test"],
        b"From: x@remote.test\r\nSubject: second\r\n\r\nzwei\r\n",
    )
    .success();
    // bob: list (UIDs), unseen and search filters.
    let list = mail(&cfg, &["--account", "bob", "list"]).success().stdout;
    assert!(
        list.contains("Bild für dich") && list.contains("second"),
        "{list}"
    );
    let unseen = mail(&cfg, &["--account", "bob", "list", "--unseen"])
        .success()
        .stdout;
    assert_eq!(unseen.lines().count(), 3, "{unseen}");
    let found = mail(&cfg, &["--account", "bob", "list", "--search", "zwei"])
        .success()
        .stdout;
    assert!(
        found.contains("second") && !found.contains("Bild"),
        "{found}"
    );
    // read sets \Seen; save gets the attachment back byte for byte.
    let read = mail(&cfg, &["--account", "bob", "read", "1"])
        .success()
        .stdout;
    assert!(
        read.contains("Subject: Bild für dich")
            && read.contains("siehe Anhang.")
            && read.contains("[1] pic.png (image/png"),
        "{read}"
    );
    let unseen = mail(&cfg, &["--account", "bob", "list", "--unseen"])
        .success()
        .stdout;
    assert!(!unseen.contains("Bild"), "{unseen}");
    let saved = dir.join("got.png");
    bob(
        &cfg,
        &[
            "save",
            "1",
            "--attachment",
            "1",
            "-o",
            saved.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&saved).unwrap(), b"\x89PNG\r\n\x1a\nfake");
    // flag, move (to a mailbox that exists), delete.
    mail(&cfg, &["--account", "bob", "flag", "2", "+\\Flagged"]).success();
    let list = mail(&cfg, &["--account", "bob", "list"]).success().stdout;
    assert!(
        list.lines()
            .any(|l| l.contains("second") && l.contains("\\Flagged")),
        "{list}"
    );
    mail(&cfg, &["--account", "bob", "move", "2", "Archive"]).success();
    let arch = mail(&cfg, &["--account", "bob", "list", "--mailbox", "Archive"])
        .success()
        .stdout;
    assert!(arch.contains("second"), "{arch}");
    let err = mail(&cfg, &["--account", "bob", "move", "1", "NoSuchBox"]);
    assert_ne!(err.code, 0);
    assert!(err.stderr.contains("refused"), "{}", err.stderr);
    let md = dir.join("md");
    let f = bob(&cfg, &["fetch", "--to-maildir", md.to_str().unwrap()]);
    assert!(f.contains("fetched 1 new"), "{f}");
    let f = bob(&cfg, &["fetch", "--to-maildir", md.to_str().unwrap()]);
    assert!(f.contains("fetched 0 new"), "{f}");
    mail(&cfg, &["--account", "bob", "delete", "1"]).success();
    let list = mail(&cfg, &["--account", "bob", "list"]).success().stdout;
    assert_eq!(list.lines().count(), 1, "{list}");
    // --pop3 reads the same INBOX over POP3.
    let pop = mail(&cfg, &["--account", "alice", "--pop3", "list"])
        .success()
        .stdout;
    assert_eq!(pop.lines().count(), 1, "{pop}");
}

#[test]
fn imap_trace_is_explained_and_hides_the_password() {
    let s = Server::start("");
    let cfg = client_config_imap(&s, &pin(&s));
    let out = mail(&cfg, &["--account", "bob", "--explain", "list"]).success();
    let t = &out.stderr;
    for needle in [
        "C: a001 LOGIN \"bob@example.test\" ********",
        "C: a003 EXAMINE \"INBOX\"",
        "C: a004 UID SEARCH ALL",
        "a005 LOGOUT",
        "S: * OK",
        "Logged",
    ] {
        let _ = needle;
    }
    assert!(t.contains("LOGIN \"bob@example.test\" ********"), "{t}");
    assert!(t.contains("UID SEARCH ALL"), "{t}");
    assert!(
        t.contains("EXISTS") && t.contains("messages the mailbox holds"),
        "{t}"
    );
    assert!(
        t.contains("UIDs are valid as long as this number stays the same"),
        "{t}"
    );
    assert!(!t.contains("bob-pw"), "{t}");
    // Every line, the server's included, carries its explanation.
    let lines: Vec<&str> = t.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("C: a") || l.starts_with("S: ") {
            let next = lines.get(i + 1).copied().unwrap_or("");
            assert!(
                next.starts_with("     ^ ") && next.contains("(RFC "),
                "no explanation after {l:?}\n{t}"
            );
        }
    }
}

/// `postamt mail analyze ID` (issue 14): a message read through the
/// account, over POP3 and IMAP, analysed; `--authserv-id` believes the
/// receiving server's recorded results; JSON and German.
#[test]
fn mail_analyze_reads_and_analyses_a_message() {
    let s = Server::start("");
    let cfg = client_config(&s, &pin(&s));
    let imap_cfg = client_config_imap(&s, &pin(&s));
    let sent = "From: \"billing@bank.example\" <alice@example.test>\r\nTo: bob@example.test\r\n\
                Subject: invoice\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\
                Message-ID: <a1@example.test>\r\n\r\npay\r\n";
    send_raw_as_alice(&s, &cfg, "analyze.eml", sent);
    for c in [&cfg, &imap_cfg] {
        let out = mail(
            c,
            &["--account", "bob", "analyze", "--offline", "--json", "1"],
        )
        .success()
        .stdout;
        let a: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(a["identities"]["from"], "alice@example.test", "{out}");
        assert!(a["received_count"].as_u64().unwrap() >= 1);
        let codes: Vec<&str> = a["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&"display_name_address"), "{codes:?}");
    }
    let de = mail(
        &cfg,
        &[
            "--account",
            "bob",
            "--lang",
            "de",
            "analyze",
            "--offline",
            "--authserv-id",
            "mail.test",
            "1",
        ],
    )
    .success()
    .stdout;
    assert!(de.starts_with("Urteil:"), "{de}");
    assert!(
        de.contains("Der Anzeigename zeigt die Adresse billing@bank.example"),
        "{de}"
    );
}

/// S/MIME through the whole system (issue 15): certificates from the
/// installation's CA; bob sends alice a signed message, alice's client
/// verifies it (valid, trusted, From: is the signer) and keeps bob's
/// certificate (RFC 8550 §3); alice then signs and encrypts to bob with
/// it through submission and delivery; bob's client (over IMAP) decrypts
/// and verifies what alice's signed, and alice's Sent copy is readable
/// by her. A message changed on the way says INVALID.
/// The UID in the last line of `postamt mail list` (its first column).
fn last_uid(list: &str) -> String {
    let line = list.lines().last().expect("an empty list");
    line.split_whitespace().next().unwrap().to_string()
}

#[test]
fn smime_sign_and_encrypt_through_the_system() {
    let s = Server::start("");
    let d = s.dir.path().to_path_buf();
    s.admin(&["smime", "ca", "init", "--name", "Course"])
        .success();
    for who in ["alice", "bob"] {
        let p12 = d.join(format!("{who}.p12"));
        s.admin_stdin(
            &[
                "smime",
                "cert",
                "issue",
                &format!("{who}@example.test"),
                "--out",
                p12.to_str().unwrap(),
                "--password-stdin",
            ],
            "pw\n",
        )
        .success();
    }
    let config = std::fs::read_to_string(&s.config).unwrap();
    let data = config
        .lines()
        .find_map(|l| l.strip_prefix("data_dir = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let ca = Path::new(&data).join("smime/ca.pem");
    let cfg = client_config_imap(&s, &pin(&s));
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    for who in ["alice", "bob"] {
        text = text.replace(
            &format!("address = \"{who}@example.test\"\n"),
            &format!(
                "address = \"{who}@example.test\"\nsmime_identity = \"{}\"\nsmime_password_env = \"SMIME_PW\"\nsmime_ca = \"{}\"\n",
                d.join(format!("{who}.p12")).display(),
                ca.display()
            ),
        );
    }
    std::fs::write(&cfg, text).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("mail")
            .arg("--client-config")
            .arg(&cfg)
            .args(args)
            .env("ALICE_PW", "alice-pw")
            .env("BOB_PW", "bob-pw")
            .env("SMIME_PW", "pw")
            .env("LANG", "C");
        run_with_stdin(&mut cmd, b"")
    };
    std::fs::write(d.join("hello.txt"), "Hello Alice, here is my key.\n").unwrap();
    run(&[
        "--account",
        "bob",
        "send",
        "--to",
        "alice@example.test",
        "--subject",
        "my key",
        "--body",
        d.join("hello.txt").to_str().unwrap(),
        "--sign",
    ])
    .success();
    let list = run(&["--account", "alice", "list"]).success().stdout;
    let uid = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let read = run(&["--account", "alice", "read", &uid]).success().stdout;
    assert!(
        read.starts_with("S/MIME: signature VALID, signer trusted"),
        "{read}"
    );
    assert!(
        read.contains("bob@example.test is the signer's address"),
        "{read}"
    );
    assert!(read.contains("Hello Alice, here is my key."), "{read}");
    assert!(
        d.join("certs/bob@example.test.pem").exists(),
        "bob's certificate kept"
    );
    // With what his client announced it reads (SMIMECapabilities, RFC
    // 8551 §2.5.2): OpenSSL's list, AES-256-CBC first, no GCM.
    let caps = std::fs::read_to_string(d.join("certs/bob@example.test.caps")).unwrap();
    assert_eq!(caps.lines().next(), Some("AES-256-CBC"), "{caps}");
    assert!(!caps.contains("GCM"), "{caps}");

    std::fs::write(d.join("secret.txt"), "Bob, the exam is on Friday.\n").unwrap();
    run(&[
        "--account",
        "alice",
        "send",
        "--to",
        "bob@example.test",
        "--subject",
        "exam",
        "--body",
        d.join("secret.txt").to_str().unwrap(),
        "--sign",
        "--encrypt",
    ])
    .success();
    // What is stored is unreadable without bob's key.
    let stored = maildrop(&s, "bob@example.test", "bob-pw").pop().unwrap();
    assert!(!stored.contains("exam is on Friday"), "{stored}");
    assert!(stored.contains("smime-type=enveloped-data"), "{stored}");
    let list = run(&["--account", "bob", "list"]).success().stdout;
    let uid = last_uid(&list);
    let read = run(&["--account", "bob", "read", &uid]).success().stdout;
    assert!(
        read.starts_with("S/MIME: signature VALID, signer trusted"),
        "{read}"
    );
    assert!(
        read.contains("layer 1: encrypted") && read.contains("layer 2: signed (detached)"),
        "{read}"
    );
    assert!(read.contains("Bob, the exam is on Friday."), "{read}");
    // alice reads her own Sent copy.
    let sent = run(&["--account", "alice", "--mailbox", "Sent", "list"])
        .success()
        .stdout;
    let uid = last_uid(&sent);
    let read = run(&["--account", "alice", "--mailbox", "Sent", "read", &uid])
        .success()
        .stdout;
    assert!(read.contains("Bob, the exam is on Friday."), "{read}");
    // Had bob's client announced AES-GCM, alice's would use it
    // (AuthEnvelopedData, RFC 5083), and bob's reads it as well.
    std::fs::write(
        d.join("certs/bob@example.test.caps"),
        "AES-256-GCM\nAES-256-CBC\n",
    )
    .unwrap();
    run(&[
        "--account",
        "alice",
        "send",
        "--to",
        "bob@example.test",
        "--subject",
        "gcm",
        "--body",
        d.join("secret.txt").to_str().unwrap(),
        "--encrypt",
    ])
    .success();
    let stored = maildrop(&s, "bob@example.test", "bob-pw").pop().unwrap();
    assert!(stored.contains("smime-type=authEnveloped-data"), "{stored}");
    let list = run(&["--account", "bob", "list"]).success().stdout;
    let uid = last_uid(&list);
    let read = run(&["--account", "bob", "read", &uid]).success().stdout;
    assert!(read.contains("layer 1: encrypted"), "{read}");
    assert!(read.contains("Bob, the exam is on Friday."), "{read}");
    // Without a certificate for the recipient, nothing is sent in clear.
    let out = run(&[
        "--account",
        "alice",
        "send",
        "--to",
        "carol@example.test",
        "--subject",
        "x",
        "--encrypt",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("no certificate for carol@example.test"),
        "{}",
        out.stderr
    );
}
