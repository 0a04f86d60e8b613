//! The SMTP client: one connection to one destination host, over which the
//! scheduler sends one message after another. What is said is decided by
//! the sans-IO [`postamt_wire::smtp::dialogue`]; this is its async driver:
//! connecting (next address, next host), reading and writing with the
//! timeouts of RFC 5321 §4.5.3.2, the TLS handshake, and the mapping of
//! the dialogue's errors and outcomes to the queue's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postamt_wire::smtp::dialogue::{self, Auth, Dialogue, Options, Stage, Step, Wait};
use postamt_wire::smtp::{Capabilities, ServerReply};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::route::Host;

/// `[relay] tls`: what to do about STARTTLS (RFC 3207).
pub use postamt_wire::smtp::dialogue::TlsPolicy;
/// The envelope of one transaction and its recipients.
pub use postamt_wire::smtp::dialogue::{Envelope, Login, Recipient};
/// `ORCPT` as RFC 3461 §4.2 writes it, for a recipient that had none.
pub use postamt_wire::smtp::orcpt_for;

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
    /// Login for AUTH (smarthosts).
    pub auth: Option<Login>,
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
            status: r.status(),
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
    dialogue: Dialogue,
    /// `name[ip]:port`, as logs and DSNs name the remote MTA.
    pub remote: String,
    pub remote_name: String,
    pub tls: bool,
    settings: ClientSettings,
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
        let tcp = match timeout(settings.timeouts.connect, TcpStream::connect(addr)).await {
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
        let options = Options {
            starttls: if try_tls {
                settings.tls
            } else {
                TlsPolicy::Off
            },
            auth: match &settings.auth {
                Some(login) => Auth::Required(login.clone()),
                None => Auth::None,
            },
            ..Options::relay(settings.helo_name.clone())
        };
        let mut c = Connection {
            stream: Stream::Plain(tcp),
            dialogue: Dialogue::new(options),
            remote: format!("{}[{}]:{}", host.name, addr.ip(), addr.port()),
            remote_name: host.name.clone(),
            tls: false,
            settings: settings.clone(),
        };
        match c.drive().await? {
            Step::Ready => Ok(c),
            step => Err(c.out_of_step(&step)),
        }
    }

    /// What the server offered in its last EHLO.
    pub fn capabilities(&self) -> &Capabilities {
        self.dialogue.capabilities()
    }

    /// Whether another transaction may follow on this connection.
    pub fn is_usable(&self) -> bool {
        !matches!(self.stream, Stream::Gone) && self.dialogue.is_ready()
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
        self.dialogue.transaction(env, rcpts, content);
        let outcomes = match self.drive().await? {
            Step::Done(outcomes) => outcomes,
            step => return Err(self.out_of_step(&step)),
        };
        // The outcomes are known: a connection that breaks while getting
        // ready for the next transaction (RSET; a server that said 421 and
        // hung up) is only no longer reused.
        let _ = self.drive().await;
        Ok(outcomes.into_iter().map(|o| self.outcome(o)).collect())
    }

    /// QUIT, not waiting long for the answer.
    pub async fn quit(mut self) {
        self.dialogue.quit();
        let _ = self.drive().await;
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

    /// Does what the dialogue asks until it waits for us.
    async fn drive(&mut self) -> Result<Step, ConnError> {
        let t = self.settings.timeouts;
        loop {
            match self.dialogue.next_step() {
                Ok(Step::Send(commands)) => {
                    let mut bytes = Vec::new();
                    for c in &commands {
                        c.write_to(&mut bytes);
                    }
                    self.write(&bytes, t.command).await?;
                }
                Ok(Step::SendContent(content)) => {
                    // Each block with the data-block timeout.
                    for block in content.bytes().chunks(64 * 1024) {
                        self.write(block, t.data_block).await?;
                    }
                }
                Ok(Step::Read(wait)) => {
                    let limit = match wait {
                        Wait::Greeting => t.greeting,
                        Wait::Command => t.command,
                        Wait::Content => t.data_end,
                        Wait::Quit => Duration::from_secs(5),
                    };
                    self.read_reply(limit).await?;
                }
                Ok(Step::StartTls) => {
                    self.start_tls().await?;
                    self.dialogue.tls_established();
                }
                Ok(step) => return Ok(step),
                Err(e) => return Err(self.failure(e)),
            }
        }
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
                Ok(())
            }
            Ok(Err(e)) => Err(ConnError::transient("4.7.0", format!("TLS handshake: {e}"))),
            Err(_) => Err(ConnError::transient("4.7.0", "TLS handshake timed out")),
        }
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

    /// Reads until the dialogue has a whole reply, within `limit`.
    async fn read_reply(&mut self, limit: Duration) -> Result<(), ConnError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = [0u8; 8192];
        loop {
            let read = match &mut self.stream {
                Stream::Plain(s) => tokio::time::timeout_at(deadline, s.read(&mut buf)).await,
                Stream::Tls(s) => tokio::time::timeout_at(deadline, s.read(&mut buf)).await,
                Stream::Gone => return Err(ConnError::transient("4.4.2", "connection closed")),
            };
            match read {
                Ok(Ok(0)) => {
                    return Err(self.broken(format!("{} closed the connection", self.remote)));
                }
                Ok(Ok(n)) => {
                    if self.dialogue.feed(&buf[..n]) {
                        return Ok(());
                    }
                }
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
        ConnError::transient("4.4.2", text)
    }

    /// The dialogue's connection-level errors as the queue reports them.
    fn failure(&mut self, e: dialogue::Error) -> ConnError {
        use dialogue::Error as E;
        match e {
            E::Reply(e) => self.broken(format!("{}: {e}", self.remote)),
            E::Refused(Stage::StartTls, r) => {
                ConnError::transient("4.7.4", format!("STARTTLS refused: {r}"))
            }
            // A refused login is the same at every address: 5xx is final.
            E::Refused(Stage::Auth | Stage::AuthLogin, r) => ConnError::from_reply("AUTH", &r),
            E::Refused(stage, r) => ConnError {
                permanent: false,
                ..ConnError::from_reply(&stage.to_string(), &r)
            },
            E::StartTlsNotOffered => ConnError::transient(
                "4.7.4",
                format!(
                    "TLS is required but {} does not offer STARTTLS",
                    self.remote
                ),
            ),
            E::DataBeforeTls => {
                ConnError::transient("4.7.0", "server sent data before the TLS handshake")
            }
            E::NoAuthMechanism(_) => ConnError::transient(
                "4.7.0",
                format!("{} offers no AUTH PLAIN or LOGIN", self.remote),
            ),
            E::OutOfTurn => self.broken(format!("{}: {e}", self.remote)),
        }
    }

    fn out_of_step(&mut self, step: &Step) -> ConnError {
        self.broken(format!(
            "{}: SMTP dialogue out of step at {step:?}",
            self.remote
        ))
    }

    /// A recipient's outcome as the queue records it (RFC 3464 §2.3.6:
    /// the diagnostic of an SMTP reply is `smtp; …`).
    fn outcome(&self, o: dialogue::Outcome) -> Outcome {
        match &o {
            dialogue::Outcome::Delivered(r) => Outcome::Delivered(r.to_string()),
            dialogue::Outcome::Refused(_, r) if r.is_permanent() => {
                Outcome::Failed(o.status(), format!("smtp; {r}"))
            }
            dialogue::Outcome::Refused(_, r) => Outcome::Deferred(o.status(), format!("smtp; {r}")),
            dialogue::Outcome::NotSent(n) if o.is_permanent() => {
                Outcome::Failed(o.status(), n.describe(&self.remote))
            }
            dialogue::Outcome::NotSent(n) => {
                Outcome::Deferred(o.status(), n.describe(&self.remote))
            }
        }
    }
}

/// The TLS client configuration: verifying against the CA certificates in
/// `ca_file` (PEM), or — for opportunistic encryption, as RFC 7435 and
/// Postfix's `may` level do — encrypting without authenticating the server.
pub fn tls_config(
    verify: bool,
    ca_file: &std::path::Path,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use postamt_server::tls::client::{Trust, config};
    config(&Trust::from_relay(verify, ca_file)).map_err(|e| e.to_string())
}
