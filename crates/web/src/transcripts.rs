//! "What happened": the session transcripts, live and past, as the
//! three-column table of `trace show --explain --table`. A user sees the
//! sessions that logged in as them (`-- authenticated as …`), an
//! administrator every session. Any other id is a 404.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

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

fn visible(login: &Login, head: &Head) -> bool {
    login.admin || head.users.iter().any(|u| u == &login.address)
}

/// What the list and the access check need of a transcript: who logged in
/// and whether it ended, from its head and tail; valid while the file
/// keeps its length.
pub struct Head {
    len: u64,
    /// The header line (`# postamt transcript ID: …`).
    first: String,
    users: Vec<String>,
    live: bool,
}

/// Heads kept; beyond this one is dropped for each one added.
const MAX_HEADS: usize = 8192;

fn head(web: &Web, id: &str) -> WebResult<Arc<Head>> {
    let path = path_of(web, id)?;
    let len = std::fs::metadata(&path)
        .map_err(|_| WebError::NotFound)?
        .len();
    if let Ok(heads) = web.live_cache.heads.lock()
        && let Some(h) = heads.get(id)
        && h.len == len
    {
        return Ok(Arc::clone(h));
    }
    let text = head_and_tail(&path).ok_or(WebError::NotFound)?;
    let h = Arc::new(Head {
        len,
        first: text.lines().next().unwrap_or("").to_string(),
        users: transcript::users_of(&text),
        live: !ended(&text),
    });
    if let Ok(mut heads) = web.live_cache.heads.lock() {
        evict_one(&mut heads, MAX_HEADS);
        heads.insert(id.to_string(), Arc::clone(&h));
    }
    Ok(h)
}

/// Makes room for one entry: drops one (any) when `map` is full.
fn evict_one<K: Clone + std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, max: usize) {
    if map.len() >= max
        && let Some(k) = map.keys().next().cloned()
    {
        map.remove(&k);
    }
}

/// The first 64 KiB of a transcript (a login is noted right after it
/// happens) and its last lines (the end note): what the list needs, without
/// reading long sessions whole on every refresh.
fn head_and_tail(path: &std::path::Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const HEAD: u64 = 64 * 1024;
    const TAIL: u64 = 1024;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut head = Vec::new();
    (&mut f).take(HEAD).read_to_end(&mut head).ok()?;
    if len > HEAD {
        // Only whole lines of the head; then the tail's whole lines.
        if let Some(i) = head.iter().rposition(|&b| b == b'\n') {
            head.truncate(i + 1);
        }
        f.seek(SeekFrom::Start(len.saturating_sub(TAIL).max(HEAD)))
            .ok()?;
        let mut tail = Vec::new();
        f.take(TAIL).read_to_end(&mut tail).ok()?;
        let start = tail.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        head.extend_from_slice(&tail[start..]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// The sessions `login` may see, newest first.
pub fn list(web: &Web, login: &Login) -> WebResult<Vec<SessionItem>> {
    let Some(dir) = &web.transcripts else {
        return Ok(Vec::new());
    };
    // Ids only: what each file says is in its cached head.
    let all = transcript::ids(dir).map_err(|e| WebError::Internal(e.to_string()))?;
    let mut out = Vec::new();
    for id in all.into_iter().rev() {
        if out.len() >= MAX_LISTED {
            break;
        }
        let Ok(h) = head(web, &id) else {
            continue;
        };
        if !visible(login, &h) {
            continue;
        }
        // "# postamt transcript ID: PROTOCOL session from PEER at SECS"
        let rest = h.first.split_once(": ").map(|(_, r)| r).unwrap_or("");
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
            users: h.users.clone(),
            live: h.live,
            id,
            protocol,
            peer,
            started,
        });
    }
    Ok(out)
}

/// A transcript read and explained, kept while its file does not grow:
/// many browsers following one session share one reading.
pub struct Parsed {
    len: u64,
    lang: Lang,
    head: Vec<String>,
    rows: Vec<TableRow>,
    live: bool,
}

/// The transcripts read lately: their heads by id, their explained rows by
/// id and language, and the lock under which a transcript is read (so that
/// browsers woken together read it once).
#[derive(Default)]
pub struct Cache {
    heads: Mutex<HashMap<String, Arc<Head>>>,
    rows: Mutex<HashMap<(String, bool), Arc<Parsed>>>,
    reading: Mutex<()>,
}

/// Transcripts kept read at once.
const MAX_CACHED: usize = 256;

fn path_of(web: &Web, id: &str) -> WebResult<std::path::PathBuf> {
    let dir = web.transcripts.as_ref().ok_or(WebError::NotFound)?;
    if !valid_id(id) {
        return Err(WebError::NotFound);
    }
    Ok(dir.join(format!("{id}.log")))
}

fn parsed(web: &Web, id: &str, lang: Lang) -> WebResult<Arc<Parsed>> {
    let path = path_of(web, id)?;
    let len = std::fs::metadata(&path)
        .map_err(|_| WebError::NotFound)?
        .len();
    let key = (id.to_string(), lang == Lang::De);
    let cached = || {
        web.live_cache
            .rows
            .lock()
            .ok()
            .and_then(|c| c.get(&key).filter(|p| p.len == len).cloned())
    };
    if let Some(p) = cached() {
        return Ok(p);
    }
    // One reading at a time; who waited finds the reading done.
    let _reading = web
        .live_cache
        .reading
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = cached() {
        return Ok(p);
    }
    let bytes = std::fs::read(&path).map_err(|_| WebError::NotFound)?;
    let text = String::from_utf8_lossy(&bytes);
    let (head, rows) = transcript::table_rows(&text, lang);
    let p = Arc::new(Parsed {
        len: bytes.len() as u64,
        lang,
        head,
        rows,
        live: !ended(&text),
    });
    if let Ok(mut cache) = web.live_cache.rows.lock() {
        evict_one(&mut cache, MAX_CACHED);
        cache.insert(key, Arc::clone(&p));
    }
    Ok(p)
}

/// One session as the table, from row `from` on (the live view asks for
/// what it has not shown yet).
pub fn show(web: &Web, login: &Login, id: &str, lang: Lang, from: usize) -> WebResult<SessionView> {
    // Who may see it first (from the head), then the reading.
    if !visible(login, &*head(web, id)?) {
        return Err(WebError::NotFound);
    }
    let p = parsed(web, id, lang)?;
    debug_assert_eq!(p.lang, lang);
    Ok(SessionView {
        id: id.to_string(),
        head: p.head.clone(),
        rows: p.rows.iter().skip(from).cloned().collect(),
        live: p.live,
    })
}

/// Longest a live view's request waits for new rows.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// [`show`] that waits (up to `wait`) while the session is live and has no
/// row after `from`: a browser following a quiet session asks about twice
/// a minute instead of every second, and still sees a new line within a
/// quarter of a second. One watcher per transcript looks at the file's
/// size for all who wait on it ([`Watchers`]); nothing is read meanwhile.
pub async fn show_waiting(
    web: Arc<Web>,
    login: Login,
    id: String,
    lang: Lang,
    from: usize,
    wait: Duration,
) -> WebResult<SessionView> {
    let deadline = tokio::time::Instant::now() + spread(wait.min(MAX_WAIT));
    let path = path_of(&web, &id)?;
    let mut changes: Option<watch::Receiver<u64>> = None;
    loop {
        let (w, l, i) = (Arc::clone(&web), login.clone(), id.clone());
        // Checks who may see it before anything is watched.
        let v = postamt_store::blocking(move || show(&w, &l, &i, lang, from)).await?;
        if !v.rows.is_empty() || !v.live {
            return Ok(v);
        }
        let Some(changes) = changes.as_mut() else {
            // Subscribed now: look once more, a line may have come between.
            changes = Some(web.watchers.subscribe(path.clone()));
            continue;
        };
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            // The deadline, or the watcher stopped: answer what there is.
            _ => return Ok(v),
        }
    }
}

/// `wait` shortened by up to a fifth, differently for each request: the
/// waits of many browsers that started together do not all run out in the
/// same instant (and come back together).
fn spread(wait: Duration) -> Duration {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STEP: AtomicU64 = AtomicU64::new(0);
    // A Weyl sequence: evenly spread fractions, no random source needed.
    let x = STEP.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let fraction = (x >> 44) as f64 / (1u64 << 20) as f64;
    wait.mul_f64(1.0 - 0.2 * fraction)
}

/// How often a watcher looks at its transcript's size.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// One watcher task per transcript someone waits on: it looks at the
/// file's size every [`WATCH_EVERY`] and tells every waiter when it grew;
/// it ends when nobody waits any more.
#[derive(Default)]
pub struct Watchers(Arc<Mutex<HashMap<std::path::PathBuf, Arc<watch::Sender<u64>>>>>);

impl Watchers {
    fn subscribe(&self, path: std::path::PathBuf) -> watch::Receiver<u64> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(&path) {
            return tx.subscribe();
        }
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let (tx, rx) = watch::channel(len);
        let tx = Arc::new(tx);
        map.insert(path.clone(), Arc::clone(&tx));
        let all = Arc::clone(&self.0);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                if tx.receiver_count() == 0 {
                    // Checked again under the lock: a new waiter subscribes
                    // under it, so none is left without a watcher.
                    let mut map = all.lock().unwrap_or_else(|e| e.into_inner());
                    if tx.receiver_count() == 0 {
                        map.remove(&path);
                        return;
                    }
                }
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                tx.send_if_modified(|seen| {
                    let grew = *seen != len;
                    *seen = len;
                    grew
                });
            }
        });
        rx
    }

    /// Transcripts watched now.
    pub fn watched(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_spread_over_a_fifth() {
        let w = Duration::from_secs(25);
        let all: Vec<Duration> = (0..1000).map(|_| spread(w)).collect();
        assert!(all.iter().all(|d| *d <= w && *d >= w.mul_f64(0.8)));
        let distinct: std::collections::HashSet<u128> =
            all.iter().map(|d| d.as_millis() / 100).collect();
        assert!(distinct.len() > 40, "{}", distinct.len());
    }

    #[test]
    fn ids_cannot_name_other_files() {
        assert!(valid_id("1764971520-012345-0002-imap"));
        for bad in ["../etc/passwd", "a/b", "", "x.log", "..", "a\0b"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
