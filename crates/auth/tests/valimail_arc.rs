//! The ValiMail ARC validation suite (`../shared/corpus/arc/valimail/
//! arc-draft-validation-tests.yml`, 171 tests): each message's ARC chain
//! (RFC 8617) is verified through `arc::verify_with` with the scenario's
//! TXT records served offline, and its chain validation status compared
//! with the suite's `cv`: None ↔ none, Pass ↔ pass, Fail ↔ fail or
//! permerror. A test we answer differently on purpose is listed in
//! `DIFFERENT` with the reason; a listed test that stops differing fails
//! too. (The signing tests, arc-draft-sign-tests.yml, are not run: we
//! verify only.)

#![cfg(feature = "resolver")]

mod offline_dns;

use offline_dns::{Zone, authenticator};
use postamt_auth::arc;
use postamt_auth::dkim::Verifier;
use std::path::PathBuf;
use yaml_rust2::{Yaml, YamlLoader};

fn suite() -> Vec<Yaml> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/arc/valimail/arc-draft-validation-tests.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&distinct_test_names(&text)).expect("yaml")
}

/// The suite gives four names to two different tests each, in its "Arc
/// Seal Fields" scenario (`as_fields_b_head_case`, `_b_head_unfold`,
/// `_b_eol_wsp`, `_b_inl_wsp`; YAML parsers that allow it keep only the
/// second, hence "171 tests"); yaml-rust2 refuses duplicate keys. A
/// repeated test name gets " (2)" appended, so all run: 175 tests.
fn distinct_test_names(yaml: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(yaml.len() + 16);
    for line in yaml.split_inclusive('\n') {
        if line.starts_with("---") {
            seen.clear();
        }
        let test_name = line
            .strip_prefix("  ")
            .filter(|l| !l.starts_with(' '))
            .and_then(|l| l.trim_end().strip_suffix(':'));
        match test_name {
            Some(name) if !seen.insert(name.to_string()) => {
                out.push_str(&format!("  {name} (2):\n"));
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn text(y: &Yaml) -> String {
    match y {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Null | Yaml::BadValue => String::new(),
        other => panic!("not a string: {other:?}"),
    }
}

/// The suite writes messages with bare LF; mail wants CRLF.
fn crlf(message: &str) -> Vec<u8> {
    message
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

/// Tests we answer differently on purpose: (test, our result, reason).
const DIFFERENT: &[(&str, &str, &str)] = &[
    (
        "ams_fields_c_na",
        "fail",
        "AMS without c=: mail-auth applies DKIM's default simple/simple (RFC 6376 §3.5, which \
         the AMS follows, RFC 8617 §4.1.2), and the signature does not verify that way; the \
         suite's Pass needs another default, which we do not take",
    ),
    (
        "ams_fields_h_empty",
        "fail",
        "AMS with an empty h=: RFC 6376 §3.5 requires h= to list From (the AMS takes DKIM's \
         h=, RFC 8617 §4.1.2), and mail-auth refuses the field; the suite passes it",
    ),
];

#[test]
fn valimail_arc_validation_suite_rfc8617() {
    let verifier = Verifier(authenticator());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut run, mut agree, mut wrong) = (0, 0, Vec::new());
    for doc in &suite() {
        let zone = Zone::default();
        for (name, record) in doc["txt-records"].as_hash().expect("txt-records") {
            zone.key(&text(name), &text(record));
        }
        for (name, t) in doc["tests"].as_hash().expect("tests") {
            run += 1;
            let name = text(name);
            // Three tests (cv_fail_i1_as_cv_fail, cv_fail_i2_as2_fail,
            // cv_fail_i2_as1_fail) leave cv empty; each has a seal stamped
            // cv=fail, which fails the chain (RFC 8617 §5.2 step 2).
            let expected = match text(&t["cv"]).trim() {
                "" if name.starts_with("cv_fail_") => "Fail".to_string(),
                cv => cv.to_string(),
            };
            let v = rt.block_on(arc::verify_with(
                &verifier,
                &crlf(&text(&t["message"])),
                &zone,
            ));
            let ours = v.result;
            let same = match expected.as_str() {
                "None" => ours == "none",
                "Pass" => ours == "pass",
                "Fail" => ours == "fail" || ours == "permerror",
                other => panic!("{name}: cv {other}"),
            };
            match DIFFERENT.iter().find(|(n, _, _)| *n == name) {
                Some((_, listed, why)) if *listed != ours || same => wrong.push(format!(
                    "{name}: listed as answered {listed} ({why}), but we answer {ours} (suite: {expected})"
                )),
                Some(_) => {}
                None if !same => wrong.push(format!(
                    "{name} ({}; spec {}): expected {expected}, we answer {ours} ({})",
                    text(&t["description"]),
                    text(&t["spec"]),
                    v.detail
                )),
                None => agree += 1,
            }
        }
    }
    for (name, _, _) in DIFFERENT {
        let listed = suite()
            .iter()
            .any(|doc| doc["tests"][&**name].as_hash().is_some());
        if !listed {
            wrong.push(format!("{name}: listed as different but not in the suite"));
        }
    }
    eprintln!(
        "ValiMail ARC: {run} tests, {agree} as the suite says, {} listed as different",
        DIFFERENT.len()
    );
    assert_eq!(run, 175);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
