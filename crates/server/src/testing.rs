//! In-memory sessions for the protocol crates' tests (feature `testing`):
//! a server context as `postamt serve` makes one, and a protocol's real
//! session over a `tokio::io::duplex` pipe, with the client's end of the
//! pipe. The tests run in virtual time (`#[tokio::test(start_paused =
//! true)]`), so timeouts and login delays take no wall-clock time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf,
};
use tokio::task::JoinHandle;

use crate::{
    AuthPolicy, AuthThrottle, Connection, ConnectionLimits, Protocol, ServerContext,
    SessionContext, ShutdownController, TlsManager,
};

/// The login policy of the tests: a failure waits 2 s, three failures
/// from one address lock it out.
pub fn policy() -> AuthPolicy {
    AuthPolicy {
        failure_delay: Duration::from_secs(2),
        max_failures: 3,
        ..AuthPolicy::default()
    }
}

/// A server context named `mail.test`, with a self-signed certificate in
/// `dir` and the login policy `auth`.
pub fn context(dir: &Path, auth: AuthPolicy) -> Arc<ServerContext> {
    Arc::new(ServerContext {
        hostname: "mail.test".into(),
        tls: Arc::new(TlsManager::new(None, dir, "mail.test").expect("test certificate")),
        limits: ConnectionLimits::new(10, 10),
        auth: Arc::new(AuthThrottle::new(auth)),
        transcripts: None,
        idle_timeout: Duration::from_secs(600),
        tls_timeout: Duration::from_secs(30),
    })
}

/// Runs `protocol`'s session for a client at `peer` (connected to `local`)
/// on a task of its own; returns the client's end of the pipe and the task.
pub fn start<P: Protocol>(
    protocol: &Arc<P>,
    server: &Arc<ServerContext>,
    shutdown: &ShutdownController,
    peer: SocketAddr,
    local: SocketAddr,
) -> (Pipe, JoinHandle<()>) {
    let (server_end, client_end) = tokio::io::duplex(1 << 16);
    let conn = Connection::new(server_end, peer, local);
    let ctx = SessionContext {
        server: Arc::clone(server),
        shutdown: shutdown.handle(),
        transcript: None,
    };
    let task = tokio::spawn(Arc::clone(protocol).session(conn, ctx));
    let (r, w) = tokio::io::split(client_end);
    let pipe = Pipe {
        r: BufReader::new(r),
        w,
    };
    (pipe, task)
}

/// The client's end of an in-memory session.
pub struct Pipe {
    pub r: BufReader<ReadHalf<DuplexStream>>,
    pub w: WriteHalf<DuplexStream>,
}

impl Pipe {
    /// One line from the server, CRLF included ("" once it has closed).
    pub async fn line(&mut self) -> String {
        let mut s = String::new();
        self.r
            .read_line(&mut s)
            .await
            .expect("read from the session");
        s
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.expect("write to the session");
    }

    /// Everything the server sends until it closes the connection.
    pub async fn rest(&mut self) -> String {
        let mut v = Vec::new();
        self.r
            .read_to_end(&mut v)
            .await
            .expect("read from the session");
        String::from_utf8_lossy(&v).into_owned()
    }
}
