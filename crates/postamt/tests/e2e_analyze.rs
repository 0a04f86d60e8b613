//! `postamt analyze` end to end: a message delivered by the running
//! server (SPF and DMARC checked against the test's DNS) and analysed with
//! the server's own config — our Received line is the first fact, our
//! recorded results count — and the corpus's real messages analysed from
//! the outside, as JSON and in German.

mod common;

use common::*;
use serde_json::json;

fn analyze_in(dir: &std::path::Path, args: &[&str]) -> Output {
    run_with_stdin(
        std::process::Command::new(BIN)
            .current_dir(dir)
            .arg("analyze")
            .args(args),
        b"",
    )
}

#[test]
fn a_delivered_message_analysed_with_the_servers_config() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(json!({
        "friend.test": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"], "A": ["127.0.0.1"]},
        "_dmarc.friend.test": {"TXT": ["v=DMARC1; p=reject"]},
    }));
    let s = Server::start(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = 5\n\
         [verify]\nspf = \"mark\"\ndkim = true\ndmarc = \"enforce\"\n",
        dns.port()
    ));
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO client.example", "250");
    c.smtp("MAIL FROM:<pal@friend.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(b"Received: from pc (unknown [192.0.2.9]) by mail.test with ESMTP; Thu, 26 Nov 2026 11:00:00 +0000\r\n\
From: Pal <pal@friend.test>\r\nSubject: hi\r\nMessage-ID: <1@friend.test>\r\n\r\nhello\r\n.\r\n");
    assert!(c.reply()[0].starts_with("250"));
    let got = maildrop(&s, "alice@example.test", "alice-pw");
    let file = s.dir.path().join("got.eml");
    std::fs::write(&file, &got[0]).unwrap();
    let out = s
        .admin(&["analyze", "--offline", "--json", file.to_str().unwrap()])
        .success()
        .stdout;
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Our line: the first fact; its client is the origin and the entry.
    let hops = a["hops"].as_array().unwrap();
    let newest = hops.last().unwrap();
    assert_eq!(newest["by"], "mail.test", "{out}");
    assert_eq!(newest["trusted"], true);
    assert_eq!(a["origin_ip"], "127.0.0.1");
    assert_eq!(a["entry_ip"], "127.0.0.1");
    // The line the sender planted, claiming our host, is found.
    let codes: Vec<&str> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"forged_received"), "{codes:?}");
    // Our recorded results count: DMARC passed for friend.test.
    assert!(
        a["recorded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "dmarc" && r["result"] == "pass"),
        "{out}"
    );
    assert_eq!(a["identities"]["from_domain"], "friend.test");
    assert_eq!(a["alignment"]["spf"], true);
}

#[test]
fn corpus_messages_from_the_outside_json_and_german() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/headers/messages/ss-mail_test_15.eml");
    let out = analyze_in(
        dir.path(),
        &["--offline", "--json", corpus.to_str().unwrap()],
    )
    .success()
    .stdout;
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(a["verdict"], "forged");
    for k in [
        "reasons",
        "received_count",
        "hops",
        "origin_ip",
        "entry_ip",
        "identities",
        "alignment",
        "findings",
    ] {
        assert!(a.get(k).is_some(), "{k}");
    }
    let de = analyze_in(
        dir.path(),
        &["--offline", "--lang", "de", corpus.to_str().unwrap()],
    )
    .success()
    .stdout;
    assert!(de.starts_with("Urteil: gefälscht"), "{de}");
    assert!(
        de.contains("eine Domain, die wie aquillaindustries.com aussehen soll"),
        "{de}"
    );
    // From stdin, and a file that does not exist.
    let stdin = run_with_stdin(
        std::process::Command::new(BIN)
            .current_dir(dir.path())
            .args(["analyze", "--offline", "-"]),
        b"From: a@b.example\r\n\r\n",
    )
    .success()
    .stdout;
    assert!(stdin.starts_with("Verdict: unknown"), "{stdin}");
    let missing = analyze_in(dir.path(), &["--offline", "/nonexistent.eml"]);
    assert_ne!(missing.code, 0);
}

/// The re-check with DNS (not `--offline`): a message signed for
/// bank.test (postamt's own key, published in the test's DNS) is verified
/// on arrival and again by `postamt analyze` — genuine; the same message
/// changed after arrival fails the re-check, and the analysis says it was
/// changed since it arrived (RFC 6376 §6.3, RFC 8601).
#[test]
fn rfc6376_dkim_rechecked_through_dns() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(json!({}));
    let s = Server::start(&format!(
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = 5\n\
         [verify]\nspf = \"mark\"\ndkim = true\ndmarc = \"enforce\"\n",
        dns.port()
    ));
    let key = s.dkim_keygen("bank.test", "s1", &["--algorithm", "ed25519"]);
    dns.set(json!({
        "s1._domainkey.bank.test": {"TXT": [key]},
        "_dmarc.bank.test": {"TXT": ["v=DMARC1; p=reject"]},
        "bank.test": {"A": ["192.0.2.10"]},
    }));
    let file = s.dir.path().join("news.eml");
    std::fs::write(
        &file,
        "From: Bank <news@bank.test>\r\nTo: alice@example.test\r\nSubject: statement\r\n\
         Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <s1@bank.test>\r\n\r\nYour statement.\r\n",
    )
    .unwrap();
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
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO client.example", "250");
    c.smtp("MAIL FROM:<news@bank.test>", "250");
    c.smtp("RCPT TO:<alice@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(format!("{signed}.\r\n").as_bytes());
    assert!(c.reply()[0].starts_with("250"));
    let stored = maildrop(&s, "alice@example.test", "alice-pw").remove(0);
    let got = s.dir.path().join("got.eml");
    std::fs::write(&got, &stored).unwrap();
    let out = s
        .admin(&["analyze", "--json", got.to_str().unwrap()])
        .success()
        .stdout;
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(a["signatures"][0]["result"], "pass", "{out}");
    assert_eq!(a["signatures"][0]["recorded"], "pass", "{out}");
    assert_eq!(a["verdict"], "genuine", "{out}");
    std::fs::write(
        &got,
        stored.replace("Subject: statement", "Subject: pay now"),
    )
    .unwrap();
    let out = s
        .admin(&["analyze", "--json", got.to_str().unwrap()])
        .success()
        .stdout;
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(a["signatures"][0]["result"], "fail", "{out}");
    let changed = a["findings"].as_array().unwrap().iter().any(|f| {
        f["code"] == "dkim_fail"
            && f["detail"]
                .as_str()
                .unwrap()
                .contains("passed when the message arrived")
    });
    assert!(changed, "{out}");
    assert_ne!(a["verdict"], "genuine");
}
