//! POP3 (RFC 1939) with CAPA and RESP-CODES (RFC 2449), STLS (RFC 2595) and
//! SASL PLAIN/LOGIN (RFC 5034): a sans-IO core ([`core`]) and the session
//! that runs it over a connection ([`session`]). The maildrop is the INBOX.

pub mod core;
pub mod session;

pub use session::{Pop3, Pop3Config};
