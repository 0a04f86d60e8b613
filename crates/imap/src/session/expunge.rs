//! EXPUNGE (RFC 9051 §6.4.3), UID EXPUNGE (RFC 4315 §2.1), CLOSE
//! (§6.4.1) and UNSELECT (§6.4.2, RFC 3691).

use postamt_store::{Flags, Uid};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Reply, Session};
use crate::sequence::SequenceSet;
use crate::status::{Code, Status};

/// `NO [READ-ONLY]` for changes to a mailbox opened with EXAMINE.
pub(super) fn read_only() -> Status {
    Status::no("mailbox is read-only").with_code(Code::ReadOnly)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn expunge(&mut self, uids: Option<&SequenceSet>) -> Reply {
        self.expunge_deleted(uids, false).await?;
        Ok(Status::ok("EXPUNGE completed"))
    }

    /// RFC 9051 §6.4.1: expunges silently, then no mailbox is selected
    /// (also when the expunge failed).
    pub(super) async fn close(&mut self) -> Reply {
        let r = self.expunge_deleted(None, true).await;
        if let Some(sel) = self.selected.take() {
            self.spare_views.give(sel.msgs);
        }
        r.map(|_| Status::ok("CLOSE completed"))
    }

    /// RFC 3691, RFC 9051 §6.4.2: like CLOSE, without expunging.
    pub(super) fn unselect(&mut self) -> Reply {
        if let Some(sel) = self.selected.take() {
            self.spare_views.give(sel.msgs);
        }
        Ok(Status::ok("UNSELECT completed"))
    }

    /// EXPUNGE / UID EXPUNGE / CLOSE: removes \Deleted messages (limited to
    /// `uids` if given); `silent` for CLOSE.
    async fn expunge_deleted(
        &mut self,
        uids: Option<&SequenceSet>,
        silent: bool,
    ) -> Result<(), Status> {
        let Some(sel) = &self.selected else {
            return Ok(());
        };
        if sel.read_only {
            return if silent { Ok(()) } else { Err(read_only()) };
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
        let removed = self.store.write_expunge(id, targets).await?;
        self.forget(&removed, silent);
        Ok(())
    }
}
