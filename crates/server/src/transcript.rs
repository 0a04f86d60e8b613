//! Session transcripts: every line a client and the server exchange,
//! timestamped, with credentials and AUTH payloads masked and message
//! bodies cut after a configurable size. One file per session under
//! `data_dir/transcripts/`, read back by `postamt trace list|show`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct TranscriptConfig {
    pub dir: PathBuf,
    /// Bytes of a message body kept before `[… N more bytes]`.
    pub body_limit: usize,
    /// Transcript files kept; the oldest are removed beyond this.
    pub keep: usize,
    /// Bytes written to one transcript before it is cut off, so a client
    /// cannot fill the disk by chattering.
    pub max_bytes: usize,
}

/// Makes transcripts for new sessions.
#[derive(Debug)]
pub struct Transcripts {
    config: TranscriptConfig,
    counter: AtomicU64,
    /// Ids of the sessions still running: never pruned (their transcript
    /// is being written, and someone may be following it).
    live: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl Transcripts {
    pub fn new(config: TranscriptConfig) -> std::io::Result<Transcripts> {
        std::fs::create_dir_all(&config.dir)?;
        Ok(Transcripts {
            config,
            counter: AtomicU64::new(0),
            live: Arc::default(),
        })
    }

    /// Starts the transcript of one session.
    pub fn start(&self, protocol: &str, peer: std::net::SocketAddr) -> Option<Transcript> {
        let (secs, micros) = now();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{secs}-{:06}-{n:04}-{protocol}",
            std::process::id() % 1_000_000
        );
        let path = self.config.dir.join(format!("{id}.log"));
        let file = File::create(&path).ok()?;
        let mut w = BufWriter::new(file);
        let _ = writeln!(
            w,
            "# postamt transcript {id}: {protocol} session from {peer} at {secs}.{micros:06}"
        );
        if let Ok(mut live) = self.live.lock() {
            live.insert(format!("{id}.log"));
        }
        if n.is_multiple_of(64) {
            let live = self.live.lock().map(|l| l.clone()).unwrap_or_default();
            prune(&self.config.dir, self.config.keep, &live);
        }
        Some(Transcript {
            id: id.as_str().into(),
            inner: Arc::new(Mutex::new(Inner {
                out: w,
                body_limit: self.config.body_limit,
                body_seen: 0,
                body_cut: 0,
                written: 0,
                max_bytes: self.config.max_bytes,
                cut_off: false,
                live: Arc::clone(&self.live),
                file_name: format!("{id}.log"),
            })),
        })
    }
}

/// The transcript of one session. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Transcript {
    id: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    out: BufWriter<File>,
    body_limit: usize,
    body_seen: usize,
    body_cut: usize,
    written: usize,
    max_bytes: usize,
    cut_off: bool,
    /// The set of running sessions, which this one leaves when dropped.
    live: Arc<Mutex<std::collections::HashSet<String>>>,
    file_name: String,
}

fn now() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_micros())
}

fn printable(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    s.trim_end_matches(['\r', '\n'])
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

impl Transcript {
    /// The id `trace show` and the web interface know it by.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn write(&self, who: &str, text: &str) {
        if let Ok(mut i) = self.inner.lock() {
            if i.cut_off {
                return;
            }
            let (s, us) = now();
            if i.written + text.len() > i.max_bytes {
                i.cut_off = true;
                let written = i.written;
                let _ = writeln!(
                    i.out,
                    "{s}.{us:06} -- [transcript cut off after {written} bytes]"
                );
                return;
            }
            i.written += text.len() + 20;
            let _ = writeln!(i.out, "{s}.{us:06} {who} {text}");
        }
    }

    /// A command line from the client, with secrets masked: the argument of
    /// `PASS`, the initial response of `AUTH MECH …`, and a lone base64
    /// token that is not one of the protocol's `verbs` (a SASL response
    /// sent after an exchange was refused may carry a password).
    pub fn client_command(&self, line: &[u8], verbs: &[&str]) {
        let text = String::from_utf8_lossy(line);
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        let first = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        if first == "PASS" {
            self.client_masked("PASS");
        } else if first == "AUTH" && words.len() > 2 {
            self.client_masked(&format!("AUTH {}", words[1]));
        } else if words.len() == 1
            && looks_like_base64(words[0])
            && !verbs.iter().any(|v| v.eq_ignore_ascii_case(words[0]))
        {
            self.client_masked("(base64 line, masked)");
        } else {
            self.client(line);
        }
    }

    /// A line the client sent.
    pub fn client(&self, line: &[u8]) {
        self.write("C:", &printable(line));
    }

    /// A client line with a secret: only `shown` is written, then `****`.
    pub fn client_masked(&self, shown: &str) {
        self.write("C:", &format!("{shown} ****"));
    }

    /// Message content the client sent (DATA, BDAT), cut like bodies.
    pub fn client_body(&self, content: &[u8]) {
        let limit = self.inner.lock().map(|i| i.body_limit).unwrap_or(0);
        let mut used = 0;
        for line in content.split_inclusive(|&b| b == b'\n') {
            if used + line.len() > limit {
                self.write(
                    "C:",
                    &format!("[… {} more bytes not recorded]", content.len() - used),
                );
                return;
            }
            used += line.len();
            self.write("C:", &printable(line));
        }
    }

    /// A line the server sent.
    pub fn server(&self, line: &[u8]) {
        self.write("S:", &printable(line));
    }

    /// What the server sent, a line at a time (a multi-line reply, several
    /// pipelined replies).
    pub fn server_lines(&self, bytes: &[u8]) {
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            self.server(line);
        }
    }

    /// A line of a message body the server sent (or received); bodies are
    /// cut after the configured limit.
    pub fn server_body(&self, line: &[u8]) {
        let keep = match self.inner.lock() {
            Ok(mut i) => {
                i.body_seen += line.len();
                if i.body_seen > i.body_limit {
                    i.body_cut += line.len();
                    false
                } else {
                    true
                }
            }
            Err(_) => false,
        };
        if keep {
            self.write("S:", &printable(line));
        }
    }

    /// Ends a body: notes how much was cut and resets the counter.
    pub fn end_body(&self) {
        let cut = match self.inner.lock() {
            Ok(mut i) => {
                let cut = i.body_cut;
                i.body_seen = 0;
                i.body_cut = 0;
                cut
            }
            Err(_) => 0,
        };
        if cut > 0 {
            self.write("S:", &format!("[… {cut} more bytes not recorded]"));
        }
    }

    /// A remark of the server (TLS started, session ended, …).
    /// Records who the session logged in as (`-- authenticated as …`):
    /// the web interface shows a user the sessions that carry their name.
    pub fn authenticated(&self, user: &str) {
        self.note(&format!("{AUTHENTICATED_AS}{user}"));
    }

    pub fn note(&self, text: &str) {
        self.write("--", text);
    }

    pub fn flush(&self) {
        if let Ok(mut i) = self.inner.lock() {
            let _ = i.out.flush();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.out.flush();
        if let Ok(mut live) = self.live.lock() {
            live.remove(&self.file_name);
        }
    }
}

fn looks_like_base64(w: &str) -> bool {
    w.len() >= 4
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// Removes the oldest transcripts beyond `keep`, except those of sessions
/// still running (`live`: file names).
fn prune(dir: &Path, keep: usize, live: &std::collections::HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| live.contains(n))
        })
        .collect();
    if names.len() <= keep {
        return;
    }
    names.sort();
    for p in &names[..names.len() - keep] {
        let _ = std::fs::remove_file(p);
    }
}

/// The words of [`Transcript::authenticated`].
const AUTHENTICATED_AS: &str = "authenticated as ";

/// The accounts a transcript says its session logged in as (lower-cased).
pub fn users_of(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (_, who, said) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        if who == Some("--")
            && let Some(user) = said.strip_prefix(AUTHENTICATED_AS)
        {
            let user = user.trim().to_lowercase();
            if !out.contains(&user) {
                out.push(user);
            }
        }
    }
    out
}

/// Transcript ids in `dir`, oldest first (no file is read).
pub fn ids(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| {
            p.file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Transcript ids in `dir`, oldest first, with their first line.
pub fn list(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    Ok(ids(dir)?
        .into_iter()
        .map(|id| {
            let first = first_line(&dir.join(format!("{id}.log")));
            (id, first)
        })
        .collect())
}

/// The first line of a file (at most 1 KiB of it): a transcript's header.
fn first_line(path: &Path) -> String {
    use std::io::{BufRead, Read};
    let Ok(f) = File::open(path) else {
        return String::new();
    };
    let mut line = Vec::new();
    let _ = std::io::BufReader::new(f.take(1024)).read_until(b'\n', &mut line);
    String::from_utf8_lossy(&line).trim_end().to_string()
}

/// `postamt trace follow`: the lines transcripts get while it watches,
/// of every protocol, each marked with its transcript's id. Sessions
/// already running are followed from where they are; a session that
/// starts later from its first line. Only whole lines are shown.
pub struct Follower {
    dir: std::path::PathBuf,
    explain: Option<postamt_wire::explain::Lang>,
    /// Per transcript: bytes read, and with `explain` the whole lines read
    /// so far (explanations depend on what came before) and how many of
    /// them were shown.
    seen: std::collections::HashMap<String, (u64, String, usize)>,
}

impl Follower {
    /// Starts watching `dir`; with `explain`, each line comes with what
    /// it means.
    pub fn new(dir: &Path, explain: Option<postamt_wire::explain::Lang>) -> Follower {
        let mut f = Follower {
            dir: dir.to_path_buf(),
            explain,
            seen: Default::default(),
        };
        // What is there now is the past: only what comes after is shown
        // (but the past of a running session is read, for explanations).
        let _ = f.poll();
        f
    }

    /// The new whole lines since the last call, as `id | line` (and an
    /// explanation line below each one that has one).
    pub fn poll(&mut self) -> Vec<String> {
        use std::io::{Read, Seek};
        let mut out = Vec::new();
        let Ok(all) = list(&self.dir) else {
            return out;
        };
        let ids: std::collections::HashSet<&str> = all.iter().map(|(i, _)| i.as_str()).collect();
        // Transcripts removed (rotated away) are forgotten.
        self.seen.retain(|id, _| ids.contains(id.as_str()));
        for (id, _) in &all {
            let entry = self.seen.entry(id.clone()).or_insert((0, String::new(), 0));
            let Ok(mut file) = std::fs::File::open(self.dir.join(format!("{id}.log"))) else {
                continue;
            };
            if file.seek(std::io::SeekFrom::Start(entry.0)).is_err() {
                continue;
            }
            let mut fresh = Vec::new();
            // At most 1 MiB a look: a transcript is bounded anyway.
            if file.take(1 << 20).read_to_end(&mut fresh).is_err() {
                continue;
            }
            let Some(end) = fresh.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            entry.0 += end as u64 + 1;
            let fresh = String::from_utf8_lossy(&fresh[..=end]);
            let Some(lang) = self.explain else {
                out.extend(fresh.lines().map(|l| format!("{id} | {l}")));
                continue;
            };
            // Explanations depend on what came before: the whole text is
            // explained again (a transcript is bounded by `max_bytes`).
            entry.1.push_str(&fresh);
            let lines = explained_lines(&entry.1, lang);
            for e in &lines[entry.2.min(lines.len())..] {
                out.extend(e.rendered().map(|l| format!("{id} | {l}")));
            }
            entry.2 = lines.len();
        }
        out
    }
}

/// The transcript with this id, or the one whose id holds `id` anywhere
/// (`0002` finds `…-0002-imap`); an exact id wins over parts of others.
pub fn show(dir: &Path, id: &str) -> std::io::Result<String> {
    let all = list(dir)?;
    let exact: Vec<&(String, String)> = all.iter().filter(|(i, _)| i == id).collect();
    let hits: Vec<&(String, String)> = if exact.is_empty() {
        all.iter().filter(|(i, _)| i.contains(id)).collect()
    } else {
        exact
    };
    match hits.as_slice() {
        [one] => std::fs::read_to_string(dir.join(format!("{}.log", one.0))),
        [] => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no transcript {id}"),
        )),
        _ => Err(std::io::Error::other(format!(
            "{id} matches {} transcripts",
            hits.len()
        ))),
    }
}

/// A transcript with each line explained (`postamt trace show
/// --explain`): commands and replies by the same table as the client's
/// `--explain` ([`postamt_wire::explain::Annotator`]), the verification
/// notes (SPF, DKIM, ARC, DMARC) by what their result means. Message
/// content (after `354`, in a BDAT chunk) is not taken for commands.
fn explained_lines(text: &str, lang: postamt_wire::explain::Lang) -> Vec<Explained> {
    use postamt_wire::explain::{self, Annotator, Proto};
    let mut out = Vec::new();
    let mut annotator: Option<Annotator> = None;
    // Client lines that are message content, not commands.
    let mut content = false;
    let mut first_content_line = false;
    for line in text.lines() {
        out.push(Explained {
            line: line.to_string(),
            meaning: None,
            state: None,
        });
        if let Some(rest) = line.strip_prefix("# postamt transcript ") {
            // "ID: PROTOCOL session from …"
            let protocol = rest
                .split_once(": ")
                .and_then(|(_, r)| r.split(' ').next())
                .unwrap_or("");
            let proto = match protocol {
                "pop3" | "pop3s" => Proto::Pop3,
                "imap" | "imaps" => Proto::Imap,
                _ => Proto::Smtp,
            };
            annotator = Some(Annotator::new(proto, lang));
            continue;
        }
        let Some(a) = annotator.as_mut() else {
            continue;
        };
        let mut parts = line.splitn(3, ' ');
        let (_, who, said) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        let e = match who {
            Some("C:") if content => {
                if said == "." {
                    content = false;
                    a.client(said, ".")
                } else if std::mem::take(&mut first_content_line) {
                    a.client(said, "MESSAGE")
                } else {
                    None
                }
            }
            Some("C:") => {
                let verb = said.split(' ').next().unwrap_or("");
                if a.proto == Proto::Smtp && verb.eq_ignore_ascii_case("BDAT") {
                    content = true;
                    first_content_line = false;
                }
                a.client(said, verb)
            }
            Some("S:") => {
                if a.proto == Proto::Smtp {
                    content = said.starts_with("354");
                    first_content_line = content;
                }
                a.server(said)
            }
            Some("--") => explain::verification(said, lang),
            _ => None,
        };
        let state = a.take_state();
        if let Some(last) = out.last_mut() {
            last.meaning = e.map(|e| format!("{} ({})", e.text, e.rfc));
            last.state = state.map(|e| format!("{} ({})", e.text, e.rfc));
        }
    }
    out
}

/// A transcript line and, where there is one, what it means and the
/// state the session is in after it.
struct Explained {
    line: String,
    meaning: Option<String>,
    state: Option<String>,
}

impl Explained {
    /// The line, its meaning below it (`^`), then the state (`=`).
    fn rendered(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(self.line.clone())
            .chain(self.meaning.iter().map(|m| format!("     ^ {m}")))
            .chain(self.state.iter().map(|st| format!("     = {st}")))
    }
}

/// A transcript with each line explained below it (`trace show --explain`).
pub fn explain(text: &str, lang: postamt_wire::explain::Lang) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for e in explained_lines(text, lang) {
        for l in e.rendered() {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// One row of the three-column view of a transcript: what the client
/// sent, what the server answered (one of the two is empty), and what it
/// means, the state the session is in after it included; a note of the
/// server (`--`: verdicts, TLS, the end) has only the third column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableRow {
    /// Seconds since the epoch with microseconds, as the transcript says.
    pub time: String,
    pub client: String,
    pub server: String,
    pub meaning: String,
}

/// A transcript as its header lines (`# …`) and its rows of three columns
/// (the web interface and `trace show --explain --table` alike). Message
/// content is shown as sent.
pub fn table_rows(text: &str, lang: postamt_wire::explain::Lang) -> (Vec<String>, Vec<TableRow>) {
    let mut head = Vec::new();
    let mut rows = Vec::new();
    for e in explained_lines(text, lang) {
        if e.line.starts_with('#') {
            head.push(e.line);
            continue;
        }
        let mut parts = e.line.splitn(3, ' ');
        let (time, who, said) = (
            parts.next().unwrap_or(""),
            parts.next(),
            parts.next().unwrap_or(""),
        );
        let (c, s) = match who {
            Some("C:") => (said.to_string(), String::new()),
            Some("S:") => (String::new(), said.to_string()),
            _ => (String::new(), String::new()),
        };
        let m = match (who, e.meaning) {
            (Some("C:") | Some("S:"), m) => {
                let m = m.unwrap_or_default();
                match &e.state {
                    Some(st) if m.is_empty() => format!("→ {st}"),
                    Some(st) => format!("{m} → {st}"),
                    None => m,
                }
            }
            // Notes of the server (`--`: verdicts, summaries): in the
            // third column, with their own explanation if any.
            (_, m) => match m {
                Some(m) => format!("{said}: {m}"),
                None => said.to_string(),
            },
        };
        if c.is_empty() && s.is_empty() && m.is_empty() {
            continue;
        }
        rows.push(TableRow {
            time: time.to_string(),
            client: c,
            server: s,
            meaning: m,
        });
    }
    (head, rows)
}

/// A transcript as a table of three columns, client line, server line,
/// what it means (`trace show --explain --table`): Markdown, so that it
/// can go into teaching material as it is. Header lines of the transcript
/// (`# …`) stay above the table; message content is shown as sent.
pub fn explain_table(text: &str, lang: postamt_wire::explain::Lang) -> String {
    let (client, server, meaning) = match lang {
        postamt_wire::explain::Lang::De => ("Client", "Server", "Was es bedeutet"),
        _ => ("client", "server", "what it means"),
    };
    let cell = |s: &str| s.replace('\\', "\\\\").replace('|', "\\|");
    let (head, rows) = table_rows(text, lang);
    let mut out = String::new();
    for h in &head {
        out.push_str(h);
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!(
        "| {client} | {server} | {meaning} |\n|---|---|---|\n"
    ));
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            cell(&r.client),
            cell(&r.server),
            cell(&r.meaning)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chatty_session_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transcripts::new(TranscriptConfig {
            dir: dir.path().into(),
            body_limit: 12,
            keep: 100,
            max_bytes: 1000,
        })
        .unwrap();
        let s = t.start("pop3", "127.0.0.1:5".parse().unwrap()).unwrap();
        for _ in 0..1000 {
            s.client(b"CAPA\r\n");
        }
        drop(s);
        let id = &list(dir.path()).unwrap()[0].0;
        let text = show(dir.path(), id).unwrap();
        assert!(text.len() < 2000, "{}", text.len());
        assert!(text.contains("transcript cut off"));
    }

    #[test]
    fn the_transcript_of_a_running_session_is_never_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transcripts::new(TranscriptConfig {
            dir: dir.path().into(),
            body_limit: 12,
            keep: 3,
            max_bytes: 1 << 20,
        })
        .unwrap();
        let held = t.start("smtp", "127.0.0.1:5".parse().unwrap()).unwrap();
        held.server(b"220 ready\r\n");
        let id = held.id().to_string();
        for _ in 0..200 {
            let s = t.start("pop3", "127.0.0.1:6".parse().unwrap()).unwrap();
            s.server(b"+OK\r\n");
        }
        let ids: Vec<String> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert!(
            ids.contains(&id),
            "the running session's transcript was removed"
        );
        assert!(ids.len() <= 3 + 64 + 1, "{} kept", ids.len());
        // Once it ended it is an old transcript like any other.
        drop(held);
        for _ in 0..64 {
            drop(t.start("pop3", "127.0.0.1:6".parse().unwrap()));
        }
        let ids: Vec<String> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert!(!ids.contains(&id));
    }

    #[test]
    fn masks_and_cuts() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transcripts::new(TranscriptConfig {
            dir: dir.path().into(),
            body_limit: 12,
            keep: 100,
            max_bytes: 1 << 20,
        })
        .unwrap();
        let s = t.start("pop3", "127.0.0.1:5".parse().unwrap()).unwrap();
        s.client(b"USER alice\r\n");
        s.client_masked("PASS");
        s.client_command(b"AUTH\tPLAIN\tAGFsaWNlAHNlY3JldA==\r\n", &["AUTH"]);
        s.client_command(b"U2VjcmV0UGFzc3dvcmQ=\r\n", &["STAT"]);
        s.client_command(b"pass hunter2 with spaces\r\n", &[]);
        s.client_command(b"STAT\r\n", &["STAT"]);
        s.server(b"+OK\r\n");
        s.server_body(b"0123456789\r\n");
        s.server_body(b"secret body line\r\n");
        s.end_body();
        drop(s);
        let ids = list(dir.path()).unwrap();
        assert_eq!(ids.len(), 1);
        let text = show(dir.path(), &ids[0].0).unwrap();
        assert!(text.contains("C: USER alice"));
        assert!(text.contains("C: PASS ****"));
        assert!(!text.contains("secret body"));
        assert!(
            !text.contains("AGFsaWNlAHNlY3JldA")
                && !text.contains("U2VjcmV0")
                && !text.contains("hunter2"),
            "{text}"
        );
        assert!(
            text.contains("C: AUTH PLAIN ****") && text.contains("C: STAT"),
            "{text}"
        );
        assert!(text.contains("18 more bytes"));
    }

    #[test]
    fn explained_transcripts_annotate_commands_replies_and_verdicts() {
        use postamt_wire::explain::Lang;
        let t = "# postamt transcript 1-2-3-smtp: smtp session from 127.0.0.1:5 at 1.000000\n\
                 1.1 S: 220 mx.test ESMTP\n\
                 1.2 C: EHLO client.test\n\
                 1.3 S: 250-mx.test\n\
                 1.4 S: 250 PIPELINING\n\
                 1.5 C: MAIL FROM:<ceo@bank.test>\n\
                 1.6 S: 250 2.1.0 OK\n\
                 1.7 C: DATA\n\
                 1.8 S: 354 go ahead\n\
                 1.9 C: From: ceo@bank.test\n\
                 1.10 C: QUIT\n\
                 1.11 C: .\n\
                 1.12 -- SPF: fail (bank.test: -all matched 127.0.0.1)\n\
                 1.13 -- DMARC: fail (nothing aligned)\n\
                 1.14 S: 550 5.7.26 DMARC: forged\n";
        let en = explain(t, Lang::En);
        let notes: Vec<&str> = en.lines().filter(|l| l.starts_with("     ^ ")).collect();
        // Greeting, EHLO, its reply, one keyword, MAIL, 250, DATA, 354,
        // the message, its end, SPF, DMARC, 550: and "QUIT" inside the
        // message is content, not a command.
        assert_eq!(notes.len(), 13, "{en}");
        // The state after a reply, below its explanation.
        assert!(
            en.contains("1.6 S: 250 2.1.0 OK\n     ^ ")
                && en.contains(
                    "\n     = after MAIL: sender accepted, waiting for RCPT (RFC 5321 §3.3)\n"
                ),
            "{en}"
        );
        let quit = en.find("C: QUIT\n").unwrap();
        assert!(en[quit..].lines().nth(1).unwrap().contains("C: ."), "{en}");
        assert!(en.contains("SPF: the envelope sender's domain says this IP must not send"));
        let de = explain(t, Lang::De);
        assert!(
            de.contains("DMARC: Nichts bürgt für die From:-Domain"),
            "{de}"
        );
        assert_eq!(
            explain("no header\n1.1 C: EHLO x\n", Lang::En),
            "no header\n1.1 C: EHLO x\n",
            "not a transcript: unchanged"
        );
    }

    /// `trace show` takes the id or any unique part of it; an ambiguous
    /// part is an error naming how many match.
    #[test]
    fn show_takes_any_unique_part_of_an_id() {
        let dir = tempfile::tempdir().unwrap();
        for id in [
            "1795707778-0001-smtp",
            "1795707779-0002-imap",
            "1795707780-0012-pop3",
        ] {
            std::fs::write(dir.path().join(format!("{id}.log")), format!("# {id}\n")).unwrap();
        }
        assert_eq!(
            show(dir.path(), "0002").unwrap(),
            "# 1795707779-0002-imap\n"
        );
        assert_eq!(
            show(dir.path(), "0002-imap").unwrap(),
            "# 1795707779-0002-imap\n"
        );
        assert_eq!(
            show(dir.path(), "pop3").unwrap(),
            "# 1795707780-0012-pop3\n"
        );
        assert!(
            show(dir.path(), "-00")
                .unwrap_err()
                .to_string()
                .contains("3 transcripts")
        );
        assert!(show(dir.path(), "nothing").is_err());
    }

    /// `trace follow`: what is there at the start is not shown, what
    /// comes after is, whole lines only, new sessions from their first
    /// line, explained on request; rotated transcripts are forgotten.
    #[test]
    fn a_follower_shows_what_comes_while_it_watches() {
        let dir = tempfile::tempdir().unwrap();
        let path = |id: &str| dir.path().join(format!("{id}.log"));
        let header =
            |id: &str| format!("# postamt transcript {id}: pop3 session from 127.0.0.1:5 at 1.0\n");
        std::fs::write(path("1-a"), header("1-a") + "1.1 S: +OK old\n").unwrap();
        let mut f = Follower::new(dir.path(), Some(postamt_wire::explain::Lang::En));
        assert!(f.poll().is_empty(), "the past is not shown");
        let mut a = std::fs::OpenOptions::new()
            .append(true)
            .open(path("1-a"))
            .unwrap();
        a.write_all(b"1.2 C: CAPA\n1.3 S: +OK half").unwrap();
        let shown = f.poll();
        assert_eq!(shown[0], "1-a | 1.2 C: CAPA");
        assert!(shown[1].starts_with("1-a |      ^ "), "{shown:?}");
        assert_eq!(shown.len(), 2, "the half line waits: {shown:?}");
        a.write_all(b" line\n").unwrap();
        assert_eq!(f.poll()[0], "1-a | 1.3 S: +OK half line");
        std::fs::write(path("2-b"), header("2-b") + "2.1 S: +OK new\n").unwrap();
        let shown = f.poll();
        assert!(
            shown[0].starts_with("2-b | # postamt transcript 2-b"),
            "{shown:?}"
        );
        assert_eq!(shown[1], "2-b | 2.1 S: +OK new");
        std::fs::remove_file(path("1-a")).unwrap();
        assert!(f.poll().is_empty());
        let mut raw = Follower::new(dir.path(), None);
        std::fs::OpenOptions::new()
            .append(true)
            .open(path("2-b"))
            .unwrap()
            .write_all(b"2.2 C: QUIT\n")
            .unwrap();
        assert_eq!(raw.poll(), vec!["2-b | 2.2 C: QUIT".to_string()]);
    }

    /// The three-column table of teaching material: a client line in the
    /// first column, a server line in the second, the meaning in the
    /// third; server notes in the third; `|` escaped.
    #[test]
    fn explained_transcripts_as_a_three_column_table() {
        use postamt_wire::explain::Lang;
        let t = "# postamt transcript 1-2-3-pop3: pop3 session from 127.0.0.1:5 at 1.000000\n\
                 1.1 S: +OK POP3 ready\n\
                 1.2 C: USER alice|x\n\
                 1.3 S: +OK\n\
                 1.4 -- a note\n";
        let table = explain_table(t, Lang::En);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("# postamt transcript"), "{table}");
        assert_eq!(lines[1], "");
        assert_eq!(lines[2], "| client | server | what it means |");
        assert_eq!(lines[3], "|---|---|---|");
        assert!(lines[4].starts_with("|  | +OK POP3 ready | "), "{table}");
        assert!(lines[4].contains(" → AUTHORIZATION state"), "{table}");
        assert!(
            lines[4].len() > "|  | +OK POP3 ready |  |".len(),
            "explained: {table}"
        );
        assert!(lines[5].starts_with("| USER alice\\|x |  | "), "{table}");
        assert!(lines[6].starts_with("|  | +OK | "), "{table}");
        assert_eq!(lines[7], "|  |  | a note |");
        assert_eq!(lines.len(), 8);
        let de = explain_table(t, Lang::De);
        assert!(de.contains("| Client | Server | Was es bedeutet |"), "{de}");
    }
}
