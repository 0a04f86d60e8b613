//! Authentication of inbound mail end to end, on loopback: the test's DNS
//! server (tests/clients/dns_server.py, dnslib) publishes SPF records, the
//! real server checks the MAIL FROM of mail on port 25 and records the
//! verdict (RFC 8601 Authentication-Results, RFC 7208 §9.1 Received-SPF),
//! or refuses a "fail" when `[verify] spf = "reject"`; DKIM signatures
//! made by dkimpy (an independent implementation) are verified and each
//! result recorded (RFC 8601 §2.7.1).

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
    Server::start(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = 5\n[verify]\nspf = \"{policy}\"\ndkim = true\n",
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
        forged.contains("Authentication-Results: mail.test;\r\n\tspf=fail (bank.test: -all matched 127.0.0.1) smtp.mailfrom=ceo@bank.test;\r\n\tdkim=none (no signature)\r\n"),
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
    let out = s
        .admin(&["dkim", "keygen", "signer.test", "--selector", "py"])
        .success()
        .stdout;
    let line = out.lines().find(|l| l.contains("._domainkey.")).unwrap();
    let (_, rest) = line.split_once(" IN TXT ").unwrap();
    let value: String = rest.split('"').skip(1).step_by(2).collect();
    dns.set(json!({
        "py._domainkey.signer.test": {"TXT": [value]},
        "signer.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    }));
    let key = s.dir.path().join("dkim/signer.test/py.pem");
    let msg = "From: news@signer.test\r\nTo: alice@example.test\r\nSubject: signed\r\n\
               Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <d1@signer.test>\r\n\r\nhello\r\n";
    let file = s.dir.path().join("d1.eml");
    std::fs::write(&file, msg).unwrap();
    let signed = dkim_check(&[
        "sign",
        file.to_str().unwrap(),
        key.to_str().unwrap(),
        "py",
        "signer.test",
    ]);
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let signed = signed.stdout.replace("\r\n", "\n").replace('\n', "\r\n");
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
