//! STORE and flags (RFC 9051 §6.4.6; §2.3.2 system flags and keywords;
//! RFC 7162 §3.1.3 UNCHANGEDSINCE and MODIFIED); how FLAGS are written in
//! FETCH responses (RFC 9051 §7.5.2).

use postamt_store::{FlagOp, Flags, Uid};
use std::collections::BTreeSet;
use tokio::io::{AsyncRead, AsyncWrite};

use super::expunge::read_only;
use super::{Reply, Session};
use crate::command::StoreMode;
use crate::sequence::SequenceSet;
use crate::status::{Code, Status};

/// [`flag_names`] written straight into a response.
pub(super) fn write_flags(out: &mut Vec<u8>, flags: Flags, keywords: &[String], recent: bool) {
    out.push(b'(');
    let system: Vec<&str> = flags.names().chain(recent.then_some("\\Recent")).collect();
    for (i, n) in system
        .iter()
        .copied()
        .chain(keywords.iter().map(String::as_str))
        .enumerate()
    {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(n.as_bytes());
    }
    out.push(b')');
}

pub(super) fn flag_names(flags: Flags, keywords: &[String], recent: bool) -> String {
    let mut v: Vec<&str> = flags.names().collect();
    if recent {
        v.push("\\Recent");
    }
    v.extend(keywords.iter().map(String::as_str));
    format!("({})", v.join(" "))
}

/// Most keywords one message may carry (Dovecot keeps keyword names in a
/// per-mailbox list too): a STORE or APPEND beyond it is refused with
/// `NO [LIMIT]` (RFC 5530 §3), so FLAGS responses and stored flags stay
/// bounded.
pub(super) const MAX_KEYWORDS: usize = 128;
/// Longest keyword name, in octets.
pub(super) const MAX_KEYWORD_LEN: usize = 128;

fn too_many_keywords() -> Status {
    Status::no(format!(
        "at most {MAX_KEYWORDS} keywords per message, of at most {MAX_KEYWORD_LEN} octets"
    ))
    .with_code(Code::Limit)
}

/// Splits client flag names into system flags and keywords; `\Recent` is
/// ignored (it cannot be stored, RFC 3501 §2.3.2).
pub(super) fn split_flags(names: &[String]) -> Result<(Flags, Vec<String>), Status> {
    let mut flags = Flags::empty();
    let mut keywords = Vec::new();
    for n in names {
        if let Some(sys) = n.strip_prefix('\\') {
            if sys.eq_ignore_ascii_case("Recent") {
                continue;
            }
            let flag = Flags::from_name(n)
                .ok_or_else(|| Status::bad(format!("unknown system flag \\{sys}")))?;
            flags = flags.union(flag);
        } else if !keywords.contains(n) {
            if n.len() > MAX_KEYWORD_LEN || keywords.len() >= MAX_KEYWORDS {
                return Err(too_many_keywords());
            }
            keywords.push(n.clone());
        }
    }
    Ok((flags, keywords))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn store_flags(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        mode: StoreMode,
        silent: bool,
        names: &[String],
        unchanged_since: Option<u64>,
    ) -> Reply {
        if unchanged_since.is_some() {
            self.enable_condstore();
        }
        let sel = self.selected.as_ref().expect("selected");
        if sel.read_only {
            return Err(read_only());
        }
        let idx = sel.resolve(set, uid)?;
        let (flags, keywords) = split_flags(names)?;
        // Adding must not take any message past the keyword limit.
        if matches!(mode, StoreMode::Add)
            && idx.iter().any(|&i| {
                let have = &sel.msgs[i].keywords;
                have.len() + keywords.iter().filter(|k| !have.contains(k)).count() > MAX_KEYWORDS
            })
        {
            return Err(too_many_keywords());
        }
        let uids: Vec<Uid> = idx
            .iter()
            .filter(|&&i| !sel.msgs[i].gone)
            .map(|&i| sel.msgs[i].uid)
            .collect();
        if uids.is_empty() {
            return Ok(Status::ok("STORE completed"));
        }
        let op = match mode {
            StoreMode::Replace => FlagOp::Replace,
            StoreMode::Add => FlagOp::Add,
            StoreMode::Remove => FlagOp::Remove,
        };
        let id = sel.mailbox.id;
        let targets = uids.clone();
        let (updates, modified) = self
            .store
            .write_flags(id, uids, op, flags, keywords, unchanged_since)
            .await?;
        let sel = self.selected.as_mut().expect("selected");
        let mut updated = BTreeSet::new();
        let mut new_keywords = false;
        for u in updates {
            new_keywords |= sel.learn_keywords(&u.keywords);
            if let Some(i) = sel.msgs.iter().position(|m| m.uid == u.uid) {
                let m = &mut sel.msgs[i];
                m.flags = u.flags;
                m.keywords = u.keywords;
                m.modseq = u.modseq.0;
                updated.insert(i);
            }
        }
        // RFC 9051 §6.4.6: the new flags of every message named (unless
        // .SILENT); RFC 7162 §3.1.3: MODSEQ of changed ones even then.
        let sel = self.selected.as_ref().expect("selected");
        let mut lines = Vec::new();
        for (i, m) in sel.msgs.iter().enumerate() {
            if !targets.contains(&m.uid) || modified.contains(&m.uid) {
                continue;
            }
            if !silent {
                lines.push(self.flags_line(i + 1, m, uid));
            } else if self.condstore && updated.contains(&i) {
                // RFC 7162 §3.2.4: with QRESYNC every FETCH carries UID.
                let uid_item = if uid || self.qresync {
                    format!("UID {} ", m.uid.0)
                } else {
                    String::new()
                };
                lines.push(format!("{} FETCH ({uid_item}MODSEQ ({}))", i + 1, m.modseq));
            }
        }
        let nums: Vec<u32> = if uid {
            modified.iter().map(|u| u.0).collect()
        } else {
            sel.msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| modified.contains(&m.uid))
                .map(|(i, _)| i as u32 + 1)
                .collect()
        };
        // RFC 3501 §7.2.6: new keywords are announced before a FETCH
        // carries them (and before a later one would, after .SILENT).
        if new_keywords {
            self.announce_keywords();
        }
        for l in lines {
            self.untagged(&l);
        }
        if modified.is_empty() {
            return Ok(Status::ok("STORE completed"));
        }
        Ok(
            Status::ok("conditional STORE failed for some messages")
                .with_code(Code::Modified(nums)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_split() {
        let (f, k) = split_flags(&[
            "\\Seen".into(),
            "\\recent".into(),
            "$Work".into(),
            "$Work".into(),
        ])
        .unwrap();
        assert_eq!(f, Flags::SEEN);
        assert_eq!(k, vec!["$Work".to_string()]);
        assert!(split_flags(&["\\Bogus".into()]).is_err());
        assert_eq!(
            flag_names(Flags::SEEN | Flags::DELETED, &["x".into()], true),
            "(\\Seen \\Deleted \\Recent x)"
        );
    }
}
