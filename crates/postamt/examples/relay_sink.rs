//! The receiving end of the relay benchmark (bench/relay_vs_postfix.sh): an
//! SMTP sink listening on 127.0.0.1 … 127.0.0.IPS (one port), so that 100
//! destination domains can be 100 distinct hosts on loopback. It takes
//! every message (PIPELINING, no CHUNKING), reads its `X-Bench-Sent:`
//! stamp, and after COUNT messages prints throughput (first submission to
//! last arrival) and the queue latency percentiles, then exits.
//!
//! usage: relay_sink PORT IPS COUNT
//! prints "ready" once listening.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

struct Stats {
    latencies: Vec<u128>,
    first_sent: u128,
    last_arrival: u128,
    connections: usize,
}

fn now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn session(s: TcpStream, stats: Arc<Mutex<Stats>>, count: usize) -> std::io::Result<()> {
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    w.write_all(b"220 sink.bench ESMTP\r\n")?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let verb = String::from_utf8_lossy(&line[..line.len().min(4)]).to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => w.write_all(b"250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 100000000\r\n250 ENHANCEDSTATUSCODES\r\n")?,
            "HELO" => w.write_all(b"250 sink.bench\r\n")?,
            "MAIL" | "RCPT" | "RSET" | "NOOP" => w.write_all(b"250 2.0.0 ok\r\n")?,
            "QUIT" => {
                w.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            "DATA" => {
                w.write_all(b"354 go ahead\r\n")?;
                let mut sent = None;
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line)? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    if sent.is_none() && line.starts_with(b"X-Bench-Sent: ") {
                        sent = String::from_utf8_lossy(&line[14..]).trim().parse::<u128>().ok();
                    }
                }
                let arrived = now();
                w.write_all(b"250 2.0.0 ok\r\n")?;
                let mut st = stats.lock().unwrap();
                if let Some(sent) = sent {
                    st.latencies.push(arrived.saturating_sub(sent));
                    st.first_sent = st.first_sent.min(sent);
                }
                st.last_arrival = arrived;
                if st.latencies.len() == count {
                    report(&st);
                    std::process::exit(0);
                }
            }
            _ => w.write_all(b"502 5.5.1 not here\r\n")?,
        }
    }
}

fn report(st: &Stats) {
    let mut l = st.latencies.clone();
    l.sort();
    let ms = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)] as f64 / 1e6;
    let secs = (st.last_arrival - st.first_sent) as f64 / 1e9;
    println!(
        "received {} messages in {secs:.2} s: {:.0} msg/s; queue latency ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}; {} connections",
        l.len(),
        l.len() as f64 / secs,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(1.0),
        st.connections
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let port: u16 = a[1].parse().unwrap();
    let ips: u8 = a[2].parse().unwrap();
    let count: usize = a[3].parse().unwrap();
    let stats = Arc::new(Mutex::new(Stats {
        latencies: Vec::with_capacity(count),
        first_sent: u128::MAX,
        last_arrival: 0,
        connections: 0,
    }));
    for i in 1..=ips {
        let l = TcpListener::bind(("127.0.0.".to_string() + &i.to_string(), port)).unwrap();
        let stats = Arc::clone(&stats);
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let _ = s.set_nodelay(true);
                stats.lock().unwrap().connections += 1;
                let stats = Arc::clone(&stats);
                std::thread::spawn(move || {
                    let _ = session(s, stats, count);
                });
            }
        });
    }
    println!("ready");
    loop {
        std::thread::park();
    }
}
