//! The admin subcommands: users, domains, aliases, config check, deliver,
//! trace. They open the same store as `serve` and work while it runs.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use postamt_mda::DeliveryError;

use crate::config::Config;
use crate::open::{create_private_dir, open_store};

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
    /// Encryption at rest: store CERT (PEM or DER, the user's S/MIME
    /// certificate; default: ADDRESS's in the certificate store of `smime
    /// cert issue` / `smime import`) and encrypt every message delivered to
    /// ADDRESS to it from now on; `--remove` stops that (messages stay as
    /// stored).
    Smime {
        address: String,
        #[arg(conflicts_with = "remove")]
        cert: Option<std::path::PathBuf>,
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Subcommand)]
pub enum DomainCmd {
    Add {
        name: String,
    },
    List,
    Del {
        name: String,
    },
    /// The DNS records DOMAIN should publish (MX, SPF, DKIM from its
    /// active key, DMARC) and what DNS says now, each marked ok or wrong;
    /// asks the [dns] resolver. Exit status 1 when one is wrong.
    Check {
        name: String,
    },
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
    /// Try a queued message again now (a held one stays held).
    Retry { id: i64 },
    /// Keep a queued message from being sent until it is released.
    Hold { id: i64 },
    /// Let a held message be sent again (at once).
    Release { id: i64 },
}

#[derive(Subcommand)]
pub enum StoreCmd {
    /// Move a single-node SQLite store into an empty PostgreSQL store.
    ///
    /// Everything is copied with its ids: clients keep their UIDVALIDITY,
    /// UIDs, flags and MODSEQs and do not resynchronise. The copy is one
    /// transaction, verified (row counts, SHA-256 of every row and of the
    /// content) before it commits; on any difference nothing is kept.
    /// Stop the server first: mail that arrives meanwhile is not copied.
    /// Then set `[store] url` to the PostgreSQL URL and start the nodes.
    Migrate {
        /// The SQLite store: sqlite:///path/to/postamt.db
        #[arg(long)]
        from: String,
        /// The PostgreSQL store: postgres://user@host:port/database
        #[arg(long)]
        to: String,
    },
}

/// `postamt store migrate`.
pub fn store(cmd: &StoreCmd) -> Result<()> {
    let StoreCmd::Migrate { from, to } = cmd;
    let path = match from.strip_prefix("sqlite://") {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => bail!("--from {from:?}: use sqlite:///path/to/postamt.db"),
    };
    if !path.exists() {
        bail!("--from: no store at {}", path.display());
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!("--to {to:?}: use postgres://user@host:port/database");
    }
    let source = postamt_store::SqliteStore::open(postamt_store::SqliteOptions::new(&path))
        .with_context(|| format!("opening {}", path.display()))?;
    let target = postamt_store::PgStore::open(to).context("--to")?;
    println!(
        "migrating {} into postgres {} (schema version {})",
        path.display(),
        target.place(),
        target.schema_version()
    );
    let report = target
        .import_sqlite(&source, &mut |line| println!("  {line}"))
        .context("migration failed; the PostgreSQL store is unchanged")?;
    let messages = report
        .tables
        .iter()
        .find(|(t, _)| t == "messages")
        .map_or(0, |(_, n)| *n);
    println!(
        "done: {messages} messages, {} bytes of content, verified and committed; set [store] url = {to:?} and start the nodes",
        report.content_bytes
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum DkimCmd {
    /// Create a signing key for a domain and print the DNS record to publish.
    ///
    /// The key is written to <data_dir>/dkim/DOMAIN/SELECTOR.pem and becomes
    /// the active key: mail from DOMAIN is signed with it from the next
    /// message on, so publish the record first.
    Keygen {
        domain: String,
        /// The selector (the DNS name is SELECTOR._domainkey.DOMAIN).
        #[arg(long, short, default_value_t = default_selector())]
        selector: String,
        /// rsa (2048 bits) or ed25519 (RFC 8463; not every verifier knows it).
        #[arg(long, short, default_value = "rsa")]
        algorithm: String,
    },
    /// Domains with an active key, and their DNS records.
    List,
    /// Verify the DKIM signatures of a message (a file, or - for stdin);
    /// keys are looked up with the [dns] resolver.
    Verify { file: std::path::PathBuf },
    /// Sign a message (a file, or - for stdin) with a domain's active key
    /// and print it with the DKIM-Signature on top (in the playground:
    /// `--domain bank.test --selector lab`, the spoofing lab's key).
    Sign {
        #[arg(long, short)]
        domain: String,
        /// The key to use; it must be the domain's active one.
        #[arg(long, short)]
        selector: Option<String>,
        file: std::path::PathBuf,
    },
}

pub fn read_message(file: &std::path::Path) -> Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
        Ok(v)
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))
    }
}

/// Seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn default_selector() -> String {
    // Dated selectors make key rotation obvious: s202611.
    let days = now() / 86400;
    let (y, m, _) = postamt_wire::time::civil_from_days(days);
    format!("s{y:04}{m:02}")
}

#[derive(Subcommand)]
pub enum TraceCmd {
    /// List recorded session transcripts, oldest first.
    List,
    /// Print one transcript (an id, or a unique part of one).
    Show {
        id: String,
        /// Explain each line: commands, replies and the verdicts of SPF,
        /// DKIM, ARC and DMARC, with the RFC that defines them.
        #[arg(long)]
        explain: bool,
        /// Language of the explanations: en or de (default: from LANG).
        #[arg(long)]
        lang: Option<String>,
        /// With --explain: a Markdown table of three columns, client line,
        /// server line, what it means (for teaching material).
        #[arg(long, requires = "explain")]
        table: bool,
    },
    /// Print the sessions of every protocol as they happen, until
    /// interrupted (Ctrl-C): each line marked with its transcript's id.
    Follow {
        /// Explain each line, as `show --explain` does.
        #[arg(long)]
        explain: bool,
        /// Language of the explanations: en or de (default: from LANG).
        #[arg(long)]
        lang: Option<String>,
    },
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
            let accounts = store.accounts()?;
            let ids: Vec<_> = accounts.iter().map(|a| a.id).collect();
            let sealed = store.smime_certificates(&ids)?;
            for a in accounts {
                let quota = a
                    .quota_bytes
                    .map(|q| q.to_string())
                    .unwrap_or_else(|| "unlimited".into());
                let at_rest = if sealed.iter().any(|(id, _)| *id == a.id) {
                    "\tencrypted at rest (S/MIME)"
                } else {
                    ""
                };
                println!(
                    "{}\t{} bytes used\tquota {}{at_rest}",
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
        UserCmd::Smime {
            address,
            cert,
            remove,
        } => {
            let account = store
                .account(address)?
                .with_context(|| format!("no account {address}"))?;
            if *remove {
                store.set_smime_certificate(account.id, None)?;
                println!(
                    "{}: new mail is stored as it arrives (messages encrypted so far stay encrypted)",
                    account.address
                );
                return Ok(());
            }
            let path = cert
                .clone()
                .unwrap_or_else(|| crate::smime::store_cert_path(config, &account.address));
            let path = &path;
            let bytes = std::fs::read(path).with_context(|| match cert {
                Some(_) => format!("cannot read {}", path.display()),
                None => format!(
                    "no certificate of {} in the certificate store ({}): name CERT, or `postamt smime cert issue` / `smime import` first",
                    account.address,
                    path.display()
                ),
            })?;
            let cert = postamt_smime::encryption_certificate(&bytes, &account.address, now())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            store.set_smime_certificate(account.id, Some(&cert.to_pem()?))?;
            println!(
                "{}: every message delivered from now on is stored encrypted to {} (valid until {})",
                account.address,
                postamt_smime::ca::subject(&cert),
                cert.not_after()
            );
            println!(
                "  only the holder of its private key can read those messages; the server can no longer search their text"
            );
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
    if let DomainCmd::Check { name } = cmd {
        return domain_check(config, name);
    }
    let store = open_store(config)?;
    match cmd {
        DomainCmd::Check { .. } => unreachable!("answered above"),
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

fn domain_check(config: &Config, name: &str) -> Result<()> {
    let domain = name.trim_end_matches('.').to_ascii_lowercase();
    let store = open_store(config)?;
    if !store
        .domains()?
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain))
    {
        println!("note: {domain} is not a local domain of this server");
    }
    let key = postamt_relay::dkim::list(&config.dkim_dir())
        .into_iter()
        .find(|(d, _, _)| d.eq_ignore_ascii_case(&domain))
        .map(|(_, selector, record)| (selector, record));
    let dns = config.dns.settings()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let findings = rt.block_on(async {
        let resolver = postamt_auth::resolver::build(&dns).map_err(|e| anyhow::anyhow!(e))?;
        let resolver = postamt_auth::resolver::Resolver::new(resolver);
        Ok::<_, anyhow::Error>(
            crate::domain_check::check(&resolver, &domain, &config.hostname, key).await,
        )
    })?;
    print!("{}", crate::domain_check::render(&findings));
    let wrong = findings.iter().filter(|f| !f.ok).count();
    if wrong > 0 {
        bail!("{wrong} of {} records are missing or wrong", findings.len());
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
    match config.store_url()? {
        crate::config::StoreUrl::Sqlite(path) => println!("store     sqlite {}", path.display()),
        crate::config::StoreUrl::Postgres(url) => {
            // Tests the connection (issue 18: `config check` does), changes nothing.
            let (server, schema) =
                postamt_store::postgres::probe(&url).map_err(|e| anyhow::anyhow!("[store] {e}"))?;
            let schema = match schema {
                Some(v) => format!("schema version {v}"),
                None => {
                    "schema not created yet (the first command or serve creates it)".to_string()
                }
            };
            let node = config
                .store
                .node
                .clone()
                .unwrap_or_else(postamt_store::postgres::host_name);
            println!(
                "store     postgres: PostgreSQL {server}, {schema}; this server is node {node:?}"
            );
        }
    }
    match (&config.tls.cert, &config.tls.key) {
        (Some(c), Some(k)) => println!("tls       cert {} key {}", c.display(), k.display()),
        _ => println!(
            "tls       self-signed, generated into {}",
            config.data_dir.join("tls").display()
        ),
    }
    for (name, addrs) in config.listen.all() {
        let list: Vec<String> = addrs.parse()?.iter().map(|a| a.to_string()).collect();
        let status = if crate::config::SERVED.contains(&name) {
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
                let state = if e.held {
                    "held".to_string()
                } else if e.active {
                    "being sent".to_string()
                } else {
                    format!(
                        "next attempt {}",
                        postamt_wire::time::rfc5322_date(e.next_attempt.max(0) as u64)
                    )
                };
                println!(
                    "{}\t{}\t{} bytes\tfrom {sender}\t({state})",
                    e.id.0,
                    postamt_wire::time::rfc5322_date(e.created.max(0) as u64),
                    e.size,
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
                postamt_wire::time::rfc5322_date(e.created.max(0) as u64)
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
        QueueCmd::Retry { id } => {
            store.queue_retry(postamt_store::QueueId(*id))?;
            println!("{id} is due now");
        }
        QueueCmd::Hold { id } => {
            store.queue_hold(postamt_store::QueueId(*id), true)?;
            println!("held {id}");
        }
        QueueCmd::Release { id } => {
            store.queue_hold(postamt_store::QueueId(*id), false)?;
            store.queue_retry(postamt_store::QueueId(*id))?;
            println!("released {id}");
        }
    }
    Ok(())
}

pub fn dkim(config: &Config, cmd: &DkimCmd) -> Result<()> {
    use postamt_relay::dkim;
    let dir = config.dkim_dir();
    match cmd {
        DkimCmd::Keygen {
            domain,
            selector,
            algorithm,
        } => {
            let algo = match algorithm.to_ascii_lowercase().as_str() {
                "rsa" | "rsa-sha256" => dkim::Algorithm::Rsa2048,
                "ed25519" | "ed25519-sha256" => dkim::Algorithm::Ed25519,
                other => bail!("unknown algorithm {other:?}: use rsa or ed25519"),
            };
            create_private_dir(&dir)?;
            let g = dkim::generate(&dir, domain, selector, algo).map_err(|e| anyhow::anyhow!(e))?;
            println!("key written to {}", g.key_file.display());
            println!("publish this TXT record, then mail from {domain} is signed with it:");
            println!();
            println!("{}. IN TXT {}", g.record_name, txt_strings(&g.record));
        }
        DkimCmd::List => {
            let keys = dkim::list(&dir);
            if keys.is_empty() {
                println!("no DKIM keys (make one with `postamt dkim keygen DOMAIN`)");
            }
            for (domain, selector, record) in keys {
                println!(
                    "{selector}._domainkey.{domain}. IN TXT {}",
                    txt_strings(&record)
                );
            }
        }
        DkimCmd::Sign {
            domain,
            selector,
            file,
        } => {
            let message = postamt_wire::crlf::normalize_owned(read_message(file)?);
            let domain = domain.to_ascii_lowercase();
            let active = std::fs::read_to_string(dir.join(&domain).join("active"))
                .map(|s| s.trim().to_string())
                .with_context(|| {
                    format!("{domain} has no DKIM key (postamt dkim keygen {domain})")
                })?;
            if let Some(s) = selector.as_deref().filter(|s| *s != active) {
                bail!("the active key of {domain} is {active:?}, not {s:?}");
            }
            let signature = dkim::Signer::new(dir.clone())
                .sign(&domain, &message)
                .with_context(|| format!("signing with {active}._domainkey.{domain}"))?;
            let mut out = std::io::stdout().lock();
            std::io::Write::write_all(&mut out, &signature)?;
            std::io::Write::write_all(&mut out, &message)?;
        }
        DkimCmd::Verify { file } => {
            let message = read_message(file)?;
            let dns = config.dns.settings()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let verdicts = rt.block_on(async {
                let auth =
                    postamt_relay::route::authenticator(&dns).map_err(|e| anyhow::anyhow!(e))?;
                Ok::<_, anyhow::Error>(dkim::verify(&auth, &message).await)
            })?;
            if verdicts.is_empty() {
                println!("dkim=none (no signature)");
                bail!("no DKIM signature");
            }
            let mut pass = false;
            for v in &verdicts {
                let detail = if v.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", v.detail)
                };
                println!(
                    "dkim={} header.d={} header.s={}{detail}",
                    v.result, v.domain, v.selector
                );
                pass |= v.result == "pass";
            }
            if !pass {
                bail!("no DKIM signature verified");
            }
        }
    }
    Ok(())
}

/// A TXT value as DNS zone files write it: strings of at most 255 octets.
fn txt_strings(record: &str) -> String {
    record
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
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
        TraceCmd::Show {
            id,
            explain,
            lang,
            table,
        } => {
            let text = postamt_server::transcript::show(&dir, id)?;
            let lang = crate::mail::language(lang.as_deref());
            if *table {
                print!("{}", postamt_server::transcript::explain_table(&text, lang));
            } else if *explain {
                print!("{}", postamt_server::transcript::explain(&text, lang));
            } else {
                print!("{text}");
            }
        }
        TraceCmd::Follow { explain, lang } => {
            if !config.transcripts.enabled {
                bail!("transcripts are off (enable [transcripts] in the config; on in --dev)");
            }
            let lang = explain.then(|| crate::mail::language(lang.as_deref()));
            let mut follower = postamt_server::transcript::Follower::new(&dir, lang);
            eprintln!(
                "following the transcripts in {} (Ctrl-C ends)",
                dir.display()
            );
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            // Until interrupted, or until nobody reads (a closed pipe).
            loop {
                for line in follower.poll() {
                    writeln!(out, "{line}")?;
                }
                out.flush()?;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
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
    match postamt_mda::deliver(&*store, &args.from, &args.to, &message, now()) {
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
