//! ARC verification (RFC 8617) through mail-auth: is the chain of
//! ARC sets intact, and who sealed it? A passing chain whose newest seal
//! comes from a sealer the operator trusts (`[verify] trusted_arc_sealers`)
//! may excuse a DMARC failure caused by a forwarder or mailing list
//! (RFC 7489 §10.4, RFC 8617 §7.2).

use mail_auth::DkimResult;
use postamt_wire::meta::{field_is, header_fields};

use crate::dkim::{ResolverCache, Txt, TxtCache, Verifier};

/// Most ARC sets a chain may have (RFC 8617 §4.2.1: instances 1 to 50).
pub const MAX_SETS: usize = 50;

/// The verdict on a message's ARC chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `none` (no ARC sets), `pass`, `fail`, `temperror`, `permerror`.
    pub result: &'static str,
    /// The `d=` of each ARC-Seal, oldest (i=1) first.
    pub sealers: Vec<String>,
    pub detail: String,
}

impl Verdict {
    /// The newest sealer, when the chain passed.
    pub fn newest_passing_sealer(&self) -> Option<&str> {
        (self.result == "pass")
            .then(|| self.sealers.last().map(String::as_str))
            .flatten()
    }
}

/// Verifies the ARC chain of `message`, keys through `verifier`'s resolver.
pub async fn verify(verifier: &Verifier, message: &[u8]) -> Verdict {
    verify_with(verifier, message, &TxtCache::default()).await
}

/// [`verify`], with key records answered from `keys` first (what it
/// lacks is asked of `verifier`'s resolver and added to it).
pub async fn verify_with<C: ResolverCache<Box<str>, Txt>>(
    verifier: &Verifier,
    message: &[u8],
    keys: &C,
) -> Verdict {
    match mail_auth::AuthenticatedMessage::parse(message) {
        Some(parsed) => verify_parsed(verifier, message, &parsed, keys).await,
        None => unparsable(),
    }
}

/// [`verify`] with the seal and signature keys asked of `dns` (the
/// server's one resolver and its cache) first, from the one parse of the
/// message that verification uses too.
pub async fn verify_through<D: crate::dns::Dns>(
    verifier: &Verifier,
    dns: &D,
    message: &[u8],
) -> Verdict {
    let Some(parsed) = mail_auth::AuthenticatedMessage::parse(message) else {
        return unparsable();
    };
    let keys = TxtCache::default();
    keys.fetch(dns, &crate::dkim::names_of(&parsed, true)).await;
    verify_parsed(verifier, message, &parsed, &keys).await
}

fn unparsable() -> Verdict {
    Verdict {
        result: "none",
        sealers: Vec::new(),
        detail: "the message could not be parsed".into(),
    }
}

async fn verify_parsed<C: ResolverCache<Box<str>, Txt>>(
    verifier: &Verifier,
    message: &[u8],
    parsed: &mail_auth::AuthenticatedMessage<'_>,
    keys: &C,
) -> Verdict {
    let out = verifier
        .0
        .verify_arc(mail_auth::Parameters::new(parsed).with_txt_cache(keys))
        .await;
    let mut sets: Vec<(u32, String)> = out
        .sets()
        .iter()
        .map(|s| (s.seal.header.i, s.seal.header.d.clone()))
        .collect();
    sets.sort();
    let (result, detail) = match out.result() {
        DkimResult::Pass => ("pass", String::new()),
        DkimResult::None => ("none", String::new()),
        DkimResult::Neutral(e) | DkimResult::Fail(e) => ("fail", e.to_string()),
        DkimResult::PermError(e) => ("permerror", e.to_string()),
        DkimResult::TempError(e) => ("temperror", e.to_string()),
    };
    // What mail-auth does not check of the chain's structure (RFC 8617
    // §5.2 step 1 and the header fields' syntax, §4.1) fails it too.
    let (result, detail) = match structure_error(message) {
        Some(why) if result != "fail" => ("fail", why),
        _ => (result, detail),
    };
    let (result, detail) = if sets.len() > MAX_SETS {
        (
            "fail",
            format!("{} ARC sets, more than {MAX_SETS}", sets.len()),
        )
    } else {
        (result, detail)
    };
    Verdict {
        result,
        sealers: sets.into_iter().map(|(_, d)| d).collect(),
        detail,
    }
}

/// The tags of a tag-list (RFC 6376 §3.2, which ARC header fields use,
/// RFC 8617 §4.1): `None` when it is not one — a tag name that is not
/// ALPHA *(ALPHA / DIGIT / "_"), a tag-spec without "=", an empty
/// tag-spec other than after the last ";", or a tag named twice ("the
/// entire tag-list is invalid").
fn tag_list(value: &str) -> Option<Vec<(&str, &str)>> {
    let specs: Vec<&str> = value.split(';').collect();
    let mut tags: Vec<(&str, &str)> = Vec::new();
    for (n, spec) in specs.iter().enumerate() {
        if spec.trim().is_empty() && n == specs.len() - 1 && n > 0 {
            break;
        }
        let (name, v) = spec.split_once('=')?;
        let name = name.trim();
        let mut chars = name.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            || tags.iter().any(|(t, _)| *t == name)
        {
            return None;
        }
        tags.push((name, v.trim()));
    }
    Some(tags)
}

/// Why the ARC header fields of `message` cannot form a valid chain,
/// whatever their signatures say (`None` when there are none, or they
/// can): sets missing a member (RFC 8617 §4.1, §5.2 step 1), an ARC-Seal
/// or ARC-Message-Signature that is not a tag-list or lacks a required
/// tag (§4.1.2, §4.1.3; tag names are case-sensitive, RFC 6376 §3.2),
/// rsa-sha1 (RFC 8301 §3.1), or an AMS that signs ARC-Seal fields
/// (§4.1.2).
fn structure_error(message: &[u8]) -> Option<String> {
    let fields = header_fields(message);
    let value = |r: &std::ops::Range<usize>| {
        let raw = String::from_utf8_lossy(&message[r.clone()]);
        raw.split_once(':')
            .map(|(_, v)| v.replace("\r\n", ""))
            .unwrap_or_default()
    };
    let of = |name: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|r| field_is(message, r, name))
            .map(value)
            .collect()
    };
    let (seals, sigs, results) = (
        of("ARC-Seal"),
        of("ARC-Message-Signature"),
        of("ARC-Authentication-Results"),
    );
    if seals.is_empty() && sigs.is_empty() && results.is_empty() {
        return None;
    }
    if seals.len() != sigs.len() || sigs.len() != results.len() {
        return Some(format!(
            "incomplete ARC sets: {} ARC-Seal, {} ARC-Message-Signature, {} \
             ARC-Authentication-Results (RFC 8617 §4.1, §5.2)",
            seals.len(),
            sigs.len(),
            results.len()
        ));
    }
    let checks = [
        ("ARC-Seal", &seals, &["a", "b", "cv", "d", "i", "s"][..]),
        (
            "ARC-Message-Signature",
            &sigs,
            &["a", "b", "bh", "d", "h", "i", "s"][..],
        ),
    ];
    for (name, values, required) in checks {
        for v in values {
            let Some(tags) = tag_list(v) else {
                return Some(format!("{name} is not a valid tag-list (RFC 6376 §3.2)"));
            };
            let tag = |t: &str| tags.iter().find(|(n, _)| *n == t).map(|(_, v)| *v);
            if let Some(missing) = required.iter().find(|t| tag(t).is_none()) {
                return Some(format!(
                    "{name} without {missing}= (RFC 8617 §4.1.2, §4.1.3)"
                ));
            }
            if tag("a").is_some_and(|a| a.eq_ignore_ascii_case("rsa-sha1")) {
                return Some(format!("{name} with rsa-sha1 (RFC 8301 §3.1)"));
            }
            if name == "ARC-Message-Signature"
                && tag("h").is_some_and(|h| {
                    h.split(':')
                        .any(|f| f.trim().eq_ignore_ascii_case("arc-seal"))
                })
            {
                return Some("ARC-Message-Signature signs ARC-Seal (RFC 8617 §4.1.2)".into());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6376_s3_2_tag_lists() {
        assert_eq!(
            tag_list(" a=1; b = x y ;"),
            Some(vec![("a", "1"), ("b", "x y")])
        );
        assert!(tag_list("a=1; a=2").is_none(), "duplicate");
        assert!(tag_list("a=1;; b=2").is_none(), "empty tag-spec");
        assert!(tag_list("a=1; _=").is_none(), "tag name not ALPHA first");
        assert!(tag_list("a=1; b").is_none(), "no =");
        assert_eq!(tag_list("S=x"), Some(vec![("S", "x")]));
    }

    #[test]
    fn rfc8617_s5_2_structure() {
        let seal = "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=s; b=AA==\r\n";
        let ams = "ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=AA==; b=AA==\r\n";
        let aar = "ARC-Authentication-Results: i=1; x.example; none\r\n";
        let m = |h: &str| format!("{h}From: a@x.example\r\n\r\nbody\r\n");
        assert_eq!(structure_error(m("").as_bytes()), None);
        assert_eq!(
            structure_error(m(&format!("{seal}{ams}{aar}")).as_bytes()),
            None
        );
        assert!(
            structure_error(m(&format!("{seal}{aar}")).as_bytes())
                .unwrap()
                .contains("0 ARC-Message-Signature")
        );
        let sha1 = seal.replace("rsa-sha256", "rsa-sha1");
        assert!(
            structure_error(m(&format!("{sha1}{ams}{aar}")).as_bytes())
                .unwrap()
                .contains("rsa-sha1")
        );
        let no_a = seal.replace("a=rsa-sha256; ", "");
        assert!(
            structure_error(m(&format!("{no_a}{ams}{aar}")).as_bytes())
                .unwrap()
                .contains("without a=")
        );
        let signs_seal = ams.replace("h=from", "h=from:ARC-Seal");
        assert!(
            structure_error(m(&format!("{seal}{signs_seal}{aar}")).as_bytes())
                .unwrap()
                .contains("signs ARC-Seal")
        );
    }
}
