//! SMTP: the inbound MTA (RFC 5321), message submission (RFC 6409, with
//! AUTH RFC 4954 and STARTTLS RFC 3207) and LMTP (RFC 2033).
//!
//! The sans-IO layers: [`command`] (command lines and ESMTP parameters),
//! [`data`] (the DATA and BDAT receivers, smuggling-proof), [`core`] (the
//! session state machine: sequence rules, limits, every reply decision),
//! [`checks`] (the inbound checks and the `Received:` header, pure
//! functions) and [`reply`] (the reply table with enhanced status codes).
//! [`session`] runs the core over a connection with the store behind it.
//! [`dsn`] builds delivery status notifications for the session and the
//! relay. The client side (reply parser, EHLO capabilities) is
//! `postamt_wire::smtp`, shared by the relay and the mail client.

pub mod checks;
pub mod command;
pub mod core;
pub mod data;
pub mod dsn;
pub mod reply;
pub mod session;

pub use session::{DmarcPolicy, Mode, Smtp, SmtpConfig, SpfPolicy, SpoofPolicy};

/// A small deterministic generator (xorshift64) for the property tests.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// Fewer than `most` of `pieces`, picked at random and joined: inputs for
/// the property tests made of the bytes that matter.
#[cfg(test)]
pub(crate) fn pick(next: &mut impl FnMut() -> u64, pieces: &[&[u8]], most: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..(next() % most) {
        out.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
    }
    out
}
