//! The DMARC cases of `../shared/corpus/dmarc/mail-auth/cases.yml`
//! (RFC 7489 and RFC 9989: alignment, policy discovery with `sp`/`np`,
//! the tree walk with `psd=` and its query cap, record parsing), each with
//! its DNS zone served by `dns::Zone`. The section on external report
//! addresses is for aggregate reports, which are not built yet.

use postamt_auth::dmarc::{self, Alignment, DmarcResult, Input, Psd};
use postamt_auth::dns::{Record, Zone};
use std::path::PathBuf;
use yaml_rust2::{Yaml, YamlLoader};

fn cases() -> Vec<Yaml> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/dmarc/mail-auth/cases.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).expect("yaml")
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or_else(|| panic!("not a string: {y:?}"))
}

fn zone(dns: &Yaml) -> Zone {
    let mut z = Zone::new();
    for (name, value) in dns.as_hash().into_iter().flatten() {
        let name = s(name);
        match value {
            Yaml::String(txt) => z.add(name, Some(Record::Txt(txt.clone()))),
            Yaml::Hash(h) => {
                for (k, v) in h {
                    assert_eq!(s(k), "A");
                    z.add(name, Some(Record::A(s(v).parse().unwrap())));
                }
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    z
}

fn alignment(y: &Yaml) -> Alignment {
    match s(y) {
        "pass" => Alignment::Pass,
        "fail-not-aligned" => Alignment::NotAligned,
        "none" => Alignment::None,
        other => panic!("{other}"),
    }
}

#[test]
fn mail_auth_dmarc_cases() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut run = 0;
    for doc in cases() {
        let section = s(&doc["section"]).to_string();
        for case in doc["cases"].as_vec().unwrap() {
            if section == "external-report-address-verification" {
                continue;
            }
            run += 1;
            let expect = &case["expect"];
            if section == "record-parsing" {
                let r = dmarc::parse(s(&case["record"])).expect("a valid record");
                let name = s(&case["record"]);
                assert_eq!(r.p.as_str(), s(&expect["p"]), "{name}");
                assert_eq!(r.sp.as_str(), s(&expect["sp"]), "{name}");
                assert_eq!(r.np.as_str(), s(&expect["np"]), "{name}");
                assert_eq!(r.strict_dkim, s(&expect["adkim"]) == "s", "{name}");
                assert_eq!(r.strict_spf, s(&expect["aspf"]) == "s", "{name}");
                let psd = match s(&expect["psd"]) {
                    "y" => Psd::Yes,
                    "n" => Psd::No,
                    _ => Psd::Unknown,
                };
                assert_eq!(r.psd, psd, "{name}");
                assert_eq!(r.testing, s(&expect["t"]) == "y", "{name}");
                let rua: Vec<&str> = expect["rua"]
                    .as_vec()
                    .unwrap()
                    .iter()
                    .map(|u| s(&u["uri"]))
                    .collect();
                assert_eq!(r.rua, rua, "{name}");
                continue;
            }
            let name = s(&case["name"]).to_string();
            let z = zone(&case["dns"]);
            let from = s(&case["from"]);
            let from_domain = from.rsplit_once('@').unwrap().1;
            let dkim_pass: Vec<&str> = match &case["dkim"] {
                Yaml::Hash(_) if s(&case["dkim"]["result"]) == "pass" => {
                    vec![s(&case["dkim"]["d"])]
                }
                _ => vec![],
            };
            let spf_pass = match (&case["spf"], &case["mail_from_domain"]) {
                (Yaml::String(r), Yaml::String(d)) if r == "pass" => Some(d.as_str()),
                _ => None,
            };
            let input = Input {
                from_domain,
                spf_pass_domain: spf_pass,
                dkim_pass_domains: dkim_pass,
                ..Input::default()
            };
            let v = rt.block_on(dmarc::check(&z, &input));
            if !expect["policy"].is_badvalue() {
                assert_eq!(
                    v.policy.map(|p| p.as_str()),
                    Some(s(&expect["policy"])),
                    "{name}: {v:?}"
                );
            }
            if !expect["dmarc_dkim"].is_badvalue() {
                assert_eq!(v.dkim, alignment(&expect["dmarc_dkim"]), "{name}: {v:?}");
            }
            if !expect["dmarc_spf"].is_badvalue() {
                assert_eq!(v.spf, alignment(&expect["dmarc_spf"]), "{name}: {v:?}");
            }
            if !expect["result"].is_badvalue() {
                assert_eq!(v.result, DmarcResult::None, "{name}: {v:?}");
                assert!(v.record.is_none() && v.policy.is_none(), "{name}");
            }
        }
    }
    assert_eq!(run, 18, "cases run");
}
