//! The SMTP session: inbound MTA (RFC 5321), message submission (RFC 6409)
//! and LMTP (RFC 2033), one task per connection. Commands are parsed by
//! [`crate::command`], content by [`crate::data`]; replies come from
//! [`crate::reply`]. Accepted mail goes through `postamt_mda::accept_async`, which
//! returns only when the message is durable: every `250` after DATA/BDAT
//! stands for a committed, fsync'd message.
//!
//! Between the end of DATA and delivery, [`Session::check_message`] runs the
//! inbound checks (loop detection, spoofed local senders, submission sender
//! ownership); SPF/DKIM/DMARC verification will be one more step there.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postamt_mda::{DeliveryError, Incoming};
use postamt_server::sasl::{MECHANISMS, SaslExchange, SaslStep};
use postamt_server::{Connection, Line, Login, Protocol, SessionContext, Transcript};
use postamt_store::{Account, AccountId, OutboundEnvelope, QueuedRecipient, SharedStore, blocking};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::command::{self, Body, Command, MailParams, Mailbox, ParseError};
use crate::data::{DataReceiver, Flaw};
use crate::reply::{R, Reply};
use postamt_wire::meta::header_len;

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

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub mode: Mode,
    /// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4 asks for at
    /// least 512).
    pub max_line: usize,
    /// Advertised with SIZE (RFC 1870).
    pub max_message_size: usize,
    pub max_header_size: usize,
    /// RFC 5321 §4.5.3.1.8 asks for at least 100.
    pub max_recipients: usize,
    pub max_errors: u32,
    /// Waiting for a command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
    pub command_timeout: Duration,
    /// Waiting for the next block of DATA (§4.5.3.2.5: 3 minutes).
    pub data_timeout: Duration,
    pub tls_timeout: Duration,
    pub spoof_policy: SpoofPolicy,
    /// More `Received:` headers than this is a mail loop (RFC 5321 §6.3).
    pub max_received: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            mode: Mode::Inbound,
            max_line: 2048,
            max_message_size: 50 * 1024 * 1024,
            max_header_size: 1024 * 1024,
            max_recipients: 100,
            max_errors: 20,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            tls_timeout: Duration::from_secs(30),
            spoof_policy: SpoofPolicy::Reject,
            max_received: 50,
        }
    }
}

pub struct Smtp {
    store: SharedStore,
    config: SmtpConfig,
}

impl Smtp {
    pub fn new(store: SharedStore, config: SmtpConfig) -> Smtp {
        Smtp { store, config }
    }
}

impl Protocol for Smtp {
    fn name(&self) -> &'static str {
        match self.config.mode {
            Mode::Inbound => "smtp",
            Mode::Submission => "submission",
            Mode::Lmtp => "lmtp",
        }
    }

    fn busy_reply(&self) -> &'static [u8] {
        b"421 4.7.0 Too many connections from your address\r\n"
    }

    async fn session<S>(self: Arc<Self>, conn: Connection<S>, ctx: SessionContext)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut s = Session::new(&self.store, &self.config, &ctx, &conn);
        s.run(conn, ctx.shutdown.clone()).await;
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

#[derive(Debug, Default)]
struct Transaction {
    from: Option<Mailbox>,
    params: MailParams,
    rcpts: Vec<Rcpt>,
    /// BDAT chunks received so far.
    chunks: Option<Vec<u8>>,
    /// BDAT content went over the size limit.
    chunks_too_big: bool,
    /// Seen spoofing that the Mark policy lets through.
    warning: Option<String>,
}

enum Flow {
    Continue,
    Close,
}

struct Session<'a> {
    store: &'a SharedStore,
    config: &'a SmtpConfig,
    ctx: &'a SessionContext,
    ip: IpAddr,
    hostname: String,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    tls_info: Option<(String, String)>,
    user: Option<Account>,
    tx: Option<Transaction>,
    errors: u32,
    out: Vec<u8>,
    transcript: Option<Transcript>,
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// A short unique id for Received headers and queue replies.
fn new_id() -> String {
    let n = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{:x}{:04x}{:x}", t, std::process::id() & 0xffff, n)
}

fn tls_version(v: &str) -> String {
    // rustls prints TLSv1_3; mail headers write TLSv1.3.
    v.replace('_', ".")
}

/// The IANA name of a cipher suite (rustls prints TLS 1.3 suites as
/// `TLS13_AES_256_GCM_SHA384`; the registry and Postfix say
/// `TLS_AES_256_GCM_SHA384`).
fn cipher_name(c: &str) -> String {
    match c.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => c.to_string(),
    }
}

impl<'a> Session<'a> {
    fn new<S>(
        store: &'a SharedStore,
        config: &'a SmtpConfig,
        ctx: &'a SessionContext,
        conn: &Connection<S>,
    ) -> Session<'a>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        Session {
            store,
            config,
            ctx,
            ip: conn.peer.ip(),
            hostname: ctx.server.hostname.clone(),
            helo: None,
            esmtp: false,
            tls: conn.is_tls(),
            tls_info: conn.tls_info(),
            user: None,
            tx: None,
            errors: 0,
            out: Vec::with_capacity(4096),
            transcript: ctx.transcript.clone(),
        }
    }

    fn reply(&mut self, r: impl Into<Reply>) {
        let r = r.into();
        let start = self.out.len();
        r.render(&mut self.out);
        if let Some(t) = &self.transcript {
            for l in self.out[start..].split_inclusive(|&b| b == b'\n') {
                t.server(l);
            }
        }
        if r.code >= 500 {
            self.errors += 1;
        }
    }

    async fn flush<S: AsyncRead + AsyncWrite + Unpin>(&mut self, conn: &mut Connection<S>) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let ok = conn.write_all(&self.out).await.is_ok();
        self.out.clear();
        ok
    }

    fn plaintext_ok(&self) -> bool {
        self.ctx.server.auth.plaintext_allowed(self.tls, self.ip)
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mut conn: Connection<S>,
        mut shutdown: postamt_server::Shutdown,
    ) {
        let kind = if self.config.mode == Mode::Lmtp {
            "LMTP"
        } else {
            "ESMTP"
        };
        let greeting = Reply::plain(220, vec![format!("{} {kind} postamt ready", self.hostname)]);
        self.reply(greeting);
        loop {
            // Write before a read that may wait, and whenever replies pile up.
            if (!conn.has_complete_line() || self.out.len() > 64 * 1024)
                && !self.flush(&mut conn).await
            {
                break;
            }
            if self.errors >= self.config.max_errors {
                self.reply(R::TooManyErrors);
                break;
            }
            let read = tokio::select! {
                biased;
                _ = shutdown.recv() => {
                    self.reply(R::ShuttingDown);
                    break;
                }
                r = tokio::time::timeout(self.config.command_timeout, conn.read_line(self.config.max_line)) => r,
            };
            let line = match read {
                Err(_) => {
                    self.reply(R::Timeout);
                    break;
                }
                Ok(Err(_)) | Ok(Ok(Line::Eof)) => break,
                Ok(Ok(Line::TooLong)) => {
                    if let Some(t) = &self.transcript {
                        t.note("client sent an overlong line");
                    }
                    self.reply(R::LineTooLong);
                    continue;
                }
                Ok(Ok(Line::Line(l))) => l,
            };
            self.record_command(&line);
            let flow = match command::parse(&line) {
                Ok(cmd) => self.command(cmd, &mut conn).await,
                Err(e) => {
                    self.reply(match e {
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
                    });
                    Flow::Continue
                }
            };
            if let Flow::Close = flow {
                break;
            }
        }
        self.flush(&mut conn).await;
        conn.shutdown().await;
        if let Some(t) = &self.transcript {
            t.note("session ended");
            t.flush();
        }
    }

    fn record_command(&self, line: &[u8]) {
        if let Some(t) = &self.transcript {
            t.client_command(
                line,
                &[
                    "HELO", "EHLO", "LHLO", "DATA", "RSET", "NOOP", "QUIT", "HELP", "VRFY", "EXPN",
                    "STARTTLS", "AUTH",
                ],
            );
        }
    }

    async fn command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cmd: Command,
        conn: &mut Connection<S>,
    ) -> Flow {
        let lmtp = self.config.mode == Mode::Lmtp;
        match cmd {
            Command::Helo(d) | Command::Ehlo(d) if lmtp => {
                let _ = d;
                self.reply(Reply::with(
                    R::LhloFirst,
                    "This is LMTP: send LHLO (RFC 2033)",
                ));
            }
            Command::Lhlo(_) if !lmtp => self.reply(R::Unknown),
            Command::Helo(d) => {
                self.helo = Some(d);
                self.esmtp = false;
                self.tx = None;
                self.reply(Reply::plain(250, vec![self.hostname.clone()]));
            }
            Command::Ehlo(d) | Command::Lhlo(d) => {
                let mut lines = vec![format!("{} greets {d} [{}]", self.hostname, self.ip)];
                lines.extend([
                    "PIPELINING".to_string(),
                    format!("SIZE {}", self.config.max_message_size),
                    "8BITMIME".into(),
                    "SMTPUTF8".into(),
                    "ENHANCEDSTATUSCODES".into(),
                    "CHUNKING".into(),
                    "DSN".into(),
                ]);
                if !self.tls {
                    lines.push("STARTTLS".into());
                }
                if self.config.mode == Mode::Submission
                    && self.plaintext_ok()
                    && self.user.is_none()
                {
                    lines.push(format!("AUTH {}", MECHANISMS.join(" ")));
                }
                self.helo = Some(d);
                self.esmtp = true;
                self.tx = None;
                self.reply(Reply::plain(250, lines));
            }
            Command::StartTls => return self.starttls(conn).await,
            Command::Auth { mechanism, initial } => {
                return self
                    .auth(
                        &mechanism,
                        initial.as_ref().map(|s| s.expose().clone()),
                        conn,
                    )
                    .await;
            }
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to, params } => self.rcpt(to, params).await,
            Command::Data => return self.data(conn).await,
            Command::Bdat { size, last } => return self.bdat(size, last, conn).await,
            Command::Rset => {
                self.tx = None;
                self.reply(R::Ok);
            }
            Command::Noop => self.reply(R::Ok),
            Command::Help => self.reply(R::Help),
            // RFC 5321 §3.5.3: 252 when we will not say whether a user exists.
            Command::Vrfy => self.reply(R::Vrfy),
            Command::Expn => self.reply(R::NotImplemented),
            Command::Quit => {
                self.reply(R::Bye);
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    async fn starttls<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Connection<S>,
    ) -> Flow {
        if self.tls {
            self.reply(Reply::with(R::BadSequence, "TLS already active"));
            return Flow::Continue;
        }
        self.reply(R::ReadyTls);
        if !self.flush(conn).await {
            return Flow::Close;
        }
        let acceptor = self.ctx.server.tls.acceptor();
        // The buffer is cleared inside start_tls: pipelined plaintext after
        // STARTTLS is discarded (RFC 3207 §4.2, CVE-2011-0411).
        match tokio::time::timeout(self.config.tls_timeout, conn.start_tls(&acceptor)).await {
            Ok(Ok(())) => {
                self.tls = true;
                self.tls_info = conn.tls_info();
                if let (Some(t), Some((v, c))) = (&self.transcript, &self.tls_info) {
                    t.note(&format!("TLS started: {v} {c}"));
                }
                // RFC 3207 §4.2: forget everything learned before TLS.
                self.helo = None;
                self.esmtp = false;
                self.tx = None;
                self.user = None;
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }

    async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mechanism: &str,
        initial: Option<String>,
        conn: &mut Connection<S>,
    ) -> Flow {
        if self.config.mode != Mode::Submission {
            self.reply(R::NoAuthHere);
            return Flow::Continue;
        }
        if self.helo.is_none() || !self.esmtp {
            self.reply(R::HeloFirst);
            return Flow::Continue;
        }
        if self.user.is_some() {
            self.reply(R::AlreadyAuthenticated);
            return Flow::Continue;
        }
        if self.tx.is_some() {
            self.reply(Reply::with(
                R::BadSequence,
                "AUTH not allowed during a mail transaction",
            ));
            return Flow::Continue;
        }
        if !self.plaintext_ok() {
            self.reply(R::EncryptionRequired);
            return Flow::Continue;
        }
        let Some((mut exchange, mut step)) = SaslExchange::start(mechanism, initial.as_deref())
        else {
            self.reply(R::AuthMechanism);
            return Flow::Continue;
        };
        loop {
            match step {
                SaslStep::Challenge(c) => {
                    // RFC 4954 §4: "334 " and the base64 challenge.
                    self.reply(Reply::plain(334, vec![c]));
                    if !self.flush(conn).await {
                        return Flow::Close;
                    }
                    let line = match tokio::time::timeout(
                        self.config.command_timeout,
                        conn.read_line(self.config.max_line),
                    )
                    .await
                    {
                        Ok(Ok(Line::Line(l))) => l,
                        Ok(Ok(Line::TooLong)) => {
                            self.reply(R::LineTooLong);
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
                    self.reply(if cancelled {
                        Reply::new(R::AuthCancelled)
                    } else {
                        Reply::with(R::Syntax, reason)
                    });
                    return Flow::Continue;
                }
                SaslStep::Done { user, password } => {
                    let store = Arc::clone(self.store);
                    let auth = Arc::clone(&self.ctx.server.auth);
                    let login = user.clone();
                    let check = move || store.verify_password(&user, password.expose());
                    match auth.login("submission", self.ip, &login, check).await {
                        Login::Ok(account) => {
                            tracing::info!(protocol = "submission", peer = %self.ip, user = %account.address, tls = self.tls, "login");
                            self.user = Some(account);
                            self.reply(R::AuthOk);
                        }
                        Login::Failed => self.reply(R::AuthInvalid),
                        Login::Throttled => {
                            self.reply(R::AuthThrottled);
                            return Flow::Close;
                        }
                        Login::TempFail => self.reply(R::TempFail),
                    }
                    return Flow::Continue;
                }
            }
        }
    }

    // Directory lookups (local domains, recipients, aliases, quota state)
    // run inline on the session's task, not on the blocking pool: they are
    // indexed reads of small, hot tables through the store's read pool
    // (WAL readers do not wait for the writer), a few microseconds each,
    // while a hop to the blocking pool costs two thread wake-ups — 15 % of
    // the 100 KB SMTP benchmark's throughput for the three lookups of a
    // transaction (bench/README.md, "SMTP"). What writes, fsyncs, hashes a
    // password or scans a mailbox stays on the blocking pool (`blocking`).

    fn local_domains(&self) -> Vec<String> {
        self.store.domains().unwrap_or_default()
    }

    /// Whether the authenticated user may use `address` as a sender: their
    /// own address, or an address (alias, subaddress) that leads to them.
    fn owns(&self, address: &str) -> bool {
        let Some(user) = &self.user else { return false };
        if address.eq_ignore_ascii_case(&user.address) {
            return true;
        }
        postamt_mda::resolve(&**self.store, address)
            .map(|r| r.local.iter().any(|(_, i)| *i == user.id))
            .unwrap_or(false)
    }

    async fn mail(&mut self, from: Option<Mailbox>, params: MailParams) {
        if self.helo.is_none() {
            return self.reply(if self.config.mode == Mode::Lmtp {
                R::LhloFirst
            } else {
                R::HeloFirst
            });
        }
        if self.tx.is_some() {
            return self.reply(Reply::with(R::BadSequence, "Nested MAIL command"));
        }
        if self.config.mode == Mode::Submission && self.user.is_none() {
            return self.reply(R::AuthRequired);
        }
        if (params.smtputf8
            || params.body.is_some()
            || params.ret.is_some()
            || params.envid.is_some())
            && !self.esmtp
        {
            return self.reply(Reply::with(R::BadParameter, "MAIL parameters need EHLO"));
        }
        if let Some(size) = params.size
            && size > self.config.max_message_size as u64
        {
            return self.reply(R::TooBig);
        }
        if let Some(f) = &from
            && !f.is_ascii()
            && !params.smtputf8
        {
            return self.reply(R::NeedSmtpUtf8);
        }
        let mut warning = None;
        match (&from, self.config.mode) {
            (Some(f), Mode::Submission) if !self.owns(&f.address()) => {
                return self.reply(R::NotYourAddress);
            }
            (Some(_), Mode::Submission) => {}
            (None, Mode::Submission) => {
                return self.reply(Reply::with(
                    R::NotYourAddress,
                    "The null sender is not for submission",
                ));
            }
            (Some(f), Mode::Inbound) if self.config.spoof_policy != SpoofPolicy::Off => {
                let domains = self.local_domains();
                if domains.iter().any(|d| d.eq_ignore_ascii_case(&f.domain)) {
                    if self.config.spoof_policy == SpoofPolicy::Reject {
                        tracing::info!(peer = %self.ip, sender = %f.address(), "rejected: unauthenticated sender in a local domain");
                        return self.reply(Reply::with(R::SpoofedSender, format!("Unauthenticated sender claims the local domain {}; use the submission port", f.domain)));
                    }
                    warning = Some(format!(
                        "envelope sender <{}> claims a local domain, but the client did not authenticate",
                        f.address()
                    ));
                }
            }
            _ => {}
        }
        self.tx = Some(Transaction {
            from,
            params,
            warning,
            ..Transaction::default()
        });
        self.reply(R::SenderOk);
    }

    async fn rcpt(&mut self, to: Mailbox, params: command::RcptParams) {
        let Some(tx) = &self.tx else {
            return self.reply(R::MailFirst);
        };
        if tx.rcpts.len() >= self.config.max_recipients {
            return self.reply(R::TooManyRecipients);
        }
        if !to.is_ascii() && !tx.params.smtputf8 {
            return self.reply(R::NeedSmtpUtf8);
        }
        if (params.notify.is_some() || params.orcpt.is_some()) && !self.esmtp {
            return self.reply(Reply::with(R::BadParameter, "RCPT parameters need EHLO"));
        }
        let address = if to.domain.is_empty() {
            // RFC 5321 §4.5.1: <Postmaster> means the postmaster of this host.
            match self.local_domains().first() {
                Some(d) => format!("postmaster@{d}"),
                None => return self.reply(R::UnknownUser),
            }
        } else {
            format!("{}@{}", to.local_unquoted(), to.domain)
        };
        // Inline, like every directory lookup (see `local_domains`).
        let r = postamt_mda::resolve(&**self.store, &address);
        // The quota is checked here so a full mailbox is refused before
        // DATA (452 4.2.2), not after.
        let full = r.as_ref().is_ok_and(|res| res.full);
        let reply = match (r, full) {
            (Ok(_), true) => Reply::new(R::OverQuota),
            (Ok(res), false) => {
                let tx = self.tx.as_mut().expect("checked above");
                tx.rcpts.push(Rcpt::Local {
                    given: address,
                    accounts: res.local,
                    forward: res.remote,
                    notify: params.notify.clone(),
                    orcpt: params.orcpt.clone(),
                });
                Reply::new(R::RecipientOk)
            }
            (Err(DeliveryError::UnknownRecipient(_)), _) => {
                tracing::info!(peer = %self.ip, recipient = ?address, "unknown recipient refused");
                Reply::new(R::UnknownUser)
            }
            (Err(DeliveryError::NotLocal(_)), _)
                if self.config.mode == Mode::Submission && self.user.is_some() =>
            {
                let tx = self.tx.as_mut().expect("checked above");
                // Relayed as written, quoted local part included.
                tx.rcpts.push(Rcpt::Remote(QueuedRecipient {
                    notify: params.notify.clone(),
                    orcpt: params.orcpt.clone(),
                    ..QueuedRecipient::new(to.address())
                }));
                Reply::new(R::RecipientOk)
            }
            (Err(DeliveryError::NotLocal(_)), _) if self.config.mode == Mode::Lmtp => {
                Reply::new(R::UnknownUser)
            }
            (Err(DeliveryError::NotLocal(_)), _) => {
                tracing::info!(peer = %self.ip, recipient = %address, "relay denied");
                Reply::new(R::RelayDenied)
            }
            (Err(_), _) => Reply::new(R::TempFail),
        };
        self.reply(reply);
    }

    async fn data<S: AsyncRead + AsyncWrite + Unpin>(&mut self, conn: &mut Connection<S>) -> Flow {
        match &self.tx {
            None => {
                self.reply(R::MailFirstData);
                return Flow::Continue;
            }
            Some(tx) if tx.chunks.is_some() => {
                self.reply(Reply::with(R::BadSequence, "DATA after BDAT"));
                return Flow::Continue;
            }
            Some(tx) if tx.rcpts.is_empty() => {
                // RFC 2920 §3.1: with pipelining, DATA after only failed RCPTs.
                self.reply(R::NoValidRecipients);
                return Flow::Continue;
            }
            Some(_) => {}
        }
        self.reply(R::StartData);
        if !self.flush(conn).await {
            return Flow::Close;
        }
        let mut rx = DataReceiver::new(self.config.max_message_size, self.config.max_header_size);
        loop {
            let buf =
                match tokio::time::timeout(self.config.data_timeout, conn.fill_buf_bulk()).await {
                    Ok(Ok(b)) if !b.is_empty() => b,
                    Ok(_) => return Flow::Close,
                    Err(_) => {
                        self.reply(R::Timeout);
                        return Flow::Close;
                    }
                };
            let n = rx.feed(buf);
            conn.consume(n);
            if rx.is_done() {
                break;
            }
        }
        let result = rx.finish();
        self.finish_message(result).await;
        Flow::Continue
    }

    async fn bdat<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        size: u64,
        last: bool,
        conn: &mut Connection<S>,
    ) -> Flow {
        // The chunk is read whatever happens, so the byte stream stays in
        // step (RFC 3030 §2: the server must read it before replying).
        let ok_to_keep = matches!(&self.tx, Some(tx) if !tx.rcpts.is_empty());
        let limit = self.config.max_message_size;
        let mut chunk = Vec::new();
        let already = self
            .tx
            .as_ref()
            .and_then(|t| t.chunks.as_ref())
            .map(|c| c.len())
            .unwrap_or(0);
        let keep = if ok_to_keep {
            limit.saturating_sub(already)
        } else {
            0
        };
        match tokio::time::timeout(
            self.config.data_timeout,
            conn.read_exact_into(size, &mut chunk, keep),
        )
        .await
        {
            Ok(Ok(true)) => {}
            Ok(_) => return Flow::Close,
            Err(_) => {
                self.reply(R::Timeout);
                return Flow::Close;
            }
        }
        if let Some(t) = &self.transcript {
            t.note(&format!("client sent a BDAT chunk of {size} bytes"));
        }
        let Some(tx) = self.tx.as_mut() else {
            self.reply(R::MailFirstData);
            return Flow::Continue;
        };
        if tx.rcpts.is_empty() {
            self.reply(R::NoValidRecipients);
            return Flow::Continue;
        }
        let chunks = tx.chunks.get_or_insert_with(Vec::new);
        if chunk.len() as u64 != size || chunks.len() + chunk.len() > limit {
            tx.chunks_too_big = true;
            chunks.clear();
        } else if !tx.chunks_too_big {
            chunks.extend_from_slice(&chunk);
        }
        if !last {
            let total = chunks.len();
            self.reply(Reply::with(
                R::Ok,
                format!("{size} bytes received ({total} so far)"),
            ));
            return Flow::Continue;
        }
        let content = tx.chunks.take().unwrap_or_default();
        let result = if tx.chunks_too_big {
            Err(Flaw::TooBig)
        } else if header_len(&content) > self.config.max_header_size {
            Err(Flaw::HeaderTooBig)
        } else if !postamt_wire::crlf::is_clean(&content) {
            Err(Flaw::BareLineEnding)
        } else {
            Ok(content)
        };
        self.finish_message(result).await;
        Flow::Continue
    }

    /// After DATA or the last BDAT: check, add trace headers, deliver, reply.
    /// The transaction ends here whatever the outcome (RFC 5321 §4.1.1.4).
    async fn finish_message(&mut self, received: Result<Vec<u8>, Flaw>) {
        let Some(tx) = self.tx.take() else { return };
        let content = match received {
            Ok(c) => c,
            Err(f) => {
                return self.reply_all(
                    &tx,
                    match f {
                        Flaw::TooBig => R::TooBig,
                        Flaw::HeaderTooBig => R::HeaderTooBig,
                        Flaw::BareLineEnding => R::BareLineEndingData,
                    },
                );
            }
        };
        if let Some(t) = &self.transcript {
            t.client_body(&content);
        }
        let mut tx = tx;
        let mut extra_headers = String::new();
        if let Err(reply) = self
            .check_message(&mut tx, &content, &mut extra_headers)
            .await
        {
            return self.reply_all_with(&tx, reply);
        }
        let id = new_id();
        let received = self.received_header(&tx, &id);
        // The trace header goes in front of the content in place (one
        // move of the bytes within their buffer, not a copy of a large
        // message into fresh memory).
        let mut message = content;
        message.splice(
            0..0,
            [received.as_bytes(), extra_headers.as_bytes()].concat(),
        );
        let from = tx.from.as_ref().map(|f| f.address()).unwrap_or_default();
        let envelope = OutboundEnvelope {
            ret: tx.params.ret.clone(),
            envid: tx.params.envid.clone(),
            body: tx.params.body.map(|b| match b {
                Body::SevenBit => "7BIT".to_string(),
                Body::EightBitMime => "8BITMIME".to_string(),
                Body::BinaryMime => "BINARYMIME".to_string(),
            }),
            smtputf8: tx.params.smtputf8,
            authenticated_as: self.user.as_ref().map(|u| u.address.clone()),
        };
        if self.config.mode == Mode::Lmtp {
            return self.deliver_lmtp(&tx, &from, envelope, message).await;
        }
        let mut local = Vec::new();
        let mut remote: Vec<QueuedRecipient> = Vec::new();
        for r in &tx.rcpts {
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
        let store = Arc::clone(self.store);
        let now = postamt_wire::time::unix_now() as i64;
        let wants_report = tx.rcpts.iter().any(|r| self.wants_success_report(&from, r));
        let header = wants_report.then(|| message[..header_len(&message)].to_vec());
        let report_envelope = envelope.clone();
        let report_from = from.clone();
        // No blocking-pool hop: the store's writer commits (and syncs
        // large content) and wakes this task (`Store::accept_async`).
        let result = postamt_mda::accept_async(
            store,
            Incoming {
                from: &from,
                local,
                remote,
                envelope,
                content: message,
                internaldate: now,
            },
        )
        .await;
        if result.is_ok()
            && let Some(header) = header
        {
            let rcpts: Vec<&Rcpt> = tx.rcpts.iter().collect();
            self.report_success(&report_from, &rcpts, report_envelope, header)
                .await;
        }
        match result {
            Ok(report) => {
                tracing::info!(peer = %self.ip, id = %id, delivered = report.delivered.len(), queued = report.queued.len(), "message accepted");
                let queued = report
                    .queue_id
                    .map(|q| format!(", queue id {}", q.0))
                    .unwrap_or_default();
                self.reply(Reply::with(R::Ok, format!("Ok: queued as {id}{queued}")));
            }
            Err(DeliveryError::OverQuota(_)) => self.reply(R::OverQuota),
            Err(e) => {
                tracing::error!(error = %e, "delivery failed");
                self.reply(R::TempFail);
            }
        }
    }

    /// RFC 3461 §4.1: a local recipient with `NOTIFY=SUCCESS` (never for
    /// the null sender).
    fn wants_success_report(&self, from: &str, r: &Rcpt) -> bool {
        match r {
            Rcpt::Local {
                accounts, notify, ..
            } if !accounts.is_empty() => {
                let mut q = QueuedRecipient::new(String::new());
                q.notify = notify.clone();
                crate::dsn::wanted(from, &q, crate::dsn::Action::Delivered)
            }
            _ => false,
        }
    }

    /// Queues a "delivered" report (RFC 3464 `Action: delivered`) for the
    /// local recipients that asked for one; the message is already stored,
    /// so a failure here is logged, not answered.
    async fn report_success(
        &mut self,
        from: &str,
        rcpts: &[&Rcpt],
        envelope: OutboundEnvelope,
        header: Vec<u8>,
    ) {
        let now = postamt_wire::time::unix_now() as i64;
        let reports: Vec<crate::dsn::Report> = rcpts
            .iter()
            .filter(|r| self.wants_success_report(from, r))
            .filter_map(|r| match r {
                Rcpt::Local {
                    given,
                    notify,
                    orcpt,
                    ..
                } => Some(crate::dsn::Report {
                    recipient: QueuedRecipient {
                        notify: notify.clone(),
                        orcpt: orcpt.clone(),
                        ..QueuedRecipient::new(given.clone())
                    },
                    action: crate::dsn::Action::Delivered,
                    status: "2.0.0".into(),
                    diagnostic: "smtp; 250 2.0.0 delivered to the mailbox".into(),
                    remote_mta: None,
                }),
                _ => None,
            })
            .collect();
        if reports.is_empty() {
            return;
        }
        let entry = postamt_store::QueueEntry {
            id: postamt_store::QueueId(0),
            created: now,
            next_attempt: now,
            held: false,
            sender: from.to_string(),
            size: header.len() as u64,
            envelope,
            recipients: vec![],
            warned: false,
            active: false,
        };
        let reporter = crate::dsn::Reporter {
            hostname: self.hostname.clone(),
            return_limit: 0,
            max_lifetime: 0,
        };
        let notice = reporter.notice(&entry, &header, &reports, now);
        let store = Arc::clone(self.store);
        if let Err(e) = blocking(move || store.enqueue(notice)).await {
            tracing::warn!(error = %e, "cannot queue a delivery report");
        }
    }

    /// RFC 2033 §4.2: after the message, one reply per accepted recipient,
    /// in RCPT order. Each recipient is stored on its own so that one full
    /// mailbox does not fail the others.
    async fn deliver_lmtp(
        &mut self,
        tx: &Transaction,
        from: &str,
        envelope: OutboundEnvelope,
        message: Vec<u8>,
    ) {
        let message = Arc::new(message);
        for r in &tx.rcpts {
            let Rcpt::Local {
                given,
                accounts,
                forward,
                ..
            } = r
            else {
                continue;
            };
            let wants_report = self.wants_success_report(from, r);
            let from_for_report = from;
            let store = Arc::clone(self.store);
            let (from, accounts, message) =
                (from.to_string(), accounts.clone(), Arc::clone(&message));
            let remote = forward
                .iter()
                .map(|f| QueuedRecipient::new(f.clone()))
                .collect();
            let envelope_for_report = envelope.clone();
            let message_for_report = Arc::clone(&message);
            let envelope = envelope.clone();
            let now = postamt_wire::time::unix_now() as i64;
            let result = postamt_mda::accept_async(
                store,
                Incoming {
                    from: &from,
                    local: accounts,
                    remote,
                    envelope,
                    content: message.to_vec(),
                    internaldate: now,
                },
            )
            .await;
            if let Ok(report) = &result {
                tracing::info!(peer = %self.ip, recipient = ?given, delivered = report.delivered.len(), queued = report.queued.len(), "LMTP message accepted");
                if wants_report {
                    let header = message_for_report[..header_len(&message_for_report)].to_vec();
                    self.report_success(from_for_report, &[r], envelope_for_report.clone(), header)
                        .await;
                }
            }
            self.reply(match result {
                Ok(_) => Reply::with(R::Ok, format!("<{given}> delivered")),
                Err(DeliveryError::OverQuota(_)) => {
                    Reply::with(R::OverQuota, format!("<{given}> mailbox full"))
                }
                Err(e) => {
                    tracing::error!(error = %e, "LMTP delivery failed");
                    Reply::with(R::TempFail, format!("<{given}> temporary failure"))
                }
            });
        }
    }

    /// A reply to DATA: once, or in LMTP once per recipient.
    fn reply_all(&mut self, tx: &Transaction, r: R) {
        self.reply_all_with(tx, Reply::new(r));
    }

    fn reply_all_with(&mut self, tx: &Transaction, r: Reply) {
        let n = if self.config.mode == Mode::Lmtp {
            tx.rcpts.len().max(1)
        } else {
            1
        };
        for _ in 0..n {
            self.reply(r.clone());
        }
    }

    /// The inbound checks between DATA and delivery. Adds headers it wants
    /// in front of the message to `extra`.
    async fn check_message(
        &self,
        tx: &mut Transaction,
        content: &[u8],
        extra: &mut String,
    ) -> Result<(), Reply> {
        let header = &content[..header_len(content)];
        let headers = mail_parser::MessageParser::default().parse_headers(header);
        // RFC 5321 §6.3: count Received headers to stop loops.
        let received = headers
            .as_ref()
            .map(|m| {
                m.headers()
                    .iter()
                    .filter(|h| h.name == mail_parser::HeaderName::Received)
                    .count()
            })
            .unwrap_or(0);
        if received > self.config.max_received {
            return Err(Reply::new(R::Loop));
        }
        let from_addresses: Vec<String> = headers
            .as_ref()
            .and_then(|m| m.from())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.address())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        match self.config.mode {
            Mode::Submission => {
                // RFC 6409 §8: the MSA may check the From: field.
                for a in &from_addresses {
                    if !self.owns(a) {
                        return Err(Reply::with(
                            R::NotYourAddress,
                            format!("From: <{a}> is not an address of yours"),
                        ));
                    }
                }
                // RFC 6409 §8.3, §8.1: add Message-ID and Date when missing.
                let has = |n: mail_parser::HeaderName<'static>| {
                    headers
                        .as_ref()
                        .is_some_and(|m| m.headers().iter().any(|h| h.name == n))
                };
                if !has(mail_parser::HeaderName::MessageId) {
                    extra.push_str(&format!("Message-ID: <{}@{}>\r\n", new_id(), self.hostname));
                }
                if !has(mail_parser::HeaderName::Date) {
                    extra.push_str(&format!(
                        "Date: {}\r\n",
                        postamt_wire::time::rfc5322_date(postamt_wire::time::unix_now())
                    ));
                }
            }
            Mode::Inbound if self.config.spoof_policy != SpoofPolicy::Off => {
                let domains = self.local_domains();
                let spoofed = from_addresses.iter().find(|a| {
                    a.rsplit_once('@')
                        .is_some_and(|(_, d)| domains.iter().any(|l| l.eq_ignore_ascii_case(d)))
                });
                if let Some(a) = spoofed {
                    if self.config.spoof_policy == SpoofPolicy::Reject {
                        tracing::info!(peer = %self.ip, from = %a, "rejected: unauthenticated From: in a local domain");
                        return Err(Reply::with(
                            R::SpoofedSender,
                            format!(
                                "From: <{a}> is in a local domain, but the client did not authenticate"
                            ),
                        ));
                    }
                    tx.warning.get_or_insert_with(|| {
                        format!(
                            "From: <{a}> claims a local domain, but the client did not authenticate"
                        )
                    });
                }
            }
            _ => {}
        }
        if let Some(w) = &tx.warning {
            extra.push_str(&format!("X-Postamt-Warning: possibly forged: {w}\r\n"));
        }
        Ok(())
    }

    /// RFC 5321 §4.4 trace header, with the RFC 3848 / RFC 6531 protocol
    /// type (ESMTP, ESMTPS, ESMTPSA, UTF8SMTPS, LMTP, …).
    fn received_header(&self, tx: &Transaction, id: &str) -> String {
        let base = match (self.config.mode, self.esmtp, tx.params.smtputf8) {
            (Mode::Lmtp, _, false) => "LMTP",
            (Mode::Lmtp, _, true) => "UTF8LMTP",
            (_, false, _) => "SMTP",
            (_, true, false) => "ESMTP",
            (_, true, true) => "UTF8SMTP",
        };
        let suffix = match (self.tls, self.user.is_some()) {
            (true, true) => "SA",
            (true, false) => "S",
            (false, true) => "A",
            (false, false) => "",
        };
        // RFC 3848 registers the S/A suffixes for ESMTP and LMTP only.
        let suffix = if base == "SMTP" { "" } else { suffix };
        let helo = self
            .helo
            .as_deref()
            .unwrap_or("unknown")
            .chars()
            .filter(|c| !c.is_control())
            .collect::<String>();
        let tls = match &self.tls_info {
            Some((v, c)) if self.tls => format!(
                "\r\n\t(using {} with cipher {})",
                tls_version(v),
                cipher_name(c)
            ),
            _ => String::new(),
        };
        let single = match tx.rcpts.as_slice() {
            [Rcpt::Local { given, .. }] => format!("\r\n\tfor <{given}>"),
            [Rcpt::Remote(q)] => format!("\r\n\tfor <{}>", q.address),
            _ => String::new(),
        };
        format!(
            "Received: from {helo} ([{}])\r\n\tby {} (postamt) with {base}{suffix} id {id}{tls}{single};\r\n\t{}\r\n",
            self.ip,
            self.hostname,
            postamt_wire::time::rfc5322_date(postamt_wire::time::unix_now())
        )
    }
}
