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
