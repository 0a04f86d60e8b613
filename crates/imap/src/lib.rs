//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501), with the extensions
//! modern clients use (IDLE, UIDPLUS, MOVE, CONDSTORE/QRESYNC, ESEARCH,
//! SORT/THREAD, LIST-EXTENDED, QUOTA, UTF8=ACCEPT, …; the full list is the
//! CAPABILITY response, `session/auth.rs`).
//!
//! Sans-IO layers: [`frame`] cuts the byte stream into commands (lines and
//! literals, all bounded), [`command`] parses one command, [`status`] is
//! the typed status response (OK/NO/BAD/BYE with its response code) and
//! its one rendering, [`fetch`] cuts sections out of the stored octets
//! (strings, ENVELOPE and BODYSTRUCTURE are rendered by
//! `postamt_wire::imap`); [`session`] drives them over a connection with
//! the store behind it, one room per concern.

pub mod command;
pub mod fetch;
pub mod frame;
pub mod listing;
/// What SEARCH BODY, TEXT and the header keys look into (in the wire
/// crate, so that delivery can keep the header values beside the message).
pub use postamt_wire::search as search_text;
pub mod sequence;
pub mod session;
pub mod sort;
pub mod status;

pub use session::{Imap, ImapConfig};
