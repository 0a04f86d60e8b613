//! `postamt arc`: ARC (RFC 8617) by hand, as a mailing list does it and as
//! a receiver checks it. `seal` plays the list of the spoofing lab: it
//! verifies the message as it arrived (keys through `[dns]`), optionally
//! changes it the way lists do (a subject tag, which breaks the author's
//! DKIM signature), and seals it with the domain's key; `verify` checks a
//! chain.

use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum ArcCmd {
    /// Seal a message (a file, or - for stdin) as DOMAIN, a mailing list or
    /// forwarder: print it with ARC-Seal, ARC-Message-Signature and
    /// ARC-Authentication-Results on top (in the playground:
    /// `--dev --domain lists.test --subject-prefix "[staff] "`).
    Seal {
        /// The sealing domain; its active DKIM key signs.
        #[arg(long, short)]
        domain: String,
        /// Add this in front of the Subject, as lists do (it breaks the
        /// author's DKIM signature: that is what ARC is for).
        #[arg(long)]
        subject_prefix: Option<String>,
        /// The authserv-id of the ARC-Authentication-Results (default: the
        /// sealing domain).
        #[arg(long)]
        authserv_id: Option<String>,
        /// The client address the list received the message from.
        #[arg(long, default_value = "127.0.0.1")]
        client_ip: IpAddr,
        file: std::path::PathBuf,
    },
    /// Verify the ARC chain of a message (a file, or - for stdin); keys
    /// are looked up with the [dns] resolver. Exit 1 unless it passes.
    Verify { file: std::path::PathBuf },
}

pub fn run(config: &Config, cmd: &ArcCmd) -> Result<()> {
    let dns = config.dns.settings()?;
    let authenticator =
        postamt_relay::route::authenticator(&dns).map_err(|e| anyhow::anyhow!(e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        ArcCmd::Seal {
            domain,
            subject_prefix,
            authserv_id,
            client_ip,
            file,
        } => {
            let arrived = postamt_wire::crlf::normalize_owned(crate::admin::read_message(file)?);
            let parsed = mail_auth::AuthenticatedMessage::parse(&arrived)
                .context("the message cannot be parsed")?;
            let (dkim, chain) = rt.block_on(async {
                let dkim = authenticator
                    .verify_dkim(mail_auth::Parameters::new(&parsed))
                    .await;
                let chain = authenticator
                    .verify_arc(mail_auth::Parameters::new(&parsed))
                    .await;
                (dkim, chain)
            });
            let from_domain = parsed
                .from
                .first()
                .and_then(|a| a.rsplit_once('@'))
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            let id = authserv_id.clone().unwrap_or_else(|| domain.clone());
            let mut results =
                mail_auth::AuthenticationResults::new(&id).with_dkim_results(&dkim, &from_domain);
            if !chain.sets().is_empty() {
                results = results.with_arc_result(&chain, *client_ip);
            }
            let leaving = match subject_prefix {
                Some(p) => with_subject_prefix(&arrived, p),
                None => arrived.clone(),
            };
            let signer = postamt_relay::dkim::Signer::new(config.dkim_dir());
            let set = signer
                .arc_seal(domain, &leaving, &results, &chain)
                .map_err(|e| anyhow::anyhow!("sealing as {domain}: {e}"))?;
            for o in &dkim {
                let d = o.signature().map(|s| s.d.as_str()).unwrap_or("?");
                eprintln!("as it arrived: dkim={} (d={d})", auth_word(o.result()));
            }
            eprintln!(
                "as it arrived: arc={} ({} set(s)); sealed as {domain}, instance {}",
                auth_word(chain.result()),
                chain.sets().len(),
                chain.sets().len() + 1
            );
            let mut out = std::io::stdout().lock();
            std::io::Write::write_all(&mut out, &set)?;
            std::io::Write::write_all(&mut out, &leaving)?;
        }
        ArcCmd::Verify { file } => {
            let message = crate::admin::read_message(file)?;
            let verifier = postamt_auth::dkim::Verifier(authenticator);
            let v = rt.block_on(postamt_auth::arc::verify(&verifier, &message));
            let detail = if v.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", v.detail)
            };
            println!("arc={}{detail} sealers={}", v.result, v.sealers.join(","));
            if v.result != "pass" {
                bail!("the ARC chain did not pass");
            }
        }
    }
    Ok(())
}

fn auth_word(r: &mail_auth::DkimResult) -> &'static str {
    use mail_auth::DkimResult as R;
    match r {
        R::Pass => "pass",
        R::Neutral(_) => "neutral",
        R::Fail(_) => "fail",
        R::PermError(_) => "permerror",
        R::TempError(_) => "temperror",
        R::None => "none",
    }
}

/// The message with `prefix` in front of its Subject (added when there is
/// none), unless the subject starts with it already, as lists tag mail.
fn with_subject_prefix(message: &[u8], prefix: &str) -> Vec<u8> {
    let end = postamt_wire::meta::header_len(message);
    for r in postamt_wire::meta::header_fields(message) {
        if r.start >= end || !postamt_wire::meta::field_is(message, &r, "Subject") {
            continue;
        }
        let colon = r.start + 8; // "Subject:"
        let value_start = message[colon..r.end]
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .map_or(r.end, |p| colon + p);
        if message[value_start..].starts_with(prefix.as_bytes()) {
            return message.to_vec();
        }
        let mut out = message[..value_start].to_vec();
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(&message[value_start..]);
        return out;
    }
    let mut out = format!("Subject: {}\r\n", prefix.trim_end()).into_bytes();
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_tag_goes_in_front_once() {
        let m = b"From: a@b.test\r\nSubject:  news\r\n\r\nbody\r\n";
        let tagged = with_subject_prefix(m, "[staff] ");
        assert_eq!(
            tagged,
            b"From: a@b.test\r\nSubject:  [staff] news\r\n\r\nbody\r\n"
        );
        assert_eq!(with_subject_prefix(&tagged, "[staff] "), tagged);
        assert_eq!(
            with_subject_prefix(b"From: a@b.test\r\n\r\nSubject: x\r\n", "[l] "),
            b"Subject: [l]\r\nFrom: a@b.test\r\n\r\nSubject: x\r\n"
        );
    }
}
