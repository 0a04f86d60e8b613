//! The web interface's hooks into the rest of the server (the
//! [`postamt_web::Host`] trait): header analysis with the server's
//! configuration, `domain check` through `[dns]`, the DKIM key directory,
//! listeners and counters, and compose, which submits through a real
//! submission session held over an in-memory pipe.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postamt_server::{Connection, ServerContext, SessionContext, Shutdown};
use postamt_smtp::Smtp;
use postamt_store::{Account, SharedStore};
use postamt_web::{BoxFuture, DkimKey, DomainRecord, Host, Submitted};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Config;

pub struct WebHost {
    pub config: Config,
    pub store: SharedStore,
    pub submission: Arc<Smtp>,
    pub ctx: Arc<ServerContext>,
    pub shutdown: Shutdown,
    pub resolver: postamt_auth::resolver::Resolver,
    pub verifier: Option<Arc<postamt_auth::dkim::Verifier>>,
}

/// Time the DNS re-checks of an analysis may take.
const RECHECK_LIMIT: Duration = Duration::from_secs(5);

impl Host for WebHost {
    fn analyze(&self, message: Vec<u8>) -> BoxFuture<postamt_analyze::Analysis> {
        let stored = self.store.domains().unwrap_or_default();
        let options = crate::analyze::options_with(
            Some(&self.config),
            &stored,
            postamt_analyze::text::Lang::En,
            &[],
        )
        .unwrap_or_default();
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let mut o = options;
            if let Some(v) = verifier {
                o.recheck = Some(crate::analyze::recheck_with(&v, &message, RECHECK_LIMIT).await);
            }
            tokio::task::spawn_blocking(move || postamt_analyze::analyze(&message, &o))
                .await
                .unwrap_or_else(|_| {
                    postamt_analyze::analyze(b"", &postamt_analyze::Options::default())
                })
        })
    }

    fn domain_check(&self, domain: String) -> BoxFuture<Vec<DomainRecord>> {
        let key = postamt_relay::dkim::list(&self.config.dkim_dir())
            .into_iter()
            .find(|(d, _, _)| d.eq_ignore_ascii_case(&domain))
            .map(|(_, selector, record)| (selector, record));
        let resolver = self.resolver.clone();
        let hostname = self.config.hostname.clone();
        Box::pin(async move {
            crate::domain_check::check(&resolver, &domain, &hostname, key)
                .await
                .into_iter()
                .map(|f| DomainRecord {
                    what: f.what.to_string(),
                    ok: f.ok,
                    publish: f.publish,
                    found: f.found,
                    note: f.note,
                })
                .collect()
        })
    }

    fn dkim_keys(&self) -> Vec<DkimKey> {
        postamt_relay::dkim::list(&self.config.dkim_dir())
            .into_iter()
            .map(|(domain, selector, record)| DkimKey {
                algorithm: if record.contains("k=ed25519") {
                    "ed25519".into()
                } else {
                    "rsa".into()
                },
                domain,
                selector,
                record,
                active: true,
            })
            .collect()
    }

    fn dkim_generate(&self, domain: &str, selector: &str) -> Result<DkimKey, String> {
        let dir = self.config.dkim_dir();
        crate::open::create_private_dir(&dir).map_err(|e| e.to_string())?;
        let selector = if selector.is_empty() {
            crate::admin::default_selector()
        } else {
            selector.to_string()
        };
        let g = postamt_relay::dkim::generate(
            &dir,
            domain,
            &selector,
            postamt_relay::dkim::Algorithm::Rsa2048,
        )?;
        Ok(DkimKey {
            domain: domain.to_string(),
            selector,
            algorithm: "rsa".into(),
            record: g.record,
            active: true,
        })
    }

    fn submit(
        &self,
        account: Account,
        peer: SocketAddr,
        from: String,
        recipients: Vec<String>,
        content: Vec<u8>,
    ) -> BoxFuture<Submitted> {
        let submission = Arc::clone(&self.submission);
        let ctx = Arc::clone(&self.ctx);
        let shutdown = self.shutdown.clone();
        let helo = format!("web.{}", self.config.hostname);
        Box::pin(async move {
            submit(
                submission, ctx, shutdown, account, peer, helo, from, recipients, content,
            )
            .await
        })
    }

    fn listeners(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, addrs) in self.config.listen.all() {
            for e in addrs.parse().unwrap_or_default() {
                out.push((name.to_string(), e.to_string()));
            }
        }
        out
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let mut out = vec![(
            "mail connections".to_string(),
            self.ctx.limits.in_use() as u64,
        )];
        if let Ok(list) = postamt_server::transcript::list(&self.config.transcript_dir()) {
            out.push(("transcripts kept".into(), list.len() as u64));
        }
        out
    }
}

/// Time the whole compose dialogue may take.
const SUBMIT_LIMIT: Duration = Duration::from_secs(120);

#[allow(clippy::too_many_arguments)]
async fn submit(
    submission: Arc<Smtp>,
    ctx: Arc<ServerContext>,
    shutdown: Shutdown,
    account: Account,
    peer: SocketAddr,
    helo: String,
    from: String,
    recipients: Vec<String>,
    content: Vec<u8>,
) -> Submitted {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let transcript = ctx
        .transcripts
        .as_ref()
        .and_then(|t| t.start("submission", peer));
    let id = transcript.as_ref().map(|t| t.id().to_string());
    let session = SessionContext {
        server: ctx,
        shutdown,
        transcript,
    };
    let task = tokio::spawn(async move {
        submission
            .session_as(account, Connection::new(server, peer, local), session)
            .await
    });
    let mut dialogue = Vec::new();
    let result = tokio::time::timeout(
        SUBMIT_LIMIT,
        dialogue_with(client, &helo, &from, &recipients, &content, &mut dialogue),
    )
    .await;
    let (accepted, reply) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => (false, format!("the session broke off: {e}")),
        Err(_) => (false, "the session took too long".to_string()),
    };
    let _ = task.await;
    Submitted {
        reply,
        accepted,
        transcript: id,
        dialogue,
    }
}

/// The client side, driven by the SMTP client dialogue the relay and the
/// mail client use (`postamt_wire::smtp::dialogue`): EHLO, MAIL, RCPT per
/// recipient, DATA, QUIT (RFC 5321 §3.3), one command at a time so the
/// transcript reads like the RFC; the content goes to the recipients the
/// server accepted. Returns whether it was accepted, and the deciding
/// reply; `dialogue` gets every line.
async fn dialogue_with(
    stream: tokio::io::DuplexStream,
    helo: &str,
    from: &str,
    recipients: &[String],
    content: &[u8],
    dialogue: &mut Vec<String>,
) -> std::io::Result<(bool, String)> {
    use postamt_wire::smtp::dialogue::{
        Dialogue, Envelope, Options, Outcome, Recipient, Step, TlsPolicy,
    };
    let broken = |e: postamt_wire::smtp::dialogue::Error| std::io::Error::other(e.to_string());
    let shown = |r: &postamt_wire::smtp::ServerReply| format!("{} {}", r.code, r.text());
    let mut options = Options::submission(helo);
    // An in-memory pipe inside this process: nothing to encrypt.
    options.starttls = TlsPolicy::Off;
    options.partial_delivery = true;
    let mut d = Dialogue::new(options);
    let mut stream = stream;
    let mut buf = vec![0u8; 16 * 1024];
    let mut result: Option<(bool, String)> = None;
    loop {
        match d.next_step().map_err(broken)? {
            Step::Send(commands) => {
                let mut out = Vec::new();
                for c in &commands {
                    dialogue.push(format!("C: {}", c.shown()));
                    c.write_to(&mut out);
                }
                stream.write_all(&out).await?;
            }
            Step::SendContent(content) => {
                dialogue.push(format!("C: (the message, {} bytes)", content.bytes().len()));
                dialogue.push("C: .".into());
                stream.write_all(content.bytes()).await?;
            }
            Step::Read(_) => loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                for line in String::from_utf8_lossy(&buf[..n]).lines() {
                    dialogue.push(format!("S: {line}"));
                }
                if d.feed(&buf[..n]) {
                    break;
                }
            },
            Step::Ready if result.is_none() => {
                let rcpts: Vec<Recipient<'_>> = recipients
                    .iter()
                    .map(|a| Recipient {
                        address: a,
                        ..Recipient::default()
                    })
                    .collect();
                let envelope = Envelope {
                    sender: from,
                    ..Envelope::default()
                };
                d.transaction(&envelope, &rcpts, content);
            }
            Step::Done(outcomes) => {
                let delivered = outcomes.iter().find_map(|o| match o {
                    Outcome::Delivered(r) => Some(shown(r)),
                    _ => None,
                });
                let refused = outcomes.iter().find_map(|o| match o {
                    Outcome::Refused(stage, r) => Some(format!("{stage}: {}", shown(r))),
                    Outcome::NotSent(n) => Some(n.describe("the server")),
                    Outcome::Delivered(_) => None,
                });
                result = Some(match (delivered, refused) {
                    (Some(ok), Some(no)) => (true, format!("{ok} (but {no})")),
                    (Some(ok), None) => (true, ok),
                    (None, Some(no)) => (false, no),
                    (None, None) => (false, "no recipient".into()),
                });
                d.quit();
            }
            Step::Ready | Step::Spent => d.quit(),
            Step::StartTls => return Err(std::io::Error::other("STARTTLS in an internal pipe")),
            Step::Closed => break,
        }
    }
    let _ = stream.shutdown().await;
    Ok(result.unwrap_or((false, "the session ended early".into())))
}
