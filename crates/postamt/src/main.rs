//! `postamt`: one binary for the whole mail system. This crate parses flags
//! and the config, wires the library crates together and handles signals;
//! the logic lives in the libraries.

mod admin;
mod config;
mod mail;
mod serve;

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
    /// Session transcripts (what was said on the wire).
    #[command(subcommand)]
    Trace(admin::TraceCmd),
    /// DKIM keys for signing outbound mail, and verifying signatures.
    #[command(subcommand)]
    Dkim(admin::DkimCmd),
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

/// glibc raises its mmap threshold each time a large block is freed, after
/// which large buffers (a RETR of a big message, a 100,000-entry maildrop)
/// come from the heap and are never given back: the benchmark left a server
/// at 135-190 MB after its sessions ended. Fixed thresholds keep large blocks
/// in mmap and trim the heap, so memory returns to ~13 MB (bench/README.md).
/// The thresholds are 1 MiB (mmap) and 32 MiB (trim), not glibc's initial
/// 128 KiB: with 128 KiB every 100 KB message's buffers were mmapped or
/// trimmed away and faulted in again, 23 page faults and 20 % of the SMTP
/// server's CPU per message (bench/README.md, "SMTP"). A trim threshold of
/// 2 MiB still trimmed and refaulted the heap top as 32 sessions' DATA
/// buffers came and went (6.6 page faults per 100 KB message; 32 MiB: 0.06).
/// What stays free at the top, and blocks below 1 MiB freed in the middle
/// of the heap, go back with the periodic `malloc_trim` (30 s).
#[allow(unsafe_code)]
fn tune_malloc() {
    const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;
    const TRIM_THRESHOLD: libc::c_int = 32 * 1024 * 1024;
    // SAFETY: mallopt only sets allocator parameters; it is called once,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        // Fewer per-thread arenas: less memory held in free lists that
        // only one thread can reuse.
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Memory freed by ended sessions (10,000 IDLE connections closing) sits
/// in the allocator's free lists of every arena; the trim threshold only
/// covers the top of the main heap. Hand free pages back to the system
/// every 30 s, in the background.
#[allow(unsafe_code)]
pub fn spawn_memory_trimmer() {
    let _ = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(30));
                // SAFETY: malloc_trim only releases free memory of the
                // allocator; it takes the arena locks itself.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        });
}

/// Each connection needs a descriptor (two with a transcript) and the store
/// a few more; the usual soft limit of 1024 is below `max_connections`.
/// Raise the soft limit to the hard limit, as Postfix and Dovecot do.
#[allow(unsafe_code)]
fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() -> ExitCode {
    tune_malloc();
    raise_open_files_limit();
    let cli = Cli::parse();
    init_logging();
    let result = match &cli.command {
        Command::Serve => load_config(&cli).and_then(|c| serve::run(c, cli.dev)),
        Command::Deliver(args) => return admin::deliver(load_config(&cli), args),
        Command::User(c) => load_config(&cli).and_then(|cfg| admin::user(&cfg, c)),
        Command::Domain(c) => load_config(&cli).and_then(|cfg| admin::domain(&cfg, c)),
        Command::Alias(c) => load_config(&cli).and_then(|cfg| admin::alias(&cfg, c)),
        Command::Config(c) => load_config(&cli).and_then(|cfg| admin::config(&cfg, c)),
        Command::Queue(c) => load_config(&cli).and_then(|cfg| admin::queue(&cfg, c)),
        Command::Trace(c) => load_config(&cli).and_then(|cfg| admin::trace(&cfg, c)),
        Command::Dkim(c) => load_config(&cli).and_then(|cfg| admin::dkim(&cfg, c)),
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
