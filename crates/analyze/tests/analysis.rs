//! The analysis on messages made for the case: our own Received line as
//! the first fact, a planted line claiming our host, our recorded
//! verdicts, look-alike senders, German text, JSON fields of the contract,
//! and hostile headers.

use postamt_analyze::analysis::{Options, Recheck, Verdict};
use postamt_analyze::text::Lang;
use postamt_analyze::trust::Networks;
use postamt_analyze::{analyze, report};

fn ours() -> Options {
    Options {
        hostnames: vec!["mail.example.org".into()],
        local_domains: vec!["example.org".into()],
        protected_names: vec!["Alice Chef".into()],
        ..Options::default()
    }
}

const FORGED: &str = "Received: from mx.relay.example.net (mx.relay.example.net [198.51.100.9])\r\n\
\tby mail.example.org (postamt) with ESMTPS (TLSv1_3 TLS13_AES_256_GCM_SHA384) id A1\r\n\
\tfor <bob@example.org>; Thu, 26 Nov 2026 12:00:05 +0000\r\n\
Authentication-Results: mail.example.org;\r\n\
\tspf=fail (bank.example: -all) smtp.mailfrom=ceo@bank.example;\r\n\
\tdkim=none;\r\n\
\tdmarc=fail (nothing aligned) header.from=bank.example policy.dmarc=reject\r\n\
Received: from evil.example (evil.example [203.0.113.66])\r\n\
\tby mail.example.org (postamt) with ESMTP id FAKE; Thu, 26 Nov 2026 11:00:00 +0000\r\n\
Received: from pc (unknown [192.0.2.1]) by smtp.evil.example with SMTP; Thu, 26 Nov 2026 11:59:00 +0000\r\n\
From: \"Alice Chef\" <ceo@bank.example>\r\n\
Reply-To: pay@exarnple.org\r\n\
Subject: wire the money\r\n\
Date: Thu, 26 Nov 2026 11:58:59 +0000\r\n\
Message-ID: <1@smtp.evil.example>\r\n\r\nToday.\r\n";

/// RFC 5321 §4.4 and SpamAssassin's model: our newest line is the first
/// fact, what the sender wrote below it is claimed; a line below claiming
/// our host is planted; our recorded DMARC failure makes it forged.
#[test]
fn rfc5321_4_4_our_line_is_the_first_fact_and_a_planted_one_is_found() {
    let a = analyze(FORGED.as_bytes(), &ours());
    assert_eq!(a.received_count, 3);
    assert_eq!(a.hops.len(), 3);
    let newest = &a.hops[2];
    assert!(newest.trusted && newest.by == "mail.example.org");
    assert_eq!(newest.tls, "TLSv1_3 TLS13_AES_256_GCM_SHA384");
    assert!(!a.hops[0].trusted && !a.hops[1].trusted);
    assert_eq!(a.origin_ip.as_deref(), Some("198.51.100.9"));
    assert_eq!(a.entry_ip.as_deref(), Some("198.51.100.9"));
    let codes: Vec<&str> = a.findings.iter().map(|f| f.code).collect();
    for c in [
        "forged_received",
        "dmarc_fail",
        "spf_fail",
        "display_name_impersonation",
        "lookalike_domain",
        "message_id_mismatch",
        "from_reply_to_mismatch",
    ] {
        assert!(codes.contains(&c), "{c} missing: {:?}", a.findings);
    }
    assert_eq!(a.verdict, Verdict::Forged);
    assert!(
        a.reasons.iter().any(|r| r.contains("DMARC failed")),
        "{:?}",
        a.reasons
    );
    assert_eq!(a.recorded.len(), 3);
    // The contract's JSON fields.
    let j = serde_json::to_value(&a).unwrap();
    for k in [
        "verdict",
        "reasons",
        "received_count",
        "hops",
        "origin_ip",
        "entry_ip",
        "identities",
        "alignment",
        "findings",
    ] {
        assert!(j.get(k).is_some(), "{k}");
    }
    assert_eq!(j["verdict"], "forged");
    assert_eq!(j["hops"][0]["index"], 1);
    assert!(j["hops"][2]["for"].is_string());
    assert_eq!(j["identities"]["from_domain"], "bank.example");
    assert_eq!(
        j["findings"][0]["severity"]
            .as_str()
            .map(|s| ["low", "medium", "high"].contains(&s)),
        Some(true)
    );
    // German.
    let de = report::text(
        &analyze(
            FORGED.as_bytes(),
            &Options {
                lang: Lang::De,
                ..ours()
            },
        ),
        Lang::De,
    );
    assert!(de.contains("Urteil: gefälscht"), "{de}");
    assert!(de.contains("untergeschoben"), "{de}");
}

/// A trusted relay of ours in `internal_networks`: the line it wrote is a
/// fact too when its name matches what our server recorded of it.
#[test]
fn trusted_relays_extend_the_boundary() {
    let m = "Received: from relay.example.org (relay.example.org [10.1.1.1]) by mail.example.org with ESMTP; Thu, 26 Nov 2026 12:00:05 +0000\r\n\
Received: from out.sender.example (out.sender.example [192.0.2.44]) by relay.example.org with ESMTPS; Thu, 26 Nov 2026 12:00:04 +0000\r\n\
Received: from laptop (unknown [198.51.100.2]) by out.sender.example with ESMTPSA; Thu, 26 Nov 2026 12:00:03 +0000\r\n\
From: a@sender.example\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\n";
    let mut o = ours();
    o.trust.internal = Networks::parse("10.0.0.0/8").unwrap();
    let a = analyze(m.as_bytes(), &o);
    let trusted: Vec<bool> = a.hops.iter().map(|h| h.trusted).collect();
    assert_eq!(trusted, [false, true, true]);
    assert_eq!(a.origin_ip.as_deref(), Some("192.0.2.44"));
    assert_eq!(a.entry_ip.as_deref(), Some("192.0.2.44"));
    assert_eq!(a.transit_s, Some(5.0));
    assert_eq!(a.hops[1].delay_s, Some(1.0));
}

/// A re-check with DNS: a signature that passes, aligned with From:,
/// makes an otherwise clean message genuine; one that fails is a finding.
#[test]
fn rfc6376_a_recheck_decides() {
    let m = "Received: from out.shop.example (out.shop.example [192.0.2.5]) by mail.example.org with ESMTPS (TLSv1_3 X); Thu, 26 Nov 2026 12:00:05 +0000\r\n\
DKIM-Signature: v=1; a=rsa-sha256; d=shop.example; s=s1; h=from:to:subject:date; bh=x; b=y\r\n\
From: Shop <news@shop.example>\r\nTo: bob@example.org\r\nSubject: news\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <a@shop.example>\r\n\r\n";
    let offline = analyze(m.as_bytes(), &ours());
    assert_eq!(offline.verdict, Verdict::Unknown);
    assert!(offline.signatures[0].result.contains("not checkable"));
    assert_eq!(
        offline.signatures[0].covers,
        ["from", "to", "subject", "date"]
    );
    let pass = Options {
        recheck: Some(Recheck {
            dkim: vec![("shop.example".into(), "s1".into(), "pass".into())],
            arc: None,
        }),
        ..ours()
    };
    let a = analyze(m.as_bytes(), &pass);
    assert_eq!(a.verdict, Verdict::Genuine, "{:?}", a.findings);
    assert!(a.alignment.dkim);
    let fail = Options {
        recheck: Some(Recheck {
            dkim: vec![("shop.example".into(), "s1".into(), "fail".into())],
            arc: Some(("fail".into(), vec![])),
        }),
        ..ours()
    };
    let a = analyze(m.as_bytes(), &fail);
    let codes: Vec<&str> = a.findings.iter().map(|f| f.code).collect();
    assert!(
        codes.contains(&"dkim_fail") && codes.contains(&"arc_chain_broken"),
        "{codes:?}"
    );
    assert_eq!(a.verdict, Verdict::Suspicious);
}

/// Hostile input: 10,000 Received lines, a header over 1 MB, invalid
/// UTF-8, encoded words, dates of year 0 and 9999, zone ids, no header at
/// all. Each gives a report that says what it could not read.
#[test]
fn hostile_headers_give_bounded_reports() {
    let mut m = String::new();
    for i in 0..10_000 {
        m.push_str(&format!("Received: from h{i} ([192.0.2.{}]) by h{} with SMTP; Mon, 1 Jan 0000 00:00:00 +0000\r\n", i % 250, i + 1));
    }
    m.push_str("From: =?utf-8?B?w4Q=?= <a@b.example>\r\n\r\n");
    let a = analyze(m.as_bytes(), &Options::default());
    assert_eq!(a.received_count, 10_000);
    assert!(a.hops.len() <= postamt_analyze::analysis::MAX_RECEIVED);
    assert!(
        a.unreadable.iter().any(|u| u.contains("10000")),
        "{:?}",
        a.unreadable
    );

    let mut big = "Subject: x\r\n".repeat(100_000).into_bytes();
    big.extend_from_slice(b"\r\nbody");
    let a = analyze(&big, &Options::default());
    assert!(
        !a.unreadable.is_empty(),
        "a header over 1 MB is cut and said so"
    );

    let mut bad = b"Received: from \xff\xfe ([fe80::1%eth0]) by x.example; Fri, 31 Dec 9999 23:59:59 +0000\r\nFrom: \xc3\x28 <a@\xff.example>\r\n\r\n".to_vec();
    bad.extend_from_slice(&[0xff; 100]);
    let a = analyze(&bad, &Options::default());
    assert_eq!(a.hops[0].from_ip.as_deref(), Some("fe80::1"));
    assert!(
        a.hops[0]
            .date
            .as_deref()
            .unwrap_or("")
            .starts_with("9999-12-31")
    );

    let a = analyze(b"", &Options::default());
    assert_eq!(a.verdict, Verdict::Unknown);
    assert!(!a.unreadable.is_empty());
    let a = analyze(b"\r\njust a body\r\n", &Options::default());
    assert!(!a.unreadable.is_empty());
}

/// RFC 8601: a signature our server recorded as passing on arrival that
/// fails a re-check now was changed since it arrived.
#[test]
fn rfc8601_a_signature_that_passed_on_arrival_and_fails_now() {
    let m = "Received: from out.shop.example (out.shop.example [192.0.2.5]) by mail.example.org with ESMTPS; Thu, 26 Nov 2026 12:00:05 +0000\r\n\
Authentication-Results: mail.example.org; dkim=pass header.d=shop.example header.s=s1 header.a=rsa-sha256; dmarc=pass header.from=shop.example\r\n\
DKIM-Signature: v=1; a=rsa-sha256; d=shop.example; s=s1; h=from:to:subject:date; bh=x; b=y\r\n\
From: news@shop.example\r\nTo: bob@example.org\r\nSubject: changed\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\n";
    let o = Options {
        recheck: Some(Recheck {
            dkim: vec![("shop.example".into(), "s1".into(), "fail".into())],
            arc: None,
        }),
        ..ours()
    };
    let a = analyze(m.as_bytes(), &o);
    assert_eq!(a.signatures[0].recorded.as_deref(), Some("pass"));
    let f = a
        .findings
        .iter()
        .find(|f| f.code == "dkim_fail")
        .expect("dkim_fail");
    assert!(
        f.detail.contains("passed when the message arrived"),
        "{}",
        f.detail
    );
    let text = report::text(&a, Lang::En);
    assert!(
        text.contains("DKIM d=shop.example s=s1: fail, on arrival pass"),
        "{text}"
    );
}
