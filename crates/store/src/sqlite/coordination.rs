//! [`Coordination`] for SQLite: the change feed, the per-account signals
//! and the POP3 maildrop locks, all in the memory of this process. The
//! writer publishes to them after each commit (`writer.rs`); commits by
//! other processes reach them through the writer's `data_version` poll.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::{SqliteStore, backend};
use crate::model::*;
use crate::{Coordination, Result};

impl Coordination for SqliteStore {
    fn lock_maildrop(&self, account: AccountId) -> Result<Option<MaildropLock>> {
        let mut held = self.locks.lock().map_err(backend)?;
        if !held.insert(account) {
            return Ok(None);
        }
        let locks = Arc::clone(&self.locks);
        Ok(Some(MaildropLock::new(move || {
            if let Ok(mut held) = locks.lock() {
                held.remove(&account);
            }
        })))
    }

    fn watch(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn watch_account(&self, account: AccountId) -> tokio::sync::watch::Receiver<AccountSignal> {
        self.signals.subscribe(account)
    }
}
