//! "What happened": the session transcripts, live and past, as the
//! three-column table of `trace show --explain --table`. A user sees the
//! sessions that logged in as them (`-- authenticated as …`), an
//! administrator every session. Any other id is a 404.

use postamt_server::transcript::{self, TableRow};
use postamt_wire::explain::Lang;
use serde::Serialize;

use crate::Web;
use crate::security::{WebError, WebResult};
use crate::sessions::Login;

#[derive(Debug, Clone, Serialize)]
pub struct SessionItem {
    pub id: String,
    pub protocol: String,
    pub peer: String,
    pub started: String,
    pub users: Vec<String>,
    /// The session has not ended yet (no end note so far).
    pub live: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: String,
    pub head: Vec<String>,
    pub rows: Vec<TableRow>,
    pub live: bool,
}

/// Most sessions listed (the newest).
const MAX_LISTED: usize = 200;

/// Ids must look like transcript ids: no path can be formed from them.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn ended(text: &str) -> bool {
    text.lines().rev().take(3).any(|l| {
        l.contains(" -- session ended")
            || l.contains(" -- [transcript cut off")
            || l.contains(" -- autologout")
    })
}

fn visible(login: &Login, text: &str) -> bool {
    login.admin
        || transcript::users_of(text)
            .iter()
            .any(|u| u == &login.address)
}

/// The sessions `login` may see, newest first.
pub fn list(web: &Web, login: &Login) -> WebResult<Vec<SessionItem>> {
    let Some(dir) = &web.transcripts else {
        return Ok(Vec::new());
    };
    let all = transcript::list(dir).map_err(|e| WebError::Internal(e.to_string()))?;
    let mut out = Vec::new();
    for (id, first) in all.into_iter().rev() {
        if out.len() >= MAX_LISTED {
            break;
        }
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{id}.log"))) else {
            continue;
        };
        if !visible(login, &text) {
            continue;
        }
        // "# postamt transcript ID: PROTOCOL session from PEER at SECS"
        let rest = first.split_once(": ").map(|(_, r)| r).unwrap_or("");
        let mut words = rest.split(' ');
        let protocol = words.next().unwrap_or("").to_string();
        let peer = rest
            .split_once(" from ")
            .and_then(|(_, r)| r.split(' ').next())
            .unwrap_or("")
            .to_string();
        let started = rest
            .rsplit_once(" at ")
            .and_then(|(_, t)| t.split('.').next())
            .and_then(|t| t.parse::<i64>().ok())
            .map(crate::mail::short_date)
            .unwrap_or_default();
        out.push(SessionItem {
            users: transcript::users_of(&text),
            live: !ended(&text),
            id,
            protocol,
            peer,
            started,
        });
    }
    Ok(out)
}

/// One session as the table, from row `from` on (the live view asks for
/// what it has not shown yet).
pub fn show(web: &Web, login: &Login, id: &str, lang: Lang, from: usize) -> WebResult<SessionView> {
    let Some(dir) = &web.transcripts else {
        return Err(WebError::NotFound);
    };
    if !valid_id(id) {
        return Err(WebError::NotFound);
    }
    let text =
        std::fs::read_to_string(dir.join(format!("{id}.log"))).map_err(|_| WebError::NotFound)?;
    if !visible(login, &text) {
        return Err(WebError::NotFound);
    }
    let (head, rows) = transcript::table_rows(&text, lang);
    Ok(SessionView {
        id: id.to_string(),
        head,
        rows: rows.into_iter().skip(from).collect(),
        live: !ended(&text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_name_other_files() {
        assert!(valid_id("1764971520-012345-0002-imap"));
        for bad in ["../etc/passwd", "a/b", "", "x.log", "..", "a\0b"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
