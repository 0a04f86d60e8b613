//! ARC verification (RFC 8617) through mail-auth: is the chain of
//! ARC sets intact, and who sealed it? A passing chain whose newest seal
//! comes from a sealer the operator trusts (`[verify] trusted_arc_sealers`)
//! may excuse a DMARC failure caused by a forwarder or mailing list
//! (RFC 7489 §10.4, RFC 8617 §7.2).

use mail_auth::DkimResult;

use crate::dkim::Verifier;

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
    let Some(parsed) = mail_auth::AuthenticatedMessage::parse(message) else {
        return Verdict {
            result: "none",
            sealers: Vec::new(),
            detail: "the message could not be parsed".into(),
        };
    };
    let out = verifier
        .0
        .verify_arc(mail_auth::Parameters::new(&parsed))
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
