//! [`Coordination`] for SQLite: the change feed, the per-account signals
//! and the POP3 maildrop locks, all in the memory of this process. The
//! writer publishes to them after each commit (`writer.rs`); commits by
//! other processes reach them through the writer's `data_version` poll.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

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

/// The per-account signals of [`Coordination::watch_account`]: a `watch`
/// channel per account that someone watches (dropped again once nobody
/// does), bumped by the writer after each commit, and how many times
/// another process's commits were seen (a new channel starts there).
#[derive(Default)]
pub(super) struct Signals(
    Mutex<(
        std::collections::HashMap<AccountId, tokio::sync::watch::Sender<AccountSignal>>,
        u64,
    )>,
);

impl Signals {
    pub(super) fn subscribe(
        &self,
        account: AccountId,
    ) -> tokio::sync::watch::Receiver<AccountSignal> {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, external) = &mut *guard;
        map.entry(account)
            .or_insert_with(|| {
                tokio::sync::watch::channel(AccountSignal {
                    changes: 0,
                    external: *external,
                })
                .0
            })
            .subscribe()
    }

    /// After a commit: one bump per account the batch changed.
    pub(super) fn changed(&self, accounts: &HashSet<AccountId>) {
        if accounts.is_empty() {
            return;
        }
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, _) = &mut *guard;
        for a in accounts {
            if let Some(tx) = map.get(a) {
                if tx.receiver_count() == 0 {
                    map.remove(a);
                } else {
                    tx.send_modify(|s| s.changes += 1);
                }
            }
        }
    }

    /// Another process committed: every watcher re-reads.
    pub(super) fn external(&self) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, external) = &mut *guard;
        *external += 1;
        map.retain(|_, tx| tx.receiver_count() > 0);
        for tx in map.values() {
            tx.send_modify(|s| s.external += 1);
        }
    }
}
