//! S/MIME against OpenSSL's own command line (`openssl pkcs12`, `openssl
//! cms`), both ways: our PKCS#12 files open in OpenSSL, our signatures and
//! encryption are verified and decrypted by `openssl cms`, and OpenSSL's
//! by `postamt smime`; tampering, unknown CAs and plain mail get the exit
//! codes of interface.md (0 valid and trusted, 1 invalid or untrusted, 2
//! not signed).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Without a Date: (a signing time more than an hour away from it is
/// refused, as Thunderbird does).
const MESSAGE: &str = "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: grades\r\n\r\n\
                       Bob, your grade is A.\r\n";

fn openssl(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run_with_stdin(Command::new("openssl").current_dir(dir).args(args), stdin)
}

fn smime(s: &Server, args: &[&str], stdin: &[u8]) -> Output {
    let mut all = vec!["smime"];
    all.extend_from_slice(args);
    s.admin_stdin(&all, std::str::from_utf8(stdin).unwrap())
}

/// The CA, alice's and bob's identities, and their certificates and keys
/// extracted by OpenSSL from our PKCS#12 files.
fn setup() -> (Server, std::path::PathBuf) {
    let s = Server::prepare("");
    let d = s.dir.path().to_path_buf();
    let out = smime(
        &s,
        &["ca", "init", "--name", "Course 2026", "--algorithm", "ec"],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (who, algo) in [("alice", "rsa"), ("bob", "ec")] {
        let p12 = d.join(format!("{who}.p12"));
        let out = smime(
            &s,
            &[
                "cert",
                "issue",
                &format!("{who}@example.test"),
                "--algorithm",
                algo,
                "--out",
                p12.to_str().unwrap(),
                "--password-stdin",
            ],
            b"pw\n",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        // OpenSSL opens our PKCS#12.
        let out = openssl(
            &d,
            &[
                "pkcs12",
                "-in",
                p12.to_str().unwrap(),
                "-passin",
                "pass:pw",
                "-nokeys",
                "-clcerts",
                "-out",
                &format!("{who}.crt"),
            ],
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let out = openssl(
            &d,
            &[
                "pkcs12",
                "-in",
                p12.to_str().unwrap(),
                "-passin",
                "pass:pw",
                "-nocerts",
                "-nodes",
                "-out",
                &format!("{who}.key"),
            ],
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    (s, d)
}

fn ca_path(s: &Server) -> std::path::PathBuf {
    // The data directory of the test server's config.
    let config = std::fs::read_to_string(&s.config).unwrap();
    let data = config
        .lines()
        .find_map(|l| l.strip_prefix("data_dir = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    Path::new(&data).join("smime/ca.pem")
}

#[test]
fn rfc8551_postamt_and_openssl_cms_both_ways() {
    if !require("openssl") {
        return;
    }
    let (s, d) = setup();
    let ca = ca_path(&s);
    let ca = ca.to_str().unwrap();
    std::fs::write(d.join("msg.eml"), MESSAGE).unwrap();

    // postamt signs (detached and opaque), OpenSSL verifies.
    for opaque in [false, true] {
        let mut args = vec![
            "sign",
            "msg.eml",
            "--identity",
            "alice.p12",
            "--password-env",
            "POSTAMT_TEST_PW",
        ];
        if opaque {
            args.push("--opaque");
        }
        let signed = run_with_stdin(
            Command::new(BIN)
                .current_dir(&d)
                .arg("smime")
                .args(&args)
                .env("POSTAMT_TEST_PW", "pw"),
            b"",
        )
        .success()
        .stdout;
        std::fs::write(d.join("signed.eml"), &signed).unwrap();
        let out = openssl(
            &d,
            &[
                "cms",
                "-verify",
                "-in",
                "signed.eml",
                "-CAfile",
                ca,
                "-purpose",
                "smimesign",
            ],
            b"",
        );
        assert_eq!(out.code, 0, "opaque={opaque}: {}", out.stderr);
        assert!(
            out.stdout.contains("Bob, your grade is A."),
            "{}",
            out.stdout
        );
        // And postamt verifies its own: valid, From: is the signer.
        let out = smime(&s, &["verify", d.join("signed.eml").to_str().unwrap()], b"");
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        assert!(out.stdout.starts_with("S/MIME: VALID"), "{}", out.stdout);
        assert!(
            out.stdout
                .contains("alice@example.test is the signer's address"),
            "{}",
            out.stdout
        );
    }

    // OpenSSL signs, postamt verifies.
    let entity = "Content-Type: text/plain; charset=us-ascii\r\n\r\nSigned by OpenSSL.\r\n";
    std::fs::write(d.join("entity.txt"), entity).unwrap();
    let out = openssl(
        &d,
        &[
            "cms",
            "-sign",
            "-in",
            "entity.txt",
            "-signer",
            "bob.crt",
            "-inkey",
            "bob.key",
            "-binary",
            "-out",
            "osigned.eml",
            "-from",
            "bob@example.test",
            "-to",
            "alice@example.test",
            "-subject",
            "from openssl",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = smime(
        &s,
        &["verify", "--json", d.join("osigned.eml").to_str().unwrap()],
        b"",
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["status"], "valid");
    assert_eq!(v["from_matches"], true);
    assert_eq!(v["layers"][0]["signer_addresses"][0], "bob@example.test");

    // postamt encrypts, OpenSSL decrypts; OpenSSL encrypts, postamt decrypts.
    let enc = smime(
        &s,
        &[
            "encrypt",
            d.join("msg.eml").to_str().unwrap(),
            "--recipient-cert",
            d.join("bob.crt").to_str().unwrap(),
        ],
        b"",
    )
    .success()
    .stdout;
    assert!(!enc.contains("your grade"));
    std::fs::write(d.join("enc.eml"), &enc).unwrap();
    let out = openssl(
        &d,
        &[
            "cms", "-decrypt", "-in", "enc.eml", "-recip", "bob.crt", "-inkey", "bob.key",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Bob, your grade is A."),
        "{}",
        out.stdout
    );
    let out = openssl(
        &d,
        &[
            "cms",
            "-encrypt",
            "-aes256",
            "-in",
            "entity.txt",
            "-out",
            "oenc.eml",
            "alice.crt",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_with_stdin(
        Command::new(BIN)
            .current_dir(&d)
            .args([
                "smime",
                "decrypt",
                "oenc.eml",
                "--identity",
                "alice.p12",
                "--password-env",
                "POSTAMT_TEST_PW",
            ])
            .env("POSTAMT_TEST_PW", "pw"),
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Signed by OpenSSL."), "{}", out.stdout);
    let out = run_with_stdin(
        Command::new(BIN)
            .current_dir(&d)
            .args([
                "smime",
                "decrypt",
                "oenc.eml",
                "--identity",
                "bob.p12",
                "--password-env",
                "POSTAMT_TEST_PW",
            ])
            .env("POSTAMT_TEST_PW", "pw"),
        b"",
    );
    assert_ne!(out.code, 0, "bob cannot read alice's mail");

    // Tampered: INVALID, exit 1. Unknown CA: exit 1. Plain: exit 2.
    let signed = run_with_stdin(
        Command::new(BIN)
            .current_dir(&d)
            .args([
                "smime",
                "sign",
                "msg.eml",
                "--identity",
                "alice.p12",
                "--password-env",
                "POSTAMT_TEST_PW",
            ])
            .env("POSTAMT_TEST_PW", "pw"),
        b"",
    )
    .success()
    .stdout;
    std::fs::write(
        d.join("tampered.eml"),
        signed.replace("grade is A", "grade is F"),
    )
    .unwrap();
    let out = smime(
        &s,
        &["verify", d.join("tampered.eml").to_str().unwrap()],
        b"",
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("INVALID"), "{}", out.stdout);
    let other_ca = d.join("other.pem");
    let out = openssl(
        &d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-subj",
            "/CN=Other",
            "-days",
            "2",
            "-out",
            other_ca.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::write(d.join("signed2.eml"), &signed).unwrap();
    let out = smime(
        &s,
        &[
            "verify",
            "--ca",
            other_ca.to_str().unwrap(),
            d.join("signed2.eml").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("NOT TRUSTED"), "{}", out.stdout);
    let out = smime(
        &s,
        &[
            "verify",
            "--at",
            "2100-01-01T00:00:00Z",
            d.join("signed2.eml").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("expired"), "{}", out.stdout);
    let out = smime(&s, &["verify", d.join("msg.eml").to_str().unwrap()], b"");
    assert_eq!(out.code, 2, "{}", out.stdout);

    // The certificate store: both issued certificates are listed.
    let list = smime(&s, &["list"], b"").success().stdout;
    assert!(
        list.contains("alice@example.test") && list.contains("bob@example.test"),
        "{list}"
    );
}
