//! Logins of the web interface: random tokens in a cookie, each with its
//! CSRF token, held in memory (a restart logs everyone out, as a mail
//! session would end). Tokens are only ever made here, at login: a cookie
//! with a token the server does not hold is ignored, so a token planted
//! before login (session fixation) is never adopted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use postamt_store::AccountId;

/// The cookie's name.
pub const COOKIE: &str = "postamt_session";

/// One login.
#[derive(Debug, Clone)]
pub struct Login {
    pub account: AccountId,
    pub address: String,
    pub admin: bool,
    /// Sent with every state-changing request (form field `csrf`, header
    /// `X-CSRF-Token`).
    pub csrf: String,
    started: Instant,
    last: Instant,
}

/// Logins one account holds at once (browsers, devices, API scripts).
pub const MAX_PER_ACCOUNT: usize = 64;

/// Every login, by token.
pub struct Sessions {
    idle: Duration,
    max_age: Duration,
    max: usize,
    by_token: Mutex<HashMap<String, Login>>,
}

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b)
        .expect("the system's random generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    pub fn new(idle: Duration, max_age: Duration, max: usize) -> Sessions {
        Sessions {
            idle,
            max_age,
            max: max.max(1),
            by_token: Mutex::new(HashMap::new()),
        }
    }

    /// A new login; returns its token (for the cookie).
    pub fn create(&self, account: AccountId, address: &str, admin: bool) -> (String, Login) {
        let now = Instant::now();
        let token = random_token();
        let login = Login {
            account,
            address: address.to_lowercase(),
            admin,
            csrf: random_token(),
            started: now,
            last: now,
        };
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        // One account holds at most MAX_PER_ACCOUNT logins: its own oldest
        // goes first, so logging in again and again cannot push other
        // users' logins out of the map.
        let mine: Vec<(String, Instant)> = map
            .iter()
            .filter(|(_, l)| l.account == account)
            .map(|(t, l)| (t.clone(), l.last))
            .collect();
        if mine.len() >= MAX_PER_ACCOUNT
            && let Some((oldest, _)) = mine.iter().min_by_key(|(_, last)| *last)
        {
            map.remove(oldest);
        }
        if map.len() >= self.max {
            let (idle, max_age) = (self.idle, self.max_age);
            map.retain(|_, l| !expired(l, now, idle, max_age));
            if map.len() >= self.max {
                // Still full: the least recently used login goes.
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, l)| l.last)
                    .map(|(t, _)| t.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(token.clone(), login.clone());
        (token, login)
    }

    /// The login of `token`, if it is held and not expired (and marks it
    /// used).
    pub fn get(&self, token: &str) -> Option<Login> {
        let now = Instant::now();
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        let login = map.get_mut(token)?;
        if expired(login, now, self.idle, self.max_age) {
            map.remove(token);
            return None;
        }
        login.last = now;
        Some(login.clone())
    }

    pub fn remove(&self, token: &str) {
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(token);
    }

    /// Ends every login of an account (its password changed, or it was
    /// deleted).
    pub fn remove_account(&self, address: &str) {
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, l| !l.address.eq_ignore_ascii_case(address));
    }

    /// Logins held now.
    pub fn len(&self) -> usize {
        self.by_token.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn expired(l: &Login, now: Instant, idle: Duration, max_age: Duration) -> bool {
    now.duration_since(l.last) >= idle || now.duration_since(l.started) >= max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_long() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43); // 256 bits, base64url without padding
    }

    #[test]
    fn a_token_the_server_did_not_issue_is_no_login() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(600), 10);
        let (t, l) = s.create(AccountId(1), "Alice@Example.test", false);
        assert_eq!(l.address, "alice@example.test");
        assert!(s.get(&t).is_some());
        assert!(s.get("planted-by-an-attacker").is_none());
        s.remove(&t);
        assert!(s.get(&t).is_none());
    }

    #[test]
    fn idle_logins_expire() {
        let s = Sessions::new(Duration::from_millis(0), Duration::from_secs(600), 10);
        let (t, _) = s.create(AccountId(1), "a@b", false);
        assert!(s.get(&t).is_none());
    }

    #[test]
    fn the_count_of_logins_is_bounded() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(600), 3);
        let tokens: Vec<String> = (0..5)
            .map(|i| s.create(AccountId(i), "a@b", false).0)
            .collect();
        assert_eq!(s.len(), 3);
        assert!(s.get(&tokens[4]).is_some());
    }

    #[test]
    fn one_account_cannot_push_out_the_others() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(600), 100);
        let (other, _) = s.create(AccountId(2), "b@x", false);
        for _ in 0..1000 {
            s.create(AccountId(1), "a@x", false);
        }
        assert!(s.get(&other).is_some());
        assert_eq!(s.len(), MAX_PER_ACCOUNT + 1);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
