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

/// `postamt ARGS` run in `dir`, where a PKCS#12 password is read from
/// `PW` or `POSTAMT_TEST_PW` (both `pw`).
fn postamt_in(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(args)
        .env("PW", "pw")
        .env("POSTAMT_TEST_PW", "pw");
    run_with_stdin(&mut cmd, b"")
}

fn smime(s: &Server, args: &[&str], stdin: &[u8]) -> Output {
    let mut all = vec!["smime"];
    all.extend_from_slice(args);
    s.admin_stdin(&all, std::str::from_utf8(stdin).unwrap())
}

/// The CA, alice's and bob's identities, and their certificates and keys
/// extracted by OpenSSL from our PKCS#12 files.
fn setup() -> (Server, std::path::PathBuf) {
    setup_with("")
}

fn setup_with(extra: &str) -> (Server, std::path::PathBuf) {
    let s = Server::prepare(extra);
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
    let out = postamt_in(
        &d,
        &[
            "smime",
            "decrypt",
            "oenc.eml",
            "--identity",
            "alice.p12",
            "--password-env",
            "POSTAMT_TEST_PW",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Signed by OpenSSL."), "{}", out.stdout);
    let out = postamt_in(
        &d,
        &[
            "smime",
            "decrypt",
            "oenc.eml",
            "--identity",
            "bob.p12",
            "--password-env",
            "POSTAMT_TEST_PW",
        ],
    );
    assert_ne!(out.code, 0, "bob cannot read alice's mail");

    // Tampered: INVALID, exit 1. Unknown CA: exit 1. Plain: exit 2.
    let signed = postamt_in(
        &d,
        &[
            "smime",
            "sign",
            "msg.eml",
            "--identity",
            "alice.p12",
            "--password-env",
            "POSTAMT_TEST_PW",
        ],
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
    let postamt = |args: &[&str]| postamt_in(&d, args);
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

/// Every file under `dir` (database, its WAL, content packs, transcripts)
/// that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                out.push(p);
            }
        }
    }
    out
}

/// Sends `message` over SMTP (port 25 of the test server) to `to`; from a
/// local sender over LMTP (port 25 refuses a local sender unauthenticated).
fn smtp_send(s: &Server, from: &str, to: &str, message: &str) {
    let lmtp = from.ends_with("@example.test");
    let mut c = smtp(s, if lmtp { "lmtp" } else { "smtp" });
    c.smtp(
        if lmtp {
            "LHLO client.test"
        } else {
            "EHLO client.test"
        },
        "250",
    );
    c.smtp(&format!("MAIL FROM:<{from}>"), "250");
    c.smtp(&format!("RCPT TO:<{to}>"), "250");
    c.smtp("DATA", "354");
    c.send(message.as_bytes());
    c.smtp(".", "250");
    c.smtp("QUIT", "221");
}

/// Python's imaplib fetches bob's INBOX: each message's bytes into
/// `dir/bob-N.eml`, and prints BODYSTRUCTURE lines and what `SEARCH BODY
/// needle` found.
fn imaplib_fetch(s: &Server, dir: &Path, needle: &str) -> String {
    let script = r#"
import imaplib, sys
port, out, needle = int(sys.argv[1]), sys.argv[2], sys.argv[3]
m = imaplib.IMAP4("127.0.0.1", port)
m.login("bob@example.test", "bob-pw")
m.select("INBOX", readonly=True)
typ, data = m.uid("SEARCH", None, "ALL")
for uid in data[0].split():
    typ, msg = m.uid("FETCH", uid, "(BODY.PEEK[] BODYSTRUCTURE)")
    open("%s/bob-%s.eml" % (out, uid.decode()), "wb").write(msg[0][1])
    print("structure", uid.decode(), msg[0][0].decode(), msg[1].decode() if isinstance(msg[1], bytes) else "")
typ, data = m.uid("SEARCH", None, "BODY", needle)
print("search", data[0].decode())
m.logout()
"#;
    let out = run_with_stdin(
        Command::new("python3").args([
            "-c",
            script,
            &s.addr("imap").port().to_string(),
            dir.to_str().unwrap(),
            needle,
        ]),
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

/// Encryption at rest (`postamt user smime`): a certificate for another
/// address is refused; once bob's is set, what is delivered to him is
/// stored encrypted to it — no file of the data directory (database,
/// WAL, packs, transcripts) holds the text — and an IMAP client (Python's
/// imaplib) fetches the enveloped message, which OpenSSL opens with bob's
/// key to the message as sent; a signed message stays verifiable inside.
/// Alice's mail is untouched, SEARCH BODY cannot see into bob's, and
/// `--remove` turns it off for new mail.
#[test]
fn rfc8551_encryption_at_rest_through_smtp_and_imap() {
    if !require("openssl") || !require("python3") {
        return;
    }
    let (mut s, d) = setup_with("[transcripts]\nenabled = true\n");
    let ca = ca_path(&s);
    let out = s.admin(&[
        "user",
        "smime",
        "alice@example.test",
        d.join("bob.crt").to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("not for alice@example.test"),
        "{}",
        out.stderr
    );
    // Without CERT: bob's from the certificate store (`smime cert issue`).
    let out = s.admin(&["user", "smime", "bob@example.test"]).success();
    assert!(out.stdout.contains("stored encrypted to"), "{}", out.stdout);
    let list = s.admin(&["user", "list"]).success().stdout;
    assert!(
        list.lines().any(|l| l.starts_with("bob@example.test") && l.ends_with("encrypted at rest (S/MIME)")),
        "{list}"
    );
    assert!(
        !list
            .lines()
            .any(|l| l.starts_with("alice@") && l.contains("encrypted")),
        "{list}"
    );
    s.spawn();
    // Files with the message texts live outside the data directory.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let key = |f: &str| d.join(f).to_str().unwrap().to_string();

    smtp_send(
        &s,
        "x@remote.test",
        "alice@example.test",
        "Subject: to alice\r\n\r\nMARKER-in-the-clear\r\n",
    );
    smtp_send(
        &s,
        "x@remote.test",
        "bob@example.test",
        "Subject: to bob\r\n\r\nMARKER-sealed-at-rest\r\n",
    );
    // A signed message from alice: encrypted at rest around the signature.
    std::fs::write(
        w.join("signed-src.eml"),
        "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: signed\r\n\r\nMARKER-signed-inside\r\n",
    )
    .unwrap();
    let signed = postamt_in(
        w,
        &[
            "smime",
            "sign",
            "signed-src.eml",
            "--identity",
            &key("alice.p12"),
            "--password-env",
            "PW",
        ],
    )
    .success()
    .stdout;
    smtp_send(&s, "alice@example.test", "bob@example.test", &signed);

    let data_dir = s.dir.path();
    assert!(
        !files_holding(data_dir, b"MARKER-in-the-clear").is_empty(),
        "alice's mail is stored as it came (and the search works)"
    );
    for sealed in ["MARKER-sealed-at-rest", "MARKER-signed-inside"] {
        let found = files_holding(data_dir, sealed.as_bytes());
        assert!(found.is_empty(), "{sealed} readable in {found:?}");
    }
    let transcripts = files_holding(
        data_dir,
        b"not recorded: a recipient's mail is encrypted at rest",
    );
    assert_eq!(transcripts.len(), 2, "the two SMTP sessions to bob say why");

    let fetched = imaplib_fetch(&s, w, "MARKER");
    assert!(
        fetched.lines().any(|l| l.trim_end() == "search"),
        "SEARCH BODY cannot see into bob's mail (RFC 8551: only his key opens it): {fetched}"
    );
    assert_eq!(
        fetched
            .to_ascii_lowercase()
            .matches("(\"application\" \"pkcs7-mime\" (\"smime-type\" \"enveloped-data\"")
            .count(),
        2,
        "{fetched}"
    );
    for (uid, inner) in [(1, "MARKER-sealed-at-rest"), (2, "MARKER-signed-inside")] {
        let eml = format!("bob-{uid}.eml");
        let m = std::fs::read_to_string(w.join(&eml)).unwrap();
        assert!(
            m.contains("smime-type=enveloped-data") && !m.contains(inner),
            "{m}"
        );
        assert!(
            m.starts_with("Return-Path: <"),
            "our trace fields stay outside: {m}"
        );
        let out = openssl(
            w,
            &[
                "cms",
                "-decrypt",
                "-in",
                &eml,
                "-inkey",
                &key("bob.key"),
                "-recip",
                &key("bob.crt"),
                "-out",
                "opened.eml",
            ],
            b"",
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let opened = std::fs::read_to_string(w.join("opened.eml")).unwrap();
        if uid == 1 {
            assert!(
                opened.ends_with("\r\n\r\nMARKER-sealed-at-rest\r\n"),
                "{opened}"
            );
        } else {
            // OpenSSL checks alice's signature on what was inside.
            assert!(
                opened.starts_with("Content-Type: multipart/signed"),
                "{opened}"
            );
            let out = openssl(
                w,
                &[
                    "cms",
                    "-verify",
                    "-in",
                    "opened.eml",
                    "-CAfile",
                    ca.to_str().unwrap(),
                ],
                b"",
            );
            assert_eq!(out.code, 0, "{}", out.stderr);
            assert!(
                out.stdout.contains("MARKER-signed-inside"),
                "{}",
                out.stdout
            );
        }
    }
    // postamt's own verification opens the layer with bob's identity.
    let out = postamt_in(
        w,
        &[
            "smime",
            "verify",
            "bob-2.eml",
            "--identity",
            &key("bob.p12"),
            "--password-env",
            "PW",
            "--config",
            s.config.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("layer 1: encrypted") && out.stdout.contains("layer 2: signed"),
        "{}",
        out.stdout
    );

    s.admin(&["user", "smime", "bob@example.test", "--remove"])
        .success();
    smtp_send(
        &s,
        "x@remote.test",
        "bob@example.test",
        "Subject: later\r\n\r\nMARKER-after-removal\r\n",
    );
    assert!(!files_holding(data_dir, b"MARKER-after-removal").is_empty());
}

/// gpgsm in a throwaway home: offline (no CRL or policy checks, no
/// dirmngr), the CA trusted, passphrases by loopback, and a cheap key
/// protection (the default calibration costs half a second a use).
struct Gpgsm {
    home: tempfile::TempDir,
}

impl Gpgsm {
    fn new(ca: &Path) -> Gpgsm {
        // Short path: gpg-agent's sockets live in the home.
        let home = tempfile::Builder::new()
            .prefix("g")
            .tempdir_in("/tmp")
            .unwrap();
        let h = home.path().to_path_buf();
        std::fs::write(
            h.join("gpgsm.conf"),
            "disable-crl-checks\ndisable-policy-checks\ndisable-dirmngr\n",
        )
        .unwrap();
        std::fs::write(
            h.join("gpg-agent.conf"),
            "allow-loopback-pinentry\ns2k-count 65536\n",
        )
        .unwrap();
        let g = Gpgsm { home };
        g.run(&["--import", ca.to_str().unwrap()], b"").success();
        let fpr = openssl(
            &h,
            &[
                "x509",
                "-in",
                ca.to_str().unwrap(),
                "-noout",
                "-fingerprint",
                "-sha1",
            ],
            b"",
        )
        .success()
        .stdout;
        let fpr = fpr.trim().rsplit('=').next().unwrap().to_string();
        std::fs::write(h.join("trustlist.txt"), format!("{fpr} S relax\n")).unwrap();
        g
    }

    /// gpgsm with status lines on stdout; the passphrase `pw` on stdin.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with_stdin(
            Command::new("timeout")
                .args(["60", "gpgsm", "--batch", "--status-fd", "1"])
                .args(["--pinentry-mode", "loopback", "--passphrase-fd", "0"])
                .args(args)
                .env("GNUPGHOME", self.home.path())
                .env("LC_ALL", "C"),
            stdin,
        )
    }
}

impl Drop for Gpgsm {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "all"])
            .env("GNUPGHOME", self.home.path())
            .status();
    }
}

/// GnuPG's gpgsm both ways: it imports a PKCS#12 made by `smime cert
/// issue --legacy-p12` (gpgsm 2.2 cannot read OpenSSL 3's AES PKCS#12),
/// verifies our opaque and detached signatures (GOODSIG and TRUST_FULLY:
/// the chain to our CA), and decrypts what we encrypted; we verify its
/// opaque and detached signatures and decrypt what it encrypted
/// (AES-256). A changed byte is BADSIG there and INVALID here.
#[test]
fn rfc8551_postamt_and_gpgsm_both_ways() {
    if !require("openssl") || !require("gpgsm") || !require("python3") {
        return;
    }
    let (s, d) = setup();
    let ca = ca_path(&s);
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let out = smime(
        &s,
        &[
            "cert",
            "issue",
            "bob@example.test",
            "--legacy-p12",
            "--out",
            &p("bob-legacy.p12"),
            "--password-stdin",
        ],
        b"pw\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    openssl(
        &d,
        &[
            "pkcs12",
            "-in",
            &p("bob-legacy.p12"),
            "-passin",
            "pass:pw",
            "-nokeys",
            "-clcerts",
            "-out",
            "bobl.crt",
        ],
        b"",
    )
    .success();
    let g = Gpgsm::new(&ca);
    let imported = g
        .run(&["--import", &p("bob-legacy.p12")], b"pw\n")
        .success()
        .stdout;
    // IMPORT_RES: … secret keys read, secret keys imported.
    assert!(
        imported
            .lines()
            .any(|l| l.starts_with("[GNUPG:] IMPORT_RES") && l.ends_with(" 1 1 0 0 0")),
        "{imported}"
    );
    let good = |o: &Output| {
        o.code == 0
            && o.stdout.contains("[GNUPG:] GOODSIG")
            && o.stdout.contains("[GNUPG:] TRUST_FULLY")
    };
    let postamt = |args: &[&str]| {
        run_with_stdin(
            Command::new(BIN)
                .current_dir(&d)
                .arg("smime")
                .args(args)
                .args(["--config", s.config.to_str().unwrap()])
                .env("PW", "pw"),
            b"",
        )
    };
    std::fs::write(
        d.join("g.eml"),
        "From: bob@example.test\r\nTo: alice@example.test\r\nSubject: gpgsm\r\n\r\nChecked by GnuPG.\r\n",
    )
    .unwrap();

    // Ours, opaque: gpgsm verifies and gives back the signed entity.
    let signed = postamt(&[
        "sign",
        "g.eml",
        "--identity",
        &p("bob-legacy.p12"),
        "--password-env",
        "PW",
        "--opaque",
    ])
    .success()
    .stdout;
    std::fs::write(d.join("o.eml"), &signed).unwrap();
    part(&d.join("o.eml"), "body", &d.join("o.p7m"));
    let out = g.run(&["--verify", "--output", &p("o.out"), &p("o.p7m")], b"");
    assert!(good(&out), "{}{}", out.stdout, out.stderr);
    assert!(
        std::fs::read_to_string(d.join("o.out"))
            .unwrap()
            .ends_with("\r\n\r\nChecked by GnuPG.\r\n")
    );
    // Ours, detached: the signed part's bytes and the signature.
    let signed = postamt(&[
        "sign",
        "g.eml",
        "--identity",
        &p("bob-legacy.p12"),
        "--password-env",
        "PW",
    ])
    .success()
    .stdout;
    std::fs::write(d.join("det.eml"), &signed).unwrap();
    part(&d.join("det.eml"), "content", &d.join("det.content"));
    part(&d.join("det.eml"), "signature", &d.join("det.p7s"));
    let out = g.run(&["--verify", &p("det.p7s"), &p("det.content")], b"");
    assert!(good(&out), "{}{}", out.stdout, out.stderr);
    let mut changed = std::fs::read(d.join("det.content")).unwrap();
    *changed
        .iter_mut()
        .rev()
        .find(|b| b.is_ascii_alphabetic())
        .unwrap() ^= 0x20;
    std::fs::write(d.join("det.changed"), changed).unwrap();
    let out = g.run(&["--verify", &p("det.p7s"), &p("det.changed")], b"");
    assert!(
        out.code != 0 && out.stdout.contains("[GNUPG:] BADSIG"),
        "{}",
        out.stdout
    );
    // Ours, encrypted to bob: gpgsm decrypts with the imported key.
    let sealed = postamt(&["encrypt", "g.eml", "--recipient-cert", &p("bobl.crt")])
        .success()
        .stdout;
    std::fs::write(d.join("e.eml"), &sealed).unwrap();
    part(&d.join("e.eml"), "body", &d.join("e.p7m"));
    let out = g.run(
        &["--decrypt", "--output", &p("e.out"), &p("e.p7m")],
        b"pw\n",
    );
    assert!(
        out.stdout.contains("[GNUPG:] DECRYPTION_OKAY"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        std::fs::read_to_string(d.join("e.out"))
            .unwrap()
            .ends_with("Checked by GnuPG.\r\n")
    );

    // Theirs: gpgsm signs (opaque, detached) and encrypts; postamt reads.
    let entity = "Content-Type: text/plain; charset=us-ascii\r\n\r\nSigned by gpgsm.\r\n";
    std::fs::write(d.join("entity.txt"), entity).unwrap();
    let outer = "From: bob@example.test\r\nTo: alice@example.test\r\nSubject: from gpgsm\r\nMIME-Version: 1.0\r\n";
    let b64 = |f: &str| {
        use base64::Engine;
        let der = std::fs::read(d.join(f)).unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        text.as_bytes()
            .chunks(76)
            .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
            .collect::<String>()
    };
    g.run(
        &[
            "-u",
            "bob@example.test",
            "--sign",
            "--output",
            &p("t.p7m"),
            &p("entity.txt"),
        ],
        b"pw\n",
    )
    .success();
    std::fs::write(
        d.join("t.eml"),
        format!(
            "{outer}Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            b64("t.p7m")
        ),
    )
    .unwrap();
    let out = postamt(&["verify", "t.eml", "--ca", ca.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("S/MIME: VALID")
            && out
                .stdout
                .contains("bob@example.test is the signer's address"),
        "{}",
        out.stdout
    );
    g.run(
        &[
            "-u",
            "bob@example.test",
            "--detach-sign",
            "--output",
            &p("t.p7s"),
            &p("entity.txt"),
        ],
        b"pw\n",
    )
    .success();
    let detached = |entity: &str| {
        format!(
            "{outer}Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"b1\"\r\n\r\n--b1\r\n{entity}\r\n--b1\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--b1--\r\n",
            b64("t.p7s")
        )
    };
    std::fs::write(d.join("td.eml"), detached(entity)).unwrap();
    let out = postamt(&["verify", "td.eml", "--ca", ca.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    std::fs::write(
        d.join("tx.eml"),
        detached(&entity.replace("gpgsm", "gpgSM")),
    )
    .unwrap();
    let out = postamt(&["verify", "tx.eml", "--ca", ca.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("INVALID"), "{}", out.stdout);
    g.run(&["--import", &p("bobl.crt")], b"").success();
    g.run(
        &[
            "--cipher-algo",
            "AES256",
            "-r",
            "bob@example.test",
            "--encrypt",
            "--output",
            &p("t.enc"),
            &p("entity.txt"),
        ],
        b"",
    )
    .success();
    std::fs::write(
        d.join("te.eml"),
        format!(
            "{outer}Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            b64("t.enc")
        ),
    )
    .unwrap();
    let out = postamt(&[
        "decrypt",
        "te.eml",
        "--identity",
        &p("bob-legacy.p12"),
        "--password-env",
        "PW",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.ends_with("\r\n\r\nSigned by gpgsm.\r\n"),
        "{}",
        out.stdout
    );
}

/// `smime cert revoke` (RFC 5280 §5): the CRL our CA writes is one
/// OpenSSL accepts (its signature, bob's serial in it, and `cms -verify
/// -crl_check` refusing bob); `smime verify` with the installation's CA
/// uses it (bob: REVOKED, exit 1; alice still valid), and `--crl` does the
/// same with a CA given. AES-GCM (AuthEnvelopedData, RFC 5083/5084) both
/// ways: `smime encrypt --cipher aes-256-gcm` opens in `openssl cms`, and
/// OpenSSL's `-aes-256-gcm` opens in `smime decrypt`.
#[test]
fn rfc5280_revocation_and_rfc5083_gcm_with_openssl() {
    if !require("openssl") {
        return;
    }
    let (s, d) = setup();
    let ca = ca_path(&s);
    let ca = ca.to_str().unwrap();
    std::fs::write(
        d.join("bob-msg.eml"),
        "From: bob@example.test\r\nSubject: x\r\n\r\nfrom bob\r\n",
    )
    .unwrap();
    std::fs::write(d.join("alice-msg.eml"), MESSAGE).unwrap();
    let sign_as = |who: &str, file: &str, out: &str| {
        let signed = postamt_in(
            &d,
            &[
                "smime",
                "sign",
                file,
                "--identity",
                &format!("{who}.p12"),
                "--password-env",
                "PW",
            ],
        )
        .success()
        .stdout;
        std::fs::write(d.join(out), signed).unwrap();
    };
    sign_as("bob", "bob-msg.eml", "bob-signed.eml");
    sign_as("alice", "alice-msg.eml", "alice-signed.eml");
    let verify = |file: &str, extra: &[&str]| {
        let f = d.join(file);
        let mut args = vec!["verify", f.to_str().unwrap()];
        args.extend_from_slice(extra);
        smime(&s, &args, b"")
    };
    assert_eq!(verify("bob-signed.eml", &[]).code, 0, "before revocation");

    let out = smime(&s, &["cert", "revoke", "bob@example.test"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("revoked"), "{}", out.stdout);
    let crl = Path::new(ca).with_file_name("crl.pem");
    let crl = crl.to_str().unwrap();
    let out = openssl(
        &d,
        &["crl", "-in", crl, "-CAfile", ca, "-noout", "-text"],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("verify OK") || out.stdout.contains("verify OK"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let serial = openssl(&d, &["x509", "-in", "bob.crt", "-noout", "-serial"], b"")
        .success()
        .stdout;
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    assert!(
        out.stdout.contains(&format!("Serial Number: {serial}")),
        "{serial}: {}",
        out.stdout
    );
    // OpenSSL refuses bob with our CRL too (CRLs are read from its CAfile).
    let mut both = std::fs::read(ca).unwrap();
    both.extend(std::fs::read(crl).unwrap());
    std::fs::write(d.join("ca-and-crl.pem"), both).unwrap();
    let out = openssl(
        &d,
        &[
            "cms",
            "-verify",
            "-in",
            "bob-signed.eml",
            "-CAfile",
            "ca-and-crl.pem",
            "-crl_check",
            "-out",
            "/dev/null",
        ],
        b"",
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("certificate revoked"), "{}", out.stderr);

    let out = verify("bob-signed.eml", &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("REVOKED") && out.stdout.contains("revocation list"),
        "{}",
        out.stdout
    );
    assert_eq!(
        verify("alice-signed.eml", &[]).code,
        0,
        "alice is not revoked"
    );
    assert_eq!(
        verify("bob-signed.eml", &["--ca", ca]).code,
        0,
        "a CA given: only the CRLs given"
    );
    assert_eq!(
        verify("bob-signed.eml", &["--ca", ca, "--crl", crl]).code,
        1
    );
    let again = smime(
        &s,
        &["cert", "revoke", d.join("bob.crt").to_str().unwrap()],
        b"",
    );
    assert!(again.stdout.contains("revoked already"), "{}", again.stdout);

    // AES-256-GCM, postamt -> OpenSSL.
    let sealed = smime(
        &s,
        &[
            "encrypt",
            d.join("alice-msg.eml").to_str().unwrap(),
            "--recipient-cert",
            d.join("bob.crt").to_str().unwrap(),
            "--cipher",
            "aes-256-gcm",
        ],
        b"",
    );
    assert_eq!(sealed.code, 0, "{}", sealed.stderr);
    assert!(sealed.stdout.contains("smime-type=authEnveloped-data"));
    std::fs::write(d.join("gcm.eml"), &sealed.stdout).unwrap();
    let out = openssl(
        &d,
        &[
            "cms", "-decrypt", "-in", "gcm.eml", "-inkey", "bob.key", "-recip", "bob.crt",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Bob, your grade is A."),
        "{}",
        out.stdout
    );
    let out = openssl(&d, &["cms", "-cmsout", "-print", "-in", "gcm.eml"], b"");
    assert!(
        out.stdout.contains("aes-256-gcm") || out.stdout.contains("id-aes256-GCM"),
        "{}",
        out.stdout
    );
    // OpenSSL -> postamt.
    std::fs::write(
        d.join("entity.txt"),
        "Content-Type: text/plain\r\n\r\nGCM by OpenSSL.\r\n",
    )
    .unwrap();
    let out = openssl(
        &d,
        &[
            "cms",
            "-encrypt",
            "-aes-256-gcm",
            "-in",
            "entity.txt",
            "-binary",
            "-out",
            "ogcm.eml",
            "-to",
            "bob@example.test",
            "bob.crt",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = postamt_in(
        &d,
        &[
            "smime",
            "decrypt",
            "ogcm.eml",
            "--identity",
            "bob.p12",
            "--password-env",
            "PW",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.ends_with("GCM by OpenSSL.\r\n"),
        "{}",
        out.stdout
    );
}
