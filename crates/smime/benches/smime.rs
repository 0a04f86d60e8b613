//! The CPU cost of S/MIME (issue 15: "verify and decrypt of a 1 MB
//! signed+encrypted message under 20 ms; signing adds under 5 ms to
//! `mail send`"), and of encryption at rest per delivery.
//!
//! `cargo bench -p postamt-smime --bench smime` (release build;
//! `BENCH_N=…` rounds, 50 by default).
//!
//! A CA and an identity per key type are made in memory (RSA-2048 and
//! ECDSA P-256, as `smime cert issue` makes them), then, each measured
//! over the rounds and reported as the median and the slowest:
//!
//! - "open identity + sign 4 KB": what `mail send --sign` adds: the
//!   PKCS#12 file read with its password (PBKDF2, as `smime_identity`
//!   is read), then a detached SHA-256 signature of a 4 KB text message;
//! - "verify + decrypt 1 MB": a 1 MB text message signed (detached) then
//!   encrypted to the same identity, opened by `verify` with the identity
//!   (decryption, then the signature and the chain);
//! - "encrypt at rest 4 KB / 100 KB": `encrypt_at_rest`, what a delivery
//!   to an account with a certificate costs on top (the certificate
//!   parsed from PEM each time, as the MDA does).
//!
//! One thread, no I/O: the wall time is CPU time.

use std::time::{Duration, Instant};

use postamt_smime::{Ca, Identity, KeyKind, encrypt, encrypt_at_rest, sign, verify};

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: bench\r\n\
                  Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        .to_vec();
    let line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

fn measure(name: &str, rounds: usize, mut f: impl FnMut()) {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{name:<44} median {:>8.3} ms   slowest {:>8.3} ms   ({rounds} rounds)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}

fn main() {
    let rounds: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let small = message(4096);
    let big = message(1 << 20);
    let medium = message(100 * 1024);
    for kind in [KeyKind::Rsa2048, KeyKind::EcP256] {
        let label = match kind {
            KeyKind::Rsa2048 => "RSA-2048",
            KeyKind::EcP256 => "P-256",
        };
        let ca = Ca::new("Bench CA", kind, 30).unwrap();
        let id = ca.issue("alice@example.org", kind, 30).unwrap();
        let p12 = id.to_pkcs12("secret").unwrap();
        let trust = [ca.cert.clone()];
        measure(
            &format!("{label}: open identity + sign 4 KB"),
            rounds,
            || {
                let id = Identity::from_pkcs12(&p12, "secret").unwrap();
                std::hint::black_box(sign(&small, &id, false).unwrap());
            },
        );
        measure(
            &format!("{label}: sign 4 KB (identity open)"),
            rounds,
            || {
                std::hint::black_box(sign(&small, &id, false).unwrap());
            },
        );
        let signed = sign(&big, &id, false).unwrap();
        let sealed = encrypt(&signed, std::slice::from_ref(&id.cert)).unwrap();
        measure(&format!("{label}: verify + decrypt 1 MB"), rounds, || {
            let v = verify(&sealed, &trust, None, Some(&id));
            assert_eq!(v.status, postamt_smime::Status::Valid, "{v:?}");
            std::hint::black_box(v);
        });
        let pem = id.cert.to_pem().unwrap();
        for (what, m) in [("4 KB", &small), ("100 KB", &medium)] {
            measure(&format!("{label}: encrypt at rest {what}"), rounds, || {
                std::hint::black_box(encrypt_at_rest(m, &pem).unwrap().unwrap());
            });
        }
    }
}
