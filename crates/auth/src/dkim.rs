//! DKIM verification of received mail (RFC 6376, RFC 8463 Ed25519) through
//! mail-auth, with postamt's policy on top: at most [`MAX_SIGNATURES`]
//! signatures are verified (more are an attack on the verifier's CPU);
//! `rsa-sha1` is not trusted (RFC 8301 §3.1: "policy", not "pass"); and
//! each verdict says whether the signature covers `From:` (a signature
//! that does not cannot vouch for the author, RFC 6376 §5.4).
//!
//! mail-auth 0.13.3 keeps trailing whitespace-only body lines under
//! relaxed canonicalization; a failed verification is tried again with
//! them removed (equal under relaxed canonicalization).

use std::borrow::Cow;

pub use mail_auth::MessageAuthenticator;
use mail_auth::common::crypto::Algorithm;
use postamt_wire::meta::{field_is, header_fields, header_len};

use crate::resolver::{DnsSettings, resolver_config};

/// More DKIM signatures than this: the rest are left unverified.
pub const MAX_SIGNATURES: usize = 10;

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
    let message = at_most_signatures(message, MAX_SIGNATURES);
    let verdicts = verify_once(authenticator, &message).await;
    let stripped = strip_trailing_blank_lines(&message);
    if matches!(stripped, Cow::Borrowed(_)) || verdicts.iter().all(|v| v.result == "pass") {
        return verdicts;
    }
    let again = verify_once(authenticator, &stripped).await;
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

async fn verify_once(authenticator: &MessageAuthenticator, message: &[u8]) -> Vec<Verdict> {
    use mail_auth::DkimResult;
    let Some(parsed) = mail_auth::AuthenticatedMessage::parse(message) else {
        return vec![];
    };
    let outputs = authenticator
        .verify_dkim(mail_auth::Parameters::new(&parsed))
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
}
