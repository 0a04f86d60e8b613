//! DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030), the end of a message
//! (the inbound checks, the trace header, the typed delivery), and the
//! replies to the delivery's outcome: one, or in LMTP one per recipient
//! (RFC 2033 §4.2).

use postamt_auth::dmarc::Policy;
use postamt_store::{AccountId, OutboundEnvelope, QueuedRecipient};

use super::{
    Answer, Arrived, Batch, Delivery, Lookup, Mode, Outcome, Pending, Rcpt, SmtpCore, State, Step,
    Transaction,
};
use crate::checks::{self, Check, CheckInput, HeaderFacts, TraceInput};
use crate::command::Body;
use crate::data::{BdatReceiver, DataReceiver, Flaw};
use crate::dsn;
use crate::reply::{R, Reply};

impl SmtpCore {
    pub(super) fn data(&mut self) -> Step {
        match &self.transaction {
            None => self.reply(R::MailFirstData),
            Some(t) if t.chunks.is_some() => {
                // RFC 3030 §2: DATA and BDAT do not mix in one transaction.
                self.reply(Reply::with(R::BadSequence, "DATA after BDAT"))
            }
            // RFC 2920 §3.1: with pipelining, DATA after only failed RCPTs
            // gets 554, and the client sends no content.
            Some(t) if t.rcpts.is_empty() => self.reply(R::NoValidRecipients),
            Some(_) => {
                let receiver =
                    DataReceiver::new(self.config.max_message_size, self.config.max_header_size);
                self.state = State::Data(receiver);
                Step::ReadData(Reply::new(R::StartData))
            }
        }
    }

    pub(super) fn bdat(&mut self, size: u64, last: bool) -> Step {
        // RFC 3030 §2: the chunk follows the command whatever the reply, so
        // it is read in any case (and drained when refused).
        let (max, max_header) = (self.config.max_message_size, self.config.max_header_size);
        self.state = match self.transaction.as_mut() {
            Some(t) if !t.rcpts.is_empty() => {
                t.chunks
                    .get_or_insert_with(|| BdatReceiver::new(max, max_header))
                    .begin_chunk(size);
                State::Chunk { size, last }
            }
            Some(_) => State::Drain {
                left: size,
                reply: R::NoValidRecipients,
            },
            None => State::Drain {
                left: size,
                reply: R::MailFirstData,
            },
        };
        Step::ReadChunk { size }
    }

    /// Feeds message content after [`Step::ReadData`] or
    /// [`Step::ReadChunk`]; returns how many bytes were consumed. What is
    /// left belongs to the next command.
    pub fn content(&mut self, input: &[u8]) -> usize {
        match &mut self.state {
            State::Data(receiver) => receiver.feed(input),
            State::Chunk { .. } => {
                match self.transaction.as_mut().and_then(|t| t.chunks.as_mut()) {
                    Some(receiver) => receiver.feed(input),
                    None => 0,
                }
            }
            State::Drain { left, .. } => {
                let n = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                n
            }
            _ => 0,
        }
    }

    /// The content asked for has been read whole.
    pub fn content_done(&self) -> bool {
        match &self.state {
            State::Data(receiver) => receiver.is_done(),
            State::Chunk { .. } => self
                .transaction
                .as_ref()
                .and_then(|t| t.chunks.as_ref())
                .is_none_or(|r| r.chunk_done()),
            State::Drain { left, .. } => *left == 0,
            _ => true,
        }
    }

    /// After [`SmtpCore::content_done`]: the reply to a BDAT chunk, or the
    /// end of the message. `now` (Unix time) and `id` are the message's,
    /// should it be accepted.
    pub fn content_end(&mut self, now: u64, id: &str) -> Step {
        match std::mem::replace(&mut self.state, State::Command) {
            State::Data(receiver) => self.message_end(receiver.finish(), now, id),
            State::Chunk { size, last: false } => {
                let kept = self
                    .transaction
                    .as_ref()
                    .and_then(|t| t.chunks.as_ref())
                    .map_or(0, |r| r.kept());
                self.reply(Reply::with(
                    R::Ok,
                    format!("{size} bytes received ({kept} so far)"),
                ))
            }
            State::Chunk { last: true, .. } => {
                let receiver = self.transaction.as_mut().and_then(|t| t.chunks.take());
                let received = match receiver {
                    Some(r) => r.finish(),
                    None => return self.misuse(State::Command, "a chunk without a receiver"),
                };
                self.message_end(received, now, id)
            }
            State::Drain { reply, .. } => self.reply(reply),
            other => self.misuse(other, "the end of content"),
        }
    }

    /// The message the checks are looking at (for [`Lookup::Dkim`]).
    pub fn pending_message(&self) -> Option<&[u8]> {
        match &self.state {
            State::Lookup(Pending::Message { arrived, .. }) => Some(&arrived.content),
            _ => None,
        }
    }

    /// The local accounts the current transaction delivers to (for the
    /// transcript: the mail of an account encrypted at rest is not written
    /// there in the clear either).
    pub fn local_accounts(&self) -> Vec<AccountId> {
        let rcpts = self.transaction.iter().flat_map(|t| &t.rcpts);
        rcpts
            .flat_map(|r| match r {
                Rcpt::Local { accounts, .. } => accounts.iter().map(|(_, id)| *id).collect(),
                Rcpt::Remote(_) => Vec::new(),
            })
            .collect()
    }

    /// The message as it arrived, before [`SmtpCore::content_end`] takes it
    /// (for transcripts): only when it is complete and will be checked.
    pub fn message_received(&self) -> Option<&[u8]> {
        match &self.state {
            State::Data(receiver) => receiver.received(),
            State::Chunk { last: true, .. } => self
                .transaction
                .as_ref()
                .and_then(|t| t.chunks.as_ref())
                .and_then(|r| r.received()),
            _ => None,
        }
    }

    /// After DATA or the last BDAT chunk. The transaction ends here,
    /// whatever the outcome (RFC 5321 §4.1.1.4).
    fn message_end(&mut self, received: Result<Vec<u8>, Flaw>, now: u64, id: &str) -> Step {
        let Some(transaction) = self.transaction.take() else {
            return self.misuse(State::Command, "a message without a transaction");
        };
        let content = match received {
            Ok(c) => c,
            Err(flaw) => {
                let reply = match flaw {
                    Flaw::TooBig => R::TooBig,
                    Flaw::HeaderTooBig => R::HeaderTooBig,
                    Flaw::BareLineEnding => R::BareLineEndingData,
                };
                return self.reply_each(&transaction, Reply::new(reply));
            }
        };
        let arrived = Box::new(Arrived {
            facts: HeaderFacts::read(&content),
            transaction,
            content,
            answers: checks::Answers::default(),
            now,
            id: id.to_string(),
        });
        self.check(arrived)
    }

    /// Runs the inbound checks as far as the answers so far allow.
    fn check(&mut self, arrived: Box<Arrived>) -> Step {
        let input = CheckInput {
            mode: self.config.mode,
            spoof_policy: self.config.spoof_policy,
            max_received: self.config.max_received,
            user: self.user.as_ref().map(|u| u.address.as_str()),
            warning: arrived.transaction.warning.as_deref(),
            hostname: &self.config.hostname,
            id: &arrived.id,
            now: arrived.now,
            spf: self.config.spf,
            dkim: self.config.dkim,
            dmarc: self.config.dmarc,
            trusted_arc_sealers: &self.config.trusted_arc_sealers,
            peer: self.config.peer,
            helo: self.helo.as_deref().unwrap_or(""),
            mail_from: &arrived
                .transaction
                .from
                .as_ref()
                .map(|f| f.address())
                .unwrap_or_default(),
        };
        let check = checks::check_message(&arrived.facts, &input, &arrived.answers);
        if self.config.dmarc_reports {
            let disposition = match &check {
                Check::Need(_) => None,
                Check::Refuse(_) => Some(Policy::Reject),
                Check::Quarantine(_) => Some(Policy::Quarantine),
                Check::Accept(_) => Some(Policy::None),
            };
            if let Some(d) = disposition {
                self.report =
                    checks::dmarc_observation(&arrived.facts, &input, &arrived.answers, d);
            }
        }
        match check {
            Check::Need(asked) => {
                self.state = State::Lookup(Pending::Message {
                    arrived,
                    asked: asked.clone(),
                });
                Step::Lookup(asked)
            }
            Check::Refuse(reply) => {
                tracing::info!(peer = %self.config.peer, id = %arrived.id, reply = %reply.lines.join(" "), "message refused by the inbound checks");
                self.reply_each(&arrived.transaction, reply)
            }
            Check::Accept(headers) => self.deliver(*arrived, &headers, false),
            Check::Quarantine(headers) => self.deliver(*arrived, &headers, true),
        }
    }

    pub(super) fn message_answer(
        &mut self,
        mut arrived: Box<Arrived>,
        asked: Lookup,
        answer: Answer,
    ) -> Step {
        match (asked, answer) {
            (Lookup::LocalDomains, Answer::LocalDomains(domains)) => {
                // A store that cannot answer reads as no local domains.
                arrived.answers.local_domains = Some(domains.unwrap_or_default());
            }
            (Lookup::Resolve(address), Answer::Resolved(r)) => {
                let owned = self.is_users_own(&address) || self.owned_by_user(&r);
                arrived.answers.owned.push((address, owned));
            }
            (Lookup::Spf(q), Answer::Spf(verdict)) if q.helo_identity => {
                arrived.answers.spf_helo = Some(verdict)
            }
            (Lookup::Spf(_), Answer::Spf(verdict)) => arrived.answers.spf = Some(verdict),
            (Lookup::Dkim, Answer::Dkim(verdicts)) => arrived.answers.dkim = Some(verdicts),
            (Lookup::Dmarc(_), Answer::Dmarc(verdict)) => arrived.answers.dmarc = Some(verdict),
            (Lookup::Arc, Answer::Arc(verdict)) => arrived.answers.arc = Some(verdict),
            (asked, answer) => {
                let what = format!("the answer {answer:?}");
                return self.misuse(State::Lookup(Pending::Message { arrived, asked }), &what);
            }
        }
        self.check(arrived)
    }

    /// The accepted message as a typed delivery: the trace header and the
    /// checks' headers in front, the envelope, and the recipients grouped
    /// into store transactions.
    fn deliver(&mut self, arrived: Arrived, headers: &str, quarantine: bool) -> Step {
        let Arrived {
            transaction: t,
            content,
            now,
            id,
            ..
        } = arrived;
        let trace = TraceInput {
            mode: self.config.mode,
            helo: self.helo.as_deref(),
            esmtp: self.esmtp,
            smtputf8: t.params.smtputf8,
            authenticated: self.user.is_some(),
            tls: self.tls.as_ref().map(|(v, c)| (v.as_str(), c.as_str())),
            peer: self.config.peer,
            hostname: &self.config.hostname,
            recipient: match t.rcpts.as_slice() {
                [Rcpt::Local { given, .. }] => Some(given.as_str()),
                [Rcpt::Remote(q)] => Some(q.address.as_str()),
                _ => None,
            },
        };
        let received = checks::received_header(&trace, &id, now);
        let mut content = content;
        // RFC 8601 §5: nobody but us may claim our verdict (LMTP comes
        // from an MTA in front that did this already).
        if self.config.mode != Mode::Lmtp {
            checks::remove_our_authentication_results(&mut content, &self.config.hostname);
        }
        // The headers go in front of the content in place (one move of the
        // bytes within their buffer, not a copy of a large message).
        content.splice(0..0, [received.as_bytes(), headers.as_bytes()].concat());
        let from = t.from.as_ref().map(|f| f.address()).unwrap_or_default();
        let envelope = OutboundEnvelope {
            ret: t.params.ret.clone(),
            envid: t.params.envid.clone(),
            body: t.params.body.map(|b| {
                match b {
                    Body::SevenBit => "7BIT",
                    Body::EightBitMime => "8BITMIME",
                    Body::BinaryMime => "BINARYMIME",
                }
                .to_string()
            }),
            smtputf8: t.params.smtputf8,
            authenticated_as: self.user.as_ref().map(|u| u.address.clone()),
        };
        let batches = match self.config.mode {
            Mode::Lmtp => lmtp_batches(&from, &t),
            _ => vec![one_batch(&from, &t)],
        };
        self.state = State::Delivering {
            id: id.clone(),
            recipients: batches.iter().filter_map(|b| b.recipient.clone()).collect(),
        };
        Step::Deliver(Delivery {
            from,
            envelope,
            content,
            now,
            id,
            batches,
            quarantine,
        })
    }

    /// Reports how [`Step::Deliver`] ended: one outcome per batch, in order.
    pub fn delivered(&mut self, outcomes: &[Outcome]) -> Step {
        let (id, recipients) = match std::mem::replace(&mut self.state, State::Command) {
            State::Delivering { id, recipients } => (id, recipients),
            other => return self.misuse(other, "a delivery outcome"),
        };
        let outcome = |i: usize| outcomes.get(i).copied().unwrap_or(Outcome::Failed);
        if self.config.mode == Mode::Lmtp {
            // RFC 2033 §4.2: one reply per recipient, in RCPT order.
            let replies = recipients
                .iter()
                .enumerate()
                .map(|(i, given)| match outcome(i) {
                    Outcome::Stored { .. } => Reply::with(R::Ok, format!("<{given}> delivered")),
                    Outcome::OverQuota => {
                        Reply::with(R::OverQuota, format!("<{given}> mailbox full"))
                    }
                    Outcome::Failed => {
                        Reply::with(R::TempFail, format!("<{given}> temporary failure"))
                    }
                })
                .collect();
            return self.respond(replies);
        }
        self.reply(match outcome(0) {
            Outcome::Stored { queue_id } => {
                let queued = queue_id
                    .map(|q| format!(", queue id {}", q.0))
                    .unwrap_or_default();
                Reply::with(R::Ok, format!("Ok: queued as {id}{queued}"))
            }
            Outcome::OverQuota => Reply::new(R::OverQuota),
            Outcome::Failed => Reply::new(R::TempFail),
        })
    }

    /// A reply to the end of a message: once, or in LMTP once per
    /// recipient (RFC 2033 §4.2).
    fn reply_each(&mut self, t: &Transaction, reply: Reply) -> Step {
        let n = match self.config.mode {
            Mode::Lmtp => t.rcpts.len().max(1),
            _ => 1,
        };
        self.respond(vec![reply; n])
    }
}

/// SMTP: the whole message in one store transaction — every local account
/// once, every remote recipient and forwarding target once.
fn one_batch(from: &str, t: &Transaction) -> Batch {
    let mut local = Vec::new();
    let mut remote: Vec<QueuedRecipient> = Vec::new();
    for r in &t.rcpts {
        match r {
            Rcpt::Local {
                accounts, forward, ..
            } => {
                local.extend(accounts.iter().cloned());
                for f in forward {
                    if !remote.iter().any(|q| &q.address == f) {
                        remote.push(QueuedRecipient::new(f.clone()));
                    }
                }
            }
            Rcpt::Remote(q) => remote.push(q.clone()),
        }
    }
    Batch {
        recipient: None,
        local,
        remote,
        reports: t
            .rcpts
            .iter()
            .filter_map(|r| success_report(from, r))
            .collect(),
    }
}

/// LMTP: one store transaction per recipient, so that one full mailbox
/// does not fail the others.
fn lmtp_batches(from: &str, t: &Transaction) -> Vec<Batch> {
    t.rcpts
        .iter()
        .filter_map(|r| match r {
            Rcpt::Local {
                given,
                accounts,
                forward,
                ..
            } => Some(Batch {
                recipient: Some(given.clone()),
                local: accounts.clone(),
                remote: forward
                    .iter()
                    .map(|f| QueuedRecipient::new(f.clone()))
                    .collect(),
                reports: success_report(from, r).into_iter().collect(),
            }),
            Rcpt::Remote(_) => None,
        })
        .collect()
}

/// RFC 3461 §4.1: a local recipient with `NOTIFY=SUCCESS` gets a
/// "delivered" report (RFC 3464 `Action: delivered`) once the message is in
/// the mailbox — never for the null sender.
fn success_report(from: &str, r: &Rcpt) -> Option<dsn::Report> {
    let Rcpt::Local {
        given,
        accounts,
        notify,
        orcpt,
        ..
    } = r
    else {
        return None;
    };
    let recipient = QueuedRecipient {
        notify: notify.clone(),
        orcpt: orcpt.clone(),
        ..QueuedRecipient::new(given.clone())
    };
    let wanted = !accounts.is_empty() && dsn::wanted(from, &recipient, dsn::Action::Delivered);
    wanted.then(|| dsn::Report {
        recipient,
        action: dsn::Action::Delivered,
        status: "2.0.0".into(),
        diagnostic: "smtp; 250 2.0.0 delivered to the mailbox".into(),
        remote_mta: None,
    })
}
