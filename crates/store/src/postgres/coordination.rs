//! [`Coordination`] for PostgreSQL: what the nodes on one database tell
//! each other, through the database (issue 18).
//!
//! - **Changes**: every write sends its [`Change`]s with `pg_notify` inside
//!   its transaction, so the other nodes hear of a commit when it commits
//!   (and never of one that rolled back); the writing node publishes them
//!   to its own watchers right after the commit, and ignores its own
//!   notices when they come back. A payload is bounded (PostgreSQL takes
//!   at most 8000 bytes): a write whose changes do not fit sends the
//!   accounts it touched instead, and the other nodes' sessions of those
//!   accounts re-read.
//! - **The control connection**: one connection per node, outside the
//!   pool, that `LISTEN`s, holds the node's name (a session advisory lock:
//!   a second process with the same name is refused) and the POP3
//!   maildrop locks. When it breaks, it is opened again (backing off up to
//!   5 s); what was said meanwhile is lost, so every watcher is told to
//!   re-read ([`Change::External`], `AccountSignal::external`), and the
//!   maildrop locks this node holds are taken again.
//! - **The maildrop lock** (RFC 1939 §8: one session per maildrop) is
//!   `pg_try_advisory_lock` on the control connection, keyed by the
//!   schema and the account, behind this node's own set (advisory locks
//!   are re-entrant within one connection, so the set keeps the sessions
//!   of one node apart).
//! - **The reporter**: one node sends the DMARC aggregate reports, the
//!   first to ask, while its control connection lives (another advisory
//!   lock); the others find nothing due.
//! - **Queue leases** are renewed here: every third of the lease, the
//!   claims this node holds are extended, so an attempt may take as long
//!   as it takes while its node lives, and a dead node's claims run out.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;

use super::{PgStore, backend, chain, describe, exec};
use crate::model::*;
use crate::signals::Signals;
use crate::{Coordination, Result, StoreError};

/// The largest payload sent whole (PostgreSQL's limit is 8000 bytes).
const MAX_PAYLOAD: usize = 7900;
/// Changes a watcher may fall behind by before it must re-read.
const FEED_CAPACITY: usize = 4096;

/// What one node's notice carries: the node, and either its changes or,
/// when they do not fit, the accounts they touched and whether something
/// was queued.
#[derive(serde::Serialize, serde::Deserialize)]
struct Notice {
    n: String,
    /// The local domains changed: forget the kept list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    d: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<Vec<Change>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    a: Vec<AccountId>,
    #[serde(default)]
    q: bool,
}

/// The change feed, the account signals, and the control connection.
pub(super) struct Control {
    node: String,
    /// The notice channel, one per schema (a database may hold several
    /// stores: the tests' schemas).
    channel: String,
    /// Advisory lock keys: `hashtext` of these and of the node or account.
    node_key: String,
    maildrop_key: String,
    reporter_key: String,
    /// This node sends the DMARC aggregate reports (it holds the reporter
    /// lock on its control connection).
    reporter: std::sync::atomic::AtomicBool,
    feed: broadcast::Sender<Change>,
    signals: Signals,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// The local domains as last read, and when (`directory.rs`).
    pub(super) domains: Mutex<Option<(std::time::Instant, Vec<String>)>>,
    /// The maildrops this node holds.
    held: Mutex<HashSet<AccountId>>,
    handle: tokio::runtime::Handle,
    config: tokio_postgres::Config,
    connector: super::tls::Connector,
}

impl Control {
    /// Opens the control connection (refused if another process is node
    /// `node`), and starts its keeper and the lease renewal on the current
    /// runtime.
    pub(super) async fn start(
        config: tokio_postgres::Config,
        connector: super::tls::Connector,
        node: &str,
        schema: &str,
        pool: Pool,
        lease: Duration,
    ) -> Result<Arc<Control>> {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let control = Arc::new(Control {
            node: node.to_string(),
            channel: format!("postamt.{schema}"),
            node_key: format!("postamt.{schema}.node"),
            maildrop_key: format!("postamt.{schema}.maildrop"),
            reporter_key: format!("postamt.{schema}.reporter"),
            reporter: std::sync::atomic::AtomicBool::new(false),
            feed,
            signals: Signals::default(),
            client: tokio::sync::Mutex::new(None),
            domains: Mutex::new(None),
            held: Mutex::new(HashSet::new()),
            handle: tokio::runtime::Handle::current(),
            config,
            connector,
        });
        let ended = control.connect().await?;
        tokio::spawn(keep(Arc::downgrade(&control), ended));
        tokio::spawn(renew_leases(pool, control.node.clone(), lease));
        Ok(control)
    }

    /// Opens the control connection: LISTEN, the node's lock, the
    /// maildrops held. Returns what ends when the connection does.
    async fn connect(self: &Arc<Control>) -> Result<tokio::task::JoinHandle<()>> {
        let (client, mut connection) =
            self.config
                .connect(self.connector.clone())
                .await
                .map_err(|e| {
                    StoreError::Backend(format!(
                        "cannot connect to PostgreSQL at {}: {}",
                        describe(&self.config),
                        chain(&e)
                    ))
                })?;
        let me = Arc::downgrade(self);
        let ended = tokio::spawn(async move {
            // Drives the connection, and takes the notices it brings.
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => match me.upgrade() {
                        Some(control) => control.heard(n.payload()),
                        None => return,
                    },
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %chain(&e), "PostgreSQL control connection failed");
                        return;
                    }
                }
            }
        });
        let quoted = self.channel.replace('"', "\"\"");
        client
            .batch_execute(&format!("LISTEN \"{quoted}\""))
            .await
            .map_err(backend)?;
        let mine: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))",
                &[&self.node_key, &self.node],
            )
            .await
            .map_err(backend)?
            .get(0);
        if !mine {
            ended.abort();
            return Err(StoreError::Backend(format!(
                "another postamt process is node {:?} on this database: give each node its own [store] node name",
                self.node
            )));
        }
        let held: Vec<AccountId> = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        for account in held {
            if !self.try_lock(&client, account).await? {
                tracing::error!(
                    account = account.0,
                    "a POP3 maildrop lock was taken by another node while the database was away"
                );
            }
        }
        if self.reporter.load(std::sync::atomic::Ordering::Relaxed) {
            // Held before the connection broke: take it again (another
            // node may have meanwhile; then that one reports).
            let again = self.try_reporter(&client).await?;
            self.reporter
                .store(again, std::sync::atomic::Ordering::Relaxed);
        }
        *self.client.lock().await = Some(client);
        Ok(ended)
    }

    async fn try_reporter(&self, client: &tokio_postgres::Client) -> Result<bool> {
        Ok(client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1), 0)",
                &[&self.reporter_key],
            )
            .await
            .map_err(backend)?
            .get(0))
    }

    /// Whether this node sends the DMARC aggregate reports: the first node
    /// to ask becomes the reporter and stays it while its control
    /// connection lives; when it dies, the next node to ask takes over.
    pub(super) async fn reporter(&self) -> Result<bool> {
        use std::sync::atomic::Ordering;
        if self.reporter.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let guard = self.client.lock().await;
        let client = guard
            .as_ref()
            .ok_or_else(|| super::fail("the database is away (control connection)"))?;
        let mine = self.try_reporter(client).await?;
        if mine {
            self.reporter.store(true, Ordering::Relaxed);
        }
        Ok(mine)
    }

    async fn try_lock(&self, client: &tokio_postgres::Client, account: AccountId) -> Result<bool> {
        Ok(client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1), $2::int)",
                &[&self.maildrop_key, &(account.0 as i32)],
            )
            .await
            .map_err(backend)?
            .get(0))
    }

    /// A notice from this node that says nothing yet.
    fn notice(&self) -> Notice {
        Notice {
            n: self.node.clone(),
            d: false,
            c: None,
            a: Vec::new(),
            q: false,
        }
    }

    /// Sends `changes` to the other nodes, inside the transaction `tx`.
    pub(super) async fn notify(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        changes: &[Change],
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let whole = Notice {
            c: Some(changes.to_vec()),
            ..self.notice()
        };
        let mut payload = serde_json::to_string(&whole).map_err(backend)?;
        if payload.len() > MAX_PAYLOAD {
            let mut accounts: Vec<AccountId> = changes.iter().filter_map(Change::account).collect();
            accounts.sort_unstable();
            accounts.dedup();
            let short = Notice {
                a: accounts,
                q: changes.iter().any(|c| matches!(c, Change::Queued)),
                ..self.notice()
            };
            payload = serde_json::to_string(&short).map_err(backend)?;
        }
        if payload.len() > MAX_PAYLOAD {
            // Thousands of accounts in one write: everyone re-reads.
            payload = serde_json::to_string(&Notice {
                c: Some(vec![Change::External]),
                q: true,
                ..self.notice()
            })
            .map_err(backend)?;
        }
        exec(tx, "SELECT pg_notify($1, $2)", &[&self.channel, &payload])
            .await
            .map(drop)
    }

    /// The notice channel and this node's name, for a statement that sends
    /// its own notice (`messages::DELIVER_ONE`).
    pub(super) fn notice_channel(&self) -> (&str, &str) {
        (&self.channel, &self.node)
    }

    /// Tells every node, inside `tx`, that the local domains changed; this
    /// node forgets its list at once.
    pub(super) async fn notify_domains(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<()> {
        *self.domains.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let payload = serde_json::to_string(&Notice {
            d: true,
            ..self.notice()
        })
        .map_err(backend)?;
        exec(tx, "SELECT pg_notify($1, $2)", &[&self.channel, &payload])
            .await
            .map(drop)
    }

    /// Tells this node's watchers of committed changes.
    pub(super) fn publish(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut touched = HashSet::new();
        for change in changes {
            touched.extend(change.account());
            if change == Change::External {
                self.signals.external();
            }
            let _ = self.feed.send(change);
        }
        self.signals.changed(&touched);
    }

    /// A notice from the database.
    fn heard(&self, payload: &str) {
        let notice: Notice = match serde_json::from_str(payload) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable notice on the PostgreSQL channel");
                return;
            }
        };
        if notice.n == self.node {
            return; // published at the commit
        }
        if notice.d {
            *self.domains.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return;
        }
        if let Some(changes) = notice.c {
            self.publish(changes);
            return;
        }
        let _ = self.feed.send(Change::External);
        if notice.q {
            let _ = self.feed.send(Change::Queued);
        }
        self.signals
            .changed(&notice.a.into_iter().collect::<HashSet<_>>());
    }
}

/// Keeps the control connection: when it ends, opens it again (backing
/// off from 100 ms to 5 s) and tells every watcher to re-read.
async fn keep(control: Weak<Control>, mut ended: tokio::task::JoinHandle<()>) {
    loop {
        let _ = (&mut ended).await;
        let mut pause = Duration::from_millis(100);
        loop {
            let Some(c) = control.upgrade() else { return };
            *c.client.lock().await = None;
            match c.connect().await {
                Ok(next) => {
                    tracing::info!("PostgreSQL control connection open again");
                    *c.domains.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    ended = next;
                    c.publish(vec![Change::External]);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?pause, "PostgreSQL control connection");
                }
            }
            drop(c);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

/// Extends this node's queue claims every third of the lease, on the
/// database's clock.
async fn renew_leases(pool: Pool, node: String, lease: Duration) {
    let secs = lease.as_secs().max(1) as i64;
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(200)));
    loop {
        tick.tick().await;
        let renewed = async {
            let c = pool.get().await.map_err(backend)?;
            exec(
                &c,
                "UPDATE queue SET lease_until = extract(epoch FROM clock_timestamp())::bigint + $2
                 WHERE lease_node = $1 AND lease_until IS NOT NULL",
                &[&node, &secs],
            )
            .await
        };
        if let Err(e) = renewed.await {
            tracing::warn!(error = %e, "queue leases not renewed");
        }
    }
}

impl Coordination for PgStore {
    fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>> {
        let control = Arc::clone(&self.control);
        if !control
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account)
        {
            return Ok(None);
        }
        let taken = self.block(async |_| {
            let guard = control.client.lock().await;
            let client = guard
                .as_ref()
                .ok_or_else(|| super::fail("the database is away (control connection)"))?;
            control.try_lock(client, account).await
        });
        if !matches!(taken, Ok(true)) {
            control
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&account);
            return taken.map(|_| None);
        }
        Ok(Some(MaildropLock::new(move || {
            // Dropped anywhere (an async task too): the unlock is sent from
            // the store's runtime, after this node's set lets go at once.
            // A lock taken again meanwhile by this node is safe either
            // way: both statements go over the one control connection, and
            // advisory locks count (lock, lock, unlock: still held). The
            // server releases them all if the control connection ends.
            control
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&account);
            let c = Arc::clone(&control);
            control.handle.spawn(async move {
                if let Some(client) = c.client.lock().await.as_ref() {
                    let _ = client
                        .query_one(
                            "SELECT pg_advisory_unlock(hashtext($1), $2::int)",
                            &[&c.maildrop_key, &(account.0 as i32)],
                        )
                        .await;
                }
            });
        })))
    }

    fn watch(&self) -> broadcast::Receiver<Change> {
        self.control.feed.subscribe()
    }

    fn watch_account(&self, account: AccountId) -> tokio::sync::watch::Receiver<AccountSignal> {
        self.control.signals.subscribe(account)
    }
}
