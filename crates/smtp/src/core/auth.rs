//! AUTH (RFC 4954) on submission: the SASL exchange (PLAIN, LOGIN) runs in
//! the core; the password check is a step whose result comes back.

use postamt_server::Login;
use postamt_server::sasl::{SaslExchange, SaslStep};
use postamt_store::Account;
use postamt_wire::Secret;

use super::{Mode, SmtpCore, State, Step};
use crate::reply::{R, Reply};

impl SmtpCore {
    pub(super) fn auth(&mut self, mechanism: &str, initial: Option<Secret<String>>) -> Step {
        if self.config.mode != Mode::Submission {
            return self.reply(R::NoAuthHere);
        }
        // RFC 4954 §4: AUTH is an ESMTP command, after EHLO.
        if self.helo.is_none() || !self.esmtp {
            return self.reply(R::HeloFirst);
        }
        // RFC 4954 §4: "After a successful AUTH command completes, a server
        // MUST reject any further AUTH commands with a 503 reply."
        if self.user.is_some() {
            return self.reply(R::AlreadyAuthenticated);
        }
        // RFC 4954 §4: "The AUTH command is not permitted during a mail
        // transaction."
        if self.transaction.is_some() {
            return self.reply(Reply::with(
                R::BadSequence,
                "AUTH not allowed during a mail transaction",
            ));
        }
        // RFC 8314 §4 / RFC 4954 §4: no passwords in the clear.
        if !self.plaintext_ok {
            return self.reply(R::EncryptionRequired);
        }
        let initial = initial.as_ref().map(|i| i.expose().as_str());
        match SaslExchange::start(mechanism, initial) {
            Some((exchange, step)) => self.sasl_step(exchange, step),
            None => self.reply(R::AuthMechanism),
        }
    }

    pub(super) fn sasl_response(&mut self, exchange: Option<SaslExchange>, line: &[u8]) -> Step {
        let Some(exchange) = exchange else {
            self.state = State::Closed;
            return Step::Close(vec![]);
        };
        let (next, step) = exchange.respond(&String::from_utf8_lossy(line));
        self.sasl_step(next, step)
    }

    fn sasl_step(&mut self, exchange: Option<SaslExchange>, step: SaslStep) -> Step {
        match step {
            SaslStep::Challenge(c) => {
                self.state = State::Sasl(exchange);
                // RFC 4954 §4: "334 " and the base64 challenge.
                self.respond(vec![Reply::plain(334, vec![c])])
            }
            // RFC 4954 §4: "*" cancels with 501.
            SaslStep::Failed {
                cancelled: true, ..
            } => self.reply(R::AuthCancelled),
            SaslStep::Failed { reason, .. } => self.reply(Reply::with(R::Syntax, reason)),
            SaslStep::Done { user, password } => {
                self.state = State::Authenticating;
                Step::Authenticate { user, password }
            }
        }
    }

    /// Reports how [`Step::Authenticate`] ended.
    pub fn login_result(&mut self, result: Login<Account>) -> Step {
        match std::mem::replace(&mut self.state, State::Command) {
            State::Authenticating => {}
            other => return self.misuse(other, "a login result"),
        }
        match result {
            Login::Ok(account) => {
                self.user = Some(account);
                self.reply(R::AuthOk)
            }
            Login::Failed => self.reply(R::AuthInvalid),
            // A temporary refusal of the address, not of the password.
            Login::Throttled => {
                self.state = State::Closed;
                Step::Close(vec![Reply::new(R::AuthThrottled)])
            }
            Login::TempFail => self.reply(R::TempFail),
        }
    }
}
