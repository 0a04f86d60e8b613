//! The IMAP session (RFC 3501 IMAP4rev1 with the extensions listed in
//! [`capabilities`]): framing with [`Framer`], parsing with
//! [`crate::command::parse`], the store behind it, and the selected
//! mailbox's view kept in step with other sessions through the store's
//! change feed (RFC 9051 §7.4.1, §5.2, §5.5).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use postamt_server::blocking::read_inline;
use postamt_server::sasl::{SaslExchange, SaslStep};
use postamt_server::{Connection, Login, Protocol, SessionContext, Transcript};
use postamt_store::{
    Account, AccountSignal, Delivery, DeliveryTarget, FlagOp, Flags, Mailbox, MessageSummary,
    SharedStore, StoreError, Uid, blocking, canonical_mailbox_name, check_mailbox_name,
    meta::MessageMeta, normalize_crlf_owned,
};
use postamt_wire::Secret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::command::{
    self, Command, CommandKind, FetchItem, ListReturn, SearchKey, SearchReturn, StatusItem,
    StoreMode,
};
use crate::fetch;
use crate::frame::{Event, FrameLimits, Framer};
use crate::sequence::SequenceSet;
use postamt_wire::imap::mutf7;
use postamt_wire::imap::{self as render, body_structure, envelope, literal, string};

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

/// Memory of big views from sessions that ended, reused by the next big
/// SELECT: a 100,000-message view is megabytes, and fresh pages must be
/// faulted in and zeroed (a few ms) while reused ones need not.
#[derive(Default)]
struct SpareViews(std::sync::Mutex<Vec<Vec<Msg>>>);

impl SpareViews {
    const MIN: usize = 10_000;
    const MAX_KEPT: usize = 4;

    fn take(&self, wanted: usize) -> Vec<Msg> {
        if wanted < Self::MIN {
            return Vec::new();
        }
        let Ok(mut spare) = self.0.lock() else {
            return Vec::new();
        };
        match spare.iter().position(|v| v.capacity() >= wanted) {
            Some(i) => spare.swap_remove(i),
            None => Vec::new(),
        }
    }

    fn give(&self, mut v: Vec<Msg>) {
        if v.capacity() < Self::MIN {
            return;
        }
        v.clear();
        if let Ok(mut spare) = self.0.lock()
            && spare.len() < Self::MAX_KEPT
        {
            spare.push(v);
        }
    }
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

/// Messages whose metadata one FETCH reads per store query.
const FETCH_CHUNK: usize = 512;
/// About how much message content one FETCH holds in memory at a time.
const FETCH_CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// Output held back while pipelined commands are answered.
const MAX_PENDING_OUTPUT: usize = 64 * 1024;

/// One message of the selected mailbox as this session knows it.
#[derive(Debug, Clone)]
struct Msg {
    uid: Uid,
    flags: Flags,
    keywords: Vec<String>,
    modseq: u64,
    size: u64,
    internaldate: i64,
    recent: bool,
    /// Expunged by another session, not yet announced (RFC 9051 §7.4.1:
    /// no EXPUNGE during FETCH, STORE or SEARCH).
    gone: bool,
}

impl Msg {
    fn from_summary(m: MessageSummary, recent: bool) -> Msg {
        Msg {
            uid: m.uid,
            flags: m.flags,
            keywords: m.keywords,
            modseq: m.modseq.0,
            size: m.size,
            internaldate: m.internaldate,
            recent,
            gone: false,
        }
    }
}

/// Marks the view for a sync after the account's signal moved from `seen`
/// to `now`: another process wrote (unknown what): re-read the whole
/// mailbox; else read what changed since the view's MODSEQ.
fn mark(sel: &mut Selected, seen: &AccountSignal, now: &AccountSignal) {
    if now.external != seen.external {
        sel.dirty = true;
        sel.full = true;
    } else if now.changes != seen.changes {
        sel.dirty = true;
    }
}

struct Selected {
    mailbox: Mailbox,
    read_only: bool,
    msgs: Vec<Msg>,
    /// A change for this mailbox arrived on the feed since the last sync.
    dirty: bool,
    /// The result of the last `SEARCH RETURN (SAVE)`, as UIDs (`$`, RFC
    /// 5182); expunged messages leave it.
    saved: Vec<Uid>,
    /// The MODSEQ the view is up to date with: a sync reads only what
    /// changed after it (and what was expunged after it).
    modseq: u64,
    /// Catch up by re-reading the whole listing (events were lost, or
    /// another process wrote).
    full: bool,
}

impl Selected {
    fn max_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.uid.0)
    }

    /// Indices of the messages `set` names (sequence numbers or UIDs).
    fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, String> {
        if set.is_saved() {
            return Ok((0..self.msgs.len())
                .filter(|&i| self.saved.contains(&self.msgs[i].uid))
                .collect());
        }
        if uid {
            let max = self.max_uid();
            Ok((0..self.msgs.len())
                .filter(|&i| set.contains(self.msgs[i].uid.0, max))
                .collect())
        } else {
            let n = self.msgs.len() as u32;
            if set.exceeds(n) {
                return Err("invalid message sequence number".into());
            }
            Ok((0..self.msgs.len())
                .filter(|&i| set.contains(i as u32 + 1, n))
                .collect())
        }
    }
}

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

/// [`flag_names`] written straight into a response.
fn write_flags(out: &mut Vec<u8>, flags: Flags, keywords: &[String], recent: bool) {
    out.push(b'(');
    let system: Vec<&str> = flags.names().chain(recent.then_some("\\Recent")).collect();
    for (i, n) in system
        .iter()
        .copied()
        .chain(keywords.iter().map(String::as_str))
        .enumerate()
    {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(n.as_bytes());
    }
    out.push(b')');
}

fn flag_names(flags: Flags, keywords: &[String], recent: bool) -> String {
    let mut v: Vec<&str> = flags.names().collect();
    if recent {
        v.push("\\Recent");
    }
    v.extend(keywords.iter().map(String::as_str));
    format!("({})", v.join(" "))
}

/// Splits client flag names into system flags and keywords; `\Recent` is
/// ignored (it cannot be stored, RFC 3501 §2.3.2).
fn split_flags(names: &[String]) -> Result<(Flags, Vec<String>), String> {
    let mut flags = Flags::empty();
    let mut keywords = Vec::new();
    for n in names {
        if let Some(sys) = n.strip_prefix('\\') {
            if sys.eq_ignore_ascii_case("Recent") {
                continue;
            }
            flags = flags
                .union(Flags::from_name(n).ok_or_else(|| format!("unknown system flag \\{sys}"))?);
        } else if !keywords.contains(n) {
            keywords.push(n.clone());
        }
    }
    Ok((flags, keywords))
}

/// RFC 3501 LIST wildcards: `*` matches anything, `%` anything but `/`.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| matches(rest, &name[i..])),
        Some((b'%', rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != b'/')
            .any(|i| matches(rest, &name[i..])),
        Some((&c, rest)) => name.first() == Some(&c) && matches(rest, &name[1..]),
    }
}

/// The same, with `INBOX` matched case-insensitively.
fn list_matches(pattern: &str, name: &str) -> bool {
    let canon = |s: &str| canonical_mailbox_name(s);
    let p = match (pattern.get(..5), pattern.get(5..)) {
        (Some(head), Some(rest)) if head.eq_ignore_ascii_case("INBOX") => format!("INBOX{rest}"),
        _ => pattern.to_string(),
    };
    // Bound the work of hostile patterns: many stars on long names.
    if p.bytes().filter(|&b| b == b'*' || b == b'%').count() > 8 {
        return false;
    }
    matches(p.as_bytes(), canon(name).as_bytes())
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    fn utf8(&self) -> bool {
        self.utf8
    }

    fn capabilities(&self) -> String {
        let mut c = vec!["IMAP4rev1".to_string(), "IMAP4rev2".to_string()];
        if !self.tls {
            c.push("STARTTLS".into());
        }
        if self.user.is_none() {
            if self.plaintext_ok {
                c.push("AUTH=PLAIN".into());
                c.push("AUTH=LOGIN".into());
            } else {
                c.push("LOGINDISABLED".into());
            }
        }
        for x in [
            "SASL-IR",
            "LITERAL+",
            "ID",
            "ENABLE",
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CONDSTORE",
            "QRESYNC",
            "ESEARCH",
            "SEARCHRES",
            "BINARY",
            "MULTIAPPEND",
            "SORT",
            "SORT=DISPLAY",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "UTF8=ACCEPT",
            "WITHIN",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "STATUS=SIZE",
            "CREATE-SPECIAL-USE",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "CHILDREN",
            "SPECIAL-USE",
        ] {
            c.push(x.into());
        }
        c.push(format!("APPENDLIMIT={}", self.config.max_append));
        c.join(" ")
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

    async fn starttls(&mut self, tag: &str) -> Flow {
        if self.tls {
            return self.bad(tag, "TLS is already active");
        }
        self.tagged(tag, "OK begin TLS negotiation now");
        if !self.flush().await {
            return Flow::Close;
        }
        // RFC 9051 §6.2.1 / CVE-2011-0411: bytes pipelined after STARTTLS
        // are discarded, in the framer and in the connection.
        self.framer = Framer::new(FrameLimits {
            max_line: self.config.max_line,
            max_command: self.config.max_command_preauth,
            max_append: 0,
        });
        let acceptor = self.ctx.server.tls.acceptor();
        match tokio::time::timeout(self.config.tls_timeout, self.conn.start_tls(&acceptor)).await {
            Ok(Ok(())) => {
                self.tls = true;
                self.plaintext_ok = true;
                if let Some(t) = &self.transcript {
                    t.note("TLS established");
                }
                Flow::Continue
            }
            _ => Flow::Close,
        }
    }

    fn logged_in(&mut self, account: Account) {
        tracing::info!(protocol = "imap", peer = %self.conn.peer.ip(), user = %account.address, tls = self.tls, "login");
        let mut signal = self.store.watch_account(account.id);
        self.seen = *signal.borrow_and_update();
        self.signal = Some(signal);
        self.user = Some(account);
        self.framer.set_limits(FrameLimits {
            max_line: self.config.max_line,
            max_command: self.config.max_command,
            max_append: self.config.max_append,
        });
    }

    async fn check_password(
        &mut self,
        user: String,
        password: Secret<String>,
    ) -> Result<String, String> {
        let ip = self.conn.peer.ip();
        let auth = Arc::clone(&self.ctx.server.auth);
        let store = Arc::clone(self.store);
        // Pipelined responses go out before a failure's delay.
        let _ = self.flush().await;
        let login = user.clone();
        let check = move || store.verify_password(&user, password.expose());
        match auth.login("imap", ip, &login, check).await {
            Login::Ok(account) => {
                self.logged_in(account);
                Ok(format!("OK [CAPABILITY {}] logged in", self.capabilities()))
            }
            Login::Failed => Err("NO [AUTHENTICATIONFAILED] invalid credentials".into()),
            Login::Throttled => {
                Err("NO [UNAVAILABLE] too many failed logins from your address, try later".into())
            }
            Login::TempFail => Err("NO [UNAVAILABLE] temporary failure, try again".into()),
        }
    }

    async fn login(
        &mut self,
        _tag: &str,
        user: Vec<u8>,
        password: Secret<Vec<u8>>,
    ) -> Result<String, String> {
        if !self.plaintext_ok {
            return Err("NO [PRIVACYREQUIRED] use STARTTLS before LOGIN".into());
        }
        let (Ok(user), Ok(password)) = (
            String::from_utf8(user),
            String::from_utf8(password.expose().clone()),
        ) else {
            return Err("NO [AUTHENTICATIONFAILED] invalid credentials".into());
        };
        self.check_password(user, Secret::new(password)).await
    }

    async fn authenticate(
        &mut self,
        tag: &str,
        mechanism: &str,
        initial: Option<Secret<String>>,
    ) -> Flow {
        if !self.plaintext_ok {
            self.tagged(tag, "NO [PRIVACYREQUIRED] use STARTTLS before AUTHENTICATE");
            return Flow::Continue;
        }
        let initial = initial.as_ref().map(|i| i.expose().as_str());
        let Some((mut exchange, mut step)) = SaslExchange::start(mechanism, initial) else {
            self.tagged(tag, "NO [CANNOT] unsupported mechanism (PLAIN, LOGIN)");
            return Flow::Continue;
        };
        loop {
            match step {
                SaslStep::Challenge(c) => {
                    let line = format!("+ {c}\r\n");
                    self.record_server(line.as_bytes());
                    self.out.extend_from_slice(line.as_bytes());
                    let line = match self.next_event(self.config.idle_timeout).await {
                        Ok(Some(Event::Command(l))) => l,
                        Ok(Some(_)) => {
                            self.tagged(tag, "BAD bad SASL response");
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
                    // RFC 9051 §6.2.2: BAD when cancelled, NO when the
                    // exchange itself failed.
                    if cancelled {
                        self.tagged(tag, "BAD authentication cancelled");
                    } else {
                        self.tagged(tag, &format!("NO [AUTHENTICATIONFAILED] {reason}"));
                    }
                    return Flow::Continue;
                }
                SaslStep::Done { user, password } => {
                    let r = self.check_password(user, password).await;
                    let text = r.unwrap_or_else(|e| e);
                    self.tagged(tag, &text);
                    return Flow::Continue;
                }
            }
        }
    }

    fn account(&self) -> &Account {
        self.user.as_ref().expect("logged in")
    }

    /// A mailbox name from the client: modified UTF-7 decoded (a name that
    /// is not valid modified UTF-7 is taken as UTF-8), INBOX canonical.
    fn name_in(&self, raw: &[u8]) -> Result<String, String> {
        let s = String::from_utf8(raw.to_vec()).map_err(|_| "BAD mailbox name is not UTF-8")?;
        let name = if self.utf8() {
            s
        } else {
            // RFC 3501 §5.1.3: a rev1 client without UTF8=ACCEPT sends
            // modified UTF-7; anything else is refused, not guessed at.
            mutf7::decode(&s).ok_or("NO [CANNOT] mailbox name is not valid modified UTF-7")?
        };
        Ok(canonical_mailbox_name(&name))
    }

    /// Names made by CREATE and RENAME: also no `.` or `..` levels (they
    /// mean something else in every file-based store a user may migrate to).
    fn new_name_in(&self, raw: &[u8]) -> Result<String, String> {
        let name = self.name_in(raw)?.trim_end_matches('/').to_string();
        check_mailbox_name(&name).map_err(|e| store_no(&e))?;
        if name.split('/').any(|l| l == "." || l == "..") {
            return Err("NO [CANNOT] . and .. are not mailbox names".into());
        }
        Ok(name)
    }

    fn name_out(&self, name: &str) -> Vec<u8> {
        let enc = if self.utf8() {
            name.to_string()
        } else {
            mutf7::encode(name)
        };
        let mut out = Vec::new();
        string(&mut out, enc.as_bytes(), self.utf8());
        out
    }

    fn find_mailbox(&self, name: &str) -> Result<Mailbox, String> {
        let account = self.account().id;
        let store = Arc::clone(self.store);
        match read_inline(|| store.mailbox(account, name)) {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err("NO [NONEXISTENT] no such mailbox".into()),
            Err(e) => Err(store_no(&e)),
        }
    }

    /// `* OK [HIGHESTMODSEQ n]` for the selected mailbox (RFC 7162 §3.1.2.1).
    fn announce_highestmodseq(&mut self) {
        let Some(sel) = &self.selected else { return };
        let store = Arc::clone(self.store);
        let (account, name) = (sel.mailbox.account, sel.mailbox.name.clone());
        if let Ok(Some(m)) = read_inline(|| store.mailbox(account, &name)) {
            self.untagged(&format!("OK [HIGHESTMODSEQ {}] highest", m.highestmodseq.0));
        }
    }

    /// One message's flags as an untagged FETCH (with MODSEQ for
    /// CONDSTORE-aware clients).
    fn flags_line(&self, seq: usize, m: &Msg, with_uid: bool) -> String {
        let uid = if with_uid {
            format!("UID {} ", m.uid.0)
        } else {
            String::new()
        };
        let modseq = if self.condstore {
            format!(" MODSEQ ({})", m.modseq)
        } else {
            String::new()
        };
        format!(
            "{seq} FETCH ({uid}FLAGS {}{modseq})",
            flag_names(m.flags, &m.keywords, m.recent && !self.rev2)
        )
    }

    /// Announces expunged messages: `* VANISHED uids` once QRESYNC is
    /// enabled (RFC 7162 §3.2.10), else one `* n EXPUNGE` each. `gone` are
    /// (sequence number, UID) pairs, highest sequence number first.
    fn announce_expunged(&mut self, gone: &[(usize, u32)]) {
        if gone.is_empty() {
            return;
        }
        if self.qresync {
            let mut uids: Vec<u32> = gone.iter().map(|g| g.1).collect();
            uids.sort_unstable();
            self.untagged(&format!("VANISHED {}", SequenceSet::compact(&uids)));
        } else {
            for (seq, _) in gone {
                self.untagged(&format!("{seq} EXPUNGE"));
            }
        }
    }

    fn select(
        &mut self,
        raw: &[u8],
        read_only: bool,
        condstore: bool,
        qresync: Option<command::Qresync>,
    ) -> Result<String, String> {
        if qresync.is_some() && !self.qresync {
            // RFC 7162 §3.2.5.
            return Err("BAD QRESYNC parameter without ENABLE QRESYNC".into());
        }
        if condstore {
            self.condstore = true;
        }
        // The old view's memory is reused for the new one (a big mailbox's
        // view is megabytes: no fresh pages to fault in and zero).
        let mut reuse: Vec<Msg> = Vec::new();
        if let Some(old) = self.selected.take() {
            reuse = old.msgs;
            reuse.clear();
            if self.qresync || self.rev2 {
                // RFC 7162 §3.2.11: the old mailbox is closed first.
                self.untagged("OK [CLOSED] previous mailbox closed");
            }
        }
        // RFC 9051 §6.3.2: a failed SELECT leaves no mailbox selected.
        let name = self.name_in(raw)?;
        let mailbox = self.find_mailbox(&name)?;
        // The view will be up to date with this MODSEQ: read before the
        // listing, so nothing committed meanwhile is missed later.
        let view_modseq = mailbox.highestmodseq.0;
        let store = Arc::clone(self.store);
        let id = mailbox.id;
        let listings = self.listings;
        let (listing, recent_from) = read_inline(|| {
            // \Recent: only a session that finds unclaimed messages writes.
            let mut recent = store.claim_recent(id, false)?;
            if !read_only && recent < mailbox.uidnext {
                recent = store.claim_recent(id, true)?;
            }
            Ok((listings.listing(&*store, &mailbox)?, recent))
        })
        .map_err(|e| store_no(&e))?;
        let mut msgs = if reuse.capacity() >= listing.msgs.len() {
            reuse
        } else {
            self.spare_views.give(reuse);
            self.spare_views.take(listing.msgs.len())
        };
        msgs.extend(listing.msgs.iter().map(|m| {
            let recent = m.uid >= recent_from;
            Msg::from_summary(m.clone(), recent)
        }));
        // The listing may be newer than the mailbox row read before it.
        let mut mailbox = mailbox;
        if let Some(last) = msgs.last() {
            mailbox.uidnext = Uid(mailbox.uidnext.0.max(last.uid.0.saturating_add(1)));
        }
        let mut keywords: BTreeSet<String> = BTreeSet::new();
        for m in &msgs {
            keywords.extend(m.keywords.iter().cloned());
        }
        let kw: String = keywords.iter().map(|k| format!(" {k}")).collect();
        self.untagged(&format!(
            "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{kw})"
        ));
        self.untagged(&format!("{} EXISTS", msgs.len()));
        // RFC 9051 removed RECENT and the UNSEEN response code.
        if !self.rev2 {
            self.untagged(&format!(
                "{} RECENT",
                msgs.iter().filter(|m| m.recent).count()
            ));
            if let Some(first) = msgs.iter().position(|m| !m.flags.contains(Flags::SEEN)) {
                self.untagged(&format!("OK [UNSEEN {}] first unseen message", first + 1));
            }
        }
        self.untagged(&format!(
            "OK [UIDVALIDITY {}] UIDs valid",
            mailbox.uidvalidity.0
        ));
        self.untagged(&format!(
            "OK [UIDNEXT {}] predicted next UID",
            mailbox.uidnext.0
        ));
        if read_only {
            self.untagged("OK [PERMANENTFLAGS ()] read-only mailbox");
        } else {
            self.untagged(&format!(
                "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{kw} \\*)] flags permitted"
            ));
        }
        if self.condstore {
            self.untagged(&format!("OK [HIGHESTMODSEQ {view_modseq}] highest"));
        }
        if self.rev2 {
            // RFC 9051 §6.3.2: the mailbox's name as the server spells it.
            let mut line = b"* LIST () \"/\" ".to_vec();
            line.extend_from_slice(&self.name_out(&mailbox.name));
            line.extend_from_slice(b"\r\n");
            self.push_raw(&line);
        }
        // RFC 7162 §3.2.5.1: what changed since the client's last visit.
        if let Some(q) = qresync
            && q.uidvalidity == mailbox.uidvalidity.0
        {
            let store = Arc::clone(self.store);
            let id = mailbox.id;
            let vanished =
                read_inline(|| store.expunged_since(id, postamt_store::ModSeq(q.modseq)))
                    .map_err(|e| store_no(&e))?;
            let vanished: Vec<u32> = vanished
                .into_iter()
                .map(|u| u.0)
                .filter(|u| {
                    q.known_uids
                        .as_ref()
                        .is_none_or(|k| k.contains(*u, u32::MAX))
                })
                .collect();
            if !vanished.is_empty() {
                self.untagged(&format!(
                    "VANISHED (EARLIER) {}",
                    SequenceSet::compact(&vanished)
                ));
            }
            let lines: Vec<String> = msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| m.modseq > q.modseq)
                .map(|(i, m)| self.flags_line(i + 1, m, true))
                .collect();
            for l in lines {
                self.untagged(&l);
            }
        }
        // Changes that raced with the listing are caught by the next sync
        // (the new view starts dirty).
        if let Some(signal) = &mut self.signal {
            self.seen = *signal.borrow_and_update();
        }
        self.selected = Some(Selected {
            mailbox,
            read_only,
            msgs,
            dirty: true,
            saved: Vec::new(),
            modseq: view_modseq,
            full: false,
        });
        Ok(if read_only {
            "OK [READ-ONLY] EXAMINE completed".into()
        } else {
            "OK [READ-WRITE] SELECT completed".into()
        })
    }

    /// Brings the selected mailbox's view up to date with the store and
    /// announces the differences: EXPUNGE (only if `allow_expunge`),
    /// EXISTS/RECENT for new messages, FETCH FLAGS for changed flags.
    fn sync(&mut self, allow_expunge: bool) {
        // Compared with what the view has seen (not `has_changed`: IDLE's
        // `changed()` already marked it seen), and taken even with nothing
        // selected, so IDLE then waits for the next change.
        let now = self.signal.as_mut().map(|s| *s.borrow_and_update());
        let seen = self.seen;
        self.seen = now.unwrap_or(seen);
        let Some(sel) = &mut self.selected else {
            return;
        };
        if let Some(now) = now {
            mark(sel, &seen, &now);
        }
        let has_ghosts = sel.msgs.iter().any(|m| m.gone);
        if !(sel.dirty || allow_expunge && has_ghosts) {
            return;
        }
        let store = Arc::clone(self.store);
        let id = sel.mailbox.id;
        let read_only = sel.read_only;
        let since = postamt_store::ModSeq(sel.modseq);
        let full = sel.full;
        // The mailbox first, then the changes: whatever commits in between
        // is seen again next time, which is harmless.
        let Ok(state) = read_inline(|| -> Result<_, StoreError> {
            let Some(mb) = store.mailbox_by_id(id)? else {
                return Ok(None);
            };
            if full {
                Ok(Some((mb, store.messages(id)?, None)))
            } else {
                let changed = store.messages_changed_since(id, since)?;
                let gone = store.expunged_since(id, since)?;
                Ok(Some((mb, changed, Some(gone))))
            }
        }) else {
            return;
        };
        let Some((mb, changed, gone_uids)) = state else {
            // Deleted by another session (RFC 9051 §7.1: CLOSED).
            self.selected = None;
            self.untagged("OK [CLOSED] the selected mailbox was deleted");
            return;
        };
        if mb.uidvalidity != sel.mailbox.uidvalidity {
            self.selected = None;
            self.untagged("OK [CLOSED] the selected mailbox was replaced");
            return;
        }
        sel.dirty = false;
        sel.full = false;
        sel.modseq = mb.highestmodseq.0;
        sel.mailbox = mb;
        let find = |msgs: &[Msg], uid: u32| msgs.binary_search_by_key(&uid, |m| m.uid.0).ok();
        // Which messages left: listed as expunged, or (full) not listed.
        let removed: Vec<u32> = match &gone_uids {
            Some(g) => g.iter().map(|u| u.0).collect(),
            None => {
                let live: std::collections::HashSet<u32> =
                    changed.iter().map(|m| m.uid.0).collect();
                sel.msgs
                    .iter()
                    .map(|m| m.uid.0)
                    .filter(|u| !live.contains(u))
                    .collect()
            }
        };
        for uid in removed {
            if let Some(i) = find(&sel.msgs, uid) {
                sel.msgs[i].gone = true;
            }
        }
        let mut gone = Vec::new();
        if allow_expunge {
            let mut i = sel.msgs.len();
            while i > 0 {
                i -= 1;
                if sel.msgs[i].gone {
                    gone.push((i + 1, sel.msgs[i].uid.0));
                    sel.msgs.remove(i);
                }
            }
            // RFC 5182 §2.1: expunged messages leave the saved result.
            sel.saved.retain(|u| !gone.iter().any(|g| g.1 == u.0));
        }
        // Changed flags, and new messages.
        let max = sel.max_uid();
        let mut flag_changes = Vec::new();
        let mut new = Vec::new();
        for c in changed {
            if c.uid.0 > max {
                new.push(c);
            } else if let Some(i) = find(&sel.msgs, c.uid.0) {
                let m = &mut sel.msgs[i];
                if c.flags != m.flags || c.keywords != m.keywords {
                    flag_changes.push(i);
                }
                m.flags = c.flags;
                m.keywords = c.keywords;
                m.modseq = c.modseq.0;
            }
        }
        let mut lines: Vec<String> = Vec::new();
        if !new.is_empty() {
            let recent_from = if read_only {
                Uid(u32::MAX)
            } else {
                read_inline(|| store.claim_recent(id, true)).unwrap_or(Uid(u32::MAX))
            };
            for m in new {
                let recent = m.uid >= recent_from;
                sel.msgs.push(Msg::from_summary(m, recent));
            }
            lines.push(format!("{} EXISTS", sel.msgs.len()));
            if !self.rev2 {
                lines.push(format!(
                    "{} RECENT",
                    sel.msgs.iter().filter(|m| m.recent).count()
                ));
            }
        }
        let sel = self.selected.as_ref().expect("selected");
        let flag_lines: Vec<String> = flag_changes
            .iter()
            .map(|&i| self.flags_line(i + 1, &sel.msgs[i], true))
            .collect();
        self.announce_expunged(&gone);
        for l in flag_lines.into_iter().chain(lines) {
            self.untagged(&l);
        }
    }

    async fn create(&mut self, raw: &[u8], uses: &[String]) -> Result<String, String> {
        // RFC 6154 §3: CREATE-SPECIAL-USE; one attribute per mailbox here.
        let special = match uses {
            [] => None,
            [one] => Some(
                postamt_store::SpecialUse::from_attribute(one).ok_or_else(|| {
                    format!("NO [USEATTR] {one} is not a special use this server supports")
                })?,
            ),
            _ => return Err("NO [USEATTR] one special use per mailbox".into()),
        };
        // RFC 9051 §6.3.4: a trailing delimiter only says "will have children".
        let name = self.new_name_in(raw)?;
        if name == "INBOX" {
            return Err("NO [ALREADYEXISTS] INBOX always exists".into());
        }
        let account = self.account().id;
        let store = Arc::clone(self.store);
        blocking(move || {
            // Missing parents are created too (RFC 9051 §6.3.4).
            let mut path = String::new();
            for level in name.split('/') {
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(level);
                if path != name && store.mailbox(account, &path)?.is_none() {
                    store.create_mailbox(account, &path, None)?;
                }
            }
            store.create_mailbox(account, &name, special)
        })
        .await
        .map(|_| "OK CREATE completed".into())
        .map_err(|e| store_no(&e))
    }

    async fn delete(&mut self, raw: &[u8]) -> Result<String, String> {
        let name = self.name_in(raw)?;
        if name == "INBOX" {
            return Err("NO [CANNOT] INBOX cannot be deleted".into());
        }
        let mailbox = self.find_mailbox(&name)?;
        if self
            .selected
            .as_ref()
            .is_some_and(|s| s.mailbox.id == mailbox.id)
        {
            self.selected = None;
        }
        let account = self.account().id;
        let store = Arc::clone(self.store);
        blocking(move || store.delete_mailbox(account, &name))
            .await
            .map(|_| "OK DELETE completed".into())
            .map_err(|e| store_no(&e))
    }

    async fn rename(&mut self, from: &[u8], to: &[u8]) -> Result<String, String> {
        let from = self.name_in(from)?;
        let to = self.new_name_in(to)?;
        self.find_mailbox(&from)?;
        let account = self.account().id;
        let store = Arc::clone(self.store);
        blocking(move || store.rename_mailbox(account, &from, &to))
            .await
            .map(|_| "OK RENAME completed".into())
            .map_err(|e| store_no(&e))
    }

    async fn subscribe(&mut self, raw: &[u8], on: bool) -> Result<String, String> {
        let name = self.name_in(raw)?;
        let account = self.account().id;
        let store = Arc::clone(self.store);
        blocking(move || {
            if on {
                store.subscribe(account, &name)
            } else {
                store.unsubscribe(account, &name)
            }
        })
        .await
        .map(|_| format!("OK {}SUBSCRIBE completed", if on { "" } else { "UN" }))
        .map_err(|e| store_no(&e))
    }

    #[allow(clippy::too_many_arguments)]
    fn list(
        &mut self,
        reference: &[u8],
        patterns: &[Vec<u8>],
        lsub: bool,
        select: &[String],
        returns: Option<&ListReturn>,
    ) -> Result<String, String> {
        let verb = if lsub { "LSUB" } else { "LIST" };
        let extended = returns.is_some();
        let reference = self.name_in(reference).unwrap_or_default();
        if !lsub && patterns.len() == 1 && patterns[0].is_empty() {
            // RFC 9051 §6.3.9: the hierarchy delimiter and root.
            self.untagged("LIST (\\Noselect) \"/\" \"\"");
            return Ok("OK LIST completed".into());
        }
        let account = self.account().id;
        let store = Arc::clone(self.store);
        let (boxes, subs) =
            read_inline(|| Ok((store.mailboxes(account)?, store.subscriptions(account)?)))
                .map_err(|e| store_no(&e))?;
        let names: BTreeSet<String> = boxes.iter().map(|m| m.name.clone()).collect();
        let subs: BTreeSet<String> = subs.into_iter().collect();
        let has = |o: &str| select.iter().any(|x| x == o);
        let (sel_subscribed, sel_special, recursive) =
            (has("SUBSCRIBED"), has("SPECIAL-USE"), has("RECURSIVEMATCH"));
        let ret = returns.cloned().unwrap_or_default();
        let patterns: Vec<String> = patterns
            .iter()
            .map(|raw| {
                let p = String::from_utf8_lossy(raw).into_owned();
                let p = if self.utf8() {
                    p
                } else {
                    mutf7::decode(&p).unwrap_or(p)
                };
                format!("{reference}{p}")
            })
            .collect();
        let matching = |name: &str| patterns.iter().any(|p| list_matches(p, name));
        // Every name that could be listed: mailboxes, subscriptions (which
        // may name mailboxes that are gone) and parents that do not exist.
        let mut universe: BTreeSet<String> = if lsub { subs.clone() } else { names.clone() };
        if !lsub && sel_subscribed {
            universe.extend(subs.iter().cloned());
        }
        let mut parents = BTreeSet::new();
        for n in universe.iter() {
            let mut p = n.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                parents.insert(parent.to_string());
                p = parent;
            }
        }
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for name in universe.union(&parents) {
            if !matching(name) {
                continue;
            }
            let exists = names.contains(name);
            let subscribed = subs.contains(name);
            let special = boxes
                .iter()
                .find(|m| &m.name == name)
                .and_then(|m| m.special_use);
            let prefix = format!("{name}/");
            let child_subscribed = subs.iter().any(|s| s.starts_with(&prefix));
            let mut childinfo = false;
            let passes = if lsub {
                subscribed || child_subscribed
            } else if sel_subscribed {
                if subscribed {
                    true
                } else if recursive && child_subscribed {
                    // RFC 5258 §3.5: a parent of a match, with CHILDINFO.
                    childinfo = true;
                    true
                } else {
                    false
                }
            } else {
                exists || names.iter().any(|n| n.starts_with(&prefix))
            };
            if !passes || (sel_special && special.is_none()) {
                continue;
            }
            let mut attrs: Vec<&str> = Vec::new();
            if lsub {
                if !subscribed || !exists {
                    attrs.push("\\Noselect");
                }
            } else {
                if !exists {
                    attrs.push(if extended || self.rev2 {
                        "\\NonExistent"
                    } else {
                        "\\Noselect"
                    });
                }
                let children = names.iter().any(|n| n.starts_with(&prefix));
                attrs.push(if children {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
                if let Some(u) = special {
                    attrs.push(u.attribute());
                }
                if (ret.subscribed || sel_subscribed) && subscribed {
                    attrs.push("\\Subscribed");
                }
            }
            let mut line = format!("* {verb} ({}) \"/\" ", attrs.join(" ")).into_bytes();
            line.extend_from_slice(&self.name_out(name));
            if childinfo {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            line.extend_from_slice(b"\r\n");
            lines.push(line);
            // RFC 5819: STATUS right after the mailbox's LIST line.
            if let (Some(items), true) = (&ret.status, exists)
                && let Some(m) = boxes.iter().find(|m| &m.name == name)
            {
                let status = self.status_line(name, m, items).map_err(|e| store_no(&e))?;
                lines.push(status);
            }
        }
        for l in lines {
            self.push_raw(&l);
        }
        Ok(format!("OK {verb} completed"))
    }

    /// `* STATUS name (…)` for one mailbox.
    fn status_line(
        &self,
        name: &str,
        mailbox: &Mailbox,
        items: &[StatusItem],
    ) -> Result<Vec<u8>, StoreError> {
        let store = Arc::clone(self.store);
        let id = mailbox.id;
        let need_list = items.iter().any(|i| {
            matches!(
                i,
                StatusItem::Recent | StatusItem::Deleted | StatusItem::DeletedStorage
            )
        });
        let (st, list, recent_from) = read_inline(|| {
            let st = store.mailbox_status(id)?;
            let list = if need_list {
                store.messages(id)?
            } else {
                Vec::new()
            };
            let recent_from = if items.contains(&StatusItem::Recent) {
                store.claim_recent(id, false)?
            } else {
                Uid(u32::MAX)
            };
            Ok((st, list, recent_from))
        })?;
        let deleted = || list.iter().filter(|m| m.flags.contains(Flags::DELETED));
        let mut parts = Vec::new();
        for i in items {
            parts.push(match i {
                StatusItem::Messages => format!("MESSAGES {}", st.messages),
                StatusItem::Recent => format!(
                    "RECENT {}",
                    list.iter().filter(|m| m.uid >= recent_from).count()
                ),
                StatusItem::UidNext => format!("UIDNEXT {}", mailbox.uidnext.0),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", mailbox.uidvalidity.0),
                StatusItem::Unseen => format!("UNSEEN {}", st.unseen),
                StatusItem::Size => format!("SIZE {}", st.size),
                StatusItem::HighestModSeq => {
                    format!("HIGHESTMODSEQ {}", mailbox.highestmodseq.0)
                }
                StatusItem::AppendLimit => format!("APPENDLIMIT {}", self.config.max_append),
                StatusItem::Deleted => format!("DELETED {}", deleted().count()),
                StatusItem::DeletedStorage => {
                    format!("DELETED-STORAGE {}", deleted().map(|m| m.size).sum::<u64>())
                }
            });
        }
        let mut line = b"* STATUS ".to_vec();
        line.extend_from_slice(&self.name_out(name));
        line.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        Ok(line)
    }

    fn status(&mut self, raw: &[u8], items: &[StatusItem]) -> Result<String, String> {
        let name = self.name_in(raw)?;
        let mailbox = self.find_mailbox(&name)?;
        if items.contains(&StatusItem::HighestModSeq) {
            self.condstore = true;
        }
        let line = self
            .status_line(&name, &mailbox, items)
            .map_err(|e| store_no(&e))?;
        self.push_raw(&line);
        Ok("OK STATUS completed".into())
    }

    /// RFC 9208: one quota root, `""`, per account, with the STORAGE
    /// resource in units of 1024 octets; none when the account has no quota.
    fn quota_root(&self) -> Result<Option<(u64, u64)>, String> {
        let address = self.account().address.clone();
        let store = Arc::clone(self.store);
        let account = read_inline(|| store.account(&address))
            .map_err(|e| store_no(&e))?
            .ok_or("NO [UNAVAILABLE] account vanished")?;
        Ok(account
            .quota_bytes
            .map(|q| (account.used_bytes.div_ceil(1024), q / 1024)))
    }

    fn get_quota_root(&mut self, raw: &[u8]) -> Result<String, String> {
        let name = self.name_in(raw)?;
        let mut line = b"* QUOTAROOT ".to_vec();
        line.extend_from_slice(&self.name_out(&name));
        self.find_mailbox(&name)?;
        let quota = self.quota_root()?;
        if quota.is_some() {
            line.extend_from_slice(b" \"\"");
        }
        line.extend_from_slice(b"\r\n");
        self.push_raw(&line);
        if let Some((used, limit)) = quota {
            self.untagged(&format!("QUOTA \"\" (STORAGE {used} {limit})"));
        }
        Ok("OK GETQUOTAROOT completed".into())
    }

    fn get_quota(&mut self, root: &[u8]) -> Result<String, String> {
        match (root.is_empty(), self.quota_root()?) {
            (true, Some((used, limit))) => {
                self.untagged(&format!("QUOTA \"\" (STORAGE {used} {limit})"));
                Ok("OK GETQUOTA completed".into())
            }
            _ => Err("NO [NONEXISTENT] no such quota root".into()),
        }
    }

    async fn append(
        &mut self,
        raw: &[u8],
        messages: Vec<command::AppendMessage>,
    ) -> Result<String, String> {
        if messages.iter().any(|m| m.utf8) && !self.utf8 {
            // RFC 6855 §4.
            return Err("BAD APPEND UTF8 needs ENABLE UTF8=ACCEPT".into());
        }
        let name = self.name_in(raw)?;
        let mailbox = match self.find_mailbox(&name) {
            Ok(m) => m,
            Err(_) => return Err("NO [TRYCREATE] no such mailbox".into()),
        };
        let account = self.account().id;
        let mut deliveries = Vec::with_capacity(messages.len());
        for m in messages {
            if m.content.is_empty() {
                return Err("NO [CANNOT] an empty message cannot be stored".into());
            }
            if m.content.len() as u64 > self.config.max_append {
                return Err("NO [TOOBIG] message too big".into());
            }
            let (flags, keywords) = split_flags(&m.flags).map_err(|e| format!("BAD {e}"))?;
            // Stored as sent, except that line ends become CRLF (no CRLF
            // is added after an unterminated last line).
            let unterminated = !m.content.ends_with(b"\n") && !m.content.ends_with(b"\r");
            let mut content = normalize_crlf_owned(m.content);
            if unterminated {
                content.truncate(content.len() - 2);
            }
            deliveries.push(Delivery {
                meta: MessageMeta::parse(&content),
                content,
                internaldate: m
                    .date
                    .unwrap_or_else(|| postamt_wire::time::unix_now() as i64),
                targets: vec![DeliveryTarget {
                    account,
                    mailbox: mailbox.name.clone(),
                    prefix: Vec::new(),
                    flags,
                    keywords,
                }],
            });
        }
        let store = Arc::clone(self.store);
        // RFC 3502 §6.3.11: all of them or none.
        let delivered = blocking(move || store.deliver_many(deliveries))
            .await
            .map_err(|e| store_no(&e))?;
        let uids: Vec<u32> = delivered.iter().flatten().map(|d| d.uid.0).collect();
        let uidvalidity = delivered
            .iter()
            .flatten()
            .next()
            .ok_or("NO [SERVERBUG] nothing stored")?
            .uidvalidity
            .0;
        if let Some(sel) = &mut self.selected
            && sel.mailbox.id == mailbox.id
        {
            sel.dirty = true;
        }
        Ok(format!(
            "OK [APPENDUID {uidvalidity} {}] APPEND completed",
            SequenceSet::compact(&uids)
        ))
    }

    async fn idle(&mut self, tag: &str) -> Flow {
        let line = b"+ idling\r\n";
        self.record_server(line);
        self.out.extend_from_slice(line);
        let deadline = tokio::time::Instant::now() + self.config.idle_max;
        loop {
            self.sync(true);
            if !self.flush().await {
                return Flow::Close;
            }
            let Some(signal) = &mut self.signal else {
                return Flow::Close;
            };
            let waited = tokio::select! {
                biased;
                _ = self.ctx.shutdown.recv() => {
                    self.untagged("BYE [UNAVAILABLE] server shutting down");
                    return Flow::Close;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.untagged("BYE autologout: IDLE for too long");
                    return Flow::Close;
                }
                c = signal.changed() => Some(c),
                r = self.conn.fill_buf() => {
                    match r {
                        Ok(b) if !b.is_empty() => None,
                        _ => return Flow::Close,
                    }
                }
            };
            match waited {
                // The account changed: the sync at the top of the loop reads
                // what (only this account's sessions wake).
                Some(Ok(())) => {}
                // The store is going away (shutdown).
                Some(Err(_)) => return Flow::Close,
                None => {
                    // Client data: the line must be DONE (RFC 2177).
                    let line = match self.next_event(self.config.idle_timeout).await {
                        Ok(Some(Event::Command(l))) => l,
                        _ => return Flow::Close,
                    };
                    if let Some(t) = &self.transcript {
                        let mut l = line.clone();
                        l.extend_from_slice(b"\r\n");
                        t.client(&l);
                    }
                    self.sync(true);
                    if line.eq_ignore_ascii_case(b"DONE") {
                        self.tagged(tag, "OK IDLE terminated");
                        return Flow::Continue;
                    }
                    return self.bad(tag, "expected DONE to end IDLE");
                }
            }
        }
    }

    /// EXPUNGE / UID EXPUNGE / CLOSE: removes \Deleted messages (limited to
    /// `uids` if given); `silent` for CLOSE.
    async fn expunge_deleted(
        &mut self,
        uids: Option<&SequenceSet>,
        silent: bool,
    ) -> Result<(), String> {
        let Some(sel) = &self.selected else {
            return Ok(());
        };
        if sel.read_only {
            return if silent {
                Ok(())
            } else {
                Err("NO [READ-ONLY] mailbox is read-only".into())
            };
        }
        let max = sel.max_uid();
        let targets: Vec<Uid> = sel
            .msgs
            .iter()
            .filter(|m| m.flags.contains(Flags::DELETED))
            .filter(|m| {
                uids.is_none_or(|s| {
                    if s.is_saved() {
                        sel.saved.contains(&m.uid)
                    } else {
                        s.contains(m.uid.0, max)
                    }
                })
            })
            .map(|m| m.uid)
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let id = sel.mailbox.id;
        let store = Arc::clone(self.store);
        let removed = blocking(move || store.expunge(id, &targets))
            .await
            .map_err(|e| store_no(&e))?;
        self.forget(&removed, silent);
        Ok(())
    }

    /// Drops expunged UIDs from the view, announcing each (highest first).
    fn forget(&mut self, removed: &[Uid], silent: bool) {
        let Some(sel) = &mut self.selected else {
            return;
        };
        let mut gone = Vec::new();
        let mut i = sel.msgs.len();
        while i > 0 {
            i -= 1;
            if removed.contains(&sel.msgs[i].uid) {
                gone.push((i + 1, sel.msgs[i].uid.0));
                sel.msgs.remove(i);
            }
        }
        sel.saved.retain(|u| !removed.contains(u));
        if !silent {
            self.announce_expunged(&gone);
        }
    }

    async fn store_flags(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        mode: StoreMode,
        silent: bool,
        names: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<String, String> {
        if unchanged_since.is_some() {
            self.condstore = true;
        }
        let sel = self.selected.as_ref().expect("selected");
        if sel.read_only {
            return Err("NO [READ-ONLY] mailbox is read-only".into());
        }
        let idx = sel.resolve(set, uid).map_err(|e| format!("BAD {e}"))?;
        let (flags, keywords) = split_flags(names).map_err(|e| format!("BAD {e}"))?;
        let uids: Vec<Uid> = idx
            .iter()
            .filter(|&&i| !sel.msgs[i].gone)
            .map(|&i| sel.msgs[i].uid)
            .collect();
        if uids.is_empty() {
            return Ok("OK STORE completed".into());
        }
        let op = match mode {
            StoreMode::Replace => FlagOp::Replace,
            StoreMode::Add => FlagOp::Add,
            StoreMode::Remove => FlagOp::Remove,
        };
        let id = sel.mailbox.id;
        let store = Arc::clone(self.store);
        let targets = uids.clone();
        let since = unchanged_since.map(postamt_store::ModSeq);
        let (updates, modified) = blocking(move || {
            store.store_flags_unchanged_since(id, &uids, op, flags, &keywords, since)
        })
        .await
        .map_err(|e| store_no(&e))?;
        let sel = self.selected.as_mut().expect("selected");
        let mut updated = BTreeSet::new();
        for u in updates {
            if let Some(i) = sel.msgs.iter().position(|m| m.uid == u.uid) {
                let m = &mut sel.msgs[i];
                m.flags = u.flags;
                m.keywords = u.keywords;
                m.modseq = u.modseq.0;
                updated.insert(i);
            }
        }
        // RFC 9051 §6.4.6: the new flags of every message named (unless
        // .SILENT); RFC 7162 §3.1.3: MODSEQ of changed ones even then.
        let sel = self.selected.as_ref().expect("selected");
        let mut lines = Vec::new();
        for (i, m) in sel.msgs.iter().enumerate() {
            if !targets.contains(&m.uid) || modified.contains(&m.uid) {
                continue;
            }
            if !silent {
                lines.push(self.flags_line(i + 1, m, uid));
            } else if self.condstore && updated.contains(&i) {
                let uid_item = if uid {
                    format!("UID {} ", m.uid.0)
                } else {
                    String::new()
                };
                lines.push(format!("{} FETCH ({uid_item}MODSEQ ({}))", i + 1, m.modseq));
            }
        }
        let nums: Vec<u32> = if uid {
            modified.iter().map(|u| u.0).collect()
        } else {
            sel.msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| modified.contains(&m.uid))
                .map(|(i, _)| i as u32 + 1)
                .collect()
        };
        for l in lines {
            self.untagged(&l);
        }
        if modified.is_empty() {
            return Ok("OK STORE completed".into());
        }
        Ok(format!(
            "OK [MODIFIED {}] conditional STORE failed for some messages",
            SequenceSet::compact(&nums)
        ))
    }

    async fn copy(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        raw: &[u8],
        moving: bool,
    ) -> Result<String, String> {
        let verb = if moving { "MOVE" } else { "COPY" };
        let sel = self.selected.as_ref().expect("selected");
        if moving && sel.read_only {
            return Err("NO [READ-ONLY] mailbox is read-only".into());
        }
        let idx = sel.resolve(set, uid).map_err(|e| format!("BAD {e}"))?;
        let uids: Vec<Uid> = idx
            .iter()
            .filter(|&&i| !sel.msgs[i].gone)
            .map(|&i| sel.msgs[i].uid)
            .collect();
        let from = sel.mailbox.id;
        let name = self.name_in(raw)?;
        let target = match self.find_mailbox(&name) {
            Ok(m) => m,
            Err(_) => return Err("NO [TRYCREATE] no such mailbox".into()),
        };
        if uids.is_empty() {
            return Ok(format!("OK {verb} completed (nothing to do)"));
        }
        let store = Arc::clone(self.store);
        let to = target.id;
        let pairs = blocking(move || store.copy_messages(from, &uids, to, moving))
            .await
            .map_err(|e| store_no(&e))?;
        let src: Vec<u32> = pairs.iter().map(|p| p.0.0).collect();
        let dst: Vec<u32> = pairs.iter().map(|p| p.1.0).collect();
        let code = format!(
            "COPYUID {} {} {}",
            target.uidvalidity.0,
            SequenceSet::compact(&src),
            SequenceSet::compact(&dst)
        );
        if to == from
            && let Some(sel) = &mut self.selected
        {
            sel.dirty = true;
        }
        if moving {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            self.untagged(&format!("OK [{code}] moved"));
            let removed: Vec<Uid> = pairs.iter().map(|p| p.0).collect();
            self.forget(&removed, false);
            Ok("OK MOVE completed".into())
        } else {
            Ok(format!("OK [{code}] COPY completed"))
        }
    }

    /// Indices of the selected messages that match all `keys`.
    fn search_hits(&self, keys: &[SearchKey]) -> Vec<usize> {
        let sel = self.selected.as_ref().expect("selected");
        let mut hits: Vec<usize> = Vec::new();
        let mut ctx = SearchContext {
            store: self.store,
            mailbox: sel.mailbox.id,
            msgs: &sel.msgs,
            saved: &sel.saved,
            cache: None,
        };
        for i in 0..sel.msgs.len() {
            if sel.msgs[i].gone {
                continue;
            }
            ctx.cache = None;
            if keys.iter().all(|k| ctx.matches(i, k)) {
                hits.push(i);
            }
        }
        hits
    }

    /// SORT (`criteria`) or THREAD (RFC 5256) over the messages matching
    /// `keys`.
    fn sort_or_thread(
        &mut self,
        uid: bool,
        keys: &[SearchKey],
        criteria: Option<&[(bool, crate::sort::SortKey)]>,
        references: bool,
    ) -> Result<String, String> {
        let hits = self.search_hits(keys);
        let sel = self.selected.as_ref().expect("selected");
        let mailbox = sel.mailbox.id;
        let store = Arc::clone(self.store);
        let mut items = Vec::with_capacity(hits.len());
        for i in hits {
            let m = &sel.msgs[i];
            let (meta, refs) = read_inline(|| {
                let meta = store.message_meta(mailbox, m.uid)?;
                // Only THREAD=REFERENCES needs a header outside the envelope.
                let refs = if references && criteria.is_none() {
                    store.message_content(mailbox, m.uid)?.and_then(|c| {
                        let h = meta
                            .as_ref()
                            .map_or(0, |m| m.header_len as usize)
                            .min(c.len());
                        let f = fetch::header_fields(&c[..h], &["References".into()], false);
                        let v = String::from_utf8_lossy(&f).into_owned();
                        v.split_once(':').map(|(_, v)| v.to_string())
                    })
                } else {
                    None
                };
                Ok((meta, refs))
            })
            .map_err(|e| store_no(&e))?;
            items.push(crate::sort::Item {
                number: if uid { m.uid.0 } else { i as u32 + 1 },
                internaldate: m.internaldate,
                size: m.size,
                envelope: meta.map(|m| m.envelope).unwrap_or_default(),
                references: refs,
            });
        }
        match criteria {
            Some(c) => {
                let line: String = crate::sort::sort(&items, c)
                    .iter()
                    .map(|n| format!(" {n}"))
                    .collect();
                self.untagged(&format!("SORT{line}"));
                Ok("OK SORT completed".into())
            }
            None => {
                let t = if references {
                    crate::sort::thread_references(&items)
                } else {
                    crate::sort::thread_orderedsubject(&items)
                };
                let sp = if t.is_empty() { "" } else { " " };
                self.untagged(&format!("THREAD{sp}{t}"));
                Ok("OK THREAD completed".into())
            }
        }
    }

    fn search(
        &mut self,
        tag: &str,
        uid: bool,
        ret: Option<&[SearchReturn]>,
        keys: &[SearchKey],
    ) -> Result<String, String> {
        let modseq_key = uses_modseq(keys);
        if modseq_key {
            self.condstore = true;
        }
        let hits = self.search_hits(keys);
        let sel = self.selected.as_ref().expect("selected");
        let num = |i: usize| if uid { sel.msgs[i].uid.0 } else { i as u32 + 1 };
        // RFC 7162 §3.1.5: the highest MODSEQ of the matches.
        let modseq = hits.iter().map(|&i| sel.msgs[i].modseq).max();
        let modseq_suffix = if modseq_key { modseq } else { None };
        // RFC 9051 §6.4.4: IMAP4rev2 answers every SEARCH with ESEARCH.
        let ret = match ret {
            None if self.rev2 => Some(&[SearchReturn::All][..]),
            r => r,
        };
        let Some(ret) = ret else {
            let mut line: String = "SEARCH".into();
            for &i in &hits {
                line.push_str(&format!(" {}", num(i)));
            }
            if let Some(m) = modseq_suffix {
                line.push_str(&format!(" (MODSEQ {m})"));
            }
            self.untagged(&line);
            return Ok("OK SEARCH completed".into());
        };
        let has = |r: SearchReturn| ret.contains(&r);
        let nums: Vec<u32> = hits.iter().map(|&i| num(i)).collect();
        let (min, max) = (hits.first().copied(), hits.last().copied());
        if has(SearchReturn::Save) {
            // RFC 5182 §2.4: with only MIN and/or MAX, only those are saved.
            let chosen: Vec<usize> = if (has(SearchReturn::Min) || has(SearchReturn::Max))
                && !has(SearchReturn::All)
                && !has(SearchReturn::Count)
            {
                let mut v: Vec<usize> = Vec::new();
                if has(SearchReturn::Min) {
                    v.extend(min);
                }
                if has(SearchReturn::Max) {
                    v.extend(max.filter(|m| Some(*m) != min));
                }
                v
            } else {
                hits.clone()
            };
            let uids: Vec<Uid> = chosen.iter().map(|&i| sel.msgs[i].uid).collect();
            self.selected.as_mut().expect("selected").saved = uids;
            if ret.iter().all(|r| *r == SearchReturn::Save) {
                return Ok("OK SEARCH completed, result saved".into());
            }
        }
        // RFC 4731 §3.1: the ESEARCH response.
        let mut line = format!("ESEARCH (TAG \"{tag}\")");
        if uid {
            line.push_str(" UID");
        }
        if has(SearchReturn::Min)
            && let Some(m) = nums.first()
        {
            line.push_str(&format!(" MIN {m}"));
        }
        if has(SearchReturn::Max)
            && let Some(m) = nums.last()
        {
            line.push_str(&format!(" MAX {m}"));
        }
        if has(SearchReturn::Count) {
            line.push_str(&format!(" COUNT {}", nums.len()));
        }
        if has(SearchReturn::All) && !nums.is_empty() {
            line.push_str(&format!(" ALL {}", SequenceSet::compact(&nums)));
        }
        if let Some(m) = modseq_suffix {
            line.push_str(&format!(" MODSEQ {m}"));
        }
        self.untagged(&line);
        Ok("OK SEARCH completed".into())
    }

    async fn fetch(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        items: &[FetchItem],
        changed_since: Option<u64>,
        vanished: bool,
    ) -> Result<String, String> {
        let utf8 = self.utf8();
        let rev2 = self.rev2;
        if changed_since.is_some() || items.contains(&FetchItem::ModSeq) {
            // RFC 7162 §3.1: these make the client CONDSTORE-aware.
            self.condstore = true;
        }
        // CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1).
        let mut items = items.to_vec();
        if changed_since.is_some() && !items.contains(&FetchItem::ModSeq) {
            items.push(FetchItem::ModSeq);
        }
        let items = &items[..];
        let sel = self.selected.as_ref().expect("selected");
        let idx = sel.resolve(set, uid).map_err(|e| format!("BAD {e}"))?;
        if let (true, Some(since)) = (vanished, changed_since) {
            // RFC 7162 §3.2.6: expunged since, within the set, as UIDs.
            let store = Arc::clone(self.store);
            let id = sel.mailbox.id;
            let gone = read_inline(|| store.expunged_since(id, postamt_store::ModSeq(since)))
                .map_err(|e| store_no(&e))?;
            // `*` reaches past the last UID still in use here: `1:*`
            // asks for everything that vanished.
            let gone: Vec<u32> = gone
                .into_iter()
                .map(|u| u.0)
                .filter(|&u| set.contains(u, u32::MAX))
                .collect();
            if !gone.is_empty() {
                self.untagged(&format!(
                    "VANISHED (EARLIER) {}",
                    SequenceSet::compact(&gone)
                ));
            }
        }
        let sel = self.selected.as_ref().expect("selected");
        let read_only = sel.read_only;
        let mailbox = sel.mailbox.id;
        // ENVELOPE alone comes from the form rendered at delivery; the
        // other structure items need the whole parsed metadata.
        let needs_env = items.contains(&FetchItem::Envelope);
        let needs_meta = items.iter().any(|i| {
            matches!(
                i,
                FetchItem::Body
                    | FetchItem::BodyStructure
                    | FetchItem::BodySection { .. }
                    | FetchItem::Rfc822Header
                    | FetchItem::Rfc822Text
                    | FetchItem::Binary { .. }
                    | FetchItem::BinarySize { .. }
            )
        });
        let needs_content = items.iter().any(|i| {
            matches!(
                i,
                FetchItem::BodySection { .. }
                    | FetchItem::Rfc822
                    | FetchItem::Rfc822Header
                    | FetchItem::Rfc822Text
                    | FetchItem::Binary { .. }
                    | FetchItem::BinarySize { .. }
            )
        });
        let sets_seen = !read_only
            && items.iter().any(|i| {
                matches!(
                    i,
                    FetchItem::BodySection { peek: false, .. }
                        | FetchItem::Binary { peek: false, .. }
                        | FetchItem::Rfc822
                        | FetchItem::Rfc822Text
                )
            });
        let idx: Vec<usize> = idx
            .into_iter()
            .filter(|&i| changed_since.is_none_or(|c| sel.msgs[i].modseq > c))
            .collect();
        // RFC 9051 §6.4.5: a non-PEEK body fetch sets \Seen; done first so
        // that the FLAGS sent below already include it.
        let mut flags_changed: BTreeSet<usize> = BTreeSet::new();
        if sets_seen {
            let unseen: Vec<Uid> = idx
                .iter()
                .filter(|&&i| !sel.msgs[i].gone && !sel.msgs[i].flags.contains(Flags::SEEN))
                .map(|&i| sel.msgs[i].uid)
                .collect();
            if !unseen.is_empty() {
                let store = Arc::clone(self.store);
                let updates = blocking(move || {
                    store.store_flags(mailbox, &unseen, FlagOp::Add, Flags::SEEN, &[])
                })
                .await
                .map_err(|e| store_no(&e))?;
                let sel = self.selected.as_mut().expect("selected");
                for u in updates {
                    if let Some(i) = sel.msgs.iter().position(|m| m.uid == u.uid) {
                        sel.msgs[i].flags = u.flags;
                        sel.msgs[i].modseq = u.modseq.0;
                        flags_changed.insert(i);
                    }
                }
            }
        }
        let mut expunged_seen = false;
        let mut line: Vec<u8> = Vec::new();
        // Metadata and content are read in bulk, a chunk of messages (at
        // most FETCH_CHUNK, and about FETCH_CHUNK_BYTES of content) at a time.
        let needs_env = needs_env && !needs_meta;
        let mut metas: std::collections::HashMap<Uid, MessageMeta> = Default::default();
        let mut envelopes: std::collections::HashMap<
            Uid,
            postamt_wire::imap::envelope::EnvelopeData,
        > = Default::default();
        let mut contents: std::collections::HashMap<Uid, Vec<u8>> = Default::default();
        let mut chunk_end = 0;
        for (n, &i) in idx.iter().enumerate() {
            if (needs_meta || needs_content || needs_env) && n >= chunk_end {
                let sel = self.selected.as_ref().expect("selected");
                let mut bytes = 0u64;
                chunk_end = n;
                while chunk_end < idx.len()
                    && chunk_end - n < FETCH_CHUNK
                    && (chunk_end == n || !needs_content || bytes < FETCH_CHUNK_BYTES)
                {
                    bytes += sel.msgs[idx[chunk_end]].size;
                    chunk_end += 1;
                }
                let uids: Vec<Uid> = idx[n..chunk_end].iter().map(|&j| sel.msgs[j].uid).collect();
                let store = Arc::clone(self.store);
                (metas, contents, envelopes) = read_inline(|| {
                    let metas = if needs_meta {
                        store.message_metas(mailbox, &uids)?.into_iter().collect()
                    } else {
                        Default::default()
                    };
                    let envelopes = if needs_env {
                        store
                            .message_envelopes(mailbox, &uids)?
                            .into_iter()
                            .collect()
                    } else {
                        Default::default()
                    };
                    let contents = if needs_content {
                        store
                            .message_contents(mailbox, &uids)?
                            .into_iter()
                            .collect()
                    } else {
                        Default::default()
                    };
                    Ok((metas, contents, envelopes))
                })
                .map_err(|e| store_no(&e))?;
            }
            let sel = self.selected.as_ref().expect("selected");
            let m = sel.msgs[i].clone();
            if m.gone {
                expunged_seen = true;
                continue;
            }
            let meta = if needs_meta {
                metas.remove(&m.uid)
            } else {
                None
            };
            let env = if needs_env {
                envelopes.remove(&m.uid)
            } else {
                None
            };
            if needs_env && env.is_none() {
                expunged_seen = true;
                continue;
            }
            let content = if needs_content {
                contents.remove(&m.uid)
            } else {
                None
            };
            if (needs_meta && meta.is_none()) || (needs_content && content.is_none()) {
                // Expunged meanwhile by another session.
                expunged_seen = true;
                continue;
            }
            let meta = meta.unwrap_or_default();
            let content = content.unwrap_or_default();
            let mut out = std::mem::take(&mut line);
            out.clear();
            let _ = write!(out, "* {} FETCH (", i + 1);
            let mut first = true;
            let mut sep = |out: &mut Vec<u8>| {
                if !first {
                    out.push(b' ');
                }
                first = false;
            };
            if uid && !items.contains(&FetchItem::Uid) {
                sep(&mut out);
                let _ = write!(out, "UID {}", m.uid.0);
            }
            if flags_changed.contains(&i) && self.condstore && !items.contains(&FetchItem::ModSeq) {
                sep(&mut out);
                out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes());
            }
            if flags_changed.contains(&i) && !items.contains(&FetchItem::Flags) {
                sep(&mut out);
                out.extend_from_slice(
                    format!(
                        "FLAGS {}",
                        flag_names(m.flags, &m.keywords, m.recent && !rev2)
                    )
                    .as_bytes(),
                );
            }
            for item in items {
                sep(&mut out);
                match item {
                    FetchItem::Flags => {
                        out.extend_from_slice(b"FLAGS ");
                        write_flags(&mut out, m.flags, &m.keywords, m.recent && !rev2);
                    }
                    FetchItem::Uid => {
                        let _ = write!(out, "UID {}", m.uid.0);
                    }
                    FetchItem::ModSeq => {
                        out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes())
                    }
                    FetchItem::InternalDate => out.extend_from_slice(
                        format!("INTERNALDATE \"{}\"", render::date_time(m.internaldate))
                            .as_bytes(),
                    ),
                    FetchItem::Rfc822Size => {
                        out.extend_from_slice(format!("RFC822.SIZE {}", m.size).as_bytes())
                    }
                    FetchItem::Envelope => {
                        out.extend_from_slice(b"ENVELOPE ");
                        match &env {
                            Some(postamt_wire::imap::envelope::EnvelopeData::Rendered(r)) => {
                                out.extend_from_slice(r)
                            }
                            Some(postamt_wire::imap::envelope::EnvelopeData::Parsed(e)) => {
                                envelope(&mut out, e, utf8)
                            }
                            None => envelope(&mut out, &meta.envelope, utf8),
                        }
                    }
                    FetchItem::Body => {
                        out.extend_from_slice(b"BODY ");
                        body_structure(&mut out, &meta.body, false, utf8);
                    }
                    FetchItem::BodyStructure => {
                        out.extend_from_slice(b"BODYSTRUCTURE ");
                        body_structure(&mut out, &meta.body, true, utf8);
                    }
                    FetchItem::Rfc822 => {
                        out.extend_from_slice(b"RFC822 ");
                        literal(&mut out, &content);
                    }
                    FetchItem::Rfc822Header => {
                        out.extend_from_slice(b"RFC822.HEADER ");
                        literal(
                            &mut out,
                            &content[..(meta.header_len as usize).min(content.len())],
                        );
                    }
                    FetchItem::Rfc822Text => {
                        out.extend_from_slice(b"RFC822.TEXT ");
                        literal(
                            &mut out,
                            &content[(meta.header_len as usize).min(content.len())..],
                        );
                    }
                    FetchItem::Binary { part, partial, .. } => {
                        let name = dotted(part);
                        match fetch::binary(&content, &meta, part) {
                            Ok(Some(d)) => {
                                let (d, origin) = match partial {
                                    Some((start, len)) => {
                                        (fetch::partial(&d, *start, *len), format!("<{start}>"))
                                    }
                                    None => (&d[..], String::new()),
                                };
                                out.extend_from_slice(
                                    format!("BINARY[{name}]{origin} ").as_bytes(),
                                );
                                // RFC 3516 §4.2: literal8 when there is a NUL.
                                if d.contains(&0) {
                                    render::literal8(&mut out, d);
                                } else {
                                    literal(&mut out, d);
                                }
                            }
                            Ok(None) => {
                                out.extend_from_slice(format!("BINARY[{name}] \"\"").as_bytes())
                            }
                            Err(cte) => {
                                return Err(format!(
                                    "NO [UNKNOWN-CTE] cannot decode content-transfer-encoding {cte}"
                                ));
                            }
                        }
                    }
                    FetchItem::BinarySize { part } => {
                        let name = dotted(part);
                        match fetch::binary(&content, &meta, part) {
                            Ok(d) => out.extend_from_slice(
                                format!("BINARY.SIZE[{name}] {}", d.map_or(0, |d| d.len()))
                                    .as_bytes(),
                            ),
                            Err(cte) => {
                                return Err(format!(
                                    "NO [UNKNOWN-CTE] cannot decode content-transfer-encoding {cte}"
                                ));
                            }
                        }
                    }
                    FetchItem::BodySection {
                        section, partial, ..
                    } => {
                        let data = fetch::section(&content, &meta, section);
                        let name = fetch::section_name(section);
                        match (data, partial) {
                            (Some(d), Some((start, len))) => {
                                out.extend_from_slice(format!("BODY[{name}]<{start}> ").as_bytes());
                                literal(&mut out, fetch::partial(&d, *start, *len));
                            }
                            (Some(d), None) => {
                                out.extend_from_slice(format!("BODY[{name}] ").as_bytes());
                                literal(&mut out, &d);
                            }
                            (None, p) => {
                                let origin = p.map(|(s, _)| format!("<{s}>")).unwrap_or_default();
                                out.extend_from_slice(
                                    format!("BODY[{name}]{origin} \"\"").as_bytes(),
                                );
                            }
                        }
                    }
                }
            }
            out.extend_from_slice(b")\r\n");
            self.push_raw(&out);
            line = out;
            if self.out.len() > MAX_PENDING_OUTPUT && !self.flush().await {
                return Err("NO [UNAVAILABLE] write failed".into());
            }
        }
        Ok(if expunged_seen {
            "OK [EXPUNGEISSUED] some messages were expunged meanwhile".into()
        } else {
            "OK FETCH completed".into()
        })
    }
}

/// Evaluates SEARCH keys for one message, loading its metadata and
/// content only when a key needs them.
struct SearchContext<'a> {
    store: &'a SharedStore,
    mailbox: postamt_store::MailboxId,
    msgs: &'a [Msg],
    saved: &'a [Uid],
    cache: Option<(Option<MessageMeta>, Option<Vec<u8>>)>,
}

/// Part numbers as written in a section (`1.2`).
fn dotted(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether any key (at any depth) is MODSEQ.
fn uses_modseq(keys: &[SearchKey]) -> bool {
    keys.iter().any(|k| match k {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => uses_modseq(std::slice::from_ref(k)),
        SearchKey::Or(a, b) => {
            uses_modseq(std::slice::from_ref(a)) || uses_modseq(std::slice::from_ref(b))
        }
        SearchKey::And(ks) => uses_modseq(ks),
        _ => false,
    })
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

impl SearchContext<'_> {
    fn content(&mut self, i: usize) -> (Option<&MessageMeta>, Option<&[u8]>) {
        if self.cache.is_none() {
            let uid = self.msgs[i].uid;
            let store = Arc::clone(self.store);
            let mailbox = self.mailbox;
            let r = read_inline(|| -> Result<_, StoreError> {
                Ok((
                    store.message_meta(mailbox, uid)?,
                    store.message_content(mailbox, uid)?,
                ))
            });
            self.cache = Some(r.unwrap_or((None, None)));
        }
        let c = self.cache.as_ref().expect("filled");
        (c.0.as_ref(), c.1.as_deref())
    }

    /// The values of header `name`, raw and decoded (RFC 2047), joined.
    fn header_text(&mut self, i: usize, name: &str) -> String {
        let (meta, content) = self.content(i);
        let (Some(meta), Some(content)) = (meta, content) else {
            return String::new();
        };
        let header = &content[..(meta.header_len as usize).min(content.len())];
        let raw =
            String::from_utf8_lossy(&fetch::header_fields(header, &[name.to_string()], false))
                .into_owned();
        let mut text = raw.clone();
        if let Some(msg) = mail_parser::MessageParser::default().parse_headers(header) {
            for h in msg.headers() {
                if h.name().eq_ignore_ascii_case(name) {
                    match h.value() {
                        mail_parser::HeaderValue::Text(t) => text.push_str(&format!(" {t}")),
                        mail_parser::HeaderValue::TextList(l) => {
                            text.push_str(&format!(" {}", l.join(" ")))
                        }
                        mail_parser::HeaderValue::Address(a) => {
                            for x in a.iter() {
                                text.push_str(&format!(
                                    " {} {}",
                                    x.name().unwrap_or(""),
                                    x.address().unwrap_or("")
                                ));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        text
    }

    fn body_text(&mut self, i: usize, with_header: bool) -> String {
        let (_, content) = self.content(i);
        let Some(content) = content else {
            return String::new();
        };
        let mut text = String::new();
        let parsed = if postamt_wire::meta::safe_to_parse(content) {
            mail_parser::MessageParser::default().parse(content)
        } else {
            None
        };
        if let Some(msg) = parsed {
            if with_header {
                text.push_str(&String::from_utf8_lossy(
                    &content[..msg.root_part().offset_body as usize],
                ));
            }
            for n in 0..msg.text_body_count() {
                if let Some(t) = msg.body_text(n) {
                    text.push_str(&t);
                    text.push('\n');
                }
            }
            for n in 0..msg.html_body_count() {
                if let Some(t) = msg.body_html(n) {
                    text.push_str(&t);
                }
            }
        } else {
            text = String::from_utf8_lossy(content).into_owned();
        }
        text
    }

    fn sent_day(&mut self, i: usize) -> Option<i64> {
        let (meta, _) = self.content(i);
        let date = meta?.envelope.date.clone()?;
        let hdr = format!("Date: {date}\r\n\r\n");
        let msg = mail_parser::MessageParser::default().parse_headers(hdr.as_bytes())?;
        let d = msg.date()?;
        let days = postamt_wire::time::days_from_civil(d.year as i64, d.month as u32, d.day as u32);
        Some(days)
    }

    fn matches(&mut self, i: usize, key: &SearchKey) -> bool {
        use SearchKey as K;
        let m = &self.msgs[i];
        let max_uid = self.msgs.last().map_or(0, |m| m.uid.0);
        let day = m.internaldate.div_euclid(86400);
        let now = postamt_wire::time::unix_now() as i64;
        match key {
            K::All => true,
            K::Answered => m.flags.contains(Flags::ANSWERED),
            K::Deleted => m.flags.contains(Flags::DELETED),
            K::Draft => m.flags.contains(Flags::DRAFT),
            K::Flagged => m.flags.contains(Flags::FLAGGED),
            K::Seen => m.flags.contains(Flags::SEEN),
            K::Recent => m.recent,
            K::New => m.recent && !m.flags.contains(Flags::SEEN),
            K::Old => !m.recent,
            K::Unanswered => !m.flags.contains(Flags::ANSWERED),
            K::Undeleted => !m.flags.contains(Flags::DELETED),
            K::Undraft => !m.flags.contains(Flags::DRAFT),
            K::Unflagged => !m.flags.contains(Flags::FLAGGED),
            K::Unseen => !m.flags.contains(Flags::SEEN),
            K::Keyword(k) => m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)),
            K::Unkeyword(k) => !m.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)),
            K::Larger(n) => m.size > *n,
            K::Smaller(n) => m.size < *n,
            K::Before(d) => day < *d,
            K::On(d) => day == *d,
            K::Since(d) => day >= *d,
            K::SentBefore(d) => self.sent_day(i).is_some_and(|s| s < *d),
            K::SentOn(d) => self.sent_day(i).is_some_and(|s| s == *d),
            K::SentSince(d) => self.sent_day(i).is_some_and(|s| s >= *d),
            K::Uid(set) | K::Seq(set) if set.is_saved() => self.saved.contains(&m.uid),
            K::Uid(set) => set.contains(m.uid.0, max_uid),
            K::Seq(set) => set.contains(i as u32 + 1, self.msgs.len() as u32),
            K::ModSeq(n) => m.modseq >= *n,
            K::Older(secs) => m.internaldate < now - *secs as i64,
            K::Younger(secs) => m.internaldate >= now - *secs as i64,
            K::Header(name, value) => {
                let text = self.header_text(i, name);
                // RFC 9051 §6.4.4: HEADER with an empty value matches every
                // message that has the field.
                if value.is_empty() {
                    !text.trim().is_empty()
                } else {
                    contains_ci(&text, value)
                }
            }
            K::Body(s) => contains_ci(&self.body_text(i, false), s),
            K::Text(s) => contains_ci(&self.body_text(i, true), s),
            K::Not(k) => !self.matches(i, k),
            K::Or(a, b) => self.matches(i, a) || self.matches(i, b),
            K::And(ks) => ks.iter().all(|k| self.matches(i, k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_wildcards() {
        assert!(list_matches("*", "a/b/c"));
        assert!(list_matches("%", "INBOX"));
        assert!(!list_matches("%", "a/b"));
        assert!(list_matches("a/%", "a/b"));
        assert!(!list_matches("a/%", "a/b/c"));
        assert!(list_matches("inbox", "INBOX"));
        assert!(list_matches("Inbox/%", "INBOX/x"));
        assert!(list_matches("S*t", "Sent"));
        assert!(list_matches("Entwürfe/%", "Entwürfe/Alt"));
        assert!(list_matches("ü%", "üx"));
        assert!(!list_matches("Sent", "Sent/x"));
        assert!(!list_matches(
            "*%*%*%*%*%",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ));
    }

    #[test]
    fn flags_split() {
        let (f, k) = split_flags(&[
            "\\Seen".into(),
            "\\recent".into(),
            "$Work".into(),
            "$Work".into(),
        ])
        .unwrap();
        assert_eq!(f, Flags::SEEN);
        assert_eq!(k, vec!["$Work".to_string()]);
        assert!(split_flags(&["\\Bogus".into()]).is_err());
        assert_eq!(
            flag_names(Flags::SEEN | Flags::DELETED, &["x".into()], true),
            "(\\Seen \\Deleted \\Recent x)"
        );
    }
}
