//! The client side of an SMTP connection as a state machine: greeting,
//! EHLO with the HELO fallback (RFC 5321 §3.2), STARTTLS (RFC 3207), AUTH
//! PLAIN or LOGIN (RFC 4954), transactions — MAIL, RCPT, DATA or BDAT (RFC
//! 3030), pipelined as one group when offered (RFC 2920) — RSET and QUIT.
//!
//! No I/O and no clock. A driver — the relay's async connection, the mail
//! client's synchronous one — asks [`Dialogue::next_step`] what to do, does it
//! (writes, reads with its own timeouts and hands the bytes to
//! [`Dialogue::feed`], performs the TLS handshake), and asks again, until
//! the dialogue waits for the caller: [`Step::Ready`] for a
//! [`Dialogue::transaction`], [`Step::Done`] with one [`Outcome`] per
//! recipient, [`Step::Closed`] after [`Dialogue::quit`]. What the relay and
//! the mail client do differently is an [`Options`] value, not code.

use std::collections::VecDeque;
use std::fmt;

use base64::Engine;

use super::{Capabilities, ReplyError, ReplyParser, ServerReply, path};
use crate::Secret;

/// When to use STARTTLS (RFC 3207).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Use it when offered; go on in plaintext when the server refuses it
    /// (RFC 3207 §4.1 lets a client go on without it; Postfix's `may`).
    Opportunistic,
    /// Never send in plaintext: no STARTTLS is an error (Postfix's
    /// `encrypt`, the mail client's `smtp_security = "starttls"`).
    Required,
    /// Never use it (plaintext, or TLS the driver started before the
    /// greeting).
    Off,
}

/// A user name and password for AUTH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: Secret<String>,
}

/// Whether to log in (RFC 4954).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Never.
    None,
    /// Always: a server that offers neither PLAIN nor LOGIN is an error
    /// (a smarthost that wants credentials).
    Required(Login),
    /// When the server offers AUTH at all. A server that offers none takes
    /// mail without a login (an MTA that trusts this network, e.g. Postfix
    /// with `mynetworks`) and decides itself; one that offers AUTH but
    /// neither PLAIN nor LOGIN is an error.
    IfOffered(Login),
}

/// How this client behaves; the relay and the mail client differ only here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Our name in EHLO/HELO.
    pub helo: String,
    pub starttls: TlsPolicy,
    pub auth: Auth,
    /// Say HELO when EHLO is refused (RFC 5321 §3.2), and go on without
    /// extensions.
    pub helo_fallback: bool,
    /// Send MAIL, the RCPTs and DATA as one group when the server offers
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// Send the content with BDAT when the server offers CHUNKING (RFC 3030).
    pub chunking: bool,
    /// Send the content to the recipients the server accepted even when it
    /// refused others (an MTA: each recipient has its own outcome). Without
    /// it, one refused recipient means the content is not sent at all.
    pub partial_delivery: bool,
}

impl Options {
    /// An MTA relaying mail: HELO fallback, PIPELINING and CHUNKING when
    /// offered, partial delivery; opportunistic TLS and no login until the
    /// caller says otherwise.
    pub fn relay(helo: impl Into<String>) -> Options {
        Options {
            helo: helo.into(),
            starttls: TlsPolicy::Opportunistic,
            auth: Auth::None,
            helo_fallback: true,
            pipelining: true,
            chunking: true,
            partial_delivery: true,
        }
    }

    /// A person's mail client submitting a message (RFC 6409): ESMTP or
    /// nothing, one command at a time and DATA (so that a trace of it reads
    /// like the RFC), all recipients or none; STARTTLS required and no
    /// login until the caller says otherwise.
    pub fn submission(helo: impl Into<String>) -> Options {
        Options {
            helo: helo.into(),
            starttls: TlsPolicy::Required,
            auth: Auth::None,
            helo_fallback: false,
            pipelining: false,
            chunking: false,
            partial_delivery: false,
        }
    }
}

/// The envelope of one transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Envelope<'a> {
    pub sender: &'a str,
    /// `RET` / `ENVID` (RFC 3461), passed on when the server has DSN.
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
    /// `BODY=` value: `8BITMIME` or `BINARYMIME` (RFC 6152, RFC 3030).
    pub body: Option<&'a str>,
    /// The message needs SMTPUTF8 (RFC 6531) even if the addresses do not
    /// (non-ASCII header fields).
    pub smtputf8: bool,
}

/// One recipient of a transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recipient<'a> {
    pub address: &'a str,
    /// `NOTIFY` / `ORCPT` (RFC 3461), passed on when the server has DSN.
    pub notify: Option<&'a str>,
    pub orcpt: Option<&'a str>,
}

/// One command line the dialogue wants sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    line: String,
    /// What a trace shows instead of a line that carries credentials.
    mask: Option<&'static str>,
}

impl Command {
    fn new(line: impl Into<String>) -> Command {
        Command {
            line: line.into(),
            mask: None,
        }
    }

    fn masked(line: String, mask: &'static str) -> Command {
        Command {
            line,
            mask: Some(mask),
        }
    }

    /// The line as sent, without its CRLF — credentials included.
    pub fn expose(&self) -> &str {
        &self.line
    }

    /// What a trace or a log shows: the line, or a mask for an AUTH
    /// payload (`AUTH PLAIN ********`).
    pub fn shown(&self) -> &str {
        self.mask.unwrap_or(&self.line)
    }

    /// Appends the line and its CRLF to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

/// The message content, framed for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// After DATA: dot-stuffed, ending with the `.CRLF` line (RFC 5321
    /// §4.5.2; [`crate::dot::stuff`]).
    Data(Vec<u8>),
    /// After `BDAT n LAST`: the message with CRLF line ends, as it is (RFC
    /// 3030 §2).
    Chunk(Vec<u8>),
}

impl Content {
    /// Every octet to write.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Content::Data(b) | Content::Chunk(b) => b,
        }
    }

    /// The message and the line that ends it (`.CRLF` after DATA, nothing
    /// for a chunk), for a trace that shows them apart.
    pub fn parts(&self) -> (&[u8], &[u8]) {
        match self {
            Content::Data(b) => b.split_at(b.len().saturating_sub(3)),
            Content::Chunk(b) => (b, &[]),
        }
    }
}

/// Which reply a read waits for: the timeouts of RFC 5321 §4.5.3.2 differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The 220 greeting (5 minutes).
    Greeting,
    /// The reply to a command: EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA,
    /// RSET (5 minutes; DATA 2).
    Command,
    /// The reply after the content: the final dot or `BDAT … LAST` (10
    /// minutes).
    Content,
    /// The reply to QUIT (nobody needs to wait long for it).
    Quit,
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these lines: one command, or a pipelined group in one write.
    Send(Vec<Command>),
    /// Write the message content (in blocks, each with the data-block
    /// timeout).
    SendContent(Content),
    /// Read from the server and [`Dialogue::feed`] it until `feed` says a
    /// reply is complete.
    Read(Wait),
    /// The server said 220 to STARTTLS and nothing more: do the TLS
    /// handshake now, then call [`Dialogue::tls_established`].
    StartTls,
    /// Greeted (and secured and logged in): start a
    /// [`Dialogue::transaction`] or [`Dialogue::quit`].
    Ready,
    /// A transaction is over: one outcome per recipient, in order. Go on
    /// calling `next_step` to get ready for the next one (RSET after a
    /// transaction that sent no content).
    Done(Vec<Outcome>),
    /// RSET was refused: the session's state is unknown, so only
    /// [`Dialogue::quit`] is left.
    Spent,
    /// QUIT is answered, or there is nothing more to say: close.
    Closed,
}

/// The command a reply answers (for messages: `MAIL FROM: 550 …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    /// The final reply to AUTH (235 or a refusal).
    Auth,
    /// A 334 challenge of AUTH LOGIN (after `AUTH LOGIN`, after the user).
    AuthLogin,
    Mail,
    Rcpt,
    Data,
    /// The reply after the content (the final dot, `BDAT … LAST`).
    Content,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::AuthLogin => "AUTH LOGIN",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Content => "end of data",
        })
    }
}

/// Why a message was not offered to the server at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    /// Larger than the server's `SIZE` (RFC 1870).
    TooBig { size: u64, limit: u64 },
    /// Needs SMTPUTF8, which the server does not offer (RFC 6531).
    NeedsSmtpUtf8,
    /// `BODY=BINARYMIME` to a server without BINARYMIME and CHUNKING (RFC
    /// 3030); conversion is not implemented.
    NeedsBinaryMime,
    /// `BODY=8BITMIME` to an ESMTP server without 8BITMIME (RFC 6152);
    /// conversion is not implemented.
    Needs8BitMime,
    /// Without partial delivery: another recipient was refused, so the
    /// content went to nobody.
    Withheld,
}

impl NotSent {
    /// The enhanced status code (RFC 3463).
    pub fn status(&self) -> &'static str {
        match self {
            NotSent::TooBig { .. } => "5.3.4",
            NotSent::NeedsSmtpUtf8 => "5.6.7",
            NotSent::NeedsBinaryMime | NotSent::Needs8BitMime => "5.6.3",
            NotSent::Withheld => "4.0.0",
        }
    }

    /// Says what is wrong, naming the server as `server`.
    pub fn describe(&self, server: &str) -> String {
        match self {
            NotSent::TooBig { size, limit } => {
                format!("message of {size} octets exceeds {server}'s limit of {limit} (RFC 1870)")
            }
            NotSent::NeedsSmtpUtf8 => {
                format!("{server} does not support SMTPUTF8, which this message needs (RFC 6531)")
            }
            NotSent::NeedsBinaryMime => format!(
                "{server} does not support BINARYMIME (RFC 3030); conversion is not implemented"
            ),
            NotSent::Needs8BitMime => format!(
                "{server} does not support 8BITMIME (RFC 6152); conversion is not implemented"
            ),
            NotSent::Withheld => "not sent: another recipient was refused".into(),
        }
    }
}

/// What became of one recipient in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server took responsibility: its reply after the content.
    Delivered(ServerReply),
    /// The server refused: the reply to MAIL (for every recipient), to its
    /// RCPT, or to DATA or the content (for every accepted recipient).
    Refused(Stage, ServerReply),
    /// Nothing was sent for it.
    NotSent(NotSent),
}

impl Outcome {
    /// The enhanced status code (RFC 3463), derived from the reply's class
    /// when the server sent none.
    pub fn status(&self) -> String {
        match self {
            Outcome::Delivered(r) | Outcome::Refused(_, r) => r.status(),
            Outcome::NotSent(n) => n.status().into(),
        }
    }

    /// A failure that no retry will fix (5xx, or a message this server
    /// can never take); otherwise delivered or worth another try.
    pub fn is_permanent(&self) -> bool {
        match self {
            Outcome::Delivered(_) => false,
            Outcome::Refused(_, r) => r.is_permanent(),
            Outcome::NotSent(n) => n.status().starts_with('5'),
        }
    }
}

/// A connection-level failure: the connection is of no further use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server's bytes are not SMTP replies.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// The server refused something the connection needs (greeting,
    /// EHLO/HELO, STARTTLS, AUTH).
    #[error("{0}: {1}")]
    Refused(Stage, ServerReply),
    /// STARTTLS is required, and the server does not offer it.
    #[error("the server does not offer STARTTLS")]
    StartTlsNotOffered,
    /// The server sent more after its 220 to STARTTLS: bytes that would be
    /// taken as coming through TLS (RFC 3207 §4.2; CVE-2011-0411).
    #[error("the server sent data before the TLS handshake")]
    DataBeforeTls,
    /// A login is to be made, and the server offers neither PLAIN nor
    /// LOGIN (these are what it offers).
    #[error("the server offers no AUTH PLAIN or LOGIN")]
    NoAuthMechanism(Vec<String>),
    /// The caller started a transaction when the dialogue was not
    /// [`Step::Ready`].
    #[error("a transaction was started out of turn")]
    OutOfTurn,
}

/// A reply the dialogue waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    /// The 334 after `AUTH LOGIN` (the user name goes next).
    LoginUser,
    /// The 334 after the user name (the password goes next).
    LoginPassword,
    Auth,
    Mail,
    Rcpt,
    Data,
    Content,
    /// The reply to the empty message that ends a pipelined DATA which
    /// was answered 354 although no recipient was accepted.
    EmptyContent,
    Rset,
    Quit,
}

impl Expect {
    fn wait(self) -> Wait {
        match self {
            Expect::Greeting => Wait::Greeting,
            Expect::Content | Expect::EmptyContent => Wait::Content,
            Expect::Quit => Wait::Quit,
            _ => Wait::Command,
        }
    }
}

#[derive(Debug)]
enum State {
    /// Replies to come, in order.
    Awaiting(VecDeque<Expect>),
    /// [`Step::StartTls`] handed out; the handshake is the driver's.
    Handshake,
    Ready,
    Spent,
    Closed,
    Failed(Error),
}

/// The transaction under way.
#[derive(Debug)]
struct Transaction {
    rcpts: Vec<Command>,
    pipelined: bool,
    mail: Option<ServerReply>,
    /// Replies to the RCPTs sent so far, in order.
    rcpt_replies: Vec<ServerReply>,
    /// The reply to DATA (in the pipelined group, or sent alone).
    data: Option<ServerReply>,
    content: Option<Content>,
    /// Known outcomes; `None` for a recipient still waiting for the
    /// content's reply.
    outcomes: Vec<Option<Outcome>>,
    decided: bool,
}

/// One SMTP client connection's dialogue, from the greeting to QUIT.
#[derive(Debug)]
pub struct Dialogue {
    options: Options,
    parser: ReplyParser,
    /// Complete replies not yet taken.
    replies: VecDeque<ServerReply>,
    /// The reply that could not be read (after the complete ones).
    unreadable: Option<ReplyError>,
    caps: Capabilities,
    tls: bool,
    state: State,
    /// Steps decided but not yet handed out.
    outbox: VecDeque<Step>,
    transaction: Option<Transaction>,
}

impl Dialogue {
    /// A dialogue on a connection just opened: the greeting comes first.
    pub fn new(options: Options) -> Dialogue {
        Dialogue {
            options,
            parser: ReplyParser::new(),
            replies: VecDeque::new(),
            unreadable: None,
            caps: Capabilities::default(),
            tls: false,
            state: State::Awaiting(VecDeque::from([Expect::Greeting])),
            outbox: VecDeque::new(),
            transaction: None,
        }
    }

    /// What the server offered in its last EHLO (nothing after HELO).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Whether STARTTLS and the handshake succeeded.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether a transaction may start now.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready) && self.outbox.is_empty()
    }

    /// Bytes read from the server. True once a reply is complete (or
    /// unreadable): then `next_step` has something to work with.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.unreadable.is_none() {
            self.parser.feed(bytes);
            loop {
                match self.parser.next_reply() {
                    Ok(Some(reply)) => self.replies.push_back(reply),
                    Ok(None) => break,
                    Err(e) => {
                        self.unreadable = Some(e);
                        break;
                    }
                }
            }
        }
        !self.replies.is_empty() || self.unreadable.is_some()
    }

    /// What to do next. An `Err` ends the connection; later calls return
    /// it again.
    pub fn next_step(&mut self) -> Result<Step, Error> {
        loop {
            if let Some(step) = self.outbox.pop_front() {
                return Ok(step);
            }
            let expect = match &self.state {
                State::Awaiting(expects) => match expects.front() {
                    Some(e) => *e,
                    None => return Err(self.fail(Error::OutOfTurn)),
                },
                State::Handshake => return Ok(Step::StartTls),
                State::Ready => return Ok(Step::Ready),
                State::Spent => return Ok(Step::Spent),
                State::Closed => return Ok(Step::Closed),
                State::Failed(e) => return Err(e.clone()),
            };
            let Some(reply) = self.replies.pop_front() else {
                return match self.unreadable.clone() {
                    Some(e) => Err(self.fail(Error::Reply(e))),
                    None => Ok(Step::Read(expect.wait())),
                };
            };
            if let State::Awaiting(expects) = &mut self.state {
                expects.pop_front();
            }
            if let Err(e) = self.answer(expect, reply) {
                return Err(self.fail(e));
            }
        }
    }

    /// The driver's TLS handshake after [`Step::StartTls`] succeeded.
    pub fn tls_established(&mut self) {
        if matches!(self.state, State::Handshake) {
            self.tls = true;
            // RFC 3207 §4.2: the client discards what it knew from the
            // server before the handshake and sends EHLO again.
            self.parser = ReplyParser::new();
            self.replies.clear();
            self.caps = Capabilities::default();
            self.hello();
        }
    }

    /// Starts one transaction: MAIL, RCPT for each recipient, DATA or
    /// BDAT. `next_step` then leads to [`Step::Done`]. A message this server
    /// cannot take is not offered (every recipient [`Outcome::NotSent`]).
    pub fn transaction(
        &mut self,
        envelope: &Envelope<'_>,
        recipients: &[Recipient<'_>],
        content: &[u8],
    ) {
        if !self.is_ready() {
            self.fail(Error::OutOfTurn);
            return;
        }
        let caps = &self.caps;
        let use_bdat = self.options.chunking && caps.chunking;
        let smtputf8 = envelope.smtputf8
            || !envelope.sender.is_ascii()
            || recipients.iter().any(|r| !r.address.is_ascii());
        let body = envelope.body.map(|b| b.to_ascii_uppercase());
        let size = content.len() as u64;
        // Checks before anything is sent: failures that no retry can fix.
        let not_sent = match caps.size {
            Some(limit) if limit > 0 && size > limit => Some(NotSent::TooBig { size, limit }),
            _ if smtputf8 && !caps.smtputf8 => Some(NotSent::NeedsSmtpUtf8),
            _ if body.as_deref() == Some("BINARYMIME") && !(caps.binarymime && use_bdat) => {
                Some(NotSent::NeedsBinaryMime)
            }
            // After a HELO fallback nothing is declared, and nothing is
            // refused for it: the server never said what it takes.
            _ if body.as_deref() == Some("8BITMIME") && !caps.eight_bit_mime && caps.esmtp => {
                Some(NotSent::Needs8BitMime)
            }
            _ => None,
        };
        if let Some(reason) = not_sent {
            let outcomes = recipients.iter().map(|_| Outcome::NotSent(reason));
            self.outbox.push_back(Step::Done(outcomes.collect()));
            return;
        }
        // MAIL FROM with the parameters the server understands.
        let mut mail = format!("MAIL FROM:{}", path(envelope.sender));
        if caps.size.is_some() {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if let Some(b) = &body
            && (caps.eight_bit_mime || caps.binarymime)
        {
            mail.push_str(&format!(" BODY={b}"));
        }
        if smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if caps.dsn {
            if let Some(ret) = envelope.ret {
                mail.push_str(&format!(" RET={ret}"));
            }
            if let Some(envid) = envelope.envid {
                mail.push_str(&format!(" ENVID={envid}"));
            }
        }
        let rcpts: Vec<Command> = recipients
            .iter()
            .map(|r| {
                let mut line = format!("RCPT TO:{}", path(r.address));
                if caps.dsn {
                    if let Some(n) = r.notify {
                        line.push_str(&format!(" NOTIFY={n}"));
                    }
                    if let Some(o) = r.orcpt {
                        line.push_str(&format!(" ORCPT={o}"));
                    }
                }
                Command::new(line)
            })
            .collect();
        let content = if use_bdat {
            Content::Chunk(crate::crlf::normalize(content).into_owned())
        } else {
            let mut framed = Vec::new();
            crate::dot::stuff(content, &mut framed);
            Content::Data(framed)
        };
        let pipelined = self.options.pipelining && caps.pipelining;
        let mail = Command::new(mail);
        if pipelined {
            // RFC 2920 §3.1: MAIL, the RCPTs and DATA in one group. DATA
            // only when accepted recipients get the content whatever
            // happens to the others; otherwise the replies decide first
            // whether there is any content to send.
            let mut group = vec![mail];
            group.extend(rcpts.iter().cloned());
            let mut expects: VecDeque<Expect> = VecDeque::from([Expect::Mail]);
            expects.extend(rcpts.iter().map(|_| Expect::Rcpt));
            if !use_bdat && self.options.partial_delivery {
                group.push(Command::new("DATA"));
                expects.push_back(Expect::Data);
            }
            self.outbox.push_back(Step::Send(group));
            self.state = State::Awaiting(expects);
        } else {
            self.send(mail, Expect::Mail);
        }
        self.transaction = Some(Transaction {
            outcomes: vec![None; rcpts.len()],
            rcpts,
            pipelined,
            mail: None,
            rcpt_replies: Vec::new(),
            data: None,
            content: Some(content),
            decided: false,
        });
    }

    /// Ends the session: QUIT when the server is between transactions,
    /// otherwise just [`Step::Closed`].
    pub fn quit(&mut self) {
        if matches!(self.state, State::Ready | State::Spent) {
            self.send(Command::new("QUIT"), Expect::Quit);
        } else {
            self.outbox.clear();
            self.state = State::Closed;
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.outbox.clear();
        self.transaction = None;
        self.state = State::Failed(e.clone());
        e
    }

    fn send(&mut self, command: Command, expect: Expect) {
        self.outbox.push_back(Step::Send(vec![command]));
        self.state = State::Awaiting(VecDeque::from([expect]));
    }

    fn awaiting_more(&self) -> bool {
        matches!(&self.state, State::Awaiting(e) if !e.is_empty())
    }

    fn hello(&mut self) {
        let ehlo = Command::new(format!("EHLO {}", self.options.helo));
        self.send(ehlo, Expect::Ehlo);
    }

    fn answer(&mut self, expect: Expect, r: ServerReply) -> Result<(), Error> {
        match expect {
            Expect::Greeting if r.code == 220 => {
                self.hello();
                Ok(())
            }
            Expect::Greeting => Err(Error::Refused(Stage::Greeting, r)),
            Expect::Ehlo if r.code == 250 => {
                self.caps = Capabilities::from_ehlo(&r);
                self.after_hello()
            }
            // RFC 5321 §3.2: a server that does not know EHLO may still
            // know HELO. A 421 is the server closing, not ignorance.
            Expect::Ehlo if self.options.helo_fallback && r.code != 421 => {
                let helo = Command::new(format!("HELO {}", self.options.helo));
                self.send(helo, Expect::Helo);
                Ok(())
            }
            Expect::Ehlo => Err(Error::Refused(Stage::Ehlo, r)),
            Expect::Helo if r.code == 250 => {
                self.caps = Capabilities::default();
                self.after_hello()
            }
            Expect::Helo => Err(Error::Refused(Stage::Helo, r)),
            Expect::StartTls if r.code == 220 => {
                // RFC 3207 §4.2: anything the server sent after its 220
                // would be read as if it had come through TLS.
                if !self.replies.is_empty()
                    || self.parser.has_buffered()
                    || self.unreadable.is_some()
                {
                    return Err(Error::DataBeforeTls);
                }
                self.state = State::Handshake;
                Ok(())
            }
            Expect::StartTls if self.options.starttls == TlsPolicy::Required => {
                Err(Error::Refused(Stage::StartTls, r))
            }
            Expect::StartTls => self.authenticate(),
            Expect::LoginUser | Expect::LoginPassword if r.code != 334 => {
                Err(Error::Refused(Stage::AuthLogin, r))
            }
            Expect::LoginUser | Expect::LoginPassword => {
                let Some(login) = self.login() else {
                    return Err(Error::OutOfTurn);
                };
                let command = if expect == Expect::LoginUser {
                    Command::masked(base64(&login.user), "******** (user name, base64)")
                } else {
                    Command::masked(
                        base64(login.password.expose()),
                        "******** (password, base64)",
                    )
                };
                let next = if expect == Expect::LoginUser {
                    Expect::LoginPassword
                } else {
                    Expect::Auth
                };
                self.send(command, next);
                Ok(())
            }
            Expect::Auth if r.code == 235 => {
                self.state = State::Ready;
                Ok(())
            }
            Expect::Auth => Err(Error::Refused(Stage::Auth, r)),
            Expect::Mail | Expect::Rcpt | Expect::Data | Expect::Content => {
                self.transaction_reply(expect, r)
            }
            // RFC 2920 §3.1: whatever the server says to the empty
            // message, RSET follows.
            Expect::EmptyContent => {
                self.send(Command::new("RSET"), Expect::Rset);
                Ok(())
            }
            Expect::Rset => {
                self.state = if r.code == 250 {
                    State::Ready
                } else {
                    State::Spent
                };
                Ok(())
            }
            Expect::Quit => {
                self.state = State::Closed;
                Ok(())
            }
        }
    }

    /// After EHLO or HELO: STARTTLS if wanted, else AUTH.
    fn after_hello(&mut self) -> Result<(), Error> {
        if !self.tls && self.options.starttls != TlsPolicy::Off {
            if self.caps.starttls {
                self.send(Command::new("STARTTLS"), Expect::StartTls);
                return Ok(());
            }
            if self.options.starttls == TlsPolicy::Required {
                return Err(Error::StartTlsNotOffered);
            }
        }
        self.authenticate()
    }

    fn login(&self) -> Option<&Login> {
        match &self.options.auth {
            Auth::None => None,
            Auth::Required(login) => Some(login),
            Auth::IfOffered(login) => (!self.caps.auth.is_empty()).then_some(login),
        }
    }

    /// AUTH PLAIN, or LOGIN when only that is offered (RFC 4954).
    fn authenticate(&mut self) -> Result<(), Error> {
        let Some(login) = self.login() else {
            self.state = State::Ready;
            return Ok(());
        };
        let offers = |m: &str| self.caps.auth.iter().any(|a| a == m);
        if offers("PLAIN") {
            // RFC 4616 §2: authzid NUL authcid NUL passwd.
            let token = format!("\0{}\0{}", login.user, login.password.expose());
            let line = format!("AUTH PLAIN {}", base64(&token));
            self.send(Command::masked(line, "AUTH PLAIN ********"), Expect::Auth);
        } else if offers("LOGIN") {
            self.send(Command::new("AUTH LOGIN"), Expect::LoginUser);
        } else {
            return Err(Error::NoAuthMechanism(self.caps.auth.clone()));
        }
        Ok(())
    }

    fn transaction_reply(&mut self, expect: Expect, r: ServerReply) -> Result<(), Error> {
        let Some(t) = self.transaction.as_mut() else {
            return Err(Error::OutOfTurn);
        };
        match expect {
            Expect::Mail => t.mail = Some(r),
            Expect::Rcpt => t.rcpt_replies.push(r),
            Expect::Data => t.data = Some(r),
            _ => {
                // The reply after the content decides for every recipient
                // still open.
                let outcomes = t
                    .outcomes
                    .drain(..)
                    .map(|o| {
                        o.unwrap_or_else(|| match r.is_positive() {
                            true => Outcome::Delivered(r.clone()),
                            false => Outcome::Refused(Stage::Content, r.clone()),
                        })
                    })
                    .collect();
                self.transaction = None;
                self.outbox.push_back(Step::Done(outcomes));
                self.state = State::Ready;
                return Ok(());
            }
        }
        if !self.awaiting_more() {
            self.proceed();
        }
        Ok(())
    }

    /// All replies so far are in: the next command, the content, or the
    /// end of a transaction that sends no content.
    fn proceed(&mut self) {
        let partial = self.options.partial_delivery;
        let Some(t) = self.transaction.as_mut() else {
            return;
        };
        let Some(mail) = t.mail.clone() else {
            return;
        };
        if !mail.is_positive() {
            t.outcomes = (t.outcomes.iter())
                .map(|_| Some(Outcome::Refused(Stage::Mail, mail.clone())))
                .collect();
            return self.abandon();
        }
        let sent = t.rcpt_replies.len();
        let last_refused = t.rcpt_replies.last().is_some_and(|r| !r.is_positive());
        if !t.pipelined && sent < t.rcpts.len() && (partial || !last_refused) {
            let rcpt = t.rcpts[sent].clone();
            return self.send(rcpt, Expect::Rcpt);
        }
        if !t.decided {
            t.decided = true;
            for (i, o) in t.outcomes.iter_mut().enumerate() {
                *o = match t.rcpt_replies.get(i) {
                    Some(r) if !r.is_positive() => Some(Outcome::Refused(Stage::Rcpt, r.clone())),
                    Some(_) => None,
                    None => Some(Outcome::NotSent(NotSent::Withheld)),
                };
            }
            let accepted = t.outcomes.iter().filter(|o| o.is_none()).count();
            let refused = accepted < t.outcomes.len();
            if refused && !partial {
                for o in t.outcomes.iter_mut().filter(|o| o.is_none()) {
                    *o = Some(Outcome::NotSent(NotSent::Withheld));
                }
            }
            if accepted == 0 || (refused && !partial) {
                return self.abandon();
            }
        }
        let Some(content) = t.content.take() else {
            return;
        };
        match (&content, t.data.clone()) {
            (Content::Chunk(chunk), _) => {
                let bdat = Command::new(format!("BDAT {} LAST", chunk.len()));
                self.outbox.push_back(Step::Send(vec![bdat]));
                self.outbox.push_back(Step::SendContent(content));
                self.state = State::Awaiting(VecDeque::from([Expect::Content]));
            }
            (Content::Data(_), None) => {
                t.content = Some(content);
                self.send(Command::new("DATA"), Expect::Data);
            }
            (Content::Data(_), Some(r)) if r.code == 354 => {
                self.outbox.push_back(Step::SendContent(content));
                self.state = State::Awaiting(VecDeque::from([Expect::Content]));
            }
            (Content::Data(_), Some(r)) => {
                for o in t.outcomes.iter_mut().filter(|o| o.is_none()) {
                    *o = Some(Outcome::Refused(Stage::Data, r.clone()));
                }
                t.data = None;
                self.abandon();
            }
        }
    }

    /// Ends a transaction that sends no content: the outcomes now, then
    /// (RFC 2920 §3.1) an empty message for a pipelined DATA that the
    /// server answered 354 all the same, and RSET (RFC 5321 §4.1.1.5) so
    /// the next transaction starts clean.
    fn abandon(&mut self) {
        let Some(t) = self.transaction.take() else {
            return;
        };
        let outcomes = t.outcomes.into_iter().flatten().collect();
        self.outbox.push_back(Step::Done(outcomes));
        if t.data.is_some_and(|r| r.code == 354) {
            let mut empty = Vec::new();
            crate::dot::stuff(b"", &mut empty);
            self.outbox
                .push_back(Step::SendContent(Content::Data(empty)));
            self.state = State::Awaiting(VecDeque::from([Expect::EmptyContent]));
        } else {
            self.send(Command::new("RSET"), Expect::Rset);
        }
    }
}

fn base64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

#[cfg(test)]
mod tests;
