//! The outbound MTA: takes what the SMTP side put into the durable queue
//! and passes it on — to the domain's mail exchangers (or a smarthost), to
//! local mailboxes for notifications addressed to local senders — retrying
//! with backoff, and telling the sender (RFC 3464) when it cannot.
//!
//! * [`route`]: MX lookup (RFC 5321 §5.1, RFC 7505 null MX), smarthost.
//! * [`client`]: the SMTP client on top of the sans-IO
//!   [`postamt_wire::smtp`].
//! * [`postamt_smtp::dsn`]: delivery status notifications.
//! * [`dkim`]: signing of outbound mail, key generation, verification.
//! * [`report`]: DMARC aggregate reports (RFC 9990), queued like any mail.
//!
//! The scheduler here claims due entries from the store (marking them
//! active), splits each entry's pending recipients by destination, and
//! hands each part as a job to that destination's workers: at most
//! `destination_concurrency` connections per destination, each sending job
//! after job over one connection. A recipient the remote server accepted is
//! recorded as delivered at once (durably); failures and deferrals are
//! recorded together with the notifications that report them when the
//! entry's attempt ends. A crash between a remote `250` and that record
//! sends that recipient's message once more: delivery is at-least-once.

pub mod client;
pub mod dkim;
pub mod report;
pub mod route;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{ClientSettings, Connection, Envelope, Outcome, Recipient};
use postamt_smtp::dsn::{self, Action, Report, Reporter};
use postamt_store::{
    Change, OutboundEnvelope, QueueEntry, QueueId, QueueSettle, QueuedRecipient, RecipientStatus,
    SharedStore, StoreError, blocking,
};
use route::{DnsSettings, Host, RouteError, Router};
use tokio::sync::{Notify, Semaphore, oneshot};

/// `[relay]` and `[dns]`, resolved.
#[derive(Clone)]
pub struct RelayConfig {
    pub hostname: String,
    /// Port of the remote MTAs (25; tests point it elsewhere).
    pub port: u16,
    /// Send everything to this host:port instead of the MX hosts.
    pub smarthost: Option<(String, u16)>,
    pub client: ClientSettings,
    pub dns: DnsSettings,
    /// The server's resolver, whose cache mail authentication shares;
    /// `None`: one of the relay's own, built from `dns`.
    pub resolver: Option<hickory_resolver::TokioResolver>,
    /// First retry delay; doubles per attempt up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Give up (bounce) after this long in the queue.
    pub max_lifetime: Duration,
    /// Send one "delayed" notice after this long (`None`: never).
    pub delay_warning: Option<Duration>,
    /// Connections per destination (Postfix: default_destination_concurrency_limit).
    pub destination_concurrency: usize,
    /// Outbound connections in all.
    pub max_connections: usize,
    /// Messages sent over one connection before it is closed.
    pub messages_per_connection: usize,
    /// How long an idle connection waits for the next message to its
    /// destination (Postfix: smtp_connection_cache_time_limit, 2 s).
    pub connection_idle: Duration,
    /// Entries attempted at once.
    pub max_active: usize,
    /// More `Received:` fields than this: a mail loop (bounce, 5.4.6).
    pub max_received: usize,
    /// Larger messages come back as headers only in a bounce.
    pub bounce_size_limit: usize,
    /// `<data_dir>/dkim`; `None`: never sign.
    pub dkim_dir: Option<PathBuf>,
}

struct Job {
    queue_id: QueueId,
    domain: String,
    sender: String,
    envelope: OutboundEnvelope,
    rcpts: Vec<QueuedRecipient>,
    content: Arc<Vec<u8>>,
    done: oneshot::Sender<JobResult>,
}

/// What a worker reports for a job: one outcome per recipient, in order.
struct JobResult {
    outcomes: Vec<Outcome>,
    remote: Option<String>,
    /// The server accepted DSN parameters (it reports success itself).
    remote_dsn: bool,
}

#[derive(Default)]
struct Destination {
    jobs: VecDeque<Job>,
    workers: usize,
    /// Workers holding an open connection, waiting for a job.
    idle: usize,
    wake: Arc<Notify>,
}

pub struct Relay {
    store: SharedStore,
    config: RelayConfig,
    router: Router,
    signer: Option<dkim::Signer>,
    reporter: Reporter,
    destinations: Mutex<HashMap<String, Destination>>,
    connections: Arc<Semaphore>,
    active: Mutex<usize>,
    wake: Notify,
    /// Scheduling passes (claim + next-due queries) since the start.
    passes: std::sync::atomic::AtomicU64,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

impl Relay {
    pub fn new(store: SharedStore, config: RelayConfig) -> Result<Arc<Relay>, String> {
        let router = match &config.resolver {
            Some(r) => Router::with_resolver(r.clone(), config.port),
            None => Router::new(&config.dns, config.port)?,
        };
        let reporter = Reporter {
            hostname: config.hostname.clone(),
            return_limit: config.bounce_size_limit,
            max_lifetime: config.max_lifetime.as_secs() as i64,
        };
        Ok(Arc::new(Relay {
            store,
            router,
            signer: config.dkim_dir.clone().map(dkim::Signer::new),
            reporter,
            destinations: Mutex::new(HashMap::new()),
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            active: Mutex::new(0),
            wake: Notify::new(),
            passes: std::sync::atomic::AtomicU64::new(0),
            config,
        }))
    }

    /// How many times the scheduler has looked for due entries: once at
    /// start, then once per queue change, finished attempt or due time.
    pub fn scheduling_passes(&self) -> u64 {
        self.passes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The scheduler: runs until `stop` completes. Woken by the store's
    /// change feed when something is queued, by finished attempts, and by
    /// the clock when the next entry falls due.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let store = Arc::clone(&self.store);
        match blocking(move || store.queue_release_claims()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                entries = n,
                "queue: attempts cut short by the last stop are due again"
            ),
            Err::<_, StoreError>(e) => tracing::warn!(error = %e, "queue: cannot release claims"),
        }
        let mut changes = self.store.watch();
        tokio::pin!(stop);
        loop {
            self.passes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let free = {
                let active = *self.active.lock().unwrap_or_else(|e| e.into_inner());
                self.config.max_active.saturating_sub(active)
            };
            if free > 0 {
                let store = Arc::clone(&self.store);
                let limit = free.min(512);
                match blocking(move || store.queue_claim(now(), limit)).await {
                    Ok(entries) => {
                        for entry in entries {
                            *self.active.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                            let relay = Arc::clone(&self);
                            tokio::spawn(async move {
                                let id = entry.id;
                                relay.attempt(entry).await;
                                *relay.active.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                                relay.wake.notify_one();
                                tracing::trace!(queue_id = id.0, "attempt finished");
                            });
                        }
                    }
                    Err::<_, StoreError>(e) => tracing::warn!(error = %e, "queue: cannot read"),
                }
            }
            let store = Arc::clone(&self.store);
            let next = blocking(move || store.queue_next_due())
                .await
                .unwrap_or(None);
            let wait = match next {
                Some(t) if free > 0 => Duration::from_secs((t - now()).clamp(0, 60) as u64),
                _ => Duration::from_secs(60),
            };
            // Something due right now but no room: wait for an attempt to end.
            let wait = if wait.is_zero() && free == 0 {
                Duration::from_secs(60)
            } else if wait.is_zero() {
                Duration::from_millis(200)
            } else {
                wait
            };
            // Wait for something that can change what is due: only queue
            // changes count. Deliveries into mailboxes (most changes under
            // inbound load) do not, and must not cost a claim query each.
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = self.wake.notified() => break,
                    c = changes.recv() => match c {
                        Ok(Change::Queued | Change::External) => break,
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            changes = self.store.watch();
                            break;
                        }
                    },
                    _ = &mut sleep => break,
                }
            }
        }
    }

    /// One attempt at one entry: every pending recipient is tried once.
    async fn attempt(self: &Arc<Self>, entry: QueueEntry) {
        let id = entry.id;
        let store = Arc::clone(&self.store);
        let loaded = blocking(move || store.queue_entry(id)).await;
        let (entry, content) = match loaded {
            Ok(Some(x)) => x,
            Ok(None) => return,
            Err::<_, StoreError>(e) => {
                tracing::warn!(queue_id = id.0, error = %e, "queue: cannot load entry");
                return;
            }
        };
        let started = now();
        let pending: Vec<QueuedRecipient> = entry
            .recipients
            .iter()
            .filter(|r| r.status == RecipientStatus::Pending)
            .cloned()
            .collect();
        let mut results: Vec<(QueuedRecipient, Outcome, Option<String>, bool)> = Vec::new();
        let expired = started >= entry.created + self.config.max_lifetime.as_secs() as i64;
        let hops = count_received(&content);
        if hops > self.config.max_received {
            for r in pending {
                let d = format!(
                    "mail loop: {hops} Received: header fields (more than {})",
                    self.config.max_received
                );
                results.push((r, Outcome::Failed("5.4.6".into(), d), None, false));
            }
        } else if expired {
            for r in pending {
                let d = r
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "delivery time expired".into());
                let d = format!(
                    "delivery time expired (in the queue since {}); last error: {d}",
                    entry.created
                );
                results.push((r, Outcome::Failed("4.4.7".into(), d), None, false));
            }
        } else {
            results = self.deliver(&entry, content.clone(), pending).await;
        }
        self.settle(&entry, &content, results, started).await;
    }

    /// Hands the recipients to local delivery or the destinations' workers
    /// and collects what became of each.
    async fn deliver(
        self: &Arc<Self>,
        entry: &QueueEntry,
        content: Vec<u8>,
        pending: Vec<QueuedRecipient>,
    ) -> Vec<(QueuedRecipient, Outcome, Option<String>, bool)> {
        let store = Arc::clone(&self.store);
        let domains = blocking(move || store.domains()).await.unwrap_or_default();
        let is_local = |d: &str| domains.iter().any(|l| l.eq_ignore_ascii_case(d));
        let mut results = Vec::new();
        let mut remote: Vec<(String, Vec<QueuedRecipient>)> = Vec::new();
        for r in pending {
            let d = domain_of(&r.address);
            if is_local(&d) {
                let outcome = self.deliver_locally(entry, &content, &r).await;
                results.push((r, outcome, None, false));
                continue;
            }
            let key = if self.config.smarthost.is_some() {
                String::new()
            } else {
                d
            };
            match remote.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(r),
                None => remote.push((key, vec![r])),
            }
        }
        if remote.is_empty() {
            return results;
        }
        let content = Arc::new(self.sign(content));
        let mut waiting = Vec::new();
        for (domain, rcpts) in remote {
            let (tx, rx) = oneshot::channel();
            let job = Job {
                queue_id: entry.id,
                domain: domain.clone(),
                sender: entry.sender.clone(),
                envelope: entry.envelope.clone(),
                rcpts: rcpts.clone(),
                content: Arc::clone(&content),
                done: tx,
            };
            self.submit(job);
            waiting.push((rcpts, rx));
        }
        for (rcpts, rx) in waiting {
            match rx.await {
                Ok(res) => {
                    for (r, o) in rcpts.into_iter().zip(res.outcomes) {
                        results.push((r, o, res.remote.clone(), res.remote_dsn));
                    }
                }
                Err(_) => {
                    for r in rcpts {
                        let o = Outcome::Deferred("4.3.0".into(), "relay worker stopped".into());
                        results.push((r, o, None, false));
                    }
                }
            }
        }
        results
    }

    async fn deliver_locally(
        &self,
        entry: &QueueEntry,
        content: &[u8],
        r: &QueuedRecipient,
    ) -> Outcome {
        let store = Arc::clone(&self.store);
        let (sender, address, content, id) = (
            entry.sender.clone(),
            r.address.clone(),
            content.to_vec(),
            entry.id,
        );
        let result = blocking(move || {
            let report = postamt_mda::deliver(
                &*store,
                &sender,
                std::slice::from_ref(&address),
                &content,
                now(),
            );
            if report.is_ok() {
                store.queue_delivered(id, &[address])?;
            }
            Ok::<_, StoreError>(report)
        })
        .await;
        use postamt_mda::DeliveryError as E;
        match result {
            Ok(Ok(_)) => Outcome::Delivered("delivered to a local mailbox".into()),
            Ok(Err(E::UnknownRecipient(a))) => Outcome::Failed(
                "5.1.1".into(),
                format!("x-postamt; unknown local recipient {a}"),
            ),
            Ok(Err(E::OverQuota(a))) => Outcome::Deferred(
                "4.2.2".into(),
                format!("x-postamt; mailbox of {a} is over quota"),
            ),
            Ok(Err(e)) => Outcome::Deferred("4.3.0".into(), format!("x-postamt; {e}")),
            Err(e) => Outcome::Deferred("4.3.0".into(), format!("x-postamt; {e}")),
        }
    }

    /// Adds a DKIM signature for the author's domain when we hold its key.
    fn sign(&self, content: Vec<u8>) -> Vec<u8> {
        let Some(signer) = &self.signer else {
            return content;
        };
        let Some(domain) = author_domain(&content) else {
            return content;
        };
        match signer.sign(&domain, &content) {
            Some(mut header) => {
                header.extend_from_slice(&content);
                header
            }
            None => content,
        }
    }

    fn submit(self: &Arc<Self>, job: Job) {
        let key = job.domain.clone();
        let spawn = {
            let mut dests = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
            let d = dests.entry(key.clone()).or_default();
            d.jobs.push_back(job);
            let limit = self.config.destination_concurrency.max(1);
            if d.idle > 0 {
                // An open connection is waiting: it takes the job.
                d.wake.notify_one();
                false
            } else if d.workers < limit && d.workers < d.jobs.len() {
                d.workers += 1;
                true
            } else {
                false
            }
        };
        if spawn {
            let relay = Arc::clone(self);
            tokio::spawn(async move { relay.worker(key).await });
        }
    }

    /// The destination's next job. With `keep` (an open, reusable
    /// connection), waits up to `connection_idle` for one to arrive before
    /// giving up; giving up retires the worker.
    async fn next_job(&self, key: &str, keep: bool) -> Option<Job> {
        let mut waited = !keep;
        loop {
            let wake = {
                let mut dests = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
                let d = dests.get_mut(key)?;
                if let Some(job) = d.jobs.pop_front() {
                    return Some(job);
                }
                if waited {
                    d.workers -= 1;
                    if d.workers == 0 {
                        dests.remove(key);
                    }
                    return None;
                }
                d.idle += 1;
                Arc::clone(&d.wake)
            };
            let _ = tokio::time::timeout(self.config.connection_idle, wake.notified()).await;
            waited = true;
            let mut dests = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(d) = dests.get_mut(key) {
                d.idle -= 1;
            }
        }
    }

    async fn route(&self, key: &str) -> Result<Vec<Host>, RouteError> {
        match &self.config.smarthost {
            Some((host, port)) => Ok(vec![self.router.smarthost(host, *port).await?]),
            None => self.router.route(key).await,
        }
    }

    /// Sends the destination's jobs one after another over one connection.
    async fn worker(self: Arc<Self>, key: String) {
        let _permit = Arc::clone(&self.connections).acquire_owned().await;
        let mut conn: Option<Connection> = None;
        let mut sent = 0;
        loop {
            let keep = conn.as_ref().is_some_and(|c| c.is_usable())
                && sent < self.config.messages_per_connection.max(1);
            let Some(job) = self.next_job(&key, keep).await else {
                break;
            };
            let reuse = conn.as_ref().is_some_and(|c| c.is_usable())
                && sent < self.config.messages_per_connection.max(1);
            if !reuse {
                if let Some(c) = conn.take() {
                    c.quit().await;
                }
                sent = 0;
                let opened = match self.route(&key).await {
                    Ok(hosts) => Connection::open(&hosts, &self.config.client)
                        .await
                        .map_err(|e| {
                            let o = if e.permanent {
                                Outcome::Failed(e.status.clone(), format!("smtp; {}", e.text))
                            } else {
                                Outcome::Deferred(e.status.clone(), e.text.clone())
                            };
                            (o, Some(e.text))
                        }),
                    Err(RouteError::Permanent(s, t)) => Err((Outcome::Failed(s.into(), t), None)),
                    Err(RouteError::Transient(s, t)) => Err((Outcome::Deferred(s.into(), t), None)),
                };
                match opened {
                    Ok(c) => conn = Some(c),
                    Err((outcome, _)) => {
                        // The destination answers the same for every job
                        // waiting for it now: report them all.
                        self.fail_job(job, &outcome);
                        while let Some(j) = self.next_job(&key, false).await {
                            self.fail_job(j, &outcome);
                        }
                        return;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { break };
            let env = Envelope {
                sender: &job.sender,
                ret: job.envelope.ret.as_deref(),
                envid: job.envelope.envid.as_deref(),
                body: job.envelope.body.as_deref(),
                smtputf8: job.envelope.smtputf8,
            };
            let rcpts: Vec<Recipient> = job
                .rcpts
                .iter()
                .map(|r| Recipient {
                    address: &r.address,
                    notify: r.notify.as_deref(),
                    orcpt: r.orcpt.as_deref(),
                })
                .collect();
            let result = c.transaction(&env, &rcpts, &job.content).await;
            sent += 1;
            let remote = Some(c.remote.clone());
            let remote_dsn = c.capabilities().dsn;
            let outcomes = match result {
                Ok(o) => o,
                Err(e) => {
                    conn = None;
                    job.rcpts
                        .iter()
                        .map(|_| Outcome::Deferred(e.status.clone(), e.text.clone()))
                        .collect()
                }
            };
            let delivered: Vec<String> = job
                .rcpts
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| matches!(o, Outcome::Delivered(_)))
                .map(|(r, _)| r.address.clone())
                .collect();
            for (r, o) in job.rcpts.iter().zip(&outcomes) {
                log_outcome(job.queue_id, &r.address, remote.as_deref(), o);
            }
            if !delivered.is_empty() {
                let (store, id) = (Arc::clone(&self.store), job.queue_id);
                if let Err::<_, StoreError>(e) =
                    blocking(move || store.queue_delivered(id, &delivered)).await
                {
                    tracing::error!(queue_id = id.0, error = %e, "cannot record a delivery: it will be sent again");
                }
            }
            let _ = job.done.send(JobResult {
                outcomes,
                remote,
                remote_dsn,
            });
        }
        if let Some(c) = conn {
            c.quit().await;
        }
    }

    fn fail_job(&self, job: Job, outcome: &Outcome) {
        for r in &job.rcpts {
            log_outcome(job.queue_id, &r.address, None, outcome);
        }
        let _ = job.done.send(JobResult {
            outcomes: job.rcpts.iter().map(|_| outcome.clone()).collect(),
            remote: None,
            remote_dsn: false,
        });
    }

    /// Records the attempt and queues the notifications it calls for.
    async fn settle(
        &self,
        entry: &QueueEntry,
        content: &[u8],
        results: Vec<(QueuedRecipient, Outcome, Option<String>, bool)>,
        started: i64,
    ) {
        let mut settle = QueueSettle::default();
        let (mut failed, mut delayed, mut succeeded) = (vec![], vec![], vec![]);
        let lifetime = self.config.max_lifetime.as_secs() as i64;
        let warn_now = self
            .config
            .delay_warning
            .is_some_and(|w| !entry.warned && started - entry.created >= w.as_secs() as i64);
        let mut max_attempts = 0;
        for (r, outcome, remote, remote_dsn) in results {
            match outcome {
                Outcome::Delivered(reply) => {
                    let local = remote.is_none();
                    let action = if local {
                        Action::Delivered
                    } else if !remote_dsn {
                        // RFC 3461 §5.2.2: the next hop cannot report.
                        Action::Relayed
                    } else {
                        continue;
                    };
                    if dsn::wanted(&entry.sender, &r, action) {
                        succeeded.push(Report {
                            recipient: r,
                            action,
                            status: "2.0.0".into(),
                            diagnostic: if local {
                                format!("x-postamt; {reply}")
                            } else {
                                format!("smtp; {reply}")
                            },
                            remote_mta: remote,
                        });
                    }
                }
                Outcome::Failed(status, diagnostic) => {
                    settle
                        .failed
                        .push((r.address.clone(), format!("{status} {diagnostic}")));
                    if dsn::wanted(&entry.sender, &r, Action::Failed) {
                        failed.push(Report {
                            recipient: r,
                            action: Action::Failed,
                            status,
                            diagnostic,
                            remote_mta: remote,
                        });
                    }
                }
                Outcome::Deferred(status, diagnostic) => {
                    settle
                        .deferred
                        .push((r.address.clone(), format!("{status} {diagnostic}")));
                    max_attempts = max_attempts.max(r.attempts + 1);
                    if warn_now && dsn::wanted(&entry.sender, &r, Action::Delayed) {
                        delayed.push(Report {
                            recipient: r,
                            action: Action::Delayed,
                            status,
                            diagnostic,
                            remote_mta: remote,
                        });
                    }
                }
            }
        }
        let t = now();
        for reports in [failed, delayed, succeeded] {
            if !reports.is_empty() {
                settle
                    .notices
                    .push(self.reporter.notice(entry, content, &reports, t));
            }
        }
        settle.warned = warn_now;
        let backoff = backoff(
            self.config.retry_initial,
            self.config.retry_max,
            max_attempts.saturating_sub(1),
        );
        // Never later than the moment the entry expires.
        settle.next_attempt = (t + backoff.as_secs() as i64)
            .min(entry.created + lifetime)
            .max(t);
        let (store, id) = (Arc::clone(&self.store), entry.id);
        if let Err::<_, StoreError>(e) = blocking(move || store.queue_settle(id, settle)).await {
            tracing::error!(queue_id = id.0, error = %e, "queue: cannot record the attempt");
        }
    }
}

/// `initial · 2^n`, at most `max` (RFC 5321 §4.5.4.1: at least 30 minutes
/// between retries is suggested for the Internet; the defaults start at a
/// minute so a brief outage costs little, and the cap is an hour).
pub fn backoff(initial: Duration, max: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(30)).unwrap_or(u32::MAX);
    initial
        .saturating_mul(factor)
        .min(max)
        .max(Duration::from_secs(1))
}

fn log_outcome(id: QueueId, to: &str, relay: Option<&str>, o: &Outcome) {
    let relay = relay.unwrap_or("none");
    match o {
        Outcome::Delivered(r) => tracing::info!(queue_id = id.0, to, relay, status = "sent", "{r}"),
        Outcome::Failed(s, d) => {
            tracing::info!(queue_id = id.0, to, relay, status = "bounced", dsn = %s, "{d}")
        }
        Outcome::Deferred(s, d) => {
            tracing::info!(queue_id = id.0, to, relay, status = "deferred", dsn = %s, "{d}")
        }
    }
}

/// `Received:` fields in the header (RFC 5321 §6.3 loop detection).
fn count_received(content: &[u8]) -> usize {
    let h = postamt_wire::meta::header_len(content);
    content[..h]
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 9 && l[..9].eq_ignore_ascii_case(b"received:"))
        .count()
}

/// The domain of the first `From:` address (the author, whom DMARC aligns
/// the DKIM `d=` with).
fn author_domain(content: &[u8]) -> Option<String> {
    let h = postamt_wire::meta::header_len(content);
    let msg = mail_parser::MessageParser::new().parse_headers(&content[..h])?;
    let from = msg.from()?.first()?.address()?;
    Some(domain_of(from)).filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deliveries into local mailboxes are most of the change feed under
    /// inbound load; the scheduler must not run a claim query for each
    /// (it did: two blocking-pool queries per delivered message).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_deliveries_do_not_wake_the_scheduler() {
        use postamt_store::{Outbound, SqliteOptions, SqliteStore};
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore =
            Arc::new(SqliteStore::open(SqliteOptions::new(dir.path().join("store"))).unwrap());
        store.add_domain("local.test").unwrap();
        store.create_account("u@local.test", "pw").unwrap();
        let config = RelayConfig {
            hostname: "local.test".into(),
            port: 25,
            smarthost: None,
            client: ClientSettings {
                helo_name: "local.test".into(),
                tls: client::TlsPolicy::Off,
                tls_config: client::tls_config(false, std::path::Path::new("-")).unwrap(),
                timeouts: client::Timeouts::default(),
                auth: None,
            },
            // Nothing answers there: the one queued entry just defers.
            dns: route::DnsSettings {
                nameservers: vec!["127.0.0.1:9".parse().unwrap()],
                timeout: Some(Duration::from_millis(200)),
            },
            resolver: None,
            retry_initial: Duration::from_secs(3600),
            retry_max: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(86400),
            delay_warning: None,
            destination_concurrency: 1,
            max_connections: 1,
            messages_per_connection: 1,
            connection_idle: Duration::from_secs(1),
            max_active: 1,
            max_received: 50,
            bounce_size_limit: 1 << 20,
            dkim_dir: None,
        };
        let relay = Relay::new(Arc::clone(&store), config).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(Arc::clone(&relay).run(async move {
            let _ = stop_rx.await;
        }));
        let passes_reach = |n: u64| {
            let relay = Arc::clone(&relay);
            tokio::time::timeout(Duration::from_secs(10), async move {
                while relay.scheduling_passes() < n {
                    tokio::task::yield_now().await;
                }
            })
        };
        passes_reach(1).await.expect("first pass");
        let before = relay.scheduling_passes();
        let msg = b"From: a@remote.test\r\nSubject: s\r\n\r\nbody\r\n";
        for _ in 0..200 {
            let s = Arc::clone(&store);
            tokio::task::spawn_blocking(move || {
                postamt_mda::deliver(&*s, "a@remote.test", &["u@local.test".into()], msg, 0)
            })
            .await
            .unwrap()
            .unwrap();
        }
        // A queued entry does wake it; the change feed is in order, so
        // once that pass has run every delivery's change has been seen.
        store
            .enqueue(Outbound {
                sender: "u@local.test".into(),
                recipients: vec![QueuedRecipient::new("x@remote.test")],
                envelope: OutboundEnvelope::default(),
                content: msg.to_vec(),
            })
            .unwrap();
        passes_reach(before + 1)
            .await
            .expect("pass for the queued entry");
        let woken = relay.scheduling_passes() - before;
        assert!(
            woken <= 5,
            "{woken} scheduling passes for 200 local deliveries and 1 queued entry"
        );
        let _ = stop_tx.send(());
        task.await.unwrap();
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (i, m) = (Duration::from_secs(60), Duration::from_secs(3600));
        assert_eq!(backoff(i, m, 0), Duration::from_secs(60));
        assert_eq!(backoff(i, m, 1), Duration::from_secs(120));
        assert_eq!(backoff(i, m, 5), Duration::from_secs(1920));
        assert_eq!(backoff(i, m, 6), Duration::from_secs(3600));
        assert_eq!(backoff(i, m, 1000), Duration::from_secs(3600));
    }

    #[test]
    fn loops_are_counted_in_the_header_only() {
        let m = b"Received: a\r\nreceived: b\r\nSubject: x\r\n\r\nReceived: not a header\r\n";
        assert_eq!(count_received(m), 2);
    }

    #[test]
    fn author_domain_comes_from_the_from_field() {
        let m = b"Subject: x\r\nFrom: Alice <alice@Example.ORG>\r\n\r\nhi\r\n";
        assert_eq!(author_domain(m).as_deref(), Some("example.org"));
        assert_eq!(author_domain(b"Subject: x\r\n\r\n"), None);
    }
}
