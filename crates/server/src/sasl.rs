//! SASL PLAIN (RFC 4616) and LOGIN as a sans-IO exchange, shared by POP3
//! (RFC 5034) and SMTP AUTH (RFC 4954). The protocol frames the challenges
//! (`+ ` in POP3, `334 ` in SMTP); this module only decides what comes next.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use postamt_wire::Secret;

/// The mechanisms offered, in the order advertised.
pub const MECHANISMS: &[&str] = &["PLAIN", "LOGIN"];

#[derive(Debug, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this challenge (already base64) and feed the next client line.
    Challenge(String),
    /// The exchange produced credentials to check.
    Done {
        user: String,
        password: Secret<String>,
    },
    /// The exchange failed; `cancelled` when the client sent `*`.
    Failed {
        reason: &'static str,
        cancelled: bool,
    },
}

#[derive(Debug)]
enum State {
    Plain,
    LoginUser,
    LoginPass(String),
}

/// One SASL exchange in progress.
#[derive(Debug)]
pub struct SaslExchange {
    state: State,
}

impl SaslExchange {
    /// Starts `mechanism` (case-insensitive) with an optional initial
    /// response. `None` if the mechanism is not supported.
    pub fn start(
        mechanism: &str,
        initial: Option<&str>,
    ) -> Option<(Option<SaslExchange>, SaslStep)> {
        let m = mechanism.to_ascii_uppercase();
        // RFC 4954 §4 / RFC 5034 §4: "=" is an empty initial response.
        let initial = initial.map(|i| if i == "=" { "" } else { i });
        match (m.as_str(), initial) {
            ("PLAIN", None) => Some((
                Some(SaslExchange {
                    state: State::Plain,
                }),
                SaslStep::Challenge(String::new()),
            )),
            ("PLAIN", Some(i)) => Some((None, plain(i))),
            ("LOGIN", None) => Some((
                Some(SaslExchange {
                    state: State::LoginUser,
                }),
                SaslStep::Challenge(B64.encode("Username:")),
            )),
            ("LOGIN", Some(i)) => match decode(i) {
                Some(u) => Some((
                    Some(SaslExchange {
                        state: State::LoginPass(u),
                    }),
                    SaslStep::Challenge(B64.encode("Password:")),
                )),
                None => Some((
                    None,
                    SaslStep::Failed {
                        reason: "invalid base64",
                        cancelled: false,
                    },
                )),
            },
            _ => None,
        }
    }

    /// Feeds the client's response line (without CRLF). Returns the next
    /// step and whether the exchange goes on.
    pub fn respond(self, line: &str) -> (Option<SaslExchange>, SaslStep) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line == "*" {
            return (
                None,
                SaslStep::Failed {
                    reason: "authentication cancelled",
                    cancelled: true,
                },
            );
        }
        match self.state {
            State::Plain => (None, plain(line)),
            State::LoginUser => match decode(line) {
                Some(u) => (
                    Some(SaslExchange {
                        state: State::LoginPass(u),
                    }),
                    SaslStep::Challenge(B64.encode("Password:")),
                ),
                None => (
                    None,
                    SaslStep::Failed {
                        reason: "invalid base64",
                        cancelled: false,
                    },
                ),
            },
            State::LoginPass(user) => match decode(line) {
                Some(p) => (
                    None,
                    SaslStep::Done {
                        user,
                        password: Secret::new(p),
                    },
                ),
                None => (
                    None,
                    SaslStep::Failed {
                        reason: "invalid base64",
                        cancelled: false,
                    },
                ),
            },
        }
    }
}

fn decode(b64: &str) -> Option<String> {
    B64.decode(b64.trim())
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`. An authzid other than the
/// authcid is refused: no one logs in as someone else.
fn plain(b64: &str) -> SaslStep {
    let Ok(raw) = B64.decode(b64.trim()) else {
        return SaslStep::Failed {
            reason: "invalid base64",
            cancelled: false,
        };
    };
    let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    let [authz, authc, pass] = parts.as_slice() else {
        return SaslStep::Failed {
            reason: "malformed PLAIN response",
            cancelled: false,
        };
    };
    let (Ok(authz), Ok(authc), Ok(pass)) = (
        std::str::from_utf8(authz),
        std::str::from_utf8(authc),
        std::str::from_utf8(pass),
    ) else {
        return SaslStep::Failed {
            reason: "malformed PLAIN response",
            cancelled: false,
        };
    };
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(authc) {
        return SaslStep::Failed {
            reason: "authorization identity not allowed",
            cancelled: false,
        };
    }
    if authc.is_empty() {
        return SaslStep::Failed {
            reason: "malformed PLAIN response",
            cancelled: false,
        };
    }
    SaslStep::Done {
        user: authc.to_string(),
        password: Secret::new(pass.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(step: SaslStep) -> (String, String) {
        match step {
            SaslStep::Done { user, password } => (user, password.expose().clone()),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn plain_with_and_without_initial_response() {
        let ir = B64.encode("\0alice\0pw");
        let (ex, step) = SaslExchange::start("plain", Some(&ir)).unwrap();
        assert!(ex.is_none());
        assert_eq!(done(step), ("alice".into(), "pw".into()));
        let (ex, step) = SaslExchange::start("PLAIN", None).unwrap();
        assert_eq!(step, SaslStep::Challenge(String::new()));
        let (_, step) = ex.unwrap().respond(&ir);
        assert_eq!(done(step), ("alice".into(), "pw".into()));
        // authzid = authcid is fine (RFC 4616 §2)
        let (_, step) =
            SaslExchange::start("PLAIN", Some(&B64.encode("alice\0alice\0pw"))).unwrap();
        done(step);
    }

    #[test]
    fn login_two_steps() {
        let (ex, step) = SaslExchange::start("LOGIN", None).unwrap();
        assert_eq!(step, SaslStep::Challenge("VXNlcm5hbWU6".into()));
        let (ex, step) = ex.unwrap().respond(&B64.encode("bob"));
        assert_eq!(step, SaslStep::Challenge("UGFzc3dvcmQ6".into()));
        let (ex, step) = ex.unwrap().respond(&B64.encode("pass word"));
        assert!(ex.is_none());
        assert_eq!(done(step), ("bob".into(), "pass word".into()));
    }

    #[test]
    fn failures() {
        let f = |s: SaslStep| matches!(s, SaslStep::Failed { .. });
        assert!(f(SaslExchange::start("PLAIN", Some("!!!")).unwrap().1));
        assert!(
            f(SaslExchange::start("PLAIN", Some("=")).unwrap().1),
            "empty PLAIN"
        );
        assert!(f(SaslExchange::start(
            "PLAIN",
            Some(&B64.encode("root\0alice\0pw"))
        )
        .unwrap()
        .1));
        assert!(f(SaslExchange::start(
            "PLAIN",
            Some(&B64.encode("alice\0pw"))
        )
        .unwrap()
        .1));
        assert!(SaslExchange::start("CRAM-MD5", None).is_none());
        let (ex, _) = SaslExchange::start("LOGIN", None).unwrap();
        assert_eq!(
            ex.unwrap().respond("*").1,
            SaslStep::Failed {
                reason: "authentication cancelled",
                cancelled: true
            }
        );
    }
}
