//! The directory's rules that do not depend on the backend: how a domain
//! and an alias are written down and checked, how alias rows group, how a
//! special-use attribute is stored. Every backend calls these, so SQLite
//! and PostgreSQL cannot drift apart.

use crate::model::{Alias, SpecialUse};
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
