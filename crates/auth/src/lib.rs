//! Mail authentication: the checks that tell a forged sender from a real
//! one. Today SPF (RFC 7208); DKIM, DMARC and ARC follow (issue 13).
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
#[cfg(feature = "resolver")]
pub mod resolver;
pub mod spf;
