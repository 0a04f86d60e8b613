//! Load for the relay benchmark (bench/relay_vs_postfix.sh): submits COUNT
//! messages over CONNS connections to an MTA, each to `user@dN.bench`
//! (N = message number mod DOMAINS), each stamped with the time it was
//! submitted (`X-Bench-Sent:` nanoseconds since the epoch) so the sink can
//! measure queue latency. With AUTH it logs in (AUTH PLAIN) first.
//!
//! usage: relay_load HOST:PORT COUNT CONNS DOMAINS SIZE FROM [USER PASS]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn reply(r: &mut BufReader<TcpStream>, expect: &str) {
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        assert!(
            l.starts_with(expect),
            "expected {expect}, server said {l:?}"
        );
        if l.as_bytes().get(3) != Some(&b'-') {
            return;
        }
    }
}

fn b64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let addr = a[1].clone();
    let count: usize = a[2].parse().unwrap();
    let conns: usize = a[3].parse().unwrap();
    let domains: usize = a[4].parse().unwrap();
    let size: usize = a[5].parse().unwrap();
    let from = a[6].clone();
    let auth = a
        .get(7)
        .zip(a.get(8))
        .map(|(u, p)| b64(format!("\0{u}\0{p}").as_bytes()));
    let next = Arc::new(AtomicUsize::new(0));
    // SIZE bytes of whole lines (the last one ends in CRLF, so the final
    // dot starts a line).
    let line = "The quick brown fox jumps over the lazy dog. 0123456789\r\n";
    let body: String = line.repeat(size.div_ceil(line.len()).max(1));
    let body = Arc::new(body);
    let start = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (addr, from, auth, next, body) =
                (addr.clone(), from.clone(), auth.clone(), Arc::clone(&next), Arc::clone(&body));
            std::thread::spawn(move || {
                let s = TcpStream::connect(&addr).unwrap();
                s.set_nodelay(true).unwrap();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                reply(&mut r, "220");
                w.write_all(b"EHLO load.bench\r\n").unwrap();
                reply(&mut r, "250");
                if let Some(token) = &auth {
                    w.write_all(format!("AUTH PLAIN {token}\r\n").as_bytes()).unwrap();
                    reply(&mut r, "235");
                }
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    let to = format!("user{n}@d{}.bench", n % domains);
                    let sent = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
                    let msg = format!(
                        "MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n"
                    );
                    w.write_all(msg.as_bytes()).unwrap();
                    reply(&mut r, "250");
                    reply(&mut r, "250");
                    reply(&mut r, "354");
                    let data = format!(
                        "From: <{from}>\r\nTo: <{to}>\r\nSubject: bench {n}\r\nMessage-ID: <{n}.{sent}@load.bench>\r\n\
                         Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nX-Bench-Sent: {sent}\r\n\r\n{body}.\r\n"
                    );
                    w.write_all(data.as_bytes()).unwrap();
                    reply(&mut r, "250");
                }
                w.write_all(b"QUIT\r\n").unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "submitted {count} messages in {secs:.2} s ({:.0} msg/s)",
        count as f64 / secs
    );
}
