//! `postamt`: one binary for the whole mail system. This crate parses flags
//! and the config, wires the library crates together and handles signals;
//! the logic lives in the libraries.

mod admin;
mod analyze;
mod arc;
mod config;
mod domain_check;
mod lab;
mod mail;
mod open;
mod process;
mod serve;
mod smime;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "postamt",
    version,
    about = "A complete mail system you can see through"
)]
struct Cli {
    /// Config file (default: ./postamt.toml if present, else /etc/postamt/postamt.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use the `serve --dev` playground instead of a config file.
    #[arg(long, global = true)]
    dev: bool,
    /// Data directory of the playground (with --dev; default ./postamt-dev).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every listener the config names until SIGINT/SIGTERM (SIGHUP reloads TLS certificates).
    Serve,
    /// Mailbox accounts.
    #[command(subcommand)]
    User(admin::UserCmd),
    /// Local domains.
    #[command(subcommand)]
    Domain(admin::DomainCmd),
    /// Aliases to local or remote addresses (`@domain` is the catch-all).
    #[command(subcommand)]
    Alias(admin::AliasCmd),
    /// The configuration.
    #[command(subcommand)]
    Config(admin::ConfigCmd),
    /// Deliver a message from standard input into local mailboxes (an MDA for Postfix's mailbox_command).
    ///
    /// Exit codes (sysexits.h): 0 delivered, 64 usage, 65 bad message, 67 unknown recipient,
    /// 69 too large / not local, 75 temporary failure (the MTA should retry).
    Deliver(admin::DeliverArgs),
    /// The outbound queue: mail accepted for other domains.
    #[command(subcommand)]
    Queue(admin::QueueCmd),
    /// The store itself: moving a SQLite store into PostgreSQL.
    #[command(subcommand)]
    Store(admin::StoreCmd),
    /// Session transcripts (what was said on the wire).
    #[command(subcommand)]
    Trace(admin::TraceCmd),
    /// DKIM keys for signing outbound mail, and verifying signatures.
    #[command(subcommand)]
    Dkim(admin::DkimCmd),
    /// Header forensics: where a message really came from, which Received
    /// lines can be believed, who it claims to be from, and whether it is
    /// forged (DKIM and ARC re-checked unless --offline).
    Analyze(analyze::AnalyzeArgs),
    /// S/MIME: a small CA and certificates; sign, encrypt, verify and
    /// decrypt messages (like `openssl cms`).
    #[command(subcommand)]
    Smime(smime::SmimeCmd),
    /// ARC (RFC 8617): seal a message as a mailing list does, verify a chain.
    #[command(subcommand)]
    Arc(arc::ArcCmd),
    /// The mail client: send, list, read and fetch, with --trace/--explain.
    Mail(Box<mail::MailArgs>),
}

fn config_path(cli: &Cli) -> PathBuf {
    if let Some(p) = &cli.config {
        return p.clone();
    }
    let local = PathBuf::from("postamt.toml");
    if local.exists() {
        local
    } else {
        PathBuf::from("/etc/postamt/postamt.toml")
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    if cli.dev {
        return Ok(Config::dev(
            cli.data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("postamt-dev")),
        ));
    }
    let path = config_path(cli);
    let mut c = Config::load(&path)
        .with_context(|| "use --config FILE, or --dev for the playground".to_string())?;
    if let Some(d) = &cli.data_dir {
        c.data_dir = d.clone();
    }
    Ok(c)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("POSTAMT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    process::tune_malloc();
    process::raise_open_files_limit();
    let cli = Cli::parse();
    init_logging();
    let result = match &cli.command {
        Command::Serve => load_config(&cli).and_then(|c| serve::run(c, cli.dev)),
        Command::Deliver(args) => return admin::deliver(load_config(&cli), args),
        Command::Smime(c) => {
            return match smime::run(load_config(&cli), c) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("postamt: {e:#}");
                    // Not checkable (verify's exit 2); other commands fail.
                    ExitCode::from(2)
                }
            };
        }
        Command::User(c) => load_config(&cli).and_then(|cfg| admin::user(&cfg, c)),
        Command::Domain(c) => load_config(&cli).and_then(|cfg| admin::domain(&cfg, c)),
        Command::Alias(c) => load_config(&cli).and_then(|cfg| admin::alias(&cfg, c)),
        Command::Config(c) => load_config(&cli).and_then(|cfg| admin::config(&cfg, c)),
        Command::Queue(c) => load_config(&cli).and_then(|cfg| admin::queue(&cfg, c)),
        Command::Store(c) => admin::store(c),
        Command::Trace(c) => load_config(&cli).and_then(|cfg| admin::trace(&cfg, c)),
        Command::Dkim(c) => load_config(&cli).and_then(|cfg| admin::dkim(&cfg, c)),
        Command::Arc(c) => load_config(&cli).and_then(|cfg| arc::run(&cfg, c)),
        // A config is used when there is one (our hostname, our networks,
        // [dns]); without, the message is analysed from the outside.
        Command::Analyze(a) => {
            let explicit = cli.config.is_some() || cli.dev;
            match load_config(&cli) {
                Ok(cfg) => analyze::run(Some(&cfg), a),
                Err(e) if explicit => Err(e),
                Err(_) => analyze::run(None, a),
            }
        }
        Command::Mail(m) => mail::run(m),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postamt: {e:#}");
            ExitCode::FAILURE
        }
    }
}
