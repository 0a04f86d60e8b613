//! `postamt serve`: opens the store, binds every configured listener, and
//! runs until SIGINT/SIGTERM. SIGHUP reloads the TLS certificate.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use postamt_imap::{Imap, ImapConfig};
use postamt_pop3::{Pop3, Pop3Config};
use postamt_server::{
    AuthPolicy, AuthThrottle, ConnectionLimits, ServerContext, ShutdownController, TlsManager,
    TranscriptConfig, Transcripts,
};
use postamt_store::{SharedStore, Store};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{Config, Endpoint};
use crate::open::open_server_store;
use postamt_auth::report::{Collector, Reporter};
use postamt_smtp::{DmarcPolicy, Mode, Smtp, SmtpConfig, SpfPolicy, SpoofPolicy};

pub fn run(config: Config, dev: bool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(config, dev))
}

async fn serve(config: Config, dev: bool) -> Result<()> {
    if dev {
        for (name, addrs) in config.listen.all() {
            let public = addrs
                .parse()?
                .iter()
                .any(|a| matches!(a, Endpoint::Tcp(t) if !t.ip().is_loopback()));
            if public {
                bail!("--dev binds loopback only, but {name} is not on loopback");
            }
        }
    }
    crate::open::create_private_dir(&config.data_dir)?;
    let opened = open_server_store(&config, Duration::from_millis(200))?;
    // Which store, and on PostgreSQL which node this is (issue 18).
    println!("postamt: store       {}", opened.description);
    let store = opened.store;
    crate::process::spawn_memory_trimmer();
    if let Some(sqlite) = &opened.sqlite {
        // The full-text index of SEARCH BODY/TEXT, filled in the background.
        sqlite.start_indexer()?;
        // Content files left by a crash before their commit (in the
        // background: it reads every fan-out directory).
        let sqlite = Arc::clone(sqlite);
        std::thread::spawn(move || match sqlite.sweep_orphan_files() {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed unreferenced message files"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep message files"),
        });
    }
    if let Some(pg) = &opened.postgres {
        // The text of SEARCH BODY/TEXT for the trigram index, in the
        // background (every node takes a share).
        pg.start_indexer()?;
    }
    drop(opened.sqlite);
    drop(opened.postgres);
    if dev {
        seed_playground(&*store)?;
        // The spoofing lab: demo domains' SPF, DKIM and DMARC records on
        // a DNS of our own (the playground's [dns] asks it).
        crate::open::create_private_dir(&config.dkim_dir())?;
        crate::lab::ensure_key(&config.dkim_dir())?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], crate::lab::PORT));
        crate::lab::serve(crate::lab::zone(&config.dkim_dir()), addr).await?;
    }
    let cert_key = config.tls.cert.clone().zip(config.tls.key.clone());
    let tls = Arc::new(TlsManager::new(
        cert_key,
        &config.data_dir,
        &config.hostname,
    )?);
    let transcripts = if config.transcripts.enabled {
        let t = Transcripts::new(TranscriptConfig {
            dir: config.transcript_dir(),
            body_limit: config.transcripts.body_limit,
            keep: config.transcripts.keep.max(1),
            max_bytes: config.transcripts.max_session_bytes.max(1024),
        })
        .context("transcript directory")?;
        Some(Arc::new(t))
    } else {
        None
    };
    // Verified logins skip Argon2id for `[auth] cache_ttl` (IMAP, POP3,
    // SMTP AUTH alike: the cache sits in the store's password check).
    postamt_store::password::set_cache_ttl(Some(Duration::from_secs(config.auth.cache_ttl)));
    let ctx = Arc::new(ServerContext {
        hostname: config.hostname.clone(),
        tls: Arc::clone(&tls),
        limits: ConnectionLimits::new(
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
        ),
        auth: Arc::new(AuthThrottle::new(AuthPolicy {
            allow_plaintext: config.auth.allow_plaintext,
            failure_delay: Duration::from_millis(config.auth.failure_delay_ms),
            max_failures: config.auth.max_failures,
            window: Duration::from_secs(config.auth.failure_window),
        })),
        transcripts,
        idle_timeout: config.idle_timeout(),
        tls_timeout: Duration::from_secs(30),
    });
    let shared: SharedStore = store.clone();
    let pop3 = Arc::new(Pop3::new(
        shared,
        Pop3Config {
            max_line: config.limits.pop3_max_line.max(64),
            max_errors: config.limits.max_errors.max(1),
            idle_timeout: config.idle_timeout(),
            ..Pop3Config::default()
        },
    ));
    let imap = Arc::new(Imap::new(
        store.clone(),
        ImapConfig {
            max_line: config.imap.max_line.max(1024),
            max_command: config.imap.max_command.max(config.imap.max_line.max(1024)),
            max_command_preauth: config.imap.max_command_preauth.max(1024),
            max_append: config
                .imap
                .max_append
                .unwrap_or(config.smtp.max_message_size as u64),
            max_errors: config.limits.max_errors.max(1),
            // RFC 9051 §5.4: at least 30 minutes.
            idle_timeout: Duration::from_secs(config.imap.autologout.max(1800)),
            idle_max: Duration::from_secs(config.imap.idle_max.max(60)),
            ..ImapConfig::default()
        },
    ));
    // SPF asks the `[dns]` servers (hickory's cache keeps answers for
    // their TTL).
    let spf = match config.verify.spf.as_str() {
        "reject" => SpfPolicy::Reject,
        "mark" => SpfPolicy::Mark,
        _ => SpfPolicy::Off,
    };
    let dns = config.dns.settings()?;
    let dmarc = match config.verify.dmarc.as_str() {
        "enforce" => DmarcPolicy::Enforce,
        "mark" => DmarcPolicy::Mark,
        _ => DmarcPolicy::Off,
    };
    // One resolver and one cache for SPF, DKIM and ARC keys, DMARC and
    // the relay's MX lookups (a clone of hickory's resolver shares it).
    let hickory = postamt_auth::resolver::build(&dns).map_err(|e| anyhow::anyhow!("[dns] {e}"))?;
    let resolver = (spf != SpfPolicy::Off || dmarc != DmarcPolicy::Off || config.verify.dkim)
        .then(|| postamt_auth::resolver::Resolver::new(hickory.clone()));
    // DKIM and ARC keys are fetched through `resolver` into a per-message
    // cache that mail-auth reads (its own resolver is not asked).
    let dkim = if config.verify.dkim {
        let a =
            postamt_auth::dkim::authenticator(&dns).map_err(|e| anyhow::anyhow!("[dns] {e}"))?;
        Some(Arc::new(postamt_auth::dkim::Verifier(a)))
    } else {
        None
    };
    // DMARC aggregate reports (RFC 9990): port 25 counts, a task sends.
    let dmarc_reports = (config.verify.dmarc_reports && dmarc != DmarcPolicy::Off)
        .then(|| Arc::new(Collector::new(config.verify.report_interval.max(1))));
    let public_suffixes = match config.verify.organizational_domain.as_str() {
        "psl" => Some(Arc::new(match &config.verify.public_suffix_list {
            Some(path) => postamt_auth::psl::Suffixes::from_file(path)
                .map_err(|e| anyhow::anyhow!("[verify] public_suffix_list: {e}"))?,
            None => postamt_auth::psl::Suffixes::Embedded,
        })),
        _ => None,
    };
    let smtp_config = |mode| SmtpConfig {
        mode,
        max_line: config.smtp.max_line.max(512),
        max_message_size: config.smtp.max_message_size,
        max_header_size: config.smtp.max_header_size,
        max_recipients: config.smtp.max_recipients.max(1),
        max_errors: config.limits.max_errors.max(1),
        command_timeout: Duration::from_secs(config.smtp.command_timeout.max(1)),
        data_timeout: Duration::from_secs(config.smtp.data_timeout.max(1)),
        spoof_policy: match config.smtp.spoof_policy.as_str() {
            "mark" => SpoofPolicy::Mark,
            "off" => SpoofPolicy::Off,
            _ => SpoofPolicy::Reject,
        },
        max_received: config.smtp.max_received,
        spf,
        resolver: resolver.clone(),
        dkim: dkim.clone(),
        dmarc,
        trusted_arc_sealers: config.verify.trusted_arc_sealers.clone(),
        verify_timeout: Duration::from_secs(config.verify.timeout.max(1)),
        dmarc_reports: dmarc_reports.clone(),
        public_suffixes: public_suffixes.clone(),
        ..SmtpConfig::default()
    };
    let smtp = Arc::new(Smtp::new(store.clone(), smtp_config(Mode::Inbound)));
    let submission = Arc::new(Smtp::new(store.clone(), smtp_config(Mode::Submission)));
    let lmtp = Arc::new(Smtp::new(store.clone(), smtp_config(Mode::Lmtp)));
    let controller = ShutdownController::new();
    let web = (config.listen.http.is_some() || config.listen.https.is_some())
        .then(|| {
            build_web(
                &config,
                &(store.clone() as SharedStore),
                &submission,
                &ctx,
                &controller,
                &hickory,
                &dns,
            )
        })
        .transpose()?;
    let mut out = std::io::stdout().lock();
    let mut bound: Vec<(&str, u16)> = Vec::new();
    for (name, addrs) in config.listen.all() {
        if !crate::config::SERVED.contains(&name) {
            writeln!(out, "postamt: {name:<11} not served by this version yet")?;
            continue;
        }
        for endpoint in addrs.parse()? {
            let addr = match endpoint {
                Endpoint::Tcp(a) => a,
                Endpoint::Unix(path) => {
                    // A stale socket from an earlier run is replaced.
                    let _ = std::fs::remove_file(&path);
                    let listener = tokio::net::UnixListener::bind(&path)
                        .with_context(|| format!("binding {name} on {}", path.display()))?;
                    writeln!(
                        out,
                        "postamt: {name:<11} listening on unix:{}",
                        path.display()
                    )?;
                    tokio::spawn(postamt_server::listener::run_unix(
                        listener,
                        Arc::clone(&lmtp),
                        Arc::clone(&ctx),
                        controller.handle(),
                    ));
                    continue;
                }
            };
            let listener = match postamt_server::listener::bind(addr) {
                Ok(l) => l,
                Err(e) if dev && addr.is_ipv6() => {
                    tracing::warn!(%addr, error = %e, "IPv6 loopback not available");
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("binding {name} on {addr}")),
            };
            let local = listener.local_addr()?;
            writeln!(out, "postamt: {name:<11} listening on {local}")?;
            bound.push((name, local.port()));
            let (ctx, shutdown) = (Arc::clone(&ctx), controller.handle());
            if let ("http" | "https", Some(web)) = (name, &web) {
                let tls = (name == "https").then(|| Arc::clone(&tls));
                tokio::spawn(postamt_web::serve(listener, tls, Arc::clone(web), shutdown));
                continue;
            }
            use postamt_server::listener::run;
            match name {
                "pop3" | "pop3s" => tokio::spawn(run(
                    listener,
                    name == "pop3s",
                    Arc::clone(&pop3),
                    ctx,
                    shutdown,
                )),
                "imap" | "imaps" => tokio::spawn(run(
                    listener,
                    name == "imaps",
                    Arc::clone(&imap),
                    ctx,
                    shutdown,
                )),
                "smtp" => tokio::spawn(run(listener, false, Arc::clone(&smtp), ctx, shutdown)),
                "submission" | "submissions" => tokio::spawn(run(
                    listener,
                    name == "submissions",
                    Arc::clone(&submission),
                    ctx,
                    shutdown,
                )),
                _ => tokio::spawn(run(listener, false, Arc::clone(&lmtp), ctx, shutdown)),
            };
        }
    }
    if let Some(web) = &web {
        web.set_listeners(&bound);
    }
    if let (Some(collector), Some(dns)) = (&dmarc_reports, &resolver) {
        let reports = postamt_relay::report::Reports {
            reporter: Reporter {
                org_name: config
                    .verify
                    .report_org
                    .clone()
                    .unwrap_or_else(|| config.hostname.clone()),
                email: config
                    .verify
                    .report_from
                    .clone()
                    .unwrap_or_else(|| format!("noreply-dmarc@{}", config.hostname)),
            },
            collector: Arc::clone(collector),
            dns: dns.clone(),
        };
        let mut stop = controller.handle();
        tokio::spawn(reports.run(store.clone(), async move { stop.recv().await }));
    }
    if config.relay.enabled {
        let relay = build_relay(&config, store.clone(), Some(hickory.clone()))?;
        let mut stop = controller.handle();
        tokio::spawn(relay.run(async move { stop.recv().await }));
        match &config.relay.smarthost {
            Some(h) => writeln!(out, "postamt: relay       sending via smarthost {h}")?,
            None => writeln!(
                out,
                "postamt: relay       sending to MX hosts on port {}",
                config.relay.port
            )?,
        }
    } else {
        writeln!(
            out,
            "postamt: relay       off: mail for other domains stays in the queue"
        )?;
    }
    if dev {
        writeln!(
            out,
            "postamt: web         http://localhost:2080 (alice administers the playground)"
        )?;
        writeln!(
            out,
            "postamt: playground data in {}",
            config.data_dir.display()
        )?;
        writeln!(
            out,
            "postamt: dns         listening on 127.0.0.1:{} (the spoofing lab: bank.test, shop.test, friend.test, lists.test)",
            crate::lab::PORT
        )?;
        writeln!(
            out,
            "postamt: users alice@postamt.test (password alice), bob@postamt.test (password bob)"
        )?;
        writeln!(
            out,
            "postamt: try   telnet localhost 2110   then USER alice@postamt.test / PASS alice / STAT / RETR 1 / QUIT"
        )?;
        if let Ok(fp) = postamt_server::tls::fingerprint(tls.cert_path()) {
            writeln!(
                out,
                "postamt: TLS certificate {} sha256:{fp}",
                tls.cert_path().display()
            )?;
        }
    }
    // Signal handlers first: a SIGTERM right after "ready" must already be
    // a graceful shutdown, not the default action (exit without goodbyes).
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    writeln!(out, "postamt: ready")?;
    out.flush()?;
    drop(out);

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "TLS reload failed; keeping the old certificate"),
            },
        }
    }
    tracing::info!("shutting down");
    let grace = Duration::from_secs(config.limits.shutdown_grace);
    if !controller.shutdown(grace).await {
        tracing::warn!("some sessions did not finish within the grace period");
    }
    // Dropping the last store handle joins the writer: every acknowledged
    // write is committed before the process exits.
    drop((pop3, imap, smtp, submission, lmtp));
    drop(ctx);
    tokio::task::spawn_blocking(move || drop(store)).await?;
    println!("postamt: stopped");
    Ok(())
}

/// The web interface from `[web]` and the listeners (what autoconfig
/// tells mail clients).
fn build_web(
    config: &Config,
    store: &SharedStore,
    submission: &Arc<Smtp>,
    ctx: &Arc<ServerContext>,
    controller: &ShutdownController,
    hickory: &hickory_resolver::TokioResolver,
    dns: &postamt_auth::resolver::DnsSettings,
) -> Result<Arc<postamt_web::Web>> {
    let w = &config.web;
    let clients = postamt_web::ClientSettings {
        hostname: w
            .client_hostname
            .clone()
            .unwrap_or_else(|| config.hostname.clone()),
        // Filled in once the listeners are bound (Web::set_listeners).
        ..Default::default()
    };
    let verifier = postamt_auth::dkim::authenticator(dns)
        .map(|a| Arc::new(postamt_auth::dkim::Verifier(a)))
        .ok();
    let shared: SharedStore = Arc::clone(store);
    let host = crate::web::WebHost {
        config: config.clone(),
        store: shared.clone(),
        submission: Arc::clone(submission),
        ctx: Arc::clone(ctx),
        shutdown: controller.handle(),
        resolver: postamt_auth::resolver::Resolver::new(hickory.clone()),
        verifier,
    };
    Ok(postamt_web::Web::new(
        shared,
        Arc::clone(&ctx.auth),
        config.transcripts.enabled.then(|| config.transcript_dir()),
        Arc::new(host),
        postamt_web::WebConfig {
            hostname: config.hostname.clone(),
            admins: w.admins.iter().map(|a| a.to_lowercase()).collect(),
            session_idle: Duration::from_secs(w.session_idle.max(60)),
            session_max: Duration::from_secs(w.session_max.max(60)),
            max_sessions: w.max_sessions.max(1),
            max_body: w.max_body.max(64 * 1024),
            page_size: w.page_size,
            header_timeout: Duration::from_secs(w.header_timeout.max(1)),
            // Above the longest long poll (30 s) and compose (120 s).
            request_timeout: Duration::from_secs(w.request_timeout.max(150)),
            max_connections: w.max_connections.max(1),
            max_connections_per_ip: w.max_connections_per_ip.max(1),
            clients,
        },
    ))
}

/// The outbound MTA from `[relay]`, `[dns]` and `[dkim]`.
pub fn build_relay(
    config: &Config,
    store: SharedStore,
    resolver: Option<hickory_resolver::TokioResolver>,
) -> Result<Arc<postamt_relay::Relay>> {
    use postamt_relay::client::{ClientSettings, Login, Timeouts, TlsPolicy, tls_config};
    let r = &config.relay;
    let secs = |s: u64| Duration::from_secs(s.max(1));
    let password = match (&r.smarthost_password, &r.smarthost_password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("[relay] smarthost_password_file {}", f.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        _ => None,
    };
    let client = ClientSettings {
        helo_name: config.hostname.clone(),
        tls: match r.tls.as_str() {
            "required" => TlsPolicy::Required,
            "off" => TlsPolicy::Off,
            _ => TlsPolicy::Opportunistic,
        },
        tls_config: tls_config(r.tls_verify, &r.tls_ca_file)
            .map_err(|e| anyhow::anyhow!("[relay] {e}"))?,
        timeouts: Timeouts {
            connect: secs(r.connect_timeout),
            greeting: secs(r.greeting_timeout),
            command: secs(r.command_timeout),
            data_block: secs(r.data_block_timeout),
            data_end: secs(r.data_end_timeout),
        },
        auth: r
            .smarthost_user
            .clone()
            .zip(password)
            .map(|(user, password)| Login {
                user,
                password: password.into(),
            }),
    };
    let relay_config = postamt_relay::RelayConfig {
        hostname: config.hostname.clone(),
        port: r.port,
        smarthost: r
            .smarthost
            .as_deref()
            .map(|h| config.smarthost(h))
            .transpose()?,
        client,
        dns: config.dns.settings()?,
        resolver,
        retry_initial: secs(r.retry_initial),
        retry_max: secs(r.retry_max.max(r.retry_initial)),
        max_lifetime: Duration::from_secs(r.max_lifetime),
        delay_warning: (r.delay_warning > 0).then(|| Duration::from_secs(r.delay_warning)),
        destination_concurrency: r.destination_concurrency.max(1),
        max_connections: r.max_connections.max(1),
        messages_per_connection: r.messages_per_connection.max(1),
        connection_idle: Duration::from_secs(r.connection_cache_time),
        max_active: r.max_active.max(1),
        max_received: config.smtp.max_received,
        bounce_size_limit: r.bounce_size_limit,
        dkim_dir: config.dkim.sign.then(|| config.dkim_dir()),
    };
    postamt_relay::Relay::new(store, relay_config).map_err(|e| anyhow::anyhow!("[dns] {e}"))
}

const WELCOME: &str = include_str!("welcome.txt");

/// First start of the playground: the demo users, each with a welcome
/// message that explains how to try the protocols by hand.
fn seed_playground(store: &dyn Store) -> Result<()> {
    store.add_domain("postamt.test")?;
    // RFC 5321 §4.5.1: every mail domain has a postmaster.
    if store.alias_targets("postmaster@postamt.test")?.is_empty() {
        store.add_alias(
            "postmaster@postamt.test",
            &["alice@postamt.test".to_string()],
        )?;
    }
    for (user, pw) in [("alice@postamt.test", "alice"), ("bob@postamt.test", "bob")] {
        if store.account(user)?.is_some() {
            continue;
        }
        store.create_account(user, pw)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let local = user.split('@').next().unwrap_or(user);
        let msg = WELCOME
            .replace("{local}", local)
            .replace("{to}", user)
            .replace("{user}", user)
            .replace("{password}", pw)
            .replace("{date}", &postamt_wire::time::rfc5322_date(now));
        postamt_mda::deliver(
            store,
            "postmaster@postamt.test",
            &[user.to_string()],
            msg.as_bytes(),
            now as i64,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}
