//! IMAP against the real binary over TCP: the hand-typed session of the
//! README (RFC 3501 §6 / RFC 9051 §6), concurrent sessions and unilateral
//! responses (RFC 9051 §7.4.1, §5.2), IDLE woken by SMTP (RFC 2177),
//! UIDPLUS / MOVE, and the bounds against hostile clients.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn deliver(s: &Server, subject: &str, body: &str) {
    s.deliver(
        "sender@remote.test",
        &["alice@example.test"],
        &message(subject, body),
    )
    .success();
}

/// Delivers over SMTP: the server's own change feed carries it at once.
fn smtp_deliver(s: &Server, subject: &str) {
    let mut smtp = smtp(s, "smtp");
    smtp.cmd("EHLO client.test", "250");
    while !smtp.line().starts_with("250 ") {}
    smtp.cmd("MAIL FROM:<x@remote.test>", "250");
    smtp.cmd("RCPT TO:<alice@example.test>", "250");
    smtp.cmd("DATA", "354");
    smtp.cmd(&format!("Subject: {subject}\r\n\r\nbody\r\n."), "250");
    smtp.cmd("QUIT", "221");
}

fn find<'a>(lines: &'a [String], needle: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {lines:#?}"))
}

#[test]
fn typed_session_select_fetch_store_logout() {
    let s = Server::start("");
    deliver(&s, "first", "Hello IMAP.\r\n");
    deliver(&s, "second", "Again.\r\n");
    let mut c = Imap::connect(s.addr("imap"));
    let caps = c.ok("a000", "CAPABILITY");
    assert!(find(&caps, "* CAPABILITY").contains("IDLE"));
    c.ok("a001", "LOGIN alice@example.test alice-pw");
    let (u, t) = c.cmd("a002", "SELECT INBOX");
    assert_eq!(t, "a002 OK [READ-WRITE] SELECT completed\r\n");
    for expected in [
        "* 2 EXISTS",
        "* 2 RECENT",
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]",
        "* OK [UIDNEXT 3]",
        "* OK [UNSEEN 1]",
        "* OK [UIDVALIDITY ",
    ] {
        find(&u, expected);
    }
    // FULL = FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY (RFC 9051 §6.4.5).
    let u = c.ok("a003", "FETCH 1 FULL");
    let f = find(&u, "* 1 FETCH");
    assert!(f.contains("FLAGS (\\Recent)"), "{f}");
    assert!(f.contains("INTERNALDATE \""), "{f}");
    assert!(f.contains("RFC822.SIZE "), "{f}");
    assert!(
        f.contains("ENVELOPE (NIL \"first\" ((\"Sender\" NIL \"sender\" \"remote.test\"))"),
        "{f}"
    );
    assert!(f.contains("BODY (\"text\" \"plain\""), "{f}");
    let u = c.ok("a004", "FETCH 1 BODY[HEADER]");
    let f = find(&u, "* 1 FETCH (");
    assert!(f.contains("BODY[HEADER] {"), "{f}");
    assert!(
        f.contains("Message-ID: <first@remote.test>\r\n\r\n)"),
        "{f}"
    );
    // The non-PEEK fetch set \Seen and said so.
    assert!(f.contains("FLAGS (\\Seen \\Recent)"), "{f}");
    let u = c.ok("a005", "STORE 1 +FLAGS \\Deleted");
    assert_eq!(u, vec!["* 1 FETCH (FLAGS (\\Seen \\Deleted \\Recent))\r\n"]);
    let u = c.ok("a006", "EXPUNGE");
    assert_eq!(u, vec!["* 1 EXPUNGE\r\n"]);
    let u = c.ok("a007", "UID FETCH 1:* (FLAGS BODY.PEEK[TEXT])");
    assert_eq!(u.len(), 1);
    assert!(
        u[0].starts_with("* 1 FETCH (UID 2 FLAGS (\\Recent) BODY[TEXT] {8}\r\nAgain.\r\n)"),
        "{u:?}"
    );
    let (u, t) = c.cmd("a008", "LOGOUT");
    assert_eq!(u, vec!["* BYE logging out\r\n"]);
    assert!(t.starts_with("a008 OK"));
    assert!(c.c.closed());
}

#[test]
fn examine_is_read_only_and_recent_belongs_to_one_session() {
    let s = Server::start("");
    deliver(&s, "one", "1\r\n");
    let mut a = Imap::logged_in(&s, "alice");
    let u = a.ok("a1", "EXAMINE INBOX");
    find(&u, "* 1 RECENT");
    let (_, t) = a.cmd("a2", "STORE 1 +FLAGS \\Seen");
    assert!(t.starts_with("a2 NO [READ-ONLY]"), "{t}");
    // FETCH BODY[] in a read-only mailbox does not set \Seen.
    let u = a.ok("a3", "FETCH 1 (BODY[] FLAGS)");
    assert!(find(&u, "* 1 FETCH").contains("FLAGS (\\Recent)"));
    // The first SELECT takes \Recent; a second session sees none.
    a.ok("a4", "SELECT INBOX");
    let mut b = Imap::logged_in(&s, "alice");
    let u = b.ok("b1", "SELECT INBOX");
    find(&u, "* 0 RECENT");
    let u = b.ok("b2", "STATUS INBOX (MESSAGES RECENT UNSEEN UIDNEXT)");
    find(
        &u,
        "* STATUS \"INBOX\" (MESSAGES 1 RECENT 0 UNSEEN 1 UIDNEXT 2)",
    );
}

#[test]
fn other_sessions_changes_arrive_at_the_right_moments() {
    let s = Server::start("");
    deliver(&s, "one", "1\r\n");
    deliver(&s, "two", "2\r\n");
    let mut a = Imap::logged_in(&s, "alice");
    a.ok("a1", "SELECT INBOX");
    let mut b = Imap::logged_in(&s, "alice");
    b.ok("b1", "SELECT INBOX");
    b.ok("b2", "STORE 1 +FLAGS.SILENT (\\Deleted \\Flagged)");
    b.ok("b3", "EXPUNGE");
    smtp_deliver(&s, "three");
    b.ok("b3a", "NOOP");
    // RFC 9051 §7.4.1: no EXPUNGE during FETCH; the numbering stays.
    let u = a.ok("a2", "FETCH 1:* (UID)");
    assert!(u.iter().all(|l| !l.contains("EXPUNGE")), "{u:?}");
    find(&u, "* 3 EXISTS");
    find(&u, "* 2 FETCH (UID 2)");
    // NOOP delivers the expunge, and the numbers shift.
    let u = a.ok("a3", "NOOP");
    assert_eq!(u, vec!["* 1 EXPUNGE\r\n"]);
    let u = a.ok("a4", "FETCH 1:* (UID)");
    assert_eq!(u, vec!["* 1 FETCH (UID 2)\r\n", "* 2 FETCH (UID 3)\r\n"]);
    // Flag changes by another session are announced.
    b.ok("b4", "STORE 2 +FLAGS (\\Answered)");
    let u = a.ok("a5", "NOOP");
    // (b's NOOP saw the new message first: \Recent is b's, not a's.)
    assert_eq!(u, vec!["* 2 FETCH (UID 3 FLAGS (\\Answered))\r\n"]);
}

#[test]
fn idle_wakes_on_smtp_delivery() {
    let s = Server::start("");
    let mut a = Imap::logged_in(&s, "alice");
    a.ok("a1", "SELECT INBOX");
    a.c.send(b"a2 IDLE\r\n");
    assert_eq!(a.c.line(), "+ idling\r\n");
    let start = Instant::now();
    smtp_deliver(&s, "idle");
    // Woken through the change feed, not by polling.
    assert_eq!(a.c.line(), "* 1 EXISTS\r\n");
    assert_eq!(a.c.line(), "* 1 RECENT\r\n");
    assert!(start.elapsed() < Duration::from_secs(5));
    a.c.send(b"DONE\r\n");
    let (_, t) = a.until("a2");
    assert!(t.starts_with("a2 OK"), "{t}");
    let u = a.ok("a3", "FETCH 1 (ENVELOPE)");
    assert!(find(&u, "* 1 FETCH").contains("\"idle\""));
}

#[test]
fn idle_sees_deliveries_by_another_process() {
    // `postamt deliver` (e.g. Postfix's mailbox_command) commits from its
    // own process; the server notices through SQLite's data_version.
    let s = Server::start("");
    let mut a = Imap::logged_in(&s, "alice");
    a.ok("a1", "SELECT INBOX");
    a.c.send(b"a2 IDLE\r\n");
    assert_eq!(a.c.line(), "+ idling\r\n");
    let start = Instant::now();
    deliver(&s, "from deliver", "x\r\n");
    assert_eq!(a.c.line(), "* 1 EXISTS\r\n");
    assert!(start.elapsed() < Duration::from_secs(5));
    a.c.send(b"DONE\r\n");
    a.until("a2");
}

#[test]
fn uidplus_append_copy_move_and_uid_expunge() {
    let s = Server::start("");
    let mut c = Imap::logged_in(&s, "alice");
    let (_, t) = c.cmd("a1", "APPEND INBOX (\\Flagged $Work) \"05-Nov-1994 14:12:34 -0800\" {22+}\r\nSubject: one\r\n\r\nbody\r\n");
    assert!(t.starts_with("a1 OK [APPENDUID "), "{t}");
    let uidvalidity: u32 = t.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(t.contains(&format!("[APPENDUID {uidvalidity} 1]")), "{t}");
    // A synchronizing literal gets a continuation request first.
    c.c.send(b"a2 APPEND INBOX {22}\r\n");
    assert!(c.c.line().starts_with("+ "));
    c.c.send(b"Subject: two\r\n\r\nbody\r\n\r\n");
    let (_, t) = c.until("a2");
    assert!(t.contains("[APPENDUID ") && t.contains(" 2]"), "{t}");
    let (_, t) = c.cmd("a3", "APPEND Nowhere {1+}\r\nx");
    assert!(t.starts_with("a3 NO [TRYCREATE]"), "{t}");
    let u = c.ok("a4", "SELECT INBOX");
    find(&u, "$Work");
    let u = c.ok("a5", "FETCH 1 (FLAGS INTERNALDATE)");
    let f = find(&u, "* 1 FETCH");
    assert!(f.contains("\\Flagged") && f.contains("$Work"), "{f}");
    assert!(
        f.contains("INTERNALDATE \"05-Nov-1994 22:12:34 +0000\""),
        "{f}"
    );
    c.ok("a6", "CREATE Work/Projects/");
    let u = c.ok("a7", "LIST \"\" Work/%");
    find(&u, "* LIST (\\HasNoChildren) \"/\" \"Work/Projects\"");
    let (_, t) = c.cmd("a8", "UID COPY 1:2 Work/Projects");
    assert!(t.contains("[COPYUID ") && t.contains(" 1:2 1:2]"), "{t}");
    let (u, t) = c.cmd("a9", "UID MOVE 2 Archive");
    assert!(t.starts_with("a9 OK"), "{t}");
    assert!(find(&u, "* OK [COPYUID ").contains(" 2 1]"), "{u:?}");
    find(&u, "* 2 EXPUNGE");
    c.ok("a10", "STORE 1 +FLAGS (\\Deleted)");
    c.ok("a11", "APPEND INBOX (\\Deleted) {3+}\r\nx\r\n");
    c.ok("a12", "NOOP");
    // UID EXPUNGE (RFC 4315 §2.1) leaves other \Deleted messages alone.
    let u = c.ok("a13", "UID EXPUNGE 3");
    assert_eq!(u, vec!["* 2 EXPUNGE\r\n"]);
    let u = c.ok("a14", "UID SEARCH DELETED");
    assert_eq!(u, vec!["* SEARCH 1\r\n"]);
    let u = c.ok("a15", "STATUS Work/Projects (MESSAGES UIDNEXT)");
    find(&u, "(MESSAGES 2 UIDNEXT 3)");
}

#[test]
fn search_keys() {
    let s = Server::start("");
    deliver(&s, "Meeting notes", "The budget is fine.\r\n");
    deliver(&s, "lunch", "Pizza?\r\n");
    let mut c = Imap::logged_in(&s, "alice");
    c.ok("a1", "SELECT INBOX");
    c.ok("a2", "STORE 2 +FLAGS (\\Flagged)");
    for (query, want) in [
        ("ALL", "* SEARCH 1 2"),
        ("SUBJECT meeting", "* SEARCH 1"),
        ("BODY pizza", "* SEARCH 2"),
        ("TEXT \"budget is\"", "* SEARCH 1"),
        ("FLAGGED", "* SEARCH 2"),
        ("NOT FLAGGED", "* SEARCH 1"),
        ("OR FLAGGED SUBJECT meeting", "* SEARCH 1 2"),
        ("FROM sender@remote.test", "* SEARCH 1 2"),
        ("HEADER Message-ID lunch", "* SEARCH 2"),
        ("LARGER 1 SMALLER 100000", "* SEARCH 1 2"),
        ("SINCE 1-Jan-2000 UNSEEN", "* SEARCH 1 2"),
        ("BEFORE 1-Jan-2000", "* SEARCH"),
        ("2:*", "* SEARCH 2"),
        ("UID 1", "* SEARCH 1"),
        ("(NEW) (RECENT)", "* SEARCH 1 2"),
    ] {
        let u = c.ok("s", &format!("SEARCH {query}"));
        assert_eq!(u, vec![format!("{want}\r\n")], "SEARCH {query}");
    }
    let (_, t) = c.cmd("b1", "SEARCH CHARSET KOI8-R ALL");
    assert!(t.contains("BADCHARSET"), "{t}");
}

#[test]
fn bad_input_gets_clear_errors_and_the_session_goes_on() {
    let s = Server::start("[imap]\nmax_append = 1000\n");
    let mut c = Imap::connect(s.addr("imap"));
    let (_, t) = c.cmd("x1", "SELECT INBOX");
    assert!(t.starts_with("x1 BAD"), "{t}");
    let (_, t) = c.cmd("x2", "LOGIN alice@example.test wrong");
    assert!(t.starts_with("x2 NO [AUTHENTICATIONFAILED]"), "{t}");
    c.login("alice@example.test", "alice-pw");
    for (cmd, want) in [
        ("FROB", "BAD unknown command FROB"),
        ("FETCH 1 FLAGS", "BAD select a mailbox first"),
        ("SELECT Nope", "NO [NONEXISTENT]"),
        ("SELECT", "BAD expected a space"),
    ] {
        let (_, t) = c.cmd("t", cmd);
        assert!(t.starts_with(&format!("t {want}")), "{cmd}: {t}");
    }
    c.ok("a1", "SELECT INBOX");
    for (cmd, want) in [
        ("FETCH 5 FLAGS", "BAD invalid message sequence number"),
        ("FETCH 0 FLAGS", "BAD sequence numbers start at 1"),
        ("STORE 1:* +FLAGS (\\Bogus)", "BAD unknown system flag"),
        ("FETCH 1 (BODY[0])", "BAD part numbers start at 1"),
    ] {
        let (_, t) = c.cmd("t", cmd);
        assert!(t.starts_with(&format!("t {want}")), "{cmd}: {t}");
    }
    // Parentheses nested too deep: BAD, not a stack overflow.
    let deep = format!("SEARCH {}ALL{}", "(".repeat(500), ")".repeat(500));
    let (_, t) = c.cmd("d1", &deep);
    assert!(t.starts_with("d1 BAD too deeply nested"), "{t}");
    // RFC 7889: too big for APPENDLIMIT, refused before the literal.
    c.c.send(b"z1 APPEND INBOX {5000}\r\n");
    assert!(c.c.line().starts_with("z1 NO [TOOBIG]"));
    // A non-synchronizing one is read and thrown away.
    let mut big = b"z2 APPEND INBOX {5000+}\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5000));
    big.extend_from_slice(b"\r\n");
    c.c.send(&big);
    assert!(c.c.line().starts_with("z2 BAD [TOOBIG]"));
    c.ok("n1", "NOOP");
    // A long line after login: BAD, and the session continues.
    let (_, t) = c.cmd("l1", &format!("NOOP {}", "a".repeat(70_000)));
    assert!(t.starts_with("l1 BAD [TOOBIG]"), "{t}");
    c.ok("n2", "NOOP");
}

/// RFC 2971 §3.3: an ID of 30 field/value pairs with values of 1,024
/// octets is accepted, before login and after, as quoted strings and as
/// literals; more pairs than 30 are read and the rest ignored; the
/// session goes on. Past the pre-login budget it is still refused.
#[test]
fn rfc2971_3_3_id_with_30_pairs_of_1024_octets() {
    let s = Server::start("");
    let value = "v".repeat(1024);
    let quoted: Vec<String> = (0..30)
        .map(|i| format!("\"field-{i:02}-padded-to-thirty-oct\" \"{value}\""))
        .collect();
    let id_quoted = format!("ID ({})", quoted.join(" "));
    let literal: Vec<String> = (0..31)
        .map(|i| format!("\"f{i}\" {{1024+}}\r\n{value}"))
        .collect();
    let id_literal = format!("ID ({})", literal.join(" "));
    for login in [false, true] {
        let mut c = Imap::connect(s.addr("imap"));
        if login {
            c.login("alice@example.test", "alice-pw");
        }
        for (tag, cmd) in [("i1", &id_quoted), ("i2", &id_literal)] {
            let u = c.ok(tag, cmd);
            assert!(
                u.iter()
                    .any(|l| l.starts_with("* ID (\"name\" \"postamt\"")),
                "{u:?}"
            );
        }
        c.ok("n", "NOOP");
        if !login {
            c.login("alice@example.test", "alice-pw");
            c.ok("n2", "NOOP");
        }
    }
    // Before login, far past the budget: refused and closed.
    let mut c = Imap::connect(s.addr("imap"));
    let huge = format!("ID (\"x\" \"{}\")", "v".repeat(60_000));
    let (_, t) = c.cmd("h", &huge);
    assert!(t.starts_with("h BAD [TOOBIG]"), "{t}");
}

#[test]
fn pre_auth_budget_open_parentheses_without_newline() {
    let s = Server::start("");
    let mut c = Imap::connect(s.addr("imap"));
    // The Dovecot CVE-2026-27857 class: no newline, ever more "(".
    c.c.send(b"a LOGIN ");
    c.c.send(&vec![b'('; 50_000]);
    let r = c.c.line();
    assert!(r.starts_with("a BAD [TOOBIG]"), "{r}");
    assert!(c.c.line().starts_with("* BYE"));
    assert!(c.c.closed());
    // The server is fine.
    Imap::logged_in(&s, "alice");
}

#[test]
fn too_many_errors_end_the_session() {
    let s = Server::start("[limits]\nmax_errors = 3\n");
    let mut c = Imap::connect(s.addr("imap"));
    for i in 0..3 {
        c.c.send(format!("e{i} FROB\r\n").as_bytes());
        assert!(c.c.line().starts_with(&format!("e{i} BAD")));
    }
    assert!(c.c.line().starts_with("* BYE"));
    assert!(c.c.closed());
}

#[test]
fn mailbox_names_in_modified_utf7() {
    let s = Server::start("");
    let mut c = Imap::logged_in(&s, "alice");
    // RFC 3501 §5.1.3: "Entwürfe" and "A&B".
    c.ok("a1", "CREATE Entw&APw-rfe");
    c.ok("a2", "CREATE \"A&-B\"");
    let u = c.ok("a3", "LIST \"\" *");
    find(&u, "\"Entw&APw-rfe\"");
    find(&u, "\"A&-B\"");
    c.ok("a4", "CREATE Entw&APw-rfe/Alt");
    let u = c.ok("a5", "LIST \"\" Entw&APw-rfe/%");
    find(&u, "* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe/Alt\"");
    let u = c.ok("a5b", "LIST \"\" Entw&APw-rfe");
    find(&u, "* LIST (\\HasChildren) \"/\" \"Entw&APw-rfe\"");
    c.ok("a6", "RENAME \"A&-B\" \"A&-C\"");
    c.ok("a6b", "SUBSCRIBE \"A&-C\"");
    let u = c.ok("a7", "LSUB \"\" \"A&-*\"");
    assert_eq!(u, vec!["* LSUB () \"/\" \"A&-C\"\r\n"]);
    c.ok("a8", "DELETE \"A&-C\"");
    let (_, t) = c.cmd("a9", "DELETE INBOX");
    assert!(t.starts_with("a9 NO"), "{t}");
}

#[test]
fn starttls_and_imaps_and_authenticate_plain() {
    let s = Server::start("[transcripts]\nenabled = true\n");
    // SASL-IR (RFC 4959): PLAIN with an initial response.
    let mut c = Imap::connect(s.addr("imap"));
    let (_, t) = c.cmd(
        "a1",
        "AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
    );
    assert!(t.starts_with("a1 OK"), "{t}");
    // Without: a continuation request, then the response.
    let mut d = Imap::connect(s.addr("imap"));
    d.c.send(b"b1 AUTHENTICATE PLAIN\r\n");
    assert_eq!(d.c.line(), "+ \r\n");
    d.c.send(b"AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==\r\n");
    let (_, t) = d.until("b1");
    assert!(t.starts_with("b1 NO [AUTHENTICATIONFAILED]"), "{t}");
    d.c.send(b"b2 AUTHENTICATE PLAIN\r\n");
    assert_eq!(d.c.line(), "+ \r\n");
    d.c.send(b"*\r\n");
    let (_, t) = d.until("b2");
    assert!(t.starts_with("b2 BAD"), "{t}");
    if !require("openssl") {
        return;
    }
    for (args, listener) in [(vec!["-starttls", "imap"], "imap"), (vec![], "imaps")] {
        let out = run_with_stdin(
            std::process::Command::new("openssl")
                .args(["s_client", "-quiet", "-connect"])
                .arg(s.addr(listener).to_string())
                .args(args),
            b"a LOGIN alice@example.test alice-pw\r\nb SELECT INBOX\r\nc LOGOUT\r\n",
        );
        assert!(out.stdout.contains("a OK"), "{listener}: {}", out.stdout);
        assert!(out.stdout.contains("b OK [READ-WRITE]"), "{}", out.stdout);
    }
    // Transcripts: TLS is marked for STARTTLS and for the implicit-TLS
    // port alike, and a session the client just drops ends with a marker
    // too (c and d never sent LOGOUT).
    drop(c);
    drop(d);
    let mut all = String::new();
    for _ in 0..100 {
        let list = s.admin(&["trace", "list"]).success().stdout;
        let texts: Vec<String> = list
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .map(|id| s.admin(&["trace", "show", &id]).success().stdout)
            .collect();
        all = texts.join("\n====\n");
        if texts.len() == 4 && texts.iter().all(|t| t.contains("-- session ended")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(all.matches("-- session ended").count(), 4, "{all}");
    assert!(all.contains("-- TLS started: TLSv1_3"), "{all}");
    assert!(all.contains("(implicit TLS port)"), "{all}");
    let log = s.log();
    assert!(
        !log.contains("alice-pw") && !log.contains("AGFsaWNl"),
        "secrets in the log"
    );
}

#[test]
fn transcripts_show_the_dialogue_with_credentials_masked() {
    let s = Server::start("[transcripts]\nenabled = true\nbody_limit = 64\n");
    deliver(&s, "traced", &"long body line\r\n".repeat(50));
    let mut c = Imap::connect(s.addr("imap"));
    c.ok("a1", "LOGIN alice@example.test alice-pw");
    c.ok("a2", "SELECT INBOX");
    c.ok("a3", "FETCH 1 BODY[]");
    c.ok("a4", "APPEND INBOX {12+}\r\nSubject: x\r\n");
    c.ok("a5", "LOGOUT");
    let mut d = Imap::connect(s.addr("imap"));
    d.c.send(b"b1 AUTHENTICATE PLAIN\r\n");
    assert_eq!(d.c.line(), "+ \r\n");
    d.c.send(b"AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==\r\n");
    d.until("b1");
    d.ok("b3", "LOGOUT");
    let mut e = Imap::connect(s.addr("imap"));
    e.ok(
        "b2",
        "AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
    );
    e.ok("b4", "LOGOUT");
    assert!(e.c.closed());
    let list = s.admin(&["trace", "list"]).success().stdout;
    let mut all = String::new();
    for id in list.lines().map(|l| l.split('\t').next().unwrap()) {
        all.push_str(&s.admin(&["trace", "show", id]).success().stdout);
    }
    assert!(
        all.contains("C: a1 LOGIN alice@example.test ****\n"),
        "{all}"
    );
    assert!(
        all.contains("S: a2 OK [READ-WRITE] SELECT completed"),
        "{all}"
    );
    assert!(all.contains("C: a3 FETCH 1 BODY[]"), "{all}");
    assert!(all.contains("octets of FETCH data"), "{all}");
    assert!(all.contains("C: (SASL response) ****"), "{all}");
    assert!(all.contains("C: b2 AUTHENTICATE PLAIN ****"), "{all}");
    assert!(
        !all.contains("alice-pw") && !all.contains("AGFsaWNl"),
        "{all}"
    );
}

/// `postamt trace follow --explain` prints sessions of every protocol as
/// they happen, explained; `trace show ID --explain --table` gives the
/// three columns of teaching material (client, server, what it means).
#[test]
fn trace_follow_and_the_explained_table() {
    use std::io::BufRead;
    let off = Server::start("");
    let out = off.admin(&["trace", "follow"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("transcripts are off"), "{}", out.stderr);
    let s = Server::start("[transcripts]\nenabled = true\n");
    let mut follow = Command::new(BIN)
        .args(["trace", "follow", "--explain", "--lang", "en", "--config"])
        .arg(&s.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Started (and past the transcripts already there) once it says so.
    let mut err = std::io::BufReader::new(follow.stderr.take().unwrap());
    let mut said = String::new();
    err.read_line(&mut said).unwrap();
    assert!(said.starts_with("following the transcripts"), "{said}");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut c = Imap::connect(s.addr("imap"));
    c.ok("a1", "LOGIN alice@example.test alice-pw");
    c.ok("a2", "SELECT INBOX");
    let mut p = pop3(&s);
    p.cmd("CAPA", "+OK");
    p.multiline();
    // Every line arrives within a bounded wait, while both sessions are
    // still open (transcripts are written out with each response).
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let want = ["C: a2 SELECT INBOX", "C: CAPA"];
    while !want.iter().all(|w| seen.iter().any(|l| l.ends_with(w))) && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    c.ok("a3", "LOGOUT");
    p.cmd("QUIT", "+OK");
    let _ = follow.kill();
    let _ = follow.wait();
    let text = seen.join("\n");
    assert!(
        text.contains("C: a1 LOGIN alice@example.test ****"),
        "{text}"
    );
    let select = seen
        .iter()
        .position(|l| l.ends_with("C: a2 SELECT INBOX"))
        .expect(&text);
    assert!(seen[select + 1].contains("     ^ "), "explained: {text}");
    assert!(text.contains("| # postamt transcript"), "{text}");
    assert!(
        text.contains("|      = selected state"),
        "the state: {text}"
    );
    assert!(text.contains("pop3 session"), "both protocols: {text}");
    assert!(!text.contains("alice-pw"), "{text}");
    // The same IMAP session as a table.
    let list = s.admin(&["trace", "list"]).success().stdout;
    let id = list
        .lines()
        .find(|l| l.contains("imap"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_string();
    let table = s
        .admin(&["trace", "show", &id, "--explain", "--table", "--lang", "en"])
        .success()
        .stdout;
    assert!(
        table.contains("| client | server | what it means |\n|---|---|---|\n"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("| a2 SELECT INBOX |  | "))
        .expect(&table);
    assert!(row.len() > "| a2 SELECT INBOX |  |  |".len(), "{row}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("|  | a2 OK [READ-WRITE]")),
        "{table}"
    );
    // --table needs --explain.
    assert_ne!(s.admin(&["trace", "show", &id, "--table"]).code, 0);
}

#[test]
fn condstore_and_qresync_rfc7162() {
    let s = Server::start("");
    deliver(&s, "one", "1\r\n");
    deliver(&s, "two", "2\r\n");
    deliver(&s, "three", "3\r\n");
    let mut c = Imap::logged_in(&s, "alice");
    let u = c.ok("a1", "SELECT INBOX (CONDSTORE)");
    let hms = find(&u, "[HIGHESTMODSEQ ");
    let highest: u64 = hms
        .split("HIGHESTMODSEQ ")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // FETCH MODSEQ and CHANGEDSINCE (which implies MODSEQ).
    let u = c.ok("a2", "FETCH 1:* (MODSEQ)");
    assert_eq!(u.len(), 3, "{u:?}");
    let u = c.ok("a3", "STORE 2 +FLAGS (\\Flagged)");
    let m: u64 = u[0]
        .split("MODSEQ (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(m > highest, "{u:?}");
    assert_eq!(
        u[0],
        format!("* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ ({m}))\r\n")
    );
    let u = c.ok("a4", &format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"));
    assert_eq!(
        u,
        vec![format!(
            "* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ ({m}))\r\n"
        )]
    );
    // Conditional STORE: message 2 changed after `highest`, so it fails.
    let (u, t) = c.cmd(
        "a5",
        &format!("STORE 1:2 (UNCHANGEDSINCE {highest}) +FLAGS.SILENT (\\Seen)"),
    );
    assert!(t.starts_with("a5 OK [MODIFIED 2]"), "{t}");
    assert_eq!(
        u.len(),
        1,
        "MODSEQ of the changed message even if .SILENT: {u:?}"
    );
    assert!(u[0].starts_with("* 1 FETCH (MODSEQ ("), "{u:?}");
    let u = c.ok("a6", &format!("SEARCH MODSEQ {}", highest + 1));
    assert!(u[0].starts_with("* SEARCH 1 2 (MODSEQ "), "{u:?}");
    // RFC 7162 §3.1.5 with ESEARCH (RFC 4731): MODSEQ of what is returned
    // (the highest of all matches; of MIN and MAX alone when only they are
    // asked for), and none when the search did not use MODSEQ.
    let modseq_of = |n: u32, c: &mut Imap| -> u64 {
        let u = c.ok("m", &format!("FETCH {n} (MODSEQ)"));
        u[0].split("MODSEQ (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (m1, m2) = (modseq_of(1, &mut c), modseq_of(2, &mut c));
    let u = c.ok("e1", "SEARCH RETURN (ALL) MODSEQ 1");
    assert_eq!(
        u,
        [format!(
            "* ESEARCH (TAG \"e1\") ALL 1:3 MODSEQ {}\r\n",
            m1.max(m2).max(modseq_of(3, &mut c))
        )]
    );
    let u = c.ok("e2", "SEARCH RETURN (MIN) MODSEQ 1");
    assert_eq!(u, [format!("* ESEARCH (TAG \"e2\") MIN 1 MODSEQ {m1}\r\n")]);
    let u = c.ok("e3", "UID SEARCH RETURN (COUNT) MODSEQ 1");
    assert!(
        u[0].starts_with("* ESEARCH (TAG \"e3\") UID COUNT 3 MODSEQ "),
        "{u:?}"
    );
    let u = c.ok("e4", "SEARCH RETURN (MIN MAX) ALL");
    assert_eq!(u, ["* ESEARCH (TAG \"e4\") MIN 1 MAX 3\r\n"]);
    let u = c.ok(
        "e5",
        &format!("SEARCH RETURN (ALL) MODSEQ {}", u64::MAX / 2),
    );
    assert_eq!(u, ["* ESEARCH (TAG \"e5\")\r\n"], "no match, no MODSEQ");
    let u = c.ok("a7", "STATUS INBOX (HIGHESTMODSEQ MESSAGES)");
    assert!(u[0].contains("HIGHESTMODSEQ "), "{u:?}");

    // QRESYNC: a second client that was here at `highest`.
    c.ok("a8", "STORE 3 +FLAGS.SILENT (\\Deleted)");
    c.ok("a9", "EXPUNGE");
    let mut q = Imap::logged_in(&s, "alice");
    let (_, t) = q.cmd("q0", "SELECT INBOX (QRESYNC (1 1))");
    assert!(t.starts_with("q0 BAD"), "needs ENABLE QRESYNC first: {t}");
    let u = q.ok("q1", "ENABLE QRESYNC");
    assert_eq!(u, vec!["* ENABLED QRESYNC\r\n"]);
    let uv = {
        let u = q.ok("q2", "STATUS INBOX (UIDVALIDITY)");
        u[0].split("UIDVALIDITY ")
            .nth(1)
            .unwrap()
            .trim_end_matches(")\r\n")
            .to_string()
    };
    let u = q.ok(
        "q3",
        &format!("SELECT INBOX (QRESYNC ({uv} {highest} 1:3))"),
    );
    find(&u, "* VANISHED (EARLIER) 3");
    let f = find(&u, "* 1 FETCH (UID 1 FLAGS");
    assert!(f.contains("MODSEQ ("), "{f}");
    find(&u, "* 2 FETCH (UID 2 FLAGS (\\Flagged)");
    // With QRESYNC enabled, expunges are announced as VANISHED.
    c.ok("a10", "STORE 1 +FLAGS.SILENT (\\Deleted)");
    c.ok("a11", "EXPUNGE");
    let u = q.ok("q4", "NOOP");
    assert_eq!(u, vec!["* VANISHED 1\r\n"]);
    let u = q.ok(
        "q5",
        &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest} VANISHED)"),
    );
    assert_eq!(u[0], "* VANISHED (EARLIER) 1,3\r\n", "{u:?}");
    // A new SELECT closes the old mailbox first.
    let u = q.ok("q6", "EXAMINE Archive");
    assert_eq!(u[0], "* OK [CLOSED] previous mailbox closed\r\n");
}

#[test]
fn esearch_and_searchres_rfc4731_rfc5182() {
    let s = Server::start("");
    for i in 1..=5 {
        deliver(&s, &format!("m{i}"), "x\r\n");
    }
    let mut c = Imap::logged_in(&s, "alice");
    c.ok("a1", "SELECT INBOX");
    c.ok("a2", "STORE 2,4:5 +FLAGS (\\Flagged)");
    let u = c.ok("a3", "SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED");
    assert_eq!(
        u,
        vec!["* ESEARCH (TAG \"a3\") MIN 2 MAX 5 COUNT 3 ALL 2,4:5\r\n"]
    );
    let u = c.ok("a4", "UID SEARCH RETURN () UNFLAGGED");
    assert_eq!(u, vec!["* ESEARCH (TAG \"a4\") UID ALL 1,3\r\n"]);
    let u = c.ok("a5", "SEARCH RETURN (COUNT) DELETED");
    assert_eq!(u, vec!["* ESEARCH (TAG \"a5\") COUNT 0\r\n"]);
    // SAVE, then use $ (RFC 5182).
    let u = c.ok("a6", "SEARCH RETURN (SAVE) FLAGGED");
    assert!(u.is_empty(), "{u:?}");
    let u = c.ok("a7", "FETCH $ (UID)");
    assert_eq!(
        u,
        vec![
            "* 2 FETCH (UID 2)\r\n",
            "* 4 FETCH (UID 4)\r\n",
            "* 5 FETCH (UID 5)\r\n"
        ]
    );
    c.ok("a8", "STORE $ +FLAGS.SILENT (\\Deleted)");
    c.ok("a9", "EXPUNGE");
    let u = c.ok("a10", "SEARCH $");
    assert_eq!(u, vec!["* SEARCH\r\n"], "expunged messages leave $");
    let u = c.ok("a11", "SEARCH RETURN (SAVE MIN) ALL");
    assert_eq!(u, vec!["* ESEARCH (TAG \"a11\") MIN 1\r\n"]);
    let u = c.ok("a12", "UID FETCH $ (UID)");
    assert_eq!(u, vec!["* 1 FETCH (UID 1)\r\n"]);
}

#[test]
fn list_extended_list_status_special_use_quota_within() {
    let s = Server::start("");
    deliver(&s, "one", "1\r\n");
    assert_eq!(
        s.admin(&["user", "quota", "alice@example.test", "10M"])
            .code,
        0,
        "{}",
        s.admin(&["user", "quota", "--help"]).stdout
    );
    let mut c = Imap::logged_in(&s, "alice");
    c.ok("a1", "CREATE Work/Reports");
    c.ok("a2", "SUBSCRIBE Work/Reports");
    c.ok("a3", "SUBSCRIBE Gone/Box");
    // RFC 5258 §3: SUBSCRIBED selection lists subscriptions, even gone ones.
    let u = c.ok("a4", "LIST (SUBSCRIBED) \"\" \"*\"");
    find(&u, "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"INBOX\"");
    find(
        &u,
        "* LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" \"Gone/Box\"",
    );
    assert!(!u.iter().any(|l| l.ends_with("\"Work\"\r\n")), "{u:?}");
    // RECURSIVEMATCH: a parent whose child is subscribed gets CHILDINFO.
    let u = c.ok("a5", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"");
    find(&u, "\"Work\" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
    // RFC 5258 §3.5, answered as Dovecot 2.3 answers (checked side by
    // side): Foo subscribed with a subscribed grandchild, Qux not with a
    // subscribed child, Solo subscribed alone.
    for m in ["Foo", "Foo/Bar", "Foo/Bar/Baz", "Qux", "Qux/Sub", "Solo"] {
        c.ok("m", &format!("CREATE {m}"));
    }
    for m in ["Foo", "Foo/Bar/Baz", "Qux/Sub", "Solo"] {
        c.ok("m", &format!("SUBSCRIBE {m}"));
    }
    let childinfo = " (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n";
    let lines = |u: Vec<String>| -> Vec<String> {
        u.into_iter()
            .filter(|l| {
                ["Foo", "Qux", "Solo"]
                    .iter()
                    .any(|m| l.contains(&format!("\"{m}")))
            })
            .collect()
    };
    let u = lines(c.ok("r1", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\""));
    assert_eq!(
        u,
        [
            format!("* LIST (\\HasChildren \\Subscribed) \"/\" \"Foo\"{childinfo}"),
            format!("* LIST (\\HasChildren) \"/\" \"Qux\"{childinfo}"),
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Solo\"\r\n".to_string(),
        ]
    );
    // `*` reaches every subscribed descendant: Foo/Bar and Qux are not
    // listed for them, Foo keeps its CHILDINFO.
    let u = lines(c.ok("r2", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"*\""));
    assert_eq!(
        u,
        [
            format!("* LIST (\\HasChildren \\Subscribed) \"/\" \"Foo\"{childinfo}"),
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Foo/Bar/Baz\"\r\n".to_string(),
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Qux/Sub\"\r\n".to_string(),
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Solo\"\r\n".to_string(),
        ]
    );
    let u = lines(c.ok("r3", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"Foo/%\""));
    assert_eq!(
        u,
        [format!(
            "* LIST (\\HasChildren) \"/\" \"Foo/Bar\"{childinfo}"
        )]
    );
    // Without RECURSIVEMATCH: no CHILDINFO, Qux not listed.
    let u = lines(c.ok("r4", "LIST (SUBSCRIBED) \"\" \"%\""));
    assert_eq!(
        u,
        [
            "* LIST (\\HasChildren \\Subscribed) \"/\" \"Foo\"\r\n".to_string(),
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Solo\"\r\n".to_string(),
        ]
    );
    // Several patterns, RETURN (SPECIAL-USE STATUS …) (RFC 5819).
    let u = c.ok(
        "a6",
        "LIST \"\" (INBOX Sent) RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))",
    );
    find(&u, "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"");
    find(&u, "* STATUS \"INBOX\" (MESSAGES 1 UNSEEN 1 SIZE ");
    find(&u, "* STATUS \"Sent\" (MESSAGES 0 UNSEEN 0 SIZE 0)");
    // RFC 6154 §5.1: only special-use mailboxes.
    let u = c.ok("a7", "LIST (SPECIAL-USE) \"\" *");
    assert_eq!(u.len(), 5, "{u:?}");
    // CREATE-SPECIAL-USE (RFC 6154 §3).
    c.ok("a8", "CREATE Gesendet (USE (\\Sent))");
    let u = c.ok("a9", "LIST \"\" Gesendet");
    find(&u, "\\Sent");
    let (_, t) = c.cmd("a10", "CREATE Alles (USE (\\All))");
    assert!(t.starts_with("a10 NO [USEATTR]"), "{t}");
    // QUOTA (RFC 9208): one root per account, STORAGE in KiB.
    let u = c.ok("a11", "GETQUOTAROOT INBOX");
    assert_eq!(u[0], "* QUOTAROOT \"INBOX\" \"\"\r\n");
    assert!(u[1].starts_with("* QUOTA \"\" (STORAGE 1 10240)"), "{u:?}");
    let (_, t) = c.cmd("a12", "SETQUOTA \"\" (STORAGE 1)");
    assert!(t.starts_with("a12 NO"), "{t}");
    let u = c.ok("a13", "STATUS INBOX (DELETED DELETED-STORAGE SIZE)");
    find(&u, "(DELETED 0 DELETED-STORAGE 0 SIZE ");
    // WITHIN (RFC 5032).
    c.ok("a14", "SELECT INBOX");
    let u = c.ok("a15", "SEARCH YOUNGER 3600");
    assert_eq!(u, vec!["* SEARCH 1\r\n"]);
    let u = c.ok("a16", "SEARCH OLDER 3600");
    assert_eq!(u, vec!["* SEARCH\r\n"]);
    // Over quota: APPEND fails with OVERQUOTA (RFC 9208 §7).
    let u = c.ok("a16b", "STATUS INBOX (SIZE)");
    let size: u64 = u[0]
        .split("SIZE ")
        .nth(1)
        .unwrap()
        .trim_end_matches(")\r\n")
        .parse()
        .unwrap();
    let quota = (size + size / 2).to_string();
    s.admin(&["user", "quota", "alice@example.test", &quota])
        .success();
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(2000));
    let (_, t) = c.cmd("a17", &format!("APPEND INBOX {{{}+}}\r\n{big}", big.len()));
    assert!(t.starts_with("a17 NO [OVERQUOTA]"), "{t}");
    let (_, t) = c.cmd("a18", "COPY 1 Archive");
    assert!(t.starts_with("a18 NO [OVERQUOTA]"), "{t}");
}

#[test]
fn binary_multiappend_utf8_and_imap4rev2() {
    let s = Server::start("");
    let mime = "From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n";
    let mut c = Imap::logged_in(&s, "alice");
    // MULTIAPPEND (RFC 3502): both or neither; APPENDUID with a UID set.
    let (_, t) = c.cmd(
        "a1",
        &format!(
            "APPEND INBOX (\\Seen) {{{}+}}\r\n{mime} {{12+}}\r\nSubject: 2\r\n",
            mime.len()
        ),
    );
    assert!(
        t.starts_with("a1 OK [APPENDUID ") && t.contains(" 1:2]"),
        "{t}"
    );
    c.ok("a2", "SELECT INBOX");
    // BINARY (RFC 3516): decoded parts, literal8 for NUL bytes, sizes.
    let u = c.ok(
        "a3",
        "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2])",
    );
    let f = &u[0];
    assert!(f.contains("BINARY[1] {7}\r\nGrüße"), "{f}");
    assert!(f.contains("BINARY.SIZE[2] 3"), "{f}");
    assert!(f.contains("BINARY[2] ~{3}\r\n\u{0}\u{1}\u{2}"), "{f:?}");
    let u = c.ok("a4", "FETCH 1 (BINARY.PEEK[1]<2.3>)");
    assert!(u[0].contains("BINARY[1]<2> {3}\r\nü"), "{u:?}");
    // RFC 3516 §4.2: BINARY.SIZE is the decoded size, for
    // quoted-printable as for base64.
    let u = c.ok("a4b", "FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2])");
    assert!(
        u[0].contains("BINARY.SIZE[1] 7") && u[0].contains("BINARY.SIZE[2] 3"),
        "{u:?}"
    );
    // RFC 3516 §4.4: APPEND with a literal8 carries binary content (NUL
    // octets in a `binary` part); BINARY gives it back as a literal8.
    let bin = "From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\u{0}\n\u{1}\nx\r\n--b--\r\n";
    let (_, t) = c.cmd("a4c", &format!("APPEND INBOX ~{{{}+}}\r\n{bin}", bin.len()));
    assert!(t.starts_with("a4c OK [APPENDUID "), "{t}");
    let n = t
        .split_whitespace()
        .nth(4)
        .unwrap()
        .trim_end_matches(']')
        .to_string();
    let u = c.ok(
        "a4d",
        &format!("UID FETCH {n} (BINARY.PEEK[1] BINARY.SIZE[1])"),
    );
    let f = u.iter().find(|l| l.contains("BINARY[1]")).unwrap();
    // Bare LFs in binary content are not turned into CRLF.
    assert!(f.contains("BINARY[1] ~{5}\r\n\u{0}\n\u{1}\nx"), "{f:?}");
    assert!(f.contains("BINARY.SIZE[1] 5"), "{f:?}");
    c.ok("a4e", &format!("UID STORE {n} +FLAGS.SILENT (\\Deleted)"));
    c.ok("a4f", &format!("UID EXPUNGE {n}"));
    // UTF8=ACCEPT (RFC 6855): UTF-8 names on the wire, APPEND UTF8.
    let (_, t) = c.cmd("a5", "APPEND INBOX UTF8 (~{3+}\r\nx\r\n)");
    assert!(t.starts_with("a5 BAD"), "needs ENABLE: {t}");
    let (_, t) = c.cmd("a5b", "ENABLE UTF8=ACCEPT");
    assert!(t.starts_with("a5b BAD ENABLE is only valid before"), "{t}");
    c.ok("a5c", "UNSELECT");
    let u = c.ok("a6", "ENABLE UTF8=ACCEPT");
    assert_eq!(u, vec!["* ENABLED UTF8=ACCEPT\r\n"]);
    c.ok("a7", "CREATE \"Entwürfe\"");
    let u = c.ok("a8", "LIST \"\" \"Entw*\"");
    assert_eq!(u, vec!["* LIST (\\HasNoChildren) \"/\" \"Entwürfe\"\r\n"]);
    c.ok(
        "a9",
        "APPEND \"Entwürfe\" UTF8 (~{23+}\r\nSubject: Grüße\r\n\r\nx\r\n)",
    );
    // IMAP4rev2 (RFC 9051): no \Recent, ESEARCH for SEARCH, LIST on SELECT.
    let mut r = Imap::connect(s.addr("imap"));
    let caps = r.ok("r0", "CAPABILITY");
    assert!(caps[0].contains(" IMAP4rev2 "), "{caps:?}");
    r.login("alice@example.test", "alice-pw");
    let u = r.ok("r1", "ENABLE IMAP4rev2");
    assert_eq!(u, vec!["* ENABLED IMAP4rev2\r\n"]);
    let u = r.ok("r2", "SELECT INBOX");
    assert!(
        !u.iter()
            .any(|l| l.contains("RECENT") || l.contains("UNSEEN")),
        "{u:?}"
    );
    find(&u, "* LIST () \"/\" \"INBOX\"");
    let u = r.ok("r3", "SEARCH ALL");
    assert_eq!(u, vec!["* ESEARCH (TAG \"r3\") ALL 1:2\r\n"]);
    let u = r.ok("r4", "UID SEARCH DELETED");
    assert_eq!(u, vec!["* ESEARCH (TAG \"r4\") UID\r\n"]);
    let u = r.ok("r5", "FETCH 2 (FLAGS)");
    assert_eq!(u, vec!["* 2 FETCH (FLAGS ())\r\n"]);
    let u = r.ok("r6", "LIST \"\" \"Entwürfe\"");
    assert_eq!(u, vec!["* LIST (\\HasNoChildren) \"/\" \"Entwürfe\"\r\n"]);
    let u = r.ok("r7", "STATUS \"Entwürfe\" (MESSAGES DELETED SIZE)");
    assert!(
        u[0].starts_with("* STATUS \"Entwürfe\" (MESSAGES 1 DELETED 0 SIZE "),
        "{u:?}"
    );
    let u = r.ok("r8", "EXAMINE \"Entwürfe\"");
    assert_eq!(u[0], "* OK [CLOSED] previous mailbox closed\r\n");
}

#[test]
fn sort_and_thread_rfc5256() {
    let s = Server::start("");
    let msgs = [
        (
            "<a@x>",
            "",
            "Hello",
            "Mon, 2 Jan 2023 10:00:00 +0000",
            "Zed <z@x>",
        ),
        (
            "<b@x>",
            "<a@x>",
            "Re: Hello",
            "Mon, 2 Jan 2023 11:00:00 +0000",
            "amy <a@x>",
        ),
        (
            "<c@x>",
            "",
            "Another",
            "Sun, 1 Jan 2023 10:00:00 +0000",
            "Bob <b@x>",
        ),
        (
            "<d@x>",
            "<a@x> <b@x>",
            "Re: Re: Hello",
            "Mon, 2 Jan 2023 12:00:00 +0000",
            "Cy <c@x>",
        ),
    ];
    for (id, refs, subject, date, from) in msgs {
        let refs = if refs.is_empty() {
            String::new()
        } else {
            format!("References: {refs}\r\n")
        };
        let m = format!(
            "From: {from}\r\nDate: {date}\r\nSubject: {subject}\r\nMessage-ID: {id}\r\n{refs}\r\nbody\r\n"
        );
        s.deliver("x@remote.test", &["alice@example.test"], m.as_bytes())
            .success();
    }
    let mut c = Imap::logged_in(&s, "alice");
    c.ok("a1", "SELECT INBOX");
    // Arrival is the INTERNALDATE, in seconds: deliveries in the same
    // second tie, and ties keep mailbox order even with REVERSE (RFC 5256
    // §3). The four deliveries may straddle a second, so the expected order
    // comes from the dates the server reports.
    let mut arrivals: Vec<(i64, usize)> = c
        .ok("d", "FETCH 1:4 (INTERNALDATE)")
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let date = l.split('"').nth(1).unwrap();
            let secs = postamt_imap::command::parse_date_time(date.as_bytes()).unwrap();
            (secs, i + 1)
        })
        .collect();
    arrivals.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let reverse_arrival: String = arrivals.iter().map(|a| format!(" {}", a.1)).collect();
    let reverse_arrival = format!("* SORT{reverse_arrival}");
    for (cmd, want) in [
        ("SORT (DATE) UTF-8 ALL", "* SORT 3 1 2 4"),
        ("SORT (SUBJECT DATE) UTF-8 ALL", "* SORT 3 1 2 4"),
        ("SORT (REVERSE ARRIVAL) UTF-8 ALL", reverse_arrival.as_str()),
        ("SORT (FROM) UTF-8 ALL", "* SORT 2 3 4 1"),
        ("SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 2 3 4 1"),
        (
            "UID SORT (REVERSE DATE) UTF-8 NOT SUBJECT another",
            "* SORT 4 2 1",
        ),
        ("THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (3)(1 (2)(4))"),
        ("THREAD REFERENCES UTF-8 ALL", "* THREAD (3)(1 2 4)"),
        ("UID THREAD REFERENCES UTF-8 SUBJECT nothing", "* THREAD"),
    ] {
        let u = c.ok("t", cmd);
        assert_eq!(u, vec![format!("{want}\r\n")], "{cmd}");
    }
}

#[test]
fn invalid_mailbox_names_and_wrong_states() {
    let s = Server::start("");
    let mut c = Imap::connect(s.addr("imap"));
    // Commands in the wrong state.
    for cmd in ["CREATE x", "LIST \"\" *", "IDLE", "ENABLE CONDSTORE"] {
        let (_, t) = c.cmd("w", cmd);
        assert!(t.starts_with("w BAD log in first"), "{cmd}: {t}");
    }
    // Before login no literal may carry a message (pre-auth budget).
    let (_, t) = c.cmd("w", "APPEND INBOX {1+}\r\nx");
    assert!(t.starts_with("w BAD [TOOBIG]"), "{t}");
    c.login("alice@example.test", "alice-pw");
    for cmd in [
        "FETCH 1 FLAGS",
        "STORE 1 FLAGS ()",
        "EXPUNGE",
        "CLOSE",
        "UID SEARCH ALL",
        "MOVE 1 x",
    ] {
        let (_, t) = c.cmd("w", cmd);
        assert!(t.starts_with("w BAD select a mailbox first"), "{cmd}: {t}");
    }
    let long = "n".repeat(10 * 1024);
    for (cmd, want) in [
        ("CREATE ../etc".to_string(), "NO [CANNOT]"),
        ("CREATE a/./b".to_string(), "NO [CANNOT]"),
        (
            "CREATE \"&Jjo\"".to_string(),
            "NO [CANNOT] mailbox name is not valid modified UTF-7",
        ),
        ("CREATE \"&AGE-\"".to_string(), "NO [CANNOT]"),
        ("CREATE {3+}\r\na\0b".to_string(), "NO [CANNOT]"),
        ("CREATE \"a\0b\"".to_string(), "BAD NUL in quoted string"),
        (
            format!("CREATE {{{}+}}\r\n{long}", long.len()),
            "NO [CANNOT]",
        ),
        ("CREATE /x".to_string(), "NO [CANNOT]"),
        ("CREATE a//b".to_string(), "NO [CANNOT]"),
        ("CREATE INBOX".to_string(), "NO [ALREADYEXISTS]"),
        ("CREATE Sent".to_string(), "NO [ALREADYEXISTS]"),
        ("RENAME Nope Other".to_string(), "NO [NONEXISTENT]"),
        ("SELECT \"&Jjo\"".to_string(), "NO [CANNOT]"),
        ("DELETE Nope".to_string(), "NO [NONEXISTENT]"),
    ] {
        let (_, t) = c.cmd("n", &cmd);
        assert!(
            t.starts_with(&format!("n {want}")),
            "{}: {t}",
            &cmd[..cmd.len().min(40)]
        );
    }
    // A 70 KB name on one line is over the line limit: BAD, session goes on.
    let (_, t) = c.cmd("l", &format!("CREATE {}", "n".repeat(70 * 1024)));
    assert!(t.starts_with("l BAD [TOOBIG]"), "{t}");
    // RENAME INBOX moves its messages (RFC 9051 §6.3.6).
    deliver(&s, "in inbox", "x\r\n");
    c.ok("r1", "RENAME INBOX Old-Inbox");
    let u = c.ok("r2", "STATUS Old-Inbox (MESSAGES)");
    find(&u, "MESSAGES 1");
    let u = c.ok("r3", "STATUS INBOX (MESSAGES)");
    find(&u, "MESSAGES 0");
    // The selected mailbox deleted by another session: CLOSED.
    c.ok("d1", "SELECT Old-Inbox");
    let mut other = Imap::logged_in(&s, "alice");
    other.ok("o1", "DELETE Old-Inbox");
    let u = c.ok("d2", "NOOP");
    assert_eq!(
        u,
        vec!["* OK [CLOSED] the selected mailbox was deleted\r\n"]
    );
    let (_, t) = c.cmd("d3", "FETCH 1 FLAGS");
    assert!(t.starts_with("d3 BAD select a mailbox first"), "{t}");
}

#[test]
fn hostile_messages_and_sessions_do_not_take_the_server_down() {
    let s = Server::start("");
    // 1,000 nested multiparts (about 70 KB): valid MIME, stored and served.
    let mut m = b"Content-Type: text/plain\r\n\r\nleaf\r\n".to_vec();
    for i in 0..1000 {
        let b = format!("b{i}");
        let mut outer = format!("Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n--{b}\r\n")
            .into_bytes();
        outer.extend_from_slice(&m);
        outer.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        m = outer;
    }
    let mut msg = b"Subject: nested\r\n".to_vec();
    msg.extend_from_slice(&m);
    s.deliver("x@remote.test", &["alice@example.test"], &msg)
        .success();
    // A References list of 10,000 ids.
    let refs: Vec<String> = (0..10_000).map(|i| format!("<q{i}@x>")).collect();
    let msg = format!(
        "Message-ID: <h@x>\r\nReferences: {}\r\nSubject: refs\r\n\r\nx\r\n",
        refs.join(" ")
    );
    s.deliver("x@remote.test", &["alice@example.test"], msg.as_bytes())
        .success();
    let mut c = Imap::logged_in(&s, "alice");
    c.ok("a1", "SELECT INBOX");
    let u = c.ok("a2", "FETCH 1 (BODYSTRUCTURE BODY.PEEK[])");
    assert!(u[0].contains("BODYSTRUCTURE ((("), "{}", &u[0][..100]);
    let u = c.ok("a3", "THREAD REFERENCES UTF-8 ALL");
    assert!(u[0].starts_with("* THREAD "), "{u:?}");
    c.ok("a4", "SORT (SUBJECT) UTF-8 ALL");
    // STARTTLS after login is refused (RFC 9051 §6.2.1), and no longer
    // announced; before login it is.
    let (_, t) = c.cmd("a5", "STARTTLS");
    assert!(t.starts_with("a5 BAD"), "{t}");
    let caps = c.ok("a5c", "CAPABILITY");
    assert!(!caps[0].contains("STARTTLS"), "{caps:?}");
    let mut fresh = Imap::connect(s.addr("imap"));
    let caps = fresh.ok("f1", "CAPABILITY");
    assert!(caps[0].contains(" STARTTLS"), "{caps:?}");
    // The selected mailbox deleted by another session while in IDLE.
    c.ok("a6", "CREATE doomed");
    c.ok("a7", "SELECT doomed");
    c.c.send(b"a8 IDLE\r\n");
    assert_eq!(c.c.line(), "+ idling\r\n");
    let mut d = Imap::logged_in(&s, "alice");
    d.ok("d1", "DELETE doomed");
    assert_eq!(
        c.c.line(),
        "* OK [CLOSED] the selected mailbox was deleted\r\n"
    );
    c.c.send(b"DONE\r\n");
    c.until("a8");
    let (_, t) = c.cmd("a9", "FETCH 1 FLAGS");
    assert!(t.starts_with("a9 BAD select a mailbox first"), "{t}");
    // 50,000 encapsulated messages over SMTP (mail-parser recurses into
    // each): accepted, described from its header, the server lives.
    let mut smtp = smtp(&s, "smtp");
    smtp.cmd("EHLO client.test", "250");
    while !smtp.line().starts_with("250 ") {}
    smtp.cmd("MAIL FROM:<x@remote.test>", "250");
    smtp.cmd("RCPT TO:<alice@example.test>", "250");
    smtp.cmd("DATA", "354");
    let mut deep = b"Subject: r\r\n".to_vec();
    for _ in 0..50_000 {
        deep.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    deep.extend_from_slice(b"Subject: inner\r\n\r\nbody\r\n.\r\n");
    smtp.send(&deep);
    assert!(smtp.line().starts_with("250 "));
    // The server is still there for everyone.
    let mut e = Imap::logged_in(&s, "alice");
    e.ok("e1", "SELECT INBOX");
    let u = e.ok("e2", "FETCH 3 (BODYSTRUCTURE)");
    assert!(
        u[0].contains("\"message\" \"rfc822\""),
        "{}",
        &u[0][..u[0].len().min(200)]
    );
}

/// The verified-credentials cache (`[auth] cache_ttl`, as Dovecot's
/// auth_cache): repeated logins work, and it never outlives the password:
/// after `user passwd` (another process) the old password is refused and
/// the new one works; after `user del` nothing logs in; a wrong password
/// is refused every time.
#[test]
fn login_cache_never_outlives_the_password() {
    let s = Server::start("");
    let login = |pw: &str| {
        let mut c = Imap::connect(s.addr("imap"));
        let (_, t) = c.cmd("l", &format!("LOGIN bob@example.test {pw}"));
        t
    };
    for _ in 0..3 {
        assert!(login("bob-pw").starts_with("l OK"));
        assert!(login("wrong").starts_with("l NO"));
    }
    s.admin_stdin(
        &["user", "passwd", "bob@example.test", "--password-stdin"],
        "new-pw\n",
    )
    .success();
    assert!(
        login("bob-pw").starts_with("l NO"),
        "the old password is gone"
    );
    assert!(login("new-pw").starts_with("l OK"));
    assert!(login("new-pw").starts_with("l OK"));
    // POP3 and SMTP AUTH go through the same check.
    let mut p = pop3(&s);
    p.login("bob@example.test", "new-pw");
    s.admin(&["user", "del", "bob@example.test"]).success();
    assert!(login("new-pw").starts_with("l NO"), "a deleted account");
}

/// Keyword bounds (RFC 5530 §3 LIMIT): a STORE naming more keywords than a
/// message may carry, or one too long, or taking a message past the limit,
/// is refused with NO [LIMIT]; a huge STORE line is BAD [TOOBIG]; the
/// session goes on and the message keeps its flags.
#[test]
fn keyword_limits_and_a_huge_store() {
    let s = Server::start("");
    deliver(&s, "kw", "x\r\n");
    let mut c = Imap::logged_in(&s, "alice");
    c.ok("s", "SELECT INBOX");
    let many: Vec<String> = (0..129).map(|i| format!("$k{i}")).collect();
    let (_, t) = c.cmd("a", &format!("STORE 1 +FLAGS ({})", many.join(" ")));
    assert!(t.starts_with("a NO [LIMIT]"), "{t}");
    let (_, t) = c.cmd("b", &format!("STORE 1 +FLAGS ({})", "k".repeat(129)));
    assert!(t.starts_with("b NO [LIMIT]"), "{t}");
    c.ok("c", &format!("STORE 1 +FLAGS ({})", many[..128].join(" ")));
    let (_, t) = c.cmd("d", "STORE 1 +FLAGS ($one-more)");
    assert!(t.starts_with("d NO [LIMIT]"), "{t}");
    // Replacing is fine.
    c.ok("e", "STORE 1 FLAGS ($one-more)");
    // A million keywords do not fit a command line.
    let huge: String = (0..1_000_000).map(|i| format!(" $x{i}")).collect();
    let (_, t) = c.cmd("f", &format!("STORE 1 +FLAGS ({huge})"));
    assert!(t.starts_with("f BAD [TOOBIG]"), "{}", &t[..t.len().min(80)]);
    let u = c.ok("g", "FETCH 1 (FLAGS)");
    assert!(u[0].contains("$one-more))"), "{u:?}");
}

/// SEARCH BODY and TEXT through the full-text index (the server's indexer
/// fills `store.db.search.db` in the background): once every content is
/// indexed, the answers are the exact substring matches — case-insensitive,
/// inside a text attachment and an encapsulated message, a needle only in
/// the delivery's Delivered-To field for TEXT, NOT, OR, a needle too short
/// for the index — and a message delivered after that (not indexed yet)
/// is found as well.
#[test]
fn search_body_and_text_through_the_index() {
    if !python_ready() {
        return;
    }
    let s = Server::start("");
    deliver(&s, "plain", "The Cafeteria opens at noon.\r\n");
    s.deliver(
        "x@remote.test",
        &["alice@example.test"],
        b"Subject: bounce\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nnot delivered\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\nattached minutes\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: Quarterly numbers\r\n\r\nthe returned text\r\n--b--\r\n",
    )
    .success();
    for i in 0..19 {
        deliver(&s, &format!("filler {i}"), "nothing to see\r\n");
    }
    s.deliver(
        "x@remote.test",
        &["alice@example.test"],
        "Subject: Gr\u{fc}\u{df}e\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\u{fc}\u{df}e aus \u{130}stanbul, GRO\u{1e9e}E Freude\r\n".as_bytes(),
    )
    .success();
    // Wait (bounded) until the indexer has every content (SQLite's index
    // fills in the background).
    let db = s.dir.path().join("postamt.db");
    let mut indexed = common::on_postgres();
    for _ in 0..200 {
        if indexed {
            break;
        }
        let out = run_with_stdin(
            Command::new("python3").args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); print(c.execute('select count(*) from blobs where indexed=0').fetchone()[0])",
                db.to_str().unwrap(),
            ]),
            b"",
        );
        if out.stdout.trim() == "0" {
            indexed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(indexed, "the indexer did not catch up");
    let mut c = Imap::logged_in(&s, "alice");
    c.ok("s", "SELECT INBOX");
    for (cmd, want) in [
        ("SEARCH BODY cafeteria", "* SEARCH 1"),
        ("SEARCH BODY \"attached minutes\"", "* SEARCH 2"),
        ("SEARCH BODY \"returned text\"", "* SEARCH 2"),
        ("SEARCH BODY quarterly", "* SEARCH"),
        ("SEARCH TEXT quarterly", "* SEARCH 2"),
        (
            "SEARCH TEXT \"Delivered-To: alice@example.test\"",
            "* SEARCH 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22",
        ),
        ("SEARCH NOT BODY nothing", "* SEARCH 1 2 22"),
        // Case folded as a scan folds (str::to_lowercase): ẞ is ß, İ is
        // i + U+0307.
        (
            "SEARCH CHARSET UTF-8 BODY {6+}\r\ngro\u{df}e",
            "* SEARCH 22",
        ),
        (
            "SEARCH CHARSET UTF-8 BODY {9+}\r\n\u{130}STANBUL",
            "* SEARCH 22",
        ),
        (
            "SEARCH CHARSET UTF-8 TEXT {7+}\r\nGR\u{dc}\u{df}E",
            "* SEARCH 22",
        ),
        ("SEARCH OR BODY cafeteria BODY minutes", "* SEARCH 1 2"),
        // HEADER with fields not kept at delivery: the index rules out,
        // the message's own header decides (a part's header is not the
        // message's, RFC 9051 §6.4.4).
        ("SEARCH HEADER Content-Type utf-8", "* SEARCH 22"),
        ("SEARCH HEADER Content-Disposition notes", "* SEARCH"),
        ("SEARCH HEADER X-Nothing abc", "* SEARCH"),
        (
            "SEARCH HEADER Delivered-To alice@example",
            "* SEARCH 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22",
        ),
        (
            "SEARCH BODY no",
            "* SEARCH 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21",
        ),
        ("SEARCH BODY nowhere-at-all", "* SEARCH"),
    ] {
        let u = c.ok("q", cmd);
        assert_eq!(u[0].trim_end(), want, "{cmd}");
    }
    deliver(&s, "late", "a late cafeteria note\r\n");
    // `postamt deliver` is another process: the server sees its commit
    // at its next look (bounded wait).
    let mut seen = false;
    for _ in 0..100 {
        if c.ok("n", "NOOP")
            .iter()
            .any(|l| l.starts_with("* 23 EXISTS"))
        {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen, "the late message did not arrive");
    let u = c.ok("q", "SEARCH BODY cafeteria");
    assert_eq!(
        u[0].trim_end(),
        "* SEARCH 1 23",
        "not indexed yet, still found"
    );
}

/// SUBJECT (and FROM, TO, CC, BCC) answered from the values kept at
/// delivery, cached per mailbox across sessions: a message delivered after
/// a search is found by the next one, an expunged one is not.
#[test]
fn search_header_keys_follow_new_and_expunged_messages() {
    let s = Server::start("");
    deliver(&s, "budget one", "x\r\n");
    let mut c = Imap::logged_in(&s, "alice");
    c.ok("s", "SELECT INBOX");
    assert_eq!(
        c.ok("a", "SEARCH SUBJECT budget")[0].trim_end(),
        "* SEARCH 1"
    );
    let mut other = Imap::logged_in(&s, "alice");
    other.ok("s", "SELECT INBOX");
    other.ok(
        "p",
        "APPEND INBOX {37+}\r\nSubject: BUDGET two\r\nFrom: a@b.test\r\n\r\n",
    );
    c.ok("n", "NOOP");
    assert_eq!(
        c.ok("b", "SEARCH SUBJECT budget")[0].trim_end(),
        "* SEARCH 1 2"
    );
    assert_eq!(
        c.ok("c", "SEARCH FROM \"<a@b.test>\"")[0].trim_end(),
        "* SEARCH 2"
    );
    other.ok("d", "STORE 1 +FLAGS.SILENT (\\Deleted)");
    other.ok("e", "EXPUNGE");
    c.ok("n", "NOOP");
    assert_eq!(
        c.ok("f", "SEARCH SUBJECT budget")[0].trim_end(),
        "* SEARCH 1"
    );
}

/// A FETCH larger than one store read (content is read about 4 MB at a
/// time, the next chunk while the last is written): every message comes
/// back whole, once, in order (RFC 9051 §6.4.5).
#[test]
fn a_fetch_of_several_chunks_returns_every_message_whole() {
    let s = Server::start("");
    let line = "x".repeat(998);
    let body: String = std::iter::repeat_n(format!("{line}\r\n"), 1500).collect();
    for i in 0..5 {
        let msg = format!("Subject: big {i}\r\n\r\nstart-{i}\r\n{body}end-{i}\r\n");
        s.deliver("x@remote.test", &["alice@example.test"], msg.as_bytes())
            .success();
    }
    let mut c = Imap::logged_in(&s, "alice");
    c.ok("s", "SELECT INBOX");
    let u = c.ok("f", "FETCH 1:* (UID BODY.PEEK[TEXT])").concat();
    let mut at = 0;
    for i in 0..5 {
        let head = format!("* {} FETCH (UID {} BODY[TEXT] {{", i + 1, i + 1);
        let found = u[at..].find(&head).map(|p| p + at);
        let Some(p) = found else {
            panic!("no {head:?} after byte {at}")
        };
        let text = format!("start-{i}\r\n{body}end-{i}\r\n");
        let literal = format!("{}}}\r\n{text}", text.len());
        assert!(u[p + head.len()..].starts_with(&literal), "message {i}");
        at = p + head.len() + literal.len();
    }
    assert_eq!(u.matches(" FETCH (").count(), 5);
}
