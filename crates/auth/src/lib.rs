//! Mail authentication: the checks that tell a forged sender from a real
//! one: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489, RFC 9989) with
//! its aggregate reports (RFC 9990), and ARC (RFC 8617).
//!
//! Nothing here does I/O of its own: every DNS question goes through the
//! [`dns::Dns`] trait, which the server answers from its resolver and the
//! tests from an in-memory zone ([`dns::Zone`]).

#[cfg(feature = "resolver")]
pub mod arc;
#[cfg(feature = "resolver")]
pub mod dkim;
pub mod dmarc;
pub mod dns;
pub mod psl;
pub mod report;
#[cfg(feature = "resolver")]
pub mod resolver;
pub mod spf;
