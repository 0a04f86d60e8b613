//! The store's rules that do not depend on the backend: how a domain
//! and an alias are written down and checked, how alias rows group, how a
//! special-use attribute is stored, how keywords are kept and flags
//! combined, how stored metadata is moved past a message's prefix. Every backend calls these, so SQLite
//! and PostgreSQL cannot drift apart.

use crate::meta::{BodyPart, MessageMeta};
use crate::model::{Alias, FlagOp, Flags, SpecialUse};
use crate::{Result, StoreError, normalize_address};

/// A local domain as stored: trimmed, without the root dot, lower-cased.
pub(crate) fn domain_name(name: &str) -> Result<String> {
    let name = name.trim().trim_end_matches('.').to_lowercase();
    if name.is_empty() || name.contains('@') || name.chars().any(char::is_whitespace) {
        return Err(StoreError::Invalid(format!("domain {name:?}")));
    }
    Ok(name)
}

/// The domain part of an address (or of `@domain`).
pub(crate) fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// An alias (`user@domain`, or `@domain` for a catch-all) and its targets
/// as stored: lower-cased and checked.
pub(crate) fn alias_entry(alias: &str, targets: &[String]) -> Result<(String, Vec<String>)> {
    let alias = alias.trim().to_lowercase();
    let valid = match alias.strip_prefix('@') {
        Some(domain) => !domain.is_empty() && !domain.contains('@'),
        None => normalize_address(&alias).is_ok(),
    };
    if !valid || targets.is_empty() {
        return Err(StoreError::Invalid(format!("alias {alias:?}")));
    }
    let targets = targets
        .iter()
        .map(|t| normalize_address(t))
        .collect::<Result<Vec<_>>>()?;
    Ok((alias, targets))
}

/// (alias, target) rows ordered by alias into one [`Alias`] per alias.
pub(crate) fn group_aliases(rows: Vec<(String, String)>) -> Vec<Alias> {
    let mut out: Vec<Alias> = Vec::new();
    for (alias, target) in rows {
        match out.last_mut() {
            Some(last) if last.alias == alias => last.targets.push(target),
            _ => out.push(Alias {
                alias,
                targets: vec![target],
            }),
        }
    }
    out
}

/// A special-use attribute as stored (`Sent` for `\Sent`).
pub(crate) fn special_use_stored(u: SpecialUse) -> &'static str {
    &u.attribute()[1..]
}

/// A stored special-use attribute back (`None` for anything unknown).
pub(crate) fn special_use_from_stored(s: &str) -> Option<SpecialUse> {
    SpecialUse::from_attribute(&format!("\\{s}"))
}

pub(crate) fn keywords_text(k: &[String]) -> String {
    k.join(" ")
}

pub(crate) fn keywords_vec(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// Stored metadata, with offsets moved past the message's own prefix.
pub(crate) fn meta_with_prefix(prefix_len: i64, json: &str) -> Result<MessageMeta> {
    let mut meta: MessageMeta =
        serde_json::from_str(json).map_err(|e| StoreError::Backend(e.to_string()))?;
    meta.header_len += prefix_len as u64;
    shift(&mut meta.body, prefix_len as u64);
    // The top-level header block starts at 0 and includes the prefix.
    meta.body.header_start = 0;
    Ok(meta)
}

fn shift(part: &mut BodyPart, by: u64) {
    part.header_start += by;
    part.body_start += by;
    part.body_end += by;
    for p in &mut part.parts {
        shift(p, by);
    }
    if let Some(m) = &mut part.message {
        shift(&mut m.1, by);
    }
}

/// The flags and keywords a message has after `op` with `flags` and
/// `keywords` (RFC 9051 §6.4.6; keywords compare case-insensitively).
pub(crate) fn apply_flags(
    op: FlagOp,
    old_flags: Flags,
    old_kw: &[String],
    flags: Flags,
    keywords: &[String],
) -> (Flags, Vec<String>) {
    match op {
        FlagOp::Replace => (flags, keywords.to_vec()),
        FlagOp::Add => {
            let mut k = old_kw.to_vec();
            for w in keywords {
                if !k.iter().any(|x| x.eq_ignore_ascii_case(w)) {
                    k.push(w.clone());
                }
            }
            (old_flags.union(flags), k)
        }
        FlagOp::Remove => (
            old_flags.difference(flags),
            old_kw
                .iter()
                .filter(|x| !keywords.iter().any(|w| w.eq_ignore_ascii_case(x)))
                .cloned()
                .collect(),
        ),
    }
}
