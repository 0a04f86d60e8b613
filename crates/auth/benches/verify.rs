//! The CPU cost of verifying one received message (issue 13: "verification
//! CPU per message with one RSA-2048 signature under 0.5 ms").
//!
//! `cargo bench -p postamt-auth --features resolver --bench verify`
//! (release build; `BENCH_N=…` messages per round, 10,000 by default).
//!
//! A fresh RSA-2048 key (`openssl genrsa`, in a temp dir removed at the
//! end) signs a 4 KB message (the bench message of bench/py/msg.py;
//! relaxed/relaxed, h=From:To:Subject:Date:Message-ID, d=remote.test), and
//! the same message is verified again and again, every DNS answer from
//! memory (what a server with a warm cache spends; no DNS traffic):
//!
//! - "DKIM alone": `dkim::verify_with`, the key record already parsed in
//!   the TXT cache;
//! - "DKIM, key record parsed": the same with a fresh cache per message
//!   holding the key record parsed again, as the server does (it keeps no
//!   parsed keys: its cache per message is empty, and the resolver's
//!   answer is parsed each time);
//! - "all checks": what the server does per message with `[verify]` on:
//!   SPF of the MAIL FROM domain (`spf::verify_mail_from` over a
//!   `dns::Zone`), DKIM (as in the line above), ARC (none present) and
//!   DMARC (`dmarc::check` over the zone, p=reject).
//!
//! Everything runs on one thread (a current-thread Tokio runtime, no I/O),
//! so the wall time per message is CPU time; the thread's CPU time from
//! /proc/thread-self/schedstat (Linux) is printed beside it as a check
//! (on some kernels it only moves with the scheduler tick, a few ms: hence
//! rounds of 10,000 messages).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use postamt_auth::dkim::{self, Txt, TxtCache, Verifier};
use postamt_auth::dns::{Record, Zone};
use postamt_auth::resolver::DnsSettings;
use postamt_auth::{arc, dmarc, spf};

const DOMAIN: &str = "remote.test";
const SELECTOR: &str = "bench";
const KEY_NAME: &str = "bench._domainkey.remote.test";
const ROUNDS: usize = 3;

/// The 4 KB message of the SMTP benchmark (bench/py/msg.py).
fn bench_message(size: usize) -> Vec<u8> {
    const LINE: &[u8] =
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n";
    let mut m = b"From: Bench <bench@remote.test>\r\nTo: user@bench.test\r\nSubject: message 1\r\n\
Message-ID: <1@bench.test>\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\n"
        .to_vec();
    while m.len() + LINE.len() <= size {
        m.extend_from_slice(LINE);
    }
    m
}

/// A temp dir, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed to make the RSA key");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new RSA-2048 key: the private key (PKCS#8 PEM) and the `p=` of its
/// key record (SubjectPublicKeyInfo, base64).
fn rsa_2048() -> (String, String) {
    let dir =
        TempDir(std::env::temp_dir().join(format!("postamt-verify-bench.{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ],
        &dir.0,
    );
    openssl(
        &[
            "pkey", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "pub.der",
        ],
        &dir.0,
    );
    let pem = std::fs::read_to_string(dir.0.join("key.pem")).unwrap();
    let spki = std::fs::read(dir.0.join("pub.der")).unwrap();
    (pem, base64::engine::general_purpose::STANDARD.encode(spki))
}

/// This thread's CPU time so far (scheduler statistics, nanoseconds), if
/// the kernel tells.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `f` `n` times per round, `ROUNDS` rounds (after a warm-up), and
/// prints the time per message of each round.
fn measure(label: &str, n: usize, rt: &tokio::runtime::Runtime, mut f: impl AsyncFnMut()) {
    rt.block_on(async {
        for _ in 0..n / 10 {
            f().await;
        }
    });
    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (c0, t0) = (thread_cpu(), Instant::now());
        rt.block_on(async {
            for _ in 0..n {
                f().await;
            }
        });
        let wall = t0.elapsed();
        let cpu = thread_cpu().zip(c0).map(|(c1, c0)| c1 - c0);
        let per = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
        walls.push(per(wall));
        cpus.extend(cpu.map(per));
        println!(
            "{label:<38} {n} msgs: {:.4} ms/msg wall, {} CPU",
            per(wall),
            cpu.map_or("?".to_string(), |c| format!("{:.4} ms/msg", per(c)))
        );
    }
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    let wall = walls[ROUNDS / 2];
    println!(
        "{label:<38} median {wall:.4} ms/msg wall ({:.0} msg/s on one core), {} CPU\n",
        1e3 / wall,
        cpus.get(cpus.len() / 2)
            .map_or("?".to_string(), |c| format!("{c:.4} ms/msg"))
    );
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let (pem, p) = rsa_2048();
    let record = format!("v=DKIM1; k=rsa; p={p}");

    let message = bench_message(4096);
    // from_key_der, its replacement, takes rustls-pki-types, which this
    // crate does not use otherwise.
    #[allow(deprecated)]
    let key = RsaKey::<Sha256>::from_pkcs8_pem(&pem).expect("the PEM openssl wrote");
    let signature = DkimSigner::from_key(key)
        .domain(DOMAIN)
        .selector(SELECTOR)
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(&message)
        .expect("signing");
    let mut signed = signature.to_header().into_bytes();
    signed.extend_from_slice(&message);
    println!(
        "message: {} bytes with its DKIM-Signature (rsa-sha256, 2048 bits); {} CPUs; {n} messages per round, {ROUNDS} rounds\n",
        signed.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // The DNS: every answer from memory; the resolver itself reaches
    // nothing (port 9), so a question the caches lack would show as a
    // temperror, not as time.
    let verifier = Verifier(
        dkim::authenticator(&DnsSettings {
            nameservers: vec!["127.0.0.1:9".parse().unwrap()],
            timeout: Some(Duration::from_millis(50)),
        })
        .unwrap(),
    );
    let parsed_key = || Txt::DomainKey(Arc::new(DomainKey::parse(record.as_bytes()).unwrap()));
    let keys = TxtCache::default();
    keys.put(KEY_NAME, parsed_key());
    let mut zone = Zone::new();
    zone.add(
        DOMAIN,
        Some(Record::Txt("v=spf1 ip4:127.0.0.1 -all".into())),
    );
    zone.add(
        &format!("_dmarc.{DOMAIN}"),
        Some(Record::Txt("v=DMARC1; p=reject".into())),
    );
    zone.add(KEY_NAME, Some(Record::Txt(record.clone())));
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Check once that everything passes (a failure would measure the
    // wrong path: e.g. the retry without trailing blank lines).
    let all = async |keys: &TxtCache| {
        let req = spf::Request {
            ip,
            helo: "client.test",
            receiver: "bench.test",
            now: 1_800_000_000,
        };
        let spf =
            spf::verify_mail_from(&zone, &req, "load@remote.test", spf::Limits::default()).await;
        let dkim = dkim::verify_with(&verifier.0, &signed, keys).await;
        let arc = arc::verify_with(&verifier, &signed, keys).await;
        let pass_domains: Vec<&str> = dkim
            .iter()
            .filter(|v| v.result == "pass" && v.signs_from)
            .map(|v| v.domain.as_str())
            .collect();
        let dmarc = dmarc::check(
            &zone,
            &dmarc::Input {
                from_domain: DOMAIN,
                spf_pass_domain: (spf.result == spf::SpfResult::Pass).then_some(DOMAIN),
                dkim_pass_domains: pass_domains,
                ..Default::default()
            },
        )
        .await;
        (spf.result, dkim, arc.result, dmarc.result)
    };
    let (spf_result, dkim_result, arc_result, dmarc_result) = rt.block_on(all(&keys));
    assert_eq!(spf_result, spf::SpfResult::Pass);
    assert_eq!(dkim_result.len(), 1);
    assert_eq!(dkim_result[0].result, "pass", "{dkim_result:?}");
    assert_eq!(arc_result, "none");
    assert_eq!(dmarc_result, dmarc::DmarcResult::Pass);

    measure("DKIM RSA-2048 alone, key cached", n, &rt, async || {
        let v = dkim::verify_with(&verifier.0, &signed, &keys).await;
        assert_eq!(v[0].result, "pass");
    });
    measure("DKIM RSA-2048, key record parsed", n, &rt, async || {
        let fresh = TxtCache::default();
        fresh.put(KEY_NAME, parsed_key());
        let v = dkim::verify_with(&verifier.0, &signed, &fresh).await;
        assert_eq!(v[0].result, "pass");
    });
    // smtp-source -F (bench/smtp_vs_postfix.sh SIGNED=1) sends one empty
    // line more at the end, which relaxed body canonicalization ignores.
    let mut sent = signed.clone();
    sent.extend_from_slice(b"\r\n");
    measure(
        "DKIM RSA-2048, as smtp-source -F sends",
        n,
        &rt,
        async || {
            let fresh = TxtCache::default();
            fresh.put(KEY_NAME, parsed_key());
            let v = dkim::verify_with(&verifier.0, &sent, &fresh).await;
            assert_eq!(v[0].result, "pass");
        },
    );
    measure("all checks (SPF, DKIM, ARC, DMARC)", n, &rt, async || {
        let fresh = TxtCache::default();
        fresh.put(KEY_NAME, parsed_key());
        let r = all(&fresh).await;
        assert_eq!(r.3, dmarc::DmarcResult::Pass);
    });
    measure("SPF + ARC + DMARC (no DKIM)", n, &rt, async || {
        let req = spf::Request {
            ip,
            helo: "client.test",
            receiver: "bench.test",
            now: 1_800_000_000,
        };
        let s =
            spf::verify_mail_from(&zone, &req, "load@remote.test", spf::Limits::default()).await;
        let a = arc::verify_with(&verifier, &signed, &keys).await;
        let d = dmarc::check(
            &zone,
            &dmarc::Input {
                from_domain: DOMAIN,
                spf_pass_domain: Some(DOMAIN),
                dkim_pass_domains: vec![DOMAIN],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            (s.result, a.result, d.result),
            (spf::SpfResult::Pass, "none", dmarc::DmarcResult::Pass)
        );
    });
}
