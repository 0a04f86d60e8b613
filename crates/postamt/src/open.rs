//! Opening what the commands share: the private data directory and the
//! store, with the config's domains made local.

use std::sync::Arc;

use anyhow::{Context, Result};
use postamt_store::{Directory, SqliteOptions, SqliteStore};

use crate::config::Config;

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

/// Opens the store and makes sure the config's domains are local.
pub fn open_store(config: &Config) -> Result<Arc<SqliteStore>> {
    open_store_with(config, None)
}

/// [`open_store`] for the server: it also watches for commits by other
/// processes (`postamt deliver`) every `external_poll`, so that IMAP IDLE
/// and the selected mailboxes see them.
pub fn open_store_with(
    config: &Config,
    external_poll: Option<std::time::Duration>,
) -> Result<Arc<SqliteStore>> {
    use std::os::unix::fs::PermissionsExt;
    let path = config.store_path()?;
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
    let store =
        SqliteStore::open(options).with_context(|| format!("opening store {}", path.display()))?;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    for d in &config.domains {
        store.add_domain(d)?;
    }
    Ok(Arc::new(store))
}
