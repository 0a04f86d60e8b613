//! SMTP, submission and LMTP over TCP against the real binary: typed
//! sessions, smuggling, relay and spoofing attempts, limits.

mod common;

use common::*;

const MSG: &str = "From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nSubject: typed\r\n\r\nHello Alice.\r\n..a line that starts with a dot\r\n";

#[test]
fn hand_typed_session_delivers_byte_identical() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    // Lowercase verbs and the classroom forms without angle brackets.
    c.smtp("helo client.test", "250 mail.test");
    c.smtp("mail from: carol@remote.test", "250 2.1.0");
    c.smtp("rcpt to: alice@example.test", "250 2.1.5");
    c.smtp("data", "354 ");
    c.send(MSG.as_bytes());
    c.smtp(".", "250 2.0.0 Ok: queued as ");
    c.smtp("quit", "221 2.0.0");
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("Return-Path: <carol@remote.test>\r\nDelivered-To: alice@example.test\r\nReceived: from client.test ([127.0.0.1])\r\n\tby mail.test (postamt) with SMTP id "), "{}", got[0]);
    assert!(
        got[0].contains("\tfor <alice@example.test>;\r\n"),
        "{}",
        got[0]
    );
    assert_eq!(without_trace(&got[0]), MSG.replace("\r\n..a", "\r\n.a"));
}

/// NUL bytes in message content (RFC 5322 forbids them; broken and
/// hostile senders send them anyway) are not refused: the message is
/// stored as sent — on PostgreSQL too, whose text cannot hold NUL — and
/// SEARCH finds it by its other words.
#[test]
fn nul_bytes_in_content_are_stored_and_searchable() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO client.test", "250");
    c.smtp("MAIL FROM:<carol@remote.test>", "250 2.1.0");
    c.smtp("RCPT TO:<alice@example.test>", "250 2.1.5");
    c.smtp("DATA", "354 ");
    let msg = b"From: carol@remote.test\r\nTo: alice@example.test\r\nSubject: odd\0zebra\r\n\r\nbody \0 giraffe\r\n";
    c.send(msg);
    c.smtp(".", "250 2.0.0 Ok: queued as ");
    c.smtp("QUIT", "221");
    let mut imap = Imap::logged_in(&s, "alice");
    imap.ok("s", "SELECT INBOX");
    for search in ["SUBJECT zebra", "BODY giraffe", "TEXT giraffe"] {
        let (untagged, t) = imap.cmd("q", &format!("SEARCH {search}"));
        assert!(t.starts_with("q OK"), "{search}: {t}");
        assert!(
            untagged.iter().any(|l| l.trim_end() == "* SEARCH 1"),
            "{search}: {untagged:?}"
        );
    }
    let (untagged, _) = imap.cmd("n", "SEARCH BODY hippo");
    assert!(
        untagged.iter().any(|l| l.trim_end() == "* SEARCH"),
        "{untagged:?}"
    );
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert_eq!(got.len(), 1);
    assert!(got[0].as_bytes().ends_with(msg), "{:?}", got[0]);
}

#[test]
fn ehlo_advertises_extensions_and_esmtp_is_recorded() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.send(b"EHLO client.test\r\n");
    let ehlo = c.reply().join("");
    for ext in [
        "PIPELINING",
        "SIZE ",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "DSN",
        "STARTTLS",
    ] {
        assert!(ehlo.contains(ext), "{ext}: {ehlo}");
    }
    assert!(
        !ehlo.contains("AUTH"),
        "no AUTH on the inbound port: {ehlo}"
    );
    c.smtp(
        "MAIL FROM:<carol@remote.test> BODY=8BITMIME SIZE=100",
        "250",
    );
    c.smtp(
        "RCPT TO:<alice@example.test> NOTIFY=FAILURE ORCPT=rfc822;alice@example.test",
        "250",
    );
    c.smtp("DATA", "354");
    c.send(b"Subject: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n.\r\n");
    c.reply();
    c.smtp("VRFY alice", "252 2.5.0");
    c.smtp("EXPN staff", "502 5.5.1");
    c.smtp("HELP", "214");
    c.smtp("NOOP", "250 2.0.0");
    c.smtp("RSET", "250 2.0.0");
    c.smtp("QUIT", "221");
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert!(got[0].contains(" with ESMTP id "), "{}", got[0]);
    assert!(got[0].ends_with("Grüße\r\n"), "8-bit content intact");
}

#[test]
fn smuggling_vectors_are_refused_end_to_end() {
    let s = Server::start("");
    for vector in ["\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r\n.\n"] {
        let mut c = smtp(&s, "smtp");
        c.smtp("EHLO attacker.test", "250");
        c.smtp("MAIL FROM:<a@remote.test>", "250");
        c.smtp("RCPT TO:<alice@example.test>", "250");
        c.smtp("DATA", "354");
        // The smuggled second message hides behind a fake end of data.
        c.send(format!("Subject: first\r\n\r\nbody{vector}MAIL FROM:<admin@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n").as_bytes());
        let r = c.reply();
        assert!(r[0].starts_with("550 5.6.11"), "{vector:?}: {r:?}");
        // The connection goes on; nothing was queued behind the vector.
        c.smtp("NOOP", "250");
        c.smtp("QUIT", "221");
    }
    assert!(maildrop(&s, "alice@example.test", "alice-pw").is_empty());
    assert!(
        maildrop(&s, "bob@example.test", "bob-pw").is_empty(),
        "no smuggled message"
    );
}

#[test]
fn bare_line_endings_and_nul_in_commands() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    // A line ended by a bare LF is refused, and the next one is served.
    c.send(b"EHLO x\n");
    c.send(b"NOOP\r\n");
    assert!(c.reply()[0].starts_with("500 5.5.2"));
    assert!(c.reply()[0].starts_with("250"));
    c.send(b"NOOP\rNOOP\r\n");
    assert!(
        c.reply()[0].starts_with("500 5.5.2"),
        "bare CR inside a line"
    );
    c.send(b"NO\0OP\r\n");
    assert!(c.reply()[0].starts_with("500 5.5.2"));
    c.send(b"MAIL FROM:<a\xff@remote.test>\r\n");
    assert!(c.reply()[0].starts_with("5"));
    c.smtp("NOOP", "250");
}

#[test]
fn no_open_relay_in_any_disguise() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO relay.test", "250");
    c.smtp("MAIL FROM:<spammer@remote.test>", "250");
    for (rcpt, code) in [
        ("<victim@remote.test>", "554 5.7.1"),
        ("<victim%remote.test@example.test>", "550 5.1.1"),
        ("<@example.test:victim@remote.test>", "554 5.7.1"),
        ("<\"victim@remote.test\"@example.test>", "550 5.1.1"),
        ("<victim@remote.test@example.test>", "501 5.1.3"),
        ("<remote.test!victim@example.test>", "550 5.1.1"),
        ("<victim@[127.0.0.1]>", "554 5.7.1"),
    ] {
        c.smtp(&format!("RCPT TO:{rcpt}"), code);
    }
    c.smtp("DATA", "554 5.5.1");
    c.smtp("QUIT", "221");
    assert!(
        s.admin(&["queue", "list"])
            .success()
            .stdout
            .contains("queue is empty")
    );
}

#[test]
fn unknown_users_and_aliases_at_rcpt_time() {
    let s = Server::prepare("");
    s.admin(&[
        "alias",
        "add",
        "team@example.test",
        "alice@example.test",
        "bob@example.test",
    ])
    .success();
    let mut s = s;
    s.spawn();
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO x.test", "250");
    c.smtp("MAIL FROM:<a@remote.test>", "250");
    c.smtp("RCPT TO:<nobody@example.test>", "550 5.1.1");
    c.smtp("RCPT TO:<team@example.test>", "250");
    c.smtp("RCPT TO:<Alice+news@Example.TEST>", "250");
    c.smtp("DATA", "354");
    c.send(b"Subject: team\r\n\r\nhi\r\n.\r\n");
    c.reply();
    assert_eq!(
        maildrop(&s, "alice@example.test", "alice-pw").len(),
        1,
        "one copy per account"
    );
    assert_eq!(maildrop(&s, "bob@example.test", "bob-pw").len(), 1);
}

#[test]
fn spoofed_local_senders_are_rejected_by_default() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO forger.test", "250");
    c.smtp("MAIL FROM:<bob@example.test>", "550 5.7.1");
    c.smtp("MAIL FROM:<forger@remote.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(b"From: Bob <bob@example.test>\r\nSubject: trust me\r\n\r\nsend money\r\n.\r\n");
    let r = c.reply();
    assert!(r[0].starts_with("550 5.7.1"), "{r:?}");
    assert!(maildrop(&s, "alice@example.test", "alice-pw").is_empty());
}

/// RFC 5322 §3.6: one From: field with an address. A second From: (the
/// verifier reads one, the reader sees the other) or a From: without an
/// address is refused at the end of DATA, and the session goes on.
#[test]
fn rfc5322_3_6_two_from_fields_or_none_with_an_address_are_refused() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO forger.test", "250");
    for header in [
        "From: someone@remote.test\r\nFrom: Bank <ceo@bank.test>\r\n",
        "From: Your Bank\r\n",
    ] {
        c.smtp("MAIL FROM:<forger@remote.test>", "250");
        c.smtp("RCPT TO:<alice@example.test>", "250");
        c.smtp("DATA", "354");
        c.send(format!("{header}Subject: trust me\r\n\r\nsend money\r\n.\r\n").as_bytes());
        let r = c.reply();
        assert!(r[0].starts_with("550 5.7.1"), "{r:?}");
    }
    c.smtp("MAIL FROM:<friend@remote.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(b"From: Friend <friend@remote.test>\r\nSubject: hi\r\n\r\nhello\r\n.\r\n");
    assert!(c.reply()[0].starts_with("250"));
    assert_eq!(maildrop(&s, "alice@example.test", "alice-pw").len(), 1);
}

#[test]
fn spoof_policy_mark_adds_a_warning() {
    let s = Server::start("[smtp]\nspoof_policy = \"mark\"\n");
    let mut c = smtp(&s, "smtp");
    c.smtp("HELO forger.test", "250");
    c.smtp("MAIL FROM:<forger@remote.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(b"From: Bob <bob@example.test>\r\nSubject: trust me\r\n\r\nx\r\n.\r\n");
    c.reply();
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert!(
        got[0].contains(
            "X-Postamt-Warning: possibly forged: From: <bob@example.test> claims a local domain"
        ),
        "{}",
        got[0]
    );
}

#[test]
fn limits_answer_with_their_codes() {
    let s = Server::start(
        "[smtp]\nmax_recipients = 2\nmax_message_size = 2000\nmax_line = 512\nmax_header_size = 300\n",
    );
    let mut c = smtp(&s, "smtp");
    c.send(b"EHLO x.test\r\n");
    assert!(c.reply().join("").contains("SIZE 2000"));
    c.smtp(&format!("NOOP {}", "x".repeat(600)), "500 5.5.2");
    c.smtp("MAIL FROM:<a@remote.test> SIZE=5000", "552 5.3.4");
    c.smtp("MAIL FROM:<a@remote.test> SIZE=100", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("RCPT TO:<bob@example.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "452 4.5.3");
    c.smtp("DATA", "354");
    c.send(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "y".repeat(5000)).as_bytes());
    assert!(c.reply()[0].starts_with("552 5.3.4"));
    c.smtp("MAIL FROM:<a@remote.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(format!("X-Big: {}\r\n\r\nbody\r\n.\r\n", "h".repeat(400)).as_bytes());
    assert!(c.reply()[0].starts_with("552 5.3.4"), "header limit");
    c.smtp("QUIT", "221");
    assert!(maildrop(&s, "alice@example.test", "alice-pw").is_empty());
}

#[test]
fn errors_per_session_end_in_421() {
    let s = Server::start("[limits]\nmax_errors = 3\n");
    let mut c = smtp(&s, "smtp");
    c.smtp("BOGUS", "500");
    c.smtp("BOGUS", "500");
    c.smtp("BOGUS", "500");
    c.send(b"NOOP\r\n");
    assert!(c.reply()[0].starts_with("421 4.7.0"));
    assert!(c.closed());
}

#[test]
fn sequence_errors() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.smtp("MAIL FROM:<a@remote.test>", "503 5.5.1");
    c.smtp("EHLO x.test", "250");
    c.smtp("RCPT TO:<alice@example.test>", "503 5.5.1");
    c.smtp("DATA", "503 5.5.1");
    c.smtp("MAIL FROM:<a@remote.test>", "250");
    c.smtp("MAIL FROM:<a@remote.test>", "503 5.5.1");
    c.smtp("AUTH PLAIN AGEAYg==", "503 5.5.1");
    c.smtp("MAIL FROM:<a@remote.test> FOO=BAR", "5");
    c.smtp("RSET", "250");
    c.smtp("MAIL FROM:<a@remote.test> FOO=BAR", "555 5.5.4");
    c.smtp("MAIL FROM:<jörg@remote.test>", "553 5.6.7");
}

#[test]
fn pipelined_transaction_in_one_write() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.send(b"EHLO p.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n");
    assert!(c.reply()[0].starts_with("250"));
    for expect in ["250", "250", "550", "250", "354"] {
        assert!(c.reply()[0].starts_with(expect));
    }
    c.send(b"Subject: pipelined\r\n\r\nx\r\n.\r\nQUIT\r\n");
    assert!(c.reply()[0].starts_with("250"));
    assert!(c.reply()[0].starts_with("221"));
    assert_eq!(maildrop(&s, "bob@example.test", "bob-pw").len(), 1);
}

#[test]
fn bdat_chunks_and_last() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO x.test", "250");
    c.smtp("MAIL FROM:<a@remote.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    let part1 = "Subject: chunked\r\n\r\n.starts with a dot, no stuffing in BDAT\r\n";
    c.send(format!("BDAT {}\r\n{part1}", part1.len()).as_bytes());
    assert!(c.reply()[0].starts_with("250"));
    let part2 = "second chunk\r\n";
    c.send(format!("BDAT {} LAST\r\n{part2}", part2.len()).as_bytes());
    assert!(c.reply()[0].starts_with("250 2.0.0 Ok: queued"));
    // An empty last chunk ends a message too; DATA after BDAT is refused.
    c.smtp("MAIL FROM:<a@remote.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.send(b"BDAT 9\r\nSubject: ");
    assert!(c.reply()[0].starts_with("250"));
    c.smtp("DATA", "503");
    c.send(b"BDAT 0 LAST\r\n");
    assert!(c.reply()[0].starts_with("250"));
    // BDAT without a transaction: the chunk is read and refused.
    c.send(b"BDAT 6\r\nQUIT\r\n");
    assert!(c.reply()[0].starts_with("503"));
    c.smtp("NOOP", "250");
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert_eq!(got.len(), 2);
    assert_eq!(without_trace(&got[0]), format!("{part1}{part2}"));
    assert_eq!(
        without_trace(&got[1]),
        "Subject: \r\n",
        "a last line gets its CRLF"
    );
}

#[test]
fn empty_message_and_leading_dots() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.smtp("HELO x.test", "250");
    c.smtp("MAIL FROM:<>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.smtp(".", "250");
    c.smtp("MAIL FROM:<>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(b"..first line\r\n.\r\n");
    c.reply();
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert!(got[0].starts_with("Return-Path: <>\r\n"));
    assert_eq!(without_trace(&got[0]), "");
    assert_eq!(without_trace(&got[1]), ".first line\r\n");
}

#[test]
fn submission_requires_auth_and_owned_senders() {
    let s = Server::prepare("");
    s.admin(&["alias", "add", "sales@example.test", "alice@example.test"])
        .success();
    let mut s = s;
    s.spawn();
    let mut c = smtp(&s, "submission");
    c.send(b"EHLO laptop.test\r\n");
    let ehlo = c.reply().join("");
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN"),
        "loopback may log in without TLS: {ehlo}"
    );
    c.smtp("MAIL FROM:<alice@example.test>", "530 5.7.0");
    c.smtp(
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==",
        "535 5.7.8",
    );
    // \0alice@example.test\0alice-pw
    c.smtp(
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
        "235 2.7.0",
    );
    c.smtp("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==", "503");
    c.smtp("MAIL FROM:<bob@example.test>", "553 5.7.1");
    c.smtp("MAIL FROM:<>", "553 5.7.1");
    c.smtp("MAIL FROM:<sales@example.test>", "250");
    c.smtp("RCPT TO:<bob@example.test>", "250");
    c.smtp("RCPT TO:<carol@remote.test> NOTIFY=SUCCESS,FAILURE", "250");
    c.smtp("DATA", "354");
    c.send(b"From: Bob <bob@example.test>\r\nSubject: forged From\r\n\r\nx\r\n.\r\n");
    assert!(
        c.reply()[0].starts_with("553 5.7.1"),
        "From: must be owned too"
    );
    c.smtp("MAIL FROM:<alice@example.test>", "250");
    c.smtp("RCPT TO:<bob@example.test>", "250");
    c.smtp("RCPT TO:<carol@remote.test>", "250");
    // Another domain's local part is relayed as written (RFC 5321 §2.3.11).
    c.smtp("RCPT TO:<\"carol x\"@remote.test>", "250");
    c.smtp("DATA", "354");
    c.send(b"From: Alice <alice@example.test>\r\nSubject: no date, no id\r\n\r\nhello\r\n.\r\n");
    let r = c.smtp("", "");
    let _ = r;
    let got = maildrop(&s, "bob@example.test", "bob-pw");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("\r\nMessage-ID: <") && got[0].contains("\r\nDate: "),
        "{}",
        got[0]
    );
    assert!(got[0].contains(" with ESMTPA id "), "{}", got[0]);
    let q = s.admin(&["queue", "list"]).success().stdout;
    assert!(
        q.contains("from alice@example.test") && q.contains("carol@remote.test\tpending"),
        "{q}"
    );
    let id = q
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let show = s.admin(&["queue", "show", &id]).success().stdout;
    assert!(
        show.contains("Subject: no date, no id")
            && show.contains("submitted by alice@example.test")
            && show.contains("\"carol x\"@remote.test"),
        "{show}"
    );
}

#[test]
fn lmtp_answers_per_recipient() {
    let s = Server::start("");
    s.admin(&["user", "quota", "bob@example.test", "10"])
        .success();
    let mut c = smtp(&s, "lmtp");
    c.smtp("EHLO x.test", "503");
    c.send(b"LHLO mta.test\r\n");
    assert!(c.reply().join("").contains("PIPELINING"));
    c.smtp("MAIL FROM:<a@remote.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("RCPT TO:<nobody@example.test>", "550 5.1.1");
    c.smtp("RCPT TO:<remote@remote.test>", "550 5.1.1");
    c.smtp("RCPT TO:<bob@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(b"Subject: lmtp\r\n\r\nx\r\n.\r\n");
    // RFC 2033 §4.2: one reply per accepted recipient, in order.
    assert!(c.reply()[0].starts_with("250 2.0.0 <alice@example.test>"));
    assert!(c.reply()[0].starts_with("452 4.2.2 <bob@example.test>"));
    c.smtp("QUIT", "221");
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert!(got[0].contains(" with LMTP id "), "{}", got[0]);
}

#[test]
fn shutdown_says_421() {
    let mut s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO x.test", "250");
    s.signal(15);
    assert!(c.reply()[0].starts_with("421 4.3.2"));
    s.stop_wait();
}

#[test]
fn transcripts_mask_smtp_auth() {
    let s = Server::start("[transcripts]\nenabled = true\n");
    let mut c = smtp(&s, "submission");
    c.smtp("EHLO x.test", "250");
    c.smtp("AUTH LOGIN", "334 VXNlcm5hbWU6");
    c.smtp("YWxpY2VAZXhhbXBsZS50ZXN0", "334 UGFzc3dvcmQ6");
    c.smtp("YWxpY2UtcHc=", "235");
    c.smtp("QUIT", "221");
    let list = s.admin(&["trace", "list"]).success().stdout;
    let id = list
        .lines()
        .find(|l| l.contains("submission"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let t = s.admin(&["trace", "show", &id]).success().stdout;
    assert!(
        t.contains("C: AUTH LOGIN") && t.contains("(SASL response) ****"),
        "{t}"
    );
    assert!(
        !t.contains("YWxpY2UtcHc=") && !t.contains("alice-pw"),
        "{t}"
    );
}

#[test]
fn reply_is_not_held_behind_a_partial_line() {
    let s = Server::start("");
    let mut c = smtp(&s, "smtp");
    c.send(b"NOOP\r\nNO");
    assert!(c.reply()[0].starts_with("250"));
    c.send(b"OP\r\n");
    assert!(c.reply()[0].starts_with("250"));
}

/// RFC 6531: with SMTPUTF8, UTF-8 addresses and headers arrive intact; a
/// UTF-8 address without it is refused (553 5.6.7).
#[test]
fn smtputf8_addresses_and_headers_are_delivered_intact() {
    let mut s = Server::prepare("");
    s.admin_stdin(
        &["user", "add", "jörg@example.test", "--password-stdin"],
        "jörg-pw\n",
    )
    .success();
    s.spawn();
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO x.test", "250");
    c.smtp("MAIL FROM:<björn@bücher.test>", "553 5.6.7");
    c.smtp("MAIL FROM:<björn@bücher.test> SMTPUTF8", "250");
    c.smtp("RCPT TO:<JÖRG@example.test>", "250");
    c.smtp("DATA", "354");
    let msg = "From: Björn <björn@bücher.test>\r\nTo: Jörg <jörg@example.test>\r\nSubject: Grüße\r\n\r\nÄÖÜ\r\n";
    c.send(format!("{msg}.\r\n").as_bytes());
    c.reply();
    let got = maildrop(&s, "jörg@example.test", "jörg-pw");
    assert_eq!(got.len(), 1);
    assert!(
        got[0]
            .starts_with("Return-Path: <björn@bücher.test>\r\nDelivered-To: jörg@example.test\r\n"),
        "{}",
        got[0]
    );
    assert!(got[0].contains(" with UTF8SMTP id "), "{}", got[0]);
    assert_eq!(without_trace(&got[0]), msg);
}
