//! Argon2id password hashes in PHC string form (`$argon2id$v=19$…`).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Hashes with Argon2id and the crate's default (OWASP) parameters and a
/// random salt.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks `password` against a PHC string. A malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of nothing in particular, verified against when an account does
/// not exist so that the answer takes as long as for a real account.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("postamt-dummy-password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_format() {
        let h = super::hash("secret").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(super::verify("secret", &h));
        assert!(!super::verify("Secret", &h));
        assert!(!super::verify("secret", "garbage"));
    }
}
