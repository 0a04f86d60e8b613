//! The PostgreSQL backend (issue 18) — in progress. What is here: the
//! connection pool (deadpool-postgres over tokio-postgres), the versioned
//! schema (`schema.rs`), and the bridge from the store's synchronous
//! traits to the asynchronous client. The store traits themselves follow
//! file for file beside `sqlite/` (`directory.rs`, `mailboxes.rs`, …);
//! until they exist a `postgres://` store URL is accepted by `config check`
//! (which tests the connection) and refused by `serve`.
//!
//! The bridge: the store's methods are synchronous and every caller
//! already runs them off the async threads (`crate::blocking`), as SQLite
//! needs; so the store owns a small runtime of its own and each method
//! `block_on`s its queries there. The connections' I/O runs on that
//! runtime, whoever calls.

mod directory;
mod mailboxes;
mod reports;
mod schema;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::{Result, StoreError};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An error with its causes (tokio-postgres says "error connecting to
/// server" and keeps the why in the source).
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
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// Connections a store holds at most.
const POOL_SIZE: usize = 16;
/// Time to get a connection from the pool (or open one).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A store on PostgreSQL.
pub struct PgStore {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    schema_version: usize,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

/// The client configuration of a `postgres://` URL (or key=value string).
fn config_of(url: &str) -> Result<tokio_postgres::Config> {
    let mut c = tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::Invalid(format!("[store] url: {e}")))?;
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(c)
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
    /// Connects, and brings the schema to this version's (nodes starting
    /// together migrate once, one after the other).
    pub fn open(url: &str) -> Result<PgStore> {
        let config = config_of(url)?;
        let place = describe(&config);
        let rt = runtime()?;
        let manager = Manager::from_config(
            config,
            NoTls,
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
        let (_, to) = rt.block_on(async {
            let mut client = pool.get().await.map_err(|e| {
                StoreError::Backend(format!(
                    "cannot connect to PostgreSQL at {place}: {}",
                    chain(&e)
                ))
            })?;
            schema::migrate(&mut client).await
        })?;
        Ok(PgStore {
            rt: Some(rt),
            pool,
            schema_version: to,
        })
    }

    /// The schema version this store is at.
    pub fn schema_version(&self) -> usize {
        self.schema_version
    }

    /// Runs `f` with a pooled connection on the store's runtime, waiting
    /// for it: for the synchronous store methods.
    fn block<T>(
        &self,
        f: impl AsyncFnOnce(&mut deadpool_postgres::Client) -> Result<T>,
    ) -> Result<T> {
        let rt = self.rt.as_ref().ok_or_else(|| backend("store closed"))?;
        rt.block_on(async {
            let mut client = self.pool.get().await.map_err(backend)?;
            f(&mut client).await
        })
    }

    /// Runs `f` in one transaction and commits it; `f` returns its value
    /// and the changes it made. The changes will be sent with `pg_notify`
    /// inside the transaction once `Coordination` exists on PostgreSQL
    /// (issue 18); until then this backend is not served and nobody
    /// listens.
    fn write<T>(
        &self,
        f: impl AsyncFnOnce(&tokio_postgres::Transaction<'_>) -> Result<(T, Vec<crate::Change>)>,
    ) -> Result<T> {
        self.block(async |c| {
            let tx = c.transaction().await.map_err(backend)?;
            let (value, _changes) = f(&tx).await?;
            tx.commit().await.map_err(backend)?;
            Ok(value)
        })
    }

    /// The server's version (`SHOW server_version`).
    pub fn server_version(&self) -> Result<String> {
        self.block(async |c| {
            let row = c
                .query_one("SHOW server_version", &[])
                .await
                .map_err(backend)?;
            Ok(row.get::<_, String>(0))
        })
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
    let config = config_of(url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(backend)?;
    rt.block_on(async {
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
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
