//! The mail store: accounts, domains, aliases, mailboxes, messages and the
//! outbound queue, behind domain-level traits, one per concern
//! ([`Directory`], [`Mailboxes`], [`Messages`], [`Queue`], [`Coordination`];
//! all five together: [`Store`], see `traits.rs`). Protocol code talks to
//! these traits and never sees SQL.
//!
//! The default backend is [`SqliteStore`] (bundled SQLite, WAL,
//! `synchronous=FULL`, group commit). Any future backend must pass the suite
//! in [`conformance`] unchanged (enable the `conformance` feature).
//!
//! The traits are synchronous: calls may block on disk (and on the group
//! commit). Async code calls them from `tokio::task::spawn_blocking`
//! ([`blocking`]).

pub use postamt_wire::meta;
mod burst;
mod model;
pub mod password;
pub mod postgres;
mod rules;
mod signals;
mod sqlite;
mod traits;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use meta::MessageMeta;
pub use model::*;
pub use postamt_wire::search::SearchHeaders;
pub use postgres::PgStore;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use traits::{
    Coordination, Directory, Mailboxes, Messages, Queue, Reports, SharedStore, Store,
};

/// Errors classified by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist (a 5xx / NO for the client).
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The request is malformed (bad address, bad mailbox name, …).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The account's quota would be exceeded (RFC 9208 OVERQUOTA).
    #[error("over quota")]
    OverQuota,
    /// The backend failed; retrying later may work (4xx / `[SYS/TEMP]`).
    #[error("storage backend: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Runs a store call (which may block on disk or on the group commit) on
/// tokio's blocking pool, from async code.
pub async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static + From<StoreError>,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(E::from(StoreError::Backend(e.to_string()))),
    }
}

/// Canonical form of a mailbox name: `INBOX` in any case becomes `INBOX`,
/// also as the first level of a hierarchical name (RFC 9051 §5.1).
pub fn canonical_mailbox_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        return "INBOX".into();
    }
    match name.split_once('/') {
        Some((first, rest)) if first.eq_ignore_ascii_case("INBOX") => format!("INBOX/{rest}"),
        _ => name.to_string(),
    }
}

/// Checks a mailbox name: non-empty, no empty hierarchy levels, no control
/// characters, bounded length.
pub fn check_mailbox_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 1000
        || name.starts_with('/')
        || name.ends_with('/')
        || name.contains("//")
        || name.chars().any(|c| c.is_control() || c == '*' || c == '%');
    if bad {
        Err(StoreError::Invalid(format!("mailbox name {name:?}")))
    } else {
        Ok(())
    }
}

/// Lower-cases and checks `local@domain`.
pub fn normalize_address(address: &str) -> Result<String> {
    let a = address.trim().to_lowercase();
    match a.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !local.contains('@')
                && a.len() <= 254
                && !a
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>') =>
        {
            Ok(a)
        }
        _ => Err(StoreError::Invalid(format!("address {address:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_is_case_insensitive() {
        assert_eq!(canonical_mailbox_name("inBox"), "INBOX");
        assert_eq!(canonical_mailbox_name("inbox/x"), "INBOX/x");
        assert_eq!(canonical_mailbox_name("Inboxes"), "Inboxes");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            normalize_address(" Alice@Example.ORG ").unwrap(),
            "alice@example.org"
        );
        assert!(normalize_address("nodomain").is_err());
        assert!(normalize_address("a@b@c").is_err());
        assert!(normalize_address("a b@c").is_err());
    }
}
