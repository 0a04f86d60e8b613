//! postamt's web interface, served by the same binary: a mailbox, the path
//! of a message as a picture, live and past session transcripts explained,
//! compose, the administration, a JSON API under `/api/`, and the
//! autoconfiguration files mail clients ask for.
//!
//! Server-rendered HTML (askama templates compiled into the binary), one
//! vendored script of plain JavaScript for the live views, no Node
//! toolchain. Every page has a JSON twin under `/api/` built from the same
//! view structs.
//!
//! Security (see ARCHITECTURE.md, "The web interface"):
//! - login with the mail account's password through the same
//!   [`AuthThrottle`] as IMAP (failure delay, failures per address);
//! - a session is a random 256-bit token in a cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Secure` under https), issued only at login (a
//!   token the server did not issue is never adopted: no fixation);
//! - every state-changing request carries the session's CSRF token and, if
//!   the browser sends `Origin`/`Sec-Fetch-Site`, comes from this origin;
//! - every object is looked up under the logged-in account (another
//!   user's mailbox, message or transcript is a 404, as if it did not
//!   exist);
//! - every response carries a strict Content-Security-Policy and the usual
//!   security headers; a message's HTML is sanitised (ammonia) and shown
//!   in a sandboxed frame whose own policy blocks scripts and, unless the
//!   reader allows it, remote content;
//! - plain HTTP is served on loopback only (the config refuses other
//!   addresses; `https` uses the `[tls]` certificate).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use postamt_server::{AuthThrottle, ConnectionLimits, Shutdown, TlsManager};
use postamt_store::{Account, SharedStore};

mod admin;
mod api;
mod autoconfig;
mod compose;
mod html;
mod mail;
mod picture;
mod routes;
mod security;
mod sessions;
mod transcripts;

pub use picture::path_svg;
pub use routes::pct;
pub use sessions::Sessions;

/// A boxed future, for the [`Host`] hooks.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the web interface needs from the rest of the server that is not
/// in the store: the binary implements it (DNS checks, DKIM keys, the
/// submission service, the listeners).
pub trait Host: Send + Sync + 'static {
    /// The header analysis of a message (forensics), as `postamt analyze`
    /// makes it with the server's configuration.
    fn analyze(&self, message: Vec<u8>) -> BoxFuture<postamt_analyze::Analysis>;
    /// `postamt domain check`: the records to publish and what DNS says.
    fn domain_check(&self, domain: String) -> BoxFuture<Vec<DomainRecord>>;
    /// The DKIM keys in the key directory.
    fn dkim_keys(&self) -> Vec<DkimKey>;
    /// Generates a DKIM key for `domain` (`postamt dkim generate`).
    fn dkim_generate(&self, domain: &str, selector: &str) -> Result<DkimKey, String>;
    /// Submits a message as `account` through a real submission session
    /// (its transcript is the SMTP dialogue the server held).
    fn submit(
        &self,
        account: Account,
        peer: SocketAddr,
        from: String,
        recipients: Vec<String>,
        content: Vec<u8>,
    ) -> BoxFuture<Submitted>;
    /// The listeners (name, address) the server serves.
    fn listeners(&self) -> Vec<(String, String)>;
    /// Counters for the administration (name, value).
    fn counters(&self) -> Vec<(String, u64)>;
}

/// One DNS record of `domain check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DomainRecord {
    pub what: String,
    pub ok: bool,
    pub publish: String,
    pub found: Vec<String>,
    pub note: String,
}

/// A DKIM key of the key directory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    /// The TXT record to publish at `selector._domainkey.domain`.
    pub record: String,
    pub active: bool,
}

/// How a submission through the compose page ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Submitted {
    /// The last reply of the server (`250 …` when accepted).
    pub reply: String,
    pub accepted: bool,
    /// The transcript of the session, when transcripts are on.
    pub transcript: Option<String>,
    /// The dialogue as the web side saw it (client and server lines).
    pub dialogue: Vec<String>,
}

/// What mail clients are told by autoconfig and Autodiscover.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// The name clients connect to.
    pub hostname: String,
    /// (port, implicit TLS) of each service, best first.
    pub imap: Vec<(u16, bool)>,
    pub pop3: Vec<(u16, bool)>,
    pub submission: Vec<(u16, bool)>,
}

/// `[web]` settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub hostname: String,
    /// Accounts with the administrator role.
    pub admins: Vec<String>,
    /// A login ends after this long without a request...
    pub session_idle: Duration,
    /// ...and after this long in any case.
    pub session_max: Duration,
    /// Logins held at once (the oldest is dropped beyond).
    pub max_sessions: usize,
    /// Largest request body (compose, API).
    pub max_body: usize,
    /// Messages per page of a message list.
    pub page_size: usize,
    /// Time a client has to send a request's header.
    pub header_timeout: Duration,
    /// Time a whole request may take, its body included (long polls and
    /// compose stay well within the default).
    pub request_timeout: Duration,
    /// Connections at once, and per client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub clients: ClientSettings,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            hostname: "localhost".into(),
            admins: Vec::new(),
            session_idle: Duration::from_secs(3600),
            session_max: Duration::from_secs(12 * 3600),
            max_sessions: 10_000,
            max_body: 10 * 1024 * 1024,
            page_size: 50,
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(180),
            max_connections: 2000,
            max_connections_per_ip: 200,
            clients: ClientSettings::default(),
        }
    }
}

/// The web interface: its state, shared by every request.
pub struct Web {
    pub store: SharedStore,
    pub throttle: Arc<AuthThrottle>,
    /// The transcript directory (`None`: transcripts are off).
    pub transcripts: Option<PathBuf>,
    pub host: Arc<dyn Host>,
    pub config: WebConfig,
    pub sessions: Sessions,
    limits: ConnectionLimits,
    /// What autoconfig tells clients: set again once the listeners are
    /// bound (a port of 0 in the config becomes the kernel's choice).
    clients: std::sync::RwLock<ClientSettings>,
    /// Transcripts read for the live views.
    live_cache: transcripts::Cache,
    /// Who waits for which transcript to grow.
    pub(crate) watchers: transcripts::Watchers,
}

impl Web {
    pub fn new(
        store: SharedStore,
        throttle: Arc<AuthThrottle>,
        transcripts: Option<PathBuf>,
        host: Arc<dyn Host>,
        config: WebConfig,
    ) -> Arc<Web> {
        Arc::new(Web {
            sessions: Sessions::new(config.session_idle, config.session_max, config.max_sessions),
            limits: ConnectionLimits::new(config.max_connections, config.max_connections_per_ip),
            clients: std::sync::RwLock::new(config.clients.clone()),
            live_cache: transcripts::Cache::default(),
            watchers: transcripts::Watchers::default(),
            store,
            throttle,
            transcripts,
            host,
            config,
        })
    }

    pub(crate) fn is_admin(&self, address: &str) -> bool {
        self.config
            .admins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(address))
    }

    /// The router of every page, API call and file (for tests and for
    /// [`serve`]).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        routes::router(Arc::clone(self))
    }

    /// What autoconfig and Autodiscover tell mail clients.
    pub fn clients(&self) -> ClientSettings {
        self.clients.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// The listeners as bound: `(service, port)` of each (`imap`, `imaps`,
    /// `pop3`, `pop3s`, `submission`, `submissions`), in the order bound.
    pub fn set_listeners(&self, bound: &[(&str, u16)]) {
        let port = |name: &str| bound.iter().find(|(n, _)| *n == name).map(|(_, p)| *p);
        // RFC 8314 §3: implicit TLS first, then STARTTLS.
        let pair = |implicit: &str, starttls: &str| {
            port(implicit)
                .map(|p| (p, true))
                .into_iter()
                .chain(port(starttls).map(|p| (p, false)))
                .collect::<Vec<_>>()
        };
        if let Ok(mut c) = self.clients.write() {
            c.imap = pair("imaps", "imap");
            c.pop3 = pair("pop3s", "pop3");
            c.submission = pair("submissions", "submission");
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.limits.in_use()
    }
}

/// What a request knows about its connection (set by [`serve`]).
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// Serves the web interface on `listener` until shutdown: plain HTTP, or
/// HTTPS with `tls`. Plain HTTP answers loopback clients only (the config
/// refuses to bind it elsewhere; this is the second lock).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<TlsManager>>,
    web: Arc<Web>,
    mut shutdown: Shutdown,
) {
    let router = web.router();
    loop {
        let global = tokio::select! {
            p = web.limits.acquire_global() => p,
            _ = shutdown.recv() => return,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "web accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.recv() => return,
        };
        if tls.is_none() && !is_loopback(peer.ip()) {
            // Plain HTTP carries passwords and cookies in the clear.
            continue;
        }
        let Some(permit) = web.limits.admit(global, peer.ip()) else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let timeout = web.config.header_timeout;
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = Conn {
                peer,
                tls: tls.is_some(),
            };
            match tls {
                Some(tls) => {
                    let acceptor = tls.acceptor();
                    let hs = tokio::time::timeout(timeout, acceptor.accept(tcp)).await;
                    let Ok(Ok(stream)) = hs else {
                        return;
                    };
                    http_connection(stream, conn, router, timeout, &mut stop).await;
                }
                None => http_connection(tcp, conn, router, timeout, &mut stop).await,
            }
        });
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Largest request header block (hyper's read buffer).
const MAX_HEADER_BUFFER: usize = 64 * 1024;

async fn http_connection<S>(
    stream: S,
    conn: Conn,
    router: axum::Router,
    header_timeout: Duration,
    shutdown: &mut Shutdown,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower_service::Service;
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(conn);
            let mut router = router.clone();
            async move { router.call(req.map(axum::body::Body::new)).await }
        });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BUFFER)
        .serve_connection(TokioIo::new(stream), service);
    let mut http = std::pin::pin!(http);
    tokio::select! {
        _ = http.as_mut() => {}
        _ = shutdown.recv() => {
            http.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
        }
    }
}
