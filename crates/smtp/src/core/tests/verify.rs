//! The core's mail-authentication steps without DNS: SPF, DKIM, ARC and
//! DMARC verdicts come from the test directory (`super::directory`), and
//! what the core makes of them is checked — the headers it writes, the
//! replies it refuses with, the quarantine it asks for.

use super::*;

fn spf_core(policy: SpfPolicy, mode: Mode) -> SmtpCore {
    started(CoreConfig {
        spf: policy,
        ..config(mode)
    })
}

/// RFC 8601 §2.7.2 and RFC 7208 §9.1: the SPF verdicts (MAIL FROM, then
/// HELO, RFC 7208 §2.3) are recorded in the
/// message, our Authentication-Results first after our Received:, and a
/// fail is only marked (RFC 7489 §10.1) unless the policy is "reject".
#[test]
fn rfc8601_rfc7208_9_1_the_spf_verdict_is_recorded_after_received() {
    let mut c = spf_core(SpfPolicy::Mark, Mode::Inbound);
    cmd(&mut c, "EHLO client.test", "250");
    cmd(&mut c, "MAIL FROM:<ceo@forged.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    let d = delivery(data(&mut c, "From: ceo@forged.test\r\n\r\nhi\r\n"));
    let text = String::from_utf8(d.content).unwrap();
    assert!(
        text.contains("\r\nAuthentication-Results: mx.test;\r\n\tspf=fail (forged.test: decided for 192.0.2.7) smtp.mailfrom=ceo@forged.test;\r\n\tspf=none (client.test publishes no SPF record) smtp.helo=client.test\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Received-SPF: fail (mx.test: forged.test: decided for 192.0.2.7) client-ip=192.0.2.7;\r\n\tenvelope-from=\"ceo@forged.test\"; helo=\"client.test\"; receiver=mx.test; identity=mailfrom\r\n"),
        "{text}"
    );
    let received_end = text.find("\r\nAuthentication-Results:").unwrap();
    assert!(!text[..received_end].contains("\r\n\r\n"), "{text}");
    assert!(
        text[..received_end].starts_with("Received: from client.test"),
        "{text}"
    );
}

#[test]
fn rfc7372_spf_policy_reject_refuses_fail_and_defers_temperror() {
    let mut c = spf_core(SpfPolicy::Reject, Mode::Inbound);
    cmd(&mut c, "EHLO client.test", "250");
    cmd(&mut c, "MAIL FROM:<ceo@forged.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    let w = wire(&data(&mut c, "Subject: x\r\n\r\nhi\r\n"));
    assert!(
        w.starts_with("550 5.7.23 SPF: forged.test: decided for 192.0.2.7"),
        "{w}"
    );
    cmd(&mut c, "MAIL FROM:<a@slow.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    let w = wire(&data(&mut c, "Subject: x\r\n\r\nhi\r\n"));
    assert!(w.starts_with("451 4.7.24 "), "{w}");
    cmd(&mut c, "MAIL FROM:<a@fine.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    let d = delivery(data(&mut c, "Subject: x\r\n\r\nhi\r\n"));
    assert!(String::from_utf8(d.content).unwrap().contains("spf=pass"));
}

/// RFC 8601 §5: an incoming Authentication-Results: that claims our
/// authserv-id is removed (folded lines too); other servers' stay. LMTP
/// trusts the MTA in front and neither checks nor removes; without a
/// policy nothing is checked, but the forged field still goes.
#[test]
fn rfc8601_5_forged_results_of_ours_are_removed() {
    let forged = "Authentication-Results: (sure) MX.TEST;\r\n\tspf=pass smtp.mailfrom=ceo@bank.test\r\n\
                  Authentication-Results: other.example; dkim=pass\r\n\
                  Authentication-Results: mx.test.evil; spf=pass\r\n\
                  Subject: s\r\n\r\n\
                  Authentication-Results: mx.test; in the body\r\n";
    for (policy, mode) in [
        (SpfPolicy::Mark, Mode::Inbound),
        (SpfPolicy::Off, Mode::Inbound),
        (SpfPolicy::Off, Mode::Lmtp),
    ] {
        let mut c = spf_core(policy, mode);
        let helo = if mode == Mode::Lmtp { "LHLO" } else { "EHLO" };
        cmd(&mut c, &format!("{helo} client.test"), "250");
        cmd(&mut c, "MAIL FROM:<a@fine.test>", "250");
        cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
        let d = delivery(data(&mut c, forged));
        let text = String::from_utf8(d.content).unwrap();
        let kept = mode == Mode::Lmtp;
        assert_eq!(text.contains("(sure) MX.TEST;"), kept, "{mode:?} {text}");
        assert_eq!(text.contains("smtp.mailfrom=ceo@bank.test"), kept, "{text}");
        assert!(text.contains("Authentication-Results: other.example; dkim=pass\r\n"));
        assert!(text.contains("Authentication-Results: mx.test.evil; spf=pass\r\n"));
        assert!(text.contains("Authentication-Results: mx.test; in the body\r\n"));
        assert_eq!(
            text.contains(
                "\tspf=pass (fine.test: decided for 192.0.2.7) smtp.mailfrom=a@fine.test"
            ),
            policy == SpfPolicy::Mark
        );
    }
}

/// RFC 8601 §2.7.1: one dkim result per signature in the same
/// Authentication-Results as SPF's; DKIM alone is recorded, not enforced.
#[test]
fn rfc8601_2_7_1_dkim_results_join_spf_in_one_field() {
    let mut c = started(CoreConfig {
        spf: SpfPolicy::Mark,
        dkim: true,
        ..config(Mode::Inbound)
    });
    cmd(&mut c, "EHLO client.test", "250");
    cmd(&mut c, "MAIL FROM:<carol@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    let d = delivery(data(&mut c, "From: carol@remote.test\r\n\r\nhi\r\n"));
    let text = String::from_utf8(d.content).unwrap();
    assert!(
        text.contains("Authentication-Results: mx.test;\r\n\tspf=pass (remote.test: decided for 192.0.2.7) smtp.mailfrom=carol@remote.test;\r\n\tspf=none (client.test publishes no SPF record) smtp.helo=client.test;\r\n\tdkim=pass header.d=remote.test header.s=s1 header.a=ed25519-sha256\r\nReceived-SPF: pass "),
        "{text}"
    );
    assert_eq!(text.matches("Authentication-Results:").count(), 1);
}

/// RFC 7489 §6.3: with DMARC enforced, p=reject is refused with 550 5.7.26
/// (RFC 7372) and p=quarantine goes to Junk; with "mark", both are only
/// recorded.
#[test]
fn rfc7489_6_3_dmarc_policies_are_applied_when_enforced() {
    for (dmarc, refused, quarantined) in [
        (DmarcPolicy::Enforce, true, true),
        (DmarcPolicy::Mark, false, false),
    ] {
        let mut c = started(CoreConfig {
            spf: SpfPolicy::Mark,
            dkim: true,
            dmarc,
            ..config(Mode::Inbound)
        });
        cmd(&mut c, "EHLO client.test", "250");
        cmd(&mut c, "MAIL FROM:<ceo@remote.test>", "250");
        cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
        let step = data(&mut c, "From: CEO <ceo@bank.test>\r\n\r\npay\r\n");
        if refused {
            let w = wire(&step);
            assert!(
                w.starts_with("550 5.7.26 DMARC: nothing aligned with bank.test"),
                "{w}"
            );
        } else {
            let d = delivery(step);
            let text = String::from_utf8(d.content).unwrap();
            assert!(text.contains(";\r\n\tdmarc=fail (nothing aligned with bank.test) header.from=bank.test policy.dmarc=reject\r\n"), "{text}");
            c.delivered(&[Outcome::Stored { queue_id: None }]);
        }
        cmd(&mut c, "MAIL FROM:<shop@remote.test>", "250");
        cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
        let d = delivery(data(&mut c, "From: shop@shop.test\r\n\r\nsale\r\n"));
        assert_eq!(d.quarantine, quarantined, "{dmarc:?}");
        c.delivered(&[Outcome::Stored { queue_id: None }]);
        cmd(&mut c, "MAIL FROM:<pal@remote.test>", "250");
        cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
        let d = delivery(data(&mut c, "From: pal@remote.test\r\n\r\nhi\r\n"));
        assert!(!d.quarantine);
        assert!(
            String::from_utf8(d.content)
                .unwrap()
                .contains("\tdmarc=none (")
        );
    }
}

/// RFC 8617 §7.2, RFC 7489 §10.4: a DMARC failure under p=reject is not
/// applied when the ARC chain passed and its newest seal is from a
/// trusted sealer (a mailing list that broke the author's signature); an
/// untrusted sealer excuses nothing.
#[test]
fn rfc8617_7_2_a_trusted_arc_sealer_excuses_a_dmarc_failure() {
    for (trusted, refused) in [(vec!["LISTS.test".to_string()], false), (vec![], true)] {
        let mut c = started(CoreConfig {
            spf: SpfPolicy::Mark,
            dkim: true,
            dmarc: DmarcPolicy::Enforce,
            trusted_arc_sealers: trusted,
            ..config(Mode::Inbound)
        });
        cmd(&mut c, "EHLO lists.test", "250");
        cmd(&mut c, "MAIL FROM:<list-bounces@remote.test>", "250");
        cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
        let step = data(&mut c, "From: CEO <ceo@bank.test>\r\n\r\nto the list\r\n");
        if refused {
            assert!(wire(&step).starts_with("550 5.7.26"), "{}", wire(&step));
            continue;
        }
        let d = delivery(step);
        assert!(!d.quarantine);
        let text = String::from_utf8(d.content).unwrap();
        assert!(text.contains(";\r\n\tarc=pass (sealed by lists.test);\r\n\tdmarc=fail (nothing aligned with bank.test; policy not applied: ARC chain sealed by trusted lists.test, RFC 8617) header.from=bank.test policy.dmarc=reject\r\n"), "{text}");
        c.delivered(&[Outcome::Stored { queue_id: None }]);
    }
}

/// RFC 9990 §2.1: what DMARC saw of each message whose policy domain asks
/// for reports is kept for the aggregate report: the disposition this
/// receiver chose, the alignment results, the identifiers and the raw
/// results, and the reason when the disposition is milder than asked.
#[test]
fn rfc9990_2_1_what_dmarc_saw_is_kept_for_the_aggregate_report() {
    use postamt_auth::report::Override;
    let reporting = |dmarc, trusted: Vec<String>| {
        started(CoreConfig {
            spf: SpfPolicy::Mark,
            dkim: true,
            dmarc,
            trusted_arc_sealers: trusted,
            dmarc_reports: true,
            ..config(Mode::Inbound)
        })
    };
    // Refused under p=reject.
    let mut c = reporting(DmarcPolicy::Enforce, vec![]);
    cmd(&mut c, "EHLO client.test", "250");
    cmd(&mut c, "MAIL FROM:<ceo@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    assert!(c.take_report().is_none(), "nothing before the message");
    let w = wire(&data(&mut c, "From: CEO <ceo@bank.test>\r\n\r\npay\r\n"));
    assert!(w.starts_with("550 5.7.26"), "{w}");
    let seen = c.take_report().expect("a report row");
    assert!(c.take_report().is_none(), "taken once");
    assert_eq!(seen.published.domain, "bank.test");
    assert_eq!(seen.published.p, "reject");
    assert_eq!(seen.published.rua, ["dmarc@bank.test"]);
    let row = &seen.row;
    assert_eq!(row.source_ip, "192.0.2.7");
    assert_eq!(row.header_from, "bank.test");
    assert_eq!(row.envelope_from, "remote.test");
    assert_eq!(
        (
            row.disposition.as_str(),
            row.dkim.as_str(),
            row.spf.as_str()
        ),
        ("reject", "fail", "fail")
    );
    assert!(row.reasons.is_empty());
    assert_eq!(row.spf_result, Some(("remote.test".into(), "pass".into())));
    assert_eq!(row.dkim_results.len(), 1);
    // Quarantined under p=quarantine.
    cmd(&mut c, "MAIL FROM:<shop@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    let d = delivery(data(&mut c, "From: shop@shop.test\r\n\r\nsale\r\n"));
    assert!(d.quarantine);
    let seen = c.take_report().unwrap();
    assert_eq!(
        (
            seen.published.domain.as_str(),
            seen.row.disposition.as_str()
        ),
        ("shop.test", "quarantine")
    );
    c.delivered(&[Outcome::Stored { queue_id: None }]);
    // No DMARC record: nothing to report.
    cmd(&mut c, "MAIL FROM:<pal@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    delivery(data(&mut c, "From: pal@remote.test\r\n\r\nhi\r\n"));
    assert!(c.take_report().is_none());
    c.delivered(&[Outcome::Stored { queue_id: None }]);

    // Excused by a trusted ARC sealer: delivered, and the report says why.
    let mut c = reporting(DmarcPolicy::Enforce, vec!["lists.test".into()]);
    cmd(&mut c, "EHLO lists.test", "250");
    cmd(&mut c, "MAIL FROM:<list-bounces@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    delivery(data(
        &mut c,
        "From: CEO <ceo@bank.test>\r\n\r\nto the list\r\n",
    ));
    let seen = c.take_report().unwrap();
    assert_eq!(seen.row.disposition, "none");
    assert_eq!(seen.row.reasons.len(), 1);
    assert_eq!(seen.row.reasons[0].0, Override::TrustedForwarder);
    assert!(seen.row.reasons[0].1.contains("lists.test"));

    // Only marked: delivered, reason local_policy.
    let mut c = reporting(DmarcPolicy::Mark, vec![]);
    cmd(&mut c, "EHLO client.test", "250");
    cmd(&mut c, "MAIL FROM:<ceo@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    delivery(data(&mut c, "From: ceo@bank.test\r\n\r\npay\r\n"));
    let seen = c.take_report().unwrap();
    assert_eq!(seen.row.disposition, "none");
    assert_eq!(seen.row.reasons[0].0, Override::LocalPolicy);

    // Reports off: nothing kept.
    let mut c = started(CoreConfig {
        spf: SpfPolicy::Mark,
        dkim: true,
        dmarc: DmarcPolicy::Enforce,
        ..config(Mode::Inbound)
    });
    cmd(&mut c, "EHLO client.test", "250");
    cmd(&mut c, "MAIL FROM:<ceo@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    data(&mut c, "From: ceo@bank.test\r\n\r\npay\r\n");
    assert!(c.take_report().is_none());
}
