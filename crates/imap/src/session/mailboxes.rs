//! Mailbox names and mailbox management: names in and out (RFC 9051
//! §5.1, RFC 3501 §5.1.3 modified UTF-7, RFC 6855 UTF-8), CREATE (§6.3.4,
//! RFC 6154 §3 CREATE-SPECIAL-USE), DELETE (§6.3.5), RENAME (§6.3.6),
//! SUBSCRIBE and UNSUBSCRIBE (§6.3.7, §6.3.8), LIST (§6.3.9, RFC 5258
//! LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE), LSUB (RFC
//! 3501 §6.3.9), STATUS (§6.3.11, RFC 8438 STATUS=SIZE, RFC 7889
//! APPENDLIMIT) and the quotas (RFC 9208 GETQUOTA, GETQUOTAROOT, SETQUOTA).

use std::collections::BTreeSet;

use postamt_store::{Flags, Mailbox, StoreError, canonical_mailbox_name, check_mailbox_name};
use postamt_wire::imap::{mutf7, string};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Reply, Session};
use crate::command::{ListReturn, StatusItem};
use crate::status::{Code, Status};

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
    /// A mailbox name from the client: modified UTF-7 decoded (a name that
    /// is not valid modified UTF-7 is taken as UTF-8), INBOX canonical.
    pub(super) fn name_in(&self, raw: &[u8]) -> Result<String, Status> {
        let s = String::from_utf8(raw.to_vec())
            .map_err(|_| Status::bad("mailbox name is not UTF-8"))?;
        let name = if self.utf8() {
            s
        } else {
            // RFC 3501 §5.1.3: a rev1 client without UTF8=ACCEPT sends
            // modified UTF-7; anything else is refused, not guessed at.
            mutf7::decode(&s).ok_or_else(|| {
                Status::no("mailbox name is not valid modified UTF-7").with_code(Code::Cannot)
            })?
        };
        Ok(canonical_mailbox_name(&name))
    }

    /// Names made by CREATE and RENAME: also no `.` or `..` levels (they
    /// mean something else in every file-based store a user may migrate to).
    fn new_name_in(&self, raw: &[u8]) -> Result<String, Status> {
        let name = self.name_in(raw)?.trim_end_matches('/').to_string();
        check_mailbox_name(&name)?;
        if name.split('/').any(|l| l == "." || l == "..") {
            return Err(Status::no(". and .. are not mailbox names").with_code(Code::Cannot));
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

    /// The mailbox `name` of this account; `NO [NONEXISTENT]` if there is
    /// none ([`Session::find_target`] for APPEND and COPY).
    pub(super) fn find_mailbox(&self, name: &str) -> Result<Mailbox, Status> {
        self.find_target(name, Code::Nonexistent)
    }

    /// The mailbox `name`, or `NO [missing] no such mailbox`: APPEND and
    /// COPY say `TRYCREATE` (RFC 9051 §6.3.12, §6.4.7). A store failure is
    /// the store's status, not a missing mailbox.
    pub(super) fn find_target(&self, name: &str, missing: Code) -> Result<Mailbox, Status> {
        let account = self.account().id;
        self.store
            .read_mailbox(account, name)?
            .ok_or_else(|| Status::no("no such mailbox").with_code(missing))
    }

    pub(super) async fn create(&mut self, raw: &[u8], uses: &[String]) -> Reply {
        // RFC 6154 §3: CREATE-SPECIAL-USE; one attribute per mailbox here.
        let special = match uses {
            [] => None,
            [one] => Some(
                postamt_store::SpecialUse::from_attribute(one).ok_or_else(|| {
                    Status::no(format!("{one} is not a special use this server supports"))
                        .with_code(Code::UseAttr)
                })?,
            ),
            _ => {
                return Err(Status::no("one special use per mailbox").with_code(Code::UseAttr));
            }
        };
        // RFC 9051 §6.3.4: a trailing delimiter only says "will have children".
        let name = self.new_name_in(raw)?;
        if name == "INBOX" {
            return Err(Status::no("INBOX always exists").with_code(Code::AlreadyExists));
        }
        // Missing parents are created too (RFC 9051 §6.3.4).
        let account = self.account().id;
        self.store
            .write_create_mailbox(account, name, special)
            .await?;
        Ok(Status::ok("CREATE completed"))
    }

    pub(super) async fn delete(&mut self, raw: &[u8]) -> Reply {
        let name = self.name_in(raw)?;
        if name == "INBOX" {
            return Err(Status::no("INBOX cannot be deleted").with_code(Code::Cannot));
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
        self.store.write_delete_mailbox(account, name).await?;
        Ok(Status::ok("DELETE completed"))
    }

    pub(super) async fn rename(&mut self, from: &[u8], to: &[u8]) -> Reply {
        let from = self.name_in(from)?;
        let to = self.new_name_in(to)?;
        self.find_mailbox(&from)?;
        let account = self.account().id;
        self.store.write_rename_mailbox(account, from, to).await?;
        Ok(Status::ok("RENAME completed"))
    }

    pub(super) async fn subscribe(&mut self, raw: &[u8], on: bool) -> Reply {
        let name = self.name_in(raw)?;
        let account = self.account().id;
        self.store.write_subscription(account, name, on).await?;
        Ok(Status::ok(format!(
            "{}SUBSCRIBE completed",
            if on { "" } else { "UN" }
        )))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn list(
        &mut self,
        reference: &[u8],
        patterns: &[Vec<u8>],
        lsub: bool,
        select: &[String],
        returns: Option<&ListReturn>,
    ) -> Reply {
        let verb = if lsub { "LSUB" } else { "LIST" };
        let extended = returns.is_some();
        let reference = self.name_in(reference).unwrap_or_default();
        if !lsub && patterns.len() == 1 && patterns[0].is_empty() {
            // RFC 9051 §6.3.9: the hierarchy delimiter and root.
            self.untagged("LIST (\\Noselect) \"/\" \"\"");
            return Ok(Status::ok("LIST completed"));
        }
        let account = self.account().id;
        let (boxes, subs) = self.store.read_mailboxes_and_subscriptions(account)?;
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
                // RFC 5258 §3.5 (and Dovecot): with RECURSIVEMATCH, a match
                // with a subscribed descendant carries CHILDINFO; a mailbox
                // that is not subscribed is listed, with CHILDINFO, when a
                // subscribed descendant is not listed itself (the pattern
                // does not reach it).
                if subscribed {
                    childinfo = recursive && child_subscribed;
                    true
                } else if recursive && subs.iter().any(|s| s.starts_with(&prefix) && !matching(s)) {
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
                let status = self.status_line(name, m, items)?;
                lines.push(status);
            }
        }
        for l in lines {
            self.push_raw(&l);
        }
        Ok(Status::ok(format!("{verb} completed")))
    }

    /// `* STATUS name (…)` for one mailbox.
    fn status_line(
        &self,
        name: &str,
        mailbox: &Mailbox,
        items: &[StatusItem],
    ) -> Result<Vec<u8>, StoreError> {
        let need_list = items.iter().any(|i| {
            matches!(
                i,
                StatusItem::Recent | StatusItem::Deleted | StatusItem::DeletedStorage
            )
        });
        let need_recent = items.contains(&StatusItem::Recent);
        let (st, list, recent_from) = self.store.read_status(mailbox.id, need_list, need_recent)?;
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

    pub(super) fn status(&mut self, raw: &[u8], items: &[StatusItem]) -> Reply {
        let name = self.name_in(raw)?;
        let mailbox = self.find_mailbox(&name)?;
        if items.contains(&StatusItem::HighestModSeq) {
            self.enable_condstore();
        }
        let line = self.status_line(&name, &mailbox, items)?;
        self.push_raw(&line);
        Ok(Status::ok("STATUS completed"))
    }

    /// RFC 9208: one quota root, `""`, per account, with the STORAGE
    /// resource in units of 1024 octets; none when the account has no quota.
    fn quota_root(&self) -> Result<Option<(u64, u64)>, Status> {
        let address = self.account().address.clone();
        let account = self
            .store
            .read_account(&address)?
            .ok_or_else(|| Status::no("account vanished").with_code(Code::Unavailable))?;
        Ok(account
            .quota_bytes
            .map(|q| (account.used_bytes.div_ceil(1024), q / 1024)))
    }

    pub(super) fn get_quota_root(&mut self, raw: &[u8]) -> Reply {
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
        Ok(Status::ok("GETQUOTAROOT completed"))
    }

    /// RFC 9208 §4.1.3: quotas are the administrator's.
    pub(super) fn set_quota(&mut self) -> Reply {
        Err(
            Status::no("quotas are set by the administrator (postamt user quota)")
                .with_code(Code::NoPerm),
        )
    }

    pub(super) fn get_quota(&mut self, root: &[u8]) -> Reply {
        match (root.is_empty(), self.quota_root()?) {
            (true, Some((used, limit))) => {
                self.untagged(&format!("QUOTA \"\" (STORAGE {used} {limit})"));
                Ok(Status::ok("GETQUOTA completed"))
            }
            _ => Err(Status::no("no such quota root").with_code(Code::Nonexistent)),
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
