//! IMAP syntax that more than the IMAP server needs: strings (the mail
//! client quotes mailbox names with them), modified UTF-7 names, and the
//! ENVELOPE/BODYSTRUCTURE rendering (the delivery path pre-renders an
//! ENVELOPE; the web interface and `postamt analyze` show them).

pub mod body;
pub mod envelope;
pub mod mutf7;
pub mod quote;

pub use body::{body_structure, date_time};
pub use envelope::{Address, envelope, parse_addresses, prerendered_envelope};
pub use quote::{literal, literal8, nstring, quoted, string};

/// What a rendering function writes, as text (for tests).
#[cfg(test)]
fn rendered(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut v = Vec::new();
    f(&mut v);
    String::from_utf8(v).expect("rendered text")
}
