//! Login policy shared by every protocol: where plaintext passwords are
//! allowed, and the delay and throttling of failed logins per client IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Allow passwords over unencrypted connections from non-loopback
    /// clients (RFC 8314 §4 says don't; off by default).
    pub allow_plaintext: bool,
    /// Delay before answering a failed login.
    pub failure_delay: Duration,
    /// Failures from one IP within `window` before further logins are
    /// refused until the window has passed.
    pub max_failures: u32,
    pub window: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            allow_plaintext: false,
            failure_delay: Duration::from_secs(2),
            max_failures: 10,
            window: Duration::from_secs(300),
        }
    }
}

/// Counts failed logins per IP.
#[derive(Debug)]
pub struct AuthThrottle {
    pub policy: AuthPolicy,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AuthThrottle {
    pub fn new(policy: AuthPolicy) -> AuthThrottle {
        AuthThrottle {
            policy,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may try to log in now.
    pub fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        let mut map = match self.failures.lock() {
            Ok(m) => m,
            Err(_) => return true,
        };
        match map.get(&ip) {
            Some((n, since)) if now.duration_since(*since) < self.policy.window => {
                *n < self.policy.max_failures
            }
            Some(_) => {
                map.remove(&ip);
                true
            }
            None => true,
        }
    }

    /// Records a failure; returns how long to wait before answering.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Duration {
        if let Ok(mut map) = self.failures.lock() {
            if map.len() > 100_000 {
                let window = self.policy.window;
                map.retain(|_, (_, since)| now.duration_since(*since) < window);
            }
            let e = map.entry(ip).or_insert((0, now));
            if now.duration_since(e.1) >= self.policy.window {
                *e = (0, now);
            }
            e.0 += 1;
        }
        self.policy.failure_delay
    }

    /// A success clears the IP's count.
    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&ip);
        }
    }

    /// RFC 8314 / RFC 2595 §3.1: passwords only over TLS, except on
    /// loopback or when the administrator allows it.
    pub fn plaintext_allowed(&self, tls: bool, peer: IpAddr) -> bool {
        tls || peer.is_loopback() || self.policy.allow_plaintext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_after_max_failures_and_forgets_after_window() {
        let t = AuthThrottle::new(AuthPolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
            failure_delay: Duration::from_millis(5),
            allow_plaintext: false,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(t.allowed(ip, t0));
            assert_eq!(t.failed(ip, t0), Duration::from_millis(5));
        }
        assert!(!t.allowed(ip, t0));
        assert!(t.allowed("192.0.2.2".parse().unwrap(), t0));
        assert!(t.allowed(ip, t0 + Duration::from_secs(61)));
    }

    #[test]
    fn plaintext_only_on_loopback_or_tls() {
        let t = AuthThrottle::new(AuthPolicy::default());
        assert!(t.plaintext_allowed(false, "127.0.0.1".parse().unwrap()));
        assert!(t.plaintext_allowed(false, "::1".parse().unwrap()));
        assert!(!t.plaintext_allowed(false, "192.0.2.1".parse().unwrap()));
        assert!(t.plaintext_allowed(true, "192.0.2.1".parse().unwrap()));
    }
}
