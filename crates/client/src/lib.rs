//! The mail client (MUA) behind `postamt mail`: named accounts
//! ([`account`]), TLS with system roots or a pinned certificate ([`tls`]),
//! a line transport that can print the dialogue with explanations
//! ([`wire`]), submission over SMTP ([`smtp`]), reading over IMAP
//! ([`imap`]) or POP3 ([`pop3`]) and composing MIME messages ([`compose`]).
//!
//! It is synchronous (one connection at a time, as a command-line client
//! needs). What it says over SMTP is the relay's dialogue with other
//! options ([`postamt_wire::smtp::dialogue`]); its TLS configuration is the
//! relay's too ([`postamt_server::tls::client`]).

pub mod account;
pub mod compose;
pub mod imap;
pub mod pop3;
pub mod smtp;
pub mod tls;
pub mod wire;

/// What can go wrong, each with a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Config(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    #[error("login failed: {0}")]
    Auth(String),
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("I/O error: {0}")]
    Io(String),
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> ClientError {
        ClientError::Io(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;
