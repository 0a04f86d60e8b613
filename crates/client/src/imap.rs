//! Reading and filing over IMAP (RFC 9051 / RFC 3501): login, SELECT,
//! UID SEARCH, UID FETCH, UID STORE, UID MOVE (or COPY + delete), UID
//! EXPUNGE, APPEND. Messages are named by their UID.

use crate::account::Security;
use crate::wire::{Tracer, Wire};
use crate::{ClientError, Result};

/// Longest literal accepted from a server (a whole message).
const MAX_LITERAL: usize = 256 * 1024 * 1024;

/// A response line, with the literals it carried.
#[derive(Debug, Default)]
pub struct Line {
    /// The text, with each literal replaced by `{n}` as it was announced.
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

/// One message as `list` shows it.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub uid: u32,
    pub flags: String,
    pub size: u64,
    pub header: Vec<u8>,
}

pub struct Imap {
    w: Wire,
    next_tag: u32,
    pub capabilities: Vec<String>,
}

/// A mailbox name as the command argument: modified UTF-7 (RFC 3501
/// §5.1.3), which every IMAP4rev1 server takes (a name outside ASCII sent
/// as raw UTF-8 is refused by servers that have not enabled UTF-8, e.g.
/// Dovecot), then quoted.
pub fn mailbox_arg(name: &str) -> Result<String> {
    quote(&postamt_wire::imap::mutf7::encode(name))
}

/// The mailbox name of a `* LIST` response (RFC 9051 §7.3.1: flags, the
/// hierarchy delimiter — a quoted character or NIL — and the name as an
/// atom, a quoted string or a literal), decoded from modified UTF-7.
pub fn list_name(line: &Line) -> Option<String> {
    let text = line.text.strip_prefix("* LIST ")?;
    let after_flags = &text[text.find(')')? + 1..];
    let rest = after_flags.trim_start();
    // The delimiter: NIL or a quoted string of one (maybe escaped) character.
    let rest = if let Some(r) = rest.strip_prefix("NIL") {
        r
    } else {
        let r = rest.strip_prefix('"')?;
        let r = r.strip_prefix('\\').unwrap_or(r);
        let mut chars = r.chars();
        chars.next()?;
        chars.as_str().strip_prefix('"')?
    };
    let raw = rest.trim_start();
    let wire = if let Some(q) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.chars();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => out.push(chars.next()?),
                c => out.push(c),
            }
        }
        out
    } else if raw.starts_with('{') {
        String::from_utf8_lossy(line.literals.first()?).into_owned()
    } else {
        raw.trim_end().to_string()
    };
    Some(postamt_wire::imap::mutf7::decode(&wire).unwrap_or(wire))
}

/// An IMAP quoted string (RFC 9051 §4.3); a string with CR/LF cannot be
/// quoted and is refused.
pub fn quote(s: &str) -> Result<String> {
    postamt_wire::imap::quoted(s)
        .ok_or_else(|| ClientError::Config(format!("{s:?} cannot be sent as an IMAP string")))
}

impl Imap {
    pub fn open(
        endpoint: &str,
        security: Security,
        tls_trust: Option<&str>,
        login: &str,
        password: &str,
        trace: Option<Tracer>,
    ) -> Result<Imap> {
        let mut w = Wire::open(endpoint, security, tls_trust, "imap_security", trace)?;
        let greeting = w.read_line()?;
        if !greeting.starts_with("* OK") && !greeting.starts_with("* PREAUTH") {
            return Err(ClientError::Refused(greeting));
        }
        let mut c = Imap {
            w,
            next_tag: 1,
            capabilities: Vec::new(),
        };
        if security == Security::Starttls {
            c.command("STARTTLS", None)?;
            if c.w.has_buffered() {
                return Err(ClientError::Protocol(
                    "the server sent data before the TLS handshake".into(),
                ));
            }
            c.w.start_tls(crate::tls::config(tls_trust)?)?;
        }
        if !greeting.starts_with("* PREAUTH") {
            let cmd = format!("LOGIN {} {}", quote(login)?, quote(password)?);
            let shown = format!("LOGIN {} ********", quote(login)?);
            c.command(&cmd, Some(&shown)).map_err(|e| match e {
                ClientError::Refused(t) => ClientError::Auth(t),
                e => e,
            })?;
        }
        let caps = c.command("CAPABILITY", None)?;
        c.capabilities = caps
            .iter()
            .filter_map(|l| l.text.strip_prefix("* CAPABILITY "))
            .flat_map(|t| {
                t.split(' ')
                    .map(|w| w.to_ascii_uppercase())
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(c)
    }

    fn has(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }

    /// Reads one response line with its literals (`{n}` at the end of a
    /// line announces n octets, after which the line goes on).
    fn read(&mut self) -> Result<Line> {
        let mut line = Line::default();
        loop {
            let part = self.w.read_line()?;
            line.text.push_str(&part);
            let Some(n) = literal_len(&part) else {
                return Ok(line);
            };
            if n > MAX_LITERAL {
                return Err(ClientError::Protocol(format!("literal of {n} octets")));
            }
            line.literals.push(self.w.read_exact(n)?);
        }
    }

    /// Sends a tagged command and collects the untagged lines until its
    /// completion; `NO`/`BAD` become errors with the server's text.
    fn command(&mut self, cmd: &str, shown: Option<&str>) -> Result<Vec<Line>> {
        let tag = self.tag();
        let line = format!("{tag} {cmd}");
        let shown = format!("{tag} {}", shown.unwrap_or(cmd));
        self.w.send_masked(&line, &shown)?;
        self.collect(&tag)
    }

    fn tag(&mut self) -> String {
        let t = format!("a{:03}", self.next_tag);
        self.next_tag += 1;
        t
    }

    fn collect(&mut self, tag: &str) -> Result<Vec<Line>> {
        let mut out = Vec::new();
        loop {
            let l = self.read()?;
            if let Some(rest) = l.text.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                let status = rest.split(' ').next().unwrap_or("").to_ascii_uppercase();
                return match status.as_str() {
                    "OK" => Ok(out),
                    "NO" => Err(ClientError::Refused(rest.to_string())),
                    _ => Err(ClientError::Protocol(rest.to_string())),
                };
            }
            if l.text.starts_with("* BYE") {
                return Err(ClientError::Refused(l.text));
            }
            if out.len() > 10_000_000 {
                return Err(ClientError::Protocol("endless response".into()));
            }
            out.push(l);
        }
    }

    /// SELECT (or EXAMINE): returns (messages, UIDVALIDITY).
    pub fn select(&mut self, mailbox: &str, read_only: bool) -> Result<(u32, u32)> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let lines = self.command(&format!("{verb} {}", mailbox_arg(mailbox)?), None)?;
        let mut exists = 0;
        let mut validity = 0;
        for l in &lines {
            let words: Vec<&str> = l.text.split(' ').collect();
            if words.len() >= 3 && words[2].eq_ignore_ascii_case("EXISTS") {
                exists = words[1].parse().unwrap_or(0);
            }
            if let Some(p) = l.text.find("[UIDVALIDITY ") {
                validity = l.text[p + 13..]
                    .split(']')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            }
        }
        Ok((exists, validity))
    }

    /// UID SEARCH with the given criteria (e.g. `ALL`, `UNSEEN`).
    pub fn search(&mut self, criteria: &str) -> Result<Vec<u32>> {
        let lines = self.command(&format!("UID SEARCH {criteria}"), None)?;
        let mut uids: Vec<u32> = lines
            .iter()
            .filter_map(|l| l.text.strip_prefix("* SEARCH"))
            .flat_map(|t| {
                t.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// UID, flags, size and the date/from/subject header fields.
    pub fn summaries(&mut self, uids: &[u32]) -> Result<Vec<Summary>> {
        if uids.is_empty() {
            return Ok(vec![]);
        }
        let set = uid_set(uids);
        let lines = self.command(
            &format!("UID FETCH {set} (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT)])"),
            None,
        )?;
        let mut out: Vec<Summary> = lines
            .iter()
            .filter(|l| l.text.starts_with("* ") && l.text.to_ascii_uppercase().contains(" FETCH "))
            .map(|l| Summary {
                uid: number_after(&l.text, "UID ").unwrap_or(0) as u32,
                flags: between(&l.text, "FLAGS (", ")").unwrap_or_default(),
                size: number_after(&l.text, "RFC822.SIZE ").unwrap_or(0),
                header: l.literals.first().cloned().unwrap_or_default(),
            })
            .collect();
        out.sort_by_key(|s| s.uid);
        Ok(out)
    }

    /// A message's octets (`section` empty) or its header (`HEADER`),
    /// without setting `\Seen`.
    pub fn body(&mut self, uid: u32, section: &str) -> Result<Vec<u8>> {
        let lines = self.command(&format!("UID FETCH {uid} (BODY.PEEK[{section}])"), None)?;
        lines
            .into_iter()
            .find(|l| {
                l.text.starts_with("* ") && number_after(&l.text, "UID ") == Some(u64::from(uid))
            })
            .and_then(|l| l.literals.into_iter().next())
            .ok_or_else(|| ClientError::Refused(format!("no message with UID {uid}")))
    }

    /// `+FLAGS`/`-FLAGS`/`FLAGS` with a space-separated flag list.
    pub fn store(&mut self, uid: u32, op: &str, flags: &str) -> Result<()> {
        self.command(&format!("UID STORE {uid} {op} ({flags})"), None)
            .map(|_| ())
    }

    /// Moves a message (RFC 6851 MOVE, else COPY + \Deleted + expunge).
    pub fn move_to(&mut self, uid: u32, mailbox: &str) -> Result<()> {
        if self.has("MOVE") {
            return self
                .command(&format!("UID MOVE {uid} {}", mailbox_arg(mailbox)?), None)
                .map(|_| ());
        }
        self.command(&format!("UID COPY {uid} {}", mailbox_arg(mailbox)?), None)?;
        self.delete(uid)
    }

    /// Marks `\Deleted` and expunges just that message where UIDPLUS
    /// allows (RFC 4315), else all deleted ones.
    pub fn delete(&mut self, uid: u32) -> Result<()> {
        self.store(uid, "+FLAGS", "\\Deleted")?;
        if self.has("UIDPLUS") {
            self.command(&format!("UID EXPUNGE {uid}"), None)
                .map(|_| ())
        } else {
            self.command("EXPUNGE", None).map(|_| ())
        }
    }

    /// The mailbox with the `\Sent` special use (RFC 6154), else "Sent"
    /// (created if missing).
    pub fn sent_mailbox(&mut self) -> Result<String> {
        let lines = self.command("LIST \"\" \"*\"", None)?;
        let mut sent_exists = false;
        for l in &lines {
            let Some(name) = list_name(l) else { continue };
            if between(&l.text, "(", ")").is_some_and(|a| a.to_ascii_lowercase().contains("\\sent"))
            {
                return Ok(name);
            }
            sent_exists |= name == "Sent";
        }
        if !sent_exists {
            self.command("CREATE \"Sent\"", None)?;
        }
        Ok("Sent".into())
    }

    /// APPEND with a synchronizing literal (RFC 9051 §6.3.12).
    pub fn append(&mut self, mailbox: &str, flags: &str, content: &[u8]) -> Result<()> {
        let tag = self.tag();
        let cmd = format!(
            "{tag} APPEND {} ({flags}) {{{}}}",
            mailbox_arg(mailbox)?,
            content.len()
        );
        self.w.send(&cmd)?;
        let cont = self.read()?;
        if !cont.text.starts_with('+') {
            return Err(ClientError::Refused(cont.text));
        }
        self.w.send_literal(content)?;
        self.w.end_line()?;
        self.collect(&tag).map(|_| ())
    }

    /// LOGOUT: `* BYE`, then the tagged OK (RFC 9051 §6.1.3).
    pub fn logout(mut self) -> Result<()> {
        let tag = self.tag();
        self.w.send(&format!("{tag} LOGOUT"))?;
        for _ in 0..100 {
            match self.read() {
                Ok(l) if l.text.starts_with(&format!("{tag} ")) => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    }
}

fn literal_len(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    let start = inner.rfind('{')?;
    inner[start + 1..].trim_end_matches('+').parse().ok()
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let upper = text.to_ascii_uppercase();
    let p = upper.find(&key.to_ascii_uppercase())?;
    text[p + key.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let p = upper.find(&open.to_ascii_uppercase())? + open.len();
    let end = text[p..].find(close)? + p;
    Some(text[p..end].to_string())
}

/// `1:3,7` style set of sorted UIDs.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(literal_len("* 1 FETCH (BODY[] {42}"), Some(42));
        assert_eq!(literal_len("a1 APPEND x {5+}"), Some(5));
        assert_eq!(literal_len("* OK done"), None);
        assert_eq!(
            number_after("* 3 FETCH (UID 17 RFC822.SIZE 900)", "UID "),
            Some(17)
        );
        assert_eq!(
            between(
                "* 1 FETCH (FLAGS (\\Seen \\Answered) UID 3)",
                "FLAGS (",
                ")"
            )
            .as_deref(),
            Some("\\Seen \\Answered")
        );
        assert_eq!(quote("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert!(quote("a\r\nb").is_err());
        // RFC 3501 §5.1.3: names outside ASCII go out in modified UTF-7.
        assert_eq!(mailbox_arg("Entwürfe").unwrap(), "\"Entw&APw-rfe\"");
        assert_eq!(mailbox_arg("A&B").unwrap(), "\"A&-B\"");
    }

    #[test]
    fn list_names_rfc9051_7_3_1() {
        let line = |text: &str, literal: Option<&str>| Line {
            text: text.into(),
            literals: literal
                .map(|l| vec![l.as_bytes().to_vec()])
                .unwrap_or_default(),
        };
        for (l, want) in [
            (line("* LIST (\\HasNoChildren) \"/\" INBOX", None), "INBOX"),
            (
                line("* LIST (\\Sent) \".\" \"Sent Items\"", None),
                "Sent Items",
            ),
            (line("* LIST () NIL \"a \\\"q\\\" b\"", None), "a \"q\" b"),
            (line("* LIST () \"\\\\\" Drafts", None), "Drafts"),
            (
                line("* LIST (\\Drafts) \"/\" \"Entw&APw-rfe\"", None),
                "Entwürfe",
            ),
            (line("* LIST () \"/\" {5}", Some("Ha&-s")), "Ha&s"),
        ] {
            assert_eq!(list_name(&l).as_deref(), Some(want), "{}", l.text);
        }
        assert_eq!(list_name(&line("* OK done", None)), None);
        assert_eq!(list_name(&line("* LIST (\\Sent) \"/", None)), None);
    }
}
