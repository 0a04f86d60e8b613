//! The admin CLI and the MDA against the real binary (interface.md).

mod common;

use std::process::Command;

use common::*;

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["user", "--help"],
        vec!["user", "add", "--help"],
        vec!["user", "list", "--help"],
        vec!["user", "del", "--help"],
        vec!["user", "passwd", "--help"],
        vec!["domain", "--help"],
        vec!["alias", "--help"],
        vec!["alias", "add", "--help"],
        vec!["config", "check", "--help"],
        vec!["deliver", "--help"],
        vec!["trace", "--help"],
        vec!["trace", "show", "--help"],
        vec!["trace", "follow", "--help"],
        vec!["analyze", "--help"],
        vec!["arc", "seal", "--help"],
        vec!["arc", "verify", "--help"],
        vec!["dkim", "sign", "--help"],
    ] {
        let out = run_with_stdin(Command::new(BIN).args(&args), b"");
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(out.stdout.contains("Usage"), "{args:?}");
    }
}

#[test]
fn users_domains_aliases() {
    let s = Server::prepare("");
    let list = s.admin(&["user", "list"]).success().stdout;
    assert!(
        list.contains("alice@example.test") && list.contains("bob@example.test"),
        "{list}"
    );
    // Duplicate, non-local domain, empty password
    assert_ne!(
        s.admin_stdin(
            &["user", "add", "alice@example.test", "--password-stdin"],
            "x\n"
        )
        .code,
        0
    );
    let out = s.admin_stdin(
        &["user", "add", "x@elsewhere.test", "--password-stdin"],
        "x\n",
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("not local"), "{}", out.stderr);
    assert_ne!(
        s.admin_stdin(&["user", "add", "y@example.test", "--password-stdin"], "\n")
            .code,
        0
    );
    // Domains: add, list (config ones marked), del; a config domain stays.
    s.admin(&["domain", "add", "second.test"]).success();
    let d = s.admin(&["domain", "list"]).success().stdout;
    assert!(
        d.contains("second.test") && d.contains("example.test\t(config)"),
        "{d}"
    );
    s.admin_stdin(
        &["user", "add", "carol@second.test", "--password-stdin"],
        "c\n",
    )
    .success();
    assert_ne!(s.admin(&["domain", "del", "example.test"]).code, 0);
    s.admin(&["domain", "del", "second.test"]).success();
    // quota
    s.admin(&["user", "quota", "alice@example.test", "10M"])
        .success();
    assert!(
        s.admin(&["user", "list"])
            .success()
            .stdout
            .contains("quota 10485760")
    );
    assert_ne!(
        s.admin(&["user", "quota", "alice@example.test", "lots"])
            .code,
        0
    );
    s.admin(&["user", "quota", "alice@example.test", "none"])
        .success();
    // The data directory and the store are private to the owner.
    use std::os::unix::fs::PermissionsExt;
    if !common::on_postgres() {
        let db = s.dir.path().join("postamt.db");
        assert_eq!(
            std::fs::metadata(&db).unwrap().permissions().mode() & 0o077,
            0,
            "store readable by others"
        );
    }
    // passwd
    s.admin_stdin(
        &["user", "passwd", "bob@example.test", "--password-stdin"],
        "new-bob\n",
    )
    .success();
    assert_ne!(
        s.admin_stdin(
            &["user", "passwd", "nobody@example.test", "--password-stdin"],
            "x\n"
        )
        .code,
        0
    );
    // Aliases to local and remote targets, catch-all.
    s.admin(&[
        "alias",
        "add",
        "team@example.test",
        "alice@example.test",
        "bob@example.test",
        "ext@remote.test",
    ])
    .success();
    let a = s.admin(&["alias", "list"]).success().stdout;
    assert!(
        a.contains("team@example.test\talice@example.test, bob@example.test, ext@remote.test"),
        "{a}"
    );
    s.deliver(
        "x@remote.test",
        &["team@example.test"],
        b"Subject: team\r\n\r\nhi\r\n",
    )
    .success();
    assert_eq!(
        s.deliver("x@remote.test", &["nobody@example.test"], b"S: x\r\n\r\n")
            .code,
        67
    );
    s.admin(&["alias", "add", "@example.test", "bob@example.test"])
        .success();
    s.deliver(
        "x@remote.test",
        &["nobody@example.test"],
        b"Subject: caught\r\n\r\n",
    )
    .success();
    s.admin(&["alias", "del", "team@example.test"]).success();
    assert_eq!(
        s.deliver("x@remote.test", &["team@example.test"], b"S: x\r\n\r\n")
            .code,
        0,
        "catch-all takes it now"
    );
    // user del removes the mail too.
    s.admin(&["user", "del", "bob@example.test"]).success();
    assert!(!s.admin(&["user", "list"]).success().stdout.contains("bob@"));
    // The delivered mail arrived: alice got 1 (team), bob's is gone.
    let mut s = s;
    s.spawn();
    let mut c = pop3(&s);
    c.login("alice@example.test", "alice-pw");
    c.cmd("STAT", "+OK 1 ");
}

#[test]
fn deliver_exit_codes_follow_sysexits() {
    let s = Server::prepare("[limits]\nmax_message_size = 1000\n");
    let ok = s.deliver(
        "a@remote.test",
        &["alice@example.test"],
        b"Subject: x\r\n\r\nbody\r\n",
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(
        s.deliver("a@remote.test", &["nobody@example.test"], b"S: x\r\n\r\n")
            .code,
        67,
        "EX_NOUSER"
    );
    assert_eq!(
        s.deliver("a@remote.test", &["x@remote.test"], b"S: x\r\n\r\n")
            .code,
        69,
        "not local"
    );
    assert_eq!(
        s.deliver("a@remote.test", &["alice@example.test"], b"")
            .code,
        65,
        "empty"
    );
    assert_eq!(
        s.deliver("a@remote.test", &["alice@example.test"], &vec![b'x'; 2000])
            .code,
        69,
        "too large"
    );
    // One unknown recipient among good ones: nothing is stored, EX_NOUSER.
    assert_eq!(
        s.deliver(
            "a@remote.test",
            &["alice@example.test", "nobody@example.test"],
            b"S: y\r\n\r\n"
        )
        .code,
        67
    );
    // An unusable store is a temporary failure: the MTA retries.
    let bad = s.dir.path().join("bad.toml");
    std::fs::write(&bad, "hostname = \"x\"\ndata_dir = \"/proc/postamt-nonexistent\"\ndomains = [\"example.test\"]\n").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["deliver", "--config"]).arg(&bad).args([
        "--from",
        "a@b",
        "--to",
        "alice@example.test",
    ]);
    assert_eq!(
        run_with_stdin(&mut cmd, b"S: x\r\n\r\n").code,
        75,
        "EX_TEMPFAIL"
    );
    let mut s = s;
    s.spawn();
    let mut c = pop3(&s);
    c.login("alice@example.test", "alice-pw");
    c.cmd("STAT", "+OK 1 ");
}

#[test]
fn config_check_reports_listeners_and_errors() {
    let s = Server::prepare("");
    let out = s.admin(&["config", "check"]).success().stdout;
    assert!(
        out.contains("config ok") && out.contains("pop3") && out.contains("127.0.0.1:0"),
        "{out}"
    );
    let bad = s.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "hostname = \"x\"\ndata_dir = \"/tmp\"\n\n[listen]\npop4 = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = run_with_stdin(
        Command::new(BIN)
            .args(["config", "check", "--config"])
            .arg(&bad),
        b"",
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("pop4") && out.stderr.contains("line 5"),
        "{}",
        out.stderr
    );
    let out = run_with_stdin(
        Command::new(BIN).args(["config", "check", "--config", "/nonexistent/postamt.toml"]),
        b"",
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("/nonexistent/postamt.toml"));
}

/// `serve --dev` exactly as interface.md says, on the real dev ports: the
/// typed session of the welcome message works straight away.
#[test]
fn dev_playground_telnet_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let mut child = Command::new(BIN)
        .args(["serve", "--dev", "--data-dir"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    loop {
        let mut l = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut l).unwrap() == 0 {
            let _ = child.kill();
            panic!("dev server exited: {banner}");
        }
        banner.push_str(&l);
        if l.trim() == "postamt: ready" {
            break;
        }
    }
    assert!(
        banner.contains("127.0.0.1:2110") && banner.contains("127.0.0.1:2995"),
        "{banner}"
    );
    assert!(
        banner.contains("alice@postamt.test (password alice)")
            && banner.contains("dns         listening on 127.0.0.1:2053"),
        "{banner}"
    );
    let mut c = Client::connect("127.0.0.1:2110".parse().unwrap());
    assert!(c.line().starts_with("+OK"));
    c.cmd("USER alice@postamt.test", "+OK");
    c.cmd("PASS alice", "+OK");
    c.cmd("STAT", "+OK 1 ");
    c.cmd("RETR 1", "+OK");
    let welcome = String::from_utf8(c.multiline()).unwrap();
    assert!(
        welcome.contains("telnet localhost 2110")
            && welcome.contains("telnet localhost 2025")
            && welcome.contains("telnet localhost 2143"),
        "{welcome}"
    );
    c.cmd("QUIT", "+OK");
    let mut b = Client::connect("127.0.0.1:2110".parse().unwrap());
    b.line();
    b.cmd("USER bob@postamt.test", "+OK");
    b.cmd("PASS bob", "+OK logged in, 1 messages");
    b.cmd("QUIT", "+OK");
    // SMTP on 2025: a hand-typed session to bob, and <Postmaster> exists.
    let mut m = Client::connect("127.0.0.1:2025".parse().unwrap());
    assert!(m.line().starts_with("220 localhost ESMTP"));
    m.smtp("HELO me.example", "250");
    m.smtp("MAIL FROM: carol@example.org", "250");
    m.smtp("RCPT TO: <Postmaster>", "250");
    m.smtp("RCPT TO: bob@postamt.test", "250");
    m.smtp("DATA", "354");
    m.send(b"Subject: hello\r\n\r\nTyped by hand.\r\n");
    m.smtp(".", "250");
    m.smtp("QUIT", "221");
    let mut b = Client::connect("127.0.0.1:2110".parse().unwrap());
    b.line();
    b.cmd("USER bob@postamt.test", "+OK");
    b.cmd("PASS bob", "+OK logged in, 2 messages");
    b.cmd("QUIT", "+OK");
    // Transcripts are on in the playground.
    let out = run_with_stdin(
        Command::new(BIN)
            .args(["trace", "list", "--dev", "--data-dir"])
            .arg(&data),
        b"",
    );
    assert!(out.stdout.contains("pop3"), "{}", out.stdout);
    spoofing_lab(&data);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success());
    // Second start: no second welcome message.
    let out = run_with_stdin(
        Command::new(BIN)
            .args(["user", "list", "--dev", "--data-dir"])
            .arg(&data),
        b"",
    );
    assert!(out.stdout.contains("alice@postamt.test"));
}

/// The spoofing lab of `serve --dev` (its DNS on 127.0.0.1:2053): a forged
/// `From: ceo@bank.test` typed on port 2025 is refused by DMARC
/// (`p=reject`, RFC 7489; 550 5.7.26), and the same message signed with
/// the lab key (`postamt dkim sign`) passes with dkim=pass and dmarc=pass.
fn spoofing_lab(data: &std::path::Path) {
    let mut m = Client::connect("127.0.0.1:2025".parse().unwrap());
    m.line();
    m.smtp("HELO forger.example", "250");
    let message = "From: CEO <ceo@bank.test>\r\nTo: bob@postamt.test\r\nSubject: wire the money\r\n\r\nToday, please.\r\n";
    m.smtp("MAIL FROM:<ceo@bank.test>", "250");
    m.smtp("RCPT TO:<bob@postamt.test>", "250");
    m.smtp("DATA", "354");
    m.send(message.as_bytes());
    let r = m.smtp(".", "550 5.7.26");
    assert!(r.contains("bank.test"), "{r}");
    let file = data.join("forged.eml");
    std::fs::write(&file, message).unwrap();
    let signed = run_with_stdin(
        Command::new(BIN)
            .args(["dkim", "sign", "--dev", "--data-dir"])
            .arg(data)
            .args(["--domain", "bank.test", "--selector", "lab"])
            .arg(&file),
        b"",
    )
    .success()
    .stdout;
    assert!(
        signed.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
        "{signed}"
    );
    m.smtp("MAIL FROM:<ceo@bank.test>", "250");
    m.smtp("RCPT TO:<bob@postamt.test>", "250");
    m.smtp("DATA", "354");
    m.send(signed.as_bytes());
    m.smtp(".", "250");
    // The lab's mailing list passes the signed message on with a tag in
    // the subject: the bank's signature breaks, and DMARC refuses it ...
    let signed_file = data.join("signed.eml");
    std::fs::write(&signed_file, &signed).unwrap();
    let tagged = signed.replace("Subject: wire", "Subject: [staff] wire");
    m.smtp("MAIL FROM:<staff-bounces@lists.test>", "250");
    m.smtp("RCPT TO:<bob@postamt.test>", "250");
    m.smtp("DATA", "354");
    m.send(tagged.as_bytes());
    m.smtp(".", "550 5.7.26");
    // ... unless the list seals it (RFC 8617), a sealer the playground trusts.
    let sealed = run_with_stdin(
        Command::new(BIN)
            .args(["arc", "seal", "--dev", "--data-dir"])
            .arg(data)
            .args(["--domain", "lists.test", "--subject-prefix", "[staff] "])
            .arg(&signed_file),
        b"",
    )
    .success()
    .stdout;
    assert!(
        sealed.starts_with("ARC-Seal: i=1; a=ed25519-sha256;"),
        "{sealed}"
    );
    assert!(
        sealed.contains("Subject: [staff] wire the money"),
        "{sealed}"
    );
    assert!(
        sealed.contains("ARC-Authentication-Results: i=1; lists.test;")
            && sealed.contains("dkim=pass"),
        "the list saw the bank's signature pass: {sealed}"
    );
    let sealed_file = data.join("sealed.eml");
    std::fs::write(&sealed_file, &sealed).unwrap();
    let verified = run_with_stdin(
        Command::new(BIN)
            .args(["arc", "verify", "--dev", "--data-dir"])
            .arg(data)
            .arg(&sealed_file),
        b"",
    )
    .success()
    .stdout;
    assert!(
        verified.starts_with("arc=pass sealers=lists.test"),
        "{verified}"
    );
    m.smtp("MAIL FROM:<staff-bounces@lists.test>", "250");
    m.smtp("RCPT TO:<bob@postamt.test>", "250");
    m.smtp("DATA", "354");
    m.send(sealed.as_bytes());
    m.smtp(".", "250");
    m.smtp("QUIT", "221");
    let mut b = Client::connect("127.0.0.1:2110".parse().unwrap());
    b.line();
    b.cmd("USER bob@postamt.test", "+OK");
    b.cmd("PASS bob", "+OK logged in, 4 messages");
    b.cmd("RETR 4", "+OK");
    let listed = String::from_utf8(b.multiline()).unwrap();
    assert!(
        listed.contains("	arc=pass (sealed by lists.test)"),
        "{listed}"
    );
    assert!(
        listed.contains("policy not applied: ARC chain sealed by trusted lists.test"),
        "{listed}"
    );
    b.cmd("RETR 3", "+OK");
    let got = String::from_utf8(b.multiline()).unwrap();
    assert!(got.contains("\tspf=fail ("), "{got}");
    assert!(
        got.contains("\tdkim=pass header.d=bank.test header.s=lab header.a=ed25519-sha256"),
        "{got}"
    );
    assert!(
        got.contains("\tdmarc=pass (DKIM aligned with From: bank.test)"),
        "{got}"
    );
    b.cmd("QUIT", "+OK");
}

/// Issue 18: `config check` tests a PostgreSQL store's connection and
/// says the server's and the schema's version; the commands and the
/// server run on it; an unreachable database is a clear error.
#[test]
fn a_postgres_store_url_is_checked_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let pg = common::PgSchema::new();
    let config = dir.path().join("postamt.toml");
    let text = common::config_text(
        dir.path(),
        &format!(
            "[relay]\nenabled = false\n[store]\nurl = \"{}\"\nnode = \"cli-node\"\n",
            pg.url
        ),
    );
    std::fs::write(&config, &text).unwrap();
    let admin = |args: &[&str], stdin: &str| {
        run_with_stdin(
            Command::new(BIN).args(args).arg("--config").arg(&config),
            stdin.as_bytes(),
        )
    };
    let out = admin(&["config", "check"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("store     postgres: PostgreSQL "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("schema not created yet"),
        "{}",
        out.stdout
    );
    admin(
        &["user", "add", "alice@example.test", "--password-stdin"],
        "pw\n",
    )
    .success();
    let out = admin(&["user", "list"], "").success();
    assert!(out.stdout.contains("alice@example.test"), "{}", out.stdout);
    let out = admin(&["config", "check"], "").success();
    assert!(out.stdout.contains("schema version"), "{}", out.stdout);
    // The server says which store and which node.
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut said = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line == "postamt: ready" {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        said.contains(
            "postamt: store       postgres root@127.0.0.1:5432/test as node \"cli-node\""
        ),
        "{said}"
    );
    // Nothing listens there: a clear error naming the place.
    std::fs::write(
        &config,
        text.replace(
            &pg.url,
            "postgres://root@127.0.0.1:1/test?connect_timeout=2",
        ),
    )
    .unwrap();
    let out = admin(&["config", "check"], "");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("cannot connect to PostgreSQL at root@127.0.0.1:1/test"),
        "{}",
        out.stderr
    );
    let out = admin(&["user", "list"], "");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("cannot connect to PostgreSQL"),
        "{}",
        out.stderr
    );
}

/// Issue 18: `postamt store migrate` moves a SQLite installation into
/// PostgreSQL; restarted on it, the server shows IMAP clients the same
/// mailboxes — UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, UIDs, flags, MODSEQs
/// and content — so they do not resynchronise (RFC 7162 §3.1.2.1,
/// RFC 9051 §2.3.1.1).
#[test]
fn store_migrate_moves_sqlite_into_postgres_and_clients_see_no_change() {
    let mut s = Server::prepare_with("", None, None, None, true);
    s.spawn();
    for i in 0..6 {
        s.deliver(
            "x@remote.test",
            &["alice@example.test"],
            format!("Subject: m{i}\r\n\r\nbody {i}\r\n").as_bytes(),
        )
        .success();
    }
    let snapshot = |s: &Server| {
        let mut c = Imap::logged_in(s, "alice");
        c.ok("e", "ENABLE CONDSTORE");
        let status = c.ok(
            "st",
            "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)",
        );
        c.ok("s", "SELECT INBOX");
        let fetched = c.ok("f", "UID FETCH 1:* (FLAGS MODSEQ RFC822.SIZE BODY.PEEK[])");
        (status, fetched)
    };
    {
        let mut c = Imap::logged_in(&s, "alice");
        c.ok("s", "SELECT INBOX");
        c.ok("f", "STORE 2 +FLAGS (\\Seen \\Flagged)");
        c.ok("d", "STORE 3 +FLAGS (\\Deleted)");
        c.ok("x", "EXPUNGE");
        c.ok("c", "CREATE Archive/2026");
    }
    let before = snapshot(&s);
    s.stop();
    let pg = PgSchema::new();
    let db = s.dir.path().join("postamt.db");
    let out = run_with_stdin(
        Command::new(BIN).args([
            "store",
            "migrate",
            "--from",
            &format!("sqlite://{}", db.display()),
            "--to",
            &pg.url,
        ]),
        b"",
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("messages          6 rows copied and verified")
            || out.stdout.contains("rows copied and verified"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("done: 5 messages"), "{}", out.stdout);
    // The same server, now on PostgreSQL.
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("{text}[store]\nurl = \"{}\"\n", pg.url)).unwrap();
    let url = pg.url.clone();
    s.pg = Some(pg);
    s.spawn();
    let after = snapshot(&s);
    assert_eq!(after, before);
    let mut c = Imap::logged_in(&s, "alice");
    let listed = c.ok("l", "LIST \"\" Archive/2026");
    assert_eq!(listed.len(), 1, "{listed:?}");
    // Into a store that is not empty: refused, nothing changed.
    let out = run_with_stdin(
        Command::new(BIN).args([
            "store",
            "migrate",
            "--from",
            &format!("sqlite://{}", db.display()),
            "--to",
            &url,
        ]),
        b"",
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
}
