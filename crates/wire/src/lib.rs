//! Protocol-pure pieces that several postamt crates need and none owns. No
//! sockets, no tokio, no store, no clock beyond [`time::unix_now`]: bytes
//! and text in, bytes and text out.
//!
//! - [`crlf`]: line endings (one normaliser), [`dot`]: dot-stuffing (one
//!   stuffer, for SMTP DATA and POP3 alike).
//! - [`secret`]: [`Secret`], for passwords and AUTH payloads.
//! - [`meta`]: the MIME metadata parsed once at delivery (envelope header
//!   values, body structure with byte offsets).
//! - [`imap`]: IMAP strings, modified UTF-7, ENVELOPE and BODYSTRUCTURE.
//! - [`smtp`]: the client side of SMTP (reply parser, EHLO capabilities,
//!   paths, and the [`smtp::dialogue`] state machine), shared by the relay
//!   and the mail client.
//! - [`time`]: dates as mail headers, mbox and IMAP write them.
//! - [`explain`]: what each protocol line means, with its RFC section, in
//!   English and German (the client's `--explain`, server transcripts).

pub mod crlf;
pub mod dot;
pub mod explain;
pub mod imap;
pub mod meta;
pub mod search;
pub mod secret;
pub mod smtp;
pub mod time;

pub use secret::Secret;
