//! Authentication of inbound mail end to end, on loopback: the test's DNS
//! server (tests/clients/dns_server.py, dnslib) publishes SPF records, the
//! real server checks the MAIL FROM of mail on port 25 and records the
//! verdict (RFC 8601 Authentication-Results, RFC 7208 §9.1 Received-SPF),
//! or refuses a "fail" when `[verify] spf = "reject"`; DKIM signatures
//! made by dkimpy (an independent implementation) are verified and each
//! result recorded (RFC 8601 §2.7.1); DMARC (RFC 7489) applies the author
//! domain's policy: `p=reject` refused with 550 5.7.26, `p=quarantine`
//! into the recipient's Junk mailbox.

mod common;

use common::*;
use serde_json::json;

/// bank.test sends only from 192.0.2.10; friend.test from 127.0.0.1;
/// nospf.test publishes nothing.
fn dns() -> Dns {
    Dns::start(json!({
        "bank.test": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"]},
        "friend.test": {"TXT": ["some other record", "v=spf1 ip4:127.0.0.0/8 -all"]},
        "nospf.test": {"A": ["192.0.2.99"]},
    }))
}

fn server(dns: &Dns, policy: &str) -> Server {
    server_with(dns, policy, "off")
}

fn server_with(dns: &Dns, spf: &str, dmarc: &str) -> Server {
    Server::start(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = 5\n\
         [verify]\nspf = \"{spf}\"\ndkim = true\ndmarc = \"{dmarc}\"\n",
        dns.port()
    ))
}

/// Sends one message on port 25; the reply to the end of DATA.
fn send(c: &mut Client, from: &str, body: &str) -> String {
    c.smtp(&format!("MAIL FROM:<{from}>"), "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(format!("{body}.\r\n").as_bytes());
    c.reply().join("\n")
}

#[test]
fn rfc7208_rfc8601_spf_verdicts_are_recorded_in_the_message() {
    if !python_ready() {
        return;
    }
    let dns = dns();
    let s = server(&dns, "mark");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO client.example", "250");
    // A forger adds a verdict of ours: it must not survive (RFC 8601 §5).
    let forged = "Authentication-Results: mail.test; spf=pass smtp.mailfrom=ceo@bank.test\r\n\
                  From: CEO <ceo@bank.test>\r\nSubject: pay now\r\n\r\nurgent\r\n";
    assert!(send(&mut c, "ceo@bank.test", forged).starts_with("250"));
    assert!(
        send(
            &mut c,
            "pal@friend.test",
            "From: pal@friend.test\r\n\r\nhi\r\n"
        )
        .starts_with("250")
    );
    assert!(send(&mut c, "x@nospf.test", "From: x@nospf.test\r\n\r\nhi\r\n").starts_with("250"));
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert_eq!(got.len(), 3);
    let forged = &got[0];
    assert!(
        forged.contains("Authentication-Results: mail.test;\r\n\tspf=fail (bank.test: -all matched 127.0.0.1) smtp.mailfrom=ceo@bank.test;\r\n\tspf=none (client.example does not exist) smtp.helo=client.example;\r\n\tdkim=none (no signature)\r\n"),
        "{forged}"
    );
    assert!(
        forged.contains(
            "Received-SPF: fail (mail.test: bank.test: -all matched 127.0.0.1) client-ip=127.0.0.1;"
        ),
        "{forged}"
    );
    assert!(
        !forged.contains("spf=pass"),
        "the forged verdict was kept: {forged}"
    );
    // Ours comes right after our Received: (RFC 8601 §4).
    let received = forged.find("Received: from client.example").unwrap();
    let results = forged.find("Authentication-Results: mail.test;").unwrap();
    assert!(received < results && !forged[received..results].contains("\r\n\r\n"));
    assert!(
        got[1].contains("\tspf=pass (friend.test: ip4:127.0.0.0/8 matched 127.0.0.1)"),
        "{}",
        got[1]
    );
    assert!(
        got[2].contains("\tspf=none (nospf.test publishes no SPF record)"),
        "{}",
        got[2]
    );
    // Negative answers are cached (by hickory when the server sends an SOA,
    // as this one does; by auth::resolver for 5 minutes otherwise): a record
    // published a moment later is seen only after the cache time.
    dns.set(json!({
        "bank.test": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"]},
        "friend.test": {"TXT": ["some other record", "v=spf1 ip4:127.0.0.0/8 -all"]},
        "nospf.test": {"A": ["192.0.2.99"], "TXT": ["v=spf1 +all"]},
    }));
    assert!(
        send(
            &mut c,
            "x@nospf.test",
            "From: x@nospf.test\r\n\r\nagain\r\n"
        )
        .starts_with("250")
    );
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert!(
        got[3].contains("\tspf=none (nospf.test publishes no SPF record)"),
        "{}",
        got[3]
    );
}

#[test]
fn rfc7372_spf_reject_refuses_a_fail_and_keeps_the_session() {
    if !python_ready() {
        return;
    }
    let dns = dns();
    let s = server(&dns, "reject");
    let mut c = smtp(&s, "smtp");
    c.smtp("HELO client.example", "250");
    let r = send(
        &mut c,
        "ceo@bank.test",
        "From: ceo@bank.test\r\n\r\nurgent\r\n",
    );
    assert!(
        r.starts_with("550 5.7.23 SPF: bank.test: -all matched 127.0.0.1"),
        "{r}"
    );
    let r = send(
        &mut c,
        "pal@friend.test",
        "From: pal@friend.test\r\n\r\nhi\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(maildrop(&s, "alice@example.test", "alice-pw").len(), 1);
}

#[test]
fn rfc6376_rfc8601_dkim_signatures_by_dkimpy_are_verified_and_recorded() {
    if !python_ready() {
        return;
    }
    let dns = dns();
    let s = server(&dns, "mark");
    // A key made by postamt, published in the test DNS, used by dkimpy.
    let value = s.dkim_keygen("signer.test", "py", &[]);
    dns.set(json!({
        "py._domainkey.signer.test": {"TXT": [value]},
        "signer.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    }));
    let key = s.dir.path().join("dkim/signer.test/py.pem");
    let msg = "From: news@signer.test\r\nTo: alice@example.test\r\nSubject: signed\r\n\
               Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <d1@signer.test>\r\n\r\nhello\r\n";
    let file = s.dir.path().join("d1.eml");
    std::fs::write(&file, msg).unwrap();
    let signed = dkimpy_sign(&[
        "sign",
        file.to_str().unwrap(),
        key.to_str().unwrap(),
        "py",
        "signer.test",
    ]);
    let tampered = signed.replace("hello", "pay me");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO client.example", "250");
    for m in [&signed, &tampered, &msg.to_string()] {
        assert!(send(&mut c, "news@signer.test", m).starts_with("250"));
    }
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    assert_eq!(got.len(), 3);
    assert!(
        got[0]
            .contains(";\r\n\tdkim=pass header.d=signer.test header.s=py header.a=rsa-sha256\r\n"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("spf=pass"), "{}", got[0]);
    assert!(got[1].contains("\tdkim=fail ("), "{}", got[1]);
    assert!(
        got[1].contains("header.d=signer.test header.s=py"),
        "{}",
        got[1]
    );
    assert!(got[2].contains("\tdkim=none (no signature)"), "{}", got[2]);
}

/// RFC 7489 §6.3 with `[verify] dmarc = "enforce"`: a forged From: of a
/// domain with p=reject is refused (RFC 7372: 5.7.26), one with
/// p=quarantine lands in Junk, a sender whose SPF domain aligns passes;
/// the session goes on after a refusal.
#[test]
fn rfc7489_dmarc_reject_quarantine_and_pass_end_to_end() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(json!({
        "bank.test": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"], "A": ["192.0.2.10"]},
        "_dmarc.bank.test": {"TXT": ["v=DMARC1; p=reject; rua=mailto:dmarc@bank.test"]},
        "shop.test": {"A": ["192.0.2.11"]},
        "_dmarc.shop.test": {"TXT": ["v=DMARC1; p=quarantine"]},
        "friend.test": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"], "A": ["127.0.0.1"]},
        "_dmarc.friend.test": {"TXT": ["v=DMARC1; p=reject"]},
        "mail.friend.test": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"], "A": ["127.0.0.1"]},
    }));
    let s = server_with(&dns, "mark", "enforce");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO client.example", "250");
    // The classic forgery: any envelope, From: the bank.
    let r = send(
        &mut c,
        "alerts@elsewhere.example",
        "From: Bank <ceo@bank.test>\r\nSubject: verify your account\r\n\r\nclick\r\n",
    );
    assert!(r.starts_with("550 5.7.26 DMARC: neither DKIM nor SPF passed for a domain aligned with From: bank.test"), "{r}");
    let r = send(
        &mut c,
        "deals@elsewhere.example",
        "From: Shop <sale@shop.test>\r\nSubject: sale\r\n\r\n50% off\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    // Relaxed alignment: SPF passed for mail.friend.test, From: friend.test.
    let r = send(
        &mut c,
        "pal@mail.friend.test",
        "From: Pal <pal@friend.test>\r\nSubject: hi\r\n\r\nhello\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    let inbox = maildrop(&s, "alice@example.test", "alice-pw");
    assert_eq!(
        inbox.len(),
        1,
        "only the aligned message is in INBOX: {inbox:?}"
    );
    assert!(
        inbox[0].contains("\tdmarc=pass (SPF aligned with From: friend.test) header.from=friend.test policy.dmarc=reject\r\n"),
        "{}",
        inbox[0]
    );
    let mut imap = Imap::logged_in(&s, "alice");
    let (untagged, done) = imap.cmd("a1", "SELECT Junk");
    assert!(done.starts_with("a1 OK"), "{done}");
    assert!(
        untagged.iter().any(|l| l.trim_end() == "* 1 EXISTS"),
        "{untagged:?}"
    );
    let (untagged, _) = imap.cmd(
        "a2",
        "FETCH 1 BODY.PEEK[HEADER.FIELDS (AUTHENTICATION-RESULTS SUBJECT)]",
    );
    let text = untagged.join("\n");
    assert!(
        text.contains("dmarc=fail") && text.contains("policy.dmarc=quarantine"),
        "{text}"
    );
    assert!(text.contains("Subject: sale"), "{text}");
    // A user who deleted Junk gets it back (with \Junk) for the next one.
    imap.cmd("a3", "CLOSE");
    let (_, done) = imap.cmd("a4", "DELETE Junk");
    assert!(done.starts_with("a4 OK"), "{done}");
    let r = send(
        &mut c,
        "deals@elsewhere.example",
        "From: Shop <sale@shop.test>\r\nSubject: sale 2\r\n\r\n60% off\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    let (untagged, done) = imap.cmd("a5", "SELECT Junk");
    assert!(done.starts_with("a5 OK"), "{done}");
    assert!(
        untagged.iter().any(|l| l.trim_end() == "* 1 EXISTS"),
        "{untagged:?}"
    );
    let (untagged, _) = imap.cmd("a6", "LIST \"\" Junk");
    assert!(
        untagged.iter().any(|l| l.contains("\\Junk")),
        "{untagged:?}"
    );
    assert_eq!(maildrop(&s, "alice@example.test", "alice-pw").len(), 1);
}

/// `postamt domain check`: what example.test should publish, checked
/// against the test DNS; a missing record is named and fails the command.
#[test]
fn domain_check_names_each_record_ok_or_wrong() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(json!({}));
    let s = server_with(&dns, "mark", "off");
    let dkim = s.dkim_keygen("example.test", "k1", &["--algorithm", "ed25519"]);
    let mut zone = json!({
        "example.test": {"MX": [[10, "mail.test"]], "TXT": ["v=spf1 mx -all"]},
        "k1._domainkey.example.test": {"TXT": [dkim]},
        "_dmarc.example.test": {"TXT": ["v=DMARC1; p=reject"]},
    });
    dns.set(zone.clone());
    let ok = s.admin(&["domain", "check", "example.test"]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    for what in ["MX     ok", "SPF    ok", "DKIM   ok", "DMARC  ok"] {
        assert!(ok.stdout.contains(what), "{}", ok.stdout);
    }
    zone.as_object_mut().unwrap().remove("_dmarc.example.test");
    dns.set(zone);
    let bad = s.admin(&["domain", "check", "example.test"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stdout.contains("DMARC  wrong"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("publish: _dmarc.example.test. TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test\""),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stderr.contains("1 of 4 records are missing or wrong"),
        "{}",
        bad.stderr
    );
}

/// RFC 8617 §7.2: a mailing list (lists.test) passes on a bank.test
/// message it received with a good verdict, seals an ARC set (dkimpy),
/// and sends it from its own domain: DMARC for bank.test fails (p=reject),
/// but a server that trusts lists.test as a sealer delivers it and says
/// why; one that does not refuses it.
#[test]
fn rfc8617_a_trusted_arc_sealer_excuses_dmarc_end_to_end() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(json!({}));
    let config = |trusted: &str| {
        format!(
            "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = 5\n\
             [verify]\nspf = \"mark\"\ndkim = true\ndmarc = \"enforce\"\ntrusted_arc_sealers = [{trusted}]\n",
            dns.port()
        )
    };
    let trusting = Server::start(&config("\"lists.test\""));
    let strict = Server::start(&config(""));
    let key_record = trusting.dkim_keygen("lists.test", "arc", &[]);
    dns.set(json!({
        "bank.test": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"], "A": ["192.0.2.10"]},
        "_dmarc.bank.test": {"TXT": ["v=DMARC1; p=reject"]},
        "lists.test": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"], "A": ["127.0.0.1"]},
        "arc._domainkey.lists.test": {"TXT": [key_record]},
    }));
    let msg = "Authentication-Results: lists.test; dkim=pass header.d=bank.test; dmarc=pass\r\n\
               From: CEO <ceo@bank.test>\r\nTo: staff@lists.test\r\nSubject: [staff] quarterly news\r\n\
               Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <n1@bank.test>\r\n\r\nAll well.\r\n";
    let file = trusting.dir.path().join("list.eml");
    std::fs::write(&file, msg).unwrap();
    let key = trusting.dir.path().join("dkim/lists.test/arc.pem");
    let sealed = dkimpy_sign(&[
        "arc-sign",
        file.to_str().unwrap(),
        key.to_str().unwrap(),
        "arc",
        "lists.test",
        "lists.test",
    ]);
    assert!(sealed.contains("ARC-Seal: "), "{sealed}");
    let mut c = smtp(&strict, "smtp");
    c.smtp("EHLO lists.test", "250");
    let r = send(&mut c, "staff-bounces@lists.test", &sealed);
    assert!(r.starts_with("550 5.7.26"), "{r}");
    let mut c = smtp(&trusting, "smtp");
    c.smtp("EHLO lists.test", "250");
    let r = send(&mut c, "staff-bounces@lists.test", &sealed);
    assert!(r.starts_with("250"), "{r}");
    let got = maildrop(&trusting, "alice@example.test", "alice-pw");
    let text = &got[0];
    assert!(text.contains("\tarc=pass (sealed by lists.test)"), "{text}");
    assert!(
        text.contains("policy not applied: ARC chain sealed by trusted lists.test, RFC 8617"),
        "{text}"
    );
}

/// A DNS server that never answers (it takes the queries, UDP and TCP,
/// and says nothing): the message's checks share one `[verify] timeout`
/// budget, so the end of DATA is answered within about that time — with
/// 451 4.7.5, the sender retries (RFC 7489 §6.6.3: a temporary failure) —
/// not after one timeout per check, and the session goes on.
#[test]
fn a_dns_server_that_never_answers_costs_one_budget_per_message() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let _udp = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    // Accept and hold TCP connections without reading them.
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = std::sync::Arc::clone(&held);
    std::thread::spawn(move || {
        for s in tcp.incoming().take(64).flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let s = Server::start(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{port}\"]\ntimeout = 30\n\
         [verify]\nspf = \"mark\"\ndkim = true\ndmarc = \"enforce\"\ntimeout = 2\n"
    ));
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO client.example", "250");
    c.smtp("MAIL FROM:<a@slow.example>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    let started = std::time::Instant::now();
    c.send(b"From: a@slow.example\r\n\r\nhi\r\n.\r\n");
    // While that message waits for DNS, another session is served at once.
    let mut other = smtp(&s, "smtp");
    other.smtp("EHLO other.example", "250");
    other.smtp("NOOP", "250");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "another session waited: {:?}",
        started.elapsed()
    );
    let r = c.reply().join("\n");
    let took = started.elapsed();
    assert!(r.starts_with("451 4.7.5"), "{r}");
    // SPF (MAIL FROM and HELO) and DMARC each waiting 2 s would be 6 s.
    assert!(took < std::time::Duration::from_millis(4500), "{took:?}");
    c.smtp("NOOP", "250");
}

/// Reads a DMARC report mail with Python's email, gzip and ElementTree
/// (independent parsers): the attachment's file name, the policy domain
/// and one line per record.
fn read_report(mail: &str) -> serde_json::Value {
    use std::io::Write;
    let script = r#"
import sys, email, gzip, json, xml.etree.ElementTree as ET
m = email.message_from_bytes(sys.stdin.buffer.read())
ns = {"d": "urn:ietf:params:xml:ns:dmarc-2.0"}
for part in m.walk():
    if part.get_content_type() == "application/gzip":
        root = ET.fromstring(gzip.decompress(part.get_payload(decode=True)))
        rows = []
        for r in root.findall("d:record", ns):
            rows.append("%s count=%s disposition=%s dkim=%s spf=%s from=%s" % (
                r.findtext("d:row/d:source_ip", namespaces=ns),
                r.findtext("d:row/d:count", namespaces=ns),
                r.findtext("d:row/d:policy_evaluated/d:disposition", namespaces=ns),
                r.findtext("d:row/d:policy_evaluated/d:dkim", namespaces=ns),
                r.findtext("d:row/d:policy_evaluated/d:spf", namespaces=ns),
                r.findtext("d:identifiers/d:header_from", namespaces=ns)))
        print(json.dumps({
            "subject": m["Subject"],
            "file": part.get_filename(),
            "domain": root.findtext("d:policy_published/d:domain", namespaces=ns),
            "p": root.findtext("d:policy_published/d:p", namespaces=ns),
            "org": root.findtext("d:report_metadata/d:org_name", namespaces=ns),
            "rows": rows}))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(mail.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{mail}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("no report in {mail}"))
}

/// RFC 9990: what DMARC saw is counted per policy domain and period and
/// mailed, once the period is over, to the `rua=` addresses that may
/// receive it: here a local mailbox, outside the policy domains, that
/// consents by `<domain>._report._dmarc.example.test` (§4); the victim
/// address of the same record does not consent and gets nothing. The
/// reports are read by Python's email, gzip and XML parsers.
#[test]
fn rfc9990_aggregate_reports_reach_consenting_rua_addresses() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(json!({
        "friend.test": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"], "A": ["127.0.0.1"]},
        "_dmarc.friend.test": {"TXT": ["v=DMARC1; p=reject; rua=mailto:bob@example.test,mailto:victim@victim.test"]},
        "friend.test._report._dmarc.example.test": {"TXT": ["v=DMARC1"]},
        "bank.test": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"], "A": ["192.0.2.10"]},
        "_dmarc.bank.test": {"TXT": ["v=DMARC1; p=reject; rua=mailto:bob@example.test"]},
        "bank.test._report._dmarc.example.test": {"TXT": ["v=DMARC1;"]},
    }));
    let s = Server::start(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = 5\n\
         [verify]\nspf = \"mark\"\ndkim = true\ndmarc = \"enforce\"\n\
         report_interval = 1\nreport_from = \"noreply-dmarc@example.test\"\n\
         [relay]\nenabled = true\n",
        dns.port()
    ));
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO client.example", "250");
    for _ in 0..2 {
        let r = send(
            &mut c,
            "pal@friend.test",
            "From: pal@friend.test\r\n\r\nhi\r\n",
        );
        assert!(r.starts_with("250"), "{r}");
    }
    let r = send(
        &mut c,
        "x@elsewhere.example",
        "From: ceo@bank.test\r\n\r\npay\r\n",
    );
    assert!(r.starts_with("550 5.7.26"), "{r}");
    c.smtp("QUIT", "221");
    // Periods are one second long here; the reports follow within a few.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let reports = loop {
        let got = maildrop(&s, "bob@example.test", "bob-pw");
        if got.len() >= 2 || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(reports.len(), 2, "{reports:?}");
    let mut seen: Vec<serde_json::Value> = reports.iter().map(|m| read_report(m)).collect();
    seen.sort_by_key(|v| v["domain"].as_str().unwrap_or("").to_string());
    let (bank, friend) = (&seen[0], &seen[1]);
    assert_eq!(bank["domain"], "bank.test");
    assert_eq!(
        bank["rows"],
        json!(["127.0.0.1 count=1 disposition=reject dkim=fail spf=fail from=bank.test"])
    );
    assert_eq!(friend["domain"], "friend.test");
    assert_eq!(friend["p"], "reject");
    assert_eq!(friend["org"], "mail.test");
    assert_eq!(
        friend["rows"],
        json!(["127.0.0.1 count=2 disposition=none dkim=fail spf=pass from=friend.test"])
    );
    let subject = friend["subject"].as_str().unwrap();
    assert!(
        subject.starts_with(
            "Report Domain: friend.test Submitter: mail.test Report-ID: <friend.test."
        ),
        "{subject}"
    );
    let file = friend["file"].as_str().unwrap();
    assert!(
        file.starts_with("mail.test!friend.test!") && file.ends_with(".xml.gz"),
        "{file}"
    );
    // Nothing is left for the victim (nor anyone) in the queue.
    let queue = s.admin(&["queue", "list"]).success().stdout;
    assert!(!queue.contains("victim"), "{queue}");
}

/// The issue's lab promise: the transcript of a refused forgery shows the
/// verdicts with their explanation, in English and German
/// (`postamt trace show ID --explain --lang de`).
#[test]
fn transcripts_explain_the_verdicts_in_english_and_german() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(json!({
        "bank.test": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"], "A": ["192.0.2.10"]},
        "_dmarc.bank.test": {"TXT": ["v=DMARC1; p=reject"]},
    }));
    let s = Server::start(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = 5\n\
         [verify]\nspf = \"mark\"\ndkim = true\ndmarc = \"enforce\"\n\
         [transcripts]\nenabled = true\n",
        dns.port()
    ));
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO client.example", "250");
    let r = send(
        &mut c,
        "ceo@bank.test",
        "From: ceo@bank.test\r\n\r\npay\r\n",
    );
    assert!(r.starts_with("550 5.7.26"), "{r}");
    c.smtp("QUIT", "221");
    let list = s.admin(&["trace", "list"]).success().stdout;
    let id = list
        .lines()
        .find(|l| l.contains("smtp"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let de = s
        .admin(&["trace", "show", &id, "--explain", "--lang", "de"])
        .success()
        .stdout;
    for expected in [
        "-- SPF: fail (bank.test: -all matched 127.0.0.1)\n     ^ SPF: Die Domain des Umschlag-Absenders sagt, dass diese IP ihre Mail nicht senden darf. (RFC 7208 §2.6.4)",
        "-- DMARC: fail (",
        "     ^ DMARC: Nichts bürgt für die From:-Domain",
        "S: 550 5.7.26 DMARC: neither DKIM nor SPF passed for a domain aligned with From: bank.test",
        "     ^ Abgelehnt: Die From:-Domain verlangt, Mail abzuweisen",
        "C: EHLO client.example\n     ^ Der Client begrüßt den Server",
    ] {
        assert!(de.contains(expected), "{expected:?} missing in\n{de}");
    }
    let en = s
        .admin(&["trace", "show", &id, "--explain", "--lang", "en"])
        .success()
        .stdout;
    assert!(
        en.contains("     ^ DMARC: nothing vouches for the From: domain"),
        "{en}"
    );
    let raw = s.admin(&["trace", "show", &id]).success().stdout;
    assert!(!raw.contains("     ^ "), "plain show stays plain: {raw}");
}

/// `postamt arc seal` against an independent verifier: a message signed
/// by bank.test (`postamt dkim sign`, Ed25519), passed on by lists.test with a
/// subject tag and sealed by `postamt arc seal` (RSA), verifies with
/// dkimpy's `arc_verify` (RFC 8617 §5.2), and the seal's
/// ARC-Authentication-Results says what the list saw: the bank's
/// signature passing before the tag broke it.
#[test]
fn rfc8617_postamt_seals_verify_with_dkimpy() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(json!({}));
    let s = server_with(&dns, "mark", "enforce");
    let bank_key = s.dkim_keygen("bank.test", "s1", &["--algorithm", "ed25519"]);
    let list_key = s.dkim_keygen("lists.test", "arc", &[]);
    dns.set(json!({
        "s1._domainkey.bank.test": {"TXT": [bank_key.clone()]},
        "arc._domainkey.lists.test": {"TXT": [list_key.clone()]},
    }));
    let msg = "From: CEO <ceo@bank.test>\r\nTo: staff@lists.test\r\nSubject: quarterly news\r\n\
               Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <n2@bank.test>\r\n\r\nAll well.\r\n";
    let file = s.dir.path().join("news.eml");
    std::fs::write(&file, msg).unwrap();
    let signed = s
        .admin(&[
            "dkim",
            "sign",
            "--domain",
            "bank.test",
            file.to_str().unwrap(),
        ])
        .success()
        .stdout;
    std::fs::write(&file, &signed).unwrap();
    let sealed = s
        .admin(&[
            "arc",
            "seal",
            "--domain",
            "lists.test",
            "--subject-prefix",
            "[staff] ",
            file.to_str().unwrap(),
        ])
        .success()
        .stdout;
    assert!(
        sealed.starts_with("ARC-Seal: i=1; a=rsa-sha256;"),
        "{sealed}"
    );
    assert!(sealed.contains("cv=none"), "{sealed}");
    assert!(
        sealed.contains("Subject: [staff] quarterly news"),
        "{sealed}"
    );
    let aar = &sealed[sealed.find("ARC-Authentication-Results:").unwrap()..];
    assert!(
        aar.starts_with("ARC-Authentication-Results: i=1; lists.test;")
            && aar.contains("dkim=pass"),
        "{sealed}"
    );
    let sealed_file = s.dir.path().join("sealed.eml");
    std::fs::write(&sealed_file, &sealed).unwrap();
    let records = s.dir.path().join("records.txt");
    std::fs::write(
        &records,
        format!("s1._domainkey.bank.test {bank_key}\narc._domainkey.lists.test {list_key}\n"),
    )
    .unwrap();
    let out = dkim_check(&[
        "arc-verify",
        sealed_file.to_str().unwrap(),
        records.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "dkimpy: {} {}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("pass"), "{}", out.stdout);
    // The bank's own signature no longer verifies (the tag changed the
    // Subject it signed): that is what the seal is for.
    let out = dkim_check(&[
        "verify",
        sealed_file.to_str().unwrap(),
        records.to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    // postamt's own verifier agrees with dkimpy.
    let v = s
        .admin(&["arc", "verify", sealed_file.to_str().unwrap()])
        .success()
        .stdout;
    assert!(v.starts_with("arc=pass sealers=lists.test"), "{v}");
}

/// `[verify] organizational_domain`: the same mail, the same DNS, three
/// answers. SPF passes for bounce.bank.test, From: is mail.bank.test,
/// whose own record says p=reject. The tree walk (RFC 9989) finds no
/// record that joins the two names, so they are not aligned: refused.
/// The Public Suffix List (RFC 7489) makes bank.test the organizational
/// domain of both: aligned, delivered. A list file that makes bank.test a
/// public suffix separates them again.
#[test]
fn rfc7489_rfc9989_organizational_domains_by_tree_walk_or_public_suffix_list() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(json!({
        "bounce.bank.test": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"], "A": ["127.0.0.1"]},
        "mail.bank.test": {"A": ["192.0.2.10"]},
        "_dmarc.mail.bank.test": {"TXT": ["v=DMARC1; p=reject"]},
    }));
    let list_dir = tempfile::tempdir().unwrap();
    let list = list_dir.path().join("suffixes.dat");
    std::fs::write(
        &list,
        "// ===BEGIN ICANN DOMAINS===\ntest\nbank.test\n// ===END ICANN DOMAINS===\n",
    )
    .unwrap();
    for (setting, expected) in [
        (
            "organizational_domain = \"treewalk\"\n".to_string(),
            "550 5.7.26",
        ),
        ("organizational_domain = \"psl\"\n".to_string(), "250"),
        (
            format!(
                "organizational_domain = \"psl\"\npublic_suffix_list = \"{}\"\n",
                list.display()
            ),
            "550 5.7.26",
        ),
    ] {
        let s = Server::start(&format!(
            "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = 5\n\
             [verify]\nspf = \"mark\"\ndkim = true\ndmarc = \"enforce\"\n{setting}",
            dns.port()
        ));
        let mut c = smtp(&s, "smtp");
        c.smtp("EHLO client.example", "250");
        let r = send(
            &mut c,
            "news@bounce.bank.test",
            "From: CEO <ceo@mail.bank.test>\r\nSubject: news\r\n\r\nhi\r\n",
        );
        assert!(r.starts_with(expected), "{setting}: {r}");
    }
}

/// OpenDKIM (libopendkim, Debian's opendkim-tools) as the signer:
/// `opendkim-genkey` makes an RSA-2048 key, `opendkim-testmsg` signs with
/// it — rsa-sha1, relaxed/simple, the only algorithm that tool uses — and
/// postamt verifies. The signature's mathematics passes, and postamt
/// answers `policy` (RFC 8301 §3.1: rsa-sha1 is not trusted); published
/// as opendkim-genkey writes it (`h=sha256`), the key itself forbids
/// sha1, a permerror (RFC 6376 §3.6.1). A message changed after signing
/// fails.
#[test]
fn opendkim_signed_mail_is_verified_rsa_sha1_is_policy() {
    if !python_ready() || !require("/usr/sbin/opendkim-testmsg") {
        return;
    }
    let dns = Dns::start(json!({}));
    let s = server_with(&dns, "off", "off");
    let dir = s.dir.path().join("opendkim");
    std::fs::create_dir_all(&dir).unwrap();
    let genkey = std::process::Command::new("/usr/sbin/opendkim-genkey")
        .args(["-d", "bank.test", "-s", "od", "-b", "2048", "-D"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(genkey.status.success(), "{genkey:?}");
    // od.txt: the zone-file record, its quoted strings joined.
    let zone = std::fs::read_to_string(dir.join("od.txt")).unwrap();
    let record: String = zone.split('"').skip(1).step_by(2).collect();
    assert!(
        record.contains("h=sha256") && record.contains("p="),
        "{record}"
    );
    let message = "From: CEO <ceo@bank.test>\r\nTo: alice@example.test\r\nSubject: hello\r\n\
                   Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <o1@bank.test>\r\n\r\n\
                   Signed by OpenDKIM.\r\n";
    let signed = run_with_stdin(
        std::process::Command::new("/usr/sbin/opendkim-testmsg")
            .args(["-C", "-d", "bank.test", "-s", "od", "-k"])
            .arg(dir.join("od.private")),
        message.as_bytes(),
    )
    .success()
    .stdout;
    assert!(
        signed.starts_with("DKIM-Signature: v=1; a=rsa-sha1;"),
        "{signed}"
    );
    let file = s.dir.path().join("opendkim.eml");
    let verify = |record: &str, content: &str| {
        dns.set(json!({"od._domainkey.bank.test": {"TXT": [record]}}));
        std::fs::write(&file, content).unwrap();
        let out = s.admin(&["dkim", "verify", file.to_str().unwrap()]);
        out.stdout
    };
    let without_h = record.replace("h=sha256; ", "");
    let v = verify(&without_h, &signed);
    assert!(
        v.starts_with("dkim=policy header.d=bank.test header.s=od (rsa-sha1 is not trusted"),
        "{v}"
    );
    let v = verify(&record, &signed);
    assert!(v.starts_with("dkim=permerror header.d=bank.test"), "{v}");
    let v = verify(
        &without_h,
        &signed.replace("Signed by OpenDKIM.", "Changed."),
    );
    assert!(v.starts_with("dkim=fail header.d=bank.test"), "{v}");
}
