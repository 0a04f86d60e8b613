//! The IMAP session (RFC 3501 IMAP4rev1 with the extensions listed in
//! [`capabilities`]): framing with [`Framer`], parsing with
//! [`crate::command::parse`], the store behind it, and the selected
//! mailbox's view kept in step with other sessions through the store's
//! change feed (RFC 9051 §7.4.1, §5.2, §5.5).

use std::sync::Arc;
use std::time::Duration;

use postamt_server::sasl::{SaslExchange, SaslStep};
use postamt_server::{Connection, Login, Protocol, SessionContext, Transcript};
use postamt_store::{Account, AccountSignal, SharedStore, StoreError};
use postamt_wire::Secret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::command::{
    self, Command, CommandKind, FetchItem, ListReturn, SearchKey, SearchReturn, StatusItem,
    StoreMode,
};

use crate::frame::{Event, FrameLimits, Framer};
use crate::sequence::SequenceSet;
use postamt_wire::imap::mutf7;
use postamt_wire::imap::{self as render, body_structure, envelope, literal, string};

mod append;
mod auth;
mod copy;
mod expunge;
mod fetch;
mod flags;
mod idle;
mod mailboxes;
mod search;
mod view;

use flags::*;
use view::*;

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
            max_line: 8192,
            max_command: 64 * 1024,
            max_command_preauth: 4096,
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
    listings: crate::listing::ListingCache,
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

impl Protocol for Imap {
    fn name(&self) -> &'static str {
        "imap"
    }

    fn busy_reply(&self) -> &'static [u8] {
        b"* BYE [UNAVAILABLE] too many connections from your address\r\n"
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
            store: &self.store,
            config: &self.config,
            listings: &self.listings,
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

/// Output held back while pipelined commands are answered.
const MAX_PENDING_OUTPUT: usize = 64 * 1024;

enum Flow {
    Continue,
    Close,
}

struct Session<'a, S> {
    store: &'a SharedStore,
    config: &'a ImapConfig,
    listings: &'a crate::listing::ListingCache,
    spare_views: &'a SpareViews,
    conn: Connection<S>,
    ctx: SessionContext,
    transcript: Option<Transcript>,
    framer: Framer,
    out: Vec<u8>,
    user: Option<Account>,
    selected: Option<Selected>,
    /// Changes of the logged-in account (`Store::watch_account`), and the
    /// signal the view was last brought up to date with.
    signal: Option<watch::Receiver<AccountSignal>>,
    seen: AccountSignal,
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

/// A tagged `NO` for a store error, with the RFC 5530 response code.
fn store_no(e: &StoreError) -> String {
    match e {
        StoreError::NotFound(_) => "NO [NONEXISTENT] no such mailbox".into(),
        StoreError::AlreadyExists(_) => "NO [ALREADYEXISTS] mailbox already exists".into(),
        StoreError::Invalid(what) => format!("NO [CANNOT] {what}"),
        StoreError::OverQuota => "NO [OVERQUOTA] quota exceeded".into(),
        StoreError::Backend(_) => "NO [UNAVAILABLE] temporary failure, try again".into(),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    fn utf8(&self) -> bool {
        self.utf8
    }

    fn record_server(&self, bytes: &[u8]) {
        if let Some(t) = &self.transcript {
            for line in bytes.split_inclusive(|&b| b == b'\n') {
                t.server(line);
            }
        }
    }

    fn untagged(&mut self, text: &str) {
        let line = format!("* {text}\r\n");
        self.record_server(line.as_bytes());
        self.out.extend_from_slice(line.as_bytes());
    }

    fn tagged(&mut self, tag: &str, text: &str) {
        let line = format!("{tag} {text}\r\n");
        self.record_server(line.as_bytes());
        self.out.extend_from_slice(line.as_bytes());
    }

    /// Raw untagged data (FETCH responses with literals).
    fn push_raw(&mut self, data: &[u8]) {
        if let Some(t) = &self.transcript {
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
        self.out.extend_from_slice(data);
    }

    fn bad(&mut self, tag: &str, reason: &str) -> Flow {
        self.errors += 1;
        self.tagged(tag, &format!("BAD {reason}"));
        if self.errors >= self.config.max_errors {
            self.untagged("BYE too many protocol errors");
            return Flow::Close;
        }
        Flow::Continue
    }

    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let ok = self.conn.write_all(&self.out).await.is_ok();
        self.out.clear();
        // An idle session keeps no big buffer from one large FETCH.
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
        ok
    }

    async fn run(&mut self) {
        let greeting = format!(
            "OK [CAPABILITY {}] {} IMAP4rev1 server (postamt) ready",
            self.capabilities(),
            self.ctx.server.hostname
        );
        self.untagged(&greeting);
        loop {
            let event = match self.next_event(self.config.idle_timeout).await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(why) => {
                    self.untagged(&format!("BYE {why}"));
                    break;
                }
            };
            let flow = match event {
                Event::Continue { .. } => {
                    let line = b"+ Ready for literal data\r\n";
                    self.record_server(line);
                    self.out.extend_from_slice(line);
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
                    self.tagged(&tag, "BAD [TOOBIG] command too long");
                    self.untagged("BYE [TOOBIG] command too long before login");
                    Flow::Close
                }
                Event::TooLong { tag } => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    self.bad(&tag, "[TOOBIG] command line too long")
                }
                Event::TooBig { tag, sync, append } => {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    if append && sync {
                        // RFC 7889 §4: too big for APPENDLIMIT.
                        self.tagged(&tag, "NO [TOOBIG] message too big");
                        Flow::Continue
                    } else {
                        self.bad(&tag, "[TOOBIG] literal too big")
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
            t.flush();
        }
    }

    /// Reads until the framer has an event. `Ok(None)`: the client left.
    async fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, &'static str> {
        loop {
            if self.conn.has_buffered() {
                let buf = self.conn.fill_buf().await.map_err(|_| "read error")?;
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
                _ = self.ctx.shutdown.recv() => return Err("[UNAVAILABLE] server shutting down"),
                r = tokio::time::timeout(timeout, self.conn.fill_buf()) => r,
            };
            match waited {
                Err(_) => return Err("autologout: idle for too long (RFC 9051 §5.4)"),
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

    async fn command(&mut self, bytes: Vec<u8>) -> Flow {
        self.commands += 1;
        let cmd = match command::parse(&bytes) {
            Ok(c) => c,
            Err(e) => {
                self.record_client(&bytes, None, "");
                let tag = e.tag.clone().unwrap_or_else(|| "*".into());
                return self.bad(&tag, &e.to_string());
            }
        };
        self.record_client(&bytes, Some(&cmd.kind), &cmd.tag);
        // The error budget counts BADs in a row (as Dovecot does).
        self.errors = 0;
        let Command { tag, kind } = cmd;
        // Commands during which no EXPUNGE may be sent (RFC 9051 §7.4.1).
        let no_expunge = matches!(
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
        );
        let result = match (self.user.is_some(), self.selected.is_some(), kind) {
            (_, _, CommandKind::Capability) => {
                let caps = self.capabilities();
                self.untagged(&format!("CAPABILITY {caps}"));
                Ok("OK CAPABILITY completed".into())
            }
            (_, _, CommandKind::Noop) => Ok("OK NOOP completed".into()),
            (_, _, CommandKind::Logout) => {
                self.untagged("BYE logging out");
                self.tagged(&tag, "OK LOGOUT completed");
                return Flow::Close;
            }
            (_, _, CommandKind::Id(_)) => {
                self.untagged(&format!(
                    "ID (\"name\" \"postamt\" \"version\" \"{}\")",
                    env!("CARGO_PKG_VERSION")
                ));
                Ok("OK ID completed".into())
            }
            // RFC 9051 §6.2.1: STARTTLS only before authentication.
            (true, _, CommandKind::StartTls) => {
                Err("BAD STARTTLS is only valid before login".into())
            }
            (false, _, CommandKind::StartTls) => return self.starttls(&tag).await,
            (false, _, CommandKind::Login { user, password }) => {
                self.login(&tag, user, password).await
            }
            (false, _, CommandKind::Authenticate { mechanism, initial }) => {
                return self.authenticate(&tag, &mechanism, initial).await;
            }
            (true, _, CommandKind::Login { .. } | CommandKind::Authenticate { .. }) => {
                Err("BAD already logged in".into())
            }
            (false, _, _) => Err("BAD log in first (LOGIN or AUTHENTICATE)".into()),
            (true, true, CommandKind::Enable(_)) => {
                Err("BAD ENABLE is only valid before a mailbox is selected (RFC 5161 §3.1)".into())
            }
            (true, false, CommandKind::Enable(caps)) => {
                // RFC 5161: only what is advertised and not yet enabled is
                // listed; QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
                let mut enabled = String::new();
                let was_condstore = self.condstore;
                for c in caps {
                    match c.as_str() {
                        "CONDSTORE" if !self.condstore => {
                            self.condstore = true;
                            enabled.push_str(" CONDSTORE");
                        }
                        "QRESYNC" if !self.qresync => {
                            self.qresync = true;
                            self.condstore = true;
                            enabled.push_str(" QRESYNC");
                        }
                        "UTF8=ACCEPT" if !self.utf8 => {
                            self.utf8 = true;
                            enabled.push_str(" UTF8=ACCEPT");
                        }
                        "IMAP4REV2" if !self.rev2 => {
                            // RFC 9051: UTF-8 mailbox names, no \Recent,
                            // ESEARCH for every SEARCH.
                            self.rev2 = true;
                            self.utf8 = true;
                            enabled.push_str(" IMAP4rev2");
                        }
                        _ => {}
                    }
                }
                self.untagged(&format!("ENABLED{enabled}"));
                if !was_condstore && self.condstore {
                    self.announce_highestmodseq();
                }
                Ok("OK ENABLE completed".into())
            }
            (true, _, CommandKind::Namespace) => {
                self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
                Ok("OK NAMESPACE completed".into())
            }
            (
                true,
                _,
                CommandKind::Select {
                    mailbox,
                    read_only,
                    condstore,
                    qresync,
                },
            ) => self.select(&mailbox, read_only, condstore, qresync),
            (true, _, CommandKind::Create { name, uses }) => self.create(&name, &uses).await,
            (true, _, CommandKind::GetQuotaRoot(name)) => self.get_quota_root(&name),
            (true, _, CommandKind::GetQuota(root)) => self.get_quota(&root),
            (true, _, CommandKind::SetQuota(_)) => {
                Err("NO [NOPERM] quotas are set by the administrator (postamt user quota)".into())
            }
            (true, _, CommandKind::Delete(name)) => self.delete(&name).await,
            (true, _, CommandKind::Rename(from, to)) => self.rename(&from, &to).await,
            (true, _, CommandKind::Subscribe(name)) => self.subscribe(&name, true).await,
            (true, _, CommandKind::Unsubscribe(name)) => self.subscribe(&name, false).await,
            (
                true,
                _,
                CommandKind::List {
                    reference,
                    patterns,
                    lsub,
                    select,
                    returns,
                },
            ) => self.list(&reference, &patterns, lsub, &select, returns.as_ref()),
            (true, _, CommandKind::Status { mailbox, items }) => self.status(&mailbox, &items),
            (true, _, CommandKind::Append { mailbox, messages }) => {
                self.append(&mailbox, messages).await
            }
            (true, _, CommandKind::Idle) => return self.idle(&tag).await,
            (true, false, _) => Err("BAD select a mailbox first".into()),
            (true, true, CommandKind::Check) => Ok("OK CHECK completed".into()),
            (true, true, CommandKind::Close) => {
                let r = self.expunge_deleted(None, true).await;
                if let Some(sel) = self.selected.take() {
                    self.spare_views.give(sel.msgs);
                }
                r.map(|_| "OK CLOSE completed".to_string())
            }
            (true, true, CommandKind::Unselect) => {
                if let Some(sel) = self.selected.take() {
                    self.spare_views.give(sel.msgs);
                }
                Ok("OK UNSELECT completed".into())
            }
            (true, true, CommandKind::Expunge { uids }) => self
                .expunge_deleted(uids.as_ref(), false)
                .await
                .map(|_| "OK EXPUNGE completed".into()),
            (
                true,
                true,
                CommandKind::Sort {
                    uid,
                    criteria,
                    keys,
                },
            ) => self.sort_or_thread(uid, &keys, Some(&criteria), false),
            (
                true,
                true,
                CommandKind::Thread {
                    uid,
                    references,
                    keys,
                },
            ) => self.sort_or_thread(uid, &keys, None, references),
            (true, true, CommandKind::Search { uid, ret, keys }) => {
                self.search(&tag, uid, ret.as_deref(), &keys)
            }
            (
                true,
                true,
                CommandKind::Fetch {
                    uid,
                    set,
                    items,
                    changed_since,
                    vanished,
                },
            ) => {
                if vanished && !self.qresync {
                    Err("BAD VANISHED needs ENABLE QRESYNC first".into())
                } else {
                    self.fetch(uid, &set, &items, changed_since, vanished).await
                }
            }
            (
                true,
                true,
                CommandKind::Store {
                    uid,
                    set,
                    mode,
                    silent,
                    flags,
                    unchanged_since,
                },
            ) => {
                self.store_flags(uid, &set, mode, silent, &flags, unchanged_since)
                    .await
            }
            (
                true,
                true,
                CommandKind::Copy {
                    uid,
                    set,
                    mailbox,
                    moving,
                },
            ) => self.copy(uid, &set, &mailbox, moving).await,
        };
        // Other sessions' changes, at the end of every command.
        if self.selected.is_some() {
            self.sync(!no_expunge);
        }
        match result {
            Ok(text) => {
                self.tagged(&tag, &text);
                Flow::Continue
            }
            Err(text) => match text.strip_prefix("BAD ") {
                Some(reason) => self.bad(&tag, reason),
                None => {
                    self.tagged(&tag, &text);
                    Flow::Continue
                }
            },
        }
    }
    fn account(&self) -> &Account {
        self.user.as_ref().expect("logged in")
    }
}
