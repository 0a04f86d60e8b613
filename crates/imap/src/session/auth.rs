//! Authentication and capabilities (RFC 9051 §6.1.1 CAPABILITY, §6.2.1
//! STARTTLS, §6.2.2 AUTHENTICATE with RFC 4959 SASL-IR, §6.2.3 LOGIN).

use std::sync::Arc;

use postamt_store::Account;
use tokio::io::{AsyncRead, AsyncWrite};

use super::*;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) fn capabilities(&self) -> String {
        let mut c = vec!["IMAP4rev1".to_string(), "IMAP4rev2".to_string()];
        if !self.tls {
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

    pub(super) async fn starttls(&mut self, tag: &str) -> Flow {
        if self.tls {
            return self.bad(tag, "TLS is already active");
        }
        self.tagged(tag, "OK begin TLS negotiation now");
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
                    t.note("TLS established");
                }
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }

    pub(super) fn logged_in(&mut self, account: Account) {
        tracing::info!(protocol = "imap", peer = %self.conn.peer.ip(), user = %account.address, tls = self.tls, "login");
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

    pub(super) async fn check_password(
        &mut self,
        user: String,
        password: Secret<String>,
    ) -> Result<String, String> {
        let ip = self.conn.peer.ip();
        let auth = Arc::clone(&self.ctx.server.auth);
        let store = Arc::clone(self.store);
        // Pipelined responses go out before a failure's delay.
        let _ = self.flush().await;
        let login = user.clone();
        let check = move || store.verify_password(&user, password.expose());
        match auth.login("imap", ip, &login, check).await {
            Login::Ok(account) => {
                self.logged_in(account);
                Ok(format!("OK [CAPABILITY {}] logged in", self.capabilities()))
            }
            Login::Failed => Err("NO [AUTHENTICATIONFAILED] invalid credentials".into()),
            Login::Throttled => {
                Err("NO [UNAVAILABLE] too many failed logins from your address, try later".into())
            }
            Login::TempFail => Err("NO [UNAVAILABLE] temporary failure, try again".into()),
        }
    }

    pub(super) async fn login(
        &mut self,
        _tag: &str,
        user: Vec<u8>,
        password: Secret<Vec<u8>>,
    ) -> Result<String, String> {
        if !self.plaintext_ok {
            return Err("NO [PRIVACYREQUIRED] use STARTTLS before LOGIN".into());
        }
        let (Ok(user), Ok(password)) = (
            String::from_utf8(user),
            String::from_utf8(password.expose().clone()),
        ) else {
            return Err("NO [AUTHENTICATIONFAILED] invalid credentials".into());
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
            self.tagged(tag, "NO [PRIVACYREQUIRED] use STARTTLS before AUTHENTICATE");
            return Flow::Continue;
        }
        let initial = initial.as_ref().map(|i| i.expose().as_str());
        let Some((mut exchange, mut step)) = SaslExchange::start(mechanism, initial) else {
            self.tagged(tag, "NO [CANNOT] unsupported mechanism (PLAIN, LOGIN)");
            return Flow::Continue;
        };
        loop {
            match step {
                SaslStep::Challenge(c) => {
                    let line = format!("+ {c}\r\n");
                    self.record_server(line.as_bytes());
                    self.out.extend_from_slice(line.as_bytes());
                    let line = match self.next_event(self.config.idle_timeout).await {
                        Ok(Some(Event::Command(l))) => l,
                        Ok(Some(_)) => {
                            self.tagged(tag, "BAD bad SASL response");
                            return Flow::Continue;
                        }
                        _ => return Flow::Close,
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
                    if cancelled {
                        self.tagged(tag, "BAD authentication cancelled");
                    } else {
                        self.tagged(tag, &format!("NO [AUTHENTICATIONFAILED] {reason}"));
                    }
                    return Flow::Continue;
                }
                SaslStep::Done { user, password } => {
                    let r = self.check_password(user, password).await;
                    let text = r.unwrap_or_else(|e| e);
                    self.tagged(tag, &text);
                    return Flow::Continue;
                }
            }
        }
    }
}
