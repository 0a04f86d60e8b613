//! The mailbox views: mailboxes with counts, a page of a message list
//! (sorted, searched with the IMAP index), one message (text, sanitised
//! HTML, attachments, raw source), and the changes a reader makes (flags,
//! move, delete). Every lookup goes through the logged-in account: a
//! mailbox of another account is [`WebError::NotFound`].

use std::collections::HashSet;

use mail_parser::{MessageParser, MimeHeaders};
use postamt_store::{
    AccountId, FlagOp, Flags, Mailbox, MailboxId, ModSeq, SpecialUse, TextScope, Uid,
};
use serde::{Deserialize, Serialize};

use crate::Web;
use crate::security::{WebError, WebResult};

#[derive(Debug, Clone, Serialize)]
pub struct MailboxView {
    pub id: i64,
    pub name: String,
    pub special_use: Option<String>,
    pub messages: u32,
    pub unseen: u32,
    pub size: u64,
}

fn special_name(s: SpecialUse) -> &'static str {
    match s {
        SpecialUse::Drafts => "drafts",
        SpecialUse::Sent => "sent",
        SpecialUse::Trash => "trash",
        SpecialUse::Junk => "junk",
        SpecialUse::Archive => "archive",
    }
}

fn view_of(web: &Web, m: &Mailbox) -> WebResult<MailboxView> {
    let st = web.store.mailbox_status(m.id)?;
    Ok(MailboxView {
        id: m.id.0,
        name: m.name.clone(),
        special_use: m.special_use.map(|s| special_name(s).to_string()),
        messages: st.messages,
        unseen: st.unseen,
        size: st.size,
    })
}

/// The account's mailboxes, INBOX first, with their counts.
pub fn mailboxes(web: &Web, account: AccountId) -> WebResult<Vec<MailboxView>> {
    mailboxes_knowing(web, account, None)
}

/// [`mailboxes`] where the caller already has one mailbox's view (a list
/// page counted its own while listing it): that one is not counted again.
fn mailboxes_knowing(
    web: &Web,
    account: AccountId,
    known: Option<&MailboxView>,
) -> WebResult<Vec<MailboxView>> {
    sorted(web.store.mailboxes(account)?)
        .iter()
        .map(|m| match known {
            Some(k) if k.id == m.id.0 => Ok(k.clone()),
            _ => view_of(web, m),
        })
        .collect()
}

fn sorted(mut boxes: Vec<Mailbox>) -> Vec<Mailbox> {
    boxes.sort_by(|a, b| {
        (a.name != "INBOX", a.name.to_lowercase()).cmp(&(b.name != "INBOX", b.name.to_lowercase()))
    });
    boxes
}

/// A mailbox by name only (where counts are not shown: they cost a pass
/// over a big mailbox).
#[derive(Debug, Clone, Serialize)]
pub struct MailboxRef {
    pub id: i64,
    pub name: String,
}

/// The mailbox `id` if it belongs to `account`; 404 otherwise.
pub fn own_mailbox(web: &Web, account: AccountId, id: i64) -> WebResult<Mailbox> {
    match web.store.mailbox_by_id(MailboxId(id))? {
        Some(m) if m.account == account => Ok(m),
        _ => Err(WebError::NotFound),
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListQuery {
    pub page: Option<usize>,
    /// `newest` (default), `oldest`, `largest`, `smallest`, `subject`, `from`.
    pub sort: Option<String>,
    /// Text to search for (subject, addresses, body: IMAP SEARCH TEXT).
    pub q: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListItem {
    pub uid: u32,
    pub from: String,
    pub subject: String,
    pub date: String,
    pub size: u64,
    pub seen: bool,
    pub flagged: bool,
    pub answered: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListView {
    pub mailbox: MailboxView,
    /// Every mailbox of the account with its counts (the sidebar).
    pub mailboxes: Vec<MailboxView>,
    pub items: Vec<ListItem>,
    /// 1-based.
    pub page: usize,
    pub pages: usize,
    /// Messages listed (those that match the search).
    pub total: usize,
    pub sort: String,
    pub q: String,
    /// The search read only the first [`MAX_CHECKS`] of the messages the
    /// index could not answer for: there may be more matches.
    pub incomplete: bool,
}

pub const SORTS: [&str; 6] = ["newest", "oldest", "largest", "smallest", "subject", "from"];

/// Most messages a search reads to check what the index cannot answer.
const MAX_CHECKS: usize = 5_000;

/// One page of the message list.
pub fn list(web: &Web, account: AccountId, id: i64, q: &ListQuery) -> WebResult<ListView> {
    let mailbox = own_mailbox(web, account, id)?;
    let mut all = web.store.messages(mailbox.id, ModSeq(0))?;
    // The counts of this mailbox from its listing (no second pass).
    let view = MailboxView {
        id: mailbox.id.0,
        name: mailbox.name.clone(),
        special_use: mailbox.special_use.map(|s| special_name(s).to_string()),
        messages: all.len() as u32,
        unseen: all
            .iter()
            .filter(|m| !m.flags.contains(Flags::SEEN))
            .count() as u32,
        size: all.iter().map(|m| m.size).sum(),
    };
    let needle = q.q.as_deref().unwrap_or("").trim().to_string();
    let mut incomplete = false;
    if !needle.is_empty() {
        let (hits, cut) = search(web, mailbox.id, &needle)?;
        incomplete = cut;
        all.retain(|m| hits.contains(&m.uid));
    }
    let sort = q
        .sort
        .as_deref()
        .filter(|s| SORTS.contains(s))
        .unwrap_or("newest")
        .to_string();
    match sort.as_str() {
        "oldest" => {}
        "largest" => all.sort_by(|a, b| b.size.cmp(&a.size).then(b.uid.cmp(&a.uid))),
        "smallest" => all.sort_by(|a, b| a.size.cmp(&b.size).then(b.uid.cmp(&a.uid))),
        "subject" | "from" => {
            // The values kept for SEARCH (lower-cased): no message is read.
            let kept = web.store.search_headers(mailbox.id, Uid(0))?;
            let key: std::collections::HashMap<Uid, String> = kept
                .into_iter()
                .map(|(uid, h)| {
                    let v = h.and_then(|h| if sort == "subject" { h.subject } else { h.from });
                    (uid, v.unwrap_or_default())
                })
                .collect();
            let empty = String::new();
            all.sort_by(|a, b| {
                let (ka, kb) = (
                    key.get(&a.uid).unwrap_or(&empty),
                    key.get(&b.uid).unwrap_or(&empty),
                );
                ka.cmp(kb).then(b.uid.cmp(&a.uid))
            });
        }
        _ => all.reverse(),
    }
    let size = web.config.page_size.max(1);
    let total = all.len();
    let pages = total.div_ceil(size).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let slice = &all[(page - 1) * size..(page * size).min(total)];
    let mut uids: Vec<Uid> = slice.iter().map(|m| m.uid).collect();
    uids.sort();
    let metas: std::collections::HashMap<Uid, postamt_wire::meta::MessageMeta> = web
        .store
        .message_metas(mailbox.id, &uids)?
        .into_iter()
        .collect();
    let items = slice
        .iter()
        .map(|m| {
            let (from, subject) = metas
                .get(&m.uid)
                .map(|meta| decoded_from_subject(&meta.envelope))
                .unwrap_or_default();
            ListItem {
                uid: m.uid.0,
                from,
                subject,
                date: short_date(m.internaldate),
                size: m.size,
                seen: m.flags.contains(Flags::SEEN),
                flagged: m.flags.contains(Flags::FLAGGED),
                answered: m.flags.contains(Flags::ANSWERED),
            }
        })
        .collect();
    Ok(ListView {
        mailboxes: mailboxes_knowing(web, account, Some(&view))?,
        mailbox: view,
        items,
        page,
        pages,
        total,
        sort,
        q: needle,
        incomplete,
    })
}

/// The UIDs whose text (header fields and body) holds `needle`, as IMAP
/// `SEARCH TEXT` finds them (RFC 9051 §6.4.4): the index answers, the
/// messages it is unsure of are read and checked.
/// Also says whether it stopped after [`MAX_CHECKS`] messages to read.
fn search(web: &Web, mailbox: MailboxId, needle: &str) -> WebResult<(HashSet<Uid>, bool)> {
    let folded = needle.to_lowercase();
    let check = |uids: &[Uid]| -> WebResult<Vec<Uid>> {
        let mut out = Vec::new();
        for chunk in uids[..uids.len().min(MAX_CHECKS)].chunks(64) {
            for (uid, content) in web.store.message_contents(mailbox, chunk)? {
                let t = postamt_wire::search::extract(&content);
                if t.headers.to_lowercase().contains(&folded)
                    || t.body.to_lowercase().contains(&folded)
                {
                    out.push(uid);
                }
            }
        }
        Ok(out)
    };
    match web.store.text_matches(mailbox, needle, TextScope::Text)? {
        Some(m) => {
            let mut hits: HashSet<Uid> = m.certain.into_iter().collect();
            hits.extend(check(&m.unsure)?);
            Ok((hits, m.unsure.len() > MAX_CHECKS))
        }
        None => {
            // No index answer (a needle too short for trigrams): the kept
            // header values, then the messages without them.
            let kept = web.store.search_headers(mailbox, Uid(0))?;
            let mut hits = HashSet::new();
            let mut unknown = Vec::new();
            for (uid, h) in kept {
                match h {
                    Some(h) => {
                        let any = [h.subject, h.from, h.to, h.cc]
                            .into_iter()
                            .flatten()
                            .any(|v| v.contains(&folded));
                        if any {
                            hits.insert(uid);
                        }
                    }
                    None => unknown.push(uid),
                }
            }
            hits.extend(check(&unknown)?);
            Ok((hits, unknown.len() > MAX_CHECKS))
        }
    }
}

/// From (the name, or the address) and Subject, decoded (RFC 2047).
fn decoded_from_subject(e: &postamt_wire::meta::Envelope) -> (String, String) {
    let mut head = String::new();
    if let Some(f) = &e.from {
        head.push_str("From: ");
        head.push_str(f);
        head.push_str("\r\n");
    }
    if let Some(s) = &e.subject {
        head.push_str("Subject: ");
        head.push_str(s);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let Some(m) = MessageParser::default().parse_headers(head.as_bytes()) else {
        return (String::new(), String::new());
    };
    (
        first_address(m.from()),
        m.subject().unwrap_or("").to_string(),
    )
}

fn first_address(a: Option<&mail_parser::Address>) -> String {
    a.and_then(|a| a.first())
        .map(|a| match (&a.name, &a.address) {
            (Some(n), _) if !n.trim().is_empty() => n.to_string(),
            (_, Some(ad)) => ad.to_string(),
            _ => String::new(),
        })
        .unwrap_or_default()
}

fn all_addresses(a: Option<&mail_parser::Address>) -> String {
    let Some(a) = a else {
        return String::new();
    };
    a.iter()
        .map(|a| match (&a.name, &a.address) {
            (Some(n), Some(ad)) if !n.trim().is_empty() => format!("{n} <{ad}>"),
            (_, Some(ad)) => ad.to_string(),
            (Some(n), None) => n.to_string(),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `2026-12-05 21:52` (UTC).
pub fn short_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = postamt_wire::time::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachmentView {
    pub index: u32,
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub mailbox: MailboxRef,
    pub uid: u32,
    pub subject: String,
    pub from: String,
    pub to: String,
    pub cc: String,
    pub date: String,
    pub flags: Vec<String>,
    pub seen: bool,
    pub flagged: bool,
    /// The text body (the first text part, or the HTML part as text).
    pub text: String,
    /// The message has an HTML body: shown in the sandboxed frame.
    pub has_html: bool,
    pub attachments: Vec<AttachmentView>,
    /// Where it can be moved.
    pub targets: Vec<MailboxRef>,
    pub size: u64,
}

/// One message, read by its owner (and marked `\Seen`, as every webmail
/// does when a message is opened).
pub fn message(web: &Web, account: AccountId, id: i64, uid: u32) -> WebResult<MessageView> {
    let mailbox = own_mailbox(web, account, id)?;
    let (raw, summary) = content(web, &mailbox, uid)?;
    if !summary.flags.contains(Flags::SEEN) {
        web.store
            .store_flags(mailbox.id, &[Uid(uid)], FlagOp::Add, Flags::SEEN, &[], None)?;
    }
    let parsed = MessageParser::default().parse(&raw);
    let mut view = MessageView {
        mailbox: MailboxRef {
            id: mailbox.id.0,
            name: mailbox.name.clone(),
        },
        uid,
        subject: String::new(),
        from: String::new(),
        to: String::new(),
        cc: String::new(),
        date: short_date(summary.internaldate),
        flags: summary
            .flags
            .union(Flags::SEEN)
            .names()
            .map(str::to_string)
            .chain(summary.keywords.iter().cloned())
            .collect(),
        seen: true,
        flagged: summary.flags.contains(Flags::FLAGGED),
        text: String::new(),
        has_html: false,
        attachments: Vec::new(),
        targets: sorted(web.store.mailboxes(account)?)
            .into_iter()
            .filter(|m| m.id != mailbox.id)
            .map(|m| MailboxRef {
                id: m.id.0,
                name: m.name,
            })
            .collect(),
        size: summary.size,
    };
    if let Some(m) = parsed {
        view.subject = m.subject().unwrap_or("").to_string();
        view.from = all_addresses(m.from());
        view.to = all_addresses(m.to());
        view.cc = all_addresses(m.cc());
        if let Some(d) = m.date() {
            view.date = d.to_rfc822();
        }
        view.has_html = m
            .html_body
            .first()
            .and_then(|&i| m.parts.get(i as usize))
            .is_some_and(|p| p.is_text_html());
        view.text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
        view.attachments = m
            .attachments()
            .enumerate()
            .map(|(i, p)| AttachmentView {
                index: i as u32,
                name: p
                    .attachment_name()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("part-{}", i + 1)),
                content_type: p
                    .content_type()
                    .map(|c| match c.subtype() {
                        Some(s) => format!("{}/{}", c.ctype(), s),
                        None => c.ctype().to_string(),
                    })
                    .unwrap_or_else(|| "application/octet-stream".into()),
                size: p.contents().len(),
            })
            .collect();
    } else {
        view.text = String::from_utf8_lossy(&raw).into_owned();
    }
    Ok(view)
}

/// The content of a message of `mailbox` and its listing entry.
pub fn content(
    web: &Web,
    mailbox: &Mailbox,
    uid: u32,
) -> WebResult<(Vec<u8>, postamt_store::MessageSummary)> {
    let raw = web
        .store
        .message_content(mailbox.id, Uid(uid))?
        .ok_or(WebError::NotFound)?;
    // The listing entry: flags and dates (a point read: the listing of a
    // big mailbox is not read for one message).
    let summary = web
        .store
        .message_summary(mailbox.id, Uid(uid))?
        .ok_or(WebError::NotFound)?;
    Ok((raw, summary))
}

/// The raw octets of a message the account owns.
pub fn raw(web: &Web, account: AccountId, id: i64, uid: u32) -> WebResult<Vec<u8>> {
    let mailbox = own_mailbox(web, account, id)?;
    web.store
        .message_content(mailbox.id, Uid(uid))?
        .ok_or(WebError::NotFound)
}

/// Attachment `index`: (file name, bytes).
pub fn attachment(
    web: &Web,
    account: AccountId,
    id: i64,
    uid: u32,
    index: u32,
) -> WebResult<(String, Vec<u8>)> {
    let raw = raw(web, account, id, uid)?;
    let m = MessageParser::default()
        .parse(&raw)
        .ok_or(WebError::NotFound)?;
    let p = m.attachment(index).ok_or(WebError::NotFound)?;
    let name = p
        .attachment_name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("part-{}", index + 1));
    Ok((name, p.contents().to_vec()))
}

/// The HTML body of a message, sanitised (`None`: it has none).
pub fn html_body(
    web: &Web,
    account: AccountId,
    id: i64,
    uid: u32,
    remote: bool,
) -> WebResult<Option<String>> {
    let raw = raw(web, account, id, uid)?;
    let Some(m) = MessageParser::default().parse(&raw) else {
        return Ok(None);
    };
    let Some(part) = m.html_body.first().and_then(|&i| m.parts.get(i as usize)) else {
        return Ok(None);
    };
    if !part.is_text_html() {
        return Ok(None);
    }
    let html = m.body_html(0).unwrap_or_default();
    let inline = crate::html::inline_images(&m);
    Ok(Some(crate::html::sanitize_with(&html, remote, inline)))
}

#[derive(Debug, Clone, Deserialize)]
pub struct FlagForm {
    /// `seen`, `unseen`, `flag`, `unflag`.
    pub action: String,
}

pub fn set_flag(web: &Web, account: AccountId, id: i64, uid: u32, action: &str) -> WebResult<()> {
    let mailbox = own_mailbox(web, account, id)?;
    let (op, flag) = match action {
        "seen" => (FlagOp::Add, Flags::SEEN),
        "unseen" => (FlagOp::Remove, Flags::SEEN),
        "flag" => (FlagOp::Add, Flags::FLAGGED),
        "unflag" => (FlagOp::Remove, Flags::FLAGGED),
        _ => return Err(WebError::BadRequest(format!("unknown action {action}"))),
    };
    let present = web.store.message_meta(mailbox.id, Uid(uid))?.is_some();
    if !present {
        return Err(WebError::NotFound);
    }
    web.store
        .store_flags(mailbox.id, &[Uid(uid)], op, flag, &[], None)?;
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
pub struct MoveForm {
    /// The id of the target mailbox.
    pub to: i64,
}

/// Moves a message to another mailbox of the same account (IMAP MOVE,
/// RFC 6851: copy and expunge in one transaction). Returns the new UID.
pub fn move_to(web: &Web, account: AccountId, id: i64, uid: u32, to: i64) -> WebResult<u32> {
    let from = own_mailbox(web, account, id)?;
    let target = own_mailbox(web, account, to)?;
    if from.id == target.id {
        return Err(WebError::BadRequest("the message is already there".into()));
    }
    let moved = web
        .store
        .copy_messages(from.id, &[Uid(uid)], target.id, true)?;
    moved
        .first()
        .map(|(_, new)| new.0)
        .ok_or(WebError::NotFound)
}

/// Delete: into the Trash, or out of the account when it is in the Trash
/// already (or there is none), as mail clients do.
pub fn delete(web: &Web, account: AccountId, id: i64, uid: u32) -> WebResult<()> {
    let from = own_mailbox(web, account, id)?;
    let trash = web
        .store
        .mailboxes(account)?
        .into_iter()
        .find(|m| m.special_use == Some(SpecialUse::Trash));
    match trash {
        Some(t) if t.id != from.id => {
            let moved = web.store.copy_messages(from.id, &[Uid(uid)], t.id, true)?;
            if moved.is_empty() {
                return Err(WebError::NotFound);
            }
        }
        _ => {
            if web.store.expunge(from.id, &[Uid(uid)])?.is_empty() {
                return Err(WebError::NotFound);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_short_and_utc() {
        assert_eq!(short_date(0), "1970-01-01 00:00");
        assert_eq!(short_date(1_764_971_520), "2025-12-05 21:52");
    }

    #[test]
    fn encoded_words_are_decoded_for_the_list() {
        let e = postamt_wire::meta::Envelope {
            from: Some("=?utf-8?q?J=C3=BCrgen?= <j@example.test>".into()),
            subject: Some("=?utf-8?b?R3LDvMOfZQ==?=".into()),
            ..Default::default()
        };
        assert_eq!(
            decoded_from_subject(&e),
            ("Jürgen".to_string(), "Grüße".to_string())
        );
    }
}
