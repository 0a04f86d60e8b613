//! Fills a store with N messages of SIZE bytes for one account, through the
//! in-process delivery API (for the POP3 benchmarks in bench/).
//!
//! usage: bench_fill DB_PATH|postgres://… DOMAIN ADDRESS PASSWORD N SIZE

use postamt_store::{PgStore, SharedStore, SqliteOptions, SqliteStore};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let [_, db, domain, address, password, n, size] = a.as_slice() else {
        eprintln!("usage: bench_fill DB_PATH DOMAIN ADDRESS PASSWORD N SIZE");
        std::process::exit(64);
    };
    let n: usize = n.parse().unwrap();
    let size: usize = size.parse().unwrap();
    let store: SharedStore = if db.starts_with("postgres://") {
        std::sync::Arc::new(PgStore::open(db).unwrap())
    } else {
        std::sync::Arc::new(SqliteStore::open(SqliteOptions::new(db)).unwrap())
    };
    store.add_domain(domain).unwrap();
    if store.account(address).unwrap().is_none() {
        store.create_account(address, password).unwrap();
    }
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let store = std::sync::Arc::clone(&store);
            let address = address.clone();
            std::thread::spawn(move || {
                for i in (t..n).step_by(16) {
                    let msg = bench_message(i, size);
                    postamt_mda::deliver(
                        &*store,
                        "bench@remote.test",
                        std::slice::from_ref(&address),
                        &msg,
                        1_700_000_000,
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    println!("filled {n} messages of ~{size} bytes for {address}");
}

/// A message of about `size` bytes with 76-character body lines.
pub fn bench_message(i: usize, size: usize) -> Vec<u8> {
    let mut m = format!("From: Bench <bench@remote.test>\r\nTo: user@bench.test\r\nSubject: message {i}\r\nMessage-ID: <{i}@bench.test>\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\n").into_bytes();
    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n";
    while m.len() + line.len() <= size {
        m.extend_from_slice(line.as_bytes());
    }
    m
}
