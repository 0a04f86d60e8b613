//! Opening what the commands share: the private data directory and the
//! store (SQLite, or PostgreSQL as one node of several), with the config's
//! domains made local.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use postamt_store::postgres::PgOptions;
use postamt_store::{PgStore, SharedStore, SqliteOptions, SqliteStore};

use crate::config::{Config, StoreUrl};

/// Creates `dir` readable by its owner only (mail and password hashes live
/// there); an existing directory is left as the administrator set it.
pub fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// An open store, and what only one backend has.
pub struct Opened {
    pub store: SharedStore,
    /// The SQLite store (its full-text indexer and its content files are
    /// the server's to run); `None` on PostgreSQL.
    pub sqlite: Option<Arc<SqliteStore>>,
    /// The PostgreSQL store (its indexer is the server's to run).
    pub postgres: Option<Arc<PgStore>>,
    /// Which store this is, for the log: the file, or the node and the
    /// database.
    pub description: String,
}

/// Opens the store for a command (`user`, `queue`, `deliver`, …) and makes
/// sure the config's domains are local. On PostgreSQL the command is a
/// node of its own for as long as it runs (named after the host and the
/// process: never the server's name).
pub fn open_store(config: &Config) -> Result<SharedStore> {
    Ok(open(config, None, false)?.store)
}

/// [`open_store`] for the server: on SQLite it also watches for commits
/// by other processes (`postamt deliver`) every `external_poll`, so that
/// IMAP IDLE and the selected mailboxes see them; on PostgreSQL it joins
/// as the node of `[store] node` (other processes are heard through the
/// database).
pub fn open_server_store(config: &Config, external_poll: Duration) -> Result<Opened> {
    open(config, Some(external_poll), true)
}

fn open(config: &Config, external_poll: Option<Duration>, server: bool) -> Result<Opened> {
    let opened = match config.store_url()? {
        StoreUrl::Sqlite(path) => {
            use std::os::unix::fs::PermissionsExt;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir)?;
            }
            let mut options = SqliteOptions::new(&path);
            if let Some(min) = config.store.file_min_size {
                options.file_min_size = min;
            }
            if let Some(size) = config.store.pack_size {
                options.pack_size = size;
            }
            options.external_poll = external_poll;
            let store = Arc::new(
                SqliteStore::open(options)
                    .with_context(|| format!("opening store {}", path.display()))?,
            );
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            Opened {
                store: store.clone(),
                sqlite: Some(store),
                postgres: None,
                description: format!("sqlite {}", path.display()),
            }
        }
        StoreUrl::Postgres(url) => {
            let mut options = PgOptions::new(&url);
            if server {
                options.node = config
                    .store
                    .node
                    .clone()
                    .unwrap_or_else(postamt_store::postgres::host_name);
            }
            if let Some(secs) = config.store.lease {
                options.lease = Duration::from_secs(secs.max(3));
            }
            let store = PgStore::open_with(options).context("[store] url")?;
            let description = format!(
                "postgres {} as node {:?} (schema version {})",
                store.place(),
                store.node(),
                store.schema_version()
            );
            let store = Arc::new(store);
            Opened {
                store: store.clone(),
                sqlite: None,
                postgres: Some(store),
                description,
            }
        }
    };
    for d in &config.domains {
        opened.store.add_domain(d)?;
    }
    Ok(opened)
}
