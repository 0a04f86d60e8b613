//! The PostgreSQL backend (issue 18): the store on a database server that
//! several postamt nodes share. What is here: the connection pool
//! (deadpool-postgres over tokio-postgres, statements prepared once per
//! connection), the versioned schema (`schema.rs`), the bridge from the
//! store's synchronous traits to the asynchronous client, and the write
//! path: one transaction per store call, retried on a deadlock or a
//! serialization failure, its changes sent to the other nodes with
//! `pg_notify` inside the transaction and published here after the
//! commit (`coordination.rs`). The traits follow file for file beside
//! `sqlite/`.
//!
//! The bridge: the store's methods are synchronous, as SQLite needs; so
//! the store owns a small runtime of its own where the connections' I/O
//! runs, and each method waits for its queries on the caller's thread
//! (`wait_on`), whoever calls.

mod coordination;
mod directory;
mod import;
mod mailboxes;
mod messages;
mod queue;
mod reports;
mod schema;
mod search;
mod tls;

pub use import::MigrationReport;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::{Change, Result, StoreError};

/// A failure of the database (or of anything else on the way), with its
/// causes and, for an error the server reported, its SQLSTATE: tokio-postgres
/// says only "db error" and keeps the why in the source.
fn backend(e: impl std::error::Error + 'static) -> StoreError {
    let mut text = chain(&e);
    if let Some(code) = (&e as &dyn std::error::Error)
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
    {
        text.push_str(&format!(" [SQLSTATE {}]", code.code()));
    }
    StoreError::Backend(text)
}

/// A failure this backend finds itself.
fn fail(text: &str) -> StoreError {
    StoreError::Backend(text.to_string())
}

/// Whether a failed transaction may simply be run again: a deadlock the
/// server broke, or a serialization failure (40P01, 40001).
fn retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(t)
        if t.ends_with("[SQLSTATE 40P01]") || t.ends_with("[SQLSTATE 40001]"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The rows of a statement, prepared once per connection.
async fn rows(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let s = c.prepare_cached(sql).await.map_err(backend)?;
    c.query(&s, params).await.map_err(backend)
}

/// The one row of a statement (an error if there is none).
async fn row(c: &impl GenericClient, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
    let s = c.prepare_cached(sql).await.map_err(backend)?;
    c.query_one(&s, params).await.map_err(backend)
}

/// The row of a statement, if any.
async fn row_opt(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    let s = c.prepare_cached(sql).await.map_err(backend)?;
    c.query_opt(&s, params).await.map_err(backend)
}

/// Runs a statement; how many rows it changed.
async fn exec(c: &impl GenericClient, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    let s = c.prepare_cached(sql).await.map_err(backend)?;
    c.execute(&s, params).await.map_err(backend)
}

/// An error with its causes.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Where a configuration points, for messages (never the password).
fn describe(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let tls = match c.get_ssl_mode() {
        tokio_postgres::config::SslMode::Require => " over TLS",
        _ => "",
    };
    format!(
        "{}@{host}:{port}/{}{tls}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// Waits on this thread for `fut`, which runs in the context of the
/// store's runtime `rt` (its connections, timers and spawned tasks live
/// there, driven by its workers): the thread is parked until the future
/// is woken. Not `Runtime::block_on`, which refuses a thread that drives
/// a runtime already — and the store is called from such threads: an
/// async session's short read under `block_in_place`, a blocking-pool
/// thread, `serve` at its start.
fn wait_on<F: std::future::Future>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let _entered = rt.enter();
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Connections a store holds at most.
const POOL_SIZE: usize = 16;
/// Time to get a connection from the pool (or open one).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a transaction that deadlocked (or failed to serialize) is
/// run again before the error reaches the caller.
const WRITE_ATTEMPTS: usize = 8;

/// How a [`PgStore`] is opened.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user@host:port/db?options` (or a key=value string).
    pub url: String,
    /// This node's name: unique among the nodes on one database (a second
    /// process with the same name is refused); its queue leases carry it.
    /// Keep it across restarts, so that a restarted node takes its
    /// unfinished attempts back at once (`[store] node`, default the
    /// host name).
    pub node: String,
    /// How long a queue claim lasts unless its node renews it (every third
    /// of it, while the node lives): a node that dies loses its claims
    /// after this long, and another node retries them.
    pub lease: Duration,
}

impl PgOptions {
    /// A node named after this host and process (unique, not kept across
    /// restarts: `serve` names its node from the config).
    pub fn new(url: &str) -> PgOptions {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        PgOptions {
            url: url.to_string(),
            node: format!(
                "{}-{}-{}",
                host_name(),
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            lease: Duration::from_secs(60),
        }
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`), or `localhost`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A store on PostgreSQL.
pub struct PgStore {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    schema_version: usize,
    node: String,
    place: String,
    lease: Duration,
    control: Arc<coordination::Control>,
    /// Single-target deliveries for the batch writer (`messages::batches`).
    jobs: tokio::sync::mpsc::UnboundedSender<messages::Job>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("node", &self.node)
            .field("database", &self.place)
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

/// The client configuration of a `postgres://` URL (or key=value string)
/// and the TLS connector its `sslmode` asks for (`tls.rs`).
fn config_of(url: &str) -> Result<(tokio_postgres::Config, tls::Connector)> {
    let (url, wanted) = tls::split(url)?;
    let mut c = tokio_postgres::Config::from_str(&url)
        .map_err(|e| StoreError::Invalid(format!("[store] url: {e}")))?;
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(CONNECT_TIMEOUT);
    }
    let connector = tls::connector(&wanted, &mut c)?;
    Ok((c, connector))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("store-pg")
        .enable_all()
        .build()
        .map_err(backend)
}

impl PgStore {
    /// Connects as a node of its own ([`PgOptions::new`]).
    pub fn open(url: &str) -> Result<PgStore> {
        PgStore::open_with(PgOptions::new(url))
    }

    /// Connects, brings the schema to this version's (nodes starting
    /// together migrate once, one after the other), and joins as node
    /// `options.node`: refused while another process is that node.
    pub fn open_with(options: PgOptions) -> Result<PgStore> {
        PgStore::open_here(options)
    }

    fn open_here(options: PgOptions) -> Result<PgStore> {
        let (config, connector) = config_of(&options.url)?;
        let place = describe(&config);
        let rt = runtime()?;
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(backend)?;
        let (to, schema) = wait_on(&rt, async {
            let mut client = pool.get().await.map_err(|e| {
                StoreError::Backend(format!(
                    "cannot connect to PostgreSQL at {place}: {}",
                    chain(&e)
                ))
            })?;
            let (_, to) = schema::migrate(&mut client).await?;
            let schema: String = row(&client, "SELECT current_schema()::text", &[])
                .await?
                .get(0);
            Ok::<_, StoreError>((to, schema))
        })?;
        let control = wait_on(
            &rt,
            coordination::Control::start(
                config,
                connector,
                &options.node,
                &schema,
                pool.clone(),
                options.lease,
            ),
        )?;
        let (jobs, queue) = tokio::sync::mpsc::unbounded_channel();
        rt.spawn(messages::batches(pool.clone(), Arc::clone(&control), queue));
        Ok(PgStore {
            jobs,
            rt: Some(rt),
            pool,
            schema_version: to,
            node: options.node,
            place,
            lease: options.lease,
            control,
        })
    }

    /// The schema version this store is at.
    pub fn schema_version(&self) -> usize {
        self.schema_version
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where the store is: `user@host:port/db` (no password).
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Runs `f` with a pooled connection, waiting for it on this thread:
    /// for the synchronous store methods (see [`wait_on`]).
    fn block<T>(
        &self,
        f: impl AsyncFnOnce(&mut deadpool_postgres::Client) -> Result<T>,
    ) -> Result<T> {
        let rt = self.rt.as_ref().ok_or_else(|| fail("store closed"))?;
        wait_on(rt, async {
            let mut client = self.pool.get().await.map_err(backend)?;
            f(&mut client).await
        })
    }

    /// Runs `f` in one read-only transaction at one snapshot (REPEATABLE
    /// READ): reads that must agree with each other.
    fn snapshot<T>(
        &self,
        f: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.block(async |c| {
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(backend)?;
            let value = f(&tx).await?;
            tx.commit().await.map_err(backend)?;
            Ok(value)
        })
    }

    /// Runs `f` in one transaction and commits it; `f` returns its value
    /// and the changes it made. The changes go to the other nodes by
    /// `pg_notify` in the same transaction (so they hear of it at the
    /// commit, and only if it commits), and to this node's watchers after
    /// the commit. A transaction the server broke off for a deadlock or a
    /// serialization failure is run again (`f` may run more than once).
    fn write<T>(
        &self,
        f: impl AsyncFn(&deadpool_postgres::Transaction<'_>) -> Result<(T, Vec<Change>)>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let done = self.block(async |c| {
                let tx = c.transaction().await.map_err(backend)?;
                let (value, changes) = f(&tx).await?;
                self.control.notify(&tx, &changes).await?;
                tx.commit().await.map_err(backend)?;
                Ok((value, changes))
            });
            match done {
                Ok((value, changes)) => {
                    self.control.publish(changes);
                    return Ok(value);
                }
                Err(e) if attempt < WRITE_ATTEMPTS && retryable(&e) => {
                    tracing::debug!(error = %e, attempt, "PostgreSQL transaction run again");
                    std::thread::sleep(Duration::from_millis(attempt as u64 * 2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The server's version (`SHOW server_version`).
    pub fn server_version(&self) -> Result<String> {
        self.block(async |c| Ok(row(&*c, "SHOW server_version", &[]).await?.get(0)))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Without blocking: a store may be dropped on an async thread.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// What `config check` says of a PostgreSQL store URL: the server's
/// version and the schema version found (`None`: not created yet),
/// without changing anything.
pub fn probe(url: &str) -> Result<(String, Option<usize>)> {
    let (config, connector) = config_of(url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(backend)?;
    rt.block_on(async {
        let (client, connection) = config.connect(connector).await.map_err(|e| {
            StoreError::Backend(format!(
                "cannot connect to PostgreSQL at {}: {}",
                describe(&config),
                chain(&e)
            ))
        })?;
        let io = tokio::spawn(connection);
        let version: String = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(backend)?
            .get(0);
        let table: Option<String> = client
            .query_one("SELECT to_regclass('schema_version')::text", &[])
            .await
            .map_err(backend)?
            .get(0);
        let schema = match table {
            Some(_) => client
                .query_opt("SELECT version FROM schema_version", &[])
                .await
                .map_err(backend)?
                .map(|r| r.get::<_, i32>(0).max(0) as usize),
            None => None,
        };
        drop(client);
        let _ = io.await;
        Ok((version, schema))
    })
}
