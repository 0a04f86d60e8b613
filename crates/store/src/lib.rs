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

/// ENVELOPE pre-rendering (now in `postamt-wire`).
pub use postamt_wire::imap::envelope as imapdata;
pub use postamt_wire::meta;
mod model;
pub mod password;
mod sqlite;
mod traits;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use meta::MessageMeta;
pub use model::*;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use traits::{Coordination, Directory, Mailboxes, Messages, Queue, SharedStore, Store};

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

/// Turns every line ending into CRLF (bare LF and bare CR alike) and ends a
/// non-empty message with CRLF, so that sizes count exactly what POP3 RETR
/// and IMAP FETCH send (RFC 1939 §11, RFC 9051 §2.3.4).
pub fn normalize_crlf(input: &[u8]) -> Vec<u8> {
    normalize_crlf_owned(input.to_vec())
}

/// [`normalize_crlf`] for owned content: clean input (the usual case, since
/// SMTP refuses bare CR/LF) is returned as it is, without a copy.
pub fn normalize_crlf_owned(mut input: Vec<u8>) -> Vec<u8> {
    if is_crlf_clean(&input) {
        if !input.is_empty() && !input.ends_with(b"\r\n") {
            input.extend_from_slice(b"\r\n");
        }
        return input;
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 32 + 2);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// True when every CR is followed by LF and every LF follows a CR. Only the
/// line endings are looked at (memchr), not every byte.
pub fn is_crlf_clean(input: &[u8]) -> bool {
    if input.first() == Some(&b'\n') || input.last() == Some(&b'\r') {
        return false;
    }
    // Clean means: at every position, "the byte before is CR" and "this byte
    // is LF" are both true or both false. Checked over whole blocks without
    // branches (the compiler vectorizes it), instead of stopping at every
    // line end: messages have a line end every 80 bytes or so.
    const BLOCK: usize = 4096;
    let mut at = 1;
    while at < input.len() {
        let end = (at + BLOCK).min(input.len());
        let (prev, cur) = (&input[at - 1..end - 1], &input[at..end]);
        let mismatch = prev.iter().zip(cur).fold(0u8, |acc, (p, c)| {
            acc | (u8::from(*p == b'\r') ^ u8::from(*c == b'\n'))
        });
        if mismatch != 0 {
            return false;
        }
        at = end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_clean_check() {
        for (input, clean) in [
            (&b""[..], true),
            (b"a", true),
            (b"\r\n", true),
            (b"a\r\nb\r\n", true),
            (b"\n", false),
            (b"\r", false),
            (b"a\nb", false),
            (b"a\rb", false),
            (b"a\r\r\n", false),
            (b"a\r\n\n", false),
            (b"\r\n\r", false),
        ] {
            assert_eq!(is_crlf_clean(input), clean, "{input:?}");
        }
        // Across the block boundary of the vectorized check.
        for at in [4094usize, 4095, 4096, 4097, 8191, 8192] {
            let mut v = vec![b'x'; 9000];
            v[at] = b'\n';
            assert!(!is_crlf_clean(&v), "bare LF at {at}");
            v[at - 1] = b'\r';
            assert!(is_crlf_clean(&v), "CRLF at {at}");
            v[at] = b'y';
            assert!(!is_crlf_clean(&v), "bare CR at {}", at - 1);
        }
    }

    #[test]
    fn crlf_normalisation() {
        assert_eq!(normalize_crlf(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(normalize_crlf(b""), b"");
        assert_eq!(normalize_crlf(b"\r\n\r\n"), b"\r\n\r\n");
    }

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
