//! MAIL and RCPT (RFC 5321 §4.1.1.2, §4.1.1.3): the envelope, with the
//! ESMTP parameters, the mode rules (spoofed local senders on port 25,
//! sender ownership on submission, no relaying without authentication,
//! LMTP), and what the directory's answers mean.

use postamt_store::QueuedRecipient;

use super::{
    Answer, Lookup, Mode, Pending, Rcpt, Resolution, SmtpCore, SpoofPolicy, State, Step,
    Transaction,
};
use crate::command::{MailParams, Mailbox, RcptParams};
use crate::reply::{R, Reply};

impl SmtpCore {
    pub(super) fn mail(&mut self, from: Option<Mailbox>, params: MailParams) -> Step {
        // RFC 5321 §4.1.4: MAIL needs the greeting first.
        if self.helo.is_none() {
            return self.reply(match self.config.mode {
                Mode::Lmtp => R::LhloFirst,
                _ => R::HeloFirst,
            });
        }
        // RFC 5321 §4.1.4: no MAIL within a transaction.
        if self.transaction.is_some() {
            return self.reply(Reply::with(R::BadSequence, "Nested MAIL command"));
        }
        if self.config.mode == Mode::Submission && self.user.is_none() {
            // RFC 6409 §4.3 / RFC 4954 §6: 530 5.7.0.
            return self.reply(R::AuthRequired);
        }
        // The ESMTP parameters exist only after EHLO (RFC 5321 §4.1.1.2).
        if (params.smtputf8
            || params.body.is_some()
            || params.ret.is_some()
            || params.envid.is_some())
            && !self.esmtp
        {
            return self.reply(Reply::with(R::BadParameter, "MAIL parameters need EHLO"));
        }
        // RFC 1870 §6: a declared size over the fixed limit gets 552 at once.
        if let Some(size) = params.size
            && size > self.config.max_message_size as u64
        {
            return self.reply(R::TooBig);
        }
        // RFC 6531: a UTF-8 address needs SMTPUTF8 (553 5.6.7).
        if let Some(f) = &from
            && !f.is_ascii()
            && !params.smtputf8
        {
            return self.reply(R::NeedSmtpUtf8);
        }
        match (from, self.config.mode) {
            (Some(f), Mode::Submission) if self.is_users_own(&f.address()) => {
                self.begin(Some(f), params, None)
            }
            (Some(from), Mode::Submission) => {
                let address = from.address();
                self.ask(Pending::Sender { from, params }, Lookup::Resolve(address))
            }
            (None, Mode::Submission) => self.reply(Reply::with(
                R::NotYourAddress,
                "The null sender is not for submission",
            )),
            (Some(from), Mode::Inbound) if self.config.spoof_policy != SpoofPolicy::Off => {
                self.ask(Pending::Sender { from, params }, Lookup::LocalDomains)
            }
            (from, _) => self.begin(from, params, None),
        }
    }

    fn begin(
        &mut self,
        from: Option<Mailbox>,
        params: MailParams,
        warning: Option<String>,
    ) -> Step {
        self.transaction = Some(Transaction {
            from,
            params,
            warning,
            ..Transaction::default()
        });
        self.reply(R::SenderOk)
    }

    pub(super) fn rcpt(&mut self, to: Mailbox, params: RcptParams) -> Step {
        let Some(t) = &self.transaction else {
            return self.reply(R::MailFirst);
        };
        // RFC 5321 §4.5.3.1.10: 452 for too many recipients.
        if t.rcpts.len() >= self.config.max_recipients {
            return self.reply(R::TooManyRecipients);
        }
        if !to.is_ascii() && !t.params.smtputf8 {
            return self.reply(R::NeedSmtpUtf8);
        }
        if (params.notify.is_some() || params.orcpt.is_some()) && !self.esmtp {
            return self.reply(Reply::with(R::BadParameter, "RCPT parameters need EHLO"));
        }
        if to.domain.is_empty() {
            // RFC 5321 §4.5.1: <Postmaster> means the postmaster of this host.
            return self.ask(Pending::Postmaster { to, params }, Lookup::LocalDomains);
        }
        let address = format!("{}@{}", to.local_unquoted(), to.domain);
        self.resolve(to, address, params)
    }

    fn resolve(&mut self, to: Mailbox, address: String, params: RcptParams) -> Step {
        let lookup = Lookup::Resolve(address.clone());
        self.ask(
            Pending::Recipient {
                to,
                address,
                params,
            },
            lookup,
        )
    }

    fn ask(&mut self, pending: Pending, lookup: Lookup) -> Step {
        self.state = State::Lookup(pending);
        Step::Lookup(lookup)
    }

    /// Reports the directory's answer to [`Step::Lookup`].
    pub fn answer(&mut self, answer: Answer) -> Step {
        let pending = match std::mem::replace(&mut self.state, State::Command) {
            State::Lookup(p) => p,
            other => return self.misuse(other, "an answer"),
        };
        match (pending, answer) {
            (Pending::Sender { from, params }, Answer::Resolved(r)) => {
                if self.owned_by_user(&r) {
                    self.begin(Some(from), params, None)
                } else {
                    self.reply(R::NotYourAddress)
                }
            }
            (Pending::Sender { from, params }, Answer::LocalDomains(domains)) => {
                self.spoofed_sender(from, params, &domains.unwrap_or_default())
            }
            (Pending::Postmaster { to, params }, Answer::LocalDomains(domains)) => {
                // A store that cannot answer reads as no local domains,
                // as in the spoof checks.
                match domains.unwrap_or_default().first() {
                    Some(d) => self.resolve(to, format!("postmaster@{d}"), params),
                    None => self.reply(R::UnknownUser),
                }
            }
            (
                Pending::Recipient {
                    to,
                    address,
                    params,
                },
                Answer::Resolved(r),
            ) => self.recipient(to, address, params, r),
            (Pending::Message { arrived, asked }, answer) => {
                self.message_answer(arrived, asked, answer)
            }
            (pending, answer) => {
                self.misuse(State::Lookup(pending), &format!("the answer {answer:?}"))
            }
        }
    }

    /// Port 25: an unauthenticated sender in one of our domains is
    /// refused, marked or let through, as the policy says.
    fn spoofed_sender(&mut self, from: Mailbox, params: MailParams, domains: &[String]) -> Step {
        let mut warning = None;
        if domains.iter().any(|d| d.eq_ignore_ascii_case(&from.domain)) {
            if self.config.spoof_policy == SpoofPolicy::Reject {
                tracing::info!(peer = %self.config.peer, sender = %from.address(), "rejected: unauthenticated sender in a local domain");
                return self.reply(Reply::with(
                    R::SpoofedSender,
                    format!(
                        "Unauthenticated sender claims the local domain {}; use the submission port",
                        from.domain
                    ),
                ));
            }
            warning = Some(format!(
                "envelope sender <{}> claims a local domain, but the client did not authenticate",
                from.address()
            ));
        }
        self.begin(Some(from), params, warning)
    }

    fn recipient(
        &mut self,
        to: Mailbox,
        address: String,
        params: RcptParams,
        r: Resolution,
    ) -> Step {
        let submission = self.config.mode == Mode::Submission && self.user.is_some();
        let Some(t) = self.transaction.as_mut() else {
            return self.misuse(State::Command, "a recipient without a transaction");
        };
        let reply = match r {
            // The quota is checked here so a full mailbox is refused
            // before DATA (452 4.2.2), not after.
            Resolution::Local { full: true, .. } => Reply::new(R::OverQuota),
            Resolution::Local {
                accounts, forward, ..
            } => {
                t.rcpts.push(Rcpt::Local {
                    given: address,
                    accounts,
                    forward,
                    notify: params.notify,
                    orcpt: params.orcpt,
                });
                Reply::new(R::RecipientOk)
            }
            Resolution::Unknown => {
                tracing::info!(peer = %self.config.peer, recipient = ?address, "unknown recipient refused");
                Reply::new(R::UnknownUser)
            }
            Resolution::NotLocal if submission => {
                // Relayed as written, quoted local part included.
                t.rcpts.push(Rcpt::Remote(QueuedRecipient {
                    notify: params.notify,
                    orcpt: params.orcpt,
                    ..QueuedRecipient::new(to.address())
                }));
                Reply::new(R::RecipientOk)
            }
            // RFC 2033: LMTP delivers to local mailboxes only.
            Resolution::NotLocal if self.config.mode == Mode::Lmtp => Reply::new(R::UnknownUser),
            // No open relay.
            Resolution::NotLocal => {
                tracing::info!(peer = %self.config.peer, recipient = %address, "relay denied");
                Reply::new(R::RelayDenied)
            }
            Resolution::Failed => Reply::new(R::TempFail),
        };
        self.reply(reply)
    }

    /// The authenticated user's own address needs no lookup.
    pub(super) fn is_users_own(&self, address: &str) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| address.eq_ignore_ascii_case(&u.address))
    }

    /// Whether an address (alias, subaddress) leads to the authenticated
    /// user: then they may send as it.
    pub(super) fn owned_by_user(&self, r: &Resolution) -> bool {
        match (&self.user, r) {
            (Some(user), Resolution::Local { accounts, .. }) => {
                accounts.iter().any(|(_, id)| *id == user.id)
            }
            _ => false,
        }
    }
}
