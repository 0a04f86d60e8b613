//! A POP3 load client for bench/: login + STAT latency, then RETR of every
//! message, one command at a time or pipelined. Works against any POP3
//! server (postamt, Dovecot).
//!
//! usage: pop3_bench HOST:PORT USER PASS DEPTH [ROUNDS]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Instant;

fn status(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    assert!(l.starts_with("+OK"), "server said {l:?}");
    l
}

fn multiline(r: &mut BufReader<TcpStream>, buf: &mut Vec<u8>) -> usize {
    let mut n = 0;
    loop {
        buf.clear();
        r.read_until(b'\n', buf).unwrap();
        assert!(!buf.is_empty(), "connection closed");
        if buf == b".\r\n" {
            return n;
        }
        n += buf.len();
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let addr = &a[1];
    let (user, pass) = (&a[2], &a[3]);
    let depth: usize = a[4].parse().unwrap();
    let rounds: usize = a.get(5).map(|r| r.parse().unwrap()).unwrap_or(1);
    for round in 0..rounds {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::with_capacity(1 << 16, s);
        status(&mut r);
        w.write_all(format!("USER {user}\r\n").as_bytes()).unwrap();
        status(&mut r);
        let t = Instant::now();
        w.write_all(format!("PASS {pass}\r\n").as_bytes()).unwrap();
        status(&mut r);
        let login = t.elapsed();
        let t = Instant::now();
        w.write_all(b"STAT\r\n").unwrap();
        let stat = status(&mut r);
        let stat_time = t.elapsed();
        let count: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut buf = Vec::with_capacity(8192);
        let t = Instant::now();
        let mut sent = 0;
        let mut done = 0;
        let mut bytes = 0;
        while done < count {
            let mut batch = Vec::new();
            while sent < count && sent - done < depth {
                sent += 1;
                batch.extend_from_slice(format!("RETR {sent}\r\n").as_bytes());
            }
            if !batch.is_empty() {
                w.write_all(&batch).unwrap();
            }
            status(&mut r);
            bytes += multiline(&mut r, &mut buf);
            done += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        w.write_all(b"QUIT\r\n").unwrap();
        status(&mut r);
        println!(
            "round {round}: {count} messages, login (PASS) {:.1} ms, STAT {:.2} ms, RETR depth {depth}: {:.2} s, {:.0} msg/s, {:.1} MB/s",
            login.as_secs_f64() * 1e3,
            stat_time.as_secs_f64() * 1e3,
            secs,
            count as f64 / secs,
            bytes as f64 / secs / 1e6
        );
    }
}
