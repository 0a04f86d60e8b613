//! SpamAssassin's Received-parser table (`../shared/corpus/headers/
//! received-parsing/spamassassin-rcvd_parser.json`, Apache-2.0): 144
//! fields, 34 of which carry no relay and must be ignored; for the others
//! the client IP, reverse name, HELO, receiving host, ident, envelope
//! sender, id and authentication. Cases answered differently are listed
//! with the reason, and the list must stay true.

use postamt_analyze::received::{Parsed, parse};
use serde_json::Value;

fn corpus(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/headers/received-parsing")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("the corpus")).unwrap()
}

/// (start of the field, the field that differs, why).
const DIFFERENT: &[(&str, &str, &str)] = &[
    (
        "from [127.0.0.1] ([127.0.0.1:50024]) by bm1-13.ed10.com",
        "helo",
        "ecelerity writes `from <HELO> ([ip:port])`: the client's HELO was the \
         literal [127.0.0.1], and we keep what it said; SpamAssassin drops a \
         literal here but keeps one elsewhere (`from [86.122.158.69] by …`)",
    ),
    (
        "from stgt-5f70f8a3.pool.mediaWays.net (EHLO user588a01834c)",
        "auth",
        "SpamAssassin knows that GMX's `(mp033)` marks an authenticated \
         submission; the field itself (`with SMTP`, no AUTH comment) does not say so",
    ),
];

fn field(h: &postamt_analyze::received::Hop, name: &str) -> String {
    match name {
        "ip" => h.ip.map(|i| i.to_string()).unwrap_or_default(),
        "rdns" => h.rdns.clone(),
        "helo" => h.helo.clone(),
        "by" => h.by.clone(),
        "ident" => h.ident.clone(),
        "envfrom" => h.envfrom.clone(),
        "id" => h.id.clone(),
        "auth" => h.auth.clone(),
        _ => String::new(),
    }
}

#[test]
fn spamassassin_received_parser_table() {
    let table = corpus("spamassassin-rcvd_parser.json");
    let cases = table["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 144);
    let mut wrong = Vec::new();
    let mut listed_seen = 0;
    for c in cases {
        let received = c["received"].as_str().unwrap();
        let got = parse(received);
        let listed = DIFFERENT
            .iter()
            .find(|(start, _, _)| received.starts_with(start));
        let mut diffs = Vec::new();
        match (&c["expected"], &got) {
            (Value::Null, Parsed::Local(..)) => {}
            (Value::Null, Parsed::Relay(h)) => {
                diffs.push(format!("relay, expected ignored: {h:?}"))
            }
            (exp, Parsed::Local(why, h)) if !exp.is_null() => {
                diffs.push(format!("ignored ({why}), expected {exp}: {h:?}"))
            }
            (exp, Parsed::Relay(h)) => {
                for name in ["ip", "rdns", "helo", "by", "ident", "envfrom", "id", "auth"] {
                    let want = exp[name].as_str().unwrap_or("");
                    // SpamAssassin writes an address-literal HELO as
                    // `!1.2.3.4!`, we as it was sent, `[1.2.3.4]`.
                    let want = match want.strip_prefix('!').and_then(|w| w.strip_suffix('!')) {
                        Some(ip) => format!("[{ip}]"),
                        None => want.to_string(),
                    };
                    let have = field(h, name);
                    // SpamAssassin names the software that authenticated
                    // (`Sendmail`, `CriticalPath`, `Postfix`, `LOGIN`); we
                    // record how (`ESMTPA`, `HTTP`) or that it happened:
                    // compared is whether the hop was authenticated.
                    let same = if name == "auth" {
                        want.is_empty() == have.is_empty()
                    } else {
                        want.eq_ignore_ascii_case(&have)
                    };
                    if !same {
                        diffs.push(format!("{name}: expected {want:?}, got {have:?}"));
                    }
                }
            }
            _ => unreachable!(),
        }
        match listed {
            Some((_, what, _)) => {
                listed_seen += 1;
                assert!(
                    diffs.iter().any(|d| d.starts_with(what)),
                    "{received}: listed as different in {what}, but: {diffs:?}"
                );
            }
            None if !diffs.is_empty() => {
                wrong.push(format!("{received}\n    {}", diffs.join("\n    ")))
            }
            None => {}
        }
    }
    assert_eq!(
        listed_seen,
        DIFFERENT.len(),
        "a DIFFERENT entry matches no case"
    );
    assert!(
        wrong.is_empty(),
        "{} of 144 differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// SpamAssassin's trust-path cases (`spamassassin-trust_path.json`): 32
/// header sets with trusted, internal and MSA networks; which relays are
/// trusted and which not, newest first. `X-Originating-IP` (a webmail
/// client) counts as the oldest relay, as SpamAssassin counts it.
#[test]
fn spamassassin_trust_path_cases() {
    use postamt_analyze::trust::{Networks, TrustConfig, trusted_count};
    let table = corpus("spamassassin-trust_path.json");
    let cases = table["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 32);
    let mut wrong = Vec::new();
    for (n, c) in cases.iter().enumerate() {
        let mut config = TrustConfig::default();
        for line in c["config"].as_array().unwrap() {
            let (key, nets) = line.as_str().unwrap().split_once(' ').unwrap();
            let nets = Networks::parse(nets).unwrap();
            match key {
                "trusted_networks" => config.trusted = nets,
                "internal_networks" => config.internal = nets,
                "msa_networks" => config.msa = nets,
                other => panic!("{other}"),
            }
        }
        let mut ips = Vec::new();
        for h in c["headers"].as_array().unwrap() {
            let h = h.as_str().unwrap();
            if let Some(v) = h.strip_prefix("Received: ") {
                ips.push(parse(v).hop().ip);
            } else if let Some(v) = h.strip_prefix("X-Originating-IP: ") {
                ips.push(postamt_analyze::received::ip_in(v));
            }
        }
        let trusted = trusted_count(&ips, &config);
        let ip_of = |relay: &Value| {
            let s = relay.as_str().unwrap();
            s.split_whitespace()
                .find_map(|w| w.strip_prefix("ip="))
                .unwrap()
                .parse::<std::net::IpAddr>()
                .unwrap()
        };
        let want_trusted: Vec<_> = c["expected"]["trusted"]
            .as_array()
            .unwrap()
            .iter()
            .map(ip_of)
            .collect();
        let want_untrusted: Vec<_> = c["expected"]["untrusted"]
            .as_array()
            .unwrap()
            .iter()
            .map(ip_of)
            .collect();
        let got_trusted: Vec<_> = ips[..trusted].iter().map(|i| i.unwrap()).collect();
        let got_untrusted: Vec<_> = ips[trusted..].iter().flatten().copied().collect();
        if got_trusted != want_trusted || got_untrusted != want_untrusted {
            wrong.push(format!(
                "case {n} {:?}: trusted {got_trusted:?} / {got_untrusted:?}, expected {want_trusted:?} / {want_untrusted:?}",
                c["config"]
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// rspamd cases answered differently: (start of the field, field, why).
const RSPAMD_DIFFERENT: &[(&str, &str, &str)] = &[
    (
        "from localhost ([127.0.0.1]:49019 helo=hummus",
        "from_hostname",
        "rspamd's from_hostname is the first word after `from` (Exim's reverse \
         name); the client's HELO is in `helo=`, and we report the HELO as the HELO",
    ),
    (
        "from smtp.spodhuis.org ([2a02:898:31:0:48:4558:736d:7470]:38689",
        "from_hostname",
        "as above: `helo=mx.spodhuis.org` is the HELO, smtp.spodhuis.org the reverse name",
    ),
    (
        "from [192.83.172.101] (HELLO 148.251.238.35) (148.251.238.35)",
        "from_ip",
        "a forged line (`by` is a mail address): qmail's `(ip)` form names \
         148.251.238.35 as the client, rspamd takes the bracketed word after \
         `from`; neither is a fact, and the analysis marks the hop as claimed",
    ),
];

/// rspamd's Received cases (`rspamd-received.json`): the client's
/// address and reverse name, the HELO, the receiving host.
#[test]
fn rspamd_received_cases() {
    let table = corpus("rspamd-received.json");
    let mut wrong = Vec::new();
    for c in table["cases"].as_array().unwrap() {
        let received = c["received"].as_str().unwrap();
        let h = parse(received).hop().clone();
        let exp = &c["expected"];
        let check = |name: &str, have: String, wrong: &mut Vec<String>| {
            if let Some(want) = exp[name].as_str()
                && !want.eq_ignore_ascii_case(&have)
            {
                wrong.push(format!(
                    "{received:?}: {name} expected {want:?}, got {have:?}"
                ));
            }
        };
        // Addresses compared as addresses (IPv6 has several spellings).
        let ip = h.ip.map(|i| i.to_string()).unwrap_or_default();
        for name in ["real_ip", "from_ip"] {
            let want = exp[name]
                .as_str()
                .and_then(|w| w.parse::<std::net::IpAddr>().ok());
            if want.is_some() && want != h.ip {
                wrong.push(format!(
                    "{received:?}: {name} expected {want:?}, got {ip:?}"
                ));
            }
        }
        check("real_hostname", h.rdns.clone(), &mut wrong);
        check("from_hostname", h.helo.clone(), &mut wrong);
        check("by_hostname", h.by.clone(), &mut wrong);
    }
    for (start, field, _) in RSPAMD_DIFFERENT {
        let before = wrong.len();
        wrong.retain(|w| {
            !(w.starts_with(format!("{:?}", start).trim_end_matches('"'))
                && w.contains(&format!(": {field} ")))
        });
        assert!(
            wrong.len() < before,
            "{start}: no longer different in {field}"
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Microsoft Message Header Analyzer's date and single-header cases
/// (`mha-received.json`): the date of each field in milliseconds, and the
/// receiving host, id and protocol.
#[test]
fn mha_dates_and_fields() {
    let table = corpus("mha-received.json");
    let mut wrong = Vec::new();
    for c in table["dates"].as_array().unwrap() {
        let header = c["header"].as_str().unwrap();
        let want = c["expected"]["dateNum"].as_i64().unwrap();
        let got = parse(header.trim_start_matches("Received:")).hop().date_ms;
        if got != Some(want) {
            wrong.push(format!("{header:?}: date {got:?}, expected {want}"));
        }
    }
    for c in table["single"].as_array().unwrap() {
        let header = c["header"].as_str().unwrap_or("");
        let Some(exp) = c["expected"].as_object() else {
            continue;
        };
        let h = parse(header.trim_start_matches("Received:")).hop().clone();
        if let Some(want) = exp.get("dateNum").and_then(Value::as_i64)
            && h.date_ms != Some(want)
        {
            wrong.push(format!("{header:?}: date {:?}, expected {want}", h.date_ms));
        }
        for (name, have) in [("id", &h.id), ("with", &h.with)] {
            if let Some(want) = exp.get(name).and_then(Value::as_str)
                && !want
                    .split("; ")
                    .next()
                    .unwrap_or("")
                    .eq_ignore_ascii_case(have)
            {
                wrong.push(format!("{header:?}: {name} {have:?}, expected {want:?}"));
            }
        }
        // MHA reads qmail's local hand-over `(qmail 10876 invoked from
        // network)` as a hop by "qmail"; it names no receiving host, and
        // we read it as a local hop (SpamAssassin ignores it too).
        if header.contains("invoked from network") {
            assert!(matches!(parse(&header[9..]), Parsed::Local(..)));
            continue;
        }
        if let Some(want) = exp.get("by").and_then(Value::as_str) {
            // MHA keeps the comment after the host (`host (SG)`) and
            // joins repeated clauses with `; `: the host is the first word.
            let host = want.split([' ', ';']).next().unwrap_or("");
            if !host.eq_ignore_ascii_case(&h.by) {
                wrong.push(format!("{header:?}: by {:?}, expected {host:?}", h.by));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
