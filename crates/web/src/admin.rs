//! The administration: users, domains (with the DNS records to publish
//! and what DNS says), aliases, the outbound queue, DKIM keys, listeners
//! and counters. Only for the `[web] admins` accounts; the handlers take
//! [`crate::security::Admin`].

use postamt_store::QueueId;
use serde::{Deserialize, Serialize};

use crate::Web;
use crate::security::{WebError, WebResult};

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub address: String,
    pub used: u64,
    pub quota: Option<u64>,
    pub admin: bool,
}

pub fn users(web: &Web) -> WebResult<Vec<UserView>> {
    Ok(web
        .store
        .accounts()?
        .into_iter()
        .map(|a| UserView {
            admin: web.is_admin(&a.address),
            address: a.address,
            used: a.used_bytes,
            quota: a.quota_bytes,
        })
        .collect())
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserForm {
    pub address: String,
    #[serde(default)]
    pub password: String,
    /// Bytes; empty: unlimited.
    #[serde(default)]
    pub quota: String,
}

fn valid_address(a: &str) -> bool {
    let a = a.trim();
    a.len() <= 254
        && a.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') || d == "localhost" && !l.is_empty()
        })
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

/// Passwords of at least this many characters.
const MIN_PASSWORD: usize = 8;

pub fn add_user(web: &Web, f: &UserForm) -> WebResult<()> {
    let address = f.address.trim().to_lowercase();
    if !valid_address(&address) {
        return Err(WebError::BadRequest(format!("not an address: {address}")));
    }
    let domain = address.rsplit('@').next().unwrap_or("");
    if !web
        .store
        .domains()?
        .iter()
        .any(|d| d.eq_ignore_ascii_case(domain))
    {
        return Err(WebError::BadRequest(format!(
            "{domain} is not a local domain: add it first"
        )));
    }
    if f.password.chars().count() < MIN_PASSWORD {
        return Err(WebError::BadRequest(format!(
            "the password needs at least {MIN_PASSWORD} characters"
        )));
    }
    let account = web.store.create_account(&address, &f.password)?;
    if let Some(q) = parse_quota(&f.quota)? {
        web.store.set_quota(account.id, Some(q))?;
    }
    Ok(())
}

fn parse_quota(s: &str) -> WebResult<Option<u64>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<u64>()
        .map(Some)
        .map_err(|_| WebError::BadRequest(format!("quota must be a number of bytes: {s}")))
}

pub fn set_password(web: &Web, address: &str, password: &str) -> WebResult<()> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(WebError::BadRequest(format!(
            "the password needs at least {MIN_PASSWORD} characters"
        )));
    }
    web.store.account(address)?.ok_or(WebError::NotFound)?;
    web.store.set_password(address, password)?;
    // Logins made with the old password end.
    web.sessions.remove_account(address);
    Ok(())
}

pub fn set_quota(web: &Web, address: &str, quota: &str) -> WebResult<()> {
    let a = web.store.account(address)?.ok_or(WebError::NotFound)?;
    web.store.set_quota(a.id, parse_quota(quota)?)?;
    Ok(())
}

pub fn delete_user(web: &Web, me: &str, address: &str) -> WebResult<()> {
    if me.eq_ignore_ascii_case(address) {
        return Err(WebError::BadRequest(
            "you cannot delete the account you are logged in with".into(),
        ));
    }
    web.store.account(address)?.ok_or(WebError::NotFound)?;
    web.store.delete_account(address)?;
    web.sessions.remove_account(address);
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct DomainView {
    pub name: String,
    pub accounts: usize,
}

pub fn domains(web: &Web) -> WebResult<Vec<DomainView>> {
    let accounts = web.store.accounts()?;
    Ok(web
        .store
        .domains()?
        .into_iter()
        .map(|d| DomainView {
            accounts: accounts
                .iter()
                .filter(|a| a.address.rsplit('@').next() == Some(d.as_str()))
                .count(),
            name: d,
        })
        .collect())
}

#[derive(Debug, Clone, Deserialize)]
pub struct NameForm {
    pub name: String,
}

pub fn valid_domain(d: &str) -> bool {
    let d = d.trim().trim_end_matches('.');
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

pub fn add_domain(web: &Web, name: &str) -> WebResult<()> {
    let name = name.trim().trim_end_matches('.').to_lowercase();
    if !valid_domain(&name) {
        return Err(WebError::BadRequest(format!("not a domain name: {name}")));
    }
    web.store.add_domain(&name)?;
    Ok(())
}

pub fn remove_domain(web: &Web, name: &str) -> WebResult<()> {
    if !web.store.domains()?.iter().any(|d| d == name) {
        return Err(WebError::NotFound);
    }
    web.store.remove_domain(name)?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct AliasView {
    pub alias: String,
    pub targets: Vec<String>,
}

pub fn aliases(web: &Web) -> WebResult<Vec<AliasView>> {
    Ok(web
        .store
        .aliases()?
        .into_iter()
        .map(|a| AliasView {
            alias: a.alias,
            targets: a.targets,
        })
        .collect())
}

#[derive(Debug, Clone, Deserialize)]
pub struct AliasForm {
    pub alias: String,
    /// Comma- or space-separated addresses.
    #[serde(default)]
    pub targets: String,
}

pub fn add_alias(web: &Web, f: &AliasForm) -> WebResult<()> {
    let alias = f.alias.trim().to_lowercase();
    let ok = alias
        .strip_prefix('@')
        .map(valid_domain)
        .unwrap_or_else(|| valid_address(&alias));
    if !ok {
        return Err(WebError::BadRequest(format!("not an alias: {alias}")));
    }
    let targets: Vec<String> = f
        .targets
        .split([',', ' ', '\n', '\r', '\t'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect();
    if targets.is_empty() || !targets.iter().all(|t| valid_address(t)) {
        return Err(WebError::BadRequest(
            "give one or more target addresses".into(),
        ));
    }
    web.store.add_alias(&alias, &targets)?;
    Ok(())
}

pub fn remove_alias(web: &Web, alias: &str) -> WebResult<()> {
    if !web.store.aliases()?.iter().any(|a| a.alias == alias) {
        return Err(WebError::NotFound);
    }
    web.store.remove_alias(alias)?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    pub id: i64,
    pub sender: String,
    pub recipients: Vec<String>,
    pub size: u64,
    pub created: String,
    pub next_attempt: String,
    pub held: bool,
    pub active: bool,
    pub attempts: u32,
    pub last_error: String,
}

pub fn queue(web: &Web) -> WebResult<Vec<QueueItem>> {
    Ok(web
        .store
        .queue()?
        .into_iter()
        .map(|e| QueueItem {
            id: e.id.0,
            sender: e.sender,
            recipients: e
                .recipients
                .iter()
                .map(|r| format!("{} ({})", r.address, r.status.as_str()))
                .collect(),
            size: e.size,
            created: crate::mail::short_date(e.created),
            next_attempt: crate::mail::short_date(e.next_attempt),
            held: e.held,
            active: e.active,
            attempts: e.recipients.iter().map(|r| r.attempts).max().unwrap_or(0),
            last_error: e
                .recipients
                .iter()
                .find_map(|r| r.last_error.clone())
                .unwrap_or_default(),
        })
        .collect())
}

/// `retry`, `hold`, `release` or `delete` a queue entry.
pub fn queue_action(web: &Web, id: i64, action: &str) -> WebResult<()> {
    let id = QueueId(id);
    if !web.store.queue()?.iter().any(|e| e.id == id) {
        return Err(WebError::NotFound);
    }
    match action {
        "retry" => web.store.queue_retry(id)?,
        "hold" => web.store.queue_hold(id, true)?,
        "release" => web.store.queue_hold(id, false)?,
        "delete" => web.store.queue_delete(id)?,
        _ => return Err(WebError::BadRequest(format!("unknown action {action}"))),
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
pub struct DkimForm {
    pub domain: String,
    #[serde(default)]
    pub selector: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub listeners: Vec<(String, String)>,
    pub counters: Vec<(String, u64)>,
}

pub fn status(web: &Web) -> WebResult<StatusView> {
    let mut counters = web.host.counters();
    counters.push(("web connections".into(), web.connections() as u64));
    counters.push(("web logins".into(), web.sessions.len() as u64));
    counters.push((
        "transcripts followed live".into(),
        web.watchers.watched() as u64,
    ));
    counters.push(("accounts".into(), web.store.accounts()?.len() as u64));
    counters.push(("queue entries".into(), web.store.queue()?.len() as u64));
    Ok(StatusView {
        listeners: web.host.listeners(),
        counters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_domains_are_checked() {
        assert!(valid_address("carol@postamt.test"));
        assert!(!valid_address("carol"));
        assert!(!valid_address("<script>@x.test"));
        assert!(!valid_address("a b@x.test"));
        assert!(valid_domain("example.org"));
        assert!(!valid_domain("exa mple.org"));
        assert!(!valid_domain("-x.org"));
        assert!(!valid_domain("x..org"));
    }
}
