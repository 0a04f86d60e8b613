//! Authentication and capabilities: CAPABILITY (RFC 9051 §6.1.1),
//! STARTTLS (§6.2.1), AUTHENTICATE (§6.2.2, RFC 4959 SASL-IR), LOGIN
//! (§6.2.3), ENABLE (RFC 5161, RFC 7162 §3.2.3, RFC 6855 §3), ID (RFC 2971)
//! and NAMESPACE (RFC 2342, RFC 9051 §6.3.10). Passwords are checked by
//! the server's one login path (`AuthThrottle::login`: throttle, Argon2id
//! on the blocking pool, failure delay); without TLS they are refused
//! unless the policy allows plaintext (RFC 8314, RFC 9051 §11.1:
//! `LOGINDISABLED`, `PRIVACYREQUIRED`).

use std::sync::Arc;

use postamt_server::Login;
use postamt_server::sasl::{SaslExchange, SaslStep};
use postamt_store::Account;
use postamt_wire::Secret;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Reply, Session};
use crate::frame::{Event, FrameLimits, Framer};
use crate::status::{Code, Status};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) fn capabilities(&self) -> String {
        let mut c = vec!["IMAP4rev1".to_string(), "IMAP4rev2".to_string()];
        // Only what can be used now: STARTTLS is valid before login only
        // (RFC 9051 §6.2.1; Dovecot leaves it out after login too).
        if !self.tls && self.user.is_none() {
            c.push("STARTTLS".into());
        }
        if self.user.is_none() {
            if self.plaintext_ok {
                c.push("AUTH=PLAIN".into());
                c.push("AUTH=LOGIN".into());
            } else {
                c.push("LOGINDISABLED".into());
            }
        }
        for x in [
            "SASL-IR",
            "LITERAL+",
            "ID",
            "ENABLE",
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CONDSTORE",
            "QRESYNC",
            "ESEARCH",
            "SEARCHRES",
            "BINARY",
            "MULTIAPPEND",
            "SORT",
            "SORT=DISPLAY",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "UTF8=ACCEPT",
            "WITHIN",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "STATUS=SIZE",
            "CREATE-SPECIAL-USE",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "CHILDREN",
            "SPECIAL-USE",
        ] {
            c.push(x.into());
        }
        c.push(format!("APPENDLIMIT={}", self.config.max_append));
        c.join(" ")
    }

    pub(super) fn capability(&mut self) -> Reply {
        let caps = self.capabilities();
        self.untagged(&format!("CAPABILITY {caps}"));
        Ok(Status::ok("CAPABILITY completed"))
    }

    pub(super) fn logout(&mut self, tag: &str) -> Flow {
        self.untagged_status(Status::bye("logging out"));
        self.send_status(tag, &Status::ok("LOGOUT completed"));
        Flow::Close
    }

    /// RFC 2971: who we are; what the client says is not used.
    pub(super) fn id(&mut self) -> Reply {
        self.untagged(&format!(
            "ID (\"name\" \"postamt\" \"version\" \"{}\")",
            env!("CARGO_PKG_VERSION")
        ));
        Ok(Status::ok("ID completed"))
    }

    /// RFC 2342: one personal namespace, no prefix, `/` as delimiter.
    pub(super) fn namespace(&mut self) -> Reply {
        self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
        Ok(Status::ok("NAMESPACE completed"))
    }

    pub(super) async fn starttls(&mut self, tag: &str) -> Flow {
        if self.tls {
            return self.complete(tag, Status::bad("TLS is already active"));
        }
        self.complete(tag, Status::ok("begin TLS negotiation now"));
        if !self.flush().await {
            return Flow::Close;
        }
        // RFC 9051 §6.2.1 / CVE-2011-0411: bytes pipelined after STARTTLS
        // are discarded, in the framer and in the connection.
        self.framer = Framer::new(FrameLimits {
            max_line: self.config.max_line,
            max_command: self.config.max_command_preauth,
            max_append: 0,
        });
        let acceptor = self.ctx.server.tls.acceptor();
        match tokio::time::timeout(self.config.tls_timeout, self.conn.start_tls(&acceptor)).await {
            Ok(Ok(())) => {
                self.tls = true;
                self.plaintext_ok = true;
                if let Some(t) = &self.transcript {
                    let (version, cipher) = self.conn.tls_info().unwrap_or_default();
                    t.note(&format!("TLS started: {version} {cipher}"));
                }
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }

    fn logged_in(&mut self, account: Account) {
        tracing::info!(protocol = "imap", peer = %self.conn.peer.ip(), user = %account.address, tls = self.tls, "login");
        if let Some(t) = &self.transcript {
            t.authenticated(&account.address);
        }
        let mut signal = self.store.watch_account(account.id);
        self.seen = *signal.borrow_and_update();
        self.signal = Some(signal);
        self.user = Some(account);
        self.framer.set_limits(FrameLimits {
            max_line: self.config.max_line,
            max_command: self.config.max_command,
            max_append: self.config.max_append,
        });
    }

    async fn check_password(&mut self, user: String, password: Secret<String>) -> Reply {
        let ip = self.conn.peer.ip();
        let auth = Arc::clone(&self.ctx.server.auth);
        // Pipelined responses go out before a failure's delay.
        let _ = self.flush().await;
        let login = user.clone();
        let check = self.store.password_check(user, password);
        match auth.login("imap", ip, &login, check).await {
            Login::Ok(account) => {
                self.logged_in(account);
                Ok(Status::ok("logged in").with_code(Code::Capability(self.capabilities())))
            }
            Login::Failed => Err(invalid_credentials()),
            Login::Throttled => Err(Status::no(
                "too many failed logins from your address, try later",
            )
            .with_code(Code::Unavailable)),
            Login::TempFail => {
                Err(Status::no("temporary failure, try again").with_code(Code::Unavailable))
            }
        }
    }

    pub(super) async fn login(&mut self, user: Vec<u8>, password: Secret<Vec<u8>>) -> Reply {
        if !self.plaintext_ok {
            return Err(Status::no("use STARTTLS before LOGIN").with_code(Code::PrivacyRequired));
        }
        let (Ok(user), Ok(password)) = (
            String::from_utf8(user),
            String::from_utf8(password.expose().clone()),
        ) else {
            return Err(invalid_credentials());
        };
        self.check_password(user, Secret::new(password)).await
    }

    pub(super) async fn authenticate(
        &mut self,
        tag: &str,
        mechanism: &str,
        initial: Option<Secret<String>>,
    ) -> Flow {
        if !self.plaintext_ok {
            let status =
                Status::no("use STARTTLS before AUTHENTICATE").with_code(Code::PrivacyRequired);
            return self.complete(tag, status);
        }
        let initial = initial.as_ref().map(|i| i.expose().as_str());
        let Some((mut exchange, mut step)) = SaslExchange::start(mechanism, initial) else {
            let status = Status::no("unsupported mechanism (PLAIN, LOGIN)").with_code(Code::Cannot);
            return self.complete(tag, status);
        };
        loop {
            match step {
                SaslStep::Challenge(c) => {
                    self.continuation(&c);
                    let line = match self.next_event(self.config.idle_timeout).await {
                        Ok(Some(Event::Command(l))) => l,
                        Ok(Some(_)) => {
                            return self.complete(tag, Status::bad("bad SASL response"));
                        }
                        Ok(None) => return Flow::Close,
                        Err(bye) => {
                            self.untagged_status(bye);
                            return Flow::Close;
                        }
                    };
                    if let Some(t) = &self.transcript {
                        t.client_masked("(SASL response)");
                    }
                    let Some(ex) = exchange.take() else {
                        return Flow::Close;
                    };
                    let (next, s) = ex.respond(&String::from_utf8_lossy(&line));
                    exchange = next;
                    step = s;
                }
                SaslStep::Failed { reason, cancelled } => {
                    // RFC 9051 §6.2.2: BAD when cancelled, NO when the
                    // exchange itself failed.
                    let status = if cancelled {
                        Status::bad("authentication cancelled")
                    } else {
                        Status::no(reason).with_code(Code::AuthenticationFailed)
                    };
                    return self.complete(tag, status);
                }
                SaslStep::Done { user, password } => {
                    let r = self.check_password(user, password).await;
                    return self.complete(tag, r.unwrap_or_else(|failed| failed));
                }
            }
        }
    }

    /// RFC 5161: only what is advertised and not yet enabled is listed;
    /// QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
    pub(super) fn enable(&mut self, caps: &[String]) -> Reply {
        let mut enabled = String::new();
        let was_condstore = self.condstore;
        for c in caps {
            match c.as_str() {
                "CONDSTORE" if !self.condstore => {
                    self.condstore = true;
                    enabled.push_str(" CONDSTORE");
                }
                "QRESYNC" if !self.qresync => {
                    self.qresync = true;
                    self.condstore = true;
                    enabled.push_str(" QRESYNC");
                }
                "UTF8=ACCEPT" if !self.utf8 => {
                    self.utf8 = true;
                    enabled.push_str(" UTF8=ACCEPT");
                }
                "IMAP4REV2" if !self.rev2 => {
                    // RFC 9051: UTF-8 mailbox names, no \Recent,
                    // ESEARCH for every SEARCH.
                    self.rev2 = true;
                    self.utf8 = true;
                    enabled.push_str(" IMAP4rev2");
                }
                _ => {}
            }
        }
        self.untagged(&format!("ENABLED{enabled}"));
        if !was_condstore && self.condstore {
            self.announce_highestmodseq();
        }
        Ok(Status::ok("ENABLE completed"))
    }
}

fn invalid_credentials() -> Status {
    Status::no("invalid credentials").with_code(Code::AuthenticationFailed)
}
