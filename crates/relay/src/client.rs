//! The SMTP client: one connection to one destination host, over which the
//! scheduler sends one message after another (RFC 5321 §3.3, §4.1.1.5 RSET
//! between transactions). The protocol pieces — reply parsing, EHLO
//! keywords, dot-stuffing — are the sans-IO [`postamt_wire::smtp`] and
//! [`postamt_wire::dot`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use postamt_wire::smtp::{Capabilities, ReplyParser, ServerReply, path, xtext};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::route::Host;

/// `[relay] tls`: what to do about STARTTLS (RFC 3207).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Use it when offered; fall back to plaintext when it fails (RFC 3207
    /// §4.1 lets a client go on without it; Postfix's `may`).
    Opportunistic,
    /// Never send in plaintext: no STARTTLS → defer (Postfix's `encrypt`).
    Required,
    /// Never use it.
    Off,
}

/// The timeouts of RFC 5321 §4.5.3.2 (and a connect timeout).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Initial 220 greeting: 5 minutes.
    pub greeting: Duration,
    /// EHLO, MAIL, RCPT, RSET, STARTTLS, AUTH replies: 5 minutes; DATA
    /// initiation: 2 minutes (the longer is used).
    pub command: Duration,
    /// Each data block written: 3 minutes.
    pub data_block: Duration,
    /// The reply after the final dot: 10 minutes.
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
        }
    }
}

/// How the client behaves towards every host.
#[derive(Clone)]
pub struct ClientSettings {
    /// Our name in EHLO/HELO.
    pub helo_name: String,
    pub tls: TlsPolicy,
    /// Verifying (CA file) or not (opportunistic encryption) — built once.
    pub tls_config: Arc<rustls::ClientConfig>,
    pub timeouts: Timeouts,
    /// Login for AUTH (smarthosts): (user, password).
    pub auth: Option<(String, String)>,
}

/// A connection-level failure: nothing in flight was delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnError {
    /// Enhanced status code to report (4.x.x: try again).
    pub status: String,
    pub text: String,
    /// A 5xx answer that applies to every recipient (e.g. AUTH refused).
    pub permanent: bool,
}

impl ConnError {
    fn transient(status: &str, text: impl Into<String>) -> ConnError {
        ConnError {
            status: status.into(),
            text: text.into(),
            permanent: false,
        }
    }
    fn from_reply(stage: &str, r: &ServerReply) -> ConnError {
        ConnError {
            status: status_of(r),
            text: format!("{stage}: {r}"),
            permanent: r.is_permanent(),
        }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text)
    }
}

/// The enhanced status code of a reply, or one derived from its class.
pub fn status_of(r: &ServerReply) -> String {
    r.enhanced().unwrap_or_else(|| {
        match r.code / 100 {
            2 => "2.0.0",
            4 => "4.0.0",
            _ => "5.0.0",
        }
        .into()
    })
}

/// The envelope of one transaction.
pub struct Envelope<'a> {
    pub sender: &'a str,
    /// `RET` / `ENVID` (RFC 3461), passed on when the server has DSN.
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
    /// `BODY=` value: `8BITMIME` or `BINARYMIME` (RFC 6152, RFC 3030).
    pub body: Option<&'a str>,
    pub smtputf8: bool,
}

pub struct Recipient<'a> {
    pub address: &'a str,
    pub notify: Option<&'a str>,
    pub orcpt: Option<&'a str>,
}

/// What became of one recipient in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server took responsibility (its reply).
    Delivered(String),
    /// Rejected for good: (status, diagnostic).
    Failed(String, String),
    /// Rejected for now: (status, diagnostic).
    Deferred(String, String),
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// An open, greeted SMTP connection.
pub struct Connection {
    stream: Stream,
    parser: ReplyParser,
    pub caps: Capabilities,
    /// `name[ip]:port`, as logs and DSNs name the remote MTA.
    pub remote: String,
    pub remote_name: String,
    pub tls: bool,
    settings: ClientSettings,
    /// False once a transaction's state is unknown (then no RSET reuse).
    usable: bool,
}

impl Connection {
    /// Connects to the first address of `hosts` that greets us and accepts
    /// our EHLO (next address, then next host, on any failure — RFC 5321
    /// §5.1); returns the last failure when none does.
    pub async fn open(hosts: &[Host], settings: &ClientSettings) -> Result<Connection, ConnError> {
        let mut last = ConnError::transient("4.4.1", "no host to connect to");
        for host in hosts {
            for addr in &host.addrs {
                match Connection::open_one(host, *addr, settings, true).await {
                    Ok(c) => return Ok(c),
                    // Opportunistic TLS that failed in the handshake: that
                    // host again in plaintext (Postfix does the same).
                    Err(e) if e.status == "4.7.0" && settings.tls == TlsPolicy::Opportunistic => {
                        tracing::info!(host = %host.name, %addr, error = %e, "TLS failed; trying without");
                        match Connection::open_one(host, *addr, settings, false).await {
                            Ok(c) => return Ok(c),
                            Err(e) => last = e,
                        }
                    }
                    Err(e) => {
                        tracing::info!(host = %host.name, %addr, error = %e, "cannot use this host");
                        let auth_refused = e.permanent;
                        last = e;
                        if auth_refused {
                            // Credentials are the same at every address.
                            return Err(last);
                        }
                    }
                }
            }
        }
        Err(last)
    }

    async fn open_one(
        host: &Host,
        addr: SocketAddr,
        settings: &ClientSettings,
        try_tls: bool,
    ) -> Result<Connection, ConnError> {
        let t = &settings.timeouts;
        let tcp = match timeout(t.connect, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(ConnError::transient(
                    "4.4.1",
                    format!("connect to {addr}: {e}"),
                ));
            }
            Err(_) => {
                return Err(ConnError::transient(
                    "4.4.1",
                    format!("connect to {addr}: timed out"),
                ));
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut c = Connection {
            stream: Stream::Plain(tcp),
            parser: ReplyParser::new(),
            caps: Capabilities::default(),
            remote: format!("{}[{}]:{}", host.name, addr.ip(), addr.port()),
            remote_name: host.name.clone(),
            tls: false,
            settings: settings.clone(),
            usable: true,
        };
        let greeting = c.reply(t.greeting).await?;
        if greeting.code != 220 {
            return Err(ConnError {
                permanent: false,
                ..ConnError::from_reply("greeting", &greeting)
            });
        }
        c.hello().await?;
        if try_tls && settings.tls != TlsPolicy::Off && c.caps.starttls {
            c.send(b"STARTTLS\r\n").await?;
            let r = c.reply(t.command).await?;
            if r.code != 220 {
                if settings.tls == TlsPolicy::Required {
                    return Err(ConnError::transient(
                        "4.7.4",
                        format!("STARTTLS refused: {r}"),
                    ));
                }
            } else {
                if c.parser.has_buffered() {
                    // RFC 3207 §4.2 (the CVE-2011-0411 shape, server side).
                    return Err(ConnError::transient(
                        "4.7.0",
                        "server sent data before the TLS handshake",
                    ));
                }
                c.start_tls().await?;
                c.hello().await?;
            }
        }
        if settings.tls == TlsPolicy::Required && !c.tls {
            return Err(ConnError::transient(
                "4.7.4",
                format!("TLS is required but {} does not offer STARTTLS", c.remote),
            ));
        }
        if let Some((user, password)) = &settings.auth {
            c.authenticate(user, password).await?;
        }
        Ok(c)
    }

    /// EHLO, falling back to HELO when the server does not know it
    /// (RFC 5321 §3.2).
    async fn hello(&mut self) -> Result<(), ConnError> {
        let t = self.settings.timeouts.command;
        let name = self.settings.helo_name.clone();
        self.send(format!("EHLO {name}\r\n").as_bytes()).await?;
        let r = self.reply(t).await?;
        if r.code == 250 {
            self.caps = Capabilities::from_ehlo(&r);
            return Ok(());
        }
        if r.code == 421 {
            return Err(ConnError::from_reply("EHLO", &r));
        }
        self.send(format!("HELO {name}\r\n").as_bytes()).await?;
        let r = self.reply(t).await?;
        if r.code != 250 {
            return Err(ConnError {
                permanent: false,
                ..ConnError::from_reply("HELO", &r)
            });
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    async fn start_tls(&mut self) -> Result<(), ConnError> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(ConnError::transient("4.7.0", "TLS already active"));
        };
        let name = self.remote_name.trim_matches(['[', ']']).to_string();
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| ConnError::transient("4.7.0", format!("bad TLS server name {name}")))?;
        let connector = TlsConnector::from(Arc::clone(&self.settings.tls_config));
        let handshake = connector.connect(server_name, tcp);
        match timeout(self.settings.timeouts.command, handshake).await {
            Ok(Ok(tls)) => {
                self.stream = Stream::Tls(Box::new(tls));
                self.tls = true;
                self.parser = ReplyParser::new();
                Ok(())
            }
            Ok(Err(e)) => Err(ConnError::transient("4.7.0", format!("TLS handshake: {e}"))),
            Err(_) => Err(ConnError::transient("4.7.0", "TLS handshake timed out")),
        }
    }

    /// AUTH PLAIN, or LOGIN when only that is offered (RFC 4954).
    async fn authenticate(&mut self, user: &str, password: &str) -> Result<(), ConnError> {
        let t = self.settings.timeouts.command;
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let mechs = &self.caps.auth;
        if mechs.iter().any(|m| m == "PLAIN") {
            let token = b64(format!("\0{user}\0{password}").as_bytes());
            self.send(format!("AUTH PLAIN {token}\r\n").as_bytes())
                .await?;
        } else if mechs.iter().any(|m| m == "LOGIN") {
            self.send(b"AUTH LOGIN\r\n").await?;
            let r = self.reply(t).await?;
            if r.code != 334 {
                return Err(ConnError::from_reply("AUTH", &r));
            }
            self.send(format!("{}\r\n", b64(user.as_bytes())).as_bytes())
                .await?;
            let r = self.reply(t).await?;
            if r.code != 334 {
                return Err(ConnError::from_reply("AUTH", &r));
            }
            self.send(format!("{}\r\n", b64(password.as_bytes())).as_bytes())
                .await?;
        } else {
            return Err(ConnError::transient(
                "4.7.0",
                format!("{} offers no AUTH PLAIN or LOGIN", self.remote),
            ));
        }
        let r = self.reply(t).await?;
        if r.code != 235 {
            return Err(ConnError::from_reply("AUTH", &r));
        }
        Ok(())
    }

    /// Whether another transaction may follow on this connection.
    pub fn is_usable(&self) -> bool {
        self.usable
    }

    /// One transaction: MAIL, RCPT for each recipient, DATA or BDAT. The
    /// result has one outcome per recipient, in order; `Err` means the
    /// connection broke and nothing of this transaction is known to have
    /// been delivered.
    pub async fn transaction(
        &mut self,
        env: &Envelope<'_>,
        rcpts: &[Recipient<'_>],
        content: &[u8],
    ) -> Result<Vec<Outcome>, ConnError> {
        let t = self.settings.timeouts;
        let caps = self.caps.clone();
        let size = content.len() as u64;
        // Checks before anything is sent: failures that no retry can fix.
        let refuse = |status: &str, text: String| {
            Ok(rcpts
                .iter()
                .map(|_| Outcome::Failed(status.into(), text.clone()))
                .collect())
        };
        if let Some(max) = caps.size
            && max > 0
            && size > max
        {
            return refuse(
                "5.3.4",
                format!(
                    "message of {size} octets exceeds {}'s limit of {max} (RFC 1870)",
                    self.remote
                ),
            );
        }
        let needs_utf8 =
            env.smtputf8 || !env.sender.is_ascii() || rcpts.iter().any(|r| !r.address.is_ascii());
        if needs_utf8 && !caps.smtputf8 {
            return refuse(
                "5.6.7",
                format!(
                    "{} does not support SMTPUTF8, which this message needs (RFC 6531)",
                    self.remote
                ),
            );
        }
        let body = env.body.map(|b| b.to_ascii_uppercase());
        if body.as_deref() == Some("BINARYMIME") && !(caps.binarymime && caps.chunking) {
            return refuse(
                "5.6.3",
                format!(
                    "{} does not support BINARYMIME (RFC 3030); conversion is not implemented",
                    self.remote
                ),
            );
        }
        if body.as_deref() == Some("8BITMIME") && !caps.eight_bit_mime && caps.esmtp {
            return refuse(
                "5.6.3",
                format!(
                    "{} does not support 8BITMIME (RFC 6152); conversion is not implemented",
                    self.remote
                ),
            );
        }
        // MAIL FROM with the parameters the server understands.
        let mut mail = format!("MAIL FROM:{}", path(env.sender));
        if caps.size.is_some() {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if let Some(b) = &body
            && (caps.eight_bit_mime || caps.binarymime)
        {
            mail.push_str(&format!(" BODY={b}"));
        }
        if needs_utf8 {
            mail.push_str(" SMTPUTF8");
        }
        if caps.dsn {
            if let Some(ret) = env.ret {
                mail.push_str(&format!(" RET={ret}"));
            }
            if let Some(envid) = env.envid {
                mail.push_str(&format!(" ENVID={envid}"));
            }
        }
        mail.push_str("\r\n");
        let rcpt_lines: Vec<String> = rcpts
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
                line.push_str("\r\n");
                line
            })
            .collect();
        let use_bdat = caps.chunking;
        self.usable = false;
        let mail_reply;
        let mut rcpt_replies = Vec::with_capacity(rcpts.len());
        let mut data_reply = None;
        if caps.pipelining {
            // RFC 2920 §3.1: MAIL, RCPTs and DATA in one group.
            let mut group = mail.into_bytes();
            for l in &rcpt_lines {
                group.extend_from_slice(l.as_bytes());
            }
            if !use_bdat {
                group.extend_from_slice(b"DATA\r\n");
            }
            self.send(&group).await?;
            mail_reply = self.reply(t.command).await?;
            for _ in rcpts {
                rcpt_replies.push(self.reply(t.command).await?);
            }
            if !use_bdat {
                data_reply = Some(self.reply(t.command).await?);
            }
        } else {
            self.send(mail.as_bytes()).await?;
            mail_reply = self.reply(t.command).await?;
            if mail_reply.is_positive() {
                for l in &rcpt_lines {
                    self.send(l.as_bytes()).await?;
                    rcpt_replies.push(self.reply(t.command).await?);
                }
            }
        }
        if !mail_reply.is_positive() {
            self.finish_failed_transaction(data_reply.as_ref()).await;
            let (status, diag) = (status_of(&mail_reply), diag(&mail_reply));
            return Ok(rcpts
                .iter()
                .map(|_| reject(&mail_reply, &status, &diag))
                .collect());
        }
        let mut outcomes: Vec<Option<Outcome>> = rcpt_replies
            .iter()
            .map(|r| (!r.is_positive()).then(|| reject(r, &status_of(r), &diag(r))))
            .collect();
        let accepted = outcomes.iter().filter(|o| o.is_none()).count();
        if accepted == 0 {
            self.finish_failed_transaction(data_reply.as_ref()).await;
            return Ok(outcomes.into_iter().flatten().collect());
        }
        let final_reply = if use_bdat {
            let body = postamt_wire::crlf::normalize(content);
            self.send(format!("BDAT {} LAST\r\n", body.len()).as_bytes())
                .await?;
            self.send_data(&body).await?;
            self.reply(t.data_end).await?
        } else {
            let start = match data_reply {
                Some(r) => r,
                None => {
                    self.send(b"DATA\r\n").await?;
                    self.reply(t.command).await?
                }
            };
            if start.code != 354 {
                for o in outcomes.iter_mut().filter(|o| o.is_none()) {
                    *o = Some(reject(&start, &status_of(&start), &diag(&start)));
                }
                self.finish_failed_transaction(None).await;
                return Ok(outcomes.into_iter().flatten().collect());
            }
            let mut data = Vec::new();
            postamt_wire::dot::stuff(content, &mut data);
            self.send_data(&data).await?;
            self.reply(t.data_end).await?
        };
        self.usable = true;
        for o in outcomes.iter_mut().filter(|o| o.is_none()) {
            *o = Some(if final_reply.is_positive() {
                Outcome::Delivered(final_reply.to_string())
            } else {
                reject(&final_reply, &status_of(&final_reply), &diag(&final_reply))
            });
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// After a transaction that sends no content: a pipelined DATA the
    /// server nevertheless answered with 354 gets an empty message ended
    /// at once (RFC 2920 §3.1), then RSET.
    /// The outcomes are known by then, so a connection that breaks here
    /// (a server that said 421 and hung up) is only no longer reused.
    async fn finish_failed_transaction(&mut self, data_reply: Option<&ServerReply>) {
        let result = async {
            if data_reply.is_some_and(|r| r.code == 354) {
                self.send(b".\r\n").await?;
                let _ = self.reply(self.settings.timeouts.data_end).await?;
            }
            self.reset().await
        }
        .await;
        if result.is_err() {
            self.usable = false;
        }
    }

    /// RSET (RFC 5321 §4.1.1.5) so the next transaction starts clean.
    pub async fn reset(&mut self) -> Result<(), ConnError> {
        self.send(b"RSET\r\n").await?;
        let r = self.reply(self.settings.timeouts.command).await?;
        self.usable = r.code == 250;
        Ok(())
    }

    /// QUIT, not waiting long for the answer.
    pub async fn quit(mut self) {
        if self.send(b"QUIT\r\n").await.is_ok() {
            let _ = self.reply(Duration::from_secs(5)).await;
        }
        match &mut self.stream {
            Stream::Plain(s) => {
                let _ = s.shutdown().await;
            }
            Stream::Tls(s) => {
                let _ = s.shutdown().await;
            }
            Stream::Gone => {}
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        let t = self.settings.timeouts.command;
        self.write(bytes, t).await
    }

    /// Writes message content in blocks, each with the data-block timeout.
    async fn send_data(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        let t = self.settings.timeouts.data_block;
        for block in bytes.chunks(64 * 1024) {
            self.write(block, t).await?;
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8], limit: Duration) -> Result<(), ConnError> {
        let result = match &mut self.stream {
            Stream::Plain(s) => timeout(limit, s.write_all(bytes)).await,
            Stream::Tls(s) => {
                timeout(limit, async {
                    s.write_all(bytes).await?;
                    s.flush().await
                })
                .await
            }
            Stream::Gone => return Err(ConnError::transient("4.4.2", "connection closed")),
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.broken(format!("write to {}: {e}", self.remote))),
            Err(_) => Err(self.broken(format!("write to {} timed out", self.remote))),
        }
    }

    async fn reply(&mut self, limit: Duration) -> Result<ServerReply, ConnError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = [0u8; 8192];
        loop {
            match self.parser.next_reply() {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(e) => return Err(self.broken(format!("{}: {e}", self.remote))),
            }
            let read = match &mut self.stream {
                Stream::Plain(s) => tokio::time::timeout_at(deadline, s.read(&mut buf)).await,
                Stream::Tls(s) => tokio::time::timeout_at(deadline, s.read(&mut buf)).await,
                Stream::Gone => return Err(ConnError::transient("4.4.2", "connection closed")),
            };
            match read {
                Ok(Ok(0)) => {
                    return Err(self.broken(format!("{} closed the connection", self.remote)));
                }
                Ok(Ok(n)) => self.parser.feed(&buf[..n]),
                Ok(Err(e)) => return Err(self.broken(format!("read from {}: {e}", self.remote))),
                Err(_) => {
                    return Err(self.broken(format!(
                        "no reply from {} within {} s",
                        self.remote,
                        limit.as_secs()
                    )));
                }
            }
        }
    }

    fn broken(&mut self, text: String) -> ConnError {
        self.stream = Stream::Gone;
        self.usable = false;
        ConnError::transient("4.4.2", text)
    }
}

fn diag(r: &ServerReply) -> String {
    format!("smtp; {r}")
}

fn reject(r: &ServerReply, status: &str, diag: &str) -> Outcome {
    if r.is_permanent() {
        Outcome::Failed(status.into(), diag.into())
    } else {
        Outcome::Deferred(status.into(), diag.into())
    }
}

/// `ORCPT` as RFC 3461 §4.2 writes it, for a recipient that had none.
pub fn orcpt_for(address: &str) -> String {
    let kind = if address.is_ascii() {
        "rfc822"
    } else {
        "utf-8"
    };
    format!("{kind};{}", xtext(address))
}

/// The TLS client configuration: verifying against the CA certificates in
/// `ca_file` (PEM), or — for opportunistic encryption, as RFC 7435 and
/// Postfix's `may` level do — encrypting without authenticating the server.
pub fn tls_config(
    verify: bool,
    ca_file: &std::path::Path,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| format!("{}: {e}", ca_file.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", ca_file.display()))?;
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(format!("{}: no CA certificate", ca_file.display()));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Accepts any certificate but still checks the handshake signatures: the
/// connection is encrypted, the peer not authenticated (RFC 7435).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
