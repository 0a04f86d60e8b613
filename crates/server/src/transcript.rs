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
}

impl Transcripts {
    pub fn new(config: TranscriptConfig) -> std::io::Result<Transcripts> {
        std::fs::create_dir_all(&config.dir)?;
        Ok(Transcripts {
            config,
            counter: AtomicU64::new(0),
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
        if n.is_multiple_of(64) {
            prune(&self.config.dir, self.config.keep);
        }
        Some(Transcript {
            inner: Arc::new(Mutex::new(Inner {
                out: w,
                body_limit: self.config.body_limit,
                body_seen: 0,
                body_cut: 0,
                written: 0,
                max_bytes: self.config.max_bytes,
                cut_off: false,
            })),
        })
    }
}

/// The transcript of one session. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Transcript {
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
    }
}

fn looks_like_base64(w: &str) -> bool {
    w.len() >= 4
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    if names.len() <= keep {
        return;
    }
    names.sort();
    for p in &names[..names.len() - keep] {
        let _ = std::fs::remove_file(p);
    }
}

/// Transcript ids in `dir`, oldest first, with their first line.
pub fn list(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "log") {
            let id = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let first = std::fs::read_to_string(&p)
                .ok()
                .and_then(|s| s.lines().next().map(str::to_string))
                .unwrap_or_default();
            out.push((id, first));
        }
    }
    out.sort();
    Ok(out)
}

/// The transcript with this id (or unique id prefix / suffix).
pub fn show(dir: &Path, id: &str) -> std::io::Result<String> {
    let all = list(dir)?;
    let hits: Vec<&(String, String)> = all
        .iter()
        .filter(|(i, _)| i == id || i.starts_with(id) || i.ends_with(id))
        .collect();
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
pub fn explain(text: &str, lang: postamt_wire::explain::Lang) -> String {
    use postamt_wire::explain::{self, Annotator, Proto};
    let mut out = String::with_capacity(text.len() * 2);
    let mut annotator: Option<Annotator> = None;
    // Client lines that are message content, not commands.
    let mut content = false;
    let mut first_content_line = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
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
        if let Some(e) = e {
            out.push_str(&format!("     ^ {} ({})\n", e.text, e.rfc));
        }
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
}
