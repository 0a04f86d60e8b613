//! The per-account signals of [`crate::Coordination::watch_account`],
//! shared by both backends: each publishes a commit's changes to them.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::model::*;

/// The per-account signals of [`Coordination::watch_account`]: a `watch`
/// channel per account that someone watches (dropped again once nobody
/// does), bumped by the writer after each commit, and how many times
/// another process's commits were seen (a new channel starts there).
#[derive(Default)]
pub(crate) struct Signals(
    Mutex<(
        std::collections::HashMap<AccountId, tokio::sync::watch::Sender<AccountSignal>>,
        u64,
    )>,
);

impl Signals {
    pub(crate) fn subscribe(
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
    pub(crate) fn changed(&self, accounts: &HashSet<AccountId>) {
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
    pub(crate) fn external(&self) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, external) = &mut *guard;
        *external += 1;
        map.retain(|_, tx| tx.receiver_count() > 0);
        for tx in map.values() {
            tx.send_modify(|s| s.external += 1);
        }
    }
}
