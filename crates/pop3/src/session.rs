//! The POP3 session: drives [`Pop3Core`] over a connection, with the store
//! behind it. One task per connection; the loop is a `select!` over a
//! line read with the idle timeout, and shutdown.

use std::sync::Arc;
use std::time::Duration;

use postamt_server::blocking::read_inline;
use postamt_server::{Connection, Line, Login, Protocol, SessionContext, Transcript};
use postamt_store::{
    FlagOp, Flags, MailboxId, MaildropLock, ModSeq, SharedStore, StoreError, blocking,
};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::core::{
    CoreConfig, Entry, LoginResult, Maildrop, Pop3Core, Reply, Step, render_message,
};

#[derive(Debug, Clone)]
pub struct Pop3Config {
    /// Longest command line accepted, CRLF included (RFC 2449 §4 asks for at
    /// least 255; SASL responses need more).
    pub max_line: usize,
    /// Protocol errors before the server closes the session.
    pub max_errors: u32,
    /// RFC 1939 §3: the autologout timer must be at least 10 minutes.
    pub idle_timeout: Duration,
    /// Time a STLS handshake may take.
    pub tls_timeout: Duration,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            max_line: 1024,
            max_errors: 20,
            idle_timeout: Duration::from_secs(600),
            tls_timeout: Duration::from_secs(30),
        }
    }
}

pub struct Pop3 {
    store: SharedStore,
    config: Pop3Config,
}

impl Pop3 {
    pub fn new(store: SharedStore, config: Pop3Config) -> Pop3 {
        Pop3 { store, config }
    }
}

impl Protocol for Pop3 {
    fn name(&self) -> &'static str {
        "pop3"
    }

    fn busy_reply(&self) -> &'static [u8] {
        b"-ERR [SYS/TEMP] too many connections from your address\r\n"
    }

    async fn session<S>(self: Arc<Self>, conn: Connection<S>, ctx: SessionContext)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        run_session(&self.store, &self.config, conn, ctx).await;
    }
}

/// Mirrors what goes over the wire into the transcript, masking secrets.
fn record_client(t: &Option<Transcript>, core: &Pop3Core, line: &[u8]) {
    let Some(t) = t else { return };
    if core.in_sasl() {
        return t.client_masked("(SASL response)");
    }
    t.client_command(line, VERBS);
}

/// POP3 command keywords, which a transcript shows even though they look
/// like base64.
const VERBS: &[&str] = &[
    "USER", "PASS", "AUTH", "APOP", "CAPA", "STLS", "STAT", "LIST", "UIDL", "RETR", "DELE", "NOOP",
    "RSET", "QUIT",
];

/// Mirrors a response into the transcript, which is written out at once
/// (`trace follow` shows sessions as they happen).
fn record_server(t: &Option<Transcript>, bytes: &[u8], body: bool) {
    let Some(t) = t else { return };
    if !body {
        t.server_lines(bytes);
    } else {
        let mut lines = bytes.split_inclusive(|&b| b == b'\n');
        // The status line, then the message lines (cut after the limit).
        if let Some(first) = lines.next() {
            t.server(first);
        }
        lines.for_each(|line| t.server_body(line));
        t.end_body();
    }
    t.flush();
}

/// Replies held back while pipelined commands are answered; beyond this
/// they are written (and a client that does not read meets backpressure).
const MAX_PENDING_OUTPUT: usize = 64 * 1024;

pub async fn run_session<S>(
    store: &SharedStore,
    config: &Pop3Config,
    mut conn: Connection<S>,
    mut ctx: SessionContext,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let ip = conn.peer.ip();
    let auth = Arc::clone(&ctx.server.auth);
    let mut core = Pop3Core::new(CoreConfig {
        tls: conn.is_tls(),
        tls_available: true,
        plaintext_ok: auth.plaintext_allowed(conn.is_tls(), ip),
        max_errors: config.max_errors,
    });
    let transcript = ctx.transcript.clone();
    let mut out: Vec<u8> = Vec::with_capacity(8192);
    let mut lock: Option<MaildropLock> = None;
    let mut mailbox: Option<MailboxId> = None;
    let greeting = format!(
        "+OK {} POP3 server (postamt) ready\r\n",
        ctx.server.hostname
    );
    record_server(&transcript, greeting.as_bytes(), false);
    out.extend_from_slice(greeting.as_bytes());

    loop {
        // Write before a read that may wait, and whenever replies pile up.
        if (!conn.has_complete_line() || out.len() > MAX_PENDING_OUTPUT) && !out.is_empty() {
            if conn.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        let read = tokio::select! {
            biased;
            _ = ctx.shutdown.recv() => {
                let bye = b"-ERR [SYS/TEMP] server shutting down, try again later\r\n";
                record_server(&transcript, bye, false);
                out.extend_from_slice(bye);
                break;
            }
            r = tokio::time::timeout(config.idle_timeout, conn.read_line(config.max_line)) => r,
        };
        let step = match read {
            Err(_) => {
                // RFC 1939 §3: on autologout the server closes the
                // connection without a response and without UPDATE.
                if let Some(t) = &transcript {
                    t.note("autologout: idle for too long, closing without a reply (RFC 1939 §3)");
                }
                break;
            }
            Ok(Err(_)) | Ok(Ok(Line::Eof)) => break,
            Ok(Ok(Line::TooLong)) => {
                if let Some(t) = &transcript {
                    t.note("client sent an overlong line");
                }
                core.too_long()
            }
            Ok(Ok(Line::Line(line))) => {
                record_client(&transcript, &core, &line);
                core.line(&line)
            }
        };
        let mut step = step;
        // A step may lead to another (login → reply); loop until a reply.
        loop {
            match step {
                Step::Reply(r) => {
                    let start = out.len();
                    r.render(&mut out);
                    record_server(&transcript, &out[start..], false);
                    break;
                }
                Step::Close(r) => {
                    let start = out.len();
                    r.render(&mut out);
                    record_server(&transcript, &out[start..], false);
                    let _ = conn.write_all(&out).await;
                    out.clear();
                    conn.shutdown().await;
                    return finish(&transcript);
                }
                Step::Authenticate { user, password } => {
                    let store = Arc::clone(store);
                    let login = user.clone();
                    // The check also takes the maildrop lock and reads the
                    // listing: all of it on the blocking pool, in one hop.
                    let check = move || -> Result<_, StoreError> {
                        let Some(account) = store.verify_password(&user, password.expose())? else {
                            return Ok(None);
                        };
                        let Some(lock) = store.lock_maildrop(account.id)? else {
                            return Ok(Some(Err(())));
                        };
                        let inbox = store
                            .mailbox(account.id, "INBOX")?
                            .ok_or_else(|| StoreError::NotFound("INBOX".into()))?;
                        let entries = store
                            .messages(inbox.id, ModSeq(0))?
                            .into_iter()
                            .map(|m| Entry {
                                uid: m.uid,
                                size: m.size,
                                deleted: false,
                                retrieved: false,
                            })
                            .collect();
                        let drop = Maildrop {
                            uidvalidity: inbox.uidvalidity.0,
                            entries,
                        };
                        Ok(Some(Ok((lock, inbox.id, drop))))
                    };
                    let result = match auth.login("pop3", ip, &login, check).await {
                        Login::Ok(Ok((l, m, drop))) => {
                            tracing::info!(protocol = "pop3", peer = %conn.peer, user = ?login, messages = drop.entries.len(), tls = conn.is_tls(), "login");
                            if let Some(t) = &transcript {
                                t.authenticated(&login);
                            }
                            lock = Some(l);
                            mailbox = Some(m);
                            LoginResult::Ok(drop)
                        }
                        Login::Ok(Err(())) => {
                            tracing::info!(protocol = "pop3", peer = %conn.peer, user = ?login, "login refused: maildrop in use");
                            LoginResult::Locked
                        }
                        Login::Failed => LoginResult::BadCredentials,
                        Login::Throttled => LoginResult::Throttled,
                        Login::TempFail => LoginResult::TempFail,
                    };
                    step = core.login_result(result);
                }
                Step::Send { uid, size, top } => {
                    let Some(mb) = mailbox else { break };
                    let store = Arc::clone(store);
                    match read_inline(move || store.message_content(mb, uid)) {
                        Ok(Some(content)) => {
                            let start = out.len();
                            let head = if top.is_some() {
                                "+OK top of message follows\r\n".to_string()
                            } else {
                                format!("+OK {size} octets\r\n")
                            };
                            out.extend_from_slice(head.as_bytes());
                            render_message(&content, top, &mut out);
                            record_server(&transcript, &out[start..], true);
                        }
                        Ok(None) => {
                            step =
                                Step::Reply(Reply::err("message was removed by another session"));
                            continue;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "POP3 RETR failed in the store");
                            step = Step::Reply(Reply::err_code(
                                "SYS/TEMP",
                                "temporary failure, try again later",
                            ));
                            continue;
                        }
                    }
                    // Large outputs go out now, not after the whole pipeline.
                    if out.len() > MAX_PENDING_OUTPUT {
                        if conn.write_all(&out).await.is_err() {
                            return finish(&transcript);
                        }
                        out.clear();
                    }
                    break;
                }
                Step::StartTls => {
                    let ok = b"+OK begin TLS negotiation\r\n";
                    record_server(&transcript, ok, false);
                    out.extend_from_slice(ok);
                    if conn.write_all(&out).await.is_err() {
                        return finish(&transcript);
                    }
                    out.clear();
                    let acceptor = ctx.server.tls.acceptor();
                    match tokio::time::timeout(config.tls_timeout, conn.start_tls(&acceptor)).await
                    {
                        Ok(Ok(())) => {
                            if let Some(t) = &transcript {
                                let (v, c) = conn.tls_info().unwrap_or_default();
                                t.note(&format!("TLS started: {v} {c}"));
                            }
                            core.tls_started(auth.plaintext_allowed(true, ip));
                        }
                        _ => return finish(&transcript),
                    }
                    break;
                }
                Step::Update { delete, seen, left } => {
                    let Some(mb) = mailbox else { break };
                    let store = Arc::clone(store);
                    let delete_count = delete.len();
                    let done = blocking::<_, StoreError>(move || {
                        if !seen.is_empty() {
                            store.store_flags(mb, &seen, FlagOp::Add, Flags::SEEN, &[], None)?;
                        }
                        if !delete.is_empty() {
                            store.expunge(mb, &delete)?;
                        }
                        Ok(())
                    })
                    .await;
                    match &done {
                        Ok(()) => {
                            tracing::info!(protocol = "pop3", peer = %conn.peer, deleted = delete_count, left, "logout")
                        }
                        Err(e) => {
                            tracing::error!(protocol = "pop3", peer = %conn.peer, error = %e, "POP3 update failed")
                        }
                    }
                    // RFC 1939 §6: the lock is released with the UPDATE
                    // done, before the reply: a client that reconnects as
                    // soon as it reads +OK finds the maildrop free.
                    drop(lock.take());
                    step = Step::Close(core.update_result(done.is_ok(), left));
                }
            }
        }
    }
    if !out.is_empty() {
        let _ = conn.write_all(&out).await;
    }
    conn.shutdown().await;
    drop(lock);
    finish(&transcript)
}

fn finish(transcript: &Option<Transcript>) {
    if let Some(t) = transcript {
        t.note("session ended");
        t.flush();
    }
}
