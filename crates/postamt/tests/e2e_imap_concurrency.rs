//! IMAP exact under concurrency (issue 16): many sessions on the same two
//! mailboxes at once — STORE (system flags and keywords), EXPUNGE, UID
//! EXPUNGE, APPEND, COPY, MOVE, SEARCH, FETCH, IDLE, re-SELECT — each
//! session keeping the state the server told it and checking every
//! response against it:
//!
//! - sequence numbers: `* n EXPUNGE` and `* n FETCH` name a message the
//!   session knows (n ≤ EXISTS), EXISTS never shrinks except by EXPUNGE
//!   or VANISHED, and no EXPUNGE arrives during FETCH, STORE or SEARCH
//!   (RFC 9051 §7.4.1);
//! - UIDs: a FETCH's UID for a sequence number never changes, UIDs
//!   ascend with sequence numbers (RFC 9051 §2.3.1.1), VANISHED names
//!   known UIDs only or ones already gone, UIDNEXT never goes down;
//! - flags: every keyword in a FETCH was named in the session's last
//!   `* FLAGS` (RFC 3501 §7.2.6, RFC 9051 §7.3.5);
//! - CONDSTORE: a message's MODSEQ never goes down, HIGHESTMODSEQ never
//!   goes down (RFC 7162 §3.1);
//! - every tagged reply is OK (or an expected NO), and SEARCH results name
//!   known sequence numbers.
//!
//! Bounded: a fixed number of sessions and operations, a deadline, and a
//! read timeout; it fails on the first inconsistency with the session's
//! transcript tail.

mod common;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// A parsed response token.
#[derive(Debug, Clone)]
enum Tok {
    Atom(String),
    Str(#[allow(dead_code)] Vec<u8>),
    List(Vec<Tok>),
}

impl Tok {
    fn atom(&self) -> Option<&str> {
        match self {
            Tok::Atom(a) => Some(a),
            _ => None,
        }
    }
    fn list(&self) -> Option<&[Tok]> {
        match self {
            Tok::List(l) => Some(l),
            _ => None,
        }
    }
}

/// Tokens of one response (literals already inlined as `Str`).
fn parse(mut b: &[u8]) -> Vec<Tok> {
    fn one(b: &mut &[u8]) -> Option<Tok> {
        while b.first() == Some(&b' ') {
            *b = &b[1..];
        }
        match *b.first()? {
            b'(' => {
                *b = &b[1..];
                let mut v = Vec::new();
                loop {
                    while b.first() == Some(&b' ') {
                        *b = &b[1..];
                    }
                    match b.first() {
                        Some(b')') => {
                            *b = &b[1..];
                            return Some(Tok::List(v));
                        }
                        None => return Some(Tok::List(v)),
                        _ => v.push(one(b)?),
                    }
                }
            }
            b')' => None,
            b'"' => {
                let mut out = Vec::new();
                let mut i = 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    if i < b.len() {
                        out.push(b[i]);
                    }
                    i += 1;
                }
                *b = &b[(i + 1).min(b.len())..];
                Some(Tok::Str(out))
            }
            0 => {
                // An inlined literal: 0, length (8 bytes), bytes.
                let n = u64::from_be_bytes(b[1..9].try_into().unwrap()) as usize;
                let s = b[9..9 + n].to_vec();
                *b = &b[9 + n..];
                Some(Tok::Str(s))
            }
            _ => {
                // An atom; `BODY[...]<...>` keeps its brackets.
                let mut i = 0;
                let mut depth = 0;
                while i < b.len() {
                    match b[i] {
                        b'[' => depth += 1,
                        b']' => depth -= 1,
                        b' ' | b')' | b'(' if depth == 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                let a = String::from_utf8_lossy(&b[..i]).to_string();
                *b = &b[i..];
                Some(Tok::Atom(a))
            }
        }
    }
    let mut out = Vec::new();
    while let Some(t) = one(&mut b) {
        out.push(t);
    }
    out
}

/// What a session was told about its selected mailbox.
#[derive(Default)]
struct View {
    /// UID per sequence number (0: not told yet).
    uids: Vec<u32>,
    /// Every UID the session learned and was not told is gone.
    known: BTreeSet<u32>,
    /// UIDs gone (expunged or vanished): never seen again.
    gone: BTreeSet<u32>,
    keywords: BTreeSet<String>,
    modseq: HashMap<u32, u64>,
    highest_modseq: u64,
    uidnext: u32,
}

struct Session {
    name: String,
    reader: BufReader<TcpStream>,
    stream: TcpStream,
    tag: u32,
    view: Option<View>,
    mailbox: String,
    condstore: bool,
    qresync: bool,
    /// The last lines, for the failure report.
    log: VecDeque<String>,
    rng: u64,
    /// Which session saw each (mailbox, UID) with \Recent (RFC 3501
    /// §2.3.2: one session at most), shared by all sessions.
    recent: Recent,
}

type Recent = std::sync::Arc<std::sync::Mutex<HashMap<(String, u32), String>>>;

/// Keywords, one of them in two spellings (keywords are atoms compared
/// as the server keeps them).
const KEYWORDS: &[&str] = &[
    "$Label1", "$Label2", "$Label3", "$Work", "Junk", "$Todo", "$label3",
];
const MAILBOXES: &[&str] = &["INBOX", "Shared"];

impl Session {
    fn new(addr: std::net::SocketAddr, name: String, seed: u64, recent: Recent) -> Session {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut s = Session {
            name,
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
            tag: 0,
            view: None,
            mailbox: String::new(),
            condstore: false,
            qresync: false,
            log: VecDeque::new(),
            rng: seed | 1,
            recent,
        };
        let greeting = s.read_response();
        assert!(
            greeting.starts_with(b"* OK"),
            "{}",
            String::from_utf8_lossy(&greeting)
        );
        s
    }

    fn rand(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }

    fn fail(&self, why: &str) -> ! {
        let tail: Vec<&str> = self.log.iter().map(String::as_str).collect();
        let view = self
            .view
            .as_ref()
            .map(|v| format!("{:?}", v.uids))
            .unwrap_or_default();
        panic!(
            "session {}: {why}\n--- its view (UID per sequence number, 0: not told): {view}\n--- last lines of the session:\n{}",
            self.name,
            tail.join("")
        );
    }

    fn note(&mut self, line: &str) {
        if self.log.len() >= 400 {
            self.log.pop_front();
        }
        let mut l = line.to_string();
        if l.len() > 300 {
            l.truncate(300);
            l.push_str("…\n");
        }
        self.log.push_back(l);
    }

    /// One response, literals inlined as NUL + 8-byte length + bytes.
    fn read_response(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => self.fail("connection closed"),
                Err(e) => self.fail(&format!("read: {e}")),
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line).to_string();
            self.note(&format!("S: {text}"));
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            let lit = trimmed
                .strip_suffix(b"}")
                .and_then(|t| t.iter().rposition(|&c| c == b'{').map(|p| &t[p + 1..]))
                .and_then(|n| {
                    std::str::from_utf8(n)
                        .ok()?
                        .trim_end_matches('+')
                        .parse::<usize>()
                        .ok()
                });
            match lit {
                Some(n) => {
                    let head = &trimmed[..trimmed.iter().rposition(|&c| c == b'{').unwrap()];
                    out.extend_from_slice(head);
                    let mut buf = vec![0u8; n];
                    if let Err(e) = self.reader.read_exact(&mut buf) {
                        self.fail(&format!("literal: {e}"));
                    }
                    out.push(0);
                    out.extend_from_slice(&(n as u64).to_be_bytes());
                    out.extend_from_slice(&buf);
                }
                None => {
                    out.extend_from_slice(trimmed);
                    return out;
                }
            }
        }
    }

    fn send(&mut self, data: &str) {
        self.note(&format!("C: {data}"));
        if let Err(e) = self.stream.write_all(data.as_bytes()) {
            self.fail(&format!("write: {e}"));
        }
    }

    /// Runs a command (`verb` for the EXPUNGE rule), checking every
    /// untagged response; returns the tagged status text and the untagged
    /// responses.
    fn cmd(&mut self, cmd: &str) -> (String, Vec<Vec<Tok>>) {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.send(&format!("{tag} {cmd}\r\n"));
        self.until(&tag, cmd)
    }

    fn until(&mut self, tag: &str, cmd: &str) -> (String, Vec<Vec<Tok>>) {
        let verb = cmd
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let second = cmd
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_ascii_uppercase();
        // RFC 9051 §7.4.1: no EXPUNGE during FETCH, STORE, SEARCH (the UID
        // forms excepted).
        let no_expunge = matches!(verb.as_str(), "FETCH" | "STORE" | "SEARCH");
        let _ = second;
        let mut untagged = Vec::new();
        loop {
            let r = self.read_response();
            if r.starts_with(format!("{tag} ").as_bytes()) {
                let text = String::from_utf8_lossy(&r[tag.len() + 1..]).to_string();
                self.check_status(&text);
                return (text, untagged);
            }
            if r.starts_with(b"+") {
                untagged.push(vec![Tok::Atom("+".into())]);
                return ("+".into(), untagged);
            }
            let toks = parse(&r);
            self.check_untagged(&toks, no_expunge);
            untagged.push(toks);
        }
    }

    fn check_status(&mut self, text: &str) {
        // Response codes in a tagged or untagged status.
        if let Some(code) = text
            .split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(c, _)| c)
        {
            let mut w = code.split_whitespace();
            match (w.next(), w.next().and_then(|n| n.parse::<u64>().ok())) {
                (Some("UIDNEXT"), Some(n)) => {
                    if let Some(v) = &mut self.view {
                        if (n as u32) < v.uidnext {
                            let was = v.uidnext;
                            self.fail(&format!("UIDNEXT went down from {was} to {n}"));
                        }
                        v.uidnext = n as u32;
                    }
                }
                (Some("HIGHESTMODSEQ"), Some(n)) => {
                    if let Some(v) = &mut self.view {
                        if n < v.highest_modseq {
                            let was = v.highest_modseq;
                            self.fail(&format!("HIGHESTMODSEQ went down from {was} to {n}"));
                        }
                        v.highest_modseq = n;
                    }
                }
                _ => {}
            }
        }
    }

    fn check_untagged(&mut self, t: &[Tok], no_expunge: bool) {
        if t.first().and_then(Tok::atom) != Some("*") {
            self.fail("an untagged response that does not start with *");
        }
        let Some(first) = t.get(1).and_then(Tok::atom) else {
            return;
        };
        let second = t.get(2).and_then(Tok::atom).map(str::to_ascii_uppercase);
        if first.eq_ignore_ascii_case("OK") || first.eq_ignore_ascii_case("NO") {
            let text: Vec<String> = t[2..]
                .iter()
                .filter_map(|x| x.atom().map(String::from))
                .collect();
            self.check_status(&text.join(" "));
            return;
        }
        if first.eq_ignore_ascii_case("FLAGS") {
            if let (Some(v), Some(list)) = (&mut self.view, t.get(2).and_then(Tok::list)) {
                v.keywords = list
                    .iter()
                    .filter_map(Tok::atom)
                    .filter(|f| !f.starts_with('\\'))
                    .map(String::from)
                    .collect();
            }
            return;
        }
        if first.eq_ignore_ascii_case("VANISHED") {
            let earlier = t.get(2).and_then(Tok::list).is_some();
            let set = t
                .get(if earlier { 3 } else { 2 })
                .and_then(Tok::atom)
                .unwrap_or("");
            let uids = expand(set);
            let Some(v) = &mut self.view else { return };
            for u in uids {
                if let Some(p) = v.uids.iter().position(|&x| x == u) {
                    v.uids.remove(p);
                } else if !earlier && !v.gone.contains(&u) {
                    // A message announced by EXISTS whose UID the session
                    // has not fetched yet: the slot between the known UIDs
                    // around `u` (all such slots look alike).
                    // A slot can hold `u` when the known UIDs before it
                    // are lower and those after it higher.
                    let fits = |p: usize| {
                        v.uids[p] == 0
                            && v.uids[..p].iter().all(|&x| x < u)
                            && v.uids[p + 1..].iter().all(|&x| x == 0 || x > u)
                    };
                    if let Some(p) = (0..v.uids.len()).find(|&p| fits(p)) {
                        v.uids.remove(p);
                    }
                }
                v.known.remove(&u);
                v.gone.insert(u);
            }
            return;
        }
        let Ok(n) = first.parse::<usize>() else {
            return;
        };
        match second.as_deref() {
            Some("EXISTS") => {
                let Some(v) = &mut self.view else { return };
                if n < v.uids.len() {
                    let had = v.uids.len();
                    self.fail(&format!("EXISTS {n} after {had}: shrank without EXPUNGE"));
                }
                v.uids.resize(n, 0);
            }
            Some("EXPUNGE") => {
                if no_expunge {
                    self.fail("EXPUNGE during FETCH, STORE or SEARCH (RFC 9051 §7.4.1)");
                }
                let Some(v) = &mut self.view else { return };
                if n == 0 || n > v.uids.len() {
                    let len = v.uids.len();
                    self.fail(&format!("EXPUNGE {n} with {len} messages"));
                }
                let u = v.uids.remove(n - 1);
                if u != 0 {
                    v.known.remove(&u);
                    v.gone.insert(u);
                }
            }
            Some("FETCH") => self.check_fetch(n, t.get(3).and_then(Tok::list).unwrap_or(&[])),
            Some("RECENT") => {}
            _ => {}
        }
        if first.eq_ignore_ascii_case("SEARCH") {
            let len = self.view.as_ref().map_or(0, |v| v.uids.len());
            let _ = len;
        }
    }

    fn check_fetch(&mut self, n: usize, items: &[Tok]) {
        let Some(v) = &mut self.view else { return };
        if n == 0 || n > v.uids.len() {
            let len = v.uids.len();
            self.fail(&format!("FETCH for message {n} of {len}"));
        }
        let mut i = 0;
        let mut uid = None;
        let mut flags: Option<Vec<String>> = None;
        let mut modseq = None;
        while i + 1 < items.len() {
            let key = items[i].atom().unwrap_or("").to_ascii_uppercase();
            match key.as_str() {
                "UID" => uid = items[i + 1].atom().and_then(|a| a.parse::<u32>().ok()),
                "FLAGS" => {
                    flags = items[i + 1]
                        .list()
                        .map(|l| l.iter().filter_map(Tok::atom).map(String::from).collect())
                }
                "MODSEQ" => {
                    modseq = items[i + 1]
                        .list()
                        .and_then(|l| l.first()?.atom()?.parse::<u64>().ok())
                }
                _ => {}
            }
            i += 2;
        }
        // RFC 7162 §3.2.4: with QRESYNC every FETCH response has the UID.
        if self.qresync && uid.is_none() {
            self.fail("a FETCH response without UID while QRESYNC is enabled");
        }
        let Some(v) = &mut self.view else { return };
        if let Some(u) = uid {
            let at = v.uids[n - 1];
            if at != 0 && at != u {
                self.fail(&format!("message {n} was UID {at}, now FETCH says UID {u}"));
            }
            if v.gone.contains(&u) {
                self.fail(&format!("FETCH of UID {u}, which was expunged"));
            }
            // RFC 9051 §2.3.1.1: UIDs ascend with sequence numbers.
            let before = v.uids[..n - 1].iter().rev().find(|&&x| x != 0).copied();
            let after = v.uids[n..].iter().find(|&&x| x != 0).copied();
            if before.is_some_and(|b| b >= u) || after.is_some_and(|a| a <= u) {
                self.fail(&format!(
                    "UID {u} at {n} is out of order ({before:?} before, {after:?} after)"
                ));
            }
            v.uids[n - 1] = u;
            v.known.insert(u);
        }
        if let (Some(f), Some(u)) = (&flags, uid.or(Some(v.uids[n - 1])).filter(|&u| u != 0))
            && f.iter().any(|x| x.eq_ignore_ascii_case("\\Recent"))
        {
            let key = (self.mailbox.clone(), u);
            let mine = self.name.clone();
            let other = {
                let mut r = self.recent.lock().unwrap();
                let holder = r.entry(key).or_insert_with(|| mine.clone());
                (holder != &mine).then(|| holder.clone())
            };
            if let Some(other) = other {
                self.fail(&format!(
                    "UID {u} is \\Recent here and in session {other} (RFC 3501 §2.3.2)"
                ));
            }
        }
        let Some(v) = &mut self.view else { return };
        if let Some(f) = flags {
            for k in f.iter().filter(|f| !f.starts_with('\\')) {
                if !v.keywords.contains(k) {
                    let known = v.keywords.clone();
                    self.fail(&format!(
                        "FETCH FLAGS carries keyword {k} not announced in FLAGS {known:?} (RFC 3501 §7.2.6)"
                    ));
                }
            }
        }
        if let (Some(m), Some(u)) = (modseq, uid.or(Some(v.uids[n - 1])).filter(|&u| u != 0)) {
            let was = v.modseq.get(&u).copied().unwrap_or(0);
            if m < was {
                self.fail(&format!("MODSEQ of UID {u} went down from {was} to {m}"));
            }
            v.modseq.insert(u, m);
        }
    }

    fn ok(&mut self, cmd: &str) -> Vec<Vec<Tok>> {
        let (status, u) = self.cmd(cmd);
        if !status.starts_with("OK") {
            self.fail(&format!("{cmd}: {status}"));
        }
        u
    }

    fn select(&mut self, mailbox: &str) {
        self.view = Some(View::default());
        self.mailbox = mailbox.to_string();
        let cmd = if self.condstore && !self.qresync {
            format!("SELECT {mailbox} (CONDSTORE)")
        } else {
            format!("SELECT {mailbox}")
        };
        self.ok(&cmd);
        // Learn every UID.
        if !self.view.as_ref().unwrap().uids.is_empty() {
            self.ok("UID FETCH 1:* (FLAGS)");
        }
    }

    fn random_set(&mut self) -> Option<String> {
        let len = self.view.as_ref()?.uids.len() as u64;
        if len == 0 {
            return None;
        }
        let a = self.rand(len) + 1;
        let b = (a + self.rand(4)).min(len);
        Some(format!("{a}:{b}"))
    }

    fn random_uid_set(&mut self) -> Option<String> {
        let known: Vec<u32> = self
            .view
            .as_ref()?
            .uids
            .iter()
            .copied()
            .filter(|&u| u != 0)
            .collect();
        if known.is_empty() {
            return None;
        }
        let a = known[self.rand(known.len() as u64) as usize];
        Some(format!("{a}:{}", a + self.rand(5) as u32))
    }

    fn flag(&mut self) -> String {
        const SYSTEM: &[&str] = &["\\Seen", "\\Flagged", "\\Answered", "\\Deleted"];
        match self.rand(8) {
            0..=3 => SYSTEM[self.rand(SYSTEM.len() as u64) as usize].to_string(),
            // Now and then a keyword nobody used before.
            4 => {
                let n = self.rand(1000);
                format!("$New{}x{n}", self.name)
            }
            _ => KEYWORDS[self.rand(KEYWORDS.len() as u64) as usize].to_string(),
        }
    }

    fn step(&mut self, n: u32) {
        let other = if self.mailbox == "INBOX" {
            "Shared"
        } else {
            "INBOX"
        };
        match self.rand(20) {
            0..=4 => {
                if let Some(set) = self.random_set() {
                    let (f1, f2) = (self.flag(), self.flag());
                    let op = ["+FLAGS", "-FLAGS", "FLAGS", "+FLAGS.SILENT"][self.rand(4) as usize];
                    self.ok(&format!("STORE {set} {op} ({f1} {f2})"));
                }
            }
            5..=6 => {
                if let Some(set) = self.random_uid_set() {
                    let f = self.flag();
                    self.ok(&format!("UID STORE {set} +FLAGS ({f})"));
                }
            }
            7 => {
                self.ok("EXPUNGE");
            }
            8 => {
                if let Some(set) = self.random_uid_set() {
                    self.ok(&format!("UID EXPUNGE {set}"));
                }
            }
            9..=10 => {
                let k = self.flag();
                let k = if k == "\\Deleted" {
                    "$Work".to_string()
                } else {
                    k
                };
                let body = format!("Subject: m{n} from {}\r\n\r\nbody {n}\r\n", self.name);
                let target = MAILBOXES[self.rand(2) as usize];
                self.tag += 1;
                let tag = format!("t{}", self.tag);
                self.send(&format!(
                    "{tag} APPEND {target} ({k}) {{{}+}}\r\n{body}\r\n",
                    body.len()
                ));
                let (status, _) = self.until(&tag, "APPEND");
                if !status.starts_with("OK") {
                    self.fail(&format!("APPEND: {status}"));
                }
            }
            11 => {
                if let Some(set) = self.random_set() {
                    self.ok(&format!("COPY {set} {other}"));
                }
            }
            12 => {
                if let Some(set) = self.random_uid_set() {
                    self.ok(&format!("UID MOVE {set} {other}"));
                }
            }
            13 => {
                let k = KEYWORDS[self.rand(KEYWORDS.len() as u64) as usize];
                let u = self.ok(&format!("SEARCH KEYWORD {k}"));
                let len = self.view.as_ref().map_or(0, |v| v.uids.len());
                for r in u {
                    if r.get(1).and_then(Tok::atom) == Some("SEARCH") {
                        for x in &r[2..] {
                            let n: usize = x.atom().and_then(|a| a.parse().ok()).unwrap_or(0);
                            if n == 0 || n > len {
                                self.fail(&format!("SEARCH result {n} with {len} messages"));
                            }
                        }
                    }
                }
            }
            14 => {
                self.ok("FETCH 1:* (UID FLAGS)");
            }
            15 => {
                if let Some(set) = self.random_uid_set() {
                    let item = if self.condstore {
                        "(FLAGS MODSEQ)"
                    } else {
                        "(FLAGS)"
                    };
                    self.ok(&format!("UID FETCH {set} {item}"));
                }
            }
            16 => {
                // IDLE briefly: whatever arrives is checked as it comes.
                let (status, _) = self.cmd("IDLE");
                if status != "+" {
                    self.fail(&format!("IDLE: {status}"));
                }
                std::thread::sleep(Duration::from_millis(self.rand(30)));
                let tag = format!("t{}", self.tag);
                self.send("DONE\r\n");
                let (status, _) = self.until(&tag, "IDLE");
                if !status.starts_with("OK") {
                    self.fail(&format!("IDLE: {status}"));
                }
            }
            17 => {
                let m = MAILBOXES[self.rand(2) as usize];
                self.select(m);
            }
            _ => {
                self.ok("NOOP");
            }
        }
    }
}

/// A barrier that counts a session as arrived when its guard drops, on a
/// panic too, and whose wait is bounded: one failing session must never
/// leave the others waiting (std's `Barrier` would, and did, until CI's
/// time ran out).
struct Rendezvous {
    state: std::sync::Mutex<(usize, bool)>,
    cv: std::sync::Condvar,
}

struct Arrival<'a>(&'a Rendezvous);

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 = st.0.saturating_sub(1);
        st.1 |= std::thread::panicking();
        self.0.cv.notify_all();
    }
}

impl Rendezvous {
    fn new(n: usize) -> Rendezvous {
        Rendezvous {
            state: std::sync::Mutex::new((n, false)),
            cv: std::sync::Condvar::new(),
        }
    }

    fn arrival(&self) -> Arrival<'_> {
        Arrival(self)
    }

    /// True when every session arrived without a panic within `limit`.
    fn wait(&self, limit: Duration) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (st, _) = self
            .cv
            .wait_timeout_while(st, limit, |st| st.0 > 0 && !st.1)
            .unwrap_or_else(|e| e.into_inner());
        st.0 == 0 && !st.1
    }
}

/// The UIDs of a sequence set with no `*`.
fn expand(set: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for r in set.split(',') {
        let (a, b) = r.split_once(':').unwrap_or((r, r));
        let (a, b): (u32, u32) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
        let (lo, hi) = (a.min(b), a.max(b));
        if hi - lo < 100_000 {
            out.extend(lo..=hi);
        }
    }
    out
}

/// Eight sessions of alice, some CONDSTORE, some QRESYNC, IMAP4rev1 and
/// IMAP4rev2, 400 random operations each on INBOX and Shared (which start
/// with 30 messages each), every response checked against what the
/// session was told; within 60 seconds.
#[test]
fn rfc9051_sessions_stay_consistent_under_concurrent_changes() {
    let s = Server::start("");
    let addr = s.addr("imap");
    {
        let mut setup = Session::new(addr, "setup".into(), 1, Recent::default());
        setup.ok("LOGIN alice@example.test alice-pw");
        setup.ok("CREATE Shared");
        for m in MAILBOXES {
            for i in 0..30 {
                let body = format!("Subject: seed {i}\r\n\r\nseed\r\n");
                setup.tag += 1;
                let tag = format!("t{}", setup.tag);
                setup.send(&format!(
                    "{tag} APPEND {m} {{{}+}}\r\n{body}\r\n",
                    body.len()
                ));
                let (st, _) = setup.until(&tag, "APPEND");
                assert!(st.starts_with("OK"), "{st}");
            }
        }
        setup.ok("LOGOUT");
    }
    let ops: u32 = std::env::var("POSTAMT_STRESS_OPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let deadline = Instant::now() + Duration::from_secs(60);
    let barrier = std::sync::Arc::new(Rendezvous::new(8));
    let recent = Recent::default();
    let threads: Vec<_> = (0..8u64)
        .map(|i| {
            let barrier = std::sync::Arc::clone(&barrier);
            let recent = std::sync::Arc::clone(&recent);
            std::thread::spawn(move || {
                let mut s = Session::new(
                    addr,
                    format!("s{i}"),
                    0x9e37_79b9_7f4a_7c15 ^ (i * 7919 + 1),
                    recent,
                );
                s.ok("LOGIN alice@example.test alice-pw");
                match i % 4 {
                    1 => {
                        s.condstore = true;
                        s.ok("ENABLE CONDSTORE");
                    }
                    2 => {
                        s.condstore = true;
                        s.qresync = true;
                        s.ok("ENABLE QRESYNC");
                    }
                    3 => {
                        s.ok("ENABLE IMAP4rev2");
                    }
                    _ => {}
                }
                // Counts this session as arrived even when it panics, so
                // the others never wait for it.
                let arrived = barrier.arrival();
                s.select(MAILBOXES[(i % 2) as usize]);
                let mut done = 0;
                for n in 0..ops {
                    if Instant::now() > deadline {
                        break;
                    }
                    s.step(n);
                    done += 1;
                }
                // A last full check once every session is done (while
                // others change the mailbox, a FETCH may leave out what
                // they expunged, RFC 2180 §4.1): the view equals the
                // server's listing.
                drop(arrived);
                if !barrier.wait(Duration::from_secs(90)) {
                    s.fail("another session failed or never finished");
                }
                s.ok("NOOP");
                let listing = s.ok("UID FETCH 1:* (UID)");
                let v = s.view.as_ref().unwrap();
                let uids: Vec<u32> = v.uids.clone();
                // Distinct messages (flag updates may come as FETCH too).
                let fetched = listing
                    .iter()
                    .filter(|r| r.get(2).and_then(Tok::atom) == Some("FETCH"))
                    .filter_map(|r| r.get(1)?.atom()?.parse::<usize>().ok())
                    .collect::<BTreeSet<usize>>()
                    .len();
                if fetched != uids.len() {
                    s.fail(&format!(
                        "{} messages in the view, {fetched} fetched",
                        uids.len()
                    ));
                }
                if uids.contains(&0) {
                    s.fail("a message whose UID was never told after FETCH 1:*");
                }
                s.ok("LOGOUT");
                done
            })
        })
        .collect();
    let mut total = 0;
    for t in threads {
        total += t.join().expect("a session found an inconsistency");
    }
    assert!(total >= 8 * 50, "only {total} operations in the time");
}
