//! S/MIME (RFC 8551) for postamt, with OpenSSL's CMS for the
//! cryptography: a small certificate authority for a course or an
//! organisation ([`ca`]), PKCS#12 identities, and signing, verification,
//! encryption and decryption of MIME messages ([`message`]).

pub mod ca;
mod der;
pub mod message;
mod mime;

pub use ca::{Ca, Identity, KeyKind, encryption_certificate};
pub use message::{
    Cipher, Layer, Status, Verification, decrypt, encrypt, encrypt_at_rest, encrypt_with,
    is_encrypted, sign, verify, verify_with_crls,
};

/// What went wrong, in words.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Error {
        Error(openssl_reason(&e))
    }
}

/// OpenSSL's reason for an error, without its codes and file names.
pub(crate) fn openssl_reason(e: &openssl::error::ErrorStack) -> String {
    let reasons: Vec<String> = e
        .errors()
        .iter()
        .filter_map(|x| {
            // The data says why a certificate failed (`Verify
            // error:certificate has expired`).
            let reason = x.reason()?;
            Some(match x.data().filter(|d| !d.is_empty()) {
                Some(d) => format!("{reason} ({})", d.trim_start_matches("Verify error:")),
                None => reason.to_string(),
            })
        })
        .collect();
    if reasons.is_empty() {
        "OpenSSL gave no reason".into()
    } else {
        reasons.join("; ")
    }
}

pub type Result<T> = std::result::Result<T, Error>;
