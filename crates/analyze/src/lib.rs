//! Header forensics (issue 14): a message's `Received:` chain read into
//! hops ([`received`]), oldest first, with the trust boundary ([`trust`]),
//! the identities it claims and how they align, look-alike domains
//! ([`lookalike`]), findings and a verdict with its reasons
//! ([`analysis`]), in English and German ([`text`]). A library with a
//! JSON-serialisable result, used by `postamt analyze` and (later) the
//! web interface. No I/O: a DKIM/ARC re-check with DNS is the caller's
//! ([`analysis::Recheck`]).

pub mod analysis;
pub mod date;
pub mod lookalike;
pub mod received;
pub mod report;
pub mod text;
pub mod trust;

pub use analysis::{Analysis, Options, analyze};
