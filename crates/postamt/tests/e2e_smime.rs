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
    for (who, algo) in [("alice", "ec"), ("bob", "rsa")] {
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

/// The DER of a MIME part: `which` = "signature" (the .p7s of a
/// multipart/signed), "entity" (its signed part, byte-exact) or "body"
/// (a pkcs7-mime body), by Python's email module.
fn part(path: &Path, which: &str, out: &Path) {
    let script = r#"
import sys, email
raw = open(sys.argv[1], 'rb').read()
m = email.message_from_bytes(raw)
which, out = sys.argv[2], sys.argv[3]
if which == 'body':
    data = m.get_payload(decode=True)
elif which == 'signature':
    data = m.get_payload()[1].get_payload(decode=True)
else:
    b = ('--' + m.get_boundary()).encode()
    body = raw.split(b'\r\n\r\n', 1)[1]
    data = body.split(b + b'\r\n', 1)[1].split(b'\r\n' + b, 1)[0]
open(out, 'wb').write(data)
"#;
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .arg(which)
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

/// NSS (Thunderbird's S/MIME engine) both ways, with `cmsutil`: it
/// verifies our opaque and detached signatures and decrypts what we
/// encrypted to bob; we decrypt what it encrypted and verify what it
/// signed.
#[test]
fn rfc8551_postamt_and_nss_cmsutil_both_ways() {
    if !require("openssl") || !require("cmsutil") {
        return;
    }
    let (s, d) = setup();
    let ca = ca_path(&s);
    let db = format!("sql:{}", d.join("nssdb").display());
    std::fs::create_dir_all(d.join("nssdb")).unwrap();
    let nss = |tool: &str, args: &[&str]| {
        run_with_stdin(Command::new(tool).current_dir(&d).args(args), b"")
    };
    assert_eq!(
        nss("certutil", &["-N", "-d", &db, "--empty-password"]).code,
        0
    );
    assert_eq!(
        nss(
            "pk12util",
            &["-i", "bob.p12", "-d", &db, "-W", "pw", "-K", ""]
        )
        .code,
        0
    );
    assert_eq!(
        nss(
            "certutil",
            &[
                "-A",
                "-n",
                "course-ca",
                "-t",
                "C,C,C",
                "-i",
                ca.to_str().unwrap(),
                "-d",
                &db
            ]
        )
        .code,
        0
    );
    std::fs::write(d.join("msg.eml"), MESSAGE).unwrap();
    let postamt = |args: &[&str]| {
        run_with_stdin(
            Command::new(BIN)
                .current_dir(&d)
                .args(args)
                .env("POSTAMT_TEST_PW", "pw"),
            b"",
        )
    };
    // Our opaque and detached signatures: GoodSignature for NSS.
    let opaque = postamt(&[
        "smime",
        "sign",
        "msg.eml",
        "--identity",
        "alice.p12",
        "--password-env",
        "POSTAMT_TEST_PW",
        "--opaque",
    ])
    .success()
    .stdout;
    std::fs::write(d.join("opaque.eml"), &opaque).unwrap();
    part(&d.join("opaque.eml"), "body", &d.join("opaque.der"));
    let out = nss(
        "cmsutil",
        &["-D", "-i", "opaque.der", "-d", &db, "-n", "-h", "2"],
    );
    assert!(
        out.stdout.contains("signer0.status=GoodSignature"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let detached = postamt(&[
        "smime",
        "sign",
        "msg.eml",
        "--identity",
        "alice.p12",
        "--password-env",
        "POSTAMT_TEST_PW",
    ])
    .success()
    .stdout;
    std::fs::write(d.join("detached.eml"), &detached).unwrap();
    part(&d.join("detached.eml"), "signature", &d.join("sig.der"));
    part(&d.join("detached.eml"), "entity", &d.join("entity.bin"));
    let out = nss(
        "cmsutil",
        &[
            "-D",
            "-i",
            "sig.der",
            "-c",
            "entity.bin",
            "-d",
            &db,
            "-n",
            "-h",
            "2",
        ],
    );
    assert!(
        out.stdout.contains("signer0.status=GoodSignature"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    // Changed content: NSS sees it too.
    let entity = std::fs::read_to_string(d.join("entity.bin")).unwrap();
    std::fs::write(
        d.join("entity.bin"),
        entity.replace("grade is A", "grade is F"),
    )
    .unwrap();
    let out = nss(
        "cmsutil",
        &[
            "-D",
            "-i",
            "sig.der",
            "-c",
            "entity.bin",
            "-d",
            &db,
            "-n",
            "-h",
            "2",
        ],
    );
    assert!(!out.stdout.contains("GoodSignature"), "{}", out.stdout);
    // We encrypt to bob, NSS decrypts with bob's key.
    let enc = postamt(&["smime", "encrypt", "msg.eml", "--recipient-cert", "bob.crt"])
        .success()
        .stdout;
    std::fs::write(d.join("enc.eml"), &enc).unwrap();
    part(&d.join("enc.eml"), "body", &d.join("enc.der"));
    let out = nss("cmsutil", &["-D", "-i", "enc.der", "-d", &db]);
    assert!(
        out.stdout.contains("Bob, your grade is A."),
        "{}{}",
        out.stdout,
        out.stderr
    );
    // NSS encrypts to bob and signs as bob; we decrypt and verify.
    std::fs::write(
        d.join("nss-entity.txt"),
        "Content-Type: text/plain\r\n\r\nfrom NSS\r\n",
    )
    .unwrap();
    assert_eq!(
        nss(
            "cmsutil",
            &[
                "-E",
                "-i",
                "nss-entity.txt",
                "-r",
                "bob@example.test",
                "-d",
                &db,
                "-o",
                "nss-enc.der"
            ]
        )
        .code,
        0
    );
    assert_eq!(
        nss(
            "cmsutil",
            &[
                "-S",
                "-N",
                "bob@example.test",
                "-G",
                "-i",
                "nss-entity.txt",
                "-d",
                &db,
                "-o",
                "nss-sig.der"
            ]
        )
        .code,
        0
    );
    for (der, smime_type, file) in [
        ("nss-enc.der", "enveloped-data", "nss-enc.eml"),
        ("nss-sig.der", "signed-data", "nss-sig.eml"),
    ] {
        use base64::Engine;
        let b64 =
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(d.join(der)).unwrap());
        let mail = format!(
            "From: bob@example.test\r\nTo: alice@example.test\r\nSubject: nss\r\nMIME-Version: 1.0\r\n\
             Content-Type: application/pkcs7-mime; smime-type={smime_type}; name=smime.p7m\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
        );
        std::fs::write(d.join(file), mail).unwrap();
    }
    let out = postamt(&[
        "smime",
        "decrypt",
        "nss-enc.eml",
        "--identity",
        "bob.p12",
        "--password-env",
        "POSTAMT_TEST_PW",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("from NSS"), "{}", out.stdout);
    let out = postamt(&[
        "smime",
        "verify",
        "--ca",
        ca.to_str().unwrap(),
        "nss-sig.eml",
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("bob@example.test is the signer's address"),
        "{}",
        out.stdout
    );
}
