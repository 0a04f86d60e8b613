//! Authentication of inbound mail end to end, on loopback: the test's DNS
//! server (tests/clients/dns_server.py, dnslib) publishes SPF records, the
//! real server checks the MAIL FROM of mail on port 25 and records the
//! verdict (RFC 8601 Authentication-Results, RFC 7208 §9.1 Received-SPF),
//! or refuses a "fail" when `[verify] spf = "reject"`.

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
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = 5\n[verify]\nspf = \"{policy}\"\n",
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
        forged.contains("Authentication-Results: mail.test;\r\n\tspf=fail (bank.test: -all matched 127.0.0.1) smtp.mailfrom=ceo@bank.test\r\n"),
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
