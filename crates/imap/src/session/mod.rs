//! The IMAP session (RFC 9051 IMAP4rev2 and RFC 3501 IMAP4rev1, with the
//! extensions listed by `capabilities` in [`auth`]): framing with
//! [`Framer`], parsing with [`crate::command::parse`], the store behind it,
//! and the selected mailbox's view kept in step with other sessions through
//! the account's signal (RFC 9051 §7.4.1, §5.2, §5.5).
//!
//! Here: the [`Session`], its run loop (RFC 9051 §5.4 autologout, §5.5
//! pipelining), the output helpers, the error budget and the command
//! dispatch (RFC 9051 §3: which command is valid in which state). Each
//! concern is a room of its own, an `impl Session` block: [`auth`]
//! (CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE, ENABLE, ID, NAMESPACE),
//! [`view`] (SELECT/EXAMINE and keeping the view up to date), [`mailboxes`]
//! (LIST, CREATE, STATUS, quotas, …), [`append`], [`fetch`], [`flags`]
//! (STORE), [`search`] (SEARCH, SORT, THREAD), [`idle`], [`expunge`]
//! (EXPUNGE, CLOSE, UNSELECT) and [`copy`] (COPY, MOVE). Replies are
//! [`Status`] values, written in one place.

use std::sync::Arc;
use std::time::Duration;

use postamt_server::{Connection, Protocol, SessionContext, Transcript};
use postamt_store::{Account, AccountSignal, SharedStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::command::{self, Command, CommandKind};
use crate::frame::{Event, FrameLimits, Framer};
use crate::listing::ListingCache;
use crate::status::{Code, Status};

mod append;
mod auth;
mod copy;
mod expunge;
mod fetch;
mod flags;
mod idle;
mod mailboxes;
mod search;
mod store_access;
mod view;

use store_access::StoreAccess;
use view::{Selected, SpareViews};

#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Longest command line, CRLF included.
    pub max_line: usize,
    /// Longest command (lines and literals) apart from APPEND content.
    pub max_command: usize,
    /// Longest command before login (pre-authentication budget).
    pub max_command_preauth: usize,
    /// Largest message APPEND accepts (advertised as APPENDLIMIT).
    pub max_append: u64,
    /// Protocol errors (BAD) before the server says BYE.
    pub max_errors: u32,
    /// RFC 9051 §5.4: autologout after at least 30 minutes of inactivity.
    pub idle_timeout: Duration,
    /// How long one IDLE may last (clients re-issue it every 29 minutes).
    pub idle_max: Duration,
    pub tls_timeout: Duration,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            max_line: 64 * 1024,
            max_command: 128 * 1024,
            max_command_preauth: 40 * 1024,
            max_append: 50 * 1024 * 1024,
            max_errors: 20,
            idle_timeout: Duration::from_secs(30 * 60),
            idle_max: Duration::from_secs(2 * 60 * 60),
            tls_timeout: Duration::from_secs(30),
        }
    }
}

pub struct Imap {
    store: SharedStore,
    config: ImapConfig,
    listings: ListingCache,
    spare_views: SpareViews,
}

impl Imap {
    pub fn new(store: SharedStore, config: ImapConfig) -> Imap {
        Imap {
            store,
            config,
            listings: Default::default(),
            spare_views: Default::default(),
        }
    }
}

/// What [`Protocol::busy_reply`] sends: [`busy_status`] rendered (a
/// `'static` copy, since the listener sends it without a session; a test
/// keeps the two equal).
const BUSY_REPLY: &[u8] = b"* BYE [UNAVAILABLE] too many connections from your address\r\n";

#[cfg(test)]
fn busy_status() -> Status {
    Status::bye("too many connections from your address").with_code(Code::Unavailable)
}

impl Protocol for Imap {
    fn name(&self) -> &'static str {
        "imap"
    }

    fn busy_reply(&self) -> &'static [u8] {
        BUSY_REPLY
    }

    async fn session<S>(self: Arc<Self>, conn: Connection<S>, ctx: SessionContext)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ip = conn.peer.ip();
        let plaintext_ok = ctx.server.auth.plaintext_allowed(conn.is_tls(), ip);
        let transcript = ctx.transcript.clone();
        let limits = FrameLimits {
            max_line: self.config.max_line,
            max_command: self.config.max_command_preauth,
            max_append: 0,
        };
        let mut s = Session {
            store: StoreAccess::new(&self.store, &self.listings),
            config: &self.config,
            spare_views: &self.spare_views,
            tls: conn.is_tls(),
            conn,
            ctx,
            transcript,
            framer: Framer::new(limits),
            out: Vec::new(),
            user: None,
            selected: None,
            signal: None,
            seen: AccountSignal::default(),
            errors: 0,
            plaintext_ok,
            condstore: false,
            qresync: false,
            utf8: false,
            rev2: false,
            commands: 0,
        };
        s.run().await;
    }
}

/// Output held back while pipelined commands are answered, and written at
/// once in the middle of a long response (256 KiB: a quarter of the writes,
/// and of the client's wake-ups, of 64 KiB; FETCH of 4 KB bodies +12 %).
const MAX_PENDING_OUTPUT: usize = 256 * 1024;

/// Whether the session goes on after a command.
enum Flow {
    Continue,
    Close,
}

/// What a command handler answers: its tagged completion (`OK`, `NO` or
/// `BAD`). A failure is the `Err` side, so that `?` ends a handler early.
type Reply = Result<Status, Status>;

struct Session<'a, S> {
    /// Every store call goes through here (`store_access`).
    store: StoreAccess<'a>,
    config: &'a ImapConfig,
    spare_views: &'a SpareViews,
    conn: Connection<S>,
    ctx: SessionContext,
    transcript: Option<Transcript>,
    framer: Framer,
    out: Vec<u8>,
    user: Option<Account>,
    selected: Option<Selected>,
    /// Changes of the logged-in account (`Coordination::watch_account`), and the
    /// signal the view was last brought up to date with.
    signal: Option<watch::Receiver<AccountSignal>>,
    seen: AccountSignal,
    /// `BAD`s in a row (the error budget).
    errors: u32,
    tls: bool,
    plaintext_ok: bool,
    /// RFC 7162: the client is CONDSTORE-aware (MODSEQ in responses).
    condstore: bool,
    /// RFC 7162 §3.2.3: ENABLE QRESYNC (VANISHED instead of EXPUNGE).
    qresync: bool,
    /// RFC 6855 UTF8=ACCEPT (or IMAP4rev2): UTF-8 names and strings.
    utf8: bool,
    /// RFC 9051 Appendix A: ENABLE IMAP4rev2.
    rev2: bool,
    /// Commands received (for the log line at the end).
    commands: u64,
}

/// RFC 9051 §3, §6: the states a command is valid in (any state; not
/// authenticated; authenticated; selected), and the `BAD` for the others.
fn check_state(kind: &CommandKind, logged_in: bool, selected: bool) -> Result<(), Status> {
    use CommandKind as C;
    match kind {
        C::Capability | C::Noop | C::Logout | C::Id(_) => Ok(()),
        // RFC 9051 §6.2.1: STARTTLS only before authentication.
        C::StartTls if logged_in => Err(Status::bad("STARTTLS is only valid before login")),
        C::StartTls | C::Login { .. } | C::Authenticate { .. } if !logged_in => Ok(()),
        C::Login { .. } | C::Authenticate { .. } => Err(Status::bad("already logged in")),
        _ if !logged_in => Err(Status::bad("log in first (LOGIN or AUTHENTICATE)")),
        C::Enable(_) if selected => Err(Status::bad(
            "ENABLE is only valid before a mailbox is selected (RFC 5161 §3.1)",
        )),
        C::Enable(_)
        | C::Namespace
        | C::Select { .. }
        | C::Create { .. }
        | C::GetQuotaRoot(_)
        | C::GetQuota(_)
        | C::SetQuota(_)
        | C::Delete(_)
        | C::Rename(..)
        | C::Subscribe(_)
        | C::Unsubscribe(_)
        | C::List { .. }
        | C::Status { .. }
        | C::Append { .. }
        | C::Idle => Ok(()),
        _ if !selected => Err(Status::bad("select a mailbox first")),
        _ => Ok(()),
    }
}

/// RFC 9051 §7.4.1: no EXPUNGE may be sent while FETCH, STORE, SEARCH (and
/// SORT, THREAD, COPY) run with sequence numbers; the UID forms allow it.
fn allows_expunge(kind: &CommandKind) -> bool {
    !matches!(
        kind,
        CommandKind::Fetch { uid: false, .. }
            | CommandKind::Store { uid: false, .. }
            | CommandKind::Search { uid: false, .. }
            | CommandKind::Sort { uid: false, .. }
            | CommandKind::Thread { uid: false, .. }
            | CommandKind::Copy {
                uid: false,
                moving: false,
                ..
            }
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    /// One command: parsed, checked against the state (RFC 9051 §3), and
    /// handed to its room. Handlers answer with a [`Reply`] that
    /// [`Session::finish`] sends; the four that run their own exchange with
    /// the client (LOGOUT, STARTTLS, AUTHENTICATE, IDLE) send their tagged
    /// status themselves.
    async fn command(&mut self, bytes: Vec<u8>) -> Flow {
        use CommandKind as C;
        self.commands += 1;
        let cmd = match command::parse(&bytes) {
            Ok(c) => c,
            Err(e) => {
                self.record_client(&bytes, None, "");
                let tag = e.tag.unwrap_or_else(|| "*".into());
                let mut status = Status::bad(e.reason);
                status.code = e.code;
                return self.complete(&tag, status);
            }
        };
        self.record_client(&bytes, Some(&cmd.kind), &cmd.tag);
        let Command { tag, kind } = cmd;
        let allow_expunge = allows_expunge(&kind);
        if let Err(status) = check_state(&kind, self.user.is_some(), self.selected.is_some()) {
            return self.finish(&tag, Err(status), allow_expunge).await;
        }
        let reply = match kind {
            C::Capability => self.capability(),
            C::Noop => Ok(Status::ok("NOOP completed")),
            C::Logout => return self.logout(&tag),
            C::Id(_) => self.id(),
            C::StartTls => return self.starttls(&tag).await,
            C::Login { user, password } => self.login(user, password).await,
            C::Authenticate { mechanism, initial } => {
                return self.authenticate(&tag, &mechanism, initial).await;
            }
            C::Enable(caps) => self.enable(&caps),
            C::Namespace => self.namespace(),
            C::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => self.select(&mailbox, read_only, condstore, qresync).await,
            C::Create { name, uses } => self.create(&name, &uses).await,
            C::GetQuotaRoot(name) => self.get_quota_root(&name),
            C::GetQuota(root) => self.get_quota(&root),
            C::SetQuota(_) => self.set_quota(),
            C::Delete(name) => self.delete(&name).await,
            C::Rename(from, to) => self.rename(&from, &to).await,
            C::Subscribe(name) => self.subscribe(&name, true).await,
            C::Unsubscribe(name) => self.subscribe(&name, false).await,
            C::List {
                reference,
                patterns,
                lsub,
                select,
                returns,
            } => self.list(&reference, &patterns, lsub, &select, returns.as_ref()),
            C::Status { mailbox, items } => self.status(&mailbox, &items),
            C::Append { mailbox, messages } => self.append(&mailbox, messages).await,
            C::Idle => return self.idle(&tag).await,
            C::Check => Ok(Status::ok("CHECK completed")),
            C::Close => self.close().await,
            C::Unselect => self.unselect(),
            C::Expunge { uids } => self.expunge(uids.as_ref()).await,
            C::Search { uid, ret, keys } => self.search(&tag, uid, ret.as_deref(), &keys),
            C::Sort {
                uid,
                criteria,
                keys,
            } => self.sort_or_thread(uid, &keys, Some(&criteria), false),
            C::Thread {
                uid,
                references,
                keys,
            } => self.sort_or_thread(uid, &keys, None, references),
            C::Fetch {
                uid,
                set,
                items,
                changed_since,
                vanished,
            } => self.fetch(uid, &set, &items, changed_since, vanished).await,
            C::Store {
                uid,
                set,
                mode,
                silent,
                flags,
                unchanged_since,
            } => {
                self.store_flags(uid, &set, mode, silent, &flags, unchanged_since)
                    .await
            }
            C::Copy {
                uid,
                set,
                mailbox,
                moving,
            } => self.copy(uid, &set, &mailbox, moving).await,
        };
        self.finish(&tag, reply, allow_expunge).await
    }

    /// The end of every command: other sessions' changes are announced
    /// (RFC 9051 §7.4.1: EXPUNGE only where `allow_expunge`), then the
    /// tagged status.
    async fn finish(&mut self, tag: &str, reply: Reply, allow_expunge: bool) -> Flow {
        if self.selected.is_some() {
            self.sync(allow_expunge).await;
        }
        let status = reply.unwrap_or_else(|failed| failed);
        self.complete(tag, status)
    }

    /// A tagged completion, and the error budget: it counts `BAD`s in a
    /// row (as Dovecot does) and ends the session with `BYE` when they
    /// reach `max_errors`; any other completion starts the count afresh.
    fn complete(&mut self, tag: &str, status: Status) -> Flow {
        self.send_status(tag, &status);
        if !status.is_bad() {
            self.errors = 0;
            return Flow::Continue;
        }
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.untagged_status(Status::bye("too many protocol errors"));
            return Flow::Close;
        }
        Flow::Continue
    }

    async fn run(&mut self) {
        let greeting = Status::ok(format!(
            "{} IMAP4rev1 server (postamt) ready",
            self.ctx.server.hostname
        ))
        .with_code(Code::Capability(self.capabilities()));
        self.untagged_status(greeting);
        loop {
            let event = match self.next_event(self.config.idle_timeout).await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(bye) => {
                    self.untagged_status(bye);
                    break;
                }
            };
            let flow = match event {
                Event::Continue { .. } => {
                    self.continuation("Ready for literal data");
                    // The client waits for this before it sends the literal.
                    if !self.flush().await {
                        break;
                    }
                    Flow::Continue
                }
                Event::TooLong { tag } if self.user.is_none() => {
                    // Pre-authentication budget spent (the CVE-2026-27857
                    // class): no second chance.
                    let tag = tag.unwrap_or_else(|| "*".into());
                    let status = Status::bad("command too long").with_code(Code::TooBig);
                    self.send_status(&tag, &status);
                    self.untagged_status(
                        Status::bye("command too long before login").with_code(Code::TooBig),
                    );
                    Flow::Close
                }
                Event::TooLong { tag } => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    let status = Status::bad("command line too long").with_code(Code::TooBig);
                    self.complete(&tag, status)
                }
                Event::TooBig { tag, sync, append } => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    if append && sync {
                        // RFC 7889 §4: too big for APPENDLIMIT (refused
                        // before the literal; the budget is not touched).
                        let status = Status::no("message too big").with_code(Code::TooBig);
                        self.send_status(&tag, &status);
                        Flow::Continue
                    } else {
                        let status = Status::bad("literal too big").with_code(Code::TooBig);
                        self.complete(&tag, status)
                    }
                }
                Event::Command(bytes) => self.command(bytes).await,
            };
            if matches!(flow, Flow::Close) {
                break;
            }
        }
        let _ = self.flush().await;
        self.conn.shutdown().await;
        if let Some(sel) = self.selected.take() {
            self.spare_views.give(sel.msgs);
        }
        tracing::info!(
            protocol = "imap",
            peer = %self.conn.peer.ip(),
            user = ?self.user.as_ref().map(|u| u.address.as_str()),
            commands = self.commands,
            "session ended"
        );
        if let Some(t) = &self.transcript {
            // Also when the client just went away (no LOGOUT).
            t.note("session ended");
            t.flush();
        }
    }

    /// Reads until the framer has an event. `Ok(None)`: the client left;
    /// `Err`: the `BYE` to end the session with (RFC 9051 §5.4 autologout,
    /// server shutdown).
    async fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Status> {
        loop {
            if self.conn.has_buffered() {
                let buf = self
                    .conn
                    .fill_buf()
                    .await
                    .map_err(|_| Status::bye("read error"))?;
                let (n, ev) = self.framer.feed(buf);
                self.conn.consume(n);
                if let Some(ev) = ev {
                    return Ok(Some(ev));
                }
                continue;
            }
            // Nothing more pipelined: answer before waiting.
            if !self.flush().await {
                return Ok(None);
            }
            let waited = tokio::select! {
                biased;
                _ = self.ctx.shutdown.recv() => return Err(shutting_down()),
                r = tokio::time::timeout(timeout, self.conn.fill_buf()) => r,
            };
            match waited {
                Err(_) => {
                    return Err(Status::bye("autologout: idle for too long (RFC 9051 §5.4)"));
                }
                Ok(Err(_)) => return Ok(None),
                Ok(Ok([])) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    fn record_client(&self, bytes: &[u8], kind: Option<&CommandKind>, tag: &str) {
        let Some(t) = &self.transcript else { return };
        match kind {
            Some(CommandKind::Login { user, .. }) => {
                t.client_masked(&format!("{tag} LOGIN {}", String::from_utf8_lossy(user)))
            }
            Some(CommandKind::Authenticate {
                mechanism,
                initial: Some(_),
            }) => t.client_masked(&format!("{tag} AUTHENTICATE {mechanism}")),
            Some(CommandKind::Append { messages, .. }) => {
                let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
                t.client(first);
                for m in messages {
                    t.client_body(&m.content);
                }
            }
            _ => {
                let mut line = bytes.to_vec();
                line.extend_from_slice(b"\r\n");
                t.client(&line);
            }
        }
    }

    fn record_server(&self, bytes: &[u8]) {
        if let Some(t) = &self.transcript {
            t.server_lines(bytes);
        }
    }

    /// The one way a status goes out: `tag` is `*` for an untagged one.
    fn send_status(&mut self, tag: &str, status: &Status) {
        let start = self.out.len();
        status.write(tag, &mut self.out);
        let Some(t) = &self.transcript else { return };
        t.server(&self.out[start..]);
    }

    fn untagged_status(&mut self, status: Status) {
        self.send_status("*", &status);
    }

    /// Untagged data (`* 3 EXISTS`, `* CAPABILITY …`).
    fn untagged(&mut self, text: &str) {
        let line = format!("* {text}\r\n");
        self.record_server(line.as_bytes());
        self.out.extend_from_slice(line.as_bytes());
    }

    /// A continuation request (`+ text`, RFC 9051 §7.5).
    fn continuation(&mut self, text: &str) {
        let line = format!("+ {text}\r\n");
        self.record_server(line.as_bytes());
        self.out.extend_from_slice(line.as_bytes());
    }

    /// Raw untagged data (FETCH responses with literals).
    fn push_raw(&mut self, data: &[u8]) {
        let start = self.out.len();
        self.out.extend_from_slice(data);
        self.record_pushed(start);
    }

    /// Records what was put into the output buffer from `start` on in the
    /// transcript.
    fn record_pushed(&self, start: usize) {
        if let Some(t) = &self.transcript {
            let data = &self.out[start..];
            // Message octets are summarised, not copied, into transcripts.
            if data.len() > 512 {
                t.server(
                    &data[..data
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(200, |p| p + 1)
                        .min(200)],
                );
                t.note(&format!("({} octets of FETCH data)", data.len()));
            } else {
                self.record_server(data);
            }
        }
    }

    async fn flush(&mut self) -> bool {
        let ok = self.flush_keeping_buffer().await;
        // An idle session keeps no big buffer from one large FETCH.
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
        ok
    }

    /// Writes the pending output and keeps the buffer's capacity: for
    /// the middle of a long response (FETCH of many bodies), which would
    /// otherwise grow a new buffer, reallocation by reallocation, after
    /// every write.
    async fn flush_keeping_buffer(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let ok = self.conn.write_all(&self.out).await.is_ok();
        self.out.clear();
        // The transcript goes out with the responses (`trace follow`).
        if let Some(t) = &self.transcript {
            t.flush();
        }
        ok
    }

    fn utf8(&self) -> bool {
        self.utf8
    }

    fn account(&self) -> &Account {
        self.user.as_ref().expect("logged in")
    }
}

/// The `BYE` every session gets at shutdown (in IDLE too).
fn shutting_down() -> Status {
    Status::bye("server shutting down").with_code(Code::Unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_reply_is_the_rendered_status() {
        assert_eq!(busy_status().line("*"), BUSY_REPLY);
    }

    #[test]
    fn states_rfc9051_section_3() {
        let parse = |s: &str| command::parse(s.as_bytes()).unwrap().kind;
        let bad = |s: &str, logged_in, selected| {
            check_state(&parse(s), logged_in, selected)
                .err()
                .map(|e| e.text.into_owned())
        };
        assert_eq!(bad("a NOOP", false, false), None);
        assert_eq!(bad("a STARTTLS", false, false), None);
        assert_eq!(
            bad("a STARTTLS", true, false).as_deref(),
            Some("STARTTLS is only valid before login")
        );
        assert_eq!(
            bad("a LOGIN u p", true, false).as_deref(),
            Some("already logged in")
        );
        assert_eq!(
            bad("a SELECT INBOX", false, false).as_deref(),
            Some("log in first (LOGIN or AUTHENTICATE)")
        );
        assert_eq!(bad("a SELECT INBOX", true, false), None);
        assert_eq!(
            bad("a FETCH 1 FLAGS", true, false).as_deref(),
            Some("select a mailbox first")
        );
        assert_eq!(bad("a FETCH 1 FLAGS", true, true), None);
        assert!(bad("a ENABLE QRESYNC", true, true).is_some());
        assert_eq!(bad("a IDLE", true, false), None);
    }
}
