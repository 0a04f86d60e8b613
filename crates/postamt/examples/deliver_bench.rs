//! Store delivery throughput through the in-process delivery API
//! (`postamt_mda::deliver`), durable (WAL, synchronous=FULL, group commit).
//!
//! usage: deliver_bench [CONCURRENCY] [MESSAGES] [SIZE]   (default 16 20000 4096)

use std::sync::Arc;
use std::time::Instant;

use postamt_store::{Directory, SqliteOptions, SqliteStore};

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let conc = *a.first().unwrap_or(&16);
    let n = *a.get(1).unwrap_or(&20_000);
    let size = *a.get(2).unwrap_or(&4096);
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(SqliteOptions::new(dir.path().join("bench.db"))).unwrap());
    store.add_domain("bench.test").unwrap();
    store.create_account("user@bench.test", "pw").unwrap();
    let body = {
        let mut m =
            b"From: a@remote.test\r\nTo: user@bench.test\r\nSubject: bench\r\n\r\n".to_vec();
        while m.len() < size {
            m.extend_from_slice(
                b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n",
            );
        }
        m.truncate(size);
        Arc::new(m)
    };
    let start = Instant::now();
    let threads: Vec<_> = (0..conc)
        .map(|t| {
            let store = Arc::clone(&store);
            let body = Arc::clone(&body);
            std::thread::spawn(move || {
                for _ in (t..n).step_by(conc) {
                    postamt_mda::deliver(
                        &*store,
                        "a@remote.test",
                        &["user@bench.test".to_string()],
                        &body,
                        0,
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "deliver_bench: {n} messages of {size} bytes, {conc} concurrent deliverers: {:.2} s, {:.0} messages/s",
        secs,
        n as f64 / secs
    );
}
