//! The SMTP session: inbound MTA (RFC 5321), message submission (RFC 6409)
//! and LMTP (RFC 2033), one task per connection. It drives the sans-IO
//! [`SmtpCore`] over a connection, in the same shape as the POP3 session:
//! one loop reads a command line (a `select!` over shutdown and the read
//! with its timeout), hands it to the core, and performs the steps the core
//! asks for — directory lookups, the password check, the TLS handshake,
//! reading DATA and BDAT content, storing the message — reporting each
//! result back. The core decides every reply; this file only writes them.
//!
//! Accepted mail goes through `postamt_mda::accept_async`, which returns
//! only when the message is durable: every `250` after DATA/BDAT stands for
//! a committed, fsync'd message.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use postamt_mda::{DeliveryError, Incoming};
use postamt_server::{Connection, Line, Login, Protocol, SessionContext, Transcript};
use postamt_store::{Account, OutboundEnvelope, QueueEntry, QueueId, SharedStore, blocking};
use postamt_wire::meta::header_len;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::core::{Answer, CoreConfig, Delivery, Lookup, LookupFailed, Outcome, SmtpCore, Step};
pub use crate::core::{DmarcPolicy, Mode, SpfPolicy, SpoofPolicy};
use crate::dsn;
use crate::reply::Reply;
use postamt_auth::dkim::{self, Verifier};
use postamt_auth::resolver::Resolver;
use postamt_auth::spf;
use postamt_auth::{arc, dmarc};

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
    /// SPF on the inbound port (`[verify] spf`); off without a resolver.
    pub spf: SpfPolicy,
    /// The DNS that SPF asks.
    pub resolver: Option<Resolver>,
    /// DKIM verification on the inbound port, with the authenticator that
    /// fetches the keys (`[verify] dkim`; off without one).
    pub dkim: Option<Arc<Verifier>>,
    /// DMARC on the inbound port (`[verify] dmarc`; off without a
    /// resolver). It asks the same resolver as SPF.
    pub dmarc: DmarcPolicy,
    /// ARC sealers trusted to excuse a DMARC failure (`[verify]
    /// trusted_arc_sealers`).
    pub trusted_arc_sealers: Vec<String>,
    /// The most one message's verification may wait for DNS; past it, the
    /// result is "temperror" (`[verify] timeout`).
    pub verify_timeout: Duration,
    /// Counts what DMARC saw of each message whose policy domain asks for
    /// aggregate reports (`[verify] dmarc_reports`; with DMARC on).
    pub dmarc_reports: Option<Arc<postamt_auth::report::Collector>>,
    /// Organizational domains by this Public Suffix List (RFC 7489);
    /// `None`: by the DNS tree walk (RFC 9989, `[verify]
    /// organizational_domain`).
    pub public_suffixes: Option<Arc<postamt_auth::psl::Suffixes>>,
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
            spf: SpfPolicy::Off,
            resolver: None,
            dkim: None,
            dmarc: DmarcPolicy::Off,
            trusted_arc_sealers: Vec::new(),
            verify_timeout: Duration::from_secs(20),
            dmarc_reports: None,
            public_suffixes: None,
        }
    }
}

impl SmtpConfig {
    /// What the core needs of the configuration and the connection.
    fn core(
        &self,
        hostname: &str,
        peer: IpAddr,
        tls: Option<(String, String)>,
        plaintext_ok: bool,
    ) -> CoreConfig {
        CoreConfig {
            mode: self.mode,
            hostname: hostname.to_string(),
            peer,
            tls,
            plaintext_ok,
            max_message_size: self.max_message_size,
            max_header_size: self.max_header_size,
            max_recipients: self.max_recipients,
            max_errors: self.max_errors,
            spoof_policy: self.spoof_policy,
            max_received: self.max_received,
            spf: if self.resolver.is_some() {
                self.spf
            } else {
                SpfPolicy::Off
            },
            dkim: self.dkim.is_some(),
            dmarc: if self.resolver.is_some() {
                self.dmarc
            } else {
                DmarcPolicy::Off
            },
            trusted_arc_sealers: self.trusted_arc_sealers.clone(),
            dmarc_reports: self.dmarc_reports.is_some()
                && self.resolver.is_some()
                && self.dmarc != DmarcPolicy::Off,
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

    /// A session already logged in as `account` (the web interface's
    /// compose page, which checked the password at its own login): the
    /// client skips AUTH, everything else is the ordinary session, with
    /// its transcript.
    pub async fn session_as<S>(&self, account: Account, conn: Connection<S>, ctx: SessionContext)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        run_session_as(&self.store, &self.config, conn, ctx, Some(account)).await;
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
        run_session(&self.store, &self.config, conn, ctx).await;
    }
}

/// Replies held back while pipelined commands are answered (RFC 2920);
/// beyond this they are written, and a client that does not read meets
/// backpressure.
const MAX_PENDING_OUTPUT: usize = 64 * 1024;

/// SMTP verbs, which a transcript shows even though they look like base64.
const VERBS: &[&str] = &[
    "HELO", "EHLO", "LHLO", "DATA", "RSET", "NOOP", "QUIT", "HELP", "VRFY", "EXPN", "STARTTLS",
    "AUTH",
];

/// How reading message content ended.
enum Read {
    Done,
    Timeout,
    Closed,
}

pub async fn run_session<S>(
    store: &SharedStore,
    config: &SmtpConfig,
    conn: Connection<S>,
    ctx: SessionContext,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    run_session_as(store, config, conn, ctx, None).await;
}

async fn run_session_as<S>(
    store: &SharedStore,
    config: &SmtpConfig,
    mut conn: Connection<S>,
    mut ctx: SessionContext,
    preauth: Option<Account>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let ip = conn.peer.ip();
    let auth = Arc::clone(&ctx.server.auth);
    let hostname = ctx.server.hostname.clone();
    let plaintext_ok = auth.plaintext_allowed(conn.is_tls(), ip);
    let mut core = SmtpCore::new(config.core(&hostname, ip, conn.tls_info(), plaintext_ok));
    let transcript = ctx.transcript.clone();
    if let Some(account) = preauth {
        if let Some(t) = &transcript {
            t.note("logged in by the web interface (no AUTH on the wire)");
            t.authenticated(&account.address);
        }
        core.preauthenticate(account);
    }
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut step = core.greeting();
    // The verification budget of the message being checked (see deadline).
    let mut budget: Option<Instant> = None;
    'session: loop {
        // Perform the steps until the core waits for the next line.
        loop {
            if let (Some(reports), Some(seen)) = (&config.dmarc_reports, core.take_report()) {
                reports.add(postamt_wire::time::unix_now() as i64, seen);
            }
            match step {
                Step::Reply(replies) => {
                    emit(&mut out, &transcript, &replies);
                    break;
                }
                Step::Close(replies) => {
                    emit(&mut out, &transcript, &replies);
                    break 'session;
                }
                Step::ReadData(reply) => {
                    budget = None;
                    emit(&mut out, &transcript, &[reply]);
                    if !flush(&mut conn, &mut out).await {
                        break 'session;
                    }
                    step = match read_content(&mut conn, &mut core, config.data_timeout).await {
                        Read::Done => content_end(&mut core, &transcript, store),
                        Read::Timeout => core.timeout(),
                        Read::Closed => break 'session,
                    };
                }
                Step::ReadChunk { size } => {
                    budget = None;
                    step = match read_content(&mut conn, &mut core, config.data_timeout).await {
                        Read::Done => {
                            if let Some(t) = &transcript {
                                t.note(&format!("client sent a BDAT chunk of {size} bytes"));
                            }
                            content_end(&mut core, &transcript, store)
                        }
                        Read::Timeout => core.timeout(),
                        Read::Closed => break 'session,
                    };
                }
                Step::StartTls(reply) => {
                    emit(&mut out, &transcript, &[reply]);
                    if !flush(&mut conn, &mut out).await {
                        break 'session;
                    }
                    let acceptor = ctx.server.tls.acceptor();
                    // The buffer is cleared inside start_tls: pipelined
                    // plaintext after STARTTLS is discarded (RFC 3207 §4.2,
                    // CVE-2011-0411).
                    match tokio::time::timeout(config.tls_timeout, conn.start_tls(&acceptor)).await
                    {
                        Ok(Ok(())) => {
                            let (version, cipher) = conn.tls_info().unwrap_or_default();
                            if let Some(t) = &transcript {
                                t.note(&format!("TLS started: {version} {cipher}"));
                            }
                            core.tls_started((version, cipher), auth.plaintext_allowed(true, ip));
                            break;
                        }
                        _ => break 'session,
                    }
                }
                Step::Authenticate { user, password } => {
                    let login = user.clone();
                    let check = password_check(store, user, password);
                    let result = auth.login("submission", ip, &login, check).await;
                    if let Login::Ok(account) = &result {
                        tracing::info!(protocol = "submission", peer = %ip, user = %account.address, tls = conn.is_tls(), "login");
                        if let Some(t) = &transcript {
                            t.authenticated(&account.address);
                        }
                    }
                    step = core.login_result(result);
                }
                Step::Lookup(Lookup::Spf(query)) => {
                    let verdict =
                        check_spf(config, &hostname, &query, deadline(&mut budget, config)).await;
                    if let Some(t) = &transcript {
                        t.note(&format!(
                            "SPF: {} ({})",
                            verdict.result.as_str(),
                            verdict.reason
                        ));
                    }
                    step = core.answer(Answer::Spf(verdict));
                }
                Step::Lookup(Lookup::Dkim) => {
                    let verdicts = check_dkim(
                        config,
                        core.pending_message(),
                        deadline(&mut budget, config),
                    )
                    .await;
                    if let Some(t) = &transcript {
                        for v in &verdicts {
                            t.note(&format!(
                                "DKIM: {} d={} s={}",
                                v.result, v.domain, v.selector
                            ));
                        }
                    }
                    step = core.answer(Answer::Dkim(verdicts));
                }
                Step::Lookup(Lookup::Arc) => {
                    let verdict = check_arc(
                        config,
                        core.pending_message(),
                        deadline(&mut budget, config),
                    )
                    .await;
                    if let Some(t) = &transcript {
                        t.note(&format!("ARC: {} {:?}", verdict.result, verdict.sealers));
                    }
                    step = core.answer(Answer::Arc(verdict));
                }
                Step::Lookup(Lookup::Dmarc(query)) => {
                    let verdict = check_dmarc(config, &query, deadline(&mut budget, config)).await;
                    if let Some(t) = &transcript {
                        t.note(&format!(
                            "DMARC: {} ({})",
                            verdict.result.as_str(),
                            verdict.reason
                        ));
                    }
                    step = core.answer(Answer::Dmarc(verdict));
                }
                Step::Lookup(lookup) => step = core.answer(look_up_inline(store, &lookup)),
                Step::Deliver(delivery) => {
                    let outcomes = deliver(store, &hostname, ip, delivery).await;
                    step = core.delivered(&outcomes);
                }
            }
        }
        // Write before a read that may wait, and whenever replies pile up.
        if (!conn.has_complete_line() || out.len() > MAX_PENDING_OUTPUT)
            && !flush(&mut conn, &mut out).await
        {
            break;
        }
        let read = tokio::select! {
            biased;
            _ = ctx.shutdown.recv() => None,
            r = tokio::time::timeout(config.command_timeout, conn.read_line(config.max_line)) => Some(r),
        };
        step = match read {
            None => core.shutdown(),
            Some(Err(_)) => core.timeout(),
            Some(Ok(Err(_)) | Ok(Ok(Line::Eof))) => break,
            Some(Ok(Ok(Line::TooLong))) => {
                if let Some(t) = &transcript {
                    t.note("client sent an overlong line");
                }
                core.too_long()
            }
            Some(Ok(Ok(Line::Line(line)))) => {
                record_client(&transcript, &core, &line);
                core.line(&line)
            }
        };
    }
    flush(&mut conn, &mut out).await;
    conn.shutdown().await;
    if let Some(t) = &transcript {
        t.note("session ended");
        t.flush();
    }
}

/// Renders replies into the output, and into the transcript.
fn emit(out: &mut Vec<u8>, transcript: &Option<Transcript>, replies: &[Reply]) {
    for r in replies {
        let start = out.len();
        r.render(out);
        if let Some(t) = transcript {
            t.server_lines(&out[start..]);
        }
    }
    // Written out with every reply: `trace follow` shows sessions as
    // they happen.
    if let Some(t) = transcript
        && !replies.is_empty()
    {
        t.flush();
    }
}

async fn flush<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    out: &mut Vec<u8>,
) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = conn.write_all(out).await.is_ok();
    out.clear();
    ok
}

/// Mirrors a client line into the transcript, masking secrets.
fn record_client(t: &Option<Transcript>, core: &SmtpCore, line: &[u8]) {
    let Some(t) = t else { return };
    if core.in_sasl() {
        return t.client_masked("(SASL response)");
    }
    t.client_command(line, VERBS);
}

/// Feeds message content to the core until it has what it asked for: the
/// end of DATA, or the whole BDAT chunk. Each wait for more is bounded by
/// the data block timeout (RFC 5321 §4.5.3.2.5).
async fn read_content<S>(conn: &mut Connection<S>, core: &mut SmtpCore, limit: Duration) -> Read
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while !core.content_done() {
        match tokio::time::timeout(limit, conn.fill_buf_bulk()).await {
            Ok(Ok(buf)) if !buf.is_empty() => {
                let n = core.content(buf);
                conn.consume(n);
            }
            Ok(_) => return Read::Closed,
            Err(_) => return Read::Timeout,
        }
    }
    Read::Done
}

fn content_end(core: &mut SmtpCore, transcript: &Option<Transcript>, store: &SharedStore) -> Step {
    if let (Some(t), Some(message)) = (transcript, core.message_received()) {
        // A recipient whose mail is encrypted at rest: the transcript on
        // the same disk must not hold the message in the clear.
        let accounts = core.local_accounts();
        let sealed = !accounts.is_empty()
            && store
                .smime_certificates(&accounts)
                .map_or(true, |c| !c.is_empty());
        if sealed {
            t.note(&format!(
                "client sent {} bytes of message content, not recorded: a recipient's mail is encrypted at rest",
                message.len()
            ));
        } else {
            t.client_body(message);
        }
    }
    core.content_end(postamt_wire::time::unix_now(), &new_id())
}

static MESSAGE_IDS: AtomicU64 = AtomicU64::new(1);

/// A short unique id for Received headers and queue replies.
fn new_id() -> String {
    let n = MESSAGE_IDS.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{:x}{:04x}{:x}", t, std::process::id() & 0xffff, n)
}

// The store calls of the session, all here.

/// Checks a password (on the blocking pool, through `AuthThrottle::login`).
fn password_check(
    store: &SharedStore,
    user: String,
    password: postamt_wire::Secret<String>,
) -> impl FnOnce() -> Result<Option<postamt_store::Account>, postamt_store::StoreError> + Send + 'static
{
    let store = Arc::clone(store);
    move || store.verify_password(&user, password.expose())
}

/// Directory lookups (local domains, recipients, aliases, quota state) run
/// inline on the session's task, not on the blocking pool: they are
/// indexed reads of small, hot tables through the store's read pool (WAL
/// readers do not wait for the writer), a few microseconds each, while a
/// hop to the blocking pool costs two thread wake-ups — 15 % of the 100 KB
/// SMTP benchmark's throughput for the three lookups of a transaction
/// (bench/README.md, "SMTP"). What writes, fsyncs, hashes a password or
/// scans a mailbox stays on the blocking pool (`blocking`).
fn look_up_inline(store: &SharedStore, lookup: &Lookup) -> Answer {
    match lookup {
        Lookup::LocalDomains => Answer::LocalDomains(store.domains().map_err(|e| {
            tracing::warn!(error = %e, "cannot read the local domains");
            LookupFailed
        })),
        Lookup::Resolve(address) => {
            Answer::Resolved(postamt_mda::resolve(&**store, address).into())
        }
        // Answered by check_spf and check_dkim; the core asks only when
        // they are configured.
        Lookup::Spf(_) => Answer::Spf(spf_temperror("no resolver")),
        Lookup::Dkim => Answer::Dkim(Vec::new()),
        Lookup::Dmarc(_) => Answer::Dmarc(dmarc_temperror("no resolver")),
        Lookup::Arc => Answer::Arc(arc_none()),
    }
}

/// When the current message's checks must be done: `[verify] timeout`
/// from its first check on, shared by SPF, DKIM, ARC and DMARC (one budget
/// per message, not one per check).
fn deadline(budget: &mut Option<Instant>, config: &SmtpConfig) -> Instant {
    *budget.get_or_insert_with(|| Instant::now() + config.verify_timeout)
}

/// The SPF check of a message (RFC 7208), within the verification time
/// budget: the DNS waits, the session's task does not block a worker.
async fn check_spf(
    config: &SmtpConfig,
    hostname: &str,
    q: &crate::core::SpfQuery,
    deadline: Instant,
) -> spf::Verdict {
    let Some(resolver) = &config.resolver else {
        return spf_temperror("no resolver");
    };
    let req = spf::Request {
        ip: q.ip,
        helo: &q.helo,
        receiver: hostname,
        now: postamt_wire::time::unix_now(),
    };
    let limits = spf::Limits::default();
    let check = async {
        if q.helo_identity {
            spf::verify_helo(resolver, &req, limits).await
        } else {
            spf::verify_mail_from(resolver, &req, &q.mail_from, limits).await
        }
    };
    match tokio::time::timeout_at(deadline, check).await {
        Ok(v) => v,
        Err(_) => spf_temperror("DNS did not answer in time"),
    }
}

/// The DKIM verdicts of a message (RFC 6376 §6), within the verification
/// time budget; past it, one "temperror".
async fn check_dkim(
    config: &SmtpConfig,
    message: Option<&[u8]>,
    deadline: Instant,
) -> Vec<dkim::Verdict> {
    let (Some(authenticator), Some(message)) = (&config.dkim, message) else {
        return Vec::new();
    };
    // The keys come through the server's resolver (one cache for all the
    // checks and the relay), into a cache mail-auth reads.
    let work = async {
        match &config.resolver {
            Some(dns) => dkim::verify_through(&authenticator.0, dns, message).await,
            None => dkim::verify(&authenticator.0, message).await,
        }
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(v) => v,
        Err(_) => vec![dkim::Verdict {
            domain: String::new(),
            selector: String::new(),
            algorithm: "rsa-sha256",
            result: "temperror".into(),
            detail: "DNS did not answer in time".into(),
            signs_from: false,
        }],
    }
}

/// DMARC for the message (RFC 7489 §4.3) through the SPF resolver, within
/// the verification time budget.
async fn check_dmarc(
    config: &SmtpConfig,
    q: &crate::core::DmarcQuery,
    deadline: Instant,
) -> dmarc::Verdict {
    let Some(resolver) = &config.resolver else {
        return dmarc_temperror("no resolver");
    };
    let input = dmarc::Input {
        discovery: match &config.public_suffixes {
            Some(list) => dmarc::Discovery::Psl(list),
            None => dmarc::Discovery::TreeWalk,
        },
        from_domain: &q.from_domain,
        spf_pass_domain: q.spf_pass_domain.as_deref(),
        dkim_pass_domains: q.dkim_pass_domains.iter().map(String::as_str).collect(),
    };
    if q.from_domain.is_empty() {
        let mut v = dmarc_temperror("the message has no From: address");
        v.result = dmarc::DmarcResult::None;
        return v;
    }
    match tokio::time::timeout_at(deadline, dmarc::check(resolver, &input)).await {
        Ok(v) => v,
        Err(_) => dmarc_temperror("DNS did not answer in time"),
    }
}

/// The ARC chain of the message (RFC 8617), within the time budget.
async fn check_arc(config: &SmtpConfig, message: Option<&[u8]>, deadline: Instant) -> arc::Verdict {
    let (Some(verifier), Some(message)) = (&config.dkim, message) else {
        return arc_none();
    };
    let work = async {
        match &config.resolver {
            Some(dns) => arc::verify_through(verifier, dns, message).await,
            None => arc::verify(verifier, message).await,
        }
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(v) => v,
        Err(_) => arc::Verdict {
            result: "temperror",
            sealers: Vec::new(),
            detail: "DNS did not answer in time".into(),
        },
    }
}

fn arc_none() -> arc::Verdict {
    arc::Verdict {
        result: "none",
        sealers: Vec::new(),
        detail: String::new(),
    }
}

fn dmarc_temperror(reason: &str) -> dmarc::Verdict {
    dmarc::Verdict {
        result: dmarc::DmarcResult::TempError,
        policy: None,
        testing: false,
        policy_domain: String::new(),
        discovery: "treewalk",
        record: None,
        dkim: dmarc::Alignment::None,
        spf: dmarc::Alignment::None,
        reason: reason.to_string(),
    }
}

fn spf_temperror(reason: &str) -> spf::Verdict {
    spf::Verdict {
        result: spf::SpfResult::TempError,
        domain: String::new(),
        explanation: None,
        reason: reason.to_string(),
    }
}

/// Stores the message, batch by batch (one for SMTP, one per recipient for
/// LMTP), and queues the "delivered" reports of each stored batch. No
/// blocking-pool hop: the store's writer commits (and syncs large content)
/// and wakes this task (`Messages::accept_async`).
async fn deliver(
    store: &SharedStore,
    hostname: &str,
    ip: IpAddr,
    delivery: Delivery,
) -> Vec<Outcome> {
    let Delivery {
        from,
        envelope,
        mut content,
        now,
        id,
        batches,
        quarantine,
    } = delivery;
    let header = batches
        .iter()
        .any(|b| !b.reports.is_empty())
        .then(|| content[..header_len(&content)].to_vec());
    let count = batches.len();
    let mut outcomes = Vec::with_capacity(count);
    for (i, batch) in batches.into_iter().enumerate() {
        // The last batch takes the content; earlier ones (LMTP) a copy.
        let content = if i + 1 == count {
            std::mem::take(&mut content)
        } else {
            content.clone()
        };
        let result = postamt_mda::accept_async(
            Arc::clone(store),
            Incoming {
                from: &from,
                local: batch.local,
                remote: batch.remote,
                envelope: envelope.clone(),
                content,
                internaldate: now as i64,
                junk: quarantine,
            },
        )
        .await;
        match (&result, &batch.recipient) {
            (Ok(r), None) => {
                tracing::info!(peer = %ip, id = %id, delivered = r.delivered.len(), queued = r.queued.len(), "message accepted")
            }
            (Ok(r), Some(given)) => {
                tracing::info!(peer = %ip, recipient = ?given, delivered = r.delivered.len(), queued = r.queued.len(), "LMTP message accepted")
            }
            (Err(DeliveryError::OverQuota(_)), _) => {}
            (Err(e), None) => tracing::error!(error = %e, "delivery failed"),
            (Err(e), Some(_)) => tracing::error!(error = %e, "LMTP delivery failed"),
        }
        if let (Ok(_), Some(header)) = (&result, &header)
            && !batch.reports.is_empty()
        {
            report_success(
                store,
                hostname,
                &from,
                &envelope,
                header,
                batch.reports,
                now,
            )
            .await;
        }
        outcomes.push(Outcome::from(&result));
    }
    outcomes
}

/// Queues a "delivered" report (RFC 3464 `Action: delivered`); the message
/// is already stored, so a failure here is logged, not answered.
async fn report_success(
    store: &SharedStore,
    hostname: &str,
    from: &str,
    envelope: &OutboundEnvelope,
    header: &[u8],
    reports: Vec<dsn::Report>,
    now: u64,
) {
    let now = now as i64;
    let entry = QueueEntry {
        id: QueueId(0),
        created: now,
        next_attempt: now,
        held: false,
        sender: from.to_string(),
        size: header.len() as u64,
        envelope: envelope.clone(),
        recipients: vec![],
        warned: false,
        active: false,
    };
    let reporter = dsn::Reporter {
        hostname: hostname.to_string(),
        return_limit: 0,
        max_lifetime: 0,
    };
    let notice = reporter.notice(&entry, header, &reports, now);
    let store = Arc::clone(store);
    if let Err(e) = blocking(move || store.enqueue(notice)).await {
        tracing::warn!(error = %e, "cannot queue a delivery report");
    }
}
