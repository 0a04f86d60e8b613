//! The admin subcommands: users, domains, aliases, config check, deliver,
//! trace. They open the same store as `serve` and work while it runs.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use postamt_mda::DeliveryError;
use postamt_store::{SqliteOptions, SqliteStore, Store};

use crate::config::Config;

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create an account (the domain must be local).
    Add {
        address: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts with their usage.
    List,
    /// Delete an account and all its mail.
    Del { address: String },
    /// Set the quota: a size in bytes (K, M, G suffixes allowed) or `none`.
    Quota { address: String, size: String },
    /// Set a new password.
    Passwd {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum DomainCmd {
    Add { name: String },
    List,
    Del { name: String },
}

#[derive(Subcommand)]
pub enum AliasCmd {
    /// Point ALIAS at one or more targets (`@domain` makes a catch-all).
    Add {
        alias: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    List,
    Del {
        alias: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Validate the config and print what would listen where.
    Check,
}

#[derive(Subcommand)]
pub enum QueueCmd {
    /// List queued messages (sender, recipients and their state).
    List,
    /// Show one queued message: envelope, recipients and the message.
    Show { id: i64 },
    /// Remove a queued message without delivering it.
    Delete { id: i64 },
}

#[derive(Subcommand)]
pub enum TraceCmd {
    /// List recorded session transcripts, oldest first.
    List,
    /// Print one transcript (an id, or a unique part of one).
    Show { id: String },
}

#[derive(Args)]
pub struct DeliverArgs {
    /// Envelope sender (Return-Path); empty for the null sender.
    #[arg(long, short = 'f', default_value = "")]
    from: String,
    /// Recipient addresses.
    #[arg(long, short = 't', required = true, num_args = 1..)]
    to: Vec<String>,
}

/// Creates `dir` readable by its owner only (mail and password hashes live
/// there); an existing directory is left as the administrator set it.
pub fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens the store and makes sure the config's domains are local.
pub fn open_store(config: &Config) -> Result<Arc<SqliteStore>> {
    open_store_with(config, None)
}

/// [`open_store`] for the server: it also watches for commits by other
/// processes (`postamt deliver`) every `external_poll`, so that IMAP IDLE
/// and the selected mailboxes see them.
pub fn open_store_with(
    config: &Config,
    external_poll: Option<std::time::Duration>,
) -> Result<Arc<SqliteStore>> {
    use std::os::unix::fs::PermissionsExt;
    let path = config.store_path()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut options = SqliteOptions::new(&path);
    if let Some(min) = config.store.file_min_size {
        options.file_min_size = min;
    }
    options.external_poll = external_poll;
    let store =
        SqliteStore::open(options).with_context(|| format!("opening store {}", path.display()))?;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    for d in &config.domains {
        store.add_domain(d)?;
    }
    Ok(Arc::new(store))
}

fn read_password(prompt_for: &str, from_stdin: bool) -> Result<String> {
    let pw = if from_stdin || !std::io::stdin().is_terminal() {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s)?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let a = rpassword::prompt_password(format!("Password for {prompt_for}: "))?;
        let b = rpassword::prompt_password("Again: ")?;
        if a != b {
            bail!("the passwords differ");
        }
        a
    };
    if pw.is_empty() {
        bail!("empty password");
    }
    Ok(pw)
}

pub fn user(config: &Config, cmd: &UserCmd) -> Result<()> {
    let store = open_store(config)?;
    match cmd {
        UserCmd::Add {
            address,
            password_stdin,
        } => {
            let pw = read_password(address, *password_stdin)?;
            let a = store.create_account(address, &pw)?;
            println!("created {}", a.address);
        }
        UserCmd::List => {
            for a in store.accounts()? {
                let quota = a
                    .quota_bytes
                    .map(|q| q.to_string())
                    .unwrap_or_else(|| "unlimited".into());
                println!(
                    "{}\t{} bytes used\tquota {}",
                    a.address, a.used_bytes, quota
                );
            }
        }
        UserCmd::Del { address } => {
            store.delete_account(address)?;
            println!("deleted {address}");
        }
        UserCmd::Quota { address, size } => {
            let account = store
                .account(address)?
                .with_context(|| format!("no account {address}"))?;
            let bytes = parse_size(size)?;
            store.set_quota(account.id, bytes)?;
            match bytes {
                Some(b) => println!(
                    "quota of {} set to {b} bytes ({} used)",
                    account.address, account.used_bytes
                ),
                None => println!("quota of {} removed", account.address),
            }
        }
        UserCmd::Passwd {
            address,
            password_stdin,
        } => {
            if store.account(address)?.is_none() {
                bail!("no account {address}");
            }
            let pw = read_password(address, *password_stdin)?;
            store.set_password(address, &pw)?;
            println!("password changed for {address}");
        }
    }
    Ok(())
}

/// `none`, or bytes with an optional K/M/G suffix (powers of 1024).
fn parse_size(s: &str) -> Result<Option<u64>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .with_context(|| format!("{s:?} is not a size (e.g. 500M, or none)"))?;
    n.checked_mul(mult).map(Some).context("size too large")
}

pub fn domain(config: &Config, cmd: &DomainCmd) -> Result<()> {
    let store = open_store(config)?;
    match cmd {
        DomainCmd::Add { name } => {
            store.add_domain(name)?;
            println!("added {name}");
        }
        DomainCmd::List => {
            for d in store.domains()? {
                let from_config = config.domains.iter().any(|c| c.eq_ignore_ascii_case(&d));
                println!("{d}{}", if from_config { "\t(config)" } else { "" });
            }
        }
        DomainCmd::Del { name } => {
            if config.domains.iter().any(|c| c.eq_ignore_ascii_case(name)) {
                bail!("{name} is listed in the config file; remove it there");
            }
            store.remove_domain(name)?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

pub fn alias(config: &Config, cmd: &AliasCmd) -> Result<()> {
    let store = open_store(config)?;
    match cmd {
        AliasCmd::Add { alias, targets } => {
            store.add_alias(alias, targets)?;
            println!("{alias} -> {}", targets.join(", "));
        }
        AliasCmd::List => {
            for a in store.aliases()? {
                println!("{}\t{}", a.alias, a.targets.join(", "));
            }
        }
        AliasCmd::Del { alias } => {
            store.remove_alias(alias)?;
            println!("deleted {alias}");
        }
    }
    Ok(())
}

pub fn config(config: &Config, cmd: &ConfigCmd) -> Result<()> {
    let ConfigCmd::Check = cmd;
    println!("config ok");
    println!("hostname  {}", config.hostname);
    println!("domains   {}", config.domains.join(", "));
    println!("data_dir  {}", config.data_dir.display());
    println!("store     sqlite {}", config.store_path()?.display());
    match (&config.tls.cert, &config.tls.key) {
        (Some(c), Some(k)) => println!("tls       cert {} key {}", c.display(), k.display()),
        _ => println!(
            "tls       self-signed, generated into {}",
            config.data_dir.join("tls").display()
        ),
    }
    for (name, addrs) in config.listen.all() {
        let list: Vec<String> = addrs.parse()?.iter().map(|a| a.to_string()).collect();
        let status = if crate::serve::SERVED.contains(&name) {
            ""
        } else {
            "  (not served by this version yet)"
        };
        println!("listen    {name:<12} {}{status}", list.join(" "));
    }
    Ok(())
}

pub fn queue(config: &Config, cmd: &QueueCmd) -> Result<()> {
    let store = open_store(config)?;
    match cmd {
        QueueCmd::List => {
            let entries = store.queue()?;
            if entries.is_empty() {
                println!("queue is empty");
            }
            for e in entries {
                let sender = if e.sender.is_empty() {
                    "<>".to_string()
                } else {
                    e.sender.clone()
                };
                println!(
                    "{}\t{}\t{} bytes\tfrom {sender}{}",
                    e.id.0,
                    postamt_server::time::rfc5322_date(e.created.max(0) as u64),
                    e.size,
                    if e.held { "\t(held)" } else { "" }
                );
                for r in &e.recipients {
                    let err = r
                        .last_error
                        .as_deref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default();
                    println!("\t{}\t{}{err}", r.address, r.status.as_str());
                }
            }
        }
        QueueCmd::Show { id } => {
            let (e, content) = store
                .queue_entry(postamt_store::QueueId(*id))?
                .with_context(|| format!("no queue entry {id}"))?;
            println!("id:         {}", e.id.0);
            println!(
                "created:    {}",
                postamt_server::time::rfc5322_date(e.created.max(0) as u64)
            );
            println!("sender:     <{}>", e.sender);
            for r in &e.recipients {
                println!(
                    "recipient:  <{}> {}{}{}",
                    r.address,
                    r.status.as_str(),
                    r.notify
                        .as_deref()
                        .map(|n| format!(" NOTIFY={n}"))
                        .unwrap_or_default(),
                    r.orcpt
                        .as_deref()
                        .map(|o| format!(" ORCPT={o}"))
                        .unwrap_or_default()
                );
            }
            if let Some(ret) = &e.envelope.ret {
                println!("ret:        {ret}");
            }
            if let Some(envid) = &e.envelope.envid {
                println!("envid:      {envid}");
            }
            if let Some(body) = &e.envelope.body {
                println!("body:       {body}");
            }
            println!("smtputf8:   {}", e.envelope.smtputf8);
            if let Some(a) = &e.envelope.authenticated_as {
                println!("submitted by {a}");
            }
            println!();
            print!("{}", String::from_utf8_lossy(&content));
        }
        QueueCmd::Delete { id } => {
            store.queue_delete(postamt_store::QueueId(*id))?;
            println!("deleted {id}");
        }
    }
    Ok(())
}

pub fn trace(config: &Config, cmd: &TraceCmd) -> Result<()> {
    let dir = config.transcript_dir();
    match cmd {
        TraceCmd::List => {
            let all = postamt_server::transcript::list(&dir).unwrap_or_default();
            if all.is_empty() {
                println!(
                    "no transcripts in {} (enable [transcripts] in the config; on in --dev)",
                    dir.display()
                );
            }
            for (id, first) in all {
                let what = first.split_once(": ").map(|(_, w)| w).unwrap_or(&first);
                println!("{id}\t{what}");
            }
        }
        TraceCmd::Show { id } => print!("{}", postamt_server::transcript::show(&dir, id)?),
    }
    Ok(())
}

// sysexits.h
const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_NOUSER: u8 = 67;
const EX_UNAVAILABLE: u8 = 69;
const EX_TEMPFAIL: u8 = 75;

/// `postamt deliver`: exit codes as a local delivery agent's (sysexits.h),
/// which Postfix and Exim map to bounce (67, 69) or retry (75).
pub fn deliver(config: Result<Config>, args: &DeliverArgs) -> ExitCode {
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postamt deliver: {e:#}");
            return ExitCode::from(EX_TEMPFAIL);
        }
    };
    let limit = config.limits.max_message_size;
    let mut message = Vec::new();
    if let Err(e) = std::io::stdin().take(limit + 1).read_to_end(&mut message) {
        eprintln!("postamt deliver: reading the message: {e}");
        return ExitCode::from(EX_TEMPFAIL);
    }
    if message.len() as u64 > limit {
        eprintln!("postamt deliver: message larger than {limit} bytes ([limits] max_message_size)");
        return ExitCode::from(EX_UNAVAILABLE);
    }
    if message.is_empty() {
        eprintln!("postamt deliver: empty message");
        return ExitCode::from(EX_DATAERR);
    }
    let store = match open_store(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("postamt deliver: {e:#}");
            return ExitCode::from(EX_TEMPFAIL);
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match postamt_mda::deliver(&*store, &args.from, &args.to, &message, now) {
        Ok(report) => {
            for (address, d) in &report.delivered {
                eprintln!(
                    "postamt deliver: delivered to {address} (INBOX uid {})",
                    d.uid.0
                );
            }
            if let Some(id) = report.queue_id {
                eprintln!(
                    "postamt deliver: queued for {} (queue id {}; relaying arrives with the outbound MTA)",
                    report.queued.join(", "),
                    id.0
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postamt deliver: {e}");
            ExitCode::from(match e {
                DeliveryError::UnknownRecipient(_) => EX_NOUSER,
                DeliveryError::NotLocal(_) => EX_UNAVAILABLE,
                DeliveryError::Invalid(_) => EX_USAGE,
                DeliveryError::OverQuota(_) | DeliveryError::Temporary(_) => EX_TEMPFAIL,
            })
        }
    }
}
