//! The cost of analysing a message offline (no DNS), on one core:
//! `cargo bench -p postamt-analyze --bench analyze`.
//!
//! 1. The 57 header sets of `../shared/corpus/headers/messages/`, round
//!    robin, 10,000 analyses: messages per second.
//! 2. A typical message: 8 hops, 2 DKIM signatures, our own recorded
//!    results: time per analysis.
//!
//! Wall time on one thread (the work is CPU-bound and single-threaded).

use std::time::Instant;

use postamt_analyze::analysis::{Options, Recheck};
use postamt_analyze::analyze;

fn typical() -> Vec<u8> {
    let mut m = String::new();
    m.push_str("Received: from mx.relay.example.net (mx.relay.example.net [198.51.100.9]) by mail.example.org (postamt) with ESMTPS (TLSv1_3 TLS13_AES_256_GCM_SHA384) id A1 for <bob@example.org>; Thu, 26 Nov 2026 12:00:08 +0000\r\n");
    m.push_str("Authentication-Results: mail.example.org; spf=pass smtp.mailfrom=news@shop.example; dkim=pass header.d=shop.example; dmarc=pass header.from=shop.example\r\n");
    for i in 0..7 {
        m.push_str(&format!(
            "Received: from hop{i}.shop.example (hop{i}.shop.example [192.0.2.{i}]) by hop{}.shop.example (Postfix) with ESMTPS id Q{i} for <bob@example.org>; Thu, 26 Nov 2026 12:00:0{i} +0000\r\n",
            i + 1
        ));
    }
    for (d, s) in [("shop.example", "s1"), ("esp.example", "k2")] {
        m.push_str(&format!("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={d}; s={s}; h=from:to:subject:date:message-id; bh=AAAA; b=BBBB\r\n"));
    }
    m.push_str("From: Shop <news@shop.example>\r\nReply-To: help@shop.example\r\nTo: bob@example.org\r\nSubject: news\r\nDate: Thu, 26 Nov 2026 11:59:59 +0000\r\nMessage-ID: <n@shop.example>\r\n\r\nbody\r\n");
    m.into_bytes()
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/headers/messages");
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("the corpus")
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    corpus.sort();
    let options = Options {
        hostnames: vec!["mail.example.org".into()],
        local_domains: vec!["example.org".into()],
        ..Options::default()
    };
    // Warm up.
    for m in &corpus {
        std::hint::black_box(analyze(m, &options));
    }
    let n = 10_000;
    let start = Instant::now();
    for i in 0..n {
        std::hint::black_box(analyze(&corpus[i % corpus.len()], &options));
    }
    let took = start.elapsed();
    println!(
        "corpus: {n} analyses of {} messages in {:.3} s: {:.0} messages/s, {:.1} µs each",
        corpus.len(),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64
    );
    let m = typical();
    let with_recheck = Options {
        recheck: Some(Recheck {
            dkim: vec![
                ("shop.example".into(), "s1".into(), "pass".into()),
                ("esp.example".into(), "k2".into(), "pass".into()),
            ],
            arc: None,
        }),
        ..options.clone()
    };
    let a = analyze(&m, &with_recheck);
    assert_eq!(a.hops.len(), 8);
    assert_eq!(a.signatures.len(), 2);
    let n = 10_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(analyze(&m, &with_recheck));
    }
    let took = start.elapsed();
    println!(
        "typical (8 hops, 2 signatures, results given): {:.1} µs per message ({:.0}/s)",
        took.as_secs_f64() * 1e6 / n as f64,
        n as f64 / took.as_secs_f64()
    );
}
