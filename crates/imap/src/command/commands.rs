//! The command grammar (RFC 9051 §6, §9): one arm per command name, with
//! the extensions' arguments (RFC 5161 ENABLE, RFC 2971 ID, RFC 7162
//! SELECT parameters, RFC 6154 CREATE USE, RFC 5258 LIST-EXTENDED, RFC 5819
//! LIST-STATUS, RFC 3502 MULTIAPPEND, RFC 6855 UTF8 APPEND, RFC 9208
//! SETQUOTA, RFC 4315 UID EXPUNGE) and the STORE and COPY/MOVE arguments.
//! SEARCH, SORT and THREAD are in [`super::search`], FETCH items in
//! [`super::fetch`].

use super::syntax::{Parser, R};
use super::{
    AppendMessage, CommandKind, ListReturn, MAX_APPEND_MESSAGES, Qresync, StatusItem, StoreMode,
};
use postamt_wire::Secret;

impl Parser<'_> {
    pub(super) fn command(&mut self, tag: &str) -> R<CommandKind> {
        use CommandKind as C;
        let name = self.atom()?.to_ascii_uppercase();
        let kind = match name.as_str() {
            "CAPABILITY" => C::Capability,
            "NOOP" => C::Noop,
            "LOGOUT" => C::Logout,
            "STARTTLS" => C::StartTls,
            "NAMESPACE" => C::Namespace,
            "IDLE" => C::Idle,
            "CHECK" => C::Check,
            "CLOSE" => C::Close,
            "UNSELECT" => C::Unselect,
            "EXPUNGE" => C::Expunge { uids: None },
            "ID" => {
                self.sp()?;
                if self.eat_word("NIL") {
                    C::Id(None)
                } else {
                    self.open()?;
                    let mut fields = Vec::new();
                    if !self.eat(b')') {
                        loop {
                            let k = String::from_utf8_lossy(&self.string()?).into_owned();
                            self.sp()?;
                            let v = self.nstring_or_nil()?;
                            if fields.len() < 30 {
                                fields.push((k, v));
                            }
                            if self.eat(b')') {
                                break;
                            }
                            self.sp()?;
                        }
                    }
                    self.depth -= 1;
                    C::Id(Some(fields))
                }
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.eat(b' ') {
                    caps.push(self.atom()?.to_ascii_uppercase());
                }
                if caps.is_empty() {
                    return Err("ENABLE needs a capability".into());
                }
                C::Enable(caps)
            }
            "LOGIN" => {
                self.sp()?;
                let user = self.astring()?;
                self.sp()?;
                let password = Secret::new(self.astring()?);
                C::Login { user, password }
            }
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.atom()?.to_ascii_uppercase();
                let initial = if self.eat(b' ') {
                    // RFC 4959: base64 or "=".
                    let t = self.take_while(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
                    Some(Secret::new(String::from_utf8_lossy(t).into_owned()))
                } else {
                    None
                };
                C::Authenticate { mechanism, initial }
            }
            "SELECT" | "EXAMINE" => {
                self.sp()?;
                let mailbox = self.astring()?;
                let mut condstore = false;
                let mut qresync = None;
                if self.eat(b' ') {
                    self.open()?;
                    loop {
                        let p = self.atom()?.to_ascii_uppercase();
                        match p.as_str() {
                            "CONDSTORE" => condstore = true,
                            "QRESYNC" => {
                                self.sp()?;
                                self.open()?;
                                let uidvalidity = self.number32()?;
                                self.sp()?;
                                let modseq = self.number()?;
                                let mut known_uids = None;
                                if self.eat(b' ') {
                                    if self.peek() != Some(b'(') {
                                        known_uids = Some(self.seqset()?);
                                        self.eat(b' ');
                                    }
                                    // The sequence match data is an optional
                                    // hint; it is parsed and not needed.
                                    if self.peek() == Some(b'(') {
                                        self.open()?;
                                        self.seqset()?;
                                        self.sp()?;
                                        self.seqset()?;
                                        self.close()?;
                                    }
                                }
                                self.close()?;
                                qresync = Some(Qresync {
                                    uidvalidity,
                                    modseq,
                                    known_uids,
                                });
                            }
                            _ => return Err(format!("unsupported select parameter {p}")),
                        }
                        if self.eat(b')') {
                            break;
                        }
                        self.sp()?;
                    }
                    self.depth -= 1;
                }
                C::Select {
                    mailbox,
                    read_only: name == "EXAMINE",
                    condstore,
                    qresync,
                }
            }
            "CREATE" => {
                self.sp()?;
                let name = self.astring()?;
                let mut uses = Vec::new();
                if self.eat(b' ') {
                    self.open()?;
                    if !self.eat_word("USE") {
                        return Err("unsupported CREATE parameter".into());
                    }
                    self.sp()?;
                    uses = self.flag_list()?;
                    self.close()?;
                }
                C::Create { name, uses }
            }
            "GETQUOTA" => {
                self.sp()?;
                C::GetQuota(self.astring()?)
            }
            "GETQUOTAROOT" => {
                self.sp()?;
                C::GetQuotaRoot(self.astring()?)
            }
            "SETQUOTA" => {
                self.sp()?;
                let root = self.astring()?;
                self.sp()?;
                self.open()?;
                while !self.eat(b')') {
                    self.atom()?;
                    self.eat(b' ');
                    if self.at_end() {
                        return Err("expected ')'".into());
                    }
                }
                self.depth -= 1;
                C::SetQuota(root)
            }
            "DELETE" => {
                self.sp()?;
                C::Delete(self.astring()?)
            }
            "RENAME" => {
                self.sp()?;
                let a = self.astring()?;
                self.sp()?;
                C::Rename(a, self.astring()?)
            }
            "SUBSCRIBE" => {
                self.sp()?;
                C::Subscribe(self.astring()?)
            }
            "UNSUBSCRIBE" => {
                self.sp()?;
                C::Unsubscribe(self.astring()?)
            }
            "LIST" | "LSUB" => {
                self.sp()?;
                let lsub = name == "LSUB";
                let mut select = Vec::new();
                let mut extended = false;
                if !lsub && self.peek() == Some(b'(') {
                    // RFC 5258 §3: selection options.
                    extended = true;
                    self.open()?;
                    while !self.eat(b')') {
                        let o = self.atom()?.to_ascii_uppercase();
                        match o.as_str() {
                            "SUBSCRIBED" | "REMOTE" | "RECURSIVEMATCH" | "SPECIAL-USE" => {}
                            _ => return Err(format!("unknown LIST selection option {o}")),
                        }
                        select.push(o);
                        self.eat(b' ');
                        if self.at_end() {
                            return Err("expected ')'".into());
                        }
                    }
                    self.depth -= 1;
                    self.sp()?;
                    // RFC 5258 §3: RECURSIVEMATCH needs another option.
                    if select.iter().any(|o| o == "RECURSIVEMATCH")
                        && !select
                            .iter()
                            .any(|o| o == "SUBSCRIBED" || o == "SPECIAL-USE")
                    {
                        return Err("RECURSIVEMATCH needs another selection option".into());
                    }
                }
                let reference = self.astring()?;
                self.sp()?;
                let mut patterns = Vec::new();
                if !lsub && self.peek() == Some(b'(') {
                    extended = true;
                    self.open()?;
                    loop {
                        patterns.push(self.list_mailbox()?);
                        if patterns.len() > 64 {
                            return Err("too many patterns".into());
                        }
                        if self.eat(b')') {
                            break;
                        }
                        self.sp()?;
                    }
                    self.depth -= 1;
                } else {
                    patterns.push(self.list_mailbox()?);
                }
                let mut returns = None;
                if !lsub && self.eat(b' ') {
                    if !self.eat_word("RETURN") {
                        return Err("expected RETURN".into());
                    }
                    self.sp()?;
                    self.open()?;
                    let mut r = ListReturn::default();
                    while !self.eat(b')') {
                        let o = self.atom()?.to_ascii_uppercase();
                        match o.as_str() {
                            "SUBSCRIBED" => r.subscribed = true,
                            "CHILDREN" => r.children = true,
                            "SPECIAL-USE" => r.special_use = true,
                            "STATUS" => {
                                self.sp()?;
                                r.status = Some(self.status_items()?);
                            }
                            _ => return Err(format!("unknown LIST return option {o}")),
                        }
                        self.eat(b' ');
                        if self.at_end() {
                            return Err("expected ')'".into());
                        }
                    }
                    self.depth -= 1;
                    returns = Some(r);
                } else if extended {
                    returns = Some(ListReturn::default());
                }
                C::List {
                    reference,
                    patterns,
                    lsub,
                    select,
                    returns,
                }
            }
            "STATUS" => {
                self.sp()?;
                let mailbox = self.astring()?;
                self.sp()?;
                C::Status {
                    mailbox,
                    items: self.status_items()?,
                }
            }
            "APPEND" => {
                self.sp()?;
                let mailbox = self.astring()?;
                let mut messages = Vec::new();
                // RFC 3502: one or more (flags, date, literal) groups.
                while self.eat(b' ') {
                    if messages.len() >= MAX_APPEND_MESSAGES {
                        return Err("too many messages in one APPEND".into());
                    }
                    let mut flags = Vec::new();
                    if self.peek() == Some(b'(') {
                        flags = self.flag_list()?;
                        self.sp()?;
                    }
                    let mut date = None;
                    if self.peek() == Some(b'"') {
                        date = Some(self.date_time()?);
                        self.sp()?;
                    }
                    let (content, utf8, binary) = if self.eat_word("UTF8") {
                        self.sp()?;
                        self.open()?;
                        let c = self.literal()?;
                        self.close()?;
                        (c, true, false)
                    } else {
                        let binary = self.peek() == Some(b'~');
                        (self.literal()?, false, binary)
                    };
                    messages.push(AppendMessage {
                        flags,
                        date,
                        content,
                        utf8,
                        binary,
                    });
                }
                if messages.is_empty() {
                    return Err("APPEND needs a message".into());
                }
                C::Append { mailbox, messages }
            }
            "SEARCH" => {
                self.sp()?;
                let (ret, keys) = self.search_args()?;
                C::Search {
                    uid: false,
                    ret,
                    keys,
                }
            }
            "FETCH" | "STORE" | "COPY" | "MOVE" => self.message_command(&name, false)?,
            "SORT" => self.sort_command(false)?,
            "THREAD" => self.thread_command(false)?,
            "UID" => {
                self.sp()?;
                let sub = self.atom()?.to_ascii_uppercase();
                match sub.as_str() {
                    "FETCH" | "STORE" | "COPY" | "MOVE" => self.message_command(&sub, true)?,
                    "SORT" => self.sort_command(true)?,
                    "THREAD" => self.thread_command(true)?,
                    "SEARCH" => {
                        self.sp()?;
                        let (ret, keys) = self.search_args()?;
                        C::Search {
                            uid: true,
                            ret,
                            keys,
                        }
                    }
                    "EXPUNGE" => {
                        self.sp()?;
                        C::Expunge {
                            uids: Some(self.seqset()?),
                        }
                    }
                    _ => return Err(format!("unknown UID command {sub}")),
                }
            }
            _ => {
                let _ = tag;
                return Err(format!("unknown command {name}"));
            }
        };
        Ok(kind)
    }

    pub(super) fn status_items(&mut self) -> R<Vec<StatusItem>> {
        self.open()?;
        let mut items = Vec::new();
        loop {
            let w = self.atom()?.to_ascii_uppercase();
            items.push(match w.as_str() {
                "MESSAGES" => StatusItem::Messages,
                "RECENT" => StatusItem::Recent,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "SIZE" => StatusItem::Size,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                "APPENDLIMIT" => StatusItem::AppendLimit,
                "DELETED" => StatusItem::Deleted,
                "DELETED-STORAGE" => StatusItem::DeletedStorage,
                _ => return Err(format!("unknown status item {w}")),
            });
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        self.depth -= 1;
        Ok(items)
    }

    pub(super) fn message_command(&mut self, name: &str, uid: bool) -> R<CommandKind> {
        self.sp()?;
        let set = self.seqset()?;
        self.sp()?;
        Ok(match name {
            "FETCH" => {
                let items = self.fetch_items()?;
                let mut changed_since = None;
                let mut vanished = false;
                if self.eat(b' ') {
                    self.open()?;
                    loop {
                        if self.eat_word("CHANGEDSINCE") {
                            self.sp()?;
                            changed_since = Some(self.number()?);
                        } else if self.eat_word("VANISHED") {
                            vanished = true;
                        } else {
                            return Err("unsupported fetch modifier".into());
                        }
                        if !self.eat(b' ') {
                            break;
                        }
                    }
                    self.close()?;
                    if vanished && (changed_since.is_none() || !uid) {
                        // RFC 7162 §3.2.6: only UID FETCH, only with CHANGEDSINCE.
                        return Err("VANISHED needs UID FETCH and CHANGEDSINCE".into());
                    }
                }
                CommandKind::Fetch {
                    uid,
                    set,
                    items,
                    changed_since,
                    vanished,
                }
            }
            "STORE" => {
                let mut unchanged_since = None;
                if self.peek() == Some(b'(') {
                    self.open()?;
                    if !self.eat_word("UNCHANGEDSINCE") {
                        return Err("unsupported store modifier".into());
                    }
                    self.sp()?;
                    unchanged_since = Some(self.number()?);
                    self.close()?;
                    self.sp()?;
                }
                let mode = if self.eat(b'+') {
                    StoreMode::Add
                } else if self.eat(b'-') {
                    StoreMode::Remove
                } else {
                    StoreMode::Replace
                };
                let w = self.atom()?.to_ascii_uppercase();
                let silent = match w.as_str() {
                    "FLAGS" => false,
                    "FLAGS.SILENT" => true,
                    _ => return Err("expected FLAGS or FLAGS.SILENT".into()),
                };
                self.sp()?;
                let flags = if self.peek() == Some(b'(') {
                    self.flag_list()?
                } else {
                    let mut f = vec![self.flag()?];
                    while self.eat(b' ') {
                        f.push(self.flag()?);
                    }
                    f
                };
                CommandKind::Store {
                    uid,
                    set,
                    mode,
                    silent,
                    flags,
                    unchanged_since,
                }
            }
            _ => CommandKind::Copy {
                uid,
                set,
                mailbox: self.astring()?,
                moving: name == "MOVE",
            },
        })
    }
}
