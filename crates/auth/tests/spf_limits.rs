//! Hostile SPF records get a bounded, correct result (RFC 7208 §4.6.4,
//! §11.1): include loops, deep include chains, void lookups, huge records.

use postamt_auth::dns::{Record, Zone};
use postamt_auth::spf::{Limits, Request, SpfResult, Verdict, verify_mail_from};

fn check(zone: &Zone, ip: &str, mail_from: &str) -> Verdict {
    let req = Request {
        ip: ip.parse().unwrap(),
        helo: "client.example",
        receiver: "mx.example",
        now: 0,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(verify_mail_from(zone, &req, mail_from, Limits::default()))
}

fn txt(zone: &mut Zone, name: &str, record: &str) {
    zone.add(name, Some(Record::Txt(record.to_string())));
}

#[test]
fn an_include_loop_ends_in_permerror_after_ten_terms() {
    let mut z = Zone::new();
    txt(&mut z, "a.example", "v=spf1 include:b.example -all");
    txt(&mut z, "b.example", "v=spf1 include:a.example -all");
    let v = check(&z, "192.0.2.1", "x@a.example");
    assert_eq!(v.result, SpfResult::PermError, "{v:?}");
    assert!(v.reason.contains("§4.6.4"), "{}", v.reason);
}

#[test]
fn a_hundred_deep_include_chain_ends_in_permerror() {
    let mut z = Zone::new();
    for i in 0..100 {
        txt(
            &mut z,
            &format!("d{i}.example"),
            &format!("v=spf1 include:d{}.example -all", i + 1),
        );
    }
    txt(&mut z, "d100.example", "v=spf1 +all");
    assert_eq!(
        check(&z, "192.0.2.1", "x@d0.example").result,
        SpfResult::PermError
    );
    // Ten deep is still within the limit.
    let mut z = Zone::new();
    for i in 0..9 {
        txt(
            &mut z,
            &format!("d{i}.example"),
            &format!("v=spf1 include:d{}.example -all", i + 1),
        );
    }
    txt(&mut z, "d9.example", "v=spf1 +all");
    assert_eq!(
        check(&z, "192.0.2.1", "x@d0.example").result,
        SpfResult::Pass
    );
}

#[test]
fn a_third_void_lookup_is_a_permerror() {
    let mut z = Zone::new();
    txt(
        &mut z,
        "v.example",
        "v=spf1 a:n1.v.example a:n2.v.example a:n3.v.example +all",
    );
    let v = check(&z, "192.0.2.1", "x@v.example");
    assert_eq!(v.result, SpfResult::PermError, "{v:?}");
    txt(
        &mut z,
        "w.example",
        "v=spf1 a:n1.w.example a:n2.w.example +all",
    );
    assert_eq!(
        check(&z, "192.0.2.1", "x@w.example").result,
        SpfResult::Pass
    );
}

#[test]
fn a_64_kb_record_is_parsed_in_bounded_time_and_judged() {
    let mut z = Zone::new();
    let mut record = String::from("v=spf1");
    while record.len() < 64 * 1024 {
        record.push_str(" ip4:198.51.100.7");
    }
    record.push_str(" -all");
    txt(&mut z, "big.example", &record);
    assert_eq!(
        check(&z, "192.0.2.1", "x@big.example").result,
        SpfResult::Fail
    );
    assert_eq!(
        check(&z, "198.51.100.7", "x@big.example").result,
        SpfResult::Pass
    );
}

#[test]
fn more_than_ten_mx_names_is_a_permerror() {
    let mut z = Zone::new();
    txt(&mut z, "mx.example", "v=spf1 mx -all");
    for i in 0..11 {
        z.add(
            "mx.example",
            Some(Record::Mx(10, format!("m{i}.mx.example"))),
        );
        z.add(
            &format!("m{i}.mx.example"),
            Some(Record::A("192.0.2.9".parse().unwrap())),
        );
    }
    assert_eq!(
        check(&z, "192.0.2.9", "x@mx.example").result,
        SpfResult::PermError
    );
}

#[test]
fn a_dns_timeout_is_a_temperror_and_an_empty_sender_checks_the_helo() {
    let mut z = Zone::new();
    z.add("slow.example", Some(Record::Timeout));
    assert_eq!(
        check(&z, "192.0.2.1", "x@slow.example").result,
        SpfResult::TempError
    );
    txt(&mut z, "client.example", "v=spf1 ip4:192.0.2.1 -all");
    let v = check(&z, "192.0.2.1", "");
    assert_eq!(
        (v.result, v.domain.as_str()),
        (SpfResult::Pass, "client.example")
    );
}
