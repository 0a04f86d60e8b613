//! The 57 real header sets of `../shared/corpus/headers/messages/`: each
//! gives a report without an error, and for a set of them the facts a
//! careful reader would name (hop count, origin, identities, findings).

use postamt_analyze::{Options, analyze};

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/headers/messages")
}

#[test]
fn every_corpus_message_gets_a_report() {
    let mut names: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    assert_eq!(names.len(), 57);
    for p in names {
        let m = std::fs::read(&p).unwrap();
        let a = analyze(&m, &Options::default());
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"verdict\""));
        let text = postamt_analyze::report::text(&a, postamt_analyze::text::Lang::En);
        if std::env::var("SHOW").is_ok() {
            println!("=== {}\n{text}", p.file_name().unwrap().to_string_lossy());
        }
    }
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

fn codes(a: &postamt_analyze::Analysis) -> Vec<&'static str> {
    a.findings.iter().map(|f| f.code).collect()
}

/// A display name holding another address (SpamAssassin's name-spoof
/// sample, and a PayPal phish): forged.
#[test]
fn display_names_that_show_another_address() {
    let a = analyze(&read("sa-spam-fromnamespoof.eml"), &Options::default());
    assert!(
        codes(&a).contains(&"display_name_address"),
        "{:?}",
        a.findings
    );
    assert_eq!(a.verdict.as_str(), "forged");
    assert_eq!(a.identities.from.as_deref(), Some("test1@gmail.com"));
    let a = analyze(&read("sa-spam-013.eml"), &Options::default());
    assert!(
        codes(&a).contains(&"display_name_address"),
        "{:?}",
        a.findings
    );
    assert_eq!(a.identities.from_domain.as_deref(), Some("paypal.com"));
}

/// A customs-office phish: the display name shows a supplier's address,
/// replies go to a look-alike of the supplier's domain (aquiila for
/// aquilla).
#[test]
fn replies_diverted_to_a_lookalike_domain() {
    let a = analyze(&read("ss-mail_test_15.eml"), &Options::default());
    let c = codes(&a);
    assert!(c.contains(&"display_name_address"), "{c:?}");
    assert!(c.contains(&"lookalike_domain"), "{:?}", a.findings);
    assert!(c.contains(&"from_reply_to_mismatch"), "{c:?}");
    assert_eq!(a.verdict.as_str(), "forged");
}

/// A mailing list's Reply-To to the list is no finding.
#[test]
fn mailing_lists_reply_to_the_list() {
    let a = analyze(&read("sa-nice-base64.eml"), &Options::default());
    assert!(
        !codes(&a).contains(&"from_reply_to_mismatch"),
        "{:?}",
        a.findings
    );
}

/// An Office 365 chain (MHA's sample): hops oldest first with delays;
/// without configuration the newest relay line is the one fact.
#[test]
fn office365_chain_hops_and_origin() {
    let a = analyze(&read("mha-outlook-nfcu.eml"), &Options::default());
    assert_eq!(a.received_count, 4);
    assert_eq!(a.hops.len(), 4);
    assert_eq!(a.hops[0].from_ip.as_deref(), Some("10.0.22.21"));
    assert_eq!(a.hops[0].by, "vmta6.response.nfcu.org");
    assert_eq!(a.hops[1].from_ip.as_deref(), Some("199.204.166.217"));
    assert!(a.hops[3].trusted && !a.hops[2].trusted);
    assert_eq!(a.origin_ip.as_deref(), Some("2a01:111:e400:c418::34"));
}

/// What a reader finds in each of the 57 header sets, analysed from the
/// outside and offline (no DNS, no configuration): the number of Received
/// lines, the origin (the newest line is the provider's; private and
/// loopback clients are its own hosts, so the first public client below
/// them is the origin, as SpamAssassin infers), the From: domain, the
/// verdict and the medium and high findings. Offline, without our own
/// results, most messages cannot be proven either way: `unknown` is the
/// honest verdict for them; the phishing samples are caught by what the
/// header itself shows (display names holding another address, replies
/// diverted to a look-alike or another domain, Received lines years
/// apart). Reviewed by hand against the headers.
type Expected = (
    &'static str,
    usize,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    &'static [&'static str],
);
const EXPECTED: &[Expected] = &[
    (
        "ma-arc-fail.eml",
        5,
        Some("209.85.220.41"),
        Some("zone.ee"),
        "unknown",
        &[],
    ),
    (
        "ma-arc-pass.eml",
        5,
        Some("209.85.220.41"),
        Some("ekiri.ee"),
        "unknown",
        &[],
    ),
    (
        "ma-authtest.eml",
        3,
        Some("217.146.67.33"),
        Some("ekiri.ee"),
        "unknown",
        &[],
    ),
    (
        "ma-bimi.eml",
        3,
        Some("141.193.32.19"),
        Some("srv.dev"),
        "unknown",
        &[],
    ),
    (
        "ma-message2.eml",
        2,
        Some("141.193.32.12"),
        Some("projectpending.com"),
        "unknown",
        &[],
    ),
    (
        "ma-message3.eml",
        3,
        Some("161.38.206.141"),
        Some("ttias.be"),
        "unknown",
        &[],
    ),
    (
        "ma-message4.eml",
        2,
        Some("141.193.32.19"),
        Some("srv.dev"),
        "unknown",
        &[],
    ),
    (
        "ma-zbimi.eml",
        3,
        Some("85.234.244.117"),
        Some("zone.ee"),
        "unknown",
        &[],
    ),
    (
        "ma-zproov.eml",
        2,
        Some("209.85.167.179"),
        Some("gmail.com"),
        "unknown",
        &[],
    ),
    (
        "mar-dmarc-report-microsoft.eml",
        5,
        Some("40.107.244.73"),
        Some("microsoft.com"),
        "unknown",
        &[],
    ),
    (
        "md-good_dk_gmail.eml",
        5,
        Some("66.249.92.174"),
        Some("gmail.com"),
        "unknown",
        &[],
    ),
    (
        "md-good_dk_yahoo.eml",
        4,
        Some("66.163.178.99"),
        Some("yahoo.com"),
        "unknown",
        &[],
    ),
    (
        "mha-ews-gmail-o365.eml",
        5,
        Some("2a01:111:e400:5a6b::50"),
        Some("gmail.com"),
        "unknown",
        &[],
    ),
    (
        "mha-github-o365.eml",
        5,
        Some("2a01:111:e400:c418::43"),
        None,
        "unknown",
        &[],
    ),
    (
        "mha-outlook-nfcu.eml",
        4,
        Some("2a01:111:e400:c418::34"),
        None,
        "unknown",
        &[],
    ),
    (
        "mk-bounce-o365.eml",
        6,
        Some("2603:10a6:600:21c::9"),
        Some("hmail.jitbit.com"),
        "unknown",
        &[],
    ),
    (
        "mk-delivery-status-1996.eml",
        4,
        Some("198.93.92.3"),
        Some("mm1.sprynet.com"),
        "unknown",
        &[],
    ),
    (
        "mk-dkim-gmail.eml",
        4,
        Some("2a00:1450:4010:c03::241"),
        Some("gmail.com"),
        "unknown",
        &[],
    ),
    (
        "mk-gmail-esmtpsa.eml",
        4,
        Some("2a00:1450:400c:c09::22d"),
        Some("gmail.com"),
        "unknown",
        &[],
    ),
    (
        "mk-issue358-o365.eml",
        5,
        Some("80.68.177.35"),
        Some("xyzlinux12345678.it"),
        "unknown",
        &[],
    ),
    (
        "sa-nice-001.eml",
        6,
        Some("212.17.35.15"),
        Some("ximian.com"),
        "unknown",
        &[],
    ),
    (
        "sa-nice-002.eml",
        7,
        Some("216.136.171.252"),
        Some("whitelist.spamassassin.taint.org"),
        "unknown",
        &[],
    ),
    (
        "sa-nice-007.eml",
        4,
        Some("24.102.84.250"),
        Some("debian.org"),
        "unknown",
        &[],
    ),
    (
        "sa-nice-base64.eml",
        8,
        Some("212.17.35.15"),
        Some("skynet.ie"),
        "unknown",
        &[],
    ),
    (
        "sa-nice-dkim-multiplereceived.eml",
        3,
        Some("171.71.176.72"),
        Some("dkim.org"),
        "unknown",
        &[],
    ),
    (
        "sa-nice-dmarc-rejectok.eml",
        1,
        Some("64.142.3.173"),
        Some("dmarc3.spamassassin.org"),
        "unknown",
        &[],
    ),
    (
        "sa-nice-dmarc-strictrejectok.eml",
        1,
        Some("64.142.3.173"),
        Some("dmarc4.spamassassin.org"),
        "unknown",
        &[],
    ),
    (
        "sa-nice-mailman.eml",
        9,
        Some("64.49.198.145"),
        Some("winehq.com"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-003.eml",
        6,
        Some("193.120.149.226"),
        Some("hotmail.com"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-004.eml",
        7,
        Some("193.120.149.226"),
        Some("whitelist.spamassassin.taint.org"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-005.eml",
        5,
        Some("213.105.180.140"),
        Some("gmx.net"),
        "suspicious",
        &["from_reply_to_mismatch"],
    ),
    (
        "sa-spam-006.eml",
        5,
        Some("213.105.180.140"),
        Some("hotmail.com"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-013.eml",
        2,
        Some("80.8.136.186"),
        Some("paypal.com"),
        "forged",
        &["display_name_address", "forged_received"],
    ),
    (
        "sa-spam-dmarc-nodmarc.eml",
        3,
        Some("65.214.43.157"),
        Some("dnsbltest.spamassassin.org"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-dmarc-noneko.eml",
        2,
        Some("2607:f8b0:4864:20::432"),
        Some("dmarc1.spamassassin.org"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-dmarc-quarko.eml",
        2,
        Some("2607:f8b0:4864:20::432"),
        Some("dmarc2.spamassassin.org"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-dmarc-rejectko.eml",
        2,
        Some("2607:f8b0:4864:20::432"),
        Some("dmarc3.spamassassin.org"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-dmarc-strictrejectko.eml",
        1,
        Some("1.2.3.4"),
        Some("dmarc4.spamassassin.org"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-dnsbl.eml",
        7,
        Some("150.51.53.1"),
        Some("example.com"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-freemail1.eml",
        2,
        Some("8.8.8.8"),
        Some("gmail.com"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-freemail2.eml",
        2,
        Some("8.8.8.8"),
        Some("gmail.com"),
        "suspicious",
        &["from_reply_to_mismatch"],
    ),
    (
        "sa-spam-fromnamespoof.eml",
        2,
        Some("8.8.8.8"),
        Some("gmail.com"),
        "forged",
        &["display_name_address", "from_reply_to_mismatch"],
    ),
    (
        "sa-spam-hashbl.eml",
        3,
        Some("193.120.211.219"),
        Some("yahoo.com"),
        "unknown",
        &[],
    ),
    (
        "sa-spam-unicode2.eml",
        3,
        Some("103.158.37.49"),
        Some("nj080.top"),
        "suspicious",
        &["from_reply_to_mismatch"],
    ),
    (
        "ss-mail_test_1.eml",
        6,
        Some("64.98.42.207"),
        Some("nalg.ru"),
        "suspicious",
        &["forged_received"],
    ),
    (
        "ss-mail_test_10.eml",
        15,
        Some("148.163.158.5"),
        Some("it.ibm.com"),
        "unknown",
        &[],
    ),
    (
        "ss-mail_test_12.eml",
        1,
        Some("96.202.181.20"),
        Some("hotmail.com"),
        "unknown",
        &[],
    ),
    (
        "ss-mail_test_13.eml",
        2,
        Some("168.2.182.90"),
        Some("continuityinsights.com"),
        "unknown",
        &[],
    ),
    (
        "ss-mail_test_15.eml",
        2,
        Some("11.143.209.23"),
        Some("ncs.gov.ng"),
        "forged",
        &[
            "display_name_address",
            "from_reply_to_mismatch",
            "lookalike_domain",
        ],
    ),
    (
        "ss-mail_test_17.eml",
        4,
        Some("200.57.129.98"),
        Some("bbva.mx"),
        "suspicious",
        &["from_reply_to_mismatch"],
    ),
    (
        "ss-mail_test_2.eml",
        4,
        Some("217.76.210.112"),
        Some("regione.vda.it"),
        "unknown",
        &[],
    ),
    (
        "ss-mail_test_3.eml",
        2,
        Some("67.175.76.202"),
        Some("randtelekom.com.tr"),
        "unknown",
        &[],
    ),
    (
        "ss-mail_test_4.eml",
        5,
        Some("69.5.6.174"),
        Some("fanox.com"),
        "unknown",
        &[],
    ),
    (
        "ss-mail_test_6.eml",
        2,
        Some("66.202.209.213"),
        Some("ggg.com"),
        "unknown",
        &[],
    ),
    (
        "ss-mail_test_7.eml",
        4,
        Some("55.56.95.227"),
        Some("voidstudicom.it"),
        "unknown",
        &[],
    ),
    (
        "ss-mail_test_8.eml",
        3,
        Some("198.23.142.158"),
        Some("moneytrack.top"),
        "unknown",
        &[],
    ),
    (
        "ss-mail_test_9.eml",
        5,
        Some("218.15.33.11"),
        Some("sgis.com.cn"),
        "unknown",
        &[],
    ),
];

#[test]
fn each_corpus_message_as_a_reader_sees_it() {
    assert_eq!(EXPECTED.len(), 57);
    let mut wrong = Vec::new();
    for (file, received, origin, from_domain, verdict, codes) in EXPECTED {
        let a = analyze(&read(file), &Options::default());
        let mut got_codes: Vec<&str> = a
            .findings
            .iter()
            .filter(|f| f.severity != postamt_analyze::analysis::Severity::Low)
            .map(|f| f.code)
            .collect();
        got_codes.sort();
        got_codes.dedup();
        let got = (
            a.received_count,
            a.origin_ip.as_deref(),
            a.identities.from_domain.as_deref(),
            a.verdict.as_str(),
            got_codes.as_slice(),
        );
        if got != (*received, *origin, *from_domain, *verdict, *codes) {
            wrong.push(format!("{file}: got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Microsoft Message Header Analyzer's two chains: hops oldest first with
/// MHA's delays (seconds to the hop before).
#[test]
fn mha_chains_hops_and_delays() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/headers/received-parsing/mha-received.json");
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for chain in table["chains"].as_array().unwrap() {
        let mut m = String::new();
        for h in chain["headers_top_to_bottom"].as_array().unwrap() {
            m.push_str(&h.as_str().unwrap().replace('\n', "\r\n"));
            m.push_str("\r\n");
        }
        m.push_str("\r\n");
        let a = analyze(m.as_bytes(), &Options::default());
        let rows = chain["expected_rows"].as_array().unwrap();
        assert_eq!(a.hops.len(), rows.len(), "{}", chain["suite"]);
        for (hop, row) in a.hops.iter().zip(rows) {
            let want = row["delaySort"].as_i64().unwrap();
            let got = hop
                .delay_s
                .map(|s| (s * 1000.0).round() as i64)
                .unwrap_or(-1);
            assert_eq!(
                got, want,
                "hop {} of {}: {hop:?}",
                hop.index, chain["suite"]
            );
            let date_ms = row["dateNum"].as_i64().unwrap();
            let ours = hop.date.clone().unwrap_or_default();
            assert!(!ours.is_empty(), "{date_ms}");
        }
    }
}
