//! DKIM verification of received mail (RFC 6376, RFC 8463 Ed25519) through
//! mail-auth, with postamt's policy on top: at most [`MAX_SIGNATURES`]
//! signatures are verified (more are an attack on the verifier's CPU);
//! `rsa-sha1` is not trusted (RFC 8301 §3.1: "policy", not "pass"); and
//! each verdict says whether the signature covers `From:` (a signature
//! that does not cannot vouch for the author, RFC 6376 §5.4).
//!
//! RSA keys under 1,024 bits (which ring refuses to use) and over 8,192
//! bits (which ring refuses too, and which cost a verifier dearly) are a
//! "policy" result as well (RFC 8301 §3.2: key length is a verifier policy
//! metric; signers MUST use at least 1,024 bits).
//!
//! mail-auth 0.13.3 keeps trailing whitespace-only body lines under
//! relaxed canonicalization; a failed verification is tried again with
//! them removed (equal under relaxed canonicalization).

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub use mail_auth::MessageAuthenticator;
use mail_auth::common::crypto::{Algorithm, CryptoError, HashAlgorithm};
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::{DomainKey, VerifySignature};
pub use mail_auth::{ResolverCache, Txt};
use postamt_wire::meta::{field_is, header_fields, header_len};

use crate::resolver::{DnsSettings, resolver_config};

/// More DKIM signatures than this: the rest are left unverified.
pub const MAX_SIGNATURES: usize = 10;

/// Smallest RSA key accepted (RFC 8301 §3.2: signers MUST use at least
/// 1,024 bits; ring refuses smaller keys).
pub const MIN_RSA_BITS: usize = 1024;

/// Largest RSA key verified (RFC 8301 §3.2: verifiers MUST handle up to
/// 4,096 bits and MAY handle more; ring refuses more than 8,192).
pub const MAX_RSA_BITS: usize = 8192;

/// The TXT answers (DKIM key records) asked while verifying one message:
/// mail-auth fills it as it looks keys up, the policy reads the keys back
/// (their size), and a retry asks the DNS no second time. Tests fill one
/// by hand to verify offline.
#[derive(Default)]
pub struct TxtCache(Mutex<HashMap<Box<str>, Txt>>);

impl TxtCache {
    /// The answers (a poisoned lock still holds usable answers).
    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Txt>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `answer` for `name` (any case, with or without the final
    /// dot; looked up as mail-auth asks, lower case and fully qualified).
    pub fn put(&self, name: &str, answer: Txt) {
        let name = name.to_fqdn().into_owned().into_boxed_str();
        self.answers().insert(name, answer);
    }
}

impl ResolverCache<Box<str>, Txt> for TxtCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.answers().get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.answers().remove(name)
    }
    fn insert(&self, key: Box<str>, value: Txt, _valid_until: std::time::Instant) {
        self.answers().insert(key, value);
    }
}

impl TxtCache {
    /// Asks `dns` (the server's one resolver, whose cache SPF and DMARC
    /// share) for each key record name and records the answers as
    /// mail-auth would, so that verification finds every key here and
    /// asks no DNS of its own: the first record that parses as a DKIM key,
    /// a parse error, NXDOMAIN, or a temporary failure (a temperror).
    pub async fn fetch<D: crate::dns::Dns>(&self, dns: &D, names: &[String]) {
        use mail_auth::common::parse::TxtRecordParser;
        use mail_auth::hickory_resolver::proto::op::ResponseCode;
        use mail_auth::{DnsError as E, Error};
        for name in names {
            let answer = match dns.txt(name).await {
                Ok(records) => {
                    let mut parsed = Err(Error::Dns(E::InvalidRecordType));
                    for r in &records {
                        parsed = DomainKey::parse(r.as_bytes());
                        if parsed.is_ok() {
                            break;
                        }
                    }
                    match parsed {
                        Ok(key) => Txt::DomainKey(std::sync::Arc::new(key)),
                        Err(e) => Txt::Error(e),
                    }
                }
                Err(crate::dns::DnsError::NxDomain) => {
                    Txt::Error(Error::Dns(E::RecordNotFound(ResponseCode::NXDomain)))
                }
                Err(crate::dns::DnsError::Temporary) => {
                    Txt::Error(Error::Dns(E::Resolver(format!("DNS failed for {name}"))))
                }
            };
            self.put(name, answer);
        }
    }
}

/// The key record names (`selector._domainkey.domain`, RFC 6376 §3.6.2.1)
/// that verifying `message` needs: its first [`MAX_SIGNATURES`] DKIM
/// signatures' and, with `arc`, every ARC-Seal's and
/// ARC-Message-Signature's (at most [`crate::arc::MAX_SETS`] sets), once
/// each.
pub fn key_names(message: &[u8], arc: bool) -> Vec<String> {
    mail_auth::AuthenticatedMessage::parse(message)
        .map(|parsed| names_of(&parsed, arc))
        .unwrap_or_default()
}

/// [`key_names`] of a message mail-auth parsed already.
pub(crate) fn names_of(parsed: &mail_auth::AuthenticatedMessage<'_>, arc: bool) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |s: &str, d: &str| {
        let name = format!("{s}._domainkey.{d}").to_ascii_lowercase();
        if !s.is_empty() && !d.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    };
    if arc {
        for h in parsed.as_headers.iter().take(crate::arc::MAX_SETS) {
            add(&h.header.s, &h.header.d);
        }
        for h in parsed.ams_headers.iter().take(crate::arc::MAX_SETS) {
            add(&h.header.s, &h.header.d);
        }
    } else {
        for h in parsed.dkim_headers.iter().take(MAX_SIGNATURES) {
            add(&h.header.s, &h.header.d);
        }
    }
    names
}

/// The size in bits of an RSA key record's modulus, as mail-auth reads it
/// (whole bytes: a 1,020-bit modulus counts as 1,024). `None` for keys
/// that are not RSA or whose modulus cannot be read.
pub fn rsa_key_bits(key: &DomainKey) -> Option<usize> {
    // mail-auth answers usize::MAX for Ed25519 keys and 0 for RSA keys it
    // cannot parse.
    match key.p.public_key_bits() {
        0 | usize::MAX => None,
        bits => Some(bits),
    }
}

/// RFC 6376 §3.6.1 `h=`: the hash algorithms a key may be used with
/// (all when the record has no `h=`). The reason when `algorithm`'s hash is
/// not among them.
fn hash_not_allowed(key: &DomainKey, algorithm: Algorithm) -> Option<String> {
    let all = HashAlgorithm::Sha1 as u64 | HashAlgorithm::Sha256 as u64;
    let listed = key.f & all;
    let hash = HashAlgorithm::from(algorithm);
    (listed != 0 && !key.has_flag(hash)).then(|| {
        format!(
            "the key record's h= does not allow {} (RFC 6376 §3.6.1, §6.1.2)",
            match hash {
                HashAlgorithm::Sha1 => "sha1",
                HashAlgorithm::Sha256 => "sha256",
            }
        )
    })
}

/// RFC 8301 §3.2: the policy verdict for an RSA key of `bits`, when its
/// size is outside what we verify.
fn key_size_policy(bits: usize) -> Option<String> {
    if bits < MIN_RSA_BITS {
        Some(format!(
            "RSA key of {bits} bits, under {MIN_RSA_BITS} (RFC 8301 §3.2)"
        ))
    } else if bits > MAX_RSA_BITS {
        Some(format!(
            "RSA key of {bits} bits, over {MAX_RSA_BITS} (RFC 8301 §3.2: larger keys are not verified)"
        ))
    } else {
        None
    }
}

/// A DKIM/SPF/DMARC authenticator (mail-auth) that asks the `[dns]`
/// servers.
pub fn authenticator(dns: &DnsSettings) -> Result<MessageAuthenticator, String> {
    let (config, opts) = resolver_config(dns)?;
    MessageAuthenticator::new(config, opts).map_err(|e| format!("resolver: {e}"))
}

/// The authenticator a server keeps for verifying received mail.
pub struct Verifier(pub MessageAuthenticator);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

/// One signature's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub domain: String,
    pub selector: String,
    /// `rsa-sha256`, `ed25519-sha256` or `rsa-sha1`.
    pub algorithm: &'static str,
    /// `pass`, `fail`, `neutral`, `policy`, `permerror`, `temperror`.
    pub result: String,
    pub detail: String,
    /// `From` is among the signed header fields (`h=`).
    pub signs_from: bool,
}

/// The message with whitespace-only lines at the end of its body removed
/// (equal to the original under relaxed body canonicalization).
pub fn strip_trailing_blank_lines(message: &[u8]) -> Cow<'_, [u8]> {
    let h = header_len(message);
    let body = &message[h..];
    // Through the newline of the last line that has anything but
    // spaces, tabs and CRs on it (its own trailing whitespace is the
    // canonicalizer's business).
    let keep = match body
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        None => 0,
        Some(p) => body[p..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|q| p + q + 1)
            .unwrap_or(body.len()),
    };
    if keep >= body.len() {
        return Cow::Borrowed(message);
    }
    let mut out = message[..h].to_vec();
    out.extend_from_slice(&body[..keep]);
    Cow::Owned(out)
}

/// Verifies the DKIM signatures of `message` (the first
/// [`MAX_SIGNATURES`]), looking keys up with `authenticator`'s resolver.
pub async fn verify(authenticator: &MessageAuthenticator, message: &[u8]) -> Vec<Verdict> {
    verify_with(authenticator, message, &TxtCache::default()).await
}

/// [`verify`] with the keys asked of `dns` (the server's one resolver and
/// its cache) before mail-auth needs them, from the one parse of the
/// message that verification uses too; mail-auth's resolver is not asked.
pub async fn verify_through<D: crate::dns::Dns>(
    authenticator: &MessageAuthenticator,
    dns: &D,
    message: &[u8],
) -> Vec<Verdict> {
    let message = at_most_signatures(message, MAX_SIGNATURES);
    let Some(parsed) = mail_auth::AuthenticatedMessage::parse(&message) else {
        return vec![];
    };
    let keys = TxtCache::default();
    keys.fetch(dns, &names_of(&parsed, false)).await;
    verify_parsed(authenticator, &message, &parsed, &keys).await
}

/// [`verify`], with key records answered from `keys` first (what it
/// lacks is asked of `authenticator`'s resolver and added to it).
pub async fn verify_with<C: ResolverCache<Box<str>, Txt>>(
    authenticator: &MessageAuthenticator,
    message: &[u8],
    keys: &C,
) -> Vec<Verdict> {
    let message = at_most_signatures(message, MAX_SIGNATURES);
    let Some(parsed) = mail_auth::AuthenticatedMessage::parse(&message) else {
        return vec![];
    };
    verify_parsed(authenticator, &message, &parsed, keys).await
}

/// Verifies `parsed` (the parse of `message`), and once more without
/// trailing blank lines when a signature failed.
async fn verify_parsed<C: ResolverCache<Box<str>, Txt>>(
    authenticator: &MessageAuthenticator,
    message: &[u8],
    parsed: &mail_auth::AuthenticatedMessage<'_>,
    keys: &C,
) -> Vec<Verdict> {
    let verdicts = verify_once(authenticator, parsed, keys).await;
    let stripped = strip_trailing_blank_lines(message);
    if matches!(stripped, Cow::Borrowed(_)) || verdicts.iter().all(|v| v.result == "pass") {
        return verdicts;
    }
    let Some(again) = mail_auth::AuthenticatedMessage::parse(&stripped) else {
        return verdicts;
    };
    let again = verify_once(authenticator, &again, keys).await;
    verdicts
        .into_iter()
        .zip(again)
        .map(|(first, second)| {
            if first.result != "pass" && second.result == "pass" {
                second
            } else {
                first
            }
        })
        .collect()
}

async fn verify_once<C: ResolverCache<Box<str>, Txt>>(
    authenticator: &MessageAuthenticator,
    parsed: &mail_auth::AuthenticatedMessage<'_>,
    keys: &C,
) -> Vec<Verdict> {
    use mail_auth::DkimResult;
    let outputs = authenticator
        .verify_dkim(mail_auth::Parameters::new(parsed).with_txt_cache(keys))
        .await;
    outputs
        .iter()
        .map(|o| {
            let (mut result, mut detail) = match o.result() {
                DkimResult::Pass => ("pass", String::new()),
                // RFC 6376 §6.1.3: a body hash that does not match is a
                // PERMFAIL, "fail" in RFC 8601 terms (mail-auth says
                // neutral).
                DkimResult::Neutral(
                    e @ mail_auth::Error::Dkim(mail_auth::dkim::DkimError::FailedBodyHashMatch),
                ) => ("fail", e.to_string()),
                DkimResult::Neutral(e) => ("neutral", e.to_string()),
                // RFC 6376 §6.1.1: an i= outside d= makes the signature
                // unusable (PERMFAIL "domain mismatch"), as does i= under
                // a subdomain with a t=s key (§3.6.1): a permanent error,
                // not a signature that failed to verify (mail-auth says
                // fail).
                DkimResult::Fail(
                    e @ mail_auth::Error::Dkim(mail_auth::dkim::DkimError::FailedAuidMatch),
                ) => ("permerror", e.to_string()),
                DkimResult::Fail(e) => ("fail", e.to_string()),
                DkimResult::PermError(e) => ("permerror", e.to_string()),
                DkimResult::TempError(e) => ("temperror", e.to_string()),
                DkimResult::None => ("none", String::new()),
            };
            let sig = o.signature();
            let algorithm = match sig.map(|s| s.a) {
                Some(Algorithm::RsaSha1) => "rsa-sha1",
                Some(Algorithm::Ed25519Sha256) => "ed25519-sha256",
                _ => "rsa-sha256",
            };
            let key = sig.and_then(|sig| match keys.get(&*sig.domain_key().to_fqdn()) {
                Some(Txt::DomainKey(key)) => Some(key),
                _ => None,
            });
            // RFC 6376 §6.1.2 step 6: a key record whose h= does not list
            // the signature's hash algorithm MUST be ignored: PERMFAIL
            // "inappropriate hash algorithm" (mail-auth uses it anyway).
            if let (Some(key), Some(sig)) = (&key, sig)
                && matches!(result, "pass" | "fail")
                && let Some(why) = hash_not_allowed(key, sig.a)
            {
                result = "permerror";
                detail = why;
            }
            // ring refuses RSA keys outside 1,024..=8,192 bits as a failed
            // verification: say why (the key is in the cache, mail-auth
            // just fetched it).
            if let (
                DkimResult::Fail(mail_auth::Error::Crypto(CryptoError::FailedVerification)),
                Some(key),
            ) = (o.result(), &key)
                && result == "fail"
                && algorithm != "ed25519-sha256"
                && let Some(why) = rsa_key_bits(key).and_then(key_size_policy)
            {
                result = "policy";
                detail = why;
            }
            if result == "pass" && algorithm == "rsa-sha1" {
                result = "policy";
                detail = "rsa-sha1 is not trusted (RFC 8301 §3.1)".into();
            }
            Verdict {
                domain: sig.map(|s| s.d.clone()).unwrap_or_default(),
                selector: sig.map(|s| s.s.clone()).unwrap_or_default(),
                algorithm,
                result: result.into(),
                detail,
                signs_from: sig.is_some_and(|s| s.h.iter().any(|h| h.eq_ignore_ascii_case("from"))),
            }
        })
        .collect()
}

/// The message with the `DKIM-Signature:` fields after the first `max`
/// left out (unchanged when it has no more).
fn at_most_signatures(message: &[u8], max: usize) -> Cow<'_, [u8]> {
    let fields: Vec<_> = header_fields(message)
        .into_iter()
        .filter(|r| field_is(message, r, "DKIM-Signature"))
        .collect();
    if fields.len() <= max {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    let mut from = 0;
    for r in &fields[max..] {
        out.extend_from_slice(&message[from..r.start]);
        from = r.end;
    }
    out.extend_from_slice(&message[from..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::crypto::{RsaKey, Sha256};
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::dkim::DkimSigner;
    use std::sync::Arc;

    /// A throwaway 2,048-bit RSA key made for these tests
    /// (`openssl genrsa -traditional 2048`).
    const KEY_2048: &str = "-----BEGIN RSA PRIVATE KEY-----\n\
MIIEowIBAAKCAQEAumjaliUJfLJb/0hMenKX+TF+Nvy723LUxAeALbTQwh8iAArz\n\
Kuj8bJazpaRER8OPV66OmdVnHz8KxMWFuyZiVVldPFHRfz0Xr5BU1QtrA70FQYa/\n\
JNxlJgA08svvS8hlYgHn/zXMLV6X9QpIHD2yHhmDsro9FrgaedyZv7AYKjY3Jp3P\n\
DIolYRk1yQpIcS9XK7DEFYz83M3yV6+ugkOTfC+gPbidO6NLArAib4zD9cURmU4Q\n\
zmb63UCrRtdyd/FYQJaqDmCA6125ymNkXXu8pBsfsKRzFzlrv7rFvMseu5ESUcVJ\n\
pXWZjDAkN26/bcrf+02wsyutSJ5SWKsn8t0YVwIDAQABAoIBABH6pQKQRe76APeJ\n\
UJ8KyG+nf2XsUG4lEDJsCsfdxbjDafMZG0ULPbV3f5I9WryVNxEc6/IYbB7OZMp/\n\
xps7Y4aZ3O1BcvRTvyIWyKfXtxWgOI6OYYc7nqHgqTq1wrnLdUPTrT2nQa8qjXt7\n\
52KZ7MEMcvBdGCFF1n/kcAvV/y6q66ZEahPHnTFZO125vXjrjW+xVzs1zWxnMopq\n\
wh02H2LsTHXpPbbrygqKgcPlnmTplxFr1Iyi+W45/9J5BDizoDkIMympPR0HM0Jo\n\
Pv0vMH0eDOU8mpa3xMo1FQOvGzQPl5xfxDhn5w7XryT1gHMFiUzIi2n2uICtMRt0\n\
QUiatgkCgYEA8LaeYg6QM/7rK6o8tf7T+LnTAaDjA4lMkbSUmxdBL8QvFgIyAuU9\n\
CwvzkZy3cKcf8LnMH7XooItEQUXjoXCTKv5yKeeTeNFfciioijwwLzdpnm0W4p+h\n\
FRm1VCZIz62Z2FUDgwGJSWe6kazw/snxf+sI4mkJ8+YjBs7TFaoBKrsCgYEAxj9l\n\
MCdCHWiPxwOAc8LzZCU1fEmcdjg5Sjc+C9iC89srNhsOk4bl3dwQwK2ZK9a5tAJC\n\
uPwAO7wUEGYWVbfKrdwGcRdaq0PRJrih41i7d4rNsT6h3KJt9HpJWmQU7E8ZDqde\n\
KZ16h62aObLX7eXS9pa8HE/1UT5JfSpKQFa11RUCgYARkVJn16ZAlTc2nZsGsU1p\n\
Fq7GrKZEyM10yNgbpYvVX50MHyblPTPCTaH+G5DrwNa86+Jw4gbTSLa3iNE/JAcp\n\
mR5d3o/NvoIXw83hINlnaMTlkhKcgYfxEUpBlPW1ancS6cly0zbgy5g7L4L7JWPh\n\
sRaZ546ZZU9jHM8dAqZJJwKBgEqFLAk0yKJ7WohppZBeONVtMzS8CudZbRebumQD\n\
h/4YZZ7Z/tmvvJpwDZAP8WLMPVQQAXq9p2zM3xHm/gBMrRA7g+Rg7gEw5d7TSm9G\n\
PHnMIFO/AmMIX6KlkQs8Ua0ecoHSog+slZGIzU9hDc/sMyfkM2PFHqbibgdxrSWQ\n\
MpudAoGBAKFcqE45uHN0LLQvwGG0HdN0bdhK8ctTkO4ROKMJhGAEVxOpK4TnDOl7\n\
WR5Es5zBCPqj8W1RBKecWjkQiqtEB9zy7xOPt/aSCLtX8j9xXB6NTXjajwLyCQ98\n\
OIXZW0AJ6rf0Ehd6hu2ewp/srgeQCrM2pda0f5crYPByaTsBEfTz\n\
-----END RSA PRIVATE KEY-----";
    /// Its public half, SubjectPublicKeyInfo DER in base64.
    const PUB_2048: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAumjaliUJfLJb/0hMenKX+TF+Nvy723LUxAeALbTQwh8iAArzKuj8bJazpaRER8OPV66OmdVnHz8KxMWFuyZiVVldPFHRfz0Xr5BU1QtrA70FQYa/JNxlJgA08svvS8hlYgHn/zXMLV6X9QpIHD2yHhmDsro9FrgaedyZv7AYKjY3Jp3PDIolYRk1yQpIcS9XK7DEFYz83M3yV6+ugkOTfC+gPbidO6NLArAib4zD9cURmU4Qzmb63UCrRtdyd/FYQJaqDmCA6125ymNkXXu8pBsfsKRzFzlrv7rFvMseu5ESUcVJpXWZjDAkN26/bcrf+02wsyutSJ5SWKsn8t0YVwIDAQAB";
    /// Another throwaway key: 512 bits, SubjectPublicKeyInfo.
    const PUB_512: &str = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAODlhKpScLFuB69FilZHqrWWpVSJyYKySwRnYdDM7xtbQMLv1daQF9+MKAKXAHQoHvJRavoL/+L8m28Tr+7KQ/0CAwEAAQ==";
    /// And 1,024 bits as a bare RSAPublicKey (PKCS#1), which RFC 6376
    /// §3.6.1 does not allow but keys in the wild use.
    const PUB_1024_PKCS1: &str = "MIGJAoGBANmvqMJgdpa3xTSQpoacWC5QQn6VryIo0QrqZOg+jHPSiffRgztvmWe5pnSw3CTlTOr1SPKMmHY9SVWjNa7EUJF9/giPb0yf6/tLqmpSyK9uDtWDi8QWzLdhtKJVjEUPPq+Q7bA9n24gd7yrfb3iOUk09u1jN1OU64qClIVqkTvZAgMBAAE=";

    fn der_len(len: usize) -> Vec<u8> {
        match len {
            0..0x80 => vec![len as u8],
            0x80..0x100 => vec![0x81, len as u8],
            _ => vec![0x82, (len >> 8) as u8, len as u8],
        }
    }

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(der_len(content.len()));
        out.extend_from_slice(content);
        out
    }

    /// A SubjectPublicKeyInfo for an RSA key with a made-up modulus of
    /// `bits` bits (only its size matters: nothing is verified with it).
    fn fake_rsa_spki(bits: usize) -> Vec<u8> {
        let mut modulus = vec![0u8]; // positive INTEGER: leading zero
        modulus.push(0xc5);
        modulus.extend(std::iter::repeat_n(0x5a, bits / 8 - 1));
        let mut rsa = der(0x02, &modulus);
        rsa.extend(der(0x02, &[0x01, 0x00, 0x01]));
        let rsa = der(0x30, &rsa);
        // rsaEncryption OID and NULL parameters.
        let algorithm = der(
            0x30,
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
            ],
        );
        let mut bit_string = vec![0u8];
        bit_string.extend(rsa);
        let mut spki = algorithm;
        spki.extend(der(0x03, &bit_string));
        der(0x30, &spki)
    }

    fn base64(data: &[u8]) -> String {
        const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk.iter().fold(0u32, |n, &b| (n << 8) | b as u32) << (8 * (3 - chunk.len()));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn key_record(p: &str) -> DomainKey {
        DomainKey::parse(format!("v=DKIM1; k=rsa; p={p}").as_bytes())
            .unwrap_or_else(|e| panic!("key record: {e}"))
    }

    #[test]
    fn rfc8301_key_size_is_read_from_the_key_record() {
        assert_eq!(rsa_key_bits(&key_record(PUB_2048)), Some(2048));
        assert_eq!(rsa_key_bits(&key_record(PUB_512)), Some(512));
        assert_eq!(rsa_key_bits(&key_record(PUB_1024_PKCS1)), Some(1024));
        for bits in [768, 1024, 16384] {
            let p = base64(&fake_rsa_spki(bits));
            assert_eq!(rsa_key_bits(&key_record(&p)), Some(bits), "{bits}");
        }
        // An Ed25519 key has no RSA size; a truncated RSA key has none
        // that can be read.
        let ed =
            DomainKey::parse(b"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
                .unwrap();
        assert_eq!(rsa_key_bits(&ed), None);
        let cut = base64(&fake_rsa_spki(2048)[..100]);
        assert_eq!(rsa_key_bits(&key_record(&cut)), None);
    }

    #[test]
    fn rfc6376_s3_6_1_key_h_tag_limits_the_hash() {
        let key = |h: &str| {
            DomainKey::parse(format!("v=DKIM1; t=y; {h} p={PUB_2048}").as_bytes()).unwrap()
        };
        assert_eq!(hash_not_allowed(&key(""), Algorithm::RsaSha256), None);
        assert_eq!(
            hash_not_allowed(&key("h=sha256;"), Algorithm::RsaSha256),
            None
        );
        assert_eq!(
            hash_not_allowed(&key("h=sha1:sha256;"), Algorithm::RsaSha1),
            None
        );
        assert!(
            hash_not_allowed(&key("h=sha1;"), Algorithm::RsaSha256)
                .unwrap()
                .contains("does not allow sha256")
        );
        assert!(hash_not_allowed(&key("h=sha256;"), Algorithm::RsaSha1).is_some());
        // An h= of unknown names only leaves no trace in mail-auth's key
        // record: it counts as no h= (strictly a PERMFAIL).
        assert_eq!(hash_not_allowed(&key("h=md5;"), Algorithm::RsaSha256), None);
    }

    #[test]
    fn rfc8301_key_size_policy_bounds() {
        assert!(
            key_size_policy(512)
                .unwrap()
                .contains("512 bits, under 1024")
        );
        assert!(key_size_policy(1016).is_some());
        assert_eq!(key_size_policy(1024), None);
        assert_eq!(key_size_policy(8192), None);
        assert!(
            key_size_policy(16384)
                .unwrap()
                .contains("16384 bits, over 8192")
        );
    }

    fn offline() -> MessageAuthenticator {
        // Every answer comes from the cache; nothing listens on port 9.
        authenticator(&DnsSettings {
            nameservers: vec!["127.0.0.1:9".parse().unwrap()],
            timeout: Some(std::time::Duration::from_millis(50)),
        })
        .unwrap()
    }

    /// A message signed with [`KEY_2048`] (d=example.org, s=sel), verified
    /// with `p` as the published key.
    fn signed_and_verified(p: &str) -> Vec<Verdict> {
        let message =
            "From: a@example.org\r\nTo: b@example.net\r\nSubject: key sizes\r\n\r\nHello.\r\n";
        // from_key_der, its replacement, takes rustls-pki-types, which this
        // crate does not use otherwise.
        #[allow(deprecated)]
        let key = RsaKey::<Sha256>::from_rsa_pem(KEY_2048).unwrap();
        let signature = DkimSigner::from_key(key)
            .domain("example.org")
            .selector("sel")
            .headers(["From", "To", "Subject"])
            .sign(message.as_bytes())
            .unwrap();
        let signed = format!("{}{message}", signature.to_header());
        let keys = TxtCache::default();
        keys.put(
            "sel._domainkey.example.org",
            Txt::DomainKey(Arc::new(key_record(p))),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(verify_with(&offline(), signed.as_bytes(), &keys))
    }

    #[test]
    fn rfc8301_a_2048_bit_key_passes() {
        let v = signed_and_verified(PUB_2048);
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].result.as_str(), v[0].detail.as_str()), ("pass", ""));
    }

    #[test]
    fn rfc8301_s3_2_a_512_bit_key_is_policy_not_fail() {
        let v = signed_and_verified(PUB_512);
        assert_eq!(v[0].result, "policy", "{v:?}");
        assert_eq!(
            v[0].detail,
            "RSA key of 512 bits, under 1024 (RFC 8301 §3.2)"
        );
    }

    #[test]
    fn rfc8301_s3_2_a_wrong_1024_bit_key_is_still_a_fail() {
        // Right size, wrong key: the signature does not verify.
        let v = signed_and_verified(PUB_1024_PKCS1);
        assert_eq!(v[0].result, "fail", "{v:?}");
    }

    #[test]
    fn rfc8301_s3_2_a_16384_bit_key_is_refused_quickly() {
        let started = std::time::Instant::now();
        let v = signed_and_verified(&base64(&fake_rsa_spki(16384)));
        assert_eq!(v[0].result, "policy", "{v:?}");
        assert_eq!(
            v[0].detail,
            "RSA key of 16384 bits, over 8192 (RFC 8301 §3.2: larger keys are not verified)"
        );
        // Signing with the 2,048-bit key is most of it (debug build).
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn trailing_whitespace_lines_are_stripped_only_at_the_end() {
        let m = b"Subject: x\r\n\r\nhello \r\n \t\r\n\r\n";
        assert_eq!(
            &*strip_trailing_blank_lines(m),
            b"Subject: x\r\n\r\nhello \r\n"
        );
        let clean = b"Subject: x\r\n\r\nhello\r\n";
        assert!(matches!(
            strip_trailing_blank_lines(clean),
            Cow::Borrowed(_)
        ));
        let inner = b"Subject: x\r\n\r\na\r\n \r\nb\r\n";
        assert!(matches!(
            strip_trailing_blank_lines(inner),
            Cow::Borrowed(_)
        ));
        let only_blank = b"Subject: x\r\n\r\n \r\n\r\n";
        assert_eq!(
            &*strip_trailing_blank_lines(only_blank),
            b"Subject: x\r\n\r\n"
        );
    }

    #[test]
    fn rfc6376_more_than_ten_signatures_are_cut_to_ten() {
        let mut m = String::new();
        for i in 0..12 {
            m.push_str(&format!(
                "DKIM-Signature: v=1; d=d{i}.example;\r\n\tb=x\r\n"
            ));
        }
        m.push_str("From: a@x.example\r\n\r\nDKIM-Signature: in the body\r\n");
        let cut = at_most_signatures(m.as_bytes(), MAX_SIGNATURES);
        let cut = std::str::from_utf8(&cut).unwrap();
        assert_eq!(cut.matches("DKIM-Signature: v=1").count(), 10);
        assert!(cut.contains("d=d9.example") && !cut.contains("d=d10.example"));
        assert!(cut.ends_with("From: a@x.example\r\n\r\nDKIM-Signature: in the body\r\n"));
        let few = "DKIM-Signature: v=1\r\n\r\nbody";
        assert!(matches!(
            at_most_signatures(few.as_bytes(), 10),
            Cow::Borrowed(_)
        ));
    }

    /// The server's one resolver serves the keys: fetched through a
    /// [`crate::dns::Dns`] into the per-message cache, verification needs
    /// nothing of mail-auth's own resolver (here it points where nothing
    /// listens); a missing key and a DNS failure come out as mail-auth's
    /// own lookups would (permerror, temperror).
    #[test]
    fn keys_fetched_through_our_dns_serve_verification() {
        use crate::dns::{Record, Zone};
        use base64::Engine;
        use mail_auth::common::crypto::Ed25519Key;
        use mail_auth::dkim::DkimSigner;
        use mail_auth::dkim::generate::DkimKeyPair;
        let pair = DkimKeyPair::generate_ed25519().unwrap();
        let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(pair.private_key()).unwrap();
        let body = "From: a@bank.test\r\nSubject: hi\r\n\r\nhello\r\n";
        let sig = DkimSigner::from_key(key)
            .domain("bank.test")
            .selector("s1")
            .headers(["From", "Subject"])
            .sign(body.as_bytes())
            .unwrap();
        use mail_auth::common::headers::HeaderWriter;
        let message = format!("{}{body}", sig.to_header());
        assert_eq!(
            key_names(message.as_bytes(), false),
            ["s1._domainkey.bank.test"]
        );
        assert!(
            key_names(message.as_bytes(), true).is_empty(),
            "no ARC sets"
        );
        let record = format!(
            "v=DKIM1; k=ed25519; p={}",
            base64::engine::general_purpose::STANDARD.encode(pair.public_key())
        );
        let nowhere = authenticator(&DnsSettings {
            nameservers: vec!["127.0.0.1:9".parse().unwrap()],
            timeout: Some(std::time::Duration::from_millis(50)),
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let verdict = |zone: &Zone| {
            rt.block_on(async {
                let keys = TxtCache::default();
                keys.fetch(zone, &key_names(message.as_bytes(), false))
                    .await;
                verify_with(&nowhere, message.as_bytes(), &keys).await
            })
        };
        let mut zone = Zone::new();
        zone.add(
            "s1._domainkey.bank.test",
            Some(Record::Txt("not a key".into())),
        );
        zone.add("s1._domainkey.bank.test", Some(Record::Txt(record)));
        let v = verdict(&zone);
        assert_eq!((v.len(), v[0].result.as_str()), (1, "pass"), "{v:?}");
        assert_eq!(verdict(&Zone::new())[0].result, "permerror", "NXDOMAIN");
        let mut broken = Zone::new();
        broken.add("s1._domainkey.bank.test", Some(Record::Timeout));
        assert_eq!(verdict(&broken)[0].result, "temperror");
        // 1,000 signatures (the hostile input): ten are verified,
        // one key is asked for.
        let many = format!("{}{body}", sig.to_header().repeat(1000));
        assert_eq!(key_names(many.as_bytes(), false).len(), 1);
        let v = rt.block_on(async {
            let keys = TxtCache::default();
            keys.fetch(&zone, &key_names(many.as_bytes(), false)).await;
            verify_with(&nowhere, many.as_bytes(), &keys).await
        });
        assert_eq!(v.len(), MAX_SIGNATURES);
        assert!(v.iter().all(|v| v.result == "pass"), "{v:?}");
    }
}
