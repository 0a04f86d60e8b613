//! The sans-IO SMTP server core: a command line or a piece of message
//! content in, a [`Step`] out. No sockets, no tokio, no store, no clock:
//! the session ([`crate::session`]) performs the steps that need the
//! outside world — a directory lookup, the password check, the TLS
//! handshake, reading content, storing a message — and reports back; the
//! core makes every reply decision and keeps the sequence rules, the
//! limits and the error budget. Time (`now`) and message ids come in as
//! arguments.
//!
//! RFC 5321 (SMTP), RFC 6409 (submission), RFC 2033 (LMTP), RFC 3207
//! (STARTTLS), RFC 4954 (AUTH), RFC 1870 (SIZE), RFC 6152 (8BITMIME),
//! RFC 6531 (SMTPUTF8), RFC 2920 (PIPELINING), RFC 3030 (CHUNKING),
//! RFC 3461 (DSN), RFC 2034/3463 (enhanced status codes).
//!
//! The commands live in sibling files, one `impl SmtpCore` each:
//! `auth.rs` (AUTH and the SASL exchange), `envelope.rs` (MAIL, RCPT and
//! the directory answers), `content.rs` (DATA, BDAT, the end of a message,
//! delivery outcomes).

mod auth;
mod content;
mod envelope;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use postamt_mda::{DeliveryError, DeliveryReport};
use postamt_server::sasl::{MECHANISMS, SaslExchange};
use postamt_store::{Account, AccountId, OutboundEnvelope, QueueId, QueuedRecipient};
use postamt_wire::Secret;

use crate::checks::{Answers, HeaderFacts};
use crate::command::{self, Command, MailParams, Mailbox, ParseError, RcptParams};
use crate::data::{BdatReceiver, DataReceiver};
use crate::dsn;
use crate::reply::{R, Reply};

/// Which role a listener plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Port 25: mail from other MTAs for local recipients only.
    Inbound,
    /// Ports 587/465: authenticated users, any recipient (RFC 6409).
    Submission,
    /// LMTP (RFC 2033): a local MTA hands over mail, one reply per recipient.
    Lmtp,
}

/// What to do with unauthenticated mail that claims a local sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoofPolicy {
    /// `550 5.7.1` (the default).
    Reject,
    /// Accept, with an `X-Postamt-Warning:` header saying what was seen.
    Mark,
    /// No check.
    Off,
}

/// SPF on the inbound port (RFC 7208), `[verify] spf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpfPolicy {
    /// Not checked.
    #[default]
    Off,
    /// Checked and recorded (`Authentication-Results:`, `Received-SPF:`);
    /// nothing refused on SPF alone (RFC 7489 §10.1).
    Mark,
    /// As `Mark`, and "fail" is refused (`550 5.7.23`), "temperror"
    /// deferred (`451 4.7.24`, RFC 7372 §3.2).
    Reject,
}

/// DMARC on the inbound port (RFC 7489), `[verify] dmarc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DmarcPolicy {
    /// Not evaluated.
    #[default]
    Off,
    /// Evaluated and recorded; the domain's policy is not applied.
    Mark,
    /// The domain's policy is applied to failing mail: `p=reject` is
    /// refused (`550 5.7.26`), `p=quarantine` goes to the Junk mailbox.
    Enforce,
}

/// What the core is told about the session when it starts.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub mode: Mode,
    /// Our host name (greeting, EHLO, trace headers).
    pub hostname: String,
    pub peer: IpAddr,
    /// TLS protocol version and cipher suite when the connection is TLS
    /// from the start (port 465), as `Connection::tls_info` gives them.
    pub tls: Option<(String, String)>,
    /// Passwords may be sent here (TLS, loopback, or allowed by config).
    pub plaintext_ok: bool,
    /// Advertised with SIZE (RFC 1870).
    pub max_message_size: usize,
    pub max_header_size: usize,
    /// RFC 5321 §4.5.3.1.8 asks for at least 100.
    pub max_recipients: usize,
    /// Replies of 500 and above before the session is closed.
    pub max_errors: u32,
    pub spoof_policy: SpoofPolicy,
    /// More `Received:` headers than this is a mail loop (RFC 5321 §6.3).
    pub max_received: usize,
    /// SPF on the inbound port.
    pub spf: SpfPolicy,
    /// DKIM signatures verified on the inbound port (the results are
    /// recorded; nothing is refused on DKIM alone, RFC 6376 §6.3).
    pub dkim: bool,
    /// DMARC on the inbound port (needs SPF and DKIM results to pass).
    pub dmarc: DmarcPolicy,
    /// ARC sealers whose passing chain excuses a DMARC failure (RFC 8617
    /// §7.2: mailing lists and forwarders the operator trusts).
    pub trusted_arc_sealers: Vec<String>,
    /// Keep what DMARC saw of each message for aggregate reports (RFC
    /// 9990): [`SmtpCore::take_report`].
    pub dmarc_reports: bool,
}

/// What the session must do next.
#[derive(Debug)]
pub enum Step {
    /// Send the replies, then read the next line.
    Reply(Vec<Reply>),
    /// Send the replies (there may be none) and close the connection.
    Close(Vec<Reply>),
    /// Send the reply (354) and write out what is pending, then feed the
    /// message content to [`SmtpCore::content`] until
    /// [`SmtpCore::content_done`], then call [`SmtpCore::content_end`].
    ReadData(Reply),
    /// Feed the `size` bytes that follow a BDAT command (RFC 3030 §2: read
    /// whatever happens) to [`SmtpCore::content`] until
    /// [`SmtpCore::content_done`], then call [`SmtpCore::content_end`].
    ReadChunk { size: u64 },
    /// Send the reply (220) and write out what is pending, then make the
    /// TLS handshake and call [`SmtpCore::tls_started`]; close the
    /// connection if it fails.
    StartTls(Reply),
    /// Check the credentials (throttled per client address), then call
    /// [`SmtpCore::login_result`].
    Authenticate {
        user: String,
        password: Secret<String>,
    },
    /// Ask the directory, then call [`SmtpCore::answer`].
    Lookup(Lookup),
    /// Store the message, then call [`SmtpCore::delivered`] with one
    /// outcome per batch.
    Deliver(Delivery),
}

/// A question for the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The local domains; answered with [`Answer::LocalDomains`].
    LocalDomains,
    /// Where an address leads (`mda::resolve`); answered with
    /// [`Answer::Resolved`].
    Resolve(String),
    /// The SPF check of the MAIL FROM identity (its HELO identity when the
    /// reverse-path is empty, RFC 7208 §2.4); answered with [`Answer::Spf`].
    /// Unlike the directory lookups it waits on the network.
    Spf(SpfQuery),
    /// The DKIM signatures of the message being checked
    /// ([`SmtpCore::pending_message`]); answered with [`Answer::Dkim`].
    Dkim,
    /// The ARC chain of the message being checked; answered with
    /// [`Answer::Arc`].
    Arc,
    /// DMARC for the author domain, given what SPF and DKIM found;
    /// answered with [`Answer::Dmarc`].
    Dmarc(DmarcQuery),
}

/// What a DMARC evaluation needs (RFC 7489 §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcQuery {
    /// The domain of the `From:` address.
    pub from_domain: String,
    /// The domain SPF passed for, if it passed.
    pub spf_pass_domain: Option<String>,
    /// The `d=` of each DKIM signature that passed and covers `From:`.
    pub dkim_pass_domains: Vec<String>,
}

/// What an SPF check needs to know of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfQuery {
    pub ip: IpAddr,
    pub helo: String,
    /// The MAIL FROM address; empty for the null reverse-path.
    pub mail_from: String,
    /// Check the HELO identity (RFC 7208 §2.3) instead of MAIL FROM's.
    pub helo_identity: bool,
}

/// The directory's answer to a [`Lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    LocalDomains(Result<Vec<String>, LookupFailed>),
    Resolved(Resolution),
    Spf(postamt_auth::spf::Verdict),
    Dkim(Vec<postamt_auth::dkim::Verdict>),
    Dmarc(postamt_auth::dmarc::Verdict),
    Arc(postamt_auth::arc::Verdict),
}

/// The store could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupFailed;

/// Where an address leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Local accounts (address, id), remote alias targets, and whether a
    /// local account has used up its quota.
    Local {
        accounts: Vec<(String, AccountId)>,
        forward: Vec<String>,
        full: bool,
    },
    /// In a local domain, but no account, alias or catch-all.
    Unknown,
    /// Not in a local domain.
    NotLocal,
    /// The store could not answer.
    Failed,
}

impl From<Result<postamt_mda::Resolution, DeliveryError>> for Resolution {
    fn from(r: Result<postamt_mda::Resolution, DeliveryError>) -> Resolution {
        match r {
            Ok(r) => Resolution::Local {
                accounts: r.local,
                forward: r.remote,
                full: r.full,
            },
            Err(DeliveryError::UnknownRecipient(_)) => Resolution::Unknown,
            Err(DeliveryError::NotLocal(_)) => Resolution::NotLocal,
            Err(_) => Resolution::Failed,
        }
    }
}

/// An accepted message, ready to be stored.
#[derive(Debug)]
pub struct Delivery {
    /// The envelope sender; empty for the null sender `<>`.
    pub from: String,
    pub envelope: OutboundEnvelope,
    /// The message with the trace header and the headers the checks added
    /// in front.
    pub content: Vec<u8>,
    /// Unix time of arrival (internal date, reports).
    pub now: u64,
    /// The message's id, as in its `Received:` header.
    pub id: String,
    /// One store transaction each. SMTP: one for the whole message. LMTP:
    /// one per recipient, in RCPT order, so that one full mailbox fails
    /// only its own recipient (RFC 2033 §4.2).
    pub batches: Vec<Batch>,
    /// Into the Junk mailboxes (DMARC `p=quarantine`).
    pub quarantine: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// LMTP: the recipient this batch answers for, as given.
    pub recipient: Option<String>,
    pub local: Vec<(String, AccountId)>,
    pub remote: Vec<QueuedRecipient>,
    /// "Delivered" reports (RFC 3461 `NOTIFY=SUCCESS`) to queue once the
    /// batch is stored.
    pub reports: Vec<dsn::Report>,
}

/// How storing one batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored { queue_id: Option<QueueId> },
    OverQuota,
    Failed,
}

impl From<&Result<DeliveryReport, DeliveryError>> for Outcome {
    fn from(r: &Result<DeliveryReport, DeliveryError>) -> Outcome {
        match r {
            Ok(report) => Outcome::Stored {
                queue_id: report.queue_id,
            },
            Err(DeliveryError::OverQuota(_)) => Outcome::OverQuota,
            Err(_) => Outcome::Failed,
        }
    }
}

/// A recipient accepted at RCPT time.
#[derive(Debug, Clone)]
enum Rcpt {
    /// Local accounts this address leads to (an alias may lead to several),
    /// plus remote alias targets (forwarded through the queue).
    Local {
        given: String,
        accounts: Vec<(String, AccountId)>,
        forward: Vec<String>,
        /// DSN `NOTIFY` / `ORCPT` (RFC 3461): SUCCESS asks for a
        /// "delivered" report once the message is in the mailbox.
        notify: Option<String>,
        orcpt: Option<String>,
    },
    /// A recipient on another domain (authenticated submission only).
    Remote(QueuedRecipient),
}

/// The mail transaction (RFC 5321 §3.3), from MAIL to the end of the
/// message.
#[derive(Debug, Default)]
struct Transaction {
    from: Option<Mailbox>,
    params: MailParams,
    rcpts: Vec<Rcpt>,
    /// BDAT chunks received so far.
    chunks: Option<BdatReceiver>,
    /// Seen spoofing that the Mark policy lets through.
    warning: Option<String>,
}

/// A message received whole and clean, going through the checks.
#[derive(Debug)]
struct Arrived {
    transaction: Transaction,
    content: Vec<u8>,
    facts: HeaderFacts,
    answers: Answers,
    now: u64,
    id: String,
}

/// What an outstanding lookup was for.
#[derive(Debug)]
enum Pending {
    /// MAIL: is the sender's domain local (port 25), or is the sender the
    /// user's (submission)?
    Sender { from: Mailbox, params: MailParams },
    /// RCPT to `<Postmaster>` (RFC 5321 §4.5.1): which domain is ours.
    Postmaster { to: Mailbox, params: RcptParams },
    Recipient {
        to: Mailbox,
        address: String,
        params: RcptParams,
    },
    /// The checks of an arrived message asked this.
    Message {
        arrived: Box<Arrived>,
        asked: Lookup,
    },
}

#[derive(Debug)]
enum State {
    /// Waiting for a command line.
    Command,
    /// In a SASL exchange: the next line is a response (RFC 4954 §4).
    Sasl(Option<SaslExchange>),
    /// [`Step::Authenticate`] is out.
    Authenticating,
    /// [`Step::StartTls`] is out.
    StartingTls,
    /// [`Step::Lookup`] is out.
    Lookup(Pending),
    /// Reading DATA content.
    Data(DataReceiver),
    /// Reading a BDAT chunk into the transaction's receiver.
    Chunk {
        size: u64,
        last: bool,
    },
    /// Reading a BDAT chunk that is refused: drained, then `reply`.
    Drain {
        left: u64,
        reply: R,
    },
    /// [`Step::Deliver`] is out; LMTP answers for these recipients.
    Delivering {
        id: String,
        recipients: Vec<String>,
    },
    Closed,
}

/// One SMTP, submission or LMTP session's protocol state.
#[derive(Debug)]
pub struct SmtpCore {
    config: CoreConfig,
    state: State,
    /// The HELO/EHLO/LHLO argument.
    helo: Option<String>,
    esmtp: bool,
    tls: Option<(String, String)>,
    plaintext_ok: bool,
    user: Option<Account>,
    transaction: Option<Transaction>,
    /// Replies of 500 and above so far.
    errors: u32,
    /// What DMARC saw of the last message, for an aggregate report.
    report: Option<postamt_auth::report::Observation>,
}

impl SmtpCore {
    pub fn new(config: CoreConfig) -> SmtpCore {
        SmtpCore {
            tls: config.tls.clone(),
            plaintext_ok: config.plaintext_ok,
            config,
            state: State::Command,
            helo: None,
            esmtp: false,
            user: None,
            transaction: None,
            errors: 0,
            report: None,
        }
    }

    /// What DMARC saw of the message just checked, for the policy domain's
    /// aggregate report (RFC 9990), when it asks for reports and
    /// [`CoreConfig::dmarc_reports`] is on; taken once.
    pub fn take_report(&mut self) -> Option<postamt_auth::report::Observation> {
        self.report.take()
    }

    /// The authenticated user.
    pub fn user(&self) -> Option<&Account> {
        self.user.as_ref()
    }

    /// Whether the next line is a SASL response (mask it in transcripts).
    pub fn in_sasl(&self) -> bool {
        matches!(self.state, State::Sasl(_))
    }

    /// The greeting (RFC 5321 §4.3.1), first thing on the connection.
    /// Starts the session logged in as `account`, as if AUTH had
    /// succeeded: the web interface's compose page submits through a real
    /// submission session for the user it has already checked.
    pub fn preauthenticate(&mut self, account: Account) {
        self.user = Some(account);
    }

    pub fn greeting(&mut self) -> Step {
        let kind = match self.config.mode {
            Mode::Lmtp => "LMTP",
            _ => "ESMTP",
        };
        let greeting = format!("{} {kind} postamt ready", self.config.hostname);
        self.respond(vec![Reply::plain(220, vec![greeting])])
    }

    /// Feeds one line from the client, CRLF included.
    pub fn line(&mut self, line: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, State::Command) {
            State::Command => self.command_line(line),
            State::Sasl(exchange) => self.sasl_response(exchange, line),
            other => self.misuse(other, "a line"),
        }
    }

    /// The client sent a line longer than allowed (it was drained). In a
    /// SASL exchange, that ends the exchange.
    pub fn too_long(&mut self) -> Step {
        match std::mem::replace(&mut self.state, State::Command) {
            State::Command | State::Sasl(_) => self.reply(R::LineTooLong),
            other => self.misuse(other, "an overlong line"),
        }
    }

    /// The client was silent too long: the command timeout (RFC 5321
    /// §4.5.3.2.7) or, while content is read, the data block timeout
    /// (§4.5.3.2.5).
    pub fn timeout(&mut self) -> Step {
        let state = std::mem::replace(&mut self.state, State::Closed);
        match state {
            // Silence in a SASL exchange has always closed the connection
            // without a reply; RFC 4954 does not ask for one.
            State::Sasl(_) => Step::Close(vec![]),
            _ => Step::Close(vec![Reply::new(R::Timeout)]),
        }
    }

    /// The server is shutting down: told at the session's next read.
    pub fn shutdown(&mut self) -> Step {
        self.state = State::Closed;
        Step::Close(vec![Reply::new(R::ShuttingDown)])
    }

    /// After [`Step::StartTls`]: the handshake succeeded. RFC 3207 §4.2:
    /// the server must discard any knowledge obtained from the client
    /// before TLS (the greeting, the transaction, the login).
    pub fn tls_started(&mut self, tls: (String, String), plaintext_ok: bool) {
        debug_assert!(matches!(self.state, State::StartingTls));
        self.state = State::Command;
        self.tls = Some(tls);
        self.plaintext_ok = plaintext_ok;
        self.helo = None;
        self.esmtp = false;
        self.transaction = None;
        self.user = None;
    }

    fn command_line(&mut self, line: &[u8]) -> Step {
        match command::parse(line) {
            Ok(cmd) => self.command(cmd),
            Err(e) => self.reply(match e {
                ParseError::Unknown => Reply::new(R::Unknown),
                ParseError::Syntax(why) => Reply::with(R::Syntax, why),
                ParseError::BadAddress(why)
                    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"RCPT") =>
                {
                    Reply::with(R::BadRecipient, why)
                }
                ParseError::BadAddress(why) => Reply::with(R::BadSender, why),
                ParseError::BadParameter(why) => Reply::with(R::BadParameter, why),
                ParseError::BadLineEnding => Reply::new(R::BareLineEnding),
            }),
        }
    }

    fn command(&mut self, cmd: Command) -> Step {
        let lmtp = self.config.mode == Mode::Lmtp;
        match cmd {
            // RFC 2033 §4.1: LMTP greets with LHLO only.
            Command::Helo(_) | Command::Ehlo(_) if lmtp => self.reply(Reply::with(
                R::LhloFirst,
                "This is LMTP: send LHLO (RFC 2033)",
            )),
            Command::Lhlo(_) if !lmtp => self.reply(R::Unknown),
            Command::Helo(domain) => {
                self.helo = Some(domain);
                self.esmtp = false;
                self.transaction = None;
                let hostname = self.config.hostname.clone();
                self.reply(Reply::plain(250, vec![hostname]))
            }
            Command::Ehlo(domain) | Command::Lhlo(domain) => self.ehlo(domain),
            Command::StartTls if self.tls.is_some() => {
                self.reply(Reply::with(R::BadSequence, "TLS already active"))
            }
            Command::StartTls => {
                self.state = State::StartingTls;
                Step::StartTls(Reply::new(R::ReadyTls))
            }
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            // RFC 5321 §4.1.1.5: RSET ends the transaction, nothing else.
            Command::Rset => {
                self.transaction = None;
                self.reply(R::Ok)
            }
            Command::Noop => self.reply(R::Ok),
            Command::Help => self.reply(R::Help),
            // RFC 5321 §3.5.3: 252 when we will not say whether a user exists.
            Command::Vrfy => self.reply(R::Vrfy),
            Command::Expn => self.reply(R::NotImplemented),
            Command::Quit => {
                self.state = State::Closed;
                Step::Close(vec![Reply::new(R::Bye)])
            }
        }
    }

    /// EHLO (RFC 5321 §4.1.1.1) and LHLO (RFC 2033 §4.1): a new session
    /// state, and the extensions, always in this order.
    fn ehlo(&mut self, domain: String) -> Step {
        let mut lines = vec![format!(
            "{} greets {domain} [{}]",
            self.config.hostname, self.config.peer
        )];
        lines.extend([
            "PIPELINING".to_string(),
            format!("SIZE {}", self.config.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
            "DSN".into(),
        ]);
        if self.tls.is_none() {
            lines.push("STARTTLS".into());
        }
        if self.config.mode == Mode::Submission && self.plaintext_ok && self.user.is_none() {
            lines.push(format!("AUTH {}", MECHANISMS.join(" ")));
        }
        self.helo = Some(domain);
        self.esmtp = true;
        self.transaction = None;
        self.reply(Reply::plain(250, lines))
    }

    fn reply(&mut self, reply: impl Into<Reply>) -> Step {
        self.respond(vec![reply.into()])
    }

    /// Every reply leaves the core here: replies of 500 and above count
    /// against the error budget, and when it is used up the session ends
    /// with 421 before the next command is read.
    fn respond(&mut self, mut replies: Vec<Reply>) -> Step {
        self.errors += replies.iter().filter(|r| r.code >= 500).count() as u32;
        if self.errors >= self.config.max_errors {
            self.state = State::Closed;
            replies.push(Reply::new(R::TooManyErrors));
            return Step::Close(replies);
        }
        Step::Reply(replies)
    }

    /// A report that does not fit the state: a bug in the session, not the
    /// client's doing. Closes the connection without a word.
    fn misuse(&mut self, state: State, what: &str) -> Step {
        debug_assert!(
            matches!(state, State::Closed),
            "{what} does not fit {state:?}"
        );
        tracing::error!(state = ?state, "SMTP core: {what} does not fit the state");
        self.state = State::Closed;
        Step::Close(vec![])
    }
}
