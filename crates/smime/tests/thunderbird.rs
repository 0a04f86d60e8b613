//! The Thunderbird (NSS) S/MIME test messages of
//! `../shared/corpus/smime/thunderbird/smime/` (MPL-2.0): our verdict on
//! each equals Thunderbird's under its default policy (SHA-1 refused, a
//! signature around an encrypted layer ignored, a signing time after the
//! Date: refused), or the difference is listed with the reason. Keys:
//! password `nss`; verification time pinned inside the certificates'
//! validity (2026-01-26 .. 2031-01-26).

use postamt_smime::{Identity, Status, verify};
use serde_json::Value;

fn corpus(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/smime/thunderbird")
        .join(rel)
}

/// 2027-06-01T00:00:00Z.
const AT: i64 = 1_811_808_000;

/// (file, what differs, why).
/// Why: the four policies in which Thunderbird and postamt differ.
const A: &str = "Thunderbird ignores a signature around an encrypted part (bug 1806161) and reports none; postamt reports it: here INVALID, its content does not match (OpenSSL finds the same). Both count no good signature.";
const B: &str = "Thunderbird ignores a signature around an encrypted part (bug 1806161) and reports none; postamt reports it as not accepted (the signer need not have seen the content). Both count no good signature.";
const C: &str = "Thunderbird does not open an encrypted layer found inside a signature; postamt opens every layer it has the key for (Bob's) and reports it.";
const D: &str = "Thunderbird counts only the outermost of nested opaque signatures; postamt checks every signature, and Alice's inner one does not name the From: address (Dave) (RFC 8550 §3).";
const DIFFERENT: &[(&str, &str, &str)] = &[
    ("smime/alice.env.dsig.SHA1.multipart.eml", "sig", A),
    (
        "smime/alice.env.dsig.SHA1.multipart.dave.sig.SHA1.opaque.eml",
        "enc",
        C,
    ),
    (
        "smime/alice.env.sig.SHA1.opaque.dave.sig.SHA1.opaque.eml",
        "enc",
        C,
    ),
    ("smime/alice.env.dsig.SHA256.multipart.eml", "sig", A),
    (
        "smime/alice.env.dsig.SHA256.multipart.dave.sig.SHA256.opaque.eml",
        "enc",
        C,
    ),
    (
        "smime/alice.env.sig.SHA256.opaque.dave.sig.SHA256.opaque.eml",
        "enc",
        C,
    ),
    ("smime/alice.env.dsig.SHA384.multipart.eml", "sig", A),
    (
        "smime/alice.env.dsig.SHA384.multipart.dave.sig.SHA384.opaque.eml",
        "enc",
        C,
    ),
    (
        "smime/alice.env.sig.SHA384.opaque.dave.sig.SHA384.opaque.eml",
        "enc",
        C,
    ),
    ("smime/alice.env.dsig.SHA512.multipart.eml", "sig", A),
    (
        "smime/alice.env.dsig.SHA512.multipart.dave.sig.SHA512.opaque.eml",
        "enc",
        C,
    ),
    (
        "smime/alice.env.sig.SHA512.opaque.dave.sig.SHA512.opaque.eml",
        "enc",
        C,
    ),
    ("smime/alice.env.sig.SHA1.opaque.eml", "sig", B),
    ("smime/alice.env.sig.SHA256.opaque.eml", "sig", B),
    ("smime/alice.env.sig.SHA384.opaque.eml", "sig", B),
    ("smime/alice.env.sig.SHA512.opaque.eml", "sig", B),
    (
        "smime/alice.plain.sig.SHA256.opaque.dave.sig.SHA256.opaque.eml",
        "sig_good",
        D,
    ),
    (
        "smime/alice.plain.sig.SHA384.opaque.dave.sig.SHA384.opaque.eml",
        "sig_good",
        D,
    ),
    (
        "smime/alice.plain.sig.SHA512.opaque.dave.sig.SHA512.opaque.eml",
        "sig_good",
        D,
    ),
];

#[test]
fn thunderbird_default_policy_verdicts() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus("EXPECTED.json")).unwrap()).unwrap();
    let ca =
        openssl::x509::X509::stack_from_pem(&std::fs::read(corpus("smime/TestCA.pem")).unwrap())
            .unwrap();
    let bob =
        Identity::from_pkcs12(&std::fs::read(corpus("smime/Bob.p12")).unwrap(), "nss").unwrap();
    let mut wrong = Vec::new();
    let mut n = 0;
    for (file, e) in expected["files"].as_object().unwrap() {
        let Some(tb) = e.get("thunderbird_default") else {
            continue;
        };
        if !file.starts_with("smime/") {
            continue;
        }
        n += 1;
        let message = std::fs::read(corpus(file)).unwrap();
        let v = verify(&message, &ca, Some(AT), Some(&bob));
        let enc = v.layers.iter().any(|l| l.kind == "encrypted");
        let sig = v.layers.iter().any(|l| l.kind.starts_with("signed"));
        let good = v.status == Status::Valid;
        let mut diffs = Vec::new();
        if tb["enc"].as_bool() != Some(enc) {
            diffs.push(format!("enc {enc}"));
        }
        if tb["sig"].as_bool() != Some(sig) {
            diffs.push(format!("sig {sig}"));
        }
        if tb["sig_good"].as_bool() != Some(good) {
            diffs.push(format!("sig_good {good}"));
        }
        if let Some(text) = tb["check_text"].as_str() {
            let content = String::from_utf8_lossy(&v.content);
            if !content.contains(text) {
                diffs.push("check_text".into());
            }
        }
        let listed = DIFFERENT.iter().find(|(f, _, _)| f == file);
        match listed {
            Some((_, what, _)) => assert!(
                diffs.iter().any(|d| d.starts_with(what)),
                "{file}: listed as different in {what}, but {diffs:?}"
            ),
            None if !diffs.is_empty() => wrong.push(format!(
                "{file}: {diffs:?} (expected {tb}); layers: {:?}",
                v.layers
                    .iter()
                    .map(|l| format!("{} {:?}: {}", l.kind, l.status, l.detail))
                    .collect::<Vec<_>>()
            )),
            None => {}
        }
    }
    assert_eq!(n, 58);
    assert!(
        wrong.is_empty(),
        "{} of {n} differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
