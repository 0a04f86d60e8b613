//! `postamt analyze FILE|-`: where a message really came from (the
//! postamt-analyze library), with DKIM and ARC checked again through the
//! `[dns]` resolver unless `--offline`. Works without a config file: then
//! nothing is ours, and the newest Received line (the provider the
//! message was read from) is the one fact.

use anyhow::Result;
use clap::Args;
use postamt_analyze::analysis::{Options, Recheck};
use postamt_analyze::text::Lang;
use postamt_analyze::trust::{Networks, TrustConfig};

use crate::config::Config;

#[derive(Args)]
pub struct AnalyzeArgs {
    /// The message (a file, or - for stdin).
    file: std::path::PathBuf,
    /// Print the analysis as JSON (the fields of interface.md, and more).
    #[arg(long)]
    json: bool,
    /// Language of the report: en or de (default: from LANG).
    #[arg(long)]
    lang: Option<String>,
    /// Do not ask DNS: signatures are reported as not checkable.
    #[arg(long)]
    offline: bool,
    /// Also believe the Authentication-Results of this authserv-id (a
    /// provider you read the message from, e.g. mx.google.com).
    #[arg(long = "authserv-id")]
    authserv_ids: Vec<String>,
}

/// The options from the config (when there is one) and the arguments.
pub fn options(config: Option<&Config>, lang: Lang, extra_ids: &[String]) -> Result<Options> {
    // Domains added with `postamt domain add` live in the store; a store
    // that cannot be opened (another machine's config) adds none.
    let stored = config
        .filter(|c| c.data_dir.exists())
        .and_then(|c| crate::open::open_store(c).ok())
        .map(|store| store.domains().unwrap_or_default())
        .unwrap_or_default();
    options_with(config, &stored, lang, extra_ids)
}

/// [`options`] with the store's domains given (the server has its store
/// open already).
pub fn options_with(
    config: Option<&Config>,
    stored_domains: &[String],
    lang: Lang,
    extra_ids: &[String],
) -> Result<Options> {
    let mut o = Options {
        lang,
        ..Options::default()
    };
    if let Some(c) = config {
        o.hostnames.push(c.hostname.clone());
        o.local_domains = c.domains.clone();
        for d in stored_domains {
            if !o.local_domains.iter().any(|l| l.eq_ignore_ascii_case(d)) {
                o.local_domains.push(d.clone());
            }
        }
        let a = &c.analyze;
        let nets = |v: &[String], what: &str| {
            Networks::parse(&v.join(" ")).map_err(|e| anyhow::anyhow!("[analyze] {what}: {e}"))
        };
        o.trust = TrustConfig {
            trusted: nets(&a.trusted_relays, "trusted_relays")?,
            internal: nets(&a.internal_networks, "internal_networks")?,
            msa: nets(&a.msa_networks, "msa_networks")?,
        };
        o.protected_domains = a.protected_domains.clone();
        o.protected_names = a.protected_names.clone();
    }
    o.hostnames.extend(extra_ids.iter().cloned());
    Ok(o)
}

/// DKIM and ARC verified again with the resolver of `[dns]` (the
/// machine's without a config), within `timeout`.
pub fn recheck(config: Option<&Config>, message: &[u8]) -> Result<Recheck> {
    let dns = match config {
        Some(c) => c.dns.settings()?,
        None => postamt_auth::resolver::DnsSettings::default(),
    };
    let authenticator = postamt_auth::dkim::authenticator(&dns).map_err(|e| anyhow::anyhow!(e))?;
    let verifier = postamt_auth::dkim::Verifier(authenticator);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(recheck_with(
        &verifier,
        message,
        std::time::Duration::from_secs(20),
    )))
}

/// The re-check itself, for a caller inside a runtime (the web interface).
pub async fn recheck_with(
    verifier: &postamt_auth::dkim::Verifier,
    message: &[u8],
    limit: std::time::Duration,
) -> Recheck {
    let dkim = tokio::time::timeout(limit, postamt_auth::dkim::verify(&verifier.0, message))
        .await
        .unwrap_or_default();
    let arc = tokio::time::timeout(limit, postamt_auth::arc::verify(verifier, message))
        .await
        .ok()
        .filter(|v| v.result != "none")
        .map(|v| (v.result.to_string(), v.sealers));
    Recheck {
        dkim: dkim
            .into_iter()
            .map(|v| (v.domain, v.selector, v.result))
            .collect(),
        arc,
    }
}

pub fn run(config: Option<&Config>, args: &AnalyzeArgs) -> Result<()> {
    let message = crate::admin::read_message(&args.file)?;
    let lang = crate::mail::language(args.lang.as_deref());
    let mut o = options(config, lang, &args.authserv_ids)?;
    if !args.offline {
        o.recheck = Some(recheck(config, &message)?);
    }
    print(&postamt_analyze::analyze(&message, &o), args.json, lang)
}

pub fn print(a: &postamt_analyze::Analysis, json: bool, lang: Lang) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(a)?);
    } else {
        print!("{}", postamt_analyze::report::text(a, lang));
    }
    Ok(())
}
