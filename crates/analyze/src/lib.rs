//! Header forensics (issue 14): a message's `Received:` chain read into
//! hops ([`received`]), oldest first, with the trust boundary, the
//! identities it claims and how they align, findings and a verdict. A
//! library with a JSON-serialisable result, used by `postamt analyze` and
//! (later) the web interface.

pub mod date;
pub mod received;
pub mod trust;
