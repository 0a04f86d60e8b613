//! EXPUNGE (RFC 9051 §6.4.3), UID EXPUNGE (RFC 4315 §2.1), CLOSE
//! (§6.4.1) and UNSELECT (§6.4.2).

use std::sync::Arc;

use postamt_store::{Flags, Uid, blocking};
use tokio::io::{AsyncRead, AsyncWrite};

use super::*;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    /// EXPUNGE / UID EXPUNGE / CLOSE: removes \Deleted messages (limited to
    /// `uids` if given); `silent` for CLOSE.
    pub(super) async fn expunge_deleted(
        &mut self,
        uids: Option<&SequenceSet>,
        silent: bool,
    ) -> Result<(), String> {
        let Some(sel) = &self.selected else {
            return Ok(());
        };
        if sel.read_only {
            return if silent {
                Ok(())
            } else {
                Err("NO [READ-ONLY] mailbox is read-only".into())
            };
        }
        let max = sel.max_uid();
        let targets: Vec<Uid> = sel
            .msgs
            .iter()
            .filter(|m| m.flags.contains(Flags::DELETED))
            .filter(|m| {
                uids.is_none_or(|s| {
                    if s.is_saved() {
                        sel.saved.contains(&m.uid)
                    } else {
                        s.contains(m.uid.0, max)
                    }
                })
            })
            .map(|m| m.uid)
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let id = sel.mailbox.id;
        let store = Arc::clone(self.store);
        let removed = blocking(move || store.expunge(id, &targets))
            .await
            .map_err(|e| store_no(&e))?;
        self.forget(&removed, silent);
        Ok(())
    }
}
