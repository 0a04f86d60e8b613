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
    VERIFICATIONS.with(|v| v.set(v.get() + 1));
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

thread_local! {
    /// Argon2id verifications done on this thread (what the cache saves,
    /// observable by its test).
    static VERIFICATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Verified credentials, as Dovecot's `auth_cache`: after a successful
/// Argon2id check, a keyed BLAKE2b of (address, password, stored hash) is
/// kept for a while, so the next login with the same password skips the
/// 20 ms of Argon2id. A password change or a deleted account changes or
/// removes the stored hash, so no entry matches any more; a wrong password
/// is never found (it hashes to another key) and pays Argon2id and the
/// protocol's failure delay as before. The key is random per process: the
/// cache holds no password, nor anything to test guesses against offline
/// without that key.
struct CredentialsCache {
    ttl: std::time::Duration,
    key: [u8; 32],
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>,
}

/// Most entries kept (one per user and password in use).
const CACHE_MAX: usize = 100_000;

static CACHE: std::sync::RwLock<Option<CredentialsCache>> = std::sync::RwLock::new(None);

/// Turns the verified-credentials cache on for `ttl` (`None` or zero:
/// off, and what it held is forgotten). `serve` sets it from `[auth]
/// cache_ttl`.
pub fn set_cache_ttl(ttl: Option<std::time::Duration>) {
    let cache = ttl.filter(|t| !t.is_zero()).map(|ttl| CredentialsCache {
        ttl,
        key: rand::random(),
        entries: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    if let Ok(mut c) = CACHE.write() {
        *c = cache;
    }
}

fn cache_key(key: &[u8; 32], address: &str, password: &str, phc: &str) -> [u8; 32] {
    use blake2::Digest;
    let mut h = blake2::Blake2b512::new();
    // Length-prefixed fields: no two inputs run together the same way.
    for part in [
        &key[..],
        address.as_bytes(),
        password.as_bytes(),
        phc.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let out = h.finalize();
    let mut k = [0u8; 32];
    k.copy_from_slice(&out[..32]);
    k
}

impl CredentialsCache {
    /// Whether `key` was verified and has not expired at `now`.
    fn holds(&self, key: &[u8; 32], now: std::time::Instant) -> bool {
        self.entries
            .lock()
            .map(|e| e.get(key).is_some_and(|&until| until > now))
            .unwrap_or(false)
    }

    /// Keeps `key` until `now` + ttl; a full cache first drops what has
    /// expired, then everything.
    fn remember(&self, key: [u8; 32], now: std::time::Instant) {
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        if e.len() >= CACHE_MAX {
            e.retain(|_, until| *until > now);
            if e.len() >= CACHE_MAX {
                e.clear();
            }
        }
        e.insert(key, now + self.ttl);
    }
}

/// `f` on the cache, when it is on.
fn with_cache<T>(f: impl FnOnce(&CredentialsCache) -> T) -> Option<T> {
    CACHE.read().ok()?.as_ref().map(f)
}

/// [`verify`] through the verified-credentials cache (see
/// [`set_cache_ttl`]) for `address`.
pub fn verify_cached(address: &str, password: &str, phc: &str) -> bool {
    let now = std::time::Instant::now();
    let key = with_cache(|c| {
        let k = cache_key(&c.key, address, password, phc);
        (c.holds(&k, now), k)
    });
    if let Some((true, _)) = key {
        return true;
    }
    let ok = verify(password, phc);
    if ok && let Some((_, k)) = key {
        with_cache(|c| c.remember(k, now));
    }
    ok
}

/// A hash of nothing in particular, verified against when an account does
/// not exist so that the answer takes as long as for a real account.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("postamt-dummy-password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache (one test: it is process-wide): a second login with the
    /// right password skips Argon2id; a wrong password, another user, a
    /// changed hash (password changed) never hit; off forgets everything.
    #[test]
    fn verified_credentials_cache() {
        let count = || VERIFICATIONS.with(|v| v.get());
        let h = hash("secret").unwrap();
        set_cache_ttl(Some(std::time::Duration::from_secs(3600)));
        let before = count();
        assert!(verify_cached("a@x", "secret", &h));
        assert!(verify_cached("a@x", "secret", &h));
        assert!(verify_cached("a@x", "secret", &h));
        assert_eq!(count() - before, 1, "one Argon2id check, then the cache");
        let before = count();
        assert!(!verify_cached("a@x", "wrong", &h));
        assert!(!verify_cached("a@x", "wrong", &h));
        assert_eq!(
            count() - before,
            2,
            "a wrong password is checked every time"
        );
        let before = count();
        assert!(!verify_cached("b@x", "secret", &hash("other").unwrap()));
        let changed = hash("secret").unwrap();
        assert!(verify_cached("a@x", "secret", &changed));
        assert_eq!(count() - before, 2, "another user, a new hash: checked");
        set_cache_ttl(Some(std::time::Duration::from_nanos(1)));
        let before = count();
        assert!(verify_cached("a@x", "secret", &h));
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(verify_cached("a@x", "secret", &h));
        assert_eq!(count() - before, 2, "expired entries are checked again");
        set_cache_ttl(None);
        let before = count();
        assert!(verify_cached("a@x", "secret", &h));
        assert!(verify_cached("a@x", "secret", &h));
        assert_eq!(count() - before, 2, "off");
    }

    #[test]
    fn round_trip_and_format() {
        let h = super::hash("secret").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(super::verify("secret", &h));
        assert!(!super::verify("Secret", &h));
        assert!(!super::verify("secret", "garbage"));
    }
}
