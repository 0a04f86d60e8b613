//! Login policy shared by every protocol: where plaintext passwords are
//! allowed, and the delay and throttling of failed logins per client IP.

use std::collections::HashMap;
use std::fmt::Display;
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

/// Counts failed logins per IP, and logins in progress, so that parallel
/// guesses cannot slip past the limit together.
#[derive(Debug)]
pub struct AuthThrottle {
    pub policy: AuthPolicy,
    state: Mutex<Throttle>,
}

#[derive(Debug, Default)]
struct Throttle {
    by_ip: HashMap<IpAddr, Entry>,
    last_prune: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    since: Instant,
    in_flight: u32,
}

/// Why a login attempt may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The address has used up its failures for the window.
    Failures,
    /// The budget is taken by attempts still running: try again shortly.
    Busy,
}

/// Most client IPs tracked; beyond this, expired entries are dropped (at
/// most once per second), then the oldest.
const MAX_TRACKED: usize = 100_000;

/// How a login ended (see [`AuthThrottle::login`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Login<A> {
    /// The credentials were right: what the check returned.
    Ok(A),
    /// Wrong user or password: recorded, and the delay waited out.
    Failed,
    /// Too many failures from this address: refused without a check.
    Throttled,
    /// The check could not be made (the store failed); not a failure.
    TempFail,
}

/// A login being checked. Drop it after a success; call
/// [`AuthAttempt::failed`] after a failure.
#[must_use]
pub struct AuthAttempt<'a> {
    throttle: &'a AuthThrottle,
    ip: IpAddr,
    done: bool,
}

impl AuthAttempt<'_> {
    /// Records the failure; returns how long to wait before answering.
    pub fn failed(mut self, now: Instant) -> Duration {
        self.done = true;
        let t = self.throttle;
        if let Ok(mut st) = t.state.lock() {
            let window = t.policy.window;
            let e = st.by_ip.entry(self.ip).or_insert(Entry {
                failures: 0,
                since: now,
                in_flight: 0,
            });
            e.in_flight = e.in_flight.saturating_sub(1);
            if now.duration_since(e.since) >= window {
                e.failures = 0;
                e.since = now;
            }
            e.failures += 1;
        }
        t.policy.failure_delay
    }
}

impl Drop for AuthAttempt<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // A success (or an attempt abandoned without a verdict) only ends
        // the attempt. It does not forgive earlier failures: an attacker
        // with one valid login must not reset the count for guesses at
        // other accounts.
        if let Ok(mut st) = self.throttle.state.lock()
            && let Some(e) = st.by_ip.get_mut(&self.ip)
        {
            e.in_flight = e.in_flight.saturating_sub(1);
            if e.failures == 0 && e.in_flight == 0 {
                st.by_ip.remove(&self.ip);
            }
        }
    }
}

impl AuthThrottle {
    pub fn new(policy: AuthPolicy) -> AuthThrottle {
        AuthThrottle {
            policy,
            state: Mutex::new(Throttle::default()),
        }
    }

    /// Starts a login attempt from `ip`, or `None` when the IP has used up
    /// its failures for the window (counting attempts still in progress).
    pub fn begin(&self, ip: IpAddr, now: Instant) -> Option<AuthAttempt<'_>> {
        self.try_begin(ip, now).ok()
    }

    /// [`AuthThrottle::begin`] that waits (up to `max_wait`) while the
    /// budget is only taken by attempts still in progress: many logins at
    /// once from one address (an office behind NAT, a client opening ten
    /// connections) are answered as their turn comes, not refused, while
    /// parallel guesses still cannot exceed the failure budget.
    pub async fn begin_wait(&self, ip: IpAddr, max_wait: Duration) -> Option<AuthAttempt<'_>> {
        let start = tokio::time::Instant::now();
        loop {
            match self.try_begin(ip, Instant::now()) {
                Ok(a) => return Some(a),
                Err(Refusal::Busy) if start.elapsed() < max_wait => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return None,
            }
        }
    }

    fn try_begin(&self, ip: IpAddr, now: Instant) -> Result<AuthAttempt<'_>, Refusal> {
        let mut st = self.state.lock().map_err(|_| Refusal::Failures)?;
        let window = self.policy.window;
        if st.by_ip.len() >= MAX_TRACKED
            && st
                .last_prune
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            st.last_prune = Some(now);
            st.by_ip
                .retain(|_, e| e.in_flight > 0 || now.duration_since(e.since) < window);
            if st.by_ip.len() >= MAX_TRACKED {
                // Still full (a spray of addresses): drop the oldest half.
                let mut ages: Vec<Instant> = st.by_ip.values().map(|e| e.since).collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                st.by_ip.retain(|_, e| e.in_flight > 0 || e.since > cut);
            }
        }
        let e = st.by_ip.entry(ip).or_insert(Entry {
            failures: 0,
            since: now,
            in_flight: 0,
        });
        if now.duration_since(e.since) >= window {
            e.failures = 0;
            e.since = now;
        }
        if e.failures >= self.policy.max_failures {
            return Err(Refusal::Failures);
        }
        if e.failures + e.in_flight >= self.policy.max_failures {
            return Err(Refusal::Busy);
        }
        e.in_flight += 1;
        Ok(AuthAttempt {
            throttle: self,
            ip,
            done: false,
        })
    }

    /// The password check of every protocol (POP3 USER/PASS and AUTH, IMAP
    /// LOGIN and AUTHENTICATE, SMTP AUTH). Takes an attempt for `ip`
    /// (waiting up to 10 s while only attempts in progress fill the
    /// budget), runs `check` on the blocking pool (Argon2id takes tens of
    /// milliseconds, and the store may block), and after a failure records
    /// it and waits out the failure delay before returning, so a guesser
    /// learns nothing sooner. `check` answers `Ok(None)` for a wrong user or
    /// password. Logged with `protocol` and `user`, never the password.
    pub async fn login<A, E>(
        &self,
        protocol: &'static str,
        ip: IpAddr,
        user: &str,
        check: impl FnOnce() -> Result<Option<A>, E> + Send + 'static,
    ) -> Login<A>
    where
        A: Send + 'static,
        E: Display + Send + 'static,
    {
        let Some(attempt) = self.begin_wait(ip, Duration::from_secs(10)).await else {
            tracing::warn!(protocol, peer = %ip, user, "login refused: too many failures from this address");
            return Login::Throttled;
        };
        match tokio::task::spawn_blocking(check).await {
            Ok(Ok(Some(value))) => {
                drop(attempt); // a success ends the attempt
                Login::Ok(value)
            }
            Ok(Ok(None)) => {
                tracing::warn!(protocol, peer = %ip, user, "login failed");
                let delay = attempt.failed(Instant::now());
                tokio::time::sleep(delay).await;
                Login::Failed
            }
            Ok(Err(e)) => {
                tracing::error!(protocol, peer = %ip, error = %e, "login check failed");
                Login::TempFail
            }
            Err(e) => {
                tracing::error!(protocol, peer = %ip, error = %e, "login check panicked");
                Login::TempFail
            }
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

    fn throttle(max: u32) -> AuthThrottle {
        AuthThrottle::new(AuthPolicy {
            max_failures: max,
            window: Duration::from_secs(60),
            failure_delay: Duration::from_millis(5),
            allow_plaintext: false,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn login_checks_delays_failures_and_throttles() {
        let t = AuthThrottle::new(AuthPolicy {
            max_failures: 2,
            window: Duration::from_secs(60),
            failure_delay: Duration::from_secs(2),
            allow_plaintext: false,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let ok = t.login("test", ip, "a", || Ok::<_, String>(Some(7))).await;
        assert_eq!(ok, Login::Ok(7));
        // A failure answers only after the delay (virtual time).
        let start = tokio::time::Instant::now();
        let failed = t
            .login("test", ip, "a", || Ok::<Option<u8>, String>(None))
            .await;
        assert_eq!(failed, Login::Failed);
        assert!(start.elapsed() >= Duration::from_secs(2));
        // A store failure is not counted against the address.
        let temp = t
            .login("test", ip, "a", || Err::<Option<u8>, _>("disk"))
            .await;
        assert_eq!(temp, Login::TempFail);
        let failed = t
            .login("test", ip, "a", || Ok::<Option<u8>, String>(None))
            .await;
        assert_eq!(failed, Login::Failed);
        // Two failures: the address is refused without a check.
        let throttled = t
            .login("test", ip, "a", || -> Result<Option<u8>, String> {
                panic!("must not be checked")
            })
            .await;
        assert_eq!(throttled, Login::Throttled);
    }

    #[test]
    fn throttles_after_max_failures_and_forgets_after_window() {
        let t = throttle(3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            let a = t.begin(ip, t0).expect("allowed");
            assert_eq!(a.failed(t0), Duration::from_millis(5));
        }
        assert!(t.begin(ip, t0).is_none());
        assert!(t.begin("192.0.2.2".parse().unwrap(), t0).is_some());
        assert!(t.begin(ip, t0 + Duration::from_secs(61)).is_some());
    }

    #[test]
    fn a_success_does_not_forgive_failures() {
        let t = throttle(3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..2 {
            t.begin(ip, t0).unwrap().failed(t0);
            drop(t.begin(ip, t0).unwrap()); // a success on another account
        }
        t.begin(ip, t0).unwrap().failed(t0);
        assert!(
            t.begin(ip, t0).is_none(),
            "3 failures, whatever succeeded in between"
        );
    }

    #[test]
    fn parallel_attempts_count_against_the_limit() {
        let t = throttle(3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        let held: Vec<_> = (0..3).map(|_| t.begin(ip, t0).unwrap()).collect();
        assert!(t.begin(ip, t0).is_none(), "in-flight attempts are counted");
        drop(held);
        assert!(t.begin(ip, t0).is_some());
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

#[cfg(test)]
mod wait_tests {
    use super::*;

    fn throttle(max: u32) -> AuthThrottle {
        AuthThrottle::new(AuthPolicy {
            max_failures: max,
            ..AuthPolicy::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn many_logins_at_once_wait_their_turn_instead_of_failing() {
        let t = throttle(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = t.begin(ip, Instant::now()).unwrap();
        let b = t.begin(ip, Instant::now()).unwrap();
        // The budget is taken by logins in progress: `begin` refuses,
        // `begin_wait` waits until one of them ends well.
        assert!(t.begin(ip, Instant::now()).is_none());
        let waiter = t.begin_wait(ip, Duration::from_secs(5));
        let (c, ()) = tokio::join!(waiter, async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(a);
        });
        assert!(c.is_some());
        drop((b, c));
    }

    #[tokio::test(start_paused = true)]
    async fn used_up_failures_are_refused_at_once() {
        let t = throttle(1);
        let ip: IpAddr = "192.0.2.2".parse().unwrap();
        let _ = t.begin(ip, Instant::now()).unwrap().failed(Instant::now());
        let start = tokio::time::Instant::now();
        assert!(t.begin_wait(ip, Duration::from_secs(5)).await.is_none());
        assert!(start.elapsed() < Duration::from_millis(1));
        // Parallel guesses still stop at the budget: with one slot in use,
        // a second waits and gives up when the first fails.
        let t = throttle(1);
        let first = t.begin(ip, Instant::now()).unwrap();
        let (second, ()) = tokio::join!(t.begin_wait(ip, Duration::from_secs(5)), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = first.failed(Instant::now());
        });
        assert!(second.is_none());
    }
}
