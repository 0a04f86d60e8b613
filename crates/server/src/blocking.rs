//! The one way a session blocks its worker thread on purpose.
//!
//! Sessions are async tasks; the store is synchronous. Everything that
//! writes, fsyncs, hashes a password or scans a mailbox goes to the store's
//! writer thread or tokio's blocking pool (`postamt_store::blocking`,
//! [`crate::AuthThrottle::login`]). A short *read* — an indexed lookup of a
//! few rows or one message, microseconds while the pages are cached — runs
//! here instead: handing every POP3 RETR to the blocking pool cost a thread
//! hand-off each way and capped pipelined RETR at a quarter of the rate
//! (bench/README.md), and the SMTP directory lookups gained 15 % inline.

/// Runs the short blocking read `f` on this worker thread. On a
/// multi-threaded runtime it runs under `block_in_place`, so the runtime
/// moves this worker's other tasks elsewhere meanwhile; on a current-thread
/// runtime (the in-memory session tests) it simply runs.
pub fn read_inline<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
