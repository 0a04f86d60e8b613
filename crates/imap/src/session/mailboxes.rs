//! Mailbox names and mailbox management (RFC 9051 §5.1 names, §6.3.4
//! CREATE, §6.3.5 DELETE, §6.3.6 RENAME, §6.3.7 SUBSCRIBE, §6.3.8
//! UNSUBSCRIBE, §6.3.9 LIST, §6.3.11 STATUS; RFC 3501 §6.3.9 LSUB, §5.1.3
//! modified UTF-7; RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154
//! SPECIAL-USE, RFC 9208 QUOTA).

use std::collections::BTreeSet;
use std::sync::Arc;

use postamt_server::blocking::read_inline;
use postamt_store::{
    Flags, Mailbox, StoreError, Uid, blocking, canonical_mailbox_name, check_mailbox_name,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::*;

/// RFC 3501 LIST wildcards: `*` matches anything, `%` anything but `/`.
pub(super) fn matches(pattern: &[u8], name: &[u8]) -> bool {
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
pub(super) fn list_matches(pattern: &str, name: &str) -> bool {
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
    /// A mailbox name from the client: modified UTF-7 decoded (a name that
    /// is not valid modified UTF-7 is taken as UTF-8), INBOX canonical.
    pub(super) fn name_in(&self, raw: &[u8]) -> Result<String, String> {
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
    pub(super) fn new_name_in(&self, raw: &[u8]) -> Result<String, String> {
        let name = self.name_in(raw)?.trim_end_matches('/').to_string();
        check_mailbox_name(&name).map_err(|e| store_no(&e))?;
        if name.split('/').any(|l| l == "." || l == "..") {
            return Err("NO [CANNOT] . and .. are not mailbox names".into());
        }
        Ok(name)
    }

    pub(super) fn name_out(&self, name: &str) -> Vec<u8> {
        let enc = if self.utf8() {
            name.to_string()
        } else {
            mutf7::encode(name)
        };
        let mut out = Vec::new();
        string(&mut out, enc.as_bytes(), self.utf8());
        out
    }

    pub(super) fn find_mailbox(&self, name: &str) -> Result<Mailbox, String> {
        let account = self.account().id;
        let store = Arc::clone(self.store);
        match read_inline(|| store.mailbox(account, name)) {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err("NO [NONEXISTENT] no such mailbox".into()),
            Err(e) => Err(store_no(&e)),
        }
    }

    pub(super) async fn create(&mut self, raw: &[u8], uses: &[String]) -> Result<String, String> {
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

    pub(super) async fn delete(&mut self, raw: &[u8]) -> Result<String, String> {
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

    pub(super) async fn rename(&mut self, from: &[u8], to: &[u8]) -> Result<String, String> {
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

    pub(super) async fn subscribe(&mut self, raw: &[u8], on: bool) -> Result<String, String> {
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
    pub(super) fn list(
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
    pub(super) fn status_line(
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

    pub(super) fn status(&mut self, raw: &[u8], items: &[StatusItem]) -> Result<String, String> {
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
    pub(super) fn quota_root(&self) -> Result<Option<(u64, u64)>, String> {
        let address = self.account().address.clone();
        let store = Arc::clone(self.store);
        let account = read_inline(|| store.account(&address))
            .map_err(|e| store_no(&e))?
            .ok_or("NO [UNAVAILABLE] account vanished")?;
        Ok(account
            .quota_bytes
            .map(|q| (account.used_bytes.div_ceil(1024), q / 1024)))
    }

    pub(super) fn get_quota_root(&mut self, raw: &[u8]) -> Result<String, String> {
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

    pub(super) fn get_quota(&mut self, root: &[u8]) -> Result<String, String> {
        match (root.is_empty(), self.quota_root()?) {
            (true, Some((used, limit))) => {
                self.untagged(&format!("QUOTA \"\" (STORAGE {used} {limit})"));
                Ok("OK GETQUOTA completed".into())
            }
            _ => Err("NO [NONEXISTENT] no such quota root".into()),
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
}
