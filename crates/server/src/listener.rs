//! Accept loops: one task per connection, a global permit taken before
//! `accept()`, a per-IP limit right after, implicit TLS for the `*s` ports.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::auth::AuthThrottle;
use crate::connection::Connection;
use crate::limits::ConnectionLimits;
use crate::shutdown::Shutdown;
use crate::tls::TlsManager;
use crate::transcript::{Transcript, Transcripts};

/// What every session of every protocol shares.
pub struct ServerContext {
    pub hostname: String,
    pub tls: Arc<TlsManager>,
    pub limits: ConnectionLimits,
    pub auth: Arc<AuthThrottle>,
    pub transcripts: Option<Arc<Transcripts>>,
    /// Time a client may stay silent before it is disconnected.
    pub idle_timeout: Duration,
    /// Time an implicit-TLS handshake may take.
    pub tls_timeout: Duration,
}

/// What one session gets.
pub struct SessionContext {
    pub server: Arc<ServerContext>,
    pub shutdown: Shutdown,
    pub transcript: Option<Transcript>,
}

/// A protocol served on a listener: POP3, IMAP, SMTP (MTA, submission, LMTP).
pub trait Protocol: Send + Sync + 'static {
    /// Short name for logs and transcripts (`pop3`).
    fn name(&self) -> &'static str;
    /// Sent to a client refused because its IP has too many connections.
    fn busy_reply(&self) -> &'static [u8];
    /// Runs one session to its end, over TCP, TLS or a unix socket.
    fn session<S>(
        self: Arc<Self>,
        conn: Connection<S>,
        ctx: SessionContext,
    ) -> impl Future<Output = ()> + Send
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
}

/// Accepts connections on `listener` until shutdown.
pub async fn run<P: Protocol>(
    listener: TcpListener,
    implicit_tls: bool,
    protocol: Arc<P>,
    server: Arc<ServerContext>,
    mut shutdown: Shutdown,
) {
    let local = listener.local_addr().ok();
    loop {
        let permit = tokio::select! {
            p = server.limits.acquire_global() => p,
            _ = shutdown.recv() => break,
        };
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.recv() => break,
        };
        let _ = socket.set_nodelay(true);
        let Some(permit) = server.limits.admit(permit, peer.ip()) else {
            tracing::info!(protocol = protocol.name(), %peer, "refused: too many connections from this address");
            if !implicit_tls {
                let busy = protocol.busy_reply();
                tokio::spawn(async move {
                    let mut socket = socket;
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), socket.write_all(busy)).await;
                });
            }
            continue;
        };
        let protocol = Arc::clone(&protocol);
        let server = Arc::clone(&server);
        let session_shutdown = shutdown.clone();
        let local = socket.local_addr().ok().or(local).unwrap_or(peer);
        tokio::spawn(async move {
            let _permit = permit;
            let conn = if implicit_tls {
                let acceptor = server.tls.acceptor();
                let mut stop = session_shutdown.clone();
                let handshake = tokio::time::timeout(server.tls_timeout, acceptor.accept(socket));
                let result = tokio::select! {
                    r = handshake => r,
                    _ = stop.recv() => return,
                };
                match result {
                    Ok(Ok(tls)) => Connection::from_tls(tls, peer, local),
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                }
            } else {
                Connection::new(socket, peer, local)
            };
            let mut conn = conn;
            conn.write_timeout = server.idle_timeout;
            let transcript = server
                .transcripts
                .as_ref()
                .and_then(|t| t.start(protocol.name(), peer));
            // On the implicit-TLS ports (465, 993, 995) the session is
            // under TLS from its first byte: said as after STARTTLS.
            if let (Some(t), true) = (&transcript, implicit_tls) {
                let (version, cipher) = conn.tls_info().unwrap_or_default();
                t.note(&format!(
                    "TLS started: {version} {cipher} (implicit TLS port)"
                ));
            }
            let ctx = SessionContext {
                server,
                shutdown: session_shutdown,
                transcript,
            };
            tracing::debug!(protocol = protocol.name(), %peer, tls = implicit_tls, "connection");
            protocol.session(conn, ctx).await;
        });
    }
}

/// Binds, with SO_REUSEADDR so a restart does not wait for TIME_WAIT.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections on a unix socket (LMTP from a local MTA). Clients of
/// a unix socket count as local: their peer address is 127.0.0.1.
pub async fn run_unix<P: Protocol>(
    listener: tokio::net::UnixListener,
    protocol: Arc<P>,
    server: Arc<ServerContext>,
    mut shutdown: Shutdown,
) {
    let local: SocketAddr = ([127, 0, 0, 1], 0).into();
    loop {
        let permit = tokio::select! {
            p = server.limits.acquire_global() => p,
            _ = shutdown.recv() => break,
        };
        let socket = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.recv() => break,
        };
        let protocol = Arc::clone(&protocol);
        let server = Arc::clone(&server);
        let session_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut conn = Connection::new(socket, local, local);
            conn.write_timeout = server.idle_timeout;
            let transcript = server
                .transcripts
                .as_ref()
                .and_then(|t| t.start(protocol.name(), local));
            let ctx = SessionContext {
                server,
                shutdown: session_shutdown,
                transcript,
            };
            protocol.session(conn, ctx).await;
        });
    }
}
