//! `postamt mail …`: the command-line mail client (postamt-client).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use postamt_client::account::{Account, ClientConfig, Security};
use postamt_client::imap::Imap;
use postamt_client::pop3::Pop3;
use postamt_client::wire::Tracer;
use postamt_wire::explain::{Lang, Proto};

#[derive(Args)]
pub struct MailArgs {
    /// The account to use (default: the one marked default, or the only one).
    #[arg(long, global = true)]
    account: Option<String>,
    /// The accounts file (default: $POSTAMT_CLIENT_CONFIG, else
    /// ~/.config/postamt/client.toml).
    #[arg(long, global = true)]
    client_config: Option<PathBuf>,
    /// Print the protocol dialogue (C:/S: lines) on standard error.
    #[arg(long, global = true)]
    trace: bool,
    /// With --trace: explain each line and name its RFC section.
    #[arg(long, global = true)]
    explain: bool,
    /// Language of the explanations: en or de (default: from LANG).
    #[arg(long, global = true)]
    lang: Option<String>,
    /// Read over POP3 even when the account has IMAP.
    #[arg(long, global = true)]
    pop3: bool,
    /// The IMAP mailbox the command works on (default: INBOX), e.g.
    /// `--mailbox Sent`.
    #[arg(long, global = true)]
    mailbox: Option<String>,
    #[command(subcommand)]
    cmd: MailCmd,
}

#[derive(Subcommand)]
pub enum MailCmd {
    /// Accounts in the client's config file.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Compose a message and submit it (SMTP AUTH over TLS).
    Send(SendArgs),
    /// List the messages (IMAP: UID, date, from, subject, size, flags;
    /// POP3: number, UIDL, date, from, subject, size).
    List {
        #[arg(long)]
        unseen: bool,
        #[arg(long)]
        search: Option<String>,
    },
    /// Show a message: headers, the text body (HTML reduced to text), the attachments.
    Read { id: u32 },
    /// The raw header block of a message.
    Headers { id: u32 },
    /// The whole message as stored.
    Raw { id: u32 },
    /// Header forensics of a message (as `postamt analyze`): hops, trust
    /// boundary, identities, findings, verdict.
    Analyze {
        id: u32,
        /// Print the analysis as JSON.
        #[arg(long)]
        json: bool,
        /// Do not ask DNS: signatures are reported as not checkable.
        #[arg(long)]
        offline: bool,
        /// Believe the Authentication-Results of this authserv-id (your
        /// provider's receiving host).
        #[arg(long = "authserv-id")]
        authserv_ids: Vec<String>,
    },
    /// Save attachment N (from `read`) of a message to a file.
    Save {
        id: u32,
        #[arg(long)]
        attachment: usize,
        /// Default: the attachment's own file name in the current directory.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Delete a message.
    Delete { id: u32 },
    /// Change flags (IMAP), e.g. `+\Seen` or `-\Flagged`.
    Flag { id: u32, flags: String },
    /// Move a message to another mailbox (IMAP).
    Move {
        id: u32,
        #[arg(value_name = "MAILBOX")]
        target: String,
    },
    /// Download the mailbox (resumable: messages already fetched are skipped).
    Fetch {
        #[arg(long, conflicts_with = "to_mbox")]
        to_maildir: Option<PathBuf>,
        #[arg(long)]
        to_mbox: Option<PathBuf>,
        /// Delete each message on the server once it is saved.
        #[arg(long)]
        delete: bool,
    },
}

#[derive(Subcommand)]
pub enum AccountCmd {
    /// Add an account (asks for what the options do not give).
    Add(Box<AccountAddArgs>),
    /// The accounts configured.
    List,
}

#[derive(Args)]
pub struct AccountAddArgs {
    name: String,
    #[arg(long)]
    address: Option<String>,
    #[arg(long)]
    user: Option<String>,
    /// Submission server host:port.
    #[arg(long)]
    smtp_server: Option<String>,
    #[arg(long, default_value = "starttls")]
    smtp_security: String,
    /// IMAP server host:port.
    #[arg(long)]
    imap_server: Option<String>,
    #[arg(long, default_value = "tls")]
    imap_security: String,
    /// POP3 server host:port.
    #[arg(long)]
    pop3_server: Option<String>,
    #[arg(long, default_value = "tls")]
    pop3_security: String,
    /// Pin a self-signed certificate: sha256:AB:CD:…
    #[arg(long)]
    tls_trust: Option<String>,
    /// A command that prints the password (e.g. `pass show mail`).
    #[arg(long)]
    password_command: Option<String>,
    /// An environment variable that holds the password.
    #[arg(long)]
    password_env: Option<String>,
    #[arg(long)]
    default: bool,
}

#[derive(Args)]
pub struct SendArgs {
    #[arg(long, required_unless_present = "raw")]
    to: Vec<String>,
    #[arg(long)]
    cc: Vec<String>,
    #[arg(long)]
    bcc: Vec<String>,
    #[arg(long, default_value = "")]
    subject: String,
    /// Files to attach (media type from the extension).
    #[arg(long)]
    attach: Vec<PathBuf>,
    /// The text body: a file, or - for standard input (default: empty).
    #[arg(long)]
    body: Option<PathBuf>,
    /// Submit a prepared message unchanged (recipients: --to/--cc/--bcc,
    /// else its To/Cc/Bcc headers).
    #[arg(long, conflicts_with_all = ["subject", "attach", "body"])]
    raw: Option<PathBuf>,
    /// S/MIME-sign with the account's `smime_identity` (RFC 8551,
    /// multipart/signed, SHA-256).
    #[arg(long)]
    sign: bool,
    /// With --sign: application/pkcs7-mime signed-data instead.
    #[arg(long, requires = "sign")]
    opaque: bool,
    /// S/MIME-encrypt to every recipient (and to the sender, so the Sent
    /// copy stays readable); certificates from --recipient-cert or the
    /// client's certificate store. With --sign: signed, then encrypted.
    #[arg(long)]
    encrypt: bool,
    /// Recipient certificates (PEM) to encrypt to.
    #[arg(long = "recipient-cert")]
    recipient_certs: Vec<PathBuf>,
}

/// The explanations' language: `--lang`, else the locale (LC_ALL,
/// LC_MESSAGES, LANG), else English.
pub fn language(flag: Option<&str>) -> Lang {
    flag.map(Lang::from_locale)
        .or_else(|| {
            ["LC_ALL", "LC_MESSAGES", "LANG"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
                .map(|s| Lang::from_locale(&s))
        })
        .unwrap_or(Lang::En)
}

pub fn run(args: &MailArgs) -> Result<()> {
    let path = ClientConfig::path(args.client_config.as_deref());
    if let MailCmd::Account(cmd) = &args.cmd {
        return account_cmd(&path, cmd);
    }
    let config = ClientConfig::load(&path)?;
    let (_, account) = config.account(args.account.as_deref())?;
    let lang = language(args.lang.as_deref());
    let tracer = |proto| {
        (args.trace || args.explain).then(|| {
            Tracer::new(
                proto,
                args.explain.then_some(lang),
                Box::new(std::io::stderr()),
            )
        })
    };
    let use_imap = account.imap.is_some() && !(args.pop3 && account.pop3.is_some());
    match &args.cmd {
        MailCmd::Account(_) => unreachable!("handled above"),
        MailCmd::Send(s) => {
            let content = send(account, s, tracer(Proto::Smtp), &cert_dir(&path))?;
            // A copy in the Sent mailbox, as mail clients keep one.
            if account.imap.is_some() {
                let copy = open_imap(account, tracer(Proto::Imap)).and_then(|mut c| {
                    let sent = c.sent_mailbox()?;
                    c.append(&sent, "\\Seen", &content)?;
                    c.logout()?;
                    Ok(sent)
                });
                match copy {
                    Ok(sent) => println!("copy saved in {sent}"),
                    Err(e) => eprintln!("postamt: warning: sent, but no copy saved in Sent: {e:#}"),
                }
            }
            Ok(())
        }
        cmd if use_imap => imap_cmd(
            account,
            cmd,
            args.mailbox.as_deref().unwrap_or("INBOX"),
            tracer(Proto::Imap),
            lang,
            &cert_dir(&path),
        ),
        MailCmd::Flag { .. } | MailCmd::Move { .. } => {
            bail!(
                "flag and move need IMAP (POP3 has no flags or folders); this account has no imap endpoint"
            )
        }
        cmd => {
            if account.pop3.is_none() {
                bail!("this account has neither an imap nor a pop3 endpoint");
            }
            if args
                .mailbox
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case("INBOX"))
            {
                bail!("--mailbox needs IMAP; POP3 has one mailbox");
            }
            read_cmd(account, cmd, tracer(Proto::Pop3), lang, &cert_dir(&path))
        }
    }
}

fn account_cmd(path: &Path, cmd: &AccountCmd) -> Result<()> {
    match cmd {
        AccountCmd::List => {
            let config = ClientConfig::load(path)?;
            for (name, a) in &config.accounts {
                println!(
                    "{name}{}\t{}\tsmtp {}\timap {}\tpop3 {}",
                    if a.default { " (default)" } else { "" },
                    a.address,
                    a.smtp.as_deref().unwrap_or("-"),
                    a.imap.as_deref().unwrap_or("-"),
                    a.pop3.as_deref().unwrap_or("-"),
                );
            }
            Ok(())
        }
        AccountCmd::Add(a) => {
            let ask = |what: &str, given: &Option<String>| -> Result<Option<String>> {
                if given.is_some() || !std::io::stdin().is_terminal() {
                    return Ok(given.clone());
                }
                eprint!("{what} (empty: none): ");
                std::io::stderr().flush()?;
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                let line = line.trim().to_string();
                Ok((!line.is_empty()).then_some(line))
            };
            let address = ask("address", &a.address)?.context("--address is required")?;
            let smtp = ask("submission server host:port", &a.smtp_server)?;
            let pop3 = ask("POP3 server host:port", &a.pop3_server)?;
            let password_command = ask("password command", &a.password_command)?;
            for (what, s) in [
                ("smtp", &a.smtp_security),
                ("imap", &a.imap_security),
                ("pop3", &a.pop3_security),
            ] {
                if !matches!(s.as_str(), "starttls" | "tls" | "plain") {
                    bail!("--{what}-security {s:?}: use starttls, tls or plain");
                }
            }
            let q = |s: &str| format!("{s:?}");
            let mut t = format!("address = {}\n", q(&address));
            let mut line = |k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    t.push_str(&format!("{k} = {}\n", q(v)));
                }
            };
            line("user", &a.user);
            line("password_command", &password_command);
            line("password_env", &a.password_env);
            line("smtp", &smtp);
            line("imap", &a.imap_server);
            line("pop3", &pop3);
            line("tls_trust", &a.tls_trust);
            if smtp.is_some() {
                t.push_str(&format!("smtp_security = {}\n", q(&a.smtp_security)));
            }
            if a.imap_server.is_some() {
                t.push_str(&format!("imap_security = {}\n", q(&a.imap_security)));
            }
            if pop3.is_some() {
                t.push_str(&format!("pop3_security = {}\n", q(&a.pop3_security)));
            }
            if a.default {
                t.push_str("default = true\n");
            }
            // Check what we are about to write parses.
            ClientConfig::parse(&format!("[accounts.{}]\n{t}", a.name))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            ClientConfig::add_to_file(path, &a.name, &t)?;
            println!("account {} added to {}", a.name, path.display());
            Ok(())
        }
    }
}

/// The client's certificate store: `certs/` beside the client config,
/// one `ADDRESS.pem` per correspondent (RFC 8550 §3).
fn cert_dir(client_config: &Path) -> PathBuf {
    client_config
        .parent()
        .map(|p| p.join("certs"))
        .unwrap_or_else(|| PathBuf::from("certs"))
}

fn smime_identity(account: &Account) -> Result<postamt_smime::Identity> {
    let path = account
        .smime_identity
        .as_deref()
        .context("this account has no smime_identity (a PKCS#12 file)")?;
    let path = postamt_client::account::expand_home(path);
    let der = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let pw = account.smime_password()?;
    postamt_smime::Identity::from_pkcs12(&der, &pw)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The content encryption `address`'s client announced in its last
/// trusted signed message (`certs/ADDRESS.caps`, one per line), if known.
fn read_capabilities(certs: &Path, address: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(certs.join(format!("{address}.caps"))).ok()?;
    Some(text.lines().map(str::to_string).collect())
}

/// Signs and/or encrypts a composed message as asked (RFC 8551 §3.5:
/// signed first, then encrypted).
fn protect(
    account: &Account,
    s: &SendArgs,
    content: Vec<u8>,
    rcpts: &[String],
    certs: &Path,
) -> Result<Vec<u8>> {
    if !s.sign && !s.encrypt {
        return Ok(content);
    }
    let id = if s.sign || account.smime_identity.is_some() {
        Some(smime_identity(account)?)
    } else {
        None
    };
    let mut content = content;
    if s.sign {
        let id = id
            .as_ref()
            .context("--sign needs the account's smime_identity")?;
        content = postamt_smime::sign(&content, id, s.opaque).map_err(|e| anyhow::anyhow!(e))?;
    }
    if s.encrypt {
        let mut recipients = Vec::new();
        for f in &s.recipient_certs {
            let pem = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            recipients.extend(
                openssl::x509::X509::stack_from_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?,
            );
        }
        // What each recipient's client announced it reads (None: not
        // known, a certificate from the command line).
        let mut caps: Vec<Option<Vec<String>>> = Vec::new();
        if s.recipient_certs.is_empty() {
            for r in rcpts {
                let r = r.to_ascii_lowercase();
                let file = certs.join(format!("{r}.pem"));
                let pem = std::fs::read(&file).with_context(|| {
                    format!("no certificate for {r}: --recipient-cert FILE, or read a signed message of theirs first")
                })?;
                recipients.extend(openssl::x509::X509::stack_from_pem(&pem)?);
                caps.push(read_capabilities(certs, &r));
            }
        } else {
            caps.push(None);
        }
        // The sender too: the Sent copy stays readable (by this client,
        // which reads every cipher it may choose).
        if let Some(id) = &id {
            recipients.push(id.cert.clone());
        }
        // RFC 8551 §2.7.1: AES-GCM (AuthEnvelopedData) only when every
        // recipient announced it.
        let cipher = postamt_smime::Cipher::for_recipients(caps.iter().map(|c| c.as_deref()));
        content = postamt_smime::encrypt_with(&content, &recipients, cipher)
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(content)
}

/// `mail read` of an S/MIME message: every layer opened (decrypted with
/// the account's identity, verified against `smime_ca`), a summary on
/// top, then the innermost content. A signer whose certificate is trusted
/// and names the From: address goes into the certificate store (RFC 8550
/// §3), for encrypting to them later. Encrypted layers are whole-message
/// layers only: no decrypted part is ever shown inside another message's
/// view (EFAIL).
fn smime_view(account: &Account, raw: &[u8], certs: &Path) -> Result<Option<String>> {
    if !postamt_smime::message::is_smime(raw) {
        return Ok(None);
    }
    let id = account
        .smime_identity
        .as_ref()
        .map(|_| smime_identity(account))
        .transpose()?;
    let mut trust = Vec::new();
    if let Some(ca) = &account.smime_ca {
        let path = postamt_client::account::expand_home(ca);
        let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        trust.extend(openssl::x509::X509::stack_from_pem(&pem)?);
    }
    let v = postamt_smime::verify(raw, &trust, None, id.as_ref());
    let mut out = String::new();
    let verdict = match v.status {
        postamt_smime::Status::Valid => "signature VALID, signer trusted",
        postamt_smime::Status::Invalid => {
            "signature INVALID: the message was changed after signing, or the signature is forged. Do not trust it."
        }
        postamt_smime::Status::Untrusted => "signature matches, but the signer is NOT TRUSTED",
        postamt_smime::Status::NotSigned => "not signed",
        postamt_smime::Status::Policy => "signature matches, but is NOT ACCEPTED (see below)",
    };
    out.push_str(&format!("S/MIME: {verdict}\n"));
    out.push_str(&v.details());
    out.push('\n');
    // Remember a trusted signer for encrypting to them later.
    if v.status == postamt_smime::Status::Valid
        && v.from_matches == Some(true)
        && let (Some(from), Some(cert)) =
            (&v.from, v.layers.iter().find_map(|l| l.signer_pem.clone()))
    {
        // An address is a file name here: nothing that could leave the
        // directory.
        if !from.contains(['/', '\\']) && !from.starts_with('.') {
            std::fs::create_dir_all(certs)?;
            std::fs::write(certs.join(format!("{from}.pem")), cert)?;
            // The newest announcement counts (RFC 8551 §2.7.1).
            let caps = v
                .layers
                .iter()
                .find(|l| l.signer_pem.is_some())
                .map(|l| l.capabilities.join("\n"))
                .unwrap_or_default();
            std::fs::write(certs.join(format!("{from}.caps")), caps)?;
        }
    }
    out.push_str(&render(&v.content));
    Ok(Some(out))
}

fn send(account: &Account, s: &SendArgs, trace: Option<Tracer>, certs: &Path) -> Result<Vec<u8>> {
    let endpoint = account
        .smtp
        .as_deref()
        .context("this account has no smtp endpoint")?;
    let (content, mut rcpts) = match &s.raw {
        Some(file) => {
            let content = read_input(file)?;
            let mut rcpts: Vec<String> = s.to.iter().chain(&s.cc).chain(&s.bcc).cloned().collect();
            if rcpts.is_empty() {
                rcpts = header_recipients(&content);
            }
            (content, rcpts)
        }
        None => {
            let body = match &s.body {
                Some(f) => {
                    String::from_utf8(read_input(f)?).context("the body must be UTF-8 text")?
                }
                None => String::new(),
            };
            let domain = account
                .address
                .rsplit_once('@')
                .map(|(_, d)| d)
                .unwrap_or("localhost");
            let content = postamt_client::compose::compose(&postamt_client::compose::Draft {
                from_name: account.name.as_deref(),
                from: &account.address,
                to: &s.to,
                cc: &s.cc,
                subject: &s.subject,
                body: &body,
                attachments: &s.attach,
                domain,
                in_reply_to: None,
                references: &[],
            })?;
            let rcpts = s.to.iter().chain(&s.cc).chain(&s.bcc).cloned().collect();
            (content, rcpts)
        }
    };
    rcpts.dedup();
    if rcpts.is_empty() {
        bail!("no recipients");
    }
    let content = protect(account, s, content, &rcpts, certs)?;
    let password = account.password()?;
    let sub = postamt_client::smtp::Submission {
        endpoint,
        security: account.smtp_security.unwrap_or(Security::Starttls),
        tls_trust: account.tls_trust.as_deref(),
        login: account.login(),
        password: &password,
        helo: "postamt-mail",
    };
    let reply = postamt_client::smtp::submit(&sub, &account.address, &rcpts, &content, trace)?;
    println!("sent: {reply}");
    Ok(content)
}

fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        Ok(v)
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))
    }
}

fn header_recipients(content: &[u8]) -> Vec<String> {
    let Some(m) = mail_parser::MessageParser::default().parse_headers(content) else {
        return vec![];
    };
    [m.to(), m.cc(), m.bcc()]
        .into_iter()
        .flatten()
        .flat_map(|a| {
            a.iter()
                .filter_map(|x| x.address().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn open_imap(account: &Account, trace: Option<Tracer>) -> Result<Imap> {
    let endpoint = account.imap.as_deref().context("no imap endpoint")?;
    let password = account.password()?;
    Ok(Imap::open(
        endpoint,
        account.imap_security.unwrap_or(Security::Tls),
        account.tls_trust.as_deref(),
        account.login(),
        &password,
        trace,
    )?)
}

/// The commands over IMAP; IDs are UIDs.
fn imap_cmd(
    account: &Account,
    cmd: &MailCmd,
    mailbox: &str,
    trace: Option<Tracer>,
    lang: Lang,
    certs: &Path,
) -> Result<()> {
    let mut c = open_imap(account, trace)?;
    match cmd {
        MailCmd::List { unseen, search } => {
            c.select(mailbox, true)?;
            let mut criteria = String::from("ALL");
            if *unseen {
                criteria = "UNSEEN".into();
            }
            if let Some(q) = search {
                criteria = format!("{criteria} TEXT {}", postamt_client::imap::quote(q)?);
            }
            let uids = c.search(&criteria)?;
            println!(
                "{:>6}  {:<31}  {:<28}  {:<40}  {:>8}  FLAGS",
                "UID", "DATE", "FROM", "SUBJECT", "SIZE"
            );
            for m in c.summaries(&uids)? {
                let (date, from, subject) = header_summary(&m.header);
                println!(
                    "{:>6}  {:<31}  {:<28}  {:<40}  {:>8}  {}",
                    m.uid,
                    cut(&date, 31),
                    cut(&from, 28),
                    cut(&subject, 40),
                    m.size,
                    m.flags
                );
            }
        }
        MailCmd::Read { id } => {
            c.select(mailbox, false)?;
            let raw = c.body(*id, "")?;
            match smime_view(account, &raw, certs)? {
                Some(view) => print!("{view}"),
                None => print!("{}", render(&raw)),
            }
            // Reading marks it seen, as a mail client does.
            c.store(*id, "+FLAGS", "\\Seen")?;
        }
        MailCmd::Headers { id } => {
            c.select(mailbox, true)?;
            std::io::stdout().write_all(&c.body(*id, "HEADER")?)?;
        }
        MailCmd::Raw { id } => {
            c.select(mailbox, true)?;
            std::io::stdout().write_all(&c.body(*id, "")?)?;
        }
        MailCmd::Analyze { id, .. } => {
            c.select(mailbox, true)?;
            let raw = c.body(*id, "")?;
            analyze(&raw, cmd, lang)?;
        }
        MailCmd::Save {
            id,
            attachment,
            output,
        } => {
            c.select(mailbox, true)?;
            let raw = c.body(*id, "")?;
            save_attachment(&raw, *id, *attachment, output.as_deref())?;
        }
        MailCmd::Delete { id } => {
            c.select(mailbox, false)?;
            c.delete(*id)?;
            println!("deleted {id}");
        }
        MailCmd::Flag { id, flags } => {
            let (op, list) = match flags.chars().next() {
                Some('+') => ("+FLAGS", &flags[1..]),
                Some('-') => ("-FLAGS", &flags[1..]),
                _ => ("FLAGS", flags.as_str()),
            };
            let list = list.replace(',', " ");
            c.select(mailbox, false)?;
            c.store(*id, op, &list)?;
            println!("{id}: {op} ({list})");
        }
        MailCmd::Move { id, target: to } => {
            c.select(mailbox, false)?;
            c.move_to(*id, to)?;
            println!("moved {id} to {to}");
        }
        MailCmd::Fetch {
            to_maildir,
            to_mbox,
            delete,
        } => {
            let (_, validity) = c.select(mailbox, !*delete)?;
            let uids = c.search("ALL")?;
            let mut sink = Sink::open(to_maildir.as_deref(), to_mbox.as_deref())?;
            // UIDVALIDITY:UID names a message for good (RFC 9051 §2.3.1.1);
            // other mailboxes than INBOX get their name in front, since
            // servers may give several mailboxes the same UIDVALIDITY.
            let key = |uid: u32| {
                if mailbox.eq_ignore_ascii_case("INBOX") {
                    format!("{validity}:{uid}")
                } else {
                    format!("{mailbox}/{validity}:{uid}")
                }
            };
            let todo: Vec<u32> = uids
                .iter()
                .copied()
                .filter(|u| !sink.seen(&key(*u)))
                .collect();
            for (i, uid) in todo.iter().enumerate() {
                let raw = c.body(*uid, "")?;
                sink.save(&raw, &key(*uid), i, todo.len())?;
                if *delete {
                    c.delete(*uid)?;
                }
            }
            sink.done(todo.len(), uids.len() - todo.len());
        }
        MailCmd::Send(_) | MailCmd::Account(_) => unreachable!("routed in run()"),
    }
    c.logout()?;
    Ok(())
}

fn header_summary(h: &[u8]) -> (String, String, String) {
    match mail_parser::MessageParser::default().parse_headers(h) {
        Some(x) => (
            x.date().map(|d| d.to_rfc822()).unwrap_or_default(),
            x.from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or("")
                .to_string(),
            x.subject().unwrap_or("").to_string(),
        ),
        None => Default::default(),
    }
}

fn save_attachment(raw: &[u8], id: u32, attachment: usize, output: Option<&Path>) -> Result<()> {
    use mail_parser::MimeHeaders;
    let parsed = mail_parser::MessageParser::default()
        .parse(raw)
        .context("the message is not MIME; nothing to save")?;
    let att = parsed
        .attachment(attachment.saturating_sub(1) as u32)
        .with_context(|| format!("message {id} has no attachment {attachment}"))?;
    let name = att
        .attachment_name()
        .and_then(|n| Path::new(n).file_name().map(|f| f.to_owned()))
        .unwrap_or_else(|| format!("attachment-{attachment}").into());
    let out = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(name));
    std::fs::write(&out, att.contents())?;
    println!("saved {} ({} octets)", out.display(), att.contents().len());
    Ok(())
}

fn open_pop3(account: &Account, trace: Option<Tracer>) -> Result<Pop3> {
    let endpoint = account.pop3.as_deref().context("no pop3 endpoint")?;
    let password = account.password()?;
    Ok(Pop3::open(
        endpoint,
        account.pop3_security.unwrap_or(Security::Tls),
        account.tls_trust.as_deref(),
        account.login(),
        &password,
        trace,
    )?)
}

/// `mail analyze`: the message read through the account, analysed from
/// the outside (this machine's config is not the receiving server's).
fn analyze(raw: &[u8], cmd: &MailCmd, lang: Lang) -> Result<()> {
    let MailCmd::Analyze {
        json,
        offline,
        authserv_ids,
        ..
    } = cmd
    else {
        return Ok(());
    };
    let mut o = crate::analyze::options(None, lang, authserv_ids)?;
    if !offline {
        o.recheck = Some(crate::analyze::recheck(None, raw)?);
    }
    crate::analyze::print(&postamt_analyze::analyze(raw, &o), *json, lang)
}

fn read_cmd(
    account: &Account,
    cmd: &MailCmd,
    trace: Option<Tracer>,
    lang: Lang,
    certs: &Path,
) -> Result<()> {
    if let MailCmd::List { unseen, search } = cmd
        && (*unseen || search.is_some())
    {
        bail!("--unseen and --search need IMAP; POP3 has no flags and no search");
    }
    let mut p = open_pop3(account, trace)?;
    match cmd {
        MailCmd::List { .. } => {
            let list = p.list()?;
            println!(
                "{:>4}  {:<24}  {:<31}  {:<28}  {:<40}  {:>8}",
                "#", "UIDL", "DATE", "FROM", "SUBJECT", "SIZE"
            );
            for m in &list {
                let h = p.header(m.number)?;
                let (date, from, subject) = header_summary(&h);
                println!(
                    "{:>4}  {:<24}  {:<31}  {:<28}  {:<40}  {:>8}",
                    m.number,
                    cut(&m.uidl, 24),
                    cut(&date, 31),
                    cut(&from, 28),
                    cut(&subject, 40),
                    m.size
                );
            }
        }
        MailCmd::Read { id } => {
            let raw = p.retr(*id)?;
            match smime_view(account, &raw, certs)? {
                Some(view) => print!("{view}"),
                None => print!("{}", render(&raw)),
            }
        }
        MailCmd::Headers { id } => {
            let h = p.header(*id)?;
            std::io::stdout().write_all(&h)?;
        }
        MailCmd::Raw { id } => {
            let m = p.retr(*id)?;
            std::io::stdout().write_all(&m)?;
        }
        MailCmd::Analyze { id, .. } => {
            let m = p.retr(*id)?;
            analyze(&m, cmd, lang)?;
        }
        MailCmd::Save {
            id,
            attachment,
            output,
        } => {
            let raw = p.retr(*id)?;
            save_attachment(&raw, *id, *attachment, output.as_deref())?;
        }
        MailCmd::Delete { id } => {
            p.dele(*id)?;
            println!("deleted {id}");
        }
        MailCmd::Fetch {
            to_maildir,
            to_mbox,
            delete,
        } => fetch(&mut p, to_maildir.as_deref(), to_mbox.as_deref(), *delete)?,
        _ => unreachable!("routed in run()"),
    }
    p.quit()?;
    Ok(())
}

fn cut(s: &str, n: usize) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    if s.chars().count() <= n {
        s
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// A message for reading: its main headers, the text (HTML reduced to
/// text), the attachments. Not MIME at all: shown raw with a warning.
/// Why a message that mail-parser took anyway is not well-formed MIME (it
/// is lenient, and would show such a message with an empty body).
fn mime_problem(raw: &[u8], m: &mail_parser::Message) -> Option<String> {
    use mail_parser::MimeHeaders;
    for part in &m.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        if ct.ctype().eq_ignore_ascii_case("multipart") {
            // RFC 2046 §5.1.1: the boundary parameter is required, and the
            // body is made of parts that begin with "--" boundary.
            let Some(b) = ct.attribute("boundary") else {
                return Some("a multipart without a boundary parameter".into());
            };
            let body = raw
                .get(part.offset_body as usize..part.offset_end as usize)
                .unwrap_or(raw);
            let delim = format!("--{b}");
            if !body.windows(delim.len()).any(|w| w == delim.as_bytes()) {
                return Some(format!("the multipart boundary \"{b}\" never occurs"));
            }
        }
    }
    m.parts
        .iter()
        .position(|p| p.is_encoding_problem)
        .map(|i| format!("part {} is not valid in its transfer encoding", i + 1))
}

pub fn render(raw: &[u8]) -> String {
    use mail_parser::MimeHeaders;
    let parsed = mail_parser::MessageParser::default().parse(raw);
    let problem = match &parsed {
        None => Some("it has no header fields".to_string()),
        Some(m) => mime_problem(raw, m),
    };
    let (Some(m), None) = (parsed, problem.as_deref()) else {
        return format!(
            "warning: the message could not be parsed as MIME ({}); shown raw\n\n{}",
            problem.unwrap_or_default(),
            String::from_utf8_lossy(raw)
        );
    };
    let mut out = String::new();
    let addrs = |a: Option<&mail_parser::Address>| {
        a.map(|a| {
            a.iter()
                .map(|x| match (x.name(), x.address()) {
                    (Some(n), Some(ad)) => format!("{n} <{ad}>"),
                    (_, Some(ad)) => ad.to_string(),
                    (Some(n), None) => n.to_string(),
                    _ => String::new(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    for (k, v) in [
        ("From", addrs(m.from())),
        ("To", addrs(m.to())),
        ("Cc", addrs(m.cc())),
        ("Date", m.date().map(|d| d.to_rfc822())),
        ("Subject", m.subject().map(str::to_string)),
    ] {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    out.push('\n');
    // The terminal wants LF line ends.
    let text = m
        .body_text(0)
        .map(|t| t.replace("\r\n", "\n"))
        .unwrap_or_default();
    out.push_str(&text);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    let atts: Vec<_> = m.attachments().collect();
    if !atts.is_empty() {
        out.push_str("\nAttachments:\n");
        for (i, a) in atts.iter().enumerate() {
            let ct = a
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
                .unwrap_or_else(|| "application/octet-stream".into());
            out.push_str(&format!(
                "  [{}] {} ({ct}, {} octets)\n",
                i + 1,
                a.attachment_name().unwrap_or("(no name)"),
                a.contents().len()
            ));
        }
    }
    out
}

/// Where `fetch` puts messages, and which it has already (their keys —
/// UIDLs, or UIDVALIDITY:UID — kept in a state file beside the target).
struct Sink {
    maildir: Option<PathBuf>,
    mbox: Option<PathBuf>,
    seen: std::collections::BTreeSet<String>,
    state: std::fs::File,
    tty: bool,
}

impl Sink {
    fn open(maildir: Option<&Path>, mbox: Option<&Path>) -> Result<Sink> {
        let state_file = match (maildir, mbox) {
            (Some(d), _) => {
                for sub in ["new", "cur", "tmp"] {
                    std::fs::create_dir_all(d.join(sub))?;
                }
                d.join(".postamt-fetched")
            }
            (None, Some(f)) => {
                let mut s = f.as_os_str().to_owned();
                s.push(".postamt-fetched");
                PathBuf::from(s)
            }
            (None, None) => bail!("use --to-maildir DIR or --to-mbox FILE"),
        };
        let seen = std::fs::read_to_string(&state_file)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        Ok(Sink {
            maildir: maildir.map(Path::to_path_buf),
            mbox: mbox.map(Path::to_path_buf),
            seen,
            state: std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&state_file)?,
            tty: std::io::stderr().is_terminal(),
        })
    }

    fn seen(&self, key: &str) -> bool {
        self.seen.contains(key)
    }

    /// Stores one message durably, then records it as fetched.
    fn save(&mut self, raw: &[u8], key: &str, i: usize, total: usize) -> Result<()> {
        if let Some(d) = &self.maildir {
            let name = format!(
                "{}.P{}N{}.{}",
                postamt_wire::time::unix_now(),
                std::process::id(),
                i,
                hostname_safe()
            );
            let tmp = d.join("tmp").join(&name);
            std::fs::write(&tmp, raw)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, d.join("new").join(&name))?;
            // The rename is durable once the directory is synced.
            std::fs::File::open(d.join("new"))?.sync_all()?;
        } else if let Some(f) = &self.mbox {
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)?;
            out.write_all(&mbox_entry(raw))?;
            out.sync_all()?;
        }
        writeln!(self.state, "{key}")?;
        self.state.sync_all()?;
        self.seen.insert(key.to_string());
        if self.tty {
            let width = 30;
            let done = (i + 1) * width / total.max(1);
            eprint!(
                "\r[{}{}] {}/{}",
                "#".repeat(done),
                " ".repeat(width - done),
                i + 1,
                total
            );
        }
        Ok(())
    }

    fn done(&self, new: usize, old: usize) {
        if self.tty && new > 0 {
            eprintln!();
        }
        println!("fetched {new} new message(s), {old} already there");
    }
}

fn fetch(p: &mut Pop3, maildir: Option<&Path>, mbox: Option<&Path>, delete: bool) -> Result<()> {
    let mut sink = Sink::open(maildir, mbox)?;
    let list = p.list()?;
    let todo: Vec<_> = list.iter().filter(|m| !sink.seen(&m.uidl)).collect();
    for (i, m) in todo.iter().enumerate() {
        let raw = p.retr(m.number)?;
        sink.save(&raw, &m.uidl, i, todo.len())?;
        if delete {
            p.dele(m.number)?;
        }
    }
    sink.done(todo.len(), list.len() - todo.len());
    Ok(())
}

fn hostname_safe() -> String {
    std::fs::read_to_string("/etc/hostname")
        .unwrap_or_else(|_| "localhost".into())
        .trim()
        .replace(['/', ':'], "_")
}

/// One mboxrd entry: a `From ` line (envelope sender and asctime date),
/// `>`-quoting of `>*From ` lines, LF line ends, a blank line after. The
/// bytes are kept as they are (8-bit bodies too); only CRLF becomes LF.
fn mbox_entry(raw: &[u8]) -> Vec<u8> {
    let sender = mail_parser::MessageParser::default()
        .parse_headers(raw)
        .and_then(|m| m.return_address().map(str::to_string))
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        .unwrap_or_else(|| "MAILER-DAEMON".into());
    let date = postamt_wire::time::asctime_date(postamt_wire::time::unix_now());
    let mut out = format!("From {sender} {date}\n").into_bytes();
    out.reserve(raw.len() + 64);
    let mut rest = raw;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let unquoted = &line[line.iter().take_while(|&&b| b == b'>').count()..];
        if unquoted.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = next;
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mboxrd_quotes_from_lines() {
        let e = mbox_entry(b"From: a@x\r\nSubject: s\r\n\r\nFrom here\r\n>From there\r\n");
        let t = String::from_utf8(e).unwrap();
        assert!(t.starts_with("From a@x "), "{t}");
        assert!(t.ends_with("\n>From here\n>>From there\n\n"), "{t}");
        // The From_ line has the asctime date mbox readers parse.
        let first = t.lines().next().unwrap();
        assert_eq!(first.len(), "From a@x ".len() + 24, "{first}");
    }

    #[test]
    fn mbox_keeps_8bit_bytes_and_trailing_blank_lines() {
        let e = mbox_entry(b"Subject: s\r\n\r\nGr\xfc\xdfe\r\n\r\n");
        assert!(e.ends_with(b"\n\nGr\xfc\xdfe\n\n\n"), "{e:?}");
    }

    #[test]
    fn broken_mime_is_shown_raw_with_a_warning() {
        for (raw, why) in [
            (&b"no header here\r\n"[..], "no header fields"),
            (
                b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n",
                "without a boundary",
            ),
            (
                b"Subject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nbody\r\n",
                "\"zz\" never occurs",
            ),
        ] {
            let r = render(raw);
            assert!(r.starts_with("warning: ") && r.contains(why), "{r}");
            assert!(r.ends_with(&*String::from_utf8_lossy(raw)), "{r}");
        }
        // A well-formed multipart is rendered, not shown raw.
        let ok = render(b"Subject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nhi\r\n--zz--\r\n");
        assert!(!ok.contains("warning") && ok.contains("hi"), "{ok}");
    }

    #[test]
    fn render_falls_back_to_raw() {
        let r = render(b"Subject: hi\r\nFrom: A <a@x>\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>you</b></p>\r\n");
        assert!(
            r.contains("From: A <a@x>") && r.contains("Hello you"),
            "{r}"
        );
    }
}
